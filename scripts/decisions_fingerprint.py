#!/usr/bin/env python
"""Behaviour fingerprint: every policy's ``decisions.jsonl`` on a fixed set of simulated runs.

::

    python scripts/decisions_fingerprint.py --out before.json          # record
    python scripts/decisions_fingerprint.py --compare before.json      # same decisions?

A refactor that should not change behaviour must leave every run's ``decisions.jsonl`` (the
snapshot each decision saw and the decisions made, see :mod:`seer_torch.executor`) byte for
byte the same. The set: both shipped tables (the recorded digits table and a parametric
table from :func:`seer_torch.curves.generate_table`), a scaling profile each (the shipped
digits CPU profile; the first measured public profile with a 20 s start-up), three budgets
(deadline and money in units of one full training at W = 1: tight, middling, generous),
a rounded-billing case, a fixed-eta case, two seeds, and every policy. ``--compare`` prints
each run whose decisions or final answer differ, with the first differing line, and exits 1
if any does. Jobs exit at every rung unless ``--keep-alive`` (kept-alive jobs and warm
workers, :data:`seer_torch.simulate.KEEP_ALIVE`): fingerprints recorded before kept-alive jobs
compare with the default.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from seer_torch.curves import LearningCurveTable, generate_table
from seer_torch.scaling.profile import parse_profile
from seer_torch.simulate import POLICY_NAMES, SimulationCase, shipped_table_path, simulate_run

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "tests" / "data" / "scaling_profiles.json"
DIGITS_PROFILE = ROOT / "seer_torch" / "profiles" / "digits_cnn_digits_cpu.json"


def cases() -> dict[str, SimulationCase]:
    """The fixed set, by name."""
    digits = LearningCurveTable.load(shipped_table_path())
    parametric = generate_table(81, 27, 0, epoch_time_s=30.0, epoch_time_spread=0.2, name="parametric-81x27")
    public = json.loads(PUBLIC.read_text())["profiles"][0]
    pairs = [
        (digits, parse_profile(json.loads(DIGITS_PROFILE.read_text()))),
        (parametric, parse_profile({**public, "startup_s": 20.0, "resize_s": 20.0, "epoch_time_s": 1.0})),
    ]
    out: dict[str, SimulationCase] = {}
    for table, prof in pairs:
        prof = replace(prof, epoch_time_s=table.epoch_time_s)
        t1 = prof.startup_s + table.max_epochs * table.epoch_time_s
        c1 = 3.06 / 3600 * t1
        for d, m in ((0.5, 2.0), (2.0, 8.0), (8.0, 32.0)):
            out[f"{table.name}/d{d}/m{m}"] = SimulationCase(
                table, prof, d * t1, m * c1, num_slots=8, world_size_ladder=(1, 2, 4, 8)
            )
        out[f"{table.name}/billing60"] = SimulationCase(
            table,
            prof,
            2.0 * t1,
            8.0 * c1,
            num_slots=4,
            world_size_ladder=(1, 2, 4),
            billing_granularity_s=60.0,
            billing_minimum_s=60.0,
        )
        out[f"{table.name}/eta2"] = SimulationCase(
            table, prof, 2.0 * t1, 8.0 * c1, num_slots=4, world_size_ladder=(1, 2, 4), eta=2
        )
    return out


def fingerprint(seeds: list[int], policies: list[str], keep_alive: bool = False) -> dict[str, dict]:
    """``{run name: {"decisions_sha256", "lines", "answer", "stop_reason"}}``."""
    result: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, case in cases().items():
            case = replace(case, keep_alive=keep_alive)
            for policy in policies:
                for seed in seeds:
                    key = f"{name}/{policy}/s{seed}"
                    run_dir = Path(tmp) / key.replace("/", "_")
                    run_dir.mkdir(parents=True)
                    s = simulate_run(case, policy, seed, run_dir=run_dir)
                    text = (run_dir / "decisions.jsonl").read_text()
                    result[key] = {
                        "decisions_sha256": hashlib.sha256(text.encode()).hexdigest(),
                        "lines": text.splitlines(),
                        "answer": [s.answer_id, s.answer_epochs, s.final_value],
                        "stop_reason": s.stop_reason,
                    }
                    print(
                        f"{key}: {len(result[key]['lines'])} decisions, answer {s.answer_id} "
                        f"@{s.answer_epochs}",
                        flush=True,
                    )
    return result


#: Renamed keys of ``decisions.jsonl``: a fingerprint recorded before a rename is read with the
#: new names (the trial views' ``val_accuracy`` became ``score`` when the metric became the
#: user's choice; for the default metric, maximized validation accuracy, the values are equal).
RENAMED_KEYS = (('"val_accuracy": {', '"score": {'),)


def _renamed(run: dict) -> dict:
    """``run`` (one fingerprint entry) with :data:`RENAMED_KEYS` applied to its lines and its
    hash recomputed."""
    lines = run["lines"]
    for old, new in RENAMED_KEYS:
        lines = [line.replace(old, new) for line in lines]
    if lines == run["lines"]:
        return run
    text = "".join(line + "\n" for line in lines)
    return {**run, "lines": lines, "decisions_sha256": hashlib.sha256(text.encode()).hexdigest()}


def compare(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    """One line per run whose decisions, answer or stop reason differ (keys renamed since the
    ``before`` fingerprint was recorded are read with their new names, :data:`RENAMED_KEYS`)."""
    diffs = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        a = _renamed(a) if a is not None else None
        if a is None or b is None:
            diffs.append(f"{key}: only in {'after' if a is None else 'before'}")
            continue
        if a["decisions_sha256"] != b["decisions_sha256"]:
            first = next(
                (i for i, (x, y) in enumerate(zip(a["lines"], b["lines"])) if x != y),
                min(len(a["lines"]), len(b["lines"])),
            )
            diffs.append(
                f"{key}: decisions differ from line {first + 1} "
                f"({len(a['lines'])} before, {len(b['lines'])} after)"
            )
        if a["answer"] != b["answer"] or a["stop_reason"] != b["stop_reason"]:
            diffs.append(
                f"{key}: answer {a['answer']} {a['stop_reason']!r} -> {b['answer']} {b['stop_reason']!r}"
            )
    return diffs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--policies", default=",".join(POLICY_NAMES))
    ap.add_argument("--out", help="write the fingerprint here (JSON)")
    ap.add_argument("--compare", help="a fingerprint written before; exit 1 on any difference")
    ap.add_argument("--keep-alive", action="store_true",
                    help="simulate kept-alive jobs and warm workers (default: jobs exit at every rung)")
    args = ap.parse_args(argv)
    now = fingerprint(list(range(args.seeds)), args.policies.split(","), args.keep_alive)
    if args.out:
        tmp = Path(args.out + ".tmp")
        tmp.write_text(json.dumps(now))
        os.replace(tmp, args.out)
    if args.compare:
        diffs = compare(json.loads(Path(args.compare).read_text()), now)
        for line in diffs:
            print(line)
        print(f"{len(now)} runs, {len(diffs)} differences")
        return 1 if diffs else 0
    print(f"{len(now)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
