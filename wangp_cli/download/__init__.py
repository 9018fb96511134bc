"""``wangp download``: plan, size and fetch everything a definition needs (huggingface_hub for Hub URLs).

Importing this package is cheap; huggingface_hub is imported inside the functions that talk to the network.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import WangpError
from wangp_cli.core.variants import Preference
from wangp_cli.download.plan import FilePlan, Plan, add_component_files, build_plan, safe_join
from wangp_cli.download.transfer import DownloadError, Remote, fetch, open_url, part_paths, status_error

__all__ = ["DownloadError", "Plan", "build_plan", "download", "resolve_plan"]

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
    what = f"{', '.join(item.owners)}: {item.source}"
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
    return Remote(meta.location, headers, meta.size, sha256, etag or meta.commit_hash or f"size={meta.size}")


def _http_remote(item: FilePlan) -> Remote:
    """Size and validator of a plain http(s) file, from a HEAD request (no credentials)."""
    import urllib.error

    headers = {"User-Agent": "wangp", "Accept-Encoding": "identity"}
    try:
        with open_url(item.source, headers, method="HEAD", timeout=30) as response:
            length = response.headers.get("Content-Length")
            etag = response.headers.get("ETag") or response.headers.get("Last-Modified") or ""
            size = int(length) if length and length.isdigit() else None
            return Remote(response.url, headers, size, item.sha256, etag or f"size={size}")
    except urllib.error.HTTPError as exc:
        raise status_error(item.source, exc.code, ", ".join(item.owners)) from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{', '.join(item.owners)}: cannot reach {item.source}: "
                            f"{getattr(exc, 'reason', exc)}", hint="check the network and the URL") from None


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
    """Turns transport failures (no network, refused connection, timeouts) into a DownloadError."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, WangpError) or not isinstance(exc, Exception):
            return False
        from huggingface_hub import constants

        raise DownloadError(f"{self.what}: cannot reach {constants.ENDPOINT}: {type(exc).__name__}: {exc}",
                            hint="check the network and HF_ENDPOINT; HF_HUB_OFFLINE=1 works with what is on disk"
                            ) from None


def resolve_plan(plan: Plan, home, *, network: bool = True) -> Plan:
    """Fill presence, sizes and hashes. Without network (or offline), only presence is known."""
    token = _token() if network else None
    if network and plan.components:
        with _Unreachable("listing components"):
            _list_components(plan, token)
    for item in plan.files:
        target = Path(safe_join(str(home.root), item.dest))
        item.present = target.is_file() and (item.size is None or target.stat().st_size == item.size)
        if item.local or not network:
            continue
        with _Unreachable(item.source):
            remote = _hub_remote(item, token, plan.notices) if item.hub else _http_remote(item)
        plan.remotes[item.dest] = remote
        item.size = remote.size if remote.size is not None else item.size
        item.sha256 = remote.sha256 or item.sha256
        item.present = target.is_file() and (item.size is None or target.stat().st_size == item.size)
    return plan


def check_disk_space(plan: Plan, home) -> None:
    """Refuse before the first byte when the missing files cannot fit."""
    needed = 0
    for item in plan.missing:
        if item.local or item.size is None:
            continue
        part, _, _ = part_paths(Path(safe_join(str(home.root), item.dest)))
        needed += item.size - (part.stat().st_size if part.exists() else 0)
    folder = home.ckpts if home.ckpts.exists() else home.root
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise WangpError(f"not enough disk space in {folder}: {needed:,} bytes needed, {free:,} free",
                         code="disk-full", hint="free some space or point --home at a larger disk")


def download(plan: Plan, home, *, progress=None) -> list[dict]:
    """Fetch every missing file of a resolved plan; local paths are checked, never copied."""
    missing_local = [f for f in plan.missing if f.local]
    if missing_local:
        raise WangpError("local files are missing: " + ", ".join(f.dest for f in missing_local), code="missing",
                         hint="local paths in a definition are used as they are: put the files there")
    check_disk_space(plan, home)
    results = []
    for item in plan.files:
        if item.present or item.local:
            results.append({"dest": item.dest, "status": "present"})
            continue
        target = Path(safe_join(str(home.root), item.dest))
        fetch(plan.remotes[item.dest], target, what=item.dest, progress=progress)
        item.present = True
        results.append({"dest": item.dest, "status": "downloaded", "size": target.stat().st_size})
    return results


def plan_for(catalog: Catalog, model_ids: list[str], preference: Preference, *, all_variants: bool = False,
             components: bool = True, network: bool | None = None) -> Plan:
    """Build and resolve the plan (sizes over the network unless offline)."""
    plan = build_plan(catalog, model_ids, preference, all_variants=all_variants, components=components)
    if network is None:
        network = not offline()
    return resolve_plan(plan, catalog.home, network=network)


def offline_error(plan: Plan) -> WangpError:
    missing = [f.dest for f in plan.missing]
    return WangpError("HF_HUB_OFFLINE is set and files are missing: " + ", ".join(missing), code="offline",
                      hint="unset HF_HUB_OFFLINE to download them")
