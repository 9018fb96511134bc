"""Kandinsky 5 video (Lite 2B and Pro 19B, text- and image-to-video): ``convert.py`` (config from shapes, WanGP's
prefixes stripped; the module names are diffusers' own), ``pipeline.py``, ``tiny.py``."""

from __future__ import annotations

from wangp_cli.families.base import Family, Generated

#: The components every Kandinsky 5 video pipeline takes besides the transformer (Qwen2.5-VL 7B and CLIP-L text
#: encoders, HunyuanVideo's VAE, the flow-matching scheduler): the same files in every kandinskylab video repo.
_COMPONENTS = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "vae", "scheduler")
#: The transformers' shapes (WanGP's ``models/kandinsky5/configs/k5_{lite,pro}_*.yaml`` ``dit_params``, which use
#: diffusers' config names); ``dim`` / ``ffn_dim`` / ``num_layers`` / ``text_dim`` are the names the memory planner
#: of ``generate.engine`` reads.
_LITE = {"kind": "kandinsky5", "in_visual_dim": 16, "out_visual_dim": 16, "in_text_dim": 3584, "in_text_dim2": 768,
         "time_dim": 512, "patch_size": [1, 2, 2], "model_dim": 1792, "ff_dim": 7168, "num_text_blocks": 2,
         "num_visual_blocks": 32, "axes_dims": [16, 24, 24], "visual_cond": True,
         "dim": 1792, "ffn_dim": 7168, "num_layers": 32, "text_dim": 3584}
_PRO = {**_LITE, "time_dim": 1024, "model_dim": 4096, "ff_dim": 16384, "num_text_blocks": 4, "num_visual_blocks": 60,
        "axes_dims": [32, 48, 48], "dim": 4096, "ffn_dim": 16384, "num_layers": 60}
_REPO = "kandinskylab/Kandinsky-5.0-{}-Diffusers"
#: The memory plan's figures (parameters; bytes per parameter as loaded): Qwen2.5-VL 7B and CLIP-L text encoders,
#: HunyuanVideo's VAE.
_COMPONENT_PARAMS = {"text_encoder": (8.3e9, 2), "text_encoder_2": (0.123e9, 2), "vae": (0.246e9, 2)}
#: I2V needs fewer than this many frames at its peril: diffusers' Kandinsky5I2VPipeline renormalises the first 4
#: latent frames against the next ones (``normalize_first_frame``); with fewer than 5 latent frames there are none,
#: and the mean of nothing is NaN (a black video).
I2V_MIN_FRAMES = 17


class Kandinsky5Family(Family):
    """Kandinsky 5: image-to-video refuses clips too short for diffusers' first-frame renormalisation."""

    def refusals(self, model_id: str, arch_id: str, settings: dict) -> list[str]:
        frames = settings.get("video_length")
        if "image" in self.architectures[arch_id].needs and isinstance(frames, int) and frames < I2V_MIN_FRAMES:
            return [f"'{model_id}': video_length {frames}: diffusers' Kandinsky5I2VPipeline needs at least "
                    f"{I2V_MIN_FRAMES} frames (it renormalises the first 4 latent frames against the following ones; "
                    f"fewer give NaN, a black video): use --frames {I2V_MIN_FRAMES} or more"]
        return []


FAMILY = Kandinsky5Family(
    name="kandinsky5", title="Kandinsky 5", package=__name__,
    architectures={
        "k5_lite_t2v": Generated("Kandinsky5T2VPipeline", repo=_REPO.format("T2V-Lite-sft-5s"),
                                 components=_COMPONENTS, shape=_LITE, params=2.0e9,
                                 component_params=_COMPONENT_PARAMS),
        # no Lite I2V Diffusers repo is documented: its components are the T2V Lite repo's (the same encoders, VAE
        # and scheduler as every Kandinsky 5 video pipeline)
        "k5_lite_i2v": Generated("Kandinsky5I2VPipeline", needs=("image",), repo=_REPO.format("T2V-Lite-sft-5s"),
                                 components=_COMPONENTS, shape=_LITE, params=2.0e9,
                                 component_params=_COMPONENT_PARAMS),
        "k5_pro_t2v": Generated("Kandinsky5T2VPipeline", repo=_REPO.format("T2V-Pro-sft-5s"),
                                components=_COMPONENTS, shape=_PRO, params=19e9,
                                component_params=_COMPONENT_PARAMS),
        "k5_pro_i2v": Generated("Kandinsky5I2VPipeline", needs=("image",), repo=_REPO.format("I2V-Pro-sft-5s"),
                                components=_COMPONENTS, shape=_PRO, params=19e9,
                                component_params=_COMPONENT_PARAMS),
    },
    # the visual blocks' attention and feed-forward Linears (auto_quantize); the modulation stays 16-bit, see
    # quantize_skip
    quantized_blocks=("visual_transformer_blocks.*.self_attention.*", "visual_transformer_blocks.*.cross_attention.*",
                      "visual_transformer_blocks.*.feed_forward.*"),
    # diffusers keeps every ``visual_modulation`` in fp32 (Kandinsky5Transformer3DModel._keep_in_fp32_modules; its
    # own QuantoConfig route never converts those modules): wangp's int8 files leave that one Linear per block
    # 16-bit. mmgp (WanGP) quantizes it too; WanGP's files with it quantized still load (the map says so).
    quantize_skip=(r"(?:^|\.)visual_transformer_blocks\.\d+\.visual_modulation\.",),
    quantize_checked=True,
)
