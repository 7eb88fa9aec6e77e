"""Faults with kept-alive jobs (issue 16, must-show 4) on real runs: `seer tune` of the tiny
digits experiment of faults_harness.py (torchrun jobs on CPU, 2 slots; uninterrupted, its
finalist trains its first rung in a warm worker, parks, and is told to go on to epoch 3 in the
same process), checked against the uninterrupted run with the same seed (the session fixture
``clean``, shared with test_fault_injection.py).

- A job SIGKILLed while it waits parked at its rung (killed from the executor's fault-injection
  hook, ``journal.debug_crash_point("job_end")``, right after the tuner read the park and
  before it decided: no race): the trial's next job is a fresh launch from its checkpoint, no
  failure is counted, and the answer is the uninterrupted run's.
- The tuner SIGKILLed right after a job parked (``SEER_DEBUG_CRASH_AT=job_end:1``): the parked
  jobs see their tuner gone and end by themselves within seconds, and `seer resume` gives the
  uninterrupted run's answer to the bit.

A kept-alive job killed mid-epoch is test_fault_injection.py's last test (the finalist's job
that went on from its rung in the same process is the one killed).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest
from faults_harness import check_against, launch_headers, processes_of, seer, write_experiment

from seer_torch.runfiles import PARKED_FILE

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent

#: `seer tune` with the executor's fault-injection hook replaced: at the first ``job_end`` where
#: trial ``argv[1]``'s job waits parked (and the tuner has read the park, no order yet), SIGKILL
#: every process of that job, wait until they are dead (or zombies of the tuner), and write what
#: was killed to ``argv[2]``. ``argv[3:]``: seer's arguments.
KILL_WHEN_PARKED = f"""
import json, os, signal, sys, time
from pathlib import Path
sys.path.insert(0, {str(HERE)!r})
from faults_harness import job_pids, parked_now
from seer_torch import cli
from seer_torch.executor import journal

trial_dir, marker = Path(sys.argv[1]), Path(sys.argv[2])


def kill_the_parked_job(point):
    if point != "job_end" or marker.exists():
        return
    parked = parked_now(trial_dir)
    if parked is None:
        return
    pids = job_pids(trial_dir)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    while any(alive(pid) for pid in pids):  # dead before the tuner goes on (SIGKILL takes a moment)
        time.sleep(0.01)
    marker.write_text(json.dumps({{"epoch": parked["epoch"], "pids": pids}}))


def alive(pid):
    try:
        return Path(f"/proc/{{pid}}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


journal.debug_crash_point = kill_the_parked_job
sys.exit(cli.main(sys.argv[3:]))
"""


def _trial(res: dict, trial_id: str) -> dict:
    return {t["trial_id"]: t for t in res["trials"]}[trial_id]


def test_a_job_killed_while_parked_at_its_rung_is_relaunched_from_its_checkpoint(tmp_path, clean):
    cfg = write_experiment(tmp_path)
    run_dir, marker = tmp_path / "run", tmp_path / "killed.json"
    final = clean["best"]["trial_id"]
    hooked = [sys.executable, "-c", KILL_WHEN_PARKED, str(run_dir / "trials" / final), str(marker)]
    proc = seer(["tune", str(cfg), "--run-dir", str(run_dir), "--quiet",
         "--no-report"], cwd=tmp_path, launcher=hooked)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    killed = json.loads(marker.read_text())
    assert killed["epoch"] == clean["rounds"][0]["rung_epoch"] == 1 and killed["pids"]
    check_against(clean, run_dir, 0.0)
    res = json.loads((run_dir / "results.json").read_text())
    # The parked job was gone when told to go on: the trial's next job to epoch 3 started from
    # the checkpoint (epoch 1) in another process (a fresh launch, or the warm worker of the
    # trial eliminated in the same decisions), and no failure is counted (the job had reached
    # its rung and saved it).
    heads = launch_headers(run_dir)[final]
    assert [until for until, _ in heads] == [1, 3] and heads[1][1] != "kept alive", heads
    assert _trial(res, final)["failures"] == 0 and _trial(res, final)["epochs"] == 3
    rows = [json.loads(x) for x in (run_dir / "trials" / final / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(t["failures"] == 0 for t in res["trials"])


def test_tuner_killed_while_jobs_are_parked_they_end_and_the_resume_gives_the_same_answer(tmp_path, clean):
    cfg = write_experiment(tmp_path)
    run_dir = tmp_path / "run"
    proc = seer(["tune", str(cfg), "--run-dir", str(run_dir), "--quiet",
         "--no-report"], cwd=tmp_path,
                env={"SEER_DEBUG_CRASH_AT": "job_end:1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    died_s = time.monotonic()
    # A job had parked: the tuner read it (the first job end) and died before deciding.
    parked = [p.parent.name for p in run_dir.glob(f"trials/*/{PARKED_FILE}")]
    assert parked and processes_of(run_dir), "no parked job was alive when the tuner died"
    # The parked jobs look for their tuner about every second: they end by themselves (a job
    # still in its epoch parks first, then ends the same way).
    while processes_of(run_dir) and time.monotonic() - died_s < 30:
        time.sleep(0.1)
    ended_s = time.monotonic() - died_s
    assert not processes_of(run_dir), f"jobs of the dead tuner still alive after {ended_s:.1f} s"
    assert ended_s < 15, ended_s
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "running"
    proc = seer(["resume", str(run_dir), "--quiet", "--no-report"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    check_against(clean, run_dir, state["cost_usd"])
    res = json.loads((run_dir / "results.json").read_text())
    assert res["best"]["epochs"] == 3 and all(t["failures"] == 0 for t in res["trials"])
    print(f"parked when the tuner died: {parked}; their jobs ended {ended_s:.1f} s after it")
