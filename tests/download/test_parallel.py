"""Parallel HTTP Range downloads (wangp_cli/download/transfer.py, ranges.py) against real loopback servers.

The per-connection throttle of tests/servers.py (each response gets ``throttle_bytes_per_second``) is what a
mirror's per-connection limit looks like: N connections should give about N times the throughput. Files are a few
MiB; ``connections`` is passed to fetch() (the CLI's ``--connections`` calls it the same way), or
WANGP_DOWNLOAD_CONNECTIONS for the CLI run.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import sigint_default, subprocess_env
from tests.download.conftest import WAN
from tests.download.test_download import definition, hub_url, make_home, run
from tests.servers import random_bytes, safetensors_bytes
from wangp_cli.core.jsonio import json_text
from wangp_cli.download.ranges import (
    CHUNK, Piece, PieceMap, default_connections, plan_pieces, read_partial, retry_after,
)
from wangp_cli.download.transfer import (
    DownloadCancelled, DownloadError, RejectedError, Remote, fetch, part_paths, resume_offset,
)

PATH = "/big/model.bin"
SIZE = 8 << 20


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("WANGP_DOWNLOAD_BACKOFF", "0")


@pytest.fixture
def data():
    return random_bytes(SIZE, seed=60)


def remote(server, data, path=PATH, *, sha=True, size=None) -> Remote:
    """What the plan gives fetch(): size, ETag as the version, the SHA-256 when known."""
    url = server.url(path)
    return Remote(url, {"User-Agent": "wangp", "Accept-Encoding": "identity"}, len(data) if size is None else size,
                  hashlib.sha256(data).hexdigest() if sha else None,
                  '"' + hashlib.sha256(data).hexdigest()[:32] + '"', source=url)


def gets(server):
    return [r for r in server.responses if r.method == "GET"]


def restart_log(server) -> int:
    """Unthrottle and clear the log once every response so far is logged (an aborted one is logged when the
    server's next write fails); returns the GET body bytes sent until now."""
    sent = server.bytes_sent()  # waits for the responses still going
    server.throttle_bytes_per_second = None
    server.clear_requests()
    return sent


def recorded(dest: Path) -> list[list[int]]:
    """The ``pieces`` ([start, end, done]) a partial file's metadata records now."""
    return json.loads(part_paths(dest)[1].read_text())["pieces"]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- the data: connection table, pieces, Retry-After --------------------------------------------------------


def test_connection_table_and_environment_override(monkeypatch):
    assert [default_connections(s) for s in (None, 0, 10 << 20, 64 << 20, 300 << 20, 1 << 30, 20 << 30)] == [
        1, 1, 1, 2, 4, 8, 8]
    monkeypatch.setenv("WANGP_DOWNLOAD_CONNECTIONS", "3")
    assert default_connections(None) == default_connections(1 << 30) == 3


def test_pieces_cover_the_file_in_order_and_split_the_tail():
    size = (1 << 30) + 12345
    pieces = plan_pieces(size, 8)
    assert len(pieces) == 32 and pieces[0].start == 0 and pieces[-1].end == size
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:]))
    assert len(plan_pieces(SIZE, 4)) == 4  # below MIN_PIECE every connection still gets one piece
    assert len(plan_pieces(100, 8)) == 1
    pieces = PieceMap.fresh(SIZE, 2, prefix=3 << 20)  # an old contiguous part: its bytes count as done
    assert [p.done for p in pieces.pieces] == [3 << 20, 0] and pieces.prefix() == 3 << 20
    first, second = pieces.take(), pieces.take()
    assert (first.pos, second.pos) == (3 << 20, 4 << 20) and pieces.take() is None  # 1 MiB left: no split
    pieces = PieceMap(160 << 20, [Piece(0, 80 << 20, done=4 << 20), Piece(80 << 20, 160 << 20)])
    first, second = pieces.take(), pieces.take()
    tail = pieces.take()  # nothing pending: the piece in flight with the most left is split in two
    assert (second.end, tail.start, tail.end) == (120 << 20, 120 << 20, 160 << 20)
    assert pieces.take().start == (80 << 20) - (76 << 20) // 2  # then the other one, halving its 76 MiB left
    assert pieces.take() is None  # under 2 x SPLIT_MIN left anywhere
    assert [(p.start, p.end) for p in pieces.pieces][-1] == (120 << 20, 160 << 20)


def test_retry_after_seconds_and_http_date(monkeypatch):
    now = time.time()
    assert retry_after("7") == 7.0
    assert retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 30)), now=now) == \
        pytest.approx(30, abs=1)
    assert retry_after("Mon, 01 Jan 2024 00:00:00 GMT") == 0.0  # a date in the past: no wait
    assert retry_after("soon") is None and retry_after(None) is None
    monkeypatch.setenv("WANGP_DOWNLOAD_MAX_WAIT", "5")
    assert retry_after("3600") == 5.0  # capped


# -- (1) N connections give about N times the throughput ------------------------------------------------------


def test_four_throttled_connections_are_about_four_times_one(tmp_path, make_http_server, data):
    server = make_http_server({PATH: data}, throttle_bytes_per_second=4_000_000)  # per connection
    seconds, concurrent = {}, {}
    for connections in (1, 4):
        server.clear_requests()
        dest = tmp_path / str(connections) / "model.bin"
        dest.parent.mkdir()
        started = time.perf_counter()
        fetch(remote(server, data), dest, what="model", connections=connections)
        seconds[connections] = time.perf_counter() - started
        assert dest.read_bytes() == data and leftovers(dest.parent) == ["model.bin"]
        concurrent[connections] = server.max_concurrent
        assert server.bytes_sent() == SIZE  # nothing fetched twice
    assert concurrent == {1: 1, 4: 4}
    assert seconds[1] / seconds[4] >= 3.0, seconds  # ideal 4.0; measured ~3.8 (2.1 s against 0.55 s)


def test_a_hub_file_is_fetched_over_ranges_by_the_cli(tmp_path, hub_env, hub_server):
    name = "tiny_model_bf16.safetensors"
    content = hub_server.content(WAN, name)
    home = make_home(tmp_path, {"t2v_big": definition([hub_url(WAN, name)])})
    hub_server.configure(ranges=True, throttle_bytes_per_second=2_000_000)
    run(home, {**hub_env.env, "WANGP_DOWNLOAD_CONNECTIONS": "3"}, "download", "t2v_big", "--no-components", check=0)
    assert (home / "ckpts" / name).read_bytes() == content
    asked = [r for r in hub_server.responses if r.method == "GET" and r.path.endswith(name)]
    assert len(asked) == 3 and {r.status for r in asked} == {206} and hub_server.max_concurrent == 3
    assert sum(r.bytes_sent for r in asked) == len(content)


# -- (2) SIGKILL with several ranges in flight, then resume ---------------------------------------------------

_FETCH = """
import sys
from pathlib import Path
from wangp_cli.download.transfer import Remote, fetch
url, size, sha, version, dest, connections = sys.argv[1:]
try:
    fetch(Remote(url, {}, int(size), sha, version, source=url), Path(dest), what="model",
          connections=int(connections))
except KeyboardInterrupt:
    sys.exit(130)
"""


def _start(server, data, dest, connections):
    r = remote(server, data)
    return subprocess.Popen([sys.executable, "-c", _FETCH, r.url, str(r.size), r.sha256, r.version, str(dest),
                             str(connections)], env=subprocess_env(NO_PROXY="127.0.0.1,localhost"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)


def _wait_for_ranges(dest: Path, process, done: int, in_flight: int, timeout: float = 30.0) -> None:
    """Until the metadata records ``done`` bytes with ``in_flight`` pieces begun but not finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            pieces = recorded(dest)
        except (OSError, ValueError, KeyError):
            pieces = []
        started = [p for p in pieces if 0 < p[2] < p[1] - p[0]]
        if sum(p[2] for p in pieces) >= done and len(started) >= in_flight:
            return
        time.sleep(0.02)
    raise AssertionError(f"the download did not get there: {process.communicate()}")


def test_sigkill_with_ranges_in_flight_then_resume_fetches_nothing_twice(tmp_path, make_http_server, data):
    rate, connections = 1_000_000, 4
    server = make_http_server({PATH: data}, throttle_bytes_per_second=rate)
    dest = tmp_path / "model.bin"
    process = _start(server, data, dest, connections)
    try:
        _wait_for_ranges(dest, process, SIZE * 3 // 8, in_flight=3)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    kept = sum(p[2] for p in recorded(dest))
    part, meta, _ = part_paths(dest)
    assert not dest.exists() and part.stat().st_size == SIZE  # preallocated, never a file at the final name
    assert resume_offset(remote(server, data), dest) == kept
    assert len(gets(server)) == connections
    first_run = restart_log(server)
    fetch(remote(server, data), dest, what="model", connections=connections)
    assert dest.read_bytes() == data and leftovers(tmp_path) == ["model.bin"]
    second_run = server.bytes_sent()
    assert second_run == SIZE - kept  # nothing recorded is fetched again
    # The first run's bytes beyond what it recorded: at most the chunk each connection was reading when killed
    # (CHUNK), plus what the server had written into the socket and the client never read -- at most one
    # throttle piece (rate / 20 bytes) per connection, since the server sleeps after each piece.
    slack = connections * (rate // 20)
    assert first_run + second_run <= SIZE + connections * CHUNK + slack, (first_run, kept, second_run)


def test_ctrl_c_stops_every_connection_and_keeps_what_they_wrote(tmp_path, make_http_server, data):
    server = make_http_server({PATH: data}, throttle_bytes_per_second=1_000_000)
    dest = tmp_path / "model.bin"
    process = _start(server, data, dest, 4)
    _wait_for_ranges(dest, process, SIZE // 4, in_flight=2)
    interrupted = time.monotonic()
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 130
    assert time.monotonic() - interrupted < 3  # every connection stops at its next read
    kept = resume_offset(remote(server, data), dest)
    assert kept >= SIZE // 4 and not dest.exists()
    assert leftovers(tmp_path) == [".model.bin.wangp-part", ".model.bin.wangp-part.json"]  # no lock, no temporary
    restart_log(server)
    fetch(remote(server, data), dest, what="model", connections=4)
    assert dest.read_bytes() == data and server.bytes_sent() == SIZE - kept


def test_cancel_event_stops_the_transfer_resumably(tmp_path, make_http_server, data):
    server = make_http_server({PATH: data}, throttle_bytes_per_second=2_000_000)
    dest = tmp_path / "model.bin"
    cancel = threading.Event()
    threading.Timer(0.6, cancel.set).start()
    with pytest.raises(DownloadCancelled):
        fetch(remote(server, data), dest, what="model", connections=4, cancel=cancel)
    kept = resume_offset(remote(server, data), dest)
    assert 0 < kept < SIZE and not dest.exists()
    restart_log(server)
    fetch(remote(server, data), dest, what="model", connections=2)  # another count: the recorded pieces stay
    assert dest.read_bytes() == data and server.bytes_sent() == SIZE - kept


# -- (3) a server without Range support -----------------------------------------------------------------------


def test_no_range_support_falls_back_to_one_connection_on_the_same_request(tmp_path, make_http_server, data):
    server = make_http_server({PATH: data}, ranges=False)
    dest = tmp_path / "model.bin"
    fetch(remote(server, data), dest, what="model", connections=8)
    assert dest.read_bytes() == data and leftovers(tmp_path) == ["model.bin"]
    assert [(r.range, r.status, r.bytes_sent) for r in gets(server)] == [(f"bytes=0-{SIZE // 8 - 1}", 200, SIZE)]


# -- (4) 429 and Retry-After ----------------------------------------------------------------------------------


def test_429_with_retry_after_waits_and_lowers_the_connections(tmp_path, make_http_server, data):
    server = make_http_server({PATH: data}, throttle_bytes_per_second=8_000_000, retry_after="1")
    server.fail[PATH] = [429]  # the very first request
    dest = tmp_path / "model.bin"
    started = time.monotonic()
    fetch(remote(server, data), dest, what="model", connections=4)
    assert dest.read_bytes() == data
    assert time.monotonic() - started >= 1.0  # Retry-After: 1
    assert [r.status for r in gets(server)][0] == 429
    assert server.max_concurrent == 3  # one connection fewer


def test_a_mirror_connection_limit_is_respected(tmp_path, make_http_server, data):
    """The server allows 2 connections and answers the others 429, Retry-After: 2."""
    server = make_http_server({PATH: data}, throttle_bytes_per_second=4_000_000, max_connections=2,
                              retry_after="2")
    dest = tmp_path / "model.bin"
    started = time.monotonic()
    fetch(remote(server, data), dest, what="model", connections=4)
    elapsed = time.monotonic() - started
    assert dest.read_bytes() == data
    assert sum(r.bytes_sent for r in gets(server) if r.status == 206) == SIZE
    statuses = [r.status for r in gets(server)]
    assert statuses.count(429) == 2 and statuses.count(206) == 4  # two connections left; no 429 after that
    assert server.max_concurrent == 2
    # 2 connections at 4 MB/s each take ~1.05 s for the 8 MiB; the next requests waited out the Retry-After
    assert 2.0 <= elapsed < 8.0, elapsed


def test_503_is_retried_after_its_retry_after(tmp_path, make_http_server, data):
    server = make_http_server({PATH: data}, throttle_bytes_per_second=8_000_000, retry_after="1")
    server.fail[PATH] = [503, 503]
    dest = tmp_path / "model.bin"
    started = time.monotonic()
    fetch(remote(server, data), dest, what="model", connections=4)
    assert dest.read_bytes() == data and time.monotonic() - started >= 2.0
    assert server.max_concurrent == 4  # a 503 is not a connection limit


# -- (5) an old contiguous partial file --------------------------------------------------------------------------


def test_an_old_contiguous_part_is_resumed_as_pieces(tmp_path, make_http_server, data):
    server = make_http_server({PATH: data})
    dest = tmp_path / "model.bin"
    part, meta, _ = part_paths(dest)
    kept = 3 * CHUNK + 12345
    part.write_bytes(data[:kept])
    r = remote(server, data)
    meta.write_text(json_text(r.identity, indent=None))  # what the one-connection transfer writes
    assert resume_offset(r, dest) == kept
    fetch(r, dest, what="model", connections=4)
    assert dest.read_bytes() == data
    starts = sorted(int(g.range.split("=")[1].split("-")[0]) for g in gets(server))
    assert starts[0] == kept and server.bytes_sent() == SIZE - kept


def test_a_ranged_part_of_another_version_starts_over(tmp_path, make_http_server, data):
    server = make_http_server({PATH: data})
    dest = tmp_path / "model.bin"
    part, meta, _ = part_paths(dest)
    part.write_bytes(bytes(SIZE))
    stale = {**remote(server, data).identity, "version": '"old"', "pieces": [[0, SIZE, SIZE // 2]]}
    meta.write_text(json.dumps(stale))
    assert resume_offset(remote(server, data), dest) == 0
    assert read_partial(part, meta, remote(server, data).identity) is None
    fetch(remote(server, data), dest, what="model", connections=4)
    assert dest.read_bytes() == data and server.bytes_sent() == SIZE


# -- (6) what is refused: nothing kept ------------------------------------------------------------------------


def test_sha_mismatch_over_ranges_keeps_nothing(tmp_path, make_http_server, data):
    server = make_http_server({PATH: data}, throttle_bytes_per_second=16_000_000)
    flipped = bytearray(data)
    flipped[SIZE * 5 // 8] ^= 0xFF  # inside the third of four pieces
    server.corrupt = {PATH: bytes(flipped)}
    dest = tmp_path / "model.bin"
    with pytest.raises(DownloadError, match="SHA-256 mismatch.*nothing was kept"):
        fetch(remote(server, data), dest, what="model", connections=4)
    assert leftovers(tmp_path) == []
    assert server.max_concurrent == 4


def test_a_range_answer_for_another_size_is_refused(tmp_path, make_http_server, data):
    server = make_http_server({PATH: data})
    dest = tmp_path / "model.bin"
    with pytest.raises(RejectedError, match=f"of {SIZE + 1000:,}.*/{SIZE}'; nothing was kept"):
        fetch(remote(server, data, size=SIZE + 1000), dest, what="model", connections=4)
    assert leftovers(tmp_path) == []


def test_a_login_page_is_refused_on_the_first_range(tmp_path, make_http_server):
    page = random_bytes(4 << 20, seed=61)  # not a safetensors header
    server = make_http_server({"/files/x_bf16.safetensors": page})
    dest = tmp_path / "x_bf16.safetensors"
    with pytest.raises(RejectedError, match="not a safetensors file"):
        fetch(remote(server, page, "/files/x_bf16.safetensors"), dest, what="x", connections=4)
    assert leftovers(tmp_path) == []


def test_a_safetensors_file_over_ranges_and_a_broken_connection(tmp_path, make_http_server):
    content = safetensors_bytes(6 << 20, seed=62)
    path = "/files/y_bf16.safetensors"
    server = make_http_server({path: content}, truncate_at={path: CHUNK + 1000})  # every answer breaks off
    dest = tmp_path / "y_bf16.safetensors"
    fetch(remote(server, content, path), dest, what="y", connections=3)
    assert dest.read_bytes() == content
    assert server.bytes_sent() == len(content)  # what arrived before each break is written, then resumed from
