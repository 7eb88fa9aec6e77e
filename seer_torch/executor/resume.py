"""``seer resume``: bring a run back from its journal (see :meth:`seer_torch.executor.Tuner.resume`
for what resuming promises). Two halves: :meth:`Resumer.restore_journal` reads and replays
only (a resume that fails there writes nothing); :meth:`Resumer.restore` then stops what the
dead tuner left running and carries out the jobs the policy believes running.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from seer_torch.errors import SeerError
from seer_torch.executor.context import draw_costs_needed, policy_context, trial_job_spec
from seer_torch.executor.journal import DECISIONS_FILE, decision_to_dict, read_decision_lines, view_from_dict
from seer_torch.executor.trials import BROKEN, ENDED, RoundRecord, Trial, TrialStatus, update_from_rows
from seer_torch.policies.base import JobEvent, Launch, Snapshot, TrialView, give_more_budget, policy_news
from seer_torch.runfiles import atomic_write_text, remove_worker_temporaries
from seer_torch.scaling.profile import load_profile

if TYPE_CHECKING:
    from seer_torch.executor.tuner import Tuner

S = TrialStatus
# A journaled status as a resumed trial starts: a job that ran (or a trial settled by the
# wrap-up of an interrupted run) is paused at its checkpoint.
_RESUMED_STATUS = {S.RUNNING: S.PAUSED, S.STOPPED: S.PAUSED, S.COMPLETED: S.PAUSED}

Replayed = tuple[dict[int, dict[str, Any]], set[str], list[str]]


def trial_from_journal(raw: dict[str, Any]) -> Trial:
    """A trial as ``state.json`` journaled it, as a resume starts it (a journal written before
    the metric was the user's choice holds ``val_accuracy_by_epoch``)."""
    t = Trial(trial_id=raw["trial_id"], config=raw["config"], index=int(raw["index"]))
    t.status = _RESUMED_STATUS.get(raw["status"]) or TrialStatus(raw["status"])
    t.epochs = int(raw["epochs"])
    by_epoch = raw.get("metric_by_epoch", raw.get("val_accuracy_by_epoch", {}))
    t.metric_by_epoch = {int(k): float(v) for k, v in by_epoch.items()}
    t.test_accuracy_by_epoch = {int(k): float(v) for k, v in raw.get("test_accuracy_by_epoch", {}).items()}
    t.world_sizes = list(raw.get("world_sizes", []))
    t.failures = int(raw.get("failures", 0))
    t.round_index = int(raw.get("round_index", 0))
    t.schedule_epochs = int(raw.get("schedule_epochs", 0))
    t.trained_slot_s = float(raw.get("trained_slot_s", 0.0))
    t.error = raw.get("error")
    t.stderr_tail = [str(line) for line in raw.get("stderr_tail", [])]
    # A journal from before trials' TensorBoard runs were named: the trial id was the name.
    t.tensorboard_run = str(raw.get("tensorboard_run") or t.trial_id)
    t.epoch_times_by_world_s = {int(w): [float(x) for x in v]
                                for w, v in raw.get("epoch_times_by_world_s", {}).items()}
    return t


class Resumer:
    """Restores ``tuner`` from the journal ``state`` (read by :meth:`Tuner.resume`)."""

    def __init__(self, tuner: Tuner, state: dict[str, Any], *, more_budget: bool = False,
                 after_finish: bool = False, budgets_before: tuple[float, float] | None = None) -> None:
        self.t = tuner
        self.state = state
        self.replayed: Replayed | None = None
        # seer resume --time-budget/--money-budget: experiment.toml gets the new budgets once
        # the replay succeeded; a run that had finished resumes where it ended (no downtime: it
        # was over, and the new budget is for going on).
        self.more_budget = more_budget
        self.after_finish = after_finish
        # A policy that finished for want of budget decides again with more: its last decision
        # (a Finish, with the eliminations it made for it) is not replayed; its events are the
        # first live decision's instead, and the trials it eliminated are paused again.
        self.undone_events: list[JobEvent] = []
        self.undone_eliminated: list[str] = []
        self.more_budget_calls: list[int] = []  # the journal's: where earlier resumes gave more
        self.budgets_before = budgets_before  # (time_budget_s, money_budget_usd) before this resume

    # ------------------------------------------------------------------ first half: read
    def restore_journal(self) -> None:
        """Bring the run back in memory from its journal (time, money, trials, rounds,
        measurements) and the policy by replaying its decisions, with the slots it made them
        with. Writes nothing, starts and stops nothing: a resume that fails here leaves the run
        directory exactly as it found it."""
        t, state = self.t, self.state
        assert t.run_dir is not None
        book, meter = t.book, t.meter
        downtime_s = 0.0 if self.after_finish else max(0.0, time.time() - float(state["journal_unix_s"]))
        elapsed_s = float(state["time_used_s"]) + downtime_s
        meter.start_s = t.clock.now() - elapsed_s
        m = state["meter"]
        meter.finished_usd = float(m["finished_usd"])
        meter.finished_slot_s = float(m["finished_slot_s"])
        if m.get("held_nodes_usd") is not None and meter.held_nodes is not None:
            # The machines held before the stop, carried; those held now are looked at afresh
            # (the time the tuner was down is not billed: no look saw it).
            meter.held_nodes_carried_usd = float(m["held_nodes_usd"])
            t.observe_nodes()
        t.start_unix_s = float(state.get("start_unix_s", t.start_unix_s))
        t.stop_reason = None
        t.report.panels.rounds_logged = int(state.get("tensorboard_rounds", 0))
        b = t.exp.budget
        before = self.budgets_before or (b.time_budget_s, b.money_budget_usd)
        t.journal.resumes = [dict(r) for r in state.get("resumes", [])] + [{
            "stopped_at_s": float(state["time_used_s"]),
            "resumed_at_s": elapsed_s,
            "down_s": downtime_s,
            "time_budget_s": b.time_budget_s,
            "money_budget_usd": b.money_budget_usd,
            "previous_time_budget_s": before[0],
            "previous_money_budget_usd": before[1],
        }]
        t.event(
            f"resuming {t.run_dir.name}: {elapsed_s:.1f} s used ({downtime_s:.1f} s down), "
            f"{meter.cost_usd():.4f} USD spent"
        )
        for raw in state["trials"]:
            book.add(trial_from_journal(raw))
        for raw in state.get("round_records", []):
            rec = RoundRecord(
                **{
                    k: raw[k]
                    for k in (
                        "index",
                        "rung_epoch",
                        "world_size",
                        "num_trials",
                        "start_s",
                        "end_s",
                        "cost_usd",
                        "running",
                    )
                }
            )
            book.rounds[rec.index] = rec
        measured = state.get("measured", {})
        book.overheads_s.extend(measured.get("overheads_s", []))
        book.tau_s.update(measured.get("tau_s", {}))
        book.continue_overheads_s.extend(measured.get("continue_overheads_s", []))
        book.warm_overheads_s.extend(measured.get("warm_overheads_s", []))
        book.start_kinds.update(measured.get("start_kinds", {}))
        book.start_slot_s.update(measured.get("start_slot_s", {}))
        book.profiling_slot_s = float(measured.get("profiling_slot_s", 0.0))
        if meter.held_nodes is not None:  # the machine starts measured before the stop
            meter.held_nodes.machine_starts_s[:0] = [float(x) for x in measured.get("machine_starts_s", [])]
        # The slots the policy was set up with (a journal older than the field: the experiment's).
        t.setup_slots = int(state.get("setup_num_slots") or t.exp.resources.num_slots)
        if state.get("setup_budgets") is None:  # stopped before the policy was set up: profiling
            return
        # The policy, as it was: set up with the same inputs (the slots included), then fed the
        # same snapshots. New slots apply from the next decision on (snapshots carry them).
        time_left, money_left = state["setup_budgets"]
        t.policy.setup(
            policy_context(
                t.exp,
                t.profile,
                num_slots=t.setup_slots,
                time_left_s=time_left,
                money_left_usd=money_left,
                oracle_index=t.oracle_index,
                draw_times_s=t.draw_times_s,
                keep_alive=t.backend.keeps_jobs_alive,
                warm_workers=t.backend.hands_over_workers,
            )
        )
        t.setup_budgets = (time_left, money_left)
        if m.get("reserved_slots"):
            # A rented cluster is billed as rented; jobs run on the slots there are now.
            book.slots = min(int(m["reserved_slots"]), t.backend.num_slots)
            meter.reserved = (int(m["reserved_slots"]), meter.start_s + float(m["reserved_since_s"]))
        calls = int(state.get("decide_calls", 0))
        path = t.run_dir / DECISIONS_FILE
        journal = read_decision_lines(path)
        if journal.torn is not None and journal.torn <= calls:
            # The journal counts it as made (and perhaps carried out): what was lost is not known.
            raise SeerError(
                f"resume: {path} line {journal.torn} is incomplete ({journal.torn_why}), yet "
                f"{t.run_dir / 'state.json'} counts {calls} decisions made: the disk lost what was written "
                "(a full disk or a power loss?); the policy cannot be brought back to where it was; the "
                "run's results so far are in state.json and its trials' checkpoints")
        if journal.torn is not None:  # a crash while it was appended: never counted, never carried out
            t.event(journal.warning(path))
        lines = list(journal.lines)
        if self.more_budget and self.after_finish:
            calls = self._undo_finish(calls, lines)
        self.more_budget_calls = [int(c) for c in state.get("more_budget_calls", [])]
        self.replayed = self._replay(calls, lines)
        t.journal.more_budget_calls = [c for c in self.more_budget_calls if c <= calls]
        if self.more_budget:  # told after the replay, at this point of its decisions (journaled)
            give_more_budget(t.policy)
            t.journal.more_budget_calls.append(calls)

    def _undo_finish(self, calls: int, lines: list[str]) -> int:
        """When the run's last decision was the policy's ``Finish`` (with more budget it may
        go on): keep it out of the replay, and its events and eliminations for
        :meth:`restore`. ``lines``: the complete lines of ``decisions.jsonl``. Returns the
        decisions to replay."""
        if not 1 <= calls <= len(lines):
            return calls
        last = json.loads(lines[calls - 1])
        if not any(d.get("type") == "Finish" for d in last["decisions"]):
            return calls
        self.undone_events = [JobEvent(**e) for e in last["snapshot"]["events"]]
        self.undone_eliminated = [d["trial_id"] for d in last["decisions"] if d.get("type") == "Eliminate"]
        self.t.event("more budget: the policy's last decision (it finished for want of budget) is made again")
        return calls - 1

    def _replay(self, calls: int, lines: list[str]) -> Replayed:
        """Feed the policy the snapshots it saw before (``lines``: the complete lines of
        ``decisions.jsonl``), checking that it decides the same. Reads only (a mismatch raises
        with nothing written).

        Returns the jobs the policy believes running at the end (trial index -> launch), the
        trials it eliminated, and the ``decisions.jsonl`` lines the journal reflects.

        Raises:
            SeerError: the policy decides differently, or the file holds fewer decisions.
        """
        t = self.t
        assert t.run_dir is not None
        views: dict[str, TrialView] = {}
        running: dict[int, dict[str, Any]] = {}
        eliminated: set[str] = set()
        done = 0
        for text in lines[:calls]:
            line = json.loads(text)
            if done in self.more_budget_calls:  # a resume gave more budget here
                give_more_budget(t.policy)
            snap = line["snapshot"]
            for raw in snap["changed"]:
                v = view_from_dict(raw)
                views[v.trial_id] = v
            decisions = t.policy.decide(
                Snapshot(
                    now_s=snap["now_s"],
                    time_left_s=snap["time_left_s"],
                    money_left_usd=snap["money_left_usd"],
                    num_slots=snap["num_slots"],
                    free_slots=snap["free_slots"],
                    trials=dict(views),
                    events=tuple(JobEvent(**e) for e in snap["events"]),
                    epoch_time_s=snap["epoch_time_s"],
                    job_overhead_s=snap["job_overhead_s"],
                    # what the policy planned continuations with (journals before they were kept: none)
                    continue_overhead_s=snap.get("continue_overhead_s"),
                    warm_start_overhead_s=snap.get("warm_start_overhead_s"),
                    machine_start_s=snap.get("machine_start_s"),  # journals before it was kept: none
                )
            )
            got = [decision_to_dict(d) for d in decisions]
            policy_news(t.policy)  # said when they were made, before the run stopped
            self._track(line, running, eliminated)
            if got != line["decisions"]:
                raise SeerError(
                    f"resume: policy {t.policy.name} decided differently on replay at decision {line['i']} "
                    f"({got[:3]} vs {line['decisions'][:3]}); the run cannot be resumed safely"
                )
            done += 1
        if done < calls:
            raise SeerError(f"resume: {t.run_dir / DECISIONS_FILE} holds {done} complete decisions, the "
                            f"journal counts {calls} (lines after line {done} are lost: a disk that filled "
                            "up or lost power?): the policy cannot be brought back to where it was; the "
                            f"run's results so far are in {t.run_dir / 'state.json'} and its trials' "
                            "checkpoints")
        t.journal.decide_calls = calls
        return running, eliminated, lines[:calls]

    def _track(self, line: dict[str, Any], running: dict[int, dict[str, Any]], eliminated: set[str]) -> None:
        """The jobs the policy believes running and the trials it eliminated, after ``line``."""
        for e in line["snapshot"]["events"]:
            running.pop(int(e["index"]), None)
        for d in line["decisions"]:
            if d["type"] == "Launch":
                running[int(d["trial_index"])] = d
            elif d["type"] in ("Eliminate", "Stop"):
                if d["type"] == "Eliminate":
                    eliminated.add(d["trial_id"])
                trial = self.t.book.trials.get(d["trial_id"])
                if trial is not None:
                    running.pop(trial.index, None)

    # ------------------------------------------------------------------ second half: act
    def restore(self) -> list[JobEvent]:
        """Stop and bill what the dead tuner left running, clean its temporary files, and carry
        out the jobs the policy believes running; returns the events to tell the policy. A run
        stopped before its plan (while profiling) profiles again and plans with the budget left."""
        t = self.t
        assert t.run_dir is not None
        if self.more_budget:
            atomic_write_text(t.run_dir / "experiment.toml", t.exp.to_toml())
            b = t.exp.budget
            t.event(f"more budget: the run goes on to {b.time_budget_s:g} s and {b.money_budget_usd:g} USD")
        self._stop_leftovers()
        if t.setup_budgets is None:
            if t.profile is None and t.exp.planner.profile is not None:
                t.profile = load_profile(t.exp.planner.profile)
            if not t.draw_times_s:
                t.draw_costs = draw_costs_needed(t.exp, t.profile)
            t.event("the run stopped before its plan: starting again from profiling, with the budget left")
            (t.run_dir / DECISIONS_FILE).unlink(missing_ok=True)
            t.setup_slots = t.backend.num_slots  # the policy is set up now, on these slots
            t.journal.write()
            t.start_policy()
            return []
        assert self.replayed is not None
        running, eliminated, lines = self.replayed
        path = t.run_dir / DECISIONS_FILE
        if path.exists() and path.read_text(encoding="utf-8").splitlines() != lines:
            # Lines past the journal's count were never reflected in it: drop them.
            atomic_write_text(path, "".join(x + "\n" for x in lines))
        for tid in eliminated:  # decided, perhaps not carried out before the tuner died
            trial = t.book.trials.get(tid)
            if trial is not None and trial.status not in BROKEN:
                trial.move_to(S.ELIMINATED)
                trial.eliminating = True
        for tid in self.undone_eliminated:  # eliminated by the decision made again: at its rung
            trial = t.book.trials.get(tid)
            if trial is not None and trial.status == S.ELIMINATED and tid not in eliminated:
                trial.status, trial.eliminating = S.PAUSED, False  # a resume's set-up, as from the journal
        events = self._carry_out(running) + self.undone_events
        for rec in t.book.rounds.values():
            rec.running = sum(1 for x in t.book.running.values() if x.round_index == rec.index)
        for trial in t.book.trials.values():
            t.book.touch(trial)
        t.journal.logged_views = {}
        t.journal.write()
        return events

    def _carry_out(self, running: dict[int, dict[str, Any]]) -> list[JobEvent]:
        """The jobs the policy believes running (launched and not yet reported to it): some ran
        when the tuner died, some had ended unreported, some were decided and never launched.
        Returns the events to tell the policy."""
        t, book = self.t, self.t.book
        assert t.run_dir is not None
        events: list[JobEvent] = []
        for index, job in sorted(running.items()):
            w, until, round_index = (
                int(job["world_size"]),
                int(job["until_epoch"]),
                int(job.get("round_index", 0)),
            )
            trial = book.trials_by_index.get(index)
            launched = trial is not None and trial.round_index == round_index and bool(trial.world_sizes)
            if launched and trial.status in ENDED:
                continue
            spec = None
            if launched:
                # Its progress is what its checkpoint holds (lines past it are not progress).
                spec = trial_job_spec(
                    t.exp,
                    trial.trial_id,
                    t.run_dir / "trials" / trial.trial_id,
                    w,
                    until,
                    configuration=trial.config,
                    config_index=trial.index,
                )
                # Lines lacking the metric fail the trial when its relaunched job ends (the loop's
                # read_results); one that reached its rung without it scores nothing there.
                update_from_rows(trial, t.backend.read_metrics(spec), t.exp.metric)
                if trial.epochs >= until:
                    trial.move_to(S.PAUSED)
                    book.touch(trial)
                    events.append(JobEvent(trial.trial_id, trial.index, "reached", trial.epochs, until, w))
                    continue
            if w > book.free_slots():
                # Decided with more slots than this resume has: the policy decides again, with
                # the slots there are now (the trial stays where its checkpoint is).
                trial = trial if trial is not None else t.loop.create_trial(index)
                trial.move_to(S.PAUSED)
                trial.round_index = round_index
                book.touch(trial)
                events.append(JobEvent(trial.trial_id, trial.index, "stopped", trial.epochs, until, w))
                t.event(
                    f"{trial.trial_id}: its job at W={w} does not fit the {book.free_slots()} free slot(s) "
                    f"of this resume; back to the policy at epoch {trial.epochs}"
                )
                continue
            if not launched:
                # Decided, never launched: launch it now, as the policy asked.
                t.loop.launch(Launch(index, w, until, round_index))
                if t.stop_reason is not None:
                    break
                continue
            reason = t.limits.over_budget(extra=t.limits.new_job(w))
            if reason:
                t.stop_reason = reason
                break
            assert spec is not None
            trial.handle = t.backend.launch(spec)
            trial.move_to(S.RUNNING)
            book.running[trial.trial_id] = trial
            where = (
                f"from its checkpoint at epoch {trial.epochs}"
                if trial.epochs
                else "from the start (it had no checkpoint)"
            )
            t.event(f"{trial.trial_id}: relaunched {where}, W={w}, until epoch {until}")
        return events

    def _stop_leftovers(self) -> None:
        """Stop and bill every job the dead tuner left (trials' and profile probes'), then
        remove the temporary files its killed writers left in the trial folders."""
        t = self.t
        assert t.run_dir is not None
        trial_dirs = sorted(d for d in (t.run_dir / "trials").glob("*") if d.is_dir())
        probe_dirs = sorted(d for d in (t.run_dir / "profile").rglob("*") if d.is_dir())
        for d in trial_dirs + probe_dirs:
            info = t.backend.kill_leftover(d)
            if info is not None:  # it ran, unbilled, from its launch until now
                w = int(info.get("world_size") or 1)
                held_s = max(0.0, float(info["end_unix_s"]) - float(info["launch_unix_s"]))
                usd = t.meter.bill_held(w, held_s)
                trial = t.book.trials.get(d.name) if d in trial_dirs else None
                rec = t.book.rounds.get(trial.round_index) if trial is not None else None
                if rec is not None:  # its round paid for it, and lasted until it ended
                    end_s = float(info["end_unix_s"]) - (time.time() - t.meter.elapsed_s())
                    rec.cost_usd += usd
                    rec.end_s = max(rec.end_s if rec.end_s is not None else end_s, end_s)
                what = (
                    "stopped the job the previous tuner left running"
                    if info.get("alive")
                    else "the job the previous tuner left had ended by itself"
                )
                t.event(f"{d.relative_to(t.run_dir)}: {what} ({held_s:.1f} s billed)")
        for d in trial_dirs:
            remove_worker_temporaries(d)
