"""Wan 2.1 (text-, image-, first-last-frame-to-video and VACE): ``convert.py`` (config from shapes, keys),
``layout.py`` (the diffusers -> original key tables), ``pipeline.py`` (scheduler, call), ``tiny.py``."""

from __future__ import annotations

from wangp_cli.families.base import Family, Generated

_T2V = Generated("WanPipeline")
_I2V = Generated("WanImageToVideoPipeline", needs=("image",))
_VACE = Generated("WanVACEPipeline", takes=("control_video", "mask", "reference_images"))

FAMILY = Family(
    name="wan", title="Wan", package=__name__,
    architectures={"t2v": _T2V, "t2v_1.3B": _T2V, "i2v": _I2V, "i2v_720p": _I2V,
                   "flf2v_720p": Generated("WanImageToVideoPipeline", needs=("image", "last_image")),
                   "vace_14B": _VACE, "vace_1.3B": _VACE},
    quantized_blocks=("blocks.*", "vace_blocks.*"),
    module_architectures={"vace_14B": "vace_14B"},
)
