"""Rendering a validation report: text lines, summary line, JSON document, GitHub workflow commands.

SARIF logs are built by :mod:`wangp_cli.core.sarif`; :func:`is_report` knows them too.
"""

from __future__ import annotations

import os
import re

from wangp_cli.core import sarif
from wangp_cli.core.jsonio import json_text
from wangp_cli.core.safety import clean, escape_controls
from wangp_cli.core.validation import Report

REPORT_SCHEMA = "wangp.validate/1"
_SUMMARY = re.compile(r"^(All checks passed \(\d+ files?\)\.|Found \d+ errors? and \d+ warnings? in \d+ files?\.)$")
_PEEK = 4096


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


def as_text(report: Report, *, hints: bool = True, paint=lambda text, style: text,
            errors_only: bool = False) -> list[str]:
    """``path:line:col: CODE message`` lines (then ``  help: ...``) and the summary; control characters escaped.

    ``errors_only`` (``-qq``): the error lines alone, no warnings, no summary.
    """
    lines = []
    for d in report.diagnostics:
        if errors_only and d.severity != "error":
            continue
        code = paint(d.code, "red" if d.severity == "error" else "yellow")
        lines.append(f"{paint(clean(f'{d.path}:{d.line}:{d.column}:'), 'bold')} {code} {clean(d.message)}")
        if d.hint and hints:
            lines.append(paint("  help: ", "cyan") + clean(d.hint))
    if summary(report) and not errors_only:
        lines.append(summary(report))
    return lines


def as_json(report: Report) -> str:
    return json_text({
        "schema": REPORT_SCHEMA,
        "summary": {"files": report.files, "errors": report.errors, "warnings": report.warnings},
        "diagnostics": [d.to_dict() for d in report.diagnostics],
    }, indent=2)


def _escape_data(text: str) -> str:
    return escape_controls(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


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


def is_report(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a report ``wangp validate -o`` wrote (any format, or empty), which ``-o`` may replace
    without --force; anything else (a definition, notes) is kept."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_PEEK)
            handle.seek(max(0, os.fstat(handle.fileno()).st_size - _PEEK))
            tail = handle.read()
    except OSError:
        return False
    text, last = head.decode("utf-8", "replace"), tail.decode("utf-8", "replace").rstrip("\n").rsplit("\n", 1)[-1]
    if not text.strip():
        return True
    if text.lstrip().startswith("{"):
        return re.search(r'^\{\s*"schema": "wangp\.validate/1"', text.lstrip()) is not None or sarif.is_own_log(text)
    return text.startswith(("::error ", "::warning ")) or _SUMMARY.match(last) is not None
