"""``seer simulate``: policies on the simulated backend over a learning-curve table."""

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
    for name in ("time_budget", "money_budget"):
        v = getattr(args, name)
        if not v > 0 or v != v or v == float("inf"):
            raise ConfigError("--" + name.replace("_", "-"), v, "a finite number > 0")
    return policies


def cmd_simulate(args: argparse.Namespace) -> int:
    """``seer simulate``: run the policies over the seeds and print the table (or JSON).
    Returns the exit status (0).

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
    profile = load_profile_for_simulation(args.profile, startup_s=args.startup_s, resize_s=args.resize_s)
    policies = _check_args(args, POLICY_NAMES)
    case = SimulationCase(
        table, profile, args.time_budget, args.money_budget, num_slots=args.slots,
        price_usd_per_slot_hour=args.price, eta=args.eta,
        world_size_ladder=tuple(w for w in (1, 2, 4, 8, 16, 32, 64) if w <= args.slots),
        billing_granularity_s=args.billing_granularity_s, billing_minimum_s=args.billing_minimum_s,
    )
    if getattr(args, "keep_alive", None) is not None:  # --keep-alive / --no-keep-alive
        case = dataclasses.replace(case, keep_alive=args.keep_alive)
    result = simulate(case, policies, list(range(args.seeds)))
    if args.json:
        print(json.dumps({"table": str(table_path), "metric": table.metric, "mode": table.mode,
                          "profile": profile.to_dict(), "keep_alive": case.keep_alive,
                          "time_budget_s": args.time_budget, "money_budget_usd": args.money_budget,
                          "num_slots": args.slots, **result}, indent=2))
        return 0
    from rich.table import Table

    t = Table(title=f"{table.name}: {len(table)} configurations x {table.max_epochs} epochs; "
                    f"profile {profile.name}; {args.time_budget:g} s, {args.money_budget:g} USD, "
                    f"{args.slots} slots, {args.seeds} seeds; jobs "
                    f"{'kept alive' if case.keep_alive else 'relaunched at every rung'}")
    for col in ("policy", f"final {table.metric}, {table.mode} (mean ± std)", "regret", "time s", "money USD",
                "violations", "configurations", "no answer"):
        t.add_column(col, justify="left" if col == "policy" else "right")
    for row in format_report(result, case):
        t.add_row(*row)
    print_table(text_console(), t)
    return 0
