"""The pure decisions behind SEER's rounds (who survives a rung, which trial is the answer) and
the executor's meter."""

from __future__ import annotations

import math

import pytest

from seer_torch.backends.base import JobResult, JobSpec
from seer_torch.executor import Meter
from seer_torch.policies.base import TrialView, best_at_rungs
from seer_torch.policies.billing import Billing
from seer_torch.policies.seer_policy import select_survivors


def _trial(tid, status="paused", **rungs):
    return TrialView(tid, 0, status, 0, None, None, {int(k[1:]): v for k, v in rungs.items()})


def test_survivors_are_the_best_at_the_rung_failed_and_nan_last():
    ts = [
        _trial("a", e1=0.5),
        _trial("b", e1=0.9),
        _trial("c", e1=float("nan")),
        _trial("d"),
        _trial("e", e1=0.7),
        _trial("f", status="failed", e1=0.95),
    ]
    assert [t.trial_id for t in select_survivors(ts, 1, 2)] == ["b", "e"]
    # Never more than the eligible ones, never a trial without a valid result.
    assert [t.trial_id for t in select_survivors(ts, 1, 10)] == ["b", "e", "a"]


def test_survivor_ties_break_by_trial_id():
    ts = [_trial("t2", e3=0.8), _trial("t1", e3=0.8), _trial("t0", e3=0.7)]
    assert [t.trial_id for t in select_survivors(ts, 3, 1)] == ["t1"]


def test_answer_falls_back_when_the_finalist_diverged():
    a = _trial("a", e1=0.8, e3=0.9)
    b = _trial("b", "diverged", e1=0.85, e3=0.88, e9=0.97)  # looked best, then diverged
    assert best_at_rungs({"a": a, "b": b}, [1, 3, 9]) == ("a", 3)
    b = _trial("b", "paused", e1=0.85, e3=0.88, e9=0.97)
    assert best_at_rungs({"a": a, "b": b}, [1, 3, 9]) == ("b", 9)
    assert best_at_rungs({"a": a, "b": b}, []) is None


def _at(tid, epochs, status="paused", **rungs):
    return TrialView(tid, 0, status, epochs, None, None, {int(k[1:]): v for k, v in rungs.items()})


def test_the_best_so_far_can_get_worse_as_a_trial_reaches_a_deeper_epoch():
    # The live status's best (ResultsReport.best_so_far: best_at_rungs over every reported
    # epoch) is judged at the deepest epoch reached, by design: 0.9 at epoch 1, then 0.8 once
    # b reports epoch 3 (a, two epochs down, is no candidate there). Documented in
    # docs/files-a-run-leaves.md; this pins it.
    a = _at("a", 1, e1=0.9)
    b = _at("b", 1, "running", e1=0.6)
    assert best_at_rungs({"a": a, "b": b}, [1]) == ("a", 1)
    b = _at("b", 2, "running", e1=0.6, e2=0.7, e3=0.8)
    assert best_at_rungs({"a": a, "b": b}, [1, 2, 3]) == ("b", 3)


def test_answer_is_judged_across_the_last_two_rungs():
    # The finalist collapsed between rungs 9 and 27 (0.81 -> 0.41): the runner-up kept at
    # rung 9 (its checkpoint is there) is the better answer.
    finalist = _at("f", 27, e1=0.4, e3=0.6, e9=0.81, e27=0.41)
    runner_up = _at("r", 9, "eliminated", e1=0.35, e3=0.55, e9=0.78)
    early = _at("e", 3, "eliminated", e1=0.5, e3=0.9)  # better, but two rungs down: not a candidate
    trials = {"f": finalist, "r": runner_up, "e": early}
    assert best_at_rungs(trials, [1, 3, 9, 27]) == ("r", 9)
    # A finalist that kept improving stays the answer.
    trials["f"] = _at("f", 27, e1=0.4, e3=0.6, e9=0.81, e27=0.86)
    assert best_at_rungs(trials, [1, 3, 9, 27]) == ("f", 27)
    # A trial that went on past rung 9 is not judged at rung 9 (its checkpoint moved on).
    trials["f"] = _at("f", 27, e1=0.4, e3=0.6, e9=0.95, e27=0.41)
    trials["r"] = _at("r", 9, "eliminated", e9=0.30)
    assert best_at_rungs(trials, [1, 3, 9, 27]) == ("f", 27)
    # On an exact tie the higher rung wins.
    trials["r"] = _at("r", 9, "eliminated", e9=0.41)
    assert best_at_rungs(trials, [1, 3, 9, 27]) == ("f", 27)


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def now(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_meter_bills_slot_seconds_at_the_price():
    # CASES 5: 4 trials in parallel at W=1 for 15 s each (10 s epoch + 5 s restart):
    # 4 x 15 slot-seconds; at 3.6 USD/slot-hour that is 60 * 0.001 = 0.06 USD.
    clock = FakeClock()
    m = Meter(clock, price_usd_per_slot_hour=3.6)
    for i in range(4):
        spec = JobSpec(f"t{i}", None, 1, 1)
        m.bill(JobResult(spec, 0, 100.0, 115.0, 0.0))
    clock.t = 115.0
    assert math.isclose(m.cost_usd(), 0.06)
    assert m.elapsed_s() == 15.0
    # A W=2 job running for 5 s adds 10 slot-seconds while it runs.
    clock.t = 120.0
    assert math.isclose(m.cost_usd([(115.0, 2)]), 0.07)


def test_meter_rounds_each_job_up_to_the_billing_granularity_and_minimum():
    clock = FakeClock()
    m = Meter(clock, billing=Billing(3.6, granularity_s=60.0, minimum_s=120.0))
    m.bill(JobResult(JobSpec("a", None, 2, 1), 0, 100.0, 110.0, 0.0))  # 10 s -> minimum 120 s, x2 slots
    m.bill(JobResult(JobSpec("b", None, 1, 1), 0, 100.0, 190.0, 0.0))  # 90 s -> 120 s
    m.bill(JobResult(JobSpec("c", None, 1, 1), 0, 100.0, 280.0, 0.0))  # 180 s -> 180 s
    assert math.isclose(m.cost_usd(), (240 + 120 + 180) * 3.6 / 3600)


def test_a_reserved_cluster_is_billed_for_its_slots_whatever_runs():
    clock = FakeClock()
    m = Meter(clock, price_usd_per_slot_hour=3.6)
    m.reserve(4)
    clock.t = 150.0
    m.bill(JobResult(JobSpec("a", None, 1, 1), 0, 100.0, 110.0, 0.0))  # inside the cluster: no extra
    assert math.isclose(m.cost_usd(), 4 * 50 * 3.6 / 3600)


def _list_schedule_s(job_s: list[float], lanes: int) -> float:
    ends = [0.0] * lanes
    for j in job_s:
        i = ends.index(min(ends))
        ends[i] += j
    return max(ends)


def test_seer_plans_round_1_on_the_draws_it_launches_when_their_epoch_times_are_known():
    from dataclasses import replace

    from seer_torch.policies.base import PolicyContext
    from seer_torch.policies.seer_policy import SeerPolicy
    from seer_torch.scaling.model import ScalingModel

    # 8 slots; the first draw is a straggler (12 s an epoch against 2 s). Planned on the mean
    # epoch alone, round 1 (one wave) is predicted far shorter than its straggler makes it.
    times = (12.0,) + (2.0,) * 7
    ctx = PolicyContext(
        max_epochs=27,
        min_epochs=1,
        eta=3,
        max_configurations=8,
        num_slots=8,
        world_size_ladder=(1, 2, 4, 8),
        max_world_size=8,
        epoch_time_s=2.0,
        scaling=ScalingModel(world_sizes=(1, 2, 4, 8), speedup=(1.0, 1.9, 3.6, 6.4)),
        startup_s=5.0,
        relaunch_s=5.0,
        resize_s=5.0,
        time_budget_s=200.0,
        money_budget_usd=100.0,
        billing=Billing(3.6),
        num_finalists=1,
    )
    blind, known = SeerPolicy(), SeerPolicy()
    blind.setup(ctx)
    known.setup(replace(ctx, draw_epoch_times_s=times))
    for policy in (blind, known):
        first = policy.plan.rounds[0]
        n, w, epochs = first.num_trials, first.world_size, first.rung_epoch
        speed = ctx.scaling.speedup_at(w)
        makespan = _list_schedule_s([5.0 + epochs * t / speed for t in times[:n]], 8 // w)
        if policy is blind:
            assert first.predicted_duration_s < 0.8 * makespan  # the straggler is not foreseen
        else:
            assert first.predicted_duration_s == pytest.approx(makespan)  # it is
            assert policy.plan.feasible and policy.plan.predicted_time_s <= 0.9 * 200.0
            # Money stays on the typical epoch (the context's): the draws of later rounds are
            # not known yet, and the first n's mean measured worse on the policy sweep.
            assert first.predicted_cost_usd == pytest.approx(
                3.6 / 3600 * w * n * (5.0 + epochs * 2.0 / speed)
            )


def test_list_scheduled_makespan():
    from seer_torch.policies.seer_policy import list_scheduled_makespan_s

    assert list_scheduled_makespan_s([2.0, 1.0, 1.0], 2) == 2.0  # 2 | 1+1
    assert list_scheduled_makespan_s([1.0, 1.0, 2.0], 2) == 3.0  # 1+2 | 1
    assert list_scheduled_makespan_s([1.58, 0.75], 2) == 1.58  # one wave: the slowest
    assert list_scheduled_makespan_s([1.58, 0.75], 1) == pytest.approx(2.33)  # one lane: the sum
    assert list_scheduled_makespan_s([], 2) == 0.0
