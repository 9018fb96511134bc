"""append_to_list_text / rewrite_json_file: one item appended to a JSON list, every other byte kept."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wangp_cli.core.jsonio import append_to_list_text, rewrite_json_file
from wangp_cli.core.jsonpos import Positions

FINETUNES = sorted((Path(__file__).resolve().parents[2] / "finetunes").glob("*.json"))
NEW = "ckpts/x_quanto_bf16_int8.safetensors"


def read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def inserted(old: str, new: str) -> tuple[int, str]:
    """(offset, text) such that new == old[:offset] + text + old[offset:]."""
    assert len(new) > len(old)
    offset = 0
    while offset < len(old) and old[offset] == new[offset]:
        offset += 1
    extra = len(new) - len(old)
    assert new[offset + extra:] == old[offset:], "more than one place changed"
    return offset, new[offset: offset + extra]


def line_indent(text: str, offset: int) -> str:
    prefix = text[text.rfind("\n", 0, offset) + 1: offset]
    return prefix[: len(prefix) - len(prefix.lstrip(" \t"))]


# ---------------------------------------------------------------- the real finetune files

def test_there_are_six_finetunes():
    assert len(FINETUNES) == 6


@pytest.mark.parametrize("path", FINETUNES, ids=lambda p: p.name)
def test_finetune_append_url(path):
    old = read(path)
    new = append_to_list_text(old, ("model", "URLs"), NEW)

    expected = json.loads(old)
    expected["model"]["URLs"].append(NEW)
    assert json.loads(new) == expected

    # exactly one insertion, right after the old last URL, on its own line, same indentation
    last_start, last_end = Positions(old).values[("model", "URLs", len(expected["model"]["URLs"]) - 2)]
    offset, text = inserted(old, new)
    assert offset == last_end
    indent = line_indent(old, last_start)
    assert text == f",\n{indent}{json.dumps(NEW)}"

    # removing that one line (and the comma it added) gives back the old text byte for byte
    lines = new.splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if NEW in line)
    assert lines[index] == f"{indent}{json.dumps(NEW)}\n"
    assert lines[index - 1].endswith(",\n")
    lines[index - 1] = lines[index - 1][:-2] + "\n"
    del lines[index]
    assert "".join(lines) == old
    assert new.endswith("\n") == old.endswith("\n")


@pytest.mark.parametrize("path", FINETUNES, ids=lambda p: p.name)
def test_finetune_empty_multiline_lists(path):
    old = read(path)
    data = json.loads(old)
    positions = Positions(old)
    empties = [(key,) for key, value in data.items() if value == []]
    empties += [("model", key) for key, value in data["model"].items() if value == []]
    for json_path in empties:
        start, end = positions.values[json_path]
        new = append_to_list_text(old, json_path, NEW)
        expected = json.loads(old)
        node = expected
        for step in json_path:
            node = node[step]
        node.append(NEW)
        assert json.loads(new) == expected
        extra = len(new) - len(old)
        assert new[: start + 1] == old[: start + 1] and new[start + 1 + extra:] == old[start + 1:]
        text = new[start + 1: start + 1 + extra]
        if "\n" not in old[start:end]:
            assert text == json.dumps(NEW)
            continue
        base = line_indent(old, start)
        assert text.startswith("\n" + base) and text.endswith(json.dumps(NEW))
        unit = text[1 + len(base): -len(json.dumps(NEW))]
        assert unit == line_indent(old, positions.keys[("model",)])  # one level deeper, in the file's own step
        assert empties


# ---------------------------------------------------------------- layouts

def test_single_line():
    old = '{"model": {"URLs": ["a", "b"], "n": 1.50}}'
    new = append_to_list_text(old, ("model", "URLs"), "c")
    assert new == '{"model": {"URLs": ["a", "b", "c"], "n": 1.50}}'


def test_single_line_compact():
    assert append_to_list_text('{"a":[1,2]}', ("a",), "x") == '{"a":[1,2, "x"]}'


def test_empty_inline_list():
    assert append_to_list_text('{"a": [], "b": 1}', ("a",), "x") == '{"a": ["x"], "b": 1}'
    assert append_to_list_text('{"a": [ ], "b": 1}', ("a",), "x") == '{"a": ["x"], "b": 1}'


@pytest.mark.parametrize("unit", ["  ", "    ", "\t"])
def test_empty_multiline_list(unit):
    old = ("{\n" + unit + '"model": {\n' + unit * 2 + '"URLs": [\n' + unit * 2 + "],\n" + unit * 2 + '"x": 1\n'
           + unit + "}\n}\n")
    new = append_to_list_text(old, ("model", "URLs"), "p")
    assert new == ("{\n" + unit + '"model": {\n' + unit * 2 + '"URLs": [\n' + unit * 3 + '"p"\n' + unit * 2 + "],\n"
                   + unit * 2 + '"x": 1\n' + unit + "}\n}\n")


def test_empty_multiline_root_list():
    assert append_to_list_text("[\n]", (), "p") == '[\n    "p"\n]'


def test_multiline_list_with_several_items_per_line_goes_inline():
    old = '{"a": [\n  1, 2,\n  3, 4\n]}'
    assert append_to_list_text(old, ("a",), 5) == '{"a": [\n  1, 2,\n  3, 4, 5\n]}'


def test_first_item_on_the_bracket_line():
    old = '{"a": ["x",\n       "y"]}'
    assert append_to_list_text(old, ("a",), "z") == '{"a": ["x",\n       "y",\n       "z"]}'


def test_nested_list_path_and_list_in_list():
    old = '{\n  "a": [\n    [\n      1\n    ],\n    [2]\n  ]\n}'
    assert append_to_list_text(old, ("a", 0), 9) == '{\n  "a": [\n    [\n      1,\n      9\n    ],\n    [2]\n  ]\n}'
    assert append_to_list_text(old, ("a", 1), 9) == '{\n  "a": [\n    [\n      1\n    ],\n    [2, 9]\n  ]\n}'


def test_no_trailing_newline_preserved():
    old = '{\n    "URLs": [\n        "a"\n    ]\n}'
    new = append_to_list_text(old, ("URLs",), "b")
    assert new == '{\n    "URLs": [\n        "a",\n        "b"\n    ]\n}'
    assert not new.endswith("\n")
    assert append_to_list_text(old + "\n\n", ("URLs",), "b") == new + "\n\n"


def test_crlf_preserved():
    old = '{\r\n  "URLs": [\r\n    "a"\r\n  ]\r\n}\r\n'
    assert append_to_list_text(old, ("URLs",), "b") == '{\r\n  "URLs": [\r\n    "a",\r\n    "b"\r\n  ]\r\n}\r\n'


def test_other_bytes_untouched():
    old = '{"n": 1.0e+3, "s": "a\\/b\\u00e9", "z": -0.0, "URLs": ["q"], "t": true}'
    new = append_to_list_text(old, ("URLs",), "r")
    assert new == old.replace('["q"]', '["q", "r"]')


# ---------------------------------------------------------------- encoding

def test_non_ascii_kept_literal():
    old = '{\n  "name": "Vidéo 日本",\n  "URLs": [\n    "ckpts/ü.safetensors"\n  ]\n}\n'
    new = append_to_list_text(old, ("URLs",), "ckpts/é日本.safetensors")
    assert '"ckpts/é日本.safetensors"' in new
    assert json.loads(new)["URLs"] == ["ckpts/ü.safetensors", "ckpts/é日本.safetensors"]


def test_ascii_escapes_when_the_file_uses_them():
    old = '{\n  "name": "Vid\\u00e9o",\n  "URLs": []\n}\n'
    new = append_to_list_text(old, ("URLs",), "ckpts/é.safetensors")
    assert '"ckpts/\\u00e9.safetensors"' in new
    assert json.loads(new)["URLs"] == ["ckpts/é.safetensors"]


def test_escaped_backslash_u_is_not_an_ascii_escape():
    old = '{"name": "C:\\\\user", "URLs": []}'  # a literal backslash followed by "user"
    new = append_to_list_text(old, ("URLs",), "é")
    assert new == '{"name": "C:\\\\user", "URLs": ["é"]}'


def test_value_that_needs_escaping():
    value = 'C:\\models\\"quoted"\n\ttab\u0001'
    old = '{"URLs": [\n\t"a"\n]}'
    new = append_to_list_text(old, ("URLs",), value)
    assert new == '{"URLs": [\n\t"a",\n\t' + json.dumps(value, ensure_ascii=False) + "\n]}"
    assert json.loads(new)["URLs"] == ["a", value]


@pytest.mark.parametrize("value", [1, 2.5, True, None, "s"])
def test_scalars(value):
    assert json.loads(append_to_list_text("[1]", (), value)) == [1, value]


# ---------------------------------------------------------------- errors

@pytest.mark.parametrize("json_path", [("missing",), ("model", "nope"), ("model", "name"), ("model",),
                                       ("model", "URLs", 0), ("list", 5), ("list", -1), ("list", "0"),
                                       ("model", 0)])
def test_bad_path(json_path):
    old = '{"model": {"name": "x", "URLs": ["a"]}, "list": [[1]]}'
    with pytest.raises(ValueError):
        append_to_list_text(old, json_path, "v")


def test_path_into_list_of_lists_ok():
    old = '{"list": [[1]]}'
    assert append_to_list_text(old, ("list", 0), 2) == '{"list": [[1, 2]]}'


def test_invalid_json_raises_value_error():
    with pytest.raises(ValueError):
        append_to_list_text('{"a": [', ("a",), "v")


def test_duplicate_keys_use_the_last_one_like_json_loads():
    old = '{"URLs": ["a", "b", "c"], "URLs": ["z"]}'
    new = append_to_list_text(old, ("URLs",), "y")
    assert new == '{"URLs": ["a", "b", "c"], "URLs": ["z", "y"]}'


# ---------------------------------------------------------------- hypothesis

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=5), children, max_size=4)),
    max_leaves=12,
)


@st.composite
def documents(draw):
    """(document, path to a list inside it)."""
    doc = draw(st.lists(json_values, max_size=5))
    path: tuple = ()
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            key = draw(st.text(max_size=6))
            others = draw(st.dictionaries(st.text(max_size=5), json_values, max_size=3))
            others.pop(key, None)
            items = list(others.items())
            items.insert(draw(st.integers(0, len(items))), (key, doc))
            doc, path = dict(items), (key,) + path
        else:
            items = draw(st.lists(json_values, max_size=3))
            index = draw(st.integers(0, len(items)))
            items.insert(index, doc)
            doc, path = items, (index,) + path
    return doc, path


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.sampled_from([None, 0, 1, 2, 4, "\t"]), st.booleans(), st.booleans(), scalars)
def test_random_documents(doc_path, indent, ensure_ascii, trailing_newline, value):
    doc, path = doc_path
    old = json.dumps(doc, indent=indent, ensure_ascii=ensure_ascii) + ("\n" if trailing_newline else "")
    new = append_to_list_text(old, path, value)

    expected = json.loads(old)
    node = expected
    for step in path:
        node = node[step]
    node.append(value)
    assert json.loads(new) == expected

    offset, _ = inserted(old, new)
    positions = Positions(old)
    if len(node) > 1:
        _, last_end = positions.values[path + (len(node) - 2,)]
        assert new[:last_end] == old[:last_end]  # all text up to the old last element's end unchanged
        assert offset == last_end
    else:
        start, _ = positions.values[path]
        assert offset == start + 1
    assert new.endswith("\n") == trailing_newline


@settings(max_examples=100, deadline=None)
@given(documents(), st.sampled_from([None, 2, "\t"]))
def test_random_documents_appended_twice(doc_path, indent):
    doc, path = doc_path
    old = json.dumps(doc, indent=indent)
    new = append_to_list_text(append_to_list_text(old, path, "a"), path, "b")
    node = json.loads(new)
    for step in path:
        node = node[step]
    assert node[-2:] == ["a", "b"]


# ---------------------------------------------------------------- rewrite_json_file

@pytest.mark.parametrize("source", FINETUNES, ids=lambda p: p.name)
def test_rewrite_json_file_idempotent_and_atomic(tmp_path, source):
    target = tmp_path / source.name
    target.write_bytes(source.read_bytes())
    os.chmod(target, 0o644)
    old = read(target)

    assert rewrite_json_file(target, ("model", "URLs"), NEW) is True
    once = target.read_bytes()
    assert once.decode("utf-8") == append_to_list_text(old, ("model", "URLs"), NEW)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644

    assert rewrite_json_file(target, ("model", "URLs"), NEW) is False
    assert target.read_bytes() == once
    assert sorted(p.name for p in tmp_path.iterdir()) == [source.name]  # no temporary files left


def test_rewrite_json_file_existing_value_not_written(tmp_path):
    target = tmp_path / "a.json"
    target.write_text('{"URLs": ["x"]}', encoding="utf-8")
    before = os.stat(target).st_mtime_ns
    assert rewrite_json_file(target, ("URLs",), "x") is False
    assert os.stat(target).st_mtime_ns == before
    assert target.read_text(encoding="utf-8") == '{"URLs": ["x"]}'


def test_rewrite_json_file_keeps_crlf(tmp_path):
    target = tmp_path / "a.json"
    target.write_bytes(b'{\r\n  "URLs": [\r\n    "x"\r\n  ]\r\n}')
    assert rewrite_json_file(target, ("URLs",), "y") is True
    assert target.read_bytes() == b'{\r\n  "URLs": [\r\n    "x",\r\n    "y"\r\n  ]\r\n}'


def test_rewrite_json_file_bad_path(tmp_path):
    target = tmp_path / "a.json"
    target.write_text('{"URLs": "x"}', encoding="utf-8")
    with pytest.raises(ValueError):
        rewrite_json_file(target, ("URLs",), "y")
    with pytest.raises(ValueError):
        rewrite_json_file(target, ("nope",), "y")
    assert target.read_text(encoding="utf-8") == '{"URLs": "x"}'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
