"""SEER as a policy: the planner (:mod:`seer_torch.policies.seer`) driven round by round.

Round ``k`` launches every survivor to rung ``r_k`` at ``W_k`` workers as slots free up (never
more workers than slots: trials beyond ``num_slots // W_k`` wait, in waves). When every trial
of the round has ended (reached the rung, failed or diverged), the best ``n_{k+1}`` by
validation accuracy at the rung survive (failed and diverged trials rank last and never
survive; ties break by trial id) and the others are eliminated. Before each later round the
remaining rounds are re-planned (:func:`~seer_torch.policies.seer.replan`) with the epoch times
measured on the trials carried (their mean for money, their slowest for wall clock, since a
round ends when its slowest job does), the measured job overhead and the budget actually left:

- world sizes: chosen so that the slowest carried trial fits, when it can; else on the mean,
  but never a next round whose jobs, list-scheduled on the slots with each carried trial's own
  measured epoch (:func:`list_scheduled_makespan_s`), would end past the deadline (fewer are
  carried instead);
- the rounds left aim at the first plan's rungs above the current one and so at its target,
  whatever a previous re-plan kept: a target lowered on slow measurements is raised again when
  the trials turn out faster. Survivors per rung are eta's cut of the trials that reached it
  (never fewer than the first plan's count there, which holds its finalists);
- *carry fewer*: when the rounds left no longer fit, fewer survivors (never fewer than one)
  rather than stopping short of the target;
- *target raised*: when the rounds left fit and their target is below ``max_epochs`` (an
  ``EXPLORATION FIRST`` plan), the last round trains to the most epochs, up to ``max_epochs``,
  that the budgets left pay for;
- *carry more*: when a budget limited the plan, the survivors train faster than the plan
  assumed and the budgets left pay for more than eta's cut, more survivors go on to the next
  rung (and as many more at later rungs as eta's cut keeps), as long as the rounds left fit
  with the slowest survivor's wall clock; never more than half of those that reached the rung,
  so every rung eliminates;
- *best effort*: when not one survivor reaches the target, the best (up to the finalists, as
  many as fit: on free slots they cost no wall clock) are trained as far as the budget left
  allows; ``stop_reason`` starts with ``BEST EFFORT`` and names the epoch reached,
  ``max_epochs`` and the budget that bound.

A round that no re-plan can fit is never started.

Replacements. A trial of the current round that diverges or fails (out of retries) is
replaced at once, while the budget left pays for one more job of the round and the rounds
after it as planned: in round 1 by the next configuration not yet drawn, later by the best
trial not kept at the previous rung. So that one is there, the ``n_{k+1}`` next-best trials at
each rung are held back (paused, checkpoints kept) and eliminated only when the next round
ends; when a rung has fewer runners-up than that (one survivor left), the best held back at the
rung below stay held, so a lone finalist that diverges can still be replaced (its replacement's
job then trains the extra epochs, and the budget check counts them). A high learning rate
often ranks first early and then diverges (DESIGN.md, "Two traps"); without a replacement the
round would end with fewer trials than planned, or none.

The answer is :func:`~seer_torch.policies.base.best_at_rungs` over the completed rungs: the best
trial judged across the last two rungs that hold a valid result (DESIGN.md: a finalist that
diverged is never the answer; one that collapsed, validating more than ``ANSWER_TOLERANCE``
below the best trial kept at the rung before, loses to it, and the stop reason says so). Pure:
no clock, files or processes.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections.abc import Sequence
from typing import Any

from seer_torch.policies import seer as planner
from seer_torch.policies.base import (
    ANSWER_TOLERANCE,
    Decision,
    Eliminate,
    Finish,
    PolicyContext,
    RoundTracker,
    Snapshot,
    TrialView,
    best_at_rungs,
)

__all__ = ["SeerPolicy", "planner_inputs_from_context"]


def planner_inputs_from_context(
    ctx: PolicyContext,
    *,
    time_left_s: float | None = None,
    money_left_usd: float | None = None,
    epoch_time_s: float | None = None,
    overhead_s: float | None = None,
    **overrides: Any,
) -> planner.PlannerInputs:
    """The planner's inputs from a policy context, with the budgets left and measured values
    (seconds, USD) when given. Fields the planner does not know are left out. Pure."""
    values: dict[str, Any] = dict(
        max_epochs=ctx.max_epochs,
        min_epochs=ctx.min_epochs,
        eta=ctx.eta,
        max_configurations=ctx.max_configurations,
        num_slots=ctx.num_slots,
        world_size_ladder=ctx.world_size_ladder,
        epoch_time_s=epoch_time_s if epoch_time_s is not None else ctx.epoch_time_s,
        scaling=ctx.scaling,
        startup_s=ctx.startup_s,
        relaunch_s=overhead_s if overhead_s is not None else ctx.relaunch_s,
        resize_s=overhead_s if overhead_s is not None else ctx.resize_s,
        time_budget_s=max(0.0, ctx.time_budget_s if time_left_s is None else time_left_s),
        money_budget_usd=max(0.0, ctx.money_budget_usd if money_left_usd is None else money_left_usd),
        price_usd_per_slot_hour=ctx.billing.price_usd_per_slot_hour,
        safety_fraction=ctx.safety_fraction,
        max_world_size=ctx.max_world_size,
        billing_granularity_s=ctx.billing.granularity_s,
        billing_minimum_s=ctx.billing.minimum_s,
        num_finalists=ctx.num_finalists,
        min_configurations=ctx.min_configurations,
    )
    values.update(overrides)
    known = {f.name for f in dataclasses.fields(planner.PlannerInputs)}
    return planner.PlannerInputs(**{k: v for k, v in values.items() if k in known})


def list_scheduled_makespan_s(job_s: Sequence[float], num_lanes: int) -> float:
    """Wall clock of jobs of ``job_s`` seconds each, launched in that order on ``num_lanes``
    lanes (``num_slots // W``) as lanes free up (list scheduling): the busiest lane's seconds;
    0 for no jobs. Pure."""
    job_s = list(job_s)
    if len(job_s) <= num_lanes:
        return max(job_s, default=0.0)
    lanes = [0.0] * max(1, num_lanes)  # a heap: the lane that frees up first is on top
    for d in job_s:
        heapq.heapreplace(lanes, lanes[0] + d)
    return max(lanes)


class SeerPolicy:
    """SEER (Sequential Elimination with Elastic Resources, ACM SoCC 2021) as a policy.

    See the module docstring; the plan and its objective are in :mod:`seer_torch.policies.seer`.
    """

    name = "seer"
    reserved_slots = None  # elastic: only held slots are billed

    def __init__(self) -> None:
        self.ctx: PolicyContext | None = None
        self.plan: planner.Plan | None = None
        self.plan_epoch_time_s = 0.0  # the profile's epoch the first plan assumed
        self.replans: list[dict[str, Any]] = []
        self.remaining: list[planner.RoundPlan] = []
        self.round: RoundTracker = RoundTracker()
        self.current: planner.RoundPlan | None = None
        self.members: list[int] = []  # trial indexes of the current round
        self.reserve: list[int] = []  # replacements for the current round, best first
        self.replacements: list[dict[str, Any]] = []
        self.completed_rungs: list[int] = []
        self.round_records: list[dict[str, Any]] = []
        self.finished: str | None = None  # why the policy finished ("" = its plan ran to the end)
        self._truncated: str | None = None  # a re-plan cut the remaining rounds short
        self._last_replan: str | None = None  # the message of a later, feasible re-plan of them
        self._started = False

    # -- Policy protocol ----------------------------------------------------------------------
    def setup(self, context: PolicyContext) -> None:
        self.ctx = context
        self.plan = self.first_plan(context)
        self.plan_epoch_time_s = context.epoch_time_s
        self.remaining = list(self.plan.rounds)
        if self.plan.rounds and not self.plan.feasible:
            # EXPLORATION FIRST or BEST EFFORT: say so in the run's stop reason too
            self._truncated = self.plan.message

    @staticmethod
    def first_plan(context: PolicyContext) -> planner.Plan:
        """The first plan. When each draw's epoch time is known (``draw_epoch_times_s``: the
        simulator's table, or a profile that tells configurations apart by FLOPs), the wall
        clock of round 1 is planned on the draws it launches: ``wave_epoch_time_s`` is the
        epoch that makes ``waves * J'`` equal to the makespan of their jobs launched in draw
        order as slots free up (list scheduling: a wave with one slow draw lasts as long as
        that draw; configurations differ up to 6x in epoch time). Money stays on the
        context's typical epoch: later rounds train survivors not known yet. ``n_1`` depends
        on those times, so the plan is repeated on the first ``n_1`` of the plan before until
        ``n_1`` repeats (at most 8 plans).

        Measured on the policy sweep (``scripts/bench_policies.py``, default grid): SEER at
        least every baseline in 296 of 350 cells at 10 seeds (284 without), 309 at 20 seeds
        (276), 290 at 5 seeds (281); planning money on the first ``n_1``'s mean epoch too gave
        298, 281 and 278."""
        inputs = planner_inputs_from_context(context)
        plan = planner.plan(inputs)
        times = context.draw_epoch_times_s
        seen: set[int] = set()
        while times and plan.rounds and len(seen) < 8:
            first = plan.rounds[0]
            n = first.num_trials
            if n in seen or n > len(times):
                break
            seen.add(n)
            draws = times[:n]
            w = first.world_size
            speed = context.scaling.speedup_at(w)
            epochs = first.rung_epoch - first.start_epoch
            num_lanes = max(1, context.num_slots // w)
            makespan_s = list_scheduled_makespan_s([context.startup_s + epochs * tau / speed for tau in draws],
                                                   num_lanes)
            waves = math.ceil(n / num_lanes)
            wave_tau = max(1e-9, (makespan_s / waves - context.startup_s) * speed / epochs)
            plan = planner.plan(dataclasses.replace(inputs, wave_epoch_time_s=wave_tau))
        return plan

    @property
    def schedule_epochs(self) -> int:
        """The target now: the last rung of the current round and the rounds left, which a
        re-plan may lower or raise (every later launch takes it as its learning-rate schedule's
        horizon); ``max_epochs`` when the plan has no round."""
        assert self.ctx is not None
        rounds = ([self.current] if self.current is not None else []) + self.remaining
        return rounds[-1].rung_epoch if rounds else self.ctx.max_epochs

    def decide(self, snapshot: Snapshot) -> Sequence[Decision]:
        assert self.ctx is not None and self.plan is not None
        if self.finished is not None:
            return [Finish(self.finished)]
        if snapshot.num_slots != self.ctx.num_slots:
            self._use_slots(snapshot.num_slots)
        stopped_short = []
        for ev in snapshot.events:
            self.round.ended(ev.index)
            view = snapshot.trials.get(ev.trial_id)
            if (ev.outcome == "stopped" and ev.epochs < ev.until_epoch and ev.index in self.members
                    and view is not None and view.status == "paused"):
                stopped_short.append(ev.index)  # the executor stopped it (a resume on fewer slots)
        self.round.queue[:0] = stopped_short  # launched again first, at the round's W
        if stopped_short and self.current is not None and self._fit_current_round(snapshot) is None:
            return self._finish(self._truncated or "")
        out: list[Decision] = []
        for ev in snapshot.events:
            if ev.outcome in ("diverged", "failed") and ev.index in self.members and self.current is not None:
                self._replace(ev, snapshot)
        if not self._started:
            self._started = True
            if not self.remaining:
                return self._finish(self.plan.message)
            n1 = self.plan.num_configurations
            self._start_round(self.remaining.pop(0), list(range(n1)))
            self.reserve = list(range(n1, self.ctx.max_configurations))  # fresh configurations
        elif self.round.done:
            out += self._end_round(snapshot)
            if self.finished is not None:
                return out + [Finish(self.finished)]
        out += self.round.launches(snapshot.free_slots)
        return out

    def answer(self, snapshot: Snapshot) -> tuple[str, int] | None:
        return best_at_rungs(snapshot.trials, self.completed_rungs)

    def _fit_current_round(self, snap: Snapshot) -> int | None:
        """The jobs of the current round still to launch (a resume on fewer slots handed some
        back at a narrower ``W``) must end before the deadline: when they cannot reach the
        round's rung, the rung becomes the most epochs they can reach and the rounds after it
        (which the re-plan at the rung would otherwise adapt) are dropped (``BEST EFFORT``; every later launch takes it as its schedule's horizon).
        Returns the rung, or ``None`` when not one more epoch fits (the run finishes with the
        completed rungs). Each job: the measured overhead plus its epochs at its trial's own
        measured epoch time over ``s(W)``, list-scheduled on ``num_slots // W`` lanes."""
        assert self.ctx is not None and self.current is not None
        rp, w = self.current, self.round.world_size
        views = {t.index: t for t in snap.trials.values()}
        queued = [views[i] for i in self.round.queue if i in views]
        if not queued:
            return rp.rung_epoch
        speed = self.ctx.scaling.speedup_at(w)
        overhead_s = snap.job_overhead_s if snap.job_overhead_s is not None else self.ctx.resize_s
        default_tau = snap.epoch_time_s if snap.epoch_time_s is not None else self.ctx.epoch_time_s

        def makespan_s(rung: int) -> float:
            jobs = [overhead_s + (rung - t.epochs) * (t.epoch_time_s or default_tau) / speed for t in queued]
            return list_scheduled_makespan_s(jobs, max(1, self.ctx.num_slots // w))

        if makespan_s(rp.rung_epoch) < snap.time_left_s:
            return rp.rung_epoch  # the rounds after it are re-planned at its rung, as always
        start = max(t.epochs for t in queued)
        lo, hi, best = start + 1, rp.rung_epoch - 1, None
        while lo <= hi:  # the job's time grows with its rung: bisection
            mid = (lo + hi) // 2
            if makespan_s(mid) < snap.time_left_s:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        max_epochs = self.ctx.max_epochs
        head = (f"BEST EFFORT: the deadline ({snap.time_left_s:.0f} s left) on {self.ctx.num_slots} slot(s) "
                f"(a resume on fewer slots) at epoch {start}")
        if best is None:
            self._truncated = (f"{head} cannot pay for one more epoch of round {rp.index} at W={w}; the best "
                               f"stays at its last completed rung, short of max_epochs ({max_epochs}).")
            return None
        self._truncated = (f"{head} cannot carry a trial past epoch {best}, short of max_epochs ({max_epochs}); "
                           f"the best is trained to epoch {best} of {max_epochs} instead.")
        self._last_replan = None
        self.current = dataclasses.replace(rp, rung_epoch=best)
        self.round.rung_epoch = best
        self.round_records[-1]["rung_epoch"] = best
        self.remaining = []
        return best

    def _use_slots(self, num_slots: int) -> None:
        """Plan with ``num_slots`` from now on (the snapshots say the slots changed: a resume
        on other resources). Jobs of the current round still to launch and the rounds left get
        at most the widest world size the slots hold; re-plans use the new slots."""
        assert self.ctx is not None
        self.ctx = dataclasses.replace(self.ctx, num_slots=num_slots)
        cap = max(self.ctx.usable_world_sizes)
        self.round.world_size = min(self.round.world_size, cap)
        if self.current is not None:
            self.current = dataclasses.replace(self.current, world_size=min(self.current.world_size, cap))
        self.remaining = [dataclasses.replace(r, world_size=min(r.world_size, cap)) for r in self.remaining]

    def report(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "plan": self.plan.to_dict() if self.plan else None,
            "replans": self.replans,
            "replacements": self.replacements,
            "rounds": self.round_records,
            "completed_rungs": list(self.completed_rungs),
        }

    # -- rounds -------------------------------------------------------------------------------
    def _replace(self, ev: Any, snap: Snapshot) -> None:
        """A member of the current round diverged or failed: queue the best reserve trial in
        its place when the budget left pays for its job and the rounds after as planned."""
        assert self.current is not None
        rp = self.current
        by_index = {t.index: t for t in snap.trials.values()}
        job_s = rp.job_duration_s
        job_usd = rp.predicted_cost_usd / max(1, rp.num_trials)
        later_s = sum(r.predicted_duration_s for r in self.remaining)
        later_usd = sum(r.predicted_cost_usd for r in self.remaining)
        while self.reserve:
            i = self.reserve[0]
            t = by_index.get(i)
            if t is not None and (t.status in ("eliminated", "failed", "diverged", "running") or t.epochs >= rp.rung_epoch):
                self.reserve.pop(0)  # no longer usable
                continue
            # When nothing valid is left in the round, the replacement alone must fit (the
            # re-plan at the rung then trains it as far as the budget left allows).
            alone = not any(
                by_index[j].status not in ("failed", "diverged") for j in self.members if j in by_index
            )
            # a trial held back at a lower rung trains more epochs than the round's own jobs
            behind = (rp.rung_epoch - (t.epochs if t is not None else rp.start_epoch)) / max(
                1, rp.rung_epoch - rp.start_epoch)
            scale = max(1.0, behind)
            need_s, need_usd = (job_s * scale, job_usd * scale)
            if not alone:
                need_s, need_usd = need_s + later_s, need_usd + later_usd
            if need_s > snap.time_left_s or need_usd > snap.money_left_usd:
                return
            self.reserve.pop(0)
            self.members.append(i)
            self.round.queue.append(i)
            self.replacements.append({"at_s": snap.now_s, "round": rp.index, "replaced": ev.trial_id,
                                      "outcome": ev.outcome, "by_index": i})
            return

    def _finish(self, reason: str) -> list[Decision]:
        self.finished = reason
        return [Finish(reason)]

    def _start_round(self, rp: planner.RoundPlan, indexes: list[int], predicted_s: float | None = None) -> None:
        """Launch round ``rp`` with the trials ``indexes`` and record it; ``predicted_s``, when
        given, is the recorded prediction of its wall clock (else the plan's)."""
        self.current = rp
        self.members = list(indexes)
        self.round.start(rp.index, rp.rung_epoch, rp.world_size, indexes)
        self.round_records.append({
            "index": rp.index, "rung_epoch": rp.rung_epoch, "num_trials": len(indexes),
            "world_size": rp.world_size,
            "predicted_duration_s": rp.predicted_duration_s if predicted_s is None else predicted_s,
            "predicted_cost_usd": rp.predicted_cost_usd, "completed": False,
        })

    def _end_round(self, snap: Snapshot) -> list[Decision]:
        """The current round ended: eliminate, re-plan, start the next round (or finish)."""
        assert self.current is not None and self.ctx is not None
        rung = self.current.rung_epoch
        self.round_records[-1]["completed"] = True
        self.completed_rungs.append(rung)
        by_index = {t.index: t for t in snap.trials.values()}
        members = [by_index[i] for i in self.members if i in by_index]
        ranked = select_survivors(members, rung, len(members))
        # The next-best are held back to replace a survivor that diverges or fails in the next
        # round; the previous round's reserve is no longer needed.
        old_reserve = [by_index[i] for i in self.reserve if i in by_index]

        def hold_back(n: int) -> list[int]:
            """The ``n`` next-best at this rung, best first; when this rung has fewer, the best
            of the previous reserve (paused at the rung below) stay held to fill the gap, so that
            a lone finalist that diverges can still be replaced."""
            held_back = [t.index for t in ranked[n: 2 * n]]
            for t in old_reserve:
                if len(held_back) >= n:
                    break
                if t.status == "paused" and t.index not in held_back:
                    held_back.append(t.index)
            return held_back

        def carry(n: int) -> tuple[list[TrialView], list[Decision]]:
            """Keep the best ``n``, hold back the next (``self.reserve``) while rounds are left,
            and eliminate every other member and what the old reserve no longer needs."""
            self.reserve = hold_back(n) if self.remaining else []
            kept, held = {t.trial_id for t in ranked[:n]}, set(self.reserve)
            done = ("failed", "diverged", "eliminated")
            return ranked[:n], [Eliminate(t.trial_id) for t in members + old_reserve
                                if t.trial_id not in kept and t.index not in held and t.status not in done]

        survivors, out = carry(len(ranked))
        if not survivors:
            self.finished = "no trial has a valid result at the last rung"
            return out
        if not self.remaining:
            # "": the plan ran to its end; a cut plan names the rounds its last re-plan kept
            self.finished = ((self._truncated or "") + (f" Last re-plan: {self._last_replan}" if self._last_replan else "")
                             + self._answer_note(snap)).strip()
            return out
        # The rounds left aim at the first plan's rungs (its target, which the planner may have
        # set below max_epochs), not at the rounds a previous re-plan kept: a target lowered on
        # slow measurements is raised again when the trials turn out faster.
        max_epochs = self.ctx.max_epochs
        rungs = tuple(r for r in self.plan.rungs if r > rung) or tuple(r.rung_epoch for r in self.remaining)
        eta = max(2, self.plan.eta)
        counts = self._planned_counts(len(ranked), rungs)
        survivors, out = carry(counts[0])
        previous_target = self.schedule_epochs
        # The rounds left train the survivors only: plan with the epoch times measured on the
        # trials each candidate carries, the mean for money (each job is billed its own time)
        # and the slowest for wall clock (a round ends when its slowest job does).
        base_inputs = planner_inputs_from_context(
            self.ctx,
            time_left_s=snap.time_left_s,
            money_left_usd=snap.money_left_usd,
            epoch_time_s=snap.epoch_time_s,
            overhead_s=snap.job_overhead_s,
            eta=self.plan.eta,  # what the plan chose, when the experiment left it open
            num_finalists=self.plan.num_finalists,
        )

        def inputs_for(carried: int, wave: bool) -> planner.PlannerInputs:
            measured = [t.epoch_time_s for t in ranked[:carried] if t.epoch_time_s is not None]
            if not measured:
                return base_inputs
            return dataclasses.replace(base_inputs, epoch_time_s=sum(measured) / len(measured),
                                       wave_epoch_time_s=max(measured) if wave else None)

        def replan(survivor_counts: tuple[int, ...], rung_list: tuple[int, ...] = rungs,
                   wave: bool = False) -> planner.Plan:
            planned = tuple(r.world_size for r in self.remaining)
            keep_sizes = rung_list == tuple(r.rung_epoch for r in self.remaining)
            return planner.replan(
                inputs_for(survivor_counts[0], wave),
                rungs=rung_list,
                survivors=survivor_counts,
                current_epoch=rung,
                current_world_size=self.current.world_size,
                first_round_index=self.current.index + 1,
                planned_world_sizes=planned if keep_sizes else None,
            )

        def next_round_s(plan: planner.Plan) -> float:
            """Wall clock of the plan's next round (it has one): its members' jobs, each at its
            own trial's measured epoch, list-scheduled on the slots."""
            rp = plan.rounds[0]
            speed = self.ctx.scaling.speedup_at(rp.world_size)
            overhead_s = planner.first_round_overhead_s(base_inputs, rp.world_size, self.current.world_size)
            jobs_s = [overhead_s + (rp.rung_epoch - rp.start_epoch) * (t.epoch_time_s or base_inputs.epoch_time_s)
                      / speed for t in ranked[:rp.num_trials]]
            return list_scheduled_makespan_s(jobs_s, self.ctx.num_slots // rp.world_size)

        def fits(plan: planner.Plan) -> bool:
            """Every round left fits the budgets left, and the plan's next round
            (:func:`next_round_s`) ends before the deadline with the rounds after it as
            predicted. (On the mean alone, a final round of one slow and one fast finalist was
            predicted to fit and ran past the deadline in a real run: issue 4. Checked against
            the deadline itself, not its safety fraction: at 0.9 of it, SEER carried fewer than
            it could and met every baseline in 290 cells of the policy sweep, 10 seeds, against
            296 at 1.0 and without the check.)"""
            if not plan.feasible or not plan.rounds:
                return plan.feasible
            later_s = sum(r.predicted_duration_s for r in plan.rounds[1:])
            return next_round_s(plan) + later_s < snap.time_left_s

        def bound_by(plan: planner.Plan) -> str:
            """Which budget a plan that does not fit breaks: the deadline when it is within
            budget and only its next round's jobs overrun, else the planner's ``binding``."""
            return "money" if not plan.feasible and plan.binding == "money" else "time"

        def budget_left(binding: str) -> str:
            if binding == "money":
                return f"the money budget ({snap.money_left_usd:.3g} USD left)"
            return f"the deadline ({snap.time_left_s:.0f} s left)"

        # World sizes for the rounds left: chosen so that even the slowest survivor's jobs fit
        # (a round ends when its slowest job does) when that is possible; otherwise on the
        # mean, which cuts no survivor that the budgets left can pay for.
        as_planned = replan(counts)
        slow = replan(counts, wave=True)
        new = slow if slow.feasible else as_planned
        used = counts
        reason = "as planned"
        if not fits(new):
            # The rounds left no longer fit as planned (epochs took longer, overheads were
            # larger): carry fewer survivors to the target rather than stop short of it.
            why = ("their next round's jobs would end past the deadline" if new.feasible else
                   f"only the rounds to epoch {new.target_epochs} would fit" if new.rounds else
                   "not even the next round would fit")
            new = dataclasses.replace(new, feasible=False)
            for f in (0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.0):
                fewer = tuple(max(1, min(c, math.ceil(c * f))) for c in counts)
                if fewer == counts:
                    continue
                candidate = replan(fewer)
                if fits(candidate):
                    new, used = candidate, fewer
                    reason = (f"carried fewer: the rounds left with {list(counts)} survivors to epoch {rungs[-1]} no "
                              f"longer fit the budgets left ({why}); {list(fewer)} go on to epoch {rungs[-1]}")
                    survivors, out = carry(fewer[0])
                    break
        if fits(new) and new.target_epochs < max_epochs:
            # The plan's target is below max_epochs and the rounds to it fit: train the last
            # round further, as far as the budgets left pay for (the most epochs first, then
            # more survivors). Feasibility is monotone in the target: bisection.
            stretched, target = self._bisect_target(
                lambda t: replan(used, new.rungs[:-1] + (t,), wave=True), fits, new.target_epochs + 1, max_epochs)
            if stretched is not None:
                new = stretched
                reason += f"; target raised to epoch {target} (from {rungs[-1]})"
        if fits(new) and used == counts and self.plan.binding in ("time", "money"):
            # A budget limited the plan, and the survivors train faster than the plan assumed,
            # so the budgets left pay for more than eta's cut keeps: carry more survivors to the
            # next rung, and as many more at later rungs as eta's cut keeps, as long as the
            # rounds left fit with the slowest survivor's wall clock. Never more than half of
            # those that reached the rung (successive halving's cut, the gentlest the planner
            # uses), so every rung eliminates. (When no budget limited the plan, the halving
            # stands: ample budgets are not spent for their own sake.)
            def grown(m: int) -> tuple[int, ...]:
                out_counts, prev = [], m
                for j, c in enumerate(counts):
                    g = m if j == 0 else min(prev, max(c, prev // eta))
                    out_counts.append(g)
                    prev = g
                return tuple(out_counts)

            def faster(m: int) -> bool:
                return inputs_for(m, False).epoch_time_s < self.plan_epoch_time_s

            lo, hi = counts[0], max(counts[0], len(ranked) // 2)
            best_new = None
            while lo < hi:
                mid = (lo + hi + 1) // 2
                cand = replan(grown(mid), new.rungs, wave=True)
                if fits(cand) and faster(mid):
                    lo, best_new = mid, cand
                else:
                    hi = mid - 1
            if best_new is not None and lo > counts[0]:
                new, used = best_new, grown(lo)
                carried = inputs_for(lo, True)
                reason = (f"carried more: the trials carried measured {carried.epoch_time_s:.3g} s an epoch on one "
                          f"worker (slowest {carried.wave_epoch_time_s or carried.epoch_time_s:.3g} s) where the plan "
                          f"assumed {self.plan_epoch_time_s:.3g} s, so the budgets left pay for {lo} "
                          f"survivors to epoch {rungs[0]} where eta's cut keeps {counts[0]}")
                survivors, out = carry(lo)
        if not fits(new):
            # Not even one survivor reaches the next planned rung after the rounds that fit:
            # train the best as far as the budget left allows rather than leave it unspent.
            new = dataclasses.replace(new, feasible=False)
            extended = self._extend_best_effort(new, rungs, used, rung, replan, fits)
            if extended is not None:
                new = extended
            reason = (f"best effort: not one survivor reaches epoch {rungs[-1]} within the budgets left; "
                      f"{new.survivors[-1] if new.rounds else 0} go on to epoch {new.target_epochs}")
            if extended is not None:
                if len(new.rounds) == 1 and len(survivors) > new.rounds[0].num_trials:
                    # the others stay paused at this rung, first in line to replace them
                    m = new.rounds[0].num_trials
                    self.reserve = [t.index for t in survivors[m:]] + self.reserve
                    survivors = survivors[:m]
        if new.rounds and new.num_finalists > new.rounds[-1].num_trials:
            new = dataclasses.replace(new, num_finalists=new.rounds[-1].num_trials)  # fewer were carried
        self.replans.append({"at_s": snap.now_s, "planned_survivors": list(counts),
                             "survivors": [r.num_trials for r in new.rounds], "reason": reason,
                             "plan": new.to_dict()})
        if not new.rounds:
            self.finished = (f"budget left cannot pay for round {self.current.index + 1}: {new.message}"
                             + self._answer_note(snap))
            return out
        target = new.target_epochs
        if target >= max_epochs:
            self._truncated = self._last_replan = None  # the run reaches max_epochs again
        elif target != previous_target or self._truncated is None:
            # the stop reason names the target, max_epochs and the budget that bound
            stopper = replan(new.survivors[:-1] + (1,), new.rungs[:-1] + (target + 1,), wave=True)
            self._truncated = (
                f"BEST EFFORT: {budget_left(bound_by(stopper))} at epoch {rung} cannot carry a trial past "
                f"epoch {target}, short of max_epochs ({max_epochs}); the best is trained to epoch {target} of "
                f"{max_epochs} instead. {new.message}")
            self._last_replan = None
        else:
            self._last_replan = new.message
        self.remaining = list(new.rounds)
        # The round's record predicts what its jobs at their own measured epochs take, not the
        # plan's mean (a plan on the mean recorded 88.7 s for a round that took 107 s).
        self._start_round(self.remaining.pop(0), [t.index for t in survivors], predicted_s=next_round_s(new))
        return out

    def _planned_counts(self, ranked: int, rungs: tuple[int, ...]) -> tuple[int, ...]:
        """Survivors per rung of ``rungs`` when ``ranked`` trials hold a result at this rung:
        eta's cut (never fewer than the first plan's count at that rung, which holds its
        finalists), and never more than reached the rung before."""
        assert self.plan is not None
        eta = max(2, self.plan.eta)
        planned = {r.rung_epoch: r.num_trials for r in self.plan.rounds}
        out, prev = [], ranked
        for r in rungs:
            prev = max(1, min(prev, max(planned.get(r, self.plan.num_finalists or 1), prev // eta)))
            out.append(prev)
        return tuple(out)

    @staticmethod
    def _bisect_target(plan_for: Any, fits: Any, lo: int, hi: int) -> tuple[planner.Plan | None, int]:
        """The largest integer target ``t`` in ``[lo, hi]`` whose plan ``plan_for(t)`` fits, by
        bisection (a longer last round costs more time and money): ``(plan, t)``, or
        ``(None, lo - 1)`` when not even ``lo`` fits."""
        best, best_t = None, lo - 1
        a, b = lo, hi
        while a <= b:
            mid = (a + b) // 2
            cand = plan_for(mid)
            if fits(cand):
                best, best_t, a = cand, mid, mid + 1
            else:
                b = mid - 1
        return best, best_t

    def _extend_best_effort(self, new: planner.Plan, rungs: tuple[int, ...], counts: tuple[int, ...], rung: int,
                            replan: Any, fits: Any) -> planner.Plan | None:
        """The plan ``new`` (a prefix of the remaining rounds) plus one more round that trains
        the best trials to the largest epoch short of the next rung that fits the budgets left
        (one trial decides the epoch; then as many as fit at it, up to the finalists
        ``counts[-1]``: on free slots they cost no wall clock), or ``None`` when not one more
        epoch fits."""
        p = len(new.rounds)
        if p >= len(rungs):
            return None
        lo, hi = (rungs[p - 1] if p else rung), rungs[p]
        prefix_rungs, prefix_counts = rungs[:p], counts[:p]
        best, target = self._bisect_target(lambda t: replan(prefix_counts + (1,), prefix_rungs + (t,)), fits,
                                              lo + 1, hi - 1)
        if best is None:
            return None
        for m in range(min(counts[p], counts[-1]), 1, -1):
            cand = replan(prefix_counts + (m,), prefix_rungs + (target,))
            if fits(cand):
                best = cand
                break
        return dataclasses.replace(best, feasible=False)

    def _answer_note(self, snap: Snapshot) -> str:
        """A sentence for the stop reason when the answer is not a trial of the last completed
        rung (a finalist dropped more than :data:`~seer_torch.policies.base.ANSWER_TOLERANCE`
        below it); ``""`` otherwise."""
        answer = best_at_rungs(snap.trials, self.completed_rungs)
        if answer is None or not self.completed_rungs or answer[1] >= self.completed_rungs[-1]:
            return ""
        return (f" The answer is {answer[0]} at epoch {answer[1]}: the trials trained to epoch "
                f"{self.completed_rungs[-1]} validated more than {ANSWER_TOLERANCE:g} below it.")


def select_survivors(trials: Sequence[TrialView], rung_epoch: int, keep: int) -> list[TrialView]:
    """The ``keep`` best trials by validation accuracy at ``rung_epoch``.

    Only trials that reached the rung with a finite accuracy and are neither failed nor
    diverged are eligible. Ties break by trial id. Pure.
    """
    eligible = [
        t for t in trials
        if t.status not in ("failed", "diverged")
        and rung_epoch in t.val_accuracy and math.isfinite(t.val_accuracy[rung_epoch])
    ]
    eligible.sort(key=lambda t: (-t.val_accuracy[rung_epoch], t.trial_id))
    return eligible[:keep]
