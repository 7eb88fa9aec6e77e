"""End to end: `seer profile` measures a profile through real torchrun jobs, and `seer plan` takes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seer_torch.scaling.profile import load_profile

pytestmark = pytest.mark.integration

TINY = """
name = "tiny-profile"
seed = 1
[data]
dataset = "digits"
[model]
name = "digits_cnn"
[training]
max_epochs = 3
min_epochs = 1
eta = 2
global_batch = 64
micro_batch_max = 64
[budget]
time_budget_s = 150
money_budget_usd = 0.5
[resources]
world_size_ladder = [1, 2, 4]
[search]
max_configurations = 4
[search_space]
lr = { distribution = "loguniform", low = 0.05, high = 0.3 }
weight_decay = 0.0005
width = { choices = [8, 16] }
dropout = 0.0
"""


def _seer(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "seer_torch.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_seer_profile_two_slots_then_plan(tmp_path: Path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / "profile.json"
    proc = _seer("profile", str(cfg), "--slots", "2", "--steps", "3", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    prof = load_profile(out)
    assert prof.world_sizes == (1, 2)  # the ladder up to the slots
    assert prof.startup_s > 0 and prof.resize_s > 0 and prof.epoch_time_s > 0
    assert len(prof.throughput_samples_per_s) == 2 and all(t > 0 for t in prof.throughput_samples_per_s)
    raw = json.loads(out.read_text())
    for key in (
        "name",
        "world_sizes",
        "speedup",
        "throughput_samples_per_s",
        "startup_s",
        "resize_s",
        "source",
    ):
        assert key in raw
    assert "W" in proc.stdout and "samples/s" in proc.stdout and "efficiency" in proc.stdout
    assert proc.stderr.count(" probe: ") == 1  # one probe job (W=2) measured W=1 and W=2
    assert not list(tmp_path.glob(".profile.json.*"))  # the atomic write left no temporary file
    # The search space mixes widths 8 and 16: the probe job measures width 16 (the last choice),
    # and at W=1 the cheapest draw (width 8) too, at the FLOPs counted for each.
    from seer_torch.config import load_experiment
    from seer_torch.scaling.profiler import configuration_flops

    exp = load_experiment(cfg)
    flops = [configuration_flops(exp, {"width": w}) for w in (8, 16)]
    assert [f for f, _ in prof.epoch_time_by_flops] == pytest.approx(flops)
    assert prof.epoch_time_by_flops[1][1] == pytest.approx(prof.epoch_time_s)
    assert prof.epoch_time_for(flops[1]) == pytest.approx(prof.epoch_time_s)
    assert "epoch at W=1 by cost" in proc.stdout and '"width": 8' in raw["source"]

    plan = _seer("plan", str(cfg), "--slots", "2", "--profile", str(out), "--json", cwd=tmp_path)
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    assert json.loads(plan.stdout)["profile"]["resize_s"] == pytest.approx(prof.resize_s)
