"""Reading and writing the files a run leaves (docs/design.md, "Files a run leaves").

Writes that matter are atomic: a temporary file in the same folder, fsync, then
``os.replace``, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

#: The keys of a trial's ``metrics.jsonl`` line that are its bookkeeping, written by the trial API
#: (:meth:`seer_torch.trial.Trial.report`) beside the metrics a script reports; no metric may take
#: one of these names.
METRICS_LINE_KEYS = frozenset({
    "trial_id", "epoch", "step", "samples_seen", "world_size", "global_batch", "micro_batch",
    "accum_steps", "epoch_time_s", "throughput_samples_per_s", "train_start_unix_s", "time_unix_s",
    "diverged", "probe_steps_per_epoch", "probe_train_s",
})


#: The trial folder and the last epoch to train, set for every job the tuner starts (and by a
#: warm worker that takes up another trial): read by :func:`seer_torch.trial.init`.
TRIAL_DIR_ENV = "SEER_TRIAL_DIR"
UNTIL_EPOCH_ENV = "SEER_UNTIL_EPOCH"

#: Kept-alive jobs (docs/design.md, "Launch cost"): a job launched with ``SEER_KEEP_ALIVE=1``
#: parks at its target instead of exiting. Rank 0 writes :data:`PARKED_FILE` ``{"generation": g,
#: "epoch": e, "unix_s": t}`` in the trial folder once epoch ``e`` is saved; every rank then waits
#: for the backend's :data:`CONTROL_FILE` ``{"generation": g + 1, "action": ...}``: ``"continue"``
#: with ``"until_epoch"`` (train on, same process), ``"stop"`` (end the launch as if it had
#: reached its target), or ``"switch"`` (built-in worker at ``W = 1``: take up another trial,
#: ``"trial_dir"``, ``"until_epoch"``, with ``"env"`` to set and ``"stdout"``/``"stderr"`` to
#: append to). Both written atomically; the generation tells a fresh order from a stale one.
KEEP_ALIVE_ENV = "SEER_KEEP_ALIVE"
#: The job's generation at launch (0; a warm worker handed another trial carries its count on).
GENERATION_ENV = "SEER_JOB_GENERATION"
#: The tuner's process id: a parked job whose tuner is gone stops waiting and ends.
TUNER_PID_ENV = "SEER_TUNER_PID"
#: The longest a job waits parked for an order, seconds (``$SEER_PARK_TIMEOUT_S``); then it ends.
PARK_TIMEOUT_ENV = "SEER_PARK_TIMEOUT_S"
PARK_TIMEOUT_S = 1800.0
PARKED_FILE = "parked.json"
CONTROL_FILE = "control.json"


def read_json_or_none(path: str | os.PathLike[str]) -> Any:
    """``path``'s JSON, or ``None`` when it is missing or not (yet) whole JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def current_umask() -> int:
    """The process's umask, read without changing it where the system shows it (Linux's
    ``/proc/self/status``): setting it to read it, elsewhere, changes it for every thread for
    an instant (a file another thread creates then would get the wrong permissions)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[IO[Any]], None], binary: bool = False, *,
    temp_prefix: str | None = None,
) -> None:
    """Write a file atomically: ``write(f)`` fills a temporary file in the same folder, which is
    fsynced and then renamed over ``path`` with ``os.replace``. On any error the temporary file
    is removed and ``path`` is untouched. The file gets the ordinary permissions of the umask.
    The temporary file is ``.NAME.*.tmp``, or ``TEMP_PREFIX*.tmp`` with ``temp_prefix`` (for a
    folder whose readers would take ``.NAME.*`` for one of theirs, as TensorBoard takes any
    name holding ``tfevents``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}." if temp_prefix is None else temp_prefix
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(text))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, keep_previous: bool = False) -> None:
    """Write ``obj`` as indented JSON, atomically. NaN and infinities are written as null.

    ``keep_previous``: the file being replaced is kept as ``NAME.prev.EXT`` (``state.json`` ->
    ``state.prev.json``), so a reader that finds the new one damaged can fall back to it. The
    current file never goes missing: the previous one is linked, not moved.
    """
    path = Path(path)
    if keep_previous and path.exists():
        prev = path.with_name(f"{path.stem}.prev{path.suffix}")
        tmp = path.with_name(f".{path.name}.prevlink")
        try:
            tmp.unlink(missing_ok=True)
            os.link(path, tmp)
            os.replace(tmp, prev)
            # When prev already was a link to path's file, the rename did nothing: drop the link.
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False) + "\n")


#: The longest name :func:`tensorboard_run_name` gives, in characters (Ray Tune cuts its trial
#: names at 130): short enough for TensorBoard's run list and any file system.
TENSORBOARD_RUN_MAX_CHARS = 100
_UNSAFE_IN_RUN_NAME = re.compile(r"[^A-Za-z0-9._+=,-]+")


def tensorboard_run_name(trial_id: str, config: dict[str, Any], *, leave_out: Any = (),
                         max_chars: int = TENSORBOARD_RUN_MAX_CHARS) -> str:
    """The name of a trial's TensorBoard run (its folder under ``RUN_DIR/tensorboard``), which
    says which configuration it is, as Ray Tune's trial names do: the trial id, then each
    hyperparameter of ``config`` not in ``leave_out`` (the search space's fixed ones) as
    ``name=value`` in the configuration's order, floats to 4 significant digits:
    ``t003_lr=0.003162,width=64``. Characters other than letters, digits and ``._+=,-`` become
    ``_``; a name longer than ``max_chars`` is cut there (never into the trial id, which keeps
    names unique). The same arguments always give the same name; the executor journals it, so
    a resumed trial writes on in the same run."""
    def value(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, (bool, int, str)):
            return str(v)
        return json.dumps(v, separators=(",", ":"), sort_keys=True)

    parts = [f"{k}={value(v)}" for k, v in config.items() if k not in leave_out]
    name = _UNSAFE_IN_RUN_NAME.sub("_", f"{trial_id}_{','.join(parts)}" if parts else trial_id)
    if len(name) > max(max_chars, len(trial_id)):
        name = name[: max(max_chars, len(trial_id))].rstrip("_,=")
    return name


#: ``TRIAL_DIR/checkpoint.json``: ``{"epoch": E, "step": S}`` of the checkpoint a relaunch resumes
#: from, written atomically by the worker right after the checkpoint is moved into place (and
#: at the start of each launch, from the checkpoint it loaded). ``metrics.jsonl`` lines of
#: epochs after ``E`` are not durable: a killed or stopped job wrote them past its last
#: checkpoint, and the next launch trains those epochs again.
DURABLE_FILE = "checkpoint.json"

#: ``PROBE_DIR/probe_plan.json``: ``{"w1_configurations": [configuration, ...]}``, written by the
#: profiler beside a probe job's ``config.json``: the built-in worker's probe then also times each
#: configuration at W = 1 on every rank, in the same job (:mod:`seer_torch.training.probe`).
PROBE_PLAN_FILE = "probe_plan.json"

#: Temporary files of the worker's writes in a trial folder (:func:`atomic_write`'s
#: ``.NAME.*.tmp``, and ``checkpoint.prev.pt.<pid>.tmp`` of the checkpoint's rotation).
_WORKER_TEMPORARIES = (
    ".checkpoint.pt.*.tmp",
    "checkpoint.prev.pt.*.tmp",
    ".checkpoint.json.*.tmp",
    ".metrics.jsonl.*.tmp",
)


def write_durable_epoch(trial_dir: str | os.PathLike[str], epoch: int, step: int) -> None:
    """Write :data:`DURABLE_FILE` (atomically): the checkpoint in ``trial_dir`` holds ``epoch``
    epochs and ``step`` optimizer steps (0 and 0: no checkpoint)."""
    atomic_write_text(
        Path(trial_dir) / DURABLE_FILE, json.dumps({"epoch": int(epoch), "step": int(step)}) + "\n"
    )


def durable_epoch(trial_dir: str | os.PathLike[str]) -> int | None:
    """The epochs the trial's durable checkpoint holds: :data:`DURABLE_FILE`'s ``epoch``; 0 when
    the trial has no ``checkpoint.pt`` (nothing it trained is kept); ``None`` when it has a
    ``checkpoint.pt`` but no readable :data:`DURABLE_FILE` (a worker older than the file: its
    metrics lines are taken as they are)."""
    trial_dir = Path(trial_dir)
    try:
        return int(json.loads((trial_dir / DURABLE_FILE).read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None if (trial_dir / "checkpoint.pt").exists() else 0


def read_durable_metrics(trial_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The complete ``metrics.jsonl`` lines of the epochs the trial's durable checkpoint holds
    (:func:`durable_epoch`), oldest first, and a last ``diverged`` line if there is one (a
    diverged job saves no checkpoint; the trial ends there). Lines past the checkpoint are
    left out: they are not progress."""
    rows = read_metrics(Path(trial_dir) / "metrics.jsonl")
    epoch = durable_epoch(trial_dir)
    if epoch is None:
        return rows
    return [r for r in rows if int(r.get("epoch", 0)) <= epoch or r.get("diverged")]


def remove_worker_temporaries(trial_dir: str | os.PathLike[str]) -> list[str]:
    """Remove the temporary files a killed worker left in ``trial_dir`` (a half-written
    checkpoint, its rotation's link, a half-written ``checkpoint.json`` or ``metrics.jsonl``).
    Only while no job of the trial writes. Returns the names removed."""
    removed = []
    for pattern in _WORKER_TEMPORARIES:
        for f in Path(trial_dir).glob(pattern):
            try:
                f.unlink()
                removed.append(f.name)
            except FileNotFoundError:
                pass
    return sorted(removed)


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The complete JSON lines of a trial's ``metrics.jsonl`` (a torn last line is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
