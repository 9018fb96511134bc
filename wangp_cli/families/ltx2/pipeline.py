"""LTX-2 pipelines: the components repo's flow-matching Euler scheduler (the distilled sigmas when asked), WanGP's
guidance settings (``settings.py``), the audio track from the vocoder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from wangp_cli.families.ltx2 import settings as ltx2_settings

#: Components of LTX-2.5's repo that generation does not use (prompt enhancement, the frame-count head, its
#: processor): passed as None so that they are neither downloaded nor loaded.
UNUSED = ("processor", "prompt_enhancer", "duration_head")
#: The full (non-distilled) model's schedule where the repo ships the distilled one (diffusers' LTX-2.5 docs:
#: "Re-enable dynamic shifting and the terminal shift").
FULL_SCHEDULE = {"ltx2_25_22B": {"use_dynamic_shifting": True, "shift_terminal": 0.1}}
#: The distilled sigmas are used as given (diffusers' docs: dynamic shifting and the terminal shift off).
DISTILLED_SCHEDULE = {"use_dynamic_shifting": False, "shift_terminal": None}


def parts(request, components: Path) -> dict:
    return {name: None for name in UNUSED}


def scheduler(pipe, request) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler

    changes = (DISTILLED_SCHEDULE if ltx2_settings.distilled(request.family_settings)
               else FULL_SCHEDULE.get(request.architecture, {}))
    if changes:
        pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, **changes)


def call_arguments(request) -> dict:
    """WanGP's guidance settings, ``frame_rate`` (the architecture's fps), the distilled sigmas. The pipeline
    re-compresses the start image as H.264 (CRF 33 through LTX-2.3, as WanGP's ``media_io.preprocess``) where PyAV is
    installed; without it, ``image_crf`` 0 conditions on the image as given (PyAV is not a wangp dependency)."""
    arguments = ltx2_settings.call_arguments(request.settings, request.fps)
    if ltx2_settings.distilled(request.family_settings):
        from diffusers.pipelines.ltx2.utils import DISTILLED_SIGMA_VALUES

        arguments["sigmas"] = list(DISTILLED_SIGMA_VALUES)
    if request.image and importlib.util.find_spec("av") is None:
        arguments["image_crf"] = 0
    return arguments


def audio(pipe, output):
    """``output.audio`` (batch, channels, samples) -> (float32 numpy (channels, samples) in [-1, 1], the vocoder's
    output sampling rate)."""
    import numpy as np

    track = getattr(output, "audio", None)
    if track is None:
        return None
    if hasattr(track, "float"):
        track = track.float().cpu().numpy()
    track = np.asarray(track, dtype=np.float32)
    track = track[0] if track.ndim == 3 else track
    config = pipe.vocoder.config
    rate = getattr(config, "output_sampling_rate", None) or config.get("output_sampling_rate")
    return np.clip(track, -1.0, 1.0), int(rate)
