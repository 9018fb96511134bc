"""``wangp download``: plan, size and fetch everything a definition needs (huggingface_hub for Hub URLs).

Importing this package is cheap; huggingface_hub is imported inside the functions that talk to the network.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import WangpError
from wangp_cli.core.outputs import NAME_MAX, OutputError, check_folder_writable, check_free_space, name_too_long
from wangp_cli.core.safety import clean, redact
from wangp_cli.core.variants import Preference
from wangp_cli.download.plan import FilePlan, Plan, add_component_files, build_plan, safe_join
from wangp_cli.download.transfer import (
    DownloadCancelled, DownloadError, Remote, UnreachableError, check_reachable, fetch, open_url, resume_offset, sha256_of,
    split_userinfo, status_error, sweep,
)
from wangp_cli.download.verified import recorded, remember

__all__ = ["DownloadCancelled", "DownloadError", "Plan", "UnreachableError", "build_plan", "download", "resolve_plan"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def offline() -> bool:
    """HF_HUB_OFFLINE as set now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _token():
    """HF_TOKEN or the stored login; never printed."""
    from huggingface_hub import get_token

    return get_token()


def _hub_remote(item: FilePlan, token, notices: list[str]) -> Remote:
    """Size, SHA-256 (the LFS etag) and download location of a Hub file, through huggingface_hub."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError, GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError,
    )
    from huggingface_hub.utils import build_hf_headers

    hub = item.hub
    url = hf_hub_url(hub.repo_id, hub.path, revision=hub.revision)
    what = f"{', '.join(item.owners)}: {item.url}"
    try:
        try:
            meta = get_hf_file_metadata(url, token=token)
        except (RepositoryNotFoundError, HfHubHTTPError) as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            if status == 401 and token:  # a stale token breaks public files: try once without it
                meta = get_hf_file_metadata(url, token=False)
                token = False
                notice = "your Hugging Face token is invalid (401): public files were fetched without it"
                if notice not in notices:
                    notices.append(notice)
            else:
                raise
    except GatedRepoError:
        raise DownloadError(f"{what}: {hub.repo_id} is gated", hint="accept its licence on the Hub page and set "
                                                                   "HF_TOKEN (hf auth login)", status=403) from None
    except RevisionNotFoundError:
        raise DownloadError(f"{what}: revision '{hub.revision}' not found in {hub.repo_id}", status=404) from None
    except EntryNotFoundError:
        raise DownloadError(f"{what}: not found (404) in {hub.repo_id}@{hub.revision}: {hub.path}",
                            hint="check the URL in the definition", status=404) from None
    except RepositoryNotFoundError:
        raise DownloadError(f"{what}: repository {hub.repo_id} not found or private (401/404)",
                            hint="check the URL; for a private repository set HF_TOKEN (hf auth login)",
                            status=401) from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        raise DownloadError(f"{what}: HTTP {status} from the Hub", status=status) from None
    etag = (meta.etag or "").lower()
    sha256 = item.sha256 or (etag if _SHA256.match(etag) else None)
    headers = build_hf_headers(token=token)
    headers["Accept-Encoding"] = "identity"
    # The resolve URL, not meta.location: each GET follows the (signed, expiring) redirect itself and drops
    # the token when it leaves the Hub's host. Pinned to the commit the metadata came from: every range of a file
    # comes from that one commit even if the branch moves during the download (a partial file's identity stays
    # the branch URL and the etag, so a resume after a new commit is still checked by its etag).
    pinned = hf_hub_url(hub.repo_id, hub.path, revision=meta.commit_hash) if meta.commit_hash else url
    return Remote(pinned, headers, meta.size, sha256, etag or meta.commit_hash or f"size={meta.size}", source=url)


def _http_remote(item: FilePlan) -> Remote:
    """Size and validator of a plain http(s) file, from a HEAD request. Credentials written in the URL
    (``https://user:password@host/...``) are sent as HTTP basic auth to that host only."""
    import urllib.error

    url, auth = split_userinfo(item.url)
    headers = {"User-Agent": "wangp", "Accept-Encoding": "identity", **auth}
    try:
        with open_url(url, headers, method="HEAD", timeout=30) as response:
            length = response.headers.get("Content-Length")
            etag = response.headers.get("ETag") or response.headers.get("Last-Modified") or ""
            size = int(length) if length and length.isdigit() else None
            return Remote(url, headers, size, item.sha256, etag or f"size={size}", source=url)
    except urllib.error.HTTPError as exc:
        raise status_error(url, exc.code, ", ".join(item.owners), credentials=bool(auth)) from None
    except (urllib.error.URLError, OSError) as exc:
        raise UnreachableError(f"{', '.join(item.owners)}: cannot reach {url}: {getattr(exc, 'reason', exc)}",
                               hint="check the network and the URL") from None


def _list_components(plan: Plan, token) -> None:
    """Expand each component request into files (the repo listed through huggingface_hub)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    for request in plan.components:
        try:
            tree = list(HfApi().list_repo_tree(request.repo_id, revision=request.revision, recursive=True,
                                               token=token))
        except (RepositoryNotFoundError, HfHubHTTPError) as exc:
            raise DownloadError(f"{', '.join(request.owners)}: cannot list components of {request.repo_id}: "
                                f"{type(exc).__name__}", hint="check the network, HF_ENDPOINT and HF_TOKEN") from None
        files = []
        for entry in tree:
            if getattr(entry, "size", None) is None and not hasattr(entry, "lfs"):
                continue  # a folder
            lfs = getattr(entry, "lfs", None)
            sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
            files.append((entry.path, entry.size, sha))
        add_component_files(plan, request, files)
    plan.components = []


class _Unreachable:
    """Turns transport failures (no network, refused connection, timeouts) into an UnreachableError."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, WangpError) or not isinstance(exc, Exception):
            return False
        from huggingface_hub import constants

        raise UnreachableError(f"{self.what}: cannot reach {constants.ENDPOINT}: {type(exc).__name__}: {exc}",
                               hint="check the network and HF_ENDPOINT; HF_HUB_OFFLINE=1 works with what is on "
                                    "disk") from None


def _check_hosts(plan: Plan) -> None:
    """One fast connection test per host before huggingface_hub's retries could start (and print)."""
    from huggingface_hub import constants

    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)  # its retry warnings are not for users
    if plan.components or any(f.hub for f in plan.files if not f.local):
        check_reachable(constants.ENDPOINT, "the Hub (HF_ENDPOINT)")
    for item in plan.files:
        if not item.local and not item.hub:
            check_reachable(split_userinfo(item.url)[0], ", ".join(item.owners))


def _target(home, item: FilePlan) -> Path:
    return Path(safe_join(str(home.root), item.dest))


def _on_disk(home, item: FilePlan) -> Path:
    """The file WanGP would use: the first of the item's places that exists (v12 searches ``ckpts/`` then the
    WanGP folder), else where the download puts it."""
    found = home.locate(item.lookup)
    return Path(safe_join(str(home.root), found)) if found else _target(home, item)


_SLOW_HASH = 1 << 30  # files from this size on get a "verifying" line


def _check_present(item: FilePlan, target: Path, verify: bool, rehash: bool, notices: list[str], report) -> None:
    """Present = a file of the expected size; with ``verify`` and a known SHA-256, also the right bytes (a hash
    recorded on the file at its current size and time is trusted unless ``rehash``)."""
    item.present = target.is_file() and (item.size is None or target.stat().st_size == item.size)
    item.verified = None
    if not (item.present and verify and item.sha256):
        return
    if not rehash and recorded(target, item.sha256):
        item.verified = True
        return
    if report and target.stat().st_size >= _SLOW_HASH:
        report(f"verifying {item.dest} ({target.stat().st_size:,} bytes)...")
    item.verified = sha256_of(target).hexdigest() == item.sha256.lower()
    if item.verified:
        remember(target, item.sha256)
    else:
        item.present = False
        notices.append(f"{item.dest}: the file on disk does not match its SHA-256 ({item.sha256}): it is not "
                       + ("used" if item.local else "used; it is replaced once a fresh copy verifies"))


def _find_reuse(item: FilePlan, home, index, link_mode: str, notices: list[str], report) -> None:
    """Look for a missing file in the --link-from folders (same name and size, the SHA-256 when known); the
    candidates refused become notices."""
    from wangp_cli.download.reuse import find_reuse

    target = _target(home, item)
    rejected: list = []
    item.reuse = find_reuse(index, target.name, item.size, item.sha256, target, link_mode, report=report,
                            rejected=rejected)
    for path, reason in rejected:
        notices.append(f"{item.dest}: not reusing {clean(str(path))}: {reason}")


def resolve_plan(plan: Plan, home, *, network: bool = True, verify: bool = False, rehash: bool = False,
                 report=None, reuse=None, link_mode: str = "auto") -> Plan:
    """Fill presence, sizes, hashes and resumable bytes. Without network (or offline), only presence is known.
    ``verify``: hash present files whose SHA-256 is known (the definition's, or the Hub's LFS hash), trusting a
    hash recorded on the file (download.verified) unless ``rehash``; ``report(text)`` hears about the slow ones.
    ``reuse``: a download.reuse.ReuseIndex of --link-from folders where missing files are looked for."""
    token = _token() if network else None
    if network:
        _check_hosts(plan)
    if network and plan.components:
        with _Unreachable("listing components"):
            _list_components(plan, token)
    for item in plan.files:
        target = _target(home, item)
        if network and not item.local:
            with _Unreachable(item.url):
                remote = _hub_remote(item, token, plan.notices) if item.hub else _http_remote(item)
            plan.remotes[item.dest] = remote
            item.size = remote.size if remote.size is not None else item.size
            item.sha256 = remote.sha256 or item.sha256
            item.partial = resume_offset(remote, target)
        on_disk = _on_disk(home, item)
        _check_present(item, on_disk, verify, rehash, plan.notices, report)
        item.found = os.path.relpath(on_disk, home.root).replace(os.sep, "/") if item.present else None
        if reuse is not None and not item.present and not item.local and not os.path.lexists(target):
            # (a mismatched file at the target is replaced by a verified download, never by a link)
            _find_reuse(item, home, reuse, link_mode, plan.notices, report)
    return plan


def check_targets(plan: Plan, home) -> None:
    """Refuse before the first byte what would make a transfer fail at its end: a folder or special file at
    the final name, a name over 255 bytes, a folder that cannot be written."""
    for item in plan.missing:
        if item.local:
            continue
        target = _target(home, item)
        if name_too_long(target.name):
            raise OutputError(f"cannot download {item.dest}: its file name is longer than {NAME_MAX} bytes",
                              code="name-too-long", hint="rename the file in the definition's URL")
        if target.exists() and not target.is_file():
            kind, code = ("a directory", "is-directory") if target.is_dir() else ("not a regular file", "not-a-file")
            raise OutputError(f"cannot download to {item.dest}: it is {kind}", code=code,
                              hint="remove or rename it: the download needs that name for the file")
        try:
            check_folder_writable(target.parent, what="ckpts folder")
        except OutputError as exc:
            exc.hint = "make it writable, or point --home at a writable home folder"
            raise


def check_disk_space(plan: Plan, home) -> None:
    """Refuse before the first byte when the missing files cannot fit (resumable bytes are counted, and reused
    files that are copied rather than linked)."""
    from wangp_cli.download.reuse import reuse_disk_space

    needed = plan.missing_bytes + sum(reuse_disk_space(f.reuse, f.size) for f in plan.missing)
    if needed:
        check_free_space(home.ckpts if home.ckpts.exists() else home.root, needed,
                         what=f"{len(plan.missing)} download(s)")


def _obtain(plan: Plan, home, item: FilePlan, progress, connections: int | None, cancel, on_file=None) -> dict:
    """Fetch one missing file, or link/copy it from where --link-from found it."""
    target = _target(home, item)
    if item.reuse is not None:
        from wangp_cli.download.reuse import materialize

        method = materialize(item.reuse, target, sha256=item.sha256)
        status, extra = "reused", {"method": method, "from": str(item.reuse.source)}
    else:
        what = clean(item.dest)
        try:
            fetch(plan.remotes[item.dest], target, what=what, progress=progress, untrusted=item.verified is False,
                  connections=connections, cancel=cancel)
        except BaseException:
            if progress:
                progress.finish(what)  # its bar goes; the error says what happened
            raise
        status, extra = "downloaded", {}
    item.present, item.verified, item.partial = True, bool(item.sha256) or None, 0
    if item.sha256:
        remember(target, item.sha256)  # verified on its way here: the next run need not hash it
    result = {"dest": item.dest, "status": status, "size": target.stat().st_size, "verified": item.verified,
              **extra}
    if on_file:
        on_file(result)
    return result


def download(plan: Plan, home, *, progress=None, jobs: int = 1, connections: int | None = None,
             on_file=None) -> list[dict]:
    """Fetch every missing file of a resolved plan (``jobs`` files at a time, ``connections`` per file: None
    chooses by size); local paths are checked, never copied. A failure stops the other transfers at their next
    chunk, their partial files kept for the next run. ``on_file(result)``: each file fetched or reused, once it
    is in place (from the transfer threads), with its record of the returned list."""
    bad_local = [f for f in plan.missing if f.local]
    if bad_local:
        raise WangpError("local files are missing or do not match their sha256: "
                         + ", ".join(f.dest for f in bad_local), code="missing",
                         hint="local paths in a definition are used as they are: put the right files there")
    check_targets(plan, home)
    for folder in sorted({_target(home, f).parent for f in plan.files if not f.local}):
        sweep(folder)
    check_disk_space(plan, home)
    results: dict[str, dict] = {}
    for item in plan.files:
        if item.present or item.local:
            results[item.dest] = {"dest": item.dest, "status": "present", "verified": item.verified}
    todo = [f for f in plan.files if f.dest not in results]
    cancel = threading.Event()
    if jobs <= 1 or len(todo) <= 1:
        for item in todo:  # in this thread: Ctrl-C reaches the transfer directly
            results[item.dest] = _obtain(plan, home, item, progress, connections, cancel, on_file)
    else:
        _obtain_all(plan, home, todo, results, progress, connections, cancel, jobs, on_file)
    return [results[f.dest] for f in plan.files]


def _obtain_all(plan: Plan, home, todo: list[FilePlan], results: dict, progress, connections, cancel, jobs,
                on_file=None) -> None:
    """``jobs`` files at a time; the first failure (or Ctrl-C) cancels the rest at their next chunk."""
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="wangp-download")
    futures = {pool.submit(_obtain, plan, home, item, progress, connections, cancel, on_file): item for item in todo}
    try:
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            cancel.set()
            wait(futures)
            raise failed[0].exception()
        for future, item in futures.items():
            results[item.dest] = future.result()
    finally:
        cancel.set()  # a failure or Ctrl-C: the others stop at their next chunk, their partial files kept
        pool.shutdown(wait=True, cancel_futures=True)


def plan_for(catalog: Catalog, model_ids: list[str], preference: Preference, *, all_variants: bool = False,
             components: bool = True, network: bool | None = None, verify: bool = False, rehash: bool = False,
             report=None, roles: tuple[str, ...] | None = None, link_from: list[Path] | None = None,
             link_mode: str = "auto") -> Plan:
    """Build and resolve the plan (sizes over the network unless offline); ``roles`` keeps only the files of
    those roles (``("transformer", "transformer2")``: the transformers alone); ``link_from``: folders where
    missing files are looked for before downloading (see download.reuse)."""
    plan = build_plan(catalog, model_ids, preference, all_variants=all_variants, components=components)
    if roles is not None:
        plan.files = [f for f in plan.files if f.role in roles]
    if network is None:
        network = not offline()
    index = None
    if link_from:
        from wangp_cli.download.reuse import ReuseIndex

        index = ReuseIndex.scan(link_from)
    return resolve_plan(plan, catalog.home, network=network, verify=verify, rehash=rehash, report=report,
                        reuse=index, link_mode=link_mode)


def offline_error(plan: Plan) -> WangpError:
    missing = [f.dest for f in plan.missing]
    return WangpError(redact("HF_HUB_OFFLINE is set and files are missing: " + ", ".join(missing)), code="offline",
                      hint="unset HF_HUB_OFFLINE to download them")
