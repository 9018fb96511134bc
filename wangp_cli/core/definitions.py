"""Definition files: reading with positions, the catalog of ids, and string references."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core import jsonpos
from wangp_cli.core.errors import NotFoundError, WangpError
from wangp_cli.core.home import Home
from wangp_cli.core.defaults import default_settings
from wangp_cli.core.registry import ARCHITECTURES, get_architecture, hub_url

MAX_REFERENCE_DEPTH = 10  # WanGP: "Circular Reference in Model URLs dependencies" past this depth
REFERENCE_PROPS = ("URLs", "modules", "preload_URLs", "loras")


@dataclass
class Source:
    """A JSON file as read from disk: its text, its value (or syntax error) and, on demand, positions."""

    path: Path
    display: str  # the path as the user wrote it, for messages
    text: str = ""
    data: object = None
    error: jsonpos.JsonSyntaxError | None = None
    duplicate_keys: bool = False
    _positions: jsonpos.Positions | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.path.name[:-5] if self.path.name.endswith(".json") else self.path.stem

    @property
    def positions(self) -> jsonpos.Positions:
        if self._positions is None:
            self._positions = jsonpos.Positions(self.text if self.error is None else "")
        return self._positions

    def span(self, json_path: tuple = (), *, key: bool = False) -> tuple[int, int, int, int]:
        """(line, column, end_line, end_column) of a value, or of its key with ``key=True``."""
        if self.error is not None:
            return self.error.line, self.error.column, self.error.line, self.error.column
        positions = self.positions
        return positions.key_span(json_path) if key else positions.value_span(json_path)


def read_source(path: str | os.PathLike, display: str | None = None) -> Source:
    """Read and parse one JSON file; problems are kept in ``error``, never raised."""
    path = Path(path)
    source = Source(path=path, display=display if display is not None else str(path))
    try:
        raw = path.read_bytes()
    except OSError as exc:
        source.error = jsonpos.JsonSyntaxError(f"cannot read the file: {exc.strerror or exc}", 1, 1)
        return source
    try:
        source.text = jsonpos.decode_text(raw)
        duplicates = []

        def pairs_hook(pairs):
            result = dict(pairs)
            if len(result) != len(pairs):
                duplicates.append(True)
            return result

        source.data = jsonpos.loads(source.text, object_pairs_hook=pairs_hook)
        source.duplicate_keys = bool(duplicates)
    except jsonpos.JsonSyntaxError as exc:
        source.error = exc
    return source


@dataclass
class Definition:
    """A model id with its model subtree and default settings (a file, or a built-in base architecture)."""

    id: str
    model: dict
    settings: dict
    origin: str  # "finetunes", "defaults", "builtin" or "file"
    source: Source | None = None
    overrides: Definition | None = None  # the defaults/ or built-in entry this one replaces

    @property
    def name(self) -> str:
        name = self.model.get("name")
        return name if isinstance(name, str) else self.id

    @property
    def architecture(self) -> str | None:
        arch = self.model.get("architecture")
        return arch if isinstance(arch, str) else None

    @property
    def visible(self) -> bool:
        return self.model.get("visible", True) is not False

    @property
    def is_builtin(self) -> bool:
        return self.origin == "builtin"


def split_definition(data: dict) -> tuple[dict, dict]:
    """WanGP pops ``model``; every other top-level key is a default setting."""
    settings = {k: v for k, v in data.items() if k != "model"}
    return data["model"], settings


def builtin_definition(arch_id: str, target: str = "july") -> Definition | None:
    arch = get_architecture(arch_id, target)
    if arch is None:
        return None
    model = {"name": arch.name, "architecture": arch.id, "description": arch.note or arch.name, "URLs": arch.urls}
    if arch.modules:
        model["modules"] = list(arch.modules)
    if arch.loras:
        model["loras"] = [hub_url(arch.family, lora) for lora in arch.loras]
    return Definition(arch.id, model, default_settings(arch, target), "builtin")


def definition_files(folder: Path) -> list[Path]:
    """``folder/*.json`` sorted by path, as WanGP globs them."""
    return [Path(p) for p in sorted(glob.glob(os.path.join(glob.escape(str(folder)), "*.json")))]


class DefinitionReferenceError(WangpError):
    """A string reference that does not resolve, loops, or nests too deep (E6)."""

    def __init__(self, message: str, chain: list[str]):
        super().__init__(message, code="E6")
        self.chain = chain


class Catalog:
    """Every model id of a home folder: ``defaults/`` then ``finetunes/`` (same id: merged), then built-ins."""

    def __init__(self, home: Home, target: str = "july", extra: list[Source] | None = None):
        self.home = home
        self.target = target
        self.definitions: dict[str, Definition] = {}
        self.sources: list[Source] = []
        self.broken: list[Source] = []
        extra = extra or []
        given = {os.path.realpath(s.path): s for s in extra}
        for origin, folder in (("defaults", home.defaults), ("finetunes", home.finetunes)):
            for path in definition_files(folder):
                source = given.pop(os.path.realpath(path), None) or read_source(path, os.path.relpath(path))
                self._add(source, origin)
        for source in extra:
            if os.path.realpath(source.path) in given:
                self._add(source, "file")

    def _add(self, source: Source, origin: str) -> None:
        self.sources.append(source)
        data = source.data
        if source.error or not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            self.broken.append(source)
            return
        model, settings = split_definition(data)
        previous = self.definitions.get(source.id)
        if previous is not None and previous.origin == "defaults" and origin != "defaults":
            merged = {**previous.model, **model}  # WanGP 7: shallow update of the model subtree
            definition = Definition(source.id, merged, previous.settings, origin, source, previous)
        else:
            definition = Definition(source.id, model, settings, origin, source)
        if definition.overrides is None and source.id in ARCHITECTURES:
            definition.overrides = builtin_definition(source.id, self.target)
        self.definitions[source.id] = definition

    def ids(self, *, include_hidden: bool = False) -> list[str]:
        hidden_ignored = include_hidden or self.target == "v6"  # 'visible' is a July key
        return [i for i, d in self.definitions.items() if hidden_ignored or d.visible]

    def find(self, model_id: str) -> Definition | None:
        """A finetune (looked up first, as in WanGP) or a base architecture."""
        found = self.definitions.get(model_id)
        return found if found is not None else builtin_definition(model_id, self.target)

    def get(self, model_id: str) -> Definition:
        found = self.find(model_id)
        if found is None:
            broken = [s for s in self.broken if s.id == model_id]
            if broken:
                raise WangpError(f"definition '{model_id}' cannot be read ({broken[0].display})",
                                 code="E1", hint=f"run: wangp validate {broken[0].display}")
            raise NotFoundError(f"unknown model id '{model_id}'",
                                hint="'wangp list' shows the definitions, 'wangp list --architectures' the base ids")
        return found

    def resolve(self, model_id: str, prop: str) -> tuple[list, list[str]]:
        """The list ``prop`` of ``model_id`` after following string references; also the chain of ids."""
        return self._follow([model_id], self.find(model_id), prop)

    def resolve_value(self, model_id: str, prop: str, value: str) -> tuple[list, list[str]]:
        """Like :meth:`resolve`, starting from the string ``value`` that ``model_id`` holds for ``prop``."""
        if value == model_id:
            raise DefinitionReferenceError(f"circular reference in {prop}: {model_id} -> {value}", [model_id, value])
        return self._follow([model_id, value], self.find(value), prop)

    def _follow(self, chain: list[str], current: Definition | None, prop: str) -> tuple[list, list[str]]:
        while True:
            if current is None:
                raise DefinitionReferenceError(f"'{chain[-1]}' is neither a definition nor a base architecture", chain)
            value = current.model.get(prop)
            if value is None:
                return [], chain
            if not isinstance(value, str):
                return (value if isinstance(value, list) else []), chain
            if value in chain:
                loop = chain + [value]
                raise DefinitionReferenceError(f"circular reference in {prop}: {' -> '.join(loop)}", loop)
            chain.append(value)
            if len(chain) > MAX_REFERENCE_DEPTH + 2:  # WanGP follows 11 references, fails on the 12th
                raise DefinitionReferenceError(f"{prop} references nest deeper than {MAX_REFERENCE_DEPTH}: "
                                      f"{' -> '.join(chain)}", chain)
            current = self.find(value)

