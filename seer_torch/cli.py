"""The ``seer`` command.

    seer tune [CONFIG.toml] [--run-dir DIR] [--time-budget S] [--money-budget USD] [--slots N]
              [--profile P.json] [--backend local|ray] [--address ADDR] [--no-report]
    seer plan [CONFIG.toml] [--time-budget S] [--money-budget USD] [--slots N] [--profile P.json] [--json]
    seer bench record [CONFIG.toml] --configurations N --epochs E --out TABLE.json [--slots S] [--run-dir DIR]
    seer profile [CONFIG.toml] [--slots N] [--out PROFILE.json] [--steps K] [--json]
    seer resume RUN_DIR [--slots N] [--time-budget [+]S] [--money-budget [+]USD] [--no-report]
    seer verify SCRIPT_OR_CONFIG [--config NAME=VALUE ...] [--epochs E] [--world-size W] [--json]
                [-- SCRIPT_ARGS...]
    seer simulate --profile P.json[:NAME] --time-budget S[,S...] --money-budget USD[,USD...] [--table T.json]
                  [--policies seer,sha,...] [--seeds N] [--slots N] [--json]
    seer report RUN_DIR|SIMULATION.json [--out FILE] [--png]
    seer export RUN_DIR [--out FILE]

With no CONFIG.toml both use the embedded default experiment (digits). Exit codes: 0 done
(for ``tune``: with an answer), 1 no answer (``plan``: ``NO PLAN``) or another error, 2 bad
input (the message names the field, the value and what is allowed) or a run directory another
seer process holds (:mod:`seer_torch.run_lock`), 130 interrupted (SIGINT, SIGTERM or SIGHUP, unless ignored at
start as under ``nohup``; running jobs are stopped and what was completed is written), 141
its output's reader went away (``seer plan | head -1``: 128 + SIGPIPE, as a shell reports a
command that signal ended; never 1, which ``seer plan`` keeps for ``NO PLAN``).
``seer plan`` imports no torch and launches nothing. ``seer report`` and ``seer export`` exit 0
with their file written (a partial report of a killed run too), 1 when nothing could be drawn,
2 for a path that is no run directory or a run still in progress
(:mod:`seer_torch.commands.report`).

This module parses the command line and hands it to a command in :mod:`seer_torch.commands`;
it turns the errors they raise into messages and exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from seer_torch.commands.bench_record import cmd_bench_record
from seer_torch.commands.checks import check_before_launch
from seer_torch.commands.common import shipped_profile_path
from seer_torch.commands.plan import PROFILE_EXTRA_S, cmd_plan
from seer_torch.commands.profile import cmd_profile
from seer_torch.commands.report import cmd_export, cmd_report
from seer_torch.commands.simulate import cmd_simulate, eta_or_auto
from seer_torch.commands.status import LiveStatus as _LiveStatus
from seer_torch.commands.status import print_summary as _print_summary
from seer_torch.commands.tune import cmd_resume, cmd_tune
from seer_torch.commands.verify import add_verify_arguments, cmd_verify
from seer_torch.config import BACKENDS
from seer_torch.errors import ConfigError, DatasetNotFoundError, SeerError

__all__ = [
    "PROFILE_EXTRA_S", "check_before_launch", "main", "shipped_profile_path", "_LiveStatus", "_print_summary",
]

#: Exit status when stdout's reader went away: 128 + SIGPIPE (13), as a shell reports it.
EXIT_BROKEN_PIPE = 141

_CONFIG_HELP = "experiment TOML file (default: the embedded digits experiment)"


def main(argv: list[str] | None = None) -> int:
    """Run one ``seer`` command; returns its exit status (see the module docstring)."""
    args = _build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return code
    except BrokenPipeError:
        # The reader went away (`seer plan --json | head`): stop quietly, as the Python docs
        # recommend (signal module, "Note on SIGPIPE"): what is still buffered goes to devnull.
        # The status is a shell's for a command SIGPIPE ended, not 1 (NO PLAN, no answer).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (ConfigError, DatasetNotFoundError) as e:
        print(f"seer: error: {e}", file=sys.stderr)
        return 2
    except SeerError as e:
        print(f"seer: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("seer: interrupted", file=sys.stderr)
        return 130


def _version() -> str:
    """The installed seer-torch's version (its package metadata), with the torch it runs on."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("seer-torch")
    except PackageNotFoundError:  # run from a source tree that was never installed
        ours = "(not installed)"
    try:
        return f"{ours} (torch {version('torch')})"
    except PackageNotFoundError:
        return ours


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seer",
                                     description="Elastic hyperparameter tuning for PyTorch (SEER).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_tune_parser(sub)
    _add_plan_parser(sub)
    _add_profile_parser(sub)
    _add_bench_parser(sub)
    _add_simulate_parser(sub)
    _add_resume_parser(sub)
    _add_verify_parser(sub)
    _add_report_parser(sub)
    _add_export_parser(sub)
    return parser


def _add_budget_flags(p: argparse.ArgumentParser) -> None:
    """The flags ``seer tune`` and ``seer plan`` share."""
    p.add_argument("config", nargs="?", help=_CONFIG_HELP)
    p.add_argument("--time-budget", metavar="S",
                   help="deadline in seconds (overrides budget.time_budget_s; +S, which adds, is for "
                        "`seer resume`)")
    p.add_argument("--money-budget", metavar="USD",
                   help="money budget in US dollars (overrides budget.money_budget_usd; +USD is for "
                        "`seer resume`)")
    p.add_argument("--slots", type=int, metavar="N",
                   help="worker slots (default: the machine's cores; more than the cores share them: "
                        "seer tune warns)")
    p.add_argument("--profile", metavar="P.json",
                   help="a scaling profile to plan with instead of measuring one")


def _add_tune_parser(sub: Any) -> None:
    tune = sub.add_parser("tune", help="run SEER: profile, plan, train, eliminate, resize")
    _add_budget_flags(tune)
    tune.add_argument("--run-dir", metavar="DIR",
                      help="where the run's files go (default: runs/NAME-TIMESTAMP)")
    tune.add_argument("--quiet", action="store_true", help="print only the final summary")
    tune.add_argument("--no-report", action="store_true",
                      help="do not keep RUN_DIR/report.html: by default it is redrawn after each round "
                           "(at most every 30 s) and at the end, its figures in TensorBoard too")
    tune.add_argument("--backend", choices=BACKENDS,
                      help="where the jobs run (overrides resources.backend; docs/ray.md)")
    tune.add_argument("--address", metavar="ADDR",
                      help="the Ray cluster to join, such as 'auto' (overrides resources.address)")
    tune.set_defaults(func=cmd_tune)


def _add_plan_parser(sub: Any) -> None:
    plan = sub.add_parser("plan", help="print SEER's plan for an experiment; launches nothing")
    _add_budget_flags(plan)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(func=cmd_plan)


def _add_profile_parser(sub: Any) -> None:
    prof = sub.add_parser("profile", help="measure a scaling profile (throughput per W, start-up, resize) "
                                          "through the real worker or short jobs of your [trial] script; "
                                          "write it for `seer plan/tune --profile`")
    prof.add_argument("config", nargs="?", help=_CONFIG_HELP)
    prof.add_argument("--slots", type=int, metavar="N",
                      help="largest world size to probe (default: the machine's cores)")
    prof.add_argument("--out", default="profile.json", metavar="PROFILE.json",
                      help="where to write it (default profile.json)")
    prof.add_argument("--steps", type=int, metavar="K",
                      help="timed optimizer steps per measurement, after the warm-up (default 40: "
                           "at each W, and for each configuration at W=1 over two rounds; a script's "
                           "probe: at most K steps of its epoch 1)")
    prof.add_argument("--json", action="store_true", help="print the profile and every measurement as JSON")
    prof.set_defaults(func=cmd_profile)


def _add_bench_parser(sub: Any) -> None:
    bench = sub.add_parser("bench", help="benchmark tools: record learning-curve tables")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    record = bench_sub.add_parser(
        "record",
        help="train N configurations to E epochs through the real worker (W=1); write a learning-curve table",
    )
    record.add_argument("config", nargs="?", help=_CONFIG_HELP)
    record.add_argument("--configurations", type=int, required=True, metavar="N",
                        help="configurations to record (t000, t001, ...)")
    record.add_argument("--epochs", type=int, required=True, metavar="E",
                        help="epochs per configuration (the LR schedule's horizon)")
    record.add_argument("--out", required=True, metavar="TABLE.json", help="where the table goes")
    record.add_argument("--slots", type=int, metavar="S",
                        help="jobs at a time (default: the machine's cores)")
    record.add_argument("--run-dir", metavar="DIR",
                        help="trial folders; run again with the same DIR to resume "
                             "(default: runs/record-NAME-NxE)")
    record.set_defaults(func=cmd_bench_record)


def _add_simulate_parser(sub: Any) -> None:
    from seer_torch.simulate import POLICY_NAMES

    sim = sub.add_parser("simulate", help="run policies on the simulated backend over a learning-curve table")
    sim.add_argument("--table", metavar="T.json",
                     help="learning-curve table (default: the shipped digits table)")
    sim.add_argument("--profile", required=True, metavar="P.json[:NAME]",
                     help="scaling profile, or FILE:NAME for a file with a 'profiles' list")
    sim.add_argument("--time-budget", required=True, metavar="S[,S...]",
                     help="deadline, seconds; a comma-separated list sweeps them")
    sim.add_argument("--money-budget", required=True, metavar="USD[,USD...]",
                     help="money budget, US dollars; a comma-separated list sweeps them (every pair with "
                          "the deadlines is simulated)")
    sim.add_argument("--policies", default=",".join(POLICY_NAMES),
                     help=f"comma-separated, from {','.join(POLICY_NAMES)}")
    sim.add_argument("--seeds", type=int, default=5, metavar="N", help="seeds 0..N-1 (default 5)")
    sim.add_argument("--slots", type=int, default=8, metavar="N",
                     help="slots of the simulated cluster (default 8)")
    sim.add_argument("--eta", type=eta_or_auto, default=3,
                     help='elimination rate, an integer >= 2, or "auto": SEER\'s planner chooses it '
                          "(the baselines then use 3) (default 3)")
    sim.add_argument("--price", type=float, default=3.06, metavar="USD",
                     help="price per slot-hour (default 3.06)")
    sim.add_argument("--startup-s", type=float, metavar="S",
                     help="start-up seconds per job (default: the profile's; public profiles carry none)")
    sim.add_argument("--resize-s", type=float, metavar="S",
                     help="relaunch/resize seconds per job (default start-up)")
    sim.add_argument("--billing-granularity-s", type=float, default=0.0, metavar="S")
    sim.add_argument("--billing-minimum-s", type=float, default=0.0, metavar="S")
    sim.add_argument("--keep-alive", action=argparse.BooleanOptionalAction, default=None,
                     help="jobs stay alive at their rung and continue there; warm workers take new "
                          "trials at W=1 (default: as the local backend of seer tune)")
    sim.add_argument("--json", action="store_true", help="print the summary and every run as JSON")
    sim.set_defaults(func=cmd_simulate)


def _add_resume_parser(sub: Any) -> None:
    resume = sub.add_parser("resume", help="continue a run that was killed or interrupted, from its journal")
    resume.add_argument("run_dir", metavar="RUN_DIR", help="the run's directory (holds state.json)")
    resume.add_argument("--slots", type=int, metavar="N", help="worker slots (default: the run's)")
    resume.add_argument("--time-budget", metavar="S", help="a new deadline for the whole run, seconds, or +S "
                        "to add S; with it (or --money-budget) a run that ended by its budget goes on")
    resume.add_argument("--money-budget", metavar="USD", help="a new money budget for the whole run, or +USD "
                        "to add")
    resume.add_argument("--quiet", action="store_true", help="print only the final summary")
    resume.add_argument("--no-report", action="store_true",
                        help="do not redraw RUN_DIR/report.html during and at the end of the run")
    resume.set_defaults(func=cmd_resume)


def _add_verify_parser(sub: Any) -> None:
    ver = sub.add_parser(
        "verify", help="run a training script briefly at W=1 and W=2 and check that its curve ignores W",
        description="Run SCRIPT (or an experiment's [trial] script) at W=1 for E epochs, at W=2 for the "
                    "first half, and at W=1 again from the W=2 checkpoint; compare data order, learning "
                    "rate, losses, weights, evaluation, checkpoint and resume; name the likely cause of "
                    "each failure. Exit 0 when no check fails, 1 when one does, 2 for bad input.")
    add_verify_arguments(ver)
    ver.set_defaults(func=cmd_verify)


def _add_report_parser(sub: Any) -> None:
    rep = sub.add_parser(
        "report", help="draw a run (RUN_DIR/report.html) or a seer simulate comparison: one self-contained "
                       "page",
        description="Write RUN_DIR/report.html: the allocation chart (each trial's jobs over time, by W), "
                    "the budget burn-down against the plan, planned against measured rounds, the "
                    "slot-seconds split, learning curves, the search space, the answer and why the run "
                    "ended. Given the JSON of `seer simulate --json` instead, write SIMULATION.html beside "
                    "it: each policy's metric, time and money used and configurations tried against the "
                    "budget, and the numbers. Exit 0 written (a partial report of a killed run too), 1 "
                    "nothing could be drawn, 2 neither a run directory nor a simulate JSON, or a run still "
                    "in progress.")
    rep.add_argument("run_dir", metavar="RUN_DIR|SIMULATION.json",
                     help="the run's directory, or a file that `seer simulate --json` printed")
    rep.add_argument("--out", metavar="FILE",
                     help="where the page goes (default RUN_DIR/report.html, or SIMULATION.html beside "
                          "the JSON)")
    rep.add_argument("--png", action="store_true",
                     help="also write each figure as report_figures/NAME.png beside the page")
    rep.set_defaults(func=cmd_report)


def _add_export_parser(sub: Any) -> None:
    exp = sub.add_parser(
        "export", help="write RUN_DIR/trials.csv: one row per trial",
        description="Write RUN_DIR/trials.csv: trial_id, each hyperparameter, status, epochs reached, the "
                    "metric at the last epoch and at each rung, each job's W, retries, the answer, its "
                    "checkpoint. Exit codes as seer report.")
    exp.add_argument("run_dir", metavar="RUN_DIR", help="the run's directory")
    exp.add_argument("--out", metavar="FILE", help="where the CSV goes (default RUN_DIR/trials.csv)")
    exp.set_defaults(func=cmd_export)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
