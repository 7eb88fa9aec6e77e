"""What one launch trains with: where this process sits in the job (:class:`DistEnv`), the
model, optimizer, schedule and counters (:class:`Trainer`, one optimizer step at a time, and
sharded evaluation), built and restored from a checkpoint by :func:`build_trainer`.

The invariants (global batch fixed at every ``W``, one permutation per ``(seed, epoch)``,
rank ``r`` on the ``r``-th slice, dropout re-seeded per ``(seed, epoch, rank)``) are in
:mod:`seer_torch.worker`'s docstring; the data order itself (which samples each rank trains at
each step, in which micro-batches) is :mod:`seer_torch.data`'s (:func:`~seer_torch.data.rank_train_batch`).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import random
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from seer_torch.data import (
    BatchPlan,
    Splits,
    augment_crop_flip,
    derive_seed,
    load_dataset,
    plan_batch,
    rank_slice,
    rank_train_batch,
    steps_per_epoch,
)
from seer_torch.errors import ConfigError
from seer_torch.models import build_model
from seer_torch.training.checkpoint import CHECKPOINT_FORMAT
from seer_torch.training.config import TrialConfig
from seer_torch.training.schedule import LrSchedule, cosine_schedule, launch_lr_schedule

#: Optimizer steps at the start of each launch left out of throughput measurements.
WARMUP_STEPS = 3

_SEED_SALT_DROPOUT = 0x5EED_0003


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


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def all_reduce_sum(tensor: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


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
        """One optimizer step on global batch ``step_in_epoch`` of ``epoch`` (1-based): this
        rank's part and its micro-batches from :func:`seer_torch.data.rank_train_batch`.

        Returns:
            The loss of the global batch (mean over its samples; over all ranks), a 0-d float
            tensor on the device. Counters and the scheduler advance by one step.
        """
        plan, env, config = self.plan, self.env, self.config
        batch = rank_train_batch(permutation, step_in_epoch, plan, env.rank)
        local_index = batch.indices
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
                offset=batch.offset,
            )
        self.optimizer.zero_grad(set_to_none=True)
        local_loss = torch.zeros((), device=env.device)
        for micro, part in enumerate(batch.micro_batches):
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
        global_loss = all_reduce_sum(local_loss, env)
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
        local_count = torch.tensor(int(y_part.shape[0]), dtype=torch.int64, device=env.device)
        totals = torch.stack([correct, local_count])
        totals = all_reduce_sum(totals, env)
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


def build_trainer(config: TrialConfig, env: DistEnv, checkpoint: dict[str, Any] | None) -> Trainer:
    """Load the data, build model, optimizer and schedule, restore ``checkpoint`` if given,
    and wrap the model in DDP when ``W > 1``."""
    plan = plan_batch(config.global_batch, env.world_size, config.micro_batch_max)
    splits = load_dataset(config.dataset, config.data_dir)
    num_steps = steps_per_epoch(splits.num_train, config.global_batch)
    if num_steps < 1:
        raise ConfigError("global_batch", config.global_batch,
                          f"at most the {splits.num_train} training samples")
    torch.manual_seed(config.seed)  # identical initial weights on every rank and at every W
    model = build_model(
        config.model, num_classes=splits.num_classes, in_channels=splits.in_channels,
        image_size=splits.image_size, **config.model_hparams,
    ).to(env.device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
        nesterov=config.momentum > 0,
    )
    lr_schedule = launch_lr_schedule(config.max_epochs * num_steps, checkpoint)
    scheduler = cosine_schedule(optimizer, lr_schedule)
    trainer = Trainer(config, env, splits, plan, model, model, optimizer, scheduler, num_steps,
                      lr_schedule)
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


def seed_epoch(config: TrialConfig, env: DistEnv, epoch: int) -> None:
    """Seed torch's global RNG (dropout) from ``(seed, epoch, rank)``."""
    torch.manual_seed(derive_seed(_SEED_SALT_DROPOUT, config.seed, epoch, env.rank))


def init_process_group(env: DistEnv) -> None:
    if not env.distributed or dist.is_initialized():
        return
    if env.device.type == "cuda":
        torch.cuda.set_device(env.device)
        dist.init_process_group("nccl", device_id=env.device)
    else:
        dist.init_process_group("gloo")
