"""The executor: drives a policy against a backend, with a clock and a budget meter.

One run (``seer tune``, ``seer simulate``):

1. Write ``experiment.toml`` (when the run has a directory).
2. Profile, unless a profile is given: probe jobs through the real worker at W=1 and W=2,
   alone, a few steps each, warm-up excluded. Their time and slot-seconds are billed.
3. Set the policy up (:mod:`seer_torch.policies.base`) with the experiment, the profile and
   the budgets left. SEER plans here; a fixed-cluster baseline reserves its cluster.
4. Event loop: ask the policy for decisions (at the start and after every job event), carry
   them out (launch a trial's job at ``W`` to an epoch, stop it, eliminate it), wait for the
   next job to end, read what it reported (``metrics.jsonl``, through the backend), and tell
   the policy. The policy never sees the clock; the executor never decides who survives.
5. Hard limits, whatever the policy says: at the deadline (less :data:`FINAL_GRACE_S` to write
   the answer) or when the money meter would reach the budget before the next check, running
   jobs are stopped (checkpoints kept). The answer is the policy's
   (:meth:`~seer_torch.policies.base.Policy.answer`).

Money: each job holds ``W`` slots from launch to exit and is billed by
:class:`~seer_torch.policies.billing.Billing` (``price x W x billed_seconds(duration)``); a
policy that reserves a fixed cluster of ``G`` slots is billed ``G`` slots from its set-up to
the end of the run instead. Time is wall clock (the injected clock) from the start of the
run, overheads included.

Waiting: on a backend with ``next_event_s()`` (the simulated one), the clock jumps to the next
job end or to the moment a hard limit would be reached, whichever is first; otherwise it polls
every :data:`POLL_S` seconds.

Files (only when ``run_dir`` is given; a simulation may run without any):
``state.json`` is rewritten atomically at every event (from before profiling on, so that a run
stopped while it profiles can be resumed), ``results.json`` at the end, whatever ended the run
(answer, budget, interrupt, error; not a resume whose replay failed: that writes nothing).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from seer_torch.backends.base import Backend, JobResult, JobSpec, job_error_text
from seer_torch.clock import Clock, RealClock
from seer_torch.config import Experiment, sample_configurations
from seer_torch.errors import BudgetExhausted, ConfigError, SeerError
from seer_torch.policies import seer as seer_planner
from seer_torch.policies.base import (
    Eliminate,
    Finish,
    JobEvent,
    Launch,
    Policy,
    PolicyContext,
    Snapshot,
    Stop,
    TrialView,
    best_at_rungs,
)
from seer_torch.policies.billing import Billing
from seer_torch.policies.seer_policy import SeerPolicy, planner_inputs_from_context
from seer_torch.run_lock import LOCK_FILE
from seer_torch.runfiles import (
    atomic_write_json,
    atomic_write_text,
    read_durable_metrics,
    remove_worker_temporaries,
)
from seer_torch.scaling import profiler
from seer_torch.scaling.profile import Profile, load_profile

POLL_S = 0.2
HANG_CHECK_S = 2.0  # how often a running job's progress is looked at
LIMIT_TOL_S = 1e-6  # simulated backends: how close to a hard limit the executor stops jobs
NEW_JOB_S = 1e-6  # a job about to start is billed as if it had run this long (its first increment)
MAX_PORT_RETRIES = 5  # relaunches after "address already in use", per trial
FINAL_GRACE_S = 3.0  # stop jobs this long before the deadline, to write the answer in time
STOP_MARGIN_S = 1.0  # money check: what a stop takes after the check that orders it, at least
# (a backend that says how long its stop can take, ``max_stop_s``, gets that instead)


DECISIONS_FILE = "decisions.jsonl"


def view_to_dict(v: TrialView) -> dict[str, Any]:
    d = dataclasses.asdict(v)
    d["val_accuracy"] = {str(k): x for k, x in v.val_accuracy.items()}
    d["world_sizes"] = list(v.world_sizes)
    return d


def view_from_dict(d: dict[str, Any]) -> TrialView:
    return TrialView(**{**d, "val_accuracy": {int(k): float(x) for k, x in d["val_accuracy"].items()},
                        "world_sizes": tuple(d["world_sizes"])})


def decision_to_dict(d: Any) -> dict[str, Any]:
    return {"type": type(d).__name__, **dataclasses.asdict(d)}


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
    raise ConfigError("RUN_DIR", str(run_dir), "a run directory with a readable state.json (" + "; ".join(problems) + ")")


class Crash(BaseException):
    """Raised by the fault-injection hook (:func:`debug_crash_point`) to emulate a tuner killed
    outright in-process: the run's clean-up does nothing (no job stopped, nothing written), as
    after SIGKILL. Never raised in normal runs."""


_crash_counts: dict[str, int] = {}


def debug_crash_point(point: str) -> None:
    """Fault injection for the resume tests: ``SEER_DEBUG_CRASH_AT=POINT:N`` kills the tuner the
    N-th time it passes ``POINT`` (``decide``: a decision was journaled in ``decisions.jsonl``
    but not carried out; ``launch``: a job was just launched; ``job_end``: a job's end was just
    read). ``SEER_DEBUG_CRASH_MODE=exception`` raises :class:`Crash` instead of SIGKILL."""
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
    import signal

    os.kill(os.getpid(), signal.SIGKILL)


class PolicyError(SeerError):
    """A policy asked for something the executor cannot do (a bug in the policy)."""


@dataclass
class Trial:
    """One configuration's training across jobs (one directory under ``trials/``)."""

    trial_id: str
    config: dict[str, Any]
    index: int = 0
    status: str = "pending"  # pending | running | paused | eliminated | completed | stopped | failed | diverged
    epochs: int = 0
    val_by_epoch: dict[int, float] = field(default_factory=dict)
    test_accuracy_by_epoch: dict[int, float] = field(default_factory=dict)
    world_sizes: list[int] = field(default_factory=list)
    epoch_time_per_worker_s: list[float] = field(default_factory=list)  # tau estimates
    error: str | None = None
    handle: Any = None  # the running job
    round_index: int = 0
    eliminating: bool = False
    failures: int = 0  # crashes and hangs retried so far (planned resizes never count)
    port_retries: int = 0  # relaunches after a rendezvous-port clash (never count as failures)
    hung: bool = False  # the running job was killed for making no progress
    schedule_epochs: int = 0  # the learning-rate schedule's horizon at its last launch (0: never launched)

    @property
    def val_accuracy(self) -> float | None:
        """Validation accuracy at the last epoch reached (None before any, or diverged)."""
        return None if self.status == "diverged" else self.val_by_epoch.get(self.epochs)

    def view(self) -> TrialView:
        running = self.handle is not None
        return TrialView(
            trial_id=self.trial_id,
            index=self.index,
            status="paused" if self.status in ("pending", "stopped", "completed") else self.status,
            epochs=self.epochs,
            world_size=self.handle.spec.world_size if running else None,
            until_epoch=self.handle.spec.until_epoch if running else None,
            val_accuracy=dict(self.val_by_epoch),
            world_sizes=tuple(self.world_sizes),
            epoch_time_s=statistics.median(self.epoch_time_per_worker_s[-8:]) if self.epoch_time_per_worker_s else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "index": self.index,
            "config": self.config,
            "status": self.status,
            "epochs": self.epochs,
            "val_accuracy": self.val_accuracy,
            "val_accuracy_by_epoch": {str(k): v for k, v in self.val_by_epoch.items()},
            "test_accuracy_by_epoch": {str(k): v for k, v in self.test_accuracy_by_epoch.items()},
            "world_sizes": self.world_sizes,
            "error": self.error,
            "failures": self.failures,
            "round_index": self.round_index,
            "schedule_epochs": self.schedule_epochs,
        }


@dataclass
class RoundRecord:
    """What the executor measured of one round (jobs launched with the same ``round_index``)."""

    index: int
    rung_epoch: int
    world_size: int
    num_trials: int = 0
    start_s: float = 0.0
    end_s: float | None = None
    cost_usd: float = 0.0
    running: int = 0


class Meter:
    """Time and money spent, read from the injected clock.

    Args:
        clock: the run's clock.
        price_usd_per_slot_hour: price of one slot-hour (used when ``billing`` is not given).
        billing: price and rounding rules (:class:`~seer_torch.policies.billing.Billing`).
    """

    def __init__(self, clock: Clock, price_usd_per_slot_hour: float = 0.0, billing: Billing | None = None) -> None:
        self.clock = clock
        self.billing = billing or Billing(price_usd_per_slot_hour)
        self.price = self.billing.price_usd_per_slot_hour
        self.start_s = clock.now()
        self.finished_slot_s = 0.0  # slot-seconds held by finished jobs (unrounded)
        self.finished_usd = 0.0
        self.reserved: tuple[int, float] | None = None  # (slots, since_s): a rented fixed cluster

    def elapsed_s(self) -> float:
        return self.clock.now() - self.start_s

    def reserve(self, slots: int) -> None:
        """From now on bill ``slots`` slots for the rest of the run, whatever runs."""
        self.reserved = (slots, self.clock.now())

    def bill(self, result: JobResult) -> float:
        """Bill a finished job; returns its cost in USD (0 under a reserved cluster)."""
        self.finished_slot_s += result.slot_seconds
        if self.reserved is not None and result.start_s >= self.reserved[1]:
            return 0.0
        usd = self.billing.job_cost_usd(result.spec.world_size, result.duration_s)
        self.finished_usd += usd
        return usd

    def cost_usd(self, running: list[tuple[float, int]] = (), at_s: float | None = None) -> float:
        """Money spent by ``at_s`` (default now) if the running jobs (``(start_s, world_size)``
        each) were stopped then, billing rounding included."""
        now = self.clock.now() if at_s is None else at_s
        usd = self.finished_usd
        if self.reserved is not None:
            slots, since = self.reserved
            usd += self.billing.job_cost_usd(slots, now - since)
            running = [(s, w) for s, w in running if s < since]
        if self.billing.granularity_s == 0 and self.billing.minimum_s == 0:  # exact billing
            return usd + self.price / 3600.0 * sum(w * max(0.0, now - s) for s, w in running)
        return usd + sum(self.billing.job_cost_usd(w, now - s) for s, w in running)


def tune_probe_world_sizes(exp: Experiment) -> list[int]:
    """The world sizes ``seer tune`` probes when it measures its own profile: the usable ones up
    to 2 (beyond, the scaling model extrapolates)."""
    return [w for w in exp.usable_world_sizes() if w <= 2]


def trial_config(
    exp: Experiment,
    trial_id: str,
    configuration: dict[str, Any],
    tensorboard_dir: Path | None,
    schedule_epochs: int | None = None,
) -> dict[str, Any]:
    """A trial's ``config.json`` content: what the worker reads. Pure.

    ``schedule_epochs`` is the horizon of the learning-rate schedule (the worker's
    ``max_epochs``): the policy's target when the trial is launched, which is
    ``training.max_epochs`` unless SEER explores first or a re-plan lowers it (the tuner
    writes it again at every launch; the worker re-anchors its schedule when it changed).
    Every trial trains towards the target, finalist or not: one eliminated at a rung never
    finishes its schedule; the answer's finishes when it is trained to the target.
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


def experiment_billing(exp: Experiment) -> Billing:
    """The experiment's price and billing rounding."""
    b = exp.budget
    return Billing(
        b.price_usd_per_slot_hour,
        float(getattr(b, "billing_granularity_s", 0.0) or 0.0),
        float(getattr(b, "billing_minimum_s", 0.0) or 0.0),
    )


def draw_epoch_times_s(exp: Experiment, profile: Profile,
                       costs: profiler.DrawCosts | None = None) -> tuple[float, ...]:
    """One epoch at W = 1 (seconds) of each of the experiment's ``max_configurations`` draws,
    predicted from its FLOPs (:meth:`Profile.epoch_time_for`), when the profile measured
    configurations of different cost (``epoch_time_by_flops``); else ``()``. The FLOPs are
    ``costs``' (:func:`profiler.count_draw_costs`), or counted here on the ``meta`` device
    (imports torch). Deterministic (the draws are the seeded ones the run launches)."""
    if len(profile.epoch_time_by_flops) < 2:
        return ()
    if costs is None:
        costs = profiler.count_draw_costs(exp, profiler.probe_configuration(exp))
    return tuple(profile.epoch_time_for(f) for f in costs.draw_flops)


def draw_costs_needed(exp: Experiment, profile: Profile | None) -> profiler.DrawCosts | None:
    """:func:`profiler.count_draw_costs` of ``exp`` when a run will use them: its profile is
    still to be measured (``None``: the cost probe is chosen from them), or it predicts each
    draw's epoch from its FLOPs (``epoch_time_by_flops``); else ``None``. Imports torch then.

    Raises:
        ConfigError: as :func:`profiler.configuration_flops`.
    """
    if profile is not None and len(profile.epoch_time_by_flops) < 2:
        return None
    return profiler.count_draw_costs(exp, profiler.probe_configuration(exp))


def policy_context(
    exp: Experiment,
    profile: Profile,
    *,
    num_slots: int,
    time_left_s: float,
    money_left_usd: float,
    oracle_index: int | None = None,
    draw_times_s: list[float] | None = None,
    draw_costs: profiler.DrawCosts | None = None,
) -> PolicyContext:
    """A policy's static inputs from an experiment, a profile and the budgets left. Pure.
    ``epoch_time_s`` is the profile's, or the mean over the draws when the profile knows each
    configuration's cost; ``draw_epoch_times_s`` is :func:`draw_epoch_times_s` (of
    ``draw_costs`` when given), or ``draw_times_s`` when given (the simulator's table)."""
    draws = tuple(draw_times_s) if draw_times_s else draw_epoch_times_s(exp, profile, draw_costs)
    epoch_time_s = profile.epoch_time_s if draw_times_s or not draws else statistics.fmean(draws)
    t = exp.training
    ladder = exp.usable_world_sizes() or (1,)
    max_w = getattr(exp.planner, "max_world_size", None) or num_slots
    return PolicyContext(
        max_epochs=t.max_epochs,
        min_epochs=t.min_epochs if t.min_epochs is not None else 1,
        eta=t.eta,
        max_configurations=exp.search.max_configurations,
        num_slots=num_slots,
        world_size_ladder=tuple(sorted(set(ladder))),
        max_world_size=max_w,
        epoch_time_s=epoch_time_s,
        scaling=profile.scaling,
        startup_s=profile.startup_s,
        relaunch_s=profile.resize_s,
        resize_s=profile.resize_s,
        time_budget_s=max(0.0, time_left_s),
        money_budget_usd=max(0.0, money_left_usd),
        billing=experiment_billing(exp),
        safety_fraction=exp.planner.safety_fraction,
        seed=exp.seed,
        oracle_index=oracle_index,
        num_finalists=getattr(exp.planner, "num_finalists", 1),
        draw_epoch_times_s=draws,
    )


def planner_inputs(
    exp: Experiment,
    profile: Profile,
    *,
    num_slots: int,
    time_left_s: float,
    money_left_usd: float,
    epoch_time_s: float | None = None,
    relaunch_s: float | None = None,
) -> seer_planner.PlannerInputs:
    """The SEER planner's inputs from an experiment, a profile and the budgets left (``seer
    plan`` uses it). ``epoch_time_s`` and ``relaunch_s`` override the profile's. Pure."""
    ctx = policy_context(exp, profile, num_slots=num_slots, time_left_s=time_left_s, money_left_usd=money_left_usd)
    return planner_inputs_from_context(ctx, epoch_time_s=epoch_time_s, overhead_s=relaunch_s)


class Tuner:
    """Runs one experiment with one policy on a backend. See the module docstring.

    Args:
        experiment: the validated experiment.
        run_dir: where the run's files go (created; must not hold a previous run). ``None``:
            no files at all (simulation); the backend must then read results itself.
        backend: where jobs run; ``backend.num_slots`` is the slot limit.
        clock: the clock all budget arithmetic reads.
        on_event: called with a one-line message and a status dict at each event.
        policy: the decision maker (default :class:`SeerPolicy`).
        profile: a scaling profile to use instead of measuring or reading one.
        oracle_index: passed to the policy context (the ``oracle`` baseline only).
        configurations: the configurations to use, by index, instead of draws from the search
            space (the simulator passes a learning-curve table's, in a seeded order).
        draw_times_s: one epoch at W = 1 of each configuration, by index, known in advance
            (the simulator passes its table's); SEER plans round 1 with them.
    """

    def __init__(
        self,
        experiment: Experiment,
        run_dir: Path | None,
        backend: Backend,
        clock: Clock | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        policy: Policy | None = None,
        profile: Profile | None = None,
        oracle_index: int | None = None,
        configurations: list[dict[str, Any]] | None = None,
        draw_times_s: list[float] | None = None,
    ) -> None:
        self.exp = experiment
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.backend = backend
        self.clock = clock or RealClock()
        self.on_event = on_event
        self.policy: Policy = policy if policy is not None else SeerPolicy()
        self.profile: Profile | None = profile
        self.oracle_index = oracle_index
        self.draw_times_s = draw_times_s
        self._draw_costs: profiler.DrawCosts | None = None
        self.meter = Meter(self.clock, billing=experiment_billing(experiment))
        self.trials: dict[str, Trial] = {}
        self.trials_by_index: dict[int, Trial] = {}
        self.rounds: dict[int, RoundRecord] = {}
        self.stop_reason: str | None = None
        self.start_unix_s = time.time()
        self._running: dict[str, Trial] = {}
        self._views: dict[str, TrialView] = {}
        self._tau: dict[str, float] = {}  # trial id -> median one-epoch time on one worker
        self._overheads: deque[float] = deque(maxlen=max(4, backend.num_slots))
        self._configs: list[dict[str, Any]] = list(configurations) if configurations is not None else []
        self._fixed_configs = configurations is not None
        self._slots = backend.num_slots
        self._tb = None
        self._tb_rounds = 0
        self._id_width = max(3, len(str(max(experiment.search.max_configurations - 1, 0))))
        self._jumps = callable(getattr(backend, "next_event_s", None))
        self._decide_calls = 0
        self._logged_views: dict[str, TrialView] = {}
        self._setup_budgets: tuple[float, float] | None = None
        self._setup_slots = backend.num_slots  # the slots the policy is set up with (journaled)
        self._interrupted: list[dict[str, Any]] = []
        self._read = getattr(backend, "read_metrics", None)
        # Hang detection, where the backend can tell progress (a simulated one only with faults).
        self._progress = getattr(backend, "seconds_since_progress", None) if getattr(backend, "can_hang", True) else None

    # ------------------------------------------------------------------ the run
    def run(self, resume: bool = False) -> dict[str, Any]:
        """Run the experiment to its answer and return the ``results.json`` content.

        ``resume=True`` continues the run journaled in ``run_dir`` (see :meth:`resume`).

        Whatever happens (the answer, a budget spent while profiling, an interrupt, an error),
        running jobs are stopped and billed, and (with a run directory) ``results.json`` and
        ``state.json`` are written with what was completed; ``stop_reason`` says why the run
        ended early.

        Raises:
            ConfigError: the run directory already holds files.
            WorkerError: a profile probe failed.
            PolicyError: the policy asked for something impossible.
            KeyboardInterrupt: interrupted (SIGINT, or SIGTERM/SIGHUP through the CLI).
        """
        if self.run_dir is not None and not resume:
            if self.run_dir.exists() and any(f.name != LOCK_FILE for f in self.run_dir.iterdir()):
                raise ConfigError("--run-dir", str(self.run_dir), "a new or empty directory (this one holds files)")
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "experiment.toml", self.exp.to_toml())
        status = "interrupted"
        if resume:
            self._restore_journal()  # reads and replays only: a resume that fails here writes nothing
        try:
            if resume:
                self._drive(self._restore())
            else:
                self._before_clock()
                if self.run_dir is not None:
                    self._journal()  # from now on the run can be resumed, even while it profiles
                self._start()
                self._drive()
            status = "finished"
        except BudgetExhausted as e:
            self.stop_reason = str(e)
            status = "finished"
        except Crash:
            status = "crashed"
            raise
        except KeyboardInterrupt:
            self.stop_reason = "interrupted"
            raise
        except BaseException as e:
            self.stop_reason = f"error: {e}"
            status = "failed"
            raise
        finally:
            if status != "crashed":  # an emulated SIGKILL stops and writes nothing
                results = self._wrap_up(status)
        return results

    def _wrap_up(self, status: str) -> dict[str, Any]:
        """Stop what runs, settle statuses, write results.json and the journal."""
        # Jobs the stop below ends were running: a resume relaunches them where they are.
        self._interrupted = [self._job_row(t) for t in self._running.values()] if status != "finished" else []
        self._stop_all()
        stop_all = getattr(self.backend, "stop_all", None)
        if stop_all is not None:
            stop_all()
        target = self.policy.schedule_epochs if self._policy_ready() else self.exp.training.max_epochs
        for t in self.trials.values():
            if t.status in ("paused", "running", "pending"):
                t.status = "completed" if t.epochs >= target and not t.eliminating else "stopped"
        if status == "finished":
            self._tensorboard_rounds()
        if self._tb is not None:
            self._tb.close()
        results = self._results()
        if self.run_dir is not None:
            atomic_write_json(self.run_dir / "results.json", results)
            self._journal(status=status)
        self._event(status + (f": {self.stop_reason}" if self.stop_reason else ""))
        return results

    def _before_clock(self) -> None:
        """What a new run does before its clock (and so its deadline) starts: read the given
        profile file, and count the FLOPs of the draws when the run will use them
        (:func:`draw_costs_needed`: seconds of one CPU, no slot; counted on the clock, a FLOPs
        profile and ``--time-budget 1`` used 2.5 s). A run without a directory cannot measure
        a profile, so it counts nothing for one (it stops with an error at profiling). A given
        profile is written to ``RUN_DIR/profile.json`` (atomically), as a measured one is."""
        if self.profile is None and self.exp.planner.profile is not None:
            self._event("reading profile")
            self.profile = load_profile(self.exp.planner.profile)
        if self.profile is not None and self.run_dir is not None:
            atomic_write_json(self.run_dir / "profile.json", self.profile.to_dict())
        if not self.draw_times_s and (self.profile is not None or self.run_dir is not None):
            self._draw_costs = draw_costs_needed(self.exp, self.profile)
        self.meter.start_s = self.clock.now()

    def _start(self) -> None:
        """Profile (unless read before the clock), set the policy up, rent a fixed cluster if it asks."""
        if self.profile is None:
            self._event("profiling")
            self.profile = self._get_profile()
        context = self._context()
        self._setup_budgets = (context.time_budget_s, context.money_budget_usd)
        self.policy.setup(context)
        reserved = self.policy.reserved_slots
        if reserved is not None:
            if reserved > self.backend.num_slots:
                raise PolicyError(f"policy {self.policy.name} reserved {reserved} slots of {self.backend.num_slots}")
            self._slots = reserved
            # Renting the cluster bills at least billing's minimum at once: refuse a
            # cluster whose rent would break the money budget before the next check.
            start = self.clock.now()
            margin_s = self._money_margin_s()
            if self.meter.cost_usd([(start - NEW_JOB_S, reserved)], at_s=start + margin_s) >= self.exp.budget.money_budget_usd:
                raise BudgetExhausted(f"money budget reached: cannot rent a cluster of {reserved} slot(s)")
            self.meter.reserve(reserved)
        plan = self.policy.report().get("plan")
        if plan:
            self._event(f"plan: {plan.get('message', '')}")

    def _policy_ready(self) -> bool:
        try:
            self.policy.schedule_epochs
            return True
        except Exception:
            return False

    def _drive(self, events: list[JobEvent] | None = None) -> None:
        events = list(events or [])
        idle = 0
        while True:
            snap = self._snapshot(events)
            decisions = self.policy.decide(snap)
            self._log_decide(snap, decisions)
            debug_crash_point("decide")
            events = []
            finish = self._apply(decisions, events)
            if finish is not None:
                self.stop_reason = self.stop_reason or finish.reason or None
                self._event("policy finished" + (f": {finish.reason}" if finish.reason else ""))
                return
            if self.stop_reason is not None:  # a hard limit refused the launches
                return
            self._tensorboard_rounds()
            if not self._running:
                idle = 0 if events else idle + 1
                if idle >= 2:  # nothing runs and the policy asks for nothing: it is done
                    self.stop_reason = self.stop_reason or f"policy {self.policy.name} has nothing left to run"
                    return
                continue
            idle = 0
            events = self._wait()
            if self.stop_reason is not None:  # a hard limit stopped the jobs; the run ends
                return

    # ------------------------------------------------------------------ decisions
    def _apply(self, decisions, events: list[JobEvent]) -> Finish | None:
        for d in decisions:
            if isinstance(d, Finish):
                return d
            if isinstance(d, Launch):
                self._launch(d)
                if self.stop_reason is not None:
                    return None
            elif isinstance(d, (Stop, Eliminate)):
                trial = self.trials.get(d.trial_id)
                if trial is None:
                    raise PolicyError(f"policy {self.policy.name}: no trial {d.trial_id!r} to {type(d).__name__.lower()}")
                if isinstance(d, Eliminate):
                    trial.eliminating = True
                if trial.handle is not None:
                    ev = self._job_ended(trial, self.backend.stop(trial.handle))
                    if ev is not None:
                        events.append(ev)
                if isinstance(d, Eliminate) and trial.status not in ("failed", "diverged"):
                    trial.status = "eliminated"
                    self._tau.pop(trial.trial_id, None)
                    self._touch(trial)
            else:
                raise PolicyError(f"policy {self.policy.name}: unknown decision {d!r}")
        if self.run_dir is not None and decisions:
            self._journal()
        return None

    def _launch(self, d: Launch) -> None:
        if not 0 <= d.trial_index < self.exp.search.max_configurations:
            raise PolicyError(
                f"policy {self.policy.name}: trial index {d.trial_index} outside 0..{self.exp.search.max_configurations - 1}"
            )
        free = self._free_slots()
        if d.world_size < 1 or d.world_size > free:
            raise PolicyError(f"policy {self.policy.name}: launch at W={d.world_size} with {free} free slots")
        # A hard limit, counting what the new job would cost by the next check (with billing's
        # minimum): a launch that would break a budget ends the run instead.
        reason = self._over_budget(extra=self._new_job(d.world_size))
        if reason:
            self.stop_reason = reason
            self._event(f"{reason}: not launching trial index {d.trial_index} at W={d.world_size}")
            return
        trial = self.trials_by_index.get(d.trial_index) or self._create_trial(d.trial_index)
        if trial.handle is not None or trial.status in ("eliminated", "failed", "diverged"):
            raise PolicyError(f"policy {self.policy.name}: cannot launch {trial.trial_id} ({trial.status})")
        if not trial.epochs < d.until_epoch <= self.exp.training.max_epochs:
            raise PolicyError(
                f"policy {self.policy.name}: launch {trial.trial_id} to epoch {d.until_epoch} "
                f"from epoch {trial.epochs} (max_epochs {self.exp.training.max_epochs})"
            )
        trial_dir = self.run_dir / "trials" / trial.trial_id if self.run_dir is not None else Path(trial.trial_id)
        # The schedule's horizon is the policy's target at this launch, written at every launch:
        # a re-plan that lowered or raised the target moves it, and the worker re-anchors its
        # schedule at its checkpoint's step (worker.LrSchedule), so it ends where the trial will.
        trial.schedule_epochs = self.policy.schedule_epochs
        if self.run_dir is not None:
            atomic_write_json(trial_dir / "config.json", trial_config(
                self.exp, trial.trial_id, trial.config, self.run_dir / "tensorboard" / trial.trial_id,
                trial.schedule_epochs))
        spec = JobSpec(trial.trial_id, trial_dir, d.world_size, d.until_epoch,
                       configuration=trial.config, config_index=trial.index)
        trial.handle = self.backend.launch(spec)
        trial.status = "running"
        trial.round_index = d.round_index
        trial.world_sizes.append(d.world_size)
        self._running[trial.trial_id] = trial
        rec = self.rounds.get(d.round_index)
        if rec is None:
            rec = self.rounds[d.round_index] = RoundRecord(d.round_index, d.until_epoch, d.world_size,
                                                           start_s=self.meter.elapsed_s())
        rec.num_trials += 1
        rec.running += 1
        self._touch(trial)
        self._event(f"launched {trial.trial_id} at W={d.world_size} until epoch {d.until_epoch}")
        if self.run_dir is not None:
            self._journal()
        debug_crash_point("launch")

    def _create_trial(self, index: int) -> Trial:
        while not self._fixed_configs and len(self._configs) <= index:  # seeded per index: lazily is the same
            self._configs = sample_configurations(self.exp, max(index + 1, 2 * len(self._configs)))
        tid = f"t{index:0{self._id_width}d}"
        trial = Trial(trial_id=tid, config=self._configs[index], index=index)
        if self.run_dir is not None:  # its config.json is written at each launch (_launch)
            (self.run_dir / "trials" / tid).mkdir(parents=True, exist_ok=True)
        self.trials[tid] = trial
        self.trials_by_index[index] = trial
        return trial

    # ------------------------------------------------------------------ waiting
    def _wait(self) -> list[JobEvent]:
        """Wait until a job ends (its events) or a hard limit is reached (jobs stopped)."""
        while True:
            ended = []
            for t in list(self._running.values()):
                res = self.backend.poll(t.handle)
                if res is None and self._hung(t):
                    t.hung = True
                    self._event(f"{t.trial_id}: no progress for {self.exp.failures.hang_timeout_s:g} s: killing its job")
                    res = self.backend.stop(t.handle)
                if res is not None:
                    ev = self._job_ended(t, res)
                    if ev is not None:
                        ended.append(ev)
            if ended:
                if self.run_dir is not None:
                    self._journal()
                debug_crash_point("job_end")
                return ended
            reason = self._over_budget()
            if reason:
                self.stop_reason = reason
                self._event(f"{reason}: stopping {len(self._running)} running job(s)")
                return self._stop_all()
            if self._jumps:
                now = self.clock.now()
                horizon = min(
                    self.backend.next_event_s(),
                    self.meter.start_s + self.exp.budget.time_budget_s - FINAL_GRACE_S,
                    self._next_hang_s(now),
                )
                t_limit = self._limit_time_s(now, horizon)
                if t_limit <= now + LIMIT_TOL_S:  # at the limit: stop now, still within budget
                    self.stop_reason = self._over_budget(now + 2 * LIMIT_TOL_S) or "money budget reached"
                    self._event(f"{self.stop_reason}: stopping {len(self._running)} running job(s)")
                    return self._stop_all()
                self.clock.sleep(max(0.0, min(horizon, t_limit) - now))
            else:
                self.clock.sleep(POLL_S)

    def _hung(self, trial: Trial) -> bool:
        """Whether a running job made no progress for ``failures.hang_timeout_s`` (backends
        that can tell: ``seconds_since_progress``)."""
        since = self._progress
        if since is None:
            return False
        now = self.clock.now()
        if not self._jumps:  # real jobs: look at their files every HANG_CHECK_S only
            if now - getattr(trial, "_hang_checked_s", -math.inf) < HANG_CHECK_S:
                return False
            trial._hang_checked_s = now  # type: ignore[attr-defined]
        return since(trial.handle) >= self.exp.failures.hang_timeout_s

    def _next_hang_s(self, now: float) -> float:
        """When the first running job would be declared hung (simulated backends)."""
        since = self._progress
        if since is None or not self._running:
            return math.inf
        hang = self.exp.failures.hang_timeout_s
        return now + min(max(0.0, hang - since(t.handle)) for t in self._running.values())

    def _new_job(self, world_size: int) -> list[tuple[float, int]]:
        """A job about to start, as the money check counts it: billed its first increment (and
        billing's minimum) at once; nothing extra inside a rented fixed cluster."""
        if self.meter.reserved is not None:
            return []
        return [(self.clock.now() - NEW_JOB_S, world_size)]

    def _held(self) -> list[tuple[float, int]]:
        return [(t.handle.start_s, t.handle.spec.world_size) for t in self._running.values()]

    def _over_budget(self, at_s: float | None = None, extra: list[tuple[float, int]] = ()) -> str | None:
        """Whether a hard limit is reached at ``at_s`` (default now): the deadline less the grace
        to write the answer, or the money the held slots (and ``extra`` jobs about to start,
        ``(start_s, world_size)``) will have cost by the next check and their stop."""
        budget = self.exp.budget
        now = self.clock.now() if at_s is None else at_s
        if now - self.meter.start_s >= budget.time_budget_s - FINAL_GRACE_S:
            return "deadline reached"
        # Real jobs: the money they will have cost by the next check and their stop. Simulated
        # ones stop at the instant they are told to, so no margin.
        margin_s = self._money_margin_s()
        if self.meter.cost_usd(self._held() + list(extra), at_s=now + margin_s) >= budget.money_budget_usd:
            return "money budget reached"
        return None

    def _limit_time_s(self, now: float, t_next: float) -> float:
        """The last time in ``[now, t_next]`` before a hard limit is reached, to within
        :data:`LIMIT_TOL_S` (``inf`` if none is reached by ``t_next``): by bisection, since spend
        only grows with time. Stopping there keeps the spend within the budget."""
        if not self._over_budget(t_next):
            return math.inf
        lo, hi = now, t_next
        while hi - lo > LIMIT_TOL_S:
            mid = 0.5 * (lo + hi)
            if mid <= lo or mid >= hi:
                break
            if self._over_budget(mid):
                hi = mid
            else:
                lo = mid
        return lo

    def _stop_all(self) -> list[JobEvent]:
        """Stop every running job, bill it and record what it completed. A backend with
        ``stop_many`` stops them all at once (the local one: SIGTERM to every job first)."""
        trials = list(self._running.values())
        stop_many = getattr(self.backend, "stop_many", None)
        if stop_many is not None:
            results = stop_many([t.handle for t in trials])
        else:
            results = [self.backend.stop(t.handle) for t in trials]
        events = [self._job_ended(t, r) for t, r in zip(trials, results)]
        return [e for e in events if e is not None]

    def _free_slots(self) -> int:
        return self._slots - sum(t.handle.spec.world_size for t in self._running.values())

    # ------------------------------------------------------------------ results of a job
    def _metrics(self, spec: JobSpec) -> list[dict[str, Any]]:
        if self._read is not None:
            return self._read(spec)
        return read_durable_metrics(spec.trial_dir)

    def _job_ended(self, trial: Trial, res: JobResult) -> JobEvent | None:
        """Bill a job that ended, read what its trial reported, and say how it ended; ``None``
        when a crashed or hung job was relaunched from its checkpoint (the policy never hears of
        a failure the retry budget absorbs)."""
        del self._running[trial.trial_id]
        trial.handle = None
        usd = self.meter.bill(res)
        rec = self.rounds.get(trial.round_index)
        if rec is not None:
            rec.cost_usd += usd if self.meter.reserved is None else self.meter.billing.job_cost_usd(
                res.spec.world_size, res.duration_s)
            rec.running -= 1
            rec.end_s = self.meter.elapsed_s()
        outcome = self._read_results(trial, res)
        if outcome == "failed" and self._retry(trial, res):
            return None
        self._touch(trial)
        if outcome in ("failed", "diverged"):
            self._tau.pop(trial.trial_id, None)
            if outcome == "failed":
                self._event(f"{trial.trial_id} failed: {trial.error}")
        return JobEvent(trial.trial_id, trial.index, outcome, trial.epochs, res.spec.until_epoch, res.spec.world_size)

    def _read_results(self, trial: Trial, res: JobResult) -> str:
        rows = self._metrics(res.spec)
        prev_epochs = trial.epochs
        new_rows = [r for r in rows if r.get("epoch", 0) > prev_epochs]
        if any(r.get("diverged") for r in rows):
            trial.status = "diverged"
            trial.error = "training loss became NaN or infinite"
            return "diverged"
        self._update_from_rows(trial, rows)
        if res.stopped and not trial.hung:
            trial.status = "eliminated" if trial.eliminating else "paused"
            return "stopped"
        if trial.hung:
            trial.hung = False
            trial.status = "failed"
            trial.error = f"no progress for {self.exp.failures.hang_timeout_s:g} s: killed as hung"
            return "failed"
        if res.returncode != 0 or trial.epochs < res.spec.until_epoch:
            trial.status = "failed"
            trial.error = job_error_text(res)
            return "failed"
        trial.status = "paused"
        for r in new_rows:
            if r.get("epoch_time_s") and r.get("world_size"):
                s = self.profile.scaling.speedup_at(int(r["world_size"])) if self.profile else 1.0
                trial.epoch_time_per_worker_s.append(float(r["epoch_time_s"]) * s)
        if trial.epoch_time_per_worker_s:
            self._tau[trial.trial_id] = statistics.median(trial.epoch_time_per_worker_s[-8:])
        trained_s = sum(float(r.get("epoch_time_s") or 0.0) for r in new_rows)
        self._overheads.append(max(0.0, res.duration_s - trained_s))
        return "reached"

    def _retry(self, trial: Trial, res: JobResult) -> bool:
        """Relaunch a failed job from the trial's checkpoint, same ``W`` and target, if its
        failure budget allows (a rendezvous-port clash never counts) and the budgets do."""
        port_clash = "address already in use" in (trial.error or "").lower() or "EADDRINUSE" in (trial.error or "")
        if port_clash and trial.port_retries < MAX_PORT_RETRIES:
            trial.port_retries += 1
        elif trial.failures < self.exp.failures.max_failures:
            trial.failures += 1
        else:
            return False
        if self.stop_reason is not None or self._over_budget(extra=self._new_job(res.spec.world_size)):
            return False
        if res.spec.world_size > self._free_slots():
            return False
        what = "port clash" if port_clash else f"failure {trial.failures} of {self.exp.failures.max_failures}"
        self._event(f"{trial.trial_id} failed ({trial.error}); retrying from its checkpoint ({what})")
        trial.error = None
        trial.handle = self.backend.launch(res.spec)
        trial.status = "running"
        self._running[trial.trial_id] = trial
        rec = self.rounds.get(trial.round_index)
        if rec is not None:
            rec.running += 1
        return True

    def _touch(self, trial: Trial) -> None:
        self._views[trial.trial_id] = trial.view()

    # ------------------------------------------------------------------ policy inputs
    def _context(self) -> PolicyContext:
        assert self.profile is not None
        return policy_context(
            self.exp,
            self.profile,
            num_slots=self.backend.num_slots,
            time_left_s=self.exp.budget.time_budget_s - self.meter.elapsed_s() - FINAL_GRACE_S,
            money_left_usd=self.exp.budget.money_budget_usd - self.meter.cost_usd() - self._money_reserve_usd(),
            oracle_index=self.oracle_index,
            draw_times_s=self.draw_times_s,
            draw_costs=self._draw_costs,
        )

    def _snapshot(self, events: list[JobEvent]) -> Snapshot:
        b = self.exp.budget
        return Snapshot(
            now_s=self.meter.elapsed_s(),
            time_left_s=max(0.0, b.time_budget_s - self.meter.elapsed_s() - FINAL_GRACE_S),
            money_left_usd=max(0.0, b.money_budget_usd - self.meter.cost_usd(self._held()) - self._money_reserve_usd()),
            num_slots=self._slots,
            free_slots=self._free_slots(),
            trials=dict(self._views),
            events=tuple(events),
            epoch_time_s=max(self._tau.values()) if self._tau else None,
            job_overhead_s=statistics.fmean(self._overheads) if self._overheads else None,
        )

    def _get_profile(self) -> Profile:
        if self.run_dir is None:
            raise ConfigError("planner.profile", None, "a scaling profile (a run without a directory cannot measure one)")
        probe_conf = profiler.probe_configuration(self.exp)
        sizes = tune_probe_world_sizes(self.exp)
        # Configurations of different cost (model widths): the cheapest one the run may draw is
        # probed at W=1 too, so that each configuration's epoch time can be predicted.
        measured = profiler.run_profile_probes(
            self.backend,
            self.clock,
            self.run_dir / "profile",
            self.exp,
            probe_conf,
            sizes,
            lambda trial_id, conf: trial_config(self.exp, trial_id, conf, None),
            on_job_end=self._probe_ended,
            over_budget=lambda held: self._over_budget_with(held),
            costs=self._draw_costs,
        )
        cost_note = ""
        if measured.cost_probes:
            cost_note = (f"; the cheapest configuration ({measured.cost_probes[0][1] / measured.probe_flops:.2f} "
                         "of the probe's FLOPs) at W=1 too")
        prof = profiler.profile_from_probes(
            f"{self.exp.name}-measured",
            measured.probes,
            source=f"measured by seer tune at the start of {self.run_dir.name}: "
            f"{profiler.PROFILE_STEPS} steps after 3 warm-up steps per world size{cost_note}; "
            "the W=1 probes twice, their mean counts",
            probe_flops=measured.probe_flops,
            cost_probes=measured.cost_probes,
        )
        atomic_write_json(self.run_dir / "profile.json", prof.to_dict())
        return prof

    def _probe_ended(self, res: JobResult) -> None:
        """Bill a profile probe job that ended, and journal it (a resume keeps what it cost)."""
        self.meter.bill(res)
        self._journal()

    def _money_margin_s(self) -> float:
        """Seconds of running jobs the money check bills ahead: to the next check and through
        the stop it may order (the backend's ``max_stop_s``: the local backend's SIGTERM grace
        plus a second), so the money budget holds even when a stop is slow. Simulated jobs stop
        at the instant they are told to: no margin."""
        if self._jumps:
            return 0.0
        return POLL_S + max(STOP_MARGIN_S, float(getattr(self.backend, "max_stop_s", STOP_MARGIN_S)))

    def _money_reserve_usd(self) -> float:
        """Money kept out of what policies plan with: what every slot costs over the money
        check's margin (:meth:`_money_margin_s`), so that a plan that spends its whole share
        is not stopped by the check before its last round ends. 0 on simulated backends."""
        return self.exp.budget.price_usd_per_slot_hour / 3600.0 * self.backend.num_slots * self._money_margin_s()

    def _over_budget_with(self, held: list[tuple[float, int]]) -> str | None:
        """The hard limits while profiling (the probe jobs are not trials)."""
        budget = self.exp.budget
        if self.meter.elapsed_s() >= budget.time_budget_s - FINAL_GRACE_S:
            return "deadline reached"
        margin_s = self._money_margin_s()
        if self.meter.cost_usd(held, at_s=self.clock.now() + margin_s) >= budget.money_budget_usd:
            return (f"money budget reached (counting the probe job's rent for the {margin_s:g} s a stop may "
                    "take, so that the budget is never overrun)")
        return None

    # ------------------------------------------------------------------ the journal and resume
    def _job_row(self, t: Trial) -> dict[str, Any]:
        return {"trial_id": t.trial_id, "world_size": t.handle.spec.world_size,
                "until_epoch": t.handle.spec.until_epoch, "round_index": t.round_index}

    def _log_decide(self, snap: Snapshot, decisions) -> None:
        """Append one decision to ``decisions.jsonl``: the snapshot (trial views that changed
        since the previous line only) and what the policy decided. ``seer resume`` replays the
        policy through these lines to bring it back to where it was (policies are pure and
        deterministic)."""
        self._decide_calls += 1
        if self.run_dir is None:
            return
        changed = [view_to_dict(v) for tid, v in snap.trials.items() if self._logged_views.get(tid) != v]
        self._logged_views = dict(snap.trials)
        line = {
            "i": self._decide_calls,
            "snapshot": {
                "now_s": snap.now_s, "time_left_s": snap.time_left_s, "money_left_usd": snap.money_left_usd,
                "num_slots": snap.num_slots, "free_slots": snap.free_slots, "epoch_time_s": snap.epoch_time_s,
                "job_overhead_s": snap.job_overhead_s, "events": [dataclasses.asdict(e) for e in snap.events],
                "changed": changed,
            },
            "decisions": [decision_to_dict(d) for d in decisions],
        }
        with open(self.run_dir / DECISIONS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def resume(
        cls,
        run_dir: Path,
        backend: Backend,
        clock: Clock | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> "Tuner":
        """A tuner that continues the run journaled in ``run_dir``; call ``run(resume=True)``.

        What resuming does (``seer resume RUN_DIR``):

        - the experiment, profile, policy, trials (status, epochs, failures, world sizes), spend
          and time are read back from ``experiment.toml`` and ``state.json`` (or
          ``state.prev.json`` when ``state.json`` is unreadable);
        - the policy is rebuilt by replaying the decisions it made (``decisions.jsonl``, up to
          the last one the journal reflects), set up with the slots it was set up with
          (``setup_num_slots``) and fed the snapshots it saw; a policy that decides differently
          on replay is an error, never silently ignored. Until the replay succeeded nothing is
          written, started or stopped: a resume that fails leaves ``state.json``,
          ``state.prev.json`` and ``decisions.jsonl`` byte for byte as it found them;
        - the backend's slots may differ from the run's (``seer resume --slots N``): they apply
          from the next decision on (SEER plans with them); a job the policy believes running
          whose ``W`` the free slots cannot hold is not launched but reported to the policy as
          stopped at its trial's checkpoint, and the policy decides again;
        - jobs the dead tuner left running (trials' and profile probes') are stopped and billed
          from their launch to now, and temporary files its killed writers left are removed;
          trials that were running go on from their checkpoints: a trial's progress is what its
          durable checkpoint holds (``checkpoint.json``), metrics lines past it are not counted
          and those epochs are trained again; those that had reached their target report it
          to the policy;
        - eliminated trials stay eliminated; finished and failed ones stay so;
        - a run stopped before its plan (while it measured its profile) profiles again and
          plans with the budgets left.

        Time while the tuner was down counts against the deadline: the deadline is a
        wall-clock promise (``time_used_s`` = journaled time + the downtime, from the
        journal's wall-clock stamp). The plan adapts at its next decision: SEER re-plans at the
        next rung boundary with the budget actually left, and the hard limits stop jobs at the
        deadline as always.

        Raises:
            ConfigError: ``run_dir`` holds no resumable run (missing or unreadable journal, or
                a run that finished).
            SeerError: from ``run(resume=True)``: the replay disagrees with the journal.
        """
        from seer_torch.config import load_experiment
        from seer_torch.scaling.profile import parse_profile
        from seer_torch.simulate import make_policy

        run_dir = Path(run_dir)
        state = read_journal(run_dir)
        if state.get("status") == "finished":
            raise ConfigError("RUN_DIR", str(run_dir), "a run that did not finish (this one finished: "
                              f"{state.get('stop_reason') or 'its answer is in results.json'})")
        if state.get("setup_budgets") is not None and not state.get("profile"):
            raise ConfigError("RUN_DIR", str(run_dir), "a journal with the profile its plan was made with")
        exp = load_experiment(run_dir / "experiment.toml")
        profile = parse_profile(state["profile"]) if state.get("profile") else None
        tuner = cls(exp, run_dir, backend, clock=clock, on_event=on_event,
                    policy=make_policy(state.get("policy", "seer")), profile=profile)
        tuner._state = state
        return tuner

    def _restore_journal(self) -> None:
        """The first half of a resume (see :meth:`resume`): bring the run back in memory from
        its journal (time, money, trials, rounds, measurements) and the policy by replaying its
        decisions, with the slots it made them with. Writes nothing, starts and stops nothing:
        a resume that fails here leaves the run directory exactly as it found it."""
        assert self.run_dir is not None
        state = self._state
        downtime_s = max(0.0, time.time() - float(state["journal_unix_s"]))
        elapsed_s = float(state["time_used_s"]) + downtime_s
        self.meter.start_s = self.clock.now() - elapsed_s
        m = state["meter"]
        self.meter.finished_usd = float(m["finished_usd"])
        self.meter.finished_slot_s = float(m["finished_slot_s"])
        self.start_unix_s = float(state.get("start_unix_s", self.start_unix_s))
        self.stop_reason = None
        self._tb_rounds = int(state.get("tensorboard_rounds", 0))
        self._event(f"resuming {self.run_dir.name}: {elapsed_s:.1f} s used ({downtime_s:.1f} s down), "
                    f"{self.meter.cost_usd():.4f} USD spent")
        for raw in state["trials"]:
            t = Trial(trial_id=raw["trial_id"], config=raw["config"], index=int(raw["index"]))
            t.status = {"running": "paused", "stopped": "paused", "completed": "paused"}.get(raw["status"], raw["status"])
            t.epochs = int(raw["epochs"])
            t.val_by_epoch = {int(k): float(v) for k, v in raw.get("val_accuracy_by_epoch", {}).items()}
            t.test_accuracy_by_epoch = {int(k): float(v) for k, v in raw.get("test_accuracy_by_epoch", {}).items()}
            t.world_sizes = list(raw.get("world_sizes", []))
            t.failures = int(raw.get("failures", 0))
            t.round_index = int(raw.get("round_index", 0))
            t.schedule_epochs = int(raw.get("schedule_epochs", 0))
            t.error = raw.get("error")
            self.trials[t.trial_id] = t
            self.trials_by_index[t.index] = t
        for raw in state.get("round_records", []):
            rec = RoundRecord(**{k: raw[k] for k in ("index", "rung_epoch", "world_size", "num_trials", "start_s",
                                                        "end_s", "cost_usd", "running")})
            self.rounds[rec.index] = rec
        self._overheads.extend(state.get("measured", {}).get("overheads_s", []))
        self._tau.update(state.get("measured", {}).get("tau_s", {}))
        # The slots the policy was set up with (a journal older than the field: the experiment's).
        self._setup_slots = int(state.get("setup_num_slots") or self.exp.resources.num_slots)
        if state.get("setup_budgets") is None:  # stopped before the policy was set up: profiling
            return
        # The policy, as it was: set up with the same inputs (the slots included), then fed the
        # same snapshots. New slots apply from the next decision on (snapshots carry them).
        time_left, money_left = state["setup_budgets"]
        self.policy.setup(policy_context(self.exp, self.profile, num_slots=self._setup_slots,
                                         time_left_s=time_left, money_left_usd=money_left,
                                         oracle_index=self.oracle_index, draw_times_s=self.draw_times_s))
        self._setup_budgets = (time_left, money_left)
        if m.get("reserved_slots"):
            # A rented cluster is billed as rented; jobs run on the slots there are now.
            self._slots = min(int(m["reserved_slots"]), self.backend.num_slots)
            self.meter.reserved = (int(m["reserved_slots"]), self.meter.start_s + float(m["reserved_since_s"]))
        self._replayed = self._replay(int(state.get("decide_calls", 0)))

    def _restore(self) -> list[JobEvent]:
        """The second half of a resume (see :meth:`resume`), after :meth:`_restore_journal`:
        stop and bill what the dead tuner left running, clean its temporary files, and carry
        out the jobs the policy believes running; returns the events to tell the policy. A run
        stopped before its plan (while profiling) profiles again and plans with the budget left."""
        assert self.run_dir is not None
        self._stop_leftovers()
        if self._setup_budgets is None:
            if self.profile is None and self.exp.planner.profile is not None:
                self.profile = load_profile(self.exp.planner.profile)
            if not self.draw_times_s:
                self._draw_costs = draw_costs_needed(self.exp, self.profile)
            self._event("the run stopped before its plan: starting again from profiling, with the budget left")
            (self.run_dir / DECISIONS_FILE).unlink(missing_ok=True)
            self._setup_slots = self.backend.num_slots  # the policy is set up now, on these slots
            self._journal()
            self._start()
            return []
        running, eliminated, lines = self._replayed
        path = self.run_dir / DECISIONS_FILE
        if path.exists() and path.read_text(encoding="utf-8").splitlines() != lines:
            # Lines past the journal's count were never reflected in it: drop them.
            atomic_write_text(path, "".join(t + "\n" for t in lines))
        for tid in eliminated:  # decided, perhaps not carried out before the tuner died
            t = self.trials.get(tid)
            if t is not None and t.status not in ("failed", "diverged"):
                t.status, t.eliminating = "eliminated", True
        # Jobs the policy believes running: launched and not yet reported to it. Some ran when
        # the tuner died, some had ended unreported, some were decided and never launched.
        events: list[JobEvent] = []
        for index, job in sorted(running.items()):
            w, until, round_index = int(job["world_size"]), int(job["until_epoch"]), int(job.get("round_index", 0))
            t = self.trials_by_index.get(index)
            launched = t is not None and t.round_index == round_index and bool(t.world_sizes)
            if launched and t.status in ("eliminated", "failed", "diverged"):
                continue
            if launched:
                # Its progress is what its checkpoint holds (lines past it are not progress).
                spec = JobSpec(t.trial_id, self.run_dir / "trials" / t.trial_id, w, until,
                               configuration=t.config, config_index=t.index)
                self._update_from_rows(t, self._metrics(spec))
                if t.epochs >= until:
                    t.status = "paused"
                    self._touch(t)
                    events.append(JobEvent(t.trial_id, t.index, "reached", t.epochs, until, w))
                    continue
            if w > self._free_slots():
                # Decided with more slots than this resume has: the policy decides again, with
                # the slots there are now (the trial stays where its checkpoint is).
                t = t if t is not None else self._create_trial(index)
                t.status, t.round_index = "paused", round_index
                self._touch(t)
                events.append(JobEvent(t.trial_id, t.index, "stopped", t.epochs, until, w))
                self._event(f"{t.trial_id}: its job at W={w} does not fit the {self._free_slots()} free slot(s) "
                            f"of this resume; back to the policy at epoch {t.epochs}")
                continue
            if not launched:
                # Decided, never launched: launch it now, as the policy asked.
                self._launch(Launch(index, w, until, round_index))
                if self.stop_reason is not None:
                    break
                continue
            reason = self._over_budget(extra=self._new_job(w))
            if reason:
                self.stop_reason = reason
                break
            t.handle = self.backend.launch(spec)
            t.status = "running"
            self._running[t.trial_id] = t
            where = f"from its checkpoint at epoch {t.epochs}" if t.epochs else "from the start (it had no checkpoint)"
            self._event(f"{t.trial_id}: relaunched {where}, W={w}, until epoch {until}")
        for rec in self.rounds.values():
            rec.running = sum(1 for x in self._running.values() if x.round_index == rec.index)
        for t in self.trials.values():
            self._touch(t)
        self._logged_views = {}
        self._journal()
        return events

    def _stop_leftovers(self) -> None:
        """Stop and bill every job the dead tuner left (trials' and profile probes'), then
        remove the temporary files its killed writers left in the trial folders."""
        assert self.run_dir is not None
        kill = getattr(self.backend, "kill_leftover", None)
        trial_dirs = sorted(d for d in (self.run_dir / "trials").glob("*") if d.is_dir())
        probe_dirs = sorted(d for d in (self.run_dir / "profile").rglob("*") if d.is_dir())
        for d in trial_dirs + probe_dirs:
            info = kill(d) if kill is not None else None
            if info is not None:  # it ran, unbilled, from its launch until now
                w = int(info.get("world_size") or 1)
                held_s = max(0.0, float(info["end_unix_s"]) - float(info["launch_unix_s"]))
                self.meter.finished_slot_s += held_s * w
                if self.meter.reserved is None:
                    self.meter.finished_usd += self.meter.billing.job_cost_usd(w, held_s)
                what = "stopped the job the previous tuner left running" if info.get("alive") else \
                    "the job the previous tuner left had ended by itself"
                self._event(f"{d.relative_to(self.run_dir)}: {what} ({held_s:.1f} s billed)")
        for d in trial_dirs:
            remove_worker_temporaries(d)

    def _replay(self, calls: int) -> tuple[dict[int, dict[str, Any]], set[str], list[str]]:
        """Feed the policy the snapshots it saw before, checking that it decides the same.
        Reads only (a mismatch raises with nothing written).

        Returns the jobs the policy believes running at the end (trial index -> launch), the
        trials it eliminated, and the ``decisions.jsonl`` lines the journal reflects."""
        assert self.run_dir is not None
        views: dict[str, TrialView] = {}
        running: dict[int, dict[str, Any]] = {}
        eliminated: set[str] = set()
        path = self.run_dir / DECISIONS_FILE
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        done = 0
        for text in lines[:calls]:
            try:
                line = json.loads(text)
            except json.JSONDecodeError:
                break  # a torn last line: the journal does not count it either
            snap = line["snapshot"]
            for raw in snap["changed"]:
                v = view_from_dict(raw)
                views[v.trial_id] = v
            decisions = self.policy.decide(Snapshot(
                now_s=snap["now_s"], time_left_s=snap["time_left_s"], money_left_usd=snap["money_left_usd"],
                num_slots=snap["num_slots"], free_slots=snap["free_slots"], trials=dict(views),
                events=tuple(JobEvent(**e) for e in snap["events"]), epoch_time_s=snap["epoch_time_s"],
                job_overhead_s=snap["job_overhead_s"],
            ))
            got = [decision_to_dict(d) for d in decisions]
            for e in snap["events"]:
                running.pop(int(e["index"]), None)
            for d in line["decisions"]:
                if d["type"] == "Launch":
                    running[int(d["trial_index"])] = d
                elif d["type"] in ("Eliminate", "Stop"):
                    if d["type"] == "Eliminate":
                        eliminated.add(d["trial_id"])
                    t = self.trials.get(d["trial_id"])
                    if t is not None:
                        running.pop(t.index, None)
            if got != line["decisions"]:
                raise SeerError(
                    f"resume: policy {self.policy.name} decided differently on replay at decision {line['i']} "
                    f"({got[:3]} vs {line['decisions'][:3]}); the run cannot be resumed safely"
                )
            done += 1
        if done < calls:
            raise SeerError(f"resume: {DECISIONS_FILE} holds {done} complete decisions, the journal {calls}")
        self._decide_calls = calls
        return running, eliminated, lines[:calls]

    @staticmethod
    def _update_from_rows(trial: Trial, rows: list[dict[str, Any]]) -> None:
        """A trial's accuracies by epoch and the epochs it reached, from its durable metrics
        lines (the backend's ``read_metrics``: the epochs its checkpoint holds, and a last
        ``diverged`` line, which makes it diverged). Its progress is the last line's epoch (0
        without any): accuracies of later epochs, read before from lines that turned out not
        to be durable (a job stopped or killed before its checkpoint), are dropped; the next
        launch trains those epochs again."""
        durable = int(rows[-1]["epoch"]) if rows else 0
        trial.val_by_epoch = {e: v for e, v in trial.val_by_epoch.items() if e <= durable}
        trial.test_accuracy_by_epoch = {e: v for e, v in trial.test_accuracy_by_epoch.items() if e <= durable}
        for r in rows:
            e = int(r.get("epoch", 0))
            if r.get("diverged"):
                trial.status = "diverged"
                trial.error = "training loss became NaN or infinite"
            if r.get("val_accuracy") is not None:
                trial.val_by_epoch[e] = float(r["val_accuracy"])
            if r.get("test_accuracy") is not None:
                trial.test_accuracy_by_epoch[e] = float(r["test_accuracy"])
        trial.epochs = durable

    # ------------------------------------------------------------------ reporting
    def status(self) -> dict[str, Any]:
        b = self.exp.budget
        report_rounds = self._policy_rounds()
        return {
            "round": len(self.rounds),
            "rounds_planned": len(report_rounds) if report_rounds else None,
            "trials": len(self.trials),
            "trials_alive": sum(t.status in ("pending", "running", "paused", "completed") for t in self.trials.values()),
            "running": len(self._running),
            "time_used_s": self.meter.elapsed_s(),
            "time_budget_s": b.time_budget_s,
            "cost_usd": self.meter.cost_usd(self._held()),
            "money_budget_usd": b.money_budget_usd,
        }

    def _policy_rounds(self) -> list[dict[str, Any]]:
        try:
            plan = self.policy.report().get("plan") or {}
        except Exception:
            return []
        return list(plan.get("rounds") or [])

    def _event(self, msg: str) -> None:
        if self.on_event is not None:
            self.on_event(msg, self.status())

    def _journal(self, status: str = "running") -> None:
        assert self.run_dir is not None
        atomic_write_json(
            self.run_dir / "state.json",
            {
                "status": status,
                "experiment": self.exp.name,
                "policy": self.policy.name,
                "start_unix_s": self.start_unix_s,
                "time_used_s": self.meter.elapsed_s(),
                "cost_usd": self.meter.cost_usd(self._held()),
                "slot_seconds": self.meter.finished_slot_s,
                "stop_reason": self.stop_reason,
                "profile": self.profile.to_dict() if self.profile else None,
                "policy_report": self._safe_report(),
                "rounds": self._round_rows(),
                "running": [self._job_row(t) for t in self._running.values()] or getattr(self, "_interrupted", []),
                "trials": [t.to_dict() for t in self.trials.values()],
                # What `seer resume` needs (see Tuner.resume).
                "journal_unix_s": time.time(),
                "decide_calls": self._decide_calls,
                "setup_budgets": list(self._setup_budgets) if self._setup_budgets else None,
                "setup_num_slots": self._setup_slots,
                "tensorboard_rounds": self._tb_rounds,
                "meter": {
                    "finished_usd": self.meter.finished_usd,
                    "finished_slot_s": self.meter.finished_slot_s,
                    "reserved_slots": self.meter.reserved[0] if self.meter.reserved else None,
                    "reserved_since_s": self.meter.reserved[1] - self.meter.start_s if self.meter.reserved else None,
                },
                "round_records": [dict(r.__dict__) for r in self.rounds.values()],
                "measured": {"overheads_s": list(self._overheads), "tau_s": dict(self._tau)},
            },
            keep_previous=True,
        )

    def _safe_report(self) -> dict[str, Any]:
        try:
            return self.policy.report()
        except Exception:  # before set-up
            return {}

    def _round_rows(self) -> list[dict[str, Any]]:
        """Rounds as the policy planned them, with what the executor measured of each."""
        reported = {int(r["index"]): r for r in self._safe_report().get("rounds", []) or []}
        rows = []
        for index in sorted(set(reported) | set(self.rounds)):
            rec = self.rounds.get(index)
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

    def _tensorboard_rounds(self) -> None:
        """The experiment's own TensorBoard panels: one point per completed round, its index the
        step. ``_tb_rounds`` (journaled) counts the rounds logged; a resumed tuner opens the
        writer with ``purge_step`` at the first round it logs, so points a killed tuner logged
        after its last journal are hidden, not repeated: no tag ever repeats a step."""
        if self.run_dir is None:
            return
        done = [r for r in self._round_rows() if r["completed"]]
        if len(done) <= self._tb_rounds:
            return
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard" / "experiment"),
                                     purge_step=done[self._tb_rounds]["index"])
        alive = [t for t in self.trials.values() if t.status not in ("eliminated", "failed", "diverged")]
        for r in done[self._tb_rounds:]:
            step = r["index"]
            self._tb.add_scalar("experiment/time_used_s", self.meter.elapsed_s(), step)
            self._tb.add_scalar("experiment/cost_usd", self.meter.cost_usd(self._held()), step)
            self._tb.add_scalar("experiment/trials_alive", len(alive), step)
            self._tb.add_scalar("experiment/world_size", r["world_size"], step)
            self._tb.add_scalar("experiment/rung_epoch", r["rung_epoch"], step)
            vals = [t.val_by_epoch[r["rung_epoch"]] for t in alive if r["rung_epoch"] in t.val_by_epoch]
            if vals:
                self._tb.add_scalar("experiment/best_val_accuracy", max(vals), step)
        self._tb.flush()
        self._tb_rounds = len(done)

    def answer(self) -> tuple[Trial, int] | None:
        """The policy's answer as ``(trial, epoch)``; when the policy has none (a hard limit
        stopped the run before any rung was complete), the best trial at the most epochs any
        trial reached (:func:`~seer_torch.policies.base.best_at_rungs` over every epoch
        reported). ``None`` when no trial reported a valid epoch.

        ``results.json`` marks the answer ``"partial": true`` exactly when its learning-rate
        schedule did not finish: it is read at fewer epochs than the horizon of its trial's last
        launch (``Trial.schedule_epochs``: a deadline stopped the final round, or the answer is a
        trial kept at an earlier rung), whether the policy or the fall-back gave it."""
        snap = self._snapshot([])
        try:
            ans = self.policy.answer(snap)
        except Exception:
            ans = None
        self._partial_answer = False
        if ans is None:
            epochs = {e for t in snap.trials.values() for e in t.val_accuracy}
            ans = best_at_rungs(snap.trials, sorted(epochs))
        if ans is None:
            return None
        tid, epoch = ans
        trial = self.trials[tid]
        self._partial_answer = epoch < (trial.schedule_epochs or self.exp.training.max_epochs)
        return trial, epoch

    def _results(self) -> dict[str, Any]:
        b = self.exp.budget
        answer = self.answer()
        best, best_epoch = answer if answer else (None, 0)
        report = self._safe_report()
        return {
            "policy": self.policy.name,
            "experiment": self.exp.name,
            "best": None
            if best is None
            else {
                "trial_id": best.trial_id,
                "config": best.config,
                "val_accuracy": best.val_by_epoch.get(best_epoch),
                "test_accuracy": best.test_accuracy_by_epoch.get(best_epoch),
                "epochs": best_epoch,
                "world_sizes": best.world_sizes,
                "schedule_epochs": best.schedule_epochs or self.exp.training.max_epochs,
                "partial": self._partial_answer,
            },
            "budget": {
                "time_budget_s": b.time_budget_s,
                "money_budget_usd": b.money_budget_usd,
                "price_usd_per_slot_hour": b.price_usd_per_slot_hour,
                "time_used_s": self.meter.elapsed_s(),
                "cost_usd": self.meter.cost_usd(self._held()),
            },
            "stop_reason": self.stop_reason,
            "num_slots": self.backend.num_slots,
            "reserved_slots": self.meter.reserved[0] if self.meter.reserved else None,
            "rounds": self._round_rows(),
            "trials": [
                {
                    "trial_id": t.trial_id,
                    "config": t.config,
                    "status": t.status,
                    "epochs": t.epochs,
                    "val_accuracy": t.val_accuracy,
                    "world_sizes": t.world_sizes,
                    "error": t.error,
                    "failures": t.failures,
                }
                for t in self.trials.values()
            ],
            "profile": self.profile.to_dict() if self.profile else None,
            "plan": report.get("plan"),
            "replans": report.get("replans", []),
            "policy_report": {k: v for k, v in report.items() if k not in ("plan", "replans")},
        }
