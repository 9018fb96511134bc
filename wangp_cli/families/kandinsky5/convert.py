"""Kandinsky 5 checkpoints in WanGP's layout: the diffusers config from their shapes (and the embedded config), and
the keys, which are already diffusers' own.

diffusers has no single-file converter for ``Kandinsky5Transformer3DModel``, and needs none: WanGP's
``models/kandinsky5/kandinsky/models/dit.py`` (``DiffusionTransformer3D``, the original Kandinsky 5 code) and
diffusers' model name every module alike (``time_embeddings``, ``text_embeddings``, ``pooled_text_embeddings``,
``visual_embeddings``, ``text_transformer_blocks.N.{text_modulation,self_attention,feed_forward}``,
``visual_transformer_blocks.N.{visual_modulation,self_attention,cross_attention,feed_forward}`` with
``to_query/to_key/to_value/query_norm/key_norm/out_layer``, ``out_layer``), nothing fused, and both keep the RoPE
tables and time frequencies out of the state dict. The one difference is a prefix: WanGP's loader strips
``model.diffusion_model.``, ``diffusion_model.`` or ``model.`` (``kandinsky_main._preprocess_dit_state_dict``), so
files may carry one; it is stripped here the same way (first prefix any key has; keys without it dropped).
"""

from __future__ import annotations

import json

from wangp_cli.generate.tensors import EmbeddedConfig, count_blocks, weight_shape

#: The prefixes WanGP's loader strips, in its order.
PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.")
#: Config keys whose value follows from the tensor shapes: an embedded config must agree with them.
SHAPE_KEYS = ("in_visual_dim", "out_visual_dim", "in_text_dim", "in_text_dim2", "time_dim", "model_dim", "ff_dim",
              "num_text_blocks", "num_visual_blocks", "visual_cond")
#: The other values a config may carry, and what each must be.
TYPES = {"axes_dims": "a list of positive integers", "patch_size": "a list of positive integers",
         "attention_type": "a string or null"}
#: The attention settings of diffusers' config (``attention_type`` "regular" or "nabla" and its parameters).
ATTENTION_KEYS = ("attention_type", "attention_causal", "attention_local", "attention_glob", "attention_window",
                  "attention_P", "attention_wT", "attention_wW", "attention_wH", "attention_add_sta",
                  "attention_method")
_BLOCK_LISTS = ("visual_transformer_blocks.", "text_transformer_blocks.")


def prefix_of(names) -> str:
    """The prefix WanGP's loader would strip from these tensor names ("" for none)."""
    return next((p for p in PREFIXES if any(name.startswith(p) for name in names)), "")


def recognises(tensors: dict) -> bool:
    prefix = prefix_of(tensors)
    return any(name.startswith(prefix + block) for name in tensors for block in _BLOCK_LISTS)


def strip(tensors: dict, prefix: str) -> dict:
    return {name[len(prefix):]: value for name, value in tensors.items() if name.startswith(prefix)}


def _axes(head_dim: int) -> list[int]:
    """RoPE axes of a head: WanGP's configs split it 1/4 time, 3/8 height, 3/8 width (16+24+24, 32+48+48)."""
    temporal = head_dim // 4
    spatial = (head_dim - temporal) // 2
    return [temporal, spatial, head_dim - temporal - spatial]


def config(tensors: dict, embedded: dict, arch_shape: dict, where: str = "the checkpoint") -> dict:
    """The diffusers config of a Kandinsky 5 transformer from its shapes; ``axes_dims`` and ``patch_size`` from the
    embedded config (WanGP's ``dit_params`` and diffusers' config share the names), else the architecture's."""
    tensors = strip(tensors, prefix_of(tensors))
    check = EmbeddedConfig(embedded, where)
    check.checked(TYPES)
    patch = list(embedded.get("patch_size") or arch_shape.get("patch_size") or (1, 2, 2))
    if len(patch) != 3:
        raise check.error(f"patch_size {json.dumps(patch)[:40]} is not 3 integers")
    patch_volume = patch[0] * patch[1] * patch[2]
    time_dim, model_dim = weight_shape(tensors, "time_embeddings.in_layer.weight")
    embed_rows, embed_inputs = weight_shape(tensors, "visual_embeddings.in_layer.weight")
    out_rows = weight_shape(tensors, "out_layer.out_layer.weight")[0]
    head_dim = weight_shape(tensors, "visual_transformer_blocks.0.self_attention.query_norm.weight", 1)[0]
    out_visual_dim = out_rows // patch_volume
    visual_embed_dim = embed_inputs // patch_volume
    visual_cond = visual_embed_dim == 2 * out_visual_dim + 1  # latents, conditioning latents, mask channel
    axes = embedded.get("axes_dims") or (arch_shape.get("axes_dims") if sum(arch_shape.get("axes_dims") or ()) ==
                                         head_dim else None) or _axes(head_dim)
    if sum(axes) != head_dim:
        raise check.error(f"axes_dims {json.dumps(axes)[:40]} does not sum to the head dim {head_dim}")
    derived = {
        "in_visual_dim": (visual_embed_dim - 1) // 2 if visual_cond else visual_embed_dim,
        "out_visual_dim": out_visual_dim,
        "in_text_dim": weight_shape(tensors, "text_embeddings.in_layer.weight")[1],
        "in_text_dim2": weight_shape(tensors, "pooled_text_embeddings.in_layer.weight")[1],
        "time_dim": time_dim, "patch_size": patch, "model_dim": model_dim,
        "ff_dim": weight_shape(tensors, "visual_transformer_blocks.0.feed_forward.in_layer.weight")[0],
        "num_text_blocks": count_blocks(tensors, "text_transformer_blocks"),
        "num_visual_blocks": count_blocks(tensors, "visual_transformer_blocks"),
        "axes_dims": list(axes), "visual_cond": visual_cond,
    }
    if embed_rows != model_dim or model_dim % head_dim:
        raise check.error(f"shapes do not fit together (model dim {model_dim}, embedding rows {embed_rows}, head "
                          f"dim {head_dim})")
    merged = check.merged(derived, SHAPE_KEYS)
    # keep diffusers' own keys only (WanGP's dit_params has attention_engine, instruct_type, ...)
    import inspect

    from diffusers import Kandinsky5Transformer3DModel

    known = set(inspect.signature(Kandinsky5Transformer3DModel.__init__).parameters) - {"self"}
    return {key: value for key, value in merged.items() if key in known}


def to_diffusers(tensors: dict, qmap: dict, config: dict) -> tuple[dict, dict]:
    """The names are diffusers' own: only WanGP's optional prefix goes (tensors and quantization map alike)."""
    prefix = prefix_of(tensors)
    return strip(tensors, prefix), strip(qmap, prefix)


def model_class(config: dict):
    import diffusers

    return diffusers.Kandinsky5Transformer3DModel


def mismatch(config: dict, arch_shape: dict) -> str | None:
    """Weights without the visual conditioning input for an architecture that feeds it (or the reverse); sizes are
    not compared (the tiny test models stand in for the 2B and 19B ones)."""
    if "visual_cond" in arch_shape and bool(config.get("visual_cond")) != bool(arch_shape["visual_cond"]):
        return ("the weights have no visual conditioning input" if arch_shape["visual_cond"] else
                "the weights take a visual conditioning input the architecture has not")
    return None
