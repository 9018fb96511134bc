"""Tiny random Wan / HunyuanVideo models, fully offline: ``wangp doctor``'s self-test, the tests and benchmarks.

Everything is built from configs with seeded random weights; nothing is downloaded (``offline()`` sets
``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` while diffusers and transformers build, save and load, and puts the
previous values back, so that the download tests of the same process still see their own environment).

Kinds: ``"t2v"`` (Wan T2V), ``"i2v"`` (Wan I2V), ``"flf2v"`` (Wan first-last frame), ``"vace"`` (Wan VACE), ``"hunyuan"`` (HunyuanVideo T2V),
``"hunyuan_i2v"`` (HunyuanVideo I2V, ``token_replace``: 4 input channels, guidance embedding on).

- :func:`make_components` saves a tiny diffusers pipeline and deletes its ``transformer/`` folder: the layout of a
  ``*-Diffusers`` Hub repo downloaded without its transformer.
- :func:`make_transformer` builds the matching tiny diffusers transformer, every parameter random (seeded).
- :func:`to_original_layout` gives its state dict in WanGP's original key layout, the exact inverse of diffusers'
  ``convert_wan_transformer_to_diffusers`` / ``convert_hunyuan_video_transformer_to_diffusers``;
  :func:`assert_round_trip` checks that with diffusers' own converters.
- :func:`write_transformer` / :func:`write_quantized` write WanGP-style 16-bit / quanto int8 safetensors files
  (VACE: the t2v file plus a module file, as WanGP ships it).
- :func:`reference_pipeline` is the plain diffusers pipeline the tests compare wangp's output with;
  :data:`CALL_KWARGS` the small-call arguments that run on CPU (64x64, 9 frames, 2 steps).

Tiny configs follow diffusers' own pipeline tests, with in-memory ``WordLevel`` tokenizers instead of Hub ones and
head dim 16 (optimum-quanto's CPU kernels need ``in_features % 16 == 0``). The repeated block lists have at least
5 members so that WanGP-style quantization (numbered lists of >= 5 floors only) applies to them.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

KINDS = ("t2v", "i2v", "flf2v", "vace", "hunyuan", "hunyuan_i2v")
WAN_KINDS = ("t2v", "i2v", "flf2v", "vace")
HUNYUAN_KINDS = ("hunyuan", "hunyuan_i2v")
#: Kinds whose pipeline takes an ``image=``.
IMAGE_KINDS = ("i2v", "flf2v", "hunyuan_i2v")

PIPELINES = {
    "t2v": "WanPipeline",
    "i2v": "WanImageToVideoPipeline",
    "flf2v": "WanImageToVideoPipeline",
    "vace": "WanVACEPipeline",
    "hunyuan": "HunyuanVideoPipeline",
    "hunyuan_i2v": "HunyuanVideoImageToVideoPipeline",
}
TRANSFORMERS = {
    "t2v": "WanTransformer3DModel",
    "i2v": "WanTransformer3DModel",
    "flf2v": "WanTransformer3DModel",
    "vace": "WanVACETransformer3DModel",
    "hunyuan": "HunyuanVideoTransformer3DModel",
    "hunyuan_i2v": "HunyuanVideoTransformer3DModel",
}

# ---------------------------------------------------------------------------------------------------------------
# Tiny configs
# ---------------------------------------------------------------------------------------------------------------

TEXT_DIM = 32  # UMT5 d_model = Wan text_dim
CLIP_VISION_DIM = 16  # Wan I2V image encoder hidden size = Wan image_dim
LLAMA_DIM = 16  # Llama / Llava text hidden size = Hunyuan text_embed_dim
CLIP_TEXT_DIM = 8  # CLIP-L stand-in hidden size = Hunyuan pooled_projection_dim
VOCAB = 1000
IMAGE_TOKEN = VOCAB - 1  # Llava image_token_index (Hunyuan I2V): the last vocabulary id
HUNYUAN_IMAGE = 64  # Llava vision tower image size; patch 16 -> 16 image tokens (CLS dropped)
HUNYUAN_IMAGE_TOKENS = (HUNYUAN_IMAGE // 16) ** 2

_WAN = {"patch_size": (1, 2, 2), "num_attention_heads": 2, "attention_head_dim": 16, "in_channels": 16,
        "out_channels": 16, "text_dim": TEXT_DIM, "freq_dim": 256, "ffn_dim": 32, "num_layers": 5,
        "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 32}
_HUNYUAN = {"in_channels": 4, "out_channels": 4, "num_attention_heads": 2, "attention_head_dim": 16, "num_layers": 5,
            "num_single_layers": 5, "num_refiner_layers": 1, "mlp_ratio": 4.0, "patch_size": 1, "patch_size_t": 1,
            "qk_norm": "rms_norm", "guidance_embeds": True, "text_embed_dim": LLAMA_DIM,
            "pooled_projection_dim": CLIP_TEXT_DIM, "rope_theta": 256.0, "rope_axes_dim": (4, 6, 6)}

#: diffusers transformer configs (``Model(**TRANSFORMER_CONFIGS[kind])``).
#: VACE: 10 layers and 5 VACE blocks, so that ``range(0, L, L // n_vace)`` = [0, 2, 4, 6, 8] (the rule that
#: reproduces the official lists) and the module file has 5 floors, enough to be quantized like WanGP's.
TRANSFORMER_CONFIGS = {
    "t2v": dict(_WAN),
    "i2v": dict(_WAN, in_channels=36, image_dim=CLIP_VISION_DIM, added_kv_proj_dim=32),
    # first and last image: 2 x 17 CLIP tokens (16 patches + CLS) with a learned position table
    "flf2v": dict(_WAN, in_channels=36, image_dim=CLIP_VISION_DIM, added_kv_proj_dim=32, pos_embed_seq_len=34),
    "vace": dict(_WAN, num_layers=10, vace_layers=[0, 2, 4, 6, 8], vace_in_channels=96),
    "hunyuan": dict(_HUNYUAN),
    "hunyuan_i2v": dict(_HUNYUAN, image_condition_type="token_replace"),
}

_WAN_CALL = {"height": 64, "width": 64, "num_frames": 9, "num_inference_steps": 2, "guidance_scale": 5.0,
             "max_sequence_length": 16}
#: Small-call keyword arguments that run on CPU (pass ``prompt=``, ``generator=``, ``output_type=`` and, for
#: :data:`IMAGE_KINDS`, ``image=`` besides). Use :func:`call_kwargs` for a copy (``prompt_template`` is a dict).
CALL_KWARGS = {
    "t2v": dict(_WAN_CALL),
    "i2v": dict(_WAN_CALL),
    "flf2v": dict(_WAN_CALL),
    "vace": dict(_WAN_CALL),
    "hunyuan": {"height": 64, "width": 64, "num_frames": 9, "num_inference_steps": 2, "guidance_scale": 6.0,
                "max_sequence_length": 16, "prompt_template": {"template": "{}", "crop_start": 0}},
    # the image tokens overwrite positions 5..20 of the (max_sequence_length) prompt tokens, as in diffusers' test
    "hunyuan_i2v": {"height": 64, "width": 64, "num_frames": 9, "num_inference_steps": 2, "guidance_scale": 6.0,
                    "max_sequence_length": 32,
                    "prompt_template": {"template": "{}", "crop_start": 0, "image_emb_len": HUNYUAN_IMAGE_TOKENS,
                                        "image_emb_start": 5, "image_emb_end": 5 + HUNYUAN_IMAGE_TOKENS}},
}

_WORDS = ("a", "an", "the", "of", "and", "in", "on", "with", "at", "to", "is", "are", "cat", "dog", "monkey", "fox",
          "bird", "horse", "person", "man", "woman", "child", "car", "boat", "tree", "forest", "river", "sea",
          "mountain", "city", "street", "sky", "sun", "moon", "night", "day", "rain", "snow", "red", "green", "blue",
          "white", "black", "small", "big", "fast", "slow", "running", "walking", "dancing", "flying", "swimming",
          "jumping", "sitting", "video", "scene", "camera", "shot", "slowly", "beautiful", "bright", "dark")


def call_kwargs(kind: str, **overrides) -> dict:
    """A deep copy of ``CALL_KWARGS[kind]`` updated with ``overrides``."""
    return {**copy.deepcopy(CALL_KWARGS[kind]), **overrides}


def make_image(size: int = 64, seed: int = 0):
    """A small seeded random RGB PIL image (``size`` x ``size``) for the image-to-video kinds."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


@contextlib.contextmanager
def offline():
    """``HF_HUB_OFFLINE=1`` / ``TRANSFORMERS_OFFLINE=1`` (and huggingface_hub's cached flag) for the block only."""
    import huggingface_hub.constants as hub_constants

    saved = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    saved_flag = hub_constants.HF_HUB_OFFLINE
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = saved_flag
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


# ---------------------------------------------------------------------------------------------------------------
# Tokenizers (in memory) and the other components
# ---------------------------------------------------------------------------------------------------------------

def _tokenizer(specials: dict[int, str], *, bos: str | None, eos: str | None, pad: str, unk: str,
               add_bos: bool, add_eos: bool, model_max_length: int):
    """A ``PreTrainedTokenizerFast`` over a ``WordLevel`` vocabulary of :data:`VOCAB` ids (specials at fixed ids,
    then :data:`_WORDS`, then dummy tokens), lower-casing, whitespace split, BOS/EOS added like the real one."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: index for index, token in specials.items()}
    free = (index for index in range(VOCAB) if index not in specials)
    for word in _WORDS:
        vocab[word] = next(free)
    for index in free:
        vocab[f"<extra_{index}>"] = index
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=unk))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    single = " ".join(([bos] if add_bos else []) + ["$A"] + ([eos] if add_eos else []))
    used = [token for token, add in ((bos, add_bos), (eos, add_eos)) if add]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=single, special_tokens=[(token, vocab[token]) for token in used])
    kwargs = {"pad_token": pad, "unk_token": unk, "model_max_length": model_max_length}
    if bos:
        kwargs["bos_token"] = bos
    if eos:
        kwargs["eos_token"] = eos
    extra = [token for token in specials.values() if token not in (bos, eos, pad, unk)]
    if extra:
        kwargs["additional_special_tokens"] = extra
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **kwargs)


def _t5_tokenizer():
    """umt5-xxl stand-in: pad 0, eos 1, unk 2; appends ``</s>``."""
    return _tokenizer({0: "<pad>", 1: "</s>", 2: "<unk>"}, bos=None, eos="</s>", pad="<pad>", unk="<unk>",
                      add_bos=False, add_eos=True, model_max_length=512)


def _llama_tokenizer(image_token: bool = False):
    """llava-llama-3 stand-in: bos 0, pad 1, eos 2, unk 3 (+ ``<image>`` at the last id); prepends BOS."""
    specials = {0: "<|begin_of_text|>", 1: "<pad>", 2: "<|end_of_text|>", 3: "<unk>"}
    if image_token:
        specials[IMAGE_TOKEN] = "<image>"
    return _tokenizer(specials, bos="<|begin_of_text|>", eos="<|end_of_text|>", pad="<pad>", unk="<unk>",
                      add_bos=True, add_eos=False, model_max_length=1024)


def _clip_tokenizer():
    """CLIP-L stand-in: bos 0, pad 1, eos 2, unk 3; ``<|startoftext|> $A <|endoftext|>``, 77 tokens."""
    return _tokenizer({0: "<|startoftext|>", 1: "<pad>", 2: "<|endoftext|>", 3: "<unk>"}, bos="<|startoftext|>",
                      eos="<|endoftext|>", pad="<pad>", unk="<unk>", add_bos=True, add_eos=True,
                      model_max_length=77)


def _wan_components(kind: str) -> dict:
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=VOCAB, d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2,
                                               num_heads=4, relative_attention_num_buckets=8,
                                               relative_attention_max_distance=16, pad_token_id=0,
                                               eos_token_id=1, decoder_start_token_id=0))
    components = {"vae": vae, "scheduler": scheduler, "text_encoder": text_encoder, "tokenizer": _t5_tokenizer()}
    if kind in ("i2v", "flf2v"):
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

        torch.manual_seed(0)
        components["image_encoder"] = CLIPVisionModel(CLIPVisionConfig(
            hidden_size=CLIP_VISION_DIM, intermediate_size=32, projection_dim=CLIP_VISION_DIM, num_hidden_layers=2,
            num_attention_heads=2, image_size=32, patch_size=8))
        components["image_processor"] = CLIPImageProcessor(crop_size=32, size=32)
    return components


def _hunyuan_components(kind: str) -> dict:
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
                                  num_hidden_layers=2, image_size=HUNYUAN_IMAGE, patch_size=16)
        text_encoder = LlavaForConditionalGeneration(LlavaConfig(
            vision_config=vision, text_config=llama, pad_token_id=1, image_token_index=IMAGE_TOKEN))
        tokenizer = _llama_tokenizer(image_token=True)
    torch.manual_seed(0)
    text_encoder_2 = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=CLIP_TEXT_DIM, intermediate_size=37,
        layer_norm_eps=1e-5, num_attention_heads=4, num_hidden_layers=2, vocab_size=VOCAB, hidden_act="gelu",
        projection_dim=32))
    components = {"vae": vae, "scheduler": scheduler, "text_encoder": text_encoder, "tokenizer": tokenizer,
                  "text_encoder_2": text_encoder_2, "tokenizer_2": _clip_tokenizer()}
    if kind == "hunyuan_i2v":
        components["image_processor"] = CLIPImageProcessor(
            crop_size=HUNYUAN_IMAGE, size=HUNYUAN_IMAGE, do_center_crop=True, do_normalize=True, do_resize=True,
            image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
            resample=3)
    return components


def _pipeline_class(kind: str):
    import diffusers

    return getattr(diffusers, PIPELINES[kind])


def make_components(kind: str, folder: Path) -> Path:
    """Save the tiny diffusers pipeline of ``kind`` to ``folder`` without its ``transformer/`` subfolder.

    ``model_index.json`` still names the transformer class (as a ``*-Diffusers`` Hub repo does); every other
    component (text encoder(s), tokenizer(s), VAE, scheduler, image encoder / processor) is saved. Returns ``folder``.
    """
    _check_kind(kind)
    folder = Path(folder)
    with offline():
        parts = _wan_components(kind) if kind in WAN_KINDS else _hunyuan_components(kind)
        pipe = _pipeline_class(kind)(transformer=make_transformer(kind), **parts)
        pipe.save_pretrained(folder)
    shutil.rmtree(folder / "transformer")
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Transformers
# ---------------------------------------------------------------------------------------------------------------

def _randomize(model, seed: int) -> None:
    """Give EVERY parameter seeded random values: Linear/Conv weights N(0, 1/fan_in), norm weights 1 + N(0, 0.1),
    biases, modulation tables and the rest N(0, 0.1) (no zero-initialised output projections, no unit norms)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "weight" and param.dim() >= 2:
                value = noise / (param[0].numel() ** 0.5)
            elif leaf == "weight" and "norm" in name:
                value = 1 + 0.1 * noise
            else:
                value = 0.1 * noise
            param.copy_(value)


def make_transformer(kind: str, seed: int = 0):
    """The tiny diffusers transformer of ``kind`` (``TRANSFORMER_CONFIGS[kind]``), float32, all weights random."""
    _check_kind(kind)
    import diffusers

    model = getattr(diffusers, TRANSFORMERS[kind])(**copy.deepcopy(TRANSFORMER_CONFIGS[kind]))
    _randomize(model, seed)
    return model.float().eval()


# ---------------------------------------------------------------------------------------------------------------
# Original (WanGP) key layout
# ---------------------------------------------------------------------------------------------------------------

_WAN_TOP = {
    "condition_embedder.time_embedder.linear_1.": "time_embedding.0.",
    "condition_embedder.time_embedder.linear_2.": "time_embedding.2.",
    "condition_embedder.time_proj.": "time_projection.1.",
    "condition_embedder.text_embedder.linear_1.": "text_embedding.0.",
    "condition_embedder.text_embedder.linear_2.": "text_embedding.2.",
    "condition_embedder.image_embedder.norm1.": "img_emb.proj.0.",
    "condition_embedder.image_embedder.ff.net.0.proj.": "img_emb.proj.1.",
    "condition_embedder.image_embedder.ff.net.2.": "img_emb.proj.3.",
    "condition_embedder.image_embedder.norm2.": "img_emb.proj.4.",
    "condition_embedder.image_embedder.pos_embed": "img_emb.emb_pos",
    "patch_embedding.": "patch_embedding.",
    "vace_patch_embedding.": "vace_patch_embedding.",
    "proj_out.": "head.head.",
}
_WAN_ATTN = {"to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "o.", "norm_q.": "norm_q.",
             "norm_k.": "norm_k.", "add_k_proj.": "k_img.", "add_v_proj.": "v_img.", "norm_added_k.": "norm_k_img."}
_WAN_BLOCK = {
    "norm1.": "norm1.",
    "norm2.": "norm3.",  # diffusers' norm2 (the affine cross-attention norm) is the original norm3
    "norm3.": "norm2.",
    "ffn.net.0.proj.": "ffn.0.",
    "ffn.net.2.": "ffn.2.",
    "proj_in.": "before_proj.",  # VACE blocks
    "proj_out.": "after_proj.",
}


def _wan_key(key: str) -> str:
    if key == "scale_shift_table":
        return "head.modulation"
    parts = key.split(".")
    if parts[0] in ("blocks", "vace_blocks") and len(parts) > 2 and parts[1].isdigit():
        prefix, rest = ".".join(parts[:2]) + ".", ".".join(parts[2:])
        if rest == "scale_shift_table":
            return prefix + "modulation"
        if rest.startswith(("attn1.", "attn2.")):
            attention = "self_attn." if rest.startswith("attn1.") else "cross_attn."
            inner = rest[len("attn1."):]
            for new, old in _WAN_ATTN.items():
                if inner.startswith(new):
                    return prefix + attention + old + inner[len(new):]
        for new, old in _WAN_BLOCK.items():
            if rest.startswith(new):
                return prefix + old + rest[len(new):]
    else:
        for new, old in _WAN_TOP.items():
            if key.startswith(new):
                return old + key[len(new):]
    raise KeyError(f"no original Wan name for diffusers key {key!r}")


_HY_TOP = {
    "x_embedder.": "img_in.",
    "context_embedder.time_text_embed.timestep_embedder.linear_1.": "txt_in.t_embedder.mlp.0.",
    "context_embedder.time_text_embed.timestep_embedder.linear_2.": "txt_in.t_embedder.mlp.2.",
    "context_embedder.time_text_embed.text_embedder.linear_1.": "txt_in.c_embedder.linear_1.",
    "context_embedder.time_text_embed.text_embedder.linear_2.": "txt_in.c_embedder.linear_2.",
    "context_embedder.proj_in.": "txt_in.input_embedder.",
    "time_text_embed.timestep_embedder.linear_1.": "time_in.mlp.0.",
    "time_text_embed.timestep_embedder.linear_2.": "time_in.mlp.2.",
    "time_text_embed.text_embedder.linear_1.": "vector_in.in_layer.",
    "time_text_embed.text_embedder.linear_2.": "vector_in.out_layer.",
    "time_text_embed.guidance_embedder.linear_1.": "guidance_in.mlp.0.",
    "time_text_embed.guidance_embedder.linear_2.": "guidance_in.mlp.2.",
    "norm_out.linear.": "final_layer.adaLN_modulation.1.",  # shift/scale swapped, see _hunyuan_original
    "proj_out.": "final_layer.linear.",
}
_HY_REFINER = {"norm1.": "norm1.", "norm2.": "norm2.", "attn.to_out.0.": "self_attn_proj.",
               "ff.net.0.proj.": "mlp.fc1.", "ff.net.2.": "mlp.fc2.", "norm_out.linear.": "adaLN_modulation.1."}
_HY_DOUBLE = {
    "norm1.linear.": "img_mod.linear.",
    "norm1_context.linear.": "txt_mod.linear.",
    "attn.norm_q.": "img_attn_q_norm.",
    "attn.norm_k.": "img_attn_k_norm.",
    "attn.norm_added_q.": "txt_attn_q_norm.",
    "attn.norm_added_k.": "txt_attn_k_norm.",
    "attn.to_out.0.": "img_attn_proj.",
    "attn.to_add_out.": "txt_attn_proj.",
    "ff.net.0.proj.": "img_mlp.fc1.",
    "ff.net.2.": "img_mlp.fc2.",
    "ff_context.net.0.proj.": "txt_mlp.fc1.",
    "ff_context.net.2.": "txt_mlp.fc2.",
}
_HY_SINGLE = {"attn.norm_q.": "q_norm.", "attn.norm_k.": "k_norm.", "norm.linear.": "modulation.linear.",
              "proj_out.": "linear2."}
_REFINER = "context_embedder.token_refiner.refiner_blocks."


def _rename(rest: str, table: dict, key: str) -> str:
    for new, old in table.items():
        if rest.startswith(new):
            return old + rest[len(new):]
    raise KeyError(f"no original HunyuanVideo name for diffusers key {key!r}")


def _hunyuan_original(state: dict) -> dict:
    import torch

    out: dict = {}
    fused: dict = {}  # original name -> {part: tensor}, placed where its first part appears

    def fuse(name: str, part: str, tensor) -> None:
        if name not in fused:
            fused[name] = {}
            out[name] = None
        fused[name][part] = tensor

    for key, tensor in state.items():
        parts = key.split(".")
        leaf = parts[-1]
        if key.startswith(_REFINER):
            index = key[len(_REFINER):].split(".")[0]
            prefix = f"txt_in.individual_token_refiner.blocks.{index}."
            rest = key[len(_REFINER) + len(index) + 1:]
            if rest.split(".")[:2] in (["attn", "to_q"], ["attn", "to_k"], ["attn", "to_v"]):
                fuse(f"{prefix}self_attn_qkv.{leaf}", rest.split(".")[1], tensor)
            else:
                out[prefix + _rename(rest, _HY_REFINER, key)] = tensor
        elif parts[0] == "transformer_blocks":
            prefix, rest = f"double_blocks.{parts[1]}.", ".".join(parts[2:])
            if parts[2:4] in (["attn", "to_q"], ["attn", "to_k"], ["attn", "to_v"]):
                fuse(f"{prefix}img_attn_qkv.{leaf}", parts[3], tensor)
            elif parts[2:4] in (["attn", "add_q_proj"], ["attn", "add_k_proj"], ["attn", "add_v_proj"]):
                fuse(f"{prefix}txt_attn_qkv.{leaf}", parts[3], tensor)
            else:
                out[prefix + _rename(rest, _HY_DOUBLE, key)] = tensor
        elif parts[0] == "single_transformer_blocks":
            prefix, rest = f"single_blocks.{parts[1]}.", ".".join(parts[2:])
            if parts[2:4] in (["attn", "to_q"], ["attn", "to_k"], ["attn", "to_v"]) or parts[2] == "proj_mlp":
                fuse(f"{prefix}linear1.{leaf}", parts[3] if parts[2] == "attn" else "mlp", tensor)
            else:
                out[prefix + _rename(rest, _HY_SINGLE, key)] = tensor
        else:
            name = _rename(key, _HY_TOP, key)
            if name.startswith("final_layer.adaLN_modulation.1."):
                scale, shift = tensor.chunk(2, dim=0)  # diffusers: [scale, shift]; original: [shift, scale]
                tensor = torch.cat([shift, scale], dim=0)
            out[name] = tensor
    orders = {"qkv": ("to_q", "to_k", "to_v"), "add": ("add_q_proj", "add_k_proj", "add_v_proj"),
              "linear1": ("to_q", "to_k", "to_v", "mlp")}
    for name, pieces in fused.items():
        order = orders["linear1"] if ".linear1." in name else orders["add"] if "txt_attn" in name else orders["qkv"]
        if set(pieces) != set(order):
            raise KeyError(f"incomplete fused tensor {name!r}: have {sorted(pieces)}")
        out[name] = torch.cat([pieces[p] for p in order], dim=0)
    return out


def to_original_layout(kind: str, model) -> dict:
    """``model.state_dict()`` in WanGP's original key layout (contiguous clones; same dtypes as the model).

    Wan: ``patch_embedding``, ``text_embedding.0/2``, ``time_embedding.0/2``, ``time_projection.1``,
    ``blocks.N.self_attn|cross_attn.q/k/v/o/norm_q/norm_k`` (+ ``k_img/v_img/norm_k_img``), ``blocks.N.norm3``,
    ``blocks.N.ffn.0/2``, ``blocks.N.modulation``, ``head.head``, ``head.modulation``, ``img_emb.proj.*``,
    ``vace_blocks.N.*`` (``before_proj`` / ``after_proj``), ``vace_patch_embedding``.
    HunyuanVideo: ``img_in``, ``txt_in.*`` (``individual_token_refiner.blocks.N.self_attn_qkv`` fused), ``time_in``,
    ``vector_in``, ``guidance_in``, ``double_blocks.N.img_attn_qkv`` / ``txt_attn_qkv`` (fused q,k,v),
    ``single_blocks.N.linear1`` (fused q,k,v,mlp), ``linear2``, ``final_layer.linear``,
    ``final_layer.adaLN_modulation.1`` (shift/scale order of the original).
    """
    _check_kind(kind)
    state = model.state_dict()
    if kind in WAN_KINDS:
        out = {_wan_key(key): tensor for key, tensor in state.items()}
    else:
        out = _hunyuan_original(state)
    return {key: tensor.detach().contiguous().clone() for key, tensor in out.items()}


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
    """Convert an original-layout dict back with diffusers' own converter (a shallow copy is converted).

    HunyuanVideo: diffusers' ``convert_hunyuan_video_transformer_to_diffusers`` hard-codes hidden size 3072 for
    ``single_blocks.N.linear1`` (right for the real 13B model only), so ``linear1`` is split here first into
    ``single_transformer_blocks.N.attn.to_q/to_k/to_v`` + ``proj_mlp`` (chunks [hidden, hidden, hidden, mlp], hidden
    = ``linear2``'s output size), which the converter passes through unchanged; everything else is its own work.
    """
    from diffusers.loaders.single_file_utils import (
        convert_hunyuan_video_transformer_to_diffusers,
        convert_wan_transformer_to_diffusers,
    )

    _check_kind(kind)
    if kind in WAN_KINDS:  # diffusers' converter has no name for FLF2V's position table
        original = dict(original)
        emb_pos = original.pop("img_emb.emb_pos", None)
        converted = convert_wan_transformer_to_diffusers(original)
        if emb_pos is not None:
            converted["condition_embedder.image_embedder.pos_embed"] = emb_pos
        return converted
    hidden = next(t.shape[0] for k, t in original.items() if k.endswith(".linear2.weight"))
    return convert_hunyuan_video_transformer_to_diffusers(_presplit_linear1(original, hidden))


def assert_round_trip(kind: str, model) -> dict:
    """Check that :func:`to_original_layout` is the exact inverse of diffusers' converter on ``model``.

    Every key of ``model.state_dict()`` must come back, no other key, every tensor ``torch.equal``. For HunyuanVideo
    the ``single_blocks.N.linear1`` split is done here, not by diffusers (its converter hard-codes hidden size 3072;
    see :func:`to_diffusers_layout`). Returns the original-layout dict.
    """
    import torch

    original = to_original_layout(kind, model)
    back = to_diffusers_layout(kind, original)
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(back)), sorted(set(back) - set(expected))
    assert not missing and not extra, f"{kind}: missing {missing[:8]}, unexpected {extra[:8]}"
    for key, tensor in expected.items():
        assert back[key].shape == tensor.shape and back[key].dtype == tensor.dtype, key
        assert torch.equal(back[key], tensor), f"{kind}: {key} differs after the round trip"
    return original


# ---------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------

def wangp_config(kind: str, model) -> dict:
    """The WanGP-style config embedded in the files (``config_base64``): it carries the head count, which tensor
    shapes cannot give. VACE: the plain t2v config (WanGP's VACE main file is a t2v file). HunyuanVideo also gets
    ``patch_size`` [t, h, w], ``mlp_width_ratio`` and, for I2V, ``i2v_condition_type`` (HunyuanVideo-I2V's names).
    Not in any config: Wan ``rope_max_seq_len`` 32 (the RoPE table only needs to cover the positions used, so a
    loader's default gives the same outputs)."""
    _check_kind(kind)
    c = model.config
    if kind in WAN_KINDS:
        return {"_class_name": "WanModel", "dim": c.num_attention_heads * c.attention_head_dim, "ffn_dim": c.ffn_dim,
                "freq_dim": c.freq_dim, "in_dim": c.in_channels, "out_dim": c.out_channels,
                "num_heads": c.num_attention_heads, "num_layers": c.num_layers, "text_len": 512, "eps": 1e-06,
                "model_type": "t2v" if kind in ("t2v", "vace") else kind}
    config = {"hidden_size": c.num_attention_heads * c.attention_head_dim, "heads_num": c.num_attention_heads,
              "mm_double_blocks_depth": c.num_layers, "mm_single_blocks_depth": c.num_single_layers,
              "rope_dim_list": list(c.rope_axes_dim), "in_channels": c.in_channels, "out_channels": c.out_channels,
              "guidance_embed": bool(c.guidance_embeds), "text_states_dim": c.text_embed_dim,
              "text_states_dim_2": c.pooled_projection_dim,
              "patch_size": [c.patch_size_t, c.patch_size, c.patch_size], "mlp_width_ratio": c.mlp_ratio}
    if c.image_condition_type:  # HunyuanVideo-I2V's own name for it
        config["i2v_condition_type"] = c.image_condition_type
    return config


_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
_VACE_MODULE = ("vace_blocks.", "vace_patch_embedding.")


def _save(tensors: dict, path: Path, dtype: str, metadata: dict | None) -> Path:
    import torch
    from safetensors.torch import save_file

    torch_dtype = getattr(torch, _DTYPES[dtype])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch_dtype).contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def write_transformer(kind: str, model, path: Path, dtype: str = "bf16", config: dict | None = None,
                      vace_module_path: Path | None = None) -> Path:
    """Write ``model`` in WanGP's original layout as a 16-bit (``"bf16"`` / ``"fp16"``, every tensor) safetensors
    file with metadata ``{"config_base64": base64(json(config))}`` (default :func:`wangp_config`).

    VACE with ``vace_module_path``: ``path`` gets everything but ``vace_blocks.*`` / ``vace_patch_embedding.*``
    (a t2v file), and those go to ``vace_module_path`` (no metadata), as WanGP ships VACE 14B; without it, one file
    (as VACE 1.3B). Returns ``path``.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {tuple(_DTYPES)}, not {dtype!r}")
    original = to_original_layout(kind, model)
    config = config if config is not None else wangp_config(kind, model)
    metadata = {"config_base64": base64.b64encode(json.dumps(config).encode()).decode()}
    if kind == "vace" and vace_module_path is not None:
        module = {k: v for k, v in original.items() if k.startswith(_VACE_MODULE)}
        original = {k: v for k, v in original.items() if not k.startswith(_VACE_MODULE)}
        _save(module, vace_module_path, dtype, None)
    return _save(original, path, dtype, metadata)


def write_quantized(kind: str, model, path: Path, dtype: str = "bf16", config: dict | None = None,
                    vace_module_path: Path | None = None) -> Path:
    """Write the quanto int8 file(s) the way wangp makes them: the 16-bit file (:func:`write_transformer`) under a
    temporary name, then ``wangp_cli.quantize.quantizer.quantize_file`` (config carried over from the source).

    VACE: the module file (5 ``vace_blocks`` floors, enough for the quantizer) is quantized too, separately, to
    ``vace_module_path``. Returns ``path``.
    """
    from wangp_cli.quantize.quantizer import quantize_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    source = path.with_name(f".{path.stem}.src16.safetensors")
    module_source = None
    if vace_module_path is not None:
        vace_module_path = Path(vace_module_path)
        module_source = vace_module_path.with_name(f".{vace_module_path.stem}.src16.safetensors")
    try:
        write_transformer(kind, model, source, dtype, config, module_source)
        quantize_file(source, path, dtype)
        if module_source is not None:
            quantize_file(module_source, vace_module_path, dtype)
    finally:
        for temp in (source, module_source):
            if temp is not None and temp.exists():
                temp.unlink()
    return path


def reference_pipeline(kind: str, components: Path, transformer):
    """The plain diffusers pipeline: ``PipelineClass.from_pretrained(components, transformer=transformer,
    local_files_only=True)``, offline, progress bar off."""
    _check_kind(kind)
    with offline():
        pipe = _pipeline_class(kind).from_pretrained(Path(components), transformer=transformer,
                                                     local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------------------------------------------------------
# A whole home folder
# ---------------------------------------------------------------------------------------------------------------

#: The architecture a tiny kind stands in for by default.
ARCHITECTURES = {"t2v": "t2v_1.3B", "i2v": "i2v", "flf2v": "flf2v_720p", "vace": "vace_14B", "hunyuan": "hunyuan",
                 "hunyuan_i2v": "hunyuan_i2v"}
#: Architectures whose definitions load a module file on top of the transformer (WanGP ships VACE 14B so).
MODULE_ARCHITECTURES = {"vace_14B": "vace_14B"}
#: The small-call settings every tiny definition carries (64x64, 9 frames, 2 steps).
TINY_SETTINGS = {"prompt": "a cat running in the snow", "resolution": "64x64", "video_length": 9,
                 "num_inference_steps": 2}


@dataclass
class TinyHome:
    """A home folder with one tiny definition whose files are all on disk."""

    root: Path
    model_id: str
    kind: str
    architecture: str
    model: object  # the float32 diffusers transformer the files were written from
    files: list[Path]  # the transformer file, then the module file (VACE 14B)
    components: Path
    preference: object  # the Preference under which wangp picks exactly these files
    pipeline_kwargs: dict  # extra call arguments for the tiny text encoders (sequence length, template)


def make_home(folder: Path, kind: str = "t2v", *, architecture: str | None = None, quantized: bool = False,
              dtype: str = "bf16", seed: int = 0, components: Path | None = None,
              model_id: str | None = None, model=None, target: str | None = None) -> TinyHome:
    """Write ``finetunes/<model_id>.json`` (a local-path definition of ``architecture``), its transformer file in
    WanGP's layout (16-bit, or quanto int8 when ``quantized``), the VACE module where the architecture has one, and
    the components under ``ckpts/<diffusers repo name>`` (copied from ``components`` when given). ``model``: a
    diffusers transformer of ``kind``'s class to write instead of :func:`make_transformer`'s (another size).
    ``target``: the WanGP version whose architecture ids to use (default: the CLI's)."""
    from wangp_cli.core.definitions import Catalog
    from wangp_cli.core.home import Home
    from wangp_cli.core.jsonio import write_json
    from wangp_cli.core.models import resolve_model
    from wangp_cli.core.registry import DEFAULT_TARGET, get_architecture
    from wangp_cli.core.variants import Preference

    _check_kind(kind)
    target = target or DEFAULT_TARGET
    root = Path(folder)
    architecture = architecture or ARCHITECTURES[kind]
    model_id = model_id or f"tiny_{architecture}"
    arch = get_architecture(architecture, target)
    if arch is None or arch.diffusers_repo is None:
        raise ValueError(f"unknown architecture {architecture!r}")
    name = f"tiny_{architecture}_{'quanto_' if quantized else ''}{dtype}{'_int8' if quantized else ''}.safetensors"
    relative = f"ckpts/{name}"
    definition = {"model": {"name": f"Tiny {architecture} (random weights)", "architecture": architecture,
                            "description": "A tiny random model for offline tests.", "URLs": [relative]},
                  **TINY_SETTINGS}
    if MODULE_ARCHITECTURES.get(architecture):
        definition["model"]["modules"] = [MODULE_ARCHITECTURES[architecture]]
    (root / "finetunes").mkdir(parents=True, exist_ok=True)
    (root / "ckpts").mkdir(parents=True, exist_ok=True)
    write_json(root / "finetunes" / f"{model_id}.json", definition)
    preference = Preference(quantization="int8" if quantized else "none", dtype=dtype)
    resolved = resolve_model(Catalog(Home(root), target), model_id, preference)
    module = Path(root / resolved["modules"][0]["path"]) if resolved["modules"] else None
    model = model if model is not None else make_transformer(kind, seed)
    writer = write_quantized if quantized else write_transformer
    if module is not None and resolved["modules"][0]["quantized"] != quantized:
        raise ValueError(f"the registry has no {'quantized' if quantized else '16-bit'} {dtype} module file")
    writer(kind, model, root / relative, dtype, vace_module_path=module)
    target = root / "ckpts" / arch.diffusers_repo.split("/")[-1]
    if components is not None:
        if Path(components).resolve() != target.resolve():
            shutil.copytree(components, target, dirs_exist_ok=True)
    else:
        make_components(kind, target)
    call = CALL_KWARGS[kind]
    extra = {key: copy.deepcopy(call[key]) for key in ("max_sequence_length", "prompt_template") if key in call}
    return TinyHome(root=root, model_id=model_id, kind=kind, architecture=architecture, model=model,
                    files=[root / relative] + ([module] if module else []), components=target,
                    preference=preference, pipeline_kwargs=extra)

