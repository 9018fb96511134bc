"""Wall time of one request with WanGP's step cache (``mag``, ``tea``) against the same request uncached, on CPU.

The request runs through the runner's pipeline (a random Wan t2v 1.3B-like model written in WanGP's layout, the
tiny text encoder and VAE) with ``generate.cache.apply_step_cache`` around ``engine.run``, as the runner calls it.
A short warm-up render comes first; then the uncached and the cached renders alternate ``--runs`` times and the medians
are compared: denoising time (what the cache speeds up) and the whole call (text encoding and VAE decode
included). ``MAD``: mean absolute difference of the uint8 frames from the uncached ones. On a shared CPU,
``OMP_NUM_THREADS=1`` steadies the timings.

The model's time embedding is scaled to change by about 0.1 a step, as a trained Wan's does: WanGP's TeaCache
polynomial is calibrated for that, and a random embedder never lets it skip (MagCache does not look at it).

Usage: python bench/cache_speed.py [--size 64] [--frames 9] [--steps 16] [--dim 256] [--layers 6]
       [--multiplier 2.0] [--start 0] [--runs 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def build(folder: Path, dim: int, layers: int):
    import torch
    from diffusers import WanTransformer3DModel

    from wangp_cli.generate import tiny

    config = dict(tiny.TRANSFORMER_CONFIGS["t2v"], num_attention_heads=max(dim // 64, 1),
                  attention_head_dim=min(dim, 64), ffn_dim=4 * dim, num_layers=layers)
    model = WanTransformer3DModel(**config)
    tiny._randomize(model, 0)
    with torch.no_grad():
        model.condition_embedder.time_embedder.linear_2.weight.mul_(0.02)  # a trained embedder's pace
    home = tiny.make_home(folder / "home", "t2v", model=model)
    return home, sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="width and height in pixels (multiple of 16)")
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--multiplier", type=float, default=2.0, help="skip_steps_multiplier")
    parser.add_argument("--start", type=float, default=0, help="skip_steps_start_step_perc")
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()

    import numpy as np

    from wangp_cli.core.definitions import Catalog
    from wangp_cli.core.home import Home
    from wangp_cli.generate import cache, engine
    from wangp_cli.generate.request import build_request
    from wangp_cli.generate.runner import Generator, model_files

    engine.quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="wangp-bench-cache-") as folder:
        home, params = build(Path(folder), args.dim, args.layers)
        catalog = Catalog(Home(home.root))
        generator = Generator(catalog)

        def render(kind: str, steps: int = args.steps):
            settings = {} if kind == "none" else {"skip_steps_cache_type": kind,
                                                  "skip_steps_multiplier": args.multiplier,
                                                  "skip_steps_start_step_perc": args.start}
            request = build_request(catalog, home.model_id, {"seed": 1, "steps": steps, "frames": args.frames,
                                                             "resolution": f"{args.size}x{args.size}"},
                                    preference=home.preference, pipeline_kwargs=home.pipeline_kwargs,
                                    settings=settings, profile="cpu")
            pipe = generator._pipeline(request, model_files(catalog, request))
            engine.configure(pipe, request)
            start = time.perf_counter()
            record = cache.apply_step_cache(pipe, request)
            try:
                result = engine.run(pipe, request, device="cpu", profile="cpu")
            finally:
                cache.remove_step_cache(pipe)
            return time.perf_counter() - start, result, record

        render("none", steps=2)  # warm-up: first-call costs out of the comparison
        kinds = ("none", "mag", "tea")
        totals, denoise, last = {k: [] for k in kinds}, {k: [] for k in kinds}, {}
        for _ in range(args.runs):  # alternate, so that drift hits every side alike
            for kind in kinds:
                seconds, result, record = render(kind)
                totals[kind].append(seconds)
                denoise[kind].append(result.timings["denoise"])
                last[kind] = (result.frames, record)

    def u8(frames):
        return np.round(np.clip(frames, 0, 1) * 255).astype(np.int16)

    print(f"model: Wan t2v, {params / 1e6:.1f} M parameters (dim {args.dim}, {args.layers} blocks), bf16 on CPU; "
          f"{args.size}x{args.size}, {args.frames} frames, {args.steps} steps, CFG on; multiplier "
          f"{args.multiplier:g}, start {args.start:g}%; median of {args.runs}")
    print(f"{'cache':6} {'steps run':>9} {'denoise s':>10} {'ratio':>6} {'total s':>8} {'ratio':>6} {'MAD':>6}")
    base_denoise, base_total = statistics.median(denoise["none"]), statistics.median(totals["none"])
    for kind in kinds:
        frames, record = last[kind]
        run = f"{record['computed_steps']}/{args.steps}" if record else f"{args.steps}/{args.steps}"
        d, t = statistics.median(denoise[kind]), statistics.median(totals[kind])
        difference = float(np.abs(u8(frames) - u8(last["none"][0])).mean())
        print(f"{kind:6} {run:>9} {d:10.2f} {d / base_denoise:6.2f} {t:8.2f} {t / base_total:6.2f} {difference:6.2f}")


if __name__ == "__main__":
    main()
