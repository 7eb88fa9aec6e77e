"""``seer tune`` (a new run) and ``seer resume`` (a run continued from its journal).

Their bodies, :func:`tune_run` and :func:`resume_run`, are also the Python entry point's
(:func:`seer_torch.api.tune`, :func:`seer_torch.api.resume`): the commands add the live status
on the terminal, the signals and the exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seer_torch.commands.checks import check_before_launch
from seer_torch.commands.common import (
    check_new_run_dir,
    check_run_dir_to_resume,
    experiment_from_args,
    interrupted_message,
    make_backend,
    shared_cores_warning,
    stop_on_signals,
)
from seer_torch.commands.status import LiveStatus, print_summary
from seer_torch.config import Experiment
from seer_torch.errors import ConfigError
from seer_torch.run_lock import lock_run_dir

if TYPE_CHECKING:
    from seer_torch.backends.base import Backend
    from seer_torch.clock import Clock
    from seer_torch.executor import Tuner
    from seer_torch.report_live import LiveReport
    from seer_torch.scaling.profile import Profile

#: ``on_event(message, status)``: what happened, with :meth:`seer_torch.executor.Tuner.status`.
EventHook = Callable[[str, dict[str, Any]], None]


def default_run_dir(exp: Experiment) -> Path:
    """``runs/NAME-YYYYmmdd-HHMMSS`` under the working directory: where a run goes without
    ``--run-dir``."""
    return Path("runs") / f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}"


def tune_run(
    exp: Experiment,
    run_dir: Path,
    *,
    policy: str = "seer",
    backend: Backend | None = None,
    clock: Clock | None = None,
    profile: Profile | None = None,
    on_event: EventHook | None = None,
    live: contextlib.AbstractContextManager[Any] | None = None,
    on_start: Callable[[], None] | None = None,
    report: bool = True,
) -> dict[str, Any]:
    """A new run of ``exp`` in ``run_dir``, the body of ``seer tune``: check everything (as
    :func:`~seer_torch.commands.checks.check_before_launch`, the policy's name, a given profile
    file), make and lock the run directory, run the tuner; when the run has finished, write
    its report to TensorBoard (:func:`report_to_tensorboard`).

    Args:
        exp: the validated experiment (overrides applied).
        run_dir: the run's folder: new, or empty.
        policy: a name from :data:`seer_torch.policies.registry.POLICY_NAMES`.
        backend: where the jobs run (default :func:`~seer_torch.commands.common.make_backend`,
            made once the directory is locked).
        clock: the clock of the run (default: the wall clock; a simulated backend's own).
        profile: a scaling profile to plan with instead of the experiment's file or measuring.
        on_event: called at each event (the live status).
        live: entered around the run (the live status's panel).
        on_start: called once the directory is locked, just before the run (the CLI installs
            its signal handlers there).
        report: keep ``run_dir/report.html`` fresh: redrawn after each completed round and
            once more at the end (:mod:`seer_torch.report_live`; ``seer tune --no-report``
            turns it off).

    Returns:
        The ``results.json`` content (also written to ``run_dir``).

    Raises:
        ConfigError: bad input; nothing is written then.
        RunDirInUse: another live process holds ``run_dir``.
        KeyboardInterrupt: interrupted; ``results.json`` holds what was completed.
    """
    from seer_torch.executor import Tuner
    from seer_torch.policies.registry import make_policy

    check_before_launch(exp)
    policy_object = make_policy(policy)
    # Everything is validated before the run directory is created: bad input leaves no files.
    if exp.planner.profile is not None and profile is None:
        from seer_torch.scaling.profile import load_profile

        load_profile(exp.planner.profile)
    check_new_run_dir(run_dir)
    # One seer process per run directory, for as long as it runs (made here if new; a folder
    # that cannot be made or written is bad input too).
    with lock_run_dir(run_dir, create=True):
        check_new_run_dir(run_dir, locked=True)  # nothing came in between
        page = _live_report(run_dir) if report else None
        tuner = Tuner(exp, run_dir, backend if backend is not None else make_backend(exp),
                      policy=policy_object, clock=clock, profile=profile, on_event=on_event,
                      on_round=page.round_completed if page is not None else None)
        if on_start is not None:
            on_start()
        with live if live is not None else contextlib.nullcontext():
            results = _run_with_page(tuner, page, resume=False)
        report_to_tensorboard(run_dir, page)
        return results


def resume_run(
    run_dir: Path,
    *,
    num_slots: int | None = None,
    time_budget: str | float | None = None,
    money_budget: str | float | None = None,
    on_event: EventHook | None = None,
    live: contextlib.AbstractContextManager[Any] | None = None,
    on_start: Callable[[], None] | None = None,
    report: bool = True,
) -> dict[str, Any]:
    """The run journaled in ``run_dir`` continued, the body of ``seer resume``
    (:meth:`seer_torch.executor.Tuner.resume` says what resuming does). ``num_slots``: the
    slots from now on (default: the run's); ``time_budget`` / ``money_budget``: new totals for
    the whole run (seconds, USD), or ``"+X"`` to add ``X`` to the run's: with either, a run that
    ended by its budget goes on (:func:`more_budget`); the other arguments as :func:`tune_run`
    (``report``: ``seer resume --no-report`` turns it off). When the run has finished, its
    report goes to TensorBoard (:func:`report_to_tensorboard`).

    Raises:
        RunDirInUse: another live process holds ``run_dir``.
        ConfigError: ``run_dir`` is not a run directory (or a finished run given no more
            budget), ``num_slots`` is below 1, or a budget is not a number above what the run
            has used.
        KeyboardInterrupt: interrupted; ``results.json`` holds what was completed.
    """
    from seer_torch.config import load_experiment
    from seer_torch.executor import Tuner
    from seer_torch.executor.journal import read_journal
    from seer_torch.policies.registry import make_policy

    check_run_dir_to_resume(run_dir)
    if num_slots is not None and num_slots < 1:
        raise ConfigError("--slots", num_slots, "an integer >= 1")
    # Before the journal is read or a leftover job stopped: a tuner still alive keeps its run.
    with lock_run_dir(run_dir, field="RUN_DIR"):
        exp = load_experiment(run_dir / "experiment.toml")
        raised = time_budget is not None or money_budget is not None
        if raised:
            exp = more_budget(exp, read_journal(run_dir), time_budget, money_budget)
        slots = exp.resources.num_slots if num_slots is None else num_slots
        page = _live_report(run_dir) if report else None
        tuner = Tuner.resume(run_dir, make_backend(exp, num_slots=slots), make_policy=make_policy,
                             on_event=on_event, experiment=exp if raised else None,
                             on_round=page.round_completed if page is not None else None)
        if on_start is not None:
            on_start()
        with live if live is not None else contextlib.nullcontext():
            results = _run_with_page(tuner, page, resume=True)
        report_to_tensorboard(run_dir, page)
        return results


def report_to_tensorboard(run_dir: Path, page: LiveReport | None = None) -> None:
    """A finished run's report in its TensorBoard, from the files it wrote
    (:func:`seer_torch.report_tensorboard.write_run_summaries`: each trial's HParams summary,
    ``seer report``'s figures under ``experiment/``), and with ``page`` (the run's live page,
    closed by now) its final ``report.html`` from the same figures, drawn once; without it (``seer
    tune --no-report``) no figures are drawn, only the HParams summaries written. Called once the
    tuner returned: the run finished (its answer, or a budget spent; an interrupted or failed
    run raised instead), its ``results.json`` and ``state.json`` are written, and nothing is
    lost if this fails: each part that cannot be written is a warning on stderr (``seer:
    TensorBoard: ...``, or the page's own), and so is an interrupt while it writes (the run is
    over: the command goes on to its summary)."""
    from seer_torch.report_tensorboard import write_run_summaries

    images: dict[str, bytes] | None = None
    try:
        if page is not None:
            images = page.draw_final()
        warnings = write_run_summaries(run_dir, figures=page is not None, images=images)
    except KeyboardInterrupt:
        warnings = [f"interrupted: the report was not all written (`seer report {run_dir}` draws it)"]
    for warning in warnings:
        print(f"seer: TensorBoard: {warning}", file=sys.stderr)


def _live_report(run_dir: Path) -> LiveReport:
    """The keeper of ``run_dir/report.html`` during the run (:mod:`seer_torch.report_live`)."""
    from seer_torch.report_live import LiveReport

    return LiveReport(run_dir)


def _run_with_page(tuner: Tuner, page: LiveReport | None, *, resume: bool) -> dict[str, Any]:
    """``tuner.run(resume=resume)``; with ``page`` (a :class:`~seer_torch.report_live.LiveReport`),
    no live page is drawn once the run is over. A run that finished gets its final page from
    :func:`report_to_tensorboard` (drawn once for the page and TensorBoard); one that ended
    otherwise (interrupted, failed) is drawn here as it ended (``results.json`` and the journal
    are written by then); not when the run refused to begin (a resume whose replay failed
    writes nothing), nor after an emulated kill (:class:`~seer_torch.executor.journal.Crash`:
    nothing more is written)."""
    from seer_torch.executor.journal import Crash

    if page is None:
        return tuner.run(resume=resume)
    crashed = finished = False
    try:
        results = tuner.run(resume=resume)
        finished = True
        return results
    except Crash:
        crashed = True
        raise
    finally:
        page.close(final=tuner.began and not crashed and not finished)


def more_budget(exp: Any, state: dict[str, Any], time_budget: str | float | None,
                money_budget: str | float | None) -> Any:
    """``exp`` with the budgets ``seer resume --time-budget/--money-budget`` give: a new total
    for the whole run, or ``"+X"`` added to the run's, each above what the journal ``state``
    says the run has used (``time_used_s``, ``cost_usd``).

    Raises:
        ConfigError: a value that is not a number (or ``+number``), or not above what was used.
    """
    def total(flag: str, given: str | float | None, current: float, used: float,
              unit: str) -> float | None:
        if given is None:
            return None
        text = str(given).strip()
        try:
            added = float(text[1:]) if text.startswith("+") else None
            value = current + added if added is not None else float(text)
            if added is not None and not added > 0:
                raise ValueError("+X adds X > 0")
        except ValueError:
            raise ConfigError(flag, given, f"a number of {unit} for the whole run, or +{unit} to "
                                           "add (above 0)") from None
        if not value > used:
            raise ConfigError(flag, given, f"more than the run has used: {used:.4g} {unit} (so far "
                                           f"{current:g}); +{unit} adds to {current:g}")
        return value

    b = exp.budget
    t = total("--time-budget", time_budget, b.time_budget_s, float(state.get("time_used_s") or 0.0), "s")
    m = total("--money-budget", money_budget, b.money_budget_usd, float(state.get("cost_usd") or 0.0), "USD")
    return exp.with_overrides(time_budget_s=t, money_budget_usd=m)


class _Started:
    """``on_start`` of the commands: SIGTERM and SIGHUP end the run like Ctrl-C from then on,
    and the command knows that the run had started when it is interrupted; ``warning``, a line
    for stderr once the run starts (not for input it then refuses)."""

    def __init__(self, warning: str | None = None) -> None:
        self.yes = False
        self.unix_s: float | None = None  # when the run started
        self.warning = warning

    def __call__(self) -> None:
        stop_on_signals()
        self.yes, self.unix_s = True, time.time()
        if self.warning:
            print(self.warning, file=sys.stderr, flush=True)


def cmd_tune(args: argparse.Namespace) -> int:
    """``seer tune``: :func:`tune_run` with a live status, then the summary. Returns the exit
    status (0 with an answer, 1 without, 130 when interrupted).

    Raises:
        ConfigError: bad input; nothing is written then.
    """
    exp = experiment_from_args(args).with_overrides(backend=args.backend, address=args.address)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(exp)
    status = LiveStatus(quiet=args.quiet)
    started = _Started(shared_cores_warning(exp))
    try:
        results = tune_run(exp, run_dir, on_event=status.event, live=status, on_start=started,
                           report=not args.no_report)
    except KeyboardInterrupt:
        if not started.yes:  # before the run: nothing to resume
            raise
        print(interrupted_message(run_dir, since_unix_s=started.unix_s), file=sys.stderr)
        return 130
    print_summary(results, run_dir, report=not args.no_report)
    return 0 if results["best"] is not None else 1


def _resume_cores_warning(run_dir: Path, num_slots: int | None) -> str | None:
    """:func:`~seer_torch.commands.common.shared_cores_warning` for ``seer resume --slots N``
    (the run's own slots were warned about when it started); ``None`` without ``--slots`` or
    when the run's experiment cannot be read (the resume then says why)."""
    if num_slots is None or num_slots < 1:
        return None
    from seer_torch.config import load_experiment

    try:
        exp = load_experiment(run_dir / "experiment.toml")
    except Exception:  # noqa: BLE001 - not a run folder: resume_run refuses it with its own words
        return None
    return shared_cores_warning(exp.with_overrides(num_slots=num_slots))


def cmd_resume(args: argparse.Namespace) -> int:
    """``seer resume RUN_DIR``: :func:`resume_run` with a live status, then the summary. Exit
    status as :func:`cmd_tune`.

    Raises:
        RunDirInUse: another live process holds ``RUN_DIR``.
        ConfigError: ``RUN_DIR`` is not a run directory, or ``--slots`` is below 1.
    """
    run_dir = Path(args.run_dir)
    status = LiveStatus(quiet=args.quiet)
    started = _Started(_resume_cores_warning(run_dir, args.slots))
    try:
        results = resume_run(run_dir, num_slots=args.slots, time_budget=args.time_budget,
                             money_budget=args.money_budget, on_event=status.event, live=status,
                             on_start=started, report=not args.no_report)
    except KeyboardInterrupt:
        if not started.yes:  # before the run: nothing changed
            raise
        print(interrupted_message(run_dir, again=True, since_unix_s=started.unix_s), file=sys.stderr)
        return 130
    print_summary(results, run_dir, report=not args.no_report)
    return 0 if results["best"] is not None else 1
