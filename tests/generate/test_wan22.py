"""Wan 2.2 through ``wangp generate`` on CPU: A14B with two transformers (URLs + URLs2, switch at
``switch_threshold``) and TI2V 5B (48 latent channels, the Wan 2.2 VAE), 16-bit and quanto int8, tiny random models
in WanGP's layout; frames equal to the plain diffusers pipeline built by hand from the same in-memory weights."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import invoke  # noqa: E402

from wangp_cli.core.definitions import Catalog  # noqa: E402
from wangp_cli.core.home import Home  # noqa: E402
from wangp_cli.core.jsonio import write_json  # noqa: E402
from wangp_cli.core.multipliers import switch_steps  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.request import build_request  # noqa: E402
from wangp_cli.generate.runner import Generator  # noqa: E402
from wangp_cli.generate.video import probe_video, read_metadata  # noqa: E402

#: The Wan 2.2 A14B settings of WanGP's defaults/t2v_2_2.json, at tiny sizes.
DUAL_SETTINGS = {"guidance_phases": 2, "switch_threshold": 875, "guidance_scale": 4, "guidance2_scale": 3,
                 "flow_shift": 12}
STEPS = 4


def _home(tmp_path, kind, components, quantized=False, **settings):
    extra = DUAL_SETTINGS if kind in tiny.DUAL_KINDS else {}
    return tiny.make_home(tmp_path / "home", kind, quantized=quantized, components=components(kind),
                          settings={**extra, **settings})


def _pipeline_args(home) -> list[str]:
    return [arg for key, value in home.pipeline_kwargs.items() for arg in ("--pipeline-arg",
                                                                          f"{key}={json.dumps(value)}")]


def _start_image(folder: Path) -> Path:
    path = folder / "start.png"
    tiny.make_image(64, seed=3).save(path)
    return path


def _generate(home, *extra):
    result = invoke("generate", "-m", home.model_id, "--prompt", "a dog on the beach", "--seed", 7, "--frames", 5,
                    "--steps", STEPS, "--format", "json", *extra, *_pipeline_args(home), home=home.root)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- end to end through the CLI ---------------------------------------------------------------------------------

@pytest.mark.parametrize("quantized", [False, True], ids=["16bit", "int8"])
@pytest.mark.parametrize("kind", ["t2v_2_2", "i2v_2_2"])
def test_a14b_generates_an_mp4_with_both_transformers(kind, quantized, components, tmp_path):
    home = _home(tmp_path, kind, components, quantized)
    image = ["--image", _start_image(tmp_path)] if kind == "i2v_2_2" else []
    record = _generate(home, "--quantization", "int8" if quantized else "none", *image)
    probe = probe_video(record["path"])
    assert (probe["frames"], probe["width"], probe["height"]) == (5, 64, 64)
    assert probe["fps"] == pytest.approx(16)
    assert record["transformer"] == [str(p.relative_to(home.root)) for p in home.files]
    assert record["transformer2"] == [str(p.relative_to(home.root)) for p in home.files2]
    assert record["quantized"] is quantized and record["architecture"] == kind
    metadata = read_metadata(Path(record["path"]))
    assert (metadata["guidance_phases"], metadata["switch_threshold"]) == (2, 875)
    assert (metadata["guidance_scale"], metadata["guidance2_scale"]) == (4, 3)
    assert metadata["base_model_type"] == kind


@pytest.mark.parametrize("with_image", [False, True], ids=["text", "image"])
def test_ti2v_5b_generates_at_24_fps_with_or_without_an_image(with_image, components, tmp_path):
    home = _home(tmp_path, "ti2v_2_2", components)
    image = ["--image", _start_image(tmp_path)] if with_image else []
    record = _generate(home, *image)
    probe = probe_video(record["path"])
    assert (probe["frames"], probe["width"], probe["height"]) == (5, 64, 64)
    assert probe["fps"] == pytest.approx(24)
    assert "transformer2" not in record


# -- the same frames as diffusers by hand ---------------------------------------------------------------------------

def _reference(home, request, quantized: bool, image=None):
    """``WanPipeline(..., transformer_2=..., boundary_ratio=...)`` (or TI2V's) by hand, the diffusers docs' recipe,
    on the weights the files were written from (in diffusers' format, ``from_pretrained(torch_dtype=bf16)``)."""
    import diffusers
    from optimum.quanto import freeze, qint8, quantize

    def prepared(model, slot: str):
        model = tiny.documented_transformer(model, home.root / f"reference-{slot}")  # the files' bf16 values
        if quantized:
            quantize(model, weights=qint8, include=["blocks.*"])
            freeze(model)
        return model

    settings = request.settings
    extra = {"vae": diffusers.AutoencoderKLWan.from_pretrained(home.components, subfolder="vae",
                                                               torch_dtype=torch.float32)}
    call = {"guidance_scale": settings["guidance_scale"], "negative_prompt": None}
    if home.model2 is not None:
        extra.update(transformer_2=prepared(home.model2, "transformer_2"),
                     boundary_ratio=settings["switch_threshold"] / 1000)
        call["guidance_scale_2"] = settings["guidance2_scale"]
    if home.kind == "ti2v_2_2":
        extra["expand_timesteps"] = True
    cls = diffusers.WanImageToVideoPipeline if image is not None else getattr(diffusers, tiny.PIPELINES[home.kind])
    with tiny.offline():
        pipe = cls.from_pretrained(home.components, transformer=prepared(home.model, "transformer"),
                                   torch_dtype=torch.bfloat16, **extra)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = diffusers.UniPCMultistepScheduler.from_config(pipe.scheduler.config,
                                                                   flow_shift=settings["flow_shift"])
    if image is not None:
        from PIL import Image

        call["image"] = Image.open(image).convert("RGB")
    with torch.inference_mode():
        output = pipe(prompt=settings["prompt"], height=64, width=64, num_frames=request.frames,
                      num_inference_steps=request.steps, generator=torch.Generator("cpu").manual_seed(request.seed),
                      output_type="np", **call, **home.pipeline_kwargs)
    return output.frames[0]


CASES = [("t2v_2_2", False, False), ("t2v_2_2", True, False), ("i2v_2_2", False, True), ("i2v_2_2", True, True),
         ("ti2v_2_2", False, False), ("ti2v_2_2", True, True)]


@pytest.mark.parametrize("kind,quantized,with_image", CASES,
                         ids=[f"{k}-{'int8' if q else '16bit'}{'-image' if i else ''}" for k, q, i in CASES])
def test_frames_equal_the_plain_diffusers_pipeline(kind, quantized, with_image, components, tmp_path):
    home = _home(tmp_path, kind, components, quantized)
    catalog = Catalog(Home(home.root))
    image = _start_image(tmp_path) if with_image else None
    request = build_request(catalog, home.model_id, {"seed": 11, "steps": STEPS}, preference=home.preference,
                            pipeline_kwargs=home.pipeline_kwargs, image=image)
    generator = Generator(catalog)
    frames = generator.render(request).result.frames
    expected = _reference(home, request, quantized, image)
    assert frames.shape == expected.shape == (9, 64, 64, 3)
    assert np.isfinite(frames).all() and frames.std() > 0.01
    np.testing.assert_array_equal(frames, expected)
    for model in (generator._pipe.transformer, getattr(generator._pipe, "transformer_2", None)):
        if model is not None:
            assert any(type(m).__name__ == "QLinear" for m in model.modules()) is quantized


# -- the switch point -----------------------------------------------------------------------------------------------

def _runs(generator, request) -> list[tuple[str, float]]:
    """(transformer slot, timestep) of every transformer call of one render (forward hooks on both)."""
    calls, handles = [], []
    generator.render(request)  # load first, then hook the loaded pipeline
    pipe = generator._pipe
    for slot in ("transformer", "transformer_2"):
        def hook(_module, _args, kwargs, slot=slot):
            calls.append((slot, float(kwargs["timestep"].flatten()[0])))
        handles.append(getattr(pipe, slot).register_forward_pre_hook(hook, with_kwargs=True))
    try:
        generator.render(request)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def test_the_switch_happens_where_switch_threshold_puts_it(components, tmp_path):
    home = _home(tmp_path, "t2v_2_2", components)
    catalog = Catalog(Home(home.root))
    generator = Generator(catalog)
    probe = build_request(catalog, home.model_id, {"steps": STEPS, "seed": 1}, preference=home.preference,
                          pipeline_kwargs=home.pipeline_kwargs)
    generator.render(probe)
    scheduler = copy.deepcopy(generator._pipe.scheduler)
    scheduler.set_timesteps(STEPS)
    timesteps = [float(t) for t in scheduler.timesteps]
    for after in (1, 2):  # a threshold between two timesteps: the switch lands on step `after`
        threshold = int((timesteps[after - 1] + timesteps[after]) / 2)
        request = build_request(catalog, home.model_id, {"steps": STEPS, "seed": 1}, preference=home.preference,
                                pipeline_kwargs=home.pipeline_kwargs, settings={"switch_threshold": threshold})
        calls = _runs(generator, request)
        assert generator._pipe.config.boundary_ratio == pytest.approx(threshold / 1000, abs=1e-5)
        assert [t for _, t in calls[::2]] == timesteps  # two calls a step (classifier-free guidance)
        assert all((slot == "transformer") == (t > threshold) for slot, t in calls)  # WanGP: low at t <= threshold
        first_low = next(i for i, (slot, _) in enumerate(calls[::2]) if slot == "transformer_2")
        assert first_low == after == switch_steps(timesteps, 2, threshold, 0)[0]  # WanGP's step too
    tie = timesteps[1]  # a threshold equal to a timestep: WanGP (t <= threshold) runs that step low-noise
    request = build_request(catalog, home.model_id, {"steps": STEPS, "seed": 1}, preference=home.preference,
                            pipeline_kwargs=home.pipeline_kwargs, settings={"switch_threshold": tie})
    slots = [slot for slot, _ in _runs(generator, request)[::2]]
    assert slots.index("transformer_2") == 1 == switch_steps(timesteps, 2, tie, 0)[0]
    one_phase = build_request(catalog, home.model_id, {"steps": STEPS, "seed": 1}, preference=home.preference,
                              pipeline_kwargs=home.pipeline_kwargs, settings={"guidance_phases": 1})
    assert {slot for slot, _ in _runs(generator, one_phase)} == {"transformer"}  # WanGP switches in phase 2 only


# -- refusals -------------------------------------------------------------------------------------------------------

def _definition(root: Path, model_id: str, model: dict, **settings) -> Path:
    write_json(root / "finetunes" / f"{model_id}.json", {"model": {"name": model_id, **model}, **settings})
    return root


def test_three_guidance_phases_are_refused_before_loading(tmp_path):
    root = _definition(tmp_path / "home", "three", {"architecture": "t2v_2_2", "URLs": ["ckpts/absent_high.safetensors"],
                                                   "URLs2": ["ckpts/absent_low.safetensors"]},
                       guidance_phases=3, switch_threshold=900, switch_threshold2=500)
    result = invoke("generate", "-m", "three", "--prompt", "x", home=root)
    assert result.exit_code == 2
    assert "'three': guidance_phases 3" in result.stderr and "no diffusers equivalent" in result.stderr
    result = invoke("generate", "-m", "three", "--prompt", "x", "--dry-run", home=root)
    assert result.exit_code == 2 and "guidance_phases 3" in result.stderr


@pytest.mark.parametrize("model,words", [
    ({"architecture": "t2v_2_2", "URLs": ["ckpts/a.safetensors"]}, "lists no low-noise transformer (URLs2)"),
    ({"architecture": "t2v_1.3B", "URLs": ["ckpts/a.safetensors"], "URLs2": ["ckpts/b.safetensors"]},
     "has a second transformer (URLs2), which the t2v_1.3B pipeline does not take"),
])
def test_a_second_transformer_must_match_the_architecture(model, words, tmp_path):
    root = _definition(tmp_path / "home", "odd", model)
    for name in ("a", "b"):
        (root / "ckpts").mkdir(exist_ok=True)
        (root / "ckpts" / f"{name}.safetensors").write_bytes(b"")
    result = invoke("generate", "-m", "odd", "--prompt", "x", home=root)
    assert result.exit_code == 1 and words in result.stderr, result.output


# -- quantize and download ------------------------------------------------------------------------------------------

def test_quantize_writes_both_transformers_and_generate_loads_them(components, tmp_path):
    home = _home(tmp_path, "t2v_2_2", components)
    result = invoke("quantize", home.model_id, "--dtype", "bf16", home=home.root)
    assert result.exit_code == 0, result.output
    high = home.root / "ckpts" / "tiny_t2v_2_2_quanto_bf16_int8.safetensors"
    low = home.root / "ckpts" / "tiny_t2v_2_2_low_quanto_bf16_int8.safetensors"
    assert high.is_file() and low.is_file()
    record = _generate(home, "--quantization", "int8")
    assert record["quantized"] is True
    assert [Path(p).name for p in record["transformer"] + record["transformer2"]] == [high.name, low.name]


def test_download_plans_both_transformers_and_the_components(tmp_path):
    (tmp_path / "home").mkdir()
    result = invoke("download", "t2v_2_2", "--dry-run", "--format", "json", "--quantization", "none",
                    home=tmp_path / "home",
                    env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code in (0, 1), result.output
    plan = json.loads(result.stdout)
    dests = {f["role"]: f["dest"] for f in plan["files"]}
    assert dests["transformer"].endswith("wan2.2_text2video_14B_high_mbf16.safetensors")
    assert dests["transformer2"].endswith("wan2.2_text2video_14B_low_mbf16.safetensors")
    [component] = plan["components"]
    assert component["repo"] == "Wan-AI/Wan2.2-T2V-A14B-Diffusers"
    assert set(component["folders"]) == {"text_encoder", "tokenizer", "vae", "scheduler"}


def test_doctor_self_test_runs_a_dual_model():
    from wangp_cli.generate.doctor import self_test

    report = self_test("t2v_2_2")
    assert report["ok"] is True, report
    assert (report["frames"], report["width"], report["height"]) == (5, 64, 64)


def test_ti2v_sizes_are_floored_to_multiples_of_32(components, tmp_path):
    home = _home(tmp_path, "ti2v_2_2", components)
    request = build_request(Catalog(Home(home.root)), home.model_id, {"resolution": "1280x720"},
                            preference=home.preference)
    assert (request.width, request.height) == (1280, 704)  # WanGP's any2video: (h // 32) * 32
    assert request.settings["resolution"] == "1280x720"  # the metadata keeps what was asked
