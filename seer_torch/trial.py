"""The trial API: what a user's torchrun training script calls to be tuned by ``seer tune``.

The tuner launches the script as ``torchrun --nproc-per-node W SCRIPT ARGS`` with two
environment variables, ``SEER_TRIAL_DIR`` (the trial's folder, holding ``config.json``) and
``SEER_UNTIL_EPOCH`` (train through this epoch, then save and exit), and relaunches it at
another ``W`` from its checkpoint when it resizes the trial. The script's learning curve must
not depend on ``W``; this module gives it the pieces that make that true. A complete script::

    import torch
    import seer_torch.trial as trial

    with trial.init() as t:                                   # process group, rank, device
        x, y, n_train = load_my_data()                        # the same tensors on every rank
        model = build(t.config["width"]).to(t.device)
        opt = torch.optim.AdamW(model.parameters(), lr=t.config["lr"])
        state = t.load()                                      # None for a fresh trial
        if state is not None:
            model.load_state_dict(state["model"]); opt.load_state_dict(state["optimizer"])
        ddp = t.wrap(model)                                   # DDP at W > 1, the model at W = 1
        save = lambda: {"model": model.state_dict(), "optimizer": opt.state_dict()}
        for epoch in t.epochs(checkpoint=save):              # start+1 .. until_epoch
            for batch in t.train_batches(n_train, epoch):     # one optimizer step per item
                opt.zero_grad()
                for idx in t.accumulate(ddp, batch):          # this rank's micro-batches
                    loss = loss_fn(ddp(x[idx]), y[idx]) / t.accum_steps
                    loss.backward()
                opt.step()
            (acc,) = t.evaluate_sharded(n_val, lambda idx: (model(xv[idx]).argmax(1) == yv[idx]).sum())
            t.report(epoch, val_accuracy=acc)                  # rank 0 writes metrics.jsonl

What stays the same at every ``W`` (docs/design.md, "Training invariants"): the global batch
(``W x micro_batch x accum_steps``, :func:`seer_torch.data.plan_batch`), one permutation of the
training set per ``(seed, epoch)`` cut into global batches in order, each rank training its
contiguous part (:func:`seer_torch.data.rank_train_batch`), the loss averaged over the global
batch (divide each micro-batch's mean by ``accum_steps``; DDP averages over ranks), and
evaluation over every sample once (:func:`seer_torch.data.rank_slice`, counts summed over ranks).
An "epoch" is whatever fixed unit of training the script counts: a pass over the data, or N
optimizer steps for large data.

Files in the trial folder (the same protocol as the built-in worker, :mod:`seer_torch.worker`):
``config.json`` (read; written by the tuner), ``metrics.jsonl`` (one line per epoch, rank 0),
``checkpoint.pt`` / ``checkpoint.prev.pt`` / ``checkpoint.json`` (rank 0, at the end of each
launch), ``heartbeat`` (rank 0 touches it; the tuner's hang detection reads its time).
Side effects happen on rank 0 only; every rank must call every method in the same order
(several run collectives at ``W > 1``).

Imports nothing from seer_torch above the worker layer: :mod:`seer_torch.errors`,
:mod:`seer_torch.data`, :mod:`seer_torch.runfiles` and :mod:`seer_torch.training`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from seer_torch import data
from seer_torch.errors import CheckpointError, ConfigError
from seer_torch.runfiles import remove_worker_temporaries, write_durable_epoch
from seer_torch.training.checkpoint import (
    CHECKPOINT_FILE,
    PREVIOUS_CHECKPOINT_FILE,
    save_checkpoint,
    truncate_metrics,
)
from seer_torch.training.trainer import DistEnv, init_process_group, synchronize

__all__ = ["Trial", "init", "TRIAL_DIR_ENV", "UNTIL_EPOCH_ENV", "TRIAL_CHECKPOINT_FORMAT"]

TRIAL_DIR_ENV = "SEER_TRIAL_DIR"
UNTIL_EPOCH_ENV = "SEER_UNTIL_EPOCH"
METRICS_FILE = "metrics.jsonl"
HEARTBEAT_FILE = "heartbeat"
#: Rank 0 touches the heartbeat at least this often while it trains (seconds).
HEARTBEAT_S = 10.0
#: Optimizer steps at the start of a launch left out of ``throughput_samples_per_s`` (warm-up).
WARMUP_STEPS = 3
#: The checkpoint layout of a script: ``{"format", "epoch", "step", "trial_id", "global_batch",
#: "state"}``, ``state`` being what the script's ``checkpoint`` function returned.
TRIAL_CHECKPOINT_FORMAT = "seer-trial-1"
#: Keys of a metrics line the trial writes itself; ``report`` refuses them as metric names.
RESERVED_KEYS = frozenset({
    "trial_id", "epoch", "step", "samples_seen", "world_size", "global_batch", "epoch_time_s",
    "throughput_samples_per_s", "train_start_unix_s", "time_unix_s", "diverged",
})
_SEED_SALT_EPOCH = 0x5EED_0003  # the built-in worker's dropout salt: same per-epoch seeds
# What torch.load(weights_only=True) reads back (besides containers).
_PLAIN = (torch.Tensor, int, float, bool, str, bytes, type(None), torch.dtype, torch.device, torch.Size)


def init(trial_dir: str | os.PathLike[str] | None = None, until_epoch: int | None = None, *,
         cpu_threads: int | None = 1) -> Trial:
    """Start this process's part of the trial: read ``config.json``, join the process group.

    Args:
        trial_dir: the trial folder; default ``$SEER_TRIAL_DIR`` (``seer tune`` sets it).
        until_epoch: the last epoch this launch trains (1-based); default
            ``$SEER_UNTIL_EPOCH``, else the config's ``max_epochs``.
        cpu_threads: ``torch.set_num_threads`` on a CPU device (a tuner slot is one process,
            one thread); ``None`` leaves torch's default.

    Returns:
        The :class:`Trial`. A process group is formed from torchrun's ``RANK``,
        ``LOCAL_RANK``, ``WORLD_SIZE`` when ``W > 1`` (NCCL on CUDA, gloo on CPU); at ``W = 1``
        there is none. torch's global RNG is seeded with the trial's seed, so models built
        next get the same initial weights on every rank and at every ``W``.

    Raises:
        ConfigError: ``SEER_TRIAL_DIR`` unset and no ``trial_dir``; no or a malformed
            ``config.json``; ``until_epoch`` not in ``1..max_epochs``; a ``W`` that cannot
            split the global batch (:func:`seer_torch.data.plan_batch`).
    """
    if trial_dir is None:
        trial_dir = os.environ.get(TRIAL_DIR_ENV) or None
        if trial_dir is None:
            raise ConfigError(TRIAL_DIR_ENV, None, "the trial folder: run this script under `seer tune` "
                              "(which sets it) or pass seer_torch.trial.init(trial_dir=...)")
    trial_dir = Path(trial_dir).resolve()
    raw = _read_config(trial_dir)
    if until_epoch is None and os.environ.get(UNTIL_EPOCH_ENV):
        text = os.environ[UNTIL_EPOCH_ENV]
        try:
            until_epoch = int(text)
        except ValueError:
            raise ConfigError(UNTIL_EPOCH_ENV, text, "an integer epoch >= 1") from None
    max_epochs = raw["max_epochs"]
    until_epoch = max_epochs if until_epoch is None else until_epoch
    if type(until_epoch) is not int or not 1 <= until_epoch <= max_epochs:  # bool is no epoch
        raise ConfigError("until_epoch", until_epoch, f"an integer epoch in 1..max_epochs={max_epochs}")
    env = DistEnv.from_environ()
    data.plan_batch(raw["global_batch"], env.world_size, raw["micro_batch_max"])  # fail before set-up
    if cpu_threads is not None and env.device.type == "cpu":
        torch.set_num_threads(cpu_threads)
    init_process_group(env)
    torch.manual_seed(raw["seed"])
    return Trial(trial_dir, raw, until_epoch, env)


def _read_config(trial_dir: Path) -> dict[str, Any]:
    """``config.json`` checked; ``configuration["global_batch"]`` overrides the top-level one."""
    path = trial_dir / "config.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("trial_dir", str(trial_dir), "a trial folder holding config.json "
                          "(written by `seer tune`)") from None
    except (OSError, ValueError) as error:
        raise ConfigError(str(path), type(error).__name__, "a readable JSON file") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("configuration"), dict):
        raise ConfigError("configuration", raw.get("configuration") if isinstance(raw, dict) else raw,
                          "a JSON object of hyperparameters in config.json")
    raw = dict(raw)
    if "global_batch" in raw["configuration"]:
        raw["global_batch"] = raw["configuration"]["global_batch"]
    for key, low in (("global_batch", 1), ("micro_batch_max", 1), ("max_epochs", 1), ("seed", 0)):
        value = raw.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(key, value, f"an integer >= {low} in config.json")
    for key in ("tensorboard_dir", "trial_id"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ConfigError(key, raw[key], "a string or null in config.json")
    raw["trial_id"] = raw.get("trial_id") or trial_dir.name
    raw["metric"] = raw.get("metric") or "val_accuracy"
    return raw


class Trial:
    """One process's view of one launch of a trial (made by :func:`init`).

    Attributes:
        trial_dir: the trial folder (absolute).
        trial_id: the trial's name.
        config: the hyperparameters (a copy of ``config.json``'s ``configuration``).
        seed: the experiment's seed (int).
        global_batch: samples per optimizer step, the same at every ``W``.
        micro_batch_max: the most samples one rank puts through the model at once.
        max_epochs: the schedule's horizon in epochs (the tuner's current target; it may
            change between launches).
        until_epoch: the last epoch this launch trains.
        metric: the metric every :meth:`report` must carry (``"val_accuracy"``).
        tensorboard_dir: where rank 0 writes TensorBoard scalars, or ``None``.
        rank, local_rank, world_size, device, is_main: where this process sits in the job.
        micro_batch, accum_steps: the batch plan at this ``W``:
            ``world_size * micro_batch * accum_steps == global_batch``.
        start_epoch: the epochs the loaded checkpoint holds (0 for a fresh trial; known
            after :meth:`load`).
    """

    def __init__(self, trial_dir: Path, raw: dict[str, Any], until_epoch: int, env: DistEnv) -> None:
        self.trial_dir, self.until_epoch, self._env = trial_dir, until_epoch, env
        self.trial_id: str = raw["trial_id"]
        self.config: Mapping[str, Any] = dict(raw["configuration"])
        self.seed: int = raw["seed"]
        self.global_batch: int = raw["global_batch"]
        self.micro_batch_max: int = raw["micro_batch_max"]
        self.max_epochs: int = raw["max_epochs"]
        self.metric: str = raw["metric"]
        self.tensorboard_dir: str | None = raw.get("tensorboard_dir")
        self._plan = data.plan_batch(self.global_batch, env.world_size, self.micro_batch_max)
        self.start_epoch = 0
        self._loaded: bool | None = None  # None: load() not called; False: nothing to load
        self._resumed_from_previous = False
        self._step = 0  # optimizer steps completed (train_batches items), checkpoint included
        self._reported = self._saved_epoch = 0  # the last epoch reported, saved
        self._diverged = False
        self._epoch_start_s = self._train_start_unix_s = 0.0
        self._throughput: float | None = None
        self._launch_steps = 0
        self._heartbeat_unix_s = 0.0
        self._writer: Any = None
        self._sample_log: Any = None
        self._step_delay_s = float(os.environ.get("SEER_DEBUG_STEP_DELAY_S") or 0.0)
        if self.is_main:
            self.heartbeat()

    # --- where this process sits ---------------------------------------------------------------

    rank = property(lambda self: self._env.rank, doc="Global rank, ``0 <= rank < world_size``.")
    local_rank = property(lambda self: self._env.local_rank, doc="Rank on this node.")
    world_size = property(lambda self: self._env.world_size, doc="Data-parallel ranks ``W``.")
    device = property(lambda self: self._env.device, doc="``cuda:<local_rank>`` with CUDA, else CPU.")
    is_main = property(lambda self: self._env.rank == 0, doc="Rank 0: the only rank that writes files.")
    micro_batch = property(lambda self: self._plan.micro_batch, doc="Samples per micro-batch at this ``W``.")
    accum_steps = property(lambda self: self._plan.accum_steps, doc="Micro-batches per rank per step.")

    # --- model and checkpoint --------------------------------------------------------------------

    def wrap(self, model: torch.nn.Module, **ddp_kwargs: Any) -> torch.nn.Module:
        """``model`` on :attr:`device`, in ``DistributedDataParallel`` (with ``ddp_kwargs``) when
        ``W > 1``; the model itself at ``W = 1``. Load its checkpoint state before wrapping."""
        model = model.to(self.device)
        if self.world_size == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids, **ddp_kwargs)

    @staticmethod
    def unwrap(model: torch.nn.Module) -> torch.nn.Module:
        """The plain module under DDP (``.module``) and ``torch.compile`` (``._orig_mod``), so a
        state dict has no ``module.`` prefixes and loads at any ``W``."""
        while True:
            inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
            if not isinstance(inner, torch.nn.Module):
                return model
            model = inner

    def load(self) -> dict[str, Any] | None:
        """The state the last launch saved (``weights_only=True``, tensors on the CPU), or
        ``None`` for a fresh trial. Every rank calls it. Sets :attr:`start_epoch`.

        A ``checkpoint.pt`` that does not load or is not whole is passed over for
        ``checkpoint.prev.pt`` (a line on stderr); the epochs after it are trained again.

        Raises:
            CheckpointError: neither file is usable (the message names both and why).
            ConfigError: the checkpoint was trained with another global batch.
        """
        path = self.trial_dir / CHECKPOINT_FILE
        saved = None
        if path.exists():
            saved, why = _read_trial_checkpoint(path)
            if saved is None:
                previous = self.trial_dir / PREVIOUS_CHECKPOINT_FILE
                saved, previous_why = (_read_trial_checkpoint(previous) if previous.exists()
                                       else (None, "missing"))
                if saved is None:
                    raise CheckpointError(
                        f"no usable checkpoint: {path} is unusable ({why}) and so is {previous} "
                        f"({previous_why}); remove both to restart the trial from scratch")
                self._resumed_from_previous = True
                if self.is_main:
                    print(f"seer trial: {path} is unusable ({why}); resuming from {previous} at epoch "
                          f"{saved['epoch']}", file=sys.stderr, flush=True)
        self._loaded = saved is not None
        if saved is None:
            return None
        if saved["global_batch"] != self.global_batch:
            raise ConfigError("global_batch", self.global_batch,
                              f"the checkpoint's {saved['global_batch']} (fixed for a trial)")
        self.start_epoch, self._step = saved["epoch"], saved["step"]
        self._reported = self._saved_epoch = self.start_epoch
        return saved["state"]

    def save(self, state: Mapping[str, Any]) -> None:
        """Save ``state`` as the checkpoint of the last reported epoch (rank 0; every rank calls).

        ``state`` must hold what ``torch.load(weights_only=True)`` reads: tensors, numbers,
        strings, ``None`` and dicts, lists and tuples of them (state dicts of the unwrapped
        model and of the optimizer are). Written atomically; the checkpoint it replaces is kept
        as ``checkpoint.prev.pt``; then ``checkpoint.json`` says its epoch and step, which
        makes the epoch's metrics line durable. :meth:`epochs` calls it after the last epoch.

        Raises:
            ConfigError: a value ``weights_only`` would refuse (named by its key path), or no
                epoch reported since the start of the trial.
        """
        if self._reported < 1:
            raise ConfigError("save", "before any report", "call report(epoch, ...) before saving")
        _check_plain(state, "state")
        if self.is_main:
            saved = {"format": TRIAL_CHECKPOINT_FORMAT, "epoch": self._reported, "step": self._step,
                     "trial_id": self.trial_id, "global_batch": self.global_batch, "state": dict(state)}
            # A launch that resumed from the previous copy keeps it: the current one is damaged.
            path = str(self.trial_dir / CHECKPOINT_FILE)
            save_checkpoint(path, saved, rotate=not self._resumed_from_previous)
            self._resumed_from_previous = False
        self._saved_epoch = self._reported
        if self.world_size > 1:  # no rank goes on (and maybe exits) before the file is in place
            dist.barrier()

    # --- the epochs and the batches ----------------------------------------------------------------

    def epochs(self, checkpoint: Callable[[], Mapping[str, Any]] | None = None) -> Iterator[int]:
        """The epochs this launch trains: ``start_epoch + 1 .. until_epoch`` (none when the
        checkpoint already holds ``until_epoch``). Call :meth:`load` first when resuming.

        At the start rank 0 removes what a killed writer left, cuts ``metrics.jsonl`` back to
        the checkpoint's epoch and writes ``checkpoint.json`` for it. Each epoch seeds torch's
        global RNG from ``(seed, epoch, rank)`` (dropout repeats after a resume) and must end
        with :meth:`report`. After the last epoch, ``checkpoint()`` (called on every rank) gives
        the state :meth:`save` writes. After a diverged report the iteration stops, unsaved.

        Raises:
            ConfigError: a checkpoint exists but :meth:`load` was not called; an epoch ended
                without its :meth:`report`.
        """
        if self._loaded is None and (self.trial_dir / CHECKPOINT_FILE).exists():
            raise ConfigError("load", "not called", "call t.load() and restore its state before t.epochs(): "
                              f"{self.trial_dir / CHECKPOINT_FILE} exists")
        if self.is_main:
            remove_worker_temporaries(self.trial_dir)
            write_durable_epoch(self.trial_dir, self.start_epoch, self._step)
            truncate_metrics(str(self.trial_dir / METRICS_FILE), self.start_epoch)
        self._train_start_unix_s = time.time()
        for epoch in range(self.start_epoch + 1, self.until_epoch + 1):
            torch.manual_seed(data.derive_seed(_SEED_SALT_EPOCH, self.seed, epoch, self.rank))
            synchronize(self.device)
            self._epoch_start_s, self._throughput = time.perf_counter(), None
            yield epoch
            if self._diverged:
                return
            if self._reported != epoch:
                raise ConfigError("report", f"epoch {epoch} not reported",
                                  f"one t.report({epoch}, {self.metric}=...) in every epoch")
        if checkpoint is not None and self.until_epoch > self.start_epoch:
            self.save(checkpoint())
        elif self.is_main and self._saved_epoch != self._reported:
            print(f"seer trial: epoch {self._reported} of trial {self.trial_id} ends unsaved (no "
                  "checkpoint function given to t.epochs()): it cannot resume, resize or go on",
                  file=sys.stderr, flush=True)

    def train_batches(self, num_samples: int, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """The optimizer steps of ``epoch``: for each, this rank's micro-batches, as int64
        index tensors ``(micro_batch,)`` into the training set (``accum_steps`` of them).

        The training order is one permutation of ``range(num_samples)`` per ``(seed, epoch)``;
        global batch ``s`` is its ``s``-th run of ``global_batch`` indices and rank ``r``
        trains its ``r``-th contiguous part (:func:`seer_torch.data.rank_train_batch`), so the
        union over ranks is the same at every ``W``. ``num_samples // global_batch`` steps; the
        last ``num_samples % global_batch`` of each permutation are not trained that epoch.

        Raises:
            ConfigError: ``num_samples`` below ``global_batch`` (no step in an epoch).
        """
        num_steps = data.steps_per_epoch(num_samples, self.global_batch)
        if num_steps < 1:
            raise ConfigError("global_batch", self.global_batch,
                              f"at most the {num_samples} training samples")
        permutation = data.epoch_permutation(self.seed, epoch, num_samples)
        measure_s, measured = time.perf_counter(), 0
        for step_in_epoch in range(num_steps):
            if self._launch_steps == WARMUP_STEPS:  # a launch's first steps are warm-up
                synchronize(self.device)
                measure_s, measured = time.perf_counter(), 0
            batch = data.rank_train_batch(permutation, step_in_epoch, self._plan, self.rank)
            self._record(epoch, step_in_epoch, batch.indices)
            yield batch.micro_batch_indices()
            self._step += 1
            self._launch_steps += 1
            measured += 1
            if self.is_main and time.time() - self._heartbeat_unix_s > HEARTBEAT_S:
                self.heartbeat()
            if self._step_delay_s > 0:
                time.sleep(self._step_delay_s)
        synchronize(self.device)
        self._throughput = measured * self.global_batch / max(time.perf_counter() - measure_s, 1e-9)

    def accumulate(self, model: torch.nn.Module,
                   micro_batches: tuple[torch.Tensor, ...]) -> Iterator[torch.Tensor]:
        """Each micro-batch's indices, with DDP's gradient synchronisation held off
        (``no_sync``) for all but the last, so one optimizer step all-reduces once. Divide
        each micro-batch's mean loss by :attr:`accum_steps` before ``backward``."""
        for i, indices in enumerate(micro_batches):
            last = i == len(micro_batches) - 1
            sync = getattr(model, "no_sync", None)
            with contextlib.nullcontext() if last or sync is None else sync():
                yield indices

    def eval_shard(self, num_samples: int) -> slice:
        """This rank's contiguous part of ``range(num_samples)``; the parts over all ranks cover
        every sample once (:func:`seer_torch.data.rank_slice`)."""
        return data.rank_slice(num_samples, self.world_size, self.rank)

    @torch.no_grad()
    def evaluate_sharded(self, num_samples: int, score: Callable[[torch.Tensor], Any],
                         batch_size: int | None = None) -> tuple[float, ...]:
        """Means over all ``num_samples`` samples, every sample counted once at any ``W``.

        Args:
            num_samples: the evaluation set's size ``N``.
            score: given int64 indices ``(b,)`` of this rank's part, returns the SUM over those
                samples of one quantity (a number or 0-d tensor, such as the number correct) or
                of several (a tensor ``(k,)``, such as ``[summed loss, number correct]``). A
                rank whose part is empty (``N < W``) calls it once with no indices (``b = 0``).
            batch_size: indices per ``score`` call; default :attr:`micro_batch_max`.

        Returns:
            ``k`` means (sums over all ranks / ``N``), floats; NaN each when ``N == 0``.
        """
        part = self.eval_shard(num_samples)
        indices = torch.arange(part.start, part.stop, dtype=torch.int64)
        batch_size = batch_size or self.micro_batch_max
        # An empty part (N < W) still scores once, on no indices, so every rank sums k values.
        starts = range(0, len(indices), batch_size) if len(indices) else (0,)
        total = sum(torch.as_tensor(score(indices[b:b + batch_size]), dtype=torch.float64).reshape(-1)
                    for b in starts)
        sums = self.all_reduce_sum(total.to(self.device)).cpu()
        return tuple(float(s) / num_samples if num_samples else math.nan for s in sums)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks in place (on :attr:`device` at ``W > 1``); returns it."""
        if self.world_size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    # --- reporting -------------------------------------------------------------------------------

    def report(self, epoch: int, **metrics: float | torch.Tensor) -> None:
        """Record epoch ``epoch``'s metrics (every rank calls it with the same values).

        Rank 0 appends one line to ``metrics.jsonl``: ``trial_id``, ``epoch``, ``step``
        (optimizer steps so far), ``samples_seen``, ``world_size``, ``global_batch``,
        ``epoch_time_s`` (seconds since :meth:`epochs` began the epoch),
        ``throughput_samples_per_s`` (training samples per second of :meth:`train_batches`,
        when the epoch used it), ``train_start_unix_s``, ``time_unix_s`` and the metrics;
        writes each metric to TensorBoard at step ``epoch`` (independent of ``W``); touches the
        heartbeat. A metric that is NaN or infinite on any rank makes the line say
        ``"diverged": true`` (non-finite values written as null); :meth:`epochs` then stops
        without saving, and the trial ends there.

        Args:
            epoch: the epoch just trained, 1-based: the one after the last reported.
            metrics: numbers or 0-d tensors; must include :attr:`metric` (``val_accuracy``,
                a fraction in [0, 1]); other names are free (units in the name: ``_s``).

        Raises:
            ConfigError: ``epoch`` out of order or beyond ``until_epoch``; :attr:`metric`
                missing; a value that is not a number; a reserved name (``epoch``, ...).
        """
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch != self._reported + 1:
            raise ConfigError("report(epoch)", epoch, f"the next epoch, {self._reported + 1} (epochs are "
                              "reported once each, in order)")
        if epoch > self.until_epoch:
            raise ConfigError("report(epoch)", epoch, f"an epoch <= until_epoch={self.until_epoch} "
                              "(this launch trains no further)")
        if self.metric not in metrics:
            raise ConfigError(f"report({self.metric}=...)", "missing",
                              f"the metric {self.metric!r} in every report")
        values = {}
        for name, value in metrics.items():
            if name in RESERVED_KEYS:
                raise ConfigError(f"report({name}=...)", value, f"a name other than {sorted(RESERVED_KEYS)}")
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"report({name}=...)", value, "a number or a one-element tensor")
            values[name] = float(value) if isinstance(value, float) else value
        # Any rank's non-finite value counts, so that every rank stops after the same epoch.
        bad = torch.tensor([float(not all(math.isfinite(v) for v in values.values()))], device=self.device)
        diverged = bool(self.all_reduce_sum(bad).item())
        line: dict[str, Any] = {
            "trial_id": self.trial_id, "epoch": epoch, "step": self._step,
            "samples_seen": self._step * self.global_batch, "world_size": self.world_size,
            "global_batch": self.global_batch, "epoch_time_s": time.perf_counter() - self._epoch_start_s,
        }
        if self._throughput is not None:
            line["throughput_samples_per_s"] = self._throughput
        line["train_start_unix_s"] = self._train_start_unix_s
        line["time_unix_s"] = time.time()
        if diverged:
            line["diverged"] = True
        line.update({k: v if math.isfinite(v) else None for k, v in values.items()})
        self._reported, self._diverged = epoch, diverged
        if self.is_main:
            with open(self.trial_dir / METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(line, allow_nan=False) + "\n")  # one complete line per write
            self._tensorboard(epoch, values)
            self.heartbeat()

    def heartbeat(self) -> None:
        """Touch ``TRIAL_DIR/heartbeat`` (rank 0; the tuner takes a job whose heartbeat and
        metrics stay old past its hang timeout for hung). :meth:`train_batches` and
        :meth:`report` call it; call it in long work of your own (seconds apart, not per step)."""
        if not self.is_main:
            return
        now = time.time()
        with contextlib.suppress(OSError):
            (self.trial_dir / HEARTBEAT_FILE).write_text(f"{now:.3f}\n", encoding="utf-8")
        self._heartbeat_unix_s = now

    def _tensorboard(self, epoch: int, values: Mapping[str, float]) -> None:
        if not self.tensorboard_dir:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # Events at epochs past the checkpoint's belong to a launch that was killed: purged.
            self._writer = SummaryWriter(log_dir=self.tensorboard_dir, purge_step=self.start_epoch + 1)
        for name, value in values.items():
            if math.isfinite(value):
                self._writer.add_scalar(name, value, epoch)
        self._writer.add_scalar("world_size", self.world_size, epoch)
        self._writer.flush()

    # --- the end -----------------------------------------------------------------------------------

    def finish(self, *, clean: bool = True) -> None:
        """Close TensorBoard and leave the process group (after a barrier when ``clean``: no
        rank leaves while another still writes). Idempotent; ``with trial.init() as t:`` calls
        it, without the barrier when the block raised (the other ranks may never arrive)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sample_log is not None:
            self._sample_log.close()
            self._sample_log = None
        if dist.is_available() and dist.is_initialized():
            if clean:
                dist.barrier()
            dist.destroy_process_group()

    def __enter__(self) -> Trial:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish(clean=exc_type is None)

    def _record(self, epoch: int, step_in_epoch: int, indices: torch.Tensor) -> None:
        """``SEER_RECORD_SAMPLES=PATH``: each rank appends one line per step to ``PATH.rank<r>``
        (the built-in worker's format, less ``lr``), for the contract tests."""
        path = os.environ.get("SEER_RECORD_SAMPLES")
        if not path:
            return
        if self._sample_log is None:
            self._sample_log = open(f"{path}.rank{self.rank}", "a", encoding="utf-8")  # noqa: SIM115
        self._sample_log.write(json.dumps({
            "epoch": epoch, "step_in_epoch": step_in_epoch, "step": self._step + 1, "rank": self.rank,
            "local_rank": self.local_rank, "world_size": self.world_size, "micro_batch": self.micro_batch,
            "accum_steps": self.accum_steps, "indices": indices.tolist()}) + "\n")
        self._sample_log.flush()


def _read_trial_checkpoint(path: Path) -> tuple[dict[str, Any] | None, str]:
    """``(checkpoint, "")``, or ``(None, why)`` for a file that does not load or is not whole."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)  # never weights_only=False
    except Exception as error:  # a truncated zip, garbage bytes, a pickle weights_only refuses, ...
        first = (str(error).strip().splitlines() or [""])[0][:200]
        return None, f"it does not load: {type(error).__name__}: {first}"
    if not isinstance(saved, dict) or saved.get("format") != TRIAL_CHECKPOINT_FORMAT:
        return None, f"it is not a trial checkpoint (format {TRIAL_CHECKPOINT_FORMAT!r})"
    counters = [saved.get(k) for k in ("epoch", "step", "global_batch")]
    if (not all(isinstance(v, int) and not isinstance(v, bool) for v in counters)
            or counters[0] < 1 or counters[1] < 0):
        return None, f"inconsistent counters: epoch, step, global_batch = {counters}"
    if not isinstance(saved.get("state"), dict):
        return None, "its state is not a dictionary"
    return saved, ""


def _check_plain(value: Any, where: str) -> None:
    """Raise :class:`ConfigError` at the first value ``torch.load(weights_only=True)`` refuses."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_plain(key, f"{where} key {key!r}")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)) and not isinstance(value, torch.Size):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _PLAIN):
        raise ConfigError(where, type(value).__name__, "tensors, numbers, strings, None and dicts, lists or "
                          "tuples of them (what torch.load(weights_only=True) reads back)")
