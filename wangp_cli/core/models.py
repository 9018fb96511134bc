"""A definition resolved for use: the chosen transformer file, modules, preloads, merged settings."""

from __future__ import annotations

from dataclasses import dataclass

from wangp_cli.core.definitions import MAX_REFERENCE_DEPTH, Catalog, Definition, DefinitionReferenceError
from wangp_cli.core.errors import WangpError
from wangp_cli.core.registry import (
    MODULES, Architecture, architecture_ids, family_of, get_architecture, known_architecture,
)
from wangp_cli.core.safety import did_you_mean
from wangp_cli.core.settings import merged_settings
from wangp_cli.core.variants import (
    CHECKPOINT_ROOTS, Preference, Variant, is_remote, lora_path, select_variant, split_subfolder, transformer_dtype,
    url_basename, variants, will_auto_quantize,
)


@dataclass(frozen=True)
class ArchitectureOf:
    """What a definition's ``architecture`` names: the id as written, its registry entry, and what is wrong."""

    id: str | None  # None when missing or not a string
    arch: Architecture | None
    problem: str | None = None
    code: str = ""  # the validate code of the problem (E3, E4)

    @property
    def known(self) -> Architecture | None:
        """The registry entry, also for an id of another target."""
        return self.arch or known_architecture(self.id or "")

    @property
    def family(self) -> str | None:
        """The registry's family; for an unknown id WanGP's name tokens, never a guessed "wan"."""
        return self.known.family if self.known else family_of(self.id or "")

    @property
    def io_class(self) -> str | None:
        return self.known.io_class if self.known else None


def architecture_of(catalog: Catalog, definition: Definition) -> ArchitectureOf:
    """Resolve ``architecture`` (or the June 2025 key ``base``) for ``catalog.target``; never raises."""
    model, target = definition.model, catalog.target
    if "architecture" not in model:
        base = model.get("base")
        if not isinstance(base, str):
            return ArchitectureOf(None, None, "has no 'architecture'", "E3")
        return ArchitectureOf(base, get_architecture(base, target),
                              "uses the June 2025 key 'base': rename it to 'architecture'", "E3")
    value = model["architecture"]
    if not isinstance(value, str):
        return ArchitectureOf(None, None, "has an 'architecture' that is not a string", "E3")
    arch = get_architecture(value, target)
    if arch is not None:
        return ArchitectureOf(value, arch)
    hidden = " (WanGP 12 hides it: 'unsupported architecture')" if target == "v12" else ""
    other = next((t for t in ("v12", "july", "v6") if t != target and get_architecture(value, t)), None)
    if value in catalog.definitions and value != definition.id:
        problem = f"has architecture '{value}', which names a definition, not a base architecture{hidden}"
    elif other:
        problem = f"has architecture '{value}', which is a base id of target {other}, not {target}{hidden}"
    else:
        problem = f"has an unknown architecture '{value}'{did_you_mean(value, architecture_ids(target))}{hidden}"
    return ArchitectureOf(value, None, problem, "E4")


def resolved_entries(catalog: Catalog, definition: Definition, prop: str) -> list[str]:
    """The string entries of a list property after following string references."""
    values = resolved_list(catalog, definition, prop)
    return [v for v in values if isinstance(v, str)]


def resolved_list(catalog: Catalog, definition: Definition, prop: str) -> list:
    """A list property after following string references, items as written (E6 as an error)."""
    try:
        values, _ = catalog.resolve(definition.id, prop)
    except DefinitionReferenceError as exc:
        raise WangpError(f"'{definition.id}': {exc.message}", code="E6",
                         hint="run 'wangp validate' to see where") from None
    return values


def lora_dir(catalog: Catalog, definition: Definition) -> str | None:
    """The LoRA folder name under ``loras/`` of a v12 definition's base type (None for other targets)."""
    arch = get_architecture(definition.architecture or "", catalog.target) if catalog.target == "v12" else None
    return arch.lora_dir if arch is not None else None


def model_dtype(catalog: Catalog, definition: Definition) -> str | None:
    """WanGP 12's ``dtype`` model key (the JSON, else the base type's handler): it wins over the dtype policy."""
    if catalog.target != "v12":
        return None
    value = definition.model.get("dtype")
    if value is None:
        arch = get_architecture(definition.architecture or "", catalog.target)
        value = arch.handler_keys.get("dtype") if arch is not None else None
    return value if value in ("bf16", "fp16") else None


def _file(catalog: Catalog, variant: Variant) -> dict:
    """Where a variant is (the first hit of WanGP's search, else where a download puts it) and whether it is there."""
    found = catalog.home.locate(variant.lookup)
    return {"url": variant.source if variant.is_remote else None, "path": found or variant.path,
            "present": found is not None}


def transformer_entries(catalog: Catalog, definition: Definition, prop: str = "URLs") -> list[str]:
    """The entries of ``URLs`` (``URLs2``: the second transformer) after references; E5 when there are none."""
    urls = resolved_entries(catalog, definition, prop)
    if not urls and prop == "URLs":
        raise WangpError(f"'{definition.id}' lists no checkpoint files", code="E5",
                         hint=f"run: wangp validate {definition.source.display if definition.source else ''}".rstrip())
    return urls


def _chosen(catalog: Catalog, definition: Definition, entries: list[str], preference: Preference, *,
            auto_quantize: bool = False) -> dict:
    dtype = model_dtype(catalog, definition)
    variant = select_variant(entries, preference, catalog.target, dtype)
    return {**_file(catalog, variant), "quantized": variant.quantized, "kind": variant.kind,
            "auto_quantize": auto_quantize,
            "dtype": transformer_dtype(variant, preference, auto_quantized=auto_quantize, model_dtype=dtype),
            "label": variant.label}


def choose_transformer(catalog: Catalog, definition: Definition, preference: Preference, prop: str = "URLs") -> dict:
    """The file WanGP would load for ``preference`` (``prop="URLs2"``: the second transformer), with its dtype,
    its kind (16-bit, quanto-int8, scaled-fp8, gguf, ...) and whether it is on disk."""
    entries = transformer_entries(catalog, definition, prop)
    dtype = model_dtype(catalog, definition)
    variant = select_variant(entries, preference, catalog.target, dtype)
    auto = will_auto_quantize(variant, preference, auto_quantize=definition.model.get("auto_quantize") is True,
                              has_modules=bool(resolved_modules(catalog, definition)))
    return {**_chosen(catalog, definition, entries, preference, auto_quantize=auto), "entry": variant.source}


def module_ids(catalog: Catalog, definition: Definition) -> list[str]:
    """July's module ids of a definition (v12: the ids among its modules; inline modules have none)."""
    return [m["id"] for m in resolved_modules(catalog, definition) if m["id"]]


def resolved_modules(catalog: Catalog, definition: Definition) -> list[dict]:
    """Every module of a definition as ``{"id", "URLs", "URLs2"}`` (id None for an inline one).

    July: ids of the module table. WanGP 12 (``load_models``): an item is a list of variants, an
    ``{"URLs", "URLs2"}`` object, or a definition id whose own resolved ``modules`` must be exactly one module
    (followed again when that one is an id); the whole key may be a string reference."""
    items = resolved_list(catalog, definition, "modules")
    if catalog.target != "v12":
        modules = []
        for item in items:
            module = MODULES.get(item) if isinstance(item, str) else None
            if module is None:
                raise WangpError(f"'{definition.id}' uses unknown module '{item}'", code="E8")
            modules.append({"id": item, "URLs": module.urls, "URLs2": []})
        return modules
    return [_module(catalog, definition.id, item, [definition.id]) for item in items]


def _module(catalog: Catalog, owner: str, item, chain: list[str]) -> dict:
    if isinstance(item, list):
        return {"id": None, "URLs": [v for v in item if isinstance(v, str)], "URLs2": []}
    if isinstance(item, dict):
        urls, urls2 = item.get("URLs"), item.get("URLs2")
        return {"id": None, "URLs": urls if isinstance(urls, list) else [urls] if isinstance(urls, str) else [],
                "URLs2": urls2 if isinstance(urls2, list) else [urls2] if isinstance(urls2, str) else []}
    if not isinstance(item, str):
        raise WangpError(f"'{owner}': a 'modules' item must be a list of files, an object or an id", code="E13")
    if item in chain or len(chain) > MAX_REFERENCE_DEPTH:
        raise WangpError(f"'{owner}': circular module reference: {' -> '.join(chain + [item])}", code="E6")
    referenced = catalog.find(item)
    if referenced is None:
        raise WangpError(f"'{owner}' uses module '{item}', which is not a definition", code="E8",
                         hint="a module id names a definition whose 'modules' holds exactly one module")
    inner = referenced.model.get("modules")  # get_model_recursive_prop(id, "modules", "_list"): no reference here
    if not isinstance(inner, list) or len(inner) != 1:
        count = f"has {len(inner)} modules" if isinstance(inner, list) else "has no 'modules' list"
        raise WangpError(f"'{owner}' uses module '{item}', which {count}: WanGP needs exactly 1", code="E8",
                         hint="name a definition whose 'modules' is a one-module list, or list the files")
    module = _module(catalog, owner, inner[0], chain + [item])
    return {**module, "id": item}


def resolve_model(catalog: Catalog, model_id: str, preference: Preference) -> dict:
    """Everything ``wangp show`` prints: the JSON record of a resolved definition."""
    definition = catalog.get(model_id)
    of = architecture_of(catalog, definition)
    if of.problem:
        where = definition.source.display if definition.source else model_id
        raise WangpError(f"'{model_id}' {of.problem}", code=of.code, hint=f"run: wangp validate {where}")
    arch = of.arch
    target, folder = catalog.target, lora_dir(catalog, definition)
    modules = []
    for module in resolved_modules(catalog, definition):
        record = {"id": module["id"], **_chosen(catalog, definition, module["URLs"], preference)} \
            if module["URLs"] else {"id": module["id"], "path": None, "present": False}
        if module["URLs2"]:
            record["second"] = _chosen(catalog, definition, module["URLs2"], preference)
        modules.append(record)
    settings, origin = merged_settings(definition, catalog)
    urls2 = transformer_entries(catalog, definition, "URLs2") if target == "v12" else []
    record = {
        "id": definition.id,
        "name": definition.name,
        "architecture": arch.id,
        "family": arch.family,
        "class": arch.task_class or arch.io_class,
        "description": definition.model.get("description", ""),
        "origin": definition.origin,
        "source": definition.source.display if definition.source else None,
        "visible": definition.visible,
        "preference": {"quantization": preference.quantization, "dtype": preference.dtype},
        "transformer": choose_transformer(catalog, definition, preference),
        "variants": [{"label": v.label, **_file(catalog, v)} for v in
                     variants(transformer_entries(catalog, definition), target)],
        "modules": modules,
        "preload": [_file(catalog, v) for v in variants(resolved_entries(catalog, definition, "preload_URLs"),
                                                        target, folder)],
        "loras": _loras(catalog, definition, folder),
        "fps": arch.fps,
        "settings": settings,
        "settings_origin": origin,
    }
    if target == "v12":
        record.update(group=arch.group, output=arch.output + (" (+audio)" if arch.audio else ""),
                      handler=arch.handler, pipeline=arch.pipeline, lora_dir=f"loras/{folder}",
                      transformer2=choose_transformer(catalog, definition, preference, "URLs2") if urls2 else None,
                      variants2=[{"label": v.label, **_file(catalog, v)} for v in variants(urls2, target)],
                      text_encoder=_text_encoder(catalog, definition, arch),
                      vae=[_file(catalog, v) for v in variants(vae_entries(definition), target)],
                      configs=_config_ids(catalog, definition))
    return record


def _loras(catalog: Catalog, definition: Definition, folder: str | None) -> list[dict]:
    """The model's own LoRAs with where they live (v12: the family's LoRA folder) and their multipliers."""
    entries = resolved_entries(catalog, definition, "loras")
    try:
        multipliers = resolved_list(catalog, definition, "loras_multipliers") if catalog.target == "v12" else \
            definition.model.get("loras_multipliers") or []
    except WangpError:
        multipliers = []
    multipliers = multipliers if isinstance(multipliers, list) else []
    rows = []
    for index, entry in enumerate(entries):
        if folder is None:
            located = _file(catalog, variants([entry])[0])
        else:
            path = lora_path(entry, folder)
            located = {"url": entry.partition("|")[0] if is_remote(entry) else None, "path": path,
                       "present": catalog.home.exists(path)}
        rows.append({**located, "multiplier": multipliers[index] if index < len(multipliers) else 1.0})
    return rows


def text_encoder_entries(catalog: Catalog, definition: Definition, arch: Architecture) -> list[str]:
    """``text_encoder_URLs`` after references, else the base type's handler default (WanGP 12)."""
    return resolved_entries(catalog, definition, "text_encoder_URLs") or [
        e for e in arch.handler_keys.get("text_encoder_URLs") or [] if isinstance(e, str)]


def text_encoder_variant(catalog: Catalog, definition: Definition, arch: Architecture, entry: str) -> Variant:
    """Where WanGP 12 keeps a text encoder file: downloaded into ``<root>/<text_encoder_folder>/`` (the first
    checkpoint root already holding that folder, else ``ckpts/``), looked for there, then under the roots."""
    folder = definition.model.get("text_encoder_folder") or arch.handler_keys.get("text_encoder_folder")
    folder = folder.strip("/") if isinstance(folder, str) else ""
    if not is_remote(entry):
        return variants([entry], "v12")[0]
    url, sub = split_subfolder(entry)
    name = f"{sub.strip('/')}/{url_basename(url)}" if sub else url_basename(url)
    inside = [f"{folder}/{name}"] if folder else []
    candidates = tuple(f"{root}/{path}" if root != "." else path for path in inside + [name]
                       for root in CHECKPOINT_ROOTS)
    root = next((r for r in CHECKPOINT_ROOTS if folder and (catalog.home.root / r / folder).is_dir()),
                CHECKPOINT_ROOTS[0])  # WanGP's get_smart_download_root
    dest = f"{root}/{folder}/{name}" if folder else f"{root}/{name}"
    return Variant(entry, dest.removeprefix("./"), candidates)


def _text_encoder(catalog: Catalog, definition: Definition, arch) -> dict | None:
    """The text encoder file WanGP 12 loads, chosen with its default ``text_encoder_quantization`` (int8)."""
    entries = text_encoder_entries(catalog, definition, arch)
    if not entries:
        return None
    chosen = select_variant(entries, Preference("int8"), catalog.target)
    located = text_encoder_variant(catalog, definition, arch, chosen.source)
    folder = definition.model.get("text_encoder_folder") or arch.handler_keys.get("text_encoder_folder")
    return {**_file(catalog, located), "label": chosen.label, "folder": folder or None, "variants": len(entries)}


def vae_entries(definition: Definition) -> list[str]:
    """``VAE_URLs``: a list, or one string that is a URL (never a reference)."""
    value = definition.model.get("VAE_URLs")
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [v for v in values if isinstance(v, str)]


def _config_ids(catalog: Catalog, definition: Definition) -> list[str]:
    """The selectable load configurations (``configs``; a string reuses another model's)."""
    value = definition.model.get("configs")
    if isinstance(value, str):
        try:
            value, _ = catalog.resolve_value(definition.id, "configs", value)
        except DefinitionReferenceError:
            return []
    return [k for k in value if not k.startswith("_")] if isinstance(value, dict) else []


def list_models(catalog: Catalog, *, include_hidden: bool = False) -> list[dict]:
    """One row per definition: id, name, architecture, family, output, class, visibility, which variants are on
    disk, and what makes it unusable (``problem``, None for a usable one). WanGP 12 hides a definition whose
    architecture is not a base type: ``visible`` is False for it."""
    rows = []
    v12 = catalog.target == "v12"
    for model_id in sorted(catalog.ids(include_hidden=include_hidden)):
        definition = catalog.definitions[model_id]
        of = architecture_of(catalog, definition)
        try:
            files = [{"label": v.label, **_file(catalog, v)} for v in
                     variants(resolved_entries(catalog, definition, "URLs"), catalog.target)]
        except WangpError:
            files = []
        arch = of.arch
        rows.append({
            "id": model_id,
            "name": definition.name,
            "architecture": of.id,
            "family": of.family,
            "output": (arch.output + ("+audio" if arch.audio else "")) if v12 and arch else None,
            "class": (arch.task_class if v12 and arch else of.io_class),
            "problem": of.problem,
            "visible": definition.visible and (not v12 or arch is not None),
            "base": definition.is_base,
            "origin": definition.origin,
            "source": definition.source.display if definition.source else None,
            "variants": files,
        })
    return rows


def list_architectures(target: str) -> list[dict]:
    rows = []
    for arch_id in architecture_ids(target):
        arch = get_architecture(arch_id, target)
        row = {"id": arch.id, "name": arch.name, "family": arch.family, "class": arch.task_class or arch.io_class,
               "fps": arch.fps, "modules": list(arch.modules), "weights_from": arch.weights_from,
               "diffusers_repo": arch.diffusers_repo, "since": arch.since}
        if target == "v12":
            row.update(output=arch.output + ("+audio" if arch.audio else ""), group=arch.group, handler=arch.handler,
                       frames=[arch.frames[0], arch.frames[2]], lora_dir=arch.lora_dir, pipeline=arch.pipeline,
                       generate=arch.id in _generated())
        rows.append(row)
    return rows


def _generated() -> dict:
    """The base ids ``wangp generate`` runs (the engine's table; its module imports no torch)."""
    from wangp_cli.generate.engine import PIPELINES

    return PIPELINES
