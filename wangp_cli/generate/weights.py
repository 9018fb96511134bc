"""Transformer weights in WanGP's original key layout (16-bit or quanto int8) loaded into diffusers models.

The route (see docs/generate.md): read the tensors (safetensors, never a pickle), merge modules (VACE), convert the
keys with diffusers' own converters (Hunyuan's fused qkv / ``linear1`` split here first, quanto-aware), derive the
diffusers config from tensor shapes plus the embedded config (head count), compare key sets, then load: 16-bit by
assignment, quanto int8 with optimum-quanto's ``requantize``. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core.errors import WangpError
from wangp_cli.quantize.safetensors_io import decode_metadata, quantization_map, read_header

QUANTO_SUFFIXES = (".weight._data", ".weight._scale", ".input_scale", ".output_scale")
_BLOCK = re.compile(r"^(blocks|vace_blocks|double_blocks|single_blocks)\.(\d+)\.")


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


def read_checkpoint(paths: list[str | Path]) -> Checkpoint:
    """Tensors of the main file then its modules (later files add keys); maps and config from the metadata.

    Each header goes through wangp's strict parser first (a truncated or malformed file is a ``format`` error
    naming it), then safetensors reads the tensors.
    """
    from safetensors import SafetensorError, safe_open

    checkpoint = Checkpoint({})
    for path in paths:
        path = Path(path)
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
    return checkpoint


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


#: What a value of the embedded config must be, by the words that say so.
RULES = {
    "a positive integer": lambda v: _is_int(v) and v > 0,
    "a positive number": lambda v: _is_number(v) and v > 0,
    "a positive integer or null": lambda v: v is None or (_is_int(v) and v > 0),
    "a string or null": lambda v: v is None or isinstance(v, str),
    "true or false": lambda v: isinstance(v, bool),
    "a list of positive integers": lambda v: isinstance(v, list) and bool(v) and all(_is_int(x) and x > 0 for x in v),
    "a list of non-negative integers": lambda v: isinstance(v, list) and all(_is_int(x) and x >= 0 for x in v),
}
#: Config keys whose value follows from the tensor shapes: the embedded config must agree with them.
WAN_SHAPE_KEYS = ("attention_head_dim", "in_channels", "out_channels", "text_dim", "freq_dim", "ffn_dim",
                  "num_layers", "patch_size", "image_dim", "added_kv_proj_dim", "vace_in_channels")
HUNYUAN_SHAPE_KEYS = ("attention_head_dim", "in_channels", "out_channels", "num_layers", "num_single_layers",
                      "num_refiner_layers", "mlp_ratio", "patch_size", "patch_size_t", "text_embed_dim",
                      "pooled_projection_dim", "guidance_embeds")
#: The other values a config may carry, and what each must be.
WAN_TYPES = {"eps": "a positive number", "rope_max_seq_len": "a positive integer",
             "pos_embed_seq_len": "a positive integer or null", "qk_norm": "a string or null",
             "cross_attn_norm": "true or false", "vace_layers": "a list of non-negative integers"}
HUNYUAN_TYPES = {"rope_theta": "a positive number", "rope_axes_dim": "a list of positive integers",
                 "rope_dim_list": "a list of positive integers", "qk_norm": "a string or null",
                 "image_condition_type": "a string or null"}


def _same(a, b) -> bool:
    """JSON equality (tuples as lists; ``true`` is not ``1``)."""
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


class EmbeddedConfig:
    """The config a file embeds, each value checked before the model is built (errors name the file and key)."""

    def __init__(self, values: dict, where: str):
        self.values = values
        self.where = where

    def error(self, text: str) -> WangpError:
        return WangpError(f"{self.where}: the embedded config's {text}", code="format",
                          hint="fix or remove the file's config metadata ('wangp inspect FILE' shows it)")

    def get(self, key: str, rule: str, default=None):
        value = self.values.get(key)
        if value is None:
            return default
        if not RULES[rule](value):
            raise self.error(f"{key} is not {rule} (it is {json.dumps(value)[:40]})")
        return value

    def divisor(self, key: str, dim: int, name: str = "dim") -> int | None:
        """A head count: a positive integer dividing ``dim``."""
        value = self.values.get(key)
        if value is None:
            return None
        if not (_is_int(value) and value > 0 and dim % value == 0):
            raise self.error(f"{key} is not a positive divisor of {name} {dim} (it is {json.dumps(value)[:40]})")
        return value

    def checked(self, types: dict) -> None:
        for key, rule in types.items():
            self.get(key, rule)

    def merged(self, derived: dict, shape_keys: tuple) -> dict:
        """A diffusers-form config: its shape values must equal the derived ones; the rest is checked, kept."""
        for key in shape_keys:
            if key in self.values and not _same(self.values[key], derived.get(key)):
                raise self.error(f"{key} ({json.dumps(self.values[key])[:40]}) does not fit the tensors "
                                 f"({json.dumps(derived.get(key))})")
        return {**derived, **{k: v for k, v in self.values.items() if not k.startswith("_")}}


def _count(tensors: dict, prefix: str) -> int:
    found = {int(m[2]) for m in map(_BLOCK.match, tensors) if m and m[1] == prefix}
    return max(found) + 1 if found else 0


def _shape(tensors: dict, name: str, dims: int = 2):
    """Shape of a weight, also when stored quantized (``name._data``): ``dims`` positive dimensions."""
    tensor = tensors.get(name)
    if tensor is None:
        tensor = tensors.get(name + "._data")
    if tensor is None:
        raise WangpError(f"the checkpoint has no '{name}'", code="format",
                         hint="is it a transformer in WanGP's original key layout?")
    shape = tuple(tensor.shape)
    if len(shape) != dims or 0 in shape:
        raise WangpError(f"the checkpoint's '{name}' has shape {list(shape)}, not {dims} positive dimensions",
                         code="format", hint="is it a transformer in WanGP's original key layout?")
    return shape


def detect_family(tensors: dict) -> str:
    if any(k.startswith("double_blocks.") for k in tensors):
        return "hunyuan"
    if any(k.startswith("blocks.") for k in tensors) and any(k.startswith("patch_embedding.") for k in tensors):
        return "wan"
    if any(k.startswith(("model.diffusion_model.", "transformer_blocks.", "condition_embedder.")) for k in tensors):
        raise WangpError("this checkpoint is not in WanGP's original key layout", code="format",
                         hint="wangp loads WanGP's files (blocks.N..., double_blocks.N...), not diffusers folders")
    raise WangpError("unknown transformer layout (neither Wan nor HunyuanVideo)", code="format")


def wan_config(tensors: dict, embedded: dict, arch_shape: dict, where: str = "the checkpoint") -> dict:
    """The diffusers config of a Wan transformer, from its shapes (head count from the embedded config).

    An embedded diffusers-form config (``_class_name`` Wan..., ``num_attention_heads``) must agree with the
    shapes; its other values are kept once checked.
    """
    check = EmbeddedConfig(embedded, where)
    diffusers_form = bool(embedded.get("num_attention_heads")) and str(embedded.get("_class_name", "")).startswith(
        "Wan")
    dim, in_channels, *patch = _shape(tensors, "patch_embedding.weight", 5)
    heads = check.divisor("num_attention_heads" if diffusers_form else "num_heads", dim)
    heads = heads or (arch_shape.get("num_heads") if arch_shape.get("dim") == dim else None) or max(dim // 128, 1)
    layers = _count(tensors, "blocks")
    out = _shape(tensors, "head.head.weight")[0] // (patch[0] * patch[1] * patch[2])
    config = {
        "patch_size": list(patch), "num_attention_heads": heads, "attention_head_dim": dim // heads,
        "in_channels": in_channels, "out_channels": out, "text_dim": _shape(tensors, "text_embedding.0.weight")[1],
        "freq_dim": _shape(tensors, "time_embedding.0.weight")[1], "ffn_dim": _shape(tensors, "blocks.0.ffn.0.weight")[0],
        "num_layers": layers, "cross_attn_norm": "blocks.0.norm3.weight" in tensors,
        "qk_norm": "rms_norm_across_heads", "eps": float(check.get("eps", "a positive number", 1e-6)),
    }
    if "img_emb.proj.1.weight" in tensors or "img_emb.proj.1.weight._data" in tensors:
        config["image_dim"] = _shape(tensors, "img_emb.proj.1.weight")[1]
        config["added_kv_proj_dim"] = _shape(tensors, "blocks.0.cross_attn.k_img.weight")[1]
    if "img_emb.emb_pos" in tensors:
        config["pos_embed_seq_len"] = tensors["img_emb.emb_pos"].shape[1]
    vace = _count(tensors, "vace_blocks")
    if vace:
        config["vace_layers"] = list(range(0, layers, layers // vace))[:vace]
        config["vace_in_channels"] = _shape(tensors, "vace_patch_embedding.weight", 5)[1]
    if not diffusers_form:
        return config
    check.checked(WAN_TYPES)
    given = embedded.get("vace_layers")
    if given is not None and (len(given) != vace or any(index >= layers for index in given)):
        raise check.error(f"vace_layers {json.dumps(given)[:40]} does not fit the tensors ({vace} VACE blocks "
                          f"over {layers} layers)")
    return check.merged(config, WAN_SHAPE_KEYS)


def hunyuan_config(tensors: dict, embedded: dict, arch_shape: dict, where: str = "the checkpoint") -> dict:
    """The diffusers config of a HunyuanVideo transformer, from its shapes (see :func:`wan_config`)."""
    check = EmbeddedConfig(embedded, where)
    diffusers_form = bool(embedded.get("num_attention_heads")) and str(embedded.get("_class_name", "")).startswith(
        "Hunyuan")
    hidden, in_channels, patch_t, patch, _ = _shape(tensors, "img_in.proj.weight", 5)
    heads = check.divisor("num_attention_heads" if diffusers_form else "heads_num", hidden, "hidden size")
    heads = heads or (arch_shape.get("num_attention_heads")
                      if arch_shape.get("num_attention_heads", 0) * 128 == hidden else None)
    heads = heads or max(hidden // 128, 1)
    check.checked(HUNYUAN_TYPES)
    rope_key = "rope_axes_dim" if diffusers_form else "rope_dim_list"
    rope = embedded.get(rope_key)
    if rope is not None and sum(rope) != hidden // heads:
        raise check.error(f"{rope_key} {json.dumps(rope)[:40]} does not sum to the head dim {hidden // heads}")
    out = _shape(tensors, "final_layer.linear.weight")[0] // (patch * patch * patch_t)
    config = {
        "in_channels": in_channels, "out_channels": out, "num_attention_heads": heads,
        "attention_head_dim": hidden // heads, "num_layers": _count(tensors, "double_blocks"),
        "num_single_layers": _count(tensors, "single_blocks"),
        "num_refiner_layers": len({k.split(".")[3] for k in tensors
                                   if k.startswith("txt_in.individual_token_refiner.blocks.")}),
        "mlp_ratio": _shape(tensors, "double_blocks.0.img_mlp.fc1.weight")[0] / hidden,
        "patch_size": patch, "patch_size_t": patch_t,
        "text_embed_dim": _shape(tensors, "txt_in.input_embedder.weight")[1],
        "pooled_projection_dim": _shape(tensors, "vector_in.in_layer.weight")[1],
        "rope_theta": 256.0, "rope_axes_dim": list(rope or arch_shape.get("rope_axes_dim") or (16, 56, 56)),
        "guidance_embeds": any(k.startswith("guidance_in.") for k in tensors),
    }
    if arch_shape.get("image_condition_type"):
        config["image_condition_type"] = "token_replace" if in_channels == out else "latent_concat"
    return check.merged(config, HUNYUAN_SHAPE_KEYS) if diffusers_form else config


def _split_fused(tensors: dict, qmap: dict, module: str, parts: list[tuple[str, int]]) -> None:
    """Split a fused Linear (``module``) along its output rows into ``parts`` (name, rows); quanto-aware:
    ``_data``/``_scale`` rows are sliced, ``input_scale``/``output_scale`` copied, the map entry repeated."""
    def slices(tensor):
        start = 0
        for name, rows in parts:
            yield name, tensor[start:start + rows]
            start += rows

    for suffix in (".weight", ".bias", ".weight._data", ".weight._scale"):
        tensor = tensors.pop(module + suffix, None)
        if tensor is None:
            continue
        if suffix == ".weight._scale" and tensor.dim() == 0:
            for name, _ in parts:
                tensors[name + suffix] = tensor.clone()
            continue
        for name, piece in slices(tensor):
            tensors[name + suffix] = piece.contiguous()
    for suffix in (".input_scale", ".output_scale"):
        tensor = tensors.pop(module + suffix, None)
        if tensor is not None:
            for name, _ in parts:
                tensors[name + suffix] = tensor.clone()
    entry = qmap.pop(module, None)
    if entry is not None:
        for name, _ in parts:
            qmap[name] = dict(entry)


def presplit_hunyuan(tensors: dict, qmap: dict, hidden: int) -> None:
    """Split fused qkv and ``single_blocks.N.linear1`` into names diffusers' converter passes through (its own
    split assumes hidden size 3072 and cannot handle quanto tensors)."""
    for module in sorted({k.rsplit(".", 1)[0] for k in tensors if ".weight" in k}):
        module = module.split(".weight")[0]
        if module.endswith(".img_attn_qkv"):
            base = module[: -len(".img_attn_qkv")]
            parts = [(f"{base}.attn.to_{x}", hidden) for x in "qkv"]
        elif module.endswith(".txt_attn_qkv"):
            base = module[: -len(".txt_attn_qkv")]
            parts = [(f"{base}.attn.add_{x}_proj", hidden) for x in "qkv"]
        elif module.endswith(".self_attn_qkv"):
            base = module[: -len(".self_attn_qkv")]
            parts = [(f"{base}.attn.to_{x}", hidden) for x in "qkv"]
        elif module.startswith("single_blocks.") and module.endswith(".linear1"):
            base = module[: -len(".linear1")]
            rows = _shape(tensors, module + ".weight")[0]
            parts = [(f"{base}.attn.to_{x}", hidden) for x in "qkv"] + [(f"{base}.proj_mlp", rows - 3 * hidden)]
        else:
            continue
        _split_fused(tensors, qmap, module, parts)


def _convert_map(qmap: dict, convert) -> dict:
    """Module names of a quantization map, renamed by the same converter as the tensors."""
    import torch

    converted = {}
    for module, entry in qmap.items():
        renamed = list(convert({f"{module}.weight": torch.empty(1)}))
        if len(renamed) != 1 or not renamed[0].endswith(".weight"):
            raise WangpError(f"cannot map quantized module '{module}' to diffusers", code="format")
        converted[renamed[0][: -len(".weight")]] = entry
    return converted


@dataclass
class LoadedTransformer:
    model: object
    family: str
    config: dict
    quantized: bool
    dtype: object  # the dtype of the float weights


def _model_class(family: str, config: dict):
    import diffusers

    if family == "hunyuan":
        return diffusers.HunyuanVideoTransformer3DModel
    return diffusers.WanVACETransformer3DModel if config.get("vace_layers") else diffusers.WanTransformer3DModel


def convert_checkpoint(checkpoint: Checkpoint, arch_shape: dict | None = None) -> tuple[str, dict, dict, dict]:
    """(family, diffusers config, converted tensors, converted quantization map)."""
    from diffusers.loaders.single_file_utils import (
        convert_hunyuan_video_transformer_to_diffusers, convert_wan_transformer_to_diffusers,
    )

    arch_shape = arch_shape or {}
    tensors = dict(checkpoint.tensors)
    qmap = dict(checkpoint.quantization_map)
    family = detect_family(tensors)
    where = f"'{checkpoint.config_file}'" if checkpoint.config_file else "the checkpoint"
    if family == "wan":
        config = wan_config(tensors, checkpoint.config, arch_shape, where)
        emb_pos = tensors.pop("img_emb.emb_pos", None)  # not mapped by diffusers' converter
        converted = convert_wan_transformer_to_diffusers(tensors)
        if emb_pos is not None:
            converted["condition_embedder.image_embedder.pos_embed"] = emb_pos
        qmap = _convert_map(qmap, convert_wan_transformer_to_diffusers)
    else:
        config = hunyuan_config(tensors, checkpoint.config, arch_shape, where)
        hidden = config["num_attention_heads"] * config["attention_head_dim"]
        presplit_hunyuan(tensors, qmap, hidden)
        converted = convert_hunyuan_video_transformer_to_diffusers(tensors)
        qmap = _convert_map(qmap, convert_hunyuan_video_transformer_to_diffusers)
    return family, config, converted, qmap


def check_architecture(family: str, config: dict, arch_shape: dict, files: list[str]) -> None:
    """Refuse weights whose structure is not the architecture's (family, image conditioning, VACE blocks)."""
    expected = arch_shape.get("kind")
    problem = None
    if expected and expected != family:
        problem = f"a {family} transformer, the architecture is {expected}"
    elif family == "wan" and ("image_dim" in arch_shape) != ("image_dim" in config):
        problem = ("a text-to-video transformer, the architecture is image-to-video" if "image_dim" in arch_shape
                   else "an image-to-video transformer, the architecture is text-to-video")
    elif family == "wan" and bool(arch_shape.get("vace_layers")) != bool(config.get("vace_layers")):
        problem = ("no VACE blocks (is the VACE module listed in 'modules'?)" if arch_shape.get("vace_layers")
                   else "VACE blocks, the architecture has none")
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


def load_transformer(paths: list[str | Path], dtype=None, *, arch_shape: dict | None = None,
                     quantize: bool = False) -> LoadedTransformer:
    """Load WanGP original-layout files (main file first, then modules) into a diffusers transformer on CPU.

    ``dtype``: the compute dtype of the float weights (default: the file's). ``quantize``: quantize the repeated
    blocks to quanto int8 after loading a 16-bit file (WanGP's ``auto_quantize``).
    """
    import torch
    from accelerate import init_empty_weights

    checkpoint = read_checkpoint(paths)
    family, config, tensors, qmap = convert_checkpoint(checkpoint, arch_shape)
    check_architecture(family, config, arch_shape or {}, checkpoint.files)
    dtype = dtype or checkpoint.float_dtype
    cls = _model_class(family, config)
    with init_empty_weights():
        model = cls.from_config(config)
    torch.nn.Module.to(model, dtype)  # as from_single_file(torch_dtype=...) leaves it: every float tensor in dtype
    if qmap:
        from optimum.quanto import requantize

        expected = {name for name in model.state_dict()
                    if not (name.endswith(".weight") and name[: -len(".weight")] in qmap)}
        for module in qmap:
            expected |= {f"{module}.weight._data", f"{module}.weight._scale", f"{module}.input_scale",
                         f"{module}.output_scale"}
        _check_keys(expected, set(tensors), checkpoint.files)
        tensors = {k: v.to(dtype) if v.is_floating_point() and not k.endswith(QUANTO_SUFFIXES) else v
                   for k, v in tensors.items()}
        requantize(model, tensors, qmap, device=torch.device("cpu"))
    else:
        _check_keys(set(model.state_dict()), set(tensors), checkpoint.files)
        model.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()},
                              strict=True, assign=True)
        if quantize:
            from optimum.quanto import freeze, qint8
            from optimum.quanto import quantize as quanto_quantize

            towers = ["blocks.*", "vace_blocks.*", "transformer_blocks.*", "single_transformer_blocks.*"]
            quanto_quantize(model, weights=qint8, include=towers)
            freeze(model)
    model.eval()
    return LoadedTransformer(model, family, config, bool(qmap) or quantize, dtype)
