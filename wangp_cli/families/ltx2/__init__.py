"""LTX-2 (Lightricks' audio + video model: 2.0 19B, 2.3 22B, 2.5 22B): ``convert.py`` (config from shapes, keys),
``layout.py`` (the original key names), ``pipeline.py`` (scheduler, WanGP's guidance settings, the audio track),
``tiny.py``. Text-to-video through ``LTX2Pipeline``, with a start image through ``LTX2ImageToVideoPipeline``."""

from __future__ import annotations

from wangp_cli.families.base import Family, Generated

#: The diffusers repo's subfolders the pipelines need besides the transformer (LTX-2.5's prompt enhancer, duration
#: head and processor are left out: ``pipeline.parts`` passes None for them).
COMPONENTS = ("scheduler", "vae", "audio_vae", "vocoder", "connectors", "text_encoder", "tokenizer")
#: The shared part of the real transformers' diffusers config (``scripts/convert_ltx2_to_diffusers.py``).
_SHAPE = {"in_channels": 128, "out_channels": 128, "patch_size": 1, "patch_size_t": 1, "num_attention_heads": 32,
          "attention_head_dim": 128, "cross_attention_dim": 4096, "audio_in_channels": 128, "audio_out_channels": 128,
          "audio_num_attention_heads": 32, "audio_attention_head_dim": 64, "audio_cross_attention_dim": 2048,
          "num_layers": 48, "caption_channels": 3840, "rope_double_precision": True, "rope_type": "split",
          "cross_attn_timestep_scale_multiplier": 1000, "kind": "ltx2"}
_V23 = {"gated_attn": True, "cross_attn_mod": True, "audio_gated_attn": True, "audio_cross_attn_mod": True,
        "use_prompt_embeddings": False, "perturbed_attn": True}
#: The start-image pipeline (``Family.pipeline_class(image=True)``).
IMAGE_PIPELINE = "LTX2ImageToVideoPipeline"


#: The memory plan's figures (parameters; bytes per parameter as loaded): Gemma 3 12B text encoder, the text
#: connectors, video and audio VAEs, vocoder (approximate, from the repos' file sizes).
_COMPONENT_PARAMS = {"text_encoder": (12.2e9, 2), "connectors": (0.6e9, 2), "vae": (0.5e9, 2),
                     "audio_vae": (0.05e9, 2), "vocoder": (0.06e9, 2)}


def _generated(repo: str, shape: dict, params: float) -> Generated:
    return Generated("LTX2Pipeline", takes=("image",), repo=repo, components=COMPONENTS, shape=shape, params=params,
                     component_params=_COMPONENT_PARAMS)


class LTX2Family(Family):
    """LTX-2: the start-image pipeline when an image is given; WanGP's settings diffusers cannot follow refused."""

    def pipeline_class(self, arch_id: str, image: bool = False):
        import diffusers

        return getattr(diffusers, IMAGE_PIPELINE if image else self.architectures[arch_id].pipeline)

    def refusals(self, model_id: str, arch_id: str, settings: dict) -> list[str]:
        from wangp_cli.families.ltx2.settings import refusals

        return [f"'{model_id}': {message}" for message in refusals(settings)]


FAMILY = LTX2Family(
    name="ltx2", title="LTX-2", package=__name__,
    architectures={
        "ltx2_19B": _generated("Lightricks/LTX-2", dict(_SHAPE, gated_attn=False, cross_attn_mod=False,
                                                        use_prompt_embeddings=True, perturbed_attn=False), 19e9),
        "ltx2_22B": _generated("diffusers/LTX-2.3-Diffusers", dict(_SHAPE, **_V23), 22e9),
        "ltx2_25_22B": _generated("Lightricks/LTX-2.5-Diffusers", dict(_SHAPE, **_V23, ff_bias=False,
                                                                       use_keyframes_abs_pos_embedding=True), 22e9),
    },
    quantized_blocks=("transformer_blocks.*",), quantize_checked=True,
)
