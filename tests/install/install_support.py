"""Helpers of the install tests: a copy of this project's working tree, the package index they install from.

These tests pip-install wangp into fresh virtual environments (the light install, pre-commit's hook environment),
so they need the package index (PyPI, or the index pip is configured with). Without one they are skipped with the
reason, unless ``WANGP_TEST_REQUIRE_INDEX=1`` (set by ``.ci/run``): then they fail, so that CI never skips them
silently.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Never copied (besides what .gitignore ignores): virtual environments and caches.
SKIPPED = {".venv", ".git", "__pycache__", ".pytest_cache", ".hypothesis", "build", "dist", "outputs"}
#: Packages of the ``generate`` extra (PyPI names, normalised): none of them belongs in the light install.
HEAVY_DISTRIBUTIONS = {"torch", "diffusers", "transformers", "optimum-quanto", "safetensors", "accelerate", "peft",
                       "gguf", "imageio-ffmpeg", "ftfy"}


def project_files() -> list[str]:
    """The working tree as git sees it: tracked files and untracked ones .gitignore does not ignore (so the copy is
    what a commit of the current work would hold); without git, every file outside :data:`SKIPPED`."""
    if shutil.which("git") and (REPO_ROOT / ".git").exists():
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                cwd=REPO_ROOT, capture_output=True, check=True).stdout.decode()
        return sorted(name for name in listed.split("\0") if name and (REPO_ROOT / name).is_file())
    return sorted(str(path.relative_to(REPO_ROOT)) for path in REPO_ROOT.rglob("*")
                  if path.is_file() and not SKIPPED & set(path.relative_to(REPO_ROOT).parts)
                  and not path.name.endswith((".pyc", ".egg-info")))


def copy_project(dest: Path) -> Path:
    """Copy :func:`project_files` to ``dest`` (a new folder); returns ``dest``."""
    for name in project_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    return dest


def tool_env(**extra) -> dict:
    """The environment of the pip / pre-commit / git children: no wangp or CLI variables from the test run, no
    PYTHONPATH (the installed package must be the one used), git without the user's or system configuration."""
    drop = ("PYTHONPATH", "WANGP_HOME", "WANGP_DEBUG", "WANGP_TARGET", "GITHUB_ACTIONS", "FORCE_COLOR",
            "CLICOLOR_FORCE", "VIRTUAL_ENV", "PRE_COMMIT_HOME", "PIP_REQUIRE_VIRTUALENV")
    env = {key: value for key, value in os.environ.items() if key not in drop and not key.startswith("GIT_")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull,
               GIT_AUTHOR_NAME="wangp tests", GIT_AUTHOR_EMAIL="tests@wangp.invalid",
               GIT_COMMITTER_NAME="wangp tests", GIT_COMMITTER_EMAIL="tests@wangp.invalid", NO_COLOR="1")
    env.update(extra)
    return env


def require_package_index(folder: Path) -> None:
    """Skip the test (or, with WANGP_TEST_REQUIRE_INDEX=1, fail it) when pip cannot fetch a package of the light
    install into ``folder``. Called by a module-scoped fixture of each install test module."""
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "--quiet",
                             "--dest", str(folder), "typer>=0.28,<0.29"],
                            capture_output=True, text=True, env=tool_env(), timeout=120)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip() and "is ignored" not in line]
        reason = f"no package index: pip download typer failed ({lines[-1] if lines else result.returncode})"
        if os.environ.get("WANGP_TEST_REQUIRE_INDEX") == "1":
            pytest.fail(reason + "; WANGP_TEST_REQUIRE_INDEX=1 asks these tests to run")
        pytest.skip(reason)
