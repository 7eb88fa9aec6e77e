"""The Python entry point: tune from a notebook or a script what ``seer tune`` tunes from a shell.

The way Ray Tune's ``Tuner(...).fit()`` and Optuna's ``study.optimize`` are used: build or read
an experiment, run it, get its results back as an object::

    import seer_torch

    exp = seer_torch.load_experiment("examples/tabular_mlp/experiment.toml")
    # or built in Python, with the experiment file's tables and the same checks:
    exp = seer_torch.experiment({
        "name": "digits-small",
        "training": {"max_epochs": 9, "global_batch": 64},
        "budget": {"time_budget_s": 300, "money_budget_usd": 0.2},
        "resources": {"num_slots": 2, "world_size_ladder": [1, 2]},
        "search_space": {"lr": {"distribution": "loguniform", "low": 0.01, "high": 0.5},
                         "width": {"choices": [16, 32]}},
    })
    results = seer_torch.tune(exp, "runs/digits-small")      # torchrun jobs on this machine
    results.best_config, results.best_value                  # the answer and its metric
    [(t.trial_id, t.status, t.curve) for t in results.trials]
    results = seer_torch.Results.load("runs/digits-small")   # read back later

:func:`tune` runs the same code as ``seer tune`` (:func:`seer_torch.commands.tune.tune_run`:
the same checks, run directory, lock, tuner and files), and its :class:`Results` are read
back from the run's ``results.json``, so the command line and Python always agree. With
``backend="simulated"`` nothing trains: jobs take the time a scaling profile predicts and
report what a function of the configuration and the epoch returns, on a simulated clock (a
dry run of the policy in seconds; the run directory gets the same files).

An **epoch** is whatever fixed unit of training the training script counts between two
reports: a pass over the training data (the built-in worker), or, for large data, a fixed
number of optimizer steps. Rungs, the deadline's plan and the curves are all in these units;
the unit must be the same at every world size and for every configuration.

Errors are raised, never turned into an exit status: :class:`~seer_torch.errors.ConfigError`
for bad input (nothing is written then), ``KeyboardInterrupt`` after ``results.json`` was
written with what was completed (continue with :func:`resume`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from seer_torch.config import Experiment, load_experiment, parse_experiment
from seer_torch.errors import ConfigError

__all__ = ["BACKENDS", "Results", "TrialResult", "experiment", "load_experiment", "resume", "tune"]

#: Where :func:`tune` runs the trials: ``"local"`` (torchrun jobs on this machine, as ``seer
#: tune``) or ``"simulated"`` (a simulated clock; nothing trains).
BACKENDS = ("local", "simulated")

#: Called at each event of a run with a one-line message and the status numbers
#: (:meth:`seer_torch.executor.Tuner.status`: round, trials, time and money used, best so far).
EventHook = Callable[[str, dict[str, Any]], None]


def experiment(spec: Mapping[str, Any]) -> Experiment:
    """An experiment built in Python: ``spec`` holds what the experiment file holds, as a dict
    (top-level ``name``, ``seed``, ``metric``, ``mode``, ``python_path``, the tables ``data``,
    ``model``, ``training``, ``budget``, ``resources``, ``search``, ``planner``, ``failures``,
    ``trial`` and ``search_space``; docs/experiment-file.md). Checked exactly as a file is;
    relative paths in it (``trial.script``, ``planner.profile``, ``python_path``) are relative
    to the working directory.

    Raises:
        ConfigError: naming the field, the value and what is allowed.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError("experiment", type(spec).__name__, "a dict of the experiment file's tables")
    return parse_experiment(spec)


def _as_experiment(value: Experiment | Mapping[str, Any] | str | os.PathLike[str] | None) -> Experiment:
    if isinstance(value, Experiment):
        return value
    if isinstance(value, Mapping):
        return experiment(value)
    if value is None or isinstance(value, (str, os.PathLike)):
        return load_experiment(value)
    raise ConfigError("experiment", type(value).__name__,
                      "an Experiment, a dict of the experiment file's tables, or a TOML file's path")


def tune(
    experiment: Experiment | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    *,
    backend: str = "local",
    policy: str = "seer",
    time_budget_s: float | None = None,
    money_budget_usd: float | None = None,
    num_slots: int | None = None,
    profile: str | os.PathLike[str] | None = None,
    curve: Callable[[dict[str, Any], int], float] | None = None,
    progress: bool = True,
    on_event: EventHook | None = None,
    report: bool = True,
) -> Results:
    """Tune ``experiment`` to its answer and return its :class:`Results` (``seer tune``).

    Args:
        experiment: an :class:`~seer_torch.config.Experiment` (:func:`load_experiment`,
            :func:`experiment`), a dict as :func:`experiment` takes, a TOML file's path, or
            ``None`` for the embedded default.
        run_dir: the run's folder, new or empty (default ``runs/NAME-TIMESTAMP`` under the
            working directory); it gets every file ``seer tune`` leaves
            (docs/files-a-run-leaves.md).
        backend: one of :data:`BACKENDS`.
        policy: ``"seer"`` or a baseline: ``"sha"``, ``"hyperband"``, ``"asha"``,
            ``"elastic-sha"``, ``"elastic-uniform"``.
        time_budget_s, money_budget_usd, num_slots: override the experiment's (seconds, US
            dollars, worker slots), as ``--time-budget``, ``--money-budget``, ``--slots``.
        profile: a scaling-profile JSON file to plan with (``--profile``); ``"simulated"``
            needs one (here or in ``[planner] profile``): its epoch time, speedup and start-up
            are the simulated jobs' durations.
        curve: ``"simulated"`` only, and required there: ``curve(configuration, epoch)`` is
            the metric's value of that configuration (a dict of the search space's names)
            after ``epoch`` epochs (1-based); NaN means it diverged there.
        progress: print a line per event (the live status of ``seer tune``).
        on_event: called at each event instead (with ``progress``, as well).
        report: keep ``run_dir/report.html`` (``seer report``'s page) fresh: redrawn in the
            background after each completed round, at most every 30 s, and once more at the
            end (about 1-2 s of CPU each); ``False`` as ``seer tune --no-report``.

    Returns:
        The run's results, read back from ``run_dir/results.json``.

    Raises:
        ConfigError: bad input (the experiment, an argument, a profile file, a run directory
            that holds files); nothing is written then.
        RunDirInUse: another live process holds ``run_dir``.
        KeyboardInterrupt: interrupted; ``results.json`` holds what was completed
            (:func:`resume` continues it).
    """
    from seer_torch.commands.tune import default_run_dir, tune_run

    exp = _as_experiment(experiment).with_overrides(
        time_budget_s=time_budget_s, money_budget_usd=money_budget_usd, num_slots=num_slots,
        profile=None if profile is None else os.fspath(profile),
    )
    _check_policy(policy)
    if backend not in BACKENDS:
        raise ConfigError("backend", backend, f"one of {', '.join(BACKENDS)}")
    folder = Path(run_dir) if run_dir is not None else default_run_dir(exp)
    hook, live = _events(progress, on_event)
    if backend == "simulated":
        sim_backend, clock, prof = _simulated(exp, curve)
        tune_run(exp, folder, policy=policy, backend=sim_backend, clock=clock, profile=prof,
                 on_event=hook, live=live, report=report)
    else:
        if curve is not None:
            raise ConfigError("curve", curve, "None with backend='local' (the trials train and report)")
        tune_run(exp, folder, policy=policy, on_event=hook, live=live, report=report)
    return Results.load(folder)


def resume(run_dir: str | os.PathLike[str], *, num_slots: int | None = None,
           time_budget: str | float | None = None, money_budget: str | float | None = None,
           progress: bool = True, on_event: EventHook | None = None, report: bool = True) -> Results:
    """Continue the run journaled in ``run_dir`` (``seer resume``; what that does:
    :meth:`seer_torch.executor.Tuner.resume`) on this machine, and return its :class:`Results`.
    ``time_budget`` / ``money_budget``: as ``seer resume --time-budget/--money-budget``, a new
    total for the whole run (seconds, USD) or ``"+X"`` to add ``X``; with either, a run that
    ended by its budget goes on. ``report``: as :func:`tune`'s.

    Raises:
        ConfigError: ``run_dir`` holds no resumable run (or a finished run given no more
            budget), ``num_slots`` is below 1, or a budget is not a number above what the run
            has used.
        RunDirInUse: another live process holds ``run_dir``.
        KeyboardInterrupt: interrupted; ``results.json`` holds what was completed.
    """
    from seer_torch.commands.tune import resume_run

    hook, live = _events(progress, on_event)
    resume_run(Path(run_dir), num_slots=num_slots, time_budget=time_budget, money_budget=money_budget,
               on_event=hook, live=live, report=report)
    return Results.load(run_dir)


def _check_policy(policy: str) -> None:
    from seer_torch.policies.registry import POLICY_NAMES

    names = [p for p in POLICY_NAMES if p != "oracle"]  # the oracle needs a table's best in advance
    if policy not in names:
        raise ConfigError("policy", policy, f"one of {', '.join(names)}")


def _events(progress: bool, on_event: EventHook | None) -> tuple[EventHook | None, Any]:
    """The event hook and the live-status context of a run."""
    if not progress:
        return on_event, None
    from seer_torch.commands.status import LiveStatus

    status = LiveStatus()
    if on_event is None:
        return status.event, status

    def both(msg: str, st: dict[str, Any]) -> None:
        status.event(msg, st)
        on_event(msg, st)

    return both, status


def _simulated(exp: Experiment, curve: Any) -> tuple[Any, Any, Any]:
    """The simulated backend, its clock and the profile it takes its durations from."""
    from seer_torch.backends.simulated import SimulatedClock
    from seer_torch.scaling.profile import load_profile
    from seer_torch.simulate import simulated_backend

    if curve is None or not callable(curve):
        raise ConfigError("curve", curve, "a function curve(configuration, epoch) -> the metric's value, "
                                          "required with backend='simulated'")
    if exp.planner.profile is None:
        raise ConfigError("profile", None, "a scaling-profile JSON file with backend='simulated' "
                                           "(profile=PATH or [planner] profile): the simulated jobs take "
                                           "its times")
    prof = load_profile(exp.planner.profile)
    clock = SimulatedClock()
    backend = simulated_backend(exp.resources.num_slots, clock, prof, keep_alive=exp.resources.keep_alive,
                                curve=curve, metric=exp.metric)
    return backend, clock, prof


@dataclass(frozen=True)
class TrialResult:
    """One trial (one configuration) of a run, as ``results.json`` records it.

    Attributes:
        trial_id: its name (``t000``, ...), also its folder under ``RUN_DIR/trials``.
        config: its configuration (the search space's names and the drawn values).
        status: ``completed``, ``eliminated``, ``stopped``, ``failed``, ``diverged``, ...
            (:class:`seer_torch.executor.TrialStatus`).
        epochs: the epochs it trained (its checkpoint holds them).
        curve: the run's metric after each epoch it trained, ``{epoch: value}``, in epoch order.
        world_sizes: the world size of each of its jobs, in order.
        error: why it failed (the tail of its stderr for a script), or ``None``.
        failures: failed jobs (crashes, hangs) it was retried after.
    """

    trial_id: str
    config: Mapping[str, Any]
    status: str
    epochs: int
    curve: Mapping[int, float]
    world_sizes: tuple[int, ...]
    error: str | None
    failures: int


#: The answer's keys in ``results.json`` that are not metric values.
_BEST_KEYS = frozenset({"trial_id", "config", "epochs", "world_sizes", "schedule_epochs", "partial"})


@dataclass(frozen=True)
class Results:
    """What a run found and spent, read from its ``results.json`` (:meth:`load`).

    Attributes:
        run_dir: the run's folder.
        experiment: the experiment's name.
        policy: the policy that ran.
        metric: the metric the run optimized (``val_accuracy`` unless the experiment names one).
        mode: ``"max"`` or ``"min"``.
        best_trial_id: the answer's trial, or ``None`` when no trial completed a rung.
        best_config: the answer: its configuration, or ``None``.
        best_epochs: the epochs the answer was trained and is read at (0 without one).
        best_metrics: the answer's metric values at ``best_epochs`` by name (``metric``, and
            ``test_accuracy`` when it was measured); empty without one.
        partial: the answer's learning-rate schedule did not finish (a deadline stopped it).
        time_used_s, time_budget_s: seconds used and allowed (wall clock, profiling included).
        cost_usd, money_budget_usd: US dollars spent and allowed.
        stop_reason: why the run ended before its plan's end, or ``None``.
        trials: every trial, in launch order.
        raw: ``results.json`` as read (rounds, plan, profile, re-plans, the policy's report).
    """

    run_dir: Path
    experiment: str
    policy: str
    metric: str
    mode: str
    best_trial_id: str | None
    best_config: Mapping[str, Any] | None
    best_epochs: int
    best_metrics: Mapping[str, float]
    partial: bool
    time_used_s: float
    time_budget_s: float
    cost_usd: float
    money_budget_usd: float
    stop_reason: str | None
    trials: tuple[TrialResult, ...]
    raw: Mapping[str, Any]

    @property
    def best_value(self) -> float | None:
        """The answer's value of :attr:`metric`, or ``None`` without an answer."""
        return self.best_metrics.get(self.metric)

    def trial(self, trial_id: str) -> TrialResult:
        """The trial called ``trial_id``.

        Raises:
            KeyError: no such trial.
        """
        for t in self.trials:
            if t.trial_id == trial_id:
                return t
        raise KeyError(trial_id)

    @classmethod
    def load(cls, run_dir: str | os.PathLike[str]) -> Results:
        """The results of the run in ``run_dir``, from its ``results.json`` (written when a run
        ends, whatever ended it; rewritten by each resume).

        Raises:
            ConfigError: no ``results.json`` there, or one that is not a run's.
        """
        import json

        folder = Path(run_dir)
        path = folder / "results.json"
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError("run_dir", str(folder), "a run directory holding results.json (a run writes "
                                                      "it when it ends)") from None
        except (OSError, ValueError) as error:
            raise ConfigError("run_dir", str(folder), f"a readable results.json ({error})") from None
        try:
            return cls._from_dict(folder, raw)
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError("run_dir", str(folder),
                              f"a results.json written by seer-torch (it lacks or mangles {error})") from None

    @classmethod
    def _from_dict(cls, folder: Path, raw: Mapping[str, Any]) -> Results:
        metric = raw.get("metric", "val_accuracy")
        best = raw["best"]
        budget = raw["budget"]
        best_metrics = {} if best is None else {
            k: float(v) for k, v in best.items()
            if k not in _BEST_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        trials = tuple(
            TrialResult(
                trial_id=t["trial_id"],
                config=MappingProxyType(dict(t["config"])),
                status=t["status"],
                epochs=int(t["epochs"]),
                curve=MappingProxyType({
                    int(e): (math.nan if v is None else float(v))
                    for e, v in sorted(t.get("metric_by_epoch", {}).items(), key=lambda kv: int(kv[0]))
                }),
                world_sizes=tuple(t["world_sizes"]),
                error=t.get("error"),
                failures=int(t.get("failures", 0)),
            )
            for t in raw["trials"]
        )
        return cls(
            run_dir=folder,
            experiment=raw["experiment"],
            policy=raw["policy"],
            metric=metric,
            mode=raw.get("mode", "max"),
            best_trial_id=None if best is None else best["trial_id"],
            best_config=None if best is None else MappingProxyType(dict(best["config"])),
            best_epochs=0 if best is None else int(best["epochs"]),
            best_metrics=MappingProxyType(best_metrics),
            partial=bool(best and best.get("partial")),
            time_used_s=float(budget["time_used_s"]),
            time_budget_s=float(budget["time_budget_s"]),
            cost_usd=float(budget["cost_usd"]),
            money_budget_usd=float(budget["money_budget_usd"]),
            stop_reason=raw.get("stop_reason"),
            trials=trials,
            raw=MappingProxyType(dict(raw)),
        )
