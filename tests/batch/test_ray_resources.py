"""Ray actors and the cluster's resources: more GPUs than CPUs still starts one actor per GPU, each actor gets
its CPU share as torch threads, and actors the cluster cannot host stop the run at once with a clear error."""

from __future__ import annotations

import json
import time

import pytest

from wangp_cli.batch import ray_backend
from wangp_cli.batch.ray_backend import ActorPlan, ResourcesBusy, plan_actors
from wangp_cli.core.errors import UsageError, WangpError


def node(cpus, gpus=0):
    return {"CPU": float(cpus), **({"GPU": float(gpus)} if gpus else {}), "memory": 1e10}


def free(nodes):
    return {name: sum(n.get(name, 0) for n in nodes) for name in ("CPU", "GPU")}


@pytest.mark.parametrize("nodes, requested, jobs, expected", [
    ([node(2, 4)], None, 9, ActorPlan(4, True, 0.0)),  # more GPUs than CPUs: no CPU reserved
    ([node(16, 1)], None, 9, ActorPlan(1, True, 16.0)),  # the whole machine for the one GPU
    ([node(16, 8)], None, 9, ActorPlan(8, True, 2.0)),
    ([node(16, 8)], 3, 9, ActorPlan(3, True, 5.0)),
    ([node(16, 8)], None, 2, ActorPlan(2, True, 8.0)),  # no more actors than jobs
    ([node(4, 4), node(64, 4)], None, 9, ActorPlan(8, True, 1.0)),  # every actor must get its share on its node
    ([node(2)], None, 9, ActorPlan(2, False, 1.0)),  # CPU only: two actors by default
    ([node(2)], 4, 9, ActorPlan(4, False, 0.5)),  # more CPU actors than CPUs: a fraction each
    ([node(3)], 2, 9, ActorPlan(2, False, 1.0)),
])
def test_actor_plans(nodes, requested, jobs, expected):
    assert plan_actors(nodes, free(nodes), requested, jobs) == expected


def test_threads_and_ray_options_of_a_plan():
    assert ActorPlan(4, True, 0.0).options == {"num_gpus": 1, "num_cpus": 0.0}
    assert ActorPlan(4, True, 0.0).threads == 0  # the actor shares its node's CPUs among its node's GPUs
    assert ActorPlan(1, True, 16.0).threads == 16
    assert ActorPlan(4, False, 0.5).options == {"num_cpus": 0.5} and ActorPlan(4, False, 0.5).threads == 1


def test_more_gpu_actors_than_gpus_or_than_free_gpus_is_refused():
    with pytest.raises(WangpError) as caught:
        plan_actors([node(32, 4)], free([node(32, 4)]), 5, 9)
    assert "5 Ray actors need 5 GPUs" in caught.value.message and "--ray-actors 4" in caught.value.hint
    with pytest.raises(ResourcesBusy) as caught:
        plan_actors([node(32, 4)], {"CPU": 32.0, "GPU": 1.0}, None, 9)
    assert "1 of the cluster's 4 are free" in caught.value.message and "--ray-actors 1" in caught.value.hint
    assert plan_actors([node(32, 4)], {"CPU": 8.0, "GPU": 4.0}, None, 9) == ActorPlan(4, True, 2.0)  # free CPUs


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan", "inf"])
def test_a_bad_start_timeout_is_a_usage_error(monkeypatch, value):
    monkeypatch.setenv(ray_backend.START_TIMEOUT_ENV, value)
    with pytest.raises(UsageError, match=ray_backend.START_TIMEOUT_ENV):
        ray_backend.start_timeout()


# --- a real local Ray instance with 2 CPUs and 4 (fake) GPUs -----------------------------------------------------

@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    pytest.importorskip("torch")
    assert not ray.is_initialized()
    ray.init(**ray_backend.local_options(), num_cpus=2, num_gpus=4)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    from wangp_cli.generate import tiny

    root = tmp_path_factory.mktemp("ray") / "home"
    tiny.make_home(root, "t2v", model_id="tiny_a")
    return root


def plan(home, out, count):
    """(catalog, ``count`` planned jobs of the tiny model into ``out``, options)."""
    from wangp_cli.batch.manifest import read_manifest
    from wangp_cli.batch.runner import BatchOptions, plan_jobs
    from wangp_cli.core.definitions import Catalog
    from wangp_cli.core.home import Home

    manifest = out.parent / f"{out.name}.jsonl"
    manifest.write_text("".join(json.dumps({"id": f"j{n}", "model": "tiny_a", "prompt": "a cat", "seed": n,
                                            "frames": 1, "steps": 2}) + "\n" for n in range(count)))
    catalog = Catalog(Home(home))
    options = BatchOptions(output_dir=out, pipeline_kwargs={"max_sequence_length": 16})
    return catalog, plan_jobs(catalog, read_manifest(manifest), options), options


def test_four_gpu_actors_on_two_cpus_all_start_and_share_the_jobs(ray_instance, home, tmp_path):
    catalog, planned, options = plan(home, tmp_path / "out", 4)
    records = ray_backend.run_ray(catalog, planned, options, address="local")
    assert sorted(r["id"] for r in records) == [f"j{n}" for n in range(4)]
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    assert {r["worker"] for r in records} == {0, 1, 2, 3}  # one actor per fake GPU, every one of them worked
    assert all(r["threads"] == 1 for r in records)  # 2 CPUs for 4 GPUs: at least one thread each
    assert all((tmp_path / "out" / f"{r['id']}.mp4").is_file() for r in records)
    assert ray_instance.is_initialized()  # an initialised Ray is used, not shut down


def test_more_actors_than_gpus_fail_within_seconds(ray_instance, home, tmp_path):
    catalog, planned, options = plan(home, tmp_path / "out", 6)
    start = time.monotonic()
    with pytest.raises(WangpError) as caught:
        ray_backend.run_ray(catalog, planned, options, address="local", actors=5)
    assert time.monotonic() - start < 5
    assert caught.value.code == "ray" and "5 Ray actors need 5 GPUs" in caught.value.message
    assert "--ray-actors 4 or fewer" in caught.value.hint


def test_actors_the_cluster_cannot_schedule_are_named_after_the_start_timeout(ray_instance, home):
    from wangp_cli.core.registry import DEFAULT_TARGET

    options = {"num_gpus": 1, "num_cpus": 0, "resources": {"a_resource_no_node_has": 1}}
    start = time.monotonic()
    with pytest.raises(WangpError) as caught:
        ray_backend.start_workers(ray_instance, options, 2, (str(home), DEFAULT_TARGET, 1), 2.0)
    assert time.monotonic() - start < 10
    message = caught.value.message
    assert message.startswith("2 of 2 Ray actors did not start within 2 s (actors 0, 1; each asks for 1 GPU, ")
    assert "1 a_resource_no_node_has" in message and ray_backend.START_TIMEOUT_ENV in caught.value.hint
    time.sleep(0.5)
    assert ray_instance.available_resources().get("GPU") == 4  # the pending actors were removed


class ProcessKiller:
    """A job's request that ends the actor's process when the generator starts on it (as an OOM kill would):
    the first time so that Ray restarts the actor, the second time for good."""

    def __init__(self, output, marker):
        self.output, self.seed, self.frames, self.steps, self.width, self.height = output, 1, 1, 2, 64, 64
        self.settings, self.marker, self.model_id, self.profile = {"prompt": "dies"}, marker, "tiny_a", None

    def draw_seed(self):
        import os

        import ray

        if self.marker.exists():
            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
            time.sleep(60)
        self.marker.touch()
        os._exit(1)


def test_one_actor_gets_every_cpu_and_a_lost_actor_is_restarted_then_dropped(ray_instance, home, tmp_path):
    import sys

    from ray import cloudpickle

    from wangp_cli.batch.runner import Planned

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import the test module
    catalog, planned, options = plan(home, tmp_path / "out", 3)
    planned[1] = Planned(planned[1].job, ProcessKiller(tmp_path / "out" / "j1.mp4", tmp_path / "died"))
    start = time.monotonic()
    records = {r["id"]: r for r in ray_backend.run_ray(catalog, planned, options, address="local", actors=1,
                                                        retries=1)}
    assert time.monotonic() - start < 90
    assert records["j0"]["status"] == "ok" and records["j0"]["worker"] == 0
    assert records["j0"]["threads"] == 2  # both CPUs of the instance; Ray alone gives a GPU actor 1 thread
    assert records["j1"]["status"] == "failed" and records["j1"]["error"].startswith("worker lost")
    assert records["j1"]["attempts"] == 2  # the restarted actor took it again, and died for good
    assert records["j2"]["status"] == "failed" and "no Ray actor left" in records["j2"]["error"]
