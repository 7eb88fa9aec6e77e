"""Asynchronous successive halving (ASHA, Li et al. 2020) as a policy. Pure.

No rounds: whenever a slot is free, the best not-yet-promoted trial in the top ``1/eta`` of its
rung is promoted (highest rung first), else a new configuration starts. It shares the ranker
and the stopped-job rule with the round engine (:mod:`seer_torch.policies.engine`) and the
planning helpers with the other baselines (:mod:`seer_torch.policies.baseline_plans`); the
notes on predictions and best effort are :mod:`seer_torch.policies.baselines`'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from seer_torch.policies.base import (
    Decision,
    Finish,
    JobEvent,
    Launch,
    PolicyContext,
    Snapshot,
    TrialView,
    best_at_rungs,
)
from seer_torch.policies.baseline_plans import (
    PolicyBase,
    anchored_rungs,
    check_rungs,
    choose_slots,
    cluster_slots,
    eta_of,
    largest_target,
    no_plan_message,
    predict_rounds,
    rent_time_limit,
    used_of_budget,
)
from seer_torch.policies.costs import job_time_s
from seer_torch.policies.engine import BAD_STATUSES, RetryOnce, finite_score, rank_at_rung, stopped_short
from seer_torch.policies.rungs import survivors_at_rung

__all__ = ["AshaPolicy"]


class AshaPolicy(PolicyBase):
    """Asynchronous successive halving (Li et al. 2020) on a fixed cluster of ``g`` slots, ``W = 1``.

    Rungs ``rung_schedule(min(min_epochs, target), target, eta)``. Whenever a slot is free:
    promote, from the highest rung down, the best trial that is in the top ``floor(|rung| /
    eta)`` of its rung (|rung| counts every trial whose job to that rung ended; failed and
    diverged ones rank last and are never promoted) and not yet promoted; else start the next
    configuration (up to ``max_configurations``). A job is launched only when it is predicted to
    end within the cluster's time limit (:func:`rent_time_limit`, measured from set-up: the
    smaller of ``safety_fraction`` of the deadline and what ``safety_fraction`` of the money
    rents ``g`` slots for), with the larger of the profile's and the measured epoch time and job
    overhead; so no new configuration starts once one job to the first rung cannot end in
    time. Finishes when nothing runs and nothing can be launched (the rent stops there).

    ``target = max_epochs`` and ``g = G`` when one configuration promoted through every rung
    (one job per rung, at ``W = 1``) fits ``G``'s time limit; else the largest ``target`` (then
    the largest ``g <= G``) at which it fits (best effort). No plan (nothing launched, no
    cluster rented) when not even one epoch fits. Answer: the best at the highest rung any
    trial reached.
    """

    name = "asha"

    def __init__(self) -> None:
        self._ctx: PolicyContext | None = None

    def _path_s(self, target: int) -> float:
        """One configuration promoted through every rung anchored at ``target``, seconds."""
        ctx = self._ctx
        assert ctx is not None
        rungs = anchored_rungs(ctx, self._eta, target)
        preds = predict_rounds(ctx, rungs, (1,) * len(rungs), (1,) * len(rungs), 1)
        return sum(p.duration_s for p in preds)

    def setup(self, context: PolicyContext) -> None:
        self._ctx = context
        self._eta = eta_of(context)
        self._G_afford = cluster_slots(context)

        def plan_on(g: int) -> tuple[tuple, tuple, bool]:
            limit = rent_time_limit(context, g)
            target = largest_target(lambda t: self._path_s(t) <= limit, context.max_epochs)
            return (target, g), (target, limit), target == context.max_epochs

        chosen = choose_slots(range(self._G_afford, 0, -1), plan_on)
        if chosen is None:
            self._G, self._target, self._limit = self._G_afford, 0, -1.0
            self._rungs: tuple[int, ...] = ()
            self._message = no_plan_message(self.name, context, f"a fixed cluster of {self._G} slot(s)")
        else:
            self._G, (self._target, self._limit) = chosen
            self._rungs = anchored_rungs(context, self._eta, self._target)
            check_rungs(self._rungs, context.max_epochs)
            rungs = ",".join(map(str, self._rungs))
            self._message = (
                f"asha: {self._G} slot(s) at W=1, rungs {rungs}, eta {self._eta}; up to "
                f"{context.max_configurations} configurations while a job ends within "
                f"{self._limit:.1f} s of the start (the cluster's time limit)."
            )
            if self._target < context.max_epochs:
                self._message = (
                    f"BEST EFFORT: asha cannot promote even one configuration to max_epochs "
                    f"({context.max_epochs}) within the budgets; its rungs stop at {self._target}. "
                    + self._message
                )
        self._members: list[list[int]] = [[] for _ in self._rungs]  # jobs to rung k that ended
        self._bad_level: dict[int, int] = {}  # index -> level whose job failed or diverged
        self._promoted: set[tuple[int, int]] = set()  # (index, from level)
        self._running: dict[int, int] = {}  # index -> level its job trains to
        self._retried = RetryOnce()  # keys (index, level)
        self._retry: list[tuple[int, int]] = []
        self._next_index = 0
        self._finished = False
        self._finish_reason = ""
        self._launches_per_level = [0] * len(self._rungs)
        self._t0: float | None = None  # now_s of the first decision

    @property
    def reserved_slots(self) -> int | None:
        self._require_setup()
        return self._G if self._rungs else None

    def decide(self, snapshot: Snapshot) -> list[Decision]:
        self._require_setup()
        if self._finished:
            return []
        if not self._rungs:
            self._finished = True
            self._finish_reason = self._message
            return [Finish(self._finish_reason)]
        if self._t0 is None:
            self._t0 = snapshot.now_s
        by_index = {t.index: t for t in snapshot.trials.values()}
        for event in snapshot.events:
            self._note_event(event, by_index)
        out: list[Decision] = []
        free = max(0, min(snapshot.free_slots, self._G - len(self._running)))
        while free >= 1:
            launch = self._next_job(snapshot, by_index)
            if launch is None:
                break
            out.append(launch)
            self._running[launch.trial_index] = launch.round_index - 1
            self._launches_per_level[launch.round_index - 1] += 1
            free -= 1
        if not self._running:
            self._finished = True
            drawn = f"{self._next_index} of {self._ctx.max_configurations}"  # type: ignore[union-attr]
            self._finish_reason = (
                "nothing more can complete: no promotable trial, and no new configuration "
                f"(drawn {drawn}) fits the time left"
            )
            out.append(Finish(self._finish_reason))
        return out

    def _note_event(self, event: JobEvent, by_index: Mapping[int, TrialView]) -> None:
        i = event.index
        level = self._running.pop(i, None)
        if level is None:
            return
        if event.outcome in BAD_STATUSES:
            self._bad_level[i] = level
        elif event.outcome == "stopped" and event.epochs < event.until_epoch:
            if stopped_short(event, by_index.get(i)) and self._retried.allow((i, level)):
                self._retry.append((i, level))
                return
            self._bad_level[i] = level  # stopped twice: it does not reach the rung
        self._members[level].append(i)

    def _valid_at(self, i: int, level: int, by_index: Mapping[int, TrialView]) -> bool:
        view = by_index.get(i)
        if view is None or self._bad_level.get(i, len(self._rungs)) <= level:
            return False
        return finite_score(view, self._rungs[level])

    def _job_s(self, snapshot: Snapshot, epochs: int, first_job: bool, warm: bool = True) -> float:
        """A job's predicted duration: the larger of the profile's and the measured epoch time
        and overhead (so a measured mean over first jobs and relaunches never shortens it).
        Where the backend keeps jobs alive (the context's ``continue_s``), a promotion and a
        new configuration once the cluster's first ``G`` have started (``warm``) find a parked
        job at ``W = 1``, their own or another trial's warm worker: the larger of
        ``continue_s`` and the warm start (:meth:`~seer_torch.policies.costs.Overheads.warm_s`)
        and the measured continuation; a relaunch after a stop starts processes."""
        ctx = self._ctx
        assert ctx is not None
        tau = max(ctx.epoch_time_s, snapshot.epoch_time_s or 0.0)
        o = ctx.overheads
        if warm and o.keeps_jobs_alive and (not first_job or self._next_index >= self._G):
            overhead = max(o.continuation_s(), o.warm_s(first_job), snapshot.continue_overhead_s or 0.0)
        else:
            overhead = ctx.startup_s if first_job else ctx.relaunch_s
            overhead = max(overhead, snapshot.job_overhead_s or 0.0)
        return job_time_s(overhead, epochs, tau, ctx.scaling.speedup_at(1))

    def _ends_in_time(self, snapshot: Snapshot, job_s: float) -> bool:
        """Whether a job launched now ends within the cluster's time limit (from set-up)."""
        ctx = self._ctx
        assert ctx is not None
        if math.isfinite(ctx.time_budget_s) or self._t0 is None:
            elapsed = used_of_budget(ctx.time_budget_s, snapshot.time_left_s)
        else:  # no deadline to count from: from the first decision (right after set-up)
            elapsed = max(0.0, snapshot.now_s - self._t0)
        return elapsed + job_s <= self._limit

    def promotable(self, level: int, by_index: Mapping[int, TrialView]) -> list[int]:
        """Indexes in the top ``floor(|rung| / eta)`` of rung ``level`` that may be promoted
        now, best first (for tests and the report): the survivor-count rule
        (:func:`~seer_torch.policies.rungs.survivors_at_rung`) with no floor."""
        members = self._members[level]
        ranked = rank_at_rung(
            members, self._rungs[level], by_index.get, lambda i: self._valid_at(i, level, by_index)
        )
        out = []
        for i in ranked[: survivors_at_rung(len(members), self._eta, 0)]:
            view = by_index.get(i)
            if (
                (i, level) not in self._promoted
                and i not in self._running
                and i not in self._bad_level
                and view is not None
                and view.status == "paused"
                and self._valid_at(i, level, by_index)
            ):
                out.append(i)
        return out

    def _next_job(self, snapshot: Snapshot, by_index: Mapping[int, TrialView]) -> Launch | None:
        ctx = self._ctx
        assert ctx is not None
        # A stopped job's relaunch, once.
        for pos, (i, level) in enumerate(self._retry):
            view = by_index.get(i)
            if view is None or view.status != "paused":
                self._retry.pop(pos)
                self._bad_level[i] = level
                self._members[level].append(i)
                return self._next_job(snapshot, by_index)
            job_s = self._job_s(snapshot, self._rungs[level] - view.epochs, view.epochs == 0, warm=False)
            if self._ends_in_time(snapshot, job_s):
                self._retry.pop(pos)
                return Launch(i, 1, self._rungs[level], level + 1)
        # Promotions, highest rung first.
        for level in range(len(self._rungs) - 2, -1, -1):
            candidates = self.promotable(level, by_index)
            if not candidates:
                continue
            d = self._rungs[level + 1] - self._rungs[level]
            if not self._ends_in_time(snapshot, self._job_s(snapshot, d, False)):
                continue
            i = candidates[0]
            self._promoted.add((i, level))
            return Launch(i, 1, self._rungs[level + 1], level + 2)
        # A new configuration.
        if self._next_index < ctx.max_configurations and self._ends_in_time(
            snapshot, self._job_s(snapshot, self._rungs[0], True)
        ):
            i = self._next_index
            self._next_index += 1
            return Launch(i, 1, self._rungs[0], 1)
        return None

    def answer(self, snapshot: Snapshot) -> tuple[str, int] | None:
        self._require_setup()
        return best_at_rungs(snapshot.trials, self._rungs)

    def report(self) -> dict[str, Any]:
        self._require_setup()
        ctx = self._ctx
        assert ctx is not None
        plan = {
            "message": self._message,
            "rungs": list(self._rungs),
            "target_epochs": self._target,
            "feasible": self._target == ctx.max_epochs,
            "max_configurations": ctx.max_configurations,
            "time_limit_s": ctx.time_budget_s,
            "cluster_time_limit_s": self._limit,
            "money_limit_usd": ctx.safety_fraction * ctx.money_budget_usd,
        }
        # One "round" per rung: the jobs trained to it (they overlap in time). Marked completed
        # only when the policy has finished, as asynchronous rungs never close before that.
        rounds = [
            {
                "index": level + 1,
                "rung_epoch": rung,
                "num_trials": self._launches_per_level[level],
                "world_size": 1,
                "reached": len(self._members[level]),
                "completed": self._finished,
            }
            for level, rung in enumerate(self._rungs)
            if self._launches_per_level[level]
        ]
        return {
            **self._cluster_report(),
            "num_configurations": self._next_index,
            "plan": plan,
            "rounds": rounds,
            "jobs_per_rung": list(self._launches_per_level),
            "reached_per_rung": [len(m) for m in self._members],
            "promotions": sorted([i, lvl] for i, lvl in self._promoted),
            "finish_reason": self._finish_reason,
        }
