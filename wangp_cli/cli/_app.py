"""The Typer application: global options and command registration (no heavy imports here)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from wangp_cli import __version__
from wangp_cli.cli import (
    doctor, download, export_settings, files, gallery, generate, inspect, list_models, new, quantize, schema, show,
    validate,
)
from wangp_cli.cli._options import ColorMode
from wangp_cli.cli._output import settings
from wangp_cli.core.home import HOME_ENV

class _WangpGroup(TyperGroup):
    """The root command: global options are accepted after the command name too."""

    def main(self, args=None, *rest, **kwargs):
        args = list(sys.argv[1:] if args is None else args)
        return super().main(hoist_global_options(args, self), *rest, **kwargs)


app = typer.Typer(
    name="wangp",
    cls=_WangpGroup,
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
    quiet: Annotated[int, typer.Option("--quiet", "-q", count=True, metavar="", show_default=False,
                                       help="-q: no warnings or progress; -qq: nothing but errors.")] = 0,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, metavar="", show_default=False,
                                         help="More detail on stderr (-vv: tracebacks too).")] = 0,
    color: Annotated[ColorMode, typer.Option(help="Colour: auto (on a terminal, unless NO_COLOR), always or "
                                                  "never.")] = ColorMode.auto,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print versions and exit.")] = False,
) -> None:
    for stream in (sys.stdout, sys.stderr):  # JSON escapes can carry lone surrogates: never crash on them
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):
            pass
    state = settings(ctx)
    state.home, state.quiet, state.verbose, state.color = home, quiet, verbose, color.value
    state.command = ctx.invoked_subcommand or ""


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
files.register(app)
gallery.register(app)


GLOBAL_FLAGS = {"-q", "--quiet", "-v", "--verbose", "-qq", "-vv", "-qqq", "-vvv"}
GLOBAL_VALUED = {"--home", "--color"}


def _command_options(group, name: str) -> tuple[set[str], set[str]]:
    """The option names of command ``name`` of the click ``group``: (all of them, those taking a value).

    Duck-typed: typer carries its own copy of click, and importing the real one too would cost 10 ms a run."""
    sub = group.commands.get(name)
    names, valued = set(), set()
    for param in getattr(sub, "params", []):
        if getattr(param, "param_type_name", "") == "option":
            opts = set(param.opts) | set(param.secondary_opts)
            names |= opts
            if not (param.is_flag or param.count):
                valued |= opts
    return names, valued


def hoist_global_options(argv: list[str], group) -> list[str]:
    """``wangp list --home DIR`` as ``wangp --home DIR list``: global options given after the command move
    before it (unless the command has an option of that name, or they follow ``--``)."""
    index = 0
    while index < len(argv):  # skip the global options before the command
        token = argv[index]
        if token in GLOBAL_VALUED:
            index += 2
        elif token.startswith("-"):
            index += 1
        else:
            break
    if index >= len(argv):
        return argv
    head, name, rest = argv[:index], argv[index], argv[index + 1:]
    own, valued = _command_options(group, name)
    moved, kept, position = [], [], 0
    while position < len(rest):
        token = rest[position]
        option = token.split("=", 1)[0]
        if token == "--":
            kept += rest[position:]
            break
        if option in own:
            kept.append(token)
            if option in valued and "=" not in token and position + 1 < len(rest):
                kept.append(rest[position + 1])
                position += 1
        elif option in GLOBAL_VALUED:
            moved.append(token)
            if "=" not in token and position + 1 < len(rest):
                moved.append(rest[position + 1])
                position += 1
        elif token in GLOBAL_FLAGS:
            moved.append(token)
        else:
            kept.append(token)
        position += 1
    return head + moved + [name] + kept


def main() -> None:
    app(prog_name="wangp")
