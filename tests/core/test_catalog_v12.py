"""WanGP 12's catalog (wangp-head-format.md §1, §2.2): base definitions, merges, references, every modules form."""

from __future__ import annotations

import json

import pytest

from conftest import invoke, make_home, write_definition
from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import WangpError
from wangp_cli.core.home import Home
from wangp_cli.core.models import architecture_of, list_models, resolve_model, resolved_modules
from wangp_cli.core.registry import architecture_ids, get_architecture
from wangp_cli.core.variants import Preference

HF = "https://huggingface.co/DeepBeepMeep/Wan2.2/resolve/main/"
VACE = [HF + "wan2.1_Vace_14B_module_mbf16.safetensors", HF + "wan2.1_Vace_14B_module_quanto_mbf16_int8.safetensors"]
MULTITALK = [HF + "wan2.1_multitalk_14B_mbf16.safetensors"]


def base(model_id: str, **model) -> dict:
    """A defaults/<id>.json of WanGP 12: a base type defining itself."""
    return {"model": {"name": model_id, "architecture": model_id, "description": "base", **model}}


def finetune(**model) -> dict:
    return {"model": {"name": "mine", "description": "a finetune", **model}}


@pytest.fixture
def home(tmp_path):
    root = make_home(tmp_path)
    write_definition(root, "t2v", base("t2v", URLs=[HF + "t2v_mbf16.safetensors", HF + "t2v_quanto_mbf16_int8.safetensors"]),
                     "defaults")
    write_definition(root, "t2v_2_2", base("t2v_2_2", URLs=[HF + "high_mbf16.safetensors"],
                                           URLs2=[HF + "low_mbf16.safetensors", HF + "low_quanto_mbf16_int8.safetensors"]),
                     "defaults")
    write_definition(root, "vace_14B", base("vace_14B", URLs="t2v", modules=[VACE]), "defaults")
    write_definition(root, "multitalk", base("multitalk", URLs="t2v", modules=[MULTITALK]), "defaults")
    return root


def catalog(root, target="v12") -> Catalog:
    return Catalog(Home(root), target)


def test_the_registry_has_every_base_type_of_wangp_12():
    ids = architecture_ids("v12")
    assert len(ids) == 126 and len(set(ids)) == 126
    assert {"t2v", "t2v_2_2", "i2v_2_2", "ltx2_22B", "flux", "chatterbox", "yue"} <= set(ids)
    assert not {"i2v_720p", "moviigen", "sky_df_720p_14B", "ltxv_13B_distilled"} & set(ids)
    assert get_architecture("i2v_720p", "july") is not None and get_architecture("t2v_2_2", "july") is None
    ltx = get_architecture("ltx2_22B", "v12")
    assert (ltx.family, ltx.lora_dir, ltx.audio) == ("ltx2", "ltx2", True)
    assert get_architecture("chatterbox", "v12").output == "audio"


def test_a_defaults_file_naming_itself_is_a_base_definition(home):
    cat = catalog(home)
    definition = cat.get("t2v_2_2")
    assert definition.is_base and definition.origin == "defaults"
    assert architecture_of(cat, definition).problem is None
    rows = {r["id"]: r for r in list_models(cat)}
    assert rows["t2v_2_2"]["base"] and rows["t2v_2_2"]["visible"] and rows["t2v_2_2"]["class"] == "t2v"


def test_a_finetune_over_a_defaults_file_merges_model_and_settings(home):
    write_definition(home, "t2v", {**base("t2v", URLs=[HF + "t2v_mbf16.safetensors"]), "num_inference_steps": 30,
                                   "guidance_scale": 5}, "defaults")
    write_definition(home, "t2v", {"model": {"visible": False}, "num_inference_steps": 8})
    cat = catalog(home)
    merged = cat.get("t2v")
    assert merged.model["URLs"] == [HF + "t2v_mbf16.safetensors"] and merged.model["visible"] is False
    assert merged.settings == {"num_inference_steps": 8, "guidance_scale": 5}  # WanGP 12 merges settings too
    assert catalog(home, "july").get("t2v").settings == {"num_inference_steps": 30, "guidance_scale": 5}


def test_a_finetune_over_a_built_in_base_type_merges_with_its_registry_row(tmp_path):
    root = make_home(tmp_path)  # no defaults/ folder: the registry row is WanGP's defaults/t2v_2_2.json
    write_definition(root, "t2v_2_2", {"model": {"visible": False}})
    definition = catalog(root).get("t2v_2_2")
    assert definition.model["visible"] is False
    assert isinstance(definition.model["URLs"], list) and isinstance(definition.model["URLs2"], list)


def test_urls2_references_follow_the_referenced_models_urls2(home):
    write_definition(home, "shotplan", finetune(architecture="t2v_2_2", URLs=[HF + "shot_high_bf16.safetensors"],
                                                URLs2="t2v_2_2"))
    record = resolve_model(catalog(home), "shotplan", Preference("int8"))
    assert record["transformer"]["path"] == "ckpts/shot_high_bf16.safetensors"
    assert record["transformer2"]["path"] == "ckpts/low_quanto_mbf16_int8.safetensors"
    assert resolve_model(catalog(home), "shotplan", Preference("none"))["transformer2"]["path"] == \
        "ckpts/low_mbf16.safetensors"


@pytest.mark.parametrize("modules, expected", [
    ([VACE], [(None, VACE)]),  # a list of variants: one module
    ([VACE, MULTITALK], [(None, VACE), (None, MULTITALK)]),
    (["vace_14B"], [("vace_14B", VACE)]),  # a definition id: that definition's one module
    (["vace_14B", "multitalk"], [("vace_14B", VACE), ("multitalk", MULTITALK)]),
    ("vace_14B", [(None, VACE)]),  # the whole key a reference: vace_14B's list
    ([{"URLs": VACE, "URLs2": MULTITALK}], [(None, VACE)]),
])
def test_every_modules_form(home, modules, expected):
    write_definition(home, "mine", finetune(architecture="vace_14B", URLs="t2v", modules=modules))
    cat = catalog(home)
    found = resolved_modules(cat, cat.get("mine"))
    assert [(m["id"], m["URLs"]) for m in found] == expected
    if isinstance(modules[0], dict):
        assert found[0]["URLs2"] == MULTITALK


def test_a_module_id_is_followed_through_another_id(home):
    write_definition(home, "vace_again", finetune(architecture="vace_14B", URLs="t2v", modules=["vace_14B"]))
    write_definition(home, "mine", finetune(architecture="vace_14B", URLs="t2v", modules=["vace_again"]))
    cat = catalog(home)
    assert [(m["id"], m["URLs"]) for m in resolved_modules(cat, cat.get("mine"))] == [("vace_again", VACE)]


@pytest.mark.parametrize("modules, words", [
    (["two_modules"], "has 2 modules: WanGP needs exactly 1"),
    (["nowhere"], "not a definition"),
    (["loop_a"], "circular module reference"),
])
def test_module_ids_that_wangp_12_refuses(home, modules, words):
    write_definition(home, "two_modules", finetune(architecture="vace_14B", URLs="t2v", modules=[VACE, MULTITALK]))
    write_definition(home, "loop_a", finetune(architecture="t2v", URLs="t2v", modules=["loop_b"]))
    write_definition(home, "loop_b", finetune(architecture="t2v", URLs="t2v", modules=["loop_a"]))
    write_definition(home, "mine", finetune(architecture="vace_14B", URLs="t2v", modules=modules))
    cat = catalog(home)
    with pytest.raises(WangpError, match=words):
        resolved_modules(cat, cat.get("mine"))


def test_show_resolves_modules_with_their_chosen_variants(home):
    write_definition(home, "mine", finetune(architecture="vace_14B", URLs="t2v", modules=["vace_14B"]))
    record = resolve_model(catalog(home), "mine", Preference("int8"))
    assert record["transformer"]["path"] == "ckpts/t2v_quanto_mbf16_int8.safetensors"
    assert [(m["id"], m["path"], m["label"]) for m in record["modules"]] == [
        ("vace_14B", "ckpts/wan2.1_Vace_14B_module_quanto_mbf16_int8.safetensors", "int8-bf16")]


def test_show_puts_model_loras_in_the_family_lora_folder_with_their_multipliers(home):
    lora = "https://huggingface.co/Kijai/WanVideo_comfy/resolve/main/lightx2v_rank64.safetensors"
    write_definition(home, "fast", finetune(architecture="t2v_2_2", URLs="t2v_2_2", URLs2="t2v_2_2",
                                            loras=[lora, lora.replace("rank64", "low")], loras_multipliers=["1;0"]))
    (home / "loras" / "wan").mkdir(parents=True)
    (home / "loras" / "wan" / "lightx2v_rank64.safetensors").write_bytes(b"x")
    record = resolve_model(catalog(home), "fast", Preference("int8"))
    assert [(r["path"], r["present"], r["multiplier"]) for r in record["loras"]] == [
        ("loras/wan/lightx2v_rank64.safetensors", True, "1;0"), ("loras/wan/lightx2v_low.safetensors", False, 1.0)]
    assert record["lora_dir"] == "loras/wan"


def test_a_file_under_the_wangp_folder_itself_counts_as_present(home):
    (home / "t2v_quanto_mbf16_int8.safetensors").write_bytes(b"x")  # root "." after ckpts/
    record = resolve_model(catalog(home), "t2v", Preference("int8"))
    assert (record["transformer"]["path"], record["transformer"]["present"]) == (
        "t2v_quanto_mbf16_int8.safetensors", True)


def test_text_encoder_and_vae_are_shown(home):
    write_definition(home, "ltx_mine", finetune(
        architecture="ltx2_22B", URLs=[HF + "ltx_bf16.safetensors"],
        text_encoder_URLs=[HF + "gemma_bf16.safetensors", HF + "gemma_quanto_bf16_int8.safetensors"],
        text_encoder_folder="gemma", VAE_URLs=HF + "vae.safetensors", configs={"_name": "x", "fast": {}}))
    record = resolve_model(catalog(home), "ltx_mine", Preference("int8"))
    assert record["text_encoder"]["path"] == "ckpts/gemma/gemma_quanto_bf16_int8.safetensors"
    assert [v["path"] for v in record["vae"]] == ["ckpts/vae.safetensors"]
    assert record["configs"] == ["fast"]
    assert record["transformer"]["dtype"] == "bf16"  # the ltx2 handler's dtype key


@pytest.mark.parametrize("architecture, words", [
    ("t2v_fusionix_like", "unknown architecture"),
    ("i2v_720p", "base id of target july"),
    ("mine_base", "names a definition"),
])
def test_architectures_wangp_12_hides(home, architecture, words):
    write_definition(home, "mine_base", finetune(architecture="t2v", URLs="t2v"))
    write_definition(home, "mine", finetune(architecture=architecture, URLs="t2v"))
    cat = catalog(home)
    problem = architecture_of(cat, cat.get("mine")).problem
    assert words in problem and "WanGP 12 hides it" in problem
    assert {r["id"]: r for r in list_models(cat)}["mine"]["visible"] is False


def test_show_json_of_a_wan_2_2_definition_through_the_cli(home):
    result = invoke("show", "t2v_2_2", "--format", "json", home=home)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["transformer2"]["path"] == "ckpts/low_quanto_mbf16_int8.safetensors"
    assert record["group"] == "wan2_2" and record["family"] == "wan"


def test_show_text_names_every_file_wangp_12_loads(home):
    lora = "https://huggingface.co/Kijai/WanVideo_comfy/resolve/main/lightx2v_rank64.safetensors"
    write_definition(home, "fast", {**finetune(architecture="t2v_2_2", URLs="t2v_2_2", URLs2="t2v_2_2",
                                               loras=[lora], loras_multipliers=["1;0"]), "guidance_phases": 2})
    result = invoke("show", "fast", home=home)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "  architecture  t2v_2_2 (wan, image+video, t2v, 16 fps)" in lines
    assert "  generate      WanPipeline" in lines
    assert any(line.startswith("  transformer2  ckpts/low_quanto_mbf16_int8.safetensors (missing)") for line in lines)
    assert any(line.startswith("  text encoder  ckpts/umt5-xxl/models_t5_umt5-xxl-enc-quanto_int8.safetensors")
               for line in lines)
    assert '  lora          loras/wan/lightx2v_rank64.safetensors (missing)  x "1;0"' in lines
    assert "    guidance_phases = 2  (definition)" in lines


def test_list_text_shows_output_and_class_and_hidden_ones(home):
    write_definition(home, "old_style", finetune(architecture="i2v_720p", URLs="t2v"))
    result = invoke("list", home=home)
    header = result.stdout.splitlines()[0].split()
    assert header == ["id", "name", "architecture", "family", "output", "class", "present"]
    assert any(line.startswith("old_style (hidden) (invalid)") for line in result.stdout.splitlines())
    assert "WanGP 12 hides it" in result.stderr


def test_a_second_transformer_changes_the_handler_keys_as_in_wangp(home):
    arch = get_architecture("magi_human", "v12")
    assert arch.keys_for({}).get("guidance_max_phases") == 1
    assert arch.keys_for({"URLs2": ["x.safetensors"]})["guidance_max_phases"] == 2  # the SR stage: 2 phases
    from wangp_cli.core.validation import validate_paths

    path = write_definition(home, "magi_sr", {**finetune(architecture="magi_human", URLs="magi_human",
                                                         URLs2=[HF + "magi_human_sr1080_bf16.safetensors"]),
                                              "guidance_phases": 2})
    found = validate_paths([str(path)], Home(home)).diagnostics
    assert [d.message for d in found if d.code == "W8"] == []
    path = write_definition(home, "magi_plain", {**finetune(architecture="magi_human", URLs="magi_human"),
                                                 "guidance_phases": 2})
    assert any("guidance_phases" in d.message for d in validate_paths([str(path)], Home(home)).diagnostics)


def test_a_reference_to_a_definition_wangp_ships_says_how_to_get_it(home):
    write_definition(home, "mine", finetune(architecture="ltx2_22B", URLs="ltx2_22B_distilled"))
    with pytest.raises(WangpError, match="a definition WanGP ships, missing from this home: copy WanGP's "
                                         "defaults/ltx2_22B_distilled.json"):
        resolve_model(catalog(home), "mine", Preference("int8"))
