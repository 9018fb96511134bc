"""Wan 2.1 (text-, image-, first-last-frame-to-video and VACE) and Wan 2.2 (A14B with two transformers, VACE on
both, TI2V 5B):
``convert.py`` (config from shapes, keys), ``layout.py`` (the diffusers -> original key tables), ``pipeline.py``
(scheduler, transformer switch, call), ``tiny.py``."""

from __future__ import annotations

from wangp_cli.families.base import Family, Generated

_T2V = Generated("WanPipeline")
_I2V = Generated("WanImageToVideoPipeline", needs=("image",))
_VACE = Generated("WanVACEPipeline", takes=("control_video", "mask", "reference_images"))
#: TI2V 5B: text only through WanPipeline, with a start image through WanImageToVideoPipeline (both
#: ``expand_timesteps``).
_TI2V = Generated("WanPipeline", takes=("image",))
_TI2V_IMAGE = "WanImageToVideoPipeline"

#: The transformer slots of a pipeline and the definition list that fills each (WanGP's submodels 1 and 2).
ONE_TRANSFORMER = {"transformer": "URLs"}
TWO_TRANSFORMERS = {"transformer": "URLs", "transformer_2": "URLs2"}
#: Wan 2.2 A14B: a high-noise transformer (URLs) and a low-noise one (URLs2); VACE 2.2: the t2v pair, the VACE
#: module in both (WanGP's ``load_models`` gives a plain module list to each submodel).
DUAL = ("t2v_2_2", "i2v_2_2", "vace_14B_2_2")
#: Settings diffusers cannot follow: (which models: "all", "dual" or "single" transformer, test, why).
_PHASE_REFUSALS = (
    ("all", lambda s: _int(s.get("guidance_phases"), 1) >= 3,
     "guidance_phases 3 (a third guidance phase at switch_threshold2) has no diffusers equivalent: use 1 or 2"),
    ("dual", lambda s: _int(s.get("guidance_phases"), 1) == 2 and _int(s.get("model_switch_phase"), 1) != 1,
     "model_switch_phase other than 1 (the transformer switch at switch_threshold) has no diffusers equivalent"),
    ("single", lambda s: _int(s.get("guidance_phases"), 1) >= 2 and _scale(s, "guidance2_scale") != _scale(
        s, "guidance_scale"),
     ("guidance_phases {guidance_phases} with guidance2_scale {guidance2_scale} different from guidance_scale "
      "{guidance_scale}: WanGP switches guidance at switch_threshold, diffusers' one-transformer pipelines cannot; "
      "set guidance_phases 1, or guidance2_scale equal to guidance_scale")),
)
#: WanGP's default guidance (``models/_settings.json``), for a setting the merged settings lack.
_DEFAULT_GUIDANCE = 5.0


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _scale(settings: dict, key: str):
    """A guidance value as a float (as it reaches the pipeline), or as given when it is not a number (the request
    checks report those)."""
    value = settings.get(key, _DEFAULT_GUIDANCE)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


class WanFamily(Family):
    """Wan: two transformers for the A14B architectures, and TI2V's pipeline chosen by whether an image is given."""

    def transformers(self, arch_id: str) -> dict[str, str]:
        """Pipeline slot -> the definition list that fills it (``transformer_2`` <- ``URLs2`` for Wan 2.2 A14B)."""
        return TWO_TRANSFORMERS if arch_id in DUAL else ONE_TRANSFORMER

    def pipeline_class(self, arch_id: str, image: bool = False):
        import diffusers

        name = _TI2V_IMAGE if image and arch_id == "ti2v_2_2" else self.architectures[arch_id].pipeline
        return getattr(diffusers, name)

    def refusals(self, model_id: str, arch_id: str, settings: dict) -> list[str]:
        """3-phase guidance, a model switch outside phase 2, and a guidance switch without a model switch (WanGP
        allows them, diffusers has none); two phases of equal guidance on one transformer are one phase."""
        models = "dual" if arch_id in DUAL else "single"
        values = {key: _shown(_scale(settings, key)) for key in ("guidance_scale", "guidance2_scale")}
        return [f"'{model_id}': " + message.format(guidance_phases=settings.get("guidance_phases"), **values)
                for which, test, message in _PHASE_REFUSALS if which in ("all", models) and test(settings)]


FAMILY = WanFamily(
    name="wan", title="Wan", package=__name__,
    architectures={"t2v": _T2V, "t2v_1.3B": _T2V, "i2v": _I2V, "i2v_720p": _I2V,
                   "flf2v_720p": Generated("WanImageToVideoPipeline", needs=("image", "last_image")),
                   "vace_14B": _VACE, "vace_1.3B": _VACE,
                   "t2v_2_2": _T2V, "i2v_2_2": _I2V, "ti2v_2_2": _TI2V, "vace_14B_2_2": _VACE},
    quantized_blocks=("blocks.*", "vace_blocks.*"), quantize_checked=True,
    module_architectures={"vace_14B": "vace_14B", "vace_14B_2_2": "vace_14B"},
)
