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
SIGKILLs one worker mid-epoch and checks the executor's retry recovers it from its checkpoint.
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

from seer_torch.backends.local import descendant_pids, pids_naming

pytestmark = pytest.mark.integration

EXPERIMENT = """
name = "faults"
seed = 2
[data]
dataset = "digits"
[model]
name = "digits_mlp"
[training]
max_epochs = 3
min_epochs = 1
eta = 3
global_batch = 64
micro_batch_max = 64
[budget]
time_budget_s = 900
money_budget_usd = 10.0
[resources]
num_slots = 2
world_size_ladder = [1, 2]
[search]
max_configurations = 3
[planner]
profile = "profile.json"
num_finalists = 1
[search_space]
lr = { distribution = "loguniform", low = 0.05, high = 0.3 }
weight_decay = 0.0005
width = { choices = [32] }
dropout = 0.0
"""
PROFILE = {
    "name": "fixed",
    "world_sizes": [1, 2],
    "speedup": [1.0, 1.6],
    "epoch_time_s": 1.5,
    "startup_s": 1.0,
    "resize_s": 1.0,
}


def _write(tmp: Path) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "profile.json").write_text(json.dumps(PROFILE))
    cfg = tmp / "exp.toml"
    cfg.write_text(EXPERIMENT)
    return cfg


def _seer(args, cwd, env=None, timeout=400):
    return subprocess.run(
        [sys.executable, "-m", "seer_torch.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _processes_of(run_dir: Path) -> list[int]:
    """Live processes whose command line names the run directory (orphans included)."""
    return pids_naming(str(run_dir))


def _launches(run_dir: Path) -> dict[str, list[int]]:
    """Per trial, the until_epoch of every launch, from the headers the backend writes."""
    out = {}
    for d in sorted((run_dir / "trials").iterdir()):
        text = (d / "stdout.log").read_text() if (d / "stdout.log").exists() else ""
        out[d.name] = [
            int(line.split("until_epoch=")[1].split()[0])
            for line in text.splitlines()
            if line.startswith("=== launch")
        ]
    return out


def _check_against(clean: dict, run_dir: Path, spent_before: float) -> None:
    res = json.loads((run_dir / "results.json").read_text())
    assert res["best"]["trial_id"] == clean["best"]["trial_id"]
    assert res["best"]["epochs"] == clean["best"]["epochs"]
    assert res["best"]["val_accuracy"] == clean["best"]["val_accuracy"]
    assert res["budget"]["cost_usd"] >= spent_before
    statuses = {t["trial_id"]: t["status"] for t in res["trials"]}
    assert statuses == {t["trial_id"]: t["status"] for t in clean["trials"]}
    for tid in statuses:
        rows = [json.loads(x) for x in (run_dir / "trials" / tid / "metrics.jsonl").read_text().splitlines()]
        # Never backwards, never twice.
        assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1)), tid
    # An eliminated trial never ran past the rung it was eliminated at.
    rung1 = clean["rounds"][0]["rung_epoch"]
    for tid, untils in _launches(run_dir).items():
        if statuses[tid] == "eliminated":
            assert max(untils) == rung1, (tid, untils)
    assert not _processes_of(run_dir)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    cfg = _write(tmp)
    proc = _seer(["tune", str(cfg), "--run-dir", str(tmp / "run"), "--quiet"], cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp / "run" / "results.json").read_text())
    assert [r["num_trials"] for r in res["rounds"]] == [3, 1]
    return res


@pytest.mark.parametrize("point", ["launch:2", "decide:2"])
def test_tuner_killed_then_resumed_gives_the_same_answer(tmp_path, clean, point):
    cfg = _write(tmp_path)
    run_dir = tmp_path / "run"
    proc = _seer(
        ["tune", str(cfg), "--run-dir", str(run_dir), "--quiet"],
        cwd=tmp_path,
        env={"SEER_DEBUG_CRASH_AT": point},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "running"
    time.sleep(1.0)  # down for a while; jobs it left keep running (and cost)
    proc = _seer(["resume", str(run_dir), "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    _check_against(clean, run_dir, state["cost_usd"])
    res = json.loads((run_dir / "results.json").read_text())
    assert res["budget"]["time_used_s"] >= state["time_used_s"] + 1.0  # the downtime counts


def test_host_crash_while_a_checkpoint_is_written(tmp_path, clean):
    cfg = _write(tmp_path)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seer_torch.cli", "tune", str(cfg), "--run-dir", str(run_dir), "--quiet"],
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
    proc = _seer(["resume", str(run_dir), "--quiet"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    _check_against(clean, run_dir, state["cost_usd"])


def test_a_worker_killed_mid_epoch_is_retried_from_its_checkpoint(tmp_path, clean):
    cfg = _write(tmp_path)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seer_torch.cli", "tune", str(cfg), "--run-dir", str(run_dir), "--quiet"],
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
                for pid in descendant_pids(proc.pid):
                    cmd = (
                        Path(f"/proc/{pid}/cmdline")
                        .read_bytes()
                        .replace(b"\0", b" ")
                        .decode(errors="replace")
                    )
                    if "seer_torch.worker" in cmd and "torch.distributed.run" not in cmd and final in cmd:
                        os.kill(pid, signal.SIGKILL)
                        killed = True
                        break
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
