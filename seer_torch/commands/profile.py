"""``seer profile``: measure a scaling profile through the real worker, or of a ``[trial]
script`` through short jobs of the script itself, and write it for ``seer plan/tune --profile``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seer_torch.commands.checks import check_before_launch
from seer_torch.commands.common import make_backend, output_file, print_table, stop_on_signals, text_console
from seer_torch.config import Experiment, load_experiment
from seer_torch.errors import ConfigError, SeerError


@dataclass(frozen=True)
class _Measured:
    """What the probe and relaunch jobs measured.

    Attributes:
        probe_set: :class:`seer_torch.scaling.profiler.ProbeSet` of the probes.
        launches: the relaunch sequence's launches (:func:`profiler.measure_relaunches`).
    """

    probe_set: Any
    launches: list[dict[str, Any]]


def cmd_profile(args: argparse.Namespace) -> int:
    """Measure a scaling profile under torchrun, each job alone: one probe job at the smallest
    usable ``W > 1`` that times W=1 on its ranks too, one at each larger usable ``W``
    (:func:`profiler.run_profile_probes`: throughput, speedup, start-up seconds), then one trial
    trained an epoch at the smallest W and relaunched from its checkpoint at the largest
    (resize seconds). The probes run the
    built-in worker, or for a ``[trial] script`` the script itself (:func:`_profile_script`).
    Writes the profile atomically (docs/design.md "Formats") and prints a table. Job folders
    live in a temporary folder, kept (and named) only when a job fails.

    Raises:
        ConfigError: bad input (``--steps``, ``--out``, the experiment).
        SeerError: a probe or relaunch job failed.
    """
    from seer_torch.runfiles import atomic_write_json
    from seer_torch.scaling import profiler
    from seer_torch.scaling.profile import parse_profile

    exp = load_experiment(args.config).with_overrides(num_slots=args.slots)
    steps = profiler.PROFILE_STEPS if args.steps is None else args.steps
    if steps < 1:
        raise ConfigError("--steps", steps, "an integer >= 1 (timed optimizer steps per probe)")
    out = output_file(args.out)
    check_before_launch(exp)
    sizes = exp.usable_world_sizes()  # the ladder's W that fit the slots and divide the global batch
    sequence = [sizes[0], sizes[-1]]  # the relaunch whose cost is measured: smallest W -> largest
    if exp.trial.script is not None:
        return _profile_script(exp, args, sizes, sequence, steps, out)
    conf = profiler.probe_configuration(exp)
    print(f"seer profile: {exp.name}: {exp.model.name} on {exp.data.dataset}, W in {list(sizes)}, "
          f"{steps} steps per probe, then a relaunch {sequence[0]}->{sequence[1]} from a checkpoint",
          file=sys.stderr)
    stop_on_signals()
    measured = _measure(exp, conf, sizes, sequence, steps)
    probes = measured.probe_set.probes
    device = str(probes[0][0].get("device", "cpu"))
    source = _profile_source(exp, conf, measured, sequence, steps, device)
    prof = profiler.profile_from_probes(f"{exp.model.name}-{exp.data.dataset}-{device}", probes, source,
                                        resize_s=profiler.resize_s_from_launches(measured.launches),
                                        probe_flops=measured.probe_set.probe_flops,
                                        cost_probes=measured.probe_set.cost_probes)
    parse_profile(prof.to_dict())  # what `seer plan --profile` will check
    atomic_write_json(out, prof.to_dict())
    if args.json:
        print(json.dumps({
            "path": str(out),
            "profile": prof.to_dict(),
            "serial_fraction": prof.scaling.serial_fraction,
            "used_prior": prof.scaling.used_prior,
            "probes": measured.probe_set.records,
            "launches": measured.launches,
        }, indent=2))
    else:
        _print_table(exp, prof, probes, sequence, out)
    return 0


def _job_ended(res: Any, kind: str = "") -> None:
    """One line on stderr per probe or relaunch job (``kind`` "epoch": a relaunch)."""
    probe = res.spec.profile_steps is not None and kind != "epoch"
    kind = "probe" if probe else f"epoch {res.spec.until_epoch}"
    print(f"  W={res.spec.world_size} {kind}: {res.duration_s:.1f} s, exit {res.returncode}",
          file=sys.stderr, flush=True)


@contextlib.contextmanager
def _work_folder(backend: Any) -> Iterator[Path]:
    """A temporary folder for probe and relaunch jobs: removed afterwards, or kept (and named on
    stderr) when a job failed (a :class:`SeerError`: its logs and torchrun's error.json are
    there); every job ``backend`` still runs is stopped first on any error."""
    import shutil
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="seer-profile-"))
    try:
        yield work
    except BaseException as e:
        backend.stop_all()
        if isinstance(e, SeerError):
            print(f"seer profile: job folders (logs, torchrun's error.json) kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)


def _measure(exp: Experiment, conf: dict[str, Any], sizes: tuple[int, ...], sequence: list[int],
             steps: int) -> _Measured:
    """Run the probes and the relaunch sequence on the local backend, in a temporary folder
    removed afterwards, or kept (and named on stderr) when a job fails."""
    from seer_torch.clock import RealClock
    from seer_torch.executor import trial_config
    from seer_torch.scaling import profiler

    backend, clock = make_backend(exp, num_slots=max(sizes)), RealClock()
    with _work_folder(backend) as work:
        config = trial_config(exp, "profile", conf, None)
        probe_set = profiler.run_profile_probes(
            backend, clock, work / "probes", exp, conf, sizes,
            lambda trial_id, c: trial_config(exp, trial_id, c, None),
            on_job_end=_job_ended, profile_steps=steps, timeout_s=900.0)
        launches = profiler.measure_relaunches(backend, clock, work / "relaunch", config, sequence,
                                               on_job_end=_job_ended, timeout_s=3600.0)
    return _Measured(probe_set, launches)


def _profile_script(exp: Experiment, args: argparse.Namespace, sizes: tuple[int, ...], sequence: list[int],
                    steps: int, out: Path) -> int:
    """``seer profile`` of a ``[trial] script``: short jobs of the script itself
    (:func:`seer_torch.scaling.script_profile.run_script_probes`: epoch 1 of the probe
    configuration, at most ``steps`` optimizer steps, at W=1 twice side by side and at each
    larger of ``sizes``), then the relaunch ``sequence`` from a checkpoint (resize seconds), in
    a temporary folder removed afterwards or kept (and named) when a job fails. Writes the
    profile, prints a table (or JSON with ``--json``). Returns 0.

    Raises:
        SeerError: a probe or relaunch job failed (the script's error).
    """

    from seer_torch.clock import RealClock
    from seer_torch.executor import trial_config
    from seer_torch.runfiles import atomic_write_json
    from seer_torch.scaling import profiler, script_profile
    from seer_torch.scaling.profile import parse_profile

    assert exp.trial.script is not None
    script, conf = Path(exp.trial.script), profiler.probe_configuration(exp)
    print(f"seer profile: {exp.name}: script {script.name}, W in {list(sizes)}, epoch 1 of at most {steps} "
          f"steps per probe, then a relaunch {sequence[0]}->{sequence[1]} from a checkpoint", file=sys.stderr)
    stop_on_signals()
    backend, clock = make_backend(exp, num_slots=max(sizes)), RealClock()
    config = trial_config(exp, "profile", conf, None)
    timeout_s = max(900.0, exp.failures.hang_timeout_s)
    with _work_folder(backend) as work:
        records = script_profile.run_script_probes(
            backend, clock, work / "probes", config, sizes, script=script, script_args=exp.trial.args,
            on_job_end=_job_ended, probe_steps=steps, timeout_s=timeout_s)
        launches = profiler.measure_relaunches(
            backend, clock, work / "relaunch", config, sequence, on_job_end=lambda r: _job_ended(r, "epoch"),
            timeout_s=timeout_s, script=script, script_args=exp.trial.args, probe_steps=steps)
    device = "cuda" if _cuda_available() else "cpu"
    source = (
        f"measured by `seer profile` on {exp.name} ({time.strftime('%Y-%m-%d')}): short jobs of "
        f"{script.name} {' '.join(exp.trial.args)}".rstrip() + f" (epoch 1, at most {steps} optimizer steps, "
        f"configuration {json.dumps(conf, sort_keys=True)}) at each W, W=1 twice (its mean counts); "
        f"resize: a relaunch {sequence[0]}->{sequence[1]} from a checkpoint; {_machine(device)}"
    )
    prof = script_profile.profile_from_script_probes(
        f"{script.stem}-{exp.name}-{device}", records, source,
        resize_s=profiler.resize_s_from_launches(launches))
    parse_profile(prof.to_dict())  # what `seer plan --profile` will check
    atomic_write_json(out, prof.to_dict())
    if args.json:
        model = prof.scaling
        print(json.dumps({"path": str(out), "profile": prof.to_dict(),
                          "serial_fraction": model.serial_fraction, "used_prior": model.used_prior,
                          "probes": records, "launches": launches}, indent=2))
    else:
        _print_script_table(exp, prof, records, sequence, out)
    return 0


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _machine(device: str) -> str:
    """The machine in words: architecture, cores, device and backend, torch's version."""
    import platform
    from importlib import metadata

    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:  # pragma: no cover
        torch_version = "?"
    backend = "nccl" if device == "cuda" else "gloo"
    return f"{platform.machine()} with {os.cpu_count()} cores, {device}/{backend}, torch {torch_version}"


def _profile_source(exp: Experiment, conf: dict[str, Any], measured: _Measured, sequence: list[int],
                    steps: int, device: str) -> str:
    """The profile's ``source``: what was measured, how, and on what machine."""
    from seer_torch.scaling import profiler

    probes, cheapest = measured.probe_set.probes, measured.probe_set.cheapest
    jobs = profiler.probe_jobs([int(p["world_size"]) for p, _, _ in probes])
    return (
        f"measured by `seer profile` on {exp.name} ({time.strftime('%Y-%m-%d')}): {steps} steps after "
        f"{probes[0][0].get('warmup_steps', 3)} warm-up steps per world size, configuration "
        f"{json.dumps(conf, sort_keys=True)}"
        + (f"; the cheapest configuration {json.dumps(cheapest, sort_keys=True)} at W=1 too"
           if cheapest else "")
        + f"; W=1 timed on each rank of the W={jobs[0]} probe job side by side, 3 rounds, their mean counts"
        + f"; resize: a relaunch {sequence[0]}->{sequence[1]} from a checkpoint; {_machine(device)}"
    )


def _print_table(exp: Experiment, prof: Any, probes: list[Any], sequence: list[int], out: Path) -> None:
    from rich.table import Table

    from seer_torch.scaling import profiler
    from seer_torch.scaling.model import PRIOR_SERIAL_FRACTION

    model = prof.scaling
    console = text_console()
    table = Table(title=f"scaling profile {prof.name}: {exp.model.name} on {exp.data.dataset}, "
                        f"global batch {exp.training.global_batch}")
    for col in ("W", "samples/s", "speedup", "efficiency", "start-up s"):
        table.add_column(col, justify="right")
    startups_by_w: dict[int, list[str]] = {}
    for p, _, d in probes:  # the start-up of the job that measured it (W=1's: the W=2 job's)
        startups_by_w.setdefault(int(p["world_size"]), []).append(f"{profiler.probe_startup_s(p, d):.2f}")
    for w, thr, s in zip(prof.world_sizes, prof.throughput_samples_per_s, prof.speedup):
        table.add_row(str(w), f"{thr:.1f}", f"{s:.2f}", f"{s / w:.0%}", ", ".join(startups_by_w.get(w, [])))
    print_table(console, table)
    console.print(
        f"epoch at W=1: {prof.epoch_time_s:.2f} s; start-up: {prof.startup_s:.2f} s; resize "
        f"({sequence[0]}->{sequence[1]} from a checkpoint): {prof.resize_s:.2f} s; "
        f"beyond W={prof.world_sizes[-1]}: Amdahl, serial fraction {model.serial_fraction:.3f}"
        + (f" (too few or noisy points: never below the prior's {PRIOR_SERIAL_FRACTION})"
           if model.used_prior else ""),
        markup=False,
    )
    if prof.epoch_time_by_flops:
        by_cost = ", ".join(f"{t:.2f} s at {f / 1e6:.1f} MFLOPs per sample"
                            for f, t in prof.epoch_time_by_flops)
        console.print("epoch at W=1 by cost: " + by_cost, markup=False)
    slower = [f"W={w} ({s:.2f})" for w, s in zip(prof.world_sizes, prof.speedup) if s < 1]
    if slower:
        console.print(f"note: speedup below 1 at {', '.join(slower)}: more workers were slower here "
                      "(a shared or small machine?); the planner treats that as no gain.", markup=False)
    console.print(f'wrote {out}  (use it: seer plan --profile {out}, or [planner] profile = "{out}")',
                  markup=False)


def _print_script_table(exp: Experiment, prof: Any, records: list[dict[str, Any]], sequence: list[int],
                        out: Path) -> None:
    """The script's profile: per W the whole epoch's seconds (predicted from the probe's steps),
    speedup, efficiency and each probe's start-up."""
    from rich.table import Table

    from seer_torch.scaling.model import PRIOR_SERIAL_FRACTION

    console = text_console()
    table = Table(title=f"scaling profile {prof.name}: script {Path(str(exp.trial.script)).name}, "
                        f"global batch {exp.training.global_batch}")
    for col in ("W", "epoch s", "speedup", "efficiency", "start-up s"):
        table.add_column(col, justify="right")
    startups_by_w: dict[int, list[str]] = {}
    for r in records:  # W=1 was probed twice: both start-ups are shown
        startups_by_w.setdefault(int(r["world_size"]), []).append(f"{r['startup_s']:.2f}")
    for w, s in zip(prof.world_sizes, prof.speedup):
        table.add_row(str(w), f"{prof.epoch_time_s / s:.3f}", f"{s:.2f}", f"{s / w:.0%}",
                      ", ".join(startups_by_w.get(w, [])))
    print_table(console, table)
    extrapolated = [r for r in records if r["extrapolated"]]
    if extrapolated:
        r = extrapolated[0]
        console.print(f"epochs predicted from {r['steps']} of their {r['steps_per_epoch']} optimizer steps "
                      "(at the probe's steady rate) plus the epoch's other seconds", markup=False)
    elif not any(r["steps"] for r in records):
        console.print("the script trains without seer_torch.trial's train_batches: each probe trained "
                      "a whole epoch", markup=False)
    model = prof.scaling
    console.print(
        f"epoch at W=1: {prof.epoch_time_s:.3f} s; start-up: {prof.startup_s:.2f} s; resize "
        f"({sequence[0]}->{sequence[1]} from a checkpoint): {prof.resize_s:.2f} s; "
        f"beyond W={prof.world_sizes[-1]}: Amdahl, serial fraction {model.serial_fraction:.3f}"
        + (f" (too few or noisy points: never below the prior's {PRIOR_SERIAL_FRACTION})"
           if model.used_prior else ""),
        markup=False,
    )
    slower = [f"W={w} ({s:.2f})" for w, s in zip(prof.world_sizes, prof.speedup) if s < 1]
    if slower:
        console.print(f"note: speedup below 1 at {', '.join(slower)}: more workers were slower here "
                      "(a shared or small machine, or a model too small to pay for DDP's all-reduce); "
                      "the planner treats that as no gain.", markup=False)
    console.print(f'wrote {out}  (use it: seer plan --profile {out}, or [planner] profile = "{out}")',
                  markup=False)
