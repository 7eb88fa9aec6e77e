"""The oracle: the best configuration (known to the simulator) trained alone in one job. Pure.

A yardstick, not a tuner: it shows what the budget buys when nothing is spent on search. Its
choice of ``W`` and best effort are in :mod:`seer_torch.policies.baselines`' notes.
"""

from __future__ import annotations

from typing import Any

from seer_torch.errors import ConfigError
from seer_torch.policies.base import Decision, Finish, Launch, PolicyContext, Snapshot, best_at_rungs
from seer_torch.policies.baseline_plans import (
    PolicyBase,
    largest_fitting,
    money_limit,
    no_plan_message,
    time_limit,
)
from seer_torch.policies.costs import job_time_s
from seer_torch.policies.engine import BAD_STATUSES

__all__ = ["OraclePolicy"]


class OraclePolicy(PolicyBase):
    """The best configuration (``context.oracle_index``) trained alone in one job.

    ``W`` = the smallest usable world size whose job to ``max_epochs`` (``startup_s + max_epochs
    * tau / s(W)``) fits both budgets' ``safety_fraction`` (the least cost, as ``W / s(W)`` does
    not decrease; cost with billing rounding); when none fits, the ``W`` whose job reaches the
    most epochs within them (ties: the smaller ``W``), launched to that many epochs (its
    learning-rate schedule spans them). When not even one epoch fits at any ``W``: no plan,
    nothing launched. Billed per job. Answer: the trial at its last reported epoch (never when
    diverged).
    """

    name = "oracle"

    def __init__(self) -> None:
        self._ctx: PolicyContext | None = None

    def setup(self, context: PolicyContext) -> None:
        idx = context.oracle_index
        if isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < context.max_configurations:
            raise ConfigError(
                "oracle_index",
                idx,
                f"the index (0..{context.max_configurations - 1}) of the best configuration, "
                "known to the simulator from its table",
            )
        self._ctx = context
        self._index = idx
        t_limit, m_limit = time_limit(context), money_limit(context)

        def job_s(w: int, epochs: int) -> float:
            return job_time_s(context.startup_s, epochs, context.epoch_time_s, context.scaling.speedup_at(w))

        def fits(w: int, epochs: int) -> bool:
            j = job_s(w, epochs)
            return j <= t_limit and context.billing.job_cost_usd(w, j) <= m_limit

        usable = context.usable_world_sizes
        chosen = next((w for w in usable if fits(w, context.max_epochs)), None)
        self._feasible = chosen is not None
        if chosen is not None:
            self._W, self._target = chosen, context.max_epochs
        else:
            reach = {w: largest_fitting(lambda e, w=w: fits(w, e), context.max_epochs) for w in usable}
            self._W = max(usable, key=lambda w: (reach[w], -w))
            self._target = reach[self._W]  # 0: not even one epoch fits (no plan)
        self._predicted_s = job_s(self._W, self._target) if self._target else 0.0
        self._predicted_usd = (
            context.billing.job_cost_usd(self._W, self._predicted_s) if self._target else 0.0
        )
        self._launched = False
        self._retried = False
        self._running = False
        self._finished = False
        self._finish_reason = ""
        self._launched_w: int | None = None

    @property
    def reserved_slots(self) -> int | None:
        self._require_setup()
        return None

    def _message(self) -> str:
        ctx = self._ctx
        assert ctx is not None
        if self._feasible:
            return (
                f"oracle: configuration {self._index} to {self._target} epochs at W={self._W} in one "
                f"job; predicted {self._predicted_s:.1f} s and {self._predicted_usd:.4g} USD."
            )
        if self._target == 0:
            return no_plan_message(self.name, ctx, f"configuration {self._index} alone, at any W")
        return (
            f"BEST EFFORT: oracle: no world size trains configuration {self._index} to "
            f"{ctx.max_epochs} epochs within the budgets; W={self._W} reaches {self._target}; "
            f"predicted {self._predicted_s:.1f} s and {self._predicted_usd:.4g} USD."
        )

    def decide(self, snapshot: Snapshot) -> list[Decision]:
        self._require_setup()
        if self._finished:
            return []
        if self._target == 0:
            return self._done(self._message())
        relaunch = False
        for event in snapshot.events:
            if event.index != self._index:
                continue
            self._running = False
            if event.outcome == "reached":
                return self._done("trained to its target")
            if event.outcome in BAD_STATUSES:
                return self._done(f"the oracle configuration {event.outcome}")
            if event.outcome == "stopped":
                if event.epochs >= self._target:
                    return self._done("trained to its target")
                if self._retried:
                    return self._done("stopped twice before its target")
                self._retried = relaunch = True
        if self._running or (self._launched and not relaunch):
            return []
        w = self._launched_w or self._W
        if snapshot.free_slots < w:
            fitting = [x for x in self._ctx.usable_world_sizes if x <= snapshot.free_slots]  # type: ignore[union-attr]
            if not fitting:
                return self._done(f"no free slots ({snapshot.free_slots}) for the oracle's job")
            w = fitting[-1]
        self._launched = self._running = True
        self._launched_w = w
        return [Launch(self._index, w, self._target, 1)]

    def _done(self, reason: str) -> list[Decision]:
        self._finished = True
        self._finish_reason = reason
        return [Finish(reason)]

    def answer(self, snapshot: Snapshot) -> tuple[str, int] | None:
        self._require_setup()
        mine = {tid: t for tid, t in snapshot.trials.items() if t.index == self._index}
        return best_at_rungs(mine, range(1, self._ctx.max_epochs + 1))  # type: ignore[union-attr]

    def report(self) -> dict[str, Any]:
        self._require_setup()
        ctx = self._ctx
        assert ctx is not None
        plan = {
            "message": self._message(),
            "num_configurations": 1 if self._target else 0,
            "world_size": self._W,
            "target_epochs": self._target,
            "rungs": [self._target] if self._target else [],
            "feasible": self._feasible,
            "predicted_time_s": self._predicted_s,
            "predicted_cost_usd": self._predicted_usd,
            "time_limit_s": ctx.safety_fraction * ctx.time_budget_s,
            "money_limit_usd": ctx.safety_fraction * ctx.money_budget_usd,
        }
        rounds = []
        if self._launched:
            rounds.append(
                {
                    "index": 1,
                    "rung_epoch": self._target,
                    "num_trials": 1,
                    "world_size": self._launched_w,
                    "predicted_duration_s": self._predicted_s,
                    "predicted_cost_usd": self._predicted_usd,
                    "completed": self._finished,
                }
            )
        return {
            "policy": self.name,
            "oracle_index": self._index,
            "reserved_slots": None,
            "plan": plan,
            "rounds": rounds,
            "finish_reason": self._finish_reason,
        }
