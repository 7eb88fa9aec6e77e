"""The learning-rate schedule's horizon when a trial's target changes (issue 13, faults 1 and 7).

The horizon is the policy's target at each launch (``config.json``'s ``max_epochs``, written at
every launch); a worker that resumes under another horizon re-anchors the cosine at its resume
step so that the factor goes on from where it was, without a jump, and reaches exactly 0 at
the new horizon. ``results.json``'s ``best.partial`` says when the answer's schedule did not
finish.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import parse_experiment
from seer_torch.errors import ConfigError
from seer_torch.executor import Tuner
from seer_torch.policies.registry import make_policy

GLOBAL_BATCH = 64
STEPS_PER_EPOCH = 1257 // GLOBAL_BATCH  # digits: 19 optimizer steps an epoch
PEAK_LR = 0.2


# ------------------------------------------------------------------ the schedule, pure


def test_one_segment_is_the_plain_cosine():
    from seer_torch.worker import LrSchedule, cosine_lr_factor

    schedule = LrSchedule.cosine(90)
    assert schedule.end_step == 90
    assert [schedule.factor(s) for s in range(0, 100)] == [cosine_lr_factor(s, 90) for s in range(0, 100)]


@pytest.mark.parametrize("new_end", [40, 60, 150])  # lowered, lowered to the step after, raised
def test_a_new_horizon_continues_the_factor_and_ends_it_at_zero(new_end):
    from seer_torch.worker import LrSchedule

    old = LrSchedule.cosine(100)
    change = 39
    new = old.retarget(change, new_end)
    assert new.end_step == new_end
    # Up to the change the schedule is the old one, bit for bit: the steps already taken.
    assert [new.factor(s) for s in range(change + 1)] == [old.factor(s) for s in range(change + 1)]
    # No jump: from the change on the factor falls step by step, never by more than a cosine
    # from 1 to 0 over the steps left would fall in one step (pi/2 per unit of progress).
    factors = [new.factor(s) for s in range(change, new_end + 1)]
    assert all(b < a for a, b in zip(factors, factors[1:])), "not strictly decreasing"
    assert max(a - b for a, b in zip(factors, factors[1:])) <= math.pi / 2 / (new_end - change)
    assert new.factor(new_end) == 0.0 and new.factor(new_end + 4) == 0.0
    assert new.factor(new_end - 1) > 0.0


def test_changes_compose_and_round_trip_through_the_checkpoint_list():
    from seer_torch.worker import LrSchedule

    schedule = LrSchedule.cosine(6 * 19).retarget(2 * 19, 4 * 19).retarget(3 * 19, 5 * 19)
    assert len(schedule.segments) == 3
    # the same horizon again is no change (a relaunch at the same target re-anchors nothing)
    assert schedule.retarget(4 * 19, 5 * 19) == schedule
    assert LrSchedule.from_list(schedule.to_list()) == schedule
    factors = [schedule.factor(s) for s in range(5 * 19 + 1)]
    assert all(b < a for a, b in zip(factors, factors[1:]))
    assert factors[-1] == 0.0
    # The factor at each change is the one the schedule before it had there (continuity).
    assert schedule.factor(2 * 19) == LrSchedule.cosine(6 * 19).factor(2 * 19)
    assert schedule.factor(3 * 19) == LrSchedule.cosine(6 * 19).retarget(2 * 19, 4 * 19).factor(3 * 19)


@pytest.mark.parametrize(
    "raw",
    [
        [],
        [[0, 0.0]],
        [[0, 0.0, 0]],
        [[0, 1.5, 10]],
        [[0, 0.0, 10], [5, 0.4, 20]],
        [[0, 0.0, 10], [12, 0.5, 20]],
        "segments",
    ],
)
def test_a_bad_schedule_list_is_refused(raw):
    from seer_torch.worker import LrSchedule

    with pytest.raises(ConfigError) as info:
        LrSchedule.from_list(raw)
    assert info.value.field == "lr_schedule"


def test_a_schedule_already_ended_stays_at_zero_when_raised():
    from seer_torch.worker import LrSchedule

    schedule = LrSchedule.cosine(40).retarget(40, 60)
    assert [schedule.factor(s) for s in (40, 50, 60)] == [0.0, 0.0, 0.0]


# ------------------------------------------------------------------ the worker (W = 1, in process)


def _trial(tmp_path: Path, name: str) -> Path:
    trial_dir = tmp_path / name
    trial_dir.mkdir()
    return trial_dir


def _launch(trial_dir: Path, until_epoch: int, horizon: int, monkeypatch) -> None:
    """One launch as the executor makes it: config.json with the horizon, then the worker."""
    from seer_torch import trial
    from seer_torch.worker import TrialConfig, train

    config = {
        "trial_id": trial_dir.name,
        "configuration": {"lr": PEAK_LR, "weight_decay": 5e-4, "width": 16, "dropout": 0.0},
        "model": "digits_mlp",
        "dataset": "digits",
        "data_dir": None,
        "global_batch": GLOBAL_BATCH,
        "micro_batch_max": GLOBAL_BATCH,
        "max_epochs": horizon,
        "seed": 0,
        "tensorboard_dir": None,
    }
    (trial_dir / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("SEER_RECORD_SAMPLES", str(trial_dir / "record"))
    with trial.init(trial_dir, until_epoch, cpu_threads=None) as t:
        train(t, TrialConfig.load(str(trial_dir)))


def _step_lrs(trial_dir: Path) -> dict[int, float]:
    """The learning rate each optimizer step used, by step (1-based)."""
    lines = (trial_dir / "record.rank0").read_text().splitlines()
    return {r["step"]: r["lr"] for r in map(json.loads, lines)}


def _metrics(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_worker_follows_a_lowered_then_raised_horizon_without_a_jump(tmp_path, monkeypatch):
    # Launches to epochs 2, 3, 5; the target is 6 at the first, lowered to 4 at the second,
    # raised to 5 at the third (a re-plan between rounds).
    a = _trial(tmp_path, "a")
    for until, horizon in ((2, 6), (3, 4), (5, 5)):
        _launch(a, until, horizon, monkeypatch)
    lrs = _step_lrs(a)
    metrics = _metrics(a)
    assert sorted(lrs) == list(range(1, 5 * STEPS_PER_EPOCH + 1))
    # The first step after each change uses the learning rate the step before left, and no
    # step after it falls by more than a cosine from the peak to 0 over the steps left would.
    after = {line["epoch"]: line["lr"] for line in metrics}
    assert lrs[2 * STEPS_PER_EPOCH + 1] == after[2] and lrs[3 * STEPS_PER_EPOCH + 1] == after[3]
    steps = [lrs[s] for s in sorted(lrs)] + [after[5]]  # steps[i]: the learning rate after step i
    drops = [a_ - b for a_, b in zip(steps, steps[1:])]
    assert max(drops[2 * STEPS_PER_EPOCH :]) <= PEAK_LR * math.pi / 2 / (2 * STEPS_PER_EPOCH), (
        "the learning rate jumps where the horizon was lowered"
    )
    assert min(drops) > 0, "the learning rate rises somewhere"
    # The schedule ends exactly where the trial ends.
    assert after[5] == 0.0
    assert lrs[5 * STEPS_PER_EPOCH] > 0.0

    # Launched epoch by epoch under the same horizons (a job that stopped after every epoch,
    # each relaunch reading the horizon again), the learning rates are the same, bit for bit.
    b = _trial(tmp_path, "b")
    for until, horizon in ((1, 6), (2, 6), (3, 4), (4, 5), (5, 5)):
        _launch(b, until, horizon, monkeypatch)
    assert _step_lrs(b) == lrs
    assert [line["lr"] for line in _metrics(b)] == [line["lr"] for line in metrics]


def test_the_worker_matches_the_pure_schedule(tmp_path, monkeypatch):
    from seer_torch.worker import LrSchedule

    trial_dir = _trial(tmp_path, "t")
    _launch(trial_dir, 2, 6, monkeypatch)
    _launch(trial_dir, 4, 4, monkeypatch)
    expected = LrSchedule.cosine(6 * STEPS_PER_EPOCH).retarget(2 * STEPS_PER_EPOCH, 4 * STEPS_PER_EPOCH)
    lrs = _step_lrs(trial_dir)
    assert all(lrs[s] == pytest.approx(PEAK_LR * expected.factor(s - 1), rel=1e-12, abs=1e-15) for s in lrs)
    state = torch.load(trial_dir / "checkpoint.pt", weights_only=True)
    assert LrSchedule.from_list(state["state"]["lr_schedule"]) == expected


# ------------------------------------------------------------------ the executor (simulated backend)


def _curve(config, epoch):
    return config["q"] * (1.0 - 0.5 / epoch)


def _run(tmp_path: Path, **kwargs):
    exp, clock, backend = _setup(tmp_path, **kwargs)
    run_dir = tmp_path / "run"
    return Tuner(exp, run_dir, backend, policy=make_policy("seer"), clock=clock).run(), run_dir


def _setup(
    tmp_path: Path,
    *,
    max_configurations,
    max_epochs,
    eta,
    slots,
    ladder,
    time_s,
    epoch_time_s=10.0,
    startup_s=5.0,
    speedup=(1.0, 1.8, 3.4, 5.4),
    backend_speedup=None,
    backend_epoch_time_s=None,
):
    tmp_path.mkdir(parents=True, exist_ok=True)
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
            "budget": {"time_budget_s": time_s, "money_budget_usd": 100.0, "price_usd_per_slot_hour": 3.6},
            "resources": {"num_slots": slots, "world_size_ladder": ladder},
            "search": {"max_configurations": max_configurations},
            "planner": {"profile": str(profile)},
            "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}},
        }
    )
    clock = SimulatedClock()
    ws = dict(zip([1, 2, 4, 8], backend_speedup or speedup))
    backend = SimulatedBackend(
        slots,
        clock,
        epoch_time_s=backend_epoch_time_s or epoch_time_s,
        speedup=lambda w: ws[w],
        startup_s=startup_s,
        curve=_curve,
    )
    return exp, clock, backend


#: Epochs take 4x what the profile said: after round 1 the re-plan lowers the target from 9 to 6
#: (BEST EFFORT). Rounds: 6 trials to epoch 1, 2 to epoch 3, 1 to epoch 6 (9 launches).
LOWERED = dict(
    max_configurations=6,
    max_epochs=9,
    eta=3,
    slots=2,
    ladder=[1],
    time_s=100.0,
    epoch_time_s=2.0,
    backend_epoch_time_s=8.0,
)


def _horizon(run_dir: Path, trial_id: str) -> int:
    return json.loads((run_dir / "trials" / trial_id / "config.json").read_text())["max_epochs"]


def test_a_lowered_target_is_the_horizon_the_answer_trains_to(tmp_path):
    # Epochs take 4x what the profile said: after round 1 the re-plan lowers the target (BEST
    # EFFORT). The answer's last launch must carry the lowered target as its schedule's horizon.
    res, run_dir = _run(tmp_path, **LOWERED)
    assert res["stop_reason"].startswith("BEST EFFORT")
    best = res["best"]
    assert best["epochs"] < 9
    assert _horizon(run_dir, best["trial_id"]) == best["epochs"], (
        f"the answer is trained to epoch {best['epochs']} on a schedule to epoch "
        f"{_horizon(run_dir, best['trial_id'])}"
    )
    assert best["partial"] is False  # its schedule finished


def test_partial_when_the_answers_schedule_did_not_finish(tmp_path):
    # The deadline stops the widened final round: the answer is the best at the rung before,
    # whose schedule runs to the target it never reached.
    res, run_dir = _run(
        tmp_path,
        max_configurations=200,
        max_epochs=27,
        eta=3,
        slots=4,
        ladder=[1, 2],
        time_s=420.0,
        speedup=(1.0, 1.8),
        backend_speedup=(1.0, 1.0),
    )
    best = res["best"]
    assert res["stop_reason"] == "deadline reached" and best["epochs"] < 27
    assert _horizon(run_dir, best["trial_id"]) == 27
    assert best["partial"] is True, "the answer's schedule stopped short of its horizon but partial is false"


def test_not_partial_when_the_answer_is_fully_trained(tmp_path):
    res, run_dir = _run(tmp_path, max_configurations=8, max_epochs=8, eta=2, slots=4, ladder=[1], time_s=1e6)
    best = res["best"]
    assert best["epochs"] == 8 == _horizon(run_dir, best["trial_id"])
    assert best["partial"] is False


@pytest.mark.parametrize("point", ["launch:7", "job_end:4", "launch:9"])
def test_a_resumed_run_keeps_the_lowered_horizon(tmp_path, crash_tuner, point):
    # Killed after the target was lowered (a round-2 launch, a round-2 job's end, the final
    # launch) and resumed: the answer is the uninterrupted run's, on a schedule that finished.
    clean, _ = _run(tmp_path / "clean", **LOWERED)
    exp, clock, backend = _setup(tmp_path / "killed", **LOWERED)
    run_dir = tmp_path / "killed" / "run"
    crash_tuner(point, lambda: Tuner(exp, run_dir, backend, policy=make_policy("seer"), clock=clock).run())
    res = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock).run(resume=True)
    best = res["best"]
    assert (best["trial_id"], best["epochs"]) == (clean["best"]["trial_id"], clean["best"]["epochs"])
    assert best["epochs"] == 6
    assert _horizon(run_dir, best["trial_id"]) == 6 == best["schedule_epochs"]
    assert best["partial"] is False
