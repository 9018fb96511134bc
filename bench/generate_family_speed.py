"""Wall time of ``wangp generate`` against the plain diffusers script for the newer families, on CPU, imports
excluded: one video family (LTX-2, video + audio track) and one image family (Flux 1 dev).

As ``bench/generate_speed.py`` does for Wan: both sides load the same random transformer from disk (wangp: WanGP's
original layout, converted at load; diffusers: its own folder layout), the same tiny components, make the same call
and write the file (mp4 with its audio track / PNG). The plain script's call arguments are the ones wangp's engine
builds for the request (``engine.call_arguments``), so both do the same work (the same guidance passes). Each run is
a fresh process that imports everything first. Target: ratio <= 1.1 for each family.

Usage: python bench/generate_family_speed.py [--runs 3] [--family ltx2 flux]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.generate_speed import run  # noqa: E402  (a fresh process per run, timed from its own clock)

#: family -> (tiny kind, transformer config overrides that make the denoising dominate, request flags).
CASES = {
    "ltx2": ("ltx2_3", {"num_layers": 24}, ["--resolution", "96x96", "--frames", "33", "--steps", "6"]),
    "flux": ("flux", {"num_layers": 8, "num_single_layers": 16, "num_attention_heads": 4, "attention_head_dim": 64,
                      "axes_dims_rope": [16, 24, 24]}, ["--resolution", "256x256", "--steps", "6"]),
}

WANGP = r"""
import json, sys, time
import torch, diffusers, transformers, optimum.quanto, imageio_ffmpeg, PIL.Image  # imports are not timed
from diffusers.loaders import single_file_utils  # noqa: F401
from accelerate import init_empty_weights  # noqa: F401
from wangp_cli.cli import app
from wangp_cli.generate import engine, runner, weights, video, image  # noqa: F401
from wangp_cli.families import family_for_kind
kind, home, model_id, out = sys.argv[1:5]
flags = json.loads(sys.argv[5])
for part in ("convert", "pipeline"):
    family_for_kind(kind).part(part)  # the family's hooks load on first call: not timed on either side
start = time.perf_counter()
app(["--home", home, "-q", "generate", "-m", model_id, "--quantization", "none", "--prompt", "a cat in the snow",
     "--seed", "1", *flags, "-o", out], standalone_mode=False)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""

DIFFUSERS = r"""
import json, sys, time
import numpy as np, torch, diffusers, transformers, imageio_ffmpeg, PIL.Image  # imports are not timed
transformer_class, pipeline_class, transformer_dir, components, out = sys.argv[1:6]
call = json.loads(sys.argv[6])
audio_out = out.endswith(".mp4")
start = time.perf_counter()
transformer = getattr(diffusers, transformer_class).from_pretrained(transformer_dir, torch_dtype=torch.bfloat16)
pipe = getattr(diffusers, pipeline_class).from_pretrained(components, transformer=transformer,
                                                          torch_dtype=torch.bfloat16)
pipe.set_progress_bar_config(disable=True)
result = pipe(**call, generator=torch.Generator("cpu").manual_seed(1), output_type="np")
if out.endswith(".png"):
    PIL.Image.fromarray((result.images[0] * 255).round().clip(0, 255).astype("uint8")).save(out)
else:
    import subprocess, wave
    frames = result.frames[0]
    height, width = frames.shape[1:3]
    writer = imageio_ffmpeg.write_frames(out + ".video.mp4", (width, height), fps=call["frame_rate"], quality=8)
    writer.send(None)
    for frame in frames:
        writer.send((frame * 255).round().clip(0, 255).astype("uint8").tobytes())
    writer.close()
    audio = result.audio[0].float().cpu().numpy()
    rate = pipe.vocoder.config.output_sampling_rate
    with wave.open(out + ".wav", "wb") as handle:
        handle.setnchannels(audio.shape[0]); handle.setsampwidth(2); handle.setframerate(rate)
        handle.writeframes((np.clip(audio.T, -1, 1) * 32767).astype("<i2").tobytes())
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", out + ".video.mp4",
                    "-i", out + ".wav", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k", "-shortest", out], check=True)
print(json.dumps({"seconds": time.perf_counter() - start}))
"""


def build(folder: Path, family: str):
    """The tiny home (definition + WanGP-layout file + components) and the same weights in diffusers' layout."""
    import diffusers
    import torch

    from wangp_cli.generate import tiny

    kind, overrides, flags = CASES[family]
    model = getattr(diffusers, tiny.TRANSFORMERS[kind])(**{**tiny.TRANSFORMER_CONFIGS[kind], **overrides})
    tiny._randomize(model, 0)
    home = tiny.make_home(folder / family, kind, model=model)
    diffusers_dir = folder / f"{family}-transformer"
    model.to(torch.bfloat16).save_pretrained(diffusers_dir)
    return home, diffusers_dir, kind, flags, sum(p.numel() for p in model.parameters())


#: The bench's command-line flags -> build_request's flag names.
_FLAGS = {"--resolution": "resolution", "--frames": "frames", "--steps": "steps"}


def call_arguments(home, flags: list[str]) -> dict:
    """What wangp's engine passes to the pipeline for this request (``engine.call_arguments``), less the generator
    and output type the plain script sets itself."""
    from wangp_cli.core.definitions import Catalog
    from wangp_cli.core.home import Home
    from wangp_cli.generate import engine
    from wangp_cli.generate.request import build_request

    values = {_FLAGS[k]: (v if k == "--resolution" else int(v)) for k, v in zip(flags[::2], flags[1::2])}
    request = build_request(Catalog(Home(home.root), "v12"), home.model_id,
                            {**values, "prompt": "a cat in the snow", "seed": 1})
    kwargs = engine.call_arguments(request, None, None)
    for key in ("generator", "output_type", "callback_on_step_end"):
        kwargs.pop(key, None)
    return kwargs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--family", nargs="+", default=list(CASES), choices=list(CASES))
    args = parser.parse_args()
    from wangp_cli.generate import tiny

    for family in args.family:
        with tempfile.TemporaryDirectory(prefix=f"wangp-bench-{family}-") as folder:
            folder = Path(folder)
            home, diffusers_dir, kind, flags, params = build(folder, family)
            call = call_arguments(home, flags)
            suffix = ".png" if "--frames" not in flags else ".mp4"
            wangp, plain = [], []
            for index in range(args.runs):  # alternate, so that drift hits both sides alike
                wangp.append(run(WANGP, [kind, home.root, home.model_id, folder / f"wangp{index}{suffix}",
                                         json.dumps(flags)]))
                plain.append(run(DIFFUSERS, [tiny.TRANSFORMERS[kind], tiny.PIPELINES[kind], diffusers_dir,
                                             home.components, folder / f"plain{index}{suffix}", json.dumps(call)]))
        ratio = statistics.median(wangp) / statistics.median(plain)
        print(f"{family}: {tiny.TRANSFORMERS[kind]}, {params / 1e6:.1f} M parameters, bf16 on CPU; {' '.join(flags)}")
        print(f"  wangp generate   median {statistics.median(wangp):6.2f} s   runs {', '.join(f'{t:.2f}' for t in wangp)}")
        print(f"  plain diffusers  median {statistics.median(plain):6.2f} s   runs {', '.join(f'{t:.2f}' for t in plain)}")
        print(f"  ratio wangp / diffusers: {ratio:.3f} (target <= 1.1) -> {'OK' if ratio <= 1.1 else 'OVER'}")


if __name__ == "__main__":
    main()
