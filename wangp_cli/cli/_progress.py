"""Progress: Rich bars on a terminal (never in json mode or with -q), and the ``--format jsonl`` events of
download, quantize and generate (wangp_cli.core.events, docs/events.md)."""

from __future__ import annotations

import contextlib
import threading
import time
from enum import Enum
from pathlib import PurePath
from typing import Annotated

import typer

from wangp_cli.cli._options import ProgressFormat


def _label(text: str) -> str:
    """A bar's description: no control characters or secrets, and no Rich markup taken from a file name."""
    from rich.markup import escape

    from wangp_cli.core.safety import clean

    return escape(clean(text))


class RichProgress:
    """A bar per file being fetched and one for the total; safe to call from several transfer threads."""

    def __init__(self, total_bytes: int):
        from rich.console import Console
        from rich.progress import (
            BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn,
        )

        self._bars = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                              TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                              transient=False)
        self._bars.start()
        self._total = self._bars.add_task("total", total=total_bytes or None)
        self._tasks: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self, what: str, size: int | None, done: int) -> None:
        with self._lock:
            self._tasks[what] = self._bars.add_task(_label(what), total=size, completed=done)
            self._bars.advance(self._total, done)

    def advance(self, count: int, what: str) -> None:
        with self._lock:
            task = self._tasks.get(what)
            if task is not None:
                self._bars.advance(task, count)
            self._bars.advance(self._total, count)

    def finish(self, what: str) -> None:
        with self._lock:
            task = self._tasks.pop(what, None)
            if task is not None:
                self._bars.remove_task(task)

    def close(self) -> None:
        self._bars.stop()


class TensorProgress:
    """A bar over the tensors of one quantized file (callable: one call per tensor written)."""

    def __init__(self, description: str, total: int | None = None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                              TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self._bars.start()
        self._task = self._bars.add_task(_label(description), total=total)

    def __call__(self, name: str) -> None:
        self._bars.advance(self._task)

    def close(self) -> None:
        self._bars.stop()


# -- --format jsonl: the event stream (wangp_cli.core.events, docs/events.md) ---------------------------------

ProgressFormatOption = Annotated[ProgressFormat, typer.Option(
    "--format", "-f", help="Output format: text for people, json for scripts (stdout holds only JSON), jsonl: one "
                           "JSON event per line while the work goes on (stages, steps, bytes, jobs), the json "
                           "record last (docs/events.md).")]


def _plain(value):
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def given_args(ctx: typer.Context) -> dict:
    """The command's parameters given on the command line (or by a variable), by name, as JSON values: the
    ``start`` event's ``args`` (defaults left out)."""
    given = {}
    for name, value in ctx.params.items():
        source = getattr(ctx.get_parameter_source(name), "name", "DEFAULT")
        if source not in ("DEFAULT", "DEFAULT_MAP"):
            given[name] = _plain(value)
    return given


@contextlib.contextmanager
def event_session(ctx: typer.Context, command: str, format: ProgressFormat):
    """With ``--format jsonl``: an EventWriter on stdout (``start`` now; ``error`` last if the body fails), else
    None (text and json output as they are)."""
    if format is not ProgressFormat.jsonl:
        yield None
        return
    from wangp_cli.cli import _output
    from wangp_cli.core.events import EventWriter

    events = EventWriter(command)
    with events.session(given_args(ctx), passthrough=(typer.Exit, typer.Abort),
                        interrupt_hint=_output.INTERRUPT_HINTS.get(command, "rerun the same command"),
                        translate=_output.error_for):  # as handle_errors reports it
        yield events


def warn_both(events, message: str, **extra) -> None:
    """A warning: on stderr as always and, in jsonl mode, as a ``warning`` event."""
    from wangp_cli.cli._output import warn

    warn(message)
    if events is not None:
        events.warning(message, **extra)


class JsonlTransfers:
    """download's progress object in jsonl mode (same calls as RichProgress, from several transfer threads):
    ``bytes`` events, at most one per file every 0.1 s plus its start and its last, and ``file_done``."""

    def __init__(self, events):
        from wangp_cli.core.events import Throttle

        self._events = events
        self._throttle = Throttle()
        self._files: dict[str, dict] = {}
        self._lock = threading.Lock()  # also keeps one file's events in order: done only grows

    def _send(self, what: str, entry: dict) -> None:
        entry["sent"] = entry["done"]
        self._events.emit("bytes", what=what, done=entry["done"], total=entry["total"])

    def start(self, what: str, size: int | None, done: int) -> None:
        with self._lock:
            earlier = self._files.get(what)  # a ranged transfer that fell back to one connection starts again
            entry = {"done": done, "total": size, "sent": None,
                     "started": earlier["started"] if earlier else time.perf_counter()}
            self._files[what] = entry
            self._throttle.ready(what)
            self._send(what, entry)

    def advance(self, count: int, what: str) -> None:
        with self._lock:
            entry = self._files.get(what)
            if entry is None:
                return
            entry["done"] += count
            last = entry["total"] is not None and entry["done"] >= entry["total"]
            if self._throttle.ready(what) or last:
                self._send(what, entry)

    def finish(self, what: str) -> None:
        with self._lock:
            entry = self._files.get(what)
            if entry is not None and entry["sent"] != entry["done"]:
                self._send(what, entry)
            self._throttle.forget(what)

    def file_done(self, result: dict) -> None:
        """download()'s ``on_file``: a file fetched or reused, its result record (as in the final document)."""
        from wangp_cli.core.safety import clean

        with self._lock:
            entry = self._files.pop(clean(result["dest"]), None)
            seconds = round(time.perf_counter() - entry["started"], 4) if entry else None
            self._events.emit("file_done", **result, seconds=seconds)

    def close(self) -> None:
        pass


class JsonlTensors:
    """quantize's per-job progress in jsonl mode: the stages read (header, checks; a missing source fetched),
    quantize (the tensors, ``tensor`` events at most every 0.1 s plus the last) and write (the last bytes flushed,
    the file renamed, the definition updated)."""

    def __init__(self, events, job: str):
        from wangp_cli.core.events import Throttle

        self._events = events
        self._job = job
        self._throttle = Throttle()
        self.total: int | None = None
        self.done = 0
        self._stage: str | None = None
        self._since = 0.0
        self._enter("read")

    def _enter(self, name: str | None) -> None:
        if self._stage is not None:
            self._events.stage_end(self._stage, time.perf_counter() - self._since, job=self._job)
        self._stage, self._since = name, time.perf_counter()
        if name is not None:
            self._events.stage_start(name, job=self._job)

    def expect(self, total: int) -> None:
        """The quantizer says how many tensors it writes (before the first one)."""
        self.total = total

    def started(self) -> None:
        """The checks passed (quantize_file's ``on_start``): the tensors come next."""
        if self._stage == "read":
            self._enter("quantize")

    def __call__(self, name: str) -> None:
        if self._stage == "read":
            self._enter("quantize")
        self.done += 1
        last = self.total is not None and self.done >= self.total
        if self._throttle.ready(self._job) or last:
            self._events.emit("tensor", n=self.done, total=self.total, name=name, job=self._job)
        if last:
            self._enter("write")

    def close(self) -> None:
        self._enter(None)


class JsonlReporter:
    """generate's Reporter (wangp_cli.generate.runner) in jsonl mode: stage_start / stage_end (named as the
    record's ``timings``), a ``step`` event per denoising step, warnings; ``job``: the manifest job the events
    belong to (None for a single video).

    The pipeline call times encode, denoise and decode together and reports them when it returns; so that the
    events come as the work goes, encode and denoise end here when the next stage begins (their seconds timed
    here, within a millisecond of the record's), decode, download, load and save with the record's seconds."""

    quiet = True  # the text lines (seed, stage timings) stay off stderr, as with --format json
    _ENDS_NEXT = {"denoise": "encode", "decode": "denoise"}  # a stage -> the one its start ends

    def __init__(self, events):
        self.events = events
        self.job: str | None = None
        self._open: tuple[str, float] | None = None  # the stage begun and not ended, since when
        self._ended: set[str] = set()  # ended here, before the pipeline reported them

    def _extra(self) -> dict:
        return {"job": self.job} if self.job is not None else {}

    def stage_start(self, name: str) -> None:
        if self._open is not None and self._ENDS_NEXT.get(name) == self._open[0]:
            previous, since = self._open
            self.events.stage_end(previous, time.perf_counter() - since, **self._extra())
            self._ended.add(previous)
        elif name not in self._ENDS_NEXT:  # download or load or save: a new round (a failed job left nothing)
            self._ended.clear()
        self._open = (name, time.perf_counter())
        self.events.stage_start(name, **self._extra())

    def stage(self, name: str, seconds: float) -> None:
        if name in self._ended:
            self._ended.discard(name)
            return
        if self._open is None or self._open[0] != name:  # never said to begin (a pipeline without that step)
            self.events.stage_start(name, **self._extra())
        self._open = None
        self.events.stage_end(name, seconds, **self._extra())

    def step(self, done: int, total: int) -> None:
        self.events.emit("step", n=done, total=total, **self._extra())

    def warn(self, message: str) -> None:
        warn_both(self.events, message, **self._extra())

    def close(self) -> None:
        pass
