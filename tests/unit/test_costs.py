"""The one cost model (:mod:`seer_torch.policies.costs`) and the one context record the
planner's inputs derive from (:func:`~seer_torch.policies.plan_types.planner_inputs_from_context`)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from seer_torch.errors import ConfigError
from seer_torch.policies.base import PolicyContext, fixed_cluster_slots
from seer_torch.policies.billing import Billing
from seer_torch.policies.costs import (
    Overheads,
    busy_slots,
    cluster_time_limit_s,
    first_wave_jobs,
    job_overhead_s,
    job_time_s,
    largest_fitting_slots,
    list_scheduled_makespan_s,
    machine_wait_s,
    num_waves,
    round_time_s,
    wave_overheads_s,
    waves_cost_usd,
    waves_time_s,
    with_slack,
)
from seer_torch.policies.plan_types import (
    CONTEXT_TO_PLANNER,
    PLANNER_ONLY_FIELDS,
    PlannerInputs,
    planner_inputs_from_context,
)
from seer_torch.policies.seer import plan, replan
from seer_torch.scaling.model import ScalingModel

SCALING = ScalingModel((1, 2, 4), (1.0, 1.8, 3.2))


def test_job_time_is_overhead_plus_epochs_over_speedup():
    assert job_time_s(5.0, 3, 10.0, 1.5) == 25.0
    assert job_time_s(0.0, 0, 10.0, 2.0) == 0.0


def test_job_overhead_first_same_or_other_world_size():
    assert job_overhead_s(True, 2, 2, 9.0, 1.0, 3.0) == 9.0
    assert job_overhead_s(False, 2, 2, 9.0, 1.0, 3.0) == 1.0
    assert job_overhead_s(False, 4, 2, 9.0, 1.0, 3.0) == 3.0


def test_waves_and_round_time():
    assert [num_waves(n, 3) for n in (0, 1, 3, 4, 7)] == [0, 1, 1, 2, 3]
    assert num_waves(5, 0) == 5  # fewer slots than W: one lane
    assert round_time_s(7, 3, 12.5) == 37.5


def test_list_scheduling_makespan():
    assert list_scheduled_makespan_s([], 2) == 0.0
    assert list_scheduled_makespan_s([3.0, 5.0], 4) == 5.0
    # Lane A takes 4; lane B takes 1 then 2 (free at 3); the 6 goes onto B, free first: 3 + 6.
    assert list_scheduled_makespan_s([4.0, 1.0, 2.0, 6.0], 2) == 9.0


def test_with_slack():
    assert with_slack(100.0) == 100.0 + 1e-7
    assert with_slack(0.5) == 0.5 + 1e-9
    assert with_slack(math.inf) == math.inf


def test_cluster_time_limit_follows_the_rent_and_its_rounding():
    hourly = Billing(3.6, granularity_s=3600.0, minimum_s=3600.0)
    # 2 slots at 3.6 USD/h: 7.2 USD buys one billed hour; 5 USD buys none (an hour is the minimum).
    assert cluster_time_limit_s(1e6, 7.2, hourly, 2) == 3600.0
    assert cluster_time_limit_s(1e6, 5.0, hourly, 2) == -1.0
    assert cluster_time_limit_s(900.0, 7.2, hourly, 2) == 900.0
    assert cluster_time_limit_s(1e6, 0.01, Billing(3.6), 2) == pytest.approx(5.0)  # 0.002 USD/s
    assert cluster_time_limit_s(123.0, math.inf, Billing(3.6), 2) == 123.0


def test_largest_fitting_slots():
    price = Billing(3.6)  # 0.001 USD per slot-second
    assert largest_fitting_slots(0.35, 100.0, price, 8) == 3
    assert largest_fitting_slots(0.05, 100.0, price, 8) == 1  # never below one
    assert largest_fitting_slots(math.inf, 100.0, price, 8) == 8
    assert largest_fitting_slots(0.35, math.inf, price, 8) == 1


def context(**over) -> PolicyContext:
    base = dict(
        max_epochs=27, min_epochs=1, eta=None, max_configurations=40, num_slots=8,
        world_size_ladder=(1, 2, 4), max_world_size=4, epoch_time_s=10.0, scaling=SCALING,
        startup_s=5.0, relaunch_s=1.0, resize_s=3.0, time_budget_s=600.0, money_budget_usd=2.0,
        billing=Billing(3.6, granularity_s=60.0, minimum_s=60.0), safety_fraction=0.8, num_finalists=None,
        min_configurations=5,
    )
    base.update(over)
    return PolicyContext(**base)


def test_every_context_field_is_mapped_and_every_planner_field_derived():
    ctx_fields = {f.name for f in dataclasses.fields(PolicyContext)}
    planner_fields = {f.name for f in dataclasses.fields(PlannerInputs)}
    assert set(CONTEXT_TO_PLANNER) == ctx_fields
    mapped = {p for targets in CONTEXT_TO_PLANNER.values() for p in targets}
    assert mapped | set(PLANNER_ONLY_FIELDS) == planner_fields
    assert not mapped & set(PLANNER_ONLY_FIELDS)


def test_planner_inputs_from_context_values_and_overrides():
    ctx = context()
    inputs = planner_inputs_from_context(ctx)
    billing = (inputs.price_usd_per_slot_hour, inputs.billing_granularity_s, inputs.billing_minimum_s)
    assert billing == (3.6, 60.0, 60.0)
    open_choices = (inputs.eta, inputs.num_finalists, inputs.min_configurations, inputs.max_world_size)
    assert open_choices == (None, None, 5, 4)
    assert (inputs.relaunch_s, inputs.resize_s, inputs.wave_epoch_time_s) == (1.0, 3.0, None)
    left = planner_inputs_from_context(ctx, time_left_s=-5.0, money_left_usd=1.5, epoch_time_s=12.0,
                                       overhead_s=2.0, eta=2)
    assert (left.time_budget_s, left.money_budget_usd, left.epoch_time_s) == (0.0, 1.5, 12.0)
    assert (left.relaunch_s, left.resize_s, left.eta, left.startup_s) == (2.0, 2.0, 2, 5.0)


def test_planner_inputs_from_context_refuses_an_unknown_override():
    with pytest.raises(TypeError, match="wave_epoch_times"):
        planner_inputs_from_context(context(), wave_epoch_times=1.0)


def test_fixed_cluster_slots_is_the_cost_models_largest_fitting_cluster():
    ctx = context(time_budget_s=100.0, money_budget_usd=0.35, billing=Billing(3.6))
    assert fixed_cluster_slots(ctx) == 3


# -- the overheads of the cloud model: cold starts, warm workers, kept-alive continuations ---------

ALIVE = Overheads(startup_s=4.0, relaunch_s=3.0, resize_s=5.0, continue_s=0.1, warm_start_s=0.5)
EXITING = Overheads(startup_s=4.0, relaunch_s=3.0, resize_s=5.0)


def test_a_first_round_starts_cold_then_finds_warm_workers_at_w1():
    assert wave_overheads_s(ALIVE, 1, None) == (4.0, 0.5)
    assert wave_overheads_s(ALIVE, 2, None) == (4.0, 4.0)  # wider parked jobs take no other trial
    assert wave_overheads_s(dataclasses.replace(ALIVE, warm_start_s=None), 1, None) == (4.0, 4.0)
    assert wave_overheads_s(EXITING, 1, None) == (4.0, 4.0)


def test_a_continuation_at_the_same_w_costs_continue_s_and_a_resize_resize_s():
    assert wave_overheads_s(ALIVE, 2, 2, previous_in_one_wave=True) == (0.1, 0.1)
    assert wave_overheads_s(ALIVE, 2, 1, previous_in_one_wave=True) == (5.0, 5.0)
    # After several waves a survivor's job may have gone to another trial: a warm worker at W=1,
    # a relaunch wider (an upper bound: some survivors find their own parked job).
    assert wave_overheads_s(ALIVE, 1, 1) == (0.5, 0.5)
    assert wave_overheads_s(ALIVE, 2, 2) == (3.0, 3.0)
    # Jobs that exit at every rung relaunch, whatever the waves.
    assert wave_overheads_s(EXITING, 2, 2, previous_in_one_wave=True) == (3.0, 3.0)
    assert wave_overheads_s(EXITING, 1, 1) == (3.0, 3.0)
    assert wave_overheads_s(EXITING, 4, 2) == (5.0, 5.0)


def test_a_w1_round_of_six_trials_on_two_slots_pays_two_cold_starts_and_four_warm_ones():
    first, later = wave_overheads_s(ALIVE, 1, None)
    cold_s, warm_s = job_time_s(first, 1, 10.0, 1.0), job_time_s(later, 1, 10.0, 1.0)
    assert (cold_s, warm_s) == (14.0, 10.5)
    assert first_wave_jobs(6, 2) == 2
    assert waves_time_s(6, 2, cold_s, warm_s) == 14.0 + 2 * 10.5  # three synchronous waves
    assert waves_cost_usd(6, 2, cold_s, warm_s) == 2 * 14.0 + 4 * 10.5  # slot-seconds at 1 USD each
    # Equal waves: the single-overhead formulas, exactly.
    assert waves_time_s(6, 2, 14.0, 14.0) == round_time_s(6, 2, 14.0) == 42.0
    assert waves_cost_usd(6, 2, 14.0, 14.0) == 6 * 14.0
    assert waves_time_s(0, 2, 14.0, 10.5) == 0.0 and waves_cost_usd(1, 2, 14.0, 10.5) == 14.0


def test_context_and_planner_inputs_carry_the_kept_alive_overheads():
    assert (context().continue_s, context().warm_start_s) == (None, None)  # default: jobs exit
    assert context().overheads == Overheads(5.0, 1.0, 3.0)
    ctx = context(continue_s=0.2, warm_start_s=0.7)
    assert ctx.overheads == Overheads(5.0, 1.0, 3.0, 0.2, 0.7)
    inputs = planner_inputs_from_context(ctx)
    assert inputs.overheads == ctx.overheads
    # A re-plan's measured continuation and warm start replace the planned ones, each its own...
    measured = planner_inputs_from_context(ctx, overhead_s=2.0, continue_overhead_s=0.05)
    assert measured.overheads == Overheads(5.0, 2.0, 2.0, 0.05, 0.7)
    warm = planner_inputs_from_context(ctx, continue_overhead_s=0.05, warm_start_overhead_s=0.12)
    assert warm.overheads == Overheads(5.0, 1.0, 3.0, 0.05, 0.12)
    # ... and never give a backend without kept-alive jobs an ability it lacks.
    plain = planner_inputs_from_context(context(), continue_overhead_s=0.05, warm_start_overhead_s=0.12)
    assert (plain.continue_s, plain.warm_start_s) == (None, None)
    with pytest.raises(ConfigError, match="continue_s"):
        dataclasses.replace(inputs, continue_s=-1.0)
    with pytest.raises(ConfigError, match="warm_start_s"):
        dataclasses.replace(inputs, warm_start_s=math.inf)


def _inputs(**over) -> PlannerInputs:
    base = dict(
        max_epochs=9, min_epochs=1, eta=3, max_configurations=200, num_slots=2, world_size_ladder=(1, 2),
        epoch_time_s=1.0, scaling=ScalingModel((1, 2), (1.0, 1.8)), startup_s=4.0, relaunch_s=4.0,
        resize_s=4.0, time_budget_s=120.0, money_budget_usd=math.inf, price_usd_per_slot_hour=3.6,
        safety_fraction=1.0,
    )
    base.update(over)
    return PlannerInputs(**base)


def test_the_planner_prices_rounds_with_warm_workers_and_continuations():
    alive = _inputs(continue_s=0.1, warm_start_s=0.5)
    # Rungs 1, 3, 9 at W=1 with 6, 2, 1 trials on 2 slots: round 1 starts 2 cold and 4 warm
    # jobs; round 2 follows three waves, so its 2 survivors are priced on warm workers; round 3
    # follows one wave: its survivor's parked job continues.
    p = replan(alive, rungs=(1, 3, 9), survivors=(6, 2, 1), current_epoch=0, current_world_size=0,
               planned_world_sizes=(1, 1, 1))
    durations = [r.predicted_duration_s for r in p.rounds]
    assert durations == pytest.approx([(4.0 + 1) + 2 * (0.5 + 1), 0.5 + 2, 0.1 + 6])
    usd_per_slot_s = 3.6 / 3600
    costs = [r.predicted_cost_usd / usd_per_slot_s for r in p.rounds]
    assert costs == pytest.approx([2 * 5.0 + 4 * 1.5, 2 * 2.5, 6.1])
    # The same rounds where jobs exit at every rung: every job starts processes.
    p = replan(_inputs(), rungs=(1, 3, 9), survivors=(6, 2, 1), current_epoch=0, current_world_size=0,
               planned_world_sizes=(1, 1, 1))
    assert [r.predicted_duration_s for r in p.rounds] == pytest.approx([3 * 5.0, 6.0, 10.0])
    # A resize relaunches: a last round at W=2 costs resize_s, kept alive or not.
    p = replan(alive, rungs=(3, 9), survivors=(2, 1), current_epoch=1, current_world_size=1,
               planned_world_sizes=(1, 2), previous_num_trials=2)
    assert [r.predicted_duration_s for r in p.rounds] == pytest.approx([0.1 + 2, 4.0 + 6 / 1.8])


def test_cheaper_starts_let_seer_explore_more_in_the_same_deadline():
    exiting, alive = plan(_inputs()), plan(_inputs(continue_s=0.1, warm_start_s=0.5))
    assert exiting.feasible and alive.feasible
    assert alive.num_configurations > 2 * exiting.num_configurations
    assert alive.predicted_time_s <= 120.0


def test_busy_slots_and_the_wait_for_machines():
    assert busy_slots(9, 1, 4) == 4 and busy_slots(3, 2, 8) == 6 and busy_slots(1, 8, 8) == 8
    assert busy_slots(0, 2, 8) == 0
    # a round holding more slots than the one before waits what the round before left of the start
    assert machine_wait_s(30.0, 8, 4, 12.0) == 18.0
    assert machine_wait_s(30.0, 8, 4, 45.0) == 0.0  # booted while the round before ran
    assert machine_wait_s(30.0, 4, 4, 0.0) == 0.0  # no more slots: no new machine
    assert machine_wait_s(30.0, 3, 0, 0.0) == 30.0  # a run's first round: the whole start
    assert machine_wait_s(None, 8, 0, 0.0) == 0.0 and machine_wait_s(0.0, 8, 0, 0.0) == 0.0
