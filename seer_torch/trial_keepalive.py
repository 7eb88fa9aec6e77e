"""A kept-alive job between two segments: parked at its target, then continued, stopped or
switched to another trial (docs/design.md, "Launch cost").

:meth:`seer_torch.trial.Trial.epochs` parks through :func:`park` once the launch's last epoch
is saved; the order it gets back says what happens next. A ``"switch"`` order (a warm worker,
``W = 1``, of the built-in worker) becomes a :class:`NextTrial`, which :func:`take_up` turns
this process into the job of. The file protocol (``parked.json``, ``control.json``, the
generation) is :mod:`seer_torch.runfiles`'s.

Imports nothing from seer_torch but :mod:`seer_torch.runfiles` (below :mod:`seer_torch.trial`,
which re-exports :class:`NextTrial` and :func:`take_up`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seer_torch import wakeup
from seer_torch.runfiles import (
    CONTROL_FILE,
    GENERATION_ENV,
    PARK_TIMEOUT_ENV,
    PARK_TIMEOUT_S,
    PARKED_FILE,
    TRIAL_DIR_ENV,
    TUNER_PID_ENV,
    UNTIL_EPOCH_ENV,
    atomic_write_json,
    read_json_or_none,
)

__all__ = ["NextTrial", "park", "take_up"]

#: How often a parked job looks whether its tuner is alive and offers to touch the heartbeat, seconds.
_CHECK_S = 1.0
#: How often a parked job reads the control file, seconds.
_POLL_S = 0.01


def park(trial_dir: Path, generation: int, epoch: int, *, is_main: bool,
         heartbeat: Callable[[], None]) -> tuple[dict[str, Any], int]:
    """Wait, alive, for the tuner's next order (:data:`~seer_torch.runfiles.CONTROL_FILE` of a
    newer generation than ``generation``).

    Rank 0 (``is_main``) first says it waits: :data:`~seer_torch.runfiles.PARKED_FILE`
    ``{"generation", "epoch", "unix_s"}``, ``epoch`` being the saved epoch it parks at, and
    wakes the tuner (:func:`seer_torch.wakeup.notify`). Every
    rank reads the order itself (no collective runs while a job waits, so no timeout can fire).
    About once a second it checks that the tuner (``$SEER_TUNER_PID``) is alive and, on rank 0,
    calls ``heartbeat`` (the caller's: it touches the heartbeat file when that is stale).

    Returns:
        ``(order, generation)``: the order and its generation; ``({"action": "stop"},
        generation)`` unchanged when the tuner is gone or the wait passed
        ``$SEER_PARK_TIMEOUT_S`` (default :data:`~seer_torch.runfiles.PARK_TIMEOUT_S` seconds).
    """
    if is_main:
        atomic_write_json(trial_dir / PARKED_FILE,
                          {"generation": generation, "epoch": epoch, "unix_s": time.time()})
        wakeup.notify()  # the tuner's wait between polls ends now (seer_torch.wakeup)
    timeout_s = float(os.environ.get(PARK_TIMEOUT_ENV) or PARK_TIMEOUT_S)
    tuner_pid = int(os.environ.get(TUNER_PID_ENV) or 0)
    start_s = last_check_s = time.monotonic()
    while True:
        order = read_json_or_none(trial_dir / CONTROL_FILE)
        if isinstance(order, dict) and int(order.get("generation", -1)) > generation:
            return order, int(order["generation"])
        now_s = time.monotonic()
        if now_s - start_s > timeout_s:
            return {"action": "stop"}, generation
        if now_s - last_check_s > _CHECK_S:
            last_check_s = now_s
            if tuner_pid and not _process_alive(tuner_pid):
                return {"action": "stop"}, generation
            if is_main:
                heartbeat()
        time.sleep(_POLL_S)


@dataclass(frozen=True)
class NextTrial:
    """Another trial a parked warm worker was handed (the backend's ``"switch"`` order): its
    folder, the epoch to train through, this job's generation, the environment variables to
    set (``SEER_TRIAL_DIR``, ``SEER_UNTIL_EPOCH``, the error file, ...) and the log files to
    append stdout and stderr to. :func:`take_up` makes the process the new trial's job."""

    trial_dir: str
    until_epoch: int
    generation: int
    env: Mapping[str, str]
    stdout: str | None = None
    stderr: str | None = None

    @classmethod
    def from_order(cls, order: Mapping[str, Any]) -> NextTrial:
        return cls(str(order["trial_dir"]), int(order["until_epoch"]), int(order["generation"]),
                   {str(k): str(v) for k, v in dict(order.get("env") or {}).items()},
                   order.get("stdout"), order.get("stderr"))


def take_up(next_trial: NextTrial) -> None:
    """Make this process the job of ``next_trial`` (a warm worker, ``W = 1``, after its trial's
    :class:`~seer_torch.trial.Trial` finished): set its environment variables (the next
    :func:`seer_torch.trial.init` reads the new trial folder, target and generation from them)
    and append stdout and stderr to its log files, so that what it prints and the traceback of
    a failure land in the new trial's folder."""
    os.environ.update(next_trial.env)
    os.environ[TRIAL_DIR_ENV] = next_trial.trial_dir
    os.environ[UNTIL_EPOCH_ENV] = str(next_trial.until_epoch)
    os.environ[GENERATION_ENV] = str(next_trial.generation)
    for path, stream in ((next_trial.stdout, sys.stdout), (next_trial.stderr, sys.stderr)):
        if path:
            stream.flush()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.dup2(fd, stream.fileno())
            os.close(fd)


def _process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
