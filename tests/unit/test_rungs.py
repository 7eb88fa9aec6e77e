"""Rung schedules and survivor counts (CASES 1, 2, 4)."""

from __future__ import annotations

import pytest

from seer_torch.errors import ConfigError
from seer_torch.policies.rungs import (
    num_extra_rungs,
    rung_schedule,
    rung_schedules,
    survivor_counts,
    survivor_counts_unchecked,
    survivors_at_rung,
)


@pytest.mark.parametrize(
    ("min_epochs", "max_epochs", "eta", "expected"),
    [
        (1, 243, 3, (1, 3, 9, 27, 81, 243)),  # CASE 1: float log(243, 3) = 4.999... loses a rung
        (1, 1000, 10, (1, 10, 100, 1000)),  # CASE 1: log10(1000) = 2.9999...
        (1, 8, 2, (1, 2, 4, 8)),  # CASE 1
        (4, 8, 2, (4, 8)),  # CASE 2
        (1, 81, 3, (1, 3, 9, 27, 81)),  # CASE 2: the survivor ends at 81, not 54
        (1, 10, 3, (1, 3, 10)),  # anchored at max_epochs, not (1, 3, 9)
        (5, 5, 3, (5,)),
        (1, 1, 2, (1,)),
        (3, 20, 2, (5, 10, 20)),
        (2, 100, 4, (6, 25, 100)),
    ],
)
def test_rung_schedule_examples(min_epochs, max_epochs, eta, expected):
    assert rung_schedule(min_epochs, max_epochs, eta) == expected


def test_rung_schedule_is_exact_for_huge_powers():
    # float log breaks on these; the integer loop does not
    assert len(rung_schedule(1, 3**30, 3)) == 31
    assert rung_schedule(1, 10**15, 10)[-1] == 10**15
    assert rung_schedule(1, 10**15, 10)[0] == 1
    assert len(rung_schedule(1, 10**15 - 1, 10)) == 15


def test_rung_schedule_properties_over_a_grid():
    for eta in (2, 3, 4, 5, 10):
        for min_epochs in range(1, 8):
            for max_epochs in range(min_epochs, 300):
                rungs = rung_schedule(min_epochs, max_epochs, eta)
                k = len(rungs) - 1
                assert all(isinstance(r, int) for r in rungs)
                assert rungs[-1] == max_epochs
                assert rungs[0] >= min_epochs
                assert all(a < b for a, b in zip(rungs, rungs[1:]))
                # K is the largest k with min * eta**k <= max
                assert min_epochs * eta**k <= max_epochs < min_epochs * eta ** (k + 1)
                assert num_extra_rungs(min_epochs, max_epochs, eta) == k


def test_rung_schedules_are_suffixes_fewest_rounds_first():
    assert rung_schedules(1, 8, 2) == ((8,), (4, 8), (2, 4, 8), (1, 2, 4, 8))
    assert rung_schedules(4, 8, 2) == ((8,), (4, 8))
    assert rung_schedules(7, 7, 3) == ((7,),)
    for schedule in rung_schedules(1, 243, 3):
        assert schedule[-1] == 243
        assert schedule[0] >= 1


@pytest.mark.parametrize(
    ("n", "rounds", "eta", "finalists", "expected"),
    [
        (7, 3, 3, 1, (7, 2, 1)),  # CASE 4: 7 configurations, eta 3: 2 survive, then 1
        (2, 2, 3, 1, (2, 1)),  # CASE 4: never 0
        (1, 4, 3, 1, (1, 1, 1, 1)),  # CASE 4: one configuration trains straight through
        (8, 4, 2, 1, (8, 4, 2, 1)),  # CASE 3
        (27, 4, 3, 1, (27, 9, 3, 1)),
        (9, 3, 3, 2, (9, 3, 2)),  # two finalists
        (1, 3, 3, 2, (1, 1, 1)),  # never more finalists than trials
        (100, 1, 3, 1, (100,)),
    ],
)
def test_survivor_counts_examples(n, rounds, eta, finalists, expected):
    assert survivor_counts(n, rounds, eta, finalists) == expected


def test_survivor_counts_never_zero_and_non_increasing():
    for eta in (2, 3, 4):
        for finalists in (1, 2, 3):
            for n in range(1, 60):
                counts = survivor_counts(n, 6, eta, finalists)
                assert counts[0] == n
                assert min(counts) >= 1
                assert counts[-1] == min(n, finalists)  # 6 rounds reduce n < 60 to the finalists
                assert all(b <= a for a, b in zip(counts, counts[1:]))


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((0, 8, 2), "min_epochs"),
        ((4, 3, 2), "max_epochs"),
        ((1, 8, 1), "eta"),
        ((1.0, 8, 2), "min_epochs"),
        ((True, 8, 2), "min_epochs"),
    ],
)
def test_rung_schedule_rejects_bad_input(args, field):
    with pytest.raises(ConfigError) as info:
        rung_schedule(*args)
    assert info.value.field == field
    assert isinstance(info.value, ValueError)


def test_survivor_counts_rejects_bad_input():
    with pytest.raises(ConfigError) as info:
        survivor_counts(0, 3, 3)
    assert info.value.field == "num_configurations"
    with pytest.raises(ConfigError) as info:
        survivor_counts(5, 0, 3)
    assert info.value.field == "num_rounds"
    with pytest.raises(ConfigError) as info:
        survivor_counts(5, 3, 3, num_finalists=0)
    assert info.value.field == "num_finalists"


@pytest.mark.parametrize(
    ("reached", "eta", "floor", "expected"),
    [
        (9, 3, 1, 3),  # the top 1/eta
        (10, 3, 1, 3),  # rounded down
        (2, 3, 1, 1),  # never below the floor ...
        (12, 3, 5, 5),
        (3, 3, 5, 3),  # ... nor above what reached the rung
        (2, 3, 0, 0),  # no floor (ASHA's promotions): fewer than eta reached, none
        (0, 2, 1, 0),
    ],
)
def test_survivors_at_rung_is_the_top_one_over_eta_between_floor_and_reached(reached, eta, floor, expected):
    assert survivors_at_rung(reached, eta, floor) == expected


def test_every_count_function_is_the_one_rule():
    """survivor_counts, its unchecked twin (the planner) and SEER's re-plan counts
    (seer_rounds.planned_counts, grown_counts) all step with survivors_at_rung."""
    from seer_torch.policies.seer_rounds import grown_counts

    for eta in (2, 3, 4):
        for finalists in (1, 2, 3):
            for n in range(1, 40):
                expected = [n]
                for _ in range(4):
                    expected.append(survivors_at_rung(expected[-1], eta, finalists))
                assert survivor_counts(n, 5, eta, finalists) == tuple(expected)
                assert survivor_counts_unchecked(n, 5, eta, finalists) == tuple(expected)
                # growing the first count to n with every later floor at `finalists` is the rule
                assert grown_counts((1,) + (finalists,) * 4, n, eta) == tuple(expected)
