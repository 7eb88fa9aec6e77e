"""Re-planning a SEER run in progress: world sizes for the rounds left (:func:`replan`).

The rungs and survivor counts are fixed; only the world sizes of the remaining rounds are
chosen (least cost among those within the budgets left), and when none fits, the longest
prefix of rounds that does. The cost model is :mod:`seer_torch.policies.costs`; the search is
:mod:`seer_torch.policies.plan_search`. Pure and deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from seer_torch.errors import ConfigError
from seer_torch.policies.costs import busy_slots, wave_overheads_s
from seer_torch.policies.plan_search import Best, Choice, SequenceModel, usable_or_raise
from seer_torch.policies.plan_types import (
    Plan,
    PlannerInputs,
    budget_words,
    is_int,
    shape_words,
    summary_words,
)

__all__ = ["first_round_overheads_s", "replan"]


def first_round_overheads_s(
    inputs: PlannerInputs,
    world_size: int,
    previous_world_size: int | None,
    previous_num_trials: int | None = None,
) -> tuple[float, float]:
    """``overhead_k`` (seconds) of the first round a plan or re-plan launches at ``world_size``,
    ``(first wave, later waves)`` (module notes, cost model;
    :func:`~seer_torch.policies.costs.wave_overheads_s`): a first round's when no job has run
    (``previous_world_size`` ``None`` or 0), else after a round at ``previous_world_size``
    with ``previous_num_trials`` trials (``None``: not known, priced as several waves)."""
    previous = previous_world_size or None
    in_one_wave = (
        previous is not None
        and previous_num_trials is not None
        and previous_num_trials <= inputs.num_slots // previous
    )
    return wave_overheads_s(inputs.overheads, world_size, previous, in_one_wave)


def replan(
    inputs: PlannerInputs,
    rungs: Sequence[int],
    survivors: Sequence[int],
    current_epoch: int,
    current_world_size: int,
    *,
    first_round_index: int = 1,
    planned_world_sizes: Sequence[int] | None = None,
    previous_num_trials: int | None = None,
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
        previous_num_trials: trials the last round ran (``None``: not known): whether it ran in
            one wave, so that every survivor's kept-alive job waits at the rung
            (:func:`first_round_overheads_s`), and the slots it held: a first round left that
            holds more waits for machines, ``max(0, inputs.machine_start_s -
            inputs.previous_round_s)`` (:func:`~seer_torch.policies.costs.machine_wait_s`).

    Returns:
        The cheapest plan whose remaining rounds all fit within ``safety_fraction`` of the
        budgets left, with ``W`` non-decreasing and ``>= current_world_size`` (when no usable
        world size is that large, any usable one). When none fits, the longest prefix of
        rounds that fits, ``feasible=False``; no rounds when not even the next one fits.
        The first remaining round pays :func:`first_round_overheads_s` (a continuation when its
        ``W`` equals ``current_world_size``, ``resize_s`` otherwise). ``binding`` is ``"none"`` when every
        round fits, else the budget the next unplanned round breaks. Costs use the inputs'
        billing rounding.

    Raises:
        ConfigError: malformed ``rungs``, ``survivors``, ``current_epoch`` or
            ``current_world_size``, or no world size of the ladder ``<= num_slots`` (and
            ``<= max_world_size``); ``planned_world_sizes`` of the wrong length, not
            non-decreasing or not usable.
    """
    rungs, survivors = tuple(rungs), tuple(survivors)
    _check_replan_args(rungs, survivors, current_epoch, current_world_size, first_round_index)
    usable = usable_or_raise(inputs)
    left = _RoundsLeft.build(inputs, usable, rungs, survivors, current_epoch, current_world_size,
                             previous_num_trials)
    if not rungs:
        return Plan(
            (), 0, left.eta_echo, current_epoch, True, 0.0, 0.0, "none", "Nothing left to plan.",
            left.finalists_echo,
        )
    choice = None
    if planned_world_sizes is not None:
        choice = left.as_planned(tuple(planned_world_sizes), usable)
    length = len(rungs)
    if choice is None:
        choice = left.best_prefix(length)
    feasible = choice is not None
    while choice is None and length > 1:
        length -= 1
        choice = left.best_prefix(length)
    if choice is None:
        return left.no_plan()
    return left.to_plan(choice, feasible, length, first_round_index)


def _check_replan_args(
    rungs: tuple[int, ...], survivors: tuple[int, ...], current_epoch: int, current_world_size: int,
    first_round_index: int,
) -> None:
    """:func:`replan`'s argument checks (its ``Raises``)."""
    if not is_int(current_epoch) or current_epoch < 0:
        raise ConfigError("current_epoch", current_epoch, "an integer >= 0")
    if not is_int(current_world_size) or current_world_size < 0:
        raise ConfigError("current_world_size", current_world_size, "an integer >= 0 (0: not started)")
    if not is_int(first_round_index) or first_round_index < 1:
        raise ConfigError("first_round_index", first_round_index, "an integer >= 1")
    previous = current_epoch
    for r in rungs:
        if not is_int(r) or r <= previous:
            raise ConfigError(
                "rungs", list(rungs), f"strictly increasing integers > current_epoch ({current_epoch})"
            )
        previous = r
    if len(survivors) != len(rungs) or any(not is_int(n) or n < 1 for n in survivors):
        raise ConfigError("survivors", list(survivors), f"{len(rungs)} integers >= 1, one per rung")
    if any(b > a for a, b in zip(survivors, survivors[1:])):
        raise ConfigError("survivors", list(survivors), "a non-increasing sequence")


@dataclass(frozen=True)
class _RoundsLeft:
    """The rounds left of a re-plan and the search over their world sizes: each a candidate
    ``>= current_world_size`` (any usable one when none is), the first paying
    :func:`first_round_overheads_s`."""

    inputs: PlannerInputs
    model: SequenceModel
    rungs: tuple[int, ...]
    survivors: tuple[int, ...]
    current_epoch: int
    candidates: tuple[int, ...]
    firsts: tuple[tuple[float, float], ...]
    previous_w: int | None
    previous_n: int | None
    eta_echo: int
    finalists_echo: int

    @classmethod
    def build(cls, inputs: PlannerInputs, usable: tuple[int, ...], rungs: tuple[int, ...],
              survivors: tuple[int, ...], current_epoch: int, current_world_size: int,
              previous_num_trials: int | None) -> _RoundsLeft:
        candidates = tuple(w for w in usable if w >= current_world_size) or usable
        previous_w: int | None = current_world_size or None
        firsts = tuple(
            first_round_overheads_s(inputs, w, previous_w, previous_num_trials) for w in candidates
        )
        # the last round's busy slots: a round left that holds more waits for machines
        previous_busy = (0 if previous_w is None else
                         busy_slots(inputs.num_slots if previous_num_trials is None else previous_num_trials,
                                    previous_w, inputs.num_slots))
        model = SequenceModel(inputs, usable, previous_busy)
        return cls(inputs, model, rungs, survivors, current_epoch, candidates, firsts,
                   previous_w, previous_num_trials, inputs.eta or 0, inputs.num_finalists or 0)

    def first_overheads(self, world_size: int) -> tuple[float, float]:
        """:func:`first_round_overheads_s` of the first round left at ``world_size``."""
        return first_round_overheads_s(self.inputs, world_size, self.previous_w, self.previous_n)

    def as_planned(self, ws: tuple[int, ...], usable: tuple[int, ...]) -> Choice | None:
        """The planned world sizes ``ws`` when every round left fits with them, else ``None``.

        Raises:
            ConfigError: ``ws`` of the wrong length, not non-decreasing or not usable.
        """
        rungs, model = self.rungs, self.model
        if len(ws) != len(rungs) or any(w not in usable for w in ws) or list(ws) != sorted(ws):
            raise ConfigError(
                "planned_world_sizes", list(ws),
                f"{len(rungs)} non-decreasing world sizes from {list(usable)}",
            )
        rows = model.prepare(rungs, ws, self.current_epoch, self.first_overheads(ws[0]), self.previous_w,
                             self.survivors)
        time_s, cost_usd = model.totals(rows, self.survivors)
        if model.fits(time_s, cost_usd):
            return Choice(rungs, ws, self.survivors, time_s, cost_usd, self.eta_echo, self.finalists_echo)
        return None

    def best_prefix(self, length: int) -> Choice | None:
        """The cheapest world sizes of the first ``length`` rounds left that fit, or ``None``."""
        sub_rungs, sub_counts = self.rungs[:length], self.survivors[:length]
        best = Best()
        table = self.model.table(sub_rungs, self.current_epoch, self.candidates, self.firsts)
        self.model.best_sequence(
            table, sub_rungs, sub_counts, best, (), (), self.eta_echo, self.finalists_echo
        )
        return best.choice

    def closest_binding(self, length: int) -> str:
        """The budget the closest sequence of the first ``length`` rounds overshoots more."""
        best: list = []
        table = self.model.table(self.rungs[:length], self.current_epoch, self.candidates, self.firsts)
        self.model.closest(table, self.survivors[:length], best)
        return "time" if best[0][0] >= best[0][1] else "money"

    def no_plan(self) -> Plan:
        """No round fits, not even the next one."""
        binding = self.closest_binding(1)
        return Plan(
            (),
            0,
            self.eta_echo,
            self.current_epoch,
            False,
            0.0,
            0.0,
            binding,
            f"NO PLAN: {budget_words(self.inputs, binding)} left cannot fit the next round "
            f"(to epoch {self.rungs[0]} with {self.survivors[0]} trials); the answer is the best trial "
            f"at epoch {self.current_epoch}.",
            self.finalists_echo,
        )

    def to_plan(self, choice: Choice, feasible: bool, length: int, first_round_index: int) -> Plan:
        """The plan of ``choice`` (every round left when ``feasible``, else its first ``length``)."""
        inputs = self.inputs
        rounds = self.model.rounds(
            choice.rungs,
            choice.world_sizes,
            choice.counts,
            self.current_epoch,
            self.first_overheads(choice.world_sizes[0]),
            self.previous_w,
            first_index=first_round_index,
        )
        total_time = sum(r.predicted_duration_s for r in rounds)
        total_cost = sum(r.predicted_cost_usd for r in rounds)
        shape = shape_words(choice.rungs, choice.counts, choice.world_sizes)
        if feasible:
            binding = "none"
            text = (
                f"SEER re-plan: {len(rounds)} remaining rounds ({shape}); "
                f"{summary_words(inputs, total_time, total_cost)}."
            )
        else:
            binding = self.closest_binding(length + 1)
            text = (
                f"BEST EFFORT: {budget_words(inputs, binding)} left cannot fit every remaining round; "
                f"this plan stops at epoch {choice.rungs[-1]} instead of {self.rungs[-1]} "
                f"({shape}); {summary_words(inputs, total_time, total_cost)}."
            )
        return Plan(
            rounds=rounds,
            num_configurations=self.survivors[0],
            eta=self.eta_echo,
            target_epochs=choice.rungs[-1],
            feasible=feasible,
            predicted_time_s=total_time,
            predicted_cost_usd=total_cost,
            binding=binding,
            message=text,
            num_finalists=self.finalists_echo,
        )
