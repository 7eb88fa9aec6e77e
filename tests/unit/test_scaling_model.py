"""The scaling model s(W) (CASE 17)."""

from __future__ import annotations

import dataclasses
import math
import random

import pytest

from seer_torch.errors import ConfigError
from seer_torch.scaling.model import PRIOR_SERIAL_FRACTION, ScalingModel, amdahl_speedup

# ucbrise/hypersched's cifar10-resnet18 V100 profile (shared/data/scaling_profiles.json)
RESNET18 = {"name": "cifar10-resnet18-v100", "world_sizes": [1, 2, 4, 8], "speedup": [1.0, 1.85, 3.43, 5.40]}


def test_case17_fit_reproduces_measured_throughput():
    model = ScalingModel.from_throughput([1, 2, 4], [100.0, 180.0, 300.0])
    for w, measured in ((1, 100.0), (2, 180.0), (4, 300.0)):
        assert model.throughput_at(w) == pytest.approx(measured, rel=0.05)
    t8 = model.throughput_at(8)
    assert math.isfinite(t8)
    assert 300.0 <= t8 < 800.0  # sublinear and non-decreasing
    # the least-squares Amdahl fit of these points: f = 0.1111..., s(8) = 4.5
    assert model.serial_fraction == pytest.approx(1 / 9, rel=1e-3)
    assert t8 == pytest.approx(450.0, rel=1e-3)
    assert not model.used_prior


def test_interpolation_is_piecewise_linear_between_points():
    model = ScalingModel.from_throughput([1, 2, 4], [100.0, 180.0, 300.0])
    assert model.speedup_at(3) == pytest.approx(2.4)  # halfway between 1.8 and 3.0
    assert model.throughput_at(3) == pytest.approx(240.0)


def test_single_point_falls_back_to_the_prior():
    model = ScalingModel(world_sizes=(1,), speedup=(1.0,))
    assert model.used_prior
    assert model.serial_fraction == PRIOR_SERIAL_FRACTION
    assert model.speedup_at(1) == 1.0
    assert model.speedup_at(8) == pytest.approx(1 / (0.1 + 0.9 / 8))  # 4.7059
    assert ScalingModel.prior().speedup_at(4) == pytest.approx(amdahl_speedup(4, 0.1))


def test_non_monotone_points_are_pooled_and_never_optimistic():
    model = ScalingModel(world_sizes=(1, 2, 4, 8), speedup=(1.0, 1.9, 1.5, 5.0))
    assert model.used_prior
    # the dip at 4 is averaged with its neighbour: (1.9 + 1.5) / 2
    assert model.speedup_at(2) == pytest.approx(1.7)
    assert model.speedup_at(4) == pytest.approx(1.7)
    assert model.serial_fraction >= PRIOR_SERIAL_FRACTION
    values = [model.speedup_at(w) for w in range(1, 65)]
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_superlinear_measurement_is_clipped_to_w():
    model = ScalingModel(world_sizes=(1, 2), speedup=(1.0, 2.6))
    assert model.used_prior
    assert model.speedup_at(2) == 2.0
    # beyond: anchored Amdahl with the prior's serial fraction, never superlinear
    assert model.speedup_at(4) == pytest.approx(2.0 * amdahl_speedup(4, 0.1) / amdahl_speedup(2, 0.1))
    assert all(model.speedup_at(w) <= w for w in range(1, 200))


def test_perfectly_linear_points_extrapolate_linearly_but_not_beyond():
    model = ScalingModel(world_sizes=(1, 2, 4), speedup=(1.0, 2.0, 4.0))
    assert model.serial_fraction == 0.0
    assert not model.used_prior
    assert model.speedup_at(16) == pytest.approx(16.0)


def test_random_points_give_a_sane_curve():
    rng = random.Random(17)
    for _ in range(300):
        sizes = sorted(rng.sample(range(2, 33), rng.randint(1, 5)))
        speeds = [rng.uniform(0.3, 1.5 * w) for w in sizes]
        model = ScalingModel(world_sizes=(1, *sizes), speedup=(1.0, *speeds))
        previous = 0.0
        for w in range(1, 129):
            s = model.speedup_at(w)
            assert math.isfinite(s)
            assert 1.0 <= s <= w
            assert s >= previous - 1e-12
            previous = s


def test_from_profile_reads_the_design_format():
    model = ScalingModel.from_profile(RESNET18)
    assert model.name == "cifar10-resnet18-v100"
    assert model.speedup_at(4) == pytest.approx(3.43)
    assert model.speedup_at(8) == pytest.approx(5.40)
    assert 5.40 < model.speedup_at(16) < 2 * 5.40
    assert not model.used_prior
    from_tput = ScalingModel.from_profile(
        {"name": "x", "world_sizes": [1, 2], "throughput_samples_per_s": [50.0, 90.0]}
    )
    assert from_tput.speedup_at(2) == pytest.approx(1.8)
    assert from_tput.throughput_at(2) == pytest.approx(90.0)
    again = ScalingModel.from_profile(from_tput.to_dict())
    assert again.speedup_at(2) == pytest.approx(1.8)


def test_world_size_one_is_added_and_points_are_sorted():
    model = ScalingModel(world_sizes=(4, 2), speedup=(3.0, 1.8))
    assert model.world_sizes == (1, 2, 4)
    assert model.speedup_at(2) == pytest.approx(1.8)
    assert model.speedup_at(1) == 1.0


def test_model_is_frozen():
    model = ScalingModel.from_profile(RESNET18)
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.serial_fraction = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"world_sizes": (1, 2), "speedup": (1.0,)}, "scaling.world_sizes"),
        ({"world_sizes": (), "speedup": ()}, "scaling.world_sizes"),
        ({"world_sizes": (0, 2), "speedup": (1.0, 1.5)}, "scaling.world_sizes"),
        ({"world_sizes": (1, 2, 2), "speedup": (1.0, 1.5, 1.6)}, "scaling.world_sizes"),
        ({"world_sizes": (1, 2), "speedup": (1.0, float("nan"))}, "scaling.speedup"),
        ({"world_sizes": (1, 2), "speedup": (1.0, -1.0)}, "scaling.speedup"),
        ({"world_sizes": (1, 2), "speedup": (0.5, 1.0)}, "scaling.speedup"),
    ],
)
def test_bad_points_raise_config_error(kwargs, field):
    with pytest.raises(ConfigError) as info:
        ScalingModel(**kwargs)
    assert info.value.field == field


def test_bad_throughput_and_queries_raise_config_error():
    with pytest.raises(ConfigError) as info:
        ScalingModel.from_throughput([2, 4], [100.0, 180.0])
    assert info.value.field == "scaling.world_sizes"
    with pytest.raises(ConfigError) as info:
        ScalingModel.from_throughput([1, 2], [100.0, 0.0])
    assert info.value.field == "scaling.throughput_samples_per_s"
    with pytest.raises(ConfigError) as info:
        ScalingModel.from_profile({"world_sizes": [1, 2]})
    assert info.value.field == "scaling.speedup"
    model = ScalingModel.from_profile(RESNET18)
    with pytest.raises(ConfigError) as info:
        model.throughput_at(2)  # no throughput(1) known
    assert info.value.field == "scaling.throughput_samples_per_s"
    with pytest.raises(ConfigError) as info:
        model.speedup_at(0)
    assert info.value.field == "world_size"


def _shared_profiles():
    import json
    from pathlib import Path

    here = Path(__file__).resolve()
    # the shared folder next to the checkout, else the copy kept in tests/data (same file)
    for path in (here.parents[3] / "shared" / "data" / "scaling_profiles.json",
                 here.parents[1] / "data" / "scaling_profiles.json"):
        if path.exists():
            return json.loads(path.read_text())["profiles"]
    raise AssertionError("tests/data/scaling_profiles.json is missing")


def test_every_shared_profile_is_monotone_and_never_superlinear():
    profiles = _shared_profiles()
    assert len(profiles) >= 6
    for raw in profiles:
        model = ScalingModel.from_profile(raw)
        assert not model.used_prior, raw["name"]  # clean measurements: no prior needed
        for w, s in zip(raw["world_sizes"], raw["speedup"]):
            assert model.speedup_at(w) == pytest.approx(s), raw["name"]  # the table is reproduced
        ws = [*range(1, 9), 16, 64]
        values = [model.speedup_at(w) for w in ws]
        assert all(math.isfinite(v) and 1.0 <= v <= w for v, w in zip(values, ws)), (raw["name"], values)
        assert all(b >= a for a, b in zip(values, values[1:])), (raw["name"], values)
        assert values[ws.index(16)] < 16 and values[ws.index(64)] < 64  # sublinear beyond the table
        assert values[ws.index(64)] <= 1 / model.serial_fraction  # Amdahl's ceiling


def test_case17_noisy_points_are_never_more_optimistic_than_the_prior():
    # W=4 dips below W=2 and W=8 is superlinear: cleaned, then bounded by the prior beyond W=8
    model = ScalingModel.from_throughput([1, 2, 4, 8], [100.0, 190.0, 170.0, 900.0])
    assert model.used_prior and model.serial_fraction >= PRIOR_SERIAL_FRACTION
    assert model.throughput_at(8) <= 800.0
    prior = ScalingModel.prior()
    for w in (16, 32, 64, 256):
        s = model.speedup_at(w)
        assert s <= w
        # growth past the last point is at most the prior's growth
        assert s / model.speedup_at(8) <= prior.speedup_at(w) / prior.speedup_at(8) + 1e-12
