#!/usr/bin/env python
"""SEER against its rivals in simulation: a grid of deadlines and money budgets.

::

    python scripts/bench_policies.py                       # default grid, JSON + figure in bench_out/
    python scripts/bench_policies.py --seeds 3 --quick     # a smaller grid

For every table (the shipped digits table, recorded through the real worker, and parametric
tables from :func:`seer_torch.curves.generate_table`), every scaling profile (the measured
public ones in ``../shared/data/scaling_profiles.json`` plus this project's digits CPU profile)
and every (deadline, money) cell of the grid, every policy runs over the same seeds on the
simulated backend (:mod:`seer_torch.simulate`: the same executor and policy objects as real
runs). Budgets are given relative to one full training of one configuration at W = 1 (its
wall clock ``T1`` and cost ``C1``), so one grid fits every table.

Printed and written (``--out``): per cell, every policy's mean final accuracy, regret to the
oracle and spend; the fraction of cells where SEER's mean accuracy is at least that of every
baseline (ties within ``--tie`` count as at least), overall and per table; the same count with
ties within each table's *resolution* (the smallest difference between two of its test
accuracies: one test sample, 1/270, for the recorded digits table; far below ``--tie`` for
continuous parametric curves), since a difference smaller than one test sample is not a
measured difference; SEER's mean regret; and, for every cell SEER loses, the cell, the winner
and the numbers, for the report. The figure plots mean
accuracy against the money budget (one line per policy, averaged over tables, profiles and
deadlines).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from seer_torch.curves import LearningCurveTable, generate_table
from seer_torch.scaling.profile import parse_profile
from seer_torch.simulate import POLICY_NAMES, SimulationCase, shipped_table_path, simulate

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "scaling_profiles.json"
if not SHARED.exists():  # the copy the tests keep
    SHARED = ROOT / "tests" / "data" / "scaling_profiles.json"
BASELINES = [p for p in POLICY_NAMES if p not in ("seer", "oracle")]


def profiles(startup_s: float) -> list[dict]:
    out = []
    if SHARED.exists():
        for p in json.loads(SHARED.read_text())["profiles"]:
            out.append({**p, "startup_s": startup_s, "resize_s": startup_s, "epoch_time_s": 1.0})
    digits = ROOT / "seer_torch" / "profiles" / "digits_cnn_digits_cpu.json"
    if digits.exists():
        out.append(json.loads(digits.read_text()))
    return out


def tables(quick: bool) -> list[LearningCurveTable]:
    out = []
    shipped = shipped_table_path()
    if shipped:
        out.append(LearningCurveTable.load(shipped))
    n = 200 if not quick else 81
    out.append(generate_table(n, 27, 0, epoch_time_s=30.0, epoch_time_spread=0.2, name=f"parametric-{n}x27"))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--slots", type=int, default=8)
    ap.add_argument(
        "--startup-s", type=float, default=20.0, help="start-up of public profiles (they carry none)"
    )
    ap.add_argument(
        "--deadlines", default="0.5,1,2,4,8", help="deadlines in units of T1 (one full training at W=1)"
    )
    ap.add_argument("--money", default="2,4,8,16,32", help="money budgets in units of C1")
    ap.add_argument("--policies", default=",".join(POLICY_NAMES))
    ap.add_argument("--tie", type=float, default=1e-3, help="accuracy difference counted as a tie")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: a parametric table of 81 configurations and the first two public profiles only",
    )
    ap.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="cells simulated in parallel processes"
    )
    ap.add_argument("--out", default="bench_out/policies.json")
    ap.add_argument("--figure", default="bench_out/policies.png")
    args = ap.parse_args(argv)
    policies = args.policies.split(",")
    deadlines = [float(x) for x in args.deadlines.split(",")]
    moneys = [float(x) for x in args.money.split(",")]
    seeds = list(range(args.seeds))
    profs = profiles(args.startup_s)
    if args.quick:
        profs = profs[:2]
    # Jobs name their table and profile by position (the objects are rebuilt once per process).
    jobs = [
        ((args.quick, args.startup_s), ti, pi, d, m, args.slots, policies, seeds)
        for ti in range(len(tables(args.quick)))
        for pi in range(len(profs))
        for d in deadlines
        for m in moneys
    ]
    t0 = time.perf_counter()
    cells = []
    # Cells are independent and each is deterministic in its seeds: run them in parallel
    # processes; the results are the same as in one process, in the same order.
    workers = max(1, min(args.jobs, len(jobs)))
    if workers > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for cell in pool.imap(_run_cell, jobs):
                cells.append(cell)
                print(_cell_line(cell, policies), flush=True)
    else:
        for job in jobs:
            cells.append(_run_cell(job))
            print(_cell_line(cells[-1], policies), flush=True)
    elapsed = time.perf_counter() - t0
    report = _report(cells, policies, args.tie)
    report["elapsed_s"] = elapsed
    report["grid"] = {"deadlines_t1": deadlines, "money_c1": moneys, "seeds": args.seeds, "slots": args.slots}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"report": report, "cells": cells}, indent=1))
    os.replace(tmp, out)
    _print_report(report)
    drawn = _figure(cells, policies, moneys, args.figure)
    print(f"wrote {out}" + (f" and {args.figure}" if drawn else "") + f" ({elapsed:.0f} s)")
    return 0


_BUILT: dict[tuple, tuple] = {}


def _run_cell(job: tuple) -> dict:
    """One grid cell: every policy over the seeds. Budgets in units of the table's T1 and C1."""
    (quick, startup_s), ti, pi, d, m, slots, policies, seeds = job
    key = (quick, startup_s)
    if key not in _BUILT:
        profs = profiles(startup_s)
        _BUILT[key] = (tables(quick), profs[:2] if quick else profs)
    built_tables, raws = _BUILT[key]
    table = built_tables[ti]
    prof = replace(parse_profile(raws[pi]), epoch_time_s=table.epoch_time_s)
    t1 = prof.startup_s + table.max_epochs * table.epoch_time_s
    c1 = 3.06 / 3600 * t1
    case = SimulationCase(
        table,
        prof,
        d * t1,
        m * c1,
        num_slots=slots,
        world_size_ladder=tuple(w for w in (1, 2, 4, 8, 16) if w <= slots),
    )
    res = simulate(case, policies, seeds)
    return {
        "table": table.name,
        "resolution": _resolution(table),
        "profile": prof.name,
        "deadline_t1": d,
        "money_c1": m,
        "time_budget_s": case.time_budget_s,
        "money_budget_usd": case.money_budget_usd,
        "policies": res["policies"],
    }


def _resolution(table: LearningCurveTable) -> float:
    """The smallest positive difference between two test accuracies of the table (where it has
    none, validation accuracies): the finest difference the table can express."""
    import math

    values = sorted(
        {
            round(v, 12)
            for c in table.configs
            for v in (c.test if c.test is not None else c.val)
            if v is not None and math.isfinite(v)
        }
    )
    gaps = [b - a for a, b in zip(values, values[1:]) if b - a > 0]
    return min(gaps) if gaps else 0.0


def _acc(cell: dict, p: str) -> float:
    return cell["policies"][p]["final_value"]["mean"]


def _cell_line(cell: dict, policies: list[str]) -> str:
    accs = " ".join(f"{p}={_acc(cell, p):.4f}" for p in policies)
    return (
        f"{cell['table']:>22} {cell['profile']:>24} deadline={cell['deadline_t1']:<4g}xT1 "
        f"money={cell['money_c1']:<4g}xC1 {accs}"
    )


def _why(cell: dict, winner: str) -> str:
    """Why SEER lost this cell, read from the two policies' means (a heuristic label)."""
    s, w = cell["policies"]["seer"], cell["policies"][winner]
    gap = w["final_value"]["mean"] - s["final_value"]["mean"]
    se, we = s["answer_epochs"]["mean"], w["answer_epochs"]["mean"]
    sc, wc = s["num_configurations"]["mean"], w["num_configurations"]["mean"]
    if gap <= cell.get("resolution", 0.0) + 1e-12:
        return f"noise: {gap:.4f} is within one step of the table's resolution"
    if s["regret"]["mean"] <= 1e-12:
        return (
            f"test noise: SEER's answer scores at least the oracle's (the best configuration by validation, "
            f"fully trained); {winner}'s answers validated worse but tested {gap:.4f} higher"
        )
    if we > se + 0.5:
        return f"{winner} trained its answer longer ({we:.1f} vs {se:.1f} epochs, mean over seeds)"
    if wc > sc + 0.5:
        return f"{winner} explored more configurations ({wc:.1f} vs {sc:.1f}, mean over seeds)"
    if wc < sc - 0.5:
        return (
            f"{winner} explored fewer configurations ({wc:.0f} vs {sc:.0f}) and SEER trained its answer as "
            f"long or longer: rankings at early rungs misled SEER"
        )
    return "same breadth and depth: a different ranking of the same draws"


def _report(cells: list[dict], policies: list[str], tie: float) -> dict:
    baselines = [p for p in BASELINES if p in policies]
    wins, losses = 0, []
    regrets = []
    per_table: dict[str, dict[str, int]] = {}
    for c in cells:
        seer = _acc(c, "seer")
        best_base = max(baselines, key=lambda p: _acc(c, p)) if baselines else None
        regrets.append(c["policies"]["seer"]["regret"]["mean"])
        row = per_table.setdefault(
            c["table"], {"cells": 0, "seer_at_least_every_baseline": 0, "within_resolution": 0}
        )
        row["cells"] += 1
        if best_base is None or seer >= _acc(c, best_base) - max(tie, c.get("resolution", 0.0)) - 1e-12:
            row["within_resolution"] += 1
        if best_base is None or seer >= _acc(c, best_base) - tie:
            wins += 1
            row["seer_at_least_every_baseline"] += 1
        else:
            s, b = c["policies"]["seer"], c["policies"][best_base]
            losses.append(
                {
                    "why": _why(c, best_base),
                    "table": c["table"],
                    "profile": c["profile"],
                    "deadline_t1": c["deadline_t1"],
                    "money_c1": c["money_c1"],
                    "winner": best_base,
                    "seer_accuracy": seer,
                    "winner_accuracy": _acc(c, best_base),
                    "seer_configurations": s["num_configurations"]["mean"],
                    "winner_configurations": b["num_configurations"]["mean"],
                    "seer_epochs": s["answer_epochs"]["mean"],
                    "winner_epochs": b["answer_epochs"]["mean"],
                    "seer_cost_usd": s["cost_usd"]["mean"],
                    "winner_cost_usd": b["cost_usd"]["mean"],
                    "seer_time_s": s["time_used_s"]["mean"],
                    "winner_time_s": b["time_used_s"]["mean"],
                }
            )
    per_policy = {
        p: {
            "mean_accuracy": statistics.fmean(_acc(c, p) for c in cells),
            "mean_regret": statistics.fmean(c["policies"][p]["regret"]["mean"] for c in cells),
            "budget_violations": sum(c["policies"][p]["budget_violations"] for c in cells),
            "no_answer_runs": sum(c["policies"][p]["no_answer"] for c in cells),
        }
        for p in policies
    }
    return {
        "cells": len(cells),
        "seer_at_least_every_baseline": wins,
        "fraction": wins / len(cells) if cells else None,
        "seer_mean_regret": statistics.fmean(regrets) if regrets else None,
        "per_table": per_table,
        "within_resolution": sum(r["within_resolution"] for r in per_table.values()),
        "per_policy": per_policy,
        "losses": losses,
    }


def _print_report(r: dict) -> None:
    print(
        f"\nSEER >= every baseline (ties within tolerance) in {r['seer_at_least_every_baseline']} of "
        f"{r['cells']} cells ({100 * r['fraction']:.1f}%); "
        f"SEER's mean regret to the oracle {r['seer_mean_regret']:.4f}"
    )
    print(
        f"  within each table's resolution (one test sample on recorded tables): {r['within_resolution']} of "
        f"{r['cells']} cells ({100 * r['within_resolution'] / r['cells']:.1f}%)"
    )
    for t, row in r["per_table"].items():
        print(
            f"  {t}: {row['seer_at_least_every_baseline']} of {row['cells']} cells, "
            f"{row['within_resolution']} within its resolution"
        )
    for p, s in r["per_policy"].items():
        print(
            f"  {p:>16}: mean accuracy {s['mean_accuracy']:.4f}, regret {s['mean_regret']:.4f}, "
            f"violations {s['budget_violations']}, runs without answer {s['no_answer_runs']}"
        )
    reasons: dict[str, int] = {}
    for loss in r["losses"]:
        key = loss["why"].split(":")[0].split(" (")[0].replace(loss["winner"] + " ", "the winner ")
        reasons[key] = reasons.get(key, 0) + 1
    print(
        "  losses by reason: "
        + "; ".join(f"{k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
    )
    shown = r["losses"][:20]
    if len(r["losses"]) > len(shown):
        print(f"  the first {len(shown)} of {len(r['losses'])} losses (all are in the JSON, report.losses):")
    for loss in shown:
        print(
            f"  LOSS {loss['table']} {loss['profile']} "
            f"deadline={loss['deadline_t1']}xT1 money={loss['money_c1']}xC1: "
            f"{loss['winner']} {loss['winner_accuracy']:.4f} vs seer {loss['seer_accuracy']:.4f} "
            f"(configs {loss['winner_configurations']:.1f} vs {loss['seer_configurations']:.1f}, "
            f"epochs {loss['winner_epochs']:.1f} vs {loss['seer_epochs']:.1f}): {loss['why']}"
        )


def _figure(cells: list[dict], policies: list[str], moneys: list[float], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no figure", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for p in policies:
        ys = [statistics.fmean(_acc(c, p) for c in cells if c["money_c1"] == m) for m in moneys]
        ax.plot(
            moneys,
            ys,
            marker="o",
            label=p,
            linewidth=2.5 if p == "seer" else 1.2,
            linestyle="--" if p == "oracle" else "-",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("money budget (units of one full training at W=1)")
    ax.set_ylabel("mean final accuracy of the returned configuration")
    ax.set_title("SEER vs baselines (simulated; mean over tables, profiles, deadlines, seeds)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


if __name__ == "__main__":
    sys.exit(main())
