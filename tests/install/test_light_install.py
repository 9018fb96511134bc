"""The light install: ``pip install <this project>`` without extras, in a fresh virtual environment.

It must run ``validate``, ``list``, ``show``, ``export-settings`` and ``download`` without torch, diffusers or
transformers installed, and tell a user who asks it to generate which extra to install (never a traceback). The
``generate`` extra's packages are checked in the wheel's metadata and resolved by pip (``--dry-run``: nothing
heavy is downloaded); the quickstart test (test_quickstart.py) generates with the full install.

One environment serves the whole module (one install, about ten seconds from a warm index).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.install.install_support import HEAVY_DISTRIBUTIONS, REPO_ROOT, copy_project, require_package_index, tool_env
from tests.servers import HttpServer, safetensors_bytes

SHIPPED = sorted((REPO_ROOT / "finetunes").glob("*.json"))
GENERATE_EXTRA = HEAVY_DISTRIBUTIONS
MISSING_EXTRA = "wangp generate needs the generation extra: pip install 'wangp[generate]'"


def bin_path(venv: Path, name: str) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin") / name


@pytest.fixture(scope="module")
def light(tmp_path_factory) -> SimpleNamespace:
    """A fresh venv with ``pip install -c constraints.txt <copy of this project>`` (no extras, not editable)."""
    root = tmp_path_factory.mktemp("light")
    require_package_index(root)
    source = copy_project(root / "wangp")  # pip builds in the source folder: never in the checkout
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = bin_path(venv, "python")
    start = time.perf_counter()
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-c", str(source / "constraints.txt"),
                                str(source)], capture_output=True, text=True, env=tool_env(), timeout=600)
    seconds = time.perf_counter() - start
    assert installed.returncode == 0, installed.stdout + installed.stderr
    print(f"\nlight install: pip install . (no extras) in {seconds:.1f} s")
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                            env=tool_env(), timeout=120, check=True)
    names = {item["name"].lower().replace("_", "-") for item in json.loads(listed.stdout)}
    return SimpleNamespace(venv=venv, python=python, wangp=bin_path(venv, "wangp"), source=source,
                           seconds=seconds, distributions=names)


@pytest.fixture(scope="module")
def light_home(tmp_path_factory) -> Path:
    """The shipped definitions, plus one whose transformer a loopback HTTP server serves."""
    home = tmp_path_factory.mktemp("light-home")
    for folder in ("finetunes", "ckpts", "settings"):
        (home / folder).mkdir()
    for path in SHIPPED:
        (home / "finetunes" / path.name).write_bytes(path.read_bytes())
    return home


def run_python(light, code: str) -> str:
    """``code`` run by the light venv's Python in its own folder (so that no checkout's egg-info is on sys.path);
    its stdout, stripped."""
    result = subprocess.run([str(light.python), "-c", code], cwd=light.venv, capture_output=True, text=True,
                            env=tool_env(), timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def wangp(light, home: Path, *args: str, **env) -> subprocess.CompletedProcess:
    """The installed ``wangp`` script of the light venv (not the checkout: no PYTHONPATH), in ``home``."""
    result = subprocess.run([str(light.wangp), *args], cwd=home, capture_output=True, text=True, timeout=120,
                            env=tool_env(HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1,localhost", **env))
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result


def test_the_light_install_has_no_heavy_package(light):
    assert {"wangp", "typer", "rich", "huggingface-hub"} <= light.distributions
    assert not light.distributions & HEAVY_DISTRIBUTIONS, light.distributions & HEAVY_DISTRIBUTIONS
    probe = run_python(light, "import importlib.util as u, json, wangp_cli; print(json.dumps({'absent': "
                       "[u.find_spec(n) is None for n in ('torch', 'diffusers', 'transformers', 'optimum')], "
                       "'at': wangp_cli.__file__}))")
    found = json.loads(probe)
    assert found["absent"] == [True] * 4
    assert Path(found["at"]).is_relative_to(light.venv)  # the installed copy, not the checkout


def test_validate_list_show_and_export_settings_run_without_torch(light, light_home):
    validated = wangp(light, light_home, "validate", "--format", "json")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    report = json.loads(validated.stdout)
    assert report["summary"]["errors"] == 0 and report["summary"]["files"] == len(SHIPPED), report["summary"]

    listed = wangp(light, light_home, "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert {row["id"] for row in json.loads(listed.stdout)["definitions"]} >= {path.stem for path in SHIPPED}

    shown = wangp(light, light_home, "show", "t2v_fusionix", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["architecture"] == "t2v"

    exported = wangp(light, light_home, "export-settings", "t2v_fusionix")
    assert exported.returncode == 0 and json.loads(exported.stdout)["num_inference_steps"] == 8, exported.stderr

    # -X importtime lists every module the interpreter imported: none of the generation stack
    timed = subprocess.run([str(light.python), "-X", "importtime", "-m", "wangp_cli", "validate"], cwd=light_home,
                           capture_output=True, text=True, env=tool_env(), timeout=120)
    assert timed.returncode == 0, timed.stderr
    modules = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in timed.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    assert {"wangp_cli", "typer"} <= modules, modules
    assert not modules & {"torch", "diffusers", "transformers", "optimum", "safetensors", "numpy"}, modules


def test_download_runs_without_torch(light, light_home, tmp_path):
    content = safetensors_bytes(64 * 1024, seed=7)
    with HttpServer({"/files/light_model_bf16.safetensors": content}) as server:
        url = server.url("/files/light_model_bf16.safetensors")
        definition = {"model": {"name": "Light", "architecture": "t2v", "description": "served on loopback",
                                "URLs": [url]}, "seed": -1}
        (light_home / "finetunes" / "t2v_light.json").write_text(json.dumps(definition, indent=4), encoding="utf-8")
        try:
            # WanGP 6's plan (July 2025) has no separate text encoder file: only the transformer is fetched; no Hub
            env = {"WANGP_TARGET": "july", "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
            planned = wangp(light, light_home, "download", "t2v_light", "--no-components", "--dry-run",
                            "--format", "json", **env)
            assert planned.returncode == 0, planned.stderr
            assert [f["dest"] for f in json.loads(planned.stdout)["files"]] == [
                "ckpts/light_model_bf16.safetensors"]
            fetched = wangp(light, light_home, "download", "t2v_light", "--no-components", **env)
            assert fetched.returncode == 0, fetched.stdout + fetched.stderr
            written = (light_home / "ckpts" / "light_model_bf16.safetensors").read_bytes()
            assert hashlib.sha256(written).hexdigest() == hashlib.sha256(content).hexdigest()
            # a shipped definition's Hub plan, offline: planned, nothing fetched
            offline = wangp(light, light_home, "download", "t2v_fusionix", "--dry-run", HF_HUB_OFFLINE="1",
                            HF_HOME=str(tmp_path / "hf"))
            assert offline.returncode == 0, offline.stderr
            assert "Wan14BT2VFusioniX_quanto_bf16_int8.safetensors" in offline.stdout
        finally:
            (light_home / "finetunes" / "t2v_light.json").unlink()


@pytest.mark.parametrize("command", [
    ["generate", "-m", "t2v_fusionix", "--prompt", "a cat"],
    ["doctor"],
    ["quantize", "--input", "ckpts/some_bf16.safetensors", "--dtype", "bf16"],
], ids=["generate", "doctor", "quantize"])
def test_generation_commands_name_the_extra_to_install(light, light_home, command):
    if command[0] == "quantize":
        (light_home / "ckpts" / "some_bf16.safetensors").write_bytes(safetensors_bytes(4096))
    result = wangp(light, light_home, *command)
    assert result.returncode == 1, result.stdout + result.stderr
    expected = MISSING_EXTRA.replace("wangp generate", f"wangp {command[0]}")
    assert f"error: missing-extra: {expected}" in result.stderr, result.stderr
    assert "is not installed" in result.stderr


def test_the_generate_extra_adds_the_generation_packages(light):
    """The wheel's metadata lists them under the extra, and pip resolves ``.[generate]`` to them (a dry run:
    nothing is downloaded but metadata)."""
    requires = json.loads(run_python(light, "import json; from importlib.metadata import requires; "
                                     "print(json.dumps(requires('wangp')))"))
    name = re.compile(r"[A-Za-z0-9._-]+")
    extra = {name.match(line)[0].lower() for line in requires if 'extra == "generate"' in line}
    base = {name.match(line)[0].lower() for line in requires if "extra ==" not in line}
    assert extra == GENERATE_EXTRA, extra
    assert not base & GENERATE_EXTRA, base
    report = light.venv.parent / "generate-report.json"
    start = time.perf_counter()
    resolved = subprocess.run([str(light.python), "-m", "pip", "install", "--dry-run", "--quiet", "--report",
                               str(report), "-c", str(light.source / "constraints.txt"), f"{light.source}[generate]"],
                              capture_output=True, text=True, env=tool_env(), timeout=600)
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    print(f"\npip install '.[generate]' --dry-run resolved in {time.perf_counter() - start:.1f} s")
    added = {item["metadata"]["name"].lower().replace("_", "-")
             for item in json.loads(report.read_text())["install"]}
    assert GENERATE_EXTRA <= added, GENERATE_EXTRA - added
    # a dry run: nothing was installed
    assert run_python(light, "import importlib.util as u; print(u.find_spec('torch'))") == "None"
