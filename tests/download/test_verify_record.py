"""``wangp download`` hashes a present file once: the SHA-256 is recorded on the file (an extended attribute,
with its size and time) and trusted by later runs; ``--verify`` hashes again and catches what changed since."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from tests.download.test_download import definition, make_home, run
from wangp_cli.download.verified import ATTRIBUTE

MODEL = "/files/model_bf16.safetensors"


def _xattrs_supported(folder) -> bool:
    probe = folder / "probe"
    probe.write_bytes(b"x")
    try:
        os.setxattr(probe, "user.wangp.probe", b"1")
        return True
    except (OSError, AttributeError):
        return False
    finally:
        probe.unlink()


def test_a_recorded_hash_is_trusted_and_verify_hashes_again(tmp_path, hub_env, http_server):
    if not _xattrs_supported(tmp_path):
        pytest.skip("this file system keeps no user extended attributes: every run hashes")
    content = http_server.files[MODEL]
    url = http_server.url(MODEL)
    home = make_home(tmp_path, {"dl": definition([url], sha256={url: hashlib.sha256(content).hexdigest()})})
    run(home, hub_env.env, "download", "dl", "--no-components")
    target = home / "ckpts/model_bf16.safetensors"
    assert target.read_bytes() == content and os.getxattr(target, ATTRIBUTE).startswith(
        hashlib.sha256(content).hexdigest().encode())

    def state(*extra):
        plan = run(home, hub_env.env, "download", "dl", "--no-components", "--dry-run", "-f", "json", *extra)
        return json.loads(plan.stdout)["files"][0]["state"]

    # bit rot: same size, same modification time, other bytes. The record is trusted; --verify is not fooled.
    info = target.stat()
    flipped = bytearray(content)
    flipped[len(flipped) // 2] ^= 0xFF
    with open(target, "r+b") as handle:
        handle.write(bytes(flipped))
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert state() == "present"
    assert state("--verify") == "mismatch"
    result = run(home, hub_env.env, "download", "dl", "--no-components", "--verify", check=0)
    assert "does not match its SHA-256" in result.stderr and "downloaded" in result.stderr
    assert target.read_bytes() == content
    # a file changed the usual way (new time) loses its record: hashed again without --verify
    target.write_bytes(bytes(flipped))
    assert state() == "mismatch"
