"""One seer process at a time per run directory.

Every command that writes a run directory (``seer tune``, ``seer resume``, ``seer bench
record``) holds an exclusive lock on it for as long as it runs, taken before it reads or
writes the journal or stops leftover jobs. A second process is refused at once with
:class:`RunDirInUse`: two tuners on one journal would stop each other's jobs and both launch.
The checks a command makes before it locks (a new folder, a run to resume) ask
:func:`check_not_in_use` first, so a folder a live process holds is refused for that reason.

The lock is ``flock(2)`` on :data:`LOCK_FILE` inside the run directory (an empty file, kept;
it holds the pid of the process that last locked it, for the refusal's message). The kernel
releases it when the process ends, however it ends (SIGKILL, a crash, a reboot), so a dead
tuner never blocks ``seer resume``. The descriptor is close-on-exec: jobs the tuner starts
do not inherit it, so torchrun jobs left running by a killed tuner do not hold the run.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from seer_torch.errors import ConfigError

#: The lock file inside a run directory.
LOCK_FILE = "seer.lock"

# flock's errors that mean "another open file holds the lock".
_HELD = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


class RunDirInUse(ConfigError):
    """Another live process holds the run directory's lock (``seer`` exits with 2)."""


class RunDirLock:
    """An exclusive lock on a run directory, held until :meth:`release` or the process ends.

    Use :func:`lock_run_dir` to take one; it is also a context manager that releases on exit.
    """

    def __init__(self, run_dir: Path, fd: int) -> None:
        self.run_dir = run_dir
        self._fd: int | None = fd

    def release(self) -> None:
        """Release the lock (closing the descriptor); calling it again does nothing."""
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor of the open file releases the flock
            self._fd = None

    def __enter__(self) -> RunDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_run_dir(
    run_dir: str | os.PathLike[str], *, field: str = "--run-dir", create: bool = False
) -> RunDirLock:
    """Take the exclusive lock of ``run_dir`` without waiting.

    Args:
        run_dir: the run directory.
        field: how the user named it, for error messages (``--run-dir``, ``RUN_DIR``).
        create: make ``run_dir`` (and its parents) first if it does not exist.

    Returns:
        The held :class:`RunDirLock`.

    Raises:
        RunDirInUse: another live process holds the lock (the message gives its pid).
        ConfigError: ``run_dir`` cannot be made or written (under a regular file, on a
            read-only or special file system such as /proc, an immutable folder, no permission).
    """
    path = Path(run_dir)
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise ConfigError(
            field, str(path), f"a folder this user can create and write ({e.strerror})"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = _read_pid(fd)
        os.close(fd)
        if e.errno in _HELD:
            raise _in_use(path, field, holder) from None
        raise ConfigError(
            field, str(path), f"a folder on a file system that supports locks ({e.strerror})"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # the pid is only for messages
    return RunDirLock(path, fd)


def check_not_in_use(run_dir: str | os.PathLike[str], *, field: str = "--run-dir") -> None:
    """Refuse ``run_dir`` if another live process holds its lock; take nothing, make nothing.

    For the checks a command makes before it takes the lock (is the folder new, is it a run):
    when a live seer process holds the folder, that is what the user must hear, not what the
    folder holds. A folder without a lock file, or one whose lock cannot be opened, is not in
    use as far as this can tell (:func:`lock_run_dir` says the rest). ``flock(2)`` has no test
    that takes nothing, so the lock is taken and released at once: a :func:`lock_run_dir` of
    another process in that instant is refused as if this one held the folder. Never call it
    from the process that holds the lock (it would find itself).

    Raises:
        RunDirInUse: another live process holds the lock (the message gives its pid).
    """
    path = Path(run_dir)
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return  # no lock file (nobody ever locked it), or not a folder: nobody holds it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in _HELD:
            raise _in_use(path, field, _read_pid(fd)) from None
    finally:
        os.close(fd)  # releases the lock if it was taken


def _in_use(path: Path, field: str, holder: int | None) -> RunDirInUse:
    who = f"process {holder}" if holder else "another process"
    return RunDirInUse(
        field,
        str(path),
        f"a run directory no other seer process is using ({who} holds {path / LOCK_FILE}: "
        "wait for it to end, or stop it with Ctrl-C or SIGTERM and then `seer resume`)",
    )


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


__all__ = ["LOCK_FILE", "RunDirInUse", "RunDirLock", "check_not_in_use", "lock_run_dir"]
