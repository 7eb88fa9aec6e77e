"""The event loop: ask the policy for decisions (at the start and after every job event),
carry them out (launch a trial's job at ``W`` to an epoch, stop it, eliminate it), wait for
the next job to end, read what it reported (through the backend), say in one line why a failed
job failed (with the tail of its stderr, :mod:`~seer_torch.executor.failures`), retry it from its
checkpoint when its failure budget allows and a relaunch can help, and tell the policy. The
policy never sees the clock; the loop never decides who survives.

Kept-alive jobs (a backend that declares ``keeps_jobs_alive``): a job that reached its rung
parks, holding its slots, and the loop hears of it as of any job that reached its rung. A
later launch of the same trial at the same ``W`` hands the parked job its next target
(``continue_job``: no process start); a launch of another trial takes up a warm worker (a spare
left by an eliminated trial, or, when no slot is free, a parked job of a trial not launched in
the same decisions); otherwise parked jobs are released (``release``) as slots are needed, when
their trial is stopped, when they waited longer than a cold start costs (rent or buy), and at the
end. Policies never see parked jobs: their slots count as free. Every wait is billed.

Waiting: on a backend with ``discrete_events`` (the simulated one) the clock jumps to the next
job end or to the moment a hard limit would be reached, whichever is first; otherwise it polls
every :data:`~seer_torch.executor.budget.POLL_S` seconds.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seer_torch.backends.base import JobResult, job_error_text
from seer_torch.config import sample_configurations
from seer_torch.errors import ConfigError, SeerError
from seer_torch.executor import journal
from seer_torch.executor.budget import FINAL_GRACE_S, HANG_CHECK_S, LIMIT_TOL_S, POLL_S
from seer_torch.executor.context import trial_config, trial_job_spec
from seer_torch.executor.failures import (
    Failure,
    clean_exit_failure,
    crash_failure,
    diverged_reason,
    hung_failure,
    missing_metric_failure,
)
from seer_torch.executor.trials import BROKEN, ENDED, RoundRecord, Trial, TrialStatus, update_from_rows
from seer_torch.policies.base import Eliminate, Finish, JobEvent, Launch, Snapshot, Stop, policy_news
from seer_torch.runfiles import atomic_write_json, tensorboard_run_name

if TYPE_CHECKING:
    from seer_torch.executor.tuner import Tuner

MAX_PORT_RETRIES = 5  # relaunches after "address already in use", per trial
S = TrialStatus


class PolicyError(SeerError):
    """A policy asked for something the executor cannot do (a bug in the policy)."""


class EventLoop:
    """Carries out a tuner's policy on its backend (see the module docstring)."""

    def __init__(self, tuner: Tuner) -> None:
        self.t = tuner
        self.book = tuner.book
        self.backend = tuner.backend
        self.limits = tuner.limits
        exp = tuner.exp
        self.exp = exp
        self.configs: list[dict[str, Any]] = []
        self.fixed_configs = False
        self.failures: dict[str, Failure] = {}  # trial id -> how its job that just ended failed
        self.id_width = max(3, len(str(max(exp.search.max_configurations - 1, 0))))
        self._batch_launches: set[int] = set()  # trial indices the decisions being carried out launch
        self._wait_round: dict[int, int] = {}  # id(parked handle) -> the round its wait is billed to

    # ------------------------------------------------------------------ the loop
    def drive(self, events: list[JobEvent] | None = None) -> None:
        """Decide, act and wait until the policy finishes, has nothing left to run, or a hard
        limit ends the run (``tuner.stop_reason`` says which)."""
        t = self.t
        events = list(events or [])
        idle = 0
        while True:
            snap = self.snapshot(events)
            decisions = t.policy.decide(snap)
            t.journal.log_decide(snap, decisions)
            journal.debug_crash_point("decide")
            for line in policy_news(t.policy):
                t.event(line)
            events = []
            finish = self.apply(decisions, events)
            if finish is not None:
                t.stop_reason = t.stop_reason or finish.reason or None
                t.event("policy finished" + (f": {finish.reason}" if finish.reason else ""))
                return
            if t.stop_reason is not None:  # a hard limit refused the launches
                return
            t.provision()
            t.report.panels.log(t)
            t.tell_rounds()
            if not self.book.running:
                idle = 0 if events else idle + 1
                if idle >= 2:  # nothing runs and the policy asks for nothing: it is done
                    t.stop_reason = t.stop_reason or f"policy {t.policy.name} has nothing left to run"
                    return
                continue
            idle = 0
            events = self.wait()
            if t.stop_reason is not None:  # a hard limit stopped the jobs; the run ends
                return

    def snapshot(self, events: list[JobEvent]) -> Snapshot:
        """What the policy sees now (budgets left, slots, trial views, measurements)."""
        t, book = self.t, self.book
        return Snapshot(
            now_s=t.meter.elapsed_s(),
            time_left_s=max(0.0, self.limits.time_left_s()),
            money_left_usd=max(
                0.0,
                self.exp.budget.money_budget_usd
                - t.meter.cost_usd(book.held())
                - self.limits.money_reserve_usd(),
            ),
            num_slots=book.slots,
            free_slots=book.free_slots() + book.idle_slots(),
            trials=dict(book.views),
            events=tuple(events),
            epoch_time_s=max(book.tau_s.values()) if book.tau_s else None,
            job_overhead_s=statistics.fmean(book.overheads_s) if book.overheads_s else None,
            # A survivor goes on in its parked job; with none parked or running (after a resume,
            # or a deadline's stop), its next job is a cold start.
            continue_overhead_s=(
                (statistics.fmean(book.continue_overheads_s) if book.parked or book.running else
                 statistics.fmean(book.overheads_s) if book.overheads_s else None)
                if book.continue_overheads_s else None
            ),
            warm_start_overhead_s=(
                statistics.fmean(book.warm_overheads_s) if book.warm_overheads_s else None
            ),
            # on a cluster that rents machines: the median machine start measured so far
            machine_start_s=t.meter.held_nodes.machine_start_s() if t.meter.held_nodes is not None else None,
        )

    # ------------------------------------------------------------------ decisions
    def apply(self, decisions, events: list[JobEvent]) -> Finish | None:
        """Carry out ``decisions`` in order (events of jobs they stop go to ``events``);
        returns the :class:`Finish` if there is one (what follows it is not carried out)."""
        self._batch_launches = {d.trial_index for d in decisions if isinstance(d, Launch)}
        try:
            return self._apply(decisions, events)
        finally:
            self._batch_launches = set()
            spares, self.book.spares = self.book.spares, []
            self._release(*spares)  # warm workers no launch took up

    def _apply(self, decisions, events: list[JobEvent]) -> Finish | None:
        t = self.t
        for d in decisions:
            if isinstance(d, Finish):
                return d
            if isinstance(d, Launch):
                self.launch(d)
                if t.stop_reason is not None:
                    return None
            elif isinstance(d, (Stop, Eliminate)):
                self._stop_or_eliminate(d, events)
            else:
                raise PolicyError(f"policy {t.policy.name}: unknown decision {d!r}")
        if t.run_dir is not None and decisions:
            t.journal.write()
        return None

    def _stop_or_eliminate(self, d: Stop | Eliminate, events: list[JobEvent]) -> None:
        trial = self.book.trials.get(d.trial_id)
        if trial is None:
            raise PolicyError(
                f"policy {self.t.policy.name}: no trial {d.trial_id!r} to {type(d).__name__.lower()}"
            )
        if isinstance(d, Eliminate):
            trial.eliminating = True
        parked = self.book.parked.pop(trial.trial_id, None)
        if parked is not None:  # a spare warm worker for this decision batch, or released at once
            if isinstance(d, Eliminate):
                self.book.spares.append(parked)
            else:
                self._release(parked)
        if trial.handle is not None:
            ev = self.job_ended(trial, self.backend.stop(trial.handle))
            if ev is not None:
                events.append(ev)
        if isinstance(d, Eliminate) and trial.status not in BROKEN:
            trial.move_to(S.ELIMINATED)
            self.book.tau_s.pop(trial.trial_id, None)
            self.book.touch(trial)

    def launch(self, d: Launch) -> None:
        """Launch ``d``'s job, or end the run (``stop_reason``) when a hard limit forbids it.

        Raises:
            PolicyError: ``d`` is impossible (index, slots, epochs, or the trial's status).
        """
        t, book, exp = self.t, self.book, self.exp
        name = t.policy.name
        if not 0 <= d.trial_index < exp.search.max_configurations:
            raise PolicyError(
                f"policy {name}: trial index {d.trial_index} outside 0..{exp.search.max_configurations - 1}"
            )
        free = book.free_slots() + book.idle_slots()
        if d.world_size < 1 or d.world_size > free:
            raise PolicyError(f"policy {name}: launch at W={d.world_size} with {free} free slots")
        self._check_script()
        # A hard limit, counting what the new job would cost by the next check (with billing's
        # minimum): a launch that would break a budget ends the run instead.
        existing = book.trials_by_index.get(d.trial_index)
        parked = book.parked.get(existing.trial_id) if existing is not None else None
        held = parked is not None and parked.spec.world_size == d.world_size  # its slots are billed already
        reason = self.limits.over_budget(extra=[] if held else self.limits.new_job(d.world_size))
        if reason:
            t.stop_reason = reason
            t.event(f"{reason}: not launching trial index {d.trial_index} at W={d.world_size}")
            return
        trial = existing or self.create_trial(d.trial_index)
        if trial.handle is not None or trial.status in ENDED:
            raise PolicyError(f"policy {name}: cannot launch {trial.trial_id} ({trial.status})")
        if not trial.epochs < d.until_epoch <= exp.training.max_epochs:
            raise PolicyError(
                f"policy {name}: launch {trial.trial_id} to epoch {d.until_epoch} "
                f"from epoch {trial.epochs} (max_epochs {exp.training.max_epochs})"
            )
        trial_dir = t.run_dir / "trials" / trial.trial_id if t.run_dir is not None else Path(trial.trial_id)
        # The schedule's horizon is the policy's target at this launch, written at every launch:
        # a re-plan that lowered or raised the target moves it, and the worker re-anchors its
        # schedule at its checkpoint's step (worker.LrSchedule), so it ends where the trial will.
        trial.schedule_epochs = t.policy.schedule_epochs
        if t.run_dir is not None:
            atomic_write_json(
                trial_dir / "config.json",
                trial_config(
                    exp,
                    trial.trial_id,
                    trial.config,
                    t.run_dir / "tensorboard" / trial.tensorboard_run,
                    trial.schedule_epochs,
                ),
            )
        spec = trial_job_spec(
            exp,
            trial.trial_id,
            trial_dir,
            d.world_size,
            d.until_epoch,
            configuration=trial.config,
            config_index=trial.index,
        )
        trial.handle, how = self._start(trial, spec)
        trial.move_to(S.RUNNING)
        trial.round_index = d.round_index
        trial.world_sizes.append(d.world_size)
        book.running[trial.trial_id] = trial
        rec = book.rounds.get(d.round_index)
        if rec is None:
            rec = book.rounds[d.round_index] = RoundRecord(
                d.round_index, d.until_epoch, d.world_size, start_s=t.meter.elapsed_s()
            )
        rec.num_trials += 1
        rec.running += 1
        book.touch(trial)
        t.event(f"launched {trial.trial_id} at W={d.world_size} until epoch {d.until_epoch}{how}")
        if t.run_dir is not None:
            t.journal.write()
        journal.debug_crash_point("launch")

    def _start(self, trial: Trial, spec) -> tuple[Any, str]:
        """Start ``spec``'s job the cheapest way the backend offers, and say which (for the
        live status): the trial's own parked job at the same ``W`` goes on; else a warm worker
        takes it up (a spare; or, when no slot is free, the longest-parked job of a trial these
        decisions do not launch); else parked jobs are released until the slots are free and
        the job is launched."""
        book, backend = self.book, self.backend
        trial.start_kind = "launch"
        parked = book.parked.pop(trial.trial_id, None)
        if parked is not None:
            handle = backend.continue_job(parked, spec)
            if handle is not None:
                self._wait_round.pop(id(parked), None)  # its wait is billed with the new segment
                trial.start_kind = "continue"
                book.start_kinds["continue"] += 1
                return handle, " (kept alive)"
            self._release(parked)
        candidates = list(book.spares)
        if book.free_slots() < spec.world_size:
            candidates += [h for tid, h in sorted(book.parked.items(), key=lambda kv: kv[1].result.end_s)
                           if book.trials[tid].index not in self._batch_launches]
        for idle in candidates:
            if idle.spec.world_size != spec.world_size:
                continue
            handle = backend.continue_job(idle, spec)
            if handle is not None:
                self._forget_idle(idle)
                self._wait_round.pop(id(idle), None)  # its wait is billed with the new segment
                trial.start_kind = "warm"
                book.start_kinds["warm"] += 1
                return handle, f" (warm worker of {idle.spec.trial_id})"
        self._make_room(spec.world_size)
        book.start_kinds["launch"] += 1
        return backend.launch(spec), ""

    def _make_room(self, world_size: int) -> None:
        """Release parked jobs until ``world_size`` slots are free: spares first, then jobs of
        trials these decisions do not launch, oldest parked first, then any."""
        book = self.book

        def rank(h: Any) -> tuple[int, float]:
            tid = next((k for k, v in book.parked.items() if v is h), None)
            keep = tid is not None and book.trials[tid].index in self._batch_launches
            return (2 if keep else (0 if tid is None else 1), h.result.end_s)

        chosen = []
        for idle in sorted(book.idle_jobs(), key=rank):
            if book.free_slots() >= world_size:
                break
            self._forget_idle(idle)
            chosen.append(idle)
        self._release(*chosen)

    def _forget_idle(self, handle: Any) -> None:
        """Take ``handle`` out of the parked jobs or the spares."""
        book = self.book
        if handle in book.spares:
            book.spares.remove(handle)
        for tid, h in list(book.parked.items()):
            if h is handle:
                del book.parked[tid]

    def _release(self, *handles: Any) -> None:
        """End parked jobs, all at once (the backend's ``release_many``), and bill each wait to
        the round of the job that parked."""
        if not handles:
            return
        for handle, res in zip(handles, self.backend.release_many(list(handles))):
            usd = self.t.meter.bill(res)
            rec = self.book.rounds.get(self._wait_round.pop(id(handle), -1))
            if rec is not None and self.t.meter.reserved is None:
                rec.cost_usd += usd

    def release_idle(self, keep_alive_s: float | None = None) -> None:
        """Release parked jobs that waited longer than ``keep_alive_s`` (default: what a cold
        start costs, measured, or the profile's start-up: waiting longer than a relaunch costs
        is the worse bet, the rent-or-buy rule); ``0`` releases every one."""
        if keep_alive_s is None:
            keep_alive_s = self.keep_alive_s()
        now = self.t.clock.now()
        expired = [h for h in self.book.idle_jobs() if now >= h.result.end_s + keep_alive_s]
        for idle in expired:
            self._forget_idle(idle)
        self._release(*expired)

    def keep_alive_s(self) -> float:
        """How long a parked job may wait for its next order, seconds: the measured overhead of
        a cold start (the profile's start-up before any was measured)."""
        if self.book.overheads_s:
            return statistics.fmean(self.book.overheads_s)
        profile = self.t.profile
        return float(profile.startup_s) if profile is not None else 5.0

    def _check_script(self) -> None:
        """Before a job of a user's script starts: the script is still there.

        Raises:
            ConfigError: ``trial.script`` was deleted or moved since the run started. The run
                stops (running jobs are stopped at their checkpoints, ``results.json`` and the
                journal written); put the script back and ``seer resume RUN_DIR`` goes on.
        """
        script = self.exp.trial.script
        if script is not None and not Path(script).is_file():
            raise ConfigError(
                "trial.script", script,
                "an existing file: it was deleted or moved after the run started; put it back and "
                f"continue with `seer resume {self.t.run_dir}`",
            )

    def create_trial(self, index: int) -> Trial:
        """The trial of configuration ``index`` (drawn from the search space, seeded per index,
        unless the tuner was given its configurations), with its folder."""
        while not self.fixed_configs and len(self.configs) <= index:  # seeded per index: lazily is the same
            self.configs = sample_configurations(self.exp, max(index + 1, 2 * len(self.configs)))
        tid = f"t{index:0{self.id_width}d}"
        config = self.configs[index]
        fixed = {p.name for p in self.exp.search_space
                 if p.kind == "fixed" or (p.kind == "choice" and len(p.choices) == 1)}
        trial = Trial(trial_id=tid, config=config, index=index,
                      tensorboard_run=tensorboard_run_name(tid, config, leave_out=fixed))
        if self.t.run_dir is not None:  # its config.json is written at each launch (launch)
            (self.t.run_dir / "trials" / tid).mkdir(parents=True, exist_ok=True)
        self.book.add(trial)
        return trial

    # ------------------------------------------------------------------ waiting
    def wait(self) -> list[JobEvent]:
        """Wait until a job ends (its events) or a hard limit is reached (jobs stopped)."""
        t = self.t
        while True:
            t.observe_nodes()
            ended = self._poll_all()
            if ended:
                if t.run_dir is not None:
                    t.journal.write()
                journal.debug_crash_point("job_end")
                return ended
            reason = self.limits.over_budget()
            if reason:
                t.stop_reason = reason
                t.event(f"{reason}: stopping {len(self.book.running)} running job(s)")
                return self.stop_all()
            self.release_idle()
            t.provision()  # a parked job released above frees its machine
            if not self.backend.discrete_events:
                self.backend.wait_for_news(POLL_S)  # a job that parks ends the wait at once
                continue
            now = t.clock.now()
            horizon = min(self.backend.next_event_s(), self.limits.deadline_s(), self._next_hang_s(now),
                          self._next_release_s())
            t_limit = self.limits.limit_time_s(now, horizon)
            if t_limit <= now + LIMIT_TOL_S:  # at the limit: stop now, still within budget
                t.stop_reason = self.limits.over_budget(now + 2 * LIMIT_TOL_S) or "money budget reached"
                t.event(f"{t.stop_reason}: stopping {len(self.book.running)} running job(s)")
                return self.stop_all()
            t.clock.sleep(max(0.0, min(horizon, t_limit) - now))

    def _poll_all(self) -> list[JobEvent]:
        """Poll every running job (killing those that hung); the events of those that ended."""
        ended = []
        for trial in list(self.book.running.values()):
            res = self.backend.poll(trial.handle)
            if res is None and self._hung(trial):
                trial.hung = True
                hang_s = self.exp.failures.hang_timeout_s
                self.t.event(f"{trial.trial_id}: no progress for {hang_s:g} s: killing its job")
                res = self.backend.stop(trial.handle)
            if res is not None:
                ev = self.job_ended(trial, res)
                if ev is not None:
                    ended.append(ev)
        return ended

    def _hung(self, trial: Trial) -> bool:
        """Whether a running job made no progress for ``failures.hang_timeout_s`` (backends
        that declare ``detects_hangs``)."""
        if not self.backend.detects_hangs:
            return False
        now = self.t.clock.now()
        if not self.backend.discrete_events:  # real jobs: look at their files every HANG_CHECK_S only
            if now - trial.hang_checked_s < HANG_CHECK_S:
                return False
            trial.hang_checked_s = now
        return self.backend.seconds_since_progress(trial.handle) >= self.exp.failures.hang_timeout_s

    def _next_release_s(self) -> float:
        """When the first parked job's wait passes :meth:`keep_alive_s` (simulated backends)."""
        idle = self.book.idle_jobs()
        return idle[0].result.end_s + self.keep_alive_s() if idle else math.inf

    def _next_hang_s(self, now: float) -> float:
        """When the first running job would be declared hung (simulated backends)."""
        if not self.backend.detects_hangs or not self.book.running:
            return math.inf
        hang = self.exp.failures.hang_timeout_s
        since = self.backend.seconds_since_progress
        return now + min(max(0.0, hang - since(x.handle)) for x in self.book.running.values())

    def stop_all(self) -> list[JobEvent]:
        """Stop every running job at once (``stop_many``), bill it and record what it completed;
        release every parked job."""
        self.release_idle(0.0)
        trials = list(self.book.running.values())
        results = self.backend.stop_many([x.handle for x in trials])
        events = [self.job_ended(x, r) for x, r in zip(trials, results)]
        return [e for e in events if e is not None]

    # ------------------------------------------------------------------ results of a job
    def job_ended(self, trial: Trial, res: JobResult) -> JobEvent | None:
        """Bill a job that ended, read what its trial reported, and say how it ended; ``None``
        when a crashed or hung job was relaunched from its checkpoint (the policy never hears of
        a failure the retry budget absorbs)."""
        meter, book = self.t.meter, self.book
        del book.running[trial.trial_id]
        handle, trial.handle = trial.handle, None
        usd = meter.bill(res)
        rec = book.rounds.get(trial.round_index)
        if rec is not None:
            rec.cost_usd += (
                usd
                if meter.reserved is None
                else meter.billing.job_cost_usd(res.spec.world_size, res.duration_s)
            )
            rec.running -= 1
            rec.end_s = meter.elapsed_s()
        outcome = self.read_results(trial, res)
        if res.parked:  # alive, holding its slots: kept for the trial's next rung, or released
            if outcome == "reached":
                book.parked[trial.trial_id] = handle
                self._wait_round[id(handle)] = trial.round_index
            else:
                self._release(handle)
        failure = self.failures.pop(trial.trial_id, None)
        if outcome == "failed" and (failure is None or failure.retry) and self._retry(trial, res):
            return None
        book.touch(trial)
        if outcome in ("failed", "diverged"):
            book.tau_s.pop(trial.trial_id, None)
            self.t.event(self._ended_badly(trial, failure))
        return JobEvent(
            trial.trial_id, trial.index, outcome, trial.epochs, res.spec.until_epoch, res.spec.world_size
        )

    def read_results(self, trial: Trial, res: JobResult) -> str:
        """Update ``trial`` from what its ended job left (its durable metrics lines, through
        the backend) and return the job's outcome: ``reached``, ``stopped``, ``failed`` or
        ``diverged``."""
        rows = self.backend.read_metrics(res.spec)
        prev_epochs = trial.epochs
        new_rows = [r for r in rows if r.get("epoch", 0) > prev_epochs]
        trial.trained_slot_s += sum(
            float(r.get("epoch_time_s") or 0.0) * int(r.get("world_size") or 1) for r in new_rows
            if not r.get("diverged")
        )
        diverged = [r for r in rows if r.get("diverged")]
        if diverged:
            trial.move_to(S.DIVERGED)
            trial.error = diverged_reason(diverged[-1])
            return "diverged"
        missing_metric = update_from_rows(trial, rows, self.book.objective.metric)
        if res.stopped and not trial.hung:
            trial.move_to(S.ELIMINATED if trial.eliminating else S.PAUSED)
            return "stopped"
        failure, log = None, None
        if trial.hung:
            trial.hung = False
            failure = hung_failure(self.exp.failures.hang_timeout_s)
        elif missing_metric is not None:  # the script reports other names than the experiment's metric
            failure = missing_metric_failure(missing_metric)
        elif res.returncode != 0 and trial.epochs >= res.spec.until_epoch:
            # It saved its target before it died (a kept-alive job killed while it waited at
            # its rung): the rung is reached; the next job starts from that checkpoint.
            self.t.event(f"{trial.trial_id}: its job ended with {res.returncode} after saving epoch "
                         f"{trial.epochs}, its target: nothing to retry")
        elif res.returncode != 0:
            log = self.backend.job_log(res.spec)
            failure = crash_failure(job_error_text(res), log, res.spec.world_size)
        elif trial.epochs < res.spec.until_epoch:  # exited cleanly short of its target
            failure = clean_exit_failure(
                before_epoch=prev_epochs,
                durable_epoch=trial.epochs,
                reported_epoch=self.backend.reported_epoch(res.spec),
                until_epoch=res.spec.until_epoch,
            )
        if failure is not None:
            trial.move_to(S.FAILED)
            trial.error = failure.reason
            trial.stderr_tail = list((log or self.backend.job_log(res.spec)).tail)
            self.failures[trial.trial_id] = failure
            return "failed"
        trial.move_to(S.PAUSED)
        self._measure(trial, res, new_rows)
        return "reached"

    def _measure(self, trial: Trial, res: JobResult, new_rows: list[dict[str, Any]]) -> None:
        """What a job that reached its rung measured: its epochs' times at their W, the trial's
        one-epoch time on one worker (:attr:`Trial.tau_s`), and the job's overhead."""
        profile = self.t.profile
        for r in new_rows:
            if r.get("epoch_time_s") and r.get("world_size"):
                w = int(r["world_size"])
                s = profile.scaling.speedup_at(w) if profile else 1.0
                trial.epoch_time_per_worker_s.append(float(r["epoch_time_s"]) * s)
                trial.epoch_times_by_world_s.setdefault(w, []).append(float(r["epoch_time_s"]))
        if trial.tau_s is not None:
            self.book.tau_s[trial.trial_id] = trial.tau_s
        trained_s = sum(float(r.get("epoch_time_s") or 0.0) for r in new_rows)
        overhead_s = max(0.0, res.duration_s - res.wait_s - trained_s)
        kind = trial.start_kind
        slot_s = self.book.start_slot_s
        slot_s[kind] = slot_s.get(kind, 0.0) + overhead_s * res.spec.world_size
        if kind == "continue":
            self.book.continue_overheads_s.append(overhead_s)
        elif kind == "warm":
            self.book.warm_overheads_s.append(overhead_s)
        else:
            self.book.overheads_s.append(overhead_s)

    @staticmethod
    def _ended_badly(trial: Trial, failure: Failure | None) -> str:
        """The live status's event for a trial that failed or diverged: its one-line reason,
        why it was not retried, and the tail of its stderr (indented lines after the first)."""
        if trial.status == S.DIVERGED:
            return f"{trial.trial_id} diverged: {trial.error}"
        msg = f"{trial.trial_id} failed: {trial.error}"
        if failure is not None and not failure.retry:
            msg += f" (not retried: {failure.why_not})"
        elif trial.failures:
            msg += f" (after {trial.failures} retr{'y' if trial.failures == 1 else 'ies'})"
        if trial.stderr_tail:
            msg += "\n" + "\n".join(f"    | {line}" for line in trial.stderr_tail)
        return msg

    def _retry(self, trial: Trial, res: JobResult) -> bool:
        """Relaunch a failed job from the trial's checkpoint, same ``W`` and target, if its
        failure budget allows (a rendezvous-port clash never counts) and the budgets do."""
        failures = self.exp.failures
        script = self.exp.trial.script
        if script is not None and not Path(script).is_file():  # the next launch stops the run
            self.t.event(f"{trial.trial_id}: not retried: trial.script {script} was deleted or moved")
            return False
        port_clash = "address already in use" in (trial.error or "").lower() or "EADDRINUSE" in (
            trial.error or ""
        )
        if port_clash and trial.port_retries < MAX_PORT_RETRIES:
            trial.port_retries += 1
        elif trial.failures < failures.max_failures:
            trial.failures += 1
        else:
            return False
        if self.t.stop_reason is not None or self.limits.over_budget(
            extra=self.limits.new_job(res.spec.world_size)
        ):
            return False
        self._make_room(res.spec.world_size)
        if res.spec.world_size > self.book.free_slots():
            return False
        what = "port clash" if port_clash else f"failure {trial.failures} of {failures.max_failures}"
        where = f"its checkpoint at epoch {trial.epochs}" if trial.epochs else "the start (nothing saved yet)"
        self.t.event(f"{trial.trial_id} failed ({trial.error}); retrying from {where} ({what})")
        trial.error = None
        trial.stderr_tail = []
        trial.handle = self.backend.launch(res.spec)
        trial.start_kind = "launch"
        trial.move_to(S.RUNNING)
        self.book.running[trial.trial_id] = trial
        rec = self.book.rounds.get(trial.round_index)
        if rec is not None:
            rec.running += 1
        return True


__all__ = ["EventLoop", "PolicyError", "MAX_PORT_RETRIES", "FINAL_GRACE_S"]
