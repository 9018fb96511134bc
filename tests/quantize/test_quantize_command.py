"""`wangp quantize` on definitions: naming, write-back, refusals, batch mode, SIGKILL safety."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WANGP = [sys.executable, "-m", "wangp_cli"]


def tiny_wan_state(layers=6, dim=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    state = {"patch_embedding.weight": torch.randn(dim, 16, 1, 2, 2, generator=generator),
             "patch_embedding.bias": torch.randn(dim, generator=generator)}
    for index in range(layers):
        state[f"blocks.{index}.modulation"] = torch.randn(1, 6, dim, generator=generator)
        for name in ("q", "k", "v", "o"):
            state[f"blocks.{index}.self_attn.{name}.weight"] = torch.randn(dim, dim, generator=generator)
            state[f"blocks.{index}.self_attn.{name}.bias"] = torch.randn(dim, generator=generator)
        state[f"blocks.{index}.ffn.0.weight"] = torch.randn(2 * dim, dim, generator=generator)
        state[f"blocks.{index}.ffn.2.weight"] = torch.randn(dim, 2 * dim, generator=generator)
    state["head.head.weight"] = torch.randn(64, dim, generator=generator)
    state["head.modulation"] = torch.randn(1, 2, dim, generator=generator)
    return {k: v.to(torch.bfloat16) for k, v in state.items()}


DEFINITION_TEXT = """{
\t"model":
\t{
\t\t"name": "Tiny",
\t\t"architecture" : "t2v",
\t\t"description": "tiny",
\t\t"URLs": [
\t\t\t"ckpts/tiny_fp16.safetensors"
\t\t],
\t\t"auto_quantize": true
\t},
    "seed": 42,
    "flow_shift": 5.0
}"""


@pytest.fixture
def home(tmp_path):
    for folder in ("finetunes", "ckpts", "settings"):
        (tmp_path / folder).mkdir()
    save_file(tiny_wan_state(), str(tmp_path / "ckpts" / "tiny_fp16.safetensors"))
    (tmp_path / "finetunes" / "t2v_tiny.json").write_text(DEFINITION_TEXT, encoding="utf-8")
    return tmp_path


def run(home, *args, check=None, timeout=120):
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(home)}
    result = subprocess.run(WANGP + ["--home", str(home), *args], capture_output=True, text=True, env=env,
                            timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr
    if check is not None:
        assert result.returncode == check, result.stdout + result.stderr
    return result


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_quantize_names_the_file_and_appends_it_to_urls(home, dtype):
    run(home, "quantize", "t2v_tiny", "--dtype", dtype, "--target", "july", check=0)  # v12: test_quantize_v12.py
    output = home / "ckpts" / f"tiny_quanto_{dtype}_int8.safetensors"
    written = load_file(str(output))
    scale_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    assert written["blocks.0.self_attn.q.weight._scale"].dtype == scale_dtype
    assert written["patch_embedding.weight"].dtype == torch.float32
    text = (home / "finetunes" / "t2v_tiny.json").read_text(encoding="utf-8")
    expected = DEFINITION_TEXT.replace('"ckpts/tiny_fp16.safetensors"',
                                       f'"ckpts/tiny_fp16.safetensors",\n\t\t\t"ckpts/tiny_quanto_{dtype}_int8.safetensors"')
    assert text == expected  # every other byte kept
    shown = json.loads(run(home, "show", "t2v_tiny", "--dtype", dtype, "--format", "json", "--target", "july",
                           check=0).stdout)
    assert shown["transformer"]["path"] == f"ckpts/tiny_quanto_{dtype}_int8.safetensors"
    assert shown["transformer"]["present"] and shown["transformer"]["dtype"] == dtype


def test_running_again_changes_nothing(home):
    run(home, "quantize", "t2v_tiny", "--dtype", "bf16", check=0)
    output = home / "ckpts" / "tiny_quanto_bf16_int8.safetensors"
    before = (output.read_bytes(), output.stat().st_mtime_ns, (home / "finetunes/t2v_tiny.json").read_text())
    run(home, "quantize", "t2v_tiny", "--dtype", "bf16", check=0)
    assert before == (output.read_bytes(), output.stat().st_mtime_ns, (home / "finetunes/t2v_tiny.json").read_text())


@pytest.mark.parametrize("model, reason", [
    ({"modules": ["vace_14B"], "architecture": "vace_14B"}, "modules"),
    ({"URLs": "t2v_tiny"}, "reference"),
    ({"URLs": ["ckpts/other_quanto_bf16_int8.safetensors", "ckpts/other_quanto_fp16_int8.safetensors"]}, "16-bit"),
])
def test_refuses_where_wangp_refuses(home, model, reason):
    data = {"model": {"name": "x", "architecture": "t2v", "description": "", "URLs": ["ckpts/tiny_fp16.safetensors"],
                      **model}, "seed": 1}
    path = home / "finetunes" / "t2v_refused.json"
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")
    before = path.read_text()
    result = run(home, "quantize", "t2v_refused", "--dtype", "bf16", check=1)
    assert reason in result.stderr
    assert path.read_text() == before
    assert sorted(p.name for p in (home / "ckpts").iterdir()) == ["tiny_fp16.safetensors"]


def test_batch_dry_run_lists_jobs_and_reasons(home):
    (home / "finetunes" / "t2v_done.json").write_text(json.dumps({"model": {
        "name": "done", "architecture": "t2v", "description": "",
        "URLs": ["ckpts/tiny_fp16.safetensors", "ckpts/tiny_quanto_bf16_int8.safetensors"]}, "seed": 1}))
    result = run(home, "quantize", "--dtype", "bf16", "--dry-run", "--format", "json", check=0)
    jobs = {j["id"]: j for j in json.loads(result.stdout)["jobs"]}
    assert jobs["t2v_tiny"]["output"] == "ckpts/tiny_quanto_bf16_int8.safetensors"
    assert jobs["t2v_tiny"]["status"] == "pending"
    assert jobs["t2v_done"]["status"] == "skipped" and "already has" in jobs["t2v_done"]["reason"]
    assert not (home / "ckpts" / "tiny_quanto_bf16_int8.safetensors").exists()
    run(home, "quantize", "--dtype", "bf16", check=0)
    assert (home / "ckpts" / "tiny_quanto_bf16_int8.safetensors").exists()


def test_input_file_mode_keeps_the_extension(home, tmp_path):
    source = home / "ckpts" / "MyModel_BF16.safetensors"
    save_file(tiny_wan_state(), str(source))
    run(home, "quantize", "--input", str(source), "--dtype", "fp16", check=0)
    assert (home / "ckpts" / "MyModel_quanto_fp16_int8.safetensors").is_file()
    run(home, "quantize", "--input", str(source), "--output", str(tmp_path / "x.safetensors"), "--dtype", "bf16",
        check=0)
    assert load_file(str(tmp_path / "x.safetensors"))["blocks.1.ffn.0.weight._data"].dtype == torch.int8


def test_sigkill_leaves_no_partial_output_and_no_changed_json(home):
    save_file(tiny_wan_state(layers=40, dim=512), str(home / "ckpts" / "tiny_fp16.safetensors"))
    before = (home / "finetunes" / "t2v_tiny.json").read_text()
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(home)}
    process = subprocess.Popen(WANGP + ["--home", str(home), "quantize", "t2v_tiny", "--dtype", "bf16"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list((home / "ckpts").glob(".*.wangp-tmp")):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (home / "ckpts" / "tiny_quanto_bf16_int8.safetensors").exists()
    assert (home / "finetunes" / "t2v_tiny.json").read_text() == before
    run(home, "quantize", "t2v_tiny", "--dtype", "bf16", check=0)  # and the next run completes
    assert (home / "ckpts" / "tiny_quanto_bf16_int8.safetensors").exists()


def test_inspect_reports_layout_quantization_and_config(home):
    run(home, "quantize", "t2v_tiny", "--dtype", "bf16", check=0)
    source = json.loads(run(home, "inspect", str(home / "ckpts/tiny_fp16.safetensors"), "-f", "json",
                            check=0).stdout)
    assert source["layout"] == "original (WanGP)" and source["quantized"] is False
    assert source["tensors"] == len(tiny_wan_state()) and source["dtypes"] == {"BF16": source["tensors"]}
    assert source["quantizable_modules"] == 6 * 6  # q, k, v, o, ffn.0, ffn.2 in 6 blocks
    output = json.loads(run(home, "inspect", str(home / "ckpts/tiny_quanto_bf16_int8.safetensors"), "-f", "json",
                            check=0).stdout)
    assert output["quantized"] and output["quantized_modules"] == 36 and output["dtypes"]["I8"] == 36
    assert output["quantization_format"] == "quanto" and output["quantization_map_source"] == "embedded"
    assert output["config"] is None  # WanGP's t2v config (40 layers of 5120) does not describe a 6-layer model
    result = run(home, "inspect", str(home / "finetunes/t2v_tiny.json"), check=1)
    assert "not a safetensors file" in result.stderr


def test_wangp_config_is_embedded_only_where_it_describes_the_tensors():
    """WanGP's configs/t2v_1.3B.json goes into a 1.3B-shaped file (header only: 30 blocks of width 1536), and no
    architecture config goes into a file of another size (it would tell WanGP the wrong shape)."""
    import base64

    from wangp_cli.quantize import wangp_config
    from wangp_cli.quantize.quantizer import plan_output
    from wangp_cli.quantize.safetensors_io import Entry

    def entries(dim, ffn, layers):
        out = [Entry("patch_embedding.weight", "BF16", (dim, 16, 1, 2, 2))]
        for block in range(layers):
            for name in ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o"):
                out.append(Entry(f"blocks.{block}.{name}.weight", "BF16", (dim, dim)))
            out += [Entry(f"blocks.{block}.ffn.0.weight", "BF16", (ffn, dim)),
                    Entry(f"blocks.{block}.ffn.2.weight", "BF16", (dim, ffn))]
        return out

    config = wangp_config("t2v_1.3B")
    fitting = plan_output(entries(1536, 8960, 30), {}, "bf16", config)
    assert json.loads(base64.b64decode(fitting.metadata["config_base64"])) == config
    for shape in ((64, 128, 30), (1536, 8960, 6), (1536, 4096, 30)):
        assert "config_base64" not in plan_output(entries(*shape), {}, "bf16", config).metadata
