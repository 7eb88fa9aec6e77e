"""The torchrun entry point: trains one trial's configuration up to an epoch, then exits.

::

    torchrun --standalone --nproc-per-node W -m seer_torch.worker --trial-dir DIR --until-epoch E
    torchrun ... -m seer_torch.worker --trial-dir DIR --profile-steps 20 --profile-out FILE
    python -m seer_torch.worker --trial-dir DIR --write-default-config

The worker talks to the executor only through files in the trial directory ``DIR``:

``config.json`` (read)::

    {"trial_id": "t0003",
     "configuration": {"lr": 0.1, "weight_decay": 0.0005, "width": 32, "dropout": 0.1},
     "model": "digits_cnn", "dataset": "digits", "data_dir": null,
     "global_batch": 64, "micro_batch_max": 64, "max_epochs": 27, "seed": 0,
     "tensorboard_dir": "/abs/path/run/tensorboard/t0003"}

  Optional: ``"test_every_epoch": true`` evaluates the test split after every epoch, not only
  at a launch's last one (``seer bench record`` uses it to record test curves); default false.

  Training hyperparameters in ``configuration`` and their units:

  - ``lr``: peak learning rate of SGD, applied to the gradient of the loss averaged over the
    global batch (so it does not change with ``W``); dimensionless step size per optimizer
    step. It decays by a cosine from ``lr`` to 0 at the schedule's horizon, ``max_epochs *
    steps_per_epoch`` optimizer steps, a function of the optimizer step only (never of ``W``).
    When a launch's ``max_epochs`` differs from the horizon the checkpoint was trained
    towards (the tuner's target was lowered or raised), the cosine is re-anchored at the
    checkpoint's step: it goes on from the factor it had there, without a jump, and reaches 0
    exactly at the new horizon (:class:`LrSchedule`; the checkpoint keeps every change).
  - ``weight_decay``: L2 coefficient added to the gradient (PyTorch SGD's coupled decay); each
    optimizer step shrinks a weight by ``lr_t * weight_decay`` of itself. Applies to all
    parameters.
  - ``momentum``: Nesterov momentum coefficient, dimensionless in [0, 1); default 0.9.
  - ``global_batch`` (optional; overrides the top-level one): samples per optimizer step, fixed
    at every world size.

  Every other key is a model hyperparameter passed to
  :func:`seer_torch.models.build_model` (see :func:`seer_torch.models.model_hparam_names`).
  ``micro_batch_max`` is the most samples one rank puts through the model at once;
  ``max_epochs`` is the learning-rate schedule's horizon (the tuner writes its current target
  at every launch) and the furthest ``--until-epoch`` may go.

``metrics.jsonl`` (appended by rank 0, one complete JSON object per line and epoch): ``epoch``
(epochs completed, 1-based), ``step`` (optimizer steps completed in total), ``samples_seen``,
``world_size``, ``accum_steps``, ``micro_batch``, ``global_batch``, ``lr`` (after the epoch's
last step), ``train_loss`` (mean over the epoch's global batches), ``val_accuracy``,
``val_samples``, ``epoch_time_s`` (training + validation), ``throughput_samples_per_s``
(training samples per training second, the first :data:`WARMUP_STEPS` steps of a launch
excluded), ``train_start_unix_s`` (when this launch began its first step), ``time_unix_s``,
and on the launch's last epoch (on every epoch with ``test_every_epoch``) ``test_accuracy`` and
``test_samples``. A diverged run (loss NaN
or infinite) ends with one line ``{"epoch": <the epoch in progress>, "diverged": true,
"train_loss": null, "val_accuracy": null, ...}``, saves no checkpoint and exits 0.

``checkpoint.pt`` (rank 0, written at the end of the launch to a temporary file and moved in
with ``os.replace``): ``model`` (unwrapped state dict, no ``module.`` / ``_orig_mod.``
prefixes), ``optimizer``, ``scheduler``, ``lr_schedule`` (:meth:`LrSchedule.to_list`: the
schedule's segments; a checkpoint without it ran one cosine to ``max_epochs``), ``epoch``,
``step``, ``samples_seen``, ``rng``
(torch CPU, CUDA of the saving device if any, Python ``random``), ``configuration``,
``trial_id``, ``global_batch``. Nothing in it depends on ``W``. A launch that finds it resumes
at ``epoch + 1`` (or exits 0 at once when ``--until-epoch`` is not beyond it) and first cuts
``metrics.jsonl`` back to the lines of epochs ``<= epoch`` (lines of a crashed launch go).

``checkpoint.json`` (rank 0, atomically): ``{"epoch": E, "step": S}`` of the checkpoint a
relaunch resumes from; written right after each checkpoint is moved into place, and at the
start of every launch from the checkpoint it loaded (``0, 0`` without one). A metrics line is
progress only once this file reaches its epoch: the checkpoint is written at the end of a
launch, so while a job runs (and after a job killed or stopped before its save) the lines past
``E`` are not durable, and the executor counts a trial's epochs, accuracies and rungs up to
``E`` only (:func:`seer_torch.runfiles.read_durable_metrics`). A launch first removes the
temporary files a killed writer left (``.checkpoint.pt.*.tmp``, ``checkpoint.prev.pt.*.tmp``).

``checkpoint.prev.pt``: the checkpoint before the current one (each save first moves the one
it resumed from there, by a hard link and ``os.replace``, so ``checkpoint.pt`` never goes
missing). A ``checkpoint.pt`` that does not load with ``weights_only=True`` (truncated,
corrupt) or is not whole (missing keys, counters that disagree) is passed over for this one,
with a line on stderr; metrics and TensorBoard are cut back to the epoch and step of the
checkpoint actually loaded and the epochs after it are trained again. If neither is usable
the launch fails with :class:`~seer_torch.errors.CheckpointError` naming both files.

Invariants (see docs/design.md, "Training invariants"): ``W * micro_batch * accum_steps ==
global_batch``; one permutation of the training set per ``(seed, epoch)``
(:func:`seer_torch.data.epoch_permutation`); rank ``r`` trains on the ``r``-th contiguous
slice of each global batch, in ``accum_steps`` micro-batches
(:func:`seer_torch.data.rank_train_batch`: the data order lives in :mod:`seer_torch.data`),
gradients synchronised once per optimizer step (DDP ``no_sync`` on the others); the loss is the
micro-batch mean divided by ``accum_steps`` and DDP averages over ranks; validation and test
are sharded so every sample counts once at every ``W``. Dropout draws from torch's global RNG,
re-seeded from ``(seed, epoch, rank)`` at every epoch so a resumed run repeats an
uninterrupted one at the same ``W``.
BatchNorm normalises over each micro-batch, so its statistics (not the data order or the
schedule) depend on the micro-batch size; running statistics come from rank 0.

A job killed mid-epoch (SIGKILL, node loss, preemption) loses everything since the last
checkpoint, which is written only at the end of a launch: the next launch, at any ``W``, starts
from that checkpoint and *replays* the lost epochs. The replay is deterministic -- the data
order is a function of ``(seed, epoch)``, dropout is re-seeded per ``(seed, epoch, rank)``, the
schedule is a function of the optimizer step -- so it trains exactly the samples, in the same
order, with the same learning rates as the uninterrupted run; at the same ``W`` the result is
bit-identical, at another ``W`` equal up to float32 reduction order (and BatchNorm's
micro-batch statistics). What the crashed launch wrote past the checkpoint is dropped:
``metrics.jsonl`` is cut back and TensorBoard events at steps past the checkpoint's are purged
(``purge_step``). There is no mid-epoch resume.

Debugging hooks (environment variables, off by default; the contract tests use them):

- ``SEER_RECORD_SAMPLES=PATH``: every rank appends one JSON line per optimizer step to
  ``PATH.rank<global rank>``: ``epoch``, ``step_in_epoch``, ``step``, ``rank``, ``local_rank``,
  ``world_size``, ``micro_batch``, ``accum_steps``, ``lr`` (used by the step) and ``indices``
  (the training-set indices this rank trained on, in order).
- ``SEER_DEBUG_STEP_DELAY_S=SECONDS``: sleep that long after every optimizer step (lets a test
  kill a job mid-epoch).
- ``SEER_DEBUG_SAVE_DELAY_S=SECONDS``: hold every checkpoint write that long after the bytes are
  in the temporary file and before it is moved into place (lets a test kill everything while a
  checkpoint is half-written).

Launch cost: at ``W = 1`` there is no process group and no DDP wrapper, so the worker also runs
without torchrun (``python -m seer_torch.worker ...``, about 3.5 s sooner on a small machine);
digits is read without importing scikit-learn; and a successful run ends with ``os._exit``
after everything is written and torn down, skipping 1-2 s of interpreter teardown.

This module (the entry point and the epoch loop, :func:`train`) and its parts in
:mod:`seer_torch.training` (the configuration, the schedule, the checkpoint, the trainer, the
profile probe) import nothing from seer_torch except :mod:`seer_torch.errors`,
:mod:`seer_torch.data`, :mod:`seer_torch.models` and :mod:`seer_torch.runfiles`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import record

from seer_torch.data import epoch_permutation, plan_batch
from seer_torch.errors import ConfigError
from seer_torch.runfiles import remove_worker_temporaries, write_durable_epoch

# The worker's parts, re-exported: tests, scripts and launch/run_trial.sh import them from here.
from seer_torch.training.checkpoint import (  # noqa: F401
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    PREVIOUS_CHECKPOINT_FILE,
    checkpoint_problem,
    load_checkpoint,
    previous_checkpoint_path,
    resume_checkpoint,
    save_checkpoint,
    truncate_metrics,
)
from seer_torch.training.config import (  # noqa: F401
    CONFIG_FILE,
    DEFAULT_CONFIG,
    TrialConfig,
    write_default_config,
)
from seer_torch.training.config import TRAINING_HPARAMS as _TRAINING_HPARAMS  # noqa: F401
from seer_torch.training.probe import PROFILE_WINDOWS, profile  # noqa: F401
from seer_torch.training.schedule import LrSchedule, cosine_lr_factor, cosine_schedule  # noqa: F401
from seer_torch.training.trainer import (  # noqa: F401
    WARMUP_STEPS,
    DistEnv,
    Trainer,
    build_trainer,
    seed_epoch,
    synchronize,
)
from seer_torch.training.trainer import init_process_group as _init_process_group

METRICS_FILE = "metrics.jsonl"
HEARTBEAT_FILE = "heartbeat"  # rank 0 rewrites it at least every HEARTBEAT_S while training
HEARTBEAT_S = 10.0


@dataclass
class _Launch:
    """What one training launch writes to and the times it keeps.

    Attributes:
        trial_dir: the trial directory.
        metrics_path: its ``metrics.jsonl``.
        writer: TensorBoard's ``SummaryWriter`` (rank 0 with a ``tensorboard_dir``), or ``None``.
        step_delay_s: ``SEER_DEBUG_STEP_DELAY_S``, seconds slept after every optimizer step.
        train_start_unix_s: when the launch began its first step (Unix seconds).
        heartbeat_unix_s: when rank 0 last touched the heartbeat file (Unix seconds).
    """

    trial_dir: str
    metrics_path: str
    writer: Any
    step_delay_s: float
    train_start_unix_s: float = 0.0
    heartbeat_unix_s: float = 0.0


def train(trial_dir: str, until_epoch: int, config: TrialConfig, env: DistEnv) -> None:
    """Train from the checkpoint (if any) through epoch ``until_epoch``; see the module docstring.

    Raises:
        ConfigError: ``until_epoch`` beyond ``max_epochs``, or a batch plan this ``W`` cannot make.
        CheckpointError: neither the checkpoint nor the previous one is usable.
    """
    if until_epoch > config.max_epochs:
        raise ConfigError("--until-epoch", until_epoch, f"an epoch <= max_epochs={config.max_epochs}")
    checkpoint_path = os.path.join(trial_dir, CHECKPOINT_FILE)
    # A corrupt or truncated checkpoint.pt falls back to checkpoint.prev.pt; metrics and
    # TensorBoard are cut back to the checkpoint actually loaded (start_epoch, trainer.step).
    checkpoint, resumed_from = resume_checkpoint(checkpoint_path, env.device, log=env.is_main)
    start_epoch = _start_launch(trial_dir, checkpoint, env)
    if until_epoch <= start_epoch:
        return
    plan_batch(config.global_batch, env.world_size, config.micro_batch_max)  # fail before any set-up
    _init_process_group(env)
    trainer = build_trainer(config, env, checkpoint)
    del checkpoint
    launch = _open_launch(trial_dir, trainer, start_epoch)
    try:
        trainer.model.train()
        launch.train_start_unix_s = time.time()
        launch.heartbeat_unix_s = _heartbeat(trial_dir) if env.is_main else 0.0
        for epoch in range(start_epoch + 1, until_epoch + 1):
            first, last = epoch == start_epoch + 1, epoch == until_epoch
            if not _train_epoch(trainer, launch, epoch, first=first, last=last):
                return  # diverged: no checkpoint
        if env.is_main:
            # Keep the checkpoint resumed from as the previous one, unless it is already the
            # previous one (the current one was unusable and must not become the fallback).
            save_checkpoint(checkpoint_path, trainer.state_dict(),
                            rotate=resumed_from != previous_checkpoint_path(checkpoint_path))
    finally:
        if launch.writer is not None:
            launch.writer.close()
        if trainer.sample_log is not None:
            trainer.sample_log.close()


def _start_launch(trial_dir: str, checkpoint: dict[str, Any] | None, env: DistEnv) -> int:
    """Rank 0 clears what a killed writer left and says which checkpoint this launch resumes
    from; returns its epoch (0 without one)."""
    start_epoch = int(checkpoint["epoch"]) if checkpoint is not None else 0
    if env.is_main:
        # What a killed writer left goes; checkpoint.json names the checkpoint this launch
        # resumes from (a writer killed between its checkpoint and checkpoint.json, or a
        # checkpoint.pt passed over for checkpoint.prev.pt, left it saying something else).
        remove_worker_temporaries(trial_dir)
        write_durable_epoch(trial_dir, start_epoch, int(checkpoint["step"]) if checkpoint is not None else 0)
    return start_epoch


def _open_launch(trial_dir: str, trainer: Trainer, start_epoch: int) -> _Launch:
    """Rank 0 cuts ``metrics.jsonl`` back to ``start_epoch`` and opens TensorBoard, purging the
    steps past the checkpoint's; every rank opens its ``SEER_RECORD_SAMPLES`` log."""
    config, env = trainer.config, trainer.env
    metrics_path = os.path.join(trial_dir, METRICS_FILE)
    writer = None
    if env.is_main:
        truncate_metrics(metrics_path, start_epoch)
        if config.tensorboard_dir:
            from torch.utils.tensorboard import SummaryWriter

            # Everything at steps > the checkpoint's step belongs to a crashed launch: purge it.
            writer = SummaryWriter(log_dir=config.tensorboard_dir, purge_step=trainer.step + 1)
    record_path = os.environ.get("SEER_RECORD_SAMPLES")
    if record_path:
        trainer.sample_log = open(f"{record_path}.rank{env.rank}", "a", encoding="utf-8")
    step_delay_s = float(os.environ.get("SEER_DEBUG_STEP_DELAY_S") or 0.0)
    return _Launch(trial_dir, metrics_path, writer, step_delay_s)


def _train_epoch(trainer: Trainer, launch: _Launch, epoch: int, *, first: bool, last: bool) -> bool:
    """Train epoch ``epoch``, validate, and (rank 0) write its metrics line and TensorBoard
    scalars; test too when ``last`` (or with ``test_every_epoch``). ``first``: the launch's
    first epoch, whose first :data:`WARMUP_STEPS` steps are left out of the throughput.
    Returns ``False`` when the loss diverged (its line is written, the launch ends)."""
    config, env, plan = trainer.config, trainer.env, trainer.plan
    seed_epoch(config, env, epoch)
    permutation = epoch_permutation(config.seed, epoch, trainer.splits.num_train)
    synchronize(env.device)
    epoch_start = time.perf_counter()
    steps = _train_steps(trainer, launch, epoch, permutation, epoch_start, first=first)
    if steps is None:
        return False
    loss_sum, measure_start, measured_steps = steps
    synchronize(env.device)
    train_end = time.perf_counter()
    val_accuracy, val_samples = trainer.evaluate(trainer.splits.val_x, trainer.splits.val_y)
    synchronize(env.device)
    epoch_time_s = time.perf_counter() - epoch_start
    trainer.epoch = epoch
    throughput = measured_steps * plan.global_batch / max(train_end - measure_start, 1e-9)
    line: dict[str, Any] = {
        "trial_id": config.trial_id,
        "epoch": epoch,
        "step": trainer.step,
        "samples_seen": trainer.samples_seen,
        "world_size": env.world_size,
        "accum_steps": plan.accum_steps,
        "micro_batch": plan.micro_batch,
        "global_batch": plan.global_batch,
        "lr": trainer.lr(),
        "train_loss": loss_sum / trainer.steps_per_epoch,
        "val_accuracy": val_accuracy,
        "val_samples": val_samples,
        "epoch_time_s": epoch_time_s,
        "throughput_samples_per_s": throughput,
        "train_start_unix_s": launch.train_start_unix_s,
    }
    if last or config.test_every_epoch:
        splits = trainer.splits
        line["test_accuracy"], line["test_samples"] = trainer.evaluate(splits.test_x, splits.test_y)
    line["time_unix_s"] = time.time()
    if env.is_main:
        _write_epoch(launch, line, trainer)
    return True


def _train_steps(trainer: Trainer, launch: _Launch, epoch: int, permutation: torch.Tensor,
                 epoch_start: float, *, first: bool) -> tuple[float, float, int] | None:
    """The optimizer steps of one epoch, with the heartbeat and the per-step TensorBoard
    scalars. Returns ``(sum of the global-batch losses, when the timed steps began, timed
    steps)``, or ``None`` when the loss diverged (rank 0 has written the diverged line)."""
    env = trainer.env
    measure_start, measured_steps = epoch_start, 0
    loss_sum = 0.0
    for step_in_epoch in range(trainer.steps_per_epoch):
        if first and step_in_epoch == WARMUP_STEPS:  # the launch's first steps are warm-up
            synchronize(env.device)
            measure_start, measured_steps = time.perf_counter(), 0
        loss = float(trainer.train_step(epoch, step_in_epoch, permutation).item())
        measured_steps += 1
        if env.is_main and time.time() - launch.heartbeat_unix_s > HEARTBEAT_S:
            launch.heartbeat_unix_s = _heartbeat(launch.trial_dir)
        if launch.step_delay_s > 0:
            time.sleep(launch.step_delay_s)
        if not math.isfinite(loss):
            if env.is_main:
                _append_line(launch.metrics_path, _diverged_line(trainer, epoch, env, loss))
                if launch.writer is not None:
                    launch.writer.flush()
            return None
        loss_sum += loss
        if launch.writer is not None:
            launch.writer.add_scalar("train/loss", loss, trainer.step)
            launch.writer.add_scalar("train/lr", trainer.lr(), trainer.step)
    return loss_sum, measure_start, measured_steps


def _write_epoch(launch: _Launch, line: dict[str, Any], trainer: Trainer) -> None:
    """Rank 0: append the epoch's metrics line and write its TensorBoard scalars."""
    _append_line(launch.metrics_path, line)
    writer = launch.writer
    if writer is not None:
        writer.add_scalar("val/accuracy", line["val_accuracy"], trainer.step)
        writer.add_scalar("train/epoch_loss", line["train_loss"], trainer.step)
        writer.add_scalar("perf/throughput_samples_per_s", line["throughput_samples_per_s"], trainer.step)
        writer.add_scalar("perf/world_size", trainer.env.world_size, trainer.step)
        if "test_accuracy" in line:
            writer.add_scalar("test/accuracy", line["test_accuracy"], trainer.step)
        writer.flush()


def _append_line(path: str, record_: dict[str, Any]) -> None:
    """Append one complete JSON line in one write call (no fsync)."""
    line = json.dumps(record_, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as file:
        file.write(line)
        file.flush()


def _heartbeat(trial_dir: str) -> float:
    """Touch ``TRIAL_DIR/heartbeat`` (the executor's hang detection reads its time); returns now."""
    now = time.time()
    try:
        with open(os.path.join(trial_dir, HEARTBEAT_FILE), "w", encoding="utf-8") as f:
            f.write(f"{now:.3f}\n")
    except OSError:
        pass
    return now


def _diverged_line(trainer: Trainer, epoch: int, env: DistEnv, loss: float) -> dict[str, Any]:
    return {
        "trial_id": trainer.config.trial_id,
        "epoch": epoch,
        "step": trainer.step,
        "samples_seen": trainer.samples_seen,
        "world_size": env.world_size,
        "accum_steps": trainer.plan.accum_steps,
        "micro_batch": trainer.plan.micro_batch,
        "global_batch": trainer.plan.global_batch,
        "lr": trainer.lr(),
        "diverged": True,
        "train_loss": None,
        "val_accuracy": None,
        "diverged_loss": repr(loss),
        "time_unix_s": time.time(),
    }


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seer_torch.worker",
        description="Train one trial (run under torchrun). Resumes from DIR/checkpoint.pt when present.",
    )
    parser.add_argument("--trial-dir", required=True, help="the trial directory holding config.json")
    parser.add_argument("--until-epoch", type=int,
                        help="train through this epoch (1-based), checkpoint, exit")
    parser.add_argument("--profile-steps", type=int,
                        help="profile instead of training: time this many optimizer steps after the warm-up "
                             "(--until-epoch is then ignored)")
    parser.add_argument("--profile-out",
                        help="profile mode: JSON result file (default DIR/profile_w<W>.json)")
    parser.add_argument("--write-default-config", action="store_true",
                        help="write a default digits config.json into the trial directory if none exists, "
                             "then exit")
    args = parser.parse_args(argv)
    if not args.write_default_config and args.profile_steps is None and args.until_epoch is None:
        parser.error("one of --until-epoch, --profile-steps or --write-default-config is required")
    return args


@record
def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 also after a divergence or an early exit)."""
    args = _parse_args(argv)
    trial_dir = os.path.abspath(args.trial_dir)
    if args.write_default_config:
        write_default_config(trial_dir)
        return 0
    torch.set_num_threads(1)  # one thread per worker: a CPU slot is one process, one thread
    env = DistEnv.from_environ()
    config = TrialConfig.load(trial_dir)
    finished = False
    try:
        if args.profile_steps is not None:
            out = args.profile_out or os.path.join(trial_dir, f"profile_w{env.world_size}.json")
            profile(args.profile_steps, out, config, env)
        else:
            if args.until_epoch < 1:
                raise ConfigError("--until-epoch", args.until_epoch, "an integer >= 1")
            train(trial_dir, args.until_epoch, config, env)
        finished = True
    finally:
        if dist.is_initialized():
            if finished:  # on an error the other ranks may never arrive; torchrun stops them
                dist.barrier()
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    status = main()
    # Everything is written, closed and torn down by now. Skip the interpreter's teardown of
    # torch's module graph (1-2 s per process on a small machine): a launch's cost is what
    # makes resizing expensive (docs/design.md, "Launch cost"). Errors take the normal path above.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status or 0)  # `record` turns a clean SystemExit (--help) into None
