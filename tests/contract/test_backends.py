"""The backend contract (:class:`seer_torch.backends.base.Backend`), one suite run against every
backend: the local one (real torchrun jobs of the tiny ``digits_mlp`` on CPU/gloo) and the
simulated one (with and without hang detection declared).

What every backend must do: a launched job trains to its epoch and ends with a
:class:`JobResult` whose times, slot-seconds and world size agree; ``poll`` and ``stop`` are
idempotent; ``read_metrics`` returns the epochs that were trained, and the trial's next job
continues from its checkpoint; a stop ends a running job with its checkpoint kept, within the
declared ``max_stop_s``; ``stop_all`` and ``kill_leftover`` end what runs; the slots of ended
jobs are free again; and the declared abilities are honest: a declared one works, and an
undeclared one is never used by the executor. A backend that keeps jobs alive
(``keeps_jobs_alive``): a job parks at its target, continues there at the same ``W`` from where
it parked (its wait billed with the next segment), refuses another ``W``, may take another
trial's job on a warm ``W = 1`` worker, and ends with ``release`` (its last wait a result of its
own), with ``stop_all`` and with ``kill_leftover``; every slot-second it held is billed once.

Adding a backend is one entry in :data:`HARNESSES`: a :class:`Harness` subclass that builds the
backend and moves its clock (the Ray one: :class:`RayHarness`, on the session's local cluster).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from seer_torch.backends.base import Backend, JobResult, JobSpec, job_error_text
from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import parse_experiment
from seer_torch.executor import Tuner, trial_config
from seer_torch.policies.base import Finish, Launch
from seer_torch.scaling.profile import parse_profile

NUM_SLOTS = 3
SLOW_STEP_S = 0.1  # the local slow jobs sleep this long after every step (26 steps an epoch)
BRISK_STEP_S = 0.02  # the local brisk ones: epochs of about 0.6 s
EXPERIMENT = {
    "name": "contract",
    "seed": 0,
    "model": {"name": "digits_mlp"},
    "data": {"dataset": "digits"},
    "training": {"max_epochs": 9, "min_epochs": 1, "eta": 3, "global_batch": 48, "micro_batch_max": 12},
    "budget": {"time_budget_s": 600.0, "money_budget_usd": 10.0, "price_usd_per_slot_hour": 3.6},
    "resources": {"num_slots": NUM_SLOTS, "world_size_ladder": [1, 2]},
    "search": {"max_configurations": 3},
    "search_space": {"lr": 0.05, "weight_decay": 0.0005, "momentum": 0.9, "width": 32, "dropout": 0.0},
}
CONFIGURATION = {"lr": 0.05, "weight_decay": 0.0005, "momentum": 0.9, "width": 32, "dropout": 0.0}
#: The same experiment with a user's script on the trial API instead of the built-in worker.
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tabular_mlp"
SCRIPT_CONFIGURATION = {"lr": 0.003, "weight_decay": 0.01, "width": 32, "depth": 2}
SCRIPT_EXPERIMENT = {
    **{k: v for k, v in EXPERIMENT.items() if k not in ("model", "data")},
    "trial": {"script": str(EXAMPLE / "train.py"), "args": ["--dataset", "breast_cancer"]},
    "search_space": SCRIPT_CONFIGURATION,
}


def _curve(configuration: dict[str, Any], epoch: int) -> float:
    return 0.5 + 0.04 * epoch


class Harness:
    """One backend under test: builds it, prepares trial folders, and moves its clock."""

    name = "?"
    #: seconds on the backend's clock an epoch takes, about (to wait for progress)
    epoch_s = 1.0
    timeout_s = 60.0
    #: the name of a session fixture the backend needs first (a cluster), or ``None``
    cluster_fixture: str | None = None
    experiment: dict[str, Any] = EXPERIMENT
    configuration: dict[str, Any] = CONFIGURATION

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.exp = parse_experiment(self.experiment)
        self.backend = self.make_backend()

    def make_backend(self) -> Backend:
        raise NotImplementedError

    def spec(self, trial_id: str, world_size: int, until_epoch: int) -> JobSpec:
        """A job of trial ``trial_id`` (its folder and ``config.json`` written on first use)."""
        trial_dir = self.tmp_path / "trials" / trial_id
        if not (trial_dir / "config.json").exists():
            trial_dir.mkdir(parents=True, exist_ok=True)
            (trial_dir / "config.json").write_text(
                json.dumps(trial_config(self.exp, trial_id, self.configuration, None))
            )
        script = Path(self.exp.trial.script) if self.exp.trial.script else None
        return JobSpec(
            trial_id, trial_dir, world_size, until_epoch, configuration=self.configuration, config_index=0,
            script=script, script_args=self.exp.trial.args,
        )

    #: Real jobs told to stop save their epoch in progress (seer_torch.trial.STOP_SAVE_WINDOW_S).
    saves_on_stop = False

    def slow(self) -> None:
        """Make the jobs launched from now on slow enough to be stopped half-way."""

    def brisk(self) -> None:
        """Make the jobs launched from now on train epochs of well under a second, slow enough
        to be stopped mid-way through a launch."""

    def advance(self, seconds: float) -> None:
        raise NotImplementedError

    def wait_for(self, done, what: str) -> Any:
        """Advance the clock until ``done()`` is true (returns its value)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            value = done()
            if value:
                return value
            assert time.monotonic() < deadline, f"{self.name}: timed out waiting for {what}"
            self.advance(0.1 * self.epoch_s)

    def run_to_end(self, handle) -> JobResult:
        return self.wait_for(lambda: self.backend.poll(handle), f"{handle.spec.trial_id} to end")


class SimulatedHarness(Harness):
    name = "simulated"
    epoch_s = 10.0
    faults = None
    keep_alive: dict[str, Any] = {}  # the backend's keep-alive arguments

    def make_backend(self) -> Backend:
        self.clock = SimulatedClock()
        return SimulatedBackend(
            NUM_SLOTS,
            self.clock,
            epoch_time_s=10.0,
            speedup={1: 1.0, 2: 1.8, 3: 2.5}.__getitem__,
            startup_s=5.0,
            curve=_curve,
            faults=self.faults,
            **self.keep_alive,
        )

    def advance(self, seconds: float) -> None:
        self.clock.sleep(seconds)


class SimulatedHangsHarness(SimulatedHarness):
    """The simulated backend with fault injection on (no fault happens): it declares
    ``detects_hangs``."""

    name = "simulated-hangs"

    @staticmethod
    def faults(trial_id: str, attempt: int) -> None:
        return None


class SimulatedKeepAliveHarness(SimulatedHarness):
    """The simulated backend with kept-alive jobs and warm workers: it declares
    ``keeps_jobs_alive``."""

    name = "simulated-keep-alive"
    keep_alive = {"keep_alive": True, "continue_s": 0.5, "warm_start_s": 2.0}


class LocalHarness(Harness):
    name = "local"
    epoch_s = 1.0

    def make_backend(self) -> Backend:
        from seer_torch.backends.local import LocalBackend

        return LocalBackend(NUM_SLOTS)

    saves_on_stop = True

    def slow(self) -> None:
        self.monkeypatch.setenv("SEER_DEBUG_STEP_DELAY_S", str(SLOW_STEP_S))

    def brisk(self) -> None:
        self.monkeypatch.setenv("SEER_DEBUG_STEP_DELAY_S", str(BRISK_STEP_S))

    def advance(self, seconds: float) -> None:
        time.sleep(seconds)


class LocalScriptHarness(LocalHarness):
    """The local backend running a user's script (examples/tabular_mlp/train.py) instead of the
    built-in worker: the same jobs, launched as ``torchrun SCRIPT ARGS``."""

    name = "local-script"
    experiment = SCRIPT_EXPERIMENT
    configuration = SCRIPT_CONFIGURATION


class RayHarness(LocalHarness):
    """The Ray backend on the session's local Ray cluster (``ray_cluster`` in tests/conftest.py:
    three nodes of one CPU each, so a job of ``W >= 2`` spans nodes and meets on a c10d
    rendezvous): the same torchrun jobs, one per node part, started by Ray actors."""

    name = "ray"
    cluster_fixture = "ray_cluster"
    timeout_s = 90.0

    def make_backend(self) -> Backend:
        from seer_torch.backends.ray_backend import RayBackend

        return RayBackend(NUM_SLOTS)


#: Every backend the suite runs against; the local and Ray ones start real torchrun jobs.
HARNESSES = [
    pytest.param(SimulatedHarness, id="simulated"),
    pytest.param(SimulatedHangsHarness, id="simulated-hangs"),
    pytest.param(SimulatedKeepAliveHarness, id="simulated-keep-alive"),
    pytest.param(LocalHarness, id="local", marks=pytest.mark.integration),
    pytest.param(RayHarness, id="ray", marks=pytest.mark.integration),
]
#: The first test also runs the local backend on a user's script (one job, then its next one
#: from the checkpoint at another W); the others are about the backend, whatever the job runs.
WITH_SCRIPT = [*HARNESSES, pytest.param(LocalScriptHarness, id="local-script", marks=pytest.mark.integration)]


@pytest.fixture(params=HARNESSES)
def harness(request, tmp_path, monkeypatch):
    monkeypatch.delenv("SEER_DEBUG_STEP_DELAY_S", raising=False)
    if request.param.cluster_fixture:  # a cluster the backend joins (the session's Ray)
        request.getfixturevalue(request.param.cluster_fixture)
    h = request.param(tmp_path, monkeypatch)
    yield h
    h.backend.stop_all()


def _why(res: JobResult) -> str:
    """A failed job's error and the end of its stderr, for an assertion's message."""
    log = res.spec.trial_dir / "stderr.log"
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no stderr.log)"
    return f"{job_error_text(res)}\n{tail}"


def _epochs(rows: list[dict[str, Any]]) -> list[int]:
    return [int(r["epoch"]) for r in rows]


@pytest.mark.parametrize("harness", WITH_SCRIPT, indirect=True)
def test_a_job_trains_to_its_epoch_and_the_next_one_continues_from_its_checkpoint(harness):
    backend = harness.backend
    assert isinstance(backend, Backend) and backend.num_slots == NUM_SLOTS
    spec = harness.spec("t000", 2, 2)
    before = backend.clock.now()
    handle = backend.launch(spec)
    assert handle.spec == spec and before <= handle.start_s <= backend.clock.now()
    res = harness.run_to_end(handle)
    assert (res.returncode, res.stopped, res.spec) == (0, False, spec), _why(res)
    assert res.start_s == handle.start_s and res.end_s > res.start_s
    assert res.duration_s == res.end_s - res.start_s
    assert res.slot_seconds == pytest.approx(2 * res.duration_s)
    assert backend.poll(handle) == res and backend.stop(handle) == res  # idempotent, even a stop
    rows = backend.read_metrics(spec)
    assert _epochs(rows) == [1, 2] and all(r["world_size"] == 2 for r in rows)
    assert all(0.0 <= r["val_accuracy"] <= 1.0 for r in rows)
    if harness.exp.trial.script is None:  # the built-in worker reports its test accuracy at the end
        assert "test_accuracy" in rows[-1]

    # The next job of the trial, at another W, trains epoch 3 only: epochs 1-2 are kept.
    spec3 = harness.spec("t000", 1, 3)
    res3 = harness.run_to_end(backend.launch(spec3))
    assert (res3.returncode, res3.stopped) == (0, False), _why(res3)
    assert res3.slot_seconds == pytest.approx(res3.duration_s)
    rows3 = backend.read_metrics(spec3)
    assert _epochs(rows3) == [1, 2, 3] and rows3[:2] == rows and rows3[2]["world_size"] == 1


def test_stops_end_running_jobs_and_keep_their_checkpoints(harness):
    backend = harness.backend
    first_handle = backend.launch(harness.spec("t000", 1, 1))
    first = harness.run_to_end(first_handle)  # a checkpoint at epoch 1
    assert (first.returncode, first.stopped) == (0, False)
    assert first.parked == backend.keeps_jobs_alive
    if first.parked:
        backend.release(first_handle)  # its slot, for the three jobs below
    harness.slow()
    specs = [harness.spec(f"t00{i}", 1, 9) for i in range(3)]
    handles = [backend.launch(s) for s in specs]
    harness.advance(2 * harness.epoch_s)
    assert all(backend.poll(h) is None for h in handles)

    # stop: a stopped result within the declared max_stop_s, the trained epochs kept.
    t0 = backend.clock.now()
    res = backend.stop(handles[0])
    assert res.stopped and res.spec == specs[0] and res.end_s - t0 <= backend.max_stop_s + 0.5
    assert backend.poll(handles[0]) == res and backend.stop(handles[0]) == res
    kept = _epochs(backend.read_metrics(specs[0]))  # the checkpoint's epochs, at least epoch 1's
    assert 1 <= len(kept) < 9 and kept == list(range(1, len(kept) + 1))

    # kill_leftover: a job a dead tuner left running in its trial folder is found and ended.
    info = backend.kill_leftover(specs[1].trial_dir)
    assert info is not None and info["alive"] is True
    assert (info["world_size"], info["until_epoch"]) == (1, 9) and info["end_unix_s"] >= info["launch_unix_s"]
    assert harness.wait_for(lambda: backend.poll(handles[1]), "the leftover to end") is not None
    assert backend.kill_leftover(specs[1].trial_dir) is None  # nothing left there now

    # stop_all: whatever still runs ends, stopped.
    backend.stop_all()
    last = backend.poll(handles[2])
    assert last is not None and last.stopped


def test_a_stop_keeps_every_epoch_reported_before_it(harness):
    # The tuner's deadline stops jobs mid-way: the epochs they reported are not lost. A real
    # job told to stop (SIGTERM) finishes its epoch in progress when that takes under
    # STOP_SAVE_WINDOW_S, saves it (with its test accuracy) and ends; then it is the last kept.
    backend = harness.backend
    harness.brisk()
    spec = harness.spec("t000", 2, 9)
    handle = backend.launch(spec)

    def two_reported() -> int:
        assert backend.poll(handle) is None, _why(backend.poll(handle))  # (a backend may start it in poll)
        return backend.reported_epoch(spec) >= 2 and backend.reported_epoch(spec)

    reported = harness.wait_for(two_reported, "two epochs reported")
    res = backend.stop(handle)
    assert res.stopped and backend.reported_epoch(spec) < 9
    rows = backend.read_metrics(spec)
    kept = _epochs(rows)
    assert kept == list(range(1, len(kept) + 1)) and len(kept) >= reported, (reported, kept, _why(res))
    if harness.saves_on_stop:
        assert len(kept) == backend.reported_epoch(spec)  # every epoch reported is durable: none lost
        assert rows[-1].get("test_accuracy") is not None  # evaluated as at a target


def test_the_slots_of_ended_jobs_are_free_again(harness):
    backend = harness.backend
    for trial_id in ("t000", "t001"):
        spec = harness.spec(trial_id, NUM_SLOTS, 1)
        res = backend.stop_many([backend.launch(spec)])[0]  # every slot, stopped at once
        assert res.stopped and res.slot_seconds == pytest.approx(NUM_SLOTS * res.duration_s)


def test_declared_abilities_work_and_undeclared_ones_are_not_used(harness, tmp_path):
    backend = harness.backend
    calls: list[str] = []
    spied = ("next_event_s", "seconds_since_progress", "stop_many", "read_metrics", "continue_job", "release",
             "release_many", "stop_all")
    inside: list[str] = []  # the spied method running now: a backend's own calls are not the executor's
    for name in spied:
        method = getattr(backend, name)

        def spy(*args, _name=name, _method=method):
            if not inside:
                calls.append(_name)
            inside.append(_name)
            try:
                return _method(*args)
            finally:
                inside.pop()

        setattr(backend, name, spy)

    # A declared ability works: the next event is the running job's end; progress is measured
    # from the job's launch at most.
    handle = backend.launch(harness.spec("t009", 1, 1))
    if backend.discrete_events:
        assert backend.next_event_s() > backend.clock.now()
    if backend.detects_hangs:
        assert 0.0 <= backend.seconds_since_progress(handle) <= backend.clock.now() - handle.start_s + 1.0
    assert backend.max_stop_s >= 0.0
    res = backend.stop(handle)
    if backend.discrete_events:
        assert res.end_s == backend.clock.now() and backend.next_event_s() == float("inf")
    calls.clear()

    # The executor, driving one job to epoch 1 on the backend, uses exactly what is declared.
    class OneJob:
        name = "one-job"
        reserved_slots = None
        schedule_epochs = 1

        def setup(self, context):
            self.calls = 0

        def decide(self, snapshot):
            self.calls += 1
            return [Launch(0, 1, 1)] if self.calls == 1 else [Finish("done")]

        def answer(self, snapshot):
            return None

        def report(self):
            return {}

    profile = parse_profile(
        {"world_sizes": [1, 2], "speedup": [1.0, 1.8], "epoch_time_s": 1.0, "startup_s": 1.0}
    )
    res = Tuner(
        harness.exp, tmp_path / "run", backend, policy=OneJob(), clock=backend.clock, profile=profile
    ).run()
    assert res["trials"][0]["epochs"] == 1 and res["stop_reason"] == "done"
    assert "read_metrics" in calls
    assert ("next_event_s" in calls) == backend.discrete_events
    assert ("seconds_since_progress" in calls) == backend.detects_hangs
    assert "stop_many" in calls  # the wrap-up stops what runs (nothing here) at once
    kept_alive = {"continue_job", "release", "release_many"} & set(calls)
    if not backend.keeps_jobs_alive:
        assert not kept_alive
    else:  # the job parked at epoch 1; the executor releases it at the run's end: nothing is left
        assert kept_alive & {"release", "release_many"}
        assert backend.kill_leftover(tmp_path / "run" / "trials" / res["trials"][0]["trial_id"]) is None


# -- kept-alive jobs (backends that declare keeps_jobs_alive) ------------------------------------


def _keeps_jobs_alive(harness: Harness) -> Backend:
    if not harness.backend.keeps_jobs_alive:
        pytest.skip(f"{harness.name} keeps no jobs alive")
    return harness.backend


def test_a_kept_alive_job_parks_continues_at_its_w_and_is_released_billed_once(harness):
    backend = _keeps_jobs_alive(harness)
    spec1 = harness.spec("t000", 1, 1)
    h1 = backend.launch(spec1)
    parked1 = harness.run_to_end(h1)
    assert (parked1.returncode, parked1.stopped, parked1.parked) == (0, False, True), _why(parked1)
    assert parked1.start_s == h1.start_s and parked1.end_s > parked1.start_s
    assert backend.poll(h1) == parked1 and backend.stop(h1) == parked1  # idempotent; still parked
    assert _epochs(backend.read_metrics(spec1)) == [1]
    harness.advance(0.5 * harness.epoch_s)  # the decision takes a while: the job waits

    # The same trial's next rung at the same W: no start; its wait is billed with the segment.
    spec2 = harness.spec("t000", 1, 2)
    h2 = backend.continue_job(h1, spec2)
    assert h2 is not None and h2.spec == spec2 and h2.start_s == parked1.end_s
    parked2 = harness.run_to_end(h2)
    assert (parked2.returncode, parked2.parked, parked2.spec) == (0, True, spec2), _why(parked2)
    assert parked2.start_s == parked1.end_s
    rows = backend.read_metrics(spec2)
    assert _epochs(rows) == [1, 2] and rows[1]["world_size"] == 1  # epoch 1 not trained again

    # Another W is a relaunch: refused, and the job stays parked until it is released.
    assert backend.continue_job(h2, harness.spec("t000", 2, 3)) is None
    harness.advance(0.2 * harness.epoch_s)
    released = backend.release(h2)
    assert (released.stopped, released.parked, released.spec) == (True, True, spec2)
    assert released.start_s == parked2.end_s and released.end_s >= released.start_s
    assert backend.kill_leftover(spec2.trial_dir) is None  # nothing left of it
    # Every slot-second the job held, from its launch to its release, billed exactly once.
    billed = parked1.slot_seconds + parked2.slot_seconds + released.slot_seconds
    assert billed == pytest.approx(released.end_s - parked1.start_s)
    assert _epochs(backend.read_metrics(harness.spec("t000", 1, 2))) == [1, 2]


def test_a_parked_w1_job_may_take_another_trial_as_a_warm_worker(harness):
    backend = _keeps_jobs_alive(harness)
    spec_a = harness.spec("t000", 1, 1)
    h_a = backend.launch(spec_a)
    parked_a = harness.run_to_end(h_a)
    assert parked_a.parked, _why(parked_a)
    spec_b = harness.spec("t001", 1, 1)
    h_b = backend.continue_job(h_a, spec_b)
    # What the backend declares is what it does: the planner prices a new trial's W = 1 job as
    # a warm start only on a backend that hands over workers.
    assert (h_b is not None) == backend.hands_over_workers
    if h_b is None:  # a backend without warm workers: release, then launch afresh
        assert backend.release(h_a).parked
        return
    assert h_b.spec == spec_b and h_b.start_s == parked_a.end_s
    parked_b = harness.run_to_end(h_b)
    assert (parked_b.returncode, parked_b.parked, parked_b.spec) == (0, True, spec_b), _why(parked_b)
    assert _epochs(backend.read_metrics(spec_b)) == [1]  # the new trial's own first epoch
    assert _epochs(backend.read_metrics(spec_a)) == [1]  # the old one's left as it was
    released = backend.release(h_b)
    assert released.spec == spec_b and released.start_s == parked_b.end_s
    billed = parked_a.slot_seconds + parked_b.slot_seconds + released.slot_seconds
    assert billed == pytest.approx(released.end_s - parked_a.start_s)


def test_stop_all_and_kill_leftover_end_parked_jobs(harness):
    backend = _keeps_jobs_alive(harness)
    specs = [harness.spec(f"t00{i}", 1, 1) for i in range(3)]
    handles = [backend.launch(s) for s in specs]
    results = [harness.run_to_end(h) for h in handles]
    assert all(r.parked for r in results), [_why(r) for r in results]

    # kill_leftover: a parked job a dead tuner left is found and ended, its wait reported.
    harness.advance(0.3 * harness.epoch_s)
    info = backend.kill_leftover(specs[0].trial_dir)
    assert info is not None and info["alive"] is True and info["world_size"] == 1
    assert info["end_unix_s"] >= info["launch_unix_s"]
    assert backend.kill_leftover(specs[0].trial_dir) is None

    # stop_all: the other parked jobs end too; every slot is free again.
    backend.stop_all()
    assert all(backend.kill_leftover(s.trial_dir) is None for s in specs)
    res = backend.stop_many([backend.launch(harness.spec("t009", NUM_SLOTS, 1))])[0]
    assert res.stopped and res.spec.world_size == NUM_SLOTS
