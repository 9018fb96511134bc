"""Generation settings: the merge order, and WanGP's exported-settings format."""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from wangp_cli.core import jsonpos
from wangp_cli.core.defaults import (
    BASELINE_V12,
    I2V_PROMPT,
    T2V_PROMPT,
    default_settings,
)
from wangp_cli.core.definitions import Catalog, Definition, FileProblem, read_source
from wangp_cli.core.errors import Diagnostic, WangpError
from wangp_cli.core.keys import (
    LEGACY_SETTINGS,
    MEDIA_KEYS,
    MEDIA_KEYS_V12,
    PROMPTS_MODES,
    SETTINGS_KEYS,
    SETTINGS_KEYS_V12,
)
from wangp_cli.core.registry import get_architecture

#: WanGP version and settings_version written by an export, per target.
EXPORT_VERSIONS = {"v6": ("6.21", 2), "july": ("7.0", 2.22), "v12": ("12.60", 2.74)}

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
#: What WanGP 12 writes into an output besides the settings (read back with them, never settings themselves).
OUTPUT_METADATA_KEYS = ("creation_date", "creation_timestamp", "generation_time", "modules",
                        "transformer_loras_filenames", "transformer_loras_multipliers", "window_no", "video_quality",
                        "image_quality", "hdr", "hdr_video_crf")


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


def fix_settings(values: dict, target: str, *, model: ModelTraits | None = None, min_version: float = 0) -> dict:
    """WanGP's legacy-key fixes (``fix_settings``): ``prompts``, integer ``image_prompt_type``; from July, TeaCache
    keys become "skip steps" keys and ``lset_name`` is dropped; v12: every migration of WanGP 12 at the file's
    ``settings_version`` (none: version 0), at least ``min_version`` (see :data:`MIGRATIONS_V12`)."""
    if target == "v12":
        version = max(min_version, _version(values))
        return complete_v12(migrate_v12(values, version, model, defaults=True), model)
    values = dict(values)
    _prompts(values, model)
    _image_prompt_type(values, model)
    if target == "v6":
        return values
    values.pop("lset_name", None)
    _tea_cache(values, model)
    return values


def merged_settings(definition: Definition, catalog: Catalog, flags: dict | None = None) -> tuple[dict, dict]:
    """Architecture defaults < definition settings < ``settings/<id>_settings.json`` < flags.

    Returns the settings and, for each key, the layer it came from. An empty prompt becomes the architecture's
    default prompt, as in WanGP.
    """
    if catalog.target == "v12":
        return _merged_v12(definition, catalog, flags)
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
                    form: str = "export", settings: dict | None = None, now: float | None = None) -> dict:
    """Settings in WanGP's format.

    ``form="export"``: what "Export Settings" writes (per-architecture keys removed, null-free, media inputs left
    out, ``model_filename`` and ``model_type`` last). ``form="settings"``: what WanGP stores as
    ``settings/<id>_settings.json`` (all keys, ``type`` and ``settings_version``). ``form="metadata"``: what WanGP
    embeds in a video (every setting used, then the export's trailing keys). ``settings``: merged settings to
    export instead of the definition's own (a generation request's).

    Each target writes its own vocabulary under its own settings_version, never another version's name for the
    same setting (WanGP would migrate one over the other). v12: WanGP 12.60's export (metadata-cleaned by the
    model's capabilities, media paths kept, ``model_filename`` the raw chosen entry); ``form="metadata"`` adds
    ``creation_date``/``creation_timestamp`` (``now``: the time to write, default the current one).
    """
    target = catalog.target
    version, settings_version = EXPORT_VERSIONS[target]
    if settings is None:
        settings, _ = merged_settings(definition, catalog)
    if target == "v12":
        return _export_v12(definition, catalog, model_filename, form, settings, now)
    settings = {k: v for k, v in settings.items() if k not in FOREIGN_KEYS[target]}
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
    if form == "metadata":
        result.update(transformer_loras(definition, catalog))
    if form in ("export", "metadata"):
        result["model_filename"] = model_filename
        result["model_type"] = definition.id
    return result


def transformer_loras(definition: Definition, catalog: Catalog) -> dict:
    """The definition's own LoRAs as WanGP records them in an output (``generate_media``: only when there are
    some): ``transformer_loras_filenames`` (the entries as written) and ``transformer_loras_multipliers`` (padded
    with 1.0, as ``get_transformer_loras``)."""
    from wangp_cli.core.errors import WangpError
    from wangp_cli.core.models import resolved_entries, resolved_list

    try:
        entries = resolved_entries(catalog, definition, "loras")
        given = resolved_list(catalog, definition, "loras_multipliers") if catalog.target == "v12" else \
            definition.model.get("loras_multipliers") or []
    except WangpError:
        return {}
    if not entries:
        return {}
    given = given if isinstance(given, list) else []
    return {"transformer_loras_filenames": entries,
            "transformer_loras_multipliers": (list(given) + [1.0] * len(entries))[:len(entries)]}


# -- WanGP 12 (target v12) ------------------------------------------------------------------------------------------

CURRENT_VERSION_V12 = EXPORT_VERSIONS["v12"][1]


@dataclass(frozen=True)
class ModelTraits:
    """What WanGP 12's migrations and metadata cleaning read of a model: its base type, handler, and model def
    (the handler's ``query_model_def`` keys updated with the definition's model subtree)."""

    base: str = ""
    handler: str = ""
    traits: dict = field(default_factory=dict)

    def get(self, key: str, default=None):
        return self.traits.get(key, default)

    @property
    def any_audio_track(self) -> bool:
        return bool(self.get("returns_audio") or self.get("any_audio_prompt"))


def model_traits(definition: Definition, target: str = "v12") -> ModelTraits | None:
    """The traits of a definition's base type (None when it has none in ``target``)."""
    arch_id = definition.architecture or definition.id
    arch = get_architecture(arch_id, target)
    if arch is None:
        return None
    traits = {"fps": arch.fps, "frames_minimum": arch.frames[0], "frames_steps": arch.frames[2],
              "image_prompt_types_allowed": arch.prompt_types, "audio_only": arch.output == "audio",
              "returns_audio": arch.audio, "image_outputs": arch.output == "image",
              **arch.keys_for(definition.model), **definition.model}
    return ModelTraits(arch.id, arch.handler, traits)


def _version(values: dict) -> float:
    version = values.get("settings_version", 0)
    return version if isinstance(version, (int, float)) and not isinstance(version, bool) else 0


def _replace_in(key: str, old: str, new: str) -> Callable[[dict, ModelTraits | None], None]:
    def replace(values: dict, model) -> None:
        if isinstance(values.get(key), str):
            values[key] = values[key].replace(old, new)
    return replace


def _rename(renames: dict) -> Callable[[dict, ModelTraits | None], None]:
    def rename(values: dict, model) -> None:
        for old, new in renames.items():
            if old in values:
                values.setdefault(new, values[old])
                del values[old]
    return rename


def _prompts(values: dict, model) -> None:
    prompts = values.pop("prompts", "")
    if isinstance(prompts, str) and prompts:
        values["prompt"] = prompts


def _image_prompt_type(values: dict, model) -> None:
    value = values.get("image_prompt_type")
    if value is not None and not isinstance(value, str):
        values["image_prompt_type"] = "S" if value == 0 else "SE"


def _tea_cache(values: dict, model) -> None:
    tea = values.pop("tea_cache_setting", None)
    if isinstance(tea, (int, float)):
        values["skip_steps_multiplier"] = tea if tea > 0 else 1.75
        values["skip_steps_cache_type"] = "tea" if tea > 0 else ""
    start = values.pop("tea_cache_start_step_perc", None)
    if start is not None:
        values["skip_steps_start_step_perc"] = start


def _prompt_enhancer(values: dict, model) -> None:
    values["prompt_enhancer"] = {"I": "TI", "IK": "TIK"}.get(values.get("prompt_enhancer"), values["prompt_enhancer"])


def _audio_prompt_a(values: dict, model) -> None:
    if values.get("audio_prompt_type") is None and model is not None and model.any_audio_track:
        values["audio_prompt_type"] = "A"


def _audio_prompt_v(values: dict, model) -> None:
    if model is not None and model.any_audio_track:
        values["audio_prompt_type"] = (values.get("audio_prompt_type") or "") + "V"


def _flux_refs(values: dict, model) -> None:
    if isinstance(values.get("video_prompt_type"), str):
        values["video_prompt_type"] = values["video_prompt_type"].replace("K", "").replace("I", "KI")


def _background_refs(values: dict, model) -> None:
    """Before 2.22: "remove background" 2 meant "keep the background, remove it from the references"."""
    video_prompt_type = values.get("video_prompt_type")
    if "remove_background_images_ref" not in values and not isinstance(video_prompt_type, str):
        return
    remove = values.get("remove_background_images_ref")
    if isinstance(video_prompt_type, str) and "I" in video_prompt_type and remove == 2:
        values["video_prompt_type"] = video_prompt_type.replace("I", "KI")
    values["remove_background_images_ref"] = 0 if remove == 0 else 1


def _avatar_refs(values: dict, model) -> None:
    video_prompt_type = values.get("video_prompt_type")
    if isinstance(video_prompt_type, str) and "K" not in video_prompt_type:
        values["video_prompt_type"] = video_prompt_type.replace("I", "KI")


def _two_phases(values: dict, model) -> None:
    """Wan before 2.24: a two-model type (or a switch threshold) means two guidance phases."""
    threshold = values.get("switch_threshold", 0)
    two_models = bool(model and model.get("multiple_submodels")) or (isinstance(threshold, (int, float))
                                                                     and threshold > 0)
    phases = values.get("guidance_phases", 0)
    if two_models and isinstance(phases, (int, float)) and phases < 2:
        values["guidance_phases"] = 2


def _drop_g(values: dict, model) -> None:
    if isinstance(values.get("image_prompt_type"), str):
        values["image_prompt_type"] = values["image_prompt_type"].replace("G", "")


@dataclass(frozen=True)
class Migration:
    """One step of WanGP 12's ``fix_settings``: run on files whose settings_version is below ``below`` (None: every
    file), for models ``applies`` accepts; ``default`` steps fill a missing key (only where no baseline does)."""

    what: str
    below: float | None
    run: Callable[[dict, ModelTraits | None], None]
    applies: Callable[[ModelTraits | None], bool] = lambda model: True
    default: bool = False


def _base(*ids: str) -> Callable[[ModelTraits | None], bool]:
    return lambda model: model is not None and model.base in ids


def _handler(name: str) -> Callable[[ModelTraits | None], bool]:
    return lambda model: model is not None and model.handler == name


#: WanGP 12.60's ``fix_settings`` (wgp.py l. 3020) and the wan handler's, in WanGP's order: the version-gated steps
#: and the renames, run on each settings file at its own version. :func:`complete_v12` does the rest.
MIGRATIONS_V12 = (
    Migration("'prompts' becomes 'prompt'", None, _prompts),
    Migration("an integer image_prompt_type becomes S (0) or SE", None, _image_prompt_type),
    Migration("image_prompt_type loses G", 2.0001, _drop_g),
    Migration("'lset_name' is dropped", None, lambda values, model: values.pop("lset_name", None)),
    Migration("slg_* become perturbation_*", 2.54, _rename({
        "slg_switch": "perturbation_switch", "slg_layers": "perturbation_layers",
        "slg_start_perc": "perturbation_start_perc", "slg_end_perc": "perturbation_end_perc"})),
    Migration("alt_scale defaults to 0", 2.55, lambda values, model: values.setdefault("alt_scale", 0.0), default=True),
    Migration("replace_voice_sample defaults to none", 2.60,
              lambda values, model: values.setdefault("replace_voice_sample", None), default=True),
    Migration("prompt_enhancer I becomes TI, IK becomes TIK", 2.61,
              lambda values, model: "prompt_enhancer" in values and _prompt_enhancer(values, model)),
    Migration("audio models get audio_prompt_type A", 2.2, _audio_prompt_a),
    Migration("audio models get V in audio_prompt_type", 2.35, _audio_prompt_v),
    Migration("hunyuan takes no image references", None, _replace_in("video_prompt_type", "I", ""), _base("hunyuan")),
    Migration("flux references become KI", 2.23, _flux_refs, _base("flux")),
    Migration("remove_background_images_ref 2 becomes KI", 2.22, _background_refs),
    Migration("hunyuan_avatar keeps the background of references", None,
              lambda values, model: values.__setitem__("remove_background_images_ref", 0), _base("hunyuan_avatar")),
    Migration("hunyuan_avatar references become KI", 2.26, _avatar_refs, _base("hunyuan_avatar")),
    Migration("tea_cache_* become skip_steps_*", None, _tea_cache),
    Migration("two-model Wan types get two guidance phases", 2.24, _two_phases, _handler("wan")),
)


def migrate_v12(values: dict, version: float, model: ModelTraits | None = None, *, defaults: bool = False) -> dict:
    """The steps of :data:`MIGRATIONS_V12` that a file at ``version`` gets (``defaults``: the key-filling ones too)."""
    values = dict(values)
    for step in MIGRATIONS_V12:
        if (step.below is None or version < step.below) and (defaults or not step.default) and step.applies(model):
            step.run(values, model)
    return values


_SECONDS = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*s\s*$", re.IGNORECASE)
_LEGACY_MODES = {0: "G", 1: "W", 2: "FG", "": "FG", "0": "G", "1": "W", "2": "FG", "P": "PG"}


def prompts_mode(value, default: str = "PG") -> str:
    """WanGP's ``normalize_multi_prompts_mode``: legacy 0/1/2 → G/W/FG; anything unknown → ``default``."""
    if isinstance(value, str):
        value = value.strip().upper()
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        value = int(value)
    else:
        return default
    value = _LEGACY_MODES.get(value, value)
    return value if value in PROMPTS_MODES else default


def seconds_to_frames(text: str, fps: float, minimum: int = 5, step: int = 4, offset: int = 1) -> int | None:
    """WanGP's ``apply_video_length_duration``: ``"10s"`` at ``fps`` → the nearest frame count WanGP allows
    (``minimum + k*step``, offset 1); None when ``text`` is not a positive duration."""
    match = _SECONDS.fullmatch(text)
    seconds = float(match.group(1)) if match else 0.0
    if seconds <= 0 or not fps or fps <= 0:
        return None
    frames = max(minimum, round(seconds * fps))
    step = max(1, step)
    if step <= 1:
        return frames

    def floor(count: int) -> int:
        lower = ((count - offset) // step) * step + offset
        return lower if lower >= minimum else ceil(minimum)

    def ceil(count: int) -> int:
        upper = ((count - offset + step - 1) // step) * step + offset
        return upper if upper >= minimum else ceil(upper + step)

    lower, upper = floor(frames), ceil(frames)
    return lower if frames - lower <= upper - frames else upper


def _fps(values: dict, model: ModelTraits | None) -> float:
    force = values.get("force_fps")
    if isinstance(force, (int, float)) and not isinstance(force, bool):
        return float(force)
    if isinstance(force, str) and force.strip():
        try:
            return float(force)
        except ValueError:
            pass
    fps = model.get("fps", 16) if model else 16
    return float(fps) if isinstance(fps, (int, float)) else 16.0


def complete_v12(values: dict, model: ModelTraits | None = None) -> dict:
    """The steps of WanGP 12's ``fix_settings`` that run at every version on the whole settings: video_length in
    seconds → frames, ``multi_prompts_gen_type`` normalized (W → G without sliding windows), image prompt letters
    the model does not allow dropped, ``alt_prompt`` present, the wan handler's ``unipc`` solver."""
    values = dict(values)
    length = values.get("video_length")
    if isinstance(length, str):
        frames = seconds_to_frames(length, _fps(values, model), *(
            (model.get("frames_minimum", 5), model.get("frames_steps", 4)) if model else ()))
        if frames is not None:
            values["video_length"] = frames
    values.setdefault("alt_prompt", "")
    mode = prompts_mode(values.get("multi_prompts_gen_type"))
    if model is not None and not model.get("sliding_window"):
        mode = mode.replace("W", "G")
    values["multi_prompts_gen_type"] = mode
    if model is not None:
        allowed = model.get("image_prompt_types_allowed") or ""
        letters = values.get("image_prompt_type") or ""
        if isinstance(letters, str):
            values["image_prompt_type"] = "".join(letter for letter in letters if letter in allowed)
        if model.handler == "wan" and not values.get("sample_solver"):
            values["sample_solver"] = "unipc"
    return values


def _merged_v12(definition: Definition, catalog: Catalog, flags: dict | None) -> tuple[dict, dict]:
    """WanGP 12's ``get_factory_settings`` (baseline < handler < definition, migrated as the current version: WanGP
    treats a definition's settings as current) < the settings file (migrated from its own settings_version) < flags."""
    model = model_traits(definition)
    arch = get_architecture(model.base, "v12") if model else None
    layers = [("architecture", default_settings(arch, "v12") if arch else dict(BASELINE_V12), CURRENT_VERSION_V12)]
    if not definition.is_builtin:
        layers.append(("definition", definition.settings, CURRENT_VERSION_V12))
    settings_file = catalog.home.settings_file(definition.id)
    if os.path.lexists(settings_file):
        data = read_settings_file(settings_file)
        layers.append(("settings_file", data, _version(data)))
    layers.append(("flag", {k: v for k, v in (flags or {}).items() if v is not None}, CURRENT_VERSION_V12))
    merged: dict = {}
    origin: dict = {}
    for layer, values, version in layers:
        for key, value in migrate_v12(values, version, model).items():
            if key not in META_KEYS:
                merged[key] = value
                origin[key] = layer
    if not merged.get("prompt"):
        merged["prompt"] = I2V_PROMPT if arch is not None and arch.io_class == "i2v" else T2V_PROMPT
        origin["prompt"] = "architecture"
    completed = complete_v12(merged, model)
    for key, value in completed.items():
        if key not in merged:
            origin[key] = "architecture"
    return completed, origin


#: Keys an export of each target may hold: its own vocabulary, never the other versions' names for the same thing.
_LEGACY_V12 = set(LEGACY_SETTINGS) | set(OUTPUT_METADATA_KEYS)
EXPORT_VOCABULARY = {
    "v12": frozenset(k for k in SETTINGS_KEYS_V12 if k not in _LEGACY_V12 and k not in META_KEYS),
}
#: Keys of a later WanGP that mean the same as a key of the target (an export never carries both).
FOREIGN_KEYS = {
    "v6": frozenset(k for k, key in SETTINGS_KEYS.items() if key.since != "v6") - set(META_KEYS),
    "july": frozenset(("tea_cache_setting", "tea_cache_start_step_perc", "tea_cache", "prompts", "perturbation_switch",
                       "perturbation_layers", "perturbation_start_perc", "perturbation_end_perc")),
}

#: ``clean_metadata_settings`` (shared/settings_metadata.py): keys kept only when the model has the capability.
_CAPABILITIES = (
    (lambda m: m.get("audio_only") and m.get("temperature", True), ("temperature",)),
    (lambda m: m.get("duration_slider") is not None, ("duration_seconds",)),
    (lambda m: m.get("pause_between_sentences", False), ("pause_seconds",)),
    (lambda m: m.get("inference_steps", True), ("num_inference_steps",)),
    (lambda m: m.get("sample_solvers") is not None, ("sample_solver",)),

    (lambda m: any(m.get(k, False) for k in ("tea_cache", "mag_cache", "spectrum_cache", "first_block_cache")),
     ("skip_steps_cache_type", "skip_steps_multiplier", "skip_steps_start_step_perc")),
    (lambda m: m.get("model_modes") is not None, ("model_mode",)),
    (lambda m: m.get("multiple_images_as_text_prompts", False), ("multi_images_gen_type",)),
    (lambda m: not m.get("no_negative_prompt", False), ("negative_prompt",)),
    # shared/extra_settings.py: sliders a model does not show
    (lambda m: m.get("embedded_guidance", False), ("embedded_guidance_scale",)),
    (lambda m: m.get("alt_guidance") is not None, ("alt_guidance_scale",)),
    (lambda m: m.get("alt_scale") is not None, ("alt_scale",)),
    (lambda m: int(_number(m.get("control_net_weight_size"), 0)) >= 1 and m.get("control_net_weight_name"),
     ("control_net_weight",)),
    (lambda m: int(_number(m.get("control_net_weight_size"), 0)) >= 2 and m.get("control_net_weight_name"),
     ("control_net_weight2",)),
    (lambda m: m.get("control_net_weight_alt_name"), ("control_net_weight_alt",)),
    (lambda m: m.get("top_p_slider", False), ("top_p",)),
    (lambda m: m.get("top_k_slider", False), ("top_k",)),
    (lambda m: m.get("custom_settings"), ("custom_settings",)),
    (lambda m: m.get("vace_class", False) or m.get("t2v_class", False), ("min_frames_if_references",)),
    (lambda m: m.get("video_guide_outpainting") is not None, ("video_guide_outpainting",
                                                              "video_guide_outpainting_ratio")),
)
#: Capabilities of WanGP's handlers that the registry rows must declare (``handler_keys``) for their rules to run: a
#: row declaring none of them comes from a table without them, and the keys they govern are kept.
_DECLARED_CAPABILITIES = (
    (lambda m: m.get("self_refiner", False), ("self_refiner_setting", "self_refiner_plan", "self_refiner_f_uncertainty",
                                              "self_refiner_certain_percentage")),
    (lambda m: m.get("audio_guidance", False), ("speakers_locations", "audio_guidance_scale")),
    (lambda m: m.get("perturbation", False), ("perturbation_switch", "perturbation_layers", "perturbation_start_perc",
                                              "perturbation_end_perc")),
    (lambda m: m.get("cfg_zero", False), ("cfg_zero_step",)),
    (lambda m: m.get("cfg_star", False), ("cfg_star_switch",)),
    (lambda m: m.get("adaptive_projected_guidance", False), ("apg_switch",)),
    (lambda m: m.get("NAG", False), ("NAG_scale", "NAG_tau", "NAG_alpha")),
    (lambda m: m.get("riflex", False), ("RIFLEx_setting",)),
    (lambda m: m.get("flow_shift", False), ("flow_shift",)),
    (lambda m: m.get("motion_amplitude", False), ("motion_amplitude",)),
)
CAPABILITY_FLAGS = ("self_refiner", "audio_guidance", "perturbation", "cfg_zero", "cfg_star",
                    "adaptive_projected_guidance", "NAG", "riflex", "flow_shift", "motion_amplitude")
#: Keys that only matter with a letter in video_prompt_type (the control video's options).
_VIDEO_PROMPT_LETTERS = (("G", ("denoising_strength",)), ("V", ("keep_frames_video_guide",)), ("A", ("mask_expand",)),
                         ("I", ("image_refs_relative_size", "remove_background_images_ref")),
                         ("F", ("frames_positions",)))
#: Values that mean "not set": the key is left out.
_NEUTRAL = {"client_id": ("", None), "mode": ("", None), "output_filename": ("", None), "config": ("", None),
            "override_profile": (-1, "-1", None), "override_attention": ("", None)}
#: Keys left out when empty (or zero), with the keys that go with them.
_EMPTY_GROUPS = (
    (("image_prompt_type",), ()), (("video_prompt_type",), ()), (("audio_prompt_type",), ()),
    (("negative_prompt",), ()), (("custom_settings",), ()), (("force_fps",), ()), (("temporal_upsampling",), ()),
    (("spatial_upsampling",), ()), (("replace_voice_method",), ()),
    (("skip_steps_cache_type",), ("skip_steps_multiplier", "skip_steps_start_step_perc")),
    (("postprocess_audio",), ("postprocess_audio_prompt", "postprocess_audio_neg_prompt")),
    (("activated_loras",), ("loras_multipliers",)),
)
_ZERO_GROUPS = (
    ("perturbation_switch", 0, ("perturbation_layers", "perturbation_start_perc", "perturbation_end_perc")),
    ("self_refiner_setting", 0, ("self_refiner_plan", "self_refiner_f_uncertainty", "self_refiner_certain_percentage")),
    ("NAG_scale", 1, ("NAG_tau", "NAG_alpha")),
    ("film_grain_intensity", 0, ("film_grain_saturation",)),
    ("apg_switch", 0, ()), ("cfg_star_switch", 0, ()),
)
_SLIDING = ("sliding_window_size", "sliding_window_overlap", "sub_parallel_window_size", "sub_parallel_window_overlap",
            "sliding_window_color_correction_strength", "sliding_window_overlap_noise",
            "sliding_window_discard_last_frames", "sliding_window_trim_first_frames")
_BY_OUTPUT = {
    "audio": ("resolution", "batch_size", "video_length", "image_mode", "image_prompt_type", "video_prompt_type",
              "RIFLEx_setting", *_SLIDING, "temporal_upsampling", "spatial_upsampling", "film_grain_intensity",
              "film_grain_saturation", "force_fps", "keep_frames_video_source", "keep_frames_video_guide",
              "video_guide_outpainting", "video_guide_outpainting_ratio", "mask_expand", "frames_positions",
              "image_refs_relative_size", "remove_background_images_ref", "input_video_strength"),
    "image": ("video_length", "force_fps", "keep_frames_video_source", "keep_frames_video_guide",
              "video_guide_outpainting", "video_guide_outpainting_ratio", "RIFLEx_setting", "temporal_upsampling",
              *_SLIDING),
    "video": ("batch_size",),
}


def _number(value, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def output_kind(settings: dict, traits: dict) -> str:
    """What a generation with these settings makes: "audio", "image" (``image_mode`` > 0) or "video"."""
    if traits.get("audio_only"):
        return "audio"
    return "image" if _number(settings.get("image_mode"), 0) > 0 or traits.get("image_outputs") else "video"


def clean_metadata_v12(settings: dict, model: ModelTraits | None) -> dict:
    """The keys a WanGP 12 export leaves out for this model (``clean_metadata_settings``): capabilities it lacks,
    guidance phases it does not use, neutral and empty values, the other output kinds' keys, nulls. The rules that
    need WanGP's UI state (visible custom settings, the prompt enhancer, guide choices) are not ported."""
    settings = dict(settings)
    traits = model.traits if model else {}
    declared = any(flag in traits for flag in CAPABILITY_FLAGS)
    for supported, keys in _CAPABILITIES + (_DECLARED_CAPABILITIES if declared else ()):
        if not supported(traits):
            for key in keys:
                settings.pop(key, None)
    max_phases = int(_number(traits.get("guidance_max_phases"), 0))
    phases = int(_number(settings.get("guidance_phases", 1), 0))
    for needed, keys in ((1, ("guidance_scale", "guidance_phases")), (2, ("guidance2_scale", "switch_threshold")),
                         (3, ("guidance3_scale", "switch_threshold2", "model_switch_phase"))):
        if max_phases < needed or (needed > 1 and phases < needed):
            for key in keys:
                settings.pop(key, None)
    for key, neutral in _NEUTRAL.items():
        if key in settings and settings[key] in neutral:
            del settings[key]
    for (key,), companions in _EMPTY_GROUPS:
        if key in settings and not settings[key]:
            for name in (key, *companions):
                settings.pop(name, None)
    for key, off, companions in _ZERO_GROUPS:
        if key in settings and _number(settings[key], off) <= off:
            for name in (key, *companions):
                settings.pop(name, None)
    if not str(settings.get("alt_prompt", "") or "") and traits.get("alt_prompt") is None:
        settings.pop("alt_prompt", None)
    if traits.get("audio_scale_name") is None or output_kind(settings, traits) != "image":
        settings.pop("audio_scale", None)
    if _number(settings.get("cfg_zero_step"), -1) < 0:
        settings.pop("cfg_zero_step", None)
    letters = str(settings.get("video_prompt_type", "") or "")
    for letter, keys in _VIDEO_PROMPT_LETTERS:
        if letter not in letters:
            for key in keys:
                settings.pop(key, None)
    if "G" not in letters and not traits.get("mask_strength_always_enabled", False):
        settings.pop("masking_strength", None)
    image_letters = str(settings.get("image_prompt_type", "") or "")
    if not any(letter in image_letters for letter in "SVL") or not (
            traits.get("vace_class") or (model and model.base in ("sky_df_1.3B", "sky_df_14B", "ltxv_13B"))):
        settings.pop("keep_frames_video_source", None)
    strength_label = str((traits.get("input_video_strength") or {}).get("label", "") or "").strip() if isinstance(
        traits.get("input_video_strength"), dict) else ""
    if not strength_label or not (any(letter in image_letters for letter in "SVLE") or "F" in letters):
        settings.pop("input_video_strength", None)
    if str(settings.get("video_guide_outpainting", "") or "") in ("", "#"):
        settings.pop("video_guide_outpainting", None)
        settings.pop("video_guide_outpainting_ratio", None)
    settings.pop("keep_intermediate_sliding_windows", None)
    settings.pop("attention_sparsity", None)  # kept by WanGP only with SOL attention
    settings.pop("prompt_enhancer", None)  # kept by WanGP only when its enhancer is shown
    output = output_kind(settings, traits)
    for key in _BY_OUTPUT[output]:
        settings.pop(key, None)
    if output != "video" or not traits.get("sliding_window"):
        for key in _SLIDING:
            settings.pop(key, None)
    elif not traits.get("sub_parallel_windows"):
        settings.pop("sub_parallel_window_size", None)
        settings.pop("sub_parallel_window_overlap", None)
    return {key: value for key, value in settings.items() if value is not None}


_ORDER_V12 = list(BASELINE_V12)[:list(BASELINE_V12).index("replace_voice_method")] + list(MEDIA_KEYS_V12)
_RANK_V12 = {key: index for index, key in enumerate(_ORDER_V12)}


def _export_v12(definition: Definition, catalog: Catalog, model_filename: str, form: str, settings: dict,
                now: float | None) -> dict:
    """WanGP 12's ``prepare_inputs_dict`` for "Export Settings" / "settings" / output metadata (§5.1, §6)."""
    version, settings_version = EXPORT_VERSIONS["v12"]
    model = model_traits(definition)
    vocabulary = EXPORT_VOCABULARY["v12"]
    settings = {k: v for k, v in settings.items() if k in vocabulary}
    media = {k: settings.pop(k) for k in MEDIA_KEYS_V12 if settings.get(k) is not None}
    if form != "settings":
        settings = clean_metadata_v12(settings, model)
    if form == "export":
        settings.update(media)  # --process reads them from the file
    ranked = sorted(settings, key=lambda k: _RANK_V12.get(k, len(_RANK_V12)))
    result = {k: settings[k] for k in ranked}
    result["type"] = f"WanGP v{version} by DeepBeepMeep - {definition.name}"
    result["settings_version"] = settings_version
    base = model.base if model else definition.architecture or definition.id
    if definition.id != base:
        result["base_model_type"] = base
    if form == "metadata":
        moment = time.time() if now is None else now
        result["creation_date"] = datetime.fromtimestamp(moment, timezone.utc).astimezone().isoformat(
            timespec="seconds")
        result["creation_timestamp"] = int(moment)
        result.update(transformer_loras(definition, catalog))
    if form in ("export", "metadata"):
        result["model_filename"] = model_filename
        result["model_type"] = definition.id
    return result
