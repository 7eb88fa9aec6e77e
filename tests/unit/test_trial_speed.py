"""A trial's epoch at W workers (seer_torch/policies/trial_speed.py, ScalingModel.sync_s): a
cheap configuration gains less from a second worker than the probe the speedup was measured on,
and a re-plan sees it; the simulated backend's world follows the same model."""

from __future__ import annotations

import dataclasses

import pytest

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.policies.base import PolicyContext, TrialView
from seer_torch.policies.billing import Billing
from seer_torch.policies.plan_types import planner_inputs_from_context
from seer_torch.policies.seer import RoundPlan
from seer_torch.policies.seer_rounds import RungReplan
from seer_torch.policies.trial_speed import epoch_time_at_s, sync_by_world_s, trials_scaling
from seer_torch.scaling.model import ScalingModel

#: The probe: 10 s an epoch on one worker, 1.6x at W = 2 (6.25 s): 1.25 s of it does not shrink.
PROBE = ScalingModel((1, 2, 4), (1.0, 1.6, 2.5), epoch_time_s=10.0)


def trial(i: int, tau: float | None, by_world: dict[int, float] | None = None,
          score: float = 0.5) -> TrialView:
    return TrialView(f"t{i:03d}", i, "paused", 3, None, None, {3: score}, (1,), tau, by_world or {})


def test_sync_is_the_part_of_the_probes_epoch_that_does_not_shrink():
    assert PROBE.sync_s(1) == 0.0
    assert PROBE.sync_s(2) == pytest.approx(10.0 / 1.6 - 5.0)  # 1.25
    assert PROBE.sync_s(4) == pytest.approx(10.0 / 2.5 - 2.5)  # 1.5
    assert ScalingModel((1, 2), (1.0, 2.0), epoch_time_s=10.0).sync_s(2) == 0.0  # linear: none
    assert ScalingModel((1, 2), (1.0, 1.6)).sync_s(2) is None  # the probe's epoch unknown


def test_a_cheaper_trial_gains_less_and_its_own_measurement_wins():
    sync = sync_by_world_s(PROBE, [], (1, 2, 4))
    assert sync == pytest.approx({2: 1.25, 4: 1.5})
    probe_like, cheap = trial(0, 10.0), trial(1, 5.0)
    assert epoch_time_at_s(probe_like, 2, 7.0, PROBE, sync) == pytest.approx(6.25)  # 10 / 1.6
    assert epoch_time_at_s(cheap, 2, 7.0, PROBE, sync) == pytest.approx(3.75)  # 1.33x, not 1.6x
    assert epoch_time_at_s(cheap, 1, 7.0, PROBE, sync) == 5.0
    assert epoch_time_at_s(trial(2, None), 2, 7.0, PROBE, sync) == pytest.approx(4.75)  # the default's
    # Nearly free: the second worker would make it slower; the model caps it at one worker's.
    assert epoch_time_at_s(trial(3, 1.0), 2, 7.0, PROBE, sync) == 1.0
    # Measured at W = 2: that, whatever the model says.
    assert epoch_time_at_s(trial(4, 5.0, {1: 5.0, 2: 4.6}), 2, 7.0, PROBE, sync) == 4.6
    # Unknown sync (a profile without the probe's epoch): the profile's speedup.
    assert epoch_time_at_s(cheap, 2, 7.0, PROBE, {}) == pytest.approx(5.0 / 1.6)


def test_sync_measured_on_the_runs_trials_replaces_the_profiles():
    measured = [trial(0, 4.0, {1: 4.0, 2: 3.0}), trial(1, 6.0, {1: 6.0, 2: 3.6}),
                trial(2, 8.0, {1: 8.0, 2: 4.8}), trial(3, 5.0, {1: 5.0})]
    # t_2 - t_1 / 2: 1.0, 0.6, 0.8 -> median 0.8; W = 4 was never measured: the profile's.
    assert sync_by_world_s(PROBE, measured, (1, 2, 4)) == pytest.approx({2: 0.8, 4: 1.5})


def test_the_groups_speedup_makes_the_planners_sum_the_trials_own_epochs():
    sync = sync_by_world_s(PROBE, [], (1, 2, 4))
    group = [trial(0, 10.0), trial(1, 5.0)]
    scaling = trials_scaling(group, 7.0, PROBE, sync, (1, 2, 4))
    # (10 + 5) / (6.25 + 3.75) = 1.5: between the probe's 1.6 and the cheap one's 1.33.
    assert scaling.speedup_at(2) == pytest.approx(1.5)
    assert scaling.speedup_at(1) == 1.0
    assert scaling.speedup_at(8) == PROBE.speedup_at(8)  # off the ladder: the profile's
    assert trials_scaling((), 7.0, PROBE, sync, (1, 2)).speedup_at(2) == PROBE.speedup_at(2)


def _rung_replan(finalist_tau: float, time_left_s: float) -> RungReplan:
    """Closing round 2 at epoch 3 (two W = 1 trials) with one round left: the best to epoch 9."""
    ctx = PolicyContext(
        max_epochs=9, min_epochs=1, eta=3, max_configurations=9, num_slots=2, world_size_ladder=(1, 2),
        max_world_size=2, epoch_time_s=10.0, scaling=PROBE, startup_s=5.0, relaunch_s=1.0, resize_s=2.0,
        time_budget_s=1e6, money_budget_usd=1e6, billing=Billing(3.6), safety_fraction=1.0,
    )
    base = planner_inputs_from_context(ctx, time_left_s=time_left_s, money_left_usd=100.0, eta=3,
                                       num_finalists=1)
    ranked = (trial(0, finalist_tau, {1: finalist_tau}, score=0.9), trial(1, 10.0, {1: 10.0}, score=0.8))
    current = RoundPlan(2, 3, 1, 2, 1, 1, 30.0, 0.1)
    remaining = (RoundPlan(3, 9, 3, 1, 2, 1, 60.0, 0.06),)
    sync = sync_by_world_s(ctx.scaling, ranked, ctx.world_size_ladder)
    return RungReplan(ctx, base, ranked, (9,), 3, current, remaining, time_left_s, 100.0, sync)


def test_a_replan_times_a_cheap_finalist_at_w2_by_its_own_gain():
    # The finalist takes 5 s an epoch on one worker: 6 epochs at W = 2 are 6 x 3.75 = 22.5 s and
    # a resize (2 s): 24.5 s. At the profile's 1.6x they would be 6 x 3.125 + 2 = 20.75 s.
    at = _rung_replan(5.0, 1000.0)
    plan = at.replan((1,), wave=False)
    assert plan.feasible and [r.world_size for r in plan.rounds] == [2]
    assert at.next_round_s(plan) == pytest.approx(24.5)
    assert at.inputs_for(1, False).scaling.speedup_at(2) == pytest.approx(5.0 / 3.75)


def test_a_deadline_the_profiles_speedup_would_meet_is_not_planned_at_w2_for_a_cheap_finalist():
    # 23 s left: W = 2 at the profile's 1.6x (20.75 s) would be planned and overrun; its own
    # 1.33x needs 24.5 s, and W = 1 needs 1 + 6 x 5 = 31 s: the last round cannot reach 9.
    at = _rung_replan(5.0, 23.0)
    plan = at.replan((1,), wave=False)
    assert not (plan.feasible and plan.rounds and plan.rounds[-1].rung_epoch == 9 and at.fits(plan))
    # The profile's speedup for every configuration (no sync known) plans it, and it fits.
    blind = dataclasses.replace(at, sync_s={})
    plan = blind.replan((1,), wave=False)
    assert plan.feasible and [(r.world_size, r.rung_epoch) for r in plan.rounds] == [(2, 9)]
    assert blind.fits(plan)


def test_the_simulated_world_follows_the_same_model():
    clock = SimulatedClock()
    backend = SimulatedBackend(2, clock, epoch_time_s=10.0, speedup=PROBE.speedup_at, startup_s=0.0,
                               val_at=lambda i, e: 0.5, epoch_time_at=lambda i: 5.0, sync_s=PROBE.sync_s)
    assert backend.epoch_at_s(5.0, 2) == pytest.approx(3.75)
    assert backend.epoch_at_s(10.0, 2) == pytest.approx(6.25)  # the probe: its own speedup
    assert backend.epoch_at_s(5.0, 1) == 5.0
    plain = SimulatedBackend(2, clock, epoch_time_s=10.0, speedup=PROBE.speedup_at, startup_s=0.0,
                             val_at=lambda i, e: 0.5)
    assert plain.epoch_at_s(5.0, 2) == pytest.approx(5.0 / 1.6)  # without sync_s: as before
