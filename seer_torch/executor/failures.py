"""Why a trial's job failed, in one line, and whether relaunching it from its checkpoint can help.

Pure: the event loop reads what the job left (its exit, the epochs reported and saved, the
failing rank's stderr through :meth:`Backend.job_log`) and passes it in. The cases, as
docs/fault-tolerance.md ("When your script fails") tables them:

- hung (no heartbeat, metrics line or output for ``failures.hang_timeout_s``): killed, retried;
- a crash (non-zero exit): the failing rank's exception (or the signal that ended it), retried
  within ``failures.max_failures``, except an error the trial API raised because the script
  broke its contract (``seer_torch.errors.ConfigError``: an epoch reported out of order or
  beyond its target, the metric missing, a state ``weights_only`` cannot load) or
  ``CheckpointError`` (no usable checkpoint): a relaunch would fail the same way;
- a clean exit (code 0) short of the target: the script ended its own training early, or
  reported epochs without saving a checkpoint (the trial cannot resume, resize or go on).
  Never retried: a relaunch runs the same code to the same end, and one without a checkpoint
  would silently start the trial over;
- the metric never reported (:func:`seer_torch.executor.trials.missing_metric_error`): not
  retried either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from seer_torch.backends.base import JobLog
from seer_torch.runfiles import METRICS_LINE_KEYS

#: Exceptions that say the script broke the trial API's contract, or that its checkpoint is
#: unusable: the same script relaunched fails the same way, so they are never retried.
_DETERMINISTIC = re.compile(r"^(?:[\w.]*\.)?(?:ConfigError|CheckpointError)\b")


@dataclass(frozen=True)
class Failure:
    """How a job failed: ``reason``, one line for ``results.json``'s ``error`` and the live
    status; ``retry``: whether a relaunch from the checkpoint may succeed (it is retried while
    ``failures.max_failures`` allows); ``why_not``: when it is not retried, why, in words."""

    reason: str
    retry: bool
    why_not: str = ""


def hung_failure(hang_timeout_s: float) -> Failure:
    """A job killed after ``hang_timeout_s`` seconds without progress."""
    return Failure(
        f"no progress for {hang_timeout_s:g} s: killed as hung (no heartbeat, metrics line or output; "
        "call t.heartbeat() in long work of your own)",
        retry=True,
    )


def missing_metric_failure(message: str) -> Failure:
    """A job whose metrics lines lack the experiment's metric (``message`` names it)."""
    return Failure(message, retry=False, why_not="every relaunch would report the same names")


def clean_exit_failure(*, before_epoch: int, durable_epoch: int, reported_epoch: int,
                       until_epoch: int) -> Failure:
    """A job that exited with code 0 short of ``until_epoch``: it started at ``before_epoch``
    (the checkpoint it resumed), reported up to ``reported_epoch`` and its checkpoint holds
    ``durable_epoch``."""
    if reported_epoch > durable_epoch:
        return Failure(
            f"the script exited (code 0) after reporting epoch {reported_epoch} without saving a "
            f"checkpoint for it (the last saved: epoch {durable_epoch}): the trial cannot be resumed, "
            "resized or trained further; give t.epochs() a checkpoint function (or call t.save())",
            retry=False,
            why_not="a relaunch would start the trial over and save nothing again",
        )
    if durable_epoch <= before_epoch:
        return Failure(
            f"the script exited (code 0) without training: no epoch reported after epoch {before_epoch}, "
            f"its target was epoch {until_epoch}",
            retry=False,
            why_not="a relaunch would run the same code to the same end",
        )
    return Failure(
        f"the script exited (code 0) after epoch {durable_epoch}, short of its target epoch {until_epoch}",
        retry=False,
        why_not="a relaunch would run the same code to the same end",
    )


def crash_failure(error_text: str, log: JobLog, world_size: int) -> Failure:
    """A job that exited with a non-zero code: ``error_text`` is the worker's own error line
    (:func:`seer_torch.backends.base.job_error_text`: torchrun's error file, else the failing
    rank's exception on stderr, else the exit code); at ``W > 1`` the failing rank is named."""
    reason = error_text
    if world_size > 1 and log.rank is not None and log.exception and error_text == log.exception:
        reason = f"rank {log.rank}: {error_text}"
    if _DETERMINISTIC.match(error_text):
        return Failure(reason, retry=False, why_not="the trial API refused what the script did; a relaunch "
                       "would do the same")
    return Failure(reason, retry=True)


#: Keys of a metrics line that are the trial's bookkeeping, not metrics it reported.
_BOOKKEEPING = METRICS_LINE_KEYS | {"lr"}  # the built-in worker's per-epoch learning rate


def diverged_reason(row: dict[str, Any]) -> str:
    """Why a trial diverged, from its ``diverged`` metrics line: the built-in worker's names the
    training loss (``diverged_loss``); the trial API's writes the metrics that were NaN or
    infinite as ``null``."""
    epoch = row.get("epoch")
    if row.get("diverged_loss") is not None:
        return f"training loss became {row['diverged_loss']} in epoch {epoch} (NaN or infinite)"
    bad = sorted(k for k, v in row.items() if v is None and k not in _BOOKKEEPING)
    if bad:
        return f"epoch {epoch} reported {', '.join(bad)} NaN or infinite: the trial diverged"
    return "training loss became NaN or infinite"
