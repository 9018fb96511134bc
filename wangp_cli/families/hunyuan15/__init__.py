"""HunyuanVideo 1.5 (text- and image-to-video, 8.3B): ``convert.py`` (config from shapes, the original Tencent /
WanGP layout -> diffusers, wangp's own converter: diffusers has none for this class), ``pipeline.py`` (guider,
scheduler, call; the pipelines' step callback and I2V size), ``tiny.py``.

The registry's family stays ``"hunyuan"`` (WanGP's ``hyvideo`` handler serves 1.0 and 1.5); this package is the
1.5 half. ``hunyuan_1_5_upsampler`` has no diffusers pipeline (the registry refuses it as WanGP-only)."""

from __future__ import annotations

from wangp_cli.families.base import Family, Generated

#: The diffusers folders the pipelines need besides the transformer (``guider``: its ClassifierFreeGuidance).
_T2V_PARTS = ("text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "vae", "scheduler", "guider")
_I2V_PARTS = _T2V_PARTS + ("image_encoder", "feature_extractor")
#: The real 8.3B transformer (WanGP's ``HYVideo-1_5`` config: 54 double blocks, hidden 2048, 16 heads).
_SHAPE = {"kind": "hunyuan15", "in_channels": 65, "out_channels": 32, "num_attention_heads": 16,
          "attention_head_dim": 128, "num_layers": 54, "num_refiner_layers": 2, "mlp_ratio": 4.0, "patch_size": 1,
          "patch_size_t": 1, "text_embed_dim": 3584, "text_embed_2_dim": 1472, "image_embed_dim": 1152,
          "rope_axes_dim": [16, 56, 56], "target_size": 960, "use_meanflow": False}


class Hunyuan15Family(Family):
    """HunyuanVideo 1.5: wangp's subclasses of diffusers' two pipelines (see ``pipeline.pipeline_class``)."""

    def pipeline_class(self, arch_id: str, image: bool = False):
        from wangp_cli.families.hunyuan15.pipeline import pipeline_class

        return pipeline_class(self.architectures[arch_id].pipeline)

    def refusals(self, model_id: str, arch_id: str, settings: dict) -> list[str]:
        from wangp_cli.families.hunyuan15.pipeline import refusals

        return refusals(model_id, settings)


#: The memory plan's figures (parameters; bytes per parameter as loaded): Qwen2.5-VL 7B and ByT5 text encoders,
#: the 1.5 VAE; i2v adds the SigLIP image encoder.
_COMPONENT_PARAMS = {"text_encoder": (8.3e9, 2), "text_encoder_2": (0.22e9, 2), "vae": (0.25e9, 2)}


FAMILY = Hunyuan15Family(
    name="hunyuan15", title="HunyuanVideo 1.5", package=__name__,
    architectures={
        "hunyuan_1_5_t2v": Generated("HunyuanVideo15Pipeline",
                                     repo="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-720p_t2v",
                                     components=_T2V_PARTS, shape={**_SHAPE, "task_type": "t2v"},
                                     params=8.3e9, component_params=_COMPONENT_PARAMS),
        "hunyuan_1_5_i2v": Generated("HunyuanVideo15ImageToVideoPipeline", needs=("image",),
                                     repo="hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-720p_i2v",
                                     components=_I2V_PARTS, shape={**_SHAPE, "task_type": "i2v"},
                                     params=8.3e9,
                                     component_params={**_COMPONENT_PARAMS, "image_encoder": (0.43e9, 2)}),
    },
    # WanGP quantizes the double blocks whole (mmgp's towers; its fp32-locked final layer lies outside them)
    quantized_blocks=("transformer_blocks.*",), quantize_checked=True,
)
