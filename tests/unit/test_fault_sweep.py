"""The simulated half of ``scripts/fault_sweep.py`` as a test (issue 13, must-show 2): a short
SEER run whose last round is widened to W = 2 is killed (an emulated SIGKILL) at every journal
point it passes, and each kill is resumed with the same slots and with fewer (1 of 2). Every
resume finishes; with the same slots the answer is the uninterrupted run's (trial, epochs,
validation accuracy); with fewer, a valid answer within both budgets; no trial's epochs
repeat. On a4420ab: 33 of 60 resumes finished clean (a kill before the first journal write
could not be resumed; 26 of 30 resumes with one slot failed "decided differently on replay"
or over-asked the slots)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "fault_sweep", Path(__file__).resolve().parents[2] / "scripts" / "fault_sweep.py"
)
fault_sweep = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fault_sweep)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    clean, counts = fault_sweep.count_points(tmp_path_factory.mktemp("clean"))
    # the sweep is only worth its name if the run widens and passes every kind of point
    assert [r["world_size"] for r in clean["rounds"]] == [1, 1, 2]
    assert clean["best"]["epochs"] == 9
    assert all(counts.get(p, 0) >= 3 for p in fault_sweep.POINTS), counts
    return clean, counts


def _points():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        _, counts = fault_sweep.count_points(Path(d))
    return [f"{p}:{n}" for p in fault_sweep.POINTS for n in range(1, counts.get(p, 0) + 1)]


@pytest.mark.parametrize("fewer_slots", [False, True], ids=["same-slots", "one-slot"])
@pytest.mark.parametrize("point", _points())
def test_killed_anywhere_resumes(tmp_path, uninterrupted, point, fewer_slots, monkeypatch):
    clean, _ = uninterrupted
    monkeypatch.setattr(fault_sweep.journal, "_crash_counts", {})
    record = fault_sweep.sim_case(tmp_path, point, clean, fewer_slots)
    assert record["crashed"], record
    assert record["finished"] and record["problems"] == [], record


def test_a_narrowed_last_job_that_cannot_reach_its_rung_is_retargeted(tmp_path, crash_tuner):
    """From the new-user check (issue 13): killed as the W = 2 finalist launched, resumed on one
    slot. Its job at W = 1 cannot reach epoch 9 before the deadline (58 s left, 65 s needed); the
    round's rung becomes the most epochs it can reach (BEST EFFORT, the schedule's horizon with
    it), not a job the deadline stops half-way (which trained epochs it then threw away: the
    answer stayed at epoch 3 with its schedule unfinished). Before the fix: a launch to epoch 9."""
    experiment = {
        **fault_sweep.SIM_EXPERIMENT,
        "budget": {**fault_sweep.SIM_EXPERIMENT["budget"], "time_budget_s": 186.0},
    }
    clean, counts = fault_sweep.count_points(tmp_path / "clean", experiment)
    assert [r["world_size"] for r in clean["rounds"]] == [1, 1, 2] and clean["best"]["epochs"] == 9
    exp, clock, backend = fault_sweep._sim_setup(tmp_path / "k", experiment)
    run_dir = tmp_path / "k" / "run"
    # the W = 2 finalist's launch
    tuner = fault_sweep.Tuner(exp, run_dir, backend, policy=fault_sweep.make_policy("seer"), clock=clock)
    crash_tuner(f"launch:{counts['launch']}", tuner.run)
    backend.num_slots = 1
    before = len(backend.launches)
    res = fault_sweep.Tuner.resume(run_dir, backend, make_policy=fault_sweep.make_policy, clock=clock).run(
        resume=True
    )
    relaunch = backend.launches[before:]
    assert [(j.spec.world_size, j.spec.until_epoch) for j in relaunch] == [(1, 8)]
    assert relaunch[0].result is not None and not relaunch[0].result.stopped  # it ended by itself
    best = res["best"]
    assert (best["epochs"], best["schedule_epochs"], best["partial"]) == (8, 8, False)
    assert res["stop_reason"].startswith("BEST EFFORT") and "max_epochs (9)" in res["stop_reason"]
    assert res["budget"]["time_used_s"] <= exp.budget.time_budget_s
