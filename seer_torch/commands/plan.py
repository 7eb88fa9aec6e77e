"""``seer plan``: the plan ``seer tune`` would start from, printed as a table or as JSON.
Launches nothing and imports no torch: the profile is the given one or the shipped estimate,
and the draws' FLOPs come from the model registry's table of counted values
(:func:`seer_torch.models.flops_per_sample`)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seer_torch.commands.checks import check_before_launch
from seer_torch.commands.common import (
    experiment_from_args,
    print_table,
    shipped_profile_path,
    text_console,
    what_trains,
)
from seer_torch.config import Experiment
from seer_torch.errors import ConfigError

#: What `seer plan` asks of a [trial] script experiment without a profile: it launches nothing,
#: so it cannot time the script, and no profile ships for a user's model.
SCRIPT_PLAN_NEEDS_PROFILE = (
    "a scaling profile of your script for seer plan, which launches nothing: measure one with "
    "`seer profile EXPERIMENT --out profile.json` (short jobs of your script at each W) and pass "
    "--profile profile.json or set [planner] profile; `seer tune` without one measures its own first"
)

# How long `seer tune` spends profiling before it plans, in launches of the worker; used by
# `seer plan` to show the plan `seer tune` would make.
PROFILE_EXTRA_S = 5.0  # a probe job's work: its timed steps at W=2 and W=1, validation passes


@dataclass(frozen=True)
class _PlanInputs:
    """What ``seer plan`` plans with and prints.

    Attributes:
        prof_path: the profile file; note: "given" or why the shipped one is used.
        prof: the profile read from it.
        profiling_s, profiling_slot_s: seconds and slot-seconds ``seer tune`` spends measuring
            its own profile first (0 with a given profile).
        ctx: the policy context (:func:`seer_torch.executor.policy_context`).
    """

    prof_path: Path
    note: str
    prof: Any
    profiling_s: float
    profiling_slot_s: float
    ctx: Any


def cmd_plan(args: argparse.Namespace) -> int:
    """``seer plan``: check the experiment as ``seer tune`` would, plan with the same inputs,
    print the plan. Returns the exit status: 0 with a plan (a ``BEST EFFORT`` or
    ``EXPLORATION FIRST`` one too), 1 with ``NO PLAN`` (the budgets pay for not even one epoch of
    one configuration: ``seer tune`` would give no answer), so ``seer plan && seer tune`` runs
    only what can answer.

    Raises:
        ConfigError: bad input, or no profile (none given and none shipped for the model and
            dataset; never one for a ``[trial] script``: :data:`SCRIPT_PLAN_NEEDS_PROFILE`).
    """
    from seer_torch.policies.seer_policy import SeerPolicy

    exp = experiment_from_args(args)
    check_before_launch(exp, data=False)  # the model and the search space, as `seer tune` checks them
    inputs = _plan_inputs(exp)
    plan = SeerPolicy.first_plan(inputs.ctx)  # the plan `seer tune` starts from, with the same inputs
    if args.json:
        _print_json(exp, inputs, plan)
    else:
        _print_table(exp, inputs, plan)
    return 0 if plan.rounds else 1


def _profile_to_plan_with(exp: Experiment) -> tuple[Path, str]:
    """The given profile, or the one shipped for the model and dataset, and a note saying which.

    Raises:
        ConfigError: none given and none shipped.
    """
    if exp.planner.profile:
        return Path(exp.planner.profile), "given"
    if exp.trial.script is not None:
        raise ConfigError("planner.profile", None, SCRIPT_PLAN_NEEDS_PROFILE)
    shipped = shipped_profile_path(exp)
    if shipped is None:
        raise ConfigError(
            "planner.profile",
            None,
            f"a scaling profile file for model {exp.model.name!r} on {exp.data.dataset!r} "
            "(pass --profile FILE; `seer tune` measures one and writes RUN_DIR/profile.json)",
        )
    return shipped, "shipped estimate; seer tune measures its own first"


def _plan_inputs(exp: Experiment) -> _PlanInputs:
    """The profile, the profiling ``seer tune`` does first, and the policy context with the
    budgets that leaves."""
    from seer_torch.executor import FINAL_GRACE_S, draw_costs_needed, policy_context, tune_probe_world_sizes
    from seer_torch.scaling import profiler
    from seer_torch.scaling.profile import load_profile

    prof_path, note = _profile_to_plan_with(exp)
    prof = load_profile(prof_path)
    profiling_s = profiling_slot_s = 0.0
    costs = draw_costs_needed(exp, prof if exp.planner.profile else None)  # counted once
    if not exp.planner.profile:
        # `seer tune` measures its own profile first: one start-up and probe per batch of probes.
        batches = profiler.probe_schedule(tune_probe_world_sizes(exp))
        profiling_s = len(batches) * (prof.startup_s + PROFILE_EXTRA_S)
        profiling_slot_s = sum(map(sum, batches)) * (prof.startup_s + PROFILE_EXTRA_S)
    b = exp.budget
    ctx = policy_context(
        exp,
        prof,
        num_slots=exp.resources.num_slots,
        time_left_s=b.time_budget_s - profiling_s - FINAL_GRACE_S,
        money_left_usd=b.money_budget_usd - profiling_slot_s * b.price_usd_per_slot_hour / 3600,
        draw_costs=costs,
        keep_alive=exp.resources.keep_alive,  # seer tune's local backend keeps jobs alive unless told not to
        warm_workers=exp.resources.backend != "ray",  # on Ray a new trial is a new job
    )
    return _PlanInputs(prof_path, note, prof, profiling_s, profiling_slot_s, ctx)


def _print_json(exp: Experiment, inputs: _PlanInputs, plan: Any) -> None:
    b = exp.budget
    print(
        json.dumps(
            {
                "experiment": exp.name,
                "profile": {"path": str(inputs.prof_path), "note": inputs.note, **inputs.prof.to_dict()},
                "profiling_s": inputs.profiling_s,
                "budget": {"time_budget_s": b.time_budget_s, "money_budget_usd": b.money_budget_usd,
                           "price_usd_per_slot_hour": b.price_usd_per_slot_hour},
                "num_slots": exp.resources.num_slots,
                "plan": plan.to_dict(),
                "nodes": [_nodes_dict(n) for n in _plan_nodes(exp, plan)] or None,
                "machine_start_s": inputs.ctx.machine_start_s,
            },
            indent=2,
        )
    )


def _plan_nodes(exp: Experiment, plan: Any) -> list[Any]:
    """Each round's machines (:func:`~seer_torch.executor.held_nodes.round_nodes`), or ``[]``
    without ``[resources] node_types``."""
    from seer_torch.executor.held_nodes import round_nodes

    types = exp.resources.node_types
    if not types:
        return []
    return [round_nodes(r.num_trials, r.world_size, exp.resources.num_slots, r.predicted_duration_s, types)
            for r in plan.rounds]


def _nodes_dict(n: Any) -> dict[str, Any] | None:
    return None if n is None else {"slots": n.slots, "node_type": n.node_type.name, "nodes": n.nodes,
                                   "cost_usd": n.cost_usd}


def _print_table(exp: Experiment, inputs: _PlanInputs, plan: Any) -> None:
    from rich.table import Table

    from seer_torch.executor import FINAL_GRACE_S

    b, prof, ctx = exp.budget, inputs.prof, inputs.ctx
    console = text_console()
    console.print(
        f"[bold]{exp.name}[/]: {what_trains(exp)}; deadline {b.time_budget_s:g} s, "
        f"money {b.money_budget_usd:g} USD at {b.price_usd_per_slot_hour:g} USD/slot-hour, "
        f"{exp.resources.num_slots} slot{'s' if exp.resources.num_slots != 1 else ''}"
    )
    draws_s = ctx.draw_epoch_times_s
    console.print(
        f"profile: {inputs.prof_path} ({inputs.note}): epoch {ctx.epoch_time_s:.2f} s on 1 worker"
        + (f" (the mean over the draws, {min(draws_s):.2f}-{max(draws_s):.2f} s by their FLOPs)"
           if draws_s else "")
        + ", start-up "
        f"{prof.startup_s:.1f} s, speedup "
        + ", ".join(f"W={w}: {s:.2f}" for w, s in zip(prof.world_sizes, prof.speedup))
    )
    if inputs.profiling_s:
        profiling_usd = inputs.profiling_slot_s * b.price_usd_per_slot_hour / 3600
        console.print(f"seer tune first spends about {inputs.profiling_s:.0f} s and {profiling_usd:.4f} USD "
                      "measuring its own profile; the plan leaves them out.")
        if ctx.money_budget_usd <= 0 or ctx.time_budget_s <= 0:
            which = "money budget" if ctx.money_budget_usd <= 0 else "deadline"
            given = (f"{b.money_budget_usd:g} USD" if ctx.money_budget_usd <= 0
                     else f"{b.time_budget_s:g} s, less {FINAL_GRACE_S:g} s kept to write the answer")
            console.print(f"[bold red]the {which} ({given}) does not even pay for that[/]: "
                          "nothing is left to plan with (--profile FILE skips the measuring).")

    def chosen(value: object) -> str:  # left open to the planner
        return " (chosen)" if value is None else ""

    # num_finalists is a floor: eta's cut may carry more to the last rung (10 -> 3 at eta 3).
    last = plan.rounds[-1].num_trials if plan.rounds else 0
    table = Table(title=f"SEER plan: {plan.num_configurations} configurations, "
                        f"eta {plan.eta}{chosen(exp.training.eta)}, {last} to the last rung "
                        f"(num_finalists {plan.num_finalists}{chosen(exp.planner.num_finalists)})")
    nodes = _plan_nodes(exp, plan)
    cols = ["round", "rung (epochs)", "trials", "W", "waves", "predicted s", "predicted USD"]
    for col in cols + (["machines", "machines USD"] if nodes else []):
        table.add_column(col, justify="right")
    for k, r in enumerate(plan.rounds):
        row = [str(r.index), str(r.rung_epoch), str(r.num_trials), str(r.world_size), str(r.waves),
               f"{r.predicted_duration_s:.1f}", f"{r.predicted_cost_usd:.4f}"]
        if nodes:
            n = nodes[k]
            row += [f"{n.nodes} x {n.node_type.name}", f"{n.cost_usd:.4f}"] if n else ["", ""]
        table.add_row(*row)
    if plan.rounds:  # NO PLAN has no rounds: no empty table, no totals of nothing
        print_table(console, table)
        console.print(
            f"total: {plan.predicted_time_s:.1f} s of {ctx.time_budget_s:.0f} s left, "
            f"{plan.predicted_cost_usd:.4f} USD of {ctx.money_budget_usd:.4f} USD (plans may use "
            f"safety_fraction {ctx.safety_fraction:g} of each); binding: {plan.binding}"
        )
        if nodes:
            held = sum(n.cost_usd for n in nodes if n)
            console.print(
                f"machines: the cheapest \\[resources] node_types to hold each round's busy slots, held "
                f"through the round: {held:.4f} USD in all (the meter on Ray bills what the cluster "
                "holds: boots, idle slots and nodes the autoscaler keeps after a round count too)"
            )
    if exp.resources.backend == "ray":
        console.print(machine_start_words(ctx.machine_start_s))
    style = "bold green" if plan.feasible else "bold red"
    console.print(f"[{style}]{plan.message}[/]")


def machine_start_words(machine_start_s: float | None) -> str:
    """The machine start a plan on the Ray backend was made with, in words (``seer plan``)."""
    if machine_start_s is None:
        return ("machine start: planned as 0 s (\\[resources] machine_start_s not set); seer tune "
                "measures it on the cluster and re-plans with it at each rung")
    words = f"machine start: {machine_start_s:g} s (\\[resources] machine_start_s)"
    if machine_start_s > 0:
        words += (": round 1 waits it for its machines, and a round that holds more slots than the one "
                  "before waits what is left of it after that round (its machines are asked for when that "
                  "round starts); seer tune re-plans with the start it measures")
    return words
