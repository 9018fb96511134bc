"""Jobs spread over a Ray cluster: one actor per GPU (or N CPU actors), each keeping its model loaded.

The home folder (definitions, ckpts/, outputs) must be visible at the same path on every node (a shared
file system), as for any multi-node batch job. Ray is imported only here, and only when asked for.
"""

from __future__ import annotations

from pathlib import Path

from wangp_cli.batch.runner import BatchOptions, Planned, _base_record, pending, run_job
from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import WangpError


class Worker:
    """A Ray actor: one Generator, so that consecutive jobs of one definition reuse the loaded pipeline."""

    def __init__(self, home: str, target: str):
        from wangp_cli.core.definitions import Catalog
        from wangp_cli.core.home import Home
        from wangp_cli.generate.engine import quiet_libraries
        from wangp_cli.generate.runner import Generator

        quiet_libraries()
        self.generator = Generator(Catalog(Home(home), target))

    def run(self, item: Planned) -> dict:
        return run_job(self.generator, item)


def _next_job(queue: list[Planned], model_key) -> Planned:
    """The first queued job of the model the worker has loaded, else the first job."""
    for position, item in enumerate(queue):
        if item.job.model_key == model_key:
            return queue.pop(position)
    return queue.pop(0)


def _init(ray, address: str | None, actors: int) -> bool:
    """Connect (or start a local instance); True when this call started Ray."""
    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if address in (None, "", "local"):
        package_root = str(Path(__file__).resolve().parents[2])  # workers import wangp_cli as the driver does
        # jobs and results are small records (videos go to disk): a small object store fits any /dev/shm
        kwargs.update(num_cpus=max(actors, 1), object_store_memory=256 * 1024**2,
                      runtime_env={"env_vars": {"PYTHONPATH": package_root}})
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise WangpError(f"cannot start or reach Ray at '{address or 'local'}': {exc}", code="ray",
                         hint="give the address of a running cluster (ray://host:10001 or auto), or none for a "
                              "local instance") from None
    return True


def run_ray(catalog: Catalog, planned: list[Planned], options: BatchOptions, *, address: str | None = None,
            actors: int | None = None, retries: int = 1, on_result=None) -> list[dict]:
    """Run the jobs on Ray actors; a failed job is retried up to ``retries`` times (on any actor)."""
    try:
        import ray
    except ImportError:
        raise WangpError("--ray needs the ray package", code="ray", hint="pip install 'wangp[ray]'") from None
    todo, records = pending(planned, options.force)
    for record in records:
        if on_result:
            on_result(record)
    if not todo:
        return records
    started = _init(ray, address, actors or 2)
    workers = []
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = max(1, min(actors or gpus or 2, len(todo)))
        resources = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        actor_class = ray.remote(max_restarts=1, **resources)(Worker)
        home = str(catalog.home.root.resolve())
        workers = [actor_class.remote(home, catalog.target) for _ in range(count)]
        queue = list(todo)
        attempts: dict = {}
        loaded: dict = {index: None for index in range(count)}
        running: dict = {}
        idle = list(range(count))
        while queue or running:
            while idle and queue:
                index = idle.pop(0)
                item = _next_job(queue, loaded[index])
                attempts[item.job.index] = attempts.get(item.job.index, 0) + 1
                running[workers[index].run.remote(item)] = (index, item)
                loaded[index] = item.job.model_key
            (ref,), _ = ray.wait(list(running), num_returns=1)
            index, item = running.pop(ref)
            try:
                record = ray.get(ref)
            except ray.exceptions.RayError as exc:  # the actor died (out of memory, node lost, ...)
                record = {**_base_record(item), "status": "failed", "error": f"worker lost: {exc}"}
                loaded[index] = None
            record.update(attempts=attempts[item.job.index], worker=index)
            if record["status"] == "failed" and attempts[item.job.index] <= retries:
                queue.insert(0, item)
            else:
                records.append(record)
                if on_result:
                    on_result(record)
            idle.append(index)
    finally:
        for worker in workers:
            ray.kill(worker)
        if started:
            ray.shutdown()
    return records
