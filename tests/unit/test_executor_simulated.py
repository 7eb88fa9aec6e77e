"""The executor driving SEER's plan on the simulated backend (same executor, same policy)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import parse_experiment
from seer_torch.executor import FINAL_GRACE_S, Tuner
from seer_torch.policies.seer_policy import SeerPolicy


def _curve(config, epoch):
    # Better configurations (larger q) are better at every epoch; accuracy rises with epochs.
    return config["q"] * (1.0 - 0.5 / epoch)


def _run(
    tmp_path: Path,
    *,
    max_configurations,
    max_epochs,
    eta,
    slots,
    ladder,
    time_s,
    money_usd,
    epoch_time_s=10.0,
    startup_s=5.0,
    speedup=(1.0, 1.8, 3.4, 5.4),
    curve=_curve,
    backend_speedup=None,
    backend_epoch_time_s=None,
    backend_epoch_time_at=None,
    num_finalists=1,
    policy=None,
    events=None,
):
    profile = tmp_path / "profile.json"
    profile.write_text(
        json.dumps(
            {
                "world_sizes": [1, 2, 4, 8][: len(speedup)],
                "speedup": list(speedup),
                "epoch_time_s": epoch_time_s,
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
            "resources": {"num_slots": slots, "world_size_ladder": ladder},
            "search": {"max_configurations": max_configurations},
            "planner": {"profile": str(profile), "num_finalists": num_finalists},
            "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}},
        }
    )
    clock = SimulatedClock()
    ws = {w: s for w, s in zip([1, 2, 4, 8], backend_speedup or speedup)}
    backend = SimulatedBackend(
        slots,
        clock,
        epoch_time_s=backend_epoch_time_s or epoch_time_s,
        speedup=lambda w: ws[w],
        startup_s=startup_s,
        curve=curve,
        epoch_time_at=backend_epoch_time_at,
    )
    on_event = None if events is None else (lambda msg, status: events.append(msg))
    tuner = Tuner(exp, tmp_path / "run", backend, clock=clock, policy=policy or SeerPolicy(),
                  on_event=on_event)
    return tuner.run(), backend


def test_case3_fewer_slots_than_configurations(tmp_path):
    res, backend = _run(
        tmp_path, max_configurations=8, max_epochs=8, eta=2, slots=4, ladder=[1], time_s=1e6, money_usd=1e6
    )
    assert [r["num_trials"] for r in res["rounds"]] == [8, 4, 2, 1]
    assert [r["rung_epoch"] for r in res["rounds"]] == [1, 2, 4, 8]
    # 20 trial-epochs in all: training continues from checkpoints.
    assert sum(t["epochs"] for t in res["trials"]) == 20
    # No trial starts epoch 2 before all 8 finished epoch 1.
    round1_end = max(j.result.end_s for j in backend.launches if j.spec.until_epoch == 1)
    assert all(j.start_s >= round1_end for j in backend.launches if j.spec.until_epoch > 1)
    # Exactly one trial at max_epochs, nothing left pending; it is the best configuration.
    finals = [t for t in res["trials"] if t["epochs"] == 8]
    assert len(finals) == 1 and res["best"]["trial_id"] == finals[0]["trial_id"]
    assert res["best"]["config"]["q"] == max(t["config"]["q"] for t in res["trials"])
    assert {t["status"] for t in res["trials"]} == {"eliminated", "completed"}


def test_budgets_hold_and_the_deadline_widens_the_last_round(tmp_path):
    # Money is plentiful, time binds: the plan buys exploration with a wider final round.
    res, backend = _run(
        tmp_path,
        max_configurations=200,
        max_epochs=27,
        eta=3,
        slots=4,
        ladder=[1, 2, 4],
        time_s=420.0,
        money_usd=100.0,
    )
    b = res["budget"]
    assert b["time_used_s"] <= b["time_budget_s"]
    assert b["cost_usd"] <= b["money_budget_usd"]
    assert res["plan"]["feasible"] and res["best"]["epochs"] == 27
    assert res["rounds"][-1]["world_size"] > 1
    assert [r["world_size"] for r in res["rounds"]] == sorted(r["world_size"] for r in res["rounds"])
    # Money metered = slot-seconds x price, from the jobs the backend ran.
    slot_s = sum(j.result.slot_seconds for j in backend.launches)
    assert b["cost_usd"] == pytest.approx(slot_s * 3.6 / 3600)


def test_case6_the_deadline_cuts_a_round_and_the_answer_is_the_last_completed_rung(tmp_path):
    # The profile promises 1.8x at W=2, but the cluster delivers no speedup at all: the
    # widened final round cannot finish, is stopped at the deadline, and the answer is the best
    # trial of the last completed rung, judged at the epoch its stopped job saved (the lone
    # finalist's: SeerPolicy.cut_epoch).
    res, backend = _run(
        tmp_path,
        max_configurations=200,
        max_epochs=27,
        eta=3,
        slots=4,
        ladder=[1, 2],
        time_s=420.0,
        money_usd=100.0,
        speedup=(1.0, 1.8),
        backend_speedup=(1.0, 1.0),
    )
    assert res["plan"]["rounds"][-1]["world_size"] == 2
    assert res["stop_reason"] == "deadline reached"
    b = res["budget"]
    assert b["time_used_s"] <= b["time_budget_s"]
    assert b["time_used_s"] >= b["time_budget_s"] - FINAL_GRACE_S - 1.0  # it ran up to the deadline
    last = res["rounds"][-1]
    assert last["completed"] is False
    previous_rung = res["rounds"][-2]["rung_epoch"]
    at_rung = {t["trial_id"]: {int(e): v for e, v in t["metric_by_epoch"].items()}.get(previous_rung)
               for t in res["trials"]}
    best_at_rung = max((v, tid) for tid, v in at_rung.items() if v is not None)[1]
    # the lone finalist (a runner-up held back at the rung is stopped there too)
    stopped = [t for t in res["trials"] if t["status"] == "stopped" and t["epochs"] > previous_rung]
    assert [t["trial_id"] for t in stopped] == [best_at_rung]
    assert previous_rung < stopped[0]["epochs"] < 27
    assert res["best"]["trial_id"] == best_at_rung
    assert res["best"]["epochs"] == stopped[0]["epochs"]


def test_a_round_predicted_to_break_the_budget_is_not_started(tmp_path):
    # Epochs take 4x what the profile said. After round 1 the re-plan sees it and does not start
    # the rounds that no longer fit; what was completed is kept.
    res, _ = _run(
        tmp_path,
        max_configurations=6,
        max_epochs=9,
        eta=3,
        slots=2,
        ladder=[1],
        time_s=100.0,
        money_usd=100.0,
        epoch_time_s=2.0,
        backend_epoch_time_s=8.0,
    )
    b = res["budget"]
    assert b["time_used_s"] <= b["time_budget_s"]
    assert all(r["completed"] for r in res["rounds"])
    assert res["rounds"][-1]["rung_epoch"] < 9
    # the rounds that no longer fit are not started; the best is trained as far as the
    # budget left allows instead (a shortened last round), never past the deadline
    assert res["stop_reason"] and res["stop_reason"].startswith("BEST EFFORT")
    assert res["best"]["epochs"] == res["rounds"][-1]["rung_epoch"]


def test_a_diverged_finalist_is_never_the_answer(tmp_path):
    def curve(config, epoch):
        if config["q"] == best_q[0] and epoch > 3:
            return math.nan  # the best-looking configuration diverges after rung 3
        return _curve(config, epoch)

    best_q = [None]
    from seer_torch.config import sample_configurations

    exp_probe = parse_experiment(
        {"seed": 3, "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}}}
    )
    best_q[0] = max(c["q"] for c in sample_configurations(exp_probe, 9))
    res, _ = _run(
        tmp_path,
        max_configurations=9,
        max_epochs=9,
        eta=3,
        slots=2,
        ladder=[1],
        time_s=1e6,
        money_usd=1e6,
        curve=curve,
    )
    assert [r["num_trials"] for r in res["rounds"]] == [9, 3, 1]
    diverged = [t for t in res["trials"] if t["status"] == "diverged"]
    assert [t["config"]["q"] for t in diverged] == [best_q[0]]
    # The runner-up at rung 3 was held back and replaced the finalist when it diverged: it is
    # trained to the target and is the answer.
    at3 = sorted(
        (t for t in res["trials"] if 3 in {r["epoch"] for r in t.get("history", [])} or t["epochs"] >= 3),
        key=lambda t: -t["config"]["q"],
    )
    runner_up = [t for t in at3 if t["config"]["q"] != best_q[0]][0]
    assert res["best"] is not None and res["best"]["config"]["q"] != best_q[0]
    assert res["best"]["epochs"] == 9 and res["best"]["trial_id"] == runner_up["trial_id"]
    replacements = res["policy_report"]["replacements"]
    assert [(r["round"], r["outcome"]) for r in replacements] == [(3, "diverged")]


def test_exploration_first_when_money_buys_about_one_full_training(tmp_path):
    # 27 epochs x 10 s = 270 slot-s for one full training; money for ~400 slot-s. Rather than
    # train 1-2 configurations fully, SEER explores eta**2 = 9 and stops the best earlier, and
    # each trial's learning-rate schedule spans the plan's target, not max_epochs.
    res, _ = _run(
        tmp_path, max_configurations=64, max_epochs=27, eta=3, slots=2, ladder=[1], time_s=1e6, money_usd=0.4
    )
    assert res["plan"]["message"].startswith("EXPLORATION FIRST")
    assert len(res["trials"]) >= 9
    # The re-plans train the best as far as the money left pays for, from the plan's target
    # up (never past max_epochs); the run's reason names that target, max_epochs and the budget.
    target = res["best"]["epochs"]
    assert 1 <= res["plan"]["target_epochs"] <= target < 27
    assert res["stop_reason"].startswith("BEST EFFORT: the money budget")
    assert f"trained to epoch {target} of 27" in res["stop_reason"]
    assert res["budget"]["cost_usd"] <= 0.4
    cfg = json.loads((tmp_path / "run" / "trials" / res["best"]["trial_id"] / "config.json").read_text())
    assert cfg["max_epochs"] == target


def test_a_trial_that_diverges_in_round_1_is_replaced_by_a_fresh_configuration(tmp_path):
    # The configuration drawn first diverges at its first epoch; SEER draws one more in its
    # place, so round 1 still ranks 9 valid results and the rounds keep their planned sizes.
    from seer_torch.config import sample_configurations

    exp_probe = parse_experiment(
        {"seed": 3, "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}}}
    )
    first_q = sample_configurations(exp_probe, 1)[0]["q"]

    def curve(config, epoch):
        return math.nan if config["q"] == first_q else _curve(config, epoch)

    res, _ = _run(
        tmp_path,
        max_configurations=20,
        max_epochs=9,
        eta=3,
        slots=2,
        ladder=[1],
        time_s=1e6,
        money_usd=0.5,
        curve=curve,
    )
    n1 = res["plan"]["num_configurations"]
    assert n1 == 17  # money for 17 (0.445 of the 0.45 USD the safety fraction allows)
    replacements = res["policy_report"]["replacements"]
    assert [(r["round"], r["replaced"], r["outcome"], r["by_index"]) for r in replacements] == [
        (1, "t000", "diverged", n1)
    ]
    assert len(res["trials"]) == n1 + 1
    ranked_at_1 = [t for t in res["trials"] if t["status"] != "diverged" and t["epochs"] >= 1]
    assert len(ranked_at_1) == n1
    assert res["best"]["epochs"] == 9 and res["best"]["config"]["q"] != first_q
    assert res["budget"]["cost_usd"] <= 0.5


def test_a_lone_finalist_that_diverges_is_replaced_by_the_runner_up_held_at_the_rung_below(tmp_path):
    # Rounds 9, 3, 1, 1 (one finalist, rungs 1, 3, 9, 27). The best configuration is the only
    # trial at rung 9, so that rung has no runner-up; it diverges after epoch 9. The runner-up
    # at rung 3 stayed held back, replaces it and is trained from epoch 3 to 27: the answer.
    from seer_torch.config import sample_configurations

    exp_probe = parse_experiment(
        {"seed": 3, "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}}}
    )
    qs = sorted((c["q"] for c in sample_configurations(exp_probe, 9)), reverse=True)

    def curve(config, epoch):
        if config["q"] == qs[0] and epoch > 9:
            return math.nan
        return _curve(config, epoch)

    res, backend = _run(
        tmp_path,
        max_configurations=9,
        max_epochs=27,
        eta=3,
        slots=2,
        ladder=[1],
        time_s=1e6,
        money_usd=1e6,
        curve=curve,
    )
    assert [r["num_trials"] for r in res["rounds"]] == [9, 3, 1, 1]
    replacements = res["policy_report"]["replacements"]
    assert [(r["round"], r["outcome"]) for r in replacements] == [(4, "diverged")]
    assert res["best"]["config"]["q"] == qs[1] and res["best"]["epochs"] == 27
    jobs = [
        (j.first_epoch, j.spec.until_epoch)
        for j in backend.launches
        if j.spec.trial_id == res["best"]["trial_id"]
    ]
    assert jobs == [(0, 1), (1, 3), (3, 27)]  # paused at rung 3 until it was needed


def test_when_survivors_train_faster_than_the_profile_the_money_saved_carries_more_of_them(tmp_path):
    # The profile says 10 s an epoch; the trials take 5 s. The first plan is bound by money;
    # at rung 1 the re-plan measures 5 s and carries more survivors than planned, and the run
    # still ends within its budget.
    (tmp_path / "fast").mkdir()
    (tmp_path / "same").mkdir()
    events: list[str] = []
    res, _ = _run(
        tmp_path / "fast",
        events=events,
        max_configurations=64,
        max_epochs=9,
        eta=3,
        slots=2,
        ladder=[1],
        time_s=1e6,
        money_usd=0.5,
        backend_epoch_time_s=5.0,
    )
    plan = res["plan"]
    assert plan["binding"] == "money"
    planned = [r["num_trials"] for r in plan["rounds"]]
    ran = [r["num_trials"] for r in res["rounds"]]
    assert ran[0] == planned[0] and ran[1] > planned[1]
    first = res["replans"][0]  # the re-plan at rung 1 says what it carried against the plan
    assert first["planned_survivors"][0] == planned[1] and first["survivors"][0] == ran[1]
    assert first["reason"].startswith("carried more") and "the plan assumed 10 s" in first["reason"]
    # ... and the live status says so when it happens (re-plans as planned are not news).
    news = [e for e in events if e.startswith("re-plan at epoch")]
    assert news[0] == f"re-plan at epoch 1: {first['reason']}"
    assert len(news) == sum(r["reason"] != "as planned" for r in res["replans"])
    assert all(
        r["reason"] == "as planned" for r in res["replans"][1:] if r["survivors"] == r["planned_survivors"]
    )
    assert res["best"]["epochs"] == 9
    assert res["budget"]["cost_usd"] <= 0.5
    # the same run when the trials take what the profile says carries exactly the plan
    same, _ = _run(
        tmp_path / "same",
        max_configurations=64,
        max_epochs=9,
        eta=3,
        slots=2,
        ladder=[1],
        time_s=1e6,
        money_usd=0.5,
    )
    assert [r["num_trials"] for r in same["rounds"]] == [r["num_trials"] for r in same["plan"]["rounds"]]


def test_a_round_whose_slowest_job_would_end_past_the_deadline_is_not_started(tmp_path):
    # Two slots; odd configurations train twice as slow as even ones (the profile says 1.5 s).
    # Over a range of deadlines, no re-plan starts a round whose slowest job cannot end in
    # time. (Planned on the mean epoch of the trials carried, a final round of one slow and
    # one fast finalist ran past the deadline in a real run, and the answer fell back to the
    # rung before: issue 4.)
    cut = []
    for time_s in range(100, 121):  # planned on the mean, the deadline cut the final round at 109 s
        d = tmp_path / str(time_s)
        d.mkdir()
        res, _ = _run(
            d,
            max_configurations=16,
            max_epochs=27,
            eta=3,
            slots=2,
            ladder=[1, 2],
            time_s=float(time_s),
            money_usd=100.0,
            epoch_time_s=1.5,
            startup_s=5.0,
            speedup=(1.0, 1.6),
            backend_epoch_time_at=lambda i: 1.0 if i % 2 == 0 else 2.0,
            num_finalists=2,
        )
        assert res["budget"]["time_used_s"] <= time_s and res["best"] is not None
        if any(not r["completed"] for r in res["rounds"]):
            cut.append(time_s)
        # A re-planned round's record predicts its jobs at their own measured epochs, so on
        # this backend (exact epochs and overheads) it is the round's duration.
        for r in res["rounds"][1:]:
            if r["completed"]:
                assert r["predicted_duration_s"] == pytest.approx(r["end_s"] - r["start_s"], rel=1e-6), (
                    time_s,
                    r,
                )
    assert cut == []


def test_a_run_with_a_given_profile_keeps_it_in_its_run_directory(tmp_path):
    # The README's run-directory layout lists profile.json whether measured or given (from
    # --profile or [planner] profile): scripts/sim_vs_real.py RUN reads it from there.
    from seer_torch.scaling.profile import load_profile

    _run(tmp_path, max_configurations=4, max_epochs=4, eta=2, slots=2, ladder=[1], time_s=1e6, money_usd=1e6)
    kept = tmp_path / "run" / "profile.json"
    assert kept.exists(), "a run with a given profile left no RUN/profile.json"
    assert json.loads(kept.read_text()) == load_profile(tmp_path / "profile.json").to_dict()


class _NoAnswer(SeerPolicy):
    """SEER, except that it never has an answer (as when a hard limit stops a run early):
    the executor falls back to the best trial at the most epochs reached."""

    def answer(self, snapshot):
        return None


@pytest.mark.parametrize("cut", [False, True])
def test_the_fallback_answer_is_partial_only_when_its_schedule_did_not_finish(tmp_path, cut):
    # README: "partial": true when `epochs` is short of its `schedule_epochs`, in every path.
    if cut:  # the deadline stops the widened final round (the cluster gives no speedup at W=2)
        res, _ = _run(
            tmp_path,
            max_configurations=200,
            max_epochs=27,
            eta=3,
            slots=4,
            ladder=[1, 2],
            time_s=420.0,
            money_usd=100.0,
            speedup=(1.0, 1.8),
            backend_speedup=(1.0, 1.0),
            policy=_NoAnswer(),
        )
    else:
        res, _ = _run(
            tmp_path,
            max_configurations=8,
            max_epochs=8,
            eta=2,
            slots=4,
            ladder=[1],
            time_s=1e6,
            money_usd=1e6,
            policy=_NoAnswer(),
        )
    best = res["best"]
    assert best["partial"] is (best["epochs"] < best["schedule_epochs"]), best
    assert best["epochs"] < 27 if cut else best["epochs"] == 8
