"""The learning-rate schedule: a cosine over optimizer steps (never a function of ``W``),
re-anchored without a jump when a launch brings another horizon (:class:`LrSchedule`).

Imports torch only to build the optimizer's scheduler (:func:`cosine_schedule`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seer_torch.errors import ConfigError

if TYPE_CHECKING:
    import torch


def cosine_lr_factor(step: int, total_steps: int) -> float:
    """Factor of the peak learning rate after ``step`` optimizer steps: ``0.5 (1 + cos(pi t))``,
    ``t = min(step, total_steps) / total_steps``; 1 at step 0, 0 at ``total_steps``."""
    progress = min(step, total_steps) / total_steps
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class LrSchedule:
    """The learning-rate schedule: the factor of the peak learning rate after ``step`` optimizer
    steps, a function of the step (at the fixed global batch, so never of ``W``).

    The factor is ``0.5 (1 + cos(pi t))`` of the schedule's progress ``t`` in [0, 1].
    ``segments`` are ``(start_step, start_progress, end_step)``, start steps increasing: from
    ``start_step`` the progress rises linearly from ``start_progress`` to 1 at ``end_step``
    (the horizon) and stays 1 after it. A fresh trial has one segment, ``(0, 0.0, horizon)``:
    the plain cosine from 1 to 0 (:func:`cosine_lr_factor`; no warm-up). When a launch brings
    another horizon (the policy's target was lowered or raised), :meth:`retarget` starts a
    segment at the resume step with the progress reached there: the factor goes on from the
    value it had, without a jump (the cosine's phase goes on, faster or slower), and is exactly
    0 at the new horizon. The segments are saved in the
    checkpoint (``lr_schedule``), so changes compose and a resume at any ``W`` repeats the same
    factors. A schedule that already ended (progress 1) stays at 0 when its horizon is raised.
    """

    segments: tuple[tuple[int, float, int], ...]

    @classmethod
    def cosine(cls, total_steps: int) -> LrSchedule:
        """One cosine from 1 at step 0 to 0 at ``total_steps`` (>= 1)."""
        return cls(((0, 0.0, total_steps),))

    @property
    def end_step(self) -> int:
        """The horizon: the optimizer step at which the factor reaches 0."""
        return self.segments[-1][2]

    def progress(self, step: int) -> float:
        """Progress ``t`` in [0, 1] after ``step`` optimizer steps."""
        start, start_progress, end = next(seg for seg in reversed(self.segments) if seg[0] <= step)
        if step >= end:
            return 1.0
        return start_progress + (1.0 - start_progress) * (step - start) / (end - start)

    def factor(self, step: int) -> float:
        """Factor of the peak learning rate after ``step`` optimizer steps; 0 from the horizon on."""
        return 0.5 * (1.0 + math.cos(math.pi * self.progress(step)))

    def retarget(self, step: int, end_step: int) -> LrSchedule:
        """The schedule whose horizon moves to ``end_step`` at ``step`` (the resume step): the
        same factors through ``step``, then a new segment; ``self`` when the horizon is unchanged.

        Raises:
            ConfigError: ``end_step`` is not after ``step``.
        """
        if end_step == self.end_step:
            return self
        if end_step <= step:
            raise ConfigError("max_epochs", end_step,
                              f"a horizon after the resume step {step} (in optimizer steps)")
        kept = tuple(seg for seg in self.segments if seg[0] < step)
        return LrSchedule(kept + ((step, self.progress(step), end_step),))

    def to_list(self) -> list[list[int | float]]:
        """The segments as lists (what the checkpoint's ``lr_schedule`` holds)."""
        return [list(seg) for seg in self.segments]

    @classmethod
    def from_list(cls, raw: Any) -> LrSchedule:
        """Read :meth:`to_list`'s form back, checked: the first segment starts at step 0 with
        progress 0, start steps increase, each segment ends after it starts, and each starts
        with the progress the one before had there.

        Raises:
            ConfigError: on any other value (field ``lr_schedule``).
        """
        allowed = ("a list of [start_step, start_progress, end_step], the first [0, 0.0, horizon], "
                   "start steps "
                   "increasing, each end after its start and each start progress the one reached there")
        segments: list[tuple[int, float, int]] = []
        for seg in raw if isinstance(raw, (list, tuple)) else [None]:
            ok = isinstance(seg, (list, tuple)) and len(seg) == 3
            if ok:
                start, progress, end = seg
                ok = (all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
                      and isinstance(progress, (int, float)) and not isinstance(progress, bool)
                      and start < end and 0.0 <= progress <= 1.0)
            if ok and segments:
                ok = start > segments[-1][0] and math.isclose(
                    progress, cls(tuple(segments)).progress(start), rel_tol=0.0, abs_tol=1e-12)
            elif ok:
                ok = start == 0 and progress == 0.0
            if not ok:
                raise ConfigError("lr_schedule", raw, allowed)
            segments.append((int(start), float(progress), int(end)))
        if not segments:
            raise ConfigError("lr_schedule", raw, allowed)
        return cls(tuple(segments))


def cosine_schedule(optimizer: torch.optim.Optimizer,
                    schedule: LrSchedule | int) -> torch.optim.lr_scheduler.LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` following ``schedule`` (an
    :class:`LrSchedule`, or a plain cosine over that many steps), to be stepped once per
    optimizer step; its saved state is the optimizer step (``last_epoch``)."""
    import torch

    if isinstance(schedule, int):
        schedule = LrSchedule.cosine(schedule)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, _factor_function(schedule))


def _factor_function(schedule: LrSchedule) -> Callable[[int], float]:
    def factor(step: int) -> float:  # a plain function: LambdaLR saves no state for it
        return schedule.factor(step)

    return factor


def follow(scheduler: torch.optim.lr_scheduler.LambdaLR, schedule: LrSchedule) -> None:
    """Make ``scheduler`` (from :func:`cosine_schedule`) follow ``schedule`` from its next step
    on, in place: what a relaunch from this step's checkpoint builds (:func:`launch_lr_schedule`
    and a loaded ``LambdaLR`` state), for a kept-alive job whose horizon moved while it was
    parked. The learning rate already set for the next step is the optimizer's and stays; a
    ``schedule`` from :meth:`LrSchedule.retarget` at the step trained agrees with it there."""
    scheduler.lr_lambdas = [_factor_function(schedule) for _ in scheduler.lr_lambdas]


def launch_lr_schedule(horizon_step: int, saved: Any, step: int) -> LrSchedule:
    """The schedule of this launch: a cosine to ``horizon_step`` for a fresh trial (``saved``
    is ``None``); the checkpoint's (``saved``, :meth:`LrSchedule.to_list`'s form), re-anchored
    at its ``step`` when this launch's horizon differs (:meth:`LrSchedule.retarget`).

    Raises:
        ConfigError: ``saved`` is not a schedule, or the new horizon is not after ``step``.
    """
    if saved is None:
        return LrSchedule.cosine(horizon_step)
    return LrSchedule.from_list(saved).retarget(step, horizon_step)
