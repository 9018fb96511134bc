"""Tiny random Flux 1 models: ``flux`` (dev, guidance embedding), ``flux_schnell`` (none), ``flux_dev_kontext``
and ``flux_chroma`` (the approximator instead of the per-block modulation), after diffusers' pipeline tests
(head dim 16, 2 heads), 5 blocks of each kind (the quantizer's towers), the real 64 input channels (a 16-channel
VAE latent packed 2x2)."""

from __future__ import annotations

from wangp_cli.families.base import TinyKind
from wangp_cli.families.flux.layout import to_original
from wangp_cli.families.tiny_tokenizers import VOCAB, word_tokenizer

TEXT_DIM = 32  # T5 d_model = joint_attention_dim
CLIP_DIM = 32  # CLIP-L hidden size = pooled_projection_dim
LATENT_CHANNELS = 16

_COMMON = {"patch_size": 1, "in_channels": 4 * LATENT_CHANNELS, "num_layers": 5, "num_single_layers": 5,
           "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": TEXT_DIM,
           "axes_dims_rope": [4, 4, 8]}
_FLUX = {**_COMMON, "pooled_projection_dim": CLIP_DIM, "guidance_embeds": True}
_CHROMA = {**_COMMON, "approximator_num_channels": 16, "approximator_hidden_dim": 32, "approximator_layers": 5}
_CALL = {"height": 64, "width": 64, "num_inference_steps": 2, "max_sequence_length": 16}
_IMAGE = {"video_length": 1}

KINDS = {
    "flux": TinyKind("flux", "FluxTransformer2DModel", dict(_FLUX), {**_CALL, "guidance_scale": 3.5},
                     settings=_IMAGE),
    "flux_schnell": TinyKind("flux_schnell", "FluxTransformer2DModel", {**_FLUX, "guidance_embeds": False},
                             {**_CALL, "guidance_scale": 0.0}, settings=_IMAGE),
    "flux_dev_kontext": TinyKind("flux_dev_kontext", "FluxTransformer2DModel", dict(_FLUX),
                                 {**_CALL, "guidance_scale": 2.5, "_auto_resize": False, "max_area": 64 * 64}, settings=_IMAGE),
    "flux_chroma": TinyKind("flux_chroma", "ChromaTransformer2DModel", dict(_CHROMA),
                            {**_CALL, "guidance_scale": 3.0}, settings=_IMAGE),
}


def _t5_tokenizer():
    """T5 stand-in: pad 0, eos 1, unk 2; ``$A </s>``."""
    return word_tokenizer({0: "<pad>", 1: "</s>", 2: "<unk>"}, bos=None, eos="</s>", pad="<pad>", unk="<unk>",
                          add_bos=False, add_eos=True, model_max_length=512)


def _clip_tokenizer():
    """CLIP-L stand-in: bos 0, pad 1, eos 2, unk 3; ``<|startoftext|> $A <|endoftext|>``, 77 tokens."""
    return word_tokenizer({0: "<|startoftext|>", 1: "<pad>", 2: "<|endoftext|>", 3: "<unk>"},
                          bos="<|startoftext|>", eos="<|endoftext|>", pad="<pad>", unk="<unk>", add_bos=True,
                          add_eos=True, model_max_length=77)


def t5_encoder():
    import torch
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    return T5EncoderModel(T5Config(vocab_size=VOCAB, d_model=TEXT_DIM, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                                   relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
                                   decoder_start_token_id=0)).eval()


def flux_vae():
    """Flux's AutoencoderKL at toy size: 2 levels (scale factor 2), 16 latent channels, shift and scale set."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                         up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
                         latent_channels=LATENT_CHANNELS, norm_num_groups=4, use_quant_conv=False,
                         use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611, sample_size=32)


def components(kind: str) -> dict:
    """VAE, Euler scheduler, T5 (+ CLIP for Flux, not Chroma) with their tokenizers."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers import CLIPTextConfig, CLIPTextModel

    # FLUX.1-dev's scheduler (resolution-dependent shift); schnell's repo has a plain one
    dynamic = kind != "flux_schnell"
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0 if dynamic else 1.0, use_dynamic_shifting=dynamic,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    if kind == "flux_chroma":
        return {"vae": flux_vae(), "scheduler": scheduler, "text_encoder": t5_encoder(), "tokenizer": _t5_tokenizer(),
                "image_encoder": None, "feature_extractor": None}
    torch.manual_seed(0)
    clip = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=CLIP_DIM,
                                        intermediate_size=37, layer_norm_eps=1e-5, num_attention_heads=4,
                                        num_hidden_layers=2, vocab_size=VOCAB, hidden_act="gelu",
                                        projection_dim=32)).eval()
    return {"vae": flux_vae(), "scheduler": scheduler, "text_encoder": clip, "tokenizer": _clip_tokenizer(),
            "text_encoder_2": t5_encoder(), "tokenizer_2": _t5_tokenizer(), "image_encoder": None,
            "feature_extractor": None}


def to_original_layout(kind: str, state: dict) -> dict:
    return to_original(state)


def to_diffusers_layout(kind: str, original: dict) -> dict:
    """wangp's own conversion (diffusers' Flux / Chroma converters hard-code the real model's 3072 width; the test
    compares the two on the real shapes)."""
    from wangp_cli.families.flux.convert import config, to_diffusers

    converted, _ = to_diffusers(dict(original), {}, config(original, {}, KINDS[kind].config, "tiny"))
    return converted


def wangp_config(kind: str, model) -> dict:
    """BFL's ``FluxParams`` names (``axes_dim``, ``theta``, ...): what WanGP's model code calls them."""
    c = model.config
    return {"hidden_size": c.num_attention_heads * c.attention_head_dim, "num_heads": c.num_attention_heads,
            "depth": c.num_layers, "depth_single_blocks": c.num_single_layers, "axes_dim": list(c.axes_dims_rope),
            "theta": 10000, "in_channels": c.in_channels, "context_in_dim": c.joint_attention_dim}
