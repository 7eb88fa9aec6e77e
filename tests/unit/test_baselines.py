"""The baseline policies (issue 4): SHA, Hyperband, ASHA, elastic SHA, elastic-uniform, oracle.

Each policy is driven by :class:`FakeCluster`, a tiny deterministic discrete-event loop that
lives only in this file: job durations come from ``epoch_time_s / s(W)`` plus the start-up,
relaunch and resize overheads, validation accuracy from a small table of curves. It checks the
protocol on every decision (never more than the free slots, never past ``max_epochs``, never a
running or finished trial). The executor's own tests run the policies through the real
simulated backend.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pytest

from seer_torch.errors import ConfigError
from seer_torch.policies.base import (
    Eliminate,
    Finish,
    JobEvent,
    Launch,
    PolicyContext,
    Snapshot,
    Stop,
    TrialView,
    fixed_cluster_slots,
)
from seer_torch.policies.baselines import (
    AshaPolicy,
    ElasticShaPolicy,
    ElasticUniformPolicy,
    HyperbandPolicy,
    OraclePolicy,
    ShaPolicy,
    cluster_slots,
    rent_time_limit,
    uniform_world_size,
)
from seer_torch.policies.billing import Billing
from seer_torch.policies.registry import POLICIES, POLICY_NAMES, make_policy
from seer_torch.policies.rungs import survivor_counts
from seer_torch.scaling.model import ScalingModel

NAN = float("nan")
SCALING = ScalingModel(world_sizes=(1, 2, 4, 8), speedup=(1.0, 1.9, 3.6, 6.4))
PRICE = Billing(3.6)  # 0.001 USD per slot-second


def make_context(**overrides) -> PolicyContext:
    base = dict(
        max_epochs=9,
        min_epochs=1,
        eta=3,
        max_configurations=9,
        num_slots=3,
        world_size_ladder=(1, 2, 4, 8),
        max_world_size=8,
        epoch_time_s=10.0,
        scaling=SCALING,
        startup_s=2.0,
        relaunch_s=1.0,
        resize_s=3.0,
        time_budget_s=1e6,
        money_budget_usd=1e9,
        billing=PRICE,
        safety_fraction=0.9,
    )
    base.update(overrides)
    return PolicyContext(**base)


def linear_curves(starts, slopes, epochs=9):
    """``{index: [val at epoch 1, ..., epoch `epochs`]}`` with ``val = start + slope * (e - 1)``."""
    return {
        i: [s + k * (e - 1) for e in range(1, epochs + 1)] for i, (s, k) in enumerate(zip(starts, slopes))
    }


# Nine configurations. Rung 1 ranks 0 > 3 > 1 > 4 > 2 > 5 > 6 > 7 > 8; at rung 3 the survivors
# rank 3 (0.55) > 0 (0.52) > 1 (0.51); 8 would be the best fully trained but is cut at rung 1.
NINE = linear_curves(
    starts=[0.50, 0.40, 0.30, 0.45, 0.35, 0.25, 0.20, 0.15, 0.10],
    slopes=[0.01, 0.055, 0.01, 0.05, 0.01, 0.01, 0.01, 0.01, 0.11],
)


def many_curves(n, epochs=9):
    """Deterministic, varied curves: configuration i plateaus at a height set by a golden-ratio
    sequence, some fast and some slow learners."""
    out = {}
    for i in range(n):
        height = 0.4 + 0.5 * ((i * 0.6180339887) % 1.0)
        speed = 1.0 + 3.0 * ((i * 0.4142135623) % 1.0)
        out[i] = [height * (1 - math.exp(-e / speed)) for e in range(1, epochs + 1)]
    return out


# -- the test-only discrete-event loop ------------------------------------------------------------


@dataclass
class _Job:
    tid: str
    index: int
    start_s: float
    start_epoch: int
    until: int
    world_size: int
    overhead_s: float
    per_epoch_s: float
    end_s: float
    end_epoch: int
    outcome: str


@dataclass
class _Trial:
    tid: str
    index: int
    status: str = "paused"
    epochs: int = 0
    vals: dict = field(default_factory=dict)
    world_sizes: list = field(default_factory=list)


class FakeCluster:
    """Feeds a policy snapshots and events; carries out its decisions; checks the protocol.

    Args:
        context: the policy context (epoch time, scaling, overheads, budgets, slots).
        curves: ``{index: [val per epoch]}``; NaN at an epoch: the job diverges there.
        fail_at: ``{index: epoch}``: the job crashes during that epoch (status ``failed``).
        stop_once: ``{index: epoch}``: an external stop once the trial completes that epoch.
        hold: slots held by someone else for the whole run.
    """

    def __init__(self, context, curves, *, fail_at=None, stop_once=None, hold=0):
        self.ctx = context
        self.curves = curves
        self.fail_at = dict(fail_at or {})
        self.stop_once = dict(stop_once or {})
        self.hold = hold
        self.now = 0.0
        self.trials: dict[str, _Trial] = {}
        self.by_index: dict[int, _Trial] = {}
        self.jobs: list[_Job] = []
        self.launches: list[tuple[float, Launch]] = []
        self.eliminated: list[tuple[float, int]] = []
        self.ended_to: dict[int, set] = {}  # until_epoch -> indexes whose job to it ended
        self.decisions: list[tuple[float, list]] = []
        self.max_held = 0
        self.end = ""
        self.checks = []  # callables(cluster, snapshot, decisions) run at every decide

    # -- snapshot ------------------------------------------------------------------------------

    def total_slots(self, policy):
        return policy.reserved_slots if policy.reserved_slots is not None else self.ctx.num_slots

    def held(self):
        return sum(j.world_size for j in self.jobs)

    def snapshot(self, policy, events):
        views = {}
        running = {j.tid: j for j in self.jobs}
        for tid, t in self.trials.items():
            job = running.get(tid)
            views[tid] = TrialView(
                trial_id=tid,
                index=t.index,
                status="running" if job else t.status,
                epochs=t.epochs,
                world_size=job.world_size if job else None,
                until_epoch=job.until if job else None,
                score=dict(t.vals),
                world_sizes=tuple(t.world_sizes),
            )
        return Snapshot(
            now_s=self.now,
            time_left_s=self.ctx.time_budget_s - self.now,
            money_left_usd=self.ctx.money_budget_usd,
            num_slots=self.total_slots(policy),
            free_slots=self.total_slots(policy) - self.held() - self.hold,
            trials=views,
            events=tuple(events),
        )

    # -- decisions -----------------------------------------------------------------------------

    def apply(self, policy, snap, decisions):
        launched_w = 0
        finished = False
        stopped = []
        for d in decisions:
            assert not finished, "a decision after Finish"
            if isinstance(d, Finish):
                finished = True
            elif isinstance(d, Launch):
                launched_w += d.world_size
                assert launched_w <= snap.free_slots, f"over-asked slots: {d} with {snap.free_slots} free"
                assert 0 <= d.trial_index < self.ctx.max_configurations
                assert 1 <= d.until_epoch <= self.ctx.max_epochs
                assert d.world_size == 1 or d.world_size in self.ctx.usable_world_sizes
                self._launch(d)
            elif isinstance(d, (Eliminate, Stop)):
                t = self.trials[d.trial_id]
                assert t.status not in ("eliminated", "failed", "diverged"), f"{d} on a {t.status} trial"
                job = next((j for j in self.jobs if j.tid == d.trial_id), None)
                if job is not None:
                    stopped.append(self._stop(job))
                if isinstance(d, Eliminate):
                    t.status = "eliminated"
                    self.eliminated.append((self.now, t.index))
            else:
                raise AssertionError(f"unknown decision {d!r}")
        self.max_held = max(self.max_held, self.held())
        return finished, stopped

    def _launch(self, d):
        t = self.by_index.get(d.trial_index)
        if t is None:
            t = _Trial(tid=f"t{d.trial_index:03d}", index=d.trial_index)
            self.trials[t.tid] = t
            self.by_index[d.trial_index] = t
        assert all(j.tid != t.tid for j in self.jobs), f"{t.tid} is already running"
        assert t.status == "paused", f"launch of a {t.status} trial {t.tid}"
        assert d.until_epoch > t.epochs, f"{t.tid} is at {t.epochs}, launched to {d.until_epoch}"
        if not t.world_sizes:
            overhead = self.ctx.startup_s
        elif t.world_sizes[-1] == d.world_size:
            overhead = self.ctx.relaunch_s
        else:
            overhead = self.ctx.resize_s
        per_epoch = self.ctx.epoch_time_s / self.ctx.scaling.speedup_at(d.world_size)
        end_epoch, outcome = d.until_epoch, "reached"
        for e in range(t.epochs + 1, d.until_epoch + 1):
            if self.fail_at.get(t.index) == e:
                end_epoch, outcome = e - 1, "failed"
                del self.fail_at[t.index]
                break
            if math.isnan(self.curves[t.index][e - 1]):
                end_epoch, outcome = e, "diverged"
                break
            if self.stop_once.get(t.index) == e and e < d.until_epoch:
                end_epoch, outcome = e, "stopped"
                del self.stop_once[t.index]
                break
        epochs_run = end_epoch - t.epochs if outcome != "failed" else end_epoch - t.epochs + 0.5
        job = _Job(t.tid, t.index, self.now, t.epochs, d.until_epoch, d.world_size, overhead, per_epoch,
                   self.now + overhead + epochs_run * per_epoch, end_epoch, outcome)
        t.world_sizes.append(d.world_size)
        self.jobs.append(job)
        self.launches.append((self.now, d))

    def _finish_job(self, job, outcome, end_epoch):
        t = self.trials[job.tid]
        for e in range(job.start_epoch + 1, end_epoch + 1):
            t.vals[e] = self.curves[t.index][e - 1]
        t.epochs = end_epoch if outcome != "diverged" else end_epoch
        if outcome in ("failed", "diverged"):
            t.status = outcome
        self.jobs.remove(job)
        self.ended_to.setdefault(job.until, set()).add(t.index)
        return JobEvent(job.tid, t.index, outcome, t.epochs, job.until, job.world_size)

    def _stop(self, job):
        done = int(max(0.0, self.now - job.start_s - job.overhead_s) / job.per_epoch_s + 1e-9)
        return self._finish_job(job, "stopped", min(job.end_epoch, job.start_epoch + done))

    # -- the loop ------------------------------------------------------------------------------

    def run(self, policy, max_decisions=10_000):
        policy.setup(self.ctx)
        events = []
        deadline = self.ctx.time_budget_s
        for _ in range(max_decisions):
            snap = self.snapshot(policy, events)
            decisions = list(policy.decide(snap))
            self.decisions.append((self.now, decisions))
            for check in self.checks:
                check(self, snap, decisions)
            finished, events = self.apply(policy, snap, decisions)
            if finished:
                for job in list(self.jobs):
                    self._stop(job)
                self.end = "finish"
                break
            if events:
                continue  # stopped jobs: report them at once
            assert self.jobs, "the policy stalled: nothing running and no Finish"
            t_next = min(j.end_s for j in self.jobs)
            if t_next > deadline:
                self.now = deadline
                for job in sorted(self.jobs, key=lambda j: j.tid):
                    self._stop(job)
                self.end = "deadline"
                break
            self.now = t_next
            ending = sorted((j for j in self.jobs if j.end_s == t_next), key=lambda j: j.tid)
            events = [self._finish_job(j, j.outcome, j.end_epoch) for j in ending]
        else:
            raise AssertionError("too many decisions")
        final = self.snapshot(policy, [])
        return policy.answer(final), final

    # -- views for assertions ------------------------------------------------------------------

    def launched(self, until=None):
        return [d.trial_index for _, d in self.launches if until is None or d.until_epoch == until]

    def trial_id(self, index):
        return self.by_index[index].tid


def json_roundtrip(report):
    return json.loads(json.dumps(report, allow_nan=False))


# -- fixed_cluster_slots --------------------------------------------------------------------------


def test_fixed_cluster_slots_arithmetic():
    # 0.001 USD per slot-second; a 1000 s deadline rents one slot for 1 USD.
    c = make_context(num_slots=8, time_budget_s=1000.0, money_budget_usd=4.5)
    assert fixed_cluster_slots(c) == 4
    assert fixed_cluster_slots(make_context(num_slots=2, time_budget_s=1000.0, money_budget_usd=4.5)) == 2
    assert fixed_cluster_slots(make_context(num_slots=8, time_budget_s=1000.0, money_budget_usd=0.5)) == 1
    assert fixed_cluster_slots(make_context(num_slots=8, time_budget_s=1000.0, money_budget_usd=4.0)) == 4
    # Billed in 600 s increments: 1000 s -> 1200 s -> 1.2 USD a slot.
    c = make_context(num_slots=8, time_budget_s=1000.0, money_budget_usd=4.5,
                     billing=Billing(3.6, granularity_s=600))
    assert fixed_cluster_slots(c) == 3
    assert fixed_cluster_slots(make_context(num_slots=8, billing=Billing(0.0))) == 8
    # base.fixed_cluster_slots overflows on an infinite money budget; cluster_slots does not.
    assert cluster_slots(make_context(num_slots=8, money_budget_usd=math.inf)) == 8
    assert cluster_slots(c) == 3


# -- SHA ------------------------------------------------------------------------------------------


def sha_time(n, slots=3, tau=10.0, startup=2.0, relaunch=1.0, rungs=(1, 3, 9), eta=3):
    """SHA's predicted time, straight from the closed form (W = 1)."""
    total, prev = 0.0, 0
    for k, (r, c) in enumerate(zip(rungs, survivor_counts(n, len(rungs), eta))):
        job = (startup if k == 0 else relaunch) + (r - prev) * tau
        total += math.ceil(c / slots) * job
        prev = r
    return total


def test_sha_nine_configurations_rungs_and_eliminations():
    cluster = FakeCluster(make_context(), NINE)
    policy = ShaPolicy()
    answer, _ = cluster.run(policy)
    report = json_roundtrip(policy.report())
    assert report["plan"]["rungs"] == [1, 3, 9]
    assert report["plan"]["survivors"] == [9, 3, 1]
    assert report["plan"]["num_configurations"] == 9
    assert policy.reserved_slots == 3 and report["cluster_slots"] == 3
    assert sorted(cluster.launched(until=1)) == list(range(9))
    assert sorted(cluster.launched(until=3)) == [0, 1, 3]
    assert cluster.launched(until=9) == [3]
    after_round = {}
    for when, index in cluster.eliminated:
        after_round.setdefault(when, []).append(index)
    rounds = [sorted(v) for _, v in sorted(after_round.items())]
    assert rounds == [[2, 4, 5, 6, 7, 8], [0, 1]]
    assert all(d.world_size == 1 for _, d in cluster.launches)
    assert cluster.max_held <= 3
    assert answer == (cluster.trial_id(3), 9)
    assert cluster.end == "finish"
    # Launch.round_index names the round.
    assert {d.round_index for _, d in cluster.launches if d.until_epoch == 3} == {2}


def test_sha_chooses_the_largest_n_that_fits_the_deadline():
    assert (sha_time(9), sha_time(10), sha_time(11), sha_time(12)) == (118.0, 130.0, 130.0, 151.0)
    for limit, expected in ((118.0, 9), (129.9, 9), (130.0, 11), (150.9, 11), (151.0, 12)):
        t = limit / 0.9
        c = make_context(max_configurations=64, num_slots=8, time_budget_s=t, money_budget_usd=3.5 * t / 1000)
        assert fixed_cluster_slots(c) == 3
        policy = ShaPolicy()
        policy.setup(c)
        report = policy.report()
        assert report["plan"]["num_configurations"] == expected, limit
        assert report["plan"]["feasible"] is True
        assert report["plan"]["predicted_time_s"] == pytest.approx(sha_time(expected))
        assert report["plan"]["predicted_time_s"] <= limit + 1e-6
        assert sha_time(expected + 1) > limit


def test_sha_best_effort_trains_the_best_to_the_largest_target_that_fits():
    # 45 s may be planned; one configuration to 9 epochs takes 2 + 10 + 1 + 20 + 1 + 60 = 94 s.
    # Anchored at 4 epochs (rungs 1, 4): 12 + 31 = 43 s for 3 configurations on 3 slots (a 4th
    # needs a second wave, 55 s); at 5 epochs one configuration takes 12 + 41 = 53 s.
    c = make_context(max_configurations=64, time_budget_s=50.0)
    policy = ShaPolicy()
    policy.setup(c)
    report = policy.report()
    assert report["plan"]["feasible"] is False
    assert "BEST EFFORT" in report["plan"]["message"]
    assert (report["plan"]["rungs"], report["plan"]["survivors"]) == ([1, 4], [3, 1])
    assert report["plan"]["predicted_time_s"] == pytest.approx(43.0)
    assert policy.schedule_epochs == 4
    cluster = FakeCluster(c, many_curves(64))
    answer, _ = cluster.run(ShaPolicy())
    assert cluster.end == "finish"  # within the deadline, not stopped by it
    assert sorted(cluster.launched(until=1)) == [0, 1, 2]
    finalist = cluster.launched(until=4)
    assert len(finalist) == 1
    assert answer == (cluster.trial_id(finalist[0]), 4)


def test_sha_failed_and_diverged_rank_last_and_the_round_completes():
    curves = {i: list(v) for i, v in NINE.items()}
    curves[3][1] = NAN  # 3, best at rung 3, diverges in epoch 2
    cluster = FakeCluster(make_context(), curves, fail_at={1: 3, 2: 1})
    answer, final = cluster.run(ShaPolicy())
    assert sorted(cluster.launched(until=3)) == [0, 1, 3]
    assert cluster.launched(until=9) == [0]  # the only one of the three still valid
    assert final.trials[cluster.trial_id(3)].status == "diverged"
    assert final.trials[cluster.trial_id(1)].status == "failed"
    assert answer == (cluster.trial_id(0), 9)
    # The failed and diverged trials are not eliminated again (they are out already).
    assert 2 not in [i for _, i in cluster.eliminated] and 3 not in [i for _, i in cluster.eliminated]


def test_sha_diverged_finalist_is_never_the_answer():
    curves = {i: list(v) for i, v in NINE.items()}
    curves[3][7] = NAN  # the finalist diverges at epoch 8
    cluster = FakeCluster(make_context(), curves)
    answer, final = cluster.run(ShaPolicy())
    assert final.trials[cluster.trial_id(3)].status == "diverged"
    assert answer == (cluster.trial_id(0), 3)  # best valid at the rung before


def test_sha_relaunches_a_job_stopped_from_outside_once():
    cluster = FakeCluster(make_context(), NINE, stop_once={0: 2})
    answer, _ = cluster.run(ShaPolicy())
    assert cluster.launched(until=3).count(0) == 2
    assert answer == (cluster.trial_id(3), 9)


def test_sha_never_asks_for_more_than_the_free_slots():
    # One of the three slots is held by someone else all along: two at a time.
    cluster = FakeCluster(make_context(), NINE, hold=1)
    answer, _ = cluster.run(ShaPolicy())  # FakeCluster.apply asserts the free slots
    assert cluster.max_held <= 2
    assert answer == (cluster.trial_id(3), 9)


# -- Hyperband ------------------------------------------------------------------------------------


def test_hyperband_brackets_fit_the_deadline_and_answer_across_brackets():
    c = make_context(max_configurations=64, num_slots=3, time_budget_s=600.0, money_budget_usd=1e9)
    curves = many_curves(64)
    cluster = FakeCluster(c, curves)
    policy = HyperbandPolicy()
    answer, final = cluster.run(policy)
    report = json_roundtrip(policy.report())
    brackets = report["plan"]["brackets"]
    assert [b["rungs"] for b in brackets] == [[1, 3, 9], [3, 9], [9]]
    assert report["plan"]["feasible"] is True and report["plan"]["num_brackets"] == 3
    assert report["plan"]["predicted_time_s"] <= 0.9 * 600.0 + 1e-6
    # Round indexes: 1-3 for the first bracket, 4-5 for the second, 6 for the last.
    assert [r["index"] for r in report["plan"]["rounds"]] == [1, 2, 3, 4, 5, 6]
    assert [r["index"] for r in report["rounds"]] == [1, 2, 3, 4, 5, 6]
    assert {d.round_index for _, d in cluster.launches if d.trial_index == brackets[2]["first_index"]} == {6}
    # Equal shares, unused time passed on.
    used = 0.0
    for j, b in enumerate(brackets):
        assert b["predicted_time_s"] <= (540.0 - used) / (3 - j) + 1e-6
        used += b["predicted_time_s"]
    # Distinct configurations, consecutive per bracket, first launch to the bracket's first rung.
    firsts = [b["first_index"] for b in brackets]
    ns = [b["num_configurations"] for b in brackets]
    assert firsts == [0, ns[0], ns[0] + ns[1]]
    for b in brackets:
        for i in range(b["first_index"], b["first_index"] + b["num_configurations"]):
            first_launch = next(d for _, d in cluster.launches if d.trial_index == i)
            assert first_launch.until_epoch == b["rungs"][0]
    assert cluster.max_held <= 3
    assert cluster.end == "finish"
    # The answer: the best at epoch 9 over every bracket's finalists.
    at9 = {t.trial_id: t.score[9] for t in final.trials.values() if 9 in t.score}
    assert len(at9) == sum(b["survivors"][-1] for b in brackets)
    assert answer == (max(at9, key=at9.get), 9)


def test_hyperband_drops_brackets_that_cannot_fit():
    # 9 epochs at 10 s: the last bracket alone needs 92 s; three brackets in 150 s cannot fit.
    c = make_context(max_configurations=64, time_budget_s=150.0 / 0.9)
    policy = HyperbandPolicy()
    policy.setup(c)
    report = policy.report()
    assert report["plan"]["feasible"] is True
    assert report["plan"]["num_brackets"] < 3
    assert report["plan"]["brackets"][0]["rungs"] == [1, 3, 9]  # the most exploratory kept
    assert report["plan"]["predicted_time_s"] <= 150.0 + 1e-6


# -- ASHA -----------------------------------------------------------------------------------------


def asha_promotion_check(eta, rungs):
    """Every promotion is of a trial in the top floor(|rung| / eta) of the rung it leaves."""

    def check(cluster, snap, decisions):
        for d in decisions:
            if not isinstance(d, Launch) or d.round_index == 1:
                continue
            level = d.round_index - 2
            r = rungs[level]
            members = cluster.ended_to.get(r, set())

            def key(i, r=r):
                v = cluster.by_index[i].vals.get(r)
                bad = cluster.by_index[i].status in ("failed", "diverged") or v is None or math.isnan(v)
                return (1, 0.0, i) if bad else (0, -v, i)

            top = sorted(members, key=key)[: len(members) // eta]
            assert d.trial_index in top, (d, sorted(members, key=key))
            assert d.until_epoch == rungs[level + 1]

    return check


def test_asha_promotes_the_top_third_and_answers_the_best_at_the_highest_rung():
    c = make_context()
    cluster = FakeCluster(c, NINE)
    cluster.checks.append(asha_promotion_check(3, (1, 3, 9)))
    policy = AshaPolicy()
    answer, final = cluster.run(policy)
    assert policy.reserved_slots == 3
    assert sorted(cluster.launched(until=1)) == list(range(9))
    assert len(cluster.launched(until=3)) == 3
    assert len(cluster.launched(until=9)) == 1
    assert cluster.end == "finish"
    assert cluster.max_held <= 3
    at_top = {t.trial_id: t.score[9] for t in final.trials.values() if 9 in t.score}
    assert answer == (max(at_top, key=at_top.get), 9)
    report = json_roundtrip(policy.report())
    assert report["jobs_per_rung"] == [9, 3, 1]
    assert report["plan"]["rungs"] == [1, 3, 9]


def test_asha_many_configurations_deadline_and_no_job_left_unfinished():
    # 64 configurations, 3 slots, a deadline ASHA cannot fill: it stops starting configurations
    # when one job to the first rung no longer fits, and finishes when nothing can complete.
    c = make_context(max_configurations=64, time_budget_s=400.0)
    curves = many_curves(64)
    curves[5][0] = NAN  # diverges at once
    cluster = FakeCluster(c, curves, fail_at={7: 1})
    cluster.checks.append(asha_promotion_check(3, (1, 3, 9)))
    policy = AshaPolicy()
    answer, final = cluster.run(policy)
    assert cluster.end == "finish"  # the policy finished before the deadline stopped anything
    assert all(d.trial_index != 5 and d.trial_index != 7 for _, d in cluster.launches if d.round_index > 1)
    # Jobs are planned within the safety fraction of the deadline: 0.9 * 400 = 360 s.
    for when, d in cluster.launches:
        if d.round_index == 1:
            assert 360.0 - when >= 2.0 + 10.0  # one job to the first rung still fitted
    # No new configuration was startable when it finished.
    last_finish = cluster.decisions[-1][0]
    assert last_finish <= 360.0
    assert 360.0 - last_finish < 12.0 or len(cluster.launched(until=1)) == 64
    rung_top = max(r for r in (1, 3, 9) if any(r in t.score for t in final.trials.values()))
    vals = {t.trial_id: t.score[rung_top] for t in final.trials.values()
            if rung_top in t.score and t.status != "diverged"}
    assert answer == (max(vals, key=vals.get), rung_top)


# -- elastic SHA ----------------------------------------------------------------------------------


def elastic_sha_cost(n, price_per_s=0.001, rungs=(1, 3, 9), tau=10.0, startup=2.0, relaunch=1.0):
    cost, prev = 0.0, 0
    for k, (r, c) in enumerate(zip(rungs, survivor_counts(n, len(rungs), 3))):
        cost += c * price_per_s * ((startup if k == 0 else relaunch) + (r - prev) * tau)
        prev = r
    return cost


def test_elastic_sha_one_slot_per_trial_and_n_fits_the_money():
    assert elastic_sha_cost(9) == pytest.approx(0.232)
    assert elastic_sha_cost(10) == pytest.approx(0.244)
    c = make_context(max_configurations=64, num_slots=9, money_budget_usd=0.24 / 0.9)
    policy = ElasticShaPolicy()
    policy.setup(c)
    report = policy.report()
    assert policy.reserved_slots is None
    assert report["plan"]["num_configurations"] == 9
    assert report["plan"]["predicted_cost_usd"] == pytest.approx(0.232)
    cluster = FakeCluster(c, NINE)
    answer, _ = cluster.run(ElasticShaPolicy())
    assert all(d.world_size == 1 for _, d in cluster.launches)
    assert cluster.max_held == 9  # all nine at once: one slot each
    assert sorted(cluster.launched(until=3)) == [0, 1, 3]
    assert answer == (cluster.trial_id(3), 9)


def test_elastic_sha_n_fits_the_time_too():
    # Time binds: on 3 slots n = 9 takes 118 s, n = 10 takes 130 s.
    c = make_context(max_configurations=64, time_budget_s=120.0 / 0.9)
    policy = ElasticShaPolicy()
    policy.setup(c)
    assert policy.report()["plan"]["num_configurations"] == 9


# -- elastic-uniform ------------------------------------------------------------------------------


def test_uniform_world_size():
    c = make_context(num_slots=16, world_size_ladder=(1, 2, 4, 8))
    assert [uniform_world_size(c, 8, n) for n in (1, 2, 3, 4, 5, 8, 9)] == [8, 4, 2, 2, 1, 1, 1]
    assert uniform_world_size(c, 6, 1) == 4
    assert uniform_world_size(make_context(world_size_ladder=(2, 4)), 8, 9) == 2  # smallest usable


def test_elastic_uniform_splits_the_affordable_slots_over_the_survivors():
    # 1e4 s deadline rents a slot for 10 USD; 85 USD -> G = 8 of 16 slots.
    c = make_context(num_slots=16, time_budget_s=1e4, money_budget_usd=85.0)
    assert fixed_cluster_slots(c) == 8
    cluster = FakeCluster(c, NINE)
    policy = ElasticUniformPolicy()
    answer, _ = cluster.run(policy)
    report = json_roundtrip(policy.report())
    assert policy.reserved_slots is None
    assert report["plan"]["world_sizes"] == [1, 2, 8]
    assert report["plan"]["survivors"] == [9, 3, 1]
    ws = {}
    for _, d in cluster.launches:
        ws.setdefault(d.until_epoch, set()).add(d.world_size)
    assert ws == {1: {1}, 3: {2}, 9: {8}}
    assert cluster.max_held <= 8
    assert answer == (cluster.trial_id(3), 9)


def test_elastic_uniform_n_fits_time_and_money():
    c = make_context(num_slots=16, max_configurations=64, time_budget_s=1e4, money_budget_usd=85.0)
    policy = ElasticUniformPolicy()
    policy.setup(c)
    report = policy.report()
    n = report["plan"]["num_configurations"]
    assert report["plan"]["predicted_time_s"] <= 0.9 * 1e4
    assert report["plan"]["predicted_cost_usd"] <= 0.9 * 85.0
    assert n == 64  # the budgets are generous
    tight = make_context(num_slots=16, max_configurations=64, time_budget_s=1e4, money_budget_usd=1.0)
    policy = ElasticUniformPolicy()
    policy.setup(tight)
    report = policy.report()
    assert report["plan"]["predicted_cost_usd"] <= 0.9 + 1e-9
    assert 1 <= report["plan"]["num_configurations"] < 64


# -- oracle ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "time_budget_s, expected_w, expected_target",
    [(60.0, 2, 9), (20.0, 8, 9), (200.0, 1, 9), (10.0, 8, 4)],
)
def test_oracle_picks_the_smallest_w_that_fits(time_budget_s, expected_w, expected_target):
    # One job to 9 epochs: 92 s at W=1, 49.4 s at W=2, 27 s at W=4, 16.1 s at W=8.
    c = make_context(num_slots=8, time_budget_s=time_budget_s, oracle_index=4)
    curves = many_curves(9)
    cluster = FakeCluster(c, curves)
    policy = OraclePolicy()
    answer, _ = cluster.run(policy)
    assert [(d.trial_index, d.world_size, d.until_epoch) for _, d in cluster.launches] == [
        (4, expected_w, expected_target)
    ]
    assert policy.schedule_epochs == expected_target
    assert policy.report()["plan"]["feasible"] is (expected_target == 9)
    assert answer == (cluster.trial_id(4), expected_target)
    assert cluster.end == "finish"


def test_oracle_money_limits_the_world_size():
    # 20 s deadline: W=8 fits the time (16.1 s) but costs 0.1285 USD > 0.12; W=4 too slow.
    # Furthest within both: W=8 reaches 8 epochs (money), W=4 reaches 5 (time).
    c = make_context(num_slots=8, time_budget_s=20.0, money_budget_usd=0.12 / 0.9, oracle_index=0)
    policy = OraclePolicy()
    policy.setup(c)
    report = policy.report()
    plan = report["plan"]
    assert (plan["world_size"], plan["target_epochs"], plan["feasible"]) == (8, 8, False)
    assert report["plan"]["predicted_cost_usd"] <= 0.12 + 1e-12


def test_oracle_diverged_has_no_answer_and_needs_its_index():
    curves = many_curves(9)
    curves[2][5] = NAN
    c = make_context(num_slots=8, time_budget_s=60.0, oracle_index=2)
    cluster = FakeCluster(c, curves)
    answer, final = cluster.run(OraclePolicy())
    assert final.trials[cluster.trial_id(2)].status == "diverged"
    assert answer is None
    with pytest.raises(ConfigError, match="oracle_index"):
        OraclePolicy().setup(make_context())


# -- budgets: the rent, billing rounding and the best-effort fallbacks ----------------------------


def test_rent_time_limit_counts_billing_rounding_and_minimum():
    # 0.001 USD per slot-second; 0.9 of 0.45 USD rents one slot for 405 s, two for 202.5 s.
    c = make_context(time_budget_s=1000.0, money_budget_usd=0.45)
    assert rent_time_limit(c, 1) == pytest.approx(405.0)
    assert rent_time_limit(c, 2) == pytest.approx(202.5)
    # The deadline's safety fraction caps it.
    assert rent_time_limit(make_context(time_budget_s=100.0, money_budget_usd=0.45), 1) == pytest.approx(90.0)
    # 600 s increments: 405 billable seconds rent no whole increment; 1350 rent two (1200 s).
    assert rent_time_limit(make_context(time_budget_s=1000.0, money_budget_usd=0.45,
                                        billing=Billing(3.6, granularity_s=600)), 1) == 0.0
    assert rent_time_limit(make_context(time_budget_s=2000.0, money_budget_usd=1.5,
                                        billing=Billing(3.6, granularity_s=600)), 1) == pytest.approx(1200.0)
    # A 60 s minimum that 45 billable seconds cannot pay: nothing fits.
    assert rent_time_limit(make_context(money_budget_usd=0.05, billing=Billing(3.6, minimum_s=60)), 1) < 0
    rounded = make_context(money_budget_usd=0.45, billing=Billing(3.6, 7.0, 60.0))
    for g, c in ((1, make_context(money_budget_usd=0.45)), (3, rounded)):
        limit = rent_time_limit(c, g)
        assert c.billing.job_cost_usd(g, limit) <= 0.9 * c.money_budget_usd + 1e-9  # float slack


def test_sha_plans_the_rent_of_its_cluster_within_the_money():
    # 200 USD-milli of rent is 200 s of one slot (G = 1: the deadline alone would rent 0.1 slot).
    c = make_context(max_configurations=64, time_budget_s=1e4, money_budget_usd=0.2 / 0.9)
    policy = ShaPolicy()
    policy.setup(c)
    report = policy.report()
    assert policy.reserved_slots == 1
    assert report["plan"]["feasible"] is True
    assert report["plan"]["survivors"] == [8, 2, 1]  # 96 + 42 + 61 = 199 s; 9 need 108 + 63 + 61
    assert report["plan"]["predicted_cost_usd"] <= 0.2 + 1e-9
    cluster = FakeCluster(c, many_curves(64))
    answer, _ = cluster.run(ShaPolicy())
    assert cluster.end == "finish" and cluster.decisions[-1][0] <= 200.0  # the rent stops in time
    assert answer is not None and answer[1] == 9


def test_sha_rents_fewer_slots_when_billing_rounding_breaks_the_rent_of_g():
    # Hourly billing at 3.6 USD a slot: the 200 s deadline rents G = 2 slots for 7.2 <= 7.3 USD,
    # but the plan may spend only 0.9 * 7.3 = 6.57 USD: one slot for an hour (3.6 USD).
    c = make_context(max_configurations=64, time_budget_s=200.0, money_budget_usd=7.3,
                     billing=Billing(3.6, granularity_s=3600))
    assert cluster_slots(c) == 2
    policy = ShaPolicy()
    policy.setup(c)
    report = policy.report()
    assert policy.reserved_slots == 1 and report["cluster_slots"] == 1 and report["affordable_slots"] == 2
    assert report["plan"]["feasible"] is True and report["plan"]["survivors"] == [6, 2, 1]  # 175 s <= 180 s
    assert report["plan"]["predicted_cost_usd"] == pytest.approx(3.6)


def test_hyperband_runs_the_most_exploratory_single_bracket_that_fits():
    # 93.5 s: the s=2 bracket needs 94 s for one configuration; the s=1 bracket (rungs 3, 9)
    # trains 3 in 32 + 61 = 93 s.
    c = make_context(max_configurations=64, time_budget_s=93.5 / 0.9)
    policy = HyperbandPolicy()
    policy.setup(c)
    report = policy.report()
    assert report["plan"]["feasible"] is True and report["plan"]["num_brackets"] == 1
    assert [b["rungs"] for b in report["plan"]["brackets"]] == [[3, 9]]
    assert report["plan"]["num_configurations"] == 3
    assert report["plan"]["predicted_time_s"] == pytest.approx(93.0)


def test_hyperband_best_effort_runs_its_s0_bracket_to_the_largest_target():
    # 50 s: no bracket trains one configuration to 9 epochs (the s=0 one takes 92 s); one job
    # to 4 epochs takes 42 s, three of them run at once on the 3 slots.
    c = make_context(max_configurations=64, time_budget_s=50.0 / 0.9)
    policy = HyperbandPolicy()
    policy.setup(c)
    report = policy.report()
    assert report["plan"]["feasible"] is False and "BEST EFFORT" in report["plan"]["message"]
    assert [b["rungs"] for b in report["plan"]["brackets"]] == [[4]]
    assert report["plan"]["num_configurations"] == 3
    assert policy.schedule_epochs == 4
    cluster = FakeCluster(c, many_curves(64))
    answer, final = cluster.run(HyperbandPolicy())
    assert cluster.end == "finish"
    at4 = {t.trial_id: t.score[4] for t in final.trials.values()}
    assert answer == (max(at4, key=at4.get), 4)


def test_asha_best_effort_anchors_its_rungs_at_the_largest_target():
    # 50 s: one configuration promoted through 1, 3, 9 needs 94 s; through 1, 4 it needs 43 s.
    policy = AshaPolicy()
    policy.setup(make_context(time_budget_s=50.0 / 0.9))
    report = policy.report()
    assert report["plan"]["rungs"] == [1, 4] and report["plan"]["feasible"] is False
    assert "BEST EFFORT" in report["plan"]["message"] and policy.schedule_epochs == 4
    # Three epochs at eta 4 is one rung at 3 (32 s); 20 s fit one epoch (12 s), not two (22 s).
    c = make_context(max_epochs=3, eta=4, time_budget_s=20.0 / 0.9)
    cluster = FakeCluster(c, many_curves(9, epochs=3))
    policy = AshaPolicy()
    answer, final = cluster.run(policy)
    assert policy.report()["plan"]["rungs"] == [1]
    assert sorted(cluster.launched(until=1)) == [0, 1, 2]  # one wave on 3 slots; a second ends too late
    assert cluster.end == "finish"
    at1 = {t.trial_id: t.score[1] for t in final.trials.values()}
    assert answer == (max(at1, key=at1.get), 1)


def test_asha_launches_only_jobs_that_end_before_the_rent_breaks_the_money():
    # The money rents one slot for 200 s (G = 1) though the deadline is 1e4 s.
    c = make_context(max_configurations=64, time_budget_s=1e4, money_budget_usd=0.2 / 0.9)
    cluster = FakeCluster(c, many_curves(64))
    policy = AshaPolicy()
    answer, _ = cluster.run(policy)
    assert policy.reserved_slots == 1
    assert policy.report()["plan"]["cluster_time_limit_s"] == pytest.approx(200.0)
    assert cluster.end == "finish" and cluster.decisions[-1][0] <= 200.0 + 1e-6
    assert answer is not None


def test_elastic_sha_best_effort_when_the_money_cannot_train_one_to_max_epochs():
    # 0.05 USD: one configuration to 9 epochs costs 0.094; anchored at 4 epochs, 0.043.
    c = make_context(max_configurations=64, num_slots=9, money_budget_usd=0.05 / 0.9)
    policy = ElasticShaPolicy()
    policy.setup(c)
    report = policy.report()
    assert report["plan"]["feasible"] is False and "BEST EFFORT" in report["plan"]["message"]
    assert (report["plan"]["rungs"], report["plan"]["survivors"]) == ([1, 4], [1, 1])
    assert report["plan"]["predicted_cost_usd"] == pytest.approx(0.043)
    cluster = FakeCluster(c, many_curves(64))
    answer, _ = cluster.run(ElasticShaPolicy())
    assert cluster.end == "finish" and answer == (cluster.trial_id(0), 4)


def test_elastic_uniform_splits_fewer_slots_when_g_workers_cost_too_much():
    # Hourly billing, 3.6 USD a slot-hour: 29 USD afford G = 8 for the deadline, but one job at
    # W = 8 is billed 28.8 USD > 0.9 * 29. The plan that trains the most configurations to
    # 9 epochs then runs them on one slot at a time: 5 hourly jobs, then 1 and 1 (25.2 USD).
    c = make_context(num_slots=16, max_configurations=64, time_budget_s=1000.0, money_budget_usd=29.0,
                     billing=Billing(3.6, granularity_s=3600))
    assert cluster_slots(c) == 8
    policy = ElasticUniformPolicy()
    policy.setup(c)
    report = policy.report()
    assert report["plan"]["feasible"] is True
    assert report["cluster_slots"] == 1 and report["affordable_slots"] == 8 and report["max_slots_held"] == 1
    assert report["plan"]["survivors"] == [5, 1, 1] and report["plan"]["world_sizes"] == [1, 1, 1]
    assert report["plan"]["predicted_cost_usd"] == pytest.approx(25.2)


class _SpentCluster(FakeCluster):
    """A FakeCluster whose snapshots say only ``allowance`` USD of the plannable money is left."""

    def __init__(self, *args, allowance, **kwargs):
        super().__init__(*args, **kwargs)
        self.allowance = allowance

    def snapshot(self, policy, events):
        from dataclasses import replace

        snap = super().snapshot(policy, events)
        m = self.ctx.money_budget_usd
        return replace(snap, money_left_usd=m - (0.9 * m - self.allowance))


@pytest.mark.parametrize("allowance, expected_w", [(0.6, 2), (0.7, 8)])
def test_elastic_uniform_recomputes_w_only_when_the_rest_still_fits(allowance, expected_w):
    # Flat scaling: W workers cost W times as much. Planned: 9, 3, 1 trials at W = 1, 2, 8. Eight
    # configurations diverge in epoch 1, so round 2 has one trial: W = 8 would cost 8 * 23 + 8 *
    # 61 slot-seconds (0.672 USD) against 2 * 23 + 8 * 63 (0.55 USD) at the planned W = 2.
    flat = ScalingModel(world_sizes=(1, 2, 4, 8), speedup=(1.0, 1.0, 1.0, 1.0))
    c = make_context(num_slots=8, scaling=flat, time_budget_s=1000.0, money_budget_usd=10.0)
    assert cluster_slots(c) == 8
    curves = {i: list(v) for i, v in NINE.items()}
    for i in range(1, 9):
        curves[i][0] = NAN
    cluster = _SpentCluster(c, curves, allowance=allowance)
    policy = ElasticUniformPolicy()
    answer, _ = cluster.run(policy)
    assert policy.report()["plan"]["world_sizes"] == [1, 2, 8]
    assert [d.world_size for _, d in cluster.launches if d.until_epoch == 3] == [expected_w]
    assert answer == (cluster.trial_id(0), 9)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_plans_nothing_when_not_even_one_epoch_fits(name):
    # 0.9 * 0.001 USD pay 0.9 slot-seconds; one epoch takes 12 s at W = 1 (3.6 s at W = 8).
    c = make_context(money_budget_usd=0.001, oracle_index=0 if name == "oracle" else None)
    policy = make_policy(name)
    cluster = FakeCluster(c, NINE)
    answer, _ = cluster.run(policy)
    report = json_roundtrip(policy.report())
    assert report["plan"]["message"].startswith("NO PLAN")
    assert policy.reserved_slots is None  # no cluster rented
    assert cluster.launches == [] and cluster.end == "finish" and answer is None
    assert len(cluster.decisions) == 1  # Finish at the first decision


# -- every policy ---------------------------------------------------------------------------------


def test_registry_names_and_fresh_objects():
    assert set(POLICIES) == {"seer", "sha", "hyperband", "asha", "elastic-sha", "elastic-uniform", "oracle"}
    assert POLICY_NAMES == tuple(POLICIES)
    for name in POLICIES:
        a, b = make_policy(name), make_policy(name)
        assert a is not b and a.name == name
    with pytest.raises(ConfigError, match="policy"):
        make_policy("random-search")


def scenario(name):
    c = make_context(max_configurations=27, num_slots=4, time_budget_s=900.0, money_budget_usd=2.0,
                     oracle_index=11 if name == "oracle" else None)
    curves = many_curves(27)
    curves[11][8] = NAN if name != "oracle" else curves[11][8]  # the best configuration diverges late
    curves[3][2] = NAN
    return c, curves


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_is_deterministic_finishes_and_never_answers_a_diverged_trial(name):
    runs = []
    for _ in range(2):
        c, curves = scenario(name)
        cluster = FakeCluster(c, curves, fail_at={6: 2})
        policy = make_policy(name)
        answer, final = cluster.run(policy)
        report = json_roundtrip(policy.report())
        assert report["policy"] == name
        # What the executor reads: plan.message, and rounds keyed by Launch.round_index.
        assert isinstance(report["plan"]["message"], str) and report["plan"]["message"]
        rounds = {r["index"]: r for r in report["rounds"]}
        for _, d in cluster.launches:
            assert rounds[d.round_index]["rung_epoch"] == d.until_epoch
            assert rounds[d.round_index]["world_size"] == d.world_size
        assert all(r["completed"] for r in report["rounds"])
        assert all(d.until_epoch <= c.max_epochs for _, d in cluster.launches)
        if answer is not None:
            assert final.trials[answer[0]].status != "diverged"
            assert math.isfinite(final.trials[answer[0]].score[answer[1]])
        runs.append(([(t, d) for t, d in cluster.launches], answer, report, cluster.end))
    assert runs[0] == runs[1]
    assert runs[0][3] == "finish"


def test_decide_before_setup_is_an_error():
    for name in POLICIES:
        with pytest.raises(RuntimeError, match="setup"):
            make_policy(name).decide(Snapshot(0.0, 1.0, 1.0, 1, 1, {}))
