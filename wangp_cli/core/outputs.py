"""Checks on a path before anything is written to it (and before the expensive work that produces it).

One rule for every ``-o/--output/--results``: a directory, a name over 255 bytes, a folder that cannot be
written, or an existing file that is not this command's own kind of output is refused up front, so that a
finished render, download or quantization is never thrown away at the last step, and nothing a user owns is
overwritten without ``--force``.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Callable

from wangp_cli.core.errors import WangpError

NAME_MAX = 255


class OutputError(WangpError):
    """An output path that cannot (or must not) be written."""

    def __init__(self, message: str, *, code: str = "output", hint: str = ""):
        super().__init__(message, code=code, hint=hint, exit_code=1)


def name_too_long(name: str) -> bool:
    """Whether one path component is over the 255-byte limit of common file systems."""
    try:
        return len(os.fsencode(name)) > NAME_MAX
    except UnicodeError:
        return True


def _nearest_existing(folder: Path) -> Path:
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def check_folder_writable(folder: str | os.PathLike, *, what: str = "output folder") -> Path:
    """``folder`` exists (or can be created) as a writable folder; refuses before any work."""
    folder = Path(folder)
    for part in folder.parts:
        if name_too_long(part):
            raise OutputError(f"cannot write to '{folder}': a part of it is longer than {NAME_MAX} bytes",
                              code="name-too-long", hint="choose a shorter name")
    existing = _nearest_existing(folder)
    if os.path.lexists(existing) and not existing.is_dir():
        raise OutputError(f"cannot use '{folder}' as {what}: '{existing}' is not a folder", code="not-a-folder",
                          hint="name a folder, or remove the file in the way")
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "read-only file system" if _read_only(existing) else "permission denied"
        raise OutputError(f"cannot write to '{folder}': {reason}", code="not-writable",
                          hint=f"choose a writable {what} (for example with -o)")
    return folder


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def check_output_file(path: str | os.PathLike, *, force: bool = False, kind: str = "output",
                      is_own_kind: Callable[[Path], bool] | None = None, option: str = "-o",
                      exists_hint: str = "choose another name, or pass --force to replace it") -> Path:
    """Refuse ``path`` unless it can be written: not a directory, name within 255 bytes, folder writable,
    and not an existing file unless ``force`` or ``is_own_kind(path)`` says it is this command's output
    (``exists_hint`` then says what to do; commands without --force name their own way out)."""
    path = Path(path)
    if name_too_long(path.name):
        raise OutputError(f"{option} '{path.name[:40]}...': file name longer than {NAME_MAX} bytes",
                          code="name-too-long", hint="choose a shorter name")
    if path.is_dir():
        raise OutputError(f"{option} '{path}' is a directory", code="is-directory",
                          hint=f"name a file for the {kind}, e.g. {path / ('out' + (path.suffix or '.json'))}")
    if os.path.lexists(path):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = 0
        if mode and not stat.S_ISREG(mode):
            raise OutputError(f"{option} '{path}' is not a regular file", code="not-a-file",
                              hint="name a regular file")
        if not force and not (is_own_kind and is_own_kind(path)):
            raise OutputError(f"{option} '{path}' already exists and is not a {kind}", code="exists",
                              hint=exists_hint)
        if not os.access(path, os.W_OK):
            raise OutputError(f"cannot write '{path}': permission denied", code="not-writable")
    check_folder_writable(path.parent if str(path.parent) else Path("."), what=f"folder for the {kind}")
    return path


def check_free_space(folder: str | os.PathLike, needed: int, *, what: str = "the output") -> None:
    """Refuse when ``folder``'s file system has less than ``needed`` bytes free (plus 1% or 64 MiB)."""
    existing = _nearest_existing(Path(folder))
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return
    margin = max(64 << 20, needed // 100)
    if needed + margin > free:
        raise OutputError(f"not enough free space in '{folder}' for {what}: needs {needed:,} bytes, "
                          f"{free:,} free", code="disk-full", hint="free some space or write elsewhere")


_ERRNO_TEXT = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: f"file name longer than {NAME_MAX} bytes",
    errno.EISDIR: "it is a directory",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.ENOENT: "no such file or folder",
    errno.EEXIST: "it already exists",
    errno.EIO: "input/output error",
}
_ERRNO_CODE = {errno.ENOSPC: "disk-full", errno.EDQUOT: "disk-full", errno.EROFS: "not-writable",
               errno.EACCES: "not-writable", errno.ENAMETOOLONG: "name-too-long", errno.EISDIR: "is-directory"}


def os_error(exc: OSError, action: str = "cannot write") -> WangpError:
    """An OSError as a one-line error: ``cannot write 'outputs/x.mp4': read-only file system``."""
    reason = _ERRNO_TEXT.get(exc.errno, (exc.strerror or str(exc)).lower() if exc.strerror else str(exc))
    where = f" '{exc.filename}'" if exc.filename else ""
    return WangpError(f"{action}{where}: {reason}", code=_ERRNO_CODE.get(exc.errno, "os-error"))
