"""The simulated backend: jobs advance on a simulated clock instead of running.

A job at world size ``W`` from epoch ``e0`` to ``e1`` takes ``startup_s + (e1 - e0) *
epoch_time_s / s(W)`` simulated seconds (the planner's own cost model, DESIGN.md). When it
ends, the backend writes the trial's ``metrics.jsonl`` lines as the real worker would, with
``val_accuracy = curve(configuration, epoch)``, so the executor reads results the same way on
both backends. Stopping a job keeps the epochs it completed. Used by tests and, later, by
``seer simulate``; the executor and the policy are the same objects that drive real jobs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from seer_torch.backends.base import JobResult, JobSpec
from seer_torch.runfiles import read_metrics


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
    spec: JobSpec
    start_s: float
    first_epoch: int
    configuration: dict[str, Any]
    result: JobResult | None = None


class SimulatedBackend:
    """Runs jobs on a :class:`SimulatedClock`.

    Args:
        num_slots: slots in the simulated cluster.
        clock: the simulated clock the executor also reads.
        epoch_time_s: one epoch on one worker, seconds.
        speedup: ``s(W)``, throughput(W) / throughput(1).
        startup_s: fixed cost of every job, seconds.
        curve: validation accuracy of a configuration after ``epoch`` epochs; NaN means the
            trial diverged at that epoch.
    """

    def __init__(
        self,
        num_slots: int,
        clock: SimulatedClock,
        *,
        epoch_time_s: float,
        speedup: Callable[[int], float],
        startup_s: float,
        curve: Callable[[dict[str, Any], int], float],
    ) -> None:
        self.num_slots = num_slots
        self.clock = clock
        self.epoch_time_s = epoch_time_s
        self.speedup = speedup
        self.startup_s = startup_s
        self.curve = curve
        self.launches: list[SimulatedJob] = []
        self._busy = 0

    def launch(self, spec: JobSpec) -> SimulatedJob:
        if spec.profile_steps is not None:
            raise ValueError("the simulated backend takes its profile as given; it runs no probes")
        if self._busy + spec.world_size > self.num_slots:
            raise RuntimeError(f"over-asked slots: {self._busy} busy + W={spec.world_size} > {self.num_slots}")
        config = json.loads((spec.trial_dir / "config.json").read_text())
        rows = read_metrics(spec.trial_dir / "metrics.jsonl")
        job = SimulatedJob(spec, self.clock.now(), rows[-1]["epoch"] if rows else 0, config["configuration"])
        self._busy += spec.world_size
        self.launches.append(job)
        return job

    def _epoch_end_s(self, job: SimulatedJob, epoch: int) -> float:
        per_epoch = self.epoch_time_s / self.speedup(job.spec.world_size)
        return job.start_s + self.startup_s + (epoch - job.first_epoch) * per_epoch

    def _finish(self, job: SimulatedJob, last_epoch: int, end_s: float, stopped: bool) -> JobResult:
        per_epoch = self.epoch_time_s / self.speedup(job.spec.world_size)
        with open(job.spec.trial_dir / "metrics.jsonl", "a") as f:
            for epoch in range(job.first_epoch + 1, last_epoch + 1):
                val = self.curve(job.configuration, epoch)
                if not math.isfinite(val):
                    f.write(json.dumps({"epoch": epoch, "diverged": True, "train_loss": None, "val_accuracy": None}) + "\n")
                    break
                row = {"epoch": epoch, "world_size": job.spec.world_size, "val_accuracy": val, "epoch_time_s": per_epoch}
                if epoch == job.spec.until_epoch:
                    row["test_accuracy"] = val
                f.write(json.dumps(row) + "\n")
        self._busy -= job.spec.world_size
        job.result = JobResult(job.spec, 0, job.start_s, end_s, 0.0, stopped=stopped)
        return job.result

    def poll(self, handle: SimulatedJob) -> JobResult | None:
        if handle.result is not None:
            return handle.result
        end_s = self._epoch_end_s(handle, handle.spec.until_epoch)
        if self.clock.now() < end_s:
            return None
        return self._finish(handle, handle.spec.until_epoch, end_s, stopped=False)

    def stop(self, handle: SimulatedJob) -> JobResult:
        if handle.result is not None:
            return handle.result
        done = handle.first_epoch
        while done < handle.spec.until_epoch and self._epoch_end_s(handle, done + 1) <= self.clock.now():
            done += 1
        return self._finish(handle, done, self.clock.now(), stopped=True)
