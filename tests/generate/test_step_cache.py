"""Step caching (WanGP's ``skip_steps_*`` settings through diffusers' cache hooks) on tiny real models, on CPU.

What is measured: the work of the transformer's repeated blocks, as calls of each block's feed-forward (a torch
hook on the block itself would fire on skipped steps too: diffusers' cache hooks replace the block's ``forward``,
not its ``__call__``); and the frames against the uncached frames of the same request.

The frame metric: the mean absolute difference of the uint8 frames (MAD) between cached and uncached, measured
against two yardsticks from the same tiny model: the MAD between two seeds of the uncached request (what "a
different video" means for this model: tiny random models map every seed to similar low-contrast frames, so an
absolute PSNR says little) and the MAD of rendering only as many steps as the cache computed (what the cache has
to beat to be worth it). The cache must stay under half the seed distance and under the fewer-steps distance.

The tiny Wan 2.1 model's time embedding is made to change slowly between steps (its output weights scaled down,
a relative change of about 0.1 per step, as a trained Wan's): WanGP's TeaCache polynomial is calibrated for that
range, and a random embedder (a change of about 1 per step) never allows a skip.

References: the block-call counts are compared with the uncached counts and WanGP's multiplier; the thresholds
with a transcription of WanGP's own searches (``compute_magcache_threshold``, ``compute_teacache_threshold``).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from wangp_cli.core.definitions import Catalog  # noqa: E402
from wangp_cli.core.home import Home  # noqa: E402
from wangp_cli.families.hunyuan import cache as hunyuan_data  # noqa: E402
from wangp_cli.families.wan import cache as wan_data  # noqa: E402
from wangp_cli.generate import cache, engine, tiny  # noqa: E402
from wangp_cli.generate.request import build_request  # noqa: E402
from wangp_cli.generate.runner import Generator, model_files  # noqa: E402

STEPS = 12
FRAMES = 5
#: Wan 2.2 A14B as WanGP's defaults/t2v_2_2.json (at 12 steps the switch comes at step 8).
DUAL_SETTINGS = {"guidance_phases": 2, "switch_threshold": 875, "guidance_scale": 4, "guidance2_scale": 3,
                 "flow_shift": 12}


def _feed_forwards(model) -> list:
    """The feed-forward of every repeated block (Wan ``ffn``; HunyuanVideo ``ff`` / ``proj_mlp``)."""
    blocks = [*getattr(model, "blocks", ()), *getattr(model, "transformer_blocks", ()),
              *getattr(model, "single_transformer_blocks", ())]
    return [getattr(b, "ffn", None) or getattr(b, "ff", None) or b.proj_mlp for b in blocks]


class Tiny:
    """A tiny home, one Generator (the pipeline built once by the runner), and renders that count block work."""

    def __init__(self, folder, kind, *, model=None, settings=None):
        self.home = tiny.make_home(folder, kind, model=model, settings=settings)
        self.catalog = Catalog(Home(self.home.root))
        self.generator = Generator(self.catalog)

    def request(self, seed=11, steps=STEPS, frames=FRAMES, **settings):
        return build_request(self.catalog, self.home.model_id, {"seed": seed, "steps": steps, "frames": frames},
                             preference=self.home.preference, pipeline_kwargs=self.home.pipeline_kwargs,
                             settings=settings, profile="cpu")

    def pipeline(self, request):
        pipe = self.generator._pipeline(request, model_files(self.catalog, request))
        engine.configure(pipe, request)
        return pipe

    def render(self, seed=11, steps=STEPS, frames=FRAMES, **settings):
        """(frames, block calls per transformer slot, the cache record): the runner's pipeline, our cache around
        ``engine.run`` (as the runner will call it), removed afterwards."""
        request = self.request(seed, steps, frames, **settings)
        pipe = self.pipeline(request)
        calls, handles = {}, []
        for slot in ("transformer", "transformer_2"):
            model = getattr(pipe, slot, None)
            if model is not None:
                calls[slot] = 0

                def count(*_args, slot=slot):
                    calls[slot] += 1

                handles += [ff.register_forward_hook(count) for ff in _feed_forwards(model)]
        try:
            record = cache.apply_step_cache(pipe, request)
            result = engine.run(pipe, request, device="cpu", profile="cpu")
        finally:
            cache.remove_step_cache(pipe)
            for handle in handles:
                handle.remove()
        return result.frames, calls, record


def mad(a, b) -> float:
    """Mean absolute difference of two videos as the uint8 frames written to the mp4."""
    def u8(frames):
        return np.round(np.clip(frames, 0, 1) * 255).astype(np.int16)
    return float(np.abs(u8(a) - u8(b)).mean())


def slow_time_embedding(kind: str):
    model = tiny.make_transformer(kind)
    with torch.no_grad():
        model.condition_embedder.time_embedder.linear_2.weight.mul_(0.02)
    return model


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    """Tiny Wan 2.1 t2v 1.3B with its uncached renders: seed 11 (the reference) and seed 12 (the yardstick)."""
    setup = Tiny(tmp_path_factory.mktemp("wan") / "home", "t2v", model=slow_time_embedding("t2v"))
    setup.uncached, setup.uncached_calls, record = setup.render()
    assert record is None and setup.uncached_calls["transformer"] == STEPS * 2 * 5  # CFG: 2 passes, 5 blocks
    setup.seed_distance = mad(setup.uncached, setup.render(seed=12)[0])
    assert setup.seed_distance > 0.2  # the two seeds do give different videos
    fewer = {}
    setup.fewer_steps = lambda steps: fewer.setdefault(steps, mad(setup.render(steps=steps)[0], setup.uncached))
    return setup


# -- the schedule against WanGP's own searches (pure) ------------------------------------------------------------

def wangp_nearest_interp(src_array, target_length):
    src_length = len(src_array)
    if target_length == 1:
        return np.array([src_array[-1]])
    scale = (src_length - 1) / (target_length - 1)
    mapped_indices = np.round(np.arange(target_length) * scale).astype(int)
    return src_array[mapped_indices]


def wangp_mag_search(def_mag_ratios, interleaved, start_step, num_steps, speed_factor):
    """WanGP's ``compute_magcache_threshold`` (Wan: cond/uncond interleaved, ``<``, the cond pass; HunyuanVideo:
    one list, ``<=``), transcribed; returns (threshold, computed steps at it)."""
    if interleaved:
        ratios = np.array([1.0] * 2 + def_mag_ratios)
        ratios = wangp_nearest_interp(ratios[0::2], num_steps) if len(ratios) != num_steps * 2 else ratios[0::2]
    else:
        ratios = np.array([1.0] + def_mag_ratios)
        ratios = wangp_nearest_interp(ratios, num_steps) if len(ratios) != num_steps else ratios

    def computed(threshold):
        nb_steps, err, steps, ratio = 0, 0, 0, 1.0
        for i in range(num_steps):
            skip = False
            if i > start_step:
                ratio *= ratios[i]
                steps += 1
                err += np.abs(1 - ratio)
                below = err < threshold if interleaved else err <= threshold
                if below and steps <= 2:
                    skip = True
                else:
                    err, steps, ratio = 0, 0, 1.0
            nb_steps += not skip
        return nb_steps

    best_threshold, best_diff, threshold = 0.01, 1000, 0.01
    target = int(num_steps / speed_factor)
    while threshold <= 0.6:
        diff = abs(target - computed(threshold))
        if diff < best_diff:
            best_threshold, best_diff = threshold, diff
        elif diff > best_diff:
            break
        threshold += 0.01
    return best_threshold, computed(best_threshold)


CALIBRATIONS = [(wan_data, "t2v_1.3B", 832, 480), (wan_data, "t2v", 832, 480), (wan_data, "i2v", 832, 480),
                (wan_data, "i2v_720p", 1280, 720), (wan_data, "i2v_2_2", 832, 480),
                (wan_data, "ti2v_2_2", 1280, 704), (hunyuan_data, "hunyuan", 960, 544),
                (hunyuan_data, "hunyuan_i2v", 1280, 720)]


@pytest.mark.parametrize("data,arch_id,width,height", CALIBRATIONS, ids=[c[1] + f"@{c[3]}" for c in CALIBRATIONS])
def test_mag_threshold_search_matches_wangps(data, arch_id, width, height):
    raw = data.MAG_RATIOS[data.mag_calibration(arch_id, width, height)]
    for steps in (8, 12, 20, 30, 50):
        for multiplier in (1.5, 1.75, 2.0, 2.5):
            for percent in (0, 20):
                start = cache.start_step({"skip_steps_start_step_perc": percent}, steps)
                ratios = cache.nearest_interp(data.mag_ratios(arch_id, width, height), steps)
                threshold, flags = cache.search_threshold(
                    lambda t: cache.mag_schedule(ratios, t, start=start, parts=[(0, steps)]), steps, multiplier)
                expected = wangp_mag_search(raw, data is wan_data, start, steps, multiplier)
                assert (threshold, sum(flags)) == (pytest.approx(expected[0]), expected[1]), (steps, multiplier)


def test_tea_schedule_matches_wangps(wan):
    """WanGP's ``compute_teacache_threshold`` transcribed (its sinusoid, the model's time embedder, the polynomial)
    against :func:`cache.tea_deltas` + :func:`cache.search_threshold` on the tiny model's weights."""
    request = wan.request(skip_steps_cache_type="tea")
    pipe = wan.pipeline(request)
    import copy

    from wangp_cli.generate.loras import scheduler_timesteps

    embedder = copy.deepcopy(pipe.transformer.condition_embedder.time_embedder).float()  # WanGP: in fp32

    for steps in (8, 12, 20):
        timesteps = scheduler_timesteps(pipe.scheduler, steps)
        half = 128
        position = torch.tensor(timesteps, dtype=torch.float32)
        sinusoid = torch.outer(position, torch.pow(10000, -torch.arange(half).to(position).div(half)))
        with torch.no_grad():
            e_list = embedder(torch.cat([torch.cos(sinusoid), torch.sin(sinusoid)], dim=1))
        rescale = np.poly1d(wan_data.TEA_COEFFICIENTS["t2v_1.3B"])
        for multiplier in (1.5, 2.0, 2.5):
            for start in (0, 2):
                def computed(threshold):
                    total, nb_steps = 0, 0
                    for i in range(steps):
                        skip = False
                        if not (i <= start or i == steps - 1):
                            total += abs(rescale(((e_list[i] - e_list[i - 1]).abs().mean()
                                                  / e_list[i - 1].abs().mean()).item()))
                            if total < threshold:
                                skip = True
                            else:
                                total = 0
                        nb_steps += not skip
                    return nb_steps

                best, best_diff, threshold = 0.01, 1000, 0.01
                while threshold <= 0.6:
                    diff = abs(int(steps / multiplier) - computed(threshold))
                    if diff < best_diff:
                        best, best_diff = threshold, diff
                    elif diff > best_diff:
                        break
                    threshold += 0.01
                deltas = cache.tea_deltas(pipe.transformer, timesteps, wan_data.TEA_COEFFICIENTS["t2v_1.3B"])
                ours, flags = cache.search_threshold(lambda t: cache.tea_schedule(deltas, t, start=start), steps,
                                                     multiplier)
                assert (ours, sum(flags)) == (pytest.approx(best), computed(best)), (steps, multiplier, start)


# -- the settings checks (pure) ---------------------------------------------------------------------------------

def _settings(**values):
    return {"skip_steps_cache_type": "mag", "skip_steps_multiplier": 2.0, "skip_steps_start_step_perc": 0,
            "num_inference_steps": 30, "resolution": "832x480", **values}


@pytest.mark.parametrize("arch_id,values,message", [
    ("t2v", {"skip_steps_cache_type": "turbo"}, "'turbo': not a step cache (use one of none, mag, tea)"),
    ("t2v", {"skip_steps_cache_type": "spectrum"}, "Spectrum feature forecasting has no diffusers equivalent"),
    ("t2v", {"skip_steps_multiplier": "fast"}, "skip_steps_multiplier 'fast': the speed-up asked of the cache"),
    ("t2v", {"skip_steps_multiplier": 0.5}, "a number of at least 1"),
    ("t2v", {"skip_steps_multiplier": True}, "skip_steps_multiplier true"),
    ("t2v", {"skip_steps_start_step_perc": 120}, "skip_steps_start_step_perc 120: the share of steps run before"),
    ("t2v", {"num_inference_steps": 60}, "MagCache takes at most 50 steps (WanGP's limit), not 60"),
    ("t2v_2_2", {"skip_steps_cache_type": "tea"}, "t2v_2_2 takes no TeaCache: WanGP calibrated TeaCache for Wan "
                                                  "2.1 only (use --cache none or --cache mag)"),
    ("hunyuan", {"skip_steps_cache_type": "tea"}, "TeaCache measures the latents at every step, which no diffusers "
                                                  "hook does (use --cache none or --cache mag)"),
    ("vace_14B", {}, "vace_14B takes no step cache: diffusers' cache hooks skip only the main blocks"),
])
def test_settings_the_cache_cannot_honour_are_problems(arch_id, values, message):
    problems = cache.check_cache_settings(_settings(**values), arch_id)
    assert len(problems) == 1 and message in problems[0], problems


@pytest.mark.parametrize("arch_id,values", [
    ("t2v", {"skip_steps_cache_type": ""}), ("vace_14B", {"skip_steps_cache_type": "", "skip_steps_multiplier": 0}),
    ("t2v", {}), ("t2v", {"skip_steps_cache_type": "tea", "num_inference_steps": 60}), ("i2v_720p", {}),
    ("t2v_2_2", {}), ("ti2v_2_2", {}), ("hunyuan_i2v", {"skip_steps_start_step_perc": 25}),
])
def test_settings_the_cache_honours_have_no_problems(arch_id, values):
    assert cache.check_cache_settings(_settings(**values), arch_id) == []


def test_cache_types_and_what_each_architecture_takes():
    assert cache.CACHE_TYPES == ("none", "mag", "tea")
    assert [cache.settings_value(kind) for kind in cache.CACHE_TYPES] == ["", "mag", "tea"]  # WanGP's spelling
    assert cache.cache_type({"skip_steps_cache_type": ""}) == cache.cache_type({}) == "none"
    assert cache.supported_types("t2v") == cache.supported_types("i2v") == ("none", "mag", "tea")
    assert cache.supported_types("t2v_2_2") == cache.supported_types("hunyuan") == ("none", "mag")
    assert cache.supported_types("vace_1.3B") == ("none",)
    assert wan_data.mag_calibration("i2v_720p", 832, 480) == "i2v_480p"  # WanGP picks by the rendered size
    assert wan_data.mag_calibration("i2v", 1280, 720) == "i2v_720p"
    assert len(wan_data.mag_ratios("t2v", 832, 480)) == 50 and len(wan_data.mag_ratios("i2v", 832, 480)) == 40


# -- on the tiny models -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,percent", [("mag", 0), ("mag", 20), ("tea", 0)])
def test_the_cache_skips_the_multipliers_share_and_stays_close(wan, kind, percent):
    multiplier = 2.0
    frames, calls, record = wan.render(skip_steps_cache_type=kind, skip_steps_multiplier=multiplier,
                                       skip_steps_start_step_perc=percent)
    start = int(percent * STEPS / 100)
    assert record["type"] == kind and record["config"] == "MagCacheConfig" and record["start_step"] == start
    assert record["transformers"] == ["transformer"] and min(record["skipped"]) > start
    # WanGP's multiplier: about STEPS / multiplier steps compute; its search lands on the nearest whole count, so
    # one step over is the tolerance (1 + multiplier / STEPS)
    assert calls["transformer"] <= wan.uncached_calls["transformer"] / multiplier * (1 + multiplier / STEPS)
    assert calls["transformer"] == record["computed_steps"] * 2 * 5  # what the record says ran, ran
    distance = mad(frames, wan.uncached)
    fewer_steps = wan.fewer_steps(record["computed_steps"])
    assert 0 < distance < min(0.5 * wan.seed_distance, fewer_steps), (distance, wan.seed_distance, fewer_steps)


def test_a_reused_pipeline_gets_the_next_requests_cache_or_none(wan):
    request = wan.request(skip_steps_cache_type="mag", skip_steps_multiplier=2.0)
    pipe = wan.pipeline(request)
    cache.apply_step_cache(pipe, request)
    threshold = pipe.transformer._cache_config.threshold
    record = cache.apply_step_cache(pipe, wan.request(skip_steps_cache_type="tea", skip_steps_multiplier=1.5))
    assert record["type"] == "tea" and pipe.transformer._cache_config.threshold != threshold  # replaced
    assert cache.apply_step_cache(pipe, wan.request()) is None and not pipe.transformer.is_cache_enabled
    cache.apply_step_cache(pipe, request)
    cache.remove_step_cache(pipe)
    assert not pipe.transformer.is_cache_enabled
    frames, calls, _ = wan.render()  # full work again, the very frames of the first uncached render
    assert calls == wan.uncached_calls
    np.testing.assert_array_equal(frames, wan.uncached)


def test_a_refused_setting_is_a_usage_error_before_any_hook(wan):
    from wangp_cli.core.errors import UsageError

    request = wan.request(skip_steps_cache_type="mag", skip_steps_multiplier=2.0)
    request.settings["skip_steps_multiplier"] = 0.5
    pipe = wan.pipeline(request)
    with pytest.raises(UsageError, match="at least 1"):
        cache.apply_step_cache(pipe, request)
    assert not pipe.transformer.is_cache_enabled


def test_wan22_gets_the_cache_on_both_transformers(tmp_path):
    setup = Tiny(tmp_path / "home", "t2v_2_2", settings=DUAL_SETTINGS)
    frames, calls, record = setup.render(frames=1, skip_steps_cache_type="mag", skip_steps_multiplier=2.0)
    uncached_frames, full, none = setup.render(frames=1)  # after remove_step_cache: the full work again
    assert none is None and full == {"transformer": 8 * 2 * 5, "transformer_2": 4 * 2 * 5}  # switch at step 8
    assert record["transformers"] == ["transformer", "transformer_2"] and record["calibration"] == "t2v_14B"
    assert 0 < calls["transformer"] < full["transformer"] and 0 < calls["transformer_2"] < full["transformer_2"]
    total, cached = sum(full.values()), sum(calls.values())
    assert cached <= total / 2.0 * (1 + 2.0 / STEPS) and cached == record["computed_steps"] * 2 * 5
    assert 8 not in record["skipped"]  # the low-noise transformer's first step computes
    assert mad(frames, uncached_frames) < 1.0


def test_hunyuan_takes_wangps_magcache(tmp_path):
    setup, steps = Tiny(tmp_path / "home", "hunyuan"), 8
    frames, calls, record = setup.render(steps=steps, frames=1, skip_steps_cache_type="mag",
                                         skip_steps_multiplier=2.0)
    uncached, full, _ = setup.render(steps=steps, frames=1)
    blocks = len(_feed_forwards(setup.generator._pipe.transformer))
    assert record["calibration"] == "540p" and full["transformer"] == steps * blocks  # one pass a step
    assert calls["transformer"] <= full["transformer"] / 2.0 * (1 + 2.0 / steps)
    assert calls["transformer"] == record["computed_steps"] * blocks
    fewer_steps = mad(setup.render(steps=record["computed_steps"], frames=1)[0], uncached)
    assert 0 < mad(frames, uncached) < fewer_steps
