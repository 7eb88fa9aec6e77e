"""scripts/sim_vs_real.py replays a run's rounds (same trials, same W, same rungs) in the simulator."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import parse_experiment
from seer_torch.executor import Tuner
from seer_torch.policies.registry import make_policy

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("sim_vs_real", ROOT / "scripts" / "sim_vs_real.py")
svr = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(svr)


def _curve(config, epoch):
    return config["q"] * (1.0 - 0.5 / epoch)


def test_replaying_a_runs_rounds_reproduces_their_time_and_money(tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text(
        json.dumps(
            {
                "world_sizes": [1, 2],
                "speedup": [1.0, 1.8],
                "epoch_time_s": 10.0,
                "startup_s": 5.0,
                "resize_s": 5.0,
            }
        )
    )
    exp = parse_experiment(
        {
            "name": "replay",
            "seed": 3,
            "training": {
                "max_epochs": 9,
                "min_epochs": 1,
                "eta": 3,
                "global_batch": 64,
                "micro_batch_max": 64,
            },
            "budget": {"time_budget_s": 1e6, "money_budget_usd": 0.5, "price_usd_per_slot_hour": 3.6},
            "resources": {"num_slots": 2, "world_size_ladder": [1, 2]},
            "search": {"max_configurations": 64},
            "planner": {"profile": str(profile), "num_finalists": 1},
            "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}},
        }
    )

    def backend(clock):  # trials take 5 s an epoch, half the profile's: SEER carries more than planned
        return SimulatedBackend(
            2, clock, epoch_time_s=5.0, speedup=lambda w: {1: 1.0, 2: 1.8}[w], startup_s=5.0, curve=_curve
        )

    clock = SimulatedClock()
    run = Tuner(exp, tmp_path / "run", backend(clock), policy=make_policy("seer"), clock=clock).run()
    members = svr.round_members(run)
    # carried more than eta's cut (5 of 17), at most half of them
    assert [len(m[3]) for m in members] == [r["num_trials"] for r in run["rounds"]] == [17, 8, 4]
    assert [m[1] for m in members] == [r["rung_epoch"] for r in run["rounds"]]
    # every round's trials stood at the rung before
    for (_, _, _, later), (_, _, _, earlier) in zip(members[1:], members):
        assert set(later) <= set(earlier)
    clock = SimulatedClock()
    replay = Tuner(
        exp.with_overrides(time_budget_s=1e9, money_budget_usd=1e9),
        None,
        backend(clock),
        clock=clock,
        policy=svr.ReplayPolicy(members, 9),
    ).run()
    assert len(replay["rounds"]) == len(run["rounds"])
    for real, sim in zip(run["rounds"], replay["rounds"]):
        assert sim["num_trials"] == real["num_trials"] and sim["world_size"] == real["world_size"]
        assert sim["end_s"] - sim["start_s"] == pytest.approx(real["end_s"] - real["start_s"], rel=1e-9)
        assert sim["cost_usd"] == pytest.approx(real["cost_usd"], rel=1e-9)
