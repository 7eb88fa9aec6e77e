"""Learning-curve tables: every configuration's validation (and test) metric at every epoch.

The simulator replays a table instead of training, so a policy can be judged on thousands of
tuning runs in seconds; ``seer bench record`` records one through the real worker, and
:func:`generate_table` makes parametric ones of any size. Pure: no torch, no clock, no I/O
beyond :meth:`LearningCurveTable.load` and :meth:`LearningCurveTable.save`.

Format (JSON; docs/design.md, "Formats")::

    {"name": "digits-default",
     "metric": "val_accuracy",          # the metric's name (default "val_accuracy")
     "mode": "max",                     # "max": larger is better (default); "min": smaller
     "max_epochs": 27,                  # every curve has exactly this many points
     "epoch_time_s": 2.1,               # one epoch on one worker, seconds (the default)
     "configs": [
       {"id": "t000",                   # unique, non-empty
        "config": {"lr": 0.1, ...},     # the configuration (a JSON object)
        "val": [0.41, 0.77, ...],       # the metric after epoch 1, 2, ..., max_epochs
        "test": [0.40, 0.75, ...],      # optional: its test value per epoch, same rules
        "epoch_time_s": 2.4},           # optional: this configuration's own epoch time on
       ...],                            #   one worker (else the table's epoch_time_s)
     "meta": {...}}                     # optional, free-form: how the table was made

Values are finite floats; ``val_accuracy`` (and a metric whose name ends in ``accuracy``)
must lie in ``[0, 1]``. ``NaN`` -- written ``null`` in JSON, since JSON has no NaN -- means the
configuration diverged at that epoch, and every later epoch must be ``NaN`` too (a diverged
run does not come back). Curves are not required to be monotone: a run may collapse late and
still be finite. :func:`minimized_table` turns an accuracy table into a minimized one (``1 -
accuracy``, an error rate standing in for a loss) to simulate a metric with ``mode = "min"``.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from seer_torch.errors import ConfigError
from seer_torch.objective import MODES, Objective, check_metric

_TOP_KEYS = {"name", "metric", "mode", "max_epochs", "epoch_time_s", "configs", "meta"}
_CONFIG_KEYS = {"id", "config", "val", "test", "epoch_time_s"}

NAN = float("nan")


class TableError(ConfigError):
    """A learning-curve table is malformed; ``field`` is the path inside the table
    (``configs[3].val[5]``), the message says the value given and what is allowed."""


@dataclass(frozen=True)
class CurveEntry:
    """One configuration of a table. ``val``/``test`` hold one float per epoch (NaN: diverged)."""

    id: str
    config: Mapping[str, Any]
    val: tuple[float, ...]
    test: tuple[float, ...] | None = None
    epoch_time_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "config": dict(self.config), "val": list(self.val)}
        if self.test is not None:
            out["test"] = list(self.test)
        if self.epoch_time_s is not None:
            out["epoch_time_s"] = self.epoch_time_s
        return out


@dataclass(frozen=True)
class LearningCurveTable:
    """A validated learning-curve table (see the module docstring for the format).

    Epochs are 1-based everywhere: ``val_at(i, 1)`` is configuration ``i``'s metric after
    its first epoch, ``val_at(i, max_epochs)`` the final one. ``metric`` and ``mode`` say what
    the values are and which direction is better (:attr:`objective`).
    """

    name: str
    max_epochs: int
    epoch_time_s: float
    configs: tuple[CurveEntry, ...]
    metric: str = "val_accuracy"
    mode: str = "max"
    meta: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        # Constructed directly (not parsed): hold it to the same rules, and freeze what it holds.
        object.__setattr__(self, "configs", tuple(self.configs))
        if self.meta is not None:
            object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))
        LearningCurveTable.parse(self.to_dict())

    # ------------------------------------------------------------------ reading
    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LearningCurveTable:
        """Read and validate a table file.

        Raises:
            TableError: the file is missing, is not JSON, or a field is invalid.
        """
        try:
            with open(path, encoding="utf-8") as file:
                raw = json.load(file)
        except FileNotFoundError:
            raise TableError("learning-curve table", str(path), "an existing JSON file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TableError("learning-curve table", str(path), f"valid JSON ({error})") from None
        return cls.parse(raw)

    @classmethod
    def parse(cls, raw: Any) -> LearningCurveTable:
        """Validate a parsed table (a dict as :func:`json.load` returns it).

        Raises:
            TableError: naming the field path (``configs[3].val[5]``), the value and what is
                allowed.
        """
        if not isinstance(raw, Mapping):
            raise TableError("table", type(raw).__name__, "a JSON object")
        unknown = sorted(set(raw) - _TOP_KEYS)
        if unknown:
            raise TableError(unknown[0], raw[unknown[0]], f"only the keys {', '.join(sorted(_TOP_KEYS))}")
        for key in ("name", "max_epochs", "epoch_time_s", "configs"):
            if key not in raw:
                raise TableError(key, None, _ALLOWED[key] + " (required)")
        name = raw["name"]
        if not isinstance(name, str) or not name:
            raise TableError("name", name, _ALLOWED["name"])
        metric = raw.get("metric", "val_accuracy")
        try:
            check_metric("metric", metric)
        except ConfigError as error:
            raise TableError("metric", metric, error.allowed) from None
        mode = raw.get("mode", "max")
        if mode not in MODES:
            raise TableError("mode", mode, f"one of {list(MODES)}")
        max_epochs = raw["max_epochs"]
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise TableError("max_epochs", max_epochs, _ALLOWED["max_epochs"])
        epoch_time_s = _positive_float("epoch_time_s", raw["epoch_time_s"])
        meta = raw.get("meta")
        if meta is not None and not isinstance(meta, Mapping):
            raise TableError("meta", meta, "a JSON object (free-form) or absent")
        configs_raw = raw["configs"]
        if not isinstance(configs_raw, (list, tuple)) or not configs_raw:
            raise TableError("configs", _short(configs_raw), _ALLOWED["configs"])
        entries = []
        seen: dict[str, int] = {}
        for i, item in enumerate(configs_raw):
            entry = _parse_entry(f"configs[{i}]", item, max_epochs, _is_fraction(metric))
            if entry.id in seen:
                raise TableError(f"configs[{i}].id", entry.id,
                                 f"a unique id (configs[{seen[entry.id]}] has it too)")
            seen[entry.id] = i
            entries.append(entry)
        table = object.__new__(cls)  # skip __post_init__: everything is validated already
        for key, value in (
            ("name", name), ("max_epochs", max_epochs), ("epoch_time_s", epoch_time_s),
            ("configs", tuple(entries)), ("metric", metric), ("mode", mode),
            ("meta", MappingProxyType(dict(meta)) if meta is not None else None),
        ):
            object.__setattr__(table, key, value)
        return table

    # ------------------------------------------------------------------ writing
    def to_dict(self) -> dict[str, Any]:
        """The table as JSON-ready data (NaN stays a float; :meth:`save` writes it as null)."""
        out: dict[str, Any] = {
            "name": self.name,
            "metric": self.metric,
            "mode": self.mode,
            "max_epochs": self.max_epochs,
            "epoch_time_s": self.epoch_time_s,
            "configs": [c.to_dict() for c in self.configs],
        }
        if self.meta is not None:
            out["meta"] = _plain(self.meta)
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table atomically (temporary file, fsync, rename); NaN is written as null."""
        from seer_torch.runfiles import atomic_write_json

        atomic_write_json(path, self.to_dict())

    # ------------------------------------------------------------------ queries
    @property
    def objective(self) -> Objective:
        """The table's metric and mode."""
        return Objective(self.metric, self.mode)

    def __len__(self) -> int:
        return len(self.configs)

    def ids(self) -> list[str]:
        """The configurations' ids, in table order."""
        return [c.id for c in self.configs]

    def index_of(self, config_id: str) -> int:
        """The index of the configuration with this id (``KeyError`` if none)."""
        for i, c in enumerate(self.configs):
            if c.id == config_id:
                return i
        raise KeyError(config_id)

    def val_at(self, index: int, epoch: int) -> float:
        """The metric (validation) of configuration ``index`` after ``epoch`` epochs (1-based);
        NaN once it has diverged."""
        return self.configs[index].val[self._epoch(epoch) - 1]

    def test_at(self, index: int, epoch: int) -> float:
        """The metric's test value after ``epoch`` epochs; the validation value where the table
        holds no test curve for this configuration."""
        entry = self.configs[index]
        curve = entry.test if entry.test is not None else entry.val
        return curve[self._epoch(epoch) - 1]

    def epoch_time_at(self, index: int) -> float:
        """Seconds one epoch of configuration ``index`` takes on one worker."""
        own = self.configs[index].epoch_time_s
        return own if own is not None else self.epoch_time_s

    def diverged_at(self, index: int) -> int | None:
        """The first epoch at which configuration ``index`` is NaN, or ``None``."""
        for e, v in enumerate(self.configs[index].val, start=1):
            if math.isnan(v):
                return e
        return None

    def best_index(self, epochs: int | None = None) -> int:
        """The oracle's configuration: the best validation value after ``epochs`` epochs
        (default ``max_epochs``): the largest, or the smallest for ``mode = "min"``. NaN counts
        as worst; ties go to the lower index.

        Raises:
            ValueError: every configuration is NaN at that epoch.
        """
        e = self._epoch(self.max_epochs if epochs is None else epochs)
        score = self.objective.score
        best, best_score = None, -math.inf
        for i, c in enumerate(self.configs):
            v = c.val[e - 1]
            if not math.isnan(v) and score(v) > best_score:
                best, best_score = i, score(v)
        if best is None:
            raise ValueError(f"every configuration of table {self.name!r} has diverged by epoch {e}")
        return best

    def worst_value(self) -> float:
        """What a run that returns no configuration scores: for ``max``, the lowest finite value
        the table holds (val or test) or 0, whichever is lower (an accuracy of nothing); for
        ``min``, the highest finite value it holds."""
        curves = [curve for c in self.configs for curve in (c.val, c.test or ())]
        finite = [v for curve in curves for v in curve if math.isfinite(v)]
        if self.mode == "max":
            return min([0.0, *finite])
        return max(finite) if finite else 0.0

    def val_matrix(self) -> Any:
        """All validation curves as a numpy array, shape ``(len(self), max_epochs)``."""
        import numpy as np

        return np.array([c.val for c in self.configs], dtype=float)

    def _epoch(self, epoch: int) -> int:
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= self.max_epochs:
            raise ValueError(f"epoch: got {epoch!r}; allowed: an integer in [1, {self.max_epochs}]")
        return epoch


_ALLOWED = {
    "name": "a non-empty string",
    "max_epochs": "an integer >= 1",
    "epoch_time_s": "a finite float > 0 (seconds of one epoch on one worker)",
    "configs": "a non-empty list of {id, config, val, test?, epoch_time_s?} objects",
}


def _short(value: Any) -> Any:
    text = repr(value)
    return value if len(text) <= 80 else text[:77] + "..."


def _positive_float(field: str, value: Any) -> float:
    if (
        isinstance(value, bool) or not isinstance(value, (int, float))
        or not math.isfinite(float(value)) or float(value) <= 0
    ):
        raise TableError(field, value, "a finite float > 0 (seconds of one epoch on one worker)")
    return float(value)


def _is_fraction(metric: str) -> bool:
    """Whether ``metric``'s values must lie in [0, 1] (an accuracy)."""
    return metric.endswith("accuracy")


def _parse_entry(where: str, item: Any, max_epochs: int, fraction: bool = True) -> CurveEntry:
    if not isinstance(item, Mapping):
        raise TableError(where, _short(item), "a JSON object {id, config, val, test?, epoch_time_s?}")
    unknown = sorted(set(item) - _CONFIG_KEYS)
    if unknown:
        raise TableError(f"{where}.{unknown[0]}", _short(item[unknown[0]]),
                         f"only the keys {', '.join(sorted(_CONFIG_KEYS))}")
    cid = item.get("id")
    if not isinstance(cid, str) or not cid:
        raise TableError(f"{where}.id", cid, "a non-empty string")
    config = item.get("config")
    if not isinstance(config, Mapping):
        raise TableError(f"{where}.config", _short(config),
                         "a JSON object (the configuration's hyperparameters)")
    if "val" not in item:
        raise TableError(f"{where}.val", None, f"a list of {max_epochs} values (required)")
    val = _parse_curve(f"{where}.val", item["val"], max_epochs, fraction)
    test = (
        _parse_curve(f"{where}.test", item["test"], max_epochs, fraction)
        if item.get("test") is not None
        else None
    )
    own = item.get("epoch_time_s")
    epoch_time_s = _positive_float(f"{where}.epoch_time_s", own) if own is not None else None
    return CurveEntry(cid, MappingProxyType(dict(config)), val, test, epoch_time_s)


def _parse_curve(where: str, curve: Any, max_epochs: int, fraction: bool = True) -> tuple[float, ...]:
    if not isinstance(curve, (list, tuple)):
        raise TableError(where, _short(curve), f"a list of {max_epochs} values (one per epoch)")
    if len(curve) != max_epochs:
        raise TableError(f"{where}", f"a list of length {len(curve)}",
                         f"exactly max_epochs={max_epochs} values")
    out = []
    diverged_at = None
    for e, v in enumerate(curve):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            out.append(NAN)
            diverged_at = e if diverged_at is None else diverged_at
            continue
        if (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(float(v))
            or (fraction and not 0.0 <= float(v) <= 1.0)
        ):
            what = "an accuracy in [0, 1]" if fraction else "a finite number"
            raise TableError(
                f"{where}[{e}]", v,
                f"{what}, or NaN/null (diverged at that epoch and every epoch after)",
            )
        if diverged_at is not None:
            raise TableError(
                f"{where}[{e}]", v,
                f"NaN/null: the curve diverged at {where}[{diverged_at}], and a diverged run stays diverged",
            )
        out.append(float(v))
    return tuple(out)


def minimized_table(
    table: LearningCurveTable, metric: str = "val_loss", name: str | None = None
) -> LearningCurveTable:
    """``table``'s curves as a metric to minimize: every value ``v`` (val and test) becomes
    ``1 - v`` (an error rate, standing in for a loss; NaN stays NaN), under ``metric`` with
    ``mode = "min"``. The configurations' order by value is exactly reversed, so a tuner that
    honours the mode makes the same decisions on both tables, and one that ignores it picks
    the worst. Pure.

    Raises:
        TableError: ``table`` is already minimized, or ``metric`` is not a valid name.
    """
    if table.mode != "max":
        raise TableError("mode", table.mode, "a maximized table (\"max\") to turn into a minimized one")

    def flip(curve: tuple[float, ...]) -> list[float]:
        return [1.0 - v for v in curve]  # 1 - NaN is NaN: a diverged epoch stays diverged

    raw = table.to_dict()
    raw.update(
        name=name or f"{table.name}-{metric}",
        metric=metric,
        mode="min",
        configs=[
            {**c.to_dict(), "val": flip(c.val), **({"test": flip(c.test)} if c.test is not None else {})}
            for c in table.configs
        ],
    )
    raw["meta"] = {**_plain(table.meta or {}), "minimized_from": table.name, "value": f"1 - {table.metric}"}
    return LearningCurveTable.parse(raw)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Parametric tables
# --------------------------------------------------------------------------------------------

#: Accuracy of guessing (ten classes): where every curve starts at epoch 0.
CHANCE = 0.1


def generate_table(
    num_configurations: int,
    max_epochs: int,
    seed: int,
    *,
    epoch_time_s: float = 2.0,
    noise: float = 0.01,
    divergence_fraction: float = 0.1,
    collapse_fraction: float = 0.03,
    epoch_time_spread: float = 0.0,
    name: str | None = None,
) -> LearningCurveTable:
    """A table of parametric learning curves for tuning benchmarks; deterministic in ``seed``.

    Each configuration has hyperparameters ``lr`` (log-uniform in [1e-3, 1]), ``weight_decay``,
    ``width`` and ``dropout`` that shape its curve, plus hidden per-configuration randomness::

        val(e) = a - (a - CHANCE) * (1 + e / tau) ** -alpha   + noise,   e = 1 .. max_epochs

    - ``a`` (asymptote, 0.5-0.99): best near ``lr`` ~ 0.1, worse far from it, better for wider
      models; ``tau`` (epochs to get going, lognormal around ``max_epochs / 10``) is larger for
      small ``lr`` *and* positively correlated with ``a``: slow starters often end best, so
      curves cross and an early rung misranks them; ``alpha`` in [0.7, 1.6] sets the shape.
    - noise: Gaussian, standard deviation ``noise`` (times up to 2 for large ``lr``), slightly
      autocorrelated between epochs, clipped to [0, 1].
    - ``round(divergence_fraction * num_configurations)`` configurations diverge (NaN from an
      epoch on), mostly those with the largest ``lr``; the epoch is early more often than late.
    - ``round(collapse_fraction * num_configurations)`` others collapse late: from an epoch in
      the last third their accuracy decays towards chance, finitely.
    - ``test`` = the noiseless curve minus a small generalisation gap, plus its own noise.
    - ``epoch_time_spread > 0`` gives each configuration its own ``epoch_time_s``:
      ``epoch_time_s * (width / 64) ** 0.5 * exp(N(0, spread))``.

    Raises:
        ConfigError: an argument is out of range (the message names it).
    """
    import numpy as np

    n_div, n_col = _check_generate_args(num_configurations, max_epochs, seed, epoch_time_s, noise,
                                        divergence_fraction, collapse_fraction, epoch_time_spread)
    n, epochs = num_configurations, max_epochs
    # The draws' order is part of the table: each step draws from ``gen`` after the one before.
    configs = _draw_configurations(random.Random(seed), n)
    gen = np.random.default_rng(seed)
    clean, log_lr = _clean_curves(gen, configs, epochs)
    div_idx, col_idx = _pick_divergent_and_collapsing(gen, log_lr, n_div, n_col)
    _collapse_late(gen, clean, col_idx)
    val, test = _add_noise(gen, clean, log_lr, noise)
    _diverge(gen, val, test, div_idx)
    if epoch_time_spread > 0:
        width = np.array([c["width"] for c in configs], dtype=float)
        own_times = epoch_time_s * np.sqrt(width / 64.0) * np.exp(gen.normal(0.0, epoch_time_spread, n))
    else:
        own_times = None
    return LearningCurveTable(
        name=name or f"parametric-{n}x{epochs}-seed{seed}",
        max_epochs=epochs,
        epoch_time_s=float(epoch_time_s),
        configs=_entries(configs, val, test, own_times),
        meta={
            "source": "seer_torch.curves.generate_table",
            "seed": seed,
            "noise": noise,
            "divergence_fraction": divergence_fraction,
            "collapse_fraction": collapse_fraction,
            "epoch_time_spread": epoch_time_spread,
            "diverged": sorted(int(i) for i in div_idx),
            "collapsed": sorted(int(i) for i in col_idx),
        },
    )


def _entries(configs: list[dict[str, Any]], val: Any, test: Any, own_times: Any) -> tuple[CurveEntry, ...]:
    """One :class:`CurveEntry` per configuration, with ids ``t000``, ``t001``, ..."""
    n = len(configs)
    ids_width = max(3, len(str(max(n - 1, 0))))
    entries = tuple(
        CurveEntry(
            id=f"t{i:0{ids_width}d}",
            config=MappingProxyType(configs[i]),
            val=tuple(float(v) for v in val[i]),
            test=tuple(float(v) for v in test[i]),
            epoch_time_s=float(own_times[i]) if own_times is not None else None,
        )
        for i in range(n)
    )
    return entries


def _check_generate_args(num_configurations: Any, max_epochs: Any, seed: Any, epoch_time_s: Any, noise: Any,
                         divergence_fraction: Any, collapse_fraction: Any,
                         epoch_time_spread: Any) -> tuple[int, int]:
    """:func:`generate_table`'s arguments checked; returns how many configurations diverge and
    how many collapse.

    Raises:
        ConfigError: an argument is out of range.
    """
    _check_int("num_configurations", num_configurations, 1)
    _check_int("max_epochs", max_epochs, 1)
    _check_int("seed", seed, 0)
    _positive_float("epoch_time_s", epoch_time_s)
    for fname, value, high in (
        ("noise", noise, 0.5), ("divergence_fraction", divergence_fraction, 1.0),
        ("collapse_fraction", collapse_fraction, 1.0), ("epoch_time_spread", epoch_time_spread, 2.0),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= high:
            raise ConfigError(fname, value, f"a float in [0, {high}]")
    n = num_configurations
    n_div = round(divergence_fraction * n)
    n_col = min(round(collapse_fraction * n), n - n_div)
    if divergence_fraction + collapse_fraction > 1.0 + 1e-9:
        raise ConfigError("collapse_fraction", collapse_fraction,
                          f"at most 1 - divergence_fraction = {1 - divergence_fraction:g}")
    return n_div, n_col


def _draw_configurations(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """``n`` configurations: ``lr`` log-uniform in [1e-3, 1], ``weight_decay`` log-uniform in
    [1e-5, 1e-2], ``width`` from 16-128, ``dropout`` uniform in [0, 0.5]."""
    widths = (16, 32, 64, 128)
    configs = []
    for _ in range(n):
        configs.append({
            "lr": round(10 ** rng.uniform(-3.0, 0.0), 6),
            "weight_decay": round(10 ** rng.uniform(-5.0, -2.0), 8),
            "width": rng.choice(widths),
            "dropout": round(rng.uniform(0.0, 0.5), 4),
        })
    return configs


def _clean_curves(gen: Any, configs: list[dict[str, Any]], epochs: int) -> tuple[Any, Any]:
    """The noiseless curves ``(n, epochs)`` of :func:`generate_table`'s formula, and each
    configuration's ``log10(lr)``."""
    import numpy as np

    n = len(configs)
    log_lr = np.array([math.log10(c["lr"]) for c in configs])
    log_wd = np.array([math.log10(c["weight_decay"]) for c in configs])
    width = np.array([c["width"] for c in configs], dtype=float)
    dropout = np.array([c["dropout"] for c in configs])

    # Asymptote: a quality score from the hyperparameters plus hidden luck.
    quality = (
        -0.6 * (log_lr + 1.0) ** 2           # best near lr = 0.1
        - 0.25 * (log_wd + 3.5) ** 2         # best near wd = 3e-4
        + 0.35 * np.log2(width / 16.0) / 3.0
        - 0.6 * (dropout - 0.2) ** 2
        + gen.normal(0.0, 0.5, n)
    )
    a = 0.5 + 0.49 / (1.0 + np.exp(-(quality + 0.9) * 1.5))
    z_a = (a - a.mean()) / (a.std() + 1e-12)
    # Time scale (epochs): slow for small lr, and slower for configurations that end higher.
    tau = (epochs / 10.0) * np.exp(-0.55 * (log_lr + 1.0) + 0.7 * z_a + gen.normal(0.0, 0.55, n))
    tau = np.clip(tau, 0.05, 4.0 * epochs)
    alpha = gen.uniform(0.7, 1.6, n)

    e = np.arange(1, epochs + 1, dtype=float)
    clean = a[:, None] - (a[:, None] - CHANCE) * (1.0 + e[None, :] / tau[:, None]) ** -alpha[:, None]
    return clean, log_lr


def _pick_divergent_and_collapsing(gen: Any, log_lr: Any, n_div: int, n_col: int) -> tuple[Any, Any]:
    """The indices of the configurations that diverge (mostly the largest learning rates) and
    of those that collapse late (drawn from the rest)."""
    import numpy as np

    n = len(log_lr)
    order = gen.permutation(n)
    lr_score = log_lr + gen.normal(0.0, 0.35, n)
    div_idx = np.argsort(-lr_score, kind="stable")[:n_div]  # mostly the largest learning rates
    rest = [i for i in order if i not in set(div_idx.tolist())]
    col_idx = np.array(rest[:n_col], dtype=int)
    return div_idx, col_idx


def _collapse_late(gen: Any, clean: Any, col_idx: Any) -> None:
    """Late collapse (finite), in place: from an epoch in the last third, each of ``col_idx``
    decays towards a floor above chance."""
    import numpy as np

    epochs = clean.shape[1]
    for i in col_idx:
        start = int(gen.integers(max(1, (2 * epochs) // 3), epochs + 1))  # 1-based epoch
        level = clean[i, start - 1]
        k = np.arange(epochs) + 1 - start
        decay = np.where(k >= 0, 1.0 - np.exp(-(k + 1) / gen.uniform(1.5, 4.0)), 0.0)
        floor = CHANCE + gen.uniform(0.0, 0.3)
        clean[i] = np.where(k >= 0, level - (level - floor) * decay, clean[i])


def _add_noise(gen: Any, clean: Any, log_lr: Any, noise: float) -> tuple[Any, Any]:
    """``(val, test)``: ``val`` with per-epoch Gaussian noise with a little carry-over from the
    epoch before; ``test`` the clean curve minus a small generalisation gap, with its own noise;
    both clipped to [0, 1]."""
    import numpy as np

    n, epochs = clean.shape
    scale = noise * (1.0 + np.clip(log_lr + 1.0, 0.0, 1.0))
    raw_noise = gen.normal(0.0, 1.0, (n, epochs))
    smooth = np.empty_like(raw_noise)
    smooth[:, 0] = raw_noise[:, 0]
    for j in range(1, epochs):
        smooth[:, j] = 0.4 * smooth[:, j - 1] + math.sqrt(1 - 0.4**2) * raw_noise[:, j]
    val = np.clip(clean + scale[:, None] * smooth, 0.0, 1.0)
    gap = gen.uniform(0.0, 0.02, n)
    test = np.clip(clean - gap[:, None] + scale[:, None] * gen.normal(0.0, 1.0, (n, epochs)), 0.0, 1.0)
    return val, test


def _diverge(gen: Any, val: Any, test: Any, div_idx: Any) -> None:
    """Divergence, in place: NaN from a (mostly early) epoch on for each of ``div_idx``."""
    import numpy as np

    epochs = val.shape[1]
    for i in div_idx:
        start = 1 + min(epochs - 1, int(epochs * gen.beta(1.0, 2.5)))
        val[i, start - 1:] = np.nan
        test[i, start - 1:] = np.nan


def _check_int(field: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(field, value, f"an integer >= {low}")
