"""A corrupt or truncated checkpoint: the worker resumes from the previous good one.

Real launches of the worker at W=1 (``python -m seer_torch.worker``, no torchrun needed) on
digits with a tiny model: 19 optimizer steps per epoch.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
import torch

from seer_torch.errors import CheckpointError
from seer_torch.trial_checkpoint import (
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    PREVIOUS_CHECKPOINT_FILE,
    checkpoint_problem,
    resume_checkpoint,
    save_checkpoint,
)
from seer_torch.worker import state_problem

STEPS_PER_EPOCH = 1257 // 64
LAUNCH_TIMEOUT_S = 120


def _launch(trial_dir, until_epoch: int, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [
        sys.executable,
        "-m",
        "seer_torch.worker",
        "--trial-dir",
        str(trial_dir),
        "--until-epoch",
        str(until_epoch),
    ]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    if check:
        assert proc.returncode == 0, f"until {until_epoch} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _metrics(trial_dir) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]


def _epoch_of(path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


@pytest.mark.integration
def test_truncated_checkpoint_resumes_from_the_previous_one(tmp_path):
    trial_dir = tmp_path / "t0001"
    trial_dir.mkdir()
    tensorboard_dir = tmp_path / "tensorboard" / "t0001"
    (trial_dir / "config.json").write_text(
        json.dumps(
            {
                "trial_id": "t0001",
                "configuration": {"lr": 0.1, "weight_decay": 5e-4, "width": 4, "dropout": 0.1},
                "model": "digits_cnn",
                "dataset": "digits",
                "data_dir": None,
                "global_batch": 64,
                "micro_batch_max": 64,
                "max_epochs": 4,
                "seed": 0,
                "tensorboard_dir": str(tensorboard_dir),
            }
        )
    )
    main, prev = trial_dir / CHECKPOINT_FILE, trial_dir / PREVIOUS_CHECKPOINT_FILE

    _launch(trial_dir, 1)
    assert _epoch_of(main) == 1 and not prev.exists()
    _launch(trial_dir, 2)
    assert (_epoch_of(main), _epoch_of(prev)) == (2, 1)  # the one resumed from is kept
    reference = _metrics(trial_dir)

    # Truncate the current checkpoint (a disk filled up, a copy cut short): resume from epoch 1.
    data = main.read_bytes()
    main.write_bytes(data[: len(data) // 2])
    proc = _launch(trial_dir, 3)
    assert f"checkpoint {main} is unusable" in proc.stderr
    assert f"resuming from the previous checkpoint {prev} at epoch 1 (step {STEPS_PER_EPOCH})" in proc.stderr
    lines = _metrics(trial_dir)
    assert [line["epoch"] for line in lines] == [1, 2, 3]  # epoch 2 trained again, not logged twice
    for line in lines:
        assert line["step"] == line["epoch"] * STEPS_PER_EPOCH
        assert line["samples_seen"] == line["step"] * 64
    # The replay at the same W is deterministic: epoch 2 repeats the lost one exactly.
    for key in ("train_loss", "val_accuracy", "lr", "step"):
        assert lines[1][key] == reference[1][key], key
    after_first_fallback = lines
    # The corrupt file did not become the fallback: the previous one is still epoch 1.
    assert (_epoch_of(main), _epoch_of(prev)) == (3, 1)

    # Garbage instead of a checkpoint: the same.
    main.write_bytes(b"this is not a checkpoint")
    proc = _launch(trial_dir, 4)
    assert "it does not load" in proc.stderr and "at epoch 1" in proc.stderr
    lines = _metrics(trial_dir)
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4]
    assert [line["step"] for line in lines] == [e * STEPS_PER_EPOCH for e in (1, 2, 3, 4)]
    for index in (1, 2):  # epochs 2 and 3, trained a second time, repeat the first exactly
        for key in ("train_loss", "val_accuracy", "lr"):
            assert lines[index][key] == after_first_fallback[index][key], (index, key)
    assert (_epoch_of(main), _epoch_of(prev)) == (4, 1)
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]  # it trains

    # TensorBoard: every step once, none backwards, although epochs 2-3 were trained twice.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    assert [e.step for e in accumulator.Scalars("train/loss")] == list(range(1, 4 * STEPS_PER_EPOCH + 1))
    assert [e.step for e in accumulator.Scalars("val_accuracy")] == [
        e * STEPS_PER_EPOCH for e in (1, 2, 3, 4)
    ]

    # Neither file usable: a clear error naming both, and nothing else touched.
    before = (trial_dir / "metrics.jsonl").read_text()
    data = main.read_bytes()
    main.write_bytes(data[: len(data) // 3])
    prev.write_bytes(b"\x00" * 100)
    proc = _launch(trial_dir, 4, check=False)
    assert proc.returncode != 0
    assert "CheckpointError" in proc.stderr and "no usable checkpoint" in proc.stderr
    assert str(main) in proc.stderr and str(prev) in proc.stderr
    assert (trial_dir / "metrics.jsonl").read_text() == before


def _state(epoch: int, steps_per_epoch: int = 19, global_batch: int = 64) -> dict:
    """A whole checkpoint of the built-in worker (the trial's format, the worker's state)."""
    step = epoch * steps_per_epoch
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "step": step,
        "samples_seen": step * global_batch,
        "global_batch": global_batch,
        "trial_id": "t",
        "configuration": {"lr": 0.1},
        "rng": {"torch_cpu": torch.get_rng_state(), "python": random.getstate()},
        "state": {
            "model": {"w": torch.zeros(2)},
            "optimizer": {"state": {}, "param_groups": []},
            "scheduler": {"last_epoch": step},
            "lr_schedule": [[0, 0.0, 10 * steps_per_epoch]],
        },
    }


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda s: s["state"].pop("optimizer"), "missing optimizer"),
        (lambda s: s.update(step=39, samples_seen=39 * 64), "inconsistent counters"),
        (lambda s: s.update(samples_seen=0), "samples_seen is not step x global_batch"),
        (lambda s: s["state"]["scheduler"].update(last_epoch=3), "the scheduler is at step 3"),
        (lambda s: s.update(epoch=0, step=0, samples_seen=0), "inconsistent counters"),
        (lambda s: s["state"].update(model={}), "the model state is not a dictionary of tensors"),
        (lambda s: s["state"].update(lr_schedule=[[5, 0.0, 99]]), "its lr_schedule is not"),
        (lambda s: s.update(format=1), "checkpoint format 1"),
        (lambda s: s.pop("rng"), "the RNG state is incomplete"),
    ],
    ids=[
        "missing_key",
        "step_not_multiple_of_epoch",
        "samples_seen",
        "scheduler_step",
        "epoch_0",
        "empty_model",
        "lr_schedule",
        "old_format",
        "no_rng",
    ],
)
def test_an_inconsistent_checkpoint_falls_back_to_the_previous(tmp_path, capsys, damage, problem):
    path = str(tmp_path / CHECKPOINT_FILE)
    save_checkpoint(path, _state(1))
    bad = _state(2)
    damage(bad)
    assert problem in checkpoint_problem(bad, state_problem)
    save_checkpoint(path, bad)  # rotates the good epoch-1 checkpoint to checkpoint.prev.pt
    state, source = resume_checkpoint(path, check=state_problem)
    assert source == str(tmp_path / PREVIOUS_CHECKPOINT_FILE) and state["epoch"] == 1
    assert problem in capsys.readouterr().err


def test_rotation_rules(tmp_path):
    path = str(tmp_path / CHECKPOINT_FILE)
    prev = tmp_path / PREVIOUS_CHECKPOINT_FILE
    assert checkpoint_problem(_state(3), state_problem) == ""
    # A stale previous checkpoint without a current one is not resumed from, and a fresh
    # trial's first save removes it.
    torch.save(_state(5), prev)
    assert resume_checkpoint(path) == (None, None)
    save_checkpoint(path, _state(1))
    assert not prev.exists()
    save_checkpoint(path, _state(2))
    assert _epoch_of(prev) == 1
    # rotate=False (the launch resumed from the previous one) keeps it.
    save_checkpoint(path, _state(3), rotate=False)
    assert _epoch_of(prev) == 1 and _epoch_of(path) == 3
    # No previous checkpoint and a corrupt current one: an error naming the file.
    prev.unlink()
    with open(path, "r+b") as f:
        f.truncate(10)
    with pytest.raises(CheckpointError, match="no previous checkpoint") as ei:
        resume_checkpoint(path)
    assert path in str(ei.value)
    # A file weights_only=True refuses (a pickled object of a class outside the allowlist) is
    # unusable: it is never loaded unsafely.
    import datetime

    save_checkpoint(path, _state(1))
    save_checkpoint(path, {**_state(2), "when": datetime.datetime(2020, 1, 1)})
    state, source = resume_checkpoint(path, log=False)
    assert source == str(prev) and state["epoch"] == 1
