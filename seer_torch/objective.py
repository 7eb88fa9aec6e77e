"""What a run optimizes: one metric the training script reports every epoch, and whether larger
or smaller is better. Pure (no torch, no I/O).

The experiment file names it at the top level, beside ``name`` and ``seed`` (Ray Tune's
``TuneConfig(metric=..., mode=...)``, Optuna's ``direction``)::

    metric = "val_loss"     # default "val_accuracy"
    mode = "min"            # "max" (default) or "min"

The direction is applied in one place, the way Ray Tune's schedulers flip the sign at their
boundary: the executor turns each reported value into a higher-is-better **score**
(:meth:`Objective.score`: the value for ``max``, its negation for ``min``) when it builds the
views a policy sees, and every policy ranks by score alone. Everything a user reads
(``results.json``, the live status, TensorBoard, the simulator's tables) carries the metric's
own values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from seer_torch.errors import ConfigError
from seer_torch.runfiles import METRICS_LINE_KEYS

#: The metric a run optimizes when the experiment names none.
DEFAULT_METRIC = "val_accuracy"
#: ``max``: larger is better (accuracy); ``min``: smaller is better (loss, error).
MODES = ("max", "min")
#: What the built-in worker (:mod:`seer_torch.worker`) reports every epoch; an experiment
#: without a ``[trial] script`` may only optimize one of these.
BUILTIN_WORKER_METRICS = ("val_accuracy", "val_loss", "train_loss")
#: Names a metric may not take: the keys a trial's ``metrics.jsonl`` line carries besides its
#: metrics (the trial API's ``RESERVED_KEYS``), and the keys of a trial's record in
#: ``results.json`` and ``state.json``, beside which the metric's value is written under its name.
RESERVED_METRIC_NAMES = METRICS_LINE_KEYS | frozenset({
    "index", "config", "status", "epochs", "world_sizes", "error", "failures", "round_index",
    "schedule_epochs", "partial", "metric", "mode", "metric_by_epoch", "test_accuracy_by_epoch",
    "checkpoint", "checkpoint_epoch",
})


@dataclass(frozen=True)
class Objective:
    """The metric a run optimizes and its direction.

    Attributes:
        metric: the name the training script reports it under (``report(epoch, NAME=value)``).
        mode: ``"max"`` (larger is better) or ``"min"``.

    Raises:
        ConfigError: ``metric`` or ``mode`` is invalid (:func:`check_metric`, :func:`check_mode`).
    """

    metric: str = DEFAULT_METRIC
    mode: str = "max"

    def __post_init__(self) -> None:
        check_metric("metric", self.metric)
        check_mode("mode", self.mode)

    def score(self, value: float) -> float:
        """The higher-is-better score of ``value``: ``value`` for ``max``, ``-value`` for
        ``min``. The one place the direction is applied (NaN stays NaN)."""
        return value if self.mode == "max" else -value

    def best(self, values: Iterable[float]) -> float:
        """The best of ``values`` (finite ones only). Raises ``ValueError`` when none is finite."""
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            raise ValueError("no finite value")
        return max(finite) if self.mode == "max" else min(finite)

    def regret(self, value: float, best: float) -> float:
        """How much worse ``value`` is than ``best``, ``>= 0`` when ``best`` is the best:
        ``best - value`` for ``max``, ``value - best`` for ``min``."""
        return self.score(best) - self.score(value)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "mode": self.mode}


def check_metric(field: str, value: Any) -> str:
    """``value`` as a metric name: a non-empty string without white space or control
    characters, not one of :data:`RESERVED_METRIC_NAMES`.

    Raises:
        ConfigError: naming ``field``, the value and what is allowed.
    """
    if (
        not isinstance(value, str)
        or not value
        or not value.isprintable()
        or any(c.isspace() for c in value)
    ):
        raise ConfigError(field, value, "a metric name the training script reports: a non-empty string "
                          "without spaces (for example \"val_accuracy\" or \"val_loss\")")
    if value in RESERVED_METRIC_NAMES:
        raise ConfigError(field, value, "a metric name other than the record keys "
                          f"{', '.join(sorted(RESERVED_METRIC_NAMES))}")
    return value


def check_mode(field: str, value: Any) -> str:
    """``value`` as a mode: one of :data:`MODES`.

    Raises:
        ConfigError: naming ``field``, the value and what is allowed.
    """
    if value not in MODES:
        raise ConfigError(field, value, "\"max\" (larger is better) or \"min\" (smaller is better)")
    return value


def check_builtin_metric(field: str, metric: str) -> None:
    """An experiment without a ``[trial] script`` trains with the built-in worker, which reports
    only :data:`BUILTIN_WORKER_METRICS`.

    Raises:
        ConfigError: ``metric`` is not one of them.
    """
    if metric not in BUILTIN_WORKER_METRICS:
        raise ConfigError(field, metric, "a metric the built-in worker reports every epoch: "
                          f"{', '.join(BUILTIN_WORKER_METRICS)} (or a [trial] script that reports "
                          f"{metric!r})")
