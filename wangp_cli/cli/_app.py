"""The Typer application: global options and command registration (no heavy imports here)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from wangp_cli import __version__
from wangp_cli.cli import (
    doctor, download, export_settings, generate, inspect, list_models, new, quantize, schema, show, validate,
)
from wangp_cli.cli._output import settings
from wangp_cli.core.home import HOME_ENV

app = typer.Typer(
    name="wangp",
    help="Headless toolkit for WanGP finetune model definitions (independent of WanGP, compatible with its files).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        parts = [f"wangp {__version__}"]
        for package in ("torch", "diffusers", "optimum-quanto", "huggingface_hub"):
            try:
                parts.append(f"{package} {metadata.version(package)}")
            except metadata.PackageNotFoundError:
                parts.append(f"{package} (not installed)")
        typer.echo("\n".join(parts))
        raise typer.Exit()


@app.callback()
def _global(
    ctx: typer.Context,
    home: Annotated[Optional[str], typer.Option(
        "--home", envvar=HOME_ENV, help="Folder holding finetunes/, ckpts/ and settings/ (default: current folder).",
        show_default=False)] = None,
    quiet: Annotated[int, typer.Option("--quiet", "-q", count=True, help="Less output on stderr.")] = 0,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More output on stderr.")] = 0,
    color: Annotated[str, typer.Option(help="Colour: auto, always or never (NO_COLOR is honoured).")] = "auto",
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print versions and exit.")] = False,
) -> None:
    for stream in (sys.stdout, sys.stderr):  # JSON escapes can carry lone surrogates: never crash on them
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    state = settings(ctx)
    state.home, state.quiet, state.verbose, state.color = home, quiet, verbose, color


list_models.register(app)
show.register(app)
validate.register(app)
export_settings.register(app)
download.register(app)
quantize.register(app)
inspect.register(app)
new.register(app)
schema.register(app)
generate.register(app)
doctor.register(app)


def main() -> None:
    app(prog_name="wangp")
