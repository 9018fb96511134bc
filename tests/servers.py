"""Real servers on loopback (127.0.0.1) for the download tests: nothing here touches the internet.

Two helpers, both context managers that pick a free port and stop cleanly:

* :class:`HubServer` -- a Hugging Face Hub look-alike: the PyPI package ``olah`` (0.5.4) serving local git
  repositories offline, started in a subprocess.  Its docstring lists precisely what works against it with
  ``huggingface_hub`` 2.4.0 and what does not.
* :class:`HttpServer` -- a plain threaded ``http.server`` serving an in-memory ``{url_path: bytes}`` with single
  Range requests, HEAD, optional bearer token, throttling, corruption, truncation, redirects and a request log.

This module imports nothing outside the standard library at import time (``olah`` only inside the subprocess),
so it can be imported by any test.  Run as a script it is the olah launcher that :class:`HubServer` starts
(``python tests/servers.py olah --config ... --log-path ... --control ... --request-log ... --mirrors ...``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

LOOPBACK = "127.0.0.1"

#: What ``HttpServer`` answers under ``/html/``: a login page instead of the file (23 bytes).
LOGIN_PAGE = b"<html>Sign in</html>\n\n\n"
#: How many bytes ``HttpServer`` over-announces under ``/lies/``.
LIE_BYTES = 1000

#: Paths stored as git-lfs pointers (like the ``.gitattributes`` Hugging Face puts in every new repo).
DEFAULT_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".h5", ".msgpack")

_GIT_DATE = "2024-01-01T00:00:00+00:00"

_UNSET = object()


class LoggedRequest(NamedTuple):
    """One request as it arrived: ``method``, URL ``path`` (no query string) and the raw ``Range`` header or None."""

    method: str
    path: str
    range: Optional[str]


class LoggedResponse(NamedTuple):
    """One finished (or aborted) response: the request fields, the status sent and the body bytes actually written."""

    method: str
    path: str
    range: Optional[str]
    status: int
    bytes_sent: int


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def parse_range(header: Optional[str], total: int) -> Optional[Tuple[int, int]]:
    """``(start, end_inclusive)`` for a single ``bytes=N-``, ``bytes=N-M`` or ``bytes=-K`` range.

    Returns None when there is no usable single range (absent, malformed, several ranges: serve the whole file);
    raises ValueError when the range is well formed but unsatisfiable (answer 416).
    """
    if not header:
        return None
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not match or (match.group(1) == "" and match.group(2) == ""):
        return None
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix range: the last K bytes
        length = int(last)
        if length == 0:
            raise ValueError("unsatisfiable")
        return max(total - length, 0), total - 1
    start = int(first)
    end = int(last) if last else total - 1
    if last and end < start:
        return None
    if start >= total:
        raise ValueError("unsatisfiable")
    return start, min(end, total - 1)


def random_bytes(size: int, seed: int = 0) -> bytes:
    """``size`` deterministic pseudo-random bytes (same seed, same bytes, on every run)."""
    import random

    return random.Random(seed).randbytes(size)


def safetensors_bytes(size: int, seed: int = 0, metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """A valid ``.safetensors`` file of about ``size`` bytes: one BF16 tensor ``weight`` of random data.

    Readable with ``safetensors.safe_open`` (values are random bit patterns, NaNs included).
    """
    count = max(1, (size - 128) // 2)
    header = {"weight": {"dtype": "BF16", "shape": [count], "data_offsets": [0, 2 * count]}}
    header["__metadata__"] = dict(metadata or {"format": "pt"})
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + random_bytes(2 * count, seed)


def _clean_env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(name, None)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def _urlopen_no_proxy(request, timeout: float):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return opener.open(request, timeout=timeout)


# ---------------------------------------------------------------------------------------------------------------
# Hub server (olah)
# ---------------------------------------------------------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    env = _clean_env(
        GIT_CONFIG_GLOBAL=os.devnull,  # no user hooks, signing, lfs filters or templates leak in
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_DATE=_GIT_DATE,
        GIT_COMMITTER_DATE=_GIT_DATE,
        GIT_TERMINAL_PROMPT="0",
    )
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {result.stderr.strip()}")
    return result.stdout.strip()


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs v1 pointer text for ``data`` (what git stores instead of the content)."""
    oid = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()


def _write_tree(work: Path, files: Mapping[str, Optional[bytes]], lfs_suffixes) -> None:
    for rel, data in files.items():
        target = work / rel
        if data is None:  # deletion in a revision
            if target.exists():
                target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(tuple(lfs_suffixes)):
            oid = hashlib.sha256(data).hexdigest()
            obj = work / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
            obj.parent.mkdir(parents=True, exist_ok=True)
            obj.write_bytes(data)
            target.write_bytes(lfs_pointer(data))
        else:
            target.write_bytes(data)


def make_git_repo(
    path: Path,
    files: Mapping[str, bytes],
    revisions: Optional[Mapping[str, Mapping[str, Optional[bytes]]]] = None,
    *,
    lfs_suffixes=DEFAULT_LFS_SUFFIXES,
    gitattributes: bool = True,
) -> Dict[str, str]:
    """Create a non-bare git repo at ``path`` laid out the way olah's local mirror reads it.

    ``files`` (``{path_in_repo: bytes}``, ``/`` separated, subfolders allowed) is committed on branch ``main``.
    Each entry of ``revisions`` (``{branch: {path: bytes or None}}``) becomes a branch forked from ``main`` with
    those files changed/added (``None`` deletes the file), one commit each.  Paths ending in ``lfs_suffixes`` are
    stored the git-lfs way without needing the ``git-lfs`` tool: a v1 pointer is committed and the content is
    written to ``.git/lfs/objects/<oid[:2]>/<oid[2:4]>/<oid>`` (the only place olah looks).  With
    ``gitattributes`` a Hub-style ``.gitattributes`` is committed too (it is then listed like any other file).

    Returns ``{ref: commit_sha}`` for ``main`` and every revision.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q")
    _git(path, "symbolic-ref", "HEAD", "refs/heads/main")
    _git(path, "config", "user.name", "Test Hub")
    _git(path, "config", "user.email", "hub@example.invalid")
    _git(path, "config", "commit.gpgsign", "false")
    main_files: Dict[str, Optional[bytes]] = dict(files)
    if gitattributes and ".gitattributes" not in main_files:
        main_files[".gitattributes"] = "".join(
            f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in lfs_suffixes
        ).encode()
    _write_tree(path, main_files, lfs_suffixes)
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "--allow-empty", "-m", "Initial commit")
    commits = {"main": _git(path, "rev-parse", "HEAD")}
    for branch, changes in (revisions or {}).items():
        _git(path, "checkout", "-q", "-b", branch, "main")
        _write_tree(path, changes, lfs_suffixes)
        _git(path, "add", "-A")
        _git(path, "commit", "-q", "--allow-empty", "-m", f"Changes on {branch}")
        commits[branch] = _git(path, "rev-parse", "HEAD")
        _git(path, "checkout", "-q", "main")
    return commits


def _split_repo_id(repo_id: str) -> Tuple[str, str, str]:
    parts = repo_id.split("/")
    if len(parts) == 3 and parts[0] in ("models", "datasets", "spaces"):
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return "models", parts[0], parts[1]
    raise ValueError(f"repo id must be 'owner/name' or '<models|datasets|spaces>/owner/name': {repo_id!r}")


class HubServer:
    """olah 0.5.4 serving local git repos as an offline Hugging Face mirror on ``http://127.0.0.1:<port>``.

    Usage::

        with HubServer({"DeepBeepMeep/Wan2.1": {"a.safetensors": b"...", "sub/config.json": b"{}"}},
                       revisions={"DeepBeepMeep/Wan2.1": {"dev": {"sub/config.json": b'{"v": 2}'}}}) as hub:
            hub.endpoint          # "http://127.0.0.1:PORT" -> HF_ENDPOINT, or endpoint= of huggingface_hub calls
            hub.url("DeepBeepMeep/Wan2.1", "a.safetensors")      # .../DeepBeepMeep/Wan2.1/resolve/main/a.safetensors
            hub.commits["DeepBeepMeep/Wan2.1"]                   # {"main": sha, "dev": sha}
            hub.content("DeepBeepMeep/Wan2.1", "a.safetensors")  # expected bytes (revision="main" by default)
            hub.requests / hub.responses / hub.clear_requests()  # what clients asked for, what was sent
            hub.max_concurrent                                   # most /resolve/ GETs in progress at once
            hub.configure(ranges=True, throttle_bytes_per_second=200_000)   # change behaviour at run time

    How it is built (olah source: configs.py, server.py, server_mirror.py, server_file_routes.py,
    server_api_routes.py, mirror/repos.py):

    * Config TOML: ``[basic] host, port, repos-path, mirrors-path = [..]`` and ``[accessibility] offline = true``.
      ``mirrors-path`` is a list; a repo ``owner/name`` of type ``models`` is looked up at
      ``<mirrors_path>/models/<owner>/<name>`` (``datasets``/``spaces`` likewise) and opened with GitPython.
    * The mirror must be a NON-bare git repo: revisions are resolved with ``Repo.commit(rev)`` (any branch, tag,
      short or full sha), but LFS content is read from ``<working_dir>/.git/lfs/objects/aa/bb/<sha256>``, which a
      bare repo does not have.  The branch name is free; the Hub default revision is ``main``, so repos use ``main``.
    * git-lfs: olah supports LFS files from local repos by itself -- any blob of 121..149 bytes that matches a v1
      pointer is replaced by the object in ``.git/lfs/objects``.  The ``git-lfs`` tool is NOT needed (and is not
      installed here): :func:`make_git_repo` writes pointer + object itself.  Tests need only ``git`` and ``olah``.
    * Started as ``python -m olah.server --config x.toml --log-path DIR`` (``olah-cli`` is the same entry point;
      ``--log-path`` is a command-line option, not a TOML key, and defaults to ``./logs`` in the CWD).  Here it is
      started through this file's launcher (``python tests/servers.py olah ...``), which runs olah's own
      ``init()`` + ``run_server()`` after wrapping the ASGI app in a small middleware that (a) always logs
      requests/responses to a file (:attr:`requests`, :attr:`responses`), and (b) only when switched on with
      :meth:`configure` adds HTTP Range support and/or throttling to ``/resolve/`` GETs.  Switched off (the
      default) the responses are olah's, byte for byte.  Start-up takes about 1-2 s.
    * ``seed_refs=True`` (default) pre-writes olah's offline metadata cache in ``repos-path``
      (``api/models/<owner>/<name>/revision/<branch>/meta_get.json`` + ``.body`` with ``{"sha", "lastModified"}``
      for every branch, and ``meta_head.json`` for ``main``).  Offline olah cannot otherwise map a branch name to a
      commit for the code paths that do not read the git repo; this changes the answers marked [seed] below.

    What huggingface_hub 2.4.0 gets from it (observed; ``endpoint=hub.endpoint`` or ``HF_ENDPOINT`` set before
    import, see ``tests/download/conftest.py``):

    * ``HEAD /<owner>/<name>/resolve/<rev>/<path>`` -> 200 with exactly ``content-length``, ``x-repo-commit``
      (the full commit sha of ``rev``) and ``etag`` (UNQUOTED).  No ``x-linked-etag``, ``x-linked-size``,
      ``location``/redirect, ``accept-ranges`` or ``x-xet-hash`` (so huggingface_hub uses plain HTTP, never Xet).
      ``get_hf_file_metadata(hf_hub_url(repo_id, path, revision=rev, endpoint=...))`` therefore returns
      ``size`` = the real file size (LFS: the object's size, not the pointer's), ``commit_hash`` = the commit sha,
      ``location`` = the resolve URL itself, and ``etag`` =

      - LFS file (pointer in git): the sha256 hex of the content -- same as the real Hub's ``X-Linked-Etag``;
      - plain git file: the git blob sha1 hex (``git hash-object``) -- same as the real Hub's ``ETag``.
    * ``GET .../resolve/<rev>/<path>`` -> 200, ``Transfer-Encoding: chunked``, NO ``content-length``/``etag``
      headers, body = the full content (LFS resolved).  ``hf_hub_download(repo_id, filename, subfolder=...,
      revision="main"|other branch|full or short sha, local_dir=... or cache_dir=..., endpoint=...)`` works and
      the file is byte-identical (the HEAD gives it size/etag/commit; it checks the size after the GET).
    * Range: olah IGNORES ``Range`` on local mirrors: ``Range: bytes=N-`` gets 200 + the whole file, never 206.
      huggingface_hub copes (on 200 to a Range it rewinds and re-downloads everything), so a resumed download
      still ends correct but re-fetches all bytes.  With ``configure(ranges=True)`` the middleware answers
      single ranges with 206 + ``content-range`` + ``content-length`` (416 + ``content-range: bytes */N`` when
      unsatisfiable) and adds ``accept-ranges: bytes`` to HEAD and GET -- use it to test resume through the Hub
      path.  ``throttle_bytes_per_second`` slows those GET bodies (each response, i.e. each connection, gets
      that rate) so a client can be killed mid-file.  These answers are streamed, never buffered (see
      :class:`_HubMiddleware`): parallel ranges of a 1 GB file hold a few pieces in memory.
    * [seed] Missing file on a branch (``main``): HEAD -> 404 ``x-error-code: EntryNotFound``: huggingface_hub
      raises ``RemoteEntryNotFoundError`` (subclass of ``EntryNotFoundError`` and ``HfHubHTTPError``).  WITHOUT
      ``seed_refs``: 401 ``RepoNotFound`` -> ``RepositoryNotFoundError``.  On a full commit sha: 404
      ``EntryNotFound`` either way; on a short sha: 401 either way.  A plain GET of a missing file -> 500
      ``Internal Server Error`` (olah bug: ``commit.tree[path]`` KeyError); huggingface_hub never sees it (it
      always HEADs first), a client that GETs directly does.
    * Missing repo: HEAD/GET -> 401 ``x-error-code: RepoNotFound`` (like the real Hub): ``RepositoryNotFoundError``.
    * Missing revision (unknown branch/sha): 401 ``RepoNotFound`` -> ``RepositoryNotFoundError``, NOT
      ``RevisionNotFoundError`` (offline olah cannot tell the two apart on the file routes).
    * ``HfApi(endpoint=...).list_repo_files(repo_id, revision=...)`` / ``list_repo_tree(..., recursive=True)``:
      work (``GET /api/models/<id>/tree/<rev>?recursive=..``).  Tree entries carry ``size`` and, for LFS files,
      ``lfs`` = ``{oid: sha256, size, pointerSize}``.  ``list_repo_files`` includes ``.gitattributes``.
    * ``HfApi.get_paths_info(repo_id, paths, revision=...)``: works (``POST /api/models/<id>/paths-info/<rev>``);
      missing paths are silently omitted; ``RepoFile.blob_id`` = git blob sha1, ``.lfs.sha256`` for LFS files.
    * ``HfApi.model_info(repo_id, revision=<rev>)``: works -- ``sha`` = commit, ``siblings`` = all files
      (``rfilename`` only: ``files_metadata=True`` is ignored, sizes stay None).  [seed] ``model_info(repo_id)``
      WITHOUT a revision hits ``/api/models/<id>``, which offline olah answers from its cache only: works with
      ``seed_refs`` (gives ``main``), else 401 ``RepositoryNotFoundError``; same for ``repo_exists``.
    * ``HfApi.list_repo_refs``: works (real git branches).  ``snapshot_download`` works (it calls
      ``model_info(revision="main")`` then HEAD/GET per file).  ``file_exists`` works.  Auth: olah ignores
      tokens offline; every repo is public (no 401/403 for gated repos can be simulated -- use HttpServer).

    Resume with huggingface_hub 2.4.0 (read in file_download.py, confirmed against this server):

    * No resume ACROSS processes: every ``hf_hub_download`` call writes to a fresh ``<x>.<uuid8>.incomplete``
      opened ``"wb"`` (``_download_to_tmp_and_move``): ``<local_dir>/.cache/huggingface/download/<hashed
      name>.<etag>.<uuid8>.incomplete`` or ``<cache>/models--o--n/blobs/<etag>.<uuid8>.incomplete``.  A killed
      process leaves that file behind (often 0 bytes, see next point); the next call starts again at byte 0,
      without a Range header.
    * Within one call, ``http_get`` retries up to 5 times in a row (``time.sleep(1)`` each; the count resets
      whenever data arrived) on ConnectError, timeouts and RemoteProtocolError, with
      ``Range: bytes=<bytes written>-`` -- but it reads in ``DOWNLOAD_CHUNK_SIZE`` = 10 MiB chunks, and the
      bytes of an unfinished chunk are lost: a Range is only ever sent after >= 10 MiB arrived.  Observed with
      a 12 MB LFS file and ``configure(ranges=True, truncate_at={path: 11_000_000})``: ``GET`` (no Range) 200
      with 11000000 bytes sent, then ``GET bytes=10485760-`` 206 with 1514240 bytes, file correct.  A 200
      answer to a Range makes it rewind and start over (what plain olah does).
    """

    def __init__(
        self,
        repos: Mapping[str, Mapping[str, bytes]],
        revisions: Optional[Mapping[str, Mapping[str, Mapping[str, Optional[bytes]]]]] = None,
        *,
        root: Optional[os.PathLike] = None,
        seed_refs: bool = True,
        ranges: bool = False,
        throttle_bytes_per_second: Optional[int] = None,
        lfs_suffixes=DEFAULT_LFS_SUFFIXES,
        gitattributes: bool = True,
        startup_timeout: float = 60.0,
    ):
        self._repos = {repo_id: dict(files) for repo_id, files in repos.items()}
        self._revisions = {repo_id: {branch: dict(changes) for branch, changes in revs.items()}
                           for repo_id, revs in (revisions or {}).items()}
        self._own_root = root is None
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="hubserver-"))
        self.seed_refs = seed_refs
        self.lfs_suffixes = tuple(lfs_suffixes)
        self.gitattributes = gitattributes
        self.startup_timeout = startup_timeout
        self.settle_timeout = 2.0
        self.mirrors_path = self.root / "mirrors"
        self.repos_path = self.root / "olah-cache"
        self.log_path = self.root / "logs"
        self.config_path = self.root / "olah.toml"
        self.control_path = self.root / "control.json"
        self.request_log_path = self.root / "requests.jsonl"
        self.stdout_path = self.root / "olah.out"
        self.commits: Dict[str, Dict[str, str]] = {}
        #: ``{repo_id: {revision: {path: bytes}}}`` -- the content each revision serves (``.gitattributes`` included).
        self.files: Dict[str, Dict[str, Dict[str, bytes]]] = {}
        self.port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None
        self._control = {"ranges": bool(ranges), "throttle_bytes_per_second": throttle_bytes_per_second,
                         "truncate_at": {}}

    # -- public API -----------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("HubServer is not started")
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, repo_id: str, path: str, revision: str = "main") -> str:
        """``<endpoint>/<repo_id>/resolve/<revision>/<path>`` -- the same shape as a huggingface.co URL."""
        return f"{self.endpoint}/{repo_id}/resolve/{revision}/{path}"

    def hf_url(self, repo_id: str, path: str, revision: str = "main") -> str:
        """The ``https://huggingface.co/...`` URL a definition file would contain for this file."""
        return f"https://huggingface.co/{repo_id}/resolve/{revision}/{path}"

    def content(self, repo_id: str, path: str, revision: str = "main") -> bytes:
        return self.files[repo_id][revision][path]

    def path(self, repo_id: str, path: str, revision: str = "main") -> str:
        """The URL path of a file (what :attr:`requests` records and ``truncate_at`` is keyed by)."""
        return f"/{repo_id}/resolve/{revision}/{path}"

    def configure(self, *, ranges=_UNSET, throttle_bytes_per_second=_UNSET, truncate_at=_UNSET) -> None:
        """Change the middleware at run time (the server reads it on every request); arguments left out keep
        their value.

        * ``ranges=True``: answer single ``Range`` requests on ``/resolve/`` GETs with 206 (olah itself ignores them).
        * ``throttle_bytes_per_second=N`` (None = off): write ``/resolve/`` GET bodies at about N bytes/s.
        * ``truncate_at={url_path: n}`` (see :meth:`path`): every GET of that path announces its full length
          (``content-length``) but the connection is closed after ``n`` body bytes of that response (the client
          gets ``RemoteProtocolError``/``IncompleteRead``).  Pair it with ``ranges=True``: without ranges a client
          that retries restarts from 0 every time.  For huggingface_hub's in-process retry see the class docstring
          (it needs ``n`` >= 10 MiB to ever send a Range).
        """
        if ranges is not _UNSET:
            self._control["ranges"] = bool(ranges)
        if throttle_bytes_per_second is not _UNSET:
            self._control["throttle_bytes_per_second"] = throttle_bytes_per_second
        if truncate_at is not _UNSET:
            self._control["truncate_at"] = dict(truncate_at or {})
        tmp = self.control_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._control))
        os.replace(tmp, self.control_path)

    def reset(self) -> None:
        """Back to plain olah behaviour and an empty request log."""
        self.configure(ranges=False, throttle_bytes_per_second=None, truncate_at={})
        self.clear_requests()

    def _events(self) -> List[dict]:
        try:
            lines = self.request_log_path.read_text().splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
        return events

    @property
    def requests(self) -> List[LoggedRequest]:
        return [LoggedRequest(e["method"], e["path"], e["range"]) for e in self._events() if e["event"] == "request"]

    @property
    def responses(self) -> List[LoggedResponse]:
        """Finished responses.  A client can see the last byte before the server has logged it, so this waits
        (up to ``settle_timeout`` seconds) until every logged request has its response."""
        deadline = time.monotonic() + self.settle_timeout
        while True:
            events = self._events()
            done = [e for e in events if e["event"] == "response"]
            if len(done) >= sum(e["event"] == "request" for e in events) or time.monotonic() > deadline:
                return [LoggedResponse(e["method"], e["path"], e["range"], e["status"], e["bytes_sent"]) for e in done]
            time.sleep(0.01)

    @property
    def max_concurrent(self) -> int:
        """The most ``/resolve/`` GETs in progress at the same time, from the log (arrivals and ends in order)."""
        now = most = 0
        for event in self._events():
            if event["method"] == "GET" and "/resolve/" in event["path"]:
                now += 1 if event["event"] == "request" else -1
                most = max(most, now)
        return most

    def clear_requests(self) -> None:
        """Empty the log, once every logged request has its response (up to ``settle_timeout``): a response the
        server logs after its client already has the last byte would otherwise land in the new log, an end
        without a start (max_concurrent then counts one too few)."""
        self.responses  # noqa: B018 - waits for the log to settle
        with open(self.request_log_path, "w"):
            pass

    # -- lifecycle --------------------------------------------------------------------------------------------
    def _build_repos(self) -> None:
        for repo_id, files in self._repos.items():
            repo_type, owner, name = _split_repo_id(repo_id)
            revs = self._revisions.get(repo_id, {})
            commits = make_git_repo(
                self.mirrors_path / repo_type / owner / name,
                files,
                revs,
                lfs_suffixes=self.lfs_suffixes,
                gitattributes=self.gitattributes,
            )
            self.commits[repo_id] = commits
            main = dict(files)
            if self.gitattributes and ".gitattributes" not in main:
                main[".gitattributes"] = "".join(
                    f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in self.lfs_suffixes
                ).encode()
            self.files[repo_id] = {"main": main, commits["main"]: main}
            for branch, changes in revs.items():
                tree = dict(main)
                for path, data in changes.items():
                    if data is None:
                        tree.pop(path, None)
                    else:
                        tree[path] = data
                self.files[repo_id][branch] = tree
                self.files[repo_id][commits[branch]] = tree
            if self.seed_refs:
                self._seed(repo_type, owner, name, commits)

    def _seed(self, repo_type: str, owner: str, name: str, commits: Mapping[str, str]) -> None:
        # Same files olah writes itself after talking to huggingface.co (utils/repo_utils.py, cache_utils.py).
        now = time.time()
        for ref, sha in commits.items():
            last_modified = _dt.datetime.fromtimestamp(now, _dt.timezone.utc).isoformat()
            body = json.dumps({"id": f"{owner}/{name}", "sha": sha, "lastModified": last_modified}).encode()
            folder = self.repos_path / "api" / repo_type / owner / name / "revision" / ref
            folder.mkdir(parents=True, exist_ok=True)
            envelope = {"status_code": 200, "headers": {"content-type": "application/json"}, "cached_at": now}
            (folder / "meta_get.json").write_text(json.dumps(envelope))
            (folder / "meta_get.json.body").write_bytes(body)
            if ref == "main":
                (folder / "meta_head.json").write_text(body.decode())

    def _write_config(self) -> None:
        self.config_path.write_text(
            "[basic]\n"
            f'host = "{LOOPBACK}"\n'
            f"port = {self.port}\n"
            f"repos-path = {json.dumps(str(self.repos_path))}\n"
            f"mirrors-path = [{json.dumps(str(self.mirrors_path))}]\n"
            "\n[accessibility]\n"
            "offline = true\n"
        )

    def _ready(self) -> bool:
        # Any HTTP answer means uvicorn is serving.  (Not "/": olah's index page is a 500 with current starlette.)
        probe = urllib.request.Request(self.endpoint + "/api/models/_olah_probe_/_olah_probe_/revision/main")
        try:
            with _urlopen_no_proxy(probe, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except (OSError, urllib.error.URLError):
            return False

    def start(self) -> "HubServer":
        if self.process is not None:
            return self
        for folder in (self.mirrors_path, self.repos_path, self.log_path):
            folder.mkdir(parents=True, exist_ok=True)
        if not self.commits:
            self._build_repos()
        self.configure()
        self.clear_requests()
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between picking it and binding it
            self.port = free_port()
            self._write_config()
            with open(self.stdout_path, "wb") as out:
                self.process = subprocess.Popen(
                    [
                        sys.executable, str(Path(__file__).resolve()), "olah",
                        "--config", str(self.config_path),
                        "--log-path", str(self.log_path),
                        "--control", str(self.control_path),
                        "--request-log", str(self.request_log_path),
                        "--mirrors", str(self.mirrors_path),
                    ],
                    cwd=self.root,
                    env=_clean_env(PYTHONUNBUFFERED="1"),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            deadline = time.monotonic() + self.startup_timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._ready():
                    self.clear_requests()  # forget the readiness probes
                    return self
                time.sleep(0.05)
            last_error = self.stdout_path.read_text(errors="replace")[-3000:]
            self._stop_process()
        raise RuntimeError(f"olah did not start on 127.0.0.1:{self.port}:\n{last_error}")

    def _stop_process(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully on SIGINT/SIGTERM
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def stop(self) -> None:
        self._stop_process()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "HubServer":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


class _StopBody(Exception):
    """Raised from the body sink once a range is complete: olah's generator stops reading the file."""


#: ``/<owner>/<name>/resolve/...`` or ``/<datasets|spaces>/<owner>/<name>/resolve/...``
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/")


class _HubMiddleware:
    """ASGI wrapper around olah's app: request log always; Range and throttling on ``/resolve/`` GETs on demand.

    With ranges, a throttle or a truncation switched on, a ``/resolve/`` GET is answered in streaming, never
    buffered: the status and headers come from olah's own HEAD of that path (an error answer there -> olah's GET
    as it is), the total size from its ``content-length``. The body of an LFS file is read from the mirror's LFS
    object (``.git/lfs/objects/..``, named by the HEAD's etag = its sha256: exactly the bytes olah sends), from
    the range's first byte to its last; any other file is olah's GET body, skipped up to the range start and cut
    at its end. So 8 ranges of a 1 GB file hold a few pieces in memory, not 8 GB.
    """

    def __init__(self, app, control_path: str, request_log_path: str, mirrors_path: Optional[str] = None):
        self.app = app
        self.control_path = control_path
        self.request_log_path = request_log_path
        self.mirrors_path = Path(mirrors_path) if mirrors_path else None
        self._heads: Dict[tuple, tuple] = {}

    def _control(self) -> dict:
        try:
            with open(self.control_path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def _log(self, **event) -> None:
        with open(self.request_log_path, "a") as f:
            f.write(json.dumps(event) + "\n")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method = scope["method"]
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        range_header = headers.get("range")
        self._log(event="request", method=method, path=path, range=range_header)
        control = self._control()
        ranges = bool(control.get("ranges"))
        rate = control.get("throttle_bytes_per_second") or None
        truncate = (control.get("truncate_at") or {}).get(path)
        is_file = "/resolve/" in path
        state = {"status": 0, "sent": 0}
        try:
            if is_file and method == "GET" and (ranges or rate or truncate is not None):
                await self._streamed(scope, receive, send, state, range_header, ranges, rate, truncate)
            else:
                await self._plain(scope, receive, send, state, ranges and is_file)
        finally:
            self._log(event="response", method=method, path=path, range=range_header,
                      status=state["status"], bytes_sent=state["sent"])

    async def _plain(self, scope, receive, send, state, accept_ranges):
        """olah's answer as it is (``accept-ranges`` added to a file's 200 when ranges are on)."""
        async def logging_send(message):
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                if accept_ranges and message["status"] == 200:
                    message = dict(message)
                    message["headers"] = list(message.get("headers", [])) + [(b"accept-ranges", b"bytes")]
            elif message["type"] == "http.response.body" and scope["method"] != "HEAD":
                state["sent"] += len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, logging_send)

    async def _head(self, scope):
        """(status, headers) of olah's HEAD for the same path (not logged: the client never sent it). A 200 is
        remembered per path: olah reads the whole LFS object for each HEAD (~1 s per GB, blocking its event
        loop), which would stall every other connection at each range request; the repos never change while
        the server runs."""
        key = (scope["path"], scope.get("query_string", b""))
        if key in self._heads:
            return self._heads[key]
        status, headers = await self._olah_head(scope)
        if status == 200:
            self._heads[key] = (status, headers)
        return status, headers

    async def _olah_head(self, scope):
        head_scope = dict(scope, method="HEAD",
                          headers=[(k, v) for k, v in scope["headers"] if k.lower() != b"range"])
        answer, asked, done = {}, [False], asyncio.Event()

        async def no_body():  # the request once, then (as a server would) a disconnect once the answer is out
            if not asked[0]:
                asked[0] = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def collect(message):
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = list(message.get("headers", []))
            elif not message.get("more_body", False):
                done.set()

        await self.app(head_scope, no_body, collect)
        return answer.get("status", 500), answer.get("headers", [])

    def _lfs_object(self, path: str, headers, total: int) -> Optional[Path]:
        """The mirror's LFS object this path serves, when there is one of the right size."""
        match = _RESOLVE.match(path)
        etag = next((v.decode("latin-1").strip('"') for k, v in headers if k.lower() == b"etag"), "")
        if not (match and self.mirrors_path and re.fullmatch(r"[0-9a-f]{64}", etag)):
            return None
        kind, owner, name = match.group(1) or "models", match.group(2), match.group(3)
        candidate = (self.mirrors_path / kind / owner / name / ".git" / "lfs" / "objects" / etag[:2] / etag[2:4]
                     / etag)
        try:
            return candidate if candidate.stat().st_size == total else None
        except OSError:
            return None

    async def _streamed(self, scope, receive, send, state, range_header, ranges, rate, truncate):
        status, head_headers = await self._head(scope)
        length = next((v for k, v in head_headers if k.lower() == b"content-length"), None)
        if status != 200 or length is None or not length.isdigit():
            return await self._plain(scope, receive, send, state, False)  # olah's own error answer
        total = int(length)
        headers = [(k, v) for k, v in head_headers
                   if k.lower() not in (b"content-length", b"transfer-encoding", b"content-range",
                                        b"accept-ranges")]
        start, end = 0, total - 1
        if ranges:
            headers.append((b"accept-ranges", b"bytes"))
            try:
                span = parse_range(range_header, total)
            except ValueError:
                state["status"] = 416
                headers.append((b"content-range", f"bytes */{total}".encode()))
                headers.append((b"content-length", b"0"))
                await send({"type": "http.response.start", "status": 416, "headers": headers})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if span is not None:
                status, (start, end) = 206, span
                headers.append((b"content-range", f"bytes {start}-{end}/{total}".encode()))
        announced = end - start + 1 if total else 0
        headers.append((b"content-length", str(announced).encode()))
        state["status"] = status
        await send({"type": "http.response.start", "status": status, "headers": headers})
        limit = announced if truncate is None else min(truncate, announced)

        disconnected = asyncio.Event()

        async def watch():
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected.set()
                    return

        watcher = asyncio.ensure_future(watch())
        piece = max(1024, int(rate) // 20) if rate else 1 << 20

        async def emit(part: bytes) -> bool:
            """Send one piece (throttled: the pause comes before each piece but the first); False once the client
            is gone."""
            if rate and state["sent"]:
                await asyncio.sleep(len(part) / float(rate))
            if disconnected.is_set():
                return False
            await send({"type": "http.response.body", "body": part, "more_body": True})
            state["sent"] += len(part)
            return True

        try:
            source = self._lfs_object(scope["path"], head_headers, total)
            if source is not None:
                with open(source, "rb") as handle:
                    handle.seek(start)
                    left = limit
                    while left > 0:
                        part = handle.read(min(piece, left))
                        if not part or not await emit(part):
                            return
                        left -= len(part)
            elif limit > 0:
                position, pending, asked = 0, bytearray(), [False]

                async def sink(message):  # olah's GET body, cut to [start, start + limit)
                    nonlocal position
                    if message["type"] != "http.response.body":
                        return
                    data = message.get("body", b"")
                    skip, position = max(0, start - position), position + len(data)
                    wanted = limit - state["sent"] - len(pending)
                    if wanted > 0:
                        pending.extend(data[skip: skip + wanted])
                    final = not message.get("more_body", False)
                    while pending and (len(pending) >= piece or final or state["sent"] + len(pending) >= limit):
                        part = bytes(pending[:piece])
                        del pending[:len(part)]
                        if not await emit(part):
                            raise _StopBody()
                    if state["sent"] >= limit:
                        raise _StopBody()  # olah stops reading the file

                async def inner_receive():  # olah sees the request once, then waits for the client to go
                    if not asked[0]:
                        asked[0] = True
                        return {"type": "http.request", "body": b"", "more_body": False}
                    await disconnected.wait()
                    return {"type": "http.disconnect"}

                get_scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k.lower() != b"range"])
                with contextlib.suppress(Exception):  # _StopBody, possibly inside olah's exception group
                    await self.app(get_scope, inner_receive, sink)
            if state["sent"] < announced:
                return  # never complete the response: uvicorn closes the connection, the client sees a short body
            if not disconnected.is_set():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()


def _olah_main(argv: List[str]) -> None:
    """Launcher: olah's own CLI start-up, with :class:`_HubMiddleware` around its app."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--log-path", required=True)
    parser.add_argument("--control", required=True)
    parser.add_argument("--request-log", required=True)
    parser.add_argument("--mirrors")
    args = parser.parse_args(argv)

    parent = os.getppid()

    def exit_with_parent():  # never outlive the test process, even if it is killed
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()

    import olah.server as olah_server

    sys.argv = ["olah-cli", "--config", args.config, "--log-path", args.log_path]
    olah_args = olah_server.init()
    olah_server.app = _HubMiddleware(olah_server.app, args.control, args.request_log,  # run_server reads the global
                                     args.mirrors)
    olah_server.run_server(olah_args)


# ---------------------------------------------------------------------------------------------------------------
# Plain HTTP server
# ---------------------------------------------------------------------------------------------------------------


class _ThreadingServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class HttpServer:
    """A threaded ``http.server`` on 127.0.0.1 serving ``files`` (``{url_path: bytes}``, paths start with ``/``).

    Behaviour (all options are plain attributes, read on every request, so tests may change them at run time):

    * GET/HEAD: 200 with ``Content-Length``, ``Accept-Ranges: bytes``, ``ETag: "<sha256 hex[:32]>"``,
      ``Last-Modified`` and ``Content-Type: application/octet-stream``; HEAD sends no body.  Unknown path: 404.
    * ``Range: bytes=N-``, ``bytes=N-M``, ``bytes=-K`` (single range): 206 + ``Content-Range: bytes a-b/total`` +
      the slice; past the end: 416 + ``Content-Range: bytes */total``; malformed or multi-range: ignored (200).
      ``If-Range`` with a different ETag: the range is ignored (200, full body), as RFC 9110 says.
      ``ranges=False`` ignores every Range header (a server without resume support: always 200).
    * ``require_token="secret"``: 401 (``WWW-Authenticate: Bearer``) unless ``Authorization: Bearer secret``.
    * ``throttle_bytes_per_second=N``: the body is written in pieces of N/20 bytes with sleeps between them (about
      N bytes/s for each response, i.e. for each connection).
    * ``corrupt={path: bytes}``: headers (length, ETag) describe ``files[path]`` but the body comes from these
      bytes (same range slice).  Give the same length to simulate flipped bits; a shorter one ends the body early
      and closes the connection.
    * ``truncate_at={path: n}``: announces the full length but closes the connection after ``n`` body bytes of
      this response (counted from the start of the response, so also for ranges).
    * ``redirects={path: location}``: 302 to ``location`` (absolute URL, or a path on this server), answered before
      the token check -- e.g. ``server.url(p).replace("127.0.0.1", "localhost")`` to test cross-host redirects.
    * ``fail={path: [status, ...]}``: the next requests to ``path`` are answered with these statuses (popped one by
      one; e.g. ``[503, 503]`` to exercise retries).  A queued 429 or 503 carries ``Retry-After: <retry_after>``
      (``"0"`` by default; a number of seconds or an HTTP date; None sends no such header).
    * ``max_connections=N``: a GET that would make more than N bodies (200/206) go out at once is answered 429 with
      ``Retry-After: <retry_after>`` (a mirror's per-client connection limit).
    * :attr:`max_concurrent`: the most GET bodies that went out at the same time (since the start or the last
      :meth:`clear_requests`) -- with ``throttle_bytes_per_second``, each of them is one connection's share.
    * ``content_types={path: "application/json"}``: another ``Content-Type`` for that file.
    * The audit's special paths (prefixes, whatever follows them):

      - ``/html/...``: 200 ``text/html``, body :data:`LOGIN_PAGE` (23 bytes), for any name -- the login page a
        gated or private file gives instead of the file;
      - ``/lies/...``: ``files[path]``, but ``Content-Length`` announces :data:`LIE_BYTES` (1000) bytes more than
        the body (which ends, then the connection closes); a Range past the real end gets 416;
      - ``/auth/...``: 401 (``WWW-Authenticate: Basic``) unless HTTP basic auth gives :attr:`basic_auth`
        (``("user", "secretpass")`` by default), then ``files[path]``.
    * :attr:`authorizations`: ``(method, path, Authorization header or None)`` of every request, in order (e.g.
      to check that credentials from a URL's userinfo reach this host and no other).
    * Log: :attr:`requests` (``LoggedRequest(method, path, range)`` as they arrive) and :attr:`responses`
      (``LoggedResponse(..., status, bytes_sent)`` once done, also when the client went away; reading it waits
      up to ``settle_timeout`` = 2 s for responses still being finished);
      :meth:`bytes_sent` sums body bytes written; :meth:`clear_requests` empties both.
    """

    def __init__(
        self,
        files: Optional[Mapping[str, bytes]] = None,
        *,
        require_token: Optional[str] = None,
        throttle_bytes_per_second: Optional[int] = None,
        corrupt: Optional[Mapping[str, bytes]] = None,
        truncate_at: Optional[Mapping[str, int]] = None,
        redirects: Optional[Mapping[str, str]] = None,
        fail: Optional[Mapping[str, List[int]]] = None,
        ranges: bool = True,
        content_types: Optional[Mapping[str, str]] = None,
        basic_auth: Tuple[str, str] = ("user", "secretpass"),
        retry_after: Optional[str] = "0",
        max_connections: Optional[int] = None,
    ):
        self.files: Dict[str, bytes] = dict(files or {})
        self.require_token = require_token
        self.throttle_bytes_per_second = throttle_bytes_per_second
        self.corrupt: Dict[str, bytes] = dict(corrupt or {})
        self.truncate_at: Dict[str, int] = dict(truncate_at or {})
        self.redirects: Dict[str, str] = dict(redirects or {})
        self.fail: Dict[str, List[int]] = {k: list(v) for k, v in (fail or {}).items()}
        self.ranges = ranges
        self.content_types: Dict[str, str] = dict(content_types or {})
        self.basic_auth = basic_auth
        self.retry_after = retry_after
        self.max_connections = max_connections
        self.settle_timeout = 2.0
        self._bodies = 0  # GET bodies going out now
        self._max_bodies = 0
        self._authorizations: List[Tuple[str, str, Optional[str]]] = []
        self._requests: List[LoggedRequest] = []
        self._responses: List[tuple] = []  # (arrival number of the request, LoggedResponse)
        self._arrivals = 0
        self._lock = threading.Lock()
        self._server: Optional[_ThreadingServer] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("HttpServer is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    @property
    def requests(self) -> List[LoggedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def responses(self) -> List[LoggedResponse]:
        """Finished responses.  A client can see the last byte before the handler has logged it, so this waits
        (up to ``settle_timeout`` seconds) until every logged request has its response."""
        deadline = time.monotonic() + self.settle_timeout
        while True:
            with self._lock:
                if len(self._responses) >= len(self._requests) or time.monotonic() > deadline:
                    # in the order the requests came: handler threads may finish in another order
                    return [response for _, response in sorted(self._responses, key=lambda pair: pair[0])]
            time.sleep(0.01)

    @property
    def authorizations(self) -> List[Tuple[str, str, Optional[str]]]:
        with self._lock:
            return list(self._authorizations)

    @property
    def max_concurrent(self) -> int:
        with self._lock:
            return self._max_bodies

    def _body_started(self) -> bool:
        """Count a GET body going out; False (nothing counted) when ``max_connections`` are already busy."""
        with self._lock:
            if self.max_connections is not None and self._bodies >= self.max_connections:
                return False
            self._bodies += 1
            self._max_bodies = max(self._max_bodies, self._bodies)
            return True

    def _body_done(self) -> None:
        with self._lock:
            self._bodies -= 1

    def bytes_sent(self, path: Optional[str] = None, method: str = "GET") -> int:
        return sum(r.bytes_sent for r in self.responses if r.method == method and (path is None or r.path == path))

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()
            self._responses.clear()
            self._authorizations.clear()
            self._max_bodies = self._bodies

    def _record(self, kind: str, item, arrival: int = 0, authorization: Optional[str] = None) -> int:
        """Log a request (returns its arrival number) or the response to the request of ``arrival``."""
        with self._lock:
            if kind == "request":
                self._requests.append(item)
                self._authorizations.append((item.method, item.path, authorization))
                self._arrivals += 1
                return self._arrivals
            self._responses.append((arrival, item))
            return arrival

    def start(self) -> "HttpServer":
        if self._server is not None:
            return self
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = _ThreadingServer((LOOPBACK, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"HttpServer-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "HttpServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_owner: HttpServer

    def log_message(self, format, *args):  # keep pytest output clean
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _reply_empty(self, status: int, headers: Mapping[str, str] = ()) -> None:
        body = b"" if status in (304,) else f"{status} {HTTPStatus(status).phrase}\n".encode()
        self.send_response(status)
        for key, value in dict(headers).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
            self._sent += len(body)

    def _reply_page(self, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
            self._sent += len(body)

    def _serve(self, head: bool) -> None:
        owner = self.server_owner
        path = self.path.split("?", 1)[0]
        range_header = self.headers.get("Range")
        arrival = owner._record("request", LoggedRequest(self.command, path, range_header),
                                authorization=self.headers.get("Authorization"))
        self._sent = 0
        self._status = 0
        try:
            self._respond(owner, path, range_header, head)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True
        finally:
            owner._record("response", LoggedResponse(self.command, path, range_header, self._status, self._sent),
                          arrival)

    def send_response(self, code, message=None):
        self._status = code
        super().send_response(code, message)

    def _respond(self, owner: HttpServer, path: str, range_header: Optional[str], head: bool) -> None:
        queued = owner.fail.get(path)
        if queued:
            status = queued.pop(0)
            wait = {"Retry-After": owner.retry_after} if status in (429, 503) and owner.retry_after is not None else {}
            self._reply_empty(status, wait)
            return
        if path in owner.redirects:
            location = owner.redirects[path]
            self._reply_empty(302, {"Location": location})
            return
        if owner.require_token is not None:
            if self.headers.get("Authorization") != f"Bearer {owner.require_token}":
                self._reply_empty(401, {"WWW-Authenticate": 'Bearer realm="test"'})
                return
        if path.startswith("/auth/"):
            user, password = owner.basic_auth
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._reply_empty(401, {"WWW-Authenticate": 'Basic realm="test"'})
                return
        if path.startswith("/html/"):
            self._reply_page(LOGIN_PAGE, "text/html; charset=utf-8", head)
            return
        data = owner.files.get(path)
        if data is None:
            self._reply_empty(404)
            return
        total = len(data)
        lie = LIE_BYTES if path.startswith("/lies/") else 0
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        span = None
        if owner.ranges and range_header:
            if_range = self.headers.get("If-Range")
            if if_range is None or if_range.strip() == etag:
                try:
                    span = parse_range(range_header, total)
                except ValueError:
                    self._reply_empty(416, {"Content-Range": f"bytes */{total}", "Accept-Ranges": "bytes"})
                    return
        start, end = span if span is not None else (0, total - 1)
        length = end - start + 1 if total else 0
        if not head and not owner._body_started():
            wait = {"Retry-After": owner.retry_after} if owner.retry_after is not None else {}
            self._reply_empty(429, wait)
            return
        try:
            self._send_file(owner, path, data, span, start, end, total, length, lie, etag, head)
        finally:
            if not head:
                owner._body_done()

    def _send_file(self, owner: HttpServer, path: str, data: bytes, span, start: int, end: int, total: int,
                   length: int, lie: int, etag: str, head: bool) -> None:
        self.send_response(206 if span is not None else 200)
        self.send_header("Content-Type", owner.content_types.get(path, "application/octet-stream"))
        self.send_header("Content-Length", str(length + (lie if span is None else 0)))
        if owner.ranges:
            self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
        if span is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
        self.end_headers()
        if head:
            return
        source = owner.corrupt.get(path, data)
        body = source[start:end + 1] if length else b""
        limit = owner.truncate_at.get(path)
        short = False
        if limit is not None and limit < len(body):
            body, short = body[:limit], True
        if len(body) < length or (lie and span is None):
            short = True
        rate = owner.throttle_bytes_per_second
        piece = max(256, int(rate) // 20) if rate else 256 * 1024
        for offset in range(0, len(body), piece):
            part = body[offset:offset + piece]
            if rate and offset:  # the pause comes before a piece, so a response ends with its last byte
                time.sleep(len(part) / float(rate))
            self.wfile.write(part)
            self.wfile.flush()
            self._sent += len(part)
        if short:  # announced more than we send: hang up so the client sees a short read
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "olah":
        _olah_main(sys.argv[2:])
    else:
        sys.exit("usage: python tests/servers.py olah --config X --log-path D --control C --request-log R")
