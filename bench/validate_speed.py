"""Wall time of ``wangp validate`` over 200 definitions, side by side with ``python -c "import typer, rich,
jsonschema"`` (the cost of the libraries alone). Target: ratio <= 1.5.

Usage: python bench/validate_speed.py [--definitions 200] [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_home(folder: Path, count: int) -> None:
    """``count`` definitions: the shipped ones under new ids, every tenth with findings to report."""
    shipped = sorted((REPO / "finetunes").glob("*.json"))
    target = folder / "finetunes"
    target.mkdir(parents=True)
    for index in range(count):
        data = json.loads(shipped[index % len(shipped)].read_text(encoding="utf-8"))
        if index % 10 == 9:
            data["model"]["URLs"].append("ckpts/local_copy.safetensors")  # W1 + W5
            data["video_length"] = 80  # W8
        (target / f"{shipped[index % len(shipped)].stem}_{index:03d}.json").write_text(
            json.dumps(data, indent=4), encoding="utf-8")


def wall(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--definitions", type=int, default=200)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    wangp = shutil.which("wangp", path=os.path.dirname(sys.executable)) or shutil.which("wangp")
    candidate = [wangp] if wangp else [sys.executable, "-m", "wangp_cli"]
    baseline = [sys.executable, "-c", "import typer, rich, jsonschema"]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        make_home(home, args.definitions)
        command = candidate + ["validate", "finetunes"]
        check = subprocess.run(command, cwd=home, capture_output=True, text=True)
        print(f"wangp validate over {args.definitions} definitions: exit {check.returncode}, "
              f"{check.stdout.strip().splitlines()[-1]}")
        for _ in range(2):  # warm the file cache and .pyc files
            wall(command, home), wall(baseline, home)
        ours, base = [], []
        for _ in range(args.runs):  # interleaved, so that machine noise hits both alike
            ours.append(wall(command, home))
            base.append(wall(baseline, home))
    ours_median, base_median = statistics.median(ours), statistics.median(base)
    print(f"wangp validate ({args.definitions} files): median {ours_median * 1000:.0f} ms "
          f"(min {min(ours) * 1000:.0f}, max {max(ours) * 1000:.0f}) over {args.runs} runs")
    print(f"import typer, rich, jsonschema:          median {base_median * 1000:.0f} ms "
          f"(min {min(base) * 1000:.0f}, max {max(base) * 1000:.0f})")
    ratio = ours_median / base_median
    print(f"ratio: {ratio:.2f} (target <= 1.5) -> {'OK' if ratio <= 1.5 else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
