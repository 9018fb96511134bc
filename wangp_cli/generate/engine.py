"""The diffusers side: the family's pipeline, memory profiles, the call itself with stage timings."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core.errors import UsageError, WangpError
from wangp_cli.families import family_for_architecture, pipelines

#: Architecture id -> diffusers pipeline class name, over every family (``wangp list --architectures`` reads it).
PIPELINES = pipelines()
#: Keyword arguments of the diffusers call that wangp sets itself (and records in the metadata), with the option
#: that sets them; ``--pipeline-arg`` may not override them.
MANAGED_ARGUMENTS = {
    "prompt": "--prompt", "negative_prompt": "--negative-prompt", "height": "--resolution", "width": "--resolution",
    "num_frames": "--frames", "num_inference_steps": "--steps", "guidance_scale": "--guidance or --embedded-guidance",
    "guidance_scale_2": "the setting guidance2_scale",
    "true_cfg_scale": "--guidance", "generator": "--seed", "image": "--image", "last_image": "--last-image",
    "video": "--control-video", "mask": "--mask", "reference_images": "--reference-image", "output_type": None,
    "callback_on_step_end": None,
}
#: Memory profiles, most VRAM first. ``cpu`` runs without an accelerator.
PROFILES = {
    "gpu": "whole pipeline on the GPU (fastest, most VRAM)",
    "offload": "model offload: each component moves to the GPU while it runs (Wan 2.2: one transformer at a time)",
    "group": "block-level group offloading of the transformer(s) and text encoders (streams), rest on the GPU",
    "lowvram": "group offloading plus VAE tiling (least VRAM)",
    "cpu": "everything on the CPU (slow; for tests and tiny models)",
}


@dataclass
class RunResult:
    frames: object  # numpy (T, H, W, 3) float in [0, 1]
    timings: dict = field(default_factory=dict)
    peak_memory: dict = field(default_factory=dict)
    device: str = "cpu"
    profile: str = "cpu"


def quiet_libraries() -> None:
    """Silence diffusers' and transformers' own progress bars and info logs (front ends report progress)."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for logging in (diffusers_logging, transformers_logging):
        logging.set_verbosity_error()
        logging.disable_progress_bar()


def torch_dtype(name: str):
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def _module_bytes(module) -> int:
    if module is None or not hasattr(module, "parameters"):
        return 0
    total = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        total += tensor.numel() * tensor.element_size()
    return total


def transformers(pipe) -> list:
    """The pipeline's transformers (``transformer``, and ``transformer_2`` of Wan 2.2 A14B)."""
    return [model for model in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None))
            if model is not None]


def pick_profile(pipe, requested: str | None) -> tuple[str, str]:
    """(profile, device). Without CUDA only ``cpu`` exists; by default the profile follows free VRAM."""
    import torch

    if not torch.cuda.is_available():
        if requested not in (None, "cpu"):
            raise UsageError(f"profile '{requested}' needs a CUDA GPU and none is available",
                             hint="leave --profile out (or use --profile cpu) to run on the CPU")
        return "cpu", "cpu"
    if requested == "cpu":
        return "cpu", "cpu"
    if requested:
        return requested, "cuda"
    free, _ = torch.cuda.mem_get_info()
    components = {name: _module_bytes(getattr(pipe, name, None)) for name in pipe.components}
    everything = sum(components.values())
    largest = max(components.values(), default=0)
    margin = 4 * 1024**3  # activations of an 81-frame 480p generation, VAE decode included
    if free > everything + margin:
        return "gpu", "cuda"
    if free > largest + margin:
        return "offload", "cuda"
    return "lowvram", "cuda"


def apply_profile(pipe, profile: str, *, quantized: bool, warn=print) -> str:
    """Place the pipeline for ``profile``; returns the profile actually used."""
    import torch

    if profile == "cpu":
        return profile
    if profile in ("group", "lowvram") and quantized:
        # diffusers#12610: group offloading moves only the quanto wrapper, not its int8 data and scales
        warn(f"profile '{profile}' does not work with quanto int8 weights in diffusers yet (diffusers#12610): "
             "using model offload" + (" with VAE tiling" if profile == "lowvram" else ""))
        pipe.enable_model_cpu_offload()
        if profile == "lowvram":
            pipe.vae.enable_tiling()
        return "offload+tiling" if profile == "lowvram" else "offload"
    if profile == "gpu":
        pipe.to("cuda")
    elif profile == "offload":
        pipe.enable_model_cpu_offload()
    elif profile in ("group", "lowvram"):
        from diffusers.hooks import apply_group_offloading

        onload, offload = torch.device("cuda"), torch.device("cpu")
        for name, module in pipe.components.items():
            if not isinstance(module, torch.nn.Module):
                continue
            if name.startswith(("transformer", "text_encoder")):
                apply_group_offloading(module, onload_device=onload, offload_device=offload,
                                       offload_type="block_level", num_blocks_per_group=1, use_stream=True)
            else:
                module.to(onload)
        if profile == "lowvram":
            pipe.vae.enable_tiling()
    else:
        raise UsageError(f"unknown profile '{profile}'", hint=f"choose one of {', '.join(PROFILES)}")
    return profile


def pipeline_class(request):
    """The family's pipeline class for the request: the architecture's, or its image pipeline when an optional
    start image is given (Wan 2.2 TI2V 5B)."""
    family = family_for_architecture(request.architecture)
    if request.image and "image" in family.architectures[request.architecture].takes:
        return family.pipeline_class(request.architecture, image=True)
    return family.pipeline_class(request.architecture)


def build_pipeline(request, transformer, components: Path, dtype, transformer_2=None):
    """The diffusers pipeline of the architecture with our transformer(s) and the folder's other components (those
    the family loads itself passed in). ``transformer_2``: Wan 2.2 A14B's low-noise transformer (the family sets
    the switch, ``boundary_ratio``, from the settings)."""
    import warnings

    family = family_for_architecture(request.architecture)
    cls = pipeline_class(request)
    second = {"transformer_2": transformer_2} if transformer_2 is not None else {}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
            pipe = cls.from_pretrained(str(components), transformer=transformer, torch_dtype=dtype,
                                       local_files_only=True, **second, **family.pipeline_parts(request, components))
    except (OSError, ValueError, TypeError) as exc:
        raise WangpError(f"cannot load the components in '{components}': {exc}", code="components",
                         hint="run 'wangp download' for the model, or point --components at a diffusers folder"
                         ) from None
    pipe.set_progress_bar_config(disable=True)  # front ends show their own progress (Reporter.step)
    family.set_scheduler(pipe, request)
    return pipe


def configure(pipe, request) -> None:
    """Set the request's sampler settings on a built (or reused) pipeline: scheduler, ``flow_shift``, the Wan 2.2
    transformer switch."""
    family_for_architecture(request.architecture).set_scheduler(pipe, request)


def _image(path: Path, size: tuple[int, int] | None = None):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path).convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"cannot read image '{path}': {exc}") from None
    return image.resize(size) if size else image


def _video_frames(path: Path, count: int, size: tuple[int, int]) -> list:
    """``count`` frames of a video (or one image repeated), resized; short videos repeat their last frame."""
    from PIL import Image

    from wangp_cli.generate.video import IMAGE_SUFFIXES

    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [_image(path, size)] * count
    import imageio_ffmpeg

    frames = []
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        width, height = meta["size"]
        for raw in reader:
            frames.append(Image.frombytes("RGB", (width, height), raw).resize(size))
            if len(frames) == count:
                break
        reader.close()
    except (OSError, RuntimeError, StopIteration) as exc:  # imageio_ffmpeg's message starts with ffmpeg's banner
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise UsageError(f"cannot read video '{path}': {lines[-1] if lines else type(exc).__name__}") from None
    if not frames:
        raise UsageError(f"video '{path}' has no frames")
    return frames + [frames[-1]] * (count - len(frames))


def _size(request) -> tuple[int, int]:
    return request.width, request.height


#: Media input (a ``GenerateRequest`` attribute) -> (the pipeline's keyword, how it is read for the request).
MEDIA_ARGUMENTS = {
    "image": ("image", lambda path, request: _image(path)),
    "last_image": ("last_image", lambda path, request: _image(path)),
    "control_video": ("video", lambda path, request: _video_frames(path, request.frames, _size(request))),
    "mask": ("mask", lambda path, request: [frame.convert("L") for frame in
                                            _video_frames(path, request.frames, _size(request))]),
    "reference_images": ("reference_images", lambda paths, request: [_image(path) for path in paths]),
}


def call_arguments(request, pipe, generator) -> dict:
    """The keyword arguments of the diffusers call: the common ones, the media inputs given, the family's."""
    kwargs = {"prompt": request.settings["prompt"], "height": request.height, "width": request.width,
              "num_frames": request.frames, "num_inference_steps": request.steps, "generator": generator,
              "output_type": "np"}
    for name, (keyword, read) in MEDIA_ARGUMENTS.items():
        value = getattr(request, name)
        if value:  # build_request let through only what the architecture takes
            kwargs[keyword] = read(value, request)
    kwargs.update(family_for_architecture(request.architecture).call_arguments(request))
    kwargs.update(request.pipeline_kwargs)  # build_request refuses the managed keys
    return kwargs


def run(pipe, request, *, device: str, profile: str, on_step=None) -> RunResult:
    """Call the pipeline; time encode (to the first transformer call), denoise (to the last step), decode."""
    import resource

    import torch

    marks: dict = {}

    def first_forward(*_args, **_kwargs):
        marks.setdefault("denoise_start", time.perf_counter())

    handles = [model.register_forward_pre_hook(first_forward) for model in transformers(pipe)]

    def step_end(_pipe, step, _timestep, callback_kwargs):
        marks["denoise_end"] = time.perf_counter()
        if on_step:
            on_step(step + 1, request.steps)
        return callback_kwargs

    generator = torch.Generator("cpu").manual_seed(request.seed)
    kwargs = call_arguments(request, pipe, generator)
    kwargs.setdefault("callback_on_step_end", step_end)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            output = pipe(**kwargs)
    finally:
        for handle in handles:
            handle.remove()
    end = time.perf_counter()
    begin = marks.get("denoise_start", start)
    finish = marks.get("denoise_end", end)
    timings = {"encode": begin - start, "denoise": finish - begin, "decode": end - finish}
    peak = {"ram_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device == "cuda":
        peak["vram_bytes"] = torch.cuda.max_memory_allocated()
    frames = output.frames[0]
    if hasattr(frames, "float"):  # a tensor (some pipelines ignore output_type="np")
        frames = frames.float().cpu().numpy()
    return RunResult(frames=frames, timings=timings, peak_memory=peak, device=device, profile=profile)
