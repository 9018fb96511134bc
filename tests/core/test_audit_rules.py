"""Audit rows of the validation rules and of validate / new / export-settings / schema (new-user-audit.md).

Each test names the rows it guards. Real home folders on disk, the real CLI through CliRunner.
"""

from __future__ import annotations

import json
import os

import pytest

from conftest import HF_ME, definition, position, write_definition, invoke as wangp, strict_json
from wangp_cli.core import report as report_module
from wangp_cli.core.home import Home
from wangp_cli.core.schema import is_schema_file, spelled
from wangp_cli.core.validation import validate_paths

LATER = "WanGP 8+ format, not covered by --target july"




def findings(home, data_or_text, model_id="t2v_test", folder="finetunes"):
    """Write one file and validate it: (its text, its diagnostics)."""
    path = write_definition(home, model_id, data_or_text, folder=folder)
    return path.read_text(encoding="utf-8"), validate_paths([str(path)], Home(home)).diagnostics


def only(diagnostics, code):
    return [d for d in diagnostics if d.code == code]




def with_setting(text_or_data, key, literal):
    """A definition whose setting ``key`` is written as the raw JSON ``literal`` (NaN, 1e999, ...)."""
    data = dict(text_or_data)
    data[key] = "@@"
    return json.dumps(data, indent=4).replace('"@@"', literal)


# -- row 9: file names over 255 bytes ------------------------------------------------------------------------------

@pytest.mark.parametrize("prop", ["URLs", "preload_URLs", "loras"])
def test_row9_url_basename_over_255_bytes_is_e7(home, prop):
    url = "http://127.0.0.1:8765/" + "a" * 260 + "_bf16.safetensors"
    urls = [url] if prop == "URLs" else definition()["model"]["URLs"]
    extra = {} if prop == "URLs" else {prop: [url]}
    text, found = findings(home, definition(URLs=urls, **extra))
    [error] = only(found, "E7")
    assert "longer than 255 bytes" in error.message
    assert (error.line, error.column) == position(text, json.dumps(url))


@pytest.mark.parametrize("model_id, url", [
    ("a" * 300, HF_ME + "x_bf16.safetensors"),
    ("t2v_long", "http://127.0.0.1:8765/" + "a" * 260 + "_bf16.safetensors"),
])
def test_row9_new_refuses_long_names_cleanly(home, model_id, url):
    result = wangp("new", model_id, "--architecture", "t2v", "--name", "n", "--url", url, home=home)
    assert result.exit_code == 2
    assert "255 bytes" in result.output and "internal error" not in result.output
    assert list((home / "finetunes").iterdir()) == []


# -- rows 10, 19: values strict JSON cannot carry ------------------------------------------------------------------

@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_row19_non_finite_number_is_e14_saying_what_to_write(home, literal):
    text, found = findings(home, with_setting(definition(), "guidance_scale", literal))
    [error] = only(found, "E14")
    assert (error.line, error.column) == position(text, literal)
    assert f"'guidance_scale' is {literal}" in error.message
    assert "write a number within 1.0..20.0" in error.hint
    assert [d.code for d in found] == ["E14"]  # no W8 / E10 on top of it


def test_row19_non_finite_number_in_the_model_subtree(home):
    data = definition(teacache_coefficients=[1, 2, 3, 4, "@@"])
    text, found = findings(home, json.dumps(data, indent=4).replace('"@@"', "NaN"))
    assert [d.code for d in found] == ["E14"]
    assert found[0].message.startswith("'teacache_coefficients'[4] is NaN")


@pytest.mark.parametrize("where", ["prompt", "name"])
def test_row10_lone_surrogate_is_e14(home, where):
    data = definition(name="evil\\ud800" if where == "name" else "My finetune")
    text = json.dumps(data, indent=4).replace("\\\\ud800", "\\ud800")
    if where == "prompt":
        text = with_setting(data, "prompt", '"a \\ud800 b"')
    text, found = findings(home, text)
    [error] = only(found, "E14")
    assert (error.line, error.column) == position(text, '"a \\ud800' if where == "prompt" else '"evil')
    assert "lone surrogate" in error.message and "\\ud83d\\ude00" in error.hint


def test_row10_lone_surrogate_in_a_url_is_e7_not_a_long_name(home):
    url = HF_ME + "x@@_bf16.safetensors"
    _, found = findings(home, json.dumps(definition(URLs=[url]), indent=4).replace("@@", "\\ud800"))
    assert [(d.code, d.message) for d in found if d.severity == "error"] == \
        [("E7", "unusable URL: it is not valid Unicode (a lone surrogate)")]



@pytest.mark.parametrize("args", [[], ["-o", "out.json"], ["--write"]])
def test_rows10_19_export_settings_writes_strict_json(home, monkeypatch, args):
    data = definition()
    write_definition(home, "t2v_test", with_setting(data, "prompt", '"a \\ud800 b"').replace(
        '"seed": -1', '"seed": -1, "guidance_scale": NaN'))
    monkeypatch.chdir(home)
    result = wangp("export-settings", "t2v_test", *args, home=home)
    assert result.exit_code == 0, result.output
    written = {"-o": home / "out.json", "--write": home / "settings" / "t2v_test_settings.json"}.get(args[:1][0]
                                                                                                   if args else "")
    text = written.read_bytes().decode("utf-8") if written else result.stdout
    exported = strict_json(text)
    assert exported["prompt"] == "a \ud800 b" and exported["guidance_scale"] is None
    assert "written as null" in result.stderr and "written as an escape" in result.stderr


# -- row 12: -o never replaces what is not its own output ----------------------------------------------------------

@pytest.mark.parametrize("command", [["validate"], ["schema"]])
def test_row12_o_refuses_a_definition_without_force(home, command):
    path = write_definition(home, "t2v_sf", definition())
    before = path.read_bytes()
    result = wangp(*command, "-o", path, home=home)
    assert result.exit_code == 1 and "already exists" in result.output
    assert path.read_bytes() == before
    assert wangp(*command, "-o", path, "--force", home=home).exit_code == 0
    assert path.read_bytes() != before


@pytest.mark.parametrize("fmt", ["text", "json", "github"])
def test_row12_validate_o_replaces_an_earlier_report(home, tmp_path, fmt):
    write_definition(home, "t2v_a", definition(architecture="nope", my_key=1))
    out = tmp_path / "report.out"
    for _ in range(2):
        assert wangp("validate", "-f", fmt, "-o", out, home=home).exit_code == 1
    assert report_module.is_report(out)
    assert "t2v_a.json" in out.read_text()


def test_row12_schema_o_replaces_an_earlier_schema(home, tmp_path):
    out = tmp_path / "definition.schema.json"
    assert wangp("schema", "-o", out, home=home).exit_code == 0
    assert is_schema_file(out)
    assert wangp("schema", "-o", out, home=home).exit_code == 0


@pytest.mark.parametrize("text, own", [("", True), ("All checks passed (3 files).\n", True),
                                       ('{\n  "schema": "wangp.validate/1",\n  "summary": {}}', True),
                                       ("::error file=x,line=1::m\n", True), ('{"model": {}}', False),
                                       ("my notes\n", False)])
def test_row12_what_counts_as_a_report(tmp_path, text, own):
    path = tmp_path / "r.txt"
    path.write_text(text)
    assert report_module.is_report(path) is own


@pytest.mark.parametrize("command", [["validate"], ["schema"], ["export-settings", "t2v"]])
def test_row12_o_into_a_read_only_folder_is_one_clean_error(home, tmpfs, command):
    folder = tmpfs.read_only(tmpfs("1m"))
    result = wangp(*command, "-o", folder / "out.txt", home=home)
    assert result.exit_code == 1
    assert "read-only file system" in result.output and "internal error" not in result.output


# -- row 16: credentials in URLs ------------------------------------------------------------------------------------

def test_row16_userinfo_is_e7_and_never_printed(home):
    url = "http://user:secretpass@127.0.0.1:8765/auth/x_bf16.safetensors"
    _, found = findings(home, definition(URLs=[url]))
    [error] = only(found, "E7")
    assert "credentials" in error.message and "HF_TOKEN" in error.hint
    for fmt in ("text", "json", "github"):
        assert "secretpass" not in wangp("validate", "-f", fmt, home=home).output


def test_row16_query_token_redacted_in_w2(home):
    url = HF_ME + "x_bf16.safetensors?token=hf_SECRETTOKEN99"
    _, found = findings(home, definition(URLs=[url]))
    [warning] = only(found, "W2")
    assert "SECRETTOKEN" not in warning.message and "token=***" in warning.message
    assert "HF_TOKEN" in warning.hint


# -- row 33: new refuses base ids and prints the new file's warnings ----------------------------------------------

def test_row33_new_refuses_a_base_architecture_id_unless_force(home):
    args = ["new", "i2v", "--architecture", "t2v", "--name", "n", "--url", HF_ME + "ft_bf16.safetensors"]
    result = wangp(*args, home=home)
    assert result.exit_code == 2 and "W9" in result.output and "--force" in result.output
    assert list((home / "finetunes").iterdir()) == []
    result = wangp(*args, "--force", home=home)
    assert result.exit_code == 0 and (home / "finetunes" / "i2v.json").is_file()
    assert "W9" in result.stderr


def test_row33_new_refuses_a_defaults_id_unless_force(home):
    write_definition(home, "t2v_mine", definition(), folder="defaults")
    args = ["new", "t2v_mine", "--architecture", "t2v", "--name", "n", "--url", HF_ME + "ft_bf16.safetensors"]
    assert wangp(*args, home=home).exit_code == 2
    assert wangp(*args, "--force", home=home).exit_code == 0


@pytest.mark.parametrize("arch, url, code, target", [
    ("t2v", HF_ME + "myft.safetensors", "W1", "july"),  # WanGP 12 needs no dtype token in a name
    ("t2v", "https://huggingface.co/me/ft/blob/main/myft_bf16.safetensors", "W4", "v12"),
    ("ltxv_13B", HF_ME + "myft_bf16.safetensors", "W10", "july"),  # WanGP 12 has no tested-architectures list
    ("t2v", HF_ME + "myft_quanto_bf16.safetensors", "W1", "v12"),  # a quanto file without int8
])
def test_row33_new_prints_the_warnings_of_the_file_it_writes(home, arch, url, code, target):
    result = wangp("new", "x_myft", "--architecture", arch, "--name", "n", "--url", url, "--target", target,
                   home=home)
    assert result.exit_code == 0
    assert result.stdout.strip().endswith("x_myft.json")
    assert f" {code} " in result.stderr


# -- row 63: new adds the architecture's modules -------------------------------------------------------------------

@pytest.mark.parametrize("arch, extra, modules", [
    ("vace_14B", [], ["vace_14B"]),
    ("vace_multitalk_14B", [], ["vace_14B", "multitalk"]),
    ("vace_14B", ["--module", "vace_14B", "--module", "multitalk"], ["vace_14B", "multitalk"]),
    ("t2v", [], None),
])
def test_row63_new_adds_the_architecture_modules(home, arch, extra, modules):
    result = wangp("new", "x_myft", "--architecture", arch, "--name", "n", "--url", HF_ME + "v_bf16.safetensors",
                   *extra, home=home)
    assert result.exit_code == 0, result.output
    model = json.loads((home / "finetunes" / "x_myft.json").read_text())["model"]
    assert model.get("modules") == modules


# -- rows 41, 42: WanGP 8+ defaults/ files --------------------------------------------------------------------------

def test_row41_defaults_file_defining_its_own_architecture(home):
    data = definition(architecture="t2v_2_2")
    text, found = findings(home, data, model_id="t2v_2_2", folder="defaults")
    [error] = only(found, "E4")
    assert error.message == "unknown architecture 't2v_2_2' (a later WanGP version?)"
    assert "use its architecture" not in error.hint and LATER in error.hint
    _, found = findings(home, definition(architecture="t2v_2_2"), model_id="t2v_2_2_myft")
    assert only(found, "E4")[0].message == "unknown architecture 't2v_2_2' (a later WanGP version?)"


def test_row41_no_w9_or_w10_for_defaults_files(home):
    _, found = findings(home, definition(architecture="fun_inp"), model_id="i2v", folder="defaults")
    assert only(found, "W9") == [] and only(found, "W10") == []
    _, found = findings(home, definition(), model_id="i2v")  # a finetune still gets both W9
    assert sorted(d.message.split(" ", 2)[2][:8] for d in only(found, "W9")) == ["override", "replaces"]


@pytest.mark.parametrize("level, key, value, code", [
    ("model", "modules", [[HF_ME + "m_bf16.safetensors"]], "E13"),
    ("model", "loras_multipliers", ["1;0"], "E11"),
    ("model", "loras_multipliers", "i2v_2_2_svi2pro", "E11"),
    ("settings", "model_mode", "en", "E10"),
    ("settings", "model_mode", None, "E10"),
    ("settings", "multi_prompts_gen_type", "FG", "E10"),
    ("settings", "video_length", "10s", "E10"),
])
def test_row42_wangp8_formats_say_so(home, level, key, value, code):
    data = definition(loras=[HF_ME + "l_lora.safetensors"]) if key == "loras_multipliers" else definition()
    (data["model"] if level == "model" else data)[key] = value
    _, found = findings(home, data)
    [finding] = only(found, code)
    assert finding.hint == LATER


def test_row42_module_naming_a_definition_and_plain_wrong_types(home):
    write_definition(home, "lynx", definition(modules=[[HF_ME + "lynx_bf16.safetensors"]]), folder="defaults")
    _, found = findings(home, definition(architecture="vace_14B", modules=["vace_14B", "lynx"]))
    assert LATER in only(found, "E8")[0].hint
    data = definition()
    data["video_length"] = "abc"
    _, found = findings(home, data)
    assert only(found, "E10")[0].hint == ""


# -- row 50: did-you-mean, --ignore codes --------------------------------------------------------------------------

@pytest.mark.parametrize("level, key, meant", [("model", "URL", "URLs"), ("model", "urls", "URLs"),
                                               ("model", "module", "modules"),
                                               ("settings", "video_lenght", "video_length")])
def test_row50_unknown_key_did_you_mean(home, level, key, meant):
    data = definition()
    (data["model"] if level == "model" else data)[key] = 1
    _, found = findings(home, data)
    assert f"(did you mean '{meant}'?)" in only(found, "W7")[0].message


def test_row50_key_at_the_wrong_level(home):
    data = definition(video_length=81)
    data["URLs"] = [HF_ME + "x_bf16.safetensors"]
    _, found = findings(home, data)
    messages = sorted(d.message for d in only(found, "W7"))
    assert messages == ["'URLs' is a model key: WanGP reads it only inside \"model\"",
                        "'video_length' is a setting: WanGP reads it only outside \"model\""]


def test_row50_architecture_did_you_mean(home):
    _, found = findings(home, definition(architecture="T2V"))
    assert "(did you mean 't2v'?)" in only(found, "E4")[0].message


def test_row50_ignore_codes_case_insensitive_and_unknown_refused(home):
    write_definition(home, "t2v_w", definition(my_key=1))
    assert wangp("validate", "--strict", "--ignore", "w7", home=home).exit_code == 0
    result = wangp("validate", "--ignore", "E99", home=home)
    assert result.exit_code == 2 and "did you mean 'E9'" in result.output
    assert wangp("validate", "--ignore", "x", home=home).exit_code == 2


# -- row 53: conflicting options -------------------------------------------------------------------------------------

def test_row53_export_settings_write_with_o_is_a_usage_error(home, tmp_path):
    write_definition(home, "t2v_test", definition())
    result = wangp("export-settings", "t2v_test", "--write", "-o", tmp_path / "x.json", home=home)
    assert result.exit_code == 2 and "conflicting options" in result.output
    assert not (tmp_path / "x.json").exists() and list((home / "settings").iterdir()) == []


# -- row 58: JSON spelling, long values shortened -------------------------------------------------------------------

def test_row58_json_spelling_in_messages(home):
    data = definition(sha256={"https://x/y": "not-a-sha"})
    data["seed"] = True
    data["resolution"] = "832*480"
    _, found = findings(home, data)
    messages = " | ".join(d.message for d in found)
    assert "not true" in messages and "True" not in messages
    assert '"832*480" does not match' in messages and '\'sha256\'["https://x/y"]' in messages


def test_row58_long_numbers_shortened(home):
    _, found = findings(home, with_setting(definition(), "num_inference_steps", "9" * 400))
    assert only(found, "W8")[0].message == \
        "'num_inference_steps' is 9999999…(400 digits), outside WanGP's range 1..100"
    assert spelled(-(10 ** 30)) == "-1000000…(31 digits)" and spelled(None) == "null"


# -- row 64: URL schemes, /blob/ -----------------------------------------------------------------------------------

def test_row64_upper_case_scheme_is_accepted_with_a_warning(home):
    url = "HTTPS://HUGGINGFACE.CO/me/r/resolve/main/x_bf16.safetensors"
    _, found = findings(home, definition(URLs=[url]))
    assert only(found, "E7") == []
    [warning] = only(found, "W4")
    assert warning.hint == "write https://"


def test_row64_blob_url_hint(home):
    _, found = findings(home, definition(URLs=["https://huggingface.co/me/ft/blob/main/a_bf16.safetensors"]))
    assert only(found, "W4")[0].hint.startswith("replace /blob/ with /resolve/")


# -- row 31: written files get the umask's mode ----------------------------------------------------------------------

@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize("args, written", [
    (["new", "t2v_myft", "--architecture", "t2v", "--name", "n", "--url", HF_ME + "m_bf16.safetensors"],
     "finetunes/t2v_myft.json"),
    (["export-settings", "t2v_test", "-o", "{home}/out.json"], "out.json"),
    (["export-settings", "t2v_test", "--write"], "settings/t2v_test_settings.json"),
    (["schema", "-o", "{home}/schema.json"], "schema.json"),
    (["validate", "-o", "{home}/report.txt"], "report.txt"),
])
def test_row31_written_files_get_the_umask_mode(home, umask_022, args, written):
    write_definition(home, "t2v_test", definition())
    result = wangp(*[a.format(home=home) for a in args], home=home)
    assert result.exit_code == 0, result.output
    assert (home / written).stat().st_mode & 0o777 == 0o644

