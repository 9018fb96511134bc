"""Wall time of ``wangp generate`` against the plain diffusers script doing the same work, on CPU, imports excluded.

Both sides import the same classes before the clock starts (diffusers imports lazily), load the same random Wan t2v
weights from disk (wangp: WanGP's original layout, converted at load;
diffusers: its own folder layout), the same tiny text encoder and VAE, run the same call and write an mp4. Each run is
a fresh process that imports everything first and times from there to the written file. Target: ratio <= 1.1.

Usage: python bench/generate_speed.py [--runs 5] [--dim 256] [--layers 8] [--size 128] [--frames 17] [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WANGP = r"""
import json, sys, time
import torch, diffusers, transformers, optimum.quanto, imageio_ffmpeg  # imports are not timed
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel  # as the script
from diffusers.loaders import single_file_utils  # the key converters wangp uses
from accelerate import init_empty_weights
from wangp_cli.cli import app
from wangp_cli.generate import engine, runner, weights, video  # noqa: F401
from wangp_cli.families.wan import convert, pipeline  # noqa: F401 (the family's hooks load on first call)
home, model_id, size, frames, steps, out = sys.argv[1:7]
start = time.perf_counter()
app(["--home", home, "-q", "generate", "-m", model_id, "--quantization", "none", "--prompt", "a cat in the snow",
     "--resolution", f"{size}x{size}", "--frames", frames, "--steps", steps, "--seed", "1", "--guidance", "5",
     "--flow-shift", "5", "--pipeline-arg", "max_sequence_length=16", "-o", out], standalone_mode=False)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

DIFFUSERS = r"""
import json, sys, time
import torch, diffusers, transformers, imageio_ffmpeg  # imports are not timed
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
transformer_dir, components, size, frames, steps, out = sys.argv[1:7]
start = time.perf_counter()
transformer = WanTransformer3DModel.from_pretrained(transformer_dir, torch_dtype=torch.bfloat16)
vae = AutoencoderKLWan.from_pretrained(components, subfolder="vae", torch_dtype=torch.float32)
pipe = WanPipeline.from_pretrained(components, transformer=transformer, vae=vae, torch_dtype=torch.bfloat16)
pipe.set_progress_bar_config(disable=True)
pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=5.0)
video = pipe(prompt="a cat in the snow", negative_prompt=None, height=int(size), width=int(size),
             num_frames=int(frames), num_inference_steps=int(steps), guidance_scale=5.0, max_sequence_length=16,
             generator=torch.Generator("cpu").manual_seed(1)).frames[0]
writer = imageio_ffmpeg.write_frames(out, (int(size), int(size)), fps=16, quality=8)
writer.send(None)
for frame in video:
    writer.send((frame * 255).round().clip(0, 255).astype("uint8").tobytes())
writer.close()
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def build(folder: Path, dim: int, layers: int):
    import torch
    from diffusers import WanTransformer3DModel

    from wangp_cli.generate import tiny

    config = dict(tiny.TRANSFORMER_CONFIGS["t2v"], num_attention_heads=dim // 64, attention_head_dim=64,
                  ffn_dim=4 * dim, num_layers=layers)
    model = WanTransformer3DModel(**config)
    tiny._randomize(model, 0)
    home = tiny.make_home(folder / "home", "t2v", model=model)
    diffusers_dir = folder / "diffusers-transformer"
    model.to(torch.bfloat16).save_pretrained(diffusers_dir)
    params = sum(p.numel() for p in model.parameters())
    return home, diffusers_dir, params


def run(script: str, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wangp-bench-generate-") as folder:
        folder = Path(folder)
        home, diffusers_dir, params = build(folder, args.dim, args.layers)
        common = [args.size, args.frames, args.steps]
        wangp, plain = [], []
        for index in range(args.runs):  # alternate, so that drift hits both sides alike
            wangp.append(run(WANGP, [home.root, home.model_id, *common, folder / f"wangp{index}.mp4"]))
            plain.append(run(DIFFUSERS, [diffusers_dir, home.components, *common, folder / f"plain{index}.mp4"]))
    print(f"model: Wan t2v, {params / 1e6:.1f} M parameters (dim {args.dim}, {args.layers} blocks), bf16 on CPU; "
          f"{args.size}x{args.size}, {args.frames} frames, {args.steps} steps, CFG on")
    print(f"wangp generate      median {statistics.median(wangp):6.2f} s   runs {', '.join(f'{t:.2f}' for t in wangp)}")
    print(f"plain diffusers     median {statistics.median(plain):6.2f} s   runs {', '.join(f'{t:.2f}' for t in plain)}")
    ratio = statistics.median(wangp) / statistics.median(plain)
    print(f"ratio wangp / diffusers: {ratio:.3f} (target <= 1.1) -> {'OK' if ratio <= 1.1 else 'OVER'}")


if __name__ == "__main__":
    main()
