"""Numerics: wangp's loader gives every parameter and buffer the dtype and value that diffusers' own
``from_pretrained(torch_dtype=...)`` gives the same weights (``_keep_in_fp32_modules`` in fp32, a file's fp32
values kept), 16-bit and quanto int8 (reference: quanto's own quantize + freeze); the compute dtype per GPU."""

from __future__ import annotations

import base64
import copy
import json
import re

import pytest

from wangp_cli.core.errors import WangpError
from wangp_cli.generate.numerics import CHOICES, compute_dtype, keeps_fp32

#: The tiny kinds whose loading is compared (one per transformer class and conditioning).
KINDS = ("t2v", "i2v", "vace", "ti2v_2_2", "t2v_2_2", "hunyuan")
#: The tensors WanGP's files store in fp32 (``lock_layers_dtypes``), in diffusers names: Wan's patch_embedding,
#: head.head (proj_out) and head.modulation (the top-level scale_shift_table); HunyuanVideo's final layer.
STORED_FP32 = {"wan": r"^(patch_embedding\.|proj_out\.|scale_shift_table$)", "hunyuan": r"^(proj_out|norm_out)\."}
#: quanto ``include`` / ``exclude`` of the repeated blocks (what wangp's quantizer quantizes in the tiny models).
TOWERS = {"wan": (["blocks.*", "vace_blocks.*"], ["vace_blocks.*.proj_in", "vace_blocks.*.proj_out"]),
          "hunyuan": (["transformer_blocks.*", "single_transformer_blocks.*"], None)}


def _family(kind: str) -> str:
    from wangp_cli.generate import tiny

    return "hunyuan" if kind in tiny.HUNYUAN_KINDS else "wan"


def _stored(kind: str, model):
    """``model`` with the dtypes of a WanGP file: bf16, but the family's fp32 layers (their fp32 values)."""
    import torch

    stored = copy.deepcopy(model)
    fp32 = re.compile(STORED_FP32[_family(kind)])
    with torch.no_grad():
        for name, param in stored.named_parameters():
            if not fp32.match(name):
                param.data = param.data.to(torch.bfloat16)
    return stored


def test_the_stored_fp32_layers_are_the_quantizers():
    pytest.importorskip("diffusers")
    from wangp_cli.families.wan.layout import original_key
    from wangp_cli.generate import tiny
    from wangp_cli.quantize.quantizer import FP32_LOCKED

    names = tiny.make_transformer("t2v").state_dict()
    assert ({n for n in names if re.match(STORED_FP32["wan"], n)}
            == {n for n in names if FP32_LOCKED.match(original_key(n))})


def _write_wangp(kind: str, model, stored, path):
    """``stored`` in WanGP's original layout, each tensor in its own dtype, with WanGP's config."""
    from safetensors.torch import save_file

    from wangp_cli.generate import tiny

    config = base64.b64encode(json.dumps(tiny.wangp_config(kind, model)).encode()).decode()
    save_file(tiny.to_original_layout(kind, stored), str(path), metadata={"config_base64": config})
    return path


def _diffusers_loaded(stored, folder, dtype):
    """diffusers' documented recipe: the weights saved in its own format, ``from_pretrained(torch_dtype=...)``."""
    from wangp_cli.generate import tiny

    stored.save_pretrained(folder)
    with tiny.offline():
        return type(stored).from_pretrained(folder, torch_dtype=dtype)


def _arch_shape(kind: str) -> dict:
    from wangp_cli.core.registry import get_architecture
    from wangp_cli.generate import tiny

    return get_architecture(tiny.ARCHITECTURES[kind]).transformer


def _assert_same_tensors(ours, reference) -> None:
    """Every state-dict tensor: same dtype and value; every other buffer (Wan's rope tables): same dtype, same
    values over the reference's length (wangp's config keeps the default table length)."""
    import torch

    mine, theirs = ours.state_dict(), reference.state_dict()
    assert set(mine) == set(theirs)
    for name, tensor in theirs.items():
        assert mine[name].dtype == tensor.dtype, f"{name}: {mine[name].dtype}, diffusers {tensor.dtype}"
        assert torch.equal(mine[name], tensor), name
    extra = {n: b for n, b in reference.named_buffers() if n not in theirs}
    mine_extra = {n: b for n, b in ours.named_buffers() if n not in mine}
    assert set(extra) == set(mine_extra)
    for name, buffer in extra.items():
        assert mine_extra[name].dtype == buffer.dtype
        assert torch.equal(mine_extra[name][: buffer.shape[0]], buffer), name


@pytest.fixture(scope="module")
def models():
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from wangp_cli.generate import tiny

    built = {}

    def get(kind):
        if kind not in built:
            built[kind] = tiny.make_transformer(kind)
        return built[kind]

    return get


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("kind", KINDS)
def test_16bit_loading_equals_from_pretrained(kind, dtype, models, tmp_path):
    import torch

    from wangp_cli.generate.engine import torch_dtype
    from wangp_cli.generate.weights import load_transformer

    model = models(kind)
    stored = _stored(kind, model)
    path = _write_wangp(kind, model, stored, tmp_path / "wangp.safetensors")
    ours = load_transformer([path], torch_dtype(dtype), arch_shape=_arch_shape(kind)).model
    reference = _diffusers_loaded(stored, tmp_path / "diffusers", torch_dtype(dtype))
    _assert_same_tensors(ours, reference)
    kept = type(reference)._keep_in_fp32_modules
    fp32 = {n for n, t in reference.state_dict().items() if t.dtype == torch.float32}
    assert fp32 == {n for n, t in reference.state_dict().items() if keeps_fp32(n, kept) and t.is_floating_point()}
    if _family(kind) == "wan":
        assert {"scale_shift_table", "condition_embedder.time_embedder.linear_1.weight",
                "blocks.0.norm2.weight"} <= fp32
        assert ours.rope.freqs_cos.dtype == torch.float32
        # the file's fp32 values of a kept tensor are kept, not rounded through the compute dtype first
        table = ours.scale_shift_table
        assert not torch.equal(table, table.to(torch_dtype(dtype)).float())
        assert torch.equal(table, model.scale_shift_table)
        # WanGP's other fp32 layers (patch_embedding, head.head = proj_out) take the compute dtype, as diffusers
        assert ours.patch_embedding.weight.dtype == ours.proj_out.weight.dtype == torch_dtype(dtype)
    else:
        assert not fp32  # HunyuanVideoTransformer3DModel keeps nothing in fp32


@pytest.mark.parametrize("source", ["file", "auto"], ids=["quanto_file", "auto_quantize"])
@pytest.mark.parametrize("kind", ("t2v", "i2v", "vace", "hunyuan"))
def test_quanto_int8_loading_equals_quanto_on_from_pretrained(kind, source, models, tmp_path):
    """A quanto int8 file made by wangp's quantizer (requantize), or a 16-bit file quantized at load
    (``auto_quantize``): quanto's own quantize + freeze of diffusers' loading, tensor for tensor."""
    import torch
    from optimum.quanto import freeze, qint8, quantize

    from wangp_cli.families import FAMILIES
    from wangp_cli.generate.weights import load_transformer
    from wangp_cli.quantize.quantizer import quantize_file

    model = models(kind)
    stored = _stored(kind, model)
    path = _write_wangp(kind, model, stored, tmp_path / "wangp.safetensors")
    if source == "file":
        quantize_file(path, tmp_path / "quanto.safetensors", "bf16")
        path = tmp_path / "quanto.safetensors"
        include, exclude = TOWERS[_family(kind)]
    else:
        include, exclude = list(FAMILIES[_family(kind)].quantized_blocks), None
    ours = load_transformer([path], torch.bfloat16, arch_shape=_arch_shape(kind), quantize=source == "auto").model
    reference = _diffusers_loaded(stored, tmp_path / "diffusers", torch.bfloat16)
    quantize(reference, weights=qint8, include=include, exclude=exclude)
    freeze(reference)
    quantized = {n for n, m in reference.named_modules() if type(m).__name__ == "QLinear"}
    assert quantized and quantized == {n for n, m in ours.named_modules() if type(m).__name__ == "QLinear"}
    _assert_same_tensors(ours, reference)
    if _family(kind) == "wan":
        assert ours.scale_shift_table.dtype == ours.blocks[0].norm2.weight.dtype == torch.float32


# -- the compute dtype ---------------------------------------------------------------------------------------------

AMPERE, TURING = (8, 6), (7, 5)


@pytest.mark.parametrize("requested,family,capability,asked,expected,warns", [
    ("bf16", "wan", None, False, "bf16", 0),  # the CPU: unchanged
    ("fp16", "hunyuan", None, True, "fp16", 0),  # fp16 on the CPU is fine
    ("fp32", "hunyuan", TURING, True, "fp32", 0),
    ("bf16", "wan", AMPERE, False, "bf16", 0),
    ("bf16", "wan", (8, 0), False, "bf16", 0),  # sm 8.0 is native
    ("fp16", "wan", AMPERE, True, "fp16", 0),
    ("fp16", "hunyuan", AMPERE, False, "bf16", 1),  # NaN in fp16 upstream: bf16, native here
    ("fp16", "hunyuan", AMPERE, True, "bf16", 1),
    ("bf16", "wan", TURING, False, "fp16", 1),  # as WanGP below sm 8.0
    ("bf16", "wan", (7, 0), True, "bf16", 1),  # asked: kept, emulated
    ("fp16", "wan", TURING, False, "fp16", 0),
    ("bf16", "hunyuan", TURING, False, "bf16", 1),  # no fp16 for HunyuanVideo: bf16 emulated
    ("fp16", "hunyuan", TURING, False, "bf16", 2),  # an fp16-only file: bf16 emulated
])
def test_compute_dtype(requested, family, capability, asked, expected, warns):
    chosen, warnings = compute_dtype(requested, family, capability, asked=asked)
    assert chosen == expected and len(warnings) == warns
    if chosen != requested:
        assert any(expected in w for w in warnings)
    if family == "hunyuan" and requested == "fp16" and capability:
        assert any("NaN" in w and "HunyuanVideo#60" in w for w in warnings)


def test_fp16_hunyuan_asked_on_an_old_gpu_is_refused():
    with pytest.raises(WangpError) as caught:
        compute_dtype("fp16", "hunyuan", TURING, asked=True)
    assert caught.value.code == "unsupported" and "NaN" in str(caught.value) and "--dtype bf16" in caught.value.hint


def test_every_choice_is_a_dtype_or_a_refusal():
    for (requested, native, safe), outcomes in CHOICES.items():
        assert all(o in ("bf16", "fp16", None) for o in outcomes)
        assert native or "bf16" not in outcomes or outcomes[0] != "fp16" or safe  # unsafe families: never fp16
        assert outcomes[0] is not None  # only an explicit request is refused


def test_keeps_fp32_matches_whole_name_parts():
    modules = ["rope", "time_embedder", "scale_shift_table", "norm1", "norm2", "norm3"]
    assert keeps_fp32("condition_embedder.time_embedder.linear_1.weight", modules)
    assert keeps_fp32("blocks.3.norm2.bias", modules) and keeps_fp32("scale_shift_table", modules)
    assert not keeps_fp32("blocks.3.attn1.norm_q.weight", modules)  # "norm_q" is not "norm1"
    assert not keeps_fp32("condition_embedder.time_proj.weight", modules)
    assert not keeps_fp32("proj_out.weight", None)
