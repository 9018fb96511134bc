"""Qwen-Image through ``wangp generate`` on CPU: tiny random models in WanGP's layout (diffusers' names, also with a
ComfyUI prefix and fused q/k/v), 16-bit and quanto int8, images equal to the plain diffusers pipeline built by hand;
the quantized layers checked against mmgp; the CLI's PNG read back; Layered and unknown samplers refused."""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import invoke  # noqa: E402

from wangp_cli.core.definitions import Catalog  # noqa: E402
from wangp_cli.core.errors import WangpError  # noqa: E402
from wangp_cli.core.home import Home  # noqa: E402
from wangp_cli.core.jsonio import write_json  # noqa: E402
from wangp_cli.core.registry import get_architecture  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.request import build_request  # noqa: E402
from wangp_cli.generate.runner import Generator  # noqa: E402
from wangp_cli.generate.weights import load_transformer  # noqa: E402

KIND = "qwen_image"
ARCH = "qwen_image_20B"
#: WanGP's default negative prompt (``models/qwen/qwen_main.py``, ``generate``), written out here on purpose.
WANGP_NEGATIVE = "text, watermark, copyright, blurry, low resolution"
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None

#: The parameter names of one block of WanGP's ``QwenImageTransformerBlock`` (``models/qwen/
#: transformer_qwenimage.py``: ``img_mod = Sequential(SiLU, Linear)``, diffusers' ``Attention`` with added
#: projections and RMS q/k norms, ``FeedForward`` ``net.0.proj`` / ``net.2``), and the model's top level.
WANGP_BLOCK = [f"{module}.{leaf}" for module in (
    "img_mod.1", "txt_mod.1", "attn.to_q", "attn.to_k", "attn.to_v", "attn.add_q_proj", "attn.add_k_proj",
    "attn.add_v_proj", "attn.to_out.0", "attn.to_add_out", "img_mlp.net.0.proj", "img_mlp.net.2",
    "txt_mlp.net.0.proj", "txt_mlp.net.2") for leaf in ("weight", "bias")] + [
    f"attn.{norm}.weight" for norm in ("norm_q", "norm_k", "norm_added_q", "norm_added_k")]
WANGP_TOP = ["time_text_embed.timestep_embedder.linear_1.weight", "time_text_embed.timestep_embedder.linear_1.bias",
             "time_text_embed.timestep_embedder.linear_2.weight", "time_text_embed.timestep_embedder.linear_2.bias",
             "txt_norm.weight", "img_in.weight", "img_in.bias", "txt_in.weight", "txt_in.bias",
             "norm_out.linear.weight", "norm_out.linear.bias", "proj_out.weight", "proj_out.bias"]
#: WanGP's ``_QWEN_FUSED_SPLIT_MAP`` (qwen_main.py): the fused name and the parts it holds, in row order.
WANGP_FUSED = {"attn.to_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
               "attn.add_qkv_proj": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj")}


@pytest.fixture(scope="module")
def model():
    return tiny.make_transformer(KIND)


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    return tiny.make_components(KIND, tmp_path_factory.mktemp("qwen-components"))


def _files(tmp_path: Path, model, original: dict | None = None, name: str = "file.safetensors") -> Path:
    """A 16-bit file of ``original`` (default: the model in WanGP's layout) with WanGP's config embedded."""
    from safetensors.torch import save_file

    original = original if original is not None else tiny.to_original_layout(KIND, model)
    config = tiny.wangp_config(KIND, model)
    path = tmp_path / name
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in original.items()}, str(path),
              metadata={"config_base64": base64.b64encode(json.dumps(config).encode()).decode()})
    return path


def _fused(original: dict) -> dict:
    """``original`` with every block's q/k/v (image and text) concatenated under WanGP's fused names, plus the
    ComfyUI prefix on every key."""
    out = dict(original)
    for index in range(tiny.TRANSFORMER_CONFIGS[KIND]["num_layers"]):
        for fused, parts in WANGP_FUSED.items():
            for leaf in ("weight", "bias"):
                pieces = [out.pop(f"transformer_blocks.{index}.{part}.{leaf}") for part in parts]
                out[f"transformer_blocks.{index}.{fused}.{leaf}"] = torch.cat(pieces, dim=0)
    return {f"model.diffusion_model.{key}": tensor for key, tensor in out.items()}


def _shape():
    return get_architecture(ARCH, "v12").transformer


def _state(loaded) -> dict:
    return {k: v for k, v in loaded.model.state_dict().items()}


# -- the checkpoint side --------------------------------------------------------------------------------------------

def test_wangp_key_names_are_the_diffusers_model_s(model):
    """WanGP's names, from its model code, are exactly the diffusers class's; diffusers' single-file mapping keeps
    them (the identity the loader uses)."""
    layers = tiny.TRANSFORMER_CONFIGS[KIND]["num_layers"]
    expected = set(WANGP_TOP) | {f"transformer_blocks.{i}.{name}" for i in range(layers) for name in WANGP_BLOCK}
    original = tiny.to_original_layout(KIND, model)
    assert set(original) == expected
    back = tiny.to_diffusers_layout(KIND, original)
    assert set(back) == set(model.state_dict()) and all(torch.equal(back[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("quantized", [False, True], ids=["16bit", "int8"])
def test_fused_prefixed_files_load_like_wangp_s_plain_layout(quantized, model, tmp_path):
    """A ComfyUI-prefixed file with fused ``to_qkv`` / ``add_qkv_proj`` (built here from WanGP's names) loads to
    the same weights as the plain file; quantized, the fused rows give the same int8 rows and scales."""
    from wangp_cli.quantize.quantizer import quantize_file

    original = tiny.to_original_layout(KIND, model)
    plain, fused = _files(tmp_path, model, original, "plain.safetensors"), _files(
        tmp_path, model, _fused(original), "fused.safetensors")
    if quantized:
        for path in (plain, fused):
            quantize_file(path, path.with_name(f"q_{path.name}"), "bf16")
        plain, fused = plain.with_name(f"q_{plain.name}"), fused.with_name(f"q_{fused.name}")
    loaded = [load_transformer([path], torch.bfloat16, arch_shape=_shape(), family="qwen") for path in (plain, fused)]
    assert loaded[0].family == loaded[1].family == "qwen" and loaded[0].quantized is quantized
    assert loaded[0].config == loaded[1].config
    assert loaded[0].config["axes_dims_rope"] == [8, 4, 4] and loaded[0].config["zero_cond_t"] is False
    first, second = _state(loaded[0]), _state(loaded[1])
    assert set(first) == set(second)
    for key, tensor in first.items():
        if quantized and hasattr(tensor, "_data"):
            assert torch.equal(tensor._data, second[key]._data) and torch.equal(tensor._scale, second[key]._scale)
        else:
            assert torch.equal(tensor, second[key]), key


def test_config_follows_the_architecture_and_checks_the_embedded_one(model, tmp_path):
    """2511's ``zero_cond_t`` comes from the architecture (as WanGP's config file); an embedded config that
    contradicts the shapes, or rope axes that do not fit the head size, are refused naming the file."""
    from wangp_cli.families.qwen import convert

    tensors = {k: v for k, v in tiny.to_original_layout(KIND, model).items()}
    embedded = tiny.wangp_config(KIND, model)
    plus2 = get_architecture("qwen_image_edit_plus2_20B", "v12").transformer
    assert convert.config(tensors, embedded, plus2)["zero_cond_t"] is True
    assert convert.config(tensors, embedded, _shape())["zero_cond_t"] is False
    for bad, words in (({"num_layers": 7}, "num_layers (7) does not fit"),
                       ({"axes_dims_rope": [8, 8, 8]}, "does not add up to the head size 16"),
                       ({"zero_cond_t": "yes"}, "zero_cond_t is not true or false")):
        with pytest.raises(WangpError, match=re.escape(words)):
            convert.config(tensors, {**embedded, **bad}, {}, "'f.safetensors'")
    with pytest.raises(WangpError, match="has no axes_dims_rope for head size 16"):
        convert.config(tensors, {}, _shape(), "'f.safetensors'")


def test_quantized_layers_are_mmgp_s(model, tmp_path):
    """The quantizer's layers of a Qwen file are those mmgp's ``_quantize`` (WanGP's quantization) picks."""
    import copy

    from tests.quantize.test_mmgp_interop import offload  # mmgp, imported without its process-wide patches
    from wangp_cli.quantize.quantizer import quantized_modules
    from wangp_cli.quantize.safetensors_io import TensorReader

    theirs = copy.deepcopy(model).to(torch.bfloat16)
    offload._quantize(theirs, verboseLevel=0)
    mmgp_layers = {n for n, m in theirs.named_modules() if type(m).__name__ == "QLinear"}
    with TensorReader(_files(tmp_path, model)) as reader:
        assert set(quantized_modules(reader.entries, "qwen")) == mmgp_layers
    assert mmgp_layers and all(name.startswith("transformer_blocks.") for name in mmgp_layers)


# -- the pipeline side ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def reference_pipe(components):
    """``QwenImagePipeline.from_pretrained(components, torch_dtype=bf16)`` by hand, the diffusers docs' recipe (the
    transformer is set per test)."""
    import diffusers

    with tiny.offline():
        pipe = diffusers.QwenImagePipeline.from_pretrained(components, transformer=tiny.make_transformer(KIND),
                                                           torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _reference(pipe, home, request, quantized: bool):
    """The reference pipeline on the weights the files were written from (diffusers' format, bf16; quanto int8 of
    the blocks), with WanGP's call: true CFG at guidance_scale, its default negative prompt."""
    from optimum.quanto import freeze, qint8, quantize

    model = tiny.documented_transformer(home.model, home.root / "reference-transformer")
    if quantized:
        quantize(model, weights=qint8, include=["transformer_blocks.*"])
        freeze(model)
    pipe.transformer = model
    with torch.inference_mode():
        output = pipe(prompt=request.settings["prompt"], negative_prompt=WANGP_NEGATIVE, true_cfg_scale=4.0,
                      height=32, width=32, num_inference_steps=request.steps,
                      generator=torch.Generator("cpu").manual_seed(request.seed), output_type="np")
    return output.images, model


@pytest.mark.parametrize("quantized", [False, True], ids=["16bit", "int8"])
def test_images_equal_the_plain_diffusers_pipeline(quantized, components, reference_pipe, tmp_path):
    home = tiny.make_home(tmp_path / "home", KIND, quantized=quantized, components=components)
    catalog = Catalog(Home(home.root))
    request = build_request(catalog, home.model_id, {"seed": 5, "prompt": "a red fox in the forest"},
                            preference=home.preference)
    generator = Generator(catalog)
    frames = generator.render(request).result.frames
    expected, reference_model = _reference(reference_pipe, home, request, quantized)
    assert frames.shape == expected.shape == (1, 32, 32, 3)
    assert np.isfinite(frames).all() and frames.std() > 0.01
    np.testing.assert_array_equal(frames, expected)
    loaded = {n for n, m in generator._pipe.transformer.named_modules() if type(m).__name__ == "QLinear"}
    assert loaded == {n for n, m in reference_model.named_modules() if type(m).__name__ == "QLinear"}
    assert bool(loaded) is quantized


def test_the_cli_writes_a_png_with_wangp_s_settings(components, tmp_path):
    from wangp_cli.generate.image import probe_image, read_metadata

    home = tiny.make_home(tmp_path / "home", KIND, components=components, settings={"sample_solver": "lightning"})
    out = tmp_path / "qwen.png"
    result = invoke("generate", "-m", home.model_id, "--seed", 9, "--steps", 1, "-o", out, "--format", "json",
                    home=home.root)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["path"] == str(out) and record["media"] == "image" and record["architecture"] == ARCH
    assert probe_image(out)["format"] == "PNG" and (probe_image(out)["width"], probe_image(out)["height"]) == (32, 32)
    metadata = read_metadata(out)
    assert metadata["sample_solver"] == "lightning" and metadata["seed"] == 9
    assert metadata["base_model_type"] == ARCH


def test_wangp_s_samplers_set_the_scheduler():
    """``default`` is the Qwen-Image repo's scheduler (dynamic shift 0.5-0.9, terminal 0.02), ``lightning`` shift
    ln 3 at every size, as qwen_main.py writes them."""
    from types import SimpleNamespace

    from diffusers import FlowMatchEulerDiscreteScheduler

    from wangp_cli.families.qwen import pipeline

    pipe = SimpleNamespace(scheduler=FlowMatchEulerDiscreteScheduler())
    pipeline.scheduler(pipe, SimpleNamespace(settings={"sample_solver": "lightning"}))
    config = pipe.scheduler.config
    assert (config.base_shift, config.max_shift, config.shift_terminal) == (math.log(3), math.log(3), None)
    pipeline.scheduler(pipe, SimpleNamespace(settings={"sample_solver": ""}))
    config = pipe.scheduler.config
    assert (config.base_shift, config.max_shift, config.shift_terminal, config.time_shift_type) == (
        0.5, 0.9, 0.02, "exponential") and config.use_dynamic_shifting
    arguments = pipeline.call_arguments(SimpleNamespace(settings={"guidance_scale": 1}, architecture=ARCH,
                                                        reference_images=[]))
    assert arguments == {"true_cfg_scale": 1.0, "negative_prompt": None}


# -- refusals ---------------------------------------------------------------------------------------------------------

def _definition(root: Path, model_id: str, architecture: str, **settings) -> Catalog:
    write_json(root / "finetunes" / f"{model_id}.json", {
        "model": {"name": model_id, "architecture": architecture, "URLs": [f"ckpts/{model_id}.safetensors"]},
        "prompt": "decompose", "resolution": "64x64", **settings})
    return Catalog(Home(root))


def test_layered_and_unknown_samplers_are_refused_before_loading(tmp_path):
    image = tmp_path / "in.png"
    tiny.make_image(32).save(image)
    catalog = _definition(tmp_path, "my_layers", "qwen_image_layered_20B", batch_size=4)
    with pytest.raises(WangpError, match="decomposes an image into 4 RGBA layers"):
        build_request(catalog, "my_layers", {}, image=image)
    catalog = _definition(tmp_path, "my_qwen", ARCH, sample_solver="unipc")
    with pytest.raises(WangpError, match="sample_solver 'unipc' is not a Qwen-Image sampler"):
        build_request(catalog, "my_qwen", {})
    catalog = _definition(tmp_path, "my_qwen", ARCH)
    with pytest.raises(WangpError, match="which wangp does not apply to Qwen-Image models yet"):
        build_request(catalog, "my_qwen", {}, loras=["lightning.safetensors"])


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision is installed: the edit pipelines run")
def test_edit_models_without_torchvision_are_refused_with_the_fix(tmp_path):
    image = tmp_path / "in.png"
    tiny.make_image(32).save(image)
    catalog = _definition(tmp_path, "my_edit", "qwen_image_edit_plus2_20B")
    with pytest.raises(WangpError, match="need torchvision.*pip install torchvision"):
        build_request(catalog, "my_edit", {}, image=image)


@pytest.mark.skipif(not HAS_TORCHVISION, reason="transformers' Qwen2-VL processor needs torchvision")
def test_edit_plus_with_reference_images_equals_the_plain_diffusers_pipeline(tmp_path, monkeypatch):
    """Start image plus a reference image, each its own condition; the pipeline's condition and VAE areas (384^2,
    1024^2 pixels) made tiny for both runs, so the CPU encodes 32x32 images."""
    import diffusers
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus
    from PIL import Image

    monkeypatch.setattr(pipeline_qwenimage_edit_plus, "CONDITION_IMAGE_SIZE", 56 * 56)
    monkeypatch.setattr(pipeline_qwenimage_edit_plus, "VAE_IMAGE_SIZE", 32 * 32)

    kind = "qwen_image_edit_plus"
    home = tiny.make_home(tmp_path / "home", kind)
    paths = []
    for seed in (1, 2):
        paths.append(tmp_path / f"in{seed}.png")
        tiny.make_image(32, seed).save(paths[-1])
    catalog = Catalog(Home(home.root))
    request = build_request(catalog, home.model_id, {"seed": 4}, preference=home.preference, image=paths[0],
                            reference_images=[paths[1]])
    frames = Generator(catalog).render(request).result.frames
    model = tiny.documented_transformer(home.model, home.root / "reference-transformer")
    with tiny.offline():
        pipe = diffusers.QwenImageEditPlusPipeline.from_pretrained(home.components, transformer=model,
                                                                   torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        expected = pipe(image=[Image.open(p).convert("RGB") for p in paths], prompt=request.settings["prompt"],
                        negative_prompt=WANGP_NEGATIVE, true_cfg_scale=4.0, height=32, width=32,
                        num_inference_steps=request.steps, generator=torch.Generator("cpu").manual_seed(4),
                        output_type="np").images
    assert frames.shape == expected.shape == (1, 32, 32, 3)
    np.testing.assert_array_equal(frames, expected)
