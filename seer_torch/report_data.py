"""What ``seer report`` and ``seer export`` show, taken from the files a run leaves
(docs/files-a-run-leaves.md): plain data, no drawing.

:func:`read_run_files` is the one function here that reads files (read-only: it writes and locks
nothing); every other function is pure: it takes the parsed files and returns lists and
dataclasses, so the figures' data can be checked against ``results.json`` and
``decisions.jsonl`` without drawing them (:mod:`seer_torch.report` draws them).

Where each piece comes from:

- **jobs** (:func:`jobs_from_decisions`): ``decisions.jsonl``. Each ``Launch`` decision starts a
  job of its trial at ``W`` at the snapshot's ``now_s`` (the executor carries decisions out as
  soon as the policy makes them); the job ends at the first later snapshot whose ``events``
  name the trial (its ``outcome``: ``reached``, ``stopped``, ``failed``, ``diverged``), or at a
  ``Stop`` or ``Eliminate`` decision of the trial while it runs, or at the end of the run
  (``time_used_s``) when the run stopped it without telling the policy (a deadline, the money
  budget, an interrupt). Times are seconds since the run's clock started (after the
  profile was read, before profiling). A failed job that the executor relaunched from its
  checkpoint is one job here: the policy never hears of a retry, so ``decisions.jsonl`` holds
  no line for it; the trial's ``failures`` in ``results.json`` counts them.
- **rounds, plan, re-plans, money** (:func:`round_rows`, :func:`money_split`,
  :func:`burn_down`): ``results.json`` ``rounds``, ``plan``, ``replans``, ``budget``,
  ``slot_seconds``.
- **curves and the search space** (:func:`curves`, :func:`search_space`): each trial's
  ``metric_by_epoch`` and ``config`` in ``results.json``, the search space in
  ``experiment.toml``.

A run killed before it wrote ``results.json`` (or while writing it) is read from its journal,
``state.json`` (:func:`run_view`): the same rounds, trials and plan, the best trial so far by the
answer's rule instead of the answer, and ``missing`` says what is not there.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seer_torch.errors import ConfigError
from seer_torch.objective import Objective
from seer_torch.policies.base import ANSWER_TOLERANCE, TrialView, best_at_rungs

#: The files whose presence makes a folder a run directory (any one of them).
RUN_FILES = ("experiment.toml", "state.json", "results.json")

#: Job outcomes: the executor's (:class:`seer_torch.policies.base.JobEvent`) and the report's own:
#: ``eliminated`` (stopped by an ``Eliminate`` decision), ``ended with the run`` (running when
#: the run stopped: a budget, an interrupt, or the policy's finish).
OUTCOME_ENDED_WITH_RUN = "ended with the run"


# ---------------------------------------------------------------------- reading
@dataclass
class RunFiles:
    """The parsed files of one run directory.

    Attributes:
        run_dir: the folder.
        results: ``results.json``, or ``None`` when missing or unreadable.
        state: ``state.json`` (or ``state.prev.json`` when ``state.json`` is torn), or ``None``.
        decisions: the lines of ``decisions.jsonl`` that parse, in order.
        experiment: ``experiment.toml`` as a dict, or ``None``.
        checkpoints: each trial's ``checkpoint.pt`` that exists, by trial id: ``(path, epoch)``,
            the epoch its ``checkpoint.json`` says it holds (``None`` when it does not say).
        missing: what is missing or unreadable, one sentence each (shown in the report).
    """

    run_dir: Path
    results: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    experiment: dict[str, Any] | None = None
    checkpoints: dict[str, tuple[Path, int | None]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def _read_json(path: Path, missing: list[str], *, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        missing.append(f"{path.name} is missing ({what})")
        return None
    except OSError as e:
        missing.append(f"{path.name} cannot be read ({e.strerror}; {what})")
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        missing.append(f"{path.name} is not valid JSON ({e}; the run was killed while writing it?)")
        return None


def read_run_files(run_dir: str | Path, *, live: bool = False) -> RunFiles:
    """Read a run directory's ``results.json``, ``state.json``, ``decisions.jsonl`` and
    ``experiment.toml``; what is missing or torn is noted in :attr:`RunFiles.missing`, never
    raised. Reads only.

    ``live``: the run is in progress (its own tuner reads it, to refresh its page): what a run
    in progress lacks is not noted (``results.json`` not written yet, the last line of
    ``decisions.jsonl`` being appended). The journal is read before ``decisions.jsonl``, so
    every decision the journal reflects is there (:func:`report_data` leaves out the later ones).

    Raises:
        ConfigError: ``run_dir`` is not a run directory (nothing there, a file, or a folder
            holding none of :data:`RUN_FILES`).
    """
    path = Path(run_dir)
    allowed = "a run directory made by `seer tune` (it holds experiment.toml, state.json and results.json)"
    if not path.exists():
        raise ConfigError("RUN_DIR", str(path), f"{allowed}; nothing exists at this path")
    if not path.is_dir():
        raise ConfigError("RUN_DIR", str(path), f"{allowed}; this is a file")
    if not any((path / name).is_file() for name in RUN_FILES):
        raise ConfigError("RUN_DIR", str(path), f"{allowed}; this folder holds none of them")
    files = RunFiles(path)
    results_missing: list[str] = []
    results = _read_json(path / "results.json", results_missing, what="the run has not ended, or was killed")
    if not (live and results is None and not (path / "results.json").exists()):
        files.missing += results_missing
    files.results = results if isinstance(results, dict) and "trials" in results else None
    if results is not None and files.results is None:
        files.missing.append("results.json holds no trials")
    state_missing: list[str] = []
    for name in ("state.json", "state.prev.json"):
        state = _read_json(path / name, state_missing, what="the executor's journal")
        if isinstance(state, dict) and "trials" in state:
            files.state = state
            if name != "state.json":
                files.missing.append("state.json is torn: state.prev.json (the journal before it) is used")
            break
    if files.state is None:
        files.missing.extend(state_missing[:1])
    decisions_path = path / "decisions.jsonl"
    try:
        lines = decisions_path.read_text(encoding="utf-8").splitlines()
    except OSError:
        lines = []
        files.missing.append("decisions.jsonl is missing: no job can be placed in time")
    torn = 0
    for k, text in enumerate(lines):
        try:
            line = json.loads(text)
        except ValueError:
            # A run in progress may be appending its last line: not torn, not there yet.
            torn += not (live and k == len(lines) - 1)
            continue
        if isinstance(line, dict) and "snapshot" in line and "decisions" in line:
            files.decisions.append(line)
    if torn:
        files.missing.append(f"decisions.jsonl has {torn} torn line(s), left out")
    try:
        files.experiment = tomllib.loads((path / "experiment.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        files.missing.append(f"experiment.toml cannot be read ({e}): budgets and search space unknown")
    trials_dir = path / "trials"
    for ckpt in sorted(trials_dir.glob("*/checkpoint.pt")) if trials_dir.is_dir() else []:
        epoch = None
        try:
            epoch = int(json.loads((ckpt.parent / "checkpoint.json").read_text(encoding="utf-8"))["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        files.checkpoints[ckpt.parent.name] = (ckpt, epoch)
    return files


# ---------------------------------------------------------------------- the run's view
@dataclass
class RunView:
    """One run as the report shows it: ``results.json``, or the same keys rebuilt from the
    journal (``partial``).

    Attributes:
        results: the ``results.json`` content (or the journal's: ``best`` is then the best trial
            so far by the answer's rule, ``best_so_far`` True).
        partial: read from ``state.json`` because ``results.json`` is missing, torn or older
            than the journal.
        status: the journal's status (``finished``, ``interrupted``, ``failed``, ``running``:
            killed while it ran), or ``None`` without a journal.
        best_so_far: ``results["best"]`` was computed here, not written by the run.
        missing: :attr:`RunFiles.missing` and what the view could not rebuild.
        live: the run is in progress (read by its own tuner, :func:`run_view`'s ``live``, and
            its journal says ``running``): drawn from the journal, with the best trial so far.
    """

    results: dict[str, Any]
    partial: bool
    status: str | None
    best_so_far: bool = False
    missing: list[str] = field(default_factory=list)
    live: bool = False


def run_view(files: RunFiles, *, live: bool = False) -> RunView | None:
    """The run as the report shows it: ``results.json`` when it is there and not older than
    the journal, else the journal's rounds, trials, plan and spend (``partial``); ``None``
    when neither is readable. ``live``: read by the run's own tuner while it runs: a journal
    that says ``running`` is a run in progress (:attr:`RunView.live`), not one killed while
    it ran, and what it has not written yet is not noted as missing."""
    missing = list(files.missing)
    state = files.state
    status = state.get("status") if state else None
    if files.results is not None and status != "running":
        return RunView(files.results, partial=False, status=status, missing=missing)
    if state is None:
        return None
    live = live and status == "running"
    if files.results is not None and not live:  # killed during a resume: results.json is the part before
        missing.append("results.json is older than the journal (the run was killed while it ran): "
                       "drawn from state.json")
    results = _results_from_state(state, files.experiment or {})
    view = RunView(results, partial=True, status=status, missing=missing, live=live)
    found = best_so_far(results)
    if found is not None:
        results["best"] = found
        view.best_so_far = True
    if not live:
        missing.append("no answer was written: the best trial so far by the answer's rule is shown instead")
    return view


def _results_from_state(state: dict[str, Any], experiment: dict[str, Any]) -> dict[str, Any]:
    """``results.json``'s keys the report reads, from a journal (``state.json``)."""
    budget = experiment.get("budget", {})
    report = state.get("policy_report") or {}
    measured = state.get("measured") or {}
    meter = state.get("meter") or {}
    trials = list(state.get("trials") or [])
    paid = float(meter.get("finished_slot_s", state.get("slot_seconds") or 0.0) or 0.0)
    training = sum(float(t.get("trained_slot_s") or 0.0) for t in trials)
    profiling = float(measured.get("profiling_slot_s") or 0.0)
    starting = {k: float(v) for k, v in (measured.get("start_slot_s") or {}).items()}
    return {
        "policy": state.get("policy"),
        "experiment": state.get("experiment"),
        "metric": state.get("metric", "val_accuracy"),
        "mode": state.get("mode", "max"),
        "best": None,
        "budget": {
            "time_budget_s": budget.get("time_budget_s"),
            "money_budget_usd": budget.get("money_budget_usd"),
            "price_usd_per_slot_hour": budget.get("price_usd_per_slot_hour"),
            "time_used_s": state.get("time_used_s"),
            "cost_usd": state.get("cost_usd"),
        },
        "slot_seconds": {
            "paid": paid,
            "training": training,
            "training_share": training / paid if paid > 0 else None,
            "profiling": profiling,
            "jobs": dict(measured.get("start_kinds") or {}),
            "starting": starting,
            "other": paid - training - profiling - sum(starting.values()),
        },
        "stop_reason": state.get("stop_reason"),
        "rounds": list(state.get("rounds") or []),
        "trials": trials,
        "plan": report.get("plan"),
        "replans": list(report.get("replans") or []),
        "resumes": list(state.get("resumes") or []),
    }


def best_so_far(results: dict[str, Any]) -> dict[str, Any] | None:
    """The best trial so far by the answer's rule (:func:`seer_torch.policies.base.best_at_rungs`
    over every epoch reported), as ``results.json``'s ``best``; ``None`` before any value."""
    objective = Objective(results.get("metric", "val_accuracy"), results.get("mode", "max"))
    views = {}
    for t in results.get("trials", []):
        scores = {int(e): objective.score(float(v)) for e, v in (t.get("metric_by_epoch") or {}).items()
                  if v is not None}
        views[t["trial_id"]] = TrialView(t["trial_id"], int(t.get("index", 0)), str(t.get("status")),
                                         int(t.get("epochs") or 0), None, None, scores)
    found = best_at_rungs(views, sorted({e for v in views.values() for e in v.score}))
    if found is None:
        return None
    trial = next(t for t in results["trials"] if t["trial_id"] == found[0])
    return {
        "trial_id": found[0],
        "config": trial.get("config"),
        objective.metric: (trial.get("metric_by_epoch") or {}).get(str(found[1])),
        "test_accuracy": (trial.get("test_accuracy_by_epoch") or {}).get(str(found[1])),
        "epochs": found[1],
        "world_sizes": trial.get("world_sizes"),
    }


# ---------------------------------------------------------------------- jobs
@dataclass(frozen=True)
class Job:
    """One job of a trial: a bar of the allocation chart.

    Attributes:
        trial_id: its trial.
        world_size: its ``W`` (workers, slots).
        start_s: its launch, seconds since the run's clock started.
        end_s: its end (seconds since the run's clock started).
        from_epoch: the trial's epochs when it was launched.
        until_epoch: its target epoch.
        epochs: the trial's epochs when it ended (``None``: not known, it ended with the run).
        outcome: ``reached``, ``stopped``, ``eliminated``, ``failed``, ``diverged`` or
            :data:`OUTCOME_ENDED_WITH_RUN`.
        round_index: the round (or rung level) the policy launched it for.
    """

    trial_id: str
    world_size: int
    start_s: float
    end_s: float
    from_epoch: int
    until_epoch: int
    epochs: int | None
    outcome: str
    round_index: int


@dataclass(frozen=True)
class Mark:
    """Something that happened to a trial at a time: ``kind`` is ``eliminated`` (the policy's
    ``Eliminate``, at its decision), ``failed`` or ``diverged`` (at its job's end)."""

    trial_id: str
    at_s: float
    kind: str


@dataclass(frozen=True)
class Resume:
    """One ``seer resume`` of the run (``results.json``'s ``resumes``): the run's clock at its
    last journal before the stop (``stopped_at_s``) and where it went on (``resumed_at_s``;
    the seconds between, the tuner down, count against the deadline), with the budgets before
    and after (seconds, USD)."""

    stopped_at_s: float
    resumed_at_s: float
    time_budget_s: float | None
    money_budget_usd: float | None
    previous_time_budget_s: float | None
    previous_money_budget_usd: float | None

    @property
    def more_budget(self) -> bool:
        """Whether this resume raised a budget."""
        return (self.time_budget_s, self.money_budget_usd) != (self.previous_time_budget_s,
                                                                self.previous_money_budget_usd)

    def words(self) -> str:
        """The resume in plain words, e.g. ``seer resume at 58.1 s: deadline 60 s -> 120 s``."""
        text = f"seer resume at {self.resumed_at_s:.1f} s"
        down_s = self.resumed_at_s - self.stopped_at_s
        if down_s >= 0.05:
            text += f" ({down_s:.1f} s down since the last journal at {self.stopped_at_s:.1f} s)"
        changes = []
        if self.time_budget_s != self.previous_time_budget_s:
            changes.append(f"deadline {_fmt(self.previous_time_budget_s)} s -> {_fmt(self.time_budget_s)} s")
        if self.money_budget_usd != self.previous_money_budget_usd:
            changes.append(f"money budget {_fmt(self.previous_money_budget_usd)} USD -> "
                           f"{_fmt(self.money_budget_usd)} USD")
        return text + (": more budget: " + ", ".join(changes) if changes else ": the same budgets")


#: A job the tuner's downtime cut in two (:func:`split_at_downtime`): its part before the stop.
OUTCOME_TUNER_DOWN = "tuner down"


def split_at_downtime(jobs: list[Job], resumed: list[Resume]) -> list[Job]:
    """``jobs`` with each one that spans a resume's downtime (the tuner killed at
    ``stopped_at_s``, resumed at ``resumed_at_s``) drawn as two: up to the stop (outcome
    :data:`OUTCOME_TUNER_DOWN`), and from the resume on (the resumed tuner relaunches it from
    its checkpoint, or hears at once that it reached its rung). ``decisions.jsonl`` knows
    nothing of the gap (a decision before the kill launched the job, one after the resume
    ended it), and no file of the run says what the job did while its tuner was down (its
    workers may finish an epoch or their round, then exit): the chart leaves that time to the
    shaded downtime instead of drawing the job through it. Pure."""
    out = list(jobs)
    for r in resumed:
        if r.resumed_at_s - r.stopped_at_s < 0.05:
            continue
        cut = []
        for j in out:
            if j.start_s < r.stopped_at_s and j.end_s > r.resumed_at_s:
                cut.append(dataclasses.replace(j, end_s=r.stopped_at_s, epochs=None,
                                               outcome=OUTCOME_TUNER_DOWN))
                cut.append(dataclasses.replace(j, start_s=r.resumed_at_s))
            elif r.stopped_at_s < j.end_s <= r.resumed_at_s and j.start_s < r.stopped_at_s:
                cut.append(dataclasses.replace(j, end_s=r.stopped_at_s))  # ended while the tuner was down
            else:
                cut.append(j)
        out = cut
    return out


def resumes(results: dict[str, Any]) -> list[Resume]:
    """The run's resumes, oldest first (records that cannot be read are left out)."""
    out = []
    for r in results.get("resumes") or []:
        if not isinstance(r, dict):
            continue
        stopped, resumed = _num(r.get("stopped_at_s")), _num(r.get("resumed_at_s"))
        if stopped is None or resumed is None:
            continue
        out.append(Resume(stopped, resumed, _num(r.get("time_budget_s")), _num(r.get("money_budget_usd")),
                          _num(r.get("previous_time_budget_s")), _num(r.get("previous_money_budget_usd"))))
    return out


_TRIAL_ID = re.compile(r"^t(\d+)$")


def trial_ids_by_index(results: dict[str, Any], decisions: list[dict[str, Any]]) -> dict[int, str]:
    """Trial id of each configuration index: from the views and events in ``decisions.jsonl``,
    the journal's ``index``, else the id's digits (``t007`` is index 7)."""
    ids: dict[int, str] = {}
    for t in results.get("trials", []):
        m = _TRIAL_ID.match(str(t.get("trial_id")))
        if "index" in t:
            ids[int(t["index"])] = t["trial_id"]
        elif m:
            ids[int(m.group(1))] = t["trial_id"]
    for line in decisions:
        snap = line.get("snapshot", {})
        for v in [*snap.get("changed", []), *snap.get("events", [])]:
            if "index" in v and "trial_id" in v:
                ids[int(v["index"])] = v["trial_id"]
    return ids


def jobs_from_decisions(
    decisions: list[dict[str, Any]], ids: dict[int, str], *, run_end_s: float,
    final_epochs: dict[str, int] | None = None,
) -> tuple[list[Job], list[Mark]]:
    """The jobs the run ran and what happened to its trials, from ``decisions.jsonl``'s lines
    (see the module docstring for the rules).

    Args:
        decisions: the parsed lines, in order.
        ids: :func:`trial_ids_by_index`.
        run_end_s: when the run ended (``time_used_s``), seconds: the end of the jobs it
            stopped without a later decision.
        final_epochs: each trial's epochs at the end of the run (``results.json``), the
            ``epochs`` of those jobs.

    Returns:
        ``(jobs, marks)``: jobs in launch order; eliminations, failures and divergences in time
        order.
    """
    jobs: list[Job] = []
    marks: list[Mark] = []
    running: dict[str, dict[str, Any]] = {}
    epochs: dict[str, int] = {}

    def close(tid: str, end_s: float, outcome: str, at_epochs: int | None) -> None:
        j = running.pop(tid)
        jobs.append(Job(tid, j["world_size"], j["start_s"], max(end_s, j["start_s"]), j["from_epoch"],
                        j["until_epoch"], at_epochs, outcome, j["round_index"]))

    for line in decisions:
        snap = line.get("snapshot", {})
        now_s = float(snap.get("now_s", 0.0))
        for v in snap.get("changed", []):
            epochs[v["trial_id"]] = int(v.get("epochs") or 0)
        for e in snap.get("events", []):
            tid = e["trial_id"]
            epochs[tid] = int(e.get("epochs") or 0)
            if tid in running:
                close(tid, now_s, e["outcome"], epochs[tid])
            if e["outcome"] in ("failed", "diverged"):
                marks.append(Mark(tid, now_s, e["outcome"]))
        for d in line.get("decisions", []):
            kind = d.get("type")
            if kind == "Launch":
                index = int(d["trial_index"])
                tid = ids.get(index, f"t{index:03d}")
                if tid in running:  # never happens in a journal the executor wrote; keep the bars apart
                    close(tid, now_s, "stopped", None)
                running[tid] = {
                    "world_size": int(d["world_size"]), "start_s": now_s, "from_epoch": epochs.get(tid, 0),
                    "until_epoch": int(d["until_epoch"]), "round_index": int(d.get("round_index", 0)),
                }
            elif kind in ("Stop", "Eliminate"):
                tid = d["trial_id"]
                if kind == "Eliminate":
                    marks.append(Mark(tid, now_s, "eliminated"))
                if tid in running:
                    close(tid, now_s, "eliminated" if kind == "Eliminate" else "stopped", None)
    for tid in list(running):
        close(tid, run_end_s, OUTCOME_ENDED_WITH_RUN, (final_epochs or {}).get(tid))
    jobs.sort(key=lambda j: (j.start_s, j.trial_id))
    marks.sort(key=lambda m: (m.at_s, m.trial_id))
    return jobs, marks


def trial_order(jobs: list[Job], results: dict[str, Any]) -> list[str]:
    """The allocation chart's rows, top first: trials by their first launch, then trials that
    never ran a job (a run journaled before their launch)."""
    order: list[str] = []
    seen: set[str] = set()
    for j in jobs:
        if j.trial_id not in seen:
            seen.add(j.trial_id)
            order.append(j.trial_id)
    order += [t["trial_id"] for t in results.get("trials", []) if t["trial_id"] not in seen]
    return order


# ---------------------------------------------------------------------- rounds, plan, money
@dataclass(frozen=True)
class RoundRow:
    """One round, planned against measured.

    Attributes:
        index, rung_epoch, num_trials, world_size: the round (as run; as planned when never run).
        start_s, end_s: measured, seconds since the run's clock started (``None``: not run).
        measured_s: ``end_s - start_s``; ``measured_usd``: what its jobs were billed, USD.
        planned_s, planned_usd: the first plan's prediction (``results.json`` ``plan``).
        predicted_s, predicted_usd: the last prediction before it ran (the last re-plan's).
        planned_num_trials, planned_world_size, planned_rung_epoch: the first plan's survivors,
            ``W`` and rung (``None`` for a round it did not have).
        completed: every job of it ended.
    """

    index: int
    rung_epoch: int | None
    num_trials: int
    world_size: int | None
    start_s: float | None
    end_s: float | None
    measured_s: float | None
    measured_usd: float | None
    planned_s: float | None
    planned_usd: float | None
    predicted_s: float | None
    predicted_usd: float | None
    planned_num_trials: int | None
    planned_world_size: int | None
    planned_rung_epoch: int | None
    completed: bool


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(float(x)) else None


def round_rows(results: dict[str, Any]) -> list[RoundRow]:
    """Every round run (``results.json`` ``rounds``) and every round the first plan had that
    never ran, by index, with the plan's and the last re-plan's predictions."""
    plan = results.get("plan") or {}
    planned = {int(r["index"]): r for r in plan.get("rounds") or [] if "index" in r}
    rows = []
    run = {int(r["index"]): r for r in results.get("rounds") or []}
    for index in sorted(set(run) | set(planned)):
        r, p = run.get(index), planned.get(index, {})
        start, end = (_num(r.get("start_s")), _num(r.get("end_s"))) if r else (None, None)
        rows.append(RoundRow(
            index=index,
            rung_epoch=(r or p).get("rung_epoch"),
            num_trials=int((r or p).get("num_trials") or 0),
            world_size=(r or p).get("world_size"),
            start_s=start,
            end_s=end,
            measured_s=end - start if start is not None and end is not None else None,
            measured_usd=_num(r.get("cost_usd")) if r else None,
            planned_s=_num(p.get("predicted_duration_s")),
            planned_usd=_num(p.get("predicted_cost_usd")),
            predicted_s=_num(r.get("predicted_duration_s")) if r else None,
            predicted_usd=_num(r.get("predicted_cost_usd")) if r else None,
            planned_num_trials=p.get("num_trials"),
            planned_world_size=p.get("world_size"),
            planned_rung_epoch=p.get("rung_epoch"),
            completed=bool(r.get("completed")) if r else False,
        ))
    return rows


def price_usd_per_slot_s(results: dict[str, Any]) -> float:
    """The price of one slot-second, USD (0 when the run does not say)."""
    return float((results.get("budget") or {}).get("price_usd_per_slot_hour") or 0.0) / 3600


@dataclass(frozen=True)
class MoneySplit:
    """Where the run's money went, USD: ``rounds`` (each round's jobs, by round index),
    ``profiling`` (the profile's probe jobs: ``slot_seconds.profiling`` at the price),
    ``other`` (the rest of ``cost_usd``: jobs billed to no round, billing's rounding, idle slots of
    a rented cluster). ``rounds`` + ``profiling`` + ``other`` = ``cost_usd``."""

    rounds: dict[int, float]
    profiling: float
    other: float
    cost_usd: float


def money_split(results: dict[str, Any]) -> MoneySplit:
    """:class:`MoneySplit` of ``results`` (every number from ``results.json``)."""
    by_round = {int(r["index"]): float(r.get("cost_usd") or 0.0) for r in results.get("rounds") or []}
    slot_s = results.get("slot_seconds")
    profiling_slot_s = float(slot_s.get("profiling") or 0.0) if isinstance(slot_s, dict) else 0.0
    profiling = profiling_slot_s * price_usd_per_slot_s(results)
    total = float((results.get("budget") or {}).get("cost_usd") or 0.0)
    return MoneySplit(by_round, profiling, total - sum(by_round.values()) - profiling, total)


@dataclass(frozen=True)
class BurnPoint:
    """Where the run stood at the end of a round: ``round_index`` (0: the start of the first
    round, after profiling), ``time_s`` (seconds since the run began) and ``usd`` (money spent
    so far, USD)."""

    round_index: int
    time_s: float
    usd: float


@dataclass(frozen=True)
class BurnDown:
    """Time and money spent against the plan, round by round (the burn-down figure).

    Attributes:
        measured: the start of the rounds (profiling paid), then each round's end (``end_s``;
            the money of the rounds up to it, ``cost_usd``), in round order.
        planned: the first plan's path (``plan``): from the same start, each round's predicted
            ``predicted_duration_s`` and ``predicted_cost_usd`` added up.
        replans: ``(at_s, reason, path)`` for each re-plan (``replans``): the path it predicted,
            from where the run stood when it was made (the end of the round before its first).
        time_budget_s, money_budget_usd: the budgets; ``binding``: which the first plan said binds.
    """

    measured: list[BurnPoint]
    planned: list[BurnPoint]
    replans: list[tuple[float, str, list[BurnPoint]]]
    time_budget_s: float | None
    money_budget_usd: float | None
    binding: str | None


def _path(start: BurnPoint, rounds: list[dict[str, Any]]) -> list[BurnPoint]:
    """``start`` and, after it, each of ``rounds``' predicted end (seconds and USD added up)."""
    path = [start]
    for r in sorted(rounds, key=lambda r: int(r.get("index") or 0)):
        last = path[-1]
        path.append(BurnPoint(int(r.get("index") or last.round_index + 1),
                              last.time_s + float(r.get("predicted_duration_s") or 0.0),
                              last.usd + float(r.get("predicted_cost_usd") or 0.0)))
    return path


def burn_down(results: dict[str, Any]) -> BurnDown:
    """:class:`BurnDown` of ``results``: measured from ``rounds`` and ``slot_seconds``, the
    plan from ``plan``, the re-plans from ``replans``."""
    budget = results.get("budget") or {}
    split = money_split(results)
    rounds = sorted((r for r in results.get("rounds") or [] if _num(r.get("start_s")) is not None),
                    key=lambda r: int(r["index"]))
    first_start = min((float(r["start_s"]) for r in rounds), default=0.0)
    first_index = int(rounds[0]["index"]) if rounds else 1
    measured = [BurnPoint(first_index - 1, first_start, split.profiling)]
    usd = split.profiling
    for r in rounds:
        usd += float(r.get("cost_usd") or 0.0)
        end_s = _num(r.get("end_s"))
        measured.append(BurnPoint(int(r["index"]), end_s if end_s is not None else measured[-1].time_s, usd))
    plan = results.get("plan") or {}
    planned = _path(measured[0], list(plan.get("rounds") or [])) if plan.get("rounds") else []
    at_round = {p.round_index: p for p in measured}
    replans = []
    for rp in results.get("replans") or []:
        at_s = _num(rp.get("at_s"))
        rp_rounds = list((rp.get("plan") or {}).get("rounds") or [])
        if at_s is None or not rp_rounds:
            continue
        before = min(int(r.get("index") or 0) for r in rp_rounds) - 1
        start = at_round.get(before, BurnPoint(before, at_s, usd))
        replans.append((at_s, str(rp.get("reason") or ""), _path(start, rp_rounds)))
    return BurnDown(measured, planned, replans, _num(budget.get("time_budget_s")),
                    _num(budget.get("money_budget_usd")), plan.get("binding"))


def slot_seconds_split(results: dict[str, Any]) -> list[tuple[str, float]]:
    """The paid slot-seconds by what they paid for: ``training``, ``profiling``, ``starting
    (KIND)`` for each kind of job start, ``other`` (``results.json`` ``slot_seconds``); they sum
    to ``paid``. Empty when the run does not say."""
    s = results.get("slot_seconds")
    if not isinstance(s, dict) or not s.get("paid"):
        return []
    parts = [("training", float(s.get("training") or 0.0)), ("profiling", float(s.get("profiling") or 0.0))]
    parts += [(f"starting ({k})", float(v)) for k, v in (s.get("starting") or {}).items()]
    parts.append(("other", float(s.get("other") or 0.0)))
    return parts


# ---------------------------------------------------------------------- curves and the space
@dataclass(frozen=True)
class Curve:
    """One trial's learning curve: ``epochs`` and ``values`` (the run's metric, as reported;
    ``NaN`` where it diverged), its ``status``, and whether it is the answer."""

    trial_id: str
    epochs: list[int]
    values: list[float]
    status: str
    is_answer: bool


def curves(results: dict[str, Any]) -> list[Curve]:
    """Every trial's curve, from its ``metric_by_epoch`` (trials that reported nothing
    included, empty)."""
    best = (results.get("best") or {}).get("trial_id")
    out = []
    for t in results.get("trials") or []:
        by_epoch = sorted((int(e), float("nan") if v is None else float(v))
                          for e, v in (t.get("metric_by_epoch") or {}).items())
        out.append(Curve(t["trial_id"], [e for e, _ in by_epoch], [v for _, v in by_epoch],
                         str(t.get("status")), t["trial_id"] == best))
    return out


def rungs(results: dict[str, Any]) -> list[int]:
    """The rung epochs: of the rounds run, else of the plan's."""
    found = {int(r["rung_epoch"]) for r in results.get("rounds") or [] if r.get("rung_epoch")}
    if not found:
        found = {int(r["rung_epoch"]) for r in (results.get("plan") or {}).get("rounds") or []
                 if r.get("rung_epoch")}
    return sorted(found)


@dataclass(frozen=True)
class Param:
    """One hyperparameter against the metric.

    Attributes:
        name: its name in the search space.
        scale: ``log`` (a loguniform distribution), ``linear``, or ``category`` (choices:
            ``values`` are then indexes into ``categories``).
        trial_ids, values, metric, epochs: per trial that reported a finite metric: the value it
            drew, its metric at the last epoch it reached, and that epoch.
        categories: the choices, in the search space's order (``category`` only).
        bounds: the distribution's ``(low, high)`` in the search space, or ``None``.
        answer: the answer's ``(value, metric)``, or ``None``.
    """

    name: str
    scale: str
    trial_ids: list[str]
    values: list[float]
    metric: list[float]
    epochs: list[int]
    categories: list[Any]
    bounds: tuple[float, float] | None
    answer: tuple[float, float] | None


def search_space(results: dict[str, Any], experiment: dict[str, Any] | None) -> list[Param]:
    """One :class:`Param` per hyperparameter that takes more than one value in the run (fixed
    ones left out), from the trials' ``config`` and last ``metric`` value and the search space
    in ``experiment.toml``."""
    metric = results.get("metric", "val_accuracy")
    space = (experiment or {}).get("search_space") or {}
    trials = [t for t in results.get("trials") or []
              if isinstance(t.get(metric), (int, float)) and math.isfinite(t[metric])]
    names: list[str] = list(space)
    for t in results.get("trials") or []:
        names += [k for k in (t.get("config") or {}) if k not in names]
    best = (results.get("best") or {}).get("trial_id")
    params = []
    for name in names:
        spec = space.get(name) if isinstance(space.get(name), dict) else {}
        drawn = [t for t in trials if name in (t.get("config") or {})]
        raw = [t["config"][name] for t in drawn]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw)
        if "choices" in spec or not numeric:
            categories = list(spec.get("choices") or [])
            categories += [v for v in dict.fromkeys(map(_hashable, raw)) if v not in categories]
            keys = [_hashable(c) for c in categories]
            values = [float(keys.index(_hashable(v))) for v in raw]
            scale = "category"
        else:
            categories, values = [], [float(v) for v in raw]
            log = spec.get("distribution") == "loguniform" and min(values, default=1) > 0
            scale = "log" if log else "linear"
        if len(set(values)) < 2 and len(categories) < 2:
            continue
        answer = next(((v, float(t[metric])) for t, v in zip(drawn, values) if t["trial_id"] == best), None)
        low, high = _num(spec.get("low")), _num(spec.get("high"))
        bounds = (low, high) if scale != "category" and low is not None and high is not None else None
        params.append(Param(name, scale, [t["trial_id"] for t in drawn], values,
                            [float(t[metric]) for t in drawn], [int(t.get("epochs") or 0) for t in drawn],
                            categories, bounds, answer))
    return params


def _hashable(v: Any) -> Any:
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v


# ---------------------------------------------------------------------- words
def stop_reason_words(results: dict[str, Any], status: str | None, *, live: bool = False) -> str:
    """Why the run ended, in plain words; ``live``: that it has not ended yet (a run in
    progress, :attr:`RunView.live`)."""
    reason = results.get("stop_reason")
    if live:
        return ("The run has not ended: it is in progress. This page is drawn from its journal "
                "(state.json) as it stood; it is rewritten at the next rung and once more when the run ends.")
    if status == "running":
        return ("The run did not end: it was killed while it ran (its journal says running and no "
                "process holds it). `seer resume RUN_DIR` continues it from its checkpoints.")
    if reason is None:
        return "The policy finished its plan: every round it planned ran, and it had nothing left to decide."
    if reason == "deadline reached":
        return ("The deadline was reached (the time budget less the few seconds kept to write the answer): "
                "running jobs were stopped at their checkpoints.")
    if reason.startswith("money budget reached"):
        return ("The money budget was reached: running jobs were stopped so that it is never overrun "
                f"({reason.rstrip('.')}).")
    if reason == "interrupted":
        return ("The run was interrupted (Ctrl-C, SIGTERM or SIGHUP): running jobs were stopped at their "
                "checkpoints; `seer resume RUN_DIR` continues it.")
    if reason.startswith("error:"):
        return f"The run stopped on an error: {reason[len('error:'):].strip()}"
    if "nothing left to run" in reason:
        return f"The policy had nothing left to run ({reason.rstrip('.')})."
    return f"The policy finished: {reason.rstrip('.')}."


def answer_words(results: dict[str, Any], *, best_so_far_only: bool = False) -> str:
    """How the answer was chosen, in plain words (the rule of
    :func:`seer_torch.policies.base.best_at_rungs`, with this run's numbers)."""
    best = results.get("best")
    metric, mode = results.get("metric", "val_accuracy"), results.get("mode", "max")
    if not best:
        return "No answer: no trial reported a finite value of the metric."
    epoch = int(best.get("epochs") or 0)
    value = best.get(metric)
    trials = results.get("trials") or []
    at = [t for t in trials
          if str(epoch) in (t.get("metric_by_epoch") or {}) and t.get("status") != "diverged"]
    direction = "largest" if mode == "max" else "smallest"
    what = "The best trial so far" if best_so_far_only else "The answer"
    words = (f"{what} is {best['trial_id']}: its {metric} at epoch {epoch} is {_fmt(value)}, the {direction} "
             f"of the {len(at)} trial(s) that reached epoch {epoch} and did not diverge.")
    others = sorted((float(t["metric_by_epoch"][str(epoch)]) for t in at if t["trial_id"] != best["trial_id"]
                     and t["metric_by_epoch"][str(epoch)] is not None), reverse=(mode == "max"))
    if others:
        words += f" The runner-up there has {_fmt(others[0])}."
    words += (f" The rule: the best at the top rung a valid result reached, unless a trial stopped at the "
              f"rung below scored more than {ANSWER_TOLERANCE} better there (a real drop, not one validation "
              "sample's noise); a diverged trial is never the answer.")
    if best.get("partial"):
        words += (f" Its learning-rate schedule ran to epoch {best.get('schedule_epochs')}, so it is a "
                  "partial answer: the run ended before its schedule did.")
    return words


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) else "n/a"


# ---------------------------------------------------------------------- the CSV
def csv_rows(results: dict[str, Any], checkpoints: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per trial for ``trials.csv``: ``trial_id``, each hyperparameter (a name that
    clashes with a column below gets a ``config.`` prefix), ``status``, ``epochs`` (reached),
    the metric at the last epoch reached, ``METRIC@R`` for each rung ``R`` (empty where the
    trial did not reach it), ``world_sizes`` (each job's ``W``, space-separated), ``failures``,
    ``answer`` (1 for the answer), ``checkpoint`` (``checkpoints``: path by trial id)."""
    metric = results.get("metric", "val_accuracy")
    ladder = rungs(results)
    names: list[str] = []
    for t in results.get("trials") or []:
        names += [k for k in (t.get("config") or {}) if k not in names]
    fixed = ["trial_id", "status", "epochs", metric, *(f"{metric}@{r}" for r in ladder), "world_sizes",
             "failures", "answer", "checkpoint"]
    column = {n: (f"config.{n}" if n in fixed else n) for n in names}
    best = (results.get("best") or {}).get("trial_id")
    rows = []
    for t in results.get("trials") or []:
        by_epoch = t.get("metric_by_epoch") or {}
        row: dict[str, Any] = {"trial_id": t["trial_id"]}
        row.update({column[n]: (t.get("config") or {}).get(n, "") for n in names})
        row.update({
            "status": t.get("status"),
            "epochs": t.get("epochs"),
            metric: "" if t.get(metric) is None else t.get(metric),
            **{f"{metric}@{r}": ("" if by_epoch.get(str(r)) is None else by_epoch[str(r)]) for r in ladder},
            "world_sizes": " ".join(str(w) for w in t.get("world_sizes") or []),
            "failures": t.get("failures", 0),
            "answer": 1 if t["trial_id"] == best else 0,
            "checkpoint": (checkpoints or {}).get(t["trial_id"], ""),
        })
        rows.append(row)
    return rows


# ---------------------------------------------------------------------- all of it
@dataclass
class ReportData:
    """Everything the report draws and says about one run (each field as its function returns
    it; times in seconds since the run's clock started, money in USD).

    Attributes:
        files: the parsed files; ``view``: :func:`run_view`.
        jobs, marks: :func:`jobs_from_decisions` (empty without ``decisions.jsonl``).
        rows: :func:`trial_order`; ``retries``: each trial's relaunches after a failure
            (``failures``), those with any.
        rounds: :func:`round_rows`; ``money``: :func:`money_split`; ``burn``: :func:`burn_down`;
        slot_seconds: :func:`slot_seconds_split`.
        curves, rungs, params: :func:`curves`, :func:`rungs`, :func:`search_space`.
        answer_words, stop_words: :func:`answer_words`, :func:`stop_reason_words`.
        checkpoint: the answer's ``checkpoint.pt`` and the epoch it holds, or ``None``.
        resumes: :func:`resumes`.
    """

    files: RunFiles
    view: RunView
    jobs: list[Job]
    marks: list[Mark]
    rows: list[str]
    retries: dict[str, int]
    rounds: list[RoundRow]
    money: MoneySplit
    burn: BurnDown
    slot_seconds: list[tuple[str, float]]
    curves: list[Curve]
    rungs: list[int]
    params: list[Param]
    answer_words: str
    stop_words: str
    checkpoint: tuple[Path, int | None] | None
    resumes: list[Resume] = field(default_factory=list)


def report_data(files: RunFiles, *, live: bool = False) -> ReportData | None:
    """All the report's data from ``files``; ``None`` when neither ``results.json`` nor the
    journal can be read (nothing to draw). ``live``: the run's own tuner reads it while it
    runs (:func:`run_view`); the decisions its journal does not reflect yet are left out, as
    those of a killed run are, but not noted: they are being carried out."""
    view = run_view(files, live=live)
    if view is None:
        return None
    res = view.results
    decisions = files.decisions
    reflected = (files.state or {}).get("decide_calls")
    if isinstance(reflected, int) and 0 <= reflected < len(decisions):
        # Decided, then killed before the journal said so: never carried out (seer resume drops them).
        if not view.live:
            view.missing.append(f"decisions.jsonl: the last {len(decisions) - reflected} decision(s) were "
                                "never carried out (the run was killed first): left out")
        decisions = decisions[:reflected]
    trials = res.get("trials") or []
    run_end_s = _num((res.get("budget") or {}).get("time_used_s"))
    if run_end_s is None:
        run_end_s = max((float(x["snapshot"].get("now_s", 0.0)) for x in decisions), default=0.0)
    jobs, marks = jobs_from_decisions(
        decisions, trial_ids_by_index(res, decisions), run_end_s=run_end_s,
        final_epochs={t["trial_id"]: int(t.get("epochs") or 0) for t in trials},
    )
    best = (res.get("best") or {}).get("trial_id")
    resumed = resumes(res)
    jobs = split_at_downtime(jobs, resumed)
    stop_words = stop_reason_words(res, view.status, live=view.live)
    if resumed:
        said = "; ".join(r.words() for r in resumed)
        stop_words += f" It was resumed {len(resumed)} time(s): {said}."
    return ReportData(
        files=files,
        view=view,
        jobs=jobs,
        marks=marks,
        rows=trial_order(jobs, res),
        retries={t["trial_id"]: int(t["failures"]) for t in trials if t.get("failures")},
        rounds=round_rows(res),
        money=money_split(res),
        burn=burn_down(res),
        slot_seconds=slot_seconds_split(res),
        curves=curves(res),
        rungs=rungs(res),
        params=search_space(res, files.experiment),
        answer_words=answer_words(res, best_so_far_only=view.best_so_far),
        stop_words=stop_words,
        checkpoint=files.checkpoints.get(best) if best else None,
        resumes=resumed,
    )


__all__ = [
    "BurnDown", "BurnPoint", "Curve", "Job", "Mark", "MoneySplit", "OUTCOME_ENDED_WITH_RUN", "Param",
    "RUN_FILES", "ReportData", "Resume", "RoundRow",
    "RunFiles", "RunView", "answer_words", "best_so_far", "burn_down",
    "csv_rows", "curves", "jobs_from_decisions", "money_split", "price_usd_per_slot_s", "read_run_files",
    "report_data", "resumes", "round_rows", "run_view", "rungs", "search_space", "slot_seconds_split",
    "stop_reason_words", "trial_ids_by_index", "trial_order",
]
