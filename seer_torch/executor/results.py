"""What a run reports: ``results.json`` (the answer, budgets, rounds, trials), the live status
line's numbers, the round rows (as planned, with what was measured) and the experiment's own
TensorBoard panels.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seer_torch.executor.trials import ALIVE, ENDED, Trial, TrialStatus
from seer_torch.policies.base import best_at_rungs

if TYPE_CHECKING:
    from seer_torch.executor.tuner import Tuner


class ExperimentPanels:
    """The experiment's own TensorBoard panels (``RUN_DIR/tensorboard/experiment``): one point
    per completed round, its index the step; ``experiment/best_METRIC`` is the best value of the
    experiment's metric (the largest, or the smallest when it is minimized) among the trials
    still in the running at the round's rung. ``rounds_logged`` (journaled) counts the rounds
    logged; a resumed tuner opens the writer with ``purge_step`` at the first round it logs, so
    points a killed tuner logged after its last journal are hidden, not repeated: no tag ever
    repeats a step."""

    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir = run_dir
        self.rounds_logged = 0
        self._writer = None

    def log(self, tuner: Tuner) -> None:
        """Log the rounds completed since the last call (nothing without a run directory)."""
        if self.run_dir is None:
            return
        done = [r for r in tuner.report.round_rows() if r["completed"]]
        if len(done) <= self.rounds_logged:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(
                log_dir=str(self.run_dir / "tensorboard" / "experiment"),
                purge_step=done[self.rounds_logged]["index"],
            )
        tb = self._writer
        alive = [t for t in tuner.book.trials.values() if t.status not in ENDED]
        for r in done[self.rounds_logged :]:
            step = r["index"]
            tb.add_scalar("experiment/time_used_s", tuner.meter.elapsed_s(), step)
            tb.add_scalar("experiment/cost_usd", tuner.meter.cost_usd(tuner.book.held()), step)
            tb.add_scalar("experiment/trials_alive", len(alive), step)
            tb.add_scalar("experiment/world_size", r["world_size"], step)
            tb.add_scalar("experiment/rung_epoch", r["rung_epoch"], step)
            vals = [t.metric_by_epoch[r["rung_epoch"]] for t in alive if r["rung_epoch"] in t.metric_by_epoch]
            if any(math.isfinite(v) for v in vals):
                objective = tuner.exp.objective
                tb.add_scalar(f"experiment/best_{objective.metric}", objective.best(vals), step)
        tb.flush()
        self.rounds_logged = len(done)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class Reporter:
    """Reads a tuner's state into its reports (writes nothing itself but the panels)."""

    def __init__(self, tuner: Tuner) -> None:
        self.tuner = tuner
        self.panels = ExperimentPanels(tuner.run_dir)
        self.partial_answer = False

    def status(self) -> dict[str, Any]:
        """The numbers of the live status line: rounds, trials, time and money, and the
        experiment's ``metric`` with ``best``: the best trial so far (``best_at_rungs`` over what
        every trial reported) as ``{"trial_id", "epoch", "value"}``, or ``None`` before any."""
        t = self.tuner
        b = t.exp.budget
        report_rounds = self.policy_rounds()
        return {
            "metric": t.exp.metric,
            "mode": t.exp.mode,
            "best": self.best_so_far(),
            "round": len(t.book.rounds),
            "rounds_planned": len(report_rounds) if report_rounds else None,
            "trials": len(t.book.trials),
            "trials_alive": sum(
                x.status in ALIVE or x.status == TrialStatus.COMPLETED for x in t.book.trials.values()
            ),
            "running": len(t.book.running),
            "time_used_s": t.meter.elapsed_s(),
            "time_budget_s": b.time_budget_s,
            "cost_usd": t.meter.cost_usd(t.book.held()),
            "money_budget_usd": b.money_budget_usd,
        }

    def best_so_far(self) -> dict[str, Any] | None:
        """The best trial so far by the answer's rule (:func:`best_at_rungs` over every epoch a
        trial reported), with its metric's value there; ``None`` before any finite value."""
        views = self.tuner.book.views
        found = best_at_rungs(views, sorted({e for v in views.values() for e in v.score}))
        if found is None:
            return None
        trial = self.tuner.book.trials[found[0]]
        return {"trial_id": trial.trial_id, "epoch": found[1], "value": trial.metric_by_epoch.get(found[1])}

    def policy_rounds(self) -> list[dict[str, Any]]:
        try:
            plan = self.tuner.policy.report().get("plan") or {}
        except Exception:
            return []
        return list(plan.get("rounds") or [])

    def safe_report(self) -> dict[str, Any]:
        """The policy's report, or ``{}`` before it is set up."""
        try:
            return self.tuner.policy.report()
        except Exception:  # before set-up
            return {}

    def round_rows(self) -> list[dict[str, Any]]:
        """Rounds as the policy planned them, with what the executor measured of each."""
        rounds = self.tuner.book.rounds
        reported = {int(r["index"]): r for r in self.safe_report().get("rounds", []) or []}
        rows = []
        for index in sorted(set(reported) | set(rounds)):
            rec = rounds.get(index)
            rep = reported.get(index, {})
            row = {
                "index": index,
                "rung_epoch": rep.get("rung_epoch", rec.rung_epoch if rec else None),
                "num_trials": rep.get("num_trials", rec.num_trials if rec else 0),
                "world_size": rep.get("world_size", rec.world_size if rec else None),
                "start_s": rec.start_s if rec else None,
                "end_s": rec.end_s if rec else None,
                "cost_usd": rec.cost_usd if rec else 0.0,
                "completed": bool(rep.get("completed", rec is not None and rec.running == 0)),
                "predicted_duration_s": rep.get("predicted_duration_s"),
                "predicted_cost_usd": rep.get("predicted_cost_usd"),
            }
            if rec is None and not row["completed"]:
                continue  # planned but never started
            rows.append(row)
        return rows

    def answer(self) -> tuple[Trial, int] | None:
        """See :meth:`seer_torch.executor.Tuner.answer`."""
        t = self.tuner
        snap = t.loop.snapshot([])
        try:
            ans = t.policy.answer(snap)
        except Exception:
            ans = None
        self.partial_answer = False
        if ans is None:
            epochs = {e for v in snap.trials.values() for e in v.score}
            ans = best_at_rungs(snap.trials, sorted(epochs))
        if ans is None:
            return None
        tid, epoch = ans
        trial = t.book.trials[tid]
        self.partial_answer = epoch < (trial.schedule_epochs or t.exp.training.max_epochs)
        return trial, epoch

    def results(self) -> dict[str, Any]:
        """The ``results.json`` content. ``metric`` and ``mode`` say what the run optimized;
        the answer (``best``) and each trial carry that metric's own value (as reported, never
        negated) under the metric's name, each trial every epoch's in ``metric_by_epoch``."""
        t = self.tuner
        b = t.exp.budget
        metric = t.exp.metric
        answer = self.answer()
        best, best_epoch = answer if answer else (None, 0)
        report = self.safe_report()
        return {
            "policy": t.policy.name,
            "experiment": t.exp.name,
            "max_epochs": t.exp.training.max_epochs,
            "metric": metric,
            "mode": t.exp.mode,
            "best": None if best is None else self._best(best, best_epoch),
            "budget": {
                "time_budget_s": b.time_budget_s,
                "money_budget_usd": b.money_budget_usd,
                "price_usd_per_slot_hour": b.price_usd_per_slot_hour,
                "time_used_s": t.meter.elapsed_s(),
                "cost_usd": t.meter.cost_usd(t.book.held()),
            },
            "slot_seconds": self.slot_seconds(),
            "stop_reason": t.stop_reason,
            "num_slots": t.backend.num_slots,
            "reserved_slots": t.meter.reserved[0] if t.meter.reserved else None,
            "cluster": self.cluster(),
            "rounds": self.round_rows(),
            "trials": [
                {
                    "trial_id": x.trial_id,
                    "config": x.config,
                    "status": x.status.value,
                    "epochs": x.epochs,
                    metric: x.metric_value,
                    "metric_by_epoch": {str(e): v for e, v in sorted(x.metric_by_epoch.items())},
                    "world_sizes": x.world_sizes,
                    "error": x.error,
                    "stderr_tail": x.stderr_tail,
                    "failures": x.failures,
                    "tensorboard_run": x.tensorboard_run,
                }
                for x in t.book.trials.values()
            ],
            "profile": t.profile.to_dict() if t.profile else None,
            "plan": report.get("plan"),
            "replans": report.get("replans", []),
            "resumes": list(t.journal.resumes),
            "policy_report": {k: v for k, v in report.items() if k not in ("plan", "replans")},
        }

    def slot_seconds(self) -> dict[str, Any]:
        """Where the paid slot-seconds went: ``paid`` (every job's slots from launch to exit,
        parked waits and profile probes included), ``training`` (the trials' epochs that count:
        ``epoch_time_s x world_size`` of every durable metrics line, training + validation),
        ``training_share = training / paid``, ``profiling`` (the probes'), ``jobs``: how
        many trial jobs started cold (``launch``), went on kept alive (``continue``) or took up
        a warm worker (``warm``), ``starting``: by the same kinds, the slot-seconds those jobs
        held outside their epochs and their waits for an order (start-up, the order's
        latency, a new trial's model and checkpoint), and ``other``: the rest of ``paid``
        (parked jobs waiting for an order, the untimed test evaluation at a rung, stopping;
        jobs that failed or were stopped before their rung)."""
        t = self.tuner
        paid = t.meter.finished_slot_s
        training = sum(x.trained_slot_s for x in t.book.trials.values())
        starting = dict(t.book.start_slot_s)
        return {
            "paid": paid,
            "training": training,
            "training_share": training / paid if paid > 0 else None,
            "profiling": t.book.profiling_slot_s,
            "jobs": dict(t.book.start_kinds),
            "starting": starting,
            "other": paid - training - t.book.profiling_slot_s - sum(starting.values()),
        }

    def cluster(self) -> dict[str, Any] | None:
        """On a cluster backend, what it held against what the jobs used (``None`` elsewhere):
        ``held`` (:meth:`seer_torch.executor.held_nodes.HeldNodes.to_dict`: each node with its
        type, start and end in seconds since the run began, seconds held and billed, USD; and
        the sums ``node_seconds``, ``slot_seconds``, ``cost_usd``; ``carried_usd``: the cost
        before a resume), ``used`` (the jobs' ``slot_seconds`` and what they would cost at
        ``budget.price_usd_per_slot_hour``) and ``requests`` (what the tuner asked an autoscaler
        for: ``at_s``, ``slots``), ``machine_starts_s`` (each node's machine start, seconds from
        the request that asked for it to the first look that saw it,
        :class:`~seer_torch.executor.held_nodes.HeldNodes`) and their median
        ``machine_start_median_s`` (``None`` before any). ``budget.cost_usd`` is the held cost."""
        meter = self.tuner.meter
        if meter.held_nodes is None:
            return None
        held = meter.held_nodes.to_dict(meter.clock.now(), origin_s=meter.start_s)
        held["carried_usd"] = meter.held_nodes_carried_usd
        return {"held": held, "used": {"slot_seconds": meter.finished_slot_s, "cost_usd": meter.finished_usd},
                "requests": list(self.tuner.slot_requests),
                "machine_starts_s": list(meter.held_nodes.machine_starts_s),
                "machine_start_median_s": meter.held_nodes.machine_start_s()}

    def _best(self, best: Trial, epoch: int) -> dict[str, Any]:
        checkpoint, held = None, None
        if self.tuner.run_dir is not None:  # the answer's weights, and the epoch they are at
            path = self.tuner.run_dir / "trials" / best.trial_id / "checkpoint.pt"
            if path.exists():
                checkpoint, held = str(path.resolve()), best.epochs
        return {
            "checkpoint": checkpoint,
            "checkpoint_epoch": held,
            "trial_id": best.trial_id,
            "config": best.config,
            self.tuner.exp.metric: best.metric_by_epoch.get(epoch),
            "test_accuracy": best.test_accuracy_by_epoch.get(epoch),
            "epochs": epoch,
            "world_sizes": best.world_sizes,
            "schedule_epochs": best.schedule_epochs or self.tuner.exp.training.max_epochs,
            "partial": self.partial_answer,
        }
