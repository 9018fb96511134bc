"""Family-independent helpers over a checkpoint's tensors, for the families' config-from-shapes and conversion:
weight shapes (also of quanto ``_data`` tensors), block counts, checks of the embedded config, quanto-aware splits
of fused Linears and renaming of quantization maps. Pure Python at import (torch inside functions)."""

from __future__ import annotations

import json
import math
import re

from wangp_cli.core.errors import WangpError

_BLOCK = re.compile(r"^([A-Za-z_]+)\.(\d+)\.")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


#: What a value of the embedded config must be, by the words that say so.
RULES = {
    "a positive integer": lambda v: _is_int(v) and v > 0,
    "a positive number": lambda v: _is_number(v) and v > 0,
    "a positive integer or null": lambda v: v is None or (_is_int(v) and v > 0),
    "a string or null": lambda v: v is None or isinstance(v, str),
    "true or false": lambda v: isinstance(v, bool),
    "a list of positive integers": lambda v: isinstance(v, list) and bool(v) and all(_is_int(x) and x > 0 for x in v),
    "a list of non-negative integers": lambda v: isinstance(v, list) and all(_is_int(x) and x >= 0 for x in v),
}


def same(a, b) -> bool:
    """JSON equality (tuples as lists; ``true`` is not ``1``)."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


class EmbeddedConfig:
    """The config a file embeds, each value checked before the model is built (errors name the file and key)."""

    def __init__(self, values: dict, where: str):
        self.values = values
        self.where = where

    def error(self, text: str) -> WangpError:
        return WangpError(f"{self.where}: the embedded config's {text}", code="format",
                          hint="fix or remove the file's config metadata ('wangp inspect FILE' shows it)")

    def get(self, key: str, rule: str, default=None):
        value = self.values.get(key)
        if value is None:
            return default
        if not RULES[rule](value):
            raise self.error(f"{key} is not {rule} (it is {json.dumps(value)[:40]})")
        return value

    def divisor(self, key: str, dim: int, name: str = "dim") -> int | None:
        """A head count: a positive integer dividing ``dim``."""
        value = self.values.get(key)
        if value is None:
            return None
        if not (_is_int(value) and value > 0 and dim % value == 0):
            raise self.error(f"{key} is not a positive divisor of {name} {dim} (it is {json.dumps(value)[:40]})")
        return value

    def checked(self, types: dict) -> None:
        for key, rule in types.items():
            self.get(key, rule)

    def merged(self, derived: dict, shape_keys: tuple) -> dict:
        """A diffusers-form config: its shape values must equal the derived ones; the rest is checked, kept."""
        for key in shape_keys:
            if key in self.values and not same(self.values[key], derived.get(key)):
                raise self.error(f"{key} ({json.dumps(self.values[key])[:40]}) does not fit the tensors "
                                 f"({json.dumps(derived.get(key))})")
        return {**derived, **{k: v for k, v in self.values.items() if not k.startswith("_")}}


def count_blocks(tensors: dict, prefix: str) -> int:
    """How many numbered ``prefix.N.`` blocks the tensors hold (highest index + 1)."""
    found = {int(m[2]) for m in map(_BLOCK.match, tensors) if m and m[1] == prefix}
    return max(found) + 1 if found else 0


def weight_shape(tensors: dict, name: str, dims: int = 2):
    """Shape of a weight, also when stored quantized (``name._data``): ``dims`` positive dimensions."""
    tensor = tensors.get(name)
    if tensor is None:
        tensor = tensors.get(name + "._data")
    if tensor is None:
        raise WangpError(f"the checkpoint has no '{name}'", code="format",
                         hint="is it a transformer in WanGP's original key layout?")
    shape = tuple(tensor.shape)
    if len(shape) != dims or 0 in shape:
        raise WangpError(f"the checkpoint's '{name}' has shape {list(shape)}, not {dims} positive dimensions",
                         code="format", hint="is it a transformer in WanGP's original key layout?")
    return shape


def has_weight(tensors: dict, name: str) -> bool:
    """Whether the tensors hold weight ``name`` (16-bit, or quanto's ``name._data``)."""
    return name in tensors or name + "._data" in tensors


def split_fused(tensors: dict, qmap: dict, module: str, parts: list[tuple[str, int]]) -> None:
    """Split a fused Linear (``module``) along its output rows into ``parts`` (name, rows); quanto-aware:
    ``_data``/``_scale`` rows are sliced, ``input_scale``/``output_scale`` copied, the map entry repeated."""
    def slices(tensor):
        start = 0
        for name, rows in parts:
            yield name, tensor[start:start + rows]
            start += rows

    for suffix in (".weight", ".bias", ".weight._data", ".weight._scale"):
        tensor = tensors.pop(module + suffix, None)
        if tensor is None:
            continue
        if suffix == ".weight._scale" and tensor.dim() == 0:
            for name, _ in parts:
                tensors[name + suffix] = tensor.clone()
            continue
        for name, piece in slices(tensor):
            tensors[name + suffix] = piece.contiguous()
    for suffix in (".input_scale", ".output_scale"):
        tensor = tensors.pop(module + suffix, None)
        if tensor is not None:
            for name, _ in parts:
                tensors[name + suffix] = tensor.clone()
    entry = qmap.pop(module, None)
    if entry is not None:
        for name, _ in parts:
            qmap[name] = dict(entry)


def convert_map(qmap: dict, convert) -> dict:
    """Module names of a quantization map, renamed by the same converter as the tensors."""
    import torch

    converted = {}
    for module, entry in qmap.items():
        renamed = list(convert({f"{module}.weight": torch.empty(1)}))
        if len(renamed) != 1 or not renamed[0].endswith(".weight"):
            raise WangpError(f"cannot map quantized module '{module}' to diffusers", code="format")
        converted[renamed[0][: -len(".weight")]] = entry
    return converted
