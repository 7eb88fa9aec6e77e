"""A trial's state: its status (an enum with one transition function), its record, and the
run's books of trials, rounds and running jobs.

A trial's status moves only through :func:`transition`, which raises on a move the executor
never makes (a bug). The statuses are the journal's strings, byte for byte (``state.json``,
``results.json``): :class:`TrialStatus` is a ``str`` enum.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from seer_torch.objective import Objective
from seer_torch.policies.base import TrialView


class TrialStatus(StrEnum):
    """Where a trial is. ``pending``: created, never launched; ``running``: a job runs;
    ``paused``: between jobs, its checkpoint at ``epochs``; ``eliminated``: the policy dropped
    it; ``failed``: its job failed past its retry budget; ``diverged``: its loss became NaN or
    infinite. At the end of a run every trial still alive is ``completed`` (trained to the
    target) or ``stopped`` (short of it)."""

    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    ELIMINATED = "eliminated"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    DIVERGED = "diverged"


S = TrialStatus

#: Statuses a trial never leaves for a new job (the policy cannot launch it again).
ENDED = frozenset({S.ELIMINATED, S.FAILED, S.DIVERGED})
#: Statuses of a trial that went wrong (an elimination never overrides them).
BROKEN = frozenset({S.FAILED, S.DIVERGED})
#: Statuses of a trial still in the running at the end of a run (settled by the wrap-up).
ALIVE = frozenset({S.PENDING, S.RUNNING, S.PAUSED})

# The moves the executor makes (staying put is always allowed). A trial is launched from
# pending or paused; a job ends paused (reached, or stopped), eliminated, failed or diverged; a
# failed job is retried from its checkpoint; a resume reads a diverged line or a job that had
# reached its rung; the wrap-up settles what is alive as completed or stopped.
_MOVES: dict[TrialStatus, frozenset[TrialStatus]] = {
    S.PENDING: frozenset({S.RUNNING, S.PAUSED, S.ELIMINATED, S.COMPLETED, S.STOPPED}),
    S.RUNNING: frozenset({S.PAUSED, S.ELIMINATED, S.FAILED, S.DIVERGED, S.COMPLETED, S.STOPPED}),
    S.PAUSED: frozenset({S.RUNNING, S.ELIMINATED, S.DIVERGED, S.COMPLETED, S.STOPPED}),
    S.FAILED: frozenset({S.RUNNING}),
    S.ELIMINATED: frozenset(),
    S.DIVERGED: frozenset(),
    S.COMPLETED: frozenset(),
    S.STOPPED: frozenset(),
}


class IllegalTransition(AssertionError):
    """The executor moved a trial in a way it never should (a bug in the executor)."""


def transition(current: TrialStatus, new: TrialStatus) -> TrialStatus:
    """``new`` if a trial may move there from ``current`` (see ``_MOVES``; staying is allowed).

    Raises:
        IllegalTransition: the move is not one the executor makes.
    """
    if new != current and new not in _MOVES[current]:
        raise IllegalTransition(f"trial status {current.value} -> {new.value}")
    return new


@dataclass
class Trial:
    """One configuration's training across jobs (one directory under ``trials/``)."""

    trial_id: str
    config: dict[str, Any]
    index: int = 0
    status: TrialStatus = TrialStatus.PENDING
    epochs: int = 0
    metric_by_epoch: dict[int, float] = field(default_factory=dict)  # the objective's metric, as reported
    test_accuracy_by_epoch: dict[int, float] = field(default_factory=dict)
    world_sizes: list[int] = field(default_factory=list)
    epoch_time_per_worker_s: list[float] = field(default_factory=list)  # tau estimates
    epoch_times_by_world_s: dict[int, list[float]] = field(default_factory=dict)  # W -> its epochs' times
    error: str | None = None
    handle: Any = None  # the running job
    round_index: int = 0
    eliminating: bool = False
    failures: int = 0  # crashes and hangs retried so far (planned resizes never count)
    port_retries: int = 0  # relaunches after a rendezvous-port clash (never count as failures)
    hung: bool = False  # the running job was killed for making no progress
    start_kind: str = "launch"  # how its job started: "launch" (cold), "continue" (kept alive), "warm"
    trained_slot_s: float = 0.0  # slot-seconds of its durable epochs (training + validation)
    schedule_epochs: int = 0  # the learning-rate schedule's horizon at its last launch (0: never launched)
    hang_checked_s: float = float("-inf")  # when its job's progress was last looked at (real jobs)
    stderr_tail: list[str] = field(default_factory=list)  # a failed job's last stderr lines (JobLog.tail)
    # Its TensorBoard run, RUN_DIR/tensorboard/<this> (runfiles.tensorboard_run_name; journaled,
    # so a resumed trial keeps it; the trial id when not given, as runs before the names had).
    tensorboard_run: str = ""

    def __post_init__(self) -> None:
        self.tensorboard_run = self.tensorboard_run or self.trial_id

    def move_to(self, status: TrialStatus) -> None:
        """Change the status through :func:`transition` (raises on an illegal move)."""
        self.status = transition(self.status, status)

    @property
    def metric_value(self) -> float | None:
        """The objective's metric at the last epoch reached (None before any, or diverged)."""
        return None if self.status == S.DIVERGED else self.metric_by_epoch.get(self.epochs)

    def view(self, objective: Objective) -> TrialView:
        """The trial as a policy sees it: its metric values turned into higher-is-better scores
        by ``objective`` (:meth:`Objective.score`, the one place the direction is applied)."""
        running = self.handle is not None
        resting = self.status in (S.PENDING, S.STOPPED, S.COMPLETED)
        return TrialView(
            trial_id=self.trial_id,
            index=self.index,
            status=S.PAUSED.value if resting else self.status.value,
            epochs=self.epochs,
            world_size=self.handle.spec.world_size if running else None,
            until_epoch=self.handle.spec.until_epoch if running else None,
            score={e: objective.score(v) for e, v in self.metric_by_epoch.items()},
            world_sizes=tuple(self.world_sizes),
            epoch_time_s=self.tau_s,
            epoch_time_by_world_s={w: statistics.median(times[-8:])
                                   for w, times in sorted(self.epoch_times_by_world_s.items()) if times},
        )

    @property
    def tau_s(self) -> float | None:
        """One epoch on one worker, seconds: the median of its last 8 epochs at ``W = 1``, or
        when it never trained at ``W = 1``, of its last 8 epochs scaled to ``W = 1`` by the
        profile's speedup (:attr:`epoch_time_per_worker_s`); ``None`` before any epoch. (Its
        epochs at ``W > 1`` say how fast it is at ``W``, :attr:`epoch_times_by_world_s`: a
        cheap configuration gains less from a second worker than the profile's, and scaled by
        the profile's speedup they would make it look slower at ``W = 1`` than it is.)"""
        at_one = self.epoch_times_by_world_s.get(1)
        if at_one:
            return statistics.median(at_one[-8:])
        if self.epoch_time_per_worker_s:
            return statistics.median(self.epoch_time_per_worker_s[-8:])
        return None

    def to_dict(self, metric: str) -> dict[str, Any]:
        """The trial as ``state.json`` journals it: its ``metric``'s last value under the
        metric's name, and every epoch's value in ``metric_by_epoch``."""
        return {
            "trial_id": self.trial_id,
            "index": self.index,
            "config": self.config,
            "status": self.status.value,
            "epochs": self.epochs,
            metric: self.metric_value,
            "metric_by_epoch": {str(k): v for k, v in self.metric_by_epoch.items()},
            "test_accuracy_by_epoch": {str(k): v for k, v in self.test_accuracy_by_epoch.items()},
            "world_sizes": self.world_sizes,
            "error": self.error,
            "stderr_tail": self.stderr_tail,
            "failures": self.failures,
            "round_index": self.round_index,
            "schedule_epochs": self.schedule_epochs,
            "trained_slot_s": self.trained_slot_s,
            "tensorboard_run": self.tensorboard_run,
            "epoch_times_by_world_s": {str(w): v[-8:] for w, v in self.epoch_times_by_world_s.items()},
        }


def update_from_rows(trial: Trial, rows: list[dict[str, Any]], metric: str) -> str | None:
    """A trial's ``metric`` by epoch and the epochs it reached, from its durable metrics lines
    (the backend's ``read_metrics``: the epochs its checkpoint holds, and a last ``diverged``
    line, which makes it diverged). Its progress is the last line's epoch (0 without any):
    values of later epochs, read before from lines that turned out not to be durable (a job
    stopped or killed before its checkpoint), are dropped; the next launch trains those epochs
    again.

    Returns:
        ``None``, or when a line that did not diverge lacks ``metric`` (a script that reports
        other names), what is wrong in words: the metric expected and the names the lines
        report (:func:`missing_metric_error`). The caller fails the trial with it.
    """
    durable = int(rows[-1]["epoch"]) if rows else 0
    trial.metric_by_epoch = {e: v for e, v in trial.metric_by_epoch.items() if e <= durable}
    trial.test_accuracy_by_epoch = {e: v for e, v in trial.test_accuracy_by_epoch.items() if e <= durable}
    for r in rows:
        e = int(r.get("epoch", 0))
        if r.get("diverged"):
            trial.move_to(S.DIVERGED)
            trial.error = "training loss became NaN or infinite"
        if r.get(metric) is not None:
            trial.metric_by_epoch[e] = float(r[metric])
        if r.get("test_accuracy") is not None:
            trial.test_accuracy_by_epoch[e] = float(r["test_accuracy"])
    trial.epochs = durable
    return missing_metric_error(rows, metric)


#: Keys of a metrics line that are not metrics (the trial API's bookkeeping), left out of the
#: names :func:`missing_metric_error` lists.
_NOT_METRICS = frozenset({
    "trial_id", "epoch", "step", "samples_seen", "world_size", "global_batch", "epoch_time_s",
    "throughput_samples_per_s", "train_start_unix_s", "time_unix_s", "diverged", "accum_steps",
    "micro_batch",
})


def missing_metric_error(rows: list[dict[str, Any]], metric: str) -> str | None:
    """``None`` when every line of ``rows`` that did not diverge carries ``metric``; else a
    message naming the metric the experiment expects, the first epoch without it, and the
    names the lines do report (the experiment file's ``metric`` must be one of them)."""
    lacking = [r for r in rows if not r.get("diverged") and r.get(metric) is None]
    if not lacking:
        return None
    names = sorted({k for r in rows for k in r if k not in _NOT_METRICS})
    return (
        f"metric {metric!r} not reported: epoch {lacking[0].get('epoch')} of metrics.jsonl has no "
        f"{metric!r}; the script reports {', '.join(names) if names else 'no metrics'} "
        "(set the experiment's metric to one of these, or report it)"
    )


@dataclass
class RoundRecord:
    """What the executor measured of one round (jobs launched with the same ``round_index``)."""

    index: int
    rung_epoch: int
    world_size: int
    num_trials: int = 0
    start_s: float = 0.0
    end_s: float | None = None
    cost_usd: float = 0.0
    running: int = 0


@dataclass
class RunBook:
    """The run's mutable books, shared by the executor's parts: trials (by id and by index),
    round records, the jobs running, the views the policy sees, and what jobs measured.

    Attributes:
        slots: the slots jobs may use now (a rented fixed cluster's, or the backend's).
        tau_s: trial id -> median one-epoch time on one worker, seconds.
        overheads_s: the last jobs' time not spent training (launch, start-up), seconds, of
            jobs that started processes.
        continue_overheads_s: the same of kept-alive jobs handed their next rung (no start).
        warm_overheads_s: the same of ``W = 1`` jobs on warm workers (another trial's process).
        parked: trial id -> its kept-alive job, parked at its rung (slots held and billed).
        spares: parked jobs of trials eliminated in the decisions being carried out: warm
            workers another trial may take up before they are released.
        start_kinds: how many jobs started cold (``launch``), went on kept alive
            (``continue``) and took up a warm worker (``warm``).
        start_slot_s: by the same kinds, the slot-seconds those jobs held outside their epochs
            and their waits for an order (each job's overhead times its ``W``), summed.
        profiling_slot_s: slot-seconds the profile's probe jobs held.
        objective: the metric and its direction; the views hold its scores.
    """

    slots: int
    overheads_s: deque[float]
    objective: Objective = field(default_factory=Objective)
    trials: dict[str, Trial] = field(default_factory=dict)
    trials_by_index: dict[int, Trial] = field(default_factory=dict)
    rounds: dict[int, RoundRecord] = field(default_factory=dict)
    running: dict[str, Trial] = field(default_factory=dict)
    views: dict[str, TrialView] = field(default_factory=dict)
    tau_s: dict[str, float] = field(default_factory=dict)
    continue_overheads_s: deque[float] = field(default_factory=lambda: deque(maxlen=16))
    warm_overheads_s: deque[float] = field(default_factory=lambda: deque(maxlen=16))
    parked: dict[str, Any] = field(default_factory=dict)
    spares: list[Any] = field(default_factory=list)
    start_kinds: dict[str, int] = field(default_factory=lambda: {"launch": 0, "continue": 0, "warm": 0})
    start_slot_s: dict[str, float] = field(
        default_factory=lambda: {"launch": 0.0, "continue": 0.0, "warm": 0.0})
    profiling_slot_s: float = 0.0  # slot-seconds of the profile's probe jobs

    def add(self, trial: Trial) -> None:
        self.trials[trial.trial_id] = trial
        self.trials_by_index[trial.index] = trial

    def touch(self, trial: Trial) -> None:
        """Refresh the view of ``trial`` the policy's next snapshot holds (scores by
        :attr:`objective`)."""
        self.views[trial.trial_id] = trial.view(self.objective)

    def held(self) -> list[tuple[float, int]]:
        """``(start_s, world_size)`` of every job holding slots: running, and parked (billed
        from when it parked)."""
        return [
            (t.handle.start_s, t.handle.spec.world_size, getattr(t.handle, "rental_start_s", None))
            for t in self.running.values()
        ] + [(h.result.end_s, h.spec.world_size, h.result.rental_start_s or h.result.start_s)
             for h in self.idle_jobs()]

    def idle_jobs(self) -> list[Any]:
        """Parked jobs (of paused trials) and spares, oldest parked first."""
        return sorted([*self.parked.values(), *self.spares], key=lambda h: h.result.end_s)

    def free_slots(self) -> int:
        """Slots no job holds (parked jobs hold theirs)."""
        return self.slots - sum(t.handle.spec.world_size for t in self.running.values()) - self.idle_slots()

    def idle_slots(self) -> int:
        """Slots held by parked jobs and spares: free for a policy, which never sees them (the
        executor continues, switches or releases them as launches need)."""
        return sum(h.spec.world_size for h in [*self.parked.values(), *self.spares])

    @staticmethod
    def job_row(t: Trial) -> dict[str, Any]:
        """A running job as the journal records it."""
        return {
            "trial_id": t.trial_id,
            "world_size": t.handle.spec.world_size,
            "until_epoch": t.handle.spec.until_epoch,
            "round_index": t.round_index,
        }
