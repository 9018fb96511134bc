"""Audit rows about finding and reading definition and settings files, the catalog, ``list`` and ``show``.

Rows 1, 10, 17, 19, 30, 32, 35, 38, 40, 43, 45, 59 and 61 of ``new-user-audit.md``. Special files are real (FIFOs,
devices, directories, dangling links); commands that could hang run in a child process with a timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import definition, invoke as wangp, strict_json, subprocess_env, write_definition
from wangp_cli.core.definitions import Catalog, definition_files, read_source
from wangp_cli.core.home import Home
from wangp_cli.core.registry import family_of, get_architecture
from wangp_cli.core.validation import collect_files, validate_paths

HANG_LIMIT = 30  # seconds: a command blocked on a FIFO or reading /dev/zero fails the test instead of hanging it

#: WanGP 7.0 (64c59c15) defaults/flux_dev_kontext.json, as shipped (the description shortened).
FLUX_KONTEXT = """{
    "model": {
        "name": "Flux Dev Kontext 12B",
        "architecture": "flux_dev_kontext",
        "description": "FLUX.1 Kontext is a 12 billion parameter rectified flow transformer capable of editing...",
        "URLs": [
            "https://huggingface.co/DeepBeepMeep/Flux/resolve/main/flux1_kontext_dev_bf16.safetensors",
            "https://huggingface.co/DeepBeepMeep/Flux/resolve/main/flux1_kontext_dev_quanto_bf16_int8.safetensors"
        ]
    },
\t"prompt": "add a hat",
    "resolution": "1280x720",
    "video_length": 1
}
"""
#: The architectures of WanGP 7.0's defaults/*.json (64c59c15), with the family its get_model_family gives.
WANGP_7_ARCHITECTURES = {
    "fantasy": "wan", "flf2v_720p": "wan", "flux_dev_kontext": "flux", "fun_inp": "wan", "fun_inp_1.3B": "wan",
    "hunyuan": "hunyuan", "hunyuan_avatar": "hunyuan", "hunyuan_custom": "hunyuan", "hunyuan_custom_audio": "hunyuan",
    "hunyuan_custom_edit": "hunyuan", "hunyuan_i2v": "hunyuan", "i2v": "wan", "ltxv_13B": "ltxv", "multitalk": "wan",
    "phantom_1.3B": "wan", "phantom_14B": "wan", "recam_1.3B": "wan", "sky_df_1.3B": "wan", "sky_df_14B": "wan",
    "t2v": "wan", "t2v_1.3B": "wan", "vace_1.3B": "wan", "vace_14B": "wan", "vace_multitalk_14B": "wan",
}
#: WanGP 3749d23d (2025-06-12) finetunes/hunyuan_t2v_fast.json: the architecture under the June key "base".
JUNE_HUNYUAN_FAST = {
    "model": {
        "name": "Hunyuan Fast Video 720p 13B", "base": "hunyuan",
        "description": "Fast Hunyuan is an accelerated HunyuanVideo model.",
        "URLs": ["https://huggingface.co/DeepBeepMeep/HunyuanVideo/resolve/main/fast_hunyuan_video.safetensors"],
        "auto_quantize": True,
    },
    "seed": 42, "num_inference_steps": 6, "flow_shift": 17,
}




def run(*args, home, stdin=None):
    """The real CLI in a child process: a hang is a TimeoutExpired, never a stuck test run."""
    result = subprocess.run([sys.executable, "-m", "wangp_cli", "--home", str(home), *map(str, args)],
                            capture_output=True, text=True, env=subprocess_env(), timeout=HANG_LIMIT,
                            input=stdin if stdin is not None else "")
    assert "Traceback" not in result.stderr
    return result


def bounded(function, *args, **kwargs):
    """``function(*args, **kwargs)`` in this process, failing (not hanging) past HANG_LIMIT seconds."""
    outcome = {}

    def call():
        try:
            outcome["value"] = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            outcome["error"] = exc

    worker = threading.Thread(target=call, daemon=True)  # a thread blocked on a FIFO must not keep pytest alive
    worker.start()
    worker.join(HANG_LIMIT)
    assert not worker.is_alive(), f"{function.__name__} blocked for {HANG_LIMIT} s (reading a FIFO?)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]




def list_rows(home, *args) -> dict:
    result = wangp("list", "-f", "json", *args, home=home)
    assert result.exit_code == 0, result.output
    return {row["id"]: row for row in strict_json(result.stdout)["definitions"]}


# -- row 1 / 43: only regular files are read; every other entry is reported in words ------------------------------

def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _directory(path: Path) -> None:
    path.mkdir()


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "gone.json")


def _device(path: Path) -> None:
    path.symlink_to("/dev/zero")  # reading it would never end


SPECIAL_FILES = {
    "fifo": (_fifo, "is not a regular file (a FIFO)"),
    "directory": (_directory, "is a directory, not a regular file"),
    "dangling": (_dangling, "is a dangling symbolic link"),
    "device": (_device, "is not a regular file (a character device)"),
}


@pytest.mark.parametrize("kind", SPECIAL_FILES)
def test_special_definition_files_are_reported_never_read(home, kind):
    make, words = SPECIAL_FILES[kind]
    write_definition(home, "t2v_ok", definition())
    make(home / "finetunes" / "t2v_x.json")

    checked = run("validate", "--no-hints", home=home)
    assert checked.returncode == 1
    assert f"finetunes/t2v_x.json:1:1: E1 {words}" in checked.stdout
    assert "in 2 files." in checked.stdout  # the good file is checked too

    listed = run("list", home=home)
    assert listed.returncode == 0
    assert "t2v_ok" in listed.stdout and "t2v_x" not in listed.stdout
    assert f"t2v_x.json {words}" in listed.stderr and "skipped" in listed.stderr

    shown = run("show", "t2v_x", home=home)
    assert shown.returncode == 1 and shown.stdout == ""
    assert words in shown.stderr and "E1" in shown.stderr


@pytest.mark.parametrize("kind", SPECIAL_FILES)
def test_special_settings_files_are_reported_never_read(home, kind):
    make, words = SPECIAL_FILES[kind]
    write_definition(home, "t2v_ok", definition())
    make(home / "settings" / "t2v_ok_settings.json")
    checked = run("validate", "--no-hints", home=home)
    assert checked.returncode == 1
    assert f"settings/t2v_ok_settings.json:1:1: E1 {words}" in checked.stdout
    shown = run("show", "t2v_ok", home=home)
    assert shown.returncode == 1 and words in shown.stderr


def _read_without_root(path: Path) -> tuple[str, str]:
    """read_source's (message, hint) as a user the file denies: root reads every file, so a root test run reads
    in a forked child that gave up root (the interpreter is loaded already)."""
    if os.geteuid() != 0:
        error = read_source(path).error
        return error.message, error.hint
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(reader)
            os.setgid(65534)
            os.setuid(65534)
            error = read_source(path).error
            os.write(writer, json.dumps([error.message, error.hint]).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as handle:
        answer = handle.read()
    os.waitpid(pid, 0)
    return tuple(json.loads(answer))


def test_unreadable_file_says_permission_denied():
    folder = Path(tempfile.mkdtemp(prefix="wangp-perm-"))  # outside pytest's 0700 tmp: the child must get in
    try:
        folder.chmod(0o755)
        path = folder / "locked.json"
        path.write_text(json.dumps(definition()))
        path.chmod(0)
        message, hint = _read_without_root(path)
    finally:
        shutil.rmtree(folder)
    assert message == "cannot read (permission denied)"
    assert "chmod" in hint and "syntax" not in hint


@pytest.mark.parametrize("raw, message, hint", [
    (b"\xef\xbb\xbf{}", "starts with a UTF-8 byte order mark (BOM)", "remove the UTF-8 BOM (WanGP rejects it too)"),
    (None, "is a dangling symbolic link (to 'gone.json')", "point the link at an existing file, or remove it"),
])
def test_reading_problems_are_worded_for_what_happened(home, raw, message, hint):
    path = home / "finetunes" / "t2v_x.json"
    if raw is None:
        path.symlink_to("gone.json")
    else:
        path.write_bytes(raw)
    [finding] = validate_paths([str(path)], Home(home)).diagnostics
    assert (finding.code, finding.line, finding.column, finding.message, finding.hint) == ("E1", 1, 1, message, hint)


def test_a_named_special_file_is_checked_not_refused(home):
    os.mkfifo(home / "pipe.json")
    [finding] = bounded(validate_paths, [str(home / "pipe.json")], Home(home)).diagnostics
    assert finding.message == "is not a regular file (a FIFO)" and "'-'" in finding.hint


# -- row 38: one file set for the catalog, list and validate (WanGP's glob: no hidden names) -----------------------

def test_hidden_files_are_left_out_by_catalog_list_and_validate(home, monkeypatch):
    monkeypatch.chdir(home)
    write_definition(home, "t2v_ok", definition())
    write_definition(home, ".t2v_hidden", "{ broken")
    os.mkfifo(home / "finetunes" / ".pipe.json")
    expected = [Path("finetunes/t2v_ok.json")]
    assert definition_files(Path("finetunes")) == expected
    assert [Path(p) for p, _ in collect_files(["finetunes"])] == expected
    assert [s.path for s in bounded(Catalog, Home(".")).sources] == expected
    report = bounded(validate_paths, None, Home("."))
    assert (report.files, report.errors) == (1, 0)
    listed = bounded(wangp, "list", home=".")
    assert ".t2v_hidden" not in listed.output and ".pipe" not in listed.output


# -- row 45: the home folder ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_text("root:x:0:0"), "is not a folder"),
    (lambda p: None, "does not exist"),
    (lambda p: p.symlink_to(p.parent / "gone"), "is a dangling symbolic link"),
])
def test_home_that_is_not_a_folder(tmp_path, make, words):
    target = tmp_path / "passwd"
    make(target)
    result = wangp("list", home=target)
    assert result.exit_code == 2
    assert f"home folder '{target}' {words}" in result.stderr


# -- row 59: `validate -` reads standard input ---------------------------------------------------------------------

def test_validate_dash_reads_standard_input(home):
    good = run("validate", "-", home=home, stdin=json.dumps(definition()))
    assert (good.returncode, good.stdout) == (0, "All checks passed (1 file).\n")
    bad = run("validate", "-", "--no-hints", home=home, stdin=json.dumps(definition(architecture="t2v_14B")))
    assert bad.returncode == 1
    assert bad.stdout.startswith("<stdin>:") and " E4 " in bad.stdout.splitlines()[0]
    bom = run("validate", "-", "-f", "json", home=home, stdin="\ufeff{}")
    assert [d["file"] for d in strict_json(bom.stdout)["diagnostics"]] == ["<stdin>"]
    twice = run("validate", "-", "-", home=home)
    assert twice.returncode == 2 and "given twice" in twice.stderr


# -- row 35: settings/<id>_settings.json is validated too ----------------------------------------------------------

@pytest.mark.parametrize("text, code, needle, message", [
    ("{bad", "E1", "bad", "invalid JSON"),
    ('{\n  "video_length": "abc"\n}', "E10", '"abc"', "'video_length' must be an integer, not a string"),
    ('{"seed": 1, "guidance_scale": NaN}', "E14", "NaN", "'guidance_scale' is NaN, not a finite JSON number"),
    ('{"flow_shift": 1e999}', "E14", "1e999", "'flow_shift' is 1e999, not a finite JSON number"),
    ('{"slg_layers": [9, -Infinity]}', "E14", "-Infinity", "'slg_layers'[1] is -Infinity, not a finite JSON number"),
    ('[1, 2]', "E1", "[", "a settings file must be a JSON object"),
])
def test_settings_file_of_a_definition_is_validated(home, monkeypatch, position, text, code, needle, message):
    monkeypatch.chdir(home)
    write_definition(home, "t2v_fusionix", definition())
    (home / "settings" / "t2v_fusionix_settings.json").write_text(text)
    report = validate_paths(None, Home("."))
    assert report.files == 2
    [finding] = report.diagnostics
    assert (finding.path, finding.code) == ("settings/t2v_fusionix_settings.json", code)
    assert finding.message.startswith(message)
    if code != "E1" or needle != "bad":
        assert (finding.line, finding.column) == position(text, needle)
    result = wangp("validate", home=".")
    assert result.exit_code == 1
    assert f"settings/t2v_fusionix_settings.json:{finding.line}:{finding.column}: {code} " in result.stdout


def test_a_clean_settings_file_counts_and_passes(home):
    write_definition(home, "t2v_fusionix", definition())
    (home / "settings" / "t2v_fusionix_settings.json").write_text(json.dumps({"seed": 3, "prompt": "a cat"}))
    result = wangp("validate", home=home)
    assert (result.exit_code, result.stdout) == (0, "All checks passed (2 files).\n")


# -- row 40: empty finetunes/, full defaults/ ----------------------------------------------------------------------

@pytest.mark.parametrize("finetunes", ["missing", "empty"])
def test_validate_points_at_defaults_when_finetunes_is_empty(tmp_path, monkeypatch, finetunes):
    home = tmp_path / "E"
    for index in range(3):
        write_definition(home, f"t2v_{index}", definition(), folder="defaults")
    if finetunes == "empty":
        (home / "finetunes").mkdir()
    monkeypatch.chdir(home)
    notes = []
    report = validate_paths(None, Home("."), note=notes.append)
    assert (report.files, report.diagnostics) == (0, [])
    assert notes == ["No definitions found in finetunes/ (defaults/ has 3: wangp validate defaults/)"]
    result = wangp("validate", home=".")
    assert (result.exit_code, result.stdout) == (0, "")
    assert result.stderr == notes[0] + "\n"


def test_validate_says_when_finetunes_is_empty(home, monkeypatch):
    monkeypatch.chdir(home)
    notes = []
    validate_paths(None, Home("."), note=notes.append)
    assert notes == ["No definitions found in finetunes/"]


# -- row 30: WanGP 7.0's architectures, flux included -----------------------------------------------------------

def test_every_architecture_of_wangp_7_defaults_is_known_for_july_with_its_family():
    for arch_id, family in WANGP_7_ARCHITECTURES.items():
        arch = get_architecture(arch_id, "july")
        assert arch is not None, arch_id
        assert arch.family == family, arch_id


def test_flux_dev_kontext_validates_lists_and_shows_as_flux(tmp_path, monkeypatch):
    home = tmp_path / "E"
    write_definition(home, "flux_dev_kontext", FLUX_KONTEXT, folder="defaults")
    monkeypatch.chdir(home)
    report = validate_paths(["defaults/flux_dev_kontext.json"], Home("."))
    assert [d.code for d in report.diagnostics if d.code in ("E4", "W9")] == []
    row = list_rows(".")["flux_dev_kontext"]
    assert (row["architecture"], row["family"], row["output"], row["class"], row["problem"]) == (
        "flux_dev_kontext", "flux", "image", "t2i", None)
    shown = wangp("show", "flux_dev_kontext", home=".")
    assert shown.exit_code == 0
    assert "flux_dev_kontext (flux, image, t2i, 16 fps)" in shown.stdout
    july = wangp("show", "flux_dev_kontext", "--target", "july", home=".")
    assert "flux_dev_kontext (flux, t2v, 16 fps)" in july.stdout
    v6 = validate_paths(["defaults/flux_dev_kontext.json"], Home("."), target="v6")
    assert any(d.code == "E4" and "needs WanGP July 2025" in d.message for d in v6.diagnostics)


@pytest.mark.parametrize("arch_id, family", [("t2v_3_0", None), ("ti2v_3_0", None), ("flux_krea", "flux"),
                                             ("hunyuan_avatar_2", "hunyuan"), ("ltxv_2", "ltxv")])
def test_an_unknown_architecture_never_defaults_to_wan(home, arch_id, family):
    assert family_of(arch_id) == family
    write_definition(home, "later", definition(architecture=arch_id))
    row = list_rows(home)["later"]
    assert row["family"] == family and row["problem"]


# -- row 32: unknown, non-string and June 2025 architectures -------------------------------------------------------

@pytest.mark.parametrize("value, words", [("t2v_9000", "has an unknown architecture 't2v_9000'"),
                                          (7, "has an 'architecture' that is not a string"),
                                          (None, "has no 'architecture'")])
def test_show_refuses_an_unusable_architecture_and_list_marks_it(home, value, words):
    data = definition()
    data["model"].pop("architecture")
    if value is not None:
        data["model"]["architecture"] = value
    write_definition(home, "arch_bad", data)
    write_definition(home, "t2v_ok", definition())
    shown = wangp("show", "arch_bad", home=home)
    assert shown.exit_code == 1 and shown.stdout == ""
    assert f"'arch_bad' {words}" in shown.stderr
    listed = wangp("list", home=home)
    assert listed.exit_code == 0
    assert "None" not in listed.output
    line = next(line for line in listed.stdout.splitlines() if line.startswith("arch_bad"))
    assert line.startswith("arch_bad (hidden) (invalid)")  # WanGP 12 hides a model without a base architecture
    assert f"'arch_bad' {words}" in listed.stderr
    rows = list_rows(home)
    assert rows["arch_bad"]["problem"].startswith(words) and rows["t2v_ok"]["problem"] is None


def test_june_2025_base_key_gets_its_family_and_is_marked(home):
    write_definition(home, "hunyuan_t2v_fast", JUNE_HUNYUAN_FAST)
    row = list_rows(home)["hunyuan_t2v_fast"]
    assert (row["architecture"], row["family"], row["class"]) == ("hunyuan", "hunyuan", "t2v")
    assert "'base'" in row["problem"]
    shown = wangp("show", "hunyuan_t2v_fast", home=home)
    assert shown.exit_code == 1 and "rename it to 'architecture'" in shown.stderr


# -- row 61: list --architectures shows where the components come from ------------------------------------------

def test_list_architectures_has_a_components_column():
    lines = wangp("list", "--architectures", "--target", "july").stdout.splitlines()
    assert lines[0].split() == ["id", "name", "family", "class", "fps", "modules", "components"]
    t2v = next(line for line in lines if line.startswith("t2v "))
    assert t2v.split()[-1] == "Wan-AI/Wan2.1-T2V-14B-Diffusers"
    flux = next(line for line in lines if line.startswith("flux_dev_kontext "))
    assert flux.split()[-1] == "-"


# -- row 17 / 10: control characters and lone surrogates in text output -----------------------------------------

EVIL_NAME = "evil\x1b[31mRED\x1b[0m\r\nnext line\u202e\x00end"


@pytest.mark.parametrize("color", ["never", "always"])
def test_control_characters_in_names_are_escaped_in_list_and_show(home, color):
    write_definition(home, "ctrl_name", definition(name=EVIL_NAME))
    write_definition(home, "t2v_ok", definition())
    wide = {"COLUMNS": "200"}  # Rich wraps a long name at the terminal width
    listed = wangp("--color", color, "list", home=home, env=wide)
    shown = wangp("--color", color, "show", "ctrl_name", home=home, env=wide)
    for result in (listed, shown):
        assert result.exit_code == 0
        assert "\x1b[31mRED" not in result.stdout
        assert not set("\r\u202e\x00") & set(result.stdout)
        assert not any(line.startswith("next line") for line in result.stdout.splitlines())
        assert "RED\\x1b[0m\\r\\nnext line\\u202e\\x00end" in result.stdout
    assert len(listed.stdout.splitlines()) == 3  # header and two rows: no fake row


def test_lone_surrogates_are_read_and_shown_escaped(home):
    text = json.dumps(definition(name="NAME")).replace('"NAME"', '"bad \\ud800 name"')
    text = text[:-1] + ', "prompt": "\\udfff"}'
    write_definition(home, "surrogate", text)
    source = read_source(home / "finetunes" / "surrogate.json")
    assert source.error is None and source.data["model"]["name"] == "bad \ud800 name"
    shown = run("show", "surrogate", home=home)  # a real, strict UTF-8 stdout
    assert shown.returncode == 0
    assert shown.stdout.startswith("surrogate: bad \\ud800 name\n") and 'prompt = "\\udfff"' in shown.stdout
    record = strict_json(run("show", "surrogate", "-f", "json", home=home).stdout)
    assert record["name"] == "bad \ud800 name"
    listed = run("list", home=home)
    assert listed.returncode == 0 and "bad \\ud800 name" in listed.stdout


# -- row 19: show -f json is strict JSON whatever the settings hold ---------------------------------------------

def test_show_json_of_non_finite_settings_is_strict(home):
    non_finite = '"guidance_scale": NaN, "flow_shift": 1e999, "embedded_guidance_scale": -Infinity'
    text = json.dumps(definition())[:-1] + ", " + non_finite + "}"
    write_definition(home, "nan", text)
    result = wangp("show", "nan", "-f", "json", home=home)
    assert result.exit_code == 0
    settings = strict_json(result.stdout)["settings"]
    assert (settings["guidance_scale"], settings["flow_shift"], settings["embedded_guidance_scale"]) == \
        (None, None, None)
