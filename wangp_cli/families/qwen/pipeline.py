"""Qwen-Image pipelines as WanGP runs them (``models/qwen/qwen_main.py``): its two samplers (flow-matching Euler
with dynamic shifting: ``default`` and the ``lightning`` one of the Lightning LoRAs), true CFG at
``guidance_scale`` with WanGP's negative prompt when the settings give none, the edit images (Plus: the start
image then the reference images, each its own condition)."""

from __future__ import annotations

import math
from pathlib import Path

#: WanGP's negative prompt when the settings' is empty (``qwen_main.generate``).
DEFAULT_NEGATIVE = "text, watermark, copyright, blurry, low resolution"
#: WanGP's scheduler configs by ``sample_solver`` (``qwen_main.generate``; "" is "default", as its fix_settings).
_DEFAULT = {"base_image_seq_len": 256, "base_shift": 0.5, "invert_sigmas": False, "max_image_seq_len": 8192,
            "max_shift": 0.9, "num_train_timesteps": 1000, "shift": 1.0, "shift_terminal": 0.02,
            "stochastic_sampling": False, "time_shift_type": "exponential", "use_beta_sigmas": False,
            "use_dynamic_shifting": True, "use_exponential_sigmas": False, "use_karras_sigmas": False}
SCHEDULERS = {
    "default": _DEFAULT,
    # the distillation's shift 3 at every size (base_shift = max_shift = ln 3), no terminal stretch
    "lightning": {**_DEFAULT, "base_shift": math.log(3), "max_shift": math.log(3), "shift_terminal": None},
}
#: Architectures whose pipeline takes a list of condition images (the start image, then the references).
IMAGE_LISTS = ("qwen_image_edit_plus_20B", "qwen_image_edit_plus2_20B")


def solver(settings: dict) -> str:
    return settings.get("sample_solver") or "default"


def parts(request, components: Path) -> dict:
    """Nothing apart: every component in the pipeline's dtype (the diffusers docs' recipe)."""
    return {}


def scheduler(pipe, request) -> None:
    """WanGP's scheduler of the settings' ``sample_solver`` (``flow_shift`` plays no part: the shift follows the
    image size, ``use_dynamic_shifting``)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config,
                                                                 **SCHEDULERS[solver(request.settings)])


def call_arguments(request) -> dict:
    """``true_cfg_scale`` = ``guidance_scale`` with the negative prompt (WanGP's default one when empty; none at
    guidance 1 or less, where no CFG runs); Plus: ``image`` = [start image, reference images...]."""
    settings = request.settings
    guidance = float(settings.get("guidance_scale", 4.0))
    arguments = {"true_cfg_scale": guidance,
                 "negative_prompt": (settings.get("negative_prompt") or DEFAULT_NEGATIVE) if guidance > 1 else None}
    if request.architecture in IMAGE_LISTS and request.reference_images:
        from wangp_cli.generate.engine import MEDIA_ARGUMENTS

        read_image = MEDIA_ARGUMENTS["image"][1]
        arguments["image"] = [read_image(path, request) for path in [request.image, *request.reference_images]]
        arguments["reference_images"] = None  # not a keyword of the pipeline: they went into ``image``
    return arguments
