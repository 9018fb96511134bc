"""Wan pipelines: the VAE and CLIP image encoder in fp32, WanGP's sampler settings, the call's guidance."""

from __future__ import annotations

from pathlib import Path


def parts(request, components: Path) -> dict:
    """Wan's VAE and CLIP image encoder loaded in fp32 (the diffusers docs' recipe: casting them up after a 16-bit
    load would round their fp32 weights first)."""
    import torch
    from diffusers import AutoencoderKLWan

    loaded = {"vae": AutoencoderKLWan.from_pretrained(str(components), subfolder="vae", torch_dtype=torch.float32,
                                                      local_files_only=True)}
    if request.io_class == "i2v" and (components / "image_encoder").is_dir():
        from transformers import CLIPVisionModel

        loaded["image_encoder"] = CLIPVisionModel.from_pretrained(str(components), subfolder="image_encoder",
                                                                  torch_dtype=torch.float32, local_files_only=True)
    return loaded


def scheduler(pipe, request) -> None:
    """WanGP's ``flow_shift`` with its ``sample_solver``: UniPC (the default), or ``euler``."""
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    shift = float(request.settings.get("flow_shift", 5.0))
    if request.settings.get("sample_solver") == "euler":
        pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, shift=shift)
    else:
        pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=shift)


def call_arguments(request) -> dict:
    """Classifier-free guidance at ``guidance_scale`` with the negative prompt."""
    settings = request.settings
    return {"negative_prompt": settings.get("negative_prompt") or None,
            "guidance_scale": float(settings.get("guidance_scale", 5.0))}
