"""LoRA multipliers in WanGP 12's syntax (``shared/utils/loras_mutipliers.py``): checking and evaluation.

A multiplier is a number, or a string: ``a;b;c`` gives one value per guidance phase (at most 3), ``x,y,z`` spreads
values evenly over the steps of a phase, ``a:b`` gives one value per branch of models that declare
``lora_multiplier_branches``. A settings string holds one such token per activated LoRA, separated by spaces or
new lines; lines starting with ``#`` are comments, and one ``|`` may separate the definition's LoRAs from the user's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_PHASES = 3

#: One phase of one LoRA: a constant, or values spread over the phase's steps.
PhaseValue = float | tuple[float, ...]


TWO_BARS = "more than one '|': WanGP allows one, between the definition's LoRAs and yours"


class MultiplierError(ValueError):
    """A multiplier WanGP refuses (its message says which and why)."""


@dataclass(frozen=True)
class LoraSchedule:
    """The multipliers of one LoRA: a value per phase; ``shared`` when one value covers every step."""

    phases: tuple[PhaseValue, PhaseValue, PhaseValue] = (1.0, 1.0, 1.0)
    shared: bool = False


@dataclass(frozen=True)
class Schedule:
    """Parsed multipliers: one :class:`LoraSchedule` per LoRA (per branch when the model has branches)."""

    loras: tuple[LoraSchedule, ...]
    branches: dict[str, tuple[LoraSchedule, ...]] = field(default_factory=dict)

    def of(self, lora: int, branch: str | None = None) -> LoraSchedule:
        return (self.branches[branch] if branch is not None else self.loras)[lora]


def tokens(multipliers: str | list) -> list:
    """WanGP's ``preparse_loras_multipliers``: a list is kept (strings stripped); a string loses its comment and
    empty lines, its ``|``, and is split on single spaces (two spaces in a row give an empty token)."""
    if isinstance(multipliers, list):
        return [item.strip(" \r\n") if isinstance(item, str) else item for item in multipliers]
    lines = multipliers.strip(" \r\n").replace("\r", "").split("\n")
    kept = [line.strip() for line in lines if line and not line.startswith("#")]
    return " ".join(kept).replace("|", " ").strip().split(" ")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _phase_value(text: str, lora: int, phase: int) -> PhaseValue:
    if "," in text:
        values = []
        for item in text.split(","):
            number = _number(item)
            if number is None:
                raise MultiplierError(f"multiplier {lora + 1}: step value '{item}' of phase {phase + 1} is not a "
                                      "number")
            values.append(number)
        return tuple(values)
    number = _number(text)
    if number is None:
        what = "is empty (two separators in a row: write one space, and no spaces around '|')" if text == "" else f"('{text}') is not a number"
        raise MultiplierError(f"multiplier {lora + 1} {what}")
    return number


def _phases(token: str, lora: int, nb_phases: int, model_switch_phase: int) -> tuple[list[str], bool]:
    """The phase texts of a token, padded to ``nb_phases`` as WanGP pads them, and whether they are shared."""
    phases = token.strip().split(";")
    if len(phases) <= 1:
        return phases, True
    if len(phases) > nb_phases:
        raise MultiplierError(f"multiplier {lora + 1} ('{token}') has {len(phases)} phases, at most {nb_phases} "
                              "allowed")
    if len(phases) < nb_phases:
        phases = phases[:1] + phases if model_switch_phase == 2 else phases + phases[-1:]
    return phases, False


def _token(token, lora: int, targets: tuple[str, ...], nb_phases: int, model_switch_phase: int,
           branches: tuple[str, ...]) -> dict[str, LoraSchedule]:
    """One token (a number or a multiplier string) for each branch target (``""`` without branches)."""
    if not isinstance(token, str):
        return {name: LoraSchedule((float(token),) * 3, True) for name in targets}
    phases, shared = _phases(token, lora, nb_phases, model_switch_phase)
    per_branch = {name: [1.0, 1.0, 1.0] for name in targets}
    for phase, text in enumerate(phases):
        if branches and ":" in text:
            values = text.split(":")
            if len(values) != len(branches):
                raise MultiplierError(f"multiplier {lora + 1} ('{text}') has {len(values)} branch values; "
                                      f"the model has {len(branches)} ({', '.join(branches)})")
        else:
            values = [text] * len(targets)
        for name, value in zip(targets, values):
            parsed = _phase_value(value, lora, phase)
            if shared:
                per_branch[name] = [parsed] * 3
            else:
                per_branch[name][phase] = parsed
    return {name: LoraSchedule(tuple(values), shared) for name, values in per_branch.items()}


def _branch_names(branches) -> tuple[str, ...]:
    return tuple(b.strip() for b in map(str, branches or ()) if b.strip())


def parse(multipliers: str | list, nb_loras: int, *, nb_phases: int = 2, model_switch_phase: int = 1,
          branches: tuple[str, ...] | list[str] = ()) -> Schedule:
    """WanGP's ``parse_loras_multipliers`` without the step expansion: raises :class:`MultiplierError`.

    Tokens beyond ``nb_loras`` are ignored; missing ones are 1.0 in every phase. With fewer phases than
    ``nb_phases`` the last value is repeated (the first when ``model_switch_phase`` is 2)."""
    if isinstance(multipliers, str) and multipliers.count("|") > 1:
        raise MultiplierError(TWO_BARS)
    branches = _branch_names(branches)
    targets = branches or ("",)
    table = {name: [LoraSchedule()] * nb_loras for name in targets}
    if isinstance(multipliers, list) or multipliers:
        for lora, token in enumerate(tokens(multipliers)[:nb_loras]):
            for name, schedule in _token(token, lora, targets, nb_phases, model_switch_phase, branches).items():
                table[name][lora] = schedule
    frozen = {name: tuple(schedules) for name, schedules in table.items()}
    return Schedule(frozen[targets[0]], frozen if branches else {})


def _spread(value: PhaseValue, steps: int) -> list[float]:
    """WanGP's ``expand_one``: ``steps`` values taken evenly from a step list (a constant repeated)."""
    values = value if isinstance(value, tuple) else (value,)
    spread, position, increment = [], 0.0, len(values) / steps if steps > 0 else 0.0
    for _ in range(max(steps, 0)):
        spread.append(values[int(position)])
        position += increment
    return spread


def per_step(schedule: LoraSchedule, num_steps: int, switch_step: int | None = None,
             switch_step2: int | None = None) -> list[float]:
    """The multiplier of one LoRA at each of ``num_steps`` steps (WanGP's ``expand_slist``).

    Phase 1 runs up to ``switch_step``, phase 2 up to ``switch_step2``, phase 3 to the end (None: the end)."""
    switch_step = num_steps if switch_step is None else switch_step
    switch_step2 = num_steps if switch_step2 is None else switch_step2
    first, second, third = schedule.phases
    if schedule.shared:
        return _spread(first, num_steps)
    return (_spread(first, switch_step) + _spread(second, switch_step2 - switch_step)
            + _spread(third, num_steps - switch_step2))


def multiplier_at(schedule: LoraSchedule, step: int, num_steps: int, switch_step: int | None = None,
                  switch_step2: int | None = None) -> float:
    """The multiplier of one LoRA at ``step`` (0-based) of ``num_steps``."""
    if not 0 <= step < num_steps:
        raise IndexError(f"step {step} is outside 0..{num_steps - 1}")
    return per_step(schedule, num_steps, switch_step, switch_step2)[step]


def switch_steps(timesteps: list[float], guidance_phases: int, switch_threshold: float,
                 switch_threshold2: float) -> tuple[int, int]:
    """WanGP's ``get_model_switch_steps``: the first step whose timestep is at or below each threshold."""
    total = len(timesteps)
    first = next((i for i, t in enumerate(timesteps) if guidance_phases >= 2 and t <= switch_threshold), total)
    second = next((i for i, t in enumerate(timesteps) if guidance_phases >= 3 and t <= switch_threshold2), total)
    return first, second


# -- checks (validation) ----------------------------------------------------------------------------------------

def check_model_item(item, index: int = 0, *, nb_phases: int = MAX_PHASES, branches=()) -> str | None:
    """The problem of one item of a model's ``loras_multipliers`` list (a number or a multiplier string), or None."""
    if isinstance(item, bool) or not isinstance(item, (int, float, str)):
        return f"multiplier {index + 1} must be a number or a string"
    branches = _branch_names(branches)
    try:
        _token(item, index, branches or ("",), nb_phases, 1, branches)
    except MultiplierError as exc:
        return str(exc)
    return None


def check_settings_string(text: str, *, nb_phases: int = MAX_PHASES, branches=()) -> list[str]:
    """The problems of a settings ``loras_multipliers`` string, in words (empty when WanGP accepts it)."""
    if text.count("|") > 1:
        return [TWO_BARS]
    found = tokens(text) if text.strip(" \r\n") else []
    problems = (check_model_item(token, index, nb_phases=nb_phases, branches=branches)
                for index, token in enumerate(found))
    return [problem for problem in problems if problem]


def count(text: str) -> int:
    """How many multipliers a settings string holds (one per activated LoRA)."""
    return len(tokens(text)) if text.strip(" \r\n") else 0
