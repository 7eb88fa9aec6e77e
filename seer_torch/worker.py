"""The torchrun entry point: trains one trial's configuration up to an epoch, then exits.

::

    torchrun --standalone --nproc-per-node W -m seer_torch.worker --trial-dir DIR --until-epoch E
    torchrun ... -m seer_torch.worker --trial-dir DIR --profile-steps 20 --profile-out FILE
    python -m seer_torch.worker --trial-dir DIR --write-default-config

Without ``--trial-dir`` and ``--until-epoch`` it reads ``SEER_TRIAL_DIR`` and
``SEER_UNTIL_EPOCH``, as any script the tuner launches (:mod:`seer_torch.trial`). The worker
talks to the executor only through files in the trial directory ``DIR``:

``config.json`` (read)::

    {"trial_id": "t0003",
     "configuration": {"lr": 0.1, "weight_decay": 0.0005, "width": 32, "dropout": 0.1},
     "model": "digits_cnn", "dataset": "digits", "data_dir": null,
     "global_batch": 64, "micro_batch_max": 64, "max_epochs": 27, "seed": 0,
     "tensorboard_dir": "/abs/path/run/tensorboard/t0003_lr=0.1,weight_decay=0.0005,width=32,dropout=0.1"}

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

Everything the tuner depends on goes through the public trial API, :mod:`seer_torch.trial`,
as in a user's own script: reading ``config.json``, ``SEER_TRIAL_DIR`` and the target epoch,
the process group, the batch plan and the W-independent data order
(:meth:`~seer_torch.trial.Trial.train_batches`, :meth:`~seer_torch.trial.Trial.accumulate`),
the checkpoint (:meth:`~seer_torch.trial.Trial.load`, :meth:`~seer_torch.trial.Trial.save`),
sharded evaluation, the metrics line (:meth:`~seer_torch.trial.Trial.report`), the heartbeat
and TensorBoard. What only this script does sits on top: the model and data registries
(:mod:`seer_torch.models`, :func:`seer_torch.data.load_dataset`), SGD and the learning-rate
schedule (:mod:`seer_torch.training.schedule`), and the profile probe
(:mod:`seer_torch.training.probe`).

``metrics.jsonl`` (one line per epoch, written by :meth:`~seer_torch.trial.Trial.report`):
the trial's keys (``trial_id``, ``epoch``, ``step``, ``samples_seen``, ``world_size``,
``global_batch``, ``micro_batch``, ``accum_steps``, ``epoch_time_s`` = training + validation,
``throughput_samples_per_s``, ``train_start_unix_s``, ``time_unix_s``) and this script's
metrics: ``lr`` (after the epoch's last step), ``train_loss`` (mean over the epoch's global
batches), ``val_accuracy``, ``val_loss`` (mean cross-entropy, nats), ``val_samples``, and on
the launch's last epoch (on every epoch with ``test_every_epoch``; not counted in
``epoch_time_s``) ``test_accuracy``, ``test_loss`` and ``test_samples``. A diverged run (loss
NaN or infinite) stops at once and ends with one line ``{"epoch": <the epoch in progress>,
"step": <the steps before the one that diverged>, "diverged": true, "train_loss": null,
"val_accuracy": null, ...}``, saves no checkpoint and exits 0. TensorBoard (x-axis: the
optimizer step): ``train/loss`` and ``train/lr`` at every step, the metrics above at every
epoch, ``perf/world_size`` and ``perf/throughput_samples_per_s``.

The checkpoint is the trial's (:mod:`seer_torch.trial_checkpoint`: ``checkpoint.pt`` written
atomically by rank 0 at the end of the launch, the previous one kept as ``checkpoint.prev.pt``
and used when the current one is damaged, ``checkpoint.json`` saying which epoch is durable);
its ``state`` here is ``model`` (unwrapped state dict), ``optimizer``, ``scheduler`` and
``lr_schedule`` (:meth:`LrSchedule.to_list`), checked at a relaunch by
:func:`~seer_torch.training.trainer.state_problem`. Nothing in it depends on ``W``. A launch
that finds it resumes at ``epoch + 1`` (or exits 0 at once when ``--until-epoch`` is not
beyond it) and first cuts ``metrics.jsonl`` back to the lines of epochs ``<= epoch``.

Invariants (see docs/design.md, "Training invariants"): ``W * micro_batch * accum_steps ==
global_batch``; one permutation of the training set per ``(seed, epoch)``
(:func:`seer_torch.data.epoch_permutation`); rank ``r`` trains on the ``r``-th contiguous
slice of each global batch, in ``accum_steps`` micro-batches
(:func:`seer_torch.data.rank_train_batch`), gradients synchronised once per optimizer step
(DDP ``no_sync`` on the others); the loss is the micro-batch mean divided by ``accum_steps``
and DDP averages over ranks; validation and test are sharded so every sample counts once at
every ``W``. Dropout draws from torch's global RNG, which the trial re-seeds from ``(seed,
epoch, rank)`` at every epoch so a resumed run repeats an uninterrupted one at the same ``W``.
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

The debugging hooks the tests use (``SEER_RECORD_SAMPLES``, ``SEER_DEBUG_STEP_DELAY_S``,
``SEER_DEBUG_SAVE_DELAY_S``) are the trial API's (:mod:`seer_torch.trial`).

Launch cost: at ``W = 1`` there is no process group and no DDP wrapper, so the worker also runs
without torchrun (``python -m seer_torch.worker ...``, about 3.5 s sooner on a small machine);
digits is read without importing scikit-learn; and a successful run ends with ``os._exit``
after everything is written and torn down, skipping 1-2 s of interpreter teardown.

This module (the entry point and the epoch loop, :func:`train`) and its parts in
:mod:`seer_torch.training` import nothing from seer_torch except the trial API,
:mod:`seer_torch.errors`, :mod:`seer_torch.data`, :mod:`seer_torch.models` and
:mod:`seer_torch.runfiles`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from seer_torch import trial
from seer_torch.errors import ConfigError

# The worker's parts, re-exported: tests, scripts and launch/run_trial.sh import them from here.
from seer_torch.training.config import (  # noqa: F401
    CONFIG_FILE,
    DEFAULT_CONFIG,
    TrialConfig,
    write_default_config,
)
from seer_torch.training.config import TRAINING_HPARAMS as _TRAINING_HPARAMS  # noqa: F401
from seer_torch.training.probe import PROFILE_WINDOWS, profile
from seer_torch.training.schedule import LrSchedule, cosine_lr_factor, cosine_schedule  # noqa: F401
from seer_torch.training.trainer import WARMUP_STEPS, Trainer, build_trainer, state_problem  # noqa: F401
from seer_torch.trial import Trial
from seer_torch.trial_checkpoint import (  # noqa: F401
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    PREVIOUS_CHECKPOINT_FILE,
    checkpoint_problem,
    resume_checkpoint,
    save_checkpoint,
    truncate_metrics,
)

__all__ = ["main", "train", "PROFILE_WINDOWS", "WARMUP_STEPS"]


def train(t: Trial, config: TrialConfig) -> None:
    """Train from the checkpoint (if any) through ``t.until_epoch``; see the module docstring.

    Raises:
        CheckpointError: neither the checkpoint nor the previous one is usable, or the
            checkpoint does not fit this dataset.
        ConfigError: the checkpoint was trained with another global batch.
    """
    state = t.load(check=state_problem)
    if t.start_epoch >= t.until_epoch:
        for _ in t.epochs():  # nothing to train: the launch's bookkeeping only (no epoch comes)
            raise AssertionError("an epoch past the target")
        return
    trainer = build_trainer(t, config, state)
    del state
    trainer.model.train()
    for epoch in t.epochs(checkpoint=trainer.state):
        trainer.retarget(t.max_epochs)  # a kept-alive job's horizon may move while it is parked
        _train_epoch(trainer, epoch, last=epoch == t.until_epoch)


def _train_epoch(trainer: Trainer, epoch: int, *, last: bool) -> None:
    """Train epoch ``epoch``, validate, and report its metrics (test too when ``last``, when the
    job was told to stop after this epoch, or with ``test_every_epoch``, outside the epoch's
    time). A loss that is not finite stops the epoch at once and reports it diverged (the trial
    then ends the launch, unsaved)."""
    t, splits = trainer.t, trainer.splits
    loss_sum, steps = 0.0, 0
    for step_in_epoch, micro_batches in enumerate(t.train_batches(splits.num_train, epoch)):
        loss = float(trainer.train_step(epoch, step_in_epoch, micro_batches).item())
        if not math.isfinite(loss):  # not validated: the metrics are written as null
            unvalidated = {"val_accuracy": math.nan, t.metric: math.nan}
            t.report(epoch, lr=trainer.lr(), train_loss=loss, **unvalidated)
            return
        loss_sum += loss
        steps += 1
        t.log(**{"train/loss": loss, "train/lr": trainer.lr()})
    val_accuracy, val_loss = trainer.evaluate(splits.val_x, splits.val_y)
    metrics = {"lr": trainer.lr(), "train_loss": loss_sum / steps, "val_accuracy": val_accuracy,
               "val_loss": val_loss, "val_samples": int(splits.val_y.shape[0])}
    if last or t.stopping or trainer.config.test_every_epoch:
        with t.untimed():
            metrics["test_accuracy"], metrics["test_loss"] = trainer.evaluate(splits.test_x, splits.test_y)
        metrics["test_samples"] = int(splits.test_y.shape[0])
    t.report(epoch, **metrics)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seer_torch.worker",
        description="Train one trial (run under torchrun). Resumes from DIR/checkpoint.pt when present.",
    )
    parser.add_argument("--trial-dir", help="the trial directory holding config.json (default: "
                        f"${trial.TRIAL_DIR_ENV}, as for any script the tuner launches)")
    parser.add_argument("--until-epoch", type=int,
                        help="train through this epoch (1-based), checkpoint, exit (default: "
                             f"${trial.UNTIL_EPOCH_ENV}, else the config's max_epochs)")
    parser.add_argument("--profile-steps", type=int,
                        help="profile instead of training: time this many optimizer steps after the warm-up "
                             "(--until-epoch is then ignored)")
    parser.add_argument("--profile-out",
                        help="profile mode: JSON result file (default DIR/profile_w<W>.json)")
    parser.add_argument("--write-default-config", action="store_true",
                        help="write a default digits config.json into the trial directory if none exists, "
                             "then exit")
    return parser.parse_args(argv)


@record
def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 also after a divergence or an early exit)."""
    args = _parse_args(argv)
    trial_dir = args.trial_dir or os.environ.get(trial.TRIAL_DIR_ENV)
    if not trial_dir:
        raise ConfigError("--trial-dir", None,
                          f"the trial folder holding config.json (or ${trial.TRIAL_DIR_ENV})")
    trial_dir = os.path.abspath(trial_dir)
    if args.write_default_config:
        write_default_config(trial_dir)
        return 0
    torch.set_num_threads(1)  # one thread per worker: a CPU slot is one process, one thread
    config = TrialConfig.load(trial_dir)
    if args.profile_steps is not None:
        with trial.init(trial_dir, 1, cpu_threads=None) as t:  # the probe trains no epochs of its own
            out = args.profile_out or os.path.join(trial_dir, f"profile_w{t.world_size}.json")
            profile(t, config, args.profile_steps, out)
        return 0
    if args.until_epoch is not None and not 1 <= args.until_epoch <= config.max_epochs:
        raise ConfigError("--until-epoch", args.until_epoch, f"an epoch in 1..max_epochs={config.max_epochs}")
    until_epoch = args.until_epoch
    while True:
        with trial.init(trial_dir, until_epoch, cpu_threads=None) as t:
            train(t, config)
            next_trial = t.next_trial
        if next_trial is None:
            return 0
        # A warm worker (W = 1, kept alive): the tuner handed it another trial. Same process,
        # torch and the dataset already loaded; everything of the previous trial is gone with
        # its Trial and Trainer (the next init re-seeds torch's RNG, builds a fresh model and
        # optimizer, and restores the new trial's checkpoint and RNG states if it has one).
        trial.take_up(next_trial)
        trial_dir, until_epoch = next_trial.trial_dir, next_trial.until_epoch
        config = TrialConfig.load(trial_dir)


if __name__ == "__main__":
    status = main()
    # Everything is written, closed and torn down by now. Skip the interpreter's teardown of
    # torch's module graph (1-2 s per process on a small machine): a launch's cost is what
    # makes resizing expensive (docs/design.md, "Launch cost"). Errors take the normal path above.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status or 0)  # `record` turns a clean SystemExit (--help) into None
