"""Jobs spread over a Ray cluster: one actor per GPU (or N CPU actors), each keeping its model loaded.

The home folder (definitions, ckpts/, outputs) must be visible at the same path on every node (a shared
file system), as for any multi-node batch job. Ray is imported only here, and only when asked for.

Each actor takes one GPU and an even share of the cluster's CPUs (torch's thread count in the actor); actors
that do not start within ``WANGP_RAY_START_TIMEOUT`` seconds (default 300) stop the run with an error.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from wangp_cli.batch.runner import BatchOptions, Planned, _base_record, pending, run_job
from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import UsageError, WangpError

START_TIMEOUT_ENV = "WANGP_RAY_START_TIMEOUT"
DEFAULT_START_TIMEOUT = 300.0
POLL_SECONDS = 10.0  # how often the job loop looks at restarting actors (a job itself may take hours)
BUSY_GRACE_SECONDS = 10.0  # how long freed resources (actors of a previous run) may take to show as available


class Worker:
    """A Ray actor: one Generator, so that consecutive jobs of one definition reuse the loaded pipeline."""

    def __init__(self, home: str, target: str, threads: int = 1):
        from wangp_cli.core.definitions import Catalog
        from wangp_cli.core.home import Home
        from wangp_cli.generate.engine import quiet_libraries
        from wangp_cli.generate.runner import Generator

        self.threads = _set_threads(threads or _node_threads())
        quiet_libraries()
        self.generator = Generator(Catalog(Home(home), target))

    def ready(self) -> dict:
        """Answered once the actor is up: where it runs and with how many threads."""
        import ray

        return {"threads": self.threads, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                "gpus": [str(gpu) for gpu in ray.get_gpu_ids()], "node": ray.get_runtime_context().get_node_id()}

    def run(self, item: Planned) -> dict:
        record = run_job(self.generator, item)
        record["threads"] = self.threads
        return record


def _node_threads() -> int:
    """An actor without a CPU reservation (more GPUs than CPUs): its node's CPUs shared by the node's GPUs."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    resources = next((node["Resources"] for node in ray.nodes() if node.get("NodeID") == node_id), {})
    cpus = resources.get("CPU") or os.cpu_count() or 1
    return max(1, int(cpus // max(resources.get("GPU", 1), 1)))


def _set_threads(threads: int) -> int:
    """torch's CPU threads in this actor (Ray sets OMP_NUM_THREADS to the actor's CPUs, 1 without any)."""
    import torch

    threads = max(1, int(threads))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)
    return torch.get_num_threads()


@dataclass(frozen=True)
class ActorPlan:
    """How many actors, and what each reserves: one GPU (or none) and ``cpus`` CPUs (0 or a fraction allowed)."""

    count: int
    gpu: bool
    cpus: float

    @property
    def options(self) -> dict:
        return {"num_gpus": 1, "num_cpus": self.cpus} if self.gpu else {"num_cpus": self.cpus}

    @property
    def threads(self) -> int:
        """torch threads per actor; 0: the actor takes its node's CPUs per GPU (no CPU reserved)."""
        if self.cpus >= 1:
            return int(self.cpus)
        return 0 if self.gpu else 1


def _hosted(nodes: list[dict], gpu: bool, cpus: float) -> int:
    """How many actors (one GPU each when ``gpu``, ``cpus`` CPUs each) the nodes can host."""
    total = 0
    for node in nodes:
        slots = [int(node.get("GPU", 0))] if gpu else []
        if cpus > 0:
            slots.append(int(node.get("CPU", 0) / cpus + 1e-9))
        total += min(slots) if slots else (1 << 30)  # CPU actors that reserve nothing fit anywhere
    return total


def _shares(cpus: float, count: int, gpu: bool) -> list[float]:
    """CPU shares to try, largest first: whole CPUs, then (CPU actors) a fraction, then none."""
    even = cpus / count
    shares = [float(share) for share in range(int(even), 0, -1)]
    if even < 1 and not gpu and even >= 1e-4:
        shares.append(math.floor(even * 1e4) / 1e4)  # Ray's resource granularity
    return shares + [0.0]


class ResourcesBusy(WangpError):
    """The cluster has the GPUs, but other work holds them now."""


def plan_actors(nodes: list[dict], available: dict, requested: int | None, jobs: int) -> ActorPlan:
    """The actors for ``jobs`` jobs on live ``nodes`` (their total resources) with ``available`` free now:
    one per GPU unless ``requested``, each with the largest whole CPU share that every actor can get
    (0 when there are more GPUs than CPUs: a GPU actor then reserves no CPU rather than waiting for one)."""
    total_gpus = int(sum(node.get("GPU", 0) for node in nodes))
    gpu = total_gpus > 0
    count = max(1, min(requested or total_gpus or 2, jobs))
    if gpu and _hosted(nodes, True, 0) < count:
        raise WangpError(f"{count} Ray actors need {count} GPUs (one each), and the cluster has {total_gpus}",
                         code="ray", hint=f"use --ray-actors {total_gpus} or fewer, or add GPU nodes")
    free_gpus = int(available.get("GPU", 0))
    if gpu and free_gpus < count:
        raise ResourcesBusy(f"{count} Ray actors need {count} free GPUs, and {free_gpus} of the cluster's "
                            f"{total_gpus} are free (other Ray work holds the rest)", code="ray",
                            hint=f"use --ray-actors {max(free_gpus, 1)}, or wait for the other jobs (ray status)")
    free_cpus = min(available.get("CPU", 0), sum(node.get("CPU", 0) for node in nodes))
    share = next(s for s in _shares(free_cpus, count, gpu) if _hosted(nodes, gpu, s) >= count)
    return ActorPlan(count, gpu, share)


def start_timeout() -> float:
    """Seconds an actor may take to start (``WANGP_RAY_START_TIMEOUT``)."""
    text = os.environ.get(START_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_START_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise UsageError(f"{START_TIMEOUT_ENV}='{text}' is not a number of seconds",
                         hint=f"e.g. {START_TIMEOUT_ENV}=600, or unset it for {DEFAULT_START_TIMEOUT:g} s")
    return seconds


def start_workers(ray, options: dict, count: int, args: tuple, timeout: float) -> list:
    """``count`` Worker actors with Ray ``options``, each answering ``ready`` within ``timeout`` seconds; a
    WangpError names those that failed or were never scheduled (and none is left running)."""
    actor_class = ray.remote(max_restarts=1, **options)(Worker)
    workers = [actor_class.remote(*args) for _ in range(count)]
    waiting = {worker.ready.remote(): index for index, worker in enumerate(workers)}
    deadline = time.monotonic() + timeout
    try:
        while waiting:
            done, _ = ray.wait(list(waiting), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                asked = _describe(options)
                late = sorted(waiting.values())
                raise WangpError(f"{len(late)} of {count} Ray actors did not start within {timeout:g} s "
                                 f"(actor{'s' if len(late) > 1 else ''} {', '.join(map(str, late))}; each asks for "
                                 f"{asked}): the cluster cannot schedule them", code="ray",
                                 hint=f"use fewer --ray-actors, free the cluster's resources (ray status), or "
                                      f"raise {START_TIMEOUT_ENV} when the actors only start slowly")
            index = waiting.pop(done[0])
            try:
                ray.get(done[0])
            except ray.exceptions.RayError as exc:
                raise WangpError(f"Ray actor {index} failed to start: {exc}", code="ray",
                                 hint="the home folder and wangp must be importable at the same path on every "
                                      "node") from None
    except BaseException:
        _kill(ray, workers)
        raise
    return workers


def _describe(options: dict) -> str:
    """Ray actor options as resources: ``1 GPU, 0 CPU``."""
    wanted = {"GPU": options.get("num_gpus", 0), "CPU": options.get("num_cpus", 1), **options.get("resources", {})}
    return ", ".join(f"{amount:g} {name}" for name, amount in wanted.items() if amount or name == "CPU")


def _kill(ray, workers) -> None:
    for worker in workers:
        try:
            ray.kill(worker)
        except Exception:  # noqa: BLE001 - an actor already gone
            pass


def _next_job(queue: list[Planned], model_key) -> Planned:
    """The first queued job of the model the worker has loaded, else the first job."""
    for position, item in enumerate(queue):
        if item.job.model_key == model_key:
            return queue.pop(position)
    return queue.pop(0)


def local_options() -> dict:
    """``ray.init`` keywords of the local instance: Ray's own CPU and GPU count, quiet, a small object store."""
    package_root = str(Path(__file__).resolve().parents[2])  # workers import wangp_cli as the driver does
    # jobs and results are small records (videos go to disk): a small object store fits any /dev/shm
    return {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR",
            "object_store_memory": 256 * 1024**2, "runtime_env": {"env_vars": {"PYTHONPATH": package_root}}}


def _init(ray, address: str | None) -> bool:
    """Connect (or start a local instance); True when this call started Ray. An initialised Ray is used as is."""
    if ray.is_initialized():
        return False
    if address in (None, "", "local"):
        kwargs = local_options()
    else:
        kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR", "address": address}
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise WangpError(f"cannot start or reach Ray at '{address or 'local'}': {exc}", code="ray",
                         hint="give the address of a running cluster (ray://host:10001 or auto), or none for a "
                              "local instance") from None
    return True


def _plan(ray, actors: int | None, jobs: int, grace: float) -> ActorPlan:
    """:func:`plan_actors` on the live cluster. Resources of actors just killed (a previous run) take a moment
    to show as free again: up to ``grace`` seconds are given for the plan to reach what the idle cluster allows."""
    deadline = time.monotonic() + grace
    while True:
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        idle = {name: sum(node.get(name, 0) for node in nodes) for name in ("CPU", "GPU")}
        best = plan_actors(nodes, idle, actors, jobs)  # raises when the cluster has too few GPUs
        try:
            plan = plan_actors(nodes, ray.available_resources(), actors, jobs)
        except ResourcesBusy:
            if time.monotonic() >= deadline:
                raise
        else:
            if plan == best or time.monotonic() >= deadline:
                return plan
        time.sleep(0.5)


def run_ray(catalog: Catalog, planned: list[Planned], options: BatchOptions, *, address: str | None = None,
            actors: int | None = None, retries: int = 1, on_result=None) -> list[dict]:
    """Run the jobs on Ray actors; a failed job is retried up to ``retries`` times (on any actor). An actor
    lost during the run is used again once Ray has restarted it, and dropped when it does not come back."""
    try:
        import ray
    except ImportError:
        raise WangpError("--ray needs the ray package", code="ray", hint="pip install 'wangp[ray]'") from None
    timeout = start_timeout()
    todo, records = pending(planned, options.force)

    def finish(record: dict) -> None:
        records.append(record)
        if on_result:
            on_result(record)

    for record in records:
        if on_result:
            on_result(record)
    if not todo:
        return records
    started = _init(ray, address)
    workers = []
    try:
        plan = _plan(ray, actors, len(todo), min(timeout, BUSY_GRACE_SECONDS))
        workers = start_workers(ray, plan.options, plan.count,
                                (str(catalog.home.root.resolve()), catalog.target, plan.threads), timeout)
        queue = list(todo)
        attempts: dict = {}
        loaded: dict = {index: None for index in range(plan.count)}
        running: dict = {}  # job ref -> (actor, job)
        restarting: dict = {}  # ready ref of a lost actor -> (actor, deadline)
        idle = list(range(plan.count))
        while queue or running:
            while idle and queue:
                index = idle.pop(0)
                item = _next_job(queue, loaded[index])
                attempts[item.job.index] = attempts.get(item.job.index, 0) + 1
                running[workers[index].run.remote(item)] = (index, item)
                loaded[index] = item.job.model_key
            if not running and not restarting:  # every actor lost for good
                for item in queue:
                    finish({**_base_record(item), "status": "failed", "attempts": attempts.get(item.job.index, 0),
                            "error": "worker lost: no Ray actor left to run it"})
                break
            soonest = min((deadline for _, deadline in restarting.values()), default=math.inf)
            wait = min(POLL_SECONDS, max(0.0, soonest - time.monotonic()))
            done, _ = ray.wait(list(running) + list(restarting), num_returns=1, timeout=wait)
            if not done:
                for ref, (index, deadline) in list(restarting.items()):
                    if time.monotonic() >= deadline:  # Ray cannot place it again (its node is gone, ...)
                        del restarting[ref]
                        _kill(ray, [workers[index]])
                continue
            (ref,) = done
            if ref in restarting:
                index, deadline = restarting.pop(ref)
                try:
                    ray.get(ref)
                    idle.append(index)
                except ray.exceptions.ActorUnavailableError:  # still restarting: ask again
                    time.sleep(0.5)
                    restarting[workers[index].ready.remote()] = (index, deadline)
                except ray.exceptions.RayError:  # no restart left
                    _kill(ray, [workers[index]])
                continue
            index, item = running.pop(ref)
            try:
                record = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # raised in the actor, which is still up
                cause = exc.cause if exc.cause is not None else exc
                record = {**_base_record(item), "status": "failed", "error": f"{type(cause).__name__}: {cause}"}
                idle.append(index)
            except ray.exceptions.RayError as exc:  # the actor died (out of memory, node lost, ...)
                record = {**_base_record(item), "status": "failed", "error": f"worker lost: {exc}"}
                loaded[index] = None
                restarting[workers[index].ready.remote()] = (index, time.monotonic() + timeout)
            else:
                idle.append(index)
            record.update(attempts=attempts[item.job.index], worker=index)
            if record["status"] == "failed" and attempts[item.job.index] <= retries:
                queue.insert(0, item)
            else:
                finish(record)
    finally:
        _kill(ray, workers)
        if started:
            ray.shutdown()
    return records
