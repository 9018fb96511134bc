"""What is on disk under ``ckpts/`` and ``loras/``, who uses it, and what can go (``wangp files``, ``rm``, ``gc``).

Pure Python and the standard library: no network, no huggingface_hub, no torch. The rule everything here keeps:
a file that a definition of the home may need is never removed. "May need" is every place WanGP looks for any
variant of any file of a definition, planned for both WanGP 12 and WanGP 7 (July); a definition that cannot be
planned protects every file whose name appears anywhere in its text.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core.definitions import Catalog, Source
from wangp_cli.core.errors import WangpError
from wangp_cli.core.home import Home
from wangp_cli.core.locks import LOCK_SUFFIX, is_current
from wangp_cli.core.variants import LORA_ROOT, Preference
from wangp_cli.download.plan import build_plan
from wangp_cli.download.ranges import pieces_from_json
from wangp_cli.download.reuse import LINK_SUFFIX
from wangp_cli.download.transfer import META_SUFFIX, PART_SUFFIX
from wangp_cli.download.wangp_files import is_wangp_own, matches

ROOTS = ("ckpts", LORA_ROOT)  # the only folders these commands look into, and remove from
TARGETS = ("v12", "july")  # a file either WanGP version would use is in use
_SAFETENSORS = (".safetensors", ".sft")
_HEADER_LIMIT = 100 * 1024 * 1024  # safetensors refuses larger headers too
#: Our own temporary names beside a target: (suffix, kind). Part files are listed (under their target's name);
#: the others are never listed as files, only removed by gc when stale.
_TEMPORARIES = ((META_SUFFIX + ".tmp", "meta-tmp"), (META_SUFFIX, "meta"), (PART_SUFFIX, "part"),
                (LINK_SUFFIX, "link-tmp"), (LOCK_SUFFIX, "lock"))


# ---------------------------------------------------------------------------------------------- references ---

@dataclass
class References:
    """Which definitions use which home-relative path (POSIX, ``ckpts/...``)."""

    files: dict[str, set[str]] = field(default_factory=dict)  # exact path -> ids
    folders: dict[str, set[str]] = field(default_factory=dict)  # a component folder (every file below) -> ids
    by_name: dict[str, tuple[str, ...]] = field(default_factory=dict)  # unplannable id -> its strings (or text)
    ids: set[str] = field(default_factory=set)  # every definition id of the home
    warnings: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # definition files whose text cannot be read at all
    keep: tuple[str, ...] = ()  # --keep patterns (home-relative globs): files never removed

    def kept_by(self, path: str) -> str | None:
        """Why ``path`` stays whatever definitions use: WanGP's own shared file (download.wangp_files), or a
        --keep pattern; None otherwise."""
        if is_wangp_own(path):
            return "WanGP's own shared file"
        matched = next((pattern for pattern in self.keep if matches(path, pattern)), None)
        return f"--keep {matched}" if matched else None

    def add(self, path: str, owner: str, *, folder: bool = False) -> None:
        (self.folders if folder else self.files).setdefault(path, set()).add(owner)

    def users(self, path: str, *, folder: bool = False) -> set[str]:
        """The ids that use ``path`` (a home-relative POSIX path); ``folder``: a symlinked folder, used when
        anything below it is."""
        found = set(self.files.get(path, ()))
        for prefix, owners in self.folders.items():
            if path.startswith(prefix + "/") or (folder and (path == prefix or prefix.startswith(path + "/"))):
                found |= owners
        if folder:
            for name, owners in self.files.items():
                if name.startswith(path + "/"):
                    found |= owners
        name = path.rsplit("/", 1)[-1]
        found |= {owner for owner, strings in self.by_name.items() if any(name in text for text in strings)}
        return found


def _relative(home_root: Path, path: str) -> list[str]:
    """``path`` as written in a plan (relative to the home, or absolute inside it) -> home-relative POSIX forms
    (the lexical one and, for absolute paths, the one through resolved links)."""
    path = path.replace("\\", "/")
    if not os.path.isabs(path):
        return [os.path.normpath(path).replace(os.sep, "/")]
    forms = []
    for root, target in ((os.path.abspath(home_root), os.path.abspath(path)),
                         (os.path.realpath(home_root), os.path.realpath(path))):
        relative = os.path.relpath(target, root)
        if relative != os.pardir and not relative.startswith(os.pardir + os.sep):
            forms.append(relative.replace(os.sep, "/"))
    return forms


def _strings(value) -> list[str]:
    """Every string (keys included) of a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [k, *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _texts_of(source: Source) -> tuple[str, ...] | None:
    """What a definition that cannot be planned may name: its strings, else its raw text (None: unreadable)."""
    if source.error is None and source.data is not None:
        return tuple(_strings(source.data))
    if source.text:
        return (source.text,)
    try:
        return (source.path.read_bytes().decode("utf-8", "replace"),)
    except OSError:
        return None


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def build_references(home: Home, extra_ids: tuple[str, ...] = (), targets: tuple[str, ...] = TARGETS,
                     keep: tuple[str, ...] = ()) -> References:
    """Plan every definition of the home alone (hidden ones included, every variant, components) for each target,
    and take the union. ``extra_ids`` (e.g. a base id named by ``wangp rm``) are planned too; ``keep``: globs of
    files kept whatever uses them."""
    refs = References(keep=tuple(keep))
    failed: dict[str, list[str]] = {}  # id -> why it could not be planned, per target
    planned: set[str] = set()  # ids that at least one target could plan
    sources: dict[str, Source] = {}
    for target in targets:
        catalog = Catalog(home, target)
        for source in catalog.broken:
            sources.setdefault(source.id, source)
            failed.setdefault(source.id, []).append(source.definition_problem or "unusable")
        ids = set(catalog.ids(include_hidden=True))
        refs.ids |= ids | {s.id for s in catalog.broken if _is_regular(s.path)}
        for model_id in sorted(ids | {i for i in extra_ids if catalog.find(i) is not None}):
            definition = catalog.definitions.get(model_id)
            if definition is not None and definition.source is not None:
                sources.setdefault(model_id, definition.source)
            try:
                plan = build_plan(catalog, [model_id], Preference(), all_variants=True, components=True)
            except Exception as exc:  # noqa: BLE001 - whatever stops the plan, the files must stay protected
                why = exc.message if isinstance(exc, WangpError) else f"{type(exc).__name__}: {exc}"
                failed.setdefault(model_id, []).append(f"{target}: {why}")
                continue
            planned.add(model_id)
            for item in plan.files:
                for path in {item.dest, *item.lookup}:
                    for form in _relative(home.root, path):
                        refs.add(form, model_id)
            for request in plan.components:
                refs.add(request.dest, model_id, folder=True)
    for model_id, reasons in sorted(failed.items()):
        if model_id in planned:
            continue  # one WanGP version cannot load it (a WanGP 12 definition in July's format): nothing to keep
        source = sources.get(model_id)
        if source is None or not _is_regular(source.path):
            continue  # a base id no file of the home defines; a folder or FIFO named *.json (list reports it)
        texts = _texts_of(source)
        if texts is None:
            refs.unreadable.append(source.display)
            refs.warnings.append(f"{source.display} cannot be read: the files it names cannot be known")
            continue
        refs.by_name[model_id] = texts
        refs.warnings.append(f"{source.display} cannot be read as a definition ({'; '.join(dict.fromkeys(reasons))}"
                             f"): its files are kept (every file whose name it contains)")
    return refs


# ----------------------------------------------------------------------------------------------- inventory ---

@dataclass
class DiskFile:
    """One entry under ckpts/ or loras/: a file, a symlink, or a partial download (listed under its target)."""

    path: str  # home-relative POSIX name: the target's name for a partial download
    on_disk: str  # the name on disk (the part file for a partial download)
    size: int  # bytes on disk (a symlink: 0, it frees nothing)
    state: str  # complete, complete-unchecked, partial, truncated, invalid, link, special
    expected: int | None = None  # partial: the full size; truncated/invalid: the size its header announces
    users: tuple[str, ...] = ()
    link: str | None = None  # a symlink's target as written
    outside: bool = False  # a symlink whose target lies outside the home
    nlink: int = 1
    inode: tuple[int, int] = (0, 0)
    running: bool = False  # a partial download whose transfer holds its lock now
    kept_by: str | None = None  # why it is never removed, whoever uses it (WanGP's own file, --keep)

    @property
    def unused(self) -> bool:
        return not self.users and self.kept_by is None

    @property
    def hard_linked(self) -> bool:
        return self.nlink > 1 and self.link is None

    @property
    def root(self) -> str:
        return self.path.split("/", 1)[0]

    def to_dict(self) -> dict:
        return {"path": self.path, "on_disk": self.on_disk, "size": self.size, "state": self.state,
                "expected_size": self.expected, "users": list(self.users), "unused": self.unused,
                "symlink": self.link, "symlink_outside_home": self.outside, "hard_links": self.nlink,
                "downloading": self.running,
                "kept_by": self.kept_by}


def temporary_kind(name: str) -> tuple[str, str] | None:
    """(kind, target name) for our own temporaries ``.<name>.wangp-part`` / ``-part.json`` / ``-lock``."""
    if not name.startswith("."):
        return None
    for suffix, kind in _TEMPORARIES:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return kind, name[1:-len(suffix)]
    return None


def safetensors_state(path: Path, size: int) -> tuple[str, int | None]:
    """(complete | truncated | invalid, the size the header announces): the 8-byte header length, the JSON
    header, the largest ``data_offsets`` end; the file must end exactly there (as safetensors checks)."""
    try:
        with open(path, "rb") as handle:
            start = handle.read(8)
            if len(start) < 8:
                return "truncated", None
            length = int.from_bytes(start, "little")
            if length > _HEADER_LIMIT:
                return "invalid", None
            if 8 + length > size:
                return "truncated", None
            header = json.loads(handle.read(length))
    except (OSError, ValueError):
        return "invalid", None
    if not isinstance(header, dict):
        return "invalid", None
    ends = [info["data_offsets"][1] for key, info in header.items() if key != "__metadata__"
            and isinstance(info, dict) and isinstance(info.get("data_offsets"), list)
            and len(info["data_offsets"]) == 2 and isinstance(info["data_offsets"][1], int)]
    expected = 8 + length + max(ends, default=0)
    return ("complete" if expected == size else "truncated" if size < expected else "invalid"), expected


def lock_held(lock: Path) -> bool:
    """Whether a running transfer holds ``lock`` now (tested without waiting; the file is left as it is)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock: assume nothing runs
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases our lock
    return False


def _part_progress(meta: Path, length: int) -> tuple[int, int | None]:
    """(bytes fetched, full size) of a partial file of ``length`` bytes, from its metadata: a part written by
    ranges records its pieces (the file has its full length, holes included: what the transfer would keep, as
    download.ranges reads them), one written in order is all fetched bytes."""
    try:
        recorded = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return length, None
    recorded = recorded if isinstance(recorded, dict) else {}
    size = recorded.get("size") if isinstance(recorded.get("size"), int) else None
    pieces = pieces_from_json(size, recorded["pieces"]) if size is not None and "pieces" in recorded else None
    return (min(pieces.done, length) if pieces else length), size


def _inside(home_root: Path, path: Path) -> bool:
    """Whether ``path`` (links followed) lies in the home, or in its ckpts/ or loras/ where those are links."""
    real = os.path.realpath(path)
    bases = {os.path.realpath(home_root), *(os.path.realpath(home_root / top) for top in ROOTS)}
    return any(os.path.commonpath([base, real]) == base for base in bases)


@dataclass
class Leftover:
    """One of our temporaries: a metadata file, a lock, a --link-from copy in progress (never listed as a file)."""

    on_disk: str
    kind: str  # meta, lock or link-tmp
    size: int
    stale: bool  # meta: no part file beside it; lock, link-tmp: nobody holds the lock


@dataclass
class Inventory:
    files: list[DiskFile] = field(default_factory=list)
    leftovers: list[Leftover] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return _unique_bytes(self.files)

    @property
    def unused_bytes(self) -> int:
        return _unique_bytes([f for f in self.files if f.unused])


def _unique_bytes(files: list[DiskFile]) -> int:
    """Bytes of ``files``, a hard-linked inode counted once."""
    seen, total = set(), 0
    for item in files:
        if item.inode in seen and item.inode != (0, 0):
            continue
        seen.add(item.inode)
        total += item.size
    return total


def inventory(home: Home, refs: References | None = None) -> Inventory:
    """Every entry under ckpts/ and loras/ (recursively; symlinked folders are listed, never entered), with
    state and users. ``refs`` None: no users (every file unused)."""
    found = Inventory()
    root = home.root
    for top in ROOTS:
        base = root / top
        if not base.is_dir():
            continue
        for folder, dirs, names in os.walk(base, onerror=None):
            relative_folder = os.path.relpath(folder, root).replace(os.sep, "/")
            linked_dirs = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
            dirs[:] = sorted(d for d in dirs if d not in linked_dirs)
            for name in sorted(names + linked_dirs):
                _add_entry(found, root, Path(folder) / name, f"{relative_folder}/{name}", name)
    if refs is not None:
        _assign_users(found, refs, root)
    found.files.sort(key=lambda f: (f.path, f.on_disk))
    return found


def _add_entry(found: Inventory, root: Path, path: Path, relative: str, name: str) -> None:
    try:
        info = os.lstat(path)
    except OSError:
        return  # removed meanwhile
    inode = (info.st_dev, info.st_ino)
    if stat.S_ISLNK(info.st_mode):
        target = os.readlink(path)
        found.files.append(DiskFile(relative, relative, 0, "link", link=target, outside=not _inside(root, path),
                                    inode=inode))
        return
    temporary = temporary_kind(name)
    if temporary and stat.S_ISREG(info.st_mode):
        kind, target = temporary
        parent = relative.rsplit("/", 1)[0]
        if kind == "part":
            meta = path.with_name(f".{target}{META_SUFFIX}")
            lock = path.with_name(f".{target}{LOCK_SUFFIX}")
            here, size = _part_progress(meta, info.st_size)
            found.files.append(DiskFile(f"{parent}/{target}", relative, here, "partial", expected=size,
                                        nlink=info.st_nlink, inode=inode,
                                        running=lock_held(lock)))
        elif kind == "meta":
            found.leftovers.append(Leftover(relative, kind, info.st_size,
                                            not path.with_name(f".{target}{PART_SUFFIX}").exists()))
        elif kind in ("meta-tmp", "link-tmp"):  # being written under the target's lock, or left by a killed run
            found.leftovers.append(Leftover(relative, "meta" if kind == "meta-tmp" else kind, info.st_size,
                                            not lock_held(path.with_name(f".{target}{LOCK_SUFFIX}"))))
        else:
            found.leftovers.append(Leftover(relative, kind, info.st_size, not lock_held(path)))
        return
    if not stat.S_ISREG(info.st_mode):
        found.files.append(DiskFile(relative, relative, 0, "special", inode=inode))
        return
    state, expected = "complete-unchecked", None
    if name.lower().endswith(_SAFETENSORS):
        state, expected = safetensors_state(path, info.st_size)
    found.files.append(DiskFile(relative, relative, info.st_size, state, expected=expected, nlink=info.st_nlink,
                                inode=inode))


def _assign_users(found: Inventory, refs: References, root: Path) -> None:
    """Users by name; a symlink passes its users on to the file it points at when that file is listed here
    (removing it would break the link), through chains of links too."""
    by_path: dict[str, list[DiskFile]] = {}
    for item in found.files:
        is_folder = item.link is not None and os.path.isdir(root / item.path)
        item.users = tuple(sorted(refs.users(item.path, folder=is_folder)))
        item.kept_by = refs.kept_by(item.path)
        by_path.setdefault(item.path, []).append(item)
    links = [(item, _link_target(root, item)) for item in found.files if item.link is not None]
    for _ in range(len(links)):  # each pass carries users one link further along a chain
        changed = False
        for item, target in links:
            for pointed in by_path.get(target or "", []) if item.users else []:
                users = tuple(sorted(set(pointed.users) | set(item.users)))
                changed |= users != pointed.users
                pointed.users = users
        if not changed:
            break


def _link_target(root: Path, item: DiskFile) -> str | None:
    """The home-relative name a symlink points at, when that lies under ckpts/ or loras/ (even where those are
    links themselves to another disk); None otherwise."""
    target = item.link or ""
    if not os.path.isabs(target):
        folder = item.path.rsplit("/", 1)[0]
        lexical = os.path.normpath(f"{folder}/{target}").replace(os.sep, "/")
        if lexical.split("/", 1)[0] in ROOTS:
            return lexical
        target = os.path.join(root, folder, target)
    real = os.path.realpath(target)
    for top in ROOTS:
        base = os.path.realpath(root / top)
        if os.path.commonpath([base, real]) == base:
            relative = os.path.relpath(real, base).replace(os.sep, "/")
            return top if relative == "." else f"{top}/{relative}"
    return None


# -------------------------------------------------------------------------------------------------- removal ---

@dataclass
class Removal:
    """What ``rm`` / ``gc`` removes (or would): entries with the reason, and what it keeps and why."""

    remove: list[tuple[str, int, str]] = field(default_factory=list)  # (home-relative path on disk, bytes, why)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    freed: int = 0  # bytes that leave the disk (a hard-linked file's bytes stay while another name holds them)
    linked: list[str] = field(default_factory=list)  # removed names whose bytes stay (other hard links)
    removed_folders: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, error)
    _entries: list[DiskFile] = field(default_factory=list, repr=False)

    @property
    def bytes(self) -> int:
        return sum(size for _, size, _ in self.remove)

    def to_dict(self) -> dict:
        return {"remove": [{"path": p, "bytes": b, "reason": r} for p, b, r in self.remove],
                "kept": [{"path": p, "reason": r} for p, r in self.kept],
                "hard_linked": self.linked, "removed_folders": self.removed_folders,
                "failed": [{"path": p, "error": e} for p, e in self.failed],
                "summary": {"files": len(self.remove), "bytes": self.bytes, "freed_bytes": self.freed}}


REASONS = {
    "only": "used only by {ids}",
    "unused": "no definition uses it",
    "part": "an interrupted download",
    "meta": "metadata of a partial download that is gone",
    "lock": "a lock nobody holds",
    "link-tmp": "a copy or reflink (--link-from) left by an interrupted run",
    "link": "a symbolic link (its target is left alone)",
}


def _freed(entries: list[DiskFile]) -> tuple[int, list[str]]:
    """Bytes removing ``entries`` frees: an inode's bytes go only when every one of its names goes."""
    names: dict[tuple[int, int], list[DiskFile]] = {}
    for item in entries:
        names.setdefault(item.inode, []).append(item)
    freed, linked = 0, []
    for group in names.values():
        first = group[0]
        if first.link is not None:
            continue
        if len(group) >= first.nlink:
            freed += first.size
        else:
            linked += [g.on_disk for g in group]
    return freed, sorted(linked)


def _take(removal: Removal, item: DiskFile, why: str) -> None:
    removal._entries.append(item)
    removal.remove.append((item.on_disk, item.size, REASONS["link"] if item.link is not None else why))


def plan_rm(found: Inventory, ids: list[str]) -> Removal:
    """The entries used by ``ids`` and by no other definition (part files included); shared ones are kept."""
    wanted = set(ids)
    removal = Removal()
    for item in found.files:
        mine = wanted & set(item.users)
        if not mine:
            continue
        others = sorted(set(item.users) - wanted)
        if others:
            removal.kept.append((item.on_disk, f"also used by {_short(others, 4)}"))
        elif item.kept_by and item.state != "partial":
            removal.kept.append((item.on_disk, item.kept_by))
        elif item.running:
            removal.kept.append((item.on_disk, "a download of it is running"))
        elif item.state != "special":
            _take(removal, item, REASONS["only"].format(ids=", ".join(sorted(mine))))
    leftover_bytes = _add_leftovers(removal, found, {p for p, _, _ in removal.remove})
    removal.freed, removal.linked = _freed(removal._entries)
    removal.freed += leftover_bytes
    return removal


def plan_gc(found: Inventory, *, loras: bool = False) -> tuple[Removal, list[DiskFile]]:
    """Partial downloads that no transfer runs, stale locks and metadata, files no definition uses under ckpts/
    (and loras/ with ``loras``). Also returns the unused LoRA files left alone without ``loras``."""
    removal, spared = Removal(), []
    for item in found.files:
        if item.running:
            removal.kept.append((item.on_disk, "a download of it is running"))
        elif item.state == "partial":
            _take(removal, item, REASONS["part"])  # resumable, but no run is finishing it
        elif item.kept_by and not item.users:
            removal.kept.append((item.on_disk, item.kept_by))
        elif item.unused and item.state != "special":
            if item.root == LORA_ROOT and not loras:
                spared.append(item)
            else:
                _take(removal, item, REASONS["unused"])
    leftover_bytes = _add_leftovers(removal, found, {p for p, _, _ in removal.remove}, every_stale=True)
    removal.freed, removal.linked = _freed(removal._entries)
    removal.freed += leftover_bytes
    return removal, spared


def _add_leftovers(removal: Removal, found: Inventory, removed: set[str], every_stale: bool = False) -> int:
    """The metadata, locks and link temporaries that go with removed part files (and, for gc, every stale one);
    returns their bytes (freed: nothing else names them)."""
    gone_targets, added = set(), 0
    for on_disk in removed:
        folder, _, name = on_disk.rpartition("/")
        kind = temporary_kind(name)
        gone_targets.add(f"{folder}/{kind[1]}" if kind else on_disk)
    for leftover in found.leftovers:
        folder, _, name = leftover.on_disk.rpartition("/")
        target = f"{folder}/{temporary_kind(name)[1]}"
        belongs = target in gone_targets and (leftover.kind == "meta" or leftover.stale)
        if belongs or (every_stale and leftover.stale):
            removal.remove.append((leftover.on_disk, leftover.size, REASONS[leftover.kind]))
            added += leftover.size
    return added


def execute(home: Home, removal: Removal) -> Removal:
    """Remove what ``removal`` lists: each name unlinked (a symlink as a link), never outside ckpts/ and loras/,
    a part file only while holding its transfer's lock (a download starting meanwhile waits, then starts over);
    then the folders that became empty. Failures are collected, not raised."""
    root = home.root
    emptied = set()
    for on_disk, _, _ in removal.remove:
        path = _checked(root, on_disk)
        try:
            _unlink_locked(path)
            emptied.add(path.parent)
        except FileNotFoundError:
            pass
        except OSError as exc:
            removal.failed.append((on_disk, exc.strerror or str(exc)))
    tops = {os.path.abspath(root / top) for top in ROOTS}
    for folder in sorted(emptied, key=lambda p: -len(p.parts)):
        current = folder
        while os.path.abspath(current) not in tops and _checked_folder(root, current):
            try:
                current.rmdir()
            except OSError:
                break
            removal.removed_folders.append(os.path.relpath(current, root).replace(os.sep, "/"))
            current = current.parent
    return removal


def _checked(root: Path, relative: str) -> Path:
    """``root/relative``, refusing anything not below ckpts/ or loras/ of the home (by name: links not followed)."""
    parts = relative.split("/")
    if parts[0] not in ROOTS or len(parts) < 2 or ".." in parts or "" in parts or os.path.isabs(relative):
        raise WangpError(f"refusing to remove '{relative}': not inside {' or '.join(r + '/' for r in ROOTS)}",
                         code="E12")
    return root / relative


def _checked_folder(root: Path, folder: Path) -> bool:
    relative = os.path.relpath(folder, root).replace(os.sep, "/")
    parts = relative.split("/")
    return parts[0] in ROOTS and len(parts) >= 2 and ".." not in parts and not os.path.islink(folder)


def _unlink_locked(path: Path) -> None:
    """Unlink ``path``; for a part file or a target, under its transfer lock (skipped, as in use, if held)."""
    kind = temporary_kind(path.name)
    if kind and kind[0] == "lock":
        _unlink_lock(path)
        return
    target = kind[1] if kind else path.name
    lock = path.with_name(f".{target}{LOCK_SUFFIX}")
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        os.unlink(path)
        return
    if not path.parent.is_dir() or os.path.islink(path.parent):
        os.unlink(path)
        return
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError(f"a transfer holds {lock.name} now: left alone") from None
        try:
            os.unlink(path)
        finally:
            if is_current(fd, lock):
                with contextlib.suppress(OSError):
                    os.unlink(lock)
    finally:
        os.close(fd)


def _unlink_lock(lock: Path) -> None:
    """Remove a lock file only while nobody holds it (taken, checked to be the same file, then unlinked)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return
    fd = os.open(lock, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OSError("a transfer holds it now: left alone") from None
        if is_current(fd, lock):
            os.unlink(lock)
    finally:
        os.close(fd)


def _short(ids: list[str] | tuple[str, ...], shown: int = 2) -> str:
    """``t2v, i2v +12``: the first ``shown`` ids and how many more."""
    ids = list(ids)
    head = ", ".join(ids[:shown])
    return head + (f" +{len(ids) - shown}" if len(ids) > shown else "")


short_users = _short
