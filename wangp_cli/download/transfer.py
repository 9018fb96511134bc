"""Fetching one file: lock, temporary name, HTTP Range resume, retries, size, content and SHA-256 checks, rename.

An interrupted run (even SIGKILL) leaves only ``.<name>.wangp-part`` beside the target, never a file at the final
path; the next run hashes what is there and asks the server for the rest. Lock files live only while a transfer
runs; stale ones (and orphaned metadata) are swept by :func:`sweep`.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import http.client
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from wangp_cli.core.errors import WangpError
from wangp_cli.core.jsonio import json_text
from wangp_cli.core.locks import LOCK_SUFFIX, is_current, output_lock
from wangp_cli.core.safety import redact
from wangp_cli.download.ranges import (
    CHUNK, MAX_CONNECTIONS, Piece, PieceMap, default_connections, plan_pieces, read_partial, retry_after,
)

__all__ = ["CHUNK", "DownloadCancelled", "DownloadError", "RejectedError", "Remote", "UnreachableError",
           "default_connections", "fetch", "resume_offset", "sweep"]

RETRIES = 5
PART_SUFFIX, META_SUFFIX = ".wangp-part", ".wangp-part.json"


class DownloadError(WangpError):
    """A file could not be fetched or verified (exit 1)."""

    def __init__(self, message: str, *, hint: str = "", status: int | None = None):
        super().__init__(redact(message), code="download", hint=hint)
        self.status = status


class UnreachableError(DownloadError):
    """The host cannot be reached at all (name resolution, refused connection): no retry helps."""


class RejectedError(DownloadError):
    """The server's answer cannot become the file: the partial file is discarded."""


@dataclass
class Remote:
    """Where the bytes come from: a URL, the headers to send, and what the server promises."""

    url: str
    headers: dict
    size: int | None = None
    sha256: str | None = None
    version: str = ""  # etag or similar: a partial file is resumed only for the same version
    source: str = ""  # the stable URL (no credentials) that names this file across runs

    @property
    def identity(self) -> dict:
        """What a partial file must match to be resumed."""
        return {"url": self.source or self.url, "size": self.size, "version": self.version, "sha256": self.sha256}


def _backoff() -> float:
    """First retry delay in seconds (doubles each time, at most 8 s); WANGP_DOWNLOAD_BACKOFF changes it."""
    try:
        return max(0.0, float(os.environ.get("WANGP_DOWNLOAD_BACKOFF", "0.5")))
    except ValueError:
        return 0.5


def part_paths(dest: Path) -> tuple[Path, Path, Path]:
    """(temporary file, its metadata, the lock file) beside ``dest``."""
    return tuple(dest.with_name(f".{dest.name}{suffix}") for suffix in (PART_SUFFIX, META_SUFFIX, LOCK_SUFFIX))


def split_userinfo(url: str) -> tuple[str, dict]:
    """``http://user:pass@host/x`` -> (``http://host/x``, {Authorization: Basic ...}); other URLs unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=host)), {"Authorization": f"Basic {token}"}


def resume_offset(remote: Remote, dest: Path) -> int:
    """Bytes of ``dest``'s partial file that a transfer of ``remote`` would keep (0: it starts over): the
    length of a part written in order, or the recorded bytes of one written by ranges."""
    part, meta, _ = part_paths(dest)
    kept = read_partial(part, meta, remote.identity)
    return kept[0] if kept else 0


def sweep(folder: Path) -> list[Path]:
    """Remove what earlier runs left in ``folder`` and nobody uses: unlocked lock files, metadata without a
    partial file. Partial files themselves are kept (they resume). Returns what was removed."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        return []
    removed = []
    for lock in folder.glob(f".*{LOCK_SUFFIX}") if folder.is_dir() else ():
        with contextlib.suppress(OSError), open(lock, "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a transfer is running
            if is_current(handle.fileno(), lock):
                lock.unlink()
                removed.append(lock)
    for meta in folder.glob(f".*{META_SUFFIX}") if folder.is_dir() else ():
        if not meta.with_name(meta.name[:-len(".json")]).exists():
            with contextlib.suppress(OSError):
                meta.unlink()
                removed.append(meta)
    return removed


def sha256_of(path: Path, hasher=None):
    hasher = hasher or hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK * 8), b""):
            hasher.update(block)
    return hasher


def _strip_auth(request_url: str, headers: dict, target_url: str) -> dict:
    """Credentials go only to the host they were meant for (redirects to a CDN get none)."""
    if urlsplit(request_url).netloc == urlsplit(target_url).netloc:
        return headers
    return {k: v for k, v in headers.items() if k.lower() != "authorization"}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def open_url(url: str, headers: dict, *, method: str = "GET", timeout: float = 30.0, redirects: int = 10):
    """urllib request that follows redirects itself, dropping credentials when the host changes."""
    current, current_headers = url, dict(headers)
    for _ in range(redirects + 1):
        request = urllib.request.Request(current, headers=current_headers, method=method)
        try:
            return _OPENER.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            if exc.code in (301, 302, 303, 307, 308) and exc.headers.get("Location"):
                target = urllib.request.urljoin(current, exc.headers["Location"])
                if urlsplit(target).scheme not in ("http", "https"):
                    raise DownloadError(f"{url} redirects to a non-HTTP location") from None
                current_headers = _strip_auth(current, current_headers, target)
                current = target
                exc.close()
                continue
            raise
    raise DownloadError(f"{url}: too many redirects")


def status_error(url: str, status: int, what: str, *, credentials: bool = False) -> DownloadError:
    if status in (401, 403):
        if "huggingface" in what:
            hint = ("set HF_TOKEN to a token that can read this repository (hf auth login); gated models need the "
                    "licence accepted on their page")
        elif credentials:
            hint = "the server refused the user name and password given in the URL"
        else:
            hint = "the server wants credentials: put them in the URL (https://user:password@host/...)"
        return DownloadError(f"{what}: access denied ({status}) for {url}", hint=hint, status=status)
    if status == 404:
        return DownloadError(f"{what}: not found (404): {url}", hint="check the URL in the definition", status=404)
    return DownloadError(f"{what}: HTTP {status} for {url}", status=status)


def read_timeout() -> float:
    """Seconds without data before a connection counts as stalled (WANGP_DOWNLOAD_TIMEOUT, default 30)."""
    try:
        return max(1.0, float(os.environ.get("WANGP_DOWNLOAD_TIMEOUT", "30")))
    except ValueError:
        return 30.0


_PROBED: dict[tuple[str, int], str | None] = {}


def _probe(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be reached (None when a TCP connection opens)."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return f"the host name '{host}' does not resolve (no network, or a wrong name?)"
    try:
        socket.create_connection((host, port), timeout=min(10.0, read_timeout())).close()
    except OSError as exc:
        reason = {errno.ECONNREFUSED: "connection refused", errno.ENETUNREACH: "network unreachable",
                  errno.EHOSTUNREACH: "host unreachable"}.get(exc.errno, "no answer")
        return f"{reason} ({host}:{port})"
    return None


def check_reachable(url: str, what: str) -> None:
    """Fail fast, in one line, when ``url``'s host does not resolve or refuses connections (no retries, no
    library log lines). Skipped when a proxy would carry the request (the proxy resolves names, not us)."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host or parts.scheme not in ("http", "https"):
        return
    if urllib.request.getproxies().get(parts.scheme) and not urllib.request.proxy_bypass(host):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if (host, port) not in _PROBED:
        _PROBED[host, port] = _probe(host, port)
    reason = _PROBED[host, port]
    if reason:
        raise UnreachableError(f"{what}: cannot reach {parts.scheme}://{host}: {reason}",
                               hint="check the network and the URL (HF_ENDPOINT for the Hub); HF_HUB_OFFLINE=1 "
                                    "works with what is on disk")


# Content types that are never a model file (unless the file's own suffix says so): the classic answer of a
# login page, a gated repository or a wrong URL.
_NOT_A_FILE = {"text/html": ("an HTML page", (".html", ".htm")),
               "application/xhtml+xml": ("an HTML page", (".html", ".htm")),
               "application/json": ("a JSON document", (".json",)),
               "application/problem+json": ("a JSON error document", ())}


class NotAFileError(RejectedError):
    """The server answered 200, but with something that is not the file (nothing is kept)."""

    def __init__(self, what: str, url: str, answer: str):
        super().__init__(f"{what}: {url} answered with {answer}, not the file: probably a login page, a gated "
                         f"repository or a wrong URL; nothing was kept",
                         hint="open the URL in a browser to see what it serves; gated files need credentials "
                              "(HF_TOKEN for the Hub, https://user:password@host/... for other servers)")


def safetensors_header_problem(start: bytes, size: int | None) -> str | None:
    """Why ``start`` (the first bytes of a .safetensors body) is not a safetensors header (None if it is)."""
    if len(start) < 9:
        return f"{len(start)} bytes, too short for a safetensors header"
    length = int.from_bytes(start[:8], "little")
    if start[8:9] != b"{" or length < 2 or (size is not None and 8 + length > size):
        text = start[:16].decode("latin-1")
        shown = f"'{text}'" if text.isascii() and text.isprintable() else "bytes " + start[:8].hex(" ")
        return f"data that is not a safetensors file (it starts with {shown})"
    return None


def check_answer(response, dest: Path, what: str, url: str, first: bytes | None, size: int | None) -> None:
    """Refuse a 200 answer that is not the file: an HTML/JSON content type, or (``first`` = the body's first
    bytes of a .safetensors target) no safetensors header."""
    content_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    name = dest.name.split("?", 1)[0].lower()  # WanGP keeps a URL's query string in the file name
    answer, allowed = _NOT_A_FILE.get(content_type, (None, ()))
    if answer and not (allowed and name.endswith(allowed)):
        raise NotAFileError(what, url, f"{answer} ({content_type})")
    if first is not None and name.endswith(".safetensors"):
        problem = safetensors_header_problem(first, size)
        if problem:
            raise NotAFileError(what, url, problem)


class DownloadCancelled(DownloadError):
    """The caller's ``cancel`` event was set: the transfer stopped at its next chunk; its partial file and
    metadata are kept and the next run resumes them."""


class _Retry(Exception):
    """One request failed in a way that another try may fix (a 429/5xx, a broken or stalled connection)."""

    def __init__(self, reason: str, *, status: int | None = None, wait: float | None = None):
        super().__init__(reason)
        self.status, self.wait = status, wait


_TRANSIENT_STATUS = (429, 500, 502, 503, 504)
_TRANSIENT = (OSError, http.client.HTTPException)  # resets, timeouts, short bodies


def _retry_delay(attempt: int, wait: float | None) -> float:
    """The server's Retry-After when it gave one, else doubling backoff (at most 8 s)."""
    return wait if wait is not None else min(_backoff() * 2 ** (attempt - 1), 8.0)


def _fatal_os_error(exc: BaseException, what: str, dest: Path, remote: Remote) -> DownloadError | None:
    """The DownloadError for an OSError no retry fixes (disk full, a host name that does not resolve)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(f"{what}: the disk is full while writing {dest}",
                             hint="free some space and run again: the download resumes")
    if isinstance(getattr(exc, "reason", None), socket.gaierror):
        return UnreachableError(f"{what}: cannot reach {remote.url}: the host name does not resolve",
                                hint="check the network; run again to resume")
    return None


def _open(remote: Remote, headers: dict, timeout: float, what: str, offset: int):
    """GET with ``headers``; HTTP errors become a _Retry (429 and 5xx, with Retry-After) or a DownloadError.
    A 416 means the server has fewer bytes than it announced (``offset`` = where the request started)."""
    try:
        return open_url(remote.url, headers, timeout=timeout)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code == 416 and remote.size is not None and offset < remote.size:
                raise RejectedError(f"{what}: the server announced {remote.size:,} bytes but has only {offset:,} "
                                    f"(416 for the rest); nothing was kept",
                                    hint="the server misreports the file's size: tell its owner, or fetch it by "
                                         "hand into ckpts/") from None
            if exc.code in _TRANSIENT_STATUS:
                raise _Retry(f"HTTP {exc.code}", status=exc.code,
                             wait=retry_after(exc.headers.get("Retry-After"))) from None
            raise status_error(remote.url, exc.code, what,
                               credentials=remote.headers.get("Authorization", "").startswith("Basic ")) from None


def fetch(remote: Remote, dest: Path, *, what: str, progress=None, retries: int = RETRIES,
          timeout: float | None = None, untrusted: bool = False, connections: int | None = None,
          cancel: threading.Event | None = None) -> Path:
    """Download ``remote`` to ``dest`` atomically, resuming a previous partial download of the same version.

    ``connections``: HTTP Range connections at once (None: :func:`default_connections` of the size); more than
    one needs a known size and version, and a server that answers ranges (else one connection, from the same
    first request). ``untrusted``: ``dest`` exists but failed its SHA-256 check; it is replaced only by a
    verified copy. ``cancel``: set it (from any thread) to stop at the next chunk with DownloadCancelled.
    ``progress``: ``start(what, size, done)``, ``advance(count, what)`` (from several threads),
    ``finish(what)``.
    """
    timeout = timeout or read_timeout()
    part, meta, _ = part_paths(dest)
    with output_lock(dest):
        if dest.is_file() and (remote.size is None or dest.stat().st_size == remote.size):
            if not untrusted or sha256_of(dest).hexdigest() == (remote.sha256 or "").lower():
                return dest  # another run finished it meanwhile
        _temporary(meta).unlink(missing_ok=True)  # left by a run killed while writing its metadata
        offset, pieces = read_partial(part, meta, remote.identity) or (0, None)
        wanted = default_connections(remote.size) if connections is None else max(1, min(int(connections),
                                                                                         MAX_CONNECTIONS))
        job = _Job(remote, dest, part, meta, what, progress, retries, timeout, cancel)
        ranged = remote.size is not None and bool(remote.version) and (
            pieces is not None or (wanted > 1 and len(plan_pieces(remote.size, wanted)) > 1))
        if ranged:
            digest = _Ranges(job, pieces or PieceMap.fresh(remote.size, wanted, offset), wanted,
                             fresh=pieces is None, prefix=offset).run()
        else:
            digest = _fetch_stream(job, offset)
        size = part.stat().st_size
        if remote.size is not None and size != remote.size:
            _discard(part, meta)
            raise DownloadError(f"{what}: got {size} bytes, expected {remote.size}; nothing was kept",
                                hint="run again; if it persists the server sends a different file")
        if remote.sha256 and digest != remote.sha256.lower():
            _discard(part, meta)
            raise DownloadError(f"{what}: SHA-256 mismatch (got {digest}, expected {remote.sha256}); nothing was kept",
                                hint="the file on the server differs from the one the definition or Hub names")
        with open(part, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(part, dest)
        meta.unlink(missing_ok=True)
        if progress:
            progress.finish(what)
    return dest


@dataclass
class _Job:
    """One file's transfer: where from, where to, and how to report."""

    remote: Remote
    dest: Path
    part: Path
    meta: Path
    what: str
    progress: object
    retries: int
    timeout: float
    cancel: threading.Event | None

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def cancelled_error(self) -> DownloadCancelled:
        return DownloadCancelled(f"{self.what}: cancelled", hint="run again: the download resumes where it stopped")


def _discard(part: Path, meta: Path) -> None:
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)
    _temporary(meta).unlink(missing_ok=True)


def _temporary(meta: Path) -> Path:
    return meta.with_name(meta.name + ".tmp")


# -- one connection, the file written in order ---------------------------------------------------------------


def _fetch_stream(job: _Job, offset: int, response=None) -> str:
    """One connection (no Range support, unknown size, or one connection asked): append to the part file from
    ``offset``, retrying short reads with ``Range: bytes=<offset>-``. ``response``: an answer already open (a
    200 to the ranged path's first request). Returns the SHA-256 hex digest."""
    remote, part, meta = job.remote, job.part, job.meta
    if not offset:
        part.write_bytes(b"")
    meta.write_text(json_text(remote.identity, indent=None), encoding="utf-8")  # after the part: sweep keeps it
    hasher = sha256_of(part) if offset else hashlib.sha256()
    if job.progress:
        job.progress.start(job.what, remote.size, offset)
    attempt = 0
    while True:
        try:
            offset, hasher = _stream(job, offset, hasher, response)
            break
        except RejectedError:
            _discard(part, meta)
            raise
        except DownloadError:
            raise
        except (_Retry, *_TRANSIENT) as exc:
            fatal = _fatal_os_error(exc, job.what, job.dest, remote)
            if fatal:
                raise fatal from None
            attempt += 1
            if attempt > job.retries:
                raise DownloadError(f"{job.what}: {remote.url} failed after {job.retries} retries: {exc}",
                                    hint="run again later: the download resumes where it stopped") from None
            time.sleep(_retry_delay(attempt, getattr(exc, "wait", None)))
            offset = part.stat().st_size
        finally:
            response = None
    return hasher.hexdigest()


def _stream(job: _Job, offset: int, hasher, response=None):
    remote = job.remote
    if response is None:
        if offset and remote.size is not None and offset >= remote.size:
            return offset, hasher  # killed after the last byte, before the rename
        headers = dict(remote.headers)
        if offset:
            headers["Range"] = f"bytes={offset}-"
        response = _open(remote, headers, job.timeout, job.what, offset)
    with response:
        restart = not offset or response.status != 206  # the server ignored the Range: start over
        if restart:
            offset, hasher = 0, hashlib.sha256()
        first = response.read(CHUNK)
        check_answer(response, job.dest, job.what, remote.url, first if restart else None, remote.size)
        with open(job.part, "wb" if restart else "ab") as handle:
            block = first
            while block:
                handle.write(block)
                hasher.update(block)
                offset += len(block)
                if job.progress:
                    job.progress.advance(len(block), job.what)
                if job.cancelled():
                    raise job.cancelled_error()
                # read1: what has arrived (at most CHUNK), without waiting for a whole CHUNK; bench/download_speed.py
                # plain olah, 268 MB, 2x2 alternating runs: 0.94 and 0.98 of hf download's speed, against 0.93
                # and 0.89 with read(CHUNK)
                block = response.read1(CHUNK)
    if remote.size is not None and offset < remote.size:
        raise OSError(f"connection closed after {offset} of {remote.size} bytes")
    return offset, hasher


# -- several connections, each writing its ranges in place ---------------------------------------------------

# SHA-256 while fetching: a hasher thread follows the contiguous done prefix of the part file (its pages are
# still in the page cache), so only the tail is hashed after the last byte. Measured here (SHA-NI, 2 shared
# cores): hashlib runs at 1.3-1.7 GB/s on 256 MB (in memory and from a cached file alike), so hashing after
# assembly adds ~0.6-0.8 s per GB after the transfer; bench/download_speed.py, 256 MiB over 8 unthrottled
# loopback connections: 0.55 s hashing while fetching against 0.66 s after assembly (best of 2), and the gap
# grows with slower links (the follower is then done with all but the last piece). hashlib releases the GIL on
# large blocks, so the follower runs beside the connections. HASH_WHILE_FETCHING = False hashes after assembly.
HASH_WHILE_FETCHING = True
_HASH_BLOCK = 8 * CHUNK
_JOIN_GRACE = 5.0  # seconds a stopping connection gets to save its last chunk


class _Ranges:
    """A file fetched over several Range connections into a preallocated (sparse) part file.

    Each connection takes the lowest piece nobody holds, GETs ``bytes=<pos>-<end>``, and writes CHUNK at a time
    at its offset (its own file handle); after each write the metadata (identity + ``pieces``: ``[start, end,
    done]``) is rewritten (temporary file, rename), so a SIGKILL loses at most the chunk each connection was
    reading. Only the first connection starts at once: its 206 starts the others, its 200 (no Range support)
    becomes the single-connection transfer of that same answer.
    """

    def __init__(self, job: _Job, pieces: PieceMap, connections: int, *, fresh: bool, prefix: int):
        self.job, self.pieces, self.fresh, self.prefix = job, pieces, fresh, prefix
        self.size = job.remote.size
        self.limit = connections  # connections allowed now: a 429 lowers it (never below 1)
        self.stop = threading.Event()
        self.answered = threading.Event()  # the first connection's answer came
        self.fallback = None  # its 200 answer, when the server ignores ranges
        self.error: BaseException | None = None
        self.problem: BaseException | None = None  # the last transient failure (for the final message)
        self.closed = False  # set once fetch() stops waiting: nothing is written or recorded after
        self.not_before = 0.0  # no new request before this time (Retry-After)
        self.running = 0
        self.counts = threading.Lock()
        self.saving = threading.Lock()
        self.started = False
        self.digest: str | None = None
        self.hash_error: BaseException | None = None
        self.threads: list[threading.Thread] = []

    # - the calling thread -
    def run(self) -> str:
        job = self.job
        if self.fresh:
            with open(job.part, "r+b" if self.prefix else "wb") as handle:
                handle.truncate(self.size)  # sparse: the pieces land at their offsets
        self._save()
        hasher = threading.Thread(target=self._hash, name="wangp-sha256", daemon=True)
        hasher.start()
        self._spawn()
        try:
            spawned = False
            while True:
                if job.cancelled() and not self.stop.is_set():
                    self._fail(job.cancelled_error())
                if self.answered.is_set() and not spawned and self.fallback is None and not self.stop.is_set():
                    spawned = True
                    for _ in range(self.limit - 1):
                        self._spawn()
                if self.error is not None or not any(t.is_alive() for t in self.threads):
                    break
                time.sleep(0.02)
            if self.fallback is not None:
                self._halt()
                hasher.join()
                return _fetch_stream(job, 0, self.fallback)
            if self.error is None and not self.pieces.complete:
                self.error = DownloadError(f"{job.what}: {job.remote.url} failed after {job.retries} retries: "
                                           f"{self.problem}", hint="run again later: the download resumes where "
                                                                   "it stopped")
            if self.error is not None:
                raise self.error
            self._start_progress()
            while hasher.is_alive():
                hasher.join(0.1)
            if self.digest is None and job.part.stat().st_size == self.size:
                raise DownloadError(f"{job.what}: cannot read back {job.part} to verify it: {self.hash_error}",
                                    hint="check the disk; run again: the download resumes")
            return self.digest
        except BaseException as exc:  # KeyboardInterrupt included: what is written is recorded; stop the rest
            self._shutdown()
            if isinstance(exc, RejectedError):
                _discard(job.part, job.meta)
            raise

    def _shutdown(self) -> None:
        self._halt()
        deadline = time.monotonic() + _JOIN_GRACE
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self.saving:
            self.closed = True

    def _halt(self) -> None:
        """Stop every connection at its next read, and the hasher now (it may be waiting for bytes)."""
        self.stop.set()
        with self.pieces.lock:
            self.pieces.lock.notify_all()

    def _spawn(self) -> None:
        with self.counts:
            self.running += 1
        thread = threading.Thread(target=self._connection, name=f"wangp-range-{len(self.threads)}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _fail(self, error: BaseException) -> None:
        with self.counts:
            if self.error is None:
                self.error = error
        self._halt()

    def _start_progress(self) -> None:
        with self.counts:
            if self.started:
                return
            self.started = True
        if self.job.progress:
            self.job.progress.start(self.job.what, self.size, self.pieces.done)

    def _save(self) -> None:
        """Metadata after the data: temporary file, then rename (a reader sees the old or the new one)."""
        meta = self.job.meta
        text = json_text({**self.job.remote.identity, "pieces": self.pieces.to_json()}, indent=None)
        temporary = _temporary(meta)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, meta)

    def _commit(self, piece: Piece, count: int) -> bool:
        with self.saving:
            if self.closed:
                return False
            self.pieces.record(piece, count)
            self._save()
        return True

    # - the hasher thread -
    def _hash(self) -> None:
        try:
            self._follow()
        except OSError as exc:
            self.hash_error = exc

    def _follow(self) -> None:
        hasher, offset = hashlib.sha256(), 0
        lock = self.pieces.lock
        with open(self.job.part, "rb", buffering=0) as handle:  # unbuffered: no read-ahead of bytes not yet written
            while offset < self.size:
                with lock:
                    while not self.stop.is_set():
                        ready = self.pieces.prefix()
                        if ready >= self.size or (HASH_WHILE_FETCHING and ready > offset):
                            break
                        lock.wait(0.5)
                if self.stop.is_set():
                    return
                handle.seek(offset)
                while offset < ready and not self.stop.is_set():
                    block = handle.read(min(_HASH_BLOCK, ready - offset))
                    if not block:
                        return  # the part file shrank: the size check reports it
                    hasher.update(block)
                    offset += len(block)
                if self.stop.is_set():
                    return
        self.digest = hasher.hexdigest()

    # - connection threads -
    def _connection(self) -> None:
        failures = 0
        handle = None
        try:
            # its own handle (position included): never one closed or moved under it; seek + write, as os.pwrite
            # does not exist on Windows
            handle = open(self.job.part, "r+b", buffering=0)
            while not self.stop.is_set():
                piece = self.pieces.take()
                if piece is None:
                    return
                got, problem = 0, None
                try:
                    got, problem = self._fetch_piece(handle, piece)
                except _Handover:
                    return
                except _Retry as exc:
                    problem = exc
                except _TRANSIENT as exc:  # the request itself failed (refused, reset, timed out)
                    fatal = _fatal_os_error(exc, self.job.what, self.job.dest, self.job.remote)
                    if fatal:
                        self._fail(fatal)
                        return
                    problem = exc
                except BaseException as exc:
                    self._fail(exc)
                    return
                finally:
                    self.pieces.release(piece)
                if problem is None:
                    continue
                self.problem = problem
                failures = 1 if got else failures + 1
                wait = getattr(problem, "wait", None)
                if getattr(problem, "status", None) == 429 and self._leave():
                    self._hold_off(_retry_delay(failures, wait))
                    return  # a mirror's limit: one connection fewer from now on
                if failures > self.job.retries:
                    return  # this connection gives up; the others finish (run() reports when none is left)
                delay = _retry_delay(failures, wait)
                if wait is not None:
                    self._hold_off(delay)
                self.stop.wait(delay)
        finally:
            if handle is not None:
                handle.close()
            with self.counts:
                self.running -= 1

    def _leave(self) -> bool:
        """After a 429: lower the connection limit by one (never below 1); True when this connection is one too
        many and goes (its piece is handed to the others)."""
        with self.counts:
            self.limit = max(1, self.limit - 1)
            return self.running > self.limit

    def _hold_off(self, delay: float) -> None:
        with self.counts:
            self.not_before = max(self.not_before, time.monotonic() + delay)

    def _wait_turn(self) -> None:
        while not self.stop.is_set():
            with self.counts:
                left = self.not_before - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(left, 0.5))

    def _request(self, piece: Piece):
        """The answer for ``bytes=<pos>-<end>``, checked: (response, first offset past what it serves)."""
        job, remote = self.job, self.job.remote
        headers = dict(remote.headers)
        headers["Range"] = f"bytes={piece.pos}-{piece.end - 1}"
        response = _open(remote, headers, job.timeout, job.what, piece.pos)
        try:
            if response.status == 200:
                if not self.answered.is_set():  # the very first answer: the server ignores ranges
                    self.fallback = response
                    self.answered.set()
                    raise _Handover()
                raise _Retry("the server answered a Range request with the whole file")
            served = _content_range(response.headers.get("Content-Range"))
            if served is None or served[2] != self.size or served[0] != piece.pos:
                shown = response.headers.get("Content-Range")
                raise RejectedError(f"{job.what}: asked for bytes {piece.pos}-{piece.end - 1} of {self.size:,}, "
                                    f"the server sent '{shown}'; nothing was kept",
                                    hint="the file changed on the server, or it misreports ranges: run again")
            check_answer(response, job.dest, job.what, remote.url, None, self.size)
        except BaseException:
            if self.fallback is not response:
                response.close()
            raise
        self._start_progress()
        self.answered.set()
        return response, served[1] + 1

    def _fetch_piece(self, handle, piece: Piece) -> tuple[int, BaseException | None]:
        """Fetch what is left of ``piece``; (bytes recorded, the transient problem that ended it or None)."""
        self._wait_turn()
        if self.stop.is_set():
            return 0, None
        response, served_end = self._request(piece)
        job, got, buffer = self.job, 0, bytearray()
        with response:
            while True:
                pos = piece.pos
                stop_at = min(self.pieces.reserve(piece, CHUNK), served_end)
                problem = None
                while pos + len(buffer) < stop_at and not self.stop.is_set():
                    try:
                        data = response.read1(stop_at - pos - len(buffer))
                    except _TRANSIENT as exc:  # reset, timeout, short body: what arrived is still written
                        problem = exc
                        break
                    if not data:
                        problem = _Retry(f"connection closed at byte {pos + len(buffer):,} of {self.size:,}")
                        break
                    buffer += data
                if buffer:
                    if pos == 0:
                        check_answer(response, job.dest, job.what, job.remote.url, bytes(buffer[:CHUNK]), self.size)
                    _write_at(handle, buffer, pos)
                    if not self._commit(piece, len(buffer)):
                        return got, None
                    if job.progress:
                        job.progress.advance(len(buffer), job.what)
                    got += len(buffer)
                    buffer.clear()
                if problem is not None:
                    return got, problem
                if self.stop.is_set() or piece.pos >= min(piece.end, served_end):
                    return got, None


class _Handover(Exception):
    """The first connection's answer is a 200: the calling thread streams it instead."""


def _write_at(handle, data: bytearray, offset: int) -> None:
    handle.seek(offset)
    view = memoryview(data)
    while view:
        view = view[handle.write(view):]


def _content_range(header: str | None) -> tuple[int, int, int] | None:
    """``bytes a-b/total`` -> (a, b, total); None when absent or not that form."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+)\s*", header or "")
    return tuple(int(g) for g in match.groups()) if match else None
