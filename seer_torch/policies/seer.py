"""The SEER planner: how many configurations, which rungs, and how many workers per round.

Implementation notes
--------------------
SEER (Sequential Elimination with Elastic Resources, ACM SoCC 2021) is successive halving whose
rounds may each use a different data-parallel world size ``W``. The full text of the paper is
not available to us; what follows is our reading of its idea (see DESIGN.md, "The SEER
planner"), and the details are ours.

Round structure. A plan has ``K`` rounds with integer rungs ``r_1 < ... < r_K``, the suffix of
:func:`~seer_torch.policies.rungs.rung_schedule` (Hyperband's brackets, anchored so that
``r_K`` is the target, normally ``max_epochs``). Round ``k`` trains ``n_k`` trials from epoch
``r_{k-1}`` to ``r_k`` (``r_0 = 0``), each with ``W_k`` workers; at its rung the best ``1/eta``
survive (:func:`~seer_torch.policies.rungs.survivor_counts`: never fewer than
``num_finalists``, never 0). ``W_1 <= W_2 <= ... <= W_K``: wide rounds come last, where few
trials are left.

Cost model (closed form, ours; the paper's includes the same ingredients). With ``tau`` = one
epoch (training + validation) on one worker, ``s(W)`` from the
:class:`~seer_torch.scaling.model.ScalingModel` and ``d_k = r_k - r_{k-1}``:

- one trial's job in round ``k``: ``J_k = overhead_k + d_k * tau / s(W_k)`` seconds, where
  ``overhead_k`` is ``startup_s`` in the first round, ``relaunch_s`` when ``W_k == W_{k-1}``
  and ``resize_s`` otherwise (today every rung relaunches the job);
- ``num_slots // W_k`` trials run at once, so the round takes ``waves_k = ceil(n_k /
  (num_slots // W_k))`` waves and ``D_k = waves_k * J_k`` seconds of wall clock (waves are
  synchronous: the round ends when its last trial reaches the rung);
- only held slots are billed: ``C_k = price_usd_per_slot_hour / 3600 * n_k * W_k * J_k``.

Totals are ``sum D_k`` and ``sum C_k``. A plan is *within budget* when the total time is
``<= safety_fraction * time_budget_s`` and the total cost ``<= safety_fraction *
money_budget_usd``. Since ``W / s(W) >= 1``, widening a round buys wall clock at a money price
proportional to ``n_k``; it is cheapest in late rounds, so the planner explores at small ``W``
and widens survivors only as far as the deadline demands.

Objective and tie-breaks, in order:

(a) the final survivor reaches the target (``max_epochs``) within both budgets;
(b) the most configurations ``n_1`` (capped by ``max_configurations``);
(c) the least predicted cost (compared to 1e-9 USD);
(d) deterministic tie-break: fewer rounds with a world size above the smallest usable one,
    then the smaller sum of ``W_k``, the shorter predicted time, fewer rounds, and the
    lexicographically smaller ``W`` sequence.

Search. For every schedule (number of rounds) and every non-decreasing ``W`` sequence over the
usable ladder (``W <= num_slots``), time and cost are non-decreasing in ``n_1`` (each ``n_k`` is
non-decreasing in ``n_1``, and so are the waves), so the largest ``n_1`` within budget is found
by binary search, after first checking that the sequence can match the best ``n_1`` found so
far. Six rounds over a four-rung ladder are 210 sequences; the whole search takes milliseconds.

When no plan reaches ``max_epochs`` within budget, the *best-effort* plan is the one whose
final survivor reaches the most epochs: the largest target ``T < max_epochs`` for which one
configuration fits is found by binary search on ``T`` (feasibility of one configuration is
treated as monotone in ``T``; the plan returned is verified within budget), then the same search
runs for ``T``. It is marked ``feasible=False`` and its message says so loudly. When not even
one configuration for one epoch fits, the plan has no rounds.

``min_configurations`` (default ``eta**2``) does not override (a): a plan that trains a
configuration fully always wins, but when it explores fewer configurations than that, the
message warns (DESIGN.md's "starved exploration" trap; choosing a smaller target instead is a
decision for the caller, by lowering ``max_epochs``).

:func:`replan` re-plans a run in progress: rungs and survivor counts are fixed, only the world
sizes of the remaining rounds are chosen (least cost among those within the remaining budgets),
and when none fits it returns the longest prefix of rounds that does.

Everything here is pure and deterministic: no clock, no files, no processes, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations_with_replacement

from seer_torch.errors import ConfigError
from seer_torch.policies.rungs import rung_schedules, survivor_counts
from seer_torch.scaling.model import ScalingModel

__all__ = ["Plan", "PlannerInputs", "RoundPlan", "plan", "replan"]

BINDING_VALUES = ("time", "money", "max_configurations", "none")

# Relative slack when comparing a prediction with a limit, so that float round-off in a sum of
# durations never flips a plan that is exactly on its limit.
_REL_TOL = 1e-9


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


@dataclass(frozen=True)
class PlannerInputs:
    """Everything the planner needs; all times in seconds, money in USD.

    Args:
        max_epochs: epochs of a fully trained configuration (the last rung), ``>= 1``.
        min_epochs: the smallest first rung, ``1 <= min_epochs <= max_epochs``.
        eta: reduction factor between rungs, ``>= 2``.
        max_configurations: cap on ``n_1`` (how many configurations the search space yields).
        num_slots: worker places in the cluster (GPUs; CPU processes locally), ``>= 1``.
        world_size_ladder: allowed world sizes, e.g. ``(1, 2, 4, 8)``; those above
            ``num_slots`` are dropped by the planner.
        epoch_time_s: ``tau``, one epoch (training + validation) on one worker, ``> 0``.
        scaling: the speedup model ``s(W)``.
        startup_s: overhead of a trial's first launch, before its first step, ``>= 0``.
        relaunch_s: overhead of continuing a trial at the next rung with the same ``W``.
        resize_s: overhead of relaunching a trial at a different ``W``.
        time_budget_s: wall-clock time left, ``>= 0`` (``inf`` allowed).
        money_budget_usd: money left, ``>= 0`` (``inf`` allowed).
        price_usd_per_slot_hour: price of one slot for one hour, ``>= 0``.
        safety_fraction: plan against this fraction of each budget, ``0 < f <= 1``.
        min_configurations: configurations below which the message warns of starved
            exploration; default ``eta**2`` capped by ``max_configurations``.
        num_finalists: trials carried to the last rung when there are that many (default 1).

    Raises:
        ConfigError: any field out of its range (the message names field, value and range).
    """

    max_epochs: int
    min_epochs: int
    eta: int
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
    num_finalists: int = 1

    def __post_init__(self) -> None:
        for name, minimum in (
            ("max_epochs", 1),
            ("min_epochs", 1),
            ("eta", 2),
            ("max_configurations", 1),
            ("num_slots", 1),
            ("num_finalists", 1),
        ):
            value = getattr(self, name)
            if not _is_int(value) or value < minimum:
                raise ConfigError(name, value, f"an integer >= {minimum}")
        if self.min_epochs > self.max_epochs:
            raise ConfigError(
                "min_epochs", self.min_epochs, f"an integer <= max_epochs ({self.max_epochs})"
            )
        ladder = tuple(self.world_size_ladder)
        if not ladder or any(not _is_int(w) or w < 1 for w in ladder):
            raise ConfigError("world_size_ladder", list(ladder), "a non-empty list of integers >= 1")
        object.__setattr__(self, "world_size_ladder", ladder)
        if not callable(getattr(self.scaling, "speedup_at", None)):
            raise ConfigError("scaling", self.scaling, "a ScalingModel (anything with speedup_at(W))")
        value = self.epoch_time_s
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            raise ConfigError("epoch_time_s", value, "a finite number of seconds > 0")
        for name in ("startup_s", "relaunch_s", "resize_s", "price_usd_per_slot_hour"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise ConfigError(name, value, "a finite number >= 0")
        for name in ("time_budget_s", "money_budget_usd"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise ConfigError(name, value, "a number >= 0 (inf for no limit)")
        value = self.safety_fraction
        if not _is_number(value) or not 0 < value <= 1:
            raise ConfigError("safety_fraction", value, "a number in (0, 1]")
        value = self.min_configurations
        if value is not None and (not _is_int(value) or value < 1):
            raise ConfigError("min_configurations", value, "an integer >= 1, or None for eta**2")

    @property
    def usable_world_sizes(self) -> tuple[int, ...]:
        """The ladder's distinct world sizes ``<= num_slots``, ascending (may be empty)."""
        return tuple(sorted({w for w in self.world_size_ladder if w <= self.num_slots}))

    @property
    def effective_min_configurations(self) -> int:
        """``min_configurations``, or ``eta**2``, capped by ``max_configurations``."""
        wanted = self.eta**2 if self.min_configurations is None else self.min_configurations
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
        predicted_duration_s: ``D_k = waves * J_k``, wall clock of the round.
        predicted_cost_usd: ``C_k = price / 3600 * n_k * W_k * J_k``.
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
        """``J_k``: predicted seconds of one trial's job in this round, overhead included."""
        return self.predicted_duration_s / self.waves


@dataclass(frozen=True)
class Plan:
    """The planner's answer.

    Attributes:
        rounds: the rounds in order (empty when nothing fits).
        num_configurations: ``n_1`` (0 when nothing fits).
        eta: the reduction factor used.
        target_epochs: the last rung planned (``max_epochs`` when feasible; 0 with no rounds).
        feasible: True when the final survivor reaches ``max_epochs`` within both budgets
            (for :func:`replan`: when every remaining round fits).
        predicted_time_s: sum of the rounds' durations.
        predicted_cost_usd: sum of the rounds' costs.
        binding: the constraint that stopped more configurations (or, for a best-effort plan,
            more epochs): ``"time"``, ``"money"``, ``"max_configurations"`` or ``"none"``.
        message: one line for the user; starts with ``"BEST EFFORT"`` or ``"NO PLAN"`` when
            the plan is not feasible.
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
            "target_epochs": self.target_epochs,
            "feasible": self.feasible,
            "predicted_time_s": self.predicted_time_s,
            "predicted_cost_usd": self.predicted_cost_usd,
            "binding": self.binding,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Plan:
        """Inverse of :meth:`to_dict` (for a journal read back on resume)."""
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
        )


# -- the cost model -----------------------------------------------------------------------------


class _CostModel:
    """Closed-form time and cost of a round sequence (see the implementation notes)."""

    def __init__(self, inputs: PlannerInputs, world_sizes: Iterable[int]) -> None:
        self.inputs = inputs
        self.tau = float(inputs.epoch_time_s)
        self.slots = inputs.num_slots
        self.price_per_slot_s = inputs.price_usd_per_slot_hour / 3600.0
        self.speed = {w: inputs.scaling.speedup_at(w) for w in world_sizes}
        tol_t = _REL_TOL * max(1.0, inputs.time_limit_s) if math.isfinite(inputs.time_limit_s) else 0.0
        tol_m = (
            _REL_TOL * max(1.0, inputs.money_limit_usd) if math.isfinite(inputs.money_limit_usd) else 0.0
        )
        self.time_cap = inputs.time_limit_s + tol_t
        self.money_cap = inputs.money_limit_usd + tol_m

    def prepare(
        self,
        rungs: Sequence[int],
        world_sizes: Sequence[int],
        start_epoch: int,
        first_overhead_s: float,
        previous_world_size: int | None,
    ) -> list[tuple[float, int, float]]:
        """Per round ``(J_k, trials per wave, dollars per trial)``; independent of ``n_k``."""
        inputs = self.inputs
        rows = []
        prev_epoch = start_epoch
        prev_w = previous_world_size
        for k, (rung, w) in enumerate(zip(rungs, world_sizes)):
            if k == 0:
                overhead = first_overhead_s
            elif w == prev_w:
                overhead = inputs.relaunch_s
            else:
                overhead = inputs.resize_s
            job_s = overhead + (rung - prev_epoch) * self.tau / self.speed[w]
            rows.append((job_s, self.slots // w, self.price_per_slot_s * w * job_s))
            prev_epoch, prev_w = rung, w
        return rows

    @staticmethod
    def totals(rows: Sequence[tuple[float, int, float]], counts: Sequence[int]) -> tuple[float, float]:
        """``(sum D_k, sum C_k)`` for survivor counts ``counts``."""
        time_s = 0.0
        cost_usd = 0.0
        for (job_s, per_wave, usd_per_trial), n in zip(rows, counts):
            time_s += -(-n // per_wave) * job_s
            cost_usd += n * usd_per_trial
        return time_s, cost_usd

    def fits(self, time_s: float, cost_usd: float) -> bool:
        return time_s <= self.time_cap and cost_usd <= self.money_cap

    def overshoot(self, time_s: float, cost_usd: float) -> tuple[float, float]:
        """``(time / time limit, cost / money limit)``; ``inf`` over a zero limit."""
        return _ratio(time_s, self.inputs.time_limit_s), _ratio(cost_usd, self.inputs.money_limit_usd)

    def rounds(
        self,
        rungs: Sequence[int],
        world_sizes: Sequence[int],
        counts: Sequence[int],
        start_epoch: int,
        first_overhead_s: float,
        previous_world_size: int | None,
        first_index: int = 1,
    ) -> tuple[RoundPlan, ...]:
        rows = self.prepare(rungs, world_sizes, start_epoch, first_overhead_s, previous_world_size)
        out = []
        prev_epoch = start_epoch
        for k, ((job_s, per_wave, usd_per_trial), rung, w, n) in enumerate(
            zip(rows, rungs, world_sizes, counts)
        ):
            waves = -(-n // per_wave)
            out.append(
                RoundPlan(
                    index=first_index + k,
                    rung_epoch=rung,
                    start_epoch=prev_epoch,
                    num_trials=n,
                    world_size=w,
                    waves=waves,
                    predicted_duration_s=waves * job_s,
                    predicted_cost_usd=n * usd_per_trial,
                )
            )
            prev_epoch = rung
        return tuple(out)


def _ratio(value: float, limit: float) -> float:
    if limit == 0:
        return math.inf if value > 0 else 0.0
    return value / limit


def _tie_break(world_sizes: Sequence[int], smallest: int, time_s: float) -> tuple:
    wide = sum(1 for w in world_sizes if w > smallest)
    return (wide, sum(world_sizes), time_s, len(world_sizes), tuple(world_sizes))


@dataclass(frozen=True)
class _Choice:
    rungs: tuple[int, ...]
    world_sizes: tuple[int, ...]
    counts: tuple[int, ...]
    time_s: float
    cost_usd: float


# -- the search ---------------------------------------------------------------------------------


def _schedules_for(inputs: PlannerInputs, target: int) -> tuple[tuple[int, ...], ...]:
    return rung_schedules(min(inputs.min_epochs, target), target, inputs.eta)


def _search(inputs: PlannerInputs, model: _CostModel, target: int) -> _Choice | None:
    """Best plan whose final survivor reaches ``target``, by the objective (b)-(d)."""
    usable = inputs.usable_world_sizes
    eta, finalists = inputs.eta, inputs.num_finalists
    n_max = inputs.max_configurations
    best: _Choice | None = None
    best_key: tuple | None = None

    def counts_of(n: int, k: int) -> tuple[int, ...]:
        return survivor_counts(n, k, eta, finalists)

    for rungs in _schedules_for(inputs, target):
        k = len(rungs)
        for ws in combinations_with_replacement(usable, k):
            rows = model.prepare(rungs, ws, 0, inputs.startup_s, None)
            floor_n = best.counts[0] if best is not None else 1
            if not model.fits(*model.totals(rows, counts_of(floor_n, k))):
                continue
            lo, hi = floor_n, n_max  # lo fits; find the largest that fits
            if model.fits(*model.totals(rows, counts_of(hi, k))):
                lo = hi
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if model.fits(*model.totals(rows, counts_of(mid, k))):
                    lo = mid
                else:
                    hi = mid - 1
            counts = counts_of(lo, k)
            time_s, cost_usd = model.totals(rows, counts)
            key = (-lo, round(cost_usd, 9)) + _tie_break(ws, usable[0], time_s)
            if best_key is None or key < best_key:
                best_key = key
                best = _Choice(tuple(rungs), tuple(ws), counts, time_s, cost_usd)
    return best


def _explore_first(inputs: PlannerInputs, model: _CostModel, minimum: int) -> tuple[int, _Choice] | None:
    """The largest target ``T < max_epochs`` at which ``minimum`` configurations fit, with the
    best plan for it; ``None`` when not even ``T = 1`` allows that many. Whether ``minimum``
    fit is not monotone in ``T`` (the rung schedules change with it), so a binary search finds
    one such ``T`` and a scan down from ``max_epochs - 1`` finds the largest, stopping at the
    first that fits."""

    def enough(target: int) -> _Choice | None:
        c = _search(inputs, model, target)
        return c if c is not None and c.counts[0] >= minimum else None

    if inputs.max_epochs < 2 or enough(1) is None:
        return None
    lo, hi = 1, inputs.max_epochs - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if enough(mid) is not None:
            lo = mid
        else:
            hi = mid - 1
    for target in range(inputs.max_epochs - 1, lo, -1):
        if (found := enough(target)) is not None:
            return target, found
    found = enough(lo)
    assert found is not None
    return lo, found


def _one_fits(inputs: PlannerInputs, model: _CostModel, target: int) -> bool:
    """Whether one configuration can reach ``target`` epochs within budget."""
    for rungs in _schedules_for(inputs, target):
        counts = (1,) * len(rungs)
        for ws in combinations_with_replacement(inputs.usable_world_sizes, len(rungs)):
            rows = model.prepare(rungs, ws, 0, inputs.startup_s, None)
            if model.fits(*model.totals(rows, counts)):
                return True
    return False


def _binding_for_target(inputs: PlannerInputs, model: _CostModel, target: int) -> str:
    """The budget that stops one configuration from reaching ``target`` epochs.

    Takes the round sequence that comes closest (smallest worse overshoot) and names the
    budget it overshoots more.
    """
    best: tuple[float, float] | None = None
    for rungs in _schedules_for(inputs, target):
        counts = (1,) * len(rungs)
        for ws in combinations_with_replacement(inputs.usable_world_sizes, len(rungs)):
            rows = model.prepare(rungs, ws, 0, inputs.startup_s, None)
            ratios = model.overshoot(*model.totals(rows, counts))
            if best is None or max(ratios) < max(best):
                best = ratios
    if best is None or max(best) <= 1.0:
        return "none"
    return "time" if best[0] >= best[1] else "money"


def _binding_for_more(inputs: PlannerInputs, model: _CostModel, choice: _Choice) -> str:
    """What stops ``n_1 + 1`` configurations on the chosen round sequence."""
    n = choice.counts[0]
    if n >= inputs.max_configurations:
        return "max_configurations"
    rows = model.prepare(choice.rungs, choice.world_sizes, 0, inputs.startup_s, None)
    counts = survivor_counts(n + 1, len(choice.rungs), inputs.eta, inputs.num_finalists)
    time_ratio, money_ratio = model.overshoot(*model.totals(rows, counts))
    if time_ratio <= 1.0 and money_ratio <= 1.0:
        return "none"
    return "time" if time_ratio >= money_ratio else "money"


def _budget_words(inputs: PlannerInputs, binding: str) -> str:
    if binding == "time":
        return f"the deadline ({inputs.time_budget_s:g} s)"
    if binding == "money":
        return f"the money budget ({inputs.money_budget_usd:g} USD)"
    return "the budgets"


def _summary(inputs: PlannerInputs, time_s: float, cost_usd: float) -> str:
    return (
        f"predicted {time_s:.1f} s of {inputs.time_limit_s:g} s and {cost_usd:.4g} USD of "
        f"{inputs.money_limit_usd:.4g} USD (safety fraction {inputs.safety_fraction:g})"
    )


def _shape(rungs: Sequence[int], counts: Sequence[int], world_sizes: Sequence[int]) -> str:
    return "rungs " + ",".join(map(str, rungs)) + "; trials " + ",".join(map(str, counts)) + (
        "; W " + ",".join(map(str, world_sizes))
    )


def _empty_plan(inputs: PlannerInputs, binding: str, message: str) -> Plan:
    return Plan(
        rounds=(),
        num_configurations=0,
        eta=inputs.eta,
        target_epochs=0,
        feasible=False,
        predicted_time_s=0.0,
        predicted_cost_usd=0.0,
        binding=binding,
        message=message,
    )


def _usable_or_raise(inputs: PlannerInputs) -> tuple[int, ...]:
    usable = inputs.usable_world_sizes
    if not usable:
        raise ConfigError(
            "world_size_ladder",
            list(inputs.world_size_ladder),
            f"at least one world size <= num_slots ({inputs.num_slots})",
        )
    return usable


def plan(inputs: PlannerInputs) -> Plan:
    """Choose ``n_1``, the rungs and a non-decreasing ``W_k`` per round (see module notes).

    Returns:
        A :class:`Plan`. ``feasible=True``: its final survivor reaches ``max_epochs``, it
        explores at least ``min_configurations`` and its predictions fit ``safety_fraction`` of
        both budgets. Otherwise, when at least ``min_configurations`` fit at some smaller
        target, the exploration-first plan (that many or more configurations, the best trained
        to the most epochs that allows, ``feasible=False``); else the plan that trains the
        final survivor fully with fewer configurations (``feasible=True``, with a warning); else
        the best-effort plan (the most epochs one configuration can reach within budget,
        ``feasible=False``, a loud message); or a plan with no rounds when not even one epoch of
        one configuration fits.
        Never raises for budgets that are too small.

    Raises:
        ConfigError: no world size of the ladder is ``<= num_slots``.
    """
    usable = _usable_or_raise(inputs)
    model = _CostModel(inputs, usable)
    choice = _search(inputs, model, inputs.max_epochs)
    minimum = inputs.effective_min_configurations
    if choice is None or choice.counts[0] < minimum:
        # Exploration first (DESIGN.md, "starved exploration"): rather than train one or two
        # configurations fully, explore `minimum` and stop the best at the most epochs that
        # allows.
        explored = _explore_first(inputs, model, minimum)
        if explored is not None:
            target, echoice = explored
            binding = _binding_for_target(inputs, model, target + 1)
            text = (
                f"EXPLORATION FIRST: {_budget_words(inputs, binding)} cannot train "
                f"min_configurations={minimum} configurations with the best to max_epochs "
                f"({inputs.max_epochs}); this plan explores {echoice.counts[0]} configurations and "
                f"trains the best to {target} of {inputs.max_epochs} epochs "
                f"({_shape(echoice.rungs, echoice.counts, echoice.world_sizes)}); "
                f"{_summary(inputs, echoice.time_s, echoice.cost_usd)}."
            )
            return _plan_from_choice(inputs, model, echoice, False, binding, text)
    if choice is not None:
        binding = _binding_for_more(inputs, model, choice)
        n = choice.counts[0]
        text = (
            f"SEER plan: {n} configurations in {len(choice.rungs)} rounds "
            f"({_shape(choice.rungs, choice.counts, choice.world_sizes)}), the best trained to "
            f"{inputs.max_epochs} epochs; {_summary(inputs, choice.time_s, choice.cost_usd)}; "
            f"more configurations are limited by {binding}."
        )
        if n < minimum:
            text += (
                f" WARNING: only {n} configurations fit, fewer than min_configurations={minimum}: "
                "exploration is starved; raise the budgets or lower max_epochs."
            )
        return _plan_from_choice(inputs, model, choice, True, binding, text)

    # Best effort: the most epochs one configuration can reach.
    if not _one_fits(inputs, model, 1):
        binding = _binding_for_target(inputs, model, 1)
        return _empty_plan(
            inputs,
            binding,
            f"NO PLAN: {_budget_words(inputs, binding)} is too short for even one epoch of one "
            f"configuration (one epoch takes {inputs.epoch_time_s:g} s on one worker plus "
            f"{inputs.startup_s:g} s start-up); a plan may use {inputs.time_limit_s:g} s and "
            f"{inputs.money_limit_usd:.4g} USD (safety fraction {inputs.safety_fraction:g}).",
        )
    lo, hi = 1, inputs.max_epochs - 1  # lo fits, max_epochs does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _one_fits(inputs, model, mid):
            lo = mid
        else:
            hi = mid - 1
    choice = _search(inputs, model, lo)
    assert choice is not None, "one configuration fits the target by the binary search"
    binding = _binding_for_target(inputs, model, lo + 1)
    n = choice.counts[0]
    who = "its only configuration" if n == 1 else f"the best of {n} configurations"
    text = (
        f"BEST EFFORT: {_budget_words(inputs, binding)} is too short for even one fully trained "
        f"configuration ({inputs.max_epochs} epochs); this plan trains {who} to only {lo} of "
        f"{inputs.max_epochs} epochs "
        f"({_shape(choice.rungs, choice.counts, choice.world_sizes)}); "
        f"{_summary(inputs, choice.time_s, choice.cost_usd)}."
    )
    return _plan_from_choice(inputs, model, choice, False, binding, text)


def _plan_from_choice(
    inputs: PlannerInputs,
    model: _CostModel,
    choice: _Choice,
    feasible: bool,
    binding: str,
    message: str,
) -> Plan:
    rounds = model.rounds(choice.rungs, choice.world_sizes, choice.counts, 0, inputs.startup_s, None)
    return Plan(
        rounds=rounds,
        num_configurations=choice.counts[0],
        eta=inputs.eta,
        target_epochs=choice.rungs[-1],
        feasible=feasible,
        predicted_time_s=sum(r.predicted_duration_s for r in rounds),
        predicted_cost_usd=sum(r.predicted_cost_usd for r in rounds),
        binding=binding,
        message=message,
    )


# -- re-planning a run in progress ---------------------------------------------------------------


def replan(
    inputs: PlannerInputs,
    rungs: Sequence[int],
    survivors: Sequence[int],
    current_epoch: int,
    current_world_size: int,
    *,
    first_round_index: int = 1,
    planned_world_sizes: Sequence[int] | None = None,
) -> Plan:
    """Choose world sizes for the remaining rounds of a run in progress.

    Args:
        inputs: the planner inputs with the budgets *left* (``time_budget_s``,
            ``money_budget_usd``) and the latest measured ``epoch_time_s``, scaling and
            overheads. Its ``max_epochs``, ``min_epochs`` and ``max_configurations`` are not used.
        rungs: the remaining rungs, strictly increasing integers, all ``> current_epoch``.
        survivors: trials in each remaining round (same length as ``rungs``; ``>= 1``,
            non-increasing).
        current_epoch: the epoch the survivors have reached (their last rung; 0 before start).
        current_world_size: ``W`` of the last round; 0 when no job has run yet (the first
            remaining round then pays ``startup_s``).
        first_round_index: the index given to the first remaining round.
        planned_world_sizes: the world sizes the current plan gives the remaining rounds.
            When they still fit the budgets left, they are kept (the plan's promise of how many
            configurations to explore was made on them, and the safety margin is kept for
            prediction errors rather than spent on narrowing); otherwise the search below runs.

    Returns:
        The cheapest plan whose remaining rounds all fit within ``safety_fraction`` of the
        budgets left, with ``W`` non-decreasing and ``>= current_world_size`` (when no usable
        world size is that large, any usable one). When none fits, the longest prefix of
        rounds that fits, ``feasible=False``; no rounds when not even the next one fits.
        The first remaining round pays ``relaunch_s`` when its ``W`` equals
        ``current_world_size``, ``resize_s`` otherwise. ``binding`` is ``"none"`` when every
        round fits, else the budget the next unplanned round breaks.

    Raises:
        ConfigError: malformed ``rungs``, ``survivors``, ``current_epoch`` or
            ``current_world_size``, or no world size of the ladder ``<= num_slots``.
    """
    rungs = tuple(rungs)
    survivors = tuple(survivors)
    if not _is_int(current_epoch) or current_epoch < 0:
        raise ConfigError("current_epoch", current_epoch, "an integer >= 0")
    if not _is_int(current_world_size) or current_world_size < 0:
        raise ConfigError("current_world_size", current_world_size, "an integer >= 0 (0: not started)")
    if not _is_int(first_round_index) or first_round_index < 1:
        raise ConfigError("first_round_index", first_round_index, "an integer >= 1")
    previous = current_epoch
    for r in rungs:
        if not _is_int(r) or r <= previous:
            raise ConfigError(
                "rungs", list(rungs), f"strictly increasing integers > current_epoch ({current_epoch})"
            )
        previous = r
    if len(survivors) != len(rungs) or any(not _is_int(n) or n < 1 for n in survivors):
        raise ConfigError("survivors", list(survivors), f"{len(rungs)} integers >= 1, one per rung")
    if any(b > a for a, b in zip(survivors, survivors[1:])):
        raise ConfigError("survivors", list(survivors), "a non-increasing sequence")
    usable = _usable_or_raise(inputs)
    model = _CostModel(inputs, usable)

    if not rungs:
        return Plan((), 0, inputs.eta, current_epoch, True, 0.0, 0.0, "none", "Nothing left to plan.")

    candidates = tuple(w for w in usable if w >= current_world_size) or usable
    previous_w: int | None = current_world_size or None

    def first_overhead(w: int) -> float:
        if previous_w is None:
            return inputs.startup_s
        return inputs.relaunch_s if w == previous_w else inputs.resize_s

    def best_prefix(length: int) -> _Choice | None:
        sub_rungs, sub_counts = rungs[:length], survivors[:length]
        best: _Choice | None = None
        best_key: tuple | None = None
        for ws in combinations_with_replacement(candidates, length):
            rows = model.prepare(sub_rungs, ws, current_epoch, first_overhead(ws[0]), previous_w)
            time_s, cost_usd = model.totals(rows, sub_counts)
            if not model.fits(time_s, cost_usd):
                continue
            key = (round(cost_usd, 9),) + _tie_break(ws, candidates[0], time_s)
            if best_key is None or key < best_key:
                best_key = key
                best = _Choice(sub_rungs, ws, sub_counts, time_s, cost_usd)
        return best

    def closest_binding(length: int) -> str:
        sub_rungs, sub_counts = rungs[:length], survivors[:length]
        best: tuple[float, float] | None = None
        for ws in combinations_with_replacement(candidates, length):
            rows = model.prepare(sub_rungs, ws, current_epoch, first_overhead(ws[0]), previous_w)
            ratios = model.overshoot(*model.totals(rows, sub_counts))
            if best is None or max(ratios) < max(best):
                best = ratios
        assert best is not None
        return "time" if best[0] >= best[1] else "money"

    length = len(rungs)
    choice = None
    if planned_world_sizes is not None:
        ws = tuple(planned_world_sizes)
        if len(ws) != len(rungs) or any(w not in usable for w in ws) or list(ws) != sorted(ws):
            raise ConfigError(
                "planned_world_sizes", list(ws), f"{len(rungs)} non-decreasing world sizes from {list(usable)}"
            )
        rows = model.prepare(rungs, ws, current_epoch, first_overhead(ws[0]), previous_w)
        time_s, cost_usd = model.totals(rows, survivors)
        if model.fits(time_s, cost_usd):
            choice = _Choice(rungs, ws, survivors, time_s, cost_usd)
    if choice is None:
        choice = best_prefix(length)
    feasible = choice is not None
    while choice is None and length > 1:
        length -= 1
        choice = best_prefix(length)
    if choice is None:
        binding = closest_binding(1)
        return Plan(
            (),
            0,
            inputs.eta,
            current_epoch,
            False,
            0.0,
            0.0,
            binding,
            f"NO PLAN: {_budget_words(inputs, binding)} left cannot fit the next round "
            f"(to epoch {rungs[0]} with {survivors[0]} trials); the answer is the best trial "
            f"at epoch {current_epoch}.",
        )
    rounds = model.rounds(
        choice.rungs,
        choice.world_sizes,
        choice.counts,
        current_epoch,
        first_overhead(choice.world_sizes[0]),
        previous_w,
        first_index=first_round_index,
    )
    total_time = sum(r.predicted_duration_s for r in rounds)
    total_cost = sum(r.predicted_cost_usd for r in rounds)
    if feasible:
        binding = "none"
        text = (
            f"SEER re-plan: {len(rounds)} remaining rounds "
            f"({_shape(choice.rungs, choice.counts, choice.world_sizes)}); "
            f"{_summary(inputs, total_time, total_cost)}."
        )
    else:
        binding = closest_binding(length + 1)
        text = (
            f"BEST EFFORT: {_budget_words(inputs, binding)} left cannot fit every remaining round; "
            f"this plan stops at epoch {choice.rungs[-1]} instead of {rungs[-1]} "
            f"({_shape(choice.rungs, choice.counts, choice.world_sizes)}); "
            f"{_summary(inputs, total_time, total_cost)}."
        )
    return Plan(
        rounds=rounds,
        num_configurations=survivors[0],
        eta=inputs.eta,
        target_epochs=choice.rungs[-1],
        feasible=feasible,
        predicted_time_s=total_time,
        predicted_cost_usd=total_cost,
        binding=binding,
        message=text,
    )
