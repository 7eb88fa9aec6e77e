"""The ``seer`` command.

    seer tune [CONFIG.toml] [--run-dir DIR] [--time-budget S] [--money-budget USD] [--slots N] [--profile P.json]
    seer plan [CONFIG.toml] [--time-budget S] [--money-budget USD] [--slots N] [--profile P.json] [--json]
    seer bench record [CONFIG.toml] --configurations N --epochs E --out TABLE.json [--slots S] [--run-dir DIR]
    seer profile [CONFIG.toml] [--slots N] [--out PROFILE.json] [--steps K] [--json]
    seer resume RUN_DIR [--slots N]
    seer simulate --profile P.json[:NAME] --time-budget S --money-budget USD [--table T.json]
                  [--policies seer,sha,...] [--seeds N] [--slots N] [--json]

With no CONFIG.toml both use the embedded default experiment (digits). Exit codes: 0 done
(for ``tune``: with an answer), 1 no answer or another error, 2 bad input (the message names
the field, the value and what is allowed) or a run directory another seer process holds
(:mod:`seer_torch.run_lock`), 130 interrupted (SIGINT, SIGTERM or SIGHUP, unless ignored at
start as under ``nohup``; running jobs are stopped and what was completed is written).
``seer plan`` imports no torch and launches nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from seer_torch.config import Experiment, load_experiment
from seer_torch.errors import ConfigError, DatasetNotFoundError, SeerError
from seer_torch.run_lock import LOCK_FILE, lock_run_dir

# How long `seer tune` spends profiling before it plans, in launches of the worker; used by
# `seer plan` to show the plan `seer tune` would make.
PROFILE_EXTRA_S = 5.0  # the measured steps (60) and one validation pass of a probe


def shipped_profile_path(exp: Experiment) -> Path | None:
    """A profile shipped with the package for this model and dataset, if there is one."""
    p = resources.files("seer_torch") / "profiles" / f"{exp.model.name}_{exp.data.dataset}_cpu.json"
    return Path(str(p)) if p.is_file() else None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seer", description="Elastic hyperparameter tuning for PyTorch (SEER).")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", nargs="?", help="experiment TOML file (default: the embedded digits experiment)")
        p.add_argument("--time-budget", type=float, metavar="S", help="deadline in seconds (overrides budget.time_budget_s)")
        p.add_argument("--money-budget", type=float, metavar="USD", help="money budget in US dollars")
        p.add_argument("--slots", type=int, metavar="N", help="worker slots (default: the machine's cores)")
        p.add_argument("--profile", metavar="P.json", help="a scaling profile to plan with instead of measuring one")

    tune = sub.add_parser("tune", help="run SEER: profile, plan, train, eliminate, resize")
    common(tune)
    tune.add_argument("--run-dir", metavar="DIR", help="where the run's files go (default: runs/NAME-TIMESTAMP)")
    tune.add_argument("--quiet", action="store_true", help="print only the final summary")

    plan = sub.add_parser("plan", help="print SEER's plan for an experiment; launches nothing")
    common(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")

    prof = sub.add_parser("profile", help="measure a scaling profile (throughput per W, start-up, resize) "
                                          "through the real worker; write it for `seer plan/tune --profile`")
    prof.add_argument("config", nargs="?", help="experiment TOML file (default: the embedded digits experiment)")
    prof.add_argument("--slots", type=int, metavar="N", help="largest world size to probe (default: the machine's cores)")
    prof.add_argument("--out", default="profile.json", metavar="PROFILE.json", help="where to write it (default profile.json)")
    prof.add_argument("--steps", type=int, metavar="K", help="timed optimizer steps per probe, after the warm-up (default 60, timed in 6 windows)")
    prof.add_argument("--json", action="store_true", help="print the profile and every measurement as JSON")

    bench = sub.add_parser("bench", help="benchmark tools: record learning-curve tables")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    record = bench_sub.add_parser(
        "record", help="train N configurations to E epochs through the real worker (W=1); write a learning-curve table",
    )
    record.add_argument("config", nargs="?", help="experiment TOML file (default: the embedded digits experiment)")
    record.add_argument("--configurations", type=int, required=True, metavar="N", help="configurations to record (t000, t001, ...)")
    record.add_argument("--epochs", type=int, required=True, metavar="E", help="epochs per configuration (the LR schedule's horizon)")
    record.add_argument("--out", required=True, metavar="TABLE.json", help="where the table goes")
    record.add_argument("--slots", type=int, metavar="S", help="jobs at a time (default: the machine's cores)")
    record.add_argument("--run-dir", metavar="DIR", help="trial folders; run again with the same DIR to resume "
                        "(default: runs/record-NAME-NxE)")
    record.set_defaults(func=cmd_bench_record)
    _add_simulate_parser(sub)
    resume = sub.add_parser("resume", help="continue a run that was killed or interrupted, from its journal")
    resume.add_argument("run_dir", metavar="RUN_DIR", help="the run's directory (holds state.json)")
    resume.add_argument("--slots", type=int, metavar="N", help="worker slots (default: the run's)")
    resume.add_argument("--quiet", action="store_true", help="print only the final summary")
    resume.set_defaults(func=cmd_resume)
    return parser


def _output_file(path: str) -> Path:
    """``--out``: a file path in an existing folder this user can write.

    Raises:
        ConfigError: a folder, a missing folder, or one that is not writable.
    """
    out = Path(path).expanduser()
    if out.is_dir():
        raise ConfigError("--out", str(out), "a file path, not a folder")
    if not out.parent.is_dir():
        raise ConfigError("--out", str(out), f"a file in an existing folder ({out.parent} does not exist)")
    if not os.access(out.parent, os.W_OK):
        raise ConfigError("--out", str(out), f"a file in a folder you can write ({out.parent} is not writable)")
    return out


def _experiment(args: argparse.Namespace) -> Experiment:
    exp = load_experiment(args.config)
    return exp.with_overrides(
        time_budget_s=args.time_budget, money_budget_usd=args.money_budget, num_slots=args.slots, profile=args.profile
    )


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if getattr(args, "func", None) is not None:
            code = args.func(args)
        elif args.command == "plan":
            code = cmd_plan(args)
        elif args.command == "profile":
            code = cmd_profile(args)
        else:
            code = cmd_tune(args)
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:
        # The reader went away (`seer plan --json | head`): stop quietly, as the Python docs
        # recommend (signal module, "Note on SIGPIPE"): what is still buffered goes to devnull.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (ConfigError, DatasetNotFoundError) as e:
        print(f"seer: error: {e}", file=sys.stderr)
        return 2
    except SeerError as e:
        print(f"seer: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("seer: interrupted", file=sys.stderr)
        return 130


# ---------------------------------------------------------------------- seer plan
def cmd_plan(args: argparse.Namespace) -> int:
    from seer_torch.executor import FINAL_GRACE_S, draw_costs_needed, policy_context, tune_probe_world_sizes
    from seer_torch.policies.seer_policy import SeerPolicy
    from seer_torch.scaling import profiler
    from seer_torch.scaling.profile import load_profile

    exp = _experiment(args)
    check_before_launch(exp, data=False)  # the model and the search space, as `seer tune` checks them
    profiling_s = 0.0
    if exp.planner.profile:
        prof_path, note = Path(exp.planner.profile), "given"
    else:
        shipped = shipped_profile_path(exp)
        if shipped is None:
            raise ConfigError(
                "planner.profile",
                None,
                f"a scaling profile file for model {exp.model.name!r} on {exp.data.dataset!r} "
                "(pass --profile FILE; `seer tune` measures one and writes RUN_DIR/profile.json)",
            )
        prof_path, note = shipped, "shipped estimate; seer tune measures its own first"
    prof = load_profile(prof_path)
    profiling_slot_s = 0.0
    costs = draw_costs_needed(exp, prof if exp.planner.profile else None)  # counted once
    if not exp.planner.profile:
        # `seer tune` measures its own profile first: one start-up and probe per batch of probes.
        cost_probe = costs is not None and costs.cheapest() is not None
        batches = profiler.probe_schedule(tune_probe_world_sizes(exp), cost_probe, exp.resources.num_slots)
        profiling_s = len(batches) * (prof.startup_s + PROFILE_EXTRA_S)
        profiling_slot_s = sum(map(sum, batches)) * (prof.startup_s + PROFILE_EXTRA_S)
    b = exp.budget
    ctx = policy_context(
        exp,
        prof,
        num_slots=exp.resources.num_slots,
        time_left_s=b.time_budget_s - profiling_s - FINAL_GRACE_S,
        money_left_usd=b.money_budget_usd - profiling_slot_s * b.price_usd_per_slot_hour / 3600,
        draw_costs=costs,
    )
    plan = SeerPolicy.first_plan(ctx)  # the plan `seer tune` starts from, with the same inputs
    if args.json:
        print(
            json.dumps(
                {
                    "experiment": exp.name,
                    "profile": {"path": str(prof_path), "note": note, **prof.to_dict()},
                    "profiling_s": profiling_s,
                    "budget": {"time_budget_s": b.time_budget_s, "money_budget_usd": b.money_budget_usd,
                               "price_usd_per_slot_hour": b.price_usd_per_slot_hour},
                    "num_slots": exp.resources.num_slots,
                    "plan": plan.to_dict(),
                },
                indent=2,
            )
        )
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{exp.name}[/]: {exp.model.name} on {exp.data.dataset}; deadline {b.time_budget_s:g} s, "
        f"money {b.money_budget_usd:g} USD at {b.price_usd_per_slot_hour:g} USD/slot-hour, "
        f"{exp.resources.num_slots} slots"
    )
    console.print(
        f"profile: {prof_path} ({note}): epoch {ctx.epoch_time_s:.2f} s on 1 worker"
        + (f" (the mean over the draws, {min(ctx.draw_epoch_times_s):.2f}-{max(ctx.draw_epoch_times_s):.2f} s "
           "by their FLOPs)" if ctx.draw_epoch_times_s else "")
        + ", start-up "
        f"{prof.startup_s:.1f} s, speedup "
        + ", ".join(f"W={w}: {s:.2f}" for w, s in zip(prof.world_sizes, prof.speedup))
    )
    if profiling_s:
        console.print(f"seer tune first spends about {profiling_s:.0f} s measuring its own profile; the plan leaves it out.")
    chosen = lambda v: " (chosen)" if v is None else ""  # noqa: E731 - left open to the planner
    table = Table(title=f"SEER plan: {plan.num_configurations} configurations, eta {plan.eta}{chosen(exp.training.eta)}, "
                        f"{plan.num_finalists} finalist(s){chosen(exp.planner.num_finalists)}")
    for col in ("round", "rung (epochs)", "trials", "W", "waves", "predicted s", "predicted USD"):
        table.add_column(col, justify="right")
    for r in plan.rounds:
        table.add_row(
            str(r.index), str(r.rung_epoch), str(r.num_trials), str(r.world_size), str(r.waves),
            f"{r.predicted_duration_s:.1f}", f"{r.predicted_cost_usd:.4f}",
        )
    console.print(table)
    console.print(
        f"total: {plan.predicted_time_s:.1f} s of {ctx.time_budget_s:.0f} s left, "
        f"{plan.predicted_cost_usd:.4f} USD of {ctx.money_budget_usd:.4f} USD (plans may use "
        f"safety_fraction {ctx.safety_fraction:g} of each); binding: {plan.binding}"
    )
    style = "bold green" if plan.feasible else "bold red"
    console.print(f"[{style}]{plan.message}[/]")
    return 0


# ---------------------------------------------------------------------- seer profile
def cmd_profile(args: argparse.Namespace) -> int:
    """Measure a scaling profile through the real worker under torchrun, each job alone: one
    probe per usable world size (throughput, speedup, start-up seconds), then one trial trained
    an epoch at the smallest W and relaunched from its checkpoint at the largest (resize
    seconds). Writes the profile atomically (DESIGN.md "Formats") and prints a table.
    Job folders live in a temporary folder, kept (and named) only when a job fails."""
    import platform
    import shutil
    import tempfile
    from importlib import metadata

    from seer_torch.backends.local import LocalBackend
    from seer_torch.clock import RealClock
    from seer_torch.executor import trial_config
    from seer_torch.runfiles import atomic_write_json
    from seer_torch.scaling import profiler
    from seer_torch.scaling.model import PRIOR_SERIAL_FRACTION
    from seer_torch.scaling.profile import parse_profile

    exp = load_experiment(args.config).with_overrides(num_slots=args.slots)
    steps = profiler.PROFILE_STEPS if args.steps is None else args.steps
    if steps < 1:
        raise ConfigError("--steps", steps, "an integer >= 1 (timed optimizer steps per probe)")
    out = _output_file(args.out)
    check_before_launch(exp)
    sizes = exp.usable_world_sizes()  # the ladder's W that fit the slots and divide the global batch
    sequence = [sizes[0], sizes[-1]]  # the relaunch whose cost is measured: smallest W -> largest
    conf = profiler.probe_configuration(exp)
    log = sys.stderr
    print(f"seer profile: {exp.name}: {exp.model.name} on {exp.data.dataset}, W in {list(sizes)}, "
          f"{steps} steps per probe, then a relaunch {sequence[0]}->{sequence[1]} from a checkpoint", file=log)

    def job_ended(res: Any) -> None:
        kind = "probe" if res.spec.profile_steps is not None else f"epoch {res.spec.until_epoch}"
        print(f"  W={res.spec.world_size} {kind}: {res.duration_s:.1f} s, exit {res.returncode}", file=log, flush=True)

    _stop_on_signals()
    work = Path(tempfile.mkdtemp(prefix="seer-profile-"))
    backend, clock = LocalBackend(max(sizes)), RealClock()
    try:
        config = trial_config(exp, "profile", conf, None)
        measured = profiler.run_profile_probes(
            backend, clock, work / "probes", exp, conf, sizes, lambda trial_id, c: trial_config(exp, trial_id, c, None),
            on_job_end=job_ended, profile_steps=steps, timeout_s=900.0)
        probes, cheapest = measured.probes, measured.cheapest
        launches = profiler.measure_relaunches(backend, clock, work / "relaunch", config, sequence,
                                               on_job_end=job_ended, timeout_s=3600.0)
    except BaseException as e:
        backend.stop_all()
        if isinstance(e, SeerError):
            print(f"seer profile: job folders (logs, torchrun's error.json) kept in {work}", file=log)
        else:
            shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    device = str(probes[0][0].get("device", "cpu"))
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:  # pragma: no cover
        torch_version = "?"
    resize_s = profiler.resize_s_from_launches(launches)
    source = (
        f"measured by `seer profile` on {exp.name} ({time.strftime('%Y-%m-%d')}): {steps} steps after "
        f"{probes[0][0].get('warmup_steps', 3)} warm-up steps per world size, configuration "
        f"{json.dumps(conf, sort_keys=True)}"
        + (f"; the cheapest configuration {json.dumps(cheapest, sort_keys=True)} at W=1 too" if cheapest else "")
        + "; the W=1 probes twice, their mean counts"
        + f"; resize: a relaunch {sequence[0]}->{sequence[1]} from a checkpoint; "
        f"{platform.machine()} with {os.cpu_count()} cores, {device}/{'nccl' if device == 'cuda' else 'gloo'}, "
        f"torch {torch_version}"
    )
    prof = profiler.profile_from_probes(f"{exp.model.name}-{exp.data.dataset}-{device}", probes, source,
                                        resize_s=resize_s, probe_flops=measured.probe_flops,
                                        cost_probes=measured.cost_probes)
    parse_profile(prof.to_dict())  # what `seer plan --profile` will check
    atomic_write_json(out, prof.to_dict())
    model = prof.scaling
    if args.json:
        print(json.dumps({
            "path": str(out),
            "profile": prof.to_dict(),
            "serial_fraction": model.serial_fraction,
            "used_prior": model.used_prior,
            "probes": measured.records,
            "launches": launches,
        }, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"scaling profile {prof.name}: {exp.model.name} on {exp.data.dataset}, "
                        f"global batch {exp.training.global_batch}")
    for col in ("W", "samples/s", "speedup", "efficiency", "start-up s"):
        table.add_column(col, justify="right")
    startups_by_w: dict[int, list[str]] = {}
    for p, _, d in probes:  # W=1 was probed twice: both start-ups are shown
        startups_by_w.setdefault(int(p["world_size"]), []).append(f"{profiler.probe_startup_s(p, d):.2f}")
    for w, thr, s in zip(prof.world_sizes, prof.throughput_samples_per_s, prof.speedup):
        table.add_row(str(w), f"{thr:.1f}", f"{s:.2f}", f"{s / w:.0%}", ", ".join(startups_by_w.get(w, [])))
    console.print(table)
    console.print(
        f"epoch at W=1: {prof.epoch_time_s:.2f} s; start-up: {prof.startup_s:.2f} s; resize "
        f"({sequence[0]}->{sequence[1]} from a checkpoint): {prof.resize_s:.2f} s; beyond W={prof.world_sizes[-1]}: "
        f"Amdahl, serial fraction {model.serial_fraction:.3f}"
        + (f" (too few or noisy points: never below the prior's {PRIOR_SERIAL_FRACTION})" if model.used_prior else ""),
        markup=False,
    )
    if prof.epoch_time_by_flops:
        console.print("epoch at W=1 by cost: " + ", ".join(
            f"{t:.2f} s at {f / 1e6:.1f} MFLOPs per sample" for f, t in prof.epoch_time_by_flops), markup=False)
    slower = [f"W={w} ({s:.2f})" for w, s in zip(prof.world_sizes, prof.speedup) if s < 1]
    if slower:
        console.print(f"note: speedup below 1 at {', '.join(slower)}: more workers were slower here (a shared or "
                      "small machine?); the planner treats that as no gain.", markup=False)
    console.print(f'wrote {out}  (use it: seer plan --profile {out}, or [planner] profile = "{out}")', markup=False)
    return 0


# ---------------------------------------------------------------------- seer bench record
def cmd_bench_record(args: argparse.Namespace) -> int:
    """Record a learning-curve table through the real worker (see :mod:`seer_torch.recording`):
    N configurations, each one torchrun job at W=1 to E epochs, S jobs at a time. Resumable:
    run it again with the same --run-dir and the completed trials are kept."""
    import statistics

    from seer_torch.backends.local import LocalBackend
    from seer_torch.recording import record_table

    for flag, value in (("--configurations", args.configurations), ("--epochs", args.epochs), ("--slots", args.slots)):
        if value is not None and value < 1:
            raise ConfigError(flag, value, "an integer >= 1")
    out = _output_file(args.out)
    exp = load_experiment(args.config).with_overrides(num_slots=args.slots)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"record-{exp.name}-{args.configurations}x{args.epochs}"
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError("--run-dir", str(run_dir), "a folder (this is a file)")
    check_before_launch(exp)
    t0 = time.monotonic()
    with lock_run_dir(run_dir, create=True):  # one recording per folder at a time
        _stop_on_signals()
        try:
            table = record_table(
                exp, LocalBackend(exp.resources.num_slots), num_configurations=args.configurations, epochs=args.epochs,
                run_dir=run_dir, out=out,
                on_event=lambda msg: print(f"[{time.monotonic() - t0:7.1f}s] {msg}", flush=True),
            )
        except KeyboardInterrupt:
            print(f"seer: interrupted; completed trials are kept in {run_dir}: run the same command to resume",
                  file=sys.stderr)
            return 130
    finals = sorted(v for c in table.configs if (v := c.val[-1]) == v)
    if not finals:
        print(f"wrote {out}: {len(table)} configurations x {table.max_epochs} epochs; every one diverged")
        return 0
    best = table.best_index()
    print(
        f"wrote {out}: {len(table)} configurations x {table.max_epochs} epochs, epoch {table.epoch_time_s:.2f} s "
        f"at W=1 (median); best {table.configs[best].id} val {table.val_at(best, table.max_epochs):.4f}; final val "
        f"min {finals[0]:.4f} median {statistics.median(finals):.4f} max {finals[-1]:.4f}; "
        f"{len(table) - len(finals)} diverged"
    )
    return 0


# ---------------------------------------------------------------------- seer tune
def cmd_tune(args: argparse.Namespace) -> int:
    exp = _experiment(args)
    from seer_torch.backends.local import LocalBackend
    from seer_torch.executor import Tuner

    check_before_launch(exp)

    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    # Everything is validated before the run directory is created: bad input leaves no files.
    if exp.planner.profile is not None:
        from seer_torch.scaling.profile import load_profile

        load_profile(exp.planner.profile)
    _check_new_run_dir(run_dir)
    # One seer process per run directory, for as long as it runs (made here if new; a folder
    # that cannot be made or written is bad input too).
    with lock_run_dir(run_dir, create=True):
        _check_new_run_dir(run_dir)  # nothing came in between
        backend = LocalBackend(exp.resources.num_slots)
        status = _LiveStatus(quiet=args.quiet)
        tuner = Tuner(exp, run_dir, backend, on_event=status.event)
        _stop_on_signals()
        try:
            with status:
                results = tuner.run()
        except KeyboardInterrupt:
            print(f"seer: interrupted; what was completed is in {run_dir / 'results.json'}", file=sys.stderr)
            return 130
    _print_summary(results, run_dir)
    return 0 if results["best"] is not None else 1


def cmd_resume(args: argparse.Namespace) -> int:
    """``seer resume RUN_DIR``: see :meth:`seer_torch.executor.Tuner.resume` (survivors go on
    from their checkpoints, eliminated trials stay eliminated, spend and time are restored, and
    the time the tuner was down counts against the deadline)."""
    from seer_torch.backends.local import LocalBackend
    from seer_torch.config import load_experiment
    from seer_torch.executor import Tuner

    run_dir = Path(args.run_dir)
    if not (run_dir / "experiment.toml").is_file():
        raise ConfigError("RUN_DIR", str(run_dir), "a run directory made by `seer tune` (it has no experiment.toml)")
    if args.slots is not None and args.slots < 1:
        raise ConfigError("--slots", args.slots, "an integer >= 1")
    # Before the journal is read or a leftover job stopped: a tuner still alive keeps its run.
    with lock_run_dir(run_dir, field="RUN_DIR"):
        exp = load_experiment(run_dir / "experiment.toml")
        slots = exp.resources.num_slots if args.slots is None else args.slots
        status = _LiveStatus(quiet=args.quiet)
        tuner = Tuner.resume(run_dir, LocalBackend(slots), on_event=status.event)
        _stop_on_signals()
        try:
            with status:
                results = tuner.run(resume=True)
        except KeyboardInterrupt:
            print(f"seer: interrupted; resume again with `seer resume {run_dir}`", file=sys.stderr)
            return 130
    _print_summary(results, run_dir)
    return 0 if results["best"] is not None else 1


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _stop_on_signals() -> None:
    """SIGTERM and SIGHUP (a scheduler, `timeout`, a closed terminal) end the command like
    Ctrl-C: running jobs are stopped and billed, and what was completed is written. A signal
    ignored when seer started stays ignored, as Python does for SIGINT: under ``nohup`` a
    closed terminal does not stop the run."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, _interrupt)


def _check_new_run_dir(run_dir: Path) -> None:
    """``--run-dir`` of ``seer tune``: a new folder, or an empty one (its lock file aside).

    Raises:
        ConfigError: a file, or a folder that holds files.
    """
    if run_dir.exists() and (not run_dir.is_dir() or any(p.name != LOCK_FILE for p in run_dir.iterdir())):
        held = "holds a run: continue it with `seer resume " + str(run_dir) + "`" \
            if (run_dir / "experiment.toml").is_file() else "is a file or holds files"
        raise ConfigError("--run-dir", str(run_dir), f"a new or empty directory (this one {held})")


def check_before_launch(exp: Experiment, *, data: bool = True) -> None:
    """What only the worker's side can check, checked before anything is launched: the model
    name, the dataset folder and its files' integrity, as the loader checks it (unless ``data``
    is false: ``seer plan`` reads no data), the search space's bounds (each end of a range,
    each choice) and every configuration the run may draw (names and values of
    hyperparameters, exactly as the worker validates its ``config.json``).

    Raises:
        ConfigError: naming the experiment field (``model.name``, ``search_space.NAME.low``,
            ``search_space.NAME.high``, ``search_space.NAME``, ...).
        DatasetNotFoundError: the CIFAR-10 folder is incomplete or fails the integrity check.
    """
    from seer_torch.config import did_you_mean, sample_configurations
    from seer_torch.executor import trial_config
    from seer_torch.models import MODEL_NAMES, model_hparam_names
    from seer_torch.worker import _TRAINING_HPARAMS, TrialConfig

    if exp.model.name not in MODEL_NAMES:
        raise ConfigError(
            "model.name", exp.model.name, f"one of {', '.join(sorted(MODEL_NAMES))}" + did_you_mean(exp.model.name, MODEL_NAMES)
        )
    from seer_torch.data import check_cifar10_integrity, num_train_samples

    if data and exp.data.dataset == "cifar10":
        check_cifar10_integrity(exp.data.data_dir)  # the check the loader runs, before any job does
    n_train = num_train_samples(exp.data.dataset)
    if exp.training.global_batch > n_train:
        raise ConfigError(
            "training.global_batch", exp.training.global_batch,
            f"at most the {n_train} training samples of {exp.data.dataset}",
        )
    known = set(_TRAINING_HPARAMS) | set(model_hparam_names(exp.model.name))
    for p in exp.search_space:
        if p.name not in known:
            value = list(p.choices) if p.kind == "choice" else p.value if p.kind == "fixed" else (p.low, p.high)
            raise ConfigError(
                f"search_space.{p.name}", value,
                f"training hyperparameters {', '.join(sorted(_TRAINING_HPARAMS))} or hyperparameters of model "
                f"{exp.model.name!r}: {', '.join(sorted(model_hparam_names(exp.model.name)))}" + did_you_mean(p.name, known),
            )
    # The search space's own bounds first (each end of a range, each choice, a fixed value), one
    # hyperparameter at a time, so that the message names the bound whatever the draws; then
    # every configuration the run may draw (the profile probe and later draws use them too).
    # The rules are intervals, so a range whose two ends pass holds no value the worker rejects;
    # global_batch must also divide by every planned W, which int_uniform's every integer must do.
    sampled = sample_configurations(exp, exp.search.max_configurations)
    usable = exp.usable_world_sizes()

    def bad_global_batch(gb: Any) -> bool:
        return gb > n_train or any(gb % w for w in usable)

    gb_allowed = (f"a multiple of every planned world size {list(usable)} and at most the {n_train} training "
                  f"samples of {exp.data.dataset}")
    for p in exp.search_space:
        fld = f"search_space.{p.name}"
        if p.kind == "choice":
            bounds = [(fld, c) for c in p.choices]
        elif p.kind == "int_uniform":
            bounds = [(f"{fld}.low", int(p.low)), (f"{fld}.high", int(p.high))]
        elif p.kind in ("uniform", "loguniform"):
            bounds = [(f"{fld}.low", float(p.low)), (f"{fld}.high", float(p.high))]
        else:
            bounds = [(fld, p.value)]
        for bound, v in bounds:
            try:
                TrialConfig.from_dict(trial_config(exp, "check", {**sampled[0], p.name: v}, None))
            except ConfigError as e:
                if e.field == f"configuration.{p.name}":  # another hyperparameter's draw: checked below
                    raise ConfigError(bound, v, e.allowed) from None
            if p.name == "global_batch" and bad_global_batch(v):
                raise ConfigError(bound, v, gb_allowed)
        if p.name == "global_batch" and p.kind == "int_uniform":
            bad = next((g for g in range(int(p.low), int(p.high) + 1) if bad_global_batch(g)), None)
            if bad is not None:
                raise ConfigError(fld, bad, f"{gb_allowed} (int_uniform draws every integer from low to high; "
                                            "list the multiples with choices = [...])")
    for i, conf in enumerate(sampled):
        where = f"configuration {i} drawn from the search space"
        try:
            TrialConfig.from_dict(trial_config(exp, "check", conf, None))
        except ConfigError as e:
            fld = e.field.replace("configuration.", "search_space.", 1)
            raise ConfigError(fld, e.value, e.allowed + f" ({where})") from None
        gb = conf.get("global_batch")
        if gb is not None and bad_global_batch(gb):
            raise ConfigError("search_space.global_batch", gb, f"{gb_allowed} ({where})")

class _LiveStatus:
    """Live status while `seer tune` runs: a rich panel on a terminal, plain lines otherwise.

    Each event is printed once as a line (on a terminal above the panel; ``launched ...``
    events only update the panel). The panel is two status lines and the last event, each cut
    to the terminal's width, never wrapped; it is redrawn four times a second and computes the
    time it shows when drawn (the last event's ``time_used_s`` plus the seconds since), so the
    time ticks during profiling and between launches. It is removed at the end: the event lines
    and the summary stay. The run's final status event, when it only repeats the stop reason,
    says its head (``finished`` after ``policy finished: REASON``; ``interrupted: interrupted``);
    other events are printed whole. How a run that did not finish ended (``interrupted``,
    ``failed``) is said by the command itself, on stderr with where its files are, so the
    status leaves it out.

    Args:
        quiet: print nothing.
        clock: monotonic seconds (``time.monotonic``), read when the panel is drawn.
    """

    _SAID_BY_THE_COMMAND = ("interrupted", "failed")
    _FINAL_STATUSES = ("finished", "interrupted", "failed")  # Tuner.run's last event: "STATUS: stop_reason"

    def __init__(self, quiet: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        from rich.console import Console

        self.console = Console(stderr=False)
        self.quiet = quiet
        self.live = None
        self._clock = clock
        self._msg = "starting"
        self._st: dict[str, Any] = {}
        self._st_at_s = clock()
        self._last_reason = ""

    def __enter__(self) -> "_LiveStatus":
        if self.console.is_terminal and not self.quiet:
            from rich.live import Live

            self.live = Live(self, console=self.console, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __rich__(self) -> Any:
        """The panel as it is now (rich calls this at each redraw)."""
        from rich.console import Group
        from rich.text import Text

        def line(text: str) -> Text:
            return Text(text, no_wrap=True, overflow="ellipsis")

        lines = []
        st = self._st
        if st:
            time_s = st["time_used_s"] + self._clock() - self._st_at_s
            lines.append(line(
                f"round {st['round']}" + (f"/{st['rounds_planned']}" if st.get("rounds_planned") else "")
                + f"   trials alive {st['trials_alive']}/{st['trials']} ({st['running']} running)"))
            lines.append(line(f"time {time_s:.0f}/{st['time_budget_s']:.0f} s   "
                              f"money {st['cost_usd']:.3f}/{st['money_budget_usd']:.2f} USD"))
        lines.append(line(self._msg))
        return Group(*lines)

    def event(self, msg: str, st: dict[str, Any]) -> None:
        """Show event ``msg`` with the run's status ``st`` (:meth:`Tuner.status`)."""
        if self.quiet:
            return
        head, _, reason = msg.partition(": ")
        if head in self._FINAL_STATUSES and reason and reason in (head, self._last_reason):
            msg = head  # the run's final status repeating its stop reason
        self._last_reason = reason
        self._msg, self._st, self._st_at_s = msg, dict(st), self._clock()
        if msg in self._SAID_BY_THE_COMMAND or head in self._SAID_BY_THE_COMMAND:
            return
        if self.live is not None:
            self.live.refresh()
            if not msg.startswith("launched"):
                from rich.text import Text

                self.live.console.print(Text.assemble((f"{st.get('time_used_s', 0):6.1f}s", "dim"), " ", msg))
        else:
            print(
                f"[{st.get('time_used_s', 0):6.1f}s | round {st.get('round')} | alive {st.get('trials_alive')}"
                f" | {st.get('cost_usd', 0):.3f} USD] {msg}",
                flush=True,
            )


def _print_summary(results: dict[str, Any], run_dir: Path) -> None:
    b = results["budget"]
    best = results["best"]
    print()
    if best is None:
        print("No trial completed a rung; no answer." + (f" ({results['stop_reason']})" if results["stop_reason"] else ""))
    else:
        test = (f"test_accuracy {best['test_accuracy']:.4f}" if best.get("test_accuracy") is not None
                else "test accuracy not measured (stopped before a rung)")
        # Short lines (a terminal of 80 columns): the answer, its accuracies, its configuration.
        print(f"best: {best['trial_id']} after {best['epochs']} epochs, world sizes {best['world_sizes']}")
        print(f"  val_accuracy {best['val_accuracy']:.4f}, {test}")
        if best.get("partial"):
            print(f"  partial: its learning-rate schedule runs to epoch {best.get('schedule_epochs')}")
        print("config: " + json.dumps(best["config"], indent=2))
    print(
        f"used {b['time_used_s']:.1f} of {b['time_budget_s']:g} s and {b['cost_usd']:.4f} of "
        f"{b['money_budget_usd']:g} USD; {len(results['trials'])} configurations, {len(results['rounds'])} rounds"
    )
    print(f"results: {run_dir / 'results.json'}")
    if (run_dir / "tensorboard").is_dir():
        print(f"tensorboard --logdir {run_dir / 'tensorboard'}")




# ---------------------------------------------------------------------- seer simulate
def _eta_or_auto(text: str) -> int | None:
    """``--eta``: an integer >= 2, or ``auto`` (``None``: the planner chooses)."""
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: an integer >= 2, or \"auto\"")
    return value


def _add_simulate_parser(sub: Any) -> None:
    from seer_torch.simulate import POLICY_NAMES

    sim = sub.add_parser("simulate", help="run policies on the simulated backend over a learning-curve table")
    sim.add_argument("--table", metavar="T.json", help="learning-curve table (default: the shipped digits table)")
    sim.add_argument("--profile", required=True, metavar="P.json[:NAME]",
                     help="scaling profile, or FILE:NAME for a file with a 'profiles' list")
    sim.add_argument("--time-budget", type=float, required=True, metavar="S", help="deadline, seconds")
    sim.add_argument("--money-budget", type=float, required=True, metavar="USD", help="money budget, US dollars")
    sim.add_argument("--policies", default=",".join(POLICY_NAMES), help=f"comma-separated, from {','.join(POLICY_NAMES)}")
    sim.add_argument("--seeds", type=int, default=5, metavar="N", help="seeds 0..N-1 (default 5)")
    sim.add_argument("--slots", type=int, default=8, metavar="N", help="slots of the simulated cluster (default 8)")
    sim.add_argument("--eta", type=_eta_or_auto, default=3,
                     help='elimination rate, an integer >= 2, or "auto": SEER\'s planner chooses it '
                          "(the baselines then use 3) (default 3)")
    sim.add_argument("--price", type=float, default=3.06, metavar="USD", help="price per slot-hour (default 3.06)")
    sim.add_argument("--startup-s", type=float, metavar="S", help="start-up seconds per job (default: the profile's; public profiles carry none)")
    sim.add_argument("--resize-s", type=float, metavar="S", help="relaunch/resize seconds per job (default start-up)")
    sim.add_argument("--billing-granularity-s", type=float, default=0.0, metavar="S")
    sim.add_argument("--billing-minimum-s", type=float, default=0.0, metavar="S")
    sim.add_argument("--json", action="store_true", help="print the summary and every run as JSON")
    sim.set_defaults(func=cmd_simulate)


def cmd_simulate(args: argparse.Namespace) -> int:
    from seer_torch.curves import LearningCurveTable
    from seer_torch.simulate import (
        POLICY_NAMES, SimulationCase, format_report, load_profile_for_simulation, shipped_table_path, simulate,
    )

    table_path = args.table or shipped_table_path()
    if table_path is None:
        raise ConfigError("--table", None, "a learning-curve table JSON file (none is shipped in this install)")
    table = LearningCurveTable.load(table_path)
    for flag, value in (("--startup-s", args.startup_s), ("--resize-s", args.resize_s)):
        if value is not None and (not value >= 0 or value == float("inf")):
            raise ConfigError(flag, value, "a finite number of seconds >= 0")
    profile = load_profile_for_simulation(args.profile, startup_s=args.startup_s, resize_s=args.resize_s)
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if not policies:
        raise ConfigError("--policies", args.policies, f"a comma-separated list of {', '.join(POLICY_NAMES)}")
    for p in policies:
        if p not in POLICY_NAMES:
            raise ConfigError("--policies", p, f"names from {', '.join(POLICY_NAMES)}")
    if args.seeds < 1:
        raise ConfigError("--seeds", args.seeds, "an integer >= 1")
    if args.slots < 1:
        raise ConfigError("--slots", args.slots, "an integer >= 1")
    for name in ("time_budget", "money_budget"):
        v = getattr(args, name)
        if not v > 0 or v != v or v == float("inf"):
            raise ConfigError("--" + name.replace("_", "-"), v, "a finite number > 0")
    case = SimulationCase(
        table, profile, args.time_budget, args.money_budget, num_slots=args.slots,
        price_usd_per_slot_hour=args.price, eta=args.eta,
        world_size_ladder=tuple(w for w in (1, 2, 4, 8, 16, 32, 64) if w <= args.slots),
        billing_granularity_s=args.billing_granularity_s, billing_minimum_s=args.billing_minimum_s,
    )
    result = simulate(case, policies, list(range(args.seeds)))
    if args.json:
        print(json.dumps({"table": str(table_path), "profile": profile.to_dict(), "time_budget_s": args.time_budget,
                          "money_budget_usd": args.money_budget, "num_slots": args.slots, **result}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{table.name}: {len(table)} configurations x {table.max_epochs} epochs; profile {profile.name}; "
                    f"{args.time_budget:g} s, {args.money_budget:g} USD, {args.slots} slots, {args.seeds} seeds")
    for col in ("policy", "final accuracy (mean ± std)", "regret", "time s", "money USD", "violations",
                "configurations", "no answer"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for row in format_report(result, case):
        t.add_row(*row)
    Console().print(t)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
