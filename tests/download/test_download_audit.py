"""`wangp download` rows of the new-user audit (/work/shared/reference/new-user-audit.md), against real loopback
servers (tests/servers.py) and the real CLI in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import sigint_default
from tests.download.conftest import ME
from tests.download.test_download import WANGP, definition, hub_url, make_home, run
from tests.servers import random_bytes, safetensors_bytes

MODEL = "/files/model_bf16.safetensors"


def gets(server, path=None):
    return [r for r in server.requests if r.method == "GET" and (path is None or r.path == path)]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def http_home(tmp_path, url, **model):
    return make_home(tmp_path, {"dl": definition([url], **model)})


# -- rows 8, 6: the target is refused before the first byte --------------------------------------------------


def _directory(home, request):
    (home / "ckpts/model_bf16.safetensors").mkdir()
    return "is a directory"


def _fifo(home, request):
    os.mkfifo(home / "ckpts/model_bf16.safetensors")
    return "not a regular file"


def _read_only(home, request):
    ckpts = home / "ckpts"
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount is the only real refusal
        tmpfs = request.getfixturevalue("tmpfs")
        mount = tmpfs()
        ckpts.rmdir()
        ckpts.symlink_to(mount)
        tmpfs.read_only(mount)
        return "cannot write to"
    ckpts.chmod(0o555)
    request.addfinalizer(lambda: ckpts.chmod(0o755))
    return "cannot write to"


@pytest.mark.parametrize("make_obstacle, reason", [(_directory, "is a directory"), (_fifo, "not a regular file"),
                                                   (_read_only, "read-only file system")],
                         ids=["row8-directory", "fifo", "row6-read-only"])
def test_unusable_target_is_refused_before_the_first_byte(tmp_path, hub_env, http_server, request, make_obstacle,
                                                          reason):
    home = http_home(tmp_path, http_server.url(MODEL))
    expected = make_obstacle(home, request)
    result = run(home, hub_env.env, "download", "dl", "--no-components", check=1)
    assert expected in result.stderr and "ckpts" in result.stderr
    if os.geteuid() == 0 or make_obstacle is not _read_only:
        assert reason in result.stderr
    assert "internal error" not in result.stderr
    assert gets(http_server) == []  # nothing fetched
    assert not list((home / "ckpts").glob(".*wangp-part*"))


# -- row 9: a URL basename over 255 bytes ---------------------------------------------------------------------


def test_url_basename_over_255_bytes_is_refused_before_any_request(tmp_path, hub_env, http_server):
    home = http_home(tmp_path, http_server.url("/" + "a" * 260 + "_bf16.safetensors"))
    for args in (["--dry-run"], []):
        result = run(home, hub_env.env, "download", "dl", "--no-components", *args, check=1)
        assert "longer than 255 bytes" in result.stderr and "E7" in result.stderr
        assert "internal error" not in result.stderr and len(result.stderr.splitlines()) <= 2
    assert http_server.requests == []
    assert list((home / "ckpts").iterdir()) == []


# -- row 16: credentials in URLs ------------------------------------------------------------------------------


def test_url_userinfo_is_sent_as_basic_auth_to_that_host_only(tmp_path, hub_env, http_server, make_http_server):
    data = safetensors_bytes(64 * 1024, seed=50)
    http_server.files["/auth/x_bf16.safetensors"] = data
    other = make_http_server({"/files/y_bf16.safetensors": data})
    http_server.redirects = {"/auth/y_bf16.safetensors": other.url("/files/y_bf16.safetensors")
                             .replace("127.0.0.1", "localhost")}
    base = http_server.url("/auth/").replace("http://", "http://user:secretpass@")
    home = make_home(tmp_path, {"auth": definition([base + "x_bf16.safetensors"],
                                                   preload_URLs=[base + "y_bf16.safetensors"])})
    outputs = [run(home, hub_env.env, "download", "auth", "--no-components", "--dry-run", "-f", "json", check=0)]
    plan = json.loads(outputs[0].stdout)
    assert {f["size"] for f in plan["files"]} == {len(data)}
    outputs.append(run(home, hub_env.env, "download", "auth", "--no-components", "-f", "json", check=0))
    assert (home / "ckpts/x_bf16.safetensors").read_bytes() == data == (home / "ckpts/y_bf16.safetensors").read_bytes()
    sent = {auth for _, path, auth in http_server.authorizations if path.startswith("/auth/")}
    assert sent == {"Basic dXNlcjpzZWNyZXRwYXNz"}  # user:secretpass, on every request to that host
    assert [auth for _, _, auth in other.authorizations] == [None] * 3  # 2 HEAD + 1 GET, never credentials
    outputs.append(run(home, hub_env.env, "download", "auth", "--no-components", check=0))
    for result in outputs:
        assert "secretpass" not in result.stdout + result.stderr
    assert "secretpass" not in "".join(p.read_text(errors="replace") for p in (home / "ckpts").rglob("*.json"))


def test_wrong_userinfo_and_query_tokens_are_never_printed(tmp_path, hub_env, http_server):
    http_server.files["/auth/x_bf16.safetensors"] = safetensors_bytes(4096, seed=51)
    bad = http_server.url("/auth/x_bf16.safetensors").replace("http://", "http://user:wrongpass@")
    token = http_server.url("/files/gone_bf16.safetensors") + "?token=hf_SECRETTOKEN99"
    for url, says in ((bad, "refused the user name and password"), (token, "404")):
        home = http_home(tmp_path / says[:3], url)
        for args in ([], ["-f", "json"], ["--dry-run"]):
            result = run(home, hub_env.env, "download", "dl", "--no-components", *args)
            text = result.stdout + result.stderr
            assert result.returncode == 1 and says in text
            assert "wrongpass" not in text and "SECRETTOKEN" not in text and "hf_SECRET" not in text


# -- row 23: offline JSON -----------------------------------------------------------------------------------


def test_offline_json_prints_the_download_document(tmp_path, hub_env, http_server):
    home = http_home(tmp_path, http_server.url(MODEL))
    online = json.loads(run(home, hub_env.env, "download", "dl", "--no-components", "-f", "json", check=0).stdout)
    offline_env = {**hub_env.env, "HF_HUB_OFFLINE": "1"}
    result = run(home, offline_env, "download", "dl", "--no-components", "-f", "json", check=0)
    document = json.loads(result.stdout)
    assert document["schema"] == online["schema"] == "wangp.download/1"
    assert document["offline"] is True and online["offline"] is False
    assert [f["dest"] for f in document["files"]] == [f["dest"] for f in online["files"]]
    assert {f["status"] for f in document["files"]} == {"present"}
    assert document["summary"] == {"downloaded": 0, "reused": 0, "present": 1}


# -- row 29: a 200 answer that is not the file ----------------------------------------------------------------


@pytest.mark.parametrize("path, serve, says", [
    ("/html/x_bf16.safetensors", None, "HTML page (text/html)"),
    ("/files/j_bf16.safetensors", "application/json", "JSON document (application/json)"),
    ("/files/r_bf16.safetensors", "application/octet-stream", "not a safetensors file (it starts with bytes 5b"),
    ("/files/q_bf16.safetensors?download=1", "application/octet-stream", "not a safetensors file"),
])
def test_an_answer_that_is_not_a_checkpoint_is_refused_on_its_first_bytes(tmp_path, hub_env, http_server, path,
                                                                           serve, says):
    url = http_server.url(path)
    path = path.split("?")[0]
    if serve:
        http_server.files[path] = b"[" + random_bytes(16 << 20, seed=52)  # 16 MiB, not a safetensors file
        http_server.content_types = {path: serve}
        http_server.throttle_bytes_per_second = 8 << 20  # the whole body would take 2 s
    home = http_home(tmp_path, url)
    result = run(home, hub_env.env, "download", "dl", "--no-components", check=1)
    assert says in result.stderr and "login page, a gated repository or a wrong URL" in result.stderr
    assert list((home / "ckpts").iterdir()) == []  # nothing at the final path, no part, no lock
    if serve:  # refused on the first bytes: the connection is dropped long before the end of the body
        assert http_server.bytes_sent(path) < len(http_server.files[path]) // 2


def test_a_json_file_served_as_json_is_fine(tmp_path, hub_env, http_server):
    http_server.content_types = {"/files/config.json": "application/json"}
    home = http_home(tmp_path, http_server.url(MODEL), preload_URLs=[http_server.url("/files/config.json")])
    run(home, hub_env.env, "download", "dl", "--no-components", check=0)
    assert (home / "ckpts/config.json").read_bytes() == http_server.files["/files/config.json"]


def test_a_server_that_announces_too_many_bytes_fails_cleanly(tmp_path, hub_env, http_server):
    http_server.files["/lies/l_bf16.safetensors"] = safetensors_bytes(64 * 1024, seed=53)
    home = http_home(tmp_path, http_server.url("/lies/l_bf16.safetensors"))
    result = run(home, hub_env.env, "download", "dl", "--no-components", check=1)
    assert "announced" in result.stderr and "nothing was kept" in result.stderr
    assert list((home / "ckpts").iterdir()) == []


# -- rows 51, 36, 55: Ctrl-C keeps the partial file; the dry run counts it; no lock stays ----------------------


def _interrupted_download(home, env, server, path):
    """Start a throttled download, SIGINT it once a quarter is on disk; (result, partial file)."""
    content = server.files[path]
    server.throttle_bytes_per_second = len(content) // 4
    process = subprocess.Popen(WANGP + ["--home", str(home), "download", "dl", "--no-components"],
                               env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    part = home / "ckpts" / f".{Path(path).name}.wangp-part"
    deadline = time.time() + 30
    while not (part.exists() and part.stat().st_size >= len(content) // 4) and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    server.throttle_bytes_per_second = None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), part


def test_ctrl_c_keeps_the_partial_file_and_says_how_to_resume(tmp_path, hub_env, http_server):
    content = http_server.files[MODEL]
    home = http_home(tmp_path, http_server.url(MODEL))
    result, part = _interrupted_download(home, hub_env.env, http_server, MODEL)
    assert result.returncode == 130
    assert "interrupted; rerun the same command to resume" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    kept = part.stat().st_size
    assert 0 < kept < len(content) and not (home / "ckpts/model_bf16.safetensors").exists()
    assert leftovers(home / "ckpts") == [part.name, part.name + ".json"]  # no lock file
    http_server.clear_requests()
    run(home, hub_env.env, "download", "dl", "--no-components", check=0)
    assert (home / "ckpts/model_bf16.safetensors").read_bytes() == content
    assert [r.range for r in gets(http_server)] == [f"bytes={kept}-"]
    assert leftovers(home / "ckpts") == []  # row 55: no part, metadata or lock after success


def test_dry_run_counts_the_bytes_already_in_the_partial_file(tmp_path, hub_env, http_server):
    content = http_server.files[MODEL]
    home = http_home(tmp_path, http_server.url(MODEL))
    _, part = _interrupted_download(home, hub_env.env, http_server, MODEL)
    kept = part.stat().st_size
    plan = json.loads(run(home, hub_env.env, "download", "dl", "--no-components", "--dry-run", "-f", "json",
                          check=0).stdout)
    assert plan["summary"]["missing_bytes"] == len(content) - kept
    assert plan["files"][0]["partial_bytes"] == kept and plan["files"][0]["state"] == "partial"
    text = run(home, hub_env.env, "download", "dl", "--no-components", "--dry-run", check=0).stdout
    assert f"{len(content) - kept:,} bytes to fetch of {len(content):,}" in text
    assert f"partial ({kept:,} here)" in text


def test_stale_locks_and_orphaned_metadata_are_swept(tmp_path, hub_env, http_server):
    home = http_home(tmp_path, http_server.url(MODEL))
    ckpts = home / "ckpts"
    for name in (".model_bf16.safetensors.wangp-lock", ".old_bf16.safetensors.wangp-lock",
                 ".old_bf16.safetensors.wangp-part.json"):
        (ckpts / name).write_text("{}")
    (ckpts / ".other_bf16.safetensors.wangp-part").write_bytes(b"resumable")  # kept: another file's part
    run(home, hub_env.env, "download", "dl", "--no-components", check=0)
    assert leftovers(ckpts) == [".other_bf16.safetensors.wangp-part"]
    url = http_server.url("/files/bad_bf16.safetensors")
    http_server.files["/files/bad_bf16.safetensors"] = safetensors_bytes(4096, seed=54)
    home2 = http_home(tmp_path / "2", url, sha256={url: "0" * 64})
    run(home2, hub_env.env, "download", "dl", "--no-components", check=1)
    assert leftovers(home2 / "ckpts") == []


# -- row 37: present files are hashed when their SHA-256 is known --------------------------------------------


def test_present_files_are_hashed_or_marked_size_only(tmp_path, hub_env, http_server):
    content = http_server.files[MODEL]
    url = http_server.url(MODEL)
    digest = hashlib.sha256(content).hexdigest()
    wrong = hashlib.sha256(b"other").hexdigest()
    homes = {name: http_home(tmp_path / name, url, **extra) for name, extra in
             (("plain", {}), ("good", {"sha256": {url: digest}}), ("shabad", {"sha256": {url: wrong}}))}
    for home in homes.values():
        (home / "ckpts/model_bf16.safetensors").write_bytes(content)

    def state(name):
        plan = run(homes[name], hub_env.env, "download", "dl", "--no-components", "--dry-run", "-f", "json", check=0)
        return json.loads(plan.stdout)["files"][0]["state"]

    assert [state(name) for name in homes] == ["present (size only)", "present", "mismatch"]
    assert "present (size only)" in run(homes["plain"], hub_env.env, "download", "dl", "--no-components",
                                        check=0).stderr
    result = run(homes["shabad"], hub_env.env, "download", "dl", "--no-components", check=1)
    assert "does not match its SHA-256" in result.stderr and "SHA-256 mismatch" in result.stderr
    assert (homes["shabad"] / "ckpts/model_bf16.safetensors").read_bytes() == content  # never replaced unverified
    assert leftovers(homes["shabad"] / "ckpts") == []


def test_a_corrupted_present_file_is_replaced_by_a_verified_copy(tmp_path, hub_env, hub_server):
    name = "my_finetune_bf16.safetensors"
    content = hub_server.content(ME, name)
    home = make_home(tmp_path, {"dl": definition([hub_url(ME, name)])})
    flipped = bytearray(content)
    flipped[-1] ^= 0xFF
    (home / "ckpts" / name).write_bytes(bytes(flipped))  # same size, wrong bytes: the Hub's LFS hash tells
    result = run(home, hub_env.env, "download", "dl", "--no-components", check=0)
    assert "does not match its SHA-256" in result.stderr and "downloaded" in result.stderr
    assert (home / "ckpts" / name).read_bytes() == content


# -- row 48: name resolution fails fast ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["hub", "http"])
def test_a_host_that_does_not_resolve_fails_fast_in_one_line(tmp_path, hub_env, kind):
    env = dict(hub_env.env)
    if kind == "hub":
        env["HF_ENDPOINT"] = "http://hub.wangp-test.invalid"
        url = hub_url(ME, "my_finetune_bf16.safetensors")
    else:
        url = "http://files.wangp-test.invalid/x_bf16.safetensors"
    home = make_home(tmp_path, {"dl": definition([url])})
    args = ["download", "dl"] + (["--no-components"] if kind == "http" else [])
    started = time.monotonic()
    result = run(home, env, *args, check=1)
    assert time.monotonic() - started < 5
    assert "does not resolve" in result.stderr and "wangp-test.invalid" in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: download:") and "hint:" in lines[1]
    assert "thrown while requesting" not in result.stderr and "Retrying" not in result.stderr
    started = time.monotonic()
    dry = run(home, env, *args, "--dry-run", check=0)
    assert time.monotonic() - started < 5
    assert "does not resolve" in dry.stderr and "(no network: sizes unknown)" in dry.stdout
    assert "ckpts/x_bf16.safetensors" in dry.stdout or "ckpts/my_finetune_bf16.safetensors" in dry.stdout
    assert "thrown while requesting" not in dry.stderr


# -- row 53: conflicting options -------------------------------------------------------------------------------


def test_ids_and_all_conflict(tmp_path, hub_env):
    home = make_home(tmp_path, {"dl": definition(["ckpts/x_bf16.safetensors"])})
    result = run(home, hub_env.env, "download", "dl", "--all", "--dry-run", check=2)
    assert "conflicting options" in result.stderr
