"""``wangp generate`` end to end on CPU: tiny random models written in WanGP's layout (16-bit and quanto int8),
components as a local diffusers folder, the mp4 read back; frames equal to the plain diffusers pipeline's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from typer.testing import CliRunner  # noqa: E402

from wangp_cli.cli import app  # noqa: E402
from wangp_cli.core.definitions import Catalog  # noqa: E402
from wangp_cli.core.home import Home  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.request import build_request  # noqa: E402
from wangp_cli.generate.runner import Generator  # noqa: E402
from wangp_cli.generate.video import probe_video, read_metadata  # noqa: E402

#: (tiny kind, architecture): every documented architecture, Wan t2v at 1.3B and 14B, VACE as module and single file.
CASES = [("t2v", "t2v_1.3B"), ("t2v", "t2v"), ("i2v", "i2v"), ("i2v", "i2v_720p"), ("flf2v", "flf2v_720p"),
         ("vace", "vace_14B"),
         ("vace", "vace_1.3B"), ("hunyuan", "hunyuan"), ("hunyuan_i2v", "hunyuan_i2v")]
FPS = {"t2v_1.3B": 16, "t2v": 16, "i2v": 16, "i2v_720p": 16, "flf2v_720p": 16, "vace_14B": 16, "vace_1.3B": 16, "hunyuan": 24,
       "hunyuan_i2v": 24}
runner = CliRunner()


def pipeline_args(home) -> list[str]:
    args = []
    for key, value in home.pipeline_kwargs.items():
        args += ["--pipeline-arg", f"{key}={json.dumps(value)}"]
    return args


def images(home, folder: Path) -> dict:
    """The start (and end) images a kind needs, as build_request keywords."""
    found = {}
    if home.kind in tiny.IMAGE_KINDS:
        found["image"] = folder / "start.png"
        tiny.make_image(64, seed=3).save(found["image"])
    if home.kind == "flf2v":
        found["last_image"] = folder / "end.png"
        tiny.make_image(64, seed=4).save(found["last_image"])
    return found


def image_args(home, folder: Path) -> list[str]:
    return [arg for key, path in images(home, folder).items() for arg in (f"--{key.replace('_', '-')}", str(path))]


def wangp(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("quantized", [False, True], ids=["16bit", "int8"])
@pytest.mark.parametrize("kind,architecture", CASES, ids=[a for _, a in CASES])
def test_generate_writes_the_mp4(kind, architecture, quantized, components, tmp_path):
    target = "july" if architecture == "i2v_720p" else "v12"  # WanGP 12: i2v_720p is an i2v definition
    home = tiny.make_home(tmp_path / "home", kind, architecture=architecture, quantized=quantized,
                          components=components(kind), target=target)
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--prompt", "a dog running on the beach",
                   "--seed", 7, "--frames", 5, "--quantization", "int8" if quantized else "none",
                   "--format", "json", "--target", target, *image_args(home, tmp_path), *pipeline_args(home))
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    video = Path(record["path"])
    assert video.parent == home.root / "outputs" and video.name.endswith("_seed7_a dog running on the beach.mp4")
    probe = probe_video(video)
    assert (probe["frames"], probe["width"], probe["height"]) == (5, 64, 64)
    assert probe["fps"] == pytest.approx(FPS[architecture])
    assert record["quantized"] is quantized and record["seed"] == 7
    assert record["device"] == ("cpu" if record["profile"] == "cpu" else "cuda")  # the device the profile implies
    assert record["transformer"] == [str(p.relative_to(home.root)) for p in home.files]
    assert set(record["timings"]) == {"download", "load", "encode", "denoise", "decode", "save"}
    metadata = read_metadata(video)
    assert metadata["prompt"] == "a dog running on the beach" and metadata["seed"] == 7
    assert metadata["video_length"] == 5 and metadata["resolution"] == "64x64"
    assert metadata["model_type"] == home.model_id and metadata["base_model_type"] == architecture
    # WanGP 12 records the raw chosen entry (here a local path), WanGP 7 the file name
    assert metadata["model_filename"] == (home.files[0].name if target == "july" else
                                          str(home.files[0].relative_to(home.root)))
    assert metadata["type"].startswith("WanGP v") and metadata["type"].endswith(f"Tiny {architecture} (random weights)")
    sidecar = json.loads(Path(record.pop("sidecar")).read_text())
    assert sidecar == record and Path(record["path"]).with_suffix(".json").is_file()


# -- equivalence with the plain diffusers pipeline -------------------------------------------------------------------

QUANTO_TOWERS = {"wan": (["blocks.*", "vace_blocks.*"], ["vace_blocks.*.proj_in", "vace_blocks.*.proj_out"]),
                 "hunyuan": (["transformer_blocks.*", "single_transformer_blocks.*"], None)}


def reference_frames(home, request, quantized: bool):
    """The diffusers docs' recipe, by hand, on the weights the files were written from."""
    import diffusers
    from diffusers import UniPCMultistepScheduler
    from optimum.quanto import freeze, qint8, quantize

    dtype = torch.bfloat16
    family = "hunyuan" if home.kind in tiny.HUNYUAN_KINDS else "wan"
    model = tiny.documented_transformer(home.model, home.root / "reference-transformer")
    if quantized:
        include, exclude = QUANTO_TOWERS[family]
        quantize(model, weights=qint8, include=include, exclude=exclude)
        freeze(model)
    cls = getattr(diffusers, tiny.PIPELINES[home.kind])
    extra = {}
    if family == "wan":
        extra["vae"] = diffusers.AutoencoderKLWan.from_pretrained(home.components, subfolder="vae",
                                                                  torch_dtype=torch.float32)
        if home.kind in ("i2v", "flf2v"):
            from transformers import CLIPVisionModel

            extra["image_encoder"] = CLIPVisionModel.from_pretrained(home.components, subfolder="image_encoder",
                                                                     torch_dtype=torch.float32)
    with tiny.offline():
        pipe = cls.from_pretrained(home.components, transformer=model, torch_dtype=dtype, **extra)
    pipe.set_progress_bar_config(disable=True)
    settings = request.settings
    if family == "wan":
        pipe.scheduler = UniPCMultistepScheduler.from_config(pipe.scheduler.config, flow_shift=settings["flow_shift"])
        call = {"guidance_scale": settings["guidance_scale"], "negative_prompt": settings["negative_prompt"] or None}
    else:
        pipe.scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config,
                                                                               shift=settings["flow_shift"])
        call = {"guidance_scale": settings["embedded_guidance_scale"]}
    if home.kind in tiny.IMAGE_KINDS:
        from PIL import Image

        call["image"] = Image.open(request.image).convert("RGB")
    if request.last_image is not None:
        call["last_image"] = Image.open(request.last_image).convert("RGB")
    with torch.inference_mode():
        output = pipe(prompt=settings["prompt"], height=64, width=64, num_frames=request.frames,
                      num_inference_steps=request.steps, generator=torch.Generator("cpu").manual_seed(request.seed),
                      output_type="np", **call, **home.pipeline_kwargs)
    return output.frames[0], model


@pytest.mark.parametrize("quantized", [False, True], ids=["16bit", "int8"])
@pytest.mark.parametrize("kind", tiny.CORE_KINDS)
def test_frames_equal_the_plain_diffusers_pipeline(kind, quantized, components, tmp_path):
    home = tiny.make_home(tmp_path / "home", kind, quantized=quantized, components=components(kind))
    catalog = Catalog(Home(home.root))
    request = build_request(catalog, home.model_id, {"seed": 11, "prompt": "a red fox in the forest"},
                            preference=home.preference, pipeline_kwargs=home.pipeline_kwargs,
                            **images(home, tmp_path))
    generator = Generator(catalog)
    rendering = generator.render(request)
    expected, reference_model = reference_frames(home, request, quantized)
    frames = rendering.result.frames
    assert frames.shape == expected.shape == (9, 64, 64, 3)
    assert np.isfinite(frames).all() and frames.std() > 0.01  # a real picture, not a constant
    np.testing.assert_array_equal(frames, expected)
    loaded = {n for n, m in generator._pipe.transformer.named_modules() if type(m).__name__ == "QLinear"}
    assert loaded == {n for n, m in reference_model.named_modules() if type(m).__name__ == "QLinear"}
    assert bool(loaded) is quantized


def test_the_same_generator_reuses_the_loaded_pipeline(components, tmp_path):
    home = tiny.make_home(tmp_path / "home", "t2v", components=components("t2v"))
    catalog = Catalog(Home(home.root))
    generator = Generator(catalog)
    records = []
    for seed in (1, 2):
        request = build_request(catalog, home.model_id, {"seed": seed, "frames": 5}, preference=home.preference,
                                output=tmp_path / "out", pipeline_kwargs=home.pipeline_kwargs)
        records.append(generator.generate(request))
    assert [r["model_reused"] for r in records] == [False, True]
    assert records[0]["path"] != records[1]["path"] and all(Path(r["path"]).is_file() for r in records)


def test_auto_quantize_quantizes_a_16bit_file_at_load(components, tmp_path):
    home = tiny.make_home(tmp_path / "home", "t2v", components=components("t2v"))
    path = home.root / "finetunes" / f"{home.model_id}.json"
    data = json.loads(path.read_text())
    data["model"]["auto_quantize"] = True
    path.write_text(json.dumps(data))
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--frames", 5, "--format", "json",
                   *pipeline_args(home))
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["quantized"] is True and probe_video(record["path"])["frames"] == 5


def test_random_seed_is_reported_and_stored(components, tmp_path):
    home = tiny.make_home(tmp_path / "home", "t2v", components=components("t2v"))
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--seed", -1, "--frames", 1,
                   "--quantization", "none", "-o", tmp_path / "clip.mp4", *pipeline_args(home))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "clip.mp4")
    seed = int(next(line for line in result.stderr.splitlines() if line.startswith("seed ")).split()[1])
    assert 0 <= seed and read_metadata(tmp_path / "clip.mp4")["seed"] == seed
    stages = [line.split()[0] for line in result.stderr.splitlines()[1:] if not line.startswith("warning:")]
    assert stages == ["download", "load", "encode", "denoise", "decode", "save"]  # nothing else on stderr


def test_missing_components_offline_is_a_clear_error(components, tmp_path, monkeypatch):
    home = tiny.make_home(tmp_path / "home", "t2v", components=components("t2v"))
    import shutil

    shutil.rmtree(home.components)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--quantization", "none",
                   *pipeline_args(home))
    assert result.exit_code == 1
    assert "offline" in result.stderr.lower() and "Wan2.1-T2V-1.3B-Diffusers" in result.stderr


def test_weights_of_another_architecture_are_refused_before_any_run(components, tmp_path):
    home = tiny.make_home(tmp_path / "home", "t2v", architecture="i2v", components=components("i2v"))
    image = tmp_path / "start.png"
    tiny.make_image(64).save(image)
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--image", image, "--quantization", "none",
                   *pipeline_args(home))
    assert result.exit_code == 1, result.stderr
    assert "do not fit the model: a text-to-video transformer, the architecture is image-to-video" in result.stderr


def test_vace_without_its_module_is_refused(components, tmp_path):
    home = tiny.make_home(tmp_path / "home", "t2v", architecture="vace_1.3B", components=components("vace"))
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--quantization", "none",
                   *pipeline_args(home))
    assert result.exit_code == 1, result.stderr
    assert "no VACE blocks" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["--frames", 8], "4k+1"), (["--resolution", "60x64"], "multiples of 16"), (["--steps", 0], "at least 1"),
    (["--resolution", "wide"], "WIDTHxHEIGHT"), (["--seed", -5], "seed -5"),
    (["--control-video", "x.mp4"], "Vace"), (["--profile", "turbo"], "unknown profile"),
    (["--pipeline-arg", "oops"], "KEY=VALUE"),
])
def test_invalid_values_are_refused_before_any_model_loads(args, message, tmp_path):
    # no weights, no components at all: a refusal must come before anything is read
    home = tmp_path / "home"
    (home / "finetunes").mkdir(parents=True)
    (home / "finetunes" / "mine.json").write_text(json.dumps(
        {"model": {"name": "Mine", "architecture": "t2v", "URLs": ["ckpts/mine_bf16.safetensors"]}}))
    result = wangp("--home", home, "generate", "-m", "mine", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_image_to_video_needs_an_image(tmp_path):
    home = tmp_path / "home"
    (home / "finetunes").mkdir(parents=True)
    result = wangp("--home", home, "generate", "-m", "i2v", "--prompt", "x")
    assert result.exit_code == 2 and "give --image" in result.stderr


def test_unsupported_architecture_is_refused(tmp_path):
    home = tmp_path / "home"
    (home / "finetunes").mkdir(parents=True)
    result = wangp("--home", home, "generate", "-m", "ltxv_13B", "--prompt", "x")
    assert result.exit_code == 1 and "'ltxv_13B' is not yet supported by wangp (ltxv" in result.stderr
    result = wangp("--home", home, "generate", "-m", "ovi", "--prompt", "x")  # no diffusers pipeline at all
    assert result.exit_code == 1 and "'ovi' is a WanGP-only architecture (wan: diffusers has no pipeline" in \
        result.stderr
    result = wangp("--home", home, "generate", "-m", "ltxv_13B", "--prompt", "x", "--target", "july")
    assert result.exit_code == 1 and "'ltxv_13B' is not yet supported by wangp" in result.stderr


def test_doctor_self_test_generates_through_the_same_path():
    result = wangp("doctor", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["self_test"]["ok"] is True, report["self_test"]
    assert (report["self_test"]["frames"], report["self_test"]["width"]) == (5, 64)
    assert report["device"]["name"] and report["versions"]["diffusers"] != "missing"


def _control_video(path: Path) -> Path:
    from wangp_cli.generate.video import write_video

    ramp = np.linspace(0, 1, 64, dtype=np.float32)
    frames = np.stack([np.stack(list(np.meshgrid(ramp, ramp)) + [np.full((64, 64), t / 8, np.float32)], -1)
                       for t in range(9)])
    write_video(path, frames, 16)
    return path


@pytest.mark.parametrize("kind,option", [
    ("vace", "control_video"), ("vace", "mask"), ("vace", "reference_images"), ("flf2v", "last_image"),
    ("hunyuan", "negative_prompt"),
])
def test_conditioning_options_change_the_frames(kind, option, components, tmp_path):
    home = tiny.make_home(tmp_path / "home", kind, components=components(kind))
    catalog = Catalog(Home(home.root))
    generator = Generator(catalog)
    image = tmp_path / "start.png"
    tiny.make_image(64, seed=1).save(image)
    other = tmp_path / "other.png"
    tiny.make_image(64, seed=2).save(other)
    base = {"image": image} if kind in tiny.IMAGE_KINDS else {}
    flags = {"seed": 3, "negative_prompt": ""}
    if option == "control_video":
        extra = {"control_video": _control_video(tmp_path / "control.mp4")}
    elif option == "mask":
        base = {"control_video": _control_video(tmp_path / "control.mp4")}
        extra = {"mask": other}
    elif option == "reference_images":
        extra = {"reference_images": [other]}
    elif option == "last_image":
        base["last_image"] = image
        extra = {"last_image": other}
    else:
        extra = {}
    frames = []
    for more, negative in ((base, ""), ({**base, **extra}, "blurry dark" if option == "negative_prompt" else "")):
        request = build_request(catalog, home.model_id, {**flags, "negative_prompt": negative,
                                                         "guidance": 3.0 if kind == "hunyuan" else None},
                                preference=home.preference, pipeline_kwargs=home.pipeline_kwargs, **more)
        frames.append(generator.render(request).result.frames)
    assert frames[0].shape == frames[1].shape == (9, 64, 64, 3)
    assert np.abs(frames[0] - frames[1]).max() > 1e-3, f"{option} made no difference"


def test_a_base_architecture_id_works_like_a_finetune(components, tmp_path):
    from wangp_cli.core.models import resolve_model

    home = tiny.make_home(tmp_path / "home", "t2v", components=components("t2v"))
    catalog = Catalog(Home(home.root))
    builtin = resolve_model(catalog, "t2v_1.3B", home.preference)["transformer"]["path"]
    (home.root / builtin).parent.mkdir(parents=True, exist_ok=True)
    home.files[0].rename(home.root / builtin)
    result = wangp("--home", home.root, "generate", "-m", "t2v_1.3B", "--quantization", "none", "--frames", 5,
                   "--resolution", "64x64", "--steps", 2, "--prompt", "a boat", "--format", "json",
                   *pipeline_args(home))
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["transformer"] == [builtin] and "base_model_type" not in record["settings"]
    assert probe_video(record["path"])["frames"] == 5
