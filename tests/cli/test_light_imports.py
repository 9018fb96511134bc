"""The light commands never import torch, diffusers or transformers.

The check runs in a fresh interpreter and reads ``sys.modules`` there. Stand-in packages named torch, diffusers and
transformers are put first on its path, so an import of any of them would succeed (and be seen) whether or not the
real packages are installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import subprocess_env

HEAVY = ("torch", "diffusers", "transformers")

SCRIPT = textwrap.dedent("""
    import json, sys
    from typer.testing import CliRunner
    import wangp_cli.cli
    from wangp_cli.cli import app

    home, commands = sys.argv[1], json.loads(sys.argv[2])
    runner = CliRunner()
    codes = [runner.invoke(app, ["--home", home, *command]).exit_code for command in commands]
    loaded = [name for name in {heavy} if name in sys.modules]
    import torch  # the stand-in: proves that an import would have been seen
    print(json.dumps({{"codes": codes, "loaded": loaded, "stand_in_seen": "torch" in sys.modules}}))
""").format(heavy=HEAVY)


@pytest.fixture
def stand_ins(tmp_path):
    folder = tmp_path / "stand_ins"
    for name in HEAVY:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text("__version__ = '0.0.0-stand-in'\n")
    return folder


def run_commands(stand_ins, home, commands) -> dict:
    """Run CLI commands in a fresh interpreter with the stand-ins first on its path; its report."""
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(stand_ins), env["PYTHONPATH"]])
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(home), json.dumps(commands)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize("commands", [
    [["--help"]],
    [["list"], ["list", "--format", "json"], ["list", "--architectures"]],
    [["validate"], ["validate", "--format", "json"]],
    [["show", "t2v_fusionix"], ["show", "vace_14B_fusionix", "--format", "json"]],
    [["export-settings", "t2v_fusionix"]],
    [["files"], ["files", "--format", "json"], ["gc"], ["rm", "t2v_fusionix", "--dry-run"], ["gallery", "--help"]],
    [["--help"], ["list"], ["validate"], ["show", "t2v_fusionix"], ["export-settings", "t2v_fusionix"], ["schema"]],
], ids=["help", "list", "validate", "show", "export-settings", "disk", "all"])
def test_light_commands_do_not_import_heavy_packages(stand_ins, shipped_home, commands):
    report = run_commands(stand_ins, shipped_home, commands)
    assert report["codes"] == [0] * len(commands)
    assert report["loaded"] == []
    assert report["stand_in_seen"] is True


def test_generate_refusals_and_manifest_dry_runs_do_not_import_heavy_packages(stand_ins, shipped_home):
    commands = [["generate", "--help"], ["generate", "-m", "t2v_fusionix", "--frames", "8"],
                ["generate", "-m", "i2v", "--prompt", "x"], ["generate", "-m", "t2v", "--resolution", "100x64"],
                ["doctor", "--help"]]
    manifest = shipped_home / "jobs.jsonl"
    manifest.write_text('{"model": "t2v_fusionix", "prompt": "a cat"}\n{"model": "i2v", "frames": 8}\n')
    commands.append(["generate", "--manifest", str(manifest), "--dry-run"])
    report = run_commands(stand_ins, shipped_home, commands)
    assert report["codes"] == [0, 2, 2, 2, 0, 1] and report["loaded"] == [] and report["stand_in_seen"] is True
