"""Tiny random Kandinsky 5 models: ``k5_t2v`` (stands in for Lite T2V) and ``k5_i2v`` (Lite I2V), after diffusers'
pipeline tests (``tests/pipelines/kandinsky5``: tiny Qwen2.5-VL and CLIP text encoders, a tiny HunyuanVideo VAE)
with in-memory tokenizers, the real models' visual conditioning input and 6 visual blocks (a quantizable tower)."""

from __future__ import annotations

from wangp_cli.families.base import TinyKind
from wangp_cli.families.tiny_tokenizers import VOCAB, word_tokenizer

QWEN_DIM = 16  # Qwen2.5-VL hidden size = in_text_dim
CLIP_DIM = 8  # CLIP-L stand-in hidden size (pooled output) = in_text_dim2
LATENT_CHANNELS = 4

_CONFIG = {"in_visual_dim": LATENT_CHANNELS, "out_visual_dim": LATENT_CHANNELS, "in_text_dim": QWEN_DIM,
           "in_text_dim2": CLIP_DIM, "time_dim": 16, "patch_size": (1, 2, 2), "model_dim": 32, "ff_dim": 64,
           "num_text_blocks": 1, "num_visual_blocks": 6, "axes_dims": (4, 6, 6), "visual_cond": True,
           "attention_type": "regular"}
#: I2V: diffusers renormalises the first 4 latent frames against the next ones, so at least 17 frames.
KINDS = {
    "k5_t2v": TinyKind("k5_lite_t2v", "Kandinsky5Transformer3DModel", dict(_CONFIG), {
        "height": 64, "width": 64, "num_frames": 5, "num_inference_steps": 2, "guidance_scale": 5.0},
        settings={"video_length": 5}),
    "k5_i2v": TinyKind("k5_lite_i2v", "Kandinsky5Transformer3DModel", dict(_CONFIG), {
        "height": 64, "width": 64, "num_frames": 17, "num_inference_steps": 2, "guidance_scale": 5.0},
        settings={"video_length": 17}),
}


def _qwen_tokenizer():
    """Qwen2.5-VL stand-in: pad ``<|endoftext|>`` 0, unk 3, no BOS/EOS added (as Qwen's). The chat markers of the
    pipeline's template are no vocabulary words, so the template's fixed part is about 128 tokens, close to the real
    tokenizer's (the pipeline drops the first 128)."""
    return word_tokenizer({0: "<|endoftext|>", 3: "<unk>"}, bos=None, eos=None, pad="<|endoftext|>", unk="<unk>",
                          add_bos=False, add_eos=False, model_max_length=4096)


def _clip_tokenizer():
    """CLIP-L stand-in: bos 0, pad 1, eos 2, unk 3; ``<|startoftext|> $A <|endoftext|>``, 77 tokens."""
    return word_tokenizer({0: "<|startoftext|>", 1: "<pad>", 2: "<|endoftext|>", 3: "<unk>"},
                          bos="<|startoftext|>", eos="<|endoftext|>", pad="<pad>", unk="<unk>", add_bos=True,
                          add_eos=True, model_max_length=77)


def components(kind: str) -> dict:
    """HunyuanVideo VAE (4 latent channels), Euler scheduler, Qwen2.5-VL and CLIP text encoders with tokenizers."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3, out_channels=3, latent_channels=LATENT_CHANNELS,
        down_block_types=("HunyuanVideoDownBlock3D",) * 4, up_block_types=("HunyuanVideoUpBlock3D",) * 4,
        block_out_channels=(8, 8, 8, 8), layers_per_block=1, act_fn="silu", norm_num_groups=4,
        scaling_factor=0.476986, spatial_compression_ratio=8, temporal_compression_ratio=4,
        mid_block_add_attention=True)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=5.0)
    torch.manual_seed(0)
    qwen = Qwen2_5_VLConfig(
        text_config={"hidden_size": QWEN_DIM, "intermediate_size": 32, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": VOCAB,
                     "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0,
                     "rope_scaling": {"mrope_section": [2, 1, 1], "rope_type": "default", "type": "default"},
                     "rope_theta": 1000000.0},
        vision_config={"depth": 1, "hidden_size": QWEN_DIM, "intermediate_size": 16, "num_heads": 2,
                       "out_hidden_size": QWEN_DIM},
        hidden_size=QWEN_DIM, vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=0,
        vision_start_token_id=VOCAB - 3, vision_end_token_id=VOCAB - 2,
        vision_token_id=VOCAB - 1, image_token_id=VOCAB - 1, video_token_id=VOCAB - 1)
    text_encoder = Qwen2_5_VLForConditionalGeneration(qwen)
    torch.manual_seed(0)
    text_encoder_2 = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=CLIP_DIM, intermediate_size=16,
        layer_norm_eps=1e-5, num_attention_heads=2, num_hidden_layers=2, vocab_size=VOCAB, hidden_act="gelu",
        projection_dim=CLIP_DIM))
    return {"vae": vae, "scheduler": scheduler, "text_encoder": text_encoder, "tokenizer": _qwen_tokenizer(),
            "text_encoder_2": text_encoder_2, "tokenizer_2": _clip_tokenizer()}


def to_original_layout(kind: str, state: dict) -> dict:
    """WanGP's names are diffusers' (see ``convert``): the state dict as it is."""
    return dict(state)


def to_diffusers_layout(kind: str, original: dict) -> dict:
    """diffusers has no converter for Kandinsky 5 (none is needed): the names go through unchanged, bar WanGP's
    optional prefix."""
    from wangp_cli.families.kandinsky5.convert import prefix_of, strip

    return strip(original, prefix_of(original))


#: WanGP's ``dit_params`` keys (``models/kandinsky5/configs/*.yaml``), which are diffusers' config names.
DIT_PARAMS = ("in_visual_dim", "out_visual_dim", "in_text_dim", "in_text_dim2", "time_dim", "patch_size",
              "model_dim", "ff_dim", "num_text_blocks", "num_visual_blocks", "axes_dims", "visual_cond")


def wangp_config(kind: str, model) -> dict:
    """WanGP's ``dit_params`` of the model (JSON lists for the tuples)."""
    c = model.config
    return {key: list(c[key]) if isinstance(c[key], (tuple, list)) else c[key] for key in DIT_PARAMS}
