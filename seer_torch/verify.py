"""``seer verify``: run a training script briefly at ``W = 1`` and at another ``W``, and judge
whether its learning curve ignores ``W`` (:mod:`seer_torch.verify_checks` judges; this module
runs the launches and reads what they leave).

Three launches of the script (or of the built-in worker), each through torchrun exactly as the
local backend starts a trial (:func:`seer_torch.backends.local.torchrun_argv`,
:func:`~seer_torch.backends.local.job_env`), one configuration, seed and global batch:

1. ``ref``: ``W = 1``, epochs ``1..E``, one launch (the reference curve), and, at the same time,
2. ``wide``: ``W = W2``, epochs ``1..K`` (``K = E // 2``), a fresh trial; then
3. ``resumed``: ``W = 1``, epochs ``K+1..E``, in a copy of ``wide``'s trial folder: it loads the
   checkpoint saved at ``W2``.

Each launch runs with ``SEER_RECORD_SAMPLES`` (each rank's sample indices per step, written by
:meth:`seer_torch.trial.Trial.train_batches`) and ``SEER_RECORD_STATES`` (the script's state, what
its checkpoint function returns, before its first epoch and after each one, written by
:meth:`seer_torch.trial.Trial.epochs`). Trial folders live in ``work_dir``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seer_torch.backends.base import JobSpec
from seer_torch.backends.joblog import read_job_log
from seer_torch.backends.local import JOB_TOKEN_ENV, descendant_pids, job_env, token_pids, torchrun_argv
from seer_torch.config import Experiment, ParamSpec
from seer_torch.errors import ConfigError, WorkerError
from seer_torch.executor.context import trial_config
from seer_torch.trial import RECORD_SAMPLES_ENV, RECORD_STATES_ENV, RESERVED_KEYS
from seer_torch.verify_checks import (
    Check,
    LaunchEvidence,
    Tolerances,
    causes_of,
    epoch_span,
    flatten_state,
    judge,
)

#: Environment variables of the tuner's own tools that must not leak into a verification.
_CLEARED_ENV = (RECORD_STATES_ENV, RECORD_SAMPLES_ENV, "SEER_DEBUG_STEP_DELAY_S",
                "SEER_DEBUG_SAMPLE_DELAY_S", "SEER_PROBE_STEPS")
DEFAULT_EPOCHS = 2
DEFAULT_TIMEOUT_S = 600.0
STOP_GRACE_S = 5.0
DEFAULT_TOLERANCES = Tolerances()


@dataclass(frozen=True)
class VerifySetup:
    """What to verify and how.

    Attributes:
        script: the training script (absolute), or ``None`` for the built-in worker.
        script_args: the script's own arguments.
        config: ``config.json`` of the trials (less ``trial_id``): the configuration, global
            batch, micro-batch bound, seed, metric; ``max_epochs`` is ``epochs``.
        world_size: ``W2``, the other world size (``>= 2``).
        epochs: ``E``, epochs of the reference run (``>= 2``).
        python_path: folders put first on the launches' ``PYTHONPATH``.
        timeout_s: the longest one launch may run, seconds.
    """

    script: Path | None
    script_args: tuple[str, ...]
    config: Mapping[str, Any]
    world_size: int = 2
    epochs: int = DEFAULT_EPOCHS
    python_path: tuple[str, ...] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S

    @property
    def split_epoch(self) -> int:
        """``K``: the epochs ``wide`` trains before ``resumed`` goes on from its checkpoint."""
        return self.epochs // 2

    @property
    def configuration(self) -> Mapping[str, Any]:
        return self.config["configuration"]

    @property
    def global_batch(self) -> int:
        return int(self.config["global_batch"])


@dataclass(frozen=True)
class LaunchRecord:
    """One launch: its name, ``W``, epochs ``(start, until]``, exit code and seconds."""

    name: str
    world_size: int
    start_epoch: int
    until_epoch: int
    returncode: int
    seconds: float


@dataclass(frozen=True)
class VerifyReport:
    """The verdict: ``checks`` in table order, the ``causes`` the failed ones name (keys of
    :data:`seer_torch.verify_checks.CAUSES`), the ``launches`` and the total ``seconds``."""

    setup: VerifySetup
    checks: tuple[Check, ...]
    launches: tuple[LaunchRecord, ...]
    seconds: float
    causes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        """Every check passed or was not judged (none failed)."""
        return all(c.status != "fail" for c in self.checks)


def representative_configuration(exp: Experiment) -> dict[str, Any]:
    """One small configuration of ``exp``'s search space: a fixed value as given, the first of
    the choices, the low end of an integer range, the middle of a uniform range and the
    geometric middle of a log-uniform one (a typical learning rate, not an extreme)."""
    return {p.name: _representative(p) for p in exp.search_space}


def _representative(p: ParamSpec) -> Any:
    if p.kind == "choice":
        return p.choices[0]
    if p.kind == "int_uniform":
        return int(p.low)  # type: ignore[arg-type]
    if p.kind == "uniform":
        return (p.low + p.high) / 2  # type: ignore[operator]
    if p.kind == "loguniform":
        return math.sqrt(p.low * p.high)  # type: ignore[operator]
    return p.value


def setup_from_experiment(exp: Experiment, *, overrides: Mapping[str, Any] | None = None,
                          epochs: int = DEFAULT_EPOCHS, world_size: int = 2,
                          timeout_s: float = DEFAULT_TIMEOUT_S, any_override: bool = False) -> VerifySetup:
    """The verification of ``exp``'s script (or built-in worker) with
    :func:`representative_configuration` updated by ``overrides``.

    Args:
        exp: the experiment: its ``[trial]``, global batch, micro-batch bound, seed and metric.
        overrides: hyperparameters that replace the representative ones.
        epochs: ``E``, at least 2.
        world_size: ``W2``, at least 2, and a ``W`` the global batch splits over
            (:func:`seer_torch.data.plan_batch`).
        any_override: accept override names outside the search space (a bare script).

    Raises:
        ConfigError: ``epochs``, ``world_size``, ``timeout_s`` out of range, or an override
            whose name or value is not in the search space (unless ``any_override``).
    """
    from seer_torch.data import plan_batch

    overrides = dict(overrides or {})
    names = [p.name for p in exp.search_space]
    unknown = sorted(set(overrides) - set(names))
    if unknown and not any_override:
        raise ConfigError("--config", unknown[0], f"a parameter of the search space: {', '.join(names)}")
    for p in exp.search_space:
        if p.name in overrides and not any_override and not p.contains(overrides[p.name]):
            raise ConfigError(f"--config {p.name}", overrides[p.name],
                              f"a value of the search space: {p.allowed()}")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 2:
        raise ConfigError("--epochs", epochs, "an integer >= 2 (the W=2 launch trains the first half)")
    if isinstance(world_size, bool) or not isinstance(world_size, int) or world_size < 2:
        raise ConfigError("--world-size", world_size, "an integer >= 2 (the world size compared with W=1)")
    if not timeout_s > 0:
        raise ConfigError("--timeout", timeout_s, "seconds > 0 (the longest one launch may run)")
    configuration = {**representative_configuration(exp), **overrides}
    config = trial_config(exp, "verify", configuration, None, epochs)
    global_batch = int(configuration.get("global_batch", exp.training.global_batch))
    plan_batch(global_batch, world_size, exp.training.micro_batch_max)  # ConfigError: W cannot split it
    # The same micro-batch at W=1 as at W: a larger one at W=1 only reorders float sums, which
    # Adam amplifies over an epoch past any tolerance (and BatchNorm sees other batches); verify
    # judges the script's logic, so both launches put the same samples through the model at once.
    config["micro_batch_max"] = min(int(config["micro_batch_max"]), global_batch // world_size)
    config.pop("trial_id")
    script = Path(exp.trial.script) if exp.trial.script is not None else None
    return VerifySetup(script, tuple(exp.trial.args), config, world_size, epochs,
                       tuple(exp.python_path), float(timeout_s))


def run_verify(setup: VerifySetup, work_dir: Path, *, tol: Tolerances = DEFAULT_TOLERANCES,
               on_launch: Callable[[str], None] | None = None) -> VerifyReport:
    """Run the three launches in ``work_dir`` (made if missing; its trial folders replaced) and
    judge them.

    Args:
        setup: what to verify.
        work_dir: where the trial folders and records go.
        tol: what counts as equal (:class:`~seer_torch.verify_checks.Tolerances`).
        on_launch: told a line as each launch starts (progress).

    Returns:
        The :class:`VerifyReport`.

    Raises:
        WorkerError: the script fails at ``W = 1`` (the message ends with its stderr's tail).
    """
    started_s = time.monotonic()
    work_dir = Path(work_dir).resolve()
    for name in ("ref", "wide", "resumed", "records", "states"):
        shutil.rmtree(work_dir / name, ignore_errors=True)
    (work_dir / "records").mkdir(parents=True)
    (work_dir / "states").mkdir()
    k, e, w = setup.split_epoch, setup.epochs, setup.world_size
    for name in ("ref", "wide"):
        (work_dir / name).mkdir()
        _write_config(work_dir / name, setup, name)
    say = on_launch or (lambda line: None)
    say(f"W=1 {epoch_span(1, e)} and W={w} {epoch_span(1, k)}")
    ref_job = _Job.start(setup, work_dir, "ref", 1, 0, e)
    wide_job = _Job.start(setup, work_dir, "wide", w, 0, k)
    ref_rec, wide_rec = _Job.wait_all([ref_job, wide_job], setup.timeout_s)
    if ref_rec.returncode != 0:
        raise WorkerError(f"the script fails at W=1 ({_failure(work_dir / 'ref', ref_rec)}); nothing to "
                          "compare. " + _tail_text(work_dir / "ref"))
    launches = [ref_rec, wide_rec]
    ref = _evidence(work_dir, "ref", 1, 0, e)
    wide = resumed = None
    wide_error = resumed_error = None
    if wide_rec.returncode != 0:
        wide_error = f"{_failure(work_dir / 'wide', wide_rec)}. {_tail_text(work_dir / 'wide')}"
    else:
        wide = _evidence(work_dir, "wide", w, 0, k)
        shutil.copytree(work_dir / "wide", work_dir / "resumed",
                        ignore=shutil.ignore_patterns("torchrun_logs", "*.log", "error.json", "heartbeat"))
        _write_config(work_dir / "resumed", setup, "resumed")
        say(f"W=1 {epoch_span(k + 1, e)} from the W={w} checkpoint")
        (resumed_rec,) = _Job.wait_all([_Job.start(setup, work_dir, "resumed", 1, k, e)], setup.timeout_s)
        launches.append(resumed_rec)
        if resumed_rec.returncode != 0:
            resumed_error = (f"{_failure(work_dir / 'resumed', resumed_rec)}. "
                             f"{_tail_text(work_dir / 'resumed')}")
        else:
            resumed = _evidence(work_dir, "resumed", 1, k, e)
    checks = judge(ref, wide, resumed, global_batch=setup.global_batch, wide_error=wide_error,
                   resumed_error=resumed_error, tol=tol)
    return VerifyReport(setup, tuple(checks), tuple(launches), time.monotonic() - started_s,
                        tuple(causes_of(checks)))


def _write_config(trial_dir: Path, setup: VerifySetup, trial_id: str) -> None:
    text = json.dumps({"trial_id": trial_id, **setup.config})
    (trial_dir / "config.json").write_text(text, encoding="utf-8")


def _failure(trial_dir: Path, rec: LaunchRecord) -> str:
    what = f"W={rec.world_size} {epoch_span(rec.start_epoch + 1, rec.until_epoch)}"
    if rec.returncode == _TIMED_OUT:
        return f"{what} ran past the timeout"
    log = read_job_log(trial_dir)
    return f"{what} exited with {rec.returncode}" + (f": {log.exception}" if log.exception else "")


def _tail_text(trial_dir: Path) -> str:
    tail = read_job_log(trial_dir).tail
    return ("The end of its stderr:\n  " + "\n  ".join(tail)) if tail else f"See {trial_dir / 'stderr.log'}."


_TIMED_OUT = -1000  # a LaunchRecord's returncode when the launch was stopped at its timeout


@dataclass
class _Job:
    """One torchrun launch in its own session, found again by its token when it ends."""

    name: str
    world_size: int
    start_epoch: int
    until_epoch: int
    process: subprocess.Popen
    token: str
    start_s: float

    @classmethod
    def start(cls, setup: VerifySetup, work_dir: Path, name: str, world_size: int, start_epoch: int,
              until_epoch: int) -> _Job:
        trial_dir = work_dir / name
        spec = JobSpec(name, trial_dir, world_size, until_epoch, script=setup.script,
                       script_args=setup.script_args)
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED_ENV}
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                   TORCHELASTIC_ERROR_FILE=str(trial_dir / "error.json"))
        env.update(job_env(spec))
        env[RECORD_SAMPLES_ENV] = str(work_dir / "records" / name)
        env[RECORD_STATES_ENV] = str(work_dir / "states" / name)
        if setup.python_path:
            env["PYTHONPATH"] = os.pathsep.join([*setup.python_path, *filter(None, [env.get("PYTHONPATH")])])
        token = env[JOB_TOKEN_ENV] = uuid.uuid4().hex
        with open(trial_dir / "stdout.log", "ab") as out, open(trial_dir / "stderr.log", "ab") as err:
            process = subprocess.Popen(torchrun_argv(spec, sys.executable), stdout=out, stderr=err,
                                       stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        return cls(name, world_size, start_epoch, until_epoch, process, token, time.monotonic())

    @staticmethod
    def wait_all(jobs: list[_Job], timeout_s: float) -> list[LaunchRecord]:
        """Wait for every job (each at most ``timeout_s`` from its start); end what remains of
        each (a timed-out one is killed); their records in order."""
        records = []
        try:
            for job in jobs:
                try:
                    code = job.process.wait(timeout=max(job.start_s + timeout_s - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    job.kill()
                    code = _TIMED_OUT
                records.append(LaunchRecord(job.name, job.world_size, job.start_epoch, job.until_epoch,
                                            code, time.monotonic() - job.start_s))
        finally:
            for job in jobs:
                job.kill()
        return records

    def kill(self) -> None:
        """End the launch's process group and whatever carries its token (workers in their own
        sessions); then reap it."""
        victims = descendant_pids(self.process.pid)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.process.poll() is not None:
                break
            try:
                os.killpg(self.process.pid, sig)
            except OSError:
                pass
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        for pid in {*victims, *token_pids(self.token)}:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        self.process.wait()


# --- reading what a launch left ---------------------------------------------------------------------


def _evidence(work_dir: Path, name: str, world_size: int, start_epoch: int,
              until_epoch: int) -> LaunchEvidence:
    steps, step_lr = _read_records(work_dir / "records" / name)
    return LaunchEvidence(
        name=name, world_size=world_size, start_epoch=start_epoch, until_epoch=until_epoch,
        metrics=_read_metrics(work_dir / name / "metrics.jsonl", start_epoch, until_epoch),
        states=_read_states(work_dir / "states" / name, work_dir / name, until_epoch),
        steps=steps, step_lr=step_lr, micro_batch=_read_micro_batch(work_dir / name / "metrics.jsonl"),
    )


def _read_metrics(path: Path, start_epoch: int, until_epoch: int) -> dict[int, dict[str, float]]:
    """Epoch -> the script's own numeric metrics for the epochs this launch trained (the
    trial's bookkeeping and anything timed, ``*_s`` and throughputs, left out)."""
    out: dict[int, dict[str, float]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        epoch = row.get("epoch")
        if not isinstance(epoch, int) or not start_epoch < epoch <= until_epoch:
            continue
        out[epoch] = {k: float(v) for k, v in row.items()
                      if k not in RESERVED_KEYS and not k.endswith("_s") and "throughput" not in k
                      and isinstance(v, (int, float)) and not isinstance(v, bool)}
    return out


def _read_micro_batch(path: Path) -> int | None:
    """The ``micro_batch`` of the launch's last metrics line (the trial writes it), or ``None``."""
    try:
        row = json.loads(path.read_text(encoding="utf-8").splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None
    value = row.get("micro_batch") if isinstance(row, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _read_states(prefix: Path, trial_dir: Path, until_epoch: int) -> dict[int, Any]:
    """Epoch -> the flattened state recorded then; the launch's checkpoint stands in for the
    last epoch when the script recorded nothing there (it saves with ``t.save`` itself)."""
    import torch

    states = {}
    for path in prefix.parent.glob(prefix.name + ".epoch*.pt"):
        try:
            epoch = int(path.name[len(prefix.name) + len(".epoch"):-len(".pt")])
        except ValueError:
            continue
        states[epoch] = flatten_state(torch.load(path, map_location="cpu", weights_only=True))
    checkpoint = trial_dir / "checkpoint.pt"
    if until_epoch not in states and checkpoint.is_file():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if isinstance(saved, dict) and saved.get("epoch") == until_epoch:
            states[until_epoch] = flatten_state(saved["state"] if "state" in saved else saved)
    return states


def _read_records(prefix: Path) -> tuple[dict[tuple[int, int], dict[int, tuple[int, ...]]] | None,
                                         dict[tuple[int, int], float] | None]:
    """Steps -> rank -> indices, and steps -> learning rate (when the lines carry ``lr``), from
    each rank's ``SEER_RECORD_SAMPLES`` lines; ``(None, None)`` when nothing was recorded."""
    steps: dict[tuple[int, int], dict[int, tuple[int, ...]]] = {}
    lrs: dict[tuple[int, int], float] = {}
    files = sorted(prefix.parent.glob(prefix.name + ".rank*"))
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            key = (int(row["epoch"]), int(row["step_in_epoch"]))
            steps.setdefault(key, {})[int(row["rank"])] = tuple(int(i) for i in row["indices"])
            if row.get("lr") is not None and int(row["rank"]) == 0:
                lrs[key] = float(row["lr"])
    if not files:
        return None, None
    return steps, (lrs if lrs and len(lrs) == len(steps) else None)
