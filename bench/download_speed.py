"""Download throughput and resume cost against a loopback olah Hub mirror (tests/servers.py HubServer).

1. Unthrottled olah: ``wangp download`` of a ~1 GB LFS file against ``hf download`` of the same file (alternating
   runs). Plain olah ignores Range, so wangp's first ranged request gets a 200 and streams it on one connection.
   Target: wangp / hf throughput >= 0.9. The same with the mirror's ranges switched on (wangp: 8 connections).
2. Per-connection throttled mirror (``configure(ranges=True, throttle_bytes_per_second=--throttle-mb)``: each
   response, i.e. each connection, gets that rate): wangp with 8 connections against ``hf download`` (one).
   Target: >= 3x.
3. SHA-256: hashlib's throughput on this CPU (256 MB), and an 8-connection fetch() with the hash following the
   download against hashing after assembly (transfer.HASH_WHILE_FETCHING).
4. Resume: an 8-connection ``wangp download`` (throttled) is SIGKILLed at ~50%, then run again (unthrottled). The
   first run's bytes beyond what it recorded are the waste (bound: one CHUNK per connection, plus what the
   server had written that the client never read); the second run must fetch exactly what was not recorded.

Peak memory (max RSS) of each client process and of the server is printed: they stay bounded (no file-sized
buffer anywhere). Usage: python bench/download_speed.py [--size-mb 1024] [--runs 3] [--throttle-mb 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.servers import HubServer  # noqa: E402

REPO_ID = "bench/Wan2.1"
NAME = "bench_model_bf16.safetensors"
CONNECTIONS = 8
PARTS = ("plain", "ranges", "throttled", "hash", "resume")


def safetensors_file(size: int) -> bytes:
    """A valid safetensors file of ``size`` bytes (wangp checks the header) of random data (no compression helps
    either side)."""
    count = (size - 256) // 2
    header = json.dumps({"weight": {"dtype": "BF16", "shape": [count], "data_offsets": [0, 2 * count]}}).encode()
    header += b" " * (size - 8 - len(header) - 2 * count)
    return len(header).to_bytes(8, "little") + header + os.urandom(2 * count)


def env_for(hub: HubServer, hf_home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "WANGP_")) and "proxy" not in k.lower()}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1,localhost", PYTHONPATH=str(REPO), HF_HUB_DISABLE_PROGRESS_BARS="1",
               WANGP_TARGET="july", **extra)  # july: the transformer alone (v12 adds its text encoder)
    return env


def wangp_home(root: Path) -> Path:
    home = root / "home"
    (home / "finetunes").mkdir(parents=True)
    (home / "ckpts").mkdir()
    url = f"https://huggingface.co/{REPO_ID}/resolve/main/{NAME}"
    (home / "finetunes" / "t2v_bench.json").write_text(json.dumps({"model": {
        "name": "bench", "architecture": "t2v_1.3B", "description": "", "URLs": [url]}, "seed": -1}))
    return home


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one process run to completion. The RSS comes from /usr/bin/time when there
    is one (a child forked from this process would count the test file this process holds)."""
    wrapper = ["/usr/bin/time", "-f", "maxrss=%M"] if Path("/usr/bin/time").exists() else []
    start = time.perf_counter()
    result = subprocess.run(wrapper + command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    seconds = time.perf_counter() - start
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr[-2000:]}")
    peaks = [line for line in result.stderr.splitlines() if line.startswith("maxrss=")]
    return seconds, int(peaks[-1].split("=")[1]) / 1024 if peaks else float("nan")


def server_peak_mb(hub: HubServer) -> float:
    for line in Path(f"/proc/{hub.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def compare(label: str, hub: HubServer, tmp: Path, content: bytes, runs: int, wangp_env: dict, hf_env: dict,
            wangp: list[str], hf: list[str], target: float) -> None:
    ours, theirs, memory = [], [], []
    for run in range(runs):
        home = wangp_home(tmp / f"w{run}")
        seconds, peak = timed(wangp + ["--home", str(home), "download", "t2v_bench", "--no-components"], wangp_env)
        ours.append(seconds)
        memory.append(peak)
        assert (home / "ckpts" / NAME).stat().st_size == len(content)
        shutil.rmtree(home.parent)
        out = tmp / f"h{run}"
        seconds, peak = timed(hf + ["download", REPO_ID, NAME, "--local-dir", str(out)], hf_env)
        theirs.append(seconds)
        memory.append(peak)
        assert (out / NAME).stat().st_size == len(content)
        shutil.rmtree(out)
    mb = len(content) / 1e6
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    ratio = theirs_s / ours_s
    print(f"{label}: {mb:.0f} MB, {runs} alternating run(s) (medians)")
    print(f"  wangp download: {ours_s:.2f} s = {mb / ours_s:.0f} MB/s (runs: {', '.join(f'{t:.2f}' for t in ours)})")
    print(f"  hf download:    {theirs_s:.2f} s = {mb / theirs_s:.0f} MB/s (runs: "
          f"{', '.join(f'{t:.2f}' for t in theirs)})")
    print(f"  ratio wangp/hf: {ratio:.2f} (target >= {target}) -> {'OK' if ratio >= target else 'BELOW TARGET'}; "
          f"peak RSS wangp {max(memory[0::2]):.0f} MB, hf {max(memory[1::2]):.0f} MB")


def hash_modes(hub: HubServer, tmp: Path, content: bytes, digest: str) -> None:
    """hashlib on this CPU, then fetch() with the follower hasher against hashing after assembly."""
    from wangp_cli.download import transfer

    sample = content[:256 << 20]
    started = time.perf_counter()
    hashlib.sha256(sample).hexdigest()
    rate = len(sample) / 1e6 / (time.perf_counter() - started)
    print(f"sha256: hashlib {rate:.0f} MB/s on {len(sample) / 1e6:.0f} MB in memory")
    hub.configure(ranges=True, throttle_bytes_per_second=None)
    remote = transfer.Remote(hub.url(REPO_ID, NAME), {"Accept-Encoding": "identity"}, len(content), digest, digest)
    results = {}
    for follow in (True, False, True, False):
        transfer.HASH_WHILE_FETCHING = follow
        dest = tmp / f"hash-{follow}" / NAME
        dest.parent.mkdir(exist_ok=True)
        started = time.perf_counter()
        transfer.fetch(remote, dest, what=NAME, connections=CONNECTIONS)
        results.setdefault(follow, []).append(time.perf_counter() - started)
        shutil.rmtree(dest.parent)
    transfer.HASH_WHILE_FETCHING = True
    follow, after = min(results[True]), min(results[False])
    print(f"  fetch, {CONNECTIONS} connections, unthrottled: hash while fetching {follow:.2f} s, after assembly "
          f"{after:.2f} s (best of 2) -> {'while fetching' if follow <= after else 'after assembly'} is faster")


def resume(hub: HubServer, tmp: Path, content: bytes, env: dict, wangp: list[str], rate: int) -> None:
    home = wangp_home(tmp / "resume")
    hub.configure(ranges=True, throttle_bytes_per_second=rate)
    hub.clear_requests()
    process = subprocess.Popen(wangp + ["--home", str(home), "download", "t2v_bench", "--no-components"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    meta = home / "ckpts" / f".{NAME}.wangp-part.json"

    def recorded() -> int:
        try:
            return sum(done for _, _, done in json.loads(meta.read_text())["pieces"])
        except (OSError, ValueError, KeyError):
            return 0

    while recorded() < len(content) // 2:
        if process.poll() is not None:
            raise SystemExit(f"the download ended early: {process.stderr.read().decode()}")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = recorded()
    time.sleep(1)  # the server logs an aborted response at its next write
    first = sum(r.bytes_sent for r in hub.responses if r.method == "GET")
    hub.configure(ranges=True, throttle_bytes_per_second=None)
    hub.clear_requests()
    timed(wangp + ["--home", str(home), "download", "t2v_bench", "--no-components"], env)
    assert (home / "ckpts" / NAME).read_bytes() == content
    second = sum(r.bytes_sent for r in hub.responses if r.method == "GET")
    bound = CONNECTIONS * (1 << 20) + CONNECTIONS * max(1024, rate // 20)
    waste = first + second - len(content)
    print(f"resume, {CONNECTIONS} connections: killed with {kept / len(content):.1%} recorded; the second run fetched "
          f"{second:,} bytes for the {len(content) - kept:,} not recorded "
          f"({'exact' if second == len(content) - kept else 'NOT EXACT'}); fetched twice over both runs: {waste:,} "
          f"bytes (bound {bound:,} = {CONNECTIONS} x (1 MiB chunk + one server piece)) -> "
          f"{'OK' if waste <= bound else 'OVER BOUND'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--throttle-mb", type=float, default=5.0, help="per-connection limit of part 2, MB/s")
    parser.add_argument("--parts", default=",".join(PARTS), help="which parts to run, comma-separated: "
                        + ", ".join(PARTS))
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    size = args.size_mb * 1024 * 1024
    rate = int(args.throttle_mb * 1e6)
    content = safetensors_file(size)
    digest = hashlib.sha256(content).hexdigest()
    bin_dir = Path(sys.executable).parent
    wangp = [sys.executable, "-m", "wangp_cli"]
    hf = [str(bin_dir / "hf")] if (bin_dir / "hf").exists() else [shutil.which("hf") or "hf"]
    with tempfile.TemporaryDirectory() as tmp, HubServer({REPO_ID: {NAME: content}}) as hub:
        tmp = Path(tmp)
        hf_env = env_for(hub, tmp / "hf_home")
        parallel = env_for(hub, tmp / "hf_home", WANGP_DOWNLOAD_CONNECTIONS=str(CONNECTIONS))
        if "plain" in parts:
            compare("unthrottled olah (no Range: wangp falls back to one connection)", hub, tmp, content, args.runs,
                    env_for(hub, tmp / "hf_home"), hf_env, wangp, hf, 0.9)
        if "ranges" in parts:
            hub.configure(ranges=True)
            compare(f"unthrottled olah with ranges (wangp {CONNECTIONS} connections)", hub, tmp, content,
                    args.runs, parallel, hf_env, wangp, hf, 0.9)
        if "throttled" in parts:
            hub.configure(ranges=True, throttle_bytes_per_second=rate)
            compare(f"throttled to {args.throttle_mb:g} MB/s per connection (wangp {CONNECTIONS} connections, hf "
                    f"one)", hub, tmp, content, args.runs, parallel, hf_env, wangp, hf, 3.0)
        if "hash" in parts:
            hash_modes(hub, tmp, content, digest)
        if "resume" in parts:
            resume(hub, tmp, content, parallel, wangp, rate)
        print(f"server (olah + the test middleware) peak RSS: {server_peak_mb(hub):.0f} MB for a "
              f"{len(content) / 1e6:.0f} MB file")


if __name__ == "__main__":
    main()
