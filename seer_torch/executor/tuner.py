"""The tuner: one experiment, one policy, one backend. A facade over the executor's parts:
set-up (:mod:`~seer_torch.executor.context`), the event loop
(:mod:`~seer_torch.executor.loop`), the budget (:mod:`~seer_torch.executor.budget`), the
journal and resume (:mod:`~seer_torch.executor.journal`, :mod:`~seer_torch.executor.resume`)
and the reports (:mod:`~seer_torch.executor.results`). See the package docstring for a run.
"""

from __future__ import annotations

import shlex
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from seer_torch.backends.base import Backend
from seer_torch.clock import Clock, RealClock
from seer_torch.config import Experiment
from seer_torch.errors import BudgetExhausted, ConfigError
from seer_torch.executor.budget import NEW_JOB_S, Limits, Meter, experiment_billing
from seer_torch.executor.context import draw_costs_needed, measure_profile, policy_context
from seer_torch.executor.held_nodes import HeldNodes
from seer_torch.executor.journal import Crash, Journal, read_journal
from seer_torch.executor.loop import EventLoop, PolicyError
from seer_torch.executor.results import Reporter
from seer_torch.executor.resume import Resumer
from seer_torch.executor.trials import ALIVE, RunBook, Trial, TrialStatus
from seer_torch.policies.base import Policy, PolicyContext
from seer_torch.run_lock import LOCK_FILE
from seer_torch.runfiles import atomic_write_json, atomic_write_text
from seer_torch.scaling import profiler
from seer_torch.scaling.profile import Profile, load_profile

#: ``make_policy(name)``: a fresh policy object by the name ``Policy.name`` journals.
PolicyFactory = Callable[[str], Policy]


class Tuner:
    """Runs one experiment with one policy on a backend. See the package docstring.

    Args:
        experiment: the validated experiment.
        run_dir: where the run's files go (created; must not hold a previous run). ``None``:
            no files at all (simulation); the backend must then read results itself.
        backend: where jobs run; ``backend.num_slots`` is the slot limit.
        policy: the decision maker (a fresh object; :meth:`run` sets it up).
        clock: the clock all budget arithmetic reads (default: the wall clock).
        on_event: called with a one-line message and a status dict at each event.
        profile: a scaling profile to use instead of measuring or reading one.
        oracle_index: passed to the policy context (the ``oracle`` baseline only).
        configurations: the configurations to use, by index, instead of draws from the search
            space (the simulator passes a learning-curve table's, in a seeded order).
        draw_times_s: one epoch at W = 1 of each configuration, by index, known in advance
            (the simulator passes its table's); SEER plans round 1 with them.
        on_round: called with the number of rounds completed each time it grows, from the
            control loop once the journal says so (``seer tune`` redraws its page there,
            :mod:`seer_torch.report_live`); it must return at once. What it raises is an
            event, never the run's end.
    """

    def __init__(
        self,
        experiment: Experiment,
        run_dir: Path | None,
        backend: Backend,
        *,
        policy: Policy,
        clock: Clock | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        profile: Profile | None = None,
        oracle_index: int | None = None,
        configurations: list[dict[str, Any]] | None = None,
        draw_times_s: list[float] | None = None,
        on_round: Callable[[int], None] | None = None,
    ) -> None:
        assert policy is not None, "Tuner needs a policy object"
        self.exp = experiment
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.backend = backend
        self.clock = clock or RealClock()
        self.on_event = on_event
        self.on_round = on_round
        self._rounds_told = 0  # the completed rounds on_round last heard of
        self.began = False  # run() got past its checks (a resume past its replay): it writes its files
        self.policy = policy
        self.profile: Profile | None = profile
        self.oracle_index = oracle_index
        self.draw_times_s = draw_times_s
        self.draw_costs: profiler.DrawCosts | None = None
        self.meter = Meter(self.clock, billing=experiment_billing(experiment))
        if backend.held_nodes() is not None:  # a cluster: its machines are what is billed
            billing = self.meter.billing
            self.meter.held_nodes = HeldNodes(experiment.resources.node_types,
                                              billing.price_usd_per_slot_hour, billing.granularity_s,
                                              billing.minimum_s)
        self.book = RunBook(
            slots=backend.num_slots,
            overheads_s=deque(maxlen=max(4, backend.num_slots)),
            objective=experiment.objective,
        )
        self.limits = Limits(experiment, self.meter, backend, self.book.held)
        self.stop_reason: str | None = None
        self.start_unix_s = time.time()
        self.setup_budgets: tuple[float, float] | None = None
        self.setup_slots = backend.num_slots  # the slots the policy is set up with (journaled)
        self.journal = Journal(self)
        self.report = Reporter(self)
        self.loop = EventLoop(self)
        if configurations is not None:
            self.loop.configs, self.loop.fixed_configs = list(configurations), True
        self._resumer: Resumer | None = None
        self.slot_requests: list[dict[str, float]] = []  # what provision() asked a cluster for

    @property
    def trials(self) -> dict[str, Trial]:
        """The run's trials by id."""
        return self.book.trials

    # ------------------------------------------------------------------ the run
    def run(self, resume: bool = False) -> dict[str, Any]:
        """Run the experiment to its answer and return the ``results.json`` content.

        ``resume=True`` continues the run journaled in ``run_dir`` (see :meth:`resume`).

        Whatever happens (the answer, a budget spent while profiling, an interrupt, an error),
        running jobs are stopped and billed, and (with a run directory) ``results.json`` and
        ``state.json`` are written with what was completed; ``stop_reason`` says why the run
        ended early.

        Raises:
            ConfigError: the run directory already holds files, or a node of the backend's
                cluster does not see it (:meth:`~seer_torch.backends.base.Backend.check_storage`).
            WorkerError: a profile probe failed.
            PolicyError: the policy asked for something impossible.
            KeyboardInterrupt: interrupted (SIGINT, or SIGTERM/SIGHUP through the CLI).
        """
        if self.run_dir is not None and not resume:
            if self.run_dir.exists() and any(f.name != LOCK_FILE for f in self.run_dir.iterdir()):
                raise ConfigError(
                    "--run-dir", str(self.run_dir), "a new or empty directory (this one holds files)"
                )
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.run_dir / "experiment.toml", self.exp.to_toml())
        status = "interrupted"
        if resume:
            assert self._resumer is not None, "run(resume=True) needs a tuner made by Tuner.resume"
            self._resumer.restore_journal()  # reads and replays only: a resume that fails here writes nothing
        if self.run_dir is not None:
            self.backend.check_storage(self.run_dir)  # a cluster's nodes must see the run folder
        self.began = True  # from here on the run writes results.json and its journal, however it ends
        try:
            if resume:
                self.loop.drive(self._resumer.restore())
            else:
                self._before_clock()
                if self.run_dir is not None:
                    self.journal.write()  # from now on the run can be resumed, even while it profiles
                self.start_policy()
                self.loop.drive()
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
        book = self.book
        # Jobs the stop below ends were running: a resume relaunches them where they are.
        self.journal.interrupted = (
            [book.job_row(t) for t in book.running.values()] if status != "finished" else []
        )
        self.loop.stop_all()
        self.backend.stop_all()
        if getattr(self.backend, "request_slots", None) is not None:
            try:
                self._request_slots(0, "the run is over")
            except Exception as e:  # the results are written whatever the cluster says
                self.event(f"cluster: withdrawing the request failed ({type(e).__name__}: {e})")
        if self.meter.held_nodes is not None:  # the run stops paying for the cluster here
            self.observe_nodes()
            self.meter.held_nodes.close(self.clock.now())
        target = self.policy.schedule_epochs if self._policy_ready() else self.exp.training.max_epochs
        for t in book.trials.values():
            if t.status in ALIVE:
                done = t.epochs >= target and not t.eliminating
                t.move_to(TrialStatus.COMPLETED if done else TrialStatus.STOPPED)
        if status == "finished":
            self.report.panels.log(self)
        self.report.panels.close()
        results = self.report.results()
        if self.run_dir is not None:
            atomic_write_json(self.run_dir / "results.json", results)
            self.journal.write(status=status)
        self.event(status + (f": {self.stop_reason}" if self.stop_reason else ""))
        return results

    def tell_rounds(self) -> None:
        """Call ``on_round`` with the number of completed rounds when it grew since the last
        call (the control loop calls this after each batch of decisions is journaled)."""
        if self.on_round is None:
            return
        done = sum(1 for r in self.report.round_rows() if r["completed"])
        if done <= self._rounds_told:
            return
        self._rounds_told = done
        try:
            self.on_round(done)
        except Exception as e:  # the run goes on
            self.event(f"on_round failed ({type(e).__name__}: {e})")

    def _before_clock(self) -> None:
        """What a new run does before its clock (and so its deadline) starts: read the given
        profile file, and count the FLOPs of the draws when the run will use them
        (:func:`draw_costs_needed`: seconds of one CPU, no slot; counted on the clock, a FLOPs
        profile and ``--time-budget 1`` used 2.5 s). A run without a directory cannot measure
        a profile, so it counts nothing for one (it stops with an error at profiling). A given
        profile is written to ``RUN_DIR/profile.json`` (atomically), as a measured one is."""
        if self.profile is None and self.exp.planner.profile is not None:
            self.event("reading profile")
            self.profile = load_profile(self.exp.planner.profile)
        if self.profile is not None and self.run_dir is not None:
            atomic_write_json(self.run_dir / "profile.json", self.profile.to_dict())
        if not self.draw_times_s and (self.profile is not None or self.run_dir is not None):
            self.draw_costs = draw_costs_needed(self.exp, self.profile)
        self.meter.start_s = self.clock.now()
        self.observe_nodes()

    def observe_nodes(self) -> None:
        """On a cluster backend, hand the meter a look at the machines it holds now."""
        if self.meter.held_nodes is not None:
            nodes = self.backend.held_nodes()
            if nodes is not None:
                self.meter.held_nodes.observe(self.clock.now(), nodes)

    def provision(self) -> None:
        """On a backend that rents machines (its optional ``request_slots``: Ray's autoscaler),
        ask for the slots the jobs hold now or the next planned round's (the policy's optional
        ``next_round_slots``), whichever is more, at most the slots, whenever that number
        changes: the next round's machines boot while the current round ends, and are returned
        once eliminations lower it; 0 at the end. The larger of the two, not their sum: the
        next round's jobs start as the current round's end (its survivors keep their slots).
        Each request replaces the last; each is an event and a line of ``results.json``'s
        ``cluster.requests`` (seconds since the run began, slots), and the node meter measures
        the machine start of the nodes it brings (:meth:`~seer_torch.executor.held_nodes.
        HeldNodes.asked`)."""
        request = getattr(self.backend, "request_slots", None)
        if request is None:
            return
        upcoming = getattr(self.policy, "next_round_slots", None)
        held = self.book.slots - self.book.free_slots()
        nxt = int(upcoming()) if callable(upcoming) else 0
        self._request_slots(min(self.backend.num_slots, max(held, nxt)),
                            f"{held} held, {nxt} for the next round")

    def _request_slots(self, slots: int, why: str) -> None:
        if self.slot_requests and self.slot_requests[-1]["slots"] == slots:
            return
        self.backend.request_slots(slots)  # type: ignore[attr-defined]
        if self.meter.held_nodes is not None:  # the nodes it asks for: their machine start
            self.meter.held_nodes.asked(self.clock.now(), slots)
        at_s = self.meter.elapsed_s()
        self.slot_requests.append({"at_s": at_s, "slots": slots})
        self.event(f"cluster: asked for {slots} slot(s) ({why}) at {at_s:.1f} s")

    def start_policy(self) -> None:
        """Profile (unless read before the clock), set the policy up, rent a fixed cluster if it asks.

        Raises:
            PolicyError: the policy reserved more slots than the backend has.
            BudgetExhausted: the reserved cluster's rent would break the money budget.
        """
        if self.profile is None:
            self.event("profiling")
            self.profile = measure_profile(
                self.exp,
                self.backend,
                self.clock,
                self.run_dir,
                costs=self.draw_costs,
                on_job_end=self._probe_ended,
                over_budget=self.limits.over_budget_while_profiling,
            )
        context = self._context()
        self.setup_budgets = (context.time_budget_s, context.money_budget_usd)
        self.policy.setup(context)
        reserved = self.policy.reserved_slots
        if reserved is not None:
            if reserved > self.backend.num_slots:
                raise PolicyError(
                    f"policy {self.policy.name} reserved {reserved} slots of {self.backend.num_slots}"
                )
            self.book.slots = reserved
            # Renting the cluster bills at least billing's minimum at once: refuse a
            # cluster whose rent would break the money budget before the next check.
            start = self.clock.now()
            margin_s = self.limits.money_margin_s()
            if (
                self.meter.cost_usd([(start - NEW_JOB_S, reserved)], at_s=start + margin_s)
                >= self.exp.budget.money_budget_usd
            ):
                raise BudgetExhausted(f"money budget reached: cannot rent a cluster of {reserved} slot(s)")
            self.meter.reserve(reserved)
        plan = self.policy.report().get("plan")
        if plan:
            self.event(f"plan: {plan.get('message', '')}")

    def _probe_ended(self, res) -> None:
        """Bill a profile probe job that ended, and journal it (a resume keeps what it cost)."""
        self.meter.bill(res)
        self.book.profiling_slot_s += res.slot_seconds
        self.journal.write()

    def _context(self) -> PolicyContext:
        assert self.profile is not None
        return policy_context(
            self.exp,
            self.profile,
            num_slots=self.backend.num_slots,
            time_left_s=self.limits.time_left_s(),
            money_left_usd=self.exp.budget.money_budget_usd
            - self.meter.cost_usd()
            - self.limits.money_reserve_usd(),
            oracle_index=self.oracle_index,
            draw_times_s=self.draw_times_s,
            draw_costs=self.draw_costs,
            keep_alive=self.backend.keeps_jobs_alive,
            warm_workers=self.backend.hands_over_workers,
        )

    def _policy_ready(self) -> bool:
        try:
            _ = self.policy.schedule_epochs  # raises before the policy is set up
            return True
        except Exception:
            return False

    # ------------------------------------------------------------------ resume
    @classmethod
    def resume(
        cls,
        run_dir: Path,
        backend: Backend,
        *,
        make_policy: PolicyFactory,
        clock: Clock | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        experiment: Experiment | None = None,
        on_round: Callable[[int], None] | None = None,
    ) -> Tuner:
        """A tuner that continues the run journaled in ``run_dir``; call ``run(resume=True)``.
        ``make_policy(name)`` builds a fresh policy by the name the journal holds (the CLI
        passes :func:`seer_torch.policies.registry.make_policy`); ``on_round``: as the
        constructor's. ``experiment``: the run's with more budget (``seer resume
        --time-budget/--money-budget``): then a run that finished by its budget goes on too,
        and ``experiment.toml`` is rewritten with it once the replay succeeded.

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
                a run that finished), or the journal's policy is unknown to ``make_policy``.
            SeerError: from ``run(resume=True)``: the replay disagrees with the journal.
        """
        from seer_torch.config import load_experiment
        from seer_torch.scaling.profile import parse_profile

        run_dir = Path(run_dir)
        state = read_journal(run_dir)
        finished = state.get("status") == "finished"
        if finished and experiment is None:
            raise ConfigError(
                "RUN_DIR",
                str(run_dir),
                "a run that did not finish (this one finished: "
                f"{state.get('stop_reason') or 'its answer is in results.json'}), or give it more: "
                f"seer resume {shlex.quote(str(run_dir))} --time-budget +S (or --money-budget +USD)",
            )
        if state.get("setup_budgets") is not None and not state.get("profile"):
            raise ConfigError("RUN_DIR", str(run_dir), "a journal with the profile its plan was made with")
        exp_before = load_experiment(run_dir / "experiment.toml")
        exp = experiment if experiment is not None else exp_before
        profile = parse_profile(state["profile"]) if state.get("profile") else None
        tuner = cls(
            exp,
            run_dir,
            backend,
            clock=clock,
            on_event=on_event,
            policy=make_policy(state.get("policy", "seer")),
            profile=profile,
            on_round=on_round,
        )
        tuner._resumer = Resumer(tuner, state, more_budget=experiment is not None, after_finish=finished,
                                 budgets_before=(exp_before.budget.time_budget_s,
                                                 exp_before.budget.money_budget_usd))
        return tuner

    # ------------------------------------------------------------------ reporting
    def answer(self) -> tuple[Trial, int] | None:
        """The policy's answer as ``(trial, epoch)``; when the policy has none (a hard limit
        stopped the run before any rung was complete), the best trial at the most epochs any
        trial reached (:func:`~seer_torch.policies.base.best_at_rungs` over every epoch
        reported). ``None`` when no trial reported a valid epoch.

        ``results.json`` marks the answer ``"partial": true`` exactly when its learning-rate
        schedule did not finish: it is read at fewer epochs than the horizon of its trial's last
        launch (``Trial.schedule_epochs``: a deadline stopped the final round, or the answer is a
        trial kept at an earlier rung), whether the policy or the fall-back gave it."""
        return self.report.answer()

    def status(self) -> dict[str, Any]:
        """The live status line's numbers (round, trials, running jobs, time and money)."""
        return self.report.status()

    def event(self, msg: str) -> None:
        """Tell ``on_event`` (the live status) what happened, with the status numbers."""
        if self.on_event is not None:
            self.on_event(msg, self.status())
