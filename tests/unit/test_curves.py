"""Learning-curve tables: validation, round trip, queries, and the parametric generator."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest

from seer_torch.curves import LearningCurveTable, TableError, generate_table
from seer_torch.errors import ConfigError

NAN = float("nan")


def _raw(**over):
    raw = {
        "name": "t",
        "metric": "val_accuracy",
        "mode": "max",
        "max_epochs": 3,
        "epoch_time_s": 2.0,
        "configs": [
            {"id": "a", "config": {"lr": 0.1}, "val": [0.5, 0.7, 0.8], "test": [0.4, 0.6, 0.75]},
            {"id": "b", "config": {"lr": 0.3}, "val": [0.6, 0.9, None], "epoch_time_s": 3.0},
            {"id": "c", "config": {"lr": 0.01}, "val": [0.2, 0.4, 0.85]},
        ],
    }
    raw.update(over)
    return raw


def test_parse_and_queries():
    t = LearningCurveTable.parse(_raw())
    assert len(t) == 3 and t.ids() == ["a", "b", "c"] and t.max_epochs == 3
    assert t.val_at(0, 1) == 0.5 and t.val_at(2, 3) == 0.85
    assert math.isnan(t.val_at(1, 3)) and t.diverged_at(1) == 3 and t.diverged_at(0) is None
    assert t.test_at(0, 3) == 0.75
    assert t.test_at(2, 2) == 0.4  # no test curve: falls back to val
    assert t.epoch_time_at(0) == 2.0 and t.epoch_time_at(1) == 3.0
    assert t.best_index() == 2  # NaN-safe: b's NaN at epoch 3 is worst
    assert t.best_index(2) == 1
    assert t.index_of("c") == 2
    assert t.val_matrix().shape == (3, 3)
    for bad in (0, 4, True, 1.0):
        with pytest.raises(ValueError, match="epoch"):
            t.val_at(0, bad)


def test_best_index_all_diverged():
    raw = _raw(configs=[{"id": "a", "config": {}, "val": [0.5, None, None]}])
    with pytest.raises(ValueError, match="diverged"):
        LearningCurveTable.parse(raw).best_index()


def test_save_load_round_trip_writes_nan_as_null(tmp_path):
    t = LearningCurveTable.parse(_raw(meta={"source": "test"}))
    path = tmp_path / "sub" / "table.json"
    t.save(path)
    text = path.read_text()
    assert "NaN" not in text and json.loads(text)["configs"][1]["val"][2] is None
    back = LearningCurveTable.load(path)
    assert back.to_dict()["configs"][0] == t.to_dict()["configs"][0]
    assert math.isnan(back.val_at(1, 3)) and back.meta["source"] == "test"
    assert [p.name for p in path.parent.iterdir()] == ["table.json"]  # no temporary file left


@pytest.mark.parametrize(
    "change, field, allowed",
    [
        (lambda r: r.pop("max_epochs"), "max_epochs", "required"),
        (lambda r: r.update(max_epochs=0), "max_epochs", "integer >= 1"),
        (lambda r: r.update(metric=""), "metric", "non-empty string"),
        (lambda r: r.update(metric="epochs"), "metric", "other than the record keys"),
        (lambda r: r.update(mode="minimize"), "mode", "max"),
        (lambda r: r.update(epoch_time_s=-1), "epoch_time_s", "> 0"),
        (lambda r: r.update(epoch_time_s=NAN), "epoch_time_s", "> 0"),
        (lambda r: r.update(name=""), "name", "non-empty"),
        (lambda r: r.update(configs=[]), "configs", "non-empty list"),
        (lambda r: r.update(extra=1), "extra", "only the keys"),
        (lambda r: r["configs"][1].update(id="a"), "configs[1].id", "unique"),
        (lambda r: r["configs"][2].update(config=[1]), "configs[2].config", "JSON object"),
        (lambda r: r["configs"][2].pop("val"), "configs[2].val", "required"),
        (lambda r: r["configs"][2].update(val=[0.1, 0.2]), "configs[2].val", "exactly max_epochs=3"),
        (lambda r: r["configs"][2].update(val=[0.1, 1.2, 0.3]), "configs[2].val[1]", "[0, 1]"),
        (lambda r: r["configs"][2].update(val=[0.1, "x", 0.3]), "configs[2].val[1]", "[0, 1]"),
        (
            lambda r: r["configs"][2].update(val=[0.1, None, 0.3]),
            "configs[2].val[2]",
            "diverged at configs[2].val[1]",
        ),
        (
            lambda r: r["configs"][0].update(test=[0.1, 0.2, 0.3, 0.4]),
            "configs[0].test",
            "exactly max_epochs=3",
        ),
        (lambda r: r["configs"][0].update(epoch_time_s=0), "configs[0].epoch_time_s", "> 0"),
        (lambda r: r["configs"][0].update(colour="red"), "configs[0].colour", "only the keys"),
    ],
)
def test_parse_errors_name_the_field(change, field, allowed):
    raw = _raw()
    change(raw)
    with pytest.raises(TableError) as ei:
        LearningCurveTable.parse(raw)
    assert ei.value.field == field
    assert allowed in str(ei.value)
    assert isinstance(ei.value, ValueError)


def test_load_errors(tmp_path):
    with pytest.raises(TableError, match="existing JSON file"):
        LearningCurveTable.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(TableError, match="valid JSON"):
        LearningCurveTable.load(tmp_path / "bad.json")


def test_direct_construction_is_validated():
    t = LearningCurveTable.parse(_raw())
    with pytest.raises(TableError):
        LearningCurveTable(name="x", max_epochs=2, epoch_time_s=1.0, configs=t.configs)


def test_module_is_pure():
    import subprocess

    code = "import sys, seer_torch.curves as c; c.generate_table(5, 4, 0); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ------------------------------------------------------------------ generator
def _spearman(x, y):
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def test_generator_is_deterministic_and_shaped():
    a = generate_table(300, 27, seed=5)
    b = generate_table(300, 27, seed=5)
    c = generate_table(300, 27, seed=6)
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    assert json.dumps(a.to_dict()) != json.dumps(c.to_dict())
    assert len(a) == 300 and a.max_epochs == 27
    v = a.val_matrix()
    assert v.shape == (300, 27)
    finite = v[~np.isnan(v)]
    assert finite.min() >= 0.0 and finite.max() <= 1.0
    # A diverged curve stays NaN (parse would have refused otherwise); the round trip holds.
    assert LearningCurveTable.parse(json.loads(json.dumps(a.to_dict(), allow_nan=True))).ids() == a.ids()


def test_generator_curves_cross_and_learn():
    t = generate_table(1000, 27, seed=1, divergence_fraction=0.0, collapse_fraction=0.0)
    v = t.val_matrix()
    assert not np.isnan(v).any()
    assert np.median(v[:, -1]) > np.median(v[:, 0]) + 0.2  # they learn
    rho_first = _spearman(v[:, 0], v[:, -1])
    rho_third = _spearman(v[:, 8], v[:, -1])
    assert 0.0 < rho_first < 0.8, rho_first  # epoch 1 misranks a lot
    assert rho_first < rho_third < 1.0  # later rungs rank better
    # The ten best at the end were mostly not leaders at epoch 1: slow starters end best.
    rank_at_1 = np.argsort(np.argsort(-v[:, 0]))
    assert np.median(rank_at_1[np.argsort(-v[:, -1])[:10]]) > 50
    best = t.best_index()
    assert 0.9 < v[best, -1] <= 1.0


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.25])
def test_generator_honours_divergence_fraction(fraction):
    n = 400
    t = generate_table(n, 20, seed=3, divergence_fraction=fraction, collapse_fraction=0.0)
    diverged = [i for i in range(n) if t.diverged_at(i) is not None]
    assert len(diverged) == round(fraction * n)
    assert sorted(diverged) == list(t.meta["diverged"])
    if diverged:
        # Mostly the large learning rates diverge.
        lrs = np.array([c.config["lr"] for c in t.configs])
        assert np.median(lrs[diverged]) > np.median(lrs)


def test_generator_late_collapse_is_finite_and_late():
    t = generate_table(400, 27, seed=2, divergence_fraction=0.0, collapse_fraction=0.05)
    collapsed = list(t.meta["collapsed"])
    assert len(collapsed) == 20
    v = t.val_matrix()
    assert not np.isnan(v[collapsed]).any()
    drops = v[collapsed, :17].max(axis=1) - v[collapsed, -1]  # collapse starts in the last third
    assert np.median(drops) > 0.1  # they end well below their peak
    others = [i for i in range(400) if i not in set(collapsed)]
    assert np.median(v[others, :17].max(axis=1) - v[others, -1]) < 0.02


def test_generator_per_config_epoch_times():
    t = generate_table(50, 5, seed=0, epoch_time_s=3.0, epoch_time_spread=0.2)
    times = [t.epoch_time_at(i) for i in range(len(t))]
    assert len(set(times)) > 40 and 0.5 < np.median(times) < 6.0
    assert generate_table(5, 5, seed=0).epoch_time_at(0) == 2.0


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(num_configurations=0, max_epochs=5, seed=0), "num_configurations"),
        (dict(num_configurations=5, max_epochs=0, seed=0), "max_epochs"),
        (dict(num_configurations=5, max_epochs=5, seed=-1), "seed"),
        (dict(num_configurations=5, max_epochs=5, seed=0, noise=-0.1), "noise"),
        (dict(num_configurations=5, max_epochs=5, seed=0, divergence_fraction=1.5), "divergence_fraction"),
        (
            dict(num_configurations=5, max_epochs=5, seed=0, divergence_fraction=0.8, collapse_fraction=0.5),
            "collapse_fraction",
        ),
    ],
)
def test_generator_argument_errors(kwargs, field):
    with pytest.raises(ConfigError) as ei:
        generate_table(**kwargs)
    assert ei.value.field == field
