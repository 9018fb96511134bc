"""Flux 1 (``flux``, ``flux_schnell``, ``flux_dev_kontext``) and Chroma (``flux_chroma``) through ``wangp
generate`` on CPU: the conversion from BFL's key names (WanGP's files), checked against diffusers' own converters
on the real shapes; images equal to the plain diffusers pipeline built by hand (16-bit and quanto int8); the image
read back through the CLI; the int8 layer choice against mmgp's; the refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import invoke  # noqa: E402

from wangp_cli.core.definitions import Catalog  # noqa: E402
from wangp_cli.core.errors import UsageError  # noqa: E402
from wangp_cli.core.home import Home  # noqa: E402
from wangp_cli.core.registry import get_architecture  # noqa: E402
from wangp_cli.families import FAMILIES  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.request import build_request  # noqa: E402
from wangp_cli.generate.runner import Generator  # noqa: E402
from wangp_cli.generate.weights import load_transformer, read_checkpoint  # noqa: E402

FAMILY = FAMILIES["flux"]
PROMPT = "a red fox in the forest"
#: Explicit sampler settings per kind (the reference passes the same numbers).
SETTINGS = {"flux": {"embedded_guidance_scale": 3.5}, "flux_schnell": {},
            "flux_dev_kontext": {"embedded_guidance_scale": 2.0},
            "flux_chroma": {"guidance_scale": 4.0, "negative_prompt": "blurry"}}


def _registry_has_kontext_components() -> bool:
    return get_architecture("flux_dev_kontext", "v12").diffusers_repo is not None


needs_kontext_repo = pytest.mark.skipif(
    not _registry_has_kontext_components(),
    reason="the registry's July flux_dev_kontext row hides the family's components repo (core/registry.py)")


def _marks(kind):
    return [needs_kontext_repo] if kind == "flux_dev_kontext" else []


def make_home(tmp_path, kind, components, quantized=False, settings=None):
    return tiny.make_home(tmp_path / "home", kind, quantized=quantized, components=components(kind),
                          settings={**SETTINGS[kind], **(settings or {})})


def _start_image(folder: Path) -> Path:
    path = folder / "start.png"
    tiny.make_image(64, seed=3).save(path)
    return path


# -- conversion from BFL's key names ------------------------------------------------------------------------------

def bfl_layout(config: dict, seed: int = 0, chroma: bool = False, dtype=torch.bfloat16, device=None) -> dict:
    """Tensors named as WanGP's ``Flux`` model names them (models/flux/model.py, modules/layers.py): ``img_in`` /
    ``txt_in`` Linears, ``time_in`` / ``vector_in`` / ``guidance_in`` MLPEmbedders (``in_layer``, ``out_layer``),
    ``DoubleStreamBlock`` (``img_mod.lin``, ``img_attn.qkv`` fused, ``img_attn.norm.query_norm.scale``,
    ``img_attn.proj``, ``img_mlp.0`` / ``.2``, the same for ``txt_``), ``SingleStreamBlock`` (``linear1`` = q, k, v
    and the MLP input fused, ``linear2``, ``norm.*_norm.scale``, ``modulation.lin``), ``LastLayer``
    (``adaLN_modulation.1``, ``linear``); Chroma: no per-block modulation, ``DistilledGuidance`` (``in_proj``,
    ``layers.N.in_layer/out_layer``, ``norms.N.scale``, ``out_proj``). ``device="meta"``: shapes only."""
    h = config["num_attention_heads"] * config["attention_head_dim"]
    head, mlp, ctx, inp = config["attention_head_dim"], 4 * h, config["joint_attention_dim"], config["in_channels"]
    shapes = {"img_in.weight": (h, inp), "img_in.bias": (h,), "txt_in.weight": (h, ctx), "txt_in.bias": (h,),
              "final_layer.linear.weight": (inp, h), "final_layer.linear.bias": (inp,)}

    def linear(name, rows, cols):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (rows, cols), (rows,)

    if chroma:
        hidden, channels = config["approximator_hidden_dim"], config["approximator_num_channels"]
        linear("distilled_guidance_layer.in_proj", hidden, channels)
        for n in range(config["approximator_layers"]):
            linear(f"distilled_guidance_layer.layers.{n}.in_layer", hidden, hidden)
            linear(f"distilled_guidance_layer.layers.{n}.out_layer", hidden, hidden)
            shapes[f"distilled_guidance_layer.norms.{n}.scale"] = (hidden,)
        linear("distilled_guidance_layer.out_proj", h, hidden)
    else:
        for embedder, width in (("time_in", 256), ("vector_in", config["pooled_projection_dim"]),
                                ("guidance_in", 256))[: 3 if config.get("guidance_embeds") else 2]:
            linear(f"{embedder}.in_layer", h, width)
            linear(f"{embedder}.out_layer", h, h)
        linear("final_layer.adaLN_modulation.1", 2 * h, h)
    for n in range(config["num_layers"]):
        for stream in ("img", "txt"):
            block = f"double_blocks.{n}.{stream}_"
            if not chroma:
                linear(f"{block}mod.lin", 6 * h, h)
            linear(f"{block}attn.qkv", 3 * h, h)
            shapes[f"{block}attn.norm.query_norm.scale"] = shapes[f"{block}attn.norm.key_norm.scale"] = (head,)
            linear(f"{block}attn.proj", h, h)
            linear(f"{block}mlp.0", mlp, h)
            linear(f"{block}mlp.2", h, mlp)
    for n in range(config["num_single_layers"]):
        block = f"single_blocks.{n}."
        linear(f"{block}linear1", 3 * h + mlp, h)
        linear(f"{block}linear2", h, h + mlp)
        shapes[f"{block}norm.query_norm.scale"] = shapes[f"{block}norm.key_norm.scale"] = (head,)
        if not chroma:
            linear(f"{block}modulation.lin", 3 * h, h)
    if device == "meta":
        return {name: torch.empty(shape, device="meta", dtype=dtype) for name, shape in shapes.items()}
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(shape, generator=generator).to(dtype) for name, shape in shapes.items()}


def _axes_metadata(config: dict) -> dict:
    """BFL's ``axes_dim`` for the tiny head dim (the real model's [16, 56, 56] needs head dim 128)."""
    import base64

    return {"config_base64": base64.b64encode(json.dumps({"axes_dim": config["axes_dims_rope"]}).encode()).decode()}


@pytest.mark.parametrize("kind", ["flux", "flux_chroma"])
def test_bfl_layout_loads_with_the_fused_linears_split(kind, tmp_path):
    from safetensors.torch import save_file

    config = tiny.TRANSFORMER_CONFIGS[kind]
    chroma = kind == "flux_chroma"
    original = bfl_layout(config, chroma=chroma)
    path = tmp_path / "bfl.safetensors"
    save_file(original, str(path), metadata=_axes_metadata(config))
    shape = {**get_architecture(tiny.ARCHITECTURES[kind], "v12").transformer, "in_channels": None}
    loaded = load_transformer([path], torch.bfloat16, arch_shape=shape, family="flux")
    assert type(loaded.model).__name__ == tiny.TRANSFORMERS[kind]
    state = loaded.model.state_dict()
    h = config["num_attention_heads"] * config["attention_head_dim"]
    qkv, txt, linear1 = (original["double_blocks.2.img_attn.qkv.weight"], original["double_blocks.0.txt_attn.qkv.bias"],
                         original["single_blocks.3.linear1.weight"])
    pairs = {"transformer_blocks.2.attn.to_q.weight": qkv[:h], "transformer_blocks.2.attn.to_k.weight": qkv[h:2 * h],
             "transformer_blocks.2.attn.to_v.weight": qkv[2 * h:],
             "transformer_blocks.0.attn.add_v_proj.bias": txt[2 * h:],
             "single_transformer_blocks.3.attn.to_k.weight": linear1[h:2 * h],
             "single_transformer_blocks.3.proj_mlp.weight": linear1[3 * h:],
             "single_transformer_blocks.1.proj_out.weight": original["single_blocks.1.linear2.weight"],
             "transformer_blocks.4.attn.norm_added_k.weight": original["double_blocks.4.txt_attn.norm.key_norm.scale"],
             "transformer_blocks.1.ff_context.net.2.bias": original["double_blocks.1.txt_mlp.2.bias"],
             "x_embedder.weight": original["img_in.weight"], "proj_out.bias": original["final_layer.linear.bias"]}
    if chroma:
        pairs["distilled_guidance_layer.norms.4.weight"] = original["distilled_guidance_layer.norms.4.scale"]
        pairs["distilled_guidance_layer.layers.2.linear_2.weight"] = original[
            "distilled_guidance_layer.layers.2.out_layer.weight"]
    else:
        shift, scale = original["final_layer.adaLN_modulation.1.weight"].chunk(2)
        pairs.update({"norm_out.linear.weight": torch.cat([scale, shift]),  # diffusers: (scale, shift)
                      "transformer_blocks.3.norm1_context.linear.weight":
                          original["double_blocks.3.txt_mod.lin.weight"],
                      "single_transformer_blocks.0.norm.linear.bias": original["single_blocks.0.modulation.lin.bias"],
                      "time_text_embed.guidance_embedder.linear_2.weight": original["guidance_in.out_layer.weight"]})
    for name, expected in pairs.items():
        assert torch.equal(state[name], expected), name
    assert loaded.config["num_layers"] == 5 and loaded.config["axes_dims_rope"] == [4, 4, 8]


@pytest.mark.parametrize("arch_id", ["flux", "flux_chroma"])
def test_names_and_shapes_equal_diffusers_converters_on_the_real_model(arch_id):
    """diffusers' converters work at the real width only (hard-coded 3072): compared there, on meta tensors."""
    from diffusers.loaders import single_file_utils as sfu

    from wangp_cli.families.flux.convert import config, to_diffusers

    shape = {**FAMILY.architectures[arch_id].shape, "num_layers": 2, "num_single_layers": 2}
    chroma = arch_id == "flux_chroma"
    original = bfl_layout(shape, chroma=chroma, device="meta")
    theirs = (sfu.convert_chroma_transformer_checkpoint_to_diffusers if chroma else
              sfu.convert_flux_transformer_checkpoint_to_diffusers)(dict(original))
    ours, _ = to_diffusers(dict(original), {}, config(original, {}, shape, "meta"))
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in theirs.items()}


def test_recognised_apart_from_hunyuan_and_flux2():
    flux = dict.fromkeys(bfl_layout(tiny.TRANSFORMER_CONFIGS["flux"], device="meta"))
    assert FAMILY.recognises(flux) and FAMILY.recognises(dict.fromkeys(
        bfl_layout(tiny.TRANSFORMER_CONFIGS["flux_chroma"], chroma=True, device="meta")))
    hunyuan = dict.fromkeys(tiny.to_original_layout("hunyuan", tiny.make_transformer("hunyuan")))
    assert not FAMILY.recognises(hunyuan)
    assert not FAMILY.recognises({**flux, "double_stream_modulation_img.lin.weight": None})  # Flux 2


def test_chroma_weights_are_refused_for_a_flux_definition(tmp_path):
    from safetensors.torch import save_file

    from wangp_cli.core.errors import WangpError

    path = tmp_path / "chroma.safetensors"
    config = tiny.TRANSFORMER_CONFIGS["flux_chroma"]
    save_file(bfl_layout(config, chroma=True), str(path), metadata=_axes_metadata(config))
    with pytest.raises(WangpError, match="a Chroma transformer, the architecture is Flux 1"):
        load_transformer([path], torch.bfloat16, arch_shape=get_architecture("flux", "v12").transformer,
                         family="flux")


# -- images equal the plain diffusers pipeline ---------------------------------------------------------------------

def request_for(home, media=None, **flags):
    catalog = Catalog(Home(home.root))
    extra = {"image": _start_image(media)} if home.kind == "flux_dev_kontext" else {}
    request = build_request(catalog, home.model_id, {"seed": 11, "prompt": PROMPT, **flags},
                            preference=home.preference, pipeline_kwargs=home.pipeline_kwargs, **extra)
    return catalog, request


def reference_image(home, request, quantized: bool):
    """The docs' recipe: ``Pipeline.from_pretrained(components, transformer=...)`` in bf16, optimum-quanto for int8,
    the call with the same numbers wangp derives from the settings."""
    import diffusers
    from optimum.quanto import freeze, qint8, quantize
    from PIL import Image

    model = tiny.documented_transformer(home.model, home.root / "reference-transformer")
    if quantized:
        quantize(model, weights=qint8, include=["transformer_blocks.*", "single_transformer_blocks.*",
                                                "distilled_guidance_layer.layers.*"])
        freeze(model)
    cls = {"flux": diffusers.FluxPipeline, "flux_schnell": diffusers.FluxPipeline,
           "flux_dev_kontext": diffusers.FluxKontextPipeline, "flux_chroma": diffusers.ChromaPipeline}[home.kind]
    with tiny.offline():
        pipe = cls.from_pretrained(home.components, transformer=model, torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    call = {"flux": {"guidance_scale": 3.5}, "flux_schnell": {"guidance_scale": 2.5},
            "flux_dev_kontext": {"guidance_scale": 2.0, "_auto_resize": False, "max_area": 64 * 64,
                                 "image": Image.open(request.image).convert("RGB").resize((64, 64))
                                 if request.image else None},
            "flux_chroma": {"guidance_scale": 4.0, "negative_prompt": "blurry"}}[home.kind]
    with torch.inference_mode():
        output = pipe(prompt=PROMPT, height=64, width=64, num_inference_steps=request.steps,
                      generator=torch.Generator("cpu").manual_seed(11), output_type="np", **call,
                      **home.pipeline_kwargs)
    return output.images[0], model


def _qlinear(model) -> set:
    return {n for n, m in model.named_modules() if type(m).__name__ == "QLinear"}


#: int8 once (Chroma: the same fused qkv / linear1 splits as Flux, plus the approximator tower): the CI budget.
CASES = [("flux", False), ("flux_schnell", False), ("flux_chroma", False), ("flux_chroma", True),
         ("flux_dev_kontext", False)]


@pytest.mark.parametrize("kind,quantized", [pytest.param(k, q, marks=_marks(k)) for k, q in CASES],
                         ids=[f"{k}-{'int8' if q else '16bit'}" for k, q in CASES])
def test_images_equal_the_plain_diffusers_pipeline(kind, quantized, components, tmp_path):
    home = make_home(tmp_path, kind, components, quantized)
    catalog, request = request_for(home, tmp_path)
    generator = Generator(catalog)
    frames = generator.render(request).result.frames
    expected, reference_model = reference_image(home, request, quantized)
    assert frames.shape == (1, 64, 64, 3) and np.isfinite(frames).all() and frames.std() > 0.01
    np.testing.assert_array_equal(frames[0], expected)
    assert _qlinear(generator._pipe.transformer) == _qlinear(reference_model)
    assert bool(_qlinear(reference_model)) is quantized


# -- the CLI, the image read back ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,suffix", [("flux", "webp")])
def test_cli_writes_the_image_with_wangps_metadata(kind, suffix, components, tmp_path):
    from wangp_cli.generate.image import probe_image, read_metadata

    home = make_home(tmp_path, kind, components)
    out = tmp_path / f"flux.{suffix}"
    args = []
    for key, value in home.pipeline_kwargs.items():
        args += ["--pipeline-arg", f"{key}={json.dumps(value)}"]
    result = invoke("generate", "-m", home.model_id, "--prompt", PROMPT, "--seed", 5, "--profile", "cpu",
                    "--format", "json", "-o", out, *args, home=home.root)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert Path(record["path"]) == out and record["media"] == "image" and record["frames"] == 1
    probe = probe_image(out)
    assert (probe["format"].lower(), probe["width"], probe["height"]) == (
        {"png": "png", "webp": "webp"}[suffix], 64, 64)
    metadata = read_metadata(out)
    assert metadata["prompt"] == PROMPT and metadata["seed"] == 5
    assert metadata["model_type"] == tiny.ARCHITECTURES[kind] or metadata.get("model_filename")


# -- refusals ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("setting,match", [({"NAG_scale": 3.0}, "no NAG"),
                                           ({"model_mode": 2}, "inpainting methods")])
def test_settings_diffusers_cannot_follow_are_refused(setting, match, components, tmp_path):
    home = make_home(tmp_path, "flux", components, settings=setting)
    with pytest.raises(UsageError, match=match):
        request_for(home)


# -- quantize: the layer choice against mmgp's -----------------------------------------------------------------------

def bfl_module(original: dict):
    """An ``nn.Module`` tree with the original layout's names (Linears for 2-D weights; ModuleLists for numbered
    children), in the file's order: the structure mmgp walks when WanGP quantizes its Flux model."""
    from torch import nn

    tree: dict = {}
    for name, tensor in original.items():
        *path, leaf = name.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = tensor

    def build(node: dict):
        if "weight" in node and getattr(node["weight"], "dim", lambda: 0)() == 2:
            rows, cols = node["weight"].shape
            return nn.Linear(cols, rows, bias="bias" in node)
        children = {k: v for k, v in node.items() if isinstance(v, dict)}
        numbered = sorted(children, key=int) if children and all(k.isdigit() for k in children) else None
        if numbered == [str(i) for i in range(len(children))]:  # the blocks, Chroma's approximator layers
            module = nn.ModuleList([build(children[k]) for k in numbered])
        else:  # a Sequential with gaps (``img_mlp.0`` / ``.2``, ``adaLN_modulation.1``) or a plain module
            module = nn.Sequential() if numbered else nn.Module()
            for key, child in children.items():
                module.add_module(key, build(child))
        for key, value in node.items():
            if not isinstance(value, dict):
                module.register_parameter(key, nn.Parameter(torch.zeros(value.shape)))
        return module

    return build(tree)


@pytest.mark.parametrize("kind", ["flux", "flux_chroma"])
def test_quantized_layers_are_mmgps(kind, tmp_path):
    """mmgp's ``_quantize`` (WanGP's --save-quantized) on a BFL-layout model quantizes every Linear of the block
    towers (Chroma's 5-floor approximator too) and nothing else; wangp's file quantizes the same."""
    pytest.importorskip("mmgp")
    from optimum.quanto import QLinear

    from tests.quantize.test_mmgp_interop import offload
    from wangp_cli.quantize.quantizer import quantize_file

    model = tiny.make_transformer(kind)
    source = tiny.write_transformer(kind, model, tmp_path / "flux_bf16.safetensors")
    original = tiny.to_original_layout(kind, model)
    mmgp_model = bfl_module(original).to(torch.bfloat16)
    offload._quantize(mmgp_model, verboseLevel=0)
    theirs = {n for n, m in mmgp_model.named_modules() if isinstance(m, QLinear)}
    quantize_file(source, tmp_path / "flux_quanto_bf16_int8.safetensors", "bf16", family="flux")
    ours = set(read_checkpoint([tmp_path / "flux_quanto_bf16_int8.safetensors"]).quantization_map)
    assert ours == theirs and any(n.endswith(".img_attn.qkv") for n in ours)
    assert any(n.endswith(".linear1") for n in ours)
    assert (kind == "flux_chroma") == any(n.startswith("distilled_guidance_layer.layers.") for n in ours)
    assert not any(n.startswith(("img_in", "txt_in", "final_layer", "time_in")) for n in ours)
