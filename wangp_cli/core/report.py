"""Rendering a validation report: summary line, JSON document, GitHub workflow commands."""

from __future__ import annotations

import json

from wangp_cli.core.validation import Report


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary(report: Report) -> str:
    """``Found 2 errors and 1 warning in 3 files.`` / ``All checks passed (3 files).``; empty without files."""
    if not report.files:
        return ""
    if not report.diagnostics:
        return f"All checks passed ({_plural(report.files, 'file')})."
    return (f"Found {_plural(report.errors, 'error')} and {_plural(report.warnings, 'warning')} "
            f"in {_plural(report.files, 'file')}.")


def as_json(report: Report) -> str:
    return json.dumps({
        "schema": "wangp.validate/1",
        "summary": {"files": report.files, "errors": report.errors, "warnings": report.warnings},
        "diagnostics": [d.to_dict() for d in report.diagnostics],
    }, indent=2, ensure_ascii=False)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def as_github(report: Report) -> list[str]:
    """One ``::error``/``::warning`` workflow command per finding."""
    lines = []
    for d in report.diagnostics:
        props = (f"file={_escape_property(d.path)},line={d.line},col={d.column},"
                 f"endLine={d.end_line or d.line},endColumn={d.end_column or d.column},title={d.code}")
        lines.append(f"::{d.severity} {props}::{_escape_data(d.message)}")
    return lines
