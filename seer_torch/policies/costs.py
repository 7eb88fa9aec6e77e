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

- one job: ``J = overhead_s + d * tau / s(W)`` seconds (:func:`job_time_s`);
- the overhead is one of the cloud model's (docs/design.md, "The cloud model"; the split is
  ours), :class:`Overheads`: a process start (``startup_s`` cold for a trial's first job,
  ``relaunch_s`` for a later job at the previous job's ``W``, ``resize_s`` at another), or,
  where the backend keeps jobs alive, no process start at all (``continue_s``, a parked job
  handed its next rung at the same ``W``; ``warm_start_s``, a ``W = 1`` job on the warm
  worker another trial's parked job left). Which one a round's jobs pay is
  :func:`wave_overheads_s` (its first wave and its later waves may differ);
- one round of ``n`` such jobs on ``S`` slots: ``S // W`` run at once, so it takes
  ``waves = ceil(n / (S // W))`` waves (:func:`num_waves`) and ``J_first + (waves - 1) *
  J_later`` seconds (:func:`waves_time_s`; ``waves * J`` when every wave pays the same,
  :func:`round_time_s`): waves are synchronous, the round ends with its last job;
- jobs of different lengths launched in order as slots free up (list scheduling, Graham 1966):
  the wall clock is the busiest lane's (:func:`list_scheduled_makespan_s`);
- money: each job is one rental of ``W`` slots, ``price / 3600 * W * billed(J)``
  (:class:`~.billing.Billing`, :func:`~.billing.billed_seconds`); a fixed cluster of ``G``
  slots is one rental for the whole run (:func:`cluster_time_limit_s`, :func:`largest_fitting_slots`);
- machines (a cluster that rents them, issue 17): a round whose busy slots
  (:func:`busy_slots`) exceed the previous round's needs new machines, asked for when the
  previous round started, so they boot while it runs; its first wave waits
  ``max(0, machine_start_s - D_{k-1})`` beyond its job overhead, the first round of a run the
  whole ``machine_start_s`` (:func:`machine_wait_s`). Wall clock only: a machine is not billed
  before it exists, and the jobs start once it does.

A prediction fits a limit with 1e-9 relative slack (:func:`with_slack`) so that float round-off
in a sum of durations never flips a plan that is exactly on its limit.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

from seer_torch.policies.billing import EXACT, Billing, billed_seconds

__all__ = [
    "Billing",
    "EXACT",
    "Overheads",
    "REL_TOL",
    "WARM_WORLD_SIZE",
    "billed_seconds",
    "busy_slots",
    "first_wave_jobs",
    "job_overhead_s",
    "job_time_s",
    "list_scheduled_makespan_s",
    "machine_wait_s",
    "num_waves",
    "cluster_time_limit_s",
    "largest_fitting_slots",
    "round_time_s",
    "wave_overheads_s",
    "waves_cost_usd",
    "waves_time_s",
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
    """The overhead of a job that starts processes, seconds: ``startup_s`` for a trial's first
    job, else ``relaunch_s`` when ``world_size == previous_world_size`` and ``resize_s``
    otherwise. (A backend that keeps jobs alive: :func:`wave_overheads_s`.)"""
    if first_job:
        return startup_s
    return relaunch_s if world_size == previous_world_size else resize_s


#: Warm workers are ``W = 1`` jobs: a parked job of one worker takes another trial's job (the
#: way Ray Tune reuses an actor); a wider parked job continues only its own trial.
WARM_WORLD_SIZE = 1


@dataclass(frozen=True)
class Overheads:
    """A job's fixed seconds by how its processes start (docs/design.md, "The cloud model"; the
    split is ours). Each is the time from the job's launch (or its continuation) to its first
    step, plus its exit, seconds, ``>= 0``.

    Attributes:
        startup_s: a cold start: a trial's first job in new processes (torchrun, imports, data
            load, rendezvous).
        relaunch_s: new processes for a later job of a trial at its previous job's ``W``, from
            its checkpoint.
        resize_s: new processes at another ``W``, from the checkpoint.
        continue_s: a kept-alive job handed the same trial's next rung at the same ``W``: no
            process start (the decision's latency, about nothing). ``None``: the backend keeps
            no jobs alive; a job exits at its rung and its continuation is a relaunch.
        warm_start_s: a ``W = 1`` job on the warm worker another trial's parked job left
            (torch and the data already loaded; the trial's model built and its checkpoint
            read). ``None``: no warm workers; such a job starts cold (``startup_s`` for a
            trial's first job, ``relaunch_s`` for a later one).
    """

    startup_s: float
    relaunch_s: float
    resize_s: float
    continue_s: float | None = None
    warm_start_s: float | None = None

    @property
    def keeps_jobs_alive(self) -> bool:
        """Whether a job parks at its rung (``continue_s`` is known)."""
        return self.continue_s is not None

    def continuation_s(self) -> float:
        """A trial's next job at the same ``W`` whose job parked at the rung: ``continue_s``, or
        ``relaunch_s`` where jobs exit at every rung."""
        return self.relaunch_s if self.continue_s is None else self.continue_s

    def warm_s(self, first_job: bool) -> float:
        """A ``W = 1`` job on another trial's warm worker: ``warm_start_s``; without warm
        workers the cold start it is instead (``startup_s`` for a trial's first job,
        ``relaunch_s`` for a later one)."""
        if self.warm_start_s is not None:
            return self.warm_start_s
        return self.startup_s if first_job else self.relaunch_s


def wave_overheads_s(
    o: Overheads, world_size: int, previous_world_size: int | None, previous_in_one_wave: bool = False
) -> tuple[float, float]:
    """The overhead of a round's jobs, seconds: ``(first wave, later waves)``.

    The first wave is the round's first ``num_slots // world_size`` jobs
    (:func:`first_wave_jobs`); the later waves take the slots the earlier jobs held.

    Args:
        o: the overheads.
        world_size: the round's ``W``.
        previous_world_size: ``W`` of the trials' previous round; ``None`` when it is their
            first (a fresh plan's first round).
        previous_in_one_wave: the previous round, at the same ``W``, ran all its jobs in one
            wave, so that every survivor's job parked at the rung and none was taken by another
            trial (kept-alive jobs only).

    Returns:
        - a first round: the first wave starts cold (``startup_s``); the later waves, at
          ``W = 1``, find the warm workers the first wave's parked jobs left
          (:meth:`Overheads.warm_s`), at a wider ``W`` they start cold too;
        - at another ``W`` than the previous round: ``resize_s`` for every job;
        - at the same ``W``: :meth:`Overheads.continuation_s` for every job when the previous
          round ran in one wave or jobs exit at every rung; otherwise a survivor's job may
          have been taken by a later wave, and the round is priced at what such a survivor
          pays, an upper bound (a warm worker at ``W = 1``, a relaunch wider). A parked job
          the executor releases while it waits (its rent-or-buy rule) relaunches instead; the
          model does not predict those, nor the waits a parked job is billed.

    Source: SEER (SoCC 2021), section 3's round cost; the split of the overhead is ours
    (docs/design.md, "The cloud model").
    """
    if previous_world_size is None:
        later = o.warm_s(True) if world_size == WARM_WORLD_SIZE else o.startup_s
        return o.startup_s, later
    if world_size != previous_world_size:
        return o.resize_s, o.resize_s
    if previous_in_one_wave or not o.keeps_jobs_alive:
        s = o.continuation_s()
        return s, s
    s = o.warm_s(False) if world_size == WARM_WORLD_SIZE else o.relaunch_s
    return s, s


def first_wave_jobs(num_jobs: int, num_lanes: int) -> int:
    """How many of a round's ``num_jobs`` jobs run in its first wave on ``num_lanes`` lanes:
    ``min(num_jobs, max(1, num_lanes))``."""
    return min(num_jobs, max(1, num_lanes))


def waves_time_s(num_jobs: int, num_lanes: int, first_job_s: float, later_job_s: float) -> float:
    """Wall clock of a round whose first wave's jobs take ``first_job_s`` seconds and the later
    waves' ``later_job_s``: ``first_job_s + (waves - 1) * later_job_s`` (synchronous waves;
    :func:`round_time_s` when both are equal; 0 for no jobs)."""
    if first_job_s == later_job_s:
        return round_time_s(num_jobs, num_lanes, first_job_s)
    waves = num_waves(num_jobs, num_lanes)
    return first_job_s + (waves - 1) * later_job_s if waves else 0.0


def waves_cost_usd(num_jobs: int, num_lanes: int, first_usd: float, later_usd: float) -> float:
    """Money of a round whose first wave's jobs cost ``first_usd`` each and the later ones
    ``later_usd`` (USD): ``k * first_usd + (num_jobs - k) * later_usd`` with ``k`` =
    :func:`first_wave_jobs`; ``num_jobs * first_usd`` when both are equal."""
    if first_usd == later_usd:
        return num_jobs * first_usd
    k = first_wave_jobs(num_jobs, num_lanes)
    return k * first_usd + (num_jobs - k) * later_usd


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


def busy_slots(num_jobs: int, world_size: int, num_slots: int) -> int:
    """Slots a round of ``num_jobs`` jobs of ``world_size`` slots holds at once on ``num_slots``
    slots: ``min(num_jobs, max(1, num_slots // world_size)) * world_size`` (0 for no jobs)."""
    return min(num_jobs, max(1, num_slots // world_size)) * world_size if num_jobs > 0 else 0


def machine_wait_s(
    machine_start_s: float | None, busy: int, previous_busy: int, previous_round_s: float
) -> float:
    """Seconds a round's first wave waits for machines the cluster does not hold yet, beyond
    its job overhead.

    Args:
        machine_start_s: one machine's start, from the request that asks for it to the cluster
            offering its slots, seconds; ``None`` or 0: machines need no waiting (the local
            backend, a fixed cluster).
        busy: the round's busy slots (:func:`busy_slots`).
        previous_busy: the previous round's (0 for a run's first round: nothing is held).
        previous_round_s: how long the previous round runs, seconds: its machines were asked
            for when it started (0 for a run's first round: asked for at its start).

    Returns:
        ``max(0, machine_start_s - previous_round_s)`` when ``busy > previous_busy`` (the round
        needs new machines), else 0.0.
    """
    if not machine_start_s or busy <= previous_busy:
        return 0.0
    return max(0.0, machine_start_s - previous_round_s)


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
