"""Reuse of files users already have (``--link-from DIR``, ``WANGP_LINK_FROM``): find a file the plan needs in
other model folders (ComfyUI ``models/``, a Hugging Face cache, another WanGP ``ckpts/``) by name and size, verify
its SHA-256 when known, then hard-link, reflink or copy it instead of downloading.

Standard library only; nothing here touches the network. A hard link or a reflink costs no disk space: the file
is shared (a reflink until either copy is changed). Both names stay valid when the other is deleted.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import stat
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core.errors import WangpError
from wangp_cli.core.locks import output_lock
from wangp_cli.core.safety import clean
from wangp_cli.download.transfer import sha256_of

LINK_MODES = ("auto", "hardlink", "reflink", "copy")  # auto: hardlink, else reflink, else copy
ENV_VAR = "WANGP_LINK_FROM"
LINK_SUFFIX = ".wangp-link"  # the temporary of a reflink or copy: ``.<name>.wangp-link`` beside the target
SLOW_HASH = 1 << 30  # candidates from this size on get a report line before they are hashed
FICLONE = 0x40049409  # Linux ioctl: share the extents of one file with another (btrfs, XFS, bcachefs, ZFS 2.2)

#: Folders never entered: version control, the Hub cache's lock and "file does not exist" markers (empty files
#: named like real ones), Python caches.
SKIP_DIRS = frozenset({".git", ".hg", ".svn", ".locks", ".no_exist", "__pycache__", "node_modules"})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BLOCK = 8 << 20
#: A hard link that cannot be made for these reasons may still be a reflink or a copy (auto mode).
_LINK_FALLBACK = frozenset({errno.EXDEV, errno.EPERM, errno.EACCES, errno.EMLINK, errno.ENOTSUP,
                            errno.EOPNOTSUPP, errno.ENOSYS})
#: A clone that fails for these reasons is "not supported here" (file system, kernel, devices).
_CLONE_FALLBACK = frozenset({errno.EXDEV, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOTTY,
                             errno.EBADF, errno.EPERM, errno.ENOSYS, errno.ETXTBSY})


def is_own_temporary(name: str) -> bool:
    """Files wangp writes beside a target while it works (part files, their metadata, locks, link temporaries)."""
    return name.startswith(".") and ".wangp-" in name


def link_dirs(options: list[str] | None, env: Mapping[str, str] = os.environ) -> list[Path]:
    """The folders to reuse files from: ``--link-from`` values, then ``WANGP_LINK_FROM`` (``os.pathsep``
    separated), ``~`` expanded, each once. A folder that does not exist (or is not a readable folder) is an
    error: a typo would otherwise silently download everything."""
    given = [(value, "--link-from") for value in options or () if value]
    given += [(value, ENV_VAR) for value in env.get(ENV_VAR, "").split(os.pathsep) if value.strip()]
    folders, seen = [], set()
    for value, origin in given:
        path = Path(os.path.expanduser(value.strip() if origin == ENV_VAR else value))
        problem = ("does not exist" if not path.exists() else "is not a folder" if not path.is_dir()
                   else "cannot be read" if not os.access(path, os.R_OK | os.X_OK) else None)
        if problem:
            raise WangpError(f"{origin} {clean(value)}: {problem}", code="link-from",
                             hint=f"give an existing folder of model files (a ComfyUI models/ folder, a Hugging "
                                  f"Face cache, another WanGP ckpts/); check {ENV_VAR} too" if origin != ENV_VAR
                             else f"fix or unset {ENV_VAR} (folders separated by '{os.pathsep}')")
        resolved = path.resolve()
        if resolved not in seen:
            seen.add(resolved)
            folders.append(resolved)
    return folders


class ReuseIndex:
    """Files under some folders, by file name (case-sensitive), and Hub cache blobs by their SHA-256 name.

    One walk of each folder, on the first :meth:`candidates` call (so a plan with nothing missing walks
    nothing). The walk only lists folders (no ``stat`` per file: 100,000 files index in well under a second);
    the files of a wanted name are checked when asked for. Directory symlinks are followed (ComfyUI setups
    often link ``models/x`` to another disk), each real folder once; file symlinks give their real file (a Hub
    cache snapshot entry gives its blob); broken links, special files, wangp's own temporaries and
    :data:`SKIP_DIRS` are left out; unreadable folders are skipped (listed in ``unreadable``).
    """

    def __init__(self, dirs: Iterable[os.PathLike | str]):
        self.dirs = [Path(d) for d in dirs]
        self._by_name: dict[str, list[str]] | None = None
        self._by_sha: dict[str, list[str]] = {}
        self.files = 0  # file names indexed (after the walk)
        self.unreadable: list[Path] = []  # folders the walk could not list

    @classmethod
    def scan(cls, dirs: Iterable[os.PathLike | str]) -> ReuseIndex:
        """An index of ``dirs`` (walked on first use; :meth:`walk` walks now)."""
        return cls(dirs)

    def walk(self) -> ReuseIndex:
        """Index the folders now (done once; later calls do nothing)."""
        if self._by_name is not None:
            return self
        self._by_name = {}
        visited: set[tuple[int, int]] = set()
        for root in self.dirs:
            self._walk(root, visited)
        return self

    def _walk(self, root: Path, visited: set[tuple[int, int]]) -> None:
        stack = [str(root)]
        while stack:
            folder = stack.pop()
            try:
                info = os.stat(folder)
                if (info.st_dev, info.st_ino) in visited:
                    continue  # reached twice (a symlink loop, or two given folders that overlap)
                visited.add((info.st_dev, info.st_ino))
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError:
                self.unreadable.append(Path(folder))
                continue
            subfolders = []
            for entry in entries:
                try:
                    is_dir = entry.is_dir()  # the directory entry's type; a stat only for symlinks
                except OSError:
                    continue
                if is_dir:
                    if entry.name not in SKIP_DIRS:  # a linked folder is listed by its real path
                        subfolders.append(os.path.realpath(entry.path) if entry.is_symlink() else entry.path)
                    continue
                if is_own_temporary(entry.name) or entry.name.endswith((".incomplete", ".lock")):
                    continue
                self._by_name.setdefault(entry.name, []).append(entry.path)
                if _SHA256.match(entry.name):  # a Hub cache blob of an LFS file is named by its SHA-256
                    self._by_sha.setdefault(entry.name, []).append(entry.path)
                self.files += 1
            stack.extend(reversed(subfolders))  # depth first, in name order

    def candidates(self, name: str, size: int | None, sha256: str | None) -> list[Path]:
        """Regular files that may be ``name``: the same file name and size, then Hub cache blobs named
        ``sha256`` (any name), as real paths, each real file once, in the order of the folders given. Nothing
        without a size and a SHA-256 (a name alone proves nothing)."""
        if size is None and not sha256:
            return []
        self.walk()
        found = list(self._by_name.get(name, ()))
        if sha256:
            found += self._by_sha.get(sha256.lower(), ())
        paths, seen = [], set()
        for path in found:
            try:
                info = os.stat(path)  # follows symlinks: a broken one raises
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            if stat.S_ISREG(info.st_mode) and (size is None or info.st_size == size) and key not in seen:
                seen.add(key)
                paths.append(Path(os.path.realpath(path)) if os.path.islink(path) else Path(path))
        return paths


@dataclass
class Reuse:
    """A file found elsewhere, and how it would become the target."""

    source: Path
    method: str  # "hardlink", "reflink" or "copy": what would be used for the target
    verified: bool | None  # True: its SHA-256 was checked; None: no hash known, name and size only
    rejected: list[tuple[Path, str]] = field(default_factory=list)  # candidates refused, and why
    mode: str = "auto"  # what the user asked for; materialize falls back from ``method`` only in auto

    def to_dict(self) -> dict:
        return {"source": str(self.source), "method": self.method, "verified": self.verified, "mode": self.mode,
                "rejected": [{"path": str(path), "reason": reason} for path, reason in self.rejected]}


_DIGESTS: dict[tuple, str] = {}  # (device, inode, size, mtime) -> SHA-256: a file is hashed once per run


def _digest(path: Path, info: os.stat_result) -> str:
    key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_of(path).hexdigest()
    return _DIGESTS[key]


def _existing_parent(path: Path) -> Path:
    """The nearest folder of ``path`` that exists (the target's folder may not be made yet)."""
    folder = path.parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def _hardlink_allowed(info: os.stat_result) -> bool:
    """Whether Linux's fs.protected_hardlinks lets this user link to the file: its owner (or root), or, for a
    regular file that is not set-user-id nor set-group-id-executable, one it may read and write. Other systems:
    assume yes (materialize falls back if not)."""
    if not sys.platform.startswith("linux") or os.geteuid() in (0, info.st_uid):
        return True
    try:
        if Path("/proc/sys/fs/protected_hardlinks").read_text().strip() == "0":
            return True
    except OSError:
        pass
    mode = info.st_mode
    if mode & stat.S_ISUID or (mode & stat.S_ISGID and mode & stat.S_IXGRP):
        return False
    if info.st_gid in set(os.getgroups()) | {os.getegid()}:
        return bool(mode & stat.S_IRGRP and mode & stat.S_IWGRP)
    return bool(mode & stat.S_IROTH and mode & stat.S_IWOTH)


def _clone(source_fd: int, dest_fd: int) -> None:
    """FICLONE: ``dest`` shares ``source``'s blocks (Linux only; OSError when the file system cannot)."""
    if not sys.platform.startswith("linux"):
        raise OSError(errno.EOPNOTSUPP, "reflinks need Linux here")
    import fcntl

    fcntl.ioctl(dest_fd, FICLONE, source_fd)


_CLONES: dict[tuple[int, int], bool] = {}  # (source device, target folder device) -> whether FICLONE works


def _can_clone(source: Path, source_dev: int, folder: Path) -> bool:
    """Whether ``source`` can be reflinked into ``folder``: tried once per pair of devices by cloning it to a
    temporary there (instant when it works, removed at once). A folder we cannot write to says no."""
    key = (source_dev, os.stat(folder).st_dev)
    if key not in _CLONES:
        probe = folder / f".wangp-reflink-probe-{os.getpid()}{LINK_SUFFIX}"
        try:
            with open(source, "rb") as src:
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    _clone(src.fileno(), fd)
                    _CLONES[key] = True
                finally:
                    os.close(fd)
                    probe.unlink()
        except OSError:
            _CLONES[key] = False
    return _CLONES[key]


#: Why an explicit mode cannot make the target from a candidate, and what to do instead.
_MODE_PROBLEMS = {
    "hardlink": ("on another file system: a hard link cannot cross devices",
                 "use --link-mode auto (a reflink or a copy), or a --link-from folder on the same file system"),
    "hardlink-perm": (("owned by another user and not writable by you: the system refuses a hard link "
                       "(fs.protected_hardlinks)"), "use --link-mode auto or copy"),
    "reflink": (("not clonable into the target folder: its file system has no reflinks (ext4, tmpfs, NTFS...) "
                 "or it is another file system"), "use --link-mode auto (a hard link or a copy), or copy"),
}


def _method(source: Path, info: os.stat_result, target: Path, mode: str) -> tuple[str | None, str]:
    """(method, problem key): how ``source`` would become ``target`` in ``mode``; method None when the explicit
    mode cannot work (the key says why)."""
    folder = _existing_parent(target)
    same_device = os.stat(folder).st_dev == info.st_dev
    if mode in ("auto", "hardlink"):
        if same_device and _hardlink_allowed(info):
            return "hardlink", ""
        if mode == "hardlink":
            return None, "hardlink" if not same_device else "hardlink-perm"
    if mode in ("auto", "reflink"):
        if _can_clone(source, info.st_dev, folder):
            return "reflink", ""
        if mode == "reflink":
            return None, "reflink"
    return "copy", ""


def find_reuse(index: ReuseIndex, name: str, size: int | None, sha256: str | None, target: Path,
               mode: str = "auto", *, report: Callable[[str], None] | None = None,
               rejected: list[tuple[Path, str]] | None = None) -> Reuse | None:
    """The first candidate for ``target`` that holds the right bytes, and how it would be linked; None when
    there is none (``rejected`` of the result lists the refused ones). With a known SHA-256 each candidate is
    hashed (``report(text)`` hears about files of 1 GiB and more first). An explicit ``mode`` that no candidate
    allows (a hard link across devices) is a WangpError, raised before anything is hashed or written.
    ``rejected``: a list that also gets the refused candidates when there is no reuse (for the plan)."""
    if mode not in LINK_MODES:
        raise WangpError(f"unknown link mode '{clean(mode)}'", code="link-mode",
                         hint="choose one of: " + ", ".join(LINK_MODES))
    if size is None and not sha256:
        return None
    target = Path(target)
    rejected = [] if rejected is None else rejected
    blocked: tuple[Path, str] | None = None  # the first candidate the explicit mode cannot use, and why
    for candidate in index.candidates(name, size, sha256):
        try:
            info = os.stat(candidate)
            if target.exists() and os.path.samefile(candidate, target):
                continue  # the target itself
            if not os.access(candidate, os.R_OK):
                rejected.append((candidate, "cannot be read"))
                continue
            method, problem = _method(candidate, info, target, mode)
            if method is None:
                blocked = blocked or (candidate, problem)
                rejected.append((candidate, _MODE_PROBLEMS[problem][0]))
                continue
            if sha256:
                if report and info.st_size >= SLOW_HASH:
                    report(f"verifying {clean(candidate)} ({info.st_size:,} bytes) for reuse...")
                digest = _digest(candidate, info)
                if digest != sha256.lower():
                    why = f"SHA-256 differs (got {digest[:12]}..., expected {sha256.lower()[:12]}...)"
                    rejected.append((candidate, why))
                    continue
        except OSError as exc:
            rejected.append((candidate, f"cannot be read: {exc.strerror or exc}"))
            continue
        return Reuse(candidate, method, True if sha256 else None, list(rejected), mode)
    if blocked:
        reason, hint = _MODE_PROBLEMS[blocked[1]]
        raise WangpError(f"cannot reuse {clean(blocked[0])} for {clean(target.name)} with --link-mode {mode}: "
                         f"it is {reason}", code="link-mode", hint=hint)
    return None


def materialize(reuse: Reuse, target: Path, *, sha256: str | None = None) -> str:
    """Make ``target`` from ``reuse.source``; returns the method used ("hardlink", "reflink" or "copy").

    Never overwrites: an existing target is an error (only missing files are reused). Under the target's lock
    (as a download holds it). A hard link is made at the final name directly (``os.link`` never replaces); a
    reflink or copy goes to ``.<name>.wangp-link`` first, then is renamed, so even SIGKILL leaves no partial
    file at the final path. In auto mode a hard link that fails (other device, permissions, link count) falls
    to a reflink, then to a copy. A copy with a known ``sha256`` is hashed while it is written (one read of
    the source; re-reading a 20 GB copy would miss the page cache) and renamed only if it matches.
    """
    target = Path(target)
    order = list(LINK_MODES[1:])
    methods = order[order.index(reuse.method):] if reuse.mode == "auto" else [reuse.method]
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}{LINK_SUFFIX}")
    with output_lock(target):
        if os.path.lexists(target):
            raise WangpError(f"{clean(target)} already exists: it is not replaced by a linked file",
                             code="exists", hint="remove it first if it is wrong (wangp download --verify)")
        temp.unlink(missing_ok=True)  # left by a killed run (we hold the lock)
        try:
            return _make(reuse, methods, target, temp, sha256)
        finally:
            temp.unlink(missing_ok=True)  # an error or an interrupt leaves nothing behind


def _make(reuse: Reuse, methods: list[str], target: Path, temp: Path, sha256: str | None) -> str:
    last: OSError | None = None
    for method in methods:
        try:
            _MAKERS[method](reuse.source, target, temp, sha256)
            return method
        except OSError as exc:
            temp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise WangpError(f"the disk is full while copying {clean(reuse.source)} to {clean(target)}",
                                 code="disk-full", hint="free some space, or reuse by hard link or reflink "
                                                        "(--link-mode)") from None
            fallback = _LINK_FALLBACK if method == "hardlink" else _CLONE_FALLBACK
            if method == "copy" or exc.errno not in fallback:
                raise WangpError(f"cannot {method} {clean(reuse.source)} to {clean(target)}: "
                                 f"{exc.strerror or exc}", code="link-from",
                                 hint="check the permissions of both folders") from None
            last = exc
    raise WangpError(f"cannot {reuse.method} {clean(reuse.source)} to {clean(target)}: {last.strerror or last}",
                     code="link-mode", hint="use --link-mode auto (falls back to a copy)")


def _hardlink(source: Path, target: Path, temp: Path, sha256: str | None) -> None:
    os.link(source, target, follow_symlinks=True)


def _reflink(source: Path, target: Path, temp: Path, sha256: str | None) -> None:
    with open(source, "rb") as src, open(temp, "xb") as dest:
        _clone(src.fileno(), dest.fileno())
    os.replace(temp, target)


def _copy(source: Path, target: Path, temp: Path, sha256: str | None) -> None:
    if not sha256:
        with open(temp, "xb"):
            pass
        shutil.copyfile(source, temp)  # copy_file_range / sendfile: the bytes never enter Python
    else:
        hasher, buffer = hashlib.sha256(), bytearray(_BLOCK)
        view = memoryview(buffer)
        with open(source, "rb") as src, open(temp, "xb") as dest:
            while count := src.readinto(buffer):
                hasher.update(view[:count])
                dest.write(view[:count])
        if hasher.hexdigest() != sha256.lower():
            temp.unlink(missing_ok=True)
            raise WangpError(f"{clean(source)} changed while it was copied: its SHA-256 no longer matches; "
                             f"nothing was kept", code="link-from", hint="run again (it is downloaded instead "
                                                                         "if it still differs)")
    with open(temp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temp, target)


_MAKERS = {"hardlink": _hardlink, "reflink": _reflink, "copy": _copy}


def reuse_disk_space(reuse: Reuse | None, size: int | None) -> int:
    """Bytes a reuse still needs on the target's disk: 0 for a link, the size for a copy."""
    return (size or 0) if reuse is not None and reuse.method == "copy" else 0


__all__ = ["ENV_VAR", "LINK_MODES", "LINK_SUFFIX", "Reuse", "ReuseIndex", "find_reuse", "is_own_temporary",
           "link_dirs", "materialize", "reuse_disk_space"]
