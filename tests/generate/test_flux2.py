"""Flux 2 (``flux2_dev``; klein ``flux2_klein_4b`` / ``flux2_klein_9b``) through ``wangp generate`` on CPU: the
conversion from BFL's Flux 2 key names (WanGP's files) through diffusers' converter, quanto-aware; images equal to
the plain diffusers pipeline built by hand (16-bit and quanto int8); the image read back through the CLI; the int8
layer choice against mmgp's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import invoke  # noqa: E402

from tests.generate.test_flux import _axes_metadata, bfl_module  # noqa: E402
from wangp_cli.core.definitions import Catalog  # noqa: E402
from wangp_cli.core.errors import WangpError  # noqa: E402
from wangp_cli.core.home import Home  # noqa: E402
from wangp_cli.core.registry import get_architecture  # noqa: E402
from wangp_cli.families import FAMILIES  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.request import build_request  # noqa: E402
from wangp_cli.generate.runner import Generator  # noqa: E402
from wangp_cli.generate.weights import load_transformer, read_checkpoint  # noqa: E402

FAMILY = FAMILIES["flux2"]
KIND = "flux2_klein"
PROMPT = "a red fox in the forest"


def make_home(tmp_path, components, quantized=False, settings=None, kind=KIND):
    return tiny.make_home(tmp_path / "home", kind, quantized=quantized, components=components(kind),
                          settings=settings)


# -- conversion from BFL's Flux 2 key names -----------------------------------------------------------------------

def bfl_flux2_layout(config: dict, seed: int = 0, device=None) -> dict:
    """Tensors named as WanGP's ``Flux`` model with ``flux2=True`` names them (models/flux/model.py,
    modules/layers.py; no biases): ``img_in`` / ``txt_in``, ``time_in`` (+ ``guidance_in`` for dev) MLPEmbedders,
    the shared ``double_stream_modulation_img/txt.lin`` and ``single_stream_modulation.lin``, ``DoubleStreamBlock``
    without ``img_mod`` (``img_attn.qkv`` fused, ``img_attn.norm.*_norm.scale``, ``img_attn.proj``, the SwiGLU
    ``img_mlp.0`` (2 x 3h rows) / ``img_mlp.2``), ``SingleStreamBlock`` (``linear1`` = q, k, v and the 6h SwiGLU
    input fused, ``linear2``), ``LastLayer`` (``adaLN_modulation.1``, ``linear``)."""
    h = config["num_attention_heads"] * config["attention_head_dim"]
    head, ctx, inp, mlp = config["attention_head_dim"], config["joint_attention_dim"], config["in_channels"], 3 * h
    shapes = {"img_in.weight": (h, inp), "txt_in.weight": (h, ctx), "time_in.in_layer.weight": (h, 256),
              "time_in.out_layer.weight": (h, h), "double_stream_modulation_img.lin.weight": (6 * h, h),
              "double_stream_modulation_txt.lin.weight": (6 * h, h), "single_stream_modulation.lin.weight": (3 * h, h),
              "final_layer.adaLN_modulation.1.weight": (2 * h, h), "final_layer.linear.weight": (inp, h)}
    if config.get("guidance_embeds"):
        shapes.update({"guidance_in.in_layer.weight": (h, 256), "guidance_in.out_layer.weight": (h, h)})
    for n in range(config["num_layers"]):
        for stream in ("img", "txt"):
            block = f"double_blocks.{n}.{stream}_"
            shapes[f"{block}attn.qkv.weight"] = (3 * h, h)
            shapes[f"{block}attn.norm.query_norm.scale"] = shapes[f"{block}attn.norm.key_norm.scale"] = (head,)
            shapes[f"{block}attn.proj.weight"] = (h, h)
            shapes[f"{block}mlp.0.weight"], shapes[f"{block}mlp.2.weight"] = (2 * mlp, h), (h, mlp)
    for n in range(config["num_single_layers"]):
        block = f"single_blocks.{n}."
        shapes[f"{block}linear1.weight"], shapes[f"{block}linear2.weight"] = (3 * h + 2 * mlp, h), (h, h + mlp)
        shapes[f"{block}norm.query_norm.scale"] = shapes[f"{block}norm.key_norm.scale"] = (head,)
    if device == "meta":
        return {name: torch.empty(shape, device="meta", dtype=torch.bfloat16) for name, shape in shapes.items()}
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator).to(torch.bfloat16) for name, shape in shapes.items()}


@pytest.mark.parametrize("arch_id", ["flux2_klein_4b", "flux2_dev"])
def test_bfl_layout_loads_with_the_fused_qkv_split(arch_id, tmp_path):
    from safetensors.torch import save_file

    dev = arch_id == "flux2_dev"
    config = tiny.TRANSFORMER_CONFIGS["flux2_dev" if dev else KIND]
    original = bfl_flux2_layout(config)
    path = tmp_path / "bfl.safetensors"
    save_file(original, str(path), metadata=_axes_metadata(config))
    shape = {**get_architecture(arch_id, "v12").transformer, "joint_attention_dim": None}
    loaded = load_transformer([path], torch.bfloat16, arch_shape=shape, family="flux2")
    assert type(loaded.model).__name__ == "Flux2Transformer2DModel"
    state = loaded.model.state_dict()
    h = config["num_attention_heads"] * config["attention_head_dim"]
    qkv, txt = original["double_blocks.3.img_attn.qkv.weight"], original["double_blocks.1.txt_attn.qkv.weight"]
    shift, scale = original["final_layer.adaLN_modulation.1.weight"].chunk(2)
    pairs = {"transformer_blocks.3.attn.to_q.weight": qkv[:h], "transformer_blocks.3.attn.to_v.weight": qkv[2 * h:],
             "transformer_blocks.1.attn.add_k_proj.weight": txt[h:2 * h],
             "single_transformer_blocks.2.attn.to_qkv_mlp_proj.weight": original["single_blocks.2.linear1.weight"],
             "single_transformer_blocks.4.attn.to_out.weight": original["single_blocks.4.linear2.weight"],
             "single_transformer_blocks.0.attn.norm_k.weight": original["single_blocks.0.norm.key_norm.scale"],
             "transformer_blocks.0.ff_context.linear_in.weight": original["double_blocks.0.txt_mlp.0.weight"],
             "double_stream_modulation_txt.linear.weight": original["double_stream_modulation_txt.lin.weight"],
             "time_guidance_embed.timestep_embedder.linear_2.weight": original["time_in.out_layer.weight"],
             "norm_out.linear.weight": torch.cat([scale, shift]), "x_embedder.weight": original["img_in.weight"]}
    if dev:
        pairs["time_guidance_embed.guidance_embedder.linear_1.weight"] = original["guidance_in.in_layer.weight"]
    for name, expected in pairs.items():
        assert torch.equal(state[name], expected), name
    assert len(state) == len(original) + 4 * config["num_layers"]  # each fused qkv became three tensors
    assert loaded.config["mlp_ratio"] == 3.0 and loaded.config["guidance_embeds"] is dev


def test_a_quantized_file_keeps_its_pieces_through_diffusers_converter(tmp_path):
    from wangp_cli.families.flux2.convert import config, to_diffusers

    model = tiny.make_transformer(KIND)
    path = tiny.write_quantized(KIND, model, tmp_path / "klein_quanto_bf16_int8.safetensors")
    checkpoint = read_checkpoint([path])
    tensors, qmap = dict(checkpoint.tensors), dict(checkpoint.quantization_map)
    converted, converted_map = to_diffusers(tensors, qmap, config(tensors, checkpoint.config, {}, "file"))
    assert "transformer_blocks.0.attn.add_v_proj" in converted_map
    assert "single_transformer_blocks.3.attn.to_qkv_mlp_proj.weight._data" in converted
    assert "transformer_blocks.2.ff.linear_out.weight._scale" in converted
    assert not any(k.startswith(("double_blocks", "single_blocks")) for k in converted)


def test_recognised_apart_from_flux1():
    names = dict.fromkeys(bfl_flux2_layout(tiny.TRANSFORMER_CONFIGS[KIND], device="meta"))
    assert FAMILY.recognises(names) and not FAMILIES["flux"].recognises(names)


def test_a_dev_file_is_refused_for_klein(tmp_path):
    from safetensors.torch import save_file

    config = {**tiny.TRANSFORMER_CONFIGS[KIND], "guidance_embeds": True}
    path = tmp_path / "dev.safetensors"
    save_file(bfl_flux2_layout(config), str(path), metadata=_axes_metadata(config))
    shape = {**get_architecture("flux2_klein_4b", "v12").transformer, "joint_attention_dim": None}
    with pytest.raises(WangpError, match="guidance-distilled"):
        load_transformer([path], torch.bfloat16, arch_shape=shape, family="flux2")


# -- images equal the plain diffusers pipeline ---------------------------------------------------------------------

def reference_image(home, request, quantized: bool):
    import diffusers
    from optimum.quanto import freeze, qint8, quantize

    model = tiny.documented_transformer(home.model, home.root / "reference-transformer")
    if quantized:
        quantize(model, weights=qint8, include=["transformer_blocks.*", "single_transformer_blocks.*"])
        freeze(model)
    cls = diffusers.Flux2Pipeline if home.kind == "flux2_dev" else diffusers.Flux2KleinPipeline
    with tiny.offline():
        pipe = cls.from_pretrained(home.components, transformer=model, torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    guidance = 3.0 if home.kind == "flux2_dev" else 1.0  # dev: embedded_guidance_scale; klein: no CFG
    with torch.inference_mode():
        output = pipe(prompt=PROMPT, height=64, width=64, num_inference_steps=request.steps, guidance_scale=guidance,
                      generator=torch.Generator("cpu").manual_seed(11), output_type="np", **home.pipeline_kwargs)
    return output.images[0], model


@pytest.mark.parametrize("kind,quantized", [(KIND, False), (KIND, True), ("flux2_dev", False)],
                         ids=["klein-16bit", "klein-int8", "dev-16bit"])
def test_images_equal_the_plain_diffusers_pipeline(kind, quantized, components, tmp_path):
    home = make_home(tmp_path, components, quantized, kind=kind,
                     settings={"embedded_guidance_scale": 3.0} if kind == "flux2_dev" else None)
    catalog = Catalog(Home(home.root))
    request = build_request(catalog, home.model_id, {"seed": 11, "prompt": PROMPT}, preference=home.preference,
                            pipeline_kwargs=home.pipeline_kwargs)
    generator = Generator(catalog)
    frames = generator.render(request).result.frames
    expected, reference_model = reference_image(home, request, quantized)
    assert frames.shape == (1, 64, 64, 3) and np.isfinite(frames).all() and frames.std() > 0.01
    np.testing.assert_array_equal(frames[0], expected)
    qlinear = {n for n, m in reference_model.named_modules() if type(m).__name__ == "QLinear"}
    assert {n for n, m in generator._pipe.transformer.named_modules() if type(m).__name__ == "QLinear"} == qlinear
    assert bool(qlinear) is quantized


def test_cli_writes_the_image_with_wangps_metadata(components, tmp_path):
    from wangp_cli.generate.image import probe_image, read_metadata

    home = make_home(tmp_path, components)
    out = tmp_path / "klein.jpg"
    args = []
    for key, value in home.pipeline_kwargs.items():
        args += ["--pipeline-arg", f"{key}={json.dumps(value)}"]
    result = invoke("generate", "-m", home.model_id, "--prompt", PROMPT, "--seed", 5, "--profile", "cpu",
                    "--format", "json", "-o", out, *args, home=home.root)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert Path(record["path"]) == out and record["media"] == "image"
    probe = probe_image(out)
    assert (probe["format"], probe["width"], probe["height"]) == ("JPEG", 64, 64)
    assert read_metadata(out)["seed"] == 5


# -- quantize: the layer choice against mmgp's -----------------------------------------------------------------------

def test_quantized_layers_are_mmgps(tmp_path):
    """mmgp's ``_quantize`` on a BFL-layout Flux 2 model quantizes every Linear of the two towers and none of the
    shared modulations, embedders or the final layer; wangp's file quantizes the same."""
    pytest.importorskip("mmgp")
    from optimum.quanto import QLinear

    from tests.quantize.test_mmgp_interop import offload
    from wangp_cli.quantize.quantizer import quantize_file

    model = tiny.make_transformer(KIND)
    source = tiny.write_transformer(KIND, model, tmp_path / "klein_bf16.safetensors")
    mmgp_model = bfl_module(tiny.to_original_layout(KIND, model)).to(torch.bfloat16)
    offload._quantize(mmgp_model, verboseLevel=0)
    theirs = {n for n, m in mmgp_model.named_modules() if isinstance(m, QLinear)}
    quantize_file(source, tmp_path / "klein_quanto_bf16_int8.safetensors", "bf16", family="flux2")
    ours = set(read_checkpoint([tmp_path / "klein_quanto_bf16_int8.safetensors"]).quantization_map)
    assert ours == theirs and len(ours) == 5 * 8 + 5 * 2
    assert not any("modulation" in n or n.startswith(("img_in", "txt_in", "time_in", "final_layer")) for n in ours)
