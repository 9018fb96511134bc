"""Generation settings: the merge order, and WanGP's exported-settings format."""

from __future__ import annotations

import os

from wangp_cli.core import jsonpos
from wangp_cli.core.defaults import I2V_PROMPT, T2V_PROMPT, default_settings
from wangp_cli.core.definitions import Catalog, Definition, FileProblem, read_source
from wangp_cli.core.errors import Diagnostic, WangpError
from wangp_cli.core.keys import MEDIA_KEYS
from wangp_cli.core.registry import get_architecture

#: WanGP version and settings_version written by an export, per target.
EXPORT_VERSIONS = {"v6": ("6.21", 2), "july": ("7.0", 2.22)}

#: Key order of WanGP's ``save_inputs`` (exported settings follow it; other keys keep their order after these).
_ORDER = (
    "lset_name prompt negative_prompt resolution video_length seed force_fps num_inference_steps guidance_scale "
    "audio_guidance_scale flow_shift sample_solver embedded_guidance_scale repeat_generation multi_prompts_gen_type "
    "multi_images_gen_type tea_cache_setting tea_cache_start_step_perc skip_steps_cache_type skip_steps_multiplier "
    "skip_steps_start_step_perc loras_multipliers image_prompt_type model_mode keep_frames_video_source "
    "video_guide_outpainting video_prompt_type frames_positions keep_frames_video_guide mask_expand "
    "sliding_window_size sliding_window_overlap sliding_window_overlap_noise sliding_window_discard_last_frames "
    "remove_background_images_ref temporal_upsampling spatial_upsampling RIFLEx_setting slg_switch slg_layers "
    "slg_start_perc slg_end_perc cfg_star_switch cfg_zero_step prompt_enhancer activated_loras"
).split()
_RANK = {key: index for index, key in enumerate(_ORDER)}
#: Metadata keys of settings files: never generation settings.
META_KEYS = ("type", "settings_version", "base_model_type", "model_filename", "model_type", "$schema")


SETTINGS_FILE_HINT = "fix it or delete it (WanGP recreates it from the definition)"


def read_settings_file(path) -> dict:
    """A ``settings/<id>_settings.json`` file; a broken one is an error with its position."""
    source = read_source(path)
    if source.error is not None or not isinstance(source.data, dict):
        error = source.error or jsonpos.JsonSyntaxError("a settings file must be a JSON object", 1, 1)
        hint = error.hint if isinstance(error, FileProblem) else SETTINGS_FILE_HINT
        raise WangpError(f"settings file '{path}' cannot be used: {error.message}", code="E1", hint=hint,
                         diagnostics=[Diagnostic(str(path), error.line, error.column, "E1", error.message)])
    return source.data


def fix_settings(values: dict, target: str) -> dict:
    """WanGP's legacy-key fixes (``fix_settings``): ``prompts``, integer ``image_prompt_type``; from July, TeaCache
    keys become "skip steps" keys and ``lset_name`` is dropped."""
    values = dict(values)
    prompts = values.pop("prompts", "")
    if isinstance(prompts, str) and prompts:
        values["prompt"] = prompts
    image_prompt_type = values.get("image_prompt_type")
    if image_prompt_type is not None and not isinstance(image_prompt_type, str):
        values["image_prompt_type"] = "S" if image_prompt_type == 0 else "SE"
    if target == "v6":
        return values
    values.pop("lset_name", None)
    tea = values.pop("tea_cache_setting", None)
    if isinstance(tea, (int, float)):
        values["skip_steps_multiplier"] = tea if tea > 0 else 1.75
        values["skip_steps_cache_type"] = "tea" if tea > 0 else ""
    start = values.pop("tea_cache_start_step_perc", None)
    if start is not None:
        values["skip_steps_start_step_perc"] = start
    return values


def merged_settings(definition: Definition, catalog: Catalog, flags: dict | None = None) -> tuple[dict, dict]:
    """Architecture defaults < definition settings < ``settings/<id>_settings.json`` < flags.

    Returns the settings and, for each key, the layer it came from. An empty prompt becomes the architecture's
    default prompt, as in WanGP.
    """
    arch = get_architecture(definition.architecture or "", catalog.target)
    layers = [("architecture", default_settings(arch, catalog.target) if arch else {})]
    if not definition.is_builtin:
        layers.append(("definition", definition.settings))
    settings_file = catalog.home.settings_file(definition.id)
    if os.path.lexists(settings_file):  # whatever the name holds: a directory or a FIFO is reported, not skipped
        layers.append(("settings_file", read_settings_file(settings_file)))
    layers.append(("flag", {k: v for k, v in (flags or {}).items() if v is not None}))
    merged: dict = {}
    origin: dict = {}
    for layer, values in layers:
        for key, value in fix_settings(values, catalog.target).items():
            if key not in META_KEYS:
                merged[key] = value
                origin[key] = layer
    if not merged.get("prompt") and arch is not None:
        merged["prompt"] = I2V_PROMPT if arch.io_class == "i2v" else T2V_PROMPT
        origin["prompt"] = "architecture"
    return merged, origin


def _removed_for(arch_id: str, filename: str, target: str) -> set[str]:
    """Keys WanGP's export drops for an architecture (``prepare_inputs_dict``, tested on the base file name)."""
    arch = get_architecture(arch_id, target)
    i2v = arch is not None and arch.io_class == "i2v"
    df = "diffusion_forcing" in filename
    ltxv = "ltxv" in filename
    vace = "Vace" in filename or arch_id in ("vace_14B", "vace_1.3B", "vace_multitalk_14B")
    removed = set(MEDIA_KEYS) | {"prompt_enhancer"}
    if not (i2v or df or ltxv or "recammaster" in filename or vace):
        removed.add("image_prompt_type")
    if "recam" not in filename and not df:
        removed.add("model_mode")
    if not vace and "phantom" not in filename and "hunyuan_video_custom" not in filename:
        removed |= {"keep_frames_video_guide", "video_prompt_type", "remove_background_images_ref", "mask_expand"}
    if not vace:
        removed.add("frames_positions")
        if target != "v6":
            removed.add("video_guide_outpainting")
    if not (df or ltxv or (vace and target != "v6")):
        removed.add("keep_frames_video_source")
    if not (vace or df or ltxv):
        removed |= {"sliding_window_size", "sliding_window_overlap", "sliding_window_overlap_noise",
                    "sliding_window_discard_last_frames"}
    if arch_id not in ("fantasy", "multitalk", "vace_multitalk_14B") and "fantasy" not in filename:
        removed.add("audio_guidance_scale")
    if "hunyuan" not in filename:
        removed.add("embedded_guidance_scale")
    if target != "v6":
        removed.add("lset_name")
        if arch is None or arch.family != "wan" or df:
            removed.add("sample_solver")
    return removed


def ordered(settings: dict) -> dict:
    """Settings in the order WanGP writes them (known keys first, in ``save_inputs`` order)."""
    keys = sorted(settings, key=lambda k: (_RANK.get(k, len(_RANK)),))
    return {k: settings[k] for k in keys}


def export_settings(definition: Definition, catalog: Catalog, model_filename: str, *,
                    form: str = "export", settings: dict | None = None) -> dict:
    """Settings in WanGP's format.

    ``form="export"``: what "Export Settings" writes (per-architecture keys removed, null-free, media inputs left
    out, ``model_filename`` and ``model_type`` last). ``form="settings"``: what WanGP stores as
    ``settings/<id>_settings.json`` (all keys, ``type`` and ``settings_version``). ``form="metadata"``: what WanGP
    embeds in a video (every setting used, then the export's trailing keys). ``settings``: merged settings to
    export instead of the definition's own (a generation request's).
    """
    target = catalog.target
    version, settings_version = EXPORT_VERSIONS[target]
    if settings is None:
        settings, _ = merged_settings(definition, catalog)
    arch_id = definition.architecture or definition.id
    arch = get_architecture(arch_id, target)
    if form == "export":
        base_file = " ".join(arch.urls + list(arch.modules)) if arch else ""
        removed = _removed_for(arch_id, base_file, target)
        settings = {k: v for k, v in settings.items() if k not in removed and v is not None}
    elif form == "settings":
        settings = {k: v for k, v in settings.items() if k not in MEDIA_KEYS}
    result = ordered(settings)
    result["type"] = f"WanGP v{version} by DeepBeepMeep - {definition.name}"
    result["settings_version"] = settings_version
    if target != "v6" and definition.id != arch_id:
        result["base_model_type"] = arch_id
    if form in ("export", "metadata"):
        result["model_filename"] = model_filename
        result["model_type"] = definition.id
    return result
