"""The WanGP 12 base-type table (wangp_cli/core/data/base_types_v12.json) and its generator (tools/)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLE = REPO_ROOT / "wangp_cli" / "core" / "data" / "base_types_v12.json"
GENERATOR = REPO_ROOT / "tools" / "wangp_base_types.py"
SHARED_DEFAULTS = REPO_ROOT.parent / "shared" / "wangp-head" / "defaults"

ROW_TYPES = {
    "id": str, "name": str, "handler": str, "family": str, "group": (str, type(None)), "output": str, "audio": bool,
    "class": str, "prompt_types": str, "fps": int, "frames": (list, type(None)), "lora_dir": str,
    "pipeline": (str, type(None)), "defaults": (dict, type(None)), "handler_keys": dict, "urls2_keys": dict,
}
#: Handler module stem -> query_model_family() (WanGP 12.60, models/**/<stem>_handler.py).
HANDLER_FAMILIES = {
    "wan": "wan", "ovi": "wan", "df": "wan", "hunyuan": "hunyuan", "ltxv": "ltxv", "ltx2": "ltx2",
    "ltx_audio_tts": "tts", "longcat": "longcat", "minimax_h3": "minimax_h3", "flux": "flux", "qwen": "qwen",
    "kandinsky": "kandinsky5", "z_image": "z_image", "hidream": "hidream", "ideogram4": "ideogram4",
    "krea2": "krea2", "magi_human": "magi_human", "ace_step": "tts", "chatterbox": "tts", "qwen3": "tts",
    "yue": "tts", "heartmula": "tts", "kugelaudio": "tts", "index_tts2": "tts", "stable_audio3": "tts",
    "omnivoice": "tts", "minimax_music3": "tts",
}
OUTPUTS = {"video", "image", "audio", "image+video"}
CLASSES = {"t2v", "i2v", "t2v+i2v", "t2i", "t2a"}
WITHOUT_DEFAULTS = {"lynx_lite", "alpha_lynx", "scail2_1.3B", "yue"}
DEFAULTS_KEYS = {"URLs", "URLs2", "modules", "preload_URLs", "loras", "loras_multipliers", "text_encoder_URLs",
                 "text_encoder_folder", "VAE_URLs", "image_outputs", "visible", "dtype"}
#: diffusers 0.42 pipeline classes a row may name (the reference's §7 table).
PIPELINE_CLASSES = {
    "WanPipeline", "WanImageToVideoPipeline", "LucyEditPipeline", "WanVACEPipeline", "WanAnimatePipeline",
    "ChronoEditPipeline", "SkyReelsV2DiffusionForcingPipeline", "HunyuanVideoPipeline",
    "HunyuanVideoImageToVideoPipeline", "HunyuanVideo15Pipeline", "HunyuanVideo15ImageToVideoPipeline",
    "LTXConditionPipeline", "LTX2Pipeline", "FluxPipeline", "FluxKontextPipeline", "ChromaPipeline", "Flux2Pipeline",
    "Flux2KleinPipeline", "QwenImagePipeline", "QwenImageEditPipeline", "QwenImageEditPlusPipeline",
    "QwenImageLayeredPipeline", "ZImagePipeline", "ZImageControlNetPipeline", "Kandinsky5T2VPipeline",
    "Kandinsky5I2VPipeline", "Ideogram4Pipeline", "Krea2Pipeline", "AceStepPipeline", "StableAudio3Pipeline",
}
SAFE_DIR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: Rows checked against the reference's §1.3 table: (family, output, audio, class, prompt letters).
REFERENCE_ROWS = {
    "t2v": ("wan", "image+video", False, "t2v", "TVL"),
    "i2v": ("wan", "video", False, "i2v", "SEVL"),
    "multitalk": ("wan", "video", True, "i2v", "SVL"),
    "ti2v_2_2": ("wan", "video", False, "t2v+i2v", "TSVL"),
    "chrono_edit": ("wan", "image", False, "i2v", "SEVL"),
    "ovi": ("wan", "video", True, "t2v+i2v", "TSVL"),
    "hunyuan_i2v": ("hunyuan", "video", False, "i2v", "SVL"),
    "ltx2_22B_msr": ("ltx2", "image+video", True, "t2v", "TE"),
    "flux": ("flux", "image", False, "t2i", ""),
    "k5_lite_i2v": ("kandinsky5", "video", False, "i2v", "S"),
    "magi_human": ("magi_human", "video", True, "i2v", "SVL"),
    "ace_step_v1_5": ("tts", "audio", False, "t2a", ""),
}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return json.loads(TABLE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def by_id(rows) -> dict[str, dict]:
    return {row["id"]: row for row in rows}


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("wangp_base_types", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table_has_126_unique_types_from_27_handlers(rows):
    ids = [row["id"] for row in rows]
    assert len(ids) == 126 and len(set(ids)) == 126
    assert {row["handler"] for row in rows} == set(HANDLER_FAMILIES)
    assert {row["id"] for row in rows if row["defaults"] is None} == WITHOUT_DEFAULTS


def test_every_row_has_the_keys_in_order_and_their_types(rows):
    for row in rows:
        assert list(row) == list(ROW_TYPES), row["id"]
        for key, expected in ROW_TYPES.items():
            assert isinstance(row[key], expected), (row["id"], key, row[key])


def test_row_values_are_in_range(rows):
    for row in rows:
        where = row["id"]
        assert row["family"] == HANDLER_FAMILIES[row["handler"]], where
        assert row["output"] in OUTPUTS and row["class"] in CLASSES, where
        assert (row["output"] == "audio") == (row["class"] == "t2a"), where
        assert set(row["prompt_types"]) <= set("TSEVL"), where
        assert type(row["fps"]) is int and row["fps"] > 0, where
        if row["frames"] is not None:
            assert len(row["frames"]) == 2 and all(type(n) is int and n > 0 for n in row["frames"]), where
        assert SAFE_DIR.fullmatch(row["lora_dir"]) and ".." not in row["lora_dir"], where
        if row["defaults"] is not None:
            assert set(row["defaults"]) <= DEFAULTS_KEYS, where
        json.dumps(row["handler_keys"], allow_nan=False)


def test_rows_match_the_reference_table(by_id):
    for base_type, (family, output, audio, klass, letters) in REFERENCE_ROWS.items():
        row = by_id[base_type]
        assert (row["family"], row["output"], row["audio"], row["class"], row["prompt_types"]) == (
            family, output, audio, klass, letters), base_type


def test_known_rows(by_id):
    assert by_id["t2v"]["lora_dir"] == "wan" and by_id["i2v"]["lora_dir"] == "wan_i2v"
    assert by_id["t2v_1.3B"]["lora_dir"] == "wan_1.3B" and by_id["ltx2_22B"]["lora_dir"] == "ltx2"
    assert by_id["t2v_2_2"]["group"] == "wan2_2" and by_id["hunyuan"]["group"] is None
    assert by_id["t2v"]["fps"] == 16 and by_id["hunyuan"]["fps"] == 24 and by_id["ovi"]["frames"] == [121, 120]
    assert by_id["vace_14B"]["defaults"]["URLs"] == "t2v" and by_id["vace_14B"]["handler_keys"]["vace_class"]
    assert by_id["vace_multitalk_14B"]["handler_keys"]["parent_model_type"] == "vace_14B"
    assert by_id["t2v_2_2"]["handler_keys"]["multiple_submodels"] is True
    assert by_id["t2v"]["handler_keys"]["sample_solvers"][0] == "unipc"


def test_pipelines_are_diffusers_classes(rows):
    named = {row["pipeline"] for row in rows} - {None}
    assert named <= PIPELINE_CLASSES
    for modular_only in ("animate2", "minimax_h3_fl2va", "minimax_music3"):
        assert next(row for row in rows if row["id"] == modular_only)["pipeline"] is None
    try:
        init = importlib.metadata.distribution("diffusers").locate_file("diffusers/__init__.py")
        exported = Path(init).read_text(encoding="utf-8")
    except (importlib.metadata.PackageNotFoundError, OSError):
        pytest.skip("diffusers is not installed")
    for name in named:  # listed in diffusers' lazy _import_structure
        assert f'"{name}"' in exported, name


def test_table_file_is_one_compact_row_per_line(rows, generator):
    assert TABLE.read_text(encoding="utf-8") == generator.dump_rows(rows)
    assert tuple(ROW_TYPES) == generator.ROW_KEYS


def test_generator_output_and_class_rules(generator):
    assert generator.main_output({"audio_only": True, "image_outputs": True}) == "audio"
    assert generator.main_output({"image_outputs": True, "inpaint_support": True}) == "image"
    assert generator.main_output({"v2i_switch_supported": True}) == "image+video"
    assert generator.main_output({}) == "video"
    assert generator.type_class({"image_prompt_types_allowed": "TSVL"}, "video") == "t2v+i2v"
    assert generator.type_class({"image_prompt_types_allowed": "SVL"}, "video") == "i2v"
    assert generator.type_class({"t2v_class": True, "image_prompt_types_allowed": "TSV"}, "video") == "t2v"
    assert generator.type_class({"i2v_class": True}, "image") == "i2v"
    assert generator.type_class({}, "image") == "t2i"
    assert generator.type_class({"image_prompt_types_allowed": "S"}, "audio") == "t2a"


def test_generator_handler_keys_skip_copied_and_unserialisable_values(generator):
    handler_def = {"fps": 24, "URLs": ["a"], "dtype": "bf16", "compile": ("transformer",), "tea_cache": len,
                   "model_modes": {"choices": [("Global", 0), ("Style", 1)]}, "sample_solvers": [("UniPC", "unipc")]}
    selected = generator.select_handler_keys(handler_def, {"dtype": "bf16", "fps": 16})
    assert selected == {"model_modes": [0, 1], "sample_solvers": ["unipc"], "fps": 24, "compile": ["transformer"]}


def test_the_package_never_imports_the_generator():
    importing = re.compile(r"^\s*(from\s+tools\b|import\s+tools\b|.*\bimport\s+wangp_base_types\b)", re.MULTILINE)
    for path in (REPO_ROOT / "wangp_cli").rglob("*.py"):
        assert not importing.search(path.read_text(encoding="utf-8")), path


def test_every_self_named_wangp_default_is_a_row(by_id):
    if not SHARED_DEFAULTS.is_dir():
        pytest.skip("../shared/wangp-head not present")
    checked = 0
    for path in sorted(SHARED_DEFAULTS.glob("*.json")):
        model = json.loads(path.read_text(encoding="utf-8"))["model"]
        if model.get("architecture") != path.stem:
            continue
        row = by_id.get(path.stem)
        assert row is not None, path.name
        assert row["defaults"] == {key: model[key] for key in DEFAULTS_KEYS if key in model}, path.name
        assert row["family"] == HANDLER_FAMILIES[row["handler"]], path.name
        if model.get("audio_only"):
            assert row["output"] == "audio", path.name
        elif model.get("image_outputs"):
            assert row["output"] == "image", path.name
        if "group" in model:
            assert row["group"] == model["group"], path.name
        checked += 1
    assert checked > 0
