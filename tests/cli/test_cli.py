"""The ``wangp`` command line: output formats and exit codes (cli-conventions.md §1-§3), on real home folders."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import jsonschema
import pytest
from typer.testing import CliRunner

from conftest import HF_ME, SHIPPED_DEFINITIONS, definition, position, subprocess_env, write_definition
from wangp_cli.cli import app

DIAGNOSTIC = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<column>\d+): (?P<code>[EW]\d+) (?P<message>.*)$")
SHIPPED_IDS = sorted(p.stem for p in SHIPPED_DEFINITIONS)
DOCUMENTED = ("t2v", "i2v", "i2v_720p", "vace_14B", "hunyuan", "hunyuan_i2v")
FUSIONIX_URL = "https://huggingface.co/DeepBeepMeep/Wan2.1/resolve/main/"

runner = CliRunner()


def wangp(*args, home=None, env=None):
    argv = (["--home", str(home)] if home is not None else []) + [str(a) for a in args]
    result = runner.invoke(app, argv, env=env)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def diagnostics(stdout):
    return [DIAGNOSTIC.match(line).groupdict() for line in stdout.splitlines() if DIAGNOSTIC.match(line)]


def run_module(*args, env=None, cwd=None):
    """The real console entry in a child process."""
    return subprocess.run([sys.executable, "-m", "wangp_cli", *map(str, args)], capture_output=True, text=True,
                          env=env or subprocess_env(), cwd=cwd, timeout=60)


# -- list -----------------------------------------------------------------------------------------------------------

def test_list_text(shipped_home):
    result = wangp("list", home=shipped_home)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:]] == SHIPPED_IDS
    fusionix = next(line for line in lines if line.startswith("t2v_fusionix "))
    assert fusionix.split()[-1] == "-"  # nothing present in ckpts/


def test_list_json(shipped_home):
    result = wangp("list", "--format", "json", home=shipped_home)
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    rows = {row["id"]: row for row in document["definitions"]}
    assert sorted(rows) == SHIPPED_IDS
    assert (rows["t2v_fusionix"]["architecture"], rows["t2v_fusionix"]["family"]) == ("t2v", "wan")
    assert (rows["hunyuan_t2v_fast"]["architecture"], rows["hunyuan_t2v_fast"]["family"]) == ("hunyuan", "hunyuan")
    assert [v["path"] for v in rows["t2v_fusionix"]["variants"]] == [
        "ckpts/Wan14BT2VFusioniX_fp16.safetensors", "ckpts/Wan14BT2VFusioniX_quanto_fp16_int8.safetensors",
        "ckpts/Wan14BT2VFusioniX_quanto_bf16_int8.safetensors"]


def test_list_hides_invisible_definitions_unless_all(shipped_home):
    write_definition(shipped_home, "t2v_hidden", definition(visible=False))
    ids = [r["id"] for r in json.loads(wangp("list", "-f", "json", home=shipped_home).stdout)["definitions"]]
    assert "t2v_hidden" not in ids and "t2v_fusionix" in ids
    ids = [r["id"] for r in json.loads(wangp("list", "--all", "-f", "json", home=shipped_home).stdout)["definitions"]]
    assert "t2v_hidden" in ids
    assert "t2v_hidden" not in wangp("list", home=shipped_home).stdout
    assert "t2v_hidden" in wangp("list", "--all", home=shipped_home).stdout


def test_list_architectures(home):
    text = wangp("list", "--architectures", home=home)
    assert text.exit_code == 0
    listed = {line.split()[0] for line in text.stdout.splitlines()[1:]}
    assert set(DOCUMENTED) - {"i2v_720p"} <= listed and len(listed) == 126  # WanGP 12: i2v_720p is an i2v definition
    july = {r["id"] for r in json.loads(wangp("list", "--architectures", "-f", "json", "--target", "july").stdout)[
        "architectures"]}
    v6 = {r["id"] for r in json.loads(
        wangp("list", "--architectures", "--target", "v6", "-f", "json").stdout)["architectures"]}
    assert set(DOCUMENTED) <= v6 <= july
    assert "multitalk" in july - v6


def test_list_shows_variants_present_in_ckpts(shipped_home):
    (shipped_home / "ckpts" / "Wan14BT2VFusioniX_quanto_bf16_int8.safetensors").write_bytes(b"")
    rows = {r["id"]: r for r in json.loads(wangp("list", "-f", "json", home=shipped_home).stdout)["definitions"]}
    present = {v["path"]: v["present"] for v in rows["t2v_fusionix"]["variants"]}
    assert present == {"ckpts/Wan14BT2VFusioniX_fp16.safetensors": False,
                       "ckpts/Wan14BT2VFusioniX_quanto_fp16_int8.safetensors": False,
                       "ckpts/Wan14BT2VFusioniX_quanto_bf16_int8.safetensors": True}
    # vace_14B_fusionix lists the same file
    assert any(v["present"] for v in rows["vace_14B_fusionix"]["variants"])
    assert not any(v["present"] for v in rows["t2v_sf"]["variants"])
    text = wangp("list", home=shipped_home).stdout
    fusionix = next(line for line in text.splitlines() if line.startswith("t2v_fusionix "))
    assert fusionix.split()[-1] != "-"


def test_list_v6_target_ignores_the_july_visible_key(shipped_home):
    write_definition(shipped_home, "t2v_hidden", definition(visible=False))
    result = wangp("list", "--target", "v6", "-f", "json", home=shipped_home)
    assert "t2v_hidden" in [r["id"] for r in json.loads(result.stdout)["definitions"]]


def test_list_with_a_broken_definition_still_lists_the_others(shipped_home):
    write_definition(shipped_home, "t2v_broken", "{ nope")
    result = wangp("list", "-f", "json", home=shipped_home)
    assert result.exit_code == 0
    assert sorted(r["id"] for r in json.loads(result.stdout)["definitions"]) == SHIPPED_IDS
    assert "t2v_broken" in result.stderr


# -- show -----------------------------------------------------------------------------------------------------------

def show_json(home, *args):
    result = wangp("show", *args, "--format", "json", home=home)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_show_json_shape(shipped_home):
    record = show_json(shipped_home, "t2v_fusionix")
    assert {"id", "name", "architecture", "family", "transformer", "modules", "preload", "settings"} <= set(record)
    assert (record["id"], record["name"], record["architecture"], record["family"]) == \
        ("t2v_fusionix", "Wan text2video FusioniX 14B", "t2v", "wan")
    transformer = record["transformer"]
    assert {"url", "path", "quantized", "dtype", "present"} <= set(transformer)
    assert transformer == {**transformer,
                           "url": FUSIONIX_URL + "Wan14BT2VFusioniX_quanto_bf16_int8.safetensors",
                           "path": "ckpts/Wan14BT2VFusioniX_quanto_bf16_int8.safetensors",
                           "quantized": True, "dtype": "bf16", "present": False}
    assert record["modules"] == [] and record["preload"] == []
    assert record["settings"]["num_inference_steps"] == 8


@pytest.mark.parametrize("args, path, quantized, dtype", [
    (("--dtype", "fp16"), "ckpts/Wan14BT2VFusioniX_quanto_fp16_int8.safetensors", True, "fp16"),
    (("--quantization", "none"), "ckpts/Wan14BT2VFusioniX_fp16.safetensors", False, "bf16"),
    (("--quantization", "none", "--dtype", "fp16"), "ckpts/Wan14BT2VFusioniX_fp16.safetensors", False, "fp16"),
    (("--quantization", "fp8", "--target", "july"), "ckpts/Wan14BT2VFusioniX_fp16.safetensors", False, None),
    # WanGP 12: no fp8 file, so fp8 falls back to the int8 one
    (("--quantization", "fp8"), "ckpts/Wan14BT2VFusioniX_quanto_bf16_int8.safetensors", True, "bf16"),
])
def test_show_quantization_and_dtype_choose_the_file(shipped_home, args, path, quantized, dtype):
    transformer = show_json(shipped_home, "t2v_fusionix", *args)["transformer"]
    assert (transformer["path"], transformer["quantized"]) == (path, quantized)
    if dtype:
        assert transformer["dtype"] == dtype


def test_show_dtype_follows_the_quanto_file_name(home):
    # §7: a quanto file's name wins over the wanted dtype; so does the name of a file quantized at load
    write_definition(home, "t2v_q", definition(URLs=[HF_ME + "x_fp16.safetensors",
                                                     HF_ME + "x_quanto_bf16_int8.safetensors"]))
    transformer = show_json(home, "t2v_q", "--dtype", "fp16")["transformer"]
    assert (transformer["path"], transformer["dtype"]) == ("ckpts/x_quanto_bf16_int8.safetensors", "bf16")
    write_definition(home, "t2v_auto", definition(URLs=[HF_ME + "y_fp16.safetensors"], auto_quantize=True))
    transformer = show_json(home, "t2v_auto", "--dtype", "bf16")["transformer"]
    assert (transformer["path"], transformer["auto_quantize"], transformer["dtype"]) == \
        ("ckpts/y_fp16.safetensors", True, "fp16")
    transformer = show_json(home, "t2v_auto", "--dtype", "bf16", "--quantization", "none")["transformer"]
    assert (transformer["auto_quantize"], transformer["dtype"]) == (False, "bf16")


def test_show_present_after_creating_the_file(shipped_home):
    (shipped_home / "ckpts" / "Wan14BT2VFusioniX_quanto_bf16_int8.safetensors").write_bytes(b"")
    assert show_json(shipped_home, "t2v_fusionix")["transformer"]["present"] is True
    assert show_json(shipped_home, "t2v_fusionix", "--dtype", "fp16")["transformer"]["present"] is False


def test_show_modules_and_preload(shipped_home):
    vace = show_json(shipped_home, "vace_14B_fusionix")
    assert [(m["id"], m["path"]) for m in vace["modules"]] == [
        ("vace_14B", "ckpts/wan2.1_Vace_14B_module_quanto_mbf16_int8.safetensors")]
    vace = show_json(shipped_home, "vace_14B_fusionix", "--quantization", "none")
    assert vace["modules"][0]["path"] == "ckpts/wan2.1_Vace_14B_module_mbf16.safetensors"
    fast = show_json(shipped_home, "hunyuan_t2v_fast")
    assert [p["path"] for p in fast["preload"]] == ["ckpts/fast_hunyuan_video_720_quanto_int8_map.json"]
    assert fast["transformer"]["path"] == "ckpts/fast_hunyuan_video_720_quanto_int8.safetensors"


def test_show_string_reference_and_base_id(shipped_home):
    write_definition(shipped_home, "t2v_ref", definition(URLs="t2v_fusionix"))
    assert show_json(shipped_home, "t2v_ref", "--dtype", "fp16")["transformer"]["path"] == \
        "ckpts/Wan14BT2VFusioniX_quanto_fp16_int8.safetensors"
    base = show_json(shipped_home, "t2v", "--dtype", "fp16")
    assert base["transformer"]["path"] == "ckpts/wan2.1_text2video_14B_quanto_mfp16_int8.safetensors"


def test_finetune_with_a_base_id_replaces_the_base_model(shipped_home):
    write_definition(shipped_home, "t2v", definition(name="My t2v"))
    record = show_json(shipped_home, "t2v")
    assert record["name"] == "My t2v"
    assert record["transformer"]["path"] == "ckpts/my_finetune_quanto_bf16_int8.safetensors"


def test_defaults_definition_is_shallow_merged_with_the_finetune(home):
    write_definition(home, "t2v_mine", definition(), folder="defaults")
    write_definition(home, "t2v_mine", {"model": {"name": "Renamed", "URLs": [HF_ME + "other_bf16.safetensors"]}})
    record = show_json(home, "t2v_mine")
    assert (record["name"], record["architecture"]) == ("Renamed", "t2v")
    assert record["transformer"]["path"] == "ckpts/other_bf16.safetensors"


def test_show_text(shipped_home):
    result = wangp("show", "t2v_fusionix", home=shipped_home)
    assert result.exit_code == 0
    assert "ckpts/Wan14BT2VFusioniX_quanto_bf16_int8.safetensors" in result.stdout
    assert result.stdout.startswith("t2v_fusionix: Wan text2video FusioniX 14B")


@pytest.mark.parametrize("command", [["show", "nope"], ["export-settings", "nope"], ["show", "t2v_fusionix2"]])
def test_unknown_id_is_one_error_line_and_exit_1(shipped_home, command):
    result = wangp(*command, home=shipped_home)
    assert result.exit_code == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and command[1] in errors[0]


def test_missing_home_is_a_usage_error(tmp_path):
    result = wangp("list", home=tmp_path / "does-not-exist")
    assert result.exit_code == 2


# -- validate -------------------------------------------------------------------------------------------------------

@pytest.fixture
def mixed_home(home):
    """Three files: 2 errors and 1 warning (E4 + W7 in one, E10 in another), and a clean one."""
    data = definition(architecture="t2v_14B", my_key=1)
    write_definition(home, "t2v_a", data)
    data = definition()
    data["video_length"] = "81"
    write_definition(home, "t2v_b", data)
    write_definition(home, "t2v_c", definition())
    return home


def test_validate_clean_exit_0(shipped_home):
    result = wangp("validate", home=shipped_home)
    assert result.exit_code == 0
    assert [d for d in diagnostics(result.stdout) if d["code"].startswith("E")] == []


def test_validate_findings_text(mixed_home, monkeypatch):
    monkeypatch.chdir(mixed_home)
    result = wangp("validate", "finetunes", home=".")
    assert result.exit_code == 1
    found = diagnostics(result.stdout)
    assert [(d["path"], d["code"]) for d in found] == [
        ("finetunes/t2v_a.json", "E4"), ("finetunes/t2v_a.json", "W7"), ("finetunes/t2v_b.json", "E10")]
    text_a = (mixed_home / "finetunes" / "t2v_a.json").read_text()
    assert (int(found[0]["line"]), int(found[0]["column"])) == position(text_a, '"t2v_14B"')
    assert result.stdout.splitlines()[-1] == "Found 2 errors and 1 warning in 3 files."


def test_validate_relative_file_path_is_kept(mixed_home, monkeypatch):
    monkeypatch.chdir(mixed_home)
    result = wangp("validate", "finetunes/t2v_b.json", "--no-hints", home=".")
    assert result.stdout.splitlines()[0].startswith("finetunes/t2v_b.json:")
    assert result.stdout.splitlines()[-1] == "Found 1 error and 0 warnings in 1 file."


def test_validate_warnings_exit_0_unless_strict(home):
    write_definition(home, "t2v_w", definition(my_key=1))
    assert wangp("validate", home=home).exit_code == 0
    assert wangp("validate", "--strict", home=home).exit_code == 1
    assert wangp("validate", "--strict", "--ignore", "W7", home=home).exit_code == 0


def test_validate_ignore(mixed_home):
    result = wangp("validate", "--ignore", "E4", "--ignore", "E10", "-f", "json", home=mixed_home)
    assert result.exit_code == 0
    assert [d["code"] for d in json.loads(result.stdout)["diagnostics"]] == ["W7"]


@pytest.mark.parametrize("args", [["validate", "nope.json"], ["validate", "--format", "xml"],
                                  ["validate", "--target", "v7"], ["validate", "--bogus"], ["frobnicate"]])
def test_validate_usage_errors_exit_2(shipped_home, args):
    assert wangp(*args, home=shipped_home).exit_code == 2


def test_validate_json_is_one_document_with_findings(mixed_home):
    result = wangp("validate", "--format", "json", home=mixed_home)
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["schema"] == "wangp.validate/1"
    assert document["summary"] == {"files": 3, "errors": 2, "warnings": 1}
    fields = {"file", "line", "column", "end_line", "end_column", "code", "severity", "message", "hint"}
    assert all(fields <= set(d) for d in document["diagnostics"])
    assert [(d["code"], d["severity"]) for d in document["diagnostics"]] == [
        ("E4", "error"), ("W7", "warning"), ("E10", "error")]


def test_validate_json_clean_has_empty_diagnostics(home):
    write_definition(home, "t2v_ok", definition())
    result = wangp("validate", "-f", "json", home=home)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"schema": "wangp.validate/1",
                                         "summary": {"files": 1, "errors": 0, "warnings": 0}, "diagnostics": []}


def test_validate_json_with_a_syntax_error_file(home):
    write_definition(home, "t2v_bad", '{\n  "model": {\n}')
    result = wangp("validate", "-f", "json", home=home)
    assert result.exit_code == 1
    [finding] = json.loads(result.stdout)["diagnostics"]
    assert finding["code"] == "E1"


def test_validate_no_files_no_summary(home):
    result = wangp("validate", home=home)
    assert result.exit_code == 0
    assert result.stdout == ""


def test_validate_github_format(home, monkeypatch):
    write_definition(home, "t2v_a,b", definition(**{"50%\nof": 1}, architecture="t2v_14B"))
    monkeypatch.chdir(home)
    result = wangp("validate", "--format", "github", home=".")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all(line.startswith(("::error ", "::warning ")) for line in lines)
    error = next(line for line in lines if line.startswith("::error "))
    assert "file=finetunes/t2v_a%2Cb.json," in error and "title=E4::" in error
    warning = next(line for line in lines if line.startswith("::warning "))
    assert "50%25%0Aof" in warning and "title=W7::" in warning


def test_validate_github_actions_env_picks_github(mixed_home):
    result = wangp("validate", home=mixed_home, env={"GITHUB_ACTIONS": "true"})
    assert result.exit_code == 1
    assert result.stdout and all(line.startswith("::") for line in result.stdout.splitlines())
    result = wangp("validate", "--format", "text", home=mixed_home, env={"GITHUB_ACTIONS": "true"})
    assert len(diagnostics(result.stdout)) == 3


def test_validate_output_file(mixed_home, tmp_path):
    report = tmp_path / "report.json"
    result = wangp("validate", "-f", "json", "--output-file", report, home=mixed_home)
    assert result.exit_code == 1 and result.stdout == ""
    assert json.loads(report.read_text())["summary"]["errors"] == 2


def test_validate_hints(home):
    write_definition(home, "t2v_a", definition(architecture="t2v_14B"))
    with_hints = wangp("validate", home=home).stdout
    without = wangp("validate", "--no-hints", home=home).stdout
    assert len(with_hints.splitlines()) > len(without.splitlines())
    assert diagnostics(with_hints) == diagnostics(without)


# -- export-settings ------------------------------------------------------------------------------------------------

def test_export_settings_stdout(shipped_home):
    result = wangp("export-settings", "t2v_fusionix", home=shipped_home)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert list(data)[-2:] == ["model_filename", "model_type"]
    # WanGP 12 writes the raw chosen entry (a URL), July the local path
    assert data["model_filename"] == ("https://huggingface.co/DeepBeepMeep/Wan2.1/resolve/main/"
                                      "Wan14BT2VFusioniX_quanto_bf16_int8.safetensors")
    assert (data["type"], data["settings_version"]) == ("WanGP v12.60 by DeepBeepMeep - Wan text2video FusioniX 14B",
                                                        2.74)
    assert result.stdout.splitlines()[1].startswith('    "')  # 4-space indent
    july = json.loads(wangp("export-settings", "t2v_fusionix", "--target", "july", home=shipped_home).stdout)
    assert july["model_filename"] == "ckpts/Wan14BT2VFusioniX_quanto_bf16_int8.safetensors"


def test_export_settings_options(shipped_home):
    result = wangp("export-settings", "t2v_fusionix", "--quantization", "none", "--target", "v6", home=shipped_home)
    data = json.loads(result.stdout)
    assert data["model_filename"] == "ckpts/Wan14BT2VFusioniX_fp16.safetensors"
    assert data["settings_version"] == 2 and "base_model_type" not in data


def test_export_settings_output_file_and_force(shipped_home, tmp_path):
    target = tmp_path / "fusionix.json"
    result = wangp("export-settings", "t2v_fusionix", "-o", target, home=shipped_home)
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(target.read_text())["model_type"] == "t2v_fusionix"
    target.write_text("keep me")
    result = wangp("export-settings", "t2v_fusionix", "-o", target, home=shipped_home)
    assert result.exit_code != 0
    assert target.read_text() == "keep me"
    result = wangp("export-settings", "t2v_fusionix", "-o", target, "--force", home=shipped_home)
    assert result.exit_code == 0
    assert json.loads(target.read_text())["model_type"] == "t2v_fusionix"


def test_export_settings_write(shipped_home):
    result = wangp("export-settings", "t2v_fusionix", "--write", home=shipped_home)
    assert result.exit_code == 0
    written = shipped_home / "settings" / "t2v_fusionix_settings.json"
    data = json.loads(written.read_text())
    assert data["num_inference_steps"] == 8 and "settings_version" in data
    assert wangp("export-settings", "t2v_fusionix", "--write", home=shipped_home).exit_code != 0
    data["num_inference_steps"] = 11
    written.write_text(json.dumps(data))
    record = show_json(shipped_home, "t2v_fusionix")
    assert record["settings"]["num_inference_steps"] == 11
    assert wangp("export-settings", "t2v_fusionix", "--write", "--force", home=shipped_home).exit_code == 0
    assert json.loads(written.read_text())["num_inference_steps"] == 11  # the settings file is a layer


# -- new ------------------------------------------------------------------------------------------------------------

NEW = ["new", "t2v_myft", "--architecture", "t2v", "--name", "My finetune",
       "--url", HF_ME + "myft_bf16.safetensors", "--url", HF_ME + "myft_quanto_bf16_int8.safetensors"]


def test_new_writes_a_definition_that_validates_clean(home):
    result = wangp(*NEW, home=home)
    assert result.exit_code == 0
    path = home / "finetunes" / "t2v_myft.json"
    data = json.loads(path.read_text())
    assert data["model"] == {"name": "My finetune", "architecture": "t2v", "description": "My finetune",
                             "URLs": [HF_ME + "myft_bf16.safetensors", HF_ME + "myft_quanto_bf16_int8.safetensors"]}
    result = wangp("validate", "--strict", home=home)
    assert result.exit_code == 0, result.stdout
    assert show_json(home, "t2v_myft")["transformer"]["path"] == "ckpts/myft_quanto_bf16_int8.safetensors"


def test_new_for_the_v6_target_validates_clean_for_v6(home):
    result = wangp(*NEW, "--target", "v6", home=home)
    assert result.exit_code == 0
    assert "seed" in json.loads((home / "finetunes" / "t2v_myft.json").read_text())  # E9
    assert wangp("validate", "--target", "v6", "--strict", home=home).exit_code == 0


def test_new_uses_the_architecture_settings_file(home):
    (home / "settings" / "t2v_settings.json").write_text(json.dumps({"num_inference_steps": 12, "seed": 7}))
    assert wangp(*NEW, home=home).exit_code == 0
    data = json.loads((home / "finetunes" / "t2v_myft.json").read_text())
    assert (data["num_inference_steps"], data["seed"]) == (12, 7)


def test_new_with_modules_and_preload(home):
    result = wangp("new", "vace_14B_myft", "--architecture", "vace_14B", "--name", "V", "--module", "vace_14B",
                   "--preload-url", HF_ME + "map.json", "--url", HF_ME + "v_bf16.safetensors", home=home)
    assert result.exit_code == 0
    model = json.loads((home / "finetunes" / "vace_14B_myft.json").read_text())["model"]
    assert model["modules"] == ["vace_14B"] and model["preload_URLs"] == [HF_ME + "map.json"]
    assert wangp("validate", home=home).exit_code == 0


def test_new_refuses_to_overwrite(home):
    path = write_definition(home, "t2v_myft", definition(name="Original"))
    before = path.read_bytes()
    result = wangp(*NEW, home=home)
    assert result.exit_code != 0
    assert path.read_bytes() == before


@pytest.mark.parametrize("arch", ["t2v_14B", "nope"])
def test_new_refuses_unknown_architecture(home, arch):
    result = wangp("new", "x_myft", "--architecture", arch, "--name", "X", "--url", HF_ME + "x_bf16.safetensors",
                   home=home)
    assert result.exit_code == 2
    assert list((home / "finetunes").iterdir()) == []


@pytest.mark.parametrize("url", ["ftp://example.com/x_bf16.safetensors", "https://example.com/models/"])
def test_new_refuses_unusable_urls(home, url):
    result = wangp("new", "t2v_myft", "--architecture", "t2v", "--name", "X", "--url", url, home=home)
    assert result.exit_code == 2
    assert list((home / "finetunes").iterdir()) == []


def test_new_refuses_an_invalid_id(home):
    result = wangp("new", "../escape", "--architecture", "t2v", "--name", "X", "--url", HF_ME + "x_bf16.safetensors",
                   home=home)
    assert result.exit_code == 2
    assert not (home / "escape.json").exists()


# -- schema ---------------------------------------------------------------------------------------------------------

def test_schema_prints_a_valid_json_schema(home, tmp_path):
    result = wangp("schema", home=home)
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in SHIPPED_DEFINITIONS:
        jsonschema.Draft202012Validator(schema).validate(json.loads(path.read_text()))
    out = tmp_path / "schema.json"
    assert wangp("schema", "-o", out, home=home).exit_code == 0
    assert json.loads(out.read_text()) == schema


# -- the real console entry -----------------------------------------------------------------------------------------

def test_module_entry_validate_json_and_exit_code(mixed_home):
    result = run_module("--home", mixed_home, "validate", "--format", "json")
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["schema"] == "wangp.validate/1" and document["summary"]["errors"] == 2
    assert "Traceback" not in result.stderr


def test_module_entry_clean_and_strict(shipped_home):
    assert run_module("--home", shipped_home, "validate").returncode == 0
    write_definition(shipped_home, "t2v_w", definition(my_key=1))
    assert run_module("--home", shipped_home, "validate").returncode == 0
    assert run_module("--home", shipped_home, "validate", "--strict").returncode == 1


def test_module_entry_wangp_home_env(shipped_home, tmp_path):
    result = run_module("list", "--format", "json", env=subprocess_env(WANGP_HOME=str(shipped_home)), cwd=tmp_path)
    assert result.returncode == 0
    assert sorted(r["id"] for r in json.loads(result.stdout)["definitions"]) == SHIPPED_IDS


def test_module_entry_unknown_id_no_traceback(shipped_home):
    result = run_module("--home", shipped_home, "show", "nope")
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


def test_module_entry_usage_errors(shipped_home):
    assert run_module("--home", shipped_home, "validate", "missing.json").returncode == 2
    assert run_module("--home", shipped_home, "validate", "--format", "yaml").returncode == 2


def test_module_entry_github_actions(mixed_home):
    result = run_module("--home", mixed_home, "validate", env=subprocess_env(GITHUB_ACTIONS="true"))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith(("::error ", "::warning ")) for line in lines)
