"""Wan pipelines: the VAE and CLIP image encoder in fp32, WanGP's sampler settings, the transformer switch of
Wan 2.2 A14B, the call's guidance; the variants' call arguments (SkyReels-V2 DF's ``ar_step``, ChronoEdit's frames
and temporal reasoning) and Fun InP's end image."""

from __future__ import annotations

from pathlib import Path

#: Architectures whose pipeline takes timesteps per latent patch (Wan 2.2 TI2V 5B: ``expand_timesteps``).
EXPAND_TIMESTEPS = ("ti2v_2_2",)
#: SkyReels-V2 DF: ``causal_block_size`` of the asynchronous mode (WanGP's ``DTT2V.generate`` default, 1 when
#: synchronous).
SKY_DF_CAUSAL_BLOCK = 5


def fun_inp_pipeline():
    """``WanImageToVideoPipeline`` whose CLIP features are the start image's alone: WanGP conditions Fun InP on the
    start image's CLIP tokens with or without an end image (``any2video``: both images only for flf2v_720p), where
    diffusers encodes ``[image, last_image]``; the latents (both frames known, the mask) are the same."""
    from diffusers import WanImageToVideoPipeline

    global _FUN_INP_PIPELINE
    if _FUN_INP_PIPELINE is None:
        class WanFunInPPipeline(WanImageToVideoPipeline):
            def encode_image(self, image, device=None):
                start = image[0] if isinstance(image, list) and len(image) == 2 else image
                return super().encode_image(start, device)

        _FUN_INP_PIPELINE = WanFunInPPipeline
    return _FUN_INP_PIPELINE


_FUN_INP_PIPELINE = None


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
    arguments.update(variant_arguments(request))
    return arguments


def variant_arguments(request) -> dict:
    """SkyReels-V2 DF: one window of all the frames (``base_num_frames``), ``model_mode`` as ``ar_step`` with its
    causal block; ChronoEdit: ``num_frames`` back (the engine drops it for image outputs) from ``model_mode``, with
    temporal reasoning over every step in the long mode (WanGP keeps all the frames to the end)."""
    from wangp_cli.families.wan import CHRONO_FRAMES, SKY_DF

    settings = request.settings
    mode = settings.get("model_mode") or 0
    if request.architecture in SKY_DF:
        ar_step = int(mode)
        return {"base_num_frames": request.frames, "ar_step": ar_step,
                "causal_block_size": SKY_DF_CAUSAL_BLOCK if ar_step else 1}
    if request.architecture == "lucy_edit" and not request.control_video:
        from wangp_cli.core.errors import UsageError

        raise UsageError(f"'{request.model_id}' edits a video: give --control-video (the video to edit)")
    if request.architecture == "chrono_edit":
        frames = CHRONO_FRAMES.get(mode, CHRONO_FRAMES[0])
        reasoning = frames > CHRONO_FRAMES[0]
        return {"num_frames": frames, "enable_temporal_reasoning": reasoning,
                "num_temporal_reasoning_steps": request.steps if reasoning else 0}
    return {}
