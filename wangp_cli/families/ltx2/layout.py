"""LTX-2 key names: diffusers' names -> the original Lightricks layout of WanGP's files (``patchify_proj``,
``adaln_single``, ``av_ca_*``, ``q_norm``; WanGP's ``ltx_core/model/transformer`` modules), and the LTX-2.3 renames
that diffusers' single-file converter lacks (its conversion script has them)."""

from __future__ import annotations

#: The checkpoint prefixes WanGP's loader strips (``LTXV_MODEL_COMFY_RENAMING_MAP``).
PREFIXES = ("model.diffusion_model.", "diffusion_model.")
#: LTX-2.3 / 2.5 prompt modulation: original -> diffusers (``LTX_2_3_TRANSFORMER_KEYS_RENAME_DICT`` of diffusers'
#: ``scripts/convert_ltx2_to_diffusers.py``; ``convert_ltx2_transformer_to_diffusers`` leaves them as they are).
PROMPT_ADALN = (("audio_prompt_adaln_single.", "audio_prompt_adaln."), ("prompt_adaln_single.", "prompt_adaln."))
#: Top-level modules, diffusers -> original (longest first: ``audio_time_embed`` before ``time_embed``).
TOP = (
    ("audio_proj_in.", "audio_patchify_proj."),
    ("proj_in.", "patchify_proj."),
    ("audio_time_embed.", "audio_adaln_single."),
    ("time_embed.", "adaln_single."),
    ("audio_prompt_adaln.", "audio_prompt_adaln_single."),
    ("prompt_adaln.", "prompt_adaln_single."),
    ("av_cross_attn_video_scale_shift.", "av_ca_video_scale_shift_adaln_single."),
    ("av_cross_attn_audio_scale_shift.", "av_ca_audio_scale_shift_adaln_single."),
    ("av_cross_attn_video_a2v_gate.", "av_ca_a2v_gate_adaln_single."),
    ("av_cross_attn_audio_v2a_gate.", "av_ca_v2a_gate_adaln_single."),
)
#: Inside ``transformer_blocks.N.``, diffusers -> original.
BLOCK = (
    ("video_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_video"),
    ("audio_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_audio"),
    (".norm_q.", ".q_norm."),
    (".norm_k.", ".k_norm."),
)


def to_original(state: dict) -> dict:
    """A diffusers state dict under the original names (no prefix, as WanGP's own files are saved)."""
    out = {}
    for key, tensor in state.items():
        name = key
        if key.startswith("transformer_blocks."):
            for new, old in BLOCK:
                name = name.replace(new, old)
        else:
            for new, old in TOP:
                if key.startswith(new):
                    name = old + key[len(new):]
                    break
        out[name] = tensor
    return out
