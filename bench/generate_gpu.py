"""GPU: seconds per denoising step and peak memory of ``wangp generate`` per memory profile, beside the diffusers
docs' own recipe, with Wan 2.1 1.3B-shaped random weights at 832x480, 81 frames.

Like with like (gpu-review D14): every row is a fresh process (its own CUDA context, allocator and host RSS peak),
loads the same weights and the same components folder (the tiny text encoder, the real-shape Wan 2.1 VAE in fp32),
runs the same call (CFG, 16 text tokens, the VAE decode) and times steps 2..n with CUDA synchronised: wangp rows
from ``RunResult.step_seconds``, the diffusers rows from the end of each step (``callback_on_step_end`` plus
``torch.cuda.synchronize``). Step 1 is left out everywhere (first offload move, group offloading's blocking first
pass, kernel autotuning). Attention: wangp runs with ``--attention sdpa`` where it has the option, as diffusers'
default.

Memory per row: peak VRAM allocated and reserved (``max_memory_allocated`` / ``max_memory_reserved``), pinned host
memory after the run (``torch.cuda.host_memory_stats()["allocated_bytes.current"]``) and the process's peak RSS
(``ru_maxrss``). The transformer has the 1.3B shapes (dim 1536, 30 blocks, 12 heads, ffn 8960), written in
WanGP's layout for wangp and in diffusers' layout for the recipe; the text encoder is tiny, so its cost (the real
UMT5-XXL: 11.4 GB in bf16) is in no column. Needs a CUDA GPU; prints why and exits 0 without one.

Usage: python bench/generate_gpu.py [--steps 4] [--frames 81] [--size 832x480] [--profiles gpu,offload,group,lowvram]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GIB = 1024**3
SHAPE_13B = {"num_attention_heads": 12, "attention_head_dim": 128, "ffn_dim": 8960, "num_layers": 30,
             "rope_max_seq_len": 1024}


def build(folder: Path) -> None:
    """The 1.3B-shaped transformer (random, bf16) in WanGP's layout under ``folder/home`` and in diffusers' layout
    under ``folder/diffusers-transformer``; the real-shape Wan 2.1 VAE (random) in the components folder."""
    import shutil

    import torch
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from wangp_cli.generate import tiny

    config = dict(tiny.TRANSFORMER_CONFIGS["t2v"], **SHAPE_13B)
    with torch.device("cuda"):  # random init on the GPU is seconds, not minutes
        model = WanTransformer3DModel(**config).to(torch.bfloat16)
        vae = AutoencoderKLWan()
    model = model.cpu()
    home = tiny.make_home(folder / "home", "t2v", model=model)
    shutil.rmtree(home.components / "vae")
    vae.cpu().save_pretrained(home.components / "vae")
    model.save_pretrained(folder / "diffusers-transformer")
    (folder / "home.json").write_text(json.dumps({"root": str(home.root), "model_id": home.model_id,
                                                   "components": str(home.components),
                                                   "pipeline_kwargs": home.pipeline_kwargs}))


def _memory() -> dict:
    import resource

    import torch

    stats = torch.cuda.host_memory_stats() if hasattr(torch.cuda, "host_memory_stats") else {}
    return {"vram_allocated_bytes": torch.cuda.max_memory_allocated(),
            "vram_reserved_bytes": torch.cuda.max_memory_reserved(),
            "pinned_host_bytes": stats.get("allocated_bytes.current", 0),
            "ram_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def later_steps(seconds: list[float]) -> float:
    """Mean of steps 2..n."""
    later = seconds[1:]
    return sum(later) / len(later) if later else float("nan")


def wangp_row(folder: Path, profile: str, width: int, height: int, frames: int, steps: int) -> dict:
    import inspect

    from wangp_cli.core.definitions import Catalog
    from wangp_cli.core.home import Home
    from wangp_cli.core.variants import Preference
    from wangp_cli.generate.request import build_request
    from wangp_cli.generate.runner import Generator

    home = json.loads((folder / "home.json").read_text())
    catalog = Catalog(Home(home["root"]))
    same_attention = {"attention": "sdpa"} if "attention" in inspect.signature(build_request).parameters else {}
    request = build_request(catalog, home["model_id"], {"resolution": f"{width}x{height}", "frames": frames,
                                                        "steps": steps, "seed": 1, "guidance": 5.0,
                                                        "flow_shift": 5.0},
                            preference=Preference(quantization="none", dtype="bf16"), profile=profile,
                            pipeline_kwargs=home["pipeline_kwargs"], **same_attention)
    generator = Generator(catalog)
    start = time.perf_counter()
    try:
        rendering = generator.render(request)
        memory = {**_memory(), **{k: v for k, v in rendering.result.peak_memory.items() if k in (
            "vram_allocated_bytes", "vram_reserved_bytes", "pinned_host_bytes", "ram_bytes")}}
    finally:
        generator.close()
    result = rendering.result
    return {"per_step": later_steps(list(result.step_seconds)), "load": rendering.timings["load"],
            "total": time.perf_counter() - start, "profile": result.profile, **memory}


def diffusers_row(folder: Path, offload: bool, width: int, height: int, frames: int, steps: int) -> dict:
    """https://huggingface.co/docs/diffusers/api/pipelines/wan: fp32 VAE, bf16 rest, .to("cuda") or offload."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    home = json.loads((folder / "home.json").read_text())
    start = time.perf_counter()
    transformer = WanTransformer3DModel.from_pretrained(folder / "diffusers-transformer", torch_dtype=torch.bfloat16)
    vae = AutoencoderKLWan.from_pretrained(home["components"], subfolder="vae", torch_dtype=torch.float32)
    pipe = WanPipeline.from_pretrained(home["components"], transformer=transformer, vae=vae,
                                       torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=5.0)
    pipe.enable_model_cpu_offload() if offload else pipe.to("cuda")
    load = time.perf_counter() - start
    torch.cuda.reset_peak_memory_stats()
    marks = []

    def step_end(_pipe, _step, _timestep, callback_kwargs):
        torch.cuda.synchronize()
        marks.append(time.perf_counter())
        return callback_kwargs

    pipe(prompt="a cat", height=height, width=width, num_frames=frames, num_inference_steps=steps,
         guidance_scale=5.0, generator=torch.Generator("cpu").manual_seed(1), output_type="np",
         callback_on_step_end=step_end, **home["pipeline_kwargs"])
    memory = _memory()
    later = [b - a for a, b in zip(marks, marks[1:])]  # the steps after the first (no start mark before step 1)
    return {"per_step": sum(later) / len(later), "load": load,
            "total": time.perf_counter() - start, "profile": "offload" if offload else "gpu", **memory}


def run_row(folder: Path, row: str, args) -> dict:
    """One row in a fresh process (``--row``): its own CUDA context, allocator and RSS peak."""
    command = [sys.executable, __file__, "--row", row, "--folder", str(folder), "--steps", str(args.steps),
               "--frames", str(args.frames), "--size", args.size]
    child = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    if child.returncode or not lines:
        return {"error": (child.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="denoising steps (>= 2: step 1 is not timed)")
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--size", default="832x480")
    parser.add_argument("--profiles", default="gpu,offload,group,lowvram")
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: one row in this process
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2 (steps 2..n are timed)")
    width, height = (int(v) for v in args.size.lower().split("x"))
    if args.row:
        kind, _, profile = args.row.partition(":")
        if kind == "wangp":
            row = wangp_row(args.folder, profile, width, height, args.frames, args.steps)
        else:
            row = diffusers_row(args.folder, profile == "offload", width, height, args.frames, args.steps)
        print(json.dumps(row))
        return
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU: skipped (this benchmark measures GPU profiles)")
        return
    print(f"{torch.cuda.get_device_name(0)}; Wan 1.3B-shaped random weights, {width}x{height}, {args.frames} frames, "
          f"{args.steps} steps (s/step over steps 2..n, CUDA-synchronised), bf16 (VAE fp32), CFG 5; each row a "
          "fresh process; tiny text encoder (the real UMT5-XXL, 11.4 GB, is in no column)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="wangp-bench-gpu-") as folder:
        folder = Path(folder)
        build(folder)
        for profile in ("gpu", "offload"):
            rows.append(("diffusers docs recipe", run_row(folder, f"diffusers:{profile}", args)))
        for profile in args.profiles.split(","):
            rows.append(("wangp generate", run_row(folder, f"wangp:{profile}", args)))
    header = ["", "profile", "s/step", "alloc G", "reserved G", "pinned G", "RSS G", "load s", "total s"]
    print(f"{header[0]:24}{header[1]:10}" + "".join(f"{h:>11}" for h in header[2:]))
    for name, row in rows:
        if "error" in row:
            print(f"{name:24}{'':10}  error: {row['error']}")
            continue
        sizes = [row[k] / GIB for k in ("vram_allocated_bytes", "vram_reserved_bytes", "pinned_host_bytes",
                                        "ram_bytes")]
        print(f"{name:24}{row['profile']:10}{row['per_step']:11.2f}" + "".join(f"{v:11.1f}" for v in sizes)
              + f"{row['load']:11.1f}{row['total']:11.1f}")


if __name__ == "__main__":
    main()
