"""GPU: seconds per denoising step and peak VRAM of ``wangp generate`` per memory profile, beside the diffusers
docs' own recipe, with Wan 2.1 1.3B-shaped random weights at 832x480, 81 frames.

The transformer has the 1.3B shapes (dim 1536, 30 blocks, 12 heads, ffn 8960) and is written in WanGP's original
layout (bf16); the VAE has the real Wan 2.1 architecture (random weights); the text encoder is tiny (its cost is
not what is measured, so the transformer's text projection takes its small width). Needs a CUDA GPU; prints why
and exits 0 without one.

Usage: python bench/generate_gpu.py [--steps 4] [--frames 81] [--size 832x480] [--profiles gpu,offload,group,lowvram]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build(folder: Path):
    import torch
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from wangp_cli.generate import tiny

    config = dict(tiny.TRANSFORMER_CONFIGS["t2v"], num_attention_heads=12, attention_head_dim=128, ffn_dim=8960,
                  num_layers=30, rope_max_seq_len=1024)
    with torch.device("cuda"):  # random init on the GPU is seconds, not minutes
        model = WanTransformer3DModel(**config).to(torch.bfloat16)
    model = model.cpu()
    home = tiny.make_home(folder / "home", "t2v", model=model)
    shutil.rmtree(home.components / "vae")
    AutoencoderKLWan().save_pretrained(home.components / "vae")  # the real Wan 2.1 VAE shapes, random weights
    diffusers_dir = folder / "diffusers-transformer"
    model.save_pretrained(diffusers_dir)
    return home, diffusers_dir


def wangp_run(home, profile: str, width: int, height: int, frames: int, steps: int) -> dict:
    from wangp_cli.core.definitions import Catalog
    from wangp_cli.core.home import Home
    from wangp_cli.generate.request import build_request
    from wangp_cli.generate.runner import Generator

    catalog = Catalog(Home(home.root))
    request = build_request(catalog, home.model_id, {"resolution": f"{width}x{height}", "frames": frames,
                                                     "steps": steps, "seed": 1},
                            preference=home.preference, profile=profile, pipeline_kwargs=home.pipeline_kwargs)
    generator = Generator(catalog)
    try:
        rendering = generator.render(request)
    finally:
        generator.close()
    result = rendering.result
    return {"per_step": result.timings["denoise"] / steps, "peak_vram": result.peak_memory.get("vram_bytes", 0),
            "total": sum(rendering.timings.values()), "profile": result.profile}


def diffusers_recipe(home, diffusers_dir: Path, offload: bool, width: int, height: int, frames: int,
                     steps: int) -> dict:
    """https://huggingface.co/docs/diffusers/api/pipelines/wan: fp32 VAE, bf16 rest, .to("cuda") or offload."""
    import torch
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel

    start = time.perf_counter()
    transformer = WanTransformer3DModel.from_pretrained(diffusers_dir, torch_dtype=torch.bfloat16)
    vae = AutoencoderKLWan.from_pretrained(home.components, subfolder="vae", torch_dtype=torch.float32)
    pipe = WanPipeline.from_pretrained(home.components, transformer=transformer, vae=vae, torch_dtype=torch.bfloat16)
    pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=5.0)
    pipe.enable_model_cpu_offload() if offload else pipe.to("cuda")
    torch.cuda.reset_peak_memory_stats()
    marks = []
    pipe(prompt="a cat", height=height, width=width, num_frames=frames, num_inference_steps=steps,
         generator=torch.Generator("cpu").manual_seed(1), output_type="np", max_sequence_length=16,
         callback_on_step_end=lambda *args: (marks.append(time.perf_counter()), args[-1])[1])
    per_step = (marks[-1] - marks[0]) / (len(marks) - 1) if len(marks) > 1 else float("nan")
    result = {"per_step": per_step, "peak_vram": torch.cuda.max_memory_allocated(),
              "total": time.perf_counter() - start, "profile": "offload" if offload else "gpu"}
    del pipe, transformer, vae
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--size", default="832x480")
    parser.add_argument("--profiles", default="gpu,offload,group,lowvram")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU: skipped (this benchmark measures GPU profiles)")
        return
    width, height = (int(v) for v in args.size.lower().split("x"))
    print(f"{torch.cuda.get_device_name(0)}; Wan 1.3B-shaped random weights, {width}x{height}, {args.frames} frames, "
          f"{args.steps} steps, bf16 (VAE fp32), CFG on")
    rows = []
    with tempfile.TemporaryDirectory(prefix="wangp-bench-gpu-") as folder:
        home, diffusers_dir = build(Path(folder))
        for offload in (False, True):
            rows.append(("diffusers docs recipe", diffusers_recipe(home, diffusers_dir, offload, width, height,
                                                                    args.frames, args.steps)))
        for profile in args.profiles.split(","):
            torch.cuda.reset_peak_memory_stats()
            rows.append(("wangp generate", wangp_run(home, profile, width, height, args.frames, args.steps)))
    print(f"{'':24}{'profile':10}{'s/step':>9}{'peak VRAM':>12}{'total s':>9}")
    for name, row in rows:
        print(f"{name:24}{row['profile']:10}{row['per_step']:9.2f}{row['peak_vram'] / 1024**3:10.1f} G"
              f"{row['total']:9.1f}")


if __name__ == "__main__":
    main()
