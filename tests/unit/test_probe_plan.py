"""The worker's profile probe in this process (W = 1, no torchrun): without a probe plan it
times the job's own configuration; with one it times each listed configuration in rounds
and says how long its work beyond a launch's own set-up took (the profiler's start-up)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from seer_torch import trial
from seer_torch.errors import ConfigError
from seer_torch.runfiles import PROBE_PLAN_FILE
from seer_torch.training.config import TrialConfig
from seer_torch.training.probe import PROFILE_WINDOWS, W1_ROUNDS, profile

WIDE = {"lr": 0.1, "weight_decay": 0.0005, "width": 16, "dropout": 0.0}
NARROW = {**WIDE, "width": 8}


def _probe(tmp_path: Path, steps: int, plan=None) -> dict:
    (tmp_path / "config.json").write_text(json.dumps({
        "trial_id": "profile", "configuration": WIDE, "model": "digits_cnn", "dataset": "digits",
        "data_dir": None, "global_batch": 64, "micro_batch_max": 32, "max_epochs": 3, "seed": 0,
        "tensorboard_dir": None,
    }))
    if plan is not None:
        (tmp_path / PROBE_PLAN_FILE).write_text(json.dumps(plan))
    out = tmp_path / "profile.json"
    threads = torch.get_num_threads()
    try:
        t = trial.init(tmp_path, 1, cpu_threads=1)  # one thread, as a slot's worker
        profile(t, TrialConfig.load(str(tmp_path)), steps, str(out))
    finally:
        torch.set_num_threads(threads)
    return json.loads(out.read_text())


def test_without_a_plan_the_probe_times_its_own_configuration(tmp_path):
    p = _probe(tmp_path, 6)
    assert p["world_size"] == 1 and p["measured_steps"] == 6 and p["accum_steps"] == 2
    windows = p["step_time_windows_s"]
    assert len(windows) == PROFILE_WINDOWS
    assert p["step_time_s"] == pytest.approx(statistics.median(windows))
    assert p["throughput_samples_per_s"] == pytest.approx(64 / p["step_time_s"])
    assert p["measured_train_s"] == pytest.approx(sum(windows), rel=0.05)
    assert "w1" not in p and "probe_work_s" not in p


def test_a_plan_times_each_configuration_in_rounds_in_one_job(tmp_path):
    p = _probe(tmp_path, 6, {"w1_configurations": [WIDE, NARROW]})
    assert [m["configuration"] for m in p["w1"]] == [WIDE, NARROW]
    for m in p["w1"]:
        rounds = m["step_time_windows_s"]  # 2 steps a round, in 2 windows of 1 step
        assert len(rounds) == W1_ROUNDS and all(len(ws) == PROFILE_WINDOWS // W1_ROUNDS for ws in rounds)
        assert m["round_step_times_s"] == pytest.approx([statistics.median(ws) for ws in rounds])
        assert m["step_time_s"] == pytest.approx(statistics.fmean(m["round_step_times_s"]))
        assert m["throughput_samples_per_s"] == pytest.approx(64 / m["step_time_s"])
        assert m["measured_steps"] == 6 and m["ranks"] == 1 and m["eval_time_s"] > 0 and m["build_s"] > 0
        assert m["num_train_samples"] == p["num_train_samples"]
    # At W=1 the job's own measurement is the first configuration's.
    assert p["throughput_samples_per_s"] == p["w1"][0]["throughput_samples_per_s"]
    # Its work beyond the launch's own trainer: at least every timed step and validation pass.
    timed_s = sum(sum(ws) * 1 for m in p["w1"] for ws in m["step_time_windows_s"])  # 1 step a window
    assert p["probe_work_s"] >= timed_s + sum(m["eval_time_s"] for m in p["w1"][1:])


@pytest.mark.parametrize("plan, field", [
    ({"w1_configurations": []}, "probe_plan.json.w1_configurations"),
    ({"w1_configurations": [WIDE, 3]}, "probe_plan.json.w1_configurations"),
    ({"w1_configurations": [{**WIDE, "depth": 2}]}, "configuration.depth"),
])
def test_a_bad_plan_is_refused_naming_the_field(tmp_path, plan, field):
    with pytest.raises(ConfigError) as info:
        _probe(tmp_path, 2, plan)
    assert info.value.field == field
