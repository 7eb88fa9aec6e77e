"""How fast one trial trains at ``W`` workers, for the SEER policy's re-plans. Pure: no clock,
files or processes.

The profile's speedup ``s(W)`` was measured on one configuration; a cheaper one gains less from
more workers, because part of an epoch at ``W`` does not shrink with ``W`` (the all-reduce and
the synchronisation of every step): ``b(W)`` seconds an epoch
(:meth:`~seer_torch.scaling.model.ScalingModel.sync_s`, whose docstring gives the model and its
source). A trial whose epoch on one worker takes ``t`` then takes ``t / W + b(W)`` at ``W``
(:func:`epoch_time_at_s`), unless it already trained at ``W``: then its own measured epoch
there. Once the run has trials measured both at ``W = 1`` and at ``W``, ``b(W)`` is theirs
(:func:`sync_by_world_s`), not the profile's.

Without this a re-plan of the default experiment on a 60 s deadline widened its finalist (a
width-64 MLP, half the probe's epoch) to ``W = 2`` for the probe's 1.55x, got about 1.1x, and
the deadline stopped its last job short of the target it had planned (docs/design-notes.md).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from seer_torch.policies.base import TrialView
from seer_torch.scaling.model import ScalingModel

__all__ = ["TrialsScaling", "epoch_time_at_s", "sync_by_world_s", "trials_scaling"]


def sync_by_world_s(scaling: ScalingModel, trials: Iterable[TrialView],
                    world_sizes: Sequence[int]) -> dict[int, float]:
    """``W -> b(W)`` (seconds an epoch, ``>= 0``) for each ``W > 1`` of ``world_sizes``: the
    median over ``trials`` that trained both at ``W = 1`` and at ``W`` of ``t_W - t_1 / W``
    (their measured epochs, :attr:`TrialView.epoch_time_by_world_s`); without such a trial,
    the profile's (:meth:`ScalingModel.sync_s`); left out when neither is known (a scaling
    model that does not know the epoch of the configuration it was measured on)."""
    trials = list(trials)
    out: dict[int, float] = {}
    for w in world_sizes:
        if w <= 1:
            continue
        measured = [max(0.0, t.epoch_time_by_world_s[w] - t.epoch_time_by_world_s[1] / w)
                    for t in trials if w in t.epoch_time_by_world_s and 1 in t.epoch_time_by_world_s]
        if measured:
            out[w] = statistics.median(measured)
        elif (sync := scaling.sync_s(w)) is not None:
            out[w] = sync
    return out


def epoch_time_at_s(trial: TrialView, world_size: int, default_epoch_time_s: float,
                    scaling: ScalingModel, sync_s: Mapping[int, float]) -> float:
    """One epoch of ``trial`` at ``world_size`` workers, seconds: its own measured epoch there
    when it trained at ``world_size``; else, with ``t`` its epoch on one worker
    (``default_epoch_time_s`` before it reported), ``t / W + b(W)`` (``sync_s``, from
    :func:`sync_by_world_s`), at most ``t`` (a second worker never makes it slower in this
    model); ``t / s(W)`` when ``b(W)`` is unknown."""
    measured = trial.epoch_time_by_world_s.get(world_size)
    if measured is not None:
        return measured
    tau = trial.epoch_time_s if trial.epoch_time_s is not None else default_epoch_time_s
    if world_size == 1:
        return tau
    sync = sync_s.get(world_size)
    if sync is None:
        return tau / scaling.speedup_at(world_size)
    return min(tau, tau / world_size + sync)


@dataclass(frozen=True)
class TrialsScaling:
    """``s(W)`` of a group of trials, for a planner that plans their jobs with one epoch time
    and one speedup (SEER's, :mod:`seer_torch.policies.seer`): the ``speedups`` computed for
    them (:func:`trials_scaling`), the profile's ``base`` at any other ``W``."""

    speedups: Mapping[int, float]
    base: ScalingModel

    def speedup_at(self, world_size: int) -> float:
        """``s(W)`` of the group, ``1 <= s(W) <= W``."""
        speedup = self.speedups.get(world_size)
        return speedup if speedup is not None else self.base.speedup_at(world_size)


def trials_scaling(trials: Sequence[TrialView], default_epoch_time_s: float, scaling: ScalingModel,
                   sync_s: Mapping[int, float], world_sizes: Sequence[int]) -> TrialsScaling:
    """The speedup of ``trials`` together at each of ``world_sizes``: the sum of their epochs on
    one worker over the sum of their epochs at ``W`` (:func:`epoch_time_at_s`), so that the
    planner's ``n * tau / s(W)`` with ``tau`` their mean epoch on one worker is the sum of
    their own epochs at ``W``. ``trials`` empty: the profile's."""
    speedups: dict[int, float] = {}
    if trials:
        one = sum(epoch_time_at_s(t, 1, default_epoch_time_s, scaling, sync_s) for t in trials)
        for w in world_sizes:
            at_w = sum(epoch_time_at_s(t, w, default_epoch_time_s, scaling, sync_s) for t in trials)
            speedups[w] = min(float(w), max(1.0, one / at_w)) if at_w > 0 else 1.0
    return TrialsScaling(speedups, scaling)
