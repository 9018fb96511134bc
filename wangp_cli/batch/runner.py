"""Running a manifest: jobs to requests, a dry run, the serial runner (one model load per definition), results."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.batch.manifest import Job, ManifestError
from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import WangpError
from wangp_cli.core.jsonio import json_text
from wangp_cli.core.outputs import OutputError, check_folder_writable, check_output_file
from wangp_cli.core.variants import Preference
from wangp_cli.generate.request import GenerateRequest, build_request
from wangp_cli.generate.runner import Preflight, preflight

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
    asked: tuple[str, ...] = ()  # preference fields set on the command line ("quantization", "dtype")
    attention: str = "auto"
    compile: bool = False
    image_format: str | None = None  # --image-format: image jobs without their own 'image_format'
    no_audio: bool = False  # --no-audio: jobs without their own 'no_audio'


@dataclass
class Planned:
    """A job with its checked request (and what the checks found), or the reason it has none."""

    job: Job
    request: GenerateRequest | None = None
    error: str | None = None
    checked: Preflight | None = None

    @property
    def output(self) -> Path | None:
        return self.request.output if self.request else None

    @property
    def warnings(self) -> list[str]:
        return self.job.warnings + (self.checked.warnings if self.checked else [])


def video_path(options: BatchOptions, job: Job, suffix: str = ".mp4") -> Path:
    """``<output>/<id>.mp4`` (an image job's: ``<id>.png``, ``.jpg``, ``.webp``)."""
    return options.output_dir / f"{job.id}{suffix}"


def job_request(catalog: Catalog, job: Job, options: BatchOptions) -> GenerateRequest:
    """The request of one job; raises WangpError when its settings or files are not valid."""
    if job.error:
        raise ManifestError(job.error)
    preference = Preference(job.quantization or options.preference.quantization,
                            job.dtype or options.preference.dtype)
    asked = set(options.asked) | {name for name in ("quantization", "dtype") if getattr(job, name)}
    from wangp_cli.generate.runner import media_suffix

    request = build_request(catalog, job.model_id, settings=job.settings, preference=preference,
                            output=None, profile=options.profile, components=options.components,
                            pipeline_kwargs=options.pipeline_kwargs, asked=tuple(sorted(asked)),
                            attention=options.attention, compile=options.compile, image_format=job.image_format,
                            no_audio=options.no_audio if job.no_audio is None else job.no_audio, **job.media)
    if request.media == "image" and request.image_format is None:
        request.image_format = options.image_format  # the command line's, for image jobs only
    request.output = video_path(options, job, media_suffix(request))
    return request


def plan_jobs(catalog: Catalog, jobs: list[Job], options: BatchOptions, *, files: bool = True) -> list[Planned]:
    """Every job checked (definition, settings, media, and with ``files`` the model files and the output)
    without loading anything: the checks of a single video, so that the dry run and the run agree."""
    planned = []
    for job in jobs:
        try:
            request = job_request(catalog, job, options)
            planned.append(Planned(job, request, checked=preflight(catalog, request) if files else None))
        except WangpError as exc:
            planned.append(Planned(job, error=exc.message))
    return planned


def _is_results_file(path: Path) -> bool:
    """An empty file, or JSON Lines whose first record has an ``id`` and a ``status`` (what this runner writes;
    a later line may be half a record, left by a killed run)."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.strip():
                try:
                    record = json.loads(line)
                except ValueError:
                    return False
                return isinstance(record, dict) and {"id", "status"} <= set(record)
    return True


def check_outputs(catalog: Catalog, manifest: Path, options: BatchOptions, results: Path) -> None:
    """Before any job runs: the output folder is writable, and the results file is one this runner may append
    to (never the manifest, a file of the home's definition folders, or any other existing file)."""
    check_folder_writable(options.output_dir, what="output folder")
    results = Path(results)
    if results.exists() and Path(manifest).exists() and os.path.samefile(results, manifest):
        raise OutputError(f"--results '{results}' is the manifest", code="exists",
                          hint="name another file, e.g. --results results.jsonl")
    home = catalog.home.root.resolve()
    for folder in ("finetunes", "defaults", "settings"):
        if results.resolve().is_relative_to(home / folder):
            raise OutputError(f"--results '{results}' is in {folder}/, where the home keeps its definitions",
                              code="exists", hint="name a file outside the home's definition folders")
    check_output_file(results, kind="results file", is_own_kind=_is_results_file, option="--results",
                      exists_hint="name another file with --results FILE: runs append their records to a results "
                                  "file, nothing else")


def dry_run(catalog: Catalog, planned: list[Planned]) -> list[dict]:
    """One record per job: valid or not, what would be downloaded, whether the video exists, warnings."""
    records = []
    for item in planned:
        record = _base_record(item)
        if item.error is None:
            record["download"] = item.checked.download
            record["exists"] = item.output.is_file()
        record["status"] = "invalid" if item.error else "valid"
        record["error"] = item.error
        record["warnings"] = item.warnings
        records.append(record)
    return records


def wangp_settings(catalog: Catalog, item: Planned) -> dict:
    """The job as a WanGP settings file (``wgp.py --process``): its merged settings in WanGP's export format."""
    from wangp_cli.core.models import choose_transformer
    from wangp_cli.core.settings import export_settings

    request = item.request
    definition = catalog.get(request.model_id)
    chosen = choose_transformer(catalog, definition, request.preference)
    filename = chosen["entry"] if catalog.target == "v12" else chosen["path"]  # WanGP 12 writes the raw entry
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
            record.update(status="written", path=str(path), left_out=sorted(set(item.job.media) - {"loras"}))  # loras: in activated_loras
        records.append(record)
    return records


def _base_record(item: Planned) -> dict:
    """What a job's records share; ``seed`` is null while a random seed is not drawn."""
    job, request = item.job, item.request
    record = {"id": job.id, "index": job.index, "line": job.line, "model": job.model_id}
    if request is not None:
        record.update(path=str(request.output), seed=None if request.seed == -1 else request.seed,
                      media=getattr(request, "media", "video"), frames=request.frames, steps=request.steps,
                      resolution=f"{request.width}x{request.height}",
                      prompt=request.settings.get("prompt", ""))
    return record


def out_of_memory(exc: BaseException) -> bool:
    """A CUDA out-of-memory error (``torch.OutOfMemoryError``), or an error raised from one; told by its type
    name so that torch need not be imported."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if any(kind.__name__ == "OutOfMemoryError" for kind in type(exc).__mro__):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _generate(generator, request: GenerateRequest) -> tuple[dict | None, str | None, Exception | None]:
    """(result, None, None), or (None, the error's text, the error) for a job's own failure."""
    try:
        return generator.generate(request), None, None
    except WangpError as exc:
        return None, exc.message, exc
    except Exception as exc:  # noqa: BLE001 - one failing job never stops the rest
        return None, f"{type(exc).__name__}: {exc}", exc


#: Per generator: (model id, asked profile) -> the profile an out-of-memory retry went down to, where that model's
#: later jobs start (rather than running out of memory and reloading once more for every job).
_LOWERED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _lowered(request: GenerateRequest, profile: str) -> GenerateRequest:
    request.draw_seed()  # drawn once: the record shows the job's own request
    return dataclasses.replace(request, profile=profile)


def _retry_lower(generator, request: GenerateRequest) -> tuple[tuple | None, dict]:
    """After a CUDA out-of-memory error: drop the pipeline (and the CUDA cache), then run the request once
    more one profile lower (gpu > offload > group > lowvram); ``(outcome, record keys)``, the outcome None
    when there is no lower profile. Retrying as is would fail again: the same profile, a fragmented cache."""
    from wangp_cli.generate.engine import lower_profile

    profile = generator.placement[0]
    lower = lower_profile(profile)
    generator.close()
    if lower is None:
        return None, {"warnings": [f"CUDA out of memory with profile '{profile}': no lower profile to retry with"]}
    warning = f"CUDA out of memory with profile '{profile}': retried with profile '{lower}'"
    reporter = getattr(generator, "reporter", None)
    if reporter is not None:
        reporter.warn(warning)
    outcome = _generate(generator, _lowered(request, lower))
    if outcome[2] is not None and out_of_memory(outcome[2]):
        generator.close()  # the next job starts from an empty cache
    return outcome, {"retried_profile": lower, "warnings": [warning]}


def run_job(generator, item: Planned) -> dict:
    """Generate one job; never raises for a job's own failure (the record says what went wrong). A CUDA
    out-of-memory error is retried once, one profile lower (the record's ``retried_profile``); the model's
    later jobs on this generator start at that profile."""
    if item.error:
        return {**_base_record(item), "status": "invalid", "error": item.error}
    started = time.perf_counter()
    request, warnings = item.request, []
    asked = (request.model_id, request.profile)
    earlier = _LOWERED.get(generator, {}).get(asked)
    if earlier is not None:
        request = _lowered(request, earlier)
        warnings.append(f"profile '{earlier}': an earlier job of '{request.model_id}' ran out of GPU memory")
    result, error, exc = _generate(generator, request)
    extra = {}
    if exc is not None and out_of_memory(exc):
        retried, extra = _retry_lower(generator, request)
        if retried is not None:
            result, error, exc = retried
            _LOWERED.setdefault(generator, {})[asked] = extra["retried_profile"]
    if warnings or "warnings" in extra:
        extra["warnings"] = warnings + extra.get("warnings", [])
    if result is not None:
        return {**_base_record(item), "status": "ok", "error": None,
                "seconds": round(time.perf_counter() - started, 3), "timings": result["timings"],
                "peak_memory": result["peak_memory"], "model_reused": result["model_reused"],
                "device": result["device"], "profile": result.get("profile"),
                **{key: result.get(key) for key in ("attention", "compile", "step_cache", "step_seconds", "audio")},
                **extra}
    return {**_base_record(item), "status": "failed", "error": error,
            "seconds": round(time.perf_counter() - started, 3), **extra}


def _seed_in(data) -> int | None:
    seed = data.get("seed") if isinstance(data, dict) else None
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else None


def existing_seed(video: Path) -> int | None:
    """The seed a finished video (image) was made with: from its sidecar, else from its embedded metadata."""
    from wangp_cli.generate.image import format_of, read_metadata as read_image
    from wangp_cli.generate.video import read_metadata as read_video

    reader = read_image if format_of(video) else read_video

    try:
        seed = _seed_in(json.loads(video.with_suffix(".json").read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError):
        seed = None
    if seed is None:
        try:
            seed = _seed_in(reader(video))
        except OSError:
            pass
    return seed


def pending(planned: list[Planned], force: bool) -> tuple[list[Planned], list[dict]]:
    """(jobs to run, records of jobs skipped because their video exists, with the seed it was made with)."""
    todo, skipped = [], []
    for item in planned:
        if not force and item.error is None and item.output.is_file():
            skipped.append({**_base_record(item), "seed": existing_seed(item.output), "status": "skipped",
                            "error": None})
        else:
            todo.append(item)
    return todo, skipped


def _ends_mid_line(path: Path) -> bool:
    with open(path, "rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


class ResultsFile:
    """The results JSONL, one line per job as it finishes (flushed, so a killed run keeps what it did).

    Runs append: the records of earlier runs (an ``ok`` with its seed and timings) stay; the last line of an id
    is its latest state."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a", encoding="utf-8")
        if _ends_mid_line(self.path):  # a killed run may have left half a line: start on a line of our own
            self._handle.write("\n")

    def write(self, record: dict) -> None:
        self._handle.write(json_text(record, indent=None) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_serial(catalog: Catalog, planned: list[Planned], options: BatchOptions, *, reporter=None,
               on_result=None, on_start=None) -> list[dict]:
    """Run the jobs in this process, in the given (grouped) order; a model is loaded once per definition.
    ``on_start(item)`` before each job that runs (not the skipped ones), ``on_result(record)`` after each."""
    from wangp_cli.generate.runner import Generator

    todo, records = pending(planned, options.force)
    for record in records:
        if on_result:
            on_result(record)
    generator = Generator(catalog, reporter)
    try:
        for item in todo:
            if on_start:
                on_start(item)
            record = run_job(generator, item)
            records.append(record)
            if on_result:
                on_result(record)
    finally:
        generator.close()
    return records


def prepare(catalog: Catalog, manifest: Path, options: BatchOptions,
            selected: tuple[int, int] | None = None, *, files: bool = True) -> list[Planned]:
    """The manifest's jobs (or one shard's), grouped by model and checked (see :func:`plan_jobs`)."""
    from wangp_cli.batch.manifest import grouped, read_manifest, shard

    # a queue zip's attachments go where WanGP puts them (<output>/_loaded_queue_cache), shared by shards and reruns
    jobs = read_manifest(Path(manifest).resolve(), media_dir=Path(options.output_dir) / "_loaded_queue_cache")
    if selected is not None:
        jobs = shard(jobs, *selected)
    return plan_jobs(catalog, grouped(jobs), options, files=files)


def results_name(selected: tuple[int, int] | None) -> str:
    return "results.jsonl" if selected is None else f"results.shard-{selected[0]}-of-{selected[1]}.jsonl"


def run_manifest(catalog: Catalog, planned: list[Planned], options: BatchOptions, results_path: Path, *,
                 ray_address: str | None = None, ray_actors: int | None = None, retries: int = 1,
                 on_result=None, reporter=None, on_start=None) -> list[dict]:
    """Run the planned jobs (here, or on Ray when ``ray_address`` is given), every record into the results file.
    ``reporter`` and ``on_start``: as :func:`run_serial`'s (here only: Ray actors report nothing but records)."""
    with ResultsFile(results_path) as sink:
        def record(result: dict) -> None:
            sink.write(result)
            if on_result:
                on_result(result)

        if ray_address is not None:
            from wangp_cli.batch.ray_backend import run_ray

            return run_ray(catalog, planned, options, address=ray_address, actors=ray_actors, retries=retries,
                           on_result=record)
        return run_serial(catalog, planned, options, on_result=record, reporter=reporter, on_start=on_start)


def summary(records: list[dict]) -> dict:
    counts = {status: 0 for status in STATUSES}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    return {"jobs": len(records), **counts}
