"""Writing files so that nothing is lost: a temporary name in the same folder, fsync, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from wangp_cli.core.errors import WangpError


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> None:
    """Write ``text`` to ``path`` atomically; with ``overwrite=False`` an existing file is never replaced."""
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise WangpError(f"cannot write '{path}': {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)  # fails if the file exists, atomically
            except FileExistsError:
                raise WangpError(f"'{path}' already exists", code="exists",
                                 hint="choose another name, or pass --force to replace it") from None
            os.unlink(temp)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def dump_json(data, *, indent: int = 4) -> str:
    """JSON text as WanGP writes it (indent 4), with a final newline."""
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def write_json(path: str | os.PathLike, data, *, indent: int = 4, overwrite: bool = True) -> None:
    atomic_write_text(path, dump_json(data, indent=indent), overwrite=overwrite)
