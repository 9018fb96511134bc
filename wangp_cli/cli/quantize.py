"""``wangp quantize``: quanto int8 files WanGP loads, written back into the definition."""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Annotated, Optional

import typer

from wangp_cli.cli._options import Dtype, ProgressFormat, Target, TargetOption
from wangp_cli.cli._output import emit, emit_json, fail, handle_errors, log, open_catalog, settings, warn
from wangp_cli.cli._progress import ProgressFormatOption, event_session
from wangp_cli.core.errors import UsageError, WangpError


@handle_errors
def quantize_command(
    ctx: typer.Context,
    model_id: Annotated[Optional[str], typer.Argument(help="Definition id; without it, every definition in "
                                                           "finetunes/ that lacks a quanto file of --dtype.",
                                                      show_default=False)] = None,
    dtype: Annotated[Dtype, typer.Option(help="Dtype of the scales and float tensors (WanGP's 'Transformer Data "
                                              "Type'); required.", show_default=False)] = None,
    input: Annotated[Optional[str], typer.Option("--input", help="Quantize a bare checkpoint file instead.",
                                                 show_default=False)] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Output file or folder (with --input).",
                                                  show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Quantize although a quanto file of --dtype is listed "
                                                        "or present, and replace an existing output.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be done.")] = False,
    transformer2: Annotated[bool, typer.Option("--transformer2/--no-transformer2", help="Target v12: also quantize "
                                               "the second transformer (the first URLs2 entry) and append to URLs2, "
                                               "as WanGP 12 does.")] = True,
    target: TargetOption = Target.v12,
    format: ProgressFormatOption = ProgressFormat.text,
) -> None:
    """Make a quanto int8 file the way WanGP's --save-quantized does, streaming one tensor at a time.

    The output is named by WanGP's rule (_fp16 -> _quanto_bf16_int8, _mbf16 -> _quanto_mbf16_int8) next to the
    source, and its path is appended to the definition's URLs (the JSON is rewritten atomically, nothing else
    changes). A definition that already lists a quanto file of --dtype is skipped (--force makes it again).
    Target v12 (WanGP 12): the source is the FIRST entry (refused when it is quantized already), the output goes
    to ckpts/ and only its file name is appended; URLs2 gets the same (--no-transformer2 leaves it); the Wan
    family only for now.
    Without an id each definition is done or refused on its own; the exit code is 1 if any was refused.
    --format jsonl streams each job's stages (read, quantize, write) and tensors n/N as JSON lines
    (docs/events.md).
    Examples: wangp quantize t2v_myft --dtype bf16; wangp quantize --dtype fp16 --dry-run
    """
    with event_session(ctx, "quantize", format) as events:
        _quantize(ctx, model_id, dtype, input, output, force, dry_run, transformer2, target, format, events)


def _quantize(ctx, model_id, dtype, input, output, force, dry_run, transformer2, target, format, events) -> None:
    if dtype is None:
        raise UsageError("--dtype bf16 or --dtype fp16 is required", hint="WanGP needs one file per dtype")
    if input and model_id:
        raise UsageError("conflicting options: give either an id or --input, not both")
    if output and not input:
        raise UsageError("conflicting options: --output needs --input",
                         hint="a definition's output is named by WanGP's rule, next to its 16-bit file")
    hooks = _hooks(ctx, format) if events is None else _event_hooks(events)
    if input:
        from wangp_cli.quantize import plan_path, quantize_path

        job = plan_path(input, output, dtype.value, force=force)
        if not dry_run and job.status == "pending":
            with hooks["progress_for"](job) as progress:
                quantize_path(job, dtype.value, force=force, progress=progress,
                              on_start=lambda: hooks["on_start"](job), on_wait=lambda: hooks["on_wait"](job))
        _report(format, [job], dry_run=dry_run, events=events)
        return
    from wangp_cli.quantize import batch_jobs, plan_jobs, run_jobs

    catalog = open_catalog(ctx, target.value)
    if model_id:
        jobs = plan_jobs(catalog, model_id, dtype.value, force=force, second=transformer2)
        if all(job.error for job in jobs):  # nothing to do for this id: say why (the first transformer's reason)
            raise jobs[0].error
    else:
        jobs = batch_jobs(catalog, dtype.value, force=force, second=transformer2)
    if not dry_run:
        run_jobs(catalog, jobs, dtype.value, force=force, keep_going=not model_id, **hooks)
    _report(format, jobs, dry_run=dry_run, events=events)
    if any(job.status == "refused" for job in jobs):
        raise typer.Exit(1)


def _hooks(ctx: typer.Context, format: ProgressFormat) -> dict:
    """What the user sees while a job runs: the 'quantizing' line once the checks passed, a wait notice, a bar."""
    import sys

    def progress_for(job):
        if format is not ProgressFormat.text or settings(ctx).quiet > 0 or not sys.stderr.isatty():
            return contextlib.nullcontext()
        from wangp_cli.cli._progress import TensorProgress

        return contextlib.closing(TensorProgress(f"quantizing {job.id or job.source}"))

    return {
        "progress_for": progress_for,
        "on_start": lambda job: log(ctx, f"quantizing {job.id or job.source}: {job.source} -> {job.output}"),
        "on_wait": lambda job: log(ctx, f"waiting: another wangp is making {job.output}"),
    }


#: The end-of-run summary, in this order: ``quantize: 1 created, 4 already there, 2 skipped, 1 refused``.
SUMMARY = {"created": "created", "exists": "already there", "pending": "to do", "skipped": "skipped",
           "refused": "refused"}


def _event_hooks(events) -> dict:
    """--format jsonl: job_start, the stages and tensors of each job (JsonlTensors), then job_done or job_failed;
    the wait notice stays on stderr."""
    import time

    from wangp_cli.cli._output import error_for
    from wangp_cli.cli._progress import JsonlTensors
    from wangp_cli.core.events import error_fields

    trackers: dict[int, JsonlTensors] = {}

    @contextlib.contextmanager
    def progress_for(job):
        name = job.id or job.source
        events.emit("job_start", id=name, source=job.source, output=job.output)
        started = time.perf_counter()
        tracker = trackers[id(job)] = JsonlTensors(events, name)
        try:
            yield tracker
        except Exception as exc:  # not Ctrl-C or a closed stream: they end the run (its error event says so)
            tracker.close()
            failure = error_fields(error_for(exc))
            status = "refused" if isinstance(exc, (WangpError, OSError)) else "failed"  # as run_jobs marks it
            events.emit("job_failed", id=name, status=status, output=job.output,
                        seconds=round(time.perf_counter() - started, 4), error=failure["message"],
                        code=failure["code"])
            raise
        else:
            tracker.close()
            events.emit("job_done", id=name, status=job.status, output=job.output,
                        seconds=round(time.perf_counter() - started, 4), record=job.to_dict())
        finally:
            trackers.pop(id(job), None)

    def on_start(job):
        tracker = trackers.get(id(job))
        if tracker is not None:
            tracker.started()

    return {"progress_for": progress_for, "on_start": on_start,
            "on_wait": lambda job: log(None, f"waiting: another wangp is making {job.output}")}


def _report(format: ProgressFormat, jobs: list, dry_run: bool = False, events=None) -> None:
    if format is not ProgressFormat.text:
        document = {"schema": "wangp.quantize/1", "dry_run": dry_run, "jobs": [job.to_dict() for job in jobs]}
        if events is not None:
            events.result(document)
        else:
            emit_json(document)
        return
    for job in jobs:
        name = (job.id or job.source) + (f" ({job.prop})" if job.prop != "URLs" else "")
        note = f" ({job.reason})" if job.reason else ""
        if job.status == "skipped":
            warn(f"{name}: skipped, {job.reason}")
        elif job.status == "refused":
            fail(WangpError(f"{name}: refused, {job.reason}", code=job.error.code, hint=job.error.hint))
        elif dry_run and job.status == "pending":
            emit(f"{name}: would write {job.output} from {job.source}{note}")
        else:
            emit(f"{name}: {job.status} {job.output}{note}" + (f"; {job.prop} updated" if job.written_back else ""))
    if len(jobs) > 1:
        counts = Counter(job.status for job in jobs)
        log(None, "quantize: " + ", ".join(f"{counts[status]} {words}" for status, words in SUMMARY.items()
                                           if status in counts))


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize_command)
