"""Set-up outside the event loop: a trial's ``config.json``, the world sizes ``seer tune``
probes, the draws' costs, the profile it measures when none is given, and the policy's static
inputs (:class:`~seer_torch.policies.base.PolicyContext`). Pure, except
:func:`measure_profile` and :func:`measure_script_profile` (run probe jobs) and
:func:`draw_costs_needed` (imports torch).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seer_torch.backends.base import Backend, JobResult, JobSpec
from seer_torch.clock import Clock
from seer_torch.config import Experiment
from seer_torch.errors import ConfigError
from seer_torch.executor.budget import POLL_S, Held, experiment_billing
from seer_torch.policies.base import PolicyContext
from seer_torch.runfiles import atomic_write_json
from seer_torch.scaling import profiler, script_profile
from seer_torch.scaling.profile import Profile

#: Overhead of a kept-alive job handed its trial's next rung at the same ``W``, seconds, until a
#: profile measures it: the executor notices a parked job within one poll (``POLL_S``, half of
#: it on average) and the parked worker takes its next target within 0.01 s; no process starts,
#: nothing is imported or loaded again. An estimate; a run re-plans with the measured one
#: (``Snapshot.continue_overhead_s``).
CONTINUE_S = POLL_S / 2

#: Overhead of a ``W = 1`` job on the warm worker another trial's parked job left, seconds,
#: until a profile measures it: the executor's poll as for :data:`CONTINUE_S`, plus building the
#: trial's model and optimizer and reading its checkpoint in a process that already imported
#: torch and loaded the data. An estimate, a small fraction of a launch's start (most of which
#: is imports: docs/design.md, "Launch cost"), set from the warm starts runs measured
#: (docs/design-notes.md); a run re-plans with its own (``Snapshot.warm_start_overhead_s``).
WARM_START_S = 0.15


def tune_probe_world_sizes(exp: Experiment) -> list[int]:
    """The world sizes ``seer tune`` probes when it measures its own profile: the usable ones up
    to 2 (beyond, the scaling model extrapolates)."""
    return [w for w in exp.usable_world_sizes() if w <= 2]


def trial_config(
    exp: Experiment,
    trial_id: str,
    configuration: dict[str, Any],
    tensorboard_dir: Path | None,
    schedule_epochs: int | None = None,
) -> dict[str, Any]:
    """A trial's ``config.json`` content: what the worker reads. Pure.

    ``schedule_epochs`` is the horizon of the learning-rate schedule (the worker's
    ``max_epochs``): the policy's target when the trial is launched, which is
    ``training.max_epochs`` unless SEER explores first or a re-plan lowers it (the tuner
    writes it again at every launch; the worker re-anchors its schedule when it changed).
    Every trial trains towards the target, finalist or not: one eliminated at a rung never
    finishes its schedule; the answer's finishes when it is trained to the target.
    ``model``, ``dataset`` and ``data_dir`` are ``None`` for a ``[trial] script`` (its model
    and data are its own).
    """
    script = exp.trial.script is not None
    return {
        "trial_id": trial_id,
        "configuration": configuration,
        "model": None if script else exp.model.name,
        "dataset": None if script else exp.data.dataset,
        "data_dir": None if script else exp.data.data_dir,
        "global_batch": exp.training.global_batch,
        "micro_batch_max": exp.training.micro_batch_max,
        "max_epochs": schedule_epochs or exp.training.max_epochs,
        "seed": exp.seed,
        "metric": exp.metric,  # the name every report must carry (the experiment's objective)
        "tensorboard_dir": str(Path(tensorboard_dir).resolve()) if tensorboard_dir is not None else None,
    }


def trial_job_spec(
    exp: Experiment,
    trial_id: str,
    trial_dir: Path,
    world_size: int,
    until_epoch: int,
    *,
    configuration: dict[str, Any],
    config_index: int,
) -> JobSpec:
    """The job that trains ``trial_id`` until ``until_epoch`` at ``world_size`` workers: the
    experiment's ``[trial] script`` with its ``args`` when it has one, else the built-in
    worker. Pure."""
    return JobSpec(
        trial_id,
        trial_dir,
        world_size,
        until_epoch,
        configuration=configuration,
        config_index=config_index,
        script=Path(exp.trial.script) if exp.trial.script is not None else None,
        script_args=exp.trial.args,
    )


def draw_epoch_times_s(
    exp: Experiment, profile: Profile, costs: profiler.DrawCosts | None = None
) -> tuple[float, ...]:
    """One epoch at W = 1 (seconds) of each of the experiment's ``max_configurations`` draws,
    predicted from its FLOPs (:meth:`Profile.epoch_time_for`), when the profile measured
    configurations of different cost (``epoch_time_by_flops``); else ``()``. The FLOPs are
    ``costs``' (:func:`profiler.count_draw_costs`), or counted here on the ``meta`` device
    (imports torch). Deterministic (the draws are the seeded ones the run launches). ``()``
    for a ``[trial] script``: seer-torch cannot count the FLOPs of a user's model."""
    if len(profile.epoch_time_by_flops) < 2 or exp.trial.script is not None:
        return ()
    if costs is None:
        costs = profiler.count_draw_costs(exp, profiler.probe_configuration(exp))
    return tuple(profile.epoch_time_for(f) for f in costs.draw_flops)


def draw_costs_needed(exp: Experiment, profile: Profile | None) -> profiler.DrawCosts | None:
    """:func:`profiler.count_draw_costs` of ``exp`` when a run will use them: its profile is
    still to be measured (``None``: the cost probe is chosen from them), or it predicts each
    draw's epoch from its FLOPs (``epoch_time_by_flops``); else ``None``. Imports torch then.
    Always ``None`` for a ``[trial] script`` (seer-torch cannot count the FLOPs of a user's
    model).

    Raises:
        ConfigError: as :func:`profiler.configuration_flops`.
    """
    if exp.trial.script is not None:
        return None
    if profile is not None and len(profile.epoch_time_by_flops) < 2:
        return None
    return profiler.count_draw_costs(exp, profiler.probe_configuration(exp))


def policy_context(
    exp: Experiment,
    profile: Profile,
    *,
    num_slots: int,
    time_left_s: float,
    money_left_usd: float,
    oracle_index: int | None = None,
    draw_times_s: list[float] | None = None,
    draw_costs: profiler.DrawCosts | None = None,
    keep_alive: bool = False,
    warm_workers: bool | None = None,
) -> PolicyContext:
    """A policy's static inputs from an experiment, a profile and the budgets left. Pure.
    ``epoch_time_s`` is the profile's, or the mean over the draws when the profile knows each
    configuration's cost; ``draw_epoch_times_s`` is :func:`draw_epoch_times_s` (of
    ``draw_costs`` when given), or ``draw_times_s`` when given (the simulator's table).

    Overheads: ``startup_s`` the profile's, ``relaunch_s`` and ``resize_s`` its ``resize_s``;
    with ``keep_alive`` (the backend's ``keeps_jobs_alive``) ``continue_s`` and
    ``warm_start_s`` are the profile's when it measured them, else :data:`CONTINUE_S` and
    :data:`WARM_START_S`; without, both ``None`` (every job starts processes). A ``[trial]
    script`` has no warm workers (``warm_start_s`` ``None``): only the built-in worker takes
    up another trial in its process; nor has a backend whose parked jobs go on with their own
    trial only (``warm_workers`` false: the backend's ``hands_over_workers``, the Ray
    backend's; ``None``: as ``keep_alive``). Seen: on Ray a plan priced every new trial's
    ``W = 1`` job as a warm start, each took a cold start of about 12 s, and the 90 s run
    never completed its first round. ``machine_start_s``: the experiment's ``[resources]
    machine_start_s`` on the Ray backend (the run's measured one replaces it in each snapshot,
    ``Snapshot.machine_start_s``), else ``None``."""
    draws = tuple(draw_times_s) if draw_times_s else draw_epoch_times_s(exp, profile, draw_costs)
    epoch_time_s = profile.epoch_time_s if draw_times_s or not draws else statistics.fmean(draws)
    t = exp.training
    ladder = exp.usable_world_sizes() or (1,)
    max_w = getattr(exp.planner, "max_world_size", None) or num_slots
    return PolicyContext(
        max_epochs=t.max_epochs,
        min_epochs=t.min_epochs if t.min_epochs is not None else 1,
        eta=t.eta,
        max_configurations=exp.search.max_configurations,
        num_slots=num_slots,
        world_size_ladder=tuple(sorted(set(ladder))),
        max_world_size=max_w,
        epoch_time_s=epoch_time_s,
        scaling=profile.scaling,
        startup_s=profile.startup_s,
        relaunch_s=profile.resize_s,
        resize_s=profile.resize_s,
        time_budget_s=max(0.0, time_left_s),
        money_budget_usd=max(0.0, money_left_usd),
        billing=experiment_billing(exp),
        safety_fraction=exp.planner.safety_fraction,
        seed=exp.seed,
        oracle_index=oracle_index,
        num_finalists=getattr(exp.planner, "num_finalists", 1),
        draw_epoch_times_s=draws,
        continue_s=kept_alive_overhead_s(profile, "continue_s", CONTINUE_S) if keep_alive else None,
        warm_start_s=(kept_alive_overhead_s(profile, "warm_start_s", WARM_START_S)
                      if keep_alive and (warm_workers is None or warm_workers) and exp.trial.script is None
                      else None),
        retarget_in_place=keep_alive and exp.trial.script is None,
        machine_start_s=exp.resources.machine_start_s if exp.resources.backend == "ray" else None,
    )


def kept_alive_overhead_s(profile: Profile, name: str, estimate_s: float) -> float:
    """The profile's ``name`` (``continue_s`` or ``warm_start_s``, seconds) when it measured
    it, else ``estimate_s``. (Profiles written before kept-alive jobs carry neither.)"""
    value = getattr(profile, name, None)
    return estimate_s if value is None else float(value)


def measure_profile(
    exp: Experiment,
    backend: Backend,
    clock: Clock,
    run_dir: Path | None,
    *,
    costs: profiler.DrawCosts | None,
    on_job_end: Callable[[JobResult], None],
    over_budget: Callable[[Held], str | None],
) -> Profile:
    """The profile ``seer tune`` measures when none is given, at :func:`tune_probe_world_sizes`,
    written to ``run_dir/profile.json``: one probe job through the real worker
    (:func:`profiler.run_profile_probes`: W=2 when the slots allow, timing W=1 too, and the
    cheapest draw at W=1 when draws differ in cost), or for a ``[trial] script`` short jobs of
    the script itself (:func:`measure_script_profile`). ``on_job_end`` bills each probe job;
    ``over_budget(held)`` is the hard limit while probing.

    Raises:
        ConfigError: no run directory (a simulation must be given its profile).
        WorkerError: a probe failed.
        BudgetExhausted: a hard limit was reached while profiling.
    """
    if run_dir is None:
        raise ConfigError(
            "planner.profile", None, "a scaling profile (a run without a directory cannot measure one)"
        )
    if exp.trial.script is not None:
        return measure_script_profile(exp, backend, clock, run_dir, on_job_end=on_job_end,
                                      over_budget=over_budget)
    probe_conf = profiler.probe_configuration(exp)
    # Configurations of different cost (model widths): the cheapest one the run may draw is
    # probed at W=1 too, so that each configuration's epoch time can be predicted.
    measured = profiler.run_profile_probes(
        backend,
        clock,
        run_dir / "profile",
        exp,
        probe_conf,
        tune_probe_world_sizes(exp),
        lambda trial_id, conf: trial_config(exp, trial_id, conf, None),
        on_job_end=on_job_end,
        over_budget=over_budget,
        costs=costs,
    )
    cost_note = ""
    if measured.cost_probes:
        cost_note = (
            f" and the cheapest configuration ({measured.cost_probes[0][1] / measured.probe_flops:.2f} "
            "of the probe's FLOPs)"
        )
    jobs = profiler.probe_jobs(tune_probe_world_sizes(exp))
    prof = profiler.profile_from_probes(
        f"{exp.name}-measured",
        measured.probes,
        source=f"measured by seer tune at the start of {run_dir.name}: one probe job at W={jobs[0]}, "
        f"{profiler.PROFILE_STEPS} steps after 3 warm-up steps at W={jobs[0]} and, at W=1 on each rank "
        f"side by side, of the probe configuration{cost_note}, in three rounds whose mean counts",
        probe_flops=measured.probe_flops,
        cost_probes=measured.cost_probes,
    )
    atomic_write_json(run_dir / "profile.json", prof.to_dict())
    return prof


def measure_script_profile(
    exp: Experiment,
    backend: Backend,
    clock: Clock,
    run_dir: Path,
    *,
    on_job_end: Callable[[JobResult], None],
    over_budget: Callable[[Held], str | None],
) -> Profile:
    """A ``[trial] script`` experiment's profile, measured on the script itself
    (:func:`seer_torch.scaling.script_profile.run_script_probes`): one short job of the script
    at W=1 twice (side by side when the slots allow) and at each larger of
    :func:`tune_probe_world_sizes`, each training epoch 1 of the probe
    configuration (:func:`profiler.probe_configuration`) for at most
    :data:`profiler.PROFILE_STEPS` optimizer steps, in ``run_dir/profile/``; written to
    ``run_dir/profile.json``. A probe may run up to ``failures.hang_timeout_s`` (at least 300 s).

    Raises:
        WorkerError: a probe failed (the script's error).
        BudgetExhausted: a hard limit was reached while profiling.
    """
    assert exp.trial.script is not None, "measure_script_profile is for [trial] script experiments"
    conf = profiler.probe_configuration(exp)
    records = script_profile.run_script_probes(
        backend, clock, run_dir / "profile", trial_config(exp, "profile", conf, None),
        tune_probe_world_sizes(exp), script=Path(exp.trial.script), script_args=exp.trial.args,
        on_job_end=on_job_end, over_budget=over_budget, probe_steps=profiler.PROFILE_STEPS,
        timeout_s=max(300.0, exp.failures.hang_timeout_s),
    )
    prof = script_profile.profile_from_script_probes(
        f"{exp.name}-measured", records,
        source=f"measured by seer tune at the start of {run_dir.name}: short jobs of "
        f"{Path(exp.trial.script).name} (epoch 1, at most {profiler.PROFILE_STEPS} optimizer steps, "
        f"configuration {json.dumps(conf, sort_keys=True)}) at W in "
        f"{sorted({int(r['world_size']) for r in records})}; the W=1 probe twice, side by side when the "
        "slots allow, its mean counts",
    )
    atomic_write_json(run_dir / "profile.json", prof.to_dict())
    return prof
