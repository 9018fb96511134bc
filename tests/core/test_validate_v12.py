"""Target v12 (WanGP 12.60) rules of ``wangp validate``, on small crafted definitions (no ../shared needed)."""

from __future__ import annotations

import pytest
from conftest import HF_ME, make_home, write_definition

from wangp_cli.core.home import Home
from wangp_cli.core.validation import validate_paths

F = HF_ME  # https://huggingface.co/me/my-finetune/resolve/main/


def model(**keys) -> dict:
    subtree = {"name": "n", "architecture": "t2v", "description": "d",
               "URLs": [F + "ft_bf16.safetensors", F + "ft_quanto_bf16_int8.safetensors"]}
    subtree.update(keys)
    return {k: v for k, v in subtree.items() if v is not None}


def run(tmp_path, data, model_id="my_ft", *, target="v12", others=()):
    home = make_home(tmp_path)
    for other_id, other in others:
        write_definition(home, other_id, other)
    path = write_definition(home, model_id, data)
    report = validate_paths([str(path)], Home(home), target=target)
    return [(d.code, d.message) for d in report.diagnostics]


def codes(found) -> list[str]:
    return [code for code, _ in found]


def test_a_clean_v12_definition_has_no_findings(tmp_path):
    assert run(tmp_path, {"model": model(), "guidance_scale": 5, "video_length": 81}) == []


def test_e4_names_wangps_consequence_and_the_fix_for_a_definition_id(tmp_path):
    other = {"model": model(name="fusionix")}
    found = run(tmp_path, {"model": model(architecture="t2v_fusionix")}, others=[("t2v_fusionix", other)])
    (code, message), = found
    assert code == "E4" and "WanGP 12 hides the model" in message
    assert "Skipping model type 'my_ft' with unsupported architecture 't2v_fusionix'" in message
    home = tmp_path
    report = validate_paths([str(home / "finetunes" / "my_ft.json")], Home(home), target="v12")
    assert report.diagnostics[0].hint == "use the base type 't2v' (and \"URLs\": \"t2v_fusionix\" to reuse its files)"


@pytest.mark.parametrize("july_id, base", [("i2v_720p", "i2v"), ("moviigen", "t2v"), ("sky_df_720p_14B", "sky_df_14B"),
                                           ("ltxv_13B_distilled", "ltxv_13B")])
def test_e4_july_only_base_ids_get_their_v12_equivalent(tmp_path, july_id, base):
    home = make_home(tmp_path)
    path = write_definition(home, "my_ft", {"model": model(architecture=july_id)})
    (finding,) = validate_paths([str(path)], Home(home), target="v12").diagnostics
    assert finding.code == "E4" and finding.hint == f"use the base type '{base}'"
    assert validate_paths([str(path)], Home(home), target="july").errors == 0


def test_a_defaults_file_naming_its_own_base_type_is_no_finetune(tmp_path):
    home = make_home(tmp_path)
    path = write_definition(home, "t2v_2_2", {"model": model(architecture="t2v_2_2", URLs2=[F + "low_bf16.safetensors"])},
                            folder="defaults")
    assert validate_paths([str(path)], Home(home), target="v12").diagnostics == []


def test_w9_for_a_finetune_overriding_a_base_type_and_no_w10(tmp_path):
    found = run(tmp_path, {"model": model(architecture="ltxv_13B")}, model_id="t2v")
    assert codes(found) == ["W9"] and "merges" in found[0][1]


# -- references ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prop", ["URLs", "URLs2", "modules", "preload_URLs", "loras", "loras_multipliers",
                                  "text_encoder_URLs", "configs", "profiles_dir"])
def test_every_v12_reference_prop_resolves_and_reports_missing_ids(tmp_path, prop):
    assert "E6" not in codes(run(tmp_path, {"model": model(**{prop: "t2v"})}))
    found = run(tmp_path / "b", {"model": model(**{prop: "no_such_model"})})
    assert "E6" in codes(found)


def test_reference_cycles_and_depth(tmp_path):
    found = run(tmp_path, {"model": model(URLs2="b")}, model_id="a", others=[("b", {"model": model(URLs2="a")})])
    assert ("E6", "circular reference in URLs2: a -> b -> a") in found
    chain = [(f"r{i}", {"model": model(loras=f"r{i + 1}")}) for i in range(12)]
    found = run(tmp_path / "deep", {"model": model(loras="r0")}, others=chain)
    assert any(code == "E6" and "deeper than 10" in message for code, message in found)


def test_vae_urls_string_is_one_url_not_a_reference(tmp_path):
    assert run(tmp_path, {"model": model(VAE_URLs=F + "vae_bf16.safetensors")}) == []
    found = run(tmp_path / "b", {"model": model(VAE_URLs="t2v")})
    assert codes(found) == ["W5"]  # a local file named t2v, not a reference


# -- modules ---------------------------------------------------------------------------------------------------------

def test_modules_every_form(tmp_path):
    one = {"model": model(modules=[[F + "mod_bf16.safetensors"]])}
    data = {"model": model(architecture="vace_14B", modules=[
        [F + "vace_bf16.safetensors", F + "vace_quanto_bf16_int8.safetensors"],  # variants
        "one_module",  # a definition with one module
        {"URLs": [F + "a_bf16.safetensors"], "URLs2": [F + "b_bf16.safetensors"]},  # per-submodel weights
    ])}
    assert run(tmp_path, data, others=[("one_module", one)]) == []
    assert run(tmp_path / "ref", {"model": model(modules="one_module")}, others=[("one_module", one)]) == []


def test_modules_id_must_have_exactly_one_module(tmp_path):
    two = {"model": model(modules=[[F + "a_bf16.safetensors"], [F + "b_bf16.safetensors"]])}
    found = run(tmp_path, {"model": model(modules=["two", "nowhere"])}, others=[("two", two)])
    assert ("E8", "module 'two' has 2 modules, WanGP needs exactly 1 (\"should be a list of size 1\")") in found
    assert any(code == "E8" and "'nowhere' is neither a definition" in message for code, message in found)


def test_module_ids_are_followed_and_loops_found(tmp_path):
    a = {"model": model(modules=["b"])}
    b = {"model": model(modules=["a"])}
    found = run(tmp_path, {"model": model(modules=["a"])}, others=[("a", a), ("b", b)])
    assert any(code == "E6" and "circular module reference" in message for code, message in found)


def test_module_entries_get_the_url_rules(tmp_path):
    data = {"model": model(modules=[["ftp://x/mod.safetensors", F + "m_bf16.safetensors", F + "m_bf16.safetensors"],
                                    {"URLs": [F + "x.safetensors"]}])}
    found = codes(run(tmp_path, data))
    assert found.count("E7") == 1 and "W2" in found and "E13" in found  # E13: the object lacks URLs2


# -- entries: url|subfolder, W1, W2, W3 ------------------------------------------------------------------------------

def test_url_subfolder_must_stay_inside(tmp_path):
    ok = model(preload_URLs=[F + "t3.safetensors|chatterbox", F + "lora.safetensors|%lora_dir"])
    assert run(tmp_path, {"model": ok}) == []
    for sub in ("../escape", "/abs", "a/../../b"):
        found = run(tmp_path / sub.replace("/", "_"), {"model": model(preload_URLs=[F + "t.safetensors|" + sub])})
        assert codes(found) == ["E7"] and "subfolder" in found[0][1]


def test_w1_v12_needs_no_dtype_token_and_reads_tokens_in_any_case(tmp_path):
    urls = [F + "flux2-dev.safetensors", F + "flux2-dev_quanto_BF16_INT8.safetensors"]
    assert run(tmp_path, {"model": model(URLs=urls)}) == []
    assert codes(run(tmp_path / "july", {"model": model(URLs=urls)}, target="july")) == ["W1", "W1"]
    found = run(tmp_path / "q", {"model": model(URLs=[F + "x_bf16.safetensors", F + "x_quanto_bf16.safetensors"])})
    assert codes(found) == ["W1", "W3"] and "int8" in found[0][1]  # W3: int8 never picks it


@pytest.mark.parametrize("name", ["x_fp8_e4m3fn_scaled.safetensors", "x_int8_convrot.safetensors",
                                  "x_quanto_mbf16_int8.safetensors", "x_INT8.safetensors"])
def test_w3_v12_quantized_kinds_are_selectable(tmp_path, name):
    assert run(tmp_path, {"model": model(URLs=[F + "x_bf16.safetensors", F + name])}) == []


def test_w3_v12_only_for_files_no_preference_selects(tmp_path):
    urls = [F + "x_bf16.safetensors", F + "x_fp16.safetensors", F + "x_nvfp4.safetensors", F + "x.gguf"]
    found = run(tmp_path, {"model": model(URLs=urls)})
    assert codes(found) == ["W3", "W3", "W3"]  # 16-bit takes the first; nvfp4 and gguf are single-entry formats
    twice = run(tmp_path / "twice", {"model": model(URLs=[F + "x_bf16.safetensors", F + "x_bf16.safetensors"])})
    assert codes(twice) == ["W2"]


# -- loras and multipliers -------------------------------------------------------------------------------------------

def test_loras_multipliers_forms(tmp_path):
    loras = [F + "high.safetensors", F + "low.safetensors"]
    assert run(tmp_path, {"model": model(loras=loras, loras_multipliers=["1;0", 0.5])}) == []
    assert run(tmp_path / "few", {"model": model(loras=loras, loras_multipliers=[1])}) == []  # missing: 1.0
    found = run(tmp_path / "many", {"model": model(loras=loras, loras_multipliers=[1, 2, 3])})
    assert codes(found) == ["E11"]
    found = run(tmp_path / "bad", {"model": model(loras=loras, loras_multipliers=["1;2;3;4", "x"])})
    assert codes(found) == ["E11", "E11"]
    ref = {"model": model(loras=loras, loras_multipliers=[1, 1])}
    assert run(tmp_path / "ref", {"model": model(loras="other", loras_multipliers="other")},
               others=[("other", ref)]) == []


def test_local_loras_live_in_the_lora_folder(tmp_path):
    home = make_home(tmp_path)
    (home / "loras" / "wan").mkdir(parents=True)
    (home / "loras" / "wan" / "mine.safetensors").write_bytes(b"x")
    found = run(tmp_path, {"model": model(loras=["mine.safetensors", "../../../x.safetensors"])})
    assert [c for c, m in found] == ["W5", "E12"] and "missing" not in found[0][1]


# -- settings --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [
    {"model_mode": "x"}, {"model_mode": None}, {"model_mode": 1}, {"multi_prompts_gen_type": "PW"},
    {"multi_prompts_gen_type": 1}, {"video_length": "10s"}, {"perturbation_switch": 1, "perturbation_layers": [9]},
    {"guidance_phases": 2, "switch_threshold": 875, "guidance2_scale": 3}, {"slg_switch": 1, "slg_layers": [9]},
    {"tea_cache_setting": 2, "tea_cache_start_step_perc": 10}, {"force_fps": "auto"}, {"custom_settings": {}},
    {"loras_multipliers": "1;0 0.5,1|2"},
])
def test_v12_settings_types_are_accepted(tmp_path, settings):
    assert run(tmp_path, {"model": model(), **settings}) == []


@pytest.mark.parametrize("settings, code", [
    ({"multi_prompts_gen_type": "Q"}, "E10"), ({"video_length": "ten"}, "E10"), ({"model_mode": []}, "E10"),
    ({"loras_multipliers": "1 abc"}, "E10"), ({"guidance_phases": 4}, "W8"), ({"guidance_scale": 0.5}, "W8"),
    ({"video_length": 82}, "W8"), ({"video_length": 1001}, "W8"), ({"resolution": "1000x1000"}, "W8"),
    ({"sampler_solver": "euler"}, "W7"), ({"sampling_steps": 8}, "W7"), ({"lset_name": "x"}, "W7"),
])
def test_v12_settings_findings(tmp_path, settings, code):
    assert codes(run(tmp_path, {"model": model(), **settings})) == [code]


def test_w8_frames_come_from_the_model(tmp_path):
    assert run(tmp_path, {"model": model(frames_minimum=25, frames_steps=8), "video_length": 65}) == []
    assert codes(run(tmp_path / "b", {"model": model(frames_minimum=25, frames_steps=8), "video_length": 83})) == ["W8"]
    assert run(tmp_path / "image", {"model": model(image_outputs=True), "video_length": 1}) == []


def test_w8_guidance_below_one_allowed_for_distilled_models(tmp_path):
    assert run(tmp_path, {"model": model(), "guidance_scale": 1, "num_inference_steps": 4}) == []
    assert run(tmp_path / "a", {"model": model(), "guidance_scale": 0, "num_inference_steps": 8}) == []
    assert run(tmp_path / "b", {"model": model(), "guidance_scale": 0}, model_id="my_turbo") == []
    assert run(tmp_path / "c", {"model": model(architecture="z_image"), "guidance_scale": 0}) == []


def test_w8_resolutions_from_the_model(tmp_path):
    own = model(resolutions=[["square", "1000x1000"]])
    assert run(tmp_path, {"model": own, "resolution": "992x992"}) == []  # aligned to the 16-pixel VAE block
    assert codes(run(tmp_path / "b", {"model": own, "resolution": "1280x720"})) == ["W8"]
    cats = model(resolutions_categories=[">=720&<=1080"])
    assert run(tmp_path / "c", {"model": cats, "resolution": "1280x720"}) == []
    assert codes(run(tmp_path / "d", {"model": cats, "resolution": "832x480"})) == ["W8"]


def test_dead_model_keys_have_their_own_words(tmp_path):
    found = run(tmp_path, {"model": model(settings_dir=["wan"], profile_dirs=["wan"], xresolutions=[])})
    assert codes(found) == ["W7", "W7", "W7"]
    assert "renamed 'profiles_dir'" in found[0][1] or "renamed 'profiles_dir'" in found[1][1]


# -- v6 / july are unchanged -----------------------------------------------------------------------------------------

def test_july_and_v6_findings_on_v12_forms_are_unchanged(tmp_path):
    data = {"model": model(URLs2=[F + "low_bf16.safetensors"], modules=[[F + "m_bf16.safetensors"]]),
            "model_mode": "x"}
    july = run(tmp_path, data, target="july")
    assert ("E13" in codes(july) and "E10" in codes(july) and "W7" in codes(july))
    v12 = run(tmp_path / "v12", data)
    assert v12 == []
    v6 = run(tmp_path / "v6", {"model": model(architecture="multitalk"), "seed": 1}, target="v6")
    assert codes(v6) == ["E4"]


def test_w8_guidance_phases_beyond_the_model(tmp_path):
    assert codes(run(tmp_path, {"model": model(guidance_max_phases=1), "guidance_phases": 2})) == ["W8"]
    assert run(tmp_path / "b", {"model": model(guidance_max_phases=2), "guidance_phases": 2}) == []
