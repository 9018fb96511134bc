"""Settings: merge order, WanGP's defaults, export and settings-file forms (definition-format.md §4 and §10)."""

from __future__ import annotations

import json
import re

import pytest

from conftest import SHIPPED_DEFINITIONS, definition, write_definition
from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import WangpError
from wangp_cli.core.home import Home
from wangp_cli.core.keys import MEDIA_KEYS
from wangp_cli.core.models import choose_transformer
from wangp_cli.core.settings import export_settings, merged_settings
from wangp_cli.core.variants import Preference

TYPE = re.compile(r"^WanGP v\d+(\.\d+)* by DeepBeepMeep - (?P<name>.+)$")


def shipped(name):
    return next(p for p in SHIPPED_DEFINITIONS if p.name == f"{name}.json").read_text(encoding="utf-8")


def merged(home, model_id, target="july", flags=None):
    catalog = Catalog(Home(home), target)
    return merged_settings(catalog.get(model_id), catalog, flags)


def exported(home, model_id, target="july", form="export", preference=Preference()):
    catalog = Catalog(Home(home), target)
    found = catalog.get(model_id)
    filename = choose_transformer(catalog, found, preference)["path"] if form == "export" else ""
    return export_settings(found, catalog, filename, form=form)


# -- merge order ----------------------------------------------------------------------------------------------------

def test_merge_order_architecture_definition_settings_file_flags(home):
    data = definition()
    data.update(num_inference_steps=8, guidance_scale=1.0, flow_shift=3.0, video_length=49)
    write_definition(home, "t2v_test", data)
    (home / "settings" / "t2v_test_settings.json").write_text(json.dumps(
        {"guidance_scale": 2.0, "flow_shift": 4.0, "video_length": 33}))
    settings, origin = merged(home, "t2v_test", flags={"video_length": 17, "seed": None})
    assert (settings["slg_layers"], origin["slg_layers"]) == ([9], "architecture")  # §4: default [9]
    assert (settings["num_inference_steps"], origin["num_inference_steps"]) == (8, "definition")
    assert (settings["guidance_scale"], origin["guidance_scale"]) == (2.0, "settings_file")
    assert (settings["flow_shift"], origin["flow_shift"]) == (4.0, "settings_file")
    assert (settings["video_length"], origin["video_length"]) == (17, "flag")
    assert (settings["seed"], origin["seed"]) == (-1, "definition")  # a None flag is no flag
    assert set(origin) == set(settings)
    assert set(origin.values()) <= {"architecture", "definition", "settings_file", "flag"}


def test_without_settings_file_the_definition_wins(home):
    data = definition()
    data["guidance_scale"] = 1.0
    write_definition(home, "t2v_test", data)
    settings, origin = merged(home, "t2v_test")
    assert (settings["guidance_scale"], origin["guidance_scale"]) == (1.0, "definition")


@pytest.mark.parametrize("arch, guidance, flow_shift", [
    ("t2v", 5.0, 5), ("i2v", 5.0, 7), ("i2v_720p", 5.0, 5), ("hunyuan", 7.0, 5), ("phantom_14B", 7.5, 5),
    ("hunyuan_custom", 7.5, 13), ("sky_df_14B", 6, 8),
])
def test_architecture_defaults_of_the_spec(home, arch, guidance, flow_shift):
    settings, origin = merged(home, arch)
    assert settings["guidance_scale"] == guidance
    assert settings["flow_shift"] == flow_shift
    assert settings["seed"] == -1
    assert set(origin.values()) == {"architecture"}


def test_empty_prompt_becomes_the_architecture_default_prompt(home):
    for model_id, arch in (("t2v_test", "t2v"), ("i2v_test", "i2v")):
        data = definition(architecture=arch)
        data["prompt"] = ""
        write_definition(home, model_id, data)
    t2v, t2v_origin = merged(home, "t2v_test")
    i2v, _ = merged(home, "i2v_test")
    base_t2v, _ = merged(home, "t2v")
    base_i2v, _ = merged(home, "i2v")
    assert t2v["prompt"] and t2v["prompt"] == base_t2v["prompt"] and t2v_origin["prompt"] == "architecture"
    assert i2v["prompt"] and i2v["prompt"] == base_i2v["prompt"]
    assert t2v["prompt"] != i2v["prompt"]


def test_a_given_prompt_is_kept_and_the_legacy_prompts_alias_is_read(home):
    data = definition()
    data["prompt"] = "a red fox"
    write_definition(home, "t2v_a", data)
    data = definition()
    data["prompts"] = "a blue bird"
    write_definition(home, "t2v_b", data)
    assert merged(home, "t2v_a")[0]["prompt"] == "a red fox"
    settings, _ = merged(home, "t2v_b")
    assert settings["prompt"] == "a blue bird" and "prompts" not in settings


def test_july_renames_tea_cache_keys_and_drops_lset_name(home):
    data = definition()
    data.update(tea_cache_setting=2.0, tea_cache_start_step_perc=15, lset_name="my preset")
    write_definition(home, "t2v_test", data)
    v6, _ = merged(home, "t2v_test", "v6")
    july, _ = merged(home, "t2v_test", "july")
    assert (v6["tea_cache_setting"], v6["tea_cache_start_step_perc"], v6["lset_name"]) == (2.0, 15, "my preset")
    assert "tea_cache_setting" not in july and "tea_cache_start_step_perc" not in july and "lset_name" not in july
    assert july["skip_steps_multiplier"] == 2.0
    assert july["skip_steps_start_step_perc"] == 15


def test_broken_settings_file_is_an_error_with_its_position(home):
    write_definition(home, "t2v_test", definition())
    text = '{\n    "seed": 1,\n    "guidance_scale": 5.0,\n}'
    (home / "settings" / "t2v_test_settings.json").write_text(text)
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(WangpError) as raised:
        merged(home, "t2v_test")
    [diagnostic] = raised.value.diagnostics
    assert (diagnostic.line, diagnostic.column) == (expected.value.lineno, expected.value.colno)
    assert diagnostic.code == "E1" and diagnostic.path.endswith("t2v_test_settings.json")


def test_settings_file_that_is_not_an_object_is_an_error(home):
    write_definition(home, "t2v_test", definition())
    (home / "settings" / "t2v_test_settings.json").write_text("[1, 2]")
    with pytest.raises(WangpError):
        merged(home, "t2v_test")


# -- export form ----------------------------------------------------------------------------------------------------

@pytest.fixture
def fusionix_home(home):
    data = json.loads(shipped("t2v_fusionix"))
    data.update(image_start="start.png", video_guide="guide.mp4", audio_guide="a.wav", lset_name=None,
                negative_prompt=None, image_prompt_type="S")
    write_definition(home, "t2v_fusionix", data)
    write_definition(home, "hunyuan_t2v_fast", shipped("hunyuan_t2v_fast"))
    return home


@pytest.mark.parametrize("target", ["v6", "july"])
def test_export_has_no_media_keys_and_no_nulls(fusionix_home, target):
    data = exported(fusionix_home, "t2v_fusionix", target)
    assert not set(MEDIA_KEYS) & set(data)
    assert [k for k, v in data.items() if v is None] == []


@pytest.mark.parametrize("target", ["v6", "july"])
def test_export_ends_with_model_filename_and_model_type(fusionix_home, target):
    data = exported(fusionix_home, "t2v_fusionix", target)
    assert list(data)[-2:] == ["model_filename", "model_type"]
    assert data["model_filename"] == "ckpts/Wan14BT2VFusioniX_quanto_bf16_int8.safetensors"
    assert data["model_type"] == "t2v_fusionix"
    data = exported(fusionix_home, "t2v_fusionix", target, preference=Preference("none", "bf16"))
    assert data["model_filename"] == "ckpts/Wan14BT2VFusioniX_fp16.safetensors"


@pytest.mark.parametrize("target, versions", [("v6", {2}), ("july", {2.21, 2.22})])
def test_export_type_and_settings_version(fusionix_home, target, versions):
    data = exported(fusionix_home, "t2v_fusionix", target)
    match = TYPE.match(data["type"])
    assert match and match.group("name") == "Wan text2video FusioniX 14B"
    assert data["settings_version"] in versions


def test_base_model_type_for_finetunes_on_july_only(fusionix_home):
    assert exported(fusionix_home, "t2v_fusionix", "july")["base_model_type"] == "t2v"
    assert "base_model_type" not in exported(fusionix_home, "t2v_fusionix", "v6")
    assert "base_model_type" not in exported(fusionix_home, "t2v", "july")  # id == architecture


def test_embedded_guidance_scale_only_for_hunyuan(fusionix_home):
    assert "embedded_guidance_scale" not in exported(fusionix_home, "t2v_fusionix")
    hunyuan = exported(fusionix_home, "hunyuan_t2v_fast")
    assert hunyuan["embedded_guidance_scale"] == 6
    assert hunyuan["model_type"] == "hunyuan_t2v_fast"


def test_image_prompt_type_removed_for_t2v_kept_for_i2v(fusionix_home):
    assert "image_prompt_type" not in exported(fusionix_home, "t2v_fusionix")
    data = definition(architecture="i2v")
    data["image_prompt_type"] = "SE"
    write_definition(fusionix_home, "i2v_test", data)
    assert exported(fusionix_home, "i2v_test")["image_prompt_type"] == "SE"


def test_export_keeps_the_definition_settings(fusionix_home):
    data = exported(fusionix_home, "t2v_fusionix")
    assert (data["num_inference_steps"], data["guidance_scale"], data["resolution"]) == (8, 1, "832x480")


# -- settings-file form (--write) -----------------------------------------------------------------------------------

def test_settings_form_has_metadata_but_no_model_file(fusionix_home):
    data = exported(fusionix_home, "t2v_fusionix", form="settings")
    assert TYPE.match(data["type"]) and "settings_version" in data
    assert "model_filename" not in data and "model_type" not in data
    assert not set(MEDIA_KEYS) & set(data)
    assert data["num_inference_steps"] == 8


def test_settings_form_round_trips_through_the_settings_file(fusionix_home):
    data = exported(fusionix_home, "t2v_fusionix", form="settings")
    data["num_inference_steps"] = 12
    (fusionix_home / "settings" / "t2v_fusionix_settings.json").write_text(json.dumps(data, indent=4))
    settings, origin = merged(fusionix_home, "t2v_fusionix")
    assert (settings["num_inference_steps"], origin["num_inference_steps"]) == (12, "settings_file")
    assert "type" not in settings and "settings_version" not in settings


def test_sliding_window_keys_removed_outside_vace(fusionix_home):
    for model_id, arch in (("t2v_sw", "t2v"), ("vace_14B_sw", "vace_14B")):
        data = definition(architecture=arch, **({"modules": ["vace_14B"]} if arch == "vace_14B" else {}))
        data.update(sliding_window_size=81, sliding_window_overlap=5)
        write_definition(fusionix_home, model_id, data)
    t2v = exported(fusionix_home, "t2v_sw")
    vace = exported(fusionix_home, "vace_14B_sw")
    assert "sliding_window_size" not in t2v and "sliding_window_overlap" not in t2v
    assert (vace["sliding_window_size"], vace["sliding_window_overlap"]) == (81, 5)
