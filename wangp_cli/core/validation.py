"""Every rule of a definition, as diagnostics (codes are stable: see docs/diagnostics.md)."""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from wangp_cli.core import keys as K
from wangp_cli.core import multipliers, registry
from wangp_cli.core.definitions import (
    MAX_REFERENCE_DEPTH,
    STDIN,
    STDIN_DISPLAY,
    Catalog,
    DefinitionReferenceError,
    FileProblem,
    Source,
    definition_files,
    read_source,
    read_stdin,
    reference_props,
    shown_path,
)
from wangp_cli.core.errors import Diagnostic, UsageError
from wangp_cli.core.home import Home, unusable_path_reason
from wangp_cli.core.outputs import NAME_MAX, name_too_long
from wangp_cli.core.registry import (
    ARCHITECTURES,
    DOCUMENTED_FINETUNE_ARCHITECTURES,
    MODULES,
    TARGETS,
    architecture_ids,
    get_architecture,
    module_ids,
)
from wangp_cli.core.safety import did_you_mean, redact
from wangp_cli.core.schema import LONE_SURROGATE, check, spelled, strict_json_problems
from wangp_cli.core.settings import SETTINGS_FILE_HINT
from wangp_cli.core.variants import (
    DTYPES,
    QUANTIZATIONS,
    Preference,
    checkpoint_candidates,
    dtype_token,
    is_remote,
    local_path,
    lora_path,
    quantized_kind,
    select_variant,
    split_subfolder,
    unsafe_basename_reason,
    unsafe_subfolder_reason,
    url_basename,
)

#: One line per code, for docs and ``--help``.
CODES = {
    "E1": "file is not a readable regular file, not valid JSON, not UTF-8, or not a JSON object",
    "E2": "no 'model' object",
    "E3": "'name', 'architecture' or 'description' missing or not a string",
    "E4": "unknown architecture, or an architecture that names a finetune",
    "E5": "'URLs' missing, empty, or not a list of non-empty strings",
    "E6": "string reference that does not resolve, loops, nests deeper than 10, or needs a later target",
    "E7": "entry that is neither an http(s) URL nor a usable local path (or a URL with credentials or a file name "
          "over 255 bytes)",
    "E8": "unknown module id",
    "E9": "v6 target: settings without 'seed'",
    "E10": "settings key with the wrong JSON type",
    "E11": "model 'loras_multipliers' not a list of numbers, or longer than 'loras'",
    "E12": "local path that escapes the home folder",
    "E13": "model key with the wrong JSON type",
    "E14": "a value strict JSON cannot carry: NaN, Infinity, a number beyond a double (1e999), a lone surrogate",
    "W1": "checkpoint name without a lower-case bf16/fp16 token, or with upper-case tokens",
    "W2": "two entries share a file name in ckpts/, or a file name carries a query string",
    "W3": "several files for one variant: only the first is ever used",
    "W4": "Hugging Face URL not of the form https://huggingface.co/<owner>/<repo>/resolve/main/<path>, or an "
          "upper-case URL scheme",
    "W5": "local path in a definition meant for sharing",
    "W6": "'auto_quantize' together with 'modules' (WanGP ignores it)",
    "W7": "unknown or later-version key (kept as is)",
    "W8": "settings value outside WanGP's UI range",
    "W9": "id overrides a base architecture or a defaults/ definition",
    "W10": "architecture not tested for finetunes, or LTX Video (no finetune support)",
    "W11": "legacy key 'base'",
    "W12": "duplicate key: the last value wins",
    "W13": "v12: string reference to a WanGP 12 built-in definition the home's defaults/ lacks (wangp cannot "
           "follow it)",
}

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_REMOTE = re.compile(r"^https?://", re.IGNORECASE)  # schemes are case-insensitive (RFC 3986)
_HF_HOSTS = ("huggingface.co", "hf.co")
_HF_MAIN = re.compile(r"^https://huggingface\.co/[^/]+/[^/]+/resolve/main/.+")


@dataclass
class Report:
    """Diagnostics of a validation run and how many files it read."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: int = 0

    @property
    def errors(self) -> int:
        return sum(1 for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> int:
        return len(self.diagnostics) - self.errors

    def failed(self, strict: bool = False) -> bool:
        return bool(self.errors or (strict and self.warnings))


class _Checker:
    """Collects the diagnostics of one source."""

    def __init__(self, source: Source, catalog: Catalog, target: str):
        self.source = source
        self.catalog = catalog
        self.target = target
        self.v12 = target == "v12"
        self.model_keys = K.model_keys(target)
        self.settings_keys = K.settings_keys(target)
        self.references = reference_props(target)
        self.found: list[Diagnostic] = []
        self.not_strict: set[tuple] = set()  # paths of E14 values: no type or range findings on top of it
        self.context: dict = {}  # v12: the model as WanGP sees it (handler keys, the same-id base, the file)
        self.arch = None  # the base type of ``architecture`` (None when unknown)

    def add(self, code: str, message: str, path: tuple = (), *, key: bool = False, hint: str = "") -> None:
        """One finding; URLs credentials in its text are redacted (``https://***@host``, ``token=***``)."""
        line, column, end_line, end_column = self.source.span(path, key=key)
        self.found.append(Diagnostic(self.source.display, line, column, code, redact(message), redact(hint),
                                     end_line, end_column))

    @property
    def in_defaults(self) -> bool:
        """A file of a ``defaults/`` folder: a built-in definition, not a finetune."""
        return self.source.path.parent.name == "defaults"

    def check_document(self, kind: str) -> bool:
        """E1 for a file that cannot be read, is not JSON, or is not an object; True when there is more to check."""
        source = self.source
        if isinstance(source.error, FileProblem):  # nothing to check in a file that cannot be read
            self.found.append(Diagnostic(source.display, 1, 1, "E1", source.error.message, source.error.hint))
        elif source.error is not None:
            self.add("E1", f"invalid JSON: {source.error.message}", hint="fix the JSON syntax at this position")
        elif not isinstance(source.data, dict):
            self.add("E1", f"{kind} must be a JSON object", hint="wrap the content in { ... }")
        else:
            return True
        return False

    def run_settings_file(self) -> list[Diagnostic]:
        """A ``settings/<id>_settings.json``: E1, E14 (keys too), and E10 for the known keys' types. Unknown keys and
        ranges are not reported there: WanGP writes that file itself, with every key of its version."""
        if not self.check_document("a settings file"):
            return self.found
        data = self.source.data
        self.check_strict_json(data, keys=True)
        flagged = {path[0] for path in self.not_strict}
        for name, value in data.items():
            spec = self.settings_keys.get(name)
            mismatch = check(value, spec.schema) if spec is not None and name not in flagged else None
            if mismatch:
                where, message = mismatch
                self.add("E10", f"'{name}'{_at(where)} {message}", (name, *where), hint=SETTINGS_FILE_HINT)
        return self.found

    def run(self) -> list[Diagnostic]:
        source = self.source
        if not self.check_document("a definition"):
            return self.found
        data = source.data
        if source.duplicate_keys:
            for json_path, _ in source.positions.duplicate_keys:
                self.add("W12", f"duplicate key '{json_path[-1]}': the last value wins", json_path, key=True)
        self.check_strict_json(data)
        model = data.get("model")
        if model is None:
            self.add("E2", "no 'model' object", hint="add a \"model\" subtree with name, architecture, description, "
                                                     "URLs (see 'wangp new --help')")
        elif not isinstance(model, dict):
            self.add("E2", "'model' must be an object", ("model",))
        else:
            self.set_context(model)
            self.check_model(model)
        self.check_settings(data, model if isinstance(model, dict) else {})
        self.check_override()
        return self.found

    def set_context(self, model: dict) -> None:
        """The base type and, for v12, the merged model WanGP's rules read (``init_model_def``: the handler's keys
        updated with the JSON; an override of the same id also inherits its base definition's keys)."""
        merged = {**self.inherited_model(), **model}
        arch = merged.get("architecture")
        self.arch = get_architecture(arch, self.target) if isinstance(arch, str) else None
        if self.v12:
            self.context = {**(self.arch.keys_for(merged) if self.arch else {}), **merged}

    # -- model subtree ---------------------------------------------------------------------------------------
    def check_model(self, model: dict) -> None:
        inherited = self.inherited_model()
        for name in ("name", "architecture", "description"):
            value = model.get(name)
            if name not in model and name in inherited:
                continue
            if name not in model:
                if name == "architecture" and "base" in model:
                    self.add("E3", "'base' is the legacy name of 'architecture'", ("model", "base"), key=True,
                             hint="rename the key 'base' to 'architecture'")
                else:
                    self.add("E3", f"model has no '{name}'", ("model",), key=True,
                             hint=f"add \"{name}\": \"...\" to the model subtree")
            elif not isinstance(value, str):
                self.add("E3", f"'{name}' must be a string", ("model", name))
        if "base" in model:
            self.add("W11", "legacy key 'base' is ignored by WanGP", ("model", "base"), key=True,
                     hint="remove it (use 'architecture')")
        arch = model.get("architecture")
        if isinstance(arch, str):
            self.check_architecture_v12(arch) if self.v12 else self.check_architecture(arch)
        for name, value in model.items():
            spec = self.model_keys.get(name)
            if spec is None:
                dead = K.dead_key(name) if self.v12 else None
                if dead:
                    self.add("W7", dead, ("model", name), key=True, hint="remove it")
                else:
                    self.unknown_key(("model", name), later=not self.v12 and name in K.LATER_MODEL_KEYS)
                continue
            if name in ("name", "architecture", "description", "base"):
                continue
            if spec.since != "v6" and self.target == "v6":
                self.add("W7", f"'{name}' is a July 2025 key: WanGP 6.x ignores it", ("model", name), key=True)
                continue
            if isinstance(value, str) and name in self.references:
                self.check_reference(name, value)
                continue
            if ("model", name) in self.not_strict:
                continue
            mismatch = check(value, spec.schema)
            if mismatch:
                where, message = mismatch
                code = {"URLs": "E5", "URLs2": "E5", "loras_multipliers": "E11"}.get(name, "E13")
                self.add(code, f"'{name}'{_at(where)} {message}", ("model", name, *where),
                         hint="" if self.v12 else self.later_format(K.LATER_MODEL_FORMS, name, value))
                continue
            if self.v12:
                self.check_model_value_v12(name, value)
            elif name == "URLs":
                self.check_entries(_items(("model", name), value), weights=True)
            elif name in ("preload_URLs", "loras"):
                self.check_entries(_items(("model", name), value), weights=False)
            elif name == "modules":
                self.check_modules(value)
        if "URLs" not in model and "URLs" not in inherited:
            self.add("E5", "model has no 'URLs'", ("model",), key=True,
                     hint="list the checkpoint URLs, e.g. \"URLs\": [\"https://huggingface.co/.../x_bf16.safetensors\"]")
        self.check_multiplier_count(model)
        if model.get("auto_quantize") is True and model.get("modules") and self.needs_auto_quantize(model):
            self.add("W6", "'auto_quantize' is ignored when 'modules' is set: without a quanto file, int8 loads "
                           "the 16-bit weights", ("model", "auto_quantize"), key=True,
                     hint="make the quanto files with 'wangp quantize --dtype bf16' (and fp16)")

    def check_model_value_v12(self, name: str, value) -> None:
        """The entries of a v12 model key that is not a reference: files, modules, LoRAs, multipliers."""
        where = ("model", name)
        if name in _V12_WEIGHTS:
            self.check_entries(_items(where, value), weights=True)
        elif name in ("preload_URLs", "VAE_URLs"):  # a VAE_URLs string is one URL, never a reference
            self.check_entries([(where, value)] if isinstance(value, str) else _items(where, value), weights=False)
        elif name == "loras":
            self.check_entries(_items(where, value), weights=False, loras=True)
        elif name == "modules":
            self.check_modules_v12(value)
        elif name == "loras_multipliers":
            branches = self.context.get("lora_multiplier_branches") or ()
            for index, item in enumerate(value):
                problem = multipliers.check_model_item(item, index, branches=branches if isinstance(
                    branches, list) else ())
                if problem:
                    self.add("E11", f"'loras_multipliers'[{index}]: {problem}", (*where, index),
                             hint="a number, or \"a;b\" per phase (at most 3), \"x,y\" per step")

    def check_multiplier_count(self, model: dict) -> None:
        """E11: more multipliers than LoRAs (v12: both after references; missing ones are 1.0)."""
        loras, values = model.get("loras"), model.get("loras_multipliers")
        if self.v12:
            loras, values = self.resolved("loras", loras), self.resolved("loras_multipliers", values)
        if isinstance(loras, list) and isinstance(values, list) and len(values) > len(loras):
            self.add("E11", f"'loras_multipliers' has {len(values)} values for {len(loras)} loras",
                     ("model", "loras_multipliers"))

    def resolved(self, prop: str, value):
        """A v12 value after following its string reference (None when it does not resolve: E6 says why)."""
        if not isinstance(value, str):
            return value
        try:
            return self.catalog.resolve_value(self.source.id, prop, value)[0]
        except DefinitionReferenceError:
            return None

    def inherited_model(self) -> dict:
        """The model keys a defaults/ definition of the same id supplies (WanGP 7 merges the two; WanGP 12 also
        with its built-in base types)."""
        definition = self.catalog.definitions.get(self.source.id)
        origins = ("defaults", "builtin") if self.v12 else ("defaults",)
        if definition is not None and definition.source is self.source and definition.overrides is not None \
                and definition.overrides.origin in origins:
            return definition.overrides.model
        return {}

    def needs_auto_quantize(self, model: dict) -> bool:
        """Whether some dtype has no quanto file, so that auto_quantize would matter (v12: whether an int8 or fp8
        preference picks a file without 'quanto', as WanGP 12's load_models tests)."""
        urls = model.get("URLs")
        if isinstance(urls, str):
            try:
                urls, _ = self.catalog.resolve_value(self.source.id, "URLs", urls)
            except DefinitionReferenceError:
                return False
        if not isinstance(urls, list):
            return False
        urls = [u for u in urls if isinstance(u, str)]
        if self.v12:
            return bool(urls) and any("quanto" not in variant.source for variant in self.selections(urls).values()
                                      if variant is not None)
        quanto = {dtype_token(local_path(u)) for u in urls if "quanto" in local_path(u)}
        return not ({"bf16", "fp16"} <= quanto or None in quanto)

    def check_architecture(self, arch: str) -> None:
        where = ("model", "architecture")
        if get_architecture(arch, self.target) is not None:
            if self.in_defaults:  # built-in definitions, not finetunes
                return
            if arch.startswith("ltxv"):
                self.add("W10", f"LTX Video finetunes are not supported by WanGP ('{arch}')", where)
            elif arch not in DOCUMENTED_FINETUNE_ARCHITECTURES:
                self.add("W10", f"finetunes of '{arch}' are not tested by WanGP", where,
                         hint="tested: " + ", ".join(DOCUMENTED_FINETUNE_ARCHITECTURES))
            return
        other = self.catalog.definitions.get(arch)
        base = other.architecture if other is not None else None
        later = K.later_format_hint(self.target)
        if base and base != arch and base in ARCHITECTURES:
            self.add("E4", f"architecture '{arch}' names a finetune, not a base architecture", where,
                     hint=f"use its architecture '{base}' (and \"URLs\": \"{arch}\" to reuse its files)")
        elif arch in ARCHITECTURES:
            self.add("E4", f"architecture '{arch}' needs WanGP July 2025 (target {self.target})", where,
                     hint="pass --target july, or pick a v6 base id")
        elif base == arch:  # a defaults/<id>.json that defines its own base type, as WanGP 8+ does
            self.add("E4", f"unknown architecture '{arch}' (a later WanGP version?)", where,
                     hint=f"{other.source.display if other.source else arch} defines it as a base type: {later}")
        elif base:
            self.add("E4", f"architecture '{arch}' names a finetune whose architecture '{base}' is unknown too "
                           "(a later WanGP version?)", where, hint=later)
        else:
            self.add("E4", f"unknown architecture '{arch}' for target {self.target}"
                           f"{_suggest(arch, architecture_ids(self.target))}", where,
                     hint="'wangp list --architectures' lists the base ids")

    def check_architecture_v12(self, arch: str) -> None:
        """E4 when ``architecture`` is not one of WanGP 12's base types (WanGP hides the model); nothing else: there
        is no list of tested architectures any more, and a base type's own definition is no finetune."""
        if get_architecture(arch, self.target) is not None:
            return
        hidden = (f"architecture '{arch}' is not a WanGP 12 base type: WanGP 12 hides the model (\"Skipping model "
                  f"type '{self.source.id}' with unsupported architecture '{arch}'\")")
        other = self.catalog.definitions.get(arch)
        base = other.architecture if other is not None and other.architecture != arch else None
        base = base or _V12_EQUIVALENTS.get(arch)
        if base and get_architecture(base, self.target) is not None:
            what = "a definition" if other is not None else "a July 2025 base id"
            reuse = f" (and \"URLs\": \"{arch}\" to reuse its files)" if other is not None else ""
            self.add("E4", f"{hidden}; '{arch}' is {what}", ("model", "architecture"),
                     hint=f"use the base type '{base}'{reuse}")
        else:
            self.add("E4", hidden + _suggest(arch, architecture_ids(self.target)), ("model", "architecture"),
                     hint="'wangp list --architectures' lists the base types (a plugin's type needs that plugin)")

    def check_reference(self, prop: str, value: str) -> None:
        where = ("model", prop)
        if self.target == "v6":
            self.add("E6", f"'{prop}' is a string reference, which WanGP 6.x does not support", where,
                     hint="list the entries, or pass --target july")
            return
        if not value:
            self.add("E6", f"'{prop}' reference is empty", where, hint="name a definition or base architecture id")
            return
        try:
            entries, _ = self.catalog.resolve_value(self.source.id, prop, value)
        except DefinitionReferenceError as exc:
            missing = exc.chain[-1] if self.catalog.find(exc.chain[-1]) is None else None
            if missing in registry.shipped_definitions(self.target):
                self.add("W13", f"'{prop}' names '{missing}', a WanGP 12 built-in definition this home's defaults/ "
                                "does not have: WanGP resolves it, wangp cannot follow it", where,
                         hint="copy WanGP's defaults/ folder into the home to let show and download follow it")
            else:
                self.add("E6", exc.message, where, hint="point the reference at an existing id without loops")
            return
        if prop == "URLs" and not entries:
            self.add("E5", f"'URLs' reference '{value}' resolves to no files", where)

    def check_entries(self, items: list[tuple[tuple, str]], *, weights: bool, loras: bool = False) -> None:
        """URL and path rules over (position, entry) pairs: E7, E12, W2, W4, W5; for checkpoint ``weights`` W1, W3.
        v12: ``url|subfolder`` entries, bare names under the checkpoint roots, ``loras`` in the LoRA folder."""
        seen: dict[str, tuple] = {}
        usable: list[tuple[tuple, str]] = []
        for where, entry in items:
            url, sub = split_subfolder(entry) if self.v12 else (entry, None)
            if _REMOTE.match(url):
                problem = _url_problem(url) or (_subfolder_problem(sub) if sub is not None else None)
                if problem:
                    self.add("E7", f"unusable URL: {problem[0]}", where, hint=problem[1])
                    continue
                name = url_basename(url)
                if "?" in name:
                    leak = "; a token in a URL leaks with the file: set HF_TOKEN instead" * (redact(name) != name)
                    self.add("W2", f"query string in the file name: {name}", where,
                             hint=f"drop the '?...' part: WanGP keeps it in the local file name{leak}")
                self.check_url_form(url, where)
            elif _SCHEME.match(entry) and not re.match(r"^[A-Za-z]:[\\/]", entry):
                self.add("E7", f"unsupported URL scheme '{entry.split(':', 1)[0]}': only http(s) URLs and local "
                               "paths are allowed", where)
                continue
            elif unusable_path_reason(entry):
                self.add("E7", f"unusable local path: {unusable_path_reason(entry)}", where)
                continue
            elif not self.catalog.home.contains(self.stored_path(entry, loras)):
                self.add("E12", f"local path '{entry}' escapes the home folder", where,
                         hint="keep local files under the home folder (e.g. ckpts/)")
                continue
            else:
                missing = "" if self.is_present(entry, loras) else " (file missing)"
                self.add("W5", f"local path '{entry}' is not shareable{missing}", where,
                         hint="upload the file and use its URL before sharing the definition")
            stored = self.stored_path(entry, loras)
            key = stored if self.v12 else os.path.basename(local_path(entry))
            if key in seen:
                shown = stored if self.v12 else f"ckpts/{key}"
                self.add("W2", f"'{os.path.basename(stored)}' is also entry {seen[key][-1]}: both land on {shown}",
                         where)
                if self.v12:  # the same file twice: W2 says it, it is no variant of its own (no W3)
                    continue
            seen.setdefault(key, where)
            usable.append((where, entry))
            if weights:
                self.check_name_v12(url, where) if self.v12 else self.check_name(local_path(entry), where)
        if weights:
            self.check_unselected(usable) if self.v12 else self.check_duplicate_variants(
                [(where[-1], entry) for where, entry in usable])

    def stored_path(self, entry: str, loras: bool = False) -> str:
        """Where WanGP keeps an entry, relative to its folder (v12: ``ckpts/sub/name``, the LoRA folder)."""
        if not self.v12:
            return local_path(entry)
        lora_dir = self.arch.lora_dir if self.arch is not None else None
        if loras:
            return lora_path(entry, lora_dir or "")
        return local_path(entry, self.target, lora_dir) if is_remote(entry) else checkpoint_candidates(entry)[0]

    def is_present(self, entry: str, loras: bool) -> bool:
        if not self.v12:
            return self.catalog.home.exists(entry)
        if loras:
            return self.catalog.home.exists(self.stored_path(entry, True))
        return self.catalog.home.locate(checkpoint_candidates(entry)) is not None

    def check_url_form(self, entry: str, where: tuple) -> None:
        """W4: an upper-case scheme (WanGP tests a lower-case ``http`` prefix), or a Hub URL WanGP cannot fetch
        through huggingface_hub."""
        scheme = entry.split(":", 1)[0]
        if scheme != scheme.lower():
            self.add("W4", f"URL scheme '{scheme}' in upper case: WanGP recognises URLs by a lower-case 'http' "
                           "prefix and would look for a local file", where, hint=f"write {scheme.lower()}://")
            return
        split = urlsplit(entry)
        if split.hostname in _HF_HOSTS and not _HF_MAIN.match(entry):
            self.add("W4", "Hugging Face URL not of the form https://huggingface.co/<owner>/<repo>/resolve/"
                           "main/<path>: WanGP falls back to a plain HTTP download", where, hint=_hub_hint(split))

    def check_name(self, path: str, where: tuple) -> None:
        name = os.path.basename(path)
        upper = [t for t in ("BF16", "FP16", "QUANTO", "INT8") if t in name]
        if upper:
            self.add("W1", f"upper-case {', '.join(upper)} in '{name}'", where,
                     hint="WanGP's naming convention wants lower-case bf16, fp16, quanto, int8")
        elif "quanto" in name and "int8" not in name:
            self.add("W1", f"quantized file '{name}' has no 'int8' token", where,
                     hint="name quanto files ..._quanto_<dtype>_int8 (int8 selection matches 'int8')")
        elif "quanto" not in name and dtype_token(name) is None:
            self.add("W1", f"'{name}' has no dtype token (bf16/fp16)", where,
                     hint="add _bf16 or _fp16 to the file name: WanGP picks variants by name")

    def check_name_v12(self, entry: str, where: tuple) -> None:
        """W1 under WanGP 12's rules: int8/fp8 tokens match in any case and a name needs no dtype token, but a quanto
        file must say int8, and a dtype token in mixed case (``Bf16``) is missed by the dtype narrowing."""
        name = url_basename(entry) if is_remote(entry) else os.path.basename(entry)
        lowered = name.lower()
        if "quanto" in lowered and "int8" not in lowered:
            self.add("W1", f"quantized file '{name}' has no 'int8' token: an int8 preference never selects it",
                     where, hint="name quanto files ..._quanto_<dtype>_int8")
        elif "quanto" not in name and "quanto" in lowered:
            self.add("W1", f"'{name}': WanGP 12 looks for 'quanto' in lower case to take the dtype from the name",
                     where, hint="write 'quanto' in lower case")
        else:
            mixed = [t for t in DTYPES if t in lowered and t not in name and t.upper() not in name]
            if mixed:
                self.add("W1", f"'{name}': the dtype token is in mixed case; WanGP 12 matches {mixed[0]} or "
                               f"{mixed[0].upper()} only", where, hint=f"write {mixed[0]}")

    def check_duplicate_variants(self, entries: list[tuple[int, str]]) -> None:
        first: dict[tuple, str] = {}
        for index, entry in entries:
            path = local_path(entry)
            group = ("quanto" in path, dtype_token(path))
            if group in first:
                kind = ("quanto int8" if group[0] else "16-bit") + (f" {group[1]}" if group[1] else "")
                self.add("W3", f"second {kind} file: only the first ('{os.path.basename(first[group])}') is ever "
                               "selected", ("model", "URLs", index))
            else:
                first[group] = path

    def selections(self, entries: list[str]) -> dict[tuple[str, str], object]:
        """The file WanGP 12 picks for each (quantization, dtype) preference: 16-bit takes the first entry whatever
        the dtype, and the model's dtype key replaces the preference's."""
        model_dtype = self.context.get("dtype")
        dtypes = (model_dtype,) if model_dtype in DTYPES else DTYPES
        return {(q, d): select_variant(entries, Preference(q, d), self.target, model_dtype)
                for q in QUANTIZATIONS for d in (dtypes if q != "none" else dtypes[:1])}

    def check_unselected(self, items: list[tuple[tuple, str]]) -> None:
        """W3 (v12): an entry that no preference (int8, fp8, 16-bit; bf16 or fp16) ever selects."""
        if len(items) < 2:
            return
        chosen = {variant.source for variant in self.selections([entry for _, entry in items]).values()}
        for where, entry in items:
            if entry in chosen:
                continue
            kind = quantized_kind(url_basename(split_subfolder(entry)[0]))
            why = (f"a {kind} file is loaded only as a definition's single entry" if kind not in _PREFERRED_KINDS
                   else "16-bit takes the first entry, int8 and fp8 the first names holding int8 / fp8")
            self.add("W3", f"'{os.path.basename(self.stored_path(entry))}' is never selected: {why}", where,
                     hint="remove it, or move it to a definition of its own")

    def check_modules(self, modules: list[str]) -> None:
        known = module_ids(self.target)
        for index, module in enumerate(modules):
            if module not in known:
                later = module in MODULES
                definition = not later and module in self.catalog.definitions  # WanGP 8+: module ids are ids
                self.add("E8", f"module '{module}' " + ("needs WanGP July 2025" if later else "is unknown")
                         + f" (target {self.target}){'' if later or definition else did_you_mean(module, known)}",
                         ("model", "modules", index),
                         hint=f"'{module}' is a definition: {K.later_format_hint(self.target)}" if definition
                         else "known: " + ", ".join(known))

    def check_modules_v12(self, modules: list) -> None:
        """Each item of a v12 ``modules`` list: variants (URL rules), a ``{URLs, URLs2}`` object (both needed), or
        the id of a definition whose own ``modules`` is a one-element list (followed again when that is an id)."""
        for index, item in enumerate(modules):
            where = ("model", "modules", index)
            if isinstance(item, list):
                self.check_entries(_items(where, item), weights=True)
            elif isinstance(item, dict):
                for key in K.MODULE_OBJECT_KEYS:
                    value = item.get(key)
                    if value is None:
                        self.add("E13", f"module object has no '{key}': WanGP 12 stops (\"No {key} defined for "
                                        "Module\")", where, hint=f"add \"{key}\": [...] (both URLs and URLs2)")
                    else:  # a string is one URL here, not a reference
                        self.check_entries([((*where, key), value)] if isinstance(value, str)
                                           else _items((*where, key), value), weights=True)
                for key in item:
                    if key not in K.MODULE_OBJECT_KEYS:
                        self.add("W7", f"'{key}' is not read in a module object (only URLs and URLs2)",
                                 (*where, key), key=True)
            else:
                problem = self.module_problem(item, [self.source.id])
                if problem:
                    self.add(problem[0], problem[1], where, hint=problem[2])

    def module_problem(self, module_id: str, chain: list[str]) -> tuple[str, str, str] | None:
        """(code, message, hint) when a module id is not usable as WanGP 12 reads it: ``get_model_recursive_prop(id,
        "modules", sub_prop_name="_list")`` on the definition's own value, which must be a one-element list."""
        if module_id in chain or len(chain) > MAX_REFERENCE_DEPTH:
            return "E6", f"circular module reference: {' -> '.join(chain + [module_id])}", "remove the loop"
        definition = self.catalog.find(module_id)
        if definition is None:
            return ("E8", (f"module '{module_id}' is neither a definition nor a base type"
                           f"{did_you_mean(module_id, list(self.catalog.definitions))}"),
                    "name a definition whose 'modules' holds exactly one module, or list the files")
        value = definition.model.get("modules")
        if not isinstance(value, list) or len(value) != 1:
            count = f"has {len(value)} modules" if isinstance(value, list) else (
                "has no 'modules'" if value is None else "has a 'modules' that is not a list")
            return ("E8", f"module '{module_id}' {count}, WanGP needs exactly 1 (\"should be a list of size 1\")",
                    "name a definition with a one-element 'modules' list, or list the module's files")
        inner = value[0]
        return self.module_problem(inner, chain + [module_id]) if isinstance(inner, str) else None

    # -- settings ---------------------------------------------------------------------------------------------
    def check_settings(self, data: dict, model: dict) -> None:
        arch = get_architecture(model.get("architecture"), self.target) if isinstance(
            model.get("architecture"), str) else None
        arch = arch if arch is not None or not self.v12 else self.arch
        for name, value in data.items():
            if name == "model":
                continue
            spec = self.settings_keys.get(name)
            if spec is None:
                tolerated = K.tolerated_setting(name) if self.v12 else None
                if tolerated:
                    self.add("W7", tolerated, (name,), key=True, hint=f"rename it '{K.TOLERATED_SETTINGS[name]}'")
                elif not self.v12 and name in K.MEDIA_KEYS:
                    self.add("W7", f"'{name}' is a media input: WanGP never reads it from settings", (name,),
                             key=True)
                else:
                    self.unknown_key((name,), later=not self.v12 and name in K.LATER_SETTINGS_KEYS)
                continue
            if spec.since != "v6" and self.target == "v6":
                self.add("W7", f"'{name}' is a July 2025 key: WanGP 6.x ignores it", (name,), key=True)
                continue
            if (name,) in self.not_strict:
                continue
            mismatch = check(value, spec.schema)
            if mismatch:
                where, message = mismatch
                self.add("E10", f"'{name}'{_at(where)} {message}", (name, *where),
                         hint="" if self.v12 else self.later_format(K.LATER_SETTINGS_FORMS, name, value))
                continue
            if self.v12:
                self.check_setting_v12(name, value, data)
            else:
                self.check_range(name, value, arch, model)
        if self.target == "v6" and "seed" not in data and not self.catalog.home.settings_file(self.source.id).is_file():
            self.add("E9", "no 'seed' setting: WanGP 6.x fails without one", (), hint="add \"seed\": -1 (random)")

    def check_range(self, name: str, value, arch, model: dict) -> None:
        where = (name,)
        if name in K.RANGES and not isinstance(value, list):
            low, high = K.RANGES[name]
            if not low <= value <= high:
                self.add("W8", f"'{name}' is {spelled(value)}, outside WanGP's range {low}..{high}", where)
        elif name == "tea_cache_setting" and value not in K.TEA_CACHE_VALUES:
            self.add("W8", f"'tea_cache_setting' is {spelled(value)}; WanGP offers "
                           f"{', '.join(map(str, K.TEA_CACHE_VALUES))}", where)
        elif name == "resolution" and value not in K.UI_RESOLUTIONS:
            self.add("W8", f"resolution {spelled(value)} is not one of WanGP's choices", where,
                     hint="choices: " + ", ".join(K.UI_RESOLUTIONS))
        elif name == "video_length" and arch is not None and not (model.get("image_outputs") or arch.image_outputs):
            low, high, step = arch.frames
            if not low <= value <= high or (value - low) % step:
                self.add("W8", f"video_length {spelled(value)}: {arch.id} takes {low}..{high} frames in steps of "
                               f"{step}",
                         where, hint=f"e.g. {low + step * max(0, round((min(max(value, low), high) - low) / step))}")

    def check_setting_v12(self, name: str, value, data: dict) -> None:
        """W8 (and E10 for a multiplier string WanGP refuses) under the model's own rules: UI ranges, frames,
        resolutions, guidance of distilled models, guidance phases, choices of model_mode and sample_solver."""
        where, context = (name,), self.context
        problem = K.range_problem(name, value, self.target, context)
        if problem:
            self.add("W8", problem, where)
        elif name in _GUIDANCE and 0 <= value < 1 and not _guidance_free(self.source.id, context, data):
            self.add("W8", f"'{name}' is {spelled(value)}: below 1 is meant for distilled or turbo models "
                           "(guidance off)", where, hint="use 1 or more, or check the model is distilled")
        elif name == "guidance_phases" and value > max(1, _int(context.get("guidance_max_phases"), 1)):
            self.add("W8", f"guidance_phases {value}: the model has at most "
                           f"{max(1, _int(context.get('guidance_max_phases'), 1))}", where)
        elif name == "video_length" and isinstance(value, int):
            self.check_frames(value)
        elif name == "resolution":
            choices = _resolution_choices(context)  # WanGP aligns the value to the VAE block as it aligns these
            if _aligned(value.lower(), _block(context)) not in choices:
                self.add("W8", f"resolution {spelled(value)} is not one of the model's choices", where,
                         hint="choices: " + ", ".join(sorted(choices, key=_pixels)[:24])
                         + (" ..." if len(choices) > 24 else ""))
        elif name == "loras_multipliers":
            for problem in multipliers.check_settings_string(value, branches=_strings(
                    context.get("lora_multiplier_branches"))):
                self.add("E10", f"'loras_multipliers': {problem}", where,
                         hint="one token per activated LoRA: a number, \"a;b\" per phase, \"x,y\" per step")
        elif name in _CHOICE_KEYS:
            choices = _choice_values(context.get(_CHOICE_KEYS[name]))
            if choices and value not in choices and value is not None:
                self.add("W8", f"'{name}' is {spelled(value)}, not one of the model's choices", where,
                         hint="choices: " + ", ".join(map(spelled, choices[:24])))

    def check_frames(self, value: int) -> None:
        """W8 for a frame count WanGP 12 changes: below the minimum, above the slider, or off the latent grid
        (WanGP floors it to ``k * step + offset``); image and audio models have no frames."""
        context = self.context
        if self.arch is None or context.get("image_outputs") or context.get("audio_only"):
            return
        low = _int(context.get("frames_minimum"), 5)
        step = max(1, _int(context.get("latent_size"), _int(context.get("frames_steps"), 4)))
        offset = max(0, _int(context.get("frames_offset"), 1))
        high = _int(context.get("frames_selection_maximum"), 737 if context.get("sliding_window") else 337)
        floored = max(low, (value - offset) // step * step + offset) if step > 1 else value
        if low <= value <= high and floored == value:
            return
        rule = f"{self.arch.id} takes {low}..{high} frames" + (f", {step}k+{offset}" if step > 1 else "")
        self.add("W8", f"video_length {value}: {rule}", ("video_length",),
                 hint=f"e.g. {min(max(floored, low), high)}")

    def unknown_key(self, path: tuple, *, later: bool) -> None:
        """W7, saying where the key belongs when it is one of the other level, else naming the closest known key."""
        name, in_model = path[-1], len(path) == 2
        if later:
            self.add("W7", f"'{name}' is a later WanGP version's key: kept, not validated", path, key=True)
            return
        model_names, settings_names = (_MODEL_NAMES_V12, _SETTINGS_NAMES_V12) if self.v12 else (
            _MODEL_NAMES, _SETTINGS_NAMES)
        model_keys, settings_keys = (self.model_keys, self.settings_keys) if self.v12 else (
            K.MODEL_KEYS, K.SETTINGS_KEYS)
        own, other = (model_names, settings_keys) if in_model else (settings_names, model_keys)
        elsewhere = "outside \"model\"" if in_model else "inside \"model\""
        if name in other:
            self.add("W7", f"'{name}' is a {'setting' if in_model else 'model key'}: WanGP reads it only {elsewhere}",
                     path, key=True, hint=f"move it {elsewhere}")
            return
        suggestion = did_you_mean(name, own) or did_you_mean(name, other).replace("?)", f" {elsewhere}?)")
        self.add("W7", f"'{name}' is an unknown key (kept as is){suggestion}", path, key=True)

    def later_format(self, forms: dict, name: str, value) -> str:
        """The hint of a value in a WanGP 8+ form (see keys.LATER_MODEL_FORMS), else an empty string."""
        return K.later_format_hint(self.target) if name in forms and forms[name](value) else ""

    def check_strict_json(self, data: dict, *, keys: bool = False) -> None:
        """E14: NaN/Infinity would reach WanGP's arithmetic (garbage frames); a lone surrogate cannot be encoded.
        In a key only with ``keys`` (in a definition such a key is unknown anyway: W7)."""
        if not self.source.maybe_not_strict:
            return  # the parser saw no such number and the text has no surrogate escape: no walk over every value
        for path, is_key, what in strict_json_problems(data):
            if what == LONE_SURROGATE and ((is_key and not keys) or (len(path) == 3 and path[:2] in _ENTRY_LISTS)):
                continue  # an unknown key (W7); an entry that is an unusable URL or path (E7)
            self.not_strict.add(path)
            label = ("key " if is_key else "") + _label(path)
            if what == LONE_SURROGATE:
                self.add("E14", f"{label} holds a lone surrogate (not valid Unicode): WanGP cannot write it back "
                                "as UTF-8", path, key=is_key,
                         hint="remove the \\udXXX escape, or complete the pair (\\ud83d\\ude00 is one character)")
                continue
            start, end = self.source.positions.values.get(path, (0, 0))
            written = self.source.text[start:end] or spelled(_value_at(data, path))
            low_high = K.ranges(self.target).get(path[-1]) if len(path) == 1 else None
            within = f" within {low_high[0]}..{low_high[1]}" if low_high else ""
            self.add("E14", f"{label} is {written}, not a finite JSON number: WanGP would compute with it and "
                            "render garbage", path,
                     hint=f"write a number{within} instead, or remove the key to use the default")

    def check_override(self) -> None:
        model_id = self.source.id
        if self.in_defaults:  # defaults/ files are the built-ins themselves
            return
        if self.v12:
            self.check_override_v12()
            return
        if model_id in ARCHITECTURES:
            self.add("W9", f"id '{model_id}' replaces the base architecture of the same name", (),
                     hint="rename the file unless you mean to replace the built-in model")
        definition = self.catalog.definitions.get(model_id)
        if definition is not None and definition.overrides is not None and definition.overrides.origin == "defaults" \
                and definition.source is self.source and set(self.source.data) - {"model"}:
            self.add("W9", f"id '{model_id}' overrides defaults/{model_id}.json: its settings keys are ignored "
                           "by WanGP 7", ())

    def check_override_v12(self) -> None:
        """W9 (v12): a file whose id is a WanGP 12 definition (a base type or a defaults/ file) is merged over it."""
        model_id = self.source.id
        definition = self.catalog.definitions.get(model_id)
        overridden = definition.overrides if definition is not None and definition.source is self.source else None
        if overridden is None and get_architecture(model_id, self.target) is None:
            return
        where = "defaults/" + model_id + ".json" if overridden is not None and overridden.origin == "defaults" \
            else "the base type of the same name"
        self.add("W9", f"id '{model_id}' overrides {where}: WanGP 12 merges this file's model keys and settings "
                       "over it", (), hint="rename the file unless you mean to change the built-in model")


_ENTRY_LISTS = (("model", "URLs"), ("model", "preload_URLs"), ("model", "loras"))
_MODEL_NAMES = sorted({*K.MODEL_KEYS, *K.LATER_MODEL_KEYS})
_SETTINGS_NAMES = sorted({*K.SETTINGS_KEYS, *K.LATER_SETTINGS_KEYS, *K.MEDIA_KEYS})
_MODEL_NAMES_V12 = sorted(K.model_keys("v12"))
_SETTINGS_NAMES_V12 = sorted(K.settings_keys("v12"))
#: v12 model keys holding checkpoint variants chosen by preference (W1, W3 apply).
_V12_WEIGHTS = ("URLs", "URLs2", "text_encoder_URLs")
#: Kinds a preference can select among several entries (the others ship as one-entry definitions).
_PREFERRED_KINDS = ("16-bit", "quanto-int8", "scaled-fp8", "int8-convrot", "int8")
#: July 2025 base ids that WanGP 12 no longer has as base types, and the type to use instead.
_V12_EQUIVALENTS = {"i2v_720p": "i2v", "moviigen": "t2v", "sky_df_720p_14B": "sky_df_14B",
                    "ltxv_13B_distilled": "ltxv_13B"}
_GUIDANCE = ("guidance_scale", "guidance2_scale", "guidance3_scale")
#: Settings whose value must be one of the model's choices: setting -> the handler key listing them.
_CHOICE_KEYS = {"model_mode": "model_modes", "sample_solver": "sample_solvers"}
#: Names of distilled models (few steps, guidance off).
_DISTILLED = re.compile(r"turbo|distill|lightning|lightx2v|schnell|causvid|fastwan|_fast|step_distilled",
                        re.IGNORECASE)


def _items(where: tuple, values: list) -> list[tuple[tuple, str]]:
    """(position, entry) pairs of a list of entries at ``where``."""
    return [((*where, index), entry) for index, entry in enumerate(values)]


def _subfolder_problem(sub: str) -> tuple[str, str] | None:
    reason = unsafe_subfolder_reason(sub)
    return (reason, "write url|sub/folder (a relative folder inside ckpts/) or url|%lora_dir") if reason else None


def _int(value, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _strings(value) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def _choice_values(choices) -> list:
    """The values of a handler's choices: plain values, or ``[label, value]`` pairs (a dict: its ``choices``)."""
    if isinstance(choices, dict):
        choices = choices.get("choices")
    if not isinstance(choices, list):
        return []
    return [c[1] if isinstance(c, list) and len(c) == 2 else c for c in choices if not isinstance(c, dict)]


def _guidance_free(model_id: str, context: dict, data: dict) -> bool:
    """Whether a guidance below 1 is expected: the model has no guidance phases (WanGP hides the slider), runs a
    distilled schedule (10 steps or fewer), or is named as a distilled / turbo / lightning model."""
    if context.get("guidance_max_phases") == 0:
        return True
    steps = data.get("num_inference_steps")
    if isinstance(steps, int) and not isinstance(steps, bool) and steps <= 10:
        return True
    names = (model_id, context.get("architecture"), context.get("name"))
    return any(isinstance(n, str) and _DISTILLED.search(n) for n in names)


#: WanGP 12's built-in resolution choices (``shared/resolutions.py``, the 4K ones included: a server option).
_RESOLUTIONS_V12 = (
    "3840x2176", "2176x3840", "2880x2880", "3840x1664", "1664x3840", "2048x2048", "1920x1920", "2560x1440",
    "1440x2560", "1920x1440", "1440x1920", "2160x1440", "1440x2160", "1456x1456", "2688x1152", "1152x2688",
    "1920x1088", "1088x1920", "1440x1440", "1536x1024", "1024x1536", "1920x832", "832x1920", "2048x768",
    "1024x1792", "1088x1088", "1024x1024", "1280x720", "720x1280", "1600x400", "1280x544", "544x1280", "1104x832",
    "832x1104", "960x960", "960x544", "544x960", "832x624", "624x832", "720x720", "832x480", "480x832", "672x384",
    "384x672", "512x512", "576x320", "320x576", "448x448", "448x256", "256x448", "320x320",
)
#: Resolution groups: (tier, largest pixel count); above the last one a resolution is 2160p.
_TIERS = ((256, 448 * 256), (320, 448 * 448), (384, 512 * 512), (480, 832 * 624), (540, 960 * 544),
          (720, 1024 * 1024), (1080, 1920 * 1088), (1440, 2560 * 1440), (2160, 3840 * 2176))
_TIER_ALIASES = {"2k": 1440, "4k": 2160}
_CONDITION = re.compile(r"(>=|<=|>|<|=?)(\d+)")
_COMPARE = {"": int.__eq__, "=": int.__eq__, ">=": int.__ge__, "<=": int.__le__, ">": int.__gt__, "<": int.__lt__}


def _pixels(resolution: str) -> int:
    width, _, height = resolution.partition("x")
    return int(width) * int(height)


def _tier(resolution: str) -> int:
    pixels = _pixels(resolution)
    return next((tier for tier, most in _TIERS if pixels <= most), _TIERS[-1][0])


def _category_allowed(tier: int, expressions: list[str]) -> bool:
    """WanGP's ``category_allowed``: ``720p``, ``>=720&<=1440``, ``2k``; ``+`` is or, ``&`` is and."""
    def token(match):
        word = match.group(0)
        number = _TIER_ALIASES.get(word, word.removesuffix("p"))
        return str(number) if str(number).isdigit() else word

    def holds(condition: str) -> bool:
        found = _CONDITION.match(condition.strip())
        return bool(found) and _COMPARE[found.group(1)](tier, int(found.group(2)))

    for expression in expressions:
        text = re.sub(r"[a-z0-9]+", token, str(expression).strip().lower())
        if any(all(holds(part) for part in alternative.split("&")) for alternative in text.split("+")
               if alternative.strip()):
            return True
    return not expressions


def _resolution_choices(context: dict) -> set[str] | frozenset[str]:
    """The resolutions WanGP 12 offers for a model (``resolve_resolution_choices``): its ``resolutions`` and/or the
    built-in ones of its ``resolutions_categories``, else every built-in one; aligned to the VAE block size."""
    own, categories = context.get("resolutions"), context.get("resolutions_categories")
    expressions = None if categories is None else tuple(
        [categories] if isinstance(categories, str) else _strings(categories))
    block = _block(context)
    if not isinstance(own, list):
        return _builtin_choices(expressions, block)
    choices = {_aligned(r[1].lower(), block) for r in own if isinstance(r, list) and len(r) == 2
               and isinstance(r[1], str) and re.fullmatch(r"\d+x\d+", r[1].strip().lower())}
    return choices | (_builtin_choices(expressions, block) if expressions is not None else frozenset())


@functools.lru_cache(maxsize=None)
def _builtin_choices(expressions: tuple | None, block: int) -> frozenset[str]:
    """WanGP's built-in resolutions allowed by ``expressions`` (None: all of them), aligned to ``block``."""
    allowed = _RESOLUTIONS_V12 if expressions is None else [
        r for r in _RESOLUTIONS_V12 if _category_allowed(_tier(r), list(expressions))]
    return frozenset(_aligned(choice, block) for choice in allowed)


def _block(context: dict) -> int:
    return max(1, _int(context.get("vae_block_size"), 16))


def _aligned(resolution: str, block: int) -> str:
    """WanGP's ``align_resolution_value``: each side floored to the VAE block (``1280x720`` → ``1280x704`` at 64)."""
    width, _, height = resolution.partition("x")
    return f"{max(block, int(width) // block * block)}x{max(block, int(height) // block * block)}"


def _at(where: tuple) -> str:
    """``["key"][0]``: a path inside a value, in JSON spelling."""
    return "".join(f"[{json.dumps(p, ensure_ascii=False)}]" if isinstance(p, str) else f"[{p}]" for p in where)


def _label(path: tuple) -> str:
    """``'guidance_scale'``, ``'URLs'[0]``: the key a finding is about (model keys without the 'model' step)."""
    inner = path[1:] if path[:1] == ("model",) and len(path) > 1 else path
    return f"'{inner[0]}'{_at(inner[1:])}" if inner else "the file"


def _value_at(data, path: tuple):
    for step in path:
        data = data[step]
    return data


def _suggest(word: str, choices: list[str]) -> str:
    """`` (did you mean 't2v'?)``: the base id ``word`` extends (``t2v_14B``), else the closest one."""
    prefix = [c for c in choices if word.startswith(c + "_")]
    return f" (did you mean '{prefix[0]}'?)" if prefix else did_you_mean(word, choices)


def _url_problem(url: str) -> tuple[str, str] | None:
    """(reason, hint) when a URL cannot be fetched into ``ckpts/`` as WanGP does; None when it can."""
    reason = unsafe_basename_reason(url)
    if reason:
        return reason, "the URL must end with the file name"
    try:
        url.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode (a lone surrogate)", "remove the \\udXXX escape"
    if name_too_long(url_basename(url)):
        return f"file name longer than {NAME_MAX} bytes", "rename the file: ckpts/<name> must fit the file system"
    if "@" in urlsplit(url).netloc:
        return ("the URL carries credentials (user:password@): WanGP cannot log in with them, and they leak with "
                "the definition"), "remove them; for a gated Hugging Face repo set HF_TOKEN"
    return None


def _hub_hint(split) -> str:
    """How to turn a Hub URL into the ``resolve/main`` form WanGP downloads through huggingface_hub."""
    if "/blob/" in split.path:
        return "replace /blob/ with /resolve/ (a /blob/ URL is the web page, not the file)"
    if split.scheme != "https" or split.hostname != "huggingface.co":
        return "write it as https://huggingface.co/<owner>/<repo>/resolve/main/<path>"
    if "/resolve/" in split.path:
        return "other revisions download over plain HTTP (no HF_TOKEN, no resume): use resolve/main if it has the file"
    return "use the file's download link: https://huggingface.co/<owner>/<repo>/resolve/main/<path>"


def collect_files(paths: list[str]) -> list[tuple[Path | None, str]]:
    """Files to validate, as (path, display): each file as given, each folder's definition files as WanGP globs
    them (:func:`definition_files`, the catalog's and ``list``'s set), ``-`` as (None, ``<stdin>``).

    Anything else that exists (a FIFO, a dangling link) is kept, to be reported; missing paths are usage errors."""
    files: list[tuple[Path | None, str]] = []
    for given in paths:
        path = Path(given)
        if given == STDIN:
            if any(found is None for found, _ in files):
                raise UsageError("'-' (standard input) is given twice", hint="give '-' once")
            files.append((None, STDIN_DISPLAY))
        elif path.is_dir():
            files.extend((child, os.path.join(given, child.name)) for child in definition_files(path))
        elif os.path.lexists(path):
            files.append((path, given))
        else:
            raise UsageError(f"path '{given}' does not exist", hint="pass definition files or folders ('-': stdin)")
    return files


def check_source(source: Source, home: Home, target: str = "july") -> list[Diagnostic]:
    """The diagnostics of one already-read source, in the context of the home folder's definitions."""
    return sorted(_Checker(source, Catalog(home, target, extra=[source]), target).run())


def validate_paths(paths: list[str] | None, home: Home, *, target: str = "july", ignore: tuple[str, ...] = (),
                   note: Callable[[str], None] | None = None) -> Report:
    """Validate files and folders (default: the home's ``finetunes/``), and the ``settings/<id>_settings.json`` of
    the home's definitions among them; one bad file never stops the others. ``note`` hears what is worth saying
    besides the findings (finetunes/ is empty but defaults/ is not)."""
    if target not in TARGETS:
        raise UsageError(f"unknown target '{target}'", hint="choose one of: " + ", ".join(TARGETS))
    defaults = definition_files(home.defaults)
    if not paths:
        if not home.finetunes.is_dir() and not defaults:
            raise UsageError(f"no finetunes/ folder in '{home.root}'", hint="pass paths, or --home DIR")
        paths = [shown_path(home.finetunes)] if home.finetunes.is_dir() else []
        default_run = True
    else:
        default_run = False
    sources = [read_stdin() if path is None else read_source(path, display) for path, display in collect_files(paths)]
    catalog = Catalog(home, target, extra=sources)
    settings_files = _settings_files(sources, home)
    report = Report(files=len(sources) + len(settings_files))
    for source in sources:
        report.diagnostics.extend(_Checker(source, catalog, target).run())
    for path in settings_files:
        report.diagnostics.extend(_Checker(read_source(path, shown_path(path)), catalog, target).run_settings_file())
    report.diagnostics = sorted(d for d in report.diagnostics if d.code not in ignore and d.code[0] not in ignore)
    if default_run and not sources and note is not None:
        folder, where = (os.path.join(shown_path(sub), "") for sub in (home.finetunes, home.defaults))
        note(f"No definitions found in {folder}" + (f" ({where} has {len(defaults)}: wangp validate {where})"
                                                    if defaults else ""))
    return report


def _settings_files(sources: list[Source], home: Home) -> list[Path]:
    """``settings/<id>_settings.json`` (whatever that name holds) of the sources that are the home's definitions."""
    folders = {os.path.realpath(home.finetunes), os.path.realpath(home.defaults)}
    real = functools.lru_cache(maxsize=None)(os.path.realpath)  # one resolution per folder, not per file
    ids = dict.fromkeys(s.id for s in sources if s.path.name.endswith(".json") and real(str(s.path.parent)) in folders)
    return [path for path in map(home.settings_file, ids) if os.path.lexists(path)]
