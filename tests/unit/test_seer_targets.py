"""SEER's targets, survivor counts and answer across re-plans (issue 13, faults 2, 7, 8 and 9).

The runs use the simulated backend (the same executor and SeerPolicy that drive real jobs) on a
machine that may be loaded for a while and then quiet: each launch's epoch time is read from the
simulated clock when the job starts.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import parse_experiment, sample_configurations
from seer_torch.executor import Tuner
from seer_torch.policies import base
from seer_torch.policies.base import TrialView, best_at_rungs
from seer_torch.policies.registry import make_policy

PROFILE_EPOCH_S = 2.0


def _curve(config, epoch):
    return config["q"] * (1.0 - 0.5 / epoch)


def _run(
    tmp_path: Path,
    *,
    time_s,
    max_configurations=9,
    max_epochs=27,
    eta=3,
    slots=2,
    ladder=(1,),
    money_usd=100.0,
    loaded_until_s=0.0,
    loaded_epoch_s=PROFILE_EPOCH_S,
    quiet_epoch_s=PROFILE_EPOCH_S,
    num_finalists=1,
    curve=_curve,
    startup_s=5.0,
):
    """A SEER run whose jobs launched before ``loaded_until_s`` train ``loaded_epoch_s`` an epoch
    and later ones ``quiet_epoch_s`` (the profile says 2 s)."""
    profile = tmp_path / "profile.json"
    profile.write_text(
        json.dumps(
            {
                "world_sizes": [1, 2],
                "speedup": [1.0, 1.8],
                "epoch_time_s": PROFILE_EPOCH_S,
                "startup_s": startup_s,
                "resize_s": startup_s,
            }
        )
    )
    exp = parse_experiment(
        {
            "name": "sim",
            "seed": 3,
            "training": {
                "max_epochs": max_epochs,
                "min_epochs": 1,
                "eta": eta,
                "global_batch": 64,
                "micro_batch_max": 64,
            },
            "budget": {
                "time_budget_s": time_s,
                "money_budget_usd": money_usd,
                "price_usd_per_slot_hour": 3.6,
            },
            "resources": {"num_slots": slots, "world_size_ladder": list(ladder)},
            "search": {"max_configurations": max_configurations},
            "planner": {"profile": str(profile), "num_finalists": num_finalists},
            "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}},
        }
    )
    clock = SimulatedClock()
    speed = {1: 1.0, 2: 1.8}
    backend = SimulatedBackend(
        slots,
        clock,
        epoch_time_s=PROFILE_EPOCH_S,
        speedup=lambda w: speed[w],
        startup_s=startup_s,
        curve=curve,
        epoch_time_at=lambda i: loaded_epoch_s if clock.now() < loaded_until_s else quiet_epoch_s,
    )
    return Tuner(exp, tmp_path / "run", backend, policy=make_policy("seer"), clock=clock).run()


# -- fault 9: what a real drop is --------------------------------------------------------------


def _view(tid, index, status, epochs, val):
    return TrialView(tid, index, status, epochs, None, None, val)


def test_fault9_a_trial_one_validation_sample_better_at_the_rung_below_is_not_the_answer():
    # 270 validation samples (the digits split): the trial eliminated at epoch 3 validated one
    # sample above the finalist trained to 8. That is noise: the further-trained trial is the answer.
    one = 1 / 270
    trials = {
        "t000": _view("t000", 0, "eliminated", 3, {1: 0.80, 3: 244 / 270}),
        "t001": _view("t001", 1, "paused", 8, {1: 0.82, 3: 0.88, 8: 243 / 270}),
    }
    assert best_at_rungs(trials, [1, 3, 8]) == ("t001", 8)
    tolerance = base.ANSWER_TOLERANCE  # the documented tolerance: more than one sample of 270
    assert one < tolerance < 0.01
    # a real collapse (more than the tolerance below) still loses to the trial at the rung before
    collapsed = dict(trials, t001=_view("t001", 1, "paused", 8, {3: 0.88, 8: 244 / 270 - tolerance - one}))
    assert best_at_rungs(collapsed, [1, 3, 8]) == ("t000", 3)


def test_fault9_when_the_answer_is_not_the_finalist_the_stop_reason_says_so(tmp_path):
    # Rounds 9, 3, 1 to rungs 1, 3, 9. The best configuration collapses after epoch 3; the
    # answer is then the best trial stopped at rung 3, and the stop reason must not let the
    # reader believe the finalist trained to 9 is it.
    exp_probe = parse_experiment(
        {"seed": 3, "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}}}
    )
    best_q = max(c["q"] for c in sample_configurations(exp_probe, 9))

    def curve(config, epoch):
        return 0.2 if config["q"] == best_q and epoch > 3 else _curve(config, epoch)

    res = _run(tmp_path, time_s=1e6, max_epochs=9, curve=curve)
    assert [r["num_trials"] for r in res["rounds"]] == [9, 3, 1]
    assert res["best"]["epochs"] == 3
    reason = res["stop_reason"] or ""
    assert res["best"]["trial_id"] in reason and "epoch 3" in reason, reason


# -- fault 2: a lowered target is raised again ------------------------------------------------


def test_fault2_a_target_lowered_on_a_loaded_machine_is_raised_when_the_machine_is_quiet_again(tmp_path):
    # Jobs launched in the first 40 s train 3x slower than the profile. The re-plan at rung 1
    # lowers the target (best effort); later jobs train as the profile says, and the re-plan at
    # the next rung finds the budget left pays for max_epochs again.
    res = _run(tmp_path, time_s=150.0, loaded_until_s=40.0, loaded_epoch_s=3 * PROFILE_EPOCH_S)
    first = res["replans"][0]
    assert first["plan"]["target_epochs"] < 27  # lowered
    assert res["best"]["epochs"] == 27, (res["stop_reason"], [r["reason"] for r in res["replans"]])
    assert res["stop_reason"] is None
    assert res["budget"]["time_used_s"] <= 150.0


def test_fault2_an_exploration_first_target_is_raised_when_trials_train_faster(tmp_path):
    # The first plan explores 9 and trains the best to 12 of 27 epochs (EXPLORATION FIRST). The
    # first jobs are 1.5x slow and the re-plan at rung 1 lowers the target further; then jobs
    # train twice as fast as the profile: the rounds left go past the first plan's target.
    res = _run(
        tmp_path,
        time_s=90.0,
        loaded_until_s=40.0,
        loaded_epoch_s=1.5 * PROFILE_EPOCH_S,
        quiet_epoch_s=0.5 * PROFILE_EPOCH_S,
    )
    assert res["plan"]["message"].startswith("EXPLORATION FIRST") and res["plan"]["target_epochs"] == 12
    assert res["best"]["epochs"] > 12, (res["stop_reason"], [r["reason"] for r in res["replans"]])
    assert res["budget"]["time_used_s"] <= 90.0


# -- fault 8: truthful re-plans, and every rung eliminates ------------------------------------

_SCENARIOS = [  # (time_s, loaded_until_s, loaded x, quiet x, max_configurations, finalists)
    (90.0, 1e9, 1.2, 1.0, 9, 1),
    (90.0, 40.0, 1.5, 0.5, 9, 1),
    (90.0, 1e9, 1.5, 0.5, 9, 1),
    (90.0, 1e9, 1.5, 0.5, 16, 2),
    (110.0, 40.0, 3.0, 1.0, 9, 1),
    (130.0, 40.0, 3.0, 1.0, 9, 1),
    (150.0, 40.0, 3.0, 1.0, 9, 1),
    (200.0, 1e9, 1.5, 1.0, 30, 2),
    (250.0, 40.0, 2.0, 0.5, 30, 1),
]


@pytest.mark.parametrize("time_s,until,loaded,quiet,configs,finalists", _SCENARIOS)
def test_fault8_replans_are_truthful_and_every_rung_eliminates(
    tmp_path, time_s, until, loaded, quiet, configs, finalists
):
    res = _run(
        tmp_path,
        time_s=time_s,
        loaded_until_s=until,
        loaded_epoch_s=loaded * PROFILE_EPOCH_S,
        quiet_epoch_s=quiet * PROFILE_EPOCH_S,
        max_configurations=configs,
        num_finalists=finalists,
        ladder=(1, 2),
    )
    rounds = res["rounds"]
    for before, after in zip(rounds, rounds[1:]):
        if before["num_trials"] > finalists:  # a rung with more results than finalists eliminates
            assert after["num_trials"] < before["num_trials"], rounds
    for r in res["replans"]:
        reason = r["reason"]
        # "as planned" is said only of a plan that reaches the target it was given
        assert reason != "as planned" or r["plan"]["feasible"], r
        for said in re.findall(r"stops at epoch (\d+)", reason):  # never another plan's target
            assert int(said) == r["plan"]["target_epochs"], r
        if reason.startswith("carried fewer"):  # it names the target the plan it adopts reaches
            assert f"to epoch {r['plan']['target_epochs']}" in reason, r
        if reason.startswith("carried more"):
            # more are carried only when the trials carried train faster than the plan assumed
            m = re.search(r"measured ([\d.]+) s an epoch.*assumed ([\d.]+) s", reason)
            assert m and float(m.group(1)) < float(m.group(2)), reason
    assert res["budget"]["time_used_s"] <= time_s


# -- fault 7: best effort carries the finalists it can and says what bound ---------------------


def test_fault7_best_effort_names_max_epochs_and_the_budget_and_keeps_the_finalists_that_fit(tmp_path):
    # Two finalists planned, two slots: at W=1 both finalists' jobs run side by side, so
    # carrying both to the best-effort target costs no more wall clock than carrying one.
    res = _run(
        tmp_path,
        time_s=130.0,
        loaded_until_s=1e9,
        loaded_epoch_s=1.5 * PROFILE_EPOCH_S,
        max_configurations=16,
        num_finalists=2,
    )
    reason = res["stop_reason"] or ""
    assert reason.startswith("BEST EFFORT"), reason
    assert "max_epochs" in reason and "27" in reason, reason
    assert "deadline" in reason, reason
    last = res["rounds"][-1]
    assert last["num_trials"] == 2, res["rounds"]
    assert res["budget"]["time_used_s"] <= 130.0


# -- a final round cut by the deadline ---------------------------------------------------------


def test_a_final_round_the_deadline_cut_is_judged_at_the_epoch_its_finalist_saved(tmp_path):
    # The machine slows down (2.0 -> 2.6 s an epoch from 40 s on) after the re-plans measured
    # it: the last round, planned to fit, runs past the deadline, which stops its lone finalist
    # past the last completed rung. The answer is judged at the epoch it saved, not at that rung.
    res = _run(tmp_path, time_s=100.0, loaded_until_s=40.0, loaded_epoch_s=2.0, quiet_epoch_s=2.6)
    assert res["stop_reason"] == "deadline reached"
    last, before = res["rounds"][-1], res["rounds"][-2]
    assert not last["completed"] and before["completed"]
    assert last["num_trials"] == 1
    finalist = next(t for t in res["trials"]
                    if t["status"] == "stopped" and t["epochs"] > before["rung_epoch"])
    assert before["rung_epoch"] < finalist["epochs"] < last["rung_epoch"]
    assert res["best"]["trial_id"] == finalist["trial_id"]
    assert res["best"]["epochs"] == finalist["epochs"]


def test_a_cut_round_is_judged_where_its_lone_finalist_saved():
    # A lone finalist stopped at epoch 12 past the rung at 5 is judged at 12; two finalists
    # still in the round, one not past the rung, one still running, or a member that never
    # started: no cut epoch (they are compared at the last completed rung, docs/cases.md case 6).
    from seer_torch.policies.seer_policy import SeerPolicy

    policy = SeerPolicy()
    policy.completed_rungs = [1, 5]
    policy.current = object()  # a round in progress
    policy.round_records = [{"completed": True}, {"completed": True}, {"completed": False}]
    policy.members = [0, 1]
    scores = {e: 0.5 + e / 100 for e in range(1, 15)}

    def snap(*views):
        return base.Snapshot(0.0, 0.0, 0.0, 2, 2, {v.trial_id: v for v in views}, ())

    a = TrialView("t000", 0, "stopped", 12, None, None, {e: v for e, v in scores.items() if e <= 12})
    gone = TrialView("t001", 1, "diverged", 7, None, None, {1: 0.9, 5: 0.9, 7: math.nan})
    assert policy.cut_epoch(snap(a, gone)) == 12
    assert policy.answer(snap(a, gone)) == ("t000", 12)
    policy.round_records[-1]["completed"] = True
    assert policy.cut_epoch(snap(a, gone)) is None  # the round completed: its rung is judged
    policy.round_records[-1]["completed"] = False
    b = TrialView("t001", 1, "stopped", 14, None, None, {e: v + 0.01 for e, v in scores.items()})
    assert policy.cut_epoch(snap(a, b)) is None
    assert policy.answer(snap(a, b)) == ("t001", 5)
    behind = TrialView("t000", 0, "paused", 5, None, None, {1: 0.5, 5: 0.55})
    assert policy.cut_epoch(snap(behind, gone)) is None
    running = TrialView("t000", 0, "running", 12, 1, 17, a.score)
    assert policy.cut_epoch(snap(running, gone)) is None
    assert policy.cut_epoch(snap(a)) is None  # a member never started
