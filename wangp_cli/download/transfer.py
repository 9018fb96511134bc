"""Fetching one file: lock, temporary name, HTTP Range resume, retries, size and SHA-256 checks, rename.

An interrupted run (even SIGKILL) leaves only ``.<name>.wangp-part`` beside the target, never a file at the final
path; the next run hashes what is there and asks the server for the rest.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from wangp_cli.core.errors import WangpError

CHUNK = 1 << 20
RETRIES = 5


class DownloadError(WangpError):
    """A file could not be fetched or verified (exit 1)."""

    def __init__(self, message: str, *, hint: str = "", status: int | None = None):
        super().__init__(message, code="download", hint=hint)
        self.status = status


@dataclass
class Remote:
    """Where the bytes come from: a URL, the headers to send, and what the server promises."""

    url: str
    headers: dict
    size: int | None = None
    sha256: str | None = None
    version: str = ""  # etag or similar: a partial file is resumed only for the same version


def _backoff() -> float:
    """First retry delay in seconds (doubles each time, at most 8 s); WANGP_DOWNLOAD_BACKOFF changes it."""
    try:
        return max(0.0, float(os.environ.get("WANGP_DOWNLOAD_BACKOFF", "0.5")))
    except ValueError:
        return 0.5


def part_paths(dest: Path) -> tuple[Path, Path, Path]:
    """(temporary file, its metadata, the lock file) beside ``dest``."""
    return (dest.with_name(f".{dest.name}.wangp-part"), dest.with_name(f".{dest.name}.wangp-part.json"),
            dest.with_name(f".{dest.name}.wangp-lock"))


@contextlib.contextmanager
def file_lock(path: Path):
    """An exclusive lock held while one process fetches a target (others wait, then find it present)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no lock, still atomic renames
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


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


def status_error(url: str, status: int, what: str) -> DownloadError:
    if status in (401, 403):
        hint = ("set HF_TOKEN to a token that can read this repository (hf auth login); gated models need the "
                "licence accepted on their page" if "huggingface" in what else "the server wants credentials")
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


def fetch(remote: Remote, dest: Path, *, what: str, progress=None, retries: int = RETRIES,
          timeout: float | None = None) -> Path:
    """Download ``remote`` to ``dest`` atomically, resuming a previous partial download of the same version."""
    timeout = timeout or read_timeout()
    part, meta, lock = part_paths(dest)
    with file_lock(lock):
        if dest.is_file() and (remote.size is None or dest.stat().st_size == remote.size):
            return dest  # another run finished it meanwhile
        identity = {"url": remote.url, "size": remote.size, "version": remote.version, "sha256": remote.sha256}
        offset = 0
        if part.exists():
            try:
                same = json.loads(meta.read_text(encoding="utf-8")) == identity
            except (OSError, ValueError):
                same = False
            offset = part.stat().st_size if same and remote.size is not None and remote.version else 0
            if remote.size is not None and offset > remote.size:
                offset = 0
        meta.write_text(json.dumps(identity), encoding="utf-8")
        hasher = sha256_of(part) if offset else hashlib.sha256()
        if not offset:
            part.write_bytes(b"")
        if progress:
            progress.start(what, remote.size, offset)
        attempt = 0
        while True:
            try:
                offset, hasher = _stream(remote, part, offset, hasher, progress, timeout)
                break
            except DownloadError:
                raise
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DownloadError(f"{what}: the disk is full while writing {dest}",
                                        hint="free some space and run again: the download resumes") from None
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


def _stream(remote: Remote, part: Path, offset: int, hasher, progress, timeout: float):
    headers = dict(remote.headers)
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = open_url(remote.url, headers, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and remote.size is not None and offset >= remote.size:
            return offset, hasher
        if exc.code in (429, 500, 502, 503, 504):
            raise OSError(f"HTTP {exc.code}") from None
        raise status_error(remote.url, exc.code, "download") from None
    with response:
        if offset and response.status != 206:  # the server ignored the Range: start over
            offset, hasher = 0, hashlib.sha256()
            mode = "wb"
        else:
            mode = "ab"
        with open(part, mode) as handle:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                handle.write(block)
                hasher.update(block)
                offset += len(block)
                if progress:
                    progress.advance(len(block))
    if remote.size is not None and offset < remote.size:
        raise OSError(f"connection closed after {offset} of {remote.size} bytes")
    return offset, hasher
