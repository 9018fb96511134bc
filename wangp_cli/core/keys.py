"""The keys of a definition: JSON types (as JSON Schema fragments), the target that introduced them, UI ranges.

This table is the single source of the types: the validator checks values against these fragments and
:mod:`wangp_cli.core.schema` builds the published JSON Schema from them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Key:
    schema: dict
    since: str = "v6"
    description: str = ""


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NUMBER = {"type": "number"}
BOOLEAN = {"type": "boolean"}
STRINGS = {"type": "array", "items": {"type": "string"}}
NUMBERS = {"type": "array", "items": {"type": "number"}}
URL_LIST = {"type": "array", "items": {"type": "string", "minLength": 1}}
URL_LIST_OR_REF = {"type": ["array", "string"], "items": {"type": "string", "minLength": 1}, "minLength": 1}

MODEL_KEYS: dict[str, Key] = {
    "name": Key(STRING, description="Display name in the model list"),
    "architecture": Key(STRING, description="Base architecture id (t2v, i2v, i2v_720p, vace_14B, hunyuan, ...)"),
    "description": Key(STRING, description="Text shown above the generator"),
    "URLs": Key({**URL_LIST_OR_REF, "minItems": 1},
                description="Checkpoint variants (http(s) URLs or local paths), or the id of a model to reuse"),
    "modules": Key({"type": ["array", "string"], "items": {"type": "string"}},
                   description="Module ids merged on top of the weights (vace_14B; July: fantasy, multitalk)"),
    "preload_URLs": Key(URL_LIST_OR_REF, description="Extra files always fetched to ckpts/"),
    "auto_quantize": Key(BOOLEAN, description="Quantize a 16-bit file in memory when int8 is wanted"),
    "author": Key(STRING, description="Informational"),
    "base": Key(STRING, description="Legacy name of 'architecture' (ignored by WanGP)"),
    "visible": Key(BOOLEAN, "july", "false hides the model from the list"),
    "teacache_coefficients": Key({**NUMBERS, "minItems": 5, "maxItems": 5}, "july",
                                 "Polynomial overriding the architecture's TeaCache coefficients"),
    "loras": Key(URL_LIST_OR_REF, "july", "LoRAs always applied"),
    "loras_multipliers": Key(NUMBERS, "july", "One multiplier per 'loras' entry"),
    "image_outputs": Key(BOOLEAN, "july", "Image generation UI"),
    "lock_inference_steps": Key(BOOLEAN, "july", "Hides the steps control"),
    "LTXV_config": Key(STRING, "july", "LTX pipeline yaml"),
    "sha256": Key({"type": "object", "additionalProperties": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}},
                  "v6", "wangp extension: expected SHA-256 of downloaded files, keyed by URL (WanGP ignores it)"),
}

RESOLUTION = {"type": "string", "pattern": "^[0-9]+x[0-9]+$"}

SETTINGS_KEYS: dict[str, Key] = {
    "prompt": Key(STRING, description="One prompt per line"),
    "prompts": Key(STRING, description="Legacy alias of prompt"),
    "negative_prompt": Key(STRING),
    "resolution": Key(RESOLUTION, description="WIDTHxHEIGHT"),
    "video_length": Key(INTEGER, description="Number of frames"),
    "seed": Key(INTEGER, description="-1 for random"),
    "num_inference_steps": Key(INTEGER),
    "guidance_scale": Key(NUMBER),
    "embedded_guidance_scale": Key(NUMBER, description="Hunyuan only"),
    "audio_guidance_scale": Key(NUMBER),
    "flow_shift": Key(NUMBER),
    "repeat_generation": Key(INTEGER),
    "multi_images_gen_type": Key(INTEGER),
    "multi_prompts_gen_type": Key(INTEGER),
    "tea_cache": Key(NUMBER, description="Legacy TeaCache setting"),
    "tea_cache_setting": Key(NUMBER, description="TeaCache speed multiplier, 0 = off"),
    "tea_cache_start_step_perc": Key(NUMBER),
    "skip_steps_multiplier": Key(NUMBER, "july"),
    "skip_steps_cache_type": Key(STRING, "july"),
    "skip_steps_start_step_perc": Key(NUMBER, "july"),
    "loras_multipliers": Key(STRING, description="Space or newline separated multipliers of activated_loras"),
    "activated_loras": Key(STRINGS),
    "temporal_upsampling": Key(STRING),
    "spatial_upsampling": Key(STRING),
    "RIFLEx_setting": Key(INTEGER),
    "slg_switch": Key(INTEGER),
    "slg_layers": Key({"type": "array", "items": {"type": "integer"}}),
    "slg_start_perc": Key(NUMBER),
    "slg_end_perc": Key(NUMBER),
    "cfg_star_switch": Key(INTEGER),
    "cfg_zero_step": Key(INTEGER),
    "prompt_enhancer": Key(STRING),
    "image_prompt_type": Key({"type": ["string", "integer"]}),
    "video_prompt_type": Key(STRING),
    "model_mode": Key(INTEGER),
    "keep_frames_video_guide": Key(STRING),
    "keep_frames_video_source": Key(STRING),
    "frames_positions": Key(STRING),
    "video_guide_outpainting": Key(STRING),
    "mask_expand": Key(INTEGER),
    "sliding_window_size": Key(INTEGER),
    "sliding_window_overlap": Key(INTEGER),
    "sliding_window_overlap_noise": Key(NUMBER),
    "sliding_window_discard_last_frames": Key(INTEGER),
    "remove_background_images_ref": Key(INTEGER),
    "lset_name": Key(STRING),
    "sample_solver": Key(STRING, "july"),
    "adaptive_switch": Key(INTEGER, "july"),
    # metadata of exported settings files
    "type": Key(STRING, description="Informational: written by WanGP's export"),
    "settings_version": Key(NUMBER),
    "model_type": Key(STRING),
    "model_filename": Key(STRING),
    "base_model_type": Key(STRING, "july"),
    "$schema": Key(STRING, description="JSON Schema of this file, for editors (ignored by WanGP)"),
}

#: Media inputs: never stored in settings files.
MEDIA_KEYS = ("image_start", "image_end", "image_refs", "video_guide", "video_source", "video_mask", "audio_guide")

#: Keys of later WanGP versions: passed through untouched, never validated.
LATER_MODEL_KEYS = frozenset((
    "URLs2", "group", "flux-model", "reference_image", "resolutions", "resolutions_categories", "attention",
    "lock_guidance_phases", "one_speaker_only", "multi_speakers_only", "settings_dir", "profiles_dir", "source",
    "source2", "frames_minimum", "frames_steps", "upsampler", "no_negative_prompt", "k5_config_overrides",
    "reference_image_enabled", "ref_img_index", "mask_frame_range", "unified_solver", "text_encoder_folder",
    "text_encoder_URLs", "VAE_URLs", "configs", "finetune_source_model", "infos", "prompt_infos", "compile",
    "capabilities", "dtype",
    # WanGP 12.60 family-specific keys (wangp-head-format.md §2.1)
    "ltx2_pipeline", "ltx2_lora_distilled", "ltx2_msr", "ltx2_msr_frame_count", "ace_step15_transformer_variant",
    "stable_audio3_model_id", "heartmula_codec_version", "animate2_log_scale", "animate2_ref_prompt",
    "guidance_max_phases", "module_source", "module_source2", "fps", "text_prompt_enhancer_instructions",
    "video_prompt_enhancer_instructions", "image_prompt_enhancer_instructions", "text_prompt_enhancer_max_tokens",
    "video_prompt_enhancer_max_tokens", "image_prompt_enhancer_max_tokens",
))
LATER_SETTINGS_KEYS = frozenset((
    "batch_size", "guidance2_scale", "guidance3_scale", "switch_threshold", "switch_threshold2", "guidance_phases",
    "model_switch_phase", "NAG_scale", "NAG_tau", "NAG_alpha", "video_prompt_enhancer", "image_mode",
    "control_net_weight", "control_net_weight2", "mask_strength", "denoising_strength", "audio_prompt_type",
    "speakers_locations", "MMAudio_setting", "MMAudio_prompt", "MMAudio_neg_prompt", "force_fps",
    "min_frames_if_references",
    "override_profile", "pace", "exaggeration", "temperature", "output_filename", "motion_amplitude",
    # WanGP 12.60's models/_settings.json
    "alt_guidance_scale", "alt_prompt", "alt_scale", "apg_switch", "attention_sparsity", "audio_guide2",
    "audio_scale", "audio_source", "client_id", "config", "control_net_weight_alt", "custom_guide",
    "custom_settings", "duration_seconds", "film_grain_intensity", "film_grain_saturation", "image_guide",
    "image_mask", "image_refs_relative_size", "input_video_strength", "keep_intermediate_sliding_windows",
    "masking_strength", "override_attention", "pause_seconds", "perturbation_end_perc", "perturbation_layers",
    "perturbation_start_perc", "perturbation_switch", "postprocess_audio", "postprocess_audio_neg_prompt",
    "postprocess_audio_prompt", "replace_voice_method", "replace_voice_sample", "replace_voice_sample2",
    "self_refiner_certain_percentage", "self_refiner_f_uncertainty", "self_refiner_plan", "self_refiner_setting",
    "sliding_window_color_correction_strength", "sliding_window_trim_first_frames", "sub_parallel_window_overlap",
    "sub_parallel_window_size", "top_k", "top_p", "video_guide2", "video_guide_outpainting_ratio",
))

_SECONDS = re.compile(r"^[0-9]+(\.[0-9]+)?s$")

#: Values of known keys in a form WanGP 8+ accepts and the July format does not (``modules`` items that are URL
#: lists, ``loras_multipliers`` phase strings, ``model_mode`` strings, ...): findings on them say so.
LATER_MODEL_FORMS = {
    "modules": lambda v: isinstance(v, list) and any(isinstance(item, (list, dict)) for item in v),
    "loras_multipliers": lambda v: isinstance(v, str) or (isinstance(v, list)
                                                          and any(isinstance(item, str) for item in v)),
}
LATER_SETTINGS_FORMS = {
    "model_mode": lambda v: v is None or isinstance(v, str),
    "multi_prompts_gen_type": lambda v: v in ("G", "PG", "W", "PW", "FG"),
    "video_length": lambda v: isinstance(v, str) and _SECONDS.match(v) is not None,
}


def later_format_hint(target: str) -> str:
    return f"WanGP 8+ format, not covered by --target {target}"

#: UI ranges of WanGP 6.x (warnings only).
RANGES = {
    "num_inference_steps": (1, 100),
    "guidance_scale": (1.0, 20.0),
    "embedded_guidance_scale": (1.0, 20.0),
    "audio_guidance_scale": (1.0, 20.0),
    "flow_shift": (0.0, 25.0),
    "repeat_generation": (1, 25),
    "seed": (-1, 999999999),
    "slg_start_perc": (0, 100),
    "slg_end_perc": (0, 100),
    "tea_cache_start_step_perc": (0, 100),
    "skip_steps_start_step_perc": (0, 100),
    "mask_expand": (-10, 50),
    "RIFLEx_setting": (0, 2),
    "cfg_zero_step": (-1, 39),
}
TEA_CACHE_VALUES = (0, 1.5, 1.75, 2.0, 2.25, 2.5)

UI_RESOLUTIONS = (
    "1920x832", "832x1920", "1280x720", "720x1280", "1024x1024", "1280x544", "544x1280", "1104x832", "832x1104",
    "960x960", "960x544", "544x960", "832x480", "480x832", "832x624", "624x832", "720x720", "512x512",
)
