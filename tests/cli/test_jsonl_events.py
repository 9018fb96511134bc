"""``--format jsonl`` of quantize and generate (one video, and a manifest), real runs in a subprocess: every stdout
line is an event the shipped JSON Schema accepts (validated with jsonschema), stages and steps come in order, and
the final ``result`` equals what ``--format json`` prints for the same work (and the video's own sidecar)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conftest import REPO_ROOT, subprocess_env

SCHEMA_FILE = REPO_ROOT / "wangp_cli/core/data/events.schema.json"
SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
SEQ = ["--pipeline-arg", "max_sequence_length=16"]
STAGES = ["download", "load", "encode", "denoise", "decode", "save"]


def wangp(*args, cwd=None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "wangp_cli", *map(str, args)], capture_output=True, text=True,
                            env=subprocess_env(), cwd=cwd, timeout=300)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result


def events_of(stdout: str, command: str) -> list[dict]:
    """Every stdout line, strict JSON, valid against the schema; seq 1, 2, ...; start first, result/error last."""
    validator = jsonschema.Draft202012Validator(SCHEMA)
    events = []
    for line in stdout.splitlines():
        event = json.loads(line, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
        errors = [e.message for e in validator.iter_errors(event)]
        assert not errors, (event, errors)
        events.append(event)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert {e["command"] for e in events} == {command}
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    assert events[0]["event"] == "start" and events[-1]["event"] in ("result", "error")
    assert [e["event"] for e in events].count("result") + [e["event"] for e in events].count("error") == 1
    return events


def stages(events: list[dict], job=None) -> list[tuple[str, str]]:
    return [(e["event"], e["name"]) for e in events
            if e["event"] in ("stage_start", "stage_end") and e.get("job") == job]


def paired(names: list[str]) -> list[tuple[str, str]]:
    return [pair for name in names for pair in (("stage_start", name), ("stage_end", name))]


# -- the schema itself -------------------------------------------------------------------------------------------


def test_shipped_schema_is_valid_and_documented():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    docs = (REPO_ROOT / "docs/events.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", docs, flags=re.S)
    assert SCHEMA in [json.loads(block) for block in blocks if '"$schema"' in block]  # docs show the schema shipped
    assert set(SCHEMA["properties"]["event"]["enum"]) == {ref["$ref"].split("/")[-1] for ref in SCHEMA["oneOf"]}
    from wangp_cli.core.events import EVENT_TYPES, SCHEMA as VERSION

    assert set(EVENT_TYPES) == set(SCHEMA["properties"]["event"]["enum"])
    assert SCHEMA["properties"]["schema"]["const"] == VERSION
    validator = jsonschema.Draft202012Validator(SCHEMA)
    common = {"schema": VERSION, "seq": 1, "time": 1.5, "command": "generate"}
    assert validator.is_valid({**common, "event": "step", "n": 1, "total": 2})
    assert not validator.is_valid({**common, "event": "step", "n": 0, "total": 2})  # steps count from 1
    assert not validator.is_valid({**common, "event": "step", "n": 1, "total": 2, "extra": 1})  # no unknown field
    assert not validator.is_valid({**common, "event": "bytes", "what": "x", "done": 1})  # total: null, not absent


# -- quantize ----------------------------------------------------------------------------------------------------


def _tiny_checkpoint(path: Path, tensors: int = 24) -> int:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    state = {f"blocks.{i}.ffn.0.weight": torch.randn(64, 64, generator=generator).to(torch.bfloat16)
             for i in range(tensors)}
    state["head.head.bias"] = torch.randn(64, generator=generator).to(torch.bfloat16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return len(state)


def test_quantize_jsonl_stages_tensors_and_result(tmp_path):
    pytest.importorskip("optimum.quanto")
    first, second = tmp_path / "a", tmp_path / "b"
    _tiny_checkpoint(first / "tiny_bf16.safetensors")
    _tiny_checkpoint(second / "tiny_bf16.safetensors")
    args = ["quantize", "--input", "tiny_bf16.safetensors", "--dtype", "bf16"]
    streamed = wangp(*args, "--format", "jsonl", cwd=first)
    assert streamed.returncode == 0, streamed.stderr
    events = events_of(streamed.stdout, "quantize")
    job = "tiny_bf16.safetensors"
    assert stages(events, job) == paired(["read", "quantize", "write"])
    tensors = [e for e in events if e["event"] == "tensor"]
    from safetensors import safe_open

    with safe_open(str(first / "tiny_quanto_bf16_int8.safetensors"), "pt") as handle:  # the file written, read back
        written = len(list(handle.keys()))
    assert {e["total"] for e in tensors} == {written} and tensors[-1]["n"] == written
    assert [e["n"] for e in tensors] == sorted({e["n"] for e in tensors}) and tensors[0]["n"] == 1
    assert tensors[-1]["name"] in {"head.head.bias"} | {f"blocks.{i}.ffn.0.weight._scale" for i in range(24)}
    kinds = [e["event"] for e in events]
    assert kinds.index("job_start") < kinds.index("tensor") < kinds.index("job_done") < kinds.index("result")
    done = next(e for e in events if e["event"] == "job_done")
    assert done["status"] == "created" and done["output"] == "tiny_quanto_bf16_int8.safetensors"

    printed = wangp(*args, "--format", "json", cwd=second)
    assert printed.returncode == 0, printed.stderr
    assert events[-1]["record"] == json.loads(printed.stdout)
    assert done["record"] == events[-1]["record"]["jobs"][0]


def test_quantize_jsonl_error_event(tmp_path):
    result = wangp("quantize", "--input", tmp_path / "absent.safetensors", "--dtype", "bf16", "--format", "jsonl")
    assert result.returncode == 1
    events = events_of(result.stdout, "quantize")
    assert [e["event"] for e in events] == ["start", "error"]
    error = events[-1]
    assert error["code"] == "missing" and error["exit"] == 1 and "does not exist" in error["message"]
    assert f"error: missing: {error['message']}" in result.stderr  # the human error stays on stderr


# -- generate ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from wangp_cli.generate import tiny

    return tiny.make_home(tmp_path_factory.mktemp("jsonl") / "home", "t2v")


VOLATILE = ("path", "sidecar", "seconds", "peak_memory")  # where and how fast: not the same from run to run


def steady(record: dict, folder: Path | None = None) -> dict:
    """A record without what differs between two runs of the same work (times, the output folder)."""
    kept = {key: value for key, value in record.items() if key not in VOLATILE}
    if "timings" in kept:
        kept["timings"] = sorted(kept["timings"])
    if "step_seconds" in kept:
        kept["step_seconds"] = len(kept["step_seconds"])
    if isinstance(kept.get("settings"), dict):
        kept["settings"] = {k: v for k, v in kept["settings"].items()
                            if k not in ("generation_time", "creation_timestamp", "creation_date")}
    if "jobs" in kept:
        kept["jobs"] = [steady(job) for job in kept["jobs"]]
    if folder is not None and "results" in kept:
        kept["results"] = str(Path(kept["results"]).relative_to(folder))
    return kept


def test_generate_jsonl_stages_steps_and_the_json_record(tiny_home, tmp_path):
    args = ["--home", tiny_home.root, "generate", "-m", tiny_home.model_id, "--prompt", "a cat", "--frames", 5,
            "--seed", 3, "--steps", 3, *SEQ]
    streamed = wangp(*args, "-o", tmp_path / "streamed.mp4", "--format", "jsonl")
    assert streamed.returncode == 0, streamed.stderr
    events = events_of(streamed.stdout, "generate")
    assert events[0]["args"]["finetune"] == tiny_home.model_id and events[0]["args"]["steps"] == 3
    assert stages(events) == paired(STAGES)
    steps = [e for e in events if e["event"] == "step"]
    assert [(e["n"], e["total"]) for e in steps] == [(1, 3), (2, 3), (3, 3)]
    kinds = [(e["event"], e.get("name")) for e in events]
    assert kinds.index(("stage_start", "denoise")) < events.index(steps[0])
    assert events.index(steps[-1]) < kinds.index(("stage_end", "denoise")) < kinds.index(("stage_start", "decode"))
    record = events[-1]["record"]
    assert record["path"] == str(tmp_path / "streamed.mp4") and Path(record["path"]).is_file()
    ends = {e["name"]: e["seconds"] for e in events if e["event"] == "stage_end"}
    for name in ("download", "load", "decode", "save"):
        assert ends[name] == record["timings"][name]  # the record's own numbers
    for name in ("encode", "denoise"):  # timed as the next stage begins: within a millisecond or so
        assert ends[name] == pytest.approx(record["timings"][name], abs=0.02)
    sidecar = json.loads(Path(record["sidecar"]).read_text(encoding="utf-8"))
    assert record == {**sidecar, "sidecar": record["sidecar"]}  # the same run's sidecar: the same record
    assert "seed 3" not in streamed.stderr  # the text lines stay off, as with --format json

    printed = wangp(*args, "-o", tmp_path / "printed.mp4", "--format", "json")
    assert printed.returncode == 0, printed.stderr
    assert steady(record) == steady(json.loads(printed.stdout))


def test_generate_jsonl_dry_run_and_error(tiny_home):
    args = ["--home", tiny_home.root, "generate", "-m", tiny_home.model_id, "--prompt", "a cat", "--dry-run"]
    events = events_of(wangp(*args, "--format", "jsonl").stdout, "generate")
    assert [e["event"] for e in events] == ["start", "result"]
    assert events[-1]["record"] == json.loads(wangp(*args, "--format", "json").stdout)
    failed = wangp("--home", tiny_home.root, "generate", "-m", "no_such_model", "--format", "jsonl")
    assert failed.returncode == 1
    error = events_of(failed.stdout, "generate")[-1]
    assert error["event"] == "error" and "no_such_model" in error["message"] and error["exit"] == 1
    assert error["message"] in failed.stderr


def test_manifest_jsonl_jobs_and_result(tiny_home, tmp_path):
    manifest = tmp_path / "jobs.jsonl"
    job = {"model": tiny_home.model_id, "frames": 5, "num_inference_steps": 2}
    jobs = [{**job, "id": "one", "prompt": "a cat", "seed": 1}, {**job, "id": "two", "prompt": "a dog", "seed": 2},
            {**job, "id": "bad", "prompt": "a fox", "frames": 8}]  # 4k+1 frames: invalid
    manifest.write_text("".join(json.dumps(job) + "\n" for job in jobs), encoding="utf-8")
    args = ["--home", tiny_home.root, "generate", "--manifest", manifest, *SEQ]
    streamed = wangp(*args, "-o", tmp_path / "streamed", "--format", "jsonl")
    assert streamed.returncode == 1, streamed.stderr  # one job is invalid: the work ends, with a result
    events = events_of(streamed.stdout, "generate")
    assert events[-1]["event"] == "result"
    plan = next(e for e in events if e["event"] == "plan")
    assert plan["summary"]["jobs"] == 3 and plan["summary"]["invalid"] == 1
    ends = {e["id"]: e for e in events if e["event"] in ("job_done", "job_failed")}
    assert {key: e["event"] for key, e in ends.items()} == {"one": "job_done", "two": "job_done", "bad": "job_failed"}
    assert ends["bad"]["status"] == "invalid" and "4k+1" in ends["bad"]["error"]
    results = {r["id"]: r for r in map(json.loads, (tmp_path / "streamed/results.jsonl").read_text().splitlines())}
    for job in ("one", "two"):
        assert ends[job]["status"] == "ok" and ends[job]["record"] == results[job]
        assert ends[job]["output"] == str(tmp_path / "streamed" / f"{job}.mp4") and Path(ends[job]["output"]).is_file()
        assert stages(events, job) == paired(STAGES)
        assert [e["n"] for e in events if e["event"] == "step" and e.get("job") == job] == [1, 2]
        start = next(e for e in events if e["event"] == "job_start" and e["id"] == job)
        assert events.index(start) < events.index(ends[job])
    assert not [e for e in events if e["event"] in ("stage_start", "stage_end", "step") and e.get("job") is None]

    printed = wangp(*args, "-o", tmp_path / "printed", "--format", "json")
    assert printed.returncode == 1, printed.stderr
    assert (steady(events[-1]["record"], tmp_path / "streamed")
            == steady(json.loads(printed.stdout), tmp_path / "printed"))
