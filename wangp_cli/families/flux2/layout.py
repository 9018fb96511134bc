"""Flux 2 key names: BFL's original layout (WanGP's files: ``models/flux/model.py`` with ``flux2=True``: shared
``double_stream_modulation_img/txt`` and ``single_stream_modulation``, no biases) -> diffusers'
``Flux2Transformer2DModel``. Loading uses diffusers' ``convert_flux2_transformer_checkpoint_to_diffusers``
(``convert.py``); these tables write the tiny test files (the inverse)."""

from __future__ import annotations

from wangp_cli.families.flux.layout import swap_halves

#: Outside the blocks: (diffusers prefix, original prefix).
TOP = {
    "x_embedder.": "img_in.",
    "context_embedder.": "txt_in.",
    "time_guidance_embed.timestep_embedder.linear_1.": "time_in.in_layer.",
    "time_guidance_embed.timestep_embedder.linear_2.": "time_in.out_layer.",
    "time_guidance_embed.guidance_embedder.linear_1.": "guidance_in.in_layer.",
    "time_guidance_embed.guidance_embedder.linear_2.": "guidance_in.out_layer.",
    "double_stream_modulation_img.linear.": "double_stream_modulation_img.lin.",
    "double_stream_modulation_txt.linear.": "double_stream_modulation_txt.lin.",
    "single_stream_modulation.linear.": "single_stream_modulation.lin.",
    "proj_out.": "final_layer.linear.",
    "norm_out.linear.": "final_layer.adaLN_modulation.1.",  # halves swapped
}
DOUBLE = {
    "attn.norm_q.weight": "img_attn.norm.query_norm.scale",
    "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
    "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
    "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
    "attn.to_out.0.": "img_attn.proj.",
    "attn.to_add_out.": "txt_attn.proj.",
    "ff.linear_in.": "img_mlp.0.",
    "ff.linear_out.": "img_mlp.2.",
    "ff_context.linear_in.": "txt_mlp.0.",
    "ff_context.linear_out.": "txt_mlp.2.",
}
SINGLE = {
    "attn.to_qkv_mlp_proj.": "linear1.",  # kept fused in diffusers' Flux 2 too
    "attn.to_out.": "linear2.",
    "attn.norm_q.weight": "norm.query_norm.scale",
    "attn.norm_k.weight": "norm.key_norm.scale",
}
#: Fused original Linears of a double block -> their diffusers parts in row order.
FUSED_DOUBLE = {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
                "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}
SWAPPED = "final_layer.adaLN_modulation.1."


def _rename(rest: str, table: dict, key: str) -> str:
    for new, old in table.items():
        if rest.startswith(new):
            return old + rest[len(new):]
    raise KeyError(f"no original Flux 2 name for diffusers key {key!r}")


def to_original(state: dict) -> dict:
    """A diffusers state dict in the original layout (double-block q, k, v fused back)."""
    import torch

    out: dict = {}
    fused: dict = {}
    for key, tensor in state.items():
        module, _, leaf = key.rpartition(".")
        if key.startswith("transformer_blocks."):
            index, _, rest = key[len("transformer_blocks."):].partition(".")
            inside = module[len("transformer_blocks.") + len(index) + 1:]
            original = next((name for name, parts in FUSED_DOUBLE.items() if inside in parts), None)
            if original:
                name = f"double_blocks.{index}.{original}.{leaf}"
                out.setdefault(name, None)
                fused.setdefault(name, {})[inside] = tensor
            else:
                out[f"double_blocks.{index}.{_rename(rest, DOUBLE, key)}"] = tensor
        elif key.startswith("single_transformer_blocks."):
            index, _, rest = key[len("single_transformer_blocks."):].partition(".")
            out[f"single_blocks.{index}.{_rename(rest, SINGLE, key)}"] = tensor
        else:
            name = _rename(key, TOP, key)
            out[name] = swap_halves(tensor) if name.startswith(SWAPPED) else tensor
    for name, pieces in fused.items():
        order = FUSED_DOUBLE[".".join(name.split(".")[2:4])]
        out[name] = torch.cat([pieces[part] for part in order], dim=0)
    return out
