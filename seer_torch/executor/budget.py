"""Time and money: the meter (what was spent, read from the injected clock) and the hard
limits (the deadline less the grace to write the answer; the money budget, counting what the
running jobs will have cost by the next check and their stop).

Money: each job holds ``W`` slots from launch to exit and is billed by
:class:`~seer_torch.policies.billing.Billing` (``price x W x billed_seconds(duration)``); a
policy that reserves a fixed cluster of ``G`` slots is billed ``G`` slots from its set-up to
the end of the run instead; on a cluster backend (Ray) the machines it holds are billed instead
of the jobs (:mod:`seer_torch.executor.held_nodes`), and the jobs' cost is what was used. Time
is the injected clock's, from the start of the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from seer_torch.backends.base import Backend, JobResult
from seer_torch.clock import Clock
from seer_torch.config import Experiment
from seer_torch.executor.held_nodes import HeldNodes
from seer_torch.policies.billing import Billing

POLL_S = 0.05  # how often running jobs are looked at; a parked one waits for this, half on average
HANG_CHECK_S = 2.0  # how often a running job's progress is looked at
LIMIT_TOL_S = 1e-6  # simulated backends: how close to a hard limit the executor stops jobs
NEW_JOB_S = 1e-6  # a job about to start is billed as if it had run this long (its first increment)
FINAL_GRACE_S = 3.0  # stop jobs this long before the deadline, to write the answer in time
STOP_MARGIN_S = 1.0  # money check: what a stop takes after the check that orders it, at least
# (a backend that says how long its stop can take, ``max_stop_s``, gets that instead)

# Jobs holding slots as ``(start_s, world_size)``, or ``(start_s, world_size, rental_start_s)``
# for a kept-alive job's segment: billing's minimum and granularity apply to the whole rental.
Held = list[tuple]


def experiment_billing(exp: Experiment) -> Billing:
    """The experiment's price and billing rounding."""
    b = exp.budget
    return Billing(
        b.price_usd_per_slot_hour,
        float(getattr(b, "billing_granularity_s", 0.0) or 0.0),
        float(getattr(b, "billing_minimum_s", 0.0) or 0.0),
    )


class Meter:
    """Time and money spent, read from the injected clock.

    Args:
        clock: the run's clock.
        price_usd_per_slot_hour: price of one slot-hour (used when ``billing`` is not given).
        billing: price and rounding rules (:class:`~seer_torch.policies.billing.Billing`).
    """

    def __init__(
        self, clock: Clock, price_usd_per_slot_hour: float = 0.0, billing: Billing | None = None
    ) -> None:
        self.clock = clock
        self.billing = billing or Billing(price_usd_per_slot_hour)
        self.price = self.billing.price_usd_per_slot_hour
        self.start_s = clock.now()
        self.finished_slot_s = 0.0  # slot-seconds held by finished jobs (unrounded)
        self.finished_usd = 0.0
        self.reserved: tuple[int, float] | None = None  # (slots, since_s): a rented fixed cluster
        # A cluster's machines, billed instead of the jobs (the jobs' cost is then what was used).
        self.held_nodes: HeldNodes | None = None
        self.held_nodes_carried_usd = 0.0  # what the nodes cost before a resume

    def elapsed_s(self) -> float:
        return self.clock.now() - self.start_s

    def reserve(self, slots: int) -> None:
        """From now on bill ``slots`` slots for the rest of the run, whatever runs."""
        self.reserved = (slots, self.clock.now())

    def bill(self, result: JobResult) -> float:
        """Bill a finished job; returns its cost in USD (0 under a reserved cluster)."""
        self.finished_slot_s += result.slot_seconds
        if self.reserved is not None and result.start_s >= self.reserved[1]:
            return 0.0
        usd = self._segment_usd(result.spec.world_size, result.start_s, result.end_s, result.rental_start_s)
        self.finished_usd += usd
        return usd

    def _segment_usd(
        self, world_size: int, start_s: float, end_s: float, rental_start_s: float | None
    ) -> float:
        """What the segment ``[start_s, end_s]`` of a rental that began at ``rental_start_s``
        (``None``: at ``start_s``) adds to the bill: the rental's cost through ``end_s`` less its
        cost through ``start_s``, so that the segments of one kept-alive job are billed as the
        one rental the cloud bills (one minimum, one rounding)."""
        if rental_start_s is None or rental_start_s >= start_s:
            return self.billing.job_cost_usd(world_size, end_s - start_s)
        return self.billing.job_cost_usd(world_size, end_s - rental_start_s) - self.billing.job_cost_usd(
            world_size, start_s - rental_start_s
        )

    def bill_held(self, world_size: int, held_s: float) -> float:
        """Bill a job known only by its slots and how long it held them (one a dead tuner left
        running): its slot-seconds, and its cost unless a rented cluster already pays for it.
        Returns that cost, USD."""
        self.finished_slot_s += held_s * world_size
        if self.reserved is not None:
            return 0.0
        usd = self.billing.job_cost_usd(world_size, held_s)
        self.finished_usd += usd
        return usd

    def cost_usd(self, running: Held = (), at_s: float | None = None) -> float:  # type: ignore[assignment]
        """Money spent by ``at_s`` (default now) if the running jobs (``(start_s, world_size)``
        each) were stopped then, billing rounding included; on a cluster, what its machines
        cost by then (held through ``at_s``), whatever runs."""
        now = self.clock.now() if at_s is None else at_s
        if self.held_nodes is not None:  # the cluster's machines, whatever runs on them
            return self.held_nodes_carried_usd + self.held_nodes.cost_usd(now)
        usd = self.finished_usd
        if self.reserved is not None:
            slots, since = self.reserved
            usd += self.billing.job_cost_usd(slots, now - since)
            running = [r for r in running if r[0] < since]
        if self.billing.granularity_s == 0 and self.billing.minimum_s == 0:  # exact billing
            return usd + self.price / 3600.0 * sum(r[1] * max(0.0, now - r[0]) for r in running)
        return usd + sum(self._segment_usd(r[1], r[0], now, r[2] if len(r) > 2 else None) for r in running)


class Limits:
    """The hard limits, whatever the policy says: the deadline less :data:`FINAL_GRACE_S`, and
    the money budget counting the running jobs (``held()``) as billed through the next check
    and the stop it may order.

    Args:
        exp: the experiment (its ``budget``).
        meter: the run's meter (its ``start_s`` may move when a run starts or resumes).
        backend: its declared ``discrete_events`` and ``max_stop_s``, and ``num_slots``.
        held: the running jobs now, ``(start_s, world_size)`` each.
    """

    def __init__(self, exp: Experiment, meter: Meter, backend: Backend, held: Callable[[], Held]) -> None:
        self.budget = exp.budget
        self.meter = meter
        self.clock = meter.clock
        self.backend = backend
        self.held = held

    def deadline_s(self) -> float:
        """When jobs are stopped to write the answer in time, on the clock (seconds)."""
        return self.meter.start_s + self.budget.time_budget_s - FINAL_GRACE_S

    def time_left_s(self) -> float:
        """Seconds to the deadline less the grace (negative once past it)."""
        return self.budget.time_budget_s - self.meter.elapsed_s() - FINAL_GRACE_S

    def money_margin_s(self) -> float:
        """Seconds of running jobs the money check bills ahead: to the next check and through
        the stop it may order (the backend's ``max_stop_s``: the local backend's SIGTERM grace
        plus a second), so the money budget holds even when a stop is slow. Simulated jobs stop
        at the instant they are told to: no margin."""
        if self.backend.discrete_events:
            return 0.0
        return POLL_S + max(STOP_MARGIN_S, float(self.backend.max_stop_s))

    def money_reserve_usd(self) -> float:
        """Money kept out of what policies plan with: what every slot costs over the money
        check's margin (:meth:`money_margin_s`), so that a plan that spends its whole share is
        not stopped by the check before its last round ends. 0 on simulated backends."""
        return self.budget.price_usd_per_slot_hour / 3600.0 * self.backend.num_slots * self.money_margin_s()

    def new_job(self, world_size: int) -> Held:
        """A job about to start, as the money check counts it: billed its first increment (and
        billing's minimum) at once; nothing extra inside a rented fixed cluster, or on a cluster
        billed by its machines."""
        if self.meter.reserved is not None or self.meter.held_nodes is not None:
            return []
        return [(self.clock.now() - NEW_JOB_S, world_size)]

    def over_budget(self, at_s: float | None = None, extra: Held = ()) -> str | None:  # type: ignore[assignment]
        """Whether a hard limit is reached at ``at_s`` (default now): the deadline less the grace
        to write the answer, or the money the held slots (and ``extra`` jobs about to start,
        ``(start_s, world_size)``) will have cost by the next check and their stop."""
        now = self.clock.now() if at_s is None else at_s
        if now - self.meter.start_s >= self.budget.time_budget_s - FINAL_GRACE_S:
            return "deadline reached"
        # Real jobs: the money they will have cost by the next check and their stop. Simulated
        # ones stop at the instant they are told to, so no margin.
        margin_s = self.money_margin_s()
        if (
            self.meter.cost_usd(self.held() + list(extra), at_s=now + margin_s)
            >= self.budget.money_budget_usd
        ):
            return "money budget reached"
        return None

    def over_budget_while_profiling(self, held: Held) -> str | None:
        """The hard limits while profiling (the probe jobs, ``held``, are not trials)."""
        if self.meter.elapsed_s() >= self.budget.time_budget_s - FINAL_GRACE_S:
            return "deadline reached"
        margin_s = self.money_margin_s()
        if self.meter.cost_usd(held, at_s=self.clock.now() + margin_s) >= self.budget.money_budget_usd:
            return (
                f"money budget reached (counting the probe job's rent for the {margin_s:g} s a stop may "
                "take, so that the budget is never overrun)"
            )
        return None

    def limit_time_s(self, now: float, t_next: float) -> float:
        """The last time in ``[now, t_next]`` before a hard limit is reached, to within
        :data:`LIMIT_TOL_S` (``inf`` if none is reached by ``t_next``): by bisection, since spend
        only grows with time. Stopping there keeps the spend within the budget."""
        if not self.over_budget(t_next):
            return math.inf
        lo, hi = now, t_next
        while hi - lo > LIMIT_TOL_S:
            mid = 0.5 * (lo + hi)
            if mid <= lo or mid >= hi:
                break
            if self.over_budget(mid):
                hi = mid
            else:
                lo = mid
        return lo
