"""Z-Image through diffusers' ``ZImagePipeline``: guidance, negative prompt and the sampler shift from WanGP's
settings (``models/z_image/z_image_handler.py`` / ``z_image_main.py``), and the settings diffusers cannot follow."""

from __future__ import annotations

from pathlib import Path

#: Architectures with classifier-free guidance (WanGP's ``guidance_max_phases`` 1: Base); Turbo's is forced to 0.
GUIDED = ("z_image_base",)
#: WanGP's default guidance of Base (``update_default_settings``) when the settings carry none.
BASE_GUIDANCE = 4.0
#: Architectures whose ``flow_shift`` setting WanGP shows (``extra_model_def["flow_shift"]``): Base.
SHIFTED = ("z_image_base",)
#: WanGP's samplers diffusers' pipeline has: its default flow-matching Euler only (not the "unified" TwinFlow one).
SOLVERS = ("", "default")


def parts(request, components: Path) -> dict:
    """Nothing loaded apart: every component in the pipeline's dtype."""
    return {}


def scheduler(pipe, request) -> None:
    """Base's ``flow_shift`` (WanGP default 6.0) as the Euler scheduler's shift; Turbo keeps its repo's scheduler.
    (WanGP's own loader builds both from the Turbo scheduler config; the setting is what its UI offers for Base.)"""
    from diffusers import FlowMatchEulerDiscreteScheduler

    shift = request.settings.get("flow_shift")
    if request.architecture in SHIFTED and shift is not None:
        pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, shift=float(shift))


def guidance(arch_id: str, settings: dict) -> float:
    """The ``guidance_scale`` diffusers gets: 0 (no CFG) for Turbo and for Base at <= 1, where WanGP skips CFG
    (its pipeline guides above 1, diffusers' above 0; the formula ``pos + g * (pos - neg)`` is the same)."""
    if arch_id not in GUIDED:
        return 0.0
    scale = float(settings.get("guidance_scale", BASE_GUIDANCE))
    return scale if scale > 1 else 0.0


def call_arguments(request) -> dict:
    """Guidance; the negative prompt only with CFG (diffusers encodes "" without one, as WanGP)."""
    scale = guidance(request.architecture, request.settings)
    return {"guidance_scale": scale,
            "negative_prompt": (request.settings.get("negative_prompt") or None) if scale > 0 else None}


def _number(value, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def refusals(model_id: str, arch_id: str, settings: dict) -> list[str]:
    """Settings diffusers' ``ZImagePipeline`` has no equivalent for, each with what to do instead."""
    problems = []
    if _number(settings.get("NAG_scale"), 1.0) > 1:
        problems.append(f"NAG_scale {settings['NAG_scale']}: WanGP's Normalized Attention Guidance has no diffusers "
                        "equivalent for Z-Image (set NAG_scale to 1 to turn it off)")
    solver = settings.get("sample_solver", "")
    if solver not in SOLVERS:
        problems.append(f"sample_solver {solver!r}: diffusers' ZImagePipeline has only its flow-matching Euler "
                        "sampler (use \"default\")")
    if settings.get("unified_solver"):  # the definition's model key (TwinFlow finetunes), passed by build_request
        problems.append("unified_solver: the definition's TwinFlow unified sampler has no diffusers equivalent "
                        "(generate it in WanGP, or remove \"unified_solver\" to sample with Euler)")
    if _number(settings.get("batch_size"), 1) > 1:
        problems.append(f"batch_size {settings['batch_size']}: wangp writes one image per request (use 1 and "
                        "several seeds)")
    return problems
