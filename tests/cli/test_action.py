"""The composite action (action.yml): its shape, and its validate step run for real on a temporary git repository.

The step's script is taken out of action.yml (PyYAML, which huggingface_hub requires, parses it) and run as the
runner runs a ``shell: python`` step: ``python <script>``, in the checkout, with the step's ``env`` (its
``${{ inputs.* }}`` expressions filled from the inputs' defaults and the test's values) and the ``GITHUB_*``
variables the runner sets. git itself computes the changed files; wangp runs in a child process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO_ROOT, definition, subprocess_env, write_definition

ACTION = REPO_ROOT / "action.yml"
_EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


@pytest.fixture(scope="module")
def action() -> dict:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))


def evaluate(value, context: dict) -> str:
    """``${{ inputs.x }}`` / ``${{ github.y }}`` as the runner fills them (an unknown name is an error here)."""
    return _EXPRESSION.sub(lambda m: str(context[m.group(1)]), str(value))


def step(action, step_id):
    return next(s for s in action["runs"]["steps"] if s.get("id") == step_id)


def test_action_shape(action):
    assert action["name"] == "wangp validate" and action["runs"]["using"] == "composite"
    inputs = action["inputs"]
    assert {"paths", "base-ref", "python-version", "wangp-source", "sarif", "strict", "target"} <= set(inputs)
    assert inputs["paths"]["default"] == "finetunes defaults"
    assert inputs["base-ref"]["default"] == "${{ github.event.pull_request.base.sha }}"
    steps = action["runs"]["steps"]
    setup = steps[0]
    assert setup["uses"].startswith("actions/setup-python@")
    assert setup["with"]["python-version"] == "${{ inputs.python-version }}"
    for each in steps:  # a composite run step needs its shell; every expression names a declared input
        assert "uses" in each or each["shell"] in ("bash", "python")
        for name in _EXPRESSION.findall(json.dumps(each)):
            assert name.startswith("inputs.") and name.split(".", 1)[1] in inputs, name
    install = next(s for s in steps if s.get("name") == "Install wangp")
    assert "pip install" in install["run"] and "$GITHUB_ACTION_PATH" in install["run"]
    assert "[" not in install["run"]  # the light install: no extras
    for name, output in action["outputs"].items():
        assert output["value"] == f"${{{{ steps.validate.outputs.{name} }}}}"


def git(repo, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A definitions repository: a base commit with a good and a bad definition, its sha in ``repo.base``."""
    root = tmp_path / "registry"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write_definition(root, "kept_good", definition())
    write_definition(root, "untouched_bad", definition(architecture="no_such_arch"))
    write_definition(root, "base_type", {"model": {"name": "x"}}, folder="notes")  # outside paths, bad too
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def commit(repo, message="head"):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def run_step(action, repo, tmp_path, *, base, **inputs):
    """The validate step as the runner runs it; (exit status, stdout, outputs written to GITHUB_OUTPUT)."""
    values = {f"inputs.{name}": spec.get("default", "") for name, spec in action["inputs"].items()}
    values["github.event.pull_request.base.sha"] = base
    values = {key: evaluate(value, values) for key, value in values.items()}
    values.update({f"inputs.{name.replace('_', '-')}": value for name, value in inputs.items()})
    validate = step(action, "validate")
    assert validate["shell"] == "python"
    script = tmp_path / "step.py"
    script.write_text(validate["run"], encoding="utf-8")
    outputs = tmp_path / "github_output"
    outputs.write_text("")
    env = subprocess_env(GITHUB_ACTIONS="true", CI="true", GITHUB_WORKSPACE=str(repo), GITHUB_OUTPUT=str(outputs),
                         GITHUB_ACTION_PATH=str(REPO_ROOT), GITHUB_EVENT_NAME="pull_request",
                         GITHUB_BASE_REF="main", GITHUB_HEAD_REF="feature")
    env.update({name: evaluate(value, values) for name, value in validate["env"].items()})
    result = subprocess.run([sys.executable, str(script)], cwd=repo, env=env, capture_output=True, text=True,
                            timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    written = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    return result.returncode, result.stdout, written


def annotations(stdout):
    return [line for line in stdout.splitlines() if line.startswith(("::error ", "::warning "))]


def test_changed_bad_definition_fails_and_only_it_is_annotated(action, repo, tmp_path):
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "-b", "feature")
    write_definition(repo, "kept_good", definition(description="An edited description"))  # modified, still good
    write_definition(repo, "new_bad", definition(description=None))  # added, E3
    write_definition(repo, "copy", definition(), folder="finetunes/nested")  # not a definition WanGP reads
    write_definition(repo, "base_type", {"model": {}}, folder="notes")  # changed, but outside paths
    commit(repo)
    status, stdout, outputs = run_step(action, repo, tmp_path, base=base)
    assert status == 1, stdout
    found = annotations(stdout)
    assert found and all(line.startswith("::error file=finetunes/new_bad.json,") for line in found), found
    assert "title=E3::" in found[0]
    assert "untouched_bad" not in stdout and "notes/" not in stdout and "nested" not in stdout
    assert outputs == {"files": "2", "sarif": ""}


def test_only_good_changes_pass(action, repo, tmp_path):
    base = git(repo, "rev-parse", "HEAD")
    write_definition(repo, "another_good", definition(name="Another"))
    write_definition(repo, "kept_good", definition(description="Edited"))
    commit(repo)
    status, stdout, outputs = run_step(action, repo, tmp_path, base=base)
    assert status == 0, stdout
    assert annotations(stdout) == []
    assert outputs["files"] == "2"


def test_no_changed_definition_passes_and_writes_an_empty_sarif(action, repo, tmp_path):
    base = git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("docs only\n")
    commit(repo)
    status, stdout, outputs = run_step(action, repo, tmp_path, base=base, sarif="wangp.sarif")
    assert status == 0 and "nothing to validate" in stdout
    log = json.loads((repo / "wangp.sarif").read_text())
    assert log["version"] == "2.1.0" and log["runs"][0]["results"] == []
    assert outputs == {"files": "0", "sarif": "wangp.sarif"}


def test_sarif_input_lists_the_changed_files_findings(action, repo, tmp_path):
    base = git(repo, "rev-parse", "HEAD")
    write_definition(repo, "new_bad", definition(architecture="no_such_arch"))
    commit(repo)
    status, stdout, outputs = run_step(action, repo, tmp_path, base=base, sarif="wangp.sarif")
    assert status == 1
    log = json.loads((repo / "wangp.sarif").read_text())
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]}
    assert uris == {"finetunes/new_bad.json"}
    assert len(log["runs"][0]["results"]) == len(annotations(stdout))


def test_without_base_every_definition_is_validated(action, repo, tmp_path):
    status, stdout, _ = run_step(action, repo, tmp_path, base="")
    assert status == 1
    assert {line.split(",", 1)[0] for line in annotations(stdout)} == {"::error file=finetunes/untouched_bad.json"}


def test_unknown_base_is_a_clear_error(action, repo, tmp_path):
    status, stdout, _ = run_step(action, repo, tmp_path, base="0" * 40)
    assert status == 2
    assert stdout.startswith("::error title=wangp validate::cannot compare with") and "fetch-depth: 0" in stdout


def test_strict_input_fails_on_warnings(action, repo, tmp_path):
    base = git(repo, "rev-parse", "HEAD")
    write_definition(repo, "warned", definition(URL="typo"))  # W7 only
    commit(repo)
    assert run_step(action, repo, tmp_path, base=base)[0] == 0
    status, stdout, _ = run_step(action, repo, tmp_path, base=base, strict="true")
    assert status == 1 and annotations(stdout)[0].startswith("::warning file=finetunes/warned.json,")


def test_install_step_installs_from_the_action_path(action, tmp_path):
    """The install step's shell line, with pip replaced by a recorder: it installs the action's own folder, or the
    wangp-source requirement when one is given."""
    install = next(s for s in action["runs"]["steps"] if s.get("name") == "Install wangp")
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "python").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD"\n')
    (shim / "python").chmod(0o755)
    for source, expected in (("", str(REPO_ROOT)), ("wangp==0.1.0", "wangp==0.1.0")):
        record = tmp_path / "record"
        env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ['PATH']}", "RECORD": str(record),
               "GITHUB_ACTION_PATH": str(REPO_ROOT)}
        env.update({name: evaluate(value, {"inputs.wangp-source": source}) for name, value in install["env"].items()})
        subprocess.run(["bash", "-e", "-c", install["run"]], env=env, check=True, timeout=30)
        argv = record.read_text().splitlines()
        assert argv[:3] == ["-m", "pip", "install"] and argv[-1] == expected


def test_shallow_checkout_of_a_merge_commit(action, repo, tmp_path):
    """actions/checkout's default for a pull request: the merge commit alone (depth 1), the base not fetched. The
    step fetches the base and compares the trees: the pull request's changes, not the base branch's own."""
    git(repo, "checkout", "-q", "-b", "feature")
    write_definition(repo, "new_bad", definition(description=None))
    commit(repo, "pull request")
    git(repo, "checkout", "-q", "main")
    write_definition(repo, "main_only_bad", definition(architecture="no_such_arch"))
    base = commit(repo, "the base branch moves on")
    git(repo, "merge", "-q", "--no-ff", "feature", "-m", "merge")  # as refs/pull/N/merge
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth=1", f"file://{repo}", str(clone)], check=True, timeout=30)
    status, stdout, outputs = run_step(action, clone, tmp_path, base=base)
    assert status == 1 and outputs["files"] == "1"
    assert stdout.startswith("::notice title=wangp validate::no merge base")
    assert {line.split(",", 1)[0] for line in annotations(stdout)} == {"::error file=finetunes/new_bad.json"}
