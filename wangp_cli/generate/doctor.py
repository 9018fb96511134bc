"""Environment report and the offline generation self-test behind ``wangp doctor``."""

from __future__ import annotations

import os
import platform
import tempfile
import time
import traceback
from pathlib import Path

PACKAGES = ("wangp", "torch", "diffusers", "transformers", "optimum-quanto", "accelerate", "huggingface_hub",
            "safetensors", "imageio-ffmpeg")


def _ram_available() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


#: The sizes the profile table plans for: name -> (width, height, frames).
PLAN_SIZES = {"480p": (832, 480, 81), "720p": (1280, 720, 81)}
#: Weights the table plans for: name -> quantized.
PLAN_WEIGHTS = {"16-bit": False, "int8": True}


def gpu_report() -> dict:
    """The CUDA device wangp would use (device 0): name, compute capability, free/total VRAM, bf16 support."""
    import torch

    device = {"name": "cpu (no CUDA GPU)", "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        major, minor = torch.cuda.get_device_capability(0)
        device.update(name=torch.cuda.get_device_name(0), vram_free_bytes=free, vram_total_bytes=total,
                      count=torch.cuda.device_count(), capability=f"{major}.{minor}",
                      bf16=bool(torch.cuda.is_bf16_supported()))
    return device


def attention_report(device: str) -> dict:
    """Which ``--attention`` kernels are installed, which run on ``device``, and the dispatcher name ``auto``
    picks there for each family."""
    from wangp_cli.families import FAMILIES
    from wangp_cli.generate.accel import installed_backends, resolve_attention, usable_backends

    return {"installed": installed_backends(), "usable": list(usable_backends(device)),
            "auto": {family: resolve_attention("auto", family, device) for family in FAMILIES}}


def _plan_target(arch_id: str) -> str | None:
    """The newest target that knows the architecture (``i2v_720p`` is a WanGP 7 base type only)."""
    from wangp_cli.core.registry import DEFAULT_TARGET, get_architecture

    return next((target for target in (DEFAULT_TARGET, "july") if get_architecture(arch_id, target)), None)


def profile_plan(free: int) -> dict:
    """The profile ``generate`` would pick with ``free`` bytes of VRAM, for every supported architecture at
    :data:`PLAN_SIZES`, 16-bit and int8: ``{arch: {"480p": {"margin_bytes", "16-bit": {"bytes", "profile"},
    "int8": {...}}, ...}}`` (sizes from the model shapes, nothing loaded)."""
    from wangp_cli.generate import engine

    plan = {}
    for arch_id in engine.PIPELINES:
        target = _plan_target(arch_id)
        if target is None:
            continue
        weights = {name: engine.estimated_bytes(arch_id, target, quantized=quantized)
                   for name, quantized in PLAN_WEIGHTS.items()}
        sizes = {}
        for size, (width, height, frames) in PLAN_SIZES.items():
            frames = 1 if engine.makes_images(arch_id) else frames
            margin = engine.request_margin(arch_id, width, height, frames, target=target)
            sizes[size] = {"margin_bytes": margin, **{
                name: {"bytes": sum(components.values()),
                       "profile": engine.choose_profile(free, components, margin, quantized=PLAN_WEIGHTS[name])}
                for name, components in weights.items()}}
        plan[arch_id] = sizes
    return plan


def environment_report(vram_gib: float | None = None) -> dict:
    """Versions, the device (:func:`gpu_report`), RAM, ffmpeg, the attention kernels, and the profile per
    architecture for the GPU's free VRAM, or for ``vram_gib`` GiB (a card one does not have); without either
    ``profiles`` is None."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    device = gpu_report()
    try:
        import imageio_ffmpeg

        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        ffmpeg = f"missing ({exc})"
    free = int(vram_gib * 1024**3) if vram_gib is not None else device.get("vram_free_bytes")
    profiles = None
    if free is not None:
        profiles = {"vram_bytes": free, "source": "--vram" if vram_gib is not None else "gpu",
                    "sizes": {name: list(size) for name, size in PLAN_SIZES.items()},
                    "architectures": profile_plan(free)}
    return {"versions": versions, "device": device, "ram_available_bytes": _ram_available(), "ffmpeg": ffmpeg,
            "attention": attention_report("cuda" if "capability" in device else "cpu"), "profiles": profiles}


def self_test(kind: str = "t2v", output: Path | None = None) -> dict:
    """Generate 5 frames at 64x64 with a tiny random model of ``kind`` (default Wan 2.1 t2v; ``"t2v_2_2"``: Wan 2.2
    A14B, both transformers; ``"ti2v_2_2"``: TI2V 5B) written in WanGP's layout, read the mp4 back.

    The video goes through the same request, preflight and generator as ``wangp generate``; with ``output`` (a
    folder) it and its JSON sidecar are kept there (``path``, ``sidecar`` and the stage ``timings`` in the report),
    otherwise they go with the temporary folder. A refusal of that folder (not writable, no room) is raised, as
    ``generate`` raises it."""
    from wangp_cli.generate.tiny import make_home

    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="wangp-doctor-") as folder:
            from wangp_cli.core.definitions import Catalog
            from wangp_cli.core.home import Home
            from wangp_cli.generate.request import build_request
            from wangp_cli.generate.runner import Generator, preflight
            from wangp_cli.generate.video import probe_video

            home = make_home(Path(folder), kind)
            catalog = Catalog(Home(folder))
            where = Path(output).absolute() if output is not None else Path(folder) / "outputs"
            request = build_request(catalog, home.model_id, {"frames": 5, "seed": 0}, preference=home.preference,
                                    output=where, pipeline_kwargs=home.pipeline_kwargs)
            preflight(catalog, request)
            record = Generator(catalog).generate(request)
            probe = probe_video(record["path"])
        ok = probe["frames"] == 5 and (probe["width"], probe["height"]) == (64, 64)
        kept = {"path": record["path"], "sidecar": record["sidecar"]} if output is not None else {}
        return {"ok": ok, "error": None if ok else f"unexpected video {probe}", "seconds": time.perf_counter() - start,
                "frames": probe["frames"], "width": probe["width"], "height": probe["height"],
                "timings": record["timings"], **kept}
    except Exception as exc:  # noqa: BLE001 - reported, not raised: doctor explains what fails
        from wangp_cli.core.errors import WangpError

        if output is not None and isinstance(exc, WangpError):  # the folder given (not writable, full, a file)
            raise
        detail = traceback.format_exc() if os.environ.get("WANGP_DEBUG") else ""
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}{detail}", "seconds": time.perf_counter() - start}
