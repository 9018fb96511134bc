"""Variant selection, dtype and quantized naming: definition-format.md §6, §7 and §9."""

from __future__ import annotations

import pytest

from wangp_cli.core.registry import ARCHITECTURES
from wangp_cli.core.variants import (
    Preference, local_path, quantized_name, select_variant, transformer_dtype, unsafe_basename_reason, variants,
    will_auto_quantize,
)

WAN = "https://huggingface.co/DeepBeepMeep/Wan2.1/resolve/main/"
FUSIONIX = [WAN + "Wan14BT2VFusioniX_fp16.safetensors",
            WAN + "Wan14BT2VFusioniX_quanto_fp16_int8.safetensors",
            WAN + "Wan14BT2VFusioniX_quanto_bf16_int8.safetensors"]


def chosen(entries, quantization="int8", dtype="bf16") -> str:
    return select_variant(entries, Preference(quantization, dtype)).path


# -- §6 worked examples -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("quantization, dtype, expected", [
    ("int8", "bf16", "ckpts/Wan14BT2VFusioniX_quanto_bf16_int8.safetensors"),
    ("int8", "fp16", "ckpts/Wan14BT2VFusioniX_quanto_fp16_int8.safetensors"),
    ("none", "bf16", "ckpts/Wan14BT2VFusioniX_fp16.safetensors"),  # no bf16 file: the 16-bit one
    ("none", "fp16", "ckpts/Wan14BT2VFusioniX_fp16.safetensors"),
    ("fp8", "bf16", "ckpts/Wan14BT2VFusioniX_fp16.safetensors"),  # no fp8 file: first entry
    ("fp8", "fp16", "ckpts/Wan14BT2VFusioniX_fp16.safetensors"),
])
def test_t2v_fusionix_table(quantization, dtype, expected):
    assert chosen(FUSIONIX, quantization, dtype) == expected


def test_fusionix_order_does_not_matter_for_int8():
    reordered = [FUSIONIX[2], FUSIONIX[0], FUSIONIX[1]]
    assert chosen(reordered, "int8", "fp16") == "ckpts/Wan14BT2VFusioniX_quanto_fp16_int8.safetensors"
    assert chosen(reordered, "none", "bf16") == "ckpts/Wan14BT2VFusioniX_fp16.safetensors"


def test_base_t2v_int8_fp16_picks_the_mfp16_quanto_file():
    assert chosen(ARCHITECTURES["t2v"].urls, "int8", "fp16") == \
        "ckpts/wan2.1_text2video_14B_quanto_mfp16_int8.safetensors"
    assert chosen(ARCHITECTURES["t2v"].urls, "int8", "bf16") == \
        "ckpts/wan2.1_text2video_14B_quanto_mbf16_int8.safetensors"
    assert chosen(ARCHITECTURES["t2v"].urls, "none", "fp16") == "ckpts/wan2.1_text2video_14B_mbf16.safetensors"


def test_base_hunyuan_int8_bf16_keeps_the_unnarrowed_subset():
    assert chosen(ARCHITECTURES["hunyuan"].urls, "int8", "bf16") == "ckpts/hunyuan_video_720_quanto_int8.safetensors"
    assert chosen(ARCHITECTURES["hunyuan"].urls, "none", "bf16") == "ckpts/hunyuan_video_720_bf16.safetensors"


# -- §6 rules -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("quantization", ["int8", "none", "fp8"])
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_single_candidate_is_returned_whatever_the_preference(quantization, dtype):
    only = [WAN + "x_quanto_fp16_int8.safetensors"]
    assert chosen(only, quantization, dtype) == "ckpts/x_quanto_fp16_int8.safetensors"
    assert chosen(["local/model.safetensors"], quantization, dtype) == "local/model.safetensors"


def test_fp8_file_is_chosen_when_present_and_falls_back_to_the_first_entry_otherwise():
    entries = [WAN + "m_bf16.safetensors", WAN + "m_quanto_bf16_int8.safetensors", WAN + "m_fp8_e4m3fn.safetensors"]
    assert chosen(entries, "fp8", "bf16") == "ckpts/m_fp8_e4m3fn.safetensors"
    assert chosen(entries[:2], "fp8", "fp16") == "ckpts/m_bf16.safetensors"
    assert chosen([WAN + "m_FP8.safetensors", WAN + "m_bf16.safetensors"], "fp8", "bf16") == "ckpts/m_FP8.safetensors"


def test_upper_case_int8_token_matches():
    entries = [WAN + "m_bf16.safetensors", WAN + "m_quanto_bf16_INT8.safetensors"]
    assert chosen(entries, "int8", "bf16") == "ckpts/m_quanto_bf16_INT8.safetensors"


def test_upper_case_dtype_tokens_narrow_too():
    entries = [WAN + "m_fp16.safetensors", WAN + "m_BF16.safetensors"]
    assert chosen(entries, "none", "bf16") == "ckpts/m_BF16.safetensors"
    assert chosen(entries, "none", "fp16") == "ckpts/m_fp16.safetensors"
    entries = [WAN + "m_quanto_bf16_int8.safetensors", WAN + "m_quanto_FP16_int8.safetensors"]
    assert chosen(entries, "int8", "fp16") == "ckpts/m_quanto_FP16_int8.safetensors"


def test_upper_case_quanto_is_not_excluded_from_the_16bit_subset():
    # "not containing lower-case quanto": an upper-case QUANTO file stays in the subset and has the bf16 token
    entries = [WAN + "m_QUANTO_BF16_INT8.safetensors", WAN + "m_fp16.safetensors"]
    assert chosen(entries, "none", "bf16") == "ckpts/m_QUANTO_BF16_INT8.safetensors"


def test_matching_is_done_on_the_whole_path_including_folders():
    entries = ["int8_models/a_bf16.safetensors", "models/a_quanto_bf16_int8.safetensors"]
    assert chosen(entries, "int8", "bf16") == "int8_models/a_bf16.safetensors"
    entries = ["bf16_dir/a_fp16.safetensors", "other/b_fp16.safetensors"]
    assert chosen(entries, "none", "bf16") == "bf16_dir/a_fp16.safetensors"


def test_url_basename_keeps_the_query_string_and_local_paths_are_kept():
    assert local_path(WAN + "x_bf16.safetensors?download=true") == "ckpts/x_bf16.safetensors?download=true"
    assert local_path("ckpts/sub/x_bf16.safetensors") == "ckpts/sub/x_bf16.safetensors"
    assert [v.path for v in variants(FUSIONIX)] == ["ckpts/" + u.rsplit("/", 1)[1] for u in FUSIONIX]


def test_no_entries_is_an_error():
    with pytest.raises(ValueError):
        select_variant([], Preference())


def test_preference_rejects_unknown_values():
    with pytest.raises(ValueError):
        Preference("int4", "bf16")
    with pytest.raises(ValueError):
        Preference("int8", "fp32")


# -- §7 dtype rule --------------------------------------------------------------------------------------------------

def _variant(name):
    return variants([WAN + name])[0]


@pytest.mark.parametrize("name, policy, expected", [
    ("m_quanto_bf16_int8.safetensors", "fp16", "bf16"),  # quanto: its name wins
    ("m_quanto_fp16_int8.safetensors", "bf16", "fp16"),
    ("m_quanto_mfp16_int8.safetensors", "bf16", "fp16"),
    ("m_quanto_BF16_int8.safetensors", "fp16", "bf16"),
    ("m_bf16_quanto_fp16_int8.safetensors", "bf16", "fp16"),  # fp16 tested last: wins when both appear
    ("m_quanto_int8.safetensors", "fp16", "fp16"),  # no token: the policy
    ("m_quanto_int8.safetensors", "bf16", "bf16"),
    ("m_fp16.safetensors", "bf16", "bf16"),  # 16-bit: converted to the policy dtype
    ("m_bf16.safetensors", "fp16", "fp16"),
])
def test_transformer_dtype(name, policy, expected):
    assert transformer_dtype(_variant(name), Preference("int8", policy)) == expected


def test_auto_quantized_file_name_decides_the_dtype():
    variant = _variant("m_fp16.safetensors")
    assert transformer_dtype(variant, Preference("int8", "bf16"), auto_quantized=True) == "fp16"


def test_will_auto_quantize():
    sixteen, quanto = _variant("m_fp16.safetensors"), _variant("m_quanto_fp16_int8.safetensors")
    assert will_auto_quantize(sixteen, Preference("int8"), auto_quantize=True, has_modules=False)
    assert not will_auto_quantize(sixteen, Preference("int8"), auto_quantize=True, has_modules=True)  # §3: ignored
    assert not will_auto_quantize(sixteen, Preference("int8"), auto_quantize=False, has_modules=False)
    assert not will_auto_quantize(sixteen, Preference("none"), auto_quantize=True, has_modules=False)
    assert not will_auto_quantize(quanto, Preference("int8"), auto_quantize=True, has_modules=False)


# -- §9 naming --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, dtype, expected", [
    ("ckpts/Wan14BT2VFusioniX_fp16.safetensors", "bf16", "ckpts/Wan14BT2VFusioniX_quanto_bf16_int8.safetensors"),
    ("ckpts/Wan14BT2VFusioniX_fp16.safetensors", "fp16", "ckpts/Wan14BT2VFusioniX_quanto_fp16_int8.safetensors"),
    ("ckpts/wan2.1_text2video_14B_mbf16.safetensors", "fp16",
     "ckpts/wan2.1_text2video_14B_quanto_mfp16_int8.safetensors"),
    ("ckpts/wan2.1_text2video_14B_mbf16.safetensors", "bf16",
     "ckpts/wan2.1_text2video_14B_quanto_mbf16_int8.safetensors"),
    ("MyModel_BF16.safetensors", "fp16", "MyModel_quanto_fp16_int8.safetensors"),
    ("MyModel_FP16.safetensors", "bf16", "MyModel_quanto_bf16_int8.safetensors"),
    ("model-bf16.safetensors", "bf16", "model-bf16_quanto_int8.safetensors"),
    ("x.safetensors", "bf16", "x_quanto_int8.safetensors"),
])
def test_quantized_name_table(source, dtype, expected):
    assert quantized_name(source, dtype) == expected


def test_quantized_name_leaves_the_folder_untouched():
    assert quantized_name("models_fp16/v_bf16/Wan_fp16.safetensors", "bf16") == \
        "models_fp16/v_bf16/Wan_quanto_bf16_int8.safetensors"
    assert quantized_name("ckpts_mbf16/x.safetensors", "fp16") == "ckpts_mbf16/x_quanto_int8.safetensors"


def test_quantized_name_rejects_unknown_dtype():
    with pytest.raises(ValueError):
        quantized_name("x_bf16.safetensors", "fp32")


# -- unsafe basenames ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://example.com/models/..",
    "https://example.com/models/.",
    "https://example.com/models/%2e%2e",
    "https://example.com/models/%2E%2E",
    "https://example.com/models/..%2Fevil_bf16.safetensors",
    "https://example.com/models/a%2fb_bf16.safetensors",
    "https://example.com/models/a%5Cb_bf16.safetensors",
    "https://example.com/models/",
    "https://huggingface.co/o/r/resolve/main/",
])
def test_unsafe_basename_reason_refuses_escaping_or_empty_names(url):
    assert unsafe_basename_reason(url)


@pytest.mark.parametrize("url", [
    WAN + "Wan14BT2VFusioniX_fp16.safetensors",
    "https://example.com/a/model%20v2_bf16.safetensors",
    "https://example.com/a/x_bf16.safetensors?download=true",
])
def test_unsafe_basename_reason_accepts_ordinary_names(url):
    assert unsafe_basename_reason(url) is None


@pytest.mark.parametrize("url", ["https://[bad/x_bf16.safetensors", "https://a\uff03b/x_bf16.safetensors"])
def test_unsafe_basename_reason_never_raises(url):
    assert unsafe_basename_reason(url)
