"""The ``wangp-validate`` hook of ``.pre-commit-hooks.yaml`` through the real ``pre-commit`` tool (from PyPI).

A temporary git repository holds a commit of this project's working tree; a second one, a definitions registry,
names it in its ``.pre-commit-config.yaml`` (``repo:`` its path, ``rev:`` that commit), as a user's registry names
this project's repository. pre-commit clones the first, builds the hook's virtual environment by pip-installing it
(no extras: the light install) and runs ``wangp validate`` on the registry's ``finetunes/`` and ``defaults/`` JSON
files only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.install.install_support import HEAVY_DISTRIBUTIONS, copy_project, require_package_index, tool_env

pytest.importorskip("pre_commit", reason="pre-commit is in the test extra: pip install -e '.[test]'")

HF = "https://huggingface.co/me/my-finetune/resolve/main/"
GOOD = {"model": {"name": "My finetune", "architecture": "t2v", "description": "A registry entry",
                  "URLs": [HF + "my_finetune_bf16.safetensors", HF + "my_finetune_quanto_bf16_int8.safetensors"]},
        "seed": -1}
# E4: an architecture no WanGP release has (the hook's output must name the code and the file).
BAD = {"model": {**GOOD["model"], "architecture": "t2v_9000"}, "seed": -1}


def git(folder: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, env=tool_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def commit_all(folder: Path, message: str) -> str:
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "--no-verify", "-m", message)
    return git(folder, "rev-parse", "HEAD")


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> tuple[Path, str]:
    """A git repository holding one commit of this project's working tree: (its path, the commit)."""
    root = tmp_path_factory.mktemp("wangp-repo")
    require_package_index(root)
    folder = copy_project(root / "wangp")
    git(folder, "init", "-q", "-b", "main")
    return folder, commit_all(folder, "wangp as the hook's source")


@pytest.fixture(scope="module")
def registry(tmp_path_factory, hook_repo) -> Path:
    """A definitions registry using the hook: good definitions, and a broken JSON file the hook must not see."""
    repo, rev = hook_repo
    folder = tmp_path_factory.mktemp("registry") / "registry"
    folder.mkdir()
    git(folder, "init", "-q", "-b", "main")
    (folder / ".pre-commit-config.yaml").write_text(
        "repos:\n"
        f"  - repo: {json.dumps(str(repo))}\n"
        f"    rev: {rev}\n"
        "    hooks:\n"
        "      - id: wangp-validate\n", encoding="utf-8")
    write_json(folder / "finetunes" / "good.json", GOOD)
    write_json(folder / "defaults" / "t2v_mine.json", {**GOOD, "model": {**GOOD["model"], "name": "Mine"}})
    (folder / "tools").mkdir()
    (folder / "tools" / "package.json").write_text("{ not json", encoding="utf-8")  # outside the hook's files
    commit_all(folder, "good definitions")
    return folder


def pre_commit(folder: Path, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pre_commit", "run", "--all-files", "--color", "never"],
                          cwd=folder, capture_output=True, text=True, timeout=600,
                          env=tool_env(PRE_COMMIT_HOME=str(home)))


def hook_environments(home: Path) -> list[Path]:
    """The Python of each virtual environment pre-commit built under ``home`` (repo*/py_env-*/)."""
    return sorted(path for pattern in ("*/py_env-*/bin/python", "*/py_env-*/Scripts/python.exe")
                  for path in home.glob(pattern))


def test_the_hook_passes_good_definitions_and_fails_bad_ones_with_their_diagnostics(registry, tmp_path):
    home = tmp_path / "pre-commit-home"
    start = time.perf_counter()
    passed = pre_commit(registry, home)
    first_run = time.perf_counter() - start
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "wangp validate" in passed.stdout and "Passed" in passed.stdout, passed.stdout

    write_json(registry / "finetunes" / "bad.json", BAD)
    commit_all(registry, "a bad definition")
    start = time.perf_counter()
    failed = pre_commit(registry, home)
    second_run = time.perf_counter() - start
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output
    assert "Failed" in output and "Traceback" not in output, output
    assert "finetunes/bad.json:" in output and " E4 " in output and "t2v_9000" in output, output
    assert "good.json" not in output and "package.json" not in output, output  # only the findings, only its files
    assert "in 3 files." in output, output  # finetunes/good.json, finetunes/bad.json, defaults/t2v_mine.json
    print(f"\npre-commit: first run (hook env built) {first_run:.1f} s, second run {second_run:.1f} s")

    # pre-commit's own environment for the hook: the light install, torch nowhere in it
    pythons = hook_environments(home)
    assert len(pythons) == 1, sorted(str(p.relative_to(home)) for p in home.rglob("py_env-*"))
    listed = subprocess.run([str(pythons[0]), "-m", "pip", "list", "--format", "json"], capture_output=True,
                            text=True, env=tool_env(), timeout=120)
    assert listed.returncode == 0, listed.stderr
    names = {item["name"].lower().replace("_", "-") for item in json.loads(listed.stdout)}
    assert "wangp" in names and "typer" in names, names
    assert not names & HEAVY_DISTRIBUTIONS, names & HEAVY_DISTRIBUTIONS
    probe = subprocess.run([str(pythons[0]), "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
                           capture_output=True, text=True, env=tool_env(), timeout=60)
    assert probe.stdout.strip() == "None", probe.stdout + probe.stderr
