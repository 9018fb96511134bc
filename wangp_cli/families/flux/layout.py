"""Flux 1 / Chroma key names: BFL's original layout (WanGP's files, ``models/flux/model.py`` and
``modules/layers.py``) <-> diffusers' ``FluxTransformer2DModel`` / ``ChromaTransformer2DModel``.

Written here rather than calling diffusers' ``convert_flux_transformer_checkpoint_to_diffusers`` /
``convert_chroma_transformer_checkpoint_to_diffusers``: those pop a fixed list of names and split ``linear1`` with
hard-coded sizes (hidden 3072, MLP ratio 4), so they take neither quanto ``._data``/``._scale`` pieces nor another
width; the test checks that these tables give the same names and shapes as diffusers' converters on the real
model's shapes. Tables are (diffusers prefix, original prefix); the fused Linears are listed apart."""

from __future__ import annotations

#: Outside the blocks.
TOP = {
    "time_text_embed.timestep_embedder.linear_1.": "time_in.in_layer.",
    "time_text_embed.timestep_embedder.linear_2.": "time_in.out_layer.",
    "time_text_embed.text_embedder.linear_1.": "vector_in.in_layer.",
    "time_text_embed.text_embedder.linear_2.": "vector_in.out_layer.",
    "time_text_embed.guidance_embedder.linear_1.": "guidance_in.in_layer.",
    "time_text_embed.guidance_embedder.linear_2.": "guidance_in.out_layer.",
    "context_embedder.": "txt_in.",
    "x_embedder.": "img_in.",
    "proj_out.": "final_layer.linear.",
    "norm_out.linear.": "final_layer.adaLN_modulation.1.",  # (shift, scale) in BFL, (scale, shift) in diffusers
    "distilled_guidance_layer.in_proj.": "distilled_guidance_layer.in_proj.",
    "distilled_guidance_layer.out_proj.": "distilled_guidance_layer.out_proj.",
}
#: Chroma's approximator: ``distilled_guidance_layer.layers.N`` / ``.norms.N`` (RMSNorm ``scale``).
APPROXIMATOR = {"linear_1.": "in_layer.", "linear_2.": "out_layer.", "weight": "scale"}
#: Inside ``transformer_blocks.N`` <- ``double_blocks.N``.
DOUBLE = {
    "norm1.linear.": "img_mod.lin.",
    "norm1_context.linear.": "txt_mod.lin.",
    "attn.norm_q.weight": "img_attn.norm.query_norm.scale",
    "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
    "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
    "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
    "attn.to_out.0.": "img_attn.proj.",
    "attn.to_add_out.": "txt_attn.proj.",
    "ff.net.0.proj.": "img_mlp.0.",
    "ff.net.2.": "img_mlp.2.",
    "ff_context.net.0.proj.": "txt_mlp.0.",
    "ff_context.net.2.": "txt_mlp.2.",
}
#: Inside ``single_transformer_blocks.N`` <- ``single_blocks.N``.
SINGLE = {
    "norm.linear.": "modulation.lin.",
    "attn.norm_q.weight": "norm.query_norm.scale",
    "attn.norm_k.weight": "norm.key_norm.scale",
    "proj_out.": "linear2.",
}
#: Fused original Linears (name inside the block) -> their diffusers parts in row order (None: the MLP rest).
FUSED_DOUBLE = {"img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
                "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}
FUSED_SINGLE = {"linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")}
#: The modulation whose two halves are swapped between the layouts.
SWAPPED = "final_layer.adaLN_modulation.1."

_BLOCKS = (("transformer_blocks.", "double_blocks.", DOUBLE, FUSED_DOUBLE),
           ("single_transformer_blocks.", "single_blocks.", SINGLE, FUSED_SINGLE))


def _renamed(rest: str, table: dict, inverse: bool) -> str | None:
    for new, old in table.items():
        source, target = (old, new) if inverse else (new, old)
        if rest.startswith(source):
            return target + rest[len(source):]
    return None


def to_diffusers_name(name: str) -> str | None:
    """The diffusers name of an original-layout tensor (or module) name that is not a fused Linear's (quanto
    suffixes kept: ``img_mod.lin.weight._data``); None when the name is not Flux's."""
    for new_prefix, old_prefix, table, _ in _BLOCKS:
        if name.startswith(old_prefix):
            index, _, rest = name[len(old_prefix):].partition(".")
            renamed = _renamed(rest, table, inverse=True)
            return f"{new_prefix}{index}.{renamed}" if renamed is not None and index.isdigit() else None
    for kind in ("layers", "norms"):
        prefix = f"distilled_guidance_layer.{kind}."
        if name.startswith(prefix):
            index, _, rest = name[len(prefix):].partition(".")
            renamed = _renamed(rest, APPROXIMATOR, inverse=True)
            return f"{prefix}{index}.{renamed}" if renamed is not None else None
    return _renamed(name, TOP, inverse=True)


def to_original_name(name: str) -> str:
    """The original-layout name of a diffusers tensor name that is not part of a fused Linear."""
    for new_prefix, old_prefix, table, _ in _BLOCKS:
        if name.startswith(new_prefix):
            index, _, rest = name[len(new_prefix):].partition(".")
            renamed = _renamed(rest, table, inverse=False)
            if renamed is None:
                raise KeyError(f"no original Flux name for diffusers key {name!r}")
            return f"{old_prefix}{index}.{renamed}"
    for kind in ("layers", "norms"):
        prefix = f"distilled_guidance_layer.{kind}."
        if name.startswith(prefix):
            index, _, rest = name[len(prefix):].partition(".")
            return f"{prefix}{index}.{_renamed(rest, APPROXIMATOR, inverse=False)}"
    renamed = _renamed(name, TOP, inverse=False)
    if renamed is None:
        raise KeyError(f"no original Flux name for diffusers key {name!r}")
    return renamed


def swap_halves(tensor):
    """(a, b) -> (b, a) along the rows: BFL's final modulation is (shift, scale), diffusers' (scale, shift)."""
    import torch

    first, second = tensor.chunk(2, dim=0)
    return torch.cat([second, first], dim=0)


def to_original(state: dict) -> dict:
    """A diffusers state dict in the original layout (q, k, v (and the MLP input) fused back in their order)."""
    import torch

    out: dict = {}
    fused: dict = {}  # original name -> {diffusers part: tensor}
    for key, tensor in state.items():
        module, _, leaf = key.rpartition(".")
        placed = False
        for new_prefix, old_prefix, _, fused_table in _BLOCKS:
            if not key.startswith(new_prefix):
                continue
            index, _, rest = module[len(new_prefix):].partition(".")
            for original, parts in fused_table.items():
                if rest in parts:
                    name = f"{old_prefix}{index}.{original}.{leaf}"
                    out.setdefault(name, None)
                    fused.setdefault(name, {})[rest] = tensor
                    placed = True
        if placed:
            continue
        name = to_original_name(key)
        out[name] = swap_halves(tensor) if name.startswith(SWAPPED) else tensor
    for name, pieces in fused.items():
        block = name.split(".")[2] if name.startswith("single_blocks.") else ".".join(name.split(".")[2:4])
        order = {**FUSED_DOUBLE, **FUSED_SINGLE}[block]
        if set(pieces) != set(order):
            raise KeyError(f"incomplete fused tensor {name!r}: have {sorted(pieces)}")
        out[name] = torch.cat([pieces[part] for part in order], dim=0)
    return out
