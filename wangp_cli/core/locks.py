"""A lock file beside an output, so that two runs never make the same file twice (downloads, quantize).

The first run holds ``.<name>.wangp-lock`` (``flock``) while it works and removes it when done; a second run
waits for it, then finds the output present. A lock file removed by its holder while another run waited is
never trusted: the waiter takes the lock again on a fresh file (compared by inode).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


LOCK_SUFFIX = ".wangp-lock"


def lock_path(output: Path) -> Path:
    return output.with_name(f".{output.name}{LOCK_SUFFIX}")


def is_current(fd: int, path: Path) -> bool:
    """Whether the open lock file ``fd`` is still the file at ``path`` (a finishing run may have removed it)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except OSError:
        return False


@contextlib.contextmanager
def output_lock(output: str | os.PathLike, on_wait=None):
    """Hold the lock of ``output`` for the block; ``on_wait()`` runs once if another run holds it now."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, still atomic renames
        yield
        return
    path = lock_path(Path(output))
    path.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait and not waited:
                    on_wait()
                waited = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            if not is_current(fd, path):
                continue  # the holder removed this file meanwhile: lock the new one
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(path)
            return
        finally:
            os.close(fd)
