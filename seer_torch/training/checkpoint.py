"""The trial's checkpoint: saved atomically with the previous one kept as a fallback
(:func:`save_checkpoint`), checked when loaded (:func:`checkpoint_problem`), chosen at a
relaunch (:func:`resume_checkpoint`), and ``metrics.jsonl`` cut back to it
(:func:`truncate_metrics`). The layout is in :mod:`seer_torch.worker`'s docstring.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from typing import Any

import torch

from seer_torch.errors import CheckpointError, ConfigError
from seer_torch.runfiles import (
    atomic_write,
    atomic_write_text,
    remove_worker_temporaries,
    write_durable_epoch,
)
from seer_torch.training.schedule import LrSchedule

CHECKPOINT_FILE = "checkpoint.pt"
#: The checkpoint before the current one, kept as a fallback for a corrupt or truncated one.
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.pt"
#: Version of the checkpoint layout.
CHECKPOINT_FORMAT = 1


def previous_checkpoint_path(path: str) -> str:
    """Where the checkpoint before the one at ``path`` is kept (``checkpoint.prev.pt``)."""
    return os.path.join(os.path.dirname(path), PREVIOUS_CHECKPOINT_FILE)


def save_checkpoint(path: str, state: dict[str, Any], *, rotate: bool = True) -> None:
    """``torch.save`` to a temporary file next to ``path``, fsync, then ``os.replace``.

    With ``rotate`` (the default) the checkpoint now at ``path`` first becomes the previous
    one, ``checkpoint.prev.pt`` (a hard link moved in with ``os.replace``, so ``path`` is never
    missing, not even for a moment); when there is none at ``path`` (a fresh trial) a stale
    previous one is removed, so the previous one is always the checkpoint the current one
    followed. ``rotate=False`` leaves the previous one alone: the launch resumed from it
    because the one at ``path`` was corrupt, which must not become the fallback.

    Temporary files a killed writer left next to ``path`` are removed first. Once the new
    checkpoint is in place, ``checkpoint.json`` (:data:`~seer_torch.runfiles.DURABLE_FILE`)
    says its epoch and step: what the executor counts as the trial's progress.
    """
    previous = previous_checkpoint_path(path)
    # Only one job of a trial runs at a time: temporary files here are a killed writer's.
    remove_worker_temporaries(os.path.dirname(path))
    if rotate:
        if os.path.exists(path):
            # Already the same file (a writer killed between this rotation and its move): a
            # rename between two links to one file does nothing, so there is nothing to rotate.
            if not (os.path.exists(previous) and os.path.samefile(path, previous)):
                tmp = f"{previous}.{os.getpid()}.tmp"
                try:
                    os.link(path, tmp)
                except OSError:  # a file system without hard links
                    import shutil

                    shutil.copyfile(path, tmp)
                os.replace(tmp, previous)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(previous)
    delay_s = float(os.environ.get("SEER_DEBUG_SAVE_DELAY_S") or 0.0)  # fault injection (tests)

    def write(f: Any) -> None:
        torch.save(state, f)
        if delay_s > 0:  # the checkpoint is half-way: written to its temporary file, not in place
            f.flush()
            time.sleep(delay_s)

    atomic_write(path, write, binary=True)
    # Now durable: the executor counts the trial's epochs up to this one (runfiles.DURABLE_FILE).
    write_durable_epoch(os.path.dirname(path), state["epoch"], state["step"])


_CHECKPOINT_KEYS = ("format", "model", "optimizer", "scheduler", "epoch", "step", "samples_seen", "rng",
                    "configuration", "trial_id", "global_batch")


def checkpoint_problem(state: Any) -> str:
    """What is wrong with a loaded checkpoint (missing keys, counters that do not agree), or
    ``""`` when it looks whole. The counters must satisfy ``step = epoch x steps_per_epoch``,
    ``samples_seen = step x global_batch`` and the scheduler's step equals ``step``."""
    if not isinstance(state, dict):
        return f"it holds a {type(state).__name__}, not a checkpoint dictionary"
    missing = [key for key in _CHECKPOINT_KEYS if key not in state]
    if missing:
        return "missing " + ", ".join(missing)
    if state["format"] != CHECKPOINT_FORMAT:
        return f"checkpoint format {state['format']!r}, this worker reads {CHECKPOINT_FORMAT}"
    counters = {key: state[key] for key in ("epoch", "step", "samples_seen", "global_batch")}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counters.values()):
        return f"counters that are not integers: {counters}"
    epoch, step = counters["epoch"], counters["step"]
    if epoch < 1 or counters["global_batch"] < 1 or step < epoch or step % epoch:
        return f"inconsistent counters: {counters}"
    if counters["samples_seen"] != step * counters["global_batch"]:
        return f"inconsistent counters: {counters} (samples_seen is not step x global_batch)"
    scheduler = state["scheduler"]
    if not isinstance(scheduler, dict) or scheduler.get("last_epoch") != step:
        last = scheduler.get("last_epoch") if isinstance(scheduler, dict) else scheduler
        return f"the scheduler is at step {last!r}, the checkpoint at step {step}"
    if "lr_schedule" in state:  # absent from checkpoints written before it was saved
        try:
            last_change = LrSchedule.from_list(state["lr_schedule"]).segments[-1][0]
        except ConfigError as error:
            return f"its lr_schedule is not {error.allowed}"
        if last_change > step:
            return f"its lr_schedule changes at step {last_change}, after the checkpoint's step {step}"
    model = state["model"]
    if (not isinstance(model, dict) or not model
            or not all(isinstance(v, torch.Tensor) for v in model.values())):
        return "the model state is not a dictionary of tensors"
    optimizer = state["optimizer"]
    if not isinstance(optimizer, dict) or "state" not in optimizer or "param_groups" not in optimizer:
        return "the optimizer state lacks state or param_groups"
    rng = state["rng"]
    if not isinstance(rng, dict) or not isinstance(rng.get("torch_cpu"), torch.Tensor) or "python" not in rng:
        return "the RNG state is incomplete"
    return ""


def _read_checkpoint(path: str, device: torch.device) -> tuple[dict[str, Any] | None, str]:
    """``(state, "")``, or ``(None, why)`` for a file that does not load or is not whole."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)  # never weights_only=False
    except Exception as error:  # a truncated zip, garbage bytes, a pickle weights_only refuses, ...
        first = (str(error).strip().splitlines() or [""])[0][:200]
        return None, f"it does not load: {type(error).__name__}: {first}"
    problem = checkpoint_problem(state)
    return (None, problem) if problem else (state, "")


def resume_checkpoint(path: str, device: torch.device, *,
                      log: bool = True) -> tuple[dict[str, Any] | None, str | None]:
    """The checkpoint to resume from and the file it came from, or ``(None, None)`` when there
    is no checkpoint at ``path`` (a fresh trial; a ``checkpoint.prev.pt`` without a current one
    is stale and ignored).

    A checkpoint at ``path`` that does not load (truncated, corrupt, ``weights_only=True``
    refuses it) or is not whole (:func:`checkpoint_problem`) is passed over for the previous
    one, ``checkpoint.prev.pt``, with one line on stderr when ``log``; the epochs after it are
    trained again.

    Raises:
        CheckpointError: neither file gives a usable checkpoint; the message names both files
            and what is wrong with each.
    """
    if not os.path.exists(path):
        return None, None
    state, why = _read_checkpoint(path, device)
    if state is not None:
        return state, path
    previous = previous_checkpoint_path(path)
    if not os.path.exists(previous):
        raise CheckpointError(
            f"no usable checkpoint: {path} is unusable ({why}) and there is no previous checkpoint "
            f"{previous}; "
            f"remove {path} to restart the trial from scratch"
        )
    state, previous_why = _read_checkpoint(previous, device)
    if state is None:
        raise CheckpointError(
            f"no usable checkpoint: {path} is unusable ({why}), and so is the previous checkpoint {previous} "
            f"({previous_why}); remove both to restart the trial from scratch"
        )
    if log:
        print(
            f"seer worker: checkpoint {path} is unusable ({why}); resuming from the previous checkpoint "
            f"{previous} at epoch {state['epoch']} (step {state['step']}); "
            "the epochs after it are trained again",
            file=sys.stderr, flush=True,
        )
    return state, previous


def load_checkpoint(path: str, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint to resume from (``weights_only=True``, tensors on ``device``), or ``None``;
    falls back to the previous one as :func:`resume_checkpoint` does."""
    return resume_checkpoint(path, device)[0]


def truncate_metrics(path: str, keep_through_epoch: int) -> None:
    """Rewrite ``metrics.jsonl`` atomically, keeping only complete lines with
    ``epoch <= keep_through_epoch`` (a crashed launch may have written lines past the checkpoint)."""
    if not os.path.exists(path):
        return
    kept = []
    with open(path, encoding="utf-8") as file:
        for line in file:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if (isinstance(entry, dict) and isinstance(entry.get("epoch"), int)
                    and entry["epoch"] <= keep_through_epoch):
                kept.append(json.dumps(entry, allow_nan=False) + "\n")
    atomic_write_text(path, "".join(kept))
