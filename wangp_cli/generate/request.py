"""A generation request: merged WanGP settings plus flags, checked before any model loads (pure Python)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import UsageError, WangpError
from wangp_cli.core.registry import get_architecture
from wangp_cli.core.settings import merged_settings
from wangp_cli.core.variants import Preference
from wangp_cli.generate.engine import PIPELINES

#: Architectures wangp generates with (WanGP's documented finetune bases and their 1.3B / base siblings).
SUPPORTED = tuple(PIPELINES)
#: Architectures that take an end image (``--last-image``).
LAST_IMAGE = ("flf2v_720p",)
#: CLI flag -> the WanGP settings key it overrides.
FLAG_KEYS = {"prompt": "prompt", "negative_prompt": "negative_prompt", "resolution": "resolution",
             "frames": "video_length", "steps": "num_inference_steps", "guidance": "guidance_scale",
             "embedded_guidance": "embedded_guidance_scale", "flow_shift": "flow_shift", "seed": "seed"}
MAX_SEED = 999999999
_RESOLUTION = re.compile(r"^\s*(\d+)\s*[xX*]\s*(\d+)\s*$")


@dataclass
class GenerateRequest:
    """Everything one generation needs, resolved and validated."""

    model_id: str
    architecture: str
    family: str
    io_class: str
    settings: dict  # the WanGP settings used (seed resolved)
    width: int
    height: int
    frames: int
    steps: int
    seed: int
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
    random_seed: bool = False  # the settings asked for -1: ``seed`` was drawn

    @property
    def is_vace(self) -> bool:
        return self.architecture.startswith("vace")


def parse_resolution(text: str) -> tuple[int, int]:
    """``"832x480"`` (WanGP's width x height) -> (832, 480)."""
    match = _RESOLUTION.match(str(text))
    if not match:
        raise UsageError(f"resolution '{text}' is not WIDTHxHEIGHT", hint="for example --resolution 832x480")
    return int(match[1]), int(match[2])


def _number(settings: dict, key: str, kind=int):
    value = settings.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
        raise UsageError(f"setting '{key}' is {value!r}, not a {'whole ' if kind is int else ''}number")
    return kind(value)


def _existing(path, what: str) -> Path | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} '{path}' does not exist", hint="give the path of a readable file")
    return path


def build_request(catalog: Catalog, model_id: str, flags: dict | None = None, *, preference: Preference | None = None,
                  image=None, last_image=None, control_video=None, mask=None, reference_images=(), output=None,
                  profile: str | None = None, components=None, pipeline_kwargs: dict | None = None,
                  settings: dict | None = None) -> GenerateRequest:
    """Merge settings (architecture < definition < settings file < ``settings`` < flags) and check every value.

    ``flags`` are keyed by :data:`FLAG_KEYS` names (``frames``, ``steps``, ...); None values are ignored.
    ``settings`` are WanGP settings keys (``video_length``, ``num_inference_steps``, ...), e.g. from a manifest.
    """
    definition = catalog.get(model_id)
    arch_id = definition.architecture or ""
    arch = get_architecture(arch_id, catalog.target)
    if arch is None or arch_id not in SUPPORTED:
        raise WangpError(f"'{model_id}' is based on '{arch_id}', which wangp cannot generate with",
                         code="unsupported", hint=f"supported architectures: {', '.join(SUPPORTED)}")
    overrides = {**(settings or {}),
                 **{FLAG_KEYS[k]: v for k, v in (flags or {}).items() if v is not None and k in FLAG_KEYS}}
    unknown = sorted(set(flags or {}) - set(FLAG_KEYS))
    if unknown:
        raise UsageError(f"unknown generation setting(s): {', '.join(unknown)}")
    settings, _ = merged_settings(definition, catalog, {k: v for k, v in overrides.items() if v is not None})
    width, height = parse_resolution(settings.get("resolution", "832x480"))
    frames = _number(settings, "video_length")
    steps = _number(settings, "num_inference_steps")
    seed = _number(settings, "seed")
    problems = []
    if width % 16 or height % 16 or width <= 0 or height <= 0:
        problems.append(f"resolution {width}x{height}: width and height must be positive multiples of 16")
    if frames < 1 or (frames - 1) % 4:
        problems.append(f"frames {frames}: must be 4k+1 (1, 5, 9, ..., 81)")
    if steps < 1:
        problems.append(f"steps {steps}: must be at least 1")
    if seed < -1 or seed > MAX_SEED:
        problems.append(f"seed {seed}: must be -1 (random) or 0..{MAX_SEED}")
    for key in ("guidance_scale", "flow_shift", "embedded_guidance_scale"):
        if key in settings and _number(settings, key, float) < 0:
            problems.append(f"{key} {settings[key]}: must not be negative")
    if arch.io_class == "i2v" and image is None:
        problems.append(f"'{model_id}' is an image-to-video model: give --image")
    if arch.io_class != "i2v" and (image is not None or last_image is not None):
        problems.append(f"'{model_id}' is a text-to-video model: --image is only for image-to-video models")
    if last_image is None and arch_id in LAST_IMAGE:
        problems.append(f"'{model_id}' is a first-last-frame model: give --image and --last-image")
    if last_image is not None and arch_id not in LAST_IMAGE:
        problems.append(f"--last-image needs a first-last-frame model ({', '.join(LAST_IMAGE)})")
    vace = arch_id.startswith("vace")
    if not vace and (control_video is not None or mask is not None or reference_images):
        problems.append("--control-video, --mask and --reference-image are for Vace models")
    if mask is not None and control_video is None:
        problems.append("--mask needs --control-video")
    if problems:
        raise UsageError("; ".join(problems), hint="fix the flags or the definition's settings")
    random_seed = seed == -1
    if random_seed:
        seed = secrets.randbelow(MAX_SEED + 1)
    settings["seed"] = seed
    return GenerateRequest(
        model_id=model_id, architecture=arch_id, family=arch.family, io_class=arch.io_class, settings=settings,
        width=width, height=height, frames=frames, steps=steps, seed=seed, preference=preference or Preference(),
        fps=arch.fps, image=_existing(image, "image"), last_image=_existing(last_image, "last image"),
        control_video=_existing(control_video, "control video"), mask=_existing(mask, "mask"),
        reference_images=[_existing(p, "reference image") for p in reference_images],
        output=Path(output) if output else None, profile=profile,
        components=Path(components) if components else None, pipeline_kwargs=dict(pipeline_kwargs or {}),
        random_seed=random_seed)
