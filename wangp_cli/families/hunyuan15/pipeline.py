"""HunyuanVideo 1.5 pipelines: flow-matching Euler with WanGP's ``flow_shift``, classifier-free guidance through the
pipeline's guider (diffusers' HunyuanVideo 1.5 pipelines take no ``guidance_scale`` keyword), WanGP's default
negative prompt, and two things wangp adds to diffusers' pipelines by subclassing them (:func:`pipeline_class`):

- a ``callback_on_step_end`` (diffusers' HunyuanVideo 1.5 pipelines have none; wangp's progress and step timings
  use it): called after each scheduler step;
- ``height`` / ``width`` for image-to-video: diffusers' I2V pipeline picks the size itself (the bucket of the start
  image's aspect ratio at the checkpoint's target size, 640 px for the 480p files, 960 for 720p); wangp renders at
  the requested resolution instead, the start image center-cropped to it (diffusers' own ``resize_mode="crop"``).
  Without them the subclass is diffusers' pipeline unchanged.
"""

from __future__ import annotations

import functools
from pathlib import Path

#: WanGP's negative prompts when the settings give none and guidance is on (``models/hyvideo/constants.py``).
NEGATIVE_PROMPT = ("Aerial view, aerial view, overexposed, low quality, deformation, a poor composition, bad hands, "
                   "bad teeth, bad eyes, bad limbs, distortion")
NEGATIVE_PROMPT_I2V = "deformation, a poor composition and deformed video, bad teeth, bad eyes, bad limbs"
#: WanGP's defaults for the settings a definition may lack (the WanGP 12 definitions set both).
DEFAULT_GUIDANCE = 6.0
DEFAULT_SHIFT = 7.0


def _number(value, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


#: Settings diffusers' pipelines cannot follow: (test, message).
_REFUSALS = (
    (lambda s: bool(s.get("cfg_star_switch")),
     "cfg_star_switch (CFG-Zero*) is not mapped to diffusers' guiders: set cfg_star_switch 0"),
    (lambda s: isinstance(s.get("sliding_window_size"), int) and isinstance(s.get("video_length"), int)
     and s.get("video_length") > s["sliding_window_size"] > 0,
     "video_length {video_length} is longer than sliding_window_size {sliding_window_size}: WanGP renders it in "
     "sliding windows, diffusers' pipeline in one pass; set sliding_window_size to at least video_length"),
    (lambda s: _number(s.get("NAG_scale"), 1.0) > 1,
     "NAG_scale {NAG_scale} (normalized attention guidance) has no diffusers equivalent here: set NAG_scale 1"),
)


def refusals(model_id: str, settings: dict) -> list[str]:
    return [f"'{model_id}': " + message.format(**{k: settings.get(k) for k in ("video_length", "sliding_window_size",
                                                                             "NAG_scale")})
            for test, message in _REFUSALS if test(settings)]


@functools.lru_cache(maxsize=None)
def pipeline_class(name: str):
    """diffusers' pipeline ``name`` subclassed under the same name (a saved ``model_index.json`` still names
    diffusers' class) with ``callback_on_step_end`` and, for image-to-video, ``height`` / ``width``."""
    import inspect

    import diffusers

    base = getattr(diffusers, name)
    keywords = inspect.signature(base.__call__).parameters
    image_to_video = "image" in keywords and "height" not in keywords

    def __call__(self, *args, callback_on_step_end=None, height=None, width=None, **kwargs):
        if not image_to_video:
            kwargs.update(height=height, width=width)
        restore = []
        if callback_on_step_end is not None:
            restore.append(_step_callback(self, callback_on_step_end))
        if image_to_video and height and width:
            restore.append(_fixed_size(self, int(height), int(width)))
        try:
            return base.__call__(self, *args, **kwargs)
        finally:
            for undo in restore:
                undo()

    __call__.__doc__ = base.__call__.__doc__
    return type(name, (base,), {"__call__": __call__, "__module__": __name__, "__doc__": base.__doc__})


def _step_callback(pipe, callback):
    """Call ``callback(pipe, step, timestep, {"latents": ...})`` after each ``pipe.scheduler.step``; returns the
    undo."""
    scheduler = pipe.scheduler
    original = scheduler.step
    count = [0]

    def step(model_output, timestep, sample, *args, **kwargs):
        out = original(model_output, timestep, sample, *args, **kwargs)
        latents = out[0] if isinstance(out, tuple) else out.prev_sample
        callback(pipe, count[0], timestep, {"latents": latents})
        count[0] += 1
        return out

    scheduler.step = step
    return lambda: scheduler.__dict__.pop("step", None)


def _fixed_size(pipe, height: int, width: int):
    """Make the I2V pipeline's size choice return the requested size; returns the undo."""
    processor = pipe.video_processor
    processor.calculate_default_height_width = lambda *args, **kwargs: (height, width)
    return lambda: processor.__dict__.pop("calculate_default_height_width", None)


def parts(request, components: Path) -> dict:
    """Nothing loaded apart: every component comes in the pipeline's dtype (as diffusers' examples load it)."""
    return {}


def guidance_scale(settings: dict) -> float:
    return _number(settings.get("guidance_scale"), DEFAULT_GUIDANCE)


def scheduler(pipe, request) -> None:
    """Euler with WanGP's ``flow_shift`` (WanGP's 1.5 sampler is always Euler); the guider at ``guidance_scale``
    (1: no unconditional pass, as WanGP)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    shift = _number(request.settings.get("flow_shift"), DEFAULT_SHIFT)
    pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, shift=shift)
    pipe.guider = pipe.guider.new(guidance_scale=guidance_scale(request.settings))


def call_arguments(request) -> dict:
    """The negative prompt: the settings', else WanGP's default when guidance is on (WanGP drops it at 1)."""
    settings = request.settings
    if guidance_scale(settings) == 1.0:
        return {"negative_prompt": None}
    default = NEGATIVE_PROMPT_I2V if request.io_class == "i2v" else NEGATIVE_PROMPT
    return {"negative_prompt": settings.get("negative_prompt") or default}
