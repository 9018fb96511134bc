"""Writing generated images the way WanGP 12 does: PNG, JPEG or WebP with the settings as JSON inside
(``shared/utils/audio_video.py`` ``save_image_metadata``): a PNG ``iTXt`` chunk with keyword ``comment``, for
JPEG and WebP the EXIF UserComment with its 8-byte charset prefix; plus the JSON sidecar, as for videos.

Pillow and numpy are imported inside the functions that need them, so importing this module stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path

from wangp_cli.core.errors import WangpError
from wangp_cli.core.jsonio import json_text

#: Image format -> (Pillow's format name, the default file suffix, Pillow's save options, what WanGP records as
#: ``image_quality``: its ``image_output_codec`` names ``png``, ``jpeg_95``, ``webp_95``).
FORMATS = {
    "png": ("PNG", ".png", {}, "png"),
    "jpeg": ("JPEG", ".jpg", {"quality": 95}, "jpeg_95"),
    "webp": ("WEBP", ".webp", {"quality": 95}, "webp_95"),
}
#: File suffix -> format (``-o name.png|.jpg|.jpeg|.webp``).
SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
#: EXIF UserComment (tag 0x9286 in the Exif IFD 0x8769) and WanGP's charset prefixes (``_enc_uc``).
USER_COMMENT, EXIF_IFD = 0x9286, 0x8769
ASCII_PREFIX, UNICODE_PREFIX = b"ASCII\0\0\0", b"UNICODE\0"
_USER_COMMENT_CODECS = {ASCII_PREFIX: "ascii", UNICODE_PREFIX: "utf-16le"}
#: A JPEG's EXIF lives in one APP1 segment (at most 65533 bytes with its "Exif\0\0" header): the UserComment
#: gets what is left after the few bytes of TIFF structure around it.
MAX_JPEG_COMMENT = 65_000


def format_of(path: str | os.PathLike) -> str | None:
    """The image format a file name asks for (None for any other suffix)."""
    return SUFFIXES.get(Path(path).suffix.lower())


def suffix_of(image_format: str) -> str:
    return FORMATS[image_format][1]


def quality_name(image_format: str) -> str:
    """What WanGP writes as ``image_quality`` for this format (its ``image_output_codec``)."""
    return FORMATS[image_format][3]


def metadata_text(metadata: dict) -> str:
    """The settings as WanGP's ``save_image_metadata`` writes them: ``json.dumps(..., ensure_ascii=False)``
    (default separators), strict JSON."""
    return json_text(metadata, indent=None, ensure_ascii=False)


def encode_user_comment(text: str) -> bytes:
    """WanGP's ``_enc_uc``: ``ASCII\\0\\0\\0`` + ASCII when it is ASCII, else ``UNICODE\\0`` + UTF-16LE."""
    try:
        return ASCII_PREFIX + text.encode("ascii")
    except UnicodeEncodeError:
        return UNICODE_PREFIX + text.encode("utf-16le", "surrogatepass")


def decode_user_comment(value) -> str | None:
    """WanGP's ``_dec_uc``: the text after a known charset prefix, else the bytes as UTF-8."""
    if isinstance(value, str):
        return value
    if not isinstance(value, (bytes, bytearray)):
        return None
    value = bytes(value)
    codec = _USER_COMMENT_CODECS.get(value[:8])
    return value[8:].decode(codec, "ignore") if codec else value.decode("utf-8", "ignore")


def comment_size(metadata: dict, image_format: str) -> int:
    """Bytes the settings take in the file (the UserComment with its prefix for JPEG/WebP)."""
    text = metadata_text(metadata)
    return len(text.encode("utf-8", "surrogatepass")) if image_format == "png" else len(encode_user_comment(text))


def fit_metadata(metadata: dict, image_format: str) -> tuple[dict, bool]:
    """``(metadata that fits, shortened?)``: only a JPEG limits it (one 64 KiB EXIF segment); the longest strings
    are cut as for an mp4 comment (``video.fit_metadata``), the sidecar keeps everything."""
    from wangp_cli.generate.video import fit_to

    if image_format != "jpeg":
        return metadata, False
    return fit_to(metadata, lambda data: comment_size(data, image_format), MAX_JPEG_COMMENT)


def _rgb(frame):
    """An RGB PIL image from a (H, W, 3) float [0, 1] or uint8 array (or a PIL image)."""
    import numpy as np
    from PIL import Image

    from wangp_cli.generate.video import _to_uint8

    array = _to_uint8(frame, np)
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"an image must not be empty, got {array.shape[1]}x{array.shape[0]}")
    return Image.fromarray(array)


def last_frame(frames):
    """The frame an image output is written from: the last one (ChronoEdit returns a video whose last frame is
    the edit; image pipelines one frame)."""
    import numpy as np

    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("no frames to write")
        return frames[-1]
    array = np.asarray(frames)
    if array.ndim == 4:
        if array.shape[0] == 0:
            raise ValueError("no frames to write")
        return array[-1]
    if array.ndim == 3:
        return array
    raise ValueError(f"frames must have shape (frames, height, width, 3), got shape {array.shape}")


def _save_options(image_format: str, text: str | None) -> dict:
    """Pillow's save options with the settings embedded where WanGP puts them."""
    from PIL import Image, PngImagePlugin

    options = dict(FORMATS[image_format][2])
    if text is None:
        return options
    if image_format == "png":
        info = PngImagePlugin.PngInfo()
        # Pillow writes iTXt as keyword NUL, flag 0, method 0, "" NUL, "" NUL, UTF-8 text: the very chunk WanGP's
        # _write_png_comment_metadata builds, before the first IDAT
        info.add_itxt("comment", text)
        options["pnginfo"] = info
    else:
        exif = Image.Exif()
        exif.get_ifd(EXIF_IFD)[USER_COMMENT] = encode_user_comment(text)
        options["exif"] = exif.tobytes()
    return options


def write_image(path: str | os.PathLike, frames, metadata: dict | None = None, *,
                image_format: str | None = None) -> Path:
    """Write the last frame of ``frames`` to ``path`` as PNG, JPEG (quality 95) or WebP (quality 95, WanGP's
    ``jpeg_95``/``webp_95``); the format is ``image_format``, else ``path``'s suffix. ``metadata`` is embedded as
    WanGP does (:func:`fit_metadata` applied by the caller for JPEG). Written under a temporary name in the same
    folder, fsynced and renamed, so ``path`` never holds a partial file; returns the path."""
    from wangp_cli.generate.video import _temp_path, sweep_temp_files

    path = Path(path)
    image_format = image_format or format_of(path)
    if image_format not in FORMATS:
        raise ValueError(f"unknown image format for '{path}': use {', '.join(SUFFIXES)}")
    image = _rgb(last_frame(frames))
    options = _save_options(image_format, None if metadata is None else metadata_text(metadata))
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_temp_files(path.parent)
    temp = _temp_path(path, FORMATS[image_format][1])
    try:
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask's mode, as a video
        with os.fdopen(descriptor, "wb") as handle:
            image.save(handle, format=FORMATS[image_format][0], **options)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except ValueError as exc:  # Pillow: "EXIF data is too long", ...
        _remove(temp)
        raise WangpError(f"could not write '{path}': {exc}", code="format") from None
    except BaseException:
        _remove(temp)
        raise
    return path


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def is_image(path: str | os.PathLike) -> bool:
    """An image Pillow recognises (PNG, JPEG, WebP), or an empty file: what ``-o`` may replace."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return not head or head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The JSON settings WanGP stores in an image: the PNG text chunk ``comment`` (iTXt/tEXt/zTXt), or for
    JPEG/WebP the EXIF UserComment (``ASCII\\0\\0\\0``/``UNICODE\\0`` prefix), else a JPEG ``COM`` comment;
    None when there is none. Raises OSError for a file Pillow cannot open as an image."""
    from PIL import Image, UnidentifiedImageError

    from wangp_cli.generate.video import parse_settings_text

    try:
        with Image.open(path) as image:
            texts = [(getattr(image, "text", None) or {}).get("comment"), image.info.get("comment")]
            exif = image.getexif()
            texts.insert(0, decode_user_comment(exif.get_ifd(EXIF_IFD).get(USER_COMMENT) or exif.get(USER_COMMENT)))
    except (UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError) as exc:
        raise OSError(f"not an image Pillow can read ({exc})") from None
    return next(filter(None, map(parse_settings_text, texts)), None)


def probe_image(path: str | os.PathLike) -> dict:
    """``{"format", "width", "height", "mode"}`` of an image file."""
    from PIL import Image

    with Image.open(path) as image:
        return {"format": image.format, "width": image.width, "height": image.height, "mode": image.mode}
