"""The home folder: ``finetunes/``, ``ckpts/``, ``settings/`` (and WanGP 7's ``defaults/``)."""

from __future__ import annotations

import os
from pathlib import Path

from wangp_cli.core.errors import UsageError

HOME_ENV = "WANGP_HOME"


class Home:
    """Turns relative names into paths, and refuses names that escape the folder."""

    def __init__(self, root: str | os.PathLike | None = None):
        root = root or os.environ.get(HOME_ENV) or "."
        self.root = Path(root)
        if not self.root.is_dir():
            raise UsageError(f"home folder '{root}' does not exist",
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
        if os.path.isabs(relative) or relative.startswith(("\\", "/")) or (len(relative) > 1 and relative[1] == ":"):
            root = os.path.realpath(self.root)
            return os.path.commonpath([root, os.path.realpath(relative)]) == root
        normal = os.path.normpath(relative.replace("\\", "/"))
        return normal != ".." and not normal.startswith("../")

    def resolve(self, relative: str) -> Path:
        """The file a definition's local path names; refuses paths outside the home folder."""
        if not self.contains(relative):
            raise UsageError(f"path '{relative}' is outside the home folder '{self.root}'")
        return self.root / relative if not os.path.isabs(relative) else Path(relative)
