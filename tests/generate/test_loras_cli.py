"""LoRAs end to end on tiny Wan models: each source (the definition's ``loras``, ``activated_loras``, ``--lora``, a
manifest's ``loras``), 16-bit and int8, frames equal to a checkpoint with the LoRA merged by hand (within bf16 /
int8 noise), and the metadata WanGP records read back."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
np = pytest.importorskip("numpy")

from conftest import invoke
from lora_files import merged_by_hand, random_pairs, write_wan_lora

from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import UsageError, WangpError
from wangp_cli.core.home import Home
from wangp_cli.generate import tiny
from wangp_cli.generate.request import build_request
from wangp_cli.generate.runner import Generator, preflight
from wangp_cli.generate.video import read_metadata

RANK, ALPHA, M = 4, 4.0, 0.8
TARGETS = {"blocks.0.self_attn.q": "blocks.0.attn1.to_q", "blocks.2.cross_attn.v": "blocks.2.attn2.to_v",
           "blocks.3.ffn.0": "blocks.3.ffn.net.0.proj"}
FOLDER = "loras/wan_1.3B"  # the registry's lora_dir of t2v_1.3B


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    return tiny.make_components("t2v", tmp_path_factory.mktemp("components"))


def _frames(home, **kwargs):
    catalog = Catalog(Home(home.root))
    request = build_request(catalog, home.model_id, {"seed": 5, "frames": 5}, preference=home.preference,
                            pipeline_kwargs=home.pipeline_kwargs, **kwargs)
    return Generator(catalog).render(request).result.frames, request


@pytest.fixture(params=[False, True], ids=["16bit", "int8"])
def homes(request, components, tmp_path):
    """(home, merged home, base home) of one precision: the same random model, with the LoRA merged, without."""
    quantized = request.param
    model = tiny.make_transformer("t2v", 0)
    pairs = random_pairs(model, TARGETS, RANK, 2)
    home = tiny.make_home(tmp_path / "home", "t2v", quantized=quantized, components=components, model=model)
    # the reference is 16-bit (int8: merging before quantizing rounds other weights than int8 + adapter does)
    merged = tiny.make_home(tmp_path / "merged", "t2v", components=components,
                            model=merged_by_hand(model, pairs, TARGETS, M, ALPHA / RANK))
    write_wan_lora(home.root / FOLDER / "style.safetensors", pairs, ALPHA)
    plain, _ = _frames(home)
    noise = 0.0
    if quantized:  # how far int8 frames are from 16-bit ones without any LoRA
        plain16, _ = _frames(tiny.make_home(tmp_path / "plain16", "t2v", components=components, model=model))
        noise = float(np.abs(plain - plain16).max())
    return home, (merged, plain, noise), quantized, pairs


def _applied(home, request):
    """The plain diffusers pipeline loaded as its docs do (the transformer through ``from_pretrained(torch_dtype=
    bf16)``, the VAE in fp32), the LoRA file loaded by diffusers itself (``load_lora_weights``, adapter weight M),
    run with the request's settings."""

    import diffusers

    transformer = tiny.documented_transformer(home.model, home.root / "reference-transformer")  # the file's values
    settings = request.settings
    with tiny.offline():
        vae = diffusers.AutoencoderKLWan.from_pretrained(home.components, subfolder="vae", torch_dtype=torch.float32)
        pipe = diffusers.WanPipeline.from_pretrained(home.components, transformer=transformer, vae=vae,
                                                     torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = diffusers.UniPCMultistepScheduler.from_config(pipe.scheduler.config,
                                                                   flow_shift=settings["flow_shift"])
    pipe.load_lora_weights(str(home.root / FOLDER / "style.safetensors"), adapter_name="style")
    pipe.set_adapters(["style"], [M])
    with torch.inference_mode():
        return pipe(prompt=settings["prompt"], negative_prompt=settings["negative_prompt"] or None, height=64,
                    width=64, num_frames=request.frames, num_inference_steps=request.steps,
                    guidance_scale=settings["guidance_scale"], output_type="np",
                    generator=torch.Generator("cpu").manual_seed(request.seed), **home.pipeline_kwargs).frames[0]


def _check(frames, references, home, quantized, request):
    """16-bit: exactly diffusers' own LoRA loading; both: within noise of the checkpoint with the LoRA merged by
    hand. The noise: int8's, and how far diffusers' run-time LoRA is from the hand merge (the rounding order; on
    these tiny random models with guidance, up to half of the LoRA's effect)."""
    merged, base, noise = references
    expected, _ = _frames(merged)
    applied = _applied(home, request)
    if not quantized:
        np.testing.assert_array_equal(frames, applied)
    effect = np.abs(expected - base).max()
    error = np.abs(frames - expected).max()
    noise += float(np.abs(applied - expected).max())
    assert effect > 0.005, effect  # the LoRA changes the video
    assert error < 0.1 * effect + noise and error < effect, (error, effect, noise)


def _set_model_loras(home, entries, multipliers):
    path = home.root / "finetunes" / f"{home.model_id}.json"
    data = json.loads(path.read_text())
    data["model"]["loras"] = entries
    data["model"]["loras_multipliers"] = multipliers
    path.write_text(json.dumps(data))


def test_model_loras(homes):
    home, merged, quantized, _ = homes
    _set_model_loras(home, ["style.safetensors"], [M])
    frames, request = _frames(home)
    assert [s.source for s in request.loras.specs] == ["model"]
    _check(frames, merged, home, quantized, request)


def test_activated_loras(homes):
    home, merged, quantized, _ = homes
    frames, request = _frames(home, settings={"activated_loras": ["style.safetensors"],
                                              "loras_multipliers": str(M)})
    _check(frames, merged, home, quantized, request)


def test_lora_flag(homes, tmp_path):
    home, merged, quantized, pairs = homes
    outside = write_wan_lora(tmp_path / "elsewhere" / "mine.safetensors", pairs, ALPHA)
    frames, request = _frames(home, loras=[f"{outside}:{M}"])
    assert request.settings["activated_loras"] == [str(outside.resolve())]
    _check(frames, merged, home, quantized, request)


def test_multiplier_zero_is_the_plain_model(components, tmp_path):
    model = tiny.make_transformer("t2v", 0)
    home = tiny.make_home(tmp_path / "home", "t2v", components=components, model=model)
    write_wan_lora(home.root / FOLDER / "style.safetensors", random_pairs(model, TARGETS, RANK, 2), ALPHA)
    frames, _ = _frames(home, loras=[str(home.root / FOLDER / "style.safetensors") + ":0"])
    base, _ = _frames(home)
    np.testing.assert_allclose(frames, base, atol=1e-6)


def test_cli_and_manifest_record_the_loras(components, tmp_path):
    model = tiny.make_transformer("t2v", 0)
    pairs = random_pairs(model, TARGETS, RANK, 2)
    home = tiny.make_home(tmp_path / "home", "t2v", components=components, model=model)
    write_wan_lora(home.root / FOLDER / "fast.safetensors", pairs, ALPHA)
    write_wan_lora(home.root / FOLDER / "style.safetensors", pairs, ALPHA)
    _set_model_loras(home, ["fast.safetensors"], ["0.5"])
    args = ["generate", "-m", home.model_id, "--frames", "5", "--seed", "3", "--format", "json"]
    for key, value in home.pipeline_kwargs.items():
        args += ["--pipeline-arg", f"{key}={json.dumps(value)}"]
    result = invoke(*args, "--lora", f"{home.root / FOLDER / 'style.safetensors'}:0.7", "-o",
                    tmp_path / "cli.mp4", home=home.root)
    assert result.exit_code == 0, result.output
    metadata = read_metadata(tmp_path / "cli.mp4")
    assert metadata["activated_loras"] == ["style.safetensors"]  # inside the LoRA folder: its name there
    assert metadata["loras_multipliers"] == "0.7"
    assert metadata["transformer_loras_filenames"] == ["fast.safetensors"]
    assert metadata["transformer_loras_multipliers"] == ["0.5"]
    sidecar = json.loads((tmp_path / "cli.json").read_text())
    assert sidecar["settings"]["activated_loras"] == ["style.safetensors"]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"id": "m1", "model": home.model_id, "frames": 5, "seed": 3,
                                    "loras": [f"{home.root / FOLDER / 'style.safetensors'}:0.7"]}) + "\n")
    result = invoke("generate", "--manifest", manifest, "-o", tmp_path / "out",
                    *args[args.index("--format"):], home=home.root)
    assert result.exit_code == 0, result.output
    batch = read_metadata(tmp_path / "out" / "m1.mp4")
    assert batch["activated_loras"] == ["style.safetensors"] and batch["loras_multipliers"] == "0.7"
    # the recorded settings re-run as they are (the names are found in the LoRA folder)
    rerun = tmp_path / "rerun.jsonl"
    rerun.write_text(json.dumps({**{k: v for k, v in batch.items()}, "id": "r1"}) + "\n")
    result = invoke("generate", "--manifest", rerun, "-o", tmp_path / "out2", "--dry-run", home=home.root)
    assert result.exit_code == 0, result.output


def test_refused_before_loading(components, tmp_path):
    home = tiny.make_home(tmp_path / "home", "t2v", components=components)
    catalog = Catalog(Home(home.root))
    with pytest.raises(UsageError, match="at most 1 allowed"):
        build_request(catalog, home.model_id, settings={"activated_loras": ["a.safetensors"],
                                                        "loras_multipliers": "1;0"})
    with pytest.raises(UsageError, match="safetensors files only"):
        build_request(catalog, home.model_id, loras=["old.pt"])
    request = build_request(catalog, home.model_id, settings={"activated_loras": ["absent.safetensors"]})
    with pytest.raises(WangpError, match="missing LoRA files: loras/wan_1.3B/absent.safetensors"):
        preflight(catalog, request)


def test_hunyuan_loras_are_refused(tmp_path):
    home = tiny.make_home(tmp_path / "home", "hunyuan")
    with pytest.raises(WangpError, match="does not apply to HunyuanVideo|not apply .*HunyuanVideo"):
        build_request(Catalog(Home(home.root)), home.model_id, loras=["x.safetensors"])
