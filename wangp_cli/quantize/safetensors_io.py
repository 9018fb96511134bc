"""Reading safetensors tensor by tensor (memory-mapped) and writing WanGP/mmgp-style containers.

mmgp's reader ignores ``data_offsets`` and assumes header order = data order, so the writer always emits them in
the same order; the header is ``json.dumps`` with default separators, ``__metadata__`` last, no padding.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from wangp_cli.core.errors import WangpError

ELEMENT_SIZE = {"BF16": 2, "F16": 2, "F32": 4, "F64": 8, "I8": 1, "U8": 1, "I16": 2, "U16": 2, "I32": 4, "U32": 4,
                "I64": 8, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
FLOATS = ("BF16", "F16", "F32", "F64")
MAX_HEADER = 100 * 1024 * 1024


def decode_metadata(metadata: dict) -> dict:
    """mmgp's convention: every ``<key>_base64`` value is base64 JSON (stored under ``<key>``)."""
    decoded = {}
    for key, value in metadata.items():
        if key.endswith("_base64"):
            try:
                decoded[key[: -len("_base64")]] = json.loads(base64.b64decode(value))
            except ValueError:
                decoded[key] = value
        else:
            decoded[key] = value
    return decoded


def quantization_map(path, decoded: dict) -> dict | None:
    """The quanto map of a file: from its (decoded) metadata, else from mmgp's ``<stem>_map.json`` beside it."""
    qmap = decoded.get("quantization_map")
    if isinstance(qmap, str):  # stored as plain JSON
        try:
            qmap = json.loads(qmap)
        except ValueError:
            qmap = None
    if isinstance(qmap, dict) and qmap:
        return qmap
    path = Path(path)
    sidecar = path.with_name(path.name.rsplit(".", 1)[0] + "_map.json")
    if sidecar.is_file():
        try:
            qmap = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return qmap if isinstance(qmap, dict) else None
    return None


@dataclass(frozen=True)
class Entry:
    """One tensor of a safetensors file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int = 0  # offset in the data section
    end: int = 0

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * ELEMENT_SIZE[self.dtype]


def read_header(path) -> tuple[int, list[Entry], dict]:
    """(data section offset, entries in data order, metadata). Never reads tensor data; never unpickles."""
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) != 8:
            raise WangpError(f"'{path}' is not a safetensors file (too short)", code="format")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER:
            raise WangpError(f"'{path}' is not a safetensors file (header of {length} bytes)", code="format")
        try:
            header = json.loads(handle.read(length))
        except (ValueError, UnicodeDecodeError):
            raise WangpError(f"'{path}' is not a safetensors file (bad header)", code="format") from None
    if not isinstance(header, dict):
        raise WangpError(f"'{path}' is not a safetensors file (bad header)", code="format")
    metadata = header.pop("__metadata__", None) or {}
    entries = []
    for name, info in header.items():
        try:
            start, end = info["data_offsets"]
            entry = Entry(name, info["dtype"], tuple(info["shape"]), start, end)
        except (KeyError, TypeError, ValueError):
            raise WangpError(f"'{path}': malformed entry for tensor '{name}'", code="format") from None
        if entry.dtype not in ELEMENT_SIZE or entry.end - entry.start != entry.nbytes:
            raise WangpError(f"'{path}': tensor '{name}' has an unsupported dtype or wrong size", code="format")
        entries.append(entry)
    entries.sort(key=lambda e: (e.start, e.end))
    return 8 + length, entries, metadata


class TensorReader:
    """Tensors of one file, read one at a time into fresh memory (peak memory: one tensor).

    ``pread`` rather than a memory map: mapped pages of a multi-GB file would all count in the resident set.
    """

    def __init__(self, path):
        self.path = path
        self.offset, self.entries, self.metadata = read_header(path)
        self._handle = open(path, "rb")
        size = self._handle.seek(0, 2)
        if self.entries and self.offset + max(e.end for e in self.entries) > size:
            self._handle.close()
            raise WangpError(f"'{path}' is truncated", code="format", hint="download it again")

    def tensor(self, entry: Entry, into=None):
        """A torch tensor holding a copy of the file's bytes (aligned, writable).

        ``into``: a uint8 tensor of at least ``entry.nbytes`` to read into instead of fresh memory (reused buffers
        are already paged in: no page faults).
        """
        import torch

        dtypes = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
                  "I8": torch.int8, "U8": torch.uint8, "I16": torch.int16, "I32": torch.int32, "I64": torch.int64,
                  "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}
        if entry.nbytes == 0:
            return torch.empty(entry.shape, dtype=dtypes[entry.dtype])
        flat = torch.empty(entry.nbytes, dtype=torch.uint8) if into is None else into[:entry.nbytes]
        buffer = memoryview(flat.numpy())
        done = 0
        while done < entry.nbytes:
            count = os.preadv(self._handle.fileno(), [buffer[done:]], self.offset + entry.start + done)
            if count <= 0:
                raise WangpError(f"'{self.path}' is truncated", code="format", hint="download it again")
            done += count
        return flat.view(dtypes[entry.dtype]).reshape(entry.shape)

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
