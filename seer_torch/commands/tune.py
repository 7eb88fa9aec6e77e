"""``seer tune`` (a new run) and ``seer resume`` (a run continued from its journal)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from seer_torch.commands.checks import check_before_launch
from seer_torch.commands.common import (
    check_new_run_dir,
    check_run_dir_to_resume,
    experiment_from_args,
    interrupted_message,
    make_backend,
    stop_on_signals,
)
from seer_torch.commands.status import LiveStatus, print_summary
from seer_torch.errors import ConfigError
from seer_torch.run_lock import lock_run_dir


def cmd_tune(args: argparse.Namespace) -> int:
    """``seer tune``: check everything, make and lock the run directory, run the tuner with a
    live status, print the summary. Returns the exit status (0 with an answer, 1 without, 130
    when interrupted).

    Raises:
        ConfigError: bad input; nothing is written then.
    """
    exp = experiment_from_args(args)
    from seer_torch.executor import Tuner
    from seer_torch.policies.registry import make_policy

    check_before_launch(exp)

    run_dir = (Path(args.run_dir) if args.run_dir
               else Path("runs") / f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    # Everything is validated before the run directory is created: bad input leaves no files.
    if exp.planner.profile is not None:
        from seer_torch.scaling.profile import load_profile

        load_profile(exp.planner.profile)
    check_new_run_dir(run_dir)
    # One seer process per run directory, for as long as it runs (made here if new; a folder
    # that cannot be made or written is bad input too).
    with lock_run_dir(run_dir, create=True):
        check_new_run_dir(run_dir, locked=True)  # nothing came in between
        status = LiveStatus(quiet=args.quiet)
        tuner = Tuner(exp, run_dir, make_backend(exp), policy=make_policy("seer"), on_event=status.event)
        stop_on_signals()
        try:
            with status:
                results = tuner.run()
        except KeyboardInterrupt:
            print(interrupted_message(run_dir), file=sys.stderr)
            return 130
    print_summary(results, run_dir)
    return 0 if results["best"] is not None else 1


def cmd_resume(args: argparse.Namespace) -> int:
    """``seer resume RUN_DIR``: see :meth:`seer_torch.executor.Tuner.resume` (survivors go on
    from their checkpoints, eliminated trials stay eliminated, spend and time are restored, and
    the time the tuner was down counts against the deadline). Exit status as :func:`cmd_tune`.

    Raises:
        RunDirInUse: another live process holds ``RUN_DIR``.
        ConfigError: ``RUN_DIR`` is not a run directory, or ``--slots`` is below 1.
    """
    from seer_torch.config import load_experiment
    from seer_torch.executor import Tuner
    from seer_torch.policies.registry import make_policy

    run_dir = Path(args.run_dir)
    check_run_dir_to_resume(run_dir)
    if args.slots is not None and args.slots < 1:
        raise ConfigError("--slots", args.slots, "an integer >= 1")
    # Before the journal is read or a leftover job stopped: a tuner still alive keeps its run.
    with lock_run_dir(run_dir, field="RUN_DIR"):
        exp = load_experiment(run_dir / "experiment.toml")
        slots = exp.resources.num_slots if args.slots is None else args.slots
        status = LiveStatus(quiet=args.quiet)
        tuner = Tuner.resume(run_dir, make_backend(exp, num_slots=slots), make_policy=make_policy,
                             on_event=status.event)
        stop_on_signals()
        try:
            with status:
                results = tuner.run(resume=True)
        except KeyboardInterrupt:
            print(interrupted_message(run_dir, again=True), file=sys.stderr)
            return 130
    print_summary(results, run_dir)
    return 0 if results["best"] is not None else 1
