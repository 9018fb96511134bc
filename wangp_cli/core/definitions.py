"""Definition files: reading with positions, the catalog of ids, and string references."""

from __future__ import annotations

import codecs
import errno
import functools
import glob
import math
import os
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core import jsonpos
from wangp_cli.core.errors import NotFoundError, WangpError
from wangp_cli.core.home import Home
from wangp_cli.core.defaults import default_settings
from wangp_cli.core.registry import DEFAULT_TARGET, get_architecture, hub_url, shipped_definitions

MAX_REFERENCE_DEPTH = 10  # WanGP: "Circular Reference in Model URLs dependencies" past this depth
REFERENCE_PROPS = ("URLs", "modules", "preload_URLs", "loras")
#: WanGP 12 reads these through get_model_recursive_prop / get_model_filename: a string names another model.
REFERENCE_PROPS_V12 = REFERENCE_PROPS + ("URLs2", "loras_multipliers", "text_encoder_URLs", "configs",
                                         "profiles_dir")


def reference_props(target: str) -> tuple[str, ...]:
    """The model keys whose string value is a reference to another model id, for ``target``."""
    return REFERENCE_PROPS_V12 if target == "v12" else REFERENCE_PROPS
STDIN = "-"  # the path that names standard input
STDIN_DISPLAY = "<stdin>"

_NOT_REGULAR_HINT = ("definitions and settings must be regular files: remove it, or rename it so that it does not "
                     "end in .json (standard input: pass '-')")
#: What a non-regular file is, by its mode.
_FILE_KINDS = (
    (stat.S_ISDIR, "is a directory, not a regular file"),
    (stat.S_ISFIFO, "is not a regular file (a FIFO)"),
    (stat.S_ISSOCK, "is not a regular file (a socket)"),
    (stat.S_ISCHR, "is not a regular file (a character device)"),
    (stat.S_ISBLK, "is not a regular file (a block device)"),
)
#: Reading errors in words: errno -> (message, hint).
_OS_PROBLEMS = {
    errno.EACCES: ("cannot read (permission denied)", "make it readable for this user (chmod a+r {path})"),
    errno.EPERM: ("cannot read (operation not permitted)", "make it readable for this user (chmod a+r {path})"),
    errno.ELOOP: ("is a symbolic link loop", "point the link at an existing file, or remove it"),
    errno.ENOENT: ("does not exist", "check the path"),
    errno.EISDIR: ("is a directory, not a regular file", _NOT_REGULAR_HINT),
    errno.ENAMETOOLONG: ("has a name that is too long", "shorten the path"),
}


class FileProblem(jsonpos.JsonSyntaxError):
    """A file that cannot be used as JSON text at all (not a regular file, unreadable, a BOM), with its fix."""

    def __init__(self, message: str, hint: str):
        super().__init__(message, 1, 1)
        self.hint = hint


def _os_problem(exc: OSError, path: Path) -> FileProblem:
    message, hint = _OS_PROBLEMS.get(exc.errno, (f"cannot read ({(exc.strerror or str(exc)).lower()})",
                                                 "check the file and the folders above it"))
    return FileProblem(message, hint.format(path=path))


def _not_regular(mode: int) -> str | None:
    return next((message for test, message in _FILE_KINDS if test(mode)),
                None if stat.S_ISREG(mode) else "is not a regular file")


def read_regular_file(path: Path) -> bytes:
    """The bytes of a regular file (symlinks followed). Anything else raises :class:`FileProblem` and is never
    opened for reading: a FIFO would block forever, a device would never end."""
    try:
        problem = _not_regular(os.stat(path).st_mode)
    except FileNotFoundError:
        if os.path.islink(path):
            raise FileProblem(f"is a dangling symbolic link (to '{os.readlink(path)}')",
                              "point the link at an existing file, or remove it") from None
        raise FileProblem(*_OS_PROBLEMS[errno.ENOENT]) from None
    except OSError as exc:
        raise _os_problem(exc, path) from None
    if problem:
        raise FileProblem(problem, _NOT_REGULAR_HINT)
    try:  # O_NONBLOCK: a file swapped for a FIFO after the stat still cannot block the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _os_problem(exc, path) from None
    with os.fdopen(fd, "rb") as handle:
        problem = _not_regular(os.fstat(fd).st_mode)
        if problem:
            raise FileProblem(problem, _NOT_REGULAR_HINT)
        try:
            return handle.read()
        except OSError as exc:
            raise _os_problem(exc, path) from None


@dataclass
class Source:
    """A JSON file as read from disk: its text, its value (or syntax error) and, on demand, positions."""

    path: Path
    display: str  # the path as the user wrote it, for messages
    text: str = ""
    data: object = None
    error: jsonpos.JsonSyntaxError | None = None
    duplicate_keys: bool = False
    maybe_not_strict: bool = False  # NaN/Infinity/1e999 were read, or the text has a \\udXXX escape
    _positions: jsonpos.Positions | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.path.name[:-5] if self.path.name.endswith(".json") else self.path.stem

    @property
    def positions(self) -> jsonpos.Positions:
        if self._positions is None:
            self._positions = jsonpos.Positions(self.text if self.error is None else "")
        return self._positions

    @property
    def definition_problem(self) -> str | None:
        """Why this file is not a usable definition, to follow its path ("is a directory"); None when it is one."""
        if isinstance(self.error, FileProblem):
            return self.error.message
        if self.error is not None:
            return f"is not valid JSON (line {self.error.line}, column {self.error.column}: {self.error.message})"
        if not isinstance(self.data, dict):
            return "is not a JSON object"
        return None if isinstance(self.data.get("model"), dict) else "has no 'model' object"

    def span(self, json_path: tuple = (), *, key: bool = False) -> tuple[int, int, int, int]:
        """(line, column, end_line, end_column) of a value, or of its key with ``key=True``."""
        if self.error is not None:
            return self.error.line, self.error.column, self.error.line, self.error.column
        positions = self.positions
        return positions.key_span(json_path) if key else positions.value_span(json_path)


def shown_path(path: str | os.PathLike) -> str:
    """How messages name a file: relative to the current folder when it lies below it, else absolute."""
    relative = os.path.relpath(path)
    return os.path.abspath(path) if relative == os.pardir or relative.startswith(os.pardir + os.sep) else relative


def read_source(path: str | os.PathLike, display: str | None = None) -> Source:
    """Read and parse one JSON file; problems are kept in ``error``, never raised. Only regular files are read."""
    path = Path(path)
    source = Source(path=path, display=display if display is not None else str(path))
    try:
        raw = read_regular_file(path)
    except FileProblem as exc:
        source.error = exc
        return source
    return _parse(source, raw)


def read_stdin(stream=None) -> Source:
    """One JSON document from standard input (``wangp validate -``), shown as ``<stdin>``."""
    stream = stream if stream is not None else sys.stdin.buffer
    source = Source(path=Path(STDIN_DISPLAY), display=STDIN_DISPLAY)
    try:
        raw = stream.read()
    except OSError as exc:
        source.error = _os_problem(exc, Path(STDIN_DISPLAY))
        return source
    return _parse(source, raw)


def _parse(source: Source, raw: bytes) -> Source:
    if raw.startswith(codecs.BOM_UTF8):
        source.error = FileProblem("starts with a UTF-8 byte order mark (BOM)",
                                   "remove the UTF-8 BOM (WanGP rejects it too)")
        return source
    try:
        source.text = jsonpos.decode_text(raw)
        duplicates = []

        def pairs_hook(pairs):
            result = dict(pairs)
            if len(result) != len(pairs):
                duplicates.append(True)
            return result

        def constant(name):  # NaN, Infinity, -Infinity: json.loads accepts them, strict JSON does not
            unusual.append(name)
            return float(name)

        def number(text):
            value = float(text)
            if value in (math.inf, -math.inf):  # 1e999: beyond a double
                unusual.append(text)
            return value

        unusual: list = []
        source.data = jsonpos.loads(source.text, object_pairs_hook=pairs_hook, parse_constant=constant,
                                    parse_float=number)
        source.duplicate_keys = bool(duplicates)
        source.maybe_not_strict = bool(unusual) or "\\ud" in source.text or "\\uD" in source.text
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

    @property
    def is_base(self) -> bool:
        """A base type's own definition (WanGP 12's ``defaults/<id>.json`` naming itself, or a built-in)."""
        return self.is_builtin or (self.origin == "defaults" and self.architecture == self.id)


def split_definition(data: dict) -> tuple[dict, dict]:
    """WanGP pops ``model``; every other top-level key is a default setting."""
    settings = {k: v for k, v in data.items() if k != "model"}
    return data["model"], settings


def builtin_definition(arch_id: str, target: str = DEFAULT_TARGET) -> Definition | None:
    arch = get_architecture(arch_id, target)
    if arch is None:
        return None
    if target == "v12":  # the file keys of WanGP's defaults/<id>.json (a type without one has no files)
        model = {"name": arch.name, "architecture": arch.id, "description": arch.name, **(arch.defaults or {})}
        return Definition(arch.id, model, default_settings(arch, target), "builtin")
    model = {"name": arch.name, "architecture": arch.id, "description": arch.note or arch.name, "URLs": arch.urls}
    if arch.modules:
        model["modules"] = list(arch.modules)
    if arch.loras:
        model["loras"] = [hub_url(arch.family, lora) for lora in arch.loras]
    if arch.image_outputs:
        model["image_outputs"] = True
    return Definition(arch.id, model, default_settings(arch, target), "builtin")


def definition_files(folder: Path) -> list[Path]:
    """``folder/*.json`` sorted by path, exactly as WanGP globs them: hidden names (``.x.json``) are left out, and
    whatever else matches (directories, FIFOs, dangling links) is listed so that it can be reported.

    The one file set of the catalog, ``list`` and ``validate``."""
    return [Path(p) for p in sorted(glob.glob(os.path.join(glob.escape(str(folder)), "*.json")))]


class DefinitionReferenceError(WangpError):
    """A string reference that does not resolve, loops, or nests too deep (E6)."""

    def __init__(self, message: str, chain: list[str]):
        super().__init__(message, code="E6")
        self.chain = chain


@functools.lru_cache(maxsize=None)
def _real_folder(folder: str) -> str:
    return os.path.realpath(folder)


def _place(path: str | os.PathLike) -> str:
    """Where a definition file is: its folder resolved (once per folder, not per file), then its own name, so
    that ``finetunes/x.json`` and ``./home/finetunes/x.json`` are one file."""
    path = os.fspath(path)
    return os.path.join(_real_folder(os.path.dirname(path) or "."), os.path.basename(path))


class Catalog:
    """Every model id of a home folder: ``defaults/`` then ``finetunes/`` (same id: merged), then built-ins."""

    def __init__(self, home: Home, target: str = DEFAULT_TARGET, extra: list[Source] | None = None):
        self.home = home
        self.target = target
        self.definitions: dict[str, Definition] = {}
        self.sources: list[Source] = []
        self.broken: list[Source] = []
        extra = extra or []
        given = {_place(s.path): s for s in extra}
        for origin, folder in (("defaults", home.defaults), ("finetunes", home.finetunes)):
            for path in definition_files(folder):
                source = given.pop(_place(path), None) or read_source(path, shown_path(path))
                self._add(source, origin)
        for source in extra:
            if _place(source.path) in given:
                self._add(source, "file")

    def _add(self, source: Source, origin: str) -> None:
        self.sources.append(source)
        if source.definition_problem:
            self.broken.append(source)
            return
        model, settings = split_definition(source.data)
        previous = self.definitions.get(source.id)
        v12 = self.target == "v12"
        if previous is None and v12 and origin != "defaults":  # WanGP 12 always has defaults/<id>.json
            previous = builtin_definition(source.id, self.target)
        if previous is not None and previous.origin in ("defaults", "builtin") and origin != "defaults":
            merged = {**previous.model, **model}  # shallow update of the model subtree
            # WanGP 12 merges the settings too (64093a56); WanGP 7 kept the defaults file's
            merged_settings = {**previous.settings, **settings} if v12 else previous.settings
            definition = Definition(source.id, merged, merged_settings, origin, source, previous)
        else:
            definition = Definition(source.id, model, settings, origin, source)
        if definition.overrides is None and get_architecture(source.id, self.target) is not None:
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
                raise WangpError(f"definition '{model_id}' cannot be used: {broken[0].display} "
                                 f"{broken[0].definition_problem}",
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
                missing = chain[-1]
                if missing in shipped_definitions(self.target):  # WanGP has the file, this home does not
                    raise DefinitionReferenceError(
                        f"'{missing}' is a definition WanGP ships, missing from this home: copy WanGP's "
                        f"defaults/{missing}.json into {shown_path(self.home.defaults)}/", chain)
                raise DefinitionReferenceError(f"'{missing}' is neither a definition nor a base architecture", chain)
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

