"""Tiny random Qwen-Image models after diffusers' pipeline tests (``tests/pipelines/qwenimage/``): 5 dual-stream
blocks of 3 heads of 16 (enough floors for the quantizer), a 2-layer Qwen2.5-VL text encoder of width 16 with an
in-memory tokenizer holding Qwen's chat and vision tokens, the 4-channel Qwen-Image VAE. ``qwen_image`` stands for
the text-to-image model; ``qwen_image_edit_plus`` for Edit Plus 2511 (``zero_cond_t``, a Qwen2-VL processor: needs
torchvision, as the real one)."""

from __future__ import annotations

from wangp_cli.families.base import TinyKind
from wangp_cli.families.tiny_tokenizers import VOCAB, word_tokenizer

TEXT_DIM = 16  # Qwen2.5-VL hidden size = the transformer's joint_attention_dim
LATENT_CHANNELS = 4
#: Qwen's special tokens at fixed ids (the text encoder's config names the vision ones).
SPECIALS = {0: "<|endoftext|>", 1: "<|im_start|>", 2: "<|im_end|>", 3: "<|vision_start|>", 4: "<|vision_end|>",
            5: "<|image_pad|>", 6: "<|video_pad|>", 7: "<unk>"}
VISION_START, VISION_END, IMAGE_PAD, VIDEO_PAD = 3, 4, 5, 6
SIZE = 32  # the tiny call's height and width

_CONFIG = {"patch_size": 2, "in_channels": LATENT_CHANNELS * 4, "out_channels": LATENT_CHANNELS, "num_layers": 5,
           "attention_head_dim": 16, "num_attention_heads": 3, "joint_attention_dim": TEXT_DIM,
           "guidance_embeds": False, "axes_dims_rope": (8, 4, 4)}
_CALL = {"height": SIZE, "width": SIZE, "num_inference_steps": 2, "true_cfg_scale": 4.0,
         "negative_prompt": "text, watermark, copyright, blurry, low resolution"}
_SETTINGS = {"video_length": 1, "resolution": f"{SIZE}x{SIZE}", "guidance_scale": 4.0}

KINDS = {
    "qwen_image": TinyKind("qwen_image_20B", "QwenImageTransformer2DModel", dict(_CONFIG), dict(_CALL),
                           settings=dict(_SETTINGS)),
    "qwen_image_edit_plus": TinyKind("qwen_image_edit_plus2_20B", "QwenImageTransformer2DModel",
                                     dict(_CONFIG, zero_cond_t=True), dict(_CALL), settings=dict(_SETTINGS)),
}
#: Kinds whose pipeline takes images (a processor component).
EDIT_KINDS = ("qwen_image_edit_plus",)


def tokenizer():
    """Qwen2 stand-in: no BOS/EOS added (the pipelines write the chat template themselves)."""
    return word_tokenizer(SPECIALS, bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk="<unk>", add_bos=False,
                          add_eos=False, model_max_length=32768)


def text_encoder():
    """diffusers' test Qwen2.5-VL (2 text layers, 2 vision blocks, width 16) over the tiny vocabulary."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(0)
    config = Qwen2_5_VLConfig(
        text_config={"hidden_size": TEXT_DIM, "intermediate_size": 16, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": VOCAB,
                     "bos_token_id": None, "eos_token_id": 2, "pad_token_id": 0,
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                     "rope_theta": 1000000.0},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=TEXT_DIM, vocab_size=VOCAB, vision_start_token_id=VISION_START, vision_end_token_id=VISION_END,
        image_token_id=IMAGE_PAD, video_token_id=VIDEO_PAD, bos_token_id=None, eos_token_id=2, pad_token_id=0)
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def processor():
    """A Qwen2-VL processor over the tiny tokenizer; at most 56x56 pixels reach the vision tower."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    return Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=56 * 56),
                            tokenizer=tokenizer(), video_processor=Qwen2VLVideoProcessor())


def components(kind: str) -> dict:
    import torch
    from diffusers import AutoencoderKLQwenImage, FlowMatchEulerDiscreteScheduler

    from wangp_cli.families.qwen.pipeline import SCHEDULERS

    torch.manual_seed(0)
    vae = AutoencoderKLQwenImage(base_dim=LATENT_CHANNELS * 6, z_dim=LATENT_CHANNELS, dim_mult=[1, 2, 4],
                                 num_res_blocks=1, temperal_downsample=[False, True],
                                 latents_mean=[0.0] * LATENT_CHANNELS, latents_std=[1.0] * LATENT_CHANNELS)
    parts = {"vae": vae, "scheduler": FlowMatchEulerDiscreteScheduler(**SCHEDULERS["default"]),
             "text_encoder": text_encoder(), "tokenizer": tokenizer()}
    if kind in EDIT_KINDS:
        parts["processor"] = processor()
    return parts


def to_original_layout(kind: str, state: dict) -> dict:
    """WanGP's files use diffusers' names (see ``convert``): the same keys."""
    return dict(state)


def to_diffusers_layout(kind: str, original: dict) -> dict:
    """diffusers' own single-file mapping of ``QwenImageTransformer2DModel``."""
    from diffusers.loaders.single_file_model import SINGLE_FILE_LOADABLE_CLASSES

    return SINGLE_FILE_LOADABLE_CLASSES["QwenImageTransformer2DModel"]["checkpoint_mapping_fn"](dict(original))


def wangp_config(kind: str, model) -> dict:
    """WanGP's config files' form (``models/qwen/configs/*.json``): diffusers' config with its class name."""
    config = {key: (list(value) if isinstance(value, tuple) else value) for key, value in model.config.items()
              if not key.startswith("_")}
    return {"_class_name": "QwenImageTransformer2DModel", **config}
