"""The profiler: short probe jobs through the real worker, one world size at a time.

Each probe runs ``seer_torch.worker --profile-steps N`` (3 warm-up steps excluded, device
synchronized before timers are read, one validation pass timed) alone on the backend, so
the measurement is not disturbed by other jobs. From the probes:

- ``speedup[W] = throughput(W) / throughput(1)``;
- ``startup_s`` = the probe job's whole duration minus the time it spent in measured steps
  and the validation pass: the fixed cost of one job (torch imported by the agent and each
  worker, data and model built, the process group formed, warm-up steps, and torchrun's exit),
  which every launch pays;
- ``epoch_time_s`` = train samples / throughput(1) + one validation pass at W=1.

When the search space mixes configurations of different cost (model widths), one more probe
at W=1 measures the cheapest configuration the run may draw (fewest FLOPs per sample,
:func:`configuration_flops`), and the profile's ``epoch_time_by_flops`` holds both points, so
that each configuration's epoch time can be predicted from its FLOPs
(:meth:`seer_torch.scaling.profile.Profile.epoch_time_for`; :func:`cost_probe_configuration`
says when the extra probe is worth its start-up).

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
from pathlib import Path
from typing import Any, Callable, Sequence

from seer_torch.backends.base import Backend, JobResult, JobSpec, job_error_text
from seer_torch.clock import Clock
from seer_torch.errors import BudgetExhausted, WorkerError
from seer_torch.runfiles import read_metrics
from seer_torch.scaling.profile import Profile

# Timed optimizer steps per probe. 20 were too few on a shared 2-core machine: the digits
# default measured 620 samples/s at W=1 and a speedup of 1.69 at W=2 with 20 steps, 760 and 1.39
# with 60, against whole epochs of the tuned finalist at 1.30 (sim_vs_real.py, issue 4).
PROFILE_STEPS = 60


def probe_startup_s(probe: dict[str, Any], duration_s: float) -> float:
    """A probe job's fixed cost: its whole duration minus the measured steps and the timed
    validation pass (everything a launch pays before and after useful work)."""
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


#: The extra W=1 probe of the cheapest configuration runs only when the probe configuration
#: costs at least this many times its FLOPs per sample (else one epoch time serves all).
COST_SPREAD = 1.25


def configuration_flops(exp: Any, configuration: dict[str, Any]) -> float:
    """FLOPs of one training sample (forward and backward) of ``configuration``'s model on
    ``exp``'s dataset (:func:`seer_torch.models.flops_per_sample`; nothing is computed, the
    model is built on the ``meta`` device). Imports torch.

    Raises:
        ConfigError: an unknown model, dataset or model hyperparameter value.
    """
    from seer_torch.data import image_shape
    from seer_torch.models import flops_per_sample, model_hparam_names

    in_channels, image_size, num_classes = image_shape(exp.data.dataset)
    names = model_hparam_names(exp.model.name)
    hparams = {k: v for k, v in configuration.items() if k in names}
    return flops_per_sample(exp.model.name, num_classes=num_classes, in_channels=in_channels,
                            image_size=image_size, **hparams)


def configurations_flops(exp: Any, configurations: Sequence[dict[str, Any]]) -> list[float]:
    """:func:`configuration_flops` of each configuration, counted once per distinct set of
    model hyperparameters (the training ones, such as ``lr``, do not change the cost)."""
    from seer_torch.models import model_hparam_names

    names = model_hparam_names(exp.model.name)
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
    return float(probe["num_train_samples"]) / float(probe["throughput_samples_per_s"]) + float(probe["eval_time_s"])


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
        probes: ``(probe_json, launch_unix_s, job_duration_s)`` per world size. ``probe_json``
            is what the worker wrote with ``--profile-out``.
        resize_s: measured relaunch seconds (:func:`resize_s_from_launches`); without it the
            resize cost is estimated by the probes' start-up (the largest over ``W``).
        probe_flops: FLOPs per sample of the probes' configuration.
        cost_probes: ``(probe_json, flops_per_sample)`` of W=1 probes of other configurations;
            with ``probe_flops`` they become ``epoch_time_by_flops``.

    Raises:
        ValueError: no W=1 probe, or a negative ``resize_s``.
    """
    if resize_s is not None and not resize_s >= 0:
        raise ValueError(f"resize_s: got {resize_s!r}; allowed: seconds >= 0")
    by_w = {int(p["world_size"]): (p, launch, duration) for p, launch, duration in probes}
    if 1 not in by_w:
        raise ValueError("a profile needs a W=1 probe")
    p1 = by_w[1][0]
    thr1 = float(p1["throughput_samples_per_s"])
    world_sizes = sorted(by_w)
    throughput = [float(by_w[w][0]["throughput_samples_per_s"]) for w in world_sizes]
    startups = [probe_startup_s(by_w[w][0], by_w[w][2]) for w in world_sizes]
    epoch_time_s = probe_epoch_time_s(p1)
    points: dict[float, float] = {}
    if probe_flops is not None and cost_probes:
        points = {float(f): probe_epoch_time_s(p) for p, f in cost_probes}
        points[float(probe_flops)] = epoch_time_s
    return Profile(
        name=name,
        world_sizes=tuple(world_sizes),
        speedup=tuple(t / thr1 for t in throughput),
        epoch_time_s=epoch_time_s,
        startup_s=max(startups),
        resize_s=max(startups) if resize_s is None else float(resize_s),
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
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps({**trial_config, "tensorboard_dir": None}, indent=2))
        out = d / "profile.json"
        spec = JobSpec(trial_id=f"profile-w{w}", trial_dir=d, world_size=w, until_epoch=1,
                       profile_steps=profile_steps, profile_out=out)
        for stale in (out, d / "error.json"):
            stale.unlink(missing_ok=True)
        res = _run_alone(backend, clock, spec, f"profiling at W={w}", f"profile probe at W={w}",
                         on_job_end, over_budget, timeout_s)
        if not out.exists():
            raise WorkerError(f"profile probe at W={w} failed: {job_error_text(res)}")
        results.append((json.loads(out.read_text()), res.launch_unix_s, res.duration_s))
    return results


def run_cost_probe(
    backend: Backend,
    clock: Clock,
    probe_dir: Path,
    exp: Any,
    probe_conf: dict[str, Any],
    make_config: Callable[[dict[str, Any]], dict[str, Any]],
    on_job_end: Callable[[JobResult], None] = lambda r: None,
    over_budget: Callable[[list[tuple[float, int]]], str | None] = lambda held: None,
    profile_steps: int = PROFILE_STEPS,
    timeout_s: float = 300.0,
) -> tuple[float, list[tuple[dict[str, Any], float]], dict[str, Any] | None]:
    """Probe the cheapest configuration ``exp`` may draw at W=1, when it is cheap enough to
    matter (:func:`cost_probe_configuration` over the experiment's ``max_configurations``
    draws). ``make_config`` turns a configuration into a trial's ``config.json`` content.

    Returns:
        ``(probe_flops, cost_probes, cheapest)``: the probe configuration's FLOPs per sample,
        the arguments :func:`profile_from_probes` takes as ``cost_probes`` (empty when no
        probe ran), and the configuration measured (or ``None``).

    Raises:
        as :func:`run_probes`.
    """
    from seer_torch.config import sample_configurations

    drawn = sample_configurations(exp, exp.search.max_configurations)
    probe_flops, *drawn_flops = configurations_flops(exp, [probe_conf, *drawn])
    cheap = cost_probe_configuration(probe_flops, list(zip(drawn, drawn_flops)))
    if cheap is None:
        return probe_flops, [], None
    probe = run_probes(backend, clock, probe_dir, make_config(cheap[0]), [1], on_job_end=on_job_end,
                       over_budget=over_budget, profile_steps=profile_steps, timeout_s=timeout_s)[0][0]
    return probe_flops, [(probe, cheap[1])], cheap[0]


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
    """Run one job alone until it ends; bill it with ``on_job_end``. ``doing`` names the
    activity in budget messages ("profiling at W=2"), ``job`` the job in failure messages.

    Raises:
        BudgetExhausted: ``over_budget`` named a reached limit (the job is stopped).
        WorkerError: the job failed or ran past ``timeout_s`` (with the worker's error).
    """
    if reason := over_budget([]):
        raise BudgetExhausted(f"{reason} before {doing}; no plan, no answer")
    handle = backend.launch(spec)
    reason = None
    timed_out = False
    while (res := backend.poll(handle)) is None:
        reason = over_budget([(handle.start_s, spec.world_size)])
        timed_out = clock.now() - handle.start_s > timeout_s
        if reason or timed_out:
            res = backend.stop(handle)
            break
        clock.sleep(0.1)
    on_job_end(res)
    if reason:
        raise BudgetExhausted(f"{reason} while {doing}; no plan, no answer")
    if timed_out:
        raise WorkerError(f"{job} failed: still running after {timeout_s:g} s, stopped")
    if res.returncode != 0:
        raise WorkerError(f"{job} failed: {job_error_text(res)}")
    return res


def measure_relaunches(
    backend: Backend,
    clock: Clock,
    trial_dir: Path,
    trial_config: dict[str, Any],
    sequence: Sequence[int],
    on_job_end: Callable[[JobResult], None] = lambda r: None,
    over_budget: Callable[[list[tuple[float, int]]], str | None] = lambda held: None,
    timeout_s: float = 300.0,
) -> list[dict[str, Any]]:
    """Train one trial one epoch per launch: epoch 1 at ``sequence[0]`` from scratch, then
    relaunched from its checkpoint at each next ``W`` of ``sequence`` for one more epoch.

    ``trial_dir`` gets ``config.json`` (``trial_config`` without TensorBoard, ``max_epochs`` at
    least ``len(sequence)``); a checkpoint, metrics or error file already there is removed
    first. Returns one record per launch: ``world_size``, ``epoch``, ``kind`` (``"fresh
    start"``, ``"resize A->B"`` or ``"relaunch A->A"``), ``resized_from`` (``None`` for the
    first), ``job_s``, ``overhead_s`` (:func:`launch_overhead_s`),
    ``train_throughput_samples_per_s``, ``epoch_time_s``, ``train_loss``, ``val_accuracy``,
    ``val_samples``. ``on_job_end`` and ``over_budget`` are as in :func:`run_probes`.

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
    for stale in ("checkpoint.pt", "metrics.jsonl", "error.json"):
        (trial_dir / stale).unlink(missing_ok=True)
    config = {**trial_config, "tensorboard_dir": None,
              "max_epochs": max(int(trial_config.get("max_epochs", 1)), len(sequence))}
    (trial_dir / "config.json").write_text(json.dumps(config, indent=2))
    trial_id = str(config.get("trial_id", trial_dir.name))
    launches: list[dict[str, Any]] = []
    previous_w: int | None = None
    for epoch, w in enumerate(sequence, start=1):
        kind = "fresh start" if previous_w is None else f"{'resize' if previous_w != w else 'relaunch'} {previous_w}->{w}"
        spec = JobSpec(trial_id=trial_id, trial_dir=trial_dir, world_size=w, until_epoch=epoch)
        res = _run_alone(backend, clock, spec, f"measuring the {kind} at W={w}", f"{kind} at W={w} (epoch {epoch})",
                         on_job_end, over_budget, timeout_s)
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
            "train_throughput_samples_per_s": float(line["throughput_samples_per_s"]),
            "epoch_time_s": float(line["epoch_time_s"]),
            "train_loss": line["train_loss"],
            "val_accuracy": line["val_accuracy"],
            "val_samples": line["val_samples"],
        })
        previous_w = w
    return launches
