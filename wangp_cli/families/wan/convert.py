"""Wan checkpoints in WanGP's original layout: the diffusers config from their shapes, their keys converted with
diffusers' own converter, and what makes weights unfit for an architecture."""

from __future__ import annotations

import json

from wangp_cli.generate.tensors import (
    EmbeddedConfig,
    convert_map,
    count_blocks,
    has_weight,
    weight_shape,
)

#: Config keys whose value follows from the tensor shapes: the embedded config must agree with them.
SHAPE_KEYS = ("attention_head_dim", "in_channels", "out_channels", "text_dim", "freq_dim", "ffn_dim",
              "num_layers", "patch_size", "image_dim", "added_kv_proj_dim", "vace_in_channels")
#: The other values a config may carry, and what each must be.
TYPES = {"eps": "a positive number", "rope_max_seq_len": "a positive integer",
         "pos_embed_seq_len": "a positive integer or null", "qk_norm": "a string or null",
         "cross_attn_norm": "true or false", "vace_layers": "a list of non-negative integers"}
#: The diffusers classes that take Wan's layout besides Wan's own (an architecture's shape names one as
#: ``transformer_class``; the tensors cannot tell: SkyReels-V2 DF is a t2v file, ChronoEdit an i2v one).
VARIANT_CLASSES = ("SkyReelsV2Transformer3DModel", "ChronoEditTransformer3DModel")


def recognises(tensors: dict) -> bool:
    return any(k.startswith("blocks.") for k in tensors) and any(k.startswith("patch_embedding.") for k in tensors)


def config(tensors: dict, embedded: dict, arch_shape: dict, where: str = "the checkpoint") -> dict:
    """The diffusers config of a Wan transformer, from its shapes (head count from the embedded config).

    An embedded diffusers-form config (``_class_name`` Wan..., ``num_attention_heads``) must agree with the
    shapes; its other values are kept once checked.
    """
    check = EmbeddedConfig(embedded, where)
    diffusers_form = bool(embedded.get("num_attention_heads")) and str(embedded.get("_class_name", "")).startswith(
        "Wan")
    dim, in_channels, *patch = weight_shape(tensors, "patch_embedding.weight", 5)
    heads = check.divisor("num_attention_heads" if diffusers_form else "num_heads", dim)
    heads = heads or (arch_shape.get("num_heads") if arch_shape.get("dim") == dim else None) or max(dim // 128, 1)
    layers = count_blocks(tensors, "blocks")
    out = weight_shape(tensors, "head.head.weight")[0] // (patch[0] * patch[1] * patch[2])
    derived = {
        "patch_size": list(patch), "num_attention_heads": heads, "attention_head_dim": dim // heads,
        "in_channels": in_channels, "out_channels": out,
        "text_dim": weight_shape(tensors, "text_embedding.0.weight")[1],
        "freq_dim": weight_shape(tensors, "time_embedding.0.weight")[1],
        "ffn_dim": weight_shape(tensors, "blocks.0.ffn.0.weight")[0],
        "num_layers": layers, "cross_attn_norm": "blocks.0.norm3.weight" in tensors,
        "qk_norm": "rms_norm_across_heads", "eps": float(check.get("eps", "a positive number", 1e-6)),
    }
    if has_weight(tensors, "img_emb.proj.1.weight"):
        derived["image_dim"] = weight_shape(tensors, "img_emb.proj.1.weight")[1]
        derived["added_kv_proj_dim"] = weight_shape(tensors, "blocks.0.cross_attn.k_img.weight")[1]
    if "img_emb.emb_pos" in tensors:
        derived["pos_embed_seq_len"] = tensors["img_emb.emb_pos"].shape[1]
    vace = count_blocks(tensors, "vace_blocks")
    if vace:
        derived["vace_layers"] = list(range(0, layers, layers // vace))[:vace]
        derived["vace_in_channels"] = weight_shape(tensors, "vace_patch_embedding.weight", 5)[1]
    variant = arch_shape.get("transformer_class")
    if variant in VARIANT_CLASSES:
        derived["_class_name"] = variant  # from_config ignores it; model_class reads it
    if not diffusers_form:
        return derived
    check.checked(TYPES)
    given = embedded.get("vace_layers")
    if given is not None and (len(given) != vace or any(index >= layers for index in given)):
        raise check.error(f"vace_layers {json.dumps(given)[:40]} does not fit the tensors ({vace} VACE blocks "
                          f"over {layers} layers)")
    return check.merged(derived, SHAPE_KEYS)


def to_diffusers(tensors: dict, qmap: dict, config: dict) -> tuple[dict, dict]:
    """diffusers' ``convert_wan_transformer_to_diffusers``, plus FLF2V's position table (which it does not map)."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    emb_pos = tensors.pop("img_emb.emb_pos", None)
    converted = convert_wan_transformer_to_diffusers(tensors)
    if emb_pos is not None:
        converted["condition_embedder.image_embedder.pos_embed"] = emb_pos
    return converted, convert_map(qmap, convert_wan_transformer_to_diffusers)


def model_class(config: dict):
    import diffusers

    if config.get("_class_name") in VARIANT_CLASSES:
        return getattr(diffusers, config["_class_name"])
    return diffusers.WanVACETransformer3DModel if config.get("vace_layers") else diffusers.WanTransformer3DModel


def mismatch(config: dict, arch_shape: dict) -> str | None:
    """Image conditioning, VACE blocks and the input channels must be the architecture's."""
    if ("image_dim" in arch_shape) != ("image_dim" in config):
        return ("a text-to-video transformer, the architecture is image-to-video" if "image_dim" in arch_shape
                else "an image-to-video transformer, the architecture is text-to-video")
    if bool(arch_shape.get("vace_layers")) != bool(config.get("vace_layers")):
        return ("no VACE blocks (is the VACE module listed in 'modules'?)" if arch_shape.get("vace_layers")
                else "VACE blocks, the architecture has none")
    expected = arch_shape.get("in_channels")
    if expected and config["in_channels"] != expected:  # Wan 2.2: t2v 16, i2v 36, TI2V 5B 48 latent channels
        return f"{config['in_channels']} input channels, the architecture's transformer takes {expected}"
    return None
