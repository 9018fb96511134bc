"""The loopback test servers behave as documented (tests/servers.py, tests/download/conftest.py).

Hub half: olah serving local git repos, driven through huggingface_hub 2.4.0 (in-process with ``hub_env``, and
once in a subprocess that only gets environment variables).  HTTP half: the plain ``HttpServer``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import http.client
import json
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

from tests.servers import LoggedRequest, parse_range, random_bytes

WAN = "DeepBeepMeep/Wan2.1"
ME = "me/my-finetune"
DIFFUSERS = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url, method="GET", headers=None, opener=_OPENER):
    """(status, headers, body) without raising on HTTP errors; never uses a proxy."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Hub server (olah)
# ---------------------------------------------------------------------------------------------------------------


def test_hub_download_to_local_dir_with_subfolder(hub_env, hub_server, tmp_path):
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(WAN, "tiny_model_bf16.safetensors", revision="main", local_dir=tmp_path / "out")
    assert open(path, "rb").read() == hub_server.content(WAN, "tiny_model_bf16.safetensors")
    path = hf_hub_download(DIFFUSERS, "diffusion_pytorch_model.safetensors", subfolder="transformer",
                           local_dir=tmp_path / "out")
    assert path == str(tmp_path / "out" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert open(path, "rb").read() == hub_server.content(DIFFUSERS, "transformer/diffusion_pytorch_model.safetensors")
    methods = [(r.method, r.path) for r in hub_server.requests]
    assert methods == [
        ("HEAD", f"/{WAN}/resolve/main/tiny_model_bf16.safetensors"),
        ("GET", f"/{WAN}/resolve/main/tiny_model_bf16.safetensors"),
        ("HEAD", f"/{DIFFUSERS}/resolve/main/transformer/diffusion_pytorch_model.safetensors"),
        ("GET", f"/{DIFFUSERS}/resolve/main/transformer/diffusion_pytorch_model.safetensors"),
    ]


def test_hub_download_into_cache_other_revisions(hub_env, hub_server):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RemoteEntryNotFoundError

    name = "tiny_model_quanto_bf16_int8_map.json"
    main = hf_hub_download(WAN, name)
    dev = hf_hub_download(WAN, name, revision="dev")
    by_sha = hf_hub_download(WAN, name, revision=hub_server.commits[WAN]["dev"])
    by_short_sha = hf_hub_download(WAN, name, revision=hub_server.commits[WAN]["dev"][:8])
    assert main.startswith(str(hub_env.hub_cache / "models--DeepBeepMeep--Wan2.1" / "snapshots"))
    assert f"/snapshots/{hub_server.commits[WAN]['main']}/" in main
    assert f"/snapshots/{hub_server.commits[WAN]['dev']}/" in dev
    assert open(main, "rb").read() == hub_server.content(WAN, name)
    assert open(dev, "rb").read() == open(by_sha, "rb").read() == open(by_short_sha, "rb").read()
    assert open(dev, "rb").read() == hub_server.content(WAN, name, "dev") != hub_server.content(WAN, name)
    assert open(hf_hub_download(WAN, "dev_only.safetensors", revision="dev"), "rb").read() == \
        hub_server.content(WAN, "dev_only.safetensors", "dev")
    with pytest.raises(RemoteEntryNotFoundError):  # deleted on dev
        hf_hub_download(WAN, "raw/plain_weights.dat", revision="dev")


def test_hub_file_metadata_lfs_and_plain(hub_env, hub_server):
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    lfs = hub_server.content(WAN, "tiny_model_bf16.safetensors")
    meta = get_hf_file_metadata(hf_hub_url(WAN, "tiny_model_bf16.safetensors"))
    assert meta.etag == hashlib.sha256(lfs).hexdigest()
    assert meta.size == len(lfs)
    assert meta.commit_hash == hub_server.commits[WAN]["main"]
    assert meta.location == hub_server.url(WAN, "tiny_model_bf16.safetensors")
    assert meta.xet_file_data is None

    plain = hub_server.content(WAN, "raw/plain_weights.dat")
    meta = get_hf_file_metadata(hf_hub_url(WAN, "raw/plain_weights.dat", revision="main"))
    assert (meta.etag, meta.size) == (git_blob_sha1(plain), len(plain))

    meta = get_hf_file_metadata(hf_hub_url(WAN, "tiny_model_quanto_bf16_int8_map.json", revision="dev"))
    assert meta.commit_hash == hub_server.commits[WAN]["dev"]
    assert meta.etag == git_blob_sha1(hub_server.content(WAN, "tiny_model_quanto_bf16_int8_map.json", "dev"))


def test_hub_raw_head_and_get_headers(hub_server):
    data = hub_server.content(WAN, "tiny_model_bf16.safetensors")
    status, headers, body = fetch(hub_server.url(WAN, "tiny_model_bf16.safetensors"), "HEAD")
    assert (status, body) == (200, b"")
    assert headers["content-length"] == str(len(data))
    assert headers["etag"] == hashlib.sha256(data).hexdigest()  # unquoted
    assert headers["x-repo-commit"] == hub_server.commits[WAN]["main"]
    for absent in ("x-linked-etag", "x-linked-size", "location", "accept-ranges", "x-xet-hash"):
        assert headers[absent] is None
    status, headers, body = fetch(hub_server.url(WAN, "tiny_model_bf16.safetensors"))
    assert (status, body) == (200, data)
    assert headers["transfer-encoding"] == "chunked" and headers["content-length"] is None


def test_hub_plain_olah_ignores_range(hub_server):
    data = hub_server.content(WAN, "tiny_model_quanto_bf16_int8.safetensors")
    status, headers, body = fetch(hub_server.url(WAN, "tiny_model_quanto_bf16_int8.safetensors"),
                                  headers={"Range": "bytes=1000-"})
    assert (status, body) == (200, data)
    assert hub_server.responses[-1].bytes_sent == len(data)


def test_hub_ranges_switched_on(hub_server):
    data = hub_server.content(WAN, "tiny_model_quanto_bf16_int8.safetensors")
    url = hub_server.url(WAN, "tiny_model_quanto_bf16_int8.safetensors")
    hub_server.configure(ranges=True)
    status, headers, body = fetch(url, headers={"Range": "bytes=1000-"})
    assert (status, body) == (206, data[1000:])
    assert headers["content-range"] == f"bytes 1000-{len(data) - 1}/{len(data)}"
    assert headers["content-length"] == str(len(data) - 1000)
    assert fetch(url, headers={"Range": "bytes=10-19"})[2] == data[10:20]
    status, headers, _ = fetch(url, headers={"Range": f"bytes={len(data)}-"})
    assert (status, headers["content-range"]) == (416, f"bytes */{len(data)}")
    assert fetch(url, "HEAD")[1]["accept-ranges"] == "bytes"
    assert [(r.status, r.bytes_sent) for r in hub_server.responses] == [
        (206, len(data) - 1000), (206, 10), (416, 0), (200, 0)]


def test_hub_throttle(hub_server):
    data = hub_server.content(ME, "my_finetune_bf16.safetensors")  # 512 KiB
    hub_server.configure(throttle_bytes_per_second=1024 * 1024)
    started = time.monotonic()
    assert fetch(hub_server.url(ME, "my_finetune_bf16.safetensors"))[2] == data
    assert time.monotonic() - started > 0.4


def test_hub_errors(hub_env, hub_server):
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (EntryNotFoundError, RemoteEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    with pytest.raises(RemoteEntryNotFoundError) as missing:
        hf_hub_download(WAN, "nope.safetensors")
    assert isinstance(missing.value, EntryNotFoundError)
    assert missing.value.response.status_code == 404
    with pytest.raises(RemoteEntryNotFoundError):
        get_hf_file_metadata(hf_hub_url(WAN, "nope.safetensors", revision=hub_server.commits[WAN]["main"]))
    with pytest.raises(RepositoryNotFoundError) as no_repo:
        hf_hub_download("DeepBeepMeep/NoSuchRepo", "x.safetensors")
    assert no_repo.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError) as no_revision:  # not RevisionNotFoundError, unlike huggingface.co
        hf_hub_download(WAN, "tiny_model_bf16.safetensors", revision="no-such-branch")
    assert not isinstance(no_revision.value, RevisionNotFoundError)
    status, headers, _ = fetch(hub_server.url(WAN, "nope.safetensors"), "HEAD")
    assert (status, headers["x-error-code"]) == (404, "EntryNotFound")
    assert fetch(hub_server.url(WAN, "nope.safetensors"))[0] == 500  # olah bug on GET; clients HEAD first
    status, headers, _ = fetch(hub_server.url("DeepBeepMeep/NoSuchRepo", "x.json"))
    assert (status, headers["x-error-code"]) == (401, "RepoNotFound")


def test_hub_api(hub_env, hub_server):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    api = HfApi()
    assert api.endpoint == hub_server.endpoint
    assert sorted(api.list_repo_files(DIFFUSERS)) == sorted(hub_server.files[DIFFUSERS]["main"])
    assert ".gitattributes" in api.list_repo_files(DIFFUSERS)
    assert "dev_only.safetensors" in api.list_repo_files(WAN, revision="dev")

    infos = {i.path: i for i in api.get_paths_info(WAN, ["tiny_model_bf16.safetensors", "raw/plain_weights.dat",
                                                         "missing.bin"])}
    assert set(infos) == {"tiny_model_bf16.safetensors", "raw/plain_weights.dat"}  # missing paths left out
    lfs = hub_server.content(WAN, "tiny_model_bf16.safetensors")
    assert infos["tiny_model_bf16.safetensors"].lfs.sha256 == hashlib.sha256(lfs).hexdigest()
    assert infos["tiny_model_bf16.safetensors"].size == len(lfs)
    assert infos["raw/plain_weights.dat"].lfs is None
    assert infos["raw/plain_weights.dat"].blob_id == git_blob_sha1(hub_server.content(WAN, "raw/plain_weights.dat"))

    info = api.model_info(WAN, revision="dev")
    assert info.sha == hub_server.commits[WAN]["dev"]
    assert {s.rfilename for s in info.siblings} == set(hub_server.files[WAN]["dev"])
    assert api.model_info(WAN).sha == hub_server.commits[WAN]["main"]  # thanks to seed_refs
    refs = api.list_repo_refs(WAN)
    assert {b.name: b.target_commit for b in refs.branches} == hub_server.commits[WAN]
    assert api.file_exists(WAN, "tiny_model_bf16.safetensors") and not api.file_exists(WAN, "nope")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("DeepBeepMeep/NoSuchRepo", revision="main")


def test_hub_without_seeded_refs(make_hub_server, monkeypatch, tmp_path):
    from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError

    hub = make_hub_server({"o/r": {"a.json": b"{}"}}, seed_refs=False)
    with pytest.raises(RepositoryNotFoundError):  # missing file on a branch looks like a missing repo
        get_hf_file_metadata(hf_hub_url("o/r", "nope.json", endpoint=hub.endpoint))
    with pytest.raises(RemoteEntryNotFoundError):  # ... but not on a full commit sha
        get_hf_file_metadata(hf_hub_url("o/r", "nope.json", revision=hub.commits["o/r"]["main"],
                                        endpoint=hub.endpoint))
    api = HfApi(endpoint=hub.endpoint)
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("o/r")  # no revision: offline olah only knows it from its cache
    assert api.model_info("o/r", revision="main").sha == hub.commits["o/r"]["main"]


def test_hub_env_reaches_a_subprocess(hub_env, hub_server, tmp_path):
    """Only environment variables: the child imports huggingface_hub after HF_ENDPOINT/HF_HOME are set."""
    script = textwrap.dedent("""
        import json, sys
        from huggingface_hub import constants, hf_hub_download
        path = hf_hub_download(sys.argv[1], "my_finetune_quanto_bf16_int8.safetensors")
        print(json.dumps({"path": path, "endpoint": constants.ENDPOINT, "cache": constants.HF_HUB_CACHE}))
    """)
    result = subprocess.run([sys.executable, "-c", script, ME], env=hub_env.env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["endpoint"] == hub_server.endpoint
    assert out["cache"] == str(hub_env.hub_cache)
    assert open(out["path"], "rb").read() == hub_server.content(ME, "my_finetune_quanto_bf16_int8.safetensors")


# ---------------------------------------------------------------------------------------------------------------
# Plain HTTP server
# ---------------------------------------------------------------------------------------------------------------


def test_parse_range():
    assert parse_range(None, 10) is None
    assert parse_range("bytes=3-", 10) == (3, 9)
    assert parse_range("bytes=3-5", 10) == (3, 5)
    assert parse_range("bytes=3-50", 10) == (3, 9)
    assert parse_range("bytes=-4", 10) == (6, 9)
    assert parse_range("bytes=0-1,4-5", 10) is None
    assert parse_range("items=1-2", 10) is None
    with pytest.raises(ValueError):
        parse_range("bytes=10-", 10)


def test_http_get_head_404(http_server):
    data = http_server.files["/files/model_bf16.safetensors"]
    status, headers, body = fetch(http_server.url("/files/model_bf16.safetensors"))
    assert (status, body) == (200, data)
    assert headers["Content-Length"] == str(len(data)) and headers["Accept-Ranges"] == "bytes"
    status, headers, body = fetch(http_server.url("/files/model_bf16.safetensors"), "HEAD")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(data)))
    assert fetch(http_server.url("/nope"))[0] == 404
    assert http_server.requests == [
        LoggedRequest("GET", "/files/model_bf16.safetensors", None),
        LoggedRequest("HEAD", "/files/model_bf16.safetensors", None),
        LoggedRequest("GET", "/nope", None),
    ]
    assert http_server.bytes_sent("/files/model_bf16.safetensors") == len(data)


def test_http_ranges(http_server):
    data = http_server.files["/files/model_bf16.safetensors"]
    url = http_server.url("/files/model_bf16.safetensors")
    status, headers, body = fetch(url, headers={"Range": "bytes=1000-"})
    assert (status, body, headers["Content-Range"]) == (206, data[1000:], f"bytes 1000-{len(data) - 1}/{len(data)}")
    assert headers["Content-Length"] == str(len(data) - 1000)
    assert fetch(url, headers={"Range": "bytes=5-9"})[2] == data[5:10]
    assert fetch(url, headers={"Range": "bytes=-3"})[2] == data[-3:]
    status, headers, _ = fetch(url, headers={"Range": f"bytes={len(data)}-"})
    assert (status, headers["Content-Range"]) == (416, f"bytes */{len(data)}")
    etag = fetch(url, "HEAD")[1]["ETag"]
    assert fetch(url, headers={"Range": "bytes=5-", "If-Range": etag})[0] == 206
    assert fetch(url, headers={"Range": "bytes=5-", "If-Range": '"stale"'})[:3:2] == (200, data)
    http_server.ranges = False
    assert fetch(url, headers={"Range": "bytes=5-"})[:3:2] == (200, data)
    assert [r.bytes_sent for r in http_server.responses][:2] == [len(data) - 1000, 5]


def test_http_token(http_server):
    http_server.require_token = "secret"
    url = http_server.url("/files/config.json")
    status, headers, _ = fetch(url)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert fetch(url, headers={"Authorization": "Bearer wrong"})[0] == 401
    expected = http_server.files["/files/config.json"]
    assert fetch(url, headers={"Authorization": "Bearer secret"})[:3:2] == (200, expected)


def test_http_truncate(http_server):
    data = http_server.files["/files/model_bf16.safetensors"]
    http_server.truncate_at["/files/model_bf16.safetensors"] = 100_000
    with pytest.raises(http.client.IncompleteRead) as short:
        fetch(http_server.url("/files/model_bf16.safetensors"))
    assert len(short.value.partial) == 100_000 and short.value.expected == len(data) - 100_000
    with pytest.raises(http.client.IncompleteRead):  # counted from the start of each response
        fetch(http_server.url("/files/model_bf16.safetensors"), headers={"Range": "bytes=100000-"})
    del http_server.truncate_at["/files/model_bf16.safetensors"]
    status, _, body = fetch(http_server.url("/files/model_bf16.safetensors"), headers={"Range": "bytes=100000-"})
    assert (status, body) == (206, data[100_000:])
    assert [(r.range, r.bytes_sent) for r in http_server.responses] == [
        (None, 100_000), ("bytes=100000-", 100_000), ("bytes=100000-", len(data) - 100_000)]


def test_http_corrupt(http_server):
    data = http_server.files["/deep/path/weights.bin"]
    bad = bytes(b ^ 0xFF for b in data)
    http_server.corrupt["/deep/path/weights.bin"] = bad
    status, headers, body = fetch(http_server.url("/deep/path/weights.bin"))
    assert (status, body, headers["Content-Length"]) == (200, bad, str(len(data)))
    assert fetch(http_server.url("/deep/path/weights.bin"), headers={"Range": "bytes=10-19"})[2] == bad[10:20]
    http_server.corrupt["/deep/path/weights.bin"] = bad[:1000]  # shorter than announced: the connection drops
    with pytest.raises(http.client.IncompleteRead):
        fetch(http_server.url("/deep/path/weights.bin"))


def test_http_throttle(http_server):
    http_server.throttle_bytes_per_second = 512 * 1024
    started = time.monotonic()
    assert fetch(http_server.url("/deep/path/weights.bin"))[2] == http_server.files["/deep/path/weights.bin"]  # 256 KiB
    assert time.monotonic() - started > 0.35


def test_http_redirect_to_other_host_and_failures(http_server, make_http_server):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    other = make_http_server({"/real.bin": b"payload"}, require_token="t")
    target = other.url("/real.bin").replace("127.0.0.1", "localhost")  # same server, different host name
    http_server.redirects["/go"] = target
    no_follow = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect)
    status, headers, _ = fetch(http_server.url("/go"), opener=no_follow)
    assert (status, headers["Location"]) == (302, target)
    assert fetch(http_server.url("/go"))[0] == 401  # followed; the token server wants credentials
    assert fetch(target, headers={"Authorization": "Bearer t"})[:3:2] == (200, b"payload")
    assert [(r.path, r.status) for r in other.responses] == [("/real.bin", 401), ("/real.bin", 200)]

    http_server.fail["/files/config.json"] = [503, 500]
    url = http_server.url("/files/config.json")
    assert [fetch(url)[0] for _ in range(3)] == [503, 500, 200]


def test_http_log_shows_refetched_bytes(http_server):
    """The pattern a resume test uses: how many bytes the second request re-fetched."""
    data = http_server.files["/files/model_bf16.safetensors"]
    url = http_server.url("/files/model_bf16.safetensors")
    http_server.truncate_at["/files/model_bf16.safetensors"] = 700_000
    with pytest.raises(http.client.IncompleteRead) as first:
        fetch(url)
    got = first.value.partial
    http_server.truncate_at.clear()
    status, _, rest = fetch(url, headers={"Range": f"bytes={len(got)}-"})
    assert status == 206 and got + rest == data
    assert http_server.requests[-1].range == "bytes=700000-"
    assert http_server.bytes_sent() == len(data)  # nothing fetched twice


def test_deterministic_content():
    assert random_bytes(16, seed=1) == random_bytes(16, seed=1) != random_bytes(16, seed=2)


def test_http_audit_paths_html_lies_auth(http_server):
    """The audit's `D` server: /html/ a login page, /lies/ a Content-Length 1000 bytes too long, /auth/ basic auth."""
    from tests.servers import LIE_BYTES, LOGIN_PAGE

    status, headers, body = fetch(http_server.url("/html/anything_bf16.safetensors"))
    assert (status, body, headers["Content-Type"].split(";")[0]) == (200, LOGIN_PAGE, "text/html")
    assert len(LOGIN_PAGE) == 23
    data = random_bytes(5000, seed=40)
    http_server.files["/lies/x_bf16.safetensors"] = data
    status, headers, _ = fetch(http_server.url("/lies/x_bf16.safetensors"), "HEAD")
    assert headers["Content-Length"] == str(len(data) + LIE_BYTES)
    with pytest.raises(http.client.IncompleteRead):
        _OPENER.open(http_server.url("/lies/x_bf16.safetensors"), timeout=30).read()
    assert fetch(http_server.url("/lies/x_bf16.safetensors"), headers={"Range": f"bytes={len(data)}-"})[0] == 416
    http_server.files["/auth/x_bf16.safetensors"] = data
    status, headers, _ = fetch(http_server.url("/auth/x_bf16.safetensors"))
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    good = "Basic " + base64.b64encode(b"user:secretpass").decode()
    assert fetch(http_server.url("/auth/x_bf16.safetensors"), headers={"Authorization": good})[:3:2] == (200, data)
    assert http_server.authorizations[-2:] == [("GET", "/auth/x_bf16.safetensors", None),
                                               ("GET", "/auth/x_bf16.safetensors", good)]
    http_server.content_types = {"/auth/x_bf16.safetensors": "application/json"}
    assert fetch(http_server.url("/auth/x_bf16.safetensors"), headers={"Authorization": good})[1][
        "Content-Type"] == "application/json"


def test_http_retry_after_connection_limit_and_concurrency(make_http_server):
    data = random_bytes(400_000, seed=40)
    server = make_http_server({"/f.bin": data}, retry_after="Mon, 01 Jan 2024 00:00:00 GMT")
    server.fail["/f.bin"] = [429, 503]
    url = server.url("/f.bin")
    for status in (429, 503):
        got, headers, _ = fetch(url)
        assert (got, headers["Retry-After"]) == (status, "Mon, 01 Jan 2024 00:00:00 GMT")
    server.retry_after = "3"
    server.max_connections = 2
    server.throttle_bytes_per_second = 1_000_000  # each body takes 0.4 s
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: fetch(url), range(3)))
    assert sorted(a[0] for a in answers) == [200, 200, 429]
    assert [a[1]["Retry-After"] for a in answers if a[0] == 429] == ["3"]
    assert all(a[2] == data for a in answers if a[0] == 200)
    assert server.max_concurrent == 2
    server.clear_requests()
    assert server.max_concurrent == 0


def test_hub_ranges_are_streamed_for_plain_and_lfs_files(hub_server):
    hub_server.configure(ranges=True, throttle_bytes_per_second=4 * 1024 * 1024)
    for path in ("raw/plain_weights.dat", "tiny_model_bf16.safetensors"):  # a git blob, an LFS object
        data = hub_server.content(WAN, path)
        url = hub_server.url(WAN, path)
        status, headers, body = fetch(url, headers={"Range": "bytes=300000-499999"})
        assert (status, body, headers["content-range"]) == (206, data[300000:500000],
                                                            f"bytes 300000-499999/{len(data)}")
        assert fetch(url, headers={"Range": "bytes=-10"})[2] == data[-10:]
    hub_server.clear_requests()
    # 2 s per answer: they overlap even when one starts late on a loaded machine (1 s was seen to miss under load)
    hub_server.configure(ranges=True, throttle_bytes_per_second=512 * 1024)
    url = hub_server.url(WAN, "tiny_model_bf16.safetensors")
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        parts = list(pool.map(lambda i: fetch(url, headers={"Range": f"bytes={i << 20}-{(i + 1 << 20) - 1}"}),
                              range(3)))
    assert b"".join(p[2] for p in parts) == hub_server.content(WAN, "tiny_model_bf16.safetensors")[:3 << 20]
    assert hub_server.max_concurrent == 3  # throttled per response: three at ~2 s each, side by side


def test_hub_streamed_answer_starts_before_the_body_is_read(hub_server):
    """Throttled at 1 MB/s, the first bytes of a 3 MB file arrive at once: nothing is buffered first."""
    hub_server.configure(ranges=True, throttle_bytes_per_second=1024 * 1024)
    request = urllib.request.Request(hub_server.url(WAN, "raw/plain_weights.dat"), headers={"Range": "bytes=1000-"})
    started = time.monotonic()
    with _OPENER.open(request, timeout=30) as response:
        first = response.read(1000)
        waited = time.monotonic() - started
    assert first == hub_server.content(WAN, "raw/plain_weights.dat")[1000:2000] and waited < 0.5
    hub_server.configure(ranges=True, throttle_bytes_per_second=None, truncate_at={})
    time.sleep(0.3)
    assert hub_server.responses[-1].bytes_sent < 1024 * 1024  # the server stopped when the client went
