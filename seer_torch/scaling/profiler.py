"""The profiler: short probe jobs through the real worker, as few as the world sizes allow.

A profile is measured in one job (:func:`run_profile_probes`), so that a run pays one launch
for it: ``seer_torch.worker --profile-steps N`` at the smallest ``W > 1`` to probe (at W = 1
when that is the only one), alone on the backend, with a probe plan that asks it to time each
configuration to measure at W = 1 too, on every rank side by side (as the run's W = 1 trials
train beside each other), in three rounds with its own measurement at ``W`` between them
(:mod:`seer_torch.training.probe`; 3 warm-up steps excluded, device synchronized before
timers are read, one validation pass timed each). A larger ``W`` (``seer profile`` on more
slots) gets a plain probe job of its own (:func:`run_probes`). From the probes:

- ``speedup[W] = throughput(W) / throughput(1)``;
- ``startup_s`` = the median over the probe jobs of a job's whole duration minus the time it
  spent in measured work (timed steps, validation passes, the W = 1 trainers' set-up): the
  fixed cost of one job (torch imported by the agent and each worker, data and model built,
  the process group formed, warm-up steps, and torchrun's exit), which every launch pays;
- ``epoch_time_s`` = train samples / throughput(1) + one validation pass at W=1, throughput(1)
  at the mean of its rounds' step times (the machine's speed drifts, and the trials of the
  run see the same drift).

When the search space mixes configurations of different cost (model widths), the cheapest
configuration the run may draw (fewest FLOPs per sample, :func:`configuration_flops`) is
measured at W = 1 in the same job, and the profile's ``epoch_time_by_flops`` holds both points,
so that each configuration's epoch time can be predicted from its FLOPs
(:meth:`seer_torch.scaling.profile.Profile.epoch_time_for`; :func:`cost_probe_configuration`
says when the two cost enough apart to be told apart).

Resize seconds are measured by relaunching (:func:`measure_relaunches`, used by
``seer profile`` and ``scripts/bench_cifar.py``): one trial trains epoch 1 at the first ``W``
from scratch and is relaunched from its checkpoint at each next ``W`` for one more epoch. A
launch's overhead is its job's duration minus the time from its first step to its last
metrics line (torch imported, data and model built, checkpoint loaded, process group formed,
DDP wrapped, checkpoint saved, exit); ``resize_s`` is the largest overhead of a relaunch
(:func:`resize_s_from_launches`), which :func:`profile_from_probes` takes instead of the probes'
start-up.

Effects live here (jobs are launched); the arithmetic is in :func:`profile_from_probes`,
:func:`launch_overhead_s` and :func:`resize_s_from_launches`.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seer_torch.backends.base import Backend, JobResult, JobSpec, job_error_text
from seer_torch.clock import Clock
from seer_torch.errors import BudgetExhausted, WorkerError
from seer_torch.runfiles import PROBE_PLAN_FILE, atomic_write_json, read_metrics
from seer_torch.scaling.profile import Profile

#: Timed optimizer steps per probe measurement: at the probe job's ``W``, and for each
#: configuration at W = 1 over its rounds (on every rank). Fewer steps move the estimate less
#: than the machine's drift between one round and the next does; far fewer (20 at W = 1,
#: one probe) were too few on a shared 2-core machine (docs/design-notes.md, "The profile").
PROFILE_STEPS = 40


def probe_startup_s(probe: dict[str, Any], duration_s: float) -> float:
    """A probe job's fixed cost: its whole duration minus the measured steps and the timed
    validation pass (everything a launch pays before and after useful work); for a job with a
    probe plan, its duration minus ``probe_work_s`` (what the job did beyond a launch's own
    set-up and warm-up: the other trainers, every timed step and validation pass)."""
    if "probe_work_s" in probe:
        return max(0.0, duration_s - float(probe["probe_work_s"]))
    train_s = probe.get("measured_train_s", float(probe["measured_steps"]) * float(probe["step_time_s"]))
    working_s = float(train_s) + float(probe["eval_time_s"])
    return max(0.0, duration_s - working_s)


def probe_configuration(exp: Any) -> dict[str, Any]:
    """The configuration a profile measures: the experiment's configuration 0 with every
    ``choices`` hyperparameter at its last listed value (list model-size choices in ascending
    order and the profile is the conservative one). Pure; ``exp`` is a
    :class:`seer_torch.config.Experiment`."""
    from seer_torch.config import sample_configurations

    conf = dict(sample_configurations(exp, 1)[0])
    for p in exp.search_space:
        if p.kind == "choice":
            conf[p.name] = p.choices[-1]
    return conf


def wait_job(backend: Backend, clock: Clock, handle: Any, timeout_s: float, poll_s: float = 0.1) -> JobResult:
    """Poll ``handle`` until its job ends, or stop it after ``timeout_s`` (then ``stopped``)."""
    while (res := backend.poll(handle)) is None:
        if clock.now() - handle.start_s > timeout_s:
            return backend.stop(handle)
        clock.sleep(poll_s)
    return res


def launch_overhead_s(line: dict[str, Any], duration_s: float) -> float:
    """A training launch's fixed cost: its job's duration minus the time from its first step
    (``train_start_unix_s``) to its last metrics line (``time_unix_s``), at least 0."""
    in_epochs_s = float(line["time_unix_s"]) - float(line["train_start_unix_s"])
    return max(0.0, duration_s - in_epochs_s)


def resize_s_from_launches(launches: Sequence[dict[str, Any]]) -> float | None:
    """The resize seconds: the largest overhead of a launch from a checkpoint written at
    another (or, for a one-``W`` sequence, the same) world size; ``None`` without one."""
    overheads = [float(x["overhead_s"]) for x in launches if x.get("resized_from") is not None]
    return max(overheads) if overheads else None


#: The cheapest configuration is measured at W=1 too only when the probe configuration costs
#: at least this many times its FLOPs per sample (else one epoch time serves all).
COST_SPREAD = 1.25


def configuration_flops(exp: Any, configuration: dict[str, Any]) -> float:
    """FLOPs of one training sample (forward and backward) of ``configuration``'s model on
    ``exp``'s dataset (:func:`seer_torch.models.flops_per_sample`; nothing is computed, the
    model is built on the ``meta`` device). Imports torch. A plug-in dataset is loaded once
    for its shape (:func:`seer_torch.data.dataset_shape`); a plug-in model's FLOPs may be NaN
    (unknown: :func:`seer_torch.models.count_flops_per_sample`).

    Raises:
        ConfigError: an unknown model, dataset or model hyperparameter value.
    """
    from seer_torch.data import dataset_shape
    from seer_torch.models import flops_per_sample, model_hparam_names

    shape = dataset_shape(exp.data.dataset, exp.data.data_dir)
    names = model_hparam_names(exp.model.name)
    hparams = {k: v for k, v in configuration.items() if k in names}
    return flops_per_sample(exp.model.name, num_classes=shape.num_classes, input_shape=shape.input_shape,
                            input_dtype=shape.input_dtype, **hparams)


def configurations_flops(exp: Any, configurations: Sequence[dict[str, Any]]) -> list[float]:
    """:func:`configuration_flops` of each configuration, counted once per distinct value of
    the model hyperparameters that change the cost (:func:`seer_torch.models.model_cost_hparam_names`:
    ``width``; neither ``dropout`` nor the training ones, such as ``lr``)."""
    from seer_torch.models import model_cost_hparam_names

    names = model_cost_hparam_names(exp.model.name)
    counted: dict[str, float] = {}
    out = []
    for conf in configurations:
        key = json.dumps({k: v for k, v in conf.items() if k in names}, sort_keys=True)
        if key not in counted:
            counted[key] = configuration_flops(exp, conf)
        out.append(counted[key])
    return out


def cost_probe_configuration(
    probe_flops: float, candidates: Sequence[tuple[dict[str, Any], float]]
) -> tuple[dict[str, Any], float] | None:
    """Which configuration the extra W=1 probe measures: of ``candidates`` (``(configuration,
    flops_per_sample)``, the configurations the run may draw), the one with the fewest FLOPs,
    when the probe configuration's ``probe_flops`` is at least :data:`COST_SPREAD` times its;
    else ``None`` (every configuration costs about the probe's). Pure."""
    if not candidates:
        return None
    cheapest = min(candidates, key=lambda c: c[1])
    return cheapest if cheapest[1] > 0 and probe_flops >= COST_SPREAD * cheapest[1] else None


def probe_epoch_time_s(probe: dict[str, Any]) -> float:
    """One epoch at the probe's world size, seconds: train samples / measured throughput + the
    timed validation pass."""
    train_s = float(probe["num_train_samples"]) / float(probe["throughput_samples_per_s"])
    return train_s + float(probe["eval_time_s"])


def mean_probe(probes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Probes of one configuration at one world size, folded into one whose epoch
    (:func:`probe_epoch_time_s`) is their mean epoch: the harmonic mean of their throughputs
    (the mean training seconds) and the mean of their validation passes. The first probe's
    other fields. Pure.

    Why the mean, not the fastest (Python ``timeit``'s best-of convention, which estimates the
    code's own cost): a profile predicts what the run's jobs will take on this machine, and
    they see the same drift of its speed as the probes. Issue 4 replayed 9 real runs of the
    default in the simulator with each rule: on the mean, every round was within 15 % in 8 of
    the runs (worst round 16.1 %; rounds' mean |error| 5.8 %, mean error -0.7 %); on the faster
    probe, in 7 (worst 17.6 %; 7.2 %, -3.7 %: the faster probe predicts the epochs short).
    """
    if len(probes) == 1:
        return probes[0]
    seconds_per_sample = statistics.fmean(1.0 / float(p["throughput_samples_per_s"]) for p in probes)
    return {**probes[0], "throughput_samples_per_s": 1.0 / seconds_per_sample,
            "eval_time_s": statistics.fmean(float(p["eval_time_s"]) for p in probes)}


def profile_from_probes(
    name: str,
    probes: Sequence[tuple[dict[str, Any], float, float]],
    source: str,
    resize_s: float | None = None,
    probe_flops: float | None = None,
    cost_probes: Sequence[tuple[dict[str, Any], float]] = (),
) -> Profile:
    """Build a profile from probe outputs.

    Args:
        probes: ``(probe_json, launch_unix_s, job_duration_s)`` per world size; a world size
            probed more than once counts at the mean of its probes (:func:`mean_probe`: the
            mean epoch time). ``probe_json`` is what the worker wrote with ``--profile-out``.
            ``startup_s`` is the median of the probe jobs' start-ups (:func:`probe_startup_s`;
            one per job, the measurements with the same launch and duration being one job's),
            so that one slow launch does not set it.
        resize_s: measured relaunch seconds (:func:`resize_s_from_launches`); without it the
            resize cost is estimated by ``startup_s``.
        probe_flops: FLOPs per sample of the probes' configuration.
        cost_probes: ``(probe_json, flops_per_sample)`` of W=1 probes of other configurations
            (the mean epoch of each cost counts); with ``probe_flops`` they become
            ``epoch_time_by_flops``.

    Raises:
        ValueError: no W=1 probe, or a negative ``resize_s``.
    """
    if resize_s is not None and not resize_s >= 0:
        raise ValueError(f"resize_s: got {resize_s!r}; allowed: seconds >= 0")
    by_w: dict[int, list[dict[str, Any]]] = {}
    for p, _, _ in probes:
        by_w.setdefault(int(p["world_size"]), []).append(p)
    if 1 not in by_w:
        raise ValueError("a profile needs a W=1 probe")
    world_sizes = sorted(by_w)
    throughput = [float(mean_probe(by_w[w])["throughput_samples_per_s"]) for w in world_sizes]
    thr1 = throughput[0]
    # One start-up per job: the measurements of one job (a probe plan's) share its launch.
    by_job = {(launch, duration): probe_startup_s(p, duration) for p, launch, duration in probes}
    startup_s = statistics.median(by_job.values())
    epoch_time_s = probe_epoch_time_s(mean_probe(by_w[1]))
    points: dict[float, float] = {}
    if probe_flops is not None and cost_probes:
        by_cost: dict[float, list[dict[str, Any]]] = {}
        for p, f in cost_probes:
            by_cost.setdefault(float(f), []).append(p)
        points = {f: probe_epoch_time_s(mean_probe(ps)) for f, ps in by_cost.items()}
        points[float(probe_flops)] = epoch_time_s
    return Profile(
        name=name,
        world_sizes=tuple(world_sizes),
        speedup=tuple(t / thr1 for t in throughput),
        epoch_time_s=epoch_time_s,
        startup_s=startup_s,
        resize_s=startup_s if resize_s is None else float(resize_s),
        throughput_samples_per_s=tuple(throughput),
        source=source,
        epoch_time_by_flops=tuple(sorted(points.items())) if len(points) > 1 else (),
    )


def run_probes(
    backend: Backend,
    clock: Clock,
    probe_dir: Path,
    trial_config: dict[str, Any],
    world_sizes: Sequence[int],
    on_job_end: Callable[[JobResult], None] = lambda r: None,
    over_budget: Callable[[list[tuple[float, int]]], str | None] = lambda held: None,
    profile_steps: int = PROFILE_STEPS,
    timeout_s: float = 300.0,
) -> list[tuple[dict[str, Any], float, float]]:
    """Run one probe job per world size, alone; return ``(probe_json, launch_unix_s, duration_s)``.

    ``trial_config`` is a trial's ``config.json`` content (the configuration to measure).
    ``on_job_end`` sees every finished probe (the executor bills it). ``over_budget`` is asked
    at every poll with the running probe's ``(start_s, world_size)`` and returns why a hard
    limit is reached, or ``None``; the probe is then stopped.

    Raises:
        WorkerError: a probe failed or ran past ``timeout_s`` (with the worker's error).
        BudgetExhausted: a hard limit was reached while profiling.
    """
    results = []
    for w in world_sizes:
        d = probe_dir / f"w{w}"
        out = _prepare_probe_dir(d, trial_config)
        spec = JobSpec(trial_id=f"profile-w{w}", trial_dir=d, world_size=w, until_epoch=1,
                       profile_steps=profile_steps, profile_out=out)
        res = _run_alone(backend, clock, spec, f"profiling at W={w}", f"profile probe at W={w}",
                         on_job_end, over_budget, timeout_s)
        if not out.exists():
            raise WorkerError(f"profile probe at W={w} failed: {job_error_text(res)}")
        results.append((json.loads(out.read_text()), res.launch_unix_s, res.duration_s))
    return results


@dataclass(frozen=True)
class DrawCosts:
    """FLOPs per sample (forward and backward) of the probe configuration and of each of a
    run's draws, counted once per run (:func:`count_draw_costs`): the cost probe is chosen from
    them, and a profile's ``epoch_time_by_flops`` turns them into each draw's epoch time.

    Attributes:
        probe_flops: the probe configuration's.
        draws: the ``max_configurations`` seeded draws, in launch order.
        draw_flops: one per draw, same order.
    """

    probe_flops: float
    draws: tuple[dict[str, Any], ...]
    draw_flops: tuple[float, ...]

    def cheapest(self) -> tuple[dict[str, Any], float] | None:
        """:func:`cost_probe_configuration` over the draws: the configuration a cost probe
        measures and its FLOPs, or ``None``."""
        return cost_probe_configuration(self.probe_flops, list(zip(self.draws, self.draw_flops)))


def count_draw_costs(exp: Any, probe_conf: dict[str, Any]) -> DrawCosts:
    """:class:`DrawCosts` of ``exp``'s ``max_configurations`` draws and ``probe_conf``. Imports
    torch; the first count in a process takes seconds (``FlopCounterMode``'s first use), so
    ``seer tune`` counts before its clock starts.

    Raises:
        ConfigError: as :func:`configuration_flops`.
    """
    from seer_torch.config import sample_configurations

    drawn = sample_configurations(exp, exp.search.max_configurations)
    probe_flops, *drawn_flops = configurations_flops(exp, [probe_conf, *drawn])
    return DrawCosts(probe_flops, tuple(drawn), tuple(drawn_flops))


def probe_jobs(world_sizes: Sequence[int]) -> list[int]:
    """The world sizes of the probe jobs :func:`run_profile_probes` runs, one at a time: the
    smallest ``W > 1`` of ``world_sizes`` (it times the W = 1 configurations on its ranks too,
    :mod:`seer_torch.training.probe`), or ``[1]`` when that is the only one, then each larger
    ``W``. Pure."""
    sizes = sorted({int(w) for w in world_sizes})
    multi = [w for w in sizes if w > 1]
    return multi if multi else [1]


def probe_schedule(world_sizes: Sequence[int]) -> list[list[int]]:
    """The probe jobs of :func:`run_profile_probes` as batches of world sizes that run at the
    same time (one job each: :func:`probe_jobs`). Pure: ``seer plan`` estimates the profiling's
    seconds (one start-up and probe per batch) and slot-seconds from it."""
    return [[w] for w in probe_jobs(world_sizes)]


@dataclass(frozen=True)
class ProbeSet:
    """What :func:`run_profile_probes` measured, in the arguments of :func:`profile_from_probes`.

    Attributes:
        probes: ``(probe_json, launch_unix_s, duration_s)`` of the probe configuration, one per
            world size, W = 1 first (a W = 1 measurement made inside a larger job carries that
            job's launch, duration and ``probe_work_s``, so its start-up is the job's).
        probe_flops: FLOPs per sample of the probe configuration.
        cost_probes: ``(probe_json, flops_per_sample)`` of the cheapest configuration at W=1,
            or empty when the configurations cost about the same.
        cheapest: the cheapest configuration measured, or ``None``.
        records: one summary per measurement, as written to ``probes.json``.
    """

    probes: list[tuple[dict[str, Any], float, float]]
    probe_flops: float
    cost_probes: list[tuple[dict[str, Any], float]]
    cheapest: dict[str, Any] | None
    records: list[dict[str, Any]]


def w1_probe(job_probe: dict[str, Any], index: int) -> dict[str, Any]:
    """The W = 1 measurement ``index`` of a probe plan's job (``job_probe["w1"][index]``,
    :mod:`seer_torch.training.probe`) as a probe of its own: its throughput, step time and
    windows (both rounds', every rank's), validation pass and configuration, with the job's
    ``probe_work_s`` (:func:`probe_startup_s` is then the job's). Pure."""
    m = job_probe["w1"][index]
    return {
        "world_size": 1,
        "configuration": m["configuration"],
        "throughput_samples_per_s": float(m["throughput_samples_per_s"]),
        "step_time_s": float(m["step_time_s"]),
        "round_step_times_s": m.get("round_step_times_s"),
        "step_time_windows_s": [w for ws in m["step_time_windows_s"] for w in ws],
        "eval_time_s": float(m["eval_time_s"]),
        "measured_steps": int(m["measured_steps"]),
        "num_train_samples": int(m["num_train_samples"]),
        "warmup_steps": job_probe.get("warmup_steps", 3),
        "device": job_probe.get("device", "cpu"),
        "probe_work_s": float(job_probe["probe_work_s"]),
    }


def run_profile_probes(
    backend: Backend,
    clock: Clock,
    probe_dir: Path,
    exp: Any,
    probe_conf: dict[str, Any],
    world_sizes: Sequence[int],
    make_config: Callable[[str, dict[str, Any]], dict[str, Any]],
    on_job_end: Callable[[JobResult], None] = lambda r: None,
    over_budget: Callable[[list[tuple[float, int]]], str | None] = lambda held: None,
    profile_steps: int = PROFILE_STEPS,
    timeout_s: float = 300.0,
    costs: DrawCosts | None = None,
) -> ProbeSet:
    """Every probe a profile takes, in as few jobs as :func:`probe_jobs` allows: one job at the
    smallest ``W > 1`` of ``world_sizes`` (or at W = 1) with a probe plan
    (:data:`seer_torch.runfiles.PROBE_PLAN_FILE`): the probe configuration and, when the
    run's draws differ in cost, the cheapest one (:meth:`DrawCosts.cheapest` of ``costs``,
    counted here when not given) at W = 1 on every rank side by side, in rounds with the job's
    own measurement at its ``W`` between them; then one plain probe at each larger ``W``
    (:func:`run_probes`). Each W = 1 measurement counts at the mean of its rounds: on a
    shared or cloud machine the speed drifts (issue 4: the first W=1 probe after a pause
    measured 1.95 s an epoch and its repeat 1.49 s where the run's trials of that width took
    1.59 s), and the trials see that drift too; side by side, as the run's W = 1 trials train
    beside each other. ``make_config(trial_id, configuration)`` gives a probe's
    ``config.json`` content. ``timeout_s`` is per measurement (the first job may run that
    times each of its measurements). Writes ``probe_dir/probes.json`` (:attr:`ProbeSet.records`).

    Raises:
        as :func:`run_probes` (a failed job: ``profile probe at W=...``).
    """
    costs = costs if costs is not None else count_draw_costs(exp, probe_conf)
    probe_flops, cheap = costs.probe_flops, costs.cheapest()
    first, *larger = probe_jobs(world_sizes)
    confs = [probe_conf] + ([cheap[0]] if cheap is not None else [])
    d = probe_dir / f"w{first}"
    out = _prepare_probe_dir(d, make_config("profile", probe_conf), w1_configurations=confs)
    spec = JobSpec(trial_id=f"profile-w{first}", trial_dir=d, world_size=first, until_epoch=1,
                   profile_steps=profile_steps, profile_out=out)
    # The job measures its own W and each configuration at W=1: a probe's time limit for each.
    res = _run_alone(backend, clock, spec, f"profiling at W={first}", f"profile probe at W={first}",
                     on_job_end, over_budget, timeout_s * (len(confs) + (first > 1)))
    if not out.exists():
        raise WorkerError(f"profile probe at W={first} failed: {job_error_text(res)}")
    job = json.loads(out.read_text())
    if len(job.get("w1") or []) != len(confs) or "probe_work_s" not in job:
        raise WorkerError(f"profile probe at W={first} failed: it wrote no W=1 measurement of each of the "
                          f"{len(confs)} configurations of its {PROBE_PLAN_FILE} (see {d / 'stderr.log'})")
    w1 = w1_probe(job, 0)
    probes = [(w1, res.launch_unix_s, res.duration_s)]
    records = [_probe_record("probe", w1, res.duration_s, f"w{first}")]
    if first > 1:
        probes.append((job, res.launch_unix_s, res.duration_s))
        records.append(_probe_record("probe", job, res.duration_s, f"w{first}"))
    cost_probes: list[tuple[dict[str, Any], float]] = []
    if cheap is not None:
        p = w1_probe(job, 1)
        cost_probes.append((p, cheap[1]))
        records.append(_probe_record("cheapest", p, res.duration_s, f"w{first}"))
    if larger:
        more = run_probes(backend, clock, probe_dir, make_config("profile", probe_conf), larger,
                          on_job_end=on_job_end, over_budget=over_budget, profile_steps=profile_steps,
                          timeout_s=timeout_s)
        probes += more
        records += [_probe_record("probe", p, duration, f"w{p['world_size']}") for p, _, duration in more]
    atomic_write_json(probe_dir / "probes.json", records)
    cheapest = cheap[0] if cheap is not None else None
    return ProbeSet(probes, probe_flops, cost_probes, cheapest, records)


def _probe_record(kind: str, probe: dict[str, Any], duration_s: float, job: str) -> dict[str, Any]:
    """One line of ``probes.json``: which probe, its world size, the job it ran in and that
    job's seconds and start-up (:func:`probe_startup_s`), step time (and each round's, for a
    W = 1 measurement of a probe plan), the timed windows and the predicted epoch
    (:func:`probe_epoch_time_s`)."""
    return {"probe": kind, "world_size": int(probe["world_size"]), "job": job, "job_s": duration_s,
            "startup_s": probe_startup_s(probe, duration_s), "step_time_s": float(probe["step_time_s"]),
            "round_step_times_s": probe.get("round_step_times_s"),
            "step_time_windows_s": probe.get("step_time_windows_s"),
            "epoch_time_s": probe_epoch_time_s(probe)}


def _prepare_probe_dir(d: Path, config: dict[str, Any],
                       w1_configurations: Sequence[dict[str, Any]] = ()) -> Path:
    """Write a probe's ``config.json`` (without TensorBoard) in ``d``, and its probe plan
    (:data:`PROBE_PLAN_FILE`) when ``w1_configurations`` are given; remove what an earlier
    probe left; returns the probe JSON's path."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({**config, "tensorboard_dir": None}, indent=2))
    out, plan = d / "profile.json", d / PROBE_PLAN_FILE
    for stale in (out, d / "error.json", plan):
        stale.unlink(missing_ok=True)
    if w1_configurations:
        atomic_write_json(plan, {"w1_configurations": list(w1_configurations)})
    return out


def _run_alone(
    backend: Backend,
    clock: Clock,
    spec: JobSpec,
    doing: str,
    job: str,
    on_job_end: Callable[[JobResult], None],
    over_budget: Callable[[list[tuple[float, int]]], str | None],
    timeout_s: float,
) -> JobResult:
    """Run one job alone until it ends (:func:`run_side_by_side` of one job)."""
    return run_side_by_side(backend, clock, [(spec, job)], doing, on_job_end, over_budget, timeout_s)[0]


def run_side_by_side(
    backend: Backend,
    clock: Clock,
    jobs: Sequence[tuple[JobSpec, str]],
    doing: str,
    on_job_end: Callable[[JobResult], None],
    over_budget: Callable[[list[tuple[float, int]]], str | None],
    timeout_s: float,
) -> list[JobResult]:
    """Launch ``jobs`` (``(spec, name)``) together and wait until every one has ended; bill
    each with ``on_job_end``. A job a kept-alive backend parks at its target
    (``JobResult.parked``) is released at once, and its wait billed too; its result is the
    segment up to the park. ``doing`` names the activity in budget messages ("profiling at
    W=2"), each job's name its failure message. Returns the results in ``jobs``' order.

    Raises:
        BudgetExhausted: ``over_budget`` named a reached limit (every job is stopped).
        WorkerError: a job failed or ran past ``timeout_s`` (with the worker's error; the
            first such job in ``jobs``' order; the others are stopped).
        KeyboardInterrupt: interrupted (every job still running is stopped and billed first).
    """
    if reason := over_budget([]):
        raise BudgetExhausted(f"{reason} before {doing}; no plan, no answer")
    handles = [backend.launch(spec) for spec, _ in jobs]
    results: list[JobResult | None] = [None] * len(jobs)
    reason = None
    timed_out: set[int] = set()
    try:
        while any(r is None for r in results):
            for i, handle in enumerate(handles):
                if results[i] is None and (res := backend.poll(handle)) is not None:
                    results[i] = res
                    on_job_end(res)
                    if res.parked:  # a kept-alive backend's job waits at its target: end it (billed too)
                        on_job_end(backend.release(handle))
            running = [i for i, r in enumerate(results) if r is None]
            if not running:
                break
            reason = over_budget([(handles[i].start_s, jobs[i][0].world_size) for i in running])
            timed_out = {i for i in running if clock.now() - handles[i].start_s > timeout_s}
            if reason or timed_out:
                for i in running:
                    results[i] = backend.stop(handles[i])
                    on_job_end(results[i])
                break
            clock.sleep(0.1)
    except KeyboardInterrupt:
        # Ctrl-C (or SIGTERM/SIGHUP through the CLI) while the probes run: they held their slots
        # until now, so they are stopped and billed like any job (they were not: an interrupted
        # profile cost 0 USD after 5 s of two slots).
        for i, handle in enumerate(handles):
            if results[i] is None:
                results[i] = backend.stop(handle)
                on_job_end(results[i])
        raise
    done = [r for r in results if r is not None]
    if reason:
        raise BudgetExhausted(f"{reason} while {doing}; no plan, no answer")
    for i, ((_, job), res) in enumerate(zip(jobs, done)):
        if i in timed_out:
            raise WorkerError(f"{job} failed: still running after {timeout_s:g} s, stopped")
        if res.returncode != 0 and not res.stopped:
            raise WorkerError(f"{job} failed: {job_error_text(res)}")
    return done


def measure_relaunches(
    backend: Backend,
    clock: Clock,
    trial_dir: Path,
    trial_config: dict[str, Any],
    sequence: Sequence[int],
    on_job_end: Callable[[JobResult], None] = lambda r: None,
    over_budget: Callable[[list[tuple[float, int]]], str | None] = lambda held: None,
    timeout_s: float = 300.0,
    *,
    script: Path | None = None,
    script_args: Sequence[str] = (),
    probe_steps: int | None = None,
) -> list[dict[str, Any]]:
    """Train one trial one epoch per launch: epoch 1 at ``sequence[0]`` from scratch, then
    relaunched from its checkpoint at each next ``W`` of ``sequence`` for one more epoch.
    The built-in worker trains it, or ``script`` with ``script_args`` (a ``[trial] script``;
    with ``probe_steps``, each epoch trains at most that many optimizer steps,
    :data:`seer_torch.trial.PROBE_STEPS_ENV`: the overhead of a launch does not depend on it).

    ``trial_dir`` gets ``config.json`` (``trial_config`` without TensorBoard, ``max_epochs`` at
    least ``len(sequence)``); a checkpoint, metrics or error file already there is removed
    first. Returns one record per launch: ``world_size``, ``epoch``, ``kind`` (``"fresh
    start"``, ``"resize A->B"`` or ``"relaunch A->A"``), ``resized_from`` (``None`` for the
    first), ``job_s``, ``overhead_s`` (:func:`launch_overhead_s`),
    ``train_throughput_samples_per_s`` (``None`` when the line has none), ``epoch_time_s``,
    ``train_loss``, ``val_accuracy``, ``val_samples`` (``None`` each when not reported).
    ``on_job_end`` and ``over_budget`` are as in :func:`run_probes`.

    Raises:
        ValueError: an empty ``sequence`` or a world size < 1.
        WorkerError: a launch failed, ran past ``timeout_s``, or wrote no metrics line for
            its epoch (with the worker's error).
        BudgetExhausted: a hard limit was reached.
    """
    sequence = [int(w) for w in sequence]
    if not sequence or min(sequence) < 1:
        raise ValueError(f"sequence: got {sequence!r}; allowed: one or more world sizes >= 1")
    trial_dir = Path(trial_dir)
    trial_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("checkpoint.pt", "checkpoint.prev.pt", "checkpoint.json", "metrics.jsonl", "error.json"):
        (trial_dir / stale).unlink(missing_ok=True)
    config = {**trial_config, "tensorboard_dir": None,
              "max_epochs": max(int(trial_config.get("max_epochs", 1)), len(sequence))}
    (trial_dir / "config.json").write_text(json.dumps(config, indent=2))
    trial_id = str(config.get("trial_id", trial_dir.name))
    launches: list[dict[str, Any]] = []
    previous_w: int | None = None
    for epoch, w in enumerate(sequence, start=1):
        if previous_w is None:
            kind = "fresh start"
        else:
            kind = f"{'resize' if previous_w != w else 'relaunch'} {previous_w}->{w}"
        spec = JobSpec(trial_id=trial_id, trial_dir=trial_dir, world_size=w, until_epoch=epoch,
                       profile_steps=probe_steps if script is not None else None,
                       script=Path(script) if script is not None else None, script_args=tuple(script_args))
        res = _run_alone(backend, clock, spec, f"measuring the {kind} at W={w}",
                         f"{kind} at W={w} (epoch {epoch})", on_job_end, over_budget, timeout_s)
        lines = [x for x in read_metrics(trial_dir / "metrics.jsonl") if x.get("epoch") == epoch]
        if not lines or lines[-1].get("diverged") or "train_start_unix_s" not in lines[-1]:
            raise WorkerError(
                f"{kind} at W={w} (epoch {epoch}) wrote no metrics line for its epoch "
                f"(diverged, or see {trial_dir / 'stderr.log'})"
            )
        line = lines[-1]
        launches.append({
            "world_size": w,
            "epoch": epoch,
            "kind": kind,
            "resized_from": previous_w,
            "job_s": res.duration_s,
            "overhead_s": launch_overhead_s(line, res.duration_s),
            "train_throughput_samples_per_s": (float(line["throughput_samples_per_s"])
                                               if "throughput_samples_per_s" in line else None),
            "epoch_time_s": float(line["epoch_time_s"]),
            "train_loss": line.get("train_loss"),
            "val_accuracy": line.get("val_accuracy"),
            "val_samples": line.get("val_samples"),
        })
        previous_w = w
    return launches
