"""Tiny random HunyuanVideo models: ``hunyuan`` (T2V) and ``hunyuan_i2v`` (I2V, ``token_replace``: 4 input
channels, guidance embedding on), after diffusers' pipeline tests (head dim 16, 5 blocks of each kind)."""

from __future__ import annotations

from wangp_cli.families.base import TinyKind
from wangp_cli.families.hunyuan.layout import to_original
from wangp_cli.families.tiny_tokenizers import VOCAB, word_tokenizer

LLAMA_DIM = 16  # Llama / Llava text hidden size = Hunyuan text_embed_dim
CLIP_TEXT_DIM = 8  # CLIP-L stand-in hidden size = Hunyuan pooled_projection_dim
IMAGE_TOKEN = VOCAB - 1  # Llava image_token_index (Hunyuan I2V): the last vocabulary id
IMAGE_SIZE = 64  # Llava vision tower image size; patch 16 -> 16 image tokens (CLS dropped)
IMAGE_TOKENS = (IMAGE_SIZE // 16) ** 2

_CONFIG = {"in_channels": 4, "out_channels": 4, "num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 5,
           "num_single_layers": 5, "num_refiner_layers": 1, "mlp_ratio": 4.0, "patch_size": 1, "patch_size_t": 1,
           "qk_norm": "rms_norm", "guidance_embeds": True, "text_embed_dim": LLAMA_DIM,
           "pooled_projection_dim": CLIP_TEXT_DIM, "rope_theta": 256.0, "rope_axes_dim": (4, 6, 6)}

KINDS = {
    "hunyuan": TinyKind("hunyuan", "HunyuanVideoTransformer3DModel", dict(_CONFIG), {
        "height": 64, "width": 64, "num_frames": 9, "num_inference_steps": 2, "guidance_scale": 6.0,
        "max_sequence_length": 16, "prompt_template": {"template": "{}", "crop_start": 0}}),
    # the image tokens overwrite positions 5..20 of the (max_sequence_length) prompt tokens, as in diffusers' test
    "hunyuan_i2v": TinyKind("hunyuan_i2v", "HunyuanVideoTransformer3DModel",
                            dict(_CONFIG, image_condition_type="token_replace"), {
        "height": 64, "width": 64, "num_frames": 9, "num_inference_steps": 2, "guidance_scale": 6.0,
        "max_sequence_length": 32, "prompt_template": {"template": "{}", "crop_start": 0, "image_emb_len": IMAGE_TOKENS,
                                                       "image_emb_start": 5, "image_emb_end": 5 + IMAGE_TOKENS}}),
}


def _llama_tokenizer(image_token: bool = False):
    """llava-llama-3 stand-in: bos 0, pad 1, eos 2, unk 3 (+ ``<image>`` at the last id); prepends BOS."""
    specials = {0: "<|begin_of_text|>", 1: "<pad>", 2: "<|end_of_text|>", 3: "<unk>"}
    if image_token:
        specials[IMAGE_TOKEN] = "<image>"
    return word_tokenizer(specials, bos="<|begin_of_text|>", eos="<|end_of_text|>", pad="<pad>", unk="<unk>",
                          add_bos=True, add_eos=False, model_max_length=1024)


def _clip_tokenizer():
    """CLIP-L stand-in: bos 0, pad 1, eos 2, unk 3; ``<|startoftext|> $A <|endoftext|>``, 77 tokens."""
    return word_tokenizer({0: "<|startoftext|>", 1: "<pad>", 2: "<|endoftext|>", 3: "<unk>"},
                          bos="<|startoftext|>", eos="<|endoftext|>", pad="<pad>", unk="<unk>", add_bos=True,
                          add_eos=True, model_max_length=77)


def components(kind: str) -> dict:
    """VAE, Euler scheduler, Llama (Llava for I2V) and CLIP text encoders with their tokenizers; the image
    processor for I2V."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo, FlowMatchEulerDiscreteScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, LlamaConfig, LlamaModel

    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanVideo(
        in_channels=3, out_channels=3, latent_channels=4, down_block_types=("HunyuanVideoDownBlock3D",) * 4,
        up_block_types=("HunyuanVideoUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
        act_fn="silu", norm_num_groups=4, scaling_factor=0.476986, spatial_compression_ratio=8,
        temporal_compression_ratio=4, mid_block_add_attention=True)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    # 3 layers: the pipelines take hidden_states[-3]
    llama = LlamaConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=LLAMA_DIM, intermediate_size=37,
                        rms_norm_eps=1e-5, num_attention_heads=4, num_key_value_heads=4, num_hidden_layers=3,
                        vocab_size=VOCAB, hidden_act="gelu", max_position_embeddings=256)
    torch.manual_seed(0)
    if kind == "hunyuan":
        text_encoder = LlamaModel(llama)
        tokenizer = _llama_tokenizer()
    else:
        from transformers import (
            CLIPImageProcessor,
            CLIPVisionConfig,
            LlavaConfig,
            LlavaForConditionalGeneration,
        )

        vision = CLIPVisionConfig(hidden_size=8, intermediate_size=37, projection_dim=32, num_attention_heads=4,
                                  num_hidden_layers=2, image_size=IMAGE_SIZE, patch_size=16)
        text_encoder = LlavaForConditionalGeneration(LlavaConfig(
            vision_config=vision, text_config=llama, pad_token_id=1, image_token_index=IMAGE_TOKEN))
        tokenizer = _llama_tokenizer(image_token=True)
    torch.manual_seed(0)
    text_encoder_2 = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=CLIP_TEXT_DIM, intermediate_size=37,
        layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2, vocab_size=VOCAB, hidden_act="gelu",
        projection_dim=32))
    parts = {"vae": vae, "scheduler": scheduler, "text_encoder": text_encoder, "tokenizer": tokenizer,
             "text_encoder_2": text_encoder_2, "tokenizer_2": _clip_tokenizer()}
    if kind == "hunyuan_i2v":
        parts["image_processor"] = CLIPImageProcessor(
            crop_size=IMAGE_SIZE, size=IMAGE_SIZE, do_center_crop=True, do_normalize=True, do_resize=True,
            image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
            resample=3)
    return parts


def to_original_layout(kind: str, state: dict) -> dict:
    return to_original(state)


def _presplit_linear1(original: dict, hidden: int) -> dict:
    """Split every ``single_blocks.N.linear1`` into diffusers' ``attn.to_q/to_k/to_v`` + ``proj_mlp`` keys."""
    import torch

    out = {}
    for key, tensor in original.items():
        parts = key.split(".")
        if parts[0] == "single_blocks" and parts[2] == "linear1":
            prefix = f"single_transformer_blocks.{parts[1]}"
            q, k, v, mlp = torch.split(tensor, [hidden, hidden, hidden, tensor.shape[0] - 3 * hidden], dim=0)
            for name, piece in (("attn.to_q", q), ("attn.to_k", k), ("attn.to_v", v), ("proj_mlp", mlp)):
                out[f"{prefix}.{name}.{parts[3]}"] = piece
        else:
            out[key] = tensor
    return out



def to_diffusers_layout(kind: str, original: dict) -> dict:
    """diffusers' own converter, after splitting ``single_blocks.N.linear1`` here: the converter hard-codes hidden
    size 3072 for it (right for the real 13B model only). The split gives ``single_transformer_blocks.N.attn.to_q/
    to_k/to_v`` + ``proj_mlp`` (chunks [hidden, hidden, hidden, mlp], hidden = ``linear2``'s output size), which
    the converter passes through unchanged; everything else is its own work."""
    from diffusers.loaders.single_file_utils import (
        convert_hunyuan_video_transformer_to_diffusers,
    )

    hidden = next(t.shape[0] for k, t in original.items() if k.endswith(".linear2.weight"))
    return convert_hunyuan_video_transformer_to_diffusers(_presplit_linear1(original, hidden))


def wangp_config(kind: str, model) -> dict:
    """HunyuanVideo's own config names, with ``patch_size`` [t, h, w], ``mlp_width_ratio`` and, for I2V,
    ``i2v_condition_type``."""
    c = model.config
    config = {"hidden_size": c.num_attention_heads * c.attention_head_dim, "heads_num": c.num_attention_heads,
              "mm_double_blocks_depth": c.num_layers, "mm_single_blocks_depth": c.num_single_layers,
              "rope_dim_list": list(c.rope_axes_dim), "in_channels": c.in_channels, "out_channels": c.out_channels,
              "guidance_embed": bool(c.guidance_embeds), "text_states_dim": c.text_embed_dim,
              "text_states_dim_2": c.pooled_projection_dim,
              "patch_size": [c.patch_size_t, c.patch_size, c.patch_size], "mlp_width_ratio": c.mlp_ratio}
    if c.image_condition_type:  # HunyuanVideo-I2V's own name for it
        config["i2v_condition_type"] = c.image_condition_type
    return config
