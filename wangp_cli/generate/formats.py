"""Checkpoint formats besides 16-bit and quanto int8 that wangp reads, by dequantizing to the compute dtype on load:
scaled fp8 (ComfyUI's and WanGP's ``*_fp8*`` files) and GGUF (city96's ComfyUI-GGUF files, Kijai's LTX-2 ones).

Both end as plain float tensors in the family's original layout, so every family's converter, the key checks and
``auto_quantize`` work on them unchanged. The price is host memory: the weights take their 16-bit size while they
load (a scaled fp8 file twice its size on disk, a Q4 GGUF about four times), which the load stage's peak RSS shows.
wangp does not compute in fp8 or run GGUF kernels (diffusers' GGUF linear layers want its own ``from_single_file``
path, which has no converter for several WanGP layouts and none for fused-qkv splits of quantized blocks).
Other formats (nvfp4, nf4, nunchaku, int8 convrot) stay refused before any load (``core.variants.READABLE_KINDS``).
"""

from __future__ import annotations

import json
from pathlib import Path

from wangp_cli.core.errors import WangpError

#: Per-module scale tensors of a scaled fp8 weight (WanGP reads both spellings: ``shared/qtypes/scaled_fp8.py``).
FP8_SCALES = ("scale_weight", "weight_scale")
#: Other per-module tensors of the format, not model parameters (activation scales, ComfyUI's format record).
FP8_EXTRAS = ("comfy_quant", "input_scale", "output_scale")
#: The marker tensor ComfyUI writes at the top level of a scaled fp8 file.
FP8_MARKER = "scaled_fp8"
#: GGUF metadata of ComfyUI-GGUF: the real shape of a tensor stored flattened to at most 4 dims (Conv3d weights).
GGUF_ORIG_SHAPE = "comfy.gguf.orig_shape."


def is_fp8(tensor) -> bool:
    import torch

    return tensor.dtype in (torch.float8_e4m3fn, torch.float8_e5m2)


def has_fp8(tensors: dict) -> bool:
    return any(is_fp8(tensor) for tensor in tensors.values())


def _weight_scale(scale, weight, name: str, where: str):
    """The scale shaped to multiply the weight: one number, or one per output row."""
    rows = weight.shape[0]
    if scale.numel() == 1:
        return scale.reshape(())
    if scale.numel() == rows and (scale.ndim == 1 or tuple(scale.shape[1:]) == (1,) * (scale.ndim - 1)):
        return scale.reshape(rows, *([1] * (weight.ndim - 1)))
    raise WangpError(f"{where}: the fp8 scale of '{name}' has shape {tuple(scale.shape)}, neither one value nor one per "
                     f"row of its {tuple(weight.shape)} weight (block-wise fp8 is not supported)", code="format",
                     hint="use the definition's 16-bit or quanto int8 file")


def _comfy_format(record, name: str, where: str) -> None:
    """Refuse a ComfyUI ``comfy_quant`` record that names another format than fp8 (e.g. its int8/nvfp4 ones)."""
    try:
        value = json.loads(bytes(record.tolist()).decode("utf-8"))
    except (ValueError, TypeError, UnicodeDecodeError):
        raise WangpError(f"{where}: '{name}.comfy_quant' is not a JSON record", code="format") from None
    form = str(value.get("format", "")) if isinstance(value, dict) else ""
    if form and "fp8" not in form.lower() and "float8" not in form.lower():
        raise WangpError(f"{where}: '{name}' is stored as ComfyUI '{form}', which wangp cannot read (fp8 only)",
                         code="format", hint="use the definition's 16-bit or quanto int8 file")


def dequantize_fp8(tensors: dict, dtype, where: str = "the checkpoint") -> dict:
    """Scaled fp8 tensors -> ``dtype``: ``weight.float() * scale`` (per tensor or per row, as WanGP's
    ``dequantize``), the scale and activation-scale tensors and ComfyUI's marker dropped; fp8 tensors without a
    scale are cast."""
    import torch

    out = {}
    consumed = {FP8_MARKER}
    for name, tensor in tensors.items():
        if name in consumed or not is_fp8(tensor):
            continue
        base = name[: -len(".weight")] if name.endswith(".weight") else None
        scale = next((tensors[f"{base}.{s}"] for s in FP8_SCALES if base and f"{base}.{s}" in tensors), None)
        if base and f"{base}.comfy_quant" in tensors:
            _comfy_format(tensors[f"{base}.comfy_quant"], base, where)
        value = tensor.to(torch.float32)
        if scale is not None:
            value = value * _weight_scale(scale.to(torch.float32), tensor, name, where)
        out[name] = value.to(dtype)
        if base:
            consumed |= {f"{base}.{suffix}" for suffix in FP8_SCALES + FP8_EXTRAS}
    for name, tensor in tensors.items():
        if name not in out and name not in consumed:
            out[name] = tensor
    return out


def _orig_shapes(reader) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for key, value in reader.fields.items():
        if key.startswith(GGUF_ORIG_SHAPE):
            shapes[key[len(GGUF_ORIG_SHAPE):]] = tuple(int(value.parts[i][0]) for i in value.data)
    return shapes


def _dequantized(tensor):
    """A GGUF tensor in float32 by diffusers' block dequantizers. Not ``dequantize_gguf_tensor``: that one multiplies
    in the scales' fp16 (``dtype=None``), a second rounding before the cast to the compute dtype."""
    import torch
    from diffusers.quantizers.gguf.utils import (
        GGML_QUANT_SIZES,
        _quant_shape_from_byte_shape,
        dequantize_functions,
    )

    if not hasattr(tensor, "quant_type"):
        return tensor
    block_size, type_size = GGML_QUANT_SIZES[tensor.quant_type]
    raw = tensor.as_tensor().view(torch.uint8)
    shape = _quant_shape_from_byte_shape(raw.shape, type_size, block_size)
    blocks = raw.reshape((raw.numel() // type_size, type_size))
    return dequantize_functions[tensor.quant_type](blocks, block_size, type_size, dtype=torch.float32).reshape(shape)


def read_gguf(path: Path, dtype=None) -> dict:
    """The tensors of a GGUF file, dequantized with diffusers' GGUF functions (``dtype``: cast each one right away,
    so that host memory holds one float32 tensor at a time), in their real shapes (ComfyUI-GGUF's
    ``comfy.gguf.orig_shape`` metadata)."""
    try:
        from gguf import GGUFReader

        from diffusers.models.model_loading_utils import load_gguf_checkpoint
    except ImportError:
        raise WangpError(f"'{path}' is a GGUF file: reading it needs the gguf package", code="format",
                         hint="pip install gguf") from None
    try:
        shapes = _orig_shapes(GGUFReader(str(path)))
        parsed = load_gguf_checkpoint(str(path), return_tensors=True)
    except (ValueError, OSError, KeyError, IndexError) as exc:
        raise WangpError(f"cannot read GGUF file '{path}': {str(exc).splitlines()[0] if str(exc) else exc!r}",
                         code="format", hint="is it a complete .gguf file? 'wangp download' fetches it again") from None
    tensors = {}
    for name in list(parsed):
        value = _dequantized(parsed.pop(name))
        if name in shapes:
            value = value.reshape(shapes[name])
        tensors[name] = value.to(dtype) if dtype is not None and value.is_floating_point() else value
    return tensors
