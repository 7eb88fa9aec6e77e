"""The SEER planner: cost model, objective, best effort and re-planning (CASES 2, 4, 5, 6)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
import subprocess
import sys
import time

import pytest

from seer_torch.errors import ConfigError
from seer_torch.policies.rungs import rung_schedules, survivor_counts
from seer_torch.policies.seer import ETA_CHOICES, FINALIST_CHOICES, Plan, PlannerInputs, plan, replan
from seer_torch.scaling.model import ScalingModel

RESNET18 = ScalingModel(world_sizes=(1, 2, 4, 8), speedup=(1.0, 1.85, 3.43, 5.40))
S18 = ScalingModel(world_sizes=(1, 2), speedup=(1.0, 1.8))

BASE = dict(
    max_epochs=27,
    min_epochs=1,
    eta=3,
    max_configurations=64,
    num_slots=8,
    world_size_ladder=(1, 2, 4, 8),
    epoch_time_s=10.0,
    scaling=RESNET18,
    startup_s=5.0,
    relaunch_s=5.0,
    resize_s=5.0,
    time_budget_s=math.inf,
    money_budget_usd=math.inf,
    price_usd_per_slot_hour=3.6,  # 0.001 USD per slot-second
    safety_fraction=0.9,
)


def make(**overrides) -> PlannerInputs:
    return PlannerInputs(**{**BASE, **overrides})


# -- an independent implementation of the cost model, for checking --------------------------------


def reference_billed(inputs, seconds):
    """Seconds billed for one slot held ``seconds``: rounded up to the granularity (1e-9 s of
    float slack, as documented), at least the minimum."""
    g, minimum = inputs.billing_granularity_s, inputs.billing_minimum_s
    if g > 0:
        seconds = math.ceil(seconds / g - 1e-9) * g
    return max(minimum, seconds)


def reference_overheads(inputs, k, w, prev_w, previous_n, first_overhead):
    """(first wave, later waves) overhead of round ``k`` straight from the documented rules:
    a first round starts cold, its later waves at W=1 on warm workers (where there are any);
    another W resizes; the same W continues a kept-alive job when the round before ran in one
    wave, else pays a warm worker (W=1) or a relaunch; jobs that exit at every rung relaunch."""
    alive = inputs.continue_s is not None
    warm = inputs.warm_start_s
    if k == 0 and first_overhead is not None:
        return first_overhead, first_overhead
    if k == 0:
        later = warm if (w == 1 and warm is not None) else inputs.startup_s
        return inputs.startup_s, later
    if w != prev_w:
        return inputs.resize_s, inputs.resize_s
    if not alive:
        return inputs.relaunch_s, inputs.relaunch_s
    if previous_n <= inputs.num_slots // w:
        return inputs.continue_s, inputs.continue_s
    other = warm if (w == 1 and warm is not None) else inputs.relaunch_s
    return other, other


def reference_cost(inputs, rungs, world_sizes, counts, start_epoch=0, first_overhead=None, prev_w=None):
    """(per-round (waves, duration, cost), total time, total cost) straight from the formulas."""
    rows = []
    previous_epoch = start_epoch
    for k, (rung, w, n) in enumerate(zip(rungs, world_sizes, counts)):
        first, later = reference_overheads(inputs, k, w, prev_w, counts[k - 1] if k else 0, first_overhead)
        train = (rung - previous_epoch) * inputs.epoch_time_s / inputs.scaling.speedup_at(w)
        lanes = inputs.num_slots // w
        waves = math.ceil(n / lanes)
        in_first = min(n, lanes)
        duration = (first + train) + (waves - 1) * (later + train)
        billed = in_first * reference_billed(inputs, first + train) + (n - in_first) * reference_billed(
            inputs, later + train)
        usd = inputs.price_usd_per_slot_hour / 3600 * w * billed
        rows.append((waves, duration, usd))
        previous_epoch, prev_w = rung, w
    return rows, sum(r[1] for r in rows), sum(r[2] for r in rows)


def usable_sizes(inputs):
    cap = min(inputs.num_slots, inputs.max_world_size or inputs.num_slots)
    return [w for w in sorted(set(inputs.world_size_ladder)) if w <= cap]


def brute_force(inputs, target, with_hedge=False):
    """Every (eta, schedule, non-decreasing W, finalists, n_1): the max n_1 within budget, then
    (when the finalists are searched) the most trials in the last round capped at 3, and the
    least cost: ``(n_1, cost)``, or ``(n_1, last-round trials capped, cost)`` with
    ``with_hedge``."""
    usable = usable_sizes(inputs)
    etas = (inputs.eta,) if inputs.eta is not None else (2, 3, 4)
    finalists = (inputs.num_finalists,) if inputs.num_finalists is not None else (1, 2, 3)
    cap = max(finalists)
    first = inputs.min_epochs if inputs.min_epochs is not None else 1
    best = None
    for eta in etas:
        for rungs in rung_schedules(min(first, target), target, eta):
            for ws in itertools.product(usable, repeat=len(rungs)):
                if any(b < a for a, b in zip(ws, ws[1:])):
                    continue
                for f in finalists:
                    for n in range(1, inputs.max_configurations + 1):
                        counts = survivor_counts(n, len(rungs), eta, f)
                        _, t, c = reference_cost(inputs, rungs, ws, counts)
                        if t <= inputs.time_limit_s * (1 + 1e-9) and c <= inputs.money_limit_usd * (1 + 1e-9):
                            key = (-n, -min(counts[-1], cap), c)
                            if best is None or key < best:
                                best = key
    if best is None:
        return None
    return (-best[0], -best[1], best[2]) if with_hedge else (-best[0], best[2])


def resolve_finalists(inputs: PlannerInputs) -> PlannerInputs:
    """The documented rule for ``num_finalists=None``, by brute force: two finalists when the
    plan with two explores at least ``min_configurations`` configurations, else one. Returns
    the inputs with that number fixed."""
    if inputs.num_finalists is not None:
        return inputs
    two = dataclasses.replace(inputs, num_finalists=2)
    minimum = inputs.effective_min_configurations
    full = brute_force(two, inputs.max_epochs)
    if full is not None and full[0] >= minimum:
        return two
    kind, *rest = expected_unfeasible_plan(two)
    if kind == "full":
        n = rest[0]
    else:
        target = rest[-1]
        n = brute_force(two, target)[0] if target else 0
    return two if n >= minimum else dataclasses.replace(inputs, num_finalists=1)


def check_plan_invariants(inputs: PlannerInputs, p: Plan) -> None:
    usable = set(usable_sizes(inputs))
    assert p.binding in ("time", "money", "max_configurations", "none")
    assert p.message
    json.dumps(p.to_dict())
    if not p.rounds:
        assert not p.feasible
        assert p.message.startswith("NO PLAN")
        return
    rungs, ws, counts = p.rungs, p.world_sizes, p.survivors
    assert all(isinstance(r, int) for r in rungs)
    assert all(a < b for a, b in zip(rungs, rungs[1:]))
    assert p.rounds[0].start_epoch == 0
    assert all(r.start_epoch == prev.rung_epoch for prev, r in zip(p.rounds, p.rounds[1:]))
    assert [r.index for r in p.rounds] == list(range(1, len(p.rounds) + 1))
    assert all(b >= a for a, b in zip(ws, ws[1:]))
    assert set(ws) <= usable
    assert p.eta == inputs.eta if inputs.eta is not None else p.eta in ETA_CHOICES
    if inputs.num_finalists is not None:
        assert p.num_finalists == inputs.num_finalists
    else:
        assert p.num_finalists in FINALIST_CHOICES
    assert counts == survivor_counts(p.num_configurations, len(rungs), p.eta, p.num_finalists)
    assert min(counts) >= 1
    assert 1 <= p.num_configurations <= inputs.max_configurations
    rows, total_t, total_c = reference_cost(inputs, rungs, ws, counts)
    for r, (waves, duration, cost) in zip(p.rounds, rows):
        assert r.waves == waves
        assert r.predicted_duration_s == pytest.approx(duration, rel=1e-9)
        assert r.predicted_cost_usd == pytest.approx(cost, rel=1e-9, abs=1e-12)
    assert p.predicted_time_s == pytest.approx(total_t, rel=1e-9)
    assert p.predicted_cost_usd == pytest.approx(total_c, rel=1e-9, abs=1e-12)
    # never plan past the budgets (CASE 6)
    assert p.predicted_time_s <= inputs.time_limit_s * (1 + 1e-9)
    assert p.predicted_cost_usd <= inputs.money_limit_usd * (1 + 1e-9) + 1e-12
    if p.feasible:
        assert rungs[-1] == inputs.max_epochs == p.target_epochs
        assert rungs[0] >= (inputs.min_epochs or 1)
    else:
        assert p.target_epochs == rungs[-1] < inputs.max_epochs
        assert p.message.startswith(("BEST EFFORT", "EXPLORATION FIRST"))
        if p.message.startswith("EXPLORATION FIRST"):
            if "so it explores fewer" in p.message:  # a smaller floor: min_configurations did not fit
                assert 2 <= p.num_configurations
            else:
                assert p.num_configurations >= inputs.effective_min_configurations


# -- cases ----------------------------------------------------------------------------------------


def test_case5_one_round_of_four_parallel_trials():
    inputs = make(
        max_epochs=1, max_configurations=4, num_slots=4, world_size_ladder=(1, 2, 4), epoch_time_s=10.0,
        startup_s=5.0, time_budget_s=100.0, money_budget_usd=10.0,
    )
    p = plan(inputs)
    assert p.feasible
    assert p.survivors == (4,)
    assert p.world_sizes == (1,)
    assert p.rounds[0].waves == 1
    assert p.predicted_time_s == pytest.approx(15.0)  # the maximum over parallel jobs, with restart
    assert p.predicted_cost_usd == pytest.approx(4 * 15 * 0.001)  # 4 x 15 slot-seconds
    assert p.binding == "max_configurations"


def test_case2_rungs_4_8_survivor_ends_at_exactly_8():
    p = plan(make(min_epochs=4, max_epochs=8, eta=2, max_configurations=2))
    assert p.feasible
    assert p.rungs == (4, 8)
    assert p.survivors == (2, 1)
    assert p.rounds[-1].start_epoch == 4 and p.rounds[-1].rung_epoch == 8
    assert sum(r.rung_epoch - r.start_epoch for r in p.rounds) == 8


def test_case2_rungs_1_81_3_final_rung_81():
    p = plan(make(max_epochs=81, max_configurations=81, num_slots=81, world_size_ladder=(1,)))
    assert p.feasible
    assert p.rungs == (1, 3, 9, 27, 81)
    assert p.survivors == (81, 27, 9, 3, 1)
    assert p.target_epochs == 81


def test_case4_survivor_counts_in_a_plan():
    # 7 configurations, eta 3, cheapest schedule: 7 -> 2 -> 1 -> 1 ...
    p = plan(make(max_epochs=9, max_configurations=7, world_size_ladder=(1,), relaunch_s=0.0))
    assert p.survivors == (7, 2, 1)
    p = plan(make(max_epochs=9, max_configurations=1, world_size_ladder=(1,)))
    assert p.survivors == (1,)  # one configuration trains straight to max_epochs
    assert p.rungs == (9,)


def test_case6_plan_never_predicts_past_the_time_budget():
    inputs = make(time_budget_s=60.0, max_epochs=3, num_slots=2, world_size_ladder=(1, 2))
    p = plan(inputs)
    assert p.feasible
    assert p.predicted_time_s <= 54.0
    # one more configuration would break the deadline
    assert p.binding == "time"


def test_case6_replan_does_not_start_a_round_that_overshoots():
    # 20 s left of a 60 s deadline; the next round takes 1 + 4 x 11 = 45 s
    inputs = make(time_budget_s=20.0, epoch_time_s=11.0, relaunch_s=1.0, world_size_ladder=(1,))
    p = replan(inputs, rungs=(5,), survivors=(1,), current_epoch=1, current_world_size=1)
    assert not p.feasible
    assert p.rounds == ()
    assert p.binding == "time"
    assert p.message.startswith("NO PLAN")
    # exactly at the limit it fits: 45 <= 0.9 * 50
    fits = replan(make(time_budget_s=50.0, epoch_time_s=11.0, relaunch_s=1.0, world_size_ladder=(1,)),
                  rungs=(5,), survivors=(1,), current_epoch=1, current_world_size=1)
    assert fits.feasible
    assert fits.predicted_time_s == pytest.approx(45.0)


def test_case6_replan_money_left_too_small():
    # 0.20 USD left, the next round costs 45 s x 24 USD/h = 0.30 USD
    inputs = make(money_budget_usd=0.20, epoch_time_s=11.0, relaunch_s=1.0, world_size_ladder=(1,),
                  price_usd_per_slot_hour=24.0)
    p = replan(inputs, rungs=(5,), survivors=(1,), current_epoch=1, current_world_size=1)
    assert p.rounds == ()
    assert not p.feasible
    assert p.binding == "money"


# -- the objective -------------------------------------------------------------------------------


def _deadline_inputs(ladder, time_budget_s, money_budget_usd=1e6):
    return make(
        max_configurations=200, num_slots=4, world_size_ladder=ladder, scaling=S18, startup_s=1.0,
        relaunch_s=1.0, resize_s=1.0, time_budget_s=time_budget_s, money_budget_usd=money_budget_usd,
        safety_fraction=1.0,
    )


def test_tight_deadline_widens_the_last_round_for_more_configurations():
    narrow = plan(_deadline_inputs((1,), 300.0))
    wide = plan(_deadline_inputs((1, 2), 300.0))
    assert narrow.feasible and wide.feasible
    assert narrow.num_configurations == 12
    assert wide.num_configurations == 26  # the W=2 last round frees time for exploration
    assert wide.world_sizes[-1] == 2
    assert wide.world_sizes[0] == 1  # exploration stays narrow and cheap
    assert wide.binding == "time"


def test_loose_deadline_stays_at_w1_because_it_is_cheaper():
    p = plan(_deadline_inputs((1, 2), 800.0))
    assert p.num_configurations == 96
    assert p.world_sizes == (1, 1, 1, 1)


def test_tight_money_keeps_w1():
    # same deadline as above, but money only for W=1: widening costs W/s(W) = 1.11x
    narrow = plan(_deadline_inputs((1,), 300.0, money_budget_usd=1e6))
    money = narrow.predicted_cost_usd
    p = plan(_deadline_inputs((1, 2), 1e6, money_budget_usd=money))
    assert set(p.world_sizes) == {1}
    assert p.binding == "money"


def test_plan_matches_brute_force_on_random_small_inputs():
    rng = random.Random(2021)
    checked_feasible = checked_best_effort = 0
    for _ in range(150):
        inputs = _random_inputs(rng, small=True)
        p = plan(inputs)
        check_plan_invariants(inputs, p)
        inputs = resolve_finalists(inputs)
        assert p.num_finalists == inputs.num_finalists
        expected = brute_force(inputs, inputs.max_epochs, with_hedge=True)
        if expected is not None:
            assert p.feasible
            assert p.num_configurations == expected[0]
            assert min(p.survivors[-1], max(inputs.finalist_choices)) == expected[1]
            assert p.predicted_cost_usd == pytest.approx(expected[2], rel=1e-9, abs=1e-9)
            checked_feasible += 1
        else:
            assert not p.feasible
            reachable = [t for t in range(1, inputs.max_epochs) if brute_force(inputs, t) is not None]
            if reachable:
                assert p.target_epochs == max(reachable)
                checked_best_effort += 1
            else:
                assert p.rounds == ()
    assert checked_feasible > 20 and checked_best_effort > 5


def _kept_alive(rng: random.Random, inputs: PlannerInputs) -> PlannerInputs:
    """``inputs`` on a backend that keeps jobs alive: continuations cost about nothing, and
    (mostly) warm workers start W=1 jobs for a fraction of a cold start."""
    warm = rng.choice((None, rng.uniform(0, 2), rng.uniform(0, 2)))
    return dataclasses.replace(inputs, continue_s=rng.uniform(0, 0.5), warm_start_s=warm)


def test_kept_alive_plans_match_brute_force_on_random_small_inputs():
    rng = random.Random(16)
    checked = 0
    for _ in range(120):
        inputs = _kept_alive(rng, _random_inputs(rng, small=True))
        p = plan(inputs)
        check_plan_invariants(inputs, p)
        inputs = resolve_finalists(inputs)
        expected = brute_force(inputs, inputs.max_epochs, with_hedge=True)
        if expected is not None:
            assert p.feasible and p.num_configurations == expected[0]
            assert p.predicted_cost_usd == pytest.approx(expected[2], rel=1e-9, abs=1e-9)
            checked += 1
    assert checked > 20


def test_kept_alive_invariants_on_random_inputs():
    rng = random.Random(17)
    for _ in range(200):
        inputs = _kept_alive(rng, _random_inputs(rng, small=False, min_configurations=rng.choice((1, None))))
        check_plan_invariants(inputs, plan(inputs))


def test_invariants_on_random_inputs():
    rng = random.Random(7)
    for _ in range(400):
        inputs = _random_inputs(rng, small=False, min_configurations=rng.choice((1, None)))
        check_plan_invariants(inputs, plan(inputs))


def expected_unfeasible_plan(inputs: PlannerInputs):
    """The documented fallbacks when fewer than ``min_configurations`` fit at ``max_epochs``, by
    brute force: ``("explore", floor, target)``, ``("full", n)`` or ``("best effort", target)``.

    Floors ``m = min_configurations, m // eta, ...`` (down to 2): the fully trained plan when
    it explores at least ``m``; else exploration first with ``m`` at the largest target that
    allows (for ``m = min_configurations`` only when that target is at least
    ``max_epochs // eta``); then the fully trained plan with fewer; then best effort."""
    eta = inputs.eta or 3
    full = brute_force(inputs, inputs.max_epochs)
    floor = minimum = inputs.effective_min_configurations
    while True:
        if full is not None and full[0] >= floor:
            return ("full", full[0])
        targets = [t for t in range(1, inputs.max_epochs)
                   if (b := brute_force(inputs, t)) is not None and b[0] >= floor]
        least = max(1, inputs.max_epochs // eta) if floor == minimum else 1
        if targets and max(targets) >= least:
            return ("explore", floor, max(targets))
        if floor // eta < 2:
            break
        floor //= eta
    if full is not None:
        return ("full", full[0])
    reachable = [t for t in range(1, inputs.max_epochs) if brute_force(inputs, t) is not None]
    return ("best effort", max(reachable) if reachable else 0)


def test_exploration_first_matches_brute_force_on_random_small_inputs():
    # With min_configurations = eta**2: when fewer fit at max_epochs, the plan explores at
    # least that many and trains the best to the largest target that allows; or explores
    # fewer (min_configurations // eta...) when that target would be too short or none fits.
    rng = random.Random(11)
    kinds: dict[str, int] = {}
    for _ in range(150):
        inputs = _random_inputs(rng, small=True, min_configurations=None)
        minimum = inputs.effective_min_configurations
        p = plan(inputs)
        check_plan_invariants(inputs, p)
        inputs = resolve_finalists(inputs)
        assert p.num_finalists == inputs.num_finalists
        full = brute_force(inputs, inputs.max_epochs)
        if full is not None and full[0] >= minimum:
            assert p.feasible and p.num_configurations == full[0]
            continue
        expected = expected_unfeasible_plan(inputs)
        kinds[expected[0]] = kinds.get(expected[0], 0) + 1
        if expected[0] == "explore":
            _, floor, target = expected
            assert not p.feasible and p.message.startswith("EXPLORATION FIRST")
            assert p.target_epochs == target and p.num_configurations >= floor
        elif expected[0] == "full":
            assert p.feasible and p.num_configurations == expected[1] < minimum
        else:
            assert not p.feasible and p.target_epochs == expected[1]
    assert kinds.get("explore", 0) > 5 and kinds.get("full", 0) + kinds.get("best effort", 0) > 3


def _random_inputs(
    rng: random.Random, small: bool, min_configurations: int | None = 1, open_choices: bool = True
) -> PlannerInputs:
    """Random planner inputs; with ``open_choices`` some leave eta, min_epochs or the number of
    finalists to the planner, cap the world size, or bill by the minute or the hour."""
    max_epochs = rng.randint(1, 27 if small else 120)
    ladder = tuple(sorted(rng.sample((1, 2, 4, 8, 16), rng.randint(1, 3 if small else 5))))
    w_max = rng.choice((2, 4, 8, 16))
    speeds = [1.0] + [rng.uniform(1.0, w) for w in (2, 4, 8, 16) if w <= w_max]
    sizes = tuple(w for w in (1, 2, 4, 8, 16) if w <= w_max)
    scaling = ScalingModel(world_sizes=sizes, speedup=tuple(speeds))
    tau = rng.uniform(0.5, 60.0)
    fields = dict(
        max_epochs=max_epochs,
        min_epochs=rng.randint(1, max_epochs),
        eta=rng.randint(2, 4),
        max_configurations=rng.randint(1, 12 if small else 300),
        num_slots=rng.randint(max(1, min(ladder)), 16),
        world_size_ladder=ladder,
        epoch_time_s=tau,
        scaling=scaling,
        startup_s=rng.uniform(0, 10),
        relaunch_s=rng.uniform(0, 10),
        resize_s=rng.uniform(0, 15),
        time_budget_s=tau * max_epochs * rng.uniform(0.05, 6.0),
        money_budget_usd=rng.choice((math.inf, tau * max_epochs * rng.uniform(0.02, 10.0) / 1000)),
        price_usd_per_slot_hour=rng.choice((0.0, 3.6, 3.06)),
        safety_fraction=rng.uniform(0.5, 1.0),
        num_finalists=rng.choice((1, 1, 2)),
        min_configurations=min_configurations,
    )
    if open_choices:
        fields.update(_open_choices(rng, small, ladder[0]))
    return PlannerInputs(**fields)


def _open_choices(rng: random.Random, small: bool, smallest_size: int) -> dict:
    out: dict = {}
    if rng.random() < (0.15 if small else 0.3):
        out["eta"] = None
    if rng.random() < 0.2:
        out["min_epochs"] = None
    if rng.random() < (0.15 if small else 0.3):
        out["num_finalists"] = None
    if rng.random() < 0.2:
        out["max_world_size"] = rng.choice([w for w in (1, 2, 4, 8, 16) if w >= smallest_size])
    out["billing_granularity_s"] = rng.choice((0.0, 0.0, 1.0, 60.0, 3600.0))
    out["billing_minimum_s"] = rng.choice((0.0, 0.0, 60.0))
    return out


# -- infeasible budgets ------------------------------------------------------------------------


def test_infeasible_deadline_returns_best_effort_and_does_not_raise():
    # one slot, W=1: 5 + 10 T <= 0.9 x 100 reaches T = 8 of 27 epochs
    inputs = make(num_slots=1, world_size_ladder=(1,), time_budget_s=100.0, min_configurations=1)
    p = plan(inputs)
    assert not p.feasible
    assert p.target_epochs == 8
    assert p.rungs[-1] == 8
    assert p.num_configurations == 1
    assert p.predicted_time_s == pytest.approx(85.0)
    assert p.binding == "time"
    assert p.message.startswith("BEST EFFORT")
    assert "too short for even one fully trained configuration" in p.message
    assert "8 of 27 epochs" in p.message


def test_infeasible_money_names_money():
    # 0.001 USD/s: 5 + 10 T seconds cost <= 0.9 x 0.1 USD -> T = 8
    p = plan(make(num_slots=1, world_size_ladder=(1,), money_budget_usd=0.1, min_configurations=1))
    assert not p.feasible
    assert p.target_epochs == 8
    assert p.binding == "money"
    assert "money budget" in p.message


def test_exploration_first_with_a_smaller_floor_before_one_configuration():
    # The budget of the test above, with min_configurations = 9: nine do not fit even for one
    # epoch (9 x 15 s > 90 s), so the plan explores 9 // eta = 3 and trains the best as far
    # as that allows, rather than train a single configuration to epoch 8.
    p = plan(make(num_slots=1, world_size_ladder=(1,), time_budget_s=100.0))
    assert not p.feasible and p.message.startswith("EXPLORATION FIRST")
    assert "nor explore them to 9 epochs (max_epochs // eta), so it explores fewer" in p.message
    assert p.num_configurations == 3 and p.target_epochs == 5
    assert p.survivors == (3, 1) and p.rungs == (1, 5)
    assert p.predicted_time_s == pytest.approx(3 * 15.0 + 5 + 4 * 10.0)


def test_nothing_fits_gives_an_empty_plan():
    p = plan(make(time_budget_s=10.0, world_size_ladder=(1,)))  # 5 s start-up + 10 s epoch > 9 s
    assert p.rounds == ()
    assert not p.feasible
    assert p.num_configurations == 0
    assert p.binding == "time"
    assert p.message.startswith("NO PLAN")
    json.dumps(p.to_dict())


def test_few_configurations_explore_first_instead_of_training_one_fully():
    # Money for about one full training: rather than 1-2 configurations to 27 epochs, explore
    # eta**2 = 9 and train the best as far as that allows (docs/design.md, "starved exploration").
    p = plan(make(num_slots=1, world_size_ladder=(1,), money_budget_usd=0.4))
    assert not p.feasible
    assert p.num_configurations >= 9
    assert p.target_epochs < 27 and p.rounds[-1].rung_epoch == p.target_epochs
    assert p.message.startswith("EXPLORATION FIRST") and "min_configurations=9" in p.message
    assert p.predicted_cost_usd <= 0.9 * 0.4 + 1e-9
    # With min_configurations=1 the old choice stands: fully trained, with a warning.
    q = plan(make(num_slots=1, world_size_ladder=(1,), money_budget_usd=0.4, min_configurations=2))
    assert q.feasible and q.num_configurations < 9 and q.rounds[-1].rung_epoch == 27
    assert "WARNING" not in q.message  # 2 configurations fit, as many as asked for
    roomy = plan(make())
    assert roomy.feasible and "WARNING" not in roomy.message and "EXPLORATION" not in roomy.message


# -- replan ----------------------------------------------------------------------------------------


def test_replan_keeps_w_at_least_current_and_charges_relaunch_or_resize():
    inputs = make(relaunch_s=1.0, resize_s=7.0, num_slots=8)
    p = replan(inputs, rungs=(9, 27), survivors=(3, 1), current_epoch=3, current_world_size=2,
               first_round_index=3)
    assert p.feasible and p.binding == "none"
    assert p.world_sizes == (2, 2)  # cheapest: no widening without a deadline, never below 2
    assert [r.index for r in p.rounds] == [3, 4]
    assert p.rounds[0].start_epoch == 3
    assert p.rounds[0].job_duration_s == pytest.approx(1.0 + 6 * 10.0 / 1.85)  # relaunch, same W
    # a deadline that needs W=8 for the final round forces a resize overhead
    tight = make(relaunch_s=1.0, resize_s=7.0, num_slots=8,
                 time_budget_s=(1 + 60 / 1.85 + 7 + 180 / 5.4) / 0.9)
    q = replan(tight, rungs=(9, 27), survivors=(3, 1), current_epoch=3, current_world_size=2)
    assert q.feasible
    assert q.world_sizes == (2, 8)
    assert q.rounds[1].job_duration_s == pytest.approx(7.0 + 180 / 5.4)


def test_replan_best_effort_prefix():
    # 90 s (x 0.9 = 81 s) fits 9 trials for epochs 1-3 at W=1 on 9 slots (5 + 20 = 25 s) and
    # 3 trials for 3-9 (5 + 60 = 65 s) only separately; the prefix that fits is round 1
    inputs = make(num_slots=9, world_size_ladder=(1,), time_budget_s=90.0)
    p = replan(inputs, rungs=(3, 9, 27), survivors=(9, 3, 1), current_epoch=1, current_world_size=1)
    assert not p.feasible
    assert p.rungs == (3,)
    assert p.target_epochs == 3
    assert p.binding == "time"
    assert p.message.startswith("BEST EFFORT")


def test_replan_random_invariants():
    rng = random.Random(11)
    for _ in range(200):
        inputs = _random_inputs(rng, small=False)
        rungs = tuple(sorted(rng.sample(range(2, 100), rng.randint(1, 5))))
        current = rng.randint(0, rungs[0] - 1)
        n = rng.randint(1, 30)
        survivors = survivor_counts(n, len(rungs), inputs.eta or 3)
        w0 = rng.choice((0,) + inputs.usable_world_sizes)
        p = replan(inputs, rungs, survivors, current, w0)
        assert p.predicted_time_s <= inputs.time_limit_s * (1 + 1e-9)
        assert p.predicted_cost_usd <= inputs.money_limit_usd * (1 + 1e-9) + 1e-12
        assert p.rungs == rungs[: len(p.rounds)]
        assert p.survivors == survivors[: len(p.rounds)]
        assert p.feasible == (len(p.rounds) == len(rungs))
        ws = p.world_sizes
        assert all(b >= a for a, b in zip(ws, ws[1:]))
        assert all(w >= w0 for w in ws)
        if p.rounds:
            first = None if w0 == 0 else (inputs.relaunch_s if ws[0] == w0 else inputs.resize_s)
            _, t, c = reference_cost(inputs, p.rungs, ws, p.survivors, current, first, w0 or None)
            assert p.predicted_time_s == pytest.approx(t, rel=1e-9)
            assert p.predicted_cost_usd == pytest.approx(c, rel=1e-9, abs=1e-12)


def test_replan_rejects_bad_input():
    inputs = make()
    with pytest.raises(ConfigError) as info:
        replan(inputs, rungs=(3, 3), survivors=(2, 1), current_epoch=1, current_world_size=1)
    assert info.value.field == "rungs"
    with pytest.raises(ConfigError) as info:
        replan(inputs, rungs=(3, 9), survivors=(1, 2), current_epoch=1, current_world_size=1)
    assert info.value.field == "survivors"
    with pytest.raises(ConfigError) as info:
        replan(inputs, rungs=(3,), survivors=(1,), current_epoch=3, current_world_size=1)
    assert info.value.field == "rungs"


# -- inputs, output format, speed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"eta": 1}, "eta"),
        ({"min_epochs": 30}, "min_epochs"),
        ({"max_configurations": 0}, "max_configurations"),
        ({"num_slots": 0}, "num_slots"),
        ({"world_size_ladder": ()}, "world_size_ladder"),
        ({"epoch_time_s": 0.0}, "epoch_time_s"),
        ({"resize_s": -1.0}, "resize_s"),
        ({"time_budget_s": -1.0}, "time_budget_s"),
        ({"money_budget_usd": float("nan")}, "money_budget_usd"),
        ({"safety_fraction": 0.0}, "safety_fraction"),
        ({"min_configurations": 0}, "min_configurations"),
    ],
)
def test_bad_inputs_raise_config_error(overrides, field):
    with pytest.raises(ConfigError) as info:
        make(**overrides)
    assert info.value.field == field


def test_ladder_with_nothing_under_the_slots_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        plan(make(num_slots=2, world_size_ladder=(4, 8)))
    assert info.value.field == "world_size_ladder"


def test_usable_ladder_drops_sizes_above_the_slots():
    p = plan(make(num_slots=4, time_budget_s=120.0, max_epochs=9))
    assert max(p.world_sizes) <= 4


def test_plan_is_deterministic_and_round_trips_through_json():
    inputs = make(time_budget_s=900.0, money_budget_usd=2.0)
    a, b = plan(inputs), plan(inputs)
    assert a == b
    data = json.loads(json.dumps(a.to_dict()))
    assert Plan.from_dict(data) == a
    assert data["rounds"][0]["rung_epoch"] == a.rungs[0]


@pytest.mark.parametrize("max_configurations", [64, 1000])
def test_plan_is_fast(max_configurations):
    inputs = make(max_epochs=243, max_configurations=max_configurations, time_budget_s=3600.0,
                  money_budget_usd=50.0)
    started = time.perf_counter()
    p = plan(inputs)
    elapsed = time.perf_counter() - started
    assert len(p.rounds) <= 6
    assert elapsed < 0.5


def test_planner_imports_no_torch():
    code = (
        "import sys; import seer_torch.policies.seer, seer_torch.scaling.model, seer_torch.policies.rungs; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_replan_keeps_the_planned_world_sizes_while_they_fit():
    # Loose budget: the least-cost choice would be (2, 2), but the plan said (2, 8) and it fits.
    inputs = make(relaunch_s=1.0, resize_s=7.0, num_slots=8)
    kept = replan(inputs, rungs=(9, 27), survivors=(3, 1), current_epoch=3, current_world_size=2,
                  planned_world_sizes=(2, 8))
    assert kept.feasible and kept.world_sizes == (2, 8)
    assert kept.rounds[1].job_duration_s == pytest.approx(7.0 + 180 / 5.4)
    # Money for only the cheap sequence: the plan is dropped for the one that fits.
    cheap = replan(inputs, rungs=(9, 27), survivors=(3, 1), current_epoch=3, current_world_size=2)
    tight_money = make(relaunch_s=1.0, resize_s=7.0, num_slots=8,
                       money_budget_usd=cheap.predicted_cost_usd / 0.9 * 1.0001)
    q = replan(tight_money, rungs=(9, 27), survivors=(3, 1), current_epoch=3, current_world_size=2,
               planned_world_sizes=(2, 8))
    assert q.feasible and q.world_sizes == (2, 2)
    with pytest.raises(ConfigError, match="planned_world_sizes"):
        replan(inputs, rungs=(9, 27), survivors=(3, 1), current_epoch=3, current_world_size=2,
               planned_world_sizes=(8, 2))


def test_case3_fewer_slots_than_configurations():
    # 8 configurations, eta 2, 1..8 epochs, 4 slots: survivors 8 -> 4 -> 2 -> 1, the first round
    # in two waves, and 20 trial-epochs in all when training continues from checkpoints.
    p = plan(make(max_epochs=8, min_epochs=1, eta=2, max_configurations=8, num_slots=4,
                  world_size_ladder=(1,), relaunch_s=1.0))
    assert p.feasible
    assert p.rungs == (1, 2, 4, 8)
    assert p.survivors == (8, 4, 2, 1)
    assert p.rounds[0].waves == 2
    assert sum(r.num_trials * (r.rung_epoch - r.start_epoch) for r in p.rounds) == 20
    assert p.rounds[-1].rung_epoch == 8


# -- billing, world-size cap, and the choices left to the planner (issue 4) ------------------------


def test_billing_granularity_bills_a_short_job_a_full_increment():
    # one configuration, one epoch of 10 s, no start-up: 10 slot-seconds when billing is exact
    common = dict(max_epochs=1, max_configurations=1, num_slots=2, world_size_ladder=(1,), startup_s=0.0)
    exact = plan(make(**common))
    per_minute = plan(make(**common, billing_granularity_s=60.0))
    minimum = plan(make(**common, billing_minimum_s=60.0))
    assert exact.predicted_cost_usd == pytest.approx(10 * 0.001)
    assert per_minute.predicted_cost_usd == pytest.approx(60 * 0.001)
    assert minimum.predicted_cost_usd == pytest.approx(60 * 0.001)
    assert per_minute.predicted_time_s == exact.predicted_time_s == pytest.approx(10.0)  # time is not billed
    # a 61 s job is billed two minutes; a W=2 job bills both slots
    assert plan(make(**{**common, "epoch_time_s": 61.0}, billing_granularity_s=60.0)).predicted_cost_usd == (
        pytest.approx(120 * 0.001)
    )
    wide = plan(make(**{**common, "world_size_ladder": (2,)}, billing_granularity_s=60.0))
    assert wide.world_sizes == (2,) and wide.predicted_cost_usd == pytest.approx(2 * 60 * 0.001)


@pytest.mark.parametrize("billing, field, words", [
    ({"billing_minimum_s": 3600.0}, "budget.billing_minimum_s", "the billing minimum"),
    ({"billing_granularity_s": 3600.0}, "budget.billing_granularity_s", "the billing granularity"),
])
def test_no_plan_for_a_billing_rule_blames_the_billing_not_the_money_budget(billing, field, words):
    # One epoch of one configuration: 5 s start-up + 10 s = 15 slot-seconds, 0.015 USD billed
    # exactly; a plan may use 0.9 x 1 USD. One hour billed is 3.6 USD: nothing fits.
    p = plan(make(money_budget_usd=1.0, **billing))
    assert p.rounds == () and not p.feasible and p.binding == "money"
    assert p.message == (
        f"NO PLAN: {words} ({field} = 3600 s"
        + (", billed for every job however short)" if "minimum" in field else
           ": every job is billed in whole multiples of it)")
        + " makes one job of one worker cost 3.6 USD (3600 s at 3.6 USD/slot-hour), more than a plan may "
        "use of the money budget (0.9 USD of 1 USD, safety fraction 0.9); billed exactly, one epoch of one "
        "configuration (10 s on one worker plus 5.0 s start-up) would cost 0.015 USD. One job needs 4 USD of "
        f"money budget left: raise the money budget, or lower {field}."
    )
    # Where even exact billing does not fit, the money budget is the cause, as before.
    short = plan(make(money_budget_usd=0.01, **billing))
    assert short.rounds == () and short.message.startswith(
        "NO PLAN: the money budget (0.01 USD) is too short for even one epoch of one configuration")
    # And 4 USD (3.6 USD at safety fraction 0.9) buys that one job.
    assert plan(make(money_budget_usd=4.0, **billing)).rounds != ()


def test_per_hour_billing_changes_the_schedule():
    # Each job costs 1 USD per hour or part of it. Exact billing: 64 configurations fit either
    # way and two rounds (1, 3) are cheaper. Hourly billing: a job of 10 s costs as much as one of
    # 30 s, so one round of 10 jobs beats two rounds (8 + 2 jobs).
    common = dict(max_epochs=3, max_configurations=64, num_slots=100, world_size_ladder=(1,), startup_s=0.0,
                  relaunch_s=0.0, resize_s=0.0, price_usd_per_slot_hour=1.0, money_budget_usd=10.5,
                  safety_fraction=1.0, min_configurations=1)
    exact = plan(make(**common))
    assert exact.rungs == (1, 3) and exact.num_configurations == 64
    assert exact.predicted_cost_usd == pytest.approx((64 * 10 + 21 * 20) / 3600)
    hourly = plan(make(**common, billing_granularity_s=3600.0))
    assert hourly.feasible and hourly.rungs == (3,) and hourly.num_configurations == 10
    assert hourly.predicted_cost_usd == pytest.approx(10.0)
    assert hourly.binding == "money"


def test_plan_under_per_hour_billing_never_predicts_over_the_money_budget():
    rng = random.Random(3600)
    for _ in range(150):
        inputs = dataclasses.replace(
            _random_inputs(rng, small=False), billing_granularity_s=3600.0, price_usd_per_slot_hour=3.6,
            money_budget_usd=rng.uniform(0.0, 400.0),
        )
        p = plan(inputs)
        check_plan_invariants(inputs, p)  # never over the money limit; costs as the reference
        for r in p.rounds:  # every job is billed at least one hour per slot
            assert r.predicted_cost_usd >= r.num_trials * r.world_size * 3.6 * (1 - 1e-9)
        if p.rounds:
            q = replan(inputs, p.rungs, p.survivors, 0, 0)
            assert q.predicted_cost_usd <= inputs.money_limit_usd * (1 + 1e-9)


def test_plan_matches_brute_force_under_coarse_billing():
    rng = random.Random(60)
    checked = 0
    for _ in range(80):
        base = _random_inputs(rng, small=True, open_choices=False)
        granularity = rng.choice((60.0, 3600.0))
        inputs = dataclasses.replace(
            base,
            billing_granularity_s=granularity,
            billing_minimum_s=rng.choice((0.0, 60.0, 120.0)),
            price_usd_per_slot_hour=3.6,
            money_budget_usd=0.001 * granularity * rng.uniform(1.0, 30.0),
            eta=rng.choice((base.eta, base.eta, None)),
            num_finalists=rng.choice((1, 2, None)),
        )
        p = plan(inputs)
        check_plan_invariants(inputs, p)
        inputs = resolve_finalists(inputs)
        expected = brute_force(inputs, inputs.max_epochs, with_hedge=True)
        if expected is None:
            assert not p.feasible
            continue
        assert p.feasible and p.num_configurations == expected[0]
        assert min(p.survivors[-1], max(inputs.finalist_choices)) == expected[1]
        assert p.predicted_cost_usd == pytest.approx(expected[2], rel=1e-9, abs=1e-9)
        checked += 1
    assert checked > 20


def test_max_world_size_caps_the_world_sizes():
    tight = _deadline_inputs((1, 2), 300.0)
    assert plan(tight).world_sizes[-1] == 2  # the deadline wants W=2 at the end
    capped = dataclasses.replace(tight, max_world_size=1)
    assert capped.usable_world_sizes == (1,)
    p = plan(capped)
    assert set(p.world_sizes) == {1}
    assert p.num_configurations == plan(_deadline_inputs((1,), 300.0)).num_configurations == 12
    q = replan(capped, rungs=(9, 27), survivors=(3, 1), current_epoch=3, current_world_size=1)
    assert set(q.world_sizes) == {1}
    with pytest.raises(ConfigError) as info:
        plan(make(world_size_ladder=(2, 4), max_world_size=1))
    assert info.value.field == "world_size_ladder" and "max_world_size (1)" in str(info.value)


@pytest.mark.parametrize(
    ("max_epochs", "eta"), [(8, 2), (16, 4), (27, 3)]
)
def test_eta_chosen_by_the_planner_is_the_best_of_2_3_4(max_epochs, eta):
    # money for about 60 configurations: the eta whose rungs fit the most wins
    inputs = make(max_epochs=max_epochs, eta=None, min_configurations=1, money_budget_usd=2.0)
    p = plan(inputs)
    fixed = {e: plan(dataclasses.replace(inputs, eta=e)) for e in (2, 3, 4)}
    assert p.feasible and p.eta == eta
    assert p.num_configurations == max(q.num_configurations for q in fixed.values())
    assert p.rounds == fixed[eta].rounds and p.predicted_cost_usd == fixed[eta].predicted_cost_usd
    assert f"eta {eta} (chosen)" in p.message
    assert Plan.from_dict(json.loads(json.dumps(p.to_dict()))).eta == eta


def test_eta_given_is_kept_and_min_configurations_defaults_to_9_when_eta_is_open():
    assert plan(make(eta=2)).eta == 2
    assert make(eta=None).effective_min_configurations == 9
    assert make(eta=4).effective_min_configurations == 16
    assert make(eta=None, min_configurations=5).effective_min_configurations == 5


def test_min_epochs_open_is_every_first_rung():
    p_open = plan(make(min_epochs=None))
    assert p_open.rounds == plan(make(min_epochs=1)).rounds
    assert p_open.rungs[0] == 1  # the cheapest explores from epoch 1
    p9 = plan(make(min_epochs=9))
    assert p9.rungs[0] >= 9 and p9.predicted_cost_usd > p_open.predicted_cost_usd


def test_finalists_open_carries_two_when_that_still_explores_the_minimum():
    p = plan(make(num_finalists=None))
    assert p.num_configurations == 64 and p.feasible
    assert p.num_finalists == 2 and p.survivors[-1] == 2
    assert p.survivors == survivor_counts(64, len(p.rungs), 3, 2)
    assert "2 finalists (chosen)" in p.message
    assert p.rounds == plan(make(num_finalists=2)).rounds


def test_finalists_open_keeps_two_when_money_is_tight():
    # money for exactly the cheapest 64-configuration plan with one finalist: the plan carries
    # two, explores at least min_configurations (9) and stays within the money
    one = plan(make(num_finalists=1))
    tight = make(num_finalists=None, money_budget_usd=one.predicted_cost_usd / 0.9)
    p = plan(tight)
    assert p.num_finalists == 2 and p.rounds == plan(dataclasses.replace(tight, num_finalists=2)).rounds
    assert p.feasible and p.num_configurations >= 9 and p.survivors[-1] == 2
    assert p.predicted_cost_usd <= tight.money_limit_usd * (1 + 1e-9)


def test_finalists_open_falls_back_to_one_when_exploration_is_starved():
    # Not even min_configurations for one epoch fit: exploration is starved either way, and
    # one finalist is the cheaper plan of the few configurations that fit.
    base = make(num_finalists=None, min_configurations=64, money_budget_usd=0.3)
    p = plan(base)
    assert p.num_configurations < 64
    assert p.num_finalists == 1 and p.rounds == plan(dataclasses.replace(base, num_finalists=1)).rounds
    assert "1 finalist (chosen)" in p.message


def test_plan_round_trips_num_finalists_and_reads_old_dicts_as_one():
    p = plan(make(num_finalists=None))
    data = json.loads(json.dumps(p.to_dict()))
    assert data["num_finalists"] == 2 and Plan.from_dict(data) == p
    del data["num_finalists"]
    assert Plan.from_dict(data).num_finalists == 1


def test_replan_echoes_open_eta_and_finalists_as_zero():
    p = replan(make(eta=None, num_finalists=None), rungs=(9, 27), survivors=(3, 1), current_epoch=3,
               current_world_size=1)
    assert p.feasible and p.eta == 0 and p.num_finalists == 0
    q = replan(make(eta=4, num_finalists=2), rungs=(9, 27), survivors=(3, 2), current_epoch=3,
               current_world_size=1)
    assert q.eta == 4 and q.num_finalists == 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"billing_granularity_s": -1.0}, "billing_granularity_s"),
        ({"billing_minimum_s": math.inf}, "billing_minimum_s"),
        ({"billing_minimum_s": "60"}, "billing_minimum_s"),
        ({"max_world_size": 0}, "max_world_size"),
        ({"num_finalists": 0}, "num_finalists"),
        ({"eta": 2.5}, "eta"),
        ({"min_epochs": 0}, "min_epochs"),
    ],
)
def test_bad_new_inputs_raise_config_error(overrides, field):
    with pytest.raises(ConfigError) as info:
        make(**overrides)
    assert info.value.field == field
    assert "allowed:" in str(info.value)


def enumerate_best(inputs, target):
    """The documented objective by exhaustive enumeration of (eta, schedule, W sequence,
    finalists), with the largest n_1 per sequence by binary search (cost and time grow with
    n_1): ``(key, rungs, world sizes, counts, eta, finalists)`` of the best, or ``None``."""
    usable = usable_sizes(inputs)
    etas = (inputs.eta,) if inputs.eta is not None else ETA_CHOICES
    finalists = inputs.finalist_choices
    first = inputs.min_epochs if inputs.min_epochs is not None else 1
    limit_t = inputs.time_limit_s + (
        1e-9 * max(1.0, inputs.time_limit_s) if math.isfinite(inputs.time_limit_s) else 0)
    limit_m = inputs.money_limit_usd + (
        1e-9 * max(1.0, inputs.money_limit_usd) if math.isfinite(inputs.money_limit_usd) else 0)
    best = None
    for rank, eta in enumerate(etas):
        for rungs in rung_schedules(min(first, target), target, eta):
            for ws in itertools.combinations_with_replacement(usable, len(rungs)):
                for f in finalists:
                    def cost(n, rungs=rungs, ws=ws, eta=eta, f=f):
                        return reference_cost(inputs, rungs, ws, survivor_counts(n, len(rungs), eta, f))[1:]

                    def fits(n):
                        t, c = cost(n)
                        return t <= limit_t and c <= limit_m

                    if not fits(1):
                        continue
                    lo, hi = 1, inputs.max_configurations
                    while lo < hi:
                        mid = (lo + hi + 1) // 2
                        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
                    counts = survivor_counts(lo, len(rungs), eta, f)
                    t, c = cost(lo)
                    wide = sum(1 for w in ws if w > usable[0])
                    key = (-lo, -min(counts[-1], max(finalists)), round(c, 9), wide, sum(ws), t, len(ws), ws,
                           rank, f)
                    if best is None or key < best[0]:
                        best = (key, rungs, ws, counts, eta, f)
    return best


def test_plan_matches_exhaustive_enumeration_including_tie_breaks():
    # Near-linear speedups with a resize cheaper than a relaunch make wide sequences cheaper
    # than narrow ones, and costs nearly tie: there a wrong cut of the branch and bound would
    # pick another world-size sequence.
    rng = random.Random(4)
    checked = 0
    for _ in range(80):
        base = _random_inputs(rng, small=False)
        sizes = (1, 2, 4, 8, 16)
        speedup = tuple(w * (1 - rng.uniform(0, 0.02) * (w > 1)) for w in sizes)
        near_linear = ScalingModel(world_sizes=sizes, speedup=speedup)
        inputs = dataclasses.replace(
            base,
            max_epochs=rng.randint(1, 30),
            relaunch_s=rng.uniform(0.0, 20.0),
            resize_s=rng.choice((0.0, rng.uniform(0.0, 2.0), base.resize_s)),
            min_epochs=None,
            max_configurations=rng.randint(1, 200),
            world_size_ladder=(1,) + tuple(sorted(rng.sample(sizes[1:], rng.randint(1, 3)))),
            num_slots=16,
            max_world_size=rng.choice((None, None, 8)),
            scaling=rng.choice((near_linear, base.scaling)),
            price_usd_per_slot_hour=rng.choice((3.6, 3.06, 0.0)),  # 0: every cost ties
            min_configurations=1,
        )
        p = plan(inputs)
        expected = enumerate_best(resolve_finalists(inputs), inputs.max_epochs)
        if expected is None:
            assert not p.feasible
            continue
        _, rungs, ws, counts, eta, f = expected
        assert (p.rungs, p.world_sizes, p.survivors, p.eta, p.num_finalists) == (rungs, ws, counts, eta, f)
        checked += 1
    assert checked > 40


def test_wave_epoch_time_sets_the_wall_clock_and_the_mean_epoch_the_money():
    # Three survivors whose epochs take 8, 10 and 12 s on one worker: a round lasts as long as
    # the slowest (12 s) job, and costs each its own time (mean 10 s).
    mean = make(epoch_time_s=10.0)
    spread = make(epoch_time_s=10.0, wave_epoch_time_s=12.0)
    kw = dict(rungs=(9,), survivors=(3,), current_epoch=3, current_world_size=1, planned_world_sizes=(1,))
    a = replan(mean, **kw)
    b = replan(spread, **kw)
    assert a.rounds[0].predicted_duration_s == pytest.approx(5.0 + 6 * 10.0)
    assert b.rounds[0].predicted_duration_s == pytest.approx(5.0 + 6 * 12.0)
    assert b.rounds[0].predicted_cost_usd == pytest.approx(a.rounds[0].predicted_cost_usd)
    assert b.rounds[0].predicted_cost_usd == pytest.approx(3 * (5.0 + 60.0) * 0.001)
    # a deadline that the mean fits and the slowest does not: the planner widens the round
    deadline = make(epoch_time_s=10.0, wave_epoch_time_s=12.0, time_budget_s=70.0 / 0.9)
    c = replan(deadline, rungs=(9,), survivors=(3,), current_epoch=3, current_world_size=1)
    assert c.feasible and c.world_sizes == (2,)
    with pytest.raises(ConfigError, match="wave_epoch_time_s"):
        make(wave_epoch_time_s=0.0)
    with pytest.raises(ConfigError, match="wave_epoch_time_s"):
        make(wave_epoch_time_s=math.inf)


# -- machine start on a cluster that rents machines (issue 17) --------------------------------------


def _busy(n, w, slots):
    return min(n, max(1, slots // w)) * w


def _with_machine_waits(base_rounds, machine_s, slots, previous_busy=0, previous_s=0.0):
    """Each round's duration when round k waits ``max(0, machine_s - D_{k-1})`` for machines
    whenever it holds more slots than round k-1 (round 1 after ``previous_busy``/``previous_s``),
    from the durations priced without machines."""
    out = []
    for r in base_rounds:
        busy = _busy(r.num_trials, r.world_size, slots)
        wait = max(0.0, machine_s - previous_s) if busy > previous_busy else 0.0
        out.append(r.predicted_duration_s + wait)
        previous_busy, previous_s = busy, out[-1]
    return out


def test_machine_start_changes_the_plan_where_the_deadline_binds():
    # 300 s (x 0.9 = 270 s): with no machine start 50 configurations fit, W 1,1,1,8; waiting
    # 30 s for the first round's machines, only 44 do, and the final round is narrower (W 4)
    fast = plan(make(time_budget_s=300.0))
    slow = plan(make(time_budget_s=300.0, machine_start_s=30.0))
    assert (fast.num_configurations, fast.world_sizes) == (50, (1, 1, 1, 8))
    assert (slow.num_configurations, slow.world_sizes) == (44, (1, 1, 2, 4))
    assert fast.predicted_time_s <= 270.0 + 1e-9 and slow.predicted_time_s <= 270.0 + 1e-9
    # the first round waits the whole machine start; the others hold no more slots than the
    # round before (8 busy slots from round 1 on), so they wait nothing
    assert [r.predicted_duration_s for r in slow.rounds] == pytest.approx([90.0 + 30.0, 50.0, 37.432, 57.478],
                                                                         abs=1e-3)
    # the fast plan's sequence priced with the wait breaks the deadline: 288.3 s > 270 s
    kept = replan(make(time_budget_s=1e9, machine_start_s=30.0), rungs=fast.rungs, survivors=fast.survivors,
                  current_epoch=0, current_world_size=0, planned_world_sizes=fast.world_sizes)
    assert kept.predicted_time_s == pytest.approx(fast.predicted_time_s + 30.0)
    assert kept.predicted_time_s > 270.0


def test_machine_start_makes_a_short_first_round_go_wider():
    # 3 configurations, 90 s of plan: without machines W 1,1,2 (77.4 s); with 30 s the first
    # round takes 45 s, and the rounds after must go wider: W 1,4,4. Round 2 holds 4 slots (3
    # before) but its machines booted during round 1's 45 s: no wait.
    kw = dict(max_epochs=9, max_configurations=3, min_configurations=3, time_budget_s=100.0)
    fast, slow = plan(make(**kw)), plan(make(**kw, machine_start_s=30.0))
    assert fast.world_sizes == (1, 1, 2) and slow.world_sizes == (1, 4, 4)
    assert [r.predicted_duration_s for r in fast.rounds] == pytest.approx([15.0, 25.0, 5.0 + 60 / 1.85])
    assert [r.predicted_duration_s for r in slow.rounds] == pytest.approx(
        [15.0 + 30.0, 5.0 + 20 / 3.43, 5.0 + 60 / 3.43])


def test_a_widening_round_waits_what_the_round_before_left_of_the_machine_start():
    inputs = make(num_slots=8, relaunch_s=5.0, resize_s=5.0, machine_start_s=30.0, previous_round_s=10.0)
    # after a round of 1 trial at W=1 (1 busy slot) that ran 10 s: round 1 at W=1 (no new
    # machine) takes 5 + 20 = 25 s; round 2 at W=4 holds 4 slots: it waits 30 - 25 = 5 s
    p = replan(inputs, rungs=(3, 9), survivors=(1, 1), current_epoch=1, current_world_size=1,
               previous_num_trials=1, planned_world_sizes=(1, 4))
    assert [r.predicted_duration_s for r in p.rounds] == pytest.approx([25.0, 5.0 + 60 / 3.43 + 5.0])
    # widening at once: the first round left (2 slots) waits 30 - 10 = 20 s (asked for when the
    # round just closed started, 10 s ago); round 2 (4 slots) after its 5 + 20/1.85 + 20 s: none
    q = replan(inputs, rungs=(3, 9), survivors=(1, 1), current_epoch=1, current_world_size=1,
               previous_num_trials=1, planned_world_sizes=(2, 4))
    assert [r.predicted_duration_s for r in q.rounds] == pytest.approx(
        [5.0 + 20 / 1.85 + 20.0, 5.0 + 60 / 3.43])
    # the round before ran past the machine start: round 1 waits nothing, and round 2's
    # machines, asked for when round 1 starts, take 30 - 15.8 s more
    late = replan(dataclasses.replace(inputs, previous_round_s=40.0), rungs=(3, 9), survivors=(1, 1),
                  current_epoch=1, current_world_size=1, previous_num_trials=1, planned_world_sizes=(2, 4))
    first_s = 5.0 + 20 / 1.85
    assert [r.predicted_duration_s for r in late.rounds] == pytest.approx(
        [first_s, 5.0 + 60 / 3.43 + (30.0 - first_s)])


@pytest.mark.parametrize("budget_s", [150.0, 225.0, 300.0, 400.0, 800.0])
@pytest.mark.parametrize("machine_s", [8.0, 30.0, 120.0])
def test_every_planned_round_pays_exactly_its_machine_wait(budget_s, machine_s):
    # the chosen plan's rounds, priced again without machines (its own world sizes kept), plus
    # the documented wait of each round: equal to the planned durations, and within the deadline
    p = plan(make(time_budget_s=budget_s, machine_start_s=machine_s))
    if not p.rounds:
        return
    base = replan(make(), rungs=p.rungs, survivors=p.survivors, current_epoch=0, current_world_size=0,
                  planned_world_sizes=p.world_sizes)
    want = _with_machine_waits(base.rounds, machine_s, 8)
    assert [r.predicted_duration_s for r in p.rounds] == pytest.approx(want)
    assert want[0] >= machine_s  # the first round waits the whole machine start
    if p.feasible:
        assert sum(want) <= 0.9 * budget_s * (1 + 1e-9)


@pytest.mark.parametrize("machine_s", [None, 0.0])
def test_no_machine_start_prices_every_plan_exactly_as_before(machine_s):
    for budget_s in (150.0, 300.0, 800.0, math.inf):
        a = plan(make(time_budget_s=budget_s))
        b = plan(make(time_budget_s=budget_s, machine_start_s=machine_s))
        assert a == b


def test_machine_start_inputs_are_checked():
    for name in ("machine_start_s", "previous_round_s"):
        for bad in (-1.0, math.inf, "30", math.nan):
            with pytest.raises(ConfigError, match=name):
                make(**{name: bad})
