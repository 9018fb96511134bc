"""Tiny random HunyuanVideo 1.5 models, ``hunyuan15`` (T2V) and ``hunyuan15_i2v`` (I2V), after diffusers' pipeline
tests (``tests/pipelines/hunyuan_video1_5``): hidden 16 (2 heads of 8), 5 double blocks (enough for the quantizer's
towers), a 4-channel VAE of stride 4 in space and 2 in time, Qwen2.5-VL text and ByT5 glyph encoders, SigLIP for
I2V. The tokenizers are built in memory (no Hub download): a word-level Qwen stand-in with a chat template, and
ByT5's byte tokenizer, which needs no files."""

from __future__ import annotations

from wangp_cli.families.base import TinyKind
from wangp_cli.families.tiny_tokenizers import VOCAB, word_tokenizer

QWEN_DIM = 16  # Qwen2.5-VL hidden size = text_embed_dim
BYT5_DIM = 32  # T5 d_model = text_embed_2_dim
SIGLIP_DIM = 12  # SigLIP hidden size = image_embed_dim
SIZE = 32  # pixels a side (VAE stride 4: 8x8 latents)
#: A prompt with quoted text: the ByT5 glyph encoder only runs on quoted text.
PROMPT = 'a cat holding a sign that says "hello"'

_CONFIG = {"in_channels": 9, "out_channels": 4, "num_attention_heads": 2, "attention_head_dim": 8, "num_layers": 5,
           "num_refiner_layers": 1, "mlp_ratio": 2.0, "patch_size": 1, "patch_size_t": 1, "qk_norm": "rms_norm",
           "text_embed_dim": QWEN_DIM, "text_embed_2_dim": BYT5_DIM, "image_embed_dim": SIGLIP_DIM,
           "rope_theta": 256.0, "rope_axes_dim": (2, 2, 4), "target_size": SIZE, "use_meanflow": False}
_CALL = {"height": SIZE, "width": SIZE, "num_frames": 9, "num_inference_steps": 2}
_SETTINGS = {"resolution": f"{SIZE}x{SIZE}", "prompt": PROMPT, "guidance_scale": 6.0, "flow_shift": 5.0}

KINDS = {
    "hunyuan15": TinyKind("hunyuan_1_5_t2v", "HunyuanVideo15Transformer3DModel", dict(_CONFIG, task_type="t2v"),
                          dict(_CALL), settings=dict(_SETTINGS)),
    "hunyuan15_i2v": TinyKind("hunyuan_1_5_i2v", "HunyuanVideo15Transformer3DModel", dict(_CONFIG, task_type="i2v"),
                              dict(_CALL), settings=dict(_SETTINGS)),
}

#: Qwen2.5-VL's chat layout, words and markers separated by spaces for the word-level stand-in.
CHAT_TEMPLATE = ("{% for message in messages %}<|im_start|> {{ message['role'] }} {{ message['content'] }} "
                 "<|im_end|> {% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}")


def _qwen_tokenizer():
    """Qwen2 stand-in: pad ``<|endoftext|>`` 0, ``<|im_start|>`` 1, ``<|im_end|>`` 2, unk 3; no BOS; a chat
    template (the pipelines call ``apply_chat_template``)."""
    tokenizer = word_tokenizer({0: "<|endoftext|>", 1: "<|im_start|>", 2: "<|im_end|>", 3: "<unk>"}, bos=None,
                               eos=None, pad="<|endoftext|>", unk="<unk>", add_bos=False, add_eos=False,
                               model_max_length=2048)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def components(kind: str) -> dict:
    """VAE, Euler scheduler, guider, Qwen2.5-VL and ByT5 (T5) encoders with their tokenizers; SigLIP and its
    processor for I2V."""
    import torch
    from diffusers import AutoencoderKLHunyuanVideo15, ClassifierFreeGuidance, FlowMatchEulerDiscreteScheduler
    from transformers import ByT5Tokenizer, Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel, T5Config, T5EncoderModel

    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanVideo15(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 16), layers_per_block=1,
        spatial_compression_ratio=4, temporal_compression_ratio=2, downsample_match_channel=False,
        upsample_match_channel=False)
    torch.manual_seed(0)
    # 3 layers: the pipelines take hidden_states[-3]
    text_encoder = Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(
        hidden_size=QWEN_DIM, intermediate_size=16, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2,
        vocab_size=VOCAB, bos_token_id=None, eos_token_id=2, pad_token_id=0, rope_theta=1000000.0,
        rope_scaling={"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"}))
    torch.manual_seed(0)
    tokenizer_2 = ByT5Tokenizer()
    text_encoder_2 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=BYT5_DIM, d_kv=8, d_ff=37,
                                             num_layers=2, num_heads=4, decoder_start_token_id=0))
    parts = {"vae": vae.eval(), "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0),
             "text_encoder": text_encoder.eval(), "tokenizer": _qwen_tokenizer(),
             "text_encoder_2": text_encoder_2.eval(), "tokenizer_2": tokenizer_2,
             "guider": ClassifierFreeGuidance(guidance_scale=6.0)}
    if kind == "hunyuan15_i2v":
        from transformers import SiglipImageProcessor, SiglipVisionConfig, SiglipVisionModel

        torch.manual_seed(0)
        parts["image_encoder"] = SiglipVisionModel(SiglipVisionConfig(
            hidden_size=SIGLIP_DIM, intermediate_size=37, num_hidden_layers=2, num_attention_heads=2, image_size=16,
            patch_size=8)).eval()
        parts["feature_extractor"] = SiglipImageProcessor(size={"height": 16, "width": 16})
    return parts


def _inverse(table: dict) -> dict:
    return {converted: original for original, converted in table.items()}


def to_original(state: dict) -> dict:
    """A diffusers state dict in WanGP's original layout: the convert tables inverted, the refiner's q/k/v fused
    back into ``self_attn_qkv`` (double blocks stay split, as WanGP's 1.5 model and files have them), the final
    modulation's halves swapped back to [shift, scale]."""
    import re

    import torch

    from wangp_cli.families.hunyuan15.convert import BLOCKS, SWAPPED, TOP, _swap_halves

    top = _inverse(TOP)
    out: dict = {}
    fused: dict = {}
    for key, tensor in state.items():
        module, _, leaf = key.rpartition(".")
        original = top.get(module)
        for original_prefix, converted_prefix, table in BLOCKS:
            match = re.match(re.escape(converted_prefix) + r"(\d+)\.(.+)$", module)
            if match and match[2] in _inverse(table):
                original = f"{original_prefix}{match[1]}.{_inverse(table)[match[2]]}"
        if original is None:
            raise KeyError(f"no original HunyuanVideo 1.5 name for diffusers key {key!r}")
        if re.search(r"\.self_attn_[qkv]$", original):
            name = f"{original[:-1]}qkv.{leaf}"
            out.setdefault(name, None)
            fused.setdefault(name, {})[original[-1]] = tensor
            continue
        out[f"{original}.{leaf}"] = _swap_halves(tensor) if original in SWAPPED else tensor
    for name, pieces in fused.items():
        out[name] = torch.cat([pieces[x] for x in "qkv"], dim=0)
    return out


def to_original_layout(kind: str, state: dict) -> dict:
    return to_original(state)


def to_diffusers_layout(kind: str, original: dict) -> dict:
    """wangp's own converter (diffusers has no single-file converter for HunyuanVideo 1.5)."""
    from wangp_cli.families.hunyuan15.convert import to_diffusers

    config = dict(KINDS[kind].config)
    return to_diffusers(dict(original), {}, config)[0]


def wangp_config(kind: str, model) -> dict:
    """WanGP's own config names (``HYVideo-1_5``): hidden size, heads, depths, rope axes, channels, patch [t, h, w],
    MLP ratio, the text and vision widths, the I2V condition type."""
    c = model.config
    return {"hidden_size": c.num_attention_heads * c.attention_head_dim, "heads_num": c.num_attention_heads,
            "mm_double_blocks_depth": c.num_layers, "mm_single_blocks_depth": 0,
            "rope_dim_list": list(c.rope_axes_dim), "in_channels": c.in_channels, "out_channels": c.out_channels,
            "patch_size": [c.patch_size_t, c.patch_size, c.patch_size], "mlp_width_ratio": c.mlp_ratio,
            "text_states_dim": c.text_embed_dim, "vision_states_dim": c.image_embed_dim, "glyph_byT5_v2": True,
            "use_cond_type_embedding": True, "use_meanflow": bool(c.use_meanflow),
            "i2v_condition_type": "latent_concat"}
