"""VACE 2.2 (``vace_14B_2_2``) through ``wangp generate`` on CPU: WanGP's t2v_2_2 pair (URLs + URLs2) with the Wan
2.1 VACE module loaded into both, run by diffusers' ``WanVACEPipeline(transformer_2=..., boundary_ratio=...)`` with
a control video; frames equal to that pipeline built by hand from the same in-memory weights (16-bit and quanto
int8). Also: a guidance switch on one transformer (``guidance_phases`` 2 with a different ``guidance2_scale``) is
refused before loading, and accepted when both scales are equal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import invoke

from wangp_cli.core.definitions import Catalog
from wangp_cli.core.home import Home
from wangp_cli.core.jsonio import write_json
from wangp_cli.core.multipliers import switch_steps
from wangp_cli.generate import tiny
from wangp_cli.generate.loras import scheduler_timesteps
from wangp_cli.generate.request import build_request
from wangp_cli.generate.runner import Generator
from wangp_cli.generate.video import probe_video, read_metadata, write_video

KIND = "vace_2_2"
#: WanGP's defaults/vace_14B_2_2.json settings, with two different guidance scales so that the phases show.
SETTINGS = {"guidance_phases": 2, "switch_threshold": 875, "guidance_scale": 4, "guidance2_scale": 3,
            "flow_shift": 12}
STEPS = 4
#: What WanGP's quantizer does to the VACE module (test_generate's recipe): the blocks, not VACE's projections.
QUANTO = {"include": ["blocks.*", "vace_blocks.*"], "exclude": ["vace_blocks.*.proj_in", "vace_blocks.*.proj_out"]}


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    """A components folder shaped as Wan-AI/Wan2.2-T2V-A14B-Diffusers (the registry's repo for vace_14B_2_2):
    saved by ``WanPipeline``, whose model_index names no VACE transformer; WanVACEPipeline loads it all the same."""
    folder = tiny.make_components("t2v_2_2", tmp_path_factory.mktemp("components"))
    assert json.loads((folder / "model_index.json").read_text())["_class_name"] == "WanPipeline"
    return folder


def _home(tmp_path, components, quantized=False, **settings):
    return tiny.make_home(tmp_path / "home", KIND, quantized=quantized, components=components,
                          settings={**SETTINGS, **settings})


def _control_video(path: Path) -> Path:
    """9 frames of moving ramps, 64x64."""
    ramp = np.linspace(0, 1, 64, dtype=np.float32)
    frames = np.stack([np.stack([np.roll(ramp, t * 4)[None, :].repeat(64, 0), ramp[:, None].repeat(64, 1),
                                 np.full((64, 64), t / 8, np.float32)], -1) for t in range(9)])
    write_video(path, frames, 16)
    return path


def _pipeline_args(home) -> list[str]:
    return [arg for key, value in home.pipeline_kwargs.items()
            for arg in ("--pipeline-arg", f"{key}={json.dumps(value)}")]


# -- end to end through the CLI ---------------------------------------------------------------------------------

@pytest.mark.parametrize("quantized", [False, True], ids=["16bit", "int8"])
def test_vace_2_2_generates_an_mp4_with_the_module_in_both_transformers(quantized, components, tmp_path):
    home = _home(tmp_path, components, quantized)
    assert home.files[1] == home.files2[1]  # one module file, in both transformers' lists
    result = invoke("generate", "-m", home.model_id, "--prompt", "a dancer on a stage", "--seed", 7, "--frames", 5,
                    "--steps", STEPS, "--control-video", _control_video(tmp_path / "control.mp4"),
                    "--quantization", "int8" if quantized else "none", "--format", "json", *_pipeline_args(home),
                    home=home.root)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    probe = probe_video(record["path"])
    assert (probe["frames"], probe["width"], probe["height"]) == (5, 64, 64)
    assert probe["fps"] == pytest.approx(16)
    assert record["transformer"] == [str(p.relative_to(home.root)) for p in home.files]
    assert record["transformer2"] == [str(p.relative_to(home.root)) for p in home.files2]
    assert record["quantized"] is quantized and record["architecture"] == "vace_14B_2_2"
    metadata = read_metadata(Path(record["path"]))
    assert (metadata["guidance_phases"], metadata["switch_threshold"]) == (2, 875)
    assert (metadata["guidance_scale"], metadata["guidance2_scale"]) == (4, 3)
    assert metadata["base_model_type"] == "vace_14B_2_2"


# -- the same frames as diffusers by hand ---------------------------------------------------------------------------

def _reference(home, request, quantized: bool, reference_image=None):
    """``WanVACEPipeline(..., transformer_2=..., boundary_ratio=switch_threshold / 1000)`` by hand on the in-memory
    models the files were written from (bf16 in diffusers' format, ``from_pretrained(torch_dtype=bf16)``; int8:
    quantized as the files were), the control video read here."""
    import diffusers
    import imageio_ffmpeg
    from optimum.quanto import freeze, qint8, quantize
    from PIL import Image

    def prepared(model, slot: str):
        model = tiny.documented_transformer(model, home.root / f"reference-{slot}")  # the files' bf16 values
        if quantized:
            quantize(model, weights=qint8, **QUANTO)
            freeze(model)
        return model

    settings = request.settings
    vae = diffusers.AutoencoderKLWan.from_pretrained(home.components, subfolder="vae", torch_dtype=torch.float32)
    with tiny.offline():
        pipe = diffusers.WanVACEPipeline.from_pretrained(
            home.components, transformer=prepared(home.model, "transformer"),
            transformer_2=prepared(home.model2, "transformer_2"), vae=vae,
            boundary_ratio=settings["switch_threshold"] / 1000, torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = diffusers.UniPCMultistepScheduler.from_config(pipe.scheduler.config,
                                                                   flow_shift=settings["flow_shift"])
    reader = imageio_ffmpeg.read_frames(str(request.control_video))
    size = next(reader)["size"]
    video = [Image.frombytes("RGB", size, raw) for _, raw in zip(range(request.frames), reader)]
    reader.close()
    extra = {"reference_images": [Image.open(reference_image).convert("RGB")]} if reference_image else {}
    with torch.inference_mode():
        output = pipe(prompt=settings["prompt"], negative_prompt=None, video=video, height=64, width=64,
                      num_frames=request.frames, num_inference_steps=request.steps,
                      guidance_scale=settings["guidance_scale"], guidance_scale_2=settings["guidance2_scale"],
                      generator=torch.Generator("cpu").manual_seed(request.seed), output_type="np", **extra,
                      **home.pipeline_kwargs)
    return output.frames[0]


@pytest.mark.parametrize("quantized,with_reference", [(False, False), (False, True), (True, False)],
                         ids=["16bit", "16bit-reference-image", "int8"])
def test_frames_equal_the_plain_diffusers_vace_pipeline(quantized, with_reference, components, tmp_path):
    home = _home(tmp_path, components, quantized)
    catalog = Catalog(Home(home.root))
    reference = None
    if with_reference:
        reference = tmp_path / "reference.png"
        tiny.make_image(64, seed=5).save(reference)
    request = build_request(catalog, home.model_id, {"seed": 11, "steps": STEPS}, preference=home.preference,
                            pipeline_kwargs=home.pipeline_kwargs,
                            control_video=_control_video(tmp_path / "control.mp4"),
                            reference_images=[reference] if reference else ())
    generator = Generator(catalog)
    frames = generator.render(request).result.frames
    pipe = generator._pipe
    assert type(pipe).__name__ == "WanVACEPipeline"
    # the switch falls inside the run: both transformers denoise (WanGP's step of it too)
    switch = switch_steps(scheduler_timesteps(pipe.scheduler, STEPS), 2, SETTINGS["switch_threshold"], 0)[0]
    assert 0 < switch < STEPS
    expected = _reference(home, request, quantized, reference)
    assert frames.shape == expected.shape == (9, 64, 64, 3)
    assert np.isfinite(frames).all() and frames.std() > 0.01
    np.testing.assert_array_equal(frames, expected)
    for model in (pipe.transformer, pipe.transformer_2):
        assert type(model).__name__ == "WanVACETransformer3DModel" and len(model.vace_blocks) == 5
        assert any(type(m).__name__ == "QLinear" for m in model.modules()) is quantized


def test_the_module_is_what_both_transformers_share(components, tmp_path):
    """The low-noise transformer's VACE blocks are the module file's (the high-noise one's), its other blocks its
    own: frames change when the low-noise transformer's own weights differ."""
    home = _home(tmp_path, components)
    catalog = Catalog(Home(home.root))
    generator = Generator(catalog)
    request = build_request(catalog, home.model_id, {"seed": 2, "steps": STEPS}, preference=home.preference,
                            pipeline_kwargs=home.pipeline_kwargs)
    generator.render(request)
    high, low = generator._pipe.transformer, generator._pipe.transformer_2
    for name, tensor in high.state_dict().items():
        if name.startswith(("vace_blocks.", "vace_patch_embedding.")):
            assert torch.equal(low.state_dict()[name], tensor), name
    assert not torch.equal(high.blocks[0].attn1.to_q.weight, low.blocks[0].attn1.to_q.weight)


# -- the WanGP definition: t2v_2_2's files and the vace_14B module ---------------------------------------------------

def _definition(root: Path, model_id: str, model: dict, **settings) -> Path:
    write_json(root / "finetunes" / f"{model_id}.json", {"model": {"name": model_id, **model}, **settings})
    return root


def test_the_wangp_definition_plans_both_transformers_one_module_and_the_t2v_components(tmp_path):
    """WanGP's vace_14B_2_2: URLs and URLs2 refer to t2v_2_2, modules to the vace_14B definition."""
    root = _definition(tmp_path / "home", "vace22", {"architecture": "vace_14B_2_2", "URLs": "t2v_2_2",
                                                     "URLs2": "t2v_2_2", "modules": ["vace_14B"]},
                       guidance_phases=2, guidance_scale=1, guidance2_scale=1, switch_threshold=875)
    result = invoke("download", "vace22", "--dry-run", "--format", "json", "--quantization", "none", home=root,
                    env={"HF_HUB_OFFLINE": "1"})
    assert result.exit_code in (0, 1), result.output
    plan = json.loads(result.stdout)
    dests = {}
    for planned in plan["files"]:
        dests.setdefault(planned["role"], []).append(planned["dest"])
    assert [Path(d).name for d in dests["transformer"]] == ["wan2.2_text2video_14B_high_mbf16.safetensors"]
    assert [Path(d).name for d in dests["transformer2"]] == ["wan2.2_text2video_14B_low_mbf16.safetensors"]
    assert [Path(d).name for d in dests["module"]] == ["wan2.1_Vace_14B_module_mbf16.safetensors"]
    [component] = plan["components"]
    assert component["repo"] == "Wan-AI/Wan2.2-T2V-A14B-Diffusers"
    assert set(component["folders"]) == {"text_encoder", "tokenizer", "vae", "scheduler"}


def test_vace_2_2_is_a_generated_two_transformer_architecture():
    from wangp_cli.generate.engine import PIPELINES
    from wangp_cli.generate.weights import transformer_slots

    assert PIPELINES["vace_14B_2_2"] == "WanVACEPipeline"
    assert transformer_slots("vace_14B_2_2") == {"transformer": "URLs", "transformer_2": "URLs2"}
    assert KIND in tiny.DUAL_KINDS and tiny.ARCHITECTURES[KIND] == "vace_14B_2_2"


# -- refusals: a guidance switch on one transformer -----------------------------------------------------------------

@pytest.mark.parametrize("architecture", ["t2v_1.3B", "vace_14B", "ti2v_2_2"])
def test_two_guidance_phases_on_one_transformer_are_refused_before_loading(architecture, tmp_path):
    root = _definition(tmp_path / "home", "switch", {"architecture": architecture,
                                                     "URLs": ["ckpts/absent.safetensors"]},
                       guidance_phases=2, guidance_scale=5, guidance2_scale=2.5, switch_threshold=900)
    for dry_run in ((), ("--dry-run",)):
        result = invoke("generate", "-m", "switch", "--prompt", "x", *dry_run, home=root)
        assert result.exit_code == 2, result.output
        message = result.stderr
        assert ("'switch': guidance_phases 2 with guidance2_scale 2.5 different from guidance_scale 5" in message
                and "one-transformer pipelines cannot" in message and "set guidance_phases 1, or guidance2_scale "
                "equal to guidance_scale" in message), message
        assert "Traceback" not in result.output
    result = invoke("generate", "-m", "switch", "--prompt", "x", "--guidance", 2.5, home=root)
    assert result.exit_code != 2 and "guidance_phases" not in result.stderr  # now equal: on to the missing file


def test_two_phases_of_equal_guidance_are_one_phase(tmp_path):
    """Accepted, and the frames are those of guidance_phases 1 (also: a dual model keeps its two scales)."""
    home = tiny.make_home(tmp_path / "home", "t2v", components=tiny.make_components("t2v", tmp_path / "c"))
    catalog = Catalog(Home(home.root))
    generator = Generator(catalog)
    frames = []
    for phases in ({"guidance_phases": 1}, {"guidance_phases": 2, "guidance2_scale": 4, "switch_threshold": 900}):
        request = build_request(catalog, home.model_id, {"seed": 4, "guidance": 4}, preference=home.preference,
                                pipeline_kwargs=home.pipeline_kwargs, settings=phases)
        frames.append(generator.render(request).result.frames)
    np.testing.assert_array_equal(frames[0], frames[1])
    from wangp_cli.families import family

    assert family("wan").refusals("dual", "vace_14B_2_2", SETTINGS) == []
