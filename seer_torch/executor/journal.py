"""The run's journal: ``state.json`` (rewritten atomically at every event, the one before
kept as ``state.prev.json``) and ``decisions.jsonl`` (one line per policy decision: the
snapshot it saw, as the trial views that changed, and what it decided), from which ``seer
resume`` rebuilds a run (:mod:`seer_torch.executor.resume`). Also the fault-injection points
the resume tests kill the tuner at (:func:`debug_crash_point`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seer_torch.errors import ConfigError, SeerError
from seer_torch.policies.base import Snapshot, TrialView
from seer_torch.runfiles import atomic_write_json

if TYPE_CHECKING:
    from seer_torch.executor.tuner import Tuner

DECISIONS_FILE = "decisions.jsonl"


def view_to_dict(v: TrialView) -> dict[str, Any]:
    """A view as ``decisions.jsonl`` holds it (``score``: higher-is-better, by epoch)."""
    d = dataclasses.asdict(v)
    d["score"] = {str(k): x for k, x in v.score.items()}
    d["world_sizes"] = list(v.world_sizes)
    d["epoch_time_by_world_s"] = {str(w): x for w, x in v.epoch_time_by_world_s.items()}
    return d


def view_from_dict(d: dict[str, Any]) -> TrialView:
    """The view :func:`view_to_dict` wrote. A journal written before the metric was the
    user's choice calls the scores ``val_accuracy``: the values of validation accuracy,
    maximized, which are their scores."""
    d = dict(d)
    if "score" not in d and "val_accuracy" in d:
        d["score"] = d.pop("val_accuracy")
    return TrialView(
        **{
            **d,
            "score": {int(k): float(x) for k, x in d["score"].items()},
            "world_sizes": tuple(d["world_sizes"]),
            # a journal from before the field: none measured
            "epoch_time_by_world_s": {int(w): float(x)
                                      for w, x in d.get("epoch_time_by_world_s", {}).items()},
        }
    )


def decision_to_dict(d: Any) -> dict[str, Any]:
    return {"type": type(d).__name__, **dataclasses.asdict(d)}


@dataclasses.dataclass(frozen=True)
class DecisionLines:
    """``decisions.jsonl`` as a resume reads it (:func:`read_decision_lines`): ``lines``, its
    complete lines, in order; ``torn``, the 1-based number of an incomplete last line that was
    left out (``None`` when there is none) and ``torn_why``, what is wrong with it."""

    lines: tuple[str, ...]
    torn: int | None = None
    torn_why: str = ""

    def warning(self, path: Path) -> str:
        """The warning for the left-out last line (only when :attr:`torn` is set)."""
        return (f"warning: {path} line {self.torn} is incomplete ({self.torn_why}: the run was killed while "
                "it was appended); ignored: a decision not fully written was never carried out")


def read_decision_lines(path: Path) -> DecisionLines:
    """The complete lines of a decisions journal, under the write-ahead-log rule: a last line
    without its newline, or that is no JSON object, was cut short while it was appended and
    did not happen (the executor carries out a decision only once its line is written); it is
    left out, and said (:attr:`DecisionLines.torn`). An empty or missing file has no lines.

    Raises:
        SeerError: a line before the last is no JSON object: the journal is corrupt in the
            middle (the message names the file and the line).
    """
    path = Path(path)
    if not path.exists():
        return DecisionLines(())
    parts = path.read_text(encoding="utf-8", errors="replace").split("\n")
    tail = parts.pop()  # "" when the file ends with a newline, as every complete line does
    if tail.strip():
        return DecisionLines(_complete_lines(path, parts), len(parts) + 1, "no newline at its end")
    if parts and _problem(parts[-1]):
        return DecisionLines(_complete_lines(path, parts[:-1]), len(parts), _problem(parts[-1]))
    return DecisionLines(_complete_lines(path, parts))


def _problem(line: str) -> str:
    """What makes ``line`` no journal line (``""``: nothing)."""
    try:
        value = json.loads(line)
    except ValueError as e:
        return f"not valid JSON: {e}"
    return "" if isinstance(value, dict) else "not a JSON object"


def _complete_lines(path: Path, lines: list[str]) -> tuple[str, ...]:
    for number, line in enumerate(lines, start=1):
        why = _problem(line)
        if why:
            raise SeerError(
                f"resume: {path} line {number} is corrupt ({why}) and {len(lines) - number} line(s) "
                "follow it (the last line alone may be cut short by a crash, never one in the middle): the "
                "policy cannot be brought back to where it was; the run's results so far are in "
                f"{path.parent / 'state.json'} and its trials' checkpoints"
            )
    return tuple(lines)


def read_journal(run_dir: Path) -> dict[str, Any]:
    """``state.json``, or ``state.prev.json`` (the journal before it) when ``state.json`` is
    missing, truncated or not a journal.

    Raises:
        ConfigError: neither is a readable journal.
    """
    problems = []
    for name in ("state.json", "state.prev.json"):
        try:
            state = json.loads((Path(run_dir) / name).read_text())
            if isinstance(state, dict) and "trials" in state and "status" in state:
                return state
            problems.append(f"{name}: not a journal")
        except (OSError, ValueError) as e:
            problems.append(f"{name}: {e}")
    raise ConfigError(
        "RUN_DIR", str(run_dir), "a run directory with a readable state.json (" + "; ".join(problems) + ")"
    )


# ---------------------------------------------------------------------- fault injection
class Crash(BaseException):
    """Raised by the fault-injection hook (:func:`debug_crash_point`) to emulate a tuner killed
    outright in-process: the run's clean-up does nothing (no job stopped, nothing written), as
    after SIGKILL. Never raised in normal runs."""


_crash_counts: dict[str, int] = {}


def debug_crash_point(point: str) -> None:
    """Fault injection for the resume tests: ``SEER_DEBUG_CRASH_AT=POINT:N`` kills the tuner the
    N-th time it passes ``POINT`` (``decide``: a decision was journaled in ``decisions.jsonl``
    but not carried out; ``launch``: a job was just launched; ``job_end``: a job's end was just
    read). ``SEER_DEBUG_CRASH_MODE=exception`` raises :class:`Crash` instead of SIGKILL. The
    executor calls it as ``journal.debug_crash_point`` so that a test may replace it."""
    spec = os.environ.get("SEER_DEBUG_CRASH_AT")
    if not spec:
        return
    where, _, count = spec.partition(":")
    if where != point:
        return
    _crash_counts[point] = _crash_counts.get(point, 0) + 1
    if _crash_counts[point] != int(count or 1):
        return
    if os.environ.get("SEER_DEBUG_CRASH_MODE") == "exception":
        raise Crash(f"injected crash at {point}:{count}")
    os.kill(os.getpid(), signal.SIGKILL)


# ---------------------------------------------------------------------- writing
class Journal:
    """Writes a tuner's ``state.json`` and ``decisions.jsonl`` (only with a run directory).

    Attributes:
        decide_calls: decisions made so far (journaled; a resume replays that many).
        interrupted: the jobs a stop at the end of an unfinished run ended (a resume
            relaunches them where they are).
        more_budget_calls: the decisions made so far when ``seer resume`` gave the run more
            budget (the policy heard so then; a resume replays it at the same points).
        resumes: one record per ``seer resume`` of the run, oldest first: ``stopped_at_s`` (the
            run's clock at its last journal before the stop), ``resumed_at_s`` (where it went
            on: ``stopped_at_s`` + ``down_s``, the seconds the tuner was down, which count
            against the deadline; 0 for a run that had finished), the budgets after it
            (``time_budget_s``, ``money_budget_usd``) and before it (``previous_...``).
    """

    def __init__(self, tuner: Tuner) -> None:
        self.tuner = tuner
        self.decide_calls = 0
        self.more_budget_calls: list[int] = []
        self.resumes: list[dict[str, Any]] = []
        self.logged_views: dict[str, TrialView] = {}
        self.interrupted: list[dict[str, Any]] = []

    def log_decide(self, snap: Snapshot, decisions) -> None:
        """Append one decision to ``decisions.jsonl``: the snapshot (trial views that changed
        since the previous line only) and what the policy decided. ``seer resume`` replays the
        policy through these lines to bring it back to where it was (policies are pure and
        deterministic)."""
        number = self.decide_calls + 1
        run_dir = self.tuner.run_dir
        if run_dir is None:
            self.decide_calls = number
            return
        changed = [view_to_dict(v) for tid, v in snap.trials.items() if self.logged_views.get(tid) != v]
        line = {
            "i": number,
            "snapshot": {
                "now_s": snap.now_s,
                "time_left_s": snap.time_left_s,
                "money_left_usd": snap.money_left_usd,
                "num_slots": snap.num_slots,
                "free_slots": snap.free_slots,
                "epoch_time_s": snap.epoch_time_s,
                "job_overhead_s": snap.job_overhead_s,
                "continue_overhead_s": snap.continue_overhead_s,
                "warm_start_overhead_s": snap.warm_start_overhead_s,
                "machine_start_s": snap.machine_start_s,
                "events": [dataclasses.asdict(e) for e in snap.events],
                "changed": changed,
            },
            "decisions": [decision_to_dict(d) for d in decisions],
        }
        with open(run_dir / DECISIONS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())
        # Counted once written: a write cut short (a full disk) is not in the
        # journal's count, so a resume leaves its torn line out (:func:`read_decision_lines`).
        self.decide_calls = number
        self.logged_views = dict(snap.trials)

    def write(self, status: str = "running") -> None:
        """Rewrite ``state.json`` atomically (the previous one kept as ``state.prev.json``)."""
        t = self.tuner
        assert t.run_dir is not None
        meter, book = t.meter, t.book
        atomic_write_json(
            t.run_dir / "state.json",
            {
                "status": status,
                "experiment": t.exp.name,
                "metric": t.exp.metric,
                "mode": t.exp.mode,
                "policy": t.policy.name,
                "start_unix_s": t.start_unix_s,
                "time_used_s": meter.elapsed_s(),
                "cost_usd": meter.cost_usd(book.held()),
                "slot_seconds": meter.finished_slot_s,
                "stop_reason": t.stop_reason,
                "profile": t.profile.to_dict() if t.profile else None,
                "policy_report": t.report.safe_report(),
                "rounds": t.report.round_rows(),
                "running": [book.job_row(x) for x in book.running.values()] or self.interrupted,
                "trials": [x.to_dict(t.exp.metric) for x in book.trials.values()],
                # What `seer resume` needs (see Tuner.resume).
                "journal_unix_s": time.time(),
                "decide_calls": self.decide_calls,
                "more_budget_calls": list(self.more_budget_calls),
                "resumes": list(self.resumes),
                "setup_budgets": list(t.setup_budgets) if t.setup_budgets else None,
                "setup_num_slots": t.setup_slots,
                "tensorboard_rounds": t.report.panels.rounds_logged,
                "meter": {
                    "finished_usd": meter.finished_usd,
                    "finished_slot_s": meter.finished_slot_s,
                    "reserved_slots": meter.reserved[0] if meter.reserved else None,
                    "reserved_since_s": meter.reserved[1] - meter.start_s if meter.reserved else None,
                    # a cluster's machines: what they cost so far (a resume carries it)
                    "held_nodes_usd": meter.cost_usd() if meter.held_nodes is not None else None,
                },
                "round_records": [dict(r.__dict__) for r in book.rounds.values()],
                "measured": {
                    "overheads_s": list(book.overheads_s),
                    "tau_s": dict(book.tau_s),
                    "continue_overheads_s": list(book.continue_overheads_s),
                    "warm_overheads_s": list(book.warm_overheads_s),
                    "start_kinds": dict(book.start_kinds),
                    "start_slot_s": dict(book.start_slot_s),
                    "profiling_slot_s": book.profiling_slot_s,
                    # a cluster's measured machine starts (seconds): a resume plans with them
                    "machine_starts_s": (list(meter.held_nodes.machine_starts_s)
                                         if meter.held_nodes is not None else []),
                },
            },
            keep_previous=True,
        )
