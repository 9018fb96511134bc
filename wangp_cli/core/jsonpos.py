"""JSON documents that remember where every key and value is.

Values come from :func:`json.loads` (C speed, and exactly the JSON WanGP itself accepts); the positions are
computed only when a finding needs one, by a scanner that walks the (already valid) text once.
"""

from __future__ import annotations

import bisect
import json
import re
from json.decoder import scanstring

JsonPath = tuple  # of str (object keys) and int (list indexes)

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS = (("true", 4), ("false", 5), ("null", 4), ("NaN", 3), ("Infinity", 8), ("-Infinity", 9))


class JsonSyntaxError(ValueError):
    """Text that is not JSON, with the 1-based line and column of the problem."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(f"{message} (line {line}, column {column})")
        self.message = message
        self.line = line
        self.column = column


def decode_text(data: bytes) -> str:
    """UTF-8 text, as WanGP reads it; undecodable bytes raise JsonSyntaxError at their position."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[: exc.start].decode("utf-8", errors="replace")
        line = head.count("\n") + 1
        column = len(head) - (head.rfind("\n") + 1) + 1
        raise JsonSyntaxError(f"file is not valid UTF-8 (byte 0x{data[exc.start]:02x})", line, column) from None


def loads(text: str, **kwargs):
    """Parse ``text`` like WanGP (``json.loads``); errors carry line and column."""
    try:
        return json.loads(text, **kwargs)
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(exc.msg, exc.lineno, exc.colno) from None
    except RecursionError:
        raise JsonSyntaxError("nesting is too deep", 1, 1) from None
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit
        raise JsonSyntaxError(str(exc).split(";")[0], 1, 1) from None


class Positions:
    """Offsets of every key and value of a valid JSON text, looked up by path."""

    def __init__(self, text: str):
        self.text = text
        self.values: dict[JsonPath, tuple[int, int]] = {}
        self.keys: dict[JsonPath, int] = {}
        self.duplicate_keys: list[tuple[JsonPath, int]] = []
        self._line_starts: list[int] | None = None
        try:
            self._value(0, ())
        except (RecursionError, IndexError, ValueError):
            pass  # positions stay partial; lookups fall back to the nearest known parent

    def location(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        index = bisect.bisect_right(self._line_starts, offset) - 1
        return index + 1, offset - self._line_starts[index] + 1

    def value_span(self, path: JsonPath) -> tuple[int, int, int, int]:
        """(line, column, end_line, end_column) of the value at ``path`` or of its nearest known parent."""
        while path not in self.values and path:
            path = path[:-1]
        start, end = self.values.get(path, (0, 0))
        return (*self.location(start), *self.location(end))

    def key_span(self, path: JsonPath) -> tuple[int, int, int, int]:
        """Span of the key naming ``path`` (an object member); the value span for list items."""
        if path in self.keys:
            start = self.keys[path]
            _, end = scanstring(self.text, start + 1)
            return (*self.location(start), *self.location(end))
        return self.value_span(path)

    def _skip(self, i: int) -> int:
        return _WS.match(self.text, i).end()

    def _value(self, i: int, path: JsonPath) -> int:
        text = self.text
        i = self._skip(i)
        char = text[i]
        if char == "{":
            end = self._object(i, path)
        elif char == "[":
            end = self._array(i, path)
        elif char == '"':
            _, end = scanstring(text, i + 1)
        else:
            for literal, length in _LITERALS:
                if text.startswith(literal, i):
                    end = i + length
                    break
            else:
                match = _NUMBER.match(text, i)
                if not match:
                    raise ValueError(f"unexpected character at offset {i}")
                end = match.end()
        self.values[path] = (i, end)
        return end

    def _object(self, start: int, path: JsonPath) -> int:
        text = self.text
        i = self._skip(start + 1)
        if text[i] == "}":
            return i + 1
        seen = set()
        while True:
            i = self._skip(i)
            key_start = i
            key, i = scanstring(text, i + 1)
            member = path + (key,)
            if key in seen:
                self.duplicate_keys.append((member, key_start))
            seen.add(key)
            self.keys[member] = key_start
            i = self._skip(i) + 1  # the colon
            i = self._skip(self._value(i, member))
            if text[i] == ",":
                i += 1
                continue
            return i + 1

    def _array(self, start: int, path: JsonPath) -> int:
        text = self.text
        i = self._skip(start + 1)
        if text[i] == "]":
            return i + 1
        index = 0
        while True:
            i = self._skip(self._value(i, path + (index,)))
            index += 1
            if text[i] == ",":
                i += 1
                continue
            return i + 1
