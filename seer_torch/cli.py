"""The ``seer`` command.

    seer tune [CONFIG.toml] [--run-dir DIR] [--time-budget S] [--money-budget USD] [--slots N] [--profile P.json]
    seer plan [CONFIG.toml] [--time-budget S] [--money-budget USD] [--slots N] [--profile P.json] [--json]

With no CONFIG.toml both use the embedded default experiment (digits). Exit codes: 0 done
(for ``tune``: with an answer), 1 no answer or another error, 2 bad input (the message names
the field, the value and what is allowed), 130 interrupted (SIGINT, SIGTERM or SIGHUP; running
jobs are stopped and what was completed is written).
``seer plan`` imports no torch and launches nothing.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from seer_torch.config import Experiment, load_experiment
from seer_torch.errors import ConfigError, DatasetNotFoundError, SeerError

# How long `seer tune` spends profiling before it plans, in launches of the worker; used by
# `seer plan` to show the plan `seer tune` would make.
PROFILE_LAUNCHES = 2
PROFILE_EXTRA_S = 3.0  # the measured steps and one validation pass of a probe
PROFILE_SLOTS = 1.5  # mean slots a probe holds (W=1, then W=2)


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
    return parser


def _experiment(args: argparse.Namespace) -> Experiment:
    exp = load_experiment(args.config)
    return exp.with_overrides(
        time_budget_s=args.time_budget, money_budget_usd=args.money_budget, num_slots=args.slots, profile=args.profile
    )


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "plan":
            return cmd_plan(args)
        return cmd_tune(args)
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
    from seer_torch.executor import FINAL_GRACE_S, planner_inputs
    from seer_torch.policies import seer as seer_policy
    from seer_torch.scaling.profile import load_profile

    exp = _experiment(args)
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
    if not exp.planner.profile:
        profiling_s = PROFILE_LAUNCHES * (prof.startup_s + PROFILE_EXTRA_S)
    b = exp.budget
    inputs = planner_inputs(
        exp,
        prof,
        num_slots=exp.resources.num_slots,
        time_left_s=b.time_budget_s - profiling_s - FINAL_GRACE_S,
        money_left_usd=b.money_budget_usd - profiling_s * PROFILE_SLOTS * b.price_usd_per_slot_hour / 3600,
    )
    plan = seer_policy.plan(inputs)
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
        f"profile: {prof_path} ({note}): epoch {prof.epoch_time_s:.2f} s on 1 worker, start-up "
        f"{prof.startup_s:.1f} s, speedup "
        + ", ".join(f"W={w}: {s:.2f}" for w, s in zip(prof.world_sizes, prof.speedup))
    )
    if profiling_s:
        console.print(f"seer tune first spends about {profiling_s:.0f} s measuring its own profile; the plan leaves it out.")
    table = Table(title=f"SEER plan: {plan.num_configurations} configurations, eta {plan.eta}")
    for col in ("round", "rung (epochs)", "trials", "W", "waves", "predicted s", "predicted USD"):
        table.add_column(col, justify="right")
    for r in plan.rounds:
        table.add_row(
            str(r.index), str(r.rung_epoch), str(r.num_trials), str(r.world_size), str(r.waves),
            f"{r.predicted_duration_s:.1f}", f"{r.predicted_cost_usd:.4f}",
        )
    console.print(table)
    console.print(
        f"total: {plan.predicted_time_s:.1f} s of {inputs.time_budget_s:.0f} s left, "
        f"{plan.predicted_cost_usd:.4f} USD of {inputs.money_budget_usd:.4f} USD; binding: {plan.binding}"
    )
    style = "bold green" if plan.feasible else "bold red"
    console.print(f"[{style}]{plan.message}[/]")
    return 0


# ---------------------------------------------------------------------- seer tune
def cmd_tune(args: argparse.Namespace) -> int:
    exp = _experiment(args)
    from seer_torch.backends.local import LocalBackend
    from seer_torch.executor import Tuner

    check_before_launch(exp)

    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    backend = LocalBackend(exp.resources.num_slots)
    status = _LiveStatus(quiet=args.quiet)
    tuner = Tuner(exp, run_dir, backend, on_event=status.event)
    # SIGTERM and SIGHUP (a scheduler, `timeout`, a closed terminal) end the run like Ctrl-C:
    # running jobs are stopped and billed, results.json and state.json keep what was completed.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        with status:
            results = tuner.run()
    except KeyboardInterrupt:
        print(f"seer: interrupted; what was completed is in {run_dir / 'results.json'}", file=sys.stderr)
        return 130
    _print_summary(results, run_dir)
    return 0 if results["best"] is not None else 1


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def check_before_launch(exp: Experiment) -> None:
    """What only the worker's side can check, checked before anything is launched: the model
    name, the dataset folder, and every configuration the run may draw (names and values of
    hyperparameters, exactly as the worker validates its ``config.json``).

    Raises:
        ConfigError: naming the experiment field (``model.name``, ``data.data_dir``,
            ``search_space.NAME``, ...).
    """
    from seer_torch.config import sample_configurations
    from seer_torch.executor import trial_config
    from seer_torch.models import MODEL_NAMES
    from seer_torch.worker import TrialConfig

    if exp.model.name not in MODEL_NAMES:
        raise ConfigError("model.name", exp.model.name, f"one of {sorted(MODEL_NAMES)}")
    from seer_torch.data import check_cifar10_folder, num_train_samples

    if exp.data.dataset == "cifar10":
        check_cifar10_folder(exp.data.data_dir)
    n_train = num_train_samples(exp.data.dataset)
    if exp.training.global_batch > n_train:
        raise ConfigError(
            "training.global_batch", exp.training.global_batch,
            f"at most the {n_train} training samples of {exp.data.dataset}",
        )
    for i, conf in enumerate(sample_configurations(exp, exp.search.max_configurations)):
        try:
            TrialConfig.from_dict(trial_config(exp, f"t{i}", conf, None))
        except ConfigError as e:
            fld = e.field.replace("configuration.", "search_space.", 1)
            raise ConfigError(fld, e.value, e.allowed + f" (configuration {i} drawn from the search space)") from None


class _LiveStatus:
    """Live status while `seer tune` runs: a rich panel on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.console import Console

        self.console = Console(stderr=False)
        self.quiet = quiet
        self.live = None
        self.t0 = time.monotonic()

    def __enter__(self) -> "_LiveStatus":
        if self.console.is_terminal and not self.quiet:
            from rich.live import Live

            self.live = Live(self._render("starting", {}), console=self.console, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def _render(self, msg: str, st: dict[str, Any]):
        from rich.table import Table

        t = Table.grid(padding=(0, 2))
        if st:
            t.add_row(
                f"round {st['round']}" + (f"/{st['rounds_planned']}" if st.get("rounds_planned") else ""),
                f"trials alive {st['trials_alive']}/{st['trials']} ({st['running']} running)",
                f"time {st['time_used_s']:.0f}/{st['time_budget_s']:.0f} s",
                f"money {st['cost_usd']:.3f}/{st['money_budget_usd']:.2f} USD",
            )
        t.add_row(msg)
        return t

    def event(self, msg: str, st: dict[str, Any]) -> None:
        if self.quiet:
            return
        if self.live is not None:
            self.live.update(self._render(msg, st))
            if not msg.startswith("launched"):
                self.live.console.print(f"[dim]{st.get('time_used_s', 0):6.1f}s[/] {msg}")
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
        print(
            f"best: {best['trial_id']} val_accuracy {best['val_accuracy']:.4f} test_accuracy "
            f"{(best['test_accuracy'] or float('nan')):.4f} after {best['epochs']} epochs, "
            f"world sizes {best['world_sizes']}"
        )
        print("config: " + json.dumps(best["config"]))
    print(
        f"used {b['time_used_s']:.1f} of {b['time_budget_s']:g} s and {b['cost_usd']:.4f} of "
        f"{b['money_budget_usd']:g} USD; {len(results['trials'])} configurations, {len(results['rounds'])} rounds"
    )
    print(f"results: {run_dir / 'results.json'}")
    print(f"tensorboard --logdir {run_dir / 'tensorboard'}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
