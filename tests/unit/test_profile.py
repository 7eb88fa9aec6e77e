"""Scaling profiles: arithmetic from probe outputs, parsing, and the shipped estimate."""

from __future__ import annotations

import json

import pytest

from seer_torch.cli import shipped_profile_path
from seer_torch.config import load_experiment
from seer_torch.errors import ConfigError
from seer_torch.scaling.profile import load_profile, parse_profile
from seer_torch.scaling.profiler import profile_from_probes


def _probe(w, thr, step_s, eval_s, steps=12, n_train=1257):
    return {"world_size": w, "throughput_samples_per_s": thr, "step_time_s": step_s, "eval_time_s": eval_s,
            "measured_steps": steps, "num_train_samples": n_train, "train_start_unix_s": 0.0}


def test_profile_from_probes():
    probes = [
        (_probe(1, 640.0, 0.1, 0.2), 1000.0, 11.4),   # 12 x 0.1 + 0.2 = 1.4 s working, 10 s fixed
        (_probe(2, 1152.0, 0.055, 0.1), 1020.0, 12.76),  # 0.66 + 0.1 = 0.76 s working, 12 s fixed
    ]
    p = profile_from_probes("x", probes, source="test")
    assert p.world_sizes == (1, 2)
    assert p.speedup == pytest.approx((1.0, 1.8))
    assert p.epoch_time_s == pytest.approx(1257 / 640 + 0.2)
    assert p.startup_s == pytest.approx(12.0)  # the larger fixed cost of the two
    assert p.scaling.speedup_at(2) == pytest.approx(1.8)
    with pytest.raises(ValueError):
        profile_from_probes("x", probes[1:], source="test")


def test_parse_profile_errors_name_the_field():
    good = {"world_sizes": [1, 2], "speedup": [1.0, 1.5], "epoch_time_s": 1.0, "startup_s": 5.0}
    assert parse_profile(good).resize_s == 5.0
    with pytest.raises(ConfigError, match="epoch_time_s"):
        parse_profile({k: v for k, v in good.items() if k != "epoch_time_s"})
    with pytest.raises(ConfigError, match="speedup"):
        parse_profile({**good, "speedup": [1.0]})
    with pytest.raises(ConfigError, match="world_sizes"):
        parse_profile({**good, "world_sizes": [2, 1]})


def test_shipped_profile_for_the_default_parses(tmp_path):
    path = shipped_profile_path(load_experiment(None))
    assert path is not None
    p = load_profile(path)
    assert p.world_sizes[0] == 1 and p.epoch_time_s > 0 and p.startup_s > 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="valid JSON"):
        load_profile(bad)
    (tmp_path / "list.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="JSON object"):
        load_profile(tmp_path / "list.json")
