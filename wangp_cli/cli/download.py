"""``wangp download``: everything generating with a definition needs, resumable and verified."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from wangp_cli.cli._options import (
    Dtype, DtypeOption, LinkMode, ProgressFormat, Quantization, QuantizationOption, Target, TargetOption,
)
from wangp_cli.cli._output import emit, emit_json, handle_errors, log, open_catalog, settings
from wangp_cli.cli._progress import ProgressFormatOption, event_session, warn_both
from wangp_cli.core.safety import clean


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
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (files, sources, sizes, present, "
                                                            "partial or missing) and download nothing.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Hash every present file whose SHA-256 is known "
                                         "(the Hub's or the definition's) again, even when an earlier run "
                                         "recorded it; a mismatch is replaced by a verified copy.")] = False,
    connections: Annotated[Optional[int], typer.Option("--connections", min=1, max=32, help="HTTP Range "
                           "connections per file (default: by size, 8 from 1 GiB; 1 where the server has no "
                           "Range support).", show_default=False)] = None,
    jobs: Annotated[int, typer.Option("--jobs", min=1, max=16, help="Files fetched at once.")] = 4,
    link_from: Annotated[Optional[List[Path]], typer.Option("--link-from", help="A folder of model files "
                         "(ComfyUI models/, an HF cache, another WanGP ckpts/) where a missing file is found by "
                         "name and size (and SHA-256 when known) and linked instead of downloaded; repeatable; "
                         "also WANGP_LINK_FROM (separated by ':').", show_default=False)] = None,
    link_mode: Annotated[LinkMode, typer.Option("--link-mode", help="How a found file is reused: auto (hard "
                         "link, else reflink, else copy), hardlink, reflink or copy.")] = LinkMode.auto,
    target: TargetOption = Target.v12,
    format: ProgressFormatOption = ProgressFormat.text,
) -> None:
    """Download the chosen variant, preload_URLs, modules and base components into ckpts/.

    Target v12 (WanGP 12) adds the second transformer (URLs2), every module form, VAE_URLs, the text encoder
    (text_encoder_URLs, else the family's) into ckpts/<text_encoder_folder>/ and the model's loras into its LoRA
    folder (loras/<lora_dir>/); url|sub goes to ckpts/sub/. A file already under ckpts/ or the home folder
    itself counts as present; a file whose 'source' key is set is not fetched (WanGP makes it).

    Hub URLs go through huggingface_hub (HF_TOKEN, HF_ENDPOINT, HF_HUB_OFFLINE, HF_HOME); other URLs use HTTP
    Range resume (credentials as https://user:password@host/..., sent to that host only). Files are written to a
    temporary name, checked (answer, size, SHA-256 when known) and renamed; present files with a known SHA-256
    are hashed once (the result is recorded on the file while its size and time stay the same; --verify hashes
    again), others are "present (size only)".
    Large files come over several Range connections at once (--connections), several files at once (--jobs);
    an interrupted transfer, even killed, resumes per range. --link-from reuses copies other tools already have.
    --format jsonl streams the plan, the bytes of each file and each file done as JSON lines (docs/events.md).
    Examples: wangp download t2v_fusionix; wangp download --all --dry-run --format json;
    wangp download t2v --link-from ~/ComfyUI/models --link-from ~/.cache/huggingface/hub
    """
    with event_session(ctx, "download", format) as events:
        _download(ctx, model_ids, all_, quantization, dtype, all_variants, components, dry_run, verify, connections,
                  jobs, link_from, link_mode, target, format, events)


def _download(ctx, model_ids, all_, quantization, dtype, all_variants, components, dry_run, verify, connections,
              jobs, link_from, link_mode, target, format, events) -> None:
    from wangp_cli import download as core
    from wangp_cli.core.errors import UsageError
    from wangp_cli.core.variants import Preference
    from wangp_cli.download.reuse import link_dirs

    if all_ and model_ids:
        raise UsageError("conflicting options: --all downloads every definition, so it takes no ids",
                         hint="pass either ids or --all")
    catalog = open_catalog(ctx, target.value)
    ids = sorted(catalog.ids(include_hidden=True)) if all_ else list(model_ids or [])
    is_offline = core.offline()
    no_network = "offline" if is_offline else None  # why sizes are unknown
    options = dict(all_variants=all_variants, components=components, verify=True, rehash=verify,
                   report=lambda text: log(ctx, text), link_from=link_dirs([str(p) for p in link_from or []]),
                   link_mode=link_mode.value)
    preference = Preference(quantization.value, dtype.value)
    with events.stage("plan") if events else contextlib.nullcontext():
        try:
            plan = core.plan_for(catalog, ids, preference, network=not is_offline, **options)
        except core.UnreachableError as exc:
            if not dry_run:
                raise
            warn_both(events, f"{exc.message}; planning without the network")
            no_network = "no network"
            plan = core.plan_for(catalog, ids, preference, network=False, **options)
    for notice in plan.notices:
        warn_both(events, notice)
    if dry_run:
        _print_plan(plan, format, no_network, events)
        return
    if is_offline and plan.missing:
        raise core.offline_error(plan)
    state = settings(ctx)
    progress, on_file = None, None
    if events:
        from wangp_cli.cli._progress import JsonlTransfers

        events.emit("plan", summary=plan.to_dict()["summary"])
        progress = JsonlTransfers(events)
        on_file = progress.file_done
    elif plan.missing and format is ProgressFormat.text and state.quiet <= 0 and sys.stderr.isatty():
        from wangp_cli.cli._progress import RichProgress

        progress = RichProgress(plan.missing_bytes)
    try:
        with events.stage("transfer") if events else contextlib.nullcontext():
            results = core.download(plan, catalog.home, progress=progress, jobs=jobs, connections=connections,
                                    on_file=on_file)
    finally:
        if progress:
            progress.close()
    if format is not ProgressFormat.text:
        document = {"schema": "wangp.download/1", "offline": is_offline, "files": results,
                    "summary": {"downloaded": sum(r["status"] == "downloaded" for r in results),
                                "reused": sum(r["status"] == "reused" for r in results),
                                "present": sum(r["status"] == "present" for r in results)}}
        _print_document(document, events)
        return
    for result in results:
        status = result["status"]
        if status == "present" and not result["verified"]:
            status += " (size only)"
        elif status == "reused":
            status += f" ({result['method']})"
        source = f"  <- {clean(result['from'])}" if result.get("from") else ""
        log(ctx, f"{status:19} {result['dest']}{source}")
    counts = {name: sum(r["status"] == name for r in results) for name in ("downloaded", "reused", "present")}
    log(ctx, f"{counts['downloaded']} downloaded, " + (f"{counts['reused']} reused, " if counts["reused"] else "")
             + f"{counts['present']} already present" + (" (offline)." if is_offline else "."))


def _print_document(document: dict, events) -> None:
    """--format json: the document; jsonl: the same document as the final ``result`` event."""
    if events is not None:
        events.result(document)
    else:
        emit_json(document)


def _print_plan(plan, format: ProgressFormat, no_network: str | None, events=None) -> None:
    if format is not ProgressFormat.text:
        document = {"schema": "wangp.download-plan/1", "offline": no_network is not None, **plan.to_dict()}
        _print_document(document, events)
        return
    for item in plan.files:
        size = f"{item.size:,}" if item.size is not None else "?"
        state = f"partial ({item.partial:,} here)" if item.state == "partial" else item.state
        source = item.source
        if item.state == "reuse":
            state, source = f"reuse ({item.reuse.method})", clean(str(item.reuse.source))
            source += "" if item.reuse.verified else " (name and size only)"
        fmt = f" [{item.format}]" if item.format not in (None, "16-bit") else ""
        found = f" (found at {item.found})" if item.found and item.found != item.dest else ""
        emit(f"{state:19} {size:>16}  {item.role:12} {item.dest}{fmt}{found}  <- {source}")
    for request in plan.components:
        emit(f"{'?':19} {'?':>16}  {'component':12} {request.dest}/  <- {request.repo_id} "
             f"({', '.join(sorted(request.folders))})")
    summary = plan.to_dict()["summary"]
    reused = f", {summary['reused']} reused" if summary["reused"] else ""
    emit(f"{summary['files']} file{'' if summary['files'] == 1 else 's'}, {summary['missing']} missing{reused}, "
         f"{summary['missing_bytes']:,} bytes to fetch of {summary['total_bytes']:,}"
         + (f" ({no_network}: sizes unknown)" if no_network else ""))


def register(app: typer.Typer) -> None:
    app.command("download")(download_command)
