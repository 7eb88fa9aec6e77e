"""The learning-curve table shipped with the package parses and is the recorded size."""

from __future__ import annotations

import math
from importlib import resources

from seer_torch.config import load_experiment, sample_configurations
from seer_torch.curves import LearningCurveTable


def test_shipped_digits_table():
    path = resources.files("seer_torch") / "tables" / "digits_default_64x27.json"
    table = LearningCurveTable.load(str(path))
    assert len(table) >= 64 and table.max_epochs >= 27
    assert table.name == "digits-default" and table.metric == "val_accuracy" and table.mode == "max"
    assert table.meta["source"] == "seer bench record" and table.meta["world_size"] == 1
    # The configurations are the default experiment's, with the ids a tune run gives them.
    exp = load_experiment(None)
    assert [dict(c.config) for c in table.configs] == sample_configurations(exp, len(table))
    assert table.ids()[:3] == ["t000", "t001", "t002"]
    assert all(c.test is not None for c in table.configs)
    assert 0.1 < table.epoch_time_s < 30.0
    best = table.best_index()
    assert 0.9 < table.val_at(best, table.max_epochs) <= 1.0
    finals = [v for c in table.configs if not math.isnan(v := c.val[-1])]
    assert len(finals) >= 0.8 * len(table)
