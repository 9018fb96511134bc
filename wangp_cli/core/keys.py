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


# -- WanGP 12.60 (target v12): wangp-head-format.md §2.1 and §4 ------------------------------------------------------

ANY: dict = {}  # a key whose value WanGP's handlers read in several shapes: no type check
OBJECT = {"type": "object"}
NONEMPTY = {"type": "string", "minLength": 1}
#: A list of variants, or (a string) the id of a model whose list to reuse.
VARIANTS_OR_REF = {"type": ["array", "string"], "items": NONEMPTY, "minLength": 1, "minItems": 1}
#: ``modules``: the id of a model whose modules to reuse, or a list of modules, each a list of variants, a definition
#: id (that definition's one module) or ``{"URLs": [...], "URLs2": [...]}`` (per-submodel weights).
MODULE_OBJECT_KEYS = ("URLs", "URLs2")
MODULES_V12 = {"type": ["array", "string"], "minLength": 1, "items": {
    "type": ["array", "string", "object"], "minLength": 1, "minItems": 1, "items": NONEMPTY,
    "additionalProperties": {"type": "array", "items": NONEMPTY}}}
#: ``[label, "WxH"]`` pairs.
RESOLUTION_CHOICES = {"type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": STRING}}
DTYPE = {"type": "string", "pattern": "^(bf16|fp16)$"}


def _keys(since: str, schema: dict, names: str, description: str = "") -> dict[str, Key]:
    return {name: Key(schema, since, description) for name in names.split()}


def _v12_model_keys() -> dict[str, Key]:
    keys = dict(MODEL_KEYS)
    keys.update({
        "URLs": Key(VARIANTS_OR_REF, "v6", "Variants of the main transformer, or the id of a model to reuse"),
        "URLs2": Key(VARIANTS_OR_REF, "v12", "Variants of the second transformer (Wan 2.2 low noise, Ovi audio, ...), "
                                             "or the id of a model whose URLs2 to reuse"),
        "modules": Key(MODULES_V12, "v6", "Modules merged on top of the weights: lists of variants, definition ids "
                                          "or {URLs, URLs2} objects; or the id of a model whose modules to reuse"),
        "loras": Key(VARIANTS_OR_REF, "july", "LoRAs always applied (downloaded to the family's LoRA folder)"),
        "loras_multipliers": Key({"type": ["array", "string"], "minLength": 1, "items": {"type": ["number", "string"]}},
                                 "july", "One multiplier per 'loras' entry: a number or a phase/step string "
                                         "(\"1;0\", \"1,0.5\"); or the id of a model to reuse"),
        "text_encoder_URLs": Key(VARIANTS_OR_REF, "v12", "Text-encoder variants (or the id of a model to reuse)"),
        "text_encoder_folder": Key(NONEMPTY, "v12", "Folder of the text encoder and tokenizer under ckpts/"),
        "VAE_URLs": Key({"type": ["array", "string"], "items": NONEMPTY, "minLength": 1}, "v12",
                        "VAE override (Wan, LTX-2): a list or one URL, never a reference"),
        "configs": Key({"type": ["object", "string"], "minLength": 1, "additionalProperties": {
            "type": ["object", "string"]}}, "v12", "Selectable load configurations (or the id of a model to reuse)"),
        "resolutions": Key(RESOLUTION_CHOICES, "v12", "Resolution choices, [label, \"WxH\"] pairs"),
        "resolutions_categories": Key(STRINGS, "v12", "Resolution category conditions (720p, >=720&<=1440, 2k)"),
        "dtype": Key(DTYPE, "v12", "Forces the transformer dtype"),
        "profiles_dir": Key({"type": ["array", "string"], "items": STRING, "minLength": 1}, "v12",
                            "Folders of built-in accelerator profiles under profiles/"),
        "attention": Key(OBJECT, "v12", "GPU condition -> attention mode ({\"<89\": \"sdpa\"})"),
        "compile": Key({"type": ["array", "string", "boolean"], "items": STRING}, "v12", "Modules to torch.compile"),
        "frames_minimum": Key(INTEGER, "v12", "Smallest frame count"),
        "frames_steps": Key(INTEGER, "v12", "Frame count step"),
        "fps": Key(NUMBER, "v12", "Frames per second of the output"),
        "k5_config_overrides": Key(OBJECT, "v12", "Kandinsky 5 transformer config overrides"),
        "attention_modes": Key(ANY, "v12"),
    })
    keys.update(_keys("v12", STRING, "source source2 module_source module_source2",
                      "Local checkpoint in another layout, converted to the 16-bit name of URLs/URLs2/modules"))
    keys.update(_keys("v12", STRING, "group", "UI family group (wan2_2, hunyuan_1_5, ...)"))
    keys.update(_keys("v12", STRING, "infos prompt_infos", "Help text (Markdown)"))
    keys.update(_keys("v12", STRING, "finetune_source_model", "Source id for the Finetune Editor"))
    keys.update(_keys("v12", STRING, "text_prompt_enhancer_instructions video_prompt_enhancer_instructions "
                                     "image_prompt_enhancer_instructions", "Prompt-enhancer instructions"))
    keys.update(_keys("v12", INTEGER, "text_prompt_enhancer_max_tokens video_prompt_enhancer_max_tokens "
                                      "image_prompt_enhancer_max_tokens", "Prompt-enhancer token limit"))
    # family-specific keys
    keys.update(_keys("v12", STRING, "ltx2_pipeline ltx2_lora_distilled ace_step15_transformer_variant "
                                     "stable_audio3_model_id heartmula_codec_version animate2_ref_prompt upsampler "
                                     "sample_solver", "Family-specific"))
    keys.update(_keys("v12", BOOLEAN, "ltx2_msr one_speaker_only multi_speakers_only reference_image_enabled "
                                      "lock_guidance_phases", "Family-specific"))
    keys.update(_keys("v12", INTEGER, "ltx2_msr_frame_count ref_img_index mask_frame_range guidance_max_phases "
                                      "vae_block_size", "Family-specific"))
    keys.update(_keys("v12", NUMBER, "animate2_log_scale", "Family-specific"))
    keys.update(_keys("v12", ANY, "unified_solver flux-model reference_image capabilities mask_strength_always_enabled"
                                  " image_ref_choices guide_custom_choices guide_preprocessing"))
    # handler flags (query_model_def), overridable from a definition
    keys.update(_keys("v12", BOOLEAN, "i2v_class t2v_class vace_class multitalk_class sliding_window "
                                      "multiple_submodels tea_cache mag_cache audio_only returns_audio "
                                      "no_negative_prompt perturbation NAG riflex cfg_zero cfg_star "
                                      "adaptive_projected_guidance embedded_guidance audio_guidance no_lora "
                                      "any_audio_prompt self_refiner sub_parallel_windows",
                      "Handler flag (WanGP sets it; a definition may override it)"))
    keys.update(_keys("v12", {"type": "array"}, "sample_solvers", "Handler choices of sample_solver"))
    keys.update(_keys("v12", {"type": ["object", "array"]}, "model_modes", "Handler choices of model_mode"))
    keys.update(_keys("v12", STRING, "image_prompt_types_allowed parent_model_type", "Handler key"))
    keys.update(_keys("v12", STRINGS, "lora_multiplier_branches", "Names of the 'a:b' multiplier branches"))
    return keys


MODEL_KEYS_V12: dict[str, Key] = _v12_model_keys()

#: Model keys WanGP 12 no longer reads: the message says what to do.
DEAD_MODEL_KEYS = {
    "settings_dir": "'settings_dir' was renamed 'profiles_dir' in 2025-10: WanGP 12 no longer reads it",
    "profile_dirs": "'profile_dirs' is not read by WanGP 12 (did you mean 'profiles_dir'?)",
    "xresolutions": "'xresolutions' is a disabled key: WanGP 12 does not read it (use 'resolutions')",
}

#: Settings in WanGP's own files that WanGP 12 does not read (it tolerates them): what was meant.
TOLERATED_SETTINGS = {
    "sampler_solver": "sample_solver",
    "sampling_steps": "num_inference_steps",
    "scheduler_type": "sample_solver",
    "shift": "flow_shift",
    "fps": "force_fps",
}


def tolerated_setting(name: str) -> str | None:
    """The message for a misspelt setting WanGP's own defaults carry (WanGP ignores it), or None."""
    meant = TOLERATED_SETTINGS.get(name)
    return None if meant is None else f"'{name}' is not a WanGP setting (ignored): '{meant}' was meant"


@dataclass(frozen=True)
class Legacy:
    """A setting WanGP 12 migrates: its new name, and the settings_version below which it is migrated (None: at
    any version)."""

    new: str
    below: float | None = None

    def message(self, name: str) -> str:
        when = "in every file" if self.below is None else f"in files whose settings_version is below {self.below}"
        return f"'{name}' is a legacy key: WanGP 12 migrates it to '{self.new}' {when}"


LEGACY_SETTINGS = {
    "slg_switch": Legacy("perturbation_switch", 2.54),
    "slg_layers": Legacy("perturbation_layers", 2.54),
    "slg_start_perc": Legacy("perturbation_start_perc", 2.54),
    "slg_end_perc": Legacy("perturbation_end_perc", 2.54),
    "tea_cache_setting": Legacy("skip_steps_multiplier"),
    "tea_cache_start_step_perc": Legacy("skip_steps_start_step_perc"),
    "prompts": Legacy("prompt"),
}

#: WanGP 12's ATTACHMENT_KEYS: media inputs, paths in a settings file (``--process`` reads them).
MEDIA_KEYS_V12 = ("image_start", "image_end", "image_refs", "image_guide", "image_mask", "video_guide", "video_guide2",
                  "video_mask", "video_source", "audio_guide", "audio_guide2", "audio_source", "replace_voice_sample",
                  "replace_voice_sample2", "custom_guide")
MEDIA = {"type": ["string", "array", "null"], "items": STRING}
#: ``multi_prompts_gen_type``: legacy 0/1/2 or a mode letter code.
PROMPTS_MODES = ("G", "PG", "W", "PW", "FG")
SECONDS = r"^[0-9]+(\.[0-9]+)?s$"
_PROMPTS_MODE = {"type": ["integer", "string"], "pattern": "^(" + "|".join(PROMPTS_MODES) + ")$"}


def _v12_settings_keys() -> dict[str, Key]:
    keys = dict(SETTINGS_KEYS)
    keys.update({
        "video_length": Key({"type": ["integer", "string"], "pattern": SECONDS}, "v6",
                            "Number of frames, or seconds (\"10s\", \"5.5s\") converted with the model's fps"),
        "model_mode": Key({"type": ["integer", "string", "null"]}, "v6", "One of the model's model_modes choices"),
        "multi_prompts_gen_type": Key(_PROMPTS_MODE, "v6", "G (line = video), PG (paragraph = video), W / PW "
                                                           "(line / paragraph = sliding window), FG (one prompt); "
                                                           "legacy 0/1/2"),
        "image_prompt_type": Key({"type": ["string", "integer"]}, "v6", "Letters of image_prompt_types_allowed"),
        "force_fps": Key({"type": ["string", "number"]}, "v12", "\"\", \"auto\", \"control\", \"source\" or a number"),
        "custom_settings": Key(OBJECT, "v12", "Values of the model's custom settings"),
        "config": Key(STRING, "v12", "Selected load configuration (\",,,<id>\")"),
        "self_refiner_plan": Key({"type": ["string", "array"]}, "v12", "Self-refiner plan (a list before 2.52)"),
        "override_profile": Key({"type": ["integer", "string"]}, "v12", "Memory profile, -1 = the server's"),
        "perturbation_layers": Key({"type": "array", "items": INTEGER}, "v12", "Layers of perturbation guidance"),
        "guidance_phases": Key(INTEGER, "v12", "Guidance phases (1-3; 0 when the model has none)"),
        "model_switch_phase": Key(INTEGER, "v12", "1: switch models at the phase 1-2 transition, 2: at 2-3"),
        "switch_threshold": Key(INTEGER, "v12", "Timestep of the phase 1-2 switch"),
        "switch_threshold2": Key(INTEGER, "v12", "Timestep of the phase 2-3 switch"),
        "activated_loras": Key(STRINGS, "v6", "LoRA paths relative to the LoRA folder, or URLs"),
    })
    keys.update(_keys("v12", STRING, "client_id alt_prompt video_guide_outpainting_ratio audio_prompt_type "
                                     "speakers_locations postprocess_audio postprocess_audio_prompt "
                                     "postprocess_audio_neg_prompt override_attention output_filename "
                                     "replace_voice_method"))
    keys.update(_keys("v12", INTEGER, "image_mode image_refs_relative_size batch_size top_k perturbation_switch "
                                      "apg_switch self_refiner_setting min_frames_if_references sub_parallel_window_size "
                                      "sub_parallel_window_overlap sliding_window_trim_first_frames "
                                      "keep_intermediate_sliding_windows"))
    keys.update(_keys("v12", NUMBER, "denoising_strength input_video_strength masking_strength duration_seconds "
                                     "pause_seconds guidance2_scale guidance3_scale audio_scale alt_guidance_scale "
                                     "alt_scale temperature top_p control_net_weight control_net_weight2 "
                                     "control_net_weight_alt NAG_scale NAG_tau NAG_alpha film_grain_intensity "
                                     "film_grain_saturation perturbation_start_perc perturbation_end_perc "
                                     "self_refiner_f_uncertainty self_refiner_certain_percentage motion_amplitude "
                                     "sliding_window_color_correction_strength attention_sparsity"))
    keys.update(_keys("v12", MEDIA, " ".join(MEDIA_KEYS_V12), "Media input: a path (absolute or relative to WanGP's "
                                                              "folder), or a list of paths"))
    # written into outputs (WanGP's metadata) and read back with them
    keys.update(_keys("v12", ANY, "modules transformer_loras_filenames transformer_loras_multipliers window_no hdr "
                                  "hdr_video_crf video_quality image_quality generation_time creation_timestamp "
                                  "creation_date", "Metadata of an output (informational)"))
    for name in ("slg_switch", "slg_layers", "slg_start_perc", "slg_end_perc", "tea_cache_setting",
                 "tea_cache_start_step_perc", "prompts"):
        legacy = LEGACY_SETTINGS[name]
        keys[name] = Key(SETTINGS_KEYS[name].schema, SETTINGS_KEYS[name].since, legacy.message(name))
    for name in ("lset_name", "adaptive_switch", "tea_cache"):
        keys.pop(name)  # not WanGP 12 settings (lset_name is dropped on load)
    return keys


SETTINGS_KEYS_V12: dict[str, Key] = _v12_settings_keys()

#: Keys of later WanGP versions than July: passed through untouched, never validated (targets v6, july). The v12
#: tables, plus keys of WanGP 8-11 that WanGP 12 no longer reads.
LATER_MODEL_KEYS = frozenset({*MODEL_KEYS_V12, *DEAD_MODEL_KEYS} - set(MODEL_KEYS)) | frozenset(("profile_dirs",))
LATER_SETTINGS_KEYS = frozenset({*SETTINGS_KEYS_V12} - set(SETTINGS_KEYS) - set(MEDIA_KEYS)) | frozenset((
    "video_prompt_enhancer", "mask_strength", "MMAudio_setting", "MMAudio_prompt", "MMAudio_neg_prompt", "pace",
    "exaggeration"))


def model_keys(target: str) -> dict[str, Key]:
    """Every model key of ``target`` (v6 and july share one table; ``Key.since`` tells July-only keys)."""
    return MODEL_KEYS_V12 if target == "v12" else MODEL_KEYS


def settings_keys(target: str) -> dict[str, Key]:
    return SETTINGS_KEYS_V12 if target == "v12" else SETTINGS_KEYS


def model_key(name: str, target: str) -> Key | None:
    return model_keys(target).get(name)


def settings_key(name: str, target: str) -> Key | None:
    return settings_keys(target).get(name)


def dead_key(name: str) -> str | None:
    """Why WanGP 12 ignores a model key it once read (or that was never read), or None."""
    return DEAD_MODEL_KEYS.get(name)


def media_keys(target: str) -> tuple[str, ...]:
    return MEDIA_KEYS_V12 if target == "v12" else MEDIA_KEYS


#: UI ranges of WanGP 12.60 (``shared/extra_settings.py`` and wgp.py's sliders; warnings only). Guidance may be 0
#: (off): distilled and turbo models ship with it.
RANGES_V12 = {
    "num_inference_steps": (1, 100),
    "guidance_scale": (0.0, 20.0),
    "guidance2_scale": (0.0, 20.0),
    "guidance3_scale": (0.0, 20.0),
    "embedded_guidance_scale": (1.0, 20.0),
    "audio_guidance_scale": (1.0, 20.0),
    "alt_guidance_scale": (1.0, 20.0),
    "alt_scale": (0.0, 1.0),
    "audio_scale": (0.0, 1.0),
    "flow_shift": (1.0, 25.0),
    "repeat_generation": (1, 25),
    "seed": (-1, 999999999),
    "guidance_phases": (0, 3),
    "model_switch_phase": (1, 2),
    "switch_threshold": (0, 1000),
    "switch_threshold2": (0, 1000),
    "perturbation_start_perc": (0, 100),
    "perturbation_end_perc": (0, 100),
    "slg_start_perc": (0, 100),
    "slg_end_perc": (0, 100),
    "skip_steps_start_step_perc": (0, 100),
    "tea_cache_start_step_perc": (0, 100),
    "mask_expand": (-10, 50),
    "RIFLEx_setting": (0, 2),
    "cfg_zero_step": (-1, 39),
    "denoising_strength": (0.0, 1.0),
    "masking_strength": (0.0, 1.0),
    "input_video_strength": (0.0, 1.0),
    "control_net_weight": (0.0, 2.0),
    "control_net_weight2": (0.0, 2.0),
    "control_net_weight_alt": (0.0, 2.0),
    "motion_amplitude": (1.0, 1.4),
    "NAG_scale": (1.0, 20.0),
    "NAG_tau": (1.0, 5.0),
    "NAG_alpha": (0.0, 2.0),
    "temperature": (0.1, 1.5),
    "top_p": (0.0, 1.0),
    "top_k": (0, 100),
    "pause_seconds": (0.0, 2.0),
    "multi_prompts_gen_type": (0, 2),  # the legacy integers
}


def ranges(target: str, model: dict | None = None) -> dict[str, tuple]:
    """The UI ranges of ``target``; for v12, ``model`` (the handler keys updated with the model subtree) widens
    them: audio models take 0 steps (WanGP's slider starts at 0 for them)."""
    if target != "v12":
        return RANGES
    if model and model.get("audio_only"):
        return {**RANGES_V12, "num_inference_steps": (0, 100)}
    return RANGES_V12


def range_problem(name: str, value, target: str, model: dict | None = None) -> str | None:
    """``'x' is 30, outside WanGP's range 1..20`` for a number out of its UI range; None otherwise (and for values
    that are not numbers: their type is checked elsewhere)."""
    bounds = ranges(target, model).get(name)
    if bounds is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    low, high = bounds
    if low <= value <= high:
        return None
    return f"'{name}' is {value}, outside WanGP's range {low}..{high}"
