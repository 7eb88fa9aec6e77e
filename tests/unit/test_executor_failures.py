"""Failures on the simulated backend: retries from the checkpoint, the failure budget, hangs,
rendezvous-port clashes (issue 5, "Failures"). Same executor and SEER policy as real runs."""

from __future__ import annotations

import json
from pathlib import Path

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import parse_experiment
from seer_torch.executor import Tuner
from seer_torch.policies.registry import make_policy


def _curve(config, epoch):
    return config["q"] * (1.0 - 0.5 / epoch)


def _run(tmp_path: Path, faults=None, *, max_failures=2, hang_timeout_s=600.0, time_s=1e6, run_dir=True):
    tmp_path.mkdir(parents=True, exist_ok=True)
    profile = tmp_path / "profile.json"
    profile.write_text(
        json.dumps({"world_sizes": [1], "speedup": [1.0], "epoch_time_s": 10.0, "startup_s": 5.0})
    )
    exp = parse_experiment(
        {
            "name": "faults",
            "seed": 3,
            "training": {
                "max_epochs": 9,
                "min_epochs": 1,
                "eta": 3,
                "global_batch": 64,
                "micro_batch_max": 64,
            },
            "budget": {"time_budget_s": time_s, "money_budget_usd": 1e6, "price_usd_per_slot_hour": 3.6},
            "resources": {"num_slots": 2, "world_size_ladder": [1]},
            "search": {"max_configurations": 9},
            "planner": {"profile": str(profile), "num_finalists": 1},
            "failures": {"max_failures": max_failures, "hang_timeout_s": hang_timeout_s},
            "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}},
        }
    )
    clock = SimulatedClock()
    backend = SimulatedBackend(
        2, clock, epoch_time_s=10.0, speedup=lambda w: 1.0, startup_s=5.0, curve=_curve, faults=faults
    )
    tuner = Tuner(
        exp, tmp_path / "run" if run_dir else None, backend, policy=make_policy("seer"), clock=clock
    )
    return tuner.run(), backend


def _by_id(res):
    return {t["trial_id"]: t for t in res["trials"]}


def test_a_crash_is_retried_from_the_checkpoint_and_the_answer_does_not_change(tmp_path):
    clean, _ = _run(tmp_path / "a")
    # t000 crashes after 0 epochs of its first job; the finalist crashes once mid-way in round 3.
    final = clean["best"]["trial_id"]
    crashes = {
        ("t000", 0): ("crash", 0, "RuntimeError: injected"),
        (final, 2): ("crash", 3, "RuntimeError: injected"),
    }
    res, backend = _run(tmp_path / "b", faults=lambda tid, attempt: crashes.get((tid, attempt)))
    assert res["best"]["trial_id"] == final and res["best"]["epochs"] == 9
    assert res["best"]["val_accuracy"] == clean["best"]["val_accuracy"]
    trials = _by_id(res)
    assert trials["t000"]["failures"] == 1 and trials[final]["failures"] == 1
    # Nothing trained twice: the retried job went on from the epochs its crashed one completed.
    jobs = [j for j in backend.launches if j.spec.trial_id == final]
    assert [(j.first_epoch, j.spec.until_epoch) for j in jobs] == [(0, 1), (1, 3), (3, 9), (6, 9)]
    assert [r["num_trials"] for r in res["rounds"]] == [9, 3, 1]


def test_a_trial_out_of_retries_fails_with_its_error_and_the_run_goes_on(tmp_path):
    res, _ = _run(
        tmp_path,
        faults=lambda tid, a: ("crash", 0, "CUDA error: out of memory") if tid == "t004" else None,
        max_failures=2,
    )
    t = _by_id(res)["t004"]
    assert t["status"] == "failed" and t["error"] == "CUDA error: out of memory"
    assert t["failures"] == 2  # two retries, the third crash is final
    assert res["best"] is not None and res["best"]["trial_id"] != "t004" and res["best"]["epochs"] == 9
    assert res["stop_reason"] is None


def test_a_hung_job_is_killed_after_the_timeout_and_counts_as_a_failure(tmp_path):
    # t001's first job trains nothing and never ends; with 60 s of no progress it is killed.
    res, backend = _run(
        tmp_path,
        faults=lambda tid, a: ("hang", 0, "") if (tid, a) == ("t001", 0) else None,
        hang_timeout_s=60.0,
    )
    t = _by_id(res)["t001"]
    assert t["failures"] == 1 and t["epochs"] >= 1
    hung = [j for j in backend.launches if j.spec.trial_id == "t001"][0]
    assert hung.result.end_s - hung.start_s == 60.0  # killed exactly at the timeout
    # Out of retries, a hang fails the trial with a message that says so.
    res, _ = _run(
        tmp_path / "again",
        faults=lambda tid, a: ("hang", 0, "") if tid == "t001" else None,
        hang_timeout_s=60.0,
        max_failures=0,
    )
    t = _by_id(res)["t001"]
    assert t["status"] == "failed" and "no progress for 60 s" in t["error"]


def test_a_rendezvous_port_clash_is_retried_without_using_the_failure_budget(tmp_path):
    clash = (
        "torch.distributed.DistNetworkError: The server socket has failed to listen on any local "
        "network address. port: 29500, useIpv6: 0, code: -98, name: EADDRINUSE, message: address "
        "already in use"
    )
    res, _ = _run(
        tmp_path,
        faults=lambda tid, a: ("crash", 0, clash) if (tid, a) in {("t002", 0), ("t002", 1)} else None,
        max_failures=0,
    )
    t = _by_id(res)["t002"]
    assert t["status"] != "failed" and t["failures"] == 0 and t["epochs"] >= 1
