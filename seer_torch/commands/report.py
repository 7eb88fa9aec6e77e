"""``seer report RUN_DIR`` and ``seer export RUN_DIR``: a finished (or stopped, or killed) run
seen, not read; ``seer report SIMULATION.json``: policies compared by ``seer simulate``, seen.

``seer report`` writes ``RUN_DIR/report.html`` (``--out FILE`` elsewhere): one self-contained
page with the allocation chart, the budget burn-down, the rounds planned against measured, the
slot-seconds split, the learning curves, the search space, the answer and why the run ended
(:mod:`seer_torch.report`); ``--png`` also writes each figure as ``report_figures/NAME.png``
beside the page. Given the JSON of ``seer simulate --json`` instead (a file, not a folder), it
writes ``SIMULATION.html`` beside it (``--out FILE`` elsewhere; ``--png`` as for a run): each
policy's metric, time and money used and configurations tried against the budget, one line per
policy, and the numbers (:mod:`seer_torch.report_simulation`). ``seer export`` writes
``RUN_DIR/trials.csv`` (``--out FILE`` elsewhere): one row per trial
(:func:`seer_torch.report_data.csv_rows`).

Exit codes: 0 written (a partial report too: what is missing is said on stderr and in the
page), 1 nothing could be drawn or exported (neither ``results.json`` nor the journal
``state.json`` is readable; or no trial), 2 bad input: neither a run directory nor a ``seer
simulate`` JSON (a file that is not JSON, a truncated one, or JSON of another shape: the
message names the file, or the field in it, and what is expected), or a run that a live
seer process is still using (its lock ``seer.lock`` is held: a run in progress; that run
keeps its own ``report.html`` fresh, :mod:`seer_torch.report_live`). Neither command takes the
run's lock or writes anything but its output.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

from seer_torch.commands.common import output_file
from seer_torch.errors import ConfigError
from seer_torch.run_lock import RunDirInUse, check_not_in_use


def _run_files(run_dir_arg: str, *, page_hint: bool = False):
    """The run's parsed files, after the checks both commands make; ``page_hint``: a run in
    progress is told where the page its tuner keeps is.

    Raises:
        RunDirInUse: a live process holds the run's lock (a run in progress).
        ConfigError: not a run directory.
    """
    from seer_torch.report_data import read_run_files
    from seer_torch.report_live import REPORT_FILE

    run_dir = Path(run_dir_arg).expanduser()
    if run_dir.is_dir():
        try:
            check_not_in_use(run_dir, field="RUN_DIR")  # a run in progress: said first, whatever it holds yet
        except RunDirInUse as e:
            if not page_hint:
                raise
            page = run_dir / REPORT_FILE
            raise RunDirInUse(e.field, e.value, f"{e.allowed}; meanwhile open {page}: the run redraws it "
                                                "after each round, unless --no-report") from None
    return read_run_files(run_dir)  # raises ConfigError when it is no run directory


def _say_missing(what: list[str], run_dir: Path) -> None:
    for line in what:
        print(f"seer: {run_dir}: {line}", file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> int:
    """``seer report RUN_DIR|SIMULATION.json [--out FILE] [--png]``. Returns the exit status
    (module docstring).

    Raises:
        RunDirInUse: a live process holds ``RUN_DIR``.
        ConfigError: ``RUN_DIR`` is neither a run directory nor a ``seer simulate --json`` file,
            or ``--out`` is not a writable file path.
    """
    from seer_torch.report import write_report
    from seer_torch.report_data import report_data

    path = Path(args.run_dir).expanduser()
    if path.is_file():
        return _report_simulation(path, args)
    if not path.exists():
        from seer_torch.report_simulation import EXPECTED

        raise ConfigError("RUN_DIR", str(path), f"{EXPECTED}; nothing exists at this path")
    files = _run_files(args.run_dir, page_hint=True)
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


def _report_simulation(path: Path, args: argparse.Namespace) -> int:
    """``seer report SIMULATION.json``: the page beside the file (``SIMULATION.html``) or at
    ``--out``. Returns 0.

    Raises:
        ConfigError: the file is not what ``seer simulate --json`` prints, or the page's path is
            not a writable file path.
    """
    from seer_torch.report_simulation import read_simulation, write_simulation_report

    sim = read_simulation(path)  # checked before anything is written
    if args.out:
        out = output_file(args.out)
    else:
        beside = path.with_suffix(".html")
        out = output_file(str(beside if beside != path else path.with_name(path.name + ".html")))
    png_dir = out.parent / "report_figures" if args.png else None
    drawn = write_simulation_report(sim, out, png_dir=png_dir)
    print(f"report: {out} ({len(sim.policies)} policies, "
          f"{len({(p.time_budget_s, p.money_budget_usd) for p in sim.points})} budget(s))")
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
