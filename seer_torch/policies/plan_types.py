"""The SEER planner's records: its inputs, a round of a plan and a plan. Pure data.

:class:`PlannerInputs` is derived from the policies' one context record,
:class:`~seer_torch.policies.base.PolicyContext`, by :func:`planner_inputs_from_context`, with
one explicit field map (:data:`CONTEXT_TO_PLANNER`): every context field names the planner
fields it becomes or says why the planner does not read it, so nothing is dropped silently.
Times in seconds, money in USD. The planner itself is :mod:`seer_torch.policies.seer`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from seer_torch.errors import ConfigError
from seer_torch.policies.base import PolicyContext
from seer_torch.policies.costs import Overheads
from seer_torch.scaling.model import ScalingModel

__all__ = [
    "BINDING_VALUES", "CONTEXT_TO_PLANNER", "DEFAULT_ETA", "ETA_CHOICES", "FINALIST_CHOICES", "Plan",
    "PlannerInputs", "RoundPlan", "planner_inputs_from_context",
]

BINDING_VALUES = ("time", "money", "max_configurations", "none")

#: Reduction factors searched when ``PlannerInputs.eta`` is ``None``, in order of preference on
#: an exact tie (see the module notes for why these three).
ETA_CHOICES: tuple[int, ...] = (3, 2, 4)

#: Numbers of finalists searched when ``PlannerInputs.num_finalists`` is ``None``.
FINALIST_CHOICES: tuple[int, ...] = (2, 1)

#: The eta whose square is the default min_configurations when eta is chosen by the planner.
DEFAULT_ETA = 3



def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


@dataclass(frozen=True)
class PlannerInputs:
    """Everything the planner needs; all times in seconds, money in USD.

    Args:
        max_epochs: epochs of a fully trained configuration (the last rung), ``>= 1``.
        min_epochs: the smallest first rung, ``1 <= min_epochs <= max_epochs``; ``None``: the
            planner chooses the first rung among every schedule (as with ``1``).
        eta: reduction factor between rungs, ``>= 2``; ``None``: the planner chooses it from
            :data:`ETA_CHOICES` (the choice is ``Plan.eta``).
        max_configurations: cap on ``n_1`` (how many configurations the search space yields).
        num_slots: worker places in the cluster (GPUs; CPU processes locally), ``>= 1``.
        world_size_ladder: allowed world sizes, e.g. ``(1, 2, 4, 8)``; those above
            ``num_slots`` or ``max_world_size`` are dropped by the planner.
        epoch_time_s: ``tau``, one epoch (training + validation) on one worker, ``> 0``.
        scaling: the speedup model ``s(W)``.
        startup_s: overhead of a trial's first launch, before its first step, ``>= 0``.
        relaunch_s: overhead of relaunching a trial at the next rung with the same ``W`` (new
            processes).
        resize_s: overhead of relaunching a trial at a different ``W``.
        time_budget_s: wall-clock time left, ``>= 0`` (``inf`` allowed).
        money_budget_usd: money left, ``>= 0`` (``inf`` allowed).
        price_usd_per_slot_hour: price of one slot for one hour, ``>= 0``.
        safety_fraction: plan against this fraction of each budget, ``0 < f <= 1``.
        min_configurations: configurations below which the plan explores first (or, when
            even that does not fit, warns of starved exploration); default ``eta**2`` (``9``
            when ``eta`` is ``None``) capped by ``max_configurations``.
        num_finalists: trials carried to the last rung when there are that many, ``>= 1``
            (default 1); ``None``: the planner chooses 2 or 1 (:data:`FINALIST_CHOICES`, module
            notes; the choice is ``Plan.num_finalists``).
        max_world_size: the most workers one trial may get, ``>= 1``; ``None``: no cap beyond
            ``num_slots``.
        billing_granularity_s: billing increment in seconds, ``>= 0`` (0: exact); each job's
            held time is rounded up to a multiple of it.
        billing_minimum_s: the least billed per job (per rental), seconds, ``>= 0``.
        wave_epoch_time_s: one epoch on one worker of the *slowest* trial, for wall clock
            only (``> 0``): trials of a round run side by side and the round ends when its
            slowest job does, so its duration follows the slowest trial while its cost
            follows each trial's own time, whose mean is ``epoch_time_s``. ``None``: the same
            as ``epoch_time_s`` (a fresh plan knows no spread; re-plans measure it).
        continue_s: overhead of a kept-alive job handed its trial's next rung at the same
            ``W``, ``>= 0``; ``None``: jobs exit at every rung (a continuation relaunches).
        warm_start_s: overhead of a ``W = 1`` job on another trial's warm worker, ``>= 0``;
            ``None``: no warm workers. Which job pays which overhead:
            :func:`~seer_torch.policies.costs.wave_overheads_s`.
        machine_start_s: one machine's start on a cluster that rents them, seconds, ``>= 0``;
            a round whose busy slots exceed the previous round's waits
            :func:`~seer_torch.policies.costs.machine_wait_s` (wall clock only). ``None`` or 0:
            no waiting (every prediction exactly as without machines).
        previous_round_s: a re-plan's: how long the round before the first one planned ran,
            seconds, ``>= 0`` (the first round's machines were asked for when it started);
            ``None`` (a fresh plan): no round before, the first round waits the whole
            ``machine_start_s``.

    Raises:
        ConfigError: any field out of its range (the message names field, value and range).
    """

    max_epochs: int
    min_epochs: int | None
    eta: int | None
    max_configurations: int
    num_slots: int
    world_size_ladder: tuple[int, ...]
    epoch_time_s: float
    scaling: ScalingModel
    startup_s: float
    relaunch_s: float
    resize_s: float
    time_budget_s: float
    money_budget_usd: float
    price_usd_per_slot_hour: float
    safety_fraction: float = 0.9
    min_configurations: int | None = None
    num_finalists: int | None = 1
    max_world_size: int | None = None
    billing_granularity_s: float = 0.0
    billing_minimum_s: float = 0.0
    wave_epoch_time_s: float | None = None
    continue_s: float | None = None
    warm_start_s: float | None = None
    machine_start_s: float | None = None
    previous_round_s: float | None = None

    def __post_init__(self) -> None:
        for name, minimum, optional in (
            ("max_epochs", 1, False),
            ("min_epochs", 1, True),
            ("eta", 2, True),
            ("max_configurations", 1, False),
            ("num_slots", 1, False),
            ("num_finalists", 1, True),
            ("max_world_size", 1, True),
        ):
            value = getattr(self, name)
            if optional and value is None:
                continue
            if not is_int(value) or value < minimum:
                what = f"an integer >= {minimum}"
                raise ConfigError(name, value, what + (", or None (the planner chooses)" if optional else ""))
        if self.min_epochs is not None and self.min_epochs > self.max_epochs:
            raise ConfigError(
                "min_epochs", self.min_epochs, f"an integer <= max_epochs ({self.max_epochs}), or None"
            )
        ladder = tuple(self.world_size_ladder)
        if not ladder or any(not is_int(w) or w < 1 for w in ladder):
            raise ConfigError("world_size_ladder", list(ladder), "a non-empty list of integers >= 1")
        object.__setattr__(self, "world_size_ladder", ladder)
        if not callable(getattr(self.scaling, "speedup_at", None)):
            raise ConfigError("scaling", self.scaling, "a ScalingModel (anything with speedup_at(W))")
        value = self.epoch_time_s
        if not is_number(value) or not math.isfinite(value) or value <= 0:
            raise ConfigError("epoch_time_s", value, "a finite number of seconds > 0")
        value = self.wave_epoch_time_s
        if value is not None and (not is_number(value) or not math.isfinite(value) or value <= 0):
            raise ConfigError("wave_epoch_time_s", value, "a finite number of seconds > 0, or None")
        for name in (
            "startup_s", "relaunch_s", "resize_s", "price_usd_per_slot_hour",
            "billing_granularity_s", "billing_minimum_s",
        ):
            value = getattr(self, name)
            if not is_number(value) or not math.isfinite(value) or value < 0:
                raise ConfigError(name, value, "a finite number >= 0")
        for name in ("continue_s", "warm_start_s", "machine_start_s", "previous_round_s"):
            value = getattr(self, name)
            if value is not None and (not is_number(value) or not math.isfinite(value) or value < 0):
                raise ConfigError(name, value, "a finite number of seconds >= 0, or None")
        for name in ("time_budget_s", "money_budget_usd"):
            value = getattr(self, name)
            if not is_number(value) or value < 0:
                raise ConfigError(name, value, "a number >= 0 (inf for no limit)")
        value = self.safety_fraction
        if not is_number(value) or not 0 < value <= 1:
            raise ConfigError("safety_fraction", value, "a number in (0, 1]")
        value = self.min_configurations
        if value is not None and (not is_int(value) or value < 1):
            raise ConfigError("min_configurations", value, "an integer >= 1, or None for eta**2")

    @property
    def overheads(self) -> Overheads:
        """The job overheads of the cost model, seconds."""
        return Overheads(self.startup_s, self.relaunch_s, self.resize_s, self.continue_s, self.warm_start_s)

    @property
    def usable_world_sizes(self) -> tuple[int, ...]:
        """The ladder's distinct world sizes ``<= num_slots`` and ``<= max_world_size``,
        ascending (may be empty)."""
        cap = self.num_slots if self.max_world_size is None else min(self.num_slots, self.max_world_size)
        return tuple(sorted({w for w in self.world_size_ladder if w <= cap}))

    @property
    def eta_choices(self) -> tuple[int, ...]:
        """``(eta,)``, or :data:`ETA_CHOICES` when ``eta`` is ``None``."""
        return ETA_CHOICES if self.eta is None else (self.eta,)

    @property
    def finalist_choices(self) -> tuple[int, ...]:
        """``(num_finalists,)``, or :data:`FINALIST_CHOICES` when it is ``None``."""
        return FINALIST_CHOICES if self.num_finalists is None else (self.num_finalists,)

    @property
    def effective_min_configurations(self) -> int:
        """``min_configurations``, or ``eta**2`` (``3**2`` when ``eta`` is ``None``), capped by
        ``max_configurations``."""
        eta = DEFAULT_ETA if self.eta is None else self.eta
        wanted = eta**2 if self.min_configurations is None else self.min_configurations
        return min(wanted, self.max_configurations)

    @property
    def time_limit_s(self) -> float:
        """``safety_fraction * time_budget_s``: the time a plan may predict."""
        return self.safety_fraction * self.time_budget_s

    @property
    def money_limit_usd(self) -> float:
        """``safety_fraction * money_budget_usd``: the cost a plan may predict."""
        return self.safety_fraction * self.money_budget_usd


@dataclass(frozen=True)
class RoundPlan:
    """One round of a plan.

    Attributes:
        index: the round's number, 1-based (``k``).
        rung_epoch: ``r_k``, the epoch every trial of the round reaches.
        start_epoch: ``r_{k-1}``, the epoch its trials start from (0 in the first round).
        num_trials: ``n_k``.
        world_size: ``W_k``, workers of each trial.
        waves: ``ceil(n_k / (num_slots // W_k))``, batches of trials run one after another.
        predicted_duration_s: ``D_k = waves * J_k``, wall clock of the round, plus its wait for
            machines on a cluster that rents them
            (:func:`~seer_torch.policies.costs.machine_wait_s`).
        predicted_cost_usd: ``C_k = price / 3600 * n_k * W_k * billed(J_k)``.
    """

    index: int
    rung_epoch: int
    start_epoch: int
    num_trials: int
    world_size: int
    waves: int
    predicted_duration_s: float
    predicted_cost_usd: float

    @property
    def job_duration_s(self) -> float:
        """``J_k``: predicted seconds of one trial's job in this round, overhead included (a
        wait for machines spread over the waves: an upper bound for a job of a later wave)."""
        return self.predicted_duration_s / self.waves


@dataclass(frozen=True)
class Plan:
    """The planner's answer.

    Attributes:
        rounds: the rounds in order (empty when nothing fits).
        num_configurations: ``n_1`` (0 when nothing fits).
        eta: the reduction factor used (chosen by the planner when ``PlannerInputs.eta`` is
            ``None``; a re-plan or an empty plan echoes the inputs, ``0`` for ``None``).
        target_epochs: the last rung planned (``max_epochs`` when feasible; 0 with no rounds).
        feasible: True when the final survivor reaches ``max_epochs`` within both budgets
            (for :func:`replan`: when every remaining round fits).
        predicted_time_s: sum of the rounds' durations.
        predicted_cost_usd: sum of the rounds' costs.
        binding: the constraint that stopped more configurations (or, for a best-effort plan,
            more epochs): ``"time"``, ``"money"``, ``"max_configurations"`` or ``"none"``.
        message: one line for the user; starts with ``"BEST EFFORT"``, ``"EXPLORATION FIRST"``
            or ``"NO PLAN"`` when the plan is not feasible.
        num_finalists: the ``num_finalists`` of the survivor counts: ``survivors ==
            survivor_counts(num_configurations, len(rounds), eta, num_finalists)`` (chosen by
            the planner when ``PlannerInputs.num_finalists`` is ``None``; a re-plan or an empty
            plan echoes the inputs, ``0`` for ``None``).
    """

    rounds: tuple[RoundPlan, ...]
    num_configurations: int
    eta: int
    target_epochs: int
    feasible: bool
    predicted_time_s: float
    predicted_cost_usd: float
    binding: str
    message: str
    num_finalists: int = 1

    @property
    def rungs(self) -> tuple[int, ...]:
        """``(r_1, ..., r_K)``."""
        return tuple(r.rung_epoch for r in self.rounds)

    @property
    def world_sizes(self) -> tuple[int, ...]:
        """``(W_1, ..., W_K)``."""
        return tuple(r.world_size for r in self.rounds)

    @property
    def survivors(self) -> tuple[int, ...]:
        """``(n_1, ..., n_K)``."""
        return tuple(r.num_trials for r in self.rounds)

    def to_dict(self) -> dict[str, object]:
        """The plan as JSON-able plain data (the ``plan`` entry of ``results.json``)."""
        return {
            "rounds": [asdict(r) for r in self.rounds],
            "num_configurations": self.num_configurations,
            "eta": self.eta,
            "num_finalists": self.num_finalists,
            "target_epochs": self.target_epochs,
            "feasible": self.feasible,
            "predicted_time_s": self.predicted_time_s,
            "predicted_cost_usd": self.predicted_cost_usd,
            "binding": self.binding,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Plan:
        """Inverse of :meth:`to_dict` (for a journal read back on resume); a dict written
        before ``num_finalists`` existed reads as 1 finalist."""
        rounds = tuple(RoundPlan(**dict(r)) for r in data["rounds"])  # type: ignore[union-attr]
        return cls(
            rounds=rounds,
            num_configurations=int(data["num_configurations"]),  # type: ignore[arg-type]
            eta=int(data["eta"]),  # type: ignore[arg-type]
            target_epochs=int(data["target_epochs"]),  # type: ignore[arg-type]
            feasible=bool(data["feasible"]),
            predicted_time_s=float(data["predicted_time_s"]),  # type: ignore[arg-type]
            predicted_cost_usd=float(data["predicted_cost_usd"]),  # type: ignore[arg-type]
            binding=str(data["binding"]),
            message=str(data["message"]),
            num_finalists=int(data.get("num_finalists", 1)),  # type: ignore[arg-type]
        )


#: How each :class:`~seer_torch.policies.base.PolicyContext` field reaches the planner: the
#: :class:`PlannerInputs` fields it becomes, or ``()`` with the reason the planner does not read
#: it. ``wave_epoch_time_s`` has no context field: a re-plan measures it, and SEER's first plan
#: derives it from ``draw_epoch_times_s`` (:meth:`~seer_torch.policies.seer_policy.SeerPolicy.first_plan`).
CONTEXT_TO_PLANNER: dict[str, tuple[str, ...]] = {
    "max_epochs": ("max_epochs",),
    "min_epochs": ("min_epochs",),
    "eta": ("eta",),
    "max_configurations": ("max_configurations",),
    "num_slots": ("num_slots",),
    "world_size_ladder": ("world_size_ladder",),
    "max_world_size": ("max_world_size",),
    "epoch_time_s": ("epoch_time_s",),
    "scaling": ("scaling",),
    "startup_s": ("startup_s",),
    "relaunch_s": ("relaunch_s",),
    "resize_s": ("resize_s",),
    "time_budget_s": ("time_budget_s",),
    "money_budget_usd": ("money_budget_usd",),
    "billing": ("price_usd_per_slot_hour", "billing_granularity_s", "billing_minimum_s"),
    "safety_fraction": ("safety_fraction",),
    "num_finalists": ("num_finalists",),
    "min_configurations": ("min_configurations",),
    "seed": (),  # the planner is deterministic and draws nothing
    "oracle_index": (),  # the oracle policy's alone
    "draw_epoch_times_s": (),  # SeerPolicy.first_plan turns it into wave_epoch_time_s
    "continue_s": ("continue_s",),
    "warm_start_s": ("warm_start_s",),
    "retarget_in_place": (),  # SeerPolicy's re-plans: RungReplan.schedule_epochs
    "machine_start_s": ("machine_start_s",),
}

#: :class:`PlannerInputs` fields no context field gives (measured on the run, or set by SEER).
PLANNER_ONLY_FIELDS: tuple[str, ...] = ("wave_epoch_time_s", "previous_round_s")


def planner_inputs_from_context(
    ctx: PolicyContext,
    *,
    time_left_s: float | None = None,
    money_left_usd: float | None = None,
    epoch_time_s: float | None = None,
    overhead_s: float | None = None,
    continue_overhead_s: float | None = None,
    warm_start_overhead_s: float | None = None,
    **overrides: Any,
) -> PlannerInputs:
    """The planner's inputs from a policy context (:data:`CONTEXT_TO_PLANNER`). Pure.

    Args:
        ctx: the policy context.
        time_left_s: the deadline left, seconds (default: the context's budget); below 0 is 0.
        money_left_usd: the money left, USD (default: the context's budget); below 0 is 0.
        epoch_time_s: a measured epoch on one worker, seconds (default: the context's).
        overhead_s: a measured overhead of jobs that start processes, seconds: both
            ``relaunch_s`` and ``resize_s`` (default: the context's).
        continue_overhead_s: a measured overhead of kept-alive jobs handed their trial's next
            target (``Snapshot.continue_overhead_s``), seconds: ``continue_s`` where the context
            has it (a context without kept-alive jobs keeps its ``None``); default: the
            context's.
        warm_start_overhead_s: a measured overhead of ``W = 1`` jobs on warm workers
            (``Snapshot.warm_start_overhead_s``), seconds: ``warm_start_s`` where the context
            has warm workers; default: the context's.
        overrides: :class:`PlannerInputs` fields to set (e.g. ``eta`` a plan chose).

    Raises:
        TypeError: an override that is not a :class:`PlannerInputs` field.
        ConfigError: a value out of the planner's range (:class:`PlannerInputs`).
    """
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(PlannerInputs)})
    if unknown:
        raise TypeError(f"planner_inputs_from_context: not PlannerInputs fields: {', '.join(unknown)}")
    values: dict[str, Any] = dict(
        max_epochs=ctx.max_epochs,
        min_epochs=ctx.min_epochs,
        eta=ctx.eta,
        max_configurations=ctx.max_configurations,
        num_slots=ctx.num_slots,
        world_size_ladder=ctx.world_size_ladder,
        epoch_time_s=epoch_time_s if epoch_time_s is not None else ctx.epoch_time_s,
        scaling=ctx.scaling,
        startup_s=ctx.startup_s,
        relaunch_s=overhead_s if overhead_s is not None else ctx.relaunch_s,
        resize_s=overhead_s if overhead_s is not None else ctx.resize_s,
        time_budget_s=max(0.0, ctx.time_budget_s if time_left_s is None else time_left_s),
        money_budget_usd=max(0.0, ctx.money_budget_usd if money_left_usd is None else money_left_usd),
        price_usd_per_slot_hour=ctx.billing.price_usd_per_slot_hour,
        safety_fraction=ctx.safety_fraction,
        max_world_size=ctx.max_world_size,
        billing_granularity_s=ctx.billing.granularity_s,
        billing_minimum_s=ctx.billing.minimum_s,
        num_finalists=ctx.num_finalists,
        min_configurations=ctx.min_configurations,
        continue_s=_measured(ctx.continue_s, continue_overhead_s),
        warm_start_s=_measured(ctx.warm_start_s, warm_start_overhead_s),
        machine_start_s=ctx.machine_start_s,
    )
    values.update(overrides)
    return PlannerInputs(**values)


def _measured(planned_s: float | None, measured_s: float | None) -> float | None:
    """A kept-alive job's overhead (a continuation's, a warm start's): the measured one where
    the context has the ability (``planned_s`` not ``None``), else the context's."""
    return planned_s if planned_s is None or measured_s is None else measured_s


# -- words for plan messages ---------------------------------------------------------------------


def budget_words(inputs: PlannerInputs, binding: str) -> str:
    if binding == "time":
        return f"the deadline ({inputs.time_budget_s:.1f} s)"
    if binding == "money":
        return f"the money budget ({inputs.money_budget_usd:g} USD)"
    return "the budgets"


def summary_words(inputs: PlannerInputs, time_s: float, cost_usd: float) -> str:
    return (
        f"predicted {time_s:.1f} s of {inputs.time_limit_s:.1f} s and {cost_usd:.4g} USD of "
        f"{inputs.money_limit_usd:.4g} USD (safety fraction {inputs.safety_fraction:g})"
    )


def shape_words(rungs: Sequence[int], counts: Sequence[int], world_sizes: Sequence[int]) -> str:
    return "rungs " + ",".join(map(str, rungs)) + "; trials " + ",".join(map(str, counts)) + (
        "; W " + ",".join(map(str, world_sizes))
    )
