"""Regression tests for the checkpoint rows of the new-user audit (inspect, quantize, the loader's header)."""

from __future__ import annotations

import base64
import json
import os
import pickle
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import save_file  # noqa: E402

from tests.quantize.test_quantize_command import tiny_wan_state  # noqa: E402
from conftest import invoke as wangp  # noqa: E402
from wangp_cli.core.errors import WangpError  # noqa: E402
from wangp_cli.generate.weights import hunyuan_config, read_checkpoint, wan_config  # noqa: E402
from wangp_cli.core.locks import lock_path, output_lock  # noqa: E402
from wangp_cli.quantize.quantizer import quantize_file  # noqa: E402

REPO = Path(__file__).resolve().parents[2]




def b64(value) -> str:
    return base64.b64encode(json.dumps(value).encode() if not isinstance(value, bytes) else value).decode()


# -- checkpoint files with one defect each (rows 2, 28, 44) -------------------------------------------------------

def good_file(path: Path, metadata: dict | None = None) -> Path:
    save_file(tiny_wan_state(layers=5, dim=16), str(path), metadata=metadata or {"config_base64": b64({"dim": 16})})
    return path


def split(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8: 8 + length]), raw[8 + length:]


def join(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def tensors(header: dict) -> list[str]:
    """Tensor names in data order."""
    return sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"])


def edit(change):
    def build(path: Path) -> bytes:
        header, data = split(good_file(path))
        change(header)
        return join(header, data)
    return build


def meta(**entries):
    return edit(lambda h: h.__setitem__("__metadata__", entries))


def _overlap(header):
    first, second = tensors(header)[:2]
    header[second]["data_offsets"] = header[first]["data_offsets"]


def _out_of_range(header):
    last = tensors(header)[-1]
    begin, end = header[last]["data_offsets"]
    header[last]["data_offsets"] = [begin + 10**9, end + 10**9]


def raw(text: bytes):
    """A file whose header is ``text`` as given (no tensors)."""
    return lambda path: struct.pack("<Q", len(text)) + text


def _hole(path):
    header, data = split(good_file(path))
    for name in header:
        if name != "__metadata__":
            header[name]["data_offsets"] = [x + 4 for x in header[name]["data_offsets"]]
    return join(header, b"\0" * 4 + data)


WEIGHT = "blocks.0.ffn.0.weight"
#: (id, how the file is made, what the error says): one defect each.
MALFORMED = [
    ("row2-meta-str", edit(lambda h: h.__setitem__("__metadata__", "string")), "__metadata__ must be an object"),
    ("row2-meta-int", meta(format=1), "__metadata__ entry 'format' must be a string"),
    ("row2-shape-str", edit(lambda h: h[WEIGHT].__setitem__("shape", "64x64")),
     f"tensor '{WEIGHT}': shape must be a list of non-negative integers"),
    ("row2-shape-negative", edit(lambda h: h[WEIGHT].__setitem__("shape", [-32, -16])), "non-negative integers"),
    ("row2-offsets-float", edit(lambda h: h[WEIGHT].__setitem__("data_offsets", [0.0, 1.5])),
     "data_offsets must be [begin, end]"),
    ("row2-entry-not-object", edit(lambda h: h.__setitem__(WEIGHT, [1, 2])), f"tensor '{WEIGHT}' is a JSON list"),
    ("row2-no-dtype", edit(lambda h: h[WEIGHT].pop("dtype")), f"tensor '{WEIGHT}' has no dtype"),
    ("row2-meta-deep", meta(config_base64=b64(b"[" * 100000)),
     "the embedded config cannot be decoded: it is nested too deeply"),
    ("meta-deep-valid", meta(config_base64=b64(b'{"a":' * 200 + b"1" + b"}" * 200)),
     "nested deeper than 64 levels"),
    ("config-not-object", meta(config_base64=b64([1, 2])), "the embedded config cannot be decoded: a JSON list"),
    ("config-not-json", meta(config_base64=b64(b"{nope")),
     "the embedded config cannot be decoded: it is not valid JSON"),
    ("row28-truncated", lambda p: good_file(p).read_bytes()[: p.stat().st_size // 2],
     "is truncated: the header needs"),
    ("row28-overlap", edit(_overlap), "overlap"),
    ("row28-trailing", lambda p: good_file(p).read_bytes() + b"\0" * 16, "16 trailing bytes"),
    ("row28-hole", _hole, "4 bytes before tensor"),
    ("row28-out-of-range", edit(_out_of_range), "reach past the end of the file"),
    ("row28-header-too-long", lambda p: struct.pack("<Q", 10**6) + b"{}",
     "give a header of 1,000,000 bytes, the file has 10"),
    ("row44-unknown-dtype", edit(lambda h: h[WEIGHT].__setitem__("dtype", "Q4_K")),
     f"tensor '{WEIGHT}' has an unknown dtype 'Q4_K'"),
    ("row44-offsets-lie", edit(lambda h: h[WEIGHT].__setitem__("shape", [16, 8])),
     f"tensor '{WEIGHT}': data_offsets span 1024 bytes, shape [16, 8] of BF16 needs 256"),
    ("row44-pickle", lambda p: pickle.dumps({"weights": list(range(100))}, protocol=4),
     "looks like a pickle (.ckpt/.pt), never unpickled"),
    ("row44-torch-save", lambda p: (torch.save({"a": torch.zeros(2)}, p), p.read_bytes())[1],
     "torch.save's .pt/.ckpt pickle format), never unpickled"),
    ("row44-map-not-base64", meta(quantization_map_base64="!!!notbase64"),
     "the quantization map cannot be decoded: quantization_map_base64 is not base64"),
    ("row44-map-entry", meta(quantization_map_base64=b64({"blocks.0.ffn.0": "qint8"})),
     "the quantization map cannot be decoded: its entry 'blocks.0.ffn.0' is not an object"),
    ("duplicate-key", raw(b'{"__metadata__": {}, "__metadata__": {}}'), "has the key '__metadata__' twice"),
    ("nan", raw(b'{"__metadata__": {"x": NaN}}'), "holds NaN, which is not JSON"),
    ("not-utf8", raw(b'{"__metadata__": {"x": "\xff"}}'), "is not valid UTF-8"),
    ("lone-surrogate", raw(b'{"__metadata__": {"x": "\\ud800"}}'), "lone surrogate"),
    ("not-an-object", raw(b"[1, 2]"), "its header is a JSON list, not an object"),
]
READERS = ["inspect", "quantize", "generate-loader"]


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("build, message", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
def test_malformed_checkpoints_are_one_line_format_errors(tmp_path, build, message, reader):
    path = tmp_path / "bad_bf16.safetensors"
    path.write_bytes(build(path))
    if reader == "generate-loader":
        with pytest.raises(WangpError) as error:
            read_checkpoint([path])
        assert error.value.code == "format" and message in error.value.message and str(path) in error.value.message
        return
    args = ["inspect", path] if reader == "inspect" else ["quantize", "--dtype", "bf16", "--input", path]
    result = wangp(*args)
    assert result.exit_code == 1, result.output
    assert "error: format: " in result.stderr and message in result.stderr and str(path) in result.stderr
    assert result.stdout == "" and "quantizing" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_bf16.safetensors"]


@pytest.mark.parametrize("sidecar, message", [(b"[" * 100000, "is nested too deeply"), (b"[1]", "is not a JSON object"),
                                              (b'{"m": 1}', "side-car 'x_map.json' entry 'm' is not an object")])
def test_a_bad_side_car_quantization_map_is_a_format_error(tmp_path, sidecar, message):
    path = good_file(tmp_path / "x.safetensors", {"format": "pt"})
    (tmp_path / "x_map.json").write_bytes(sidecar)
    result = wangp("inspect", path)
    assert result.exit_code == 1 and "the quantization map cannot be decoded: side-car" in result.stderr
    assert message in result.stderr


def test_the_strict_parser_still_reads_what_safetensors_writes(tmp_path):
    """Padding spaces, tensors listed out of data order, empty and scalar tensors: all valid safetensors."""
    path = tmp_path / "ok_bf16.safetensors"
    save_file({"a": torch.zeros(0, 3), "s": torch.tensor(1.0), **tiny_wan_state(layers=5, dim=16)}, str(path))
    header, data = split(path)
    reordered = dict(reversed(list(header.items())))
    text = json.dumps(reordered).encode() + b"     "
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    record = json.loads(wangp("inspect", path, "-f", "json").stdout)
    assert record["tensors"] == len(tensors(header)) and record["quantizable_modules"] == 5 * 6


# -- row 3: the embedded config must fit the tensors -------------------------------------------------------------

def wan_shapes(dim=32, heads_key=None):
    shapes = {"patch_embedding.weight": (dim, 16, 1, 2, 2), "head.head.weight": (64, dim),
              "text_embedding.0.weight": (dim, 32), "time_embedding.0.weight": (dim, 256),
              "blocks.0.ffn.0.weight": (64, dim)}
    tensors = {name: torch.empty(shape) for name, shape in shapes.items()}
    for index in range(5):
        tensors[f"blocks.{index}.norm3.weight"] = torch.empty(dim)
    return tensors


def hunyuan_shapes(hidden=32):
    shapes = {"img_in.proj.weight": (hidden, 4, 1, 1, 1), "final_layer.linear.weight": (4, hidden),
              "double_blocks.0.img_mlp.fc1.weight": (4 * hidden, hidden), "txt_in.input_embedder.weight": (hidden, 16),
              "vector_in.in_layer.weight": (hidden, 8), "single_blocks.0.linear1.weight": (7 * hidden, hidden)}
    return {name: torch.empty(shape) for name, shape in shapes.items()}


WAN_DIFFUSERS = {"_class_name": "WanTransformer3DModel", "num_attention_heads": 2, "attention_head_dim": 16,
                 "num_layers": 5}


@pytest.mark.parametrize("family, embedded, message", [
    ("wan", {"num_heads": "2"}, "num_heads is not a positive divisor of dim 32 (it is \"2\")"),
    ("wan", {"num_heads": 3}, "num_heads is not a positive divisor of dim 32 (it is 3)"),
    ("wan", {"num_heads": 0}, "num_heads is not a positive divisor of dim 32"),
    ("wan", {"num_heads": True}, "num_heads is not a positive divisor of dim 32"),
    ("wan", {"num_heads": 2, "eps": "tiny"}, "eps is not a positive number"),
    ("wan", {**WAN_DIFFUSERS, "num_attention_heads": 5}, "num_attention_heads is not a positive divisor of dim 32"),
    ("wan", {**WAN_DIFFUSERS, "num_layers": 40}, "num_layers (40) does not fit the tensors (5)"),
    ("wan", {**WAN_DIFFUSERS, "ffn_dim": "64"}, "ffn_dim (\"64\") does not fit the tensors (64)"),
    ("wan", {**WAN_DIFFUSERS, "rope_max_seq_len": -1}, "rope_max_seq_len is not a positive integer"),
    ("wan", {**WAN_DIFFUSERS, "vace_layers": [0, 2]}, "vace_layers [0, 2] does not fit the tensors"),
    ("hunyuan", {"heads_num": 3}, "heads_num is not a positive divisor of hidden size 32"),
    ("hunyuan", {"heads_num": 2, "rope_dim_list": [4, 4, 4]},
     "rope_dim_list [4, 4, 4] does not sum to the head dim 16"),
    ("hunyuan", {"heads_num": 2, "rope_dim_list": "16"}, "rope_dim_list is not a list of positive integers"),
])
def test_an_embedded_config_that_does_not_fit_the_tensors_is_refused(family, embedded, message):
    build, tensors = (wan_config, wan_shapes()) if family == "wan" else (hunyuan_config, hunyuan_shapes())
    with pytest.raises(WangpError) as error:
        build(tensors, embedded, {}, "'x.safetensors'")
    assert error.value.code == "format"
    assert error.value.message.startswith(f"'x.safetensors': the embedded config's {message}")


def test_a_fitting_embedded_config_is_used():
    assert wan_config(wan_shapes(), {"num_heads": 4, "eps": 1e-5}, {})["attention_head_dim"] == 8
    diffusers_form = wan_config(wan_shapes(), {**WAN_DIFFUSERS, "rope_max_seq_len": 64}, {})
    assert diffusers_form["rope_max_seq_len"] == 64 and diffusers_form["num_attention_heads"] == 2
    assert hunyuan_config(hunyuan_shapes(), {"heads_num": 2, "rope_dim_list": [4, 6, 6]}, {})["rope_axes_dim"] == \
        [4, 6, 6]


@pytest.mark.parametrize("num_heads", ["2", 3])
def test_generate_refuses_a_config_that_does_not_fit_before_building_the_model(tmp_path, num_heads):
    from wangp_cli.generate.tiny import make_home

    home = make_home(tmp_path / "T", "t2v")
    path = home.files[0]
    header, data = split(path)
    header["__metadata__"] = {"config_base64": b64({"num_heads": num_heads})}
    path.write_bytes(join(header, data))
    result = wangp("--home", home.root, "generate", "-m", home.model_id, "--prompt", "cat", "-o", tmp_path / "o.mp4")
    assert result.exit_code == 1, result.output
    assert "the embedded config's num_heads is not a positive divisor of dim 32" in result.stderr
    assert "size mismatch" not in result.stderr and not (tmp_path / "o.mp4").exists()


# -- quantize on definitions ---------------------------------------------------------------------------------------

def write_definition(home: Path, model_id: str, urls: list[str], **extra) -> Path:
    path = home / "finetunes" / f"{model_id}.json"
    path.write_text(json.dumps({"model": {"name": model_id, "architecture": "t2v", "description": "", "URLs": urls,
                                          **extra}, "seed": 1}, indent=4), encoding="utf-8")
    return path


@pytest.fixture
def home(tmp_path):
    root = tmp_path / "home"
    for folder in ("finetunes", "ckpts", "settings"):
        (root / folder).mkdir(parents=True)
    good_file(root / "ckpts" / "tiny_bf16.safetensors")
    write_definition(root, "t2v_tiny", ["ckpts/tiny_bf16.safetensors"])
    return root


OUTPUT = "ckpts/tiny_quanto_bf16_int8.safetensors"


def snapshot(home: Path) -> dict:
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def _read_only_ckpts(home: Path, request) -> None:
    ckpts = home / "ckpts"
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount is the only real refusal
        tmpfs = request.getfixturevalue("tmpfs")
        mount = tmpfs()
        for item in ckpts.iterdir():
            (mount / item.name).write_bytes(item.read_bytes())
            item.unlink()
        ckpts.rmdir()
        ckpts.symlink_to(mount)
        tmpfs.read_only(mount)
        return
    ckpts.chmod(0o555)
    request.addfinalizer(lambda: ckpts.chmod(0o755))


@pytest.mark.parametrize("args", [["t2v_tiny"], [], ["--input", "ckpts/tiny_bf16.safetensors"]],
                         ids=["id", "batch", "input"])
def test_row6_read_only_output_folder_is_refused_before_any_work(home, request, args, monkeypatch):
    _read_only_ckpts(home, request)
    before = snapshot(home)
    monkeypatch.chdir(home)
    result = wangp("--home", home, "quantize", "--dtype", "bf16", *args)
    assert result.exit_code == 1, result.output
    assert "cannot write to" in result.stderr and "quantizing" not in result.stderr
    if os.geteuid() == 0:
        assert "read-only file system" in result.stderr
    assert snapshot(home) == before


def test_row7_no_room_for_the_output_is_refused_before_writing(home, tmpfs, monkeypatch):
    small = tmpfs("1m")
    result = wangp("quantize", "--dtype", "bf16", "--input", home / "ckpts/tiny_bf16.safetensors", "--output",
                   f"{small}/")
    assert result.exit_code == 1, result.output
    assert "disk-full: not enough free space" in result.stderr and "quantizing" not in result.stderr
    assert list(small.iterdir()) == []


def test_row7_free_space_needed_is_the_output_size_from_the_header(home, tmp_path, monkeypatch):
    import shutil
    from types import SimpleNamespace

    from wangp_cli.quantize.quantizer import output_size, plan_output
    from wangp_cli.quantize.safetensors_io import read_header

    source = home / "ckpts/tiny_bf16.safetensors"
    _, entries, metadata = read_header(source)
    needed = output_size(plan_output(entries, metadata, "bf16"))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10**12, used=0, free=1000))
    with pytest.raises(WangpError) as error:
        quantize_file(source, tmp_path / "out" / "q.safetensors", "bf16")
    assert error.value.code == "disk-full"
    assert f"for 'q.safetensors': needs {needed:,} bytes, 1,000 free" in error.value.message
    assert not (tmp_path / "out").exists()


def test_row18_symlinks_inside_the_home_are_followed_and_documented(home, tmp_path):
    other = tmp_path / "other-disk"
    other.mkdir()
    good_file(other / "o_bf16.safetensors")
    (home / "ckpts" / "link").symlink_to(other)
    definition = write_definition(home, "t2v_link", ["ckpts/link/o_bf16.safetensors"])
    result = wangp("--home", home, "quantize", "t2v_link", "--dtype", "bf16", "--target", "july")
    assert result.exit_code == 0, result.output
    assert (other / "o_quanto_bf16_int8.safetensors").is_file()  # written through the link, next to its source
    assert json.loads(definition.read_text())["model"]["URLs"][-1] == "ckpts/link/o_quanto_bf16_int8.safetensors"
    docs = (REPO / "docs" / "quantize.md").read_text(encoding="utf-8")
    assert "Symbolic links inside the home are followed" in docs


def test_row26_a_listed_quanto_variant_is_skipped_unless_force(home):
    url = "https://huggingface.co/me/r/resolve/main/tiny_quanto_bf16_int8.safetensors"
    definition = write_definition(home, "t2v_listed", ["ckpts/tiny_bf16.safetensors", url])
    before = snapshot(home)
    for extra in ([], ["--dry-run"]):
        result = wangp("--home", home, "quantize", "t2v_listed", "--dtype", "bf16", *extra)
        assert result.exit_code == 0, result.output
        assert "t2v_listed: skipped, already has a quanto bf16 file" in result.stderr and "--force" in result.stderr
        assert "would write" not in result.stdout
    assert snapshot(home) == before
    result = wangp("--home", home, "quantize", "t2v_listed", "--dtype", "bf16", "--force")
    assert result.exit_code == 0, result.output
    assert f"t2v_listed: created {OUTPUT}" in result.stdout and "URLs updated" not in result.stdout
    assert json.loads(definition.read_text())["model"]["URLs"] == ["ckpts/tiny_bf16.safetensors", url]
    local = write_definition(home, "t2v_local", ["ckpts/tiny_bf16.safetensors", OUTPUT])
    text = local.read_text()
    result = wangp("--home", home, "quantize", "t2v_local", "--dtype", "bf16", "--force")
    assert result.exit_code == 0 and "URLs updated" not in result.stdout and local.read_text() == text


def test_row27_batch_goes_on_after_a_refusal(home, tmp_path):
    outside = tmp_path / "abs_bf16.safetensors"
    good_file(outside)
    write_definition(home, "abs", [str(outside)])
    write_definition(home, "t2v_gone", ["ckpts/gone_bf16.safetensors"])
    result = wangp("--home", home, "quantize", "--dtype", "bf16", "--target", "july")
    assert result.exit_code == 1, result.output
    assert f"t2v_tiny: created {OUTPUT}" in result.stdout
    assert "error: abs: refused, path" in result.stderr and "is outside the home folder" in result.stderr
    assert "error: missing: t2v_gone: refused, the local file ckpts/gone_bf16.safetensors is missing" in result.stderr
    assert "quantizing abs" not in result.stderr and "quantizing t2v_gone" not in result.stderr
    assert "quantize: 1 created, 2 refused" in result.stderr
    assert not (tmp_path / "abs_quanto_bf16_int8.safetensors").exists()
    jobs = {job["id"]: job for job in json.loads(wangp("--home", home, "quantize", "--dtype", "bf16", "-f",
                                                       "json").stdout)["jobs"]}
    assert {k: v["status"] for k, v in jobs.items()} == {"abs": "refused", "t2v_gone": "refused", "t2v_tiny": "skipped"}


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
@pytest.mark.parametrize("args, output", [(["t2v_tiny"], OUTPUT),
                                          (["--input", "ckpts/tiny_bf16.safetensors", "-o", "ckpts/x.safetensors"],
                                           "ckpts/x.safetensors")], ids=["id", "input"])
def test_row31_outputs_get_the_umask_mode(home, monkeypatch, umask, mode, args, output):
    monkeypatch.chdir(home)
    previous = os.umask(umask)
    try:
        assert wangp("--home", home, "quantize", "--dtype", "bf16", *args).exit_code == 0
    finally:
        os.umask(previous)
    assert (home / output).stat().st_mode & 0o777 == mode


def test_row53_output_without_input_is_a_usage_error(home):
    before = snapshot(home)
    result = wangp("--home", home, "quantize", "--dtype", "bf16", "--output", home / "x.safetensors")
    assert result.exit_code == 2
    assert "conflicting options: --output needs --input" in result.stderr and result.stdout == ""
    assert snapshot(home) == before


def test_row54_output_folder_and_existing_outputs(home, tmp_path):
    source = home / "ckpts/tiny_bf16.safetensors"
    folder = tmp_path / "out"
    folder.mkdir()
    result = wangp("quantize", "--dtype", "bf16", "--input", source, "--output", folder)
    assert result.exit_code == 0, result.output
    made = folder / "tiny_quanto_bf16_int8.safetensors"
    assert made.is_file() and f"created {made}" in result.stdout
    stamp = made.stat().st_mtime_ns
    again = wangp("quantize", "--dtype", "bf16", "--input", source, "--output", made)
    assert again.exit_code == 0 and f"exists {made}" in again.stdout and made.stat().st_mtime_ns == stamp
    notes = tmp_path / "notes.safetensors"
    notes.write_text("my notes")
    refused = wangp("quantize", "--dtype", "bf16", "--input", source, "--output", notes)
    assert refused.exit_code == 1 and "already exists and is not a quanto checkpoint" in refused.stderr
    assert notes.read_text() == "my notes"
    forced = wangp("quantize", "--dtype", "bf16", "--input", source, "--output", notes, "--force")
    assert forced.exit_code == 0 and split(notes)[0]["__metadata__"]["quantization_format"] == "quanto"
    same = wangp("quantize", "--dtype", "bf16", "--input", source, "--output", source, "--force")
    assert same.exit_code == 1 and "is the source file itself" in same.stderr


def test_row56_inspect_text_is_in_words(home):
    result = wangp("inspect", home / "ckpts/tiny_bf16.safetensors")
    assert result.exit_code == 0
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    count = len(tiny_wan_state(layers=5, dim=16))
    assert lines["dtypes"] == f"BF16 ×{count}" and lines["tensors"] == str(count)
    assert lines["quantized"] == "no" and lines["quantization_format"] == "-" and lines["towers"] == "blocks"
    assert lines["config"] == '{"dim": 16}'
    for repr_text in ("None", "False", "True", "{'", "['"):
        assert repr_text not in result.stdout


def test_row57_a_shared_source_is_quantized_once(home):
    for name in ("t2v_b", "t2v_c"):
        write_definition(home, name, ["ckpts/tiny_bf16.safetensors"])
    dry = wangp("--home", home, "quantize", "--dtype", "bf16", "--dry-run", "--target", "july")
    assert "t2v_c: would write ckpts/tiny_quanto_bf16_int8.safetensors from ckpts/tiny_bf16.safetensors " \
           "(made once, for t2v_b)" in dry.stdout
    result = wangp("--home", home, "quantize", "--dtype", "bf16", "--target", "july")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("created") == 1 and result.stdout.count(f"exists {OUTPUT}") == 2
    assert "quantize: 1 created, 2 already there" in result.stderr and result.stderr.count("quantizing") == 1
    for name in ("t2v_tiny", "t2v_b", "t2v_c"):
        assert json.loads((home / "finetunes" / f"{name}.json").read_text())["model"]["URLs"][-1] == OUTPUT
    assert not lock_path(home / OUTPUT).exists()


def test_row57_a_second_run_waits_for_the_first_then_finds_the_output(home, tmp_path):
    output = home / OUTPUT
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    errors = tmp_path / "stderr.txt"
    with output_lock(output), open(errors, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "wangp_cli", "--home", str(home), "quantize", "t2v_tiny",
                                    "--dtype", "bf16"], env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        deadline = time.time() + 60
        while time.time() < deadline and process.poll() is None and "waiting:" not in errors.read_text():
            time.sleep(0.05)
        quantize_file(home / "ckpts/tiny_bf16.safetensors", output, "bf16")  # the first run's work
    stdout, _ = process.communicate(timeout=120)
    assert process.returncode == 0, errors.read_text()
    assert "waiting: another wangp is making ckpts/tiny_quanto_bf16_int8.safetensors" in errors.read_text()
    assert f"t2v_tiny: exists {OUTPUT}; URLs updated" in stdout and "quantizing" not in errors.read_text()
    assert not lock_path(output).exists()


def test_the_lock_is_held_while_working_and_removed_after(tmp_path):
    output = tmp_path / "x.safetensors"
    with output_lock(output):
        assert lock_path(output).exists()
    assert not lock_path(output).exists()
    with output_lock(output), pytest.raises(BlockingIOError):
        import fcntl

        handle = os.open(lock_path(output), os.O_RDWR)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(handle)
