"""Settings in outputs as WanGP 12 writes and reads them: compact ``©cmt`` JSON, the media_flow placeholder, the
description fallback, PNG/JPEG/WebP image metadata, and outputs read back as one-job manifests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import definition, invoke, write_definition
from wangp_cli.batch.manifest import read_manifest
from wangp_cli.core.errors import WangpError
from wangp_cli.generate import video as V
from wangp_cli.generate.video import fit_metadata, metadata_size, read_image_metadata, read_metadata, write_video

Image = pytest.importorskip("PIL.Image")
PngImagePlugin = pytest.importorskip("PIL.PngImagePlugin")

META = {"prompt": "un chat qui danse — 雨の中で踊る猫 🐱", "seed": 42, "video_length": 5, "num_inference_steps": 2,
        "type": "WanGP v12.60 by DeepBeepMeep - Wan2.1 Text2video 14B", "settings_version": 2.74,
        "model_filename": "https://huggingface.co/DeepBeepMeep/Wan2.1/resolve/main/wan2.1_t2v_14B_bf16.safetensors",
        "model_type": "t2v", "video_quality": "libx264_8", "modules": [], "generation_time": 12,
        "creation_date": "2026-05-01T10:11:12", "creation_timestamp": 1777630272}
PLACEHOLDER = json.dumps({"_wangp_metadata_reserved": True}, ensure_ascii=False, separators=(",", ":"))


def frames(count=2, size=32):
    return np.zeros((count, size, size, 3), dtype=np.uint8)


def wangp_text(data: dict) -> str:
    """What WanGP 12 writes into ©cmt (shared/utils/video_metadata.py _encode_metadata_bytes)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def set_tags(path: Path, **tags) -> None:
    mp4 = pytest.importorskip("mutagen.mp4")
    file = mp4.MP4(path)
    for name, value in tags.items():
        file.tags[{"cmt": "©cmt"}.get(name, name)] = [value]
    file.save()


# ------------------------------------------------------------------------------------------------------- video


def test_v12_metadata_is_written_compact_as_wangp_12_writes_it_and_read_back(tmp_path):
    path = write_video(tmp_path / "clip.mp4", frames(), fps=16, metadata=META)
    assert read_metadata(path) == META  # creation_date / creation_timestamp kept
    mp4 = pytest.importorskip("mutagen.mp4")
    assert mp4.MP4(path).tags["©cmt"] == [wangp_text(META)]
    legacy = {**META, "settings_version": 2.22, "type": "WanGP v6 by DeepBeepMeep - x"}
    path = write_video(tmp_path / "old.mp4", frames(), fps=16, metadata=legacy)
    assert mp4.MP4(path).tags["©cmt"] == [json.dumps(legacy)]  # July's json.dumps, byte for byte


def test_metadata_size_counts_utf8_bytes_and_a_long_non_ascii_prompt_is_shortened_to_fit(tmp_path):
    assert metadata_size({"settings_version": 2.74, "p": "猫"}) == len(
        ("comment=" + wangp_text({"settings_version": 2.74, "p": "猫"})).encode())
    big = {**META, "prompt": "雨の中で踊る猫" * 9000}  # 63,000 characters, 189,000 bytes
    fitted, shortened = fit_metadata(big)
    assert shortened and metadata_size(fitted) <= V.MAX_METADATA
    path = write_video(tmp_path / "long.mp4", frames(), fps=16, metadata=big)
    stored = read_metadata(path)
    assert stored["prompt"].endswith("...") and big["prompt"].startswith(stored["prompt"][:-3])
    assert stored["creation_date"] == META["creation_date"] and stored["seed"] == 42


def test_metadata_too_large_for_any_cut_keeps_its_identity_and_dates(monkeypatch):
    monkeypatch.setattr(V, "MAX_METADATA", 400)
    many = {**META, **{f"key_{i}": "x" for i in range(100)}}
    fitted, shortened = fit_metadata(many)
    assert shortened and set(fitted) == {"type", "settings_version", "model_type", "creation_date",
                                         "creation_timestamp"}


def test_the_unfilled_media_flow_placeholder_is_no_metadata(tmp_path):
    path = write_video(tmp_path / "reserved.mp4", frames(), fps=16)
    set_tags(path, cmt=PLACEHOLDER + " " * (50 * 1024 - len(PLACEHOLDER)))
    assert read_metadata(path) is None
    filled = wangp_text(META)
    set_tags(path, cmt=filled + " " * (50 * 1024 - len(filled.encode())))  # WanGP's in-place update
    assert read_metadata(path) == META
    set_tags(path, cmt="\ufeff" + filled + "\0\0")
    assert read_metadata(path) == META


def test_the_description_tag_is_read_when_the_comment_holds_no_settings(tmp_path):
    path = write_video(tmp_path / "desc.mp4", frames(), fps=16)
    set_tags(path, cmt=PLACEHOLDER, desc=wangp_text(META))
    assert read_metadata(path) == META
    set_tags(path, cmt=wangp_text({**META, "seed": 1}))
    assert read_metadata(path)["seed"] == 1  # the comment comes first


# ------------------------------------------------------------------------------------------------------ images


def png_with(path: Path, text: str, chunk: str = "itxt") -> Path:
    info = PngImagePlugin.PngInfo()
    (info.add_itxt if chunk == "itxt" else info.add_text)("comment", text)
    Image.new("RGB", (16, 16), (1, 2, 3)).save(path, "PNG", pnginfo=info)
    return path


def exif_with(path: Path, text: str, unicode: bool = False) -> Path:
    """JPEG/WebP with EXIF UserComment (0x9286 in the Exif IFD) as WanGP's _enc_uc encodes it."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = (b"UNICODE\0" + text.encode("utf-16le")) if unicode else (
        b"ASCII\0\0\0" + text.encode("ascii"))
    Image.new("RGB", (16, 16), (1, 2, 3)).save(path, exif=exif)
    return path


def test_image_metadata_is_read_from_png_text_chunks_and_exif_user_comments(tmp_path):
    text = json.dumps(META, ensure_ascii=False)  # WanGP's save_image_metadata
    assert read_image_metadata(png_with(tmp_path / "a.png", text)) == META
    assert read_image_metadata(png_with(tmp_path / "b.png", json.dumps(META), "text")) == META
    assert read_image_metadata(exif_with(tmp_path / "c.jpg", json.dumps(META))) == META
    assert read_image_metadata(exif_with(tmp_path / "d.jpg", text, unicode=True)) == META
    assert read_image_metadata(exif_with(tmp_path / "e.webp", text, unicode=True)) == META
    Image.new("RGB", (16, 16)).save(tmp_path / "plain.jpg")
    assert read_image_metadata(tmp_path / "plain.jpg") is None
    assert read_image_metadata(png_with(tmp_path / "note.png", "just a note")) is None
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(OSError, match="not an image"):
        read_image_metadata(tmp_path / "fake.png")


# -------------------------------------------------------------------------------------- outputs as manifests


def test_a_video_or_image_with_wangp_settings_is_a_one_job_manifest(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", frames(), fps=16, metadata=META)
    still = exif_with(tmp_path / "still.jpg", json.dumps(META, ensure_ascii=False), unicode=True)
    for path in (clip, still, png_with(tmp_path / "still.png", json.dumps(META))):
        (job,) = read_manifest(path)
        assert job.error is None and job.model_id == "t2v" and job.warnings == []
        assert job.settings == {"prompt": META["prompt"], "seed": 42, "video_length": 5, "num_inference_steps": 2}
        assert job.quantization == "none" and job.dtype == "bf16"  # from model_filename, as for exports


def test_outputs_without_wangp_settings_are_refused_clearly(tmp_path):
    reserved = write_video(tmp_path / "reserved.mp4", frames(), fps=16)
    set_tags(reserved, cmt=PLACEHOLDER + " " * 1000)
    foreign = write_video(tmp_path / "foreign.mp4", frames(), fps=16, metadata={"prompt": "x", "model_type": "t2v"})
    Image.new("RGB", (16, 16)).save(tmp_path / "plain.png")
    for path in (reserved, foreign, tmp_path / "plain.png"):
        with pytest.raises(WangpError, match="carries no WanGP settings"):
            read_manifest(path)
    (tmp_path / "broken.jpg").write_text("nope")
    with pytest.raises(WangpError, match="cannot read"):
        read_manifest(tmp_path / "broken.jpg")


def test_the_cli_dry_run_re_runs_the_settings_of_a_video(tmp_path):
    home = tmp_path / "home"
    write_definition(home, "my_t2v", definition())
    clip = write_video(tmp_path / "clip.mp4", frames(), fps=16, metadata={**META, "model_type": "my_t2v"})
    result = invoke("generate", "--manifest", clip, "--dry-run", "--target", "july", "--format", "json",
                    "-o", tmp_path / "out", home=home)
    assert result.exit_code == 0, result.output
    (job,) = json.loads(result.stdout)["jobs"]
    assert (job["status"], job["model"], job["seed"], job["frames"], job["steps"]) == ("valid", "my_t2v", 42, 5, 2)
    assert job["prompt"] == META["prompt"]
    placeholder = write_video(tmp_path / "empty.mp4", frames(), fps=16)
    set_tags(placeholder, cmt=PLACEHOLDER)
    result = invoke("generate", "--manifest", placeholder, "--dry-run", "--target", "july", home=home)
    assert result.exit_code != 0 and "carries no WanGP settings" in result.output
    assert "Traceback" not in result.output
