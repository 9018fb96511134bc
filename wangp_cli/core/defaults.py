"""WanGP's default generation settings per base model (``get_default_settings`` in ``wgp.py``).

v6 = 95727e61 (WanGP 6.21), july = 4908c3c2 (tea cache renamed to "skip steps", multitalk added); v12 = WanGP 12.60
(8681e9f7: ``get_factory_settings``, the baseline ``models/_settings.json``).
"""

from __future__ import annotations

import json

I2V_PROMPT = (
    "Several giant wooly mammoths approach treading through a snowy meadow, their long wooly fur lightly blows in "
    "the wind as they walk, snow covered trees and dramatic snow capped mountains in the distance, mid afternoon "
    "light with wispy clouds and a sun high in the distance creates a warm glow, the low camera view is stunning "
    "capturing the large furry mammal with beautiful photography, depth of field."
)
T2V_PROMPT = (
    "A large orange octopus is seen resting on the bottom of the ocean floor, blending in with the sandy and rocky "
    "terrain. Its tentacles are spread out around its body, and its eyes are closed. The octopus is unaware of a "
    "king crab that is crawling towards it from behind a rock, its claws raised and ready to attack. The crab is "
    "brown and spiny, with long legs and antennae. The scene is captured from a wide angle, showing the vastness "
    "and depth of the ocean. The water is clear and blue, with rays of sunlight filtering through. The shot is "
    "sharp and crisp, with a high dynamic range. The octopus and the crab are in focus, while the background is "
    "slightly blurred, creating a depth of field effect."
)

_SKY_DF = ("sky_df_1.3B", "sky_df_14B", "sky_df_720p_14B")

_OVERRIDES = {
    "hunyuan": {"guidance_scale": 7.0},
    "hunyuan_i2v": {"guidance_scale": 7.0},
    "phantom_1.3B": {"guidance_scale": 7.5, "flow_shift": 5, "remove_background_images_ref": 0,
                     "video_prompt_type": "I"},
    "phantom_14B": {"guidance_scale": 7.5, "flow_shift": 5, "remove_background_images_ref": 0,
                    "video_prompt_type": "I"},
    "hunyuan_custom": {"guidance_scale": 7.5, "flow_shift": 13, "resolution": "1280x720", "video_prompt_type": "I"},
    "hunyuan_custom_audio": {"guidance_scale": 7.5, "flow_shift": 13, "video_prompt_type": "I"},
    "hunyuan_custom_edit": {"guidance_scale": 7.5, "flow_shift": 13, "video_prompt_type": "MVAI",
                            "sliding_window_size": 129},
    "hunyuan_avatar": {"guidance_scale": 7.5, "flow_shift": 5, "video_length": 129, "video_prompt_type": "I"},
    "vace_14B": {"sliding_window_discard_last_frames": 0},
    "vace_multitalk_14B": {"sliding_window_discard_last_frames": 0},
    "multitalk": {"guidance_scale": 5.0, "flow_shift": 7, "audio_guidance_scale": 4,
                  "sliding_window_discard_last_frames": 4, "sample_solver": "euler", "adaptive_switch": 1},
    # wgp.py gives video_prompt_type; the rest comes from WanGP 7.0's defaults/flux_dev_kontext.json (an image model)
    "flux_dev_kontext": {"video_prompt_type": "I", "prompt": "add a hat", "resolution": "1280x720", "video_length": 1},
}


#: WanGP 12.60's baseline settings (``models/_settings.json``, media inputs left out: they are null there), in its
#: order. ``multi_prompts_gen_type`` is the server default ("PG") WanGP writes into it.
BASELINE_V12 = {
    "client_id": "", "prompt": "", "alt_prompt": "", "image_mode": 0, "image_prompt_type": "", "model_mode": None,
    "keep_frames_video_source": "", "video_prompt_type": "", "denoising_strength": 1.0, "input_video_strength": 1.0,
    "keep_frames_video_guide": "", "video_guide_outpainting": "#", "video_guide_outpainting_ratio": "",
    "masking_strength": 1, "mask_expand": 0, "frames_positions": "", "image_refs_relative_size": 50,
    "remove_background_images_ref": 1, "audio_prompt_type": "", "speakers_locations": "0:45 55:100",
    "prompt_enhancer": "",
    "custom_settings": {"scail2_inject_ref_frames_in_video": "No", "animate2_kv_cache": "Disabled",
                        "speech_speed": 1.0, "text_normalization": "Yes"},
    "resolution": "832x480", "batch_size": 1, "video_length": 81, "duration_seconds": 0, "pause_seconds": 0,
    "force_fps": "", "num_inference_steps": 30, "seed": -1, "guidance_phases": 1, "model_switch_phase": 1,
    "switch_threshold": 0, "switch_threshold2": 0, "guidance_scale": 5, "guidance2_scale": 5, "guidance3_scale": 5,
    "audio_guidance_scale": 1, "audio_scale": 1, "embedded_guidance_scale": 6.0, "alt_guidance_scale": 1.0,
    "alt_scale": 0.0, "temperature": 0.8, "top_p": 0.9, "top_k": 50, "sample_solver": "", "flow_shift": 3,
    "control_net_weight": 1, "control_net_weight2": 1, "control_net_weight_alt": 1, "negative_prompt": "",
    "NAG_scale": 1, "NAG_tau": 3.5, "NAG_alpha": 0.5, "repeat_generation": 1, "multi_images_gen_type": 0,
    "multi_prompts_gen_type": "PG", "skip_steps_cache_type": "", "skip_steps_multiplier": 1.75,
    "skip_steps_start_step_perc": 0, "temporal_upsampling": "", "spatial_upsampling": "", "film_grain_intensity": 0,
    "film_grain_saturation": 0.5, "postprocess_audio": "", "postprocess_audio_prompt": "",
    "postprocess_audio_neg_prompt": "", "perturbation_switch": 0, "perturbation_layers": [9],
    "perturbation_start_perc": 10, "perturbation_end_perc": 90, "apg_switch": 0, "cfg_star_switch": 0,
    "cfg_zero_step": -1, "self_refiner_setting": 0, "self_refiner_plan": "", "self_refiner_f_uncertainty": 0.0,
    "self_refiner_certain_percentage": 0.999, "min_frames_if_references": 1, "motion_amplitude": 1.0,
    "sliding_window_size": 129, "sliding_window_overlap": 5, "sub_parallel_window_size": 0,
    "sub_parallel_window_overlap": 17, "sliding_window_color_correction_strength": 0,
    "sliding_window_overlap_noise": 0, "sliding_window_discard_last_frames": 0, "sliding_window_trim_first_frames": 0,
    "keep_intermediate_sliding_windows": 1, "RIFLEx_setting": 0, "override_profile": -1, "override_attention": "",
    "attention_sparsity": 1.0, "output_filename": "", "config": "", "activated_loras": [], "loras_multipliers": "",
    "replace_voice_method": "",
}

#: What WanGP 12's handlers set per family on top of the baseline (``update_default_settings``), where wangp knows it.
_V12_FAMILY = {
    "hunyuan": {"guidance_scale": 7.0},
}
#: Per output kind: an image model's UI starts in image mode (wgp.py: image_outputs → image_mode 1).
_V12_OUTPUT = {"image": {"image_mode": 1}}
_BASELINE_V12_TEXT = json.dumps(BASELINE_V12)


def _v12_default_settings(arch) -> dict:
    """``get_factory_settings`` without a defaults/ file: the baseline, then prompt, resolution and flow shift as
    WanGP computes them from the id and class, then what wangp knows of the family's handler."""
    i2v = arch.io_class == "i2v"
    settings = json.loads(_BASELINE_V12_TEXT)  # a fresh copy, several times faster than copy.deepcopy
    settings.update(prompt=I2V_PROMPT if i2v else T2V_PROMPT,
                    resolution="1280x720" if "720" in arch.id else "832x480",
                    flow_shift=7.0 if i2v and "720" not in arch.id else 5.0)
    settings.update(_V12_FAMILY.get(arch.family, {}))
    settings.update(_V12_OUTPUT.get(getattr(arch, "output", "video"), {}))
    if getattr(arch, "handler", "") == "wan":  # the wan handler's fix_settings: no solver means unipc
        settings["sample_solver"] = "unipc"
    return settings


def default_settings(arch, target: str = "july") -> dict:
    """The settings WanGP starts a base model with when no ``settings/<id>_settings.json`` exists."""
    if target == "v12":
        return _v12_default_settings(arch)
    arch_id, i2v = arch.id, arch.io_class == "i2v"
    settings = {
        "prompt": I2V_PROMPT if i2v else T2V_PROMPT,
        "resolution": "1280x720" if "720" in arch_id else "832x480",
        "video_length": 81,
        "num_inference_steps": 30,
        "seed": -1,
        "repeat_generation": 1,
        "multi_images_gen_type": 0,
        "guidance_scale": 5.0,
        "embedded_guidance_scale": 6.0,
        "audio_guidance_scale": 5.0,
        "flow_shift": 7.0 if i2v and "720" not in arch_id else 5.0,
        "negative_prompt": "",
        "activated_loras": [],
        "loras_multipliers": "",
        "tea_cache_setting": 0,
        "tea_cache_start_step_perc": 0,
        "RIFLEx_setting": 0,
        "slg_switch": 0,
        "slg_layers": [9],
        "slg_start_perc": 10,
        "slg_end_perc": 90,
    }
    if target != "v6":
        del settings["tea_cache_setting"], settings["tea_cache_start_step_perc"]
        settings.update(skip_steps_multiplier=1.5, skip_steps_start_step_perc=20)
        if arch_id not in ("fantasy", "multitalk"):
            del settings["audio_guidance_scale"]
    if arch_id in _SKY_DF:
        settings.update(guidance_scale=6, flow_shift=8, sliding_window_discard_last_frames=0,
                        resolution="1280x720" if "720" in arch_id else "960x544",
                        sliding_window_size=121 if "720" in arch_id else 97, RIFLEx_setting=2)
    settings.update(_OVERRIDES.get(arch_id, {}))
    if arch_id == "hunyuan_avatar":
        settings["skip_steps_start_step_perc" if target != "v6" else "tea_cache_start_step_perc"] = 25
    return settings
