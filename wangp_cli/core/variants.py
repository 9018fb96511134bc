"""Which checkpoint file WanGP loads: its variant-selection, dtype and naming rules, as pure functions."""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

QUANTIZATIONS = ("int8", "none", "fp8")
DTYPES = ("bf16", "fp16")
_REMOTE = ("http://", "https://")
CHECKPOINT_ROOTS = ("ckpts", ".")  # WanGP 12's default checkpoints_paths: searched in this order
LORA_ROOT = "loras"
LORA_DIR_TOKEN = "%lora_dir"  # ``url|%lora_dir``: the file goes to the model's LoRA folder

#: Checkpoint kinds by the lower-cased file name, first match wins (WanGP 12's shared/qtypes handlers; a quanto
#: int8 file is named ``..._quanto_..._int8``). ``16-bit`` is everything else.
QUANTIZED_KINDS = (
    ("gguf", lambda name: name.endswith(".gguf")),
    ("nunchaku", lambda name: "nunchaku" in name or "svdq" in name),
    ("nvfp4", lambda name: "nvfp4" in name),
    ("nf4", lambda name: "nf4" in name),
    ("int8-convrot", lambda name: "convrot" in name),
    ("quanto-int8", lambda name: "quanto" in name),
    ("scaled-fp8", lambda name: "fp8" in name),
    ("int8", lambda name: "int8" in name),
)
#: The kinds wangp reads: as they are, or dequantized to the compute dtype on load (``generate.formats``: scaled
#: fp8, GGUF); anything else is fetched, listed and refused before a load.
READABLE_KINDS = ("16-bit", "quanto-int8", "scaled-fp8", "gguf")


def quantized_kind(name: str) -> str:
    """``16-bit``, ``quanto-int8``, ``scaled-fp8``, ``int8-convrot``, ``nvfp4``, ``nf4``, ``gguf``, ``nunchaku`` or
    ``int8`` (another int8 format): what a checkpoint file holds, by its name."""
    lowered = posixpath.basename(name.replace("\\", "/")).lower()
    return next((kind for kind, test in QUANTIZED_KINDS if test(lowered)), "16-bit")


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
    candidates: tuple[str, ...] = ()  # v12: where WanGP looks for it, in order (empty: ``path`` only)

    @property
    def lookup(self) -> tuple[str, ...]:
        """The home-relative paths to try, in WanGP's order."""
        return self.candidates or (self.path,)

    @property
    def is_remote(self) -> bool:
        return is_remote(self.source)

    @property
    def quantized(self) -> bool:
        return "quanto" in self.path

    @property
    def kind(self) -> str:
        return quantized_kind(self.path)

    @property
    def label(self) -> str:
        """Short human name: ``int8-bf16``, ``fp16``, ``int8`` (no dtype token), ``16-bit``, ``fp8``, ``gguf``."""
        token = dtype_token(self.path)
        if self.quantized:
            return f"int8-{token}" if token else "int8"
        kind = self.kind
        if kind != "16-bit":
            return kind.replace("scaled-", "")
        return token or "16-bit"


def is_remote(entry: str) -> bool:
    return entry[:8].lower().startswith(_REMOTE)  # URL schemes are case-insensitive (RFC 3986)


def url_basename(url: str) -> str:
    """WanGP's local name for a URL: its last ``/`` segment, query string included."""
    return url.rsplit("/", 1)[-1]


def unsafe_subfolder_reason(sub: str) -> str | None:
    """Why the ``|subfolder`` of a WanGP 12 entry cannot be used (None when it is a relative path going down)."""
    if sub == LORA_DIR_TOKEN:
        return None
    parts = sub.replace("\\", "/").split("/")
    if not sub or "\x00" in sub or sub.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", sub) or ".." in parts:
        return f"the subfolder {sub!r} after '|' must be a relative path inside ckpts/"
    return None


def unsafe_basename_reason(url: str) -> str | None:
    """Why the basename of ``url`` cannot be a file in ``ckpts/`` (None when it can); a WanGP 12 ``url|sub``
    is checked as the URL and its subfolder."""
    url, sub = split_subfolder(url)
    if sub is not None and unsafe_subfolder_reason(sub):
        return unsafe_subfolder_reason(sub)
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


def split_subfolder(entry: str) -> tuple[str, str | None]:
    """WanGP 12's ``url|subfolder``: (url, subfolder) — the subfolder None without a ``|``."""
    url, bar, sub = entry.partition("|")
    return (url, sub) if bar else (entry, None)


def local_path(entry: str, target: str = "july", lora_dir: str | None = None) -> str:
    """The path WanGP uses for a URLs entry (POSIX form, relative to the WanGP folder).

    v12: ``url|sub`` lands in ``ckpts/sub/``, ``url|%lora_dir`` in the model's LoRA folder (``loras/<lora_dir>/``)."""
    if not is_remote(entry):
        return entry
    if target != "v12":
        return "ckpts/" + url_basename(entry)
    url, sub = split_subfolder(entry)
    name = url_basename(url)
    if sub == LORA_DIR_TOKEN and lora_dir:
        return f"{LORA_ROOT}/{lora_dir}/{name}"
    return f"ckpts/{sub.strip('/')}/{name}" if sub else f"ckpts/{name}"


def lora_path(entry: str, lora_dir: str) -> str:
    """Where WanGP 12 keeps a model LoRA (``get_lora_local_path``): ``loras/<lora_dir>/<name>`` for a URL
    (``url|sub``: ``loras/<lora_dir>/sub/<name>``), a relative path inside the LoRA folder, an absolute one as is."""
    if os.path.isabs(entry):
        return entry
    if is_remote(entry):
        url, sub = split_subfolder(entry)
        entry = f"{sub.strip('/')}/{url_basename(url)}" if sub else url_basename(url)
    return f"{LORA_ROOT}/{lora_dir}/{entry}"


def variants(entries: list[str], target: str = "july", lora_dir: str | None = None) -> list[Variant]:
    if target != "v12":
        return [Variant(entry, local_path(entry)) for entry in entries]
    return [Variant(entry, local_path(entry, target, lora_dir), checkpoint_candidates(entry, lora_dir))
            for entry in entries]


def checkpoint_candidates(entry: str, lora_dir: str | None = None) -> tuple[str, ...]:
    """WanGP 12's ``locate_file``: the name (a URL's basename, ``sub/basename`` for ``url|sub``, a relative path as
    written) under each checkpoint root in turn — ``ckpts/`` first, where downloads go, then the WanGP folder."""
    path = local_path(entry, "v12", lora_dir)
    if os.path.isabs(path) or path.startswith(LORA_ROOT + "/"):
        return (path,)
    name = path[len("ckpts/"):] if is_remote(entry) else path
    return tuple(posixpath.normpath(posixpath.join(root, name)) for root in CHECKPOINT_ROOTS)


def _has(text: str, token: str) -> bool:
    return token in text or token.upper() in text


def dtype_token(path: str) -> str | None:
    """The 16-bit token a file name carries (``fp16`` wins when both appear, as in WanGP)."""
    if _has(path, "fp16"):
        return "fp16"
    if _has(path, "bf16"):
        return "bf16"
    return None


#: WanGP 12: the quantization tokens tried in order, per wish (16-bit tries none: the first entry wins).
_V12_ORDER = {"int8": ("int8", "fp8"), "fp8": ("fp8", "int8"), "none": ()}


def select_variant(entries: list[str], preference: Preference, target: str = "july",
                   model_dtype: str | None = None, lora_dir: str | None = None) -> Variant:
    """The file WanGP loads for ``preference``: July's rule, or WanGP 12's (``target="v12"``)."""
    if target == "v12":
        return select_variant_v12(entries, preference, model_dtype, lora_dir)
    return select_variant_july(entries, preference)


def select_variant_v12(entries: list[str], preference: Preference, model_dtype: str | None = None,
                       lora_dir: str | None = None) -> Variant:
    """WanGP 12's ``get_model_filename`` (since ef3dd17e, 2026-01-11).

    1. one candidate → it; 2. for int8 the names holding ``int8`` then ``fp8`` (fp8: the other way round; 16-bit:
    none), on the lower-cased basename; 3. narrow those to the dtype (the model's ``dtype`` key, else the
    preference) when that leaves some; 4. the first of them, else the first entry.
    """
    if not entries:
        raise ValueError("no checkpoint entries to choose from")
    chosen = entries[0]
    if len(entries) > 1:
        subset = []
        for token in _V12_ORDER[preference.quantization]:
            subset += [e for e in entries if token in _basename(e).lower()]
        if subset:
            dtype = model_dtype if model_dtype in DTYPES else preference.dtype
            chosen = next((e for e in subset if _has(_basename(e), dtype)), subset[0])
    return variants([chosen], "v12", lora_dir)[0]


def _basename(entry: str) -> str:
    """``os.path.basename`` of an entry as WanGP 12 takes it (a ``url|sub`` keeps its ``|sub`` tail)."""
    return entry.rsplit("/", 1)[-1]


def select_variant_july(entries: list[str], preference: Preference) -> Variant:
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


def transformer_dtype(variant: Variant, preference: Preference, *, auto_quantized: bool = False,
                      model_dtype: str | None = None) -> str:
    """The dtype WanGP computes in: the model's ``dtype`` key (v12), else the policy dtype, unless a quantized
    file's name says otherwise."""
    policy = model_dtype if model_dtype in DTYPES else preference.dtype
    if variant.quantized or auto_quantized:
        dtype = policy
        if _has(variant.path, "bf16"):
            dtype = "bf16"
        if _has(variant.path, "fp16"):
            dtype = "fp16"
        return dtype
    return policy


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
