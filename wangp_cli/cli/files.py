"""``wangp files``, ``wangp rm``, ``wangp gc``: what ckpts/ and loras/ hold, and freeing disk space safely."""

from __future__ import annotations

import sys
from typing import Annotated, List, Optional

import typer

from wangp_cli.cli._options import DataFormat, FormatOption
from wangp_cli.cli._output import emit, emit_json, handle_errors, log, open_home, warn
from wangp_cli.cli._tables import print_table


KeepOption = Annotated[Optional[List[str]], typer.Option(
    "--keep", help="A glob of files never removed, relative to the home (e.g. 'ckpts/pose/**', "
                   "'loras/mine_*.safetensors'); repeatable.", show_default=False)]


def _references(ctx: typer.Context, extra_ids: tuple[str, ...] = (), keep: list[str] | None = None):
    from wangp_cli.download.disk import build_references
    from wangp_cli.download.wangp_files import check_pattern

    for pattern in keep or ():
        check_pattern(pattern)
    refs = build_references(open_home(ctx), extra_ids, keep=tuple(keep or ()))
    for text in refs.warnings:
        warn(text)
    return refs


def _state_text(item) -> str:
    if item.state == "partial":
        of = f" of {item.expected:,}" if item.expected is not None else ""
        return f"partial ({item.size:,}{of} here{', downloading' if item.running else ''})"
    if item.state == "truncated" and item.expected is not None:
        return f"truncated (header says {item.expected:,})"
    if item.state == "link":
        return "symlink" + (" (outside the home)" if item.outside else "")
    return item.state


def _marks(item) -> str:
    marks = []
    if item.link is not None:
        marks.append(f"-> {item.link}")
    if item.hard_linked:
        marks.append(f"hard link x{item.nlink}: removing one name frees nothing")
    if item.on_disk != item.path:
        marks.append(f"on disk: {item.on_disk}")
    if item.kept_by:
        marks.append(f"kept: {item.kept_by}")
    return "; ".join(marks)


@handle_errors
def files_command(
    ctx: typer.Context,
    unused: Annotated[bool, typer.Option("--unused", help="Only the files no definition uses.")] = False,
    format: FormatOption = DataFormat.text,
) -> None:
    """List every file under ckpts/ and loras/: size, state and the definitions that use it.

    state: complete (a .safetensors whose size matches its header), truncated (shorter than its header says),
    invalid, partial (an interrupted or running download: bytes here of the size), complete-unchecked (other
    files), symlink. A definition uses a file when WanGP 12 or WanGP 7 would look for it, for any variant;
    component folders (ckpts/<repo>/) count as a whole. Hard-linked files are marked: removing one name frees
    no space. Nothing here imports torch or touches the network.

    Examples: wangp files; wangp files --unused; wangp files --format json
    """
    from wangp_cli.download.disk import inventory, short_users

    home = open_home(ctx)
    refs = _references(ctx)
    found = inventory(home, refs)
    shown = [f for f in found.files if f.unused] if unused else found.files
    summary = {"files": len(found.files), "bytes": found.total_bytes,
               "unused_files": sum(f.unused for f in found.files), "unused_bytes": found.unused_bytes}
    if format is DataFormat.json:
        emit_json({"schema": "wangp.files/1", "home": str(home.root), "files": [f.to_dict() for f in shown],
                   "warnings": refs.warnings, "summary": summary})
        return
    if shown:
        print_table(["path", "size", "state", "users", "notes"],
                    [[f.path, f"{f.size:,}", _state_text(f), short_users(f.users) or "-", _marks(f)]
                     for f in shown])
    else:
        emit("No unused files." if unused else "No files under ckpts/ or loras/.")
    emit(f"{summary['files']} file{'s' * (summary['files'] != 1)}, {summary['bytes']:,} bytes; "
         f"{summary['unused_files']} unused, {summary['unused_bytes']:,} bytes")


def _print_removal(removal, *, done: bool, format: DataFormat, schema: str, extra: dict | None = None) -> None:
    if format is DataFormat.json:
        emit_json({"schema": schema, "deleted": done, **removal.to_dict(), **(extra or {})})
        return
    verb = "removed" if done else "would remove"
    for path, size, why in removal.remove:
        emit(f"{verb:12} {size:>16,}  {path}  ({why})")
    for path, why in removal.kept:
        emit(f"kept: {path} ({why})")
    for path in removal.linked:
        emit(f"note: {path} has other hard links: its bytes stay on disk")
    for path, error in removal.failed:
        warn(f"could not remove {path}: {error}")
    count = len(removal.remove) - len(removal.failed)
    emit(f"{count} file{'s' * (count != 1)}, {removal.bytes:,} bytes {'removed' if done else 'to remove'} "
         f"({removal.freed:,} bytes {'freed' if done else 'would be freed'})")


def _confirm(count: int, size: int) -> None:
    from wangp_cli.core.errors import UsageError

    if not sys.stdin.isatty():
        raise UsageError("rm asks before removing files, and standard input is not a terminal",
                         hint="pass --yes to remove without asking (or --dry-run to see what would go)")
    if not typer.confirm(f"Remove {count} file{'s' * (count != 1)} ({size:,} bytes)?", default=False,
                         err=True):
        raise typer.Exit(1)


@handle_errors
def rm_command(
    ctx: typer.Context,
    model_ids: Annotated[List[str], typer.Argument(help="Definition ids whose files go.", show_default=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")]
    = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed when not on a terminal).")] = False,
    keep: KeepOption = None,
    format: FormatOption = DataFormat.text,
) -> None:
    """Remove the files of definitions that no other definition uses.

    Every file (and partial download) under ckpts/ and loras/ that these definitions use, for any variant, and
    no other definition of the home does; a shared file is kept and named ("kept: ckpts/x (also used by y)").
    The definition JSON files stay. A symlink is removed as a link, never its target; nothing outside ckpts/
    and loras/ is touched. Asks first on a terminal; elsewhere pass --yes.

    Examples: wangp rm t2v_old --dry-run; wangp rm t2v_old i2v_old --yes
    """
    from wangp_cli.core.definitions import Catalog
    from wangp_cli.core.errors import NotFoundError
    from wangp_cli.download.disk import TARGETS, execute, inventory, plan_rm

    home = open_home(ctx)
    if not dry_run and not yes and not sys.stdin.isatty():
        _confirm(0, 0)  # fails before any work: a script must say --yes
    catalogs = [Catalog(home, target) for target in TARGETS]
    for model_id in model_ids:
        if all(c.find(model_id) is None for c in catalogs):
            catalogs[0].get(model_id)  # the catalog's own error (unknown id, or a broken file)
            raise NotFoundError(f"unknown model id '{model_id}'")  # pragma: no cover
    refs = _references(ctx, tuple(model_ids), keep)
    if refs.unreadable:
        _refuse_unreadable(refs)
    removal = plan_rm(inventory(home, refs), model_ids)
    if not removal.remove:
        _print_removal(removal, done=False, format=format, schema="wangp.rm/1")
        log(ctx, f"nothing to remove for {', '.join(model_ids)}")
        return
    if dry_run:
        _print_removal(removal, done=False, format=format, schema="wangp.rm/1")
        return
    if not yes:
        if format is DataFormat.text:
            _print_removal(removal, done=False, format=format, schema="wangp.rm/1")
        _confirm(len(removal.remove), removal.bytes)
    execute(home, removal)
    _print_removal(removal, done=True, format=format, schema="wangp.rm/1")
    if removal.failed:
        raise typer.Exit(1)


def _refuse_unreadable(refs) -> None:
    from wangp_cli.core.errors import WangpError

    raise WangpError(f"cannot tell which files {', '.join(refs.unreadable)} needs: it cannot be read; nothing "
                     f"was removed", code="E1",
                     hint="make it readable (chmod a+r), or move it out of finetunes/ and defaults/")


@handle_errors
def gc_command(
    ctx: typer.Context,
    delete: Annotated[bool, typer.Option("--delete", help="Remove them (without it: only list what would go).")]
    = False,
    loras: Annotated[bool, typer.Option("--loras", help="Also the files under loras/ that no definition names. "
                                        "LoRAs you put there by hand are never named by a definition: check the "
                                        "list first.")] = False,
    keep: KeepOption = None,
    format: FormatOption = DataFormat.text,
) -> None:
    """Free disk space: partial downloads, stale locks, and files no definition uses (a dry run by default).

    Lists partial downloads whose transfer is not running (a running one holds its lock: it is left alone),
    their metadata, lock files nobody holds, metadata without a partial file, and files under ckpts/ that no
    definition of the home uses for any variant (WanGP 12 or 7); --delete removes them, then the folders it
    emptied. Files under loras/ are left alone unless --loras: you add your own LoRAs there by hand. A symlink
    is removed as a link, never its target. WanGP's own shared files that no definition names (its VAEs,
    tokenizers, preprocessing models: a table read from WanGP's source) are kept, and so is whatever --keep
    matches.

    Examples: wangp gc; wangp gc --delete; wangp gc --keep 'ckpts/my_tools/**' --delete; wangp gc --loras
    """
    from wangp_cli.download.disk import execute, inventory, plan_gc

    home = open_home(ctx)
    refs = _references(ctx, keep=keep)
    if refs.unreadable and delete:
        _refuse_unreadable(refs)
    removal, spared = plan_gc(inventory(home, refs), loras=loras)
    extra = {"loras_spared": [{"path": f.on_disk, "bytes": f.size} for f in spared]}
    if delete:
        execute(home, removal)
    _print_removal(removal, done=delete, format=format, schema="wangp.gc/1", extra=extra)
    if format is DataFormat.text:
        if spared:
            emit(f"loras/: {len(spared)} file{'s' * (len(spared) != 1)} no definition names "
                 f"({sum(f.size for f in spared):,} bytes) kept: pass --loras to include them")
        if not delete and removal.remove:
            emit("run with --delete to remove them")
    if removal.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("files")(files_command)
    app.command("rm")(rm_command)
    app.command("gc")(gc_command)
