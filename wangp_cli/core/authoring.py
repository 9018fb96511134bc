"""Making a new definition (``wangp new``): WanGP's docs steps 1-3, checked before anything is written."""

from __future__ import annotations

import re
from pathlib import Path

from wangp_cli.core import jsonio
from wangp_cli.core.definitions import Catalog, Source
from wangp_cli.core.errors import Diagnostic, UsageError, WangpError
from wangp_cli.core.home import Home
from wangp_cli.core.outputs import NAME_MAX, name_too_long
from wangp_cli.core.registry import architecture_ids, get_architecture
from wangp_cli.core.safety import did_you_mean
from wangp_cli.core.settings import META_KEYS, merged_settings, ordered, read_settings_file

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def new_definition(home: Home, model_id: str, *, architecture: str, name: str, urls: list[str],
                   description: str = "", modules: list[str] = (), preload_urls: list[str] = (),
                   auto_quantize: bool = False, target: str = "july",
                   force: bool = False) -> tuple[Path, dict, list[Diagnostic]]:
    """Write ``finetunes/<id>.json`` from the architecture's settings plus a model subtree; never overwrites.

    Modules default to the architecture's own (``vace_14B`` -> ``["vace_14B"]``). Refuses a file with errors, and
    one that would replace a base architecture or a ``defaults/`` definition (W9) unless ``force``. Returns the
    path, the data and the file's warnings.
    """
    if not _ID.match(model_id) or model_id.endswith(".json"):
        raise UsageError(f"invalid id '{model_id}'", hint="use letters, digits, '.', '_' and '-' (the file name "
                                                          "without .json), e.g. t2v_myfinetune")
    if name_too_long(f"{model_id}_settings.json"):
        raise UsageError(f"id '{model_id[:20]}...' is too long: settings/<id>_settings.json must fit in {NAME_MAX} "
                         "bytes", hint="choose a shorter id")
    arch = get_architecture(architecture, target)
    if arch is None:
        raise UsageError(f"unknown architecture '{architecture}'{did_you_mean(architecture, architecture_ids(target))}",
                         hint="choose one of: " + ", ".join(architecture_ids(target)))
    if not urls:
        raise UsageError("at least one --url is needed", hint="the checkpoint file(s): URL or local path")
    path = home.finetunes / f"{model_id}.json"
    if path.exists():
        raise WangpError(f"'{path}' already exists", code="exists", hint="choose another id or edit the file")
    model = {"name": name, "architecture": architecture, "description": description or name, "URLs": list(urls)}
    modules = list(modules) or _default_modules(arch, target)
    if modules:
        model["modules"] = modules
    if preload_urls:
        model["preload_URLs"] = list(preload_urls)
    if auto_quantize:
        model["auto_quantize"] = True
    data = {"model": model, **_architecture_settings(home, architecture, target)}
    warnings = _refuse_errors(home, path, data, target, force=force)
    jsonio.write_json(path, data, overwrite=False)
    return path, data, warnings


def _default_modules(arch, target: str) -> list | str:
    """The architecture's modules for a new finetune. WanGP 12: a base type whose own ``modules`` is one module is
    named by its id (``["vace_14B"]``); a list of ids or a reference is copied as it is."""
    if target != "v12":
        return list(arch.modules)
    modules = (arch.defaults or {}).get("modules")
    if isinstance(modules, list) and len(modules) == 1:
        return [arch.id]
    return modules or []


def _architecture_settings(home: Home, architecture: str, target: str) -> dict:
    """``settings/<arch>_settings.json`` when present (WanGP's step 1), else WanGP's defaults."""
    settings_file = home.settings_file(architecture)
    if settings_file.is_file():
        settings = read_settings_file(settings_file)
    else:
        catalog = Catalog(home, target)
        settings, _ = merged_settings(catalog.get(architecture), catalog)
    return ordered({k: v for k, v in settings.items() if k not in META_KEYS})


def _refuse_errors(home: Home, path: Path, data: dict, target: str, *, force: bool) -> list[Diagnostic]:
    """The validator's findings on the file to be written: errors refuse it, so does W9 without ``force``;
    the other warnings are returned."""
    from wangp_cli.core.validation import check_source

    text = jsonio.dump_json(data)
    source = Source(path=path, display=str(path), text=text, data=data)
    found = check_source(source, home, target)
    errors = [d for d in found if d.severity == "error"]
    if errors:
        raise WangpError(f"the definition would not be valid: {errors[0].message}",
                         code=errors[0].code, hint=errors[0].hint, exit_code=2 if errors[0].code == "E7" else 1)
    override = next((d for d in found if d.code == "W9"), None)
    if override is not None and not force:
        raise UsageError(override.message, code="W9",
                         hint=f"choose another id (e.g. {source.id}_myft), or pass --force to replace it on purpose")
    return [d for d in found if d.severity == "warning"]
