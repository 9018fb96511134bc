"""Scaled fp8 and GGUF checkpoints: read by dequantizing to the compute dtype. Files written the way ComfyUI and
city96's ComfyUI-GGUF write them (fp8 weights with ``scale_weight`` per tensor or per row and the ``scaled_fp8``
marker; GGUF Q8_0 weights with the ``comfy.gguf.orig_shape`` record of the 5-D patch embedding), loaded by wangp,
compared with the weights dequantized by hand (torch for fp8, the gguf package's own numpy dequantizer for GGUF)
and converted by diffusers' own Wan converter; then a whole ``wangp generate`` on each file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")
from safetensors.torch import load_file, save_file  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from wangp_cli.cli import app  # noqa: E402
from wangp_cli.core.errors import WangpError  # noqa: E402
from wangp_cli.generate import tiny  # noqa: E402
from wangp_cli.generate.video import probe_video  # noqa: E402
from wangp_cli.generate.weights import load_transformer  # noqa: E402

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tiny.make_home(tmp_path_factory.mktemp("formats"), "t2v", architecture="t2v_1.3B")


@pytest.fixture(scope="module")
def original(home):
    """The tiny model's tensors in WanGP's layout, as its 16-bit file holds them."""
    return load_file(str(home.files[0]))


def reference_state(original_tensors: dict) -> dict:
    """Original-layout tensors through diffusers' own converter, in bf16 (the class keeps nothing in fp32 here)."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    converted = convert_wan_transformer_to_diffusers(dict(original_tensors))
    return {k: v.to(torch.bfloat16) for k, v in converted.items()}


def scaled_fp8(original_tensors: dict) -> tuple[dict, dict]:
    """(file tensors, hand-dequantized tensors): block Linear weights in fp8 with a scale per tensor (even blocks)
    or per row (odd blocks), as ComfyUI's scaled fp8 files; everything else as it was."""
    stored, expected = {"scaled_fp8": torch.empty(0, dtype=FP8)}, {}
    for name, tensor in original_tensors.items():
        if name.startswith("blocks.") and name.endswith(".weight") and tensor.ndim == 2:
            value = tensor.float()
            per_row = int(name.split(".")[1]) % 2 == 1
            absmax = value.abs().amax(dim=1) if per_row else value.abs().max()
            scale = (absmax / FP8_MAX).clamp(min=1e-12)
            data = (value / (scale[:, None] if per_row else scale)).to(FP8)
            stored[name], stored[name[: -len(".weight")] + ".scale_weight"] = data, scale
            expected[name] = (data.float() * (scale[:, None] if per_row else scale)).to(torch.bfloat16)
        else:
            stored[name] = expected[name] = tensor
    return stored, expected


def write_gguf(path: Path, original_tensors: dict) -> dict:
    """A GGUF file as ComfyUI-GGUF writes one (2-D weights Q8_0, the rest F16/F32, tensors over 4 dims flattened
    with their shape in ``comfy.gguf.orig_shape.<name>``); returns what the gguf package itself dequantizes."""
    writer = gguf.GGUFWriter(str(path), arch="wan")
    expected = {}
    for name, tensor in original_tensors.items():
        array = tensor.float().numpy()
        if array.ndim == 2 and array.shape[1] % 32 == 0:
            kind = gguf.GGMLQuantizationType.Q8_0
            data = gguf.quants.quantize(array, kind)
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=kind)
            expected[name] = torch.from_numpy(gguf.quants.dequantize(data, kind).reshape(array.shape))
            continue
        if array.ndim > 4:
            writer.add_array(f"comfy.gguf.orig_shape.{name}", list(array.shape))
            array = array.reshape(array.shape[0], -1)
        array = array.astype(np.float16 if array.ndim >= 2 else np.float32)
        writer.add_tensor(name, array)
        expected[name] = torch.from_numpy(array.astype(np.float32)).reshape(tensor.shape)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {k: v.to(torch.bfloat16) for k, v in expected.items()}


def assert_loaded(path: Path, expected_original: dict) -> None:
    loaded = load_transformer([path], torch.bfloat16, family="wan")
    state = loaded.model.state_dict()
    reference = reference_state(expected_original)
    assert set(state) == set(reference)
    for name, value in reference.items():
        assert torch.equal(state[name], value), name
    assert loaded.quantized is False


def test_scaled_fp8_loads_as_dequantized_by_hand(home, original, tmp_path):
    stored, expected = scaled_fp8(original)
    path = tmp_path / "tiny_fp8_e4m3fn_scaled.safetensors"
    save_file(stored, str(path))
    assert_loaded(path, expected)


def test_gguf_loads_as_the_gguf_package_dequantizes(home, original, tmp_path):
    path = tmp_path / "tiny_Q8_0.gguf"
    expected = write_gguf(path, original)
    assert_loaded(path, expected)


def test_block_wise_fp8_scale_is_refused(original, tmp_path):
    stored, _ = scaled_fp8(original)
    name = next(k for k in stored if k.endswith(".scale_weight"))
    stored[name] = torch.ones(3, 3)
    path = tmp_path / "blockwise_fp8.safetensors"
    save_file(stored, str(path))
    with pytest.raises(WangpError, match="block-wise fp8 is not supported"):
        load_transformer([path], torch.bfloat16, family="wan")


@pytest.mark.parametrize("suffix", ["fp8_e4m3fn_scaled.safetensors", "Q8_0.gguf"])
def test_generate_runs_on_the_file(home, original, suffix, tmp_path):
    path = home.root / "ckpts" / f"tiny_t2v_{suffix}"
    if suffix.endswith(".gguf"):
        write_gguf(path, original)
    else:
        save_file(scaled_fp8(original)[0], str(path))
    definition = json.loads((home.root / "finetunes" / f"{home.model_id}.json").read_text())
    definition["model"]["URLs"] = [f"ckpts/{path.name}"]
    model_id = f"tiny_{suffix.split('.')[0].lower()}"
    (home.root / "finetunes" / f"{model_id}.json").write_text(json.dumps(definition))
    args = []
    for key, value in home.pipeline_kwargs.items():
        args += ["--pipeline-arg", f"{key}={json.dumps(value)}"]
    out = tmp_path / "clip.mp4"
    result = CliRunner().invoke(app, ["--home", str(home.root), "generate", "-m", model_id, "--frames", "5",
                                      "--seed", "3", "-o", str(out), "--format", "json", *args])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["transformer"] == [f"ckpts/{path.name}"] and record["quantized"] is False
    probe = probe_video(out)
    assert (probe["frames"], probe["width"], probe["height"]) == (5, 64, 64)
