"""Suite-wide checks.

After every test, no child process of the test is alive: whatever a test starts (torchrun
agents, workers, their DataLoader workers, a ``seer`` subprocess) must be gone once the test
and its fixtures are done. A killed process may take a moment to be reaped, so the check polls
for up to :data:`GRACE_S` seconds; what is still alive then fails the test (an error at
teardown naming each process's pid and command line) and is killed, so that one leak does
not fail every later test too.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from seer_torch.backends.local import descendant_pids

GRACE_S = 5.0

# Helpers of the Python interpreter itself, shared by every test of the session and ended with
# it: multiprocessing's resource tracker (started by the first semaphore, for example
# torch.multiprocessing.spawn's error queues) and its fork server. Not a test's children.
_INTERPRETER_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")
#: While a module's Ray cluster runs (:func:`ray_cluster`): its own processes (GCS, raylets,
#: their helpers and worker processes, titled ``ray::...``), matched by command line. What they
#: start (an agent's torchrun and its workers) is still a test's and still checked.
_RAY_SERVICES: list[str] = []


UNIT_PREFIX = "tests/unit/"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's scheduler (pyproject.toml's addopts run two workers): every test outside
    tests/unit starts processes (torchrun jobs, `seer` commands, a Ray cluster) and many time them
    against deadlines, so they are one scope that one worker runs one after another; each unit
    test (pure, one core) is a scope of its own, spread over both workers. (xdist's own
    ``--dist loadgroup`` marks groups by rewriting node ids, which pytest 9.2 no longer allows.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ProcessTestsInOneScope(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if nodeid.startswith(UNIT_PREFIX) else "processes"

    return ProcessTestsInOneScope(config, log)


def _cmdline(pid: int) -> str | None:
    """The command line of ``pid``, or ``None`` if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip() or "[no command line]"
    except OSError:
        return None


def leftover_processes() -> list[tuple[int, str]]:
    """Live descendants of this (pytest) process, interpreter helpers excepted: (pid, cmdline)."""
    found = []
    for pid in descendant_pids(os.getpid()):
        cmd = _cmdline(pid)
        exempt = (*_INTERPRETER_HELPERS, *_RAY_SERVICES)
        if cmd is not None and not any(helper in cmd for helper in exempt):
            found.append((pid, cmd))
    return found


def _kill(pids: list[int]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(p in descendant_pids(os.getpid()) for p in pids):
            time.sleep(0.05)


@pytest.fixture(autouse=True)
def no_child_process_left():
    """Fails the test if a process it started is still alive after it (and its fixtures) ended."""
    yield
    deadline = time.monotonic() + GRACE_S
    left = leftover_processes()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = leftover_processes()
    if left:
        _kill([pid for pid, _ in left])
        pytest.fail(
            f"{len(left)} child process(es) still alive {GRACE_S:g} s after the test: "
            + "; ".join(f"pid {pid}: {cmd[:300]}" for pid, cmd in left),
            pytrace=False,
        )


@pytest.fixture
def crash_tuner(monkeypatch):
    """``crash_tuner(point, run)``: call ``run()`` (something that runs a tuner) with the
    executor's emulated SIGKILL at the journal's crash point ``point`` (``SEER_DEBUG_CRASH_AT``,
    as ``"decide:4"``; raised as :class:`~seer_torch.executor.journal.Crash`, nothing more is
    written), assert that it crashed there, and turn the crash point off again so that the
    resume that follows runs to its end."""
    from seer_torch.executor import journal

    def crash(point: str, run) -> None:
        monkeypatch.setattr(journal, "_crash_counts", {})
        monkeypatch.setenv("SEER_DEBUG_CRASH_AT", point)
        monkeypatch.setenv("SEER_DEBUG_CRASH_MODE", "exception")
        with pytest.raises(journal.Crash):
            run()
        monkeypatch.delenv("SEER_DEBUG_CRASH_AT")

    return crash


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster for a test module's Ray tests (started on first use, about 12 s):
    a head and two nodes of one CPU each, so that a job of two or three workers spans nodes and
    meets on a c10d rendezvous. Yields the :class:`ray.cluster_utils.Cluster`, this process
    connected to it; shuts down only this cluster when the module's tests are done (never
    ``ray stop``: other Rays on the machine are not ours), so that no Ray process is a child of
    the tests that follow (several assert that the test process has none). Skips without Ray."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized(), "a test connected to another Ray before the module's cluster"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    _RAY_SERVICES.extend(["ray::", f"{os.sep}site-packages{os.sep}ray{os.sep}"])
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        patterns = tuple(_RAY_SERVICES)
        _RAY_SERVICES.clear()
        deadline = time.monotonic() + 4 * GRACE_S
        while (left := [(pid, cmd) for pid, cmd in leftover_processes() if any(p in cmd for p in patterns)]):
            if time.monotonic() > deadline:
                _kill([pid for pid, _ in left])
                pytest.fail("Ray processes left after the cluster's shutdown: "
                            + "; ".join(f"pid {pid}: {cmd[:200]}" for pid, cmd in left), pytrace=False)
            time.sleep(0.2)
