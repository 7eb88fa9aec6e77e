"""``seer bench record``: a learning-curve table recorded through the real worker."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from seer_torch.commands.checks import check_before_launch
from seer_torch.commands.common import make_backend, output_file, stop_on_signals
from seer_torch.config import load_experiment
from seer_torch.errors import ConfigError
from seer_torch.run_lock import lock_run_dir


def cmd_bench_record(args: argparse.Namespace) -> int:
    """Record a learning-curve table through the real worker (see :mod:`seer_torch.recording`):
    N configurations, each one torchrun job at W=1 to E epochs, S jobs at a time. Resumable:
    run it again with the same --run-dir and the completed trials are kept. Returns the exit
    status (0; 130 when interrupted).

    Raises:
        ConfigError: bad input (a count below 1, ``--out``, ``--run-dir``, the experiment); a
            ``[trial] script`` experiment (it records the built-in worker only).
    """
    import statistics

    from seer_torch.recording import record_table

    counts = (("--configurations", args.configurations), ("--epochs", args.epochs), ("--slots", args.slots))
    for flag, value in counts:
        if value is not None and value < 1:
            raise ConfigError(flag, value, "an integer >= 1")
    out = output_file(args.out)
    exp = load_experiment(args.config).with_overrides(num_slots=args.slots)
    if exp.trial.script is not None:
        raise ConfigError("trial.script", exp.trial.script,
                          "no script: seer bench record records the built-in worker only for now")
    run_dir = (Path(args.run_dir) if args.run_dir
               else Path("runs") / f"record-{exp.name}-{args.configurations}x{args.epochs}")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError("--run-dir", str(run_dir), "a folder (this is a file)")
    check_before_launch(exp)
    t0 = time.monotonic()
    with lock_run_dir(run_dir, create=True):  # one recording per folder at a time
        stop_on_signals()
        try:
            table = record_table(
                exp, make_backend(exp), num_configurations=args.configurations,
                epochs=args.epochs, run_dir=run_dir, out=out,
                on_event=lambda msg: print(f"[{time.monotonic() - t0:7.1f}s] {msg}", flush=True),
            )
        except KeyboardInterrupt:
            print(f"seer: interrupted; completed trials are kept in {run_dir}: "
                  "run the same command to resume", file=sys.stderr)
            return 130
    finals = sorted(v for c in table.configs if (v := c.val[-1]) == v)
    if not finals:
        print(f"wrote {out}: {len(table)} configurations x {table.max_epochs} epochs; every one diverged")
        return 0
    best = table.best_index()
    print(
        f"wrote {out}: {len(table)} configurations x {table.max_epochs} epochs, "
        f"epoch {table.epoch_time_s:.2f} s at W=1 (median); "
        f"best {table.configs[best].id} val {table.val_at(best, table.max_epochs):.4f}; final val "
        f"min {finals[0]:.4f} median {statistics.median(finals):.4f} max {finals[-1]:.4f}; "
        f"{len(table) - len(finals)} diverged"
    )
    return 0
