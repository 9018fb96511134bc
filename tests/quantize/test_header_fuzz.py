"""Property test: no file, however malformed, makes a checkpoint reader raise anything but wangp's own errors.

Random bytes, and random mutations of real headers written by ``safetensors.torch.save_file``, go through the
three readers: ``wangp inspect``'s, the quantizer's (the whole ``quantize_file``) and the generate loader's
(``read_checkpoint``). Each either succeeds or raises a :class:`WangpError`; and wangp's header parser accepts a
file exactly when ``safetensors.safe_open`` does (duplicate JSON keys aside, which wangp refuses and safetensors
resolves silently).
"""

from __future__ import annotations

import base64
import json
import math
import struct

import pytest

torch = pytest.importorskip("torch")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from safetensors import SafetensorError, safe_open  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from wangp_cli.core.errors import WangpError  # noqa: E402
from wangp_cli.generate.weights import read_checkpoint  # noqa: E402
from wangp_cli.quantize.inspection import inspect_checkpoint  # noqa: E402
from wangp_cli.quantize.quantizer import quantize_file  # noqa: E402
from wangp_cli.quantize.safetensors_io import DTYPE_BITS, read_header  # noqa: E402

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


def real_file() -> bytes:
    """A small WanGP-layout checkpoint: 5 blocks (quantizable), several dtypes, a scalar, an empty tensor."""
    generator = torch.Generator().manual_seed(0)
    state = {"patch_embedding.weight": torch.randn(16, 1, 1, 1, 2, generator=generator),
             "scalar": torch.tensor(1.5), "empty": torch.zeros(0, 3), "ids": torch.arange(4, dtype=torch.int64),
             "mask": torch.ones(3, dtype=torch.uint8)}
    for index in range(5):
        state[f"blocks.{index}.ffn.0.weight"] = torch.randn(4, 16, generator=generator)
        state[f"blocks.{index}.ffn.0.bias"] = torch.randn(4, generator=generator)
    state = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()}
    state["head.head.weight"] = torch.randn(2, 16, generator=generator)  # stays F32
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "real_bf16.safetensors"
        config = base64.b64encode(json.dumps({"num_heads": 2, "dim": 16}).encode()).decode()
        save_file(state, str(path), metadata={"config_base64": config, "format": "pt"})
        return path.read_bytes()


REAL = real_file()
(_LENGTH,) = struct.unpack("<Q", REAL[:8])
HEADER = json.loads(REAL[8: 8 + _LENGTH])
DATA = REAL[8 + _LENGTH:]
NAMES = sorted(k for k in HEADER if k != "__metadata__")
SAME_SIZE = {dtype: [other for other in DTYPE_BITS if DTYPE_BITS[other] == bits] for dtype, bits in DTYPE_BITS.items()}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2**65) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)
near_numbers = st.integers(-2, 40) | st.sampled_from([2**64 - 1, 2**64, len(DATA), len(DATA) + 1])
shapes = st.lists(near_numbers, max_size=4) | json_values
offsets = st.lists(near_numbers, min_size=0, max_size=3) | json_values
dtypes = st.sampled_from(sorted(DTYPE_BITS) + ["Q4_K", "f32", ""]) | json_values
encoded = st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()) | st.text(max_size=20) | \
    json_values.map(lambda v: base64.b64encode(json.dumps(v).encode()).decode()) | \
    st.integers(1, 3000).map(lambda n: base64.b64encode(b"[" * n + b"]" * n).decode())
metadata_values = st.dictionaries(st.sampled_from(["config_base64", "quantization_map_base64", "config",
                                                   "quantization_map", "quantization_format", "x"]),
                                  encoded, max_size=3) | json_values


@st.composite
def mutated_headers(draw) -> bytes:
    """The real header with a few entries changed, then re-encoded (sometimes with a lying length or data)."""
    header = json.loads(json.dumps(HEADER))
    for _ in range(draw(st.integers(1, 2))):
        target = draw(st.sampled_from(NAMES + ["__metadata__"] * 4))
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "entry", "delete", "swap"]
                                     + ["retype", "reshape"] * 3))
        entry = header.get(target)
        if target == "__metadata__":
            header["__metadata__"] = draw(metadata_values)
        elif field == "entry" or not isinstance(entry, dict):
            header[target] = draw(json_values)
        elif field == "delete":
            entry.pop(draw(st.sampled_from(["dtype", "shape", "data_offsets"])), None)
        elif field == "retype" and str(entry.get("dtype")) in SAME_SIZE:  # the header stays valid
            entry["dtype"] = draw(st.sampled_from(SAME_SIZE[str(entry["dtype"])]))
        elif field == "reshape" and isinstance(entry.get("shape"), list) and all(
                isinstance(dim, int) for dim in entry["shape"]):  # same element count
            count = math.prod(entry["shape"])
            entry["shape"] = draw(st.sampled_from([[count], [1, count], [count, 1], [count, 1, 1], [count, 0]]))
        elif field == "swap":
            other = header.get(draw(st.sampled_from(NAMES)))
            entry["data_offsets"] = other.get("data_offsets") if isinstance(other, dict) else [0, 0]
        else:
            entry[field] = draw({"dtype": dtypes, "shape": shapes, "data_offsets": offsets}.get(field, json_values))
    text = json.dumps(header).encode() + draw(st.sampled_from([b""] * 6 + [b"   ", b"\x00"]))
    length = len(text) + draw(st.sampled_from([0] * 8 + [-1, 1, 2**40]))
    data = draw(st.sampled_from([DATA] * 6 + [DATA[: len(DATA) // 2], DATA + b"\0"]))
    return struct.pack("<Q", max(length, 0)) + text + data


@st.composite
def byte_mutations(draw) -> bytes:
    """The real file with a few bytes of its header overwritten, or cut short."""
    raw = bytearray(REAL)
    for _ in range(draw(st.integers(1, 4))):
        raw[draw(st.integers(0, 8 + _LENGTH - 1))] = draw(st.integers(0, 255))
    return bytes(raw[: draw(st.integers(0, len(raw)))] if draw(st.booleans()) else raw)


def safetensors_accepts(path) -> bool:
    """Whether ``safe_open`` accepts the header (it checks it whole on opening; reading a tensor into torch can
    still fail for dtypes torch lacks, which is the loader's concern, not the header's)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
            handle.metadata()
        return True
    except SafetensorError:
        return False


def wangp_accepts(path) -> bool | None:
    """Whether wangp's parser accepts the file; None for duplicate JSON keys (safetensors keeps the last)."""
    try:
        read_header(path)
        return True
    except WangpError as exc:
        assert exc.code == "format", exc.message
        return None if "appears twice" in exc.message else False


def check_readers(tmp_path, data: bytes) -> None:
    path = tmp_path / "fuzz_bf16.safetensors"
    path.write_bytes(data)
    for reader in (lambda: inspect_checkpoint(path),
                   lambda: quantize_file(path, tmp_path / "out.safetensors", "bf16"),
                   lambda: read_checkpoint([path])):
        try:
            reader()
        except WangpError:
            pass  # anything else fails the test
    ours = wangp_accepts(path)
    if ours is not None:
        assert ours == safetensors_accepts(path), f"wangp accepts: {ours}, safetensors accepts: {not ours}"


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_raise_only_wangp_errors(tmp_path, data):
    check_readers(tmp_path, data)


@FUZZ
@given(data=mutated_headers())
def test_mutated_headers_raise_only_wangp_errors(tmp_path, data):
    check_readers(tmp_path, data)


@FUZZ
@given(data=byte_mutations())
def test_mutated_bytes_raise_only_wangp_errors(tmp_path, data):
    check_readers(tmp_path, data)
