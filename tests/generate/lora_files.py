"""LoRA files for the end-to-end LoRA tests: random pairs sized for a tiny model, written in WanGP's original Wan
layout (bf16, with ``.alpha``), and the same LoRA merged into the weights by hand as the reference."""

from __future__ import annotations

import copy

import torch
from safetensors.torch import save_file


def random_pairs(model, targets: dict, rank: int, size: float, seed: int = 7) -> dict:
    """original module name -> (down, up), random, for the diffusers modules ``targets`` names."""
    generator = torch.Generator().manual_seed(seed)
    return {original: (torch.randn(rank, model.get_submodule(module).in_features, generator=generator) * size,
                       torch.randn(model.get_submodule(module).out_features, rank, generator=generator) * size)
            for original, module in targets.items()}


def write_wan_lora(path, pairs: dict, alpha: float):
    """``diffusion_model.<module>.lora_down/lora_up.weight`` (bf16) and ``.alpha``: the layout WanGP users have."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for original, (down, up) in pairs.items():
        tensors[f"diffusion_model.{original}.lora_down.weight"] = down.to(torch.bfloat16)
        tensors[f"diffusion_model.{original}.lora_up.weight"] = up.to(torch.bfloat16)
        tensors[f"diffusion_model.{original}.alpha"] = torch.tensor(alpha)
    save_file(tensors, str(path))
    return path


def merged_by_hand(model, pairs: dict, targets: dict, m: float, scale: float):
    """A copy of ``model`` with W + m·scale·up·down (the file's bf16 pairs) in each targeted module."""
    merged = copy.deepcopy(model)
    if m:
        with torch.no_grad():
            for original, (down, up) in pairs.items():
                weight = merged.get_submodule(targets[original]).weight
                weight += m * scale * (up.to(torch.bfloat16).float() @ down.to(torch.bfloat16).float())
    return merged
