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
from wangp_cli.core.definitions import (
    REFERENCE_PROPS, STDIN, STDIN_DISPLAY, Catalog, DefinitionReferenceError, FileProblem, Source, definition_files,
    read_source, read_stdin, shown_path,
)
from wangp_cli.core.errors import Diagnostic, UsageError
from wangp_cli.core.home import Home, unusable_path_reason
from wangp_cli.core.outputs import NAME_MAX, name_too_long
from wangp_cli.core.registry import (
    ARCHITECTURES, DOCUMENTED_FINETUNE_ARCHITECTURES, MODULES, TARGETS, architecture_ids, get_architecture,
    module_ids,
)
from wangp_cli.core.safety import did_you_mean, redact
from wangp_cli.core.schema import LONE_SURROGATE, check, spelled, strict_json_problems
from wangp_cli.core.settings import SETTINGS_FILE_HINT
from wangp_cli.core.variants import dtype_token, local_path, unsafe_basename_reason, url_basename

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
        self.found: list[Diagnostic] = []
        self.not_strict: set[tuple] = set()  # paths of E14 values: no type or range findings on top of it

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
            spec = K.SETTINGS_KEYS.get(name)
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
            self.check_model(model)
        self.check_settings(data, model if isinstance(model, dict) else {})
        self.check_override()
        return self.found

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
            self.check_architecture(arch)
        for name, value in model.items():
            spec = K.MODEL_KEYS.get(name)
            if spec is None:
                self.unknown_key(("model", name), later=name in K.LATER_MODEL_KEYS)
                continue
            if name in ("name", "architecture", "description", "base"):
                continue
            if spec.since != "v6" and self.target == "v6":
                self.add("W7", f"'{name}' is a July 2025 key: WanGP 6.x ignores it", ("model", name), key=True)
                continue
            if isinstance(value, str) and name in REFERENCE_PROPS:
                self.check_reference(name, value)
                continue
            if ("model", name) in self.not_strict:
                continue
            mismatch = check(value, spec.schema)
            if mismatch:
                where, message = mismatch
                code = {"URLs": "E5", "loras_multipliers": "E11"}.get(name, "E13")
                self.add(code, f"'{name}'{_at(where)} {message}", ("model", name, *where),
                         hint=self.later_format(K.LATER_MODEL_FORMS, name, value))
                continue
            if name == "URLs":
                self.check_entries(name, value, weights=True)
            elif name in ("preload_URLs", "loras"):
                self.check_entries(name, value, weights=False)
            elif name == "modules":
                self.check_modules(value)
        if "URLs" not in model and "URLs" not in inherited:
            self.add("E5", "model has no 'URLs'", ("model",), key=True,
                     hint="list the checkpoint URLs, e.g. \"URLs\": [\"https://huggingface.co/.../x_bf16.safetensors\"]")
        loras, multipliers = model.get("loras"), model.get("loras_multipliers")
        if isinstance(loras, list) and isinstance(multipliers, list) and len(multipliers) > len(loras):
            self.add("E11", f"'loras_multipliers' has {len(multipliers)} values for {len(loras)} loras",
                     ("model", "loras_multipliers"))
        if model.get("auto_quantize") is True and model.get("modules") and self.needs_auto_quantize(model):
            self.add("W6", "'auto_quantize' is ignored when 'modules' is set: without a quanto file, int8 loads "
                           "the 16-bit weights", ("model", "auto_quantize"), key=True,
                     hint="make the quanto files with 'wangp quantize --dtype bf16' (and fp16)")

    def inherited_model(self) -> dict:
        """The model keys a defaults/ definition of the same id supplies (WanGP 7 merges the two)."""
        definition = self.catalog.definitions.get(self.source.id)
        if definition is not None and definition.source is self.source and definition.overrides is not None \
                and definition.overrides.origin == "defaults":
            return definition.overrides.model
        return {}

    def needs_auto_quantize(self, model: dict) -> bool:
        """Whether some dtype has no quanto file, so that auto_quantize would matter."""
        urls = model.get("URLs")
        if isinstance(urls, str):
            try:
                urls, _ = self.catalog.resolve_value(self.source.id, "URLs", urls)
            except DefinitionReferenceError:
                return False
        if not isinstance(urls, list):
            return False
        quanto = {dtype_token(local_path(u)) for u in urls if isinstance(u, str) and "quanto" in local_path(u)}
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
            self.add("E6", exc.message, where, hint="point the reference at an existing id without loops")
            return
        if prop == "URLs" and not entries:
            self.add("E5", f"'URLs' reference '{value}' resolves to no files", where)

    def check_entries(self, prop: str, entries: list[str], *, weights: bool) -> None:
        seen: dict[str, int] = {}
        usable: list[tuple[int, str]] = []
        for index, entry in enumerate(entries):
            where = ("model", prop, index)
            if _REMOTE.match(entry):
                problem = _url_problem(entry)
                if problem:
                    self.add("E7", f"unusable URL: {problem[0]}", where, hint=problem[1])
                    continue
                name = url_basename(entry)
                if "?" in name:
                    leak = "; a token in a URL leaks with the file: set HF_TOKEN instead" * (redact(name) != name)
                    self.add("W2", f"query string in the file name: {name}", where,
                             hint=f"drop the '?...' part: WanGP keeps it in the local file name{leak}")
                self.check_url_form(entry, where)
            elif _SCHEME.match(entry) and not re.match(r"^[A-Za-z]:[\\/]", entry):
                self.add("E7", f"unsupported URL scheme '{entry.split(':', 1)[0]}': only http(s) URLs and local "
                               "paths are allowed", where)
                continue
            elif unusable_path_reason(entry):
                self.add("E7", f"unusable local path: {unusable_path_reason(entry)}", where)
                continue
            elif not self.catalog.home.contains(entry):
                self.add("E12", f"local path '{entry}' escapes the home folder", where,
                         hint="keep local files under the home folder (e.g. ckpts/)")
                continue
            else:
                missing = "" if self.catalog.home.exists(entry) else " (file missing)"
                self.add("W5", f"local path '{entry}' is not shareable{missing}", where,
                         hint="upload the file and use its URL before sharing the definition")
            name = os.path.basename(local_path(entry))
            if name in seen:
                self.add("W2", f"'{name}' is also entry {seen[name]}: both land on ckpts/{name}", where)
            seen.setdefault(name, index)
            usable.append((index, entry))
            if weights:
                self.check_name(local_path(entry), where)
        if weights:
            self.check_duplicate_variants(usable)

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

    # -- settings ---------------------------------------------------------------------------------------------
    def check_settings(self, data: dict, model: dict) -> None:
        arch = get_architecture(model.get("architecture"), self.target) if isinstance(
            model.get("architecture"), str) else None
        for name, value in data.items():
            if name == "model":
                continue
            spec = K.SETTINGS_KEYS.get(name)
            if spec is None:
                if name in K.MEDIA_KEYS:
                    self.add("W7", f"'{name}' is a media input: WanGP never reads it from settings", (name,),
                             key=True)
                else:
                    self.unknown_key((name,), later=name in K.LATER_SETTINGS_KEYS)
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
                         hint=self.later_format(K.LATER_SETTINGS_FORMS, name, value))
                continue
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

    def unknown_key(self, path: tuple, *, later: bool) -> None:
        """W7, saying where the key belongs when it is one of the other level, else naming the closest known key."""
        name, in_model = path[-1], len(path) == 2
        if later:
            self.add("W7", f"'{name}' is a later WanGP version's key: kept, not validated", path, key=True)
            return
        own, other = (_MODEL_NAMES, K.SETTINGS_KEYS) if in_model else (_SETTINGS_NAMES, K.MODEL_KEYS)
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
            low_high = K.RANGES.get(path[-1]) if len(path) == 1 else None
            within = f" within {low_high[0]}..{low_high[1]}" if low_high else ""
            self.add("E14", f"{label} is {written}, not a finite JSON number: WanGP would compute with it and "
                            "render garbage", path,
                     hint=f"write a number{within} instead, or remove the key to use the default")

    def check_override(self) -> None:
        model_id = self.source.id
        if self.in_defaults:  # defaults/ files are the built-ins themselves
            return
        if model_id in ARCHITECTURES:
            self.add("W9", f"id '{model_id}' replaces the base architecture of the same name", (),
                     hint="rename the file unless you mean to replace the built-in model")
        definition = self.catalog.definitions.get(model_id)
        if definition is not None and definition.overrides is not None and definition.overrides.origin == "defaults" \
                and definition.source is self.source and set(self.source.data) - {"model"}:
            self.add("W9", f"id '{model_id}' overrides defaults/{model_id}.json: its settings keys are ignored "
                           "by WanGP 7", ())


_ENTRY_LISTS = (("model", "URLs"), ("model", "preload_URLs"), ("model", "loras"))
_MODEL_NAMES = sorted({*K.MODEL_KEYS, *K.LATER_MODEL_KEYS})
_SETTINGS_NAMES = sorted({*K.SETTINGS_KEYS, *K.LATER_SETTINGS_KEYS, *K.MEDIA_KEYS})


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
