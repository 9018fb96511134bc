"""The diffusers -> WanGP original key names of a HunyuanVideo transformer: the exact inverse of diffusers'
``convert_hunyuan_video_transformer_to_diffusers`` (q, k, v fused back into ``*_qkv`` / ``linear1``, the final
modulation's shift/scale order restored)."""

from __future__ import annotations

_HY_TOP = {
    "x_embedder.": "img_in.",
    "context_embedder.time_text_embed.timestep_embedder.linear_1.": "txt_in.t_embedder.mlp.0.",
    "context_embedder.time_text_embed.timestep_embedder.linear_2.": "txt_in.t_embedder.mlp.2.",
    "context_embedder.time_text_embed.text_embedder.linear_1.": "txt_in.c_embedder.linear_1.",
    "context_embedder.time_text_embed.text_embedder.linear_2.": "txt_in.c_embedder.linear_2.",
    "context_embedder.proj_in.": "txt_in.input_embedder.",
    "time_text_embed.timestep_embedder.linear_1.": "time_in.mlp.0.",
    "time_text_embed.timestep_embedder.linear_2.": "time_in.mlp.2.",
    "time_text_embed.text_embedder.linear_1.": "vector_in.in_layer.",
    "time_text_embed.text_embedder.linear_2.": "vector_in.out_layer.",
    "time_text_embed.guidance_embedder.linear_1.": "guidance_in.mlp.0.",
    "time_text_embed.guidance_embedder.linear_2.": "guidance_in.mlp.2.",
    "norm_out.linear.": "final_layer.adaLN_modulation.1.",  # shift/scale swapped, see to_original
    "proj_out.": "final_layer.linear.",
}
_HY_REFINER = {"norm1.": "norm1.", "norm2.": "norm2.", "attn.to_out.0.": "self_attn_proj.",
               "ff.net.0.proj.": "mlp.fc1.", "ff.net.2.": "mlp.fc2.", "norm_out.linear.": "adaLN_modulation.1."}
_HY_DOUBLE = {
    "norm1.linear.": "img_mod.linear.",
    "norm1_context.linear.": "txt_mod.linear.",
    "attn.norm_q.": "img_attn_q_norm.",
    "attn.norm_k.": "img_attn_k_norm.",
    "attn.norm_added_q.": "txt_attn_q_norm.",
    "attn.norm_added_k.": "txt_attn_k_norm.",
    "attn.to_out.0.": "img_attn_proj.",
    "attn.to_add_out.": "txt_attn_proj.",
    "ff.net.0.proj.": "img_mlp.fc1.",
    "ff.net.2.": "img_mlp.fc2.",
    "ff_context.net.0.proj.": "txt_mlp.fc1.",
    "ff_context.net.2.": "txt_mlp.fc2.",
}
_HY_SINGLE = {"attn.norm_q.": "q_norm.", "attn.norm_k.": "k_norm.", "norm.linear.": "modulation.linear.",
              "proj_out.": "linear2."}
_REFINER = "context_embedder.token_refiner.refiner_blocks."


def _rename(rest: str, table: dict, key: str) -> str:
    for new, old in table.items():
        if rest.startswith(new):
            return old + rest[len(new):]
    raise KeyError(f"no original HunyuanVideo name for diffusers key {key!r}")


def to_original(state: dict) -> dict:
    """A diffusers state dict in the original layout (fused tensors concatenated)."""
    import torch

    out: dict = {}
    fused: dict = {}  # original name -> {part: tensor}, placed where its first part appears

    def fuse(name: str, part: str, tensor) -> None:
        if name not in fused:
            fused[name] = {}
            out[name] = None
        fused[name][part] = tensor

    for key, tensor in state.items():
        parts = key.split(".")
        leaf = parts[-1]
        if key.startswith(_REFINER):
            index = key[len(_REFINER):].split(".")[0]
            prefix = f"txt_in.individual_token_refiner.blocks.{index}."
            rest = key[len(_REFINER) + len(index) + 1:]
            if rest.split(".")[:2] in (["attn", "to_q"], ["attn", "to_k"], ["attn", "to_v"]):
                fuse(f"{prefix}self_attn_qkv.{leaf}", rest.split(".")[1], tensor)
            else:
                out[prefix + _rename(rest, _HY_REFINER, key)] = tensor
        elif parts[0] == "transformer_blocks":
            prefix, rest = f"double_blocks.{parts[1]}.", ".".join(parts[2:])
            if parts[2:4] in (["attn", "to_q"], ["attn", "to_k"], ["attn", "to_v"]):
                fuse(f"{prefix}img_attn_qkv.{leaf}", parts[3], tensor)
            elif parts[2:4] in (["attn", "add_q_proj"], ["attn", "add_k_proj"], ["attn", "add_v_proj"]):
                fuse(f"{prefix}txt_attn_qkv.{leaf}", parts[3], tensor)
            else:
                out[prefix + _rename(rest, _HY_DOUBLE, key)] = tensor
        elif parts[0] == "single_transformer_blocks":
            prefix, rest = f"single_blocks.{parts[1]}.", ".".join(parts[2:])
            if parts[2:4] in (["attn", "to_q"], ["attn", "to_k"], ["attn", "to_v"]) or parts[2] == "proj_mlp":
                fuse(f"{prefix}linear1.{leaf}", parts[3] if parts[2] == "attn" else "mlp", tensor)
            else:
                out[prefix + _rename(rest, _HY_SINGLE, key)] = tensor
        else:
            name = _rename(key, _HY_TOP, key)
            if name.startswith("final_layer.adaLN_modulation.1."):
                scale, shift = tensor.chunk(2, dim=0)  # diffusers: [scale, shift]; original: [shift, scale]
                tensor = torch.cat([shift, scale], dim=0)
            out[name] = tensor
    orders = {"qkv": ("to_q", "to_k", "to_v"), "add": ("add_q_proj", "add_k_proj", "add_v_proj"),
              "linear1": ("to_q", "to_k", "to_v", "mlp")}
    for name, pieces in fused.items():
        order = orders["linear1"] if ".linear1." in name else orders["add"] if "txt_attn" in name else orders["qkv"]
        if set(pieces) != set(order):
            raise KeyError(f"incomplete fused tensor {name!r}: have {sorted(pieces)}")
        out[name] = torch.cat([pieces[p] for p in order], dim=0)
    return out

