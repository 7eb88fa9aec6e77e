"""What the built-in worker trains with, on the trial API (:mod:`seer_torch.trial`): the model,
optimizer and learning-rate schedule built from ``config.json`` and restored from the
checkpoint's state (:func:`build_trainer`), one optimizer step on the micro-batches the trial
hands out (:meth:`Trainer.train_step`), sharded evaluation (:meth:`Trainer.evaluate`), and
the state the worker keeps in the trial's checkpoint (:meth:`Trainer.state`, checked by
:func:`state_problem`).

The data order, the batch plan, the process group, the checkpoint file and the per-epoch
dropout seeds are the trial's: this module only says what a step computes. The invariants
are in :mod:`seer_torch.worker`'s docstring.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from seer_torch.data import Splits, augment_crop_flip, load_dataset, steps_per_epoch
from seer_torch.errors import CheckpointError, ConfigError
from seer_torch.models import build_model
from seer_torch.training.config import TrialConfig
from seer_torch.training.schedule import LrSchedule, cosine_schedule, follow, launch_lr_schedule
from seer_torch.trial import WARMUP_STEPS, Trial

__all__ = ["WARMUP_STEPS", "STATE_KEYS", "Trainer", "build_trainer", "state_problem"]

#: What the worker keeps under the checkpoint's ``state``.
STATE_KEYS = ("model", "optimizer", "scheduler", "lr_schedule")


@dataclass
class Trainer:
    """Everything one launch of the built-in worker trains with.

    Attributes:
        t: the trial (batch plan, ranks, counters, reporting).
        config: the validated ``config.json``.
        splits: the dataset, whole, on the CPU.
        model: the unwrapped model, on ``t.device``.
        ddp_model: its DDP wrapper at ``W > 1``, the model itself at ``W = 1``.
        optimizer: SGD with Nesterov momentum (coupled weight decay).
        scheduler: ``LambdaLR`` following ``lr_schedule``, stepped once per optimizer step.
        steps_per_epoch: optimizer steps in a whole epoch.
        lr_schedule: the schedule's segments (saved in the checkpoint).
    """

    t: Trial
    config: TrialConfig
    splits: Splits
    model: nn.Module
    ddp_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    steps_per_epoch: int
    lr_schedule: LrSchedule

    def retarget(self, max_epochs: int) -> None:
        """Move the learning-rate schedule's horizon to ``max_epochs`` at the step trained (a
        kept-alive job handed a new target whose re-plan moved the horizon while it was
        parked): the cosine re-anchored there exactly as a relaunch from this step's checkpoint
        re-anchors it (:func:`~seer_torch.training.schedule.launch_lr_schedule`); nothing when
        the horizon is unchanged.

        Raises:
            ConfigError: the new horizon is not after the step trained.
        """
        schedule = self.lr_schedule.retarget(self.t.step, max_epochs * self.steps_per_epoch)
        if schedule is not self.lr_schedule:
            self.lr_schedule = schedule
            follow(self.scheduler, schedule)

    def lr(self) -> float:
        """The learning rate of the (single) parameter group now: the next step's."""
        return float(self.optimizer.param_groups[0]["lr"])

    def train_step(self, epoch: int, step_in_epoch: int,
                   micro_batches: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """One optimizer step on this rank's micro-batches of global batch ``step_in_epoch`` of
        ``epoch`` (1-based), as :meth:`Trial.train_batches` hands them out.

        The rank's part is gathered and augmented at once (CIFAR-10: :func:`augment_crop_flip`
        with the part's offset in the global batch, so every row gets the global batch's draw at
        any ``W``); each micro-batch's mean cross-entropy is divided by ``accum_steps`` and
        back-propagated with DDP's synchronisation held off but for the last
        (:meth:`Trial.accumulate`); then one SGD step and one scheduler step.

        Returns:
            The global batch's loss (the mean over its samples, over all ranks), a 0-d float
            tensor on the device.
        """
        t, splits = self.t, self.splits
        indices = micro_batches[0] if len(micro_batches) == 1 else torch.cat(micro_batches)
        x = splits.train_x[indices].to(t.device, non_blocking=True)
        y = splits.train_y[indices].to(t.device, non_blocking=True)
        if splits.augment:
            x = augment_crop_flip(x, seed=t.seed, epoch=epoch, step=step_in_epoch,
                                  global_batch=t.global_batch, offset=t.rank * t.micro_batch * t.accum_steps)
        self.optimizer.zero_grad(set_to_none=True)
        local_loss = torch.zeros((), device=t.device)
        size = t.micro_batch
        for micro, _ in enumerate(t.accumulate(self.ddp_model, micro_batches)):
            part = slice(micro * size, (micro + 1) * size)
            loss = nn.functional.cross_entropy(self.ddp_model(x[part]), y[part]) / t.accum_steps
            loss.backward()
            local_loss += loss.detach()
        self.optimizer.step()
        self.scheduler.step()
        return t.all_reduce_sum(local_loss) / t.world_size

    def evaluate(self, x_all: torch.Tensor, y_all: torch.Tensor) -> tuple[float, float]:
        """Accuracy and mean cross-entropy over a whole split, sharded over ranks
        (:meth:`Trial.evaluate_sharded`: each sample counted once at every ``W``).

        Args:
            x_all, y_all: the split, inputs ``(N, ...)`` and labels ``(N,)``, on the CPU.

        Returns:
            ``(accuracy in [0, 1], mean loss in nats)`` over the ``N`` samples.
        """
        t = self.t
        if t.world_size > 1:  # every rank evaluates rank 0's BatchNorm statistics (those saved)
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)
        self.model.eval()  # the unwrapped model: DDP's forward would sync buffers per call

        def score(idx: torch.Tensor) -> torch.Tensor:  # sums over the samples idx: correct, loss
            x = x_all[idx].to(t.device, non_blocking=True)
            y = y_all[idx].to(t.device, non_blocking=True)
            logits = self.model(x)
            loss = nn.functional.cross_entropy(logits, y, reduction="sum").double()
            return torch.stack([(logits.argmax(dim=1) == y).sum().double(), loss])

        accuracy, loss = t.evaluate_sharded(int(y_all.shape[0]), score)
        self.model.train()
        return accuracy, loss

    def state(self) -> dict[str, Any]:
        """What the worker saves (:meth:`Trial.save`): the unwrapped model's, the optimizer's
        and the scheduler's state dicts and the schedule's segments; nothing depends on ``W``."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "lr_schedule": self.lr_schedule.to_list(),
        }


def state_problem(checkpoint: dict[str, Any]) -> str:
    """The worker's test of a loaded checkpoint (``check`` of :meth:`Trial.load`): ``""`` when
    its ``state`` is whole, else what is wrong. Every epoch has the same number of steps
    (``step`` a multiple of ``epoch``), the scheduler stands at ``step``, the schedule's last
    change is not after it, the model is a non-empty dictionary of tensors and the optimizer's
    state has ``state`` and ``param_groups``."""
    state, epoch, step = checkpoint["state"], checkpoint["epoch"], checkpoint["step"]
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        return "missing " + ", ".join(missing)
    if step < epoch or step % epoch:
        return f"inconsistent counters: {epoch} epochs in {step} steps"
    scheduler = state["scheduler"]
    if not isinstance(scheduler, dict) or scheduler.get("last_epoch") != step:
        last = scheduler.get("last_epoch") if isinstance(scheduler, dict) else scheduler
        return f"the scheduler is at step {last!r}, the checkpoint at step {step}"
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
    return ""


#: The last dataset this process loaded: a warm worker handed another trial of the same run
#: reuses it (training reads it by index, which copies; nothing writes into it).
_LOADED_SPLITS: dict[tuple[str, str | None], Splits] = {}


def _load_splits(dataset: str, data_dir: str | None) -> Splits:
    """:func:`seer_torch.data.load_dataset`, once per process for the same ``(dataset, data_dir)``."""
    key = (dataset, data_dir)
    if key not in _LOADED_SPLITS:
        _LOADED_SPLITS.clear()
        _LOADED_SPLITS[key] = load_dataset(dataset, data_dir)
    return _LOADED_SPLITS[key]


def build_trainer(t: Trial, config: TrialConfig, state: dict[str, Any] | None) -> Trainer:
    """Load the data, build model, optimizer and schedule, restore ``state`` (what
    :meth:`Trial.load` returned, or ``None``), and wrap the model in DDP when ``W > 1``.

    Raises:
        ConfigError: fewer training samples than one global batch.
        CheckpointError: the checkpoint's steps do not fit this dataset's steps per epoch.
    """
    splits = _load_splits(config.dataset, config.data_dir)
    num_steps = steps_per_epoch(splits.num_train, config.global_batch)
    if num_steps < 1:
        raise ConfigError("global_batch", config.global_batch,
                          f"at most the {splits.num_train} training samples")
    if state is not None and t.step != t.start_epoch * num_steps:
        raise CheckpointError(f"the checkpoint in {t.trial_dir} holds {t.start_epoch} epochs in {t.step} "
                              f"steps, but an epoch of {config.dataset} has {num_steps} steps")
    torch.manual_seed(config.seed)  # identical initial weights on every rank and at every W
    model = build_model(
        config.model, num_classes=splits.num_classes, input_shape=splits.input_shape, **config.model_hparams,
    ).to(t.device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
        nesterov=config.momentum > 0,
    )
    saved_schedule = state["lr_schedule"] if state is not None else None
    lr_schedule = launch_lr_schedule(config.max_epochs * num_steps, saved_schedule, t.step)
    scheduler = cosine_schedule(optimizer, lr_schedule)
    if state is not None:
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    # Buffers (BatchNorm statistics) are broadcast from rank 0 at wrap time and before every
    # evaluation, not at every forward: rank 0's statistics only ever come from its own
    # micro-batches either way, so a per-forward broadcast would buy nothing but a collective.
    from torch.nn.parallel import DistributedDataParallel

    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        sync = {"forward_sync_buffers": False}
    else:
        sync = {"broadcast_buffers": False}
    ddp_model = t.wrap(model, **sync)
    return Trainer(t, config, splits, model, ddp_model, optimizer, scheduler, num_steps, lr_schedule)
