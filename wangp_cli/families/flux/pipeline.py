"""Flux 1 / Chroma pipelines: WanGP's guidance settings as diffusers' call arguments.

WanGP's Flux 1 dev / schnell / Kontext use the embedded (distilled) guidance only: their model definition has no
``guidance_max_phases``, so ``generate`` forces the real CFG scale to 1 and the negative prompt feeds NAG alone.
Chroma runs real CFG (``guidance_max_phases`` 1) with ``guidance_scale`` and, when the settings have no negative
prompt, WanGP's default one (``models/flux/flux_main.py``)."""

from __future__ import annotations

from pathlib import Path

#: The negative prompt WanGP's Flux ``generate`` uses when the settings give none.
DEFAULT_NEGATIVE = ("low quality, ugly, unfinished, out of focus, deformed, disfigure, blurry, smudged, restricted "
                    "palette, flat colors")

#: Settings diffusers' Flux pipelines cannot follow: (test, message).
_REFUSALS = (
    (lambda arch, s: float(s.get("NAG_scale") or 1) > 1 and arch != "flux_chroma",
     "NAG_scale {NAG_scale}: diffusers' Flux pipelines have no NAG (normalized attention guidance); set NAG_scale "
     "to 1"),
    (lambda arch, s: s.get("model_mode") not in (None, "", 0, "0") and arch != "flux_chroma",
     "model_mode {model_mode}: WanGP's inpainting methods (LanPaint, masked denoising) are not in diffusers' "
     "Flux pipelines; leave model_mode unset"),
)


def refusals(model_id: str, arch_id: str, settings: dict) -> list[str]:
    values = {k: settings.get(k) for k in ("NAG_scale", "model_mode")}
    return [f"'{model_id}': " + message.format(**values) for test, message in _REFUSALS if test(arch_id, settings)]


def parts(request, components: Path) -> dict:
    """Nothing loaded apart: every component comes in the pipeline's dtype."""
    return {}


def scheduler(pipe, request) -> None:
    """The repository's flow-matching scheduler as it is (FLUX.1-dev / Kontext / Chroma: resolution-dependent
    shift; schnell: none), as WanGP's own Flux schedules do."""


def _kontext_image(request):
    """Kontext's reference image at the requested output size (diffusers would otherwise pick one of Kontext's
    preferred ~1 MP resolutions for it, ``_auto_resize``)."""
    from PIL import Image

    return Image.open(request.image).convert("RGB").resize((request.width, request.height))


def call_arguments(request) -> dict:
    settings = request.settings
    if request.architecture == "flux_chroma":
        return {"guidance_scale": float(settings.get("guidance_scale", 3.0)),
                "negative_prompt": settings.get("negative_prompt") or DEFAULT_NEGATIVE}
    kwargs = {"guidance_scale": float(settings.get("embedded_guidance_scale", 2.5)), "negative_prompt": None}
    if request.architecture == "flux_dev_kontext":
        # the requested size as it is: FluxKontextPipeline otherwise rescales the output to ~1 MP (max_area)
        kwargs.update(_auto_resize=False, max_area=request.width * request.height)
        if request.image:
            kwargs["image"] = _kontext_image(request)
    return kwargs
