"""The steps of closing a SEER round, as named pure functions (:class:`~.seer_policy.SeerPolicy`
calls them in order; each has its own unit test in ``tests/unit/test_round_steps.py``).

At a rung: rank the members (:func:`select_survivors`), keep the best and hold back the
next-best as replacements (:func:`hold_back`, :func:`carry`), decide how many survive to each
rung left (:func:`planned_counts`), then re-plan the rounds left on what the round measured
(:class:`RungReplan`) and adjust, in this order: carry fewer when the rounds left no longer fit
(:func:`carry_fewer`), raise a lowered target (:func:`raise_target`), carry more when a budget
limited the plan and the trials train faster than planned (:func:`carry_more`), and train the
best as far as the budget left allows when not one survivor reaches the target
(:func:`best_effort`). :func:`truncation_note` words a target below ``max_epochs``. The module
docstring of :mod:`seer_torch.policies.seer_policy` says why each rule is there. Pure: no clock,
files or processes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from seer_torch.policies import seer as planner
from seer_torch.policies.base import Decision, Eliminate, PolicyContext, TrialView
from seer_torch.policies.costs import busy_slots, job_time_s, list_scheduled_makespan_s, machine_wait_s
from seer_torch.policies.engine import BAD_STATUSES, OUT_STATUSES, finite_score, rank_at_rung
from seer_torch.policies.rungs import survivors_at_rung
from seer_torch.policies.trial_speed import epoch_time_at_s, trials_scaling

__all__ = [
    "CARRY_FEWER_FRACTIONS",
    "RungReplan",
    "best_effort",
    "bisect_target",
    "carry",
    "carry_fewer",
    "carry_more",
    "extend_best_effort",
    "grown_counts",
    "hold_back",
    "planned_counts",
    "raise_target",
    "rungs_left",
    "select_survivors",
    "truncation_note",
]

#: The fractions of the planned survivors tried, in order, when the rounds left no longer fit.
CARRY_FEWER_FRACTIONS = (0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.0)


def select_survivors(trials: Sequence[TrialView], rung_epoch: int, keep: int) -> list[TrialView]:
    """The ``keep`` best trials by score (the experiment's metric, higher is better) at
    ``rung_epoch``.

    Only trials that reached the rung with a finite score and are neither failed nor
    diverged are eligible. Ties break by trial id (:func:`~.engine.rank_at_rung`).
    """

    def eligible(t: TrialView) -> bool:
        return t.status not in BAD_STATUSES and finite_score(t, rung_epoch)

    return [t for t in rank_at_rung(trials, rung_epoch, lambda t: t, eligible) if eligible(t)][:keep]


def hold_back(ranked: Sequence[TrialView], n: int, old_reserve: Sequence[TrialView]) -> list[int]:
    """The indexes of the ``n`` next-best at this rung (``ranked[n:2n]``), best first; when the
    rung has fewer, the best paused trials of the previous reserve (held at the rung below) fill
    the gap, so that a lone finalist that diverges can still be replaced."""
    held_back = [t.index for t in ranked[n: 2 * n]]
    for t in old_reserve:
        if len(held_back) >= n:
            break
        if t.status == "paused" and t.index not in held_back:
            held_back.append(t.index)
    return held_back


def carry(
    ranked: Sequence[TrialView], n: int, members: Sequence[TrialView], old_reserve: Sequence[TrialView],
    rounds_left: bool,
) -> tuple[list[TrialView], list[int], list[Decision]]:
    """Keep the best ``n``, hold back the next while rounds are left (:func:`hold_back`), and
    eliminate every other member and what the old reserve no longer needs (in that order).
    Returns ``(survivors, reserve indexes, eliminations)``."""
    reserve = hold_back(ranked, n, old_reserve) if rounds_left else []
    kept, held = {t.trial_id for t in ranked[:n]}, set(reserve)
    out: list[Decision] = [
        Eliminate(t.trial_id) for t in list(members) + list(old_reserve)
        if t.trial_id not in kept and t.index not in held and t.status not in OUT_STATUSES
    ]
    return list(ranked[:n]), reserve, out


def rungs_left(plan: planner.Plan, rung: int, remaining: Sequence[planner.RoundPlan]) -> tuple[int, ...]:
    """The rungs the rounds left aim at: the first plan's above ``rung`` (its target, which the
    planner may have set below ``max_epochs``), not those a previous re-plan kept, so a target
    lowered on slow measurements is raised again when the trials turn out faster; the rounds
    left's own when the plan has none above."""
    return tuple(r for r in plan.rungs if r > rung) or tuple(r.rung_epoch for r in remaining)


def planned_counts(plan: planner.Plan, ranked: int, rungs: Sequence[int]) -> tuple[int, ...]:
    """Survivors per rung of ``rungs`` when ``ranked`` trials hold a result at this rung: the
    survivor-count rule (:func:`~seer_torch.policies.rungs.survivors_at_rung`) with the first
    plan's count at that rung as its floor (it holds the plan's finalists), so eta's cut, never
    fewer than planned nor more than reached the rung before; at least 1."""
    eta = max(2, plan.eta)
    planned = {r.rung_epoch: r.num_trials for r in plan.rounds}
    out, prev = [], ranked
    for r in rungs:
        prev = max(1, survivors_at_rung(prev, eta, planned.get(r, plan.num_finalists or 1)))
        out.append(prev)
    return tuple(out)


def grown_counts(counts: Sequence[int], m: int, eta: int) -> tuple[int, ...]:
    """``counts`` with ``m`` survivors at the next rung and, at each later rung, as many more as
    the survivor-count rule keeps (:func:`~seer_torch.policies.rungs.survivors_at_rung` with the
    planned count as its floor: eta's cut, never fewer than planned, never more than the rung
    before)."""
    out_counts, prev = [], m
    for j, c in enumerate(counts):
        g = m if j == 0 else survivors_at_rung(prev, eta, c)
        out_counts.append(g)
        prev = g
    return tuple(out_counts)


def bisect_target(
    plan_for: Callable[[int], planner.Plan], fits: Callable[[planner.Plan], bool], lo: int, hi: int
) -> tuple[planner.Plan | None, int]:
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


@dataclass(frozen=True)
class RungReplan:
    """What re-planning the rounds left at a rung knows (times in seconds, money in USD).

    Attributes:
        ctx: the policy context (its ``num_slots`` the slots now).
        base_inputs: the planner inputs with the budgets left and the run's measured epoch
            time and job overhead, ``eta`` and ``num_finalists`` the first plan's.
        ranked: the members with a valid result at the rung, best first.
        rungs: the rungs the rounds left aim at (:func:`rungs_left`).
        rung: the rung just closed.
        current: the round just closed.
        remaining: the rounds the plan kept after it.
        time_left_s: the deadline left.
        money_left_usd: the money left.
        sync_s: ``W -> b(W)``, the seconds of an epoch at ``W`` that do not shrink with ``W``
            (:func:`~seer_torch.policies.trial_speed.sync_by_world_s`); empty: each trial at
            ``W`` is its epoch on one worker over the profile's ``s(W)``.
        schedule_epochs: the target the survivors' jobs run with (their learning-rate
            schedule's horizon); ``None``: a parked job goes on whatever the target (the
            built-in worker takes a new horizon in place, ``PolicyContext.retarget_in_place``),
            :meth:`overheads_for`.
    """

    ctx: PolicyContext
    base_inputs: planner.PlannerInputs
    ranked: tuple[TrialView, ...]
    rungs: tuple[int, ...]
    rung: int
    current: planner.RoundPlan
    remaining: tuple[planner.RoundPlan, ...]
    time_left_s: float
    money_left_usd: float
    sync_s: Mapping[int, float] = dataclasses.field(default_factory=dict)
    schedule_epochs: int | None = None

    def overheads_for(self, inputs: planner.PlannerInputs, target: int | None) -> planner.PlannerInputs:
        """``inputs`` for a plan to ``target``: a user script's parked job goes on only with
        the learning-rate schedule it runs (its ``config.json``,
        :func:`~seer_torch.backends.base.continue_order`), so when ``target`` is not
        :attr:`schedule_epochs` its next job starts processes again (``continue_s`` left out: a
        relaunch's overhead). Seen (before the built-in worker took a new horizon in place): a
        re-plan that lowered the target priced the final job as a continuation, it paid a 5 s
        relaunch, and the deadline stopped it short of its target."""
        if self.schedule_epochs is None or target == self.schedule_epochs or inputs.continue_s is None:
            return inputs
        return dataclasses.replace(inputs, continue_s=None)

    def inputs_for(self, carried: int, wave: bool) -> planner.PlannerInputs:
        """The inputs for carrying the best ``carried``: the mean of their measured epoch times
        for money (each job is billed its own time) and, with ``wave``, their slowest for wall
        clock (a round ends when its slowest job does); the speedup of those trials
        (:func:`~seer_torch.policies.trial_speed.trials_scaling`: a cheap configuration gains
        less from a second worker than the profile's)."""
        trials = self.ranked[:carried]
        measured = [t.epoch_time_s for t in trials if t.epoch_time_s is not None]
        if not measured:
            return self.base_inputs
        scaling = trials_scaling(trials, self.base_inputs.epoch_time_s, self.ctx.scaling, self.sync_s,
                                 self.ctx.world_size_ladder)
        return dataclasses.replace(self.base_inputs, epoch_time_s=sum(measured) / len(measured),
                                   wave_epoch_time_s=max(measured) if wave else None, scaling=scaling)

    def replan(self, survivor_counts: tuple[int, ...], rung_list: tuple[int, ...] | None = None,
               wave: bool = False) -> planner.Plan:
        """:func:`~seer_torch.policies.seer.replan` of ``survivor_counts`` to ``rung_list``
        (default :attr:`rungs`), keeping the planned world sizes when the rungs are the plan's."""
        rung_list = self.rungs if rung_list is None else rung_list
        planned = tuple(r.world_size for r in self.remaining)
        keep_sizes = rung_list == tuple(r.rung_epoch for r in self.remaining)
        return planner.replan(
            self.overheads_for(self.inputs_for(survivor_counts[0], wave),
                               rung_list[-1] if rung_list else self.schedule_epochs),
            rungs=rung_list,
            survivors=survivor_counts,
            current_epoch=self.rung,
            current_world_size=self.current.world_size,
            first_round_index=self.current.index + 1,
            planned_world_sizes=planned if keep_sizes else None,
            previous_num_trials=self.previous_num_trials,
        )

    @property
    def previous_num_trials(self) -> int:
        """Trials of the round just closed (whether it ran in one wave, so that every
        survivor's kept-alive job waits at the rung)."""
        return max(self.current.num_trials, len(self.ranked))

    def next_round_s(self, plan: planner.Plan) -> float:
        """Wall clock of the plan's next round (it has one): its members' jobs, each at its own
        trial's measured epoch at the round's ``W`` (:func:`~seer_torch.policies.trial_speed.
        epoch_time_at_s`), list-scheduled on the slots (the first wave's jobs paying the
        first wave's overhead, :func:`~seer_torch.policies.seer.first_round_overheads_s`), plus
        its wait for machines when it holds more slots than the round just closed
        (:func:`~seer_torch.policies.costs.machine_wait_s`)."""
        rp = plan.rounds[0]
        first_s, later_s = planner.first_round_overheads_s(
            self.overheads_for(self.base_inputs, plan.rounds[-1].rung_epoch), rp.world_size,
            self.current.world_size, self.previous_num_trials)
        lanes = self.ctx.num_slots // rp.world_size
        default_tau = self.base_inputs.epoch_time_s
        epochs = rp.rung_epoch - rp.start_epoch
        jobs_s = [job_time_s(first_s if i < lanes else later_s, epochs,
                             epoch_time_at_s(t, rp.world_size, default_tau, self.ctx.scaling, self.sync_s),
                             1.0)
                  for i, t in enumerate(self.ranked[:rp.num_trials])]
        slots = self.ctx.num_slots
        wait_s = machine_wait_s(self.base_inputs.machine_start_s,
                                busy_slots(rp.num_trials, rp.world_size, slots),
                                busy_slots(self.previous_num_trials, self.current.world_size, slots),
                                self.base_inputs.previous_round_s or 0.0)
        return list_scheduled_makespan_s(jobs_s, lanes) + wait_s

    def fits(self, plan: planner.Plan) -> bool:
        """Every round left fits the budgets left, and the plan's next round
        (:meth:`next_round_s`) ends before the deadline with the rounds after it as predicted.
        On the mean alone, a final round of one slow and one fast finalist was predicted to fit
        and ran past the deadline in a real run (issue 4). It is checked against the deadline
        itself, not its safety fraction: the safety fraction is already in the plan's budgets,
        and applying it twice carries fewer survivors than the budget pays for."""
        if not plan.feasible or not plan.rounds:
            return plan.feasible
        later_s = sum(r.predicted_duration_s for r in plan.rounds[1:])
        return self.next_round_s(plan) + later_s < self.time_left_s

    def budget_left(self, binding: str) -> str:
        """Words for the budget left that ``binding`` names."""
        if binding == "money":
            return f"the money budget ({self.money_left_usd:.3g} USD left)"
        return f"the deadline ({self.time_left_s:.0f} s left)"


def bound_by(plan: planner.Plan) -> str:
    """Which budget a plan that does not fit breaks: the deadline when it is within budget and
    only its next round's jobs overrun, else the planner's ``binding``."""
    return "money" if not plan.feasible and plan.binding == "money" else "time"


def rounds_as_planned(at: RungReplan, counts: tuple[int, ...]) -> planner.Plan:
    """The rounds left with the planned survivors: world sizes chosen so that even the slowest
    survivor's jobs fit when that is possible; otherwise on the mean, which cuts no survivor
    that the budgets left can pay for."""
    as_planned = at.replan(counts)
    slow = at.replan(counts, wave=True)
    return slow if slow.feasible else as_planned


def carry_fewer(
    at: RungReplan, new: planner.Plan, counts: tuple[int, ...]
) -> tuple[planner.Plan, tuple[int, ...], str | None]:
    """When ``new`` no longer fits (epochs took longer, overheads were larger): carry fewer
    survivors to the target rather than stop short of it, trying
    :data:`CARRY_FEWER_FRACTIONS` of ``counts`` in order. Returns ``(plan, counts used,
    reason)``: ``new`` and ``counts`` with no reason when it fits, ``new`` marked not feasible
    when no fraction fits."""
    if at.fits(new):
        return new, counts, None
    why = ("their next round's jobs would end past the deadline" if new.feasible else
           f"only the rounds to epoch {new.target_epochs} would fit" if new.rounds else
           "not even the next round would fit")
    new = dataclasses.replace(new, feasible=False)
    for f in CARRY_FEWER_FRACTIONS:
        fewer = tuple(max(1, min(c, math.ceil(c * f))) for c in counts)
        if fewer == counts:
            continue
        candidate = at.replan(fewer)
        if at.fits(candidate):
            rungs = at.rungs
            return candidate, fewer, (
                f"carried fewer: the rounds left with {list(counts)} survivors to epoch {rungs[-1]} no "
                f"longer fit the budgets left ({why}); {list(fewer)} go on to epoch {rungs[-1]}")
    return new, counts, None


def raise_target(
    at: RungReplan, new: planner.Plan, used: tuple[int, ...], max_epochs: int
) -> tuple[planner.Plan, str]:
    """When the rounds left fit and their target is below ``max_epochs`` (an ``EXPLORATION
    FIRST`` plan), train the last round to the most epochs the budgets left pay for
    (feasibility is monotone in the target: bisection). Returns ``(plan, reason suffix)``."""
    if not (at.fits(new) and new.target_epochs < max_epochs):
        return new, ""
    def plan_for(t: int) -> planner.Plan:
        return at.replan(used, new.rungs[:-1] + (t,), wave=True)

    stretched, target = bisect_target(plan_for, at.fits, new.target_epochs + 1, max_epochs)
    if stretched is None:
        return new, ""
    return stretched, f"; target raised to epoch {target} (the first plan's: {at.rungs[-1]})"


def carry_more(
    at: RungReplan, new: planner.Plan, counts: tuple[int, ...], eta: int, plan_epoch_time_s: float
) -> tuple[planner.Plan, tuple[int, ...], int, str] | None:
    """When a budget limited the plan (the caller checks) and the survivors train faster than
    the plan assumed (``plan_epoch_time_s``), the budgets left pay for more than eta's cut:
    carry more survivors to the next rung (and as many more at later rungs as eta's cut keeps,
    :func:`grown_counts`), as long as the rounds left fit with the slowest survivor's wall
    clock; never more than half of those that reached the rung (successive halving's cut, the
    gentlest the planner uses), so every rung eliminates. Returns ``(plan, counts, carried,
    reason)``, or ``None`` when no more fit."""

    def faster(m: int) -> bool:
        return at.inputs_for(m, False).epoch_time_s < plan_epoch_time_s

    lo, hi = counts[0], max(counts[0], len(at.ranked) // 2)
    best_new = None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        cand = at.replan(grown_counts(counts, mid, eta), new.rungs, wave=True)
        if at.fits(cand) and faster(mid):
            lo, best_new = mid, cand
        else:
            hi = mid - 1
    if best_new is None or lo <= counts[0]:
        return None
    carried = at.inputs_for(lo, True)
    reason = (f"carried more: the trials carried measured {carried.epoch_time_s:.3g} s an epoch on one "
              f"worker (slowest {carried.wave_epoch_time_s or carried.epoch_time_s:.3g} s) where the plan "
              f"assumed {plan_epoch_time_s:.3g} s, so the budgets left pay for {lo} "
              f"survivors to epoch {at.rungs[0]} where eta's cut keeps {counts[0]}")
    return best_new, grown_counts(counts, lo, eta), lo, reason


def extend_best_effort(at: RungReplan, new: planner.Plan, counts: tuple[int, ...]) -> planner.Plan | None:
    """The plan ``new`` (a prefix of the rounds left) plus one more round that trains the best
    trials to the largest epoch short of the next rung that fits the budgets left (one trial
    decides the epoch; then as many as fit at it, up to the finalists ``counts[-1]``: on free
    slots they cost no wall clock), or ``None`` when not one more epoch fits."""
    rungs = at.rungs
    p = len(new.rounds)
    if p >= len(rungs):
        return None
    lo, hi = (rungs[p - 1] if p else at.rung), rungs[p]
    prefix_rungs, prefix_counts = rungs[:p], counts[:p]
    best, target = bisect_target(lambda t: at.replan(prefix_counts + (1,), prefix_rungs + (t,)), at.fits,
                                 lo + 1, hi - 1)
    if best is None:
        return None
    for m in range(min(counts[p], counts[-1]), 1, -1):
        cand = at.replan(prefix_counts + (m,), prefix_rungs + (target,))
        if at.fits(cand):
            best = cand
            break
    return dataclasses.replace(best, feasible=False)


def best_effort(
    at: RungReplan, new: planner.Plan, used: tuple[int, ...]
) -> tuple[planner.Plan, str, bool]:
    """Not even one survivor reaches the next planned rung after the rounds that fit: train the
    best as far as the budget left allows rather than leave it unspent
    (:func:`extend_best_effort`). Returns ``(plan, reason, extended)``."""
    new = dataclasses.replace(new, feasible=False)
    extended = extend_best_effort(at, new, used)
    if extended is not None:
        new = extended
    head = f"best effort: not one survivor reaches epoch {at.rungs[-1]} within the budgets left; "
    if new.rounds:
        reason = head + f"{new.survivors[-1]} go on to epoch {new.target_epochs}"
    else:
        reason = head + f"none goes on: the best stays at epoch {at.rung}"
    return new, reason, extended is not None


def truncation_note(at: RungReplan, new: planner.Plan, max_epochs: int) -> str:
    """The stop reason of a re-plan whose target is below ``max_epochs``: the budget that bound
    (the one a plan to one more epoch breaks), the epoch reached and ``max_epochs``."""
    target = new.target_epochs
    stopper = at.replan(new.survivors[:-1] + (1,), new.rungs[:-1] + (target + 1,), wave=True)
    return (f"BEST EFFORT: {at.budget_left(bound_by(stopper))} at epoch {at.rung} cannot carry a trial past "
            f"epoch {target}, short of max_epochs ({max_epochs}); the best is trained to epoch {target} of "
            f"{max_epochs} instead. {new.message}")
