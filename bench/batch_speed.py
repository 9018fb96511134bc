"""20 tiny generations: a shell loop of single ``wangp generate`` runs against one ``--manifest`` run.

Both produce the same 20 videos (tiny random Wan t2v model, 64x64, 5 frames, 2 steps, CPU). The loop pays
interpreter start, imports and the model load 20 times; the manifest run once. Prints both wall times and the ratio.

Usage: python bench/batch_speed.py [--jobs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    from wangp_cli.generate import tiny

    with tempfile.TemporaryDirectory(prefix="wangp-bench-batch-") as folder:
        folder = Path(folder)
        home = tiny.make_home(folder / "home", "t2v")
        wangp = f"{shlex.quote(sys.executable)} -m wangp_cli --home {shlex.quote(str(home.root))} -q"
        common = "--quantization none --frames 5 --pipeline-arg max_sequence_length=16"
        loop = "\n".join(f"{wangp} generate -m {home.model_id} --seed {i} {common} -o {folder}/loop/job{i}.mp4"
                         for i in range(args.jobs))
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
        start = time.perf_counter()
        subprocess.run(["bash", "-e", "-c", loop], check=True, env=env, capture_output=True)
        loop_seconds = time.perf_counter() - start
        manifest = folder / "jobs.jsonl"
        manifest.write_text("".join(json.dumps({"id": f"job{i}", "model": home.model_id, "seed": i, "frames": 5,
                                                "quantization": "none"}) + "\n" for i in range(args.jobs)))
        start = time.perf_counter()
        subprocess.run(shlex.split(f"{wangp} generate --manifest {manifest} -o {folder}/batch "
                                   "--pipeline-arg max_sequence_length=16"), check=True, env=env, capture_output=True)
        batch_seconds = time.perf_counter() - start
        made = len(list((folder / "batch").glob("*.mp4"))), len(list((folder / "loop").glob("*.mp4")))
    print(f"{args.jobs} tiny jobs (Wan t2v, 64x64, 5 frames, 2 steps, CPU); videos made: loop {made[1]}, "
          f"manifest {made[0]}")
    print(f"shell loop of single runs  {loop_seconds:7.1f} s  ({loop_seconds / args.jobs:.2f} s per job)")
    print(f"one manifest run           {batch_seconds:7.1f} s  ({batch_seconds / args.jobs:.2f} s per job)")
    print(f"ratio loop / manifest: {loop_seconds / batch_seconds:.1f}x")


if __name__ == "__main__":
    main()
