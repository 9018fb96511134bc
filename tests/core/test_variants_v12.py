"""WanGP 12's file choice (wangp-head-format.md §3): get_model_filename since 2026-01, local names, kinds."""

from __future__ import annotations

import pytest

from wangp_cli.core.variants import (
    Preference, checkpoint_candidates, local_path, lora_path, quantized_kind, select_variant, transformer_dtype,
    unsafe_basename_reason, variants,
)

LTX = "https://huggingface.co/DeepBeepMeep/LTX-2/resolve/main/"
WAN = "https://huggingface.co/DeepBeepMeep/Wan2.2/resolve/main/"
T2V_2_2 = [WAN + "wan2.2_text2video_14B_high_mbf16.safetensors",
           WAN + "wan2.2_text2video_14B_high_quanto_mbf16_int8.safetensors",
           WAN + "wan2.2_text2video_14B_high_quanto_mfp16_int8.safetensors"]


def chosen(entries, quantization="int8", dtype="bf16", model_dtype=None) -> str:
    return select_variant(entries, Preference(quantization, dtype), "v12", model_dtype).source.rsplit("/", 1)[-1]


@pytest.mark.parametrize("quantization, dtype, expected", [
    ("int8", "bf16", "wan2.2_text2video_14B_high_quanto_mbf16_int8.safetensors"),
    ("int8", "fp16", "wan2.2_text2video_14B_high_quanto_mfp16_int8.safetensors"),
    ("none", "bf16", "wan2.2_text2video_14B_high_mbf16.safetensors"),
    ("none", "fp16", "wan2.2_text2video_14B_high_mbf16.safetensors"),  # 16-bit: the first entry, no narrowing
    ("fp8", "bf16", "wan2.2_text2video_14B_high_quanto_mbf16_int8.safetensors"),  # no fp8 file: int8 fallback
    ("fp8", "fp16", "wan2.2_text2video_14B_high_quanto_mfp16_int8.safetensors"),
])
def test_wan_2_2_trio(quantization, dtype, expected):
    assert chosen(T2V_2_2, quantization, dtype) == expected


def test_int8_falls_back_to_fp8_and_16_bit_takes_the_first():
    ltx = [LTX + "ltx-2-19b-dev_diffusion_model.safetensors", LTX + "ltx-2-19b-dev-fp8_diffusion_model.safetensors"]
    assert chosen(ltx, "int8") == "ltx-2-19b-dev-fp8_diffusion_model.safetensors"
    assert chosen(ltx, "none") == "ltx-2-19b-dev_diffusion_model.safetensors"
    # the July rule took the first entry for int8 (no "int8" in either name)
    assert select_variant(ltx, Preference("int8")).source == ltx[0]


def test_16_bit_returns_the_first_entry_even_when_it_is_quantized():
    files = [WAN + "hunyuan_video_1.5_i2v_480_step_distilled_quanto_bf16_int8.safetensors",
             WAN + "hunyuan_video_1.5_i2v_480_step_distilled_bf16.safetensors"]
    assert chosen(files, "none") == files[0].rsplit("/", 1)[-1]
    assert select_variant(files, Preference("none")).source == files[1]  # July: "not quanto"


def test_tokens_match_the_lower_cased_basename_only():
    files = [WAN + "int8_folder_name/model_bf16.safetensors", WAN + "Model_INT8.safetensors"]
    assert chosen(files, "int8") == "Model_INT8.safetensors"  # upper case matches; the folder does not


def test_int8_matches_convrot_files_and_dtype_narrows_on_upper_case_too():
    files = [WAN + "wan2.2_animate2_14B_mbf16.safetensors", WAN + "wan2.2_animate2_14B_int8_convrot.safetensors"]
    assert chosen(files, "int8") == "wan2.2_animate2_14B_int8_convrot.safetensors"
    both = [WAN + "x_quanto_FP16_int8.safetensors", WAN + "x_quanto_BF16_int8.safetensors"]
    assert chosen(both, "int8", "bf16") == "x_quanto_BF16_int8.safetensors"


def test_the_model_dtype_key_wins_over_the_preference():
    assert chosen(T2V_2_2, "int8", "fp16", model_dtype="bf16") == \
        "wan2.2_text2video_14B_high_quanto_mbf16_int8.safetensors"
    variant = select_variant([LTX + "ltx-2.3-22b-dev_diffusion_model.safetensors"], Preference("none", "fp16"), "v12")
    assert transformer_dtype(variant, Preference("none", "fp16"), model_dtype="bf16") == "bf16"
    assert transformer_dtype(variant, Preference("none", "fp16")) == "fp16"


def test_one_candidate_is_returned_whatever_the_wish():
    only = [WAN + "Ideogram4_Transformer_fp8.safetensors"]
    assert chosen(only, "none") == chosen(only, "int8") == "Ideogram4_Transformer_fp8.safetensors"


@pytest.mark.parametrize("name, kind", [
    ("wan2.1_text2video_14B_mbf16.safetensors", "16-bit"),
    ("wan2.1_text2video_14B_quanto_mbf16_int8.safetensors", "quanto-int8"),
    ("Wan2_1_mocha-14B-preview_fp8_e4m3fn_scaled_KJ.safetensors", "scaled-fp8"),
    ("MiniMax-H3-FL2VA_int8_convrot.safetensors", "int8-convrot"),
    ("ltx-2.3-22b-distilled_nvfp4.safetensors", "nvfp4"),
    ("Ideogram4_Transformer_nf4.safetensors", "nf4"),
    ("svdq-fp4_r128-qwen-image-edit.safetensors", "nunchaku"),
    ("ltx-2.3-22b-distilled-Q4_K_M.gguf", "gguf"),
    ("flux2-dev.safetensors", "16-bit"),
])
def test_quantized_kinds(name, kind):
    assert quantized_kind(name) == kind
    assert variants([WAN + name], "v12")[0].kind == kind


def test_local_names_subfolders_and_roots():
    url = "https://huggingface.co/DeepBeepMeep/TTS/resolve/main/t3_mtl23ls_v2.safetensors"
    assert local_path(url + "|chatterbox", "v12") == "ckpts/chatterbox/t3_mtl23ls_v2.safetensors"
    assert local_path(url + "|%lora_dir", "v12", "wan") == "loras/wan/t3_mtl23ls_v2.safetensors"
    assert checkpoint_candidates(url) == ("ckpts/t3_mtl23ls_v2.safetensors", "t3_mtl23ls_v2.safetensors")
    # a relative path is looked for under each root: ckpts/x then ./x (so "ckpts/x" is found through ".")
    assert checkpoint_candidates("ckpts/x.safetensors") == ("ckpts/ckpts/x.safetensors", "ckpts/x.safetensors")
    assert checkpoint_candidates("x.safetensors") == ("ckpts/x.safetensors", "x.safetensors")
    assert local_path(url, "july") == "ckpts/t3_mtl23ls_v2.safetensors"


def test_model_loras_live_in_the_lora_folder():
    url = "https://huggingface.co/Kijai/WanVideo_comfy/resolve/main/Lightx2v/lightx2v_T2V_14B_rank64.safetensors"
    assert lora_path(url, "wan") == "loras/wan/lightx2v_T2V_14B_rank64.safetensors"
    assert lora_path(url + "|lightning", "wan") == "loras/wan/lightning/lightx2v_T2V_14B_rank64.safetensors"
    assert lora_path("mine/style.safetensors", "ltx2") == "loras/ltx2/mine/style.safetensors"


@pytest.mark.parametrize("sub", ["../up", "/abs", "C:\\x", "a/../../b", ""])
def test_unsafe_subfolders_are_refused(sub):
    assert "subfolder" in unsafe_basename_reason("https://h.example/x.safetensors|" + sub)
