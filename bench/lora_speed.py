"""LoRA load overhead: loading a Wan-1.3B-shaped transformer (random weights, WanGP's original layout, bf16) with a
rank-32 LoRA on every attention and FFN layer (as the lightx2v step-distill LoRAs) against loading it without,
16-bit and int8 (``auto_quantize``). Each load is a fresh process (peak RSS is per process) timed from the first
byte read to a model ready to run; the baseline and the LoRA run alternate, side by side.

torch runs with ``--threads`` (1 by default): on a small shared machine OpenMP's spinning threads make small tensor
operations up to 100x slower when other processes compete for the cores, which would measure the neighbours.

Usage: python bench/lora_speed.py [--runs 2] [--rank 32] [--layers 30] [--threads 1] [--no-int8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

#: Wan 2.1 T2V 1.3B
CONFIG = {"patch_size": (1, 2, 2), "num_attention_heads": 12, "attention_head_dim": 128, "in_channels": 16,
          "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 8960, "num_layers": 30,
          "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6}
#: original-layout LoRA targets of each block (lightx2v's)
TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.k",
           "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")

LOAD = r"""
import json, resource, sys, time
import torch, diffusers, optimum.quanto, peft  # imports are not timed
from diffusers.loaders import WanLoraLoaderMixin, single_file_utils  # noqa: F401
from wangp_cli.families.wan import lora as wan_lora
from wangp_cli.generate import loras, weights
transformer, lora, quantize = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
torch.set_num_threads(int(sys.argv[4]))
start = time.perf_counter()
loaded = weights.load_transformer([transformer], torch.bfloat16, quantize=quantize)
loaded_at = time.perf_counter()
if lora:
    attached = loras.attach([loaded.model], [wan_lora.to_diffusers(loras.read_lora(lora), name="lora")])
    attached.set_weights([1.0])
end = time.perf_counter()
print(json.dumps({"seconds": end - start, "lora_seconds": end - loaded_at,
                  "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def write_files(folder: Path, layers: int, rank: int) -> tuple[Path, Path]:
    import torch
    from diffusers import WanTransformer3DModel
    from safetensors.torch import save_file

    from wangp_cli.families.wan.tiny import wangp_config
    from wangp_cli.generate import tiny

    torch.manual_seed(0)
    model = WanTransformer3DModel(**dict(CONFIG, num_layers=layers)).to(torch.bfloat16)
    transformer = tiny.write_transformer("t2v", model, folder / "wan_1.3B_bf16.safetensors", "bf16",
                                         config=wangp_config("t2v", model))
    original = tiny.to_original_layout("t2v", model)
    generator = torch.Generator().manual_seed(1)
    tensors = {}
    for block in range(layers):
        for target in TARGETS:
            out_features, in_features = original[f"blocks.{block}.{target}.weight"].shape
            name = f"diffusion_model.blocks.{block}.{target}"
            tensors[f"{name}.lora_down.weight"] = (torch.randn(rank, in_features, generator=generator) * 0.01).to(
                torch.bfloat16)
            tensors[f"{name}.lora_up.weight"] = (torch.randn(out_features, rank, generator=generator) * 0.01).to(
                torch.bfloat16)
            tensors[f"{name}.alpha"] = torch.tensor(float(rank))
    lora = folder / f"lora_rank{rank}.safetensors"
    save_file(tensors, str(lora))
    return transformer, lora


def measure(transformer: Path, lora: Path | None, quantize: bool, threads: int) -> dict:
    done = subprocess.run([sys.executable, "-c", LOAD, str(transformer), str(lora or ""), "1" if quantize else "0",
                           str(threads)],
                          capture_output=True, text=True, cwd=REPO, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-int8", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        transformer, lora = write_files(Path(folder), args.layers, args.rank)
        print(f"transformer {transformer.stat().st_size / 2**30:.2f} GiB, LoRA rank {args.rank} "
              f"{lora.stat().st_size / 2**20:.0f} MiB ({args.layers} blocks x {len(TARGETS)} layers)")
        for quantize in (False,) if args.no_int8 else (False, True):
            rows = {"baseline": [], "lora": []}
            for _ in range(args.runs):
                rows["baseline"].append(measure(transformer, None, quantize, args.threads))
                rows["lora"].append(measure(transformer, lora, quantize, args.threads))
            base_s = statistics.median(r["seconds"] for r in rows["baseline"])
            lora_s = statistics.median(r["seconds"] for r in rows["lora"])
            attach_s = statistics.median(r["lora_seconds"] for r in rows["lora"])
            base_rss = max(r["peak_rss"] for r in rows["baseline"])
            lora_rss = max(r["peak_rss"] for r in rows["lora"])
            print(f"{'int8 (auto_quantize)' if quantize else '16-bit'}: load {base_s:.2f} s -> with LoRA "
                  f"{lora_s:.2f} s (x{lora_s / base_s:.2f}; LoRA read+convert+attach {attach_s:.2f} s), peak RSS "
                  f"{base_rss / 2**30:.2f} -> {lora_rss / 2**30:.2f} GiB (x{lora_rss / base_rss:.2f})")


if __name__ == "__main__":
    main()
