"""``seer bench record``: record a learning-curve table through the real worker.

Every configuration (drawn by :func:`seer_torch.config.sample_configurations`, with the ids a
``seer tune`` run of the same size gives: ``t000``, ``t001``, ...) trains as ONE torchrun job
at ``W = 1`` from epoch 1 to ``epochs`` (so the learning-rate schedule spans ``epochs``), with
``"test_every_epoch": true`` so the test split is evaluated after every epoch. ``slots`` jobs
run at a time on the :class:`~seer_torch.backends.local.LocalBackend`.

Run directory (resumable: a trial that is complete there is not run again, so an interrupted
recording continues where it stopped; a trial killed mid-way starts over)::

    RUN_DIR/
      recording.json            what is being recorded (experiment, count, epochs)
      trials/<id>/              config.json, metrics.jsonl, checkpoint.pt, stdout/stderr logs

A trial is complete when ``metrics.jsonl`` holds epochs ``1..epochs`` each with
``test_accuracy``, or ends with a divergence line (then its curves are NaN from that epoch on).

The table's ``epoch_time_s`` is the median of every measured epoch (``epoch_time_s`` of the
worker: training + validation, at ``W = 1``); each configuration also gets its own median.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seer_torch.backends.base import Backend, JobResult, JobSpec, job_error_text
from seer_torch.config import Experiment, sample_configurations
from seer_torch.curves import LearningCurveTable
from seer_torch.errors import ConfigError, WorkerError
from seer_torch.runfiles import atomic_write_json, read_metrics

RECORDING_FILE = "recording.json"
#: Launches per trial before the recording gives up on it (a failure may be transient).
MAX_ATTEMPTS = 2


def trial_ids(count: int) -> list[str]:
    """The ids a ``seer tune`` run with ``count`` configurations gives its trials."""
    width = max(3, len(str(max(count - 1, 0))))
    return [f"t{i:0{width}d}" for i in range(count)]


def recording_config(exp: Experiment, trial_id: str, configuration: dict[str, Any],
                     epochs: int) -> dict[str, Any]:
    """A recorded trial's ``config.json``: the tune run's, with the schedule spanning ``epochs``,
    the test split evaluated every epoch, and no TensorBoard."""
    from seer_torch.executor import trial_config

    config = trial_config(exp, trial_id, configuration, None, schedule_epochs=epochs)
    return {**config, "test_every_epoch": True}


@dataclass(frozen=True)
class TrialCurves:
    """What one trial's ``metrics.jsonl`` gives: curves (NaN after a divergence) and epoch times."""

    val: list[float]
    test: list[float] | None
    epoch_times_s: list[float]


def trial_curves(
    metrics: list[dict[str, Any]], epochs: int, metric: str = "val_accuracy"
) -> TrialCurves | None:
    """The curves of a complete trial, or ``None`` while it is incomplete: ``val`` is
    ``metric`` (the experiment's), ``test`` the worker's ``test_accuracy`` when the metric is
    ``val_accuracy`` (else ``None``: the worker reports no test value of another metric). Pure."""
    test_key = "test_accuracy" if metric == "val_accuracy" else None
    by_epoch: dict[int, dict[str, Any]] = {}
    diverged_at = None
    for row in metrics:
        e = row.get("epoch")
        if not isinstance(e, int):
            continue
        if row.get("diverged"):
            diverged_at = e if diverged_at is None else min(diverged_at, e)
        else:
            by_epoch[e] = row
    last = epochs if diverged_at is None else diverged_at - 1
    val, test, times = [], [], []
    for e in range(1, last + 1):
        row = by_epoch.get(e)
        if row is None or row.get(metric) is None or (test_key is not None and row.get(test_key) is None):
            return None
        val.append(float(row[metric]))
        if test_key is not None:
            test.append(float(row[test_key]))
        if row.get("epoch_time_s") is not None and row.get("world_size", 1) == 1:
            times.append(float(row["epoch_time_s"]))
    nan = float("nan")
    val += [nan] * (epochs - last)
    test += [nan] * (epochs - last)
    return TrialCurves(val, test if test_key is not None else None, times)


def record_table(
    exp: Experiment,
    backend: Backend,
    *,
    num_configurations: int,
    epochs: int,
    run_dir: Path,
    out: Path | None = None,
    on_event: Callable[[str], None] = lambda msg: None,
    poll_s: float = 0.2,
) -> LearningCurveTable:
    """Record (or finish recording) a table; write it to ``out`` if given, and return it.

    Raises:
        ConfigError: bad arguments, or ``run_dir`` holds a different recording.
        WorkerError: a trial failed :data:`MAX_ATTEMPTS` times (the others still ran; rerun to
            retry it, the completed trials are kept).
    """
    if (isinstance(num_configurations, bool) or not isinstance(num_configurations, int)
            or num_configurations < 1):
        raise ConfigError("--configurations", num_configurations, "an integer >= 1")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ConfigError("--epochs", epochs, "an integer >= 1")
    run_dir = Path(run_dir)
    ids = trial_ids(num_configurations)
    configurations = sample_configurations(exp, num_configurations)
    configs = {tid: recording_config(exp, tid, conf, epochs) for tid, conf in zip(ids, configurations)}
    _check_configs(configs)
    _claim_run_dir(run_dir, exp, epochs)
    done, pending = _recorded_and_pending(run_dir, configs, epochs)
    on_event(f"{len(done)} of {num_configurations} configurations already recorded in {run_dir}; "
             f"{len(pending)} to run, {backend.num_slots} at a time")
    failed = _run_pending(backend, run_dir, pending, done, epochs=epochs,
                          num_configurations=num_configurations, on_event=on_event, poll_s=poll_s)
    if failed:
        lines = "; ".join(f"{tid}: {why}" for tid, why in sorted(failed.items()))
        raise WorkerError(
            f"{len(failed)} of {num_configurations} configurations failed ({lines}); the other "
            f"{len(done)} are kept in {run_dir}: run the same command again to retry"
        )
    table = build_table(exp, ids, configurations, done, epochs)
    if out is not None:
        table.save(out)
    return table


def _recorded_and_pending(run_dir: Path, configs: dict[str, dict[str, Any]],
                          epochs: int) -> tuple[dict[str, TrialCurves], list[str]]:
    """Each trial's ``config.json`` written (or checked, when there); returns the complete
    trials' curves and the ids still to run, in order.

    Raises:
        ConfigError: a trial folder holds another recording's ``config.json``.
    """
    pending: list[str] = []
    done: dict[str, TrialCurves] = {}
    for tid, config in configs.items():
        d = run_dir / "trials" / tid
        path = d / "config.json"
        if path.exists():
            try:
                existing = json.loads(path.read_text())
            except ValueError:
                existing = None
            if existing != config:
                raise ConfigError(
                    "--run-dir", str(run_dir),
                    f"a fresh folder or one holding this same recording ({d / 'config.json'} differs "
                    f"from what this experiment draws for {tid})",
                )
        else:
            atomic_write_json(path, config)
        curves = _curves_in(d, epochs)
        if curves is not None:
            done[tid] = curves
        else:
            pending.append(tid)
    return done, pending


def _run_pending(backend: Backend, run_dir: Path, pending: list[str], done: dict[str, TrialCurves], *,
                 epochs: int, num_configurations: int, on_event: Callable[[str], None],
                 poll_s: float) -> dict[str, str]:
    """Run the pending trials, ``backend.num_slots`` at a time, each to ``epochs`` at ``W = 1``
    (a failed one once more); adds the complete ones to ``done`` and returns why each of the
    others failed. Running jobs are stopped when this ends by an exception."""
    attempts: dict[str, int] = {}
    failed: dict[str, str] = {}
    running: dict[str, Any] = {}
    t0 = time.monotonic()
    try:
        while pending or running:
            while pending and len(running) < backend.num_slots:
                tid = pending.pop(0)
                attempts[tid] = attempts.get(tid, 0) + 1
                spec = JobSpec(trial_id=tid, trial_dir=run_dir / "trials" / tid, world_size=1,
                               until_epoch=epochs)
                running[tid] = backend.launch(spec)
            finished = [(tid, res) for tid, h in running.items() if (res := backend.poll(h)) is not None]
            for tid, res in finished:
                del running[tid]
                _finish(tid, res, epochs, done, pending, failed, attempts, on_event)
                if tid in done:
                    elapsed = time.monotonic() - t0
                    c = done[tid]
                    final = c.val[-1]
                    on_event(
                        f"{tid} recorded ({len(done)}/{num_configurations}, {elapsed:.0f} s): "
                        f"val {final:.4f} after {epochs} epochs"
                        + (f", {statistics.median(c.epoch_times_s):.2f} s/epoch" if c.epoch_times_s else "")
                    )
            if not finished:
                time.sleep(poll_s)
    finally:
        for h in running.values():
            backend.stop(h)
    return failed


def build_table(
    exp: Experiment, ids: list[str], configurations: list[dict[str, Any]], done: dict[str, TrialCurves],
    epochs: int,
) -> LearningCurveTable:
    """The table from complete trials' curves. Pure."""
    all_times = [t for tid in ids for t in done[tid].epoch_times_s]
    entries = []
    for tid, conf in zip(ids, configurations):
        c = done[tid]
        entry: dict[str, Any] = {"id": tid, "config": conf, "val": c.val}
        if c.test is not None:
            entry["test"] = c.test
        if c.epoch_times_s:
            entry["epoch_time_s"] = statistics.median(c.epoch_times_s)
        entries.append(entry)
    return LearningCurveTable.parse({
        "name": exp.name,
        "metric": exp.metric,
        "mode": exp.mode,
        "max_epochs": epochs,
        "epoch_time_s": statistics.median(all_times) if all_times else 1.0,
        "configs": entries,
        "meta": {
            "source": "seer bench record",
            "model": exp.model.name,
            "dataset": exp.data.dataset,
            "seed": exp.seed,
            "global_batch": exp.training.global_batch,
            "world_size": 1,
            "epoch_time_note": "median of the worker's epoch_time_s (training + validation) at W=1, "
                               "measured with several jobs sharing the machine",
            "recorded_unix_s": time.time(),
        },
    })


def _curves_in(trial_dir: Path, epochs: int) -> TrialCurves | None:
    """:func:`trial_curves` of the trial in ``trial_dir``, of the metric its ``config.json``
    names (the recording's experiment's)."""
    config = json.loads((trial_dir / "config.json").read_text())
    metric = config.get("metric") or "val_accuracy"
    return trial_curves(read_metrics(trial_dir / "metrics.jsonl"), epochs, metric)


def _finish(
    tid: str, res: JobResult, epochs: int, done: dict[str, TrialCurves], pending: list[str],
    failed: dict[str, str], attempts: dict[str, int], on_event: Callable[[str], None],
) -> None:
    curves = _curves_in(res.spec.trial_dir, epochs)
    if res.returncode == 0 and curves is not None:
        done[tid] = curves
        return
    why = job_error_text(res) if res.returncode != 0 else "the job ended without all epochs in metrics.jsonl"
    if attempts[tid] < MAX_ATTEMPTS:
        on_event(f"{tid} failed ({why}); retrying")
        pending.append(tid)
    else:
        on_event(f"{tid} failed ({why}); giving up on it")
        failed[tid] = why


def _check_configs(configs: dict[str, dict[str, Any]]) -> None:
    from seer_torch.training.config import TrialConfig

    for i, (tid, conf) in enumerate(configs.items()):
        try:
            TrialConfig.from_dict(conf)
        except ConfigError as e:
            fld = e.field.replace("configuration.", "search_space.", 1)
            raise ConfigError(fld, e.value, e.allowed + f" (configuration {i}, {tid})") from None


def _claim_run_dir(run_dir: Path, exp: Experiment, epochs: int) -> None:
    """Write ``recording.json``, or check that the one there describes this recording."""
    meta = {"experiment": exp.name, "seed": exp.seed, "model": exp.model.name, "dataset": exp.data.dataset,
            "epochs": epochs}
    path = run_dir / RECORDING_FILE
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        if old != meta:
            raise ConfigError(
                "--run-dir", str(run_dir),
                f"a fresh folder or one holding this same recording ({path} records {old})",
            )
        return
    if (run_dir / "trials").exists() and any((run_dir / "trials").iterdir()):
        raise ConfigError("--run-dir", str(run_dir),
                          f"a fresh folder or one made by seer bench record (no {path})")
    atomic_write_json(path, meta)
