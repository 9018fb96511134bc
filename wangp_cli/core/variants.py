"""Which checkpoint file WanGP loads: its variant-selection, dtype and naming rules, as pure functions."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

QUANTIZATIONS = ("int8", "none", "fp8")
DTYPES = ("bf16", "fp16")
_REMOTE = ("http://", "https://")


@dataclass(frozen=True)
class Preference:
    """What the user asks for: a quantization (int8 / none / fp8) and a 16-bit dtype (bf16 / fp16)."""

    quantization: str = "int8"
    dtype: str = "bf16"

    def __post_init__(self):
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be one of {', '.join(QUANTIZATIONS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}")


@dataclass(frozen=True)
class Variant:
    """One checkpoint entry of a definition: its source and where WanGP keeps it."""

    source: str  # the URLs entry as written (URL or local path)
    path: str  # where WanGP looks for it: ckpts/<basename> for a URL, the entry itself for a local path

    @property
    def is_remote(self) -> bool:
        return is_remote(self.source)

    @property
    def quantized(self) -> bool:
        return "quanto" in self.path

    @property
    def label(self) -> str:
        """Short human name: ``int8-bf16``, ``fp16``, ``int8`` (no dtype token), ``16-bit``."""
        token = dtype_token(self.path)
        if self.quantized:
            return f"int8-{token}" if token else "int8"
        return token or "16-bit"


def is_remote(entry: str) -> bool:
    return entry[:8].lower().startswith(_REMOTE)  # URL schemes are case-insensitive (RFC 3986)


def url_basename(url: str) -> str:
    """WanGP's local name for a URL: its last ``/`` segment, query string included."""
    return url.rsplit("/", 1)[-1]


def unsafe_basename_reason(url: str) -> str | None:
    """Why the basename of ``url`` cannot be a file in ``ckpts/`` (None when it can)."""
    name = url_basename(url)
    decoded = unquote(name)
    if not name:
        return "the URL ends with '/' and names no file"
    if decoded in (".", "..") or "/" in decoded or "\\" in decoded or "\x00" in decoded:
        return f"the file name {name!r} would escape ckpts/"
    try:
        host = urlsplit(url).netloc
    except ValueError as exc:
        return f"the URL is malformed ({exc})"
    if not host:
        return "the URL has no host"
    return None


def local_path(entry: str) -> str:
    """The path WanGP uses for a URLs entry (POSIX form, relative to the WanGP folder)."""
    return "ckpts/" + url_basename(entry) if is_remote(entry) else entry


def variants(entries: list[str]) -> list[Variant]:
    return [Variant(entry, local_path(entry)) for entry in entries]


def _has(text: str, token: str) -> bool:
    return token in text or token.upper() in text


def dtype_token(path: str) -> str | None:
    """The 16-bit token a file name carries (``fp16`` wins when both appear, as in WanGP)."""
    if _has(path, "fp16"):
        return "fp16"
    if _has(path, "bf16"):
        return "bf16"
    return None


def select_variant(entries: list[str], preference: Preference) -> Variant:
    """WanGP's ``get_model_filename`` rule (identical from 6.x to 7.0).

    1. one candidate → it; 2. int8/fp8 → those containing the token, else those without ``quanto``;
    3. narrow to the target dtype token when that leaves something; 4. first of the subset, else the first entry.
    """
    candidates = variants(entries)
    if not candidates:
        raise ValueError("no checkpoint entries to choose from")
    if len(candidates) == 1:
        return candidates[0]
    if preference.quantization in ("int8", "fp8"):
        subset = [v for v in candidates if _has(v.path, preference.quantization)]
    else:
        subset = [v for v in candidates if "quanto" not in v.path]
    if not subset:
        return candidates[0]
    narrowed = [v for v in subset if _has(v.path, preference.dtype)]
    return (narrowed or subset)[0]


def transformer_dtype(variant: Variant, preference: Preference, *, auto_quantized: bool = False) -> str:
    """The dtype WanGP computes in: the policy dtype, unless a quantized file's name says otherwise."""
    if variant.quantized or auto_quantized:
        dtype = preference.dtype
        if _has(variant.path, "bf16"):
            dtype = "bf16"
        if _has(variant.path, "fp16"):
            dtype = "fp16"
        return dtype
    return preference.dtype


def will_auto_quantize(variant: Variant, preference: Preference, *, auto_quantize: bool, has_modules: bool) -> bool:
    """``auto_quantize``: an int8/fp8 wish, a 16-bit file and no modules → quantized in memory at load."""
    return auto_quantize and not has_modules and preference.quantization != "none" and not variant.quantized


def quantized_name(path: str, dtype: str) -> str:
    """The name of the quanto int8 file made from the 16-bit ``path`` for ``dtype`` (WanGP's rule, fixed).

    The rewrite touches the basename only, maps upper-case tokens too, and keeps the extension.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}")
    folder, name = posixpath.split(path)
    other = "bf16" if dtype == "fp16" else "fp16"
    name = re.sub(other, dtype, name, flags=re.IGNORECASE)
    name = re.sub(dtype, dtype, name, flags=re.IGNORECASE)
    for token in (f"_m{dtype}", f"_{dtype}"):
        if token in name:
            name = name.replace(token, f"_quanto{token}_int8")
            break
    if "quanto" not in name:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem}_quanto_int8.{ext}" if dot else f"{name}_quanto_int8"
    return posixpath.join(folder, name) if folder else name
