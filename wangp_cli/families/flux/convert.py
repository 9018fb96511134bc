"""Flux 1 / Chroma checkpoints in BFL's original layout (WanGP's files): the diffusers config from their shapes,
the fused qkv / ``single_blocks.N.linear1`` split (quanto-aware), the renames of ``layout.py``."""

from __future__ import annotations

import json

from wangp_cli.core.errors import WangpError
from wangp_cli.families.flux import layout
from wangp_cli.generate.tensors import (
    EmbeddedConfig,
    count_blocks,
    has_weight,
    split_fused,
    weight_shape,
)

#: Config keys whose value follows from the tensor shapes: a diffusers-form embedded config must agree with them.
SHAPE_KEYS = ("in_channels", "out_channels", "num_layers", "num_single_layers", "attention_head_dim",
              "num_attention_heads", "joint_attention_dim", "pooled_projection_dim", "guidance_embeds",
              "approximator_num_channels", "approximator_hidden_dim", "approximator_layers")
#: The other values an embedded config may carry (BFL's ``FluxParams`` or diffusers' names), and what each must be.
TYPES = {"axes_dim": "a list of positive integers", "axes_dims_rope": "a list of positive integers",
         "theta": "a positive number"}


def recognises(tensors: dict) -> bool:
    """BFL's Flux 1 names: a 2-D ``img_in`` Linear (HunyuanVideo's is a Conv3d, ``img_in.proj``) and fused
    double-block qkv with per-block modulation or Chroma's approximator (Flux 2 shares its modulations)."""
    return (has_weight(tensors, "img_in.weight")
            and any(k.startswith("double_blocks.0.img_attn.qkv.") for k in tensors)
            and not any(k.startswith("double_stream_modulation_img.") for k in tensors))


def is_chroma(tensors: dict) -> bool:
    return any(k.startswith("distilled_guidance_layer.") for k in tensors)


def config(tensors: dict, embedded: dict, arch_shape: dict, where: str = "the checkpoint") -> dict:
    """The diffusers config from the shapes: width from ``img_in``, head dim from the q norm, text widths from
    ``txt_in`` / ``vector_in``; the RoPE axes from the embedded config (BFL's ``axes_dim``) or the architecture."""
    check = EmbeddedConfig(embedded, where)
    check.checked(TYPES)
    hidden, in_channels = weight_shape(tensors, "img_in.weight")
    head_dim = weight_shape(tensors, "double_blocks.0.img_attn.norm.query_norm.scale", 1)[0]
    if hidden % head_dim:
        raise check.error(f"q norm size {head_dim} does not divide the width {hidden}")
    axes = embedded.get("axes_dims_rope") or embedded.get("axes_dim")
    if axes is not None and sum(axes) != head_dim:
        raise check.error(f"RoPE axes {json.dumps(axes)[:40]} do not sum to the head dim {head_dim}")
    axes = axes or arch_shape.get("axes_dims_rope") or [16, 56, 56]
    if sum(axes) != head_dim:  # not the real model's head dim (128), and no config says how RoPE splits it
        raise WangpError(f"{where}: head dim {head_dim} is not the architecture's {sum(axes)} and the file has no "
                         "config with its RoPE axes ('axes_dim')", code="format",
                         hint="is the definition's architecture right? 'wangp inspect FILE' shows the shapes")
    derived = {
        "patch_size": 1, "in_channels": in_channels,
        "out_channels": weight_shape(tensors, "final_layer.linear.weight")[0],
        "num_layers": count_blocks(tensors, "double_blocks"),
        "num_single_layers": count_blocks(tensors, "single_blocks"),
        "attention_head_dim": head_dim, "num_attention_heads": hidden // head_dim,
        "joint_attention_dim": weight_shape(tensors, "txt_in.weight")[1], "axes_dims_rope": list(axes),
    }
    if derived["out_channels"] == in_channels:
        del derived["out_channels"]  # diffusers' default (= in_channels); a Fill / Canny model differs
    if is_chroma(tensors):
        approximator_hidden, channels = weight_shape(tensors, "distilled_guidance_layer.in_proj.weight")
        derived.update(approximator_num_channels=channels, approximator_hidden_dim=approximator_hidden,
                       approximator_layers=count_blocks({k[len("distilled_guidance_layer."):]: None for k in tensors
                                                         if k.startswith("distilled_guidance_layer.")}, "layers"))
    else:
        derived.update(pooled_projection_dim=weight_shape(tensors, "vector_in.in_layer.weight")[1],
                       guidance_embeds=any(k.startswith("guidance_in.") for k in tensors))
    diffusers_form = str(embedded.get("_class_name", "")).endswith("Transformer2DModel")
    return check.merged(derived, SHAPE_KEYS) if diffusers_form else derived


def _presplit(tensors: dict, qmap: dict, hidden: int) -> None:
    """Split the fused qkv and ``linear1`` Linears into their diffusers parts (quanto ``_data``/``_scale`` rows
    sliced, the map entry repeated)."""
    modules = sorted({k.split(".weight")[0].split(".bias")[0] for k in tensors
                      if k.startswith(("double_blocks.", "single_blocks."))})
    for module in modules:
        parts = module.split(".")
        inside = ".".join(parts[2:])
        if parts[0] == "double_blocks" and inside in layout.FUSED_DOUBLE:
            target = f"transformer_blocks.{parts[1]}."
            split_fused(tensors, qmap, module, [(target + p, hidden) for p in layout.FUSED_DOUBLE[inside]])
        elif parts[0] == "single_blocks" and inside in layout.FUSED_SINGLE:
            target = f"single_transformer_blocks.{parts[1]}."
            rows = weight_shape(tensors, module + ".weight")[0]
            q, k, v, mlp = layout.FUSED_SINGLE[inside]
            split_fused(tensors, qmap, module, [(target + q, hidden), (target + k, hidden), (target + v, hidden),
                                                (target + mlp, rows - 3 * hidden)])


def to_diffusers(tensors: dict, qmap: dict, config: dict) -> tuple[dict, dict]:
    """Original-layout tensors and quanto map -> diffusers names (the fused Linears split first)."""
    hidden = config["num_attention_heads"] * config["attention_head_dim"]
    _presplit(tensors, qmap, hidden)
    converted, converted_map = {}, {}
    for name, tensor in tensors.items():
        if name.startswith(("transformer_blocks.", "single_transformer_blocks.")):  # split above
            converted[name] = tensor
            continue
        new = layout.to_diffusers_name(name.removeprefix("model.diffusion_model."))
        if new is None:
            raise WangpError(f"unknown Flux tensor '{name}'", code="format",
                             hint="is it a Flux 1 transformer in BFL's layout ('wangp inspect FILE')?")
        converted[new] = layout.swap_halves(tensor) if name.startswith(layout.SWAPPED) else tensor
    for module, entry in qmap.items():
        if module.startswith(("transformer_blocks.", "single_transformer_blocks.")):
            converted_map[module] = entry
        else:
            new = layout.to_diffusers_name(module + ".")
            if new is None or new.startswith("norm_out."):
                raise WangpError(f"cannot map quantized module '{module}' to diffusers", code="format")
            converted_map[new[:-1]] = entry
    return converted, converted_map


def model_class(config: dict):
    import diffusers

    return diffusers.ChromaTransformer2DModel if "approximator_layers" in config else diffusers.FluxTransformer2DModel


def mismatch(config: dict, arch_shape: dict) -> str | None:
    """Chroma weights for a Flux architecture or the reverse; other input channels (Fill, Canny, Depth)."""
    chroma, wanted = "approximator_layers" in config, "approximator_layers" in arch_shape
    if chroma != wanted:
        return "a Chroma transformer, the architecture is Flux 1" if chroma else \
            "a Flux 1 transformer, the architecture is Chroma"
    if arch_shape.get("in_channels") and config["in_channels"] != arch_shape["in_channels"]:
        return (f"{config['in_channels']} input channels, the architecture's transformer takes "
                f"{arch_shape['in_channels']} (a Fill / Canny / Depth model?)")
    return None
