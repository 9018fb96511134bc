"""A generation request: merged WanGP settings plus flags, checked before any model loads (pure Python).

:func:`build_request` checks every value and input file; :func:`wangp_cli.generate.runner.preflight` then checks
what is on disk (model files, the output). Single jobs, dry runs and manifest runs all go through both.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core import keys as K
from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import UsageError, WangpError
from wangp_cli.core.registry import get_architecture
from wangp_cli.core.settings import merged_settings
from wangp_cli.core.variants import Preference
from wangp_cli.families import FAMILIES, family_for_architecture
from wangp_cli.generate import cache
from wangp_cli.generate.accel import attention_problems
from wangp_cli.generate.engine import MANAGED_ARGUMENTS, PIPELINES
from wangp_cli.generate.image import FORMATS as IMAGE_FILE_FORMATS, SUFFIXES as IMAGE_SUFFIXES
from wangp_cli.generate.loras import for_request

#: Architectures wangp generates with (WanGP's documented finetune bases and their 1.3B / base siblings).
SUPPORTED = tuple(PIPELINES)
#: Architectures that take an end image (``--last-image``).
LAST_IMAGE = tuple(arch_id for family in FAMILIES.values() for arch_id, generated in family.architectures.items()
                   if "last_image" in generated.needs)
#: Media inputs that only some architectures take (a family's ``Generated.takes``).
CONTROL_INPUTS = ("control_video", "mask", "reference_images")
#: CLI flag -> the WanGP settings key it overrides.
FLAG_KEYS = {"prompt": "prompt", "negative_prompt": "negative_prompt", "resolution": "resolution",
             "frames": "video_length", "steps": "num_inference_steps", "guidance": "guidance_scale",
             "embedded_guidance": "embedded_guidance_scale", "flow_shift": "flow_shift", "seed": "seed",
             "cache": "skip_steps_cache_type", "cache_multiplier": "skip_steps_multiplier",
             "cache_start": "skip_steps_start_step_perc"}
MAX_SEED = 999999999
#: WanGP's limits, as ``wangp validate`` knows them: the steps slider and the largest side of its sizes.
MAX_STEPS = K.RANGES["num_inference_steps"][1]
MAX_SIDE = max(int(side) for size in K.UI_RESOLUTIONS for side in size.split("x"))
#: Guidance values: negative or non-finite ones give black or broken videos.
GUIDANCE_KEYS = ("guidance_scale", "flow_shift", "embedded_guidance_scale")
#: Media inputs: keyword -> (what the messages call it, image or video).
MEDIA = {"image": ("--image", "image"), "last_image": ("--last-image", "image"),
         "control_video": ("--control-video", "video"), "mask": ("--mask", "video"),
         "reference_images": ("--reference-image", "image")}
#: Image file formats (``--image-format``) -> the file suffixes that pick them with ``-o``.
IMAGE_FORMATS = {name: tuple(suffix for suffix, named in IMAGE_SUFFIXES.items() if named == name)
                 for name in IMAGE_FILE_FORMATS}
_RESOLUTION = re.compile(r"^\s*(\d{1,9})\s*[xX*]\s*(\d{1,9})\s*$")


def shown(value, limit: int = 40) -> str:
    """A value for a message: text in single quotes, anything else as JSON spells it (``true``, ``null``,
    ``NaN``, ``[1, 2]``); long ones shortened."""
    if isinstance(value, str):
        text = f"'{value}'"
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = str(value)
    if len(text) <= limit:
        return text
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{text[:12]}... ({len(text.lstrip('-'))} digits)"
    return text[:limit - 4] + "...'" if isinstance(value, str) else text[:limit - 3] + "..."


@dataclass
class GenerateRequest:
    """Everything one generation needs, resolved and validated."""

    model_id: str
    architecture: str
    family: str
    io_class: str
    settings: dict  # the WanGP settings used (``seed`` -1 until :meth:`draw_seed`)
    width: int
    height: int
    frames: int
    steps: int
    seed: int  # -1: drawn by :meth:`draw_seed` when the generation starts
    preference: Preference
    fps: int
    image: Path | None = None
    last_image: Path | None = None
    control_video: Path | None = None
    mask: Path | None = None
    reference_images: list[Path] = field(default_factory=list)
    output: Path | None = None
    profile: str | None = None
    components: Path | None = None
    pipeline_kwargs: dict = field(default_factory=dict)  # extra keyword arguments for the diffusers call
    random_seed: bool = False  # the settings asked for -1: ``seed`` is (or will be) drawn
    asked: tuple[str, ...] = ()  # the preference fields the user set ("quantization", "dtype")
    loras: object = None  # generate.loras.LoraPlan: the definition's, the settings' and --lora's LoRAs
    attention: str = "auto"  # --attention: a generate.accel.ATTENTION_CHOICES entry
    compile: bool = False  # --compile: regional torch.compile of the transformer blocks
    media: str = "video"  # "image" for architectures whose pipeline makes images (engine.makes_images)
    image_format: str | None = None  # --image-format (an IMAGE_FORMATS key) for images written into a folder
    no_audio: bool = False  # --no-audio: the mp4 gets no audio track even where the family returns one
    model_keys: dict = field(default_factory=dict)  # the definition's MODEL_KEYS (how the family samples)

    @property
    def family_settings(self) -> dict:
        """The settings with the definition's :data:`MODEL_KEYS` over them: what the family's hooks read."""
        return {**self.settings, **self.model_keys}

    def draw_seed(self) -> int:
        """The seed, drawn now when the settings ask for a random one (-1)."""
        if self.seed == -1:
            self.seed = secrets.randbelow(MAX_SEED + 1)
            self.settings["seed"] = self.seed
        return self.seed


#: Keys of a definition's ``model`` subtree that change how the family samples (WanGP's handlers read them from
#: the model definition, not from the settings): LTX-2's distilled pipeline, Z-Image TwinFlow's unified solver.
MODEL_KEYS = ("ltx2_pipeline", "unified_solver")


def parse_resolution(text: str) -> tuple[int, int]:
    """``"832x480"`` (WanGP's width x height) -> (832, 480)."""
    match = _RESOLUTION.match(str(text))
    if not match:
        raise UsageError(f"resolution {shown(text)} is not WIDTHxHEIGHT", hint="for example --resolution 832x480")
    return int(match[1]), int(match[2])


def _number(settings: dict, key: str, kind=int):
    value = settings.get(key)
    whole = kind is int
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and (
            not math.isfinite(value) or whole and not value.is_integer())):
        raise UsageError(f"setting '{key}' is {shown(value)}, not a {'whole ' if whole else 'finite '}number")
    return kind(value)


def _fitted(arch, width: int, height: int) -> tuple[int, int]:
    """The size WanGP renders: floored to the VAE block of models whose VAE needs more than 16 pixels (Wan 2.2
    TI2V 5B: 32; WanGP records the asked resolution)."""
    block = arch.handler_keys.get("vae_block_size")
    if isinstance(block, int) and block > 16 and width >= block and height >= block:
        return width // block * block, height // block * block
    return width, height


def frame_step(arch) -> int:
    """The frame counts an architecture takes are ``step*k + 1``: the step of WanGP's frames slider, reduced to
    what its minimum also fits (SkyReels-V2 DF's slider 17, 37, 57, ... is 4k+1 frames; LTX-2's 17, 25, ... is
    8k+1)."""
    low, _, step = arch.frames
    return math.gcd(low - 1, step) if low > 1 and step > 0 else max(step, 1)


def _frames_problem(arch, arch_id: str, frames: int) -> str | None:
    step = frame_step(arch)
    if frames < 1 or (frames - 1) % step:
        examples = "1, 5, 9, ..., 81" if step == 4 else ", ".join(str(1 + k * step) for k in range(3)) + ", ..."
        return f"frames {shown(frames)}: must be {step}k+1 ({examples})"
    if frames > arch.frames[1]:
        return f"frames {shown(frames)}: {arch_id} takes at most {arch.frames[1]} frames"
    return None


def image_format_for(output: Path | None, image_format: str | None) -> str:
    """The format of an image output: ``-o``'s suffix, else ``--image-format``, else PNG (lossless)."""
    suffix = output.suffix.lower() if output is not None else ""
    named = next((name for name, suffixes in IMAGE_FORMATS.items() if suffix in suffixes), None)
    return named or image_format or "png"


def _image_output_problems(model_id: str, images: bool, output, image_format, frames_given: bool) -> list[str]:
    """--frames, --image-format and ``-o``'s suffix against what the model makes (images or videos)."""
    if not images:
        return [f"--image-format is for image models; '{model_id}' makes videos (.mp4)"] if image_format else []
    problems = []
    if frames_given:
        problems.append(f"'{model_id}' makes images: --frames is for video models (an image is one frame)")
    if image_format is not None and image_format not in IMAGE_FORMATS:
        problems.append(f"--image-format {shown(image_format)}: use {', '.join(IMAGE_FORMATS)}")
    suffix = Path(output).suffix.lower() if output else ""
    named = next((name for name, suffixes in IMAGE_FORMATS.items() if suffix in suffixes), None)
    if named and image_format in IMAGE_FORMATS and named != image_format:
        problems.append(f"-o '{output}' is a {named} file but --image-format is {image_format}: give one of them")
    return problems


def _non_finite(data, where: str = "") -> list[tuple[str, float]]:
    """``(where, value)`` for each NaN or infinity in ``data`` (where: ``key``, ``key[2]``, ``key.sub``)."""
    if isinstance(data, float):
        return [] if math.isfinite(data) else [(where, data)]
    if isinstance(data, dict):
        return [found for key, value in data.items()
                for found in _non_finite(value, f"{where}.{key}" if where else str(key))]
    if isinstance(data, (list, tuple)):
        return [found for index, value in enumerate(data) for found in _non_finite(value, f"{where}[{index}]")]
    return []


def _media(path, option: str, kind: str) -> Path | None:
    """An input file, opened as generation will open it; UsageError when it cannot be used."""
    from wangp_cli.generate.video import media_problem

    if path is None:
        return None
    path = Path(path)
    problem = media_problem(path, kind)
    if problem:
        raise UsageError(f"{option} '{path}' {problem}", hint="give the path of a readable "
                                                                + ("image" if kind == "image" else "video or image"))
    return path


def refusing(arch_id: str) -> str | None:
    """Why a family that knows ``arch_id`` refuses to generate it (``Family.refused``), None when none does."""
    from wangp_cli.families import FAMILIES

    return next((f.refused[arch_id] for f in FAMILIES.values() if arch_id in f.refused), None)


def _unsupported(model_id: str, arch_id: str, target: str) -> WangpError:
    """Why a definition cannot be generated with, about what it names: a WanGP-only architecture (diffusers has
    no pipeline for it), one wangp does not support yet, or an id that is no base type at all."""
    arch = get_architecture(arch_id, target) if arch_id else None
    if not arch_id:
        return WangpError(f"'{model_id}' names no architecture", code="unsupported",
                          hint=f"run: wangp validate (supported: {', '.join(SUPPORTED)})")
    based = f"'{model_id}' is based on '{arch_id}', " if model_id != arch_id else f"'{arch_id}' is "
    if arch is None:
        reason = "not a base architecture of target " + target
        hint = "run: wangp validate; 'wangp list --architectures' lists the base ids"
    elif refusing(arch_id) is not None:
        reason = "refused by wangp: " + refusing(arch_id)
        hint = "generate it in WanGP; wangp still lists, validates, downloads and exports it"
    elif target == "v12" and not arch.pipeline:
        reason = f"a WanGP-only architecture ({arch.family}: diffusers has no pipeline for it)"
        hint = "generate it in WanGP; wangp still lists, validates, downloads and exports it"
    else:
        reason = (f"not yet supported by wangp ({arch.family}" + (f"; diffusers: {arch.pipeline}" if arch.pipeline
                                                                   else "") + ")")
        hint = "supported architectures: " + ", ".join(a for a in SUPPORTED if get_architecture(a, target))
    return WangpError(based + reason, code="unsupported", hint=hint)


def _pipeline_problems(pipeline_kwargs: dict) -> list[str]:
    problems = []
    for key in pipeline_kwargs:
        if key in MANAGED_ARGUMENTS:
            instead = MANAGED_ARGUMENTS[key]
            problems.append(f"--pipeline-arg {key}: wangp sets it" + (f" from {instead}" if instead else "")
                            + " (and records it in the metadata)")
    problems += [f"--pipeline-arg {where} is {shown(value)}: not a finite number"
                 for where, value in _non_finite(pipeline_kwargs)]
    return problems


def _image_problems(model_id: str, arch_id: str, image, last_image) -> list[str]:
    """What the model needs or refuses among --image and --last-image, about what was actually given."""
    generated = family_for_architecture(arch_id).architectures[arch_id]
    needs = generated.needs
    if "last_image" in needs:
        missing = [option for option, value in (("--image", image), ("--last-image", last_image)) if value is None]
        return [f"'{model_id}' is a first-last-frame model: give {' and '.join(missing)}"] if missing else []
    problems = []
    if "image" in needs and image is None:
        problems.append(f"'{model_id}' is an image-to-video model: give --image")
    if "image" not in needs + generated.takes and image is not None:
        problems.append(f"'{model_id}' is a text-to-video model: --image is only for image-to-video models")
    if last_image is not None and "last_image" not in generated.takes:
        problems.append(f"--last-image is only for first-last-frame models ({', '.join(LAST_IMAGE)}); "
                        f"'{model_id}' is {arch_id}")
    return problems


def _control_problems(arch_id: str, given: dict[str, bool]) -> list[str]:
    """--control-video, --mask and --reference-image (``given``: which were): only where the architecture takes
    them (Vace)."""
    takes = family_for_architecture(arch_id).architectures[arch_id].takes
    problems = []
    if any(given[name] for name in CONTROL_INPUTS if name not in takes):
        problems.append("--control-video, --mask and --reference-image are for Vace models")
    if given["mask"] and not given["control_video"]:
        problems.append("--mask needs --control-video")
    return problems


def build_request(catalog: Catalog, model_id: str, flags: dict | None = None, *, preference: Preference | None = None,
                  image=None, last_image=None, control_video=None, mask=None, reference_images=(), output=None,
                  profile: str | None = None, components=None, pipeline_kwargs: dict | None = None,
                  settings: dict | None = None, asked: tuple[str, ...] = (), loras=(), attention: str = "auto",
                  compile: bool = False, image_format: str | None = None,
                  no_audio: bool = False) -> GenerateRequest:
    """Merge settings (architecture < definition < settings file < ``settings`` < flags) and check every value
    and input file; nothing is loaded, nothing is written.

    ``flags`` are keyed by :data:`FLAG_KEYS` names (``frames``, ``steps``, ...); None values are ignored.
    ``settings`` are WanGP settings keys (``video_length``, ``num_inference_steps``, ...), e.g. from a manifest.
    ``loras``: ``--lora FILE_OR_URL[:MULTIPLIER]`` values, added to the settings' ``activated_loras``.
    ``attention`` / ``compile``: the speed levers (generate.accel), checked here against the family and what is
    installed; ``cache`` ``"none"`` in ``flags`` or ``settings`` is WanGP's empty ``skip_steps_cache_type``.
    Image architectures (``engine.makes_images``) make one frame: the settings' ``video_length`` becomes 1 (as
    WanGP sets it for images), ``--frames`` is refused; ``image_format``: png | jpeg | webp for folder outputs.
    """
    from wangp_cli.generate.engine import makes_images

    definition = catalog.get(model_id)
    arch_id = definition.architecture or ""
    arch = get_architecture(arch_id, catalog.target)
    if arch is None or arch_id not in SUPPORTED:
        raise _unsupported(model_id, arch_id, catalog.target)
    unknown = sorted(set(flags or {}) - set(FLAG_KEYS))
    if unknown:
        raise UsageError(f"unknown generation setting(s): {', '.join(unknown)}")
    overrides = {**(settings or {}),
                 **{FLAG_KEYS[k]: v for k, v in (flags or {}).items() if v is not None}}
    if isinstance(overrides.get("skip_steps_cache_type"), str):  # --cache none: WanGP's "" (no step cache)
        overrides["skip_steps_cache_type"] = cache.settings_value(overrides["skip_steps_cache_type"])
    settings, _ = merged_settings(definition, catalog, {k: v for k, v in overrides.items() if v is not None})
    images = makes_images(arch_id)
    if images:
        settings["video_length"] = 1  # what WanGP's generate_media sets (and records) for an image
    lora_plan = for_request(catalog, definition, arch, family_for_architecture(arch_id), settings, list(loras))
    width, height = _fitted(arch, *parse_resolution(settings.get("resolution", "832x480")))
    frames = _number(settings, "video_length")
    steps = _number(settings, "num_inference_steps")
    seed = _number(settings, "seed")
    non_finite = _non_finite(settings)
    problems = [f"setting '{where}' is {shown(value)}: not a finite number" for where, value in non_finite]
    if width % 16 or height % 16 or width <= 0 or height <= 0:
        problems.append(f"resolution {shown(width)}x{shown(height)}: width and height must be positive multiples "
                        "of 16")
    elif max(width, height) > MAX_SIDE:
        problems.append(f"resolution {shown(width)}x{shown(height)}: at most {MAX_SIDE} pixels a side (WanGP's "
                        "largest size)")
    frames_refused = None if images else _frames_problem(arch, arch_id, frames)
    if frames_refused:
        problems.append(frames_refused)
    problems += _image_output_problems(model_id, images, output, image_format,
                                       (flags or {}).get("frames") is not None)
    if steps < 1:
        problems.append(f"steps {shown(steps)}: must be at least 1")
    elif steps > MAX_STEPS:
        problems.append(f"steps {shown(steps)}: at most {MAX_STEPS} (WanGP's limit)")
    if seed < -1 or seed > MAX_SEED:
        problems.append(f"seed {shown(seed)}: must be -1 (random) or 0..{MAX_SEED}")
    for key in GUIDANCE_KEYS:
        if key in settings and key not in dict(non_finite) and _number(settings, key, float) < 0:
            problems.append(f"{key} {shown(settings[key])}: must not be negative")
    problems += _image_problems(model_id, arch_id, image, last_image)
    problems += _control_problems(arch_id, {"control_video": control_video is not None, "mask": mask is not None,
                                            "reference_images": bool(reference_images)})
    model_keys = {key: definition.model[key] for key in MODEL_KEYS if key in definition.model}
    problems += family_for_architecture(arch_id).refusals(model_id, arch_id, {**settings, **model_keys})
    problems += _pipeline_problems(pipeline_kwargs or {})
    problems += cache.check_cache_settings(settings, arch_id)
    attention_refused = attention_problems(attention, arch.family)
    if profile == "cpu" and attention not in ("auto", "sdpa") and not attention_refused:
        attention_refused.append(f"--attention {attention} needs a CUDA GPU; --profile cpu runs on the CPU (sdpa)")
    problems += attention_refused
    if problems:
        raise UsageError("; ".join(problems), hint="fix the flags or the definition's settings")
    settings["seed"] = seed
    return GenerateRequest(
        model_id=model_id, architecture=arch_id, family=arch.family, io_class=arch.io_class, settings=settings,
        width=width, height=height, frames=frames, steps=steps, seed=seed, preference=preference or Preference(),
        fps=arch.fps, image=_media(image, *MEDIA["image"]), last_image=_media(last_image, *MEDIA["last_image"]),
        control_video=_media(control_video, *MEDIA["control_video"]), mask=_media(mask, *MEDIA["mask"]),
        reference_images=[_media(p, *MEDIA["reference_images"]) for p in reference_images],
        output=Path(output) if output else None, profile=profile,
        components=Path(components) if components else None, pipeline_kwargs=dict(pipeline_kwargs or {}),
        random_seed=seed == -1, asked=tuple(asked), loras=lora_plan, attention=attention, compile=bool(compile),
        media="image" if images else "video", image_format=image_format if images else None,
        no_audio=bool(no_audio), model_keys=model_keys)
