"""Transformer weights in WanGP's original key layout (16-bit or quanto int8) loaded into diffusers models.

The route (see docs/generate.md): read the tensors (safetensors, never a pickle), merge modules (VACE), find the
family whose layout they are (``wangp_cli.families``), let it derive the diffusers config from the tensor shapes plus
the embedded config and convert the keys (and the quanto map), compare key sets, then load: 16-bit by assignment,
quanto int8 with optimum-quanto's ``requantize``. Every float tensor takes the compute dtype except what the model
class's ``_keep_in_fp32_modules`` keeps in fp32, as diffusers' ``from_pretrained(torch_dtype=...)`` does
(``numerics.keeps_fp32``). Heavy imports stay inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core.errors import WangpError
from wangp_cli.families import FAMILIES

# the families' config-from-shapes under their former names (tests/quantize import them from here)
from wangp_cli.families.hunyuan.convert import config as hunyuan_config  # noqa: F401
from wangp_cli.families.wan.convert import config as wan_config  # noqa: F401
from wangp_cli.generate.numerics import keeps_fp32
from wangp_cli.quantize.safetensors_io import (
    decode_metadata,
    quantization_map,
    read_header,
)

QUANTO_SUFFIXES = (".weight._data", ".weight._scale", ".input_scale", ".output_scale")


@dataclass
class Checkpoint:
    """The merged tensors of a transformer file and its modules, before conversion."""

    tensors: dict
    quantization_map: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # the embedded config (WanGP's or diffusers')
    files: list[str] = field(default_factory=list)
    config_file: str = ""  # the file the config came from

    @property
    def quantized(self) -> bool:
        return bool(self.quantization_map)

    @property
    def float_dtype(self):
        """The dtype of the float tensors that are not quantized (bf16 / fp16 / fp32)."""
        import torch

        counts: dict = {}
        for name, tensor in self.tensors.items():
            if tensor.is_floating_point() and not name.endswith(QUANTO_SUFFIXES):
                counts[tensor.dtype] = counts.get(tensor.dtype, 0) + tensor.numel()
        return max(counts, key=counts.get) if counts else torch.bfloat16


def read_checkpoint(paths: list[str | Path], dtype=None) -> Checkpoint:
    """Tensors of the main file then its modules (later files add keys); maps and config from the metadata.

    Each header goes through wangp's strict parser first (a truncated or malformed file is a ``format`` error
    naming it), then safetensors reads the tensors. GGUF files and scaled fp8 tensors come dequantized to ``dtype``
    (default bf16, as WanGP; ``generate.formats``).
    """
    import torch
    from safetensors import SafetensorError, safe_open

    from wangp_cli.generate import formats

    checkpoint = Checkpoint({})
    for path in paths:
        path = Path(path)
        if path.suffix.lower() == ".gguf":
            checkpoint.tensors.update(formats.read_gguf(path, dtype or torch.bfloat16))
            checkpoint.files.append(str(path))
            continue
        _, _, metadata = read_header(path)
        decoded = decode_metadata(metadata, path)
        qmap = quantization_map(path, decoded)
        try:
            with safe_open(str(path), framework="pt") as handle:
                for name in handle.keys():
                    tensor = handle.get_tensor(name)
                    # quanto's int8 kernels want their own storage (a view into a file buffer can be misaligned)
                    checkpoint.tensors[name] = tensor.clone() if name.endswith("._data") else tensor
        except (SafetensorError, OSError) as exc:
            raise WangpError(f"cannot read '{path}': {exc}", code="format",
                             hint="is it a complete .safetensors file? 'wangp download' fetches it again") from None
        checkpoint.quantization_map.update(qmap or {})
        if decoded.get("config"):
            checkpoint.config, checkpoint.config_file = decoded["config"], str(path)
        checkpoint.files.append(str(path))
    if formats.has_fp8(checkpoint.tensors):
        where = "'" + "', '".join(checkpoint.files) + "'"
        checkpoint.tensors = formats.dequantize_fp8(checkpoint.tensors, dtype or torch.bfloat16, where)
    return checkpoint


@dataclass
class LoadedTransformer:
    model: object
    family: str
    config: dict
    quantized: bool
    dtype: object  # the dtype of the float weights


def detect_family(tensors: dict, preferred: str | None = None):
    """The family whose original layout the tensors are in, ``preferred`` (the architecture's) first: layouts are
    shared (Flux, HunyuanVideo 1.0 and 1.5 all have ``double_blocks``); a WangpError for any other layout."""
    ordered = sorted(FAMILIES.values(), key=lambda family: family.name != preferred)
    for family in ordered:
        if family.recognises(tensors):
            return family
    if any(k.startswith(("model.diffusion_model.", "transformer_blocks.", "condition_embedder.")) for k in tensors):
        raise WangpError("this checkpoint is not in WanGP's original key layout", code="format",
                         hint="wangp loads WanGP's files (blocks.N..., double_blocks.N...), not diffusers folders")
    titles = " nor ".join(family.title for family in FAMILIES.values())
    raise WangpError(f"unknown transformer layout (neither {titles})", code="format")


def convert_checkpoint(checkpoint: Checkpoint, arch_shape: dict | None = None,
                       family: str | None = None) -> tuple[str, dict, dict, dict]:
    """(family name, diffusers config, converted tensors, converted quantization map); ``family``: the
    architecture's family, tried first."""
    tensors = dict(checkpoint.tensors)
    family = detect_family(tensors, family)
    where = f"'{checkpoint.config_file}'" if checkpoint.config_file else "the checkpoint"
    config = family.config(tensors, checkpoint.config, arch_shape or {}, where)
    converted, qmap = family.to_diffusers(tensors, dict(checkpoint.quantization_map), config)
    return family.name, config, converted, qmap


def check_architecture(family: str, config: dict, arch_shape: dict, files: list[str]) -> None:
    """Refuse weights whose structure is not the architecture's (family, then what the family checks: image
    conditioning, VACE blocks)."""
    expected = arch_shape.get("kind")
    if expected and expected != family:
        problem = f"a {family} transformer, the architecture is {expected}"
    else:
        problem = FAMILIES[family].mismatch(config, arch_shape)
    if problem:
        raise WangpError(f"{', '.join(files)}: the weights do not fit the model: {problem}", code="format",
                         hint="is the definition's architecture right, and are its modules listed?")


def _check_keys(expected: set[str], found: set[str], files: list[str]) -> None:
    missing = sorted(expected - found)
    unexpected = sorted(found - expected)
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise WangpError(f"{', '.join(files)}: the weights do not fit the model: {'; '.join(detail)}", code="format",
                         hint="is the definition's architecture right, and are its modules listed?")


def _set_dtypes(model, dtype_of) -> None:
    """Give the (meta) parameters and persistent buffers of ``model`` the dtype they are loaded in (requantize
    copies into them). Non-persistent buffers (Wan's rope tables) stay as built, fp32, as from_pretrained leaves
    them."""
    import torch

    persistent = set(model.state_dict())
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if name not in persistent or not tensor.is_floating_point() or tensor.dtype == dtype_of(name):
            continue
        owner, _, leaf = name.rpartition(".")
        cast = tensor.detach().to(dtype_of(name))
        if isinstance(tensor, torch.nn.Parameter):
            cast = torch.nn.Parameter(cast, requires_grad=tensor.requires_grad)
        setattr(model.get_submodule(owner), leaf, cast)


def load_transformer(paths: list[str | Path], dtype=None, *, arch_shape: dict | None = None,
                     quantize: bool = False, family: str | None = None) -> LoadedTransformer:
    """Load WanGP original-layout files (main file first, then modules) into a diffusers transformer on CPU.

    ``dtype``: the compute dtype of the float weights (default: the file's); the modules the class keeps in fp32
    are fp32 (a file's fp32 values kept as they are). ``quantize``: quantize the repeated blocks to quanto int8
    after loading a 16-bit file (WanGP's ``auto_quantize``). ``family``: the architecture's family (its layout is
    tried first).
    """
    import torch
    from accelerate import init_empty_weights

    checkpoint = read_checkpoint(paths, dtype)
    family, config, tensors, qmap = convert_checkpoint(checkpoint, arch_shape, family)
    check_architecture(family, config, arch_shape or {}, checkpoint.files)
    dtype = dtype or checkpoint.float_dtype
    cls = FAMILIES[family].model_class(config)
    with init_empty_weights():
        model = cls.from_config(config)

    def dtype_of(name: str):  # from_pretrained's rule (from_single_file casts everything to dtype afterwards)
        return torch.float32 if keeps_fp32(name, cls._keep_in_fp32_modules) else dtype

    _set_dtypes(model, dtype_of)
    if qmap:
        from optimum.quanto import requantize

        expected = {name for name in model.state_dict()
                    if not (name.endswith(".weight") and name[: -len(".weight")] in qmap)}
        for module in qmap:
            expected |= {f"{module}.weight._data", f"{module}.weight._scale", f"{module}.input_scale",
                         f"{module}.output_scale"}
        _check_keys(expected, set(tensors), checkpoint.files)
        tensors = {k: v.to(dtype_of(k)) if v.is_floating_point() and not k.endswith(QUANTO_SUFFIXES) else v
                   for k, v in tensors.items()}
        requantize(model, tensors, qmap, device=torch.device("cpu"))
    else:
        _check_keys(set(model.state_dict()), set(tensors), checkpoint.files)
        model.load_state_dict({k: v.to(dtype_of(k)) if v.is_floating_point() else v for k, v in tensors.items()},
                              strict=True, assign=True)
        if quantize:
            from optimum.quanto import freeze, qint8
            from optimum.quanto import quantize as quanto_quantize

            quanto_quantize(model, weights=qint8, include=list(FAMILIES[family].quantized_blocks))
            freeze(model)
    model.eval()
    return LoadedTransformer(model, family, config, bool(qmap) or quantize, dtype)


def transformer_slots(arch_id: str) -> dict[str, str]:
    """The pipeline's transformer slots and the definition list that fills each (``{"transformer": "URLs"}``, and
    ``"transformer_2": "URLs2"`` for Wan 2.2 A14B): the family's ``transformers`` hook."""
    from wangp_cli.families import family_for_architecture

    family = family_for_architecture(arch_id)
    return dict(family.transformers(arch_id)) if family is not None else {"transformer": "URLs"}
