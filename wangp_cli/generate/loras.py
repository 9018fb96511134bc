"""LoRAs in ``wangp generate``: where they come from, their multipliers, reading them, attaching them.

- **Sources** (:class:`LoraSpec`), in WanGP's order: the definition's own ``loras`` (always applied, with its
  ``loras_multipliers`` list), then the settings' ``activated_loras`` with the settings' ``loras_multipliers``
  string, then ``--lora FILE_OR_URL[:MULTIPLIER]`` (added to the settings, so that the metadata re-runs).
- **Multipliers** (:func:`plan`): WanGP's syntax (``core/multipliers.py``), checked before anything loads; the
  weight of every LoRA at every step (phases split at the switch steps, ``x,y,z`` spread over a phase's steps).
- **Files** (:func:`read_lora`, the family's converter: ``families/<family>/lora.py``): safetensors only (never a
  pickle), turned into :class:`LoraWeights`: a PEFT state dict (diffusers' own converters) plus full-weight deltas
  (``diff`` / ``diff_b``, which diffusers drops or maps only in part); :func:`check_fit` checks every key.
- **Attaching** (:func:`attach`): PEFT adapters through diffusers' ``load_lora_adapter`` (a runtime adapter: on
  16-bit ``nn.Linear`` and on optimum-quanto ``QLinear`` alike, which subclasses it), the deltas as weight
  parametrizations (16-bit) or forward hooks (quantized weights); :class:`AttachedLoras` changes the weights
  between steps and removes everything again.

torch, safetensors and diffusers are imported inside the functions (the request checks stay light).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from wangp_cli.core import multipliers as M
from wangp_cli.core.errors import UsageError, WangpError
from wangp_cli.core.variants import is_remote, lora_path, split_subfolder, url_basename

#: Where a LoRA comes from (as the metadata records them: the definition's, or the user's ``activated_loras``).
SOURCES = ("model", "settings", "flag")
#: File suffixes read as LoRAs: safetensors only (a ``.pt``/``.ckpt``/``.bin`` would be a pickle).
SUFFIX = ".safetensors"


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA to apply: as written, where its file is, where it comes from, and its multiplier token."""

    source: str  # one of SOURCES
    entry: str  # as the definition, settings or flag wrote it (a URL, a name in the LoRA folder, a path)
    path: str  # the file: home-relative (in the LoRA folder) or absolute
    url: str | None = None  # where a missing file is downloaded from
    multiplier: str | float = 1.0  # WanGP's token (``"1"``, ``"1;0"``, ``"0.5,1"``)

    @property
    def recorded(self) -> str:
        """The name WanGP records in ``activated_loras`` (``update_loras_url_cache``): a URL's file name (with
        its ``|sub`` folder), a name inside the LoRA folder as written, an absolute path as is."""
        if self.url is not None:
            url, sub = split_subfolder(self.entry)
            return f"{sub.strip('/')}/{url_basename(url)}" if sub else url_basename(url)
        return self.entry


def _located(entry: str, folder: str) -> tuple[str, str | None]:
    """(file, download URL) of a LoRA entry: a URL lands in ``<folder>/``, a relative name is inside it."""
    if is_remote(entry):
        return lora_path(entry, _folder_name(folder)), split_subfolder(entry)[0]
    if os.path.isabs(entry):
        return entry, None
    return f"{folder}/{entry}", None


def _folder_name(folder: str) -> str:
    """``loras/wan`` -> ``wan`` (what ``variants.lora_path`` takes)."""
    return folder.split("/", 1)[1] if folder.startswith("loras/") else folder


def _check_file_name(spec: LoraSpec, where: str) -> None:
    name = url_basename(spec.url) if spec.url else Path(spec.path).name
    if not name.lower().endswith(SUFFIX):
        raise UsageError(f"{where} '{spec.entry}': wangp reads LoRAs from .safetensors files only (a .pt, .ckpt or "
                         ".bin file is a pickle, never loaded)",
                         hint="convert the LoRA to safetensors, or use its .safetensors release")


def model_loras(entries: list[str], multipliers: list, folder: str) -> list[LoraSpec]:
    """The definition's own ``loras`` (WanGP's ``get_transformer_loras``: multipliers padded with 1.0)."""
    specs = []
    for index, entry in enumerate(entries):
        path, url = _located(entry, folder)
        token = multipliers[index] if index < len(multipliers) else 1.0
        specs.append(LoraSpec("model", entry, path, url, token))
    for spec in specs:
        _check_file_name(spec, "the definition's LoRA")
    return specs


def settings_loras(activated: list[str], multipliers: str | list, folder: str) -> list[LoraSpec]:
    """The settings' ``activated_loras`` (names in the LoRA folder, absolute paths or URLs) with their tokens of
    the settings' ``loras_multipliers``."""
    found = M.tokens(multipliers) if (isinstance(multipliers, list) or str(multipliers).strip(" \r\n")) else []
    specs = []
    for index, entry in enumerate(activated):
        if not isinstance(entry, str) or not entry.strip():
            raise UsageError(f"activated_loras[{index}] must be a LoRA file name", hint="a name in the LoRA folder, "
                             "a path or a URL of a .safetensors file")
        path, url = _located(entry.strip(), folder)
        specs.append(LoraSpec("settings", entry.strip(), path, url, found[index] if index < len(found) else 1.0))
    for spec in specs:
        _check_file_name(spec, "activated LoRA")
    return specs


def split_flag(text: str) -> tuple[str, str | None]:
    """``FILE_OR_URL[:MULTIPLIER]`` -> (file or URL, multiplier token or None). The part after the last ``:`` is
    a multiplier only when it reads as one (``https://...`` and ``C:\\...`` keep their colon)."""
    head, colon, tail = text.rpartition(":")
    if colon and head and tail and "/" not in tail and "\\" not in tail and M.check_model_item(tail) is None:
        return head, tail
    return text, None


def flag_loras(values: list[str], folder: str, cwd: Path | None = None) -> list[LoraSpec]:
    """``--lora`` values (and a manifest's ``loras``): a URL goes into the LoRA folder, a file is taken where it
    is (relative to ``cwd``), recorded by its path inside the LoRA folder when it is there, else absolute."""
    specs = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise UsageError("--lora needs FILE_OR_URL[:MULTIPLIER]", hint="for example --lora fast.safetensors:1")
        entry, token = split_flag(value.strip())
        if is_remote(entry):
            path, url = _located(entry, folder)
        else:
            path, url = str((Path(cwd or Path.cwd()) / entry).resolve()), None
            entry = path
        specs.append(LoraSpec("flag", entry, path, url, token if token is not None else "1"))
    for spec in specs:
        _check_file_name(spec, "--lora")
    return specs


def add_to_settings(settings: dict, flags: list[LoraSpec], folder_path: Path | None = None) -> None:
    """Append ``--lora`` LoRAs to the settings' ``activated_loras`` / ``loras_multipliers`` as WanGP would hold
    them (the settings' own LoRAs without a token get ``1`` first, so that the tokens stay aligned)."""
    if not flags:
        return
    activated = list(settings.get("activated_loras") or [])
    text = settings.get("loras_multipliers") or ""
    found = M.tokens(text) if (isinstance(text, list) or str(text).strip(" \r\n")) else []
    found = [str(token) for token in found[:len(activated)]] + ["1"] * max(len(activated) - len(found), 0)
    for spec in flags:
        name = spec.recorded
        if folder_path is not None and spec.url is None:
            try:
                name = Path(spec.path).resolve().relative_to(folder_path.resolve()).as_posix()
            except ValueError:
                pass
        activated.append(name)
        found.append(str(spec.multiplier))
    settings["activated_loras"] = activated
    settings["loras_multipliers"] = " ".join(found)


# -- multipliers ------------------------------------------------------------------------------------------------

def lora_phases(settings: dict, handler_keys: dict) -> tuple[int, int, int]:
    """(LoRA multiplier phases, guidance phases, model switch phase) as WanGP derives them: guidance phases
    clamped to the model's ``guidance_max_phases`` (its value when locked), ``lora_multiplier_phases`` over it,
    the switch phase 1 unless there are 3 phases."""
    asked = int(settings.get("guidance_phases") or 0)
    most = int(handler_keys.get("guidance_max_phases") or 0)
    guidance = most if handler_keys.get("lock_guidance_phases") else min(asked, most)
    guidance = max(guidance, 1)
    phases = int(handler_keys.get("lora_multiplier_phases") or guidance or 1)
    switch_phase = int(settings.get("model_switch_phase") or 1) if guidance == 3 else 1
    return phases, guidance, switch_phase


@dataclass(frozen=True)
class LoraPlan:
    """The LoRAs of one generation, the definition's first, each with its parsed multipliers."""

    specs: tuple[LoraSpec, ...]
    schedules: tuple[M.LoraSchedule, ...]
    guidance_phases: int = 1
    thresholds: tuple[float, float] = (0.0, 0.0)  # switch_threshold, switch_threshold2 (timesteps)

    def __bool__(self) -> bool:
        return bool(self.specs)

    def per_step(self, num_steps: int, switch_step: int | None = None,
                 switch_step2: int | None = None) -> list[list[float]]:
        """The weight of every LoRA (outer) at every step (inner)."""
        return [M.per_step(schedule, num_steps, switch_step, switch_step2) for schedule in self.schedules]

    def for_timesteps(self, timesteps: list[float], model_switch: int | None = None) -> list[list[float]]:
        """:meth:`per_step` with the switch steps where WanGP puts them (the first timestep at or below each
        threshold, for the guidance phases of the settings); ``model_switch``: the step where the pipeline
        really hands over to its second transformer, which then ends phase 1 (so that ``"1;0"`` is the
        high-noise transformer's, even where diffusers switches one step later than WanGP)."""
        first, second = M.switch_steps(timesteps, self.guidance_phases, *self.thresholds)
        if model_switch is not None and self.guidance_phases == 2:
            first = model_switch
        return self.per_step(len(timesteps), first, second)

    def is_constant(self, num_steps: int, switch_step: int | None = None, switch_step2: int | None = None) -> bool:
        return all(len(set(steps)) <= 1 for steps in self.per_step(num_steps, switch_step, switch_step2))


def plan(model: list[LoraSpec], user: list[LoraSpec], model_multipliers: list, user_multipliers: str | list, *,
         nb_phases: int = 1, guidance_phases: int = 1, model_switch_phase: int = 1, branches=(),
         thresholds: tuple[float, float] = (0.0, 0.0)) -> LoraPlan:
    """Parse both multiplier sets as WanGP does (``parse_loras_multipliers`` for the definition's list, then for
    the settings string); a multiplier WanGP refuses is a UsageError now, before anything loads."""
    schedules = []
    for specs, given, what in ((model, model_multipliers, "the definition's loras_multipliers"),
                               (user, user_multipliers, "loras_multipliers")):
        if not specs:
            continue
        try:
            parsed = M.parse(given if given is not None else "", len(specs), nb_phases=nb_phases,
                             model_switch_phase=model_switch_phase, branches=branches)
        except M.MultiplierError as exc:
            phases = (f" (the settings have {guidance_phases} guidance phase{'s' if guidance_phases > 1 else ''}: "
                      "'a;b' needs guidance_phases 2)") if nb_phases == 1 and ";" in str(given) else ""
            raise UsageError(f"{what}: {exc}{phases}", hint="see WanGP's multiplier syntax in docs/generate.md") \
                from None
        schedules.extend(parsed.loras)
    return LoraPlan(tuple(model) + tuple(user), tuple(schedules), guidance_phases, thresholds)


# -- files -------------------------------------------------------------------------------------------------------

def read_lora(path: str | Path) -> dict:
    """The tensors of a LoRA file: safetensors only, its header checked by wangp's strict parser first."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from wangp_cli.quantize.safetensors_io import read_header

    path = Path(path)
    if path.suffix.lower() != SUFFIX:
        raise WangpError(f"LoRA '{path}' is not a .safetensors file (never unpickled)", code="format",
                         hint="use the LoRA's .safetensors release")
    read_header(path)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise WangpError(f"cannot read LoRA '{path}': {exc}", code="format") from None


@dataclass
class LoraWeights:
    """A LoRA in diffusers' names: PEFT pairs (``transformer.<module>.lora_A/B.weight``, alpha folded in) and
    full deltas (``<module>.<parameter>`` -> tensor, added as ``m · delta``)."""

    name: str
    format: str  # "wan" (original layout), "kohya", "diffusers"
    adapter: dict = field(default_factory=dict)
    deltas: dict = field(default_factory=dict)


def _linear_shape(module) -> tuple[int, int] | None:
    import torch

    return (module.out_features, module.in_features) if isinstance(module, torch.nn.Linear) else None


def check_fit(lora: LoraWeights, transformer) -> None:
    """Every key names a module (a Linear for the pairs, a parameter for the deltas) whose shapes match; else a
    WangpError saying it is a LoRA for another model."""
    modules = dict(transformer.named_modules())
    params = dict(transformer.named_parameters())
    problems = []
    pairs: dict = {}
    for key, tensor in lora.adapter.items():
        bare = key.removeprefix("transformer.")
        module, _, part = bare.rpartition(".lora_")
        pairs.setdefault(module, {})[part] = tensor
    for module, parts in sorted(pairs.items()):
        shape = _linear_shape(modules.get(module)) if module in modules else None
        down, up = parts.get("A.weight"), parts.get("B.weight")
        if shape is None:
            problems.append(f"'{module}' is {'not a linear layer' if module in modules else 'not in the model'}")
        elif down is None or up is None or set(parts) - {"A.weight", "B.weight", "B.bias"}:
            problems.append(f"'{module}' has an incomplete LoRA pair ({', '.join(sorted(parts))})")
        elif down.shape[1] != shape[1] or up.shape[0] != shape[0] or up.shape[1] != down.shape[0]:
            problems.append(f"'{module}' is {shape[0]}x{shape[1]}, the LoRA is {up.shape[0]}x{up.shape[1]} · "
                            f"{down.shape[0]}x{down.shape[1]}")
    for key, tensor in sorted(lora.deltas.items()):
        target = params.get(key)
        if target is None and key.endswith(".weight") and hasattr(modules.get(key[:-7]), "weight"):
            target = modules[key[:-7]].weight  # a quantized weight (not a plain parameter)
        if target is None:
            problems.append(f"delta '{key}' is not in the model")
        elif tuple(target.shape) != tuple(tensor.shape):
            problems.append(f"delta '{key}' is {tuple(tensor.shape)}, the model's is {tuple(target.shape)}")
    if not pairs and not lora.deltas:
        problems.append("it holds no LoRA weights")
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise WangpError(f"LoRA '{lora.name}' does not fit the model: {shown}", code="lora",
                         hint="is it a LoRA for this architecture (e.g. a 14B LoRA on a 1.3B model)?")


# -- attaching ---------------------------------------------------------------------------------------------------

def _delta_modules():
    import torch

    class Delta(torch.nn.Module):
        """A weight parametrization: ``base + Σ m_i · delta_i`` (16-bit parameters)."""

        def __init__(self):
            super().__init__()
            self.weights: list[float] = []

        def add(self, delta) -> int:
            self.register_buffer(f"delta_{len(self.weights)}", delta, persistent=False)
            self.weights.append(1.0)
            return len(self.weights) - 1

        def forward(self, base):
            for index, weight in enumerate(self.weights):
                if weight:
                    base = base + weight * getattr(self, f"delta_{index}").to(base.dtype)
            return base

    return Delta


@dataclass
class _Hook:
    """A forward hook adding ``m · x · deltaᵀ`` to a quantized linear layer's output (its weight cannot be
    parametrized)."""

    delta: object
    handle: object = None
    weight: float = 1.0

    def __call__(self, module, args, output):
        import torch.nn.functional as F

        if not self.weight:
            return output
        x = args[0]
        return output + self.weight * F.linear(x.to(self.delta.dtype), self.delta.to(x.device)).to(output.dtype)


class AttachedLoras:
    """LoRAs attached to transformers: weights per LoRA changeable between steps, removable."""

    def __init__(self, transformers: list, names: list[str]):
        self.transformers = transformers
        self.names = names
        self.adapter_names: list[str] = []  # the LoRAs that have PEFT pairs (in ``names`` order)
        self._delta_slots: list[tuple[object, int, int]] = []  # (Delta or _Hook, slot, LoRA index)
        self._parametrized: list[tuple[object, str]] = []

    def set_weights(self, weights: list[float]) -> None:
        """One weight per LoRA (``names`` order)."""
        by_name = dict(zip(self.names, weights))
        if self.adapter_names:
            for transformer in self.transformers:
                transformer.set_adapters(self.adapter_names, [by_name[name] for name in self.adapter_names])
        for holder, slot, index in self._delta_slots:
            if isinstance(holder, _Hook):
                holder.weight = float(weights[index])
            else:
                holder.weights[slot] = float(weights[index])

    def remove(self) -> None:
        """Detach every adapter, hook and parametrization (the transformers are as loaded)."""
        from torch.nn.utils import parametrize

        for transformer in self.transformers:
            if self.adapter_names:
                transformer.delete_adapters(self.adapter_names)
        for holder, _, _ in self._delta_slots:
            if isinstance(holder, _Hook):
                holder.handle.remove()
        for module, attribute in self._parametrized:
            if parametrize.is_parametrized(module, attribute):
                parametrize.remove_parametrizations(module, attribute, leave_parametrized=False)
        self._delta_slots.clear()
        self._parametrized.clear()
        self.adapter_names = []


def _quantized_weight(module, attribute: str) -> bool:
    """An optimum-quanto module's weight (a QBytesTensor: no parametrization, a hook instead)."""
    return attribute == "weight" and getattr(module, "weight_qtype", None) is not None


def _attach_deltas(attached: AttachedLoras, transformer, lora: LoraWeights, index: int) -> None:
    from torch.nn.utils import parametrize

    Delta = _delta_modules()
    for key, tensor in lora.deltas.items():
        module_name, _, attribute = key.rpartition(".")
        module = transformer.get_submodule(module_name)
        if _quantized_weight(module, attribute):
            hook = _Hook(tensor.float())
            hook.handle = module.register_forward_hook(hook)
            attached._delta_slots.append((hook, 0, index))
            continue
        if not parametrize.is_parametrized(module, attribute):
            parametrize.register_parametrization(module, attribute, Delta(), unsafe=True)
            attached._parametrized.append((module, attribute))
        holder = module.parametrizations[attribute][0]
        slot = holder.add(tensor.to(getattr(module, attribute).dtype))
        attached._delta_slots.append((holder, slot, index))


def attach(transformers: list, loras: list[LoraWeights]) -> AttachedLoras:
    """Attach LoRAs (each checked with :func:`check_fit`) to every transformer given (Wan 2.2: both, as WanGP
    syncs its LoRAs into both); weights start at 1 — call :meth:`AttachedLoras.set_weights`."""
    names = [f"wangp_{index}" for index in range(len(loras))]
    attached = AttachedLoras(transformers, names)
    for transformer in transformers:
        for lora in loras:
            check_fit(lora, transformer)
    try:
        for transformer in transformers:
            for index, (lora, name) in enumerate(zip(loras, names)):
                if lora.adapter:
                    # low_cpu_mem_usage: PEFT builds the adapter layers empty and assigns the file's tensors (no
                    # random init, no copies: 0.7 s instead of 12 s for a rank-32 LoRA on a 1.3B model)
                    transformer.load_lora_adapter(dict(lora.adapter), adapter_name=name, prefix="transformer",
                                                  low_cpu_mem_usage=True)
                    if name not in attached.adapter_names:
                        attached.adapter_names.append(name)
                if lora.deltas:
                    _attach_deltas(attached, transformer, lora, index)
    except (ValueError, RuntimeError) as exc:
        attached.remove()
        raise WangpError(f"cannot attach the LoRAs: {str(exc)[:200]}", code="lora") from None
    attached.set_weights([1.0] * len(loras))
    return attached


def load(specs, resolve, transformers: list, converter) -> AttachedLoras:
    """Read each LoRA file (``resolve(spec) -> Path``), convert it with the family's ``converter``
    (``state, name -> LoraWeights``, e.g. ``families/wan/lora.py``'s ``to_diffusers``) and attach."""
    weights = []
    for spec in specs:
        path = resolve(spec)
        weights.append(converter(read_lora(path), name=Path(path).name))
    return attach(transformers, weights)


class StepWeights:
    """The pipeline's ``callback_on_step_end`` side: the weights of step 0 before the call, those of step i+1
    when step i ends."""

    def __init__(self, attached: AttachedLoras, per_step: list[list[float]]):
        self.attached = attached
        self.per_step = per_step  # per LoRA, per step
        self.steps = len(per_step[0]) if per_step else 0
        self._current: list[float] | None = None

    def at(self, step: int) -> list[float]:
        return [steps[min(step, self.steps - 1)] for steps in self.per_step]

    def apply(self, step: int) -> None:
        weights = self.at(step)
        if weights != self._current:
            self.attached.set_weights(weights)
            self._current = weights

    def step_end(self, step: int) -> None:
        """Called when step ``step`` (0-based) finished."""
        if step + 1 < self.steps:
            self.apply(step + 1)


def model_switch_step(pipe, timesteps: list[float]) -> int | None:
    """The step where a two-transformer pipeline hands over to ``transformer_2`` (diffusers: the first timestep
    below ``boundary_ratio · num_train_timesteps``; WanGP switches at or below ``switch_threshold``), None with
    one transformer."""
    ratio = getattr(pipe.config, "boundary_ratio", None)
    if getattr(pipe, "transformer_2", None) is None or ratio is None:
        return None
    boundary = ratio * pipe.scheduler.config.num_train_timesteps
    return next((step for step, t in enumerate(timesteps) if t < boundary), len(timesteps))


def scheduler_timesteps(scheduler, num_steps: int) -> list[float]:
    """The timesteps a scheduler will use for ``num_steps`` (a copy is set up, the pipeline's is untouched)."""
    import copy

    probe = copy.deepcopy(scheduler)
    probe.set_timesteps(num_steps)
    return [float(t) for t in probe.timesteps]


# -- a request's LoRAs -------------------------------------------------------------------------------------------

def for_request(catalog, definition, arch, family, settings: dict, flags: list[str], cwd: Path | None = None
                ) -> LoraPlan:
    """Every LoRA of a request (the definition's, the settings', ``--lora``), the flags added to ``settings``,
    every multiplier checked: a UsageError/WangpError now, before anything loads."""
    from wangp_cli.core.models import resolved_entries, resolved_list
    from wangp_cli.core.variants import local_path

    entries = resolved_entries(catalog, definition, "loras")
    activated = settings.get("activated_loras") or []
    if isinstance(activated, str):
        activated = [activated]
    if not (entries or activated or flags):
        return LoraPlan((), ())
    rules = family.loras()
    if rules is None:
        raise WangpError(f"'{definition.id}' asks for LoRAs ({', '.join((entries + list(activated) + flags)[:2])}"
                         f"{', ...' if len(entries) + len(activated) + len(flags) > 2 else ''}), which wangp does not "
                         f"apply to {family.title} models yet", code="unsupported",
                         hint="generate it in WanGP, or remove activated_loras / --lora")
    folder = rules.folder(catalog, definition, arch)
    if catalog.target == "v12":
        given = resolved_list(catalog, definition, "loras_multipliers")
    else:
        given = definition.model.get("loras_multipliers") or []
    model_multipliers = given if isinstance(given, list) else []
    model = model_loras(entries, model_multipliers, folder)
    if catalog.target != "v12":  # WanGP 7 downloads model LoRAs as checkpoints (``ckpts/<name>``)
        model = [LoraSpec(s.source, s.entry, local_path(s.entry), s.url, s.multiplier) for s in model]
    user = settings_loras(list(activated), settings.get("loras_multipliers") or "", folder)
    flagged = flag_loras(list(flags), folder, cwd)
    add_to_settings(settings, flagged, catalog.home.root / folder)
    phases, guidance, switch_phase = lora_phases(settings, getattr(arch, "handler_keys", None) or {})
    branches = (getattr(arch, "handler_keys", None) or {}).get("lora_multiplier_branches") or ()
    return plan(model, user + flagged, model_multipliers, settings.get("loras_multipliers") or "",
                nb_phases=phases, guidance_phases=guidance, model_switch_phase=switch_phase, branches=branches,
                thresholds=(float(settings.get("switch_threshold") or 0),
                            float(settings.get("switch_threshold2") or 0)))
