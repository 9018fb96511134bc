"""The event stream of ``--format jsonl`` (schema ``wangp.events/1``, docs/events.md): one JSON object per line.

Every event carries ``schema``, ``event`` (its type), ``seq`` (1, 2, ... in the order written), ``time`` (unix
seconds) and ``command``; the other fields depend on the type (see ``wangp_cli/core/data/events.schema.json``).
Lines are strict JSON (no NaN), UTF-8, secrets redacted, and flushed one by one, so a reader sees each event when
it happens. Writers may be called from several threads (download transfers): a lock keeps lines whole and
``seq`` in order. No torch, no typer: the CLI wraps this.
"""

from __future__ import annotations

import contextlib
import errno
import sys
import threading
import time

from wangp_cli.core.errors import WangpError
from wangp_cli.core.jsonio import json_text
from wangp_cli.core.safety import redact_data

SCHEMA = "wangp.events/1"

#: Every event type, in the order a run may produce them (docs/events.md says which command emits which).
EVENT_TYPES = ("start", "plan", "stage_start", "stage_end", "step", "tensor", "bytes", "file_done", "job_start",
               "job_done", "job_failed", "warning", "result", "error")

#: At most one ``bytes`` (``tensor``) event per file (job) every this many seconds, plus the last one.
MIN_INTERVAL = 0.1

_EXIT_INTERRUPTED, _EXIT_INTERNAL = 130, 70  # as the CLI exits (wangp_cli/cli/_output.py)


def error_fields(exc: BaseException, interrupt_hint: str = "") -> dict:
    """The ``error`` event's fields: code, message, hint, and the exit code the process ends with. The CLI
    hands over the WangpError it reports on stderr (``_output.error_for``); anything else is an internal error."""
    if isinstance(exc, KeyboardInterrupt):
        return {"code": "interrupted", "message": "interrupted", "hint": interrupt_hint, "exit": _EXIT_INTERRUPTED}
    if isinstance(exc, WangpError):
        return {"code": exc.code, "message": exc.message, "hint": exc.hint, "exit": exc.exit_code}
    return {"code": "internal", "message": f"internal error: {type(exc).__name__}: {exc}",
            "hint": "rerun with WANGP_DEBUG=1 for the traceback, and report it", "exit": _EXIT_INTERNAL}


class StreamClosed(BaseException):
    """The reader of the events went away (a broken pipe): the run stops, as a closed pipe stops other commands.

    A BaseException, as KeyboardInterrupt: nothing that keeps going past a job's or a transfer's own failure
    (``except Exception``, the transfers' retries on connection errors) may take it for one."""


class EventWriter:
    """Writes the events of one command run to ``stream`` (default: the standard output as it is now)."""

    def __init__(self, command: str, stream=None, clock=time.time):
        self.command = command
        self._stream = stream if stream is not None else sys.stdout
        self._clock = clock
        self._lock = threading.Lock()
        self._seq = 0
        self.finished = False  # a result or error event was written
        self.broken = False  # the reader went away: every later event raises StreamClosed

    def emit(self, event: str, **fields) -> dict | None:
        """Write one event now (one line, flushed) and return it; nothing after the final ``result`` or ``error``
        (a transfer thread that is still stopping), so that it stays the last line."""
        with self._lock:
            if self.broken:
                raise StreamClosed()
            if self.finished:
                return None
            self._seq += 1
            record = {"schema": SCHEMA, "event": event, "seq": self._seq, "time": round(self._clock(), 6),
                      "command": self.command, **fields}
            line = json_text(redact_data(record), indent=None) + "\n"
            binary = getattr(self._stream, "buffer", None)
            try:
                if binary is not None:  # UTF-8 whatever the locale says
                    self._stream.flush()
                    binary.write(line.encode("utf-8"))  # json_text escaped lone surrogates
                    binary.flush()
                else:
                    self._stream.write(line)
                    self._stream.flush()
            except BrokenPipeError:
                self.broken = True
                raise StreamClosed() from None
            if event in ("result", "error"):
                self.finished = True
        return record

    # -- the common events -------------------------------------------------------------------------------------

    def start(self, args: dict) -> dict:
        from wangp_cli import __version__

        return self.emit("start", version=__version__, args=args)

    def stage_start(self, name: str, **extra) -> dict:
        return self.emit("stage_start", name=name, **extra)

    def stage_end(self, name: str, seconds: float, **extra) -> dict:
        return self.emit("stage_end", name=name, seconds=round(seconds, 4), **extra)

    @contextlib.contextmanager
    def stage(self, name: str, **extra):
        """``stage_start``, the body, ``stage_end`` with its seconds (also when the body fails)."""
        self.stage_start(name, **extra)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stage_end(name, time.perf_counter() - started, **extra)

    def warning(self, message: str, **extra) -> dict:
        return self.emit("warning", message=message, **extra)

    def result(self, record) -> dict:
        return self.emit("result", record=record)

    def error(self, exc: BaseException, interrupt_hint: str = "") -> dict:
        return self.emit("error", **error_fields(exc, interrupt_hint))

    @contextlib.contextmanager
    def session(self, args: dict, *, passthrough: tuple = (), interrupt_hint: str = "", translate=None):
        """The ``start`` event, then the body; an exception (other than ``passthrough`` ones, e.g. the CLI's own
        exit) writes the final ``error`` event and goes on up, so that the usual stderr line and exit code
        follow (``translate(exc)``: the WangpError the front end reports instead, or None). While the body runs,
        anything else printing to ``sys.stdout`` goes to stderr: stdout holds the events alone."""
        self.start(args)
        try:
            with contextlib.redirect_stdout(sys.stderr):
                yield self
        except passthrough:
            raise
        except (StreamClosed, BrokenPipeError):  # the reader went away: nobody to tell; the CLI exits 141
            raise BrokenPipeError(errno.EPIPE, "the reader of the events went away") from None
        except BaseException as exc:
            if not self.finished:
                shown = (translate(exc) if translate else None) or exc
                with contextlib.suppress(OSError, ValueError):
                    self.error(shown, interrupt_hint)
            raise


class Throttle:
    """Whether an event for ``key`` may go out now: at most one per ``interval`` seconds per key (thread-safe)."""

    def __init__(self, interval: float = MIN_INTERVAL, clock=time.monotonic):
        self.interval = interval
        self._clock = clock
        self._last: dict = {}
        self._lock = threading.Lock()

    def ready(self, key) -> bool:
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                return False
            self._last[key] = now
            return True

    def forget(self, key) -> None:
        with self._lock:
            self._last.pop(key, None)
