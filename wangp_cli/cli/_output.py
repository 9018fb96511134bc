"""Where output goes: results on stdout, logs and errors on stderr; colour only on a terminal."""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass

import typer

from wangp_cli.core.errors import WangpError


@dataclass
class Settings:
    """Global options, stored on the Typer context."""

    home: str | None = None
    quiet: int = 0
    verbose: int = 0
    color: str = "auto"

    @property
    def debug(self) -> bool:
        return self.verbose >= 2 or bool(os.environ.get("WANGP_DEBUG"))


def settings(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj


def open_home(ctx: typer.Context):
    from wangp_cli.core.home import Home

    return Home(settings(ctx).home)


def open_catalog(ctx: typer.Context, target: str = "july"):
    """The catalog of the home folder chosen by --home / WANGP_HOME."""
    from wangp_cli.core.definitions import Catalog

    return Catalog(open_home(ctx), target)


def use_color(stream, mode: str = "auto") -> bool:
    """``--color`` with NO_COLOR (wins), FORCE_COLOR / CLICOLOR_FORCE, else only on a TTY."""
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    if mode == "always" or os.environ.get("FORCE_COLOR") or os.environ.get("CLICOLOR_FORCE"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


def paint(text: str, style: str, enabled: bool) -> str:
    codes = {"red": "31", "yellow": "33", "bold": "1", "dim": "2", "cyan": "36", "green": "32"}
    return f"\033[{codes[style]}m{text}\033[0m" if enabled else text


def emit(text: str = "") -> None:
    """One result line on stdout."""
    sys.stdout.write(text + "\n")


def emit_json(data) -> None:
    """The one JSON document of a command on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def log(ctx: typer.Context, text: str) -> None:
    """A progress or information line on stderr (silenced by -q)."""
    if settings(ctx).quiet <= 0:
        sys.stderr.write(text + "\n")


def warn(text: str) -> None:
    sys.stderr.write(paint("warning: ", "yellow", use_color(sys.stderr)) + text + "\n")


def fail(error: WangpError) -> None:
    """Print a WangpError in one line (plus its hint) on stderr."""
    color = use_color(sys.stderr)
    for diagnostic in error.diagnostics:
        sys.stderr.write(str(diagnostic) + "\n")
    code = f"{error.code}: " if error.code and error.code not in ("error", "usage") else ""
    sys.stderr.write(paint("error: ", "red", color) + code + error.message + "\n")
    if error.hint:
        sys.stderr.write(paint("  hint: ", "cyan", color) + error.hint + "\n")


def handle_errors(command):
    """Turn WangpError into a clean message and its exit code; other exceptions into exit 2 (traceback with -vv)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:  # the reader went away (e.g. `wangp list | head -1`)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except WangpError as exc:
            fail(exc)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:  # noqa: BLE001 - the one place that maps unexpected errors
            if os.environ.get("WANGP_DEBUG"):
                raise
            fail(WangpError(f"internal error: {type(exc).__name__}: {exc}",
                            hint="rerun with WANGP_DEBUG=1 for the traceback, and report it"))
            raise typer.Exit(2) from None

    return wrapper
