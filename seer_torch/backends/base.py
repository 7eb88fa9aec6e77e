"""The backend contract: where a trial's job runs.

One abstract :class:`Backend` for every backend (local torchrun subprocesses, the simulated
one, a multi-node one later), so the executor and the policies are the same objects whatever
runs the jobs. A backend is a template: three methods every backend implements, and optional
abilities declared as class attributes (or set in ``__init__``) with methods whose defaults
say what a backend without the ability does. The executor reads the declarations; it never
probes a backend with ``getattr``. ``tests/contract/test_backends.py`` runs one suite against
every backend, the declared abilities included.

Required (abstract):

- ``launch(spec)`` starts a job that trains one trial from its checkpoint (if any) until
  ``spec.until_epoch`` at ``spec.world_size`` workers, and returns a handle at once. The
  caller guarantees that the slots are free; a backend never holds more than ``num_slots``
  slots in total.
- ``poll(handle)`` returns ``None`` while the job runs and a :class:`JobResult` once it ended;
  called again after that it returns the same result (idempotent).
- ``stop(handle)`` ends the job and every process it started (TERM, then KILL), waits for
  that, and returns its result with ``stopped=True`` (or, if the job had ended by itself
  before, the result it ended with). Idempotent like ``poll``.

Kept-alive jobs (backends that declare ``keeps_jobs_alive``): a job that reaches
``spec.until_epoch`` saves its checkpoint, reports, and *parks*: its processes stay alive and
hold their slots, waiting for the next target. ``poll`` then returns a result with
``parked=True`` (the job's segment up to the moment it parked). The executor either hands the
parked job its next target with :meth:`Backend.continue_job` (the same trial at the same ``W``:
no process start, no import, no data load, no rendezvous; or, where the backend can, another
trial at the same ``W`` on the warm worker), or ends it with :meth:`Backend.release`. Every
slot-second of a kept-alive job is billed exactly once: the handle ``continue_job`` returns
starts when the job parked (its wait is billed with its next segment), and ``release`` returns
the last wait as a result of its own.

Who owns what: the trial directory and its checkpoint belong to the trial (the worker writes
them, the executor reads them); a backend never deletes a checkpoint, stopping a job keeps it,
and the next job of the trial resumes from it. Jobs talk back through files in the trial
directory (``metrics.jsonl``, ``checkpoint.json``, torchrun's ``error.json``), never through
stdout; :meth:`Backend.read_metrics` is how the executor reads what a trial reported.

Units: seconds for every time (``start_s``/``end_s`` on the backend's clock, the one the
executor is given; ``launch_unix_s`` wall clock), slots for ``num_slots`` and world sizes.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from seer_torch.backends.joblog import JobLog, read_job_log
from seer_torch.clock import Clock
from seer_torch.runfiles import read_durable_metrics, read_metrics


@dataclass(frozen=True)
class JobSpec:
    """One job: train ``trial_id`` (config in ``trial_dir/config.json``) until ``until_epoch``."""

    trial_id: str
    trial_dir: Path
    world_size: int
    until_epoch: int
    # Profile jobs: measure throughput for this many steps instead of training to a rung.
    profile_steps: int | None = None
    profile_out: Path | None = None
    # The trial's configuration and its index in the draw order (what config.json holds); the
    # simulated backend reads them here, real backends read config.json.
    configuration: Mapping[str, Any] | None = field(default=None, compare=False)
    config_index: int | None = None
    # The user's torchrun training script (``[trial] script``, an absolute path) and its own
    # arguments, run instead of the built-in worker; ``None``: the built-in worker.
    script: Path | None = None
    script_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobResult:
    """How a job ended. Times are on the backend's clock (seconds); ``launch_unix_s`` is the
    wall-clock start, to compare with timestamps the worker writes."""

    spec: JobSpec
    returncode: int
    start_s: float
    end_s: float
    launch_unix_s: float
    stopped: bool = False
    error: str | None = None  # why it failed, when the backend knows without files (simulated)
    # The job reached ``spec.until_epoch`` and waits, alive, holding its slots, for
    # ``Backend.continue_job`` or ``Backend.release`` (backends that keep jobs alive).
    parked: bool = False
    # Seconds at the start of this segment that the job waited parked before it was handed
    # its target (``continue_job``): billed, but neither start-up nor training.
    wait_s: float = 0.0
    # When the processes of this job started (a kept-alive job's segments are one rental:
    # billing's minimum and granularity apply to the whole of it); ``None``: ``start_s``.
    rental_start_s: float | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def slot_seconds(self) -> float:
        return self.duration_s * self.spec.world_size


class JobHandle(Protocol):
    spec: JobSpec
    start_s: float


class Backend(abc.ABC):
    """What the executor drives (see the module docstring for the contract).

    Attributes:
        num_slots: slots the backend may hold at once (a resume may lower it between runs).
        clock: the clock its jobs' ``start_s``/``end_s`` are on (give the executor the same).
        max_stop_s: the longest a :meth:`stop` (or :meth:`stop_many`) can hold a job's slots,
            seconds; the executor's money check bills running jobs that far ahead. 0: a stop
            is instant (as far as the budget can tell).
        discrete_events: the backend advances a simulated clock: :meth:`next_event_s` says
            when the next job ends, and the executor jumps the clock there instead of polling.
        detects_hangs: :meth:`seconds_since_progress` tells how long a running job made no
            progress; the executor kills a job silent for ``failures.hang_timeout_s`` as hung.
        keeps_jobs_alive: a job that reaches its target parks instead of exiting (see the
            module docstring); :meth:`continue_job` and :meth:`release` work on parked jobs.
        hands_over_workers: with ``keeps_jobs_alive``, a parked ``W = 1`` job of the built-in
            worker also takes up another trial (a warm worker); without, a new trial's job
            always starts processes, and the planner prices it so
            (:func:`seer_torch.executor.context.policy_context`).
    """

    num_slots: int
    clock: Clock
    max_stop_s: float = 0.0
    discrete_events: bool = False
    detects_hangs: bool = False
    keeps_jobs_alive: bool = False
    hands_over_workers: bool = False

    # -- required ---------------------------------------------------------------------------
    @abc.abstractmethod
    def launch(self, spec: JobSpec) -> JobHandle:
        """Start ``spec``'s job and return its handle at once."""

    @abc.abstractmethod
    def poll(self, handle: JobHandle) -> JobResult | None:
        """``None`` while the job runs; its result once it ended (the same one every call)."""

    @abc.abstractmethod
    def stop(self, handle: JobHandle) -> JobResult:
        """End the job (checkpoint kept), wait for that, and return its result."""

    # -- optional, with defaults --------------------------------------------------------------
    def stop_many(self, handles: list[JobHandle]) -> list[JobResult]:
        """Stop several jobs, results in the order given. Default: one :meth:`stop` after
        another; a backend whose stop waits (the local one) stops them all at once, so that
        ``n`` stops hold slots no longer than ``max_stop_s``."""
        return [self.stop(h) for h in handles]

    def wait_for_news(self, timeout_s: float) -> None:
        """Sleep between the executor's polls: up to ``timeout_s`` seconds on the backend's
        clock. Default: the whole of it; a backend whose jobs can say they parked (the local
        one, :mod:`seer_torch.wakeup`) returns as soon as one does."""
        self.clock.sleep(timeout_s)

    def stop_all(self) -> None:
        """Stop every job this backend started that still runs (on the way out, whatever
        happened, including jobs the executor does not know of such as profile probes).
        Default: nothing (a backend that keeps no record of its jobs has none to stop)."""
        return None

    def read_metrics(self, spec: JobSpec) -> list[dict[str, Any]]:
        """The trial's complete ``metrics.jsonl`` lines (one dict per epoch), oldest first, of
        the epochs a relaunch would not train again (its durable checkpoint's), and a last
        ``diverged`` line if any. Default: read from ``spec.trial_dir``
        (:func:`seer_torch.runfiles.read_durable_metrics`)."""
        return read_durable_metrics(spec.trial_dir)

    def job_log(self, spec: JobSpec) -> JobLog:
        """What ``spec``'s ended job wrote on stderr in its last launch (the failing rank's
        traceback, its exception and the signal that ended it; the launcher's own report left
        out), for the message of a failed trial. Default: parsed from
        ``spec.trial_dir/stderr.log`` (:func:`seer_torch.backends.joblog.read_job_log`; an empty
        :class:`JobLog` without the file)."""
        return read_job_log(spec.trial_dir)

    def check_storage(self, run_dir: Path) -> None:
        """Check that the jobs will see ``run_dir`` where the tuner does (a backend whose jobs
        run on other machines: the run folder must be on storage they all mount). Nothing to
        check here: the local and simulated backends run on this machine.

        Raises:
            ConfigError: a machine the jobs may run on does not see ``run_dir``.
        """
        return None

    def held_nodes(self) -> dict[str, int] | None:
        """The machines a cluster backend holds now, node id to the slots it offers, for the
        meter of what the cluster costs (:mod:`seer_torch.executor.held_nodes`); ``None`` for a
        backend that rents no machines of its own (the local and simulated ones: their jobs'
        slot-seconds are billed). May answer from a look a moment old."""
        return None

    def reported_epoch(self, spec: JobSpec) -> int:
        """The last epoch the trial's ``metrics.jsonl`` holds, durable or not (0 without any): a
        job that reported epochs past its durable checkpoint saved none for them. Default: read
        from ``spec.trial_dir``."""
        rows = read_metrics(Path(spec.trial_dir) / "metrics.jsonl")
        return max((int(r.get("epoch", 0)) for r in rows), default=0)

    def kill_leftover(self, trial_dir: Path) -> dict[str, Any] | None:
        """Stop a job a dead tuner left running in ``trial_dir`` (``seer resume``). Returns
        ``{"launch_unix_s", "end_unix_s", "world_size", "until_epoch", "alive"}`` (the times
        on the clock the backend bills by) when it found one, running or ended by itself
        since; ``None`` when there was none. Default: ``None`` (jobs that cannot outlive the
        tuner)."""
        return None

    def continue_job(self, parked: JobHandle, spec: JobSpec) -> JobHandle | None:
        """Hand a parked job (its :meth:`poll` returned ``parked=True``) its next target:
        ``spec`` is the same trial's next job at the same ``W`` (train on to
        ``spec.until_epoch``), or, on a backend that can reuse a warm worker, another trial's
        job at the same ``W``. Returns the new handle at once; its ``start_s`` is when the job
        parked, so its wait is billed with the segment that follows. Returns ``None`` when the
        parked job cannot take ``spec`` (it died while waiting, another ``W`` or script, its
        trial's ``config.json`` changed other than a horizon the built-in worker takes in place,
        :func:`continue_order`; a switch this backend or this ``W`` does not offer):
        the caller then releases it and launches ``spec`` afresh. Only where
        ``keeps_jobs_alive`` is declared; default ``None``."""
        return None

    def release(self, parked: JobHandle) -> JobResult:
        """End a parked job's processes (its checkpoint kept) and return its last wait as a
        result of its own (``start_s`` when it parked, ``end_s`` now, ``stopped=True``,
        ``parked=True``), for the bill. Only where ``keeps_jobs_alive`` is declared."""
        raise NotImplementedError(f"{type(self).__name__} keeps no jobs alive")

    def release_many(self, parked: list[JobHandle]) -> list[JobResult]:
        """Release several parked jobs, results in the order given. Default: one
        :meth:`release` after another; a backend whose release waits (the local one) releases
        them all at once."""
        return [self.release(h) for h in parked]

    def next_event_s(self) -> float:
        """When the next running job ends, on the backend's clock (``inf`` when none runs).
        Only where ``discrete_events`` is declared."""
        raise NotImplementedError(f"{type(self).__name__} declares no discrete events")

    def seconds_since_progress(self, handle: JobHandle) -> float:
        """Seconds since ``handle``'s job last showed progress. Only where ``detects_hangs``
        is declared."""
        raise NotImplementedError(f"{type(self).__name__} does not detect hangs")


def continue_order(parked_config: bytes | None, config: bytes | None,
                   script: Path | None) -> dict[str, Any] | None:
    """What a continue order carries besides its target when a parked job may go on with its
    trial's ``config.json`` as it is now (``config``; ``parked_config`` when the job began):
    ``{}`` when it is unchanged; ``{"max_epochs": N}`` when only the learning-rate schedule's
    horizon moved (a re-plan moved the target) and the job runs the built-in worker
    (``script`` ``None``), which re-anchors its cosine in place exactly as a relaunch would
    (:meth:`seer_torch.training.trainer.Trainer.retarget`); ``None`` otherwise: a user's script
    builds its schedule once, so its job starts again."""
    if config == parked_config:
        return {}
    if script is not None or parked_config is None or config is None:
        return None
    try:
        before, now = json.loads(parked_config), json.loads(config)
    except ValueError:
        return None
    if not isinstance(before, dict) or not isinstance(now, dict):
        return None
    horizon = now.get("max_epochs")
    rest = {k: v for k, v in now.items() if k != "max_epochs"}
    if type(horizon) is not int or rest != {k: v for k, v in before.items() if k != "max_epochs"}:
        return None
    return {"max_epochs": horizon}


def job_error_text(res: JobResult) -> str:
    """One line saying why a job failed: the worker's own error from torchrun's error file
    (``TRIAL_DIR/error.json``, written by a worker decorated with torchrun's ``record``) when
    there is one, else the exception the failing rank printed on stderr
    (:func:`~seer_torch.backends.joblog.read_job_log`), else the exit code and where the log is."""
    trial_dir = res.spec.trial_dir
    err = trial_dir / "error.json"
    if res.stopped:
        return "stopped"
    if res.error:
        return res.error
    try:
        msg = json.loads(err.read_text()).get("message")
        if isinstance(msg, dict):
            msg = msg.get("message")
        if msg:
            lines = [line for line in str(msg).strip().splitlines() if line.strip()]
            return lines[-1][:500]
    except (OSError, ValueError, AttributeError):
        pass
    log = read_job_log(trial_dir)
    if log.exception:
        return log.exception
    if log.signal:
        oom = " (out of memory? the kernel's OOM killer sends it)" if log.signal == "SIGKILL" else ""
        return f"rank {log.rank} was ended by {log.signal}{oom}; see {trial_dir / 'stderr.log'}"
    return f"torchrun exited with {res.returncode}; see {trial_dir / 'stderr.log'}"
