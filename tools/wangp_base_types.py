"""Generate ``wangp_cli/core/data/base_types_v12.json``: WanGP 12's base-type table, one row per handler type.

Usage (with the project's venv, which has torch, diffusers and transformers)::

    .venv/bin/python tools/wangp_base_types.py WANGP [-o wangp_cli/core/data/base_types_v12.json]

WANGP is a WanGP checkout (a folder with ``wgp.py``) or a bare git directory (its ``HEAD`` is read: the text files
under ``models/``, ``shared/``, ``postprocessing/`` and ``defaults/`` are extracted to a temporary folder).

How the table is made:

- The handler modules are those of ``family_handlers`` in ``wgp.py``. They are imported for real, with every
  third-party module that is not installed (gradio, cv2, einops, ...) replaced by an inert stub, and ``mmgp`` always
  stubbed (WanGP pins a newer mmgp than ours). The stubs only answer imports made from the WanGP source tree.
  ``torch.cuda`` is told it has an 8.9 device, and transformers' Auto registries accept re-registration.
  The process runs in a temporary folder (the LTX-2 handler moves LoRAs around on its first call).
- Per type: ``query_model_family()``, ``query_model_def(type, model)`` where ``model`` is the ``model`` subtree of
  ``defaults/<type>.json`` (``{"architecture": type}`` for the types without such a file), and
  ``get_lora_dir(type, <no CLI overrides>, "loras")`` relative to ``loras/``.
- The merged definition (handler keys updated with the file's, as ``init_model_def`` does) gives:
  ``output`` (``models/model_metadata.py`` ``infer_main_outputs``), ``audio`` (``returns_audio``), ``group``,
  ``prompt_types`` (``image_prompt_types_allowed``), ``fps`` and ``frames``. When neither sets them WanGP uses
  ``fps`` 16 (``wgp.py`` ``get_model_fps``) and frames minimum 5, step 4 (``get_model_min_frames_and_step``).
- ``class``: ``t2a`` for audio output; ``i2v``/``t2v`` when the handler sets ``i2v_class``/``t2v_class``; else read
  from the prompt letters (S with T: ``t2v+i2v``; S alone: ``i2v``); else ``t2i`` for image output and ``t2v``.
  The 4 types without a defaults file (lynx_lite, alpha_lynx, scail2_1.3B, yue) get the same rules on the
  handler's own definition; their ``name`` comes from ``NAMES_WITHOUT_DEFAULTS`` below (a reading of their
  siblings' names, not WanGP's).
- ``pipeline``: ``PIPELINES`` below, the diffusers 0.42 class that runs the type (the reference's §7 table). Types
  that diffusers covers only with a modular pipeline (animate2, minimax_h3_*, minimax_music3) are null.
- ``defaults``: the file and type keys of the defaults file's model subtree (``DEFAULTS_KEYS``), values as written.
- ``handler_keys``: the keys of ``HANDLER_KEYS`` that ``query_model_def`` returns, minus those it copied unchanged
  from the file; ``model_modes`` and ``sample_solvers`` are reduced to their choice values.

Refreshing when WanGP adds types: point the script at the new checkout, review the diff of the JSON (one row per
line), add the new types' diffusers classes to ``PIPELINES`` (and names to ``NAMES_WITHOUT_DEFAULTS`` for a type
without a defaults file), rerun, then update the counts in ``tests/core/test_base_types_v12.py``.
This script is a maintainer tool: the package never imports it.
"""

from __future__ import annotations

import abc
import argparse
import ast
import copy
import importlib
import importlib.abc
import importlib.machinery
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "wangp_cli" / "core" / "data" / "base_types_v12.json"

#: Folders of a bare git dir's HEAD that the handlers and the table need (text files only).
SOURCE_FOLDERS = ("models", "shared", "postprocessing", "defaults")
SOURCE_SUFFIXES = (".py", ".json", ".txt", ".yaml", ".yml")
#: Installed but incompatible with WanGP's code: always stubbed.
FORCE_STUB = frozenset({"mmgp"})

#: WanGP's fall-backs when a definition sets none (wgp.py get_model_fps, get_model_min_frames_and_step).
DEFAULT_FPS = 16
DEFAULT_FRAMES = (5, 4)

ROW_KEYS = ("id", "name", "handler", "family", "group", "output", "audio", "class", "prompt_types", "fps", "frames",
            "lora_dir", "pipeline", "defaults", "handler_keys", "urls2_keys")
DEFAULTS_KEYS = ("URLs", "URLs2", "modules", "preload_URLs", "loras", "loras_multipliers", "text_encoder_URLs",
                 "text_encoder_folder", "VAE_URLs", "image_outputs", "visible", "dtype")
HANDLER_KEYS = ("dtype", "image_outputs", "audio_only", "returns_audio", "i2v_class", "t2v_class", "vace_class",
                "multitalk_class", "guidance_max_phases", "visible_phases", "multiple_submodels", "no_steps_skipping",
                "sliding_window", "model_modes", "sample_solvers", "parent_model_type", "preload_URLs",
                "text_encoder_URLs", "text_encoder_folder", "text_encoder_type", "frames_minimum", "frames_steps",
                "latent_size", "frames_offset", "fps", "no_negative_prompt", "embedded_guidance",
                "lora_multiplier_branches", "lora_multiplier_phases", "v2i_switch_supported", "inpaint_support",
                "group", "profiles_dir", "compile", "tea_cache", "mag_cache", "ltx2_pipeline",
                # what WanGP's resolution alignment and frame rules read (validate's W8)
                "vae_block_size", "frames_selection_maximum",
                # the capabilities shared/settings_metadata.py's clean_metadata_settings reads (export-settings)
                "flow_shift", "perturbation", "cfg_zero", "cfg_star", "adaptive_projected_guidance", "NAG", "riflex",
                "audio_guidance", "alt_guidance", "alt_scale", "self_refiner", "motion_amplitude", "custom_settings",
                "any_audio_prompt", "sub_parallel_windows", "inference_steps", "duration_slider",
                "pause_between_sentences", "multiple_images_as_text_prompts", "control_net_weight_name",
                "control_net_weight2_name", "control_net_weight_alt_name", "top_p_slider", "top_k_slider",
                "audio_scale_name", "video_guide_outpainting", "input_video_strength", "image_ref_choices")
#: Keys whose value is a list of (label, value) choices, or a dict holding one under "choices".
CHOICE_KEYS = ("model_modes", "sample_solvers")

OUTPUTS = {("audio",): "audio", ("image",): "image", ("image", "video"): "image+video", ("video",): "video"}

NAMES_WITHOUT_DEFAULTS = {
    "lynx_lite": "Wan2.1 Lynx Lite 14B",
    "alpha_lynx": "Wan2.1 Alpha Lynx 14B",
    "scail2_1.3B": "SCAIL-2 1.3B",
    "yue": "YuE",
}

_PIPELINE_TYPES = {
    "WanPipeline": ("t2v", "t2v_1.3B", "t2v_2_2", "ti2v_2_2"),
    "WanImageToVideoPipeline": ("i2v", "flf2v_720p", "fun_inp", "fun_inp_1.3B", "i2v_2_2"),
    "LucyEditPipeline": ("lucy_edit",),
    "WanVACEPipeline": ("vace_14B", "vace_1.3B", "vace_14B_2_2"),
    "WanAnimatePipeline": ("animate",),
    "ChronoEditPipeline": ("chrono_edit",),
    "SkyReelsV2DiffusionForcingPipeline": ("sky_df_1.3B", "sky_df_14B"),
    "HunyuanVideoPipeline": ("hunyuan",),
    "HunyuanVideoImageToVideoPipeline": ("hunyuan_i2v",),
    "HunyuanVideo15Pipeline": ("hunyuan_1_5_t2v",),
    "HunyuanVideo15ImageToVideoPipeline": ("hunyuan_1_5_i2v",),
    "LTXConditionPipeline": ("ltxv_13B",),
    "LTX2Pipeline": ("ltx2_19B", "ltx2_22B", "ltx2_25_22B"),
    "FluxPipeline": ("flux", "flux_schnell"),
    "FluxKontextPipeline": ("flux_dev_kontext",),
    "ChromaPipeline": ("flux_chroma",),
    "Flux2Pipeline": ("flux2_dev",),
    "Flux2KleinPipeline": ("flux2_klein_4b", "flux2_klein_9b"),
    "QwenImagePipeline": ("qwen_image_20B",),
    "QwenImageEditPipeline": ("qwen_image_edit_20B",),
    "QwenImageEditPlusPipeline": ("qwen_image_edit_plus_20B", "qwen_image_edit_plus2_20B"),
    "QwenImageLayeredPipeline": ("qwen_image_layered_20B",),
    "ZImagePipeline": ("z_image", "z_image_base"),
    "ZImageControlNetPipeline": ("z_image_control", "z_image_control2", "z_image_control2_1"),
    "Kandinsky5T2VPipeline": ("k5_lite_t2v", "k5_pro_t2v"),
    "Kandinsky5I2VPipeline": ("k5_lite_i2v", "k5_pro_i2v"),
    "Ideogram4Pipeline": ("ideogram4", "ideogram4_turbotime"),
    "Krea2Pipeline": ("krea2_raw", "krea2_turbo", "krea2_raw_edit", "krea2_turbo_edit"),
    "AceStepPipeline": ("ace_step_v1_5", "ace_step_v1_5_xl"),
    "StableAudio3Pipeline": ("stable_audio3_small", "stable_audio3_medium"),
}
#: Base type -> diffusers 0.42 pipeline class (types not listed: none, or only a modular pipeline).
PIPELINES = {base_type: cls for cls, base_types in _PIPELINE_TYPES.items() for base_type in base_types}


# --- source tree ------------------------------------------------------------------------------------------------

def materialise(source: Path, scratch: Path) -> Path:
    """The WanGP source folder: ``source`` itself for a checkout, else HEAD's text files extracted under ``scratch``."""
    if (source / "wgp.py").is_file():
        return source.resolve()
    listing = subprocess.run(["git", "--git-dir", str(source), "ls-tree", "-r", "HEAD", "wgp.py", *SOURCE_FOLDERS],
                             check=True, capture_output=True, text=True).stdout
    wanted = []
    for line in listing.splitlines():
        meta, path = line.split("\t", 1)
        if meta.split()[1] == "blob" and path.endswith(SOURCE_SUFFIXES):
            wanted.append((meta.split()[2], path))
    batch = subprocess.run(["git", "--git-dir", str(source), "cat-file", "--batch"], check=True, capture_output=True,
                           input="".join(f"{sha}\n" for sha, _ in wanted).encode())
    data, pos = batch.stdout, 0
    for _, path in wanted:
        header_end = data.index(b"\n", pos)
        header = data[pos:header_end].split()
        pos = header_end + 1
        if header[-1] == b"missing":  # a blob the mirror does not hold (large files)
            continue
        size = int(header[2])
        target = scratch / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data[pos:pos + size])
        pos += size + 1
    return scratch


def handler_modules(src: Path) -> list[str]:
    """The dotted names of ``family_handlers`` in ``wgp.py``."""
    for node in ast.walk(ast.parse((src / "wgp.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "family_handlers" for t in node.targets):
            return [ast.literal_eval(item) for item in node.value.elts]
    raise SystemExit("wgp.py has no family_handlers list")


def read_defaults(src: Path) -> dict[str, dict]:
    """``defaults/<id>.json`` by id (whole files)."""
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted((src / "defaults").glob("*.json"))}


# --- importing the handlers with stubs --------------------------------------------------------------------------

class _StubMeta(abc.ABCMeta):
    """Stub classes: any attribute, call, index or iteration gives a stub; real subclasses behave normally."""

    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _stub_class(name)

    def __call__(cls, *args, **kwargs):
        return cls if cls.__dict__.get("_wangp_stub") else super().__call__(*args, **kwargs)

    def __getitem__(cls, key):
        return cls

    def __iter__(cls):
        return iter(())

    def __or__(cls, other):
        return cls

    __ror__ = __or__


def _stub_class(name: str) -> type:
    return _StubMeta(name, (), {"_wangp_stub": True})


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        value = _stub_class(name)
        setattr(self, name, value)
        return value


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Stubs the top-level modules that WanGP's code imports and that are not installed (and FORCE_STUB)."""

    def __init__(self, src: Path):
        self.src = str(src)
        self.stubbed: set[str] = set()

    def find_spec(self, fullname, path, target=None):
        top = fullname.split(".")[0]
        if top in FORCE_STUB or top in self.stubbed:
            return self._spec(fullname, top)
        if "." in fullname or not self._imported_from_src():
            return None
        for finder in sys.meta_path:
            if finder is not self and _safe_find(finder, fullname, path, target) is not None:
                return None
        return self._spec(fullname, top)

    def _spec(self, fullname, top):
        self.stubbed.add(top)
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def _imported_from_src(self) -> bool:
        frame = sys._getframe(2)
        while frame is not None:
            filename = frame.f_code.co_filename
            if not filename.startswith("<frozen") and "importlib" not in filename:
                return filename.startswith(self.src)
            frame = frame.f_back
        return False

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def _safe_find(finder, fullname, path, target):
    try:
        return finder.find_spec(fullname, path, target)
    except (ImportError, ValueError, AttributeError, TypeError):  # a finder that cannot answer for this name
        return None


def _prepare_imports(src: Path, scratch: Path) -> _StubFinder:
    """Stubs, a CUDA-less torch that answers capability queries, a fake ``wgp`` module, and a scratch cwd."""
    import torch
    from transformers.models.auto import auto_factory, configuration_auto

    finder = _StubFinder(src)
    sys.dont_write_bytecode = True  # leave a checkout as it was
    sys.meta_path.insert(0, finder)
    sys.path.insert(0, str(src))
    torch.cuda.get_device_capability = lambda *args, **kwargs: (8, 9)
    torch.cuda.current_device = lambda: 0
    for mapping in (configuration_auto._LazyConfigMapping, auto_factory._LazyAutoMapping):
        original = mapping.register
        mapping.register = lambda self, key, value, exist_ok=False, _original=original: _original(self, key, value,
                                                                                                   exist_ok=True)
    os.chdir(scratch)
    fake_wgp = types.ModuleType("wgp")
    fake_wgp.get_lora_root = lambda: str(scratch / "loras")
    sys.modules["wgp"] = fake_wgp
    return finder


# --- the rows ---------------------------------------------------------------------------------------------------

def main_output(merged: dict) -> str:
    """``infer_main_outputs`` of models/model_metadata.py, as one word."""
    if merged.get("audio_only"):
        return OUTPUTS[("audio",)]
    if merged.get("image_outputs"):
        return OUTPUTS[("image",)]
    if merged.get("v2i_switch_supported") or merged.get("inpaint_support"):
        return OUTPUTS[("image", "video")]
    return OUTPUTS[("video",)]


def type_class(merged: dict, output: str) -> str:
    """t2a, i2v, t2v, t2v+i2v or t2i (see the module docstring)."""
    letters = str(merged.get("image_prompt_types_allowed") or "")
    if output == "audio":
        return "t2a"
    if merged.get("i2v_class"):
        return "i2v"
    if merged.get("t2v_class"):
        return "t2v"
    if "S" in letters:
        return "t2v+i2v" if "T" in letters else "i2v"
    return "t2i" if output == "image" else "t2v"


def json_safe(value):
    """``value`` with tuples as lists, or None when it holds something JSON cannot carry (functions, objects)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        items = [json_safe(item) for item in value]
        return None if any(item is None and orig is not None for item, orig in zip(items, value)) else items
    if isinstance(value, dict):
        items = {str(key): json_safe(item) for key, item in value.items()}
        return None if any(items[str(k)] is None and v is not None for k, v in value.items()) else items
    return None


def choice_values(value) -> list:
    """The values of a ``[(label, value), ...]`` list or of a ``{"choices": [...]}`` dict."""
    choices = value.get("choices", []) if isinstance(value, dict) else value
    return [json_safe(choice[1]) if isinstance(choice, (list, tuple)) else json_safe(choice) for choice in choices]


def select_handler_keys(handler_def: dict, model: dict) -> dict:
    """The HANDLER_KEYS the handler set itself (not copied unchanged from the file), JSON-serialisable."""
    selected = {}
    for key in HANDLER_KEYS:
        if key not in handler_def or (key in model and model[key] == handler_def[key]):
            continue
        value = choice_values(handler_def[key]) if key in CHOICE_KEYS else json_safe(handler_def[key])
        if value is not None or handler_def[key] is None:
            selected[key] = value
    return selected


def urls2_overlay(handler_def: dict, urls2_def: dict | None, model: dict) -> dict:
    """What the handler answers differently for a definition of the type that adds a second transformer
    (``URLs2``: WanGP's handlers key ``multiple_submodels``, guidance phases, ... on it): the changed keys only."""
    if urls2_def is None:
        return {}
    plain, second = select_handler_keys(handler_def, model), select_handler_keys(urls2_def, model)
    return {key: value for key, value in second.items() if plain.get(key, object()) != value}


def build_row(base_type: str, handler_stem: str, family: str, handler_def: dict, lora_dir: str,
              file_def: dict | None, urls2_def: dict | None = None) -> dict:
    """One table row from the handler's answers and the defaults file (None when the type has none)."""
    model = (file_def or {}).get("model", {})
    merged = {**handler_def, **model}
    output = main_output(merged)
    row = {
        "id": base_type,
        "name": model.get("name") or NAMES_WITHOUT_DEFAULTS[base_type],
        "handler": handler_stem,
        "family": family,
        "group": merged.get("group"),
        "output": output,
        "audio": bool(merged.get("returns_audio", False)),
        "class": type_class(merged, output),
        "prompt_types": str(merged.get("image_prompt_types_allowed") or ""),
        "fps": int(merged.get("fps", DEFAULT_FPS)),
        "frames": [int(merged.get("frames_minimum", DEFAULT_FRAMES[0])),
                   int(merged.get("frames_steps", DEFAULT_FRAMES[1]))],
        "lora_dir": lora_dir,
        "pipeline": PIPELINES.get(base_type),
        "defaults": None if file_def is None else {key: model[key] for key in DEFAULTS_KEYS if key in model},
        "handler_keys": select_handler_keys(handler_def, model),
        "urls2_keys": urls2_overlay(handler_def, urls2_def, model),
    }
    return {key: row[key] for key in ROW_KEYS}


def probe(src: Path, scratch: Path) -> tuple[list[dict], set[str]]:
    """Import every handler and build the rows in WanGP's order (handlers, then each one's supported types)."""
    defaults = read_defaults(src)
    finder = _prepare_imports(src, scratch)
    rows, seen = [], set()
    for module_name in handler_modules(src):
        handler = importlib.import_module(module_name).family_handler
        handler_stem = module_name.rsplit(".", 1)[1].removesuffix("_handler")
        for base_type in handler.query_supported_types():
            if base_type in seen:
                raise SystemExit(f"{base_type} is claimed by two handlers")
            seen.add(base_type)
            file_def = defaults.get(base_type)
            model = copy.deepcopy(file_def["model"]) if file_def else {"architecture": base_type}
            model["path"] = os.path.join("defaults", f"{base_type}.json")
            handler_def = handler.query_model_def(base_type, copy.deepcopy(model)) or {}
            urls2_def = None if "URLs2" in model else handler.query_model_def(
                base_type, {**copy.deepcopy(model), "URLs2": ["second_transformer_bf16.safetensors"]}) or {}
            lora_path = handler.get_lora_dir(base_type, argparse.Namespace(), "loras")
            lora_dir = Path(os.path.relpath(lora_path, "loras")).as_posix()
            rows.append(build_row(base_type, handler_stem, handler.query_model_family(), handler_def, lora_dir,
                                  file_def, urls2_def))
    return rows, finder.stubbed


def dump_rows(rows: list[dict]) -> str:
    """A JSON list with one compact row per line."""
    lines = [json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows]
    return "[\n" + ",\n".join(lines) + "\n]\n"


SHIPPED_OUTPUT_NAME = "definitions_v12.json"


def dump_shipped(ids: list[str]) -> str:
    """The ids of every ``defaults/*.json`` WanGP ships (references to them resolve in WanGP), one per line."""
    return "[\n" + ",\n".join(json.dumps(i, ensure_ascii=False) for i in ids) + "\n]\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wangp", type=Path, help="a WanGP checkout or a bare git dir")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    output = args.output.resolve()
    with tempfile.TemporaryDirectory(prefix="wangp-src-") as src_tmp, \
            tempfile.TemporaryDirectory(prefix="wangp-cwd-") as cwd_tmp:
        src = materialise(args.wangp.resolve(), Path(src_tmp))
        rows, stubbed = probe(src, Path(cwd_tmp))
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(dump_rows(rows), encoding="utf-8")
        shipped = output.with_name(SHIPPED_OUTPUT_NAME)
        shipped.write_text(dump_shipped(sorted(read_defaults(src))), encoding="utf-8")
    print(f"{len(rows)} base types -> {output} (stubbed: {', '.join(sorted(stubbed))})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
