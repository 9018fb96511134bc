"""The model families ``wangp generate`` knows, one package each (``families/<name>/``; interface: ``base.py``).

Importing this module loads only the families' data (no torch, diffusers or transformers: ``wangp list`` reads
:func:`pipelines`); each family's hooks are imported when first called. Adding a family: a new package whose
``__init__`` holds its ``Family`` object as ``FAMILY`` (found by :func:`_discover`).
"""

from __future__ import annotations

import importlib
import pkgutil

from wangp_cli.families.base import MEDIA_INPUTS, Family, Generated, TinyKind

__all__ = ["FAMILIES", "MEDIA_INPUTS", "Family", "Generated", "TinyKind", "family", "family_for_architecture",
           "family_for_kind", "generation", "pipelines"]

#: The first families, in this order (the rest follow by name): the order layouts are recognised in.
_FIRST = ("wan", "hunyuan")


def _discover() -> list[Family]:
    """The ``FAMILY`` of every subpackage (their ``__init__`` holds data only)."""
    names = [m.name for m in pkgutil.iter_modules(__path__) if m.ispkg]
    names.sort(key=lambda name: (_FIRST.index(name) if name in _FIRST else len(_FIRST), name))
    return [importlib.import_module(f"{__name__}.{name}").FAMILY for name in names]


#: Every family, by name.
FAMILIES: dict[str, Family] = {f.name: f for f in _discover()}
_BY_ARCHITECTURE = {arch_id: f for f in FAMILIES.values() for arch_id in f.architectures}


def family(name: str) -> Family:
    """The family called ``name`` (KeyError when there is none)."""
    return FAMILIES[name]


def family_for_architecture(arch_id: str) -> Family | None:
    """The family that generates ``arch_id`` (None: no family does)."""
    return _BY_ARCHITECTURE.get(arch_id)


def family_for_kind(kind: str) -> Family:
    """The family of a tiny model kind (``"t2v"``, ``"hunyuan_i2v"``, ...); ValueError when unknown."""
    for candidate in FAMILIES.values():
        if kind in candidate.tiny_kinds:
            return candidate
    kinds = tuple(k for f in FAMILIES.values() for k in f.tiny_kinds)
    raise ValueError(f"unknown kind {kind!r}; expected one of {kinds}")


def generation(arch_id: str) -> Generated | None:
    """How ``arch_id`` is generated (its pipeline, components repository and transformer shape), None: no family
    generates it."""
    found = _BY_ARCHITECTURE.get(arch_id)
    return found.architectures[arch_id] if found is not None else None


def pipelines() -> dict[str, str]:
    """Architecture id -> diffusers pipeline class name, for every architecture a family generates."""
    return {arch_id: generated.pipeline for f in FAMILIES.values() for arch_id, generated in f.architectures.items()}
