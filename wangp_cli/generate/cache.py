"""Step caching: WanGP's ``skip_steps_cache_type`` / ``skip_steps_multiplier`` / ``skip_steps_start_step_perc``
through diffusers' cache hooks (``transformer.enable_cache``).

What WanGP's settings mean (``wgp.py``, ``models/wan/modules/model.py`` ``compute_magcache_threshold`` and
``compute_teacache_threshold``):

- ``skip_steps_multiplier`` m is the speed-up asked for ("around x1.75 speed up"): of N denoising steps, about
  ``int(N / m)`` run the transformer's blocks; the others reuse the last computed residual (output - input of the
  block stack) added to the step's input.
- ``skip_steps_start_step_perc`` p: steps ``0 .. int(p * N / 100)`` always run (warm-up).
- WanGP does not expose a threshold: it tries thresholds 0.01, 0.02, ... 0.59 on its skip rule, replayed offline
  over the request's steps, and keeps the first one whose count of computed steps is nearest ``int(N / m)``.
  :func:`search_threshold` does the same search, over a replay of the rule diffusers' hook applies (so the count
  it predicts is the count that runs).

How that reaches diffusers 0.42.1:

- ``mag``: ``MagCacheConfig`` with WanGP's calibrated ratios for the architecture (``families/<family>/cache.py``;
  Wan's are cond/uncond interleaved: the cond ones are taken, diffusers keeps one state per ``cache_context``
  and both follow the same ratios), interpolated to N steps as WanGP does, ``max_skip_steps`` = WanGP's
  ``magcache_K`` (2), the warm-up as ``retention_ratio`` and the searched threshold. At most 50 steps (WanGP).
- ``tea``: diffusers has no TeaCache. WanGP's Wan TeaCache decides from the timestep alone (the relative change of
  the time embedding between steps, through a calibrated polynomial), so its decisions are a fixed schedule known
  before the run. :func:`tea_deltas` computes them with the model's own time embedder; the schedule is then run
  by the MagCache hooks, whose skip does exactly TeaCache's (the block stack's input plus the last residual):
  ratio 1.0 on a step to skip, 0.0 on a step to compute (its error, 1, exceeds the 0.5 threshold), no limit on
  consecutive skips. FirstBlockCache (data-dependent, always runs the first block, no warm-up) could not honour
  the multiplier or the start step, and TaylorSeer has no Wan block patterns: neither is used.
- Two transformers (Wan 2.2 A14B): each gets its own config over the steps it runs (diffusers keeps one state per
  transformer); the first step after the switch always computes (no residual of the low-noise model yet).
"""

from __future__ import annotations

import math

from wangp_cli.core.errors import UsageError

#: What ``--cache`` accepts (``none``: WanGP's ``""``).
CACHE_TYPES = ("none", "mag", "tea")
#: The settings value -> the cache type (WanGP writes ``""`` for none).
_ALIASES = {"": "none", "none": "none", "mag": "mag", "tea": "tea"}
#: WanGP cache types wangp cannot run, and why.
_WANGP_ONLY = {"spectrum": "WanGP's Spectrum feature forecasting has no diffusers equivalent",
               "first_block": "WanGP offers First Block Cache only for models wangp does not generate"}
NAMES = {"mag": "MagCache", "tea": "TeaCache"}
#: WanGP's defaults (``models/_settings.json``).
DEFAULT_MULTIPLIER = 1.75
#: WanGP's ``magcache_K``: at most this many consecutive skipped steps.
MAX_SKIP_STEPS = 2
#: WanGP refuses MagCache above 50 steps (``wgp.py``: "Mag Cache maximum number of steps is 50").
MAG_MAX_STEPS = 50
#: The thresholds WanGP's search tries, in order: 0.01 to 0.59 (its loop adds 0.01 up to "<= 0.6", and the float
#: sum passes 0.6 after 0.59).
THRESHOLDS = tuple(k / 100 for k in range(1, 60))
#: The ``tea`` schedule as MagCache ratios: a skip leaves the accumulated error at 0, a compute makes it 1.
_SKIP, _COMPUTE, _SCHEDULE_THRESHOLD = 1.0, 0.0, 0.5


def settings_value(kind: str) -> str:
    """What ``--cache KIND`` writes into ``skip_steps_cache_type``: WanGP's own spelling (``""`` for none), so that
    the video's metadata loads back into WanGP."""
    return "" if kind == "none" else kind


def cache_type(settings: dict) -> str:
    """The cache type the settings ask for (``none`` when off; an unknown value as given)."""
    value = settings.get("skip_steps_cache_type", "") or ""
    return _ALIASES.get(value, value) if isinstance(value, str) else value


def _family_data(arch_id: str):
    """The family's ``cache.py`` (None: the family has none)."""
    import importlib
    import importlib.util

    from wangp_cli.families import family_for_architecture

    family = family_for_architecture(arch_id)
    if family is None or importlib.util.find_spec(f"{family.package}.cache") is None:
        return None
    return importlib.import_module(f"{family.package}.cache")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def supported_types(arch_id: str, width: int = 832, height: int = 480) -> tuple[str, ...]:
    """The cache types an architecture takes at this size (``none`` always)."""
    data = _family_data(arch_id)
    if data is None or arch_id in data.REFUSED:
        return ("none",)
    found = {"mag": data.mag_calibration(arch_id, width, height), "tea": data.tea_calibration(arch_id, width, height)}
    return ("none",) + tuple(kind for kind in CACHE_TYPES[1:] if found[kind])


def check_cache_settings(settings: dict, arch_id: str) -> list[str]:
    """What is wrong with the step-cache settings for this architecture (nothing when the cache is off)."""
    from wangp_cli.generate.request import parse_resolution, shown

    kind = cache_type(settings)
    if kind == "none":
        return []
    choices = ", ".join(CACHE_TYPES)
    if kind in _WANGP_ONLY:
        return [f"skip_steps_cache_type '{kind}': {_WANGP_ONLY[kind]} (use one of {choices})"]
    if kind not in CACHE_TYPES:
        return [f"skip_steps_cache_type {shown(kind)}: not a step cache (use one of {choices})"]
    problems = []
    multiplier = settings.get("skip_steps_multiplier", DEFAULT_MULTIPLIER)
    if not _number(multiplier) or multiplier < 1:
        problems.append(f"skip_steps_multiplier {shown(multiplier)}: the speed-up asked of the cache, a number of at "
                        "least 1 (WanGP offers 1.5 to 2.5)")
    start = settings.get("skip_steps_start_step_perc", 0)
    if not _number(start) or not 0 <= start <= 100:
        problems.append(f"skip_steps_start_step_perc {shown(start)}: the share of steps run before skipping starts, "
                        "0 to 100 (percent)")
    data = _family_data(arch_id)
    if data is not None and arch_id in data.REFUSED:
        return problems + [f"{arch_id} takes no step cache: {data.REFUSED[arch_id]} (use --cache none)"]
    try:
        size = parse_resolution(settings.get("resolution", "832x480"))
    except UsageError:  # the request's own checks report it
        size = (832, 480)
    works = supported_types(arch_id, *size)
    if kind not in works:
        others = " or ".join(f"--cache {k}" for k in works)
        why = data.MISSING[kind] if data is not None else "wangp has no step-cache data for its family"
        problems.append(f"{arch_id} takes no {NAMES[kind]}: {why} (use {others})")
    steps = settings.get("num_inference_steps")
    if kind == "mag" and isinstance(steps, int) and steps > MAG_MAX_STEPS:
        problems.append(f"MagCache takes at most {MAG_MAX_STEPS} steps (WanGP's limit), not {steps}")
    return problems


# -- the schedule: which steps run (pure Python, no torch) -------------------------------------------------------

def nearest_interp(values: list[float], length: int) -> list[float]:
    """``values`` resampled to ``length`` by nearest index (WanGP's and diffusers' ``nearest_interp``)."""
    if length == 1:
        return [values[-1]]
    scale = (len(values) - 1) / (length - 1)
    return [values[round(index * scale)] for index in range(length)]


def start_step(settings: dict, steps: int) -> int:
    """The last warm-up step: steps ``0..start_step`` always run (WanGP: ``int(perc * steps / 100)``)."""
    return int(settings.get("skip_steps_start_step_perc", 0) * steps / 100)


def segments(steps: int, switch: int | None) -> list[tuple[int, int]]:
    """The ``(first, end)`` steps of each transformer: one, or high-noise then low-noise around ``switch``."""
    if switch is None:
        return [(0, steps)]
    return [(0, switch), (switch, steps)]


def mag_schedule(ratios: list[float], threshold: float, *, start: int, parts: list[tuple[int, int]],
                 max_skip: int = MAX_SKIP_STEPS) -> list[bool]:
    """Which steps compute (True) under diffusers' MagCache rule (``MagCacheHeadHook``), one state per
    transformer: from the first step past the warm-up, the ratios multiply up, their distance from 1 adds up, and a
    step is skipped while that error is at most ``threshold`` and at most ``max_skip`` steps were skipped in a row;
    a transformer's first step always computes (no residual yet)."""
    computed = []
    for first, end in parts:
        ratio, error, skipped = 1.0, 0.0, 0
        for step in range(first, end):
            compute = True
            if step > start:
                ratio *= ratios[step]
                skipped += 1
                error += abs(1.0 - ratio)
                compute = step == first or error > threshold or skipped > max_skip
                if compute:
                    ratio, error, skipped = 1.0, 0.0, 0
            computed.append(compute)
    return computed


def tea_schedule(deltas: list[float], threshold: float, *, start: int) -> list[bool]:
    """Which steps compute (True) under WanGP's Wan TeaCache rule: the warm-up and the last step always; else the
    estimated changes (``deltas[i]``, step i against step i - 1) add up and the step is skipped while the sum stays
    below ``threshold``."""
    computed, total = [], 0.0
    for step, delta in enumerate(deltas):
        compute = True
        if step > start and step != len(deltas) - 1:
            total += delta
            compute = total >= threshold
        if compute:
            total = 0.0
        computed.append(compute)
    return computed


def search_threshold(schedule, steps: int, multiplier: float) -> tuple[float, list[bool]]:
    """WanGP's search: the first threshold (0.01 to 0.59) whose schedule computes nearest ``int(steps /
    multiplier)`` steps, stopping once the distance grows. ``schedule(threshold)`` -> the computed flags."""
    target = int(steps / multiplier)
    best = None
    for threshold in THRESHOLDS:
        flags = schedule(threshold)
        distance = abs(target - sum(flags))
        if best is None or distance < best[0]:
            best = (distance, threshold, flags)
        elif distance > best[0]:
            break
    return best[1], best[2]


# -- the model side --------------------------------------------------------------------------------------------

def tea_deltas(transformer, timesteps: list[float], coefficients: list[float]) -> list[float]:
    """WanGP's TeaCache estimate per step (0 for step 0): the polynomial of the relative mean absolute change of the
    time embedding (the transformer's own ``time_embedder`` on the sinusoidal timestep) from the previous step.
    Computed from the weights directly, in float32 on the CPU, so that offloading hooks are never triggered."""
    import numpy as np
    import torch
    from diffusers.models.embeddings import get_timestep_embedding

    embedder = transformer.condition_embedder
    channels = embedder.timesteps_proj.num_channels

    def weights(linear):
        weight = linear.weight
        weight = weight.dequantize() if hasattr(weight, "dequantize") else weight
        return weight.detach().to("cpu", torch.float32), linear.bias.detach().to("cpu", torch.float32)

    (w1, b1), (w2, b2) = weights(embedder.time_embedder.linear_1), weights(embedder.time_embedder.linear_2)
    with torch.no_grad():
        sinusoid = get_timestep_embedding(torch.tensor(timesteps, dtype=torch.float32), channels,
                                          flip_sin_to_cos=True, downscale_freq_shift=0)
        embedded = torch.nn.functional.linear(torch.nn.functional.silu(
            torch.nn.functional.linear(sinusoid, w1, b1)), w2, b2)
    rescale = np.poly1d(coefficients)
    deltas = [0.0]
    for step in range(1, len(timesteps)):
        change = (embedded[step] - embedded[step - 1]).abs().mean() / embedded[step - 1].abs().mean()
        deltas.append(abs(float(rescale(change.item()))))
    return deltas


def _transformers(pipe) -> list[tuple[str, object]]:
    return [(name, getattr(pipe, name)) for name in ("transformer", "transformer_2")
            if getattr(pipe, name, None) is not None]


def remove_step_cache(pipe) -> None:
    """Disable whatever cache the pipeline's transformers carry (a reused pipeline starts clean)."""
    for _name, model in _transformers(pipe):
        if getattr(model, "is_cache_enabled", False):
            model.disable_cache()


def plan_step_cache(pipe, request) -> dict | None:
    """What :func:`apply_step_cache` would enable, without enabling it: the record, plus ``configs`` (slot ->
    diffusers config). None when the settings ask for no cache; UsageError when they cannot be honoured."""
    kind = cache_type(request.settings)
    if kind == "none":
        return None
    problems = check_cache_settings({**request.settings, "resolution": f"{request.width}x{request.height}",
                                     "num_inference_steps": request.steps}, request.architecture)
    if problems:
        raise UsageError("; ".join(problems), hint="fix the step-cache settings, or --cache none")
    from diffusers.hooks import MagCacheConfig

    from wangp_cli.generate.loras import model_switch_step, scheduler_timesteps

    data = _family_data(request.architecture)
    steps = request.steps
    multiplier = float(request.settings.get("skip_steps_multiplier", DEFAULT_MULTIPLIER))
    start = start_step(request.settings, steps)
    timesteps = scheduler_timesteps(pipe.scheduler, steps)
    parts = segments(steps, model_switch_step(pipe, timesteps))
    size = (request.architecture, request.width, request.height)
    if kind == "mag":
        ratios = nearest_interp(data.mag_ratios(*size), steps)
        calibration = data.mag_calibration(*size)
        threshold, computed = search_threshold(
            lambda t: mag_schedule(ratios, t, start=start, parts=parts), steps, multiplier)
        max_skip = MAX_SKIP_STEPS
    else:
        deltas = tea_deltas(pipe.transformer, timesteps, data.tea_coefficients(*size))
        calibration = data.tea_calibration(*size)
        threshold, computed = search_threshold(lambda t: tea_schedule(deltas, t, start=start), steps, multiplier)
        ratios = [_COMPUTE if flag else _SKIP for flag in computed]
        max_skip = steps
    slots = [name for name, _model in _transformers(pipe)]
    configs = {}
    for slot, (first, end) in zip(slots, parts):
        if end <= first:  # this transformer runs no step (Wan 2.2 with one guidance phase)
            continue
        warmup = min(max(start + 1 - first, 0), end - first)  # its steps before skipping may start
        configs[slot] = MagCacheConfig(
            threshold=threshold if kind == "mag" else _SCHEDULE_THRESHOLD, max_skip_steps=max_skip,
            retention_ratio=warmup / (end - first), num_inference_steps=end - first, mag_ratios=ratios[first:end])
    return {"type": kind, "multiplier": multiplier, "start_step": start, "config": "MagCacheConfig",
            "calibration": calibration, "threshold": threshold, "steps": steps, "computed_steps": sum(computed),
            "skipped": [step for step, flag in enumerate(computed) if not flag], "transformers": list(configs),
            "configs": configs}


def apply_step_cache(pipe, request) -> dict | None:
    """Enable the request's step cache on every transformer of the pipeline (after removing any earlier one).
    Returns what was enabled, for the result record (JSON values), or None when the cache is off."""
    remove_step_cache(pipe)
    plan = plan_step_cache(pipe, request)
    if plan is None:
        return None
    configs = plan.pop("configs")
    for slot, config in configs.items():
        getattr(pipe, slot).enable_cache(config)
    return plan
