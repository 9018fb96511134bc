"""What a definition needs on disk: the download plan (pure Python, no network)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from wangp_cli.core.definitions import Catalog
from wangp_cli.core.errors import UsageError, WangpError
from wangp_cli.core.models import module_ids, resolved_entries, transformer_entries
from wangp_cli.core.outputs import NAME_MAX, name_too_long
from wangp_cli.core.registry import MODULES, get_architecture
from wangp_cli.core.safety import redact
from wangp_cli.core.variants import Preference, is_remote, select_variant, unsafe_basename_reason, url_basename

_HUB_URL = re.compile(r"^https?://(?:huggingface\.co|hf\.co)/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/"
                      r"(?P<path>.+)$")


@dataclass(frozen=True)
class HubFile:
    """A file of a Hugging Face repo: what ``hf_hub_download`` would fetch."""

    repo_id: str
    path: str  # inside the repo, subfolders included
    revision: str = "main"


def parse_hub_url(url: str) -> HubFile | None:
    """``https://huggingface.co/<owner>/<repo>/resolve/<revision>/<path>`` → HubFile (None for other URLs)."""
    match = _HUB_URL.match(url.split("?", 1)[0])
    if not match:
        return None
    return HubFile(match["repo"], unquote(match["path"]), unquote(match["revision"]))


@dataclass
class FilePlan:
    """One file to have on disk."""

    dest: str  # relative to the home folder, POSIX form (ckpts/x.safetensors)
    source: str  # URL or local path as written
    role: str  # transformer, variant, module, preload, lora, component
    owners: list[str] = field(default_factory=list)  # definition ids needing it
    hub: HubFile | None = None
    size: int | None = None
    sha256: str | None = None
    present: bool = False
    local: bool = False  # a local path: checked, never copied
    verified: bool | None = None  # SHA-256 of the file on disk: True matches, False differs, None not hashed
    partial: int = 0  # bytes already in a .wangp-part file that the transfer resumes

    @property
    def kind(self) -> str:
        return "local" if self.local else "hub" if self.hub else "http"

    @property
    def state(self) -> str:
        """present, present (size only), mismatch (on disk but its SHA-256 differs), partial or missing."""
        if self.present:
            return "present" if self.verified else "present (size only)"
        if self.verified is False:
            return "mismatch"
        return "partial" if self.partial else "missing"

    @property
    def to_fetch(self) -> int:
        """Bytes still to download (0 when present or the size is unknown)."""
        return 0 if self.present or self.size is None else max(0, self.size - self.partial)

    def to_dict(self) -> dict:
        return {"dest": self.dest, "source": self.source, "kind": self.kind, "role": self.role,
                "owners": self.owners, "size": self.size, "sha256": self.sha256, "present": self.present,
                "state": self.state, "verified": self.verified, "partial_bytes": self.partial,
                "bytes_to_fetch": self.to_fetch}


@dataclass
class ComponentRequest:
    """The component folders of a diffusers-format repo that some definitions need (listed over the network)."""

    repo_id: str
    folders: set[str] = field(default_factory=set)
    owners: list[str] = field(default_factory=list)
    revision: str = "main"

    @property
    def dest(self) -> str:
        """Where the folders land: ``ckpts/<repo name>/<folder>/...`` (a local diffusers-format folder)."""
        return "ckpts/" + self.repo_id.split("/")[-1]


@dataclass
class Plan:
    files: list[FilePlan] = field(default_factory=list)
    components: list[ComponentRequest] = field(default_factory=list)
    remotes: dict = field(default_factory=dict)  # dest -> transfer.Remote, once resolved over the network
    notices: list[str] = field(default_factory=list)  # warnings for the user (never a token)

    @property
    def missing(self) -> list[FilePlan]:
        return [f for f in self.files if not f.present]

    @property
    def total_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files)

    @property
    def missing_bytes(self) -> int:
        """What is still to download: missing files less what their partial files hold."""
        return sum(f.to_fetch for f in self.files)

    def to_dict(self) -> dict:
        return {"files": [f.to_dict() for f in self.files],
                "components": [{"repo": c.repo_id, "folders": sorted(c.folders), "dest": c.dest}
                               for c in self.components],
                "summary": {"files": len(self.files), "missing": len(self.missing),
                            "total_bytes": self.total_bytes, "missing_bytes": self.missing_bytes,
                            "unknown_sizes": sum(1 for f in self.files if f.size is None)}}


class _Builder:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.by_dest: dict[str, FilePlan] = {}
        self.components: dict[str, ComponentRequest] = {}

    def add(self, source: str, role: str, owner: str, *, dest: str | None = None, hub: HubFile | None = None,
            sha256: str | None = None) -> None:
        if is_remote(source):
            reason = unsafe_basename_reason(source)
            if not reason and name_too_long(url_basename(source)):
                reason = (f"its file name ('{url_basename(source)[:40]}...') is longer than {NAME_MAX} bytes, "
                          f"which no file system takes")
            if reason:
                raise WangpError(f"'{owner}': unusable URL {redact(source)}: {reason}", code="E7",
                                 hint="run 'wangp validate' on the definition")
            dest = dest or "ckpts/" + url_basename(source)
            hub = hub or parse_hub_url(source)
            local = False
        else:
            if not self.catalog.home.contains(source):
                raise WangpError(f"'{owner}': local path '{source}' escapes the home folder", code="E12")
            dest, local = source, True
        existing = self.by_dest.get(dest)
        if existing is not None:
            if existing.source != source:
                raise WangpError(redact(f"two different URLs land on {dest}: {existing.source} "
                                        f"({', '.join(existing.owners)}) and {source} ({owner})"), code="collision",
                                 hint="rename one of the files: WanGP keeps only the URL's last segment")
            if owner not in existing.owners:
                existing.owners.append(owner)
            return
        self.by_dest[dest] = FilePlan(dest, source, role, [owner], hub=hub, sha256=sha256, local=local)


def build_plan(catalog: Catalog, model_ids: list[str], preference: Preference, *, all_variants: bool = False,
               components: bool = True) -> Plan:
    """Every file generating with ``model_ids`` needs: the chosen variant (or all), modules, preloads, loras and
    the architecture's components (diffusers folders, never the transformer). Sizes stay unknown here."""
    if not model_ids:
        raise UsageError("name at least one definition id, or pass --all")
    builder = _Builder(catalog)
    for model_id in model_ids:
        definition = catalog.get(model_id)
        hashes = definition.model.get("sha256") if isinstance(definition.model.get("sha256"), dict) else {}
        entries = transformer_entries(catalog, definition)
        chosen = select_variant(entries, preference)
        for entry in entries if all_variants else [chosen.source]:
            builder.add(entry, "transformer" if entry == chosen.source else "variant", model_id,
                        sha256=hashes.get(entry))
        for module_id in module_ids(catalog, definition):
            module = MODULES.get(module_id)
            if module is None:
                raise WangpError(f"'{model_id}' uses unknown module '{module_id}'", code="E8")
            urls = module.urls if all_variants else [select_variant(module.urls, preference).source]
            for url in urls:
                builder.add(url, "module", model_id)
        for prop, role in (("preload_URLs", "preload"), ("loras", "lora")):
            for entry in resolved_entries(catalog, definition, prop):
                builder.add(entry, role, model_id, sha256=hashes.get(entry))
        arch = get_architecture(definition.architecture or "", catalog.target)
        if components and arch is not None and arch.diffusers_repo:
            request = builder.components.setdefault(arch.diffusers_repo, ComponentRequest(arch.diffusers_repo))
            request.folders.update(arch.components)
            request.owners.append(model_id)
    return Plan(list(builder.by_dest.values()), list(builder.components.values()))


def add_component_files(plan: Plan, request: ComponentRequest, repo_files: list[tuple[str, int | None, str | None]]
                        ) -> None:
    """Turn a listed repo (path, size, sha256) into file plans: the wanted folders plus model_index.json."""
    for path, size, sha256 in repo_files:
        top = path.split("/", 1)[0]
        if path != "model_index.json" and (top not in request.folders or "/" not in path):
            continue
        if ".." in path.split("/") or path.startswith("/"):
            raise WangpError(f"repo {request.repo_id} lists an unsafe path '{path}'", code="E12")
        plan.files.append(FilePlan(f"{request.dest}/{path}", f"https://huggingface.co/{request.repo_id}/resolve/"
                                   f"{request.revision}/{path}", "component", list(request.owners),
                                   hub=HubFile(request.repo_id, path, request.revision), size=size, sha256=sha256))


def safe_join(home_root: str, relative: str) -> str:
    """``home_root/relative``, refusing anything that would leave ``home_root``."""
    root = os.path.abspath(home_root)
    target = os.path.abspath(os.path.join(root, relative))
    if os.path.commonpath([root, target]) != root:
        raise WangpError(f"'{relative}' would be written outside '{home_root}'", code="E12")
    return target
