"""The JSON Schema of a definition, and a fast checker for the schema fragments of :mod:`keys`.

``wangp schema`` prints :func:`definition_schema`; editors validate a definition with it through ``$schema``.
The validator does not import jsonschema (it would cost more than validating 200 files): :func:`check` covers
the keywords the fragments use, and the tests compare it with jsonschema on generated values.
"""

from __future__ import annotations

import json
import math
import os
import re

from wangp_cli.core.keys import model_keys, settings_keys

SCHEMA_ID = "https://github.com/wangp-cli/wangp/schema/definition.schema.json"

_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "an object", "null": "null"}


def json_type(value) -> str:
    """JSON Schema type name of a parsed JSON value (``integer`` for whole numbers, as JSON Schema counts them)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_LONG_DIGITS = 20
_LONG_TEXT = 60
_SURROGATE = re.compile("[\ud800-\udfff]")
NON_FINITE = "a non-finite number"
LONE_SURROGATE = "a lone surrogate"


def spelled(value) -> str:
    """A value as JSON writes it, for messages (``true``, ``null``, ``"x"``), long ones shortened:
    ``1234567…(400 digits)``, ``"abc…(5000 characters)"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
        digits = len(text.lstrip("-"))
        return f"{text[:7 + (value < 0)]}…({digits} digits)" if digits > _LONG_DIGITS else text
    if isinstance(value, str) and len(value) > _LONG_TEXT:
        return json.dumps(value[:40], ensure_ascii=False)[:-1] + f"…({len(value)} characters)\""
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= _LONG_TEXT else text[:40] + f"…({len(text)} characters)"


def strict_json_problems(data):
    """Values strict JSON cannot carry, as (path, is_key, what): NaN, Infinity or a number beyond a double
    (``1e999``), and strings or keys holding a lone surrogate (``"\\ud800"``, not valid Unicode)."""
    stack = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            yield path, False, NON_FINITE
        elif isinstance(value, str) and _SURROGATE.search(value):
            yield path, False, LONE_SURROGATE
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and _SURROGATE.search(key):
                    yield path + (key,), True, LONE_SURROGATE
                stack.append((path + (key,), item))
        elif isinstance(value, list):
            stack.extend((path + (index,), item) for index, item in enumerate(value))


def _matches_type(value, expected) -> bool:
    actual = json_type(value)
    names = expected if isinstance(expected, list) else [expected]
    return actual in names or (actual == "integer" and "number" in names)


def describe(schema: dict) -> str:
    """``a list of strings``, ``a string or a list``: the expected shape in words."""
    types = schema.get("type", [])
    names = types if isinstance(types, list) else [types]
    words = []
    for name in names:
        if name == "array" and "items" in schema:
            words.append("a list of " + describe(schema["items"]).split(" ", 1)[1] + "s")
        else:
            words.append(_TYPE_NAMES[name])
    return " or ".join(words)


def check(value, schema: dict) -> tuple[tuple, str] | None:
    """First mismatch of ``value`` against a fragment: (path inside the value, message), or None."""
    if "type" in schema and not _matches_type(value, schema["type"]):
        actual = spelled(value) if value is None or isinstance(value, bool) else _TYPE_NAMES[json_type(value)]
        return (), f"must be {describe(schema)}, not {actual}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return (), "must not be empty"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return (), f"{spelled(value)} does not match the pattern {schema['pattern']}"
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return (), "must not be empty" if schema["minItems"] == 1 else f"needs {schema['minItems']} items"
        if len(value) > schema.get("maxItems", len(value)):
            return (), f"has {len(value)} items, at most {schema['maxItems']} allowed"
        items = schema.get("items")
        if items:
            for index, item in enumerate(value):
                found = check(item, items)
                if found:
                    return (index, *found[0]), found[1]
    elif isinstance(value, dict) and "additionalProperties" in schema:
        for key, item in value.items():
            found = check(item, schema["additionalProperties"])
            if found:
                return (key, *found[0]), found[1]
    return None


def _property(key) -> dict:
    return {**key.schema, "description": f"{key.description} (since {key.since})".lstrip(" ")}


_VERSIONS = {"v6": "WanGP 6.x / July 2025", "july": "WanGP 6.x / July 2025", "v12": "WanGP 12.x"}


def definition_schema(target: str = "july") -> dict:
    """JSON Schema (draft 2020-12) of a finetune definition for ``target``: the model subtree and the settings."""
    model_properties = {name: _property(key) for name, key in model_keys(target).items()}
    settings_properties = {name: _property(key) for name, key in settings_keys(target).items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "WanGP finetune definition",
        "description": f"A settings object plus a 'model' subtree ({_VERSIONS[target]}). Unknown keys are allowed: "
                       "newer WanGP versions add many.",
        "type": "object",
        "required": ["model"],
        "properties": {
            "model": {
                "type": "object",
                "required": ["name", "architecture", "description", "URLs"],
                "properties": model_properties,
                "additionalProperties": True,
            },
            **settings_properties,
        },
        "additionalProperties": True,
    }


def is_schema_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a schema ``wangp schema`` wrote (so that ``-o`` may replace it without --force)."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(1 << 20))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("$id") == SCHEMA_ID
