"""`seer resume` on the simulated backend: the tuner is killed outright at several points
(emulated SIGKILL: nothing stopped, nothing written) and resumed from its journal. The
simulated backend object outlives the tuner, as processes and files outlive a killed tuner.
The real-process version (SIGKILL of `seer tune`, torchrun jobs) is in
tests/integration/test_fault_injection.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import parse_experiment
from seer_torch.executor import Tuner
from seer_torch.policies.registry import make_policy
from seer_torch.runfiles import atomic_write_text


def _curve(config, epoch):
    return config["q"] * (1.0 - 0.5 / epoch)


def _setup(tmp_path: Path):
    tmp_path.mkdir(parents=True, exist_ok=True)
    profile = tmp_path / "profile.json"
    profile.write_text(
        json.dumps({"world_sizes": [1, 2], "speedup": [1.0, 1.8], "epoch_time_s": 10.0, "startup_s": 5.0})
    )
    exp = parse_experiment(
        {
            "name": "resume",
            "seed": 5,
            "training": {
                "max_epochs": 9,
                "min_epochs": 1,
                "eta": 3,
                "global_batch": 64,
                "micro_batch_max": 64,
            },
            "budget": {"time_budget_s": 1e6, "money_budget_usd": 1e6, "price_usd_per_slot_hour": 3.6},
            "resources": {"num_slots": 2, "world_size_ladder": [1, 2]},
            "search": {"max_configurations": 9},
            "planner": {"profile": str(profile)},
            "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}},
        }
    )
    clock = SimulatedClock()
    backend = SimulatedBackend(
        2, clock, epoch_time_s=10.0, speedup={1: 1.0, 2: 1.8}.__getitem__, startup_s=5.0, curve=_curve
    )
    # experiment.toml is what `seer resume` reads back: the profile path must resolve from there.
    return exp, clock, backend


@pytest.mark.parametrize(
    "point",
    ["launch:3", "launch:10", "launch:13", "job_end:4", "job_end:7", "decide:2", "decide:6", "decide:8"],
)
def test_a_killed_run_resumes_to_the_same_answer(tmp_path, crash_tuner, point):
    exp, clock, backend = _setup(tmp_path / "clean")
    clean = Tuner(exp, tmp_path / "clean" / "run", backend, policy=make_policy("seer"), clock=clock).run()

    exp, clock, backend = _setup(tmp_path / "killed")
    run_dir = tmp_path / "killed" / "run"
    crash_tuner(point, lambda: Tuner(exp, run_dir, backend, policy=make_policy("seer"), clock=clock).run())
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "running"
    spent_at_crash = state["cost_usd"]
    eliminated = {t["trial_id"] for t in state["trials"] if t["status"] == "eliminated"}
    epochs_at_crash = {t["trial_id"]: t["epochs"] for t in state["trials"]}
    launches_before = len(backend.launches)
    clock.sleep(7.0)  # the tuner is down for 7 s; its jobs keep running meanwhile

    res = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock).run(resume=True)

    # The same answer as the uninterrupted run with the same seed.
    assert res["best"]["trial_id"] == clean["best"]["trial_id"]
    assert res["best"]["epochs"] == clean["best"]["epochs"] == 9
    assert res["best"]["val_accuracy"] == clean["best"]["val_accuracy"]
    assert [r["num_trials"] for r in res["rounds"]] == [r["num_trials"] for r in clean["rounds"]]
    # No eliminated trial runs again; no trial's epochs go backwards.
    after = backend.launches[launches_before:]
    assert not {j.spec.trial_id for j in after} & eliminated
    for j in after:
        assert j.first_epoch >= epochs_at_crash.get(j.spec.trial_id, 0)
    final = {t["trial_id"]: t for t in res["trials"]}
    for tid, e in epochs_at_crash.items():
        assert final[tid]["epochs"] >= e
    # Spend is continuous: what was spent before the crash is kept, and the downtime counts.
    assert res["budget"]["cost_usd"] >= spent_at_crash
    assert res["budget"]["time_used_s"] >= clean["budget"]["time_used_s"] - 1e-6
    # Nothing trained twice beyond the epoch a killed job was in: total trial-epochs match.
    assert sum(t["epochs"] for t in res["trials"]) == sum(t["epochs"] for t in clean["trials"])
    assert json.loads((run_dir / "state.json").read_text())["status"] == "finished"


def test_a_finished_run_cannot_be_resumed(tmp_path):
    from seer_torch.errors import ConfigError

    exp, clock, backend = _setup(tmp_path)
    Tuner(exp, tmp_path / "run", backend, policy=make_policy("seer"), clock=clock).run()
    with pytest.raises(ConfigError, match="did not finish"):
        Tuner.resume(tmp_path / "run", backend, make_policy=make_policy, clock=clock)


def test_a_damaged_journal_falls_back_to_the_previous_one(tmp_path, crash_tuner):
    exp, clock, backend = _setup(tmp_path)
    run_dir = tmp_path / "run"
    crash_tuner("job_end:5",
                lambda: Tuner(exp, run_dir, backend, policy=make_policy("seer"), clock=clock).run())
    text = (run_dir / "state.json").read_text()
    atomic_write_text(run_dir / "state.json", text[: len(text) // 2])  # torn by a failing disk
    res = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock).run(resume=True)
    assert res["best"] is not None and res["best"]["epochs"] == 9


@pytest.mark.parametrize("time_budget_s", [80.0, 150.0])
def test_a_run_cut_short_by_its_deadline_goes_on_with_more_time_and_trains_its_answer_further(
        tmp_path, time_budget_s):
    # 80 s: BEST EFFORT, 4 configurations, the answer trained to epoch 7 of 9; 150 s: EXPLORATION
    # FIRST, 9 configurations to epoch 3. Each policy finished there: its last decision is made
    # again with more time, and it plans one more round toward max_epochs.
    import dataclasses

    exp, clock, backend = _setup(tmp_path)
    exp = dataclasses.replace(exp, budget=dataclasses.replace(exp.budget, time_budget_s=time_budget_s))
    run_dir = tmp_path / "run"
    first = Tuner(exp, run_dir, backend, policy=make_policy("seer"), clock=clock).run()
    assert first["best"] is None or first["best"]["epochs"] < 9, first["stop_reason"]
    before = {t["trial_id"]: t["epochs"] for t in first["trials"]}
    launches_before = len(backend.launches)
    clock.sleep(1000.0)  # a finished run's idle time does not count against the new budget

    more = exp.with_overrides(time_budget_s=time_budget_s + 1000.0)
    tuner = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock, experiment=more)
    res = tuner.run(resume=True)
    assert res["best"]["epochs"] == 9 and res["budget"]["time_budget_s"] == time_budget_s + 1000.0
    assert res["budget"]["time_used_s"] < time_budget_s + 1000.0
    assert "time_budget_s = " + repr(time_budget_s + 1000.0) in (run_dir / "experiment.toml").read_text()
    for job in backend.launches[launches_before:]:  # every job goes on from its trial's epochs
        assert job.first_epoch >= before.get(job.spec.trial_id, 0)
    # The resume is on record: a finished run goes on where it ended (no downtime), and the
    # report draws it, with the deadline it had before, and says it.
    (record,) = res["resumes"]
    assert record["stopped_at_s"] == pytest.approx(first["budget"]["time_used_s"])
    assert record["resumed_at_s"] == pytest.approx(record["stopped_at_s"])
    assert record["previous_time_budget_s"] == time_budget_s
    assert record["time_budget_s"] == time_budget_s + 1000.0
    from seer_torch.report import draw_allocation
    from seer_torch.report_data import read_run_files, report_data

    data = report_data(read_run_files(run_dir))
    lines = {ln.get_gid(): ln.get_xdata()[0] for ln in draw_allocation(data).axes[0].lines if ln.get_gid()}
    assert lines["resume:1"] == pytest.approx(record["resumed_at_s"])
    assert lines["deadline-before-resume:1"] == time_budget_s
    assert f"deadline {time_budget_s:g} s -> {time_budget_s + 1000:g} s" in data.stop_words
    # A later resume replays the decisions made with more budget as they were made, and adds its record.
    again = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock,
                         experiment=more.with_overrides(time_budget_s=time_budget_s + 2000.0))
    res2 = again.run(resume=True)
    assert res2["best"] == res["best"]
    assert [r["time_budget_s"] for r in res2["resumes"]] == [time_budget_s + 1000.0, time_budget_s + 2000.0]
