"""Waking the tuner when a job parks, instead of leaving it to the next poll.

The executor looks at its running jobs every ``POLL_S`` seconds; a kept-alive job that parks
at its rung (docs/design.md, "Launch cost") would wait for that look, half a poll on average,
for its next order, holding its slots. A :class:`WakeUp` is a named pipe (FIFO) the tuner
reads: the local backend gives its path to every job (:data:`WAKE_FIFO_ENV`), a job's rank 0
writes one byte to it once it parked (:func:`notify`), and the executor's wait between polls
(:meth:`WakeUp.wait`) returns at once. A pipe cannot end a process that did not expect it (a
signal could) and costs no CPU while nothing happens; when the tuner is gone, or the pipe is
full, :func:`notify` does nothing and the poll still finds the job. POSIX only: elsewhere, or
on a file system where a job cannot reach the pipe, the executor polls as before.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import tempfile

__all__ = ["WAKE_FIFO_ENV", "WakeUp", "notify"]

#: The path of the tuner's wake-up pipe, set in every kept-alive job's environment.
WAKE_FIFO_ENV = "SEER_WAKE_FIFO"


class WakeUp:
    """The tuner's end of a wake-up pipe (a FIFO in a private temporary folder).

    The tuner holds the pipe open for reading and for writing (so that a reader never sees an
    end of file while no job has it open), both non-blocking. :meth:`close` removes it.

    Raises:
        OSError: the pipe cannot be made (no ``os.mkfifo`` on this platform, or the temporary
            folder refuses it); callers then poll without it.
    """

    def __init__(self) -> None:
        if not hasattr(os, "mkfifo"):
            raise OSError("named pipes are not available on this platform")
        self._dir = tempfile.mkdtemp(prefix="seer-wake-")
        self.path = os.path.join(self._dir, "wake")
        try:
            os.mkfifo(self.path, 0o600)
            self._read_fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            self._write_fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def wait(self, timeout_s: float) -> bool:
        """Sleep up to ``timeout_s`` seconds, less when a job writes to the pipe; returns
        whether one did (every byte waiting is read, so the next wait sleeps again)."""
        if self._read_fd < 0:
            return False
        ready, _, _ = select.select([self._read_fd], [], [], max(0.0, timeout_s))
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 4096):
                pass
        return True

    def close(self) -> None:
        """Close both ends and remove the pipe's folder. Idempotent."""
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read_fd = self._write_fd = -1
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> WakeUp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def notify(path: str | None = None) -> bool:
    """Write one byte to the tuner's wake-up pipe (``path``, default ``$SEER_WAKE_FIFO``);
    returns whether it was written. Never blocks and never raises: no pipe, no tuner reading
    it (``ENXIO``) or a full pipe leave the tuner to its next poll."""
    path = path if path is not None else os.environ.get(WAKE_FIFO_ENV)
    if not path:
        return False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        return os.write(fd, b"p") == 1
    except OSError:
        return False
    finally:
        os.close(fd)
