"""Flux 1 (Black Forest Labs' 12B image model: dev, schnell, Kontext; and Chroma, its 8.9B offspring):
``layout.py`` (the original BFL key names <-> diffusers), ``convert.py`` (config from shapes, the fused qkv /
``linear1`` splits, quanto-aware), ``pipeline.py`` (WanGP's guidance settings -> the pipelines' call), ``tiny.py``.

WanGP's files keep BFL's layout (``double_blocks.N.img_attn.qkv``, ``single_blocks.N.linear1``; mmgp splits them
at load). Flux 2 is the ``flux2`` package (the registry's family is ``"flux"`` for both)."""

from __future__ import annotations

from wangp_cli.families.base import Family, Generated

#: The diffusers folders FluxPipeline / FluxKontextPipeline need besides the transformer (CLIP-L, T5-XXL, the VAE).
_FLUX_PARTS = ("scheduler", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "vae")
#: ChromaPipeline's: T5-XXL only.
_CHROMA_PARTS = ("scheduler", "text_encoder", "tokenizer", "vae")
#: The real transformers' diffusers config (``FluxTransformer2DModel`` / ``ChromaTransformer2DModel``).
_FLUX_SHAPE = {"kind": "flux", "patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
               "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
               "pooled_projection_dim": 768, "guidance_embeds": True, "axes_dims_rope": [16, 56, 56]}
_CHROMA_SHAPE = {"kind": "flux", "patch_size": 1, "in_channels": 64, "num_layers": 19, "num_single_layers": 38,
                 "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 4096,
                 "axes_dims_rope": [16, 56, 56], "approximator_num_channels": 64, "approximator_hidden_dim": 5120,
                 "approximator_layers": 5}


class FluxFamily(Family):
    """Flux 1: WanGP's settings diffusers cannot follow are refused (``pipeline.refusals``)."""

    def refusals(self, model_id: str, arch_id: str, settings: dict) -> list[str]:
        from wangp_cli.families.flux.pipeline import refusals

        return refusals(model_id, arch_id, settings)


#: The memory plan's figures (parameters; bytes per parameter as loaded): CLIP-L and T5-XXL text encoders, the VAE;
#: Chroma has T5 only and a pruned 8.9B transformer.
_FLUX_SIZES = {"params": 11.9e9, "component_params": {"text_encoder": (0.123e9, 2), "text_encoder_2": (4.76e9, 2),
                                                      "vae": (0.084e9, 2)}}
_CHROMA_SIZES = {"params": 8.9e9, "component_params": {"text_encoder": (4.76e9, 2), "vae": (0.084e9, 2)}}


FAMILY = FluxFamily(
    name="flux", title="Flux", package=__name__,
    architectures={
        "flux": Generated("FluxPipeline", repo="black-forest-labs/FLUX.1-dev", components=_FLUX_PARTS,
                          shape=dict(_FLUX_SHAPE), **_FLUX_SIZES),
        "flux_schnell": Generated("FluxPipeline", repo="black-forest-labs/FLUX.1-schnell", components=_FLUX_PARTS,
                                  shape={**_FLUX_SHAPE, "guidance_embeds": False}, **_FLUX_SIZES),
        "flux_dev_kontext": Generated("FluxKontextPipeline", takes=("image",),
                                      repo="black-forest-labs/FLUX.1-Kontext-dev", components=_FLUX_PARTS,
                                      shape=dict(_FLUX_SHAPE), **_FLUX_SIZES),
        "flux_chroma": Generated("ChromaPipeline", repo="lodestones/Chroma1-HD", components=_CHROMA_PARTS,
                                 shape=dict(_CHROMA_SHAPE), **_CHROMA_SIZES),
    },
    # mmgp quantizes every Linear of the towers (double/single blocks; Chroma's 5-floor approximator too) and
    # nothing outside them: no exclusions inside the blocks (checked in tests/generate/test_flux.py)
    quantized_blocks=("transformer_blocks.*", "single_transformer_blocks.*", "distilled_guidance_layer.layers.*"),
    quantize_checked=True,
)
