"""LoRA multipliers in WanGP 12's syntax: every form, every error, and the per-step evaluation."""

from __future__ import annotations

import pytest

from wangp_cli.core import multipliers as M


def steps(text_or_list, nb_loras, num_steps, *switches, lora=0, **options):
    schedule = M.parse(text_or_list, nb_loras, **options)
    return M.per_step(schedule.of(lora), num_steps, *switches)


def test_numbers_are_constant_over_every_step():
    assert steps([0.8], 1, 4) == [0.8] * 4
    assert steps("0.5 1.5", 2, 3, lora=1) == [1.5] * 3


def test_phase_lists_switch_at_the_switch_step():
    # defaults/i2v_2_2_svi2pro.json: the high-noise LoRA in phase 1 only, the low-noise one in phase 2 only
    assert steps(["1;0", "0;1"], 2, 6, 2) == [1, 1, 0, 0, 0, 0]
    assert steps(["1;0", "0;1"], 2, 6, 2, lora=1) == [0, 0, 1, 1, 1, 1]


def test_three_phases():
    # defaults/vace_14B_lightning_3p_2_2.json
    assert steps(["0;1;0"], 1, 6, 2, 4, nb_phases=3) == [0, 0, 1, 1, 0, 0]


def test_fewer_phases_repeat_the_last_or_the_first_with_model_switch_phase_2():
    assert M.parse(["1;0"], 1, nb_phases=3).loras[0].phases == (1.0, 0.0, 0.0)
    assert M.parse(["1;0"], 1, nb_phases=3, model_switch_phase=2).loras[0].phases == (1.0, 1.0, 0.0)


def test_step_lists_spread_evenly_over_the_steps_of_their_phase():
    assert steps("1,0.5", 1, 4) == [1, 1, 0.5, 0.5]
    assert steps("1,0.5,0", 1, 6) == [1, 1, 0.5, 0.5, 0, 0]
    # FINETUNES.md: "1,1.1;0" — the step list covers phase 1 only
    assert steps(["1,1.1;0"], 1, 8, 4) == [1, 1, 1.1, 1.1, 0, 0, 0, 0]


def test_branches():
    schedule = M.parse(["1:0.5"], 1, branches=["video", "audio"])
    assert M.per_step(schedule.of(0, "video"), 2) == [1, 1]
    assert M.per_step(schedule.of(0, "audio"), 2) == [0.5, 0.5]
    assert schedule.of(0) == schedule.of(0, "video")  # WanGP copies the first branch to the main one


def test_missing_multipliers_are_one_and_extra_ones_ignored():
    schedule = M.parse("0.5", 3)
    assert [M.per_step(s, 2) for s in schedule.loras] == [[0.5, 0.5], [1, 1], [1, 1]]
    assert len(M.parse("1 2 3", 1).loras) == 1


def test_settings_string_comments_new_lines_and_bar():
    assert M.tokens("1 0.5\n# a comment\n0.7|0.2\n") == ["1", "0.5", "0.7", "0.2"]
    assert M.count("") == 0 and M.count("1\n2") == 2
    assert M.check_settings_string("1 0.5\n# x\n1;0|0.3") == []


def test_multiplier_at():
    schedule = M.parse(["1;0"], 1).of(0)
    assert M.multiplier_at(schedule, 0, 4, 2) == 1 and M.multiplier_at(schedule, 3, 4, 2) == 0
    with pytest.raises(IndexError):
        M.multiplier_at(schedule, 4, 4)


def test_switch_steps_from_timesteps():
    timesteps = [999, 950, 900, 850, 500, 100]
    assert M.switch_steps(timesteps, 2, 875, 0) == (3, 6)
    assert M.switch_steps(timesteps, 3, 875, 600) == (3, 4)
    assert M.switch_steps(timesteps, 1, 875, 600) == (6, 6)


@pytest.mark.parametrize("text, problem", [
    ("1 x", "multiplier 2 ('x') is not a number"),
    ("1;0;0;1", "multiplier 1 ('1;0;0;1') has 4 phases, at most 3 allowed"),
    ("1,,2", "multiplier 1: step value '' of phase 1 is not a number"),
    ("1  2", "multiplier 2 is empty"),
    ("1|2|3", "more than one '|'"),
    ("1:2", "multiplier 1 ('1:2') is not a number"),  # no branches declared
])
def test_settings_string_errors(text, problem):
    found = M.check_settings_string(text)
    assert found and found[0].startswith(problem)


def test_model_items():
    assert M.check_model_item(1) is None and M.check_model_item("1;0") is None
    assert M.check_model_item("1,0.5;0") is None
    assert M.check_model_item(True) == "multiplier 1 must be a number or a string"
    assert M.check_model_item("1;0", nb_phases=1).startswith("multiplier 1 ('1;0') has 2 phases, at most 1")
    assert "branch values" in M.check_model_item("1:2:3", 2, branches=["a", "b"])
    assert M.check_model_item("1:2", branches=["a", "b"]) is None
    with pytest.raises(M.MultiplierError, match="at most 2"):
        M.parse(["1;0;1"], 1, nb_phases=2)
