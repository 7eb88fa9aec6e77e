"""The backend interface: where a trial's job runs.

One interface for every backend (local torchrun subprocesses today; a simulated one and a
multi-node one on an existing engine later), so the executor and the policies are the same
objects whatever runs the jobs.

Contract:
- ``launch`` starts a job that trains one trial from its checkpoint (if any) until
  ``until_epoch`` at ``world_size`` workers, and returns at once. The caller guarantees that
  the slots are free; a backend never starts more workers than ``num_slots`` in total.
- ``poll`` returns ``None`` while the job runs and a :class:`JobResult` once it ended; it
  may be called again after that and returns the same result (idempotent).
- ``stop`` ends the job and every process it started (TERM, then KILL), waits for that,
  and returns its result with ``stopped=True``. The trial's checkpoint is kept.
- Jobs talk back through files in the trial directory (``metrics.jsonl``, the checkpoint,
  torchrun's error file), never through stdout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


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

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def slot_seconds(self) -> float:
        return self.duration_s * self.spec.world_size


class JobHandle(Protocol):
    spec: JobSpec
    start_s: float


class Backend(Protocol):
    """What the executor drives. Optional: ``max_stop_s`` (the longest a :meth:`stop` can
    hold a job's slots, seconds: the money check bills running jobs that far ahead),
    ``stop_many(handles)`` (stop several jobs at once), ``stop_all()``."""

    num_slots: int

    def launch(self, spec: JobSpec) -> JobHandle: ...

    def poll(self, handle: JobHandle) -> JobResult | None: ...

    def stop(self, handle: JobHandle) -> JobResult: ...

    def read_metrics(self, spec: JobSpec) -> list[dict[str, Any]]:
        """The trial's complete ``metrics.jsonl`` lines (one dict per epoch), oldest first, of
        the epochs a relaunch would not train again (its durable checkpoint's; the simulated
        backend keeps every epoch a job completed), and a last ``diverged`` line if any."""
        ...


def job_error_text(res: JobResult) -> str:
    """One line saying why a job failed: the worker's own error from torchrun's error file
    (``TRIAL_DIR/error.json``) when there is one, else the exit code and where the log is."""
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
    return f"torchrun exited with {res.returncode}; see {trial_dir / 'stderr.log'}"
