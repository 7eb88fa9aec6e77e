"""The executor: carries out SEER's plan against a backend, with a clock and a budget meter.

One run (``seer tune``):

1. Write ``experiment.toml``; draw ``search.max_configurations`` configurations from the seed.
2. Profile (unless a profile file is given): probe jobs through the real worker at W=1 and
   W=2, alone, a few steps each, warm-up excluded. Their time and slot-seconds are billed.
3. Plan with :func:`seer_torch.policies.seer.plan` against the budget that is left.
4. For each round: before it starts, re-plan the remaining rounds' world sizes from what was
   measured (epoch time per worker, launch overhead) and the budget actually left, and never
   start a round the plan predicts would break a budget. Launch each surviving trial's job as
   soon as its W slots are free (never more workers than slots), wait for every trial of the
   rung to report, then keep the best ``n_{k+1}`` by validation accuracy at the rung.
5. Hard limits: at the deadline (less a short grace to write the answer) or when the money
   meter reaches the budget, running jobs are stopped (checkpoints kept) and the answer is the
   best trial of the last completed rung.

Money is metered as slot-seconds x ``price_usd_per_slot_hour`` / 3600: each job holds W slots
from launch to exit. Time is wall clock from the start of the run, overheads included.
The journal ``state.json`` is rewritten atomically at every event; ``results.json`` at the end.

Decisions (which trials survive, which W) come from pure functions; this module only acts.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from seer_torch.backends.base import Backend, JobResult, JobSpec, job_error_text
from seer_torch.clock import Clock, RealClock
from seer_torch.config import Experiment, sample_configurations
from seer_torch.errors import BudgetExhausted, ConfigError
from seer_torch.policies import seer as seer_policy
from seer_torch.runfiles import atomic_write_json, atomic_write_text, read_metrics
from seer_torch.scaling import profiler
from seer_torch.scaling.profile import Profile, load_profile

POLL_S = 0.2
FINAL_GRACE_S = 3.0  # stop jobs this long before the deadline, to write the answer in time


@dataclass
class Trial:
    """One configuration's training across rounds (one directory under ``trials/``)."""

    trial_id: str
    config: dict[str, Any]
    status: str = "pending"  # pending | running | paused | eliminated | completed | stopped | failed | diverged
    epochs: int = 0
    rung_val_accuracy: dict[int, float] = field(default_factory=dict)
    val_accuracy: float | None = None
    test_accuracy_by_epoch: dict[int, float] = field(default_factory=dict)
    world_sizes: list[int] = field(default_factory=list)
    epoch_time_per_worker_s: list[float] = field(default_factory=list)  # tau estimates
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "config": self.config,
            "status": self.status,
            "epochs": self.epochs,
            "val_accuracy": self.val_accuracy,
            "test_accuracy_by_epoch": {str(k): v for k, v in self.test_accuracy_by_epoch.items()},
            "rung_val_accuracy": {str(k): v for k, v in self.rung_val_accuracy.items()},
            "world_sizes": self.world_sizes,
            "error": self.error,
        }


@dataclass
class RoundRecord:
    index: int
    rung_epoch: int
    num_trials: int
    world_size: int
    start_s: float
    end_s: float | None = None
    cost_usd: float = 0.0
    completed: bool = False
    predicted_duration_s: float | None = None
    predicted_cost_usd: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Meter:
    """Time and money spent, read from the injected clock."""

    def __init__(self, clock: Clock, price_usd_per_slot_hour: float) -> None:
        self.clock = clock
        self.price = price_usd_per_slot_hour
        self.start_s = clock.now()
        self.finished_slot_s = 0.0

    def elapsed_s(self) -> float:
        return self.clock.now() - self.start_s

    def bill(self, result: JobResult) -> None:
        self.finished_slot_s += result.slot_seconds

    def cost_usd(self, running: list[tuple[float, int]] = ()) -> float:
        """Money spent, including jobs still running (``(start_s, world_size)`` each)."""
        now = self.clock.now()
        slot_s = self.finished_slot_s + sum((now - s) * w for s, w in running)
        return slot_s * self.price / 3600.0


def select_survivors(trials: list[Trial], rung_epoch: int, keep: int) -> list[Trial]:
    """The ``keep`` best trials by validation accuracy at ``rung_epoch``.

    Only trials that reached the rung with a finite accuracy are eligible (failed and diverged
    trials rank last and never survive). Ties break by trial id, so the choice is
    deterministic. Pure.
    """
    eligible = [
        t for t in trials
        if rung_epoch in t.rung_val_accuracy and math.isfinite(t.rung_val_accuracy[rung_epoch])
    ]
    eligible.sort(key=lambda t: (-t.rung_val_accuracy[rung_epoch], t.trial_id))
    return eligible[:keep]


def best_trial(trials: list[Trial], completed_rungs: list[int]) -> tuple[Trial, int] | None:
    """The answer: the best trial of the last completed rung that has a valid result.

    Walks back from the last completed rung, so a finalist that diverged is never the answer
    and the best trial of the rung before is returned instead. Returns ``(trial, rung_epoch)``
    or ``None`` when no rung was completed. Pure.
    """
    for rung in reversed(completed_rungs):
        ranked = select_survivors([t for t in trials if t.status != "diverged"], rung, 1)
        if ranked:
            return ranked[0], rung
    return None


def trial_config(
    exp: Experiment,
    trial_id: str,
    configuration: dict[str, Any],
    tensorboard_dir: Path | None,
    schedule_epochs: int | None = None,
) -> dict[str, Any]:
    """A trial's ``config.json`` content: what the worker reads. Pure.

    ``schedule_epochs`` is the horizon of the learning-rate schedule (the worker's
    ``max_epochs``): the plan's target, which is ``training.max_epochs`` unless the plan
    explores first and stops the best configuration earlier.
    """
    return {
        "trial_id": trial_id,
        "configuration": configuration,
        "model": exp.model.name,
        "dataset": exp.data.dataset,
        "data_dir": exp.data.data_dir,
        "global_batch": exp.training.global_batch,
        "micro_batch_max": exp.training.micro_batch_max,
        "max_epochs": schedule_epochs or exp.training.max_epochs,
        "seed": exp.seed,
        "tensorboard_dir": str(Path(tensorboard_dir).resolve()) if tensorboard_dir is not None else None,
    }


def planner_inputs(
    exp: Experiment,
    profile: Profile,
    *,
    num_slots: int,
    time_left_s: float,
    money_left_usd: float,
    epoch_time_s: float | None = None,
    relaunch_s: float | None = None,
) -> seer_policy.PlannerInputs:
    """The planner's inputs from an experiment, a profile and the budgets left.

    ``epoch_time_s`` and ``relaunch_s`` override the profile's with measured values (seconds;
    one epoch on one worker, and one job's fixed cost). Negative budgets left count as 0. Pure.
    """
    t = exp.training
    return seer_policy.PlannerInputs(
        max_epochs=t.max_epochs,
        min_epochs=t.min_epochs,
        eta=t.eta,
        max_configurations=exp.search.max_configurations,
        num_slots=num_slots,
        world_size_ladder=exp.usable_world_sizes(),
        epoch_time_s=epoch_time_s if epoch_time_s is not None else profile.epoch_time_s,
        scaling=profile.scaling,
        startup_s=profile.startup_s,
        relaunch_s=relaunch_s if relaunch_s is not None else profile.resize_s,
        resize_s=relaunch_s if relaunch_s is not None else profile.resize_s,
        time_budget_s=max(0.0, time_left_s),
        money_budget_usd=max(0.0, money_left_usd),
        price_usd_per_slot_hour=exp.budget.price_usd_per_slot_hour,
        safety_fraction=exp.planner.safety_fraction,
    )


class Tuner:
    """Runs one experiment on a backend. See the module docstring for the steps.

    Args:
        experiment: the validated experiment.
        run_dir: where the run's files go (created; must not hold a previous run).
        backend: where jobs run; ``backend.num_slots`` is the slot limit.
        clock: the clock all budget arithmetic reads.
        on_event: called with a one-line message at each event (the CLI's live status).
    """

    def __init__(
        self,
        experiment: Experiment,
        run_dir: Path,
        backend: Backend,
        clock: Clock | None = None,
        on_event: Callable[[str, dict[str, Any]], None] = lambda msg, status: None,
    ) -> None:
        self.exp = experiment
        self.run_dir = Path(run_dir)
        self.backend = backend
        self.clock = clock or RealClock()
        self.on_event = on_event
        self.meter = Meter(self.clock, experiment.budget.price_usd_per_slot_hour)
        self.trials: list[Trial] = []
        self.rounds: list[RoundRecord] = []
        self.profile: Profile | None = None
        self.initial_plan: seer_policy.Plan | None = None
        self.plans: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.completed_rungs: list[int] = []
        self._running: dict[str, tuple[Any, Trial]] = {}  # the current round's jobs
        self.start_unix_s = time.time()
        self._tb = None

    # ------------------------------------------------------------------ the run
    def run(self) -> dict[str, Any]:
        """Run the experiment to its answer and return the ``results.json`` content.

        Whatever happens (the answer, a budget spent while profiling, an interrupt, an error),
        running jobs are stopped and billed, and ``results.json`` and ``state.json`` are written
        with what was completed; ``stop_reason`` says why the run ended early.

        Raises:
            ConfigError: the run directory already holds files.
            WorkerError: a profile probe failed.
            KeyboardInterrupt: interrupted (SIGINT, or SIGTERM/SIGHUP through the CLI).
        """
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise ConfigError("--run-dir", str(self.run_dir), "a new or empty directory (this one holds files)")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "experiment.toml", self.exp.to_toml())
        status = "interrupted"
        try:
            self._event("profiling" if self.exp.planner.profile is None else "reading profile")
            self.profile = self._get_profile()
            plan = seer_policy.plan(self._planner_inputs())
            self.initial_plan = plan
            self.plans.append({"at_s": self.meter.elapsed_s(), "plan": plan.to_dict()})
            self._event(f"plan: {plan.message}")
            if not plan.rounds:
                self.stop_reason = plan.message
            self._create_trials(plan.num_configurations)
            self._run_rounds(list(plan.rounds))
            status = "finished"
        except BudgetExhausted as e:
            self.stop_reason = str(e)
            status = "finished"
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            raise
        except BaseException as e:
            self.stop_reason = f"error: {e}"
            status = "failed"
            raise
        finally:
            self._stop_running()
            stop_all = getattr(self.backend, "stop_all", None)
            if stop_all is not None:
                stop_all()
            for t in self.trials:
                if t.status in ("paused", "running"):
                    t.status = "stopped"
            if self._tb is not None:
                self._tb.close()
            results = self._results()
            atomic_write_json(self.run_dir / "results.json", results)
            self._journal(status=status)
            self._event(status + (f": {self.stop_reason}" if self.stop_reason else ""))
        return results

    def _stop_running(self) -> None:
        """Stop every job of the current round, bill it and record what it completed."""
        for handle, trial in list(self._running.values()):
            res = self.backend.stop(handle)
            self.meter.bill(res)
            self._job_done(trial, res, res.spec.until_epoch)
            trial.status = "stopped"
        self._running.clear()

    # ------------------------------------------------------------------ profile and plan
    def _trial_config(self, trial_id: str, configuration: dict[str, Any]) -> dict[str, Any]:
        target = self.initial_plan.target_epochs if self.initial_plan and self.initial_plan.rounds else None
        return trial_config(self.exp, trial_id, configuration, self.run_dir / "tensorboard" / trial_id, target)

    def _get_profile(self) -> Profile:
        if self.exp.planner.profile is not None:
            return load_profile(self.exp.planner.profile)
        # Probe configuration 0 with every `choices` hyperparameter at its last listed value
        # (list model-size choices in ascending order and the profile is the conservative one).
        probe_conf = sample_configurations(self.exp, 1)[0]
        for p in self.exp.search_space:
            if p.kind == "choice":
                probe_conf[p.name] = p.choices[-1]
        sizes = [w for w in self.exp.usable_world_sizes() if w <= 2]
        probes = profiler.run_probes(
            self.backend,
            self.clock,
            self.run_dir / "profile",
            self._trial_config("profile", probe_conf),
            sizes,
            on_job_end=self.meter.bill,
            over_budget=self._over_budget,
        )
        prof = profiler.profile_from_probes(
            f"{self.exp.name}-measured",
            probes,
            source=f"measured by seer tune at the start of {self.run_dir.name}: "
            f"{profiler.PROFILE_STEPS} steps after 3 warm-up steps per world size",
        )
        atomic_write_json(self.run_dir / "profile.json", prof.to_dict())
        return prof

    def _planner_inputs(self, epoch_time_s: float | None = None, relaunch_s: float | None = None):
        assert self.profile is not None
        return planner_inputs(
            self.exp,
            self.profile,
            num_slots=self.backend.num_slots,
            time_left_s=self.exp.budget.time_budget_s - self.meter.elapsed_s() - FINAL_GRACE_S,
            money_left_usd=self.exp.budget.money_budget_usd - self.meter.cost_usd(),
            epoch_time_s=epoch_time_s,
            relaunch_s=relaunch_s,
        )

    def _create_trials(self, n: int) -> None:
        width = max(3, len(str(max(n - 1, 0))))
        for i, conf in enumerate(sample_configurations(self.exp, n)):
            tid = f"t{i:0{width}d}"
            d = self.run_dir / "trials" / tid
            d.mkdir(parents=True, exist_ok=True)
            atomic_write_json(d / "config.json", self._trial_config(tid, conf))
            self.trials.append(Trial(trial_id=tid, config=conf))
        self._journal()

    # ------------------------------------------------------------------ rounds
    def _run_rounds(self, remaining: list) -> None:
        alive = list(self.trials)
        prev_rung, prev_w = 0, 0
        job_overheads: list[float] = []
        completed_rungs = self.completed_rungs
        truncated: str | None = None  # why the rounds left were cut short by a re-plan
        while remaining:
            rp = remaining[0]
            if self.rounds:  # re-plan with what was measured and what is left
                tau = self._measured_epoch_time_s(alive)
                relaunch = statistics.fmean(job_overheads) if job_overheads else None
                rungs = tuple(r.rung_epoch for r in remaining)
                counts = tuple(min(r.num_trials, len(alive)) for r in remaining)
                new = seer_policy.replan(
                    self._planner_inputs(epoch_time_s=tau, relaunch_s=relaunch),
                    rungs=rungs,
                    survivors=counts,
                    current_epoch=prev_rung,
                    current_world_size=prev_w,
                    first_round_index=len(self.rounds) + 1,
                    planned_world_sizes=tuple(r.world_size for r in remaining),
                )
                self.plans.append({"at_s": self.meter.elapsed_s(), "plan": new.to_dict()})
                if not new.rounds:
                    self.stop_reason = f"budget left cannot pay for round {len(self.rounds) + 1}: {new.message}"
                    self._event(self.stop_reason)
                    break
                if not new.feasible:
                    truncated = new.message
                    self._event(f"re-plan: {new.message}")
                remaining = list(new.rounds)
                rp = remaining[0]
            record = RoundRecord(
                index=len(self.rounds) + 1,
                rung_epoch=rp.rung_epoch,
                num_trials=len(alive),
                world_size=rp.world_size,
                start_s=self.meter.elapsed_s(),
                predicted_duration_s=rp.predicted_duration_s,
                predicted_cost_usd=rp.predicted_cost_usd,
            )
            self.rounds.append(record)
            cost_before = self.meter.cost_usd()
            overheads = self._run_round(record, alive)
            job_overheads = overheads or job_overheads
            record.end_s = self.meter.elapsed_s()
            record.cost_usd = self.meter.cost_usd() - cost_before
            if self.stop_reason is not None:
                self._journal()
                break
            record.completed = True
            completed_rungs.append(record.rung_epoch)
            remaining = remaining[1:]
            keep = remaining[0].num_trials if remaining else len(alive)
            survivors = select_survivors(alive, record.rung_epoch, keep)
            for t in alive:
                if t in survivors:
                    t.status = "paused" if remaining else "completed"
                elif t.status not in ("failed", "diverged"):
                    t.status = "eliminated"
            alive = survivors
            prev_rung, prev_w = record.rung_epoch, record.world_size
            self._tensorboard_round(record, alive)
            self._event(
                f"round {record.index} done: rung {record.rung_epoch} epochs, "
                f"{len(alive)} survive" + ("" if remaining else " (final)")
            )
            if not alive:
                self.stop_reason = "no trial has a valid result at the last rung"
                break
        if self.stop_reason is None and truncated is not None:
            self.stop_reason = truncated
        for t in self.trials:
            if t.status == "paused":
                t.status = "stopped"

    def _run_round(self, record: RoundRecord, trials: list[Trial]) -> list[float]:
        """Train every trial to the round's rung; returns each job's launch overhead (s)."""
        w = record.world_size
        queue = list(trials)
        running = self._running
        overheads: list[float] = []
        while queue or running:
            for tid, (handle, trial) in list(running.items()):
                res = self.backend.poll(handle)
                if res is not None:
                    del running[tid]
                    self.meter.bill(res)
                    ov = self._job_done(trial, res, record.rung_epoch)
                    if ov is not None:
                        overheads.append(ov)
                    self._journal()
            # Hard limits: the deadline, and the money meter with what is running now.
            reason = self._over_budget([(h.start_s, h.spec.world_size) for h, _ in running.values()])
            over_time, over_money = reason == "deadline reached", reason == "money budget reached"
            if running and reason:
                self.stop_reason = reason
                self._event(f"{self.stop_reason}: stopping {len(running)} running job(s)")
                self._stop_running()
                self._journal()
                return overheads
            free = self.backend.num_slots - sum(h.spec.world_size for h, _ in running.values())
            launched = False
            while queue and free >= w and not (over_time or over_money):
                trial = queue.pop(0)
                spec = JobSpec(trial.trial_id, self.run_dir / "trials" / trial.trial_id, w, record.rung_epoch)
                handle = self.backend.launch(spec)
                trial.status = "running"
                trial.world_sizes.append(w)
                running[trial.trial_id] = (handle, trial)
                free -= w
                launched = True
                self._event(f"launched {trial.trial_id} at W={w} until epoch {record.rung_epoch}")
            if launched:
                self._journal()  # the journal shows which trials are running
            if (over_time or over_money) and queue and not running:
                self.stop_reason = "deadline reached" if over_time else "money budget reached"
                return overheads
            self.clock.sleep(POLL_S)
        return overheads

    def _over_budget(self, held: list[tuple[float, int]]) -> str | None:
        """Whether a hard limit is reached, given the jobs held (``(start_s, world_size)``):
        the deadline less the grace to write the answer, or the money meter plus what the held
        slots will cost until the next poll and their stop."""
        budget = self.exp.budget
        if self.meter.elapsed_s() >= budget.time_budget_s - FINAL_GRACE_S:
            return "deadline reached"
        margin_usd = sum(w for _, w in held) * (POLL_S + 1.0) * budget.price_usd_per_slot_hour / 3600
        if self.meter.cost_usd(held) + margin_usd >= budget.money_budget_usd:
            return "money budget reached"
        return None

    def _job_done(self, trial: Trial, res: JobResult, rung_epoch: int) -> float | None:
        """Read the trial's files after its job ended; return the job's overhead in seconds."""
        d = res.spec.trial_dir
        rows = read_metrics(d / "metrics.jsonl")
        prev_epochs = trial.epochs
        new_rows = [r for r in rows if r.get("epoch", 0) > prev_epochs]
        if any(r.get("diverged") for r in rows):
            trial.status = "diverged"
            trial.error = "training loss became NaN or infinite"
            trial.val_accuracy = None
            return None
        if rows:
            last = rows[-1]
            trial.epochs = int(last["epoch"])
            trial.val_accuracy = last.get("val_accuracy")
            for r in rows:
                if r.get("val_accuracy") is not None:
                    trial.rung_val_accuracy[int(r["epoch"])] = float(r["val_accuracy"])
                if r.get("test_accuracy") is not None:
                    trial.test_accuracy_by_epoch[int(r["epoch"])] = float(r["test_accuracy"])
        # Only rung epochs count for elimination; drop the in-between ones.
        trial.rung_val_accuracy = {
            e: v for e, v in trial.rung_val_accuracy.items() if e in {r.rung_epoch for r in self.rounds}
        }
        if res.stopped:
            return None
        if res.returncode != 0 or trial.epochs < rung_epoch:
            trial.status = "failed"
            trial.error = job_error_text(res)
            self._event(f"{trial.trial_id} failed: {trial.error}")
            return None
        trial.status = "paused"
        for r in new_rows:
            if r.get("epoch_time_s") and r.get("world_size"):
                s = self.profile.scaling.speedup_at(int(r["world_size"])) if self.profile else 1.0
                trial.epoch_time_per_worker_s.append(float(r["epoch_time_s"]) * s)
        trained_s = sum(float(r.get("epoch_time_s") or 0.0) for r in new_rows)
        return max(0.0, res.duration_s - trained_s)

    def _measured_epoch_time_s(self, alive: list[Trial]) -> float | None:
        """tau for re-planning: the slowest survivor's median measured epoch time per worker."""
        per_trial = [statistics.median(t.epoch_time_per_worker_s) for t in alive if t.epoch_time_per_worker_s]
        return max(per_trial) if per_trial else None

    # ------------------------------------------------------------------ reporting
    def status(self) -> dict[str, Any]:
        b = self.exp.budget
        return {
            "round": len(self.rounds),
            "rounds_planned": len(self.initial_plan.rounds) if self.initial_plan else None,
            "trials": len(self.trials),
            "trials_alive": sum(t.status in ("pending", "running", "paused", "completed") for t in self.trials),
            "running": sum(t.status == "running" for t in self.trials),
            "time_used_s": self.meter.elapsed_s(),
            "time_budget_s": b.time_budget_s,
            "cost_usd": self.meter.cost_usd(),
            "money_budget_usd": b.money_budget_usd,
        }

    def _event(self, msg: str) -> None:
        self.on_event(msg, self.status())

    def _journal(self, status: str = "running") -> None:
        atomic_write_json(
            self.run_dir / "state.json",
            {
                "status": status,
                "experiment": self.exp.name,
                "start_unix_s": self.start_unix_s,
                "time_used_s": self.meter.elapsed_s(),
                "cost_usd": self.meter.cost_usd(),
                "slot_seconds": self.meter.finished_slot_s,
                "stop_reason": self.stop_reason,
                "profile": self.profile.to_dict() if self.profile else None,
                "plans": self.plans,
                "rounds": [r.to_dict() for r in self.rounds],
                "trials": [t.to_dict() for t in self.trials],
            },
        )

    def _tensorboard_round(self, record: RoundRecord, alive: list[Trial]) -> None:
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard" / "experiment"))
        step = record.index
        self._tb.add_scalar("experiment/time_used_s", self.meter.elapsed_s(), step)
        self._tb.add_scalar("experiment/cost_usd", self.meter.cost_usd(), step)
        self._tb.add_scalar("experiment/trials_alive", len(alive), step)
        self._tb.add_scalar("experiment/world_size", record.world_size, step)
        self._tb.add_scalar("experiment/rung_epoch", record.rung_epoch, step)
        if alive:
            self._tb.add_scalar("experiment/best_val_accuracy", alive[0].rung_val_accuracy[record.rung_epoch], step)
        self._tb.flush()

    def _results(self) -> dict[str, Any]:
        b = self.exp.budget
        answer = best_trial(self.trials, self.completed_rungs)
        best, best_rung = answer if answer else (None, 0)
        plan = self.initial_plan
        return {
            "policy": "seer",
            "experiment": self.exp.name,
            "best": None
            if best is None
            else {
                "trial_id": best.trial_id,
                "config": best.config,
                "val_accuracy": best.rung_val_accuracy[best_rung],
                "test_accuracy": best.test_accuracy_by_epoch.get(best_rung),
                "epochs": best_rung,
                "world_sizes": best.world_sizes,
            },
            "budget": {
                "time_budget_s": b.time_budget_s,
                "money_budget_usd": b.money_budget_usd,
                "price_usd_per_slot_hour": b.price_usd_per_slot_hour,
                "time_used_s": self.meter.elapsed_s(),
                "cost_usd": self.meter.cost_usd(),
            },
            "stop_reason": self.stop_reason,
            "num_slots": self.backend.num_slots,
            "rounds": [
                {
                    "index": r.index,
                    "rung_epoch": r.rung_epoch,
                    "num_trials": r.num_trials,
                    "world_size": r.world_size,
                    "start_s": r.start_s,
                    "end_s": r.end_s,
                    "cost_usd": r.cost_usd,
                    "completed": r.completed,
                    "predicted_duration_s": r.predicted_duration_s,
                    "predicted_cost_usd": r.predicted_cost_usd,
                }
                for r in self.rounds
            ],
            "trials": [
                {
                    "trial_id": t.trial_id,
                    "config": t.config,
                    "status": t.status,
                    "epochs": t.epochs,
                    "val_accuracy": t.val_accuracy,
                    "world_sizes": t.world_sizes,
                    "error": t.error,
                }
                for t in self.trials
            ],
            "profile": self.profile.to_dict() if self.profile else None,
            "plan": plan.to_dict() if plan else None,
            "replans": self.plans[1:],
        }
