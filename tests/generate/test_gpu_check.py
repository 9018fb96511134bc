"""``bench/gpu_check.py --dry-run`` (the GPU check's plumbing, on the CPU), the suite's CPU mode, and a tiny t2v
request on CUDA against the CPU (marked ``gpu``: runs with ``WANGP_TEST_GPU=1`` on a CUDA machine)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import GPU_TESTS, HIDDEN_GPUS, REPO_ROOT, strict_json, subprocess_env

#: The CUDA frames against the CPU ones (frames in [0, 1]); the same as bench/gpu_check.py's P1.
TOLERANCE = {"max": 0.05, "mean": 0.005}
CHECKS = ["P0", "P1", "P2", "P2a", "P2c", "P3", "P4", "P5", "compile"]


@pytest.fixture(scope="module")
def dry_run():
    result = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "gpu_check.py"), "--dry-run"],
                            capture_output=True, text=True, timeout=120, env=subprocess_env(), cwd=REPO_ROOT)
    lines = [strict_json(line) for line in result.stdout.splitlines()]  # every line is strict JSON
    return result, lines


def test_the_dry_run_prints_a_json_line_for_every_check_and_the_summary_last(dry_run):
    result, lines = dry_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines[0]["line"] == "start" and lines[0]["plan"] == CHECKS and lines[0]["dry_run"] is True
    assert lines[-1]["line"] == "summary" and [line["line"] for line in lines].count("summary") == 1
    checks = {line["check"]: line for line in lines if line["line"] == "check"}
    assert list(checks) == CHECKS  # in the plan's order, each once
    for line in checks.values():
        assert line["status"] in ("ok", "skipped"), line
        assert line["status"] == "ok" or line["reason"]
    assert lines[-1]["checks"] == {name: line["status"] for name, line in checks.items()}
    assert lines[-1]["status"] == "ok" and lines[-1]["device"] == "cpu"
    cases = [line for line in lines if line["line"] == "case"]
    assert all(case["status"] in ("ok", "skipped") for case in cases), [c for c in cases if c["status"] != "ok"]
    assert all(case["reason"] for case in cases if case["status"] == "skipped")
    # each case line comes before its check's line
    order = [(line["check"], line["line"]) for line in lines[1:-1]]
    for name in CHECKS:
        seen = [kind for check, kind in order if check == name]
        assert seen[-1] == "check" and "check" not in seen[:-1]


def test_the_dry_run_runs_each_check_at_tiny_size_and_skips_only_cuda_parts(dry_run):
    _, lines = dry_run
    cases = {(line["check"], line["case"]): line for line in lines if line["line"] == "case"}
    skipped = {key: line["reason"] for key, line in cases.items() if line["status"] == "skipped"}
    assert skipped[("P1", "t2v/16-bit/gpu")].startswith("CUDA only")
    assert skipped[("P4", "bf16/group")].startswith("CUDA only")
    assert {("P2", f"{w}/{p}") for w, p in (("bf16", "gpu"), ("bf16", "offload"), ("bf16", "group"),
                                             ("int8", "gpu"), ("int8", "lowvram"))} <= set(skipped)
    # the CPU reference of P1 and its comparison (the CPU against itself: identical)
    assert cases[("P1", "t2v/16-bit/cpu")]["shape"] == [9, 64, 64, 3]
    repeat = cases[("P1", "t2v/16-bit/cpu-repeat")]
    assert repeat["max_abs"] == 0 and repeat["mean_abs"] == 0 and repeat["tolerance"] == TOLERANCE
    # P2: latent output (no VAE decode): 16 channels, (5 - 1) / 4 + 1 latent frames, 64 / 8 pixels a side
    for weights in ("bf16", "int8"):
        run = cases[("P2", f"{weights}/cpu")]
        assert run["output_shape"] == [16, 2, 8, 8] and run["finite"] is True
        assert run["s_per_step"] > 0 and len(run["step_seconds"]) == 2
        assert run["memory"]["ru_maxrss_bytes"] > 0 and run["load_s"] > 0
    # P2a: native SDPA ran; P2c: MagCache with multiplier 2 computed fewer blocks than the uncached run
    assert cases[("P2a", "sdpa")]["backend"] == "native"
    off, on = cases[("P2c", "off")], cases[("P2c", "mag x2")]
    assert off["last_block_forwards"] == 2 * 4  # 4 steps, CFG: two transformer calls a step
    assert on["last_block_forwards"] < off["last_block_forwards"] and on["computed_share"] < 1
    # P3: the VAE decodes (T - 1) * 4 + 1 frames at 8x the latent size, untiled and in 2 x 2 tiles
    for tiled in ("untiled", "tiled"):
        assert cases[("P3", f"tiny/{tiled}")]["video"] == [1, 3, 5, 64, 64]
    # P4: the in-memory transformer through build_pipeline -> apply_profile -> run, 16-bit and quanto int8
    assert cases[("P4", "bf16/cpu")]["output_shape"] == cases[("P4", "int8/cpu")]["output_shape"] == [16, 2, 8, 8]
    # P5: both jobs on real Ray actors
    assert [job["status"] for job in cases[("P5", "2 tiny jobs")]["jobs"]] == ["ok", "ok"]


def test_a_bad_check_name_is_a_usage_error_before_any_work():
    result = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "gpu_check.py"), "--only", "P9"],
                            capture_output=True, text=True, timeout=60, env=subprocess_env(), cwd=REPO_ROOT)
    assert result.returncode == 2 and "unknown check(s) P9" in result.stderr and result.stdout == ""


def test_a_run_past_its_budget_still_ends_with_the_summary_line():
    result = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "gpu_check.py"), "--dry-run", "--only",
                             "P0,P1", "--budget", "1", "--grace", "0"],
                            capture_output=True, text=True, timeout=120, env=subprocess_env(), cwd=REPO_ROOT)
    lines = [strict_json(line) for line in result.stdout.splitlines()]
    assert result.returncode == 3, result.stderr[-2000:]
    assert lines[0]["line"] == "start" and lines[-1]["line"] == "summary"
    assert lines[-1]["status"] == "timeout" and lines[-1]["running"] in ("P0", "P1")
    assert lines[-1]["failed"] == [lines[-1]["running"]]


@pytest.mark.skipif(GPU_TESTS, reason="WANGP_TEST_GPU=1 leaves CUDA visible")
def test_the_cpu_suite_hides_cuda_from_torch_and_from_child_processes():
    torch = pytest.importorskip("torch")
    assert not torch.cuda.is_available()
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"],
                           capture_output=True, text=True, timeout=60, env=subprocess_env())
    assert child.stdout.strip() == os.environ["CUDA_VISIBLE_DEVICES"] == HIDDEN_GPUS  # CLI children run on the CPU


@pytest.mark.gpu
def test_a_tiny_t2v_request_on_cuda_matches_the_cpu_within_tolerance(tmp_path):
    import numpy as np

    from wangp_cli.core.definitions import Catalog
    from wangp_cli.core.home import Home
    from wangp_cli.generate import tiny
    from wangp_cli.generate.request import build_request
    from wangp_cli.generate.runner import Generator

    home = tiny.make_home(tmp_path / "home", "t2v")
    catalog = Catalog(Home(home.root))
    frames = {}
    for profile in ("cpu", "gpu"):
        request = build_request(catalog, home.model_id, {"seed": 11}, preference=home.preference, profile=profile,
                                pipeline_kwargs=home.pipeline_kwargs)
        generator = Generator(catalog)
        try:
            result = generator.render(request).result
        finally:
            generator.close()
        assert result.device == ("cpu" if profile == "cpu" else "cuda") and result.profile == profile
        frames[profile] = result.frames
    assert frames["gpu"].shape == frames["cpu"].shape == (9, 64, 64, 3)
    assert np.isfinite(frames["gpu"]).all() and frames["cpu"].std() > 0.01
    diff = np.abs(frames["gpu"].astype(np.float64) - frames["cpu"])
    assert diff.max() <= TOLERANCE["max"] and diff.mean() <= TOLERANCE["mean"], (diff.max(), diff.mean())
