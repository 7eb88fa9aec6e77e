"""Fault injection on real runs (issue 5, must-show 1): `seer tune` is killed with SIGKILL at
several points of a real run (torchrun jobs on CPU) and continued with `seer resume`.

Asserted against an uninterrupted run with the same seed: the same answer (trial, epochs,
validation accuracy, to the bit: a killed job is replayed deterministically from its
checkpoint); no trial's epochs go backwards and no epoch appears twice in its metrics; no
eliminated trial runs again; spend is continuous (what was spent before the kill is kept);
no process of the killed run outlives the resume.

Kill points (``SEER_DEBUG_CRASH_AT``, the executor's fault-injection hook, SIGKILLs the tuner):
``launch:2`` (during round 1), ``decide:2`` (the rung decision is journaled, the relaunch not
yet made). The third kills the tuner *and every job* while a worker writes its checkpoint
(``SEER_DEBUG_SAVE_DELAY_S`` holds the write half-way), as a host crash would. A fourth test
SIGKILLs one worker mid-epoch (the finalist's kept-alive job, told at its rung to go on) and
checks the executor's retry recovers it from its checkpoint. The experiment, the uninterrupted
run (the session fixture ``clean``) and the checks are shared with test_keep_alive_faults.py
(faults_harness.py, conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from faults_harness import check_against, launch_headers, seer, worker_pids, write_experiment

from seer_torch.backends.local import descendant_pids

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("point", ["launch:2", "decide:2"])
def test_tuner_killed_then_resumed_gives_the_same_answer(tmp_path, clean, point):
    cfg = write_experiment(tmp_path)
    run_dir = tmp_path / "run"
    proc = seer(
        ["tune", str(cfg), "--run-dir", str(run_dir), "--quiet",
         "--no-report"],
        cwd=tmp_path,
        env={"SEER_DEBUG_CRASH_AT": point},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "running"
    time.sleep(1.0)  # down for a while; jobs it left keep running (and cost)
    proc = seer(["resume", str(run_dir), "--quiet", "--no-report"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    check_against(clean, run_dir, state["cost_usd"])
    res = json.loads((run_dir / "results.json").read_text())
    assert res["budget"]["time_used_s"] >= state["time_used_s"] + 1.0  # the downtime counts
    # The jobs the dead tuner left are billed to their rounds: the rounds and the profile's
    # probes add up to the run's cost, and every round has its end.
    profiling_usd = res["slot_seconds"]["profiling"] * res["budget"]["price_usd_per_slot_hour"] / 3600
    rounds_usd = sum(r["cost_usd"] for r in res["rounds"])
    assert rounds_usd + profiling_usd == pytest.approx(res["budget"]["cost_usd"], rel=1e-6), res["rounds"]
    assert all(r["end_s"] is not None for r in res["rounds"])


def test_host_crash_while_a_checkpoint_is_written(tmp_path, clean):
    cfg = write_experiment(tmp_path)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seer_torch.cli", "tune", str(cfg), "--run-dir", str(run_dir), "--quiet",
         "--no-report"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "SEER_DEBUG_SAVE_DELAY_S": "3"},
    )
    try:
        deadline = time.monotonic() + 300
        tmp_file = None
        while time.monotonic() < deadline and tmp_file is None:
            # The second save of a trial (epoch 2 of the final round) is half-written.
            for f in run_dir.glob("trials/*/.checkpoint.pt.*.tmp"):
                if (f.parent / "checkpoint.pt").exists():
                    tmp_file = f
            time.sleep(0.05)
        assert tmp_file is not None, "no checkpoint write was caught"
        victims = [proc.pid, *descendant_pids(proc.pid)]
        for pid in victims:  # everything dies at once, as in a host crash
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()
    state = json.loads((run_dir / "state.json").read_text())
    proc = seer(["resume", str(run_dir), "--quiet", "--no-report"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    check_against(clean, run_dir, state["cost_usd"])


def test_a_worker_killed_mid_epoch_is_retried_from_its_checkpoint(tmp_path, clean):
    cfg = write_experiment(tmp_path)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seer_torch.cli", "tune", str(cfg), "--run-dir", str(run_dir), "--quiet",
         "--no-report"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "SEER_DEBUG_STEP_DELAY_S": "0.05"},
    )
    try:
        final = clean["best"]["trial_id"]
        deadline = time.monotonic() + 300
        killed = False
        while time.monotonic() < deadline and not killed:
            rows = run_dir / "trials" / final / "metrics.jsonl"
            if rows.exists() and len(rows.read_text().splitlines()) >= 2:  # in the final round, mid-epoch 3
                # its job's worker (a warm worker's command line names the trial it started for)
                for pid in worker_pids(run_dir / "trials" / final)[:1]:
                    os.kill(pid, signal.SIGKILL)
                    killed = True
            time.sleep(0.1)
        assert killed, "no worker of the finalist was found to kill"
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    res = json.loads((run_dir / "results.json").read_text())
    t = {x["trial_id"]: x for x in res["trials"]}[final]
    assert t["failures"] == 1 and t["epochs"] == 3
    assert res["best"]["trial_id"] == final and res["best"]["val_accuracy"] == clean["best"]["val_accuracy"]
    rows = [json.loads(x) for x in (run_dir / "trials" / final / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    # The job killed was the finalist's kept-alive job, told at its rung to go on to epoch 3; the
    # retry is a fresh launch from the checkpoint (epoch 1).
    assert launch_headers(run_dir)[final][-2:] == [(3, "kept alive"), (3, "")]
