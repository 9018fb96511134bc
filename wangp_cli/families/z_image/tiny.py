"""Tiny random Z-Image models: ``z_image`` (Turbo, no guidance) and ``z_image_base`` (classifier-free guidance),
after diffusers' pipeline tests (``tests/pipelines/z_image/test_z_image.py``: dim 32, head dim 16, 16 latent
channels, a 2-layer Qwen3 text encoder; a stride-8 VAE of 8 channels), with 5 main layers so that the quantizer sees a tower."""

from __future__ import annotations

from wangp_cli.families.base import TinyKind
from wangp_cli.families.tiny_tokenizers import VOCAB, word_tokenizer

QWEN_DIM = 16  # Qwen3 hidden size = cap_feat_dim
#: Qwen's chat format at its simplest (the pipeline calls ``apply_chat_template(add_generation_prompt=True)``).
CHAT_TEMPLATE = ("{% for message in messages %}<|im_start|> {{ message['content'] }} <|im_end|> {% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>{% endif %}")

CONFIG = {"all_patch_size": (2,), "all_f_patch_size": (1,), "in_channels": 16, "dim": 32, "n_layers": 5,
          "n_refiner_layers": 1, "n_heads": 2, "n_kv_heads": 2, "norm_eps": 1e-5, "qk_norm": True,
          "cap_feat_dim": QWEN_DIM, "rope_theta": 256.0, "t_scale": 1000.0, "axes_dims": [8, 4, 4],
          "axes_lens": [256, 32, 32]}
_CALL = {"height": 64, "width": 64, "num_inference_steps": 2, "max_sequence_length": 16}
_IMAGE = {"video_length": 1}

KINDS = {
    "z_image": TinyKind("z_image", "ZImageTransformer2DModel", dict(CONFIG), dict(_CALL, guidance_scale=0.0),
                        settings=dict(_IMAGE, guidance_scale=0)),
    "z_image_base": TinyKind("z_image_base", "ZImageTransformer2DModel", dict(CONFIG),
                             dict(_CALL, guidance_scale=4.0), settings=dict(_IMAGE, guidance_scale=4, flow_shift=6.0)),
}


def _qwen_tokenizer():
    """Qwen2 stand-in: pad ``<|endoftext|>`` 0, ``<|im_start|>`` 1, ``<|im_end|>`` 2, unk 3; no BOS (as Qwen)."""
    tokenizer = word_tokenizer({0: "<|endoftext|>", 1: "<|im_start|>", 2: "<|im_end|>", 3: "<unk>"}, bos=None,
                               eos="<|im_end|>", pad="<|endoftext|>", unk="<unk>", add_bos=False, add_eos=False,
                               model_max_length=512)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def components(kind: str) -> dict:
    """VAE (16 latent channels, Flux's scaling and shift, stride 8), Euler scheduler (Z-Image-Turbo's: shift 3), a 2-layer
    Qwen3 text encoder (the pipeline takes ``hidden_states[-2]``) and its tokenizer."""
    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(0)
    # 4 blocks (stride 8, as the real VAE) of 8 channels: a bf16 CPU decode at 64x64 in a fraction of a second
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[8, 8, 8, 8], layers_per_block=1,
                        latent_channels=16, norm_num_groups=4, sample_size=64, scaling_factor=0.3611,
                        shift_factor=0.1159)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)
    torch.manual_seed(0)
    text_encoder = Qwen3Model(Qwen3Config(hidden_size=QWEN_DIM, intermediate_size=16, num_hidden_layers=2,
                                          num_attention_heads=2, num_key_value_heads=2, head_dim=8, vocab_size=VOCAB,
                                          max_position_embeddings=512, pad_token_id=0, eos_token_id=2))
    return {"vae": vae, "scheduler": scheduler, "text_encoder": text_encoder, "tokenizer": _qwen_tokenizer()}


def to_original_layout(kind: str, state: dict) -> dict:
    """WanGP's files carry diffusers' own names (its model's modules are named alike): the state as it is."""
    return dict(state)


def to_diffusers_layout(kind: str, original: dict) -> dict:
    """The same names back (diffusers' ``convert_z_image_transformer_checkpoint_to_diffusers`` is for the original
    / ComfyUI layout only: it would rename ``all_x_embedder`` again)."""
    return dict(original)


def wangp_config(kind: str, model) -> dict:
    """WanGP's configs are diffusers' (``models/z_image/configs/z_image.json``: ``_class_name``
    ZImageTransformer2DModel), as its quantized files embed them."""
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in model.config.items() if not k.startswith("_")}
    return {"_class_name": "ZImageTransformer2DModel", **config}
