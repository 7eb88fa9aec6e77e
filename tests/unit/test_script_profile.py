"""The profile of a user's script (issue 15: the profiler measures the user's own script): the
arithmetic of a probe's metrics line (pure), the profile built from the probes, the trial API's
probe step limit (in-process at W = 1), the probe job's argv and environment, the probe
orchestration on a fake backend that writes what a script on the trial API writes, and the
commands' answers for a script without a profile. The real script under torchrun:
tests/integration/test_script_profile.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import seer_torch.trial as trial
from seer_torch import cli
from seer_torch.backends.base import JobResult, JobSpec
from seer_torch.backends.local import job_env, torchrun_argv
from seer_torch.commands.plan import SCRIPT_PLAN_NEEDS_PROFILE
from seer_torch.config import load_experiment
from seer_torch.errors import ConfigError, WorkerError
from seer_torch.executor import measure_profile
from seer_torch.scaling.profile import parse_profile
from seer_torch.scaling.script_profile import (
    profile_from_script_probes,
    run_script_probes,
    script_probe_record,
    script_probe_schedule,
)

# A probe line: 20 of the epoch's 50 steps trained, 200 samples/s steady at global batch 10
# (0.05 s a step: 1.0 s for 20), 1.3 s in train_batches (0.3 s of warm-up beyond the steady
# rate), 1.8 s for the epoch (0.5 s outside the steps), 1.9 s from the first step to the report.
LINE = {"trial_id": "profile", "epoch": 1, "step": 20, "world_size": 1, "global_batch": 10,
        "epoch_time_s": 1.8, "throughput_samples_per_s": 200.0, "probe_steps_per_epoch": 50,
        "probe_train_s": 1.3, "train_start_unix_s": 1000.0, "time_unix_s": 1001.9, "val_accuracy": 0.5}


def test_a_probe_line_predicts_the_whole_epoch_and_the_start_up():
    r = script_probe_record(LINE, job_s=7.9)
    # 0.5 s outside the steps + 50 steps x 10 samples / 200 samples/s
    assert r["epoch_s"] == pytest.approx(0.5 + 2.5)
    # the job's 7.9 s less its 1.9 s in the epoch, plus the 0.3 s of warm-up beyond the steady rate
    assert r["startup_s"] == pytest.approx(6.0 + 0.3)
    assert (r["world_size"], r["steps"], r["steps_per_epoch"], r["extrapolated"]) == (1, 20, 50, True)
    assert r["measured_epoch_s"] == 1.8 and r["train_samples_per_s"] == 200.0


def test_a_whole_epoch_probe_is_not_extrapolated():
    line = dict(LINE, step=50, probe_train_s=2.6, epoch_time_s=3.1, time_unix_s=1003.2)
    r = script_probe_record(line, job_s=9.2)
    assert r["epoch_s"] == pytest.approx(0.5 + 2.5) and not r["extrapolated"]
    assert r["startup_s"] == pytest.approx(6.0 + 0.1)  # 2.6 s for 50 steps of 0.05 s: 0.1 s of warm-up


def test_a_script_without_train_batches_counts_its_measured_epoch():
    """No throughput or probe fields (the script has its own loader): the epoch as measured."""
    line = {"epoch": 1, "world_size": 2, "epoch_time_s": 4.0, "train_start_unix_s": 10.0, "time_unix_s": 14.5}
    r = script_probe_record(line, job_s=12.0)
    assert (r["epoch_s"], r["startup_s"], r["steps"], r["extrapolated"]) == (4.0, 7.5, None, False)
    # without the unix times the epoch's own seconds stand for its share of the job
    r = script_probe_record({"world_size": 1, "epoch_time_s": 4.0}, job_s=10.0)
    assert r["startup_s"] == 6.0


@pytest.mark.parametrize("line", [{"world_size": 1}, {"world_size": 1, "epoch_time_s": 0.0},
                                  {"epoch_time_s": 1.0}])
def test_a_probe_line_without_an_epoch_time_is_refused(line):
    with pytest.raises(ValueError, match="epoch_time_s"):
        script_probe_record(line, job_s=5.0)


def _record(w: int, epoch_s: float, startup_s: float, steps_per_epoch: int | None = 50) -> dict:
    return {"world_size": w, "epoch_s": epoch_s, "startup_s": startup_s, "steps_per_epoch": steps_per_epoch,
            "global_batch": 10}


def test_the_profile_speedup_is_over_whole_epochs_and_w1_counts_at_its_mean():
    records = [_record(1, 3.0, 6.0), _record(2, 2.0, 8.0), _record(1, 3.4, 7.0)]
    prof = profile_from_script_probes("p", records, "src", resize_s=9.5)
    assert prof.world_sizes == (1, 2) and prof.epoch_time_s == pytest.approx(3.2)
    assert prof.speedup == pytest.approx((1.0, 1.6))
    assert prof.startup_s == 7.0 and prof.resize_s == 9.5  # the median start-up; the measured resize
    # 500 samples an epoch over each W's epoch seconds: their ratio is the speedup
    assert prof.throughput_samples_per_s == pytest.approx((500 / 3.2, 500 / 2.0))
    assert parse_profile(prof.to_dict()) == prof  # the format the planner reads


def test_a_profile_slower_at_w2_and_without_step_counts_is_still_a_profile():
    records = [_record(1, 1.0, 5.0, None), _record(2, 4.0, 5.0, None), _record(1, 1.0, 5.0, None)]
    prof = profile_from_script_probes("p", records, "src")
    assert prof.speedup == pytest.approx((1.0, 0.25)) and prof.throughput_samples_per_s == ()
    assert prof.resize_s == prof.startup_s == 5.0
    parse_profile(prof.to_dict())
    with pytest.raises(ValueError, match="W=1"):
        profile_from_script_probes("p", [_record(2, 1.0, 1.0)], "src")


def test_the_probe_schedule_runs_w1_twice_side_by_side_when_the_slots_allow():
    assert script_probe_schedule([1, 2, 4], 4) == [[1, 1], [2], [4]]
    assert script_probe_schedule([1, 2], 1) == [[1], [1], [2]]
    assert script_probe_schedule([1], 2) == [[1, 1]]


# -- the probe job: the script's own argv, the step limit in its environment ---------------------
def test_a_script_probe_runs_the_script_with_the_step_limit_in_its_environment(tmp_path):
    spec = JobSpec("profile-w2", tmp_path, 2, 1, profile_steps=60, script=tmp_path / "train.py",
                   script_args=("--x",))
    argv = torchrun_argv(spec, "py")
    assert argv[-2:] == [str(tmp_path / "train.py"), "--x"] and "--profile-steps" not in argv
    assert job_env(spec) == {"SEER_TRIAL_DIR": str(tmp_path.resolve()), "SEER_UNTIL_EPOCH": "1",
                             "SEER_PROBE_STEPS": "60"}
    # an ordinary job of the script, and the built-in worker's probe, carry no step limit
    assert "SEER_PROBE_STEPS" not in job_env(JobSpec("t", tmp_path, 1, 3, script=tmp_path / "train.py"))
    builtin = JobSpec("profile-w1", tmp_path, 1, 1, profile_steps=60, profile_out=tmp_path / "p.json")
    assert "SEER_PROBE_STEPS" not in job_env(builtin) and "--profile-steps" in torchrun_argv(builtin, "py")


# -- the trial API honours the step limit ---------------------------------------------------------
@pytest.fixture
def trial_dir(tmp_path, monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "SEER_TRIAL_DIR", "SEER_UNTIL_EPOCH",
                 "SEER_PROBE_STEPS"):
        monkeypatch.delenv(name, raising=False)
    d = tmp_path / "t"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"configuration": {}, "global_batch": 10, "micro_batch_max": 10,
                                               "max_epochs": 3, "seed": 0}))
    return d


def _train_one_epoch(trial_dir: Path) -> tuple[int, dict]:
    """Epoch 1 over 100 samples (10 steps of 10); returns the steps trained and the metrics line."""
    t = trial.init(trial_dir, 1, cpu_threads=None)
    t.load()
    steps = 0
    for epoch in t.epochs():
        steps = sum(1 for _ in t.train_batches(100, epoch))
        t.report(epoch, val_accuracy=0.5)
    t.finish()
    line = json.loads((trial_dir / "metrics.jsonl").read_text().splitlines()[-1])
    return steps, line


def test_the_trial_api_trains_only_the_probe_steps_and_says_how_many_the_epoch_has(trial_dir, monkeypatch):
    monkeypatch.setenv("SEER_PROBE_STEPS", "4")
    steps, line = _train_one_epoch(trial_dir)
    assert steps == 4 and line["step"] == 4 and line["probe_steps_per_epoch"] == 10
    assert 0 < line["probe_train_s"] <= line["epoch_time_s"]
    assert script_probe_record(line, job_s=line["epoch_time_s"] + 1.0)["extrapolated"]


def test_without_the_probe_variable_the_epoch_is_whole_and_the_line_unchanged(trial_dir):
    steps, line = _train_one_epoch(trial_dir)
    assert steps == 10 and "probe_steps_per_epoch" not in line and "probe_train_s" not in line


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_bad_probe_step_limit_is_refused(trial_dir, monkeypatch, value):
    monkeypatch.setenv("SEER_PROBE_STEPS", value)
    with pytest.raises(ConfigError) as e:
        trial.init(trial_dir, 1, cpu_threads=None)
    assert e.value.field == "SEER_PROBE_STEPS" and e.value.value == value
    assert not torch.distributed.is_initialized()  # refused before any set-up


# -- the orchestration, on a fake backend ---------------------------------------------------------
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


class ScriptLikeBackend:
    """Ends each job at once after writing the epoch-1 line a script on the trial API writes:
    ``probe_steps`` of 50 steps at ``200 * W**0.5`` samples/s (global batch 10), 0.5 s outside the
    steps, a 6 s job overhead. ``silent_at``: jobs at that W exit 0 without a line."""

    def __init__(self, silent_at: int | None = None) -> None:
        self.num_slots, self.clock, self.silent_at = 4, FakeClock(), silent_at
        self.launched: list[JobSpec] = []

    def launch(self, spec: JobSpec) -> FakeHandle:
        self.launched.append(spec)
        config = json.loads((spec.trial_dir / "config.json").read_text())
        assert config["tensorboard_dir"] is None
        assert spec.until_epoch > 1 or not (spec.trial_dir / "metrics.jsonl").exists()  # a fresh trial
        w, start = spec.world_size, self.clock.now()
        thr, steps = 200.0 * w**0.5, min(50, spec.profile_steps)
        train_s = steps * 10 / thr
        if w != self.silent_at:
            line = {"epoch": spec.until_epoch, "step": steps, "world_size": w, "global_batch": 10,
                    "epoch_time_s": train_s + 0.5, "throughput_samples_per_s": thr,
                    "probe_steps_per_epoch": 50, "probe_train_s": train_s, "train_start_unix_s": 100.0,
                    "time_unix_s": 100.0 + train_s + 0.5, "val_accuracy": 0.5}
            with open(spec.trial_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")
        end = start + 6.0 + train_s + 0.5
        return FakeHandle(spec, start, JobResult(spec, 0, start, end, 1000.0 + start))

    def poll(self, handle: FakeHandle) -> JobResult:
        self.clock.t = max(self.clock.t, handle.result.end_s)
        return handle.result

    def stop(self, handle: FakeHandle) -> JobResult:
        return handle.result

    def stop_all(self) -> None:
        pass


CONFIG = {"trial_id": "profile", "configuration": {"lr": 0.1}, "global_batch": 10, "micro_batch_max": 10,
          "max_epochs": 3, "seed": 0, "tensorboard_dir": "/nowhere"}


def test_run_script_probes_probes_w1_twice_side_by_side_then_each_w_in_fresh_folders(tmp_path):
    backend = ScriptLikeBackend()
    (tmp_path / "p" / "w1").mkdir(parents=True)
    (tmp_path / "p" / "w1" / "metrics.jsonl").write_text("left over\n")  # emptied before the probe
    billed = []
    records = run_script_probes(backend, backend.clock, tmp_path / "p", CONFIG, [1, 2],
                                on_job_end=billed.append, script=tmp_path / "s.py", script_args=("--a",),
                                probe_steps=20)
    assert [s.world_size for s in backend.launched] == [1, 1, 2]
    assert [s.trial_dir.name for s in backend.launched] == ["w1", "w1-2", "w2"]
    assert billed[0].start_s == billed[1].start_s < billed[2].start_s  # the two W=1 jobs together
    assert {(s.script, s.script_args, s.profile_steps, s.until_epoch) for s in backend.launched} == {
        (tmp_path / "s.py", ("--a",), 20, 1)}
    assert [r["epoch_s"] for r in records] == pytest.approx([0.5 + 2.5, 0.5 + 2.5, 0.5 + 2.5 / 2**0.5])
    assert all(r["startup_s"] == pytest.approx(6.0) for r in records)
    assert json.loads((tmp_path / "p" / "probes.json").read_text()) == records
    prof = profile_from_script_probes("p", records, "src")
    assert prof.speedup[1] == pytest.approx(3.0 / (0.5 + 2.5 / 2**0.5))


def test_a_probe_without_a_metrics_line_names_the_probe_and_the_log(tmp_path):
    backend = ScriptLikeBackend(silent_at=2)
    with pytest.raises(WorkerError, match=r"probe of the script at W=2 failed: it exited 0 without a metrics "
                                          r"line for epoch 1 \(see .*w2/stderr.log\)"):
        run_script_probes(backend, backend.clock, tmp_path, CONFIG, [1, 2], script=tmp_path / "s.py")


# -- the commands --------------------------------------------------------------------------------
def _script_experiment(folder: Path, profile: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text("# stands in for a script\n")
    planner = ""
    if profile:
        (folder / "profile.json").write_text(json.dumps(
            {"world_sizes": [1, 2], "speedup": [1.0, 1.8], "epoch_time_s": 2.0, "startup_s": 1.0}))
        planner = '[planner]\nprofile = "profile.json"\n'
    (folder / "experiment.toml").write_text(
        'name = "mine"\n[trial]\nscript = "train.py"\n[training]\nmax_epochs = 4\nglobal_batch = 32\n'
        '[budget]\ntime_budget_s = 100\nmoney_budget_usd = 1.0\n[resources]\nnum_slots = 2\n'
        'world_size_ladder = [1, 2]\n' + planner + '[search_space]\nlr = { distribution = "loguniform", '
        'low = 0.001, high = 0.1 }\n')
    return folder / "experiment.toml"


def test_seer_plan_asks_a_script_without_a_profile_for_one(tmp_path, capsys):
    cfg = _script_experiment(tmp_path / "x", profile=False)
    assert cli.main(["plan", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "planner.profile: got None" in err and SCRIPT_PLAN_NEEDS_PROFILE in err and "Traceback" not in err
    assert "seer profile" in SCRIPT_PLAN_NEEDS_PROFILE
    cli.check_before_launch(load_experiment(cfg))  # seer tune and seer profile go on without one


def test_a_script_profile_needs_a_run_folder(tmp_path):
    exp = load_experiment(_script_experiment(tmp_path / "x", profile=False))
    with pytest.raises(ConfigError) as e:
        measure_profile(exp, None, None, None, costs=None, on_job_end=print, over_budget=lambda h: None)
    assert e.value.field == "planner.profile"


def test_seer_profile_of_a_script_on_a_fake_backend_writes_a_profile(tmp_path, monkeypatch, capsys):
    """`seer profile` on a script: the probes at W = 1 twice and W = 2, then the relaunch 1 -> 2,
    every job the script's; the profile's epoch and speedup are the probes'."""
    backend = ScriptLikeBackend()
    monkeypatch.setattr("seer_torch.backends.local.LocalBackend", lambda num_slots, clock=None: backend)
    monkeypatch.setattr("seer_torch.clock.RealClock", lambda: backend.clock)
    cfg = _script_experiment(tmp_path / "x", profile=False)
    out = tmp_path / "p.json"
    assert cli.main(["profile", str(cfg), "--slots", "2", "--steps", "20", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [s.world_size for s in backend.launched] == [1, 1, 2, 1, 2]  # 3 probes, then the relaunch
    assert all(s.script == (tmp_path / "x" / "train.py").resolve() for s in backend.launched)
    prof = json.loads(out.read_text())
    assert prof["world_sizes"] == [1, 2] and prof["epoch_time_s"] == pytest.approx(3.0)
    assert prof["speedup"][1] == pytest.approx(3.0 / (0.5 + 2.5 / 2**0.5))
    assert [r["world_size"] for r in report["probes"]] == [1, 1, 2] and len(report["launches"]) == 2
    assert "short jobs of train.py" in prof["source"]
