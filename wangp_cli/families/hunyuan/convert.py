"""HunyuanVideo checkpoints in WanGP's original layout: the diffusers config from their shapes, the fused qkv and
``single_blocks.N.linear1`` split here (quanto-aware), then diffusers' own converter."""

from __future__ import annotations

import json

from wangp_cli.generate.tensors import (
    EmbeddedConfig,
    convert_map,
    count_blocks,
    split_fused,
    weight_shape,
)

#: Config keys whose value follows from the tensor shapes: the embedded config must agree with them.
SHAPE_KEYS = ("attention_head_dim", "in_channels", "out_channels", "num_layers", "num_single_layers",
              "num_refiner_layers", "mlp_ratio", "patch_size", "patch_size_t", "text_embed_dim",
              "pooled_projection_dim", "guidance_embeds")
#: The other values a config may carry, and what each must be.
TYPES = {"rope_theta": "a positive number", "rope_axes_dim": "a list of positive integers",
         "rope_dim_list": "a list of positive integers", "qk_norm": "a string or null",
         "image_condition_type": "a string or null"}


#: Names only HunyuanVideo 1.5 files have (``families/hunyuan15``): its ByT5 projection and condition-type table.
_HUNYUAN_1_5_ONLY = ("byt5_in.", "cond_type_embedding.")


def recognises(tensors: dict) -> bool:
    return any(k.startswith("double_blocks.") for k in tensors) and any(k.startswith("img_in.proj.") for k in tensors) \
        and not any(k.startswith(_HUNYUAN_1_5_ONLY) for k in tensors)


def config(tensors: dict, embedded: dict, arch_shape: dict, where: str = "the checkpoint") -> dict:
    """The diffusers config of a HunyuanVideo transformer, from its shapes (head count from the embedded config;
    a diffusers-form config must agree with the shapes)."""
    check = EmbeddedConfig(embedded, where)
    diffusers_form = bool(embedded.get("num_attention_heads")) and str(embedded.get("_class_name", "")).startswith(
        "Hunyuan")
    hidden, in_channels, patch_t, patch, _ = weight_shape(tensors, "img_in.proj.weight", 5)
    heads = check.divisor("num_attention_heads" if diffusers_form else "heads_num", hidden, "hidden size")
    heads = heads or (arch_shape.get("num_attention_heads")
                      if arch_shape.get("num_attention_heads", 0) * 128 == hidden else None)
    heads = heads or max(hidden // 128, 1)
    check.checked(TYPES)
    rope_key = "rope_axes_dim" if diffusers_form else "rope_dim_list"
    rope = embedded.get(rope_key)
    if rope is not None and sum(rope) != hidden // heads:
        raise check.error(f"{rope_key} {json.dumps(rope)[:40]} does not sum to the head dim {hidden // heads}")
    out = weight_shape(tensors, "final_layer.linear.weight")[0] // (patch * patch * patch_t)
    derived = {
        "in_channels": in_channels, "out_channels": out, "num_attention_heads": heads,
        "attention_head_dim": hidden // heads, "num_layers": count_blocks(tensors, "double_blocks"),
        "num_single_layers": count_blocks(tensors, "single_blocks"),
        "num_refiner_layers": len({k.split(".")[3] for k in tensors
                                   if k.startswith("txt_in.individual_token_refiner.blocks.")}),
        "mlp_ratio": weight_shape(tensors, "double_blocks.0.img_mlp.fc1.weight")[0] / hidden,
        "patch_size": patch, "patch_size_t": patch_t,
        "text_embed_dim": weight_shape(tensors, "txt_in.input_embedder.weight")[1],
        "pooled_projection_dim": weight_shape(tensors, "vector_in.in_layer.weight")[1],
        "rope_theta": 256.0, "rope_axes_dim": list(rope or arch_shape.get("rope_axes_dim") or (16, 56, 56)),
        "guidance_embeds": any(k.startswith("guidance_in.") for k in tensors),
    }
    if arch_shape.get("image_condition_type"):
        derived["image_condition_type"] = "token_replace" if in_channels == out else "latent_concat"
    return check.merged(derived, SHAPE_KEYS) if diffusers_form else derived


#: Fused original Linears (by name ending) -> the diffusers names of their q, k, v parts.
_FUSED_QKV = {".img_attn_qkv": "attn.to_{}", ".txt_attn_qkv": "attn.add_{}_proj", ".self_attn_qkv": "attn.to_{}"}


def presplit(tensors: dict, qmap: dict, hidden: int) -> None:
    """Split fused qkv and ``single_blocks.N.linear1`` into names diffusers' converter passes through (its own
    split assumes hidden size 3072 and cannot handle quanto tensors)."""
    for module in sorted({k.rsplit(".", 1)[0] for k in tensors if ".weight" in k}):
        module = module.split(".weight")[0]
        ending = next((e for e in _FUSED_QKV if module.endswith(e)), None)
        if ending:
            base = module[: -len(ending)]
            parts = [(f"{base}.{_FUSED_QKV[ending].format(x)}", hidden) for x in "qkv"]
        elif module.startswith("single_blocks.") and module.endswith(".linear1"):
            base = module[: -len(".linear1")]
            rows = weight_shape(tensors, module + ".weight")[0]
            parts = [(f"{base}.attn.to_{x}", hidden) for x in "qkv"] + [(f"{base}.proj_mlp", rows - 3 * hidden)]
        else:
            continue
        split_fused(tensors, qmap, module, parts)


def to_diffusers(tensors: dict, qmap: dict, config: dict) -> tuple[dict, dict]:
    from diffusers.loaders.single_file_utils import (
        convert_hunyuan_video_transformer_to_diffusers,
    )

    presplit(tensors, qmap, config["num_attention_heads"] * config["attention_head_dim"])
    converted = convert_hunyuan_video_transformer_to_diffusers(tensors)
    return converted, convert_map(qmap, convert_hunyuan_video_transformer_to_diffusers)


def model_class(config: dict):
    import diffusers

    return diffusers.HunyuanVideoTransformer3DModel


def mismatch(config: dict, arch_shape: dict) -> str | None:
    return None
