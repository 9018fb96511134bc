"""Malformed definitions: validation reports findings, it never crashes (cli-conventions §1: parse errors are
findings, not crashes; §3: validate exits 0 or 1, 2 only for usage errors)."""

from __future__ import annotations

import json
import string
import subprocess
import sys

import pytest
from hypothesis import event, example, given, settings, strategies as st
from typer.testing import CliRunner

from conftest import HF_ME, definition, make_home, position, subprocess_env, write_definition
from wangp_cli.cli import app
from wangp_cli.core import keys as K
from wangp_cli.core.home import Home
from wangp_cli.core.registry import ARCHITECTURES, MODULES
from wangp_cli.core.validation import CODES, validate_paths

FUZZ_ID = "t2v_fuzz"
runner = CliRunner()


@pytest.fixture(scope="module")
def fuzz_home(tmp_path_factory):
    """A home with a few definitions that fuzzed string references can point at (one of them loops)."""
    root = make_home(tmp_path_factory.mktemp("fuzz") / "home")
    write_definition(root, "t2v_target", definition(loras=[HF_ME + "l.safetensors"], preload_URLs=[HF_ME + "m.json"]))
    write_definition(root, "t2v_loop_a", definition(URLs="t2v_loop_b"))
    write_definition(root, "t2v_loop_b", definition(URLs="t2v_loop_a"))
    write_definition(root, "t2v_broken", "{ not json")
    (root / "ckpts" / "present_bf16.safetensors").write_bytes(b"")
    return root


# -- strategies -----------------------------------------------------------------------------------------------------

SAFE = string.ascii_letters + string.digits + "._-%"
any_chars = st.characters(blacklist_categories=())  # surrogates, NUL and control characters included
path_text = st.text(alphabet=SAFE + "/", max_size=24) | st.text(any_chars, max_size=16) \
    | st.sampled_from(["a" * 300, "[", "]", "\x00", "\ud800", "\uff03", "..", "%00"])
ids = st.sampled_from(["t2v", "i2v", "vace_14B", "hunyuan", "ltxv_13B", "multitalk", "t2v_target", "t2v_loop_a",
                       "t2v_broken", FUZZ_ID, "nope", "", "T2V"])
entries = st.one_of(
    st.builds(lambda prefix, middle, suffix: prefix + middle + suffix,
              st.sampled_from(["https://huggingface.co/o/r/resolve/main/", "https://huggingface.co/o/r/blob/main/",
                               "https://hf.co/o/r/resolve/main/", "http://example.com/", "https://example.com/a/",
                               "ftp://example.com/", "s3://b/", "file:///", "https:///", "https://", "http://",
                               "ckpts/", "../", "/tmp/", "/", "C:\\models\\", "\\\\server\\share\\", "", "./",
                               "ckpts/../../"]),
              path_text,
              st.sampled_from(["_bf16.safetensors", "_fp16.safetensors", "_quanto_bf16_int8.safetensors",
                               "_quanto_mfp16_int8.safetensors", "_BF16.safetensors", "_QUANTO_int8.safetensors",
                               ".safetensors", "?download=true", "/", "%2e%2e", "%2F", "", ".."])),
    st.just("ckpts/present_bf16.safetensors"),
    st.text(any_chars, max_size=12),
)
leaf = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10) | st.text(any_chars, max_size=4)
        | st.sampled_from([0, 1, -1, 81, 80, 5.0, 1e308, "", "832x480", "832*480", "81"]))
json_values = st.recursive(leaf, lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=6), children, max_size=3), max_leaves=6)


def model_value(key):
    if key == "architecture":
        return ids | st.sampled_from(list(ARCHITECTURES)) | json_values
    if key in ("URLs", "preload_URLs", "loras"):
        return ids | st.lists(entries, max_size=5) | st.lists(entries | json_values, max_size=3) | json_values
    if key == "modules":
        return ids | st.lists(st.sampled_from([*MODULES, "nope", ""]) | json_values, max_size=3) | json_values
    if key in ("loras_multipliers", "teacache_coefficients"):
        return st.lists(st.floats() | st.integers() | json_values, max_size=6) | json_values
    if key == "sha256":
        return st.dictionaries(entries, st.sampled_from(["0" * 64, "x"]) | json_values, max_size=2) | json_values
    return json_values


MODEL_KEY_NAMES = [*K.MODEL_KEYS, "URLs2", "group", "attention", "unknown_key"]
random_models = st.fixed_dictionaries({}, optional={key: model_value(key) for key in MODEL_KEY_NAMES})


@st.composite
def near_valid_models(draw):
    """The clean model of the suite with a few keys removed or replaced by fuzzed values."""
    model = dict(definition()["model"])
    for key in draw(st.lists(st.sampled_from(MODEL_KEY_NAMES), max_size=3, unique=True)):
        if draw(st.integers(0, 4)) == 0:
            model.pop(key, None)
        else:
            model[key] = draw(model_value(key))
    return model


model_subtrees = near_valid_models() | random_models
settings_objects = st.dictionaries(
    st.sampled_from([*K.SETTINGS_KEYS, *K.MEDIA_KEYS, "batch_size", "my_setting"]),
    leaf | st.lists(leaf, max_size=3), max_size=6)


@st.composite
def definitions(draw):
    data = draw(settings_objects)
    model = draw(st.one_of(model_subtrees, model_subtrees, json_values))
    if draw(st.booleans()) or not data:
        data = {"model": model, **data}
    return data


@st.composite
def definition_texts(draw):
    """JSON text of a fuzzed definition (any indent), a damaged one, or arbitrary text or bytes."""
    choice = draw(st.integers(0, 5))
    if choice <= 2:
        data = draw(definitions())
        return json.dumps(data, indent=draw(st.sampled_from([None, 2, 4, "\t"])),
                          ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if choice == 3:
        text = json.dumps(draw(definitions()))
        cut = draw(st.integers(0, len(text)))
        return (text[:cut] + draw(st.sampled_from(["", ",", "}", "]", '"', "\n"])) + text[cut + 1:]).encode(
            "utf-8", "surrogatepass")
    if choice == 4:
        return draw(st.text(max_size=200)).encode("utf-8")
    return draw(st.binary(max_size=200))


def check_report(report):
    assert report.files == 1
    for diagnostic in report.diagnostics:
        assert diagnostic.code in CODES
        assert diagnostic.line >= 1 and diagnostic.column >= 1
        assert diagnostic.message
    return report


# -- properties -----------------------------------------------------------------------------------------------------

@settings(max_examples=300)
@given(data=definition_texts(), target=st.sampled_from(["v6", "july"]))
def test_validate_never_raises(fuzz_home, data, target):
    path = write_definition(fuzz_home, FUZZ_ID, data)
    check_report(validate_paths([str(path)], Home(fuzz_home), target=target))


@settings(max_examples=150)
@given(model=model_subtrees, extra=settings_objects, target=st.sampled_from(["v6", "july"]))
def test_random_model_subtrees_never_raise(fuzz_home, model, extra, target):
    path = write_definition(fuzz_home, FUZZ_ID, {"model": model, **extra})
    check_report(validate_paths([str(path)], Home(fuzz_home), target=target))


@settings(max_examples=100)
@given(data=definition_texts(), target=st.sampled_from(["v6", "july"]), output=st.sampled_from(["json", "text"]))
def test_cli_validate_exits_0_or_1(fuzz_home, data, target, output):
    path = write_definition(fuzz_home, FUZZ_ID, data)
    result = runner.invoke(app, ["--home", str(fuzz_home), "validate", str(path), "--target", target,
                                 "--format", output])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1), result.output
    if output == "json":
        document = json.loads(result.stdout)
        assert document["summary"]["files"] == 1
        assert result.exit_code == (1 if document["summary"]["errors"] else 0)


@settings(max_examples=150)
@given(model=near_valid_models(), extra=st.just({"seed": -1}) | settings_objects)
@example(model=definition()["model"], extra={"seed": -1})  # a clean one: the show/export branch is exercised
@example(model=definition(URLs="t2v_target", modules="vace_14B", loras="t2v_target")["model"], extra={})
def test_definitions_without_errors_can_be_shown_and_exported(fuzz_home, model, extra):
    path = write_definition(fuzz_home, FUZZ_ID, {"model": model, **extra})
    report = validate_paths([str(path)], Home(fuzz_home), target="july")
    event(f"errors: {bool(report.errors)}")
    if report.errors:
        return
    for command in (["show", FUZZ_ID, "--format", "json"], ["export-settings", FUZZ_ID]):
        result = runner.invoke(app, ["--home", str(fuzz_home), *command, "--target", "july"])  # as validated
        assert result.exit_code == 0, (command, result.output)
        json.loads(result.stdout)


# -- inputs that used to crash (regressions) -----------------------------------------------------------------------

def _validate(home, data):
    path = write_definition(home, FUZZ_ID, data)
    return path.read_text(encoding="utf-8"), validate_paths([str(path)], Home(home))


@pytest.mark.parametrize("entry", [
    "/models/a\u0000_bf16.safetensors",  # NUL in an absolute path
    "ckpts/a\u0000_bf16.safetensors",  # NUL in a relative path
    "ckpts/" + "a" * 300 + "_bf16.safetensors",  # a name over 255 bytes
    "https://[huggingface.co/o/r/resolve/main/a_bf16.safetensors",  # '[' host: urlsplit raises
    "https://hugging\uff0eco\uff03x/o/a_bf16.safetensors",  # NFKC-unsafe host: urlsplit raises
])
def test_unusable_entry_is_e7_at_the_entry(home, entry):
    text, report = _validate(home, definition(URLs=[HF_ME + "ok_bf16.safetensors", entry]))
    assert [(d.code, (d.line, d.column)) for d in report.diagnostics if d.severity == "error"] == \
        [("E7", position(text, json.dumps(entry)))]


def test_lone_surrogate_in_an_absolute_path_is_e7(home):
    text = json.dumps(definition(URLs=["/models/SURROGATE_bf16.safetensors"])).replace("SURROGATE", "\\ud800")
    _, report = _validate(home, text)
    assert [d.code for d in report.diagnostics if d.severity == "error"] == ["E7"]


def test_integer_beyond_pythons_digit_limit_is_e1(home):
    # WanGP's own json.load fails on it too
    text = json.dumps(definition()).replace('"seed": -1', '"seed": ' + "9" * 5000)
    _, report = _validate(home, text)
    assert [d.code for d in report.diagnostics] == ["E1"]


@pytest.mark.parametrize("output", ["text", "json", "github"])
def test_lone_surrogate_key_is_reported_not_crashed(home, output):
    text = json.dumps(definition(KEY=1)).replace('"KEY"', '"\\ud800"')
    path = write_definition(home, FUZZ_ID, text)
    result = runner.invoke(app, ["--home", str(home), "validate", str(path), "--format", output])
    assert result.exit_code == 0, result.output
    if output == "json":
        assert [d["code"] for d in json.loads(result.stdout)["diagnostics"]] == ["W7"]
    else:
        assert "W7" in result.stdout


def test_lone_surrogate_key_in_a_real_process(home):
    text = json.dumps(definition(KEY=1)).replace('"KEY"', '"\\ud800"')
    path = write_definition(home, FUZZ_ID, text)
    for output in ("text", "json"):
        result = subprocess.run([sys.executable, "-m", "wangp_cli", "--home", str(home), "validate", str(path),
                                 "--format", output], capture_output=True, env=subprocess_env(), timeout=60)
        assert result.returncode == 0, result.stderr
        assert b"Traceback" not in result.stderr
        if output == "json":
            json.loads(result.stdout)
