"""The cost model every policy plans with: job time, round time with waves, makespan, billing.

One place for the formulas that the SEER planner (:mod:`.plan_search`, :mod:`.replan`), the SEER
policy (:mod:`.seer_policy`), the baselines (:mod:`.baselines`, :mod:`.asha`, :mod:`.oracle`) and
``seer plan`` use to *predict* what a plan costs. The simulated backend's own job timing is the
simulated world (its ground truth), not a prediction, and does not live here. Pure: no clock,
files or processes.

Formulas (SEER, ACM SoCC 2021, section 3, "cost model"; its closed form is ours, see
:mod:`.seer`'s implementation notes). With ``tau`` = one epoch (training + validation) on one
worker in seconds, ``s(W)`` the speedup of ``W`` workers (:class:`~seer_torch.scaling.model.
ScalingModel`) and ``d`` the epochs a job trains:

- one job: ``J = overhead_s + d * tau / s(W)`` seconds (:func:`job_time_s`), where the overhead
  is ``startup_s`` for a trial's first job, ``relaunch_s`` at the previous job's ``W`` and
  ``resize_s`` at another (:func:`job_overhead_s`);
- one round of ``n`` such jobs on ``S`` slots: ``S // W`` run at once, so it takes
  ``waves = ceil(n / (S // W))`` waves (:func:`num_waves`) and ``waves * J`` seconds
  (:func:`round_time_s`): waves are synchronous, the round ends with its last job;
- jobs of different lengths launched in order as slots free up (list scheduling, Graham 1966):
  the wall clock is the busiest lane's (:func:`list_scheduled_makespan_s`);
- money: each job is one rental of ``W`` slots, ``price / 3600 * W * billed(J)``
  (:class:`~.billing.Billing`, :func:`~.billing.billed_seconds`); a fixed cluster of ``G``
  slots is one rental for the whole run (:func:`cluster_time_limit_s`, :func:`largest_fitting_slots`).

A prediction fits a limit with 1e-9 relative slack (:func:`with_slack`) so that float round-off
in a sum of durations never flips a plan that is exactly on its limit.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

from seer_torch.policies.billing import EXACT, Billing, billed_seconds

__all__ = [
    "Billing",
    "EXACT",
    "REL_TOL",
    "billed_seconds",
    "job_overhead_s",
    "job_time_s",
    "list_scheduled_makespan_s",
    "num_waves",
    "cluster_time_limit_s",
    "largest_fitting_slots",
    "round_time_s",
    "with_slack",
]

#: Relative slack when comparing a prediction with a limit (float round-off in sums).
REL_TOL = 1e-9


def job_time_s(overhead_s: float, epochs: float, epoch_time_s: float, speedup: float) -> float:
    """One job's predicted seconds: ``overhead_s + epochs * epoch_time_s / speedup``.

    Args:
        overhead_s: the job's fixed cost (launch to first step, plus exit), seconds.
        epochs: epochs the job trains (``>= 0``).
        epoch_time_s: ``tau``, one epoch on one worker, seconds.
        speedup: ``s(W)`` of the job's world size (``> 0``).

    Source: SEER (SoCC 2021), section 3's job time; the overhead split is ours (docs/design.md,
    "The cloud model").
    """
    return overhead_s + epochs * epoch_time_s / speedup


def job_overhead_s(
    first_job: bool, world_size: int, previous_world_size: int | None,
    startup_s: float, relaunch_s: float, resize_s: float,
) -> float:
    """The overhead of a job, seconds: ``startup_s`` for a trial's first job, else
    ``relaunch_s`` when ``world_size == previous_world_size`` and ``resize_s`` otherwise."""
    if first_job:
        return startup_s
    return relaunch_s if world_size == previous_world_size else resize_s


def num_waves(num_jobs: int, num_lanes: int) -> int:
    """``ceil(num_jobs / num_lanes)``: batches of jobs run one after another when
    ``num_lanes`` (``num_slots // W``, at least 1) run at once."""
    return -(-num_jobs // max(1, num_lanes))


def round_time_s(num_jobs: int, num_lanes: int, job_s: float) -> float:
    """Wall clock of a round of ``num_jobs`` equal jobs of ``job_s`` seconds on ``num_lanes``
    lanes: ``num_waves * job_s`` (synchronous waves)."""
    return num_waves(num_jobs, num_lanes) * job_s


def list_scheduled_makespan_s(job_s: Sequence[float], num_lanes: int) -> float:
    """Wall clock of jobs of ``job_s`` seconds each, launched in that order on ``num_lanes``
    lanes (``num_slots // W``) as lanes free up (list scheduling): the busiest lane's seconds;
    0 for no jobs."""
    job_s = list(job_s)
    if len(job_s) <= num_lanes:
        return max(job_s, default=0.0)
    lanes = [0.0] * max(1, num_lanes)  # a heap: the lane that frees up first is on top
    for d in job_s:
        heapq.heapreplace(lanes, lanes[0] + d)
    return max(lanes)


def with_slack(limit: float) -> float:
    """``limit`` plus :data:`REL_TOL` relative slack (``limit`` itself when infinite)."""
    return limit + REL_TOL * max(1.0, limit) if math.isfinite(limit) else limit


def cluster_time_limit_s(
    time_limit_s: float, money_limit_usd: float, billing: Billing, slots: int
) -> float:
    """The longest run a fixed cluster of ``slots`` slots may plan, seconds.

    Args:
        time_limit_s: the time a plan may use (``safety_fraction * time_budget_s``, with slack).
        money_limit_usd: the money a plan may use (with slack).
        billing: price and rounding.
        slots: the cluster's size.

    Returns:
        The smaller of ``time_limit_s`` and the longest duration ``D`` whose rent
        ``billing.job_cost_usd(slots, D)`` fits ``money_limit_usd`` (granularity and minimum
        included: :meth:`~.billing.Billing.max_job_seconds`); ``-1.0`` when not even the rent's
        minimum fits (nothing does).
    """
    longest = billing.max_job_seconds(max(1, slots), money_limit_usd)
    if longest is None:
        return -1.0
    return min(time_limit_s, longest)


def largest_fitting_slots(money_usd: float, time_s: float, billing: Billing, num_slots: int) -> int:
    """The largest ``G <= num_slots`` whose rent for ``time_s`` seconds fits ``money_usd``, at
    least 1: ``floor(money_usd / billing.job_cost_usd(1, time_s))`` (docs/design.md, "Baselines")."""
    if not math.isfinite(money_usd):
        return num_slots
    per_slot = billing.job_cost_usd(1, time_s) if math.isfinite(time_s) else math.inf
    if per_slot <= 0:
        return num_slots
    if not math.isfinite(per_slot):
        return 1
    return max(1, min(num_slots, int(money_usd / per_slot + 1e-9)))
