"""The home folder: ``finetunes/``, ``ckpts/``, ``settings/`` (and WanGP 7's ``defaults/``)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from wangp_cli.core.errors import UsageError

HOME_ENV = "WANGP_HOME"
_WINDOWS_ROOT = re.compile(r"^([A-Za-z]:|[\\/]{2})")


def unusable_path_reason(path: str) -> str | None:
    """Why ``path`` cannot name a file on this machine (None when it can)."""
    if "\x00" in path:
        return "it contains a NUL character"
    try:
        encoded = os.fsencode(path)
    except UnicodeError:
        return "it is not valid Unicode"
    if any(len(part) > 255 for part in encoded.replace(b"\\", b"/").split(b"/")):
        return "a part of it is longer than 255 bytes"
    return None


def _folder_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used as a folder, in words that follow its name (None when it can)."""
    if path.is_dir():
        return None
    if path.exists():
        return "is not a folder"
    return "is a dangling symbolic link" if path.is_symlink() else "does not exist"


class Home:
    """Turns relative names into paths, and refuses names that escape the folder."""

    def __init__(self, root: str | os.PathLike | None = None):
        root = root or os.environ.get(HOME_ENV) or "."
        self.root = Path(root)
        problem = _folder_problem(self.root)
        if problem:
            raise UsageError(f"home folder '{root}' {problem}",
                             hint=f"pass --home DIR or set {HOME_ENV} to a folder holding finetunes/")

    @property
    def finetunes(self) -> Path:
        return self.root / "finetunes"

    @property
    def defaults(self) -> Path:
        return self.root / "defaults"

    @property
    def ckpts(self) -> Path:
        return self.root / "ckpts"

    @property
    def settings(self) -> Path:
        return self.root / "settings"

    def settings_file(self, model_id: str) -> Path:
        return self.settings / f"{model_id}_settings.json"

    def contains(self, relative: str) -> bool:
        """Whether ``relative`` (a path as written in a definition) stays inside the home folder."""
        if unusable_path_reason(relative):
            return False
        if _WINDOWS_ROOT.match(relative) and os.name != "nt":
            return False  # C:\... names another machine's disk
        if os.path.isabs(relative):
            root = os.path.realpath(self.root)
            return os.path.commonpath([root, os.path.realpath(relative)]) == root
        normal = os.path.normpath(relative.replace("\\", "/"))
        return normal != ".." and not normal.startswith("../")

    def exists(self, relative: str) -> bool:
        """Whether the local file a definition names is there (False for unusable or outside names)."""
        try:
            return self.contains(relative) and self.resolve(relative).is_file()
        except OSError:
            return False

    def locate(self, candidates: tuple[str, ...] | list[str]) -> str | None:
        """The first of ``candidates`` (home-relative paths, in WanGP's search order) that is a file, else None."""
        return next((c for c in candidates if self.exists(c)), None)

    def resolve(self, relative: str) -> Path:
        """The file a definition's local path names; refuses paths outside the home folder."""
        if not self.contains(relative):
            raise UsageError(f"path '{relative}' is outside the home folder '{self.root}'")
        return self.root / relative if not os.path.isabs(relative) else Path(relative)
