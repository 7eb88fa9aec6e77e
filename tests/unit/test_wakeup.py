"""The tuner's wake-up pipe: a job's notify ends the tuner's wait at once; without one it
sleeps its full timeout; a pipe nobody reads, or a full one, never blocks or raises."""

import os
import subprocess
import sys
import time

from seer_torch.wakeup import WAKE_FIFO_ENV, WakeUp, notify


def test_a_notify_from_another_process_ends_the_wait_at_once():
    with WakeUp() as wake:
        start = time.monotonic()
        assert wake.wait(0.05) is False  # nothing written: the whole timeout
        assert time.monotonic() - start >= 0.045
        code = "from seer_torch.wakeup import notify; raise SystemExit(0 if notify() else 1)"
        env = {**os.environ, WAKE_FIFO_ENV: wake.path}
        assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60).returncode == 0
        start = time.monotonic()
        assert wake.wait(5.0) is True
        assert time.monotonic() - start < 1.0
        assert wake.wait(0.01) is False  # the byte was read: the next wait sleeps again


def test_many_notifies_wake_once_and_a_full_pipe_does_not_block():
    with WakeUp() as wake:
        written = sum(notify(wake.path) for _ in range(70_000))  # more than a pipe holds
        assert 0 < written < 70_000
        assert wake.wait(1.0) is True and wake.wait(0.0) is False


def test_notify_without_a_tuner_does_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv(WAKE_FIFO_ENV, raising=False)
    assert notify() is False
    assert notify(str(tmp_path / "missing")) is False
    wake = WakeUp()
    path = wake.path
    wake.close()
    wake.close()  # idempotent
    assert not os.path.exists(path) and notify(path) is False
    assert wake.wait(0.0) is False
    os.mkfifo(tmp_path / "nobody")  # a pipe no process reads: ENXIO, not a hang
    assert notify(str(tmp_path / "nobody")) is False
