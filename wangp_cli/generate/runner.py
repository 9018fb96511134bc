"""One generation end to end: files (downloaded when missing), load, denoise, save. Models stay loaded in a
:class:`Generator` between requests of the same definition (batch runs load once)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import WangpError
from wangp_cli.core.models import resolve_model
from wangp_cli.core.registry import get_architecture
from wangp_cli.generate.request import GenerateRequest


class Reporter:
    """What a front end hears; the default is silent. Override what you need."""

    def stage(self, name: str, seconds: float) -> None:
        """A stage finished."""

    def step(self, done: int, total: int) -> None:
        """A denoising step finished."""

    def warn(self, message: str) -> None:
        """Something the user should know (CPU run, profile fallback, ...)."""


@dataclass
class ModelFiles:
    """What a request loads: transformer file(s), the components folder, and how to treat the weights."""

    transformer: list[str]  # main file first, then modules (home-relative or absolute)
    components: Path
    dtype: str  # bf16 | fp16 (compute dtype WanGP would use)
    quantized: bool
    auto_quantize: bool
    missing: list[str] = field(default_factory=list)
    components_missing: bool = False


def components_folder(catalog: Catalog, request: GenerateRequest) -> Path:
    if request.components is not None:
        return request.components
    arch = get_architecture(request.architecture, catalog.target)
    return catalog.home.root / "ckpts" / arch.diffusers_repo.split("/")[-1]


def components_complete(folder: Path, arch_id: str, target: str = "july") -> bool:
    arch = get_architecture(arch_id, target)
    return (folder / "model_index.json").is_file() and all((folder / name).is_dir() for name in arch.components)


def model_files(catalog: Catalog, request: GenerateRequest) -> ModelFiles:
    resolved = resolve_model(catalog, request.model_id, request.preference)
    chosen = resolved["transformer"]
    entries = [chosen] + resolved["modules"]
    folder = components_folder(catalog, request)
    return ModelFiles(
        transformer=[e["path"] for e in entries], components=folder, dtype=chosen["dtype"],
        quantized=chosen["quantized"], auto_quantize=chosen["auto_quantize"],
        missing=[e["path"] for e in entries if not e["present"]],
        components_missing=not components_complete(folder, request.architecture, catalog.target))


def fetch_missing(catalog: Catalog, request: GenerateRequest, files: ModelFiles) -> None:
    """Download what is missing through the download core (components only when their folder is incomplete)."""
    if not files.missing and not files.components_missing:
        return
    from wangp_cli.download import download, offline, offline_error, plan_for

    if files.components_missing and request.components is not None:
        raise WangpError(f"'{request.components}' is not a complete diffusers folder for {request.architecture}",
                         code="components", hint="it needs model_index.json and the component subfolders")
    plan = plan_for(catalog, [request.model_id], request.preference, components=files.components_missing)
    if offline() and plan.missing:
        raise offline_error(plan)
    download(plan, catalog.home)


def wangp_metadata(catalog: Catalog, request: GenerateRequest, model_filename: str, generation_time: float) -> dict:
    """The settings block WanGP embeds in its videos (``prepare_inputs_dict("metadata")``)."""
    from wangp_cli.core.settings import export_settings

    definition = catalog.get(request.model_id)
    metadata = export_settings(definition, catalog, model_filename, form="metadata", settings=dict(request.settings))
    metadata["generation_time"] = round(generation_time)
    return metadata


def output_path(catalog: Catalog, request: GenerateRequest, when: datetime) -> Path:
    from wangp_cli.generate.video import default_output_name

    name = default_output_name(request.settings.get("prompt", ""), request.seed, when)
    if request.output is None:
        return catalog.home.root / "outputs" / name
    if request.output.suffix.lower() == ".mp4":
        return request.output
    return request.output / name


@dataclass
class Rendering:
    """Frames of one request before saving, with what produced them."""

    result: object  # engine.RunResult
    files: ModelFiles
    timings: dict
    reused: bool  # the pipeline of the previous request served this one
    started: float


class Generator:
    """Loads pipelines on demand and keeps the last one, so that consecutive requests of one model reuse it."""

    def __init__(self, catalog: Catalog, reporter: Reporter | None = None):
        self.catalog = catalog
        self.reporter = reporter or Reporter()
        self._key = None
        self._pipe = None
        self._placement = ("cpu", "cpu")

    @staticmethod
    def _request_key(request: GenerateRequest, files: ModelFiles) -> tuple:
        return request.model_id, request.preference, str(files.components), request.profile

    def _pipeline(self, request: GenerateRequest, files: ModelFiles):
        from wangp_cli.generate import engine

        key = self._request_key(request, files)
        if key == self._key:
            return self._pipe
        self.close()
        from wangp_cli.generate.weights import load_transformer

        home = self.catalog.home
        arch = get_architecture(request.architecture, self.catalog.target)
        loaded = load_transformer([home.resolve(p) for p in files.transformer], engine.torch_dtype(files.dtype),
                                  arch_shape=arch.transformer, quantize=files.auto_quantize)
        pipe = engine.build_pipeline(request, loaded.model, files.components, engine.torch_dtype(files.dtype))
        profile, device = engine.pick_profile(pipe, request.profile)
        if device == "cpu":
            self.reporter.warn("no CUDA GPU: running on the CPU (slow; fine for tiny models)")
        profile = engine.apply_profile(pipe, profile, quantized=loaded.quantized, warn=self.reporter.warn)
        self._key, self._pipe, self._placement = key, pipe, (profile, device)
        return pipe

    def close(self) -> None:
        """Drop the loaded pipeline (and its GPU memory)."""
        if self._pipe is None:
            return
        self._key = self._pipe = None
        import gc
        import sys

        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def render(self, request: GenerateRequest) -> Rendering:
        """Fetch what is missing, load (or reuse) the pipeline, run it: the frames, not yet saved."""
        from wangp_cli.generate import engine

        timings = {}
        started = time.perf_counter()
        files = model_files(self.catalog, request)
        mark = time.perf_counter()
        fetch_missing(self.catalog, request, files)
        timings["download"] = time.perf_counter() - mark
        self.reporter.stage("download", timings["download"])
        mark = time.perf_counter()
        reused = self._request_key(request, files) == self._key
        pipe = self._pipeline(request, files)
        timings["load"] = time.perf_counter() - mark
        self.reporter.stage("load", timings["load"])
        profile, device = self._placement
        result = engine.run(pipe, request, device=device, profile=profile, on_step=self.reporter.step)
        for name in ("encode", "denoise", "decode"):
            timings[name] = result.timings[name]
            self.reporter.stage(name, timings[name])
        return Rendering(result, files, timings, reused, started)

    def generate(self, request: GenerateRequest) -> dict:
        """Run one request and save the mp4; returns the result record (also written as the JSON sidecar)."""
        from wangp_cli.generate.video import write_sidecar, write_video

        rendering = self.render(request)
        files, timings, result = rendering.files, rendering.timings, rendering.result
        mark = time.perf_counter()
        path = output_path(self.catalog, request, datetime.now())
        metadata = wangp_metadata(self.catalog, request, Path(files.transformer[0]).name,
                                  time.perf_counter() - rendering.started)
        write_video(path, result.frames, request.fps, metadata)
        timings["save"] = time.perf_counter() - mark
        self.reporter.stage("save", timings["save"])
        record = {
            "path": str(path), "model": request.model_id, "architecture": request.architecture,
            "seed": request.seed, "width": request.width, "height": request.height, "frames": request.frames,
            "fps": request.fps, "transformer": files.transformer, "quantized": files.quantized or files.auto_quantize,
            "dtype": files.dtype, "device": result.device, "profile": result.profile,
            "model_reused": rendering.reused, "timings": {k: round(v, 4) for k, v in timings.items()},
            "peak_memory": result.peak_memory, "settings": metadata,
        }
        record["sidecar"] = str(write_sidecar(path, record))
        return record
