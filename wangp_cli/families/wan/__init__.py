"""Wan 2.1 (text-, image-, first-last-frame-to-video and VACE) and Wan 2.2 (A14B with two transformers, TI2V 5B):
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
#: Wan 2.2 A14B: a high-noise transformer (URLs) and a low-noise one (URLs2).
DUAL = ("t2v_2_2", "i2v_2_2")
#: Settings diffusers cannot follow: (applies to two-transformer models only, test, why).
_PHASE_REFUSALS = (
    (False, lambda s: _int(s.get("guidance_phases"), 1) >= 3,
     "guidance_phases 3 (a third guidance phase at switch_threshold2) has no diffusers equivalent: use 1 or 2"),
    (True, lambda s: _int(s.get("guidance_phases"), 1) == 2 and _int(s.get("model_switch_phase"), 1) != 1,
     "model_switch_phase other than 1 (the transformer switch at switch_threshold) has no diffusers equivalent"),
)


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


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
        """3-phase guidance, and a model switch outside phase 2 (WanGP allows them, diffusers has neither)."""
        return [f"'{model_id}': {message}" for dual_only, test, message in _PHASE_REFUSALS
                if (arch_id in DUAL or not dual_only) and test(settings)]


FAMILY = WanFamily(
    name="wan", title="Wan", package=__name__,
    architectures={"t2v": _T2V, "t2v_1.3B": _T2V, "i2v": _I2V, "i2v_720p": _I2V,
                   "flf2v_720p": Generated("WanImageToVideoPipeline", needs=("image", "last_image")),
                   "vace_14B": _VACE, "vace_1.3B": _VACE,
                   "t2v_2_2": _T2V, "i2v_2_2": _I2V, "ti2v_2_2": _TI2V},
    quantized_blocks=("blocks.*", "vace_blocks.*"),
    module_architectures={"vace_14B": "vace_14B"},
)
