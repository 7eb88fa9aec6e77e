"""Billing: how held slot time turns into money. Pure.

Cloud providers bill a held machine by a granularity (per second on AWS/GCP on-demand, per
minute or per hour on others) with a minimum charge per rental (60 s on AWS per-second
billing). seer-torch bills each job's slots from launch to exit (docs/design.md, "money budget"),
so one job of ``W`` workers held for ``d`` seconds costs::

    price_usd_per_slot_hour / 3600 * W * billed_seconds(d)
    billed_seconds(d) = max(minimum_s, ceil(d / granularity_s) * granularity_s)

With ``granularity_s = 0`` and ``minimum_s = 0`` (the default) billing is exact:
``billed_seconds(d) = d``. The planner, the executor's meter and the simulator all call the
functions here, so a plan's predicted cost and the metered cost round the same way. The inverse,
the longest hold a number of billable seconds (or dollars) pays for, is here too
(:func:`held_seconds_within`, :meth:`Billing.max_job_seconds`; a fixed cluster's time limit), so
a change to the billing rule is a change to this file only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from seer_torch.errors import ConfigError

__all__ = ["Billing", "billed_seconds", "EXACT", "held_seconds_within"]


def billed_seconds(duration_s: float, granularity_s: float = 0.0, minimum_s: float = 0.0) -> float:
    """Seconds billed for holding one slot ``duration_s`` seconds.

    Args:
        duration_s: seconds held, ``>= 0``.
        granularity_s: billing increment in seconds (``0`` = exact); the held time is rounded
            up to a multiple of it.
        minimum_s: the least billed per rental, seconds.

    Returns:
        ``max(minimum_s, ceil(duration_s / granularity_s) * granularity_s)`` (or
        ``max(minimum_s, duration_s)`` when ``granularity_s == 0``). A rounding tolerance of
        1e-9 s keeps a duration that is a multiple of the granularity up to float error from
        being billed one more increment.
    """
    d = max(0.0, float(duration_s))
    if granularity_s > 0:
        d = math.ceil(d / granularity_s - 1e-9) * granularity_s
    return max(float(minimum_s), d)


def held_seconds_within(
    billable_s: float, granularity_s: float = 0.0, minimum_s: float = 0.0
) -> float | None:
    """The longest hold, seconds, that :func:`billed_seconds` bills at most ``billable_s``: its
    inverse.

    ``floor(billable_s / granularity_s) * granularity_s`` (``billable_s`` when
    ``granularity_s == 0``), with a tolerance of 1e-9 increments so that ``billable_s`` a
    multiple of the granularity up to float error keeps that multiple. ``None`` when not even
    the minimum charge fits (``minimum_s > billable_s``).

    Contract (``D`` the result, ``g = granularity_s``): ``billed_seconds(D, g, minimum_s) <=
    billable_s + 1e-9 * g``, and holding any longer, by more than ``1e-9 * g``, bills more than
    ``billable_s``.
    """
    if minimum_s > billable_s:
        return None
    if granularity_s > 0:
        return math.floor(billable_s / granularity_s + 1e-9) * granularity_s
    return billable_s


@dataclass(frozen=True)
class Billing:
    """A price and its rounding rules.

    Attributes:
        price_usd_per_slot_hour: price of one slot for one hour, ``>= 0``.
        granularity_s: billing increment, seconds, ``>= 0`` (0 = exact).
        minimum_s: least billed per rental (per job), seconds, ``>= 0``.

    Raises:
        ConfigError: a negative or non-finite field.
    """

    price_usd_per_slot_hour: float
    granularity_s: float = 0.0
    minimum_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("price_usd_per_slot_hour", "granularity_s", "minimum_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(name, v, "a finite number >= 0")

    def job_cost_usd(self, world_size: int, duration_s: float) -> float:
        """Money for one job of ``world_size`` slots held ``duration_s`` seconds, USD."""
        return self.price_usd_per_slot_hour / 3600.0 * world_size * self.billed_seconds(duration_s)

    def billed_seconds(self, duration_s: float) -> float:
        """:func:`billed_seconds` with this billing's rounding."""
        return billed_seconds(duration_s, self.granularity_s, self.minimum_s)

    def max_job_seconds(self, world_size: int, money_usd: float) -> float | None:
        """The longest a job of ``world_size`` slots may be held for :meth:`job_cost_usd` to fit
        ``money_usd``, seconds (the inverse of :meth:`job_cost_usd`, through
        :func:`held_seconds_within`): ``math.inf`` when the price is 0 or the money infinite,
        ``None`` when not even the minimum charge fits."""
        if self.price_usd_per_slot_hour <= 0 or math.isinf(money_usd):
            return math.inf
        billable_s = money_usd * 3600.0 / (self.price_usd_per_slot_hour * world_size)
        return held_seconds_within(billable_s, self.granularity_s, self.minimum_s)

    @property
    def max_rounding_s(self) -> float:
        """The most one rental can be billed beyond its held time, seconds (documented slack
        of a budget check that meters exact time): ``max(granularity_s, minimum_s)``."""
        return max(self.granularity_s, self.minimum_s)


EXACT = Billing(0.0)
