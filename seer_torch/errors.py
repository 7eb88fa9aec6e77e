"""The error hierarchy of seer-torch.

Everything the project raises on purpose derives from :class:`SeerError`. A user's bad input
raises :class:`ConfigError`, which is also a :class:`ValueError`; its message names the field,
the value given and what is allowed.
"""

from __future__ import annotations


class SeerError(Exception):
    """Base class of every error seer-torch raises on purpose."""


class ConfigError(SeerError, ValueError):
    """Bad user input: a field of an experiment, a CLI flag or a trial's config.json.

    Args:
        field: dotted name of the offending field, for example ``"training.eta"``.
        value: the value given.
        allowed: what would have been accepted, in words.
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: got {value!r}; allowed: {allowed}")


class DatasetNotFoundError(SeerError, FileNotFoundError):
    """A dataset folder is missing or incomplete; the message says where it looked and what
    the folder must contain."""


class CheckpointError(SeerError):
    """No usable checkpoint: the trial's ``checkpoint.pt`` and its previous copy
    ``checkpoint.prev.pt`` are both unreadable, truncated or inconsistent (the message names
    each file and what is wrong with it)."""


class WorkerError(SeerError):
    """A trial's job failed (non-zero exit of torchrun)."""


class BudgetExhausted(SeerError):
    """A hard limit (the deadline or the money budget) was reached before there was a plan."""
