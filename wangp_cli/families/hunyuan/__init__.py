"""HunyuanVideo (text- and image-to-video): ``convert.py`` (config from shapes, the fused qkv / ``linear1``
splits, keys), ``layout.py`` (the diffusers -> original key tables), ``pipeline.py``, ``tiny.py``."""

from __future__ import annotations

from wangp_cli.families.base import Family, Generated

FAMILY = Family(
    name="hunyuan", title="HunyuanVideo", package=__name__,
    architectures={"hunyuan": Generated("HunyuanVideoPipeline"),
                   "hunyuan_i2v": Generated("HunyuanVideoImageToVideoPipeline", needs=("image",))},
    quantized_blocks=("transformer_blocks.*", "single_transformer_blocks.*"),
)
