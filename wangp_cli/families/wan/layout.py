"""The diffusers -> WanGP original key names of a Wan transformer: the exact inverse of diffusers'
``convert_wan_transformer_to_diffusers`` (used by the tiny models; LoRA key conversion may reuse the tables)."""

from __future__ import annotations

_WAN_TOP = {
    "condition_embedder.time_embedder.linear_1.": "time_embedding.0.",
    "condition_embedder.time_embedder.linear_2.": "time_embedding.2.",
    "condition_embedder.time_proj.": "time_projection.1.",
    "condition_embedder.text_embedder.linear_1.": "text_embedding.0.",
    "condition_embedder.text_embedder.linear_2.": "text_embedding.2.",
    "condition_embedder.image_embedder.norm1.": "img_emb.proj.0.",
    "condition_embedder.image_embedder.ff.net.0.proj.": "img_emb.proj.1.",
    "condition_embedder.image_embedder.ff.net.2.": "img_emb.proj.3.",
    "condition_embedder.image_embedder.norm2.": "img_emb.proj.4.",
    "condition_embedder.image_embedder.pos_embed": "img_emb.emb_pos",
    "patch_embedding.": "patch_embedding.",
    "vace_patch_embedding.": "vace_patch_embedding.",
    "proj_out.": "head.head.",
}
_WAN_ATTN = {"to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "o.", "norm_q.": "norm_q.",
             "norm_k.": "norm_k.", "add_k_proj.": "k_img.", "add_v_proj.": "v_img.", "norm_added_k.": "norm_k_img."}
_WAN_BLOCK = {
    "norm1.": "norm1.",
    "norm2.": "norm3.",  # diffusers' norm2 (the affine cross-attention norm) is the original norm3
    "norm3.": "norm2.",
    "ffn.net.0.proj.": "ffn.0.",
    "ffn.net.2.": "ffn.2.",
    "proj_in.": "before_proj.",  # VACE blocks
    "proj_out.": "after_proj.",
}


def original_key(key: str) -> str:
    """The original name of a diffusers key (KeyError when it has none)."""
    if key == "scale_shift_table":
        return "head.modulation"
    parts = key.split(".")
    if parts[0] in ("blocks", "vace_blocks") and len(parts) > 2 and parts[1].isdigit():
        prefix, rest = ".".join(parts[:2]) + ".", ".".join(parts[2:])
        if rest == "scale_shift_table":
            return prefix + "modulation"
        if rest.startswith(("attn1.", "attn2.")):
            attention = "self_attn." if rest.startswith("attn1.") else "cross_attn."
            inner = rest[len("attn1."):]
            for new, old in _WAN_ATTN.items():
                if inner.startswith(new):
                    return prefix + attention + old + inner[len(new):]
        for new, old in _WAN_BLOCK.items():
            if rest.startswith(new):
                return prefix + old + rest[len(new):]
    else:
        for new, old in _WAN_TOP.items():
            if key.startswith(new):
                return old + key[len(new):]
    raise KeyError(f"no original Wan name for diffusers key {key!r}")



def to_original(state: dict) -> dict:
    """A diffusers state dict renamed to the original layout (same tensors)."""
    return {original_key(key): tensor for key, tensor in state.items()}
