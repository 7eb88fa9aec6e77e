#!/usr/bin/env python
"""Simulator speed: one simulated SEER run over 1000 configurations (target: under 1 second).

::

    python scripts/bench_simulator.py [--configurations 1000] [--repeats 5]

The run is the real executor and the real SEER policy on the simulated backend
(:func:`seer_torch.simulate.simulate_run`), over a parametric learning-curve table of
``--configurations`` configurations x 27 epochs, the measured cifar10-resnet18-v100 speedups
(W = 1..8, 20 s start-up), 64 slots and budgets large enough for every configuration to be
started (the hardest case: the most jobs). Prints the median and best wall-clock seconds of
``--repeats`` runs (time.perf_counter), the jobs simulated, and whether the median is under the
target. Also each baseline once, for reference.
"""

from __future__ import annotations

import argparse
import statistics
import time

from seer_torch.curves import generate_table
from seer_torch.scaling.profile import parse_profile
from seer_torch.simulate import POLICY_NAMES, SimulationCase, simulate_run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configurations", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--target-s", type=float, default=1.0)
    args = ap.parse_args()
    table = generate_table(args.configurations, 27, 0, epoch_time_s=30.0)
    prof = parse_profile(
        {
            "name": "cifar10-resnet18-v100",
            "world_sizes": [1, 2, 4, 8],
            "speedup": [1.0, 1.85, 3.43, 5.4],
            "epoch_time_s": 30.0,
            "startup_s": 20.0,
            "resize_s": 20.0,
        }
    )
    case = SimulationCase(
        table,
        prof,
        time_budget_s=4 * 3600,
        money_budget_usd=400.0,
        num_slots=64,
        world_size_ladder=(1, 2, 4, 8),
    )
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        r = simulate_run(case, "seer", 0)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(
        f"seer, {args.configurations} configurations: {r.num_configurations} started, "
        f"answer {r.answer_id} at "
        f"{r.answer_epochs} epochs (accuracy {r.final_value:.4f}, oracle {r.oracle_value:.4f}), "
        f"simulated {r.time_used_s:.0f} s / {r.cost_usd:.2f} USD"
    )
    print(
        f"wall clock per simulated run: median {med:.3f} s, "
        f"best {min(times):.3f} s over {args.repeats} runs; "
        f"target < {args.target_s:g} s: {'MET' if med < args.target_s else 'NOT MET'}"
    )
    for name in POLICY_NAMES:
        if name == "seer":
            continue
        t0 = time.perf_counter()
        r = simulate_run(case, name, 0)
        print(
            f"  {name:>16}: {time.perf_counter() - t0:.3f} s, {r.num_configurations} configurations, "
            f"accuracy {r.final_value if r.final_value is None else round(r.final_value, 4)}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
