"""Tiny random models of every family, fully offline: ``wangp doctor``'s self-test, the tests and benchmarks.

Everything is built from configs with seeded random weights; nothing is downloaded (``offline()`` sets
``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` while diffusers and transformers build, save and load, and puts the
previous values back, so that the download tests of the same process still see their own environment).

Kinds come from the families' ``tiny.py`` (``wangp_cli/families/<name>/tiny.py``): ``"t2v"``, ``"i2v"``, ``"flf2v"``,
``"vace"``, and the Wan 2.2 kinds ``"t2v_2_2"``, ``"i2v_2_2"``, ``"vace_2_2"``, ``"ti2v_2_2"``
(Wan), ``"hunyuan"``, ``"hunyuan_i2v"`` (HunyuanVideo). This module is the family-independent part:

- :func:`make_components` saves a tiny diffusers pipeline and deletes its ``transformer/`` folder: the layout of a
  ``*-Diffusers`` Hub repo downloaded without its transformer.
- :func:`make_transformer` builds the matching tiny diffusers transformer, every parameter random (seeded).
- :func:`to_original_layout` gives its state dict in WanGP's original key layout, the exact inverse of diffusers'
  converters; :func:`assert_round_trip` checks that with diffusers' own converters.
- :func:`write_transformer` / :func:`write_quantized` write WanGP-style 16-bit / quanto int8 safetensors files
  (VACE: the t2v file plus a module file, as WanGP ships it).
- :func:`reference_pipeline` is the plain diffusers pipeline the tests compare wangp's output with;
  :data:`CALL_KWARGS` the small-call arguments that run on CPU (64x64, 9 frames, 2 steps).
- :func:`make_home` writes a home folder with one tiny definition whose files are all on disk.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.families import FAMILIES, family_for_kind

_KIND_FAMILY = {kind: family for family in FAMILIES.values() for kind in family.tiny_kinds}
_TINY = {kind: family.tiny_kinds[kind] for kind, family in _KIND_FAMILY.items()}


def _slots(kind: str) -> dict[str, str]:
    from wangp_cli.generate.weights import transformer_slots

    return transformer_slots(_TINY[kind].architecture)


#: Kinds with two transformers (Wan 2.2 A14B: ``transformer`` from URLs, ``transformer_2`` from URLs2).
DUAL_KINDS = tuple(kind for kind in _TINY if len(_slots(kind)) > 1)
#: Kinds with one transformer (the single-model tests and benchmarks run over them); :data:`ALL_KINDS` both.
KINDS = tuple(kind for kind in _TINY if kind not in DUAL_KINDS)
ALL_KINDS = tuple(_TINY)
WAN_KINDS = tuple(FAMILIES["wan"].tiny_kinds)
HUNYUAN_KINDS = tuple(FAMILIES["hunyuan"].tiny_kinds)
#: The single-transformer kinds of Wan and HunyuanVideo 1.0 (the tests written for those two families run over
#: them; every later family, and Wan's variant kinds, have their own test file).
CORE_KINDS = tuple(kind for kind in KINDS if kind in WAN_KINDS + HUNYUAN_KINDS
                   and kind not in getattr(FAMILIES["wan"].part("tiny"), "VARIANT_KINDS", ()))
#: The architecture a tiny kind stands in for by default.
ARCHITECTURES = {kind: tiny.architecture for kind, tiny in _TINY.items()}
#: Kinds whose pipeline takes an ``image=``.
IMAGE_KINDS = tuple(kind for kind, family in _KIND_FAMILY.items()
                    if "image" in family.architectures[ARCHITECTURES[kind]].needs)
PIPELINES = {kind: family.architectures[ARCHITECTURES[kind]].pipeline for kind, family in _KIND_FAMILY.items()}
TRANSFORMERS = {kind: tiny.transformer for kind, tiny in _TINY.items()}
#: diffusers transformer configs (``Model(**TRANSFORMER_CONFIGS[kind])``).
TRANSFORMER_CONFIGS = {kind: tiny.config for kind, tiny in _TINY.items()}
#: Small-call keyword arguments that run on CPU (pass ``prompt=``, ``generator=``, ``output_type=`` and, for
#: :data:`IMAGE_KINDS`, ``image=`` besides). Use :func:`call_kwargs` for a copy (``prompt_template`` is a dict).
CALL_KWARGS = {kind: tiny.call for kind, tiny in _TINY.items()}
#: Architectures whose definitions load a module file on top of the transformer (WanGP ships VACE 14B so).
MODULE_ARCHITECTURES = {arch: module for family in FAMILIES.values() for arch, module in
                        family.module_architectures.items()}


def call_kwargs(kind: str, **overrides) -> dict:
    """A deep copy of ``CALL_KWARGS[kind]`` updated with ``overrides``."""
    return {**copy.deepcopy(CALL_KWARGS[kind]), **overrides}


def make_image(size: int = 64, seed: int = 0):
    """A small seeded random RGB PIL image (``size`` x ``size``) for the image-to-video kinds."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


@contextlib.contextmanager
def offline():
    """``HF_HUB_OFFLINE=1`` / ``TRANSFORMERS_OFFLINE=1`` (and huggingface_hub's cached flag) for the block only."""
    import huggingface_hub.constants as hub_constants

    saved = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    saved_flag = hub_constants.HF_HUB_OFFLINE
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = saved_flag
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _check_kind(kind: str):
    """The family of ``kind`` (ValueError when no family has it)."""
    return family_for_kind(kind)


def _pipeline_class(kind: str):
    return _check_kind(kind).pipeline_class(ARCHITECTURES[kind])


def make_components(kind: str, folder: Path) -> Path:
    """Save the tiny diffusers pipeline of ``kind`` to ``folder`` without its ``transformer/`` subfolder (nor
    ``transformer_2/``: Wan 2.2 A14B).

    ``model_index.json`` still names the transformer class (as a ``*-Diffusers`` Hub repo does); every other
    component (text encoder(s), tokenizer(s), VAE, scheduler, image encoder / processor) is saved. Returns ``folder``.
    """
    family = _check_kind(kind)
    folder = Path(folder)
    transformers = {slot: make_transformer(kind, seed) for seed, slot in enumerate(_slots(kind))}
    with offline():
        pipe = _pipeline_class(kind)(**transformers, **family.tiny_components(kind))
        pipe.save_pretrained(folder)
    for slot in transformers:
        shutil.rmtree(folder / slot)
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Transformers
# ---------------------------------------------------------------------------------------------------------------

def _randomize(model, seed: int) -> None:
    """Give EVERY parameter seeded random values: Linear/Conv weights N(0, 1/fan_in), norm weights 1 + N(0, 0.1),
    biases, modulation tables and the rest N(0, 0.1) (no zero-initialised output projections, no unit norms)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "weight" and param.dim() >= 2:
                value = noise / (param[0].numel() ** 0.5)
            elif leaf == "weight" and "norm" in name:
                value = 1 + 0.1 * noise
            else:
                value = 0.1 * noise
            param.copy_(value)


def make_transformer(kind: str, seed: int = 0):
    """The tiny diffusers transformer of ``kind`` (``TRANSFORMER_CONFIGS[kind]``), float32, all weights random."""
    _check_kind(kind)
    import diffusers

    model = getattr(diffusers, TRANSFORMERS[kind])(**copy.deepcopy(TRANSFORMER_CONFIGS[kind]))
    _randomize(model, seed)
    return model.float().eval()


def share_module(kind: str, source, target) -> None:
    """Give ``target`` the module weights of ``source`` (the parameters under the kind's module prefixes: VACE's
    blocks), in place: WanGP loads one module file into both transformers of VACE 2.2."""
    import torch

    prefixes = _TINY[kind].module_prefixes
    with torch.no_grad():
        for name, param in target.named_parameters():
            if name.startswith(prefixes):
                param.copy_(source.get_parameter(name))


# ---------------------------------------------------------------------------------------------------------------
# Original (WanGP) key layout
# ---------------------------------------------------------------------------------------------------------------

def to_original_layout(kind: str, model) -> dict:
    """``model.state_dict()`` in WanGP's original key layout (contiguous clones; same dtypes as the model): the
    family's inverse of diffusers' converter (``families/<name>/layout.py`` lists the names)."""
    out = _check_kind(kind).to_original_layout(kind, model.state_dict())
    return {key: tensor.detach().contiguous().clone() for key, tensor in out.items()}


def to_diffusers_layout(kind: str, original: dict) -> dict:
    """Convert an original-layout dict back with diffusers' own converter (a shallow copy is converted; see the
    family's ``tiny.to_diffusers_layout`` for what is done before it)."""
    return _check_kind(kind).to_diffusers_layout(kind, original)


def assert_round_trip(kind: str, model) -> dict:
    """Check that :func:`to_original_layout` is the exact inverse of diffusers' converter on ``model``.

    Every key of ``model.state_dict()`` must come back, no other key, every tensor ``torch.equal``. For HunyuanVideo
    the ``single_blocks.N.linear1`` split is done here, not by diffusers (its converter hard-codes hidden size 3072;
    see :func:`to_diffusers_layout`). Returns the original-layout dict.
    """
    import torch

    original = to_original_layout(kind, model)
    back = to_diffusers_layout(kind, original)
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(back)), sorted(set(back) - set(expected))
    assert not missing and not extra, f"{kind}: missing {missing[:8]}, unexpected {extra[:8]}"
    for key, tensor in expected.items():
        assert back[key].shape == tensor.shape and back[key].dtype == tensor.dtype, key
        assert torch.equal(back[key], tensor), f"{kind}: {key} differs after the round trip"
    return original


# ---------------------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------------------

def wangp_config(kind: str, model) -> dict:
    """The WanGP-style config embedded in the files (``config_base64``): it carries the head count, which tensor
    shapes cannot give (each family's ``tiny.wangp_config`` says what else)."""
    return _check_kind(kind).wangp_config(kind, model)


_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def _save(tensors: dict, path: Path, dtype: str, metadata: dict | None) -> Path:
    import torch
    from safetensors.torch import save_file

    torch_dtype = getattr(torch, _DTYPES[dtype])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.to(torch_dtype).contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def write_transformer(kind: str, model, path: Path, dtype: str = "bf16", config: dict | None = None,
                      vace_module_path: Path | None = None, without_module: bool = False) -> Path:
    """Write ``model`` in WanGP's original layout as a 16-bit (``"bf16"`` / ``"fp16"``, every tensor) safetensors
    file with metadata ``{"config_base64": base64(json(config))}`` (default :func:`wangp_config`).

    A kind with module keys (VACE: ``vace_blocks.*`` / ``vace_patch_embedding.*``) and ``vace_module_path``:
    ``path`` gets everything else (a t2v file), and those go to ``vace_module_path`` (no metadata), as WanGP ships
    VACE 14B; ``without_module``: they are left out (VACE 2.2's low-noise file: the module is the high-noise
    one's); neither: one file (as VACE 1.3B). Returns ``path``.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {tuple(_DTYPES)}, not {dtype!r}")
    original = to_original_layout(kind, model)
    config = config if config is not None else wangp_config(kind, model)
    metadata = {"config_base64": base64.b64encode(json.dumps(config).encode()).decode()}
    prefixes = _TINY[kind].module_prefixes
    if prefixes and (vace_module_path is not None or without_module):
        module = {k: v for k, v in original.items() if k.startswith(prefixes)}
        original = {k: v for k, v in original.items() if not k.startswith(prefixes)}
        if vace_module_path is not None:
            _save(module, vace_module_path, dtype, None)
    return _save(original, path, dtype, metadata)


def write_quantized(kind: str, model, path: Path, dtype: str = "bf16", config: dict | None = None,
                    vace_module_path: Path | None = None, without_module: bool = False) -> Path:
    """Write the quanto int8 file(s) the way wangp makes them: the 16-bit file (:func:`write_transformer`) under a
    temporary name, then ``wangp_cli.quantize.quantizer.quantize_file`` (config carried over from the source).

    VACE: the module file (5 ``vace_blocks`` floors, enough for the quantizer) is quantized too, separately, to
    ``vace_module_path`` (``without_module``: as :func:`write_transformer`). Returns ``path``.
    """
    from wangp_cli.quantize.quantizer import quantize_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    source = path.with_name(f".{path.stem}.src16.safetensors")
    module_source = None
    if vace_module_path is not None:
        vace_module_path = Path(vace_module_path)
        module_source = vace_module_path.with_name(f".{vace_module_path.stem}.src16.safetensors")
    try:
        write_transformer(kind, model, source, dtype, config, module_source, without_module)
        quantize_file(source, path, dtype)
        if module_source is not None:
            quantize_file(module_source, vace_module_path, dtype)
    finally:
        for temp in (source, module_source):
            if temp is not None and temp.exists():
                temp.unlink()
    return path


def reference_pipeline(kind: str, components: Path, transformer, **extra):
    """The plain diffusers pipeline: ``PipelineClass.from_pretrained(components, transformer=transformer,
    local_files_only=True, **extra)`` (``extra``: e.g. ``transformer_2=``, ``boundary_ratio=``), offline, progress
    bar off."""
    _check_kind(kind)
    with offline():
        pipe = _pipeline_class(kind).from_pretrained(Path(components), transformer=transformer,
                                                     local_files_only=True, **extra)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def documented_transformer(model, folder: Path, dtype: str = "bf16"):
    """``model``'s weights in ``dtype`` (what a tiny file holds) saved in diffusers' own format and loaded as its docs
    do, ``from_pretrained(torch_dtype=...)``: the class's ``_keep_in_fp32_modules`` in fp32 (the references of the
    end-to-end tests)."""
    import copy

    import torch

    torch_dtype = getattr(torch, _DTYPES[dtype])
    torch.nn.Module.to(copy.deepcopy(model), torch_dtype).save_pretrained(folder)
    with offline():
        return type(model).from_pretrained(folder, torch_dtype=torch_dtype)


# ---------------------------------------------------------------------------------------------------------------
# A whole home folder
# ---------------------------------------------------------------------------------------------------------------

#: The small-call settings every tiny definition carries (64x64, 9 frames, 2 steps).
TINY_SETTINGS = {"prompt": "a cat running in the snow", "resolution": "64x64", "video_length": 9,
                 "num_inference_steps": 2}


@dataclass
class TinyHome:
    """A home folder with one tiny definition whose files are all on disk."""

    root: Path
    model_id: str
    kind: str
    architecture: str
    model: object  # the float32 diffusers transformer the files were written from
    files: list[Path]  # the transformer file, then the module file (VACE 14B)
    components: Path
    preference: object  # the Preference under which wangp picks exactly these files
    pipeline_kwargs: dict  # extra call arguments for the tiny text encoders (sequence length, template)
    model2: object = None  # Wan 2.2 A14B: the low-noise transformer (URLs2), else None
    files2: list[Path] = field(default_factory=list)  # its file (URLs2), then the module file (VACE 2.2)


def _file_name(architecture: str, slot: str, quantized: bool, dtype: str) -> str:
    part = "_low" if slot == "transformer_2" else ""
    return (f"tiny_{architecture}{part}_{'quanto_' if quantized else ''}{dtype}{'_int8' if quantized else ''}"
            ".safetensors")


def make_home(folder: Path, kind: str = "t2v", *, architecture: str | None = None, quantized: bool = False,
              dtype: str = "bf16", seed: int = 0, components: Path | None = None,
              model_id: str | None = None, model=None, target: str | None = None, model2=None,
              settings: dict | None = None) -> TinyHome:
    """Write ``finetunes/<model_id>.json`` (a local-path definition of ``architecture``), its transformer file in
    WanGP's layout (16-bit, or quanto int8 when ``quantized``), the VACE module where the architecture has one, and
    the components under ``ckpts/<diffusers repo name>`` (copied from ``components`` when given). ``model``: a
    diffusers transformer of ``kind``'s class to write instead of :func:`make_transformer`'s (another size).
    Two-transformer kinds (:data:`DUAL_KINDS`) write the second one too (``URLs2``; ``model2``, default seed + 1);
    with a module (VACE 2.2) both transformers take the one module file, so ``model2``'s module weights are made
    the first's (:func:`share_module`). ``settings``: added to the definition's settings. ``target``: the WanGP version whose architecture ids to use
    (default: the CLI's)."""
    from wangp_cli.core.definitions import Catalog
    from wangp_cli.core.home import Home
    from wangp_cli.core.jsonio import write_json
    from wangp_cli.core.models import resolve_model
    from wangp_cli.core.registry import DEFAULT_TARGET, get_architecture
    from wangp_cli.core.variants import Preference

    _check_kind(kind)
    target = target or DEFAULT_TARGET
    root = Path(folder)
    architecture = architecture or ARCHITECTURES[kind]
    model_id = model_id or f"tiny_{architecture}"
    arch = get_architecture(architecture, target)
    if arch is None or arch.diffusers_repo is None:
        raise ValueError(f"unknown architecture {architecture!r}")
    slots = _slots(kind)  # slot -> the definition list (URLs, URLs2)
    relative = {slot: f"ckpts/{_file_name(architecture, slot, quantized, dtype)}" for slot in slots}
    definition = {"model": {"name": f"Tiny {architecture} (random weights)", "architecture": architecture,
                            "description": "A tiny random model for offline tests.",
                            **{prop: [relative[slot]] for slot, prop in slots.items()}},
                  **TINY_SETTINGS, **_TINY[kind].settings, **(settings or {})}
    if MODULE_ARCHITECTURES.get(architecture):
        definition["model"]["modules"] = [MODULE_ARCHITECTURES[architecture]]
    (root / "finetunes").mkdir(parents=True, exist_ok=True)
    (root / "ckpts").mkdir(parents=True, exist_ok=True)
    write_json(root / "finetunes" / f"{model_id}.json", definition)
    preference = Preference(quantization="int8" if quantized else "none", dtype=dtype)
    resolved = resolve_model(Catalog(Home(root), target), model_id, preference)
    module = Path(root / resolved["modules"][0]["path"]) if resolved["modules"] else None
    models = {"transformer": model if model is not None else make_transformer(kind, seed)}
    if "transformer_2" in slots:
        models["transformer_2"] = model2 if model2 is not None else make_transformer(kind, seed + 1)
        if module is not None:
            share_module(kind, models["transformer"], models["transformer_2"])
    writer = write_quantized if quantized else write_transformer
    if module is not None and resolved["modules"][0]["quantized"] != quantized:
        raise ValueError(f"the registry has no {'quantized' if quantized else '16-bit'} {dtype} module file")
    for slot, written in models.items():
        first = slot == "transformer"
        writer(kind, written, root / relative[slot], dtype, vace_module_path=module if first else None,
               without_module=module is not None and not first)
    target = root / "ckpts" / arch.diffusers_repo.split("/")[-1]
    if components is not None:
        if Path(components).resolve() != target.resolve():
            shutil.copytree(components, target, dirs_exist_ok=True)
    else:
        make_components(kind, target)
    call = CALL_KWARGS[kind]
    extra = {key: copy.deepcopy(call[key]) for key in ("max_sequence_length", "prompt_template") if key in call}
    return TinyHome(root=root, model_id=model_id, kind=kind, architecture=architecture,
                    model=models["transformer"], files=[root / relative["transformer"]] + ([module] if module else []),
                    components=target, preference=preference, pipeline_kwargs=extra,
                    model2=models.get("transformer_2"),
                    files2=[root / relative["transformer_2"]] + ([module] if module else []) if "transformer_2" in slots
                    else [])
