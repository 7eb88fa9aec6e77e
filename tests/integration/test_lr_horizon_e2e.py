"""End to end (issue 13, fault 1): the tuner lowers a trial's target between two real torchrun
jobs, and the answer's last optimizer step ends its learning-rate schedule.

One trial of a tiny digits MLP (19 optimizer steps an epoch): a job at W=1 to epoch 2 while
the target is 6, then the policy lowers its target to 4 (as a SEER re-plan does, ``BEST
EFFORT``) and a job at W=2 trains it to epoch 4, the answer. Two launches, well under a minute.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seer_torch.backends.local import LocalBackend
from seer_torch.config import parse_experiment
from seer_torch.executor import Tuner
from seer_torch.policies.base import Finish, Launch, PolicyContext, Snapshot

pytestmark = pytest.mark.integration

STEPS_PER_EPOCH = 1257 // 64
PEAK_LR = 0.2


class LoweredTargetPolicy:
    """Trains configuration 0 to epoch 2 at W=1 with target 6, then lowers the target to 4 and
    trains it there at W=2. Pure."""

    name = "lowered-target"
    reserved_slots = None

    def __init__(self) -> None:
        self.target = 6
        self.jobs_ended = 0

    def setup(self, context: PolicyContext) -> None:
        pass

    @property
    def schedule_epochs(self) -> int:
        return self.target

    def decide(self, snapshot: Snapshot):
        if any(ev.outcome != "reached" for ev in snapshot.events):
            return [Finish(f"a job did not reach its epoch: {snapshot.events}")]
        self.jobs_ended += len(snapshot.events)
        if not snapshot.trials:
            return [Launch(0, 1, 2, 1)]
        if self.jobs_ended == 1 and snapshot.events:
            self.target = 4  # a re-plan lowered the target
            return [Launch(0, 2, 4, 2)]
        if self.jobs_ended == 2:
            return [Finish("")]
        return []

    def answer(self, snapshot: Snapshot):
        trial = next(iter(snapshot.trials.values()), None)
        return (trial.trial_id, trial.epochs) if trial is not None and trial.epochs else None

    def report(self) -> dict:
        return {"policy": self.name}


def test_the_answer_ends_its_schedule_after_the_target_was_lowered(tmp_path: Path, monkeypatch):
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"world_sizes": [1, 2], "speedup": [1.0, 1.6], "epoch_time_s": 0.3,
                                   "startup_s": 5.0, "resize_s": 5.0}))
    exp = parse_experiment({
        "name": "lr-horizon", "seed": 0,
        "data": {"dataset": "digits"},
        "model": {"name": "digits_mlp"},
        "training": {"max_epochs": 6, "min_epochs": 1, "eta": 2, "global_batch": 64, "micro_batch_max": 64},
        "budget": {"time_budget_s": 300.0, "money_budget_usd": 1.0, "price_usd_per_slot_hour": 1.0},
        "resources": {"num_slots": 2, "world_size_ladder": [1, 2]},
        "search": {"max_configurations": 1},
        "planner": {"profile": str(profile)},
        "search_space": {"lr": PEAK_LR, "weight_decay": 5e-4, "width": 16, "dropout": 0.0},
    })
    monkeypatch.setenv("SEER_RECORD_SAMPLES", str(tmp_path / "record"))
    run_dir = tmp_path / "run"
    res = Tuner(exp, run_dir, LocalBackend(2), policy=LoweredTargetPolicy()).run()

    best = res["best"]
    assert best is not None and best["epochs"] == 4 and best["world_sizes"] == [1, 2], res
    trial_dir = run_dir / "trials" / best["trial_id"]
    metrics = [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(m["epoch"], m["world_size"]) for m in metrics] == [(1, 1), (2, 1), (3, 2), (4, 2)]
    # The answer's last optimizer step ends its schedule: the learning rate after it is 0.
    assert metrics[-1]["step"] == 4 * STEPS_PER_EPOCH
    assert metrics[-1]["lr"] == 0.0, (
        f"after the answer's last step (epoch 4) the learning rate is {metrics[-1]['lr']:.4g}, "
        f"{metrics[-1]['lr'] / PEAK_LR:.1%} of its peak")
    assert json.loads((trial_dir / "config.json").read_text())["max_epochs"] == 4
    assert best["partial"] is False and best["schedule_epochs"] == 4

    # Every step at W=1 and at W=2 (both ranks) used the schedule's factor at that step: the
    # cosine to epoch 6, re-anchored at the resume step (epoch 2) to end at epoch 4.
    from seer_torch.worker import LrSchedule

    expected = LrSchedule.cosine(6 * STEPS_PER_EPOCH).retarget(2 * STEPS_PER_EPOCH, 4 * STEPS_PER_EPOCH)
    records = [json.loads(line) for rank in (0, 1)
               for line in Path(f"{tmp_path / 'record'}.rank{rank}").read_text().splitlines()]
    change = 2 * STEPS_PER_EPOCH
    assert {(r["step"], r["world_size"]) for r in records} == (
        {(s, 1) for s in range(1, change + 1)} | {(s, 2) for s in range(change + 1, 2 * change + 1)})
    for r in records:
        assert r["lr"] == pytest.approx(PEAK_LR * expected.factor(r["step"] - 1), rel=1e-12, abs=1e-15), r
    state = torch.load(trial_dir / "checkpoint.pt", weights_only=True)["state"]
    assert LrSchedule.from_list(state["lr_schedule"]) == expected
    assert state["scheduler"]["_last_lr"] == [0.0]
