"""Z-Image (Tongyi-MAI's single-stream DiT, text to image): Turbo (``z_image``, distilled, no guidance) and Base
(``z_image_base``, classifier-free guidance). ``convert.py`` (config from shapes, WanGP's native layout and the
ComfyUI / original layout with fused qkv), ``pipeline.py`` (``ZImagePipeline`` call from WanGP's settings, the
refusals), ``tiny.py``. The ControlNet types (``z_image_control*``) are not generated: WanGP runs its control blocks
inside its own transformer, diffusers through a separate ``ZImageControlNetModel`` wangp does not build yet."""

from __future__ import annotations

from wangp_cli.families.base import Family, Generated

#: The pipeline's components besides the transformer (the diffusers repos of Tongyi-MAI).
_PARTS = ("text_encoder", "tokenizer", "vae", "scheduler")
#: The real transformer (WanGP's ``models/z_image/configs/z_image.json``, diffusers' config names) plus the sizes
#: the memory planner reads (``dim``, ``ffn_dim``, ``num_layers``, ``text_dim``).
SHAPE = {"kind": "z_image", "all_patch_size": [2], "all_f_patch_size": [1], "in_channels": 16, "dim": 3840,
         "n_layers": 30, "n_refiner_layers": 2, "n_heads": 30, "n_kv_heads": 30, "norm_eps": 1e-05, "qk_norm": True,
         "cap_feat_dim": 2560, "rope_theta": 256.0, "t_scale": 1000.0, "axes_dims": [32, 48, 48],
         "axes_lens": [1536, 512, 512], "ffn_dim": 10240, "num_layers": 30, "text_dim": 2560}


#: The memory plan's figures (parameters; bytes per parameter as loaded): Qwen3-4B text encoder, Flux's VAE.
_COMPONENT_PARAMS = {"text_encoder": (4.0e9, 2), "vae": (0.084e9, 2)}

#: Why the ControlNet types are not generated (the ``Family.refused`` message).
_CONTROL = ("WanGP runs the Fun ControlNet Union blocks inside its own transformer (a module file); diffusers' "
            "ZImageControlNetPipeline takes them as a separate ZImageControlNetModel with control images, which "
            "wangp does not build yet: generate it in WanGP")


class ZImageFamily(Family):
    """Z-Image, with its settings refusals (``pipeline.refusals``: NAG, other samplers, batches)."""

    def refusals(self, model_id: str, arch_id: str, settings: dict) -> list[str]:
        return self.part("pipeline").refusals(model_id, arch_id, settings)


FAMILY = ZImageFamily(
    name="z_image", title="Z-Image", package=__name__,
    architectures={
        "z_image": Generated("ZImagePipeline", repo="Tongyi-MAI/Z-Image-Turbo", components=_PARTS, shape=SHAPE,
                             params=6.15e9, component_params=_COMPONENT_PARAMS),
        "z_image_base": Generated("ZImagePipeline", repo="Tongyi-MAI/Z-Image", components=_PARTS, shape=SHAPE,
                             params=6.15e9, component_params=_COMPONENT_PARAMS),
    },
    # the 30 main ``layers``; the two-block noise / context refiners are not a tower for mmgp (fewer than 5 floors)
    quantized_blocks=("layers.*",),
    refused={arch: _CONTROL for arch in ("z_image_control", "z_image_control2", "z_image_control2_1")},
    quantize_checked=True,  # tests/generate/test_z_image.py: the same Linears as mmgp's _quantize
)
