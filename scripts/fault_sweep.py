"""Fault-injection sweep: the tuner is killed at every journal point of a short run and resumed.

Two parts:

- ``--simulated`` (default on): a short SEER run on the simulated backend, killed (an emulated
  SIGKILL: nothing stopped, nothing written) at every point where the executor journals
  (``launch:N``, ``job_end:N``, ``decide:N`` for every N the uninterrupted run passes), then
  resumed twice: with the same slots, and with fewer (1 slot where the run had 2). With the same
  slots the answer must be the uninterrupted run's (trial, epochs, validation accuracy); with
  fewer, a valid answer within both budgets. Every resume must finish, and no trial's epochs
  may repeat.
- ``--real K``: a short real ``seer tune`` (torchrun jobs on CPU) killed with SIGKILL at K
  points (the executor's hooks, plus one host crash while a checkpoint is half-written), each
  resumed with ``seer resume`` with the same slots and with ``--slots 1``; also checked: no
  temporary checkpoint file and no process of the run is left.

Prints the counts (and writes them as JSON with ``--out``)::

    python scripts/fault_sweep.py                    # simulated sweep, a few seconds
    python scripts/fault_sweep.py --real 5 --out fault_sweep.json   # plus 5 real points, ~10 min
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from seer_torch.backends.local import descendant_pids
from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import parse_experiment
from seer_torch.executor import Crash, Tuner, journal
from seer_torch.policies.registry import make_policy
from seer_torch.testing import processes_of, run_seer, write_faults_experiment

POINTS = ("launch", "job_end", "decide")


# -- simulated -------------------------------------------------------------------------------
def _curve(config: dict[str, Any], epoch: int) -> float:
    return config["q"] * (1.0 - 0.5 / epoch)


SIM_EXPERIMENT = {
    "name": "sweep",
    "seed": 5,
    "training": {"max_epochs": 9, "min_epochs": 1, "eta": 3, "global_batch": 64, "micro_batch_max": 64},
    # a deadline that makes SEER widen its last round to W = 2 (so fewer slots matter)
    "budget": {"time_budget_s": 210.0, "money_budget_usd": 1e6, "price_usd_per_slot_hour": 3.6},
    "resources": {"num_slots": 2, "world_size_ladder": [1, 2]},
    "search": {"max_configurations": 9},
    "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}},
}
SIM_PROFILE = {"world_sizes": [1, 2], "speedup": [1.0, 1.8], "epoch_time_s": 10.0, "startup_s": 5.0}


def _sim_setup(tmp: Path, experiment: dict[str, Any]):
    tmp.mkdir(parents=True, exist_ok=True)
    profile = tmp / "profile.json"
    profile.write_text(json.dumps(SIM_PROFILE))
    exp = parse_experiment({**experiment, "planner": {"profile": str(profile), "num_finalists": 1}})
    clock = SimulatedClock()
    backend = SimulatedBackend(
        2, clock, epoch_time_s=10.0, speedup={1: 1.0, 2: 1.8}.__getitem__, startup_s=5.0, curve=_curve
    )
    return exp, clock, backend


def count_points(
    tmp: Path, experiment: dict[str, Any] = SIM_EXPERIMENT
) -> tuple[dict[str, Any], dict[str, int]]:
    """The uninterrupted run's results and how often it passes each journal point."""
    counts: dict[str, int] = {}
    real_hook = journal.debug_crash_point

    def counting(point: str) -> None:
        counts[point] = counts.get(point, 0) + 1

    exp, clock, backend = _sim_setup(tmp, experiment)
    journal.debug_crash_point = counting
    try:
        clean = Tuner(exp, tmp / "run", backend, policy=make_policy("seer"), clock=clock).run()
    finally:
        journal.debug_crash_point = real_hook
    return clean, counts


def _epochs_repeat(rows_by_trial: dict[str, list[int]]) -> list[str]:
    return [tid for tid, epochs in rows_by_trial.items() if epochs != list(range(1, len(epochs) + 1))]


def sim_case(
    tmp: Path,
    point: str,
    clean: dict[str, Any],
    fewer_slots: bool,
    experiment: dict[str, Any] = SIM_EXPERIMENT,
) -> dict[str, Any]:
    """Kill the simulated run at ``point`` ("launch:3"), resume, and check; returns a record."""
    exp, clock, backend = _sim_setup(tmp, experiment)
    run_dir = tmp / "run"
    journal._crash_counts.clear()
    os.environ["SEER_DEBUG_CRASH_AT"] = point
    os.environ["SEER_DEBUG_CRASH_MODE"] = "exception"
    crashed = False
    try:
        Tuner(exp, run_dir, backend, policy=make_policy("seer"), clock=clock).run()
    except Crash:
        crashed = True
    finally:
        os.environ.pop("SEER_DEBUG_CRASH_AT", None)
        os.environ.pop("SEER_DEBUG_CRASH_MODE", None)
    record: dict[str, Any] = {"point": point, "slots": 1 if fewer_slots else 2, "crashed": crashed}
    clock.sleep(7.0)  # down for 7 s; its jobs go on meanwhile
    if fewer_slots:
        backend.num_slots = 1  # the leftover jobs are stopped by the resume before anything launches
    problems: list[str] = []
    try:
        res = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock).run(resume=True)
    except Exception as e:  # noqa: BLE001 - a sweep reports every failure
        record.update(finished=False, problems=[f"resume raised {type(e).__name__}: {e}"])
        return record
    state = json.loads((run_dir / "state.json").read_text())
    if state["status"] != "finished":
        problems.append(f"journal status {state['status']}")
    best = res.get("best")
    if best is None:
        problems.append("no answer")
    elif not fewer_slots:
        for key in ("trial_id", "epochs", "val_accuracy"):
            if best[key] != clean["best"][key]:
                problems.append(f"best.{key} {best[key]!r} != uninterrupted {clean['best'][key]!r}")
    b = res["budget"]
    if b["time_used_s"] > b["time_budget_s"] + 1e-6 or b["cost_usd"] > b["money_budget_usd"] + 1e-9:
        problems.append(f"over budget: {b}")
    rows = {tid: [int(r["epoch"]) for r in backend._rows.get(tid, [])] for tid in backend._rows}
    if _epochs_repeat(rows):
        problems.append(f"epochs repeated in {_epochs_repeat(rows)}")
    record.update(
        finished=state["status"] == "finished",
        problems=problems,
        best=best and {k: best[k] for k in ("trial_id", "epochs", "val_accuracy")},
    )
    return record


def simulated_sweep(tmp: Path) -> dict[str, Any]:
    clean, counts = count_points(tmp / "clean")
    points = [f"{p}:{n}" for p in POINTS for n in range(1, counts.get(p, 0) + 1)]
    cases = []
    for i, point in enumerate(points):
        for fewer in (False, True):
            cases.append(sim_case(tmp / f"c{i}-{int(fewer)}", point, clean, fewer))
    return {
        "clean_best": {k: clean["best"][k] for k in ("trial_id", "epochs", "val_accuracy")},
        "clean_world_sizes": [r["world_size"] for r in clean["rounds"]],
        "points": counts,
        "cases": cases,
    }


# -- real ------------------------------------------------------------------------------------
def _real_write(tmp: Path, time_budget_s: float) -> Path:
    """The fault tests' digits experiment (:func:`seer_torch.testing.faults_experiment`, its
    given profile) with ``time_budget_s``, W at most 2."""
    return write_faults_experiment(tmp, name="sweep-real", time_budget_s=time_budget_s, max_world_size=2)


def _kill_during_checkpoint(cfg: Path, run_dir: Path, cwd: Path) -> None:
    """SIGKILL the tuner and every job while a second checkpoint of a trial is half-written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "seer_torch.cli", "tune", str(cfg), "--run-dir", str(run_dir), "--quiet"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "SEER_DEBUG_SAVE_DELAY_S": "3"},
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if any(
                (f.parent / "checkpoint.pt").exists() for f in run_dir.glob("trials/*/.checkpoint.pt.*.tmp")
            ):
                break
            time.sleep(0.05)
        for pid in [proc.pid, *descendant_pids(proc.pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        proc.wait(timeout=60)


def real_case(
    tmp: Path, point: str, clean: dict[str, Any] | None, slots: int, time_budget_s: float
) -> dict[str, Any]:
    cfg = _real_write(tmp, time_budget_s)
    run_dir = tmp / "run"
    if point == "checkpoint":
        _kill_during_checkpoint(cfg, run_dir, tmp)
    else:
        proc = run_seer(
            ["tune", str(cfg), "--run-dir", str(run_dir), "--quiet"],
            cwd=tmp,
            env={"SEER_DEBUG_CRASH_AT": point},
            timeout=600,
        )
        if proc.returncode != -signal.SIGKILL:
            return {
                "point": point,
                "slots": slots,
                "finished": False,
                "problems": [f"tune was not killed at {point} (exit {proc.returncode})"],
            }
    time.sleep(1.0)
    args = ["resume", str(run_dir), "--quiet"] + (["--slots", str(slots)] if slots != 2 else [])
    proc = run_seer(args, cwd=tmp, timeout=600)
    problems: list[str] = []
    record: dict[str, Any] = {"point": point, "slots": slots, "resume_exit": proc.returncode}
    if proc.returncode != 0:
        problems.append(f"resume exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
    res = json.loads((run_dir / "results.json").read_text()) if (run_dir / "results.json").exists() else {}
    best = res.get("best")
    if best is None:
        problems.append("no answer")
    elif clean is not None and slots == 2:
        for key in ("trial_id", "epochs", "val_accuracy"):
            if best[key] != clean["best"][key]:
                problems.append(f"best.{key} {best[key]!r} != uninterrupted {clean['best'][key]!r}")
    if res:
        b = res["budget"]
        if b["time_used_s"] > b["time_budget_s"] or b["cost_usd"] > b["money_budget_usd"]:
            problems.append(f"over budget: {b}")
    for d in sorted((run_dir / "trials").iterdir()) if (run_dir / "trials").exists() else []:
        m = d / "metrics.jsonl"
        epochs = [int(json.loads(x)["epoch"]) for x in m.read_text().splitlines()] if m.exists() else []
        if epochs != list(range(1, len(epochs) + 1)):
            problems.append(f"{d.name}: metrics epochs {epochs}")
        launches = (
            [line for line in (d / "stdout.log").read_text().splitlines() if line.startswith("=== launch")]
            if (d / "stdout.log").exists()
            else []
        )
        record.setdefault("launches", {})[d.name] = len(launches)
    tmps = [str(p.relative_to(run_dir)) for p in run_dir.rglob("*.tmp")]
    if tmps:
        problems.append(f"temporary files left: {tmps}")
    procs = processes_of(run_dir)
    if procs:
        problems.append(f"processes left: {procs}")
    record.update(
        finished=proc.returncode == 0 and best is not None,
        problems=problems,
        best=best and {k: best[k] for k in ("trial_id", "epochs", "val_accuracy", "world_sizes")},
    )
    return record


def real_sweep(tmp: Path, num_points: int, time_budget_s: float) -> dict[str, Any]:
    cfg = _real_write(tmp / "clean", time_budget_s)
    proc = run_seer(["tune", str(cfg), "--run-dir", str(tmp / "clean" / "run"), "--quiet"], cwd=tmp / "clean",
                    timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"the uninterrupted real run failed: {proc.stderr[-2000:]}")
    clean = json.loads((tmp / "clean" / "run" / "results.json").read_text())
    points = ["launch:2", "decide:2", "job_end:2", "launch:4", "checkpoint", "decide:4", "job_end:4"][
        :num_points
    ]
    cases = []
    for i, point in enumerate(points):
        for slots in (2, 1):
            cases.append(real_case(tmp / f"r{i}-{slots}", point, clean, slots, time_budget_s))
            print(json.dumps(cases[-1]), flush=True)
    return {
        "clean_best": clean["best"],
        "clean_world_sizes": [r["world_size"] for r in clean["rounds"]],
        "cases": cases,
    }


def _tally(part: dict[str, Any]) -> str:
    cases = part["cases"]
    ok = [c for c in cases if c.get("finished") and not c.get("problems")]
    by = {}
    for slots in sorted({c["slots"] for c in cases}, reverse=True):
        sub = [c for c in cases if c["slots"] == slots]
        by[slots] = f"{sum(1 for c in sub if c.get('finished') and not c.get('problems'))}/{len(sub)}"
    return (
        f"{len(ok)}/{len(cases)} resumes clean ("
        + ", ".join(f"{s} slot(s): {v}" for s, v in by.items())
        + ")"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-simulated", action="store_true", help="skip the simulated sweep")
    ap.add_argument(
        "--real", type=int, default=0, metavar="K", help="also kill a real run at K points (max 7)"
    )
    ap.add_argument(
        "--real-time-budget",
        type=float,
        default=60.0,
        help="deadline of the real run, seconds (short enough that SEER widens its last round)",
    )
    ap.add_argument("--out", help="write every case as JSON here")
    args = ap.parse_args(argv)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fault_sweep_") as tmpdir:
        tmp = Path(tmpdir)
        if not args.no_simulated:
            out["simulated"] = simulated_sweep(tmp / "sim")
            print(
                f"simulated: {len(out['simulated']['cases']) // 2} kill points "
                f"({out['simulated']['points']}), world sizes {out['simulated']['clean_world_sizes']}: "
                f"{_tally(out['simulated'])}"
            )
            for c in out["simulated"]["cases"]:
                if c.get("problems") or not c.get("finished"):
                    print(f"  {c['point']} slots={c['slots']}: {c.get('problems')}")
        if args.real:
            out["real"] = real_sweep(tmp / "real", args.real, args.real_time_budget)
            sizes = out["real"]["clean_world_sizes"]
            print(f"real: {args.real} kill points, world sizes {sizes}: {_tally(out['real'])}")
            for c in out["real"]["cases"]:
                if c.get("problems") or not c.get("finished"):
                    print(f"  {c['point']} slots={c['slots']}: {c.get('problems')}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    failed = any(c.get("problems") or not c.get("finished") for part in out.values() for c in part["cases"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
