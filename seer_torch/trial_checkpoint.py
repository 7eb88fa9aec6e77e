"""The trial's checkpoint file, one format for every training script (the built-in worker and
a user's script on :mod:`seer_torch.trial`): written atomically with the previous one kept
(:func:`save_checkpoint`), checked when read (:func:`checkpoint_problem`), chosen at a
relaunch with a fallback to the previous one (:func:`resume_checkpoint`), and
``metrics.jsonl`` cut back to it (:func:`truncate_metrics`).

``checkpoint.pt`` holds one dictionary, loaded with ``torch.load(weights_only=True)``::

    {"format": "seer-trial-1",
     "epoch": 3,                    # epochs trained (>= 1)
     "step": 57,                    # optimizer steps trained (0 for a script that counts none)
     "samples_seen": 3648,          # step x global_batch
     "global_batch": 64,            # fixed for a trial: a relaunch with another one is refused
     "trial_id": "t0003",
     "configuration": {...},        # the trial's hyperparameters, as in config.json
     "rng": {"torch_cpu": ..., "python": ..., "torch_cuda": ...},   # taken at the save
     "state": {...}}                # what the script saved: the built-in worker's is
                                    # {"model", "optimizer", "scheduler", "lr_schedule"}

Nothing in it depends on the world size: state dicts are of the unwrapped model (no
``module.`` or ``_orig_mod.`` prefixes), and the RNG state is rank 0's.

``checkpoint.prev.pt``: the checkpoint before the current one (each save first moves the one
the launch resumed from there, by a hard link and ``os.replace``, so ``checkpoint.pt`` never
goes missing). ``checkpoint.json`` (:data:`~seer_torch.runfiles.DURABLE_FILE`): the epoch and
step of the checkpoint in place, what the executor counts as the trial's progress.

The worker layer: imports nothing from seer_torch but :mod:`seer_torch.errors` and
:mod:`seer_torch.runfiles`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from seer_torch.errors import CheckpointError
from seer_torch.runfiles import (
    atomic_write,
    atomic_write_text,
    remove_worker_temporaries,
    write_durable_epoch,
)

CHECKPOINT_FILE = "checkpoint.pt"
#: The checkpoint before the current one, kept as a fallback for a corrupt or truncated one.
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.pt"
#: The layout's version, the ``format`` key.
CHECKPOINT_FORMAT = "seer-trial-1"
#: ``SEER_DEBUG_SAVE_DELAY_S=SECONDS`` (tests): hold every checkpoint write that long once its
#: bytes are in the temporary file, before it is moved into place.
SAVE_DELAY_ENV = "SEER_DEBUG_SAVE_DELAY_S"

#: What a script's own check of a loaded checkpoint returns: ``""`` when it is whole, else why not.
CheckFn = Callable[[dict[str, Any]], str]


def previous_checkpoint_path(path: str | os.PathLike[str]) -> str:
    """Where the checkpoint before the one at ``path`` is kept (``checkpoint.prev.pt``)."""
    return os.path.join(os.path.dirname(os.fspath(path)), PREVIOUS_CHECKPOINT_FILE)


def rng_state(device: torch.device) -> dict[str, Any]:
    """The RNG states a checkpoint keeps: torch's CPU generator, Python's ``random``, and the
    CUDA generator of ``device`` when it is a GPU."""
    import random

    state: dict[str, Any] = {"torch_cpu": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore :func:`rng_state`'s states (the CUDA one only onto a GPU ``device``)."""
    import random

    torch.set_rng_state(state["torch_cpu"].cpu())
    if "torch_cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["torch_cuda"].cpu(), device)
    version, internal, gauss = state["python"]  # weights_only reads tuples back as tuples or lists
    random.setstate((int(version), tuple(int(v) for v in internal), gauss))


def save_checkpoint(path: str | os.PathLike[str], checkpoint: dict[str, Any], *, rotate: bool = True) -> None:
    """``torch.save`` to a temporary file next to ``path``, fsync, then ``os.replace``.

    With ``rotate`` (the default) the checkpoint now at ``path`` first becomes the previous
    one, ``checkpoint.prev.pt`` (a hard link moved in with ``os.replace``, so ``path`` is never
    missing, not even for a moment); when there is none at ``path`` (a fresh trial) a stale
    previous one is removed, so the previous one is always the checkpoint the current one
    followed. ``rotate=False`` leaves the previous one alone: the launch resumed from it
    because the one at ``path`` was damaged, which must not become the fallback.

    Temporary files a killed writer left next to ``path`` are removed first. Once the new
    checkpoint is in place, ``checkpoint.json`` says its ``epoch`` and ``step``.
    """
    path = os.fspath(path)
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
    delay_s = float(os.environ.get(SAVE_DELAY_ENV) or 0.0)

    def write(f: Any) -> None:
        torch.save(checkpoint, f)
        if delay_s > 0:  # the checkpoint is half-way: written to its temporary file, not in place
            f.flush()
            time.sleep(delay_s)

    atomic_write(path, write, binary=True)
    # Now durable: the executor counts the trial's epochs up to this one (runfiles.DURABLE_FILE).
    write_durable_epoch(os.path.dirname(path), checkpoint["epoch"], checkpoint["step"])


def checkpoint_problem(checkpoint: Any, check: CheckFn | None = None) -> str:
    """What is wrong with a loaded checkpoint, or ``""`` when it looks whole: the format, the
    counters (``epoch >= 1``, ``step >= 0``, ``samples_seen = step x global_batch``), the RNG
    state and ``state`` being a dictionary; then ``check(checkpoint)``, the script's own test."""
    if not isinstance(checkpoint, dict):
        return f"it holds a {type(checkpoint).__name__}, not a checkpoint dictionary"
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        return f"checkpoint format {checkpoint.get('format')!r}, this version reads {CHECKPOINT_FORMAT!r}"
    counters = {key: checkpoint.get(key) for key in ("epoch", "step", "samples_seen", "global_batch")}
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in counters.values()):
        return f"counters that are not integers: {counters}"
    if counters["epoch"] < 1 or counters["step"] < 0 or counters["global_batch"] < 1:
        return f"inconsistent counters: {counters}"
    if counters["samples_seen"] != counters["step"] * counters["global_batch"]:
        return f"inconsistent counters: {counters} (samples_seen is not step x global_batch)"
    rng = checkpoint.get("rng")
    if not isinstance(rng, dict) or not isinstance(rng.get("torch_cpu"), torch.Tensor) or "python" not in rng:
        return "the RNG state is incomplete"
    if not isinstance(checkpoint.get("state"), dict):
        return "its state is not a dictionary"
    return check(checkpoint) if check is not None else ""


def read_checkpoint(path: str | os.PathLike[str],
                    check: CheckFn | None = None) -> tuple[dict[str, Any] | None, str]:
    """``(checkpoint, "")``, or ``(None, why)`` for a file that does not load (truncated, not a
    checkpoint, a pickle ``weights_only=True`` refuses) or is not whole (:func:`checkpoint_problem`).
    Tensors are loaded onto the CPU."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # never weights_only=False
    except Exception as error:  # a truncated zip, garbage bytes, a pickle weights_only refuses, ...
        first = (str(error).strip().splitlines() or [""])[0][:200]
        return None, f"it does not load: {type(error).__name__}: {first}"
    problem = checkpoint_problem(checkpoint, check)
    return (None, problem) if problem else (checkpoint, "")


def resume_checkpoint(path: str | os.PathLike[str], *, check: CheckFn | None = None,
                      log: bool = True) -> tuple[dict[str, Any] | None, str | None]:
    """The checkpoint to resume from and the file it came from, or ``(None, None)`` when there
    is no checkpoint at ``path`` (a fresh trial; a ``checkpoint.prev.pt`` without a current one
    is stale and ignored).

    A checkpoint at ``path`` that does not load or is not whole (:func:`read_checkpoint`, with
    ``check``) is passed over for the previous one, ``checkpoint.prev.pt``, with one line on
    stderr when ``log``; the epochs after it are trained again.

    Raises:
        CheckpointError: neither file gives a usable checkpoint; the message names both files
            and what is wrong with each.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return None, None
    checkpoint, why = read_checkpoint(path, check)
    if checkpoint is not None:
        return checkpoint, path
    previous = previous_checkpoint_path(path)
    if not os.path.exists(previous):
        raise CheckpointError(
            f"no usable checkpoint: {path} is unusable ({why}) and there is no previous checkpoint "
            f"{previous}; remove {path} to restart the trial from scratch"
        )
    checkpoint, previous_why = read_checkpoint(previous, check)
    if checkpoint is None:
        raise CheckpointError(
            f"no usable checkpoint: {path} is unusable ({why}), and so is the previous checkpoint {previous} "
            f"({previous_why}); remove both to restart the trial from scratch"
        )
    if log:
        print(
            f"seer trial: checkpoint {path} is unusable ({why}); resuming from the previous checkpoint "
            f"{previous} at epoch {checkpoint['epoch']} (step {checkpoint['step']}); "
            "the epochs after it are trained again",
            file=sys.stderr, flush=True,
        )
    return checkpoint, previous


def truncate_metrics(path: str | os.PathLike[str], keep_through_epoch: int) -> None:
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
