"""HunyuanVideo pipelines: flow-matching Euler with WanGP's ``flow_shift``, embedded guidance, optional real CFG."""

from __future__ import annotations

from pathlib import Path


def parts(request, components: Path) -> dict:
    """Nothing loaded apart: every component comes in the pipeline's dtype."""
    return {}


def scheduler(pipe, request) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler

    shift = float(request.settings.get("flow_shift", 5.0))
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, shift=shift)


def call_arguments(request) -> dict:
    """Embedded guidance (``embedded_guidance_scale``); real CFG only with a negative prompt and
    ``guidance_scale`` > 1."""
    settings = request.settings
    kwargs = {"guidance_scale": float(settings.get("embedded_guidance_scale", 6.0))}
    negative = settings.get("negative_prompt") or None
    cfg = float(settings.get("guidance_scale", 1.0))
    if negative and cfg > 1:
        kwargs["negative_prompt"] = negative
        kwargs["true_cfg_scale"] = cfg
    return kwargs
