"""Checks of single values in an experiment file: each raises :class:`ConfigError` naming the
field, the value and what is allowed. Used by :mod:`seer_torch.config`'s section parsers."""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import Any

from seer_torch.errors import ConfigError

#: The value of a field the planner chooses (``eta = "auto"``).
AUTO = "auto"


def did_you_mean(word: Any, options: Any) -> str:
    """`` (did you mean 'x'?)`` for the option closest to ``word``, or ``""`` when none is close."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, [str(o) for o in options], n=1, cutoff=0.7)
    return f" (did you mean {close[0]!r}?)" if close else ""



def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def positive_int(fld: str, v: Any) -> int:
    return int_at_least(fld, v, 1)


def nonnegative_int(fld: str, v: Any) -> int:
    return int_at_least(fld, v, 0)


def int_at_least(fld: str, v: Any, low: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise ConfigError(fld, v, f"an integer >= {low}")
    return v


def int_or_auto(fld: str, v: Any, low: int) -> int | None:
    """An integer ``>= low``, or ``None`` for ``"auto"`` (the planner chooses)."""
    if v == AUTO:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise ConfigError(fld, v, f'an integer >= {low}, or "{AUTO}" (the planner chooses)')
    return v


def positive_float(fld: str, v: Any) -> float:
    if not is_number(v) or v <= 0:
        raise ConfigError(fld, v, "a finite number > 0")
    return float(v)


def nonnegative_float(fld: str, v: Any) -> float:
    if not is_number(v) or v < 0:
        raise ConfigError(fld, v, "a finite number >= 0")
    return float(v)


def existing_file(fld: str, v: str) -> str:
    p = Path(v).expanduser()
    if not p.is_file():
        head = v.rpartition(":")[0]
        if head and Path(head).expanduser().is_file():
            raise ConfigError(fld, v, "one profile of your model (from `seer profile` or a `seer tune` "
                                      "run); FILE:NAME picks a public profile for `seer simulate` only: "
                                      "those carry no epoch time or start-up of your model")
        raise ConfigError(fld, v, "an existing scaling-profile JSON file")
    return str(p.resolve())
