"""A definition resolved for use: the chosen transformer file, modules, preloads, merged settings."""

from __future__ import annotations

from dataclasses import dataclass

from wangp_cli.core.definitions import Catalog, Definition, DefinitionReferenceError
from wangp_cli.core.errors import WangpError
from wangp_cli.core.registry import ARCHITECTURES, MODULES, Architecture, architecture_ids, family_of, get_architecture
from wangp_cli.core.safety import did_you_mean
from wangp_cli.core.settings import merged_settings
from wangp_cli.core.variants import (
    Preference, Variant, select_variant, transformer_dtype, variants, will_auto_quantize,
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
        return self.arch or ARCHITECTURES.get(self.id or "")

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
    if value in ARCHITECTURES:
        problem = f"has architecture '{value}', which needs WanGP July 2025 (target {target})"
    elif value in catalog.definitions and value != definition.id:
        problem = f"has architecture '{value}', which names a definition, not a base architecture"
    else:
        problem = f"has an unknown architecture '{value}'{did_you_mean(value, architecture_ids(target))}"
    return ArchitectureOf(value, None, problem, "E4")


def resolved_entries(catalog: Catalog, definition: Definition, prop: str) -> list[str]:
    """The string entries of a list property after following string references."""
    try:
        values, _ = catalog.resolve(definition.id, prop)
    except DefinitionReferenceError as exc:
        raise WangpError(f"'{definition.id}': {exc.message}", code="E6",
                         hint="run 'wangp validate' to see where") from None
    return [v for v in values if isinstance(v, str)]


def _file(catalog: Catalog, variant: Variant) -> dict:
    present = catalog.home.exists(variant.path)
    return {"url": variant.source if variant.is_remote else None, "path": variant.path, "present": present}


def transformer_entries(catalog: Catalog, definition: Definition) -> list[str]:
    urls = resolved_entries(catalog, definition, "URLs")
    if not urls:
        raise WangpError(f"'{definition.id}' lists no checkpoint files", code="E5",
                         hint=f"run: wangp validate {definition.source.display if definition.source else ''}".rstrip())
    return urls


def choose_transformer(catalog: Catalog, definition: Definition, preference: Preference) -> dict:
    """The file WanGP would load for ``preference``, with its dtype and whether it is on disk."""
    variant = select_variant(transformer_entries(catalog, definition), preference)
    modules = module_ids(catalog, definition)
    auto = will_auto_quantize(variant, preference, auto_quantize=definition.model.get("auto_quantize") is True,
                              has_modules=bool(modules))
    return {**_file(catalog, variant), "quantized": variant.quantized, "auto_quantize": auto,
            "dtype": transformer_dtype(variant, preference, auto_quantized=auto), "label": variant.label}


def module_ids(catalog: Catalog, definition: Definition) -> list[str]:
    return resolved_entries(catalog, definition, "modules")


def resolve_model(catalog: Catalog, model_id: str, preference: Preference) -> dict:
    """Everything ``wangp show`` prints: the JSON record of a resolved definition."""
    definition = catalog.get(model_id)
    of = architecture_of(catalog, definition)
    if of.problem:
        where = definition.source.display if definition.source else model_id
        raise WangpError(f"'{model_id}' {of.problem}", code=of.code, hint=f"run: wangp validate {where}")
    arch = of.arch
    modules = []
    for module_id in module_ids(catalog, definition):
        module = MODULES.get(module_id)
        if module is None:
            raise WangpError(f"'{model_id}' uses unknown module '{module_id}'", code="E8")
        chosen = select_variant(module.urls, preference)
        modules.append({"id": module_id, **_file(catalog, chosen), "quantized": chosen.quantized,
                        "dtype": transformer_dtype(chosen, preference)})
    settings, origin = merged_settings(definition, catalog)
    return {
        "id": definition.id,
        "name": definition.name,
        "architecture": arch.id,
        "family": arch.family,
        "class": arch.io_class,
        "description": definition.model.get("description", ""),
        "origin": definition.origin,
        "source": definition.source.display if definition.source else None,
        "visible": definition.visible,
        "preference": {"quantization": preference.quantization, "dtype": preference.dtype},
        "transformer": choose_transformer(catalog, definition, preference),
        "variants": [{"label": v.label, **_file(catalog, v)} for v in
                     variants(transformer_entries(catalog, definition))],
        "modules": modules,
        "preload": [_file(catalog, v) for v in variants(resolved_entries(catalog, definition, "preload_URLs"))],
        "loras": [_file(catalog, v) for v in variants(resolved_entries(catalog, definition, "loras"))],
        "fps": arch.fps,
        "settings": settings,
        "settings_origin": origin,
    }


def list_models(catalog: Catalog, *, include_hidden: bool = False) -> list[dict]:
    """One row per definition: id, name, architecture, family, class, which variants are in ckpts/, and what
    makes it unusable (``problem``, None for a usable one)."""
    rows = []
    for model_id in sorted(catalog.ids(include_hidden=include_hidden)):
        definition = catalog.definitions[model_id]
        of = architecture_of(catalog, definition)
        try:
            files = [{"label": v.label, **_file(catalog, v)} for v in
                     variants(resolved_entries(catalog, definition, "URLs"))]
        except WangpError:
            files = []
        rows.append({
            "id": model_id,
            "name": definition.name,
            "architecture": of.id,
            "family": of.family,
            "class": of.io_class,
            "problem": of.problem,
            "visible": definition.visible,
            "origin": definition.origin,
            "source": definition.source.display if definition.source else None,
            "variants": files,
        })
    return rows


def list_architectures(target: str) -> list[dict]:
    rows = []
    for arch_id in architecture_ids(target):
        arch = get_architecture(arch_id, target)
        rows.append({"id": arch.id, "name": arch.name, "family": arch.family, "class": arch.io_class,
                     "fps": arch.fps, "modules": list(arch.modules), "weights_from": arch.weights_from,
                     "diffusers_repo": arch.diffusers_repo, "since": arch.since})
    return rows
