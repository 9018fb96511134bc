"""WanGP's default generation settings per base model (``get_default_settings`` in ``wgp.py``).

v6 = 95727e61 (WanGP 6.21), july = 4908c3c2 (tea cache renamed to "skip steps", multitalk added).
"""

from __future__ import annotations

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


def default_settings(arch, target: str = "july") -> dict:
    """The settings WanGP starts a base model with when no ``settings/<id>_settings.json`` exists."""
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
