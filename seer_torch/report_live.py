"""``RUN_DIR/report.html`` while a run runs: ``seer tune`` and ``seer resume`` redraw the page
of :mod:`seer_torch.report` after each completed round (rung), so that a user can open it during
the run, and once more when the run ends.

How (:class:`LiveReport`):

- off the tuner's control loop: the loop only tells :meth:`LiveReport.round_completed` (a lock
  and a flag, no drawing, no file); one background thread draws, at most one drawing at a time.
  A round that completes while a drawing runs is drawn once after it (the newest state, not
  one drawing per round missed);
- at most one drawing every ``min_interval_s`` (:data:`MIN_INTERVAL_S`), the first no sooner
  than that after the run began, and never more than :data:`DRAW_SHARE` of one core: after a
  drawing of ``d`` seconds the next waits at least ``d / DRAW_SHARE``. A drawing costs about
  1-2 s of CPU (matplotlib), the first one about 0.7 s more (it imports matplotlib);
- from the run's files, as ``seer report`` reads them (:func:`~seer_torch.report_data.read_run_files`
  with ``live``), without the check that refuses a run whose lock is held (this process holds
  it). The tuner writes ``state.json`` atomically and appends each line of ``decisions.jsonl``
  before the journal counts it; the journal is read first and the decisions it does not count
  yet are left out, so the page is the run as its journal stood. The page says that the run is
  in progress, at which round it was drawn, and asks the browser to reload it
  (:data:`seer_torch.report.LIVE_RELOAD_S`);
- written atomically (a reader never sees half a page); temporary files of a drawing that a
  killed tuner left are removed when the next tuner of the run starts;
- never in the run's way: a drawing that fails is one line on stderr (each different failure
  once) and the run goes on; the final drawing waits for the one under way, then draws the
  page of the run as it ended (``seer report``'s page): :meth:`LiveReport.draw_final` for a
  finished run (its figures go to the run's TensorBoard too, drawn once), :meth:`LiveReport.close`
  for one interrupted or failed.

This module is the effects (a thread, the wall clock, files); what is drawn is
:mod:`seer_torch.report_data` and :mod:`seer_torch.report`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

#: The page a run keeps fresh, in its run directory (``seer report RUN_DIR`` writes the same).
REPORT_FILE = "report.html"

#: The least time between two drawings of a live page (and from the run's start to the first),
#: seconds.
MIN_INTERVAL_S = 30.0

#: The largest share of one core that drawing a live page may take: after a drawing of ``d``
#: seconds the next waits at least ``d / DRAW_SHARE`` seconds.
DRAW_SHARE = 0.1

#: ``draw(run_dir, live=...)``: draw the run's page; returns the page's path, or ``None`` when
#: there was nothing to draw yet. May raise anything: the caller warns and goes on.
DrawPage = Callable[..., "Path | None"]


def live_note(rounds_completed: int, rounds_planned: int, time_used_s: float | None, *, at: str,
              interval_s: float) -> str:
    """The banner of a live page, in words: the round it was drawn at (of the rounds planned,
    when known), the wall-clock time ``at``, the seconds since the run began, and when it is
    drawn again (``interval_s``: :data:`MIN_INTERVAL_S`, seconds)."""
    of = f" of {rounds_planned} planned" if rounds_planned >= rounds_completed and rounds_planned else ""
    into = f", {time_used_s:.0f} s into the run" if time_used_s is not None else ""
    where = f"round {rounds_completed}{of}" if rounds_completed else "before the first rung"
    return (f"Refreshed at {where} ({at}{into}). seer tune rewrites this page after each round it completes "
            f"(at most once every {interval_s:g} s) and once more when the run ends; the browser reloads it "
            "by itself.")


def draw_page(run_dir: Path, *, live: bool, interval_s: float = MIN_INTERVAL_S,
              images_out: dict[str, bytes] | None = None) -> Path | None:
    """Draw ``run_dir``'s page to ``run_dir/report.html`` (atomically) from its files, as
    ``seer report`` does but without its lock check; ``live``: the run is in progress (the
    page says so while its journal says ``running``). Returns the page's path, or ``None``
    when there is nothing to draw yet (the run wrote none of its files, or no journal and no
    results; nothing written then).

    Raises:
        OSError: the page cannot be written.
    """
    from seer_torch.report import write_report
    from seer_torch.report_data import RUN_FILES, read_run_files, report_data

    if not any((run_dir / name).is_file() for name in RUN_FILES):
        return None  # stopped before it began
    data = report_data(read_run_files(run_dir, live=live), live=live)
    if data is None:
        return None
    note = None
    if data.view.live:
        budget = data.view.results.get("budget") or {}
        used = budget.get("time_used_s")
        note = live_note(sum(r.completed for r in data.rounds), len(data.rounds),
                         float(used) if isinstance(used, (int, float)) else None,
                         at=time.strftime("%Y-%m-%d %H:%M:%S"), interval_s=interval_s)
    out = run_dir / REPORT_FILE
    return out if write_report(data, out, live_note=note, images_out=images_out) else None


def _warn_on_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class LiveReport:
    """Keeps ``run_dir/report.html`` fresh while a run runs (see the module docstring).

    Args:
        run_dir: the run's folder (it exists: the command holds its lock).
        min_interval_s: the least time between two drawings, and from now to the first, seconds.
        clock: monotonic seconds (injected by tests).
        draw: draws the page (default :func:`draw_page`): ``draw(run_dir, live=bool)``, and
            for :meth:`draw_final` with ``images_out=dict`` (filled with the figures' PNGs).
        warn: says one line (default: on stderr).

    Use: :meth:`round_completed` from the tuner's loop, :meth:`close` when the run is over.
    """

    def __init__(self, run_dir: Path, *, min_interval_s: float = MIN_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, draw: DrawPage | None = None,
                 warn: Callable[[str], None] = _warn_on_stderr) -> None:
        self.run_dir = Path(run_dir)
        self.min_interval_s = float(min_interval_s)
        self._clock = clock
        self._draw = draw if draw is not None else self._draw_page
        self._warn = warn
        self._cond = threading.Condition()
        self._pending: int | None = None  # the newest round completed and not drawn yet
        self._drawing = False
        self._closed = False
        self._next_s = clock() + self.min_interval_s  # the earliest next drawing
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self.drawn_rounds: list[int] = []  # the round each live drawing was asked for, in order
        self._remove_leftovers()

    def _draw_page(self, run_dir: Path, *, live: bool,
                   images_out: dict[str, bytes] | None = None) -> Path | None:
        return draw_page(run_dir, live=live, interval_s=self.min_interval_s, images_out=images_out)

    def _remove_leftovers(self) -> None:
        """Temporary files of a page that a killed tuner of this run was writing."""
        for f in self.run_dir.glob(f".{REPORT_FILE}.*.tmp"):
            try:
                f.unlink()
            except OSError:
                pass

    # ------------------------------------------------------------------ the loop's side
    def round_completed(self, rounds_completed: int) -> None:
        """The run completed its ``rounds_completed``-th round: draw the page when the interval
        allows (in the background; returns at once, never raises)."""
        with self._cond:
            if self._closed:
                return
            self._pending = max(rounds_completed, self._pending or 0)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="seer-live-report", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def close(self, *, final: bool = True) -> Path | None:
        """The run is over: wait for a drawing under way, draw no more live pages and, with
        ``final``, draw the page of the run as it ended (in this thread). Returns the page's
        path when the final drawing wrote it; a failure (or Ctrl-C while it draws) is one line
        on stderr, never raised."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()
        if not final:
            return None
        try:
            return self._draw(self.run_dir, live=False)
        except KeyboardInterrupt:
            self._say("interrupted")
        except Exception as e:
            self._say(f"{type(e).__name__}: {e}")
        return None

    def draw_final(self) -> dict[str, bytes] | None:
        """The run finished: close (no more live pages) and draw its final page in this
        thread; returns the figures' PNGs by name (for the run's TensorBoard), or ``None`` when
        nothing was drawn. A failure (or Ctrl-C while it draws) is one line on stderr, never
        raised."""
        self.close(final=False)
        images: dict[str, bytes] = {}
        try:
            self._draw(self.run_dir, live=False, images_out=images)
        except KeyboardInterrupt:
            self._say("interrupted")
        except Exception as e:
            self._say(f"{type(e).__name__}: {e}")
        return images or None

    # ------------------------------------------------------------------ the thread
    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._pending is None or self._clock() < self._next_s):
                    wait_s = None if self._pending is None else max(0.0, self._next_s - self._clock())
                    self._cond.wait(wait_s)
                if self._closed:
                    return
                rounds, self._pending = self._pending, None
                self._drawing = True
            started = self._clock()
            try:
                self.drawn_rounds.append(rounds)
                self._draw(self.run_dir, live=True)
            except Exception as e:
                self._say(f"{type(e).__name__}: {e}")
            finally:
                ended = self._clock()
                with self._cond:
                    self._drawing = False
                    self._next_s = ended + max(self.min_interval_s, (ended - started) / DRAW_SHARE)
                    self._cond.notify_all()

    def _say(self, what: str) -> None:
        first = (what.splitlines() or [""])[0]
        line = f"seer: warning: {self.run_dir / REPORT_FILE} not refreshed ({first}); the run goes on"
        if line not in self._warned:
            self._warned.add(line)
            self._warn(line)

    @property
    def drawing(self) -> bool:
        """Whether a drawing runs now."""
        with self._cond:
            return self._drawing


__all__ = ["DRAW_SHARE", "LiveReport", "MIN_INTERVAL_S", "REPORT_FILE", "draw_page", "live_note"]
