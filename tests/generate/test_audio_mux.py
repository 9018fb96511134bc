"""Audio muxed into the mp4 (``RunResult.audio`` -> an AAC track): real sines written, the mp4 decoded back with
the ffmpeg binary (the sine's frequency and length per channel), the video's frames and fps and the ``©cmt``
settings still right (mutagen); ``--no-audio`` through the runner, the CLI and a manifest; image and video jobs of
one manifest named by their media."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from wangp_cli.core.definitions import Catalog
from wangp_cli.core.home import Home
from wangp_cli.core.jsonio import write_json
from wangp_cli.generate.request import build_request
from wangp_cli.generate.video import audio_record, probe_video, read_metadata, write_video

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
Image = pytest.importorskip("PIL.Image")

META = {"prompt": "a bell ringing", "seed": 3, "type": "WanGP v12.60 by DeepBeepMeep - x", "settings_version": 2.74}
RATE, FPS, FRAMES = 24000, 16, 17  # 17 frames at 16 fps: 1.0625 s


def sine(frequency: float, seconds: float, rate: int = RATE, amplitude: float = 0.5):
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def stereo(seconds: float, rate: int = RATE):
    return np.stack([sine(440, seconds, rate), sine(660, seconds, rate)]), rate


def video_frames(count=FRAMES, height=32, width=48):
    return np.random.default_rng(0).random((count, height, width, 3), dtype=np.float32)


def streams(path: Path) -> str:
    """ffmpeg's description of the file's streams (its stderr for ``-i``)."""
    result = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)],
                            capture_output=True, text=True)
    return result.stderr


def decode_audio(path: Path, channels: int, rate: int):
    """The mp4's first audio stream decoded by ffmpeg to 16-bit PCM: (samples, channels) floats."""
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path),
               "-map", "0:a:0", "-f", "s16le", "-acodec", "pcm_s16le", "-ac", str(channels), "-ar", str(rate), "-"]
    raw = subprocess.run(command, capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype="<i2").reshape(-1, channels).astype(np.float32) / 32768.0


def peak_frequency(samples, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def comment(path: Path):
    mp4 = pytest.importorskip("mutagen.mp4")
    return mp4.MP4(path).tags["©cmt"]


# ------------------------------------------------------------------------------------------------ write_video


def test_the_audio_is_an_aac_track_of_the_video_s_length_with_each_channel_s_sine(tmp_path):
    path = write_video(tmp_path / "clip.mp4", video_frames(), FPS, META, audio=stereo(1.5))  # longer: cut
    described = streams(path)
    assert re.search(r"Audio: aac .*24000 Hz, stereo", described), described
    decoded = decode_audio(path, 2, RATE)
    assert abs(len(decoded) - FRAMES / FPS * RATE) <= 1024  # one AAC frame at most (the encoder's padding)
    middle = decoded[2048:-2048]
    assert abs(peak_frequency(middle[:, 0], RATE) - 440) < 5 and abs(peak_frequency(middle[:, 1], RATE) - 660) < 5
    assert 0.4 < np.abs(middle).max() < 0.6  # the sine's amplitude survives AAC at 128 kb/s
    assert probe_video(path) == {"frames": FRAMES, "width": 48, "height": 32, "fps": 16.0}
    assert comment(path) == [json.dumps(META, ensure_ascii=False, separators=(",", ":"))]
    assert read_metadata(path) == META
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]  # the temporary WAV and mp4 are gone
    assert audio_record(stereo(1.5), FRAMES, FPS) == {"rate": RATE, "channels": 2, "seconds": 1.0625}


def test_mono_a_rate_aac_lacks_and_a_shorter_track(tmp_path):
    path = write_video(tmp_path / "mono.mp4", video_frames(), FPS, META, audio=(sine(1000, 0.5, 16001), 16001))
    assert re.search(r"Audio: aac .*48000 Hz, mono", streams(path))  # resampled to a rate AAC has
    decoded = decode_audio(path, 1, 48000)[:, 0]
    assert abs(len(decoded) - 0.5 * 48000) <= 1500 and abs(peak_frequency(decoded[1024:-1024], 48000) - 1000) < 5
    assert probe_video(path)["frames"] == FRAMES  # the video is not cut to the audio
    assert audio_record((sine(1000, 0.5, 16001), 16001), FRAMES, FPS)["rate"] == 48000


def test_bad_audio_is_refused_before_anything_is_written(tmp_path):
    for bad in ((np.zeros((RATE, 2), np.float32), RATE), (np.zeros((2, 100), np.float32), 0), "noise",
                (np.zeros((2, 0), np.float32), RATE)):
        with pytest.raises(ValueError):
            write_video(tmp_path / "bad.mp4", video_frames(), FPS, META, audio=bad)
    assert os.listdir(tmp_path) == []
    loud = (np.array([[2.0, -3.0, np.nan, np.inf] * 4000], np.float32), RATE)  # clipped, NaN silenced
    path = write_video(tmp_path / "loud.mp4", video_frames(), FPS, None, audio=loud)
    assert "Audio: aac" in streams(path)


# ---------------------------------------------------------------------------------- runner, CLI and manifest


@pytest.fixture
def home(tmp_path):
    """A home with a Wan t2v definition (a video) and a ChronoEdit one (an image), their files present."""
    root = tmp_path / "home"
    for model_id, arch in (("my_t2v", "t2v_1.3B"), ("my_chrono", "chrono_edit")):
        write_json(root / "finetunes" / f"{model_id}.json",
                   {"model": {"name": model_id, "architecture": arch, "URLs": [f"ckpts/{model_id}.safetensors"]},
                    "prompt": "a bell", "seed": 5, "num_inference_steps": 2, "resolution": "48x32",
                    "video_length": FRAMES, "model_mode": 0})
        (root / "ckpts").mkdir(exist_ok=True)
        (root / "ckpts" / f"{model_id}.safetensors").write_bytes(b"")
    Image.new("RGB", (48, 32), (1, 2, 3)).save(root / "start.png")
    return root


@pytest.fixture
def stub_render(monkeypatch):
    """``Generator.render`` without a model: 17 frames and a stereo sine (an image model's last frame is the
    edit). Saving, naming, records and the CLI/manifest plumbing are the real ones."""
    from wangp_cli.generate import engine, runner

    def render(self, request):
        request.draw_seed()
        result = engine.RunResult(frames=video_frames(request.frames if request.media == "video" else 3),
                                  audio=stereo(2.0))
        return runner.Rendering(result, runner.model_files(self.catalog, request), {"load": 0.0}, False,
                                time.perf_counter())

    monkeypatch.setattr(runner.Generator, "render", render)


def test_generate_records_the_audio_and_no_audio_skips_it(home, stub_render, tmp_path):
    from wangp_cli.generate.runner import Generator

    catalog = Catalog(Home(home), "v12")
    generator = Generator(catalog)
    record = generator.generate(build_request(catalog, "my_t2v", output=tmp_path / "sound.mp4"))
    assert record["audio"] == {"rate": RATE, "channels": 2, "seconds": 1.0625} and record["media"] == "video"
    assert "Audio: aac" in streams(tmp_path / "sound.mp4")
    assert json.loads((tmp_path / "sound.json").read_text())["audio"] == record["audio"]
    record = generator.generate(build_request(catalog, "my_t2v", output=tmp_path / "quiet.mp4", no_audio=True))
    assert record["audio"] is None and "Audio:" not in streams(tmp_path / "quiet.mp4")
    assert probe_video(tmp_path / "quiet.mp4")["frames"] == FRAMES


def test_the_cli_flags_and_manifest_keys(home, stub_render, tmp_path):
    from typer.testing import CliRunner

    from wangp_cli.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["-v", "--home", str(home), "generate", "-m", "my_t2v", "--no-audio", "-o",
                                 str(tmp_path / "cli.mp4"), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["audio"] is None and "Audio:" not in streams(tmp_path / "cli.mp4")
    result = runner.invoke(app, ["-v", "--home", str(home), "generate", "-m", "my_chrono", "--image",
                                 str(home / "start.png"), "--image-format", "webp", "-o", str(tmp_path / "imgs"),
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["path"].endswith("_seed5_a bell.webp") and record["media"] == "image"
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("\n".join(json.dumps(job) for job in (
        {"id": "loud", "model": "my_t2v"}, {"id": "quiet", "model": "my_t2v", "no_audio": True},
        {"id": "still", "model": "my_chrono", "image": str(home / "start.png")},
        {"id": "jpeg", "model": "my_chrono", "image": str(home / "start.png"), "image_format": "jpeg"})))
    out = tmp_path / "batch"
    result = runner.invoke(app, ["-v", "--home", str(home), "generate", "--manifest", str(manifest), "-o", str(out),
                                 "--image-format", "png", "--format", "json"])
    assert result.exit_code == 0, result.output
    jobs = {job["id"]: job for job in json.loads(result.stdout)["jobs"]}
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".mp4", ".png", ".jpg")) == \
        ["jpeg.jpg", "loud.mp4", "quiet.mp4", "still.png"]
    assert jobs["loud"]["audio"]["channels"] == 2 and jobs["quiet"]["audio"] is None
    assert (jobs["still"]["media"], jobs["still"]["frames"], jobs["loud"]["media"]) == ("image", 1, "video")
    from wangp_cli.generate.image import read_metadata as read_image

    assert read_image(out / "jpeg.jpg")["image_quality"] == "jpeg_95" and read_image(out / "still.png")["seed"] == 5
    again = runner.invoke(app, ["-v", "--home", str(home), "generate", "--manifest", str(manifest), "-o", str(out),
                                "--format", "json"])
    assert {job["status"] for job in json.loads(again.stdout)["jobs"]} == {"skipped"}  # images count as done
    assert {job["seed"] for job in json.loads(again.stdout)["jobs"]} == {5}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "b", "model": "my_t2v", "image_format": "png"}) + "\n"
                   + json.dumps({"id": "c", "model": "my_chrono", "image_format": "gif"}))
    result = runner.invoke(app, ["-v", "--home", str(home), "generate", "--manifest", str(bad), "--dry-run",
                                 "--format", "json"])
    errors = [job["error"] for job in json.loads(result.stdout)["jobs"]]
    assert "--image-format is for image models" in errors[0] and "image_format 'gif'" in errors[1]
