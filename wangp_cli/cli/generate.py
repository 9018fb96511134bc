"""``wangp generate``: a video from a definition through diffusers (CUDA when present, CPU otherwise)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, List, Optional

import typer

from wangp_cli.cli._options import (
    DataFormat, Dtype, DtypeOption, FormatOption, Quantization, QuantizationOption, Target, TargetOption,
)
from wangp_cli.cli._output import emit, emit_json, handle_errors, open_catalog, settings, warn
from wangp_cli.core.errors import UsageError

PROFILE_HELP = ("Memory profile: gpu (all on the GPU), offload (model offload), group (block-level group "
                "offloading), lowvram (group + VAE tiling), cpu. Default: picked from free VRAM.")


class StageReporter:
    """Stage lines with timings on stderr, and a bar over denoising steps on a terminal."""

    def __init__(self, ctx: typer.Context, format: DataFormat):
        self.quiet = settings(ctx).quiet > 0 or format is DataFormat.json
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
    finetune: Annotated[str, typer.Option("--finetune", "-m", help="Definition id (or base architecture id).",
                                          show_default=False)],
    prompt: Annotated[Optional[str], typer.Option(help="Prompt (settings key 'prompt').", show_default=False)]
    = None,
    image: Annotated[Optional[str], typer.Option(help="Start image (image-to-video models).", show_default=False)]
    = None,
    last_image: Annotated[Optional[str], typer.Option("--last-image", help="End image (Wan i2v: first-last frame).",
                                                      show_default=False)] = None,
    negative_prompt: Annotated[Optional[str], typer.Option(help="Negative prompt.", show_default=False)] = None,
    resolution: Annotated[Optional[str], typer.Option(help="WIDTHxHEIGHT, multiples of 16 (settings key "
                                                           "'resolution').", show_default=False)] = None,
    frames: Annotated[Optional[int], typer.Option(help="Number of frames, 4k+1 ('video_length').",
                                                  show_default=False)] = None,
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
    quantization: QuantizationOption = Quantization.int8,
    dtype: DtypeOption = Dtype.bf16,
    profile: Annotated[Optional[str], typer.Option(help=PROFILE_HELP, show_default=False)] = None,
    components: Annotated[Optional[str], typer.Option(help="A local diffusers-format folder for the text encoder, "
                                                           "VAE, ... (default: ckpts/<diffusers repo name>).",
                                                      show_default=False)] = None,
    pipeline_arg: Annotated[Optional[List[str]], typer.Option("--pipeline-arg", help="Extra KEY=VALUE for the "
                                                              "diffusers call (advanced; repeatable).",
                                                              show_default=False)] = None,
    output: Annotated[Optional[str], typer.Option("--output", "-o", help="Output .mp4 file or folder (default: "
                                                                        "outputs/).", show_default=False)] = None,
    target: TargetOption = Target.july,
    format: FormatOption = DataFormat.text,
) -> None:
    """Generate a video with a definition's transformer (16-bit or quanto int8) and diffusers.

    Settings merge as WanGP's: architecture < definition < settings/<id>_settings.json < these flags. The mp4 holds
    the settings in WanGP's metadata format; a JSON sidecar holds the result record.
    Examples: wangp generate -m t2v_fusionix --prompt "a cat surfing"; wangp generate -m i2v --image cat.png
    """
    from wangp_cli.core.variants import Preference
    from wangp_cli.generate.engine import PROFILES
    from wangp_cli.generate.request import build_request

    if quantization is Quantization.fp8:
        raise UsageError("generate supports --quantization int8 or none", hint="fp8 files are not loaded yet")
    if profile is not None and profile not in PROFILES:
        raise UsageError(f"unknown profile '{profile}'", hint=f"choose one of {', '.join(PROFILES)}")
    catalog = open_catalog(ctx, target.value)
    flags = {"prompt": prompt, "negative_prompt": negative_prompt, "resolution": resolution, "frames": frames,
             "steps": steps, "guidance": guidance, "embedded_guidance": embedded_guidance, "flow_shift": flow_shift,
             "seed": seed}
    request = build_request(catalog, finetune, flags, preference=Preference(quantization.value, dtype.value),
                            image=image, last_image=last_image, control_video=control_video, mask=mask,
                            reference_images=reference_image or [], output=output, profile=profile,
                            components=components, pipeline_kwargs=_pipeline_args(pipeline_arg or []))
    from wangp_cli.generate.engine import quiet_libraries
    from wangp_cli.generate.runner import Generator

    if settings(ctx).verbose == 0:
        quiet_libraries()
    reporter = StageReporter(ctx, format)
    if not reporter.quiet:
        sys.stderr.write(f"seed {request.seed}\n")
    try:
        record = Generator(catalog, reporter).generate(request)
    finally:
        reporter.close()
    if format is DataFormat.json:
        emit_json(record)
    else:
        emit(record["path"])


def register(app: typer.Typer) -> None:
    app.command("generate")(generate_command)
