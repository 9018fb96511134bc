"""What a checkpoint is, from its header alone (no tensor data read, nothing unpickled)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from wangp_cli.core.errors import WangpError
from wangp_cli.quantize.quantizer import quantized_modules, towers
from wangp_cli.quantize.safetensors_io import decode_metadata, quantization_map, read_header


def _layout(names: set[str]) -> str:
    if any(n.startswith(("condition_embedder.", "transformer_blocks.", "x_embedder.")) or ".attn1." in n
           for n in names):
        return "diffusers"
    if any(n.startswith(("patch_embedding.", "blocks.", "vace_blocks.", "double_blocks.", "img_in.")) for n in names):
        return "original (WanGP)"
    return "unknown"


def _guess(shapes: dict[str, tuple], names: set[str]) -> str | None:
    """Base architecture from tensor shapes (original Wan / Hunyuan layout)."""
    if any(n.startswith("double_blocks.") for n in names):
        image = shapes.get("img_in.proj.weight", (0, 0))
        return "hunyuan_i2v (or another 33-channel Hunyuan)" if len(image) > 1 and image[1] == 33 else "hunyuan"
    weight = shapes.get("patch_embedding.weight")
    if weight is None or len(weight) < 2:
        if any(n.startswith("vace_blocks.") for n in names):
            return "vace_14B module" if any(s and s[-1] == 5120 for s in shapes.values()) else "vace module"
        return None
    dim, in_dim = weight[0], weight[1]
    size = {1536: "1.3B", 5120: "14B"}.get(dim, f"dim {dim}")
    if any(n.startswith("vace_blocks.") for n in names):
        return f"vace_{size}"
    if in_dim == 36 or any(".k_img." in n for n in names):
        return "i2v / i2v_720p (same shapes)" if size == "14B" else f"i2v-class {size} (fun_inp_1.3B?)"
    return "t2v" if size == "14B" else f"t2v_{size}" if size == "1.3B" else f"t2v-class ({size})"


def inspect_checkpoint(path) -> dict:
    """Key layout, architecture guess, dtypes, tensor count and bytes, quantized modules, embedded config."""
    path = Path(path)
    if not path.exists():
        raise WangpError(f"'{path}' does not exist", code="missing")
    offset, entries, metadata = read_header(path)
    decoded = decode_metadata(metadata, path)
    qmap = quantization_map(path, decoded)
    names = {e.name for e in entries}
    shapes = {e.name: e.shape for e in entries}
    quantized = sorted(qmap) if isinstance(qmap, dict) else []
    return {
        "file": str(path),
        "size": path.stat().st_size,
        "layout": _layout(names),
        "architecture_guess": _guess(shapes, names),
        "tensors": len(entries),
        "tensor_bytes": sum(e.nbytes for e in entries),
        "dtypes": dict(Counter(e.dtype for e in entries)),
        "towers": sorted(towers(list(names))),
        "quantized": bool(quantized),
        "quantization_format": decoded.get("quantization_format"),
        "quantized_modules": len(quantized),
        "quantizable_modules": 0 if quantized else len(quantized_modules(entries)),
        "quantization_map_source": ("embedded" if decoded.get("quantization_map") else
                                    "side-car" if quantized else None),
        "config": decoded.get("config"),
        "metadata_keys": sorted(metadata),
    }
