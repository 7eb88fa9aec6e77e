"""The scaling model: speedup ``s(W) = throughput(W) / throughput(1)`` of one trial's job.

Pure: numbers in, numbers out. No torch, no files, no clock (``seer plan`` imports this and must
answer in well under two seconds).

How ``s(W)`` is evaluated
-------------------------
1. *Cleaning the measurements.* ``s(1) = 1`` by definition (added when absent). Each measured
   point is clipped to ``[1, W]`` (data-parallel training is never superlinear in this model:
   a superlinear measurement is noise or a cache effect that does not survive a longer run),
   then made non-decreasing in ``W`` by isotonic regression (pool adjacent violators, equal
   weights), which averages a dip with its neighbours instead of trusting either.
2. *Between measured points:* piecewise-linear interpolation of the cleaned points.
3. *Beyond the largest measured* ``W_m``: Amdahl's law ``A_f(W) = 1 / (f + (1 - f) / W)``
   (Amdahl 1967) with serial fraction ``f``, anchored at the last cleaned point so the curve is
   continuous: ``s(W) = s(W_m) * A_f(W) / A_f(W_m)``, then clipped to ``<= W``. Because
   ``A_f(W) / W`` does not increase, the anchored curve stays ``<= W`` and non-decreasing.
4. *The serial fraction* ``f`` is the least-squares fit of the linear form
   ``1/s - 1/W = f * (1 - 1/W)`` over the cleaned points with ``W > 1``, clipped to ``[0, 1]``.

The prior
---------
:data:`PRIOR_SERIAL_FRACTION` ``= 0.1`` (``s(2) = 1.82``, ``s(4) = 3.08``, ``s(8) = 4.71``;
close to the ImageNet ResNet-50 V100 profile of ucbrise/hypersched, ``s(8) = 4.29``, and
pessimistic for the CIFAR profiles, ``s(8) = 5.4 .. 6.7``). It replaces the fit when nothing can
be fitted (only the ``W = 1`` point), and bounds it from below when the measurements are
noisy (a point was non-monotone or superlinear and had to be cleaned): then
``f = max(fit, PRIOR_SERIAL_FRACTION)``, i.e. noisy data never earns a more optimistic
extrapolation than the prior. :attr:`ScalingModel.used_prior` says when either happened.

Configurations of other cost
----------------------------
``s(W)`` is measured on one configuration (the profile's, whose epoch on one worker took
``epoch_time_s`` = ``T``). Part of an epoch at ``W`` does not shrink with ``W``: the gradient
all-reduce and the synchronisation of every step, ``b(W) = T / s(W) - T / W`` seconds an epoch
(:meth:`ScalingModel.sync_s`). It is the same for every configuration of one model family,
global batch and data set, while the compute shrinks with ``W``, so a configuration whose epoch
on one worker takes ``t`` takes ``t / W + b(W)`` at ``W``: a cheaper one speeds up less
(Amdahl's law with a fixed serial *time*, not a fixed serial fraction; the same split of a
step into computation over ``W`` plus communication as Optimus, Peng et al., EuroSys 2018,
section 3.2). On this machine's 2 cores: a width-64 MLP on digits, half the probe's (width 96)
epoch, gains about 1.1 at ``W = 2`` where the probe gains 1.55 (docs/design-notes.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from seer_torch.errors import ConfigError

__all__ = ["PRIOR_SERIAL_FRACTION", "ScalingModel", "amdahl_speedup"]

#: Serial fraction of the documented prior (see the module docstring).
PRIOR_SERIAL_FRACTION = 0.1

# Relative tolerance under which a measurement is not called superlinear or non-monotone
# (timing noise of a few parts per thousand is not "noisy data").
_NOISE_TOLERANCE = 1e-3


def amdahl_speedup(world_size: float, serial_fraction: float) -> float:
    """Amdahl's law (Amdahl 1967): ``1 / (f + (1 - f) / W)``; ``W >= 1``, ``0 <= f <= 1``."""
    return 1.0 / (serial_fraction + (1.0 - serial_fraction) / world_size)


def _isotonic_non_decreasing(values: Sequence[float]) -> list[float]:
    """Pool-adjacent-violators: the non-decreasing sequence closest to ``values`` in L2."""
    blocks: list[list[float]] = []  # [mean, count]
    for v in values:
        blocks.append([float(v), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean2, count2 = blocks.pop()
            mean1, count1 = blocks.pop()
            count = count1 + count2
            blocks.append([(mean1 * count1 + mean2 * count2) / count, count])
    out: list[float] = []
    for mean, count in blocks:
        out.extend([mean] * int(count))
    return out


@dataclass(frozen=True)
class ScalingModel:
    """Speedup of a data-parallel job against its world size, from measured points.

    Args:
        world_sizes: measured world sizes ``W`` (distinct integers ``>= 1``, any order; sorted
            on construction). ``W = 1`` is added with speedup 1 when absent.
        speedup: ``throughput(W) / throughput(1)`` at each of ``world_sizes`` (finite, ``> 0``).
        base_throughput_samples_per_s: ``throughput(1)`` in samples/s, when known; needed only
            by :meth:`throughput_at`.
        name: the profile's name (informational).
        source: where the measurements come from (informational).
        epoch_time_s: one epoch on one worker of the configuration the speedups were measured
            on, seconds (``T`` of the module docstring), when known; needed only by
            :meth:`sync_s`.

    Derived on construction (not arguments): ``clean_speedup`` (the cleaned points, aligned with
    ``world_sizes``), ``serial_fraction`` (the ``f`` used beyond the last point) and
    ``used_prior`` (True when the prior replaced or bounded the fit).

    Raises:
        ConfigError: empty or mismatched sequences, a non-integer or ``< 1`` world size, a
            repeated world size, a speedup that is not finite and positive, or a speedup at
            ``W = 1`` other than 1.
    """

    world_sizes: tuple[int, ...]
    speedup: tuple[float, ...]
    base_throughput_samples_per_s: float | None = None
    name: str = ""
    source: str = ""
    epoch_time_s: float | None = None
    clean_speedup: tuple[float, ...] = field(init=False, repr=False)
    serial_fraction: float = field(init=False)
    used_prior: bool = field(init=False)

    def __post_init__(self) -> None:
        sizes = tuple(self.world_sizes)
        speeds = tuple(self.speedup)
        if len(sizes) == 0 or len(sizes) != len(speeds):
            raise ConfigError(
                "scaling.world_sizes",
                list(sizes),
                f"a non-empty list as long as scaling.speedup ({len(speeds)} values)",
            )
        for w in sizes:
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ConfigError("scaling.world_sizes", list(sizes), "integers >= 1")
        if len(set(sizes)) != len(sizes):
            raise ConfigError("scaling.world_sizes", list(sizes), "distinct world sizes")
        for s in speeds:
            if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 0:
                raise ConfigError("scaling.speedup", list(speeds), "finite numbers > 0")
        points = sorted(zip(sizes, (float(s) for s in speeds)))
        if points[0][0] == 1:
            if abs(points[0][1] - 1.0) > _NOISE_TOLERANCE:
                raise ConfigError(
                    "scaling.speedup", list(speeds), "1.0 at world size 1 (speedup is relative to W=1)"
                )
            points[0] = (1, 1.0)
        else:
            points.insert(0, (1, 1.0))
        base = self.base_throughput_samples_per_s
        if base is not None and (not math.isfinite(base) or base <= 0):
            raise ConfigError("scaling.base_throughput_samples_per_s", base, "a finite number > 0")

        sizes = tuple(w for w, _ in points)
        raw = [s for _, s in points]
        clipped = [min(max(s, 1.0), float(w)) for w, s in points]
        clean = _isotonic_non_decreasing(clipped)
        clean = [min(max(s, 1.0), float(w)) for w, s in zip(sizes, clean)]
        clean[0] = 1.0
        noisy = any(abs(c - r) > _NOISE_TOLERANCE * r for c, r in zip(clean, raw))

        xs = [1.0 - 1.0 / w for w in sizes if w > 1]
        ys = [1.0 / s - 1.0 / w for w, s in zip(sizes, clean) if w > 1]
        if xs:
            fit = sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)
            fit = min(max(fit, 0.0), 1.0)
            if noisy and fit < PRIOR_SERIAL_FRACTION:
                f, used_prior = PRIOR_SERIAL_FRACTION, True
            else:
                f, used_prior = fit, noisy
        else:
            f, used_prior = PRIOR_SERIAL_FRACTION, True

        object.__setattr__(self, "world_sizes", sizes)
        object.__setattr__(self, "speedup", tuple(raw))
        object.__setattr__(self, "clean_speedup", tuple(clean))
        object.__setattr__(self, "serial_fraction", f)
        object.__setattr__(self, "used_prior", used_prior)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_throughput(
        cls,
        world_sizes: Sequence[int],
        throughput_samples_per_s: Sequence[float],
        *,
        name: str = "",
        source: str = "",
    ) -> ScalingModel:
        """Build the model from measured throughputs (samples/s) at each world size.

        ``speedup = throughput(W) / throughput(1)``; ``W = 1`` must be among ``world_sizes``.

        Raises:
            ConfigError: mismatched lengths, no ``W = 1`` measurement, or a throughput that is
                not finite and positive.
        """
        sizes = list(world_sizes)
        tput = [float(t) for t in throughput_samples_per_s]
        if len(sizes) != len(tput) or not sizes:
            raise ConfigError(
                "scaling.throughput_samples_per_s",
                tput,
                f"a non-empty list as long as scaling.world_sizes ({len(sizes)} values)",
            )
        if any(not math.isfinite(t) or t <= 0 for t in tput):
            raise ConfigError("scaling.throughput_samples_per_s", tput, "finite numbers > 0")
        if 1 not in sizes:
            raise ConfigError("scaling.world_sizes", sizes, "a list that includes world size 1")
        base = tput[sizes.index(1)]
        return cls(
            world_sizes=tuple(sizes),
            speedup=tuple(t / base for t in tput),
            base_throughput_samples_per_s=base,
            name=name,
            source=source,
        )

    @classmethod
    def from_profile(cls, profile: Mapping[str, object]) -> ScalingModel:
        """Build the model from a scaling profile in docs/design.md's JSON format (already parsed).

        Reads ``world_sizes`` and ``speedup``, or ``world_sizes`` and
        ``throughput_samples_per_s`` when ``speedup`` is absent; ``name`` and ``source`` when
        present. When both are present the speedup is used and ``throughput(1)`` is kept.
        ``startup_s`` and ``resize_s`` are overheads for the planner, not part of this model;
        the caller reads them from the same dict.

        Raises:
            ConfigError: a missing or malformed field.
        """
        if not isinstance(profile, Mapping):
            raise ConfigError("scaling", profile, "a JSON object (dict) in the scaling-profile format")
        sizes = profile.get("world_sizes")
        if not isinstance(sizes, (list, tuple)):
            raise ConfigError("scaling.world_sizes", sizes, "a list of integers >= 1")
        name = str(profile.get("name", ""))
        source = str(profile.get("source", ""))
        speedup = profile.get("speedup")
        tput = profile.get("throughput_samples_per_s")
        if speedup is None:
            if tput is None:
                raise ConfigError(
                    "scaling.speedup", None, "a list of floats (or throughput_samples_per_s)"
                )
            if not isinstance(tput, (list, tuple)):
                raise ConfigError("scaling.throughput_samples_per_s", tput, "a list of floats > 0")
            return cls.from_throughput(sizes, tput, name=name, source=source)
        if not isinstance(speedup, (list, tuple)):
            raise ConfigError("scaling.speedup", speedup, "a list of floats > 0")
        base = None
        if isinstance(tput, (list, tuple)) and len(tput) == len(sizes) and 1 in sizes:
            candidate = tput[list(sizes).index(1)]
            if isinstance(candidate, (int, float)) and math.isfinite(candidate) and candidate > 0:
                base = float(candidate)
        return cls(
            world_sizes=tuple(sizes),
            speedup=tuple(speedup),
            base_throughput_samples_per_s=base,
            name=name,
            source=source,
        )

    @classmethod
    def prior(cls) -> ScalingModel:
        """The documented prior alone: Amdahl with ``f = PRIOR_SERIAL_FRACTION``."""
        return cls(world_sizes=(1,), speedup=(1.0,), name="prior", source="Amdahl prior, f=0.1")

    # -- evaluation ---------------------------------------------------------------------------

    def speedup_at(self, world_size: int) -> float:
        """Return ``s(W)``: finite, ``1 <= s(W) <= W``, non-decreasing in ``W``.

        Piecewise-linear between cleaned measured points; Amdahl beyond the last one, anchored
        there (see the module docstring).

        Raises:
            ConfigError: ``world_size`` is not an integer ``>= 1``.
        """
        w = world_size
        if isinstance(w, bool) or not isinstance(w, int) or w < 1:
            raise ConfigError("world_size", world_size, "an integer >= 1")
        sizes = self.world_sizes
        clean = self.clean_speedup
        last_w = sizes[-1]
        if w >= last_w:
            f = self.serial_fraction
            s = clean[-1] * amdahl_speedup(w, f) / amdahl_speedup(last_w, f)
        else:
            # the largest measured index with sizes[i] <= w (sizes[0] == 1 <= w)
            i = 0
            while sizes[i + 1] <= w:
                i += 1
            w0, w1 = sizes[i], sizes[i + 1]
            s0, s1 = clean[i], clean[i + 1]
            s = s0 + (s1 - s0) * (w - w0) / (w1 - w0)
        return min(max(s, 1.0), float(w))

    def sync_s(self, world_size: int) -> float | None:
        """``b(W) = T / s(W) - T / W``, at least 0: the seconds of an epoch at ``W`` that do not
        shrink with ``W`` (module docstring, "Configurations of other cost"); ``None`` when
        :attr:`epoch_time_s` (``T``) is unknown. ``0`` at ``W = 1``.

        Raises:
            ConfigError: ``world_size`` is not an integer ``>= 1``.
        """
        speedup = self.speedup_at(world_size)
        if self.epoch_time_s is None:
            return None
        return max(0.0, self.epoch_time_s / speedup - self.epoch_time_s / world_size)

    def throughput_at(self, world_size: int) -> float:
        """Return the predicted ``throughput(W)`` in samples/s: ``throughput(1) * s(W)``.

        Raises:
            ConfigError: the model has no ``throughput(1)`` (build it with
                :meth:`from_throughput`), or ``world_size`` is not an integer ``>= 1``.
        """
        if self.base_throughput_samples_per_s is None:
            raise ConfigError(
                "scaling.throughput_samples_per_s",
                None,
                "measured throughputs (build the model with ScalingModel.from_throughput)",
            )
        return self.base_throughput_samples_per_s * self.speedup_at(world_size)

    def to_dict(self) -> dict[str, object]:
        """The model as a scaling profile (docs/design.md format), with the derived fit added."""
        out: dict[str, object] = {
            "name": self.name,
            "world_sizes": list(self.world_sizes),
            "speedup": list(self.speedup),
            "clean_speedup": list(self.clean_speedup),
            "serial_fraction": self.serial_fraction,
            "used_prior": self.used_prior,
            "source": self.source,
        }
        if self.base_throughput_samples_per_s is not None:
            base = self.base_throughput_samples_per_s
            out["throughput_samples_per_s"] = [base * s for s in self.speedup]
        return out
