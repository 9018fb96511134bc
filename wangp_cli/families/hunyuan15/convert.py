"""HunyuanVideo 1.5 checkpoints in the original layout (Tencent's release, which WanGP's files keep): the diffusers
config from their shapes, and the keys renamed to diffusers' ``HunyuanVideo15Transformer3DModel``.

diffusers has no single-file converter for this class (only the script ``scripts/convert_hunyuan_video1_5_to_
diffusers.py``, which hard-codes 54 blocks and 2 refiner blocks and handles no quanto tensors), so the rename is
wangp's own, table-driven and quanto-aware: fused Linears (the token refiner's ``self_attn_qkv``; a double block's
``img_attn_qkv`` / ``txt_attn_qkv`` where a file keeps them fused, as HunyuanVideo 1.0 does) are split with
:func:`wangp_cli.generate.tensors.split_fused`, every other module is renamed with its ``.weight`` / ``.bias`` /
``.weight._data`` / ``.weight._scale`` / ``input_scale`` / ``output_scale`` tensors and its quantization map entry.
"""

from __future__ import annotations

import json
import re

from wangp_cli.core.errors import WangpError
from wangp_cli.generate.tensors import EmbeddedConfig, count_blocks, split_fused, weight_shape

#: Names only HunyuanVideo 1.5 has (1.0 has ``double_blocks`` too, but no ByT5 glyph projection, no condition-type
#: embedding): what tells the two layouts apart.
ONLY_1_5 = ("byt5_in.", "cond_type_embedding.")

#: Config keys whose value follows from the tensor shapes: a diffusers-form embedded config must agree with them.
SHAPE_KEYS = ("num_attention_heads", "attention_head_dim", "in_channels", "out_channels", "num_layers",
              "num_refiner_layers", "mlp_ratio", "patch_size", "patch_size_t", "text_embed_dim", "text_embed_2_dim",
              "image_embed_dim", "use_meanflow")
#: The other values a config may carry, and what each must be.
TYPES = {"rope_theta": "a positive number", "rope_axes_dim": "a list of positive integers",
         "rope_dim_list": "a list of positive integers", "qk_norm": "a string or null",
         "target_size": "a positive integer", "task_type": "a string or null"}
#: diffusers' ByT5 projection hard-codes its hidden width (``HunyuanVideo15ByT5TextProjection(.., 2048, ..)``).
BYT5_HIDDEN = 2048

#: Top-level modules: original -> diffusers.
TOP = {
    "img_in.proj": "x_embedder.proj",
    "time_in.mlp.0": "time_embed.timestep_embedder.linear_1",
    "time_in.mlp.2": "time_embed.timestep_embedder.linear_2",
    "time_r_in.mlp.0": "time_embed.timestep_embedder_r.linear_1",
    "time_r_in.mlp.2": "time_embed.timestep_embedder_r.linear_2",
    "txt_in.t_embedder.mlp.0": "context_embedder.time_text_embed.timestep_embedder.linear_1",
    "txt_in.t_embedder.mlp.2": "context_embedder.time_text_embed.timestep_embedder.linear_2",
    "txt_in.c_embedder.linear_1": "context_embedder.time_text_embed.text_embedder.linear_1",
    "txt_in.c_embedder.linear_2": "context_embedder.time_text_embed.text_embedder.linear_2",
    "txt_in.input_embedder": "context_embedder.proj_in",
    "byt5_in.layernorm": "context_embedder_2.norm",
    "byt5_in.fc1": "context_embedder_2.linear_1",
    "byt5_in.fc2": "context_embedder_2.linear_2",
    "byt5_in.fc3": "context_embedder_2.linear_3",
    "vision_in.proj.0": "image_embedder.norm_in",
    "vision_in.proj.1": "image_embedder.linear_1",
    "vision_in.proj.3": "image_embedder.linear_2",
    "vision_in.proj.4": "image_embedder.norm_out",
    "cond_type_embedding": "cond_type_embed",
    "final_layer.adaLN_modulation.1": "norm_out.linear",  # [shift, scale] -> diffusers' [scale, shift]
    "final_layer.linear": "proj_out",
}
#: Modules of ``txt_in.individual_token_refiner.blocks.N``.
REFINER = {"norm1": "norm1", "norm2": "norm2", "self_attn_q": "attn.to_q", "self_attn_k": "attn.to_k",
           "self_attn_v": "attn.to_v", "self_attn_proj": "attn.to_out.0", "mlp.fc1": "ff.net.0.proj",
           "mlp.fc2": "ff.net.2", "adaLN_modulation.1": "norm_out.linear"}
#: Modules of ``double_blocks.N`` (the modulation chunks keep their order: shift, scale, gate twice, as
#: diffusers' AdaLayerNormZero reads them).
DOUBLE = {"img_mod.linear": "norm1.linear", "txt_mod.linear": "norm1_context.linear",
          "img_attn_q": "attn.to_q", "img_attn_k": "attn.to_k", "img_attn_v": "attn.to_v",
          "img_attn_q_norm": "attn.norm_q", "img_attn_k_norm": "attn.norm_k", "img_attn_proj": "attn.to_out.0",
          "txt_attn_q": "attn.add_q_proj", "txt_attn_k": "attn.add_k_proj", "txt_attn_v": "attn.add_v_proj",
          "txt_attn_q_norm": "attn.norm_added_q", "txt_attn_k_norm": "attn.norm_added_k",
          "txt_attn_proj": "attn.to_add_out", "img_mlp.fc1": "ff.net.0.proj", "img_mlp.fc2": "ff.net.2",
          "txt_mlp.fc1": "ff_context.net.0.proj", "txt_mlp.fc2": "ff_context.net.2"}
#: Numbered lists: (original prefix, diffusers prefix, module table).
BLOCKS = (("txt_in.individual_token_refiner.blocks.", "context_embedder.token_refiner.refiner_blocks.", REFINER),
          ("double_blocks.", "transformer_blocks.", DOUBLE))
#: Fused Linears (name ending) -> the original names of their q, k, v thirds.
FUSED = {".self_attn_qkv": ".self_attn_{}", ".img_attn_qkv": ".img_attn_{}", ".txt_attn_qkv": ".txt_attn_{}"}
#: The tensors of one module: plain, and quanto's pieces.
SUFFIXES = (".weight._data", ".weight._scale", ".input_scale", ".output_scale", ".weight", ".bias")
#: Modules whose output rows are diffusers' [scale, shift] but the original's [shift, scale].
SWAPPED = ("final_layer.adaLN_modulation.1",)
#: The tensors of a module that hold one row per output (the activation scales are one value).
ROW_SUFFIXES = (".weight", ".bias", ".weight._data", ".weight._scale")


def recognises(tensors: dict) -> bool:
    """Whether the names are HunyuanVideo 1.5's original layout (double blocks plus a name only 1.5 has)."""
    return any(k.startswith("double_blocks.") for k in tensors) and any(k.startswith(ONLY_1_5) for k in tensors)


def _format(text: str) -> WangpError:
    return WangpError(text, code="format", hint="is it a HunyuanVideo 1.5 transformer in WanGP's original layout?")


def config(tensors: dict, embedded: dict, arch_shape: dict, where: str = "the checkpoint") -> dict:
    """The diffusers config from the shapes; the head count from the embedded config (WanGP's ``heads_num`` or
    diffusers' ``num_attention_heads``), else the architecture's where it divides the hidden size, else 128-wide
    heads. A diffusers-form config must agree with the shapes."""
    check = EmbeddedConfig(embedded, where)
    diffusers_form = str(embedded.get("_class_name", "")).startswith("HunyuanVideo15")
    hidden, in_channels, patch_t, patch, patch_w = weight_shape(tensors, "img_in.proj.weight", 5)
    if patch != patch_w:
        raise _format(f"{where}: img_in.proj has patch {patch}x{patch_w}; diffusers takes square patches only")
    heads = check.divisor("num_attention_heads" if diffusers_form else "heads_num", hidden, "hidden size")
    shape_heads = arch_shape.get("num_attention_heads", 0)
    heads = heads or (shape_heads if shape_heads and hidden % shape_heads == 0 and
                      hidden // shape_heads == arch_shape.get("attention_head_dim") else None)
    heads = heads or max(hidden // 128, 1)
    check.checked(TYPES)
    head_dim = hidden // heads
    rope = embedded.get("rope_axes_dim" if diffusers_form else "rope_dim_list") or (
        arch_shape.get("rope_axes_dim") if sum(arch_shape.get("rope_axes_dim") or ()) == head_dim else None)
    if rope is None or sum(rope) != head_dim or len(rope) != 3:
        shown = json.dumps(rope)[:40]
        raise check.error(f"rope axes {shown} do not give 3 axes summing to the head dim {head_dim}")
    byt5_hidden, byt5_in = weight_shape(tensors, "byt5_in.fc1.weight")
    if byt5_hidden != BYT5_HIDDEN:
        raise _format(f"{where}: byt5_in.fc1 is {byt5_hidden} wide; diffusers' HunyuanVideo 1.5 has {BYT5_HIDDEN}")
    derived = {
        "in_channels": in_channels, "num_attention_heads": heads, "attention_head_dim": head_dim,
        "out_channels": weight_shape(tensors, "final_layer.linear.weight")[0] // (patch * patch * patch_t),
        "num_layers": count_blocks(tensors, "double_blocks"),
        "num_refiner_layers": len({k.split(".")[3] for k in tensors
                                   if k.startswith("txt_in.individual_token_refiner.blocks.")}),
        "mlp_ratio": weight_shape(tensors, "double_blocks.0.img_mlp.fc1.weight")[0] / hidden,
        "patch_size": patch, "patch_size_t": patch_t, "qk_norm": "rms_norm",
        "text_embed_dim": weight_shape(tensors, "txt_in.input_embedder.weight")[1],
        "text_embed_2_dim": byt5_in,
        "image_embed_dim": weight_shape(tensors, "vision_in.proj.1.weight")[1],
        "rope_theta": 256.0, "rope_axes_dim": list(rope),
        "target_size": embedded.get("target_size") or arch_shape.get("target_size", 960),
        "task_type": embedded.get("task_type") or arch_shape.get("task_type", "t2v"),
        "use_meanflow": any(k.startswith("time_r_in.") for k in tensors),
    }
    return check.merged(derived, SHAPE_KEYS) if diffusers_form else derived


def _split_fused(tensors: dict, qmap: dict, hidden: int) -> None:
    """Fused q/k/v Linears into their thirds, under the original split names the tables rename."""
    modules = {k[: -len(suffix)] for k in tensors for suffix in SUFFIXES if k.endswith(suffix)}
    for module in sorted(modules):
        ending = next((e for e in FUSED if module.endswith(e)), None)
        if ending:
            base = module[: -len(ending)]
            split_fused(tensors, qmap, module, [(base + FUSED[ending].format(x), hidden) for x in "qkv"])


def _rename_module(module: str) -> str | None:
    """The diffusers name of an original module (None: not a HunyuanVideo 1.5 module)."""
    if module in TOP:
        return TOP[module]
    for original, converted, table in BLOCKS:
        match = re.match(re.escape(original) + r"(\d+)\.(.+)$", module)
        if match and match[2] in table:
            return f"{converted}{match[1]}.{table[match[2]]}"
    return None


def _swap_halves(tensor):
    """[shift, scale] rows -> [scale, shift] (a per-row quanto scale swaps with its rows; a scalar stays)."""
    import torch

    if tensor.dim() == 0 or tensor.shape[0] == 1:
        return tensor
    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def to_diffusers(tensors: dict, qmap: dict, config: dict) -> tuple[dict, dict]:
    """Original-layout tensors (16-bit or quanto pieces) and quanto map -> diffusers names; unknown names are a
    format error naming them."""
    _split_fused(tensors, qmap, config["num_attention_heads"] * config["attention_head_dim"])
    converted, unknown = {}, []
    for key, tensor in tensors.items():
        suffix = next((s for s in SUFFIXES if key.endswith(s)), None)
        module = key[: -len(suffix)] if suffix else key
        renamed = _rename_module(module) if suffix else None
        if renamed is None:
            unknown.append(key)
            continue
        rows = suffix in ROW_SUFFIXES
        converted[renamed + suffix] = _swap_halves(tensor) if module in SWAPPED and rows else tensor
    if unknown:
        examples = ", ".join(sorted(unknown)[:3])
        raise _format(f"{len(unknown)} tensor(s) HunyuanVideo 1.5 does not have (e.g. {examples})")
    converted_map = {}
    for module, entry in qmap.items():
        renamed = _rename_module(module)
        if renamed is None:
            raise _format(f"cannot map quantized module '{module}' to diffusers")
        converted_map[renamed] = entry
    return converted, converted_map


def model_class(config: dict):
    import diffusers

    return diffusers.HunyuanVideo15Transformer3DModel


#: (test on the config and the architecture's shape, what does not fit).
_MISMATCHES = (
    (lambda c, s: c["in_channels"] != 2 * c["out_channels"] + 1,
     "in_channels {in_channels} is not 2 x out_channels + 1 (HunyuanVideo 1.5 concatenates the condition latents "
     "and a mask): not a text/image-to-video transformer (the upsampler has 98)"),
    (lambda c, s: c.get("use_meanflow") and s.get("task_type") == "t2v",
     "a MeanFlow (step-distilled) transformer: diffusers' text-to-video pipeline passes no timestep_r; use it "
     "with hunyuan_1_5_i2v"),
)


def mismatch(config: dict, arch_shape: dict) -> str | None:
    for test, message in _MISMATCHES:
        if test(config, arch_shape):
            return message.format(**config)
    return None


