"""Wan LoRAs: the folder WanGP keeps them in, and the three file formats WanGP users have, in diffusers' names.

Formats: the original layout (``diffusion_model.blocks.N.self_attn.q.lora_down/lora_up`` or ``lora_A/lora_B``,
``.alpha``, full ``.diff`` / ``.diff_b`` deltas; with or without the ``diffusion_model.`` prefix), kohya/musubi
(``lora_unet_blocks_N_self_attn_q``) and diffusers/PEFT (``transformer.blocks.N.attn1.to_q.lora_A``).
"""

from __future__ import annotations

import re

from wangp_cli.core.errors import WangpError
from wangp_cli.generate.loras import LoraWeights

#: July (WanGP 7): ``get_lora_dir`` -- i2v models read ``loras_i2v/``, the others ``loras/`` (v12: the registry's
#: ``lora_dir`` under ``loras/``).
JULY_FOLDERS = {"i2v": "loras_i2v"}
JULY_DEFAULT = "loras"
#: kohya / musubi module names (``lora_unet_blocks_0_self_attn_q``) -> the original Wan layout.
_KOHYA = (
    (re.compile(r"^blocks_(\d+)_(self_attn|cross_attn)_(q|k|v|o|k_img|v_img|norm_q|norm_k|norm_k_img)$"),
     r"blocks.\1.\2.\3"),
    (re.compile(r"^blocks_(\d+)_ffn_(\d+)$"), r"blocks.\1.ffn.\2"),
    (re.compile(r"^blocks_(\d+)_(norm3|modulation)$"), r"blocks.\1.\2"),
    (re.compile(r"^(text_embedding|time_embedding|time_projection)_(\d+)$"), r"\1.\2"),
    (re.compile(r"^img_emb_proj_(\d+)$"), r"img_emb.proj.\1"),
    (re.compile(r"^head_(head|modulation)$"), r"head.\1"),
)
#: Key prefixes of the original layout as trainers write it (ComfyUI's ``diffusion_model.``, ``model.``).
_ORIGINAL_PREFIXES = ("model.diffusion_model.", "diffusion_model.")
_DIFFUSERS_PREFIXES = ("transformer.", "base_model.model.")


def july_folder(io_class: str, home, model_id: str) -> str:
    """WanGP 7's LoRA folder: ``loras_i2v`` or ``loras``, its ``1.3B`` / ``14B`` subfolder when that exists."""
    root = JULY_FOLDERS.get(io_class, JULY_DEFAULT)
    sub = f"{root}/{'1.3B' if '1.3B' in model_id else '14B'}"
    return sub if (home.root / sub).is_dir() else root


def _kohya_to_original(state: dict) -> dict:
    """kohya/musubi names -> the original layout. Our own renaming, because diffusers' musubi converter needs
    every module of every block (a KeyError on the many LoRAs that train a subset) and ignores ``diff`` /
    ``diff_b``; renamed, the file goes through the same diffusers Wan converter as original-layout files."""
    renamed = {}
    for key, tensor in state.items():
        module, dot, rest = key[len("lora_unet_"):].partition(".")
        for pattern, replacement in _KOHYA:
            if pattern.match(module):
                module = pattern.sub(replacement, module)
                break
        else:
            raise WangpError(f"LoRA key '{key}' names no Wan module", code="lora",
                             hint="is it a LoRA for this model's family?")
        renamed[f"diffusion_model.{module}{dot}{rest}"] = tensor
    return renamed


def lora_format(state: dict) -> str:
    """"kohya", "diffusers" or "wan" (the original layout, with or without its ``diffusion_model.`` prefix)."""
    if any(key.startswith("lora_unet_") for key in state):
        return "kohya"
    if any(key.startswith(_DIFFUSERS_PREFIXES) for key in state) or any(
            ".attn1." in key or ".attn2." in key for key in state):
        return "diffusers"
    return "wan"


def to_diffusers(state: dict, name: str = "lora") -> LoraWeights:
    """A Wan LoRA in any of the three formats -> :class:`LoraWeights` (diffusers' names).

    The LoRA pairs go through diffusers' own ``WanLoraLoaderMixin.lora_state_dict`` (its original-layout converter
    folds ``alpha / rank`` into the pairs). The full deltas (``X.diff`` weight, ``X.diff_b`` bias) are taken out
    first and renamed with diffusers' transformer key converter, because diffusers' LoRA converter drops ``diff``
    weights and norm deltas ("not supported") and maps ``diff_b`` only as a PEFT bias of modules that also have a
    pair; WanGP (mmgp) adds every delta times the multiplier, and so do we.
    """
    from diffusers.loaders import WanLoraLoaderMixin
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    kind = lora_format(state)
    if kind == "diffusers":
        adapter = {}
        for key, tensor in state.items():
            bare = next((key[len(p):] for p in _DIFFUSERS_PREFIXES if key.startswith(p)), key)
            adapter["transformer." + bare.replace(".default.", ".")] = tensor
        return LoraWeights(name, kind, adapter=adapter)
    if kind == "kohya":
        state = _kohya_to_original(state)
    original = {next((key[len(p):] for p in _ORIGINAL_PREFIXES if key.startswith(p)), key): tensor
                for key, tensor in state.items()}
    deltas = {}
    for key in [k for k in original if k.endswith((".diff", ".diff_b"))]:
        module, _, suffix = key.rpartition(".")
        deltas[f"{module}.{'weight' if suffix == 'diff' else 'bias'}"] = original.pop(key)
    adapter = {}
    if original:
        try:
            adapter = WanLoraLoaderMixin.lora_state_dict({f"diffusion_model.{k}": v for k, v in original.items()})
        except (ValueError, KeyError) as exc:
            raise WangpError(f"LoRA '{name}' is not a Wan LoRA ({type(exc).__name__}: {str(exc)[:120]})",
                             code="lora", hint="is it a LoRA for this model's family?") from None
    if deltas:
        deltas = convert_wan_transformer_to_diffusers(deltas)
    return LoraWeights(name, kind, adapter=adapter, deltas=deltas)


def folder(catalog, definition, arch) -> str:
    """The LoRA folder (home-relative) WanGP reads for this definition: v12 ``loras/<lora_dir>``, July
    :func:`july_folder`."""
    from wangp_cli.core.models import lora_dir

    if catalog.target == "v12":
        return f"loras/{lora_dir(catalog, definition) or 'wan'}"
    return july_folder(arch.io_class, catalog.home, definition.id)
