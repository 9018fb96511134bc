"""Reuse of files users already have (wangp_cli.download.reuse): real files in tmp_path, inodes compared, bytes
read back. Cross-device cases use /dev/shm when it is another file system than tmp_path."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from wangp_cli.core.errors import WangpError
from wangp_cli.download import reuse as reuse_module
from wangp_cli.download.reuse import (
    ENV_VAR,
    LINK_MODES,
    Reuse,
    ReuseIndex,
    find_reuse,
    is_own_temporary,
    link_dirs,
    materialize,
)

NAME = "wan2.1_t2v_14B_bf16.safetensors"


def blob(seed: int, size: int = 1 << 20) -> bytes:
    """Deterministic bytes (fast: no urandom for every test)."""
    return hashlib.sha256(str(seed).encode()).digest() * (size // 32)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def leftovers(folder: Path) -> list[str]:
    """wangp's temporaries anywhere under ``folder`` (part files, locks, link temporaries)."""
    return sorted(p.name for p in folder.rglob(".*") if is_own_temporary(p.name))


@pytest.fixture
def home(tmp_path) -> Path:
    root = tmp_path / "home"
    root.mkdir()
    return root


@pytest.fixture
def other_device(tmp_path):
    """A folder on another file system than tmp_path (/dev/shm), or a skip saying why there is none."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no writable /dev/shm for a second file system")
    if os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("/dev/shm and tmp_path are on the same device: no cross-device case here")
    folder = Path(tempfile.mkdtemp(prefix="wangp-reuse-", dir=shm))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_good_candidate_is_hard_linked(tmp_path, home):
    data = blob(1)
    source = put(tmp_path / "ComfyUI" / "models" / "diffusion_models" / NAME, data)
    target = home / "ckpts" / NAME  # ckpts/ does not exist yet
    index = ReuseIndex.scan(link_dirs([str(tmp_path / "ComfyUI" / "models")], env={}))

    found = find_reuse(index, NAME, len(data), sha(data), target)

    assert found is not None and found.source == source
    assert (found.method, found.verified, found.rejected) == ("hardlink", True, [])
    assert not target.parent.exists()  # deciding writes nothing
    assert materialize(found, target, sha256=sha(data)) == "hardlink"
    assert target.stat().st_ino == source.stat().st_ino
    assert target.stat().st_nlink == 2
    assert target.read_bytes() == data
    assert leftovers(home) == []


def test_wrong_hash_candidate_rejected_and_next_one_taken(tmp_path, home):
    data = blob(2)
    wrong = put(tmp_path / "a" / NAME, blob(3, len(data)))  # same name and size, other bytes
    good = put(tmp_path / "b" / "loras" / NAME, data)
    index = ReuseIndex.scan([tmp_path / "a", tmp_path / "b"])
    target = home / "ckpts" / NAME

    found = find_reuse(index, NAME, len(data), sha(data), target)

    assert found.source == good
    assert [(path, reason.split(" (")[0]) for path, reason in found.rejected] == [(wrong, "SHA-256 differs")]
    assert materialize(found, target) == "hardlink"
    assert target.stat().st_ino == good.stat().st_ino
    assert wrong.stat().st_nlink == 1 and target.read_bytes() == data


def test_only_wrong_candidates_give_no_reuse(tmp_path, home):
    data = blob(4)
    wrong = put(tmp_path / "a" / NAME, blob(5, len(data)))
    refused = []
    index = ReuseIndex.scan([tmp_path / "a"])
    assert find_reuse(index, NAME, len(data), sha(data), home / "ckpts" / NAME, rejected=refused) is None
    assert [(path, reason.split(" (")[0]) for path, reason in refused] == [(wrong, "SHA-256 differs")]


def test_same_name_other_size_is_ignored(tmp_path, home):
    data = blob(6)
    put(tmp_path / "a" / NAME, data[:-1])
    index = ReuseIndex.scan([tmp_path / "a"])
    assert index.candidates(NAME, len(data), None) == []
    assert find_reuse(index, NAME, len(data), sha(data), home / "ckpts" / NAME) is None


def test_size_only_match_is_unverified(tmp_path, home):
    data = blob(7)
    source = put(tmp_path / "a" / NAME, data)
    found = find_reuse(ReuseIndex.scan([tmp_path / "a"]), NAME, len(data), None, home / "ckpts" / NAME)
    assert (found.source, found.method, found.verified) == (source, "hardlink", None)


def test_no_size_and_no_hash_gives_no_reuse(tmp_path, home):
    put(tmp_path / "a" / NAME, blob(8))
    index = ReuseIndex.scan([tmp_path / "a"])
    assert index.candidates(NAME, None, None) == []
    assert find_reuse(index, NAME, None, None, home / "ckpts" / NAME) is None


def hub_cache(root: Path, data: bytes, path: str = f"split_files/{NAME}", revision: str = "abc123") -> Path:
    """The Hugging Face cache layout: models--o--n/blobs/<sha256> and snapshots/<rev>/<path> -> relative
    symlink to the blob; plus a .no_exist marker (an empty file of a missing name) and a lock."""
    repo = root / "models--owner--name"
    target = put(repo / "blobs" / sha(data), data)
    entry = repo / "snapshots" / revision / path
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.symlink_to(os.path.relpath(target, entry.parent))
    put(repo / ".no_exist" / revision / NAME, b"")
    put(root / ".locks" / "models--owner--name" / f"{sha(data)}.lock", b"")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return target


def test_hub_cache_snapshot_entry_found_and_linked_to_its_blob(tmp_path, home):
    data = blob(9)
    blob_path = hub_cache(tmp_path / "hf" / "hub", data)
    index = ReuseIndex.scan([tmp_path / "hf" / "hub"])
    target = home / "ckpts" / NAME

    found = find_reuse(index, NAME, len(data), sha(data), target)

    assert found.source == blob_path and found.rejected == []
    assert materialize(found, target) == "hardlink"
    assert target.stat().st_ino == blob_path.stat().st_ino and target.read_bytes() == data
    # without a hash, the size only: the empty .no_exist marker of the same name is never a candidate
    assert index.candidates(NAME, len(data), None) == [blob_path]
    assert index.candidates(NAME, 0, None) == []


def test_hub_blob_found_by_sha256_without_a_name(tmp_path, home):
    data = blob(10)
    blob_path = hub_cache(tmp_path / "hub", data, path="other_name.safetensors")
    index = ReuseIndex.scan([tmp_path / "hub"])
    target = home / "ckpts" / NAME

    assert index.candidates(NAME, len(data), None) == []  # the name alone finds nothing
    found = find_reuse(index, NAME, len(data), sha(data), target)
    assert found.source == blob_path and found.verified is True
    assert find_reuse(index, NAME, None, sha(data), target).source == blob_path  # size unknown: the hash decides
    materialize(found, target)
    assert target.stat().st_ino == blob_path.stat().st_ino


def test_copy_mode_gives_an_independent_file(tmp_path, home):
    data = blob(11)
    source = put(tmp_path / "a" / NAME, data)
    target = home / "ckpts" / NAME

    found = find_reuse(ReuseIndex.scan([tmp_path / "a"]), NAME, len(data), sha(data), target, "copy")

    assert found.method == "copy"
    assert materialize(found, target, sha256=sha(data)) == "copy"
    assert target.stat().st_ino != source.stat().st_ino
    assert (target.stat().st_nlink, source.stat().st_nlink) == (1, 1)
    assert target.read_bytes() == data
    target.write_bytes(b"changed")
    assert source.read_bytes() == data
    assert leftovers(home) == []


def test_copy_without_hash_uses_copyfile(tmp_path, home):
    data = blob(12)
    source = put(tmp_path / "a" / NAME, data)
    target = home / "ckpts" / "sub" / NAME
    assert materialize(Reuse(source, "copy", None, mode="copy"), target) == "copy"
    assert target.read_bytes() == data and leftovers(home) == []


def test_copy_whose_source_changed_is_not_kept(tmp_path, home):
    data = blob(13)
    source = put(tmp_path / "a" / NAME, data)
    found = find_reuse(ReuseIndex.scan([tmp_path / "a"]), NAME, len(data), sha(data), home / NAME, "copy")
    source.write_bytes(blob(14, len(data)))  # changed after it was verified
    with pytest.raises(WangpError, match="changed while it was copied"):
        materialize(found, home / NAME, sha256=sha(data))
    assert not (home / NAME).exists() and leftovers(home) == []


def test_across_devices_auto_falls_back_and_explicit_hardlink_is_an_error(other_device, home, monkeypatch):
    data = blob(15)
    source = put(other_device / "models" / NAME, data)
    index = ReuseIndex.scan([other_device])
    target = home / "ckpts" / NAME

    found = find_reuse(index, NAME, len(data), sha(data), target)
    assert found.source == source and found.method in ("reflink", "copy")
    assert materialize(found, target, sha256=sha(data)) == found.method
    assert target.stat().st_dev != source.stat().st_dev and target.read_bytes() == data
    target.unlink()

    hashed = []
    monkeypatch.setattr(reuse_module, "_DIGESTS", {})
    monkeypatch.setattr(reuse_module, "sha256_of", lambda path: hashed.append(path) or hashlib.sha256(data))
    with pytest.raises(WangpError) as caught:
        find_reuse(index, NAME, len(data), sha(data), target, "hardlink")
    assert caught.value.code == "link-mode"
    assert "hard link cannot cross devices" in caught.value.message and "--link-mode auto" in caught.value.hint
    assert hashed == [] and not target.exists()  # refused before any hashing or writing


def test_materialize_hardlink_falls_back_at_run_time_only_in_auto(other_device, home):
    data = blob(16)
    source = put(other_device / NAME, data)
    target = home / "ckpts" / NAME
    assert materialize(Reuse(source, "hardlink", None, mode="auto"), target) in ("reflink", "copy")  # EXDEV
    assert target.read_bytes() == data
    with pytest.raises(WangpError) as caught:
        materialize(Reuse(source, "hardlink", None, mode="hardlink"), home / "ckpts" / "second.safetensors")
    assert caught.value.code == "link-mode"
    assert not (home / "ckpts" / "second.safetensors").exists() and leftovers(home) == []


def test_explicit_reflink_where_clones_do_not_work(tmp_path, home):
    data = blob(17)
    source = put(tmp_path / "a" / NAME, data)
    index = ReuseIndex.scan([tmp_path / "a"])
    try:
        found = find_reuse(index, NAME, len(data), None, home / NAME, "reflink")
    except WangpError as exc:  # ext4, tmpfs...: no FICLONE
        assert exc.code == "link-mode" and "no reflinks" in exc.message
        return
    assert materialize(found, home / NAME) == "reflink"  # btrfs, XFS: a clone, another inode
    assert (home / NAME).stat().st_ino != source.stat().st_ino and (home / NAME).read_bytes() == data


def test_materialize_never_overwrites_and_cleans_up(tmp_path, home):
    data = blob(18)
    source = put(tmp_path / "a" / NAME, data)
    target = put(home / "ckpts" / NAME, b"the user's own file")
    stale = put(home / "ckpts" / f".other.safetensors{reuse_module.LINK_SUFFIX}", b"left by a killed run")
    for mode in ("hardlink", "copy"):
        with pytest.raises(WangpError) as caught:
            materialize(Reuse(source, mode, True, mode=mode), target, sha256=sha(data))
        assert caught.value.code == "exists"
    assert target.read_bytes() == b"the user's own file" and source.stat().st_nlink == 1

    other = home / "ckpts" / "other.safetensors"
    assert materialize(Reuse(source, "copy", True, mode="copy"), other, sha256=sha(data)) == "copy"
    assert not stale.exists() and other.read_bytes() == data
    assert leftovers(home) == []


def test_index_skips_temporaries_git_broken_links_and_follows_symlinks(tmp_path, home):
    data = blob(19)
    models = tmp_path / "models"
    put(models / f".{NAME}.wangp-part", data)
    put(models / f".{NAME}.wangp-lock", data)
    put(models / ".git" / NAME, data)
    (models / "broken").mkdir()
    (models / "broken" / NAME).symlink_to(tmp_path / "nowhere")
    real = put(tmp_path / "elsewhere" / "real.bin", data)
    (models / "vae").mkdir()
    (models / "vae" / NAME).symlink_to(real)  # a file symlink: its real file
    put(tmp_path / "disk2" / "diffusion_models" / NAME, data)
    (models / "diffusion_models").symlink_to(tmp_path / "disk2" / "diffusion_models")  # a linked folder
    (models / "loop").symlink_to(models)  # a cycle: each real folder once

    index = ReuseIndex.scan([models, models])  # the same folder twice: walked once
    assert index.candidates(NAME, len(data), None) == [tmp_path / "disk2" / "diffusion_models" / NAME, real]
    assert index.candidates("real.bin", len(data), None) == []  # outside the folders given


def test_the_target_itself_is_no_candidate(home):
    data = blob(20)
    target = put(home / "ckpts" / NAME, data)
    index = ReuseIndex.scan([home])
    assert index.candidates(NAME, len(data), None) == [target]
    assert find_reuse(index, NAME, len(data), sha(data), target) is None


def test_large_candidates_are_reported_before_hashing(tmp_path, home, monkeypatch):
    data = blob(21)
    put(tmp_path / "a" / NAME, data)
    monkeypatch.setattr(reuse_module, "SLOW_HASH", len(data))
    lines = []
    find_reuse(ReuseIndex.scan([tmp_path / "a"]), NAME, len(data), sha(data), home / NAME, report=lines.append)
    assert len(lines) == 1 and lines[0].startswith("verifying ") and f"{len(data):,} bytes" in lines[0]


def test_unknown_mode_is_an_error(tmp_path, home):
    assert LINK_MODES == ("auto", "hardlink", "reflink", "copy")
    with pytest.raises(WangpError) as caught:
        find_reuse(ReuseIndex.scan([]), NAME, 1, None, home / NAME, "symlink")
    assert caught.value.code == "link-mode"


def test_link_dirs_from_options_and_environment(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("HOME", str(tmp_path))
    env = {ENV_VAR: os.pathsep.join([str(tmp_path / "b"), "", "~/c", str(tmp_path / "a")])}
    assert link_dirs(["~/a", str(tmp_path / "b")], env=env) == [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    assert link_dirs(None, env={}) == []


@pytest.mark.parametrize("where", ["option", "env"])
def test_link_dirs_missing_folder_is_an_error(tmp_path, where):
    missing = str(tmp_path / "ComfyUI" / "modles")
    with pytest.raises(WangpError) as caught:
        link_dirs([missing] if where == "option" else [], env={ENV_VAR: missing} if where == "env" else {})
    error = caught.value
    assert error.code == "link-from" and "does not exist" in error.message and "modles" in error.message
    assert ("--link-from" if where == "option" else ENV_VAR) in error.message and error.hint


def test_link_dirs_refuses_a_file(tmp_path):
    put(tmp_path / "x.safetensors", b"x")
    with pytest.raises(WangpError, match="is not a folder"):
        link_dirs([str(tmp_path / "x.safetensors")], env={})
