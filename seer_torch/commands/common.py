"""Helpers shared by the ``seer`` commands: the experiment with its command-line overrides,
``--out``, ``--run-dir`` and ``RUN_DIR`` checks, the shipped profile, the backend the commands
run jobs on (:func:`make_backend`), tables printed whole (:func:`print_table`), the message of
an interrupted run, and signals that end a command like Ctrl-C."""

from __future__ import annotations

import argparse
import errno
import os
import shlex
import signal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seer_torch.config import Experiment, load_experiment
from seer_torch.errors import ConfigError
from seer_torch.run_lock import LOCK_FILE, check_not_in_use

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from seer_torch.backends.base import Backend


def what_trains(exp: Experiment) -> str:
    """What the experiment's jobs train, for headers: ``"MODEL on DATASET"`` (the built-in
    worker) or ``"script NAME"`` (a ``[trial] script``)."""
    if exp.trial.script is not None:
        return f"script {Path(exp.trial.script).name}"
    return f"{exp.model.name} on {exp.data.dataset}"


def shipped_profile_path(exp: Experiment) -> Path | None:
    """A profile shipped with the package for this model and dataset, if there is one (never
    for a ``[trial] script``: its model is the user's)."""
    if exp.trial.script is not None:
        return None
    p = resources.files("seer_torch") / "profiles" / f"{exp.model.name}_{exp.data.dataset}_cpu.json"
    return Path(str(p)) if p.is_file() else None


def experiment_from_args(args: argparse.Namespace) -> Experiment:
    """The experiment of ``args.config`` (the embedded default when ``None``) with the budget,
    slot and profile flags of ``seer plan`` and ``seer tune`` applied.

    Raises:
        ConfigError: as :func:`seer_torch.config.load_experiment` and
            :meth:`~seer_torch.config.Experiment.with_overrides`.
    """
    time_budget_s = absolute_budget("--time-budget", args.time_budget)
    money_budget_usd = absolute_budget("--money-budget", args.money_budget)
    exp = load_experiment(args.config)
    return exp.with_overrides(
        time_budget_s=time_budget_s, money_budget_usd=money_budget_usd, num_slots=args.slots,
        profile=args.profile,
    )


def absolute_budget(flag: str, text: str | float | None) -> float | None:
    """``--time-budget`` or ``--money-budget`` of ``seer tune`` and ``seer plan``: a number
    (``None`` when not given). ``+X`` adds ``X`` to a run's budget, which only ``seer resume``
    has: here it is refused, never read as ``X``. The range (above 0) is checked where the
    budget is set (:meth:`~seer_torch.config.Experiment.with_overrides`), naming the field.

    Raises:
        ConfigError: naming the flag, the value and what is allowed.
    """
    if text is None:
        return None
    words, x = ("seconds", "S") if flag == "--time-budget" else ("US dollars", "USD")
    given = str(text).strip()
    if given.startswith("+"):
        raise ConfigError(flag, text, f"a number of {words} > 0, the budget of the whole run (+{x} adds "
                                      f"{x} to a run's budget: that is for `seer resume RUN_DIR {flag} "
                                      f"+{x}`)")
    try:
        return float(given)
    except ValueError:
        raise ConfigError(flag, text, f"a number of {words} > 0") from None


def machine_cores() -> int:
    """This machine's CPU cores (``os.cpu_count()``, the default of ``resources.num_slots``)."""
    return os.cpu_count() or 1


def shared_cores_warning(exp: Experiment) -> str | None:
    """The warning line for a local run with more slots than this machine has cores (``None``
    otherwise, and always on Ray, whose slots are the cluster's): each slot is a CPU process,
    so the jobs share cores."""
    cores, slots = machine_cores(), exp.resources.num_slots
    if exp.resources.backend != "local" or slots <= cores:
        return None
    return (f"seer: warning: {slots} slots on {cores} cores: the jobs share cores, so epochs run slower and "
            f"the scaling profile is measured on shared cores (--slots {cores} gives each worker a core)")


def output_file(path: str) -> Path:
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
        raise ConfigError("--out", str(out),
                          f"a file in a folder you can write ({out.parent} is not writable)")
    return out


def check_new_run_dir(run_dir: Path, *, locked: bool = False) -> None:
    """``--run-dir`` of ``seer tune``: a new folder, or an empty one (its lock file aside).

    Args:
        run_dir: the folder.
        locked: this process holds its lock already (:func:`seer_torch.run_lock.lock_run_dir`);
            otherwise a folder that holds files is first checked for a live holder, whose
            refusal is the one that counts (``seer resume`` is refused while it lives).

    Raises:
        RunDirInUse: not ``locked``, the folder holds files and another live process holds it.
        ConfigError: a file, or a folder that holds files.
    """
    if run_dir.exists() and (not run_dir.is_dir() or any(p.name != LOCK_FILE for p in run_dir.iterdir())):
        if not locked:
            check_not_in_use(run_dir)
        held = "is a file or holds files"
        if (run_dir / "experiment.toml").is_file():
            held = "holds a run: continue it with `seer resume " + str(run_dir) + "`"
            try:
                from seer_torch.executor.journal import read_journal

                if read_journal(run_dir).get("status") == "finished":
                    held = "holds a run that finished: its answer is in results.json"
            except ConfigError:  # no readable journal: resume says what it lacks
                pass
        raise ConfigError("--run-dir", str(run_dir), f"a new or empty directory (this one {held})")


def check_run_dir_to_resume(run_dir: Path) -> None:
    """``RUN_DIR`` of ``seer resume``: an existing folder that ``seer tune`` made (it holds
    ``experiment.toml``). Takes no lock (the command takes it next).

    Raises:
        RunDirInUse: a live process holds the folder (a ``seer tune`` that has not written its
            ``experiment.toml`` yet, for one).
        ConfigError: nothing at the path, a file, or a folder without ``experiment.toml``.
    """
    allowed = "a run directory made by `seer tune`"
    if not run_dir.exists():
        raise ConfigError("RUN_DIR", str(run_dir), f"{allowed} (nothing exists at this path)")
    if not run_dir.is_dir():
        raise ConfigError("RUN_DIR", str(run_dir), f"{allowed} (this is a file, not a directory)")
    if not (run_dir / "experiment.toml").is_file():
        check_not_in_use(run_dir, field="RUN_DIR")
        raise ConfigError("RUN_DIR", str(run_dir), f"{allowed} (it has no experiment.toml)")


def interrupted_message(run_dir: Path, *, again: bool = False, since_unix_s: float | None = None) -> str:
    """What ``seer tune`` and ``seer resume`` say when interrupted: where what was completed
    is, and how to continue (``again``: the run was a resume already). ``results.json`` is
    named only when it was written by this command (modified at or after ``since_unix_s``, its
    start): a second interrupt can cut the first one's writing short, and then the journal
    (``state.json``), which ``seer resume`` reads, holds what was completed."""
    results = run_dir / "results.json"
    resume = f"resume{' again' if again else ''} with `seer resume {shlex.quote(str(run_dir))}`"
    try:
        written = since_unix_s is None or results.stat().st_mtime >= since_unix_s - 1.0
    except OSError:
        written = False
    if written:
        return f"seer: interrupted; what was completed is in {results}; {resume}"
    return (f"seer: interrupted before results.json was written (a second interrupt cuts the writing "
            f"short); what was completed is in the run's journal, {run_dir / 'state.json'}; {resume}")


def make_backend(exp: Experiment, *, num_slots: int | None = None) -> Backend:
    """The backend every command runs its jobs on: the one place a backend is chosen and
    built: :class:`seer_torch.backends.local.LocalBackend` (torchrun on this machine), or with
    ``[resources] backend = "ray"`` :class:`seer_torch.backends.ray_backend.RayBackend` (a Ray
    cluster, joined at ``resources.address``; docs/ray.md).

    Args:
        exp: the experiment the jobs belong to.
        num_slots: worker slots (default ``exp.resources.num_slots``): ``seer resume --slots``
            and ``seer profile`` (its largest probe) pass their own.

    Every job gets the experiment's ``python_path`` first on its ``PYTHONPATH`` (where a
    plug-in model or dataset module is imported from).
    """
    from seer_torch.backends.local import LocalBackend  # looked up at each call: tests replace it

    slots = exp.resources.num_slots if num_slots is None else num_slots
    # Keywords only when they differ from the defaults: LocalBackend(slots) stays the call of
    # every other run.
    kwargs: dict = {}
    if exp.python_path:
        kwargs["python_path"] = exp.python_path
    if not exp.resources.keep_alive:
        kwargs["keep_alive"] = False
    if exp.resources.backend == "ray":
        from seer_torch.backends.ray_backend import RayBackend  # imports Ray: only when asked for

        return RayBackend(slots, address=exp.resources.address, **kwargs)
    return LocalBackend(slots, **kwargs)


def _console(**kw: Any) -> Console:
    """A rich console whose closed pipe (``seer plan | head -1``) raises ``BrokenPipeError``
    for :func:`seer_torch.cli.main` to end with 141, as every command does; rich itself would
    exit 1 there (``Console.on_broken_pipe``, its documented hook), which is ``NO PLAN``."""
    from rich.console import Console

    class _PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError(errno.EPIPE, "the reader of the output went away")

    return _PipeConsole(**kw)


def text_console() -> Console:
    """A console for a command's report: on a terminal rich wraps long lines at its width; in
    a pipe or a file each line is written whole (rich would cut it at 80 columns)."""
    console = _console()
    console.soft_wrap = not console.is_terminal
    return console


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` with every cell and header whole, never cut with "…": each column
    folds what does not fit onto more lines. On a terminal rich fits the table to the
    terminal's width; elsewhere (a pipe, a file) rich would fit it to 80 columns, so it is
    printed at its natural width instead, one line per row.
    """
    from rich.measure import Measurement

    for column in table.columns:
        column.overflow = "fold"
    if console.is_terminal:
        console.print(table)
        return
    natural = Measurement.get(console, console.options.update_width(_WIDEST_TABLE), table).maximum
    _console(file=console.file, width=max(natural, console.width)).print(table)


_WIDEST_TABLE = 10_000  # columns: a bound for measuring a table's natural width


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP (a scheduler, `timeout`, a closed terminal) end the command like
    Ctrl-C: running jobs are stopped and billed, and what was completed is written. A signal
    ignored when seer started stays ignored, as Python does for SIGINT: under ``nohup`` a
    closed terminal does not stop the run."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, _interrupt)
