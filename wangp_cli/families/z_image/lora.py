"""Z-Image LoRAs: the folder WanGP reads (``loras/z_image``) and the formats users have, in diffusers' names.

WanGP's module names are diffusers' (see ``convert``). Taken: WanGP / diffusers names (``layers.N.attention.to_q``,
``[diffusion_model.|transformer.]`` prefixes, ``lora_down/lora_up`` or ``lora_A/lora_B``, ``.alpha``, PEFT's
``.default.``, trainers' ``.lora.down``), the original layout's names (fused ``attention.qkv`` / ``to_qkv``,
``attention.out``, ``x_embedder``, ``final_layer``), kohya (``lora_unet_layers_0_attention_to_q``), and full deltas
(``.diff`` / ``.diff_b``, added as WanGP's mmgp adds them). The pairs go through diffusers' own converter
(``ZImageLoraLoaderMixin.lora_state_dict``: kohya names, ``.out``, alpha folded in); a fused qkv pair is split here
first (the shared down matrix, the up matrix's rows per part: exactly the same delta), as WanGP's fused split map
does, since diffusers splits it only in one trainer's dotted form.
"""

from __future__ import annotations

from wangp_cli.core.errors import WangpError
from wangp_cli.generate.loras import LoraWeights

_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "base_model.model.")
#: Original-layout module names -> WanGP's / diffusers' (WanGP's ``conv_state_dict``).
_RENAMES = (("x_embedder.", "all_x_embedder.2-1."), ("final_layer.", "all_final_layer.2-1."),
            (".attention.out.", ".attention.to_out.0."), (".attention.q_norm.", ".attention.norm_q."),
            (".attention.k_norm.", ".attention.norm_k."))
_FUSED = (".attention.qkv.", ".attention.to_qkv.")
_UPS = (".lora_up.weight",)


def _bare(key: str) -> str:
    key = next((key[len(p):] for p in _PREFIXES if key.startswith(p)), key)
    # one pair naming for diffusers' converter (it takes lora_down/up or lora_A/B, not both in one file)
    for other, ours in ((".default.", "."), (".lora.down.", ".lora_down."), (".lora.up.", ".lora_up."),
                        (".lora_A.", ".lora_down."), (".lora_B.", ".lora_up.")):
        key = key.replace(other, ours)
    if not key.startswith(("all_x_embedder.", "all_final_layer.")):
        for original, ours in _RENAMES:
            key = key.replace(original, ours) if original.startswith(".") or key.startswith(original) else key
    return key


def _split_fused(state: dict) -> dict:
    """``attention.qkv`` / ``to_qkv`` pairs -> ``to_q`` / ``to_k`` / ``to_v`` (down and alpha shared, up by rows)."""
    out = {}
    for key, tensor in state.items():
        fused = next((f for f in _FUSED if f in key), None)
        if fused is None:
            out[key] = tensor
            continue
        before, _, leaf = key.partition(fused)
        parts = [f"{before}.attention.to_{x}.{leaf}" for x in "qkv"]
        if key.endswith(_UPS):
            if tensor.shape[0] % 3:
                raise WangpError(f"LoRA key '{key}': {tensor.shape[0]} rows do not split into q, k, v", code="lora")
            out.update(zip(parts, tensor.chunk(3, dim=0)))
        elif leaf in ("diff", "diff_b"):
            out.update(zip(parts, tensor.chunk(3, dim=0)))
        else:
            out.update((part, tensor) for part in parts)
    return out


def to_diffusers(state: dict, name: str = "lora") -> LoraWeights:
    """A Z-Image LoRA in any of the formats -> :class:`LoraWeights` (PEFT pairs with alpha folded in; deltas)."""
    from diffusers.loaders import ZImageLoraLoaderMixin

    kind = "kohya" if any(k.startswith("lora_unet_") for k in state) else (
        "diffusers" if any(k.startswith(("transformer.", "base_model.model.")) for k in state) else "z_image")
    if kind != "kohya":
        state = _split_fused({_bare(k): v for k, v in state.items()})
    deltas = {}
    for key in [k for k in state if k.endswith((".diff", ".diff_b"))]:
        module, _, suffix = key.rpartition(".")
        deltas[f"{module}.{'weight' if suffix == 'diff' else 'bias'}"] = state.pop(key)
    adapter = {}
    if state:
        prefix = "" if kind == "kohya" else "diffusion_model."  # diffusers' converter runs on a prefixed file
        try:
            adapter = ZImageLoraLoaderMixin.lora_state_dict({prefix + k: v for k, v in state.items()})
        except (ValueError, KeyError) as exc:
            raise WangpError(f"LoRA '{name}' is not a Z-Image LoRA ({type(exc).__name__}: {str(exc)[:120]})",
                             code="lora", hint="is it a LoRA for this model's family?") from None
        if isinstance(adapter, tuple):
            adapter = adapter[0]
    return LoraWeights(name, kind, adapter=dict(adapter), deltas=deltas)


def folder(catalog, definition, arch) -> str:
    """``loras/<lora_dir>``: WanGP 12 reads ``loras/z_image`` for every Z-Image type."""
    from wangp_cli.core.models import lora_dir

    return f"loras/{lora_dir(catalog, definition) or 'z_image'}"
