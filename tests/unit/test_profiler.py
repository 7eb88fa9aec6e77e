"""The profiler's orchestration and arithmetic, and `seer profile`, on a fake backend (no processes)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from seer_torch.backends.base import JobResult, JobSpec
from seer_torch.cli import main
from seer_torch.config import load_experiment, parse_experiment
from seer_torch.errors import WorkerError
from seer_torch.runfiles import PROBE_PLAN_FILE
from seer_torch.scaling import profiler
from seer_torch.scaling.profile import load_profile

STARTUP_S = 4.0  # the fake's fixed cost of a fresh job
RESIZE_S = 6.0  # ... and of a job that loads a checkpoint
EPOCH_S = 1.0  # the fake's time from first step to last metrics line


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class FakeHandle:
    spec: JobSpec
    start_s: float
    result: JobResult


class FakeBackend:
    """Ends every job at once, writing what the worker would: the probe JSON (throughput
    ``100 * W**0.8``), or one metrics line and a checkpoint. ``fail_at`` makes jobs at that W
    exit 1 with torchrun's error file; ``hang_at`` makes them run until stopped."""

    def __init__(
        self,
        num_slots: int = 8,
        clock: FakeClock | None = None,
        fail_at: int | None = None,
        hang_at: int | None = None,
    ) -> None:
        self.num_slots = num_slots
        self.clock = clock or FakeClock()
        self.fail_at = fail_at
        self.hang_at = hang_at
        self.launched: list[JobSpec] = []
        self.stopped_all = False

    def launch(self, spec: JobSpec) -> FakeHandle:
        self.launched.append(spec)
        start = self.clock.now()
        d = spec.trial_dir
        if spec.world_size == self.fail_at:
            (d / "error.json").write_text(
                json.dumps({"message": {"message": "Traceback...\nRuntimeError: boom"}})
            )
            return FakeHandle(spec, start, JobResult(spec, 1, start, start + 2.0, 1000.0 + start))
        if spec.world_size == self.hang_at:
            return FakeHandle(spec, start, None)  # type: ignore[arg-type]
        w = spec.world_size
        if spec.profile_steps is not None:
            thr = 100.0 * w**0.8
            step_s = 64 / thr
            probe = {
                "world_size": w,
                "throughput_samples_per_s": thr,
                "step_time_s": step_s,
                "eval_time_s": 0.5,
                "measured_steps": spec.profile_steps,
                "num_train_samples": 1000,
                "warmup_steps": 3,
                "device": "cpu",
            }
            work_s = spec.profile_steps * step_s + 0.5
            plan = d / PROBE_PLAN_FILE
            if plan.exists():  # the probe plan: each configuration at W=1 (the i-th 1 + i/2 times as fast)
                probe["w1"] = []
                for i, conf in enumerate(json.loads(plan.read_text())["w1_configurations"]):
                    s1 = 64 / (100.0 * (1 + i / 2))
                    probe["w1"].append({
                        "configuration": conf, "throughput_samples_per_s": 64 / s1, "step_time_s": s1,
                        "round_step_times_s": [s1, s1], "step_time_windows_s": [[s1] * 3, [s1] * 3],
                        "eval_time_s": 0.5, "measured_steps": spec.profile_steps, "num_train_samples": 1000,
                    })
                    work_s += spec.profile_steps * s1 + 0.5
                if w == 1:
                    probe.update({k: probe["w1"][0][k] for k in ("throughput_samples_per_s", "step_time_s")})
                    work_s -= spec.profile_steps * step_s + 0.5
                probe["probe_work_s"] = work_s
            Path(spec.profile_out).write_text(json.dumps(probe))
            duration = STARTUP_S + work_s
        else:
            resumed = (d / "checkpoint.pt").exists()
            duration = (RESIZE_S if resumed else STARTUP_S) + EPOCH_S
            t0 = 1000.0 + start + (RESIZE_S if resumed else STARTUP_S)
            line = {
                "epoch": spec.until_epoch,
                "world_size": w,
                "train_start_unix_s": t0,
                "time_unix_s": t0 + EPOCH_S,
                "throughput_samples_per_s": 100.0 * w,
                "epoch_time_s": EPOCH_S,
                "train_loss": 1.0,
                "val_accuracy": 0.5,
                "val_samples": 100,
            }
            with open(d / "metrics.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")
            (d / "checkpoint.pt").write_text("x")
        return FakeHandle(spec, start, JobResult(spec, 0, start, start + duration, 1000.0 + start))

    def poll(self, handle: FakeHandle) -> JobResult | None:
        if handle.result is None:
            return None
        self.clock.t = max(self.clock.t, handle.result.end_s)
        return handle.result

    def stop(self, handle: FakeHandle) -> JobResult:
        if handle.result is None:
            t = self.clock.now()
            handle.result = JobResult(
                handle.spec, -15, handle.start_s, t, 1000.0 + handle.start_s, stopped=True
            )
        return handle.result

    def stop_all(self) -> None:
        self.stopped_all = True


CONFIG = {
    "trial_id": "profile",
    "configuration": {"lr": 0.1},
    "model": "digits_cnn",
    "dataset": "digits",
    "data_dir": None,
    "global_batch": 64,
    "micro_batch_max": 64,
    "max_epochs": 1,
    "seed": 0,
    "tensorboard_dir": "/somewhere",
}


def test_launch_overhead_and_resize_seconds():
    assert profiler.launch_overhead_s(
        {"train_start_unix_s": 10.0, "time_unix_s": 12.5}, 9.0
    ) == pytest.approx(6.5)
    assert profiler.launch_overhead_s({"train_start_unix_s": 10.0, "time_unix_s": 20.0}, 9.0) == 0.0
    launches = [
        {"resized_from": None, "overhead_s": 9.0},
        {"resized_from": 1, "overhead_s": 5.0},
        {"resized_from": 2, "overhead_s": 7.0},
    ]
    assert profiler.resize_s_from_launches(launches) == 7.0
    assert profiler.resize_s_from_launches(launches[:1]) is None
    assert profiler.resize_s_from_launches([]) is None


def _probe(w, thr, step_s, eval_s, steps=12, n_train=1257):
    return {
        "world_size": w,
        "throughput_samples_per_s": thr,
        "step_time_s": step_s,
        "eval_time_s": eval_s,
        "measured_steps": steps,
        "num_train_samples": n_train,
    }


def test_profile_from_probes_takes_a_measured_resize():
    probes = [(_probe(1, 640.0, 0.1, 0.2), 0.0, 11.4), (_probe(2, 1152.0, 0.055, 0.1), 0.0, 12.76)]
    assert profiler.profile_from_probes("x", probes, "t").resize_s == pytest.approx(11.0)  # default: start-up
    p = profiler.profile_from_probes("x", probes, "t", resize_s=15.5)
    assert p.resize_s == 15.5 and p.startup_s == pytest.approx(11.0)
    with pytest.raises(ValueError, match="resize_s"):
        profiler.profile_from_probes("x", probes, "t", resize_s=-1.0)


def test_probe_configuration_takes_the_last_choice():
    exp = parse_experiment(
        {
            "search_space": {
                "lr": {"distribution": "loguniform", "low": 0.01, "high": 1.0},
                "width": {"choices": [16, 32, 64]},
                "dropout": 0.1,
            }
        }
    )
    conf = profiler.probe_configuration(exp)
    assert conf["width"] == 64 and conf["dropout"] == 0.1 and 0.01 <= conf["lr"] <= 1.0
    assert profiler.probe_configuration(exp) == conf  # deterministic (the experiment's seed)


def test_measure_relaunches_fresh_start_then_resize(tmp_path):
    backend = FakeBackend()
    d = tmp_path / "relaunch"
    d.mkdir()
    (d / "checkpoint.pt").write_text("stale")  # from an earlier run: removed first
    (d / "error.json").write_text("{}")
    billed = []
    launches = profiler.measure_relaunches(
        backend, backend.clock, d, CONFIG, [1, 4, 4], on_job_end=billed.append
    )
    assert [x["kind"] for x in launches] == ["fresh start", "resize 1->4", "relaunch 4->4"]
    assert [x["resized_from"] for x in launches] == [None, 1, 4]
    assert [x["epoch"] for x in launches] == [1, 2, 3]
    assert launches[0]["overhead_s"] == pytest.approx(STARTUP_S)
    assert launches[1]["overhead_s"] == pytest.approx(RESIZE_S)
    assert profiler.resize_s_from_launches(launches) == pytest.approx(RESIZE_S)
    assert [(s.world_size, s.until_epoch) for s in backend.launched] == [(1, 1), (4, 2), (4, 3)]
    assert len(billed) == 3
    written = json.loads((d / "config.json").read_text())
    assert written["tensorboard_dir"] is None and written["max_epochs"] == 3  # room for every launch
    assert not (d / "error.json").exists()


class KeepAliveBackend(FakeBackend):
    """A job that trains (not a probe) parks at its target, alive, until released: ``poll``
    says ``parked``, ``release`` ends it 0.5 s later and returns that wait as a result."""

    def __init__(self) -> None:
        super().__init__()
        self.released: list[JobSpec] = []

    def poll(self, handle: FakeHandle) -> JobResult | None:
        res = super().poll(handle)
        if res is not None and handle.spec.profile_steps is None:
            res = dataclasses.replace(res, parked=True)
        return res

    def release(self, handle: FakeHandle) -> JobResult:
        self.released.append(handle.spec)
        end = handle.result.end_s
        self.clock.t = end + 0.5
        launch_unix_s = handle.result.launch_unix_s
        return JobResult(handle.spec, 0, end, end + 0.5, launch_unix_s, stopped=True, parked=True)


def test_a_parked_relaunch_is_released_and_its_wait_billed(tmp_path):
    backend = KeepAliveBackend()
    billed = []
    launches = profiler.measure_relaunches(backend, backend.clock, tmp_path / "r", CONFIG, [1, 2],
                                           on_job_end=billed.append)
    assert [(s.world_size, s.until_epoch) for s in backend.released] == [(1, 1), (2, 2)]
    assert [round(r.duration_s, 3) for r in billed] == [STARTUP_S + EPOCH_S, 0.5, RESIZE_S + EPOCH_S, 0.5]
    assert [x["overhead_s"] for x in launches] == pytest.approx([STARTUP_S, RESIZE_S])  # up to the park


def test_measure_relaunches_failures_name_the_launch_and_the_worker_error(tmp_path):
    backend = FakeBackend(fail_at=2)
    with pytest.raises(WorkerError, match=r"resize 1->2 at W=2 \(epoch 2\) failed: RuntimeError: boom"):
        profiler.measure_relaunches(backend, backend.clock, tmp_path / "r", CONFIG, [1, 2])
    backend = FakeBackend(hang_at=1)
    with pytest.raises(WorkerError, match="still running after 5 s"):
        profiler.measure_relaunches(backend, backend.clock, tmp_path / "h", CONFIG, [1, 2], timeout_s=5.0)
    with pytest.raises(ValueError, match="sequence"):
        profiler.measure_relaunches(backend, backend.clock, tmp_path / "e", CONFIG, [])


def test_run_probes_keeps_its_messages(tmp_path):
    backend = FakeBackend(fail_at=2)
    with pytest.raises(WorkerError, match=r"^profile probe at W=2 failed: RuntimeError: boom$"):
        profiler.run_probes(backend, backend.clock, tmp_path, CONFIG, [1, 2], profile_steps=5)
    ok = profiler.run_probes(FakeBackend(), FakeClock(), tmp_path / "ok", CONFIG, [1, 2], profile_steps=5)
    assert [p["world_size"] for p, _, _ in ok] == [1, 2]


def test_run_profile_probes_measures_everything_in_one_job(tmp_path):
    exp = load_experiment(None)  # the default: widths 64 and 96, so the cheapest width is measured too
    conf = profiler.probe_configuration(exp)
    backend = FakeBackend(num_slots=2)
    billed = []
    got = profiler.run_profile_probes(
        backend,
        backend.clock,
        tmp_path,
        exp,
        conf,
        [1, 2],
        lambda trial_id, c: {**CONFIG, "trial_id": trial_id, "configuration": c},
        on_job_end=billed.append,
        profile_steps=5,
    )
    # One job, at W=2, whose probe plan lists the probe configuration and the cheapest one.
    assert [(s.trial_id, s.world_size) for s in backend.launched] == [("profile-w2", 2)] and len(billed) == 1
    plan = json.loads((tmp_path / "w2" / PROBE_PLAN_FILE).read_text())["w1_configurations"]
    assert [c["width"] for c in plan] == [96, 64] and plan[0] == conf
    assert got.cheapest is not None and got.cheapest["width"] == 64 and conf["width"] == 96
    # W=1 (from the plan's first measurement) and W=2, both carrying the one job's launch.
    assert [int(p["world_size"]) for p, _, _ in got.probes] == [1, 2]
    assert got.probes[0][0]["throughput_samples_per_s"] == pytest.approx(100.0)
    assert got.probes[1][0]["throughput_samples_per_s"] == pytest.approx(100.0 * 2**0.8)
    assert {(launch, d) for _, launch, d in got.probes} == {(billed[0].launch_unix_s, billed[0].duration_s)}
    assert len(got.cost_probes) == 1 and got.cost_probes[0][1] < got.probe_flops
    assert got.cost_probes[0][0]["throughput_samples_per_s"] == pytest.approx(150.0)
    written = json.loads((tmp_path / "probes.json").read_text())
    assert [(r["probe"], r["world_size"], r["job"]) for r in written] == [
        ("probe", 1, "w2"), ("probe", 2, "w2"), ("cheapest", 1, "w2")]
    # The job's start-up: its duration less the work its plan added (every timed step and pass).
    assert [r["startup_s"] for r in written] == pytest.approx([STARTUP_S] * 3)
    prof = profiler.profile_from_probes("x", got.probes, "t", probe_flops=got.probe_flops,
                                        cost_probes=got.cost_probes)
    assert prof.startup_s == pytest.approx(STARTUP_S)
    assert prof.speedup == pytest.approx((1.0, 2**0.8))
    assert prof.epoch_time_s == pytest.approx(1000 / 100 + 0.5)
    assert [t for _, t in prof.epoch_time_by_flops] == pytest.approx([1000 / 150 + 0.5, 1000 / 100 + 0.5])
    # One slot: one W=1 job times both configurations.
    one = FakeBackend(num_slots=1)
    got = profiler.run_profile_probes(
        one,
        one.clock,
        tmp_path / "one",
        exp,
        conf,
        [1],
        lambda trial_id, c: {**CONFIG, "trial_id": trial_id, "configuration": c},
        profile_steps=5,
    )
    assert [(s.trial_id, s.world_size) for s in one.launched] == [("profile-w1", 1)]
    assert [int(p["world_size"]) for p, _, _ in got.probes] == [1] and len(got.cost_probes) == 1
    assert profiler.probe_startup_s(got.probes[0][0], got.probes[0][2]) == pytest.approx(STARTUP_S)
    # More slots (`seer profile --slots 4`): a plain probe at each larger W, after the one job.
    four = FakeBackend(num_slots=4)
    got = profiler.run_profile_probes(
        four, four.clock, tmp_path / "four", exp, conf, [1, 2, 4],
        lambda trial_id, c: {**CONFIG, "trial_id": trial_id, "configuration": c}, profile_steps=5,
    )
    assert [(s.trial_id, s.world_size) for s in four.launched] == [("profile-w2", 2), ("profile-w4", 4)]
    assert not (tmp_path / "four" / "w4" / PROBE_PLAN_FILE).exists()
    assert [int(p["world_size"]) for p, _, _ in got.probes] == [1, 2, 4]


def test_probe_schedule_is_what_seer_plan_counts():
    assert profiler.probe_schedule([1, 2]) == [[2]]  # one job: W=1 is timed on its ranks
    assert profiler.probe_schedule([1]) == [[1]]
    assert profiler.probe_schedule([1, 2, 4]) == [[2], [4]]
    assert profiler.probe_jobs([4, 1, 2]) == [2, 4]


def test_a_probe_job_without_its_w1_measurements_is_a_worker_error(tmp_path):
    backend = FakeBackend(num_slots=2)
    real_launch = backend.launch

    def launch(spec):  # a worker that ignores the probe plan
        (spec.trial_dir / PROBE_PLAN_FILE).unlink()
        return real_launch(spec)

    backend.launch = launch
    exp = load_experiment(None)
    with pytest.raises(WorkerError, match=r"^profile probe at W=2 failed: it wrote no W=1 measurement "
                                          r"of each of the 2 configurations of its probe_plan.json"):
        profiler.run_profile_probes(
            backend, backend.clock, tmp_path, exp, profiler.probe_configuration(exp), [1, 2],
            lambda trial_id, c: {**CONFIG, "trial_id": trial_id, "configuration": c}, profile_steps=5,
        )


def test_seer_plan_leaves_out_the_profiling_seer_tune_does_first(capsys):
    from seer_torch.cli import PROFILE_EXTRA_S, shipped_profile_path

    assert main(["plan", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    startup_s = load_profile(shipped_profile_path(load_experiment(None))).startup_s
    # The default on 2 slots: one probe job at W=2 (W=1 and the cheapest width timed on its ranks).
    assert out["profiling_s"] == pytest.approx(startup_s + PROFILE_EXTRA_S)
    assert main(["plan", "--json", "--slots", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profiling_s"] == pytest.approx(startup_s + PROFILE_EXTRA_S)  # one job at W=1


# ------------------------------------------------------------------ seer profile, on the fake backend
@pytest.fixture
def fake_local(monkeypatch):
    made = []

    def factory(**kwargs):
        def make(num_slots, clock=None):
            made.append(FakeBackend(num_slots, **kwargs))
            return made[-1]

        monkeypatch.setattr("seer_torch.backends.local.LocalBackend", make)
        monkeypatch.setattr("seer_torch.clock.RealClock", lambda: made[-1].clock if made else FakeClock())
        return made

    return factory


def test_seer_profile_writes_a_profile_plan_accepts(tmp_path, fake_local, capsys):
    made = fake_local()
    out = tmp_path / "p.json"
    assert main(["profile", "--slots", "4", "--steps", "5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    for word in ("samples/s", "speedup", "efficiency", "resize"):
        assert word in text
    prof = load_profile(out)
    assert prof.world_sizes == (1, 2, 4)  # the default ladder up to the slots
    assert prof.speedup[1] == pytest.approx(2**0.8)
    assert prof.resize_s == pytest.approx(RESIZE_S)
    assert prof.startup_s >= STARTUP_S
    assert prof.name == "digits_cnn-digits-cpu" and "seer profile" in prof.source
    assert [(s.world_size, s.until_epoch) for s in made[0].launched if s.profile_steps is None] == [
        (1, 1),
        (4, 2),
    ]
    assert made[0].num_slots == 4
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary file left
    assert main(["plan", "--profile", str(out), "--json"]) == 0
    capsys.readouterr()
    assert main(["profile", "--slots", "2", "--steps", "3", "--out", str(out), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["profile"]["world_sizes"] == [1, 2] and len(shown["launches"]) == 2
    probes = [(r["probe"], r["world_size"]) for r in shown["probes"]]
    assert probes == [("probe", 1), ("probe", 2), ("cheapest", 1)]
    assert load_profile(out).world_sizes == (1, 2)


def test_seer_profile_failed_probe_exits_1_with_the_worker_error(tmp_path, fake_local, capsys):
    fake_local(fail_at=2)
    out = tmp_path / "p.json"
    assert main(["profile", "--slots", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "profile probe at W=2 failed: RuntimeError: boom" in err
    assert "kept in" in err
    assert not out.exists()
    import re
    import shutil

    kept = Path(re.search(r"kept in (\S+)", err).group(1))
    assert (kept / "probes").is_dir()  # the job folders, for the user to read
    shutil.rmtree(kept)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--slots", "0"], "num_slots"),
        (["--steps", "0"], "--steps"),
        (["--out", "/no/such/folder/p.json"], "does not exist"),
        (["--out", "."], "not a folder"),
    ],
)
def test_seer_profile_bad_input_exits_2(argv, words, fake_local, capsys):
    made = fake_local()
    assert main(["profile", *argv]) == 2
    assert words in capsys.readouterr().err
    assert not made  # nothing launched


def test_seer_profile_unknown_flag_value_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["profile", "--steps", "many"])
    assert info.value.code == 2


def test_probes_interrupted_while_they_run_are_stopped_and_billed(tmp_path):
    # Ctrl-C 7 s into two W=1 probes (5 s start-up + 10 s an epoch): both held their slot for
    # 7 s, and both are billed that (an interrupted profile used to cost 0 USD).
    from seer_torch.backends.base import JobSpec
    from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
    from seer_torch.scaling.profiler import run_side_by_side

    clock = SimulatedClock()
    backend = SimulatedBackend(2, clock, epoch_time_s=10.0, speedup=lambda w: float(w), startup_s=5.0,
                               curve=lambda config, epoch: 0.5)
    specs = []
    for name in ("p0", "p1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"trial_id": name, "configuration": {}}))
        specs.append((JobSpec(name, tmp_path / name, 1, 1), name))
    billed, interrupted_at = [], []

    def over_budget(held):
        if clock.now() >= 7.0:
            interrupted_at.append(clock.now())
            raise KeyboardInterrupt
        return None

    with pytest.raises(KeyboardInterrupt):
        run_side_by_side(backend, clock, specs, "profiling", billed.append, over_budget, timeout_s=300.0)
    assert sorted(r.spec.trial_id for r in billed) == ["p0", "p1"]
    assert 7.0 <= interrupted_at[0] < 7.2
    held_s = round(interrupted_at[0], 6)  # each from its launch at 0 s to the interrupt
    assert [(r.stopped, round(r.slot_seconds, 6)) for r in billed] == [(True, held_s)] * 2
    assert backend.stop_all() is None and all(j.result is not None for j in backend.jobs)
