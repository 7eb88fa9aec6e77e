"""The run-directory lock (issue 13, fault 5): one seer process per run directory, released
by the kernel when its holder dies, never held by the jobs the holder started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seer_torch.errors import ConfigError
from seer_torch.run_lock import LOCK_FILE, RunDirInUse, lock_run_dir


def test_a_second_lock_is_refused_until_the_first_is_released(tmp_path):
    first = lock_run_dir(tmp_path / "run", create=True)
    with pytest.raises(RunDirInUse) as ei:
        lock_run_dir(tmp_path / "run", field="RUN_DIR")
    assert ei.value.field == "RUN_DIR" and f"process {os.getpid()}" in str(ei.value)
    first.release()
    with lock_run_dir(tmp_path / "run"):
        pass
    assert [p.name for p in (tmp_path / "run").iterdir()] == [LOCK_FILE]


def test_a_killed_holder_never_blocks_even_while_its_jobs_live(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys, time\n"
         "from seer_torch.run_lock import lock_run_dir\n"
         f"lock = lock_run_dir({str(run_dir)!r}, create=True)\n"
         "job = subprocess.Popen(['sleep', '60'], start_new_session=True)\n"  # as a torchrun job
         "print(job.pid, flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    job_pid = int(holder.stdout.readline())
    try:
        with pytest.raises(RunDirInUse):
            lock_run_dir(run_dir)
        holder.kill()  # SIGKILL: no cleanup runs
        holder.wait(timeout=10)
        os.kill(job_pid, 0)  # the job it started is still alive ...
        lock_run_dir(run_dir).release()  # ... and does not hold the lock
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        try:
            os.kill(job_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        time.sleep(0.1)


@pytest.mark.parametrize("where", ["proc", "below_a_file"])
def test_a_folder_that_cannot_be_made_is_bad_input(tmp_path, where):
    if where == "proc":
        path = Path("/proc") / f"seer-test-{os.getpid()}"
    else:
        (tmp_path / "f").write_text("x")
        path = tmp_path / "f" / "run"
    with pytest.raises(ConfigError) as ei:
        lock_run_dir(path, create=True)
    assert ei.value.field == "--run-dir" and ei.value.value == str(path)
