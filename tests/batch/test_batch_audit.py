"""Regression tests for the new-user audit (issue 11), ``wangp generate --manifest``: the checks of a single video
per job, results that are appended and never truncated, a results file that never replaces another file, Slurm
variables parsed with a clear error, warnings on unknown keys, strict JSON. Tiny random models through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from conftest import invoke as wangp, strict_json  # noqa: E402
from wangp_cli.batch.manifest import parse_shard  # noqa: E402
from wangp_cli.batch.runner import ResultsFile  # noqa: E402
from wangp_cli.core.errors import UsageError  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.video import probe_video, read_metadata  # noqa: E402

SEQ = ["--pipeline-arg", "max_sequence_length=16"]






def write_manifest(path: Path, records) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def results(path: Path) -> list[dict]:
    return [strict_json(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tiny.make_home(tmp_path_factory.mktemp("batch-audit") / "T", "t2v")
    (home.root / "junk.mp4").write_text("not a video")
    return home


# -- row 11: Slurm's variables --------------------------------------------------------------------------------------

@pytest.mark.parametrize("environ,message", [
    ({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"}, "SLURM_ARRAY_TASK_ID 'x' is not a number"),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "two"}, "SLURM_ARRAY_TASK_COUNT 'two' is not a number"),
    ({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": ""},
     "SLURM_ARRAY_TASK_MIN '' is not a number"),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "2"}, "SLURM_ARRAY_TASK_ID 7 is outside the array (0..1"),
    ({"SLURM_ARRAY_TASK_ID": "-1", "SLURM_ARRAY_TASK_COUNT": "2"}, "SLURM_ARRAY_TASK_ID '-1' is not a number"),
], ids=["id", "count", "min", "outside", "negative"])
def test_slurm_variables_that_are_not_numbers_are_a_clear_usage_error(home, tmp_path, environ, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_shard(None, environ)
    manifest = write_manifest(tmp_path / "jobs.jsonl", [{"model": home.model_id}])
    result = wangp("--home", home.root, "generate", "--manifest", manifest, "--dry-run", env=environ)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "internal error" not in result.stderr


# -- row 13: --results never replaces another file ------------------------------------------------------------------

@pytest.mark.parametrize("target,message", [
    ("manifest", "is the manifest"),
    ("definition", "is in finetunes/, where the home keeps its definitions"),
    ("new-in-finetunes", "is in finetunes/"),
    ("notes", "already exists and is not a results file"),
    ("folder", "is a directory"),
], ids=["manifest", "definition", "new-file-in-finetunes", "other-file", "folder"])
def test_results_that_would_replace_another_file_are_refused(home, tmp_path, target, message):
    manifest = write_manifest(tmp_path / "jobs.jsonl", [{"id": "j", "model": home.model_id, "frames": 1}])
    (tmp_path / "notes.txt").write_text("my notes\n")
    (tmp_path / "folder").mkdir()
    path = {"manifest": manifest, "definition": home.root / "finetunes" / f"{home.model_id}.json",
            "new-in-finetunes": home.root / "finetunes" / "results.jsonl", "notes": tmp_path / "notes.txt",
            "folder": tmp_path / "folder"}[target]
    before = {p: p.read_bytes() for p in (manifest, home.root / "finetunes" / f"{home.model_id}.json",
                                           tmp_path / "notes.txt")}
    result = wangp("--home", home.root, "generate", "--manifest", manifest, "--results", path, "-o",
                   tmp_path / "out", *SEQ)
    assert result.exit_code == 1, result.output
    assert message in result.stderr and "[Job" not in result.stderr
    assert {p: p.read_bytes() for p in before} == before
    assert not (home.root / "finetunes" / "results.jsonl").exists() and not (tmp_path / "out").exists()


# -- rows 14, 24, 19: results appended across runs, the seed of a skipped job from its sidecar --------------------

def test_results_are_appended_across_runs_and_skipped_jobs_keep_their_seed(home, tmp_path):
    manifest = write_manifest(tmp_path / "jobs.jsonl", [
        {"id": "rnd", "model": home.model_id, "prompt": "a cat", "seed": -1, "frames": 1},
        {"id": "fixed", "model": home.model_id, "prompt": "a dog", "seed": 5, "frames": 1}])
    out = tmp_path / "out"
    first = wangp("--home", home.root, "generate", "--manifest", manifest, "-o", out, *SEQ)
    assert first.exit_code == 0, first.output
    (rnd, fixed) = results(out / "results.jsonl")
    assert rnd["status"] == fixed["status"] == "ok" and fixed["seed"] == 5
    drawn = rnd["seed"]
    assert isinstance(drawn, int) and read_metadata(out / "rnd.mp4")["seed"] == drawn
    with open(out / "results.jsonl", "a") as handle:
        handle.write('{"id": "rnd", "status": "ok", "seco')  # a run killed in the middle of a line
    second = wangp("--home", home.root, "generate", "--manifest", manifest, "-o", out, "--format", "json", *SEQ)
    assert second.exit_code == 0, second.output
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 5 and lines[2] == '{"id": "rnd", "status": "ok", "seco'
    earlier, after = [strict_json(line) for line in lines[:2]], [strict_json(line) for line in lines[3:]]
    assert earlier == [rnd, fixed]  # the first run's records, timings and seeds, stay
    assert [r["status"] for r in after] == ["skipped", "skipped"]
    assert after[0]["seed"] == drawn and after[1]["seed"] == 5  # the seed the video was made with
    assert strict_json(second.stdout)["jobs"][0]["seed"] == drawn
    (out / "rnd.json").unlink()  # without its sidecar, the seed comes from the mp4's metadata
    third = wangp("--home", home.root, "generate", "--manifest", manifest, "-o", out, "--format", "json", *SEQ)
    assert strict_json(third.stdout)["jobs"][0]["seed"] == drawn


def test_a_random_seed_is_not_drawn_before_the_job_runs(home, tmp_path):
    manifest = write_manifest(tmp_path / "jobs.jsonl", [{"id": "rnd", "model": home.model_id, "seed": -1}])
    result = wangp("--home", home.root, "generate", "--manifest", manifest, "--dry-run", "--format", "json",
                   "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert strict_json(result.stdout)["jobs"][0]["seed"] is None


def test_results_lines_and_wangp_exports_are_strict_json(home, tmp_path):
    sink = ResultsFile(tmp_path / "r.jsonl")
    sink.write({"id": "x", "status": "failed", "value": float("nan"), "text": "\ud800"})
    sink.close()
    assert results(tmp_path / "r.jsonl") == [{"id": "x", "status": "failed", "value": None, "text": "\ud800"}]
    manifest = write_manifest(tmp_path / "jobs.jsonl", ['{"id": "nan", "model": "%s", "guidance": NaN}'
                                                        % home.model_id,
                                                        {"id": "fine", "model": home.model_id, "guidance": 4.5}])
    folder = tmp_path / "wangp"
    result = wangp("--home", home.root, "generate", "--manifest", manifest, "--export-wangp", folder, "-f", "json")
    assert result.exit_code == 1
    jobs = {job["id"]: job for job in strict_json(result.stdout)["jobs"]}
    assert jobs["nan"]["status"] == "invalid" and "'guidance_scale' is NaN" in jobs["nan"]["error"]
    assert sorted(os.listdir(folder)) == ["fine.json"]
    assert strict_json((folder / "fine.json").read_text())["guidance_scale"] == 4.5


# -- rows 4, 20, 25, 47, 50, 58: each job checked as a single video, before anything loads -------------------------

def test_every_job_gets_the_checks_of_a_single_video(home, tmp_path):
    manifest = write_manifest(tmp_path / "jobs.jsonl", [
        {"id": "frames", "model": home.model_id, "frames": 100000001},
        {"id": "nan", "model": home.model_id, "flow_shift": "NaN"},
        '{"id": "inf", "model": "%s", "guidance": Infinity}' % home.model_id,
        {"id": "junk", "model": home.model_id, "control_video": "junk.mp4"},
        {"id": "seed", "model": home.model_id, "seed": True},
        {"id": "big", "model": home.model_id, "seed": 10 ** 80},
        {"id": "typo", "model": home.model_id, "framez": 5, "video_lenght": 5},
    ])
    result = wangp("--home", home.root, "generate", "--manifest", manifest, "--dry-run", "-o", tmp_path / "out")
    assert result.exit_code == 1
    lines = {line.split(":")[0].split()[-1]: line for line in result.stdout.splitlines()[:-1]}
    assert "t2v_1.3B takes at most 193 frames" in lines["frames"]
    assert "setting 'flow_shift' is 'NaN', not a finite number" in lines["nan"]
    assert "setting 'guidance_scale' is Infinity: not a finite number" in lines["inf"]
    assert "--control-video" in lines["junk"] and "Vace" in lines["junk"]
    assert "setting 'seed' is true, not a whole number" in lines["seed"]
    assert "seed 100000000000... (81 digits)" in lines["big"]
    assert lines["typo"].startswith("[OK] typo")
    assert ("typo (line 7): 'framez' is neither a manifest key nor a WanGP setting (did you mean 'frames'?); "
            "it has no effect") in result.stderr
    assert "'video_lenght' is neither a manifest key nor a WanGP setting (did you mean 'video_length'?)" \
        in result.stderr
    assert result.stdout.splitlines()[-1] == "1/7 job(s) valid"
    assert not (tmp_path / "out").exists()
    report = strict_json(wangp("--home", home.root, "generate", "--manifest", manifest, "--dry-run", "-f", "json",
                               "-o", tmp_path / "out").stdout)
    assert len(next(job for job in report["jobs"] if job["id"] == "typo")["warnings"]) == 2
    managed = wangp("--home", home.root, "generate", "--manifest", manifest, "--dry-run", "--pipeline-arg",
                    "num_frames=5", "-o", tmp_path / "out")
    assert managed.stdout.splitlines()[-1] == "0/7 job(s) valid"
    assert "--pipeline-arg num_frames: wangp sets it from --frames" in managed.stdout


def test_a_vace_control_video_that_cannot_be_read_is_invalid_before_loading(tmp_path):
    vace = tiny.make_home(tmp_path / "TV", "vace")
    (tmp_path / "junk.mp4").write_text("not a video")
    manifest = write_manifest(tmp_path / "jobs.jsonl", [{"id": "v", "model": vace.model_id,
                                                         "quantization": "none", "control_video": "junk.mp4"}])
    result = wangp("--home", vace.root, "generate", "--manifest", manifest, "-o", tmp_path / "out", "-f", "json")
    assert result.exit_code == 1
    (job,) = strict_json(result.stdout)["jobs"]
    assert job["status"] == "invalid" and job["error"] == (f"--control-video '{tmp_path / 'junk.mp4'}' is not a "
                                                           "readable video (moov atom not found)")
    assert "ffmpeg version" not in result.output


# -- rows 6, 39, 55: the run itself --------------------------------------------------------------------------------

def test_an_output_folder_that_cannot_be_created_is_refused_before_any_job(home, tmp_path):
    (tmp_path / "afile").write_text("hi\n")
    manifest = write_manifest(tmp_path / "jobs.jsonl", [{"id": "j", "model": home.model_id, "frames": 1}])
    for dry in ([], ["--dry-run"]):
        result = wangp("--home", home.root, "generate", "--manifest", manifest, "-o", tmp_path / "afile" / "out",
                       *dry, *SEQ)
        assert result.exit_code == 1, result.output
        assert "is not a folder" in result.stderr and "[Job" not in result.stderr and result.stdout == ""
    assert (tmp_path / "afile").read_text() == "hi\n"


def test_a_prompt_too_long_for_the_mp4_keeps_the_frames(home, tmp_path):
    prompt = "a cat " * 27000
    manifest = write_manifest(tmp_path / "jobs.jsonl", [{"id": "long", "model": home.model_id, "prompt": prompt,
                                                         "seed": 1, "frames": 1}])
    out = tmp_path / "out"
    dry = wangp("--home", home.root, "generate", "--manifest", manifest, "--dry-run", "-o", out)
    assert dry.exit_code == 0 and "long (line 1): the settings take 162," in dry.stderr
    result = wangp("--home", home.root, "generate", "--manifest", manifest, "-o", out, *SEQ)
    assert result.exit_code == 0, result.output
    (record,) = results(out / "results.jsonl")
    assert record["status"] == "ok" and probe_video(out / "long.mp4")["frames"] == 1
    assert read_metadata(out / "long.mp4")["prompt"].endswith("...")
    sidecar = strict_json((out / "long.json").read_text())
    assert sidecar["settings"]["prompt"] == prompt and sidecar["metadata_shortened"] is True


def test_a_killed_runs_temporary_video_is_swept_by_the_next_run(home, tmp_path):
    from wangp_cli.generate.video import _host_tag

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    out.mkdir()
    left = out / f".j4.mp4.{_host_tag()}-{dead.pid}-0123abcd.wangp-tmp.mp4"
    left.write_bytes(b"x" * 977)
    manifest = write_manifest(tmp_path / "jobs.jsonl", [{"id": "j4", "model": home.model_id, "frames": 1}])
    started = time.time()
    result = wangp("--home", home.root, "generate", "--manifest", manifest, "-o", out, *SEQ)
    assert result.exit_code == 0, result.output
    assert not left.exists() and sorted(os.listdir(out)) == ["j4.json", "j4.mp4", "results.jsonl"]
    assert time.time() - started < 120
