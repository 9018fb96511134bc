"""Writing generated videos the way WanGP does: H.264 mp4, settings as JSON in the ``©cmt`` atom, JSON sidecars.

numpy and imageio_ffmpeg are imported inside the functions that need them, so importing this module stays cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import socket
import stat
import struct
import subprocess
import sys
import time
import unicodedata
from datetime import datetime
from pathlib import Path

from wangp_cli.core.errors import WangpError
from wangp_cli.core.jsonio import atomic_write_text, dump_json, json_text

#: Characters WanGP's ``sanitize_file_name`` removes from the prompt part of a file name.
_REMOVED = set('/\\:|?<>"*')
#: How many characters of the prompt WanGP keeps in a file name.
PROMPT_CHARS = 50
#: Default quality for imageio_ffmpeg (1..10); WanGP saves with quality 8 (libx264 crf 10).
DEFAULT_QUALITY = 8
#: The comment atom WanGP stores generation settings in (``mutagen.mp4.MP4(path).tags['©cmt']``).
COMMENT_ATOM = b"\xa9cmt"
#: The longest ``comment=<json>`` argument passed on ffmpeg's command line (Windows caps the whole command line
#: at 32767 characters, Linux a single argument at 128 KiB).
MAX_METADATA = 30_000 if sys.platform == "win32" else 120_000
#: The settings_version from which WanGP writes its video metadata compact (WanGP 11.31).
COMPACT_SINCE = 2.58
#: What the mp4 keeps when even the shortest strings do not fit (the sidecar has everything).
KEPT_WHEN_TOO_LARGE = ("type", "settings_version", "model_type", "creation_date", "creation_timestamp")
#: The JSON object WanGP's media_flow plugin reserves the ``©cmt`` slot with (padded with blanks): no settings.
RESERVED_KEY = "_wangp_metadata_reserved"
#: Tags read for settings, in WanGP's order: the comment, then the description (ffmpeg's ``desc``, or ``©des``).
SETTINGS_ATOMS = (COMMENT_ATOM, b"desc", b"\xa9des")
_MAX_NAME_BYTES = 255
#: Inputs read as still images (a control video or mask given as an image is repeated over the frames).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
#: ``.<name>.<host>-<pid>-<hex>.wangp-tmp.mp4`` (older versions wrote ``.<name>.<pid>-<hex>.wangp-tmp.mp4``;
#: images end in their own suffix, the audio of a video in .wav).
_TEMP_NAME = re.compile(r"^\..*\.(?:(?P<host>[0-9a-f]{8})-)?(?P<pid>\d+)-[0-9a-f]{8}\.wangp-tmp"
                        r"\.(?:mp4|png|jpg|webp|wav)$")
#: Sample rates ffmpeg's AAC encoder takes; audio at another rate is resampled to :data:`AAC_FALLBACK_RATE`.
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
AAC_FALLBACK_RATE = 48000
#: WanGP's default ``audio_output_codec`` (``aac_128``).
AAC_BITRATE = "128k"
MAX_AUDIO_CHANNELS = 8
#: A temporary file of another machine (or of an older version) is swept once it is this old (seconds).
_FOREIGN_TEMP_AGE = 24 * 3600


# --------------------------------------------------------------------------------------------------- file names


def _sanitize(text: str) -> str:
    kept = []
    for char in text:
        if char in _REMOVED or char == "\x00":
            continue
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):  # newlines, tabs, other control characters
            continue
        kept.append(char)
    return "".join(kept)


def default_output_name(prompt: str, seed: int, when: datetime | None = None, suffix: str = ".mp4") -> str:
    """WanGP's file name for a generated video (or image, with its ``suffix``):
    ``<time>_seed<seed>_<first 50 characters of the prompt>.mp4``.

    The prompt part loses the characters WanGP removes (``/ \\ : | ? < > " *``) and every control character,
    then blanks and dots at either end; it falls back to ``video`` (``image``) when nothing is left, so the
    result is always one safe path component.
    """
    when = datetime.now() if when is None else when
    part = _sanitize(str(prompt or "")[:PROMPT_CHARS]).strip().strip(". ").strip()
    fallback = "video" if suffix == ".mp4" else "image"
    return f"{when:%Y-%m-%d-%Hh%Mm%Ss}_seed{int(seed)}_{part or fallback}{suffix}"


def _host_tag() -> str:
    """8 hex digits naming this machine, so that a sweep never takes another node's file on a shared folder."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _temp_path(path: Path, extension: str = ".mp4") -> Path:
    """A hidden name in the same folder for ``path`` while it is written (ffmpeg wants the .mp4 extension)."""
    suffix = f".{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}.wangp-tmp{extension}"
    stem = path.name
    while stem and len(os.fsencode("." + stem + suffix)) > _MAX_NAME_BYTES:
        stem = stem[:-1]
    return path.with_name("." + stem + suffix)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def sweep_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary videos that killed runs left in ``folder`` (those of a process of this machine that
    is gone; another machine's, or an older version's, once a day old); returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    host, now = _host_tag(), time.time()
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            ours = match["host"] == host
            if ours and (int(match["pid"]) == os.getpid() or _alive(int(match["pid"]))):
                continue
            if not ours and now - entry.stat(follow_symlinks=False).st_mtime < _FOREIGN_TEMP_AGE:
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


# ------------------------------------------------------------------------------------------------------- frames


def _to_uint8(frame, np):
    """One RGB frame as a C-contiguous (H, W, 3) uint8 array; ValueError for anything else."""
    if hasattr(frame, "convert") and type(frame).__module__.startswith("PIL."):
        frame = frame.convert("RGB")
    array = np.asarray(frame)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"each frame must be an RGB image of shape (height, width, 3), got shape {array.shape}")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        array = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.ascontiguousarray((np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8))
    raise ValueError(f"frames must be float in [0, 1] or uint8, got dtype {array.dtype}")


def _frames(frames, np):
    """``(width, height, iterator of uint8 frames)``; the first frame is checked before ffmpeg starts."""
    if isinstance(frames, np.ndarray) or hasattr(frames, "__array__") and not isinstance(frames, (list, tuple)):
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must have shape (frames, height, width, 3), got shape {frames.shape}")
    iterator = iter(frames)
    try:
        first = _to_uint8(next(iterator), np)
    except StopIteration:
        raise ValueError("no frames to write") from None
    height, width = first.shape[:2]
    if width == 0 or height == 0:
        raise ValueError(f"frames must not be empty, got {width}x{height}")
    if width % 2 or height % 2:
        raise ValueError(f"H.264 in yuv420p needs an even width and height, got {width}x{height}; "
                         "crop or pad the frames by one pixel")

    def converted():
        yield first
        for index, frame in enumerate(iterator, start=1):
            array = _to_uint8(frame, np)
            if array.shape != first.shape:
                raise ValueError(f"frame {index} has shape {array.shape}, frame 0 has {first.shape}")
            yield array

    return width, height, converted()


# ----------------------------------------------------------------------------------------------------- metadata


def _compact(metadata: dict) -> bool:
    """Whether WanGP writes ``metadata`` compact (``,``/``:`` separators, UTF-8): since settings_version 2.58
    (WanGP 11.31); older versions wrote ``json.dumps`` defaults (``, ``/``: ``, ASCII escapes)."""
    version = metadata.get("settings_version")
    return isinstance(version, (int, float)) and not isinstance(version, bool) and version >= COMPACT_SINCE


def _comment(metadata: dict) -> str:
    """The ffmpeg ``-metadata`` argument: strict JSON as the WanGP version of ``metadata`` writes it."""
    if _compact(metadata):
        return "comment=" + json_text(metadata, indent=None, ensure_ascii=False, separators=(",", ":"))
    return "comment=" + json_text(metadata, indent=None, ensure_ascii=True)


def _cap_strings(data, cap: int):
    """``data`` with every string longer than ``cap`` characters cut to ``cap`` (ending in "...")."""
    if isinstance(data, str):
        return data if len(data) <= cap else data[:max(cap - 3, 0)] + "..."
    if isinstance(data, dict):
        return {key: _cap_strings(value, cap) for key, value in data.items()}
    if isinstance(data, list):
        return [_cap_strings(value, cap) for value in data]
    return data


def _longest_string(data) -> int:
    if isinstance(data, str):
        return len(data)
    values = data.values() if isinstance(data, dict) else data if isinstance(data, list) else ()
    return max((_longest_string(value) for value in values), default=0)


def metadata_size(metadata: dict) -> int:
    """How many bytes ``metadata`` takes on ffmpeg's command line, in UTF-8 (compare with :data:`MAX_METADATA`;
    never fewer than the UTF-16 units Windows counts)."""
    return len(_comment(metadata).encode("utf-8", "surrogatepass"))


def fit_metadata(metadata: dict) -> tuple[dict, bool]:
    """``(metadata that fits in the mp4, shortened?)``: when it is too large, the longest strings (a long prompt)
    are cut to the longest length that fits; the sidecar keeps the whole settings."""
    return fit_to(metadata, metadata_size, MAX_METADATA)


def fit_to(metadata: dict, size, limit: int) -> tuple[dict, bool]:
    """``(metadata whose size(...) is at most limit, shortened?)``: the longest strings cut to the longest length
    that fits, else only :data:`KEPT_WHEN_TOO_LARGE` (an mp4 comment, a JPEG's EXIF)."""
    if size(metadata) <= limit:
        return metadata, False
    low, high = 0, _longest_string(metadata)  # the largest cap that fits lies in [low, high)
    if size(_cap_strings(metadata, 0)) > limit:
        return {key: metadata[key] for key in KEPT_WHEN_TOO_LARGE
                if isinstance(metadata.get(key), (str, int, float))}, True
    while high - low > 1:
        middle = (low + high) // 2
        if size(_cap_strings(metadata, middle)) <= limit:
            low = middle
        else:
            high = middle
    return _cap_strings(metadata, low), True


# ------------------------------------------------------------------------------------------------------ writing


def prepare_audio(audio, duration: float | None = None):
    """``(int16 PCM (samples, channels), sample rate)`` of a family's audio ``(float (channels, samples) in [-1, 1],
    sample_rate)`` (a 1-D array is mono), cut to ``duration`` seconds (the video's); ValueError for anything
    else."""
    import numpy as np

    try:
        samples, rate = audio
    except (TypeError, ValueError):
        raise ValueError("audio must be (samples of shape (channels, samples), sample_rate)") from None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate >= 1 or int(rate) != rate:
        raise ValueError(f"the audio's sample rate must be a positive whole number, got {rate!r}")
    array = np.asarray(samples, dtype=np.float32)
    array = array[None] if array.ndim == 1 else array
    if array.ndim != 2 or not 1 <= array.shape[0] <= MAX_AUDIO_CHANNELS:
        raise ValueError(f"audio must have shape (channels, samples) with 1 to {MAX_AUDIO_CHANNELS} channels, got "
                         f"shape {np.shape(samples)}")
    if duration is not None:
        array = array[:, :max(int(round(duration * rate)), 1)]  # an mp4 holds no sound past its last frame
    if array.shape[1] == 0:
        raise ValueError("the audio has no samples")
    array = np.clip(np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    return np.ascontiguousarray(np.round(array.T * 32767.0).astype("<i2")), int(rate)


def audio_record(audio, frame_count: int, fps: float) -> dict | None:
    """What a result record says of the mp4's audio track (None without one): ``{"rate", "channels",
    "seconds"}``, the rate ffmpeg encodes at and the seconds kept (the audio is cut to the video's length)."""
    if audio is None:
        return None
    pcm, rate = prepare_audio(audio, frame_count / fps)
    return {"rate": rate if rate in AAC_RATES else AAC_FALLBACK_RATE, "channels": int(pcm.shape[1]),
            "seconds": round(pcm.shape[0] / rate, 4)}


def _write_wav(path: Path, pcm, rate: int) -> None:
    """16-bit PCM WAV (stdlib ``wave``), the input ffmpeg encodes the AAC track from."""
    import wave

    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(pcm.shape[1])
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm.tobytes())


def _frame_count(frames) -> int | None:
    try:
        return len(frames)
    except TypeError:
        return None


def write_video(path: str | os.PathLike, frames, fps: int, metadata: dict | None = None, *,
                quality: float = DEFAULT_QUALITY, audio=None) -> Path:
    """Write ``frames`` to ``path`` as an H.264 mp4 (yuv420p) at ``fps``; returns the path.

    ``frames`` is an array (T, H, W, 3) of floats in [0, 1] (diffusers' ``output_type="np"``) or uint8, or a list
    of PIL images or (H, W, 3) arrays. Sizes are kept exactly, so width and height must be even. ``metadata``
    is stored as JSON in the mp4 comment atom ``©cmt``, where WanGP keeps its generation settings (shortened by
    :func:`fit_metadata` when it is too large: the frames are never refused for their metadata).
    The video is written under a temporary name in the same folder and renamed into place, so ``path`` never
    holds a partial file; the temporary file is removed on any error, and those of killed runs are swept.
    ``audio``: ``(float (channels, samples) in [-1, 1], sample_rate)`` muxed as an AAC track (128 kb/s, WanGP's
    ``aac_128``), cut to the video's length (:func:`prepare_audio`); a shorter one ends before the video.
    """
    import numpy as np
    import imageio_ffmpeg

    path = Path(path)
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not fps > 0 or fps != fps:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    output_params = ["-f", "mp4"]
    if metadata is not None:
        output_params += ["-metadata", _comment(fit_metadata(metadata)[0])]
    count = _frame_count(frames)
    sound = None if audio is None else prepare_audio(audio, None if count is None else count / fps)
    width, height, stream = _frames(frames, np)

    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(path.parent)
    temp = _temp_path(path)
    wav = None
    try:
        audio_options = {}
        if sound is not None:
            wav = _temp_path(path, ".wav")
            _write_wav(wav, *sound)
            output_params += ["-b:a", AAC_BITRATE] + ([] if sound[1] in AAC_RATES else
                                                       ["-ar", str(AAC_FALLBACK_RATE)])
            audio_options = {"audio_path": str(wav), "audio_codec": "aac"}  # imageio maps 0:v:0 and 1:a:0
        writer = imageio_ffmpeg.write_frames(
            str(temp), (int(width), int(height)), pix_fmt_in="rgb24", pix_fmt_out="yuv420p", fps=fps,
            quality=quality, macro_block_size=1, ffmpeg_log_level="error", output_params=output_params,
            **audio_options)
        try:
            writer.send(None)  # starts ffmpeg
            for frame in stream:
                writer.send(frame)
        finally:
            writer.close()  # waits for ffmpeg to finish the file
        # imageio_ffmpeg does not report ffmpeg's exit status: a finished mp4 has its moov box.
        if not temp.is_file() or not _has_top_level_box(temp, b"moov"):
            raise WangpError(f"ffmpeg could not write '{path}'", code="ffmpeg",
                             hint="its own message is printed above")
        os.replace(temp, path)
    except BaseException:
        try:
            temp.unlink()
        except OSError:
            pass
        raise
    finally:
        if wav is not None:
            try:
                wav.unlink()
            except OSError:
                pass
    return path


def write_sidecar(video_path: str | os.PathLike, record: dict) -> Path:
    """Write ``record`` as JSON (indent 4) next to the video, same stem with ``.json``, atomically."""
    video_path = Path(video_path)
    sidecar = video_path.with_suffix(".json")
    reference = sidecar if sidecar.exists() else video_path
    try:
        mode = reference.stat().st_mode & 0o777
    except OSError:
        mode = None
    atomic_write_text(sidecar, dump_json(record))
    if mode is not None:
        try:
            os.chmod(sidecar, mode)  # the temporary file was created 0600; match the video (or the old sidecar)
        except OSError:
            pass
    return sidecar


# ------------------------------------------------------------------------------------------------------ reading


def _boxes(data: bytes, start: int = 0, end: int | None = None):
    """``(type, body_start, body_end)`` for each box in ``data[start:end]``; stops at a malformed box."""
    end = len(data) if end is None else end
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        header = 8
        if size == 1:
            if offset + 16 > end:
                return
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            return
        yield kind, offset + header, offset + size
        offset += size


def _top_level_box(handle, kind: bytes) -> bytes | None:
    """The body of the first top-level box ``kind`` in an open file, read without loading the rest."""
    handle.seek(0, os.SEEK_END)
    file_size = handle.tell()
    offset = 0
    while offset + 8 <= file_size:
        handle.seek(offset)
        header = handle.read(16)
        if len(header) < 8:
            return None
        size, box = struct.unpack(">I4s", header[:8])
        header_size = 8
        if size == 1:
            if len(header) < 16:
                return None
            size = struct.unpack(">Q", header[8:16])[0]
            header_size = 16
        elif size == 0:
            size = file_size - offset
        if size < header_size or offset + size > file_size:
            return None
        if box == kind:
            handle.seek(offset + header_size)
            return handle.read(size - header_size)
        offset += size
    return None


def _has_top_level_box(path: Path, kind: bytes) -> bool:
    with open(path, "rb") as handle:
        return _top_level_box(handle, kind) is not None


def _child(data: bytes, start: int, end: int, kind: bytes):
    for box, body_start, body_end in _boxes(data, start, end):
        if box == kind:
            return body_start, body_end
    return None


def _tag_texts(moov: bytes):
    """The text of each settings tag in moov/udta (:data:`SETTINGS_ATOMS` order): iTunes style
    (meta/ilst/<atom>/data) first, then QuickTime style (udta/<atom>: length, language, text)."""
    udta = _child(moov, 0, len(moov), b"udta")
    if udta is None:
        return
    ilst = None
    meta = _child(moov, *udta, b"meta")
    if meta is not None:
        start, end = meta
        if moov[start + 4:start + 8] != b"hdlr":  # an ISO full box: skip version and flags
            start += 4
        ilst = _child(moov, start, end, b"ilst")
    for atom in SETTINGS_ATOMS:
        item = _child(moov, *ilst, atom) if ilst is not None else None
        data = _child(moov, *item, b"data") if item is not None else None
        if data is not None and data[1] - data[0] >= 8:
            yield moov[data[0] + 8:data[1]]  # skip type indicator and locale
        item = _child(moov, *udta, atom)
        if item is not None and item[1] - item[0] >= 4:
            length = struct.unpack(">H", moov[item[0]:item[0] + 2])[0]
            yield moov[item[0] + 4:min(item[0] + 4 + length, item[1])]


def parse_settings_text(raw: bytes | str | None) -> dict | None:
    """A settings text as WanGP reads it (a BOM and trailing NULs dropped, blank padding allowed): the JSON
    object, or None (not JSON, not an object, or WanGP's unfilled ``{"_wangp_metadata_reserved": true}``)."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return None
    text = (raw or "").replace("\ufeff", "").rstrip("\0")
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or value.get(RESERVED_KEY):
        return None
    return value


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The JSON settings stored in an mp4/mov: the ``©cmt`` comment, else the description tag; None when there
    is none (not a JSON object, or WanGP's reserved placeholder). Pure Python: walks moov/udta/meta/ilst."""
    with open(path, "rb") as handle:
        moov = _top_level_box(handle, b"moov")
    if moov is None:
        return None
    return next(filter(None, map(parse_settings_text, _tag_texts(moov))), None)


def read_image_metadata(path: str | os.PathLike) -> dict | None:
    """The JSON settings WanGP stores in an image (see :func:`wangp_cli.generate.image.read_metadata`)."""
    from wangp_cli.generate.image import read_metadata as read_image

    return read_image(path)


def probe_video(path: str | os.PathLike) -> dict:
    """``{"frames", "width", "height", "fps"}`` of a video, counting the frames ffmpeg really decodes."""
    import imageio_ffmpeg

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such video: '{path}'")
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="gray", bits_per_pixel=8)  # less to pipe than rgb24
    try:
        meta = next(reader)
        count = sum(1 for _ in reader)
    finally:
        reader.close()
    width, height = meta["size"]
    return {"frames": count, "width": int(width), "height": int(height), "fps": float(meta["fps"])}


# ------------------------------------------------------------------------------------------------- input media


def _file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input file (None when it can): never opens a FIFO or a device."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({(exc.strerror or str(exc)).lower()})"
    if stat.S_ISDIR(mode):
        return "is a directory"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None


def _image_problem(path: Path) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
    except UnidentifiedImageError:
        return "is not a readable image (unknown format)"
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds (OSError, DecompressionBombError, ...)
        return f"is not a readable image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return None


_FFMPEG_CONTEXT = re.compile(r"^\[[^\]]*\]\s*")  # "[in#0 @ 0x55e1c51700c0] "


def _video_problem(path: Path) -> str | None:
    """Decode the first frame with ffmpeg (no banner); its own error line when that fails."""
    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
               "-i", f"file:{path.resolve()}", "-map", "0:v:0", "-frames:v", "1", "-f", "null", "-"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot be probed with ffmpeg ({exc})"
    if result.returncode == 0:
        return None
    lines = [_FFMPEG_CONTEXT.sub("", line).strip() for line in result.stderr.splitlines()]
    lines = [line for line in lines if line]
    reason = lines[0] if lines else f"ffmpeg exit status {result.returncode}"
    reason = reason.replace(f"file:{path.resolve()}: ", "").replace(f"file:{path.resolve()}", "the file")
    if "matches no streams" in reason:
        reason = "it has no video stream"
    return f"is not a readable video ({reason})"


def media_problem(path: str | os.PathLike, kind: str) -> str | None:
    """Why an input (``kind`` image, or video: a video or a still image) cannot be used; None when it can.

    The file is opened the way generation will open it (PIL for images, ffmpeg for videos), so a bad file is
    refused before any model loads, with ffmpeg's one error line and not its banner.
    """
    path = Path(path)
    problem = _file_problem(path)
    if problem is None:
        still = kind == "image" or path.suffix.lower() in IMAGE_SUFFIXES
        problem = _image_problem(path) if still else _video_problem(path)
    return problem
