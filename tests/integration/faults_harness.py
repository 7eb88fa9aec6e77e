"""Helpers of the fault tests with real `seer tune` / `seer resume` processes
(test_fault_injection.py, test_keep_alive_faults.py): the tiny digits experiment they share
(3 configurations, rungs 1 and 3, 2 slots, a given profile), running the CLI, reading a run's
launches, comparing a run with an uninterrupted one (the session fixture ``clean`` of
tests/integration/conftest.py), and finding a trial's job processes (a warm worker's command
line names the trial it was started for, not the one it trains: its job.json names it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from seer_torch.backends.local import (
    JOB_FILE,
    TORCHRUN_LOG_DIR,
    descendant_pids,
    pids_naming,
    token_pids,
)
from seer_torch.runfiles import CONTROL_FILE, PARKED_FILE, read_json_or_none

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


def write_experiment(tmp: Path) -> Path:
    """:data:`EXPERIMENT` and its :data:`PROFILE` in ``tmp``; returns the experiment's path."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "profile.json").write_text(json.dumps(PROFILE))
    cfg = tmp / "exp.toml"
    cfg.write_text(EXPERIMENT)
    return cfg


def seer(args, cwd, env=None, timeout=400, launcher=None):
    """Run ``python -m seer_torch.cli ARGS`` (or ``launcher + ARGS``) to its end (output captured)."""
    return subprocess.run(
        [*(launcher or [sys.executable, "-m", "seer_torch.cli"]), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def processes_of(run_dir: Path) -> list[int]:
    """Live processes whose command line names the run directory (orphans included)."""
    return pids_naming(str(run_dir))


def launches(run_dir: Path) -> dict[str, list[int]]:
    """Per trial, the until_epoch of every launch, from the headers the backend writes."""
    return {name: [until for until, _ in heads] for name, heads in launch_headers(run_dir).items()}


def launch_headers(run_dir: Path) -> dict[str, list[tuple[int, str]]]:
    """Per trial, ``(until_epoch, how)`` of every job, from the headers the backend writes in
    its stdout.log: ``how`` is ``""`` for a cold launch, ``"kept alive"`` for a parked job told
    to go on, ``"warm worker of tNNN"`` for another trial's parked process."""
    out = {}
    for d in sorted((run_dir / "trials").iterdir()):
        text = (d / "stdout.log").read_text() if (d / "stdout.log").exists() else ""
        out[d.name] = [
            (int(line.split("until_epoch=")[1].split()[0]),
             line.rsplit("(", 1)[1].split(")")[0] if line.endswith(") ===") else "")
            for line in text.splitlines()
            if line.startswith("=== launch")
        ]
    return out


def check_against(clean: dict, run_dir: Path, spent_before: float) -> None:
    """``run_dir`` gave the uninterrupted run's answer (trial, epochs, validation accuracy to the
    bit), its trials ended as they did there, no trial's epochs went backwards or appear twice,
    no eliminated trial trained past its rung, what was spent before a kill is kept, and no
    process of the run, nor any file of a running job, is left."""
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
    for tid, untils in launches(run_dir).items():
        if statuses[tid] == "eliminated":
            assert max(untils) == rung1, (tid, untils)
    assert not processes_of(run_dir)
    assert job_files_left(run_dir) == []


def job_files_left(run_dir: Path) -> list[str]:
    """What a job keeps in a trial folder only while it runs (job.json, torchrun's logs, a
    kept-alive job's parked.json and control.json), still in the run's trial folders."""
    names = (JOB_FILE, PARKED_FILE, CONTROL_FILE, TORCHRUN_LOG_DIR)
    return sorted(str(p.relative_to(run_dir)) for name in names for p in run_dir.glob(f"trials/*/{name}"))


def job_pids(trial_dir: Path) -> list[int]:
    """The live processes of the job working on ``trial_dir`` now (its job.json's token: the
    torchrun agent, its workers and their descendants), or ``[]``."""
    info = read_json_or_none(Path(trial_dir) / JOB_FILE)
    return token_pids(info["token"]) if isinstance(info, dict) and info.get("token") else []


def worker_pids(trial_dir: Path) -> list[int]:
    """The training processes (torchrun's workers, not the agent) of the job working on ``trial_dir``."""
    info = read_json_or_none(Path(trial_dir) / JOB_FILE)
    if not isinstance(info, dict):
        return []
    found = []
    for pid in descendant_pids(int(info["pid"])):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "torch.distributed.run" not in cmd and ("seer_torch.worker" in cmd or ".py" in cmd):
            found.append(pid)
    return found


def parked_now(trial_dir: Path) -> dict | None:
    """``parked.json`` of a job of ``trial_dir`` that waits parked now, with no newer order, and
    whose park the tuner's backend has seen (it rewrites job.json's time when it does); else
    ``None``."""
    parked = read_json_or_none(Path(trial_dir) / PARKED_FILE)
    order = read_json_or_none(Path(trial_dir) / CONTROL_FILE)
    info = read_json_or_none(Path(trial_dir) / JOB_FILE)
    if not isinstance(parked, dict) or not isinstance(info, dict):
        return None
    if isinstance(order, dict) and order.get("generation", -1) > parked["generation"]:
        return None
    return parked if info.get("launch_unix_s", 0.0) >= parked["unix_s"] else None
