"""Remembering that a file on disk was hashed: a ``user.wangp.sha256`` extended attribute on the file itself.

Hashing a 20 GB checkpoint on every ``wangp download`` costs a minute; the attribute records the SHA-256 with the
file's size and modification time, so a later run trusts it while neither changed (``--verify`` hashes again).
An attribute lives with the inode: it survives renames, hard links share it, copies do not carry it. File systems
without user attributes simply keep hashing every time.
"""

from __future__ import annotations

import os
from pathlib import Path

ATTRIBUTE = "user.wangp.sha256"


def _stamp(path: Path, sha256: str) -> bytes:
    info = path.stat()
    return f"{sha256.lower()}:{info.st_size}:{info.st_mtime_ns}".encode("ascii")


def recorded(path: Path, sha256: str) -> bool:
    """True when ``path`` carries a record of ``sha256`` made at its current size and modification time."""
    try:
        return os.getxattr(path, ATTRIBUTE) == _stamp(path, sha256)
    except (OSError, AttributeError):  # no such attribute, no xattr support, not Linux
        return False


def remember(path: Path, sha256: str) -> None:
    """Record that ``path`` (as it is now) hashes to ``sha256``; silently nothing where attributes are unsupported."""
    try:
        os.setxattr(path, ATTRIBUTE, _stamp(path, sha256))
    except (OSError, AttributeError):
        pass
