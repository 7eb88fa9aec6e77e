"""What ``seer tune`` and ``seer resume`` show while they run (:class:`LiveStatus`) and when they
end (:func:`print_summary`)."""

from __future__ import annotations

import json
import os
import shlex
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class LiveStatus:
    """Live status while `seer tune` runs: a rich panel on a terminal, plain lines otherwise.

    Each event is printed once as a line (on a terminal above the panel; ``launched ...`` events
    only update the panel). The best trial so far by the experiment's metric, once there is one,
    is shown as ``best val_loss 0.3120 (min, t004 @ epoch 9)``: a line of the panel, and part of
    each plain line. It is judged as the answer is, at the deepest epoch a trial has reached
    (:func:`~seer_torch.policies.base.best_at_rungs`), so it can get worse during a run: a trial
    reaching a later epoch replaces better values of earlier epochs. The panel is two status
    lines (three with the best trial) and the last event, each cut to the terminal's width,
    never wrapped; it is redrawn four times a second and computes the time it shows when drawn
    (the last event's ``time_used_s`` plus the seconds since), so the time ticks during
    profiling and between launches. It is removed at the end: the event lines and the summary
    stay. The run's final status event, when it only repeats the stop reason, says its head
    (``finished`` after ``policy finished: REASON``; ``interrupted: interrupted``); other events
    are printed whole. How a run that did not finish ended (``interrupted``, ``failed``) is said
    by the command itself, on stderr with where its files are, so the status leaves it out.

    Args:
        quiet: print nothing.
        clock: monotonic seconds (``time.monotonic``), read when the panel is drawn.
    """

    _SAID_BY_THE_COMMAND = ("interrupted", "failed")
    _FINAL_STATUSES = ("finished", "interrupted", "failed")  # Tuner.run's last event: "STATUS: stop_reason"

    def __init__(self, quiet: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        from rich.console import Console

        self.console = Console(stderr=False)
        self.quiet = quiet
        self.live = None
        self._clock = clock
        self._msg = "starting"
        self._st: dict[str, Any] = {}
        self._st_at_s = clock()
        self._last_reason = ""

    def __enter__(self) -> LiveStatus:
        if self.console.is_terminal and not self.quiet:
            from rich.live import Live

            self.live = Live(self, console=self.console, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __rich__(self) -> Any:
        """The panel as it is now (rich calls this at each redraw)."""
        from rich.console import Group
        from rich.text import Text

        def line(text: str) -> Text:
            return Text(text, no_wrap=True, overflow="ellipsis")

        lines = []
        st = self._st
        if st:
            time_s = st["time_used_s"] + self._clock() - self._st_at_s
            lines.append(line(
                f"round {st['round']}" + (f"/{st['rounds_planned']}" if st.get("rounds_planned") else "")
                + f"   trials alive {st['trials_alive']}/{st['trials']} ({st['running']} running)"))
            lines.append(line(f"time {time_s:.0f}/{st['time_budget_s']:.0f} s   "
                              f"money {st['cost_usd']:.3f}/{st['money_budget_usd']:.2f} USD"))
            if st.get("best"):
                lines.append(line(f"best {best_text(st)}"))
        lines.append(line(self._msg))
        return Group(*lines)

    def event(self, msg: str, st: dict[str, Any]) -> None:
        """Show event ``msg`` with the run's status ``st`` (:meth:`Tuner.status`)."""
        if self.quiet:
            return
        head, _, reason = msg.partition(": ")
        if head in self._FINAL_STATUSES and reason and reason in (head, self._last_reason):
            msg = head  # the run's final status repeating its stop reason
        self._last_reason = reason
        self._msg, self._st, self._st_at_s = msg, dict(st), self._clock()
        if msg in self._SAID_BY_THE_COMMAND or head in self._SAID_BY_THE_COMMAND:
            return
        try:
            self._show(msg, st)
        except BrokenPipeError:
            # The reader went away (`seer tune | head`): the run goes on, silently. Later prints
            # (the end summary) go to /dev/null instead of raising (Python's documented recipe).
            self.quiet = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())

    def _show(self, msg: str, st: dict[str, Any]) -> None:
        if self.live is not None:
            self.live.refresh()
            if not msg.startswith("launched"):
                from rich.text import Text

                self.live.console.print(Text.assemble((f"{st.get('time_used_s', 0):6.1f}s", "dim"), " ", msg))
        else:
            print(
                f"[{st.get('time_used_s', 0):6.1f}s | round {st.get('round')} "
                f"| alive {st.get('trials_alive')}"
                f" | {st.get('cost_usd', 0):.3f} USD"
                + (f" | best {best_text(st)}" if st.get("best") else "")
                + f"] {msg}",
                flush=True,
            )


def best_text(st: dict[str, Any]) -> str:
    """The best trial so far as the status shows it: ``val_loss 0.3120 (min, t004 @ epoch 9)``
    (``st``: :meth:`Tuner.status`, whose ``best`` is set)."""
    best = st["best"]
    value = best.get("value")
    shown = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
    metric, mode = st.get("metric", "val_accuracy"), st.get("mode", "max")
    return f"{metric} {shown} ({mode}, {best['trial_id']} @ epoch {best['epoch']})"


def print_summary(results: dict[str, Any], run_dir: Path, *, report: bool = False) -> None:
    """Print the end of a run: the best trial, the metric it was chosen by and its configuration
    (or that there is no answer), the time and money used, and where ``results.json``,
    TensorBoard's logs and (``report``: the run kept it, and it is there) ``report.html`` are."""
    b = results["budget"]
    best = results["best"]
    print()
    if best is None:
        reason = f" ({results['stop_reason']})" if results["stop_reason"] else ""
        print("No trial completed a rung; no answer." + reason)
    else:
        test = (f"test_accuracy {best['test_accuracy']:.4f}" if best.get("test_accuracy") is not None
                else "no test accuracy (a job stopped before its rung, or a script that reports none)")
        # Short lines (a terminal of 80 columns): the answer, its accuracies, its configuration.
        epochs, most = best["epochs"], results.get("max_epochs")
        of = f" of {most}" if isinstance(most, int) else ""
        noun = "epoch" if epochs == 1 and not of else "epochs"
        print(f"best: {best['trial_id']} after {epochs}{of} {noun}, world sizes {best['world_sizes']}")
        metric = results.get("metric", "val_accuracy")
        value = best.get(metric)
        shown = f"{value:.4f}" if isinstance(value, (int, float)) else "none"
        direction = "minimized" if results.get("mode") == "min" else "maximized"
        print(f"  {metric} {shown} ({direction}), {test}")
        if best.get("partial"):
            print(f"  partial: its learning-rate schedule runs to epoch {best.get('schedule_epochs')}")
        if best.get("checkpoint"):
            held = best.get("checkpoint_epoch")
            note = "" if held == best["epochs"] else f"; judged at epoch {best['epochs']}, trained further"
            print(f"  checkpoint: {best['checkpoint']} (epoch {held}{note})")
        if results.get("stop_reason"):
            # Why it ended short of the plan (BEST EFFORT, EXPLORATION FIRST, the deadline): its
            # first sentence, wrapped to 80 columns; the whole reason is in results.json.
            first = str(results["stop_reason"]).split(". ")[0].rstrip(".") + "."
            print(textwrap.fill(first, width=80, initial_indent="  why: ", subsequent_indent="    "))
        print("config: " + json.dumps(best["config"], indent=2))
    # The seconds the tuner was down between a kill and its resume count against the deadline
    # (a wall-clock promise) but trained nothing: said, so that "used 71.5 of 60 s" is no riddle.
    down_s = sum(max(0.0, float(r.get("resumed_at_s", 0.0)) - float(r.get("stopped_at_s", 0.0)))
                 for r in results.get("resumes") or [])
    print(
        f"used {b['time_used_s']:.1f} of {b['time_budget_s']:g} s and {b['cost_usd']:.4f} of "
        f"{b['money_budget_usd']:g} USD; {len(results['trials'])} configurations, "
        f"{len(results['rounds'])} rounds"
    )
    if down_s >= 0.05:
        print(f"  {down_s:.1f} s of it the tuner was down before seer resume (the deadline counts it)")
    print(f"results: {run_dir / 'results.json'}")
    if report and (run_dir / "report.html").is_file():
        print(f"report: {run_dir / 'report.html'}")
    if (run_dir / "tensorboard").is_dir():
        print(f"tensorboard --logdir {shlex.quote(str(run_dir / 'tensorboard'))}")
