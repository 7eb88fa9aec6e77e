"""The SEER planner's search: the best round sequence for a schedule, and the binding budget.

Per schedule (rungs) and survivor counts, :class:`SequenceModel` tabulates each round's job
time and cost at each world size (:mod:`seer_torch.policies.costs`) and finds non-decreasing
world-size sequences by depth-first branch and bound; :func:`search` finds the most
configurations and then the best plan by the objective of :mod:`seer_torch.policies.seer`'s
implementation notes, which also explain the bounds. Pure and deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from seer_torch.errors import ConfigError
from seer_torch.policies.costs import (
    billed_seconds,
    busy_slots,
    first_wave_jobs,
    job_time_s,
    machine_wait_s,
    num_waves,
    wave_overheads_s,
    waves_cost_usd,
    waves_time_s,
    with_slack,
)
from seer_torch.policies.plan_types import DEFAULT_ETA, PlannerInputs, RoundPlan
from seer_torch.policies.rungs import rung_schedules, survivor_counts_unchecked

__all__ = [
    "Best", "Choice", "SequenceModel", "binding_for_more", "binding_for_target", "explore_first",
    "explore_target_floor", "one_fits", "search", "usable_or_raise",
]

# A lower bound is a sum in another order than the exact total: shrink it by this factor before
# cutting on it, so float round-off never cuts a sequence that fits (or wins).
_SAFE = 1.0 - 1e-12

# Two costs whose difference exceeds this always round (to 1e-9 USD) differently.
_COST_EPS = 2e-9


# -- round sequences: time, cost and branch and bound --------------------------------------------


class _Table:
    """Per round and world size of a rung sequence: the job's seconds and dollars per trial in
    the round's first wave and in its later waves (:func:`~.costs.wave_overheads_s`), for a
    previous round at the same ``W`` that ran in one wave, at the same ``W`` in several waves,
    and at another ``W`` (all three identical in the first round); and per round the least
    dollars per trial over the sizes."""

    __slots__ = ("sizes", "per_wave", "jobs", "min_usd", "slots")

    def __init__(self, sizes: tuple[int, ...], per_wave: tuple[int, ...], jobs: list, slots: int) -> None:
        self.sizes = sizes
        self.per_wave = per_wave
        self.slots = slots
        # jobs[k][i] = (same W after one wave, same W after several, another W), each
        # (first wave's job_s, its usd, later waves' job_s, their usd)
        self.jobs = jobs
        self.min_usd = tuple(
            min(min(min(v[1], v[3]) for v in variants) for variants in row) for row in jobs
        )

    def cost_floor(self, counts: Sequence[int]) -> float:
        """A lower bound of the cost of any sequence at survivor counts ``counts``, USD."""
        total = 0.0
        for n, usd in zip(counts, self.min_usd):
            total += n * usd
        return total


def _round_of(n: int, lanes: int, waves: int, job: tuple[float, float, float, float]) -> tuple[float, float]:
    """``(time, cost)`` of ``n`` jobs ``job`` = ``(first wave's s, usd, later waves' s, usd)`` on
    ``lanes`` lanes in ``waves`` waves: :func:`~.costs.waves_time_s` and
    :func:`~.costs.waves_cost_usd`, inlined for the search's inner loop."""
    jf, uf, jl, ul = job
    t = waves * jf if jf == jl else jf + (waves - 1) * jl
    if uf == ul:
        return t, n * uf
    k = first_wave_jobs(n, lanes)
    return t, k * uf + (n - k) * ul


class _Eval:
    """A table at fixed survivor counts: per round and world size ``(time_same, cost_same,
    time_other, cost_other)`` (``same``: after a round at the same ``W``, which ran in one wave
    when the previous count fits its lanes), and suffix lower bounds ``low_t[k][i]``,
    ``low_c[k][i]``: the least time (cost) of rounds ``k..K-1`` with ``W_k >= sizes[i]``, with
    the smaller overhead (a machine wait, :func:`~.costs.machine_wait_s`, only adds to them);
    ``busy[k][i]``: the round's busy slots (:func:`~.costs.busy_slots`)."""

    __slots__ = ("rows", "low_t", "low_c", "busy")

    def __init__(self, table: _Table, counts: Sequence[int]) -> None:
        per_wave = table.per_wave
        m = len(per_wave)
        rows = []
        low_t = [[0.0] * m]
        low_c = [[0.0] * m]
        for k in range(len(counts) - 1, -1, -1):
            n = counts[k]
            row = []
            nt, nc = low_t[-1], low_c[-1]
            lt = [0.0] * m
            lc = [0.0] * m
            bt = bc = math.inf
            jobs_k = table.jobs[k]
            previous_n = counts[k - 1] if k > 0 else 0
            for i in range(m - 1, -1, -1):
                single, several, other = jobs_k[i]
                lanes = per_wave[i]
                waves = num_waves(n, lanes)
                ts, cs = _round_of(n, lanes, waves, single if previous_n <= lanes else several)
                to, co = _round_of(n, lanes, waves, other)
                row.append((ts, cs, to, co))
                t = (ts if ts < to else to) + nt[i]
                c = (cs if cs < co else co) + nc[i]
                if t < bt:
                    bt = t
                if c < bc:
                    bc = c
                lt[i] = bt
                lc[i] = bc
            row.reverse()
            rows.append(row)
            low_t.append(lt)
            low_c.append(lc)
        rows.reverse()
        low_t.reverse()
        low_c.reverse()
        self.rows = rows
        self.low_t = low_t
        self.low_c = low_c
        slots = table.slots
        self.busy = [[busy_slots(n, w, slots) for w in table.sizes] for n in counts]


class Best:
    """The best sequence found so far by the objective's key (see :func:`_best_sequence`)."""

    __slots__ = ("key", "cost", "wide", "sum_w", "choice")

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.cost = math.inf
        self.wide = 0
        self.sum_w = 0
        self.choice: Choice | None = None


class SequenceModel:
    """Closed-form time and cost of a round sequence (see the implementation notes).

    ``previous_busy_slots``: the slots the round before the first one priced held at once (0
    for a fresh plan; a re-plan's last round's); with ``inputs.previous_round_s`` and
    ``inputs.machine_start_s`` it prices the first round's wait for machines
    (:func:`~.costs.machine_wait_s`)."""

    def __init__(
        self, inputs: PlannerInputs, world_sizes: Sequence[int], previous_busy_slots: int = 0
    ) -> None:
        self.inputs = inputs
        self.machine_start_s = float(inputs.machine_start_s or 0.0)
        self.previous_round_s = float(inputs.previous_round_s or 0.0)
        self.previous_busy_slots = previous_busy_slots
        self.tau = float(inputs.epoch_time_s)
        self.wave_tau = float(inputs.wave_epoch_time_s or inputs.epoch_time_s)
        self.slots = inputs.num_slots
        self.sizes = tuple(world_sizes)
        self.price_per_slot_s = inputs.price_usd_per_slot_hour / 3600.0
        self.granularity_s = float(inputs.billing_granularity_s)
        self.minimum_s = float(inputs.billing_minimum_s)
        self.speed = {w: inputs.scaling.speedup_at(w) for w in self.sizes}
        self.time_cap = with_slack(inputs.time_limit_s)
        self.money_cap = with_slack(inputs.money_limit_usd)
        self._jobs: dict[tuple[int, float, int], tuple[float, float]] = {}
        self._rows: dict[tuple, list] = {}
        self._tables: dict[tuple, _Table] = {}

    def job(self, epochs: int, overhead_s: float, w: int) -> tuple[float, float]:
        """``(J, dollars per trial)`` of one job of ``epochs`` epochs at ``W = w`` (cached)."""
        key = (epochs, overhead_s, w)
        got = self._jobs.get(key)
        if got is None:
            job_s = job_time_s(overhead_s, epochs, self.wave_tau, self.speed[w])  # wall clock: the slowest
            mean_s = job_time_s(overhead_s, epochs, self.tau, self.speed[w])  # money: each its own time
            usd = self.price_per_slot_s * w * billed_seconds(mean_s, self.granularity_s, self.minimum_s)
            got = self._jobs[key] = (job_s, usd)
        return got

    def jobs_of(
        self, epochs: int, overheads: tuple[float, float], w: int
    ) -> tuple[float, float, float, float]:
        """``(J, usd)`` of the first wave's job and of the later waves' at ``W = w``, for
        ``overheads`` = ``(first wave, later waves)`` seconds."""
        return self.job(epochs, overheads[0], w) + self.job(epochs, overheads[1], w)

    def _row(
        self, epochs: int, sizes: tuple[int, ...], first_overheads: tuple[tuple[float, float], ...] | None
    ) -> list:
        """One round's ``[(same W after one wave, same W after several, another W) per size]``,
        each :meth:`jobs_of` (cached); ``first_overheads``: the first round's overheads per
        size (all three the same), else ``None`` (:func:`~.costs.wave_overheads_s`)."""
        key = (epochs, sizes, first_overheads)
        got = self._rows.get(key)
        if got is None:
            o = self.inputs.overheads
            if first_overheads is None:
                resize = (o.resize_s, o.resize_s)  # wave_overheads_s at another W
                got = [
                    (
                        self.jobs_of(epochs, wave_overheads_s(o, w, w, True), w),
                        self.jobs_of(epochs, wave_overheads_s(o, w, w, False), w),
                        self.jobs_of(epochs, resize, w),
                    )
                    for w in sizes
                ]
            else:
                got = [(self.jobs_of(epochs, f, w),) * 3 for f, w in zip(first_overheads, sizes)]
            self._rows[key] = got
        return got

    def table(
        self,
        rungs: tuple[int, ...],
        start_epoch: int,
        sizes: tuple[int, ...],
        first_overheads: tuple[tuple[float, float], ...],
    ) -> _Table:
        """The :class:`_Table` of ``rungs`` over world sizes ``sizes`` (ascending), the first
        round paying ``first_overheads[i]`` (first wave, later waves) at ``sizes[i]`` (cached)."""
        key = (rungs, start_epoch, sizes, first_overheads)
        got = self._tables.get(key)
        if got is not None:
            return got
        jobs = [self._row(rungs[0] - start_epoch, sizes, first_overheads)]
        for prev, rung in zip(rungs, rungs[1:]):
            jobs.append(self._row(rung - prev, sizes, None))
        got = self._tables[key] = _Table(sizes, tuple(self.slots // w for w in sizes), jobs, self.slots)
        return got

    def plan_table(self, rungs: tuple[int, ...]) -> _Table:
        """The table of a fresh plan: every usable size, a first round's overheads
        (:func:`~.costs.wave_overheads_s`: cold, then warm workers at ``W = 1``)."""
        o = self.inputs.overheads
        return self.table(rungs, 0, self.sizes, tuple(wave_overheads_s(o, w, None) for w in self.sizes))

    def prepare(
        self,
        rungs: Sequence[int],
        world_sizes: Sequence[int],
        start_epoch: int,
        first_overheads: tuple[float, float],
        previous_world_size: int | None,
        counts: Sequence[int],
    ) -> list[tuple[float, float, int, float, float, float]]:
        """Per round ``(J_k first wave, J_k later waves, trials per wave, dollars per trial of
        the first wave, of the later waves, seconds waiting for machines)``; the first round
        pays ``first_overheads``, the others :func:`~.costs.wave_overheads_s` after the round
        before (``counts`` tell whether it ran in one wave); the wait is
        :func:`~.costs.machine_wait_s` after the round before."""
        o = self.inputs.overheads
        rows = []
        prev_epoch = start_epoch
        prev_w = previous_world_size
        prev_busy, prev_s = self.previous_busy_slots, self.previous_round_s
        for k, (rung, w, n) in enumerate(zip(rungs, world_sizes, counts)):
            lanes = self.slots // w
            overheads = first_overheads if k == 0 else wave_overheads_s(o, w, prev_w, counts[k - 1] <= lanes)
            job_first, usd_first, job_later, usd_later = self.jobs_of(rung - prev_epoch, overheads, w)
            busy = busy_slots(n, w, self.slots)
            wait_s = machine_wait_s(self.machine_start_s, busy, prev_busy, prev_s)
            rows.append((job_first, job_later, lanes, usd_first, usd_later, wait_s))
            prev_epoch, prev_w = rung, w
            prev_busy, prev_s = busy, waves_time_s(n, lanes, job_first, job_later) + wait_s
        return rows

    @staticmethod
    def totals(
        rows: Sequence[tuple[float, float, int, float, float, float]], counts: Sequence[int]
    ) -> tuple[float, float]:
        """``(sum D_k, sum C_k)`` for survivor counts ``counts`` (``D_k`` with its wait for
        machines)."""
        time_s = 0.0
        cost_usd = 0.0
        for (job_first, job_later, per_wave, usd_first, usd_later, wait_s), n in zip(rows, counts):
            time_s += waves_time_s(n, per_wave, job_first, job_later) + wait_s
            cost_usd += waves_cost_usd(n, per_wave, usd_first, usd_later)
        return time_s, cost_usd

    def fits(self, time_s: float, cost_usd: float) -> bool:
        return time_s <= self.time_cap and cost_usd <= self.money_cap

    def overshoot(self, time_s: float, cost_usd: float) -> tuple[float, float]:
        """``(time / time limit, cost / money limit)``; ``inf`` over a zero limit."""
        return _ratio(time_s, self.inputs.time_limit_s), _ratio(cost_usd, self.inputs.money_limit_usd)

    def rounds(
        self,
        rungs: Sequence[int],
        world_sizes: Sequence[int],
        counts: Sequence[int],
        start_epoch: int,
        first_overheads: tuple[float, float],
        previous_world_size: int | None,
        first_index: int = 1,
    ) -> tuple[RoundPlan, ...]:
        rows = self.prepare(rungs, world_sizes, start_epoch, first_overheads, previous_world_size, counts)
        out = []
        prev_epoch = start_epoch
        for k, ((job_first, job_later, per_wave, usd_first, usd_later, wait_s), rung, w, n) in enumerate(
            zip(rows, rungs, world_sizes, counts)
        ):
            out.append(
                RoundPlan(
                    index=first_index + k,
                    rung_epoch=rung,
                    start_epoch=prev_epoch,
                    num_trials=n,
                    world_size=w,
                    waves=num_waves(n, per_wave),
                    predicted_duration_s=waves_time_s(n, per_wave, job_first, job_later) + wait_s,
                    predicted_cost_usd=waves_cost_usd(n, per_wave, usd_first, usd_later),
                )
            )
            prev_epoch = rung
        return tuple(out)

    # -- branch and bound over non-decreasing world-size sequences ----------------------------

    def exists(self, table: _Table, counts: Sequence[int]) -> bool:
        """Whether some non-decreasing sequence over ``table.sizes`` fits both budgets."""
        ev = _Eval(table, counts)
        tcap, mcap = self.time_cap, self.money_cap
        if ev.low_t[0][0] * _SAFE > tcap or ev.low_c[0][0] * _SAFE > mcap:
            return False
        rows, low_t, low_c, busy = ev.rows, ev.low_t, ev.low_c, ev.busy
        m = len(table.sizes)
        last = len(rows) - 1
        machine_s = self.machine_start_s

        def rec(k: int, prev: int, t: float, c: float, pb: int, pd: float) -> bool:
            row, nt, nc, bk = rows[k], low_t[k + 1], low_c[k + 1], busy[k]
            for i in range(max(prev, 0), m):
                ts, cs, to, co = row[i]
                if i == prev:
                    d, cc = ts, c + cs
                else:
                    d, cc = to, c + co
                if machine_s and bk[i] > pb:
                    d += max(0.0, machine_s - pd)
                tt = t + d
                if k == last:
                    if tt <= tcap and cc <= mcap:
                        return True
                elif (tt + nt[i]) * _SAFE <= tcap and (cc + nc[i]) * _SAFE <= mcap:
                    if rec(k + 1, i, tt, cc, bk[i], d):
                        return True
            return False

        return rec(0, -1, 0.0, 0.0, self.previous_busy_slots, self.previous_round_s)

    def best_sequence(
        self,
        table: _Table,
        rungs: tuple[int, ...],
        counts: tuple[int, ...],
        best: Best,
        head: tuple,
        tail: tuple,
        eta: int,
        finalists: int,
    ) -> None:
        """Offer to ``best`` every sequence over ``table.sizes`` that fits both budgets, by the
        key ``head + (round(cost, 9), wide, sum W, time, K, W sequence) + tail``.

        Cuts rely on every key already in ``best`` having the same ``head``.
        """
        ev = _Eval(table, counts)
        tcap, mcap = self.time_cap, self.money_cap
        if ev.low_t[0][0] * _SAFE > tcap or ev.low_c[0][0] * _SAFE > mcap:
            return
        rows, low_t, low_c, busy = ev.rows, ev.low_t, ev.low_c, ev.busy
        sizes = table.sizes
        smallest = sizes[0]
        m = len(sizes)
        n_rounds = len(rows)
        last = n_rounds - 1
        ws = [0] * n_rounds
        machine_s = self.machine_start_s

        def rec(k: int, prev: int, t: float, c: float, wide: int, sum_w: int, pb: int, pd: float) -> None:
            row, nt, nc, bk = rows[k], low_t[k + 1], low_c[k + 1], busy[k]
            rest = last - k
            for i in range(max(prev, 0), m):
                ts, cs, to, co = row[i]
                if i == prev:
                    d, cc = ts, c + cs
                else:
                    d, cc = to, c + co
                if machine_s and bk[i] > pb:
                    d += max(0.0, machine_s - pd)
                tt = t + d
                low = (cc + nc[i]) * _SAFE
                if (tt + nt[i]) * _SAFE > tcap or low > mcap:
                    continue
                w = sizes[i]
                is_wide = w > smallest
                wide2 = wide + 1 if is_wide else wide
                sum2 = sum_w + w
                if best.key is not None:
                    if low > best.cost + _COST_EPS:
                        continue  # every completion rounds to a higher cost
                    if low >= best.cost and (wide2 + (rest if is_wide else 0), sum2 + rest * w) > (
                        best.wide,
                        best.sum_w,
                    ):
                        continue  # at best an equal rounded cost, and a worse tie-break
                ws[k] = w
                if k < last:
                    rec(k + 1, i, tt, cc, wide2, sum2, bk[i], d)
                elif tt <= tcap and cc <= mcap:
                    seq = tuple(ws)
                    key = head + (round(cc, 9), wide2, sum2, tt, n_rounds, seq) + tail
                    if best.key is None or key < best.key:
                        best.key, best.cost, best.wide, best.sum_w = key, cc, wide2, sum2
                        best.choice = Choice(rungs, seq, counts, tt, cc, eta, finalists)

        rec(0, -1, 0.0, 0.0, 0, 0, self.previous_busy_slots, self.previous_round_s)

    def closest(self, table: _Table, counts: Sequence[int], best: list) -> None:
        """Update ``best = [ratios]`` with the sequence whose worse overshoot
        ``max(time / limit, cost / limit)`` is the smallest; on a tie the first found stays."""
        ev = _Eval(table, counts)
        rows, low_t, low_c, busy = ev.rows, ev.low_t, ev.low_c, ev.busy
        tl, ml = self.inputs.time_limit_s, self.inputs.money_limit_usd
        m = len(table.sizes)
        last = len(rows) - 1
        machine_s = self.machine_start_s

        def rec(k: int, prev: int, t: float, c: float, pb: int, pd: float) -> None:
            row, nt, nc, bk = rows[k], low_t[k + 1], low_c[k + 1], busy[k]
            for i in range(max(prev, 0), m):
                ts, cs, to, co = row[i]
                if i == prev:
                    d, cc = ts, c + cs
                else:
                    d, cc = to, c + co
                if machine_s and bk[i] > pb:
                    d += max(0.0, machine_s - pd)
                tt = t + d
                if best:
                    bound = max(_ratio((tt + nt[i]) * _SAFE, tl), _ratio((cc + nc[i]) * _SAFE, ml))
                    if bound >= max(best[0]):
                        continue
                if k < last:
                    rec(k + 1, i, tt, cc, bk[i], d)
                else:
                    ratios = (_ratio(tt, tl), _ratio(cc, ml))
                    if not best or max(ratios) < max(best[0]):
                        best[:] = [ratios]

        rec(0, -1, 0.0, 0.0, self.previous_busy_slots, self.previous_round_s)


def _ratio(value: float, limit: float) -> float:
    if limit == 0:
        return math.inf if value > 0 else 0.0
    return value / limit


@dataclass(frozen=True)
class Choice:
    rungs: tuple[int, ...]
    world_sizes: tuple[int, ...]
    counts: tuple[int, ...]
    time_s: float
    cost_usd: float
    eta: int
    finalists: int


# -- the search ---------------------------------------------------------------------------------


def _groups(inputs: PlannerInputs, target: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """``(eta rank, eta, rungs)`` for every eta searched and every schedule reaching ``target``
    (fewest rounds first). A one-round schedule does not depend on ``eta``: listed once."""
    floor = 1 if inputs.min_epochs is None else inputs.min_epochs
    out = []
    seen_single = False
    for rank, eta in enumerate(inputs.eta_choices):
        for rungs in rung_schedules(min(floor, target), target, eta):
            if len(rungs) == 1:
                if seen_single:
                    continue
                seen_single = True
            out.append((rank, eta, tuple(rungs)))
    return out


def _fits_somewhere(inputs: PlannerInputs, model: SequenceModel, target: int, n: int) -> bool:
    """Whether ``n`` configurations fit with the best trained to ``target`` (fewest finalists)."""
    finalists = inputs.finalist_choices[0]
    for _, eta, rungs in _groups(inputs, target):
        if model.exists(model.plan_table(rungs), survivor_counts_unchecked(n, len(rungs), eta, finalists)):
            return True
    return False


def search(inputs: PlannerInputs, model: SequenceModel, target: int) -> Choice | None:
    """Best plan whose final survivor reaches ``target``, by the objective (b)-(d)."""
    groups = _groups(inputs, target)
    n_max = inputs.max_configurations

    # (b): the most configurations. Fewest finalists allow the most (counts grow with them).
    fewest = inputs.finalist_choices[0]
    n_best = 0
    for _, eta, rungs in groups:
        if n_best >= n_max:
            break
        table = model.plan_table(rungs)
        k = len(rungs)
        lo = n_best + 1
        counts = survivor_counts_unchecked(lo, k, eta, fewest)
        if table.cost_floor(counts) * _SAFE > model.money_cap or not model.exists(table, counts):
            continue
        if model.exists(table, survivor_counts_unchecked(n_max, k, eta, fewest)):
            n_best = n_max
            continue
        hi = n_max - 1  # lo fits, n_max does not
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if model.exists(table, survivor_counts_unchecked(mid, k, eta, fewest)):
                lo = mid
            else:
                hi = mid - 1
        n_best = lo
    if n_best == 0:
        return None

    # (b'), (c), (d) among the plans of n_best configurations, the cheapest-looking first so
    # that the bounds cut early.
    cap = max(inputs.finalist_choices)
    candidates = []
    for rank, eta, rungs in groups:
        table = model.plan_table(rungs)
        seen: set[tuple[int, ...]] = set()
        for finalists in inputs.finalist_choices:
            counts = survivor_counts_unchecked(n_best, len(rungs), eta, finalists)
            if counts in seen:
                continue  # the same plan as with fewer finalists, which the tie-break prefers
            seen.add(counts)
            floor = table.cost_floor(counts) * _SAFE
            candidates.append((-min(counts[-1], cap), floor, rank, eta, rungs, finalists, counts, table))
    candidates.sort(key=lambda c: (c[0], c[1]))
    best = Best()
    for neg_hedge, floor, rank, eta, rungs, finalists, counts, table in candidates:
        if best.key is not None and (neg_hedge > best.key[0] or floor > best.cost + _COST_EPS):
            break  # fewer finalists, or (sorted by floor) no cheaper plan, than one already found
        model.best_sequence(table, rungs, counts, best, (neg_hedge,), (rank, finalists), eta, finalists)
    return best.choice


def explore_first(inputs: PlannerInputs, model: SequenceModel, minimum: int,
                   target_floor: int = 1) -> tuple[int, Choice] | None:
    """The largest target ``T < max_epochs`` at which ``minimum`` configurations fit, with the
    best plan for it; ``None`` when not even ``T = 1`` allows that many. Whether ``minimum``
    fit is not monotone in ``T`` (the rung schedules change with it), so a binary search finds
    one such ``T`` and a scan down from ``max_epochs - 1`` finds the largest, stopping at the
    first that fits."""

    def enough(target: int) -> bool:
        return _fits_somewhere(inputs, model, target, minimum)

    if inputs.max_epochs < 2 or not enough(1):
        return None
    lo, hi = 1, inputs.max_epochs - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if enough(mid):
            lo = mid
        else:
            hi = mid - 1
    target = lo
    for t in range(inputs.max_epochs - 1, lo, -1):
        if enough(t):
            target = t
            break
    if target < target_floor:
        return None  # too short to rank anything: explore fewer, train them longer
    found = search(inputs, model, target)
    assert found is not None and found.counts[0] >= minimum
    return target, found


def explore_target_floor(inputs: PlannerInputs) -> int:
    """The shortest target at which an exploration-first plan explores ``min_configurations``:
    ``max_epochs // eta`` (the last rung but one of the full schedule), at least 1. Below it,
    rankings are mostly noise and the answer is far from trained: fewer configurations trained
    longer give the better answer."""
    return max(1, inputs.max_epochs // (inputs.eta or DEFAULT_ETA))


def one_fits(inputs: PlannerInputs, model: SequenceModel, target: int) -> bool:
    """Whether one configuration can reach ``target`` epochs within budget."""
    return _fits_somewhere(inputs, model, target, 1)


def binding_for_target(inputs: PlannerInputs, model: SequenceModel, target: int, n: int = 1) -> str:
    """The budget that stops ``n`` configurations (default one) from reaching ``target`` epochs.

    Takes the round sequence that comes closest (smallest worse overshoot) and names the
    budget it overshoots more.
    """
    best: list = []
    finalists = inputs.finalist_choices[0]
    for _, eta, rungs in _groups(inputs, target):
        model.closest(model.plan_table(rungs), survivor_counts_unchecked(n, len(rungs), eta, finalists), best)
    if not best or max(best[0]) <= 1.0:
        return "none"
    return "time" if best[0][0] >= best[0][1] else "money"


def binding_for_more(inputs: PlannerInputs, model: SequenceModel, choice: Choice) -> str:
    """What stops ``n_1 + 1`` configurations on the chosen round sequence."""
    n = choice.counts[0]
    if n >= inputs.max_configurations:
        return "max_configurations"
    counts = survivor_counts_unchecked(n + 1, len(choice.rungs), choice.eta, choice.finalists)
    first = wave_overheads_s(inputs.overheads, choice.world_sizes[0], None)
    rows = model.prepare(choice.rungs, choice.world_sizes, 0, first, None, counts)
    time_ratio, money_ratio = model.overshoot(*model.totals(rows, counts))
    if time_ratio <= 1.0 and money_ratio <= 1.0:
        return "none"
    return "time" if time_ratio >= money_ratio else "money"


def usable_or_raise(inputs: PlannerInputs) -> tuple[int, ...]:
    usable = inputs.usable_world_sizes
    if not usable:
        cap = f"num_slots ({inputs.num_slots})"
        if inputs.max_world_size is not None:
            cap += f" and max_world_size ({inputs.max_world_size})"
        raise ConfigError(
            "world_size_ladder", list(inputs.world_size_ladder), f"at least one world size <= {cap}"
        )
    return usable
