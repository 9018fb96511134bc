"""Position-tracking JSON: 1-based line/column of keys, values and syntax errors (cli-conventions §1)."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, strategies as st

from conftest import offset_of, position
from wangp_cli.core import jsonpos
from wangp_cli.core.definitions import read_source
from wangp_cli.core.jsonpos import JsonSyntaxError, Positions

TAB_TEXT = '{\n\t"model":\n\t{\n\t\t"name": "FusioniX",\n\t\t"URLs": [\n\t\t\t"a_bf16",\n\t\t\t"b_fp16"\n\t\t]\n\t}\n}'


def start(span):
    return span[0], span[1]


# -- hand-counted positions -------------------------------------------------------------------------------------

def test_tab_indented_positions_count_a_tab_as_one_column():
    positions = Positions(TAB_TEXT)
    # line 4 is '\t\t"name": "FusioniX",': the key's quote is column 3, the value's quote column 11
    assert start(positions.key_span(("model", "name"))) == (4, 3)
    assert start(positions.value_span(("model", "name"))) == (4, 11)
    assert positions.value_span(("model", "name"))[2:] == (4, 21)  # end: just past the closing quote
    # list items: line 6 and 7, after three tabs
    assert start(positions.value_span(("model", "URLs", 0))) == (6, 4)
    assert start(positions.value_span(("model", "URLs", 1))) == (7, 4)
    # the model object opens on line 3 (its key is on line 2)
    assert start(positions.value_span(("model",))) == (3, 2)
    assert start(positions.key_span(("model",))) == (2, 2)


@pytest.mark.parametrize("indent", [2, 4])
def test_space_indented_positions(indent):
    data = {"model": {"name": "x", "architecture": "t2v", "URLs": ["u1", "u2"]}, "seed": -1}
    text = json.dumps(data, indent=indent)
    positions = Positions(text)
    # json.dumps puts "architecture" on line 4, indented twice; "seed" on the last member line, indented once
    assert start(positions.key_span(("model", "architecture"))) == (4, 2 * indent + 1)
    assert start(positions.value_span(("model", "architecture"))) == (4, 2 * indent + 1 + len('"architecture": '))
    assert start(positions.value_span(("model", "URLs", 1))) == (7, 3 * indent + 1)
    assert start(positions.key_span(("seed",))) == (10, indent + 1)
    assert start(positions.value_span(("seed",))) == position(text, "-1")


def test_single_line_positions():
    text = '{"model": {"name": "n", "URLs": ["x", "y"]}, "seed": 42}'
    positions = Positions(text)
    assert start(positions.key_span(("model", "URLs"))) == (1, 25)
    assert start(positions.value_span(("model", "URLs"))) == (1, 33)
    assert start(positions.value_span(("model", "URLs", 1))) == (1, 39)
    assert positions.value_span(("seed",)) == (1, 54, 1, 56)


def test_unicode_characters_before_a_value_count_as_one_column_each():
    text = '{"é": "ü😀", "k": 1}'
    positions = Positions(text)
    # { " é " : ␠ " ü 😀 " , ␠ " k " : ␠ 1  -> the key "k" starts at column 13, its value at column 18
    assert start(positions.key_span(("k",))) == (1, 13)
    assert start(positions.value_span(("k",))) == (1, 18)
    assert start(positions.value_span(("é",))) == (1, 7)


def test_crlf_and_nested_lists():
    text = '{\r\n  "a": [[1, 2], [3, {"b": null}]]\r\n}'
    positions = Positions(text)
    assert start(positions.value_span(("a", 1, 1, "b"))) == position(text, "null")
    assert start(positions.value_span(("a", 1, 1))) == position(text, '{"b"')
    assert start(positions.value_span(("a", 0, 1))) == position(text, "2]")


def test_unknown_path_falls_back_to_nearest_parent():
    positions = Positions('{\n  "model": {"name": "x"}\n}')
    assert positions.value_span(("model", "missing", 3)) == positions.value_span(("model",))
    assert start(positions.value_span(("nothing",))) == (1, 1)


def test_duplicate_keys_are_recorded_at_the_later_key():
    text = '{\n  "seed": 1,\n  "model": {"a": 1, "a": 2},\n  "seed": 2\n}'
    positions = Positions(text)
    recorded = {path: positions.location(offset) for path, offset in positions.duplicate_keys}
    assert recorded == {("model", "a"): position(text, '"a"', 1), ("seed",): position(text, '"seed"', 1)}
    # like json.loads, the last value wins: its position is the one kept
    assert start(positions.value_span(("seed",))) == position(text, "2\n}")


# -- syntax errors ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "",
    "{",
    '{"model": {,}}',
    '{\n\t"model": {\n\t\t"name": "x",\n\t}\n}',  # trailing comma
    '{\n  "a": 1\n  "b": 2\n}',  # missing comma
    "{'a': 1}",
    '{"a": "unterminated',
    '{"a": 1} trailing',
    '{"é": 1,,}',
])
def test_syntax_error_positions_are_json_decode_error_positions(text):
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    with pytest.raises(JsonSyntaxError) as raised:
        jsonpos.loads(text)
    assert (raised.value.line, raised.value.column) == (expected.value.lineno, expected.value.colno)
    assert raised.value.message == expected.value.msg


def test_invalid_utf8_reports_the_position_of_the_bad_byte():
    data = '{\n  "é": "'.encode() + b"\xff" + b'"\n}'
    with pytest.raises(JsonSyntaxError) as raised:
        jsonpos.decode_text(data)
    # line 2 is '  "é": "' (8 characters) before the bad byte
    assert (raised.value.line, raised.value.column) == (2, 9)
    assert "UTF-8" in raised.value.message


def test_read_source_keeps_invalid_utf8_as_an_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'{"a": "\xc3"}')
    source = read_source(path)
    assert source.error is not None
    assert (source.error.line, source.error.column) == (1, 8)
    assert source.span(("a",)) == (1, 8, 1, 8)


def test_utf8_bom_is_a_syntax_error_at_1_1(tmp_path):
    # WanGP reads definitions as UTF-8 text with json.load, which refuses a BOM
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"model": {}}')
    source = read_source(path)
    assert source.error is not None
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(path.read_text(encoding="utf-8"))
    assert (source.error.line, source.error.column) == (expected.value.lineno, expected.value.colno) == (1, 1)


def test_read_source_records_duplicate_keys(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"model": {"name": "a", "name": "b"}}')
    source = read_source(path)
    assert source.error is None
    assert source.duplicate_keys is True
    assert source.data["model"]["name"] == "b"
    assert [p for p, _ in source.positions.duplicate_keys] == [("model", "name")]


def test_read_source_of_a_missing_file_is_an_error_not_an_exception(tmp_path):
    source = read_source(tmp_path / "nope.json")
    assert source.error is not None and source.data is None


def test_deep_nesting_is_a_syntax_error_not_a_crash():
    with pytest.raises(JsonSyntaxError):
        jsonpos.loads("[" * 100_000 + "]" * 100_000)


def test_huge_integer_is_a_syntax_error(tmp_path):
    path = tmp_path / "big.json"
    path.write_text('{"seed": ' + "1" * 5000 + "}")
    source = read_source(path)  # must never raise
    assert source.error is not None or source.data is not None


# -- properties ---------------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)
indents = st.sampled_from([None, 0, 1, 2, 4, "\t", " \t"])


def walk(value, path=()):
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, path + (index,))


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


@given(json_values, indents, st.booleans(), st.booleans())
@example({"a": [1, {"b": "ü"}]}, "\t", False, False)
def test_every_value_span_points_at_its_value(value, indent, ensure_ascii, compact):
    separators = (",", ":") if compact else None
    text = json.dumps(value, indent=indent, ensure_ascii=ensure_ascii, separators=separators)
    positions = Positions(text)
    decoder = json.JSONDecoder()
    for path, expected in walk(value):
        line, column, end_line, end_column = positions.value_span(path)
        begin = offset_of(text, line, column)
        parsed, end = decoder.raw_decode(text, begin)
        assert canonical(parsed) == canonical(expected), path
        assert end == offset_of(text, end_line, end_column), path
        if path and isinstance(path[-1], str):
            key_line, key_column, *_ = positions.key_span(path)
            key, _ = decoder.raw_decode(text, offset_of(text, key_line, key_column))
            assert key == path[-1]


@st.composite
def broken_json(draw):
    """Valid JSON text with one character inserted, deleted or replaced: syntax errors in interesting places."""
    text = json.dumps(draw(json_values), indent=draw(indents))
    index = draw(st.integers(0, len(text)))
    kind = draw(st.sampled_from(["insert", "delete", "replace"]))
    char = draw(st.sampled_from(list('{}[],:"\\ \n0e-tfn') + ["é"]))
    if kind == "insert":
        return text[:index] + char + text[index:]
    if kind == "delete":
        return text[:index] + text[index + 1:]
    return text[:index] + char + text[index + 1:]


@given(broken_json() | st.text())
def test_loads_raises_only_json_syntax_error_at_the_decoder_position(text):
    try:
        expected = json.loads(text)
    except json.JSONDecodeError as error:
        with pytest.raises(JsonSyntaxError) as raised:
            jsonpos.loads(text)
        assert (raised.value.line, raised.value.column) == (error.lineno, error.colno)
    except RecursionError:
        with pytest.raises(JsonSyntaxError):
            jsonpos.loads(text)
    else:
        assert canonical(jsonpos.loads(text)) == canonical(expected)


@given(st.binary(max_size=200))
def test_decode_text_raises_only_json_syntax_error(data):
    try:
        text = jsonpos.decode_text(data)
    except JsonSyntaxError as error:
        assert error.line >= 1 and error.column >= 1
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
    else:
        assert text == data.decode("utf-8")


@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode) | broken_json().map(str.encode))
def test_read_source_never_raises(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "read_source_never_raises.json"
    path.write_bytes(data)
    source = read_source(path)
    if source.error is None:
        assert canonical(source.data) == canonical(json.loads(data.decode("utf-8")))
    else:
        assert source.error.line >= 1 and source.error.column >= 1
