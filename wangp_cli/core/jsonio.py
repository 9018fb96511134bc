"""Writing files so that nothing is lost: a temporary name in the same folder, fsync, then rename."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path

from wangp_cli.core.errors import WangpError
from wangp_cli.core.jsonpos import Positions, loads


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def created_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask (0644 under 022)."""
    return 0o666 & ~_umask()


def _write_in_place(path: Path, text: str) -> None:
    """Rewrite a hard-linked file's own inode, so that every name of it sees the new text.

    A rename would give this name a new inode and leave the other links holding the old text; the price is
    that a crash mid-write can leave a partial file, so the text is written in one call and fsynced.
    """
    data = text.encode("utf-8")
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True, mode: int | None = None,
                      through_links: bool = True) -> None:
    """Write ``text`` to ``path`` atomically; with ``overwrite=False`` an existing file is never replaced.

    New files get the umask's mode (or ``mode``); a replaced file keeps its own. With ``through_links`` a
    symlink is written through (its target changes, the link stays) and a hard-linked file is rewritten in
    place, so every name keeps seeing one file.
    """
    path = Path(path)
    if len(os.fsencode(path.name)) > 255:
        raise WangpError(f"cannot write '{path.name[:40]}...': file name longer than 255 bytes",
                         code="name-too-long", hint="choose a shorter name")
    existing = None
    try:
        if through_links and overwrite and path.is_symlink():
            path = Path(os.path.realpath(path))
        existing = os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise WangpError(f"cannot write '{path}': {exc.strerror or exc}") from None
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise WangpError(f"cannot write '{path}': it is a directory", code="is-directory",
                         hint="name a file inside it instead")
    if existing is not None and overwrite and through_links and existing.st_nlink > 1 \
            and stat.S_ISREG(existing.st_mode):
        try:
            _write_in_place(path, text)
        except OSError as exc:
            raise WangpError(f"cannot write '{path}': {exc.strerror or exc}") from None
        return
    import tempfile  # here, not at the top: tempfile pulls in random (3 ms) for commands that never write

    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise WangpError(f"cannot write '{path}': {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode if mode is not None else
                      stat.S_IMODE(existing.st_mode) if existing is not None and overwrite else created_mode())
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)  # fails if the file exists, atomically
            except FileExistsError:
                raise WangpError(f"'{path}' already exists", code="exists",
                                 hint="choose another name, or pass --force to replace it") from None
            os.unlink(temp)
    except OSError as exc:
        raise WangpError(f"cannot write '{path}': {exc.strerror or exc}") from None
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)


_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(data, *, indent: int | None = 2, ensure_ascii: bool = False, **options) -> str:
    """Strict JSON (RFC 8259): NaN and +-Infinity become null, lone surrogates stay ``\\udXXX`` escapes.

    Python's json module writes ``NaN``/``Infinity`` and raw lone surrogates, which strict parsers (jq, JS)
    and UTF-8 encoders reject; every JSON wangp prints or writes comes from here.
    """
    text = json.dumps(_finite(data), indent=indent, ensure_ascii=ensure_ascii, allow_nan=False, **options)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) if not ensure_ascii else text


def _finite(data):
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def dump_json(data, *, indent: int = 4) -> str:
    """JSON text as WanGP writes it (indent 4), strict, with a final newline."""
    return json_text(data, indent=indent) + "\n"


def write_json(path: str | os.PathLike, data, *, indent: int = 4, overwrite: bool = True) -> None:
    atomic_write_text(path, dump_json(data, indent=indent), overwrite=overwrite)


_ASCII_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u[0-9a-fA-F]{4}")


def _line_prefix(text: str, offset: int) -> str:
    """The text between the start of the line holding ``offset`` and ``offset``."""
    return text[text.rfind("\n", 0, offset) + 1: offset]


def _own_line_indent(text: str, offset: int) -> str | None:
    """The indentation before ``offset`` when only blanks precede it on its line, else None."""
    prefix = _line_prefix(text, offset)
    return prefix if prefix.strip(" \t") == "" else None


def _leading_blanks(text: str, offset: int) -> str:
    prefix = _line_prefix(text, offset)
    return prefix[: len(prefix) - len(prefix.lstrip(" \t"))]


def _indent_unit(text: str, positions: Positions, path: tuple) -> str:
    """One level of indentation, read off the nearest enclosing container laid out one item per line."""
    for depth in range(len(path) - 1, -1, -1):  # the (empty) list itself has no items to learn from
        container = path[:depth]
        if container not in positions.values:
            continue
        start = positions.values[container][0]
        if text[start] == "{":
            children = [offset for key, offset in positions.keys.items()
                        if len(key) == depth + 1 and key[:depth] == container]
        else:
            children = [positions.values[container + (0,)][0]] if container + (0,) in positions.values else []
        if not children:
            continue
        child_indent = _own_line_indent(text, min(children))
        base = _leading_blanks(text, start)
        if child_indent is not None and len(child_indent) > len(base) and child_indent.startswith(base):
            return child_indent[len(base):]
    return "\t" if "\t" in _leading_blanks(text, positions.values[path][0]) else "    "


def _walk(node, json_path: tuple):
    """The value at ``json_path`` (object keys and non-negative list indexes); ValueError when there is none."""
    for step in json_path:
        in_object = isinstance(node, dict) and isinstance(step, str) and step in node
        in_list = (isinstance(node, list) and isinstance(step, int) and not isinstance(step, bool)
                   and 0 <= step < len(node))
        if not (in_object or in_list):
            raise ValueError(f"no value at {json_path!r}")
        node = node[step]
    return node


def append_to_list_text(text: str, json_path: tuple, value) -> str:
    """``text`` with ``value`` appended to the list at ``json_path``, every other character left as it was.

    The new item follows the last one on a line of its own with the same indentation when the list is laid
    out one item per line, and inline (``, value``) otherwise. Raises ValueError when ``json_path`` does not
    name a list.
    """
    json_path = tuple(json_path)
    node = _walk(loads(text), json_path)
    if not isinstance(node, list):
        raise ValueError(f"the value at {json_path!r} is not a list")  # noqa: TRY004 (callers catch ValueError)
    positions = Positions(text)
    span = positions.values.get(json_path)
    if span is None or text[span[0]] != "[" or text[span[1] - 1] != "]":
        raise ValueError(f"cannot locate the list at {json_path!r}")
    start, end = span
    encoded = json.dumps(value, ensure_ascii=bool(_ASCII_ESCAPE.search(text)))

    if node:
        last = positions.values.get(json_path + (len(node) - 1,))
        if last is None or not start < last[0] < last[1] < end:
            raise ValueError(f"cannot locate the items of the list at {json_path!r}")
        indent = _own_line_indent(text, last[0])
        line_start = text.rfind("\n", 0, last[0])
        if indent is not None and line_start > start:  # one item per line
            newline = "\r\n" if text[line_start - 1: line_start] == "\r" else "\n"
            insert = f",{newline}{indent}{encoded}"
        else:
            insert = f", {encoded}"
        return text[: last[1]] + insert + text[last[1]:]

    inner = text[start + 1: end - 1]
    if "\n" not in inner:
        return text[: start + 1] + encoded + text[end - 1:]
    newline = "\r\n" if "\r\n" in inner else "\n"
    indent = _leading_blanks(text, start) + _indent_unit(text, positions, json_path)
    return text[: start + 1] + newline + indent + encoded + text[start + 1:]


def rewrite_json_file(path: str | os.PathLike, json_path: tuple, value) -> bool:
    """Append ``value`` to the list at ``json_path`` in the JSON file ``path``, keeping its layout.

    Returns False, writing nothing, when the list already holds ``value``; True after an atomic rewrite.
    """
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as handle:
        text = handle.read()
    node = _walk(loads(text), tuple(json_path))
    if isinstance(node, list) and value in node:
        return False
    new_text = append_to_list_text(text, tuple(json_path), value)
    atomic_write_text(path, new_text)  # keeps the file's mode; writes through symlinks and hard links
    return True
