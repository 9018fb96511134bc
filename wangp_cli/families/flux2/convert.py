"""Flux 2 checkpoints in BFL's original layout (WanGP's files): the diffusers config from their shapes, the fused
double-block qkv split here (quanto-aware), the rest renamed by diffusers'
``convert_flux2_transformer_checkpoint_to_diffusers`` (its per-key handlers cannot take quanto's ``._data`` /
``._scale`` names, so those pieces are renamed by the name it gives their module's weight)."""

from __future__ import annotations

import json

from wangp_cli.core.errors import WangpError
from wangp_cli.generate.tensors import (
    EmbeddedConfig,
    convert_map,
    count_blocks,
    has_weight,
    split_fused,
    weight_shape,
)

SHAPE_KEYS = ("in_channels", "out_channels", "num_layers", "num_single_layers", "attention_head_dim",
              "num_attention_heads", "joint_attention_dim", "timestep_guidance_channels", "mlp_ratio",
              "guidance_embeds")
TYPES = {"axes_dim": "a list of positive integers", "axes_dims_rope": "a list of positive integers",
         "theta": "a positive number", "rope_theta": "a positive number"}
#: quanto's pieces of a quantized Linear ``M``: ``M`` + suffix.
QUANTO_SUFFIXES = (".weight._data", ".weight._scale", ".input_scale", ".output_scale")
#: The fused double-block Linears (name inside the block) -> their diffusers parts, in row order.
FUSED = {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
         "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}


def recognises(tensors: dict) -> bool:
    """BFL's Flux 2 names: a 2-D ``img_in`` Linear and the shared ``double_stream_modulation_img``."""
    return has_weight(tensors, "img_in.weight") and has_weight(tensors, "double_stream_modulation_img.lin.weight")


def config(tensors: dict, embedded: dict, arch_shape: dict, where: str = "the checkpoint") -> dict:
    """The diffusers config from the shapes (width from ``img_in``, head dim from the q norm, the gated MLP's
    ratio from ``img_mlp.0``); the RoPE axes from the embedded config or the architecture."""
    check = EmbeddedConfig(embedded, where)
    check.checked(TYPES)
    hidden, in_channels = weight_shape(tensors, "img_in.weight")
    head_dim = weight_shape(tensors, "double_blocks.0.img_attn.norm.query_norm.scale", 1)[0]
    if hidden % head_dim:
        raise check.error(f"q norm size {head_dim} does not divide the width {hidden}")
    axes = embedded.get("axes_dims_rope") or embedded.get("axes_dim")
    if axes is not None and sum(axes) != head_dim:
        raise check.error(f"RoPE axes {json.dumps(axes)[:40]} do not sum to the head dim {head_dim}")
    axes = axes or arch_shape.get("axes_dims_rope") or [32, 32, 32, 32]
    if sum(axes) != head_dim:
        raise WangpError(f"{where}: head dim {head_dim} is not the architecture's {sum(axes)} and the file has no "
                         "config with its RoPE axes ('axes_dim')", code="format",
                         hint="is the definition's architecture right? 'wangp inspect FILE' shows the shapes")
    derived = {
        "patch_size": 1, "in_channels": in_channels,
        "num_layers": count_blocks(tensors, "double_blocks"),
        "num_single_layers": count_blocks(tensors, "single_blocks"),
        "attention_head_dim": head_dim, "num_attention_heads": hidden // head_dim,
        "joint_attention_dim": weight_shape(tensors, "txt_in.weight")[1],
        "timestep_guidance_channels": weight_shape(tensors, "time_in.in_layer.weight")[1],
        "mlp_ratio": weight_shape(tensors, "double_blocks.0.img_mlp.0.weight")[0] / (2 * hidden),  # SwiGLU: 2x
        "axes_dims_rope": list(axes), "rope_theta": embedded.get("rope_theta") or embedded.get("theta") or 2000,
        "guidance_embeds": has_weight(tensors, "guidance_in.in_layer.weight"),
    }
    out_channels = weight_shape(tensors, "final_layer.linear.weight")[0]
    if out_channels != in_channels:
        derived["out_channels"] = out_channels
    diffusers_form = str(embedded.get("_class_name", "")).endswith("Transformer2DModel")
    return check.merged(derived, SHAPE_KEYS) if diffusers_form else derived


def _presplit(tensors: dict, qmap: dict, hidden: int) -> None:
    modules = sorted({k.split(".weight")[0] for k in tensors
                      if k.startswith("double_blocks.") and k.endswith(("qkv.weight", "qkv.weight._data"))})
    for module in modules:
        parts = module.split(".")
        target = f"transformer_blocks.{parts[1]}."
        split_fused(tensors, qmap, module, [(target + p, hidden) for p in FUSED[".".join(parts[2:])]])


def to_diffusers(tensors: dict, qmap: dict, config: dict) -> tuple[dict, dict]:
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers as convert

    _presplit(tensors, qmap, config["num_attention_heads"] * config["attention_head_dim"])
    pieces = {name: tensors.pop(name) for name in list(tensors) if name.endswith(QUANTO_SUFFIXES)}
    converted = convert(tensors)
    converted_map = convert_map(qmap, convert)
    renamed = dict(zip(qmap, converted_map))  # convert_map keeps the map's order
    for name, tensor in pieces.items():
        suffix = next(s for s in QUANTO_SUFFIXES if name.endswith(s))
        module = name[: -len(suffix)]
        if module not in renamed:
            raise WangpError(f"quantized tensor '{name}' has no entry in the quantization map", code="format")
        converted[renamed[module] + suffix] = tensor
    return converted, converted_map


def model_class(config: dict):
    import diffusers

    return diffusers.Flux2Transformer2DModel


def mismatch(config: dict, arch_shape: dict) -> str | None:
    """A klein file for dev (no guidance embedding) or the reverse; another text width (Mistral vs Qwen3)."""
    wanted = arch_shape.get("joint_attention_dim")
    if wanted and config["joint_attention_dim"] != wanted and arch_shape.get("num_attention_heads") == config[
            "num_attention_heads"]:
        return (f"text width {config['joint_attention_dim']}, the architecture's transformer takes {wanted} "
                "(another text encoder)")
    if "guidance_embeds" in arch_shape and config["guidance_embeds"] != arch_shape["guidance_embeds"]:
        return ("a guidance-distilled (dev) transformer, the architecture is klein" if config["guidance_embeds"]
                else "a klein transformer (no guidance embedding), the architecture is Flux 2 dev")
    return None
