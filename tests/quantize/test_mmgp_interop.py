"""Interoperability with mmgp, the library WanGP loads and saves quanto files with (§8 of quantized-file-format.md).

mmgp is GPL-3.0 and a TEST-ONLY dependency: nothing under ``wangp_cli`` may import it. Install it with
``pip install mmgp==3.5.1`` (the version WanGP pinned in July 2025; besides mmgp it adds only accelerate, its
other requirements torch, optimum-quanto, safetensors and psutil are already there). Without mmgp this module
is skipped.

(a) a file written by ``quantize_file`` loads in mmgp's ``fast_load_transformers_model`` (config embedded or
    given) and runs exactly like an in-memory optimum-quanto reference;
(b) a file written by mmgp's ``save_model(do_quantize=True)`` is read tensor for tensor by wangp's reader and
    requantizes with plain optimum-quanto into a model that runs exactly like mmgp's;
(c) for the same model, order and config, ``quantize_file`` writes the same bytes as mmgp's ``save_model``.
"""

from __future__ import annotations

import base64
import json

import pytest

torch = pytest.importorskip("torch")
quanto = pytest.importorskip("optimum.quanto")
pytest.importorskip("mmgp")
from optimum.quanto.nn import qmodule as _quanto_qmodule  # noqa: E402
from torch import nn  # noqa: E402

from tests.quantize.test_quantizer import TinyWan, quanto_reference  # noqa: E402
from wangp_cli.quantize.quantizer import quantize_file  # noqa: E402
from wangp_cli.quantize.safetensors_io import TensorReader, read_header  # noqa: E402


def _import_mmgp():
    """``mmgp.offload``, without the process-wide patches its import makes (other test modules must not see them).

    Importing ``mmgp.safetensors2`` replaces ``safetensors.safe_open`` / ``safetensors.torch.load_file`` (and the
    copies accelerate and transformers hold) with mmgp's own reader, whose ``metadata()`` decodes ``*_base64``
    keys; ``mmgp.offload`` registers a quantized ``nn.Embedding`` in optimum-quanto. mmgp itself calls its own
    functions directly, so both are undone here; the Embedding registration is put back only while the tests of
    this module run (fixture ``_mmgp_quanto_registry``), as it is when WanGP runs.
    """
    import sys

    embedding_before = _quanto_qmodule._QMODULE_TABLE.get(nn.Embedding)
    from mmgp import offload, safetensors2

    originals = {"safe_open": safetensors2._old_safe_open, "load_file": safetensors2._old_torch_load_file,
                 "safe_load_file": safetensors2._old_torch_load_file}
    patched = (safetensors2.safe_open, safetensors2.torch_load_file)
    holders = ("safetensors", "safetensors.torch", "accelerate.utils.modeling", "transformers.modeling_utils")
    for module_name in holders:
        module = sys.modules.get(module_name)
        for attr in ("safe_open", "load_file", "safe_load_file"):
            if module is not None and getattr(module, attr, None) in patched:
                setattr(module, attr, originals[attr])
    embedding_mmgp = _quanto_qmodule._QMODULE_TABLE.get(nn.Embedding)
    if embedding_before is None:
        _quanto_qmodule._QMODULE_TABLE.pop(nn.Embedding, None)
    else:
        _quanto_qmodule._QMODULE_TABLE[nn.Embedding] = embedding_before
    return offload, embedding_mmgp


offload, _MMGP_QEMBEDDING = _import_mmgp()

#: mmgp maps files read-only (``writable_tensors=False``, as WanGP loads transformers): expected, not a problem.
pytestmark = pytest.mark.filterwarnings("ignore:The given buffer is not writable:UserWarning")

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: WanGP's ``lock_layers_dtypes``: always fp32, whatever the target dtype (format §4).
FP32_LOCKED = ("patch_embedding.", "head.head.", "head.modulation")
#: WanGP-style architecture config (configs/t2v.json at toy size); from_config reads dim, num_layers, vace_layers.
CONFIG = {"_class_name": "WanModel", "_diffusers_version": "0.30.0", "dim": 64, "eps": 1e-06, "ffn_dim": 128,
          "freq_dim": 16, "in_dim": 16, "model_type": "t2v", "num_heads": 4, "num_layers": 6, "out_dim": 16,
          "text_len": 32}
VACE_CONFIG = {**CONFIG, "vace_layers": [0, 2, 4], "vace_in_dim": 96}


class TinyWanModel(TinyWan):
    """TinyWan with the ``from_config`` classmethod mmgp builds models with (diffusers-style ``_class_name``)."""

    def __init__(self, dim=64, num_layers=6, vace=False):
        super().__init__(dim=dim, layers=num_layers, vace=vace)
        if vace:
            for block in self.vace_blocks:  # WanGP's marker: mmgp neither quantizes nor casts these
                block.before_proj._lock_dtype = torch.float32
                block.after_proj._lock_dtype = torch.float32

    @classmethod
    def from_config(cls, config):
        return cls(dim=config["dim"], num_layers=config["num_layers"], vace="vace_layers" in config)


@pytest.fixture(autouse=True)
def _mmgp_quanto_registry():
    """mmgp's quantized nn.Embedding registered in optimum-quanto during these tests only (as under WanGP)."""
    before = _quanto_qmodule._QMODULE_TABLE.get(nn.Embedding)
    if _MMGP_QEMBEDDING is not None:
        _quanto_qmodule._QMODULE_TABLE[nn.Embedding] = _MMGP_QEMBEDDING
    yield
    if before is None:
        _quanto_qmodule._QMODULE_TABLE.pop(nn.Embedding, None)
    else:
        _quanto_qmodule._QMODULE_TABLE[nn.Embedding] = before


def write_config(tmp_path, config=CONFIG):
    """WanGP's configs/<architecture>.json: not beside the checkpoint, so mmgp's folder fallback finds nothing."""
    path = tmp_path / "configs" / "t2v.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(config, indent=4), encoding="utf-8")
    return path


def source_state(seed, config=CONFIG, dtype=torch.bfloat16):
    """The 16-bit source checkpoint as a state dict, in ``state_dict()`` (module registration) order."""
    torch.manual_seed(seed)
    model = TinyWanModel.from_config(config)
    return {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}


def write_source(state, path, config=None):
    """A 16-bit file with the tensors in state-dict order (stock ``save_file`` would sort them by name)."""
    from mmgp import safetensors2

    safetensors2.torch_write_file(state, str(path), config=config)
    return path


def wangp_model(state, dtype, config=CONFIG):
    """The float model as WanGP holds it before quantizing: target dtype, fp32 for the locked layers.

    VACE ``before_proj`` / ``after_proj`` are "hybrid" (format §4): target dtype unless the mixed-precision
    setting is on; their ``_lock_dtype`` marker only keeps mmgp from quantizing them.
    """
    model = TinyWanModel.from_config(config)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    for name, param in model.named_parameters():
        param.data = param.data.to(torch.float32 if name.startswith(FP32_LOCKED) else dtype)
    return model


def mmgp_load(path, config_path):
    """As WanGP loads a transformer file; mmgp's global ``set_default_device('cpu')`` is undone afterwards."""
    try:
        return offload.fast_load_transformers_model(str(path), modelClass=TinyWanModel,
                                                    defaultConfigPath=str(config_path), writable_tensors=False)
    finally:
        torch.set_default_device(None)


def aligned(model):
    """Clone every int8 ``_data``: file-backed, misaligned data crashes quanto's CPU bf16 kernel (format §7)."""
    for module in model.modules():
        if isinstance(module, quanto.QModuleMixin) and isinstance(module.weight, quanto.QTensor):
            module.weight._data = module.weight._data.clone()
    return model


def run(model, dtype, seed=7):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 16, CONFIG["dim"], generator=generator).to(dtype)
    with torch.no_grad():
        return model(x)


def decode(metadata, key):
    return json.loads(base64.b64decode(metadata[key]))


def describe_difference(ours: bytes, theirs: bytes) -> str:
    """Where two safetensors files differ: length, header (keys, entries, metadata) or tensor data."""
    if ours == theirs:
        return "identical"
    heads = []
    for raw in (ours, theirs):
        length = int.from_bytes(raw[:8], "little")
        heads.append((length, json.loads(raw[8: 8 + length]), raw[8: 8 + length], raw[8 + length:]))
    (_, h1, t1, d1), (_, h2, t2, d2) = heads
    if list(h1) != list(h2):
        first = next((i for i, (a, b) in enumerate(zip(h1, h2)) if a != b), min(len(h1), len(h2)))
        return f"key order/set differs at #{first}: {list(h1)[first: first + 3]} vs {list(h2)[first: first + 3]}"
    for key in h1:
        if h1[key] != h2[key]:
            if key == "__metadata__":
                diff = {k: (h1[key].get(k), h2[key].get(k)) for k in set(h1[key]) | set(h2[key])
                        if h1[key].get(k) != h2[key].get(k)}
                return f"metadata differs: {sorted(diff)} (order {list(h1[key])} vs {list(h2[key])})"
            return f"entry {key}: {h1[key]} vs {h2[key]}"
    if t1 != t2:
        return "header JSON text differs (separators/escaping) with equal content"
    for key, entry in h1.items():
        if key != "__metadata__":
            start, end = entry["data_offsets"]
            if d1[start:end] != d2[start:end]:
                return f"data of {key} ({entry['dtype']} {entry['shape']}) differs"
    return f"trailing bytes differ ({len(d1)} vs {len(d2)})"


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("config_in", ["embedded", "given"])
def test_wangp_file_loads_in_mmgp_and_matches_quanto_reference(tmp_path, dtype, config_in):
    """(a) quantize_file output -> mmgp loader == in-memory quanto quantize + freeze."""
    state = source_state(10)
    write_source(state, tmp_path / "tiny_bf16.safetensors")
    out = tmp_path / f"tiny_quanto_{dtype}_int8.safetensors"
    quantize_file(tmp_path / "tiny_bf16.safetensors", out, dtype, config=CONFIG if config_in == "embedded" else None)
    if config_in == "embedded":  # the embedded config wins: a default one with 7 layers would miss blocks.6
        config_path = write_config(tmp_path, {**CONFIG, "num_layers": 7})
    else:  # no config in the file: mmgp takes defaultConfigPath
        config_path = write_config(tmp_path)
        assert "config_base64" not in read_header(out)[2]
    loaded = mmgp_load(out, config_path)
    assert loaded._config == CONFIG

    reference = quanto_reference(TinyWanModel, state, DTYPES[dtype], "blocks.*")
    expected = reference.state_dict()
    for key in expected:
        if key.startswith(FP32_LOCKED):
            expected[key] = state[key].float()
    got = loaded.state_dict()
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key].dtype == value.dtype, key
        assert torch.equal(got[key], value), key
    assert isinstance(loaded.blocks[0].self_attn.q, quanto.QModuleMixin)
    assert not isinstance(loaded.head.head, quanto.QModuleMixin)
    assert torch.equal(run(aligned(loaded), DTYPES[dtype]), run(reference, DTYPES[dtype]))


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_mmgp_file_reads_with_wangp_reader_and_requantizes(tmp_path, dtype):
    """(b) mmgp save_model(do_quantize=True) -> wangp reader -> plain quanto requantize == mmgp's models."""
    state = source_state(20)
    config_path = write_config(tmp_path)
    path = tmp_path / f"tiny_quanto_{dtype}_int8.safetensors"
    mmgp_model = wangp_model(state, DTYPES[dtype])
    offload.save_model(mmgp_model, str(path), do_quantize=True, config_file_path=str(config_path))
    mmgp_state = mmgp_model.state_dict()

    _, entries, metadata = read_header(path)
    assert [e.name for e in entries] == list(mmgp_state)  # data order = header order = state-dict order
    qmap = decode(metadata, "quantization_map_base64")
    assert qmap == mmgp_model._quanto_map
    assert metadata["quantization_format"] == "quanto"
    assert decode(metadata, "config_base64") == CONFIG
    with TensorReader(path) as reader:
        file_state = {}
        for entry in entries:
            tensor = reader.tensor(entry).clone()
            assert tensor.dtype == mmgp_state[entry.name].dtype, entry.name
            assert tensor.shape == mmgp_state[entry.name].shape, entry.name
            assert torch.equal(tensor, mmgp_state[entry.name]), entry.name
            file_state[entry.name] = tensor
            del tensor

    fresh = TinyWanModel.from_config(CONFIG)  # format §7: file dtypes first, then requantize
    for name, param in fresh.named_parameters():
        if name in file_state:
            param.data = param.data.to(file_state[name].dtype)
    for module in qmap:
        fresh.get_submodule(module).to(file_state[f"{module}.weight._scale"].dtype)
    quanto.requantize(fresh, file_state, qmap, device=torch.device("cpu"))
    assert set(fresh.state_dict()) == set(file_state)

    loaded = aligned(mmgp_load(path, config_path))
    expected = run(mmgp_model, DTYPES[dtype])
    assert torch.equal(run(loaded, DTYPES[dtype]), expected)
    assert torch.equal(run(fresh, DTYPES[dtype]), expected)


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
@pytest.mark.parametrize("config_in", ["given", "embedded"])
@pytest.mark.parametrize("variant", ["t2v", "vace"])
def test_wangp_bytes_equal_mmgp_bytes(tmp_path, dtype, config_in, variant):
    """(c) same model, state-dict order and config: quantize_file writes mmgp's save_model bytes exactly."""
    config = VACE_CONFIG if variant == "vace" else CONFIG
    state = source_state(30, config)
    config_path = write_config(tmp_path, config)
    source = write_source(state, tmp_path / "tiny_bf16.safetensors", config if config_in == "embedded" else None)
    ours = tmp_path / f"wangp_quanto_{dtype}_int8.safetensors"
    quantize_file(source, ours, dtype, config=config if config_in == "given" else None)
    theirs = tmp_path / f"mmgp_quanto_{dtype}_int8.safetensors"
    offload.save_model(wangp_model(state, DTYPES[dtype], config), str(theirs), do_quantize=True,
                       config_file_path=str(config_path))
    ours_bytes, theirs_bytes = ours.read_bytes(), theirs.read_bytes()
    assert ours_bytes == theirs_bytes, describe_difference(ours_bytes, theirs_bytes)
