"""Kandinsky 5 pipelines: flow-matching Euler with WanGP's ``flow_shift``, classifier-free guidance, WanGP's
negative prompt and Qwen prompt length.

WanGP's sampler (``kandinsky/generation_utils.generate``) steps the timesteps ``s * t / (1 + (s - 1) * t)`` with
``s = flow_shift`` (its ``scheduler_scale``): FlowMatchEulerDiscreteScheduler's static ``shift``. WanGP sends an empty
negative prompt when the settings have none (``kandinsky_main.generate``: ``n_prompt or ""``), where diffusers would
put its own default text; and it crops Qwen's prompt tokens at 256 (the configs' ``text_embedder.qwen.max_length``).
"""

from __future__ import annotations

from pathlib import Path

#: WanGP's defaults for the settings a definition may lack (the k5 configs and defaults/k5_*.json).
DEFAULT_FLOW_SHIFT = 10.0
DEFAULT_GUIDANCE = 5.0
QWEN_MAX_LENGTH = 256


def parts(request, components: Path) -> dict:
    """Nothing loaded apart: every component in the pipeline's dtype, as diffusers' docs load it."""
    return {}


def scheduler(pipe, request) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler

    shift = float(request.settings.get("flow_shift", DEFAULT_FLOW_SHIFT))
    # WanGP's shift is static: a repo config with resolution-dependent shifting would ignore it (and want ``mu``)
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, shift=shift,
                                                                 use_dynamic_shifting=False)


def call_arguments(request) -> dict:
    """CFG at ``guidance_scale`` (1: none, as the distilled definitions set), WanGP's negative prompt ("" when
    none), Qwen tokens cropped at WanGP's 256."""
    settings = request.settings
    return {"guidance_scale": float(settings.get("guidance_scale", DEFAULT_GUIDANCE)),
            "negative_prompt": settings.get("negative_prompt") or "",
            "max_sequence_length": QWEN_MAX_LENGTH}
