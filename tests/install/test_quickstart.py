"""``make run``'s last step: ``wangp doctor --output DIR`` generates a short video with the embedded tiny random
model (the doctor's offline self-test, through generate's request, preflight and generator) and keeps it in DIR,
printing its path and the stage timings. The video is decoded by the ffmpeg binary itself, not by wangp."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, subprocess_env

pytest.importorskip("torch", reason="the quickstart generates: it needs the generate extra")
STAGES = ("download", "load", "encode", "denoise", "decode", "save")


def decoded_frames(path: Path, width: int, height: int) -> int:
    """How many gray frames of ``width`` x ``height`` the ffmpeg binary decodes from ``path``."""
    import imageio_ffmpeg

    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0",
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, timeout=60, check=True)
    assert len(raw.stdout) % (width * height) == 0, len(raw.stdout)
    return len(raw.stdout) // (width * height)


def test_doctor_output_keeps_the_self_test_video_and_prints_its_path_and_stage_timings(tmp_path):
    outputs = tmp_path / "outputs"  # a folder that does not exist yet, given relative to the working folder
    result = subprocess.run([sys.executable, "-m", "wangp_cli", "doctor", "--output", "outputs"], cwd=tmp_path,
                            capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line[:16].strip(): line[16:] for line in result.stdout.splitlines()}
    assert lines["self-test"].startswith("ok (5 frames 64x64"), lines["self-test"]
    stages = dict(re.findall(r"(\w+) ([0-9.]+) s", lines["stages"]))
    assert tuple(stages) == STAGES and all(float(value) >= 0 for value in stages.values()), lines["stages"]
    video = Path(lines["video"])
    assert video.parent == outputs.resolve() and video.suffix == ".mp4"
    assert sorted(p.name for p in outputs.iterdir()) == sorted([video.name, video.with_suffix(".json").name])
    assert decoded_frames(video, 64, 64) == 5
    sidecar = json.loads(video.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["path"] == str(video) and (sidecar["frames"], sidecar["width"]) == (5, 64)

    again = subprocess.run([sys.executable, "-m", "wangp_cli", "doctor", "--output", "outputs", "--format", "json"],
                           cwd=tmp_path, capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert again.returncode == 0, again.stderr
    test = json.loads(again.stdout)["self_test"]
    assert test["ok"] is True and tuple(test["timings"]) == STAGES
    assert Path(test["path"]).is_file() and test["path"] != str(video)  # a new name: the first one is kept
    assert len(list(outputs.glob("*.mp4"))) == 2


def test_doctor_output_needs_the_self_test(tmp_path):
    result = subprocess.run([sys.executable, "-m", "wangp_cli", "doctor", "--no-self-test", "--output", "outputs"],
                            cwd=tmp_path, capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert result.returncode == 2 and "--no-self-test" in result.stderr, result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_validates_lists_and_generates_into_outputs():
    env = {k: v for k, v in subprocess_env().items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    planned = subprocess.run(["make", "-n", "run"], cwd=REPO_ROOT, capture_output=True, text=True, env=env,
                             timeout=60)
    assert planned.returncode == 0, planned.stderr
    commands = [line.strip() for line in planned.stdout.splitlines() if "/wangp " in line]
    assert [command.split("/wangp ", 1)[1] for command in commands] == [
        "validate finetunes", "list", "doctor --output outputs"], planned.stdout


def test_doctor_output_refuses_an_existing_file_in_one_line(tmp_path):
    (tmp_path / "outputs").write_text("mine\n")
    result = subprocess.run([sys.executable, "-m", "wangp_cli", "doctor", "--output", "outputs"], cwd=tmp_path,
                            capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "error: exists:" in result.stderr and "is an existing file" in result.stderr, result.stderr
    assert (tmp_path / "outputs").read_text() == "mine\n"
