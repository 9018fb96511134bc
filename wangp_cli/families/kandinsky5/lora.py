"""Kandinsky 5 LoRAs: the folder WanGP reads (``loras/<lora_dir>``: ``k5_lite_t2v``, ``k5_pro_i2v``, ...), and the
formats users have, in diffusers' names.

WanGP's module names are diffusers' (see ``convert``), so every format comes down to a prefix and the pair names:
the original layout as trainers write it (``[diffusion_model.|model.]visual_transformer_blocks.N.self_attention.
to_query.lora_down/lora_up`` or ``lora_A/lora_B``, ``.alpha``, full ``.diff`` / ``.diff_b`` deltas), kohya
(``lora_unet_visual_transformer_blocks_N_self_attention_to_query``) and diffusers/PEFT (``transformer.`` prefix,
what ``KandinskyLoraLoaderMixin`` reads). Our own conversion: diffusers has no Kandinsky LoRA converter (its loader
takes PEFT names only), and the names need none; ``alpha / rank`` is folded into ``lora_B`` as diffusers' other
converters do.
"""

from __future__ import annotations

import re

from wangp_cli.core.errors import WangpError
from wangp_cli.generate.loras import LoraWeights

_PREFIXES = ("transformer.", "base_model.model.", "model.diffusion_model.", "diffusion_model.", "model.")
#: kohya module names -> the dotted ones (the underscores inside module names make a plain replace wrong).
_KOHYA = re.compile(r"^(text_transformer_blocks|visual_transformer_blocks)_(\d+)_"
                    r"(self_attention|cross_attention|feed_forward|text_modulation|visual_modulation)_"
                    r"(to_query|to_key|to_value|out_layer|in_layer)$")
_PAIRS = {"lora_down": "lora_A", "lora_up": "lora_B", "lora_A": "lora_A", "lora_B": "lora_B"}


def _bare(key: str) -> str:
    return next((key[len(p):] for p in _PREFIXES if key.startswith(p)), key)


def _kohya(key: str, name: str) -> str:
    module, dot, rest = key[len("lora_unet_"):].partition(".")
    match = _KOHYA.match(module)
    if not match:
        raise WangpError(f"LoRA '{name}': key '{key}' names no Kandinsky 5 module", code="lora",
                         hint="is it a LoRA for this model's family?")
    return f"{match[1]}.{match[2]}.{match[3]}.{match[4]}{dot}{rest}"


def lora_format(state: dict) -> str:
    if any(key.startswith("lora_unet_") for key in state):
        return "kohya"
    if any(key.startswith(("transformer.", "base_model.model.")) for key in state):
        return "diffusers"
    return "kandinsky5"


def to_diffusers(state: dict, name: str = "lora") -> LoraWeights:
    """A Kandinsky 5 LoRA in any of the formats -> :class:`LoraWeights` (PEFT pairs with alpha folded in, and the
    full deltas, added by the runner as WanGP's mmgp adds them)."""
    kind = lora_format(state)
    modules: dict = {}  # module -> {"lora_A"/"lora_B"/"alpha": tensor}
    deltas: dict = {}
    for key, tensor in state.items():
        bare = _kohya(key, name) if kind == "kohya" else _bare(key).replace(".default.", ".")
        module, _, leaf = bare.rpartition(".")
        if leaf in ("diff", "diff_b"):
            deltas[f"{module}.{'weight' if leaf == 'diff' else 'bias'}"] = tensor
        elif leaf == "alpha":
            modules.setdefault(module, {})["alpha"] = tensor
        elif leaf == "weight" and module.rpartition(".")[2] in _PAIRS:
            owner, _, pair = module.rpartition(".")
            modules.setdefault(owner, {})[_PAIRS[pair]] = tensor
        else:
            raise WangpError(f"LoRA '{name}': key '{key}' is no LoRA pair, alpha or diff", code="lora",
                             hint="is it a LoRA for this model's family?")
    adapter = {}
    for module, parts in modules.items():
        if "lora_A" not in parts or "lora_B" not in parts:
            raise WangpError(f"LoRA '{name}': module '{module}' lacks its {'up' if 'lora_A' in parts else 'down'} "
                             "matrix", code="lora")
        down, up = parts["lora_A"], parts["lora_B"]
        if "alpha" in parts:
            up = (up.float() * (float(parts["alpha"]) / down.shape[0])).to(up.dtype)
        adapter[f"transformer.{module}.lora_A.weight"] = down
        adapter[f"transformer.{module}.lora_B.weight"] = up
    return LoraWeights(name, kind, adapter=adapter, deltas=deltas)


def folder(catalog, definition, arch) -> str:
    """``loras/<lora_dir>``: WanGP 12 keeps one folder per architecture (``k5_lite_t2v``, ...)."""
    from wangp_cli.core.models import lora_dir

    return f"loras/{lora_dir(catalog, definition) or arch.id}"
