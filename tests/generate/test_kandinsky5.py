"""Kandinsky 5 (k5_lite_t2v / k5_lite_i2v / k5_pro_*) through ``wangp generate`` on CPU: tiny random models in
WanGP's layout (16-bit and quanto int8), the conversion from WanGP's key names, frames equal to the plain diffusers
pipeline built by hand, the mp4 read back, the int8 layer choice against mmgp's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import invoke  # noqa: E402

from wangp_cli.core.definitions import Catalog  # noqa: E402
from wangp_cli.core.home import Home  # noqa: E402
from wangp_cli.families import FAMILIES  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.request import build_request  # noqa: E402
from wangp_cli.generate.runner import Generator  # noqa: E402
from wangp_cli.generate.video import probe_video, read_metadata  # noqa: E402
from wangp_cli.generate.weights import convert_checkpoint, read_checkpoint  # noqa: E402

FAMILY = FAMILIES["kandinsky5"]
#: WanGP's k5 settings, at 32x32 (the CI budget: diffusers' own tests use 32x32 too).
SETTINGS = {"flow_shift": 10.0, "guidance_scale": 5.0, "negative_prompt": "static, blurry", "resolution": "32x32"}
SIZE = 32


def _start_image(folder: Path) -> Path:
    path = folder / "start.png"
    tiny.make_image(SIZE, seed=3).save(path)
    return path


# -- conversion from WanGP's layout --------------------------------------------------------------------------------

def wangp_layout(config: dict) -> dict:
    """The tensor names and shapes of WanGP's ``DiffusionTransformer3D`` (models/kandinsky5/kandinsky/models/dit.py
    and nn.py), written from that code: TimeEmbeddings (in_layer, out_layer), TextEmbeddings (in_layer, norm),
    VisualEmbeddings (in_layer), TransformerEncoderBlock (text_modulation, self_attention, feed_forward),
    TransformerDecoderBlock (visual_modulation, self_attention, cross_attention, feed_forward), OutLayer
    (modulation, out_layer); LayerNorms without affine have no tensors, the RoPE tables are non-persistent."""
    d, t, ff = config["model_dim"], config["time_dim"], config["ff_dim"]
    head = sum(config["axes_dims"])
    patch = int(np.prod(config["patch_size"]))
    visual_in = 2 * config["in_visual_dim"] + 1 if config["visual_cond"] else config["in_visual_dim"]
    shapes = {
        "time_embeddings.in_layer.weight": (t, d), "time_embeddings.in_layer.bias": (t,),
        "time_embeddings.out_layer.weight": (t, t), "time_embeddings.out_layer.bias": (t,),
        "text_embeddings.in_layer.weight": (d, config["in_text_dim"]), "text_embeddings.in_layer.bias": (d,),
        "text_embeddings.norm.weight": (d,), "text_embeddings.norm.bias": (d,),
        "pooled_text_embeddings.in_layer.weight": (t, config["in_text_dim2"]),
        "pooled_text_embeddings.in_layer.bias": (t,),
        "pooled_text_embeddings.norm.weight": (t,), "pooled_text_embeddings.norm.bias": (t,),
        "visual_embeddings.in_layer.weight": (d, patch * visual_in), "visual_embeddings.in_layer.bias": (d,),
        "out_layer.modulation.out_layer.weight": (2 * d, t), "out_layer.modulation.out_layer.bias": (2 * d,),
        "out_layer.out_layer.weight": (patch * config["out_visual_dim"], d),
        "out_layer.out_layer.bias": (patch * config["out_visual_dim"],),
    }

    def attention(prefix):
        for name in ("to_query", "to_key", "to_value", "out_layer"):
            shapes[f"{prefix}.{name}.weight"], shapes[f"{prefix}.{name}.bias"] = (d, d), (d,)
        shapes[f"{prefix}.query_norm.weight"] = shapes[f"{prefix}.key_norm.weight"] = (head,)

    def block(prefix, modulation, params, attentions):
        shapes[f"{prefix}.{modulation}.out_layer.weight"] = (params * d, t)
        shapes[f"{prefix}.{modulation}.out_layer.bias"] = (params * d,)
        for name in attentions:
            attention(f"{prefix}.{name}")
        shapes[f"{prefix}.feed_forward.in_layer.weight"] = (ff, d)  # bias=False
        shapes[f"{prefix}.feed_forward.out_layer.weight"] = (d, ff)

    for n in range(config["num_text_blocks"]):
        block(f"text_transformer_blocks.{n}", "text_modulation", 6, ("self_attention",))
    for n in range(config["num_visual_blocks"]):
        block(f"visual_transformer_blocks.{n}", "visual_modulation", 9, ("self_attention", "cross_attention"))
    return shapes


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model.", "model."])
def test_conversion_from_wangp_key_names(prefix):
    """WanGP's names (with the prefixes its loader strips) load strictly into diffusers' model; the config comes
    from the shapes alone."""
    config = {**tiny.TRANSFORMER_CONFIGS["k5_t2v"], "patch_size": [1, 2, 2], "axes_dims": [4, 6, 6]}
    shapes = wangp_layout(config)
    generator = torch.Generator().manual_seed(0)
    original = {prefix + name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}
    assert FAMILY.recognises(dict.fromkeys(original))  # names only, as the quantizer calls it
    derived = FAMILY.config(original, {}, {}, "test")
    assert derived == {k: v for k, v in config.items() if k != "attention_type"}
    converted, qmap = FAMILY.to_diffusers(dict(original), {f"{prefix}visual_transformer_blocks.0.feed_forward."
                                                           "in_layer": {"weights": "qint8"}}, derived)
    assert qmap == {"visual_transformer_blocks.0.feed_forward.in_layer": {"weights": "qint8"}}
    model = FAMILY.model_class(derived)(**derived)
    assert set(model.state_dict()) == set(converted) == set(shapes)
    model.load_state_dict(converted, strict=True)
    assert torch.equal(model.visual_transformer_blocks[2].cross_attention.to_key.weight,
                       original[prefix + "visual_transformer_blocks.2.cross_attention.to_key.weight"])


def test_embedded_config_is_checked_against_the_shapes():
    config = {**tiny.TRANSFORMER_CONFIGS["k5_t2v"], "patch_size": [1, 2, 2], "axes_dims": [4, 6, 6]}
    tensors = {name: torch.empty(shape) for name, shape in wangp_layout(config).items()}
    assert FAMILY.config(tensors, {"axes_dims": [2, 7, 7], "attention_engine": "flash"}, {}, "f")["axes_dims"] == \
        [2, 7, 7]  # WanGP's own keys (attention_engine) are not diffusers' config: dropped
    with pytest.raises(Exception, match="does not sum to the head dim 16"):
        FAMILY.config(tensors, {"axes_dims": [4, 4, 4]}, {}, "f")
    with pytest.raises(Exception, match="model_dim"):
        FAMILY.config(tensors, {"model_dim": 64}, {}, "f")


# -- equal to the plain diffusers pipeline ---------------------------------------------------------------------------

def reference_frames(home, request, quantized: bool):
    """diffusers' documented recipe by hand, on the weights the files were written from: the transformer through
    ``from_pretrained(torch_dtype=bf16)``, quanto qint8 on the visual blocks but their modulation, the pipeline
    from the components folder, Euler with WanGP's shift."""
    import diffusers
    from optimum.quanto import freeze, qint8, quantize
    from PIL import Image

    model = tiny.documented_transformer(home.model, home.root / "reference-transformer")
    if quantized:
        quantize(model, weights=qint8, include=["visual_transformer_blocks.*"], exclude=["*visual_modulation*"])
        freeze(model)
    cls = getattr(diffusers, tiny.PIPELINES[home.kind])
    with tiny.offline():
        pipe = cls.from_pretrained(home.components, transformer=model, torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config,
                                                                           shift=SETTINGS["flow_shift"])
    call = {"image": Image.open(request.image).convert("RGB")} if request.image else {}
    with torch.inference_mode():
        output = pipe(prompt=request.settings["prompt"], negative_prompt=SETTINGS["negative_prompt"], height=SIZE,
                      width=SIZE, num_frames=request.frames, num_inference_steps=request.steps,
                      guidance_scale=SETTINGS["guidance_scale"], max_sequence_length=256,
                      generator=torch.Generator("cpu").manual_seed(request.seed), output_type="np", **call)
    return output.frames[0], model


@pytest.mark.parametrize("kind,quantized", [("k5_t2v", False), ("k5_i2v", True)], ids=["t2v-16bit", "i2v-int8"])
def test_frames_equal_the_plain_diffusers_pipeline(kind, quantized, components, tmp_path):
    home = tiny.make_home(tmp_path / "home", kind, quantized=quantized, components=components(kind),
                          settings=SETTINGS)
    catalog = Catalog(Home(home.root))
    image = {"image": _start_image(tmp_path)} if kind == "k5_i2v" else {}
    request = build_request(catalog, home.model_id, {"seed": 11, "prompt": "a red fox running in the forest"},
                            preference=home.preference, **image)
    generator = Generator(catalog)
    frames = generator.render(request).result.frames
    expected, reference_model = reference_frames(home, request, quantized)
    assert frames.shape == expected.shape == (request.frames, SIZE, SIZE, 3)
    assert np.isfinite(frames).all() and frames.std() > 0.01  # a real picture, not a constant
    np.testing.assert_array_equal(frames, expected)
    loaded = {n for n, m in generator._pipe.transformer.named_modules() if type(m).__name__ == "QLinear"}
    assert loaded == {n for n, m in reference_model.named_modules() if type(m).__name__ == "QLinear"}
    assert bool(loaded) is quantized
    assert not any("modulation" in name for name in loaded)


# -- the CLI end to end ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,architecture,quantized", [("k5_t2v", "k5_pro_t2v", False),
                                                         ("k5_i2v", "k5_lite_i2v", True)],
                         ids=["pro-t2v-16bit", "lite-i2v-int8"])
def test_generate_writes_the_mp4(kind, architecture, quantized, components, tmp_path):
    home = tiny.make_home(tmp_path / "home", kind, architecture=architecture, quantized=quantized,
                          components=components(kind), settings={"resolution": SETTINGS["resolution"]})
    frames = FAMILY.tiny_kinds[kind].settings["video_length"]
    image = ["--image", _start_image(tmp_path)] if kind == "k5_i2v" else []
    lora = []
    if kind == "k5_t2v":  # a LoRA in WanGP's layout, from the architecture's folder
        pytest.importorskip("peft")
        path = _lora_file(home.root / "loras" / architecture / "style.safetensors", _lora_pairs(home.model), "original")
        lora = ["--lora", f"{path}:0.8"]
    result = invoke("generate", "-m", home.model_id, "--prompt", "a dog running on the beach", "--seed", 7,
                    "--frames", frames, "--quantization", "int8" if quantized else "none", "--format", "json",
                    *image, *lora, home=home.root)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    video = Path(record["path"])
    probe = probe_video(video)
    assert (probe["frames"], probe["width"], probe["height"]) == (frames, SIZE, SIZE)
    assert probe["fps"] == pytest.approx(24)
    assert record["quantized"] is quantized and record["seed"] == 7
    metadata = read_metadata(video)
    assert metadata["base_model_type"] == architecture and metadata["video_length"] == frames
    assert metadata["resolution"] == SETTINGS["resolution"]
    if lora:
        assert [Path(name).name for name in metadata["activated_loras"]] == ["style.safetensors"]
        assert metadata["loras_multipliers"] == "0.8"


def test_short_image_to_video_is_refused_before_loading(components, tmp_path):
    home = tiny.make_home(tmp_path / "home", "k5_i2v", components=components("k5_i2v"))
    result = invoke("generate", "-m", home.model_id, "--frames", 9, "--image", _start_image(tmp_path),
                    home=home.root)
    assert result.exit_code == 2
    assert "needs at least 17 frames" in result.output and "--frames 17" in result.output


def test_components_repos_and_registry_rows():
    from wangp_cli.core.registry import get_architecture

    repos = {arch: get_architecture(arch, "v12").diffusers_repo for arch in FAMILY.architectures}
    assert repos == {"k5_lite_t2v": "kandinskylab/Kandinsky-5.0-T2V-Lite-sft-5s-Diffusers",
                     "k5_lite_i2v": "kandinskylab/Kandinsky-5.0-T2V-Lite-sft-5s-Diffusers",
                     "k5_pro_t2v": "kandinskylab/Kandinsky-5.0-T2V-Pro-sft-5s-Diffusers",
                     "k5_pro_i2v": "kandinskylab/Kandinsky-5.0-I2V-Pro-sft-5s-Diffusers"}
    for arch in FAMILY.architectures:
        found = get_architecture(arch, "v12")
        assert "transformer" not in found.components and found.fps == 24
        assert found.pipeline == FAMILY.architectures[arch].pipeline


# -- quantize: the layer choice against mmgp's -----------------------------------------------------------------------

def test_quantized_layers_are_mmgps_but_the_modulation(tmp_path):
    """mmgp's ``_quantize`` (what WanGP's --save-quantized runs) on a WanGP-layout model quantizes the Linears of
    the visual-block tower; wangp's file quantizes the same, but each block's ``visual_modulation`` (fp32 in
    diffusers); the text blocks (1 to 4 floors) stay 16-bit in both."""
    pytest.importorskip("mmgp")
    from optimum.quanto import QLinear

    from tests.quantize.test_mmgp_interop import offload
    from wangp_cli.quantize.quantizer import quantize_file

    model = tiny.make_transformer("k5_t2v").to(torch.bfloat16)
    offload._quantize(model, verboseLevel=0)
    theirs = {n for n, m in model.named_modules() if isinstance(m, QLinear)}
    source = tiny.write_transformer("k5_t2v", tiny.make_transformer("k5_t2v"), tmp_path / "k5_bf16.safetensors")
    quantize_file(source, tmp_path / "k5_quanto_bf16_int8.safetensors", "bf16")
    ours = set(read_checkpoint([tmp_path / "k5_quanto_bf16_int8.safetensors"]).quantization_map)
    modulation = {n for n in theirs if n.endswith(".visual_modulation.out_layer")}
    assert len(modulation) == 6 and ours == theirs - modulation
    assert not any(n.startswith("text_transformer_blocks.") for n in theirs | ours)


def test_a_wangp_file_with_quantized_modulation_loads(tmp_path):
    """WanGP's own int8 files (mmgp) quantize the modulation too: the map says so and the loader follows it."""
    from wangp_cli.generate.weights import load_transformer
    from wangp_cli.quantize.quantizer import quantize_file

    skip = FAMILY.quantize_skip
    object.__setattr__(FAMILY, "quantize_skip", ())  # mmgp's choice: the whole tower
    try:
        source = tiny.write_transformer("k5_t2v", tiny.make_transformer("k5_t2v"), tmp_path / "k5_bf16.safetensors")
        quantize_file(source, tmp_path / "k5_quanto_bf16_int8.safetensors", "bf16")
    finally:
        object.__setattr__(FAMILY, "quantize_skip", skip)
    checkpoint = read_checkpoint([tmp_path / "k5_quanto_bf16_int8.safetensors"])
    assert "visual_transformer_blocks.0.visual_modulation.out_layer" in checkpoint.quantization_map
    family, config, _, _ = convert_checkpoint(checkpoint, {}, "kandinsky5")
    loaded = load_transformer([tmp_path / "k5_quanto_bf16_int8.safetensors"], torch.bfloat16, family="kandinsky5")
    assert family == "kandinsky5" and loaded.quantized
    model = loaded.model
    tokens = torch.randn(1, 2, 4, 4, 2 * 4 + 1)
    with torch.inference_mode():
        out = model(tokens.to(torch.bfloat16), torch.randn(1, 5, 16, dtype=torch.bfloat16), torch.tensor([500.0]),
                    torch.randn(1, 8, dtype=torch.bfloat16),
                    (torch.arange(2), torch.arange(2), torch.arange(2)), torch.arange(5)).sample
    assert out.shape == (1, 2, 4, 4, 4) and torch.isfinite(out.float()).all()


# -- LoRAs -------------------------------------------------------------------------------------------------------------

RANK, ALPHA = 4, 2.0
LORA_TARGETS = ("visual_transformer_blocks.0.self_attention.to_query", "visual_transformer_blocks.3.cross_attention."
                "to_value", "visual_transformer_blocks.5.feed_forward.in_layer", "text_transformer_blocks.0.feed_"
                "forward.out_layer")


def _lora_pairs(model) -> dict:
    generator = torch.Generator().manual_seed(1)
    return {name: (torch.randn(RANK, model.get_submodule(name).in_features, generator=generator) * 0.5,
                   torch.randn(model.get_submodule(name).out_features, RANK, generator=generator) * 0.5)
            for name in LORA_TARGETS}


def _lora_file(path, pairs, fmt: str):
    from safetensors.torch import save_file

    tensors = {}
    for module, (down, up) in pairs.items():
        if fmt == "diffusers":  # PEFT names, the scale folded into B
            tensors[f"transformer.{module}.lora_A.weight"], tensors[f"transformer.{module}.lora_B.weight"] = \
                down, up * (ALPHA / RANK)
            continue
        name = "lora_unet_" + module.replace(".", "_") if fmt == "kohya" else f"diffusion_model.{module}"
        tensors[f"{name}.lora_down.weight"], tensors[f"{name}.lora_up.weight"] = down, up
        tensors[f"{name}.alpha"] = torch.tensor(ALPHA)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def _forward(model):
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        return model(torch.randn(1, 2, 4, 4, 9, generator=generator), torch.randn(1, 5, 16, generator=generator),
                     torch.tensor([500.0]), torch.randn(1, 8, generator=generator),
                     (torch.arange(2), torch.arange(2), torch.arange(2)), torch.arange(5)).sample


@pytest.mark.parametrize("fmt", ["original", "kohya", "diffusers"])
def test_lora_formats_equal_the_hand_merged_weights(tmp_path, fmt):
    import copy

    from wangp_cli.generate import loras as L

    pytest.importorskip("peft")
    model = tiny.make_transformer("k5_t2v")
    pairs = _lora_pairs(model)
    merged = copy.deepcopy(model)
    with torch.no_grad():
        for module, (down, up) in pairs.items():
            merged.get_submodule(module).weight += 0.7 * (ALPHA / RANK) * (up @ down)
    path = _lora_file(tmp_path / f"{fmt}.safetensors", pairs, fmt)
    attached = L.attach([model], [FAMILY.loras().to_diffusers(L.read_lora(path), name=path.name)])
    attached.set_weights([0.7])
    got, expected = _forward(model), _forward(merged)
    assert float((got - expected).abs().max()) <= 1e-4 * max(1.0, float(expected.abs().max()))
