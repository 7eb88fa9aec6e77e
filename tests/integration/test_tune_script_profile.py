"""`seer tune` on a user's script with no profile given (issue 15: the profiler measures the
user's own script): the run first times short jobs of examples/tabular_mlp/train.py at W = 1
(twice, side by side) and W = 2 under real torchrun, writes the profile the planner then uses,
and tunes to an answer on a tiny budget. About 40 s on 2 shared cores: three probe jobs and one round.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seer_torch.backends.local import pids_naming
from seer_torch.scaling.profile import load_profile

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "tabular_mlp" / "train.py"
NUM_TRAIN = 569 - 569 // 5  # breast cancer, 20% held out for validation


def _experiment() -> str:
    return f"""
name = "script-profile"
seed = 0
[trial]
script = "{SCRIPT}"
args = ["--dataset", "breast_cancer"]
[training]
max_epochs = 1
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
max_configurations = 2
[failures]
hang_timeout_s = 120
[search_space]
lr = {{ distribution = "loguniform", low = 1e-3, high = 1e-2 }}
weight_decay = 0.01
width = {{ choices = [16, 32] }}
depth = 1
"""


def test_seer_tune_profiles_the_script_itself_and_tunes(tmp_path: Path):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(_experiment())
    run_dir = tmp_path / "run"
    argv = [sys.executable, "-m", "seer_torch.cli", "tune", str(cfg), "--run-dir", str(run_dir), "--quiet",
         "--no-report"]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    where = f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    assert proc.returncode == 0, where

    # The probes: the script's own jobs at W = 1 twice (side by side) and W = 2, each epoch 1 of
    # the probe configuration (the last choice of width) in its own folder.
    records = json.loads((run_dir / "profile" / "probes.json").read_text())
    assert [r["world_size"] for r in records] == [1, 1, 2]
    steps_per_epoch = NUM_TRAIN // 32
    for r in records:
        assert r["epoch_s"] > 0 and r["startup_s"] > 0 and r["measured_epoch_s"] > 0, r
        assert (r["steps"], r["steps_per_epoch"], r["extrapolated"]) == (steps_per_epoch,) * 2 + (False,)
        assert r["startup_s"] < r["job_s"]
    for name in ("w1", "w1-2", "w2"):
        probe_dir = run_dir / "profile" / name
        assert json.loads((probe_dir / "config.json").read_text())["configuration"]["width"] == 32
        line = json.loads((probe_dir / "metrics.jsonl").read_text().splitlines()[0])
        assert line["probe_steps_per_epoch"] == steps_per_epoch
        assert 0 < line["probe_train_s"] <= line["epoch_time_s"]

    # The profile the run planned with: the same format as the built-in worker's.
    prof = load_profile(run_dir / "profile.json")
    assert prof.world_sizes == (1, 2) and prof.speedup[0] == 1.0 and prof.speedup[1] > 0
    w1 = [r["epoch_s"] for r in records if r["world_size"] == 1]
    assert prof.epoch_time_s == pytest.approx(sum(w1) / 2)
    assert prof.speedup[1] == pytest.approx(prof.epoch_time_s / records[2]["epoch_s"])
    assert "short jobs of train.py" in prof.source
    res = json.loads((run_dir / "results.json").read_text())
    assert res["best"] is not None and 0.5 < res["best"]["val_accuracy"] <= 1.0, where
    assert len(res["trials"]) == 2
    assert pids_naming(str(run_dir)) == []
