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

Beyond the example: ``t.log(name=value, ...)`` writes per-step scalars to TensorBoard (the
x-axis of every tag is the optimizer step, :attr:`Trial.step`, the same at every ``W``);
``with t.untimed():`` leaves work such as a final test evaluation out of the epoch's
``epoch_time_s``; ``t.load(check=...)`` passes over a checkpoint the script finds incomplete for
the previous one; ``t.save(state)`` saves at another point than the end of the launch. The
built-in worker, :mod:`seer_torch.worker`, is a complete script on this API with SGD, a cosine
schedule, gradient accumulation and test evaluation.

``seer verify train.py --config NAME=VALUE ...`` (or ``seer verify experiment.toml``) runs a
script briefly at ``W = 1`` and ``W = 2`` and says, check by check, whether its curve ignores
``W``, naming the likely cause of a failure (docs/commands.md, "seer verify").

Files in the trial folder, written by this module for every script (seer-torch's own,
:mod:`seer_torch.worker`, is one of them): ``config.json`` (read; written by the tuner),
``metrics.jsonl`` (one line per epoch, rank 0, :meth:`Trial.report`), ``checkpoint.pt`` /
``checkpoint.prev.pt`` / ``checkpoint.json`` (rank 0, at the end of each launch, every
:data:`CHECKPOINT_INTERVAL_S` between, and after the epoch in progress when the job is told to
stop, :data:`STOP_SAVE_WINDOW_S`; the format is :mod:`seer_torch.trial_checkpoint`'s),
``heartbeat`` (rank 0 touches it; the tuner's hang detection reads its time), TensorBoard
events in ``tensorboard_dir`` (:meth:`Trial.log`).
Side effects happen on rank 0 only; every rank must call every method in the same order
(several run collectives at ``W > 1``).

Debugging hooks (environment variables, off by default; the tests and ``seer verify`` use
them): ``SEER_RECORD_SAMPLES=PATH`` records every step's samples and learning rate
(:meth:`Trial._record`); ``SEER_RECORD_STATES=PATH`` the script's state before and after every
epoch (:data:`RECORD_STATES_ENV`); ``SEER_DEBUG_STEP_DELAY_S=SECONDS`` sleeps that long after every
step (lets a test kill a job mid-epoch), ``SEER_DEBUG_SAMPLE_DELAY_S=SECONDS`` that long per
sample of the rank's share of the step (simulated work that speeds up with ``W``);
``SEER_DEBUG_SAVE_DELAY_S=SECONDS`` holds every
checkpoint write half-way (:func:`seer_torch.trial_checkpoint.save_checkpoint`).

Imports nothing from seer_torch above the worker layer: :mod:`seer_torch.errors`,
:mod:`seer_torch.data`, :mod:`seer_torch.runfiles`, :mod:`seer_torch.trial_checkpoint` and
:mod:`seer_torch.trial_keepalive` (a kept-alive job's parking and switching; :class:`NextTrial`
and :func:`take_up` are re-exported here).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from seer_torch import data
from seer_torch.errors import ConfigError
from seer_torch.runfiles import (
    CONTROL_FILE,
    GENERATION_ENV,
    KEEP_ALIVE_ENV,
    METRICS_LINE_KEYS,
    TRIAL_DIR_ENV,
    UNTIL_EPOCH_ENV,
    remove_worker_temporaries,
    write_durable_epoch,
)
from seer_torch.trial_checkpoint import (
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    PREVIOUS_CHECKPOINT_FILE,
    CheckFn,
    resume_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    truncate_metrics,
)
from seer_torch.trial_keepalive import NextTrial, park, take_up

__all__ = ["Trial", "NextTrial", "init", "take_up", "TRIAL_DIR_ENV", "UNTIL_EPOCH_ENV",
           "TRIAL_CHECKPOINT_FORMAT"]

#: Set by the profiler (:mod:`seer_torch.scaling.script_profile`) on a probe launch: each epoch
#: trains at most this many optimizer steps of :meth:`Trial.train_batches`, and the metrics line
#: says how many the whole epoch has (``probe_steps_per_epoch``) and how long the steps took
#: (``probe_train_s``), so that a whole epoch's seconds can be predicted from a short probe.
PROBE_STEPS_ENV = "SEER_PROBE_STEPS"
METRICS_FILE = "metrics.jsonl"
#: ``SEER_RECORD_SAMPLES=PATH`` (tests, ``seer verify``): each rank appends one JSON line per
#: optimizer step to ``PATH.rank<r>`` (:meth:`Trial.train_batches`).
RECORD_SAMPLES_ENV = "SEER_RECORD_SAMPLES"
#: ``SEER_RECORD_STATES=PATH`` (``seer verify``): rank 0 writes what the checkpoint function given
#: to :meth:`Trial.epochs` returns to ``PATH.epoch<e>.pt``, before the launch's first epoch (``e``
#: = the epoch it starts from: the state as built or loaded) and after each epoch.
RECORD_STATES_ENV = "SEER_RECORD_STATES"
HEARTBEAT_FILE = "heartbeat"
#: Rank 0 touches the heartbeat at least this often while it trains (seconds).
HEARTBEAT_S = 10.0
#: A parked job's rank 0 touches the heartbeat when it is older than this (seconds).
PARK_HEARTBEAT_S = 2.0
#: Optimizer steps at the start of a launch left out of ``throughput_samples_per_s`` (warm-up).
WARMUP_STEPS = 3
#: Told to stop (SIGTERM: the tuner's deadline, a stop, Ctrl-C), a job finishes the epoch in
#: progress and saves it when that is expected to take at most this long (seconds: the epoch's
#: time left, judged by the launch's previous epoch, plus the last save's time); else it ends at
#: once, as without a handler. Below the backends' SIGTERM-to-SIGKILL grace (5 s) and the
#: executor's deadline grace (3 s).
STOP_SAVE_WINDOW_S = 2.0
#: Between rung targets, a job saves at the end of an epoch when its last save is at least this
#: old (seconds), so a job stopped or killed mid-way loses at most about this much training.
CHECKPOINT_INTERVAL_S = 60.0
#: The checkpoint layout (:mod:`seer_torch.trial_checkpoint`): ``{"format", "epoch", "step",
#: "samples_seen", "global_batch", "trial_id", "configuration", "rng", "state"}``, ``state``
#: being what the script saved.
TRIAL_CHECKPOINT_FORMAT = CHECKPOINT_FORMAT
#: Keys of a metrics line the trial writes itself; ``report`` refuses them as metric names.
RESERVED_KEYS = METRICS_LINE_KEYS
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
            split the global batch (:func:`seer_torch.data.plan_batch`); a ``$SEER_PROBE_STEPS``
            that is not an integer >= 1 (:data:`PROBE_STEPS_ENV`).
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
    _probe_steps_from_env()  # a bad $SEER_PROBE_STEPS fails before set-up too
    if cpu_threads is not None and env.device.type == "cpu":
        torch.set_num_threads(cpu_threads)
    init_process_group(env)
    torch.manual_seed(raw["seed"])
    return Trial(trial_dir, raw, until_epoch, env)


def _probe_steps_from_env() -> int | None:
    """``$SEER_PROBE_STEPS`` (:data:`PROBE_STEPS_ENV`) as an integer >= 1, or ``None`` when unset.

    Raises:
        ConfigError: set to anything but an integer >= 1.
    """
    text = os.environ.get(PROBE_STEPS_ENV)
    if not text:
        return None
    try:
        steps = int(text)
    except ValueError:
        steps = 0
    if steps < 1:
        raise ConfigError(PROBE_STEPS_ENV, text,
                          "an integer >= 1 (optimizer steps per epoch of a profile probe)")
    return steps


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
        """Read ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` (defaults 0, 0, 1 outside torchrun);
        the device is ``cuda:<local_rank mod GPUs>`` when CUDA is available, else the CPU."""
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if torch.cuda.is_available():
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        else:
            device = torch.device("cpu")
        return cls(rank, local_rank, world_size, device)


def init_process_group(env: DistEnv) -> None:
    """Join the job's process group when ``W > 1`` (NCCL on CUDA, gloo on CPU); at ``W = 1``,
    or when one exists already, nothing."""
    if not env.distributed or dist.is_initialized():
        return
    if env.device.type == "cuda":
        torch.cuda.set_device(env.device)
        dist.init_process_group("nccl", device_id=env.device)
    else:
        dist.init_process_group("gloo")


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (timings); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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
            change between launches, and for the built-in worker while its kept-alive job is
            parked: a continue order may carry a new one).
        until_epoch: the last epoch this launch trains.
        metric: the metric every :meth:`report` must carry: the experiment's ``metric``
            (``config.json``'s ``metric``; ``"val_accuracy"`` when it names none).
        tensorboard_dir: where rank 0 writes TensorBoard scalars, or ``None``.
        rank, local_rank, world_size, device, is_main: where this process sits in the job.
        micro_batch, accum_steps: the batch plan at this ``W``:
            ``world_size * micro_batch * accum_steps == global_batch``.
        start_epoch: the epochs the loaded checkpoint holds (0 for a fresh trial; known
            after :meth:`load`).
        step: optimizer steps trained so far (:meth:`train_batches` items, the checkpoint's
            included); the x-axis of TensorBoard.
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
        self._loaded_step = 0  # the checkpoint's step
        self._reported = self._saved_epoch = 0  # the last epoch reported, saved
        self._diverged = False
        self._epoch_start_s = self._train_start_unix_s = 0.0
        self._throughput: float | None = None
        self._launch_steps = 0
        self._heartbeat_unix_s = 0.0
        # Stopping (SIGTERM while training, :meth:`_on_sigterm`): asked on this rank, agreed by
        # every rank (after train_batches and in report), and what the decision is judged by.
        self._stop_asked = self._stopping = self._save_due = False
        self._yielded = 0  # the epoch epochs() last began
        self._epoch_wall_s: float | None = None  # the launch's previous epoch, start to report
        self._save_s = 0.0  # the last save's seconds
        self._saved_unix_s = time.time()
        self._previous_sigterm: Any = None  # the handler before ours, while ours is installed
        self._writer: Any = None
        self._untimed_s = 0.0  # seconds of this epoch spent in untimed()
        self._in_step = False  # inside the body of a train_batches step
        self._record_path = os.environ.get(RECORD_SAMPLES_ENV) or None
        self._sample_log: Any = None
        self._step_lr: float | None = None  # the learning rate of the step in progress (recording)
        self._lr_hook: Any = None
        if self._record_path:  # the learning rate each step uses, whichever optimizer the script has
            from torch.optim.optimizer import register_optimizer_step_pre_hook

            self._lr_hook = register_optimizer_step_pre_hook(self._capture_lr)
        self._step_delay_s = float(os.environ.get("SEER_DEBUG_STEP_DELAY_S") or 0.0)
        # Simulated compute that divides over the ranks as real work does: seconds per sample of
        # this rank's share of each global batch (a perfect speed-up with W, for tests).
        self._step_delay_s += (float(os.environ.get("SEER_DEBUG_SAMPLE_DELAY_S") or 0.0)
                               * self.global_batch / env.world_size)
        self._probe_steps = _probe_steps_from_env()  # None unless this launch is a profile probe
        self._probe_steps_per_epoch: int | None = None  # the epoch's full step count, when probing
        self._probe_train_s = 0.0  # seconds in train_batches this epoch, when probing
        # Kept alive (the tuner's backend sets $SEER_KEEP_ALIVE=1): park at the target for the
        # next order instead of ending the launch (:meth:`epochs`, :meth:`_park`).
        self._keep_alive = os.environ.get(KEEP_ALIVE_ENV) == "1" and self._probe_steps is None
        self._generation = int(os.environ.get(GENERATION_ENV) or 0)
        #: Set when a parked built-in worker was handed another trial (:class:`NextTrial`).
        self.next_trial: NextTrial | None = None
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
    step = property(lambda self: self._step, doc="Optimizer steps trained, the checkpoint's included.")

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

    def load(self, check: CheckFn | None = None) -> dict[str, Any] | None:
        """The state the last launch saved (``weights_only=True``, tensors on the CPU), or
        ``None`` for a fresh trial. Every rank calls it. Sets :attr:`start_epoch` and
        :attr:`step`, and restores the RNG states saved with it (torch's CPU generator, the
        GPU's, Python's ``random``; :meth:`epochs` re-seeds torch's at every epoch anyway).

        A ``checkpoint.pt`` that does not load or is not whole is passed over for
        ``checkpoint.prev.pt`` (a line on stderr); the epochs after it are trained again.

        Args:
            check: the script's own test of a loaded checkpoint (the whole dictionary of
                :mod:`seer_torch.trial_checkpoint`, ``state`` under ``"state"``): returns
                ``""`` when it is whole, else what is wrong, which makes it unusable.

        Raises:
            CheckpointError: neither file is usable (the message names both and why).
            ConfigError: the checkpoint was trained with another global batch.
        """
        saved, source = resume_checkpoint(self.trial_dir / CHECKPOINT_FILE, check=check, log=self.is_main)
        self._loaded = saved is not None
        if saved is None:
            return None
        self._resumed_from_previous = source == str(self.trial_dir / PREVIOUS_CHECKPOINT_FILE)
        if saved["global_batch"] != self.global_batch:
            raise ConfigError("global_batch", self.global_batch,
                              f"the checkpoint's {saved['global_batch']} (fixed for a trial)")
        self.start_epoch, self._step = saved["epoch"], saved["step"]
        self._loaded_step = self._step
        self._reported = self._saved_epoch = self.start_epoch
        set_rng_state(saved["rng"], self.device)
        return saved["state"]

    def save(self, state: Mapping[str, Any]) -> None:
        """Save ``state`` as the checkpoint of the last reported epoch (rank 0; every rank calls).

        ``state`` must hold what ``torch.load(weights_only=True)`` reads: tensors, numbers,
        strings, ``None`` and dicts, lists and tuples of them (state dicts of the unwrapped
        model and of the optimizer are). The checkpoint (:mod:`seer_torch.trial_checkpoint`)
        keeps it under ``"state"`` beside the trial's counters, its configuration and the RNG
        states. Written atomically; the checkpoint it replaces is kept as
        ``checkpoint.prev.pt``; then ``checkpoint.json`` says its epoch and step, which makes
        the epoch's metrics line durable. :meth:`epochs` calls it after the last epoch.

        Raises:
            ConfigError: a value ``weights_only`` would refuse (named by its key path), or no
                epoch reported since the start of the trial.
        """
        if self._reported < 1:
            raise ConfigError("save", "before any report", "call report(epoch, ...) before saving")
        _check_plain(state, "state")
        start_s = time.perf_counter()
        if self.is_main:
            saved = {"format": CHECKPOINT_FORMAT, "epoch": self._reported, "step": self._step,
                     "samples_seen": self._step * self.global_batch, "global_batch": self.global_batch,
                     "trial_id": self.trial_id, "configuration": dict(self.config),
                     "rng": rng_state(self.device), "state": dict(state)}
            # A launch that resumed from the previous copy keeps it: the current one is damaged.
            save_checkpoint(self.trial_dir / CHECKPOINT_FILE, saved, rotate=not self._resumed_from_previous)
            self._resumed_from_previous = False
        self._saved_epoch = self._reported
        if self.world_size > 1:  # no rank goes on (and maybe exits) before the file is in place
            dist.barrier()
        self._save_s, self._saved_unix_s = time.perf_counter() - start_s, time.time()

    # --- the epochs and the batches ----------------------------------------------------------------

    def epochs(self, checkpoint: Callable[[], Mapping[str, Any]] | None = None) -> Iterator[int]:
        """The epochs this launch trains: ``start_epoch + 1 .. until_epoch`` (none when the
        checkpoint already holds ``until_epoch``). Call :meth:`load` first when resuming.

        At the start rank 0 removes what a killed writer left, cuts ``metrics.jsonl`` back to
        the checkpoint's epoch and writes ``checkpoint.json`` for it. Each epoch seeds torch's
        global RNG from ``(seed, epoch, rank)`` (dropout repeats after a resume) and must end
        with :meth:`report`. After the last epoch, ``checkpoint()`` (called on every rank) gives
        the state :meth:`save` writes; so it does after an epoch that ends
        :data:`CHECKPOINT_INTERVAL_S` after the last save. After a diverged report the
        iteration stops, unsaved.

        Told to stop (SIGTERM) while the epochs train, the launch finishes the epoch in progress,
        saves it and ends, when that fits :data:`STOP_SAVE_WINDOW_S` (:attr:`stopping` says so
        during that epoch); else it ends at once, as without this.

        Kept alive (the tuner's backend says so, ``$SEER_KEEP_ALIVE=1``): after saving the last
        epoch the iterator *parks* instead of ending: the process waits, alive, for the tuner's
        next order, and when told to go on to a later epoch it simply yields the next epochs (no
        relaunch, no re-import, no reload; :attr:`until_epoch` grows). Told to stop, or left
        waiting past ``$SEER_PARK_TIMEOUT_S`` or by a tuner that died, it ends as it would
        have without keep-alive. A script needs no change for this.

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
        self._record_state(checkpoint, self.start_epoch)
        stoppable = checkpoint is not None and self._probe_steps is None
        first = self.start_epoch + 1
        try:
            while True:
                if stoppable:
                    self._catch_sigterm()
                for epoch in range(first, self.until_epoch + 1):
                    torch.manual_seed(data.derive_seed(_SEED_SALT_EPOCH, self.seed, epoch, self.rank))
                    synchronize(self.device)
                    self._epoch_start_s, self._throughput, self._untimed_s = time.perf_counter(), None, 0.0
                    self._probe_steps_per_epoch, self._probe_train_s = None, 0.0
                    self._yielded = epoch
                    yield epoch
                    self._epoch_wall_s = time.perf_counter() - self._epoch_start_s
                    if self._diverged:
                        return
                    if self._reported != epoch:
                        raise ConfigError("report", f"epoch {epoch} not reported",
                                          f"one t.report({epoch}, {self.metric}=...) in every epoch")
                    self._record_state(checkpoint, epoch)
                    if self._stopping:
                        break
                    if self._save_due and checkpoint is not None and epoch < self.until_epoch:
                        self.save(checkpoint())  # CHECKPOINT_INTERVAL_S since the last save
                if checkpoint is not None and self._reported >= first and self._saved_epoch != self._reported:
                    self.save(checkpoint())
                elif self.is_main and self._saved_epoch != self._reported:
                    print(f"seer trial: epoch {self._reported} of trial {self.trial_id} ends unsaved (no "
                          "checkpoint function given to t.epochs()): it cannot resume, resize or go on",
                          file=sys.stderr, flush=True)
                self._release_sigterm()  # parked, or after the loop, a SIGTERM ends the process at once
                if self._stopping or self._stop_asked:
                    if self.is_main:
                        print(f"seer trial: stopped after saving epoch {self._saved_epoch}",
                              file=sys.stderr, flush=True)
                    return
                # Park only with everything saved: a parked job may be released, and its trial
                # then resumes from the checkpoint elsewhere.
                if not self._keep_alive or self._saved_epoch != self._reported or self._reported < 1:
                    return
                order = self._park()
                if order.get("action") != "continue":
                    if order.get("action") == "switch":  # the job moves out: its order goes with it
                        self.next_trial = NextTrial.from_order(order)
                        (self.trial_dir / CONTROL_FILE).unlink(missing_ok=True)
                    return
                first, self.until_epoch = self.until_epoch + 1, int(order["until_epoch"])
                # The built-in worker's order may move the schedule's horizon (a re-plan moved the
                # target; the worker re-anchors its cosine, seer_torch.backends.base.continue_order).
                self.max_epochs = int(order.get("max_epochs", self.max_epochs))
                if self.until_epoch > self.max_epochs:
                    raise ConfigError("continue order until_epoch", self.until_epoch,
                                      f"an epoch <= max_epochs={self.max_epochs}")
                self._train_start_unix_s = time.time()
        finally:
            self._release_sigterm()

    @property
    def stopping(self) -> bool:
        """Whether this epoch is the launch's last because the job was told to stop (SIGTERM:
        the tuner's deadline or stop, an interrupted ``seer tune``): it is saved after its
        :meth:`report`, and the launch ends. The same on every rank once :meth:`train_batches`'
        loop has ended (decided there, over all ranks); the built-in worker then evaluates its
        test set, as at a target. Whether a stop waits for the epoch is
        :data:`STOP_SAVE_WINDOW_S`' rule (:meth:`_on_sigterm`)."""
        return self._stopping

    def _catch_sigterm(self) -> None:
        """Take SIGTERM while the epochs train (:meth:`_on_sigterm`); the main thread only."""
        if self._previous_sigterm is not None or threading.current_thread() is not threading.main_thread():
            return
        self._previous_sigterm = (signal.getsignal(signal.SIGTERM),)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _release_sigterm(self) -> None:
        """Give SIGTERM back to the handler it had before :meth:`_catch_sigterm`."""
        if self._previous_sigterm is None:
            return
        (previous,), self._previous_sigterm = self._previous_sigterm, None
        with contextlib.suppress(ValueError):  # not the main thread (a generator closed elsewhere)
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        """Told to stop while training: finish the epoch in progress and save it when that fits
        :data:`STOP_SAVE_WINDOW_S` (judged by the launch's previous epoch and the last save);
        else, or with no epoch timed yet, end as the handler before ours would (the default:
        at once)."""
        if self._epoch_wall_s is not None:
            in_epoch = self._reported < self._yielded  # between its start and its report
            more = self._reported < self.until_epoch
            elapsed_s = time.perf_counter() - self._epoch_start_s
            # in an epoch: its time left; between two: the next whole epoch; after the last: none
            left_s = (max(0.0, self._epoch_wall_s - elapsed_s) if in_epoch
                      else self._epoch_wall_s if more else 0.0)
            if left_s + self._save_s <= STOP_SAVE_WINDOW_S:
                if self.is_main and not self._stop_asked:
                    print(f"seer trial: told to stop: saving after epoch {self._reported + int(more)} "
                          f"(about {left_s:.1f} s away)", file=sys.stderr, flush=True)
                self._stop_asked = True
                return
        self._release_sigterm()
        os.kill(os.getpid(), signum)

    def _park(self) -> dict[str, Any]:
        """Wait, alive, for the tuner's next order (:func:`seer_torch.trial_keepalive.park`), with
        TensorBoard flushed first and the heartbeat kept fresh; returns the order
        (``{"action": "stop"}`` when the tuner is gone or the wait timed out)."""
        if self._writer is not None:
            self._writer.flush()

        def heartbeat() -> None:
            if time.time() - self._heartbeat_unix_s > PARK_HEARTBEAT_S:
                self.heartbeat()

        order, self._generation = park(self.trial_dir, self._generation, self._saved_epoch,
                                       is_main=self.is_main, heartbeat=heartbeat)
        return order

    def train_batches(self, num_samples: int, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        """The optimizer steps of ``epoch``: for each, this rank's micro-batches, as int64
        index tensors ``(micro_batch,)`` into the training set (``accum_steps`` of them).

        The training order is one permutation of ``range(num_samples)`` per ``(seed, epoch)``;
        global batch ``s`` is its ``s``-th run of ``global_batch`` indices and rank ``r``
        trains its ``r``-th contiguous part (:func:`seer_torch.data.rank_train_batch`), so the
        union over ranks is the same at every ``W``. ``num_samples // global_batch`` steps; the
        last ``num_samples % global_batch`` of each permutation are not trained that epoch.
        A profile probe's launch (``$SEER_PROBE_STEPS=K``, set by the profiler) trains only the
        first ``K`` steps of each epoch.

        Raises:
            ConfigError: ``num_samples`` below ``global_batch`` (no step in an epoch).
        """
        num_steps = data.steps_per_epoch(num_samples, self.global_batch)
        if num_steps < 1:
            raise ConfigError("global_batch", self.global_batch,
                              f"at most the {num_samples} training samples")
        permutation = data.epoch_permutation(self.seed, epoch, num_samples)
        measure_s, measured = time.perf_counter(), 0
        probe_start_s = measure_s
        if self._probe_steps is not None:  # a profile probe trains the epoch's first steps only
            self._probe_steps_per_epoch = num_steps
            num_steps = min(num_steps, self._probe_steps)
        for step_in_epoch in range(num_steps):
            if self._launch_steps == WARMUP_STEPS:  # a launch's first steps are warm-up
                synchronize(self.device)
                measure_s, measured = time.perf_counter(), 0
            batch = data.rank_train_batch(permutation, step_in_epoch, self._plan, self.rank)
            self._in_step, self._step_lr = True, None
            try:
                yield batch.micro_batch_indices()
            finally:  # also when the loop is left mid-step (a diverged loss): the step is not counted
                self._in_step = False
            if self._record_path:
                self._record(epoch, step_in_epoch, batch.indices)
            self._step += 1
            self._launch_steps += 1
            measured += 1
            if self.is_main and time.time() - self._heartbeat_unix_s > HEARTBEAT_S:
                self.heartbeat()
            if self._step_delay_s > 0:
                time.sleep(self._step_delay_s)
        synchronize(self.device)
        self._throughput = measured * self.global_batch / max(time.perf_counter() - measure_s, 1e-9)
        if self._previous_sigterm is not None:  # a stop asked of any rank is every rank's (one all-reduce)
            flag = torch.tensor([float(self._stop_asked or self._stopping)], device=self.device)
            self._stopping = bool(self.all_reduce_sum(flag).item())
        if self._probe_steps is not None:
            self._probe_train_s += time.perf_counter() - probe_start_s

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
        ``micro_batch``, ``accum_steps``, ``epoch_time_s`` (seconds since :meth:`epochs` began
        the epoch, less those in :meth:`untimed`), ``throughput_samples_per_s`` (training
        samples per second of :meth:`train_batches`, the launch's first :data:`WARMUP_STEPS`
        steps left out, when the epoch used it), ``train_start_unix_s`` (when :meth:`epochs`
        began the launch), ``time_unix_s`` and the metrics; writes each metric to TensorBoard
        (:meth:`log`'s x-axis), with ``perf/world_size`` and ``perf/throughput_samples_per_s``;
        touches the heartbeat. A metric that is NaN or infinite on any rank makes the line say
        ``"diverged": true`` (non-finite values written as null); :meth:`epochs` then stops
        without saving, and the trial ends there.

        Args:
            epoch: the epoch just trained, 1-based: the one after the last reported.
            metrics: numbers or 0-d tensors; must include :attr:`metric` (the experiment's
                ``metric``, ``val_accuracy`` by default); other names are free (units in the
                name: ``_s``).

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
                              f"the experiment's metric {self.metric!r} in every report (this one "
                              f"reports {', '.join(sorted(metrics)) or 'nothing'})")
        values = {}
        for name, value in metrics.items():
            if name in RESERVED_KEYS:
                raise ConfigError(f"report({name}=...)", value, f"a name other than {sorted(RESERVED_KEYS)}")
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                value = value.item()
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"report({name}=...)", value, "a number or a one-element tensor")
            values[name] = float(value) if isinstance(value, float) else value
        # Any rank's non-finite value counts, so that every rank stops after the same epoch; so
        # does a stop any rank was told of, and rank 0's clock saying a save is due (one all-reduce).
        save_due = self.is_main and time.time() - self._saved_unix_s >= CHECKPOINT_INTERVAL_S
        flags = torch.tensor([float(not all(math.isfinite(v) for v in values.values())),
                              float(self._stop_asked or self._stopping), float(save_due)], device=self.device)
        diverged, stopping, save_due = (bool(x > 0) for x in self.all_reduce_sum(flags).tolist())
        self._stopping, self._save_due = stopping, save_due
        line: dict[str, Any] = {
            "trial_id": self.trial_id, "epoch": epoch, "step": self._step,
            "samples_seen": self._step * self.global_batch, "world_size": self.world_size,
            "global_batch": self.global_batch, "micro_batch": self.micro_batch,
            "accum_steps": self.accum_steps,
            "epoch_time_s": time.perf_counter() - self._epoch_start_s - self._untimed_s,
        }
        if self._throughput is not None:
            line["throughput_samples_per_s"] = self._throughput
        if self._probe_steps_per_epoch is not None:
            line["probe_steps_per_epoch"] = self._probe_steps_per_epoch
            line["probe_train_s"] = self._probe_train_s
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

    def log(self, **scalars: float | torch.Tensor) -> None:
        """Write ``scalars`` to TensorBoard only (rank 0; no other rank need call it), such as
        each step's loss and learning rate. The x-axis, shared with :meth:`report`'s
        metrics, is the optimizer step: the step in progress inside a :meth:`train_batches`
        loop (1-based), the steps trained so far outside it. Being counted at the fixed global
        batch, it is the same at every ``W``, so a resized trial's curve goes on without a
        repeated or backward step. A script that does not draw its batches from
        :meth:`train_batches` counts no steps; its x-axis is the epoch. Nothing is written
        without a ``tensorboard_dir``; values must be numbers or one-element tensors."""
        if not self.is_main or not self.tensorboard_dir:
            return
        x = self._step + 1 if self._in_step else self._tensorboard_x(self._reported)
        writer = self._tensorboard_writer()
        for name, value in scalars.items():
            writer.add_scalar(name, float(value), x)

    @contextlib.contextmanager
    def untimed(self) -> Iterator[None]:
        """Leave the block's seconds out of the epoch's ``epoch_time_s``: the tuner reads it as
        what training and validating one epoch costs, so put work that is not, such as a
        test-set evaluation at the end of a launch, in here."""
        synchronize(self.device)
        start_s = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self._untimed_s += time.perf_counter() - start_s

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

    def _tensorboard_x(self, epoch: int) -> int:
        """TensorBoard's x-axis: the optimizer steps trained, or ``epoch`` for a script that
        counts none (one axis for every tag of a trial, so that ``purge_step`` works)."""
        return self._step if self._step > 0 else epoch

    def _tensorboard_writer(self) -> Any:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            # Events past the checkpoint's step (or epoch) belong to a launch that was killed: purged.
            purge = (self._loaded_step if self._loaded_step > 0 else self.start_epoch) + 1
            # TensorBoard reads a run's event files in name order, and a name starts with the
            # whole second its writer opened in, then the host and the pid: two of a trial's jobs
            # opened in one second (fast epochs) can be read later one first, and the earlier
            # one's purge_step then hides what the later one wrote (seen: a trial's last value
            # was its first epoch's). A writer never opens in the second of one already there.
            now = time.time()
            if any(Path(self.tensorboard_dir).glob(f"events.out.tfevents.{int(now):010d}.*")):
                time.sleep(math.floor(now) + 1.01 - now)
            self._writer = SummaryWriter(log_dir=self.tensorboard_dir, purge_step=purge)
        return self._writer

    def _tensorboard(self, epoch: int, values: Mapping[str, float]) -> None:
        if not self.tensorboard_dir:
            return
        x, writer = self._tensorboard_x(epoch), self._tensorboard_writer()
        for name, value in values.items():
            if math.isfinite(value):
                writer.add_scalar(name, value, x)
        writer.add_scalar("perf/world_size", self.world_size, x)
        if self._throughput is not None:
            writer.add_scalar("perf/throughput_samples_per_s", self._throughput, x)
        writer.flush()

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
        if self._lr_hook is not None:
            self._lr_hook.remove()
            self._lr_hook = None
        if dist.is_available() and dist.is_initialized():
            if clean:
                dist.barrier()
            dist.destroy_process_group()

    def __enter__(self) -> Trial:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish(clean=exc_type is None)

    def _record(self, epoch: int, step_in_epoch: int, indices: torch.Tensor) -> None:
        """``SEER_RECORD_SAMPLES=PATH`` (:data:`RECORD_SAMPLES_ENV`): after each step, each rank
        appends one line to ``PATH.rank<r>``: ``epoch``, ``step_in_epoch``, ``step`` (1-based),
        ``rank``, ``local_rank``, ``world_size``, ``micro_batch``, ``accum_steps``, ``lr`` (the
        first parameter group's learning rate when the step's first ``optimizer.step()`` ran,
        or null when none ran) and ``indices`` (the training-set indices this rank trained)."""
        if self._sample_log is None:
            self._sample_log = open(f"{self._record_path}.rank{self.rank}", "a", encoding="utf-8")  # noqa: SIM115
        self._sample_log.write(json.dumps({
            "epoch": epoch, "step_in_epoch": step_in_epoch, "step": self._step + 1, "rank": self.rank,
            "local_rank": self.local_rank, "world_size": self.world_size, "micro_batch": self.micro_batch,
            "accum_steps": self.accum_steps, "lr": self._step_lr, "indices": indices.tolist()}) + "\n")
        self._sample_log.flush()

    def _record_state(self, checkpoint: Callable[[], Mapping[str, Any]] | None, epoch: int) -> None:
        """``SEER_RECORD_STATES=PATH`` (:data:`RECORD_STATES_ENV`): ``checkpoint()`` (on every
        rank: it may run collectives) written by rank 0 to ``PATH.epoch<epoch>.pt``."""
        path = os.environ.get(RECORD_STATES_ENV)
        if not path or checkpoint is None:
            return
        state = dict(checkpoint())
        if self.is_main:
            torch.save(state, f"{path}.epoch{epoch}.pt")

    def _capture_lr(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        """A global optimizer pre-step hook while recording: the step's learning rate."""
        if self._in_step and self._step_lr is None:
            self._step_lr = float(optimizer.param_groups[0]["lr"])


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
