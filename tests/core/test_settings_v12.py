"""Target v12: fix_settings migrations by settings_version, merge order, export and metadata forms, and each
target's export vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import definition, write_definition

from wangp_cli.core import settings as S
from wangp_cli.core.definitions import Catalog
from wangp_cli.core.home import Home
from wangp_cli.core.registry import Architecture

HEAD = Path(__file__).resolve().parents[2] / ".." / "shared" / "wangp-head"

#: A Wan-like base type with the capabilities WanGP's wan handler declares (built here, not read from the table).
WAN = dict(sample_solvers=["unipc", "euler"], guidance_max_phases=3, sliding_window=True, perturbation=True,
           flow_shift=True, tea_cache=True, mag_cache=True, cfg_zero=True, cfg_star=True, riflex=True, t2v_class=True)
ARCHES = {
    "t2v": Architecture("t2v", "Wan t2v", "wan", "t2v", (), fps=16, frames=(5, 737, 4), since="v12", handler="wan",
                        prompt_types="", handler_keys=WAN),
    "i2v": Architecture("i2v", "Wan i2v", "wan", "i2v", (), fps=16, frames=(5, 737, 4), since="v12", handler="wan",
                        prompt_types="SEV", handler_keys={**WAN, "t2v_class": False, "i2v_class": True}),
    "img": Architecture("img", "An image model", "flux", "t2v", (), since="v12", handler="flux", output="image",
                        handler_keys={"guidance_max_phases": 1, "image_outputs": True}),
    "tts": Architecture("tts", "A speech model", "tts", "t2v", (), since="v12", handler="chatterbox", output="audio",
                        handler_keys={"audio_only": True, "model_modes": {"choices": [["English", "en"]]}}),
}


@pytest.fixture
def v12(monkeypatch):
    """The v12 registry lookups of core.settings answered by ARCHES."""
    monkeypatch.setattr(S, "get_architecture", lambda arch_id, target="v12": ARCHES.get(arch_id)
                        if target == "v12" else None)


def traits(arch_id="t2v", **model):
    arch = ARCHES[arch_id]
    return S.ModelTraits(arch.id, arch.handler, {"image_prompt_types_allowed": arch.prompt_types, "fps": arch.fps,
                                                 **arch.handler_keys, **model})


def fix(values, model=None, version=None):
    if version is not None:
        values = {**values, "settings_version": version}
    return S.fix_settings(values, "v12", model=model)


# -- migrations by settings_version ---------------------------------------------------------------------------------

def test_slg_migrates_below_2_54_only():
    old = fix({"slg_switch": 1, "slg_layers": [8], "slg_start_perc": 5, "slg_end_perc": 80}, version=2.53)
    assert (old["perturbation_switch"], old["perturbation_layers"], old["perturbation_start_perc"],
            old["perturbation_end_perc"]) == (1, [8], 5, 80)
    assert not any(k.startswith("slg_") for k in old)
    new = fix({"slg_switch": 1}, version=2.60)
    assert new["slg_switch"] == 1 and "perturbation_switch" not in new


def test_a_file_without_settings_version_is_version_0():
    values = fix({"slg_switch": 1, "prompt_enhancer": "I"})
    assert values["perturbation_switch"] == 1 and values["prompt_enhancer"] == "TI"
    assert values["alt_scale"] == 0.0 and values["replace_voice_sample"] is None


def test_an_existing_perturbation_key_wins_over_slg():
    assert fix({"slg_switch": 1, "perturbation_switch": 0})["perturbation_switch"] == 0


def test_prompt_enhancer_below_2_61():
    assert fix({"prompt_enhancer": "IK"}, version=2.60)["prompt_enhancer"] == "TIK"
    assert fix({"prompt_enhancer": "I"}, version=2.61)["prompt_enhancer"] == "I"


def test_alt_scale_default_below_2_55():
    assert fix({}, version=2.54)["alt_scale"] == 0.0
    assert "alt_scale" not in fix({}, version=2.55)


@pytest.mark.parametrize("value, expected", [(0, "G"), (1, "W"), (2, "FG"), ("", "FG"), ("P", "PG"), ("pw", "PW"),
                                             (None, "PG"), (7, "PG"), ("X", "PG")])
def test_multi_prompts_gen_type_normalized(value, expected):
    for version in (2.53, 2.74):
        assert fix({"multi_prompts_gen_type": value}, traits(), version)["multi_prompts_gen_type"] == expected


def test_sliding_window_modes_become_g_without_sliding_windows():
    assert fix({"multi_prompts_gen_type": 1}, traits(sliding_window=False))["multi_prompts_gen_type"] == "G"
    assert fix({"multi_prompts_gen_type": "PW"}, traits(sliding_window=False))["multi_prompts_gen_type"] == "PG"


def test_tea_cache_becomes_skip_steps_at_every_version():
    values = fix({"tea_cache_setting": 2.0, "tea_cache_start_step_perc": 15}, version=2.74)
    assert (values["skip_steps_multiplier"], values["skip_steps_cache_type"], values["skip_steps_start_step_perc"]) \
        == (2.0, "tea", 15)
    off = fix({"tea_cache_setting": 0})
    assert (off["skip_steps_multiplier"], off["skip_steps_cache_type"]) == (1.75, "")
    assert "tea_cache_setting" not in values and "tea_cache_start_step_perc" not in values


def test_always_fixes():
    values = fix({"prompts": "a fox", "lset_name": "x", "image_prompt_type": 1}, version=2.74)
    assert values["prompt"] == "a fox" and "prompts" not in values and "lset_name" not in values
    assert values["image_prompt_type"] == "SE" and values["alt_prompt"] == ""
    assert fix({"image_prompt_type": "SG"}, version=2)["image_prompt_type"] == "S"
    assert fix({"image_prompt_type": "SG"}, version=2.1)["image_prompt_type"] == "SG"


def test_image_prompt_letters_filtered_by_the_model():
    assert fix({"image_prompt_type": "SEL"}, traits("i2v"))["image_prompt_type"] == "SE"
    assert fix({"image_prompt_type": "S"}, traits("t2v"))["image_prompt_type"] == ""


def test_family_migrations():
    hunyuan = S.ModelTraits("hunyuan", "hunyuan", {})
    assert fix({"video_prompt_type": "IV"}, hunyuan, 2.74)["video_prompt_type"] == "V"
    flux = S.ModelTraits("flux", "flux", {})
    assert fix({"video_prompt_type": "KI"}, flux, 2.22)["video_prompt_type"] == "KI"
    assert fix({"video_prompt_type": "I"}, flux, 2.22)["video_prompt_type"] == "KI"
    assert fix({"video_prompt_type": "I"}, flux, 2.23)["video_prompt_type"] == "I"
    avatar = S.ModelTraits("hunyuan_avatar", "hunyuan", {})
    assert fix({"video_prompt_type": "I", "remove_background_images_ref": 1}, avatar, 2.25) \
        == {**fix({}, avatar, 2.25), "video_prompt_type": "KI", "remove_background_images_ref": 0}


def test_remove_background_2_below_2_22():
    values = fix({"video_prompt_type": "I", "remove_background_images_ref": 2}, version=2.21)
    assert (values["video_prompt_type"], values["remove_background_images_ref"]) == ("KI", 1)
    assert fix({"remove_background_images_ref": 2}, version=2.22)["remove_background_images_ref"] == 2


def test_wan_handler_fixes():
    assert fix({"sample_solver": ""}, traits())["sample_solver"] == "unipc"
    two = traits(multiple_submodels=True)
    assert fix({"guidance_phases": 1}, two, 2.23)["guidance_phases"] == 2
    assert fix({"guidance_phases": 1}, two, 2.24)["guidance_phases"] == 1
    assert fix({"guidance_phases": 1, "switch_threshold": 900}, traits(), 2.0)["guidance_phases"] == 2


def test_audio_prompt_type_for_audio_models():
    audio = traits(returns_audio=True)
    assert fix({}, audio, 2.1)["audio_prompt_type"] == "AV"
    assert fix({"audio_prompt_type": "A"}, audio, 2.3)["audio_prompt_type"] == "AV"
    assert "audio_prompt_type" not in fix({}, audio, 2.35)


@pytest.mark.parametrize("length, fps, expected", [("10s", 16, 161), ("5.5s", 16, 89), ("1s", 24, 25),
                                                   ("0.1s", 16, 5)])
def test_video_length_in_seconds(length, fps, expected):
    assert fix({"video_length": length}, traits(fps=fps, frames_minimum=5, frames_steps=4))["video_length"] \
        == expected
    assert fix({"video_length": length, "force_fps": str(fps)})["video_length"] == expected


def test_video_length_that_is_no_duration_is_kept():
    assert fix({"video_length": "ten"})["video_length"] == "ten"
    assert S.seconds_to_frames("0s", 16) is None


def test_migration_table_is_ordered_data():
    gates = [step.below for step in S.MIGRATIONS_V12 if step.below is not None]
    assert {2.54, 2.55, 2.60, 2.61, 2.22, 2.23, 2.24, 2.26} <= set(gates)
    assert all(step.what for step in S.MIGRATIONS_V12)


# -- merge ----------------------------------------------------------------------------------------------------------

def merged(home, model_id, flags=None):
    catalog = Catalog(Home(home), "v12")
    return S.merged_settings(catalog.get(model_id), catalog, flags)


def test_merge_order_v12(home, v12):
    data = definition()
    data.update(num_inference_steps=8, guidance_scale=1.0, slg_switch=1, multi_prompts_gen_type="FG")
    write_definition(home, "t2v_test", data)
    (home / "settings" / "t2v_test_settings.json").write_text(json.dumps(
        {"guidance_scale": 2.0, "slg_switch": 1, "tea_cache_setting": 2.5}))  # no settings_version: version 0
    values, origin = merged(home, "t2v_test", {"seed": 7})
    assert (values["num_inference_steps"], origin["num_inference_steps"]) == (8, "definition")
    assert (values["guidance_scale"], origin["guidance_scale"]) == (2.0, "settings_file")
    assert (values["perturbation_switch"], origin["perturbation_switch"]) == (1, "settings_file")
    assert values["skip_steps_multiplier"] == 2.5 and values["seed"] == 7
    # the definition's settings count as the current version (WanGP's get_factory_settings): slg_* stays
    assert values["slg_switch"] == 1 and origin["slg_switch"] == "definition"
    assert values["multi_prompts_gen_type"] == "FG"
    assert (values["video_guide_outpainting"], origin["video_guide_outpainting"]) == ("#", "architecture")
    assert values["sample_solver"] == "unipc" and set(origin) == set(values)


def test_a_settings_file_at_2_60_keeps_slg(home, v12):
    write_definition(home, "t2v_test", definition())
    (home / "settings" / "t2v_test_settings.json").write_text(json.dumps({"settings_version": 2.60, "slg_switch": 1}))
    values, _ = merged(home, "t2v_test")
    assert values["slg_switch"] == 1 and values["perturbation_switch"] == 0


# -- export ---------------------------------------------------------------------------------------------------------

URL = "https://huggingface.co/me/my_finetune_quanto_bf16_int8.safetensors"


def exported(home, model_id, form="export", target="v12", **options):
    catalog = Catalog(Home(home), target)
    return S.export_settings(catalog.get(model_id), catalog, URL, form=form, **options)


def test_export_v12_shape(home, v12):
    data = definition()
    data.update(slg_switch=1, tea_cache_setting=2.0, image_start="start.png", video_guide=None, lset_name="x",
                my_key=1, num_inference_steps=8)
    write_definition(home, "t2v_test", data)
    out = exported(home, "t2v_test")
    assert out["type"] == "WanGP v12.60 by DeepBeepMeep - My finetune" and out["settings_version"] == 2.74
    assert list(out)[-3:] == ["base_model_type", "model_filename", "model_type"]
    assert (out["base_model_type"], out["model_filename"], out["model_type"]) == ("t2v", URL, "t2v_test")
    assert out["image_start"] == "start.png" and "video_guide" not in out  # media kept when given
    assert set(out) - {"type", "settings_version", "base_model_type", "model_filename", "model_type"} \
        <= S.EXPORT_VOCABULARY["v12"]
    assert not {"slg_switch", "tea_cache_setting", "lset_name", "my_key"} & set(out)
    assert (out["skip_steps_multiplier"], out["skip_steps_cache_type"]) == (2.0, "tea")
    assert out["num_inference_steps"] == 8 and [k for k, v in out.items() if v is None] == []


def test_export_v12_capabilities(home, v12):
    write_definition(home, "t2v_test", definition())
    out = exported(home, "t2v_test", settings={"guidance_phases": 1, "guidance_scale": 5, "guidance2_scale": 3,
                                               "switch_threshold": 900, "perturbation_switch": 1,
                                               "perturbation_layers": [9], "model_mode": 0, "sample_solver": "euler",
                                               "batch_size": 1, "NAG_scale": 3, "video_length": 81})
    assert out["perturbation_switch"] == 1 and out["sample_solver"] == "euler" and out["video_length"] == 81
    assert not {"guidance2_scale", "switch_threshold", "model_mode", "batch_size", "NAG_scale"} & set(out)
    two = exported(home, "t2v_test", settings={"guidance_phases": 2, "guidance2_scale": 3, "switch_threshold": 900})
    assert (two["guidance2_scale"], two["switch_threshold"]) == (3, 900)


def test_export_v12_image_and_audio_models(home, v12):
    write_definition(home, "img_test", definition(architecture="img"))
    write_definition(home, "tts_test", definition(architecture="tts"))
    image = exported(home, "img_test", settings={"video_length": 81, "batch_size": 2, "resolution": "1024x1024",
                                                 "sample_solver": "x"})
    assert "video_length" not in image and image["batch_size"] == 2 and "sample_solver" not in image
    audio = exported(home, "tts_test", settings={"video_length": 81, "resolution": "832x480", "model_mode": "en",
                                                 "temperature": 0.8})
    assert not {"video_length", "resolution"} & set(audio) and (audio["model_mode"], audio["temperature"]) == ("en", 0.8)


def test_base_model_type_only_for_finetunes(home, v12):
    write_definition(home, "t2v", definition(), folder="defaults")
    assert "base_model_type" not in exported(home, "t2v")


def test_settings_form_v12(home, v12):
    data = definition()
    data.update(image_start="start.png")
    write_definition(home, "t2v_test", data)
    out = exported(home, "t2v_test", form="settings")
    assert "model_filename" not in out and "model_type" not in out and "image_start" not in out
    assert out["settings_version"] == 2.74 and out["base_model_type"] == "t2v"
    assert out["video_guide_outpainting"] == "#"  # no metadata cleaning in the settings file


def test_metadata_form_v12(home, v12):
    write_definition(home, "t2v_test", definition())
    out = exported(home, "t2v_test", form="metadata", settings={"image_start": "a.png", "seed": 3}, now=1767225600.5)
    assert "WanGP" in out["type"] and out["creation_timestamp"] == 1767225600
    assert out["creation_date"].startswith("2026-01-0") and len(out["creation_date"]) == 25  # ISO, seconds, offset
    assert "image_start" not in out and list(out)[-2:] == ["model_filename", "model_type"]


# -- vocabularies of v6 / july ----------------------------------------------------------------------------------------

TEA = {"tea_cache_setting", "tea_cache_start_step_perc"}
SKIP = {"skip_steps_multiplier", "skip_steps_cache_type", "skip_steps_start_step_perc"}


@pytest.mark.parametrize("target, version", [("v6", 2), ("july", 2.22)])
def test_v6_and_july_exports_never_mix_tea_cache_and_skip_steps(home, target, version):
    data = definition()
    data.update(skip_steps_multiplier=2.0, skip_steps_cache_type="tea", tea_cache_setting=1.5,
                perturbation_switch=1)
    write_definition(home, "t2v_test", data)
    for form in ("export", "settings", "metadata"):
        out = exported(home, "t2v_test", form=form, target=target)
        assert not (TEA & set(out) and SKIP & set(out)), (target, form, out)
        assert out["settings_version"] == version
    out = exported(home, "t2v_test", target=target)
    assert (TEA if target == "v6" else SKIP) & set(out)
    assert "perturbation_switch" not in out if target == "july" else True


# -- WanGP's own files --------------------------------------------------------------------------------------------------

def test_wangp_head_defaults_merge_and_export(tmp_path):
    if not HEAD.is_dir():
        pytest.skip("../shared/wangp-head not present")
    home = tmp_path / "home"
    for folder in ("finetunes", "settings", "ckpts"):
        (home / folder).mkdir(parents=True)
    (home / "defaults").symlink_to(HEAD / "defaults")
    catalog = Catalog(Home(home), "v12")
    for model_id in catalog.ids(include_hidden=True):
        found = catalog.get(model_id)
        values, _ = S.merged_settings(found, catalog)
        assert not {"slg_switch", "tea_cache_setting", "lset_name"} & set(S.export_settings(found, catalog, "x")), \
            model_id
        assert isinstance(values["multi_prompts_gen_type"], str) and not isinstance(values["video_length"], str)


def test_capability_rules_need_a_row_that_declares_capabilities(home, v12, monkeypatch):
    bare = Architecture("t2v", "Wan t2v", "wan", "t2v", (), since="v12", handler="wan",
                        handler_keys={"guidance_max_phases": 3, "sample_solvers": ["unipc"]})
    monkeypatch.setitem(ARCHES, "t2v", bare)
    write_definition(home, "t2v_test", definition())
    out = exported(home, "t2v_test", settings={"flow_shift": 3, "perturbation_switch": 1, "RIFLEx_setting": 1})
    assert (out["flow_shift"], out["perturbation_switch"], out["RIFLEx_setting"]) == (3, 1, 1)
    monkeypatch.setitem(ARCHES, "t2v", Architecture("t2v", "Wan t2v", "wan", "t2v", (), since="v12", handler="wan",
                                                    handler_keys={"flow_shift": True}))
    out = exported(home, "t2v_test", settings={"flow_shift": 3, "perturbation_switch": 1})
    assert out["flow_shift"] == 3 and "perturbation_switch" not in out
