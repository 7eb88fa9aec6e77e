"""seer-torch: elastic hyperparameter tuning for PyTorch with SEER (ACM SoCC 2021).

The Python entry point (:mod:`seer_torch.api`) is re-exported here, imported on first use so
that ``import seer_torch`` stays cheap (``seer plan`` imports no torch)::

    import seer_torch

    results = seer_torch.tune(seer_torch.load_experiment("my.toml"), "runs/my-run")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: What ``seer_torch.NAME`` gives, from :mod:`seer_torch.api`, imported on first access.
_API = ("BACKENDS", "Results", "TrialResult", "experiment", "load_experiment", "resume", "tune")

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """``seer_torch.tune`` and the rest of :data:`_API`: :mod:`seer_torch.api`'s, imported now
    (PEP 562)."""
    if name in _API:
        return getattr(importlib.import_module("seer_torch.api"), name)
    raise AttributeError(f"module 'seer_torch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
