"""Scaling profiles: what the planner knows about one model on one machine.

A profile (JSON, docs/design.md "Formats") holds ``world_sizes`` and ``speedup``
(throughput(W) / throughput(1)), optionally ``throughput_samples_per_s``, and the overheads
``startup_s`` (launch to first step) and ``resize_s`` (relaunch at a new world size). For
planning it also needs ``epoch_time_s``: one epoch, training plus validation, on one worker.
``seer tune`` measures one at the start of a run (see :mod:`seer_torch.scaling.profiler`);
``seer plan`` and ``seer tune --profile FILE`` read one. Pure: parsing only, no I/O here
beyond what the caller hands in.

Configurations of one search space can differ in cost (a model width of 96 takes about twice
the epoch time of 64). A profile may then hold ``epoch_time_by_flops``: epoch times at W = 1
measured on configurations of different floating-point operations per sample (counted by
:func:`seer_torch.models.flops_per_sample`), and :meth:`Profile.epoch_time_for` predicts any
configuration's epoch time from its FLOPs (piecewise linear: a fixed per-step cost plus a
cost per FLOP, which is what two probes of one model measure).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seer_torch.errors import ConfigError
from seer_torch.scaling.model import ScalingModel


@dataclass(frozen=True)
class Profile:
    """A scaling profile. Units: seconds, samples per second."""

    name: str
    world_sizes: tuple[int, ...]
    speedup: tuple[float, ...]
    epoch_time_s: float
    startup_s: float
    resize_s: float
    throughput_samples_per_s: tuple[float, ...] = ()
    source: str = ""
    #: ``((flops_per_sample, epoch_time_s at W=1), ...)`` measured on configurations of
    #: different cost, sorted by FLOPs; empty when only one configuration was measured.
    epoch_time_by_flops: tuple[tuple[float, float], ...] = ()

    def epoch_time_for(self, flops_per_sample: float | None) -> float:
        """One epoch at W = 1 (seconds) of a configuration of ``flops_per_sample`` FLOPs per
        training sample: linear interpolation between the two measured points around it
        (:attr:`epoch_time_by_flops`), linear extrapolation from the nearest two outside them,
        but never below the nearest point scaled in proportion to the FLOPs (a line through
        two noisy points must not predict a nearly free model) nor above it scaled likewise.
        ``epoch_time_s`` when fewer than two points were measured or ``flops_per_sample`` is
        ``None``."""
        pts = self.epoch_time_by_flops
        if flops_per_sample is None or len(pts) < 2 or not flops_per_sample > 0:
            return self.epoch_time_s
        f = float(flops_per_sample)
        i = 0
        while i < len(pts) - 2 and f > pts[i + 1][0]:
            i += 1
        (f0, t0), (f1, t1) = pts[i], pts[i + 1]
        linear = t0 + (t1 - t0) * (f - f0) / (f1 - f0)
        if f < f0:
            return min(t0, max(linear, t0 * f / f0))
        if f > f1:
            return max(t1, min(linear, t1 * f / f1))
        return linear

    @property
    def scaling(self) -> ScalingModel:
        """``s(W)``, knowing the epoch of the configuration it was measured on (for
        :meth:`ScalingModel.sync_s`)."""
        return ScalingModel(world_sizes=self.world_sizes, speedup=self.speedup,
                            epoch_time_s=self.epoch_time_s)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["world_sizes"] = list(self.world_sizes)
        d["speedup"] = list(self.speedup)
        d["throughput_samples_per_s"] = list(self.throughput_samples_per_s)
        d["epoch_time_by_flops"] = [{"flops_per_sample": f, "epoch_time_s": t}
                                    for f, t in self.epoch_time_by_flops]
        if not d["epoch_time_by_flops"]:
            del d["epoch_time_by_flops"]
        return d


#: The fields of a scaling profile (docs/design.md "Formats", plus ``epoch_time_s`` and
#: ``epoch_time_by_flops`` for planning); any other is refused as a likely typo.
PROFILE_KEYS = frozenset({"name", "world_sizes", "speedup", "throughput_samples_per_s", "epoch_time_s",
                          "startup_s", "resize_s", "source", "epoch_time_by_flops"})


def parse_profile(raw: Mapping[str, Any], where: str = "profile") -> Profile:
    """Validate a profile mapping.

    Raises:
        ConfigError: a field is missing, unknown or out of range (the message names it).
    """
    unknown = sorted(set(raw) - PROFILE_KEYS)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", raw[unknown[0]],
                          "no such field in a scaling profile "
                          f"(the fields: {', '.join(sorted(PROFILE_KEYS))})")
    ws, sp = _parse_scaling(raw, where)
    values = {}
    for key, low in (("epoch_time_s", "> 0"), ("startup_s", ">= 0")):
        v = _required(raw, key, where)
        if not _finite(v) or v < 0 or (low == "> 0" and v == 0):
            raise ConfigError(f"{where}.{key}", v, f"a finite number of seconds {low}")
        values[key] = float(v)
    resize = raw.get("resize_s", values["startup_s"])
    if not _finite(resize) or resize < 0:
        raise ConfigError(f"{where}.resize_s", resize, "a finite number of seconds >= 0")
    thr = raw.get("throughput_samples_per_s") or []
    if not isinstance(thr, list) or not all(_finite(t) and t > 0 for t in thr):
        raise ConfigError(f"{where}.throughput_samples_per_s", thr,
                          "a list of positive numbers (samples/s), or absent")
    points = _parse_epoch_time_by_flops(raw, where, values["epoch_time_s"])
    return Profile(
        name=str(raw.get("name", "profile")),
        world_sizes=tuple(ws),
        speedup=tuple(float(s) for s in sp),
        epoch_time_s=values["epoch_time_s"],
        startup_s=values["startup_s"],
        resize_s=float(resize),
        throughput_samples_per_s=tuple(float(t) for t in thr),
        source=str(raw.get("source", "")),
        epoch_time_by_flops=tuple(sorted(points)),
    )


def _required(raw: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in raw:
        raise ConfigError(f"{where}.{key}", None, "required in a scaling profile used for planning")
    return raw[key]


def _parse_scaling(raw: Mapping[str, Any], where: str) -> tuple[list[int], list[float]]:
    """``world_sizes`` and ``speedup``, checked here and by :class:`ScalingModel`."""
    ws = _required(raw, "world_sizes", where)
    sp = _required(raw, "speedup", where)
    if (
        not isinstance(ws, list)
        or not ws
        or not all(isinstance(w, int) and w >= 1 for w in ws)
        or ws != sorted(set(ws))
        or ws[0] != 1
    ):
        raise ConfigError(f"{where}.world_sizes", ws,
                          "a strictly increasing list of positive integers starting at 1")
    if not isinstance(sp, list) or len(sp) != len(ws) or not all(_finite(s) and s > 0 for s in sp):
        raise ConfigError(f"{where}.speedup", sp, f"{len(ws)} positive numbers, one per world size")
    try:
        ScalingModel(world_sizes=tuple(ws), speedup=tuple(sp))  # its own checks (speedup 1 at W=1)
    except ConfigError as e:
        raise ConfigError(f"{where}.{e.field.split('.', 1)[-1]}", e.value, e.allowed) from None
    return ws, sp


def _parse_epoch_time_by_flops(raw: Mapping[str, Any], where: str,
                               epoch_time_s: float) -> list[tuple[float, float]]:
    """``epoch_time_by_flops`` as ``(flops_per_sample, epoch_time_s)`` points: none, or two or
    more with distinct FLOPs whose epoch times span the profile's ``epoch_time_s``."""
    by_flops = raw.get("epoch_time_by_flops", [])
    if not isinstance(by_flops, list) or ("epoch_time_by_flops" in raw and not by_flops):
        raise ConfigError(f"{where}.epoch_time_by_flops", by_flops,
                          "a list of two or more {flops_per_sample, epoch_time_s} objects, "
                          "or the field left out")
    points: list[tuple[float, float]] = []
    for i, item in enumerate(by_flops):
        if not isinstance(item, dict):
            raise ConfigError(f"{where}.epoch_time_by_flops[{i}]", item,
                              "an object {flops_per_sample, epoch_time_s}")
        extra = sorted(set(item) - {"flops_per_sample", "epoch_time_s"})
        if extra:
            raise ConfigError(f"{where}.epoch_time_by_flops[{i}].{extra[0]}", item[extra[0]],
                              "only the keys flops_per_sample and epoch_time_s")
        for key, what in (("flops_per_sample", "a finite number > 0 (FLOPs per training sample)"),
                          ("epoch_time_s", "a finite number of seconds > 0 (one epoch at W=1)")):
            if not (_finite(item.get(key)) and item[key] > 0):
                raise ConfigError(f"{where}.epoch_time_by_flops[{i}].{key}", item.get(key), what)
        if any(f == item["flops_per_sample"] for f, _ in points):
            raise ConfigError(f"{where}.epoch_time_by_flops[{i}].flops_per_sample", item["flops_per_sample"],
                              "a value no other point has")
        points.append((float(item["flops_per_sample"]), float(item["epoch_time_s"])))
    if len(points) == 1:
        raise ConfigError(f"{where}.epoch_time_by_flops", by_flops,
                          "two or more points "
                          "(one point cannot tell configurations apart: leave the field out)")
    if len(points) >= 2:
        lo, hi = min(t for _, t in points), max(t for _, t in points)
        if not lo * 0.99 <= epoch_time_s <= hi * 1.01:
            raise ConfigError(f"{where}.epoch_time_s", epoch_time_s,
                              f"within the epoch times of epoch_time_by_flops ({lo:g}-{hi:g} s): the probe "
                              "configuration's epoch is one of its points")
    return points


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_profile(path: str | Path) -> Profile:
    """Read a scaling profile JSON file.

    Raises:
        ConfigError: the file is missing, not JSON, or a field is invalid.
    """
    p = Path(path)
    listed = ("one profile of your model (from `seer profile` or a `seer tune` run); files with a "
              "'profiles' list, picked as FILE:NAME, are public profiles for `seer simulate` only: they "
              "carry no epoch time or start-up of your model")
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError("planner.profile", str(p), "an existing scaling-profile JSON file") from None
    except json.JSONDecodeError as e:
        raise ConfigError("planner.profile", str(p), f"valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError("planner.profile", str(p), "a JSON object in the scaling-profile format")
    if isinstance(raw.get("profiles"), list):
        raise ConfigError("planner.profile", str(p), listed)
    return parse_profile(raw, where=f"profile {p.name}")
