"""Rich progress bars for downloads (only on a terminal, never in json mode or with -q)."""

from __future__ import annotations


def _label(text: str) -> str:
    """A bar's description: no control characters or secrets, and no Rich markup taken from a file name."""
    from rich.markup import escape

    from wangp_cli.core.safety import clean

    return escape(clean(text))


class RichProgress:
    """A bar per file being fetched and one for the total; safe to call from several transfer threads."""

    def __init__(self, total_bytes: int):
        import threading

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
