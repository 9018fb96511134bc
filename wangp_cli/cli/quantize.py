"""``wangp quantize``: quanto int8 files WanGP loads, written back into the definition."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from wangp_cli.cli._options import DataFormat, Dtype, FormatOption, Target, TargetOption
from wangp_cli.cli._output import emit, emit_json, handle_errors, log, open_catalog, settings, warn
from wangp_cli.core.errors import UsageError


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
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Output file (with --input).",
                                                  show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be done.")] = False,
    target: TargetOption = Target.july,
    format: FormatOption = DataFormat.text,
) -> None:
    """Make a quanto int8 file the way WanGP's --save-quantized does, streaming one tensor at a time.

    The output is named by WanGP's rule (_fp16 -> _quanto_bf16_int8, _mbf16 -> _quanto_mbf16_int8) next to the
    source, and its path is appended to the definition's URLs (the JSON is rewritten atomically, nothing else
    changes). Examples: wangp quantize t2v_myft --dtype bf16; wangp quantize --dtype fp16 --dry-run
    """
    if dtype is None:
        raise UsageError("--dtype bf16 or --dtype fp16 is required", hint="WanGP needs one file per dtype")
    if input:
        if model_id:
            raise UsageError("give either an id or --input, not both")
        from wangp_cli.quantize import quantize_path

        progress = _progress(ctx, format, input)
        try:
            dest, counts = quantize_path(input, output, dtype.value, progress=progress)
        finally:
            if progress:
                progress.close()
        _report(format, [{"id": None, "source": input, "output": str(dest), "status": "created", "reason": "",
                          "written_back": False, "counts": counts}])
        return
    from wangp_cli.quantize import batch_jobs, plan_job, run_job

    catalog = open_catalog(ctx, target.value)
    jobs = [plan_job(catalog, model_id, dtype.value)] if model_id else batch_jobs(catalog, dtype.value)
    if model_id and jobs[0].status == "skipped":
        from wangp_cli.core.errors import WangpError

        raise WangpError(f"cannot quantize '{model_id}': {jobs[0].reason}", code="refused")
    if not dry_run:
        for job in jobs:
            if job.status != "skipped":
                log(ctx, f"quantizing {job.id}: {job.source} -> {job.output}")
                progress = _progress(ctx, format, job.id)
                try:
                    run_job(catalog, job, dtype.value, progress=progress)
                finally:
                    if progress:
                        progress.close()
    _report(format, [j.to_dict() for j in jobs], dry_run=dry_run)


def _progress(ctx: typer.Context, format: DataFormat, what: str):
    """A tensor-by-tensor bar on a terminal; nothing with -q, --format json, or when stderr is not a TTY."""
    import sys

    if format is not DataFormat.text or settings(ctx).quiet > 0 or not sys.stderr.isatty():
        return None
    from wangp_cli.cli._progress import TensorProgress

    return TensorProgress(f"quantizing {what}")


def _report(format: DataFormat, records: list[dict], dry_run: bool = False) -> None:
    if format is DataFormat.json:
        emit_json({"schema": "wangp.quantize/1", "dry_run": dry_run, "jobs": records})
        return
    for record in records:
        if record["status"] == "skipped":
            warn(f"{record['id']}: skipped, {record['reason']}")
        elif dry_run:
            emit(f"{record['id']}: would write {record['output']} from {record['source']}"
                 + (" (exists)" if record["status"] == "exists" else ""))
        else:
            emit(f"{record['id'] or record['source']}: {record['status']} {record['output']}"
                 + ("; URLs updated" if record["written_back"] else ""))


def register(app: typer.Typer) -> None:
    app.command("quantize")(quantize_command)
