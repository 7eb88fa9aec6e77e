"""The local backend stops several jobs at once, within its declared ``max_stop_s``."""

from __future__ import annotations

import subprocess
import sys
import time

from seer_torch.backends.base import JobSpec
from seer_torch.backends.local import STOP_GRACE_S, LocalBackend, LocalJob

# A job that ignores SIGTERM: only the SIGKILL after the grace ends it.
STUBBORN = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\ntime.sleep(600)\n"
)


def _stubborn_job(backend: LocalBackend, tmp_path, name: str) -> LocalJob:
    d = tmp_path / name
    d.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout.readline().strip() == b"ready"  # the handler is installed
    job = LocalJob(JobSpec(name, d, 1, 1), backend.clock.now(), time.time(), proc)
    backend._jobs.append(job)
    return job


def test_stopping_three_stubborn_jobs_takes_one_grace_not_three(tmp_path):
    backend = LocalBackend(3)
    jobs = [_stubborn_job(backend, tmp_path, f"t{i}") for i in range(3)]
    t0 = time.monotonic()
    results = backend.stop_many(jobs)
    took = time.monotonic() - t0
    assert all(r.stopped for r in results) and all(j.process.poll() is not None for j in jobs)
    # Sequential stops would take 3 x 5 s; all at once, one grace (plus reaping).
    assert STOP_GRACE_S - 0.5 <= took <= backend.max_stop_s
    assert backend.max_stop_s == STOP_GRACE_S + 1.0
    # Stopping again returns the same results and waits for nothing.
    assert backend.stop_many(jobs) == results


def test_a_leftover_job_that_ended_by_itself_leaves_no_torchrun_logs(tmp_path):
    # A SIGKILLed tuner's job ended by itself before `seer resume`: the resume's clean-up of
    # the trial folder removes its job.json and torchrun's log folder, as a job's end does.
    import json

    from seer_torch.backends.local import JOB_FILE, TORCHRUN_LOG_DIR, kill_leftover_job

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial_dir = tmp_path / "t000"
    (trial_dir / TORCHRUN_LOG_DIR / "none" / "attempt_0").mkdir(parents=True)
    (trial_dir / TORCHRUN_LOG_DIR / "none" / "attempt_0" / "error.json").write_text("{}")
    (trial_dir / JOB_FILE).write_text(
        json.dumps({"pid": dead.pid, "launch_unix_s": time.time() - 5.0, "world_size": 1, "until_epoch": 2})
    )
    info = kill_leftover_job(trial_dir)
    assert info is not None and info["alive"] is False
    assert not (trial_dir / JOB_FILE).exists()
    assert not (trial_dir / TORCHRUN_LOG_DIR).exists(), sorted(p.name for p in trial_dir.iterdir())
