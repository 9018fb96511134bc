"""Speed levers of the transformers: the attention backend (diffusers' attention dispatcher) and regional
torch.compile. Pure Python at import: torch and diffusers are imported only where a pipeline is touched."""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass
from importlib import metadata

from wangp_cli.core.errors import UsageError, WangpError

#: What ``--attention`` accepts.
ATTENTION_CHOICES = ("auto", "sdpa", "cudnn", "flash", "flash3", "sage")


@dataclass(frozen=True)
class Backend:
    """One ``--attention`` choice: the dispatcher names (diffusers' ``AttentionBackendName``) and what it needs."""

    plain: str  # the name for transformers that pass no attention mask (Wan)
    masked: str | None  # a name whose kernel takes a key-padding ``attn_mask`` (HunyuanVideo); None: none does
    modules: tuple[str, ...] = ()  # import names that must be present (what diffusers itself looks for)
    distribution: str = ""  # the package whose version diffusers checks
    min_version: str = ""
    capability: tuple[int, int] | None = None  # lowest CUDA compute capability the kernels run on
    below: tuple[int, int] | None = None  # first capability they no longer run on (FA3: Hopper only)
    install: str = ""


#: choice -> backend. ``flash``, ``_flash_3`` and ``sage`` raise on any ``attn_mask``
#: (diffusers/models/attention_dispatch.py ``_flash_attention``, ``_flash_attention_3``, ``_sage_attention``); their
#: ``*_varlen`` siblings turn HunyuanVideo's key-padding mask into sequence lengths, and cuDNN / native SDPA take
#: the mask as it is.
BACKENDS = {
    "sdpa": Backend("native", "native", ("torch",), install="pip install torch"),
    "cudnn": Backend("_native_cudnn", "_native_cudnn", ("torch",), capability=(8, 0), install="pip install torch"),
    "flash": Backend("flash", "flash_varlen", ("flash_attn",), "flash-attn", "2.6.3", capability=(8, 0),
                     install="pip install 'flash-attn>=2.6.3' --no-build-isolation"),
    "flash3": Backend("_flash_3", "_flash_varlen_3", ("flash_attn_3", "flash_attn_interface"), capability=(9, 0),
                      below=(10, 0), install="build FlashAttention 3 from its source (flash-attention/hopper: "
                                             "python setup.py install; Hopper GPUs only)"),
    "sage": Backend("sage", "sage_varlen", ("sageattention",), "sageattention", "2.1.1", capability=(8, 0),
                    install="build SageAttention >= 2.1.1 from its source (github.com/thu-ml/SageAttention: pip "
                            "install --no-build-isolation .; PyPI has only 1.x)"),
}
#: ``auto``: the first of these that is installed and runs on the GPU (WanGP's order: Sage first; then FA3, FA2).
#: cuDNN is left to an explicit ``--attention cudnn``: torch's own SDPA already picks among its flash, efficient
#: and cuDNN kernels, and forcing cuDNN fails on shapes cuDNN rejects.
AUTO_ORDER = ("sage", "flash3", "flash", "sdpa")
#: Families whose transformer passes an ``attn_mask`` to the dispatcher (HunyuanVideo: the padded prompt tokens).
MASKED_FAMILIES = ("hunyuan", "z_image", "ltx2")  # z_image: ZSingleStreamAttnProcessor passes its padding mask;
# ltx2: the text cross-attention takes the prompt's attention mask


def _version_tuple(text: str) -> tuple:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text).release
    except InvalidVersion:
        return ()


def missing(choice: str) -> str | None:
    """Why ``choice``'s kernels are not installed (None: they are); no import of them."""
    backend = BACKENDS[choice]
    absent = [name for name in backend.modules if importlib.util.find_spec(name) is None]
    if absent:
        return f"{', '.join(absent)} is not installed"
    if backend.distribution:
        try:
            version = metadata.version(backend.distribution)
        except metadata.PackageNotFoundError:
            return f"{backend.distribution} is not installed"
        if _version_tuple(version) < _version_tuple(backend.min_version):
            return f"{backend.distribution} {version} is installed; diffusers needs >= {backend.min_version}"
    return None


def installed_backends() -> dict[str, bool]:
    """choice -> its kernels are installed (``sdpa`` and ``cudnn`` need only torch; a GPU is checked later)."""
    return {choice: missing(choice) is None for choice in BACKENDS}


def dispatcher_name(choice: str, family: str) -> str | None:
    """The dispatcher name of ``choice`` for ``family`` (None: no kernel of it suits the family)."""
    backend = BACKENDS[choice]
    return backend.masked if family in MASKED_FAMILIES else backend.plain


def backends_for(family: str) -> tuple[str, ...]:
    """The choices (besides ``auto``) that have a kernel for the family's attention calls."""
    return tuple(choice for choice in BACKENDS if dispatcher_name(choice, family))


def attention_problems(choice: str, family: str) -> list[str]:
    """What is wrong with ``--attention choice`` for ``family``, checked before loading (no torch): unknown,
    not installed, or no kernel for the family."""
    if choice not in ATTENTION_CHOICES:
        return [f"--attention '{choice}' is not one of {', '.join(ATTENTION_CHOICES)}"]
    if choice == "auto":
        return []
    why = missing(choice)
    if why:
        return [f"--attention {choice}: {why}; to install it: {BACKENDS[choice].install}"]
    if dispatcher_name(choice, family) is None:
        return [f"--attention {choice} has no kernel for {family} (it passes an attention mask); "
                f"use {', '.join(backends_for(family))}"]
    return []


def check_attention(choice: str, family: str) -> None:
    """UsageError when ``--attention choice`` cannot work for ``family`` (see :func:`attention_problems`)."""
    problems = attention_problems(choice, family)
    if problems:
        raise UsageError("; ".join(problems), hint="--attention auto picks the fastest installed one")


def _capability(device: str) -> tuple[int, int]:
    import torch

    return tuple(torch.cuda.get_device_capability(torch.device(device)))


def _runs_on(choice: str, capability: tuple[int, int]) -> bool:
    backend = BACKENDS[choice]
    return ((backend.capability is None or capability >= backend.capability)
            and (backend.below is None or capability < backend.below))


def resolve_attention(choice: str, family: str, device: str) -> str:
    """The dispatcher name for ``--attention choice`` on ``device`` ("cpu", "cuda", "cuda:1"): ``auto`` is the
    first of :data:`AUTO_ORDER` installed and running on this GPU (on the CPU always native SDPA). UsageError for
    a choice that is unknown, not installed, without a kernel for the family, or not for this device."""
    check_attention(choice, family)
    on_gpu = str(device).startswith("cuda")
    if choice == "auto":
        if not on_gpu:
            return dispatcher_name("sdpa", family)
        capability = _capability(device)
        for candidate in AUTO_ORDER:
            if missing(candidate) is None and dispatcher_name(candidate, family) and _runs_on(candidate, capability):
                return dispatcher_name(candidate, family)
        return dispatcher_name("sdpa", family)
    if choice != "sdpa":
        if not on_gpu:
            raise UsageError(f"--attention {choice} needs a CUDA GPU; this run is on the CPU",
                             hint="leave --attention out (auto) or use --attention sdpa")
        capability = _capability(device)
        if not _runs_on(choice, capability):
            raise UsageError(f"--attention {choice} does not run on this GPU (compute capability "
                             f"{capability[0]}.{capability[1]})",
                             hint=f"use {', '.join(usable_backends(device, family))} or auto")
    return dispatcher_name(choice, family)


def usable_backends(device: str, family: str | None = None) -> tuple[str, ...]:
    """The choices that are installed and run on ``device`` (on the CPU: sdpa alone), for ``family`` if given."""
    if not str(device).startswith("cuda"):
        return ("sdpa",)
    capability = _capability(device)
    return tuple(choice for choice in BACKENDS if missing(choice) is None and _runs_on(choice, capability)
                 and (family is None or dispatcher_name(choice, family)))


def set_attention(pipe, family: str, choice: str, device: str) -> str:
    """Set the attention backend on every transformer of the pipeline (``transformer``, ``transformer_2``) through
    diffusers' ``set_attention_backend``; the VAE and text encoders keep theirs. Returns the dispatcher name."""
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    from wangp_cli.generate.engine import transformers

    name = resolve_attention(choice, family, device)
    # set_attention_backend also makes the backend process-wide (the default of every processor that has none,
    # the VAE's included): put that default back, so that only the transformers' processors carry it
    previous = _AttentionBackendRegistry._active_backend
    try:
        for model in transformers(pipe):
            model.set_attention_backend(name)
    except (RuntimeError, ValueError) as exc:  # a package that is there but does not import, a bad name
        raise WangpError(f"attention backend '{name}' cannot be used: {exc}", code="attention",
                         hint="leave --attention out (auto) or use --attention sdpa") from None
    finally:
        _AttentionBackendRegistry.set_active_backend(previous)
    return name


def attention_backends(model) -> set[str]:
    """The dispatcher names the model's attention processors carry (``"default"`` for none set)."""
    names = set()
    for module in model.modules():
        processor = getattr(module, "processor", None)
        if processor is not None and hasattr(processor, "_attention_backend"):
            backend = processor._attention_backend
            names.add(getattr(backend, "value", backend) or "default")
    return names


def _cxx_compiler() -> str | None:
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")


def compile_problem(device: str) -> str | None:
    """Why torch.compile cannot build kernels for ``device`` here (None: it can): inductor needs a C++ compiler
    for the CPU and Triton for CUDA."""
    if str(device).startswith("cuda"):
        return None if importlib.util.find_spec("triton") else "torch.compile on CUDA needs Triton (pip install " \
                                                                "triton)"
    return None if _cxx_compiler() else "torch.compile on the CPU needs a C++ compiler (g++ or clang++)"


def compile_regions(model) -> list:
    """The regions ``--compile`` compiles: the parameter-holding children of each repeated block (attention, feed-
    forward, norms). Not the blocks themselves: diffusers' step-cache hooks replace a block's forward and run the
    original inside ``torch.compiler.disable``, so a compiled block runs eagerly whenever a cache is on (0 graphs
    captured, measured), while its compiled children still run compiled."""
    names = set(getattr(model, "_repeated_blocks", None) or ())
    return [child for block in model.modules() if type(block).__name__ in names
            for child in block.children() if next(child.parameters(), None) is not None]


def compile_transformers(pipe, profile: str) -> dict:
    """Regional compilation of every transformer's repeated blocks (Wan ``WanTransformerBlock``, VACE blocks,
    HunyuanVideo's double/single blocks), region by region (:func:`compile_regions`). Regions compiled earlier are
    left as they are, so a pipeline kept across jobs (manifests, Ray actors) compiles once. Returns
    ``{"regions": compiled now, "fullgraph": False}``.

    ``fullgraph`` is always False: group-offloading hooks (profiles group / lowvram) call
    ``torch.compiler.disable``d functions, HunyuanVideo's varlen attention reads sequence lengths with ``.item()``,
    quanto weights are tensor subclasses; with fullgraph each of these is an error, without it a graph break only
    where it happens."""
    from wangp_cli.generate.engine import transformers

    problem = compile_problem("cpu" if profile == "cpu" else "cuda")
    if problem:
        raise WangpError(problem, code="compile", hint="leave --compile out")
    compiled = 0
    for model in transformers(pipe):
        for region in compile_regions(model):
            if region._compiled_call_impl is None:  # else compiled for an earlier job of this pipeline
                region.compile(fullgraph=False)
                compiled += 1
    return {"regions": compiled, "fullgraph": False}
