"""Wall time of ``wangp validate`` over 200 definitions, and (target v12) over WanGP 12's own defaults in
../shared/wangp-head/defaults, side by side with ``python -c "import typer, rich, jsonschema"`` (the cost of the
libraries alone). Target: ratio <= 1.5 for both.

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
WANGP_DEFAULTS = REPO.parent / "shared" / "wangp-head" / "defaults"


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


#: The commands run as an installed tool does: .pyc files written once and reused (an environment that sets
#: PYTHONDONTWRITEBYTECODE would make every run compile the edited modules again).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, env=ENV)
    return time.perf_counter() - start


def measure(label: str, command: list[str], baseline: list[str], cwd: Path, runs: int) -> None:
    """Print the median wall time of ``command`` and of the import floor, interleaved, and their ratio."""
    check = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=ENV, check=False)
    print(f"wangp validate over {label}: exit {check.returncode}, {check.stdout.strip().splitlines()[-1]}")
    for _ in range(2):  # warm the file cache and .pyc files
        wall(command, cwd), wall(baseline, cwd)
    ours, base = [], []
    for _ in range(runs):  # interleaved, so that machine noise hits both alike
        ours.append(wall(command, cwd))
        base.append(wall(baseline, cwd))
    ours_median, base_median = statistics.median(ours), statistics.median(base)
    print(f"wangp validate ({label}): median {ours_median * 1000:.0f} ms "
          f"(min {min(ours) * 1000:.0f}, max {max(ours) * 1000:.0f}) over {runs} runs")
    print(f"import typer, rich, jsonschema:          median {base_median * 1000:.0f} ms "
          f"(min {min(base) * 1000:.0f}, max {max(base) * 1000:.0f})")
    ratio = ours_median / base_median
    print(f"ratio: {ratio:.2f} (target <= 1.5) -> {'OK' if ratio <= 1.5 else 'OVER TARGET'}")


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
        measure(f"{args.definitions} files (target july)", candidate + ["validate", "finetunes", "--target", "july"],
                baseline, home, args.runs)
        if WANGP_DEFAULTS.is_dir():
            count = len(list(WANGP_DEFAULTS.glob("*.json")))
            measure(f"WanGP 12's {count} defaults (target v12)",
                    candidate + ["validate", str(WANGP_DEFAULTS), "--target", "v12"], baseline, home, args.runs)
        else:
            print(f"skipped WanGP 12's defaults: {WANGP_DEFAULTS} not present")


if __name__ == "__main__":
    main()
