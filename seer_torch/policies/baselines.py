"""The baselines SEER is compared against, behind the policy interface of :mod:`.base`.

Every class here implements :class:`~seer_torch.policies.base.Policy` and is pure: no clock, no
files, no processes, no torch, no randomness (the trial indexes are the search space's draw
order, so nothing needs ``context.seed``). Given the same context and the same snapshots, a
policy returns the same decisions.

Policies (DESIGN.md, "Baselines the benchmark compares against")
-----------------------------------------------------------------
``sha``  (:class:`ShaPolicy`) -- synchronous successive halving (Jamieson & Talwalkar 2016) on a
    fixed cluster of ``G`` slots (below), rented for the whole run (``reserved_slots = G``),
    ``W = 1`` per trial. Rungs anchored at ``target`` (below); round k launches
    every survivor to ``r_k`` (``G`` at a time), waits for all, keeps the top ``1/eta``
    (:func:`~.rungs.survivor_counts`) and eliminates the rest.
``hyperband``  (:class:`HyperbandPolicy`) -- Hyperband's brackets (Li et al. 2018) run one
    after another on the same fixed cluster; bracket ``s`` is SHA over the last ``s + 1``
    rungs (:func:`~.rungs.rung_schedules`), most exploratory bracket first.
``asha``  (:class:`AshaPolicy`) -- asynchronous SHA (Li et al. 2020) on the fixed cluster,
    ``W = 1``: whenever a slot is free, promote the best not-yet-promoted trial that is in the
    top ``1/eta`` of its rung (highest rung first), else start a new configuration.
``elastic-sha``  (:class:`ElasticShaPolicy`) -- SHA with one slot per trial, held only while
    its job runs (``reserved_slots = None``: billed per job), up to ``num_slots`` at once.
``elastic-uniform``  (:class:`ElasticUniformPolicy`) -- SHA whose every round splits the
    affordable slots ``G`` evenly over its survivors: ``W_k`` = the largest usable world size
    ``<= G // n_k`` (at least the smallest usable one), billed per job.
``oracle``  (:class:`OraclePolicy`) -- ``context.oracle_index`` (the configuration the
    simulator knows is best) trained alone to ``max_epochs`` in one job.

``eta``: ``context.eta``, or :data:`DEFAULT_ETA` (3, as in Li et al.'s experiments) when the
context leaves it to the policy. ``target``: the epochs the best configuration is trained to,
``max_epochs`` unless the best-effort rule below lowers it; the rungs are then
``rung_schedule(min(min_epochs, target), target, eta)`` and the trials' learning-rate schedule
(``schedule_epochs``) spans ``target``.

Predicted time and cost (the closed form of :mod:`.seer`'s notes)
-----------------------------------------------------------------
With ``tau = epoch_time_s``, ``s(W)`` from the scaling model and ``d_k = r_k - r_{k-1}``, one
trial's job in round k takes ``J_k = overhead_k + d_k * tau / s(W_k)`` (``startup_s`` in a
trial's first round, ``relaunch_s`` when ``W_k == W_{k-1}``, ``resize_s`` otherwise); with
``S`` slots the round runs in ``ceil(n_k / (S // W_k))`` waves and lasts ``waves * J_k``.

- Elastic policies (``elastic-sha``, ``elastic-uniform``, ``oracle``) pay ``n_k`` jobs of
  ``W_k`` slots for ``J_k`` each, every job rounded by :class:`~.billing.Billing`
  (``Billing.job_cost_usd``: granularity and per-job minimum). A prediction *fits* when its
  time is ``<= safety_fraction * time_budget_s`` and its cost ``<= safety_fraction *
  money_budget_usd``.
- Fixed-cluster policies (``sha``, ``hyperband``, ``asha``) pay the rent of their ``g`` slots
  for the run's whole duration, from set-up to their Finish, rounded as one rental
  (``Billing.job_cost_usd(g, duration)``, which is what the executor's meter bills). They plan
  against the *time limit of the cluster* :func:`rent_time_limit`: the smaller of
  ``safety_fraction * time_budget_s`` and the longest duration whose rent fits
  ``safety_fraction * money_budget_usd`` (billing rounding and minimum included: under hourly
  billing a 10-minute run costs an hour). A prediction fits when its duration is within it,
  and they return Finish the moment they are done, so the rent stops.

Comparisons allow 1e-9 relative slack for float round-off. The meter bills a running job (or
the rent) for its time so far, rounded, which is never more than the prediction for its whole
duration; so while jobs take no longer than predicted (exactly so on the simulated backend), a
plan that fits never meets the executor's hard money stop nor its launch refusal: the policies
do not rely on them.

The cluster (fixed-cluster policies and ``elastic-uniform``)
-------------------------------------------------------------
``G = fixed_cluster_slots(context)`` (:func:`cluster_slots`): the largest cluster whose rent for
the whole deadline fits the money budget (at least 1). The policy plans on ``g = G``. When not
even one configuration reaches ``max_epochs`` on ``G`` slots (billing rounding, or a budget that
does not rent one slot for the whole deadline, can make ``G`` slots' rent for the plan itself
break the money limit; for ``elastic-uniform``, ``G`` workers on a single trial may cost too
much), every ``g = G .. 1`` is planned and the one whose plan reaches the largest ``target``
wins (then the most configurations, then the larger ``g``). ``reserved_slots`` and the report's
``cluster_slots`` are that ``g``.

How many configurations (``n``), at a given ``target`` and ``g``
----------------------------------------------------------------
- ``sha``: the largest ``n <= max_configurations`` whose predicted time on ``g`` slots fits the
  cluster's time limit.
- ``elastic-sha``: the largest ``n`` whose predicted time on ``num_slots`` slots and cost fit.
- ``elastic-uniform``: the largest ``n`` whose predicted time on ``g`` slots and cost fit. Time
  is non-decreasing in ``n`` (binary search); cost need not be (``W_k`` changes with ``n_k``),
  so ``n`` is then scanned down from the time bound to the first that also fits the money.
- ``hyperband``: brackets ``s = s_max .. 0`` share the cluster's time limit equally, as
  Hyperband gives every bracket the same budget: bracket j of m gets ``(time left of the limit)
  / (brackets left)``, so what an earlier bracket leaves unused passes to the later ones; its
  ``n_s`` is the largest that fits its share and its part of the ``max_configurations`` pool in
  Hyperband's proportions ``n_s ~ eta**s / (s + 1)`` (new configurations in each bracket; a
  bracket with none left is dropped). ``m`` is the most brackets (the most exploratory ones
  kept) for which every bracket fits at least one configuration; when not even the most
  exploratory bracket alone fits one, the most exploratory bracket that does, alone.
- ``asha``: no ``n``; a job is launched only when it is predicted to end within the cluster's
  time limit (measured from set-up, with the measured epoch time and job overhead when they are
  larger than the profile's), up to ``max_configurations`` configurations.
- ``oracle``: one configuration; ``W`` = the smallest usable world size whose single job to
  ``max_epochs`` fits both budgets (least cost); when none does, the ``W`` that reaches the most
  epochs within them (ties: the smaller), trained to that many epochs.

Best effort: when not even one configuration fits
-------------------------------------------------
As SEER's planner (:func:`.seer.plan`): when no plan trains one configuration to ``max_epochs``
within the budgets, every policy trains the best it can to the largest ``target < max_epochs``
that fits (with its predicted time *and* cost, billing rounding and start-up overheads
included): ``sha``, ``elastic-sha`` and ``elastic-uniform`` run their own schedule anchored at
``target`` with the most configurations that fit it; ``hyperband`` runs its ``s = 0`` bracket
(one job per configuration, straight to ``target``) with the most configurations that fit;
``asha`` anchors its rungs at the largest ``target`` whose one configuration, promoted through
every rung, fits; ``oracle`` trains its configuration to the most epochs its best ``W`` reaches.
One configuration fits ``target`` whenever it fits ``target + 1`` (fewer epochs, and never more
jobs), so ``target`` is found by binary search. The plan's ``feasible`` is then False and its
message starts with ``BEST EFFORT``. When not even one epoch of one configuration fits (its
start-up and one epoch at ``W = 1``, or its minimum bill), the plan is empty: the message starts
with ``NO PLAN``, nothing is launched, no cluster is rented (``reserved_slots = None``) and the
first :meth:`decide` returns Finish.

At run time (``elastic-uniform``)
---------------------------------
``W_k`` is recomputed at each later round's start from the survivors actually left (failed or
diverged trials leave fewer than planned). Fewer trials on more workers can cost more than
the plan, so the recomputed ``W_k`` is used only when the rest of the bracket, predicted from
the time and money actually spent (``Snapshot``), still fits the limits; else the round keeps
its planned ``W_k`` (whose prediction, with fewer trials, is within the plan's).

Events
------
``reached``: the value at the rung is read from the snapshot when the round closes (ASHA: at
once). ``failed`` / ``diverged``: the trial ranks last at its rung and never survives; the
round still completes. ``stopped`` short of its target, not asked for by the policy (the
policies here never stop a running job): the job is relaunched once to the same target; a
second stop counts as not reaching the rung (ranks last, never survives). A policy never
launches into more than ``Snapshot.free_slots`` (nor, on a fixed cluster, more than ``g``), never
past ``max_epochs``, and returns :class:`~.base.Finish` when done (or when it cannot go on:
nothing running and no free slot for what it must launch). :meth:`answer` is
:func:`~.base.best_at_rungs` over the policy's rungs, so a diverged trial is never the answer.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from seer_torch.errors import ConfigError
from seer_torch.policies.base import (
    Decision,
    Eliminate,
    Finish,
    JobEvent,
    Launch,
    PolicyContext,
    RoundTracker,
    Snapshot,
    TrialView,
    best_at_rungs,
    fixed_cluster_slots,
)
from seer_torch.policies.rungs import rung_schedule, rung_schedules, survivor_counts

__all__ = [
    "DEFAULT_ETA",
    "AshaPolicy",
    "ElasticShaPolicy",
    "ElasticUniformPolicy",
    "HyperbandPolicy",
    "OraclePolicy",
    "RoundPrediction",
    "ShaPolicy",
    "cluster_slots",
    "predict_rounds",
    "rent_time_limit",
    "uniform_world_size",
]

#: ``eta`` when the context leaves it to the policy (Li et al. 2018 and 2020 use 3 and 4).
DEFAULT_ETA = 3

# Relative slack when comparing a prediction with a limit (float round-off in sums).
_REL_TOL = 1e-9

_BAD = ("failed", "diverged")
_OUT = ("failed", "diverged", "eliminated")


# -- the closed-form predictions -----------------------------------------------------------------


@dataclass(frozen=True)
class RoundPrediction:
    """One planned round: its rung, trials, world size, waves and predicted time and cost.

    ``cost_usd`` is what the round's jobs are billed when only held slots are billed (elastic);
    a fixed cluster's rent is computed over the whole run instead.
    """

    rung_epoch: int
    start_epoch: int
    num_trials: int
    world_size: int
    waves: int
    job_s: float
    duration_s: float
    cost_usd: float


def predict_rounds(
    context: PolicyContext,
    rungs: Sequence[int],
    counts: Sequence[int],
    world_sizes: Sequence[int],
    num_slots: int,
    start_epoch: int = 0,
    previous_world_size: int | None = None,
) -> tuple[RoundPrediction, ...]:
    """Predict each round of a successive-halving schedule (see the module notes).

    Args:
        context: the policy context (epoch time, scaling, overheads, billing).
        rungs: ``r_1 < ... < r_K``.
        counts: ``n_k`` per round.
        world_sizes: ``W_k`` per round.
        num_slots: slots the rounds may hold at once (``S``).
        start_epoch: ``r_0``.
        previous_world_size: ``W`` of the trials' previous job when they have run before: the
            first round then pays ``relaunch_s`` (same ``W``) or ``resize_s``; ``None``: it
            pays ``startup_s``.
    """
    out = []
    prev_epoch, prev_w = start_epoch, previous_world_size
    for k, (rung, n, w) in enumerate(zip(rungs, counts, world_sizes)):
        if k == 0 and previous_world_size is None:
            overhead = context.startup_s
        elif w == prev_w:
            overhead = context.relaunch_s
        else:
            overhead = context.resize_s
        job_s = overhead + (rung - prev_epoch) * context.epoch_time_s / context.scaling.speedup_at(w)
        waves = -(-n // max(1, num_slots // w))
        out.append(
            RoundPrediction(
                rung_epoch=rung,
                start_epoch=prev_epoch,
                num_trials=n,
                world_size=w,
                waves=waves,
                job_s=job_s,
                duration_s=waves * job_s,
                cost_usd=n * context.billing.job_cost_usd(w, job_s),
            )
        )
        prev_epoch, prev_w = rung, w
    return tuple(out)


def _time_limit(context: PolicyContext) -> float:
    limit = context.safety_fraction * context.time_budget_s
    return limit + _REL_TOL * max(1.0, limit) if math.isfinite(limit) else limit


def _money_limit(context: PolicyContext) -> float:
    limit = context.safety_fraction * context.money_budget_usd
    return limit + _REL_TOL * max(1.0, limit) if math.isfinite(limit) else limit


def rent_time_limit(context: PolicyContext, slots: int) -> float:
    """The longest run a fixed cluster of ``slots`` slots may plan, seconds.

    The smaller of ``safety_fraction * time_budget_s`` and the longest duration ``D`` whose
    rent ``Billing.job_cost_usd(slots, D)`` fits ``safety_fraction * money_budget_usd``
    (granularity and minimum included; 1e-9 relative slack on both). ``-1.0`` when not even
    the rent's minimum fits (nothing does).
    """
    t_limit = _time_limit(context)
    m_limit = _money_limit(context)
    billing = context.billing
    if billing.price_usd_per_slot_hour <= 0 or math.isinf(m_limit):
        return t_limit
    billed_s = m_limit * 3600.0 / (billing.price_usd_per_slot_hour * max(1, slots))
    if billing.minimum_s > billed_s:
        return -1.0
    if billing.granularity_s > 0:
        longest = math.floor(billed_s / billing.granularity_s + 1e-9) * billing.granularity_s
    else:
        longest = billed_s
    return min(t_limit, longest)


def _largest_fitting(fits: Callable[[int], bool], upper: int) -> int:
    """The largest ``n`` in ``[1, upper]`` with ``fits(n)``, for ``fits`` true then false as ``n``
    grows; 0 when ``fits(1)`` is false. The result always satisfies ``fits``."""
    if upper < 1 or not fits(1):
        return 0
    if fits(upper):
        return upper
    lo, hi = 1, upper - 1  # fits(lo), not fits(hi + 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _largest_target(one_fits: Callable[[int], bool], max_epochs: int) -> int:
    """The largest ``target`` in ``[1, max_epochs]`` at which one configuration fits (0: none).

    One configuration fitting ``target + 1`` fits ``target`` (module notes), so this is
    :func:`_largest_fitting` over targets."""
    return _largest_fitting(one_fits, max_epochs)


def _schedule(context: PolicyContext, eta: int, target: int) -> tuple[int, ...]:
    """The rungs anchored at ``target`` (``max_epochs`` normally)."""
    return tuple(rung_schedule(min(context.min_epochs, target), target, eta))


def cluster_slots(context: PolicyContext) -> int:
    """``G``: :func:`~.base.fixed_cluster_slots`, except that an infinite money budget affords
    every slot (``fixed_cluster_slots`` raises ``OverflowError`` on it, and answers 1 when the
    deadline is infinite too)."""
    if math.isinf(context.money_budget_usd):
        return context.num_slots
    return fixed_cluster_slots(context)


def _eta_of(context: PolicyContext) -> int:
    eta = DEFAULT_ETA if context.eta is None else context.eta
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise ConfigError("eta", eta, "an integer >= 2, or None for the policy's default (3)")
    return eta


def _check_rungs(rungs: Sequence[int], max_epochs: int) -> None:
    if not rungs or rungs[-1] > max_epochs or any(b <= a for a, b in zip(rungs, rungs[1:])):
        raise AssertionError(f"bad rungs {tuple(rungs)} for max_epochs={max_epochs}")


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _used(budget: float, left: float) -> float:
    """What was used of a budget since set-up (``budget`` from the context, ``left`` from a
    snapshot); 0 when the budget is infinite (its limit is too)."""
    return max(0.0, budget - left) if math.isfinite(budget) and math.isfinite(left) else 0.0


def _no_plan_message(name: str, context: PolicyContext, where: str) -> str:
    return (
        f"NO PLAN: {name} cannot fit even one epoch of one configuration within the budgets "
        f"({where}; one epoch takes {context.epoch_time_s:g} s on one worker plus "
        f"{context.startup_s:g} s start-up; a plan may use "
        f"{context.safety_fraction * context.time_budget_s:g} s and "
        f"{context.safety_fraction * context.money_budget_usd:.4g} USD, safety fraction "
        f"{context.safety_fraction:g}); nothing is launched."
    )


# -- round-synchronous policies (sha, hyperband, elastic-sha, elastic-uniform) -------------------


@dataclass(frozen=True)
class _Bracket:
    """One successive-halving run: rounds over ``rungs`` with ``counts[k]`` trials of
    ``world_sizes[k]`` workers; its configurations are ``first_index .. first_index + n - 1``."""

    rungs: tuple[int, ...]
    counts: tuple[int, ...]
    world_sizes: tuple[int, ...]
    first_index: int
    predictions: tuple[RoundPrediction, ...]

    @property
    def num_configurations(self) -> int:
        return self.counts[0]

    @property
    def predicted_time_s(self) -> float:
        return sum(p.duration_s for p in self.predictions)

    @property
    def predicted_cost_usd(self) -> float:
        return sum(p.cost_usd for p in self.predictions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rungs": list(self.rungs),
            "survivors": list(self.counts),
            "world_sizes": list(self.world_sizes),
            "first_index": self.first_index,
            "num_configurations": self.num_configurations,
            "predicted_time_s": self.predicted_time_s,
            "predicted_cost_usd": self.predicted_cost_usd,
            "rounds": [asdict(p) for p in self.predictions],
        }


class _PolicyBase:
    """What every baseline shares: the set-up guard and the schedule's horizon (the policy's
    target epoch, once set up; ``max_epochs`` before it chose one)."""

    _ctx: PolicyContext | None
    _target: int

    def _require_setup(self) -> None:
        if self._ctx is None:
            raise RuntimeError(f"{type(self).__name__}.setup(context) must be called first")

    @property
    def schedule_epochs(self) -> int:
        self._require_setup()
        return self._target or self._ctx.max_epochs  # type: ignore[union-attr]

    def _cluster_report(self) -> dict[str, Any]:
        """The first fields of a fixed-cluster baseline's report: name, eta and cluster sizes."""
        return {
            "policy": self.name,  # type: ignore[attr-defined]
            "eta": self._eta,  # type: ignore[attr-defined]
            "cluster_slots": self._G,  # type: ignore[attr-defined]
            "affordable_slots": self._G_afford,  # type: ignore[attr-defined]
            "reserved_slots": self.reserved_slots,  # type: ignore[attr-defined]
        }


class _RoundPolicy(_PolicyBase, ABC):
    """Shared engine of the round-synchronous policies: brackets of rounds, one after another.

    Subclasses set ``name`` and ``fixed_cluster`` and implement :meth:`_plan` (which may set
    ``self._G``, the cluster it plans on); they may override :meth:`_round_world_size`. An
    empty plan (``NO PLAN``) finishes at the first :meth:`decide` and rents nothing.
    """

    name = ""
    fixed_cluster = False

    def __init__(self) -> None:
        self._ctx: PolicyContext | None = None

    # -- planning (subclasses) ---------------------------------------------------------------

    @abstractmethod
    def _plan(self, context: PolicyContext) -> tuple[list[_Bracket], dict[str, Any]]:
        """The brackets to run (empty: nothing fits) and the report's facts about the choice
        (``feasible`` and ``message`` at least); every round-by-round baseline defines it."""

    def _round_world_size(self, bracket: _Bracket, k: int, num_trials: int, snapshot: Snapshot | None) -> int:
        """``W`` of round ``k`` of ``bracket`` when it starts with ``num_trials`` survivors."""
        return bracket.world_sizes[k]

    # -- the protocol ------------------------------------------------------------------------

    def setup(self, context: PolicyContext) -> None:
        self._ctx = context
        self._eta = _eta_of(context)
        self._G_afford = cluster_slots(context)
        self._G = self._G_afford  # the cluster planned on; _plan may choose a smaller one
        self._brackets, self._facts = self._plan(context)
        self._cap = self._G if self.fixed_cluster else context.num_slots
        for b in self._brackets:
            _check_rungs(b.rungs, context.max_epochs)
            if b.first_index + b.num_configurations > context.max_configurations:
                raise AssertionError("a bracket draws more than max_configurations")
        self._answer_rungs = sorted({r for b in self._brackets for r in b.rungs})
        self._target = max(self._answer_rungs) if self._answer_rungs else context.max_epochs
        # Round k of bracket b has index offsets[b] + k + 1 (Launch.round_index, the report's
        # "rounds"), whether or not earlier brackets ran all their rounds.
        self._offsets = [sum(len(x.rungs) for x in self._brackets[:b]) for b in range(len(self._brackets))]
        self._tracker = RoundTracker()
        self._started = False
        self._finished = False
        self._finish_reason = ""
        self._b = 0  # current bracket
        self._k = 0  # current round of the bracket
        self._round_no = 0  # index of the current round (Launch.round_index, 1-based)
        self._members: list[int] = []
        self._bad: set[int] = set()
        self._retried: set[tuple[int, int]] = set()  # (round_no, index)
        self._rounds: list[dict[str, Any]] = []  # rounds started, for the report

    @property
    def reserved_slots(self) -> int | None:
        self._require_setup()
        return self._G if self.fixed_cluster and self._brackets else None

    def decide(self, snapshot: Snapshot) -> list[Decision]:
        self._require_setup()
        if self._finished:
            return []
        by_index = {t.index: t for t in snapshot.trials.values()}
        for event in snapshot.events:
            self._note_event(event, by_index)
        for t in snapshot.trials.values():
            if t.status in _BAD:
                self._bad.add(t.index)
        out: list[Decision] = []
        if not self._started:
            self._started = True
            if not self._brackets:
                self._finish(self._facts["message"])
            else:
                self._start_bracket(0, snapshot)
        while not self._finished and self._tracker.done:
            out.extend(self._close_round(by_index, snapshot))
        if not self._finished:
            held = len(self._tracker.running) * self._tracker.world_size
            free = max(0, min(snapshot.free_slots, self._cap - held))
            out.extend(self._tracker.launches(free))
            if not self._tracker.running:
                self._finish(
                    f"stalled: no free slots for W={self._tracker.world_size} "
                    f"({snapshot.free_slots} free) and nothing running"
                )
        if self._finished:
            out.append(Finish(self._finish_reason))
        return out

    def answer(self, snapshot: Snapshot) -> tuple[str, int] | None:
        self._require_setup()
        return best_at_rungs(snapshot.trials, self._answer_rungs)

    def _time_limit_s(self) -> float:
        """The time a plan may predict: the cluster's (:func:`rent_time_limit`) on a fixed
        cluster, else ``safety_fraction * time_budget_s``."""
        assert self._ctx is not None
        if self.fixed_cluster:
            return rent_time_limit(self._ctx, self._G)
        return self._ctx.safety_fraction * self._ctx.time_budget_s

    def report(self) -> dict[str, Any]:
        self._require_setup()
        ctx = self._ctx
        assert ctx is not None
        time_s = sum(b.predicted_time_s for b in self._brackets)
        if self.fixed_cluster:
            cost = ctx.billing.job_cost_usd(self._G, time_s) if self._brackets else 0.0
        else:
            cost = sum(b.predicted_cost_usd for b in self._brackets)
        first = self._brackets[0] if self._brackets else None
        planned_rounds = [
            {"index": self._offsets[j] + k + 1, "bracket": j, **asdict(p)}
            for j, b in enumerate(self._brackets)
            for k, p in enumerate(b.predictions)
        ]
        plan = {
            "num_configurations": sum(b.num_configurations for b in self._brackets),
            "rungs": list(first.rungs) if first else [],
            "survivors": list(first.counts) if first else [],
            "world_sizes": list(first.world_sizes) if first else [],
            "target_epochs": self._target if self._brackets else 0,
            "predicted_time_s": time_s,
            "predicted_cost_usd": cost,
            "time_limit_s": ctx.safety_fraction * ctx.time_budget_s,
            "money_limit_usd": ctx.safety_fraction * ctx.money_budget_usd,
            "cluster_time_limit_s": self._time_limit_s(),
            **self._facts,
            "brackets": [b.to_dict() for b in self._brackets],
            "rounds": planned_rounds,
        }
        return {
            **self._cluster_report(),
            "max_slots_held": self._cap,
            "plan": plan,
            "rounds": [dict(r) for r in self._rounds],
            "finish_reason": self._finish_reason,
        }

    # -- the engine --------------------------------------------------------------------------

    def _finish(self, reason: str) -> None:
        self._finished = True
        self._finish_reason = reason

    def _note_event(self, event: JobEvent, by_index: Mapping[int, TrialView]) -> None:
        i = event.index
        if event.outcome in _BAD:
            self._bad.add(i)
        if i not in self._tracker.running:
            return  # not a job of the current round (e.g. one this policy eliminated)
        self._tracker.ended(i)
        if event.outcome == "stopped" and event.epochs < event.until_epoch:
            view = by_index.get(i)
            key = (self._round_no, i)
            if key not in self._retried and view is not None and view.status == "paused":
                self._retried.add(key)
                self._tracker.queue.insert(0, i)  # relaunch once to the same rung

    def _start_bracket(self, b: int, snapshot: Snapshot | None) -> None:
        self._b = b
        if b >= len(self._brackets):
            self._finish(f"all {len(self._brackets)} bracket(s) done")
            return
        bracket = self._brackets[b]
        first = bracket.first_index
        self._start_round(0, list(range(first, first + bracket.num_configurations)), snapshot)

    def _start_round(self, k: int, indexes: list[int], snapshot: Snapshot | None) -> None:
        bracket = self._brackets[self._b]
        w = self._round_world_size(bracket, k, len(indexes), snapshot)
        self._k = k
        self._round_no = self._offsets[self._b] + k + 1
        self._members = list(indexes)
        self._tracker.start(self._round_no, bracket.rungs[k], w, indexes)
        planned = bracket.predictions[k]
        self._rounds.append(
            {
                "index": self._round_no,
                "bracket": self._b,
                "rung_epoch": bracket.rungs[k],
                "num_trials": len(indexes),
                "world_size": w,
                "predicted_duration_s": planned.duration_s,
                "predicted_cost_usd": planned.cost_usd,
                "completed": False,
            }
        )

    def _rank_key(self, i: int, rung: int, by_index: Mapping[int, TrialView]) -> tuple:
        view = by_index.get(i)
        tid = view.trial_id if view is not None else f"~{i:09d}"
        if self._valid(i, rung, by_index):
            return (0, -view.val_accuracy[rung], tid)  # type: ignore[union-attr]
        return (1, 0.0, tid)

    def _valid(self, i: int, rung: int, by_index: Mapping[int, TrialView]) -> bool:
        view = by_index.get(i)
        return (
            view is not None
            and i not in self._bad
            and view.status not in _OUT
            and _finite(view.val_accuracy.get(rung))
        )

    def _close_round(self, by_index: Mapping[int, TrialView], snapshot: Snapshot | None) -> list[Decision]:
        bracket = self._brackets[self._b]
        k = self._k
        rung = bracket.rungs[k]
        ranked = sorted(self._members, key=lambda i: self._rank_key(i, rung, by_index))
        valid = [i for i in ranked if self._valid(i, rung, by_index)]
        last = k + 1 >= len(bracket.rungs)
        keep = 0 if last else bracket.counts[k + 1]
        survivors = valid[:keep]
        self._rounds[-1].update(completed=True, reached=len(valid), survivors=len(survivors))
        out: list[Decision] = []
        if not last:
            kept = set(survivors)
            for i in ranked:
                view = by_index.get(i)
                if i not in kept and view is not None and view.status not in _OUT:
                    out.append(Eliminate(view.trial_id))
        if survivors:
            self._start_round(k + 1, survivors, snapshot)
        else:
            self._start_bracket(self._b + 1, snapshot)
        return out


def _sha_counts(n: int, num_rungs: int, eta: int) -> tuple[int, ...]:
    return survivor_counts(n, num_rungs, eta)


# Planning one successive-halving bracket on ``g`` slots at a target (sha, elastic-sha,
# elastic-uniform): ``world_sizes(g, counts)`` gives W_k, ``fits(g, predictions)`` says
# ``(time fits, money fits)``.
_WorldSizes = Callable[[int, tuple[int, ...]], tuple[int, ...]]
_Fits = Callable[[int, tuple[RoundPrediction, ...]], tuple[bool, bool]]


def _bracket(
    context: PolicyContext, eta: int, g: int, world_sizes: _WorldSizes, target: int, n: int
) -> _Bracket:
    rungs = _schedule(context, eta, target)
    counts = _sha_counts(n, len(rungs), eta)
    ws = world_sizes(g, counts)
    preds = predict_rounds(context, rungs, counts, ws, g)
    return _Bracket(rungs, counts, ws, 0, preds)


def _plan_on(
    context: PolicyContext,
    eta: int,
    g: int,
    world_sizes: _WorldSizes,
    fits: _Fits,
    money_monotone: bool,
) -> tuple[int, int]:
    """``(target, n)`` on ``g`` slots: the largest target one configuration reaches within the
    limits (``max_epochs`` when it can), then the most configurations at it; ``(0, 0)`` when not
    even one epoch fits."""

    def ok(target: int, n: int) -> tuple[bool, bool]:
        return fits(g, _bracket(context, eta, g, world_sizes, target, n).predictions)

    def both(target: int, n: int) -> bool:
        t, m = ok(target, n)
        return t and m

    target = _largest_target(lambda t: both(t, 1), context.max_epochs)
    if target == 0:
        return 0, 0
    if money_monotone:
        return target, _largest_fitting(lambda n: both(target, n), context.max_configurations)
    n = _largest_fitting(lambda n: ok(target, n)[0], context.max_configurations)
    while n > 1 and not both(target, n):
        n -= 1
    return target, max(1, n)


def _choose_slots(
    options: Sequence[int], plan_on: Callable[[int], tuple[tuple, Any, bool]]
) -> tuple[int, Any] | None:
    """The cluster size and its plan (module notes, "The cluster").

    ``plan_on(g)`` returns ``(key, plan, full)``: ``key = (target, ..., g)`` ranks plans
    (``target == 0``: no plan on ``g``), ``full`` says the plan reaches ``max_epochs``. Returns
    ``options[0]`` (``G``) when its plan is full, else the option of the largest key; ``None``
    when no option has a plan."""
    best: tuple[tuple, int, Any] | None = None
    for pos, g in enumerate(options):
        key, plan, full = plan_on(g)
        if pos == 0 and full:
            return g, plan
        if key[0] > 0 and (best is None or key > best[0]):
            best = (key, g, plan)
    return None if best is None else (best[1], best[2])


def _one_bracket_plan(
    name: str,
    context: PolicyContext,
    eta: int,
    options: Sequence[int],
    world_sizes: _WorldSizes,
    fits: _Fits,
    money_monotone: bool,
    fixed: bool,
    where: Callable[[int], str],
) -> tuple[int, list[_Bracket], dict[str, Any]]:
    """``(g, brackets, facts)`` of a one-bracket policy (see the module notes)."""

    def plan_on(g: int) -> tuple[tuple, tuple, bool]:
        target, n = _plan_on(context, eta, g, world_sizes, fits, money_monotone)
        return (target, n, g), (target, n), target == context.max_epochs

    chosen = _choose_slots(options, plan_on)
    if chosen is None:
        g = options[0]
        return g, [], {"feasible": False, "message": _no_plan_message(name, context, where(g))}
    g, (target, n) = chosen
    bracket = _bracket(context, eta, g, world_sizes, target, n)
    feasible = target == context.max_epochs
    shape = (
        f"rungs {','.join(map(str, bracket.rungs))}; trials {','.join(map(str, bracket.counts))}; "
        f"W {','.join(map(str, bracket.world_sizes))}"
    )
    predicted = f"predicted {bracket.predicted_time_s:.1f} s and {bracket.predicted_cost_usd:.4g} USD of held slots"
    if fixed:
        predicted = (
            f"predicted {bracket.predicted_time_s:.1f} s, rent "
            f"{context.billing.job_cost_usd(g, bracket.predicted_time_s):.4g} USD"
        )
    if feasible:
        message = f"{name}: {n} configurations on {where(g)} ({shape}); {predicted}."
    else:
        message = (
            f"BEST EFFORT: {name} cannot train even one configuration to max_epochs "
            f"({context.max_epochs}) within the budgets; this plan trains the best of {n} to only "
            f"{target} of {context.max_epochs} epochs on {where(g)} ({shape}); {predicted}."
        )
    return g, [bracket], {"feasible": feasible, "message": message}


class ShaPolicy(_RoundPolicy):
    """Synchronous successive halving on a fixed cluster of ``g`` slots, ``W = 1``.

    ``g = G`` (:func:`cluster_slots`) unless not even one configuration reaches ``max_epochs``
    on it (module notes, "The cluster"). ``n`` = the largest ``<= max_configurations`` whose
    predicted time on ``g`` slots fits the cluster's time limit (:func:`rent_time_limit`: the
    deadline's and the rent's). Best effort: the schedule anchored at the largest target that
    fits one configuration; no plan when not even one epoch does.
    """

    name = "sha"
    fixed_cluster = True

    def _plan(self, context: PolicyContext) -> tuple[list[_Bracket], dict[str, Any]]:
        eta, big = _eta_of(context), cluster_slots(context)

        def ones(g: int, counts: tuple[int, ...]) -> tuple[int, ...]:
            return (1,) * len(counts)

        def fits(g: int, preds: tuple[RoundPrediction, ...]) -> tuple[bool, bool]:
            return sum(p.duration_s for p in preds) <= rent_time_limit(context, g), True

        g, brackets, facts = _one_bracket_plan(
            self.name, context, eta, range(big, 0, -1), ones, fits, True, True,
            lambda g: f"a fixed cluster of {g} slot(s)",
        )
        self._G = g
        return brackets, facts


class ElasticShaPolicy(_RoundPolicy):
    """SHA with one slot per trial, held only while its job runs (billed per job), ``W = 1``.

    ``n`` = the largest ``<= max_configurations`` whose predicted time on ``num_slots`` slots and
    predicted cost both fit their ``safety_fraction`` of the budgets. Best effort: the schedule
    anchored at the largest target that fits one configuration; no plan when not even one
    epoch does.
    """

    name = "elastic-sha"
    fixed_cluster = False

    def _plan(self, context: PolicyContext) -> tuple[list[_Bracket], dict[str, Any]]:
        eta = _eta_of(context)
        t_limit, m_limit = _time_limit(context), _money_limit(context)

        def ones(g: int, counts: tuple[int, ...]) -> tuple[int, ...]:
            return (1,) * len(counts)

        def fits(g: int, preds: tuple[RoundPrediction, ...]) -> tuple[bool, bool]:
            return sum(p.duration_s for p in preds) <= t_limit, sum(p.cost_usd for p in preds) <= m_limit

        _, brackets, facts = _one_bracket_plan(
            self.name, context, eta, [context.num_slots], ones, fits, True, False,
            lambda g: f"up to {g} slots, one per trial",
        )
        return brackets, facts


def uniform_world_size(context: PolicyContext, slots: int, num_trials: int) -> int:
    """The largest usable world size ``<= slots // num_trials``; the smallest usable one when
    none is that small (normally 1)."""
    usable = context.usable_world_sizes
    share = slots // max(1, num_trials)
    fitting = [w for w in usable if w <= share]
    return fitting[-1] if fitting else usable[0]


class ElasticUniformPolicy(_RoundPolicy):
    """SHA whose every round splits the affordable slots ``g`` evenly over its survivors.

    ``W_k = uniform_world_size(g, n_k)``, at most ``g`` slots held at once, billed per job.
    ``g = G`` unless not even one configuration reaches ``max_epochs`` on it (module notes,
    "The cluster"; never below the smallest usable world size). ``n`` = the largest whose
    predicted time on ``g`` slots and cost fit (time by binary search, then a downward scan for
    the money, which need not be monotone in ``n``). Best effort: the schedule anchored at the
    largest target that fits one configuration; no plan when not even one epoch does. At run
    time, a later round's ``W_k`` is recomputed from the survivors actually left when the rest
    of the bracket still fits the budgets left (module notes, "At run time").
    """

    name = "elastic-uniform"
    fixed_cluster = False

    def setup(self, context: PolicyContext) -> None:
        super().setup(context)
        self._cap = self._G  # the slots it splits, never more

    def _round_world_size(self, bracket: _Bracket, k: int, num_trials: int, snapshot: Snapshot | None) -> int:
        ctx = self._ctx
        assert ctx is not None
        planned = bracket.world_sizes[k]
        w = uniform_world_size(ctx, self._G, num_trials)
        if k == 0 or w == planned or snapshot is None:
            return planned  # round 0 starts with the planned trials: w == planned
        elapsed = _used(ctx.time_budget_s, snapshot.time_left_s)
        spent = _used(ctx.money_budget_usd, snapshot.money_left_usd)
        counts = (num_trials,) + tuple(min(c, num_trials) for c in bracket.counts[k + 1:])
        preds = predict_rounds(
            ctx, bracket.rungs[k:], counts, (w,) + bracket.world_sizes[k + 1:], self._G,
            start_epoch=bracket.rungs[k - 1], previous_world_size=self._tracker.world_size,
        )
        time_s = sum(p.duration_s for p in preds)
        cost = sum(p.cost_usd for p in preds)
        if elapsed + time_s <= _time_limit(ctx) and spent + cost <= _money_limit(ctx):
            return w
        return planned

    def _plan(self, context: PolicyContext) -> tuple[list[_Bracket], dict[str, Any]]:
        eta, big = _eta_of(context), cluster_slots(context)
        t_limit, m_limit = _time_limit(context), _money_limit(context)
        smallest = context.usable_world_sizes[0]

        def sizes(g: int, counts: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(uniform_world_size(context, g, c) for c in counts)

        def fits(g: int, preds: tuple[RoundPrediction, ...]) -> tuple[bool, bool]:
            return sum(p.duration_s for p in preds) <= t_limit, sum(p.cost_usd for p in preds) <= m_limit

        options = range(max(big, smallest), smallest - 1, -1)
        g, brackets, facts = _one_bracket_plan(
            self.name, context, eta, options, sizes, fits, False, False,
            lambda g: f"{g} slot(s) split evenly over each round's trials",
        )
        self._G = g
        return brackets, facts


class HyperbandPolicy(_RoundPolicy):
    """Hyperband's brackets (Li et al. 2018) on a fixed cluster of ``g`` slots, ``W = 1``.

    Bracket ``s`` (``s = s_max .. 0``, ``s_max + 1`` = the number of rungs) is SHA over the last
    ``s + 1`` rungs of ``rung_schedule(min_epochs, max_epochs, eta)``; brackets run one after
    another, the most exploratory first. Budget split (ours; Hyperband gives every bracket the
    same budget): bracket j of m gets ``(limit - predicted time of brackets before it) / (m -
    j)`` of the cluster's time limit (:func:`rent_time_limit`), and its ``n_s`` is the largest
    that fits that share and its part of the pool of ``max_configurations`` (Hyperband's
    proportions: ``ceil(max_configurations * w_s / sum w)`` with ``w_s = eta**s / (s + 1)``, new
    configurations in each bracket; a bracket left without any is dropped). ``m`` is the
    largest number of brackets (keeping the most exploratory ones) for which every bracket fits
    at least one configuration; when not even the most exploratory bracket alone does, the most
    exploratory bracket that does runs alone. Best effort (no bracket fits one configuration to
    ``max_epochs``): the ``s = 0`` bracket (one job per configuration) to the largest target
    that fits, with the most configurations that fit it; no plan when not even one epoch fits.
    ``g = G`` unless not even one configuration reaches ``max_epochs`` on it (module notes). The
    answer is the best trial across brackets at the highest rung reached.
    """

    name = "hyperband"
    fixed_cluster = True

    def _plan(self, context: PolicyContext) -> tuple[list[_Bracket], dict[str, Any]]:
        eta, big = _eta_of(context), cluster_slots(context)
        schedules = list(reversed(rung_schedules(context.min_epochs, context.max_epochs, eta)))
        # schedules[0] is the most exploratory bracket (s = s_max), schedules[-1] is s = 0.

        def bracket_for(rungs: tuple[int, ...], n: int, first: int, g: int) -> _Bracket:
            ones = (1,) * len(rungs)
            preds = predict_rounds(context, rungs, _sha_counts(n, len(rungs), eta), ones, g)
            return _Bracket(rungs, tuple(p.num_trials for p in preds), ones, first, preds)

        def split(chosen: list[tuple[int, ...]], g: int, limit: float) -> list[_Bracket] | None:
            out: list[_Bracket] = []
            used_s, first = 0.0, 0
            m = len(chosen)
            # Hyperband's proportions of configurations, n_s ~ eta**s / (s + 1), over the pool.
            weights = [eta ** (len(r) - 1) / len(r) for r in chosen]
            for j, rungs in enumerate(chosen):
                left = context.max_configurations - first
                if left < 1:
                    break  # the pool is spent: the remaining brackets are dropped
                pool_cap = min(left, math.ceil(context.max_configurations * weights[j] / sum(weights) - 1e-9))
                share = (limit - used_s) / (m - j) if math.isfinite(limit) else limit
                n = _largest_fitting(lambda n: bracket_for(rungs, n, first, g).predicted_time_s <= share, pool_cap)
                if n < 1:
                    return None
                b = bracket_for(rungs, n, first, g)
                out.append(b)
                used_s += b.predicted_time_s
                first += n
            return out

        def plan_on(g: int) -> tuple[tuple, tuple, bool]:
            limit = rent_time_limit(context, g)
            candidates = [schedules[:m] for m in range(len(schedules), 0, -1)]
            candidates += [[s] for s in schedules[1:]]
            for chosen in candidates:
                brackets = split(chosen, g, limit)
                if brackets is not None:
                    total = sum(b.num_configurations for b in brackets)
                    how = "brackets" if chosen[0] == schedules[0] else "single"
                    return (context.max_epochs, len(brackets), total, g), (context.max_epochs, brackets, how), True
            target = _largest_target(
                lambda t: bracket_for((t,), 1, 0, g).predicted_time_s <= limit, context.max_epochs
            )
            if target == 0:
                return (0, 0, 0, g), (0, [], "none"), False
            n = _largest_fitting(
                lambda n: bracket_for((target,), n, 0, g).predicted_time_s <= limit, context.max_configurations
            )
            return (target, 1, n, g), (target, [bracket_for((target,), n, 0, g)], "best effort"), False

        chosen_plan = _choose_slots(range(big, 0, -1), plan_on)
        if chosen_plan is None:
            self._G = big
            return [], {
                "feasible": False,
                "num_brackets": 0,
                "max_brackets": len(schedules),
                "message": _no_plan_message(self.name, context, f"a fixed cluster of {big} slot(s)"),
            }
        g, (target, brackets, how) = chosen_plan
        self._G = g
        feasible = target == context.max_epochs
        total = sum(b.predicted_time_s for b in brackets)
        rent = context.billing.job_cost_usd(g, total)
        if feasible:
            message = (
                f"hyperband: {len(brackets)} of {len(schedules)} brackets on a fixed cluster of {g} "
                f"slot(s), configurations {','.join(str(b.num_configurations) for b in brackets)}, "
                f"predicted {total:.1f} s, rent {rent:.4g} USD."
            )
            if how == "single":
                message += (
                    f" Not even the most exploratory bracket fits one configuration; bracket "
                    f"s={len(brackets[0].rungs) - 1} runs alone."
                )
        else:
            message = (
                f"BEST EFFORT: hyperband cannot fit even one configuration to max_epochs "
                f"({context.max_epochs}) within the budgets; its s=0 bracket trains the best of "
                f"{brackets[0].num_configurations} to only {target} epochs on a fixed cluster of {g} "
                f"slot(s); predicted {total:.1f} s, rent {rent:.4g} USD."
            )
        facts = {
            "feasible": feasible,
            "num_brackets": len(brackets),
            "max_brackets": len(schedules),
            "budget_split": "equal share of the time limit per bracket, unused time passed on",
            "message": message,
        }
        return brackets, facts


# -- asynchronous successive halving -------------------------------------------------------------


class AshaPolicy(_PolicyBase):
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
        rungs = _schedule(ctx, self._eta, target)
        preds = predict_rounds(ctx, rungs, (1,) * len(rungs), (1,) * len(rungs), 1)
        return sum(p.duration_s for p in preds)

    def setup(self, context: PolicyContext) -> None:
        self._ctx = context
        self._eta = _eta_of(context)
        self._G_afford = cluster_slots(context)

        def plan_on(g: int) -> tuple[tuple, tuple, bool]:
            limit = rent_time_limit(context, g)
            target = _largest_target(lambda t: self._path_s(t) <= limit, context.max_epochs)
            return (target, g), (target, limit), target == context.max_epochs

        chosen = _choose_slots(range(self._G_afford, 0, -1), plan_on)
        if chosen is None:
            self._G, self._target, self._limit = self._G_afford, 0, -1.0
            self._rungs: tuple[int, ...] = ()
            self._message = _no_plan_message(self.name, context, f"a fixed cluster of {self._G} slot(s)")
        else:
            self._G, (self._target, self._limit) = chosen
            self._rungs = _schedule(context, self._eta, self._target)
            _check_rungs(self._rungs, context.max_epochs)
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
        self._retried: set[tuple[int, int]] = set()
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
        if event.outcome in _BAD:
            self._bad_level[i] = level
        elif event.outcome == "stopped" and event.epochs < event.until_epoch:
            view = by_index.get(i)
            if (i, level) not in self._retried and view is not None and view.status == "paused":
                self._retried.add((i, level))
                self._retry.append((i, level))
                return
            self._bad_level[i] = level  # stopped twice: it does not reach the rung
        self._members[level].append(i)

    def _valid_at(self, i: int, level: int, by_index: Mapping[int, TrialView]) -> bool:
        view = by_index.get(i)
        if view is None or self._bad_level.get(i, len(self._rungs)) <= level:
            return False
        return _finite(view.val_accuracy.get(self._rungs[level]))

    def _rank_key(self, i: int, level: int, by_index: Mapping[int, TrialView]) -> tuple:
        view = by_index.get(i)
        tid = view.trial_id if view is not None else f"~{i:09d}"
        if self._valid_at(i, level, by_index):
            return (0, -view.val_accuracy[self._rungs[level]], tid)  # type: ignore[union-attr]
        return (1, 0.0, tid)

    def _job_s(self, snapshot: Snapshot, epochs: int, first_job: bool) -> float:
        """A job's predicted duration: the larger of the profile's and the measured epoch time
        and overhead (so a measured mean over first jobs and relaunches never shortens it)."""
        ctx = self._ctx
        assert ctx is not None
        tau = max(ctx.epoch_time_s, snapshot.epoch_time_s or 0.0)
        overhead = ctx.startup_s if first_job else ctx.relaunch_s
        overhead = max(overhead, snapshot.job_overhead_s or 0.0)
        return overhead + epochs * tau / ctx.scaling.speedup_at(1)

    def _ends_in_time(self, snapshot: Snapshot, job_s: float) -> bool:
        """Whether a job launched now ends within the cluster's time limit (from set-up)."""
        ctx = self._ctx
        assert ctx is not None
        if math.isfinite(ctx.time_budget_s) or self._t0 is None:
            elapsed = _used(ctx.time_budget_s, snapshot.time_left_s)
        else:  # no deadline to count from: from the first decision (right after set-up)
            elapsed = max(0.0, snapshot.now_s - self._t0)
        return elapsed + job_s <= self._limit

    def promotable(self, level: int, by_index: Mapping[int, TrialView]) -> list[int]:
        """Indexes in the top ``floor(|rung| / eta)`` of rung ``level`` that may be promoted
        now, best first (for tests and the report)."""
        members = self._members[level]
        ranked = sorted(members, key=lambda i: self._rank_key(i, level, by_index))
        out = []
        for i in ranked[: len(members) // self._eta]:
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
            if self._ends_in_time(snapshot, self._job_s(snapshot, self._rungs[level] - view.epochs, view.epochs == 0)):
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


# -- the oracle ----------------------------------------------------------------------------------


class OraclePolicy(_PolicyBase):
    """The best configuration (``context.oracle_index``) trained alone in one job.

    ``W`` = the smallest usable world size whose job to ``max_epochs`` (``startup_s + max_epochs
    * tau / s(W)``) fits both budgets' ``safety_fraction`` (the least cost, as ``W / s(W)`` does
    not decrease; cost with billing rounding); when none fits, the ``W`` whose job reaches the
    most epochs within them (ties: the smaller ``W``), launched to that many epochs (its
    learning-rate schedule spans them). When not even one epoch fits at any ``W``: no plan,
    nothing launched. Billed per job. Answer: the trial at its last reported epoch (never when
    diverged).
    """

    name = "oracle"

    def __init__(self) -> None:
        self._ctx: PolicyContext | None = None

    def setup(self, context: PolicyContext) -> None:
        idx = context.oracle_index
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < context.max_configurations:
            raise ConfigError(
                "oracle_index",
                idx,
                f"the index (0..{context.max_configurations - 1}) of the best configuration, "
                "known to the simulator from its table",
            )
        self._ctx = context
        self._index = idx
        t_limit, m_limit = _time_limit(context), _money_limit(context)

        def job_s(w: int, epochs: int) -> float:
            return context.startup_s + epochs * context.epoch_time_s / context.scaling.speedup_at(w)

        def fits(w: int, epochs: int) -> bool:
            j = job_s(w, epochs)
            return j <= t_limit and context.billing.job_cost_usd(w, j) <= m_limit

        usable = context.usable_world_sizes
        chosen = next((w for w in usable if fits(w, context.max_epochs)), None)
        self._feasible = chosen is not None
        if chosen is not None:
            self._W, self._target = chosen, context.max_epochs
        else:
            reach = {w: _largest_fitting(lambda e, w=w: fits(w, e), context.max_epochs) for w in usable}
            self._W = max(usable, key=lambda w: (reach[w], -w))
            self._target = reach[self._W]  # 0: not even one epoch fits (no plan)
        self._predicted_s = job_s(self._W, self._target) if self._target else 0.0
        self._predicted_usd = context.billing.job_cost_usd(self._W, self._predicted_s) if self._target else 0.0
        self._launched = False
        self._retried = False
        self._running = False
        self._finished = False
        self._finish_reason = ""
        self._launched_w: int | None = None

    @property
    def reserved_slots(self) -> int | None:
        self._require_setup()
        return None

    def _message(self) -> str:
        ctx = self._ctx
        assert ctx is not None
        if self._feasible:
            return (
                f"oracle: configuration {self._index} to {self._target} epochs at W={self._W} in one "
                f"job; predicted {self._predicted_s:.1f} s and {self._predicted_usd:.4g} USD."
            )
        if self._target == 0:
            return _no_plan_message(self.name, ctx, f"configuration {self._index} alone, at any W")
        return (
            f"BEST EFFORT: oracle: no world size trains configuration {self._index} to "
            f"{ctx.max_epochs} epochs within the budgets; W={self._W} reaches {self._target}; "
            f"predicted {self._predicted_s:.1f} s and {self._predicted_usd:.4g} USD."
        )

    def decide(self, snapshot: Snapshot) -> list[Decision]:
        self._require_setup()
        if self._finished:
            return []
        if self._target == 0:
            return self._done(self._message())
        relaunch = False
        for event in snapshot.events:
            if event.index != self._index:
                continue
            self._running = False
            if event.outcome == "reached":
                return self._done("trained to its target")
            if event.outcome in _BAD:
                return self._done(f"the oracle configuration {event.outcome}")
            if event.outcome == "stopped":
                if event.epochs >= self._target:
                    return self._done("trained to its target")
                if self._retried:
                    return self._done("stopped twice before its target")
                self._retried = relaunch = True
        if self._running or (self._launched and not relaunch):
            return []
        w = self._launched_w or self._W
        if snapshot.free_slots < w:
            fitting = [x for x in self._ctx.usable_world_sizes if x <= snapshot.free_slots]  # type: ignore[union-attr]
            if not fitting:
                return self._done(f"no free slots ({snapshot.free_slots}) for the oracle's job")
            w = fitting[-1]
        self._launched = self._running = True
        self._launched_w = w
        return [Launch(self._index, w, self._target, 1)]

    def _done(self, reason: str) -> list[Decision]:
        self._finished = True
        self._finish_reason = reason
        return [Finish(reason)]

    def answer(self, snapshot: Snapshot) -> tuple[str, int] | None:
        self._require_setup()
        mine = {tid: t for tid, t in snapshot.trials.items() if t.index == self._index}
        return best_at_rungs(mine, range(1, self._ctx.max_epochs + 1))  # type: ignore[union-attr]

    def report(self) -> dict[str, Any]:
        self._require_setup()
        ctx = self._ctx
        assert ctx is not None
        plan = {
            "message": self._message(),
            "num_configurations": 1 if self._target else 0,
            "world_size": self._W,
            "target_epochs": self._target,
            "rungs": [self._target] if self._target else [],
            "feasible": self._feasible,
            "predicted_time_s": self._predicted_s,
            "predicted_cost_usd": self._predicted_usd,
            "time_limit_s": ctx.safety_fraction * ctx.time_budget_s,
            "money_limit_usd": ctx.safety_fraction * ctx.money_budget_usd,
        }
        rounds = []
        if self._launched:
            rounds.append(
                {
                    "index": 1,
                    "rung_epoch": self._target,
                    "num_trials": 1,
                    "world_size": self._launched_w,
                    "predicted_duration_s": self._predicted_s,
                    "predicted_cost_usd": self._predicted_usd,
                    "completed": self._finished,
                }
            )
        return {
            "policy": self.name,
            "oracle_index": self._index,
            "reserved_slots": None,
            "plan": plan,
            "rounds": rounds,
            "finish_reason": self._finish_reason,
        }
