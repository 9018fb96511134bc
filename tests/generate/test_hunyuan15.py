"""HunyuanVideo 1.5 (``hunyuan_1_5_t2v`` / ``hunyuan_1_5_i2v``) on CPU: the conversion from the original Tencent /
WanGP key layout (built here from WanGP's module names, not from wangp's inverse), frames equal to the plain
diffusers pipeline built by hand (16-bit and quanto int8), the quantizer's layer choice against mmgp's, the CLI end
to end (mp4 read back), and the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import invoke  # noqa: E402

from wangp_cli.core.definitions import Catalog  # noqa: E402
from wangp_cli.core.errors import WangpError  # noqa: E402
from wangp_cli.core.home import Home  # noqa: E402
from wangp_cli.core.jsonio import write_json  # noqa: E402
from wangp_cli.families import FAMILIES  # noqa: E402
from wangp_cli.families.hunyuan15.pipeline import NEGATIVE_PROMPT, NEGATIVE_PROMPT_I2V  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.request import build_request  # noqa: E402
from wangp_cli.generate.runner import Generator  # noqa: E402
from wangp_cli.generate.video import probe_video, read_metadata  # noqa: E402

FAMILY = FAMILIES["hunyuan15"]
KINDS = ("hunyuan15", "hunyuan15_i2v")
SIZE = 32


# -- the original layout, from WanGP's model code -------------------------------------------------------------------

def wangp_shapes(hidden=16, heads=2, layers=5, refiners=1, mlp=2, text=16, byt5=32, vision=12, latent=4,
                 fused=False, byt5_hidden=2048) -> dict[str, tuple]:
    """Tensor name -> shape of WanGP's ``HYVideoDiffusionTransformer`` with the 1.5 options (``models/hyvideo/
    modules/models.py``: ``glyph_byT5_v2``, ``vision_projection="linear"``, ``use_cond_type_embedding``, no single
    blocks, patch [1, 1, 1], ``pre_split_qkv`` unless ``fused``), written from its module names and sizes
    (``byt5_hidden``: ByT5Mapper's fixed 2048, smaller for the quantizer check only)."""
    ffn, head = hidden * mlp, hidden // heads
    shapes = {"img_in.proj.weight": (hidden, 2 * latent + 1, 1, 1, 1), "img_in.proj.bias": (hidden,)}

    def linear(name, out, inp):
        shapes.update({f"{name}.weight": (out, inp), f"{name}.bias": (out,)})

    linear("vision_in.proj.1", vision, vision)
    linear("vision_in.proj.3", hidden, vision)
    for name, width in (("vision_in.proj.0", vision), ("vision_in.proj.4", hidden)):
        shapes.update({f"{name}.weight": (width,), f"{name}.bias": (width,)})
    linear("txt_in.input_embedder", hidden, text)  # SingleTokenRefiner
    linear("txt_in.t_embedder.mlp.0", hidden, 256)
    linear("txt_in.t_embedder.mlp.2", hidden, hidden)
    linear("txt_in.c_embedder.linear_1", hidden, text)
    linear("txt_in.c_embedder.linear_2", hidden, hidden)
    for i in range(refiners):  # IndividualTokenRefinerBlock: fused self_attn_qkv
        block = f"txt_in.individual_token_refiner.blocks.{i}"
        shapes.update({f"{block}.norm1.weight": (hidden,), f"{block}.norm1.bias": (hidden,),
                       f"{block}.norm2.weight": (hidden,), f"{block}.norm2.bias": (hidden,)})
        linear(f"{block}.self_attn_qkv", 3 * hidden, hidden)
        linear(f"{block}.self_attn_proj", hidden, hidden)
        linear(f"{block}.mlp.fc1", hidden * 4, hidden)
        linear(f"{block}.mlp.fc2", hidden, hidden * 4)
        linear(f"{block}.adaLN_modulation.1", 2 * hidden, hidden)
    linear("time_in.mlp.0", hidden, 256)
    linear("time_in.mlp.2", hidden, hidden)
    for i in range(layers):  # MMDoubleStreamBlock
        block = f"double_blocks.{i}"
        for side in ("img", "txt"):
            linear(f"{block}.{side}_mod.linear", 6 * hidden, hidden)
            if fused:
                linear(f"{block}.{side}_attn_qkv", 3 * hidden, hidden)
            else:
                for x in "qkv":
                    linear(f"{block}.{side}_attn_{x}", hidden, hidden)
            shapes[f"{block}.{side}_attn_q_norm.weight"] = (head,)
            shapes[f"{block}.{side}_attn_k_norm.weight"] = (head,)
            linear(f"{block}.{side}_attn_proj", hidden, hidden)
            linear(f"{block}.{side}_mlp.fc1", ffn, hidden)
            linear(f"{block}.{side}_mlp.fc2", hidden, ffn)
    linear("final_layer.linear", latent, hidden)  # FinalLayer (patch 1x1x1)
    linear("final_layer.adaLN_modulation.1", 2 * hidden, hidden)
    shapes.update({"byt5_in.layernorm.weight": (byt5,), "byt5_in.layernorm.bias": (byt5,)})  # ByT5Mapper
    linear("byt5_in.fc1", byt5_hidden, byt5)
    linear("byt5_in.fc2", byt5_hidden, byt5_hidden)
    linear("byt5_in.fc3", hidden, byt5_hidden)
    shapes["cond_type_embedding.weight"] = (3, hidden)
    return shapes


def _random(shapes: dict, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}


def _converted(original: dict, embedded=None, arch="hunyuan_1_5_t2v"):
    arch_shape = FAMILY.architectures[arch].shape
    config = FAMILY.config(dict(original), embedded or {"heads_num": 2, "rope_dim_list": [2, 2, 4]}, arch_shape, "x")
    return config, FAMILY.to_diffusers(dict(original), {}, config)[0]


@pytest.mark.parametrize("fused", [False, True], ids=["split-qkv", "fused-qkv"])
def test_the_original_layout_converts_into_diffusers_model(fused):
    original = _random(wangp_shapes(fused=fused))
    config, state = _converted(original)
    assert (config["num_layers"], config["num_refiner_layers"], config["num_attention_heads"]) == (5, 1, 2)
    assert (config["in_channels"], config["out_channels"], config["mlp_ratio"]) == (9, 4, 2.0)
    assert (config["text_embed_dim"], config["text_embed_2_dim"], config["image_embed_dim"]) == (16, 32, 12)
    model = FAMILY.model_class(config).from_config(config)
    model.load_state_dict(state, strict=True)  # every diffusers key, no other
    refiner = "txt_in.individual_token_refiner.blocks.0.self_attn_qkv.weight"
    q, k, v = original[refiner].chunk(3)
    assert torch.equal(state["context_embedder.token_refiner.refiner_blocks.0.attn.to_k.weight"], k)
    assert torch.equal(state["context_embedder.token_refiner.refiner_blocks.0.attn.to_v.weight"], v)
    if fused:
        img_q = original["double_blocks.3.img_attn_qkv.weight"].chunk(3)[0]
        txt_v = original["double_blocks.3.txt_attn_qkv.bias"].chunk(3)[2]
    else:
        img_q, txt_v = original["double_blocks.3.img_attn_q.weight"], original["double_blocks.3.txt_attn_v.bias"]
    assert torch.equal(state["transformer_blocks.3.attn.to_q.weight"], img_q)
    assert torch.equal(state["transformer_blocks.3.attn.add_v_proj.bias"], txt_v)
    assert torch.equal(state["transformer_blocks.2.norm1_context.linear.weight"],
                       original["double_blocks.2.txt_mod.linear.weight"])
    shift, scale = original["final_layer.adaLN_modulation.1.weight"].chunk(2)
    assert torch.equal(state["norm_out.linear.weight"], torch.cat([scale, shift]))  # diffusers: [scale, shift]
    assert torch.equal(state["context_embedder_2.linear_3.weight"], original["byt5_in.fc3.weight"])
    assert torch.equal(state["image_embedder.linear_2.weight"], original["vision_in.proj.3.weight"])
    assert torch.equal(state["cond_type_embed.weight"], original["cond_type_embedding.weight"])


def test_a_quantized_fused_qkv_file_loads_as_quanto_quantizes_it_at_load(tmp_path):
    """quanto int8 pieces of fused q/k/v rows split like the weights: the file wangp quantizes loads into the same
    int8 model as the 16-bit file quantized at load (WanGP's auto_quantize)."""
    import base64

    from safetensors.torch import save_file

    from wangp_cli.generate.weights import load_transformer
    from wangp_cli.quantize.quantizer import quantize_file

    config = {"heads_num": 2, "rope_dim_list": [2, 2, 4]}
    source, quantized = tmp_path / "fused_bf16.safetensors", tmp_path / "fused_quanto_bf16_int8.safetensors"
    save_file({k: v.to(torch.bfloat16) for k, v in _random(wangp_shapes(fused=True)).items()}, str(source),
              metadata={"config_base64": base64.b64encode(json.dumps(config).encode()).decode()})
    quantize_file(source, quantized, "bf16", family="hunyuan15")
    shape = FAMILY.architectures["hunyuan_1_5_t2v"].shape
    from_file = load_transformer([quantized], torch.bfloat16, arch_shape=shape, family="hunyuan15").model
    at_load = load_transformer([source], torch.bfloat16, arch_shape=shape, quantize=True, family="hunyuan15").model
    layers = {n: m for n, m in from_file.named_modules() if type(m).__name__ == "QLinear"}
    assert len(layers) == 5 * 14 and layers.keys() == {
        n for n, m in at_load.named_modules() if type(m).__name__ == "QLinear"}
    for name in ("transformer_blocks.0.attn.to_k", "transformer_blocks.4.attn.add_v_proj"):
        ours, theirs = layers[name].weight, at_load.get_submodule(name).weight
        assert torch.equal(ours._data, theirs._data) and torch.equal(ours._scale, theirs._scale)


def test_the_layout_is_told_from_hunyuanvideo_1_0_by_names():
    names = dict.fromkeys(wangp_shapes())
    assert FAMILY.recognises(names)
    assert not FAMILY.recognises(dict.fromkeys(tiny.to_original_layout("hunyuan", tiny.make_transformer("hunyuan"))))
    with pytest.raises(WangpError, match="does not have"):
        _converted({**_random(wangp_shapes()), "single_blocks.0.linear1.weight": torch.zeros(4, 4)})


def test_config_checks_the_embedded_config_and_the_weights():
    original = _random(wangp_shapes())
    with pytest.raises(WangpError, match="rope axes"):
        _converted(original, {"heads_num": 2, "rope_dim_list": [4, 4, 4]})
    with pytest.raises(WangpError, match="heads_num is not a positive divisor"):
        _converted(original, {"heads_num": 3})
    meanflow = {**original, **_random({"time_r_in.mlp.0.weight": (16, 256), "time_r_in.mlp.0.bias": (16,),
                                       "time_r_in.mlp.2.weight": (16, 16), "time_r_in.mlp.2.bias": (16,)})}
    config, _ = _converted(meanflow)
    assert config["use_meanflow"]
    assert "MeanFlow" in FAMILY.mismatch(config, FAMILY.architectures["hunyuan_1_5_t2v"].shape)
    assert FAMILY.mismatch(config, FAMILY.architectures["hunyuan_1_5_i2v"].shape) is None


# -- the quantizer's layers against mmgp's ----------------------------------------------------------------------------

def _wangp_module(state: dict):
    """An ``nn.Module`` tree with exactly these tensor names (Linear for 2-D weights), WanGP's fp32 lock on the final
    layer (``lock_layers_dtypes``): what mmgp's quantizer walks."""
    from torch import nn

    root = nn.Module()
    for name, tensor in state.items():
        *path, leaf = name.split(".")
        module = root
        for part in path[:-1]:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        owner = path[-1]
        if not hasattr(module, owner):
            weight = state[".".join(path) + ".weight"]
            child = nn.Linear(weight.shape[1], weight.shape[0]) if weight.dim() == 2 else nn.Module()
            if weight.dim() != 2:
                child.register_parameter("weight", nn.Parameter(weight.clone()))
            module.add_module(owner, child)
        getattr(module, owner).register_parameter(leaf, nn.Parameter(tensor.clone()))
    for name in ("final_layer", "final_layer.linear", "final_layer.adaLN_modulation.1"):
        root.get_submodule(name)._lock_dtype = torch.float32
    return root


def test_the_quantized_layers_are_mmgps(tmp_path):
    pytest.importorskip("mmgp")
    from optimum.quanto import QModuleMixin
    from safetensors.torch import save_file

    from wangp_cli.quantize.quantizer import quantized_modules
    from wangp_cli.quantize.safetensors_io import read_header

    # the double blocks hold most of the weights, as in the real model (97%; mmgp quantizes everything when the
    # rest exceeds 20%): a narrow ByT5 mapper here
    shapes = wangp_shapes(hidden=64, heads=2, layers=5, mlp=4, byt5_hidden=64)
    state = {k: v.to(torch.bfloat16) for k, v in _random(shapes).items()}
    path = tmp_path / "hy15.safetensors"
    save_file(state, str(path))
    ours = set(quantized_modules(read_header(path)[1], "hunyuan15"))
    model = _wangp_module(state)
    from tests.quantize.test_mmgp_interop import offload  # mmgp, its safetensors patches undone

    offload._quantize(model, verboseLevel=0)
    theirs = {name for name, module in model.named_modules() if isinstance(module, QModuleMixin)}
    assert ours == theirs and len(ours) == 5 * 14
    assert FAMILY.quantize_checked and not FAMILY.quantize_skip


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    return {kind: tiny.make_components(kind, tmp_path_factory.mktemp(f"components-{kind}")) for kind in KINDS}


def test_wangp_quantize_takes_the_definitions(components, tmp_path):
    from wangp_cli.generate.weights import read_checkpoint

    home = tiny.make_home(tmp_path / "home", "hunyuan15", components=components["hunyuan15"])
    result = invoke("quantize", home.model_id, "--dtype", "bf16", "--format", "json", home=home.root)
    assert result.exit_code == 0, result.output
    written = sorted((home.root / "ckpts").glob("*quanto_bf16_int8.safetensors"))
    assert len(written) == 1
    modules = set(read_checkpoint(written).quantization_map)
    assert modules == {f"double_blocks.{i}.{name}" for i in range(5) for name in (
        "img_mod.linear", "txt_mod.linear", "img_attn_q", "img_attn_k", "img_attn_v", "txt_attn_q", "txt_attn_k",
        "txt_attn_v", "img_attn_proj", "txt_attn_proj", "img_mlp.fc1", "img_mlp.fc2", "txt_mlp.fc1", "txt_mlp.fc2")}


# -- the same frames as diffusers by hand ------------------------------------------------------------------------------

def _start_image(folder: Path) -> Path:
    path = folder / "start.png"
    tiny.make_image(SIZE, seed=3).save(path)
    return path


def _reference(home, request, quantized: bool):
    """``HunyuanVideo15Pipeline`` (or the I2V one) by hand, as diffusers' docs load it, on the weights the files were
    written from; the guider and scheduler set as diffusers' docs say (``pipe.guider.new``)."""
    import diffusers
    from optimum.quanto import freeze, qint8, quantize
    from PIL import Image

    model = tiny.documented_transformer(home.model, home.root / "reference-transformer")
    if quantized:
        quantize(model, weights=qint8, include=["transformer_blocks.*"])
        freeze(model)
    cls = getattr(diffusers, tiny.PIPELINES[home.kind])
    with tiny.offline():
        pipe = cls.from_pretrained(home.components, transformer=model, torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    settings = request.settings
    pipe.scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config,
                                                                           shift=settings["flow_shift"])
    pipe.guider = pipe.guider.new(guidance_scale=settings["guidance_scale"])
    call = {"negative_prompt": (NEGATIVE_PROMPT_I2V if request.image else NEGATIVE_PROMPT)
            if settings["guidance_scale"] != 1 else None}
    if request.image:  # the I2V pipeline sizes the video itself: 32x32 at the tiny target size
        call["image"] = Image.open(request.image).convert("RGB")
    else:
        call.update(height=SIZE, width=SIZE)
    with torch.inference_mode():
        output = pipe(prompt=settings["prompt"], num_frames=request.frames, num_inference_steps=request.steps,
                      generator=torch.Generator("cpu").manual_seed(request.seed), output_type="np", **call)
    return output.frames[0]


#: (kind, int8, guidance, steps): two steps in one pass (guidance 1: no negative prompt, as WanGP), classifier-free
#: guidance with WanGP's default negative prompt, int8 (its I2V runs end to end in the CLI test below); few forwards:
#: one costs ~1.5 s of CPU here (diffusers' ByT5 projection is 2048 wide whatever the model's size).
CASES = [("hunyuan15", False, 1.0, 2), ("hunyuan15_i2v", False, 6.0, 1), ("hunyuan15", True, 1.0, 1)]


@pytest.mark.parametrize("kind,quantized,guidance,steps", CASES,
                         ids=[f"{k}-{'int8' if q else '16bit'}" for k, q, _, _ in CASES])
def test_frames_equal_the_plain_diffusers_pipeline(kind, quantized, guidance, steps, components, tmp_path):
    home = tiny.make_home(tmp_path / "home", kind, quantized=quantized, components=components[kind])
    catalog = Catalog(Home(home.root))
    image = _start_image(tmp_path) if kind.endswith("i2v") else None
    request = build_request(catalog, home.model_id, {"seed": 11, "guidance": guidance, "steps": steps},
                            preference=home.preference, image=image)
    generator = Generator(catalog)
    result = generator.render(request).result
    expected = _reference(home, request, quantized)
    assert result.frames.shape == expected.shape == (9, SIZE, SIZE, 3)
    assert np.isfinite(result.frames).all() and result.frames.std() > 0.01
    np.testing.assert_array_equal(result.frames, expected)
    assert len(result.step_seconds) == request.steps  # the step callback wangp adds
    assert result.transformer_calls == request.steps * (2 if guidance != 1 else 1)
    quantized_layers = {n for n, m in generator._pipe.transformer.named_modules() if type(m).__name__ == "QLinear"}
    assert bool(quantized_layers) is quantized
    assert all(n.startswith("transformer_blocks.") for n in quantized_layers)


# -- end to end through the CLI ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,quantized", [("hunyuan15", False), ("hunyuan15_i2v", True)])
def test_the_cli_writes_an_mp4(kind, quantized, components, tmp_path):
    home = tiny.make_home(tmp_path / "home", kind, quantized=quantized, components=components[kind])
    image = ["--image", _start_image(tmp_path)] if kind.endswith("i2v") else []
    result = invoke("generate", "-m", home.model_id, "--seed", 3, "--frames", 5, "--steps", 1, "--guidance", 1,
                    "--quantization", "int8" if quantized else "none", "--format", "json", *image, home=home.root)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    probe = probe_video(record["path"])
    assert (probe["frames"], probe["width"], probe["height"]) == (5, SIZE, SIZE)
    assert probe["fps"] == pytest.approx(24)
    assert record["quantized"] is quantized and record["architecture"] == tiny.ARCHITECTURES[kind]
    metadata = read_metadata(Path(record["path"]))
    assert metadata["base_model_type"] == tiny.ARCHITECTURES[kind] and metadata["flow_shift"] == 5.0


# -- refusals --------------------------------------------------------------------------------------------------------

def _definition(root: Path, model_id: str, architecture: str, **settings) -> Path:
    write_json(root / "finetunes" / f"{model_id}.json",
               {"model": {"name": model_id, "architecture": architecture, "URLs": ["ckpts/x.safetensors"]},
                **settings})
    return root


@pytest.mark.parametrize("settings,message", [
    ({"cfg_star_switch": 1}, "cfg_star_switch"),
    ({"video_length": 97, "sliding_window_size": 33}, "sliding_window_size"),
    ({"NAG_scale": 3}, "NAG_scale"),
])
def test_settings_diffusers_cannot_follow_are_refused(settings, message, tmp_path):
    root = _definition(tmp_path, "hy15", "hunyuan_1_5_t2v", **settings)
    result = invoke("generate", "-m", "hy15", "--dry-run", home=root)
    assert result.exit_code != 0 and message in result.output


def test_the_upsampler_and_a_missing_image_are_refused(tmp_path):
    root = _definition(_definition(tmp_path, "up", "hunyuan_1_5_upsampler"), "i2v", "hunyuan_1_5_i2v")
    result = invoke("generate", "-m", "up", "--dry-run", home=root)
    assert result.exit_code != 0 and "WanGP-only" in result.output
    result = invoke("generate", "-m", "i2v", "--dry-run", home=root)
    assert result.exit_code != 0 and "--image" in result.output


def test_the_registry_has_the_components_repos():
    from wangp_cli.core.registry import get_architecture

    t2v, i2v = get_architecture("hunyuan_1_5_t2v", "v12"), get_architecture("hunyuan_1_5_i2v", "v12")
    assert t2v.diffusers_repo.endswith("HunyuanVideo-1.5-Diffusers-720p_t2v") and "guider" in t2v.components
    assert {"image_encoder", "feature_extractor"} <= set(i2v.components) and "transformer" not in i2v.components
    assert t2v.transformer["num_layers"] == 54 and t2v.family == "hunyuan"
