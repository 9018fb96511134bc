"""Regression tests for the new-user audit (issue 11), ``wangp generate`` for one video: everything that can be known
before loading a model is refused (or warned about) first, without importing torch; what is written is strict
JSON; a render is never lost at the last step. Tiny random models through the CLI, mp4s read back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import subprocess_env, invoke as wangp, strict_json, sigint_default  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.video import probe_video, read_metadata, write_video  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from test_light_imports import run_commands, stand_ins  # noqa: E402,F401 (stand_ins is a fixture)

SEQ = ["--pipeline-arg", "max_sequence_length=16"]






@pytest.fixture(scope="module")
def homes(tmp_path_factory):
    """The audit's tiny homes: T (t2v 16-bit), TQ (only a quanto int8 file), TI (i2v), TV (VACE)."""
    root = tmp_path_factory.mktemp("audit")
    t = tiny.make_home(root / "T", "t2v")
    built = {"T": t, "TQ": tiny.make_home(root / "TQ", "t2v", quantized=True, components=t.components),
             "TI": tiny.make_home(root / "TI", "i2v"), "TV": tiny.make_home(root / "TV", "vace")}
    for home in built.values():
        tiny.make_image(64, seed=1).save(home.root / "start.png")
        (home.root / "junk.mp4").write_text("not a video")
        (home.root / "junk.png").write_text("not an image")
        (home.root / "afile").write_text("hi\n")
    return built


@pytest.fixture
def bare(tmp_path):
    """A home whose definition has no file on disk: a refusal here comes before anything is read."""
    home = tmp_path / "home"
    (home / "finetunes").mkdir(parents=True)
    (home / "settings").mkdir()
    (home / "finetunes" / "mine.json").write_text(json.dumps(
        {"model": {"name": "Mine", "architecture": "t2v", "URLs": ["ckpts/mine_bf16.safetensors"]}}))
    return home


# -- rows 4, 20, 25, 46, 58: values refused before loading, messages about what was passed ------------------------

REFUSED = [
    pytest.param(["--frames", 100000001], "frames 100000001: t2v takes at most 193 frames", id="4-frames"),
    pytest.param(["--resolution", "99999984x99999984"], "at most 1920 pixels a side", id="4-resolution"),
    pytest.param(["--steps", 1000000], "steps 1000000: at most 100", id="4-steps"),
    pytest.param(["--guidance", "nan"], "setting 'guidance_scale' is NaN: not a finite number", id="20-guidance-nan"),
    pytest.param(["--guidance", "inf"], "setting 'guidance_scale' is Infinity", id="20-guidance-inf"),
    pytest.param(["--flow-shift", "nan"], "setting 'flow_shift' is NaN", id="20-flow-shift"),
    pytest.param(["--embedded-guidance", "-inf"], "setting 'embedded_guidance_scale' is -Infinity",
                 id="20-embedded-guidance"),
    pytest.param(["--pipeline-arg", "num_frames=5"], "--pipeline-arg num_frames: wangp sets it from --frames",
                 id="25-num-frames"),
    pytest.param(["--pipeline-arg", "height=32"], "--pipeline-arg height: wangp sets it from --resolution",
                 id="25-height"),
    pytest.param(["--pipeline-arg", "num_inference_steps=3"], "num_inference_steps: wangp sets it from --steps",
                 id="25-steps"),
    pytest.param(["--pipeline-arg", "guidance_scale=2"], "guidance_scale: wangp sets it", id="25-guidance"),
    pytest.param(["--pipeline-arg", "generator=1"], "generator: wangp sets it from --seed", id="25-generator"),
    pytest.param(["--pipeline-arg", "max_sequence_length=NaN"], "max_sequence_length is NaN", id="20-pipeline-arg"),
    pytest.param(["--seed", "1" + "0" * 59], "seed 100000000000... (60 digits)", id="58-long-number"),
]


@pytest.mark.parametrize("args,message", REFUSED)
def test_values_outside_the_limits_are_refused_before_loading(bare, args, message):
    result = wangp("--home", bare, "generate", "-m", "mine", "--prompt", "cat", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 2  # error + hint


@pytest.mark.parametrize("where,text,message", [
    ("settings", '{"flow_shift": Infinity}', "setting 'flow_shift' is Infinity: not a finite number"),
    ("settings", '{"seed": true}', "setting 'seed' is true, not a whole number"),
    ("settings", '{"video_length": "abc"}', "setting 'video_length' is 'abc', not a whole number"),
    ("definition", '{"guidance_scale": NaN}', "setting 'guidance_scale' is NaN"),
    ("definition", '{"slg_start_perc": 1e999}', "setting 'slg_start_perc' is Infinity"),
], ids=["20-settings-file", "58-true", "58-text", "20-definition", "20-huge-float"])
def test_bad_values_in_settings_files_and_definitions_are_refused(bare, where, text, message):
    if where == "settings":
        (bare / "settings" / "mine_settings.json").write_text(text)
    else:  # the settings object merged into the definition, the number written as Python's json writes it
        path = bare / "finetunes" / "mine.json"
        path.write_text(path.read_text()[:-1] + ", " + text[1:])
    result = wangp("--home", bare, "generate", "-m", "mine", "--prompt", "cat")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "True" not in result.stderr


def test_messages_are_about_what_was_passed(bare):
    result = wangp("--home", bare, "generate", "-m", "mine", "--last-image", "x.png")
    assert result.exit_code == 2
    assert "--last-image is only for first-last-frame models (flf2v_720p); 'mine' is t2v" in result.stderr
    assert "--image is only" not in result.stderr  # no --image was given
    result = wangp("--home", bare, "generate", "-m", "i2v", "--last-image", "x.png")
    assert "'i2v' is an image-to-video model: give --image" in result.stderr
    assert "--last-image is only for first-last-frame models" in result.stderr
    result = wangp("--home", bare, "generate", "-m", "flf2v_720p", "--image", "x.png")
    assert "'flf2v_720p' is a first-last-frame model: give --last-image" in result.stderr
    (bare / "finetunes" / "animate.json").write_text(json.dumps(
        {"model": {"name": "Animate", "architecture": "animate", "URLs": ["ckpts/x_bf16.safetensors"]}}))
    result = wangp("--home", bare, "generate", "-m", "animate")
    assert result.exit_code == 1
    assert "'animate' is not yet supported by wangp (wan; diffusers: WanAnimatePipeline)" in result.stderr
    assert "based on" not in result.stderr
    result = wangp("--home", bare, "generate", "-m", "mine", "--shard", "0/2", "--force")
    assert result.exit_code == 2 and "--shard, --force only work with --manifest" in result.stderr


# -- rows 5, 6, 54: the output is checked before loading -----------------------------------------------------------

@pytest.mark.parametrize("output,code,message", [
    ("afile", 1, "-o 'afile' is an existing file, not an .mp4 video"),
    ("clip.avi", 2, "-o 'clip.avi': wangp writes .mp4 videos"),
    ("afile/clip.mp4", 1, "'afile' is not a folder"),
    ("junk.png/x", 1, "'junk.png' is not a folder"),
    ("notes.mp4", 1, "-o 'notes.mp4' already exists and is not a video"),
    ("start.mp4", 1, "the sidecar 'start.json' already exists and is not a wangp sidecar"),
], ids=["5-existing-file", "54-avi", "6-file-in-the-way", "6-file-in-the-way-folder", "5-text-named-mp4",
        "5-foreign-sidecar"])
def test_an_output_that_cannot_be_written_is_refused_before_loading(homes, output, code, message):
    home = homes["T"].root
    (home / "notes.mp4").write_text("my notes")
    (home / "start.json").write_text('{"mine": 1}')
    before = sorted(os.listdir(home))
    result = wangp("--home", home, "generate", "-m", homes["T"].model_id, "-o", home / output, *SEQ)
    assert result.exit_code == code, result.output
    assert message.replace("'", "") in result.stderr.replace(str(home) + "/", "").replace("'", "")
    assert "load" not in result.stderr and sorted(os.listdir(home)) == before
    assert (home / "afile").read_text() == "hi\n" and (home / "notes.mp4").read_text() == "my notes"


def _read_only_run(home: Path, folder: Path, *args) -> subprocess.CompletedProcess:
    """``wangp ARGS`` in a child process that sees ``folder`` mounted read-only (a mount namespace: the mount
    never outlives the command); skipped where mounting is not allowed."""
    command = [sys.executable, "-m", "wangp_cli", "--home", str(home), *map(str, args)]
    script = (f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"')
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot mount a read-only folder here")
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *command], capture_output=True, text=True,
                          env=subprocess_env(), timeout=120)


@pytest.mark.parametrize("mode", ["single", "manifest"])
def test_a_read_only_output_folder_is_refused_before_loading(homes, tmp_path, mode):
    home = homes["T"]
    out = tmp_path / "out"
    out.mkdir()
    if mode == "single":
        args = ["generate", "-m", home.model_id, "-o", out, *SEQ]
    else:
        manifest = tmp_path / "jobs.jsonl"
        manifest.write_text(json.dumps({"id": "j", "model": home.model_id, "frames": 1}) + "\n")
        args = ["generate", "--manifest", manifest, "-o", out, *SEQ]
    started = time.perf_counter()
    result = _read_only_run(home.root, out, *args)
    assert result.returncode == 1, result.stderr
    assert f"cannot write to '{out}': read-only file system" in result.stderr
    assert "internal error" not in result.stderr and "load" not in result.stderr and "[Job" not in result.stderr
    assert os.listdir(out) == [] and time.perf_counter() - started < 60


# -- rows 47, 45: input media probed before loading ----------------------------------------------------------------

@pytest.mark.parametrize("home,args,message", [
    ("TV", ["--control-video", "junk.mp4"], "--control-video 'junk.mp4' is not a readable video (moov atom not found)"),
    ("TV", ["--control-video", "start.png", "--mask", "junk.mp4"], "--mask 'junk.mp4' is not a readable video"),
    ("TV", ["--reference-image", "junk.png"], "--reference-image 'junk.png' is not a readable image"),
    ("TV", ["--reference-image", "missing.png"], "--reference-image 'missing.png' does not exist"),
    ("TI", ["--image", "."], "--image '.' is a directory"),
    ("TI", ["--image", "fifo.png"], "--image 'fifo.png' is not a regular file"),
    ("TI", ["--image", "junk.png"], "--image 'junk.png' is not a readable image (unknown format)"),
], ids=["47-control-video", "47-mask", "47-reference", "47-missing", "45-directory", "45-fifo", "47-image"])
def test_media_files_are_probed_before_loading(homes, monkeypatch, home, args, message):
    home = homes[home]
    monkeypatch.chdir(home.root)
    if not os.path.lexists("fifo.png"):
        os.mkfifo("fifo.png")  # opening it would block: it must be refused without being opened
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--quantization", "none", "--prompt", "cat",
                   *args, *SEQ)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "ffmpeg version" not in result.stderr and len(result.stderr.splitlines()) == 2
    assert not (home.root / "outputs").exists()


# -- rows 46, 62: a single-job dry run; missing files before the seed and before torch ----------------------------

def test_a_single_job_dry_run_checks_everything_and_prints_the_plan(homes):
    home = homes["T"]
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--prompt", "a cat", "--dry-run", *SEQ)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"model        {home.model_id} (t2v_1.3B)"
    assert "64x64, 9 frames at 16 fps, 2 steps, seed random" in result.stdout
    assert lines[-1] == "ready: every check passed, nothing was loaded" and result.stderr == ""
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--dry-run", "--seed", 4, "-o",
                   home.root / "x.mp4", "--format", "json", *SEQ)
    plan = strict_json(result.stdout)
    assert plan["status"] == "valid" and plan["seed"] == 4 and plan["output"] == str(home.root / "x.mp4")
    assert plan["transformer"] == [str(home.files[0].relative_to(home.root))] and plan["download"] == []
    assert not (home.root / "outputs").exists() and not (home.root / "x.mp4").exists()
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--dry-run", "--frames", 8)
    assert result.exit_code == 2 and "4k+1" in result.stderr


def test_missing_files_are_reported_before_a_seed_is_drawn(homes, tmp_path, monkeypatch):
    home = tmp_path / "home"
    shutil.copytree(homes["T"].root, home)
    (home / homes["T"].files[0].relative_to(homes["T"].root)).unlink()
    result = wangp("--home", home, "generate", "-m", homes["T"].model_id, *SEQ)
    assert result.exit_code == 1 and "missing local files: ckpts/tiny_t2v_1.3B_bf16.safetensors" in result.stderr
    assert "seed " not in result.stderr
    (home / "finetunes" / "hub.json").write_text(json.dumps({"model": {
        "name": "Hub", "architecture": "t2v_1.3B",
        "URLs": ["https://huggingface.co/me/r/resolve/main/hub_bf16.safetensors"]}}))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = wangp("--home", home, "generate", "-m", "hub", *SEQ)
    assert result.exit_code == 1 and "HF_HUB_OFFLINE is set and files are missing" in result.stderr
    assert "seed " not in result.stderr


def test_refusals_dry_runs_and_offline_checks_do_not_import_torch(homes, stand_ins, monkeypatch):  # noqa: F811
    home = homes["T"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (home.root / "finetunes" / "hub.json").write_text(json.dumps({"model": {
        "name": "Hub", "architecture": "t2v_1.3B",
        "URLs": ["https://huggingface.co/me/r/resolve/main/hub_bf16.safetensors"]}}))
    try:
        commands = [["generate", "-m", home.model_id, "--dry-run", *SEQ],
                    ["generate", "-m", home.model_id, "--frames", "100000001"],
                    ["generate", "-m", home.model_id, "--guidance", "nan"],
                    ["generate", "-m", home.model_id, "--pipeline-arg", "num_frames=5"],
                    ["generate", "-m", home.model_id, "-o", str(home.root / "afile")],
                    ["generate", "-m", home.model_id, "-o", "clip.avi"],
                    ["generate", "-m", "hub"]]
        report = run_commands(stand_ins, home.root, commands)
    finally:
        (home.root / "finetunes" / "hub.json").unlink()
    assert report["codes"] == [0, 2, 2, 2, 1, 2, 1]
    assert report["loaded"] == [] and report["stand_in_seen"] is True
    vace = homes["TV"]
    report = run_commands(stand_ins, vace.root, [["generate", "-m", vace.model_id, "--control-video",
                                                  str(vace.root / "junk.mp4")]])
    assert report["codes"] == [2] and report["loaded"] == []


# -- row 34: a warning when the only variant is not what was asked -------------------------------------------------

def test_a_variant_other_than_the_one_asked_for_is_warned_about(homes):
    home = homes["TQ"]
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--quantization", "none", "--dtype", "fp16",
                   "--dry-run", *SEQ)
    assert result.exit_code == 0, result.output
    assert (f"warning: '{home.model_id}' has only one variant: int8 bf16 (ckpts/tiny_t2v_1.3B_quanto_bf16_int8"
            ".safetensors) is used although quantization none, dtype fp16 was asked") in result.stderr
    quiet = wangp("--home", home.root, "generate", "-m", home.model_id, "--dry-run", *SEQ)  # defaults: no warning
    assert quiet.exit_code == 0 and quiet.stderr == ""
    plain = homes["T"]
    result = wangp("--home", plain.root, "generate", "-m", plain.model_id, "--quantization", "int8", "--dry-run", *SEQ)
    assert "has only one variant: bf16" in result.stderr and "quantization int8 was asked" in result.stderr


# -- rows 19, 39, 55: what is written ------------------------------------------------------------------------------

def test_settings_too_large_for_the_mp4_keep_the_frames_and_stay_whole_in_the_sidecar(homes, tmp_path):
    home = homes["T"]
    prompt = "a cat " * 27000  # 162,000 characters
    video = tmp_path / "long.mp4"
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--prompt", prompt, "--frames", 1,
                   "--seed", 3, "-o", video, "--format", "json", *SEQ)
    assert result.exit_code == 0, result.output
    assert "more than an mp4 comment holds (120,000): the mp4 gets them with long texts shortened" in result.stderr
    record = strict_json(result.stdout)
    assert record["metadata_shortened"] is True and probe_video(video)["frames"] == 1
    embedded = read_metadata(video)
    assert embedded["seed"] == 3 and embedded["prompt"].endswith("...") and 100_000 < len(embedded["prompt"]) < 120_000
    sidecar = strict_json(video.with_suffix(".json").read_text())
    assert sidecar["settings"]["prompt"] == prompt


def test_every_json_written_is_strict(tmp_path):
    metadata = {"guidance_scale": float("nan"), "flow_shift": float("inf"), "prompt": "x\ud800"}
    path = write_video(tmp_path / "v.mp4", [tiny.make_image(32)] * 2, 16, metadata)
    with open(path, "rb") as handle:
        raw = handle.read()
    assert b"NaN" not in raw and b"Infinity" not in raw
    assert read_metadata(path) == {"guidance_scale": None, "flow_shift": None, "prompt": "x\ud800"}


def test_temporary_files_of_killed_runs_are_swept_by_the_next_run(homes, tmp_path):
    from wangp_cli.generate.video import _host_tag, sweep_temp_files

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    out.mkdir()
    host = _host_tag()
    stale = [out / f".j4.mp4.{host}-{dead.pid}-0123abcd.wangp-tmp.mp4",
             out / f".old.mp4.{dead.pid}-0123abcd.wangp-tmp.mp4"]  # an older version's name, a day old
    kept = [out / f".live.mp4.{host}-{os.getppid()}-0123abcd.wangp-tmp.mp4",  # a live process's
            out / f".other.mp4.0badf00d-{dead.pid}-0123abcd.wangp-tmp.mp4",  # another machine's, fresh
            out / "notes.txt"]
    for path in stale + kept:
        path.write_bytes(b"x" * 977)
    os.utime(stale[1], (time.time() - 2 * 86400,) * 2)
    result = wangp("--home", homes["T"].root, "generate", "-m", homes["T"].model_id, "--frames", 1, "-o", out, *SEQ)
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert sweep_temp_files(out) == []


def test_ctrl_c_during_generate_prints_one_line_and_exits_130(homes, tmp_path):
    home = homes["T"]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "wangp_cli", "--home", str(home.root), "generate", "-m", home.model_id,
               "--steps", "100", "-o", str(out), *SEQ]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=subprocess_env(), start_new_session=True,  # its own group, like a terminal job
                             preexec_fn=sigint_default)
    seen = []
    for line in child.stderr:
        seen.append(line)
        if line.startswith("load"):
            break
    os.killpg(child.pid, signal.SIGINT)  # Ctrl-C goes to the whole foreground group
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, "".join(seen) + stderr
    assert stderr == "interrupted; rerun the same command; with --manifest, finished jobs are skipped\n"
    assert stdout == "" and (not out.exists() or os.listdir(out) == [])
