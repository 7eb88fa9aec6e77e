#!/usr/bin/env python
"""seer-torch beside its peers: the same small job through seer-torch, Ray Tune ASHA (with and
without ``reuse_actors``) and Optuna's successive-halving pruner (2 processes), one tool after
the other in one run, each alone on the machine.

::

    pip install -e '.[peers]'                          # Optuna and Ray Tune (never needed otherwise)
    python scripts/bench_peers.py                      # seed 0: the job below, every tool
    python scripts/bench_peers.py --seeds 0 1 --json bench_out/peers.json
    python scripts/bench_peers.py --seeds 0 1 --deadline-from-peers   # + seer with each peer's time
    python scripts/bench_peers.py --num-configurations 9 --max-epochs 9 --tools seer optuna_procs  # smoke

**The job, the same for every tool**: the built-in ``digits_cnn`` on the built-in digits split
(:func:`seer_torch.data.load_dataset`: the same train/val/test samples), the embedded default's
search space (``seer_torch/experiments/digits_default.toml``), ``--num-configurations`` (27)
configurations drawn at random, rungs at 1, 3, 9 and 27 epochs (``--max-epochs`` 27, ``--eta``
3, first rung 1 epoch), global batch 64, SGD with Nesterov momentum 0.9 and the coupled weight
decay, the learning rate on a cosine from its peak to 0 over ``max_epochs`` epochs of optimizer
steps (:func:`seer_torch.training.schedule.cosine_schedule`, the built-in worker's), on 2 CPU
slots, one thread per trial process. Every trial of a peer uses the experiment seed for its
initial weights, its data order (:func:`seer_torch.data.epoch_permutation`) and its dropout (the
worker's per-epoch seeds), as seer's worker does at W = 1: one epoch loop, :class:`EpochLoop`.

**The tools** (the drivers :func:`run_seer`, :func:`run_ray`, :func:`run_optuna`):

- ``seer``: :func:`seer_torch.tune` on the embedded default with the job's epochs, eta, batch,
  slots, seed and ``search.max_configurations`` = the job's configurations, a generous
  deadline (``--seer-deadline-s``, 3600 s) and money (100 USD): it profiles, plans and runs its
  jobs as ``seer tune`` does.
- ``ray_reuse_actors`` and ``ray_no_reuse``: a class ``Trainable`` (one epoch a ``step``,
  ``reset_config`` rebuilds the model for the next trial) under ``ASHAScheduler(max_t=27,
  grace_period=1, reduction_factor=3)``, ``num_samples=27`` drawn by Ray's random search,
  1 CPU a trial, ``ray.init(num_cpus=2)``; with ``reuse_actors=True`` and without.
- ``optuna_procs``: ``SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)``, a random
  sampler, one study in a ``JournalStorage`` file shared by 2 processes (``spawn``), 27 trials
  in all; each trial reports the validation accuracy every epoch and stops when pruned.

**What it prints**, per tool and seed, then the means over the seeds: ``wall_s``, wall time end
to end (seer: the :func:`~seer_torch.tune` call, profiling included; Ray: ``ray.init`` to
``Tuner.fit`` returning, not ``ray.shutdown``; Optuna: creating the study to both processes
joined, their start-up included); ``test_acc``, the test accuracy of the tool's chosen
configuration (seer: its answer's, as ``results.json`` has it; a peer: the trial with the best
validation accuracy among those that reached the furthest epoch any trial reached, its test
accuracy at that epoch -- each peer trial evaluates the test split at each rung, outside its
timed epochs); ``val_acc`` and ``epochs`` of that choice; ``configs``, the configurations
trained; ``trial_epochs``, the epochs trained summed over trials; ``train_share``, the
slot-seconds spent inside training and validation epochs (each epoch's time x its world size,
summed over trials) over ``wall_s`` x 2 slots; ``load_1m``, the machine's 1-minute load average
as the tool started (a quiet machine reads well under 1). Last, on lines of their own, the
ratios of the mean wall times::

    ratio seer/ray_reuse_actors: X
    ratio seer/optuna_procs: Y

``--deadline-from-peers`` then runs seer once more per peer and seed with that peer's measured
wall time as ``time_budget_s`` and prints whether it answered and the answer's test accuracy
beside the peer's. ``--deadline-profile measure`` (the default) lets each of those runs profile
as a new user's would; ``reuse`` plans them with the profile the seed's side-by-side seer run
measured (``seer tune --profile RUN/profile.json``); ``both`` runs each way (the reused
profile's runs are named ``seer+profile@PEER``). ``--json OUT`` saves every figure (after each run).

The peers are imported only by their drivers; without them the script says to ``pip install -e
'.[peers]'`` before it starts anything. The pure parts (choosing a peer's answer, the table, the
means and the ratio lines) are tested in ``tests/unit/test_bench_peers.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

SEER, RAY_REUSE, RAY_NO_REUSE, OPTUNA_PROCS = "seer", "ray_reuse_actors", "ray_no_reuse", "optuna_procs"
TOOLS = (SEER, RAY_REUSE, RAY_NO_REUSE, OPTUNA_PROCS)
PEERS = TOOLS[1:]
#: The ratios printed last: seer's mean wall time over these tools'.
RATIO_TOOLS = (RAY_REUSE, OPTUNA_PROCS)
#: The Python package each tool needs beyond seer-torch.
TOOL_PACKAGES = {SEER: None, RAY_REUSE: "ray", RAY_NO_REUSE: "ray", OPTUNA_PROCS: "optuna"}
INSTALL_HINT = "pip install -e '.[peers]'"

#: The built-in worker's per-epoch dropout seed is ``derive_seed(salt, seed, epoch, rank)`` with
#: this salt (seer_torch/trial.py, ``Trial.epochs``); the peers' loop seeds rank 0's the same way.
DROPOUT_SALT = 0x5EED_0003
MOMENTUM = 0.9  # the built-in worker's default Nesterov momentum
GENEROUS_MONEY_USD = 100.0


@dataclass(frozen=True)
class Job:
    """The job every tool runs. Epochs are passes over the digits training split."""

    num_configurations: int = 27
    max_epochs: int = 27
    eta: int = 3
    min_epochs: int = 1
    global_batch: int = 64
    num_slots: int = 2
    seed: int = 0

    @property
    def rungs(self) -> tuple[int, ...]:
        """The epochs where a trial may be stopped: ``min_epochs * eta**k`` below
        ``max_epochs``, then ``max_epochs`` (1, 3, 9, 27 for the defaults)."""
        rungs, epoch = [], self.min_epochs
        while epoch < self.max_epochs:
            rungs.append(epoch)
            epoch *= self.eta
        return (*rungs, self.max_epochs)


@dataclass
class TrialRecord:
    """One trial of a tool: its configuration, validation accuracy after each epoch it
    trained, test accuracy where measured, and seconds spent in its epochs (training +
    validation) times the world size."""

    config: dict[str, Any]
    val_by_epoch: dict[int, float] = field(default_factory=dict)
    test_by_epoch: dict[int, float] = field(default_factory=dict)
    train_slot_s: float = 0.0

    @property
    def epochs(self) -> int:
        return max(self.val_by_epoch, default=0)


@dataclass(frozen=True)
class ToolResult:
    """What one tool did on one seed. Accuracies in [0, 1] (NaN: no answer, or not measured)."""

    tool: str
    seed: int
    wall_s: float
    test_accuracy: float
    val_accuracy: float
    best_epochs: int
    configurations: int
    trial_epochs: int
    train_slot_s: float
    num_slots: int
    load_1m: float
    answered: bool = True
    time_budget_s: float | None = None  # set for a seer run given a peer's wall time
    note: str = ""

    @property
    def training_share(self) -> float:
        """Slot-seconds in training and validation epochs over the slot-seconds of the run."""
        return self.train_slot_s / (self.wall_s * self.num_slots) if self.wall_s > 0 else math.nan


# --- the pure parts: choosing a peer's answer, summarising, the table and the ratios -------------


def pick_best(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """A peer's chosen configuration: the best validation accuracy among the trials that reached
    the furthest epoch any trial reached (ties: the earlier trial); ``None`` when no trial
    trained an epoch. A NaN accuracy (a diverged trial) never wins."""
    furthest = max((r.epochs for r in records), default=0)
    best = None
    for record in records:
        if furthest == 0 or record.epochs != furthest:
            continue
        value = record.val_by_epoch[furthest]
        if math.isfinite(value) and (best is None or value > best.val_by_epoch[furthest]):
            best = record
    return best


def summarize(tool: str, job: Job, wall_s: float, records: Sequence[TrialRecord], *,
              load_1m: float) -> ToolResult:
    """A peer's :class:`ToolResult` from its trials (the answer by :func:`pick_best`)."""
    best = pick_best(records)
    epochs = 0 if best is None else best.epochs
    return ToolResult(
        tool=tool, seed=job.seed, wall_s=wall_s,
        test_accuracy=math.nan if best is None else best.test_by_epoch.get(epochs, math.nan),
        val_accuracy=math.nan if best is None else best.val_by_epoch[epochs], best_epochs=epochs,
        configurations=sum(1 for r in records if r.epochs > 0),
        trial_epochs=sum(len(r.val_by_epoch) for r in records),
        train_slot_s=sum(r.train_slot_s for r in records), num_slots=job.num_slots, load_1m=load_1m,
        answered=best is not None,
    )


_NUMERIC = ("wall_s", "test_accuracy", "val_accuracy", "best_epochs", "configurations", "trial_epochs",
            "train_slot_s", "load_1m")


def mean_by_tool(results: Iterable[ToolResult]) -> dict[str, ToolResult]:
    """Per tool, in first-seen order, a :class:`ToolResult` whose numbers are the means over
    its seeds (``seed`` -1; ``answered`` only when every seed answered; a NaN accuracy makes the
    mean NaN)."""
    groups: dict[str, list[ToolResult]] = {}
    for result in results:
        groups.setdefault(result.tool, []).append(result)
    means = {}
    for tool, group in groups.items():
        numbers = {name: sum(getattr(r, name) for r in group) / len(group) for name in _NUMERIC}
        means[tool] = replace(group[0], seed=-1, answered=all(r.answered for r in group), note="",
                              **numbers)
    return means


_COLUMNS = ("tool", "seed", "wall_s", "test_acc", "val_acc", "epochs", "configs", "trial_epochs",
            "train_share", "load_1m")


def table_lines(results: Iterable[ToolResult]) -> list[str]:
    """The result table: a header, then one line per result (``seed`` ``mean`` for -1; an
    accuracy not measured prints ``-``)."""
    def acc(value: float) -> str:
        return f"{value:.4f}" if math.isfinite(value) else "-"

    rows = [_COLUMNS]
    for r in results:
        rows.append((r.tool, "mean" if r.seed < 0 else str(r.seed), f"{r.wall_s:.1f}", acc(r.test_accuracy),
                     acc(r.val_accuracy), f"{r.best_epochs:g}", f"{r.configurations:g}",
                     f"{r.trial_epochs:g}", f"{r.training_share:.2f}", f"{r.load_1m:.2f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]


def ratios(means: Mapping[str, ToolResult]) -> dict[str, float | None]:
    """seer's mean wall time over each of :data:`RATIO_TOOLS`'; ``None`` where either did not run."""
    seer = means.get(SEER)
    return {tool: (seer.wall_s / means[tool].wall_s if seer is not None and tool in means else None)
            for tool in RATIO_TOOLS}


def ratio_lines(means: Mapping[str, ToolResult]) -> list[str]:
    """The lines printed last: ``ratio seer/TOOL: X`` (two decimals, ``n/a`` when not run)."""
    return [f"ratio seer/{tool}: {'n/a' if value is None else f'{value:.2f}'}"
            for tool, value in ratios(means).items()]


def deadline_line(run: ToolResult, peer: ToolResult) -> str:
    """One ``--deadline-from-peers`` run beside the peer whose wall time was its deadline."""
    who = run.tool.split("@")[0]
    if not run.answered:
        answer = f"{who} answered: no"
    else:
        test = f"{run.test_accuracy:.4f}" if math.isfinite(run.test_accuracy) else "not measured"
        verdict = ""
        if math.isfinite(run.test_accuracy) and math.isfinite(peer.test_accuracy):
            verdict = " (>= peer)" if run.test_accuracy >= peer.test_accuracy else " (< peer)"
        answer = (f"{who} answered: yes, test accuracy {test}{verdict}, {run.best_epochs} epochs, "
                  f"{run.configurations} configurations")
    note = f" [{run.note}]" if run.note else ""
    return (f"deadline from {peer.tool} seed {peer.seed} ({peer.wall_s:.1f} s; its test accuracy "
            f"{peer.test_accuracy:.4f}): {answer}; wall {run.wall_s:.1f} s{note}")


def missing_packages(tools: Iterable[str]) -> list[str]:
    """The packages the chosen tools need that are not installed, sorted."""
    return sorted({pkg for tool in tools
                   if (pkg := TOOL_PACKAGES[tool]) and importlib.util.find_spec(pkg) is None})


# --- the search space -----------------------------------------------------------------------------


def search_space() -> tuple[Any, ...]:
    """The embedded default experiment's search space (:class:`seer_torch.config.ParamSpec`s)."""
    from seer_torch.config import load_experiment

    return load_experiment(None).search_space


def _ray_space(tune: Any) -> dict[str, Any]:
    makers = {"uniform": lambda p: tune.uniform(p.low, p.high),
              "loguniform": lambda p: tune.loguniform(p.low, p.high),
              "int_uniform": lambda p: tune.randint(int(p.low), int(p.high) + 1),
              "choice": lambda p: tune.choice(list(p.choices)), "fixed": lambda p: p.value}
    return {p.name: makers[p.kind](p) for p in search_space()}


def _optuna_suggest(trial: Any, specs: Sequence[Any]) -> dict[str, Any]:
    makers = {"uniform": lambda p: trial.suggest_float(p.name, p.low, p.high),
              "loguniform": lambda p: trial.suggest_float(p.name, p.low, p.high, log=True),
              "int_uniform": lambda p: trial.suggest_int(p.name, int(p.low), int(p.high)),
              "choice": lambda p: trial.suggest_categorical(p.name, list(p.choices)),
              "fixed": lambda p: p.value}
    return {p.name: makers[p.kind](p) for p in specs}


# --- the one epoch loop every peer trains with ----------------------------------------------------


def load_splits() -> Any:
    """The built-in digits split (:func:`seer_torch.data.load_dataset`), as the worker reads it."""
    from seer_torch.data import load_dataset

    return load_dataset("digits", None)


class EpochLoop:
    """One configuration of ``digits_cnn`` trained one epoch at a time at W = 1, as the
    built-in worker trains it: initial weights from ``torch.manual_seed(seed)``, each epoch's
    order :func:`~seer_torch.data.epoch_permutation`, global batches of ``job.global_batch``
    (the permutation's tail short of a batch is left out), dropout seeded per epoch, SGD with
    Nesterov momentum, the cosine over ``job.max_epochs`` epochs of steps stepped per step.

    Args:
        config: the configuration: ``lr``, ``weight_decay`` and the model's hyperparameters.
        splits: :func:`load_splits`'s.
        job: the job (seed, epochs, batch).
    """

    def __init__(self, config: Mapping[str, Any], splits: Any, job: Job) -> None:
        import torch

        from seer_torch.data import steps_per_epoch
        from seer_torch.models import build_model
        from seer_torch.training.config import TRAINING_HPARAMS
        from seer_torch.training.schedule import cosine_schedule

        self.splits, self.job, self.epoch, self.train_s = splits, job, 0, 0.0
        self.steps = steps_per_epoch(splits.num_train, job.global_batch)
        hparams = {k: v for k, v in config.items() if k not in TRAINING_HPARAMS}
        torch.manual_seed(job.seed)
        self.model = build_model("digits_cnn", num_classes=splits.num_classes, input_shape=splits.input_shape,
                                 **hparams)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config["lr"], momentum=MOMENTUM,
                                         weight_decay=config.get("weight_decay", 0.0), nesterov=True)
        self.scheduler = cosine_schedule(self.optimizer, job.max_epochs * self.steps)

    def train_epoch(self) -> float:
        """Train the next epoch and validate; returns the validation accuracy. Its seconds
        (training + validation) are added to :attr:`train_s`."""
        import torch
        from torch import nn

        from seer_torch.data import derive_seed, epoch_permutation

        start = time.perf_counter()
        epoch, batch, s = self.epoch + 1, self.job.global_batch, self.splits
        torch.manual_seed(derive_seed(DROPOUT_SALT, self.job.seed, epoch, 0))
        order = epoch_permutation(self.job.seed, epoch, s.num_train)
        self.model.train()
        for step in range(self.steps):
            idx = order[step * batch:(step + 1) * batch]
            loss = nn.functional.cross_entropy(self.model(s.train_x[idx]), s.train_y[idx])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
        accuracy = self.accuracy(s.val_x, s.val_y)
        self.epoch, self.train_s = epoch, self.train_s + time.perf_counter() - start
        return accuracy

    def accuracy(self, x: Any, y: Any) -> float:
        """Accuracy in [0, 1] over a whole split (evaluation mode)."""
        import torch

        self.model.eval()
        with torch.no_grad():
            correct = (self.model(x).argmax(dim=1) == y).sum().item()
        return correct / int(y.shape[0])

    def test_accuracy(self) -> float:
        return self.accuracy(self.splits.test_x, self.splits.test_y)


# --- the drivers ----------------------------------------------------------------------------------


def _load_1m() -> float:
    return os.getloadavg()[0]


def seer_experiment(job: Job, time_budget_s: float, profile: str | None = None) -> dict[str, Any]:
    """The embedded default as a dict, with the job's epochs, eta, batch, slots, seed and
    configurations, the deadline given and a generous money budget."""
    from seer_torch.config import default_experiment_path

    raw = tomllib.loads(default_experiment_path().read_text())
    raw["seed"] = job.seed
    raw["training"].update(max_epochs=job.max_epochs, eta=job.eta, min_epochs=job.min_epochs,
                           global_batch=job.global_batch, micro_batch_max=job.global_batch)
    raw["budget"].update(time_budget_s=time_budget_s, money_budget_usd=GENEROUS_MONEY_USD)
    raw["resources"]["num_slots"] = job.num_slots
    raw["search"]["max_configurations"] = job.num_configurations
    if profile is not None:
        raw.setdefault("planner", {})["profile"] = profile
    return raw


def seer_records(run_dir: Path) -> list[TrialRecord]:
    """Each trial of a seer run from its ``metrics.jsonl``: validation and test accuracy by
    epoch, and ``epoch_time_s x world_size`` summed (a resumed epoch counts once, as kept)."""
    records = []
    for metrics in sorted((run_dir / "trials").glob("*/metrics.jsonl")):
        record = TrialRecord(config=json.loads((metrics.parent / "config.json").read_text())["configuration"])
        for line in metrics.read_text().splitlines():
            row = json.loads(line)
            if row.get("diverged"):
                continue
            epoch = int(row["epoch"])
            record.val_by_epoch[epoch] = math.nan if row["val_accuracy"] is None else row["val_accuracy"]
            if row.get("test_accuracy") is not None:
                record.test_by_epoch[epoch] = row["test_accuracy"]
            record.train_slot_s += row["epoch_time_s"] * row["world_size"]
        records.append(record)
    return records


def run_seer(job: Job, work_dir: Path, *, time_budget_s: float, profile: str | None = None,
             name: str = SEER) -> ToolResult:
    """seer-torch through its Python entry point (:func:`seer_torch.tune`); its own answer."""
    import seer_torch
    from seer_torch.errors import ConfigError

    run_dir = work_dir / f"{name}-seed{job.seed}"
    load_1m = _load_1m()
    start = time.perf_counter()
    note = ""
    try:
        results = seer_torch.tune(seer_torch.experiment(seer_experiment(job, time_budget_s, profile)),
                                  run_dir, progress=False)
    except ConfigError as error:  # e.g. a deadline no plan fits
        results, note = None, str(error)
    wall_s = time.perf_counter() - start
    records = seer_records(run_dir) if (run_dir / "trials").is_dir() else []
    base = summarize(name, job, wall_s, records, load_1m=load_1m)
    if results is None or results.best_config is None:
        return replace(base, test_accuracy=math.nan, val_accuracy=math.nan, best_epochs=0, answered=False,
                       time_budget_s=time_budget_s, note=note or (results.stop_reason or "no answer"))
    return replace(base, test_accuracy=results.best_metrics.get("test_accuracy", math.nan),
                   val_accuracy=results.best_value, best_epochs=results.best_epochs,
                   time_budget_s=time_budget_s,
                   note="partial: its schedule did not finish" if results.partial else "")


def _ray_trainable(tune: Any) -> type:
    """A class ``Trainable`` over :class:`EpochLoop`: one epoch a ``step``, the test split at
    each rung (untimed), ``reset_config`` so an actor can be reused for the next trial."""

    class DigitsTrainable(tune.Trainable):
        def setup(self, config: dict[str, Any]) -> None:
            import torch

            torch.set_num_threads(1)
            self.splits = load_splits()
            self._start(config)

        def _start(self, config: dict[str, Any]) -> None:
            self.job = Job(**config["job"])
            self.loop = EpochLoop(config["hparams"], self.splits, self.job)

        def step(self) -> dict[str, Any]:
            before = self.loop.train_s
            val = self.loop.train_epoch()
            result = {"val_accuracy": val, "epoch_time_s": self.loop.train_s - before,
                      "test_accuracy": math.nan}
            if self.loop.epoch in self.job.rungs:
                result["test_accuracy"] = self.loop.test_accuracy()
            return result

        def reset_config(self, new_config: dict[str, Any]) -> bool:
            self._start(new_config)
            return True

    return DigitsTrainable


def run_ray(job: Job, work_dir: Path, *, reuse_actors: bool) -> ToolResult:
    """Ray Tune ASHA over a class ``Trainable``, ``ray.init(num_cpus=job.num_slots)``."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    if __name__ != "__main__":  # imported (a test): workers cannot import this file by name
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    name = RAY_REUSE if reuse_actors else RAY_NO_REUSE
    # A local instance needs no token (Ray would write one under ~/.ray).
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    load_1m = _load_1m()
    start = time.perf_counter()
    ray.init(num_cpus=job.num_slots, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(_ray_trainable(tune), {"cpu": 1}),
            param_space={"hparams": _ray_space(tune), "job": asdict(job)},
            tune_config=tune.TuneConfig(
                metric="val_accuracy", mode="max", num_samples=job.num_configurations,
                reuse_actors=reuse_actors,
                scheduler=ASHAScheduler(max_t=job.max_epochs, grace_period=job.min_epochs,
                                        reduction_factor=job.eta),
                search_alg=BasicVariantGenerator(random_state=job.seed)),
            run_config=tune.RunConfig(
                name=f"{name}-seed{job.seed}", storage_path=str(work_dir), verbose=0,
                stop={"training_iteration": job.max_epochs},
                checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=0, checkpoint_at_end=False)),
        )
        grid = tuner.fit()
        wall_s = time.perf_counter() - start
    finally:
        ray.shutdown()
    records = []
    for result in grid:
        frame = result.metrics_dataframe
        record = TrialRecord(config=dict(result.config["hparams"]))
        if frame is not None:
            for row in frame.itertuples():
                epoch = int(row.training_iteration)
                record.val_by_epoch[epoch] = float(row.val_accuracy)
                if math.isfinite(row.test_accuracy):
                    record.test_by_epoch[epoch] = float(row.test_accuracy)
                record.train_slot_s += float(row.epoch_time_s)
        records.append(record)
    return summarize(name, job, wall_s, records, load_1m=load_1m)


def _optuna_study_parts(optuna: Any, job: Job, index: int) -> dict[str, Any]:
    """The pruner and a sampler of its own for process ``index`` (neither is stored in the study)."""
    return {"pruner": optuna.pruners.SuccessiveHalvingPruner(min_resource=job.min_epochs,
                                                              reduction_factor=job.eta),
            "sampler": optuna.samplers.RandomSampler(seed=job.seed * 1000 + index)}


def _optuna_storage(optuna: Any, path: str) -> Any:
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(path))


def _optuna_process(path: str, study_name: str, job: Job, index: int) -> None:
    """One of the processes sharing the study: trials until the study holds ``job``'s number."""
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=_optuna_storage(optuna, path),
                              **_optuna_study_parts(optuna, job, index))
    splits, specs = load_splits(), search_space()

    def objective(trial: Any) -> float:
        if trial.number >= job.num_configurations:  # the other process started the last one
            trial.study.stop()
            raise optuna.TrialPruned()
        loop = EpochLoop(_optuna_suggest(trial, specs), splits, job)
        try:
            for epoch in range(1, job.max_epochs + 1):
                val = loop.train_epoch()
                trial.report(val, epoch)
                if epoch in job.rungs:
                    trial.set_user_attr(f"test_{epoch}", loop.test_accuracy())
                if trial.should_prune():
                    raise optuna.TrialPruned()
            return val
        finally:
            trial.set_user_attr("train_s", loop.train_s)

    study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(job.num_configurations, states=None)])


def run_optuna(job: Job, work_dir: Path) -> ToolResult:
    """Optuna's successive-halving pruner, one study shared by ``job.num_slots`` processes."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path, study_name = str(work_dir / f"optuna-seed{job.seed}.journal"), f"optuna-seed{job.seed}"
    load_1m = _load_1m()
    start = time.perf_counter()
    optuna.create_study(study_name=study_name, storage=_optuna_storage(optuna, path), direction="maximize",
                        **_optuna_study_parts(optuna, job, 0))
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_optuna_process, args=(path, study_name, job, i))
                 for i in range(job.num_slots)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    wall_s = time.perf_counter() - start
    failed = [p.exitcode for p in processes if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"bench_peers: an Optuna process exited with {failed[0]}")
    study = optuna.load_study(study_name=study_name, storage=_optuna_storage(optuna, path))
    records = [
        TrialRecord(config=dict(t.params), val_by_epoch=dict(t.intermediate_values),
                    test_by_epoch={int(k[5:]): v for k, v in t.user_attrs.items() if k.startswith("test_")},
                    train_slot_s=t.user_attrs.get("train_s", 0.0))
        for t in study.get_trials(deepcopy=False) if t.number < job.num_configurations
    ]
    return summarize(OPTUNA_PROCS, job, wall_s, records, load_1m=load_1m)


def run_tool(tool: str, job: Job, work_dir: Path, args: argparse.Namespace) -> ToolResult:
    if tool == SEER:
        return run_seer(job, work_dir, time_budget_s=args.seer_deadline_s, profile=args.profile)
    if tool in (RAY_REUSE, RAY_NO_REUSE):
        return run_ray(job, work_dir, reuse_actors=tool == RAY_REUSE)
    return run_optuna(job, work_dir)


# --- the command line -----------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds, each runs every tool (0)")
    parser.add_argument("--tools", nargs="+", choices=TOOLS, default=list(TOOLS), help="tools, in this order")
    parser.add_argument("--num-configurations", type=int, default=Job.num_configurations)
    parser.add_argument("--max-epochs", type=int, default=Job.max_epochs)
    parser.add_argument("--eta", type=int, default=Job.eta)
    parser.add_argument("--slots", type=int, default=Job.num_slots, help="CPU slots (2)")
    parser.add_argument("--seer-deadline-s", type=float, default=3600.0,
                        help="seer's time_budget_s in the side-by-side runs (3600: generous)")
    parser.add_argument("--profile",
                        help="a scaling profile every seer run plans with (default: it profiles)")
    parser.add_argument("--deadline-from-peers", action="store_true",
                        help="then run seer with each peer's wall time as its deadline")
    parser.add_argument("--deadline-profile", choices=("measure", "reuse", "both"), default="measure",
                        help="those runs profile (measure), plan with the profile the seed's side-by-side "
                             "seer run measured (reuse), or both")
    parser.add_argument("--json", help="save every figure to this JSON file")
    parser.add_argument("--work-dir", help="where the runs' files go (default: a temporary folder, removed)")
    return parser.parse_args(argv)


def _row(r: ToolResult) -> dict[str, Any]:
    """A result as JSON: its fields and training share, NaN (not measured) as null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in (asdict(r) | {"training_share": r.training_share}).items()}


def save_json(path: str, jobs: Sequence[Job], results: Sequence[ToolResult],
              deadline_runs: Sequence[tuple[ToolResult, ToolResult]], total_s: float) -> None:
    """Every figure so far, written atomically (after each run, so a run cut short keeps them)."""
    import seer_torch
    from seer_torch.runfiles import atomic_write_text

    means = mean_by_tool(results)
    out = {"job": asdict(jobs[0]) | {"seeds": [j.seed for j in jobs], "rungs": list(jobs[0].rungs)},
           "seer_torch": str(Path(seer_torch.__file__).parent), "total_s": total_s,
           "runs": [_row(r) for r in results], "means": {t: _row(m) for t, m in means.items()},
           "ratios": ratios(means),
           "deadline_runs": [{"peer": peer.tool, "seed": peer.seed, "peer_wall_s": peer.wall_s,
                              "peer_test_accuracy": _row(peer)["test_accuracy"], "seer": _row(run)}
                             for run, peer in deadline_runs]}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(out, indent=1, allow_nan=False) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    tools = [t for t in TOOLS if t in args.tools]
    missing = missing_packages(tools)
    if missing:
        print(f"bench_peers: {', '.join(missing)} not installed; the peers are an optional extra: "
              f"{INSTALL_HINT} (or leave them out with --tools)", file=sys.stderr)
        return 2
    if args.deadline_from_peers and not ({SEER} < set(tools) and set(tools) & set(PEERS)):
        print("bench_peers: --deadline-from-peers needs seer and at least one peer in --tools",
              file=sys.stderr)
        return 2
    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_peers-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    jobs = [Job(num_configurations=args.num_configurations, max_epochs=args.max_epochs, eta=args.eta,
                num_slots=args.slots, seed=seed) for seed in args.seeds]
    started = time.perf_counter()
    results: list[ToolResult] = []
    deadline_runs: list[tuple[ToolResult, ToolResult]] = []

    def save() -> None:
        if args.json:
            save_json(args.json, jobs, results, deadline_runs, time.perf_counter() - started)

    try:
        for job in jobs:
            for tool in tools:
                results.append(run_tool(tool, job, work_dir, args))
                print(table_lines(results[-1:])[1], flush=True)
                save()
        if args.deadline_from_peers:
            for job in jobs:
                measured = work_dir / f"{SEER}-seed{job.seed}" / "profile.json"
                ways = {"measure": [("seer", args.profile)], "reuse": [("seer+profile", str(measured))]}
                ways["both"] = ways["measure"] + ways["reuse"]
                for peer in (r for r in results if r.seed == job.seed and r.tool in PEERS):
                    for prefix, profile in ways[args.deadline_profile]:
                        run = run_seer(job, work_dir, time_budget_s=peer.wall_s, profile=profile,
                                       name=f"{prefix}@{peer.tool}")
                        deadline_runs.append((run, peer))
                        print(deadline_line(run, peer), flush=True)
                        save()
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    import seer_torch

    print(f"\njob: {asdict(jobs[0]) | {'seed': args.seeds}}, rungs {list(jobs[0].rungs)}; seer-torch from "
          f"{Path(seer_torch.__file__).parent}; {time.perf_counter() - started:.0f} s in all")
    for line in table_lines(results):
        print(line)
    means = mean_by_tool(results)
    if len(jobs) > 1:
        print(f"\nmeans over seeds {' '.join(map(str, args.seeds))}:")
        for line in table_lines(means.values()):
            print(line)
    for run, peer in deadline_runs:
        print(deadline_line(run, peer))
    for line in ratio_lines(means):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
