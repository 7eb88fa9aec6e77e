"""Resume faults of issue 13 with real `seer tune` / `seer resume` processes (torchrun jobs on
CPU, the tiny digits_mlp experiment, a given profile unless said otherwise).

- Fault 3: `seer tune` stopped (SIGTERM) while a trial's first checkpoint is half-written
  (``SEER_DEBUG_SAVE_DELAY_S`` holds the write): its metrics lines are debris, the journal
  counts it at epoch 0, and the resume trains it from the start, leaving no temporary file.
- Fault 4: `seer tune` killed (SIGKILL) while a W=2 job runs, resumed with ``--slots 1``: the
  replay uses the slots the decisions were made with, the job is re-decided at W=1.
- Fault 10: `seer tune` killed (SIGKILL) while it measures its profile: `seer resume`
  profiles again and finishes the run, the time already spent counted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seer_torch.testing import FAULTS_PROFILE, run_seer, write_faults_experiment
from seer_torch.testing import processes_of as _processes_of

pytestmark = pytest.mark.integration


def _write(tmp: Path, *, epoch_time_s: float = 1.5, time_budget_s: float = 900, profile: bool = True) -> Path:
    """The fault tests' digits experiment (:func:`seer_torch.testing.faults_experiment`) with a
    W = 2 speedup of 1.9 and ``epoch_time_s`` in its given profile, or none (``profile=False``)."""
    given = {**FAULTS_PROFILE, "speedup": [1.0, 1.9], "epoch_time_s": epoch_time_s} if profile else None
    return write_faults_experiment(tmp, profile=given, name="resume-faults", time_budget_s=time_budget_s)


def _seer(args, cwd, env=None, timeout=300):
    return run_seer(args, cwd, env, timeout)


def _launches(trial_dir: Path) -> list[tuple[int, int]]:
    """(W, until_epoch) of every launch of a trial, from the headers the backend writes."""
    text = (trial_dir / "stdout.log").read_text() if (trial_dir / "stdout.log").exists() else ""
    return [
        (int(line.split("W=")[1].split()[0]), int(line.split("until_epoch=")[1].split()[0]))
        for line in text.splitlines()
        if line.startswith("=== launch")
    ]


def _check_tensorboard(run_dir: Path) -> None:
    """Every tag of every TensorBoard run (each trial's and experiment/) strictly increases."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "check_tensorboard.py"
    check = subprocess.run(
        [sys.executable, str(script), str(run_dir)], capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "experiment/time_used_s" in check.stdout and "train/loss" in check.stdout


def _temporaries(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*.tmp"))


def _tune_until(cfg: Path, run_dir: Path, cwd: Path, env: dict, caught, timeout_s: float = 240):
    """Start `seer tune` and poll ``caught()`` every 50 ms; returns (process, what it caught)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "seer_torch.cli", "tune", str(cfg), "--run-dir", str(run_dir), "--quiet",
         "--no-report"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    found = None
    deadline = time.monotonic() + timeout_s
    while found is None and time.monotonic() < deadline and proc.poll() is None:
        found = caught()
        time.sleep(0.05)
    return proc, found


def test_stopped_while_the_first_checkpoint_is_written_resumes_from_what_is_durable(tmp_path):
    cfg = _write(tmp_path)
    run_dir = tmp_path / "run"

    def half_written_first_checkpoint():
        for f in run_dir.glob("trials/*/.checkpoint.pt.*.tmp"):
            d = f.parent
            if (
                not (d / "checkpoint.pt").exists()
                and (d / "metrics.jsonl").exists()
                and (d / "metrics.jsonl").read_text().strip()
            ):
                return d.name
        return None

    # A write that takes longer than the backend's SIGTERM-to-SIGKILL grace (5 s): a job told to
    # stop finishes a save in progress when it can (STOP_SAVE_WINDOW_S), so this one is torn.
    proc, tid = _tune_until(
        cfg, run_dir, tmp_path, {"SEER_DEBUG_SAVE_DELAY_S": "8"}, half_written_first_checkpoint
    )
    try:
        assert tid is not None, "no half-written first checkpoint was caught"
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    trial_dir = run_dir / "trials" / tid
    assert not (trial_dir / "checkpoint.pt").exists()
    assert [json.loads(x)["epoch"] for x in (trial_dir / "metrics.jsonl").read_text().splitlines()] == [1]
    state = json.loads((run_dir / "state.json").read_text())
    t = {x["trial_id"]: x for x in state["trials"]}[tid]
    # Its epoch 1 was never saved: the journal counts it at epoch 0, with no accuracy.
    assert (t["epochs"], t["metric_by_epoch"]) == (0, {})

    proc = _seer(["resume", str(run_dir), "--quiet", "--no-report"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # It was trained again from the start to the rung it was launched to (epoch 1), once.
    assert _launches(trial_dir)[:2] == [(1, 1), (1, 1)], _launches(trial_dir)
    assert _temporaries(run_dir) == []
    res = json.loads((run_dir / "results.json").read_text())
    assert res["best"] is not None and res["best"]["epochs"] == 3
    for t in res["trials"]:
        d = run_dir / "trials" / t["trial_id"]
        durable = json.loads((d / "checkpoint.json").read_text())["epoch"]
        assert t["epochs"] == durable, t  # every trial counts what its checkpoint holds
        rows = [json.loads(x)["epoch"] for x in (d / "metrics.jsonl").read_text().splitlines()]
        assert rows == list(range(1, durable + 1)), (t["trial_id"], rows)
    _check_tensorboard(run_dir)
    assert not _processes_of(run_dir)


def test_killed_during_a_wide_job_resumes_on_fewer_slots(tmp_path):
    # A slow profile and a deadline that binds on it: the final round runs at W=2 on 2 slots.
    cfg = _write(tmp_path, epoch_time_s=25.0, time_budget_s=100)
    run_dir = tmp_path / "run"
    proc = _seer(
        ["tune", str(cfg), "--run-dir", str(run_dir), "--quiet",
         "--no-report"],
        cwd=tmp_path,
        env={"SEER_DEBUG_CRASH_AT": "launch:4"},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    state = json.loads((run_dir / "state.json").read_text())
    assert [(j["world_size"], j["until_epoch"]) for j in state["running"]] == [(2, 3)]
    finalist = state["running"][0]["trial_id"]

    proc = _seer(["resume", str(run_dir), "--slots", "1", "--quiet", "--no-report"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads((run_dir / "results.json").read_text())
    assert res["num_slots"] == 1
    assert res["best"]["trial_id"] == finalist and res["best"]["epochs"] == 3
    assert res["budget"]["time_used_s"] <= 100
    # The W=2 job the dead tuner left was stopped; the policy launched the finalist again at W=1.
    assert _launches(run_dir / "trials" / finalist)[-2:] == [(2, 3), (1, 3)]
    assert {t["trial_id"]: t for t in res["trials"]}[finalist]["world_sizes"] == [1, 2, 1]
    _check_tensorboard(run_dir)
    assert not _processes_of(run_dir)


def test_killed_while_profiling_resumes_by_profiling_again(tmp_path):
    cfg = _write(tmp_path, profile=False)
    run_dir = tmp_path / "run"

    def a_probe_runs():
        return next(iter(run_dir.glob("profile/**/job.json")), None)

    proc, probe = _tune_until(cfg, run_dir, tmp_path, {}, a_probe_runs)
    try:
        assert probe is not None, "no probe job was caught"
        proc.send_signal(signal.SIGKILL)  # the tuner dies; its probe job runs on
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert not (run_dir / "profile.json").exists()
    state_path = run_dir / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else None
    time.sleep(1.0)  # down for a while: the downtime counts

    proc = _seer(["resume", str(run_dir), "--quiet", "--no-report"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    # The journal said where it was: running, not yet planned.
    assert state is not None and state["status"] == "running" and state["setup_budgets"] is None
    res = json.loads((run_dir / "results.json").read_text())
    assert res["best"] is not None and res["best"]["epochs"] == 3
    assert (run_dir / "profile.json").exists() and res["profile"]["name"].endswith("-measured")
    assert res["budget"]["time_used_s"] >= state["time_used_s"] + 1.0
    assert not _processes_of(run_dir)
