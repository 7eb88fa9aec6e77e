"""Billing: how held slot time turns into money. Pure.

Cloud providers bill a held machine by a granularity (per second on AWS/GCP on-demand, per
minute or per hour on others) with a minimum charge per rental (60 s on AWS per-second
billing). seer-torch bills each job's slots from launch to exit (DESIGN.md, "money budget"),
so one job of ``W`` workers held for ``d`` seconds costs::

    price_usd_per_slot_hour / 3600 * W * billed_seconds(d)
    billed_seconds(d) = max(minimum_s, ceil(d / granularity_s) * granularity_s)

With ``granularity_s = 0`` and ``minimum_s = 0`` (the default) billing is exact:
``billed_seconds(d) = d``. The planner, the executor's meter and the simulator all call the
functions here, so a plan's predicted cost and the metered cost round the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from seer_torch.errors import ConfigError

__all__ = ["Billing", "billed_seconds", "EXACT"]


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

    @property
    def max_rounding_s(self) -> float:
        """The most one rental can be billed beyond its held time, seconds (documented slack
        of a budget check that meters exact time): ``max(granularity_s, minimum_s)``."""
        return max(self.granularity_s, self.minimum_s)


EXACT = Billing(0.0)
