"""Planning the baselines: closed-form round predictions, limits and bracket choices. Pure.

The formulas are :mod:`seer_torch.policies.costs`'s; the rules (which cluster, how many
configurations, best effort) are explained in :mod:`seer_torch.policies.baselines`' notes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from seer_torch.errors import ConfigError
from seer_torch.policies.base import PolicyContext, fixed_cluster_slots
from seer_torch.policies.costs import (
    cluster_time_limit_s,
    job_time_s,
    num_waves,
    wave_overheads_s,
    waves_cost_usd,
    waves_time_s,
    with_slack,
)
from seer_torch.policies.rungs import rung_schedule, survivor_counts

__all__ = [
    "DEFAULT_ETA", "Bracket", "PolicyBase", "RoundPrediction", "anchored_rungs", "check_rungs",
    "choose_slots", "cluster_slots", "eta_of", "hyperband_plan_on", "is_finite", "largest_fitting",
    "largest_target", "make_bracket", "money_limit", "no_plan_message", "one_bracket_plan",
    "predict_rounds", "rent_time_limit", "sha_counts", "time_limit", "uniform_world_size", "used_of_budget",
]

#: ``eta`` when the context leaves it to the policy (Li et al. 2018 and 2020 use 3 and 4).
DEFAULT_ETA = 3



# -- the closed-form predictions -----------------------------------------------------------------


@dataclass(frozen=True)
class RoundPrediction:
    """One planned round: its rung, trials, world size, waves and predicted time and cost.

    ``job_s`` is a first-wave job's seconds (later waves may pay another overhead,
    :func:`~seer_torch.policies.costs.wave_overheads_s`). ``cost_usd`` is what the round's jobs
    are billed when only held slots are billed (elastic); a fixed cluster's rent is computed
    over the whole run instead.
    """

    rung_epoch: int
    start_epoch: int
    num_trials: int
    world_size: int
    waves: int
    job_s: float
    duration_s: float
    cost_usd: float


def predict_rounds(
    context: PolicyContext,
    rungs: Sequence[int],
    counts: Sequence[int],
    world_sizes: Sequence[int],
    num_slots: int,
    start_epoch: int = 0,
    previous_world_size: int | None = None,
) -> tuple[RoundPrediction, ...]:
    """Predict each round of a successive-halving schedule (see the module notes).

    Args:
        context: the policy context (epoch time, scaling, overheads, billing).
        rungs: ``r_1 < ... < r_K``.
        counts: ``n_k`` per round.
        world_sizes: ``W_k`` per round.
        num_slots: slots the rounds may hold at once (``S``).
        start_epoch: ``r_0``.
        previous_world_size: ``W`` of the trials' previous job when they have run before: the
            first round then pays a continuation (same ``W``) or ``resize_s``; ``None``: it
            pays a first round's (:func:`~seer_torch.policies.costs.wave_overheads_s`; the
            round before it is priced as several waves).
    """
    out = []
    o = context.overheads
    prev_epoch, prev_w = start_epoch, previous_world_size
    for k, (rung, n, w) in enumerate(zip(rungs, counts, world_sizes)):
        lanes = num_slots // w
        overheads = wave_overheads_s(o, w, prev_w, k > 0 and counts[k - 1] <= lanes)
        speed = context.scaling.speedup_at(w)
        job_s, later_s = (job_time_s(x, rung - prev_epoch, context.epoch_time_s, speed) for x in overheads)
        bill = context.billing.job_cost_usd
        out.append(
            RoundPrediction(
                rung_epoch=rung,
                start_epoch=prev_epoch,
                num_trials=n,
                world_size=w,
                waves=num_waves(n, lanes),
                job_s=job_s,
                duration_s=waves_time_s(n, lanes, job_s, later_s),
                cost_usd=waves_cost_usd(n, lanes, bill(w, job_s), bill(w, later_s)),
            )
        )
        prev_epoch, prev_w = rung, w
    return tuple(out)


def time_limit(context: PolicyContext) -> float:
    return with_slack(context.safety_fraction * context.time_budget_s)


def money_limit(context: PolicyContext) -> float:
    return with_slack(context.safety_fraction * context.money_budget_usd)


def rent_time_limit(context: PolicyContext, slots: int) -> float:
    """The longest run a fixed cluster of ``slots`` slots may plan, seconds.

    The smaller of ``safety_fraction * time_budget_s`` and the longest duration ``D`` whose
    rent ``Billing.job_cost_usd(slots, D)`` fits ``safety_fraction * money_budget_usd``
    (granularity and minimum included; 1e-9 relative slack on both). ``-1.0`` when not even
    the rent's minimum fits (nothing does).
    """
    return cluster_time_limit_s(time_limit(context), money_limit(context), context.billing, slots)


def largest_fitting(fits: Callable[[int], bool], upper: int) -> int:
    """The largest ``n`` in ``[1, upper]`` with ``fits(n)``, for ``fits`` true then false as ``n``
    grows; 0 when ``fits(1)`` is false. The result always satisfies ``fits``."""
    if upper < 1 or not fits(1):
        return 0
    if fits(upper):
        return upper
    lo, hi = 1, upper - 1  # fits(lo), not fits(hi + 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def largest_target(one_fits: Callable[[int], bool], max_epochs: int) -> int:
    """The largest ``target`` in ``[1, max_epochs]`` at which one configuration fits (0: none).

    One configuration fitting ``target + 1`` fits ``target`` (module notes), so this is
    :func:`largest_fitting` over targets."""
    return largest_fitting(one_fits, max_epochs)


def anchored_rungs(context: PolicyContext, eta: int, target: int) -> tuple[int, ...]:
    """The rungs anchored at ``target`` (``max_epochs`` normally)."""
    return tuple(rung_schedule(min(context.min_epochs, target), target, eta))


def cluster_slots(context: PolicyContext) -> int:
    """``G``: :func:`~.base.fixed_cluster_slots`, except that an infinite money budget affords
    every slot (``fixed_cluster_slots`` raises ``OverflowError`` on it, and answers 1 when the
    deadline is infinite too)."""
    if math.isinf(context.money_budget_usd):
        return context.num_slots
    return fixed_cluster_slots(context)


def eta_of(context: PolicyContext) -> int:
    eta = DEFAULT_ETA if context.eta is None else context.eta
    if isinstance(eta, bool) or not isinstance(eta, int) or eta < 2:
        raise ConfigError("eta", eta, "an integer >= 2, or None for the policy's default (3)")
    return eta


def check_rungs(rungs: Sequence[int], max_epochs: int) -> None:
    if not rungs or rungs[-1] > max_epochs or any(b <= a for a, b in zip(rungs, rungs[1:])):
        raise AssertionError(f"bad rungs {tuple(rungs)} for max_epochs={max_epochs}")


def is_finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def used_of_budget(budget: float, left: float) -> float:
    """What was used of a budget since set-up (``budget`` from the context, ``left`` from a
    snapshot); 0 when the budget is infinite (its limit is too)."""
    return max(0.0, budget - left) if math.isfinite(budget) and math.isfinite(left) else 0.0


def no_plan_message(name: str, context: PolicyContext, where: str) -> str:
    return (
        f"NO PLAN: {name} cannot fit even one epoch of one configuration within the budgets "
        f"({where}; one epoch takes {context.epoch_time_s:g} s on one worker plus "
        f"{context.startup_s:g} s start-up; a plan may use "
        f"{context.safety_fraction * context.time_budget_s:g} s and "
        f"{context.safety_fraction * context.money_budget_usd:.4g} USD, safety fraction "
        f"{context.safety_fraction:g}); nothing is launched."
    )


# -- round-synchronous policies (sha, hyperband, elastic-sha, elastic-uniform) -------------------


@dataclass(frozen=True)
class Bracket:
    """One successive-halving run: rounds over ``rungs`` with ``counts[k]`` trials of
    ``world_sizes[k]`` workers; its configurations are ``first_index .. first_index + n - 1``."""

    rungs: tuple[int, ...]
    counts: tuple[int, ...]
    world_sizes: tuple[int, ...]
    first_index: int
    predictions: tuple[RoundPrediction, ...]

    @property
    def num_configurations(self) -> int:
        return self.counts[0]

    @property
    def predicted_time_s(self) -> float:
        return sum(p.duration_s for p in self.predictions)

    @property
    def predicted_cost_usd(self) -> float:
        return sum(p.cost_usd for p in self.predictions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rungs": list(self.rungs),
            "survivors": list(self.counts),
            "world_sizes": list(self.world_sizes),
            "first_index": self.first_index,
            "num_configurations": self.num_configurations,
            "predicted_time_s": self.predicted_time_s,
            "predicted_cost_usd": self.predicted_cost_usd,
            "rounds": [asdict(p) for p in self.predictions],
        }


class PolicyBase:
    """What every baseline shares: the set-up guard and the schedule's horizon (the policy's
    target epoch, once set up; ``max_epochs`` before it chose one)."""

    _ctx: PolicyContext | None
    _target: int

    def _require_setup(self) -> None:
        if self._ctx is None:
            raise RuntimeError(f"{type(self).__name__}.setup(context) must be called first")

    @property
    def schedule_epochs(self) -> int:
        self._require_setup()
        return self._target or self._ctx.max_epochs  # type: ignore[union-attr]

    def _cluster_report(self) -> dict[str, Any]:
        """The first fields of a fixed-cluster baseline's report: name, eta and cluster sizes."""
        return {
            "policy": self.name,  # type: ignore[attr-defined]
            "eta": self._eta,  # type: ignore[attr-defined]
            "cluster_slots": self._G,  # type: ignore[attr-defined]
            "affordable_slots": self._G_afford,  # type: ignore[attr-defined]
            "reserved_slots": self.reserved_slots,  # type: ignore[attr-defined]
        }


def sha_counts(n: int, num_rungs: int, eta: int) -> tuple[int, ...]:
    """A baseline bracket's trials per round: :func:`~seer_torch.policies.rungs.survivor_counts`
    with one finalist (the top ``1/eta`` of each rung survive, at least one)."""
    return survivor_counts(n, num_rungs, eta)


# Planning one successive-halving bracket on ``g`` slots at a target (sha, elastic-sha,
# elastic-uniform): ``world_sizes(g, counts)`` gives W_k, ``fits(g, predictions)`` says
# ``(time fits, money fits)``.
WorldSizes = Callable[[int, tuple[int, ...]], tuple[int, ...]]
Fits = Callable[[int, tuple[RoundPrediction, ...]], tuple[bool, bool]]


def make_bracket(
    context: PolicyContext, eta: int, g: int, world_sizes: WorldSizes, target: int, n: int
) -> Bracket:
    rungs = anchored_rungs(context, eta, target)
    counts = sha_counts(n, len(rungs), eta)
    ws = world_sizes(g, counts)
    preds = predict_rounds(context, rungs, counts, ws, g)
    return Bracket(rungs, counts, ws, 0, preds)


def plan_on_slots(
    context: PolicyContext,
    eta: int,
    g: int,
    world_sizes: WorldSizes,
    fits: Fits,
    money_monotone: bool,
) -> tuple[int, int]:
    """``(target, n)`` on ``g`` slots: the largest target one configuration reaches within the
    limits (``max_epochs`` when it can), then the most configurations at it; ``(0, 0)`` when not
    even one epoch fits."""

    def ok(target: int, n: int) -> tuple[bool, bool]:
        return fits(g, make_bracket(context, eta, g, world_sizes, target, n).predictions)

    def both(target: int, n: int) -> bool:
        t, m = ok(target, n)
        return t and m

    target = largest_target(lambda t: both(t, 1), context.max_epochs)
    if target == 0:
        return 0, 0
    if money_monotone:
        return target, largest_fitting(lambda n: both(target, n), context.max_configurations)
    n = largest_fitting(lambda n: ok(target, n)[0], context.max_configurations)
    while n > 1 and not both(target, n):
        n -= 1
    return target, max(1, n)


def choose_slots(
    options: Sequence[int], plan_on: Callable[[int], tuple[tuple, Any, bool]]
) -> tuple[int, Any] | None:
    """The cluster size and its plan (module notes, "The cluster").

    ``plan_on(g)`` returns ``(key, plan, full)``: ``key = (target, ..., g)`` ranks plans
    (``target == 0``: no plan on ``g``), ``full`` says the plan reaches ``max_epochs``. Returns
    ``options[0]`` (``G``) when its plan is full, else the option of the largest key; ``None``
    when no option has a plan."""
    best: tuple[tuple, int, Any] | None = None
    for pos, g in enumerate(options):
        key, plan, full = plan_on(g)
        if pos == 0 and full:
            return g, plan
        if key[0] > 0 and (best is None or key > best[0]):
            best = (key, g, plan)
    return None if best is None else (best[1], best[2])


def one_bracket_plan(
    name: str,
    context: PolicyContext,
    eta: int,
    options: Sequence[int],
    world_sizes: WorldSizes,
    fits: Fits,
    money_monotone: bool,
    fixed: bool,
    where: Callable[[int], str],
) -> tuple[int, list[Bracket], dict[str, Any]]:
    """``(g, brackets, facts)`` of a one-bracket policy (see the module notes)."""

    def plan_on(g: int) -> tuple[tuple, tuple, bool]:
        target, n = plan_on_slots(context, eta, g, world_sizes, fits, money_monotone)
        return (target, n, g), (target, n), target == context.max_epochs

    chosen = choose_slots(options, plan_on)
    if chosen is None:
        g = options[0]
        return g, [], {"feasible": False, "message": no_plan_message(name, context, where(g))}
    g, (target, n) = chosen
    bracket = make_bracket(context, eta, g, world_sizes, target, n)
    feasible = target == context.max_epochs
    shape = (
        f"rungs {','.join(map(str, bracket.rungs))}; trials {','.join(map(str, bracket.counts))}; "
        f"W {','.join(map(str, bracket.world_sizes))}"
    )
    predicted = (
        f"predicted {bracket.predicted_time_s:.1f} s and {bracket.predicted_cost_usd:.4g} USD of held slots"
    )
    if fixed:
        predicted = (
            f"predicted {bracket.predicted_time_s:.1f} s, rent "
            f"{context.billing.job_cost_usd(g, bracket.predicted_time_s):.4g} USD"
        )
    if feasible:
        message = f"{name}: {n} configurations on {where(g)} ({shape}); {predicted}."
    else:
        message = (
            f"BEST EFFORT: {name} cannot train even one configuration to max_epochs "
            f"({context.max_epochs}) within the budgets; this plan trains the best of {n} to only "
            f"{target} of {context.max_epochs} epochs on {where(g)} ({shape}); {predicted}."
        )
    return g, [bracket], {"feasible": feasible, "message": message}


def uniform_world_size(context: PolicyContext, slots: int, num_trials: int) -> int:
    """The largest usable world size ``<= slots // num_trials``; the smallest usable one when
    none is that small (normally 1)."""
    usable = context.usable_world_sizes
    share = slots // max(1, num_trials)
    fitting = [w for w in usable if w <= share]
    return fitting[-1] if fitting else usable[0]


# -- Hyperband's brackets ------------------------------------------------------------------------


def hyperband_bracket(
    context: PolicyContext, eta: int, rungs: tuple[int, ...], n: int, first: int, g: int
) -> Bracket:
    """SHA over ``rungs`` with ``n`` configurations from index ``first`` at ``W = 1`` on ``g`` slots."""
    ones = (1,) * len(rungs)
    preds = predict_rounds(context, rungs, sha_counts(n, len(rungs), eta), ones, g)
    return Bracket(rungs, tuple(p.num_trials for p in preds), ones, first, preds)


def hyperband_split(
    context: PolicyContext, eta: int, chosen: list[tuple[int, ...]], g: int, limit: float
) -> list[Bracket] | None:
    """The brackets ``chosen`` (most exploratory first) sharing the time ``limit`` (seconds)
    equally, what one leaves passing to the next, each with the most configurations that fit
    its share and its part of the pool (Hyperband's proportions); ``None`` when one bracket
    fits none."""
    out: list[Bracket] = []
    used_s, first = 0.0, 0
    m = len(chosen)
    # Hyperband's proportions of configurations, n_s ~ eta**s / (s + 1), over the pool.
    weights = [eta ** (len(r) - 1) / len(r) for r in chosen]
    for j, rungs in enumerate(chosen):
        left = context.max_configurations - first
        if left < 1:
            break  # the pool is spent: the remaining brackets are dropped
        pool_cap = min(left, math.ceil(context.max_configurations * weights[j] / sum(weights) - 1e-9))
        share = (limit - used_s) / (m - j) if math.isfinite(limit) else limit
        def fits(n: int, rungs: tuple[int, ...] = rungs, first: int = first, share: float = share) -> bool:
            return hyperband_bracket(context, eta, rungs, n, first, g).predicted_time_s <= share

        n = largest_fitting(fits, pool_cap)
        if n < 1:
            return None
        b = hyperband_bracket(context, eta, rungs, n, first, g)
        out.append(b)
        used_s += b.predicted_time_s
        first += n
    return out


def hyperband_plan_on(
    context: PolicyContext, eta: int, schedules: list[tuple[int, ...]], g: int
) -> tuple[tuple, tuple, bool]:
    """Hyperband's plan on ``g`` slots, for :func:`choose_slots`: the most brackets (most
    exploratory kept) that each fit a configuration, else the most exploratory bracket alone
    that does, else the ``s = 0`` bracket to the largest target that fits (best effort)."""
    limit = rent_time_limit(context, g)
    candidates = [schedules[:m] for m in range(len(schedules), 0, -1)]
    candidates += [[s] for s in schedules[1:]]
    for chosen in candidates:
        brackets = hyperband_split(context, eta, chosen, g, limit)
        if brackets is not None:
            total = sum(b.num_configurations for b in brackets)
            how = "brackets" if chosen[0] == schedules[0] else "single"
            return (context.max_epochs, len(brackets), total, g), (context.max_epochs, brackets, how), True
    target = largest_target(
        lambda t: hyperband_bracket(context, eta, (t,), 1, 0, g).predicted_time_s <= limit, context.max_epochs
    )
    if target == 0:
        return (0, 0, 0, g), (0, [], "none"), False
    n = largest_fitting(
        lambda n: hyperband_bracket(context, eta, (target,), n, 0, g).predicted_time_s <= limit,
        context.max_configurations,
    )
    best_effort = [hyperband_bracket(context, eta, (target,), n, 0, g)]
    return (target, 1, n, g), (target, best_effort, "best effort"), False
