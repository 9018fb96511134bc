"""Image outputs as WanGP 12 writes them (PNG iTXt ``comment``, JPEG/WebP EXIF UserComment with its charset
prefix), read back independently with Pillow and with WanGP's own reading rule; requests of image architectures
(one frame, --frames refused, -o suffixes, --image-format) and ``Generator.generate()``'s image path (the last
frame, the sidecar, the record); the frames rule of the architecture's own step (LTX-2: 8k+1)."""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import UsageError, WangpError
from wangp_cli.core.home import Home
from wangp_cli.core.jsonio import write_json
from wangp_cli.generate import image as I
from wangp_cli.generate.request import build_request, frame_step
from wangp_cli.generate.runner import check_output, media_suffix, output_path

Image = pytest.importorskip("PIL.Image")

META = {"prompt": "un chat qui danse — 雨の中で踊る猫 🐱", "seed": 42, "video_length": 1,
        "type": "WanGP v12.60 by DeepBeepMeep - ChronoEdit", "settings_version": 2.74, "model_type": "chrono_edit",
        "image_quality": "png", "creation_date": "2026-05-01T10:11:12", "creation_timestamp": 1777630272}
ASCII_META = {**META, "prompt": "a cat dancing in the rain"}


def frames(count=3, height=24, width=40):
    """Distinct frames: frame i is filled with i * 60 (so the last one is recognisable)."""
    return np.stack([np.full((height, width, 3), 60 * index, dtype=np.uint8) for index in range(count)])


# ------------------------------------------------------------------------------------ WanGP's reading rule


def _dec_uc(value):
    """WanGP's ``_dec_uc`` (shared/utils/audio_video.py), transcribed."""
    if not isinstance(value, (bytes, bytearray)):
        value = bytes(value)
    if value.startswith(b"ASCII\0\0\0"):
        return value[8:].decode("ascii", "ignore")
    if value.startswith(b"UNICODE\0"):
        return value[8:].decode("utf-16le", "ignore")
    return value.decode("utf-8", "ignore")


def wangp_read_image_metadata(path: Path):
    """WanGP's ``read_image_metadata``: by suffix; PNG the text chunk ``comment``; JPEG and WebP the EXIF
    UserComment of the Exif IFD decoded by ``_dec_uc`` (WanGP parses the EXIF with piexif, here Pillow reads the
    same IFD), JSON-decoded."""
    ext = path.suffix.lower()
    with Image.open(path) as im:
        if ext == ".png":
            value = (getattr(im, "text", {}) or {}).get("comment") or im.info.get("comment")
            return json.loads(value) if value else None
        exif = im.getexif()
        comment = exif.get_ifd(0x8769).get(0x9286)
        return json.loads(_dec_uc(comment)) if comment else None


def png_chunks(path: Path) -> list[tuple[bytes, bytes]]:
    """Every (type, data) chunk of a PNG, CRCs checked."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(raw):
        length, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        data = raw[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", raw[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + data)
        chunks.append((kind, data))
        pos += 12 + length
    return chunks


# ---------------------------------------------------------------------------------------------- writing


def test_png_holds_the_settings_in_an_itxt_comment_chunk_before_idat_as_wangp_builds_it(tmp_path):
    path = I.write_image(tmp_path / "out.png", frames(), META)
    chunks = png_chunks(path)
    kinds = [kind for kind, _ in chunks]
    comment = [data for kind, data in chunks if kind == b"iTXt"]
    # WanGP's _write_png_comment_metadata: b"comment\x00\x00\x00\x00\x00" + UTF-8 json.dumps(ensure_ascii=False)
    assert comment == [b"comment\x00\x00\x00\x00\x00" + json.dumps(META, ensure_ascii=False).encode("utf-8")]
    assert kinds.index(b"iTXt") < kinds.index(b"IDAT")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (40, 24) and im.mode == "RGB"
        assert json.loads(im.text["comment"]) == META
        assert np.asarray(im).max() == 120 and np.asarray(im).min() == 120  # the LAST frame (2 * 60)
    assert wangp_read_image_metadata(path) == META and I.read_metadata(path) == META


@pytest.mark.parametrize("suffix,pil_format", [(".jpg", "JPEG"), (".jpeg", "JPEG"), (".webp", "WEBP")])
@pytest.mark.parametrize("meta,prefix", [(META, b"UNICODE\0"), (ASCII_META, b"ASCII\0\0\0")],
                         ids=["unicode", "ascii"])
def test_jpeg_and_webp_hold_the_settings_in_the_exif_user_comment_with_wangp_s_charset_prefix(
        tmp_path, suffix, pil_format, meta, prefix):
    path = I.write_image(tmp_path / f"out{suffix}", frames(), meta)
    with Image.open(path) as im:
        assert im.format == pil_format and im.size == (40, 24)
        raw = im.getexif().get_ifd(0x8769)[0x9286]
        pixels = np.asarray(im.convert("RGB")).astype(int)
    assert raw[:8] == prefix
    codec = "ascii" if prefix.startswith(b"ASCII") else "utf-16le"
    assert json.loads(raw[8:].decode(codec)) == meta
    assert raw[8:].decode(codec) == json.dumps(meta, ensure_ascii=False)  # WanGP's text, byte for byte
    assert abs(pixels.mean() - 120) < 2  # lossy, but the last frame
    assert wangp_read_image_metadata(path) == meta and I.read_metadata(path) == meta


def test_a_write_never_leaves_a_partial_file_and_replaces_atomically(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    I.write_image(target, frames(), META)
    before = target.read_bytes()

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        I.write_image(target, frames(), {**META, "seed": 1})
    assert target.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["out.png"]


def test_a_long_prompt_is_shortened_only_in_a_jpeg_whose_exif_has_64_kib(tmp_path):
    long = {**META, "prompt": "猫" * 40_000}
    fitted, shortened = I.fit_metadata(long, "jpeg")
    assert shortened and I.comment_size(fitted, "jpeg") <= I.MAX_JPEG_COMMENT and fitted["prompt"].endswith("...")
    path = I.write_image(tmp_path / "long.jpg", frames(), fitted)
    assert I.read_metadata(path)["prompt"] == fitted["prompt"]
    assert I.fit_metadata(long, "png") == (long, False) and I.fit_metadata(long, "webp") == (long, False)
    assert I.read_metadata(I.write_image(tmp_path / "long.png", frames(), long)) == long


def test_reading_images_without_settings_and_non_images(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert I.read_metadata(tmp_path / "plain.png") is None
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(OSError):
        I.read_metadata(tmp_path / "text.png")
    assert I.is_image(tmp_path / "plain.png") and not I.is_image(tmp_path / "text.png")


# ---------------------------------------------------------------------------------------------- requests


@pytest.fixture
def catalog(tmp_path):
    """A home with a ChronoEdit definition (an image architecture) and a Wan t2v and an LTX-2 one (videos)."""
    root = tmp_path / "home"
    for model_id, arch, extra in (("my_chrono", "chrono_edit", {"video_length": 81, "model_mode": 0}),
                                  ("my_t2v", "t2v_1.3B", {}), ("my_ltx2", "ltx2_19B", {})):
        write_json(root / "finetunes" / f"{model_id}.json",
                   {"model": {"name": model_id, "architecture": arch, "URLs": [f"ckpts/{model_id}.safetensors"]},
                    "prompt": "a red fox", "seed": 7, "num_inference_steps": 2, "resolution": "64x48", **extra})
    Image.new("RGB", (64, 48), (10, 20, 30)).save(tmp_path / "start.png")
    return Catalog(Home(root), "v12")


def chrono(catalog, **options):
    start = catalog.home.root.parent / "start.png"
    flags = options.pop("flags", {})
    return build_request(catalog, "my_chrono", flags, image=start, **options)


def test_an_image_architecture_makes_one_frame_whatever_the_definition_s_video_length(catalog):
    request = chrono(catalog)
    assert (request.media, request.frames, request.settings["video_length"]) == ("image", 1, 1)
    assert media_suffix(request) == ".png"
    with pytest.raises(UsageError, match="makes images: --frames is for video models"):
        chrono(catalog, flags={"frames": 5})
    video = build_request(catalog, "my_t2v")
    assert (video.media, video.frames, media_suffix(video)) == ("video", 81, ".mp4")


def test_image_formats_come_from_the_suffix_or_image_format(catalog, tmp_path):
    assert I.format_of(chrono(catalog, output=tmp_path / "edit.jpeg").output) == "jpeg"
    assert media_suffix(chrono(catalog, image_format="webp")) == ".webp"
    assert media_suffix(chrono(catalog, output=tmp_path / "out", image_format="jpeg")) == ".jpg"
    assert chrono(catalog, output=tmp_path / "a.webp", image_format="webp").output.name == "a.webp"
    with pytest.raises(UsageError, match="is a png file but --image-format is jpeg"):
        chrono(catalog, output=tmp_path / "a.png", image_format="jpeg")
    with pytest.raises(UsageError, match="--image-format is for image models"):
        build_request(catalog, "my_t2v", image_format="png")
    with pytest.raises(UsageError, match="--image-format 'gif'"):
        chrono(catalog, image_format="gif")


def test_check_output_takes_image_suffixes_for_image_models_and_refuses_the_other_kind(catalog, tmp_path):
    for name in ("edit.png", "edit.jpg", "edit.jpeg", "edit.webp"):
        assert check_output(catalog, chrono(catalog, output=tmp_path / name)) == tmp_path / name
    with pytest.raises(UsageError, match="makes images, written as .png, .jpg, .jpeg or .webp") as caught:
        check_output(catalog, chrono(catalog, output=tmp_path / "edit.mp4"))
    assert "edit.png" in caught.value.hint
    with pytest.raises(UsageError, match="makes videos, wangp writes them as .mp4") as caught:
        check_output(catalog, build_request(catalog, "my_t2v", output=tmp_path / "clip.png"))
    assert "clip.mp4" in caught.value.hint
    (tmp_path / "notes.png").write_text("my notes")  # an existing file that is not an image: never replaced
    with pytest.raises(WangpError, match="already exists and is not a PNG/JPEG/WebP image"):
        check_output(catalog, chrono(catalog, output=tmp_path / "notes.png"))
    I.write_image(tmp_path / "mine.png", frames(), META)  # an image may be replaced
    assert check_output(catalog, chrono(catalog, output=tmp_path / "mine.png")) == tmp_path / "mine.png"
    folder = check_output(catalog, chrono(catalog, output=tmp_path / "out"))
    assert folder == tmp_path / "out"
    request = chrono(catalog, output=tmp_path / "out", image_format="webp")
    name = output_path(catalog, request, __import__("datetime").datetime(2026, 5, 1, 10, 11, 12)).name
    assert name == "2026-05-01-10h11m12s_seed7_a red fox.webp"


def test_the_frames_rule_follows_the_architecture_s_step(catalog):
    from wangp_cli.core.registry import get_architecture

    assert [frame_step(get_architecture(a, "v12")) for a in ("t2v", "ltx2_19B", "sky_df_1.3B", "vace_14B")] == \
        [4, 8, 4, 4]
    assert build_request(catalog, "my_ltx2", {"frames": 25}).frames == 25
    with pytest.raises(UsageError, match=r"frames 21: must be 8k\+1 \(1, 9, 17, \.\.\.\)"):
        build_request(catalog, "my_ltx2", {"frames": 21})
    with pytest.raises(UsageError, match=r"frames 8: must be 4k\+1 \(1, 5, 9, \.\.\., 81\)"):
        build_request(catalog, "my_t2v", {"frames": 8})


# ------------------------------------------------------------------------------------ Generator.generate()


def test_generate_writes_the_last_frame_as_an_image_with_metadata_and_sidecar(catalog, tmp_path, monkeypatch):
    """The runner's saving path of an image model: the rendering is stubbed (no image family has a tiny model
    here; the families' own tests run it end to end through the CLI)."""
    from wangp_cli.generate import engine, runner

    def render(self, request):
        request.draw_seed()
        return runner.Rendering(engine.RunResult(frames=frames(3, 48, 64).astype(np.float32) / 255.0),
                                runner.model_files(self.catalog, request), {"load": 0.0}, False,
                                time.perf_counter())

    monkeypatch.setattr(runner.Generator, "render", render)
    generator = runner.Generator(catalog)
    for name, pil_format in (("edit.png", "PNG"), ("edit.jpg", "JPEG"), ("edit.webp", "WEBP")):
        record = generator.generate(chrono(catalog, output=tmp_path / name))
        path = Path(record["path"])
        assert path == tmp_path / name and record["media"] == "image" and record["frames"] == 1
        assert record["fps"] is None and record["audio"] is None
        assert record["image_format"] == I.format_of(path)
        with Image.open(path) as im:
            assert im.format == pil_format and im.size == (64, 48)
            assert abs(np.asarray(im.convert("RGB")).astype(int).mean() - 120) < 2  # the last frame
        embedded = wangp_read_image_metadata(path)
        assert embedded == record["settings"] and embedded.get("video_length", 1) == 1
        assert embedded["image_quality"] == {"PNG": "png", "JPEG": "jpeg_95", "WEBP": "webp_95"}[pil_format]
        assert embedded["prompt"] == "a red fox" and embedded["seed"] == 7
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["path"] == str(path) and sidecar["settings"] == embedded
    record = generator.generate(chrono(catalog, output=tmp_path / "folder", image_format="jpeg"))
    assert Path(record["path"]).parent == tmp_path / "folder" and record["path"].endswith("_seed7_a red fox.jpg")
