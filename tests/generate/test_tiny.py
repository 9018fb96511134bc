"""The tiny offline models of ``wangp_cli.generate.tiny``: layouts, component folders, reference runs, files."""

from __future__ import annotations

import base64
import json
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("optimum.quanto")

from safetensors import safe_open
from safetensors.torch import load_file

from wangp_cli.generate import tiny

PROMPT = "a cat dancing in the forest"


def _metadata(path) -> dict:
    with safe_open(str(path), "pt") as handle:
        return handle.metadata() or {}


def _tensors(path) -> dict:
    return load_file(str(path))


def _decode(metadata: dict, key: str) -> dict:
    return json.loads(base64.b64decode(metadata[key]))


@pytest.fixture(scope="module")
def transformers_():
    return {kind: tiny.make_transformer(kind) for kind in tiny.CORE_KINDS}


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    root = tmp_path_factory.mktemp("components")
    return {kind: tiny.make_components(kind, root / kind) for kind in tiny.CORE_KINDS}


@pytest.mark.parametrize("kind", tiny.CORE_KINDS)
def test_round_trip_through_diffusers_converter(kind, transformers_):
    model = transformers_[kind]
    original = tiny.assert_round_trip(kind, model)
    assert set(original).isdisjoint(model.state_dict()) or kind in tiny.WAN_KINDS  # Hunyuan renames every key
    for name, param in model.named_parameters():  # every parameter random: no constant tensor left
        assert param.numel() == 1 or torch.unique(param).numel() > 1, name


def test_original_key_names(transformers_):
    t2v = tiny.to_original_layout("t2v", transformers_["t2v"])
    for key in ("patch_embedding.weight", "text_embedding.0.weight", "text_embedding.2.bias", "time_embedding.0.weight",
                "time_projection.1.weight", "blocks.4.self_attn.q.weight", "blocks.0.self_attn.norm_k.weight",
                "blocks.0.cross_attn.o.bias", "blocks.0.norm3.weight", "blocks.0.ffn.0.weight", "blocks.0.ffn.2.bias",
                "blocks.0.modulation", "head.head.weight", "head.modulation"):
        assert key in t2v, key
    assert not any(".norm2." in key for key in t2v)  # the affine norm is norm3 in the original layout
    i2v = tiny.to_original_layout("i2v", transformers_["i2v"])
    for key in ("blocks.0.cross_attn.k_img.weight", "blocks.0.cross_attn.v_img.bias",
                "blocks.0.cross_attn.norm_k_img.weight", "img_emb.proj.0.weight", "img_emb.proj.4.bias"):
        assert key in i2v, key
    vace = tiny.to_original_layout("vace", transformers_["vace"])
    for key in ("vace_patch_embedding.weight", "vace_blocks.0.before_proj.weight", "vace_blocks.4.after_proj.bias",
                "vace_blocks.4.self_attn.q.weight", "blocks.9.modulation"):
        assert key in vace, key
    assert "vace_blocks.1.before_proj.weight" not in vace  # only the first VACE block has before_proj
    model = transformers_["hunyuan"]
    hidden, mlp = 32, 128
    hunyuan = tiny.to_original_layout("hunyuan", model)
    assert hunyuan["double_blocks.0.img_attn_qkv.weight"].shape == (3 * hidden, hidden)
    assert hunyuan["single_blocks.4.linear1.weight"].shape == (3 * hidden + mlp, hidden)
    assert hunyuan["txt_in.individual_token_refiner.blocks.0.self_attn_qkv.weight"].shape == (3 * hidden, hidden)
    state = model.state_dict()
    q = state["single_transformer_blocks.4.attn.to_q.weight"]
    assert torch.equal(hunyuan["single_blocks.4.linear1.weight"][:hidden], q)
    scale, shift = state["norm_out.linear.weight"].chunk(2)
    assert torch.equal(hunyuan["final_layer.adaLN_modulation.1.weight"], torch.cat([shift, scale]))


def test_configs_follow_the_rules():
    vace = tiny.TRANSFORMER_CONFIGS["vace"]
    layers, blocks = vace["num_layers"], len(vace["vace_layers"])
    assert list(range(0, layers, layers // blocks)) == vace["vace_layers"]
    for kind in tiny.CORE_KINDS:
        config = tiny.TRANSFORMER_CONFIGS[kind]
        assert config["attention_head_dim"] == 16 and config["num_layers"] >= 5
    assert tiny.TRANSFORMER_CONFIGS["hunyuan_i2v"]["image_condition_type"] == "token_replace"


@pytest.mark.parametrize("kind", tiny.CORE_KINDS)
def test_components_folder_has_no_transformer(kind, components):
    folder = components[kind]
    assert not (folder / "transformer").exists()
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == tiny.PIPELINES[kind]
    assert index["transformer"] == ["diffusers", tiny.TRANSFORMERS[kind]]
    expected = {"scheduler", "text_encoder", "tokenizer", "vae"}
    expected |= {"text_encoder_2", "tokenizer_2"} if kind in tiny.HUNYUAN_KINDS else set()
    expected |= {"image_encoder"} if kind in ("i2v", "flf2v") else set()
    expected |= {"image_processor"} if kind in tiny.IMAGE_KINDS else set()
    assert expected <= {path.name for path in folder.iterdir() if path.is_dir()}


@pytest.mark.parametrize("kind", tiny.CORE_KINDS)
def test_reference_pipeline_runs(kind, components, transformers_):
    pipe = tiny.reference_pipeline(kind, components[kind], transformers_[kind])
    kwargs = tiny.call_kwargs(kind)
    if kind in tiny.IMAGE_KINDS:
        kwargs["image"] = tiny.make_image(64)
    if kind == "flf2v":
        kwargs["last_image"] = tiny.make_image(64, seed=1)
    frames = pipe(prompt=PROMPT, generator=torch.Generator().manual_seed(0), output_type="np", **kwargs).frames
    assert frames.shape == (1, kwargs["num_frames"], kwargs["height"], kwargs["width"], 3)
    assert frames.dtype.kind == "f" and bool((frames >= 0).all() and (frames <= 1).all())
    assert float(frames.std()) > 0


@pytest.mark.parametrize("kind", tiny.CORE_KINDS)
def test_write_transformer(kind, transformers_, tmp_path):
    model = transformers_[kind]
    module = tmp_path / "module.safetensors" if kind == "vace" else None
    path = tiny.write_transformer(kind, model, tmp_path / "model_bf16.safetensors", vace_module_path=module)
    original = tiny.to_original_layout(kind, model)
    tensors = _tensors(path)
    if kind == "vace":
        module_tensors = _tensors(module)
        assert set(module_tensors) == {k for k in original if k.startswith(("vace_blocks.", "vace_patch_embedding."))}
        assert not any(k.startswith("vace") for k in tensors)
        tensors.update(module_tensors)
    assert set(tensors) == set(original)
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())
    assert all(torch.equal(tensors[k], original[k].to(torch.bfloat16)) for k in original)
    config = _decode(_metadata(path), "config_base64")
    assert config == tiny.wangp_config(kind, model)
    assert config.get("num_heads", config.get("heads_num")) == 2


def test_write_transformer_fp16_and_single_file_vace(transformers_, tmp_path):
    path = tiny.write_transformer("t2v", transformers_["t2v"], tmp_path / "fp16.safetensors", dtype="fp16")
    assert {t.dtype for t in _tensors(path).values()} == {torch.float16}
    vace = tiny.write_transformer("vace", transformers_["vace"], tmp_path / "vace.safetensors")
    assert set(_tensors(vace)) == set(tiny.to_original_layout("vace", transformers_["vace"]))


@pytest.mark.parametrize("kind", tiny.CORE_KINDS)
def test_write_quantized(kind, transformers_, tmp_path):
    model = transformers_[kind]
    module = tmp_path / "module_quanto_bf16_int8.safetensors" if kind == "vace" else None
    path = tiny.write_quantized(kind, model, tmp_path / "model_quanto_bf16_int8.safetensors", vace_module_path=module)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in (path, module) if p)  # no temp left
    metadata = _metadata(path)
    qmap = _decode(metadata, "quantization_map_base64")
    assert _decode(metadata, "config_base64") == tiny.wangp_config(kind, model)
    towers = ("blocks.",) if kind in tiny.WAN_KINDS else ("double_blocks.", "single_blocks.")
    assert qmap and all(name.startswith(towers) for name in qmap)
    assert {name.split(".")[0] for name in qmap} == {t.rstrip(".") for t in towers}
    tensors = _tensors(path)
    first = next(iter(qmap))
    assert tensors[f"{first}.weight._data"].dtype == torch.int8
    if kind == "vace":
        module_qmap = _decode(_metadata(module), "quantization_map_base64")
        assert module_qmap and all(name.startswith("vace_blocks.") for name in module_qmap)
        assert not any("before_proj" in name or "after_proj" in name for name in module_qmap)


def test_offline_restores_environment(monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    flag = hub_constants.HF_HUB_OFFLINE
    with tiny.offline():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and hub_constants.HF_HUB_OFFLINE is True
    assert "HF_HUB_OFFLINE" not in os.environ and os.environ["TRANSFORMERS_OFFLINE"] == "0"
    assert hub_constants.HF_HUB_OFFLINE == flag
