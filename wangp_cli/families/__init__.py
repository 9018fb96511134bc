"""The model families ``wangp generate`` knows, one package each (``families/<name>/``; interface: ``base.py``).

Importing this module loads only the families' data (no torch, diffusers or transformers: ``wangp list`` reads
:func:`pipelines`); each family's hooks are imported when first called. Adding a family: a new package with its
``Family`` object, listed in :data:`FAMILIES`.
"""

from __future__ import annotations

from wangp_cli.families import hunyuan, wan
from wangp_cli.families.base import MEDIA_INPUTS, Family, Generated, TinyKind

__all__ = ["FAMILIES", "MEDIA_INPUTS", "Family", "Generated", "TinyKind", "family", "family_for_architecture",
           "family_for_kind", "generation", "pipelines"]

#: Every family, by name.
FAMILIES: dict[str, Family] = {f.name: f for f in (wan.FAMILY, hunyuan.FAMILY)}
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
