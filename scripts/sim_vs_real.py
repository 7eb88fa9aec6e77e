#!/usr/bin/env python
"""Does the simulator agree with reality? Replays a real ``seer tune`` run in the simulator.

::

    python scripts/sim_vs_real.py RUN_DIR [--out sim_vs_real.json]

From the run directory of a real ``seer tune`` run: its experiment, the scaling profile it
measured (``profile.json``) and the experiment's metric every trial reported (``metrics.jsonl``)
become a learning-curve table, and the same executor and SEER policy run on the simulated
backend with the budgets that were left when the real run finished profiling. Because the
curves are the real ones, the simulator eliminates the same trials; what differs is only the
time and money model. Printed per round: real and simulated duration and cost, and their
relative difference (target: within 15%).

Each real round is replayed on the simulated backend: the same trials, launched at the same
``W`` from where they stood to the same rung, round after round, through the same executor
(:class:`ReplayPolicy`). So every row compares the same jobs, and what differs is only the time
and money model. (SEER re-plans with the times it measures, so a SEER run in the simulator may
carry other survivor counts than the real one; those are printed too, as ``SEER in the
simulator would carry``.) Two models are reported:

- ``profile``: every trial's epoch time is predicted from the profile alone: the profile's
  ``epoch_time_s`` (the probe configuration, the widest model), or, when the profile measured
  configurations of different cost (``epoch_time_by_flops``), the prediction for the trial's
  FLOPs per sample (:meth:`Profile.epoch_time_for`); every job pays the profile's overheads
  (``startup_s``, ``resize_s``; where jobs are kept alive, a continuation ``continue_s`` and a
  warm worker's job ``warm_start_s``, the profile's or the executor's estimates,
  :func:`seer_torch.simulate.simulated_backend`): exactly what the simulator knows before the run;
- ``per-trial``: each trial's epoch time is the one it measured at W = 1 in the real run (the
  search space mixes model widths), overheads from the profile: how much of the gap the
  per-configuration epoch time explains.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import load_experiment
from seer_torch.executor import Tuner
from seer_torch.policies.base import Finish, Launch, PolicyContext, RoundTracker, Snapshot
from seer_torch.policies.registry import make_policy
from seer_torch.runfiles import read_metrics
from seer_torch.scaling.profile import load_profile
from seer_torch.simulate import KEEP_ALIVE, simulated_backend


class ReplayPolicy:
    """Launches given rounds, one after the other: ``(round_index, rung_epoch, world_size,
    trial_indexes)``; a round starts when the one before has ended. Pure, like every policy."""

    name = "replay"
    reserved_slots = None

    def __init__(self, rounds: list[tuple[int, int, int, list[int]]], max_epochs: int) -> None:
        self.rounds = list(rounds)
        self.max_epochs = max_epochs
        self.round = RoundTracker()
        self.started = False

    def setup(self, context: PolicyContext) -> None:
        pass

    @property
    def schedule_epochs(self) -> int:
        return self.max_epochs

    def decide(self, snapshot: Snapshot):
        for ev in snapshot.events:
            self.round.ended(ev.index)
        if not self.started or self.round.done:
            self.started = True
            if not self.rounds:
                return [Finish("replayed every round")]
            self.round.start(*self.rounds.pop(0))
        out: list[Launch | Finish] = []
        out += self.round.launches(snapshot.free_slots)
        return out

    def answer(self, snapshot: Snapshot):
        return None

    def report(self) -> dict:
        return {"policy": self.name}


def round_members(results: dict) -> list[tuple[int, int, int, list[int]]]:
    """``(round_index, rung_epoch, world_size, trial_indexes)`` of every completed round of a
    run's ``results.json``: the trials that reached its rung, or ended in it (failed or diverged
    between the rung before and this one). Trial ``tNNN`` is configuration index ``NNN``."""
    members: list[tuple[int, int, int, list[int]]] = []
    previous = 0
    for r in results["rounds"]:
        if not r.get("completed"):
            break
        idx = [
            int(t["trial_id"][1:])
            for t in results["trials"]
            if t["epochs"] >= r["rung_epoch"]
            or (t["status"] in ("failed", "diverged") and previous <= t["epochs"] < r["rung_epoch"])
        ]
        members.append((r["index"], r["rung_epoch"], r["world_size"], sorted(idx)))
        previous = r["rung_epoch"]
    return members


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--out", default=None, help="JSON output (default RUN_DIR/sim_vs_real.json)")
    ap.add_argument("--tolerance", type=float, default=0.15)
    ap.add_argument("--keep-alive", action=argparse.BooleanOptionalAction, default=KEEP_ALIVE,
                    help="simulate kept-alive jobs and warm workers, as the real run's backend "
                         f"(default {'on' if KEEP_ALIVE else 'off'}: as the local backend)")
    args = ap.parse_args(argv)
    run = Path(args.run_dir)
    real = json.loads((run / "results.json").read_text())
    exp = load_experiment(run / "experiment.toml")
    profile = load_profile(run / "profile.json")
    rounds = [r for r in real["rounds"] if r.get("completed")]
    if not rounds:
        print("the run completed no round", file=sys.stderr)
        return 1
    # What was left when the rounds started (profiling came first, and is not simulated).
    start_s = rounds[0]["start_s"]
    spent_before = real["budget"]["cost_usd"] - sum(r["cost_usd"] for r in real["rounds"])
    sim_exp = exp.with_overrides(
        time_budget_s=exp.budget.time_budget_s - start_s,
        money_budget_usd=exp.budget.money_budget_usd - spent_before,
    )
    val: dict[int, dict[int, float]] = {}
    own_epoch_s: dict[int, float] = {}
    predicted_epoch_s: dict[int, float] = {}
    if profile.epoch_time_by_flops:
        from seer_torch.scaling.profiler import configurations_flops

        flops = configurations_flops(exp, [t["config"] for t in real["trials"]])
        predicted_epoch_s = {
            int(t["trial_id"][1:]): profile.epoch_time_for(f) for t, f in zip(real["trials"], flops)
        }
    for t in real["trials"]:
        index = int(t["trial_id"][1:])
        rows = read_metrics(run / "trials" / t["trial_id"] / "metrics.jsonl")
        val[index] = {int(r["epoch"]): r[exp.metric] for r in rows if r.get(exp.metric) is not None}
        w1 = [r["epoch_time_s"] for r in rows if r.get("world_size") == 1 and r.get("epoch_time_s")]
        if w1:
            own_epoch_s[index] = statistics.median(w1)

    # An epoch before any the trial reported scores the worst: 0 for a maximized metric (an
    # accuracy), the largest value any trial reported for a minimized one.
    worst = 0.0 if exp.mode == "max" else max((v for c in val.values() for v in c.values()), default=0.0)

    def val_at(i: int, e: int) -> float:
        curve = val.get(i, {})
        if e in curve:
            return curve[e]
        below = [k for k in curve if k < e]
        return curve[max(below)] if below else worst

    members = round_members(real)

    report = {"run_dir": str(run), "profile": profile.to_dict(), "keep_alive": args.keep_alive,
              "simulations": {}}
    for mode in ("profile", "per-trial"):

        def backend_for(clock: SimulatedClock, mode: str = mode) -> SimulatedBackend:
            return simulated_backend(
                exp.resources.num_slots,
                clock,
                profile,
                keep_alive=args.keep_alive,
                val_at=val_at,
                metric=exp.metric,
                epoch_time_at=lambda i: (own_epoch_s if mode == "per-trial" else predicted_epoch_s).get(
                    i, profile.epoch_time_s
                ),
            )

        clock = SimulatedClock()
        replay = Tuner(
            sim_exp.with_overrides(time_budget_s=1e9, money_budget_usd=1e9),
            None,
            backend_for(clock),
            clock=clock,
            profile=profile,
            policy=ReplayPolicy(members, exp.training.max_epochs),
        ).run()
        clock = SimulatedClock()
        seer = Tuner(
            sim_exp, None, backend_for(clock), policy=make_policy("seer"), clock=clock, profile=profile
        ).run()
        rows = []
        for r, s in zip(rounds, replay["rounds"]):
            real_d, sim_d = r["end_s"] - r["start_s"], s["end_s"] - s["start_s"]
            rows.append(
                {
                    "round": r["index"],
                    "rung_epoch": r["rung_epoch"],
                    "num_trials": r["num_trials"],
                    "world_size": r["world_size"],
                    "sim_num_trials": s["num_trials"],
                    "sim_world_size": s["world_size"],
                    "real_s": real_d,
                    "sim_s": sim_d,
                    "time_diff": (sim_d - real_d) / real_d,
                    "real_usd": r["cost_usd"],
                    "sim_usd": s["cost_usd"],
                    "money_diff": (s["cost_usd"] - r["cost_usd"]) / r["cost_usd"],
                }
            )
        within = all(
            abs(x["time_diff"]) <= args.tolerance and abs(x["money_diff"]) <= args.tolerance for x in rows
        )
        replayed = len(rows) == len(rounds) and all(x["num_trials"] == x["sim_num_trials"] for x in rows)
        seer_shape = [(x["num_trials"], x["world_size"]) for x in seer["rounds"]]
        report["simulations"][mode] = {
            "rounds": rows,
            "within_tolerance": within,
            "replayed_every_round": replayed,
            "seer_in_simulator_rounds": seer_shape,
            "seer_in_simulator_best": seer["best"] and seer["best"]["trial_id"],
            "real_best": real["best"] and real["best"]["trial_id"],
        }
        print(
            f"\n{mode}: {'ALL WITHIN' if within else 'NOT ALL WITHIN'} {args.tolerance:.0%}"
            f"{'' if replayed else ' (NOT every round replayed)'}; SEER in the simulator would carry "
            f"{[n for n, _ in seer_shape]} at W {[w for _, w in seer_shape]}, real "
            f"{[r['num_trials'] for r in rounds]}; best real {report['simulations'][mode]['real_best']}, "
            f"SEER simulated {report['simulations'][mode]['seer_in_simulator_best']}"
        )
        print(
            f"{'round':>5} {'rung':>4} {'n':>3} {'W':>2} {'real s':>8} {'sim s':>8} {'diff':>7} "
            f"{'real USD':>9} {'sim USD':>9} {'diff':>7}"
        )
        for x in rows:
            print(
                f"{x['round']:>5} {x['rung_epoch']:>4} {x['num_trials']:>3} {x['world_size']:>2} "
                f"{x['real_s']:>8.1f} {x['sim_s']:>8.1f} {x['time_diff']:>+7.1%} "
                f"{x['real_usd']:>9.4f} {x['sim_usd']:>9.4f} {x['money_diff']:>+7.1%}"
            )
    out = Path(args.out) if args.out else run / "sim_vs_real.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
