"""``wangp generate --manifest``: batch runs on tiny models, resumable, sharded, over Ray; dry runs; WanGP files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from typer.testing import CliRunner  # noqa: E402

from wangp_cli.batch.manifest import grouped, parse_shard, read_manifest, shard  # noqa: E402
from wangp_cli.cli import app  # noqa: E402
from wangp_cli.core.errors import UsageError  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.video import probe_video, read_metadata  # noqa: E402

runner = CliRunner()
SEQ = ["--pipeline-arg", "max_sequence_length=16"]


def wangp(*args, env=None):
    result = runner.invoke(app, [str(a) for a in args], env=env)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def write_manifest(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def results(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def decoded(path: Path):
    import imageio_ffmpeg
    import numpy as np

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = [np.frombuffer(raw, np.uint8) for raw in reader]
    return meta["size"], np.stack(frames)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One home with two tiny Wan t2v definitions (16-bit and int8) sharing components."""
    root = tmp_path_factory.mktemp("batch") / "home"
    first = tiny.make_home(root, "t2v", model_id="tiny_a")
    tiny.make_home(root, "t2v", model_id="tiny_b", quantized=True, seed=1, components=first.components)
    (root / "bad.png").write_bytes(b"not an image")
    return root


def base_records():
    return [
        {"id": "a1", "model": "tiny_a", "prompt": "a cat", "seed": 1, "frames": 5, "quantization": "none"},
        {"id": "b1", "model_type": "tiny_b", "prompt": "a dog", "seed": 2, "video_length": 5,
         "num_inference_steps": 2},
        {"id": "a2", "model": "tiny_a", "prompt": "a fox", "seed": 3, "frames": 5, "quantization": "none"},
        {"id": "bad-frames", "model": "tiny_a", "frames": 8, "quantization": "none"},
        {"id": "b2", "model_type": "tiny_b", "prompt": "a bird", "seed": 4, "video_length": 1},
    ]


def test_manifest_runs_every_job_loads_each_model_once_and_reports_failures(home, tmp_path):
    manifest = write_manifest(tmp_path / "jobs.jsonl", base_records())
    out = tmp_path / "out"
    result = wangp("--home", home, "generate", "--manifest", manifest, "-o", out, *SEQ)
    assert result.exit_code == 1, result.output  # one job is invalid
    records = {r["id"]: r for r in results(out / "results.jsonl")}
    assert set(records) == {"a1", "b1", "a2", "bad-frames", "b2"}
    assert records["bad-frames"]["status"] == "invalid" and "4k+1" in records["bad-frames"]["error"]
    for job_id in ("a1", "a2", "b1", "b2"):
        assert records[job_id]["status"] == "ok", records[job_id]
        assert records[job_id]["path"] == str(out / f"{job_id}.mp4")
    # grouped: the a-jobs then the b-jobs, each model loaded once
    assert [records[i]["model_reused"] for i in ("a1", "a2", "b1", "b2")] == [False, True, False, True]
    assert probe_video(out / "b2.mp4")["frames"] == 1 and probe_video(out / "a2.mp4")["frames"] == 5
    assert read_metadata(out / "b1.mp4")["prompt"] == "a dog" and read_metadata(out / "a2.mp4")["seed"] == 3
    assert "4 ok, 0 skipped, 0 failed, 1 invalid" in result.stdout


def test_a_failing_job_does_not_stop_the_others_and_a_rerun_skips_finished_jobs(home, tmp_path):
    records = [{"id": "good", "model": "tiny_a", "seed": 5, "frames": 1, "quantization": "none"},
               {"id": "broken", "model": "tiny_a", "seed": 5, "frames": 1, "quantization": "none",
                "pipeline_extra": 1, "negative_prompt": ["not", "a", "string"]},
               {"id": "good2", "model": "tiny_a", "seed": 6, "frames": 1, "quantization": "none"}]
    manifest = write_manifest(tmp_path / "jobs.jsonl", records)
    out = tmp_path / "out"
    first = wangp("--home", home, "generate", "--manifest", manifest, "-o", out, *SEQ)
    assert first.exit_code == 1
    statuses = {r["id"]: r["status"] for r in results(out / "results.jsonl")}
    assert statuses == {"good": "ok", "broken": "failed", "good2": "ok"}
    stamp = (out / "good.mp4").stat().st_mtime_ns
    second = wangp("--home", home, "generate", "--manifest", manifest, "-o", out, *SEQ)
    assert second.exit_code == 1
    statuses = {r["id"]: r["status"] for r in results(out / "results.jsonl")}
    assert statuses == {"good": "skipped", "broken": "failed", "good2": "skipped"}
    assert (out / "good.mp4").stat().st_mtime_ns == stamp
    forced = wangp("--home", home, "generate", "--manifest", manifest, "-o", out, "--force", *SEQ)
    assert {r["id"]: r["status"] for r in results(out / "results.jsonl")}["good"] == "ok"
    assert (out / "good.mp4").stat().st_mtime_ns != stamp and forced.exit_code == 1


def test_jobs_without_ids_get_stable_names_from_what_they_ask(home, tmp_path):
    manifest = write_manifest(tmp_path / "jobs.jsonl", [{"model": "tiny_a", "seed": 9, "frames": 1,
                                                         "quantization": "none"}])
    ids = [job.id for job in read_manifest(manifest)]
    assert ids == [job.id for job in read_manifest(manifest)] and ids[0].startswith("tiny_a-")
    other = write_manifest(tmp_path / "other.jsonl", [{"model": "tiny_a", "seed": 10, "frames": 1,
                                                       "quantization": "none"}])
    assert read_manifest(other)[0].id != ids[0]
    result = wangp("--home", home, "generate", "--manifest", manifest, "-o", tmp_path / "out", *SEQ)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / f"{ids[0]}.mp4").is_file()


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7])
def test_shards_partition_the_jobs_exactly(tmp_path, count):
    manifest = write_manifest(tmp_path / "jobs.jsonl", [{"id": f"j{i}", "model": "t2v"} for i in range(11)])
    jobs = read_manifest(manifest)
    parts = [shard(jobs, index, count) for index in range(count)]
    ids = [job.id for part in parts for job in part]
    assert sorted(ids) == sorted(job.id for job in jobs) and len(ids) == len(set(ids)) == 11
    assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1


def test_shard_from_slurm_and_bad_shards():
    assert parse_shard(None, {}) is None
    assert parse_shard(None, {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}) == (3, 4)
    assert parse_shard(None, {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4",
                              "SLURM_ARRAY_TASK_MIN": "2"}) == (3, 4)
    assert parse_shard("1/2", {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "2"}) == (1, 2)
    for text in ("2/2", "a/b", "1", "-1/3"):
        with pytest.raises(UsageError):
            parse_shard(text, {})


def test_shards_on_the_command_line_run_disjoint_parts(home, tmp_path):
    manifest = write_manifest(tmp_path / "jobs.jsonl", [
        {"id": f"s{i}", "model": "tiny_a", "seed": i, "frames": 1, "quantization": "none"} for i in range(5)])
    out = tmp_path / "out"
    seen = []
    for index in range(2):
        result = wangp("--home", home, "generate", "--manifest", manifest, "-o", out, "--shard", f"{index}/2", *SEQ)
        assert result.exit_code == 0, result.output
        seen.append({r["id"] for r in results(out / f"results.shard-{index}-of-2.jsonl")})
    assert seen == [{"s0", "s2", "s4"}, {"s1", "s3"}]
    env = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2"}
    result = wangp("--home", home, "generate", "--manifest", manifest, "-o", out, "--dry-run", "--format", "json",
                   *SEQ, env=env)
    assert {job["id"] for job in json.loads(result.stdout)["jobs"]} == {"s1", "s3"}


def test_grouping_keeps_first_appearance_order():
    from wangp_cli.batch.manifest import normalise

    jobs = [normalise({"id": f"j{i}", "model": m}, i, i + 1, Path(".")) for i, m in enumerate("abacb")]
    assert [j.id for j in grouped(jobs)] == ["j0", "j2", "j1", "j4", "j3"]


def test_dry_run_validates_every_job_without_loading(home, tmp_path):
    records = base_records() + [
        {"id": "nofile", "model": "i2v", "image": "missing.png"},
        {"id": "unknown", "model": "no_such_model"},
        {"id": "remote", "model": "t2v_1.3B", "prompt": "x"},
        {"model": 3},
    ]
    manifest = write_manifest(tmp_path / "jobs.jsonl", records)
    result = wangp("--home", home, "generate", "--manifest", manifest, "--dry-run", "-o", tmp_path / "out")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[-1] == "5/9 job(s) valid"
    assert any(line.startswith("[OK] remote: model=t2v_1.3B") and "downloads" in line for line in lines)
    assert any(line.startswith("[INVALID] bad-frames") and "4k+1" in line for line in lines)
    assert any(line.startswith("[INVALID] nofile") and "does not exist" in line for line in lines)
    assert any(line.startswith("[INVALID] unknown") for line in lines)
    assert any(line.startswith("[INVALID] record-9") and "no model" in line for line in lines)
    assert not (tmp_path / "out").exists()


def test_manifest_errors_are_clear(home, tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"model": "tiny_a"}\n{"model": oops}\n')
    result = wangp("--home", home, "generate", "--manifest", broken)
    assert result.exit_code == 1 and f"{broken}:2:" in result.stderr and "not valid JSON" in result.stderr
    duplicate = write_manifest(tmp_path / "dup.jsonl", [{"id": "x", "model": "tiny_a"}, {"id": "x", "model": "t"}])
    assert "repeats the job of line 1" in read_manifest(duplicate)[1].error
    result = wangp("--home", home, "generate", "--manifest", duplicate, "--prompt", "x")
    assert result.exit_code == 2 and "--prompt cannot be combined with --manifest" in result.stderr
    result = wangp("--home", home, "generate", "-m", "tiny_a", "--shard", "0/2")
    assert result.exit_code == 2 and "--shard only works with --manifest" in result.stderr
    unsafe = write_manifest(tmp_path / "unsafe.jsonl", [{"id": "../escape", "model": "tiny_a"}])
    assert "not a usable file name" in read_manifest(unsafe)[0].error


def test_exported_settings_and_wangp_records_are_manifests(home, tmp_path):
    exported = tmp_path / "exported.json"
    result = wangp("--home", home, "export-settings", "tiny_b", "-o", exported)
    assert result.exit_code == 0, result.output
    data = json.loads(exported.read_text())
    assert data["model_type"] == "tiny_b" and "quanto" in data["model_filename"]
    jobs = read_manifest(exported)
    assert len(jobs) == 1 and jobs[0].model_id == "tiny_b" and jobs[0].quantization == "int8"
    assert "model_filename" not in jobs[0].settings and "type" not in jobs[0].settings
    tiny.make_image(64).save(tmp_path / "start.png")
    record = {**data, "seed": 4, "video_length": 1, "image_start": ["start.png"]}
    job = read_manifest(write_manifest(tmp_path / "wangp.jsonl", [record]))[0]
    assert job.media["image"] == tmp_path / "start.png"  # WanGP's name, relative to the manifest
    out = tmp_path / "out"
    result = wangp("--home", home, "generate", "--manifest", exported, "-o", out, *SEQ)
    assert result.exit_code == 0, result.output
    (record,) = results(out / "results.jsonl")
    assert record["status"] == "ok" and probe_video(record["path"])["frames"] == data["video_length"]


def test_ray_with_two_cpu_actors_makes_the_same_files_as_the_serial_run(home, tmp_path):
    pytest.importorskip("ray")
    records = [r for r in base_records() if r["id"] != "bad-frames"]
    records.append({"id": "a3", "model": "tiny_a", "prompt": "a horse", "seed": 8, "frames": 5,
                    "quantization": "none"})
    manifest = write_manifest(tmp_path / "jobs.jsonl", records)
    serial, spread = tmp_path / "serial", tmp_path / "ray"
    assert wangp("--home", home, "generate", "--manifest", manifest, "-o", serial, *SEQ).exit_code == 0
    result = wangp("--home", home, "generate", "--manifest", manifest, "-o", spread, "--ray", "--ray-actors", 2,
                   "--format", "json", *SEQ)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["summary"]["ok"] == len(records)
    assert {job["worker"] for job in report["jobs"]} == {0, 1}  # both actors worked
    names = sorted(p.name for p in serial.glob("*.mp4"))
    assert names == sorted(p.name for p in spread.glob("*.mp4")) and len(names) == len(records)
    for name in names:
        size_a, frames_a = decoded(serial / name)
        size_b, frames_b = decoded(spread / name)
        assert size_a == size_b and (frames_a == frames_b).all(), name
        meta_a, meta_b = read_metadata(serial / name), read_metadata(spread / name)
        for when in ("generation_time", "creation_date", "creation_timestamp"):  # when it ran, not what
            meta_a.pop(when), meta_b.pop(when)
        assert meta_a == meta_b
    rerun = wangp("--home", home, "generate", "--manifest", manifest, "-o", spread, "--ray", "--format", "json", *SEQ)
    assert json.loads(rerun.stdout)["summary"]["skipped"] == len(records)


def test_jobs_exported_for_wangp_are_settings_files_that_read_back_as_the_same_jobs(home, tmp_path):
    from wangp_cli.batch.runner import BatchOptions, plan_jobs
    from wangp_cli.core.definitions import Catalog
    from wangp_cli.core.home import Home

    tiny.make_image(64).save(tmp_path / "ref.png")
    records = [{"id": "one", "model": "tiny_a", "prompt": "a cat", "frames": 9, "steps": 3, "seed": 5,
                "quantization": "none"},
               {"id": "two", "model": "tiny_b", "prompt": "a dog", "guidance": 4.5, "flow_shift": 3},
               {"id": "bad", "model": "tiny_a", "steps": 0}]
    manifest = write_manifest(tmp_path / "jobs.jsonl", records)
    folder = tmp_path / "wangp"
    result = wangp("--home", home, "generate", "--manifest", manifest, "--export-wangp", folder)
    assert result.exit_code == 1 and "[INVALID] bad" in result.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["one.json", "two.json"]
    one = json.loads((folder / "one.json").read_text())
    assert one["model_type"] == "tiny_a" and one["video_length"] == 9 and one["num_inference_steps"] == 3
    assert one["model_filename"].endswith("_bf16.safetensors") and "quanto" not in one["model_filename"]
    assert list(one)[-2:] == ["model_filename", "model_type"] and one["type"].startswith("WanGP v")
    two = json.loads((folder / "two.json").read_text())
    assert "quanto" in two["model_filename"] and two["guidance_scale"] == 4.5 and two["flow_shift"] == 3
    catalog = Catalog(Home(home))
    options = BatchOptions(output_dir=tmp_path / "out")
    original = {p.job.id: p.request.settings for p in plan_jobs(catalog, read_manifest(manifest), options)
                if p.request}
    assert one["seed"] == 5 and two["seed"] == -1  # a random seed stays random
    for name in ("one", "two"):
        (item,) = plan_jobs(catalog, read_manifest(folder / f"{name}.json"), options)
        back = {k: v for k, v in item.request.settings.items() if k != "seed"}
        assert back == {k: v for k, v in original[name].items() if k in back}
        assert item.request.random_seed is (name == "two")


WANGP_EXPORT = {  # what WanGP 7's "Export Settings" writes for t2v_fusionix (keys in its order)
    "prompt": "A large orange octopus is seen resting on the bottom of the ocean floor.",
    "negative_prompt": "", "resolution": "832x480", "video_length": 81, "num_inference_steps": 8, "seed": 42,
    "repeat_generation": 1, "multi_images_gen_type": 0, "guidance_scale": 1, "flow_shift": 5,
    "activated_loras": [], "loras_multipliers": "", "tea_cache_setting": 0, "tea_cache_start_step_perc": 0,
    "RIFLEx_setting": 0, "slg_switch": 0, "slg_layers": [9], "slg_start_perc": 10, "slg_end_perc": 90,
    "cfg_star_switch": 0, "cfg_zero_step": -1, "sample_solver": "unipc",
    "type": "WanGP v7.0 by DeepBeepMeep - Wan text2video FusioniX 14B", "settings_version": 2.22,
    "model_filename": "ckpts/Wan14BT2VFusioniX_quanto_bf16_int8.safetensors", "model_type": "t2v_fusionix",
}


def test_a_file_exported_by_wangp_itself_is_a_valid_job(shipped_home, tmp_path):
    path = tmp_path / "t2v_fusionix_2025-07-20-10h11m12s.json"
    path.write_text(json.dumps(WANGP_EXPORT, indent=4))
    result = wangp("--home", shipped_home, "generate", "--manifest", path, "--dry-run", "--format", "json")
    assert result.exit_code == 0, result.output
    (job,) = json.loads(result.stdout)["jobs"]
    assert job["status"] == "valid" and job["model"] == "t2v_fusionix" and job["seed"] == 42
    assert (job["frames"], job["steps"], job["resolution"]) == (81, 8, "832x480")
    assert "ckpts/Wan14BT2VFusioniX_quanto_bf16_int8.safetensors" in job["download"]


def test_ray_retries_a_failed_job_and_still_finishes_the_others(home, tmp_path):
    pytest.importorskip("ray")
    records = [{"id": "fine", "model": "tiny_a", "seed": 1, "frames": 1, "quantization": "none"},
               {"id": "broken", "model": "tiny_a", "seed": 1, "frames": 1, "quantization": "none",
                "negative_prompt": ["not", "a", "string"]}]
    manifest = write_manifest(tmp_path / "jobs.jsonl", records)
    result = wangp("--home", home, "generate", "--manifest", manifest, "-o", tmp_path / "out", "--ray",
                   "--ray-actors", 1, "--retries", 2, "--format", "json", *SEQ)
    assert result.exit_code == 1
    jobs = {job["id"]: job for job in json.loads(result.stdout)["jobs"]}
    assert jobs["broken"]["status"] == "failed" and jobs["broken"]["attempts"] == 3
    assert jobs["fine"]["status"] == "ok" and jobs["fine"]["attempts"] == 1
    assert {r["id"] for r in results(tmp_path / "out" / "results.jsonl")} == {"fine", "broken"}
