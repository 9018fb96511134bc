"""The table of files WanGP downloads by itself (download.wangp_files): well-formed, and matched as documented."""

from __future__ import annotations

import re

import pytest

from wangp_cli.core.errors import UsageError
from wangp_cli.download import wangp_files

WANGP_OWN_FILES = wangp_files.WANGP_OWN_FILES
check_pattern, is_wangp_own, matches = wangp_files.check_pattern, wangp_files.is_wangp_own, wangp_files.matches


def test_patterns_are_well_formed():
    assert len(WANGP_OWN_FILES) > 100
    assert len(set(WANGP_OWN_FILES)) == len(WANGP_OWN_FILES), "duplicates"
    for pattern in WANGP_OWN_FILES:
        parts = pattern.split("/")
        assert pattern.startswith("ckpts/") and len(parts) >= 2, pattern
        assert all(part not in ("", ".", "..") for part in parts), pattern
        assert "\\" not in pattern and pattern == pattern.strip(), pattern
        assert all(part == "**" or "**" not in part for part in parts), pattern
        assert "**" not in parts[:-1], f"{pattern}: '**' only closes a folder here"
        check_pattern(pattern)  # a pattern of the table is also a valid --keep


def test_docstring_names_the_commit_read():
    assert re.search(r"\b8681e9f777f9f847f74a0bdefd13d5b9a6efe12d\b", wangp_files.__doc__)


@pytest.mark.parametrize("path", [
    "ckpts/Wan2.1_VAE.safetensors",  # wan_handler, flashvsr
    "ckpts/Wan2.2_VAE.safetensors",
    "ckpts/Wan2.1_VAE_upscale2x_imageonly_real_v1.safetensors",
    "ckpts/flux_vae.safetensors",
    "ckpts/umt5-xxl/tokenizer.json",  # tokenizers
    "ckpts/umt5-xxl/spiece.model",
    "ckpts/xlm-roberta-large/sentencepiece.bpe.model",
    "ckpts/xlm-roberta-large/models_clip_open-clip-xlm-roberta-large-vit-huge-14-bf16.safetensors",
    "ckpts/umt5-xxl/models_t5_umt5-xxl-enc-quanto_int8.safetensors",  # the text encoder wan_handler picks
    "ckpts/pose/dw-ll_ucoco_384.onnx",  # preprocessors
    "ckpts/pose/yolox_l.onnx",
    "ckpts/depth/depth_anything_v2_vitl.pth",
    "ckpts/flow/raft-things.pth",
    "ckpts/mask/sam_vit_h_4b8939_fp16.safetensors",
    "ckpts/sam3/sam3.1_multiplex_bf16.safetensors",
    "ckpts/wav2vec/model.safetensors",  # audio
    "ckpts/mmaudio/mmaudio_large_44k_v2.pth",
    "ckpts/mmaudio/synchformer_state_dict.pth",
    "ckpts/bigvgan_v2_44khz_128band_512x/bigvgan_generator.pt",
    "ckpts/seed-vc/v2/ar_base.pth",  # a name with a folder of its own
    "ckpts/sherpa/sherpa-onnx-pyannote-segmentation-3-0/model.onnx",
    "ckpts/rife4.26.pkl",  # upsamplers
    "ckpts/FlashVSR/FlashVSR_v1.1_transformer_bf16.safetensors",
    "ckpts/Florence2/model.safetensors",  # prompt enhancer
    "ckpts/YuE-s2-1B-general/config.json",  # targetFolderList in front of a "" source
    "ckpts/xcodec_mini_infer/final_ckpt/ckpt_00360000.pth",  # ... and of a source folder
    "ckpts/xcodec_mini_infer/models/soundstream_hubert_new.py",  # a whole folder fetched (empty file list)
    "ckpts/xcodec_mini_infer/semantic_ckpts/hf_1_325000/sub/any.bin",
    "ckpts/roformer/UVR_MDXNET_Main.onnx",  # folders a library fills at run time
    "ckpts/rembg/u2net.onnx",
])
def test_wangps_own_files(path):
    assert is_wangp_own(path)


@pytest.mark.parametrize("path", [
    "ckpts/my_finetune_bf16.safetensors",
    "loras/x.safetensors",
    "ckpts/../etc/passwd",
    "ckpts/roformer/../../etc/passwd",  # a folder glob never lets '..' out
    "ckpts/./Wan2.1_VAE.safetensors",
    "ckpts//Wan2.1_VAE.safetensors",
    "/ckpts/Wan2.1_VAE.safetensors",
    "Wan2.1_VAE.safetensors",
    "ckpts/wan2.1_vae.safetensors",  # case-sensitive
    "ckpts/Wan2.1_VAE.safetensors.part",
    "ckpts/pose",  # the folder itself is no file below it
    "ckpts/roformer",
    "ckpts/pose/my_pose_model.onnx",  # pose/ is listed file by file
    "ckpts/xcodec_mini_infer/other/file.bin",
    "",
])
def test_not_wangps_own(path):
    assert not is_wangp_own(path)


@pytest.mark.parametrize(("path", "pattern", "expected"), [
    ("ckpts/pose/a.onnx", "ckpts/pose/**", True),
    ("ckpts/pose/deep/er/a.onnx", "ckpts/pose/**", True),
    ("ckpts/pose", "ckpts/pose/**", False),
    ("ckpts/a/x/b.bin", "ckpts/**/b.bin", True),
    ("ckpts/b.bin", "ckpts/**/b.bin", True),  # '**' inside a pattern also matches no folder at all
    ("loras/mine_1.safetensors", "loras/mine_*.safetensors", True),
    ("loras/wan/mine_1.safetensors", "loras/mine_*.safetensors", False),  # '*' never crosses '/'
    ("ckpts/a.bin", "ckpts/?.bin", True),
    ("ckpts/A.bin", "ckpts/a.bin", False),
    ("ckpts/../x", "ckpts/**", False),
])
def test_matches(path, pattern, expected):
    assert matches(path, pattern) is expected


@pytest.mark.parametrize("pattern", ["ckpts/mine/**", "loras/mine_*.safetensors", "ckpts/tool.bin", "**/keep.bin"])
def test_check_pattern_accepts(pattern):
    check_pattern(pattern)


@pytest.mark.parametrize("pattern", ["", "  ", "../outside/*", "/abs/ckpts/x", "C:/ckpts/x", "ckpts\\x.bin",
                                     "ckpts/../x", "ckpts//x", "ckpts/./x", "ckpts/a**", "outputs/*.mp4"])
def test_check_pattern_refuses(pattern):
    with pytest.raises(UsageError) as caught:
        check_pattern(pattern)
    assert "--keep" in caught.value.message and caught.value.exit_code == 2
