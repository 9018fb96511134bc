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


def environment_report() -> dict:
    from importlib import metadata

    import torch

    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    device = {"name": "cpu (no CUDA GPU)", "cuda": torch.version.cuda}
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        device.update(name=torch.cuda.get_device_name(0), vram_free_bytes=free, vram_total_bytes=total,
                      count=torch.cuda.device_count())
    try:
        import imageio_ffmpeg

        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        ffmpeg = f"missing ({exc})"
    return {"versions": versions, "device": device, "ram_available_bytes": _ram_available(), "ffmpeg": ffmpeg}


def self_test(kind: str = "t2v") -> dict:
    """Generate 5 frames at 64x64 with a tiny random model of ``kind`` (default Wan 2.1 t2v; ``"t2v_2_2"``: Wan 2.2
    A14B, both transformers; ``"ti2v_2_2"``: TI2V 5B) written in WanGP's layout, read the mp4 back."""
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
            request = build_request(catalog, home.model_id, {"frames": 5, "seed": 0}, preference=home.preference,
                                    output=Path(folder) / "outputs", pipeline_kwargs=home.pipeline_kwargs)
            preflight(catalog, request)
            record = Generator(catalog).generate(request)
            probe = probe_video(record["path"])
        ok = probe["frames"] == 5 and (probe["width"], probe["height"]) == (64, 64)
        return {"ok": ok, "error": None if ok else f"unexpected video {probe}", "seconds": time.perf_counter() - start,
                "frames": probe["frames"], "width": probe["width"], "height": probe["height"]}
    except Exception as exc:  # noqa: BLE001 - reported, not raised: doctor explains what fails
        detail = traceback.format_exc() if os.environ.get("WANGP_DEBUG") else ""
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}{detail}", "seconds": time.perf_counter() - start}
