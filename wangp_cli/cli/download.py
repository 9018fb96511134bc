"""``wangp download``: everything generating with a definition needs, resumable and verified."""

from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from wangp_cli.cli._options import (
    DataFormat, Dtype, DtypeOption, FormatOption, Quantization, QuantizationOption, Target, TargetOption,
)
from wangp_cli.cli._output import emit, emit_json, handle_errors, log, open_catalog, settings, warn


@handle_errors
def download_command(
    ctx: typer.Context,
    model_ids: Annotated[Optional[List[str]], typer.Argument(help="Definition or base ids.", show_default=False)]
    = None,
    all_: Annotated[bool, typer.Option("--all", help="Every definition of the home folder.")] = False,
    quantization: QuantizationOption = Quantization.int8,
    dtype: DtypeOption = Dtype.bf16,
    all_variants: Annotated[bool, typer.Option("--all-variants", help="Every URL of the definitions, not only "
                                                                      "the chosen variant.")] = False,
    components: Annotated[bool, typer.Option("--components/--no-components", help="Also the architecture's "
                                             "text encoder, tokenizer, VAE, image encoder and scheduler.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (files, sources, sizes, present or "
                                                            "missing) and download nothing.")] = False,
    target: TargetOption = Target.july,
    format: FormatOption = DataFormat.text,
) -> None:
    """Download the chosen variant, preload_URLs, modules and base components into ckpts/.

    Hub URLs go through huggingface_hub (HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE, HF_HOME); other URLs use HTTP
    Range resume. Files are written to a temporary name, checked (size, SHA-256 when known) and renamed.
    Examples: wangp download t2v_fusionix; wangp download --all --dry-run --format json
    """
    from wangp_cli import download as core
    from wangp_cli.core.variants import Preference

    catalog = open_catalog(ctx, target.value)
    ids = sorted(catalog.ids(include_hidden=True)) if all_ else list(model_ids or [])
    is_offline = core.offline()
    plan = core.plan_for(catalog, ids, Preference(quantization.value, dtype.value), all_variants=all_variants,
                         components=components, network=not is_offline)
    for notice in plan.notices:
        warn(notice)
    if dry_run:
        _print_plan(plan, format, is_offline)
        return
    if is_offline:
        if plan.missing:
            raise core.offline_error(plan)
        log(ctx, "offline: every file is present")
        return
    state = settings(ctx)
    progress = None
    if format is DataFormat.text and state.quiet <= 0 and sys.stderr.isatty():
        from wangp_cli.cli._progress import RichProgress

        progress = RichProgress(plan.missing_bytes)
    try:
        results = core.download(plan, catalog.home, progress=progress)
    finally:
        if progress:
            progress.close()
    if format is DataFormat.json:
        emit_json({"schema": "wangp.download/1", "files": results,
                   "summary": {"downloaded": sum(r["status"] == "downloaded" for r in results),
                               "present": sum(r["status"] == "present" for r in results)}})
        return
    for result in results:
        log(ctx, f"{result['status']:10} {result['dest']}")
    fetched = sum(r["status"] == "downloaded" for r in results)
    log(ctx, f"{fetched} downloaded, {len(results) - fetched} already present.")


def _print_plan(plan, format: DataFormat, is_offline: bool) -> None:
    if format is DataFormat.json:
        emit_json({"schema": "wangp.download-plan/1", "offline": is_offline, **plan.to_dict()})
        return
    for item in plan.files:
        size = f"{item.size:,}" if item.size is not None else "?"
        state = "present" if item.present else "missing"
        emit(f"{state:8} {size:>16}  {item.dest}  <- {item.source}")
    for request in plan.components:
        emit(f"{'?':8} {'?':>16}  {request.dest}/  <- {request.repo_id} ({', '.join(sorted(request.folders))})")
    summary = plan.to_dict()["summary"]
    emit(f"{summary['files']} files, {summary['missing']} missing, {summary['missing_bytes']:,} bytes to fetch "
         f"of {summary['total_bytes']:,}" + (" (offline: sizes unknown)" if is_offline else ""))


def register(app: typer.Typer) -> None:
    app.command("download")(download_command)
