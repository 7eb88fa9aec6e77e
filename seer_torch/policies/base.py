"""The policy interface: one for SEER and every baseline. Pure: no clock, files or processes.

A policy decides; the executor (:mod:`seer_torch.executor`) acts. The executor calls
:meth:`Policy.setup` once with a :class:`PolicyContext` (the experiment's static facts, the
scaling profile and the budgets), then :meth:`Policy.decide` at the start and after every
event (a job ended, failed, or was stopped) with an immutable :class:`Snapshot`, and carries
out the decisions it returns, in order:

- :class:`Launch` ``(trial_index, world_size, until_epoch)``: train configuration number
  ``trial_index`` (the ``trial_index``-th draw of the search space; the trial is created on its
  first launch) from its checkpoint to ``until_epoch`` with ``world_size`` workers. The policy
  must only launch into free slots (``Snapshot.free_slots``); the executor refuses otherwise.
  A trial that is running cannot be launched again.
- :class:`Eliminate` ``(trial_id)``: the trial is out (its job is stopped if running).
- :class:`Stop` ``(trial_id)``: stop a running job now, keeping its checkpoint (paused).
- :class:`Finish` ``(reason)``: the policy is done; the executor stops what runs and reports
  :meth:`Policy.answer`.

Hard budgets are the executor's, not the policy's: at the deadline or the money limit it stops
every job whatever the policy says. Planned resizes are a Launch at a new ``world_size``.

The same policy object runs against the simulated backend and against real torchrun jobs
(docs/design.md, "Layers"), so a result in simulation is a result of the shipped code.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from seer_torch.policies.billing import Billing
from seer_torch.policies.costs import Overheads, largest_fitting_slots
from seer_torch.scaling.model import ScalingModel

__all__ = [
    "Decision", "Eliminate", "Finish", "JobEvent", "Launch", "Policy", "PolicyContext", "Snapshot",
    "ANSWER_TOLERANCE", "Stop", "TrialView", "best_at_rungs", "fixed_cluster_slots", "give_more_budget",
    "policy_news",
]


@dataclass(frozen=True)
class PolicyContext:
    """What a policy knows before the first decision. Times in seconds, money in USD.

    The one context record of every policy; the SEER planner's
    :class:`~seer_torch.policies.plan_types.PlannerInputs` derive from it
    (:func:`~seer_torch.policies.plan_types.planner_inputs_from_context`, one field map).

    Attributes:
        max_epochs: epochs of a fully trained configuration.
        min_epochs: the smallest first rung the experiment allows.
        eta: reduction factor between rungs (``None``: the policy chooses).
        max_configurations: configurations the policy may draw (``trial_index < this``).
        num_slots: slots available (GPUs, or CPU processes locally).
        world_size_ladder: allowed world sizes, ascending, each ``<= num_slots``.
        max_world_size: the most workers one trial may get.
        epoch_time_s: one epoch (training + validation) on one worker, from the profile: the
            mean over the configurations the run may draw when the profile tells them apart
            by cost (``epoch_time_by_flops``).
        scaling: ``s(W)``, the speedup model.
        startup_s: overhead of a trial's first job (launch to first step, plus exit).
        relaunch_s: overhead of a later job at the same ``W`` that starts processes.
        resize_s: overhead of a later job at a different ``W``.
        time_budget_s: the deadline, seconds from the start of the run (what is left after
            profiling when the profile was measured by the run).
        money_budget_usd: the money budget left.
        billing: price and rounding (:mod:`seer_torch.policies.billing`).
        safety_fraction: plans may predict this fraction of each budget.
        seed: the experiment's seed (policies that randomise use it, never global state).
        oracle_index: for the ``oracle`` policy only: the configuration known to be best
            (the simulator knows it from its table); ``None`` elsewhere.
        num_finalists: trials SEER carries to the last rung (``None``: the planner chooses).
        min_configurations: configurations SEER explores before insisting on ``max_epochs``
            (``None``: ``eta**2``).
        draw_epoch_times_s: one epoch on one worker of each configuration the run may draw,
            by index, when known before it runs (the simulator's learning-curve table; a
            profile that tells configurations apart by FLOPs); empty otherwise.
        continue_s: overhead of a kept-alive job handed its trial's next rung at the same
            ``W`` (no process start); ``None`` (default): the backend keeps no jobs alive, and
            a continuation is a relaunch (``relaunch_s``).
        warm_start_s: overhead of a ``W = 1`` job on the warm worker another trial's parked job
            left; ``None`` (default): no warm workers (such a job starts cold).
        retarget_in_place: a kept-alive job goes on when a re-plan moved the target (the
            built-in worker re-anchors its learning-rate schedule in place,
            :func:`seer_torch.backends.base.continue_order`); ``False`` (default): its trial's
            next job then starts processes again (a user's script builds its schedule once).
        machine_start_s: one machine's start on a cluster that rents them (from the request
            that asks for it to its slots offered), seconds: a round that needs more slots
            than the round before waits for it (:func:`~seer_torch.policies.costs.
            machine_wait_s`); ``None`` (default): machines need no waiting (the local backend).
        The overheads together: :attr:`overheads` (:class:`~seer_torch.policies.costs.Overheads`,
        which says which job pays which).
    """

    max_epochs: int
    min_epochs: int
    eta: int | None
    max_configurations: int
    num_slots: int
    world_size_ladder: tuple[int, ...]
    max_world_size: int
    epoch_time_s: float
    scaling: ScalingModel
    startup_s: float
    relaunch_s: float
    resize_s: float
    time_budget_s: float
    money_budget_usd: float
    billing: Billing
    safety_fraction: float = 0.9
    seed: int = 0
    oracle_index: int | None = None
    num_finalists: int | None = 1
    min_configurations: int | None = None
    draw_epoch_times_s: tuple[float, ...] = ()
    continue_s: float | None = None
    warm_start_s: float | None = None
    retarget_in_place: bool = False
    machine_start_s: float | None = None

    @property
    def overheads(self) -> Overheads:
        """The job overheads of the cost model, seconds."""
        return Overheads(self.startup_s, self.relaunch_s, self.resize_s, self.continue_s, self.warm_start_s)

    @property
    def usable_world_sizes(self) -> tuple[int, ...]:
        """Ladder sizes ``<= min(num_slots, max_world_size)``, ascending (never empty: 1 is
        always allowed)."""
        cap = min(self.num_slots, self.max_world_size)
        sizes = tuple(sorted({w for w in self.world_size_ladder if w <= cap}))
        return sizes or (1,)


@dataclass(frozen=True)
class TrialView:
    """One trial as a policy sees it.

    Attributes:
        trial_id: the executor's id (``t000``...).
        index: the configuration's index in the draw order (what :class:`Launch` names).
        status: ``running``, ``paused`` (checkpointed, not running), ``eliminated``,
            ``failed`` or ``diverged``.
        epochs: epochs completed and checkpointed.
        world_size: the running job's ``W`` (``None`` when not running).
        until_epoch: the running job's target epoch (``None`` when not running).
        score: the experiment's metric as a higher-is-better score, by epoch, for every epoch
            the trial reported: the metric's value when it is maximized, its negation when it
            is minimized (the executor applies the direction, ``seer_torch.objective``; a
            policy only ever compares scores, larger is better).
        world_sizes: ``W`` of each job the trial ran, in order.
        epoch_time_s: one epoch of this trial on one worker, measured: the median of its recent
            epochs at ``W = 1``; when it never ran at ``W = 1``, of its recent epochs scaled to
            ``W = 1`` by the profile's speedup. ``None`` before it reported.
        epoch_time_by_world_s: ``W -> `` the median of its recent epochs at ``W`` (seconds),
            for each ``W`` it trained at; empty before it reported.
    """

    trial_id: str
    index: int
    status: str
    epochs: int
    world_size: int | None
    until_epoch: int | None
    score: Mapping[int, float]
    world_sizes: tuple[int, ...] = ()
    epoch_time_s: float | None = None  # its measured epoch on one worker (median, seconds)
    epoch_time_by_world_s: Mapping[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class JobEvent:
    """A job that ended since the previous :meth:`Policy.decide`.

    ``outcome``: ``"reached"`` (trained to ``until_epoch``), ``"stopped"`` (by a Stop or an
    Eliminate; or by the executor short of ``until_epoch`` with the trial paused: a resume whose
    slots cannot hold the job's ``W``, which the policy decides again), ``"failed"`` (crashed,
    out of retries: the trial is failed) or ``"diverged"``
    (loss NaN or infinite: the trial is diverged). ``epochs`` is where the trial is now.
    """

    trial_id: str
    index: int
    outcome: str
    epochs: int
    until_epoch: int
    world_size: int


@dataclass(frozen=True)
class Snapshot:
    """The state of the run at one decision point. Times in seconds, money in USD.

    Attributes:
        now_s: seconds since the run started (the injected clock).
        time_left_s: deadline left, less the executor's grace for the final answer.
        money_left_usd: money budget left (running jobs billed to now), less the executor's
            reserve for stopping jobs (every slot over its money-check margin; 0 in simulation).
        num_slots: slots the policy may use (a fixed cluster's size when it reserved one).
        free_slots: slots not held by a running job.
        trials: every trial created so far, by ``trial_id``.
        events: jobs that ended since the previous decision, in the order they ended.
        epoch_time_s: measured one-epoch time on one worker (median over recent jobs), or
            ``None`` before any job reported.
        job_overhead_s: measured fixed cost of a job that starts processes (a first launch, a
            resize, a relaunch after its kept-alive job was released), or ``None``.
        continue_overhead_s: measured fixed cost of a kept-alive job handed its next rung at
            the same ``W`` (the decision's latency; no process start), or ``None`` before any
            continuation (or on a backend that keeps no jobs alive).
        warm_start_overhead_s: measured fixed cost of a ``W = 1`` job on a warm worker another
            trial's parked job left (the decision's latency, building the model, reading the
            checkpoint), or ``None`` before any.
        machine_start_s: measured start of a machine on a cluster that rents them (the median
            over the machines it started, from the request that asked for more slots to the
            first look that saw the node), or ``None``: none measured yet, or no such cluster
            (the local backend).
    """

    now_s: float
    time_left_s: float
    money_left_usd: float
    num_slots: int
    free_slots: int
    trials: Mapping[str, TrialView]
    events: tuple[JobEvent, ...] = ()
    epoch_time_s: float | None = None
    job_overhead_s: float | None = None
    continue_overhead_s: float | None = None
    warm_start_overhead_s: float | None = None
    machine_start_s: float | None = None


@dataclass(frozen=True)
class Launch:
    trial_index: int
    world_size: int
    until_epoch: int
    round_index: int = 0  # which round (or rung level) the job belongs to, for the report


@dataclass(frozen=True)
class Stop:
    trial_id: str


@dataclass(frozen=True)
class Eliminate:
    trial_id: str


@dataclass(frozen=True)
class Finish:
    reason: str = ""


Decision = Launch | Stop | Eliminate | Finish


class Policy(Protocol):
    """What every policy implements. See the module docstring for the protocol."""

    name: str

    def setup(self, context: PolicyContext) -> None:
        """Called once before the first :meth:`decide`."""

    @property
    def reserved_slots(self) -> int | None:
        """Slots rented for the whole run (a fixed cluster: billed ``reserved x elapsed``),
        or ``None`` when only held slots are billed (elastic). Read after :meth:`setup`."""

    @property
    def schedule_epochs(self) -> int:
        """The learning-rate schedule's horizon for new trials (epochs; normally
        ``max_epochs``). Read after :meth:`setup`."""

    def decide(self, snapshot: Snapshot) -> Sequence[Decision]:
        """Decisions for this snapshot (possibly none)."""

    def answer(self, snapshot: Snapshot) -> tuple[str, int] | None:
        """``(trial_id, epoch)`` of the configuration the policy returns and the epoch its
        score is read at, or ``None`` when it has none."""

    def report(self) -> dict[str, Any]:
        """JSON-able facts for ``results.json`` (``plan``, predictions...)."""


def policy_news(policy: Any) -> list[str]:
    """What ``policy`` has to say since it last decided, one line each (its optional
    ``news()`` method: the SEER policy's re-plans), or nothing. The executor shows each line."""
    news = getattr(policy, "news", None)
    return list(news()) if callable(news) else []


def give_more_budget(policy: Any) -> None:
    """Tell ``policy`` the run was given more budget (``seer resume --time-budget/--money-budget``),
    through its optional ``more_budget()`` (the SEER policy then plans one more round toward
    ``max_epochs`` when its plan ran out short of it); a policy without it re-plans with the
    budgets left as it always does."""
    more = getattr(policy, "more_budget", None)
    if callable(more):
        more()


#: How far (in score, the metric's own units) a trial stopped at the rung below the top rung must
#: score above the best trial at the top rung to be the answer instead: for validation accuracy,
#: half a percentage point. A smaller difference is the noise of one validation set (one sample
#: of the digits split's 270 is 0.0037; 25 of CIFAR-10's 5000), and the further-trained trial is
#: the answer. The same absolute margin applies to any metric (0.005 of a loss in nats).
ANSWER_TOLERANCE = 0.005


def best_at_rungs(trials: Mapping[str, TrialView], rungs: Sequence[int]) -> tuple[str, int] | None:
    """The answer: the best trial judged across the last two rungs that hold a valid result.

    The top rung is the highest rung at which a trial that did not diverge reported a finite
    score (:attr:`TrialView.score`, higher is better); the best there (ties break by
    ``trial_id``) is the answer unless a trial whose checkpoint sits at the rung below it (it
    stopped there: ``epochs`` equals that rung) scored there more than :data:`ANSWER_TOLERANCE`
    above it: a real drop, not noise.
    Then the best such trial is the answer. So a finalist that diverged is never the answer,
    one that collapsed after the previous rung (docs/design.md, "Two traps") loses to the best trial
    kept at that rung, and one within the tolerance of it (one validation sample) is preferred
    for its further training. Returns ``(trial_id, rung)`` or ``None``.
    """
    levels = sorted(set(rungs), reverse=True)

    def best_at(rung: int, stopped_there: bool) -> tuple[float, str] | None:
        best: tuple[float, str] | None = None
        for t in trials.values():
            if t.status == "diverged" or (stopped_there and t.epochs != rung):
                continue
            v = t.score.get(rung)
            if v is None or not math.isfinite(v):
                continue
            if best is None or (-v, t.trial_id) < (-best[0], best[1]):
                best = (v, t.trial_id)
        return best

    for k, rung in enumerate(levels):
        top = best_at(rung, False)
        if top is None:
            continue
        if k + 1 < len(levels):
            below = best_at(levels[k + 1], True)
            if below is not None and below[0] > top[0] + ANSWER_TOLERANCE:
                return below[1], levels[k + 1]
        return top[1], rung
    return None


def fixed_cluster_slots(context: PolicyContext) -> int:
    """The fixed-cluster baselines' size ``G``: the largest ``G <= num_slots`` whose rent for
    the whole deadline fits the money budget (docs/design.md, "Baselines"), at least 1.

    ``G = floor(money_budget_usd / (price_usd_per_slot_hour / 3600 * billed(time_budget_s)))``.
    """
    return largest_fitting_slots(
        context.money_budget_usd, context.time_budget_s, context.billing, context.num_slots
    )


@dataclass
class RoundTracker:
    """Bookkeeping of the current round of a round-synchronous policy (the round engine,
    :mod:`seer_torch.policies.engine`): which trials are still to launch, running, or done.
    Mutable, but owned by one policy; pure."""

    round_index: int = 0
    rung_epoch: int = 0
    world_size: int = 1
    queue: list[int] = field(default_factory=list)  # trial indexes still to launch
    running: set[int] = field(default_factory=set)

    def start(self, round_index: int, rung_epoch: int, world_size: int, indexes: Sequence[int]) -> None:
        self.round_index, self.rung_epoch, self.world_size = round_index, rung_epoch, world_size
        self.queue = list(indexes)
        self.running = set()

    def launches(self, free_slots: int) -> list[Launch]:
        """Launch queued trials while ``world_size`` slots are free."""
        out = []
        while self.queue and free_slots >= self.world_size:
            i = self.queue.pop(0)
            self.running.add(i)
            free_slots -= self.world_size
            out.append(Launch(i, self.world_size, self.rung_epoch, self.round_index))
        return out

    def ended(self, index: int) -> None:
        self.running.discard(index)

    @property
    def done(self) -> bool:
        return not self.queue and not self.running

    @property
    def held_slots(self) -> int:
        """Slots held by the round's running jobs."""
        return len(self.running) * self.world_size
