#!/usr/bin/env python
"""How long the SEER planner takes: :func:`~seer_torch.policies.seer.plan` and
:func:`~seer_torch.policies.seer.replan` on large inputs.

::

    python scripts/bench_planner.py                 # 21 repeats per case
    python scripts/bench_planner.py --repeats 51 --strict   # exit 1 when a case is over the limit

The target (issue 4): 1000 configurations (``max_configurations=1000``, budgets that allow
them), the ladder 1, 2, 4, 8, 16, 32, 64 on 64 slots, with ``eta``, the first rung and the
number of finalists left to the planner, plan in under 50 ms. The other cases are there to
show where the search works harder: a deadline or a money budget that binds (binary searches
on ``n_1``, and wide world sizes at the end), fixed ``eta``, per-hour billing, and a re-plan of
the remaining rounds whose planned world sizes no longer fit (the world sizes searched again).

Each figure is the median of ``--repeats`` calls (after one warm-up call), wall clock by
``time.perf_counter``; min and max are printed too. The planner is pure Python on one core, so
other load on the machine shows up in max (and, under heavy load, in the median).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seer_torch.policies.seer import PlannerInputs, plan, replan  # noqa: E402
from seer_torch.scaling.model import ScalingModel  # noqa: E402

LIMIT_MS = 50.0
LADDER = (1, 2, 4, 8, 16, 32, 64)
# ResNet-18 on CIFAR-10, V100s (tests/unit/test_planner.py); Amdahl beyond 8 workers.
SCALING = ScalingModel(world_sizes=(1, 2, 4, 8), speedup=(1.0, 1.85, 3.43, 5.40))


def inputs(**overrides: object) -> PlannerInputs:
    base: dict[str, object] = dict(
        max_epochs=81,
        min_epochs=None,
        eta=None,
        max_configurations=1000,
        num_slots=64,
        world_size_ladder=LADDER,
        epoch_time_s=10.0,
        scaling=SCALING,
        startup_s=5.0,
        relaunch_s=5.0,
        resize_s=5.0,
        time_budget_s=math.inf,
        money_budget_usd=math.inf,
        price_usd_per_slot_hour=3.06,
        num_finalists=None,
    )
    base.update(overrides)
    return PlannerInputs(**base)  # type: ignore[arg-type]


def cases() -> list[tuple[str, bool, Callable[[], object]]]:
    """``(name, part of the 50 ms target, call)``."""
    out: list[tuple[str, bool, Callable[[], object]]] = []

    def add(name: str, target: bool, call: Callable[[], object]) -> None:
        out.append((name, target, call))

    ample = inputs()
    add(
        "plan: 1000 configs, ample budget, 81 epochs, eta/first rung/finalists open",
        True,
        lambda: plan(ample),
    )
    ample243 = inputs(max_epochs=243)
    add("plan: 1000 configs, ample budget, 243 epochs, all open", True, lambda: plan(ample243))
    enough = inputs(time_budget_s=6 * 3600.0, money_budget_usd=500.0)
    add("plan: 1000 configs, finite budgets that allow them, 81 epochs, all open", True, lambda: plan(enough))
    fixed = inputs(eta=3, min_epochs=1, num_finalists=1, max_epochs=243)
    add("plan: 1000 configs, ample budget, 243 epochs, eta 3, 1 finalist", True, lambda: plan(fixed))
    deadline = inputs(time_budget_s=900.0)
    add("plan: deadline binds (900 s), 81 epochs, all open", False, lambda: plan(deadline))
    money = inputs(money_budget_usd=5.0)
    add("plan: money binds (5 USD), 81 epochs, all open", False, lambda: plan(money))
    hourly = inputs(billing_granularity_s=3600.0, money_budget_usd=400.0, time_budget_s=4 * 3600.0)
    add("plan: per-hour billing, 400 USD, 4 h, all open", False, lambda: plan(hourly))

    # Re-plan the rounds after the first of the deadline plan: with 20 % more time left than
    # they were planned to take (every sequence searched, the cheapest that fits kept), with
    # 20 % less (none fits: the longest prefix that does), and with the planned sizes kept.
    p = plan(deadline)
    if len(p.rounds) >= 2:
        rest = p.rounds[1:]
        planned_s = sum(r.predicted_duration_s for r in rest)
        more = dataclasses.replace(deadline, time_budget_s=1.2 * planned_s / 0.9)
        less = dataclasses.replace(deadline, time_budget_s=0.8 * planned_s / 0.9)
        args = dict(
            rungs=[r.rung_epoch for r in rest],
            survivors=[r.num_trials for r in rest],
            current_epoch=p.rounds[0].rung_epoch,
            current_world_size=p.rounds[0].world_size,
            first_round_index=2,
        )
        add(
            f"replan: {len(rest)} remaining rounds, 20 % more time, world sizes searched",
            True,
            lambda: replan(more, **args),
        )  # type: ignore[arg-type]
        add(
            f"replan: {len(rest)} remaining rounds, 20 % less time, best-effort prefix",
            True,
            lambda: replan(less, **args),
        )  # type: ignore[arg-type]
        planned = [r.world_size for r in rest]
        add(
            f"replan: {len(rest)} remaining rounds, planned sizes kept",
            True,
            lambda: replan(more, **args, planned_world_sizes=planned),
        )  # type: ignore[arg-type]
    full = replan(
        ample243,
        rungs=[1, 3, 9, 27, 81, 243],
        survivors=[1000, 333, 111, 37, 12, 4],
        current_epoch=0,
        current_world_size=0,
    )
    assert full.feasible
    add(
        "replan: all 6 rounds of a 243-epoch plan, 7 sizes, from the start",
        True,
        lambda: replan(
            ample243,
            rungs=[1, 3, 9, 27, 81, 243],
            survivors=[1000, 333, 111, 37, 12, 4],
            current_epoch=0,
            current_world_size=0,
        ),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="calls per case (median reported)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target case is over the limit")
    args = parser.parse_args(argv)
    over = []
    print(f"{'case':78} {'median ms':>9} {'min':>7} {'max':>7}  under {LIMIT_MS:g} ms")
    for name, target, call in cases():
        result = call()  # warm-up (and the shape printed below)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            call()
            times.append((time.perf_counter() - t0) * 1000.0)
        median = statistics.median(times)
        ok = median < LIMIT_MS
        flag = ("yes" if ok else "NO") + ("" if target else " (not a target)")
        print(f"{name:78} {median:9.2f} {min(times):7.2f} {max(times):7.2f}  {flag}")
        shape = getattr(result, "message", "")
        print(f"    {shape[:150]}")
        if target and not ok:
            over.append(name)
    if over:
        print(f"over {LIMIT_MS:g} ms: " + "; ".join(over))
    else:
        print(f"every target case is under {LIMIT_MS:g} ms (median)")
    return 1 if (over and args.strict) else 0


if __name__ == "__main__":
    raise SystemExit(main())
