"""Streaming quanto qint8: one tensor in memory at a time, output bit-identical to quanto quantize + freeze.

Which tensors: 2-D ``.weight`` of Linear layers inside the repeated block lists (``blocks.N``, ``vace_blocks.N``,
``double_blocks.N``, ``single_blocks.N``, ... any numbered list of 5 or more), except WanGP's dtype-locked extras.
Scales are computed in the target dtype (the weight is cast first), per output row: ``absmax / 127``.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core.errors import WangpError
from wangp_cli.quantize.safetensors_io import FLOATS, Entry, TensorReader, decode_metadata, encode_header

TARGET_CODES = {"bf16": "BF16", "fp16": "F16"}
#: WanGP keeps these in fp32 in every file (``lock_layers_dtypes``).
FP32_LOCKED = re.compile(r"^(patch_embedding\.|head\.head\.|head\.modulation$)")
#: Modules inside the towers that WanGP never quantizes (``_lock_dtype``).
LOCKED_MODULES = re.compile(r"\.(before_proj|after_proj|projector|cam_encoder)(\.|$)")
_FLOOR = re.compile(r"^((?:[A-Za-z_][\w]*\.)*?[A-Za-z_][\w]*)\.(\d+)\.")
MIN_FLOORS = 5


def towers(names: list[str]) -> set[str]:
    """Prefixes of numbered module lists with at least 5 floors (``blocks``, ``vace_blocks``, ...)."""
    floors: dict[str, set[str]] = {}
    for name in names:
        match = _FLOOR.match(name)
        if match:
            floors.setdefault(match[1], set()).add(match[2])
    return {prefix for prefix, numbers in floors.items() if len(numbers) >= MIN_FLOORS}


def family_skip(names: list[str], family: str | None = None) -> re.Pattern | None:
    """The modules WanGP's quantization leaves out for the family whose layout these tensor names are
    (``Family.quantize_skip``; ``family``, the definition's, is tried first; ``recognises`` reads names only), None
    when there are none."""
    from wangp_cli.families import FAMILIES

    keys = dict.fromkeys(names)
    for candidate in sorted(FAMILIES.values(), key=lambda f: f.name != family):
        if candidate.recognises(keys):
            skip = candidate.quantize_skip
            return re.compile("|".join(f"(?:{pattern})" for pattern in skip)) if skip else None
    return None


def quantized_modules(entries: list[Entry], family: str | None = None) -> list[str]:
    """Module names whose weight gets quantized, in file order (``family``: the definition's family package)."""
    found = towers([e.name for e in entries])
    skip = family_skip([e.name for e in entries], family)
    modules = []
    for entry in entries:
        if (not entry.name.endswith(".weight") or len(entry.shape) != 2 or 0 in entry.shape
                or entry.dtype not in FLOATS):
            continue
        match = _FLOOR.match(entry.name)
        if match and match[1] in found and not LOCKED_MODULES.search(entry.name) and not (
                skip and skip.search(entry.name)):
            modules.append(entry.name[: -len(".weight")])
    return modules


def quantize_tensor(weight, dtype, work=None):
    """(int8 data, scale) exactly as optimum-quanto's qint8 AbsmaxOptimizer on axis 0, in ``dtype``.

    ``work``: an optional :class:`_Workspace` whose buffers receive the intermediate and int8 results (no fresh
    allocations, hence no page faults, in the hot loop). The absolute maximum is taken on the bit pattern: clearing
    the sign bit of a 16-bit float gives an integer that orders like the magnitude.
    """
    import torch

    work = work or _Workspace(weight.numel() * 4)
    w = weight if weight.dtype == dtype else work.buffer("cast", dtype, weight.shape).copy_(weight)
    bits = torch.bitwise_and(w.view(torch.int16), 0x7FFF, out=work.buffer("bits", torch.int16, w.shape))
    if w.shape[0] == 1:
        absmax = bits.amax()
    else:
        absmax = bits.amax(dim=tuple(range(1, w.dim())), keepdim=True)
    scale = absmax.view(dtype) / 127
    ratio = torch.div(w, scale, out=work.buffer("ratio", dtype, w.shape))
    ratio.round_().clamp_(-128, 127)
    data = work.output(w.shape).copy_(ratio)
    return data, scale


class _Workspace:
    """Reusable buffers of ``nbytes`` (the largest tensor): scratch space, and a ring of int8 outputs that the
    writer gives back once written. Reused memory is already paged in: no page faults in the hot loop."""

    def __init__(self, nbytes: int, outputs: int = 1):
        import queue

        import torch

        self._nbytes = nbytes
        self._scratch: dict = {}
        self._free = queue.Queue()
        for _ in range(outputs):
            self._free.put(torch.empty(nbytes, dtype=torch.int8))
        self.taken = None  # the output buffer most recently handed out

    def buffer(self, name: str, dtype, shape):
        """Scratch buffer ``name`` viewed as a ``dtype`` tensor of ``shape`` (overwritten by the next use)."""
        import torch

        if name not in self._scratch:
            self._scratch[name] = torch.empty(self._nbytes, dtype=torch.uint8)
        count = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
        return self._scratch[name][:count].view(dtype).view(shape)

    def output(self, shape):
        """An int8 output buffer; blocks until the writer has given one back (see :meth:`give_back`)."""
        buffer = self._free.get()
        self.taken = buffer
        return buffer[:math.prod(shape)].view(shape)

    def give_back(self, buffer) -> None:
        self._free.put(buffer)


@dataclass
class QuantizePlan:
    """The output layout, computed from the source header alone."""

    entries: list[Entry]
    sources: list[tuple[str, str, Entry | None]]  # (kind, output name, source entry) in output order
    quantization_map: dict
    metadata: dict
    counts: Counter = field(default_factory=Counter)


def plan_output(entries: list[Entry], metadata: dict, dtype: str, config: dict | None = None,
                source="", family: str | None = None) -> QuantizePlan:
    target = TARGET_CODES[dtype]
    by_name = {e.name: e for e in entries}
    modules = quantized_modules(entries, family)
    if not modules:
        raise WangpError("no Linear weights in repeated blocks: nothing to quantize",
                         hint="is this a transformer checkpoint in WanGP's original key layout?")
    module_set = set(modules)
    out: list[Entry] = []
    sources: list[tuple[str, str, Entry | None]] = []
    counts: Counter = Counter()
    for entry in entries:
        module, _, leaf = entry.name.rpartition(".")
        if module in module_set and leaf == "bias":
            continue  # written with its module
        if module in module_set and leaf == "weight":
            rows = entry.shape[0]
            scale_shape = () if rows == 1 else (rows, 1)
            out += [Entry(f"{module}.weight._data", "I8", entry.shape), Entry(f"{module}.weight._scale", target,
                                                                             scale_shape)]
            sources += [("data", f"{module}.weight._data", entry), ("scale", f"{module}.weight._scale", entry)]
            bias = by_name.get(f"{module}.bias")
            if bias is not None:
                out.append(Entry(f"{module}.bias", target, bias.shape))
                sources.append(("cast", f"{module}.bias", bias))
            for name in ("input_scale", "output_scale"):
                out.append(Entry(f"{module}.{name}", target, ()))
                sources.append(("one", f"{module}.{name}", None))
            counts["quantized"] += 1
            continue
        if entry.dtype in FLOATS:
            keep = "F32" if FP32_LOCKED.match(entry.name) else target
            out.append(Entry(entry.name, keep, entry.shape))
            sources.append(("cast", entry.name, entry))
            counts[f"float {keep}"] += 1
        else:
            out.append(Entry(entry.name, entry.dtype, entry.shape))
            sources.append(("copy", entry.name, entry))
            counts["other"] += 1
    qmap = {module: {"weights": "qint8", "activations": "none"} for module in modules}
    meta = {"quantization_format": "quanto",
            "quantization_map_base64": base64.b64encode(json.dumps(qmap, ensure_ascii=False).encode()).decode()}
    own = decode_metadata(metadata, source).get("config")  # WanGP's own, in a file WanGP saved
    config = own or (config if config and _describes(config, by_name, entries) else None)
    if config:
        meta["config_base64"] = base64.b64encode(json.dumps(config, ensure_ascii=False).encode()).decode()
    return QuantizePlan(out, sources, qmap, meta, counts)


def _describes(config: dict, by_name: dict, entries: list[Entry]) -> bool:
    """Whether the architecture's config fits these tensors (width, FFN width, depth): a finetune of another
    size gets no embedded config rather than a wrong one."""
    query = by_name.get("blocks.0.self_attn.q.weight")
    ffn = by_name.get("blocks.0.ffn.0.weight")
    depth = len({e.name.split(".")[1] for e in entries if e.name.startswith("blocks.")})
    return (query is not None and query.shape[:1] == (config.get("dim"),) and depth == config.get("num_layers")
            and (ffn is None or ffn.shape[:1] == (config.get("ffn_dim"),)))


def _bytes_of(tensor) -> memoryview:
    """The raw little-endian bytes of a tensor, without a copy."""
    import torch

    if tensor.numel() == 0:
        return memoryview(b"")
    tensor = tensor.contiguous()
    if tensor.dtype in (torch.bfloat16, torch.float16):
        tensor = tensor.view(torch.int16)
    return memoryview(tensor.numpy()).cast("B")


class _BackgroundWriter:
    """Writes buffers in a thread, so that disk writes overlap the next tensor's quantization.

    Each written range is handed to the kernel for write-back right away (``POSIX_FADV_DONTNEED`` starts it and
    keeps the page cache clean), so the final ``fsync`` has little left to wait for.
    """

    FLUSH_EVERY = 64 * 1024 * 1024

    def __init__(self, handle):
        import queue
        import threading

        self._handle = handle
        self._queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._position = self._flushed = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            buffer, done = item
            if self._error is None:
                try:
                    self._handle.write(buffer)
                    self._position += len(buffer)
                    if self._position - self._flushed >= self.FLUSH_EVERY:
                        self._start_writeback()
                except BaseException as exc:  # reported on the next write or at drain
                    self._error = exc
            if done is not None:
                done()

    def _start_writeback(self) -> None:
        if hasattr(os, "posix_fadvise"):
            self._handle.flush()
            os.posix_fadvise(self._handle.fileno(), self._flushed, self._position - self._flushed,
                             os.POSIX_FADV_DONTNEED)
        self._flushed = self._position

    def write(self, buffer, done=None) -> None:
        """Queue ``buffer``; ``done()`` runs once it is written (to recycle it)."""
        if self._error is not None:
            raise self._error
        self._queue.put((buffer, done))

    def drain(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def output_size(plan: QuantizePlan) -> int:
    """The bytes of the output file, known from the source header alone."""
    return len(encode_header(plan.entries, plan.metadata)) + sum(e.nbytes for e in plan.entries)


def quantize_file(source, output, dtype: str, *, config: dict | None = None, progress=None,
                  on_start=None, family: str | None = None) -> QuantizePlan:
    """Stream ``source`` (16/32-bit safetensors) into a quanto int8 file at ``output`` (temp name, then rename).

    Everything that can be checked first is: the source header, the output folder (writable), its free space
    (the output size follows from the header). ``on_start()`` runs once those passed, before the first byte.
    ``progress(name)`` hears of each tensor written; a ``progress`` with an ``expect`` method gets their number
    first (``progress.expect(n)``). The output gets the umask's mode (0644 under 022).
    """
    import torch

    from wangp_cli.core.jsonio import created_mode
    from wangp_cli.core.outputs import check_folder_writable, check_free_space, os_error

    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    codes = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
    output = Path(output)
    with TensorReader(source) as reader:
        if "quantization_map" in decode_metadata(reader.metadata, source):
            raise WangpError(f"'{source}' is already quantized",
                             hint="quantize the 16-bit file of the definition instead")
        plan = plan_output(reader.entries, reader.metadata, dtype, config, source, family)
        folder = check_folder_writable(output.parent, what="folder for the quantized file")
        check_free_space(folder, output_size(plan), what=f"'{output.name}'")
        if hasattr(progress, "expect"):
            progress.expect(min(len(plan.sources), len(plan.entries)))  # one progress() call per pair below
        if on_start:
            on_start()
        temp = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".wangp-tmp", dir=folder)
            os.fchmod(fd, created_mode())
            work = _Workspace(max(e.nbytes for e in reader.entries), outputs=3)
            one = _bytes_of(torch.ones((), dtype=torch_dtype)).tobytes()
            with os.fdopen(fd, "wb") as handle, _BackgroundWriter(handle) as writer:
                handle.write(encode_header(plan.entries, plan.metadata))
                scale = None  # the scale of the weight whose data was just written
                for (kind, name, entry), out_entry in zip(plan.sources, plan.entries):
                    if kind == "data":
                        weight = reader.tensor(entry, into=work.buffer("input", torch.uint8, (entry.nbytes,)))
                        data, scale = quantize_tensor(weight, torch_dtype, work)
                        writer.write(_bytes_of(data), functools.partial(work.give_back, work.taken))
                    elif kind == "scale":
                        writer.write(_bytes_of(scale))
                    elif kind == "one":
                        writer.write(one)
                    elif kind == "copy":  # raw bytes: any dtype, fresh memory (the writer may hold it a while)
                        writer.write(memoryview(reader.read_bytes(entry).numpy()))
                    else:
                        writer.write(_bytes_of(reader.tensor(entry).to(codes[out_entry.dtype])))
                    if progress:
                        progress(name)
                writer.drain()
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, output)
        except OSError as exc:  # the file system's refusal, in one line naming the output
            raise os_error(OSError(exc.errno, exc.strerror), f"cannot write '{output}'") from None
        finally:
            if temp and os.path.exists(temp):
                os.unlink(temp)
    return plan
