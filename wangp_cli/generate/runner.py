"""One generation end to end: checks (:func:`preflight`), files (downloaded when missing), load, denoise, save.
Models stay loaded in a :class:`Generator` between requests of the same definition (batch runs load once)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import UsageError, WangpError
from wangp_cli.core.models import resolve_model
from wangp_cli.core.variants import READABLE_KINDS
from wangp_cli.core.outputs import OutputError, check_folder_writable, check_free_space, check_output_file
from wangp_cli.core.registry import get_architecture
from wangp_cli.generate.request import GenerateRequest


class Reporter:
    """What a front end hears; the default is silent. Override what you need (``stage_start`` is optional: a
    reporter without it hears only the stage ends)."""

    def stage_start(self, name: str) -> None:
        """A stage begins: download, load, encode, denoise, decode, save (the keys of the record's timings)."""

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
    variant_count: int = 1  # transformer variants the definition lists
    entry: str = ""  # the chosen transformer entry as the definition writes it (a URL for hub files)
    transformer2: list[str] = field(default_factory=list)  # Wan 2.2 A14B's low-noise transformer (URLs2, its own
    # variant choice), then its modules
    quantized2: bool = False
    auto_quantize2: bool = False
    loras: list[str] = field(default_factory=list)  # the LoRA files, in order (home-relative or absolute)

    def model_filename(self, target: str) -> str:
        """What the video's metadata calls the transformer: WanGP 12 the raw entry, WanGP 7 the file's name."""
        return self.entry if target == "v12" and self.entry else Path(self.transformer[0]).name


#: The files of a definition that generation reads (the text encoder, VAE and preloads of WanGP's layout are
#: not: diffusers takes those from the components folder).
GENERATE_ROLES = ("transformer", "transformer2", "module", "lora")


def components_folder(catalog: Catalog, request: GenerateRequest) -> Path:
    if request.components is not None:
        return request.components
    arch = get_architecture(request.architecture, catalog.target)
    return catalog.home.root / "ckpts" / arch.diffusers_repo.split("/")[-1]


def components_complete(folder: Path, arch_id: str, target: str = "july") -> bool:
    arch = get_architecture(arch_id, target)
    return (folder / "model_index.json").is_file() and all((folder / name).is_dir() for name in arch.components)


def _second_transformer(request: GenerateRequest, resolved: dict) -> list[dict]:
    """The entries of the second transformer (URLs2, then the modules: a module's URLs2 file, else the module
    file both submodels take, as WanGP's ``load_models``), [] without one; refused where the pipeline has no
    slot for it, or needs it and the definition has none."""
    from wangp_cli.generate.weights import transformer_slots

    wanted, second = "transformer_2" in transformer_slots(request.architecture), resolved.get("transformer2")
    if second and not wanted:
        raise WangpError(f"'{request.model_id}' has a second transformer (URLs2), which the {request.architecture} "
                         "pipeline does not take", code="unsupported",
                         hint="remove URLs2, or base the definition on a Wan 2.2 A14B architecture")
    if wanted and not second:
        raise WangpError(f"'{request.model_id}' ({request.architecture}) lists no low-noise transformer (URLs2)",
                         code="E5", hint=f"add the list of its base definition: \"URLs2\": \"{request.architecture}\"")
    return [second] + [module.get("second", module) for module in resolved["modules"]] if second else []


def model_files(catalog: Catalog, request: GenerateRequest) -> ModelFiles:
    resolved = resolve_model(catalog, request.model_id, request.preference)
    chosen = resolved["transformer"]
    second = _second_transformer(request, resolved)
    entries = [chosen] + resolved["modules"]
    unreadable = [e for e in entries + second if e.get("kind", "16-bit") not in READABLE_KINDS]
    if unreadable:  # never fed to a loader as if it were 16-bit
        raise WangpError(f"'{request.model_id}': {unreadable[0]['path']} is a {unreadable[0]['kind']} checkpoint, "
                         "which wangp cannot load (it reads 16-bit, quanto int8, scaled fp8 and GGUF)",
                         code="format",
                         hint="pick another variant (--quantization none or int8) or a definition with a 16-bit file")
    folder = components_folder(catalog, request)
    specs = request.loras.specs if request.loras else ()
    return ModelFiles(
        transformer=[e["path"] for e in entries], components=folder, dtype=chosen["dtype"],
        quantized=chosen["quantized"], auto_quantize=chosen["auto_quantize"],
        missing=list(dict.fromkeys(e["path"] for e in entries + second if not e["present"]))
        + [s.path for s in specs if not _lora_present(catalog, s.path)],
        components_missing=not components_complete(folder, request.architecture, catalog.target),
        variant_count=len(resolved["variants"]), entry=chosen["entry"], loras=[s.path for s in specs],
        transformer2=[e["path"] for e in second], quantized2=bool(second and second[0]["quantized"]),
        auto_quantize2=bool(second and second[0]["auto_quantize"]))


def _lora_present(catalog: Catalog, path: str) -> bool:
    return Path(path).is_file() if os.path.isabs(path) else catalog.home.exists(path)


def _download_plan(catalog: Catalog, request: GenerateRequest, files: ModelFiles, network: bool | None = None):
    """The download plan of a request: the definition's transformer, modules and LoRAs, plus the URLs of the
    settings' and ``--lora``'s LoRAs (into the LoRA folder); LoRA files that are neither there nor downloadable
    are a ``missing`` error."""
    from wangp_cli.download import offline, resolve_plan
    from wangp_cli.download.plan import FilePlan, build_plan, parse_hub_url

    plan = build_plan(catalog, [request.model_id], request.preference, components=files.components_missing)
    plan.files = [f for f in plan.files if f.role in GENERATE_ROLES]
    planned = {f.dest for f in plan.files}
    lost = []
    for spec in request.loras.specs if request.loras else ():
        if spec.path in planned or _lora_present(catalog, spec.path):
            continue
        if spec.url is None:
            lost.append(spec.path)
            continue
        plan.files.append(FilePlan(dest=spec.path, source=spec.url, role="lora", owners=[request.model_id],
                                   hub=parse_hub_url(spec.url)))
        planned.add(spec.path)
    if lost:
        raise WangpError("missing LoRA files: " + ", ".join(lost), code="missing",
                         hint="put them in the LoRA folder, or give their URL")
    return resolve_plan(plan, catalog.home, network=not offline() if network is None else network)


def _components_error(request: GenerateRequest) -> WangpError:
    return WangpError(f"'{request.components}' is not a complete diffusers folder for {request.architecture}",
                      code="components", hint="it needs model_index.json and the component subfolders")


def fetch_missing(catalog: Catalog, request: GenerateRequest, files: ModelFiles) -> None:
    """Download what is missing through the download core (components only when their folder is incomplete)."""
    if not files.missing and not files.components_missing:
        return
    from wangp_cli.download import download, offline, offline_error

    if files.components_missing and request.components is not None:
        raise _components_error(request)
    plan = _download_plan(catalog, request, files)
    if offline() and plan.missing:
        raise offline_error(plan)
    download(plan, catalog.home)


def wangp_metadata(catalog: Catalog, request: GenerateRequest, model_filename: str, generation_time: float) -> dict:
    """The settings block WanGP embeds in its videos (``prepare_inputs_dict("metadata")``)."""
    from wangp_cli.core.settings import export_settings

    definition = catalog.get(request.model_id)
    metadata = export_settings(definition, catalog, model_filename, form="metadata", settings=dict(request.settings))
    if request.media == "image":  # WanGP records its image codec ("png", "jpeg_95", "webp_95") with an image
        from wangp_cli.generate.image import quality_name

        metadata["image_quality"] = quality_name(image_format(request))
    metadata["generation_time"] = round(generation_time)
    return metadata


def image_format(request: GenerateRequest) -> str:
    """An image request's file format: ``-o``'s suffix, else ``--image-format``, else png."""
    from wangp_cli.generate.request import image_format_for

    return image_format_for(request.output, request.image_format)


def media_suffix(request: GenerateRequest) -> str:
    """The suffix of the request's output file: ``.mp4``, or the image format's (``.png``, ``.jpg``, ``.webp``)."""
    if request.media != "image":
        return ".mp4"
    from wangp_cli.generate.image import suffix_of

    return suffix_of(image_format(request))


def _is_mp4(path: Path) -> bool:
    """An mp4 (its first box is ``ftyp``), or an empty file: what ``-o`` may replace."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError:
        return False
    return not head or head[4:8] == b"ftyp"


def _is_sidecar(path: Path) -> bool:
    """A JSON result record that wangp wrote beside a video."""
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.stat().st_size < 16 << 20 else None
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and "path" in data and "seed" in data


def _replaceable(path: Path, kind: str, is_own_kind, option: str) -> None:
    """``check_output_file`` for a file generate writes: it has no --force, so the hint says what to do."""
    check_output_file(path, kind=kind, is_own_kind=is_own_kind, option=option,
                      exists_hint="choose another -o, or move the file away")


def output_file(request: GenerateRequest) -> Path | None:
    """The video (image) file ``-o`` names (None when it goes into a folder under WanGP's time-stamped name)."""
    from wangp_cli.generate.image import SUFFIXES

    output = request.output
    if output is None:
        return None
    suffix = output.suffix.lower()
    return output if (suffix in SUFFIXES if request.media == "image" else suffix == ".mp4") else None


def output_folder(catalog: Catalog, request: GenerateRequest) -> Path:
    if request.output is None:
        return catalog.home.root / "outputs"
    file = output_file(request)
    return file.parent if file is not None else request.output


def output_path(catalog: Catalog, request: GenerateRequest, when: datetime) -> Path:
    from wangp_cli.generate.video import default_output_name

    return output_file(request) or output_folder(catalog, request) / default_output_name(
        request.settings.get("prompt", ""), request.seed, when, media_suffix(request))


def _wrong_suffix(request: GenerateRequest, output: Path) -> UsageError:
    """``-o`` names a file of another kind than the model makes."""
    from wangp_cli.generate.image import SUFFIXES

    if request.media == "image":
        return UsageError(f"-o '{output}': '{request.model_id}' makes images, written as .png, .jpg, .jpeg or .webp",
                          hint=f"-o {output.with_suffix('.png')}, or a folder for time-stamped names "
                               "(--image-format png|jpeg|webp)")
    if output.suffix.lower() in SUFFIXES:
        return UsageError(f"-o '{output}': '{request.model_id}' makes videos, wangp writes them as .mp4",
                          hint=f"-o {output.with_suffix('.mp4')}, or a folder for time-stamped names")
    return UsageError(f"-o '{output}': wangp writes .mp4 videos",
                      hint=f"-o {output.with_suffix('.mp4')}, or a folder for time-stamped names")


def check_output(catalog: Catalog, request: GenerateRequest) -> Path:
    """Where the video (image) goes (a file, or a folder), refused now when writing it after the render would
    fail: ``-o`` is an .mp4 file (for image models a .png/.jpg/.jpeg/.webp file) or a folder; an existing file
    that is not of that kind (or not our sidecar beside it) is never replaced; the folder must be writable and
    have room for the output."""
    from wangp_cli.generate.image import is_image

    output, file = request.output, output_file(request)
    images = request.media == "image"
    kind, own_kind = ("PNG/JPEG/WebP image", is_image) if images else ("video", _is_mp4)
    if file is not None:
        _replaceable(file, kind, own_kind, "-o")
        _replaceable(file.with_suffix(".json"), "wangp sidecar", _is_sidecar, "the sidecar")
    elif output is not None and not output.is_dir():
        if os.path.lexists(output):
            wanted = "an image file (-o out.png)" if images else "an .mp4 file (-o clip.mp4)"
            raise OutputError(f"-o '{output}' is an existing file, not an {'image' if images else '.mp4 video'}",
                              code="exists", hint=f"name {wanted} or a folder")
        if output.suffix:
            raise _wrong_suffix(request, output)
    folder = output_folder(catalog, request)
    check_folder_writable(folder, what="output folder")
    if images:  # at most the raw pixels (an incompressible PNG) and the settings
        check_free_space(folder, request.width * request.height * 3 + (1 << 20), what="the image")
    else:
        check_free_space(folder, request.width * request.height * request.frames // 4, what="the video")
    return file or folder


@dataclass
class Preflight:
    """What the checks before loading found."""

    files: ModelFiles
    download: list[str]  # files that will be downloaded first (home-relative)
    output: Path  # the video file, or the folder it goes into
    warnings: list[str] = field(default_factory=list)


def _variant_warning(request: GenerateRequest, files: ModelFiles) -> str | None:
    """When the user asked for a quantization or dtype that the chosen file does not have (WanGP takes the only
    variant, or the first one, without a word)."""
    asked, preference = request.asked, request.preference
    quantized = files.quantized or files.auto_quantize
    differs = []
    if "quantization" in asked and (preference.quantization == "none") == quantized:
        differs.append(f"quantization {preference.quantization}")
    if "dtype" in asked and files.dtype != preference.dtype:
        differs.append(f"dtype {preference.dtype}")
    if not differs:
        return None
    which = "only one variant" if files.variant_count == 1 else "no variant that matches"
    used = ("int8 " if quantized else "") + files.dtype
    return (f"'{request.model_id}' has {which}: {used} ({files.transformer[0]}) is used although "
            f"{', '.join(differs)} was asked")


def preflight(catalog: Catalog, request: GenerateRequest) -> Preflight:
    """Everything that can be known before loading a model, checked in one place (no network, no torch): the
    definition's files (present, downloadable, or offline and missing), the output, and what to warn about.
    Single videos, dry runs and manifest runs all call it; a WangpError says what is wrong."""
    from wangp_cli.generate.video import MAX_METADATA, metadata_size

    files = model_files(catalog, request)
    if files.components_missing and request.components is not None:
        raise _components_error(request)
    download = []
    if files.missing or files.components_missing:
        from wangp_cli.download import offline, offline_error

        plan = _download_plan(catalog, request, files, network=False)
        lost = [f.dest for f in plan.missing if f.local]
        if lost:
            raise WangpError("missing local files: " + ", ".join(lost), code="missing",
                             hint="put the files there, or fix the definition's URLs")
        download = [f.dest for f in plan.missing]
        if download and offline():
            raise offline_error(plan)
    checked = Preflight(files, download, check_output(catalog, request))
    warning = _variant_warning(request, files)
    if warning:
        checked.warnings.append(warning)
    metadata = wangp_metadata(catalog, request, files.model_filename(catalog.target), 0)
    if request.media == "image":
        from wangp_cli.generate.image import MAX_JPEG_COMMENT, comment_size

        size = comment_size(metadata, image_format(request))
        if image_format(request) == "jpeg" and size > MAX_JPEG_COMMENT:
            checked.warnings.append(f"the settings take {size:,} bytes, more than a JPEG's EXIF holds "
                                    f"({MAX_JPEG_COMMENT:,}): the image gets them with long texts shortened, the "
                                    "sidecar whole (PNG and WebP hold them all)")
        return checked
    size = metadata_size(metadata)
    if size > MAX_METADATA:
        checked.warnings.append(f"the settings take {size:,} characters of JSON, more than an mp4 comment holds "
                                f"({MAX_METADATA:,}): the mp4 gets them with long texts shortened, the sidecar "
                                "whole")
    return checked


def _trim_heap() -> None:
    """Give freed host memory back to the OS between models (accelerate's model offload re-allocates pageable copies
    each cycle, so RSS creeps up over a long batch: diffusers#7970); glibc only, a no-op elsewhere."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


@dataclass
class Rendering:
    """Frames of one request before saving, with what produced them."""

    result: object  # engine.RunResult
    files: ModelFiles
    timings: dict
    reused: bool  # the pipeline of the previous request served this one
    started: float
    speed: dict = field(default_factory=dict)  # attention backend, compiled blocks, step cache (for the record)


class Generator:
    """Loads pipelines on demand and keeps the last one, so that consecutive requests of one model reuse it."""

    def __init__(self, catalog: Catalog, reporter: Reporter | None = None):
        self.catalog = catalog
        self.reporter = reporter or Reporter()
        self._key = None
        self._pipe = None
        self._placement = ("cpu", "cpu")
        self._loras = None  # generate.loras.AttachedLoras of the loaded pipeline
        self._compiled = None  # what accel.compile_transformers compiled in the loaded pipeline
        self._dtype = None  # the compute dtype of the loaded pipeline
        from wangp_cli.generate.engine import prepare_cuda_environment

        prepare_cuda_environment()

    @property
    def placement(self) -> tuple[str, str]:
        """(profile, device) of the loaded pipeline (("cpu", "cpu") before the first load)."""
        return self._placement

    @staticmethod
    def _request_key(request: GenerateRequest, files: ModelFiles) -> tuple:
        return (request.model_id, request.preference, str(files.components), request.profile, tuple(files.loras),
                request.image is not None,  # TI2V 5B: another pipeline class with a start image
                request.compile)  # compiled blocks stay compiled: a request without --compile loads afresh

    def _pipeline(self, request: GenerateRequest, files: ModelFiles):
        from wangp_cli.generate import accel, engine

        key = self._request_key(request, files)
        if key == self._key:
            return self._pipe
        self.close()
        from wangp_cli.generate.weights import load_transformer

        home = self.catalog.home
        arch = get_architecture(request.architecture, self.catalog.target)
        self._dtype = self._compute_dtype(request, files)
        dtype = engine.torch_dtype(self._dtype)
        from wangp_cli.families import family_for_architecture

        family = family_for_architecture(request.architecture).name
        loaded = load_transformer([home.resolve(p) for p in files.transformer], dtype,
                                  arch_shape=arch.transformer, quantize=files.auto_quantize, family=family)
        second = load_transformer([home.resolve(p) for p in files.transformer2], dtype,
                                  arch_shape=arch.transformer, quantize=files.auto_quantize2, family=family) \
            if files.transformer2 else None  # Wan 2.2 A14B's low-noise transformer
        pipe = engine.build_pipeline(request, loaded.model, files.components, dtype,
                                     transformer_2=second.model if second else None)
        self._loras = self._attach_loras(pipe, request, files)  # before placement: offloading sees the adapters
        quantized = loaded.quantized or bool(second and second.quantized)
        profile, device = engine.pick_profile(pipe, request.profile, request=request, quantized=quantized)
        self._placement = (profile, device)  # what an out-of-memory retry lowers, should the placement itself fail
        if device == "cpu":
            self.reporter.warn("no CUDA GPU: running on the CPU (slow; fine for tiny models)")
        profile = engine.apply_profile(pipe, profile, quantized=quantized, warn=self.reporter.warn,
                                       family=request.family, request=request)
        self._compiled = accel.compile_transformers(pipe, profile) if request.compile else None
        self._key, self._pipe, self._placement = key, pipe, (profile, device)
        return pipe

    def _compute_dtype(self, request: GenerateRequest, files: ModelFiles) -> str:
        """The file's dtype, or what the GPU computes best (no native bf16 below sm 8.0; HunyuanVideo never fp16:
        ``numerics.compute_dtype``), with a warning when it differs."""
        import torch

        from wangp_cli.generate.numerics import compute_dtype

        gpu = torch.cuda.is_available() and request.profile != "cpu"
        chosen, warnings = compute_dtype(files.dtype, request.family,
                                         torch.cuda.get_device_capability() if gpu else None,
                                         asked="dtype" in request.asked and request.preference.dtype == files.dtype)
        for message in warnings:
            self.reporter.warn(message)
        return chosen

    def _attach_loras(self, pipe, request: GenerateRequest, files: ModelFiles):
        """The request's LoRAs attached to the pipeline's transformer(s) (None without LoRAs)."""
        if not files.loras:
            return None
        from wangp_cli.families import family_for_architecture
        from wangp_cli.generate import loras

        rules = family_for_architecture(request.architecture).loras()
        home = self.catalog.home
        transformers = [t for t in (pipe.transformer, getattr(pipe, "transformer_2", None)) if t is not None]
        return loras.load(request.loras.specs, lambda spec: spec.path if os.path.isabs(spec.path)
                          else home.resolve(spec.path), transformers, rules.to_diffusers)

    def _lora_steps(self, pipe, request: GenerateRequest):
        """The LoRA weights of each step for this request (None without LoRAs), step 0's already set."""
        if self._loras is None:
            return None
        from wangp_cli.generate.loras import StepWeights, model_switch_step, scheduler_timesteps

        timesteps = scheduler_timesteps(pipe.scheduler, request.steps)
        stepper = StepWeights(self._loras, request.loras.for_timesteps(timesteps, model_switch_step(pipe, timesteps)))
        stepper.apply(0)
        return stepper

    def close(self) -> None:
        """Drop the loaded pipeline (and its GPU memory)."""
        if self._pipe is None:
            return
        self._key = self._pipe = self._loras = None
        import gc
        import sys

        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
            empty_host_cache = getattr(torch.accelerator, "empty_host_cache", None)  # torch >= 2.10
            if empty_host_cache is not None:
                empty_host_cache()  # pinned copies of group offloading outlive the model otherwise
        _trim_heap()

    def _stage_start(self, name: str) -> None:
        begin = getattr(self.reporter, "stage_start", None)  # front ends may predate it
        if begin is not None:
            begin(name)

    def render(self, request: GenerateRequest) -> Rendering:
        """Fetch what is missing, load (or reuse) the pipeline, run it: the frames, not yet saved."""
        from wangp_cli.generate import accel, cache, engine

        timings = {}
        started = time.perf_counter()
        request.draw_seed()
        files = model_files(self.catalog, request)
        self._stage_start("download")
        mark = time.perf_counter()
        fetch_missing(self.catalog, request, files)
        timings["download"] = time.perf_counter() - mark
        self.reporter.stage("download", timings["download"])
        self._stage_start("load")
        mark = time.perf_counter()
        reused = self._request_key(request, files) == self._key
        pipe = self._pipeline(request, files)
        timings["load"] = time.perf_counter() - mark
        self.reporter.stage("load", timings["load"])
        profile, device = self._placement
        engine.configure(pipe, request)  # this request's sampler and transformer switch (a reused pipeline too)
        stepper = self._lora_steps(pipe, request)

        def on_step(done: int, total: int) -> None:
            if stepper is not None:
                stepper.step_end(done - 1)  # the weights of the next step
            self.reporter.step(done, total)

        attention = accel.set_attention(pipe, request.family, request.attention, device)  # a reused pipeline too
        step_cache = cache.apply_step_cache(pipe, request)
        try:
            result = engine.run(pipe, request, device=device, profile=profile, on_step=on_step,
                                on_stage=self._stage_start)
        finally:
            cache.remove_step_cache(pipe)  # the next request of this pipeline brings its own
        for name in ("encode", "denoise", "decode"):
            timings[name] = result.timings[name]
            self.reporter.stage(name, timings[name])
        speed = {"compute_dtype": self._dtype, "attention": attention, "compile": self._compiled,
                 "step_cache": step_cache}
        return Rendering(result, files, timings, reused, started, speed)

    def generate(self, request: GenerateRequest) -> dict:
        """Run one request and save the mp4 (an image model's image: its last frame); returns the result record
        (also written as the JSON sidecar).

        Metadata too large for the mp4 (a JPEG) is embedded shortened (the sidecar keeps it whole): the frames
        are kept. The family's audio is muxed into the mp4 unless ``request.no_audio``."""
        from wangp_cli.generate.video import write_sidecar

        rendering = self.render(request)
        files, timings, result = rendering.files, rendering.timings, rendering.result
        self._stage_start("save")
        mark = time.perf_counter()
        path = output_path(self.catalog, request, datetime.now())
        metadata = wangp_metadata(self.catalog, request, files.model_filename(self.catalog.target),
                                  time.perf_counter() - rendering.started)
        shortened, audio = save_media(path, request, result, metadata)
        timings["save"] = time.perf_counter() - mark
        self.reporter.stage("save", timings["save"])
        record = {
            "path": str(path), "model": request.model_id, "architecture": request.architecture,
            "seed": request.seed, "width": request.width, "height": request.height, "frames": request.frames,
            "fps": None if request.media == "image" else request.fps, "media": request.media,
            **({"image_format": image_format(request)} if request.media == "image" else {}), "audio": audio,
            "transformer": files.transformer,
            **({"transformer2": files.transformer2} if files.transformer2 else {}),
            "quantized": files.quantized or files.auto_quantize,
            "dtype": files.dtype, "device": result.device, "profile": result.profile,
            "model_reused": rendering.reused, "timings": {k: round(v, 4) for k, v in timings.items()},
            "step_seconds": [round(v, 4) for v in result.step_seconds], **rendering.speed,
            "transformer_calls": result.transformer_calls,
            "peak_memory": result.peak_memory, "metadata_shortened": shortened, "settings": metadata,
        }
        record["sidecar"] = str(write_sidecar(path, record))
        return record


def save_media(path: Path, request: GenerateRequest, result, metadata: dict) -> tuple[bool, dict | None]:
    """Write the rendered output to ``path`` with ``metadata`` embedded: an image model's last frame as an image,
    otherwise the mp4 (with the family's audio unless ``--no-audio``). ``(metadata shortened?, the record's
    audio: {"rate", "channels", "seconds"} or None)``."""
    if request.media == "image":
        from wangp_cli.generate.image import fit_metadata as fit_image_metadata, write_image

        chosen = image_format(request)
        embedded, shortened = fit_image_metadata(metadata, chosen)
        write_image(path, result.frames, embedded, image_format=chosen)
        return shortened, None
    from wangp_cli.generate.video import audio_record, fit_metadata, write_video

    embedded, shortened = fit_metadata(metadata)  # preflight warned about it; the record says so
    audio = None if request.no_audio else getattr(result, "audio", None)
    write_video(path, result.frames, request.fps, embedded, audio=audio)
    return shortened, audio_record(audio, len(result.frames), request.fps)
