"""`wangp files`, `wangp rm`, `wangp gc` on real homes: tiny real files, hard links, symlinks, held locks.

The CLI runs in a subprocess (stdin is not a terminal there), as a user's script would run it.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_home, subprocess_env, write_definition
from tests.servers import random_bytes, safetensors_bytes

HF = "https://huggingface.co/me/repo/resolve/main/"
COMPONENTS = "ckpts/Wan2.1-T2V-14B-Diffusers"  # the t2v architecture's diffusers folder


def wangp(home: Path, *args, check: int | None = 0, stdin=subprocess.DEVNULL):
    result = subprocess.run([sys.executable, "-m", "wangp_cli", "--home", str(home), *map(str, args)],
                            capture_output=True, text=True, env=subprocess_env(), timeout=60, stdin=stdin)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    if check is not None:
        assert result.returncode == check, result.stdout + result.stderr
    return result


def model(*urls, **keys) -> dict:
    return {"model": {"name": "test", "architecture": "t2v", "description": "", "URLs": [HF + u for u in urls],
                      **keys}, "seed": -1}


def put(home: Path, relative: str, data: bytes) -> Path:
    path = home / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def shared_home(tmp_path) -> Path:
    """Definitions a and b: each its own transformer (two variants) and LoRA, one VAE and one preload shared,
    the same components folder (both t2v)."""
    home = make_home(tmp_path / "home")
    shared = {"VAE_URLs": [HF + "shared_vae.safetensors"], "preload_URLs": [HF + "shared_pre.bin"]}
    write_definition(home, "a", model("a_bf16.safetensors", "a_quanto_bf16_int8.safetensors",
                                      loras=[HF + "a_lora.safetensors"], **shared))
    write_definition(home, "b", model("b_bf16.safetensors", **shared))
    put(home, "ckpts/a_bf16.safetensors", safetensors_bytes(64 * 1024, seed=1))
    put(home, "ckpts/a_quanto_bf16_int8.safetensors", safetensors_bytes(32 * 1024, seed=2))
    put(home, "ckpts/shared_vae.safetensors", safetensors_bytes(16 * 1024, seed=3))
    put(home, "ckpts/shared_pre.bin", random_bytes(5000, seed=4))
    put(home, "loras/wan/a_lora.safetensors", safetensors_bytes(8 * 1024, seed=5))
    put(home, f"{COMPONENTS}/vae/diffusion_pytorch_model.safetensors", safetensors_bytes(4096, seed=6))
    put(home, f"{COMPONENTS}/model_index.json", b"{}")
    return home


def files_json(home: Path, *args) -> dict:
    document = json.loads(wangp(home, "files", "--format", "json", *args).stdout)
    assert document["schema"] == "wangp.files/1"
    return document


def test_files_lists_sizes_users_and_states(shared_home):
    home = shared_home
    good = safetensors_bytes(40 * 1024, seed=7)
    put(home, "ckpts/b_bf16.safetensors", good[:-1000])  # shorter than its header says
    put(home, "ckpts/.b_bf16.safetensors.wangp-part", good[:3000])  # an interrupted download of it
    put(home, "ckpts/.b_bf16.safetensors.wangp-part.json", json.dumps({"size": len(good)}).encode())
    put(home, "ckpts/.gone.safetensors.wangp-part.json", b"{}")  # orphaned metadata: never listed
    put(home, "ckpts/.a_bf16.safetensors.wangp-lock", b"")  # a stale lock: never listed
    put(home, "ckpts/junk.bin", random_bytes(1234, seed=8))
    rows = {(f["path"], f["on_disk"]): f for f in files_json(home)["files"]}
    by_disk = {on_disk: f for (_, on_disk), f in rows.items()}
    assert not any("wangp-part.json" in d or "wangp-lock" in d for d in by_disk)
    a = by_disk["ckpts/a_bf16.safetensors"]
    assert (a["size"], a["state"], a["users"], a["hard_links"]) == (
        (home / "ckpts/a_bf16.safetensors").stat().st_size, "complete", ["a"], 1)
    assert by_disk["ckpts/shared_vae.safetensors"]["users"] == ["a", "b"]
    assert by_disk["ckpts/shared_pre.bin"]["state"] == "complete-unchecked"
    assert by_disk["loras/wan/a_lora.safetensors"]["users"] == ["a"]
    assert by_disk[f"{COMPONENTS}/model_index.json"]["users"] == ["a", "b"]
    truncated = by_disk["ckpts/b_bf16.safetensors"]
    assert (truncated["state"], truncated["expected_size"]) == ("truncated", len(good))
    part = by_disk["ckpts/.b_bf16.safetensors.wangp-part"]
    assert (part["path"], part["state"], part["size"], part["expected_size"], part["users"]) == (
        "ckpts/b_bf16.safetensors", "partial", 3000, len(good), ["b"])
    junk = by_disk["ckpts/junk.bin"]
    assert junk["unused"] and junk["users"] == []
    unused = files_json(home, "--unused")
    assert [f["on_disk"] for f in unused["files"]] == ["ckpts/junk.bin"]
    assert unused["summary"]["unused_bytes"] == 1234
    text = wangp(home, "files").stdout
    assert f"partial (3,000 of {len(good):,} here)" in text and "truncated" in text
    total = sum(f["size"] for f in rows.values())
    assert f"{len(rows)} files, {total:,} bytes; 1 unused, 1,234 bytes" in text


def test_files_imports_nothing_heavy(shared_home):
    code = ("import sys\nfrom wangp_cli.cli._app import app\n"
            f"sys.argv = ['wangp', '--home', {str(shared_home)!r}, 'files']\n"
            "try:\n    app(prog_name='wangp')\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'diffusers', 'transformers', 'huggingface_hub') "
            "if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(),
                            timeout=60)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_rm_removes_only_files_no_other_definition_uses(shared_home):
    home = shared_home
    put(home, "ckpts/.a_bf16.safetensors.wangp-part", b"x" * 100)  # its part files go too
    put(home, "ckpts/.a_bf16.safetensors.wangp-part.json", b'{"size": 9}')
    shared_inode = (home / "ckpts/shared_vae.safetensors").stat().st_ino
    result = wangp(home, "rm", "a", "--yes")
    for gone in ("ckpts/a_bf16.safetensors", "ckpts/a_quanto_bf16_int8.safetensors", "loras/wan/a_lora.safetensors",
                 "ckpts/.a_bf16.safetensors.wangp-part", "ckpts/.a_bf16.safetensors.wangp-part.json"):
        assert not (home / gone).exists(), gone
        assert gone in result.stdout
    assert not (home / "loras/wan").exists()  # the folder it emptied
    assert "kept: ckpts/shared_vae.safetensors (also used by b)" in result.stdout
    assert f"kept: {COMPONENTS}/model_index.json (also used by b)" in result.stdout
    assert (home / "ckpts/shared_vae.safetensors").stat().st_ino == shared_inode
    assert (home / "ckpts/shared_pre.bin").is_file()
    assert (home / "finetunes/a.json").is_file()  # the definition itself stays
    put(home, "ckpts/b_bf16.safetensors", b"b" * 10)
    result = wangp(home, "rm", "b", "--yes")  # a's definition still names the shared files: they stay
    assert not (home / "ckpts/b_bf16.safetensors").exists()
    assert "kept: ckpts/shared_vae.safetensors (also used by a)" in result.stdout
    assert (home / "ckpts/shared_vae.safetensors").stat().st_ino == shared_inode
    assert (home / "ckpts").is_dir() and (home / "loras").is_dir()  # the roots stay


def test_rm_both_at_once_removes_the_shared_files(shared_home):
    result = wangp(shared_home, "rm", "a", "b", "--yes")
    assert not (shared_home / "ckpts/shared_vae.safetensors").exists()
    assert "kept:" not in result.stdout
    assert sorted((shared_home / "ckpts").iterdir()) == [] and not (shared_home / "loras/wan").exists()
    assert sorted(p.name for p in (shared_home / "finetunes").iterdir()) == ["a.json", "b.json"]


def test_rm_dry_run_confirmation_and_unknown_id(shared_home):
    home = shared_home
    before = sorted(str(p) for p in home.rglob("*"))
    result = wangp(home, "rm", "a", "--dry-run")
    assert "would remove" in result.stdout and "ckpts/a_bf16.safetensors" in result.stdout
    document = json.loads(wangp(home, "rm", "a", "--dry-run", "--format", "json").stdout)
    assert document["schema"] == "wangp.rm/1" and not document["deleted"]
    assert {r["path"] for r in document["remove"]} == {
        "ckpts/a_bf16.safetensors", "ckpts/a_quanto_bf16_int8.safetensors", "loras/wan/a_lora.safetensors"}
    refused = wangp(home, "rm", "a", check=2)  # stdin is not a terminal and no --yes
    assert "pass --yes" in refused.stderr
    unknown = wangp(home, "rm", "nope", "--yes", check=1)
    assert "unknown model id 'nope'" in unknown.stderr
    assert sorted(str(p) for p in home.rglob("*")) == before


def test_gc_dry_run_then_delete_never_touches_used_files_or_running_parts(shared_home):
    home = shared_home
    put(home, "ckpts/old_model_bf16.safetensors", safetensors_bytes(20 * 1024, seed=9))
    put(home, "ckpts/sub/old/deep.bin", b"y" * 300)
    put(home, "ckpts/.gone_bf16.safetensors.wangp-part", b"z" * 700)  # interrupted, nobody resumes it now
    put(home, "ckpts/.gone_bf16.safetensors.wangp-part.json", b'{"size": 10000}')
    put(home, "ckpts/.b_bf16.safetensors.wangp-part", b"r" * 500)  # a transfer runs: the test holds its lock
    running_lock = put(home, "ckpts/.b_bf16.safetensors.wangp-lock", b"")
    put(home, "ckpts/.stale.safetensors.wangp-lock", b"")
    put(home, "ckpts/.orphan.safetensors.wangp-part.json", b"{}")
    put(home, "loras/wan/my_own_lora.safetensors", safetensors_bytes(2048, seed=10))
    used = ["ckpts/a_bf16.safetensors", "ckpts/a_quanto_bf16_int8.safetensors", "ckpts/shared_vae.safetensors",
            "ckpts/shared_pre.bin", "loras/wan/a_lora.safetensors", f"{COMPONENTS}/model_index.json",
            f"{COMPONENTS}/vae/diffusion_pytorch_model.safetensors"]
    with open(running_lock, "rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        before = sorted(str(p) for p in home.rglob("*"))
        dry = wangp(home, "gc")
        assert "run with --delete to remove them" in dry.stdout
        assert sorted(str(p) for p in home.rglob("*")) == before
        document = json.loads(wangp(home, "gc", "--format", "json").stdout)
        planned = {r["path"] for r in document["remove"]}
        assert planned == {"ckpts/old_model_bf16.safetensors", "ckpts/sub/old/deep.bin",
                           "ckpts/.gone_bf16.safetensors.wangp-part", "ckpts/.gone_bf16.safetensors.wangp-part.json",
                           "ckpts/.stale.safetensors.wangp-lock", "ckpts/.orphan.safetensors.wangp-part.json"}
        assert document["summary"]["bytes"] == sum((home / p).stat().st_size for p in planned)
        assert [f["path"] for f in document["loras_spared"]] == ["loras/wan/my_own_lora.safetensors"]
        deleted = wangp(home, "gc", "--delete")
        assert "kept: ckpts/.b_bf16.safetensors.wangp-part (a download of it is running)" in deleted.stdout
        assert "pass --loras" in deleted.stdout
        for path in planned:
            assert not (home / path).exists(), path
        assert not (home / "ckpts/sub").exists()  # folders it emptied
        for path in used + ["ckpts/.b_bf16.safetensors.wangp-part", "ckpts/.b_bf16.safetensors.wangp-lock",
                            "loras/wan/my_own_lora.safetensors"]:
            assert (home / path).exists(), path
    wangp(home, "gc", "--delete", "--loras")
    assert not (home / "loras/wan/my_own_lora.safetensors").exists()
    assert not (home / "ckpts/.b_bf16.safetensors.wangp-part").exists()  # its transfer has stopped now
    for path in used:
        assert (home / path).exists(), path


def test_a_broken_definition_protects_the_files_it_names(shared_home):
    home = shared_home
    write_definition(home, "broken", '{"model": {"URLs": ["https://x/keep_me_bf16.safetensors"] ')  # cut JSON
    write_definition(home, "alien", model("alien_bf16.safetensors", architecture="no_such_architecture"))
    put(home, "ckpts/keep_me_bf16.safetensors", b"k" * 100)
    put(home, "ckpts/alien_bf16.safetensors", b"q" * 100)
    put(home, "ckpts/really_unused.bin", b"u" * 100)
    result = wangp(home, "gc", "--delete")
    assert "broken.json cannot be read as a definition (is not valid JSON" in result.stderr
    assert "its files are kept" in result.stderr
    # one WanGP version plans it (July does not check the architecture), so its files are known: no warning
    assert "alien.json" not in result.stderr
    assert (home / "ckpts/keep_me_bf16.safetensors").is_file() and (home / "ckpts/alien_bf16.safetensors").is_file()
    assert not (home / "ckpts/really_unused.bin").exists()
    users = {f["on_disk"]: f["users"] for f in files_json(home)["files"]}
    assert users["ckpts/keep_me_bf16.safetensors"] == ["broken"]
    assert users["ckpts/alien_bf16.safetensors"] == ["alien"]


def test_hard_links_removing_one_name_keeps_the_bytes(shared_home):
    home = shared_home
    used = home / "ckpts/a_bf16.safetensors"
    os.link(used, home / "ckpts/copy_of_a.safetensors")
    rows = {f["on_disk"]: f for f in files_json(home)["files"]}
    assert rows["ckpts/a_bf16.safetensors"]["hard_links"] == 2 and rows["ckpts/copy_of_a.safetensors"]["unused"]
    assert "removing one name frees nothing" in wangp(home, "files").stdout
    data, inode = used.read_bytes(), used.stat().st_ino
    document = json.loads(wangp(home, "gc", "--delete", "--format", "json").stdout)
    assert [r["path"] for r in document["remove"]] == ["ckpts/copy_of_a.safetensors"]
    assert document["summary"]["freed_bytes"] == 0 and document["hard_linked"] == ["ckpts/copy_of_a.safetensors"]
    assert (used.stat().st_ino, used.stat().st_nlink, used.read_bytes()) == (inode, 1, data)


def test_symlinks_are_removed_as_links_never_their_targets(shared_home, tmp_path):
    home = shared_home
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    target = put(outside, "big_model_bf16.safetensors", safetensors_bytes(4096, seed=11))
    (home / "ckpts/unused_link.safetensors").symlink_to(target)
    (home / "ckpts/b_bf16.safetensors").symlink_to(target)  # b's file lives on another disk
    put(home, "ckpts/store/real_b.bin", b"s" * 100)  # a link inside the home keeps its target in use
    (home / "ckpts/shared_pre.bin").unlink()
    (home / "ckpts/shared_pre.bin").symlink_to("store/real_b.bin")
    rows = {f["on_disk"]: f for f in files_json(home)["files"]}
    assert rows["ckpts/unused_link.safetensors"]["symlink_outside_home"] is True
    assert rows["ckpts/store/real_b.bin"]["users"] == ["a", "b"]
    wangp(home, "gc", "--delete")
    assert not os.path.lexists(home / "ckpts/unused_link.safetensors")
    assert (home / "ckpts/b_bf16.safetensors").is_symlink() and (home / "ckpts/store/real_b.bin").is_file()
    assert target.read_bytes() == safetensors_bytes(4096, seed=11)
    wangp(home, "rm", "b", "--yes")
    assert not os.path.lexists(home / "ckpts/b_bf16.safetensors")
    assert target.is_file() and target.read_bytes() == safetensors_bytes(4096, seed=11)


def test_a_part_written_by_ranges_counts_its_fetched_pieces(shared_home):
    home = shared_home
    size = 4 * 1024 * 1024
    part = home / "ckpts/.b_bf16.safetensors.wangp-part"
    with open(part, "wb") as handle:  # full length, holes where pieces are not fetched yet
        handle.truncate(size)
    pieces = [[0, 2 << 20, 1 << 20], [2 << 20, size, 300_000]]
    put(home, "ckpts/.b_bf16.safetensors.wangp-part.json",
        json.dumps({"url": HF + "b_bf16.safetensors", "size": size, "version": "v", "sha256": None,
                    "pieces": pieces}).encode())
    put(home, "ckpts/.b_bf16.safetensors.wangp-part.json.tmp", b"{")  # a killed run's half-written metadata
    rows = {f["on_disk"]: f for f in files_json(home)["files"]}
    assert not any(p.endswith(".tmp") for p in rows)
    assert (rows[str(part.relative_to(home))]["size"], rows[str(part.relative_to(home))]["expected_size"]) == (
        (1 << 20) + 300_000, size)
    wangp(home, "gc", "--delete")
    assert not part.exists() and not list((home / "ckpts").glob(".b_bf16*"))


@pytest.mark.parametrize("answer, removed", [("n", False), ("y", True)])
def test_rm_asks_on_a_terminal(shared_home, answer, removed):
    pty = pytest.importorskip("pty")
    primary, secondary = pty.openpty()
    try:
        child = subprocess.Popen([sys.executable, "-m", "wangp_cli", "--home", str(shared_home), "--color", "never",
                                  "rm", "a"], stdin=secondary, stdout=secondary, stderr=secondary,
                                 env=subprocess_env(), close_fds=True)
        os.close(secondary)
        seen = b""
        while b"[y/N]" not in seen:
            seen += os.read(primary, 4096)
        os.write(primary, answer.encode() + b"\n")
        assert child.wait(timeout=60) == (0 if removed else 1)
    finally:
        os.close(primary)
    assert b"ckpts/a_bf16.safetensors" in seen  # the list comes before the question
    assert (shared_home / "ckpts/a_bf16.safetensors").exists() is not removed
    assert (shared_home / "ckpts/shared_vae.safetensors").exists()


def test_a_ckpts_folder_on_another_disk_is_managed_and_links_inside_it_count(tmp_path):
    home = make_home(tmp_path / "home")
    write_definition(home, "a", model("a_bf16.safetensors"))
    disk = tmp_path / "big_disk" / "ckpts"
    disk.mkdir(parents=True)
    (home / "ckpts").rmdir()
    (home / "ckpts").symlink_to(disk)  # a common set-up: ckpts/ lives elsewhere
    stored = put(disk, "store/a_real.safetensors", safetensors_bytes(2048, seed=12))
    (disk / "a_bf16.safetensors").symlink_to(stored)  # absolute, through the real location
    put(disk, "unused.bin", b"u" * 10)
    neighbour = put(tmp_path / "big_disk", "not_ours.bin", b"n" * 10)
    rows = {f["on_disk"]: f for f in files_json(home)["files"]}
    assert rows["ckpts/store/a_real.safetensors"]["users"] == ["a"]
    assert rows["ckpts/a_bf16.safetensors"]["symlink_outside_home"] is False
    wangp(home, "gc", "--delete")
    assert stored.is_file() and (disk / "a_bf16.safetensors").is_symlink() and neighbour.is_file()
    assert not (disk / "unused.bin").exists() and (home / "ckpts").is_symlink()


def test_gc_keeps_wangps_own_shared_files_and_keep_patterns(shared_home):
    """WanGP fetches files no definition names (its VAEs, tokenizers, preprocessors): gc keeps them; --keep
    keeps more; rm keeps a WanGP file even when the definition removed was its only user."""
    home = shared_home
    own = ["ckpts/Wan2.1_VAE.safetensors", "ckpts/umt5-xxl/tokenizer.json"]
    for relative in own:
        put(home, relative, random_bytes(100, seed=9))
    put(home, "ckpts/mine/tool.bin", random_bytes(100, seed=10))
    put(home, "ckpts/junk.bin", random_bytes(100, seed=11))
    document = json.loads(wangp(home, "gc", "--keep", "ckpts/mine/**", "--format", "json").stdout)
    removed = {entry["path"] for entry in document["remove"]}
    kept = {entry["path"]: entry["reason"] for entry in document["kept"]}
    assert removed == {"ckpts/junk.bin"}
    assert all("WanGP's own" in kept[p] for p in own) and kept["ckpts/mine/tool.bin"] == "--keep ckpts/mine/**"
    wangp(home, "gc", "--keep", "ckpts/mine/**", "--delete")
    assert all((home / p).exists() for p in own) and (home / "ckpts/mine/tool.bin").exists()
    assert not (home / "ckpts/junk.bin").exists()
    listed = {f["path"]: f for f in files_json(home)["files"]}
    assert listed["ckpts/Wan2.1_VAE.safetensors"]["kept_by"] == "WanGP's own shared file"
    assert not listed["ckpts/Wan2.1_VAE.safetensors"]["unused"]

    # a definition naming a WanGP file as its VAE: rm of that definition leaves the file
    write_definition(home, "c", model("c_bf16.safetensors", VAE_URLs=[HF + "Wan2.1_VAE.safetensors"]))
    result = wangp(home, "rm", "c", "--yes", "--format", "json")
    assert {k["path"] for k in json.loads(result.stdout)["kept"]} >= {"ckpts/Wan2.1_VAE.safetensors"}
    assert (home / "ckpts/Wan2.1_VAE.safetensors").exists()

    bad = wangp(home, "gc", "--keep", "../outside/*", check=None)
    assert bad.returncode != 0 and "--keep" in bad.stderr


def test_a_link_from_copy_left_by_a_killed_run_is_a_temporary(shared_home):
    """``.<name>.wangp-link`` (a --link-from copy or reflink being written): never listed as a file; gc removes it
    once nobody holds its target's lock, and counts its bytes as freed; one being written is left alone."""
    home = shared_home
    put(home, "ckpts/.b_bf16.safetensors.wangp-link", random_bytes(3000, seed=12))
    put(home, "ckpts/.c_bf16.safetensors.wangp-link", random_bytes(2000, seed=13))
    lock = put(home, "ckpts/.c_bf16.safetensors.wangp-lock", b"")
    assert not [f for f in files_json(home)["files"] if "wangp-link" in f["on_disk"]]
    with open(lock, "rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)  # a copy of c is being written now
        document = json.loads(wangp(home, "gc", "--delete", "--format", "json").stdout)
    removed = {entry["path"] for entry in document["remove"]}
    assert "ckpts/.b_bf16.safetensors.wangp-link" in removed and "ckpts/.c_bf16.safetensors.wangp-link" not in removed
    assert document["summary"]["freed_bytes"] >= 3000
    assert not (home / "ckpts/.b_bf16.safetensors.wangp-link").exists()
    assert (home / "ckpts/.c_bf16.safetensors.wangp-link").exists()
