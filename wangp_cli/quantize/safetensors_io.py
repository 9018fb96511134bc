"""Reading safetensors tensor by tensor and writing WanGP/mmgp-style containers.

One strict header parser (:func:`read_header`) serves ``wangp inspect``, the quantizer and the generate loader.
It accepts exactly what ``safetensors.safe_open`` accepts (known dtype, non-negative integer shape and
``data_offsets`` matching it, tensors packed without overlap, holes or trailing bytes, a str -> str
``__metadata__``), never reads tensor data and never unpickles. Every refusal is a :class:`FormatError` naming
the file and the bad entry.

mmgp's reader ignores ``data_offsets`` and assumes header order = data order, so the writer always emits them in
the same order; the header is ``json.dumps`` with default separators, ``__metadata__`` last, no padding.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from wangp_cli.core.errors import WangpError
from wangp_cli.core.outputs import os_error

#: Bits per element of every safetensors dtype (safetensors 0.6+; F4 and F6 pack below a byte).
DTYPE_BITS = {"BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
              "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
              "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64}
FLOATS = ("BF16", "F16", "F32", "F64")
MAX_HEADER = 100_000_000  # safetensors' own limit
MAX_DEPTH = 64  # nesting allowed in an embedded JSON value (config, quantization map)
#: First bytes of files that are often misnamed ``.safetensors``, and what to call them.
SIGNATURES = (
    (b"\x80\x02", "a pickle (.ckpt/.pt), never unpickled"),
    (b"\x80\x03", "a pickle (.ckpt/.pt), never unpickled"),
    (b"\x80\x04", "a pickle (.ckpt/.pt), never unpickled"),
    (b"\x80\x05", "a pickle (.ckpt/.pt), never unpickled"),
    (b"PK\x03\x04", "a zip archive (torch.save's .pt/.ckpt pickle format), never unpickled"),
    (b"GGUF", "a GGUF file (llama.cpp), which wangp does not read"),
    (b"version https://git-lfs", "a Git LFS pointer, not the file itself"),
    (b"<!DOCTYPE", "an HTML page (a failed download?)"),
    (b"<html", "an HTML page (a failed download?)"),
)
#: Metadata entries holding JSON (``<key>_base64``: base64 of JSON, mmgp's way; ``<key>``: plain JSON text).
EMBEDDED_JSON = {"config": "embedded config", "quantization_map": "quantization map"}


class FormatError(WangpError):
    """A file that is not a valid safetensors checkpoint (exit 1, code ``format``)."""

    def __init__(self, message: str, *, hint: str = ""):
        super().__init__(message, code="format", hint=hint, exit_code=1)


JSON_TYPES = {dict: "object", list: "list", str: "string", int: "number", float: "number", bool: "true/false",
              type(None): "null"}


def _json_type(value) -> str:
    return JSON_TYPES.get(type(value), type(value).__name__)


def _short(text: str, limit: int = 60) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Entry:
    """One tensor of a safetensors file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int = 0  # offset in the data section
    end: int = 0

    @property
    def numel(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPE_BITS[self.dtype] // 8


USIZE_MAX = 2**64 - 1


def _is_count(value) -> bool:
    """A JSON number safetensors reads as ``usize``."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= USIZE_MAX


def _checked_bits(shape: list[int], bits: int) -> int | None:
    """``product(shape) * bits`` folded left to right as safetensors does; None where ``usize`` overflows."""
    total = 1
    for dim in [*shape, bits]:
        total *= dim
        if total > USIZE_MAX:
            return None
    return total


class _JSONProblem(ValueError):
    """What is wrong with a JSON text, as a predicate: ``is not valid JSON (...)``, ``has the key 'x' twice``."""


def _reject_constant(name: str):
    raise _JSONProblem(f"holds {name}, which is not JSON")


def _number(text: str):
    """A JSON number as Python reads it, refused where no JSON parser could hold it."""
    if len(text) > 40:
        raise _JSONProblem(f"holds a number of {len(text)} digits")
    value = float(text) if any(c in text for c in ".eE") else int(text)
    if isinstance(value, float) and math.isinf(value):
        raise _JSONProblem(f"holds the number {text}, out of range")
    return value


def _unique_object(pairs: list) -> dict:
    result = {}
    for key, value in pairs:
        if key in result:
            raise _JSONProblem(f"has the key '{_short(key)}' twice")
        result[key] = value
    return result


def _strings_valid(value) -> bool:
    """Whether every string (and key) of a parsed JSON value is valid Unicode (no lone surrogate escapes)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


def _depth(value) -> int:
    """The nesting depth of a parsed JSON value (iterative: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_json(data: bytes | str):
    """Strict JSON: valid UTF-8, no NaN/Infinity, no duplicate keys, no lone surrogates. Raises ValueError
    whose text is a predicate ("is nested too deeply"), also for nesting too deep for the parser."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, object_pairs_hook=_unique_object, parse_constant=_reject_constant,
                           parse_int=_number, parse_float=_number)
    except UnicodeDecodeError as exc:
        raise ValueError(f"is not valid UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise ValueError("is nested too deeply") from None
    except _JSONProblem:
        raise
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not _strings_valid(value):
        raise ValueError("holds a lone surrogate (invalid Unicode)")
    return value


def _signature(head: bytes) -> str | None:
    return next((what for magic, what in SIGNATURES if head.startswith(magic)), None)


def _not_safetensors(path, head: bytes, reason: str) -> FormatError:
    what = _signature(head)
    if what:
        return FormatError(f"'{path}' is not a safetensors file: it looks like {what}",
                           hint="convert it to .safetensors with a tool you trust, or download the .safetensors "
                                "variant")
    return FormatError(f"'{path}' is not a safetensors file: {reason}")


def _entry(path, name: str, info) -> Entry:
    """One header entry, checked as safetensors checks it (its place in the data area is checked later)."""
    where = f"'{path}': tensor '{_short(name)}'"
    if not isinstance(info, dict):
        raise FormatError(f"{where} is a JSON {_json_type(info)}, not an object with dtype, shape and data_offsets")
    missing = [key for key in ("dtype", "shape", "data_offsets") if key not in info]
    if missing:
        raise FormatError(f"{where} has no {', '.join(missing)}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        raise FormatError(f"{where} has an unknown dtype '{_short(dtype, 20)}'",
                          hint="safetensors dtypes: " + ", ".join(DTYPE_BITS))
    if not isinstance(shape, list) or not all(_is_count(dim) for dim in shape):
        raise FormatError(f"{where}: shape must be a list of non-negative integers, not "
                          f"{_short(json.dumps(shape), 30)}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(x) for x in offsets)):
        raise FormatError(f"{where}: data_offsets must be [begin, end], two non-negative integers, not "
                          f"{_short(json.dumps(offsets), 30)}")
    begin, end = offsets
    if end < begin:
        raise FormatError(f"{where}: data_offsets [{begin}, {end}] end before they begin")
    entry = Entry(name, dtype, tuple(shape), begin, end)
    bits = _checked_bits(shape, DTYPE_BITS[dtype])
    if bits is None:
        raise FormatError(f"{where}: shape {_short(json.dumps(shape), 30)} of {dtype} is too large for any file")
    if bits % 8:
        raise FormatError(f"{where}: {bits // DTYPE_BITS[dtype]} elements of {dtype} do not end on a byte "
                          "boundary")
    if end - begin != bits // 8:
        raise FormatError(f"{where}: data_offsets span {end - begin} bytes, shape {list(shape)} of {dtype} "
                          f"needs {bits // 8}")
    return entry


def _check_layout(path, entries: list[Entry], data_size: int, header_end: int) -> None:
    """Tensors back to back from 0 to the end of the file, in offset order (safetensors' rule)."""
    position, previous = 0, None
    for entry in entries:
        if entry.start < position:
            raise FormatError(f"'{path}': tensors '{_short(previous.name)}' and '{_short(entry.name)}' overlap "
                              f"(data_offsets [{previous.start}, {previous.end}] and [{entry.start}, {entry.end}])")
        if entry.start > position and entry.end > data_size:
            raise FormatError(f"'{path}': tensor '{_short(entry.name)}': data_offsets [{entry.start}, {entry.end}] "
                              f"reach past the end of the file ({data_size:,} bytes of data)",
                              hint="download it again")
        if entry.start > position:
            raise FormatError(f"'{path}': {entry.start - position} bytes before tensor '{_short(entry.name)}' "
                              f"belong to no tensor (data_offsets [{entry.start}, {entry.end}])")
        position, previous = entry.end, entry
    if position > data_size:
        raise FormatError(f"'{path}' is truncated: the header needs {header_end + position:,} bytes, the file has "
                          f"{header_end + data_size:,}", hint="download it again")
    if position < data_size:
        raise FormatError(f"'{path}' has {data_size - position:,} trailing bytes after its last tensor",
                          hint="safetensors refuses such files; download it again")


def read_header(path) -> tuple[int, list[Entry], dict]:
    """(data section offset, entries in data order, metadata), checked against the file's size.

    Never reads tensor data; never unpickles. Raises :class:`FormatError` (or an ``os_error`` for a file that
    cannot be read).
    """
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise FormatError(f"'{path}' is not a regular file", hint="name a .safetensors checkpoint file")
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(8)
            if len(head) < 8:
                raise _not_safetensors(path, head, f"{size} bytes, too short for a header")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER:
                raise _not_safetensors(path, head + handle.read(24),
                                       f"its first 8 bytes give a header of {length:,} bytes, over safetensors' "
                                       f"limit of {MAX_HEADER:,}")
            if 8 + length > size:
                raise _not_safetensors(path, head + handle.read(24),
                                       f"its first 8 bytes give a header of {length:,} bytes, the file has "
                                       f"{size:,} (truncated?)")
            raw = handle.read(length)
    except OSError as exc:
        raise os_error(exc, "cannot read") from None
    try:
        header = parse_json(raw)
    except ValueError as exc:
        raise _not_safetensors(path, head + raw[:24], f"its header {exc}") from None
    if not isinstance(header, dict):
        raise FormatError(f"'{path}' is not a safetensors file: its header is a JSON {_json_type(header)}, "
                          "not an object")
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise FormatError(f"'{path}': __metadata__ must be an object of strings, not a JSON "
                          f"{_json_type(metadata)}")
    for key, value in metadata.items():
        if not isinstance(value, str):
            raise FormatError(f"'{path}': __metadata__ entry '{_short(key)}' must be a string, not a JSON "
                              f"{_json_type(value)}")
    entries = sorted((_entry(path, name, info) for name, info in header.items()), key=lambda e: (e.start, e.end))
    _check_layout(path, entries, size - 8 - length, 8 + length)
    return 8 + length, entries, metadata


def _decode_embedded(path, metadata: dict, key: str):
    """The JSON object stored under ``<key>_base64`` (base64) or ``<key>`` (plain JSON); None when absent."""
    what = EMBEDDED_JSON[key]
    if f"{key}_base64" in metadata:
        try:
            data = base64.b64decode(metadata[f"{key}_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise FormatError(f"'{path}': the {what} cannot be decoded: {key}_base64 is not base64") from None
    elif key in metadata:
        data = metadata[key]
    else:
        return None
    try:
        value = parse_json(data)
    except ValueError as exc:
        raise FormatError(f"'{path}': the {what} cannot be decoded: it {exc}") from None
    if not isinstance(value, dict):
        raise FormatError(f"'{path}': the {what} cannot be decoded: a JSON {_json_type(value)}, not an object")
    if _depth(value) > MAX_DEPTH:
        raise FormatError(f"'{path}': the {what} cannot be decoded: nested deeper than {MAX_DEPTH} levels")
    return value


def _check_map(path, qmap: dict, where: str) -> dict:
    bad = next((module for module, entry in qmap.items() if not isinstance(entry, dict)), None)
    if bad is not None:
        raise FormatError(f"'{path}': the quantization map cannot be decoded: {where} entry '{_short(bad)}' is "
                          "not an object")
    return qmap


def decode_metadata(metadata: dict, path="") -> dict:
    """The metadata with ``config`` and ``quantization_map`` decoded to JSON objects (mmgp's ``_base64``
    convention, or plain JSON text); other entries as they are. Raises :class:`FormatError` for a value that
    cannot be decoded."""
    decoded = dict(metadata)
    for key in EMBEDDED_JSON:
        value = _decode_embedded(path, metadata, key)
        if value is not None:
            decoded[key] = _check_map(path, value, "its") if key == "quantization_map" else value
    return decoded


def quantization_map(path, decoded: dict) -> dict | None:
    """The quanto map of a file: from its (decoded) metadata, else from mmgp's ``<stem>_map.json`` beside it."""
    qmap = decoded.get("quantization_map")
    if isinstance(qmap, dict) and qmap:
        return qmap
    path = Path(path)
    sidecar = path.with_name(path.name.rsplit(".", 1)[0] + "_map.json")
    if not sidecar.is_file():
        return None
    try:
        text = sidecar.read_bytes()
    except OSError as exc:
        raise os_error(exc, "cannot read") from None
    try:
        qmap = parse_json(text)
    except ValueError as exc:
        raise FormatError(f"'{path}': the quantization map cannot be decoded: side-car '{sidecar.name}' "
                          f"{exc}") from None
    if not isinstance(qmap, dict) or _depth(qmap) > MAX_DEPTH:
        raise FormatError(f"'{path}': the quantization map cannot be decoded: side-car '{sidecar.name}' is not "
                          "a JSON object of modules")
    return _check_map(path, qmap, f"side-car '{sidecar.name}'") or None


def is_quantized_checkpoint(path) -> bool:
    """Whether ``path`` is a valid safetensors file holding a quanto map (wangp's own kind of output)."""
    try:
        _, _, metadata = read_header(path)
        return bool(quantization_map(path, decode_metadata(metadata, path)))
    except WangpError:
        return False


class TensorReader:
    """Tensors of one file, read one at a time into fresh memory (peak memory: one tensor).

    ``pread`` rather than a memory map: mapped pages of a multi-GB file would all count in the resident set.
    """

    def __init__(self, path):
        self.path = path
        self.offset, self.entries, self.metadata = read_header(path)
        try:
            self._handle = open(path, "rb")
        except OSError as exc:
            raise os_error(exc, "cannot read") from None

    def read_bytes(self, entry: Entry, into=None):
        """The tensor's bytes as a flat uint8 torch tensor (``into``: a uint8 tensor of at least ``entry.nbytes``
        to read into instead of fresh memory; reused buffers are already paged in: no page faults)."""
        import torch

        flat = torch.empty(entry.nbytes, dtype=torch.uint8) if into is None else into[:entry.nbytes]
        buffer = memoryview(flat.numpy())
        done = 0
        while done < entry.nbytes:
            count = os.preadv(self._handle.fileno(), [buffer[done:]], self.offset + entry.start + done)
            if count <= 0:
                raise FormatError(f"'{self.path}' is truncated (it shrank while being read)",
                                  hint="download it again")
            done += count
        return flat

    def tensor(self, entry: Entry, into=None):
        """A torch tensor holding a copy of the file's bytes (aligned, writable); see :meth:`read_bytes`."""
        import torch

        dtypes = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
                  "I8": torch.int8, "U8": torch.uint8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
                  "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64, "BOOL": torch.bool,
                  "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "C64": torch.complex64}
        if entry.dtype not in dtypes:
            raise FormatError(f"'{self.path}': tensor '{_short(entry.name)}' has dtype {entry.dtype}, which wangp "
                              "cannot load as a tensor")
        if entry.nbytes == 0:
            return torch.empty(entry.shape, dtype=dtypes[entry.dtype])
        return self.read_bytes(entry, into).view(dtypes[entry.dtype]).reshape(entry.shape)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def encode_header(entries: list[Entry], metadata: dict) -> bytes:
    """mmgp's header: tensors back to back in the given order, metadata last, default json separators."""
    header = {}
    offset = 0
    for entry in entries:
        header[entry.name] = {"dtype": entry.dtype, "shape": list(entry.shape),
                              "data_offsets": [offset, offset + entry.nbytes]}
        offset += entry.nbytes
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(text)) + text
