"""``wangp validate``: every rule of the definition format, as ruff-style diagnostics."""

from __future__ import annotations

import os
import sys
from typing import Annotated, List, Optional

import typer

from wangp_cli.cli._options import ReportFormat, Target, TargetOption
from wangp_cli.cli._output import handle_errors, log, open_home, paint, settings, use_color


def ignored_codes(given: list[str]) -> tuple[str, ...]:
    """``--ignore`` values as codes (case-insensitive; ``E``/``W`` for a whole severity); unknown ones refused."""
    from wangp_cli.core.errors import UsageError
    from wangp_cli.core.safety import did_you_mean
    from wangp_cli.core.validation import CODES

    codes = []
    for value in given:
        code = value.strip().upper()
        if code not in CODES and code not in ("E", "W"):
            ranges = " and ".join(f"{group[0]}..{group[-1]}" for group in
                                  ([c for c in CODES if c[0] == kind] for kind in "EW"))
            raise UsageError(f"--ignore '{value}' is not a diagnostic code{did_you_mean(code, list(CODES))}",
                             hint=f"codes are {ranges}, or E / W for every error / warning (docs/diagnostics.md)")
        codes.append(code)
    return tuple(codes)


@handle_errors
def validate_command(
    ctx: typer.Context,
    paths: Annotated[Optional[List[str]], typer.Argument(
        help="Definition files or folders (default: finetunes/ of the home folder).", show_default=False)] = None,
    format: Annotated[Optional[ReportFormat], typer.Option(
        "--format", "-f", help="text (default), json (one document), github (workflow annotations; the default "
                               "when GITHUB_ACTIONS=true), sarif (SARIF 2.1.0 log for code scanning).",
        show_default=False)] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 1).")] = False,
    target: TargetOption = Target.v12,
    ignore: Annotated[Optional[List[str]], typer.Option(
        "--ignore", help="Codes to leave out (repeatable, any case; 'W' leaves out every warning).",
        show_default=False)] = None,
    hints: Annotated[bool, typer.Option("--hints/--no-hints", help="Print how to fix each finding below it.")]
    = True,
    output_file: Annotated[Optional[str], typer.Option("--output-file", "-o", help="Write the report to a file "
                                                       "(an earlier report is replaced; anything else needs "
                                                       "--force).", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Let -o replace a file that is not a report.")] = False,
) -> None:
    """Check definitions: JSON syntax, required keys, architectures, URLs, references, naming, settings.

    Prints `path:line:col: CODE message`; exit 0 when clean (warnings allowed unless --strict), 1 on findings,
    2 on usage errors. Examples: wangp validate; wangp validate finetunes/ --format github --strict;
    wangp validate finetunes/ --format sarif -o wangp.sarif (docs/github.md)
    """
    from wangp_cli.core import report
    from wangp_cli.core.jsonio import atomic_write_text
    from wangp_cli.core.outputs import check_output_file
    from wangp_cli.core.validation import validate_paths

    if format is None:
        format = ReportFormat.github if os.environ.get("GITHUB_ACTIONS") == "true" else ReportFormat.text
    codes = ignored_codes(ignore or [])
    if output_file:
        check_output_file(output_file, force=force, kind="validate report", is_own_kind=report.is_report)
    result = validate_paths(paths, open_home(ctx), target=target.value, ignore=codes, note=lambda text: log(ctx, text))
    if format is ReportFormat.json:
        lines = [report.as_json(result)]
    elif format is ReportFormat.github:
        lines = report.as_github(result)
    elif format is ReportFormat.sarif:
        from wangp_cli.core.sarif import as_sarif

        lines = [as_sarif(result)]
    else:
        color = not output_file and use_color(sys.stdout)
        lines = report.as_text(result, hints=hints, paint=lambda text, style: paint(text, style, color),
                               errors_only=settings(ctx).quiet >= 2)
    text = "".join(line + "\n" for line in lines)
    if output_file:
        atomic_write_text(output_file, text)
    else:
        sys.stdout.write(text)
    if result.failed(strict):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
