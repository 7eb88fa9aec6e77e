"""The round engine's shared steps and SEER's round-closing steps, each alone (issue 14).

:mod:`seer_torch.policies.engine` (ranker, stopped-job rule, round records, eliminations) and
:mod:`seer_torch.policies.seer_rounds` (survivors, hold-backs, re-plan adjustments). The
re-plan steps are driven through a stand-in for :class:`RungReplan` whose ``fits`` rule is
written in the test, so each step's own logic is what is checked; :class:`RungReplan` itself is
checked against hand-computed job times.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from seer_torch.policies.base import Eliminate, JobEvent, PolicyContext, TrialView
from seer_torch.policies.billing import Billing
from seer_torch.policies.engine import (
    RetryOnce,
    eliminations,
    rank_at_rung,
    round_record,
    stopped_short,
)
from seer_torch.policies.plan_types import planner_inputs_from_context
from seer_torch.policies.seer import Plan, RoundPlan
from seer_torch.policies.seer_rounds import (
    RungReplan,
    best_effort,
    bisect_target,
    bound_by,
    carry,
    carry_fewer,
    carry_more,
    extend_best_effort,
    grown_counts,
    hold_back,
    planned_counts,
    raise_target,
    rungs_left,
    select_survivors,
    truncation_note,
)
from seer_torch.scaling.model import ScalingModel


def view(i: int, acc: dict[int, float] | None = None, status: str = "paused", epochs: int = 1,
         epoch_time_s: float | None = None) -> TrialView:
    return TrialView(f"t{i:03d}", i, status, epochs, None, None, acc or {}, (), epoch_time_s)


# -- the engine's shared pieces ------------------------------------------------------------------


def test_rank_at_rung_orders_valid_by_accuracy_then_the_rest_by_trial_id():
    views = {0: view(0, {3: 0.5}), 1: view(1, {3: 0.9}), 2: view(2, {3: 0.9}), 3: view(3, {3: math.nan})}
    valid = {0, 1, 2}
    ranked = rank_at_rung([3, 0, 2, 1, 7], 3, views.get, lambda i: i in valid)
    # 1 and 2 tie at 0.9 (trial id breaks it), 0 next; 3 invalid; 7 has no view: "~000000007" last.
    assert ranked == [1, 2, 0, 3, 7]


def test_stopped_short_needs_a_paused_trial_short_of_its_target():
    ev = JobEvent("t001", 1, "stopped", 2, 3, 1)
    assert stopped_short(ev, view(1, status="paused"))
    assert not stopped_short(ev, view(1, status="eliminated"))
    assert not stopped_short(ev, None)
    assert not stopped_short(JobEvent("t001", 1, "stopped", 3, 3, 1), view(1))  # reached it
    assert not stopped_short(JobEvent("t001", 1, "failed", 2, 3, 1), view(1))


def test_retry_once_allows_each_key_once():
    retry = RetryOnce()
    assert retry.allow((1, 4)) and retry.allow((2, 4))
    assert not retry.allow((1, 4))


def test_round_record_keys_in_report_order():
    rec = round_record(2, 9, 3, 4, 12.5, 0.25, bracket=1)
    assert list(rec) == ["index", "bracket", "rung_epoch", "num_trials", "world_size",
                         "predicted_duration_s", "predicted_cost_usd", "completed"]
    assert rec["completed"] is False and rec["world_size"] == 4
    assert "bracket" not in round_record(2, 9, 3, 4, 12.5, 0.25)


def test_eliminations_skip_kept_and_trials_already_out():
    views = [view(0), view(1, status="failed"), None, view(3), view(4, status="eliminated")]
    out = eliminations(views, lambda v: v.index == 3)
    assert out == [Eliminate("t000")]


# -- survivors and hold-backs --------------------------------------------------------------------


def test_select_survivors_ranks_valid_trials_only():
    trials = [view(0, {3: 0.4}), view(1, {3: 0.8}, status="diverged"), view(2, {3: 0.6}), view(3, {}),
              view(4, {3: 0.6})]
    assert [t.index for t in select_survivors(trials, 3, 5)] == [2, 4, 0]
    assert [t.index for t in select_survivors(trials, 3, 1)] == [2]


def test_hold_back_takes_the_next_best_then_fills_from_the_old_reserve():
    ranked = [view(i) for i in range(5)]
    assert hold_back(ranked, 2, []) == [2, 3]
    # One survivor and no runner-up at this rung: the best paused trial of the old reserve stays.
    old = [view(7, status="eliminated"), view(8), view(9)]
    assert hold_back(ranked[:1], 1, old) == [8]
    assert hold_back(ranked[:3], 2, old) == [2, 8]  # one runner-up here, one from the reserve


def test_carry_keeps_holds_and_eliminates_the_rest_in_order():
    ranked = [view(i) for i in range(4)]
    members = ranked + [view(5, status="failed")]
    old = [view(8), view(9, status="eliminated")]
    survivors, reserve, out = carry(ranked, 1, members, old, rounds_left=True)
    assert [t.index for t in survivors] == [0] and reserve == [1]
    assert out == [Eliminate("t002"), Eliminate("t003"), Eliminate("t008")]
    # No round left: nothing is held back.
    survivors, reserve, out = carry(ranked, 1, members, old, rounds_left=False)
    assert reserve == [] and Eliminate("t001") in out


# -- the counts ----------------------------------------------------------------------------------


def make_plan(counts, rungs, *, start=1, feasible=True, binding="none", eta=3, finalists=1, message="m"):
    rounds, prev = [], start
    for k, (n, r) in enumerate(zip(counts, rungs)):
        rounds.append(RoundPlan(k + 2, r, prev, n, 1, 1, 10.0 * n, 0.01 * n))
        prev = r
    return Plan(tuple(rounds), counts[0] if counts else 0, eta, rungs[-1] if rungs else 0, feasible,
                sum(r.predicted_duration_s for r in rounds), sum(r.predicted_cost_usd for r in rounds),
                binding, message, finalists)


def test_rungs_left_aims_at_the_first_plans_rungs():
    first = make_plan((9, 3, 1), (1, 3, 9), start=0)
    remaining = [RoundPlan(3, 5, 3, 1, 1, 1, 1.0, 0.1)]  # a re-plan lowered the target to 5
    assert rungs_left(first, 3, remaining) == (9,)
    assert rungs_left(first, 9, remaining) == (5,)


def test_planned_counts_cut_by_eta_never_below_the_plan_nor_above_what_reached():
    first = make_plan((9, 3, 1), (1, 3, 9), start=0)
    assert planned_counts(first, 9, (3, 9)) == (3, 1)
    assert planned_counts(first, 2, (3, 9)) == (2, 1)  # only 2 valid at rung 1
    assert planned_counts(first, 12, (3, 9)) == (4, 1)  # 12 // 3 beats the plan's 3


def test_grown_counts():
    assert grown_counts((3, 1), 5, 3) == (5, 1)
    assert grown_counts((3, 1, 1), 6, 2) == (6, 3, 1)
    assert grown_counts((3, 2), 4, 3) == (4, 2)  # never fewer than planned


def test_bisect_target():
    assert bisect_target(lambda t: t, lambda p: p <= 7, 1, 10) == (7, 7)
    assert bisect_target(lambda t: t, lambda p: p <= 0, 1, 10) == (None, 0)
    assert bisect_target(lambda t: t, lambda p: True, 4, 6) == (6, 6)


# -- the re-plan adjustments, on a stand-in whose fits rule the test sets ------------------------


@dataclass
class FakeAt:
    """Duck-types :class:`RungReplan` for the steps: ``replan`` builds a plan of the counts and
    rungs asked for, ``fits`` applies ``rule``."""

    rule: object
    rungs: tuple[int, ...] = (3, 9)
    rung: int = 1
    ranked: tuple = ()
    epoch_time_s: float = 5.0
    binding: str = "none"
    calls: list = field(default_factory=list)

    def replan(self, counts, rung_list=None, wave=False):
        rung_list = self.rungs if rung_list is None else rung_list
        self.calls.append((tuple(counts), tuple(rung_list), wave))
        return make_plan(tuple(counts), tuple(rung_list), binding=self.binding)

    def fits(self, plan):
        return plan.feasible and self.rule(plan)

    def inputs_for(self, carried, wave):
        return SimpleNamespace(epoch_time_s=self.epoch_time_s, wave_epoch_time_s=2 * self.epoch_time_s)

    def budget_left(self, binding):
        return f"<{binding} left>"


def test_carry_fewer_tries_fractions_until_one_fits():
    at = FakeAt(lambda p: sum(p.survivors) <= 3)
    new, used, reason = carry_fewer(at, make_plan((3, 1), (3, 9)), (3, 1))
    assert used == (2, 1) and new.survivors == (2, 1)  # 0.75 leaves (3, 1): skipped; 0.5 fits
    assert reason.startswith("carried fewer") and "[2, 1] go on to epoch 9" in reason
    assert "next round's jobs would end past the deadline" in reason


def test_carry_fewer_leaves_a_fitting_plan_and_marks_one_that_nothing_fixes():
    plan = make_plan((3, 1), (3, 9))
    assert carry_fewer(FakeAt(lambda p: True), plan, (3, 1)) == (plan, (3, 1), None)
    new, used, reason = carry_fewer(FakeAt(lambda p: False), plan, (3, 1))
    assert used == (3, 1) and reason is None and new.feasible is False and new.survivors == (3, 1)


def test_raise_target_trains_to_the_most_epochs_that_fit():
    at = FakeAt(lambda p: p.target_epochs <= 11)
    new, note = raise_target(at, make_plan((3, 1), (3, 9)), (3, 1), max_epochs=12)
    assert new.target_epochs == 11 and note == "; target raised to epoch 11 (the first plan's: 9)"
    assert all(wave for _, _, wave in at.calls)  # on the slowest survivor's wall clock
    plan = make_plan((3, 1), (3, 12))
    assert raise_target(at, plan, (3, 1), max_epochs=12) == (plan, "")


def test_carry_more_grows_the_next_rung_up_to_half_of_those_ranked():
    ranked = tuple(view(i) for i in range(10))
    at = FakeAt(lambda p: p.survivors[0] <= 4, ranked=ranked, epoch_time_s=5.0)
    new, used, carried, reason = carry_more(at, make_plan((3, 1), (3, 9)), (3, 1), 3, plan_epoch_time_s=8.0)
    assert carried == 4 and used == (4, 1) and new.survivors == (4, 1)
    assert reason.startswith("carried more")
    assert "pay for 4 survivors to epoch 3 where eta's cut keeps 3" in reason
    # Not faster than the plan assumed, or nothing more fits: no change.
    assert carry_more(at, make_plan((3, 1), (3, 9)), (3, 1), 3, plan_epoch_time_s=5.0) is None
    tight = FakeAt(lambda p: p.survivors[0] <= 3, ranked=ranked)
    assert carry_more(tight, make_plan((3, 1), (3, 9)), (3, 1), 3, plan_epoch_time_s=8.0) is None


def test_extend_best_effort_adds_a_round_short_of_the_next_rung():
    at = FakeAt(lambda p: p.target_epochs <= 7, rungs=(3, 9), rung=1)
    prefix = make_plan((3,), (3,))  # the round to 3 fits, the one to 9 does not
    out = extend_best_effort(at, prefix, (3, 2))
    assert out.rungs == (3, 7) and out.survivors == (3, 2) and out.feasible is False
    assert extend_best_effort(FakeAt(lambda p: False), prefix, (3, 2)) is None
    assert extend_best_effort(at, make_plan((3, 1), (3, 9)), (3, 1)) is None  # nothing missing


def test_best_effort_reason_names_what_goes_on():
    at = FakeAt(lambda p: p.target_epochs <= 2, rungs=(3, 9), rung=1)
    new, reason, extended = best_effort(at, make_plan((), (), feasible=False), (3, 1))
    assert extended and new.rungs == (2,) and new.feasible is False
    assert reason == ("best effort: not one survivor reaches epoch 9 within the budgets left; "
                      "1 go on to epoch 2")
    # Not one more epoch fits: no "0 go on to epoch 0".
    at = FakeAt(lambda p: False, rungs=(3, 9), rung=1)
    new, reason, extended = best_effort(at, make_plan((), (), feasible=False), (3, 1))
    assert not extended and new.rounds == ()
    assert reason.endswith("; none goes on: the best stays at epoch 1"), reason


def test_truncation_note_names_the_binding_budget():
    at = FakeAt(lambda p: True, binding="money", rung=3)
    at.replan = lambda counts, rung_list=None, wave=False: make_plan(  # type: ignore[method-assign]
        tuple(counts), tuple(rung_list), feasible=False, binding="money")
    note = truncation_note(at, make_plan((3, 1), (5, 7), message="re-plan"), max_epochs=9)
    assert note.startswith("BEST EFFORT: <money left> at epoch 3 cannot carry a trial past epoch 7")
    assert note.endswith("short of max_epochs (9); the best is trained to epoch 7 of 9 instead. re-plan")
    assert bound_by(make_plan((1,), (3,), feasible=True, binding="money")) == "time"


# -- RungReplan against hand-computed times -------------------------------------------------------


def replan_at(time_left_s: float, epoch_times=(10.0, 20.0, None)) -> RungReplan:
    ctx = PolicyContext(
        max_epochs=9, min_epochs=1, eta=3, max_configurations=9, num_slots=4, world_size_ladder=(1, 2, 4),
        max_world_size=4, epoch_time_s=10.0, scaling=ScalingModel((1, 2, 4), (1.0, 2.0, 4.0)),
        startup_s=5.0, relaunch_s=1.0, resize_s=2.0, time_budget_s=1e6, money_budget_usd=1e6,
        billing=Billing(3.6), safety_fraction=1.0,
    )
    base = planner_inputs_from_context(ctx, time_left_s=time_left_s, money_left_usd=100.0, eta=3,
                                       num_finalists=1)
    ranked = tuple(view(i, {1: 0.9 - i / 10}, epoch_time_s=t) for i, t in enumerate(epoch_times))
    current = RoundPlan(1, 1, 0, 9, 1, 3, 30.0, 0.1)
    remaining = (RoundPlan(2, 3, 1, 3, 1, 1, 20.0, 0.06), RoundPlan(3, 9, 3, 1, 1, 1, 60.0, 0.06))
    return RungReplan(ctx, base, ranked, (3, 9), 1, current, remaining, time_left_s, 100.0)


def test_rung_replan_inputs_use_the_carried_trials_measured_epochs():
    at = replan_at(1000.0)
    assert at.inputs_for(2, False).epoch_time_s == 15.0 and at.inputs_for(2, False).wave_epoch_time_s is None
    assert at.inputs_for(2, True).wave_epoch_time_s == 20.0
    assert at.inputs_for(0, True) is at.base_inputs


def test_rung_replan_next_round_is_list_scheduled_on_each_trials_epoch():
    at = replan_at(1000.0)
    plan = make_plan((3, 1), (3, 9))
    # Round to 3 at W=1 after W=1: relaunch 1 s + 2 epochs each; the third has no measured epoch
    # and takes the inputs' 10 s; 4 lanes: the slowest, 1 + 2 * 20 = 41 s.
    assert at.next_round_s(plan) == 41.0
    # fits: 41 s plus the later round's predicted 10 s against the deadline left.
    assert replan_at(51.5).fits(plan) and not replan_at(51.0).fits(plan)
    assert not at.fits(make_plan((3, 1), (3, 9), feasible=False))


def test_rung_replan_keeps_the_planned_world_sizes_when_they_fit():
    at = replan_at(1000.0)
    plan = at.replan((3, 1))
    assert plan.feasible and plan.rungs == (3, 9) and plan.world_sizes == (1, 1)
    assert [r.index for r in plan.rounds] == [2, 3]


@pytest.mark.parametrize("time_left_s", [0.0, 10.0])
def test_rung_replan_with_no_time_has_no_rounds(time_left_s):
    plan = replan_at(time_left_s).replan((3, 1))
    assert not plan.feasible and plan.rounds == ()


def test_a_replan_that_moves_the_target_prices_the_survivors_next_job_as_a_relaunch():
    # Kept-alive jobs (continue 0.1 s, relaunch 1 s) run the schedule to epoch 9. A plan to 9:
    # the survivors' parked jobs go on. A plan to 7: their config.json changes, so they start
    # again: 1 s each (2 epochs of 20 s, the slowest, plus the overhead, 4 lanes).
    base = replan_at(1000.0)
    ctx = dataclasses.replace(base.ctx, continue_s=0.1)
    inputs = planner_inputs_from_context(ctx, time_left_s=1000.0, money_left_usd=100.0, eta=3,
                                         num_finalists=1)
    one_wave = RoundPlan(1, 1, 0, 3, 1, 1, 30.0, 0.1)  # the 3 ran at once: each parked at the rung
    at = dataclasses.replace(base, ctx=ctx, base_inputs=inputs, current=one_wave, schedule_epochs=9)
    assert at.next_round_s(make_plan((3, 1), (3, 9))) == pytest.approx(0.1 + 2 * 20)
    assert at.next_round_s(make_plan((3, 1), (3, 7))) == pytest.approx(1.0 + 2 * 20)
    assert at.overheads_for(inputs, 9) is inputs and at.overheads_for(inputs, 7).continue_s is None
    # Not knowing the schedule (None): taken to go on, as before.
    unknown = dataclasses.replace(at, schedule_epochs=None)
    assert unknown.next_round_s(make_plan((3, 1), (3, 7))) == pytest.approx(0.1 + 2 * 20)


def test_rung_replan_next_round_waits_for_the_machines_of_a_wider_round():
    # The round just closed: 2 trials at W=1 (2 busy slots), 12 s long. The next round: 1 trial
    # at W=4 (4 slots: new machines, asked for 12 s ago): it waits 30 - 12 = 18 s beyond its
    # resize (2 s) and 2 epochs of 10 s at 4x.
    at = replan_at(1000.0)
    inputs = dataclasses.replace(at.base_inputs, machine_start_s=30.0, previous_round_s=12.0)
    wide = dataclasses.replace(at, base_inputs=inputs, ranked=at.ranked[:2],
                               current=RoundPlan(1, 1, 0, 2, 1, 1, 12.0, 0.1))
    plan = make_plan((1,), (3,))
    plan = dataclasses.replace(plan, rounds=(dataclasses.replace(plan.rounds[0], world_size=4),))
    assert wide.next_round_s(plan) == pytest.approx(2.0 + 2 * 10.0 / 4.0 + 18.0)
    # at W=2 it holds 2 slots, as the round before: no wait
    same = dataclasses.replace(plan, rounds=(dataclasses.replace(plan.rounds[0], world_size=2),))
    assert wide.next_round_s(same) == pytest.approx(2.0 + 2 * 10.0 / 2.0)
    # without a machine start: the same seconds as before
    assert dataclasses.replace(wide, base_inputs=at.base_inputs).next_round_s(plan) == pytest.approx(7.0)
