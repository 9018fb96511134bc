"""`wangp quantize` for target v12: WanGP 12's --save-quantized (the first entry is the source, the output goes to
ckpts/ and only its file name is appended; URLs2 gets the same), its refusals, and the Wan-only family gate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402

from conftest import invoke  # noqa: E402
from tests.quantize.test_quantize_command import tiny_wan_state  # noqa: E402

HF = "https://huggingface.co/me/r/resolve/main/"

#: A Wan 2.2 finetune: two 16-bit transformers, tabs and a key order json.dumps would not write.
TWO_TEXT = """{
\t"model": {
\t\t"name": "Two",
\t\t"architecture": "t2v_2_2",
\t\t"description": "high and low noise",
\t\t"URLs": ["ckpts/high_mbf16.safetensors"],
\t\t"URLs2": [
\t\t\t"low_mbf16.safetensors"
\t\t]
\t},
\t"flow_shift":   12,
\t"seed": 7
}"""


@pytest.fixture
def home(tmp_path) -> Path:
    for folder in ("finetunes", "ckpts", "settings"):
        (tmp_path / folder).mkdir()
    save_file(tiny_wan_state(seed=1), str(tmp_path / "ckpts" / "high_mbf16.safetensors"))
    save_file(tiny_wan_state(seed=2), str(tmp_path / "low_mbf16.safetensors"))  # under ./, WanGP's second root
    (tmp_path / "finetunes" / "t2v_two.json").write_text(TWO_TEXT, encoding="utf-8")
    return tmp_path


def quantize(home, *args):
    return invoke("quantize", *args, "--target", "v12", home=home)


def write(home: Path, model_id: str, **model) -> Path:
    data = {"model": {"name": model_id, "architecture": "t2v", "description": "", **model}, "seed": 1}
    path = home / "finetunes" / f"{model_id}.json"
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")
    return path


def test_both_transformers_are_quantized_and_their_names_appended(home):
    result = quantize(home, "t2v_two", "--dtype", "bf16")
    assert result.exit_code == 0, result.output
    for name in ("high", "low"):
        written = load_file(str(home / "ckpts" / f"{name}_quanto_mbf16_int8.safetensors"))  # ckpts/, both
        assert written["blocks.0.self_attn.q.weight._data"].dtype == torch.int8
    text = (home / "finetunes" / "t2v_two.json").read_text(encoding="utf-8")
    expected = TWO_TEXT.replace('["ckpts/high_mbf16.safetensors"]',
                                '["ckpts/high_mbf16.safetensors", "high_quanto_mbf16_int8.safetensors"]')
    expected = expected.replace('"low_mbf16.safetensors"\n',
                                '"low_mbf16.safetensors",\n\t\t\t"low_quanto_mbf16_int8.safetensors"\n')
    assert text == expected  # only the two basenames added, every other byte kept
    assert "t2v_two: created ckpts/high_quanto_mbf16_int8.safetensors; URLs updated" in result.stdout
    assert "t2v_two (URLs2): created ckpts/low_quanto_mbf16_int8.safetensors; URLs2 updated" in result.stdout
    again = quantize(home, "t2v_two", "--dtype", "bf16")
    assert again.exit_code == 0 and "already has a quanto bf16 file" in again.stderr
    assert (home / "finetunes" / "t2v_two.json").read_text(encoding="utf-8") == expected


def test_the_second_transformer_can_be_left_alone(home):
    result = quantize(home, "t2v_two", "--dtype", "fp16", "--no-transformer2")
    assert result.exit_code == 0, result.output
    assert (home / "ckpts" / "high_quanto_mfp16_int8.safetensors").is_file()
    assert not (home / "ckpts" / "low_quanto_mfp16_int8.safetensors").exists()
    model = json.loads((home / "finetunes" / "t2v_two.json").read_text())["model"]
    assert model["URLs2"] == ["low_mbf16.safetensors"]


def test_dry_run_json_lists_one_job_per_transformer(home):
    result = quantize(home, "--dtype", "bf16", "--dry-run", "-f", "json")
    jobs = [(j["prop"], j["source"], j["output"], j["entry"], j["status"]) for j in json.loads(result.stdout)["jobs"]]
    assert jobs == [("URLs", "ckpts/high_mbf16.safetensors", "ckpts/high_quanto_mbf16_int8.safetensors",
                     "high_quanto_mbf16_int8.safetensors", "pending"),
                    ("URLs2", "low_mbf16.safetensors", "ckpts/low_quanto_mbf16_int8.safetensors",
                     "low_quanto_mbf16_int8.safetensors", "pending")]


def test_a_name_without_dtype_token_gets_the_suffix_before_the_extension(home):
    save_file(tiny_wan_state(), str(home / "ckpts" / "plain.safetensors"))
    path = write(home, "t2v_plain", URLs=["plain.safetensors"])
    result = quantize(home, "t2v_plain", "--dtype", "bf16")
    assert result.exit_code == 0, result.output
    assert (home / "ckpts" / "plain_quanto_int8.safetensors").is_file()
    assert json.loads(path.read_text())["model"]["URLs"] == ["plain.safetensors", "plain_quanto_int8.safetensors"]


def test_an_output_already_under_the_home_folder_counts(home):
    save_file(tiny_wan_state(), str(home / "ckpts" / "solo_bf16.safetensors"))
    write(home, "t2v_solo", URLs=["solo_bf16.safetensors"])
    quantize(home, "--input", str(home / "ckpts" / "solo_bf16.safetensors"), "--output", str(home) + "/",
             "--dtype", "bf16")
    assert (home / "solo_quanto_bf16_int8.safetensors").is_file()
    result = quantize(home, "t2v_solo", "--dtype", "bf16")
    assert result.exit_code == 0, result.output
    assert "t2v_solo: exists solo_quanto_bf16_int8.safetensors; URLs updated" in result.stdout
    assert not (home / "ckpts" / "solo_quanto_bf16_int8.safetensors").exists()


@pytest.mark.parametrize("urls, words", [
    (["ckpts/x_quanto_mbf16_int8.safetensors", "ckpts/high_mbf16.safetensors"],
     "its first URLs entry is a quanto-int8 file, not 16-bit"),
    ([HF + "x_bf16_int8_convrot.safetensors", "ckpts/high_mbf16.safetensors"], "int8-convrot file, not 16-bit"),
    ([HF + "x_fp8_e4m3fn.safetensors"], "a scaled-fp8 file, not 16-bit"),
    ([HF + "x-Q4_K_M.gguf"], "a gguf file, not 16-bit"),
    ([HF + "x_nvfp4.safetensors"], "a nvfp4 file, not 16-bit"),
])
def test_a_first_entry_that_is_not_16_bit_is_refused(home, urls, words):
    path = write(home, "t2v_q", URLs=urls)
    before = path.read_text()
    result = quantize(home, "t2v_q", "--dtype", "bf16")
    assert result.exit_code == 1 and words in result.stderr and "list the 16-bit file first" in result.stderr
    assert path.read_text() == before


@pytest.mark.parametrize("model, words", [
    ({"URLs": "t2v_two"}, "its URLs reference another definition ('t2v_two')"),
    ({"URLs": ["ckpts/high_mbf16.safetensors"], "modules": ["vace_14B"]}, "it declares modules"),
    ({"URLs": ["ckpts/high_mbf16.safetensors"], "modules": [[HF + "m_bf16.safetensors"]]}, "it declares modules"),
    ({"URLs": ["ckpts/high_mbf16.safetensors"], "architecture": "longcat_video"},
     "longcat_video (longcat) not yet"),
    ({"URLs": ["ckpts/high_mbf16.safetensors"], "architecture": "no_such_type"}, "unknown architecture"),
])
def test_refusals_name_the_reason(home, model, words):
    path = write(home, "t2v_r", **model)
    before = path.read_text()
    result = quantize(home, "t2v_r", "--dtype", "bf16")
    assert result.exit_code == 1 and words in result.stderr, result.output
    assert result.stderr.count("\n") <= 2  # one line and its hint, no traceback
    assert path.read_text() == before
    assert sorted(p.name for p in (home / "ckpts").iterdir()) == ["high_mbf16.safetensors"]


def test_a_urls2_reference_skips_only_the_second_transformer(home):
    path = write(home, "t2v_ref2", architecture="t2v_2_2", URLs=["ckpts/high_mbf16.safetensors"], URLs2="t2v_two")
    result = quantize(home, "t2v_ref2", "--dtype", "bf16")
    assert result.exit_code == 0, result.output
    assert "t2v_ref2 (URLs2): skipped, its URLs2 reference another definition ('t2v_two')" in result.stderr
    model = json.loads(path.read_text())["model"]
    assert model["URLs"][-1] == "high_quanto_mbf16_int8.safetensors" and model["URLs2"] == "t2v_two"


def test_the_july_target_keeps_its_paths(home):
    write(home, "t2v_old", URLs=["ckpts/high_mbf16.safetensors"])
    result = invoke("quantize", "t2v_old", "--dtype", "bf16", "--target", "july", home=home)
    assert result.exit_code == 0, result.output
    urls = json.loads((home / "finetunes" / "t2v_old.json").read_text())["model"]["URLs"]
    assert urls[-1] == "ckpts/high_quanto_mbf16_int8.safetensors"
