"""``seer simulate``: policies on the simulated backend over a learning-curve table, at one
budget or at several (a sweep: ``--time-budget`` and ``--money-budget`` take comma-separated
lists, and every pair of them is simulated).

``--json`` prints, for one budget, ``{"table", "metric", "mode", "profile", "keep_alive",
"num_slots", "seeds", "time_budget_s", "money_budget_usd", "policies": {NAME:
seer_torch.simulate.summarize(...)}, "runs": [one per policy and seed]}``; for a sweep the same
without the last four keys and with ``"budgets"``: one ``{"time_budget_s", "money_budget_usd",
"policies", "runs"}`` per pair, time budgets first. ``seer report FILE.json`` draws either
(:mod:`seer_torch.report_simulation`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from seer_torch.commands.common import print_table, text_console
from seer_torch.errors import ConfigError


def eta_or_auto(text: str) -> int | None:
    """``--eta``: an integer >= 2, or ``auto`` (``None``: the planner chooses).

    Raises:
        argparse.ArgumentTypeError: anything else.
    """
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: an integer >= 2, or \"auto\"")
    return value


def budget_values(flag: str, text: str | float) -> list[float]:
    """``--time-budget`` or ``--money-budget`` of ``seer simulate``: one number, or a
    comma-separated list of them (a sweep), each finite and above 0; returned ascending,
    without repeats.

    Raises:
        ConfigError: naming the flag, the value and what is allowed.
    """
    allowed = "a finite number > 0, or a comma-separated list of them (a sweep)"
    values: list[float] = []
    for part in str(text).split(","):
        if part.strip().startswith("+"):  # never read as the number: +X adds, in `seer resume` only
            raise ConfigError(flag, part.strip() if "," in str(text) else text,
                              allowed + "; +X adds to a run's budget only in `seer resume`")
        try:
            v = float(part)
        except ValueError:
            raise ConfigError(flag, part.strip() if "," in str(text) else text, allowed) from None
        if not v > 0 or v == float("inf"):
            raise ConfigError(flag, v, allowed)
        values.append(v)
    return sorted(set(values))


def _check_args(args: argparse.Namespace, policy_names: tuple[str, ...] | list[str]) -> list[str]:
    """The policies to run, after ``--policies``, ``--seeds``, ``--slots`` and the budgets are
    checked.

    Raises:
        ConfigError: naming the flag, the value and what is allowed.
    """
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if not policies:
        raise ConfigError("--policies", args.policies, f"a comma-separated list of {', '.join(policy_names)}")
    for p in policies:
        if p not in policy_names:
            raise ConfigError("--policies", p, f"names from {', '.join(policy_names)}")
    if args.seeds < 1:
        raise ConfigError("--seeds", args.seeds, "an integer >= 1")
    if args.slots < 1:
        raise ConfigError("--slots", args.slots, "an integer >= 1")
    budget_values("--time-budget", args.time_budget)
    budget_values("--money-budget", args.money_budget)
    return policies


def cmd_simulate(args: argparse.Namespace) -> int:
    """``seer simulate``: run the policies over the seeds, at each budget, and print the table
    (or JSON: the module docstring). Returns the exit status (0).

    Raises:
        ConfigError: a bad flag, table or profile.
    """
    from seer_torch.curves import LearningCurveTable
    from seer_torch.simulate import (
        POLICY_NAMES,
        SimulationCase,
        format_report,
        load_profile_for_simulation,
        shipped_table_path,
        simulate,
    )

    table_path = args.table or shipped_table_path()
    if table_path is None:
        raise ConfigError("--table", None,
                          "a learning-curve table JSON file (none is shipped in this install)")
    table = LearningCurveTable.load(table_path)
    for flag, value in (("--startup-s", args.startup_s), ("--resize-s", args.resize_s)):
        if value is not None and (not value >= 0 or value == float("inf")):
            raise ConfigError(flag, value, "a finite number of seconds >= 0")
    policies = _check_args(args, POLICY_NAMES)
    times = budget_values("--time-budget", args.time_budget)
    moneys = budget_values("--money-budget", args.money_budget)
    # After the flags' own checks: a profile without start-up needs --startup-s, said last.
    profile = load_profile_for_simulation(args.profile, startup_s=args.startup_s, resize_s=args.resize_s)
    case = SimulationCase(
        table, profile, times[0], moneys[0], num_slots=args.slots,
        price_usd_per_slot_hour=args.price, eta=args.eta,
        world_size_ladder=tuple(w for w in (1, 2, 4, 8, 16, 32, 64) if w <= args.slots),
        billing_granularity_s=args.billing_granularity_s, billing_minimum_s=args.billing_minimum_s,
    )
    if getattr(args, "keep_alive", None) is not None:  # --keep-alive / --no-keep-alive
        case = dataclasses.replace(case, keep_alive=args.keep_alive)
    points = []
    for time_s in times:
        for usd in moneys:
            at = dataclasses.replace(case, time_budget_s=time_s, money_budget_usd=usd)
            points.append((at, simulate(at, policies, list(range(args.seeds)))))
    if args.json:
        head = {"table": str(table_path), "metric": table.metric, "mode": table.mode,
                "profile": profile.to_dict(), "keep_alive": case.keep_alive, "num_slots": args.slots,
                "seeds": args.seeds}
        if len(points) == 1:
            ((at, result),) = points
            budget = {"time_budget_s": at.time_budget_s, "money_budget_usd": at.money_budget_usd}
            print(json.dumps({**head, **budget, **result}, indent=2))
        else:
            print(json.dumps({**head, "budgets": [
                {"time_budget_s": at.time_budget_s, "money_budget_usd": at.money_budget_usd, **result}
                for at, result in points]}, indent=2))
        return 0
    from rich.table import Table

    sweep = len(points) > 1
    budgets = "" if sweep else f"{times[0]:g} s, {moneys[0]:g} USD, "
    t = Table(title=f"{table.name}: {len(table)} configurations x {table.max_epochs} epochs; "
                    f"profile {profile.name}; {budgets}"
                    f"{args.slots} slots, {args.seeds} seeds; jobs "
                    f"{'kept alive' if case.keep_alive else 'relaunched at every rung'}")
    columns = ["policy", f"final {table.metric}, {table.mode} (mean ± std)", "regret", "time s", "money USD",
               "violations", "configurations", "no answer"]
    for col in (["time budget s", "money budget USD"] if sweep else []) + columns:
        t.add_column(col, justify="left" if col == "policy" else "right")
    for at, result in points:
        for row in format_report(result, at):
            t.add_row(*(((f"{at.time_budget_s:g}", f"{at.money_budget_usd:g}") if sweep else ()) + row))
    print_table(text_console(), t)
    return 0
