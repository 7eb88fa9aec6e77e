"""The simulated backend: jobs advance on a simulated clock instead of running.

A job of a trial at world size ``W`` from epoch ``e0`` to ``e1`` takes ``overhead + (e1 - e0)
* epoch_time_s / s(W)`` simulated seconds (with ``sync_s``, a configuration of another epoch
time ``t`` on one worker takes ``t / W + b(W)`` an epoch instead: the model of
:meth:`seer_torch.scaling.model.ScalingModel.sync_s`), where ``overhead`` is ``startup_s`` for the trial's
first job, ``relaunch_s`` for a later job at the same ``W`` and ``resize_s`` at a different
``W`` (the planner's own cost model, docs/design.md, "The cloud model"; kept-alive jobs
below). What the job reports is what the real worker writes to ``metrics.jsonl`` (one line
per epoch: ``epoch``, ``world_size``, the metric, ``epoch_time_s``; the metric's test value
on the job's last epoch), with the metric (named
``metric``: ``val_accuracy`` unless told otherwise, a learning-curve table's own ``metric``)
``= curve(configuration, epoch)`` or ``val_at(config_index, epoch)`` from a table. A NaN
value means the trial diverged at that epoch: the job ends there with a ``diverged`` line, as
the worker does. Stopping a job keeps the epochs it completed.

Kept-alive jobs (``keep_alive=True``, the contract of :mod:`seer_torch.backends.base`): a job
that reaches its target parks at that moment, holding its slots; :meth:`SimulatedBackend.poll`
returns its segment with ``parked=True``. :meth:`SimulatedBackend.continue_job` hands it the
same trial's next target at the same ``W`` for ``continue_s`` (no process start), or, on a
``W = 1`` job, another trial's job for ``warm_start_s`` (a warm worker; refused when
``warm_start_s`` is ``None``); another ``W`` is refused (``None``). The new handle's
``start_s`` is when the job parked, so its wait is billed with its next segment;
:meth:`SimulatedBackend.release` ends a parked job and returns its last wait as a result of
its own. A job that diverges, crashes or hangs never parks.

Discrete events: :meth:`SimulatedBackend.next_event_s` says when the next running job ends, so
the executor jumps the clock there instead of polling; nothing is written to disk (the
executor reads results through :meth:`SimulatedBackend.read_metrics`). The executor and the
policies are the same objects that drive real jobs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seer_torch.backends.base import Backend, JobResult, JobSpec


class SimulatedClock:
    """A clock that moves only when someone sleeps on it."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.t = start_s

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


@dataclass
class SimulatedJob:
    """One job (a launch, or a kept-alive job's continuation). ``start_s`` is where its bill
    starts (its launch, or when the job it continues parked); ``begin_s`` when its work began
    (its launch or :meth:`SimulatedBackend.continue_job`); ``kind`` which overhead it paid:
    ``startup``, ``relaunch``, ``resize``, ``continue`` or ``warm_start``."""

    spec: JobSpec
    start_s: float
    first_epoch: int
    configuration: dict[str, Any]
    overhead_s: float
    epoch_s: float
    last_epoch: int  # the epoch the job ends at (until_epoch, or where it diverges)
    end_s: float
    result: JobResult | None = None
    fault: tuple[str, int, str] | None = None  # ("crash" | "hang", epochs done first, error text)
    begin_s: float = 0.0
    kind: str = "startup"
    diverges: bool = False  # its last epoch is NaN: it ends there, it does not park
    # "running", "ended", "parked" (waits, holding its slots), "continued" or "released"
    state: str = "running"
    released: JobResult | None = None  # the last wait's result (release)
    rental_start_s: float | None = None  # when its processes started (None: start_s)


class SimulatedBackend(Backend):
    """Runs jobs on a :class:`SimulatedClock`.

    Declared abilities (:class:`~seer_torch.backends.base.Backend`): ``discrete_events``
    (:meth:`next_event_s`), ``detects_hangs`` only when ``faults`` are given (jobs hang only
    then), ``keeps_jobs_alive`` only with ``keep_alive`` (:meth:`continue_job`,
    :meth:`release`), ``stop_all``, ``kill_leftover`` (jobs left running or parked by a tuner
    killed in-process), ``read_metrics`` from memory (nothing is written to disk). Stops are
    instant (``max_stop_s`` 0).

    Args:
        num_slots: slots in the simulated cluster.
        clock: the simulated clock the executor also reads.
        epoch_time_s: one epoch on one worker, seconds (default for every configuration).
        speedup: ``s(W)``, throughput(W) / throughput(1).
        startup_s: overhead of a trial's first job, seconds.
        curve: the metric of a configuration (dict) after ``epoch`` epochs; NaN means the
            trial diverged at that epoch. Or give ``val_at`` instead.
        relaunch_s: overhead of a later job at the same ``W`` (default ``startup_s``).
        resize_s: overhead of a later job at a different ``W`` (default ``startup_s``).
        val_at: ``(config_index, epoch) -> value of the metric`` (a learning-curve table).
        test_at: ``(config_index, epoch) -> its test value`` (default: the validation value),
            written as ``test_accuracy`` for ``val_accuracy``, else as ``test_`` plus the
            metric's name without its ``val_`` prefix (``test_loss`` for ``val_loss``).
        epoch_time_at: ``config_index -> seconds`` of one epoch on one worker (default
            ``epoch_time_s``).
        sync_s: ``W -> b(W)``, the seconds of an epoch at ``W`` that do not shrink with ``W``
            (:meth:`~seer_torch.scaling.model.ScalingModel.sync_s`, ``None`` where unknown):
            given, a configuration whose epoch on one worker takes ``t`` takes
            ``min(t, t / W + b(W))`` at ``W``; default ``None``: ``t / s(W)`` (every
            configuration gains the same from more workers).
        faults: fault injection: ``(trial_id, attempt) -> None`` or ``(kind, epochs, error)``
            where ``attempt`` counts the trial's jobs from 0, ``kind`` is ``"crash"`` (the job
            exits 1 with ``error`` after ``epochs`` of its epochs) or ``"hang"`` (it makes no
            progress after ``epochs`` epochs and never ends by itself).
        metric: the name the jobs report the metric under (the experiment's ``metric``).
        keep_alive: jobs park at their target instead of exiting (module notes). Default
            ``False``: the simulated twin of a backend whose jobs exit at every rung, as every
            run simulated before kept-alive jobs (their decisions stay the same);
            :mod:`seer_torch.simulate` turns it on to match the local backend.
        continue_s: overhead of a parked job handed its trial's next target at the same ``W``,
            seconds (default 0: no process starts; the decision's latency is the executor's).
        warm_start_s: overhead of a parked ``W = 1`` job handed another trial's job, seconds
            (the new trial's model built, its checkpoint read); ``None`` (default): no warm
            workers, :meth:`continue_job` refuses another trial.

    Attributes:
        launches: every job :meth:`launch` started, in order.
        jobs: every job, launched or continued (:meth:`continue_job`), in order; each job's
            ``kind`` says which overhead it paid.

    Raises:
        ValueError: neither ``curve`` nor ``val_at``; a negative ``continue_s`` or
            ``warm_start_s``.
    """

    discrete_events = True

    def __init__(
        self,
        num_slots: int,
        clock: SimulatedClock,
        *,
        epoch_time_s: float,
        speedup: Callable[[int], float],
        startup_s: float,
        curve: Callable[[dict[str, Any], int], float] | None = None,
        relaunch_s: float | None = None,
        resize_s: float | None = None,
        val_at: Callable[[int, int], float] | None = None,
        test_at: Callable[[int, int], float] | None = None,
        epoch_time_at: Callable[[int], float] | None = None,
        faults: Callable[[str, int], tuple[str, int, str] | None] | None = None,
        metric: str = "val_accuracy",
        keep_alive: bool = False,
        continue_s: float = 0.0,
        warm_start_s: float | None = None,
        sync_s: Callable[[int], float | None] | None = None,
    ) -> None:
        if curve is None and val_at is None:
            raise ValueError("SimulatedBackend needs curve or val_at")
        for name, value in (("continue_s", continue_s), ("warm_start_s", warm_start_s)):
            if value is not None and not value >= 0:
                raise ValueError(f"SimulatedBackend: {name}={value!r}, seconds >= 0 expected")
        self.num_slots = num_slots
        self.clock = clock
        self.epoch_time_s = epoch_time_s
        self.speedup = speedup
        self.startup_s = startup_s
        self.relaunch_s = startup_s if relaunch_s is None else relaunch_s
        self.resize_s = startup_s if resize_s is None else resize_s
        self.curve = curve
        self.val_at = val_at
        self.test_at = test_at
        self.epoch_time_at = epoch_time_at
        self.sync_s = sync_s
        self.faults = faults
        self.metric = metric
        self.test_key = "test_" + metric.removeprefix("val_")
        self.detects_hangs = faults is not None  # the executor looks for hangs only then
        self.keeps_jobs_alive = keep_alive
        self.continue_s = continue_s
        self.warm_start_s = warm_start_s
        self.hands_over_workers = bool(keep_alive) and warm_start_s is not None
        self.launches: list[SimulatedJob] = []
        self.jobs: list[SimulatedJob] = []
        self._attempts: dict[str, int] = {}
        self._busy = 0
        self._running: dict[int, SimulatedJob] = {}
        self._parked: dict[int, SimulatedJob] = {}
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._last_w: dict[str, int] = {}

    # -- what a configuration does ------------------------------------------------------------
    def _val(self, job: SimulatedJob, epoch: int) -> float:
        if self.val_at is not None and job.spec.config_index is not None:
            return float(self.val_at(job.spec.config_index, epoch))
        assert self.curve is not None
        return float(self.curve(job.configuration, epoch))

    def _test(self, job: SimulatedJob, epoch: int, val: float) -> float:
        if self.test_at is not None and job.spec.config_index is not None:
            return float(self.test_at(job.spec.config_index, epoch))
        return val

    # -- the backend interface ----------------------------------------------------------------
    def epoch_at_s(self, epoch_time_s: float, world_size: int) -> float:
        """One epoch at ``world_size`` of a configuration whose epoch on one worker takes
        ``epoch_time_s``: ``min(t, t / W + b(W))`` with :attr:`sync_s`, else ``t / s(W)``."""
        sync = self.sync_s(world_size) if self.sync_s is not None and world_size > 1 else None
        if sync is None:
            return epoch_time_s / self.speedup(world_size)
        return min(epoch_time_s, epoch_time_s / world_size + sync)

    def launch(self, spec: JobSpec) -> SimulatedJob:
        if spec.profile_steps is not None:
            raise ValueError("the simulated backend takes its profile as given; it runs no probes")
        if self._busy + spec.world_size > self.num_slots:
            raise RuntimeError(
                f"over-asked slots: {self._busy} busy + W={spec.world_size} > {self.num_slots}"
            )
        last_w = self._last_w.get(spec.trial_id)
        if last_w is None:
            overhead, kind = self.startup_s, "startup"
        elif last_w == spec.world_size:
            overhead, kind = self.relaunch_s, "relaunch"
        else:
            overhead, kind = self.resize_s, "resize"
        now = self.clock.now()
        job = self._job(spec, now, now, overhead, kind)
        self._busy += spec.world_size
        self.launches.append(job)
        return job

    def _job(self, spec: JobSpec, start_s: float, now: float, overhead: float, kind: str) -> SimulatedJob:
        """A job of ``spec`` whose work begins ``now`` after ``overhead`` seconds, billed from
        ``start_s``; registered as running (its slots are the caller's to count)."""
        if spec.configuration is not None:
            configuration = dict(spec.configuration)
        else:
            configuration = json.loads((spec.trial_dir / "config.json").read_text())["configuration"]
        rows = self._rows.setdefault(spec.trial_id, [])
        first = rows[-1]["epoch"] if rows else 0
        base = self.epoch_time_s
        if self.epoch_time_at is not None and spec.config_index is not None:
            base = float(self.epoch_time_at(spec.config_index))
        epoch_s = self.epoch_at_s(base, spec.world_size)
        job = SimulatedJob(spec, start_s, first, configuration, overhead, epoch_s, spec.until_epoch, 0.0,
                           begin_s=now, kind=kind)
        for e in range(first + 1, spec.until_epoch + 1):  # where does it diverge, if it does?
            if not math.isfinite(self._val(job, e)):
                job.last_epoch = e
                job.diverges = True
                break
        job.end_s = now + overhead + (job.last_epoch - first) * epoch_s
        attempt = self._attempts.get(spec.trial_id, 0)
        self._attempts[spec.trial_id] = attempt + 1
        fault = self.faults(spec.trial_id, attempt) if self.faults is not None else None
        if fault is not None:
            crash, done = fault[0] == "crash", fault[1]
            job.fault = fault
            job.last_epoch = min(job.last_epoch, first + done)
            job.end_s = now + overhead + (job.last_epoch - first) * epoch_s if crash else math.inf
        self._last_w[spec.trial_id] = spec.world_size
        self._running[id(job)] = job
        self.jobs.append(job)
        return job

    def _parks(self, job: SimulatedJob, stopped: bool) -> bool:
        """Whether ``job``, ending now, parks: kept-alive jobs that reached their target."""
        return (
            self.keeps_jobs_alive
            and not stopped
            and job.fault is None
            and not job.diverges
            and job.last_epoch == job.spec.until_epoch
        )

    def _finish(self, job: SimulatedJob, last_epoch: int, end_s: float, stopped: bool) -> JobResult:
        rows = self._rows[job.spec.trial_id]
        for epoch in range(job.first_epoch + 1, last_epoch + 1):
            val = self._val(job, epoch)
            if not math.isfinite(val):
                rows.append({"epoch": epoch, "diverged": True, "train_loss": None, self.metric: None})
                break
            row = {
                "epoch": epoch,
                "world_size": job.spec.world_size,
                self.metric: val,
                "epoch_time_s": job.epoch_s,
            }
            if epoch == last_epoch and not stopped:
                row[self.test_key] = self._test(job, epoch, val)
            rows.append(row)
        del self._running[id(job)]
        parks = self._parks(job, stopped)
        if parks:  # it waits, alive, holding its slots
            job.state = "parked"
            self._parked[id(job)] = job
        else:
            job.state = "ended"
            self._busy -= job.spec.world_size
        crashed = job.fault is not None and job.fault[0] == "crash" and not stopped
        job.result = JobResult(
            job.spec,
            1 if crashed else 0,
            job.start_s,
            end_s,
            0.0,
            stopped=stopped,
            error=job.fault[2] if crashed else None,
            parked=parks,
            wait_s=job.begin_s - job.start_s,  # a continuation's wait since its job parked
            rental_start_s=job.rental_start_s,
        )
        return job.result

    def poll(self, handle: SimulatedJob) -> JobResult | None:
        if handle.result is not None:
            return handle.result
        if self.clock.now() < handle.end_s:
            return None
        return self._finish(handle, handle.last_epoch, handle.end_s, stopped=False)

    def stop(self, handle: SimulatedJob) -> JobResult:
        """End a running job (its result ``stopped=True``), or return the result it ended with.
        A parked job's result is the segment it parked with; it stays parked (it ends with
        :meth:`release`, which bills its wait)."""
        if handle.result is not None:
            return handle.result
        now = self.clock.now()
        if now >= handle.end_s:
            return self._finish(handle, handle.last_epoch, handle.end_s, stopped=False)
        return self._finish(handle, self._epochs_done(handle, now), now, stopped=True)

    def seconds_since_progress(self, handle: SimulatedJob) -> float:
        """Simulated seconds since the job's last completed epoch (or its launch or
        continuation); since it parked, for a parked job."""
        now = self.clock.now()
        if handle.result is not None:
            return now - handle.result.end_s
        done = self._epochs_done(handle, now)
        last = (
            handle.begin_s
            if done == handle.first_epoch
            else (handle.begin_s + handle.overhead_s + (done - handle.first_epoch) * handle.epoch_s)
        )
        return now - last

    def _epochs_done(self, handle: SimulatedJob, now: float) -> int:
        done = handle.first_epoch
        if handle.epoch_s > 0:
            done += int(max(0.0, now - handle.begin_s - handle.overhead_s) // handle.epoch_s)
        return min(done, handle.last_epoch)

    # -- kept-alive jobs ------------------------------------------------------------------------
    def continue_job(self, parked: SimulatedJob, spec: JobSpec) -> SimulatedJob | None:
        """Hand the parked job ``parked`` the job ``spec`` (module notes): the same trial at the
        same ``W`` pays ``continue_s``, another trial on a ``W = 1`` job ``warm_start_s``;
        ``None`` for another ``W``, another script, a profile job, another trial on a wider
        job, a user's script (only the built-in worker takes up another trial) or without warm
        workers (the caller releases it and launches ``spec``). The new
        handle's ``start_s`` is when ``parked`` parked; ``parked``'s handle is dead after.

        Raises:
            RuntimeError: ``parked`` is not a parked job (running, ended, already continued or
                released): the caller's bug.
        """
        if not self.keeps_jobs_alive:
            return None
        if parked.state != "parked":
            raise RuntimeError(f"continue_job: {parked.spec.trial_id}'s job is {parked.state}, not parked")
        old = parked.spec
        if (
            spec.profile_steps is not None
            or spec.world_size != old.world_size
            or (spec.script, spec.script_args) != (old.script, old.script_args)
        ):
            return None
        if spec.trial_id == old.trial_id:
            overhead, kind = self.continue_s, "continue"
        elif old.world_size == 1 and self.warm_start_s is not None and spec.script is None:
            overhead, kind = self.warm_start_s, "warm_start"
        else:
            return None
        assert parked.result is not None
        del self._parked[id(parked)]
        parked.state = "continued"
        job = self._job(spec, parked.result.end_s, self.clock.now(), overhead, kind)
        job.rental_start_s = parked.rental_start_s if parked.rental_start_s is not None else parked.start_s
        return job

    def release(self, parked: SimulatedJob) -> JobResult:
        """End the parked job ``parked`` (its slots free) and return its last wait: ``start_s``
        when it parked, ``end_s`` now, ``stopped=True``, ``parked=True``. Idempotent.

        Raises:
            RuntimeError: ``parked`` never parked, or was continued (its wait is billed with
                the job that continued it): the caller's bug.
        """
        if parked.state == "released":
            assert parked.released is not None
            return parked.released
        if parked.state != "parked":
            raise RuntimeError(f"release: {parked.spec.trial_id}'s job is {parked.state}, not parked")
        assert parked.result is not None
        del self._parked[id(parked)]
        self._busy -= parked.spec.world_size
        parked.state = "released"
        parked.released = JobResult(
            parked.spec, 0, parked.result.end_s, self.clock.now(), 0.0, stopped=True, parked=True,
            rental_start_s=parked.rental_start_s if parked.rental_start_s is not None else parked.start_s,
        )
        return parked.released

    def kill_leftover(self, trial_dir: Any) -> dict[str, Any] | None:
        """Stop a job of the trial in ``trial_dir`` that a crashed tuner left running or parked
        (the simulated twin of :func:`seer_torch.backends.local.kill_leftover_job`);
        ``launch_unix_s`` and ``end_unix_s`` are on the simulated clock: from the start of the
        segment not billed yet (a running job's ``start_s``; a parked job's wait, the segment
        it parked with having been polled) to its end (now, for a parked one)."""
        name = getattr(trial_dir, "name", str(trial_dir))
        for job in [*self._running.values(), *self._parked.values()]:
            if job.spec.trial_id == name:
                if job.state == "parked":  # its segment was polled: its wait is what is left
                    res = self.release(job)
                    start_s, end_s = res.start_s, res.end_s
                else:
                    res = self.stop(job)
                    start_s, end_s = res.start_s, res.end_s
                    if job.state == "parked":  # it had reached its target: its wait too
                        end_s = self.release(job).end_s
                return {
                    "launch_unix_s": start_s,
                    "end_unix_s": end_s,
                    "world_size": job.spec.world_size,
                    "until_epoch": job.spec.until_epoch,
                    "alive": True,
                }
        return None

    def read_metrics(self, spec: JobSpec) -> list[dict[str, Any]]:
        return list(self._rows.get(spec.trial_id, ()))

    def reported_epoch(self, spec: JobSpec) -> int:
        """The last epoch the trial reported: its rows', or, while a job of it runs, the epochs
        that job has completed by now (a real job's ``metrics.jsonl`` holds those before a
        checkpoint makes them durable)."""
        done = max((int(r["epoch"]) for r in self._rows.get(spec.trial_id, ())), default=0)
        now = self.clock.now()
        for job in self._running.values():
            if job.spec.trial_id == spec.trial_id:
                done = max(done, self._epochs_done(job, now))
        return done

    def next_event_s(self) -> float:
        """When the next running job ends (simulated seconds; ``inf`` when none runs)."""
        return min((j.end_s for j in self._running.values()), default=math.inf)

    def stop_all(self) -> None:
        """Stop every job still running, at the current simulated time, and release every
        parked job."""
        for job in list(self._running.values()):
            self.stop(job)
        for job in list(self._parked.values()):
            self.release(job)
