"""``seer verify SCRIPT_OR_CONFIG``: run a training script briefly at ``W = 1`` and at another
``W`` and say, check by check, whether its learning curve ignores ``W``, naming the likely cause
of each failure (:mod:`seer_torch.verify` runs it, :mod:`seer_torch.verify_checks` judges).
Exit status: 0 every check passed (or was not judged), 1 one failed or the script fails at
``W = 1``, 2 bad input."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from seer_torch.commands.common import print_table, stop_on_signals, text_console
from seer_torch.config import Experiment, load_experiment, parse_experiment
from seer_torch.errors import ConfigError

#: The global batch of a bare script's verification when ``--global-batch`` is not given.
DEFAULT_SCRIPT_GLOBAL_BATCH = 32


def add_verify_arguments(parser: argparse.ArgumentParser, *, positionals: bool = True) -> None:
    """The flags of ``seer verify`` (and its ``SCRIPT_OR_CONFIG`` and ``-- SCRIPT_ARGS`` when
    ``positionals``)."""
    if positionals:
        parser.add_argument("target", metavar="SCRIPT_OR_CONFIG",
                            help="a torchrun training script on seer_torch.trial, or an experiment TOML file")
        parser.add_argument("script_args", nargs=argparse.REMAINDER, metavar="-- SCRIPT_ARGS",
                            help="the script's own arguments, after -- (an experiment file's script gets "
                                 "its [trial] args)")
    parser.add_argument("--config", dest="config_values", action="append", metavar="NAME=VALUE",
                        help="a hyperparameter (repeatable); default for an experiment file: a small "
                             "configuration of its search space")
    parser.add_argument("--epochs", type=int, default=2, metavar="E",
                        help="epochs of the W=1 run (default 2)")
    parser.add_argument("--world-size", type=int, default=2, metavar="W",
                        help="the world size compared with W=1 (default 2)")
    parser.add_argument("--global-batch", type=int, metavar="N",
                        help="samples per optimizer step (default: the experiment's, or 32 for a script)")
    parser.add_argument("--micro-batch-max", type=int, metavar="N",
                        help="the most samples one worker puts through the model at once (default: the "
                             "experiment's, or the global batch)")
    parser.add_argument("--seed", type=int, metavar="N",
                        help="the trial's seed (default: the experiment's, or 0)")
    parser.add_argument("--metric", metavar="NAME",
                        help="the metric every report carries (default: the experiment's, or val_accuracy)")
    parser.add_argument("--timeout", type=float, default=600.0, metavar="S",
                        help="the longest one launch may run, seconds (default 600)")
    parser.add_argument("--work-dir", metavar="DIR", help="keep the launches' trial folders and records here "
                                                          "(a new or empty folder; default: a temporary one)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")


def _split_remainder(args: argparse.Namespace) -> argparse.Namespace:
    """argparse hands everything after ``SCRIPT_OR_CONFIG`` to ``script_args`` (it drops a
    ``--`` that comes first). When that starts with a flag of ``seer verify``, the flags up to a
    ``--`` are parsed here as its own and what follows the ``--`` is the script's; otherwise all
    of it is the script's."""
    options = argparse.ArgumentParser(prog="seer verify SCRIPT_OR_CONFIG", add_help=False)
    add_verify_arguments(options, positionals=False)
    ours = {flag for action in options._actions for flag in action.option_strings}
    rest = list(args.script_args or ())
    if not rest or rest[0].split("=", 1)[0] not in ours:
        args.script_args = rest[1:] if rest[:1] == ["--"] else rest
        return args
    cut = rest.index("--") if "--" in rest else len(rest)
    flags, args.script_args = rest[:cut], rest[cut + 1:]
    return options.parse_args(flags, namespace=args)


def cmd_verify(args: argparse.Namespace) -> int:
    """``seer verify``: build the verification, run it, print the table (or ``--json``).
    Returns 0 when no check failed, else 1.

    Raises:
        ConfigError: bad input (a missing file, a ``--config`` that is not ``NAME=VALUE``, an
            ``--epochs`` or ``--world-size`` out of range, a ``W`` that cannot split the global
            batch).
        DatasetNotFoundError: the experiment's CIFAR-10 folder lacks a file or fails its
            integrity check (found before anything is launched).
        WorkerError: the script fails at ``W = 1`` (its stderr's tail in the message).
    """
    from seer_torch.verify import run_verify, setup_from_experiment

    args = _split_remainder(args)
    exp, bare = _experiment(args)
    if exp.trial.script is None and exp.data.dataset == "cifar10":
        from seer_torch.data import check_cifar10_integrity

        check_cifar10_integrity(exp.data.data_dir)  # before a launch, as seer tune checks it
    overrides = dict(_parse_override(text) for text in args.config_values or ())
    setup = setup_from_experiment(exp, overrides=overrides, epochs=args.epochs, world_size=args.world_size,
                                  timeout_s=args.timeout, any_override=bare)
    work_dir = _work_dir(args.work_dir)
    quiet = args.json

    def progress(line: str) -> None:
        if not quiet:
            print(f"seer verify: {line}", file=sys.stderr, flush=True)

    stop_on_signals()
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="seer-verify-") as tmp:
            report = run_verify(setup, Path(tmp), on_launch=progress)
    else:
        report = run_verify(setup, work_dir, on_launch=progress)
    if args.json:
        print(json.dumps(_as_json(report), indent=2))
    else:
        _print_report(report, work_dir)
    return 0 if report.passed else 1


def _experiment(args: argparse.Namespace) -> tuple[Experiment, bool]:
    """The experiment to verify and whether it is a bare script's (built from the flags)."""
    target = Path(args.target).expanduser()
    if not target.is_file():
        raise ConfigError("SCRIPT_OR_CONFIG", args.target,
                          "an existing training script (.py) or experiment file (.toml)")
    script_args = list(args.script_args or ())
    if target.suffix == ".toml":
        if script_args:
            raise ConfigError("SCRIPT_ARGS", script_args, "only with a script: an experiment file's script "
                                                          "gets its [trial] args")
        exp = load_experiment(target)
        training = exp.training
        if args.global_batch is not None:
            training = dataclasses.replace(training, global_batch=args.global_batch,
                                           micro_batch_max=min(training.micro_batch_max, args.global_batch))
        if args.micro_batch_max is not None:
            training = dataclasses.replace(training, micro_batch_max=args.micro_batch_max)
        exp = dataclasses.replace(exp, training=training, seed=exp.seed if args.seed is None else args.seed,
                                  metric=args.metric or exp.metric)
        return exp, False
    space = dict(map(_parse_override, args.config_values or ()))
    if not space:
        raise ConfigError("--config", None, "the hyperparameters your script reads from t.config, as "
                                            "--config NAME=VALUE (at least one; or verify an experiment "
                                            "file)")
    global_batch = DEFAULT_SCRIPT_GLOBAL_BATCH if args.global_batch is None else args.global_batch
    raw: dict[str, Any] = {
        "name": "verify", "seed": 0 if args.seed is None else args.seed,
        "trial": {"script": str(target.resolve()), "args": script_args},
        "training": {"global_batch": global_batch, "micro_batch_max": args.micro_batch_max or global_batch},
        "resources": {"world_size_ladder": [1]},
        "search_space": space,
    }
    if args.metric:
        raw["metric"] = args.metric
    return parse_experiment(raw, source=""), True


def _parse_override(text: str) -> tuple[str, Any]:
    """``NAME=VALUE``: the value read as JSON (``3e-4``, ``64``, ``true``, ``"adam"``), else
    taken as the string given.

    Raises:
        ConfigError: no ``=``, or an empty name.
    """
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ConfigError("--config", text, "NAME=VALUE, such as lr=3e-4 or width=64")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return name.strip(), parsed


def _work_dir(path: str | None) -> Path | None:
    """``--work-dir``: a new or empty folder (kept after the run), or ``None`` (a temporary one).

    Raises:
        ConfigError: a file, or a folder that holds files.
    """
    if path is None:
        return None
    folder = Path(path).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError("--work-dir", path, "a new or empty folder (the launches' trial folders go there)")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _as_json(report: Any) -> dict[str, Any]:
    from seer_torch.verify_checks import CAUSES

    return {
        "passed": report.passed,
        "checks": [dataclasses.asdict(c) for c in report.checks],
        "causes": [{"cause": c, "meaning": CAUSES.get(c, "")} for c in report.causes],
        "launches": [dataclasses.asdict(lr) for lr in report.launches],
        "configuration": dict(report.setup.configuration),
        "global_batch": report.setup.global_batch,
        "world_size": report.setup.world_size,
        "epochs": report.setup.epochs,
        "seconds": report.seconds,
    }


def _print_report(report: Any, work_dir: Path | None) -> None:
    from rich.table import Table

    from seer_torch.verify_checks import CAUSES

    setup = report.setup
    what = f"script {setup.script.name}" if setup.script is not None else "the built-in worker"
    console = text_console()
    config = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in setup.configuration.items())
    table = Table(title=f"seer verify: {what} ({config}), global batch {setup.global_batch}: "
                        f"W=1 against W={setup.world_size}, {setup.epochs} epochs")
    for col in ("check", "result", "detail", "likely cause"):
        table.add_column(col)
    marks = {"pass": "pass", "fail": "FAIL", "skip": "not judged"}
    for c in report.checks:
        table.add_row(c.name, marks.get(c.status, c.status), c.detail, c.cause or "")
    print_table(console, table)
    seconds = ", ".join(f"{lr.name} W={lr.world_size} {lr.seconds:.1f} s" for lr in report.launches)
    console.print(f"launches: {seconds}; {report.seconds:.1f} s in all", markup=False)
    if work_dir is not None:
        console.print(f"trial folders and records kept in {work_dir}", markup=False)
    if report.passed:
        console.print(f"verdict: the curve ignores W (W=1 against W={setup.world_size}): no check failed",
                      markup=False)
        return
    console.print("verdict: the curve depends on W; likely cause" + ("s:" if len(report.causes) > 1 else ":"),
                  markup=False)
    for cause in report.causes:
        console.print(f"  {cause}: {CAUSES.get(cause, '')}", markup=False)
