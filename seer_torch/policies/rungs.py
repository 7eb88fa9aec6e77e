"""Rung schedules and survivor counts of successive halving, in integer arithmetic: the one
place of the rung rule (:func:`rung_schedule`) and of the survivor-count rule
(:func:`survivors_at_rung`) that every policy uses.

A *rung* is an elimination point in epochs, ``r_1 < r_2 < ... < r_K = max_epochs``; round k
trains every survivor from ``r_{k-1}`` to ``r_k`` (``r_0 = 0``). Everything here is pure
integer arithmetic: the number of rungs is found with an integer loop, never with
``floor(log(max_epochs / min_epochs, eta))``, whose float rounding loses a rung for inputs
such as ``1/243/3`` (``log(243, 3) = 4.999...``).

The rule (Successive Halving, Jamieson & Talwalkar 2016; Hyperband, Li et al. 2018, with
rungs anchored at ``max_epochs`` so the final survivor always trains exactly ``max_epochs``):

- ``K`` = the largest ``k`` with ``min_epochs * eta**k <= max_epochs``;
- ``r_i = max_epochs // eta**(K - i)`` for ``i = 0..K``.

Anchoring at ``max_epochs`` (rather than ``r_i = min_epochs * eta**i``) is what keeps the last
rung at ``max_epochs`` when ``max_epochs`` is not ``min_epochs`` times a power of ``eta``:
``1/10/3`` gives ``(1, 3, 10)``, not ``(1, 3, 9)``.
"""

from __future__ import annotations

from seer_torch.errors import ConfigError

__all__ = [
    "num_extra_rungs",
    "rung_schedule",
    "rung_schedules",
    "survivor_counts",
    "survivor_counts_unchecked",
    "survivors_at_rung",
]


def _check_int(field: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(field, value, f"an integer >= {minimum}")
    return value


def _check_epochs(min_epochs: int, max_epochs: int, eta: int) -> None:
    _check_int("min_epochs", min_epochs, 1)
    _check_int("max_epochs", max_epochs, 1)
    _check_int("eta", eta, 2)
    if max_epochs < min_epochs:
        raise ConfigError("max_epochs", max_epochs, f"an integer >= min_epochs ({min_epochs})")


def num_extra_rungs(min_epochs: int, max_epochs: int, eta: int) -> int:
    """Return ``K``, the largest ``k >= 0`` with ``min_epochs * eta**k <= max_epochs``.

    The schedule then has ``K + 1`` rungs. Integer loop, exact for any size of input.

    Raises:
        ConfigError: ``min_epochs < 1``, ``max_epochs < min_epochs`` or ``eta < 2``.
    """
    _check_epochs(min_epochs, max_epochs, eta)
    k = 0
    reach = min_epochs * eta
    while reach <= max_epochs:
        k += 1
        reach *= eta
    return k


def rung_schedule(min_epochs: int, max_epochs: int, eta: int) -> tuple[int, ...]:
    """Return the full rung schedule ``(r_1, ..., r_{K+1})`` in epochs.

    ``r_i = max_epochs // eta**(K - i)`` for ``i = 0..K``, ``K`` from :func:`num_extra_rungs`.
    Every rung is ``>= min_epochs``, the rungs strictly increase, and the last is
    ``max_epochs``. Examples: ``1/243/3 -> (1, 3, 9, 27, 81, 243)``,
    ``1/1000/10 -> (1, 10, 100, 1000)``, ``4/8/2 -> (4, 8)``, ``1/10/3 -> (1, 3, 10)``,
    ``5/5/3 -> (5,)``.

    Args:
        min_epochs: the smallest first rung allowed, in epochs (``>= 1``).
        max_epochs: the last rung, in epochs (``>= min_epochs``).
        eta: the reduction factor between rungs (``>= 2``).

    Raises:
        ConfigError: ``min_epochs < 1``, ``max_epochs < min_epochs`` or ``eta < 2``.
    """
    k = num_extra_rungs(min_epochs, max_epochs, eta)
    return tuple(max_epochs // eta ** (k - i) for i in range(k + 1))


def rung_schedules(min_epochs: int, max_epochs: int, eta: int) -> tuple[tuple[int, ...], ...]:
    """Return every schedule with ``1..K+1`` rounds, fewest rounds first.

    For ``K' = 0..K`` the schedule ``(max_epochs // eta**K', ..., max_epochs // eta, max_epochs)``;
    these are the suffixes of :func:`rung_schedule` (Hyperband's brackets, anchored at
    ``max_epochs``). ``1/8/2 -> ((8,), (4, 8), (2, 4, 8), (1, 2, 4, 8))``.

    Raises:
        ConfigError: as :func:`rung_schedule`.
    """
    full = rung_schedule(min_epochs, max_epochs, eta)
    return tuple(full[len(full) - 1 - k :] for k in range(len(full)))


def survivors_at_rung(reached: int, eta: int, floor: int) -> int:
    """How many of ``reached`` trials survive a rung: THE survivor-count rule, ``n_{k+1}`` from
    ``n_k``. Every policy takes its counts from here (the baselines through
    :func:`survivor_counts`, the SEER planner through :func:`survivor_counts_unchecked`, SEER's
    re-plan at a rung in :func:`~seer_torch.policies.seer_rounds.planned_counts` and
    :func:`~seer_torch.policies.seer_rounds.grown_counts`, ASHA's promotions).

    ``max(min(floor, reached), reached // eta)``: the top ``1/eta`` (rounded down), never fewer
    than ``floor`` nor more than ``reached``. Successive halving's cut (Jamieson & Talwalkar
    2016); the floor holds the finalists. Unchecked (the planner's search calls it in its
    loops): ``reached >= 0``, ``eta >= 2``, ``floor >= 0`` are the caller's to ensure.
    Examples: ``(9, 3, 1) -> 3``, ``(2, 3, 1) -> 1``, ``(12, 3, 5) -> 5``, ``(2, 3, 0) -> 0``.
    """
    return max(min(floor, reached), reached // eta)


def survivor_counts_unchecked(n: int, k: int, eta: int, finalists: int) -> tuple[int, ...]:
    """:func:`survivor_counts` without its argument checks (the SEER planner's search)."""
    out = [n]
    for _ in range(k - 1):
        out.append(survivors_at_rung(out[-1], eta, finalists))
    return tuple(out)


def survivor_counts(
    num_configurations: int, num_rounds: int, eta: int, num_finalists: int = 1
) -> tuple[int, ...]:
    """Return ``(n_1, ..., n_K)``: how many trials train in each round.

    ``n_1 = num_configurations`` and ``n_{k+1} = survivors_at_rung(n_k, eta, num_finalists)``
    (:func:`survivors_at_rung`): the top ``1/eta`` survive each rung, never fewer than
    ``num_finalists`` (nor more trials than there are), so a count never reaches 0 and never
    increases. Examples with ``eta = 3``:
    ``7`` configurations over 3 rounds ``-> (7, 2, 1)``; ``2 -> (2, 1)``; ``1 -> (1, 1, 1)``.

    Args:
        num_configurations: ``n_1 >= 1``.
        num_rounds: ``K >= 1``, the length of the result.
        eta: the reduction factor (``>= 2``).
        num_finalists: trials carried to the last rung when there are that many (``>= 1``).

    Raises:
        ConfigError: any argument below its minimum.
    """
    _check_int("num_configurations", num_configurations, 1)
    _check_int("num_rounds", num_rounds, 1)
    _check_int("eta", eta, 2)
    _check_int("num_finalists", num_finalists, 1)
    return survivor_counts_unchecked(num_configurations, num_rounds, eta, num_finalists)
