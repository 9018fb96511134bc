"""The JSON Schema of a definition, and a fast checker for the schema fragments of :mod:`keys`.

``wangp schema`` prints :func:`definition_schema`; editors validate a definition with it through ``$schema``.
The validator does not import jsonschema (it would cost more than validating 200 files): :func:`check` covers
the keywords the fragments use, and the tests compare it with jsonschema on generated values.
"""

from __future__ import annotations

import re

from wangp_cli.core.keys import MODEL_KEYS, SETTINGS_KEYS

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
        return (), f"must be {describe(schema)}, not {_TYPE_NAMES[json_type(value)]}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return (), "must not be empty"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            return (), f"{value!r} does not match the pattern {schema['pattern']}"
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


def definition_schema() -> dict:
    """JSON Schema (draft 2020-12) of a finetune definition: the model subtree and the settings around it."""
    model_properties = {name: _property(key) for name, key in MODEL_KEYS.items()}
    settings_properties = {name: _property(key) for name, key in SETTINGS_KEYS.items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "WanGP finetune definition",
        "description": "A settings object plus a 'model' subtree (WanGP 6.x / July 2025). Unknown keys are allowed: "
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
