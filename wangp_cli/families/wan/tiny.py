"""Tiny random Wan models: ``t2v``, ``i2v``, ``flf2v`` (first and last frame) and ``vace`` (diffusers' pipeline test
sizes, head dim 16 for optimum-quanto's CPU kernels, at least 5 blocks so that WanGP-style quantization applies);
Wan 2.2: ``t2v_2_2`` and ``i2v_2_2`` (two transformers of the same shape, the Wan 2.1 VAE; i2v without CLIP),
``vace_2_2`` (two VACE transformers sharing one module file, as WanGP's VACE 2.2 loads the Wan 2.1 VACE module into
both t2v transformers) and ``ti2v_2_2`` (48 latent channels, the Wan 2.2 VAE: patch 2, 16x spatial compression).
The variants (:data:`VARIANT_KINDS`, tested in ``tests/generate/test_wan_variants.py``, not with the core kinds):
``sky_df`` (SkyReels-V2 DF, 17 frames), ``fun_inp`` (Fun InP: i2v with CLIP), ``lucy_edit`` (TI2V 5B-like with 96
input channels, a control video) and ``chrono_edit`` (ChronoEdit's transformer, an image output)."""

from __future__ import annotations

from wangp_cli.families.base import TinyKind
from wangp_cli.families.tiny_tokenizers import VOCAB, word_tokenizer
from wangp_cli.families.wan.layout import to_original

TEXT_DIM = 32  # UMT5 d_model = Wan text_dim
CLIP_VISION_DIM = 16  # Wan I2V image encoder hidden size = Wan image_dim

_CONFIG = {"patch_size": (1, 2, 2), "num_attention_heads": 2, "attention_head_dim": 16, "in_channels": 16,
           "out_channels": 16, "text_dim": TEXT_DIM, "freq_dim": 256, "ffn_dim": 32, "num_layers": 5,
           "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 32}
_I2V = dict(_CONFIG, in_channels=36, image_dim=CLIP_VISION_DIM, added_kv_proj_dim=32)
#: Wan 2.2 VAE latent channels (TI2V 5B).
Z_DIM_2_2 = 48
_CALL = {"height": 64, "width": 64, "num_frames": 9, "num_inference_steps": 2, "guidance_scale": 5.0,
         "max_sequence_length": 16}
#: The VACE module file of WanGP's VACE 14B holds these keys (the main file is a t2v file).
VACE_MODULE = ("vace_blocks.", "vace_patch_embedding.")

_VACE = dict(_CONFIG, num_layers=10, vace_layers=[0, 2, 4, 6, 8], vace_in_channels=96)

KINDS = {
    "t2v": TinyKind("t2v_1.3B", "WanTransformer3DModel", dict(_CONFIG), dict(_CALL)),
    "i2v": TinyKind("i2v", "WanTransformer3DModel", dict(_I2V), dict(_CALL)),
    # first and last image: 2 x 17 CLIP tokens (16 patches + CLS) with a learned position table
    "flf2v": TinyKind("flf2v_720p", "WanTransformer3DModel", dict(_I2V, pos_embed_seq_len=34), dict(_CALL)),
    # 10 layers and 5 VACE blocks, so that range(0, L, L // n_vace) = [0, 2, 4, 6, 8] (the rule that reproduces the
    # official lists) and the module file has 5 floors, enough to be quantized like WanGP's
    "vace": TinyKind("vace_14B", "WanVACETransformer3DModel", dict(_VACE), dict(_CALL), module_prefixes=VACE_MODULE),
    # Wan 2.2 A14B: the high-noise transformer; the low-noise one has the same config (another seed)
    "t2v_2_2": TinyKind("t2v_2_2", "WanTransformer3DModel", dict(_CONFIG), dict(_CALL)),
    "i2v_2_2": TinyKind("i2v_2_2", "WanTransformer3DModel", dict(_CONFIG, in_channels=36), dict(_CALL)),
    # VACE 2.2: two VACE transformers whose VACE blocks are the same (one module file for both)
    "vace_2_2": TinyKind("vace_14B_2_2", "WanVACETransformer3DModel", dict(_VACE), dict(_CALL),
                         module_prefixes=VACE_MODULE),
    "ti2v_2_2": TinyKind("ti2v_2_2", "WanTransformer3DModel",
                         dict(_CONFIG, in_channels=Z_DIM_2_2, out_channels=Z_DIM_2_2), dict(_CALL)),
    # the variants: SkyReels-V2 DF makes 17 + 20k frames
    "sky_df": TinyKind("sky_df_1.3B", "SkyReelsV2Transformer3DModel", dict(_CONFIG), dict(_CALL, num_frames=17),
                       settings={"video_length": 17}),
    "fun_inp": TinyKind("fun_inp", "WanTransformer3DModel", dict(_I2V), dict(_CALL)),
    # the edited video's latents concatenated to the noise: 2 x 48 input channels, the Wan 2.2 VAE
    "lucy_edit": TinyKind("lucy_edit", "WanTransformer3DModel",
                          dict(_CONFIG, in_channels=2 * Z_DIM_2_2, out_channels=Z_DIM_2_2), dict(_CALL)),
    # an image output: 5 frames are generated (model_mode 0), the last one written
    "chrono_edit": TinyKind("chrono_edit", "ChronoEditTransformer3DModel", dict(_I2V), dict(_CALL, num_frames=5),
                            settings={"video_length": 1}),
}
#: The variant kinds: their own test file, not the core Wan/HunyuanVideo tests (``generate.tiny.CORE_KINDS``).
VARIANT_KINDS = ("sky_df", "fun_inp", "lucy_edit", "chrono_edit")
#: Kinds built on the Wan 2.2 VAE (48 latent channels, 16x spatial).
WAN_2_2_VAE = ("ti2v_2_2", "lucy_edit")
#: Kinds with the CLIP image encoder and processor.
CLIP_KINDS = ("i2v", "flf2v", "fun_inp", "chrono_edit")
#: Pipeline configuration of the Wan 2.2 kinds (saved in model_index.json as the Hub repos have it).
PIPELINE_CONFIG = {"t2v_2_2": {"boundary_ratio": 0.875}, "i2v_2_2": {"boundary_ratio": 0.9},
                   "vace_2_2": {"boundary_ratio": 0.875},
                   "ti2v_2_2": {"expand_timesteps": True}}


def _t5_tokenizer():
    """umt5-xxl stand-in: pad 0, eos 1, unk 2; appends ``</s>``."""
    return word_tokenizer({0: "<pad>", 1: "</s>", 2: "<unk>"}, bos=None, eos="</s>", pad="<pad>", unk="<unk>",
                          add_bos=False, add_eos=True, model_max_length=512)


def components(kind: str) -> dict:
    """VAE, UniPC scheduler, UMT5 encoder and tokenizer; CLIP image encoder and processor for the Wan 2.1 image
    kinds; the Wan 2.2 pipelines' configuration (``boundary_ratio``, ``expand_timesteps``)."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    if kind in WAN_2_2_VAE:  # the Wan 2.2 VAE: residual blocks, 2x2 patches of 12 channels, 16x spatial
        vae = AutoencoderKLWan(base_dim=12, z_dim=Z_DIM_2_2, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
                               out_channels=12, patch_size=2, scale_factor_spatial=16,
                               latents_mean=[0.0] * Z_DIM_2_2, latents_std=[1.0] * Z_DIM_2_2)
    else:
        vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                               temperal_downsample=[False, True, True])
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                        num_train_timesteps=1000, flow_shift=3.0)
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=VOCAB, d_model=TEXT_DIM, d_kv=8, d_ff=64, num_layers=2,
                                               num_heads=4, relative_attention_num_buckets=8,
                                               relative_attention_max_distance=16, pad_token_id=0,
                                               eos_token_id=1, decoder_start_token_id=0))
    parts = {"vae": vae, "scheduler": scheduler, "text_encoder": text_encoder, "tokenizer": _t5_tokenizer(),
             **PIPELINE_CONFIG.get(kind, {})}
    if kind in CLIP_KINDS:
        from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

        torch.manual_seed(0)
        parts["image_encoder"] = CLIPVisionModel(CLIPVisionConfig(
            hidden_size=CLIP_VISION_DIM, intermediate_size=32, projection_dim=CLIP_VISION_DIM, num_hidden_layers=2,
            num_attention_heads=2, image_size=32, patch_size=8))
        parts["image_processor"] = CLIPImageProcessor(crop_size=32, size=32)
    return parts


def to_original_layout(kind: str, state: dict) -> dict:
    return to_original(state)


def to_diffusers_layout(kind: str, original: dict) -> dict:
    """diffusers' own converter (a shallow copy is converted); it has no name for FLF2V's position table."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    original = dict(original)
    emb_pos = original.pop("img_emb.emb_pos", None)
    converted = convert_wan_transformer_to_diffusers(original)
    if emb_pos is not None:
        converted["condition_embedder.image_embedder.pos_embed"] = emb_pos
    return converted


def wangp_config(kind: str, model) -> dict:
    """WanGP's ``WanModel`` config; VACE: the plain t2v config (WanGP's VACE main file is a t2v file). Not in it:
    ``rope_max_seq_len`` 32 (the RoPE table only needs to cover the positions used, so a loader's default gives
    the same outputs)."""
    c = model.config
    return {"_class_name": "WanModel", "dim": c.num_attention_heads * c.attention_head_dim, "ffn_dim": c.ffn_dim,
            "freq_dim": c.freq_dim, "in_dim": c.in_channels, "out_dim": c.out_channels,
            "num_heads": c.num_attention_heads, "num_layers": c.num_layers, "text_len": 512, "eps": 1e-06,
            "model_type": _MODEL_TYPES.get(kind, kind)}


#: WanGP's ``model_type`` in the embedded config (VACE's main file is a t2v file; Wan 2.2 A14B i2v is "i2v2_2").
_MODEL_TYPES = {"t2v": "t2v", "vace": "t2v", "t2v_2_2": "t2v", "vace_2_2": "t2v", "i2v_2_2": "i2v2_2",
                "ti2v_2_2": "ti2v2_2", "sky_df": "t2v", "fun_inp": "i2v", "lucy_edit": "ti2v2_2", "chrono_edit": "i2v"}
