"""``wangp generate``: a video (or an image) from a definition through diffusers (CUDA when present, CPU otherwise)."""

from __future__ import annotations

import json
import sys
from enum import Enum
from typing import Annotated, List, Optional

import typer

from wangp_cli.cli._options import (
    Dtype, DtypeOption, ProgressFormat, Quantization, QuantizationOption, Target, TargetOption,
)
from wangp_cli.cli._output import emit, emit_json, handle_errors, open_catalog, settings, warn
from wangp_cli.cli._progress import JsonlReporter, ProgressFormatOption, event_session, warn_both
from wangp_cli.core.errors import UsageError
from wangp_cli.generate.accel import ATTENTION_CHOICES
from wangp_cli.generate.cache import CACHE_TYPES

PROFILE_HELP = ("Memory profile: gpu (all on the GPU), offload (model offload), group (block-level group "
                "offloading), lowvram (group + VAE tiling), cpu. Default: picked from free VRAM.")
Attention = Enum("Attention", {name: name for name in ATTENTION_CHOICES}, type=str)
CacheType = Enum("CacheType", {name: name for name in CACHE_TYPES}, type=str)
ImageFormat = Enum("ImageFormat", {name: name for name in ("png", "jpeg", "webp")}, type=str)
IMAGE_FORMAT_HELP = ("Image models: the file format of images written into a folder (png, jpeg, webp; default png; "
                     "-o name.jpg picks it from the suffix). With --manifest: for image jobs without 'image_format'.")
NO_AUDIO_HELP = ("Write the mp4 without the audio track the model generates (LTX-2). With --manifest: for jobs "
                 "without 'no_audio'.")
ATTENTION_HELP = ("Attention kernels of the transformer(s): auto (the fastest installed that runs here: sage, "
                  "flash3, flash, else sdpa), sdpa (torch), cudnn, flash (flash-attn 2), flash3 (FlashAttention 3, "
                  "Hopper), sage (SageAttention 2).")
COMPILE_HELP = ("torch.compile the transformer's repeated blocks: the first video of a model compiles (a minute "
                "or more), later ones of a manifest or Ray actor reuse it. Needs Triton (CUDA) or a C++ compiler "
                "(CPU).")
CACHE_HELP = ("Step cache ('skip_steps_cache_type'): none, mag (MagCache), tea (TeaCache): skips transformer "
              "steps, about --cache-multiplier times faster.")


class StageReporter:
    """Stage lines with timings on stderr, and a bar over denoising steps on a terminal."""

    def __init__(self, ctx: typer.Context, format: ProgressFormat):
        self.quiet = settings(ctx).quiet > 0 or format is not ProgressFormat.text
        self.bar = None
        self.task = None
        self.tty = sys.stderr.isatty()

    def stage(self, name: str, seconds: float) -> None:
        if name == "denoise" and self.bar is not None:
            self.bar.stop()
            self.bar = None
        if not self.quiet:
            sys.stderr.write(f"{name:<9}{seconds:8.2f} s\n")

    def step(self, done: int, total: int) -> None:
        if self.quiet or not self.tty:
            return
        if self.bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("denoise"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("denoise", total=total)
        self.bar.update(self.task, completed=done)

    def warn(self, message: str) -> None:
        warn(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _pipeline_args(values: list[str]) -> dict:
    result = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--pipeline-arg '{item}' is not KEY=VALUE", hint="e.g. --pipeline-arg "
                             "max_sequence_length=256 (VALUE is JSON, or a plain string)")
        try:
            result[key] = json.loads(raw)
        except ValueError:
            result[key] = raw
    return result


@handle_errors
def generate_command(
    ctx: typer.Context,
    finetune: Annotated[Optional[str], typer.Option("--finetune", "-m", help="Definition id (or base architecture "
                                                    "id).", show_default=False)] = None,
    prompt: Annotated[Optional[str], typer.Option(help="Prompt (settings key 'prompt').", show_default=False)]
    = None,
    image: Annotated[Optional[str], typer.Option(help="Start image (image-to-video models).", show_default=False)]
    = None,
    last_image: Annotated[Optional[str], typer.Option("--last-image", help="End image (Wan i2v: first-last frame).",
                                                      show_default=False)] = None,
    negative_prompt: Annotated[Optional[str], typer.Option(help="Negative prompt.", show_default=False)] = None,
    resolution: Annotated[Optional[str], typer.Option(help="WIDTHxHEIGHT, multiples of 16 (settings key "
                                                           "'resolution').", show_default=False)] = None,
    frames: Annotated[Optional[int], typer.Option(help="Number of frames, 4k+1 (LTX: 8k+1; 'video_length'); not "
                                                       "for image models.", show_default=False)] = None,
    steps: Annotated[Optional[int], typer.Option(help="Denoising steps ('num_inference_steps').",
                                                 show_default=False)] = None,
    guidance: Annotated[Optional[float], typer.Option(help="Guidance scale ('guidance_scale').",
                                                      show_default=False)] = None,
    embedded_guidance: Annotated[Optional[float], typer.Option(help="HunyuanVideo embedded guidance "
                                                                    "('embedded_guidance_scale').",
                                                               show_default=False)] = None,
    flow_shift: Annotated[Optional[float], typer.Option(help="Scheduler shift ('flow_shift').",
                                                        show_default=False)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed; -1 for a random one ('seed').", show_default=False)]
    = None,
    control_video: Annotated[Optional[str], typer.Option("--control-video", help="Vace: control video (or image).",
                                                         show_default=False)] = None,
    mask: Annotated[Optional[str], typer.Option(help="Vace: mask video (white = generate).", show_default=False)]
    = None,
    reference_image: Annotated[Optional[List[str]], typer.Option("--reference-image", help="Vace: reference "
                                                                 "image (repeatable).", show_default=False)] = None,
    lora: Annotated[Optional[List[str]], typer.Option("--lora", metavar="FILE_OR_URL[:MULTIPLIER]", help="A LoRA "
                                                      "to apply besides the definition's and the settings' "
                                                      "(repeatable; a URL goes into the model's LoRA folder); "
                                                      "MULTIPLIER in WanGP's syntax: 0.8, '1;0', '0.5,1'.",
                                                      show_default=False)] = None,
    quantization: QuantizationOption = Quantization.int8,
    dtype: DtypeOption = Dtype.bf16,
    profile: Annotated[Optional[str], typer.Option(help=PROFILE_HELP, show_default=False)] = None,
    components: Annotated[Optional[str], typer.Option(help="A local diffusers-format folder for the text encoder, "
                                                           "VAE, ... (default: ckpts/<diffusers repo name>).",
                                                      show_default=False)] = None,
    pipeline_arg: Annotated[Optional[List[str]], typer.Option("--pipeline-arg", help="Extra KEY=VALUE for the "
                                                              "diffusers call (advanced; repeatable).",
                                                              show_default=False)] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Output .mp4 file (image models: .png, "
                                                                        ".jpg, .jpeg, .webp) or folder (default: "
                                                                        "outputs/).", show_default=False)] = None,
    image_format: Annotated[Optional[ImageFormat], typer.Option("--image-format", help=IMAGE_FORMAT_HELP,
                                                                show_default=False)] = None,
    no_audio: Annotated[bool, typer.Option("--no-audio", help=NO_AUDIO_HELP)] = False,
    manifest: Annotated[Optional[str], typer.Option(help="Batch: a JSONL / JSON list of jobs (WanGP settings "
                                                        "objects or our flag names); one model load per definition.",
                                                   show_default=False, rich_help_panel="Batch")] = None,
    shard: Annotated[Optional[str], typer.Option(help="Batch: run shard i/N of the manifest (default: Slurm's "
                                                     "SLURM_ARRAY_TASK_ID/COUNT when set).", show_default=False,
                                                rich_help_panel="Batch")] = None,
    force: Annotated[bool, typer.Option("--force", help="Batch: redo jobs whose video exists.",
                                        rich_help_panel="Batch")] = False,
    results: Annotated[Optional[str], typer.Option(help="Batch: results JSONL (default: results.jsonl in the "
                                                       "output folder).", show_default=False,
                                                  rich_help_panel="Batch")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check everything (settings, input files, model files "
                                                            "present or downloadable, output) and print the plan "
                                                            "without loading a model; with --manifest, every job.")]
    = False,
    export_wangp: Annotated[Optional[str], typer.Option("--export-wangp", metavar="DIR", help="Batch: write each "
                                                        "job as a WanGP settings file DIR/<id>.json (for wgp.py "
                                                        "--process) instead of generating.", show_default=False,
                                                        rich_help_panel="Batch")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Batch: spread the jobs over Ray actors (a local instance "
                                                     "unless --ray-address), one per GPU.",
                                       rich_help_panel="Batch")] = False,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Batch: the Ray cluster to use "
                                                       "(ray://host:10001, auto); implies --ray.", show_default=False,
                                                       rich_help_panel="Batch")] = None,
    ray_actors: Annotated[Optional[int], typer.Option("--ray-actors", min=1, help="Batch: number of Ray actors "
                                                      "(default: one per GPU, or 2 on CPUs).", show_default=False,
                                                      rich_help_panel="Batch")] = None,
    retries: Annotated[int, typer.Option(min=0, help="Batch with Ray: retries of a failed job.",
                                         rich_help_panel="Batch")] = 1,
    attention: Annotated[Attention, typer.Option(help=ATTENTION_HELP, rich_help_panel="Speed")] = Attention.auto,
    compile: Annotated[bool, typer.Option("--compile", help=COMPILE_HELP, rich_help_panel="Speed")] = False,
    cache: Annotated[Optional[CacheType], typer.Option(help=CACHE_HELP, show_default=False,
                                                       rich_help_panel="Speed")] = None,
    cache_multiplier: Annotated[Optional[float], typer.Option("--cache-multiplier", metavar="FLOAT", help="The "
                                                              "speed-up asked of the step cache "
                                                              "('skip_steps_multiplier'; WanGP offers 1.5 to 2.5, "
                                                              "default 1.75).", show_default=False,
                                                              rich_help_panel="Speed")] = None,
    cache_start: Annotated[Optional[float], typer.Option("--cache-start", metavar="PERCENT", help="Share of the "
                                                         "steps always computed before the step cache may skip "
                                                         "('skip_steps_start_step_perc', 0 to 100).",
                                                         show_default=False, rich_help_panel="Speed")] = None,
    target: TargetOption = Target.v12,
    format: ProgressFormatOption = ProgressFormat.text,
) -> None:
    """Generate a video (or an image) with a definition's transformer (16-bit or quanto int8) and diffusers.

    Settings merge as WanGP's: architecture < definition < settings/<id>_settings.json < these flags. The mp4 (the
    PNG/JPEG/WebP of image models) holds the settings in WanGP's metadata format; a JSON sidecar holds the result
    record.
    --format jsonl streams the stages (download, load, encode, denoise, decode, save), each denoising step and,
    with --manifest, each job done or failed as JSON lines, the json record last (docs/events.md).
    Examples: wangp generate -m t2v_fusionix --prompt "a cat surfing"; wangp generate -m i2v --image cat.png
    """
    with event_session(ctx, "generate", format) as events:
        from wangp_cli.core.variants import Preference
        from wangp_cli.generate.engine import PROFILES
        from wangp_cli.generate.request import build_request
        from wangp_cli.generate.runner import preflight

        if profile is not None and profile not in PROFILES:
            raise UsageError(f"unknown profile '{profile}'", hint=f"choose one of {', '.join(PROFILES)}")
        catalog = open_catalog(ctx, target.value)
        preference = Preference(quantization.value, dtype.value)
        asked = tuple(name for name in ("quantization", "dtype")  # given on the command line (or by a variable)
                      if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT",
                                                                                            "DEFAULT_MAP"))
        flags = {"prompt": prompt, "negative_prompt": negative_prompt, "resolution": resolution, "frames": frames,
                 "steps": steps, "guidance": guidance, "embedded_guidance": embedded_guidance,
                 "flow_shift": flow_shift, "seed": seed, "cache": cache.value if cache is not None else None,
                 "cache_multiplier": cache_multiplier, "cache_start": cache_start}
        single = {"--finetune": finetune, "--image": image, "--last-image": last_image,
                  "--control-video": control_video, "--mask": mask, "--reference-image": reference_image,
                  "--lora": lora, **{f"--{k.replace('_', '-')}": v for k, v in flags.items()}}
        if manifest is not None:
            given = [name for name, value in single.items() if value not in (None, [], ())]
            if given:
                raise UsageError(f"{', '.join(given)} cannot be combined with --manifest",
                                 hint="put per-job values in the manifest's records")
            return run_manifest(ctx, catalog, manifest, preference, output=output, profile=profile,
                                components=components, pipeline_kwargs=_pipeline_args(pipeline_arg or []),
                                shard_text=shard, force=force, results=results, dry_run=dry_run,
                                export_wangp=export_wangp, ray=ray_address or ("local" if ray else None),
                                ray_actors=ray_actors, retries=retries, format=format, asked=asked,
                                attention=attention.value, compile=compile,
                                image_format=image_format.value if image_format else None, no_audio=no_audio,
                                events=events)
        batch_only = [name for name, value in {"--shard": shard, "--force": force, "--results": results,
                                               "--export-wangp": export_wangp, "--ray": ray,
                                               "--ray-address": ray_address, "--ray-actors": ray_actors}.items()
                      if value]
        if batch_only:
            raise UsageError(f"{', '.join(batch_only)} only work{'s' if len(batch_only) == 1 else ''} with "
                             "--manifest", hint="wangp generate --manifest jobs.jsonl ... (see docs/batch.md)")
        if finetune is None:
            raise UsageError("give --finetune ID (one video) or --manifest FILE (a batch)",
                             hint="e.g. wangp generate -m t2v_fusionix --prompt \"a cat surfing\"")
        request = build_request(catalog, finetune, flags, preference=preference,
                                image=image, last_image=last_image, control_video=control_video, mask=mask,
                                reference_images=reference_image or [], output=output, profile=profile,
                                components=components, pipeline_kwargs=_pipeline_args(pipeline_arg or []),
                                asked=asked, loras=lora or [], attention=attention.value, compile=compile,
                                image_format=image_format.value if image_format else None, no_audio=no_audio)
        checked = preflight(catalog, request)  # before a seed is drawn or torch imported
        for message in checked.warnings:
            warn_both(events, message)
        if dry_run:
            return _print_plan(request, checked, format, events)
        from wangp_cli.generate.engine import quiet_libraries
        from wangp_cli.generate.runner import Generator

        reporter = StageReporter(ctx, format) if events is None else JsonlReporter(events)
        seed = request.draw_seed()
        if not reporter.quiet:
            sys.stderr.write(f"seed {seed}\n")
        if settings(ctx).verbose == 0:
            quiet_libraries()
        try:
            record = Generator(catalog, reporter).generate(request)
        finally:
            reporter.close()
        if events is not None:
            events.result(record)
        elif format is ProgressFormat.json:
            emit_json(record)
        else:
            emit(record["path"])


def _weights_row(paths: list[str], quantized: bool, dtype: str, note: str = "") -> str:
    return ", ".join(paths) + f" ({'int8 ' if quantized else ''}{dtype}{note})"


def _print_plan(request, checked, format: ProgressFormat, events=None) -> None:
    """``generate -m ID --dry-run``: what would run, after every check, without loading anything."""
    from wangp_cli.generate.request import shown

    from wangp_cli.generate.runner import media_suffix, output_file

    files = checked.files
    seed = None if request.seed == -1 else request.seed
    images = request.media == "image"
    plan = {"status": "valid", "model": request.model_id, "architecture": request.architecture,
            "transformer": files.transformer, "quantized": files.quantized or files.auto_quantize,
            **({"transformer2": files.transformer2, "quantized2": files.quantized2 or files.auto_quantize2}
               if files.transformer2 else {}),
            "dtype": files.dtype, "width": request.width, "height": request.height, "frames": request.frames,
            "fps": None if images else request.fps, "media": request.media, "steps": request.steps, "seed": seed,
            "output": str(checked.output),
            "download": checked.download, "warnings": checked.warnings, "attention": request.attention,
            "compile": request.compile, "step_cache": step_cache(request.settings), "settings": request.settings}
    if events is not None:
        events.result(plan)
        return None
    if format is ProgressFormat.json:
        return emit_json(plan)
    suffix = media_suffix(request)
    output = str(checked.output) + ("" if output_file(request) is not None else f"/<time>_seed<seed>_<prompt>{suffix}")
    media = (f"{request.width}x{request.height} ({suffix[1:]})" if images else
             f"{request.width}x{request.height}, {request.frames} frames at {request.fps} fps"
             + (", no audio" if request.no_audio else ""))
    rows = [("model", f"{request.model_id} ({request.architecture})"),
            ("transformer", _weights_row(files.transformer, plan["quantized"], files.dtype)),
            *([("transformer2", _weights_row(files.transformer2, plan["quantized2"], files.dtype, ", low noise"))]
              if files.transformer2 else []),
            ("image" if images else "video", f"{media}, {request.steps} steps, seed "
                                             f"{'random' if seed is None else seed}"),
            ("prompt", shown(request.settings.get("prompt", ""), 70)),
            ("speed", speed_text(request.attention, request.compile, plan["step_cache"])),
            ("output", output),
            ("download", ", ".join(checked.download) or "nothing")]
    for name, value in rows:
        emit(f"{name:<12} {value}")
    emit("ready: every check passed, nothing was loaded")


def step_cache(settings: dict) -> dict | None:
    """The step cache the settings ask for (None: off), as the plan shows it."""
    from wangp_cli.generate import cache

    kind = cache.cache_type(settings)
    if kind == "none":
        return None
    return {"type": kind, "multiplier": settings.get("skip_steps_multiplier", cache.DEFAULT_MULTIPLIER),
            "start_step_perc": settings.get("skip_steps_start_step_perc", 0)}


def _cache_text(cached: dict | None) -> str:
    if cached is None:
        return "no step cache"
    return f"step cache {cached['type']} x{cached['multiplier']} from {cached['start_step_perc']}% of the steps"


def speed_text(attention: str, compiled: bool, cached: dict | None) -> str:
    """``attention auto, no compile, step cache mag x1.75 from 20% of the steps``."""
    return f"attention {attention}, {'compile' if compiled else 'no compile'}, {_cache_text(cached)}"


def _dry_run_line(record: dict) -> str:
    """``[OK] id: model=..., steps=..., ...`` or ``[INVALID] id: model=...: reason`` (WanGP's dry-run shape)."""
    head = f"{record['id']}: model={record['model']}"
    if record["status"] != "valid":
        return f"[INVALID] {head}: {record['error']}"
    from wangp_cli.generate.request import shown

    head += (f", steps={record['steps']}, frames={record['frames']}, {record['resolution']}, "
             f"prompt={shown(record['prompt'], 40)}")
    if record.get("step_cache"):
        head += ", " + _cache_text(record["step_cache"])
    if record["download"]:
        head += f", downloads {len(record['download'])} file(s)"
    done = " (image exists)" if record.get("media") == "image" else " (video exists)"
    return f"[OK] {head}" + (done if record["exists"] else "")


def run_manifest(ctx: typer.Context, catalog, manifest: str, preference, *, output, profile, components,
                 pipeline_kwargs, shard_text, force, results, dry_run, export_wangp, ray, ray_actors, retries,
                 format, asked=(), attention="auto", compile=False, image_format=None, no_audio=False,
                 events=None) -> None:
    """``--manifest``: every job of the manifest (or of one shard), serially or over Ray; or a check / an export.
    ``events`` (--format jsonl): job_start, the stages and steps of each job run here, job_done / job_failed, and
    the json document as the result."""
    import os
    import time
    from pathlib import Path

    from wangp_cli.batch import runner
    from wangp_cli.batch.manifest import parse_shard

    selected = parse_shard(shard_text, dict(os.environ))
    output_dir = Path(output).resolve() if output else (catalog.home.root / "outputs").resolve()
    options = runner.BatchOptions(output_dir=output_dir, preference=preference, force=force, profile=profile,
                                  components=Path(components).resolve() if components else None,
                                  pipeline_kwargs=pipeline_kwargs, asked=asked, attention=attention, compile=compile,
                                  image_format=image_format, no_audio=no_audio)
    results_path = Path(results) if results else output_dir / runner.results_name(selected)
    if export_wangp is None:
        runner.check_outputs(catalog, Path(manifest), options, results_path)
    planned = runner.prepare(catalog, Path(manifest), options, selected, files=export_wangp is None)
    for item in planned:
        for message in item.warnings:
            warn_both(events, f"{item.job.id} (line {item.job.line}): {message}")
    if export_wangp is not None:
        records = runner.export_for_wangp(catalog, planned, Path(export_wangp))
        if events is not None:
            events.result({"jobs": records})
        elif format is ProgressFormat.json:
            emit_json({"jobs": records})
        else:
            for record in records:
                if record["status"] != "written":
                    emit(f"[INVALID] {record['id']}: {record['error']}")
                elif record["left_out"]:
                    emit(f"{record['path']} (left out, not in WanGP settings files: {', '.join(record['left_out'])})")
                else:
                    emit(record["path"])
        if any(r["status"] == "invalid" for r in records):
            raise typer.Exit(1)
        return
    if dry_run:
        records = runner.dry_run(catalog, planned)
        for item, record in zip(planned, records):  # in the manifest's order
            if item.request is not None:
                record["step_cache"] = step_cache(item.request.settings)
        valid = sum(r["status"] == "valid" for r in records)
        document = {"jobs": records, "valid": valid, "total": len(records), "attention": attention,
                    "compile": compile}
        if events is not None:
            events.result(document)
        elif format is ProgressFormat.json:
            emit_json(document)
        else:
            for record in records:
                emit(_dry_run_line(record))
            if attention != "auto" or compile:
                emit(f"every job: attention {attention}, {'compile' if compile else 'no compile'}")
            emit(f"{valid}/{len(records)} job(s) valid")
        if valid != len(records):
            raise typer.Exit(1)
        return
    if settings(ctx).verbose == 0:
        from wangp_cli.generate.engine import quiet_libraries

        quiet_libraries()
    quiet = settings(ctx).quiet > 0 or format is not ProgressFormat.text
    done = []
    start = time.perf_counter()
    reporter = JsonlReporter(events) if events is not None else None
    if events is not None:
        events.emit("plan", summary={"jobs": len(planned), "invalid": sum(item.error is not None for item in planned),
                                     "results": str(results_path)})

    def on_start(item) -> None:
        reporter.job = item.job.id
        events.emit("job_start", id=item.job.id, model=item.job.model_id,
                    output=str(item.output) if item.output else None)

    def progress(record: dict) -> None:
        done.append(record)
        if events is not None:
            _job_event(events, record)
            reporter.job = None
        if not quiet:
            state = record["status"] + (f": {record['error']}" if record.get("error") else "")
            seconds = f" {record['seconds']:.1f} s" if record.get("seconds") is not None else ""
            sys.stderr.write(f"[Job {len(done)}/{len(planned)}] {record['id']} ({record['model']}) {state}{seconds}\n")
            for message in record.get("warnings") or ():  # an out-of-memory retry one profile lower, ...
                warn(f"{record['id']}: {message}")

    runner.run_manifest(catalog, planned, options, results_path, ray_address=ray, ray_actors=ray_actors,
                        retries=retries, on_result=progress, reporter=reporter,
                        on_start=on_start if events is not None else None)
    counts = runner.summary(done)
    if events is not None:
        events.result({"summary": counts, "results": str(results_path), "jobs": done})
    elif format is ProgressFormat.json:
        emit_json({"summary": counts, "results": str(results_path), "jobs": done})
    else:
        emit(f"{counts['jobs']} job(s) in {time.perf_counter() - start:.1f} s: {counts['ok']} ok, "
             f"{counts['skipped']} skipped, {counts['failed']} failed, {counts['invalid']} invalid; "
             f"results in {results_path}")
    if counts["failed"] or counts["invalid"]:
        raise typer.Exit(1)


def _job_event(events, record: dict) -> None:
    """``job_done`` (ok, skipped) or ``job_failed`` (failed, invalid) with the job's results record."""
    failed = record["status"] in ("failed", "invalid")
    events.emit("job_failed" if failed else "job_done", id=record["id"], status=record["status"],
                output=record.get("path"), seconds=record.get("seconds"),
                **({"error": record.get("error")} if failed else {}), record=record)


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_command)
