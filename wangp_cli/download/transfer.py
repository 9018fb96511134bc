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
import json
import os
import socket
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

CHUNK = 1 << 20
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
    """Bytes of ``dest``'s partial file that a transfer of ``remote`` would keep (0: it starts over)."""
    part, meta, _ = part_paths(dest)
    if remote.size is None or not remote.version or not part.is_file():
        return 0
    try:
        same = json.loads(meta.read_text(encoding="utf-8")) == remote.identity
    except (OSError, ValueError):
        return 0
    size = part.stat().st_size
    return size if same and size <= remote.size else 0


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


def fetch(remote: Remote, dest: Path, *, what: str, progress=None, retries: int = RETRIES,
          timeout: float | None = None, untrusted: bool = False) -> Path:
    """Download ``remote`` to ``dest`` atomically, resuming a previous partial download of the same version.

    ``untrusted``: ``dest`` exists but failed its SHA-256 check; it is replaced only by a verified copy.
    """
    timeout = timeout or read_timeout()
    part, meta, _ = part_paths(dest)
    with output_lock(dest):
        if dest.is_file() and (remote.size is None or dest.stat().st_size == remote.size):
            if not untrusted or sha256_of(dest).hexdigest() == (remote.sha256 or "").lower():
                return dest  # another run finished it meanwhile
        offset = resume_offset(remote, dest)
        if not offset:
            part.write_bytes(b"")
        meta.write_text(json_text(remote.identity, indent=None), encoding="utf-8")  # after the part: sweep keeps it
        hasher = sha256_of(part) if offset else hashlib.sha256()
        if progress:
            progress.start(what, remote.size, offset)
        attempt = 0
        while True:
            try:
                offset, hasher = _stream(remote, dest, part, offset, hasher, progress, timeout, what)
                break
            except RejectedError:
                _discard(part, meta)
                raise
            except DownloadError:
                raise
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DownloadError(f"{what}: the disk is full while writing {dest}",
                                        hint="free some space and run again: the download resumes") from None
                if isinstance(getattr(exc, "reason", None), socket.gaierror):
                    raise UnreachableError(f"{what}: cannot reach {remote.url}: the host name does not resolve",
                                           hint="check the network; run again to resume") from None
                attempt += 1
                if attempt > retries:
                    raise DownloadError(f"{what}: {remote.url} failed after {retries} retries: {exc}",
                                        hint="run again later: the download resumes where it stopped") from None
                time.sleep(min(_backoff() * 2 ** (attempt - 1), 8.0))
                offset = part.stat().st_size
        size = part.stat().st_size
        if remote.size is not None and size != remote.size:
            _discard(part, meta)
            raise DownloadError(f"{what}: got {size} bytes, expected {remote.size}; nothing was kept",
                                hint="run again; if it persists the server sends a different file")
        digest = hasher.hexdigest()
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


def _discard(part: Path, meta: Path) -> None:
    part.unlink(missing_ok=True)
    meta.unlink(missing_ok=True)


def _stream(remote: Remote, dest: Path, part: Path, offset: int, hasher, progress, timeout: float, what: str):
    headers = dict(remote.headers)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = open_url(remote.url, headers, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and remote.size is not None:
            if offset >= remote.size:
                return offset, hasher
            raise RejectedError(f"{what}: the server announced {remote.size:,} bytes but has only {offset:,} "
                                f"(416 for the rest); nothing was kept",
                                hint="the server misreports the file's size: tell its owner, or fetch it by "
                                     "hand into ckpts/") from None
        if exc.code in (429, 500, 502, 503, 504):
            raise OSError(f"HTTP {exc.code}") from None
        raise status_error(remote.url, exc.code, what,
                           credentials=remote.headers.get("Authorization", "").startswith("Basic ")) from None
    with response:
        restart = not offset or response.status != 206  # the server ignored the Range: start over
        if restart:
            offset, hasher = 0, hashlib.sha256()
        first = response.read(CHUNK)
        check_answer(response, dest, what, remote.url, first if restart else None, remote.size)
        with open(part, "wb" if restart else "ab") as handle:
            block = first
            while block:
                handle.write(block)
                hasher.update(block)
                offset += len(block)
                if progress:
                    progress.advance(len(block))
                block = response.read(CHUNK)
    if remote.size is not None and offset < remote.size:
        raise OSError(f"connection closed after {offset} of {remote.size} bytes")
    return offset, hasher
