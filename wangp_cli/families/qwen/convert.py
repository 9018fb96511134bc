"""Qwen-Image checkpoints as WanGP ships them: diffusers' own key names (WanGP's ``models/qwen/
transformer_qwenimage.py`` is diffusers' class: ``transformer_blocks.N.img_mod.1``, ``attn.to_q``, ...), so the
conversion is the identity that diffusers' single-file loader also uses for ``QwenImageTransformer2DModel``, plus
what WanGP's loader accepts besides: a ComfyUI ``model.diffusion_model.`` / ``diffusion_model.`` prefix, and fused
projections (``attn.to_qkv``, ``attn.add_qkv_proj``: WanGP's ``_QWEN_FUSED_SPLIT_MAP``) split into q, k, v."""

from __future__ import annotations

import json

from wangp_cli.generate.tensors import EmbeddedConfig, count_blocks, has_weight, split_fused, weight_shape

#: Prefixes WanGP's loader strips (mmgp removes a model wrapper's prefix; ComfyUI files carry them).
PREFIXES = ("model.diffusion_model.", "diffusion_model.")
#: Fused projection -> its parts, in row order (WanGP's ``_QWEN_FUSED_SPLIT_MAP``).
FUSED = {"attn.to_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
         "attn.add_qkv_proj": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}
#: Config keys whose value follows from the tensor shapes: an embedded config must agree with them.
SHAPE_KEYS = ("num_layers", "attention_head_dim", "num_attention_heads", "joint_attention_dim", "in_channels",
              "out_channels", "use_additional_t_cond")
#: The other keys of ``QwenImageTransformer2DModel``'s config an embedded config may give, and what each must be
#: (others, such as the ``pooled_projection_dim`` of WanGP's config file, are dropped as WanGP drops them).
TYPES = {"patch_size": "a positive integer", "axes_dims_rope": "a list of positive integers",
         "guidance_embeds": "true or false", "zero_cond_t": "true or false", "use_layer3d_rope": "true or false"}
#: Flags no tensor shows: WanGP takes them from the architecture's config file, whatever the checkpoint says.
ARCHITECTURE_FLAGS = ("zero_cond_t", "use_layer3d_rope")


def _strip(name: str) -> str:
    for prefix in PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def recognises(tensors: dict) -> bool:
    """Dual-stream blocks with ``img_mod`` (Flux's diffusers blocks have ``norm1``) and the ``txt_norm`` of
    Qwen-Image (Qwen-Image 2.1 has none), prefixed or not."""
    names = {_strip(name) for name in tensors}
    return "txt_norm.weight" in names and "img_in.weight" in names and any(
        name.startswith("transformer_blocks.") and ".img_mod." in name for name in names)


def _unprefixed(tensors: dict) -> dict:
    return {_strip(name): tensor for name, tensor in tensors.items()}


def config(tensors: dict, embedded: dict, arch_shape: dict, where: str = "the checkpoint") -> dict:
    """The diffusers config from the shapes: width and input channels from ``img_in``, head size from the q norm,
    text width from ``txt_in``, depth from the blocks, the Layered timestep table from its tensor; heads, patch size
    and rope axes from the embedded config (diffusers' form, as WanGP's ``configs/*.json``), else the
    architecture's; ``zero_cond_t`` / ``use_layer3d_rope`` from the architecture (as WanGP), else the file."""
    tensors = _unprefixed(tensors)
    check = EmbeddedConfig(embedded, where)
    dim, in_channels = weight_shape(tensors, "img_in.weight")
    head_dim = weight_shape(tensors, "transformer_blocks.0.attn.norm_q.weight", 1)[0]
    if dim % head_dim:
        raise check.error(f"q norm size {head_dim} does not divide the width {dim}")
    patch = check.get("patch_size", "a positive integer") or arch_shape.get("patch_size", 2)
    rows = weight_shape(tensors, "proj_out.weight")[0]
    if rows % (patch * patch):
        raise check.error(f"patch_size {patch} does not fit proj_out's {rows} rows")
    same_size = arch_shape.get("attention_head_dim") == head_dim
    axes = check.get("axes_dims_rope", "a list of positive integers") or (
        arch_shape.get("axes_dims_rope") if same_size else None)
    if axes is None or sum(axes) != head_dim:
        raise check.error(f"axes_dims_rope {json.dumps(axes)} does not add up to the head size {head_dim}"
                          if axes else f"has no axes_dims_rope for head size {head_dim} (the architecture's "
                                       f"is {json.dumps(arch_shape.get('axes_dims_rope'))})")
    derived = {
        "patch_size": patch, "in_channels": in_channels, "out_channels": rows // (patch * patch),
        "num_layers": count_blocks(tensors, "transformer_blocks"), "attention_head_dim": head_dim,
        "num_attention_heads": dim // head_dim, "joint_attention_dim": weight_shape(tensors, "txt_in.weight")[1],
        "guidance_embeds": bool(check.get("guidance_embeds", "true or false", False)), "axes_dims_rope": list(axes),
        "use_additional_t_cond": has_weight(tensors, "time_text_embed.addition_t_embedding.weight"),
    }
    check.checked(TYPES)
    for key in SHAPE_KEYS:
        if key in embedded and embedded[key] != derived[key]:
            raise check.error(f"{key} ({json.dumps(embedded[key])[:40]}) does not fit the tensors "
                              f"({json.dumps(derived[key])})")
    for flag in ARCHITECTURE_FLAGS:
        derived[flag] = bool(arch_shape[flag]) if flag in arch_shape else bool(embedded.get(flag, False))
    return derived


def _split_projections(tensors: dict, qmap: dict, layers: int, dim: int) -> None:
    for index in range(layers):
        for fused, parts in FUSED.items():
            module = f"transformer_blocks.{index}.{fused}"
            if has_weight(tensors, f"{module}.weight"):
                split_fused(tensors, qmap, module, [(f"transformer_blocks.{index}.{part}", dim) for part in parts])


def to_diffusers(tensors: dict, qmap: dict, config: dict) -> tuple[dict, dict]:
    """The identity (diffusers' single-file mapping for this class), after the prefix is stripped and fused
    projections split (quanto-aware: ``_data`` / ``_scale`` rows sliced)."""
    tensors = _unprefixed(tensors)
    qmap = {_strip(name): entry for name, entry in qmap.items()}
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    _split_projections(tensors, qmap, config["num_layers"], dim)
    return tensors, qmap


def model_class(config: dict):
    import diffusers

    return diffusers.QwenImageTransformer2DModel


def mismatch(config: dict, arch_shape: dict) -> str | None:
    """The Layered model's extra timestep table and the text width must be the architecture's."""
    expected = arch_shape.get("use_additional_t_cond")
    if expected is not None and bool(expected) != config["use_additional_t_cond"]:
        return ("no layer timestep table (addition_t_embedding), the architecture is Qwen-Image-Layered" if expected
                else "a Qwen-Image-Layered transformer (addition_t_embedding), the architecture is not")
    width = arch_shape.get("joint_attention_dim")
    if width and arch_shape.get("attention_head_dim") == config["attention_head_dim"] and \
            config["joint_attention_dim"] != width:
        return f"text states of width {config['joint_attention_dim']}, the architecture's text encoder gives {width}"
    return None
