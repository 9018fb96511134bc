"""WanGP's LTX-2 settings as diffusers' ``LTX2Pipeline`` call arguments, and the ones it cannot follow (pure
Python: ``wangp list`` / request checks import it without torch).

WanGP (``models/ltx2``) -> diffusers: ``guidance_scale`` -> ``guidance_scale``, ``audio_guidance_scale`` ->
``audio_guidance_scale``, ``alt_guidance_scale`` ("Modality Guidance") -> ``modality_scale`` (both modalities),
``alt_scale`` ("Guidance Rescale") -> ``guidance_rescale``, ``perturbation_switch`` 2 ("Skip Self Attention") at
``perturbation_layers`` -> STG (``stg_scale`` 1 at ``spatio_temporal_guidance_blocks``; WanGP's fixed scale),
``sample_solver`` ``distilled_8_steps`` (or the definition's ``ltx2_pipeline: "distilled"``) -> the distilled
sigmas (``DISTILLED_SIGMA_VALUES``, 8 steps), ``negative_prompt`` -> ``negative_prompt``, the architecture's fps
-> ``frame_rate``.
"""

from __future__ import annotations

#: WanGP's ``perturbation_switch`` values (``ltx2_handler``: "Off", "Skip Layer Guidance", "Skip Self Attention").
PERTURBATION_OFF, SKIP_LAYER_GUIDANCE, SKIP_SELF_ATTENTION = 0, 1, 2
#: Samplers that follow diffusers' 8 distilled sigmas.
DISTILLED_SOLVERS = ("distilled_8_steps",)
DISTILLED_STEPS = 8
#: WanGP's LTX-2 samplers wangp runs ("" is WanGP's default, Euler).
SOLVERS = ("", "euler") + DISTILLED_SOLVERS


def _number(settings: dict, key: str, default: float) -> float:
    value = settings.get(key, default)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def distilled(settings: dict) -> bool:
    """Whether the distilled 8-sigma schedule runs: a distilled sampler, or a distilled definition."""
    return settings.get("sample_solver") in DISTILLED_SOLVERS or settings.get("ltx2_pipeline") == "distilled"


#: (test, message): settings with no diffusers equivalent.
_REFUSALS = (
    (lambda s: s.get("sample_solver", "") not in SOLVERS,
     "sample_solver {sample_solver!r} has no diffusers equivalent for LTX-2: use 'euler' or 'distilled_8_steps'"),
    (lambda s: isinstance(s.get("guidance_phases"), int) and s["guidance_phases"] >= 2,
     ("guidance_phases {guidance_phases} (WanGP's second LTX-2 phase: the latent upsampler and a distilled-LoRA "
     "refinement) has no one-call diffusers equivalent: set guidance_phases 1 (one stage at the full resolution)")),
    (lambda s: s.get("perturbation_switch", 0) == SKIP_LAYER_GUIDANCE,
     ("perturbation_switch 1 (Skip Layer Guidance) has no diffusers equivalent: use 0 (off) or 2 (Skip Self "
     "Attention, diffusers' STG)")),
    (lambda s: s.get("perturbation_switch", 0) == SKIP_SELF_ATTENTION and (
        _number(s, "perturbation_start_perc", 0) != 0 or _number(s, "perturbation_end_perc", 100) != 100),
     "perturbation_start_perc / perturbation_end_perc other than 0 / 100: diffusers applies STG at every step"),
    (lambda s: bool(s.get("apg_switch")), ("apg_switch (adaptive projected guidance) has no diffusers equivalent: "
     "set it to 0")),
    (lambda s: bool(s.get("cfg_star_switch")), ("cfg_star_switch (CFG-Zero*) has no diffusers LTX-2 equivalent: "
     "set it to 0")),
    (lambda s: bool(s.get("self_refiner_setting")), "self_refiner_setting has no diffusers equivalent: set it to 0"),
    (lambda s: _number(s, "NAG_scale", 1) > 1, ("NAG_scale above 1 (normalized attention guidance) has no diffusers "
     "LTX-2 equivalent: set it to 1")),
    (lambda s: distilled(s) and s.get("num_inference_steps") != DISTILLED_STEPS,
     "the distilled schedule has 8 steps (WanGP locks them), not {num_inference_steps}: set num_inference_steps 8"),
)


def refusals(settings: dict) -> list[str]:
    """Messages for the settings diffusers' LTX-2 pipelines cannot follow."""
    values = {key: settings.get(key) for key in ("sample_solver", "guidance_phases", "num_inference_steps")}
    return [message.format(**values) for test, message in _REFUSALS if test(settings)]


def call_arguments(settings: dict, fps: float) -> dict:
    """The pipeline keywords of WanGP's guidance settings (see the module docstring)."""
    guidance = _number(settings, "guidance_scale", 3.0)
    modality = _number(settings, "alt_guidance_scale", 1.0)
    rescale = _number(settings, "alt_scale", 0.0)
    stg = settings.get("perturbation_switch", 0) == SKIP_SELF_ATTENTION
    layers = settings.get("perturbation_layers") or []
    arguments = {
        "negative_prompt": settings.get("negative_prompt") or None,
        "guidance_scale": guidance, "audio_guidance_scale": _number(settings, "audio_guidance_scale", guidance),
        "modality_scale": modality, "audio_modality_scale": modality,
        "guidance_rescale": rescale, "audio_guidance_rescale": rescale,
        "stg_scale": 1.0 if stg and layers else 0.0, "audio_stg_scale": 1.0 if stg and layers else 0.0,
        "spatio_temporal_guidance_blocks": [int(x) for x in layers] if stg and layers else None,
        "frame_rate": float(fps),
    }
    return arguments
