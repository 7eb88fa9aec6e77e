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
trials are left. World sizes are the ladder's, capped by ``num_slots`` and ``max_world_size``.

Cost model (closed form, ours; the paper's includes the same ingredients). With ``tau`` = one
epoch (training + validation) on one worker, ``s(W)`` from the
:class:`~seer_torch.scaling.model.ScalingModel` and ``d_k = r_k - r_{k-1}``:

- one trial's job in round ``k``: ``J_k = overhead_k + d_k * tau / s(W_k)`` seconds, where
  ``overhead_k`` is ``startup_s`` in the first round, ``relaunch_s`` when ``W_k == W_{k-1}``
  and ``resize_s`` otherwise (today every rung relaunches the job);
- ``num_slots // W_k`` trials run at once, so the round takes ``waves_k = ceil(n_k /
  (num_slots // W_k))`` waves and ``D_k = waves_k * J'_k`` seconds of wall clock (waves are
  synchronous: the round ends when its last trial reaches the rung), where ``J'_k`` is
  ``J_k`` with the *slowest* trial's epoch ``tau'`` (``wave_epoch_time_s``) in place of the
  mean ``tau``: configurations differ in speed (a wider model is slower), and a round lasts as
  long as its slowest job. A fresh plan knows one ``tau`` (``tau' = tau``: the mean over
  the configurations the run may draw), unless each draw's epoch is known in advance: then
  SEER's first plan sets ``tau'`` from the makespan of the draws round 1 launches
  (:meth:`~seer_torch.policies.seer_policy.SeerPolicy.first_plan`); re-plans measure both on
  the trials they carry;
- only held slots are billed, each job as one rental of ``W_k`` slots:
  ``C_k = price_usd_per_slot_hour / 3600 * n_k * W_k * billed(J_k)`` (the mean ``tau``), where
  ``billed(J) = max(billing_minimum_s, ceil(J / billing_granularity_s) *
  billing_granularity_s)`` (:func:`~seer_torch.policies.billing.billed_seconds`; exact,
  ``billed(J) = J``, with both at 0, the default). Under per-hour billing a 10-minute job
  costs a full hour, so coarse billing favours fewer, longer jobs.

Totals are ``sum D_k`` and ``sum C_k``. A plan is *within budget* when the total time is
``<= safety_fraction * time_budget_s`` and the total cost ``<= safety_fraction *
money_budget_usd``. Since ``W / s(W) >= 1``, widening a round buys wall clock at a money price
proportional to ``n_k``; it is cheapest in late rounds, so the planner explores at small ``W``
and widens survivors only as far as the deadline demands.

What the planner chooses: ``n_1``, the schedule (number of rounds, hence the first rung), the
world sizes, and, when the inputs leave them open (``None``), ``eta``, the smallest first rung
and the number of finalists.

- ``eta=None``: ``eta`` is searched in :data:`ETA_CHOICES` = (3, 2, 4). Two is successive
  halving's halving (the most rungs, the gentlest cuts), three is Hyperband's recommended
  default (Li et al. 2018) and four ASHA's (Li et al. 2020); five and more leave only two or
  three rungs over the epoch ranges of practice (81 epochs at ``eta = 5``: rungs 3, 16, 81)
  and eliminate 80 % per rung on the noisiest, earliest rankings. Three values also keep the
  search within its time (below). The order is the preference on an exact tie of everything
  else. When ``min_configurations`` is also ``None``, its default is ``3**2 = 9``.
- ``min_epochs=None``: every first rung the schedules allow, i.e. the schedules of
  ``min_epochs = 1`` (they contain those of every larger ``min_epochs``: a schedule is a
  suffix of ``max_epochs // eta**i``). The first rung chosen is ``Plan.rungs[0]``.
- ``num_finalists=None``: :data:`FINALIST_CHOICES` = (2, 1), in that order. One finalist is
  the cheapest and explores the most; carrying two to the target hedges against a finalist
  that diverges or collapses after its last rung, or was misranked there (DESIGN.md, "Two
  traps"). Rule: the plan with two finalists when it is feasible (its finalists reach
  ``max_epochs``) and still explores at least ``min_configurations``; otherwise the plan with
  one. Measured on the policy sweep (``scripts/bench_policies.py``, 224 cells, 3 seeds):
  SEER at least every baseline in 62.9 % of the cells with two finalists against 59.8 % with
  one, 59.8 % with three; mean regret to the oracle 0.064 against 0.078.

Objective and tie-breaks, in order:

(a) the final survivor reaches the target (``max_epochs``) within both budgets;
(b) the most configurations ``n_1`` (capped by ``max_configurations``);
(b') a term that is the same for every plan of a fixed ``num_finalists`` (the open choice is
    made around the whole search, above): the most trials in the last round;
(c) the least predicted cost (compared to 1e-9 USD);
(d) deterministic tie-break: fewer rounds with a world size above the smallest usable one,
    then the smaller sum of ``W_k``, the shorter predicted time, fewer rounds, the
    lexicographically smaller ``W`` sequence, the preferred ``eta`` and fewer finalists.

Search. For a given ``eta``, schedule and ``n_1`` the survivor counts are fixed, and time and
cost are sums over rounds of terms that depend on ``(k, W_k, W_k == W_{k-1})``. The world
sizes are found by depth-first branch and bound over non-decreasing sequences: per round and
world size the optimistic (smaller-overhead) time and cost of the rest of the rounds are
precomputed as suffix minima, and a prefix is cut when it cannot fit a budget, or cannot beat
the best plan so far on (c) and then on the first terms of (d). ``n_1`` is found first: time
and cost are non-decreasing in ``n_1`` (each ``n_k`` is, and so are the waves), so per schedule
the largest ``n_1`` for which *some* sequence fits is found by binary search, starting above
the best ``n_1`` found so far (a schedule that cannot fit one more is skipped after one test).
Then only the plans with that ``n_1`` are compared, the cheapest-looking (by a per-round
cost floor) first. The result is the same as enumerating every sequence (the tests check it
against a brute force and an exhaustive enumeration). 1000 configurations on a ladder of seven
sizes and 64 slots, with ``eta``, first rung and finalists searched, plan in about a
millisecond with ample budgets and 10-20 ms when a budget binds (``scripts/bench_planner.py``);
enumerating every sequence took about 0.2 s for one ``eta`` and one number of finalists.

When no plan reaches ``max_epochs`` within budget, the *best-effort* plan is the one whose
final survivor reaches the most epochs: the largest target ``T < max_epochs`` for which one
configuration fits is found by binary search on ``T`` (feasibility of one configuration is
treated as monotone in ``T``; the plan returned is verified within budget), then the same search
runs for ``T``. It is marked ``feasible=False`` and its message says so loudly. When not even
one configuration for one epoch fits, the plan has no rounds.

``min_configurations`` (default ``eta**2``): when fewer than that many configurations fit with
the best trained to ``max_epochs``, the plan *explores first* (DESIGN.md's "starved
exploration" trap): it explores at least that many and trains the best to the largest target
``T < max_epochs`` that allows (``feasible=False``, message ``EXPLORATION FIRST``). When not
even that fits at ``T = 1``, the fully trained plan with fewer configurations stands, with a
warning.

:func:`replan` re-plans a run in progress: rungs and survivor counts are fixed, only the world
sizes of the remaining rounds are chosen (least cost among those within the remaining budgets),
and when none fits it returns the longest prefix of rounds that does.

Everything here is pure and deterministic: no clock, no files, no processes, no torch.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from seer_torch.errors import ConfigError
from seer_torch.policies.billing import billed_seconds
from seer_torch.policies.rungs import rung_schedules
from seer_torch.scaling.model import ScalingModel

__all__ = ["ETA_CHOICES", "FINALIST_CHOICES", "Plan", "PlannerInputs", "RoundPlan", "plan", "replan"]

BINDING_VALUES = ("time", "money", "max_configurations", "none")

#: Reduction factors searched when ``PlannerInputs.eta`` is ``None``, in order of preference on
#: an exact tie (see the module notes for why these three).
ETA_CHOICES: tuple[int, ...] = (3, 2, 4)

#: Numbers of finalists searched when ``PlannerInputs.num_finalists`` is ``None``.
FINALIST_CHOICES: tuple[int, ...] = (2, 1)

# The eta whose square is the default min_configurations when eta is chosen by the planner.
_DEFAULT_ETA = 3

# Relative slack when comparing a prediction with a limit, so that float round-off in a sum of
# durations never flips a plan that is exactly on its limit.
_REL_TOL = 1e-9

# A lower bound is a sum in another order than the exact total: shrink it by this factor before
# cutting on it, so float round-off never cuts a sequence that fits (or wins).
_SAFE = 1.0 - 1e-12

# Two costs whose difference exceeds this always round (to 1e-9 USD) differently.
_COST_EPS = 2e-9


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
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
        relaunch_s: overhead of continuing a trial at the next rung with the same ``W``.
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
            if not _is_int(value) or value < minimum:
                what = f"an integer >= {minimum}"
                raise ConfigError(name, value, what + (", or None (the planner chooses)" if optional else ""))
        if self.min_epochs is not None and self.min_epochs > self.max_epochs:
            raise ConfigError(
                "min_epochs", self.min_epochs, f"an integer <= max_epochs ({self.max_epochs}), or None"
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
        value = self.wave_epoch_time_s
        if value is not None and (not _is_number(value) or not math.isfinite(value) or value <= 0):
            raise ConfigError("wave_epoch_time_s", value, "a finite number of seconds > 0, or None")
        for name in (
            "startup_s", "relaunch_s", "resize_s", "price_usd_per_slot_hour",
            "billing_granularity_s", "billing_minimum_s",
        ):
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
        eta = _DEFAULT_ETA if self.eta is None else self.eta
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
        predicted_duration_s: ``D_k = waves * J_k``, wall clock of the round.
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
        """``J_k``: predicted seconds of one trial's job in this round, overhead included."""
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


# -- the cost model -----------------------------------------------------------------------------


def _counts(n: int, k: int, eta: int, finalists: int) -> tuple[int, ...]:
    """:func:`~seer_torch.policies.rungs.survivor_counts` without its argument checks."""
    out = [n]
    for _ in range(k - 1):
        m = out[-1]
        out.append(max(min(finalists, m), m // eta))
    return tuple(out)


class _Table:
    """Per round and world size of a rung sequence: the job's seconds and dollars per trial,
    for a previous round at the same ``W`` and at another (identical in the first round), and
    per round the least dollars per trial over the sizes."""

    __slots__ = ("sizes", "per_wave", "jobs", "min_usd")

    def __init__(self, sizes: tuple[int, ...], per_wave: tuple[int, ...], jobs: list) -> None:
        self.sizes = sizes
        self.per_wave = per_wave
        self.jobs = jobs  # jobs[k][i] = (job_same_s, usd_same, job_other_s, usd_other)
        self.min_usd = tuple(min(min(us, uo) for _, us, _, uo in row) for row in jobs)

    def cost_floor(self, counts: Sequence[int]) -> float:
        """A lower bound of the cost of any sequence at survivor counts ``counts``, USD."""
        total = 0.0
        for n, usd in zip(counts, self.min_usd):
            total += n * usd
        return total


class _Eval:
    """A table at fixed survivor counts: per round and world size ``(time_same, cost_same,
    time_other, cost_other)``, and suffix lower bounds ``low_t[k][i]``, ``low_c[k][i]``: the
    least time (cost) of rounds ``k..K-1`` with ``W_k >= sizes[i]``, with the smaller overhead."""

    __slots__ = ("rows", "low_t", "low_c")

    def __init__(self, table: _Table, counts: Sequence[int]) -> None:
        per_wave = table.per_wave
        m = len(per_wave)
        rows = []
        low_t = [[0.0] * m]
        low_c = [[0.0] * m]
        for k in range(len(counts) - 1, -1, -1):
            n = counts[k]
            row = []
            nt, nc = low_t[-1], low_c[-1]
            lt = [0.0] * m
            lc = [0.0] * m
            bt = bc = math.inf
            jobs_k = table.jobs[k]
            for i in range(m - 1, -1, -1):
                js, us, jo, uo = jobs_k[i]
                waves = -(-n // per_wave[i])
                ts, cs, to, co = waves * js, n * us, waves * jo, n * uo
                row.append((ts, cs, to, co))
                t = (ts if ts < to else to) + nt[i]
                c = (cs if cs < co else co) + nc[i]
                if t < bt:
                    bt = t
                if c < bc:
                    bc = c
                lt[i] = bt
                lc[i] = bc
            row.reverse()
            rows.append(row)
            low_t.append(lt)
            low_c.append(lc)
        rows.reverse()
        low_t.reverse()
        low_c.reverse()
        self.rows = rows
        self.low_t = low_t
        self.low_c = low_c


class _Best:
    """The best sequence found so far by the objective's key (see :func:`_best_sequence`)."""

    __slots__ = ("key", "cost", "wide", "sum_w", "choice")

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.cost = math.inf
        self.wide = 0
        self.sum_w = 0
        self.choice: _Choice | None = None


class _CostModel:
    """Closed-form time and cost of a round sequence (see the implementation notes)."""

    def __init__(self, inputs: PlannerInputs, world_sizes: Sequence[int]) -> None:
        self.inputs = inputs
        self.tau = float(inputs.epoch_time_s)
        self.wave_tau = float(inputs.wave_epoch_time_s or inputs.epoch_time_s)
        self.slots = inputs.num_slots
        self.sizes = tuple(world_sizes)
        self.price_per_slot_s = inputs.price_usd_per_slot_hour / 3600.0
        self.granularity_s = float(inputs.billing_granularity_s)
        self.minimum_s = float(inputs.billing_minimum_s)
        self.speed = {w: inputs.scaling.speedup_at(w) for w in self.sizes}
        tol_t = _REL_TOL * max(1.0, inputs.time_limit_s) if math.isfinite(inputs.time_limit_s) else 0.0
        tol_m = (
            _REL_TOL * max(1.0, inputs.money_limit_usd) if math.isfinite(inputs.money_limit_usd) else 0.0
        )
        self.time_cap = inputs.time_limit_s + tol_t
        self.money_cap = inputs.money_limit_usd + tol_m
        self._jobs: dict[tuple[int, float, int], tuple[float, float]] = {}
        self._rows: dict[tuple, list] = {}
        self._tables: dict[tuple, _Table] = {}

    def job(self, epochs: int, overhead_s: float, w: int) -> tuple[float, float]:
        """``(J, dollars per trial)`` of one job of ``epochs`` epochs at ``W = w`` (cached)."""
        key = (epochs, overhead_s, w)
        got = self._jobs.get(key)
        if got is None:
            job_s = overhead_s + epochs * self.wave_tau / self.speed[w]  # wall clock: the slowest
            mean_s = overhead_s + epochs * self.tau / self.speed[w]  # money: each its own time
            usd = self.price_per_slot_s * w * billed_seconds(mean_s, self.granularity_s, self.minimum_s)
            got = self._jobs[key] = (job_s, usd)
        return got

    def _row(self, epochs: int, sizes: tuple[int, ...], first_overheads: tuple[float, ...] | None) -> list:
        """One round's ``[(job_same_s, usd_same, job_other_s, usd_other) per size]`` (cached);
        ``first_overheads``: the first round's overhead per size, else ``None``."""
        key = (epochs, sizes, first_overheads)
        got = self._rows.get(key)
        if got is None:
            if first_overheads is None:
                relaunch, resize = self.inputs.relaunch_s, self.inputs.resize_s
                got = [self.job(epochs, relaunch, w) + self.job(epochs, resize, w) for w in sizes]
            else:
                got = [self.job(epochs, o, w) * 2 for o, w in zip(first_overheads, sizes)]
            self._rows[key] = got
        return got

    def table(
        self,
        rungs: tuple[int, ...],
        start_epoch: int,
        sizes: tuple[int, ...],
        first_overheads: tuple[float, ...],
    ) -> _Table:
        """The :class:`_Table` of ``rungs`` over world sizes ``sizes`` (ascending), the first
        round paying ``first_overheads[i]`` at ``sizes[i]`` (cached)."""
        key = (rungs, start_epoch, sizes, first_overheads)
        got = self._tables.get(key)
        if got is not None:
            return got
        jobs = [self._row(rungs[0] - start_epoch, sizes, first_overheads)]
        for prev, rung in zip(rungs, rungs[1:]):
            jobs.append(self._row(rung - prev, sizes, None))
        got = self._tables[key] = _Table(sizes, tuple(self.slots // w for w in sizes), jobs)
        return got

    def plan_table(self, rungs: tuple[int, ...]) -> _Table:
        """The table of a fresh plan: every usable size, ``startup_s`` in the first round."""
        return self.table(rungs, 0, self.sizes, (self.inputs.startup_s,) * len(self.sizes))

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
            job_s, usd = self.job(rung - prev_epoch, overhead, w)
            rows.append((job_s, self.slots // w, usd))
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

    # -- branch and bound over non-decreasing world-size sequences ----------------------------

    def exists(self, table: _Table, counts: Sequence[int]) -> bool:
        """Whether some non-decreasing sequence over ``table.sizes`` fits both budgets."""
        ev = _Eval(table, counts)
        tcap, mcap = self.time_cap, self.money_cap
        if ev.low_t[0][0] * _SAFE > tcap or ev.low_c[0][0] * _SAFE > mcap:
            return False
        rows, low_t, low_c = ev.rows, ev.low_t, ev.low_c
        m = len(table.sizes)
        last = len(rows) - 1

        def rec(k: int, prev: int, t: float, c: float) -> bool:
            row, nt, nc = rows[k], low_t[k + 1], low_c[k + 1]
            for i in range(max(prev, 0), m):
                ts, cs, to, co = row[i]
                if i == prev:
                    tt, cc = t + ts, c + cs
                else:
                    tt, cc = t + to, c + co
                if k == last:
                    if tt <= tcap and cc <= mcap:
                        return True
                elif (tt + nt[i]) * _SAFE <= tcap and (cc + nc[i]) * _SAFE <= mcap:
                    if rec(k + 1, i, tt, cc):
                        return True
            return False

        return rec(0, -1, 0.0, 0.0)

    def best_sequence(
        self,
        table: _Table,
        rungs: tuple[int, ...],
        counts: tuple[int, ...],
        best: _Best,
        head: tuple,
        tail: tuple,
        eta: int,
        finalists: int,
    ) -> None:
        """Offer to ``best`` every sequence over ``table.sizes`` that fits both budgets, by the
        key ``head + (round(cost, 9), wide, sum W, time, K, W sequence) + tail``.

        Cuts rely on every key already in ``best`` having the same ``head``.
        """
        ev = _Eval(table, counts)
        tcap, mcap = self.time_cap, self.money_cap
        if ev.low_t[0][0] * _SAFE > tcap or ev.low_c[0][0] * _SAFE > mcap:
            return
        rows, low_t, low_c = ev.rows, ev.low_t, ev.low_c
        sizes = table.sizes
        smallest = sizes[0]
        m = len(sizes)
        n_rounds = len(rows)
        last = n_rounds - 1
        ws = [0] * n_rounds

        def rec(k: int, prev: int, t: float, c: float, wide: int, sum_w: int) -> None:
            row, nt, nc = rows[k], low_t[k + 1], low_c[k + 1]
            rest = last - k
            for i in range(max(prev, 0), m):
                ts, cs, to, co = row[i]
                if i == prev:
                    tt, cc = t + ts, c + cs
                else:
                    tt, cc = t + to, c + co
                low = (cc + nc[i]) * _SAFE
                if (tt + nt[i]) * _SAFE > tcap or low > mcap:
                    continue
                w = sizes[i]
                is_wide = w > smallest
                wide2 = wide + 1 if is_wide else wide
                sum2 = sum_w + w
                if best.key is not None:
                    if low > best.cost + _COST_EPS:
                        continue  # every completion rounds to a higher cost
                    if low >= best.cost and (wide2 + (rest if is_wide else 0), sum2 + rest * w) > (
                        best.wide,
                        best.sum_w,
                    ):
                        continue  # at best an equal rounded cost, and a worse tie-break
                ws[k] = w
                if k < last:
                    rec(k + 1, i, tt, cc, wide2, sum2)
                elif tt <= tcap and cc <= mcap:
                    seq = tuple(ws)
                    key = head + (round(cc, 9), wide2, sum2, tt, n_rounds, seq) + tail
                    if best.key is None or key < best.key:
                        best.key, best.cost, best.wide, best.sum_w = key, cc, wide2, sum2
                        best.choice = _Choice(rungs, seq, counts, tt, cc, eta, finalists)

        rec(0, -1, 0.0, 0.0, 0, 0)

    def closest(self, table: _Table, counts: Sequence[int], best: list) -> None:
        """Update ``best = [ratios]`` with the sequence whose worse overshoot
        ``max(time / limit, cost / limit)`` is the smallest; on a tie the first found stays."""
        ev = _Eval(table, counts)
        rows, low_t, low_c = ev.rows, ev.low_t, ev.low_c
        tl, ml = self.inputs.time_limit_s, self.inputs.money_limit_usd
        m = len(table.sizes)
        last = len(rows) - 1

        def rec(k: int, prev: int, t: float, c: float) -> None:
            row, nt, nc = rows[k], low_t[k + 1], low_c[k + 1]
            for i in range(max(prev, 0), m):
                ts, cs, to, co = row[i]
                if i == prev:
                    tt, cc = t + ts, c + cs
                else:
                    tt, cc = t + to, c + co
                if best:
                    bound = max(_ratio((tt + nt[i]) * _SAFE, tl), _ratio((cc + nc[i]) * _SAFE, ml))
                    if bound >= max(best[0]):
                        continue
                if k < last:
                    rec(k + 1, i, tt, cc)
                else:
                    ratios = (_ratio(tt, tl), _ratio(cc, ml))
                    if not best or max(ratios) < max(best[0]):
                        best[:] = [ratios]

        rec(0, -1, 0.0, 0.0)


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
    eta: int
    finalists: int


# -- the search ---------------------------------------------------------------------------------


def _groups(inputs: PlannerInputs, target: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """``(eta rank, eta, rungs)`` for every eta searched and every schedule reaching ``target``
    (fewest rounds first). A one-round schedule does not depend on ``eta``: listed once."""
    floor = 1 if inputs.min_epochs is None else inputs.min_epochs
    out = []
    seen_single = False
    for rank, eta in enumerate(inputs.eta_choices):
        for rungs in rung_schedules(min(floor, target), target, eta):
            if len(rungs) == 1:
                if seen_single:
                    continue
                seen_single = True
            out.append((rank, eta, tuple(rungs)))
    return out


def _fits_somewhere(inputs: PlannerInputs, model: _CostModel, target: int, n: int) -> bool:
    """Whether ``n`` configurations fit with the best trained to ``target`` (fewest finalists)."""
    finalists = inputs.finalist_choices[0]
    for _, eta, rungs in _groups(inputs, target):
        if model.exists(model.plan_table(rungs), _counts(n, len(rungs), eta, finalists)):
            return True
    return False


def _search(inputs: PlannerInputs, model: _CostModel, target: int) -> _Choice | None:
    """Best plan whose final survivor reaches ``target``, by the objective (b)-(d)."""
    groups = _groups(inputs, target)
    n_max = inputs.max_configurations

    # (b): the most configurations. Fewest finalists allow the most (counts grow with them).
    fewest = inputs.finalist_choices[0]
    n_best = 0
    for _, eta, rungs in groups:
        if n_best >= n_max:
            break
        table = model.plan_table(rungs)
        k = len(rungs)
        lo = n_best + 1
        counts = _counts(lo, k, eta, fewest)
        if table.cost_floor(counts) * _SAFE > model.money_cap or not model.exists(table, counts):
            continue
        if model.exists(table, _counts(n_max, k, eta, fewest)):
            n_best = n_max
            continue
        hi = n_max - 1  # lo fits, n_max does not
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if model.exists(table, _counts(mid, k, eta, fewest)):
                lo = mid
            else:
                hi = mid - 1
        n_best = lo
    if n_best == 0:
        return None

    # (b'), (c), (d) among the plans of n_best configurations, the cheapest-looking first so
    # that the bounds cut early.
    cap = max(inputs.finalist_choices)
    candidates = []
    for rank, eta, rungs in groups:
        table = model.plan_table(rungs)
        seen: set[tuple[int, ...]] = set()
        for finalists in inputs.finalist_choices:
            counts = _counts(n_best, len(rungs), eta, finalists)
            if counts in seen:
                continue  # the same plan as with fewer finalists, which the tie-break prefers
            seen.add(counts)
            floor = table.cost_floor(counts) * _SAFE
            candidates.append((-min(counts[-1], cap), floor, rank, eta, rungs, finalists, counts, table))
    candidates.sort(key=lambda c: (c[0], c[1]))
    best = _Best()
    for neg_hedge, floor, rank, eta, rungs, finalists, counts, table in candidates:
        if best.key is not None and (neg_hedge > best.key[0] or floor > best.cost + _COST_EPS):
            break  # fewer finalists, or (sorted by floor) no cheaper plan, than one already found
        model.best_sequence(table, rungs, counts, best, (neg_hedge,), (rank, finalists), eta, finalists)
    return best.choice


def _explore_first(inputs: PlannerInputs, model: _CostModel, minimum: int,
                   target_floor: int = 1) -> tuple[int, _Choice] | None:
    """The largest target ``T < max_epochs`` at which ``minimum`` configurations fit, with the
    best plan for it; ``None`` when not even ``T = 1`` allows that many. Whether ``minimum``
    fit is not monotone in ``T`` (the rung schedules change with it), so a binary search finds
    one such ``T`` and a scan down from ``max_epochs - 1`` finds the largest, stopping at the
    first that fits."""

    def enough(target: int) -> bool:
        return _fits_somewhere(inputs, model, target, minimum)

    if inputs.max_epochs < 2 or not enough(1):
        return None
    lo, hi = 1, inputs.max_epochs - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if enough(mid):
            lo = mid
        else:
            hi = mid - 1
    target = lo
    for t in range(inputs.max_epochs - 1, lo, -1):
        if enough(t):
            target = t
            break
    if target < target_floor:
        return None  # too short to rank anything: explore fewer, train them longer
    found = _search(inputs, model, target)
    assert found is not None and found.counts[0] >= minimum
    return target, found


def _explore_target_floor(inputs: PlannerInputs) -> int:
    """The shortest target at which an exploration-first plan explores ``min_configurations``:
    ``max_epochs // eta`` (the last rung but one of the full schedule), at least 1. Below it,
    rankings are mostly noise and the answer is far from trained (measured on the policy
    sweep: 9 configurations stopped at epoch 2 lost to 2-4 configurations trained to 20)."""
    return max(1, inputs.max_epochs // (inputs.eta or _DEFAULT_ETA))


def _one_fits(inputs: PlannerInputs, model: _CostModel, target: int) -> bool:
    """Whether one configuration can reach ``target`` epochs within budget."""
    return _fits_somewhere(inputs, model, target, 1)


def _binding_for_target(inputs: PlannerInputs, model: _CostModel, target: int, n: int = 1) -> str:
    """The budget that stops ``n`` configurations (default one) from reaching ``target`` epochs.

    Takes the round sequence that comes closest (smallest worse overshoot) and names the
    budget it overshoots more.
    """
    best: list = []
    finalists = inputs.finalist_choices[0]
    for _, eta, rungs in _groups(inputs, target):
        model.closest(model.plan_table(rungs), _counts(n, len(rungs), eta, finalists), best)
    if not best or max(best[0]) <= 1.0:
        return "none"
    return "time" if best[0][0] >= best[0][1] else "money"


def _binding_for_more(inputs: PlannerInputs, model: _CostModel, choice: _Choice) -> str:
    """What stops ``n_1 + 1`` configurations on the chosen round sequence."""
    n = choice.counts[0]
    if n >= inputs.max_configurations:
        return "max_configurations"
    rows = model.prepare(choice.rungs, choice.world_sizes, 0, inputs.startup_s, None)
    counts = _counts(n + 1, len(choice.rungs), choice.eta, choice.finalists)
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


def _choice_words(inputs: PlannerInputs, choice: _Choice, finalists_chosen: bool) -> str:
    """``eta E, F finalist(s)``, each marked ``chosen`` when the planner chose it."""
    eta = f"eta {choice.eta}" + (" (chosen)" if inputs.eta is None else "")
    fin = f"{choice.finalists} finalist" + ("s" if choice.finalists != 1 else "")
    fin += " (chosen)" if finalists_chosen or inputs.num_finalists is None else ""
    return f"{eta}, {fin}"


def _empty_plan(inputs: PlannerInputs, binding: str, message: str) -> Plan:
    return Plan(
        rounds=(),
        num_configurations=0,
        eta=inputs.eta or 0,
        target_epochs=0,
        feasible=False,
        predicted_time_s=0.0,
        predicted_cost_usd=0.0,
        binding=binding,
        message=message,
        num_finalists=inputs.num_finalists or 0,
    )


def _usable_or_raise(inputs: PlannerInputs) -> tuple[int, ...]:
    usable = inputs.usable_world_sizes
    if not usable:
        cap = f"num_slots ({inputs.num_slots})"
        if inputs.max_world_size is not None:
            cap += f" and max_world_size ({inputs.max_world_size})"
        raise ConfigError("world_size_ladder", list(inputs.world_size_ladder), f"at least one world size <= {cap}")
    return usable


def plan(inputs: PlannerInputs) -> Plan:
    """Choose ``n_1``, the rungs and a non-decreasing ``W_k`` per round, and ``eta`` and the
    number of finalists when the inputs leave them to the planner (see module notes).

    Returns:
        A :class:`Plan` (times in seconds, money in USD). ``feasible=True``: its final survivor
        reaches ``max_epochs``, it explores at least ``min_configurations`` and its
        predictions fit ``safety_fraction`` of both budgets. Otherwise, when at least
        ``min_configurations`` fit at some smaller target, the exploration-first plan (that
        many or more configurations, the best trained to the most epochs that allows,
        ``feasible=False``); else the plan that trains the final survivor fully with fewer
        configurations (``feasible=True``, with a warning); else the best-effort plan (the most
        epochs one configuration can reach within budget, ``feasible=False``, a loud message);
        or a plan with no rounds when not even one epoch of one configuration fits.
        Never raises for budgets that are too small.

    Raises:
        ConfigError: no world size of the ladder is ``<= num_slots`` (and ``<= max_world_size``).
    """
    if inputs.num_finalists is None:
        _usable_or_raise(inputs)
        minimum = inputs.effective_min_configurations
        for f in FINALIST_CHOICES[:-1]:
            p = _plan(dataclasses.replace(inputs, num_finalists=f), True)
            if p.num_configurations >= minimum:
                return p
        return _plan(dataclasses.replace(inputs, num_finalists=FINALIST_CHOICES[-1]), True)
    return _plan(inputs, False)


def _plan(inputs: PlannerInputs, finalists_chosen: bool) -> Plan:
    """:func:`plan` for a fixed or open ``num_finalists``; ``finalists_chosen`` marks the
    number of finalists as the planner's choice in the message."""
    usable = _usable_or_raise(inputs)
    model = _CostModel(inputs, usable)
    choice = _search(inputs, model, inputs.max_epochs)
    minimum = inputs.effective_min_configurations
    # Exploration first (DESIGN.md, "starved exploration"): rather than train one or two
    # configurations fully, explore `minimum` and stop the best at the most epochs that allows.
    # When not even that many fit, the same with a smaller floor (`minimum // eta`, down to 2),
    # unless the fully trained plan already explores that many.
    floor = minimum
    while choice is None or choice.counts[0] < floor:
        # min_configurations stopped below max_epochs // eta is mostly noise: explore fewer
        # and train them longer (the smaller floors accept any target).
        explored = _explore_first(inputs, model, floor, _explore_target_floor(inputs) if floor == minimum else 1)
        if explored is not None:
            target, echoice = explored
            binding = _binding_for_target(inputs, model, target + 1, floor)
            text = (
                f"EXPLORATION FIRST: {_budget_words(inputs, binding)} cannot train "
                f"min_configurations={minimum} configurations with the best to max_epochs "
                f"({inputs.max_epochs})"
                + ("" if floor == minimum else
                   f", nor explore them to {_explore_target_floor(inputs)} epochs (max_epochs // eta), "
                   f"so it explores fewer")
                + f"; this plan explores {echoice.counts[0]} configurations and "
                f"trains the best to {target} of {inputs.max_epochs} epochs "
                f"({_choice_words(inputs, echoice, finalists_chosen)}; "
                f"{_shape(echoice.rungs, echoice.counts, echoice.world_sizes)}); "
                f"{_summary(inputs, echoice.time_s, echoice.cost_usd)}."
            )
            return _plan_from_choice(inputs, model, echoice, False, binding, text)
        smaller = floor // (inputs.eta or _DEFAULT_ETA)
        if smaller < 2:
            break
        floor = smaller
    if choice is not None:
        binding = _binding_for_more(inputs, model, choice)
        n = choice.counts[0]
        text = (
            f"SEER plan: {n} configuration{'' if n == 1 else 's'} in {len(choice.rungs)} "
            f"round{'' if len(choice.rungs) == 1 else 's'} "
            f"({_choice_words(inputs, choice, finalists_chosen)}; "
            f"{_shape(choice.rungs, choice.counts, choice.world_sizes)}), the best trained to "
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
        f"{inputs.max_epochs} epochs ({_choice_words(inputs, choice, finalists_chosen)}; "
        f"{_shape(choice.rungs, choice.counts, choice.world_sizes)}); "
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
        eta=choice.eta,
        target_epochs=choice.rungs[-1],
        feasible=feasible,
        predicted_time_s=sum(r.predicted_duration_s for r in rounds),
        predicted_cost_usd=sum(r.predicted_cost_usd for r in rounds),
        binding=binding,
        message=message,
        num_finalists=choice.finalists,
    )


# -- re-planning a run in progress ---------------------------------------------------------------


def first_round_overhead_s(inputs: PlannerInputs, world_size: int, previous_world_size: int | None) -> float:
    """``overhead_k`` (seconds) of the first round a plan or re-plan launches at ``world_size``
    (module notes, cost model): ``startup_s`` when no job has run (``previous_world_size``
    ``None`` or 0), ``relaunch_s`` at the previous round's ``W``, ``resize_s`` at another."""
    if not previous_world_size:
        return inputs.startup_s
    return inputs.relaunch_s if world_size == previous_world_size else inputs.resize_s


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
            ``money_budget_usd``, seconds and USD) and the latest measured ``epoch_time_s``
            (the mean over the trials carried; ``wave_epoch_time_s``, their slowest, for wall
            clock), scaling and overheads. Its ``max_epochs``, ``min_epochs``, ``max_configurations``
            and ``min_configurations`` are not used; ``eta`` and ``num_finalists`` are only
            echoed in the result (``0`` for ``None``): pass the plan's to keep them on record.
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
        round fits, else the budget the next unplanned round breaks. Costs use the inputs'
        billing rounding.

    Raises:
        ConfigError: malformed ``rungs``, ``survivors``, ``current_epoch`` or
            ``current_world_size``, or no world size of the ladder ``<= num_slots`` (and
            ``<= max_world_size``); ``planned_world_sizes`` of the wrong length, not
            non-decreasing or not usable.
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
    eta_echo = inputs.eta or 0
    finalists_echo = inputs.num_finalists or 0

    if not rungs:
        return Plan(
            (), 0, eta_echo, current_epoch, True, 0.0, 0.0, "none", "Nothing left to plan.", finalists_echo
        )

    candidates = tuple(w for w in usable if w >= current_world_size) or usable
    previous_w: int | None = current_world_size or None

    firsts = tuple(first_round_overhead_s(inputs, w, previous_w) for w in candidates)

    def best_prefix(length: int) -> _Choice | None:
        sub_rungs, sub_counts = rungs[:length], survivors[:length]
        best = _Best()
        model.best_sequence(
            model.table(sub_rungs, current_epoch, candidates, firsts), sub_rungs, sub_counts, best, (), (),
            eta_echo, finalists_echo,
        )
        return best.choice

    def closest_binding(length: int) -> str:
        best: list = []
        model.closest(model.table(rungs[:length], current_epoch, candidates, firsts), survivors[:length], best)
        return "time" if best[0][0] >= best[0][1] else "money"

    length = len(rungs)
    choice = None
    if planned_world_sizes is not None:
        ws = tuple(planned_world_sizes)
        if len(ws) != len(rungs) or any(w not in usable for w in ws) or list(ws) != sorted(ws):
            raise ConfigError(
                "planned_world_sizes", list(ws), f"{len(rungs)} non-decreasing world sizes from {list(usable)}"
            )
        rows = model.prepare(rungs, ws, current_epoch, first_round_overhead_s(inputs, ws[0], previous_w), previous_w)
        time_s, cost_usd = model.totals(rows, survivors)
        if model.fits(time_s, cost_usd):
            choice = _Choice(rungs, ws, survivors, time_s, cost_usd, eta_echo, finalists_echo)
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
            eta_echo,
            current_epoch,
            False,
            0.0,
            0.0,
            binding,
            f"NO PLAN: {_budget_words(inputs, binding)} left cannot fit the next round "
            f"(to epoch {rungs[0]} with {survivors[0]} trials); the answer is the best trial "
            f"at epoch {current_epoch}.",
            finalists_echo,
        )
    rounds = model.rounds(
        choice.rungs,
        choice.world_sizes,
        choice.counts,
        current_epoch,
        first_round_overhead_s(inputs, choice.world_sizes[0], previous_w),
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
        eta=eta_echo,
        target_epochs=choice.rungs[-1],
        feasible=feasible,
        predicted_time_s=total_time,
        predicted_cost_usd=total_cost,
        binding=binding,
        message=text,
        num_finalists=finalists_echo,
    )
