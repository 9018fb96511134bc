"""Flux 2 (Black Forest Labs: FLUX.2 dev 32B with Mistral Small 3, FLUX.2 klein 4B / 9B with Qwen3):
``layout.py`` (the original BFL key names <-> diffusers), ``convert.py`` (config from shapes, the fused qkv split,
then diffusers' own converter, quanto-aware), ``pipeline.py``, ``tiny.py``. The registry's family is ``"flux"``
(WanGP's flux handler serves Flux 1 and 2); this package is the Flux 2 half."""

from __future__ import annotations

from wangp_cli.families.base import Family, Generated

#: The diffusers folders Flux2Pipeline / Flux2KleinPipeline need besides the transformer.
_PARTS = ("scheduler", "text_encoder", "tokenizer", "vae")
#: The real transformers' diffusers config (``Flux2Transformer2DModel``; WanGP's ``models/flux/util.py`` configs).
_COMMON = {"kind": "flux2", "patch_size": 1, "in_channels": 128, "attention_head_dim": 128,
           "timestep_guidance_channels": 256, "mlp_ratio": 3.0, "axes_dims_rope": [32, 32, 32, 32]}


class Flux2Family(Family):
    """Flux 2: WanGP's settings diffusers cannot follow are refused (``pipeline.refusals``)."""

    def refusals(self, model_id: str, arch_id: str, settings: dict) -> list[str]:
        from wangp_cli.families.flux2.pipeline import refusals

        return refusals(model_id, arch_id, settings)


FAMILY = Flux2Family(
    name="flux2", title="Flux 2", package=__name__,
    architectures={
        "flux2_dev": Generated("Flux2Pipeline", takes=("image",), repo="black-forest-labs/FLUX.2-dev",
                               components=_PARTS,
                               shape={**_COMMON, "num_layers": 8, "num_single_layers": 48, "num_attention_heads": 48,
                                      "joint_attention_dim": 15360, "guidance_embeds": True},
                               params=32e9, component_params={"text_encoder": (24e9, 2), "vae": (0.084e9, 2)}),
        "flux2_klein_4b": Generated("Flux2KleinPipeline", takes=("image",),
                                    repo="black-forest-labs/FLUX.2-klein-4B",
                                    components=_PARTS,
                                    shape={**_COMMON, "num_layers": 5, "num_single_layers": 20,
                                           "num_attention_heads": 24, "joint_attention_dim": 7680,
                                           "guidance_embeds": False},
                                    params=4e9, component_params={"text_encoder": (4.0e9, 2), "vae": (0.084e9, 2)}),
        "flux2_klein_9b": Generated("Flux2KleinPipeline", takes=("image",),
                                    repo="black-forest-labs/FLUX.2-klein-9B",
                                    components=_PARTS,
                                    shape={**_COMMON, "num_layers": 8, "num_single_layers": 24,
                                           "num_attention_heads": 32, "joint_attention_dim": 12288,
                                           "guidance_embeds": False},
                                    params=9e9, component_params={"text_encoder": (8.2e9, 2), "vae": (0.084e9, 2)}),
    },
    # mmgp quantizes every Linear of the double/single towers; the shared modulations lie outside them
    quantized_blocks=("transformer_blocks.*", "single_transformer_blocks.*"), quantize_checked=True,
)
