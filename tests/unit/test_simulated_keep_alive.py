"""The simulated backend's kept-alive jobs and warm workers, and the one cost model it agrees with
(:func:`seer_torch.policies.costs.wave_overheads_s`): a job parks at its target holding its
slots, continues at the same ``W`` for ``continue_s``, takes another trial at ``W = 1`` for
``warm_start_s``, refuses another ``W`` (a resize relaunches for ``resize_s``), and every
slot-second it held is billed exactly once."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from seer_torch.backends.base import JobResult, JobSpec
from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import parse_experiment
from seer_torch.executor import Tuner
from seer_torch.policies.base import Finish, RoundTracker
from seer_torch.policies.costs import Overheads, job_time_s, wave_overheads_s, waves_time_s
from seer_torch.scaling.profile import parse_profile

EPOCH_S = 10.0
STARTUP_S, RELAUNCH_S, RESIZE_S, CONTINUE_S, WARM_S = 4.0, 3.0, 5.0, 0.25, 1.5


def _curve(configuration: dict, epoch: int) -> float:
    return 0.5 + 0.01 * epoch


def backend(keep_alive: bool = True, num_slots: int = 2, **kw) -> SimulatedBackend:
    return SimulatedBackend(
        num_slots, SimulatedClock(), epoch_time_s=EPOCH_S, speedup={1: 1.0, 2: 2.0}.__getitem__,
        startup_s=STARTUP_S, relaunch_s=RELAUNCH_S, resize_s=RESIZE_S, curve=_curve,
        keep_alive=keep_alive, continue_s=CONTINUE_S, warm_start_s=WARM_S, **kw,
    )


def spec(trial: int, world_size: int, until_epoch: int) -> JobSpec:
    return JobSpec(f"t{trial:03d}", Path("/nonexistent") / f"t{trial:03d}", world_size, until_epoch,
                   configuration={"x": trial}, config_index=trial)


def run_to_end(b: SimulatedBackend, handle) -> JobResult:
    b.clock.sleep(b.next_event_s() - b.clock.now())
    res = b.poll(handle)
    assert res is not None
    return res


def test_a_w1_round_of_six_trials_on_two_slots_runs_two_cold_starts_and_four_warm_ones():
    b = backend()
    results: list[JobResult] = []
    lanes = [b.launch(spec(i, 1, 1)) for i in range(2)]
    queue = list(range(2, 6))
    while queue:
        for lane, h in enumerate(lanes):
            res = run_to_end(b, h)
            assert res.parked
            results.append(res)
            lanes[lane] = b.continue_job(h, spec(queue.pop(0), 1, 1))  # a warm worker takes it
    ends = [run_to_end(b, h) for h in lanes]
    assert [j.kind for j in b.jobs] == ["startup"] * 2 + ["warm_start"] * 4
    assert len(b.launches) == 2  # two processes started in all
    # The round ends where the one cost model says: a cold wave, then two warm ones.
    first, later = wave_overheads_s(Overheads(STARTUP_S, RELAUNCH_S, RESIZE_S, CONTINUE_S, WARM_S), 1, None)
    predicted = waves_time_s(6, 2, job_time_s(first, 1, EPOCH_S, 1.0), job_time_s(later, 1, EPOCH_S, 1.0))
    assert max(r.end_s for r in ends) == predicted == (4.0 + 10.0) + 2 * (1.5 + 10.0)
    # Each trial trained its own epoch 1.
    assert all([r["epoch"] for r in b.read_metrics(spec(i, 1, 1))] == [1] for i in range(6))


def test_a_continuation_costs_continue_s_and_a_resize_resize_s():
    b = backend()
    h = b.launch(spec(0, 1, 1))
    parked = run_to_end(b, h)
    assert (parked.parked, parked.start_s, parked.end_s) == (True, 0.0, STARTUP_S + EPOCH_S)
    b.clock.sleep(2.0)  # the decision took 2 s: the job waited, holding its slot
    h2 = b.continue_job(h, spec(0, 1, 3))
    assert h2 is not None and h2.kind == "continue" and h2.start_s == parked.end_s
    res2 = run_to_end(b, h2)
    assert res2.end_s == parked.end_s + 2.0 + CONTINUE_S + 2 * EPOCH_S
    assert res2.duration_s == 2.0 + CONTINUE_S + 2 * EPOCH_S  # the wait is billed with it
    assert res2.wait_s == 2.0 and parked.wait_s == 0.0  # ... and is neither start-up nor training
    # Another W: refused; the job stays parked until released; the resize relaunches.
    assert b.continue_job(h2, spec(0, 2, 5)) is None
    assert b.release(h2).duration_s == 0.0
    h3 = b.launch(spec(0, 2, 5))
    assert h3.kind == "resize"
    assert run_to_end(b, h3).duration_s == RESIZE_S + 2 * EPOCH_S / 2.0
    assert [r["epoch"] for r in b.read_metrics(spec(0, 2, 5))] == [1, 2, 3, 4, 5]


def test_billing_of_parked_waits_sums_to_the_slot_seconds_held():
    b = backend(num_slots=3)
    bills: list[JobResult] = []
    a = b.launch(spec(0, 2, 1))  # two slots
    c = b.launch(spec(1, 1, 2))  # one slot
    bills.append(run_to_end(b, a))  # t = 4 + 5
    b.clock.sleep(3.0)
    a = b.continue_job(a, spec(0, 2, 2))
    bills.append(run_to_end(b, a))  # a second rung for trial 0
    bills.append(run_to_end(b, c))
    c = b.continue_job(c, spec(2, 1, 1))  # trial 2 on trial 1's warm worker
    b.clock.sleep(1.0)
    bills.append(b.release(a))
    bills.append(run_to_end(b, c))
    b.clock.sleep(7.0)
    bills.append(b.release(c))
    end_s = b.clock.now()
    assert all(r.parked for r in bills)
    held = 2 * (bills[3].end_s - 0.0) + 1 * (end_s - 0.0)  # each lane from its launch to its release
    assert sum(r.slot_seconds for r in bills) == pytest.approx(held)
    assert b.release(c) == bills[-1]  # idempotent, billed once
    with pytest.raises(RuntimeError, match="not parked"):
        b.continue_job(c, spec(2, 1, 2))  # a released job is dead


def test_a_parked_job_holds_its_slots_until_released_and_stop_leaves_it_parked():
    b = backend()
    h = b.launch(spec(0, 2, 1))
    parked = run_to_end(b, h)
    assert b.stop(h) == parked == b.poll(h)
    with pytest.raises(RuntimeError, match="over-asked"):
        b.launch(spec(1, 1, 1))
    assert b.continue_job(h, spec(1, 2, 1)) is None  # warm workers are W=1 jobs only
    b.release(h)
    assert b.launch(spec(1, 2, 1)).kind == "startup"


def test_jobs_that_diverge_crash_or_run_on_a_backend_without_keep_alive_do_not_park():
    diverging = SimulatedBackend(
        2, SimulatedClock(), epoch_time_s=EPOCH_S, speedup=lambda w: 1.0, startup_s=STARTUP_S,
        curve=lambda c, e: math.nan if e == 2 else 0.5, keep_alive=True,
    )
    res = run_to_end(diverging, diverging.launch(spec(0, 1, 2)))
    assert not res.parked and diverging.read_metrics(spec(0, 1, 2))[-1]["diverged"]
    crashing = backend(faults=lambda trial_id, attempt: ("crash", 1, "boom") if attempt == 0 else None)
    res = run_to_end(crashing, crashing.launch(spec(0, 1, 3)))
    assert (res.returncode, res.parked) == (1, False)
    plain = backend(keep_alive=False)
    h = plain.launch(spec(0, 1, 1))
    res = run_to_end(plain, h)
    assert not res.parked and res.end_s == STARTUP_S + EPOCH_S
    assert plain.continue_job(h, spec(0, 1, 2)) is None
    assert plain.launch(spec(0, 1, 2)).kind == "relaunch" and plain.launch(spec(1, 1, 1)).kind == "startup"


def test_stop_all_and_kill_leftover_end_parked_jobs_and_report_the_unbilled_wait():
    b = backend(num_slots=3)
    handles = [b.launch(spec(i, 1, 1)) for i in range(3)]
    parked = [run_to_end(b, h) for h in handles]
    b.clock.sleep(5.0)
    info = b.kill_leftover(spec(0, 1, 1).trial_dir)
    assert info is not None and info["alive"] and info["world_size"] == 1
    assert (info["launch_unix_s"], info["end_unix_s"]) == (parked[0].end_s, b.clock.now())  # its wait
    assert b.kill_leftover(spec(0, 1, 1).trial_dir) is None
    b.stop_all()
    assert all(b.kill_leftover(spec(i, 1, 1).trial_dir) is None for i in range(3))
    assert b.launch(spec(5, 1, 1)) and b.launch(spec(6, 2, 1))  # every slot free again


def test_the_simulator_keeps_jobs_alive_as_the_local_backend_does_by_default():
    from seer_torch.backends.local import LocalBackend
    from seer_torch.config import ResourceSpec
    from seer_torch.simulate import KEEP_ALIVE, SimulationCase

    assert KEEP_ALIVE == ResourceSpec().keep_alive == LocalBackend(1).keeps_jobs_alive
    assert SimulationCase.__dataclass_fields__["keep_alive"].default == KEEP_ALIVE


class _Rounds:
    """Launches given rounds one after the other, each ``(rung_epoch, trial_indexes)`` at
    ``W = 1``; pure, like every policy."""

    name = "rounds"
    reserved_slots = None
    schedule_epochs = 3

    def __init__(self, rounds: list[tuple[int, list[int]]]) -> None:
        self.rounds = list(rounds)
        self.tracker = RoundTracker()
        self.started = False

    def setup(self, context) -> None:
        pass

    def decide(self, snapshot):
        for ev in snapshot.events:
            self.tracker.ended(ev.index)
        if not self.started or self.tracker.done:
            self.started = True
            if not self.rounds:
                return [Finish("done")]
            rung, indexes = self.rounds.pop(0)
            self.tracker.start(len(self.rounds), rung, 1, indexes)
        return self.tracker.launches(snapshot.free_slots)

    def answer(self, snapshot):
        return None

    def report(self) -> dict:
        return {}


def test_the_executor_on_kept_alive_jobs_pays_cold_starts_warm_ones_and_continuations(tmp_path):
    exp = parse_experiment({
        "name": "keep-alive", "seed": 0,
        "training": {"max_epochs": 3, "min_epochs": 1, "eta": 3, "global_batch": 8, "micro_batch_max": 8},
        "budget": {"time_budget_s": 1000.0, "money_budget_usd": 10.0, "price_usd_per_slot_hour": 3.6},
        "resources": {"num_slots": 2, "world_size_ladder": [1]},
        "search": {"max_configurations": 6},
        "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}},
    })
    profile = parse_profile({"world_sizes": [1], "speedup": [1.0], "epoch_time_s": EPOCH_S,
                             "startup_s": STARTUP_S, "resize_s": RELAUNCH_S})
    b = backend()
    # Round 1: six trials to epoch 1 on two slots; round 2: the last wave's two go on to epoch 3.
    res = Tuner(exp, tmp_path / "run", b, clock=b.clock, profile=profile,
                policy=_Rounds([(1, list(range(6))), (3, [4, 5])])).run()
    assert [j.kind for j in b.jobs] == ["startup"] * 2 + ["warm_start"] * 4 + ["continue"] * 2
    end_s = (STARTUP_S + EPOCH_S) + 2 * (WARM_S + EPOCH_S) + (CONTINUE_S + 2 * EPOCH_S)
    assert res["budget"]["time_used_s"] == pytest.approx(end_s)
    # Both slots held from the start to the end, each slot-second billed once (3.6 USD/h).
    assert res["budget"]["cost_usd"] == pytest.approx(2 * end_s * 3.6 / 3600)
    assert b.kill_leftover(tmp_path / "run" / "trials" / "t004") is None  # released at the end
    # What each kind of start cost is measured apart and journaled, for re-plans and resume.
    measured = json.loads((tmp_path / "run" / "state.json").read_text())["measured"]
    assert measured["overheads_s"] == pytest.approx([STARTUP_S] * 2)
    assert measured["warm_overheads_s"] == pytest.approx([WARM_S] * 4)
    assert measured["continue_overheads_s"] == pytest.approx([CONTINUE_S] * 2)
    assert measured["start_kinds"] == {"launch": 2, "warm": 4, "continue": 2}
    # Every paid slot-second is training or a start: these jobs never waited for an order.
    slots = res["slot_seconds"]
    assert slots["paid"] == pytest.approx(2 * end_s)
    assert slots["training"] == pytest.approx(10 * EPOCH_S)  # 6 trials x 1 epoch + 2 x 2 more
    assert slots["starting"] == pytest.approx({"launch": 2 * STARTUP_S, "warm": 4 * WARM_S,
                                               "continue": 2 * CONTINUE_S})
    assert slots["other"] == pytest.approx(0.0, abs=1e-9)
