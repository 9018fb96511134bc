"""Tiny random Flux 2 models: ``flux2_dev`` (guidance embedding; a Mistral 3 text encoder) and ``flux2_klein``
(none; Qwen3), after diffusers' pipeline tests (head dim 16, 2 heads), 5 blocks of each kind (the quantizer's
towers), the real 128 input channels (a 32-channel latent packed 2x2). The text encoders have the layers the
pipelines read hidden states from (klein 9, 18, 27; dev 10, 20, 30) at width 16."""

from __future__ import annotations

from wangp_cli.families.base import TinyKind
from wangp_cli.families.flux2.layout import to_original
from wangp_cli.families.tiny_tokenizers import VOCAB, word_tokenizer

TEXT_DIM = 16
LATENT_CHANNELS = 32
_CONFIG = {"patch_size": 1, "in_channels": 4 * LATENT_CHANNELS, "num_layers": 5, "num_single_layers": 5,
           "attention_head_dim": 16, "num_attention_heads": 2, "joint_attention_dim": 3 * TEXT_DIM,
           "timestep_guidance_channels": 256, "axes_dims_rope": [4, 4, 4, 4]}
_CALL = {"height": 64, "width": 64, "num_inference_steps": 2, "max_sequence_length": 16}
_IMAGE = {"video_length": 1}

KINDS = {
    "flux2_dev": TinyKind("flux2_dev", "Flux2Transformer2DModel", {**_CONFIG, "guidance_embeds": True},
                          {**_CALL, "guidance_scale": 4.0, "max_sequence_length": 32}, settings=_IMAGE),
    "flux2_klein": TinyKind("flux2_klein_4b", "Flux2Transformer2DModel", {**_CONFIG, "guidance_embeds": False},
                            {**_CALL, "guidance_scale": 1.0}, settings=_IMAGE),
}

#: Qwen3's chat template, reduced to what the klein pipeline renders (one user message, generation prompt).
_QWEN_TEMPLATE = ("{% for message in messages %}<|im_start|> {{ message['role'] }} {{ message['content'] }} "
                  "<|im_end|> {% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}")


def _qwen_tokenizer():
    tokenizer = word_tokenizer({0: "<|endoftext|>", 1: "<|im_start|>", 2: "<|im_end|>", 3: "<unk>"}, bos=None,
                               eos="<|im_end|>", pad="<|endoftext|>", unk="<unk>", add_bos=False, add_eos=False,
                               model_max_length=512)
    tokenizer.chat_template = _QWEN_TEMPLATE
    return tokenizer


#: Mistral's chat template, reduced to what Flux2Pipeline renders (system + user messages of text parts).
_MISTRAL_TEMPLATE = ("{% for message in messages %}{% if message['role'] == 'system' %}[SYSTEM_PROMPT] "
                     "{% else %}[INST] {% endif %}{% for part in message['content'] %}{{ part['text'] }} "
                     "{% endfor %}{% if message['role'] == 'system' %}[/SYSTEM_PROMPT] {% else %}[/INST] {% endif %}"
                     "{% endfor %}")


def _mistral_tokenizer():
    """Mistral Small 3 stand-in (the real repo has a Pixtral processor; text prompts use its tokenizer only)."""
    tokenizer = word_tokenizer({0: "<unk>", 1: "<s>", 2: "</s>", 3: "<pad>", 4: "[INST]", 5: "[/INST]",
                                6: "[SYSTEM_PROMPT]", 7: "[/SYSTEM_PROMPT]"}, bos="<s>", eos="</s>", pad="<pad>",
                               unk="<unk>", add_bos=True, add_eos=False, model_max_length=512)
    tokenizer.chat_template = _MISTRAL_TEMPLATE
    return tokenizer


def _mistral_encoder():
    """Mistral 3 (text + Pixtral vision) at width 16 with the 31 layers the pipeline reads (10, 20, 30)."""
    import torch
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    config = Mistral3Config(
        text_config={"model_type": "mistral", "vocab_size": VOCAB, "hidden_size": TEXT_DIM, "intermediate_size": 37,
                     "max_position_embeddings": 512, "num_attention_heads": 4, "num_hidden_layers": 31,
                     "num_key_value_heads": 2, "head_dim": 4, "rms_norm_eps": 1e-05, "rope_theta": 1000000000.0,
                     "sliding_window": None, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3},
        vision_config={"model_type": "pixtral", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4,
                       "intermediate_size": 37, "image_size": 30, "patch_size": 6, "num_channels": 3},
        bos_token_id=1, eos_token_id=2, pad_token_id=3, image_seq_length=4, vision_feature_layer=-1,
        image_token_index=VOCAB - 1)
    torch.manual_seed(0)
    return Mistral3ForConditionalGeneration(config).eval()


def flux2_vae():
    import torch
    from diffusers import AutoencoderKLFlux2

    torch.manual_seed(0)
    return AutoencoderKLFlux2(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                              up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
                              latent_channels=LATENT_CHANNELS, norm_num_groups=4, use_quant_conv=False,
                              use_post_quant_conv=False, sample_size=32)


def components(kind: str) -> dict:
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers import Qwen3Config, Qwen3ForCausalLM

    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True)
    if kind == "flux2_dev":
        return {"vae": flux2_vae(), "scheduler": scheduler, "text_encoder": _mistral_encoder(),
                "tokenizer": _mistral_tokenizer()}
    torch.manual_seed(0)
    qwen = Qwen3ForCausalLM(Qwen3Config(vocab_size=VOCAB, hidden_size=TEXT_DIM, intermediate_size=37,
                                        num_hidden_layers=28, num_attention_heads=4, num_key_value_heads=2,
                                        head_dim=4, max_position_embeddings=512, pad_token_id=0, bos_token_id=1,
                                        eos_token_id=2, tie_word_embeddings=True)).eval()
    return {"vae": flux2_vae(), "scheduler": scheduler, "text_encoder": qwen, "tokenizer": _qwen_tokenizer(),
            "is_distilled": True}


def to_original_layout(kind: str, state: dict) -> dict:
    return to_original(state)


def to_diffusers_layout(kind: str, original: dict) -> dict:
    """diffusers' own converter, after the qkv split (``convert.to_diffusers``)."""
    from wangp_cli.families.flux2.convert import config, to_diffusers

    converted, _ = to_diffusers(dict(original), {}, config(original, {}, KINDS[kind].config, "tiny"))
    return converted


def wangp_config(kind: str, model) -> dict:
    """BFL's ``FluxParams`` names (``axes_dim``, ``theta``)."""
    c = model.config
    return {"hidden_size": c.num_attention_heads * c.attention_head_dim, "num_heads": c.num_attention_heads,
            "depth": c.num_layers, "depth_single_blocks": c.num_single_layers, "axes_dim": list(c.axes_dims_rope),
            "theta": c.rope_theta, "in_channels": c.in_channels, "context_in_dim": c.joint_attention_dim}
