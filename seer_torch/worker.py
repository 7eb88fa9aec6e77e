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

Invariants (see DESIGN.md, "Training invariants"): ``W * micro_batch * accum_steps ==
global_batch``; one permutation of the training set per ``(seed, epoch)``
(:func:`seer_torch.data.epoch_permutation`); rank ``r`` trains on the ``r``-th contiguous
slice of each global batch, in ``accum_steps`` micro-batches, gradients synchronised once per
optimizer step (DDP ``no_sync`` on the others); the loss is the micro-batch mean divided by
``accum_steps`` and DDP averages over ranks; validation and test are sharded so every sample
counts once at every ``W``. Dropout draws from torch's global RNG, re-seeded from ``(seed,
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

This module imports nothing from seer_torch except :mod:`seer_torch.errors`,
:mod:`seer_torch.data` and :mod:`seer_torch.models`.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import numbers
import os
import random
import statistics
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.elastic.multiprocessing.errors import record

from seer_torch.data import (
    BatchPlan,
    Splits,
    augment_crop_flip,
    derive_seed,
    epoch_permutation,
    load_dataset,
    plan_batch,
    rank_slice,
)
from seer_torch.errors import CheckpointError, ConfigError
from seer_torch.runfiles import atomic_write, atomic_write_text, remove_worker_temporaries, write_durable_epoch
from seer_torch.models import build_model, model_hparam_names, validate_model_hparams

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
HEARTBEAT_FILE = "heartbeat"  # rank 0 rewrites it at least every HEARTBEAT_S while training
HEARTBEAT_S = 10.0
CHECKPOINT_FILE = "checkpoint.pt"
#: The checkpoint before the current one, kept as a fallback for a corrupt or truncated one.
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.pt"
#: Optimizer steps at the start of each launch left out of throughput measurements.
WARMUP_STEPS = 3
#: Timed windows of a profile probe; its step time is their median (a shared machine's load
#: bursts move one window, not the median).
PROFILE_WINDOWS = 6
#: Version of the checkpoint layout.
CHECKPOINT_FORMAT = 1

_TRAINING_HPARAMS = frozenset({"lr", "weight_decay", "momentum", "global_batch"})
_SEED_SALT_DROPOUT = 0x5EED_0003

DEFAULT_CONFIG: dict[str, Any] = {
    "configuration": {"lr": 0.1, "weight_decay": 5e-4, "momentum": 0.9, "width": 32, "dropout": 0.1},
    "model": "digits_cnn",
    "dataset": "digits",
    "data_dir": None,
    "global_batch": 64,
    "micro_batch_max": 64,
    "max_epochs": 15,
    "seed": 0,
}


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialConfig:
    """A trial's ``config.json``, validated.

    Attributes:
        trial_id: the trial's name.
        model: model name for :func:`seer_torch.models.build_model`.
        model_hparams: the configuration's model hyperparameters.
        lr: peak learning rate (per optimizer step, on the global-batch mean loss).
        weight_decay: L2 coefficient (coupled, PyTorch SGD).
        momentum: Nesterov momentum coefficient.
        dataset, data_dir: what :func:`seer_torch.data.load_dataset` gets.
        global_batch: samples per optimizer step.
        micro_batch_max: most samples per forward pass on one rank.
        max_epochs: the learning-rate schedule's horizon for this launch, in epochs
            (:class:`LrSchedule`); ``--until-epoch`` may not exceed it.
        seed: experiment seed (weights, data order, dropout, augmentation).
        tensorboard_dir: where rank 0 writes TensorBoard events, or ``None`` for nowhere.
        configuration: the configuration as given (stored in the checkpoint).
        test_every_epoch: evaluate the test split after every epoch, not only the launch's last.
    """

    trial_id: str
    model: str
    model_hparams: Mapping[str, Any]
    lr: float
    weight_decay: float
    momentum: float
    dataset: str
    data_dir: str | None
    global_batch: int
    micro_batch_max: int
    max_epochs: int
    seed: int
    tensorboard_dir: str | None
    configuration: Mapping[str, Any]
    test_every_epoch: bool = False

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrialConfig:
        """Validate a parsed ``config.json``; raises :class:`ConfigError` naming the field."""
        if not isinstance(raw, dict):
            raise ConfigError("config.json", type(raw).__name__, "a JSON object")
        configuration = raw.get("configuration")
        if not isinstance(configuration, dict):
            raise ConfigError("configuration", configuration, "a JSON object of hyperparameters")
        model = raw.get("model")
        hparam_names = model_hparam_names(model)  # raises ConfigError("model.name", ...)
        unknown = sorted(set(configuration) - _TRAINING_HPARAMS - hparam_names)
        if unknown:
            raise ConfigError(
                f"configuration.{unknown[0]}", configuration[unknown[0]],
                f"training hyperparameters {', '.join(sorted(_TRAINING_HPARAMS))} or hyperparameters of model "
                f"{model!r}: {', '.join(sorted(hparam_names))}",
            )
        given = {key: value for key, value in configuration.items() if key in hparam_names}
        try:
            validate_model_hparams(model, given)
        except ConfigError as error:
            raise ConfigError(f"configuration.{error.field}", error.value, error.allowed) from None
        model_hparams = given
        if "lr" not in configuration:
            raise ConfigError("configuration.lr", None, "a positive float (peak learning rate)")
        lr = _real("configuration.lr", configuration["lr"], low=0.0, low_open=True)
        weight_decay = _real("configuration.weight_decay", configuration.get("weight_decay", 0.0), low=0.0)
        momentum = _real("configuration.momentum", configuration.get("momentum", 0.9), low=0.0, high=1.0)
        if "global_batch" in configuration:
            global_batch = _int("configuration.global_batch", configuration["global_batch"], 1)
        else:
            global_batch = _int("global_batch", raw.get("global_batch"), 1)
        tensorboard_dir = raw.get("tensorboard_dir")
        if tensorboard_dir is not None and not isinstance(tensorboard_dir, str):
            raise ConfigError("tensorboard_dir", tensorboard_dir, "a path or null")
        data_dir = raw.get("data_dir")
        if data_dir is not None and not isinstance(data_dir, str):
            raise ConfigError("data_dir", data_dir, "a path or null")
        test_every_epoch = raw.get("test_every_epoch", False)
        if not isinstance(test_every_epoch, bool):
            raise ConfigError("test_every_epoch", test_every_epoch, "true or false")
        dataset = raw.get("dataset")
        if not isinstance(dataset, str):
            raise ConfigError("dataset", dataset, "a dataset name such as 'digits' or 'cifar10'")
        return cls(
            trial_id=str(raw.get("trial_id", "")),
            model=model,
            model_hparams=MappingProxyType(model_hparams),
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            dataset=dataset,
            data_dir=data_dir,
            global_batch=global_batch,
            micro_batch_max=_int("micro_batch_max", raw.get("micro_batch_max", global_batch), 1),
            max_epochs=_int("max_epochs", raw.get("max_epochs"), 1),
            seed=_int("seed", raw.get("seed", 0), 0),
            tensorboard_dir=tensorboard_dir,
            configuration=MappingProxyType(dict(configuration)),
            test_every_epoch=test_every_epoch,
        )

    @classmethod
    def load(cls, trial_dir: str) -> TrialConfig:
        """Read and validate ``trial_dir/config.json``."""
        path = os.path.join(trial_dir, CONFIG_FILE)
        try:
            with open(path, encoding="utf-8") as file:
                raw = json.load(file)
        except FileNotFoundError as error:
            raise ConfigError("--trial-dir", trial_dir, f"a trial directory containing {CONFIG_FILE}") from error
        except json.JSONDecodeError as error:
            raise ConfigError(path, str(error), "valid JSON") from error
        return cls.from_dict(raw)


def _int(field: str, value: object, low: int) -> int:
    if (
        isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value))
        or float(value) != int(value) or int(value) < low
    ):
        raise ConfigError(field, value, f"an integer >= {low}")
    return int(value)


def _real(field: str, value: object, *, low: float, high: float | None = None, low_open: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(float(value))
    if ok:
        number = float(value)
        ok = (number > low if low_open else number >= low) and (high is None or number < high)
    if not ok:
        bounds = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'})"
        raise ConfigError(field, value, f"a finite float in {bounds}")
    return float(value)


# --------------------------------------------------------------------------------------------
# Distributed environment
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the job, from torchrun's environment variables."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Global rank 0: the only rank with side effects (metrics, checkpoint, TensorBoard)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one rank: a process group and a DDP wrapper are needed."""
        return self.world_size > 1

    @classmethod
    def from_environ(cls) -> DistEnv:
        """Read ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` (defaults 0, 0, 1 outside torchrun)."""
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if torch.cuda.is_available():
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        else:
            device = torch.device("cpu")
        return cls(rank, local_rank, world_size, device)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _all_reduce_sum(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


# --------------------------------------------------------------------------------------------
# Training state
# --------------------------------------------------------------------------------------------


def cosine_lr_factor(step: int, total_steps: int) -> float:
    """Factor of the peak learning rate after ``step`` optimizer steps: ``0.5 (1 + cos(pi t))``,
    ``t = min(step, total_steps) / total_steps``; 1 at step 0, 0 at ``total_steps``."""
    progress = min(step, total_steps) / total_steps
    return 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class LrSchedule:
    """The learning-rate schedule: the factor of the peak learning rate after ``step`` optimizer
    steps, a function of the step (at the fixed global batch, so never of ``W``).

    The factor is ``0.5 (1 + cos(pi t))`` of the schedule's progress ``t`` in [0, 1].
    ``segments`` are ``(start_step, start_progress, end_step)``, start steps increasing: from
    ``start_step`` the progress rises linearly from ``start_progress`` to 1 at ``end_step``
    (the horizon) and stays 1 after it. A fresh trial has one segment, ``(0, 0.0, horizon)``:
    the plain cosine from 1 to 0 (:func:`cosine_lr_factor`; no warm-up). When a launch brings
    another horizon (the policy's target was lowered or raised), :meth:`retarget` starts a
    segment at the resume step with the progress reached there: the factor goes on from the
    value it had, without a jump (the cosine's phase goes on, faster or slower), and is exactly
    0 at the new horizon. The segments are saved in the
    checkpoint (``lr_schedule``), so changes compose and a resume at any ``W`` repeats the same
    factors. A schedule that already ended (progress 1) stays at 0 when its horizon is raised.
    """

    segments: tuple[tuple[int, float, int], ...]

    @classmethod
    def cosine(cls, total_steps: int) -> LrSchedule:
        """One cosine from 1 at step 0 to 0 at ``total_steps`` (>= 1)."""
        return cls(((0, 0.0, total_steps),))

    @property
    def end_step(self) -> int:
        """The horizon: the optimizer step at which the factor reaches 0."""
        return self.segments[-1][2]

    def progress(self, step: int) -> float:
        """Progress ``t`` in [0, 1] after ``step`` optimizer steps."""
        start, start_progress, end = next(seg for seg in reversed(self.segments) if seg[0] <= step)
        if step >= end:
            return 1.0
        return start_progress + (1.0 - start_progress) * (step - start) / (end - start)

    def factor(self, step: int) -> float:
        """Factor of the peak learning rate after ``step`` optimizer steps; 0 from the horizon on."""
        return 0.5 * (1.0 + math.cos(math.pi * self.progress(step)))

    def retarget(self, step: int, end_step: int) -> LrSchedule:
        """The schedule whose horizon moves to ``end_step`` at ``step`` (the resume step): the
        same factors through ``step``, then a new segment; ``self`` when the horizon is unchanged.

        Raises:
            ConfigError: ``end_step`` is not after ``step``.
        """
        if end_step == self.end_step:
            return self
        if end_step <= step:
            raise ConfigError("max_epochs", end_step, f"a horizon after the resume step {step} (in optimizer steps)")
        kept = tuple(seg for seg in self.segments if seg[0] < step)
        return LrSchedule(kept + ((step, self.progress(step), end_step),))

    def to_list(self) -> list[list[int | float]]:
        """The segments as lists (what the checkpoint's ``lr_schedule`` holds)."""
        return [list(seg) for seg in self.segments]

    @classmethod
    def from_list(cls, raw: Any) -> LrSchedule:
        """Read :meth:`to_list`'s form back, checked: the first segment starts at step 0 with
        progress 0, start steps increase, each segment ends after it starts, and each starts
        with the progress the one before had there.

        Raises:
            ConfigError: on any other value (field ``lr_schedule``).
        """
        allowed = ("a list of [start_step, start_progress, end_step], the first [0, 0.0, horizon], start steps "
                   "increasing, each end after its start and each start progress the one reached there")
        segments: list[tuple[int, float, int]] = []
        for seg in raw if isinstance(raw, (list, tuple)) else [None]:
            ok = isinstance(seg, (list, tuple)) and len(seg) == 3
            if ok:
                start, progress, end = seg
                ok = (all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
                      and isinstance(progress, (int, float)) and not isinstance(progress, bool)
                      and start < end and 0.0 <= progress <= 1.0)
            if ok and segments:
                ok = start > segments[-1][0] and math.isclose(
                    progress, cls(tuple(segments)).progress(start), rel_tol=0.0, abs_tol=1e-12)
            elif ok:
                ok = start == 0 and progress == 0.0
            if not ok:
                raise ConfigError("lr_schedule", raw, allowed)
            segments.append((int(start), float(progress), int(end)))
        if not segments:
            raise ConfigError("lr_schedule", raw, allowed)
        return cls(tuple(segments))


def cosine_schedule(optimizer: torch.optim.Optimizer, schedule: LrSchedule | int) -> torch.optim.lr_scheduler.LambdaLR:
    """A :class:`~torch.optim.lr_scheduler.LambdaLR` following ``schedule`` (an
    :class:`LrSchedule`, or a plain cosine over that many steps), to be stepped once per
    optimizer step; its saved state is the optimizer step (``last_epoch``)."""
    if isinstance(schedule, int):
        schedule = LrSchedule.cosine(schedule)

    def factor(step: int) -> float:  # a plain function: LambdaLR saves no state for it
        return schedule.factor(step)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class Trainer:
    """Everything one launch trains with. Counters: ``epoch`` = epochs completed, ``step`` =
    optimizer steps completed, ``samples_seen`` = ``step * global_batch``."""

    config: TrialConfig
    env: DistEnv
    splits: Splits
    plan: BatchPlan
    model: nn.Module  # unwrapped
    ddp_model: nn.Module  # DDP wrapper, or the model itself at W = 1
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    steps_per_epoch: int
    lr_schedule: LrSchedule  # what ``scheduler`` follows; saved in the checkpoint
    epoch: int = 0
    step: int = 0
    samples_seen: int = 0
    sample_log: Any = None  # open text file for SEER_RECORD_SAMPLES, or None

    def lr(self) -> float:
        """Current learning rate of the (single) parameter group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def train_step(self, epoch: int, step_in_epoch: int, permutation: torch.Tensor) -> torch.Tensor:
        """One optimizer step on global batch ``step_in_epoch`` of ``epoch`` (1-based).

        Returns:
            The loss of the global batch (mean over its samples; over all ranks), a 0-d float
            tensor on the device. Counters and the scheduler advance by one step.
        """
        plan, env, config = self.plan, self.env, self.config
        start = step_in_epoch * plan.global_batch + env.rank * plan.local_batch
        local_index = permutation[start:start + plan.local_batch]
        if self.sample_log is not None:
            self.sample_log.write(json.dumps({
                "epoch": epoch, "step_in_epoch": step_in_epoch, "step": self.step + 1, "rank": env.rank,
                "local_rank": env.local_rank, "world_size": env.world_size, "micro_batch": plan.micro_batch,
                "accum_steps": plan.accum_steps, "lr": self.lr(), "indices": local_index.tolist(),
            }) + "\n")
            self.sample_log.flush()
        x = self.splits.train_x[local_index]
        y = self.splits.train_y[local_index]
        x = x.to(env.device, non_blocking=True)
        y = y.to(env.device, non_blocking=True)
        if self.splits.augment:
            x = augment_crop_flip(
                x, seed=config.seed, epoch=epoch, step=step_in_epoch, global_batch=plan.global_batch,
                offset=env.rank * plan.local_batch,
            )
        self.optimizer.zero_grad(set_to_none=True)
        local_loss = torch.zeros((), device=env.device)
        for micro in range(plan.accum_steps):
            part = slice(micro * plan.micro_batch, (micro + 1) * plan.micro_batch)
            last = micro == plan.accum_steps - 1
            sync = contextlib.nullcontext() if last or not env.distributed else self.ddp_model.no_sync()
            with sync:
                loss = nn.functional.cross_entropy(self.ddp_model(x[part]), y[part]) / plan.accum_steps
                loss.backward()
            local_loss += loss.detach()
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.samples_seen += plan.global_batch
        global_loss = _all_reduce_sum(local_loss, env)
        return global_loss / env.world_size

    @torch.no_grad()
    def evaluate(self, x_all: torch.Tensor, y_all: torch.Tensor) -> tuple[float, int]:
        """Accuracy on a split sharded over ranks (each sample counted once at every ``W``).

        Args:
            x_all, y_all: the whole split, images ``(N, C, H, W)`` and labels ``(N,)``.

        Returns:
            ``(accuracy in [0, 1], N)`` with ``N`` summed over ranks.
        """
        env = self.env
        if env.distributed:  # every rank evaluates rank 0's BatchNorm statistics (those saved)
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)
        self.model.eval()  # the unwrapped model: DDP's forward would sync buffers per call
        part = rank_slice(int(y_all.shape[0]), env.world_size, env.rank)
        x_part, y_part = x_all[part], y_all[part]
        correct = torch.zeros((), dtype=torch.int64, device=env.device)
        batch = max(self.config.micro_batch_max, 1)
        for begin in range(0, int(y_part.shape[0]), batch):
            x = x_part[begin:begin + batch].to(env.device, non_blocking=True)
            y = y_part[begin:begin + batch].to(env.device, non_blocking=True)
            correct += (self.model(x).argmax(dim=1) == y).sum()
        self.model.train()
        totals = torch.stack([correct, torch.tensor(int(y_part.shape[0]), dtype=torch.int64, device=env.device)])
        totals = _all_reduce_sum(totals, env)
        count = int(totals[1].item())
        return (float(totals[0].item()) / count if count else float("nan")), count

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint: independent of ``W``; see the module docstring."""
        rng: dict[str, Any] = {"torch_cpu": torch.get_rng_state(), "python": random.getstate()}
        if self.env.device.type == "cuda":
            rng["torch_cuda"] = torch.cuda.get_rng_state(self.env.device)
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "lr_schedule": self.lr_schedule.to_list(),
            "epoch": self.epoch,
            "step": self.step,
            "samples_seen": self.samples_seen,
            "rng": rng,
            "configuration": dict(self.config.configuration),
            "trial_id": self.config.trial_id,
            "global_batch": self.plan.global_batch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (strict; call before wrapping in DDP)."""
        if state.get("global_batch") != self.plan.global_batch:
            raise ConfigError(
                "global_batch", self.plan.global_batch,
                f"the checkpoint's global batch {state.get('global_batch')} (it is fixed for a trial)",
            )
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])
        self.samples_seen = int(state["samples_seen"])
        if self.step != self.epoch * self.steps_per_epoch or self.scheduler.last_epoch != self.step:
            raise ValueError(
                f"inconsistent checkpoint: epoch {self.epoch}, step {self.step}, scheduler step "
                f"{self.scheduler.last_epoch}, {self.steps_per_epoch} steps per epoch"
            )
        rng = state["rng"]
        torch.set_rng_state(rng["torch_cpu"].cpu())
        if "torch_cuda" in rng and self.env.device.type == "cuda":
            torch.cuda.set_rng_state(rng["torch_cuda"].cpu(), self.env.device)
        random.setstate(_as_python_random_state(rng["python"]))


def _as_python_random_state(state: Any) -> tuple:
    version, internal, gauss = state
    return (int(version), tuple(int(v) for v in internal), gauss)


def _lr_schedule(horizon_step: int, checkpoint: dict[str, Any] | None) -> LrSchedule:
    """The schedule of this launch: a cosine to ``horizon_step`` for a fresh trial; the
    checkpoint's, re-anchored at its step when this launch's horizon differs
    (:meth:`LrSchedule.retarget`). A checkpoint without ``lr_schedule`` (written before it was
    saved) ran one cosine to the horizon in ``config.json``."""
    if checkpoint is None:
        return LrSchedule.cosine(horizon_step)
    saved = checkpoint.get("lr_schedule")
    schedule = LrSchedule.from_list(saved) if saved is not None else LrSchedule.cosine(horizon_step)
    return schedule.retarget(int(checkpoint["step"]), horizon_step)


def build_trainer(config: TrialConfig, env: DistEnv, checkpoint: dict[str, Any] | None) -> Trainer:
    """Load the data, build model, optimizer and schedule, restore ``checkpoint`` if given,
    and wrap the model in DDP when ``W > 1``."""
    plan = plan_batch(config.global_batch, env.world_size, config.micro_batch_max)
    splits = load_dataset(config.dataset, config.data_dir)
    steps_per_epoch = splits.num_train // config.global_batch
    if steps_per_epoch < 1:
        raise ConfigError("global_batch", config.global_batch, f"at most the {splits.num_train} training samples")
    torch.manual_seed(config.seed)  # identical initial weights on every rank and at every W
    model = build_model(
        config.model, num_classes=splits.num_classes, in_channels=splits.in_channels,
        image_size=splits.image_size, **config.model_hparams,
    ).to(env.device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
        nesterov=config.momentum > 0,
    )
    lr_schedule = _lr_schedule(config.max_epochs * steps_per_epoch, checkpoint)
    scheduler = cosine_schedule(optimizer, lr_schedule)
    trainer = Trainer(config, env, splits, plan, model, model, optimizer, scheduler, steps_per_epoch, lr_schedule)
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint)
    if env.distributed:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [env.device.index] if env.device.type == "cuda" else None
        # Buffers (BatchNorm statistics) are broadcast from rank 0 at wrap time and before every
        # evaluation, not at every forward: rank 0's statistics only ever come from its own
        # micro-batches either way, so a per-forward broadcast would buy nothing but a collective.
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
            sync = {"forward_sync_buffers": False}
        else:
            sync = {"broadcast_buffers": False}
        trainer.ddp_model = DistributedDataParallel(model, device_ids=device_ids, **sync)
    return trainer


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _append_line(path: str, record_: dict[str, Any]) -> None:
    """Append one complete JSON line in one write call (no fsync)."""
    line = json.dumps(record_, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as file:
        file.write(line)
        file.flush()


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
    if not isinstance(model, dict) or not model or not all(isinstance(v, torch.Tensor) for v in model.values()):
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


def resume_checkpoint(path: str, device: torch.device, *, log: bool = True) -> tuple[dict[str, Any] | None, str | None]:
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
            f"no usable checkpoint: {path} is unusable ({why}) and there is no previous checkpoint {previous}; "
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
            f"{previous} at epoch {state['epoch']} (step {state['step']}); the epochs after it are trained again",
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
            if isinstance(entry, dict) and isinstance(entry.get("epoch"), int) and entry["epoch"] <= keep_through_epoch:
                kept.append(json.dumps(entry, allow_nan=False) + "\n")
    atomic_write_text(path, "".join(kept))


def write_default_config(trial_dir: str) -> bool:
    """Write :data:`DEFAULT_CONFIG` (digits) to ``trial_dir/config.json`` unless one exists.

    Returns:
        Whether a file was written.
    """
    os.makedirs(trial_dir, exist_ok=True)
    path = os.path.join(trial_dir, CONFIG_FILE)
    if os.path.exists(path):
        return False
    config = dict(DEFAULT_CONFIG)
    config["trial_id"] = os.path.basename(os.path.abspath(trial_dir))
    config["tensorboard_dir"] = os.path.join(os.path.abspath(trial_dir), "tensorboard")
    atomic_write_text(path, json.dumps(config, indent=2) + "\n")
    return True


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def _seed_epoch(config: TrialConfig, env: DistEnv, epoch: int) -> None:
    """Seed torch's global RNG (dropout) from ``(seed, epoch, rank)``."""
    torch.manual_seed(derive_seed(_SEED_SALT_DROPOUT, config.seed, epoch, env.rank))


def train(trial_dir: str, until_epoch: int, config: TrialConfig, env: DistEnv) -> None:
    """Train from the checkpoint (if any) through epoch ``until_epoch``; see the module docstring."""
    if until_epoch > config.max_epochs:
        raise ConfigError("--until-epoch", until_epoch, f"an epoch <= max_epochs={config.max_epochs}")
    checkpoint_path = os.path.join(trial_dir, CHECKPOINT_FILE)
    metrics_path = os.path.join(trial_dir, METRICS_FILE)
    # A corrupt or truncated checkpoint.pt falls back to checkpoint.prev.pt; metrics and
    # TensorBoard are cut back to the checkpoint actually loaded (start_epoch, trainer.step).
    checkpoint, resumed_from = resume_checkpoint(checkpoint_path, env.device, log=env.is_main)
    start_epoch = int(checkpoint["epoch"]) if checkpoint is not None else 0
    if env.is_main:
        # What a killed writer left goes; checkpoint.json names the checkpoint this launch
        # resumes from (a writer killed between its checkpoint and checkpoint.json, or a
        # checkpoint.pt passed over for checkpoint.prev.pt, left it saying something else).
        remove_worker_temporaries(trial_dir)
        write_durable_epoch(trial_dir, start_epoch, int(checkpoint["step"]) if checkpoint is not None else 0)
    if until_epoch <= start_epoch:
        return
    plan_batch(config.global_batch, env.world_size, config.micro_batch_max)  # fail before any set-up
    _init_process_group(env)
    trainer = build_trainer(config, env, checkpoint)
    del checkpoint
    plan = trainer.plan
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
    try:
        trainer.model.train()
        train_start_unix_s = time.time()
        heartbeat_unix_s = _heartbeat(trial_dir) if env.is_main else 0.0
        launch_steps = 0
        for epoch in range(start_epoch + 1, until_epoch + 1):
            _seed_epoch(config, env, epoch)
            permutation = epoch_permutation(config.seed, epoch, trainer.splits.num_train)
            _synchronize(env.device)
            epoch_start = time.perf_counter()
            measure_start, measured_steps = epoch_start, 0
            loss_sum = 0.0
            for step_in_epoch in range(trainer.steps_per_epoch):
                if launch_steps == WARMUP_STEPS and trainer.steps_per_epoch > WARMUP_STEPS and epoch == start_epoch + 1:
                    _synchronize(env.device)
                    measure_start, measured_steps = time.perf_counter(), 0
                loss = float(trainer.train_step(epoch, step_in_epoch, permutation).item())
                launch_steps += 1
                measured_steps += 1
                if env.is_main and time.time() - heartbeat_unix_s > HEARTBEAT_S:
                    heartbeat_unix_s = _heartbeat(trial_dir)
                if step_delay_s > 0:
                    time.sleep(step_delay_s)
                if not math.isfinite(loss):
                    if env.is_main:
                        _append_line(metrics_path, _diverged_line(trainer, epoch, env, loss))
                        if writer is not None:
                            writer.flush()
                    return
                loss_sum += loss
                if writer is not None:
                    writer.add_scalar("train/loss", loss, trainer.step)
                    writer.add_scalar("train/lr", trainer.lr(), trainer.step)
            _synchronize(env.device)
            train_end = time.perf_counter()
            val_accuracy, val_samples = trainer.evaluate(trainer.splits.val_x, trainer.splits.val_y)
            _synchronize(env.device)
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
                "train_start_unix_s": train_start_unix_s,
            }
            if epoch == until_epoch or config.test_every_epoch:
                test_accuracy, test_samples = trainer.evaluate(trainer.splits.test_x, trainer.splits.test_y)
                line["test_accuracy"] = test_accuracy
                line["test_samples"] = test_samples
            line["time_unix_s"] = time.time()
            if env.is_main:
                _append_line(metrics_path, line)
                if writer is not None:
                    writer.add_scalar("val/accuracy", val_accuracy, trainer.step)
                    writer.add_scalar("train/epoch_loss", line["train_loss"], trainer.step)
                    writer.add_scalar("perf/throughput_samples_per_s", throughput, trainer.step)
                    writer.add_scalar("perf/world_size", env.world_size, trainer.step)
                    if "test_accuracy" in line:
                        writer.add_scalar("test/accuracy", line["test_accuracy"], trainer.step)
                    writer.flush()
        if env.is_main:
            # Keep the checkpoint resumed from as the previous one, unless it is already the
            # previous one (the current one was unusable and must not become the fallback).
            save_checkpoint(checkpoint_path, trainer.state_dict(),
                            rotate=resumed_from != previous_checkpoint_path(checkpoint_path))
    finally:
        if writer is not None:
            writer.close()
        if trainer.sample_log is not None:
            trainer.sample_log.close()


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


def profile(steps: int, out_path: str, config: TrialConfig, env: DistEnv) -> None:
    """Measure throughput at this world size: :data:`WARMUP_STEPS` warm-up steps, then
    ``steps`` timed optimizer steps (wrapping around epochs) in :data:`PROFILE_WINDOWS`
    windows, then one timed validation pass. ``step_time_s`` is the median over the windows of
    their seconds per step, so that a burst of load on a shared machine during one window does
    not move it (``step_time_windows_s`` lists them all). Rank 0 writes ``out_path`` (JSON). No
    checkpoint, metrics or TensorBoard."""
    if steps < 1:
        raise ConfigError("--profile-steps", steps, "an integer >= 1")
    plan_batch(config.global_batch, env.world_size, config.micro_batch_max)  # fail before any set-up
    _init_process_group(env)
    trainer = build_trainer(config, env, None)
    trainer.model.train()
    total = WARMUP_STEPS + steps
    window = max(1, steps // PROFILE_WINDOWS)
    train_start_unix_s = time.time()
    window_start, window_steps = time.perf_counter(), 0
    windows: list[float] = []  # seconds per step of each timed window
    train_s = 0.0  # all timed steps
    permutation, permutation_epoch = None, 0
    for index in range(total):
        epoch, step_in_epoch = 1 + index // trainer.steps_per_epoch, index % trainer.steps_per_epoch
        if epoch != permutation_epoch:
            _seed_epoch(config, env, epoch)
            permutation, permutation_epoch = epoch_permutation(config.seed, epoch, trainer.splits.num_train), epoch
        if index == WARMUP_STEPS:
            _synchronize(env.device)
            window_start, window_steps = time.perf_counter(), 0
        trainer.train_step(epoch, step_in_epoch, permutation)
        if index >= WARMUP_STEPS:
            window_steps += 1
            if window_steps == window or index == total - 1:
                _synchronize(env.device)
                now = time.perf_counter()
                windows.append((now - window_start) / window_steps)
                train_s += now - window_start
                window_start, window_steps = now, 0
    step_time_s = statistics.median(windows)
    eval_start = time.perf_counter()
    trainer.evaluate(trainer.splits.val_x, trainer.splits.val_y)
    _synchronize(env.device)
    eval_time_s = time.perf_counter() - eval_start
    if env.is_main:
        result = {
            "trial_id": config.trial_id,
            "model": config.model,
            "dataset": config.dataset,
            "world_size": env.world_size,
            "global_batch": trainer.plan.global_batch,
            "micro_batch": trainer.plan.micro_batch,
            "accum_steps": trainer.plan.accum_steps,
            "throughput_samples_per_s": trainer.plan.global_batch / step_time_s,
            "step_time_s": step_time_s,
            "step_time_windows_s": windows,
            "measured_train_s": train_s,
            "eval_time_s": eval_time_s,
            "train_start_unix_s": train_start_unix_s,
            "warmup_steps": WARMUP_STEPS,
            "measured_steps": steps,
            "num_train_samples": trainer.splits.num_train,
            "num_val_samples": int(trainer.splits.val_y.shape[0]),
            "device": env.device.type,
        }
        atomic_write_text(out_path, json.dumps(result, indent=2) + "\n")


def _init_process_group(env: DistEnv) -> None:
    if not env.distributed or dist.is_initialized():
        return
    if env.device.type == "cuda":
        torch.cuda.set_device(env.device)
        dist.init_process_group("nccl", device_id=env.device)
    else:
        dist.init_process_group("gloo")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m seer_torch.worker",
        description="Train one trial (run under torchrun). Resumes from DIR/checkpoint.pt when present.",
    )
    parser.add_argument("--trial-dir", required=True, help="the trial directory holding config.json")
    parser.add_argument("--until-epoch", type=int, help="train through this epoch (1-based), checkpoint, exit")
    parser.add_argument("--profile-steps", type=int,
                        help="profile instead of training: time this many optimizer steps after the warm-up "
                             "(--until-epoch is then ignored)")
    parser.add_argument("--profile-out", help="profile mode: JSON result file (default DIR/profile_w<W>.json)")
    parser.add_argument("--write-default-config", action="store_true",
                        help="write a default digits config.json into the trial directory if none exists, then exit")
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
    # makes resizing expensive (DESIGN.md, "Launch cost"). Errors take the normal path above.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
