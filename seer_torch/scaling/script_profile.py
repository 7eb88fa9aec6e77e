"""The profile of a user's own torchrun script (``[trial] script``): short jobs of the script
itself at each world size, measured from what the trial API writes.

A probe is one ordinary launch of the script (its own argv, ``SEER_TRIAL_DIR`` and
``SEER_UNTIL_EPOCH=1``) in a scratch trial folder whose ``config.json`` holds the probe
configuration (:func:`seer_torch.scaling.profiler.probe_configuration`), with
``SEER_PROBE_STEPS=K`` in its environment: :meth:`seer_torch.trial.Trial.train_batches` then
trains only the first ``K`` optimizer steps of the epoch, and the epoch's metrics line says how
many steps the whole epoch has (``probe_steps_per_epoch``) and how long the trained ones took
(``probe_train_s``). From that line and the job's duration (:func:`script_probe_record`):

- ``epoch_s`` = the epoch's seconds outside training steps (``epoch_time_s - probe_train_s``:
  evaluation, the script's own per-epoch work) + the whole epoch's training at the measured
  steady throughput (``probe_steps_per_epoch x global_batch / throughput_samples_per_s``; the
  trial's throughput leaves out a launch's first 3 steps);
- ``startup_s`` = the job's seconds outside its epoch (``job_s - (time_unix_s -
  train_start_unix_s)``: imports, data, model, process group, checkpoint save, exit) + the
  warm-up steps' seconds beyond the steady rate (``probe_train_s - steps x global_batch /
  throughput``), which every launch pays once.

A script that does not train through ``train_batches`` (its own data loader) never sees the
step limit and is probed for a whole epoch: ``epoch_s`` is its ``epoch_time_s``.

Then (:func:`profile_from_script_probes`) ``speedup[W] = epoch_s(1) / epoch_s(W)``: the whole
epoch, evaluation included, is what the planner predicts at each W (``epoch_time_s /
speedup[W]``), so the speedup is taken over whole epochs rather than over training steps
alone; the W = 1 probe runs twice, side by side when the slots allow (as the run's W = 1 trials
train beside each other), and counts at the mean of its two epochs, as the built-in worker's
W = 1 rounds do. The
profile is the same format as the built-in worker's (:class:`~seer_torch.scaling.profile.Profile`):
the planner needs no change.

Effects (jobs) in :func:`run_script_probes`; the arithmetic is pure.
"""

from __future__ import annotations

import json
import shutil
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from seer_torch.backends.base import Backend, JobResult, JobSpec
from seer_torch.clock import Clock
from seer_torch.errors import WorkerError
from seer_torch.runfiles import atomic_write_json, read_metrics
from seer_torch.scaling.profile import Profile
from seer_torch.scaling.profiler import PROFILE_STEPS, run_side_by_side

__all__ = ["PROFILE_STEPS", "profile_from_script_probes", "run_script_probes", "script_probe_record",
           "script_probe_schedule"]


def script_probe_record(line: dict[str, Any], job_s: float) -> dict[str, Any]:
    """What one probe launch measured, from its epoch-1 metrics line and its job's seconds. Pure.

    Args:
        line: the probe's metrics line of epoch 1 (written by :meth:`seer_torch.trial.Trial.report`):
            ``world_size``, ``epoch_time_s`` and, when the script trains through ``train_batches``,
            ``throughput_samples_per_s``, ``global_batch``, ``step``, ``probe_steps_per_epoch``,
            ``probe_train_s``; ``train_start_unix_s`` and ``time_unix_s`` when present.
        job_s: the probe job's seconds, launch to exit.

    Returns:
        ``{"world_size", "job_s", "epoch_s", "startup_s", "measured_epoch_s", "steps",
        "steps_per_epoch", "global_batch", "train_samples_per_s", "extrapolated"}``: ``epoch_s``
        one whole epoch at this world size (seconds), ``startup_s`` the launch's fixed seconds
        (formulas in the module docstring), ``measured_epoch_s`` the line's ``epoch_time_s``,
        ``extrapolated`` whether the probe trained fewer steps than an epoch has; the step
        fields are ``None`` for a script that does not use ``train_batches``.

    Raises:
        ValueError: the line has no positive ``epoch_time_s`` or no ``world_size``.
    """
    epoch_time_s = line.get("epoch_time_s")
    if not isinstance(epoch_time_s, (int, float)) or not epoch_time_s > 0 or "world_size" not in line:
        raise ValueError(f"a probe's metrics line needs world_size and epoch_time_s > 0; got {line!r}")
    measured_s = float(epoch_time_s)
    if "train_start_unix_s" in line and "time_unix_s" in line:
        in_epoch_s = float(line["time_unix_s"]) - float(line["train_start_unix_s"])
    else:
        in_epoch_s = measured_s
    startup_s = max(0.0, job_s - in_epoch_s)
    thr = line.get("throughput_samples_per_s")
    full = line.get("probe_steps_per_epoch")
    record: dict[str, Any] = {"world_size": int(line["world_size"]), "job_s": float(job_s),
                              "measured_epoch_s": measured_s, "steps": None, "steps_per_epoch": None,
                              "global_batch": line.get("global_batch"), "train_samples_per_s": None,
                              "extrapolated": False}
    if isinstance(thr, (int, float)) and thr > 0 and isinstance(full, int) and "probe_train_s" in line:
        batch, steps, train_s = int(line["global_batch"]), int(line["step"]), float(line["probe_train_s"])
        steady_s = steps * batch / float(thr)  # the trained steps at the steady rate
        epoch_s = max(0.0, measured_s - train_s) + full * batch / float(thr)
        startup_s += max(0.0, train_s - steady_s)  # the warm-up steps' extra seconds
        record.update(steps=steps, steps_per_epoch=full, train_samples_per_s=float(thr),
                      extrapolated=steps < full)
    else:
        epoch_s = measured_s
    record.update(epoch_s=epoch_s, startup_s=startup_s)
    return record


def profile_from_script_probes(
    name: str, records: Sequence[dict[str, Any]], source: str, resize_s: float | None = None
) -> Profile:
    """A scaling profile from :func:`script_probe_record` records (one or more per world size).
    Pure.

    ``epoch_time_s`` is the mean ``epoch_s`` of the W = 1 records; ``speedup[W]`` the W = 1
    mean over the mean at ``W``; ``startup_s`` the median of every record's start-up (one slow
    launch does not set it); ``resize_s`` the given one (measured relaunches,
    :func:`seer_torch.scaling.profiler.resize_s_from_launches`) or ``startup_s``;
    ``throughput_samples_per_s`` the samples of one epoch's training steps over its
    ``epoch_s`` at each W (whole epochs, so their ratios are the speedups), or empty when the
    script does not train through ``train_batches``.

    Raises:
        ValueError: no W = 1 record, or a negative ``resize_s``.
    """
    if resize_s is not None and not resize_s >= 0:
        raise ValueError(f"resize_s: got {resize_s!r}; allowed: seconds >= 0")
    by_w: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        by_w.setdefault(int(r["world_size"]), []).append(r)
    if 1 not in by_w:
        raise ValueError("a profile needs a W=1 probe")
    world_sizes = sorted(by_w)
    epoch_s = [statistics.fmean(float(r["epoch_s"]) for r in by_w[w]) for w in world_sizes]
    samples = [r["steps_per_epoch"] * r["global_batch"] if r.get("steps_per_epoch") else None
               for r in records]
    per_epoch = samples[0] if samples and all(s == samples[0] for s in samples) else None
    startup_s = statistics.median(float(r["startup_s"]) for r in records)
    return Profile(
        name=name,
        world_sizes=tuple(world_sizes),
        speedup=tuple(epoch_s[0] / e for e in epoch_s),
        epoch_time_s=epoch_s[0],
        startup_s=startup_s,
        resize_s=startup_s if resize_s is None else float(resize_s),
        throughput_samples_per_s=tuple(per_epoch / e for e in epoch_s) if per_epoch else (),
        source=source,
    )


def script_probe_schedule(world_sizes: Sequence[int], num_slots: int) -> list[list[int]]:
    """The world sizes of a script's probes, in batches of jobs that run at the same time: W = 1
    twice (side by side when ``num_slots >= 2``, as the run's W = 1 trials train beside each
    other; their mean counts), then each larger of ``world_sizes`` alone. Pure."""
    larger = [[int(w)] for w in world_sizes if int(w) > 1]
    return ([[1, 1]] if num_slots >= 2 else [[1], [1]]) + larger


def run_script_probes(
    backend: Backend,
    clock: Clock,
    probe_dir: Path,
    trial_config: dict[str, Any],
    world_sizes: Sequence[int],
    *,
    script: Path,
    script_args: Sequence[str] = (),
    on_job_end: Callable[[JobResult], None] = lambda r: None,
    over_budget: Callable[[list[tuple[float, int]]], str | None] = lambda held: None,
    probe_steps: int = PROFILE_STEPS,
    timeout_s: float = 300.0,
) -> list[dict[str, Any]]:
    """Run the script's probe jobs (:func:`script_probe_schedule` on ``backend.num_slots``), a
    batch at a time, and return one :func:`script_probe_record` per job, in launch order; also
    written to ``probe_dir/probes.json``.

    Each probe trains epoch 1 of a fresh trial in its own folder under ``probe_dir``
    (``w1``, ``w1-2``, ``w2``, ...; emptied first) whose ``config.json`` is
    ``trial_config`` without TensorBoard, ``probe_steps`` optimizer steps at most.
    ``on_job_end`` and ``over_budget`` are as in :func:`seer_torch.scaling.profiler.run_probes`.

    Raises:
        ValueError: ``probe_steps`` below 1.
        WorkerError: a probe failed, ran past ``timeout_s``, or wrote no metrics line for epoch
            1 (with the script's error, or where its log is).
        BudgetExhausted: a hard limit was reached while profiling.
    """
    if probe_steps < 1:
        raise ValueError(f"probe_steps: got {probe_steps}; allowed: an integer >= 1")
    records: list[dict[str, Any]] = []
    count: dict[int, int] = {}
    for sizes in script_probe_schedule(world_sizes, backend.num_slots):
        jobs = []
        for w in sizes:
            count[w] = count.get(w, 0) + 1
            name = f"w{w}" if count[w] == 1 else f"w{w}-{count[w]}"
            d = probe_dir / name
            _fresh_trial_dir(d, trial_config)
            spec = JobSpec(trial_id=f"profile-{name}", trial_dir=d, world_size=w, until_epoch=1,
                           profile_steps=probe_steps, script=Path(script), script_args=tuple(script_args))
            jobs.append((spec, f"profile probe of the script at W={w}"))
        # Raises WorkerError with the script's own error when a job fails.
        results = run_side_by_side(backend, clock, jobs, f"profiling at W={'+'.join(map(str, sizes))}",
                                   on_job_end, over_budget, timeout_s)
        for (spec, job), res in zip(jobs, results):
            d = Path(spec.trial_dir)
            lines = [x for x in read_metrics(d / "metrics.jsonl") if x.get("epoch") == 1]
            if not lines or lines[-1].get("diverged"):
                why = "its epoch 1 diverged" if lines else "it exited 0 without a metrics line for epoch 1"
                raise WorkerError(f"{job} failed: {why} (see {d / 'stderr.log'})")
            try:
                records.append(script_probe_record(lines[-1], res.duration_s))
            except ValueError as e:
                raise WorkerError(f"{job}: {e} (report through seer_torch.trial, which writes "
                                  "epoch_time_s)") from None
    atomic_write_json(probe_dir / "probes.json", records)
    return records


def _fresh_trial_dir(d: Path, config: dict[str, Any]) -> None:
    """Empty the probe folder ``d`` (a scratch folder the profiler owns) and write its
    ``config.json`` without TensorBoard."""
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({**config, "tensorboard_dir": None}, indent=2))
