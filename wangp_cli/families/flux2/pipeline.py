"""Flux 2 pipelines: WanGP's guidance settings as diffusers' call arguments.

FLUX.2 dev is guidance-distilled: WanGP's ``embedded_guidance_scale`` (default 4) is the transformer's guidance
embedding, diffusers' ``guidance_scale``. klein 4B / 9B are CFG- and step-distilled: WanGP runs them without real
CFG (no ``guidance_max_phases``), so ``guidance_scale`` is 1 (diffusers' klein repos say ``is_distilled`` too)."""

from __future__ import annotations

from pathlib import Path

from wangp_cli.families.flux.pipeline import refusals as _flux_refusals


def refusals(model_id: str, arch_id: str, settings: dict) -> list[str]:
    """As Flux 1's: NAG and WanGP's inpainting methods have no diffusers counterpart."""
    return _flux_refusals(model_id, arch_id, settings)


def parts(request, components: Path) -> dict:
    return {}


def scheduler(pipe, request) -> None:
    """The pipelines compute Flux 2's own sigma schedule (as WanGP's ``get_schedule_flux2``): nothing to set."""


def call_arguments(request) -> dict:
    if request.architecture == "flux2_dev":
        return {"guidance_scale": float(request.settings.get("embedded_guidance_scale", 4.0))}
    return {"guidance_scale": 1.0}
