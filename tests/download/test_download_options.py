"""``wangp download`` end to end with the options of parallel and economical downloads: ``--jobs`` (files at
once), ``--connections`` (Range connections per file) and ``--link-from`` / ``--link-mode`` / ``WANGP_LINK_FROM``
(reuse of copies other tools have), on a real loopback HTTP server, files read back."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.download.test_download import definition, make_home, run
from tests.servers import safetensors_bytes


def _serve(http_server, files: dict[str, bytes]) -> list[str]:
    http_server.files.update(files)
    http_server.clear_requests()
    return [http_server.url(path) for path in files]


def test_jobs_fetch_several_files_at_once(tmp_path, hub_env, http_server):
    files = {f"/jobs/part{i}.safetensors": safetensors_bytes(1 << 20, seed=40 + i) for i in range(3)}
    urls = _serve(http_server, files)
    http_server.throttle_bytes_per_second = 1 << 20  # ~1 s per file and connection: the transfers overlap
    sums = {url: hashlib.sha256(data).hexdigest() for url, data in zip(urls, files.values())}
    home = make_home(tmp_path, {"many": definition(urls[:1], preload_URLs=urls[1:], sha256=sums)})

    result = run(home, hub_env.env, "download", "many", "--no-components", "--jobs", "3", "--connections", "1",
                 "-f", "json", check=0)
    document = json.loads(result.stdout)
    assert document["summary"] == {"downloaded": 3, "reused": 0, "present": 0}
    assert all(f["verified"] for f in document["files"])
    for path, data in files.items():
        assert (home / "ckpts" / path.rsplit("/", 1)[1]).read_bytes() == data
    assert http_server.max_concurrent == 3

    for name in files:  # the same download one file at a time: never two bodies at once
        (home / "ckpts" / name.rsplit("/", 1)[1]).unlink()
    http_server.clear_requests()
    run(home, hub_env.env, "download", "many", "--no-components", "--jobs", "1", "--connections", "1", check=0)
    assert http_server.max_concurrent == 1


def test_connections_split_one_file_into_ranges(tmp_path, hub_env, http_server):
    data = safetensors_bytes(4 << 20, seed=50)
    [url] = _serve(http_server, {"/ranges/big_bf16.safetensors": data})
    home = make_home(tmp_path, {"big": definition([url], sha256={url: hashlib.sha256(data).hexdigest()})})

    run(home, hub_env.env, "download", "big", "--no-components", "--connections", "4", check=0)
    assert (home / "ckpts/big_bf16.safetensors").read_bytes() == data
    ranges = sorted(r.range for r in http_server.requests if r.method == "GET" and r.path.startswith("/ranges/"))
    assert len(ranges) == 4 and all(r and r.startswith("bytes=") for r in ranges)
    # the four ranges cover the file exactly once
    spans = sorted(tuple(int(n) for n in r[len("bytes="):].split("-")) for r in ranges)
    assert spans[0][0] == 0 and spans[-1][1] == len(data) - 1
    assert all(a[1] + 1 == b[0] for a, b in zip(spans, spans[1:]))

    bad = run(home, hub_env.env, "download", "big", "--connections", "0")
    assert bad.returncode == 2 and "--connections" in bad.stderr


def _reuse_home(tmp_path, http_server):
    data = safetensors_bytes(1 << 20, seed=60)
    [url] = _serve(http_server, {"/reuse/shared_model_bf16.safetensors": data})
    home = make_home(tmp_path, {"shared": definition([url], sha256={url: hashlib.sha256(data).hexdigest()})})
    wrong = bytearray(data)
    wrong[-1] ^= 0xFF  # same name, same size, other bytes: only the hash tells them apart
    comfy = tmp_path / "ComfyUI/models/diffusion_models"
    comfy.mkdir(parents=True)
    (comfy / "shared_model_bf16.safetensors").write_bytes(bytes(wrong))
    other = tmp_path / "other_wangp/ckpts"
    other.mkdir(parents=True)
    (other / "shared_model_bf16.safetensors").write_bytes(data)
    return home, data, comfy.parent, other


def test_link_from_hard_links_a_verified_copy_and_rejects_a_wrong_hash(tmp_path, hub_env, http_server):
    home, data, comfy, other = _reuse_home(tmp_path, http_server)
    options = ["--no-components", "--link-from", str(comfy), "--link-from", str(other)]

    plan = run(home, hub_env.env, "download", "shared", *options, "--dry-run", check=0)
    good = other / "shared_model_bf16.safetensors"
    assert "reuse (hardlink)" in plan.stdout and str(good) in plan.stdout
    assert "not reusing" in plan.stderr and "SHA-256 differs" in plan.stderr
    assert "1 reused, 0 bytes to fetch" in plan.stdout

    result = run(home, hub_env.env, "download", "shared", *options, "-f", "json", check=0)
    [entry] = json.loads(result.stdout)["files"]
    assert entry["status"] == "reused" and entry["method"] == "hardlink" and entry["from"] == str(good)
    target = home / "ckpts/shared_model_bf16.safetensors"
    assert target.read_bytes() == data and os.path.samefile(target, good)
    assert not [r for r in http_server.requests if r.method == "GET" and r.path.startswith("/reuse/")]
    assert (comfy / "diffusion_models/shared_model_bf16.safetensors").read_bytes() != data  # left as it was

    again = run(home, hub_env.env, "download", "shared", *options, check=0)  # now present: nothing to do
    assert "0 downloaded, 1 already present" in again.stderr


def test_link_mode_copy_and_the_environment_variable(tmp_path, hub_env, http_server):
    home, data, comfy, other = _reuse_home(tmp_path, http_server)
    env = {**hub_env.env, "WANGP_LINK_FROM": os.pathsep.join([str(comfy), str(other)])}

    result = run(home, env, "download", "shared", "--no-components", "--link-mode", "copy", check=0)
    assert "reused (copy)" in result.stderr
    target = home / "ckpts/shared_model_bf16.safetensors"
    assert target.read_bytes() == data and not os.path.samefile(target, other / "shared_model_bf16.safetensors")


def test_only_wrong_copies_means_a_download(tmp_path, hub_env, http_server):
    home, data, comfy, _ = _reuse_home(tmp_path, http_server)
    result = run(home, hub_env.env, "download", "shared", "--no-components", "--link-from", str(comfy), check=0)
    assert "SHA-256 differs" in result.stderr and "1 downloaded" in result.stderr
    assert (home / "ckpts/shared_model_bf16.safetensors").read_bytes() == data


def test_a_link_from_folder_that_does_not_exist_is_an_error_before_any_request(tmp_path, hub_env, http_server):
    home, _, _, _ = _reuse_home(tmp_path, http_server)
    http_server.clear_requests()
    result = run(home, hub_env.env, "download", "shared", "--link-from", str(tmp_path / "nowhere"))
    assert result.returncode != 0 and "does not exist" in result.stderr and "link-from" in result.stderr
    assert not http_server.requests
    assert not (home / "ckpts/shared_model_bf16.safetensors").exists()



def test_ctrl_c_with_several_jobs_keeps_every_partial_file_and_the_rerun_resumes(tmp_path, hub_env, http_server):
    files = {f"/int/piece{i}.safetensors": safetensors_bytes(2 << 20, seed=70 + i) for i in range(3)}
    urls = _serve(http_server, files)
    http_server.throttle_bytes_per_second = 1 << 20  # ~2 s per file: Ctrl-C lands while all three are running
    home = make_home(tmp_path, {"int": definition(urls[:1], preload_URLs=urls[1:])})
    env = {**hub_env.env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    process = subprocess.Popen([sys.executable, "-m", "wangp_cli", "--home", str(home), "download", "int",
                                "--no-components", "--jobs", "3", "--connections", "1"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpts = home / "ckpts"
    deadline = time.time() + 30
    while time.time() < deadline and not (len(list(ckpts.glob(".*.wangp-part"))) == 3 and all(
            p.stat().st_size >= 256 << 10 for p in ckpts.glob(".*.wangp-part"))):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130 and "Traceback" not in stderr and "interrupted" in stderr
    parts = {p.name: p.stat().st_size for p in ckpts.glob(".*.wangp-part")}
    assert len(parts) == 3 and all(0 < size < 2 << 20 for size in parts.values())  # kept, to resume
    assert not [p for p in ckpts.iterdir() if not p.name.startswith(".")]  # nothing at a final name

    http_server.throttle_bytes_per_second = None
    http_server.clear_requests()
    run(home, hub_env.env, "download", "int", "--no-components", "--jobs", "3", check=0)
    for path, data in files.items():
        name = path.rsplit("/", 1)[1]
        assert (ckpts / name).read_bytes() == data
        kept = parts[f".{name}.wangp-part"]
        asked = [r.range for r in http_server.requests if r.method == "GET" and r.path == path]
        assert asked == [f"bytes={kept}-"]  # the rest only
