"""Download throughput and resume cost, against a loopback olah Hub mirror (tests/servers.py HubServer).

1. Throughput: ``wangp download`` of a ~1 GB LFS file, side by side with ``hf download`` of the same file
   (alternating runs). Target: wangp / hf throughput >= 0.9.
2. Resume: a throttled ``wangp download`` is SIGKILLed at ~50%, then run again; the bytes the server sends on the
   second run beyond (size - kill point) are the waste. Target: <= 5% of the size beyond the kill point.

Usage: python bench/download_speed.py [--size-mb 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
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


def env_for(hub: HubServer, hf_home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and "proxy" not in k.lower()}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1,localhost", PYTHONPATH=str(REPO), HF_HUB_DISABLE_PROGRESS_BARS="1")
    return env


def wangp_home(root: Path) -> Path:
    home = root / "home"
    (home / "finetunes").mkdir(parents=True)
    (home / "ckpts").mkdir()
    url = f"https://huggingface.co/{REPO_ID}/resolve/main/{NAME}"
    (home / "finetunes" / "t2v_bench.json").write_text(json.dumps({"model": {
        "name": "bench", "architecture": "t2v_1.3B", "description": "", "URLs": [url]}, "seed": -1}))
    return home


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mb * 1024 * 1024
    content = os.urandom(size)  # throughput only: any bytes (random, so no compression helps either side)
    bin_dir = Path(sys.executable).parent
    wangp = [sys.executable, "-m", "wangp_cli"]
    hf = [str(bin_dir / "hf")] if (bin_dir / "hf").exists() else [shutil.which("hf") or "hf"]
    with tempfile.TemporaryDirectory() as tmp, HubServer({REPO_ID: {NAME: content}}) as hub:
        tmp = Path(tmp)
        env = env_for(hub, tmp / "hf_home")
        ours, theirs = [], []
        for run in range(args.runs):
            home = wangp_home(tmp / f"w{run}")
            ours.append(timed(wangp + ["--home", str(home), "download", "t2v_bench", "--no-components"], env))
            assert (home / "ckpts" / NAME).stat().st_size == len(content)
            shutil.rmtree(home)
            out = tmp / f"h{run}"
            theirs.append(timed(hf + ["download", REPO_ID, NAME, "--local-dir", str(out)], env))
            assert (out / NAME).stat().st_size == len(content)
            shutil.rmtree(out)
        mb = len(content) / 1e6
        ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
        print(f"file: {mb:.0f} MB from olah on 127.0.0.1, {args.runs} alternating runs (medians)")
        print(f"wangp download: {ours_s:.2f} s = {mb / ours_s:.0f} MB/s (runs: {', '.join(f'{t:.2f}' for t in ours)})")
        print(f"hf download:    {theirs_s:.2f} s = {mb / theirs_s:.0f} MB/s (runs: "
              f"{', '.join(f'{t:.2f}' for t in theirs)})")
        ratio = theirs_s / ours_s
        print(f"throughput ratio wangp/hf: {ratio:.2f} (target >= 0.9) -> {'OK' if ratio >= 0.9 else 'BELOW TARGET'}")

        # Resume after SIGKILL at ~50%.
        home = wangp_home(tmp / "resume")
        hub.configure(ranges=True, throttle_bytes_per_second=max(len(content) // 8, 1))
        env["WANGP_DOWNLOAD_TIMEOUT"] = "600"  # the test server's Range layer buffers the file before answering
        process = subprocess.Popen(wangp + ["--home", str(home), "download", "t2v_bench", "--no-components"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        part = home / "ckpts" / f".{NAME}.wangp-part"
        while not part.exists() or part.stat().st_size < len(content) // 2:
            if process.poll() is not None:
                raise SystemExit(f"the download ended early: {process.stderr.read().decode()}")
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at = part.stat().st_size
        hub.configure(ranges=True, throttle_bytes_per_second=None)
        time.sleep(2)  # let the server log the aborted response before the log is cleared
        hub.clear_requests()
        timed(wangp + ["--home", str(home), "download", "t2v_bench", "--no-components"], env)
        assert (home / "ckpts" / NAME).stat().st_size == len(content)
        sent = sum(r.bytes_sent for r in hub.responses if r.method == "GET")
        waste = sent - (len(content) - killed_at)
        print(f"resume: killed at {killed_at / len(content):.1%}; second run fetched {sent:,} bytes for the "
              f"{len(content) - killed_at:,} missing; beyond the kill point: {waste / len(content):.2%} of the file "
              f"(target <= 5%) -> {'OK' if waste <= 0.05 * len(content) else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
