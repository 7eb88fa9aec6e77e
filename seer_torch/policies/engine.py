"""One round engine for the round-synchronous policies: SHA, Hyperband, elastic-SHA,
elastic-uniform and SEER. Pure: no clock, files or processes.

A round trains its members to one rung at one world size, as slots free up (waves); when every
member's job has ended, the round closes: the members are ranked at the rung (one ranker,
:func:`rank_at_rung`), the survivors go on and the others are eliminated, and the next round
starts (or the policy finishes). :class:`RoundEngine` owns that cycle: starting and closing
rounds (:class:`RoundTracker`), retrying a job the executor stopped short of its rung
(:func:`stopped_short`; at most once, :class:`RetryOnce`, for the baselines), the round records
of the report (:func:`round_record`) and the Finish decision. What differs between the
policies is two hooks, as in HpBandSter's successive halving (``_advance_to_next_stage`` over a
shared iteration) and Ray Tune's ResourceChangingScheduler (who survives, apart from how many
workers each gets):

- :meth:`RoundEngine._close_round`: who survives the rung and what the next round is. Every
  policy ranks with :func:`rank_at_rung` and counts with the one survivor-count rule,
  :func:`seer_torch.policies.rungs.survivors_at_rung`. The baselines
  (``baselines._RoundPolicy._close_round``) keep the top ``1/eta`` of their bracket's counts
  (:func:`~seer_torch.policies.rungs.survivor_counts`); SEER (``SeerPolicy._close_round`` in
  :mod:`seer_torch.policies.seer_policy`, its steps in :mod:`seer_torch.policies.seer_rounds`)
  starts from :func:`~seer_torch.policies.seer_rounds.planned_counts`, re-plans, holds back
  runners-up and may carry more or fewer;
- the world size of the next round (each policy's ``_round_world_size`` or SEER's re-plan).

ASHA is asynchronous (no rounds) and the oracle is one job: they share the ranker and the retry
predicate, not the engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from seer_torch.policies.base import Decision, Eliminate, Finish, JobEvent, RoundTracker, Snapshot, TrialView

__all__ = [
    "BAD_STATUSES",
    "OUT_STATUSES",
    "RetryOnce",
    "RoundEngine",
    "RoundTracker",
    "finite_score",
    "rank_at_rung",
    "round_record",
    "stopped_short",
]

#: Trial statuses that never survive a rung.
BAD_STATUSES = ("failed", "diverged")
#: Trial statuses of a trial that is out of the run (never launched again).
OUT_STATUSES = ("failed", "diverged", "eliminated")

T = TypeVar("T")


def finite_score(view: TrialView | None, rung: int) -> bool:
    """Whether ``view`` has a finite score (the metric, reported) at epoch ``rung``."""
    if view is None:
        return False
    v = view.score.get(rung)
    return v is not None and math.isfinite(v)


def rank_at_rung(
    items: Iterable[T], rung: int, view_of: Callable[[T], TrialView | None], valid: Callable[[T], bool]
) -> list[T]:
    """``items`` ranked at epoch ``rung``: the valid ones first, by score there (highest first:
    the best value of the metric, whatever its direction), then the others; ties and the others
    by trial id (an item without a view, an index not yet drawn, sorts as ``~`` plus its index,
    after every id). The one ranker of every policy: survivors are a prefix of the valid part."""

    def key(item: T) -> tuple:
        view = view_of(item)
        tid = view.trial_id if view is not None else f"~{item:09d}"
        if valid(item):
            return (0, -view.score[rung], tid)  # type: ignore[union-attr]
        return (1, 0.0, tid)

    return sorted(items, key=key)


def stopped_short(event: JobEvent, view: TrialView | None) -> bool:
    """Whether ``event`` is a job stopped short of its target with the trial paused (its
    checkpoint kept): the executor stopped it (a resume on fewer slots), and the policy
    launches it again to the same rung."""
    return (
        event.outcome == "stopped"
        and event.epochs < event.until_epoch
        and view is not None
        and view.status == "paused"
    )


class RetryOnce:
    """Remembers which jobs were relaunched, so each is relaunched at most once (a second stop
    counts as not reaching the rung)."""

    def __init__(self) -> None:
        self._done: set[Hashable] = set()

    def allow(self, key: Hashable) -> bool:
        """True (and remembered) the first time for ``key``, False after."""
        if key in self._done:
            return False
        self._done.add(key)
        return True


def round_record(
    index: int,
    rung_epoch: int,
    num_trials: int,
    world_size: int,
    predicted_duration_s: float,
    predicted_cost_usd: float,
    bracket: int | None = None,
) -> dict[str, Any]:
    """A round as the report records it when it starts (``completed`` is set when it closes;
    ``bracket`` for the policies that run several brackets)."""
    out: dict[str, Any] = {"index": index}
    if bracket is not None:
        out["bracket"] = bracket
    out.update(
        rung_epoch=rung_epoch,
        num_trials=num_trials,
        world_size=world_size,
        predicted_duration_s=predicted_duration_s,
        predicted_cost_usd=predicted_cost_usd,
        completed=False,
    )
    return out


def eliminations(views: Iterable[TrialView | None], keep: Callable[[TrialView], bool]) -> list[Decision]:
    """An Eliminate for every view, in order, that is not kept and not already out."""
    return [
        Eliminate(v.trial_id) for v in views if v is not None and not keep(v) and v.status not in OUT_STATUSES
    ]


class RoundEngine:
    """The round cycle shared by the round-synchronous policies (module notes).

    :meth:`decide` runs, in order: :meth:`_on_events` (note the jobs that ended, relaunch those
    stopped short; SEER also replaces members that failed), :meth:`_begin` at the first
    decision (start the first round, or finish), :meth:`_close_round` while the current round
    is done (it starts the next round or finishes), then launches the round's queued trials into
    :meth:`_launch_slots`. A policy finishes by :meth:`_finish`; the decision that finishes ends
    with :class:`~.base.Finish`. Subclasses implement the hooks and :meth:`_require_setup`.
    """

    #: Finish when nothing of the round runs and nothing can be launched (a fixed cluster
    #: smaller than the round's world size); SEER never stalls (its plan fits its slots).
    stall_finishes = True
    #: After finishing, every later decision repeats the Finish (else it returns nothing).
    repeat_finish = False

    def _engine_reset(self) -> None:
        self.tracker = RoundTracker()
        self.members: list[int] = []  # trial indexes of the current round
        self.round_records: list[dict[str, Any]] = []
        self.finish_reason: str | None = None  # None: not finished; "": the plan ran to its end
        self.started = False

    # -- hooks --------------------------------------------------------------------------------

    def _require_setup(self) -> None:
        raise NotImplementedError

    def _on_events(self, snapshot: Snapshot) -> None:
        """Note the jobs that ended since the last decision (``snapshot.events``)."""
        raise NotImplementedError

    def _begin(self, snapshot: Snapshot) -> None:
        """Start the first round, or finish when there is nothing to run."""
        raise NotImplementedError

    def _close_round(self, snapshot: Snapshot) -> list[Decision]:
        """The current round is done: rank (:func:`rank_at_rung`), choose the survivors and the
        next round (started with :meth:`_start_round`), or finish; returns the eliminations.

        The rule of each policy: the baselines' in ``baselines._RoundPolicy._close_round`` (the
        top ``counts[k + 1]``, counts from :func:`~seer_torch.policies.rungs.survivor_counts`),
        SEER's in ``seer_policy.SeerPolicy._close_round`` (counts from
        :func:`~seer_torch.policies.seer_rounds.planned_counts`, then the re-plan's
        adjustments); both counts are :func:`~seer_torch.policies.rungs.survivors_at_rung`."""
        raise NotImplementedError

    def _launch_slots(self, snapshot: Snapshot) -> int:
        """Slots the round's queued jobs may take now."""
        return snapshot.free_slots

    # -- the cycle ----------------------------------------------------------------------------

    def decide(self, snapshot: Snapshot) -> list[Decision]:
        self._require_setup()
        if self.finish_reason is not None:
            return [Finish(self.finish_reason)] if self.repeat_finish else []
        self._on_events(snapshot)
        if self.finish_reason is not None:
            return [Finish(self.finish_reason)]
        out: list[Decision] = []
        if not self.started:
            self.started = True
            self._begin(snapshot)
        while self.finish_reason is None and self.tracker.done:
            out.extend(self._close_round(snapshot))
        if self.finish_reason is None:
            out.extend(self.tracker.launches(self._launch_slots(snapshot)))
            if self.stall_finishes and not self.tracker.running:
                self._finish(
                    f"stalled: no free slots for W={self.tracker.world_size} "
                    f"({snapshot.free_slots} free) and nothing running"
                )
        if self.finish_reason is not None:
            out.append(Finish(self.finish_reason))
        return out

    def _finish(self, reason: str) -> None:
        self.finish_reason = reason

    def _start_round(self, round_index: int, rung_epoch: int, world_size: int, indexes: Sequence[int],
                     record: dict[str, Any]) -> None:
        """Start a round: its members ``indexes`` queued to ``rung_epoch`` at ``world_size``;
        ``record`` (:func:`round_record`) joins the report's rounds."""
        self.members = list(indexes)
        self.tracker.start(round_index, rung_epoch, world_size, indexes)
        self.round_records.append(record)
