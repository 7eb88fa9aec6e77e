"""``seer report RUN_DIR`` and ``seer export RUN_DIR``: a finished (or stopped, or killed) run
seen, not read.

``seer report`` writes ``RUN_DIR/report.html`` (``--out FILE`` elsewhere): one self-contained
page with the allocation chart, the budget burn-down, the rounds planned against measured, the
slot-seconds split, the learning curves, the search space, the answer and why the run ended
(:mod:`seer_torch.report`); ``--png`` also writes each figure as ``report_figures/NAME.png``
beside the page. ``seer export`` writes ``RUN_DIR/trials.csv`` (``--out FILE`` elsewhere): one
row per trial (:func:`seer_torch.report_data.csv_rows`).

Exit codes: 0 written (a partial report too: what is missing is said on stderr and in the
page), 1 nothing could be drawn or exported (neither ``results.json`` nor the journal
``state.json`` is readable; or no trial), 2 bad input: not a run directory, or a run that a live
seer process is still using (its lock ``seer.lock`` is held: a run in progress). Neither command
takes the run's lock or writes anything but its output.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from seer_torch.commands.common import output_file
from seer_torch.run_lock import check_not_in_use


def _run_files(run_dir_arg: str):
    """The run's parsed files, after the checks both commands make.

    Raises:
        RunDirInUse: a live process holds the run's lock (a run in progress).
        ConfigError: not a run directory.
    """
    from seer_torch.report_data import read_run_files

    run_dir = Path(run_dir_arg).expanduser()
    if run_dir.is_dir():
        check_not_in_use(run_dir, field="RUN_DIR")  # a run in progress: said first, whatever it holds yet
    return read_run_files(run_dir)  # raises ConfigError when it is no run directory


def _say_missing(what: list[str], run_dir: Path) -> None:
    for line in what:
        print(f"seer: {run_dir}: {line}", file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> int:
    """``seer report RUN_DIR [--out FILE] [--png]``. Returns the exit status (module docstring).

    Raises:
        RunDirInUse: a live process holds ``RUN_DIR``.
        ConfigError: ``RUN_DIR`` is not a run directory, or ``--out`` is not a writable file path.
    """
    from seer_torch.report import write_report
    from seer_torch.report_data import report_data

    files = _run_files(args.run_dir)
    out = output_file(args.out) if args.out else files.run_dir / "report.html"
    data = report_data(files)
    if data is None:
        _say_missing(files.missing, files.run_dir)
        print(f"seer: {files.run_dir}: nothing to draw: neither results.json nor state.json can be read",
              file=sys.stderr)
        return 1
    _say_missing(data.view.missing, files.run_dir)
    png_dir = out.parent / "report_figures" if args.png else None
    drawn = write_report(data, out, png_dir=png_dir)
    if not drawn:
        print(f"seer: {files.run_dir}: nothing to draw: the run has no trials, rounds or spend yet",
              file=sys.stderr)
        return 1
    partial = " (partial: see above)" if data.view.partial else ""
    print(f"report: {out}{partial}")
    if png_dir is not None:
        print(f"figures: {png_dir}/{{{','.join(drawn)}}}.png")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``seer export RUN_DIR [--out FILE]``: ``trials.csv``. Returns the exit status (module
    docstring).

    Raises:
        RunDirInUse: a live process holds ``RUN_DIR``.
        ConfigError: ``RUN_DIR`` is not a run directory, or ``--out`` is not a writable file path.
    """
    from seer_torch.report_data import csv_rows, run_view
    from seer_torch.runfiles import atomic_write_text

    files = _run_files(args.run_dir)
    out = output_file(args.out) if args.out else files.run_dir / "trials.csv"
    view = run_view(files)
    if view is None or not view.results.get("trials"):
        _say_missing(files.missing, files.run_dir)
        print(f"seer: {files.run_dir}: no trials to export", file=sys.stderr)
        return 1
    _say_missing(view.missing, files.run_dir)
    rows = csv_rows(view.results, {tid: str(path) for tid, (path, _) in files.checkpoints.items()})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out, buf.getvalue())
    print(f"trials: {out} ({len(rows)} rows)")
    return 0
