"""Wan pipelines: the VAE and CLIP image encoder in fp32, WanGP's sampler settings, the transformer switch of
Wan 2.2 A14B, the call's guidance."""

from __future__ import annotations

from pathlib import Path

#: Architectures whose pipeline takes timesteps per latent patch (Wan 2.2 TI2V 5B: ``expand_timesteps``).
EXPAND_TIMESTEPS = ("ti2v_2_2",)


def parts(request, components: Path) -> dict:
    """Wan's VAE and CLIP image encoder loaded in fp32 (the diffusers docs' recipe: casting them up after a 16-bit
    load would round their fp32 weights first); TI2V 5B's ``expand_timesteps``."""
    import torch
    from diffusers import AutoencoderKLWan

    loaded = {"vae": AutoencoderKLWan.from_pretrained(str(components), subfolder="vae", torch_dtype=torch.float32,
                                                      local_files_only=True)}
    if request.io_class == "i2v" and (components / "image_encoder").is_dir():
        from transformers import CLIPVisionModel

        loaded["image_encoder"] = CLIPVisionModel.from_pretrained(str(components), subfolder="image_encoder",
                                                                  torch_dtype=torch.float32, local_files_only=True)
    if request.architecture in EXPAND_TIMESTEPS:
        loaded["expand_timesteps"] = True
    return loaded


def switch_threshold(settings: dict) -> float:
    """The timestep (0-1000) below which the low-noise transformer runs: ``switch_threshold`` with 2 guidance
    phases; 0 (never) with 1, as WanGP only switches in phase 2."""
    phases = settings.get("guidance_phases", 1)
    return float(settings.get("switch_threshold", 0) or 0) if isinstance(phases, int) and phases >= 2 else 0.0


#: Added to the boundary so that diffusers' ``t < boundary`` is WanGP's ``t <= switch_threshold``: 0.001 on the
#: 0-1000 timestep scale, above float32's resolution there (6e-5), far below the gap between two steps.
BOUNDARY_TIE = 1e-6


def scheduler(pipe, request) -> None:
    """WanGP's ``flow_shift`` with its ``sample_solver``: UniPC (the default), or ``euler``; with two transformers,
    ``boundary_ratio = switch_threshold / 1000``, a hair above it: diffusers runs ``transformer_2`` where
    ``t < boundary``, WanGP where ``t <= switch_threshold`` (a timestep equal to the threshold is low-noise's)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    shift = float(request.settings.get("flow_shift", 5.0))
    if request.settings.get("sample_solver") == "euler":
        pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, shift=shift)
    else:
        pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=shift)
    if getattr(pipe, "transformer_2", None) is not None:
        pipe.register_to_config(boundary_ratio=switch_threshold(request.settings) / 1000 + BOUNDARY_TIE)


def call_arguments(request) -> dict:
    """Classifier-free guidance at ``guidance_scale`` with the negative prompt; two transformers: the low-noise
    phase at ``guidance2_scale`` (2 phases; with 1 the switch never happens)."""
    from wangp_cli.families.wan import DUAL

    settings = request.settings
    arguments = {"negative_prompt": settings.get("negative_prompt") or None,
                 "guidance_scale": float(settings.get("guidance_scale", 5.0))}
    if request.architecture in DUAL:
        arguments["guidance_scale_2"] = float(settings.get("guidance2_scale", arguments["guidance_scale"]))
    return arguments
