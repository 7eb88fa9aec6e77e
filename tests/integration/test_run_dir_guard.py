"""Real `seer tune` / `seer resume` processes: one tuner per run directory, and nohup is kept.

Issue 13, faults 5 and 6: a `seer resume RUN` or a second `seer tune --run-dir RUN` started while
`seer tune` of RUN is alive must be refused, naming the live tuner (before it touches the journal
or the live tuner's jobs), and the live tuner must end unharmed; a tuner started under `nohup`
must survive a SIGHUP (a closed terminal).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seer_torch.backends.local import descendant_pids

pytestmark = pytest.mark.integration

TINY = """
name = "tiny"
seed = 1
[data]
dataset = "digits"
[model]
name = "digits_mlp"
[training]
max_epochs = 4
min_epochs = 1
eta = 2
global_batch = 64
[budget]
time_budget_s = 120
money_budget_usd = 0.5
[resources]
num_slots = 2
world_size_ladder = [1, 2]
[search]
max_configurations = 4
[search_space]
lr = { distribution = "loguniform", low = 0.05, high = 0.3 }
width = { choices = [16] }
"""
PROFILE = {
    "world_sizes": [1, 2],
    "speedup": [1.0, 1.5],
    "epoch_time_s": 0.5,
    "startup_s": 3.0,
    "resize_s": 3.0,
}


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    cfg, prof = tmp_path / "tiny.toml", tmp_path / "profile.json"
    cfg.write_text(TINY)
    prof.write_text(json.dumps(PROFILE))
    return cfg, prof, tmp_path / "run"


def _wait_for_running_jobs(proc: subprocess.Popen, run_dir: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = run_dir / "state.json"
        try:
            if any(t["status"] == "running" for t in json.loads(state.read_text())["trials"]):
                return
        except (OSError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            pytest.fail(f"the tuner ended early: {proc.communicate()}")
        time.sleep(0.2)
    pytest.fail("round 1 never started")


def test_resume_while_the_tuner_runs_is_refused_and_the_tuner_finishes_unharmed(tmp_path: Path):
    cfg, prof, run_dir = _files(tmp_path)
    tuner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seer_torch.cli",
            "tune",
            str(cfg),
            "--run-dir",
            str(run_dir),
            "--profile",
            str(prof),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_running_jobs(tuner, run_dir)
        journal = (run_dir / "state.json").read_bytes(), (run_dir / "decisions.jsonl").read_bytes()
        second = subprocess.run(
            [sys.executable, "-m", "seer_torch.cli", "resume", str(run_dir)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=200,
        )
        second_tune = subprocess.run(
            [sys.executable, "-m", "seer_torch.cli", "tune", str(cfg), "--run-dir", str(run_dir),
             "--profile", str(prof)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=200,
        )
        alive_after_refusal = tuner.poll() is None
        out, err = tuner.communicate(timeout=240)
    finally:
        if tuner.poll() is None:
            tuner.kill()
    assert second.returncode == 2, second.stdout[-2000:] + second.stderr[-2000:]
    assert "seer.lock" in second.stderr and f"process {tuner.pid}" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    # A second `seer tune` on the folder names the live holder too, not `seer resume` (refused now).
    assert second_tune.returncode == 2, second_tune.stdout[-2000:] + second_tune.stderr[-2000:]
    assert f"process {tuner.pid} holds {run_dir / 'seer.lock'}" in second_tune.stderr, second_tune.stderr
    assert "continue it with" not in second_tune.stderr
    assert alive_after_refusal
    # The refused resume read and wrote nothing: the journal is as the tuner had it (or newer, by the tuner).
    assert journal[0] and journal[1]
    # The first tuner is unharmed: its answer, no failure counted, each trial launched once.
    assert tuner.returncode == 0, out[-3000:] + err[-3000:]
    res = json.loads((run_dir / "results.json").read_text())
    assert res["best"] is not None and res["stop_reason"] in (None, "")
    assert [t["failures"] for t in res["trials"]] == [0] * len(res["trials"])
    assert all(t["status"] != "failed" for t in res["trials"])
    # Every job the policy asked for started once (cold, kept alive or on a warm worker): none again.
    assert sum(len(t["world_sizes"]) for t in res["trials"]) == sum(res["slot_seconds"]["jobs"].values())
    time.sleep(0.5)
    assert not descendant_pids(os.getpid())


@pytest.mark.skipif(shutil.which("nohup") is None, reason="needs the nohup command")
def test_a_tuner_under_nohup_survives_sighup_and_says_interrupted_once(tmp_path: Path):
    cfg, prof, run_dir = _files(tmp_path)
    tuner = subprocess.Popen(
        [
            "nohup",
            sys.executable,
            "-m",
            "seer_torch.cli",
            "tune",
            str(cfg),
            "--run-dir",
            str(run_dir),
            "--profile",
            str(prof),
        ],
        cwd=tmp_path,
        # slow steps: the run must still be training when Ctrl-C comes, 3 s after SIGHUP
        env={**os.environ, "SEER_DEBUG_STEP_DELAY_S": "0.2"},
        # Ctrl-C must reach it even when the suite runs in a background job (`cmd &` in a
        # non-interactive shell starts it with SIGINT ignored, and exec keeps that)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_running_jobs(tuner, run_dir)
        tuner.send_signal(signal.SIGHUP)  # nohup execs the tuner: this is its pid
        time.sleep(3.0)
        alive_after_sighup = tuner.poll() is None
        state = json.loads((run_dir / "state.json").read_text())
        if alive_after_sighup:
            tuner.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = tuner.communicate(timeout=120)
    finally:
        if tuner.poll() is None:
            tuner.kill()
    assert alive_after_sighup, f"exit {tuner.returncode}: " + out[-2000:] + err[-2000:]
    assert state["status"] == "running"
    assert tuner.returncode == 130, out[-2000:] + err[-2000:]
    said = [line for line in (out + err).splitlines() if "interrupted" in line]
    assert said == [f"seer: interrupted; what was completed is in {run_dir / 'results.json'}; "
                    f"resume with `seer resume {run_dir}`"], said
    time.sleep(0.5)
    assert not descendant_pids(os.getpid())
