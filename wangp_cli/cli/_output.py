"""Where output goes: results on stdout, logs and errors on stderr; colour only on a terminal."""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass

import typer

from wangp_cli.core.errors import WangpError
from wangp_cli.core.registry import DEFAULT_TARGET
from wangp_cli.core.safety import clean, redact_data


EXIT_FINDINGS = 1  # findings, or work that failed
EXIT_USAGE = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in wangp, not in the input
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


@dataclass
class Settings:
    """Global options (one per process: the CLI runs one command)."""

    home: str | None = None
    quiet: int = 0  # -q: no warnings or progress; -qq: nothing but errors (and the command's stdout data)
    verbose: int = 0  # -v: more detail on stderr
    color: str = "auto"
    command: str = ""

    @property
    def debug(self) -> bool:
        return self.verbose >= 2 or bool(os.environ.get("WANGP_DEBUG"))


STATE = Settings()


def settings(ctx: typer.Context | None = None) -> Settings:
    """The global options (``ctx`` is accepted for the commands' convenience)."""
    if ctx is not None:
        root = ctx.find_root()
        if root.obj is None:
            root.obj = STATE
    return STATE


def open_home(ctx: typer.Context):
    from wangp_cli.core.home import Home

    return Home(settings(ctx).home)


def open_catalog(ctx: typer.Context, target: str = DEFAULT_TARGET):
    """The catalog of the home folder chosen by --home / WANGP_HOME."""
    from wangp_cli.core.definitions import Catalog

    catalog = Catalog(open_home(ctx), target)
    detail(f"home {catalog.home.root.resolve()}: {len(catalog.ids(include_hidden=True))} definitions "
           f"(target {target})")
    return catalog


def use_color(stream, mode: str | None = None) -> bool:
    """``--color`` (always/never win), then NO_COLOR, FORCE_COLOR / CLICOLOR_FORCE, else only on a TTY."""
    mode = mode or STATE.color
    if mode == "never":
        return False
    if mode == "always":
        return True
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR") or os.environ.get("CLICOLOR_FORCE"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


def paint(text: str, style: str, enabled: bool) -> str:
    codes = {"red": "31", "yellow": "33", "bold": "1", "dim": "2", "cyan": "36", "green": "32"}
    return f"\033[{codes[style]}m{text}\033[0m" if enabled else text


def emit(text: str = "") -> None:
    """One result line on stdout: secrets redacted, control characters escaped (tabs kept)."""
    lines = str(text).split("\n")
    sys.stdout.write("\n".join("\t".join(clean(cell) for cell in line.split("\t")) for line in lines) + "\n")


def emit_json(data, *, indent: int = 2) -> None:
    """The one JSON document of a command on stdout: strict JSON (no NaN), secrets redacted (JSON escapes
    control characters itself, so nothing else is escaped)."""
    from wangp_cli.core.jsonio import json_text

    sys.stdout.write(json_text(redact_data(data), indent=indent) + "\n")


def log(ctx: typer.Context | None, text: str) -> None:
    """A progress or information line on stderr (silenced by -q)."""
    if STATE.quiet <= 0:
        sys.stderr.write(clean(text) + "\n")


def detail(text: str) -> None:
    """A line only -v shows."""
    if STATE.verbose > 0 and STATE.quiet <= 0:
        sys.stderr.write(paint(clean(text), "dim", use_color(sys.stderr)) + "\n")


def warn(text: str) -> None:
    """A warning on stderr (silenced by -q)."""
    if STATE.quiet <= 0:
        sys.stderr.write(paint("warning: ", "yellow", use_color(sys.stderr)) + clean(text) + "\n")


def fail(error: WangpError) -> None:
    """Print a WangpError in one line (plus its hint) on stderr; never silenced."""
    color = use_color(sys.stderr)
    for diagnostic in error.diagnostics:
        sys.stderr.write(clean(str(diagnostic)) + "\n")
    code = f"{error.code}: " if error.code and error.code not in ("error", "usage") else ""
    sys.stderr.write(paint("error: ", "red", color) + code + clean(error.message) + "\n")
    if error.hint:
        sys.stderr.write(paint("  hint: ", "cyan", color) + clean(error.hint) + "\n")


# What to tell a user who pressed Ctrl-C, by command.
INTERRUPT_HINTS = {
    "download": "rerun the same command to resume: finished files are kept, a partial file resumes where it "
                "stopped",
    "generate": "rerun the same command; with --manifest, finished jobs are skipped",
    "quantize": "rerun the same command; nothing was written at the output name",
    "doctor": "rerun wangp doctor",
}


#: Modules of the ``generate`` extra (``pip install 'wangp[generate]'``) by import name, with their PyPI names:
#: the light install (``pip install wangp``) has none of them.
GENERATE_EXTRA = {"torch": "torch", "safetensors": "safetensors", "optimum": "optimum-quanto",
                  "optimum.quanto": "optimum-quanto", "diffusers": "diffusers", "transformers": "transformers",
                  "imageio_ffmpeg": "imageio-ffmpeg", "accelerate": "accelerate", "peft": "peft", "ftfy": "ftfy",
                  "gguf": "gguf"}


def missing_extra(exc: BaseException) -> WangpError | None:
    """The error for a command run without the ``generate`` extra: an import of one of its packages themselves
    failed (not a submodule missing from an installed package, which is a broken install or a bug)."""
    if not isinstance(exc, ModuleNotFoundError) or exc.name not in GENERATE_EXTRA:
        return None
    command = f"wangp {STATE.command}" if STATE.command else "this command"
    return WangpError(f"{command} needs the generation extra: pip install 'wangp[generate]'", code="missing-extra",
                      hint=f"{GENERATE_EXTRA[exc.name]} is not installed in {sys.prefix}; the light install "
                           "(pip install wangp) covers validate, list, show, export-settings and download")


def error_for(exc: BaseException) -> WangpError | None:
    """What a command's failure is reported as (message, code, hint, exit code), for stderr and for the
    ``--format jsonl`` error event alike; None for what is not an Exception (Ctrl-C is reported apart)."""
    from wangp_cli.core.outputs import os_error

    if isinstance(exc, WangpError) or not isinstance(exc, Exception):
        return exc if isinstance(exc, WangpError) else None
    if isinstance(exc, OSError):  # a file system refusal that no check foresaw: still one clean line
        return os_error(exc, "cannot access" if exc.filename else "system error")
    return missing_extra(exc) or WangpError(f"internal error: {type(exc).__name__}: {exc}",
                                            hint="rerun with WANGP_DEBUG=1 for the traceback, and report it",
                                            exit_code=EXIT_INTERNAL)


def handle_errors(command):
    """Exit codes in one place: WangpError -> its code, OSError -> 1 with one line, Ctrl-C -> 130 with one
    line, a package of the generate extra not installed -> 1 saying which extra to install, anything else -> 70
    (internal error) with a hint to rerun with WANGP_DEBUG=1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            hint = INTERRUPT_HINTS.get(STATE.command, "rerun the same command")
            try:
                sys.stderr.write(paint("interrupted", "red", use_color(sys.stderr)) + f"; {hint}\n")
            except Exception:  # noqa: BLE001 - stderr itself may be gone
                pass
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:  # the reader went away (e.g. `wangp list | head -1`)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except WangpError as exc:
            fail(exc)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:  # noqa: BLE001 - the one place that maps unexpected errors (error_for)
            if os.environ.get("WANGP_DEBUG"):
                raise
            error = error_for(exc)
            fail(error)
            raise typer.Exit(error.exit_code) from None

    return wrapper
