"""``wangp validate`` (target v12) over WanGP 12's own defaults in ../shared/wangp-head: no errors, and only the
warnings that mean something (each kind justified in docs/diagnostics.md)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from wangp_cli.core.home import Home
from wangp_cli.core.validation import validate_paths

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "wangp-head" / "defaults"

#: The warnings WanGP's own files deserve: (code, message pattern).
JUSTIFIED = (
    ("W7", r"^'(shift|scheduler_type|sampling_steps|sampler_solver|fps)' is not a WanGP setting \(ignored\)"),
    ("W7", r"^'(settings_dir|profile_dirs|xresolutions)' "),
    ("W6", r"^'auto_quantize' is ignored when 'modules' is set"),
    ("W13", r"^'(preload_URLs|URLs)' names '(ltx2_distilled|t2v_fusionix)', a WanGP 12 built-in definition"),
)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if not CORPUS.is_dir():
        pytest.skip("../shared/wangp-head not present")
    return validate_paths([str(CORPUS)], Home(tmp_path_factory.mktemp("home")), target="v12")


def test_wangp_12_defaults_have_no_errors(report):
    assert report.files == len(list(CORPUS.glob("*.json")))
    assert [(d.path, d.code, d.message) for d in report.diagnostics if d.severity == "error"] == []


def test_remaining_warnings_are_the_justified_kinds(report):
    unjustified = [(Path(d.path).name, d.code, d.message) for d in report.diagnostics
                   if not any(d.code == code and re.search(pattern, d.message) for code, pattern in JUSTIFIED)]
    assert unjustified == []
    kinds = Counter(d.code for d in report.diagnostics)
    assert set(kinds) <= {"W6", "W7", "W13"}


def test_the_v12_schema_accepts_every_wangp_12_default():
    import json

    import jsonschema

    from wangp_cli.core.schema import definition_schema

    if not CORPUS.is_dir():
        pytest.skip("../shared/wangp-head not present")
    validator = jsonschema.Draft202012Validator(definition_schema("v12"))
    problems = {path.name: next(validator.iter_errors(json.loads(path.read_text(encoding="utf-8"))), None)
                for path in sorted(CORPUS.glob("*.json"))}
    assert {name: error.message for name, error in problems.items() if error is not None} == {}
