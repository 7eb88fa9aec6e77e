"""The profile probe (``python -m seer_torch.worker --profile-steps K``): throughput at this
world size, timed in windows, and one timed validation pass; what
:mod:`seer_torch.scaling.profiler` turns into a scaling profile. It trains on the trial API's
batches (:meth:`seer_torch.trial.Trial.train_batches`) with the training step itself
(:meth:`~seer_torch.training.trainer.Trainer.train_step`), so it times what training runs.

With a probe plan in the trial folder (:data:`seer_torch.runfiles.PROBE_PLAN_FILE`, written by
the profiler: ``{"w1_configurations": [configuration, ...]}``) one job measures everything a
profile needs, so that a run pays one launch for it rather than one per measurement: each
listed configuration at W = 1 on every rank side by side (each rank trains its own copy
through a W = 1 view of the trial, as the run's W = 1 trials train beside each other), in
:data:`W1_ROUNDS` rounds with the job's own measurement at its ``W`` (DDP over every rank) timed
in the gaps between them: the machine's speed drifts, and both measurements then span the same
stretch of it.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch.distributed as dist

from seer_torch.errors import ConfigError
from seer_torch.runfiles import PROBE_PLAN_FILE, atomic_write_text, read_json_or_none
from seer_torch.training.config import CONFIG_FILE, TrialConfig
from seer_torch.training.trainer import WARMUP_STEPS, Trainer, build_trainer
from seer_torch.trial import DistEnv, Trial, synchronize

#: Timed windows of a probe's measurement at its ``W``; its step time is their median (a shared
#: machine's load bursts move one window, not the median). A probe plan's W = 1 rounds time
#: ``PROFILE_WINDOWS // W1_ROUNDS`` windows each on every rank.
PROFILE_WINDOWS = 6
#: A probe plan's W = 1 rounds; the job's own measurement at its ``W`` is timed in the gaps
#: between them, so that both are spread over the same stretch of the machine's drift.
W1_ROUNDS = 3


def profile(t: Trial, config: TrialConfig, steps: int, out_path: str) -> None:
    """Measure throughput at this world size: :data:`WARMUP_STEPS` warm-up steps, then
    ``steps`` timed optimizer steps (wrapping around epochs) in :data:`PROFILE_WINDOWS`
    windows, then one timed validation pass. ``step_time_s`` is the median over the windows of
    their seconds per step, so that a burst of load on a shared machine during one window does
    not move it (``step_time_windows_s`` lists them all). Rank 0 writes ``out_path`` (JSON). No
    checkpoint, metrics or TensorBoard.

    With a probe plan (the module docstring), also each of its configurations at W = 1 on every
    rank, :data:`W1_ROUNDS` rounds of ``ceil(steps / W1_ROUNDS)`` timed steps in
    ``PROFILE_WINDOWS // W1_ROUNDS`` windows, and one timed validation pass each; the job's own
    ``steps`` are then timed in halves between the rounds (:func:`_measure_plan`); at ``W = 1``
    the job's own measurement is the plan's first configuration's.

    Raises:
        ConfigError: ``steps`` below 1, or a probe plan that is not a list of configurations
            (a configuration the model does not take: as :meth:`TrialConfig.from_dict`).
    """
    if steps < 1:
        raise ConfigError("--profile-steps", steps, "an integer >= 1")
    w1_configurations = _plan_configurations(t)
    if w1_configurations:
        result = _measure_plan(t, config, steps, w1_configurations)
    else:
        trainer = build_trainer(t, config, None)
        trainer.model.train()
        steps_of = _Steps(trainer)
        steps_of.run(WARMUP_STEPS)
        train_start_unix_s = time.time()
        windows, train_s = steps_of.timed(steps, PROFILE_WINDOWS)
        eval_time_s = _timed_eval(trainer)
        result = {**_header(t, config, trainer), **_measurement(t.global_batch, windows, steps),
                  "measured_train_s": train_s, "eval_time_s": eval_time_s,
                  "train_start_unix_s": train_start_unix_s}
    if t.is_main:
        atomic_write_text(out_path, json.dumps(result, indent=2) + "\n")


def _plan_configurations(t: Trial) -> list[dict[str, Any]]:
    """The probe plan's ``w1_configurations`` (empty without a plan file).

    Raises:
        ConfigError: the plan is not ``{"w1_configurations": [object, ...]}``.
    """
    plan = read_json_or_none(t.trial_dir / PROBE_PLAN_FILE)
    if plan is None:
        return []
    confs = plan.get("w1_configurations") if isinstance(plan, dict) else None
    if not isinstance(confs, list) or not confs or not all(isinstance(c, dict) for c in confs):
        raise ConfigError(f"{PROBE_PLAN_FILE}.w1_configurations", confs,
                          "a non-empty list of configurations (JSON objects)")
    return confs


def _measure_plan(t: Trial, config: TrialConfig, steps: int,
                  confs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Everything of a probe plan in this one job (every rank runs it; the result is rank 0's).

    In order: the job's own trainer at ``W > 1`` is built and warmed up (what a training
    launch pays too); then each configuration's W = 1 trainer, warmed up; the W = 1 rounds (each
    configuration at W = 1 on every rank at once, in alternating order) with half of the job's
    own timed steps at its ``W`` after each but the last; the job's sharded validation pass, and
    each configuration's at W = 1. A W = 1 step time is the mean over the rounds of each round's
    median over every rank's windows. At ``W = 1`` the first configuration's trainer is the
    launch's own. ``probe_work_s`` counts rank 0's seconds
    after the launch's own set-up and warm-up until the last measurement: the profiler takes
    the job's start-up as its duration less those.
    """
    raw = json.loads((t.trial_dir / CONFIG_FILE).read_text(encoding="utf-8"))
    per_round = -(-steps // W1_ROUNDS)  # timed steps of a W = 1 round, on each rank
    round_windows = max(1, PROFILE_WINDOWS // W1_ROUNDS)
    per_chunk = -(-steps // (W1_ROUNDS - 1))  # the job's own measurement, between the rounds
    chunk_windows = max(1, PROFILE_WINDOWS // (W1_ROUNDS - 1))
    job_steps = None
    if t.world_size > 1:
        job = build_trainer(t, config, None)
        job.model.train()
        job_steps = _Steps(job)
        job_steps.run(WARMUP_STEPS)
    work_start_s = time.perf_counter()
    local: list[_Steps] = []
    builds = []  # seconds to build each W = 1 trainer in this warm process
    for i, conf in enumerate(confs):
        build_start_s = time.perf_counter()
        local_config = TrialConfig.from_dict({**raw, "configuration": conf})
        trainer = build_trainer(_w1_view(t, local_config), local_config, None)
        builds.append(time.perf_counter() - build_start_s)
        trainer.model.train()
        local.append(_Steps(trainer))
        local[-1].run(WARMUP_STEPS)
        if i == 0 and job_steps is None:
            work_start_s = time.perf_counter()  # at W = 1 the first trainer is the launch's own
    train_start_unix_s = time.time()
    rounds: list[list[list[float]]] = [[] for _ in confs]  # per configuration, per round: windows
    job_windows: list[float] = []
    job_train_s = 0.0
    for r in range(W1_ROUNDS):
        order = range(len(confs)) if r % 2 == 0 else reversed(range(len(confs)))
        for i in order:
            rounds[i].append(_side_by_side(t, local[i], per_round, round_windows))
        if job_steps is not None and r < W1_ROUNDS - 1:  # the job's own W between the rounds
            _barrier(t)
            windows, seconds = job_steps.timed(per_chunk, chunk_windows)
            job_windows += windows
            job_train_s += seconds
    if job_steps is not None:
        job_eval_s = _timed_eval(job_steps.trainer)
    evals = []
    for s in local:
        _barrier(t)
        evals.append(_timed_eval(s.trainer))
    work_s = time.perf_counter() - work_start_s
    # Every rank's windows and validation seconds, to rank 0.
    mine = {"rounds": rounds, "evals": evals, "builds": builds}
    everyone = [mine]
    if t.world_size > 1:
        everyone = [None] * t.world_size
        dist.all_gather_object(everyone, mine)
    w1 = []
    for i, conf in enumerate(confs):
        per_round_windows = [[w for rank in everyone for w in rank["rounds"][i][r]] for r in range(W1_ROUNDS)]
        # Each round's median over all ranks' windows; the configuration at their mean.
        step_time_s = statistics.fmean(statistics.median(ws) for ws in per_round_windows)
        batch = local[i].trainer.t.global_batch
        w1.append({
            "configuration": conf,
            "throughput_samples_per_s": batch / step_time_s,
            "step_time_s": step_time_s,
            "round_step_times_s": [statistics.median(ws) for ws in per_round_windows],
            "step_time_windows_s": per_round_windows,
            "eval_time_s": statistics.fmean(rank["evals"][i] for rank in everyone),
            "build_s": statistics.fmean(rank["builds"][i] for rank in everyone),
            "measured_steps": per_round * W1_ROUNDS,
            "ranks": len(everyone),
            "num_train_samples": local[i].trainer.splits.num_train,
        })
    if job_steps is not None:
        own = {**_header(t, config, job_steps.trainer),
               **_measurement(t.global_batch, job_windows, per_chunk * (W1_ROUNDS - 1)),
               "measured_train_s": job_train_s, "eval_time_s": job_eval_s}
    else:  # W = 1: the job's own measurement is the first configuration's
        first = w1[0]
        keys = ("throughput_samples_per_s", "step_time_s", "measured_steps", "eval_time_s")
        own = {**_header(t, config, local[0].trainer), **{k: first[k] for k in keys},
               "step_time_windows_s": [w for ws in first["step_time_windows_s"] for w in ws]}
    return {**own, "train_start_unix_s": train_start_unix_s, "probe_work_s": work_s, "w1": w1}


def _w1_view(t: Trial, config: TrialConfig) -> Trial:
    """The trial at W = 1 in this process (whatever the job's ``W``): ``config``'s
    configuration and batch, this rank's device, no process group (nothing is reduced or
    broadcast across ranks), never finished (the job's own :class:`Trial` leaves the group)."""
    raw = {"trial_id": t.trial_id, "configuration": dict(config.configuration), "seed": t.seed,
           "global_batch": config.global_batch, "micro_batch_max": config.micro_batch_max,
           "max_epochs": config.max_epochs, "metric": t.metric, "tensorboard_dir": None}
    return Trial(t.trial_dir, raw, 1, DistEnv(rank=0, local_rank=t.local_rank, world_size=1, device=t.device))


def _side_by_side(t: Trial, steps_of: _Steps, steps: int, windows: int) -> list[float]:
    """One W = 1 round of a configuration: every rank starts together (a barrier) and times
    ``steps`` steps of its own copy in ``windows`` windows; returns this rank's windows."""
    _barrier(t)
    return steps_of.timed(steps, windows)[0]


def _barrier(t: Trial) -> None:
    if t.world_size > 1:
        dist.barrier()


def _header(t: Trial, config: TrialConfig, trainer: Trainer) -> dict[str, Any]:
    """The probe's identity and batch plan at the job's ``W``."""
    return {
        "trial_id": config.trial_id,
        "model": config.model,
        "dataset": config.dataset,
        "world_size": t.world_size,
        "global_batch": t.global_batch,
        "micro_batch": t.micro_batch,
        "accum_steps": t.accum_steps,
        "warmup_steps": WARMUP_STEPS,
        "num_train_samples": trainer.splits.num_train,
        "num_val_samples": int(trainer.splits.val_y.shape[0]),
        "device": t.device.type,
    }


def _measurement(global_batch: int, windows: list[float], steps: int) -> dict[str, Any]:
    step_time_s = statistics.median(windows)
    return {"throughput_samples_per_s": global_batch / step_time_s, "step_time_s": step_time_s,
            "step_time_windows_s": windows, "measured_steps": steps}


def _timed_eval(trainer: Trainer) -> float:
    """Seconds of one validation pass (sharded over the trainer's ranks)."""
    start = time.perf_counter()
    trainer.evaluate(trainer.splits.val_x, trainer.splits.val_y)
    synchronize(trainer.t.device)
    return time.perf_counter() - start


class _Steps:
    """A trainer's optimizer steps in the trial's data order, epoch after epoch, for as long as
    they are asked for (a probe may train fewer or more steps than an epoch has)."""

    def __init__(self, trainer: Trainer) -> None:
        self.trainer = trainer
        self._steps = self._all_steps()

    def _all_steps(self) -> Iterator[tuple[int, int, tuple[Any, ...]]]:
        t, num_train, epoch = self.trainer.t, self.trainer.splits.num_train, 0
        while True:
            epoch += 1
            for step_in_epoch, micro_batches in enumerate(t.train_batches(num_train, epoch)):
                yield epoch, step_in_epoch, micro_batches

    def run(self, steps: int) -> None:
        """Train ``steps`` steps, untimed."""
        for _ in range(steps):
            self.trainer.train_step(*next(self._steps))

    def timed(self, steps: int, windows: int) -> tuple[list[float], float]:
        """Train ``steps`` steps in windows of ``max(1, steps // windows)`` steps (the last one
        takes the remainder); returns the seconds per step of each window and the seconds of
        all of them."""
        size = max(1, steps // windows)
        synchronize(self.trainer.t.device)
        start = window_start = time.perf_counter()
        out: list[float] = []
        done = 0
        for i in range(steps):
            self.trainer.train_step(*next(self._steps))
            done += 1
            if (done == size and len(out) < windows - 1) or i == steps - 1:
                synchronize(self.trainer.t.device)
                now = time.perf_counter()
                out.append((now - window_start) / done)
                window_start, done = now, 0
        return out, time.perf_counter() - start
