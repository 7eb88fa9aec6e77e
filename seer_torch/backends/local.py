"""The local backend: each job is a ``torchrun`` subprocess on this machine.

A job runs ``python -m torch.distributed.run --standalone --nproc-per-node W -m
seer_torch.worker --trial-dir DIR --until-epoch E``, or ``... SCRIPT ARGS...`` for a user's
script (``JobSpec.script``), in its own process group (so stopping it reaches torchrun's agent,
its workers and their children), with one thread per worker. Either way the environment
carries ``SEER_TRIAL_DIR=DIR`` and ``SEER_UNTIL_EPOCH=E`` (:data:`TRIAL_DIR_ENV`,
:data:`UNTIL_EPOCH_ENV`), which torchrun passes on to every worker: what
:mod:`seer_torch.trial` reads.
``--standalone`` gives each job its own c10d rendezvous on a free local port, so jobs on one
host never share a port. stdout and stderr are appended to ``DIR/stdout.log`` and
``DIR/stderr.log``, each launch after a :data:`~seer_torch.backends.joblog.LAUNCH_HEADER` line
(``job_log``, the base class's, reads the last launch's stderr back when a job failed);
torchrun copies the failing worker's error to ``DIR/error.json`` (``TORCHELASTIC_ERROR_FILE``),
which each launch removes first, so that it is always this launch's. Each job's environment
carries a token of its own (:data:`JOB_TOKEN_ENV`): when the job ends, by itself or stopped,
every process still carrying it (a descendant that started a session of its own) is ended too.
``read_metrics`` gives the lines of the epochs the trial's durable checkpoint holds
(``DIR/checkpoint.json``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from seer_torch.backends.base import Backend, JobResult, JobSpec, continue_order
from seer_torch.backends.joblog import LAUNCH_HEADER
from seer_torch.clock import Clock, RealClock
from seer_torch.runfiles import (
    CONTROL_FILE,
    GENERATION_ENV,
    KEEP_ALIVE_ENV,
    PARKED_FILE,
    TUNER_PID_ENV,
    atomic_write_json,
    read_durable_metrics,
    read_json_or_none,
)
from seer_torch.wakeup import WAKE_FIFO_ENV, WakeUp

STOP_GRACE_S = 5.0  # between TERM and KILL
RELEASE_GRACE_S = 3.0  # a released parked job ends by itself within this, else it is stopped
JOB_FILE = "job.json"  # TRIAL_DIR/job.json: the running job's torchrun pid, while it runs
#: Set in every job's environment to a token of its own: the job's processes and all their
#: descendants carry it, even those that left its process group and session (torchrun's
#: workers; a daemon a user's script started), so whatever outlives a job is found and ended.
JOB_TOKEN_ENV = "SEER_JOB_TOKEN"
#: The trial's folder (absolute) and the epoch to train through, in every job's environment.
TRIAL_DIR_ENV = "SEER_TRIAL_DIR"
UNTIL_EPOCH_ENV = "SEER_UNTIL_EPOCH"
#: A script's profile probe (``JobSpec.profile_steps`` with a script): optimizer steps per epoch
#: (:data:`seer_torch.trial.PROBE_STEPS_ENV`).
PROBE_STEPS_ENV = "SEER_PROBE_STEPS"


#: torchrun's log folder for a job, inside its trial folder (by default torchrun leaves one
#: ``/tmp/torchelastic_*`` folder per job behind); removed when the job has ended.
TORCHRUN_LOG_DIR = "torchrun_logs"


def _forget(job: LocalJob) -> None:
    _remove_job_files(job.spec.trial_dir)
    if job.origin_dir is not None and job.origin_dir != job.spec.trial_dir:  # a warm worker's first trial
        shutil.rmtree(Path(job.origin_dir) / TORCHRUN_LOG_DIR, ignore_errors=True)


def _remove_job_files(trial_dir: Path) -> None:
    """Remove what a job keeps in its trial folder only while it runs: ``job.json``, torchrun's
    log folder and the kept-alive job's ``parked.json`` and ``control.json`` (called once the
    job has ended, whoever saw it end)."""
    for name in (JOB_FILE, PARKED_FILE, CONTROL_FILE):
        try:
            os.unlink(Path(trial_dir) / name)
        except OSError:
            pass
    shutil.rmtree(Path(trial_dir) / TORCHRUN_LOG_DIR, ignore_errors=True)


def kill_leftover_job(trial_dir: Path) -> dict | None:
    """Stop a job a dead tuner left running in ``trial_dir`` (from its ``job.json``): the torchrun
    agent's process group, then every descendant (workers live in sessions of their own).

    Returns the ``job.json`` content (``pid``, ``launch_unix_s``, ``world_size``,
    ``until_epoch``) with ``"alive"`` (whether anything was still running) and ``"end_unix_s"``
    (now when it was stopped; else about when it ended by itself: its trial's last write),
    or ``None`` when the trial has no such file. A pid reused by an unrelated process (its
    command line is not torchrun's for this trial) is left alone. Either way the job has ended:
    its ``job.json`` and ``torchrun_logs/`` are removed.
    """
    path = Path(trial_dir) / JOB_FILE
    try:
        info = json.loads(path.read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    alive = False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmdline = ""
    # A warm worker handed this trial was started for another one: its command line names that.
    cmd_dir = str(info.get("cmd_dir") or trial_dir)
    if "torch.distributed.run" in cmdline and cmd_dir in cmdline:
        alive = True
        descendants = descendant_pids(pid)
        end_group(pid, STOP_GRACE_S, kill_wait_s=STOP_GRACE_S)
        _kill_survivors(descendants)
    if info.get("token"):  # what left the job's sessions, whether torchrun still ran or not
        _kill_survivors(token_pids(str(info["token"])))
    info["alive"] = alive
    if alive:
        info["end_unix_s"] = time.time()
    else:  # it ended by itself after the tuner died: about when it last wrote anything
        last = float(info.get("launch_unix_s", time.time()))
        for name in ("heartbeat", "metrics.jsonl", "stdout.log", "stderr.log", "checkpoint.pt"):
            try:
                last = max(last, os.stat(Path(trial_dir) / name).st_mtime)
            except OSError:
                pass
        info["end_unix_s"] = min(time.time(), last)
    _remove_job_files(trial_dir)
    shutil.rmtree(Path(cmd_dir) / TORCHRUN_LOG_DIR, ignore_errors=True)  # a warm worker's: where it began
    return info


@dataclass
class LocalJob:
    spec: JobSpec
    start_s: float
    launch_unix_s: float
    process: subprocess.Popen = field(repr=False)
    result: JobResult | None = None
    token: str | None = None  # its JOB_TOKEN_ENV value
    # Kept-alive jobs: the order count (the worker's parked.json/control.json generation), when
    # it parked (the clock's seconds), its trial's config.json when it began training the trial,
    # the trial folder its command line names (torchrun's logs are there), the wait it began with.
    generation: int = 0
    parked_s: float | None = None
    parked_unix_s: float | None = None
    config_bytes: bytes | None = field(default=None, repr=False)
    origin_dir: Path | None = None
    wait_s: float = 0.0
    rental_start_s: float | None = None  # when its processes started (a continuation's: the launch's)
    released: JobResult | None = None  # release()'s result (release is idempotent)


#: torchrun's rendezvous options of a job on one host: a c10d rendezvous of its own on a free port.
STANDALONE = ("--standalone", "--nnodes", "1")


def torchrun_argv(spec: JobSpec, python: str = sys.executable, *, rendezvous: Sequence[str] = STANDALONE,
                  nproc_per_node: int | None = None) -> list[str]:
    """The command line of one job, as an argv list (never a split string): torchrun running
    ``spec.script`` with ``spec.script_args`` when the job has a script (a script's profile
    probe is told by :func:`job_env`), else the built-in worker (with ``--profile-steps`` for a
    profile probe). ``rendezvous`` and ``nproc_per_node`` (default ``spec.world_size``): one
    node's part of a job over several hosts (the Ray backend's). Paths are absolute: another
    host's agent starts it from another folder."""
    trial_dir = Path(spec.trial_dir).resolve()
    launcher = [
        python,
        "-m",
        "torch.distributed.run",
        *rendezvous,
        "--nproc-per-node",
        str(spec.world_size if nproc_per_node is None else nproc_per_node),
        "--max-restarts",
        "0",
        "--monitor-interval",
        "0.1",
        "--log-dir",
        str(trial_dir / TORCHRUN_LOG_DIR),
    ]
    if spec.script is not None:
        return [*launcher, str(spec.script), *spec.script_args]
    argv = [
        *launcher,
        "-m",
        "seer_torch.worker",
        "--trial-dir",
        str(trial_dir),
        "--until-epoch",
        str(spec.until_epoch),
    ]
    if spec.profile_steps is not None:
        argv += ["--profile-steps", str(spec.profile_steps)]
        if spec.profile_out is not None:
            argv += ["--profile-out", str(Path(spec.profile_out).resolve())]
    return argv


def job_env(spec: JobSpec) -> dict[str, str]:
    """What a job's environment tells its script (or the built-in worker): the trial's folder,
    absolute, and the epoch to train through; for a script's profile probe, also the optimizer
    steps per epoch (:data:`PROBE_STEPS_ENV`)."""
    env = {TRIAL_DIR_ENV: str(Path(spec.trial_dir).resolve()), UNTIL_EPOCH_ENV: str(spec.until_epoch)}
    if spec.script is not None and spec.profile_steps is not None:
        env[PROBE_STEPS_ENV] = str(spec.profile_steps)
    return env


def prepare_trial_dir(spec: JobSpec) -> None:
    """Make ``spec``'s trial folder ready for a launch: created, and without a previous launch's
    ``error.json`` (torchrun writes one only when a job fails with one: a hung job's
    ``SignalException`` must not be read as this launch's error) or a previous kept-alive job's
    ``parked.json``/``control.json`` (its orders are not this job's)."""
    spec.trial_dir.mkdir(parents=True, exist_ok=True)
    for name in ("error.json", PARKED_FILE, CONTROL_FILE):
        (spec.trial_dir / name).unlink(missing_ok=True)


def launch_env(spec: JobSpec, base: Mapping[str, str], *, python_path: Sequence[str] = (),
               tuner_pid: int | str | None = None) -> dict[str, str]:
    """The environment of a job's torchrun: ``base`` (this process's environment, or what a
    remote host's agent has) with one thread per worker, unbuffered output, torchrun's error
    file in the trial folder, :func:`job_env`, ``python_path`` first on ``PYTHONPATH``, a fresh
    :data:`JOB_TOKEN_ENV` token, and, for a kept-alive job (``tuner_pid`` given: the process
    whose end tells a parked job to end), the keep-alive protocol's variables."""
    env = dict(base)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        TORCHELASTIC_ERROR_FILE=str(Path(spec.trial_dir).resolve() / "error.json"),
    )
    env.update(job_env(spec))
    if tuner_pid is not None:
        env.update({KEEP_ALIVE_ENV: "1", GENERATION_ENV: "0", TUNER_PID_ENV: str(tuner_pid)})
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join([*python_path, *filter(None, [env.get("PYTHONPATH")])])
    env[JOB_TOKEN_ENV] = uuid.uuid4().hex
    return env


def launch_header(spec: JobSpec, note: str = "") -> str:
    """The line a launch (or a kept-alive job's next segment, ``note``) writes first to the
    trial's ``stdout.log`` and ``stderr.log`` (:data:`~seer_torch.backends.joblog.LAUNCH_HEADER`)."""
    return (f"\n{LAUNCH_HEADER}W={spec.world_size} until_epoch={spec.until_epoch} at {time.ctime()}"
            f"{' ' + note if note else ''} ===\n")


def progress_age_s(trial_dir: Path, since_unix_s: float) -> float:
    """Seconds since a job in ``trial_dir`` last showed progress: ``since_unix_s`` (its launch),
    or the last write to the trial's ``heartbeat`` (rank 0 rewrites it every few seconds while
    training), ``metrics.jsonl``, ``stdout.log`` or ``stderr.log`` (wall clock)."""
    last = since_unix_s
    for name in ("heartbeat", "metrics.jsonl", "stdout.log", "stderr.log"):
        try:
            last = max(last, os.stat(Path(trial_dir) / name).st_mtime)
        except OSError:
            pass
    return time.time() - last


class LocalBackend(Backend):
    """Runs jobs as torchrun subprocesses; ``num_slots`` CPU processes (one thread each) at most.

    Declared abilities (:class:`~seer_torch.backends.base.Backend`): ``max_stop_s`` (SIGTERM,
    the grace, SIGKILL, reaping), ``detects_hangs`` (the trial's files show progress),
    ``stop_many``/``stop_all``, ``kill_leftover`` (from the trial's ``job.json``)."""

    detects_hangs = True

    def __init__(self, num_slots: int, clock: Clock | None = None, python: str = sys.executable,
                 python_path: Sequence[str] = (), keep_alive: bool = True) -> None:
        if num_slots < 1:
            raise ValueError(f"num_slots: got {num_slots}; allowed: an integer >= 1")
        self.num_slots = num_slots
        self.clock = clock or RealClock()
        self.python = python
        # Folders put first on every job's PYTHONPATH (the experiment's python_path: where its
        # plug-in model or dataset module is, seer_torch.plugins).
        self.python_path = tuple(python_path)
        # The longest a stop can hold its slots: SIGTERM, then SIGKILL after the grace, plus
        # reaping (the executor's money check bills running jobs this far ahead).
        self.max_stop_s = STOP_GRACE_S + 1.0
        self._jobs: list[LocalJob] = []
        # Jobs park at their target and wait for continue_job or release (module docstring).
        self.keeps_jobs_alive = bool(keep_alive)
        self.hands_over_workers = self.keeps_jobs_alive  # a parked W = 1 worker takes up another trial
        self._wake: WakeUp | None = None  # the pipe a job that parks writes to (made at need)
        self._wake_failed = False

    def launch(self, spec: JobSpec) -> LocalJob:
        prepare_trial_dir(spec)
        keep_alive = self.keeps_jobs_alive and spec.profile_steps is None
        env = launch_env(spec, os.environ, python_path=self.python_path,
                         tuner_pid=os.getpid() if keep_alive else None)
        wake = self._wake_pipe() if keep_alive else None
        if wake is not None:
            env[WAKE_FIFO_ENV] = wake.path
        token = env[JOB_TOKEN_ENV]
        with (
            open(spec.trial_dir / "stdout.log", "ab") as out,
            open(spec.trial_dir / "stderr.log", "ab") as err,
        ):
            header = launch_header(spec)
            out.write(header.encode())
            err.write(header.encode())
            out.flush()
            err.flush()
            launch_unix_s = time.time()
            start_s = self.clock.now()
            proc = subprocess.Popen(
                torchrun_argv(spec, self.python),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        job = LocalJob(spec=spec, start_s=start_s, launch_unix_s=launch_unix_s, process=proc, token=token,
                       config_bytes=_read_bytes(spec.trial_dir / "config.json") if keep_alive else None,
                       origin_dir=Path(spec.trial_dir))
        self._jobs.append(job)
        # So that a tuner that died without stopping it (SIGKILL, a reboot of its host) can find
        # and stop it on resume (`kill_leftover_job`).
        atomic_write_json(
            spec.trial_dir / JOB_FILE,
            {
                "pid": proc.pid,
                "launch_unix_s": launch_unix_s,
                "world_size": spec.world_size,
                "until_epoch": spec.until_epoch,
                "token": token,
            },
        )
        return job

    def poll(self, handle: LocalJob) -> JobResult | None:
        if handle.result is not None:
            return handle.result
        rc = handle.process.poll()
        if rc is None:
            if handle.config_bytes is None:  # not kept alive
                return None
            parked = read_json_or_none(handle.spec.trial_dir / PARKED_FILE)
            if not isinstance(parked, dict) or parked.get("generation") != handle.generation:
                return None
            handle.parked_s, handle.parked_unix_s = self.clock.now(), time.time()
            # seer resume bills a job a dead tuner left from job.json's time: the park, from now on.
            info = read_json_or_none(handle.spec.trial_dir / JOB_FILE)
            if isinstance(info, dict):
                info["launch_unix_s"] = handle.parked_unix_s
                atomic_write_json(handle.spec.trial_dir / JOB_FILE, info)
            handle.result = JobResult(handle.spec, 0, handle.start_s, handle.parked_s, handle.launch_unix_s,
                                      parked=True, wait_s=handle.wait_s, rental_start_s=handle.rental_start_s)
            return handle.result
        self._reap_group(handle)
        # Descendants in sessions of their own left the group: the same sweep as a stop's.
        if handle.token:
            _kill_survivors(token_pids(handle.token))
        handle.result = JobResult(handle.spec, rc, handle.start_s, self.clock.now(), handle.launch_unix_s,
                                  wait_s=handle.wait_s, rental_start_s=handle.rental_start_s)
        _forget(handle)
        return handle.result

    def stop(self, handle: LocalJob) -> JobResult:
        return self.stop_many([handle])[0]

    def stop_many(self, handles: list[LocalJob]) -> list[JobResult]:
        """Stop several jobs at once: SIGTERM to every one first, then wait for each, SIGKILL
        after :data:`STOP_GRACE_S` (from the first signal), so that stopping ``n`` jobs holds
        their slots no longer than stopping one (``max_stop_s``)."""
        pending = [h for h in handles if h.result is None]
        # torchrun starts each worker in a session of its own, so the agent's process group
        # does not hold them: remember every descendant now, and make sure none survives.
        descendants = {id(h): descendant_pids(h.process.pid) for h in pending}
        for h in pending:
            self._signal_group(h, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for h in pending:
            try:
                h.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal_group(h, signal.SIGKILL)
                h.process.wait()
            self._reap_group(h)
            _kill_survivors(descendants[id(h)] + (token_pids(h.token) if h.token else []),
                            grace_s=max(0.0, deadline - time.monotonic()))
            h.result = JobResult(
                h.spec, h.process.returncode, h.start_s, self.clock.now(), h.launch_unix_s, stopped=True,
                wait_s=h.wait_s, rental_start_s=h.rental_start_s,
            )
            _forget(h)
        return [h.result for h in handles]

    def continue_job(self, parked: LocalJob, spec: JobSpec) -> LocalJob | None:
        """Hand a parked job its next target (:meth:`Backend.continue_job`): the same trial at
        the same ``W`` whose ``config.json`` is unchanged since the job began it (the schedule's
        horizon is in it), or, for the built-in worker at ``W = 1``, another trial (a warm
        worker: the order names the new folder, its environment and its logs). ``None``
        otherwise, or when the job ended while it waited."""
        if parked.result is None or not parked.result.parked or parked.process.poll() is not None:
            return None
        same = Path(spec.trial_dir) == Path(parked.spec.trial_dir)
        if (spec.world_size != parked.spec.world_size or spec.profile_steps is not None
                or spec.script != parked.spec.script
                or tuple(spec.script_args) != tuple(parked.spec.script_args)):
            return None
        config_bytes = _read_bytes(spec.trial_dir / "config.json")
        moved = continue_order(parked.config_bytes, config_bytes, spec.script) if same else {}
        if moved is None:
            return None
        if not same and (spec.script is not None or spec.world_size != 1):
            return None
        generation = parked.generation + 1
        header = f"\n{LAUNCH_HEADER}W={spec.world_size} until_epoch={spec.until_epoch} at {time.ctime()} " + (
            "(kept alive) ===\n" if same else f"(warm worker of {parked.spec.trial_id}) ===\n")
        order: dict = {"generation": generation, "action": "continue", "until_epoch": spec.until_epoch,
                       **moved}
        if not same:
            spec.trial_dir.mkdir(parents=True, exist_ok=True)
            for name in ("error.json", PARKED_FILE, CONTROL_FILE):
                (spec.trial_dir / name).unlink(missing_ok=True)
            order.update(action="switch", trial_dir=str(Path(spec.trial_dir).resolve()),
                         stdout=str(spec.trial_dir / "stdout.log"), stderr=str(spec.trial_dir / "stderr.log"),
                         env={**job_env(spec), "TORCHELASTIC_ERROR_FILE": str(spec.trial_dir / "error.json")})
        for name in ("stdout.log", "stderr.log"):
            with open(spec.trial_dir / name, "ab") as f:
                f.write(header.encode())
        now_s, now_unix_s = self.clock.now(), time.time()
        job = LocalJob(spec=spec, start_s=parked.parked_s, launch_unix_s=now_unix_s, process=parked.process,
                       token=parked.token, generation=generation, config_bytes=config_bytes,
                       origin_dir=parked.origin_dir, wait_s=max(0.0, now_s - parked.parked_s),
                       rental_start_s=parked.rental_start_s if parked.rental_start_s is not None
                       else parked.start_s)
        # job.json follows the job (seer resume bills it from its last billed moment, the park).
        atomic_write_json(spec.trial_dir / JOB_FILE, {
            "pid": parked.process.pid, "launch_unix_s": parked.parked_unix_s, "world_size": spec.world_size,
            "until_epoch": spec.until_epoch, "token": parked.token, "cmd_dir": str(parked.origin_dir)})
        atomic_write_json(parked.spec.trial_dir / CONTROL_FILE, order)
        if not same:
            for name in (JOB_FILE, PARKED_FILE):
                (parked.spec.trial_dir / name).unlink(missing_ok=True)
        self._jobs.remove(parked)
        self._jobs.append(job)
        return job

    def release(self, parked: LocalJob) -> JobResult:
        """End a parked job (:meth:`release_many` of one)."""
        return self.release_many([parked])[0]

    def release_many(self, handles: list[LocalJob]) -> list[JobResult]:
        """End parked jobs at once: the order to stop to every one (each ends its launch as if
        it had not been kept alive), then wait for them together; once a job's workers have
        ended, its launcher (torchrun's agent, which has nothing left to do) is killed rather
        than waited for through its interpreter's teardown; whatever still runs after
        :data:`RELEASE_GRACE_S` is stopped (TERM, then KILL). Returns each job's wait, from
        when it parked, as a result of its own (``stopped=True``, ``parked=True``)."""
        handles_given = list(handles)
        handles = [h for h in handles_given if h.released is None]
        for h in handles:
            assert h.result is not None and h.result.parked, "release() takes a parked job"
            if h.process.poll() is None:
                order = {"generation": h.generation + 1, "action": "stop"}
                atomic_write_json(h.spec.trial_dir / CONTROL_FILE, order)
        pending = [h for h in handles if h.process.poll() is None]
        deadline = time.monotonic() + RELEASE_GRACE_S
        while pending and time.monotonic() < deadline:
            for h in list(pending):
                if h.process.poll() is not None:
                    pending.remove(h)
                elif not descendant_pids(h.process.pid):  # its workers are gone: end the launcher
                    self._signal_group(h, signal.SIGKILL)
                    h.process.wait()
                    pending.remove(h)
            if pending:
                time.sleep(0.02)
        if pending:
            for h in pending:
                h.result = None  # stop_many stops jobs without a result
            self.stop_many(pending)
        for h in handles:
            self._reap_group(h)
            if h.token:
                _kill_survivors(token_pids(h.token))
            _forget(h)
            if h in self._jobs:
                self._jobs.remove(h)
            h.released = JobResult(h.spec, 0, h.parked_s, self.clock.now(), h.launch_unix_s, stopped=True,
                                   parked=True, rental_start_s=h.start_s if h.rental_start_s is None
                                   else h.rental_start_s)
        return [h.released for h in handles_given]

    def seconds_since_progress(self, handle: LocalJob) -> float:
        """Seconds since the job last showed progress: its launch, or the last write to the
        trial's ``heartbeat`` (rank 0 rewrites it every few seconds while training),
        ``metrics.jsonl``, ``stdout.log`` or ``stderr.log`` (wall clock; :func:`progress_age_s`)."""
        return progress_age_s(handle.spec.trial_dir, handle.launch_unix_s)

    def kill_leftover(self, trial_dir: Path) -> dict | None:
        """:func:`kill_leftover_job` (for ``seer resume``)."""
        return kill_leftover_job(Path(trial_dir))

    def read_metrics(self, spec: JobSpec) -> list[dict]:
        """The trial's complete ``metrics.jsonl`` lines of the epochs its durable checkpoint
        holds (and a ``diverged`` line), oldest first: lines past the checkpoint are not
        progress (:func:`seer_torch.runfiles.read_durable_metrics`)."""
        return read_durable_metrics(spec.trial_dir)

    def stop_all(self) -> None:
        """Stop every job still running, parked ones too (on the way out, whatever happened),
        and close the wake-up pipe."""
        for job in self._jobs:
            if job.result is not None and job.result.parked and job.process.poll() is None:
                job.result = None
        self.stop_many([job for job in self._jobs if job.result is None])
        if self._wake is not None:
            self._wake.close()
            self._wake = None

    def wait_for_news(self, timeout_s: float) -> None:
        """Up to ``timeout_s`` seconds, less when a kept-alive job writes that it parked to the
        wake-up pipe (:mod:`seer_torch.wakeup`): its next order then waits for no poll. On a
        clock of its own (a test's), or without the pipe, the clock's sleep."""
        if self._wake is None or not isinstance(self.clock, RealClock):
            self.clock.sleep(timeout_s)
        else:
            self._wake.wait(timeout_s)

    def _wake_pipe(self) -> WakeUp | None:
        """The wake-up pipe, made at the first kept-alive launch (``None`` where it cannot be:
        jobs then wait for the executor's poll)."""
        if self._wake is None and not self._wake_failed:
            try:
                self._wake = WakeUp()
            except OSError:
                self._wake_failed = True
            else:  # removed at exit too when the tuner never reached stop_all
                weakref.finalize(self, self._wake.close)
        return self._wake

    @staticmethod
    def _signal_group(handle: LocalJob, sig: int) -> None:
        try:
            os.killpg(handle.process.pid, sig)
        except ProcessLookupError:
            pass

    def _reap_group(self, handle: LocalJob) -> None:
        # torchrun has exited; make sure nothing it started outlives it (TERM, then KILL).
        end_group(handle.process.pid, STOP_GRACE_S)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def _process_table() -> list[tuple[int, str, int, int]]:
    """``(pid, state, ppid, pgrp)`` of every process, read from /proc (Linux). ``comm`` may hold
    spaces, so the fields are split after the last ``)`` of ``/proc/PID/stat``."""
    rows = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3:
            rows.append((int(entry), fields[0], int(fields[1]), int(fields[2])))
    return rows


def descendant_pids(pid: int) -> list[int]:
    """Every live (non-zombie) descendant of ``pid``: children, grandchildren, ..."""
    children: dict[int, list[int]] = {}
    for child, state, ppid, _ in _process_table():
        if state != "Z":
            children.setdefault(ppid, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def token_pids(token: str, name: str = JOB_TOKEN_ENV) -> list[int]:
    """Live processes (of this user) whose environment holds ``name=token`` (by default
    ``JOB_TOKEN_ENV=token``): a job's processes and every descendant, whatever session they
    moved to."""
    needle = f"{name}={token}".encode()
    found = []
    for pid, state, _, _ in _process_table():
        if state == "Z" or pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(pid)
    return found


def pids_naming(text: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains ``text`` (a run or trial folder:
    its jobs, orphans included), this process excepted."""
    found = []
    for pid, state, _, _ in _process_table():
        if state == "Z" or pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(pid)
    return found


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    return [p for p, state, _, group in _process_table() if group == pgid and state != "Z"]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def _kill_survivors(pids: list[int], grace_s: float = STOP_GRACE_S) -> None:
    """TERM, then KILL after ``grace_s`` seconds, whichever of ``pids`` are still alive
    (processes that left the job's process group, such as torchrun's workers). A stop whose
    workers were told to stop already (torchrun forwards its SIGTERM) passes what is left of
    its own grace, so that it holds no longer than the backend's ``max_stop_s``."""
    alive = [p for p in pids if _alive(p)]
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 0.0)):
        if not alive:
            return
        for p in alive:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and any(_alive(p) for p in alive):
            time.sleep(0.05)
        alive = [p for p in alive if _alive(p)]


def end_group(pgid: int, grace_s: float, *, kill_wait_s: float = 0.0) -> None:
    """End process group ``pgid``: SIGTERM, then SIGKILL once ``grace_s`` seconds pass with a
    member still alive, then wait up to ``kill_wait_s`` for the killed to go. Returns at once
    when no member is (or is left) alive."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, kill_wait_s)):
        if not group_members(pgid):
            return
        try:
            os.killpg(pgid, sig)
        except OSError:
            pass
        deadline = time.monotonic() + wait_s
        while group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))
