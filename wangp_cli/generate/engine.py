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
    frames: object  # numpy (T, H, W, 3) float in [0, 1]; an image family's image is T = 1
    audio: object = None  # (numpy float (channels, samples) in [-1, 1], sample rate) of a video+audio family
    timings: dict = field(default_factory=dict)
    peak_memory: dict = field(default_factory=dict)
    device: str = "cpu"
    profile: str = "cpu"
    step_seconds: list = field(default_factory=list)  # per denoising step, CUDA-synchronised
    transformer_calls: int = 0  # forwards of the pipeline's transformer(s)


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


#: CUDA allocator settings wangp starts with unless the user set their own (gpu-review D4, D5): expandable segments
#: against fragmentation between the denoise and the decode, and, where this torch knows the key (added in 2026,
#: pytorch#171662; an unknown key is an error), pinned host blocks not rounded up to a power of two (group
#: offloading's pinned copies would take ~1.5x the model).
CUDA_ALLOC_CONF = "expandable_segments:True"
PINNED_ROUNDING = "pinned_max_round_threshold_mb:1"


def _torch_knows(key: str) -> bool:
    """Whether the installed torch's allocator configuration parses ``key`` (read from its shipped C++ header, so
    without importing torch or touching CUDA)."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    for root in (spec.submodule_search_locations or []) if spec else []:
        header = Path(root) / "include" / "c10" / "core" / "AllocatorConfig.h"
        try:
            return key.split(":")[0] in header.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
    return False


def prepare_cuda_environment() -> None:
    """Set the allocator settings before the first CUDA allocation (torch reads them when its allocators start)."""
    import os

    if not any(os.environ.get(name) for name in ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF")):
        knows = _torch_knows(PINNED_ROUNDING)
        os.environ["PYTORCH_ALLOC_CONF"] = CUDA_ALLOC_CONF + ("," + PINNED_ROUNDING if knows else "")


def _tensor_bytes(tensor) -> int:
    """Bytes a tensor really holds: a wrapper subclass (quanto's int8 weights report their scale dtype, 2 bytes
    an element) is the sum of its inner tensors (int8 data + scales)."""
    flatten = getattr(tensor, "__tensor_flatten__", None)
    if flatten is not None and type(tensor).__name__ not in ("Tensor", "Parameter"):
        names, _ = flatten()
        return sum(_tensor_bytes(getattr(tensor, name)) for name in names)
    return tensor.numel() * tensor.element_size()


def module_bytes(module) -> int:
    """Real bytes of a module's parameters and buffers (each shared tensor once; quanto int8 at its size)."""
    if module is None or not hasattr(module, "parameters"):
        return 0
    seen, total = set(), 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += _tensor_bytes(tensor)
    return total


def transformers(pipe) -> list:
    """The pipeline's transformers (``transformer``, and ``transformer_2`` of Wan 2.2 A14B)."""
    return [model for model in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None))
            if model is not None]


# -- memory planning ---------------------------------------------------------------------------------------------

#: Parameters of each family's other components (the diffusers repos' files): (params, bytes per param as
#: wangp loads them: text encoders in the compute dtype, Wan's VAE and CLIP image encoder in fp32).
COMPONENT_PARAMS = {
    "wan": {"text_encoder": (5.68e9, 2), "vae": (0.127e9, 4), "image_encoder": (0.632e9, 4)},
    "wan_2_2_vae": {"text_encoder": (5.68e9, 2), "vae": (0.705e9, 4)},
    "hunyuan": {"text_encoder": (7.5e9, 2), "text_encoder_2": (0.123e9, 2), "vae": (0.246e9, 2)},
    "hunyuan_i2v": {"text_encoder": (8.35e9, 2), "text_encoder_2": (0.123e9, 2), "vae": (0.246e9, 2)},
}
#: HunyuanVideo's transformer (13B class) has no compact per-block formula worth keeping: its parameter count.
HUNYUAN_TRANSFORMER_PARAMS = 12.8e9
#: Transformer-side activations per latent token, in multiples of (ffn + 4 * dim) 16-bit values (the FFN
#: intermediate plus q, k, v and the output of attention), with headroom for the allocator.
ACTIVATION_FACTOR = 1.5
#: Untiled fp32 VAE decode, bytes per output pixel of one frame: ~7 GB at 832x480 (twice the 3.39 GB bf16 peak
#: measured in kijai/ComfyUI-WanVideoWrapper#2042); the decode is causal, frame by frame, so frames only add the
#: output tensor. Halved for a 16-bit VAE; tiled, the peak is that of one 256-pixel tile (plus the output).
DECODE_BYTES_PER_PIXEL = 17_500
TILE_PIXELS = 256 * 256
#: The CUDA context and what the allocator keeps besides.
CUDA_OVERHEAD = 768 * 1024**2


def _wan_block_params(dim: int, ffn: int, image: bool) -> float:
    """Self- and cross-attention (q, k, v, o each dim x dim, image keys/values for i2v), the FFN, norms."""
    return (8 + (2 if image else 0)) * dim * dim + 2 * dim * ffn + 10 * dim


def _generated(arch):
    from wangp_cli.families import generation

    return generation(arch.id)


def _transformer_params(arch) -> float:
    generated = _generated(arch)
    if generated is not None and generated.params:
        return generated.params
    shape = arch.transformer or {}
    if shape.get("kind") == "hunyuan":
        return HUNYUAN_TRANSFORMER_PARAMS
    dim, ffn = shape.get("dim", 1536), shape.get("ffn_dim", 8960)
    block = _wan_block_params(dim, ffn, "image_encoder" in arch.components)  # CLIP image keys/values
    blocks = shape.get("num_layers", 30) + len(shape.get("vace_layers", ()))
    return block * blocks + 2 * dim * (shape.get("text_dim", 4096) + 256)


def _component_table(arch) -> dict:
    generated = _generated(arch)
    if generated is not None and generated.component_params:
        return dict(generated.component_params)
    if arch.family == "hunyuan":
        return COMPONENT_PARAMS["hunyuan_i2v" if arch.io_class == "i2v" else "hunyuan"]
    table = COMPONENT_PARAMS["wan_2_2_vae" if (arch.transformer or {}).get("in_channels") == 48 else "wan"]
    return {name: value for name, value in table.items() if name != "image_encoder" or name in arch.components}


def estimated_bytes(arch_id: str, target: str = "v12", quantized: bool = False) -> dict[str, int]:
    """Bytes of each pipeline component of an architecture as wangp loads it, without loading anything (doctor's
    plan): the transformer(s) from their shapes (int8: 1 byte a weight), the other parts from their repos."""
    from wangp_cli.core.registry import get_architecture
    from wangp_cli.generate.weights import transformer_slots

    arch = get_architecture(arch_id, target)
    if arch is None:
        raise UsageError(f"unknown architecture '{arch_id}'")
    per_weight = 1.02 if quantized else 2  # int8 data plus one scale per output row
    sizes = {slot: int(_transformer_params(arch) * per_weight) for slot in transformer_slots(arch_id)}
    sizes.update({name: int(params * size) for name, (params, size) in _component_table(arch).items()})
    return sizes


def latent_tokens(arch, width: int, height: int, frames: int) -> int:
    """Transformer tokens of one request (VAE stride 8 in space, 4 in time; patch 2; Wan 2.2's VAE 16)."""
    shape = arch.transformer or {}
    stride = 32 if shape.get("in_channels") == 48 else 16
    return ((frames - 1) // 4 + 1) * (height // stride) * (width // stride)


def decode_bytes(width: int, height: int, frames: int, *, vae_dtype: str = "fp32", tiled: bool = False) -> int:
    """Peak bytes of the VAE decode of one request (see :data:`DECODE_BYTES_PER_PIXEL`) with its output."""
    pixels = TILE_PIXELS if tiled else width * height
    scale = 1 if vae_dtype == "fp32" else 0.5
    return int(DECODE_BYTES_PER_PIXEL * pixels * scale) + frames * width * height * 3 * 4


def request_margin(arch_id: str, width: int, height: int, frames: int, *, vae_dtype: str = "fp32",
                   tiled: bool = False, target: str = "v12") -> int:
    """Bytes a request needs beyond the weights: the largest of its stages (they run one after another: the
    transformer's activations, the VAE decode), plus the CUDA context."""
    from wangp_cli.core.registry import get_architecture

    arch = get_architecture(arch_id, target)
    shape = arch.transformer or {}
    dim = shape.get("dim") or shape.get("num_attention_heads", 24) * shape.get("attention_head_dim", 128)
    ffn = shape.get("ffn_dim") or int(dim * shape.get("mlp_ratio", 4.0))
    activations = int(latent_tokens(arch, width, height, frames) * (ffn + 4 * dim) * 2 * ACTIVATION_FACTOR)
    if arch.family == "hunyuan":
        vae_dtype, tiled = "bf16", True  # its VAE is 16-bit, and always tiled (apply_profile)
    return max(activations, decode_bytes(width, height, frames, vae_dtype=vae_dtype, tiled=tiled)) + CUDA_OVERHEAD


#: The components group offloading streams block by block (the rest stays on the GPU).
GROUPED = ("transformer", "text_encoder")


def choose_profile(free: int, components: dict[str, int], margin: int, *, quantized: bool = False) -> str:
    """The fastest profile whose peak fits ``free`` bytes: everything resident (gpu), the largest component
    resident with the request's margin (offload), the non-grouped parts resident (group), else lowvram.
    ``quantized`` weights are already counted at their size in ``components``; group offloading moves them
    too (see :func:`_group_offload`), so the choice does not change with it."""
    del quantized
    everything = sum(components.values())
    largest = max(components.values(), default=0)
    resident = sum(size for name, size in components.items() if not name.startswith(GROUPED))
    block = largest // 40  # one block of a transformer (or encoder layer) in flight
    if free > everything + margin:
        return "gpu"
    if free > largest + margin:
        return "offload"
    if free > resident + 2 * block + margin:
        return "group"
    return "lowvram"


PROFILE_LADDER = ("gpu", "offload", "group", "lowvram")


def lower_profile(profile: str) -> str | None:
    """The profile one step down (what an out-of-memory retry takes); None below lowvram or on the CPU."""
    profile = "lowvram" if profile == "offload+tiling" else profile
    if profile not in PROFILE_LADDER:
        return None
    index = PROFILE_LADDER.index(profile)
    return PROFILE_LADDER[index + 1] if index + 1 < len(PROFILE_LADDER) else None


def pick_profile(pipe, requested: str | None, *, request=None, quantized: bool = False) -> tuple[str, str]:
    """(profile, device). Without CUDA only ``cpu`` exists; by default the profile follows free VRAM and the
    request's size (:func:`request_margin`; 81 frames at 832x480 without a request)."""
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
    components = {name: module_bytes(getattr(pipe, name, None)) for name in pipe.components}
    if request is not None:
        margin = request_margin(request.architecture, request.width, request.height, request.frames)
    else:
        margin = request_margin("t2v_1.3B", 832, 480, 81)
    return choose_profile(free, components, margin, quantized=quantized), "cuda"


# -- placement -----------------------------------------------------------------------------------------------------

def block_path(module) -> list[str]:
    """The child names leading from ``module`` to the ModuleList that holds most of its weights, for diffusers'
    ``apply_group_offloading(block_modules=...)``: block-level offloading only groups *direct* ModuleList
    children, and a text encoder keeps its layers deeper (UMT5 ``encoder.block``, CLIP ``encoder.
    layers``, Llava ``model.language_model.layers``), so without it the whole encoder is one group (gpu-review D2)."""
    import torch

    lists = [(module_bytes(sub), -name.count("."), name) for name, sub in module.named_modules()
             if name and isinstance(sub, (torch.nn.ModuleList, torch.nn.Sequential))]
    if not lists:
        return []
    _, _, name = max(lists)  # the heaviest list, the shallowest of equals (a block's own lists weigh less)
    return name.split(".")[:-1]


def _quanto_aware_group_offloading() -> None:
    """Let diffusers' group offloading move quanto int8 weights whole.

    diffusers moves a parameter with ``param.data = moved``, which swaps only a wrapper subclass's outer shell and
    leaves quanto's int8 data and scales behind (diffusers#12610; the fix, diffusers#14038, is not released). It
    already moves TorchAO's wrapper tensors with ``torch.utils.swap_tensors`` (its ``_is_torchao_tensor`` branch,
    diffusers#13276); quanto tensors are routed through the same branch. Only without streams: a pinned copy
    (``pin_memory``) would drop the quanto subclass, so quanto modules are offloaded with ``use_stream=False``."""
    from diffusers.hooks import group_offloading

    original = group_offloading._is_torchao_tensor
    if getattr(original, "wangp_quanto", False):
        return
    from optimum.quanto import QTensor

    def is_wrapper_tensor(tensor) -> bool:
        return isinstance(tensor, QTensor) or original(tensor)

    is_wrapper_tensor.wangp_quanto = True
    group_offloading._is_torchao_tensor = is_wrapper_tensor


def _has_quanto(module) -> bool:
    from optimum.quanto import QTensor

    return any(isinstance(p, QTensor) for p in module.parameters())


def _ram_available() -> int:
    from wangp_cli.generate.doctor import _ram_available as available

    return available()


#: Below this many times a transformer's size in available RAM, its group offloading keeps pageable copies
#: (``low_cpu_mem_usage``) instead of pinned ones: pinned copies are faster but exist beside the model.
PINNED_RAM_FACTOR = 1.6


def _group_offload(name: str, module, onload, offload) -> dict:
    """Block-level group offloading of one component; returns how (for the record)."""
    from diffusers.hooks import apply_group_offloading

    quanto = _has_quanto(module)
    if quanto:
        _quanto_aware_group_offloading()
    # text encoders run twice per video: never pinned (their 11-16 GB would stay locked in RAM); quanto: no streams
    stream = name.startswith("transformer") and not quanto
    low_memory = stream and _ram_available() < PINNED_RAM_FACTOR * module_bytes(module)
    path = block_path(module)
    apply_group_offloading(module, onload_device=onload, offload_device=offload, offload_type="block_level",
                           num_blocks_per_group=1, use_stream=stream, low_cpu_mem_usage=low_memory,
                           block_modules=path or None)
    return {"stream": stream, "pinned": stream and not low_memory, "block_modules": path}


#: Families whose VAE is always tiled (HunyuanVideo's untiled 720p decode is a known OOM point, and diffusers'
#: own examples enable it).
ALWAYS_TILED = ("hunyuan",)


def _decode_fits(request, tiled: bool = False) -> bool:
    import torch

    free, _ = torch.cuda.mem_get_info()
    vae = "fp32" if request.family == "wan" else "bf16"
    return free > decode_bytes(request.width, request.height, request.frames, vae_dtype=vae, tiled=tiled)


def apply_profile(pipe, profile: str, *, quantized: bool = False, warn=print, family: str | None = None,
                  request=None) -> str:
    """Place the pipeline for ``profile``; returns the profile actually used. ``family``/``request``: VAE tiling
    where the family always needs it, or where the decode would not fit the free memory after placement."""
    import torch

    del quantized  # quanto weights move under every profile (see _group_offload)
    family = family or (request.family if request is not None else None)
    if profile == "cpu":
        return profile
    if profile == "gpu":
        pipe.to("cuda")
    elif profile == "offload":
        pipe.enable_model_cpu_offload()
    elif profile in ("group", "lowvram"):
        onload, offload = torch.device("cuda"), torch.device("cpu")
        for name, module in pipe.components.items():
            if not isinstance(module, torch.nn.Module):
                continue
            if name.startswith(GROUPED):
                _group_offload(name, module, onload, offload)
            else:
                module.to(onload)
    else:
        raise UsageError(f"unknown profile '{profile}'", hint=f"choose one of {', '.join(PROFILES)}")
    vae = getattr(pipe, "vae", None)
    if vae is not None and hasattr(vae, "enable_tiling"):
        if profile == "lowvram" or family in ALWAYS_TILED:
            vae.enable_tiling()
        elif request is not None and not _decode_fits(request):
            warn(f"the VAE decode of {request.width}x{request.height} would not fit the free GPU memory: decoding "
                 "in tiles")
            vae.enable_tiling()
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


def makes_images(arch_id: str) -> bool:
    """Whether the architecture's pipeline makes images (``num_frames`` not passed, ``output.images`` read)."""
    from wangp_cli.core.registry import get_architecture

    arch = get_architecture(arch_id, "v12")
    return arch is not None and arch.output == "image"


def call_arguments(request, pipe, generator) -> dict:
    """The keyword arguments of the diffusers call: the common ones, the media inputs given, the family's (a None
    value of the family's removes a common one)."""
    kwargs = {"prompt": request.settings["prompt"], "height": request.height, "width": request.width,
              "num_frames": request.frames, "num_inference_steps": request.steps, "generator": generator,
              "output_type": "np"}
    if makes_images(request.architecture):
        del kwargs["num_frames"]
    for name, (keyword, read) in MEDIA_ARGUMENTS.items():
        value = getattr(request, name)
        if value:  # build_request let through only what the architecture takes
            kwargs[keyword] = read(value, request)
    kwargs.update(family_for_architecture(request.architecture).call_arguments(request))
    kwargs = {key: value for key, value in kwargs.items() if value is not None}
    kwargs.update(request.pipeline_kwargs)  # build_request refuses the managed keys
    return kwargs


def output_frames(output):
    """The first video of a pipeline output as numpy (T, H, W, 3) float: ``frames[0]`` of video pipelines,
    ``images[0]`` (T = 1) of image pipelines; tensors and PIL images converted."""
    import numpy as np

    frames = output.frames[0] if getattr(output, "frames", None) is not None else output.images[:1]
    if hasattr(frames, "float"):  # a tensor (some pipelines ignore output_type="np"; output_type="latent")
        frames = frames.float().cpu().numpy()
    if isinstance(frames, list):  # PIL images (a pipeline without output_type="np")
        frames = np.stack([np.asarray(f, dtype=np.float32) / 255.0 if not isinstance(f, np.ndarray) else f
                           for f in frames])
    frames = np.asarray(frames)
    return frames[None] if frames.ndim == 3 else frames


def _peak_memory(device: str, lowest_free: int | None) -> dict:
    """Peak host RSS; on CUDA the allocator's peaks (allocated, reserved), the device-level peak (total minus the
    lowest free memory seen at the step ends: context and other processes included) and pinned host memory."""
    import resource

    import torch

    peak = {"ram_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    if device == "cuda":
        _, total = torch.cuda.mem_get_info()
        allocated = torch.cuda.max_memory_allocated()
        peak.update(vram_bytes=allocated, vram_allocated_bytes=allocated,
                    vram_reserved_bytes=torch.cuda.max_memory_reserved(),
                    vram_device_peak_bytes=total - lowest_free if lowest_free is not None else None,
                    pinned_host_bytes=torch.cuda.host_memory_stats().get("allocated_bytes.current", 0))
    return peak


def run(pipe, request, *, device: str, profile: str, on_step=None, on_stage=None) -> RunResult:
    """Call the pipeline; time encode (to the first transformer call), denoise (to the last step, and each step),
    decode; on CUDA every mark waits for the GPU (``synchronize``) so that the times are the GPU's.
    ``on_step(n, total)`` after each step; ``on_stage(name)`` as encode, denoise and decode begin (decode: after
    step ``request.steps``)."""
    import torch

    cuda = device == "cuda"
    marks: dict = {"calls": 0}
    steps: list = []
    lowest_free: list = []

    def now() -> float:
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def first_forward(*_args, **_kwargs):
        marks["calls"] += 1
        if "denoise_start" not in marks:
            marks["denoise_start"] = marks["step_start"] = now()
            if on_stage:
                on_stage("denoise")

    handles = [model.register_forward_pre_hook(first_forward) for model in transformers(pipe)]

    def step_end(_pipe, step, _timestep, callback_kwargs):
        marks["denoise_end"] = now()
        steps.append(marks["denoise_end"] - marks.get("step_start", marks["denoise_end"]))
        marks["step_start"] = marks["denoise_end"]
        if cuda:
            lowest_free.append(torch.cuda.mem_get_info()[0])
        if on_step:
            on_step(step + 1, request.steps)
        if on_stage and step + 1 == request.steps:
            on_stage("decode")
        return callback_kwargs

    generator = torch.Generator("cpu").manual_seed(request.seed)
    kwargs = call_arguments(request, pipe, generator)
    kwargs.setdefault("callback_on_step_end", step_end)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        lowest_free.append(torch.cuda.mem_get_info()[0])
    if on_stage:
        on_stage("encode")
    start = now()
    try:
        with torch.inference_mode():
            output = pipe(**kwargs)
    finally:
        for handle in handles:
            handle.remove()
    end = now()
    begin = marks.get("denoise_start", start)
    finish = marks.get("denoise_end", end)
    timings = {"encode": begin - start, "denoise": finish - begin, "decode": end - finish}
    peak = _peak_memory(device, min(lowest_free) if lowest_free else None)
    audio = family_for_architecture(request.architecture).audio(pipe, output)
    return RunResult(frames=output_frames(output), audio=audio, timings=timings, peak_memory=peak, device=device,
                     profile=profile, step_seconds=steps, transformer_calls=marks["calls"])
