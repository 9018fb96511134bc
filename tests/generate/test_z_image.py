"""Z-Image (``z_image`` Turbo, ``z_image_base``) through wangp on CPU: tiny random models in WanGP's layouts,
16-bit and quanto int8; images equal to the plain diffusers ``ZImagePipeline`` built by hand from the same weights;
the original (ComfyUI) layout with fused qkv and WanGP's other fused names; the quantizer's layer choice against
mmgp's; the refusals."""

from __future__ import annotations

import base64
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
from wangp_cli.families.z_image import SHAPE  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.request import build_request  # noqa: E402
from wangp_cli.generate.runner import Generator  # noqa: E402
from wangp_cli.generate.weights import load_transformer  # noqa: E402

CONFIG = tiny.TRANSFORMER_CONFIGS["z_image"]
SEED = 5


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    """One tiny components folder (Turbo and Base share the component classes)."""
    return tiny.make_components("z_image", tmp_path_factory.mktemp("z-image-components"))


@pytest.fixture(scope="module")
def model():
    return tiny.make_transformer("z_image")


def _home(tmp_path, kind, components, model, quantized=False, **settings):
    return tiny.make_home(tmp_path / f"home-{kind}-{int(quantized)}", kind, quantized=quantized,
                          components=components, model=model, settings=settings or None)


# -- WanGP's key layouts -------------------------------------------------------------------------------------------

def _wangp_keys(config: dict) -> set[str]:
    """The state-dict names of WanGP's ``ZImageTransformer2DModel`` (``models/z_image/z_image_transformer2d.py``),
    written from its modules: ``layers`` / ``noise_refiner`` (modulated) and ``context_refiner`` blocks, the
    embedders, the final layer, the pad tokens."""
    block = ["attention.to_q.weight", "attention.to_k.weight", "attention.to_v.weight", "attention.to_out.0.weight",
             "attention.norm_q.weight", "attention.norm_k.weight", "feed_forward.w1.weight", "feed_forward.w2.weight",
             "feed_forward.w3.weight", "attention_norm1.weight", "ffn_norm1.weight", "attention_norm2.weight",
             "ffn_norm2.weight"]
    modulation = ["adaLN_modulation.0.weight", "adaLN_modulation.0.bias"]
    keys = {"x_pad_token", "cap_pad_token", "t_embedder.mlp.0.weight", "t_embedder.mlp.0.bias",
            "t_embedder.mlp.2.weight", "t_embedder.mlp.2.bias", "cap_embedder.0.weight", "cap_embedder.1.weight",
            "cap_embedder.1.bias", "all_x_embedder.2-1.weight", "all_x_embedder.2-1.bias",
            "all_final_layer.2-1.linear.weight", "all_final_layer.2-1.linear.bias",
            "all_final_layer.2-1.adaLN_modulation.1.weight", "all_final_layer.2-1.adaLN_modulation.1.bias"}
    for tower, count, modulated in (("layers", config["n_layers"], True),
                                    ("noise_refiner", config["n_refiner_layers"], True),
                                    ("context_refiner", config["n_refiner_layers"], False)):
        for index in range(count):
            keys |= {f"{tower}.{index}.{leaf}" for leaf in block + (modulation if modulated else [])}
    return keys


#: The original (Tongyi / ComfyUI) names WanGP's ``conv_state_dict`` and diffusers' converter take, by WanGP's name.
ORIGINAL_NAMES = {"all_x_embedder.2-1.": "x_embedder.", "all_final_layer.2-1.": "final_layer.",
                  ".attention.to_out.0.": ".attention.out.", ".attention.norm_q.": ".attention.q_norm.",
                  ".attention.norm_k.": ".attention.k_norm."}


def _original_layout(state: dict) -> dict:
    """The original layout written by hand: ``model.diffusion_model.`` prefix, ORIGINAL_NAMES, q/k/v fused as
    ``attention.qkv`` (rows q, k, v)."""
    out = {}
    for key, tensor in state.items():
        if ".attention.to_k." in key or ".attention.to_v." in key:
            continue
        if ".attention.to_q." in key:
            base = key.replace(".attention.to_q.", ".attention.{}.")
            tensor = torch.cat([state[base.format(p)] for p in ("to_q", "to_k", "to_v")], dim=0)
            key = base.format("qkv")
        for wangp, original in ORIGINAL_NAMES.items():
            key = key.replace(wangp, original)
        out["model.diffusion_model." + key] = tensor
    return out


def _wangp_fused(state: dict) -> dict:
    """WanGP's other fused names (``_ZIMAGE_FUSED_SPLIT_MAP``): ``attention.to_qkv``, ``feed_forward.net.0.proj``
    (rows w3, w1) and ``feed_forward.net.2`` (w2)."""
    out = {}
    for key, tensor in state.items():
        if ".attention.to_k." in key or ".attention.to_v." in key or ".feed_forward.w1." in key:
            continue
        if ".attention.to_q." in key:
            base = key.replace(".attention.to_q.", ".attention.{}.")
            out[base.format("to_qkv")] = torch.cat([state[base.format(p)] for p in ("to_q", "to_k", "to_v")])
        elif ".feed_forward.w3." in key:
            out[key.replace(".w3.", ".net.0.proj.")] = torch.cat([tensor, state[key.replace(".w3.", ".w1.")]])
        elif ".feed_forward.w2." in key:
            out[key.replace(".w2.", ".net.2.")] = tensor
        else:
            out[key] = tensor
    return out


def _write(tensors: dict, path: Path, config: dict | None = None) -> Path:
    from safetensors.torch import save_file

    metadata = {"config_base64": base64.b64encode(json.dumps(config).encode()).decode()} if config else None
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def test_wangp_files_carry_the_names_of_wangps_model(model):
    original = tiny.to_original_layout("z_image", model)
    assert set(original) == _wangp_keys(CONFIG) == set(model.state_dict())
    assert FAMILIES["z_image"].recognises(dict.fromkeys(original))
    assert FAMILIES["z_image"].recognises(dict.fromkeys(_original_layout(model.state_dict())))
    assert not FAMILIES["z_image"].recognises(dict.fromkeys(["blocks.0.self_attn.q.weight"]))


@pytest.mark.parametrize("layout", ["original", "wangp_fused"])
@pytest.mark.parametrize("quantized", [False, True], ids=["16bit", "int8"])
def test_fused_layouts_load_into_diffusers(layout, quantized, model, tmp_path):
    """A file in the original layout (fused qkv, renamed embedder / final layer / norms, ``model.diffusion_model.``
    prefix; no embedded config: the head count comes from the architecture at its width) or with WanGP's fused
    names loads into the same weights as diffusers' own model; quantized, its fused int8 rows are split."""
    from optimum.quanto import freeze, qint8, quantize

    from wangp_cli.quantize.quantizer import quantize_file

    state = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
    tensors = _original_layout(state) if layout == "original" else _wangp_fused(state)
    assert any(".attention.qkv." in k or ".attention.to_qkv." in k for k in tensors)
    config = None if layout == "original" else tiny.wangp_config("z_image", model)
    path = _write(tensors, tmp_path / "z.safetensors", config)
    shape = {**SHAPE, "dim": CONFIG["dim"], "n_heads": CONFIG["n_heads"], "axes_dims": CONFIG["axes_dims"],
             "axes_lens": CONFIG["axes_lens"]}
    if quantized:
        quantize_file(path, tmp_path / "z_quanto_bf16_int8.safetensors", "bf16")
        path = tmp_path / "z_quanto_bf16_int8.safetensors"
    loaded = load_transformer([path], torch.bfloat16, arch_shape=shape, family="z_image")
    assert loaded.family == "z_image" and loaded.quantized is quantized
    assert {k: loaded.config[k] for k in ("dim", "n_heads", "n_kv_heads", "n_layers", "n_refiner_layers",
                                          "cap_feat_dim", "in_channels")} == \
        {k: CONFIG[k] for k in ("dim", "n_heads", "n_kv_heads", "n_layers", "n_refiner_layers", "cap_feat_dim",
                                "in_channels")}
    reference = tiny.documented_transformer(model, tmp_path / "reference")
    if quantized:
        quantize(reference, weights=qint8, include=["layers.*"])
        freeze(reference)
    inputs = ([torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)],
              torch.tensor([0.3]), [torch.randn(7, CONFIG["cap_feat_dim"]).to(torch.bfloat16)])
    with torch.no_grad():
        ours, theirs = loaded.model(*inputs, return_dict=False)[0][0], reference(*inputs, return_dict=False)[0][0]
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_a_controlnet_file_is_refused(model, tmp_path):
    state = dict(model.state_dict(), **{"control_layers.0.after_proj.weight": torch.zeros(32, 32)})
    path = _write(state, tmp_path / "control.safetensors")
    with pytest.raises(WangpError, match="ControlNet"):
        load_transformer([path], torch.bfloat16, arch_shape=SHAPE, family="z_image")


# -- end to end through the CLI -----------------------------------------------------------------------------------

def test_cli_writes_the_image_with_wangps_metadata(components, model, tmp_path, suffix=".png"):
    from wangp_cli.generate.image import probe_image, read_metadata

    home = _home(tmp_path, "z_image_base", components, model, negative_prompt="blurry")
    out = tmp_path / f"cat{suffix}"
    pipeline_args = [a for k, v in home.pipeline_kwargs.items() for a in ("--pipeline-arg", f"{k}={json.dumps(v)}")]
    result = invoke("generate", "-m", home.model_id, "--prompt", "a red fox", "--seed", 9, "--resolution", "64x48",
                    "-o", out, "--format", "json", *pipeline_args, home=home.root)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert Path(record["path"]) == out and record["media"] == "image" and record["frames"] == 1
    probe = probe_image(out)
    assert (probe["format"], probe["width"], probe["height"]) == ({".png": "PNG", ".webp": "WEBP"}[suffix], 64, 48)
    metadata = read_metadata(out)
    assert metadata["prompt"] == "a red fox" and metadata["seed"] == 9
    assert (metadata["model_type"], metadata["base_model_type"], metadata["image_mode"]) == (
        home.model_id, "z_image_base", 1)
    assert metadata["image_quality"] == "png"
    assert (metadata["guidance_scale"], metadata["negative_prompt"], metadata["flow_shift"]) == (4, "blurry", 6.0)


# -- images equal to diffusers by hand ---------------------------------------------------------------------------

def _reference(home, request, quantized: bool):
    """``ZImagePipeline.from_pretrained(components, transformer=...)``, the diffusers docs' recipe, on the weights the
    file was written from; Base with its ``flow_shift`` and guidance 4 with the negative prompt."""
    import diffusers
    from optimum.quanto import freeze, qint8, quantize

    transformer = tiny.documented_transformer(home.model, home.root / "reference")
    if quantized:
        quantize(transformer, weights=qint8, include=["layers.*"])
        freeze(transformer)
    with tiny.offline():
        pipe = diffusers.ZImagePipeline.from_pretrained(home.components, transformer=transformer,
                                                        torch_dtype=torch.bfloat16)
    pipe.set_progress_bar_config(disable=True)
    call = {"guidance_scale": 0.0}
    if home.kind == "z_image_base":
        pipe.scheduler = diffusers.FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config, shift=6.0)
        call = {"guidance_scale": 4.0, "negative_prompt": "blurry"}
    with torch.inference_mode():
        output = pipe(prompt=request.settings["prompt"], height=64, width=64, num_inference_steps=request.steps,
                      generator=torch.Generator("cpu").manual_seed(request.seed), output_type="np", **call,
                      **home.pipeline_kwargs)
    return output.images


#: Turbo 16-bit and int8, Base (guidance, negative prompt, flow_shift) 16-bit: the int8 path is the same for both.
IMAGE_CASES = [("z_image", False), ("z_image", True), ("z_image_base", False)]


@pytest.mark.parametrize("kind,quantized", IMAGE_CASES,
                         ids=[f"{k}-{'int8' if q else '16bit'}" for k, q in IMAGE_CASES])
def test_image_equals_the_plain_diffusers_pipeline(kind, quantized, components, model, tmp_path):
    home = _home(tmp_path, kind, components, model, quantized, negative_prompt="blurry")
    catalog = Catalog(Home(home.root))
    request = build_request(catalog, home.model_id, {"seed": SEED}, preference=home.preference,
                            pipeline_kwargs=home.pipeline_kwargs)
    generator = Generator(catalog)
    frames = generator.render(request).result.frames
    expected = _reference(home, request, quantized)
    assert frames.shape == expected.shape == (1, 64, 64, 3)
    assert np.isfinite(frames).all() and frames.std() > 0.01
    np.testing.assert_array_equal(frames, expected)
    pipe = generator._pipe
    assert any(type(m).__name__ == "QLinear" for m in pipe.transformer.modules()) is quantized
    assert pipe.scheduler.config.shift == (6.0 if kind == "z_image_base" else 3.0)


def test_fp16_is_never_the_compute_dtype_on_a_gpu():
    from wangp_cli.generate.numerics import compute_dtype

    assert compute_dtype("fp16", "z_image", (8, 9), asked=True)[0] == "bf16"  # NaN in fp16 (Tongyi-MAI/Z-Image#14)
    with pytest.raises(WangpError, match="Z-Image"):
        compute_dtype("fp16", "z_image", (7, 5), asked=True)


def test_guidance_follows_wangp():
    from wangp_cli.families.z_image.pipeline import guidance

    assert guidance("z_image", {"guidance_scale": 5}) == 0.0  # Turbo: WanGP forces 0 (guidance_max_phases 0)
    assert guidance("z_image_base", {}) == 4.0  # WanGP's default for Base
    assert guidance("z_image_base", {"guidance_scale": 1}) == 0.0  # WanGP guides above 1 only
    assert guidance("z_image_base", {"guidance_scale": 7.5}) == 7.5


# -- LoRAs ----------------------------------------------------------------------------------------------------------

def _lora(model, path: Path, rank: int = 4, alpha: float = 2.0) -> dict:
    """A LoRA in the original layout (``diffusion_model.``, fused ``attention.qkv``, ``attention.out``, ``.alpha``)
    on every main layer, plus a full ``.diff`` on one norm; returns diffusers module -> the delta it adds (m = 1)."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(3)
    dim = CONFIG["dim"]
    tensors, deltas = {}, {}
    for index in range(CONFIG["n_layers"]):
        for original, outputs, targets in (("attention.qkv", 3 * dim, ("to_q", "to_k", "to_v")),
                                           ("attention.out", dim, ("to_out.0",))):
            down = (torch.randn(rank, dim, generator=generator) * 0.3).to(torch.bfloat16)
            up = (torch.randn(outputs, rank, generator=generator) * 0.3).to(torch.bfloat16)
            key = f"diffusion_model.layers.{index}.{original}"
            tensors.update({f"{key}.lora_down.weight": down, f"{key}.lora_up.weight": up,
                            f"{key}.alpha": torch.tensor(alpha)})
            for target, rows in zip(targets, (up.float() @ down.float() * alpha / rank).chunk(len(targets))):
                deltas[f"layers.{index}.attention.{target}.weight"] = rows
    norm = (torch.randn(dim, generator=generator) * 0.2).to(torch.bfloat16)
    tensors["diffusion_model.layers.1.attention_norm1.diff"] = norm
    deltas["layers.1.attention_norm1.weight"] = norm.float()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return deltas


def test_a_lora_in_the_original_layout_applies_as_merged_by_hand(components, model, tmp_path):
    """``--lora`` of a file in ``loras/z_image`` (fused qkv pairs, alpha, a norm delta): the image is the one of
    the weights merged by hand, within bf16 noise, and far from the image without it."""
    import copy

    home = _home(tmp_path, "z_image", components, model)
    path = home.root / "loras" / "z_image" / "style.safetensors"
    deltas = _lora(model, path)
    catalog = Catalog(Home(home.root))
    request = build_request(catalog, home.model_id, {"seed": SEED}, preference=home.preference,
                            pipeline_kwargs=home.pipeline_kwargs, loras=[str(path)])
    assert request.settings["activated_loras"] == ["style.safetensors"]
    frames = Generator(catalog).render(request).result.frames
    merged = copy.deepcopy(model)
    with torch.no_grad():
        for name, delta in deltas.items():
            merged.get_parameter(name).add_(delta)
    plain = _reference(home, request, False)
    home.model = merged
    expected = _reference(home, request, False)
    effect, error = float(np.abs(plain - expected).mean()), float(np.abs(frames - expected).mean())
    assert effect > 0.02 and error < 0.2 * effect, (effect, error)


def test_lora_formats_give_the_same_adapter():
    """The same pairs as WanGP / diffusers names with ``.alpha``, kohya names, PEFT names (alpha folded by hand) and
    the original layout's fused qkv: the same ``B @ A`` per diffusers module."""
    from wangp_cli.families.z_image.lora import to_diffusers

    generator = torch.Generator().manual_seed(1)
    pairs = {f"layers.{i}.attention.{t}": (torch.randn(2, 32, generator=generator),
                                           torch.randn(32, 2, generator=generator))
             for i in range(2) for t in ("to_q", "to_k", "to_v", "to_out.0")}
    wangp = {f"diffusion_model.{m}.{leaf}": v for m, (d, u) in pairs.items()
             for leaf, v in (("lora_down.weight", d), ("lora_up.weight", u), ("alpha", torch.tensor(4.0)))}
    kohya = {f"lora_unet_{m.replace('.', '_')}.{leaf}": v for m, (d, u) in pairs.items()
             for leaf, v in (("lora_down.weight", d), ("lora_up.weight", u), ("alpha", torch.tensor(4.0)))}
    peft = {f"transformer.{m}.{leaf}": v for m, (d, u) in pairs.items()
            for leaf, v in (("lora_A.weight", d), ("lora_B.weight", u * 2.0))}
    fused = {}
    for i in range(2):
        qkv = [pairs[f"layers.{i}.attention.to_{x}"] for x in "qkv"]
        down = qkv[0][0]
        fused[f"diffusion_model.layers.{i}.attention.qkv.lora_down.weight"] = down
        # one shared down matrix: the reference products are up_x @ down for every part
        fused[f"diffusion_model.layers.{i}.attention.qkv.lora_up.weight"] = torch.cat([u for _, u in qkv])
        fused[f"diffusion_model.layers.{i}.attention.qkv.alpha"] = torch.tensor(4.0)
        out_down, out_up = pairs[f"layers.{i}.attention.to_out.0"]
        fused.update({f"diffusion_model.layers.{i}.attention.out.lora_down.weight": out_down,
                      f"diffusion_model.layers.{i}.attention.out.lora_up.weight": out_up,
                      f"diffusion_model.layers.{i}.attention.out.alpha": torch.tensor(4.0)})

    def products(state):
        adapter = to_diffusers(state).adapter
        return {k[len("transformer."):-len(".lora_A.weight")]: adapter[k.replace("lora_A", "lora_B")].float()
                @ adapter[k].float() for k in adapter if k.endswith(".lora_A.weight")}

    expected = {m: 2.0 * u @ d for m, (d, u) in pairs.items()}
    for state in (wangp, kohya, peft):
        got = products(state)
        assert set(got) == set(expected)
        for module, value in expected.items():
            torch.testing.assert_close(got[module], value, rtol=1e-5, atol=1e-5)
    got = products(fused)
    for i in range(2):
        for x in "qkv":
            module = f"layers.{i}.attention.to_{x}"
            torch.testing.assert_close(got[module], 2.0 * pairs[module][1] @ pairs[f"layers.{i}.attention.to_q"][0])


# -- quantize: the layers WanGP's mmgp quantizes -------------------------------------------------------------------

def test_quantized_layers_are_mmgps(tmp_path):
    """mmgp's ``_quantize`` (WanGP's ``save_quantized``) on a Z-Image transformer, whose module names are WanGP's,
    sized so that the towers dominate as in the real 6B model (mmgp falls back to quantizing everything when more
    than 20% would be left out): it quantizes the Linears of ``layers`` and nothing else, as wangp's quantizer."""
    pytest.importorskip("mmgp")
    import diffusers

    from tests.quantize.test_mmgp_interop import offload  # imported as that test imports it (patches undone)
    from wangp_cli.quantize.quantizer import quantized_modules
    from wangp_cli.quantize.safetensors_io import read_header

    torch.manual_seed(0)
    # excluded (refiners, embedders, final layer) ~17% of the weights; the real model: ~12%
    config = {**CONFIG, "dim": 128, "n_heads": 2, "n_kv_heads": 2, "n_layers": 16, "axes_dims": [16, 24, 24]}
    transformer = diffusers.ZImageTransformer2DModel(**config).to(torch.bfloat16)
    path = _write(transformer.state_dict(), tmp_path / "z.safetensors")
    ours = quantized_modules(read_header(path)[1], "z_image")
    assert ours and all(name.startswith("layers.") for name in ours)
    offload._quantize(transformer, verboseLevel=0)
    from optimum.quanto import QModuleMixin

    theirs = [name for name, module in transformer.named_modules() if isinstance(module, QModuleMixin)]
    assert sorted(ours) == sorted(theirs)
    assert FAMILIES["z_image"].quantize_checked


def test_wangp_quantize_takes_z_image_definitions(components, model, tmp_path):
    from wangp_cli.quantize.safetensors_io import decode_metadata, read_header

    home = _home(tmp_path, "z_image", components, model)
    result = invoke("quantize", home.model_id, "--dtype", "bf16", home=home.root)
    assert result.exit_code == 0, result.output
    out = home.root / "ckpts" / "tiny_z_image_quanto_bf16_int8.safetensors"
    qmap = decode_metadata(read_header(out)[2], out)["quantization_map"]
    assert len(qmap) == 8 * CONFIG["n_layers"] and all(name.startswith("layers.") for name in qmap)


# -- refusals ------------------------------------------------------------------------------------------------------

def _definition(root: Path, model_id: str, architecture: str, **settings) -> Catalog:
    write_json(root / "finetunes" / f"{model_id}.json",
               {"model": {"name": model_id, "architecture": architecture, "URLs": ["ckpts/none.safetensors"]},
                "prompt": "a cat", "resolution": "64x64", **settings})
    return Catalog(Home(root))


@pytest.mark.parametrize("settings,message", [
    ({"NAG_scale": 2}, "NAG_scale 2"), ({"sample_solver": "unified"}, "sample_solver 'unified'"),
    ({"batch_size": 2}, "batch_size 2")])
def test_settings_diffusers_cannot_follow_are_refused(settings, message, tmp_path):
    catalog = _definition(tmp_path, "zi", "z_image", **settings)
    with pytest.raises(WangpError, match=message):
        build_request(catalog, "zi")


def test_controlnet_types_are_refused_with_the_reason(tmp_path):
    catalog = _definition(tmp_path, "zc", "z_image_control2_1")
    with pytest.raises(WangpError, match="ZImageControlNetPipeline"):
        build_request(catalog, "zc")
    assert "ZImageControlNetModel" in FAMILIES["z_image"].refused["z_image_control2_1"]


def test_components_repos():
    from wangp_cli.core.registry import get_architecture

    for arch_id, repo in (("z_image", "Tongyi-MAI/Z-Image-Turbo"), ("z_image_base", "Tongyi-MAI/Z-Image")):
        arch = get_architecture(arch_id, "v12")
        assert (arch.diffusers_repo, arch.components) == (repo, ("text_encoder", "tokenizer", "vae", "scheduler"))
        assert arch.output == "image" and arch.pipeline == "ZImagePipeline"
