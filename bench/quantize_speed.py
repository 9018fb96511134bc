"""Peak RSS and wall time of ``wangp quantize`` on a Wan 2.1 1.3B-shaped checkpoint (original layout, bf16,
about 2.8 GB, generated here), side by side with the whole-model approach WanGP uses (load everything, quanto
quantize + freeze, save) and with ``cp`` of the same file (the disk floor).
Targets: peak RSS <= 15% of the whole-model approach; wall time <= 2.5x cp.

Each command runs --repeat times (median wall time, highest peak RSS), each after os.sync(), so that none pays for the
write-back of another's dirty pages. wangp fsyncs its output; plain cp does not, so cp + sync is shown as well.

Usage: python bench/quantize_speed.py [--layers 30] [--dim 1536] [--ffn 8960] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WHOLE_MODEL = r"""
import sys, torch
from torch import nn
from safetensors.torch import load_file, save_file
from optimum.quanto import quantize, freeze, qint8
state = load_file(sys.argv[1])
root = nn.Module()
for name, tensor in state.items():
    module = root
    *parents, leaf = name.split(".")
    for part in parents:
        if not hasattr(module, part):
            module.add_module(part, nn.Module())
        module = getattr(module, part)
    module.register_parameter(leaf, nn.Parameter(tensor.to(torch.bfloat16), requires_grad=False))
for name, module in list(root.named_modules()):  # 2-D weights in blocks become real Linear layers
    leaf_weight = hasattr(module, "weight") and module.weight.dim() == 2 and not list(module.children())
    if name.startswith("blocks.") and leaf_weight:
        linear = nn.Linear(1, 1, bias=hasattr(module, "bias"))
        linear.weight, linear.bias = module.weight, getattr(module, "bias", None)
        parent, _, leaf = name.rpartition(".")
        setattr(root.get_submodule(parent), leaf, linear)
quantize(root, weights=qint8, include="blocks.*")
freeze(root)
save_file({k: v.contiguous() for k, v in root.state_dict().items()}, sys.argv[2])
"""


def wan_entries(layers: int, dim: int, ffn: int):
    from wangp_cli.quantize.safetensors_io import Entry

    entries = [Entry("patch_embedding.weight", "BF16", (dim, 16, 1, 2, 2)),
               Entry("patch_embedding.bias", "BF16", (dim,))]
    for name, shape in (("text_embedding.0", (dim, 4096)), ("text_embedding.2", (dim, dim)),
                        ("time_embedding.0", (dim, 256)), ("time_embedding.2", (dim, dim)),
                        ("time_projection.1", (6 * dim, dim))):
        entries += [Entry(f"{name}.weight", "BF16", shape), Entry(f"{name}.bias", "BF16", (shape[0],))]
    for index in range(layers):
        block = f"blocks.{index}"
        entries.append(Entry(f"{block}.modulation", "BF16", (1, 6, dim)))
        for attn in ("self_attn", "cross_attn"):
            for name in ("q", "k", "v", "o"):
                entries += [Entry(f"{block}.{attn}.{name}.weight", "BF16", (dim, dim)),
                            Entry(f"{block}.{attn}.{name}.bias", "BF16", (dim,))]
            entries += [Entry(f"{block}.{attn}.norm_q.weight", "BF16", (dim,)),
                        Entry(f"{block}.{attn}.norm_k.weight", "BF16", (dim,))]
        entries += [Entry(f"{block}.norm3.weight", "BF16", (dim,)), Entry(f"{block}.norm3.bias", "BF16", (dim,)),
                    Entry(f"{block}.ffn.0.weight", "BF16", (ffn, dim)), Entry(f"{block}.ffn.0.bias", "BF16", (ffn,)),
                    Entry(f"{block}.ffn.2.weight", "BF16", (dim, ffn)), Entry(f"{block}.ffn.2.bias", "BF16", (dim,))]
    entries += [Entry("head.head.weight", "BF16", (64, dim)), Entry("head.head.bias", "BF16", (64,)),
                Entry("head.modulation", "BF16", (1, 2, dim))]
    return entries


def write_checkpoint(path: Path, entries) -> None:
    """A valid safetensors file written tensor by tensor (random normal weights, scaled like real ones)."""
    import torch

    from wangp_cli.quantize.safetensors_io import encode_header

    generator = torch.Generator().manual_seed(0)
    with open(path, "wb") as handle:
        handle.write(encode_header(entries, {}))
        for entry in entries:
            tensor = (torch.randn(entry.shape, generator=generator) * 0.02).to(torch.bfloat16)
            handle.write(tensor.view(torch.int16).numpy().tobytes())


def measure(command: list[str]) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of a child process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[:3]} failed: {process.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--dim", type=int, default=1536)
    parser.add_argument("--ffn", type=int, default=8960)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_checkpoint(Path(args.write), wan_entries(args.layers, args.dim, args.ffn))
        return
    with tempfile.TemporaryDirectory(dir=REPO / "bench") as tmp:
        tmp = Path(tmp)
        source = tmp / "wan_1.3B_bench_bf16.safetensors"
        # written by a child process, so that this parent never holds torch (a child's peak RSS counts its parent's
        # pages at fork time)
        subprocess.run([sys.executable, __file__, "--write", str(source), "--layers", str(args.layers), "--dim",
                        str(args.dim), "--ffn", str(args.ffn)], check=True)
        size = source.stat().st_size
        subprocess.run(["cat", str(source)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
        env_python = sys.executable
        copy = str(tmp / "copy.safetensors")
        runs = {
            "cp": ["cp", str(source), copy],
            "cp + sync": ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", str(source), copy],
            "wangp quantize": [env_python, "-m", "wangp_cli", "quantize", "--input", str(source), "--output",
                               str(tmp / "wangp_quanto_bf16_int8.safetensors"), "--dtype", "bf16"],
            "whole model (quanto)": [env_python, "-c", WHOLE_MODEL, str(source),
                                     str(tmp / "whole_quanto_bf16_int8.safetensors")],
        }
        samples: dict = {name: [] for name in runs}
        for _ in range(args.repeat):
            for name, command in runs.items():
                os.sync()  # every run starts without dirty pages of the previous one to write back
                samples[name].append(measure(command))
                for produced in tmp.glob("*int8*"):
                    produced.unlink()
                (tmp / "copy.safetensors").unlink(missing_ok=True)
        results = {name: (statistics.median(w for w, _ in runs_), max(r for _, r in runs_))
                   for name, runs_ in samples.items()}
    print(f"source: {size / 1e9:.2f} GB bf16, {args.layers} blocks, dim {args.dim} (Wan 2.1 1.3B shapes)")
    for name, (wall, rss) in results.items():
        runs_ = ", ".join(f"{w:.2f}" for w, _ in samples[name])
        print(f"{name:22} wall {wall:7.2f} s (median of {runs_})   peak RSS {rss / 1e6:8.0f} MB")
    wangp_wall, wangp_rss = results["wangp quantize"]
    ratio_rss = wangp_rss / results["whole model (quanto)"][1]
    print(f"peak RSS wangp / whole model: {ratio_rss:.1%} (target <= 15%) -> {'OK' if ratio_rss <= 0.15 else 'OVER'}")
    # wangp fsyncs its output (nothing is lost); cp leaves its copy in the page cache: both floors are shown
    for floor in ("cp", "cp + sync"):
        ratio_wall = wangp_wall / results[floor][0]
        print(f"wall wangp / {floor}: {ratio_wall:.2f}x (target <= 2.5x) -> {'OK' if ratio_wall <= 2.5 else 'OVER'}")


if __name__ == "__main__":
    main()
