"""LoRAs on Wan 2.2 A14B (two transformers) through ``wangp generate``: the phase multipliers of WanGP (``"1;0"``
the high-noise transformer only, ``"0;1"`` the low-noise one, ``"1"`` both) and ``--lora FILE:0.5`` give the frames
of the plain diffusers dual pipeline built by hand with the LoRA merged by hand (W + m·scale·up·down) into the
transformer(s) the multiplier names; 16-bit and quanto int8. Also: ``--dry-run`` shows the second transformer."""

from __future__ import annotations

import functools
import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
np = pytest.importorskip("numpy")

from conftest import invoke
from lora_files import merged_by_hand, random_pairs, write_wan_lora

from wangp_cli.core.definitions import Catalog
from wangp_cli.core.home import Home
from wangp_cli.core.multipliers import switch_steps
from wangp_cli.families.wan.pipeline import BOUNDARY_TIE
from wangp_cli.generate import tiny
from wangp_cli.generate import video as video_module
from wangp_cli.generate.loras import scheduler_timesteps
from wangp_cli.generate.request import build_request
from wangp_cli.generate.video import read_metadata

KIND = "t2v_2_2"
RANK, ALPHA = 4, 4.0
SIZE = 0.3  # the pairs' scale: a LoRA of about the size of the tiny weights
SEED, FRAMES, STEPS = 7, 5, 4
PROMPT = "a dog on the beach"
#: original-layout module -> diffusers module (the LoRA targets)
TARGETS = {"blocks.0.self_attn.q": "blocks.0.attn1.to_q", "blocks.2.cross_attn.v": "blocks.2.attn2.to_v",
           "blocks.3.ffn.0": "blocks.3.ffn.net.0.proj"}
FOLDER = "loras/wan"  # the registry's lora_dir of t2v_2_2
#: Two guidance phases (``switch_threshold``: between the 2nd and 3rd timestep, 2 steps a phase). Guidance 1 (no
#: classifier-free guidance): with it, the tiny random models turn bf16 rounding into changes as large as the
#: LoRA's (two equally valid hand merges, in fp32 and in bf16, differ by up to 0.1), so no split could be told apart.
SETTINGS = {"guidance_phases": 2, "guidance_scale": 1, "guidance2_scale": 1, "flow_shift": 5}
#: multiplier token -> (weight on the high-noise transformer, weight on the low-noise one)
PHASES = {"1;0": (1.0, 0.0), "0;1": (0.0, 1.0), "1": (1.0, 1.0)}


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    return tiny.make_components(KIND, tmp_path_factory.mktemp("components"))


@pytest.fixture(scope="module")
def timesteps(components):
    import diffusers

    scheduler = diffusers.UniPCMultistepScheduler.from_pretrained(components, subfolder="scheduler")
    scheduler = diffusers.UniPCMultistepScheduler.from_config(scheduler.config, flow_shift=SETTINGS["flow_shift"])
    return scheduler_timesteps(scheduler, STEPS)


@pytest.fixture(scope="module")
def threshold(timesteps):
    """A ``switch_threshold`` halfway between the 2nd and 3rd timestep: 2 high-noise steps, then 2 low-noise."""
    value = int((timesteps[1] + timesteps[2]) / 2)
    assert switch_steps(timesteps, 2, value, 0)[0] == 2  # where WanGP would switch too
    return value


def _reference(home, settings: dict, high, low, lora=None):
    """The plain diffusers dual pipeline by hand (``transformer_2``, ``boundary_ratio``), 16-bit, on the given
    in-memory transformers (in bf16, saved in diffusers' format, loaded with ``from_pretrained(torch_dtype=bf16)``,
    as its docs do). ``lora``: (file, (weight on transformer, weight on transformer_2)) loaded by diffusers itself
    (``load_lora_weights`` into both, an adapter weight per transformer)."""
    import diffusers

    def documented(model, name: str):
        return tiny.documented_transformer(model, home.root / name)

    vae = diffusers.AutoencoderKLWan.from_pretrained(home.components, subfolder="vae", torch_dtype=torch.float32)
    with tiny.offline():
        pipe = diffusers.WanPipeline.from_pretrained(
            home.components, transformer=documented(high, "reference-high"),
            transformer_2=documented(low, "reference-low"),
            boundary_ratio=settings["switch_threshold"] / 1000 + BOUNDARY_TIE,  # WanGP: low-noise at t <= threshold
            vae=vae, torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = diffusers.UniPCMultistepScheduler.from_config(pipe.scheduler.config,
                                                                   flow_shift=settings["flow_shift"])
    if lora is not None:
        path, weights = lora
        for into_second, transformer, weight in ((False, pipe.transformer, weights[0]),
                                                 (True, pipe.transformer_2, weights[1])):
            pipe.load_lora_weights(str(path), adapter_name="style", load_into_transformer_2=into_second)
            transformer.set_adapters(["style"], [weight])
    with torch.inference_mode():
        output = pipe(prompt=PROMPT, negative_prompt=settings.get("negative_prompt") or None, height=64, width=64,
                      num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=settings["guidance_scale"],
                      guidance_scale_2=settings["guidance2_scale"],
                      generator=torch.Generator("cpu").manual_seed(SEED), output_type="np", **home.pipeline_kwargs)
    return output.frames[0]


@pytest.fixture(scope="module")
def models():
    high, low = tiny.make_transformer(KIND, 0), tiny.make_transformer(KIND, 1)
    return high, low, random_pairs(high, TARGETS, RANK, SIZE)


def _home(folder, components, models, threshold, quantized=False, model_loras=None):
    high, low, pairs = models
    home = tiny.make_home(folder, KIND, quantized=quantized, components=components, model=high, model2=low,
                          settings={**SETTINGS, "switch_threshold": threshold})
    write_wan_lora(home.root / FOLDER / "style.safetensors", pairs, ALPHA)
    if model_loras is not None:
        path = home.root / "finetunes" / f"{home.model_id}.json"
        data = json.loads(path.read_text())
        data["model"].update(loras=["style.safetensors"], loras_multipliers=[model_loras])
        path.write_text(json.dumps(data))
    return home


def _cli(home, monkeypatch, output, *extra):
    """``wangp generate`` in-process; the frames it hands to the mp4 writer (before encoding) and its record."""
    seen = {}
    write = video_module.write_video

    def capture(path, frames, *args, **kwargs):
        seen["frames"] = np.array(frames)
        return write(path, frames, *args, **kwargs)

    monkeypatch.setattr(video_module, "write_video", capture)
    args = [arg for key, value in home.pipeline_kwargs.items() for arg in ("--pipeline-arg",
                                                                          f"{key}={json.dumps(value)}")]
    result = invoke("generate", "-m", home.model_id, "--prompt", PROMPT, "--seed", SEED, "--frames", FRAMES,
                    "--steps", STEPS, "--format", "json", "-o", output, *extra, *args, home=home.root)
    assert result.exit_code == 0, result.output
    return seen["frames"], json.loads(result.stdout)


def _settings(home) -> dict:
    request = build_request(Catalog(Home(home.root)), home.model_id, {"seed": SEED, "steps": STEPS,
                                                                      "frames": FRAMES, "prompt": PROMPT})
    return request.settings


@pytest.fixture(scope="module")
def reference_at(components, models, threshold, tmp_path_factory):
    """(weights (high, low), switch_threshold) -> the hand-built pipeline's frames with the LoRA merged at those
    weights."""
    high, low, pairs = models
    home = _home(tmp_path_factory.mktemp("reference"), components, models, threshold)
    settings = _settings(home)
    cache = {}

    def get(weights, at=threshold):
        if (weights, at) not in cache:
            high_merged, low_merged = (merged_by_hand(model, pairs, TARGETS, weight, ALPHA / RANK)
                                       for model, weight in ((high, weights[0]), (low, weights[1])))
            cache[weights, at] = _reference(home, {**settings, "switch_threshold": at}, high_merged, low_merged)
        return cache[weights, at]

    return get


@pytest.fixture(scope="module")
def references(reference_at):
    """weights -> the reference frames at the tests' ``switch_threshold``."""
    return reference_at


@pytest.fixture(scope="module")
def applied_at(components, models, threshold, tmp_path_factory):
    """(weights, switch_threshold) -> the frames of the plain pipeline with the LoRA file loaded by diffusers
    itself (applied at run time, as wangp does, where the hand merge rounds the merged weights once)."""
    high, low, _ = models
    home = _home(tmp_path_factory.mktemp("applied"), components, models, threshold)
    settings = _settings(home)
    cache = {}

    def get(weights, at=threshold):
        if (weights, at) not in cache:
            cache[weights, at] = _reference(home, {**settings, "switch_threshold": at}, high, low,
                                            lora=(home.root / FOLDER / "style.safetensors", weights))
        return cache[weights, at]

    return get


@pytest.fixture(scope="module")
def int8_noise(components, models, threshold, tmp_path_factory):
    """How far int8 frames are from the 16-bit pipeline's without any LoRA (as test_loras_cli.py measures it): the
    largest difference, and the mean one."""
    from wangp_cli.generate.runner import Generator

    frames = {}
    for quantized in (False, True):
        home = _home(tmp_path_factory.mktemp(f"plain-{quantized}"), components, models, threshold, quantized)
        catalog = Catalog(Home(home.root))
        request = build_request(catalog, home.model_id, {"seed": SEED, "steps": STEPS, "frames": FRAMES,
                                                         "prompt": PROMPT},
                                preference=home.preference, pipeline_kwargs=home.pipeline_kwargs)
        frames[quantized] = Generator(catalog).render(request).result.frames
    difference = np.abs(frames[True] - frames[False])
    return float(difference.max()), float(difference.mean())


def _bf16_noise(references, weights) -> float:
    """How far the hand-built frames move when the multipliers move by 0.1 %: the bf16 rounding noise of the
    reference itself (the tiny models have multipliers where a rounding flip moves a few pixels by 0.04)."""
    nudged = tuple(w * 1.001 for w in weights)
    return float(np.abs(references(nudged) - references(weights)).max())


def _check(frames, references, applied, weights, others, int8_noise=None):
    """The frames are those of ``weights``: 16-bit (``int8_noise`` None), exactly those of diffusers' own LoRA
    loading (``applied``); within noise of the hand merge; on average nearer to diffusers' frames of ``weights``
    than to its frames of every other split. The noise: the reference's own bf16 noise, how far diffusers' run-time
    LoRA is from the hand merge (the rounding order: on these tiny models up to a fifth of the LoRA's effect, as
    large as the mean difference between two splits, so the splits are told apart with diffusers' own LoRA
    loading), int8's (``int8_noise``: largest and mean, without a LoRA)."""
    expected, plain = references(weights), references((0.0, 0.0))
    at_run_time = applied(weights)
    if int8_noise is None:
        np.testing.assert_array_equal(frames, at_run_time)
    effect = float(np.abs(expected - plain).max())
    error = float(np.abs(frames - expected).max())
    int8_max, int8_mean = int8_noise or (0.0, 0.0)
    noise = _bf16_noise(references, weights) + float(np.abs(at_run_time - expected).max()) + int8_max
    assert effect > 0.02, effect  # the LoRA changes the video
    assert error < 0.1 * effect + noise and error < effect, (error, effect, noise)
    # int8 applies the LoRA as a forward hook (x·deltaᵀ in fp32), another rounding order than PEFT's; on these tiny
    # models the orders differ on average by about as much as two neighbouring splits (0.5;0.5 and 0;1): nearer to
    # its own split than to any other is what can be told apart
    mean = float(np.abs(frames - at_run_time).mean())
    for other in set(others) - {weights}:
        assert mean < (1.0 if int8_noise else 0.5) * float(np.abs(frames - applied(other)).mean()) + int8_mean, other


@pytest.mark.parametrize("quantized", [False, True], ids=["16bit", "int8"])
@pytest.mark.parametrize("token", PHASES)
def test_phase_multipliers_pick_the_transformers(token, quantized, components, models, threshold, references,
                                                 applied_at, int8_noise, monkeypatch, tmp_path):
    home = _home(tmp_path / "home", components, models, threshold, quantized, model_loras=token)
    frames, record = _cli(home, monkeypatch, tmp_path / "out.mp4",
                          "--quantization", "int8" if quantized else "none")
    assert record["quantized"] is quantized and record["transformer2"]
    _check(frames, references, applied_at, PHASES[token], [(0.0, 0.0), *PHASES.values()],
           int8_noise if quantized else None)
    metadata = read_metadata(tmp_path / "out.mp4")
    assert metadata["transformer_loras_filenames"] == ["style.safetensors"]
    assert metadata["transformer_loras_multipliers"] == [token]
    assert (metadata["guidance_phases"], metadata["switch_threshold"]) == (2, threshold)


def test_one_zero_follows_the_transformer_on_a_threshold_timestep(components, models, timesteps, reference_at,
                                                                   applied_at, monkeypatch, tmp_path):
    """A ``switch_threshold`` equal to a timestep: WanGP switches there (``t <= switch_threshold``), and so does
    wangp's pipeline (its boundary a hair above the threshold); phase 1 of the LoRA multipliers ends where the
    pipeline really switches, so ``"1;0"`` is the high-noise transformer's."""
    at = int(timesteps[2])
    assert at == timesteps[2] and switch_steps(timesteps, 2, at, 0)[0] == 2
    home = _home(tmp_path / "home", components, models, at, model_loras="1;0")
    frames, _ = _cli(home, monkeypatch, tmp_path / "out.mp4")
    _check(frames, functools.partial(reference_at, at=at), functools.partial(applied_at, at=at), (1.0, 0.0),
           [(0.0, 0.0), *PHASES.values()])


@pytest.mark.parametrize("quantized", [False, True], ids=["16bit", "int8"])
def test_lora_flag_applies_to_both_transformers(quantized, components, models, threshold, references, applied_at,
                                                int8_noise, monkeypatch, tmp_path):
    home = _home(tmp_path / "home", components, models, threshold, quantized)
    lora = home.root / FOLDER / "style.safetensors"
    frames, _ = _cli(home, monkeypatch, tmp_path / "out.mp4", "--quantization", "int8" if quantized else "none",
                     "--lora", f"{lora}:0.5")
    _check(frames, references, applied_at, (0.5, 0.5), [(0.0, 0.0), *PHASES.values()],
           int8_noise if quantized else None)
    metadata = read_metadata(tmp_path / "out.mp4")
    assert (metadata["activated_loras"], metadata["loras_multipliers"]) == (["style.safetensors"], "0.5")


def test_dry_run_shows_the_second_transformer(components, models, threshold, tmp_path):
    home = _home(tmp_path / "home", components, models, threshold)
    second = [str(p.relative_to(home.root)) for p in home.files2]
    result = invoke("generate", "-m", home.model_id, "--prompt", PROMPT, "--dry-run", "--format", "json",
                    home=home.root)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["transformer2"] == second
    assert plan["transformer"] == [str(p.relative_to(home.root)) for p in home.files]
    result = invoke("generate", "-m", home.model_id, "--prompt", PROMPT, "--dry-run", home=home.root)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if line.startswith("transformer2"))
    assert second[0] in row and "bf16" in row
    plain = tiny.make_home(tmp_path / "single", "t2v", components=None)
    result = invoke("generate", "-m", plain.model_id, "--prompt", PROMPT, "--dry-run", "--format", "json",
                    home=plain.root)
    assert result.exit_code == 0 and "transformer2" not in json.loads(result.stdout)
