"""What a definition needs on disk: the download plan (pure Python, no network)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from wangp_cli.core.definitions import Catalog, Definition
from wangp_cli.core.errors import UsageError, WangpError
from wangp_cli.core.models import (
    architecture_of, lora_dir, model_dtype, resolved_entries, resolved_modules, text_encoder_entries,
    text_encoder_variant, transformer_entries, vae_entries,
)
from wangp_cli.core.outputs import NAME_MAX, name_too_long
from wangp_cli.core.registry import Architecture, get_architecture
from wangp_cli.core.safety import redact
from wangp_cli.core.variants import (
    Preference, checkpoint_candidates, is_remote, local_path, lora_path, quantized_kind,
    select_variant, split_subfolder, transformer_dtype, unsafe_basename_reason, url_basename,
)

_WEIGHT_SUFFIXES = (".safetensors", ".sft", ".gguf")
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
    source: str  # URL or local path as written (v12: ``url|subfolder`` kept)
    role: str  # transformer, variant, transformer2, variant2, module, preload, text_encoder, vae, lora, component
    owners: list[str] = field(default_factory=list)  # definition ids needing it
    hub: HubFile | None = None
    size: int | None = None
    sha256: str | None = None
    present: bool = False
    local: bool = False  # a local path: checked, never copied
    verified: bool | None = None  # SHA-256 of the file on disk: True matches, False differs, None not hashed
    partial: int = 0  # bytes already in a .wangp-part file that the transfer resumes
    url: str = ""  # what is fetched: the source without a v12 ``|subfolder`` (default: the source)
    candidates: tuple[str, ...] = ()  # v12: where WanGP looks for it, in order (empty: ``dest`` only)
    found: str | None = None  # where it is on disk, once resolved (None: missing)
    reuse: object | None = None  # download.reuse.Reuse: a copy found in a --link-from folder, linked or copied

    def __post_init__(self):
        self.url = self.url or self.source

    @property
    def kind(self) -> str:
        """How it is fetched: local, hub or http."""
        return "local" if self.local else "hub" if self.hub else "http"

    @property
    def format(self) -> str | None:
        """What a checkpoint holds by its name (16-bit, quanto-int8, scaled-fp8, gguf, nvfp4, ...); None for
        other files (configs, tokenizers)."""
        return quantized_kind(self.dest) if self.dest.lower().endswith(_WEIGHT_SUFFIXES) else None

    @property
    def lookup(self) -> tuple[str, ...]:
        return self.candidates or (self.dest,)

    @property
    def state(self) -> str:
        """present, present (size only), reuse (a --link-from copy is linked or copied instead of fetched),
        mismatch (on disk but its SHA-256 differs), partial or missing."""
        if self.present:
            return "present" if self.verified else "present (size only)"
        if self.reuse is not None:
            return "reuse"
        if self.verified is False:
            return "mismatch"
        return "partial" if self.partial else "missing"

    @property
    def to_fetch(self) -> int:
        """Bytes still to download (0 when present, reused or the size is unknown)."""
        if self.present or self.reuse is not None or self.size is None:
            return 0
        return max(0, self.size - self.partial)

    def to_dict(self) -> dict:
        reuse = self.reuse
        return {"dest": self.dest, "source": self.source, "kind": self.kind, "format": self.format,
                "role": self.role, "owners": self.owners, "found": self.found, "size": self.size,
                "sha256": self.sha256, "present": self.present, "state": self.state, "verified": self.verified,
                "partial_bytes": self.partial, "bytes_to_fetch": self.to_fetch,
                "reuse": None if reuse is None else {"from": str(reuse.source), "method": reuse.method,
                                                     "verified": reuse.verified}}


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
                            "unknown_sizes": sum(1 for f in self.files if f.size is None),
                            "reused": sum(1 for f in self.files if f.state == "reuse")}}


class _Builder:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.v12 = catalog.target == "v12"
        self.by_dest: dict[str, FilePlan] = {}
        self.components: dict[str, ComponentRequest] = {}

    def add(self, source: str, role: str, owner: str, *, dest: str | None = None, hub: HubFile | None = None,
            sha256: str | None = None, candidates: tuple[str, ...] = ()) -> None:
        url = split_subfolder(source)[0] if self.v12 else source
        if is_remote(source):
            reason = unsafe_basename_reason(source)
            if not reason and name_too_long(url_basename(url)):
                reason = (f"its file name ('{url_basename(url)[:40]}...') is longer than {NAME_MAX} bytes, "
                          f"which no file system takes")
            if reason:
                raise WangpError(f"'{owner}': unusable URL {redact(source)}: {reason}", code="E7",
                                 hint="run 'wangp validate' on the definition")
            dest = dest or "ckpts/" + url_basename(url)
            hub = hub or parse_hub_url(url)
            local = False
        else:
            if not self.catalog.home.contains(source):
                raise WangpError(f"'{owner}': local path '{source}' escapes the home folder", code="E12")
            dest, local = dest or source, True
        existing = self.by_dest.get(dest)
        if existing is not None:
            if existing.source != source:
                raise WangpError(redact(f"two different URLs land on {dest}: {existing.source} "
                                        f"({', '.join(existing.owners)}) and {source} ({owner})"), code="collision",
                                 hint="rename one of the files: WanGP keeps only the URL's last segment")
            if owner not in existing.owners:
                existing.owners.append(owner)
            return
        self.by_dest[dest] = FilePlan(dest, source, role, [owner], hub=hub, sha256=sha256, local=local, url=url,
                                      candidates=candidates)

    def add_checkpoint(self, entry: str, role: str, owner: str, folder: str | None, sha256: str | None) -> None:
        """A v12 checkpoint entry: downloaded to ``ckpts/`` (``url|sub``: ``ckpts/sub/``, ``url|%lora_dir``: the
        LoRA folder), found under any checkpoint root."""
        self.add(entry, role, owner, dest=local_path(entry, "v12", folder) if is_remote(entry) else None,
                 sha256=sha256, candidates=checkpoint_candidates(entry, folder))

    def add_components(self, arch: Architecture | None, owner: str) -> None:
        if arch is not None and arch.diffusers_repo:
            request = self.components.setdefault(arch.diffusers_repo, ComponentRequest(arch.diffusers_repo))
            request.folders.update(arch.components)
            request.owners.append(owner)


def build_plan(catalog: Catalog, model_ids: list[str], preference: Preference, *, all_variants: bool = False,
               components: bool = True) -> Plan:
    """Every file generating with ``model_ids`` needs: the chosen variant (or all), modules, preloads, loras and
    the architecture's components (diffusers folders, never the transformer); v12 adds what WanGP 12 fetches
    (see :func:`_plan_v12`). Sizes stay unknown here."""
    if not model_ids:
        raise UsageError("name at least one definition id, or pass --all")
    builder = _Builder(catalog)
    for model_id in model_ids:
        definition = catalog.get(model_id)
        hashes = definition.model.get("sha256") if isinstance(definition.model.get("sha256"), dict) else {}
        if builder.v12:
            arch = _plan_v12(builder, definition, preference, hashes, all_variants)
        else:
            arch = _plan_july(builder, definition, preference, hashes, all_variants)
        if components:
            builder.add_components(arch, model_id)
    return Plan(list(builder.by_dest.values()), list(builder.components.values()))


def _plan_july(builder: _Builder, definition: Definition, preference: Preference, hashes: dict,
               all_variants: bool) -> Architecture | None:
    """WanGP 6.x / 7.0: the chosen variant (or all), the module table's files, preload_URLs and loras."""
    catalog, model_id = builder.catalog, definition.id
    entries = transformer_entries(catalog, definition)
    chosen = select_variant(entries, preference)
    for entry in entries if all_variants else [chosen.source]:
        builder.add(entry, "transformer" if entry == chosen.source else "variant", model_id,
                    sha256=hashes.get(entry))
    for module in resolved_modules(catalog, definition):  # July: the module table's files
        urls = module["URLs"] if all_variants else [select_variant(module["URLs"], preference).source]
        for url in urls:
            builder.add(url, "module", model_id)
    for prop, role in (("preload_URLs", "preload"), ("loras", "lora")):
        for entry in resolved_entries(catalog, definition, prop):
            builder.add(entry, role, model_id, sha256=hashes.get(entry))
    return get_architecture(definition.architecture or "", catalog.target)


_OTHER_VARIANT = {"transformer": "variant", "transformer2": "variant2"}  # --all-variants: the ones not chosen
#: WanGP 12's ``source`` keys: while one is set, ``download_models`` skips that file (WanGP converts a local
#: checkpoint to it instead). Modules: ``module_source`` for a variant list and a module's URLs, ``module_source2``
#: for a module's URLs2.
_SOURCE_KEYS = {"URLs": "source", "URLs2": "source2", "module": "module_source", "module2": "module_source2"}


def _plan_v12(builder: _Builder, definition: Definition, preference: Preference, hashes: dict,
              all_variants: bool) -> Architecture:
    """WanGP 12's ``load_models`` + ``download_models``: URLs and URLs2 (each its chosen variant), every module
    (each list its chosen variant), preload_URLs, VAE_URLs, the text encoder into its folder, model loras into the
    LoRA folder; a file whose ``source`` key is set is skipped, as WanGP skips it."""
    catalog, model, model_id = builder.catalog, definition.model, definition.id
    of = architecture_of(catalog, definition)
    if of.problem:
        where = definition.source.display if definition.source else model_id
        raise WangpError(f"'{model_id}' {of.problem}", code=of.code, hint=f"run: wangp validate {where}")
    arch, folder, dtype = of.arch, lora_dir(catalog, definition), model_dtype(catalog, definition)

    def add_variants(entries: list[str], role: str, wish: Preference, skip_key: str) -> None:
        if not entries or skip_key in model:
            return
        chosen = select_variant(entries, wish, "v12", dtype, folder)
        for entry in entries if all_variants else [chosen.source]:
            builder.add_checkpoint(entry, role if entry == chosen.source else _OTHER_VARIANT.get(role, role),
                                   model_id, folder, hashes.get(entry))

    main = transformer_entries(catalog, definition)
    add_variants(main, "transformer", preference, _SOURCE_KEYS["URLs"])
    if "URLs2" in model:
        add_variants(transformer_entries(catalog, definition, "URLs2"), "transformer2", preference,
                     _SOURCE_KEYS["URLs2"])
    # WanGP picks module files for the main transformer's dtype (a quanto file's name decides it)
    main_dtype = transformer_dtype(select_variant(main, preference, "v12", dtype), preference, model_dtype=dtype)
    module_wish = Preference(preference.quantization, main_dtype)
    for module in resolved_modules(catalog, definition):
        add_variants(module["URLs"], "module", module_wish, _SOURCE_KEYS["module"])
        add_variants(module["URLs2"], "module", module_wish, _SOURCE_KEYS["module2"])
    for entries, role in ((resolved_entries(catalog, definition, "preload_URLs"), "preload"),
                          (vae_entries(definition), "vae")):
        for entry in entries:
            builder.add_checkpoint(entry, role, model_id, folder, hashes.get(entry))
    _plan_text_encoder(builder, definition, arch, Preference("int8", preference.dtype), dtype, hashes,
                       all_variants)
    for entry in resolved_entries(catalog, definition, "loras"):
        path = lora_path(entry, folder)
        builder.add(entry, "lora", model_id, dest=path, sha256=hashes.get(entry), candidates=(path,))
    return arch


def _plan_text_encoder(builder: _Builder, definition: Definition, arch: Architecture, wish: Preference,
                       dtype: str | None, hashes: dict, all_variants: bool) -> None:
    """``text_encoder_URLs`` (else the handler's), picked with WanGP's default text_encoder_quantization (int8),
    where :func:`core.models.text_encoder_variant` says WanGP keeps it."""
    entries = text_encoder_entries(builder.catalog, definition, arch)
    if not entries:
        return
    chosen = select_variant(entries, wish, "v12", dtype)
    for entry in entries if all_variants else [chosen.source]:
        located = text_encoder_variant(builder.catalog, definition, arch, entry)
        builder.add(entry, "text_encoder", definition.id, dest=located.path if is_remote(entry) else None,
                    sha256=hashes.get(entry), candidates=located.lookup)


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
