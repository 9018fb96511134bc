"""Writing videos the way WanGP does: real mp4 files encoded by ffmpeg, read back by ffmpeg and mutagen."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from conftest import subprocess_env

from wangp_cli.generate.video import default_output_name, probe_video, read_metadata, write_sidecar, write_video

WHEN = datetime(2025, 3, 4, 5, 6, 7)


def gradient(frames: int, height: int, width: int) -> np.ndarray:
    """A smooth float video in [0, 1]: a horizontal ramp, a vertical ramp, and a colour that drifts in time."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    video = np.empty((frames, height, width, 3), dtype=np.float32)
    for t in range(frames):
        video[t, ..., 0] = np.broadcast_to(x, (height, width))
        video[t, ..., 1] = np.broadcast_to(y, (height, width))
        video[t, ..., 2] = 0.2 + 0.6 * t / max(frames - 1, 1)
    return video


def decode(path: Path) -> np.ndarray:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    try:
        meta = next(reader)
        width, height = meta["size"]
        frames = [np.frombuffer(frame, dtype=np.uint8).reshape(height, width, 3) for frame in reader]
    finally:
        reader.close()
    return np.stack(frames)


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if "wangp-tmp" in name or name.endswith(".tmp"))


# --------------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("kind", ["float", "uint8", "pil", "arrays"])
def test_round_trip_of_frames_size_and_fps(tmp_path, kind):
    video = gradient(9, 64, 64)
    if kind == "uint8":
        frames = (video * 255).round().astype(np.uint8)
    elif kind == "pil":
        from PIL import Image
        frames = [Image.fromarray((frame * 255).round().astype(np.uint8)) for frame in video]
    elif kind == "arrays":
        frames = list(video)
    else:
        frames = video
    path = tmp_path / "out" / "nested" / "clip.mp4"  # parent folders are created
    assert write_video(path, frames, fps=16) == path
    assert probe_video(path) == {"frames": 9, "width": 64, "height": 64, "fps": 16.0}
    assert read_metadata(path) is None
    assert leftovers(path.parent) == []


def test_wan_size_832x480_keeps_its_exact_size(tmp_path):
    path = write_video(tmp_path / "wide.mp4", gradient(3, 480, 832), fps=24)
    assert probe_video(path) == {"frames": 3, "width": 832, "height": 480, "fps": 24.0}


def test_non_square_size_that_is_no_multiple_of_16_is_not_resized(tmp_path):
    path = write_video(tmp_path / "odd16.mp4", gradient(2, 66, 98), fps=8)  # imageio would pad to 112x80
    assert probe_video(path) == {"frames": 2, "width": 98, "height": 66, "fps": 8.0}


def test_frame_content_is_roughly_preserved(tmp_path):
    video = gradient(6, 64, 96)
    path = write_video(tmp_path / "smooth.mp4", video, fps=16)
    decoded = decode(path).astype(np.float32) / 255.0
    assert decoded.shape == video.shape
    error = np.abs(decoded - video)
    assert error.mean() < 0.02, error.mean()
    # the frames stay in their order: the blue channel drifts from 0.2 to 0.8
    assert decoded[0, ..., 2].mean() == pytest.approx(0.2, abs=0.03)
    assert decoded[-1, ..., 2].mean() == pytest.approx(0.8, abs=0.03)


def test_out_of_range_and_nan_floats_are_clipped(tmp_path):
    video = gradient(2, 32, 32) * 3.0 - 1.0
    video[0, 0, 0, 0] = np.nan
    path = write_video(tmp_path / "clipped.mp4", video, fps=16)
    assert probe_video(path)["frames"] == 2


def test_replaces_an_existing_file(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"old")
    write_video(path, gradient(2, 32, 32), fps=16)
    assert probe_video(path)["frames"] == 2
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------------ metadata


LONG_PROMPT = ("A cinematic shot of a fox running through a snowy forest at dawn, golden light, " * 40).strip()
SETTINGS = {
    "prompt": "Un chat qui danse 🐱 sous la pluie — 雨の中で踊る猫\nsecond line with \"quotes\" and \\ slash",
    "long_prompt": LONG_PROMPT,
    "negative_prompt": "",
    "seed": 1234567890,
    "num_inference_steps": 30,
    "guidance_scale": 5.0,
    "resolution": "832x480",
    "activated_loras": ["a/b.safetensors"],
    "nested": {"none": None, "flag": True, "equals": "a=b=c"},
    "type": "WanGP v6 by DeepBeepMeep - Wan2.1 text2video 14B",
}


def test_metadata_round_trip_through_the_pure_python_reader(tmp_path):
    path = write_video(tmp_path / "meta.mp4", gradient(3, 64, 64), fps=16, metadata=SETTINGS)
    assert read_metadata(path) == SETTINGS
    assert probe_video(path)["frames"] == 3


def test_metadata_is_stored_in_the_comment_atom_mutagen_reads(tmp_path):
    mp4 = pytest.importorskip("mutagen.mp4")
    path = write_video(tmp_path / "meta.mp4", gradient(3, 64, 64), fps=16, metadata=SETTINGS)
    tags = mp4.MP4(path).tags
    assert len(tags["©cmt"]) == 1
    assert json.loads(tags["©cmt"][0]) == SETTINGS  # what WanGP's own reader does
    assert tags["©cmt"][0] == json.dumps(SETTINGS)  # and the exact text WanGP writes (json.dumps, ASCII)


def test_metadata_written_by_mutagen_the_way_wangp_does_is_read_back(tmp_path):
    mp4 = pytest.importorskip("mutagen.mp4")
    path = write_video(tmp_path / "plain.mp4", gradient(2, 64, 64), fps=16)
    assert read_metadata(path) is None
    file = mp4.MP4(path)
    file.tags["©cmt"] = [json.dumps(SETTINGS)]  # WanGP's save_video_metadata
    file.save()
    assert read_metadata(path) == SETTINGS
    assert probe_video(path)["frames"] == 2


def test_read_metadata_of_files_without_json_comment(tmp_path):
    not_mp4 = tmp_path / "notes.mp4"
    not_mp4.write_bytes(b"this is not an mp4 file at all")
    assert read_metadata(not_mp4) is None
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert read_metadata(empty) is None
    mp4 = pytest.importorskip("mutagen.mp4")
    path = write_video(tmp_path / "text.mp4", gradient(2, 32, 32), fps=16)
    file = mp4.MP4(path)
    file.tags["©cmt"] = ["just a comment, not JSON"]
    file.save()
    assert read_metadata(path) is None
    with pytest.raises(FileNotFoundError):
        read_metadata(tmp_path / "missing.mp4")


def test_metadata_that_cannot_be_serialised_writes_nothing(tmp_path):
    path = tmp_path / "bad.mp4"
    with pytest.raises(TypeError):
        write_video(path, gradient(2, 32, 32), fps=16, metadata={"when": datetime.now()})
    assert os.listdir(tmp_path) == []


# -------------------------------------------------------------------------------------------- errors, atomicity


@pytest.mark.parametrize("frames, message", [
    (np.zeros((3, 32, 32), dtype=np.float32), "shape"),
    (np.zeros((3, 32, 32, 4), dtype=np.uint8), "shape"),
    (np.zeros((3, 32, 32, 3), dtype=np.int64), "dtype"),
    (np.zeros((0, 32, 32, 3), dtype=np.uint8), "no frames"),
    ([], "no frames"),
    (np.zeros((2, 33, 32, 3), dtype=np.uint8), "even"),
    (np.zeros((2, 32, 63, 3), dtype=np.uint8), "even"),
])
def test_bad_frames_raise_before_anything_is_written(tmp_path, frames, message):
    path = tmp_path / "out" / "bad.mp4"
    with pytest.raises(ValueError, match=message):
        write_video(path, frames, fps=16)
    assert not path.exists()
    assert not path.parent.exists() or os.listdir(path.parent) == []


def test_a_bad_frame_in_the_middle_leaves_neither_the_file_nor_a_temporary(tmp_path):
    frames = [np.zeros((32, 32, 3), np.uint8)] * 4 + [np.zeros((32, 34, 3), np.uint8)]
    path = tmp_path / "mid.mp4"
    with pytest.raises(ValueError, match="frame 4"):
        write_video(path, frames, fps=16)
    assert os.listdir(tmp_path) == []


def test_an_error_keeps_the_previous_file_untouched(tmp_path):
    path = tmp_path / "keep.mp4"
    write_video(path, gradient(2, 32, 32), fps=16, metadata={"run": 1})
    before = path.read_bytes()

    def frames():
        yield np.zeros((32, 32, 3), np.uint8)
        yield np.zeros((32, 32, 3), np.uint8)
        raise KeyboardInterrupt  # an interrupted generation

    with pytest.raises(KeyboardInterrupt):
        write_video(path, frames(), fps=16, metadata={"run": 2})
    assert path.read_bytes() == before
    assert read_metadata(path) == {"run": 1}
    assert os.listdir(tmp_path) == ["keep.mp4"]


@pytest.mark.parametrize("fps", [0, -1, float("nan"), "16", True])
def test_bad_fps(tmp_path, fps):
    with pytest.raises(ValueError, match="fps"):
        write_video(tmp_path / "x.mp4", gradient(2, 32, 32), fps=fps)
    assert os.listdir(tmp_path) == []


def test_long_output_name_still_gets_a_temporary_name_that_fits(tmp_path):
    name = default_output_name("猫" * 80, seed=2**31 - 1, when=WHEN)
    assert len(name.encode()) <= 255
    path = write_video(tmp_path / name, gradient(2, 32, 32), fps=16)
    assert path.name == name and os.listdir(tmp_path) == [name]


# ---------------------------------------------------------------------------------------------------- file names


def test_default_output_name_matches_wangp():
    assert default_output_name("A fox in the snow", 42, WHEN) == "2025-03-04-05h06m07s_seed42_A fox in the snow.mp4"
    assert (default_output_name("x" * 200, 7, WHEN)
            == "2025-03-04-05h06m07s_seed7_" + "x" * 50 + ".mp4")  # WanGP keeps the first 50 characters
    assert default_output_name('a/b\\c:d|e?f<g>h"i*j', 1, WHEN) == "2025-03-04-05h06m07s_seed1_abcdefghij.mp4"
    assert default_output_name("  padded  ", 1, WHEN).endswith("_seed1_padded.mp4")


def test_default_output_name_uses_the_current_time():
    before = datetime.now().replace(microsecond=0)
    name = default_output_name("now", 3)
    after = datetime.now()
    stamp = datetime.strptime(name.split("_seed")[0], "%Y-%m-%d-%Hh%Mm%Ss")
    assert before <= stamp <= after


@pytest.mark.parametrize("prompt", [
    "../../etc/passwd",
    "..",
    ".",
    "/",
    "\\\\server\\share\\x",
    "C:\\Windows\\system32",
    "line one\nline two\r\nthree\tfour",
    "nul\x00byte\x1b[31mred\x7f",
    "",
    "   ",
    "\n\t\r",
    "x" * 200,
    "🐱" * 200,
    "Ünïcödé prompt — 雨の中で踊る猫 🐱",
    "sep\u2028arator\u2029s",
    ". leading dot",
    "*?<>|:\"",
])
def test_default_output_name_is_one_safe_path_component(tmp_path, prompt):
    name = default_output_name(prompt, 12345, WHEN)
    assert name.startswith("2025-03-04-05h06m07s_seed12345_") and name.endswith(".mp4")
    part = name[len("2025-03-04-05h06m07s_seed12345_"):-len(".mp4")]
    assert part and part == part.strip() and not part.startswith(".")
    assert not set(part) & set('/\\:|?<>"*')
    assert all(ch.isprintable() and ch not in "\u2028\u2029" for ch in part)
    assert len(part) <= 50 and len(name.encode()) <= 255
    assert Path(name).name == name and os.path.basename(name) == name
    (tmp_path / name).write_bytes(b"")  # the file system accepts it, right inside the folder
    assert os.listdir(tmp_path) == [name]


def test_default_output_name_falls_back_to_video():
    for prompt in ("", "   ", "\n", "///", "..", "*?*"):
        assert default_output_name(prompt, 0, WHEN) == "2025-03-04-05h06m07s_seed0_video.mp4"


# ------------------------------------------------------------------------------------------------------ sidecars


def test_sidecar_sits_next_to_the_video(tmp_path):
    video = write_video(tmp_path / "clip.mp4", gradient(2, 32, 32), fps=16)
    sidecar = write_sidecar(video, SETTINGS)
    assert sidecar == tmp_path / "clip.json"
    text = sidecar.read_text(encoding="utf-8")
    assert json.loads(text) == SETTINGS
    assert text.startswith('{\n    "prompt": ')  # indent 4, as WanGP's json.dump(configs, f, indent=4)
    assert sorted(os.listdir(tmp_path)) == ["clip.json", "clip.mp4"]
    assert stat.S_IMODE(sidecar.stat().st_mode) == stat.S_IMODE(video.stat().st_mode)


def test_sidecar_for_a_name_with_dots_replaces_only_the_extension(tmp_path):
    name = default_output_name("v1.2 of the fox. Final", 5, WHEN)
    sidecar = write_sidecar(tmp_path / name, {"seed": 5})
    assert sidecar.name == name[:-len(".mp4")] + ".json"
    assert json.loads(sidecar.read_text(encoding="utf-8")) == {"seed": 5}


def test_sidecar_is_replaced_atomically(tmp_path):
    video = tmp_path / "clip.mp4"
    sidecar = write_sidecar(video, {"run": 1})
    write_sidecar(video, {"run": 2})
    assert json.loads(sidecar.read_text(encoding="utf-8")) == {"run": 2}
    with pytest.raises(TypeError):
        write_sidecar(video, {"bad": object()})  # fails while serialising: the old sidecar stays
    assert json.loads(sidecar.read_text(encoding="utf-8")) == {"run": 2}
    assert sorted(os.listdir(tmp_path)) == ["clip.json"]


# ------------------------------------------------------------------------------------------------ light imports


def test_importing_the_module_does_not_import_numpy_or_imageio_ffmpeg():
    code = textwrap.dedent("""
        import sys
        import wangp_cli.generate.video
        print([name for name in ("numpy", "imageio_ffmpeg", "PIL", "torch", "mutagen") if name in sys.modules])
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(),
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
