"""``wangp download --format jsonl`` against a real HTTP server on loopback, in a subprocess: every line is an
event that the shipped JSON Schema (wangp_cli/core/data/events.schema.json) accepts, bytes events are rate-limited
and reach each file's size, and the final ``result`` is the document ``--format json`` prints for the same work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_jsonl_events import events_of as check_events

REPO = Path(__file__).resolve().parents[2]
BIG, SMALL = "/files/model_bf16.safetensors", "/deep/path/weights.bin"  # 2 MiB and 256 KiB (tests/download/conftest)


def make_home(root: Path, urls: list[str], preload: list[str]) -> Path:
    for folder in ("finetunes", "ckpts", "settings"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    definition = {"model": {"name": "events", "architecture": "t2v_1.3B", "description": "", "URLs": urls,
                            "preload_URLs": preload}, "seed": -1}
    (root / "finetunes" / "t2v_events.json").write_text(json.dumps(definition, indent=4), encoding="utf-8")
    return root


def wangp(home: Path, *args) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(home), "WANGP_DOWNLOAD_BACKOFF": "0",
           "NO_PROXY": "127.0.0.1,localhost", "HF_HUB_DISABLE_TELEMETRY": "1"}
    result = subprocess.run([sys.executable, "-m", "wangp_cli", "--home", str(home), *args], capture_output=True,
                            text=True, env=env, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    return result


def events_of(stdout: str) -> list[dict]:
    """Every stdout line parsed (strict JSON), checked against the schema, in order (tests/cli's checker)."""
    return check_events(stdout, "download")


@pytest.fixture
def served(make_http_server):
    from tests.download.conftest import HTTP_FILES

    server = make_http_server(HTTP_FILES)
    server.throttle_bytes_per_second = 2 * 1024 * 1024  # the big file takes about a second per connection
    return server


def test_jsonl_download_streams_bytes_and_ends_with_the_json_document(tmp_path, served):
    urls, preload = [served.url(BIG)], [served.url(SMALL)]
    args = ["download", "t2v_events", "--no-components", "--target", "july", "--jobs", "2"]
    jsonl_home, json_home = make_home(tmp_path / "a", urls, preload), make_home(tmp_path / "b", urls, preload)

    streamed = wangp(jsonl_home, *args, "--format", "jsonl")
    assert streamed.returncode == 0, streamed.stderr
    events = events_of(streamed.stdout)
    assert events[0]["event"] == "start" and events[0]["args"]["model_ids"] == ["t2v_events"]
    assert [(e["event"], e.get("name")) for e in events if e["event"] in ("stage_start", "stage_end")] == [
        ("stage_start", "plan"), ("stage_end", "plan"), ("stage_start", "transfer"), ("stage_end", "transfer")]
    plan = next(e for e in events if e["event"] == "plan")
    assert plan["summary"]["missing"] == 2
    assert plan["summary"]["missing_bytes"] == len(served.files[BIG]) + len(served.files[SMALL])

    sizes = {"ckpts/model_bf16.safetensors": len(served.files[BIG]), "ckpts/weights.bin": len(served.files[SMALL])}
    done = {e["dest"]: e for e in events if e["event"] == "file_done"}
    assert set(done) == set(sizes)
    for dest, size in sizes.items():
        assert (jsonl_home / dest).read_bytes() == served.files[BIG if "model" in dest else SMALL]
        progress = [e for e in events if e["event"] == "bytes" and e["what"] == dest]
        assert all(e["total"] == size for e in progress)
        counts = [e["done"] for e in progress]
        assert counts == sorted(counts) and counts[-1] == size  # grows, and reaches the size
        assert len(counts) == len(set(counts))  # no repeated line
        assert done[dest]["size"] == size and done[dest]["status"] == "downloaded"
        # at most about 10 a second (plus the first and the last): a 20 GB file does not print millions of lines
        assert len(progress) <= 10 * done[dest]["seconds"] + 3, (len(progress), done[dest]["seconds"])
        assert events.index(progress[-1]) < events.index(done[dest])
    big = [e for e in events if e["event"] == "bytes" and e["what"] == "ckpts/model_bf16.safetensors"]
    assert len(big) >= 3  # a second of transfer shows in between
    assert events[-1]["event"] == "result"

    printed = wangp(json_home, *args, "--format", "json")
    assert printed.returncode == 0, printed.stderr
    assert events[-1]["record"] == json.loads(printed.stdout)
    assert events[-1]["record"]["schema"] == "wangp.download/1"


def test_jsonl_dry_run_gives_the_plan_as_result(tmp_path, served):
    home = make_home(tmp_path / "home", [served.url(BIG)], [served.url(SMALL)])
    args = ["download", "t2v_events", "--no-components", "--target", "july", "--dry-run"]
    events = events_of(wangp(home, *args, "--format", "jsonl").stdout)
    assert [e["event"] for e in events] == ["start", "stage_start", "stage_end", "result"]
    assert events[-1]["record"] == json.loads(wangp(home, *args, "--format", "json").stdout)
    assert events[-1]["record"]["schema"] == "wangp.download-plan/1"
    assert not list((home / "ckpts").iterdir())


def test_jsonl_download_failure_ends_with_an_error_event(tmp_path, served):
    home = make_home(tmp_path / "home", [served.url("/files/absent.safetensors")], [])
    result = wangp(home, "download", "t2v_events", "--no-components", "--target", "july", "--format", "jsonl")
    assert result.returncode == 1
    events = events_of(result.stdout)
    last = events[-1]
    assert last["event"] == "error" and last["exit"] == 1 and "404" in last["message"], last
    assert f"error: {last['code']}: {last['message']}" in result.stderr  # the human line stays on stderr


def test_jsonl_transfer_failure_ends_with_an_error_event(tmp_path, served):
    home = make_home(tmp_path / "home", [served.url(BIG)], [])
    served.ranges, served.truncate_at = False, {BIG: 1000}  # every answer breaks off: no resume possible
    result = wangp(home, "download", "t2v_events", "--no-components", "--target", "july", "--format", "jsonl")
    assert result.returncode == 1
    events = events_of(result.stdout)
    kinds = [e["event"] for e in events]
    assert kinds[-3:] == ["bytes", "stage_end", "error"] and "file_done" not in kinds and "result" not in kinds
    assert "failed after" in events[-1]["message"] and events[-1]["message"] in result.stderr


def _streaming(home: Path, *args, **kwargs) -> subprocess.Popen:
    from tests.conftest import sigint_default

    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(home), "WANGP_DOWNLOAD_BACKOFF": "0",
           "NO_PROXY": "127.0.0.1,localhost"}
    return subprocess.Popen([sys.executable, "-m", "wangp_cli", "--home", str(home), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=sigint_default, **kwargs)


def _until_bytes(process: subprocess.Popen, done: int = 1) -> list[str]:
    """The lines up to the first ``bytes`` event with at least ``done`` bytes (the transfer reports by MiB)."""
    lines = []
    while not lines or json.loads(lines[-1])["event"] != "bytes" or json.loads(lines[-1])["done"] < done:
        line = process.stdout.readline()
        assert line, process.stderr.read()
        lines.append(line)
    return lines


def test_jsonl_ctrl_c_ends_with_an_interrupted_error_event(tmp_path, served):
    import signal

    home = make_home(tmp_path / "home", [served.url(BIG)], [])
    served.throttle_bytes_per_second = 512 * 1024  # four seconds: Ctrl-C comes after the first MiB, before the end
    process = _streaming(home, "download", "t2v_events", "--no-components", "--target", "july", "--format", "jsonl")
    lines = _until_bytes(process)
    process.send_signal(signal.SIGINT)
    rest, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    events = events_of("".join(lines) + rest)
    assert events[-1]["event"] == "error" and events[-1]["code"] == "interrupted" and events[-1]["exit"] == 130
    assert "resume" in events[-1]["hint"] and "interrupted" in stderr and "Traceback" not in stderr
    assert list((home / "ckpts").glob(".*.wangp-part"))  # kept for the next run


def test_jsonl_reader_going_away_stops_the_download(tmp_path, served):
    home = make_home(tmp_path / "home", [served.url(BIG)], [])
    served.throttle_bytes_per_second = 512 * 1024
    process = _streaming(home, "download", "t2v_events", "--no-components", "--target", "july", "--format", "jsonl")
    _until_bytes(process, done=0)  # the transfer's first event
    process.stdout.close()  # as `| head -6` does: the next event, at the first MiB, finds no reader
    stderr = process.communicate(timeout=60)[1]
    assert process.returncode == 141, stderr  # as any command whose reader went away (not a retried network error)
    assert "Traceback" not in stderr and "failed after" not in stderr
    assert not (home / "ckpts/model_bf16.safetensors").exists()


def test_bytes_events_are_rate_limited(tmp_path, make_http_server):
    import os

    content = os.urandom(48 << 20)  # 48 MiB over loopback, unthrottled: 48 reads of 1 MiB or more in well under 5 s
    server = make_http_server({"/big.bin": content})
    home = make_home(tmp_path / "home", [server.url("/big.bin")], [])
    result = wangp(home, "download", "t2v_events", "--no-components", "--target", "july", "--connections", "4",
                   "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    events = events_of(result.stdout)
    progress = [e for e in events if e["event"] == "bytes"]
    seconds = next(e for e in events if e["event"] == "file_done")["seconds"]
    assert [e["done"] for e in progress] == sorted(e["done"] for e in progress)  # four connections, one order
    assert progress[-1]["done"] == progress[-1]["total"] == len(content)
    assert len(progress) <= 10 * seconds + 3, (len(progress), seconds)
    assert len(progress) < 48  # fewer lines than reads: the rest were left out
    assert (home / "ckpts/big.bin").read_bytes() == content
