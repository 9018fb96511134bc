"""One GPU check of wangp's CUDA paths (issue 14; the plan is section 3 of gpu-review.md), in <= 8 minutes on one
H100/H200, with random weights at the real Wan 2.1 1.3B and 14B shapes: nothing is downloaded.

It prints one JSON line per case and per check as it goes (flushed: a run killed by a timeout keeps what it
printed), then a summary line. Everything else (library logs, child processes) goes to stderr.

Checks (``--only`` picks some; each has its own time budget and is skipped, with a line saying why, when the
``--budget`` left is too small; a failure is a line with the error, never the end of the run):

- ``P0`` environment: torch / CUDA / cuDNN versions, GPU, capability, free memory, bf16, attention kernels.
- ``P1`` CPU vs CUDA on tiny models: kinds t2v, i2v, vace, hunyuan, t2v_2_2 x {16-bit, int8} x profiles gpu,
  offload, group, lowvram, each against the same request at profile cpu (|d|max <= 0.05, mean <= 0.005; gpu,
  offload and group expected bit-identical), and ``wangp doctor``'s self-test on CUDA.
- ``P2`` Wan 1.3B shapes (dim 1536, 12 heads, ffn 8960, 30 blocks), 832x480x81, 3 steps, CFG, latent output:
  bf16 on gpu / offload / group, int8 (auto_quantize) on gpu / lowvram; s/step over steps 2..n, peak VRAM
  allocated and reserved, pinned host memory, RSS, load time.
- ``P2a`` attention backends A/B on the loaded bf16 gpu pipeline; ``P2c`` step cache (mag, multiplier 2) on vs off.
- ``P3`` the real-shape Wan 2.1 VAE decode in fp32 at 480p and 720p (9 latent frames), untiled and tiled.
- ``P4`` Wan 14B shapes (dim 5120, 40 heads, ffn 13824, 40 blocks) built in memory on the GPU, 2 steps: bf16 gpu,
  int8 gpu (quanto on the GPU), bf16 group.
- ``P5`` Ray smoke: 2 tiny jobs through ``run_ray`` (needs the ray package).
- ``compile`` (spare, when time is left): regional torch.compile on the 1.3B gpu pipeline.

The text encoder is the tiny UMT5 stand-in everywhere: the real UMT5-XXL (5.68e9 parameters, 11.4 GB in bf16) is
not in any figure; add it analytically (gpu-review D2/D5) to the gpu / offload peaks.

``--dry-run`` runs on the CPU (CUDA hidden): every check at tiny shapes, the CUDA-only cases reported as skipped,
so that the script's plumbing is tested without a GPU (tests/generate/test_gpu_check.py).

Usage: python bench/gpu_check.py [--budget 480] [--only P1,P3] [--dry-run] [--workdir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from wangp_cli.generate.runner import Reporter  # noqa: E402 (no torch at import)

GIB = 1024**3
#: P1: the CUDA frames against the CPU ones (frames in [0, 1]).
TOLERANCE = {"max": 0.05, "mean": 0.005}
P1_KINDS = ("t2v", "i2v", "vace", "hunyuan", "t2v_2_2")
CUDA_PROFILES = ("gpu", "offload", "group", "lowvram")
#: Transformer shapes over the tiny t2v config (its text width stays the tiny encoder's).
WAN_13B = {"num_attention_heads": 12, "attention_head_dim": 128, "ffn_dim": 8960, "num_layers": 30,
           "rope_max_seq_len": 1024}
WAN_14B = {"num_attention_heads": 40, "attention_head_dim": 128, "ffn_dim": 13824, "num_layers": 40,
           "rope_max_seq_len": 1024}
#: P3: latents (channels, latent frames, height / 8, width / 8); the decode is causal, frame by frame, so the
#: peak at 9 latent frames (33 video frames) is that of 21 (81 frames): only the output grows.
VAE_LATENTS = {"480p": (16, 9, 60, 104), "720p": (16, 9, 90, 160)}
UMT5_NOTE = ("text encoder: the tiny UMT5 stand-in; the real UMT5-XXL (5.68e9 parameters, 11.4 GB bf16) is in no "
             "figure here: add it to the gpu/offload peaks analytically (gpu-review D2, D5)")


# ---------------------------------------------------------------------------------------------------------------
# Output: JSON lines on the real stdout, everything else on stderr
# ---------------------------------------------------------------------------------------------------------------

def _clean(value):
    """JSON-safe: non-finite floats become null, tuples lists, paths and other objects strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


class Output:
    """Writes JSON lines to file descriptor 1 as it was at start; fd 1 itself (and ``sys.stdout``) then points at
    stderr, so that no library print or child process can put a non-JSON line among them."""

    def __init__(self):
        import threading

        sys.stdout.flush()
        self._stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._lock = threading.Lock()
        self.closed = False

    def emit(self, **record) -> None:
        text = json.dumps(_clean(record), allow_nan=False) + "\n"
        with self._lock:
            if not self.closed:
                self._stream.write(text)
                self._stream.flush()

    def last(self, **record) -> None:
        """The final line: nothing is printed after it."""
        self.emit(**record)
        with self._lock:
            self.closed = True

    def line(self, head: dict, *parts: dict) -> None:
        """A line of ``parts`` merged, ``head`` (line, check, case, status, ...) first and never overridden."""
        merged = {}
        for part in parts:
            merged.update(part)
        self.emit(**head, **{k: v for k, v in merged.items() if k not in head})


# ---------------------------------------------------------------------------------------------------------------
# Measurement helpers
# ---------------------------------------------------------------------------------------------------------------

def _torch():
    import torch

    return torch


def rss_reset() -> bool:
    """Reset the kernel's peak-RSS mark of this process (``VmHWM``), so that :func:`rss_peak` is the peak since."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def rss_peak() -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def ru_maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def pinned() -> dict:
    """Pinned host memory of torch's host allocator (current and peak since the last reset)."""
    torch = _torch()
    stats = getattr(torch.cuda, "host_memory_stats", None)
    if stats is None or not torch.cuda.is_available():
        return {}
    values = stats()
    return {"pinned_host_bytes_now": values.get("allocated_bytes.current", 0),
            "pinned_host_bytes_peak": values.get("allocated_bytes.peak", 0),
            "pinned_host_reserved_bytes_now": values.get("reserved_bytes.current", 0)}


def now(cuda: bool) -> float:
    if cuda:
        _torch().cuda.synchronize()
    return time.perf_counter()


def with_gib(memory: dict) -> dict:
    """``memory`` plus a ``gib`` dict of its byte counts (two decimals), for reading."""
    sizes = {k.replace("_bytes", ""): round(v / GIB, 2) for k, v in memory.items()
             if k.endswith(("_bytes", "_bytes_now", "_bytes_peak")) and isinstance(v, int)}
    return {**memory, "gib": sizes}


def per_step(seconds: list[float]) -> float | None:
    """Mean seconds of steps 2..n (step 1 carries one-off costs: the first offload move, tracing, autotuning)."""
    if not seconds:
        return None
    later = seconds[1:] or seconds
    return sum(later) / len(later)


def max_mean(a, b) -> tuple[float, float]:
    import numpy as np

    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float(diff.max()), float(diff.mean())


# ---------------------------------------------------------------------------------------------------------------
# The run's state and the check runner
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Context:
    out: Output
    dry: bool
    cuda: bool
    work: Path
    budget: float
    started: float = field(default_factory=time.perf_counter)
    cache: dict = field(default_factory=dict)
    loaded13: tuple | None = None  # (Generator, request) of the 1.3B bf16 gpu pipeline, kept for P2a/P2c/compile
    parked: bool = False  # loaded13's pipeline is on the host for now
    figures: dict = field(default_factory=dict)  # figures later checks compare with

    @property
    def device(self) -> str:
        return "cuda" if self.cuda else "cpu"

    def remaining(self) -> float:
        return self.budget - (time.perf_counter() - self.started)

    def free(self) -> None:
        """Collect garbage; on CUDA empty the allocator and pinned caches and reset the peak counters."""
        gc.collect()
        if not self.cuda:
            return
        torch = _torch()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        empty_host = (getattr(getattr(torch, "accelerator", None), "empty_host_cache", None)
                      or getattr(torch._C, "_host_emptyCache", None))  # older torch: only the private hook
        if empty_host is not None:
            empty_host()
        torch.cuda.reset_peak_memory_stats()
        reset_host = getattr(torch.cuda, "reset_peak_host_memory_stats", None)
        if reset_host is not None:
            reset_host()

    def release_13b(self) -> None:
        if self.loaded13 is not None:
            self.loaded13[0].close()
            self.loaded13 = None
            self.parked = False
            self.free()

    def park_13b(self) -> None:
        """Move the kept 1.3B pipeline to the host while other runs measure their VRAM (back by
        :func:`loaded_13b`); its 3 GB then count in their host RSS instead."""
        if self.loaded13 is not None and self.cuda and not self.parked:
            self.loaded13[0]._pipe.to("cpu")
            self.parked = True
            self.free()

    def memory(self, result=None) -> dict:
        """The run's peak memory: the RunResult's ``peak_memory`` (the engine's keys), the allocator's peaks where
        the engine gave none, ru_maxrss (the process's peak so far), the RSS peak since the case began, pinned."""
        memory = dict(getattr(result, "peak_memory", None) or {})
        if self.cuda:
            torch = _torch()
            memory.setdefault("vram_allocated_bytes", torch.cuda.max_memory_allocated())
            memory.setdefault("vram_reserved_bytes", torch.cuda.max_memory_reserved())
            memory.update(pinned())
        memory["ru_maxrss_bytes"] = ru_maxrss()
        memory["rss_peak_bytes"] = rss_peak()
        return with_gib(memory)


class CheckRun:
    """The cases of one check: each runs (or is skipped) on its own and prints its line."""

    def __init__(self, ctx: Context, check_id: str, deadline: float):
        self.ctx, self.id, self.deadline = ctx, check_id, deadline
        self.counts = {"ok": 0, "fail": 0, "error": 0, "skipped": 0}

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def skip(self, case: str, reason: str, **fields) -> None:
        self.counts["skipped"] += 1
        self.ctx.out.emit(line="case", check=self.id, case=case, status="skipped", reason=reason, **fields)

    def case(self, case: str, body: Callable[[], dict | None], *, estimate: float = 0.0, **fields) -> dict:
        """Run ``body`` (its dict is the line; ``status`` "fail" where an expectation does not hold); an
        exception is an ``error`` line. Skipped when the check's time left is below ``estimate`` (GPU seconds;
        not in a dry run). Returns the line's fields with ``status``."""
        if not self.ctx.dry and self.left() < estimate:
            reason = f"the check's time is spent: {max(self.left(), 0):.0f} s left, the case takes ~{estimate:.0f} s"
            self.skip(case, reason, **fields)
            return {"status": "skipped", "reason": reason}
        start = time.perf_counter()
        try:
            result = dict(body() or {})
        except Exception as exc:  # noqa: BLE001 - a failing case is a line, never the end of the run
            result = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:2000],
                      "traceback": traceback.format_exc()[-4000:]}
        if result.get("status") == "error":
            self.ctx.free()  # after the except block: its traceback no longer holds the case's tensors
        status = result.pop("status", "ok")
        self.counts[status] = self.counts.get(status, 0) + 1
        self.ctx.out.line({"line": "case", "check": self.id, "case": case, "status": status,
                           "seconds": round(time.perf_counter() - start, 3)}, fields, result)
        return {"status": status, **result}


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    budget: float  # GPU seconds it may take
    minimum: float  # skipped when less than this is left of the run's budget
    run: Callable[[Context, CheckRun], dict | None]


class Skip(Exception):
    """A whole check skipped, with the reason."""


# ---------------------------------------------------------------------------------------------------------------
# Shared material: tiny components, the real-shape homes, requests, runs
# ---------------------------------------------------------------------------------------------------------------

class Collect(Reporter):
    """A runner.Reporter that keeps warnings, stage times and the (synchronised) end of each step."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.warnings: list[str] = []
        self.marks: list[float] = []
        self.stages: dict = {}

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def stage(self, name: str, seconds: float) -> None:
        self.stages[name] = seconds

    def step(self, done: int, total: int) -> None:
        self.marks.append(now(self.cuda))

    def later_steps(self) -> list[float]:
        """Steps 2..n from the step ends (step 1 has no start mark here)."""
        return [b - a for a, b in zip(self.marks, self.marks[1:])]


def components(ctx: Context, kind: str) -> Path:
    """A tiny diffusers components folder of ``kind``, built once."""
    key = ("components", kind)
    if key not in ctx.cache:
        from wangp_cli.generate import tiny

        ctx.cache[key] = tiny.make_components(kind, ctx.work / f"components-{kind}")
    return ctx.cache[key]


def real_vae(ctx: Context):
    """The Wan 2.1 VAE at its real shapes (AutoencoderKLWan()'s defaults) with random weights, fp32; the tiny one
    in a dry run."""
    torch = _torch()
    from diffusers import AutoencoderKLWan

    if ctx.dry:
        return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                temperal_downsample=[False, True, True]).eval()
    with torch.device("cuda"):  # random init on the GPU: seconds
        return AutoencoderKLWan().eval()


def real_components(ctx: Context) -> Path:
    """The tiny t2v components with the real-shape Wan 2.1 VAE (the tiny ones in a dry run)."""
    key = ("components", "real-vae")
    if key not in ctx.cache:
        folder = ctx.work / "components-real-vae"
        shutil.copytree(components(ctx, "t2v"), folder)
        if not ctx.dry:
            shutil.rmtree(folder / "vae")
            real_vae(ctx).cpu().save_pretrained(folder / "vae")
        ctx.cache[key] = folder
    return ctx.cache[key]


def build_transformer(ctx: Context, shape: dict | None):
    """A Wan transformer of the tiny t2v config with ``shape`` (None: tiny), built in bf16 on the run's device with
    diffusers' default init, the modules the class keeps in fp32 (``_keep_in_fp32_modules``) in fp32 as wangp's
    loader and ``from_pretrained`` leave them."""
    torch = _torch()
    from diffusers import WanTransformer3DModel

    from wangp_cli.generate import tiny

    config = dict(tiny.TRANSFORMER_CONFIGS["t2v"], **(shape or {}))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(ctx.device):
            model = WanTransformer3DModel(**config)
    finally:
        torch.set_default_dtype(previous)
    try:
        from wangp_cli.generate.numerics import keeps_fp32
    except ImportError:  # before the loader kept them: everything in the compute dtype
        keeps_fp32 = None
    if keeps_fp32 is not None:
        for name, param in model.named_parameters():
            if keeps_fp32(name, model._keep_in_fp32_modules):
                param.data = param.data.float()
    return model.eval().requires_grad_(False)


def no_cuda(ctx: Context) -> str:
    return "CUDA only (a dry run hides CUDA)" if ctx.dry else "CUDA only (no CUDA GPU here)"


def catalog_of(home):
    from wangp_cli.core.definitions import Catalog
    from wangp_cli.core.home import Home

    return Catalog(Home(home.root))


def make_request(home, flags: dict, *, profile: str, latent: bool = False, model_id: str | None = None,
                 preference=None, settings: dict | None = None, **media):
    """``build_request`` of the home's definition; ``latent``: the pipeline returns latents (no VAE decode; the
    managed ``output_type`` is set on the built request, as --pipeline-arg may not)."""
    from wangp_cli.generate.request import build_request

    request = build_request(catalog_of(home), model_id or home.model_id, flags, preference=preference or home.preference,
                            profile=profile, pipeline_kwargs=home.pipeline_kwargs, settings=settings, **media)
    if latent:
        request.pipeline_kwargs["output_type"] = "latent"
    return request


def place(pipe, profile: str, *, quantized: bool, request, warnings: list) -> str:
    """``engine.apply_profile`` with what its signature takes (family and request where it has them)."""
    import inspect

    from wangp_cli.generate import engine

    params = inspect.signature(engine.apply_profile).parameters
    extra = {k: v for k, v in (("family", request.family), ("request", request)) if k in params}
    return engine.apply_profile(pipe, profile, quantized=quantized, warn=warnings.append, **extra)


def run_figures(ctx: Context, result, reporter: Collect | None) -> dict:
    """s/step over steps 2..n (the RunResult's CUDA-synchronised step times, else the reporter's synchronised step
    ends), stage timings, memory, what ran."""
    steps = list(getattr(result, "step_seconds", None) or [])
    if steps:
        source, seconds = "RunResult.step_seconds, steps 2..n", per_step(steps)
    else:
        later = reporter.later_steps() if reporter is not None else []
        source, seconds = "step ends (synchronised), steps 2..n", sum(later) / len(later) if later else None
        steps = later
    frames = result.frames
    return {"profile": result.profile, "device": result.device, "s_per_step": seconds,
            "step_seconds": [round(s, 4) for s in steps], "step_source": source,
            "timings": {k: round(v, 4) for k, v in result.timings.items()},
            "transformer_calls": getattr(result, "transformer_calls", None),
            "output_shape": list(getattr(frames, "shape", ())), "finite": _finite(frames),
            "memory": ctx.memory(result)}


def _finite(array) -> bool:
    import numpy as np

    return bool(np.isfinite(np.asarray(array, dtype=np.float32)).all())


def render(ctx: Context, catalog, request, *, keep: bool = False) -> tuple[dict, object]:
    """One request through ``runner.Generator.render`` (load, place, run), measured; the Generator is closed
    unless ``keep`` (then it is returned with the pipeline loaded)."""
    from wangp_cli.generate.runner import Generator

    ctx.free()
    rss_reset()
    reporter = Collect(ctx.cuda)
    generator = Generator(catalog, reporter)
    try:
        rendering = generator.render(request)
        figures = run_figures(ctx, rendering.result, reporter)
        figures.update(load_s=round(rendering.timings["load"], 3), warnings=reporter.warnings)
    except BaseException:
        generator.close()
        raise
    if not keep:
        generator.close()
        generator = None
    return figures, (generator, rendering)


# ---------------------------------------------------------------------------------------------------------------
# P0 environment
# ---------------------------------------------------------------------------------------------------------------

#: Allocator settings to fall back to when the torch here refuses the ones wangp sets (an older torch does not
#: know every key: ``pinned_max_round_threshold_mb`` is recent).
ALLOC_FALLBACKS = ("expandable_segments:True", "expandable_segments:False")


def probe_alloc_conf() -> dict:
    """Check, in a child process, that the CUDA allocator accepts ``PYTORCH_ALLOC_CONF`` as wangp set it (an
    unknown key fails every CUDA allocation); fall back to :data:`ALLOC_FALLBACKS` when it does not."""
    import subprocess

    conf = os.environ.get("PYTORCH_ALLOC_CONF")
    if not conf:
        return {}
    code = ("import torch\nif torch.cuda.is_available():\n    torch.empty(1, device='cuda')\n"
            "    torch.empty(1).pin_memory()\n")
    tried = []
    for candidate in (conf, *ALLOC_FALLBACKS):
        os.environ["PYTORCH_ALLOC_CONF"] = candidate
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
        tried.append({"conf": candidate, "ok": child.returncode == 0,
                      "error": child.stderr.strip().splitlines()[-1][:300] if child.returncode else None})
        if child.returncode == 0:
            break
    return {"alloc_conf_set_by_wangp": conf, "alloc_conf_used": os.environ["PYTORCH_ALLOC_CONF"],
            "alloc_conf_probe": tried}


def p0_environment(ctx: Context, run: CheckRun) -> dict:
    from importlib import metadata

    torch = _torch()
    versions = {}
    for name in ("torch", "diffusers", "transformers", "optimum-quanto", "accelerate", "ray", "triton",
                 "flash-attn", "sageattention", "kernels"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    info = {"versions": versions, "python": sys.version.split()[0], "torch_cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "cuda_available": torch.cuda.is_available(),
            "modules": {name: find_spec(name) is not None for name in
                        ("flash_attn", "flash_attn_interface", "flash_attn_3", "sageattention", "kernels", "triton",
                         "ray")},
            "env": {name: os.environ.get(name) for name in ("CUDA_VISIBLE_DEVICES", "PYTORCH_ALLOC_CONF",
                                                            "PYTORCH_CUDA_ALLOC_CONF", "OMP_NUM_THREADS")},
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "note": UMT5_NOTE,
            **ctx.figures.get("alloc_conf", {})}
    try:
        from wangp_cli.generate.doctor import _ram_available

        info["ram_available_bytes"] = _ram_available()
    except ImportError:
        pass
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        info.update(device=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)),
                    vram_free_bytes=free, vram_total_bytes=total, bf16=torch.cuda.is_bf16_supported(),
                    device_count=torch.cuda.device_count())
    try:
        from wangp_cli.generate import accel

        info["attention_installed"] = accel.installed_backends()
    except ImportError:
        info["attention_installed"] = "generate.accel missing"
    return info


# ---------------------------------------------------------------------------------------------------------------
# P1 CPU vs CUDA on tiny models
# ---------------------------------------------------------------------------------------------------------------

def _media(home, folder: Path) -> dict:
    from wangp_cli.generate import tiny

    found = {}
    if home.kind in tiny.IMAGE_KINDS:
        found["image"] = folder / "start.png"
        tiny.make_image(64, seed=3).save(found["image"])
    return found


def p1_tiny(ctx: Context, run: CheckRun) -> dict:
    from wangp_cli.generate import tiny
    from wangp_cli.generate.runner import Generator

    kinds = ("t2v",) if ctx.dry else P1_KINDS
    quantizations = (False,) if ctx.dry else (False, True)
    worst = {"max": 0.0, "mean": 0.0}
    for kind in kinds:
        for quantized in quantizations:
            label = f"{kind}/{'int8' if quantized else '16-bit'}"
            state: dict = {}

            def reference(kind=kind, quantized=quantized, label=label, state=state):
                folder = ctx.work / "p1" / label.replace("/", "-")
                home = tiny.make_home(folder, kind, quantized=quantized, components=components(ctx, kind))
                catalog = catalog_of(home)
                media = _media(home, folder)
                reporter = Collect(False)
                generator = Generator(catalog, reporter)
                state.update(home=home, catalog=catalog, media=media, generator=generator, reporter=reporter)
                request = make_request(home, {"seed": 11}, profile="cpu", **media)
                result = generator.render(request).result
                state["frames"] = result.frames
                return {"profile": result.profile, "shape": list(result.frames.shape),
                        "finite": _finite(result.frames), "status": "ok" if _finite(result.frames) else "fail"}

            run.case(f"{label}/cpu", reference, estimate=6)
            if ctx.cuda:
                profiles = CUDA_PROFILES
            else:
                for profile in CUDA_PROFILES:
                    run.skip(f"{label}/{profile}", no_cuda(ctx))
                profiles = ("cpu-repeat",) if ctx.dry else ()  # a dry run: the comparison's plumbing, CPU twice
            for profile in profiles:
                if "frames" not in state:
                    run.skip(f"{label}/{profile}", "no CPU reference (its case failed)")
                    continue

                def compare(profile=profile, state=state):
                    reporter = state["reporter"]
                    reporter.warnings.clear()
                    request = make_request(state["home"], {"seed": 11},
                                           profile="cpu" if profile == "cpu-repeat" else profile, **state["media"])
                    result = state["generator"].render(request).result
                    frames = result.frames
                    finite = _finite(frames)
                    largest, mean = max_mean(frames, state["frames"]) if finite else (math.inf, math.inf)
                    line = {"profile_used": result.profile, "device": result.device, "max_abs": largest,
                            "mean_abs": mean, "finite": finite, "warnings": list(reporter.warnings),
                            "tolerance": TOLERANCE}
                    if finite:
                        worst["max"], worst["mean"] = max(worst["max"], largest), max(worst["mean"], mean)
                    if profile == "gpu":
                        state["gpu_frames"] = frames
                    elif profile in ("offload", "group") and "gpu_frames" in state:
                        import numpy as np

                        line["identical_to_gpu"] = bool(np.array_equal(frames, state["gpu_frames"]))
                        if not line["identical_to_gpu"]:
                            line["unexpected"] = "not bit-identical to the gpu profile (expected: same kernels)"
                    good = finite and largest <= TOLERANCE["max"] and mean <= TOLERANCE["mean"]
                    return {**line, "status": "ok" if good else "fail"}

                run.case(f"{label}/{profile}", compare, estimate=4)
            if "generator" in state:
                state["generator"].close()
            ctx.free()
    if ctx.cuda and find_spec("imageio_ffmpeg") is None:
        run.skip("doctor self-test", "imageio-ffmpeg is not installed (the self-test writes an mp4)")
    elif ctx.cuda:
        def doctor():
            from wangp_cli.generate.doctor import self_test

            result = self_test("t2v")
            return {**result, "status": "ok" if result.get("ok") else "fail"}

        run.case("doctor self-test", doctor, estimate=5)
    else:
        run.skip("doctor self-test", "CUDA only (the CPU self-test runs in the test suite)")
    return {"worst": worst, "tolerance": TOLERANCE}


# ---------------------------------------------------------------------------------------------------------------
# P2 Wan 1.3B shapes, P2a attention A/B, P2c step cache, compile
# ---------------------------------------------------------------------------------------------------------------

def size_flags(ctx: Context, steps: int) -> dict:
    if ctx.dry:  # a dry run: at most 4 steps (2 give a step-2..n time; the cache needs 4 to skip any)
        return {"resolution": "64x64", "frames": 5, "steps": min(steps, 4), "guidance": 5.0, "seed": 1}
    return {"resolution": "832x480", "frames": 81, "steps": steps, "guidance": 5.0, "seed": 1}


def home_13b(ctx: Context):
    """The 1.3B-shaped transformer (tiny in a dry run) written once in WanGP's layout, with the real-shape VAE; a
    second definition of the same file with ``auto_quantize`` (int8 at load)."""
    if "home13" in ctx.cache:
        return ctx.cache["home13"]
    from wangp_cli.core.jsonio import write_json
    from wangp_cli.core.variants import Preference
    from wangp_cli.generate import tiny

    model = build_transformer(ctx, None if ctx.dry else WAN_13B)
    home = tiny.make_home(ctx.work / "wan13b", "t2v", model=model.cpu(), components=real_components(ctx),
                          model_id="gpucheck_13b")
    home.model = None  # the file holds it; do not keep 2.8 GB of host memory
    definition = json.loads((home.root / "finetunes" / "gpucheck_13b.json").read_text())
    definition["model"].update(auto_quantize=True, name="gpucheck 1.3B (auto_quantize int8)")
    write_json(home.root / "finetunes" / "gpucheck_13b_int8.json", definition)
    params = sum(p.numel() for p in model.parameters())
    del model
    ctx.free()
    ctx.cache["home13"] = (home, Preference(quantization="int8", dtype="bf16"), params)
    return ctx.cache["home13"]


def _p2_build(ctx: Context) -> dict:
    start = time.perf_counter()
    _, _, params = home_13b(ctx)
    return {"params": params, "build_s": round(time.perf_counter() - start, 2), "note": UMT5_NOTE}


def p2_profiles(ctx: Context, run: CheckRun) -> dict:
    built = run.case("build", lambda: _p2_build(ctx), estimate=20)
    if built["status"] != "ok":
        raise Skip("the 1.3B home could not be built")
    home, int8, _ = home_13b(ctx)
    runs = (("bf16", "gpu", 15), ("bf16", "offload", 18), ("bf16", "group", 25), ("int8", "gpu", 25),
            ("int8", "lowvram", 30))
    flags = size_flags(ctx, 2 if ctx.dry else 3)
    catalog = catalog_of(home)
    rows = {}
    for weights, profile, estimate in runs:
        if not ctx.cuda:
            run.skip(f"{weights}/{profile}", no_cuda(ctx))
            continue
        rows[(weights, profile)] = run.case(f"{weights}/{profile}", lambda w=weights, p=profile: _p2_run(
            ctx, catalog, home, int8, w, p, flags), estimate=estimate, weights=weights, profile_asked=profile)
    if ctx.dry:  # the plumbing at tiny size, on the CPU
        for weights in ("bf16", "int8"):
            rows[(weights, "cpu")] = run.case(f"{weights}/cpu", lambda w=weights: _p2_run(
                ctx, catalog, home, int8, w, "cpu", flags), weights=weights, profile_asked="cpu")
    table = {f"{w}/{p}": {"s_per_step": row.get("s_per_step"), "profile_used": row.get("profile"),
                          "gib": (row.get("memory") or {}).get("gib")}
             for (w, p), row in rows.items() if row["status"] == "ok"}
    base = rows.get(("bf16", "gpu")) or rows.get(("bf16", "cpu"))
    if base and base["status"] == "ok":
        ctx.figures["p2_s_per_step"] = base.get("s_per_step")
    return {"table": table, "shape": "t2v 1.3B: dim 1536, 12 heads, ffn 8960, 30 blocks" if not ctx.dry else "tiny",
            "size": f"{flags['resolution']}x{flags['frames']}, {flags['steps']} steps, CFG 5, latent output",
            "note": UMT5_NOTE}


def _p2_run(ctx: Context, catalog, home, int8, weights: str, profile: str, flags: dict) -> dict:
    quantized = weights == "int8"
    ctx.park_13b()
    request = make_request(home, flags, profile=profile, latent=True,
                           model_id="gpucheck_13b_int8" if quantized else None, preference=int8 if quantized else None)
    keep = not quantized and profile in ("gpu", "cpu")  # P2a, P2c and compile reuse the loaded bf16 pipeline
    figures, (generator, _) = render(ctx, catalog, request, keep=keep)
    if keep:
        ctx.release_13b()
        ctx.loaded13 = (generator, request)
    expected = [16, (flags["frames"] - 1) // 4 + 1] + [int(v) // 8 for v in flags["resolution"].split("x")[::-1]]
    good = figures["finite"] and figures["output_shape"][-4:] == expected
    return {**figures, "latent_expected": expected, "status": "ok" if good else "fail"}


def loaded_13b(ctx: Context, run: CheckRun):
    """(Generator, request, pipe) of the 1.3B bf16 pipeline on the gpu profile (cpu in a dry run), loaded by an
    earlier check or now."""
    if ctx.loaded13 is None:
        home, int8, _ = home_13b(ctx)
        profile = "gpu" if ctx.cuda else "cpu"
        loaded = run.case("load 1.3B", lambda: _p2_run(ctx, catalog_of(home), home, int8, "bf16", profile,
                                                       size_flags(ctx, 3)), estimate=15)
        if loaded["status"] != "ok" or ctx.loaded13 is None:
            raise Skip("the 1.3B pipeline could not be loaded")
    generator, request = ctx.loaded13
    if ctx.parked:
        generator._pipe.to("cuda")
        ctx.parked = False
    return generator, request, generator._pipe


def _engine_run(ctx: Context, pipe, request, profile: str, on_step=None):
    from wangp_cli.generate import engine

    engine.configure(pipe, request)
    return engine.run(pipe, request, device=ctx.device, profile=profile, on_step=on_step)


def _measured_run(ctx: Context, pipe, request, profile: str) -> tuple[dict, object]:
    ctx.free()
    rss_reset()
    reporter = Collect(ctx.cuda)
    result = _engine_run(ctx, pipe, request, profile, on_step=reporter.step)
    return run_figures(ctx, result, reporter), result


def _attention_choices(ctx: Context):
    """(choice, why it cannot run or None, setter) for each backend: generate.accel's choices where it exists,
    else diffusers' dispatcher names directly."""
    try:
        from wangp_cli.generate import accel
    except ImportError:
        accel = None
    if accel is not None:
        def setter(choice):
            return lambda pipe: accel.set_attention(pipe, "wan", choice, ctx.device)

        choices = ("sdpa",) + tuple(c for c in accel.backends_for("wan") if c != "sdpa") + ("auto",)
        for choice in choices:
            why = None if choice == "auto" else accel.missing(choice)
            if why is None and not ctx.cuda and choice not in ("sdpa", "auto"):
                why = "CUDA only"
            yield choice, why, setter(choice)
        return
    modules = {"native": None, "_native_cudnn": None, "flash": "flash_attn", "_flash_3": "flash_attn_interface",
               "sage": "sageattention"}
    for name, module in modules.items():
        why = f"{module} is not installed" if module and find_spec(module) is None else None
        if why is None and not ctx.cuda and name != "native":
            why = "CUDA only"

        def set_backend(pipe, name=name):
            pipe.transformer.set_attention_backend(name)
            return name

        yield name, why, set_backend


def p2_attention(ctx: Context, run: CheckRun) -> dict:
    import numpy as np

    generator, request, pipe = loaded_13b(ctx, run)
    profile = generator.placement[0] if hasattr(generator, "placement") else generator._placement[0]
    baseline: dict = {}
    speeds = {}
    for choice, why, setter in _attention_choices(ctx):
        if why:
            run.skip(choice, why)
            continue

        def measure(choice=choice, setter=setter):
            used = setter(pipe)
            figures, result = _measured_run(ctx, pipe, request, profile)
            latents = np.asarray(result.frames, dtype=np.float32)
            if not baseline:
                baseline.update(choice=choice, latents=latents, s_per_step=figures["s_per_step"])
            scale = float(np.abs(baseline["latents"]).mean()) or 1.0
            largest, mean = max_mean(latents, baseline["latents"])
            speeds[choice] = figures["s_per_step"]
            speedup = (baseline["s_per_step"] / figures["s_per_step"]) if figures["s_per_step"] else None
            return {"backend": used, "s_per_step": figures["s_per_step"], "speedup_vs_first": speedup,
                    "vs": baseline["choice"], "latent_max_abs": largest, "latent_mean_abs_rel": mean / scale,
                    "finite": figures["finite"], "memory": figures["memory"],
                    "status": "ok" if figures["finite"] else "fail"}

        run.case(choice, measure, estimate=6)
    restore = next((s for c, why, s in _attention_choices(ctx) if c in ("auto", "native") and not why), None)
    if restore is not None:
        restore(pipe)  # the pipeline goes on with the default backend (P2c, compile)
    return {"s_per_step": speeds, "baseline": baseline.get("choice")}


class BlockCounter:
    """Counts the forwards of the last transformer block's FFN: a block that a step cache skips never runs its
    inner modules (diffusers' cache hooks return before the block's own forward)."""

    def __init__(self, transformer):
        self.calls = 0
        self._handle = transformer.blocks[-1].ffn.register_forward_pre_hook(self._count)

    def _count(self, *_args):
        self.calls += 1

    def close(self):
        self._handle.remove()


def _enable_cache(pipe, request) -> tuple[dict | None, Callable[[], None]]:
    """The request's step cache through generate.cache (the contract), else diffusers' FirstBlockCache directly."""
    try:
        from wangp_cli.generate import cache
    except ImportError:
        from diffusers.hooks import FirstBlockCacheConfig

        pipe.transformer.enable_cache(FirstBlockCacheConfig(threshold=0.2))
        return ({"type": "first_block (fallback: generate.cache missing)", "threshold": 0.2},
                pipe.transformer.disable_cache)
    info = cache.apply_step_cache(pipe, request)
    return info, lambda: cache.remove_step_cache(pipe)


def p2_cache(ctx: Context, run: CheckRun) -> dict:
    import numpy as np

    generator, loaded_request, pipe = loaded_13b(ctx, run)
    home, _, _ = home_13b(ctx)
    profile = generator.placement[0] if hasattr(generator, "placement") else generator._placement[0]
    steps = 4 if ctx.dry else 8
    flags = size_flags(ctx, steps)
    cache_settings = {"skip_steps_cache_type": "mag", "skip_steps_multiplier": 2}
    rows: dict = {}
    for name, settings in (("off", None), ("mag x2", cache_settings)):
        def measure(name=name, settings=settings):
            request = make_request(home, flags, profile=loaded_request.profile, latent=True, settings=settings)
            counter = BlockCounter(pipe.transformer)
            info, remove = (None, lambda: None) if settings is None else _enable_cache(pipe, request)
            try:
                figures, result = _measured_run(ctx, pipe, request, profile)
            finally:
                remove()
                counter.close()
            rows[name] = {"figures": figures, "latents": np.asarray(result.frames, dtype=np.float32),
                          "blocks": counter.calls}
            line = {"step_cache": info, "denoise_s": figures["timings"]["denoise"],
                    "s_per_step": figures["s_per_step"], "last_block_forwards": counter.calls,
                    "transformer_calls": figures["transformer_calls"], "finite": figures["finite"]}
            if name != "off" and "off" in rows:
                off = rows["off"]
                scale = float(np.abs(off["latents"]).mean()) or 1.0
                line.update(denoise_ratio_cached_over_uncached=figures["timings"]["denoise"]
                            / off["figures"]["timings"]["denoise"],
                            computed_share=counter.calls / max(off["blocks"], 1),
                            latent_mean_abs_rel=max_mean(rows[name]["latents"], off["latents"])[1] / scale)
                if line["computed_share"] > 0.75:
                    line["unexpected"] = "multiplier 2 should skip about half of the block forwards"
            return {**line, "status": "ok" if figures["finite"] else "fail"}

        run.case(name, measure, estimate=12, steps=steps)
    summary = {"steps": steps, "settings": cache_settings}
    if "off" in rows and "mag x2" in rows:
        off, on = rows["off"]["figures"]["timings"]["denoise"], rows["mag x2"]["figures"]["timings"]["denoise"]
        summary.update(denoise_s={"off": off, "mag x2": on}, ratio_cached_over_uncached=on / off if off else None)
    return summary


def compile_check(ctx: Context, run: CheckRun) -> dict:
    if not ctx.cuda:
        raise Skip("CUDA only (compiling even the tiny model takes ~40 s on a 2-core CPU; the accel tests cover "
                   "it there)")
    generator, request, pipe = loaded_13b(ctx, run)
    profile = generator.placement[0] if hasattr(generator, "placement") else generator._placement[0]
    if ctx.figures.get("p2_s_per_step") is None:
        baseline = run.case("uncompiled", lambda: _measured_run(ctx, pipe, request, profile)[0], estimate=8)
        ctx.figures["p2_s_per_step"] = baseline.get("s_per_step")

    def compile_and_run():
        start = time.perf_counter()
        try:
            from wangp_cli.generate import accel

            how = {"via": "generate.accel.compile_transformers", **(accel.compile_transformers(pipe, profile) or {})}
        except ImportError:
            pipe.transformer.compile_repeated_blocks(fullgraph=False)
            how = {"via": "transformer.compile_repeated_blocks(fullgraph=False) (generate.accel missing)"}
        figures, _ = _measured_run(ctx, pipe, request, profile)
        return {**how, "compile_and_first_run_s": round(time.perf_counter() - start, 2),
                "first_run_s_per_step": figures["s_per_step"]}

    first = run.case("compile + first run", compile_and_run, estimate=60)
    if first["status"] != "ok":
        return {}

    def compiled():
        figures, _ = _measured_run(ctx, pipe, request, profile)
        base = ctx.figures.get("p2_s_per_step")
        return {"s_per_step": figures["s_per_step"], "uncompiled_s_per_step": base,
                "speedup": base / figures["s_per_step"] if base and figures["s_per_step"] else None,
                "memory": figures["memory"], "status": "ok" if figures["finite"] else "fail"}

    run.case("compiled run", compiled, estimate=8)
    return {}


# ---------------------------------------------------------------------------------------------------------------
# P3 VAE decode
# ---------------------------------------------------------------------------------------------------------------

def p3_vae(ctx: Context, run: CheckRun) -> dict:
    torch = _torch()
    vae = real_vae(ctx)
    latents = {"tiny": (16, 2, 8, 8)} if ctx.dry else VAE_LATENTS
    tiles = {"tile_sample_min_height": 64, "tile_sample_min_width": 48, "tile_sample_stride_height": 64,
             "tile_sample_stride_width": 32} if ctx.dry else {}  # a dry run: 2 tiles across the 64 px video
    with torch.inference_mode():
        vae.decode(torch.randn(1, 16, 1, 8, 8, device=ctx.device), return_dict=False)  # cuDNN's first call
    try:
        from wangp_cli.generate.engine import decode_bytes
    except ImportError:
        decode_bytes = None
    peaks = {}
    for size, shape in latents.items():
        for tiled in (False, True):
            def decode(shape=shape, tiled=tiled):
                if tiled:
                    vae.enable_tiling(**tiles)
                else:
                    vae.disable_tiling()
                z = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0)).to(ctx.device)
                ctx.free()
                base = torch.cuda.memory_allocated() if ctx.cuda else 0
                start = now(ctx.cuda)
                with torch.inference_mode():
                    video = vae.decode(z, return_dict=False)[0]
                seconds = now(ctx.cuda) - start
                width, height, frames = shape[3] * 8, shape[2] * 8, (shape[1] - 1) * 4 + 1
                line = {"latents": list(shape), "video": list(video.shape), "decode_s": round(seconds, 3),
                        "finite": bool(torch.isfinite(video).all())}
                expected = [1, 3, frames, height, width]
                if ctx.cuda:
                    peak = torch.cuda.max_memory_allocated()
                    line["memory"] = with_gib({"vram_allocated_bytes": peak, "vram_decode_bytes": peak - base,
                                               "vram_reserved_bytes": torch.cuda.max_memory_reserved()})
                    if decode_bytes is not None:
                        estimate = decode_bytes(width, height, frames, vae_dtype="fp32", tiled=tiled)
                        line.update(engine_estimate_bytes=estimate, measured_over_estimate=(peak - base) / estimate)
                del video, z
                good = line["finite"] and line["video"] == expected
                return {**line, "expected_video": expected, "status": "ok" if good else "fail"}

            name = f"{size}/{'tiled' if tiled else 'untiled'}"
            peaks[name] = run.case(name, decode, estimate=15 if size == "720p" else 8, dtype="fp32")
    return {"gib": {name: (line.get("memory") or {}).get("gib", {}).get("vram_decode")
                    for name, line in peaks.items()},
            "decode_s": {name: line.get("decode_s") for name, line in peaks.items()},
            "note": "9 latent frames (33 video frames): the causal decode peaks as at 21 latent frames"}


# ---------------------------------------------------------------------------------------------------------------
# P4 Wan 14B shapes in memory
# ---------------------------------------------------------------------------------------------------------------

def p4_14b(ctx: Context, run: CheckRun) -> dict:
    from wangp_cli.generate import tiny

    home = tiny.make_home(ctx.work / "wan14b", "t2v", architecture="t2v", components=real_components(ctx),
                          model_id="gpucheck_14b")
    flags = dict(size_flags(ctx, 2))
    cases = (("bf16/gpu", False, "gpu", 45), ("int8/gpu", True, "gpu", 45), ("bf16/group", False, "group", 70))
    table = {}
    for name, quantized, profile, estimate in cases:
        if not ctx.cuda and profile != "gpu":
            run.skip(name, no_cuda(ctx))
            continue
        used = profile if ctx.cuda else "cpu"
        line = run.case(name if ctx.cuda else f"{name.split('/')[0]}/cpu",
                        lambda q=quantized, p=used: _p4_case(ctx, home, flags, q, p), estimate=estimate)
        if line["status"] == "ok":
            table[name] = {"s_per_step": line.get("s_per_step"), "gib": (line.get("memory") or {}).get("gib")}
    return {"table": table, "shape": "dim 5120, 40 heads, ffn 13824, 40 blocks" if not ctx.dry else "tiny",
            "size": f"{flags['resolution']}x{flags['frames']}, 2 steps, CFG 5, latent output", "note": UMT5_NOTE}


def _p4_case(ctx: Context, home, flags: dict, quantized: bool, profile: str) -> dict:
    torch = _torch()
    from wangp_cli.generate import engine

    ctx.free()
    rss_reset()
    marks = {"start": now(ctx.cuda)}
    model = build_transformer(ctx, None if ctx.dry else WAN_14B)
    marks["built"] = now(ctx.cuda)
    if quantized:
        from optimum.quanto import freeze, qint8, quantize

        quantize(model, weights=qint8, include="blocks.*")
        freeze(model)
        marks["quantized"] = now(ctx.cuda)
    if profile == "group":
        model = model.cpu()
        marks["to_cpu"] = now(ctx.cuda)
    weights = engine.module_bytes(model) if hasattr(engine, "module_bytes") else None
    request = make_request(home, flags, profile=profile, latent=True)
    warnings: list[str] = []
    pipe = engine.build_pipeline(request, model, home.components, torch.bfloat16)
    used = place(pipe, profile, quantized=quantized, request=request, warnings=warnings)
    marks["placed"] = now(ctx.cuda)
    placed = {"pinned_after_place": pinned(), "rss_peak_to_place_bytes": rss_peak()}
    reporter = Collect(ctx.cuda)
    result = _engine_run(ctx, pipe, request, used, on_step=reporter.step)
    figures = run_figures(ctx, result, reporter)
    del pipe, model, result  # (an exception leaves them to the case's clean-up)
    ctx.free()
    stages = {f"{b}_s": round(marks[b] - marks[a], 2) for a, b in zip(marks, list(marks)[1:])}
    return {**figures, "profile_used": used, "warnings": warnings, "transformer_bytes": weights, **placed,
            "stages": stages, "status": "ok" if figures["finite"] else "fail"}


# ---------------------------------------------------------------------------------------------------------------
# P5 Ray
# ---------------------------------------------------------------------------------------------------------------

def p5_ray(ctx: Context, run: CheckRun) -> dict:
    if find_spec("ray") is None:
        raise Skip("the ray package is not installed")
    from wangp_cli.batch.manifest import read_manifest
    from wangp_cli.batch.ray_backend import run_ray
    from wangp_cli.batch.runner import BatchOptions, plan_jobs
    from wangp_cli.generate import tiny

    def smoke():
        home = tiny.make_home(ctx.work / "ray", "t2v", components=components(ctx, "t2v"))
        catalog = catalog_of(home)
        manifest = ctx.work / "ray" / "jobs.jsonl"
        manifest.write_text("".join(json.dumps({"id": f"ray-{i}", "model": home.model_id, "seed": i, "frames": 5,
                                                "quantization": "none"}) + "\n" for i in range(2)))
        options = BatchOptions(output_dir=ctx.work / "ray" / "out", pipeline_kwargs=dict(home.pipeline_kwargs))
        planned = plan_jobs(catalog, read_manifest(manifest), options)
        records = run_ray(catalog, planned, options, actors=1 if ctx.dry else None)  # dry: one CPU actor
        keep = ("id", "status", "worker", "attempts", "device", "profile", "threads", "error")
        jobs = [{k: r.get(k) for k in keep if k in r} for r in records]
        good = len(records) == 2 and all(r["status"] == "ok" for r in records)
        return {"jobs": jobs, "driver": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                                         "cpu_count": os.cpu_count()},
                "status": "ok" if good else "fail"}

    run.case("2 tiny jobs", smoke, estimate=25)
    return {}


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------

CHECKS = (
    Check("P0", "environment", 5, 1, p0_environment),
    Check("P1", "CPU vs CUDA on tiny models, every profile x {16-bit, int8}", 75, 20, p1_tiny),
    Check("P2", "Wan 1.3B shapes per profile (bf16, int8)", 120, 40, p2_profiles),
    Check("P2a", "attention backends A/B on the 1.3B gpu pipeline", 30, 12, p2_attention),
    Check("P2c", "step cache (mag, x2) on vs off on the 1.3B gpu pipeline", 35, 25, p2_cache),
    Check("P3", "Wan 2.1 VAE decode fp32 at 480p / 720p, untiled and tiled", 40, 15, p3_vae),
    Check("P4", "Wan 14B shapes in memory: bf16 gpu, int8 gpu, bf16 group", 120, 50, p4_14b),
    Check("P5", "Ray smoke: 2 tiny jobs", 30, 20, p5_ray),
    Check("compile", "regional torch.compile on the 1.3B gpu pipeline (spare)", 90, 60, compile_check),
)
#: Checks that use the loaded 1.3B pipeline (it is kept between consecutive ones).
USES_13B = ("P2", "P2a", "P2c", "compile")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=480.0,
                        help="seconds for the whole run (default 480); a check that does not fit is skipped")
    parser.add_argument("--only", default="", help="comma-separated checks: " + ",".join(c.id for c in CHECKS))
    parser.add_argument("--dry-run", action="store_true", help="on the CPU at tiny shapes (CUDA hidden)")
    parser.add_argument("--workdir", type=Path, help="folder for the homes (default: a temporary one, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--grace", type=float, default=45.0,
                        help="seconds past --budget after which a case still running is abandoned: the summary "
                             "line is printed and the process exits (default 45)")
    args = parser.parse_args(argv)
    known = {c.id.lower(): c.id for c in CHECKS}
    wanted = [part.strip() for part in args.only.split(",") if part.strip()]
    unknown = [w for w in wanted if w.lower() not in known]
    if unknown:
        parser.error(f"unknown check(s) {', '.join(unknown)}; choose from {', '.join(known.values())}")
    args.only = [known[w.lower()] for w in wanted]
    if args.budget <= 0:
        parser.error("--budget must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.dry_run:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch: the dry run is the CPU's
    out = Output()
    started = time.perf_counter()
    plan = [c for c in CHECKS if not args.only or c.id in args.only]
    out.emit(line="start", plan=[c.id for c in plan], budget_s=args.budget, dry_run=args.dry_run,
             argv=sys.argv[1:])
    try:
        from wangp_cli.generate import engine

        prepare = getattr(engine, "prepare_cuda_environment", None)
        if prepare is not None:
            prepare()  # as wangp's Generator does, before the first CUDA allocation
        alloc_conf = {} if args.dry_run else probe_alloc_conf()
        engine.quiet_libraries()
        torch = _torch()
        cuda = torch.cuda.is_available() and not args.dry_run
    except Exception as exc:  # noqa: BLE001 - nothing can run; say why on a line
        out.last(line="summary", status="error", error=f"{type(exc).__name__}: {exc}", checks={},
                 wall_s=round(time.perf_counter() - started, 2))
        return 1
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="wangp-gpucheck-"))
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=out, dry=args.dry_run, cuda=cuda, work=work, budget=args.budget, started=started)
    ctx.figures["alloc_conf"] = alloc_conf
    statuses = {}
    watchdog = _watchdog(ctx, plan, statuses, args.budget + args.grace - (time.perf_counter() - started))
    try:
        for index, check in enumerate(plan):
            statuses[check.id] = _run_check(ctx, check)
            following = plan[index + 1].id if index + 1 < len(plan) else None
            if following not in USES_13B:
                ctx.release_13b()
    finally:
        ctx.release_13b()
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    watchdog.cancel()
    failed = [k for k, v in statuses.items() if v in ("fail", "error")]
    device = _torch().cuda.get_device_name(0) if cuda else "cpu"
    out.last(line="summary", status="fail" if failed else "ok", checks=statuses, failed=failed, device=device,
             dry_run=args.dry_run, wall_s=round(time.perf_counter() - started, 2), budget_s=args.budget,
             work=str(work) if args.keep or args.workdir else None, note=UMT5_NOTE)
    return 1 if failed else 0


def _watchdog(ctx: Context, plan: list, statuses: dict, seconds: float):
    """After ``seconds``, a case that is still running (a hang, a run far over its estimate) is abandoned: the
    summary line says which check it was, and the process exits (status 3)."""
    import threading

    def expire():
        running = next((c.id for c in plan if c.id not in statuses), None)
        ctx.out.last(line="summary", status="timeout", checks=statuses, failed=[running] if running else [],
                     running=running, dry_run=ctx.dry, wall_s=round(time.perf_counter() - ctx.started, 2),
                     budget_s=ctx.budget, note=UMT5_NOTE)
        os._exit(3)

    timer = threading.Timer(max(seconds, 1.0), expire)
    timer.daemon = True
    timer.start()
    return timer


def _run_check(ctx: Context, check: Check) -> str:
    left = ctx.remaining()
    if not ctx.dry and not ctx.cuda and check.id != "P0":
        ctx.out.emit(line="check", check=check.id, title=check.title, status="skipped",
                     reason="no CUDA GPU here (--dry-run runs every check at tiny size on the CPU)")
        return "skipped"
    if not ctx.dry and left < check.minimum:
        ctx.out.emit(line="check", check=check.id, title=check.title, status="skipped",
                     reason=f"the run's budget is spent: {max(left, 0):.0f} s left, the check needs "
                            f"{check.minimum:.0f} s or more")
        return "skipped"
    start = time.perf_counter()
    run = CheckRun(ctx, check.id, start + (left if ctx.dry else min(check.budget, left)))
    fields: dict = {}
    try:
        fields = dict(check.run(ctx, run) or {})
        if run.counts["fail"] or run.counts["error"]:
            status = "fail"
        elif run.counts["skipped"] and not run.counts["ok"]:
            status, fields["reason"] = "skipped", "every case was skipped"
        else:
            status = "ok"
    except Skip as why:
        status, fields = ("fail" if run.counts["fail"] or run.counts["error"] else "skipped"), {"reason": str(why)}
    except Exception as exc:  # noqa: BLE001 - a failing check is a line, never the end of the run
        status = "error"
        fields = {"error": f"{type(exc).__name__}: {exc}"[:2000], "traceback": traceback.format_exc()[-4000:]}
    if status == "error":
        ctx.free()
    ctx.out.line({"line": "check", "check": check.id, "title": check.title, "status": status, "cases": run.counts,
                  "seconds": round(time.perf_counter() - start, 2)}, fields)
    return status


if __name__ == "__main__":
    sys.exit(main())
