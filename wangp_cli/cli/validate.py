"""``wangp validate``: every rule of the definition format, as ruff-style diagnostics."""

from __future__ import annotations

import os
import sys
from typing import Annotated, List, Optional

import typer

from wangp_cli.cli._options import ReportFormat, Target, TargetOption
from wangp_cli.cli._output import handle_errors, open_home, paint, use_color


@handle_errors
def validate_command(
    ctx: typer.Context,
    paths: Annotated[Optional[List[str]], typer.Argument(
        help="Definition files or folders (default: finetunes/ of the home folder).", show_default=False)] = None,
    format: Annotated[Optional[ReportFormat], typer.Option(
        "--format", "-f", help="text (default), json (one document), github (workflow annotations; the default "
                               "when GITHUB_ACTIONS=true).", show_default=False)] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings fail too (exit 1).")] = False,
    target: TargetOption = Target.july,
    ignore: Annotated[Optional[List[str]], typer.Option(
        "--ignore", help="Codes to leave out (repeatable; 'W' leaves out every warning).", show_default=False)]
    = None,
    hints: Annotated[bool, typer.Option("--hints/--no-hints", help="Print how to fix each finding below it.")]
    = True,
    output_file: Annotated[Optional[str], typer.Option("--output-file", "-o", help="Write the report to a file.",
                                                       show_default=False)] = None,
) -> None:
    """Check definitions: JSON syntax, required keys, architectures, URLs, references, naming, settings.

    Prints `path:line:col: CODE message`; exit 0 when clean (warnings allowed unless --strict), 1 on findings,
    2 on usage errors. Examples: wangp validate; wangp validate finetunes/ --format github --strict
    """
    from wangp_cli.core import report
    from wangp_cli.core.validation import validate_paths

    if format is None:
        format = ReportFormat.github if os.environ.get("GITHUB_ACTIONS") == "true" else ReportFormat.text
    result = validate_paths(paths, open_home(ctx), target=target.value, ignore=tuple(ignore or ()))
    stream = open(output_file, "w", encoding="utf-8") if output_file else sys.stdout
    try:
        if format is ReportFormat.json:
            stream.write(report.as_json(result) + "\n")
        elif format is ReportFormat.github:
            stream.writelines(line + "\n" for line in report.as_github(result))
        else:
            color = not output_file and use_color(sys.stdout)
            for diagnostic in result.diagnostics:
                code = paint(diagnostic.code, "red" if diagnostic.severity == "error" else "yellow", color)
                location = paint(f"{diagnostic.path}:{diagnostic.line}:{diagnostic.column}:", "bold", color)
                stream.write(f"{location} {code} {diagnostic.message}\n")
                if diagnostic.hint and hints:
                    stream.write(paint("  help: ", "cyan", color) + diagnostic.hint + "\n")
            summary = report.summary(result)
            if summary:
                stream.write(summary + "\n")
    finally:
        if output_file:
            stream.close()
    if result.failed(strict):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
