"""The v12 key tables: types of WanGP 12's model and settings keys, dead and tolerated keys, ranges."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wangp_cli.core import keys as K
from wangp_cli.core.schema import check

HEAD = Path(__file__).resolve().parents[2] / ".." / "shared" / "wangp-head"


def ok(value, name, table=K.MODEL_KEYS_V12):
    return check(value, table[name].schema) is None


@pytest.mark.parametrize("value", [
    [["https://h/vace_mbf16.safetensors", "https://h/vace_quanto_mbf16_int8.safetensors"]],
    ["vace_14B", "lynx"], [{"URLs": ["https://h/a.safetensors"], "URLs2": ["https://h/b.safetensors"]}],
    "ltx2_22B_edit_anything", [["a.safetensors"], "vace_14B"],
])
def test_modules_forms(value):
    assert ok(value, "modules")


@pytest.mark.parametrize("value", [[[]], [""], "", [3], [{"URLs": "x"}]])
def test_modules_refused(value):
    assert not ok(value, "modules")


def test_reference_and_list_forms():
    for name in ("URLs", "URLs2", "loras", "text_encoder_URLs", "preload_URLs"):
        assert ok(["https://h/a.safetensors"], name) and ok("t2v_2_2", name) and not ok("", name)
    assert ok(["1;0", 0.5], "loras_multipliers") and ok("i2v_2_2_svi2pro", "loras_multipliers")
    assert not ok([[1]], "loras_multipliers")
    assert ok("https://h/vae.safetensors", "VAE_URLs") and ok(["x"], "VAE_URLs")
    assert ok({"_name": "x", "fast": {"URLs": []}}, "configs") and ok("t2v", "configs") and not ok(3, "configs")


def test_model_key_types():
    assert ok("bf16", "dtype") and ok("fp16", "dtype") and not ok("int8", "dtype")
    assert ok([["1024x1024 (1:1)", "1024x1024"]], "resolutions") and not ok([["1024x1024"]], "resolutions")
    assert ok({"<89": "sdpa"}, "attention") and ok({"type": "nabla", "P": 0.9}, "attention")
    assert ok("models/x.safetensors", "source") and ok(17, "frames_minimum") and not ok("17", "frames_steps")
    assert K.model_key("URLs2", "v12").since == "v12"
    assert K.model_key("URLs2", "july") is None  # July does not know it: a later key
    assert "URLs2" in K.LATER_MODEL_KEYS and "text_encoder_URLs" in K.LATER_MODEL_KEYS


def test_dead_and_tolerated_keys():
    assert "profiles_dir" in K.dead_key("settings_dir") and "2025-10" in K.dead_key("settings_dir")
    assert K.dead_key("profile_dirs") and K.dead_key("xresolutions") and K.dead_key("URLs") is None
    assert "'sample_solver' was meant" in K.tolerated_setting("sampler_solver")
    assert "'num_inference_steps' was meant" in K.tolerated_setting("sampling_steps")
    assert K.tolerated_setting("seed") is None


@pytest.mark.parametrize("name, good, bad", [
    ("model_mode", [0, "en", None], [1.5, []]),
    ("multi_prompts_gen_type", [0, 1, 2, "G", "PG", "W", "PW", "FG"], ["X", "g", 1.5]),
    ("video_length", [81, "10s", "5.5s"], ["10", "s", "1.s", 8.5]),
    ("force_fps", ["", "auto", "control", 24, 23.976], [None]),
    ("custom_settings", [{"speech_speed": 1.0}], ["x"]),
    ("config", [",,,fast"], [1]),
    ("perturbation_layers", [[9, 10]], [[9.5], 9]),
    ("guidance_phases", [1, 2, 3], ["2"]),
    ("switch_threshold", [875], [[875]]),
    ("image_start", ["start.png", ["a.png", "b.png"], None], [3]),
])
def test_settings_types(name, good, bad):
    for value in good:
        assert ok(value, name, K.SETTINGS_KEYS_V12), value
    for value in bad:
        assert not ok(value, name, K.SETTINGS_KEYS_V12), value


def test_legacy_settings_are_documented_as_migrated():
    assert "2.54" in K.settings_key("slg_switch", "v12").description
    assert "every file" in K.settings_key("tea_cache_setting", "v12").description
    assert K.LEGACY_SETTINGS["slg_layers"] == K.Legacy("perturbation_layers", 2.54)
    assert K.settings_key("lset_name", "v12") is None and K.settings_key("lset_name", "july") is not None


def test_july_tables_unchanged_for_july_keys():
    assert K.settings_key("model_mode", "july").schema == K.INTEGER
    assert K.settings_keys("v6") is K.SETTINGS_KEYS and K.model_keys("july") is K.MODEL_KEYS
    assert "perturbation_switch" in K.LATER_SETTINGS_KEYS and "model_mode" not in K.LATER_SETTINGS_KEYS
    assert K.media_keys("july") == K.MEDIA_KEYS and "custom_guide" in K.media_keys("v12")


def test_ranges():
    assert K.range_problem("guidance_scale", 0, "v12") is None  # distilled models turn guidance off
    assert K.range_problem("guidance_scale", 0, "july")  # WanGP 6/7: 1..20
    assert K.range_problem("num_inference_steps", 0, "v12") == "'num_inference_steps' is 0, outside WanGP's range 1..100"
    assert K.range_problem("num_inference_steps", 0, "v12", {"audio_only": True}) is None
    assert K.range_problem("multi_prompts_gen_type", "FG", "v12") is None
    assert K.range_problem("multi_prompts_gen_type", 5, "v12")
    assert K.range_problem("seed", True, "v12") is None


_leaf = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.sampled_from(
    ["", "x", "10s", "5.5s", "FG", "bf16", "t2v", "https://h/x.safetensors"])
_values = st.recursive(_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
    ["URLs", "URLs2", "x"]), c, max_size=2), max_leaves=8)
_V12 = [(f"model.{k}", v.schema) for k, v in K.MODEL_KEYS_V12.items() if v.schema] + \
       [(k, v.schema) for k, v in K.SETTINGS_KEYS_V12.items() if v.schema]


def test_v12_fragments_are_json_schema():
    for _, fragment in _V12:
        jsonschema.Draft202012Validator.check_schema(fragment)


@settings(max_examples=400, deadline=None)
@given(entry=st.sampled_from(_V12), value=_values)
def test_v12_fragments_agree_with_jsonschema(entry, value):
    name, fragment = entry
    assert (check(value, fragment) is None) == jsonschema.Draft202012Validator(fragment).is_valid(value), (name, value)


def test_wangp_head_defaults_pass_the_v12_types():
    if not HEAD.is_dir():
        pytest.skip("../shared/wangp-head not present")
    problems = []
    for path in sorted((HEAD / "defaults").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        for name, value in data.pop("model").items():
            key = K.model_key(name, "v12")
            if key is None:
                assert K.dead_key(name), (path.name, name)
            elif check(value, key.schema):
                problems.append((path.name, name, check(value, key.schema)))
        for name, value in data.items():
            key = K.settings_key(name, "v12")
            if key is None:
                assert K.tolerated_setting(name), (path.name, name)
            elif check(value, key.schema):
                problems.append((path.name, name, check(value, key.schema)))
    baseline = json.loads((HEAD / "models_settings.json").read_text(encoding="utf-8"))
    problems += [(n, v) for n, v in baseline.items() if check(v, K.settings_key(n, "v12").schema)]
    assert problems == []
