"""Helpers of the fault tests with real `seer tune` / `seer resume` processes
(test_fault_injection.py, test_keep_alive_faults.py): the tiny digits experiment they share
(3 configurations, rungs 1 and 3, 2 slots, a given profile) and running the CLI, both from
:mod:`seer_torch.testing` (``scripts/fault_sweep.py`` uses them too), reading a run's
launches, comparing a run with an uninterrupted one (the session fixture ``clean`` of
tests/integration/conftest.py), and finding a trial's job processes (a warm worker's command
line names the trial it was started for, not the one it trains: its job.json names it)."""

from __future__ import annotations

import json
from pathlib import Path

from seer_torch.backends.local import (
    JOB_FILE,
    TORCHRUN_LOG_DIR,
    descendant_pids,
    token_pids,
)
from seer_torch.runfiles import CONTROL_FILE, PARKED_FILE, read_json_or_none
from seer_torch.testing import (
    FAULTS_PROFILE,
    faults_experiment,
    processes_of,
    write_faults_experiment,
)
from seer_torch.testing import run_seer as seer

__all__ = ["EXPERIMENT", "PROFILE", "check_against", "job_files_left", "job_pids", "launch_headers",
           "launches", "parked_now", "processes_of", "seer", "worker_pids", "write_experiment"]

#: The experiment (:func:`seer_torch.testing.faults_experiment`) and its given profile.
EXPERIMENT = faults_experiment()
PROFILE = FAULTS_PROFILE


def write_experiment(tmp: Path) -> Path:
    """:data:`EXPERIMENT` and its :data:`PROFILE` in ``tmp``; returns the experiment's path."""
    return write_faults_experiment(tmp)


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
