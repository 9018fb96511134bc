"""Running a manifest: jobs to requests, a dry run, the serial runner (one model load per definition), results."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.batch.manifest import Job, ManifestError
from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import WangpError
from wangp_cli.core.variants import Preference
from wangp_cli.generate.request import GenerateRequest, build_request

STATUSES = ("ok", "skipped", "failed", "invalid")


@dataclass
class BatchOptions:
    """What the command line sets for every job (a record's own keys win)."""

    output_dir: Path
    preference: Preference = field(default_factory=Preference)
    force: bool = False
    profile: str | None = None
    components: Path | None = None
    pipeline_kwargs: dict = field(default_factory=dict)


@dataclass
class Planned:
    """A job with its validated request, or the reason it has none."""

    job: Job
    request: GenerateRequest | None = None
    error: str | None = None

    @property
    def output(self) -> Path | None:
        return self.request.output if self.request else None


def video_path(options: BatchOptions, job: Job) -> Path:
    return options.output_dir / f"{job.id}.mp4"


def job_request(catalog: Catalog, job: Job, options: BatchOptions) -> GenerateRequest:
    """The request of one job; raises WangpError when its settings or files are not valid."""
    if job.error:
        raise ManifestError(job.error)
    preference = Preference(job.quantization or options.preference.quantization,
                            job.dtype or options.preference.dtype)
    return build_request(catalog, job.model_id, settings=job.settings, preference=preference,
                         output=video_path(options, job), profile=options.profile, components=options.components,
                         pipeline_kwargs=options.pipeline_kwargs, **job.media)


def plan_jobs(catalog: Catalog, jobs: list[Job], options: BatchOptions) -> list[Planned]:
    """Every job checked (definition, settings, media) without loading anything."""
    planned = []
    for job in jobs:
        try:
            planned.append(Planned(job, job_request(catalog, job, options)))
        except WangpError as exc:
            planned.append(Planned(job, error=exc.message))
    return planned


def check_files(catalog: Catalog, request: GenerateRequest) -> tuple[list[str], list[str]]:
    """(missing files that can be downloaded, missing files that cannot) for a request; no network."""
    from wangp_cli.download import plan_for
    from wangp_cli.generate.runner import model_files

    files = model_files(catalog, request)
    if files.components_missing and request.components is not None:
        return [], [f"{request.components} (not a complete diffusers folder)"]
    plan = plan_for(catalog, [request.model_id], request.preference, components=files.components_missing,
                    network=False)
    return [f.dest for f in plan.missing if not f.local], [f.dest for f in plan.missing if f.local]


def dry_run(catalog: Catalog, planned: list[Planned]) -> list[dict]:
    """One record per job: valid or not, and what would be downloaded."""
    records = []
    for item in planned:
        record = _base_record(item)
        if item.error is None:
            try:
                fetchable, lost = check_files(catalog, item.request)
            except WangpError as exc:
                fetchable, lost = [], [exc.message]
            record["download"] = fetchable
            if lost:
                item.error = "missing local files: " + ", ".join(lost)
            record["exists"] = item.output.is_file()
        record["status"] = "invalid" if item.error else "valid"
        record["error"] = item.error
        records.append(record)
    return records


def wangp_settings(catalog: Catalog, item: Planned) -> dict:
    """The job as a WanGP settings file (``wgp.py --process``): its merged settings in WanGP's export format."""
    from wangp_cli.core.models import choose_transformer
    from wangp_cli.core.settings import export_settings

    request = item.request
    definition = catalog.get(request.model_id)
    filename = choose_transformer(catalog, definition, request.preference)["path"]
    settings = dict(request.settings, seed=-1) if request.random_seed else request.settings  # WanGP draws it
    return export_settings(definition, catalog, filename, settings=settings)


def export_for_wangp(catalog: Catalog, planned: list[Planned], folder: Path) -> list[dict]:
    """Write ``<folder>/<id>.json`` for every valid job; one record per job (media inputs are not part of
    WanGP's settings files: WanGP takes them from its queue files, so they are reported as left out)."""
    from wangp_cli.core.jsonio import write_json

    records = []
    for item in planned:
        record = {"id": item.job.id, "model": item.job.model_id, "status": "invalid", "error": item.error}
        if item.error is None:
            path = Path(folder) / f"{item.job.id}.json"
            write_json(path, wangp_settings(catalog, item))
            record.update(status="written", path=str(path), left_out=sorted(item.job.media))
        records.append(record)
    return records


def _base_record(item: Planned) -> dict:
    job, request = item.job, item.request
    record = {"id": job.id, "index": job.index, "line": job.line, "model": job.model_id}
    if request is not None:
        record.update(path=str(request.output), seed=request.seed, frames=request.frames,
                      steps=request.steps, resolution=f"{request.width}x{request.height}",
                      prompt=request.settings.get("prompt", ""))
    return record


def run_job(generator, item: Planned) -> dict:
    """Generate one job; never raises for a job's own failure (the record says what went wrong)."""
    record = _base_record(item)
    if item.error:
        return {**record, "status": "invalid", "error": item.error}
    started = time.perf_counter()
    try:
        result = generator.generate(item.request)
    except WangpError as exc:
        return {**record, "status": "failed", "error": exc.message, "seconds": round(time.perf_counter() - started, 3)}
    except Exception as exc:  # noqa: BLE001 - one failing job never stops the rest
        return {**record, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "seconds": round(time.perf_counter() - started, 3)}
    return {**record, "status": "ok", "error": None, "seconds": round(time.perf_counter() - started, 3),
            "timings": result["timings"], "peak_memory": result["peak_memory"], "model_reused": result["model_reused"],
            "device": result["device"]}


def pending(planned: list[Planned], force: bool) -> tuple[list[Planned], list[dict]]:
    """(jobs to run, records of jobs skipped because their video exists)."""
    todo, skipped = [], []
    for item in planned:
        if not force and item.error is None and item.output.is_file():
            skipped.append({**_base_record(item), "status": "skipped", "error": None})
        else:
            todo.append(item)
    return todo, skipped


class ResultsFile:
    """The results JSONL, one line per job as it finishes (flushed, so a killed run keeps what it did)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "w", encoding="utf-8")

    def write(self, record: dict) -> None:
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_serial(catalog: Catalog, planned: list[Planned], options: BatchOptions, *, reporter=None,
               on_result=None) -> list[dict]:
    """Run the jobs in this process, in the given (grouped) order; a model is loaded once per definition."""
    from wangp_cli.generate.runner import Generator

    todo, records = pending(planned, options.force)
    for record in records:
        if on_result:
            on_result(record)
    generator = Generator(catalog, reporter)
    try:
        for item in todo:
            record = run_job(generator, item)
            records.append(record)
            if on_result:
                on_result(record)
    finally:
        generator.close()
    return records


def prepare(catalog: Catalog, manifest: Path, options: BatchOptions,
            selected: tuple[int, int] | None = None) -> list[Planned]:
    """The manifest's jobs (or one shard's), grouped by model and checked."""
    from wangp_cli.batch.manifest import grouped, read_manifest, shard

    jobs = read_manifest(Path(manifest).resolve())
    if selected is not None:
        jobs = shard(jobs, *selected)
    return plan_jobs(catalog, grouped(jobs), options)


def results_name(selected: tuple[int, int] | None) -> str:
    return "results.jsonl" if selected is None else f"results.shard-{selected[0]}-of-{selected[1]}.jsonl"


def run_manifest(catalog: Catalog, planned: list[Planned], options: BatchOptions, results_path: Path, *,
                 ray_address: str | None = None, ray_actors: int | None = None, retries: int = 1,
                 on_result=None) -> list[dict]:
    """Run the planned jobs (here, or on Ray when ``ray_address`` is given), every record into the results file."""
    with ResultsFile(results_path) as sink:
        def record(result: dict) -> None:
            sink.write(result)
            if on_result:
                on_result(result)

        if ray_address is not None:
            from wangp_cli.batch.ray_backend import run_ray

            return run_ray(catalog, planned, options, address=ray_address, actors=ray_actors, retries=retries,
                           on_result=record)
        return run_serial(catalog, planned, options, on_result=record)


def summary(records: list[dict]) -> dict:
    counts = {status: 0 for status in STATUSES}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    return {"jobs": len(records), **counts}
