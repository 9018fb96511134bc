"""The streaming quantizer against optimum-quanto itself, on tiny Wan- and Hunyuan-shaped models."""

from __future__ import annotations

import base64
import json
import struct

import pytest

torch = pytest.importorskip("torch")
quanto = pytest.importorskip("optimum.quanto")
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from torch import nn  # noqa: E402

from wangp_cli.core.errors import WangpError  # noqa: E402
from wangp_cli.quantize.quantizer import quantize_file, quantize_tensor  # noqa: E402

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class WanBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.modulation = nn.Parameter(torch.randn(1, 6, dim))
        self.self_attn = nn.Module()
        self.cross_attn = nn.Module()
        for attn in (self.self_attn, self.cross_attn):
            for name in ("q", "k", "v", "o"):
                setattr(attn, name, nn.Linear(dim, dim))
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=True)
        self.ffn = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))


class TinyWan(nn.Module):
    """Module names of WanGP's WanModel (original layout), at toy size."""

    def __init__(self, dim=64, layers=6, vace=False):
        super().__init__()
        self.patch_embedding = nn.Conv3d(16, dim, (1, 2, 2), (1, 2, 2))
        self.text_embedding = nn.Sequential(nn.Linear(32, dim), nn.GELU(), nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(16, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 6))
        self.blocks = nn.ModuleList([WanBlock(dim) for _ in range(layers)])
        if vace:
            self.vace_blocks = nn.ModuleList([WanBlock(dim) for _ in range(5)])
            for block in self.vace_blocks:
                block.before_proj = nn.Linear(dim, dim)
                block.after_proj = nn.Linear(dim, dim)
        self.head = nn.Module()
        self.head.head = nn.Linear(dim, 64)
        self.head.modulation = nn.Parameter(torch.randn(1, 2, dim))

    def forward(self, x):
        for block in self.blocks:
            x = x + block.ffn(block.self_attn.o(block.self_attn.q(x)))
        return x  # through the quantized blocks (WanGP runs the fp32 head separately)


class TinyHunyuan(nn.Module):
    """double_blocks / single_blocks with fused qkv and linear1/linear2, as in HunyuanVideo's original keys."""

    def __init__(self, dim=64):
        super().__init__()
        self.img_in = nn.Module()
        self.img_in.proj = nn.Conv3d(16, dim, (1, 2, 2), (1, 2, 2))
        self.txt_in = nn.Linear(32, dim)
        self.double_blocks = nn.ModuleList()
        for _ in range(5):
            block = nn.Module()
            block.img_attn_qkv = nn.Linear(dim, 3 * dim)
            block.img_attn_proj = nn.Linear(dim, dim)
            block.img_mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
            self.double_blocks.append(block)
        self.single_blocks = nn.ModuleList()
        for _ in range(6):
            block = nn.Module()
            block.linear1 = nn.Linear(dim, 7 * dim)
            block.linear2 = nn.Linear(5 * dim, dim)
            self.single_blocks.append(block)
        self.final_layer = nn.Module()
        self.final_layer.linear = nn.Linear(dim, 64)


def write_source(model, path, dtype=torch.bfloat16):
    save_file({k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}, str(path))
    return load_file(str(path))


def quanto_reference(model_class, source_state, dtype, include):
    reference = model_class()
    reference.load_state_dict({k: v.float() for k, v in source_state.items()})
    reference.to(dtype)
    quanto.quantize(reference, weights=quanto.qint8, include=include)
    quanto.freeze(reference)
    return reference


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("model_class, include", [
    (TinyWan, "blocks.*"),
    (lambda: TinyWan(vace=True), ["blocks.*", "vace_blocks.*"]),
    (TinyHunyuan, ["double_blocks.*", "single_blocks.*"]),
])
def test_streamed_file_equals_quanto_quantize_and_freeze(tmp_path, dtype, model_class, include):
    torch.manual_seed(0)
    source_state = write_source(model_class(), tmp_path / "model_bf16.safetensors")
    quantize_file(tmp_path / "model_bf16.safetensors", tmp_path / "out.safetensors", dtype)
    written = load_file(str(tmp_path / "out.safetensors"))
    reference = quanto_reference(model_class, source_state, DTYPES[dtype], include)
    expected = reference.state_dict()
    quantized = [k[: -len(".weight._data")] for k in expected if k.endswith(".weight._data")]
    locked = [k for k in quantized if k.endswith(("before_proj", "after_proj"))]
    for module in locked:  # WanGP keeps before/after_proj in float: compare them to the source
        for suffix in (".weight._data", ".weight._scale", ".input_scale", ".output_scale"):
            expected.pop(module + suffix)
        expected[module + ".weight"] = source_state[module + ".weight"].to(DTYPES[dtype])
    assert set(written) == set(expected)
    for key, value in expected.items():
        if key.startswith(("patch_embedding.", "head.head.", "head.modulation")):
            assert written[key].dtype == torch.float32
            assert torch.equal(written[key], source_state[key].float()), key
        else:
            assert written[key].dtype == value.dtype, key
            assert torch.equal(written[key], value), key
    metadata = safe_open(str(tmp_path / "out.safetensors"), "pt").metadata()
    qmap = json.loads(base64.b64decode(metadata["quantization_map_base64"]))
    assert qmap == {m: {"weights": "qint8", "activations": "none"} for m in quantized if m not in locked}
    assert metadata["quantization_format"] == "quanto"


def test_header_is_mmgp_style_and_in_data_order(tmp_path):
    torch.manual_seed(1)
    write_source(TinyWan(), tmp_path / "m_bf16.safetensors")
    quantize_file(tmp_path / "m_bf16.safetensors", tmp_path / "q.safetensors", "bf16")
    raw = (tmp_path / "q.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    text = raw[8: 8 + length].decode()
    header = json.loads(text)
    assert list(header)[-1] == "__metadata__"
    assert text == json.dumps(header)  # default separators, no padding
    offsets = [v["data_offsets"] for k, v in header.items() if k != "__metadata__"]
    assert offsets == sorted(offsets) and offsets[0][0] == 0
    assert all(a[1] == b[0] for a, b in zip(offsets, offsets[1:]))  # packed back to back, in header order
    assert len(raw) == 8 + length + offsets[-1][1]
    names = [k for k in header if k != "__metadata__"]
    first = names.index("blocks.0.self_attn.q.weight._data")
    assert names[first: first + 5] == ["blocks.0.self_attn.q.weight._data", "blocks.0.self_attn.q.weight._scale",
                                       "blocks.0.self_attn.q.bias", "blocks.0.self_attn.q.input_scale",
                                       "blocks.0.self_attn.q.output_scale"]


def test_requantized_model_matches_quanto_reference_outputs(tmp_path):
    torch.manual_seed(2)
    source_state = write_source(TinyWan(), tmp_path / "m_bf16.safetensors", torch.float16)
    quantize_file(tmp_path / "m_bf16.safetensors", tmp_path / "q.safetensors", "fp16")
    reference = quanto_reference(TinyWan, source_state, torch.float16, "blocks.*")
    state = load_file(str(tmp_path / "q.safetensors"))
    metadata = safe_open(str(tmp_path / "q.safetensors"), "pt").metadata()
    qmap = json.loads(base64.b64decode(metadata["quantization_map_base64"]))
    loaded = TinyWan().to(torch.float16)
    for key in ("patch_embedding.weight", "patch_embedding.bias", "head.head.weight", "head.head.bias",
                "head.modulation"):
        module, _, name = key.rpartition(".")
        getattr(loaded.get_submodule(module), name).data = state[key].clone()
    quanto.requantize(loaded, {k: v.clone() for k, v in state.items()}, qmap, device=torch.device("cpu"))
    x = torch.randn(2, 64, dtype=torch.float16)
    with torch.no_grad():
        assert torch.equal(loaded(x), reference(x))


def test_scale_rules_on_edge_rows():
    weight = torch.zeros(3, 32, dtype=torch.bfloat16)
    weight[1] = torch.linspace(-2, 2, 32)
    data, scale = quantize_tensor(weight, torch.bfloat16)
    assert scale.shape == (3, 1) and scale.dtype == torch.bfloat16
    assert torch.equal(data[0], torch.zeros(32, dtype=torch.int8))  # an all-zero row stays zero
    assert data[1].abs().max() == 127
    single, single_scale = quantize_tensor(torch.randn(1, 32), torch.float16)
    assert single_scale.shape == () and single.dtype == torch.int8


def test_refuses_quantized_and_non_transformer_files(tmp_path):
    torch.manual_seed(3)
    write_source(TinyWan(), tmp_path / "m_bf16.safetensors")
    quantize_file(tmp_path / "m_bf16.safetensors", tmp_path / "q.safetensors", "bf16")
    with pytest.raises(WangpError, match="already quantized"):
        quantize_file(tmp_path / "q.safetensors", tmp_path / "qq.safetensors", "bf16")
    save_file({"a.weight": torch.randn(4, 4)}, str(tmp_path / "small.safetensors"))
    with pytest.raises(WangpError, match="nothing to quantize"):
        quantize_file(tmp_path / "small.safetensors", tmp_path / "x.safetensors", "bf16")
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(WangpError, match="not a safetensors file"):
        quantize_file(tmp_path / "junk.safetensors", tmp_path / "y.safetensors", "bf16")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.safetensors", "m_bf16.safetensors",
                                                          "q.safetensors", "small.safetensors"]
