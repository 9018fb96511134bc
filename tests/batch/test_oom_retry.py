"""A CUDA out-of-memory error in a batch job: the pipeline is dropped and the job runs once more one profile
lower (gpu > offload > group > lowvram); below lowvram, or for any other error, the job just fails."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from conftest import definition, make_home, write_definition  # noqa: E402

from wangp_cli.batch.manifest import read_manifest  # noqa: E402
from wangp_cli.batch.runner import BatchOptions, plan_jobs, run_job  # noqa: E402
from wangp_cli.core.definitions import Catalog  # noqa: E402
from wangp_cli.core.errors import WangpError  # noqa: E402
from wangp_cli.core.home import Home  # noqa: E402


class FakeGenerator:
    """Stands in for runner.Generator: raises ``errors`` in turn (then succeeds), placed with ``profile``."""

    def __init__(self, profile: str, errors):
        self.placement = (profile, "cuda")
        self.errors = list(errors)
        self.profiles = []  # the profile of each request it was asked to generate
        self.closed = 0
        self.warnings = []
        self.reporter = self

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def generate(self, request):
        self.profiles.append(request.profile)
        if request.profile is not None:  # what runner.Generator places a pipeline with
            self.placement = (request.profile, "cuda")
        if self.errors:
            raise self.errors.pop(0)
        return {"timings": {"denoise": 0.1}, "peak_memory": {}, "model_reused": False, "device": "cuda",
                "profile": self.placement[0], "seed": request.seed}

    def close(self) -> None:
        self.closed += 1


def oom() -> Exception:
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def wrapped_oom() -> Exception:
    try:
        raise oom()
    except torch.OutOfMemoryError as exc:
        try:
            raise WangpError("the transformer does not fit", code="memory") from exc
        except WangpError as error:
            return error


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    root = make_home(tmp_path_factory.mktemp("oom") / "home")
    write_definition(root, "my_t2v", definition())
    return root


def planned(home, **record):
    """One planned job of a t2v definition (its request built by build_request; no files needed)."""
    manifest = home.parent / "jobs.jsonl"
    manifest.write_text(json.dumps({"id": "one", "model": "my_t2v", "prompt": "a cat", "frames": 1, **record}))
    (job,) = plan_jobs(Catalog(Home(home)), read_manifest(manifest), BatchOptions(output_dir=home / "out"),
                       files=False)
    assert job.error is None, job.error
    return job


@pytest.fixture
def item(home):
    return planned(home, seed=3)


@pytest.mark.parametrize("placed, lower", [("gpu", "offload"), ("offload", "group"), ("group", "lowvram")])
def test_an_out_of_memory_job_is_run_again_one_profile_lower_after_the_pipeline_is_dropped(item, placed, lower):
    generator = FakeGenerator(placed, [oom()])
    record = run_job(generator, item)
    assert record["status"] == "ok" and record["error"] is None, record
    assert generator.profiles == [item.request.profile, lower] and generator.closed == 1
    assert record["retried_profile"] == lower and record["profile"] == lower
    assert record["warnings"] == generator.warnings == [
        f"CUDA out of memory with profile '{placed}': retried with profile '{lower}'"]
    assert item.request.profile is None  # the job's own request is left as it was
    assert record["seed"] == 3


def test_a_wangp_error_raised_from_an_out_of_memory_error_is_retried_too(item):
    generator = FakeGenerator("gpu", [wrapped_oom()])
    record = run_job(generator, item)
    assert record["status"] == "ok" and record["retried_profile"] == "offload"
    assert generator.profiles == [None, "offload"]


@pytest.mark.parametrize("placed", ["lowvram", "cpu"])
def test_out_of_memory_below_the_lowest_profile_fails_without_a_retry(item, placed):
    generator = FakeGenerator(placed, [oom()])
    record = run_job(generator, item)
    assert record["status"] == "failed" and "CUDA out of memory" in record["error"]
    assert generator.profiles == [None] and generator.closed == 1
    assert "retried_profile" not in record and "no lower profile" in record["warnings"][0]


def test_a_retry_that_runs_out_of_memory_again_fails_and_drops_the_pipeline_again(item):
    generator = FakeGenerator("gpu", [oom(), oom()])
    record = run_job(generator, item)
    assert record["status"] == "failed" and "OutOfMemoryError" in record["error"]
    assert generator.profiles == [None, "offload"] and generator.closed == 2
    assert record["retried_profile"] == "offload"


def test_other_errors_are_not_retried(item):
    generator = FakeGenerator("gpu", [RuntimeError("shapes do not match"), ValueError("memory is fine")])
    record = run_job(generator, item)
    assert record["status"] == "failed" and record["error"] == "RuntimeError: shapes do not match"
    assert generator.profiles == [None] and generator.closed == 0 and "warnings" not in record


def test_later_jobs_of_the_model_start_at_the_lowered_profile(home):
    generator = FakeGenerator("gpu", [oom()])
    first, second = planned(home), planned(home)  # random seeds
    assert first.request.seed == -1
    assert run_job(generator, first)["retried_profile"] == "offload"
    record = run_job(generator, second)
    assert generator.profiles == [None, "offload", "offload"] and generator.closed == 1
    assert record["status"] == "ok" and record["profile"] == "offload" and "retried_profile" not in record
    assert record["warnings"] == ["profile 'offload': an earlier job of 'my_t2v' ran out of GPU memory"]
    assert record["seed"] == second.request.seed != -1  # the seed drawn for the lowered request is the job's
    assert run_job(FakeGenerator("gpu", []), planned(home)).get("profile") == "gpu"  # per generator
