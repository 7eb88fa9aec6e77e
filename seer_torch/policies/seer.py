"""The SEER planner: how many configurations, which rungs, and how many workers per round.

Implementation notes
--------------------
SEER (Sequential Elimination with Elastic Resources, ACM SoCC 2021) is successive halving whose
rounds may each use a different data-parallel world size ``W``. The full text of the paper is
not available to us; what follows is our reading of its idea (see docs/design.md, "The SEER
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
  ``overhead_k`` is :func:`~seer_torch.policies.costs.wave_overheads_s`: ``startup_s`` in the
  first round (its later waves at ``W = 1`` on warm workers, ``warm_start_s``, where the
  backend keeps jobs alive), a continuation when ``W_k == W_{k-1}`` (``continue_s`` for a
  kept-alive job, ``relaunch_s`` where jobs exit at every rung) and ``resize_s`` otherwise;
  the first wave and the later waves of a round may pay different overheads, so
  ``D_k = J_first + (waves_k - 1) * J_later`` (``waves_k * J_k`` below when they are equal);
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
  costs a full hour, so coarse billing favours fewer, longer jobs;
- on a cluster that rents machines (``machine_start_s`` measured, or the experiment's
  ``[resources] machine_start_s`` before any was): a round whose busy slots
  ``min(n_k, num_slots // W_k) * W_k`` exceed round ``k-1``'s needs new machines; the
  executor asks for them when round ``k-1`` starts, so they boot while it runs, and round
  ``k``'s first wave waits ``max(0, machine_start_s - D_{k-1})`` beyond its overhead, added
  to ``D_k`` (round 1, nothing held yet, waits the whole ``machine_start_s``; a re-plan's
  first round counts from the start of the round just closed, ``previous_round_s``):
  :func:`~seer_torch.policies.costs.machine_wait_s`. Wall clock only (a machine is not billed
  before it exists). Its path dependence (``D_{k-1}``) is carried by the search's depth-first
  walk; the bounds stay valid since the wait is never negative. Without it (the local
  backend) every number is as before.

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
  that diverges or collapses after its last rung, or was misranked there (docs/design.md, "Two
  traps"). Rule: the plan with two finalists when it is feasible (its finalists reach
  ``max_epochs``) and still explores at least ``min_configurations``; otherwise the plan with
  one (the policy sweep, ``scripts/bench_policies.py``, compares the choices; its figures are
  in ``docs/simulation-and-benchmarks.md``).

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
against a brute force and an exhaustive enumeration); the bounds are what keep a large search
(1000 configurations, seven world sizes, ``eta``, first rung and finalists open) well within
``seer plan``'s time (``scripts/bench_planner.py`` measures it).

When no plan reaches ``max_epochs`` within budget, the *best-effort* plan is the one whose
final survivor reaches the most epochs: the largest target ``T < max_epochs`` for which one
configuration fits is found by binary search on ``T`` (feasibility of one configuration is
treated as monotone in ``T``; the plan returned is verified within budget), then the same search
runs for ``T``. It is marked ``feasible=False`` and its message says so loudly. When not even
one configuration for one epoch fits, the plan has no rounds.

``min_configurations`` (default ``eta**2``): when fewer than that many configurations fit with
the best trained to ``max_epochs``, the plan *explores first* (docs/design.md's "starved
exploration" trap): it explores at least that many and trains the best to the largest target
``T < max_epochs`` that allows (``feasible=False``, message ``EXPLORATION FIRST``). When not
even that fits at ``T = 1``, the fully trained plan with fewer configurations stands, with a
warning.

:func:`replan` re-plans a run in progress: rungs and survivor counts are fixed, only the world
sizes of the remaining rounds are chosen (least cost among those within the remaining budgets),
and when none fits it returns the longest prefix of rounds that does.

Where the parts live: the records (:class:`PlannerInputs`, :class:`Plan`) in
:mod:`.plan_types`, the formulas in :mod:`.costs`, the branch and bound in :mod:`.plan_search`,
:func:`replan` in :mod:`.replan`; this module chooses the plan (:func:`plan`) and re-exports the
rest. Everything is pure and deterministic: no clock, no files, no processes, no torch.
"""
from __future__ import annotations

import dataclasses

from seer_torch.policies.billing import billed_seconds
from seer_torch.policies.plan_search import (
    Choice,
    SequenceModel,
    binding_for_more,
    binding_for_target,
    explore_first,
    explore_target_floor,
    one_fits,
    search,
    usable_or_raise,
)
from seer_torch.policies.plan_types import (
    BINDING_VALUES,
    DEFAULT_ETA,
    ETA_CHOICES,
    FINALIST_CHOICES,
    Plan,
    PlannerInputs,
    RoundPlan,
    budget_words,
    planner_inputs_from_context,
    shape_words,
    summary_words,
)
from seer_torch.policies.replan import first_round_overheads_s, replan

__all__ = [
    "BINDING_VALUES", "ETA_CHOICES", "FINALIST_CHOICES", "Plan", "PlannerInputs", "RoundPlan",
    "first_round_overheads_s", "plan", "planner_inputs_from_context", "replan",
]


def _choice_words(inputs: PlannerInputs, choice: Choice, finalists_chosen: bool) -> str:
    """``eta E, F finalist(s)``, each marked ``chosen`` when the planner chose it."""
    eta = f"eta {choice.eta}" + (" (chosen)" if inputs.eta is None else "")
    fin = f"at least {choice.finalists} finalist" + ("s" if choice.finalists != 1 else "")
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
        usable_or_raise(inputs)
        minimum = inputs.effective_min_configurations
        for f in FINALIST_CHOICES[:-1]:
            p = _plan(dataclasses.replace(inputs, num_finalists=f), True)
            if p.num_configurations >= minimum:
                return p
        return _plan(dataclasses.replace(inputs, num_finalists=FINALIST_CHOICES[-1]), True)
    return _plan(inputs, False)


def _plan(inputs: PlannerInputs, finalists_chosen: bool) -> Plan:
    """:func:`plan` for a fixed or open ``num_finalists``; ``finalists_chosen`` marks the
    number of finalists as the planner's choice in the message. In order: the exploration-first
    plan when the fully trained one explores too few, else the fully trained plan, else the
    best-effort plan (or no plan)."""
    usable = usable_or_raise(inputs)
    model = SequenceModel(inputs, usable)
    choice = search(inputs, model, inputs.max_epochs)
    explored = _exploration_first_plan(inputs, model, choice, finalists_chosen)
    if explored is not None:
        return explored
    if choice is not None:
        return _trained_plan(inputs, model, choice, finalists_chosen)
    return _best_effort_plan(inputs, model, finalists_chosen)


def _exploration_first_plan(
    inputs: PlannerInputs, model: SequenceModel, choice: Choice | None, finalists_chosen: bool
) -> Plan | None:
    """Exploration first (docs/design.md, "starved exploration"): rather than train one or two
    configurations fully, explore ``min_configurations`` and stop the best at the most epochs
    that allows. When not even that many fit, the same with a smaller floor (``minimum // eta``,
    down to 2), unless the fully trained ``choice`` already explores that many. ``None``: the
    fully trained plan stands (or none fits)."""
    minimum = inputs.effective_min_configurations
    floor = minimum
    while choice is None or choice.counts[0] < floor:
        # min_configurations stopped below max_epochs // eta is mostly noise: explore fewer
        # and train them longer (the smaller floors accept any target).
        target_floor = explore_target_floor(inputs) if floor == minimum else 1
        explored = explore_first(inputs, model, floor, target_floor)
        if explored is not None:
            target, echoice = explored
            binding = binding_for_target(inputs, model, target + 1, floor)
            text = (
                f"EXPLORATION FIRST: {budget_words(inputs, binding)} cannot train "
                f"min_configurations={minimum} configurations with the best to max_epochs "
                f"({inputs.max_epochs})"
                + ("" if floor == minimum else
                   f", nor explore them to {explore_target_floor(inputs)} epochs (max_epochs // eta), "
                   f"so it explores fewer")
                + f"; this plan explores {echoice.counts[0]} configurations and "
                f"trains the best to {target} of {inputs.max_epochs} epochs "
                f"({_choice_words(inputs, echoice, finalists_chosen)}; "
                f"{shape_words(echoice.rungs, echoice.counts, echoice.world_sizes)}); "
                f"{summary_words(inputs, echoice.time_s, echoice.cost_usd)}."
            )
            return _plan_from_choice(inputs, model, echoice, False, binding, text)
        smaller = floor // (inputs.eta or DEFAULT_ETA)
        if smaller < 2:
            break
        floor = smaller
    return None


def _trained_plan(
    inputs: PlannerInputs, model: SequenceModel, choice: Choice, finalists_chosen: bool
) -> Plan:
    """The plan whose best configuration trains to ``max_epochs`` (with a warning when it
    explores fewer than ``min_configurations``)."""
    minimum = inputs.effective_min_configurations
    binding = binding_for_more(inputs, model, choice)
    n = choice.counts[0]
    text = (
        f"SEER plan: {n} configuration{'' if n == 1 else 's'} in {len(choice.rungs)} "
        f"round{'' if len(choice.rungs) == 1 else 's'} "
        f"({_choice_words(inputs, choice, finalists_chosen)}; "
        f"{shape_words(choice.rungs, choice.counts, choice.world_sizes)}), the best trained to "
        f"{inputs.max_epochs} epochs; {summary_words(inputs, choice.time_s, choice.cost_usd)}; "
        f"more configurations are limited by {binding}."
    )
    if n < minimum:
        text += (
            f" WARNING: only {n} configurations fit, fewer than min_configurations={minimum}: "
            "exploration is starved; raise the budgets or lower max_epochs."
        )
    return _plan_from_choice(inputs, model, choice, True, binding, text)


def _best_effort_plan(inputs: PlannerInputs, model: SequenceModel, finalists_chosen: bool) -> Plan:
    """Not one configuration reaches ``max_epochs``: the most epochs one can reach (binary
    search on the target), or no plan when not even one epoch fits."""
    if not one_fits(inputs, model, 1):
        binding = binding_for_target(inputs, model, 1)
        billing = _billing_cause(inputs) if binding == "money" else None
        if billing is not None:
            return _empty_plan(inputs, binding, f"NO PLAN: {billing}")
        return _empty_plan(
            inputs,
            binding,
            f"NO PLAN: {budget_words(inputs, binding)} is too short for even one epoch of one "
            f"configuration (one epoch takes {inputs.epoch_time_s:.3g} s on one worker plus "
            f"{inputs.startup_s:.1f} s start-up); a plan may use {inputs.time_limit_s:.1f} s and "
            f"{inputs.money_limit_usd:.4g} USD (safety fraction {inputs.safety_fraction:g}).",
        )
    lo, hi = 1, inputs.max_epochs - 1  # lo fits, max_epochs does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if one_fits(inputs, model, mid):
            lo = mid
        else:
            hi = mid - 1
    choice = search(inputs, model, lo)
    assert choice is not None, "one configuration fits the target by the binary search"
    binding = binding_for_target(inputs, model, lo + 1)
    n = choice.counts[0]
    who = "its only configuration" if n == 1 else f"the best of {n} configurations"
    text = (
        f"BEST EFFORT: {budget_words(inputs, binding)} is too short for even one fully trained "
        f"configuration ({inputs.max_epochs} epochs); this plan trains {who} to only {lo} of "
        f"{inputs.max_epochs} epochs ({_choice_words(inputs, choice, finalists_chosen)}; "
        f"{shape_words(choice.rungs, choice.counts, choice.world_sizes)}); "
        f"{summary_words(inputs, choice.time_s, choice.cost_usd)}."
    )
    return _plan_from_choice(inputs, model, choice, False, binding, text)


def _billing_cause(inputs: PlannerInputs) -> str | None:
    """Why not one epoch of one configuration fits the money, when the cloud's billing rounding
    is the cause: the one job that epoch needs (one worker, start-up and an epoch) fits the
    money a plan may use when billed exactly, but not as the billing bills it (its minimum, or
    its granularity). ``None`` when it would not fit even billed exactly (the money budget is
    the cause), or when it fits either way."""
    held_s = inputs.startup_s + inputs.epoch_time_s
    per_s = inputs.price_usd_per_slot_hour / 3600
    exact_usd = per_s * held_s
    billed_s = billed_seconds(held_s, inputs.billing_granularity_s, inputs.billing_minimum_s)
    limit = inputs.money_limit_usd
    if not exact_usd <= limit < per_s * billed_s:
        return None
    if billed_s <= inputs.billing_minimum_s:
        field = "budget.billing_minimum_s"
        rule = (f"the billing minimum ({field} = {inputs.billing_minimum_s:g} s, billed for every job "
                "however short)")
    else:
        field = "budget.billing_granularity_s"
        rule = (f"the billing granularity ({field} = {inputs.billing_granularity_s:g} s: every job is billed "
                "in whole multiples of it)")
    return (
        f"{rule} makes one job of one worker cost {per_s * billed_s:.4g} USD ({billed_s:g} s at "
        f"{inputs.price_usd_per_slot_hour:g} USD/slot-hour), more than a plan may use of the money budget "
        f"({limit:.4g} USD of {inputs.money_budget_usd:g} USD, safety fraction {inputs.safety_fraction:g}); "
        f"billed exactly, one epoch of one configuration ({inputs.epoch_time_s:.3g} s on one worker plus "
        f"{inputs.startup_s:.1f} s start-up) would cost {exact_usd:.4g} USD. One job needs "
        f"{per_s * billed_s / inputs.safety_fraction:.4g} USD of money budget left: raise the money budget, "
        f"or lower {field}."
    )


def _plan_from_choice(
    inputs: PlannerInputs,
    model: SequenceModel,
    choice: Choice,
    feasible: bool,
    binding: str,
    message: str,
) -> Plan:
    first = first_round_overheads_s(inputs, choice.world_sizes[0], None)
    rounds = model.rounds(choice.rungs, choice.world_sizes, choice.counts, 0, first, None)
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
