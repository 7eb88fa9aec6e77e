"""The profile probe (``python -m seer_torch.worker --profile-steps K``): throughput at this
world size, timed in windows, and one timed validation pass; what
:mod:`seer_torch.scaling.profiler` turns into a scaling profile. It trains on the trial API's
batches (:meth:`seer_torch.trial.Trial.train_batches`) with the training step itself
(:meth:`~seer_torch.training.trainer.Trainer.train_step`), so it times what training runs."""

from __future__ import annotations

import json
import statistics
import time

from seer_torch.errors import ConfigError
from seer_torch.runfiles import atomic_write_text
from seer_torch.training.config import TrialConfig
from seer_torch.training.trainer import WARMUP_STEPS, Trainer, build_trainer
from seer_torch.trial import Trial, synchronize

#: Timed windows of a profile probe; its step time is their median (a shared machine's load
#: bursts move one window, not the median).
PROFILE_WINDOWS = 6


def profile(t: Trial, config: TrialConfig, steps: int, out_path: str) -> None:
    """Measure throughput at this world size: :data:`WARMUP_STEPS` warm-up steps, then
    ``steps`` timed optimizer steps (wrapping around epochs) in :data:`PROFILE_WINDOWS`
    windows, then one timed validation pass. ``step_time_s`` is the median over the windows of
    their seconds per step, so that a burst of load on a shared machine during one window does
    not move it (``step_time_windows_s`` lists them all). Rank 0 writes ``out_path`` (JSON). No
    checkpoint, metrics or TensorBoard.

    Raises:
        ConfigError: ``steps`` below 1.
    """
    if steps < 1:
        raise ConfigError("--profile-steps", steps, "an integer >= 1")
    trainer = build_trainer(t, config, None)
    trainer.model.train()
    train_start_unix_s = time.time()
    windows, train_s = _timed_steps(trainer, steps)
    step_time_s = statistics.median(windows)
    eval_start = time.perf_counter()
    trainer.evaluate(trainer.splits.val_x, trainer.splits.val_y)
    synchronize(t.device)
    eval_time_s = time.perf_counter() - eval_start
    if t.is_main:
        result = {
            "trial_id": config.trial_id,
            "model": config.model,
            "dataset": config.dataset,
            "world_size": t.world_size,
            "global_batch": t.global_batch,
            "micro_batch": t.micro_batch,
            "accum_steps": t.accum_steps,
            "throughput_samples_per_s": t.global_batch / step_time_s,
            "step_time_s": step_time_s,
            "step_time_windows_s": windows,
            "measured_train_s": train_s,
            "eval_time_s": eval_time_s,
            "train_start_unix_s": train_start_unix_s,
            "warmup_steps": WARMUP_STEPS,
            "measured_steps": steps,
            "num_train_samples": trainer.splits.num_train,
            "num_val_samples": int(trainer.splits.val_y.shape[0]),
            "device": t.device.type,
        }
        atomic_write_text(out_path, json.dumps(result, indent=2) + "\n")


def _timed_steps(trainer: Trainer, steps: int) -> tuple[list[float], float]:
    """Train :data:`WARMUP_STEPS` untimed steps, then ``steps`` timed ones (wrapping around
    epochs, each epoch in the trial's data order); returns the seconds per step of each timed
    window and the seconds of all timed steps."""
    t = trainer.t
    total = WARMUP_STEPS + steps
    window = max(1, steps // PROFILE_WINDOWS)
    window_start, window_steps = time.perf_counter(), 0
    windows: list[float] = []  # seconds per step of each timed window
    train_s = 0.0  # all timed steps
    index, epoch = 0, 0
    while index < total:
        epoch += 1
        for step_in_epoch, micro_batches in enumerate(t.train_batches(trainer.splits.num_train, epoch)):
            if index == WARMUP_STEPS:
                synchronize(t.device)
                window_start, window_steps = time.perf_counter(), 0
            trainer.train_step(epoch, step_in_epoch, micro_batches)
            if index >= WARMUP_STEPS:
                window_steps += 1
                if window_steps == window or index == total - 1:
                    synchronize(t.device)
                    now = time.perf_counter()
                    windows.append((now - window_start) / window_steps)
                    train_s += now - window_start
                    window_start, window_steps = now, 0
            index += 1
            if index == total:
                break
    return windows, train_s
