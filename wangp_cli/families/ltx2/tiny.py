"""Tiny random LTX-2 models after diffusers' pipeline tests (``tests/pipelines/ltx2``): ``ltx2`` (2.0: caption
projection in the transformer) and ``ltx2_3`` (2.3: gated attention, prompt modulation, 9-row tables); a tiny Gemma 3
text encoder, the connectors, the video VAE (8x space, 4x time), the audio VAE and vocoder. Head dim 16 (video) for
optimum-quanto's CPU kernels, 5 blocks so that WanGP-style quantization applies."""

from __future__ import annotations

from wangp_cli.families.base import TinyKind
from wangp_cli.families.ltx2.layout import to_original
from wangp_cli.families.tiny_tokenizers import VOCAB, word_tokenizer

TEXT_DIM = 16  # Gemma 3 hidden size = the transformer's caption_channels
TEXT_LAYERS = 2  # the connectors take every hidden state: (layers + 1) x TEXT_DIM features
LATENT = 4  # video latent channels
AUDIO_LATENT = 2  # audio latent channels x mel bins / 4 = the transformer's audio input channels
MEL_BINS = 8

_CONFIG = {"in_channels": LATENT, "out_channels": LATENT, "patch_size": 1, "patch_size_t": 1,
           "num_attention_heads": 2, "attention_head_dim": 16, "cross_attention_dim": 32,
           "audio_in_channels": AUDIO_LATENT * MEL_BINS // 4, "audio_out_channels": AUDIO_LATENT * MEL_BINS // 4,
           "audio_num_attention_heads": 2, "audio_attention_head_dim": 8, "audio_cross_attention_dim": 16,
           "num_layers": 5, "caption_channels": TEXT_DIM, "rope_double_precision": False, "rope_type": "split"}
_V23 = {"gated_attn": True, "cross_attn_mod": True, "audio_gated_attn": True, "audio_cross_attn_mod": True,
        "use_prompt_embeddings": False, "perturbed_attn": True}
_CALL = {"height": 32, "width": 32, "num_frames": 9, "num_inference_steps": 2, "guidance_scale": 3.0,
         "frame_rate": 24.0, "max_sequence_length": 16}

#: 8k+1 frames (LTX-2's rule), 32x32 (1 x 4 x 4 latent tokens a frame: the VAE compresses 8x).
_SETTINGS = {"video_length": 9, "resolution": "32x32"}

KINDS = {
    "ltx2": TinyKind("ltx2_19B", "LTX2VideoTransformer3DModel", dict(_CONFIG), dict(_CALL), settings=dict(_SETTINGS)),
    "ltx2_3": TinyKind("ltx2_22B", "LTX2VideoTransformer3DModel", dict(_CONFIG, **_V23), dict(_CALL),
                       settings=dict(_SETTINGS)),
}


def _gemma_tokenizer():
    """Gemma stand-in: pad 0, eos 1, bos 2, unk 3; prepends ``<bos>`` (the pipeline pads on the left)."""
    return word_tokenizer({0: "<pad>", 1: "<eos>", 2: "<bos>", 3: "<unk>"}, bos="<bos>", eos="<eos>", pad="<pad>",
                          unk="<unk>", add_bos=True, add_eos=False, model_max_length=1024)


def components(kind: str) -> dict:
    """Gemma 3, connectors, video VAE, audio VAE, vocoder, Euler scheduler (seeded)."""
    import torch
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
    )
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    v23 = kind == "ltx2_3"
    torch.manual_seed(0)
    text_encoder = Gemma3ForConditionalGeneration(Gemma3Config(
        text_config={"vocab_size": VOCAB, "hidden_size": TEXT_DIM, "intermediate_size": 32,
                     "num_hidden_layers": TEXT_LAYERS, "num_attention_heads": 2, "num_key_value_heads": 1,
                     "head_dim": 8, "max_position_embeddings": 256, "sliding_window": 64, "pad_token_id": 0,
                     "bos_token_id": 2, "eos_token_id": 1},
        vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        mm_tokens_per_image=4, boi_token_index=VOCAB - 3, eoi_token_index=VOCAB - 2, image_token_index=VOCAB - 1))
    torch.manual_seed(0)
    # LTX-2.3's connectors project the Gemma features per modality, to the transformer's widths
    per_modality = {"per_modality_projections": True, "video_hidden_dim": 32, "audio_hidden_dim": 16,
                    "video_gated_attn": True, "audio_gated_attn": True} if v23 else {}
    connectors = LTX2TextConnectors(
        caption_channels=TEXT_DIM, text_proj_in_factor=TEXT_LAYERS + 1, video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=16 if v23 else 8, video_connector_num_layers=1,
        video_connector_num_learnable_registers=None, audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=8, audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=None, connector_rope_base_seq_len=32, rope_theta=10000.0,
        rope_double_precision=False, causal_temporal_positioning=False, rope_type="split", **per_modality)
    torch.manual_seed(0)
    vae = AutoencoderKLLTX2Video(
        in_channels=3, out_channels=3, latent_channels=LATENT, block_out_channels=(8, 8),
        decoder_block_out_channels=(8, 8), layers_per_block=(1, 1), decoder_layers_per_block=(1, 1, 1),
        spatio_temporal_scaling=(True, True), decoder_spatio_temporal_scaling=(True, True),
        decoder_inject_noise=(False, False, False), downsample_type=("spatiotemporal", "spatiotemporal"),
        upsample_residual=(False, False), upsample_factor=(1, 1), timestep_conditioning=False, patch_size=2,
        patch_size_t=1, encoder_causal=True, decoder_causal=False)
    vae.use_framewise_encoding = False
    vae.use_framewise_decoding = False
    torch.manual_seed(0)
    audio_vae = AutoencoderKLLTX2Audio(
        base_channels=4, output_channels=2, ch_mult=(1,), num_res_blocks=1, attn_resolutions=None, in_channels=2,
        resolution=32, latent_channels=AUDIO_LATENT, norm_type="pixel", causality_axis="height", dropout=0.0,
        mid_block_add_attention=False, sample_rate=16000, mel_hop_length=160, is_causal=True, mel_bins=MEL_BINS)
    torch.manual_seed(0)  # 4 x 4 x 10: one mel frame (hop 160 at 16 kHz) -> 160 samples, the real audio length
    vocoder = LTX2Vocoder(
        in_channels=2 * MEL_BINS, hidden_channels=32, out_channels=2, upsample_kernel_sizes=[8, 8, 20],
        upsample_factors=[4, 4, 10], resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]], leaky_relu_negative_slope=0.1,
        output_sampling_rate=16000)
    return {"vae": vae, "audio_vae": audio_vae, "scheduler": FlowMatchEulerDiscreteScheduler(),
            "text_encoder": text_encoder, "tokenizer": _gemma_tokenizer(), "connectors": connectors,
            "vocoder": vocoder}


def to_original_layout(kind: str, state: dict) -> dict:
    return to_original(state)


def to_diffusers_layout(kind: str, original: dict) -> dict:
    """diffusers' ``convert_ltx2_transformer_to_diffusers`` plus LTX-2.3's ``prompt_adaln_single`` renames (its
    conversion script's; the single-file converter lacks them)."""
    from wangp_cli.families.ltx2.convert import _diffusers_names

    return _diffusers_names(dict(original))


def wangp_config(kind: str, model) -> dict:
    """Lightricks' config as WanGP's files embed it (``{"transformer": {...}}``: head counts, RoPE type and
    precision, the cross-attention timestep multiplier)."""
    c = model.config
    return {"transformer": {
        "_class_name": "AVTransformer3DModel", "num_attention_heads": c.num_attention_heads,
        "attention_head_dim": c.attention_head_dim, "audio_num_attention_heads": c.audio_num_attention_heads,
        "audio_attention_head_dim": c.audio_attention_head_dim, "num_layers": c.num_layers,
        "rope_type": c.rope_type, "frequencies_precision": "float64" if c.rope_double_precision else "float32",
        "av_ca_timestep_scale_multiplier": c.cross_attn_timestep_scale_multiplier,
        "timestep_scale_multiplier": c.timestep_scale_multiplier, "positional_embedding_theta": c.rope_theta,
        "positional_embedding_max_pos": [c.pos_embed_max_pos, c.base_height, c.base_width],
        "audio_positional_embedding_max_pos": [c.audio_pos_embed_max_pos], "norm_eps": c.norm_eps,
        "apply_gated_attention": c.gated_attn, "cross_attention_adaln": c.cross_attn_mod}}
