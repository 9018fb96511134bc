"""Validation rules (definition-format.md §11, CODES in validation.py): one triggering file per code."""

from __future__ import annotations

import json
import os

import jsonschema
import pytest
from hypothesis import given, settings, strategies as st

from conftest import HF_ME, SHIPPED_DEFINITIONS, definition, position, write_definition
from wangp_cli.core import keys as K
from wangp_cli.core.errors import UsageError
from wangp_cli.core.home import Home
from wangp_cli.core.schema import check, definition_schema
from wangp_cli.core.validation import CODES, validate_paths


def validate(home, data_or_text, model_id="t2v_test", *, target="july", ignore=()):
    """Write one definition and validate it: (file text, diagnostics of that file)."""
    path = write_definition(home, model_id, data_or_text)
    report = validate_paths([str(path)], Home(home), target=target, ignore=ignore)
    assert report.files == 1
    return path.read_text(encoding="utf-8", errors="replace"), report.diagnostics


def value_at(text, key, occurrence=0):
    """(line, column) of the value of ``"key": value`` as json.dumps writes it."""
    line, column = position(text, f'"{key}": ', occurrence)
    return line, column + len(f'"{key}": ')


def codes(diagnostics):
    return sorted({d.code for d in diagnostics})


def at(diagnostics, code):
    """(line, column) of every finding with ``code``."""
    return [(d.line, d.column) for d in diagnostics if d.code == code]


def test_every_code_is_documented():
    expected = [f"E{i}" for i in range(1, 15)] + [f"W{i}" for i in range(1, 14)]
    assert sorted(CODES, key=lambda c: (c[0], int(c[1:]))) == expected


def test_clean_definition_has_no_findings(home):
    for target in ("v6", "july"):
        _, found = validate(home, definition(), target=target)
        assert found == []


# -- shipped definitions --------------------------------------------------------------------------------------------

def test_shipped_definitions_exist():
    assert len(SHIPPED_DEFINITIONS) >= 6


@pytest.mark.parametrize("target", ["v6", "july"])
def test_shipped_definitions_have_no_errors(shipped_home, target):
    report = validate_paths(None, Home(shipped_home), target=target)
    assert report.files == len(SHIPPED_DEFINITIONS)
    assert [str(d) for d in report.diagnostics if d.severity == "error"] == []


# -- errors ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    '{\n    "model": {\n        "name": "x",\n    }\n}',
    '{"model": {"name": "x"} "seed": 1}',
    "",
    '{\n\t"model": {\n\t\t"URLs": [\n\t\t\t"a"\n\t\t\t"b"\n\t\t]\n\t}\n}',
])
def test_e1_invalid_json_at_the_parser_position(home, text):
    _, found = validate(home, text)
    with pytest.raises(json.JSONDecodeError) as error:
        json.loads(text)
    assert codes(found) == ["E1"]
    assert at(found, "E1") == [(error.value.lineno, error.value.colno)]


@pytest.mark.parametrize("text", ["[1, 2]", '"model"', "null", "42"])
def test_e1_not_an_object(home, text):
    _, found = validate(home, text)
    assert codes(found) == ["E1"] and at(found, "E1") == [(1, 1)]


def test_e1_not_utf8(home):
    _, found = validate(home, b'{\n  "model": {"name": "\xe9t\xe9"}\n}')
    # line 2 is '  "model": {"name": "' (21 characters) before the Latin-1 byte
    assert codes(found) == ["E1"] and at(found, "E1") == [(2, 22)]


def test_e2_no_model(home):
    text, found = validate(home, '{"seed": -1, "prompt": "x"}')
    assert at(found, "E2") == [(1, 1)]


def test_e2_model_not_an_object(home):
    text, found = validate(home, {"model": ["t2v"], "seed": -1})
    assert at(found, "E2") == [position(text, '[')]


def test_e3_missing_name_is_reported_at_the_model_key(home):
    text, found = validate(home, definition(name=None))
    assert at(found, "E3") == [position(text, '"model"')]


@pytest.mark.parametrize("key", ["name", "architecture", "description"])
def test_e3_not_a_string(home, key):
    text, found = validate(home, definition(**{key: 5}))
    assert at(found, "E3") == [value_at(text, key)]


def test_e3_legacy_base_without_architecture(home):
    text, found = validate(home, definition(architecture=None, base="t2v"))
    assert at(found, "E3") == [position(text, '"base"')]
    assert at(found, "W11") == [position(text, '"base"')]


@pytest.mark.parametrize("arch", ["t2v_14B", "T2V", ""])
def test_e4_unknown_architecture(home, arch):
    text, found = validate(home, definition(architecture=arch))
    assert at(found, "E4") == [position(text, f'"{arch}"')]


def test_e4_architecture_names_a_finetune(home):
    write_definition(home, "t2v_other", definition())
    text, found = validate(home, definition(architecture="t2v_other"))
    assert at(found, "E4") == [position(text, '"t2v_other"')]


@pytest.mark.parametrize("arch", ["multitalk", "vace_multitalk_14B"])
def test_e4_july_architecture_under_v6(home, arch):
    data = definition(architecture=arch)
    text, found = validate(home, data, target="v6")
    assert at(found, "E4") == [position(text, f'"{arch}"')]
    _, found = validate(home, data, target="july")
    assert "E4" not in codes(found)


def test_e5_urls_missing_is_reported_at_the_model_key(home):
    text, found = validate(home, definition(URLs=None))
    assert at(found, "E5") == [position(text, '"model"')]


@pytest.mark.parametrize("urls, needle", [
    ([], None),
    (5, None),
    ({"a": "b"}, None),
    ([HF_ME + "a_bf16.safetensors", ""], '""'),
    ([HF_ME + "a_bf16.safetensors", 12345], "12345"),
    ([HF_ME + "a_bf16.safetensors", None], "null"),
])
def test_e5_urls_not_a_list_of_non_empty_strings(home, urls, needle):
    text, found = validate(home, definition(URLs=urls))
    assert at(found, "E5") == [position(text, needle) if needle else value_at(text, "URLs")]


def test_e5_urls_string_under_july_is_allowed_but_must_resolve_to_files(home):
    write_definition(home, "t2v_nofiles", {"model": {"name": "n", "architecture": "t2v", "description": "d"}})
    text, found = validate(home, definition(URLs="t2v_nofiles"))
    assert at(found, "E5") == [position(text, '"t2v_nofiles"')]


def test_e6_string_reference_under_v6(home):
    text, found = validate(home, definition(URLs="t2v"), target="v6")
    assert at(found, "E6") == [position(text, '"t2v"', 1)]  # the second "t2v" is the reference (first: architecture)


@pytest.mark.parametrize("prop", ["URLs", "modules", "preload_URLs", "loras"])
def test_e6_unresolved_reference_under_july(home, prop):
    text, found = validate(home, definition(**{prop: "no_such_model"}))
    assert at(found, "E6") == [position(text, '"no_such_model"')]


def test_e6_self_reference(home):
    text, found = validate(home, definition(URLs="t2v_test"))
    assert at(found, "E6") == [position(text, '"t2v_test"')]


def test_e6_cycle_is_reported_in_both_files(home):
    write_definition(home, "t2v_a", definition(URLs="t2v_b"))
    write_definition(home, "t2v_b", definition(URLs="t2v_a"))
    report = validate_paths(None, Home(home))
    assert sorted(os.path.basename(d.path) for d in report.diagnostics if d.code == "E6") == \
        ["t2v_a.json", "t2v_b.json"]


def _chain(home, references):
    """t2v_c0 -> t2v_c1 -> ... -> t2v_c<references>, the last one holding real URLs."""
    for index in range(references):
        write_definition(home, f"t2v_c{index}", definition(URLs=f"t2v_c{index + 1}"))
    write_definition(home, f"t2v_c{references}", definition())
    report = validate_paths([str(home / "finetunes" / "t2v_c0.json")], Home(home))
    return [d for d in report.diagnostics if d.code in ("E5", "E6")]


def test_reference_chain_of_ten_resolves(home):
    assert _chain(home, 10) == []


def test_reference_chain_deeper_than_ten_is_e6(home):
    found = _chain(home, 12)
    assert [d.code for d in found] == ["E6"]


def test_reference_chain_of_eleven_resolves_as_in_wangp(home):
    assert _chain(home, 11) == []


def test_reference_to_a_base_id_and_to_a_finetune_resolve(home):
    fusionix = next(p for p in SHIPPED_DEFINITIONS if p.name == "t2v_fusionix.json")
    write_definition(home, "t2v_fusionix", fusionix.read_text(encoding="utf-8"))
    _, found = validate(home, definition(URLs="t2v"))
    assert found == []
    _, found = validate(home, definition(URLs="t2v_fusionix"))
    assert found == []
    _, found = validate(home, definition(architecture="vace_14B", URLs="t2v", modules="vace_14B"))
    assert "E6" not in codes(found) and "E8" not in codes(found)


@pytest.mark.parametrize("url", [
    "ftp://example.com/x_bf16.safetensors",
    "s3://bucket/x_bf16.safetensors",
    "file:///tmp/x_bf16.safetensors",
    "https://example.com/models/",
    "https://example.com/models/%2e%2e",
    "https://example.com/models/..%2Fx_bf16.safetensors",
])
def test_e7_unusable_url(home, url):
    text, found = validate(home, definition(URLs=[HF_ME + "a_bf16.safetensors", url]))
    assert at(found, "E7") == [position(text, json.dumps(url))]


def test_e7_in_preload_urls(home):
    text, found = validate(home, definition(preload_URLs=["ftp://example.com/map.json"]))
    assert at(found, "E7") == [position(text, '"ftp://')]


@pytest.mark.parametrize("target, module", [("july", "vace_1.3B"), ("july", "Vace_14B"), ("july", ""),
                                            ("v6", "fantasy"), ("v6", "multitalk")])
def test_e8_unknown_module_for_the_target(home, target, module):
    text, found = validate(home, definition(architecture="vace_14B", modules=["vace_14B", module]), target=target)
    assert at(found, "E8") == [position(text, f'"{module}"')]


@pytest.mark.parametrize("target, modules", [("v6", ["vace_14B"]), ("july", ["vace_14B", "fantasy", "multitalk"])])
def test_e8_not_for_modules_of_the_target(home, target, modules):
    _, found = validate(home, definition(architecture="vace_14B", modules=modules), target=target)
    assert "E8" not in codes(found)


def test_e9_seed_required_by_v6_only(home):
    data = definition()
    del data["seed"]
    _, found = validate(home, data, target="v6")
    assert at(found, "E9") == [(1, 1)]
    _, found = validate(home, data, target="july")
    assert "E9" not in codes(found)


def test_e9_not_when_a_settings_file_supplies_the_defaults(home):
    data = definition()
    del data["seed"]
    (home / "settings" / "t2v_test_settings.json").write_text('{"seed": 5}', encoding="utf-8")
    write_definition(home, "t2v_test", data)
    report = validate_paths([str(home / "finetunes" / "t2v_test.json")], Home(home), target="v6")
    assert "E9" not in codes(report.diagnostics)


@pytest.mark.parametrize("key, value", [
    ("video_length", "81"),
    ("video_length", 81.5),
    ("resolution", "832*480"),
    ("resolution", 832),
    ("seed", "-1"),
    ("seed", True),
    ("num_inference_steps", None),
    ("guidance_scale", "5"),
    ("activated_loras", "lora.safetensors"),
    ("slg_layers", [9, "10"]),
    ("prompt", ["a", "b"]),
])
def test_e10_settings_key_with_the_wrong_type(home, key, value):
    data = definition()
    data[key] = value
    text, found = validate(home, data)
    assert at(found, "E10") == [position(text, '"10"') if key == "slg_layers" else value_at(text, key)]


def test_e10_is_checked_for_v6_too(home):
    data = definition()
    data["video_length"] = "81"
    _, found = validate(home, data, target="v6")
    assert "E10" in codes(found)


@pytest.mark.parametrize("multipliers, needle", [(["0.5"], '"0.5"'), (1.0, None), ([1.0, 0.5], None)])
def test_e11_model_loras_multipliers(home, multipliers, needle):
    data = definition(loras=[HF_ME + "style_lora.safetensors"], loras_multipliers=multipliers)
    text, found = validate(home, data)
    assert at(found, "E11") == [position(text, needle) if needle else value_at(text, "loras_multipliers")]


def test_e11_not_for_fewer_multipliers_than_loras(home):
    data = definition(loras=[HF_ME + "a_lora.safetensors", HF_ME + "b_lora.safetensors"], loras_multipliers=[0.5])
    _, found = validate(home, data)
    assert "E11" not in codes(found)


@pytest.mark.parametrize("entry", ["../outside_bf16.safetensors", "ckpts/../../x_bf16.safetensors",
                                   "/definitely/not/in/home/x_bf16.safetensors"])
def test_e12_local_path_escapes_the_home(home, entry):
    text, found = validate(home, definition(URLs=[entry]))
    assert at(found, "E12") == [position(text, json.dumps(entry))]


def test_e12_absolute_path_inside_the_home_is_allowed(home):
    inside = str(home / "ckpts" / "mine_bf16.safetensors")
    _, found = validate(home, definition(URLs=[inside]))
    assert "E12" not in codes(found) and "W5" in codes(found)


@pytest.mark.parametrize("key, value, needle", [
    ("auto_quantize", "yes", None),
    ("visible", "false", None),
    ("teacache_coefficients", [1, 2, 3], None),
    ("teacache_coefficients", [1, 2, 3, 4, "5"], '"5"'),
    ("image_outputs", 1, None),
    ("lock_inference_steps", None, None),
    ("author", ["me"], None),
    ("modules", 7, None),
    ("modules", ["vace_14B", 7], "7\n"),
    ("sha256", {"https://x/y": "not-a-sha"}, '"not-a-sha"'),
    ("LTXV_config", False, None),
])
def test_e13_model_key_with_the_wrong_type(home, key, value, needle):
    data = definition(**{key: value})
    if value is None:
        data["model"][key] = None
    text, found = validate(home, data)
    assert at(found, "E13") == [position(text, needle) if needle else value_at(text, key)]


# -- warnings -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["my_finetune.safetensors", "My_Finetune_BF16.safetensors",
                                  "my_finetune_quanto_bf16.safetensors", "my_QUANTO_bf16_int8.safetensors"])
def test_w1_file_name_tokens(home, name):
    text, found = validate(home, definition(URLs=[HF_ME + name]))
    assert at(found, "W1") == [position(text, json.dumps(HF_ME + name))]


def test_w1_not_for_quanto_int8_without_dtype(home):
    _, found = validate(home, definition(URLs=[HF_ME + "a_bf16.safetensors", HF_ME + "a_quanto_int8.safetensors"]))
    assert "W1" not in codes(found)


def test_w2_two_urls_share_a_basename(home):
    urls = [HF_ME + "a_bf16.safetensors", "https://example.com/mirror/a_bf16.safetensors"]
    text, found = validate(home, definition(URLs=urls))
    assert at(found, "W2") == [position(text, '"https://example.com')]


def test_w2_query_string_in_the_basename(home):
    url = HF_ME + "a_bf16.safetensors?download=true"
    text, found = validate(home, definition(URLs=[url]))
    assert at(found, "W2") == [position(text, json.dumps(url))]


def test_w3_second_file_for_the_same_variant(home):
    urls = [HF_ME + "a_bf16.safetensors", HF_ME + "b_bf16.safetensors", HF_ME + "a_quanto_fp16_int8.safetensors",
            HF_ME + "b_quanto_fp16_int8.safetensors"]
    text, found = validate(home, definition(URLs=urls))
    assert at(found, "W3") == [position(text, '"' + HF_ME + "b_bf16"), position(text, '"' + HF_ME + "b_quanto")]


@pytest.mark.parametrize("url", [
    "https://huggingface.co/me/ft/blob/main/a_bf16.safetensors",
    "https://huggingface.co/me/ft/resolve/v1.0/a_bf16.safetensors",
    "https://hf.co/me/ft/resolve/main/a_bf16.safetensors",
    "http://huggingface.co/me/ft/resolve/main/a_bf16.safetensors",
])
def test_w4_hugging_face_url_form(home, url):
    text, found = validate(home, definition(URLs=[url]))
    assert at(found, "W4") == [position(text, json.dumps(url))]


def test_w4_not_for_other_hosts(home):
    _, found = validate(home, definition(URLs=["https://example.com/a_bf16.safetensors"]))
    assert "W4" not in codes(found)


def test_w5_local_path(home):
    (home / "ckpts" / "mine_bf16.safetensors").write_bytes(b"")
    text, found = validate(home, definition(URLs=["ckpts/mine_bf16.safetensors", "ckpts/gone_fp16.safetensors"]))
    assert at(found, "W5") == [position(text, '"ckpts/mine'), position(text, '"ckpts/gone')]


def test_w6_auto_quantize_with_modules(home):
    data = definition(architecture="vace_14B", modules=["vace_14B"], auto_quantize=True,
                      URLs=[HF_ME + "a_bf16.safetensors"])
    text, found = validate(home, data)
    assert at(found, "W6") == [position(text, '"auto_quantize"')]
    data["model"].pop("modules")
    _, found = validate(home, data)
    assert "W6" not in codes(found)


def test_w7_unknown_and_later_keys(home):
    data = definition(URLs2=[HF_ME + "b_bf16.safetensors"], my_note="hi")
    data["batch_size"] = 2
    data["my_setting"] = 1
    data["image_start"] = "start.png"
    text, found = validate(home, data)
    assert at(found, "W7") == sorted(position(text, f'"{k}"') for k in
                                     ("URLs2", "my_note", "batch_size", "my_setting", "image_start"))


def test_w7_july_keys_under_v6(home):
    data = definition(visible=False, image_outputs=True)
    data["skip_steps_multiplier"] = 1.5
    text, found = validate(home, data, target="v6")
    assert at(found, "W7") == sorted(position(text, f'"{k}"') for k in
                                     ("visible", "image_outputs", "skip_steps_multiplier"))
    _, found = validate(home, data, target="july")
    assert "W7" not in codes(found)


@pytest.mark.parametrize("key, value", [
    ("num_inference_steps", 500),
    ("guidance_scale", 0.5),
    ("seed", -2),
    ("seed", 1_000_000_000),
    ("flow_shift", 30),
    ("video_length", 80),  # Wan: 4k+1
    ("video_length", 197),  # above 193
    ("resolution", "100x100"),
    ("tea_cache_setting", 1.6),
])
def test_w8_value_outside_the_ui_range(home, key, value):
    data = definition()
    data[key] = value
    text, found = validate(home, data, target="v6")
    line, column = position(text, f'"{key}": ')
    assert at(found, "W8") == [(line, column + len(f'"{key}": '))]


@pytest.mark.parametrize("key, value", [("video_length", 81), ("video_length", 5), ("video_length", 193),
                                        ("resolution", "1280x720"), ("tea_cache_setting", 2.25), ("seed", 0)])
def test_w8_not_for_values_in_range(home, key, value):
    data = definition()
    data[key] = value
    _, found = validate(home, data, target="v6")
    assert "W8" not in codes(found)


def test_w8_hunyuan_frame_range(home):
    data = definition(architecture="hunyuan", URLs=[HF_ME + "h_bf16.safetensors"])
    data["video_length"] = 253  # 4k+1 and within Hunyuan's 5..337, above Wan's 193
    _, found = validate(home, data)
    assert "W8" not in codes(found)


def test_w9_id_equals_a_base_id(home):
    _, found = validate(home, definition(), model_id="t2v")
    assert at(found, "W9") == [(1, 1)]


def test_w9_override_of_a_defaults_definition_with_settings(home):
    write_definition(home, "t2v_mine", definition(), folder="defaults")
    _, found = validate(home, definition(), model_id="t2v_mine")
    assert at(found, "W9") == [(1, 1)]
    _, found = validate(home, {"model": {"name": "Renamed"}}, model_id="t2v_mine")
    assert "W9" not in codes(found)


@pytest.mark.parametrize("arch, warned", [("ltxv_13B", True), ("fun_inp", True), ("sky_df_14B", True),
                                          ("t2v", False), ("i2v", False), ("i2v_720p", False), ("vace_14B", False),
                                          ("hunyuan", False), ("hunyuan_i2v", False)])
def test_w10_untested_architectures(home, arch, warned):
    text, found = validate(home, definition(architecture=arch))
    assert at(found, "W10") == ([position(text, f'"{arch}"')] if warned else [])


def test_w11_legacy_base_key(home):
    text, found = validate(home, definition(base="t2v"))
    assert at(found, "W11") == [position(text, '"base"')]
    assert "E3" not in codes(found)


def test_w12_duplicate_key_at_the_later_key(home):
    text = ('{\n  "model": {\n    "name": "a",\n    "architecture": "t2v",\n    "description": "d",\n'
            f'    "URLs": ["{HF_ME}a_bf16.safetensors"],\n    "name": "b"\n  }},\n  "seed": -1,\n  "seed": 1\n}}\n')
    text, found = validate(home, text)
    assert at(found, "W12") == [position(text, '"name"', 1), position(text, '"seed"', 1)]


# -- targets, files, options ----------------------------------------------------------------------------------------

def test_diagnostics_are_sorted_by_path_line_column(home):
    write_definition(home, "t2v_b", definition(architecture="nope", URLs=["ftp://x/y_bf16.safetensors"]))
    write_definition(home, "t2v_a", definition(name=1, URLs=[HF_ME + "plain.safetensors"]))
    report = validate_paths(None, Home(home))
    keys = [(d.path, d.line, d.column) for d in report.diagnostics]
    assert keys == sorted(keys) and len(keys) >= 4


def test_one_bad_file_never_stops_the_others(home):
    write_definition(home, "t2v_1_broken", "{ not json")
    write_definition(home, "t2v_2_noarch", definition(architecture="t2v_14B"))
    write_definition(home, "t2v_3_binary", b"\x00\xff\xfe")
    write_definition(home, "t2v_4_clean", definition())
    write_definition(home, "t2v_5_list", "[]")
    report = validate_paths(None, Home(home))
    assert report.files == 5
    by_file = {}
    for d in report.diagnostics:
        by_file.setdefault(os.path.basename(d.path), set()).add(d.code)
    assert by_file == {"t2v_1_broken.json": {"E1"}, "t2v_2_noarch.json": {"E4"}, "t2v_3_binary.json": {"E1"},
                       "t2v_5_list.json": {"E1"}}


def test_paths_as_given_and_folders_expanded(home, monkeypatch):
    write_definition(home, "t2v_x", definition(architecture="nope"))
    monkeypatch.chdir(home)
    report = validate_paths(["finetunes"], Home("."))
    assert {d.path for d in report.diagnostics} == {os.path.join("finetunes", "t2v_x.json")}
    report = validate_paths(["finetunes/t2v_x.json"], Home("."))
    assert {d.path for d in report.diagnostics} == {"finetunes/t2v_x.json"}


def test_missing_path_is_a_usage_error(home):
    with pytest.raises(UsageError) as error:
        validate_paths([str(home / "nope.json")], Home(home))
    assert error.value.exit_code == 2


def test_unknown_target_is_a_usage_error(home):
    with pytest.raises(UsageError):
        validate_paths(None, Home(home), target="v7")


def test_missing_finetunes_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        validate_paths(None, Home(tmp_path))


def test_ignore_codes_and_severities(home):
    data = definition(architecture="fun_inp", my_key=1)
    data["video_length"] = "81"
    _, found = validate(home, data)
    assert codes(found) == ["E10", "W10", "W7"]
    _, found = validate(home, data, ignore=("W7",))
    assert codes(found) == ["E10", "W10"]
    _, found = validate(home, data, ignore=("W",))
    assert codes(found) == ["E10"]
    _, found = validate(home, data, ignore=("E10", "W10"))
    assert codes(found) == ["W7"]


def test_report_counts(home):
    write_definition(home, "t2v_a", definition(architecture="nope", my_key=1))
    write_definition(home, "t2v_b", definition())
    report = validate_paths(None, Home(home))
    assert (report.files, report.errors, report.warnings) == (2, 1, 1)
    assert report.failed() and report.failed(strict=True)
    report = validate_paths(None, Home(home), ignore=("E",))
    assert not report.failed() and report.failed(strict=True)


# -- JSON Schema ----------------------------------------------------------------------------------------------------

def test_definition_schema_is_a_valid_draft_2020_12_schema():
    schema = definition_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", SHIPPED_DEFINITIONS, ids=lambda p: p.name)
def test_shipped_definitions_validate_against_the_schema(path):
    jsonschema.Draft202012Validator(definition_schema()).validate(json.loads(path.read_text(encoding="utf-8")))


def test_schema_rejects_what_validate_calls_an_error(home):
    validator = jsonschema.Draft202012Validator(definition_schema())
    assert not validator.is_valid({"seed": -1})  # E2
    assert not validator.is_valid(definition(name=None))  # E3
    assert not validator.is_valid(definition(URLs=[]))  # E5
    assert not validator.is_valid({**definition(), "video_length": "81"})  # E10
    assert validator.is_valid(definition())


_leaf = (st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False)
         | st.sampled_from([0.0, 1.0, -1.0, 81.0, 2.5]) | st.text(max_size=6)
         | st.sampled_from(["", "832x480", "832x480\n", "x", "12x", "0x0", "a" * 64, "0123456789abcdef" * 4,
                            "0123456789ABCDEF" * 4 + "\n", "t2v", "https://h/x_bf16.safetensors"]))
json_values = st.recursive(_leaf, lambda children: st.lists(children, max_size=6)
                           | st.dictionaries(st.text(max_size=4), children, max_size=3), max_leaves=12)


_FRAGMENTS = [(f"model.{k}", v.schema) for k, v in K.MODEL_KEYS.items()] + \
             [(k, v.schema) for k, v in K.SETTINGS_KEYS.items()]


@pytest.mark.parametrize("name, fragment", _FRAGMENTS, ids=[name for name, _ in _FRAGMENTS])
@settings(max_examples=40)
@given(value=json_values)
def test_fast_check_agrees_with_jsonschema(name, fragment, value):
    expected = jsonschema.Draft202012Validator(fragment).is_valid(value)
    assert (check(value, fragment) is None) == expected, (name, value)


# -- overrides and platform paths -----------------------------------------------------------------------------------

def test_full_override_of_a_defaults_definition_is_clean(home):
    write_definition(home, "t2v_mine", definition(), folder="defaults")
    _, found = validate(home, {"model": definition()["model"]}, model_id="t2v_mine")
    assert found == []


def test_partial_override_of_a_defaults_definition_has_no_errors(home):
    write_definition(home, "t2v_mine", definition(), folder="defaults")
    _, found = validate(home, {"model": {"name": "Renamed"}}, model_id="t2v_mine")
    assert [d.code for d in found if d.severity == "error"] == []


def test_drive_letter_path_finding_does_not_depend_on_the_working_directory(home, tmp_path, monkeypatch):
    path = write_definition(home, "t2v_test", definition(URLs=["C:\\models\\x_bf16.safetensors"]))
    monkeypatch.chdir(tmp_path)
    outside = codes(validate_paths([str(path)], Home(home)).diagnostics)
    monkeypatch.chdir(home)
    inside = codes(validate_paths(["finetunes/t2v_test.json"], Home(".")).diagnostics)
    assert outside == inside
