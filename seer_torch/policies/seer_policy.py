"""SEER as a policy: the planner (:mod:`seer_torch.policies.seer`) driven round by round.

Round ``k`` launches every survivor to rung ``r_k`` at ``W_k`` workers as slots free up (never
more workers than slots: trials beyond ``num_slots // W_k`` wait, in waves). When every trial
of the round has ended (reached the rung, failed or diverged), the best ``n_{k+1}`` by
score at the rung (the experiment's metric, higher is better: ``TrialView.score``) survive
(failed and diverged trials rank last and never survive; ties break by trial id) and the
others are eliminated. Before each later round the
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
often ranks first early and then diverges (docs/design.md, "Two traps"); without a replacement the
round would end with fewer trials than planned, or none.

The answer is :func:`~seer_torch.policies.base.best_at_rungs` over the completed rungs: the best
trial judged across the last two rungs that hold a valid result (docs/design.md: a finalist that
diverged is never the answer; one that collapsed, validating more than ``ANSWER_TOLERANCE``
below the best trial kept at the rung before, loses to it, and the stop reason says so). Pure:
no clock, files or processes.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from seer_torch.policies import seer as planner
from seer_torch.policies.base import (
    ANSWER_TOLERANCE,
    Decision,
    JobEvent,
    PolicyContext,
    Snapshot,
    best_at_rungs,
)
from seer_torch.policies.costs import job_time_s, list_scheduled_makespan_s, num_waves, wave_overheads_s
from seer_torch.policies.engine import BAD_STATUSES, RoundEngine, round_record, stopped_short
from seer_torch.policies.plan_types import planner_inputs_from_context
from seer_torch.policies.seer_rounds import (
    RungReplan,
    best_effort,
    carry,
    carry_fewer,
    carry_more,
    planned_counts,
    raise_target,
    rounds_as_planned,
    rungs_left,
    select_survivors,
    truncation_note,
)
from seer_torch.policies.trial_speed import epoch_time_at_s, sync_by_world_s

__all__ = ["SeerPolicy", "list_scheduled_makespan_s", "planner_inputs_from_context", "select_survivors"]


class SeerPolicy(RoundEngine):
    """SEER (Sequential Elimination with Elastic Resources, ACM SoCC 2021) as a policy: the
    round engine (:class:`~seer_torch.policies.engine.RoundEngine`) with the planner's rounds,
    re-planned at each rung (:mod:`seer_torch.policies.seer_rounds`).

    See the module docstring; the plan and its objective are in :mod:`seer_torch.policies.seer`.
    """

    name = "seer"
    reserved_slots = None  # elastic: only held slots are billed
    stall_finishes = False  # its plan fits its slots; a round waits for its members
    repeat_finish = True

    def __init__(self) -> None:
        self.ctx: PolicyContext | None = None
        self.plan: planner.Plan | None = None
        self.plan_epoch_time_s = 0.0  # the profile's epoch the first plan assumed
        self.replans: list[dict[str, Any]] = []
        self._news: list[str] = []  # re-plans that changed the plan, for the live status (news())
        self._more_budget = False  # more_budget(): the next rung with no round left plans one more
        self.remaining: list[planner.RoundPlan] = []
        self.current: planner.RoundPlan | None = None
        self.reserve: list[int] = []  # replacements for the current round, best first
        self.replacements: list[dict[str, Any]] = []
        self.completed_rungs: list[int] = []
        self._truncated: str | None = None  # a re-plan cut the remaining rounds short
        self._last_replan: str | None = None  # the message of a later, feasible re-plan of them
        self._round_started_s = 0.0  # when the current round started (Snapshot.now_s)
        self._engine_reset()

    # -- Policy protocol ----------------------------------------------------------------------
    def _require_setup(self) -> None:
        if self.ctx is None or self.plan is None:
            raise RuntimeError("SeerPolicy.setup(context) must be called first")

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
        that draw; configurations differ up to 6x in epoch time; the first wave's jobs start
        cold, the later ones pay the later waves' overhead,
        :func:`~seer_torch.policies.costs.wave_overheads_s`). Money stays on the context's
        typical epoch: later rounds train survivors not known yet. ``n_1`` depends on those
        times, so the plan is repeated on the first ``n_1`` of the plan before until ``n_1``
        repeats (at most 8 plans)."""
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
            first_s, later_s = wave_overheads_s(context.overheads, w, None)
            jobs_s = [job_time_s(first_s if i < num_lanes else later_s, epochs, tau, speed)
                      for i, tau in enumerate(draws)]
            makespan_s = list_scheduled_makespan_s(jobs_s, num_lanes)
            waves = num_waves(n, num_lanes)
            if first_s == later_s:
                wave_tau = max(1e-9, (makespan_s / waves - first_s) * speed / epochs)
            else:  # makespan = first_s + (waves - 1) * later_s + waves * epochs * tau' / s(W)
                trained_s = makespan_s - first_s - (waves - 1) * later_s
                wave_tau = max(1e-9, trained_s / waves * speed / epochs)
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

    def answer(self, snapshot: Snapshot) -> tuple[str, int] | None:
        """The best trial at the completed rungs (:func:`best_at_rungs`) and, when the
        current round was cut short (:meth:`cut_epoch`), at the epoch it was cut at."""
        cut = self.cut_epoch(snapshot)
        return best_at_rungs(snapshot.trials, self.completed_rungs + ([cut] if cut is not None else []))

    def cut_epoch(self, snapshot: Snapshot) -> int | None:
        """The epoch the current round was cut at, when the run ended inside it (the deadline
        or the money stopped its jobs, which keep every epoch they reported,
        docs/fault-tolerance.md) with one member still in the running (a lone finalist): the
        epoch it saved, when it is stopped, reported a finite score there, and that lies past the
        last completed rung; else ``None``. The answer is then still the best trial of the last
        completed rung (docs/cases.md, case 6: it was carried as the best there, unless it collapsed
        after it), judged where its checkpoint is. Several finalists cut at different epochs
        are compared at the last completed rung, as before. Seen: a final round planned at
        19.8 s took 22.5 s (its ``W = 2`` epochs 5-18% slower than in the round before, in 4
        of 4 such runs); the deadline stopped its lone finalist after epoch 55, short of its
        target, and the answer was judged at the last completed rung, 17."""
        if self.current is None or not self.round_records or self.round_records[-1].get("completed"):
            return None
        by_index = {t.index: t for t in snapshot.trials.values()}
        if any(i not in by_index for i in self.members):
            return None  # a member never started
        alive = [by_index[i] for i in self.members if by_index[i].status not in ("eliminated", *BAD_STATUSES)]
        if len(alive) != 1 or alive[0].status == "running":
            return None
        cut = alive[0].epochs
        if cut <= (self.completed_rungs[-1] if self.completed_rungs else 0):
            return None
        return cut if math.isfinite(alive[0].score.get(cut, math.nan)) else None

    def next_round_slots(self) -> int:
        """Slots the next planned round holds at once: its trials times its ``W``, at most the
        slots (0 when no round is planned after the current one). An optional method of a
        policy: on a cluster that rents machines, the executor asks for them ahead, so they boot
        while the current round ends (:meth:`seer_torch.executor.tuner.Tuner.provision`)."""
        if not self.remaining or self.ctx is None:
            return 0
        r = self.remaining[0]
        return min(r.num_trials * r.world_size, self.ctx.num_slots)

    def more_budget(self) -> None:
        """The run was given more budget (``seer resume --time-budget/--money-budget``): when
        the next rung closes with no round left and its epoch short of ``max_epochs`` (a plan
        cut by its budget: ``BEST EFFORT``), plan one more round to ``max_epochs`` for the
        finalists, which the re-plan at that rung fits to the budgets left, as at any rung. An
        optional method of a policy (:func:`~seer_torch.policies.base.give_more_budget`)."""
        self._more_budget = True

    def news(self) -> list[str]:
        """The re-plans since the last call that changed the plan (carried fewer or more, raised
        the target, best effort), one line each, for the run's log and live status; the full
        record is :meth:`report`'s ``replans``. An optional method of a policy: the executor
        shows what a policy that has it says after each decision."""
        news, self._news = self._news, []
        return news

    def report(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "plan": self.plan.to_dict() if self.plan else None,
            "replans": self.replans,
            "replacements": self.replacements,
            "rounds": self.round_records,
            "completed_rungs": list(self.completed_rungs),
        }

    # -- the engine's hooks -------------------------------------------------------------------
    def _on_events(self, snapshot: Snapshot) -> None:
        """Follow the slots; relaunch members the executor stopped short (every time: the round
        waits for them), first and at the round's ``W``, trimming the round when they can no
        longer reach its rung; replace members that diverged or failed."""
        assert self.ctx is not None
        if snapshot.num_slots != self.ctx.num_slots:
            self._use_slots(snapshot.num_slots)
        for ev in snapshot.events:
            self.tracker.ended(ev.index)
        stopped = [ev.index for ev in snapshot.events
                   if ev.index in self.members and stopped_short(ev, snapshot.trials.get(ev.trial_id))]
        self.tracker.queue[:0] = stopped  # launched again first, at the round's W
        if stopped and self.current is not None and self._fit_current_round(snapshot) is None:
            self._finish(self._truncated or "")
            return
        for ev in snapshot.events:
            if ev.outcome in BAD_STATUSES and ev.index in self.members and self.current is not None:
                self._replace(ev, snapshot)

    def _begin(self, snapshot: Snapshot) -> None:
        assert self.ctx is not None and self.plan is not None
        if not self.remaining:
            self._finish(self.plan.message)
            return
        n1 = self.plan.num_configurations
        self._round_started_s = snapshot.now_s
        self._start_plan_round(self.remaining.pop(0), list(range(n1)))
        self.reserve = list(range(n1, self.ctx.max_configurations))  # fresh configurations

    def _close_round(self, snap: Snapshot) -> list[Decision]:
        """Who survives a rung in SEER: the current round ended; rank the members
        (:func:`~.seer_rounds.select_survivors`, over :func:`~.engine.rank_at_rung`), take the
        counts from :func:`~.seer_rounds.planned_counts` (the survivor-count rule
        :func:`~.rungs.survivors_at_rung`), re-plan the rounds left (:meth:`_rounds_left`, which
        may carry more or fewer), eliminate the others and start the next round (or finish)."""
        assert self.current is not None and self.ctx is not None and self.plan is not None
        rung = self.current.rung_epoch
        self.round_records[-1]["completed"] = True
        self.completed_rungs.append(rung)
        by_index = {t.index: t for t in snap.trials.values()}
        members = [by_index[i] for i in self.members if i in by_index]
        ranked = select_survivors(members, rung, len(members))
        # The next-best are held back to replace a survivor that diverges or fails in the next
        # round; the previous round's reserve is no longer needed.
        old_reserve = [by_index[i] for i in self.reserve if i in by_index]
        if not self.remaining and self._more_budget and rung < self.ctx.max_epochs:
            # More budget for a plan that ran out short of max_epochs: one more round for the
            # finalists, to max_epochs; the re-plan below fits it to the budgets left.
            self._more_budget = False
            finalists = max(1, min(len(members), self.plan.num_finalists or 1))
            self.remaining = [dataclasses.replace(self.current, index=self.current.index + 1,
                                                  start_epoch=rung, rung_epoch=self.ctx.max_epochs,
                                                  num_trials=finalists)]
        survivors, self.reserve, out = carry(ranked, len(ranked), members, old_reserve, bool(self.remaining))
        if not survivors:
            self._finish("no trial has a valid result at the last rung")
            return out
        if not self.remaining:
            # "": the plan ran to its end; a cut plan names the rounds its last re-plan kept
            last = f" Last re-plan: {self._last_replan}" if self._last_replan else ""
            self._finish(((self._truncated or "") + last + self._answer_note(snap)).strip())
            return out
        rungs = rungs_left(self.plan, rung, self.remaining)
        counts = planned_counts(self.plan, len(ranked), rungs)
        previous_target = self.schedule_epochs
        # The rounds left train the survivors only: plan with the epoch times measured on the
        # trials each candidate carries (RungReplan.inputs_for).
        base_inputs = planner_inputs_from_context(
            self.ctx,
            time_left_s=snap.time_left_s,
            money_left_usd=snap.money_left_usd,
            epoch_time_s=snap.epoch_time_s,
            overhead_s=snap.job_overhead_s,
            continue_overhead_s=snap.continue_overhead_s,
            warm_start_overhead_s=snap.warm_start_overhead_s,
            eta=self.plan.eta,  # what the plan chose, when the experiment left it open
            num_finalists=self.plan.num_finalists,
            # a cluster's measured machine start, else the experiment's; the next round's
            # machines were asked for when the round just closed started
            machine_start_s=(snap.machine_start_s if snap.machine_start_s is not None
                             else self.ctx.machine_start_s),
            previous_round_s=max(0.0, snap.now_s - self._round_started_s),
        )
        sync_s = sync_by_world_s(self.ctx.scaling, snap.trials.values(), self.ctx.world_size_ladder)
        at = RungReplan(self.ctx, base_inputs, tuple(ranked), rungs, rung, self.current,
                        tuple(self.remaining), snap.time_left_s, snap.money_left_usd, sync_s,
                        None if self.ctx.retarget_in_place else previous_target)
        new, carried, reason, extended = self._rounds_left(at, counts)
        survivors, self.reserve, out = carry(ranked, carried, members, old_reserve, True)
        if extended and len(new.rounds) == 1 and len(survivors) > new.rounds[0].num_trials:
            # the others stay paused at this rung, first in line to replace them
            m = new.rounds[0].num_trials
            self.reserve = [t.index for t in survivors[m:]] + self.reserve
            survivors = survivors[:m]
        self.replans.append({"at_s": snap.now_s, "planned_survivors": list(counts),
                             "survivors": [r.num_trials for r in new.rounds], "reason": reason,
                             "plan": new.to_dict()})
        if reason != "as planned":
            self._news.append(f"re-plan at epoch {rung}: {reason}")
        if not new.rounds:
            self._finish(f"budget left cannot pay for round {self.current.index + 1}: {new.message}"
                         + self._answer_note(snap))
            return out
        max_epochs = self.ctx.max_epochs
        if new.target_epochs >= max_epochs:
            self._truncated = self._last_replan = None  # the run reaches max_epochs again
        elif new.target_epochs != previous_target or self._truncated is None:
            self._truncated = truncation_note(at, new, max_epochs)
            self._last_replan = None
        else:
            self._last_replan = new.message
        self.remaining = list(new.rounds)
        self._round_started_s = snap.now_s
        # The round's record predicts what its jobs at their own measured epochs take, not the
        # plan's mean, which underestimates a round whose slowest trial is slower than the mean.
        self._start_plan_round(self.remaining.pop(0), [t.index for t in survivors],
                               predicted_s=at.next_round_s(new))
        return out

    def _rounds_left(self, at: RungReplan, counts: tuple[int, ...]) -> tuple[planner.Plan, int, str, bool]:
        """The re-plan of the rounds left and how many survivors it carries to the next rung:
        as planned, then carry fewer, raise the target, carry more, or best effort
        (:mod:`seer_torch.policies.seer_rounds`). Returns ``(plan, carried, reason, extended)``,
        ``extended`` when best effort added a round short of the next rung."""
        assert self.ctx is not None and self.plan is not None
        new = rounds_as_planned(at, counts)
        carried, reason = counts[0], "as planned"
        new, used, fewer = carry_fewer(at, new, counts)
        if fewer is not None:
            carried, reason = used[0], fewer
        new, raised = raise_target(at, new, used, self.ctx.max_epochs)
        reason += raised
        if at.fits(new) and used == counts and self.plan.binding in ("time", "money"):
            # A budget limited the plan (when none did, the halving stands: ample budgets are
            # not spent for their own sake).
            more = carry_more(at, new, counts, max(2, self.plan.eta), self.plan_epoch_time_s)
            if more is not None:
                new, used, carried, reason = more
        extended = False
        if not at.fits(new):
            new, reason, extended = best_effort(at, new, used)
        if new.rounds and new.num_finalists > new.rounds[-1].num_trials:
            new = dataclasses.replace(new, num_finalists=new.rounds[-1].num_trials)  # fewer were carried
        return new, carried, reason, extended

    # -- rounds -------------------------------------------------------------------------------
    def _fit_current_round(self, snap: Snapshot) -> int | None:
        """The jobs of the current round still to launch (a resume on fewer slots handed some
        back at a narrower ``W``) must end before the deadline: when they cannot reach the
        round's rung, the rung becomes the most epochs they can reach and the rounds after it
        (which the re-plan at the rung would otherwise adapt) are dropped (``BEST EFFORT``; every
        later launch takes it as its schedule's horizon).
        Returns the rung, or ``None`` when not one more epoch fits (the run finishes with the
        completed rungs). Each job: the measured overhead plus its epochs at its trial's own
        measured epoch time over ``s(W)``, list-scheduled on ``num_slots // W`` lanes."""
        assert self.ctx is not None and self.current is not None
        rp, w = self.current, self.tracker.world_size
        views = {t.index: t for t in snap.trials.values()}
        queued = [views[i] for i in self.tracker.queue if i in views]
        if not queued:
            return rp.rung_epoch
        overhead_s = snap.job_overhead_s if snap.job_overhead_s is not None else self.ctx.resize_s
        default_tau = snap.epoch_time_s if snap.epoch_time_s is not None else self.ctx.epoch_time_s
        sync_s = sync_by_world_s(self.ctx.scaling, snap.trials.values(), self.ctx.world_size_ladder)
        epoch_s = {t.index: epoch_time_at_s(t, w, default_tau, self.ctx.scaling, sync_s) for t in queued}

        def makespan_s(rung: int) -> float:
            jobs = [job_time_s(overhead_s, rung - t.epochs, epoch_s[t.index], 1.0) for t in queued]
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
        self._truncated = (f"{head} cannot carry a trial past epoch {best}, "
                           f"short of max_epochs ({max_epochs}); "
                           f"the best is trained to epoch {best} of {max_epochs} instead.")
        self._last_replan = None
        self.current = dataclasses.replace(rp, rung_epoch=best)
        self.tracker.rung_epoch = best
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
        self.tracker.world_size = min(self.tracker.world_size, cap)
        if self.current is not None:
            self.current = dataclasses.replace(self.current, world_size=min(self.current.world_size, cap))
        self.remaining = [dataclasses.replace(r, world_size=min(r.world_size, cap)) for r in self.remaining]

    def _replace(self, ev: JobEvent, snap: Snapshot) -> None:
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
            gone = t is not None and t.status in ("eliminated", "failed", "diverged", "running")
            if gone or (t is not None and t.epochs >= rp.rung_epoch):
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
            self.tracker.queue.append(i)
            self.replacements.append({"at_s": snap.now_s, "round": rp.index, "replaced": ev.trial_id,
                                      "outcome": ev.outcome, "by_index": i})
            return

    def _start_plan_round(
        self, rp: planner.RoundPlan, indexes: list[int], predicted_s: float | None = None
    ) -> None:
        """Launch round ``rp`` with the trials ``indexes`` and record it; ``predicted_s``, when
        given, is the recorded prediction of its wall clock (else the plan's)."""
        self.current = rp
        predicted = rp.predicted_duration_s if predicted_s is None else predicted_s
        record = round_record(
            rp.index, rp.rung_epoch, len(indexes), rp.world_size, predicted, rp.predicted_cost_usd
        )
        self._start_round(rp.index, rp.rung_epoch, rp.world_size, indexes, record)

    def _answer_note(self, snap: Snapshot) -> str:
        """A sentence for the stop reason when the answer is not a trial of the last completed
        rung (a finalist dropped more than :data:`~seer_torch.policies.base.ANSWER_TOLERANCE`
        below it); ``""`` otherwise."""
        answer = best_at_rungs(snap.trials, self.completed_rungs)
        if answer is None or not self.completed_rungs or answer[1] >= self.completed_rungs[-1]:
            return ""
        return (f" The answer is {answer[0]} at epoch {answer[1]}: the trials trained to epoch "
                f"{self.completed_rungs[-1]} validated more than {ANSWER_TOLERANCE:g} below it.")
