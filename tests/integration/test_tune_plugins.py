"""End to end: `seer tune` trains a plug-in model on a plug-in dataset (``[model] name =
"MODULE:build"``, ``[data] dataset = "MODULE:load"``) with the built-in worker, real torchrun.

The module sits beside the experiment file only; the tuner runs from another folder with a
``PYTHONPATH`` that does not hold it, so the jobs find it through the experiment's
``python_path`` (its file's folder, first on every job's ``PYTHONPATH``). One of the three
configurations makes ``build`` return a model with the wrong number of logits: that trial fails
at its first forward with the contract's message, the run goes on and answers with another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

MODULE = "tabplug"

PLUGIN = '''
import os
from pathlib import Path

import torch
from torch import nn


def load(data_dir=None):
    """160 / 48 / 48 samples of 6 standardised features; the class is the sign of x0 + x1."""
    if "RANK" in os.environ:  # a torchrun worker: note the PYTHONPATH it was given
        Path(__file__).with_name(f"pythonpath-{os.getpid()}.txt").write_text(os.environ.get("PYTHONPATH", ""))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return {"train_x": x[:160], "train_y": y[:160], "val_x": x[160:208], "val_y": y[160:208],
            "test_x": x[208:], "test_y": y[208:], "num_classes": 2}


def build(*, num_classes, input_shape, hidden=16, extra_logits=0):
    return nn.Sequential(nn.Linear(input_shape[0], hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes + extra_logits))
'''

EXPERIMENT = f'''
name = "plugins"
seed = 3

[data]
dataset = "{MODULE}:load"

[model]
name = "{MODULE}:build"

[training]
max_epochs = 2
min_epochs = 1
eta = 2
global_batch = 16

[budget]
time_budget_s = 200
money_budget_usd = 1.0

[resources]
num_slots = 2
world_size_ladder = [1, 2]

[search]
max_configurations = 3

[planner]
profile = "profile.json"

[failures]
max_failures = 0

[search_space]
lr = {{ distribution = "uniform", low = 0.2, high = 0.3 }}
extra_logits = {{ choices = [0, 1] }}
'''

PROFILE = {"world_sizes": [1, 2], "speedup": [1.0, 1.5], "epoch_time_s": 0.2, "startup_s": 6.0,
           "resize_s": 6.0}


def test_seer_tune_with_a_plugin_model_and_dataset(tmp_path: Path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(PLUGIN)
    (folder / "experiment.toml").write_text(EXPERIMENT)
    (folder / "profile.json").write_text(json.dumps(PROFILE))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": "/nonexistent/already/there"}
    proc = subprocess.run([sys.executable, "-m", "seer_torch.cli", "tune", str(folder / "experiment.toml"),
                           "--run-dir", str(run_dir), "--quiet",
         "--no-report"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    res = json.loads((run_dir / "results.json").read_text())
    trials = {t["trial_id"]: t for t in res["trials"]}
    assert [t["config"]["extra_logits"] for t in res["trials"]] == [0, 0, 1]  # seed 3's draws
    # The configuration whose build breaks the contract failed at its first forward, saying so.
    bad = res["trials"][2]
    assert bad["status"] == "failed" and bad["epochs"] == 0
    failure = "\n".join([bad["error"] or "", *(bad.get("stderr_tail") or [])])
    assert f"model.name: got '{MODULE}:build'" in failure, failure
    assert "to logits (N, num_classes) = (16, 2) (its output: (16, 3))" in failure, failure
    # The others trained; the answer is one of them, trained to the last rung.
    best = res["best"]
    assert best["config"]["extra_logits"] == 0 and best["epochs"] == 2
    assert 0.6 < best["val_accuracy"] <= 1.0 and best["test_accuracy"] is not None
    assert trials[best["trial_id"]]["status"] == "completed"
    for t in res["trials"][:2]:
        trial_dir = run_dir / "trials" / t["trial_id"]
        config = json.loads((trial_dir / "config.json").read_text())
        assert (config["model"], config["dataset"]) == (f"{MODULE}:build", f"{MODULE}:load")
        rows = [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == list(range(1, t["epochs"] + 1))
    # Every worker had the experiment's folder first on its PYTHONPATH, the caller's after it.
    seen = {p.read_text() for p in folder.glob("pythonpath-*.txt")}
    assert seen == {f"{folder.resolve()}{os.pathsep}/nonexistent/already/there"}
    assert 'python_path = ["' + str(folder.resolve()) + '"]' in (run_dir / "experiment.toml").read_text()
