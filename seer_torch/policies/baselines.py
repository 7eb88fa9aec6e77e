"""The baselines SEER is compared against, behind the policy interface of :mod:`.base`.

Where they live: the round-synchronous ones (``sha``, ``hyperband``, ``elastic-sha``,
``elastic-uniform``) here, as configurations of the round engine
(:class:`~seer_torch.policies.engine.RoundEngine`); ``asha`` in :mod:`.asha`, ``oracle`` in
:mod:`.oracle` (both re-exported here); their planning helpers in :mod:`.baseline_plans`; the
formulas in :mod:`.costs`.

Every policy here implements :class:`~seer_torch.policies.base.Policy` and is pure: no clock, no
files, no processes, no torch, no randomness (the trial indexes are the search space's draw
order, so nothing needs ``context.seed``). Given the same context and the same snapshots, a
policy returns the same decisions.

Policies (docs/design.md, "Baselines the benchmark compares against")
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

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from seer_torch.policies.asha import AshaPolicy
from seer_torch.policies.base import (
    Decision,
    PolicyContext,
    Snapshot,
    TrialView,
    best_at_rungs,
)
from seer_torch.policies.baseline_plans import (
    DEFAULT_ETA,
    Bracket,
    PolicyBase,
    RoundPrediction,
    check_rungs,
    choose_slots,
    cluster_slots,
    eta_of,
    hyperband_plan_on,
    money_limit,
    no_plan_message,
    one_bracket_plan,
    predict_rounds,
    rent_time_limit,
    time_limit,
    uniform_world_size,
    used_of_budget,
)
from seer_torch.policies.engine import (
    BAD_STATUSES,
    OUT_STATUSES,
    RetryOnce,
    RoundEngine,
    eliminations,
    finite_score,
    rank_at_rung,
    round_record,
    stopped_short,
)
from seer_torch.policies.oracle import OraclePolicy
from seer_torch.policies.rungs import rung_schedules

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


class _RoundPolicy(PolicyBase, RoundEngine, ABC):
    """The round-synchronous baselines as configurations of the round engine
    (:class:`~.engine.RoundEngine`): brackets of rounds, one after another.

    Subclasses set ``name`` and ``fixed_cluster`` and implement :meth:`_plan` (which may set
    ``self._G``, the cluster it plans on); they may override :meth:`_round_world_size`. The
    survivors of a rung are the top ``counts[k + 1]`` valid trials (:meth:`_close_round`; the
    counts are the bracket's, :func:`~.baseline_plans.sha_counts`, i.e.
    :func:`~.rungs.survivor_counts`). An empty plan (``NO PLAN``) finishes at the first
    :meth:`decide` and rents nothing.
    """

    name = ""
    fixed_cluster = False

    def __init__(self) -> None:
        self._ctx: PolicyContext | None = None

    # -- planning (subclasses) ---------------------------------------------------------------

    @abstractmethod
    def _plan(self, context: PolicyContext) -> tuple[list[Bracket], dict[str, Any]]:
        """The brackets to run (empty: nothing fits) and the report's facts about the choice
        (``feasible`` and ``message`` at least); every round-by-round baseline defines it."""

    def _round_world_size(self, bracket: Bracket, k: int, num_trials: int, snapshot: Snapshot | None) -> int:
        """``W`` of round ``k`` of ``bracket`` when it starts with ``num_trials`` survivors."""
        return bracket.world_sizes[k]

    # -- the protocol ------------------------------------------------------------------------

    def setup(self, context: PolicyContext) -> None:
        self._ctx = context
        self._eta = eta_of(context)
        self._G_afford = cluster_slots(context)
        self._G = self._G_afford  # the cluster planned on; _plan may choose a smaller one
        self._brackets, self._facts = self._plan(context)
        self._cap = self._G if self.fixed_cluster else context.num_slots
        for b in self._brackets:
            check_rungs(b.rungs, context.max_epochs)
            if b.first_index + b.num_configurations > context.max_configurations:
                raise AssertionError("a bracket draws more than max_configurations")
        self._answer_rungs = sorted({r for b in self._brackets for r in b.rungs})
        self._target = max(self._answer_rungs) if self._answer_rungs else context.max_epochs
        # Round k of bracket b has index offsets[b] + k + 1 (Launch.round_index, the report's
        # "rounds"), whether or not earlier brackets ran all their rounds.
        self._offsets = [sum(len(x.rungs) for x in self._brackets[:b]) for b in range(len(self._brackets))]
        self._engine_reset()
        self._b = 0  # current bracket
        self._k = 0  # current round of the bracket
        self._round_no = 0  # index of the current round (Launch.round_index, 1-based)
        self._bad: set[int] = set()
        self._retry = RetryOnce()  # keys (round_no, index)

    @property
    def reserved_slots(self) -> int | None:
        self._require_setup()
        return self._G if self.fixed_cluster and self._brackets else None

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
            "rounds": [dict(r) for r in self.round_records],
            "finish_reason": self.finish_reason or "",
        }

    # -- the engine's hooks ------------------------------------------------------------------

    def _on_events(self, snapshot: Snapshot) -> None:
        """Mark failed and diverged trials; relaunch a job of the round stopped short, once."""
        by_index = {t.index: t for t in snapshot.trials.values()}
        for event in snapshot.events:
            i = event.index
            if event.outcome in BAD_STATUSES:
                self._bad.add(i)
            if i not in self.tracker.running:
                continue  # not a job of the current round (e.g. one this policy eliminated)
            self.tracker.ended(i)
            if stopped_short(event, by_index.get(i)) and self._retry.allow((self._round_no, i)):
                self.tracker.queue.insert(0, i)  # relaunch once to the same rung
        for t in snapshot.trials.values():
            if t.status in BAD_STATUSES:
                self._bad.add(t.index)

    def _begin(self, snapshot: Snapshot) -> None:
        if not self._brackets:
            self._finish(self._facts["message"])
        else:
            self._start_bracket(0, snapshot)

    def _launch_slots(self, snapshot: Snapshot) -> int:
        return max(0, min(snapshot.free_slots, self._cap - self.tracker.held_slots))

    def _start_bracket(self, b: int, snapshot: Snapshot | None) -> None:
        self._b = b
        if b >= len(self._brackets):
            self._finish(f"all {len(self._brackets)} bracket(s) done")
            return
        bracket = self._brackets[b]
        first = bracket.first_index
        self._start_bracket_round(0, list(range(first, first + bracket.num_configurations)), snapshot)

    def _start_bracket_round(self, k: int, indexes: list[int], snapshot: Snapshot | None) -> None:
        bracket = self._brackets[self._b]
        w = self._round_world_size(bracket, k, len(indexes), snapshot)
        self._k = k
        self._round_no = self._offsets[self._b] + k + 1
        planned = bracket.predictions[k]
        record = round_record(self._round_no, bracket.rungs[k], len(indexes), w, planned.duration_s,
                              planned.cost_usd, bracket=self._b)
        self._start_round(self._round_no, bracket.rungs[k], w, indexes, record)

    def _valid(self, i: int, rung: int, by_index: Mapping[int, TrialView]) -> bool:
        view = by_index.get(i)
        return (
            view is not None
            and i not in self._bad
            and view.status not in OUT_STATUSES
            and finite_score(view, rung)
        )

    def _close_round(self, snapshot: Snapshot) -> list[Decision]:
        """Who survives a rung in the baselines: rank the members with
        :func:`~.engine.rank_at_rung`, keep the top ``counts[k + 1]`` valid trials (the
        bracket's counts, from :func:`~.rungs.survivor_counts`), eliminate the rest (not after
        the last rung), and start the next round, or the next bracket when none survives."""
        by_index = {t.index: t for t in snapshot.trials.values()}
        bracket = self._brackets[self._b]
        k = self._k
        rung = bracket.rungs[k]
        ranked = rank_at_rung(self.members, rung, by_index.get, lambda i: self._valid(i, rung, by_index))
        valid = [i for i in ranked if self._valid(i, rung, by_index)]
        last = k + 1 >= len(bracket.rungs)
        survivors = valid[: 0 if last else bracket.counts[k + 1]]
        self.round_records[-1].update(completed=True, reached=len(valid), survivors=len(survivors))
        out: list[Decision] = []
        if not last:
            kept = set(survivors)
            out = eliminations([by_index.get(i) for i in ranked], lambda v: v.index in kept)
        if survivors:
            self._start_bracket_round(k + 1, survivors, snapshot)
        else:
            self._start_bracket(self._b + 1, snapshot)
        return out


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

    def _plan(self, context: PolicyContext) -> tuple[list[Bracket], dict[str, Any]]:
        eta, big = eta_of(context), cluster_slots(context)

        def ones(g: int, counts: tuple[int, ...]) -> tuple[int, ...]:
            return (1,) * len(counts)

        def fits(g: int, preds: tuple[RoundPrediction, ...]) -> tuple[bool, bool]:
            return sum(p.duration_s for p in preds) <= rent_time_limit(context, g), True

        g, brackets, facts = one_bracket_plan(
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

    def _plan(self, context: PolicyContext) -> tuple[list[Bracket], dict[str, Any]]:
        eta = eta_of(context)
        t_limit, m_limit = time_limit(context), money_limit(context)

        def ones(g: int, counts: tuple[int, ...]) -> tuple[int, ...]:
            return (1,) * len(counts)

        def fits(g: int, preds: tuple[RoundPrediction, ...]) -> tuple[bool, bool]:
            return sum(p.duration_s for p in preds) <= t_limit, sum(p.cost_usd for p in preds) <= m_limit

        _, brackets, facts = one_bracket_plan(
            self.name, context, eta, [context.num_slots], ones, fits, True, False,
            lambda g: f"up to {g} slots, one per trial",
        )
        return brackets, facts


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

    def _round_world_size(self, bracket: Bracket, k: int, num_trials: int, snapshot: Snapshot | None) -> int:
        ctx = self._ctx
        assert ctx is not None
        planned = bracket.world_sizes[k]
        w = uniform_world_size(ctx, self._G, num_trials)
        if k == 0 or w == planned or snapshot is None:
            return planned  # round 0 starts with the planned trials: w == planned
        elapsed = used_of_budget(ctx.time_budget_s, snapshot.time_left_s)
        spent = used_of_budget(ctx.money_budget_usd, snapshot.money_left_usd)
        counts = (num_trials,) + tuple(min(c, num_trials) for c in bracket.counts[k + 1:])
        preds = predict_rounds(
            ctx, bracket.rungs[k:], counts, (w,) + bracket.world_sizes[k + 1:], self._G,
            start_epoch=bracket.rungs[k - 1], previous_world_size=self.tracker.world_size,
        )
        time_s = sum(p.duration_s for p in preds)
        cost = sum(p.cost_usd for p in preds)
        if elapsed + time_s <= time_limit(ctx) and spent + cost <= money_limit(ctx):
            return w
        return planned

    def _plan(self, context: PolicyContext) -> tuple[list[Bracket], dict[str, Any]]:
        eta, big = eta_of(context), cluster_slots(context)
        t_limit, m_limit = time_limit(context), money_limit(context)
        smallest = context.usable_world_sizes[0]

        def sizes(g: int, counts: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(uniform_world_size(context, g, c) for c in counts)

        def fits(g: int, preds: tuple[RoundPrediction, ...]) -> tuple[bool, bool]:
            return sum(p.duration_s for p in preds) <= t_limit, sum(p.cost_usd for p in preds) <= m_limit

        options = range(max(big, smallest), smallest - 1, -1)
        g, brackets, facts = one_bracket_plan(
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

    def _plan(self, context: PolicyContext) -> tuple[list[Bracket], dict[str, Any]]:
        eta, big = eta_of(context), cluster_slots(context)
        schedules = list(reversed(rung_schedules(context.min_epochs, context.max_epochs, eta)))
        # schedules[0] is the most exploratory bracket (s = s_max), schedules[-1] is s = 0.
        chosen_plan = choose_slots(range(big, 0, -1), lambda g: hyperband_plan_on(context, eta, schedules, g))
        if chosen_plan is None:
            self._G = big
            return [], {
                "feasible": False,
                "num_brackets": 0,
                "max_brackets": len(schedules),
                "message": no_plan_message(self.name, context, f"a fixed cluster of {big} slot(s)"),
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
