"""End to end: `seer tune` on the tabular example script ranked by its validation loss
(``metric = "val_loss"``, ``mode = "min"``), real torchrun jobs: the answer has the lowest loss
among the trials at the top rung reached (the highest, were the mode ignored), any trial
eliminated at a rung had a higher loss there than those kept, and results.json, config.json
and the summary name the metric and carry the values the script reported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seer_torch.backends.local import pids_naming
from seer_torch.policies.base import ANSWER_TOLERANCE

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tabular_mlp"


def _experiment() -> str:
    return f"""
name = "tabular-min-loss"
seed = 1
metric = "val_loss"
mode = "min"
[trial]
script = "{EXAMPLE / 'train.py'}"
args = ["--dataset", "breast_cancer"]
[training]
max_epochs = 2
min_epochs = 1
eta = 2
global_batch = 32
micro_batch_max = 32
[budget]
time_budget_s = 400
money_budget_usd = 1.0
[resources]
num_slots = 2
world_size_ladder = [1, 2]
[search]
max_configurations = 4
[planner]
profile = "{EXAMPLE / 'profile.json'}"
num_finalists = 2
[failures]
hang_timeout_s = 120
[search_space]
lr = {{ distribution = "loguniform", low = 1e-4, high = 3e-2 }}
weight_decay = {{ distribution = "loguniform", low = 1e-4, high = 1e-1 }}
width = {{ choices = [16, 32] }}
depth = {{ choices = [1] }}
"""


def test_seer_tune_ranks_the_example_by_its_validation_loss(tmp_path: Path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(_experiment())
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "seer_torch.cli", "tune", str(cfg), "--run-dir", str(run_dir), "--quiet",
         "--no-report"]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=420)
    where = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, where

    res = json.loads((run_dir / "results.json").read_text())
    assert (res["metric"], res["mode"]) == ("val_loss", "min")
    trials = {t["trial_id"]: t for t in res["trials"]}
    assert len(trials) == 4 and all(t["status"] != "failed" for t in trials.values()), where
    for tid, t in trials.items():  # the values are the script's own, epoch by epoch
        rows = [json.loads(x) for x in (run_dir / "trials" / tid / "metrics.jsonl").read_text().splitlines()]
        assert t["metric_by_epoch"] == {str(r["epoch"]): r["val_loss"] for r in rows}, tid
        assert t["val_loss"] == rows[-1]["val_loss"] and 0.0 < t["val_loss"] < 1.0
        assert json.loads((run_dir / "trials" / tid / "config.json").read_text())["metric"] == "val_loss"
    # A rung closed before the last (the plan may train all four in one round: start-ups cost
    # more than these epochs): the trials kept have lower losses there than those eliminated.
    for t_out in (t for t in trials.values() if t["status"] == "eliminated"):
        rung = str(t_out["epochs"])
        kept = [t["metric_by_epoch"][rung] for t in trials.values() if t["epochs"] > t_out["epochs"]]
        assert kept and max(kept) < t_out["metric_by_epoch"][rung], (t_out, kept)
    # The answer: the lowest val_loss at the top rung reached (or, by the answer rule, one kept
    # at the rung below that is lower by more than the tolerance).
    best = res["best"]
    top = max(int(e) for t in trials.values() for e in t["metric_by_epoch"])
    at_top = [t["metric_by_epoch"][str(top)] for t in trials.values() if str(top) in t["metric_by_epoch"]]
    assert len(at_top) >= 2 and len(set(at_top)) == len(at_top), at_top  # a choice by the loss
    if best["epochs"] == top:
        assert best["val_loss"] == min(at_top), (best, at_top)
    else:
        assert best["val_loss"] < min(at_top) - ANSWER_TOLERANCE, (best, at_top)
    assert best["val_loss"] == trials[best["trial_id"]]["metric_by_epoch"][str(best["epochs"])]
    assert "val_accuracy" not in best
    assert f"val_loss {best['val_loss']:.4f} (minimized)" in proc.stdout, proc.stdout[-2000:]
    assert pids_naming(str(run_dir)) == []
