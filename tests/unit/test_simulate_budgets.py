"""Budgets hold (issue 4, must-show 1): thousands of random simulated runs, every policy.

Each case draws a parametric learning-curve table, a scaling profile (one of the measured
public ones, or a random sublinear one), budgets from "not even one epoch" to "plenty", slots,
billing rounding, eta and a seed, and runs one policy through the real executor on the
simulated backend. Asserted for every run:

- time used <= the deadline (the executor stops jobs FINAL_GRACE_S before it);
- money used <= the money budget (billing rounding is metered, so it is part of the spend, and
  the executor never launches a job whose minimum billing would break the budget); the only
  slack is float round-off (``money_slack_usd``);
- when one configuration could have been trained for one epoch at W=1 within the plannable
  fraction of both budgets, the run ends with an answer (unless every configuration it tried
  diverged: a table's NaN curve has no valid result to return).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from seer_torch.curves import generate_table
from seer_torch.executor import FINAL_GRACE_S
from seer_torch.policies.billing import billed_seconds
from seer_torch.scaling.profile import parse_profile
from seer_torch.simulate import POLICY_NAMES, SimulationCase, money_slack_usd, simulate_run

# The measured public profiles (../shared/data/scaling_profiles.json, copied into tests/data).
SHARED_PROFILES = Path(__file__).resolve().parents[1] / "data" / "scaling_profiles.json"
NUM_CASES = 2000
_TABLES: dict[tuple[int, int, int], object] = {}


def _table(n: int, epochs: int, seed: int, epoch_time_s: float):
    key = (n, epochs, seed)
    if key not in _TABLES:
        _TABLES[key] = generate_table(n, epochs, seed, epoch_time_s=1.0, divergence_fraction=0.15)
    t = _TABLES[key]
    from dataclasses import replace

    return replace(t, epoch_time_s=epoch_time_s)


def _profiles(rng: random.Random) -> list[dict]:
    out = [dict(p) for p in json.loads(SHARED_PROFILES.read_text())["profiles"]]
    # Random sublinear profiles (Amdahl with a random serial fraction), and a flat one.
    for f in (0.0, 0.05, 0.2, 0.6, 1.0):
        out.append({"name": f"amdahl-{f}", "world_sizes": [1, 2, 4, 8],
                    "speedup": [1.0] + [1.0 / (f + (1 - f) / w) for w in (2, 4, 8)]})
    return out


def _case(i: int) -> tuple[SimulationCase, str, int, bool]:
    rng = random.Random(1000 + i)
    profiles = _profiles(rng)
    n = rng.choice([4, 9, 16, 27, 40, 81])
    epochs = rng.choice([1, 3, 4, 9, 10, 27])
    epoch_time_s = rng.choice([0.5, 5.0, 30.0, 120.0])
    table = _table(n, epochs, rng.randrange(5), epoch_time_s)
    raw = dict(rng.choice(profiles))
    startup = rng.choice([0.0, 2.0, 11.0, 30.0])
    prof = parse_profile({**raw, "epoch_time_s": epoch_time_s, "startup_s": startup,
                          "resize_s": rng.choice([startup, startup / 2])})
    slots = rng.choice([1, 2, 3, 4, 8, 16])
    price = rng.choice([0.5, 3.06, 24.0])
    granularity, minimum = rng.choice([(0.0, 0.0), (1.0, 0.0), (60.0, 60.0), (0.0, 60.0), (3600.0, 0.0)])
    # Budgets on a log scale around "what one full training costs".
    full_s = startup + epochs * epoch_time_s
    time_budget = full_s * 10 ** rng.uniform(-1.5, 1.5) + FINAL_GRACE_S * rng.choice([0, 1, 2])
    money = price / 3600 * max(full_s, minimum) * 10 ** rng.uniform(-1.5, 2.0)
    eta = rng.choice([2, 3, 4])
    case = SimulationCase(
        table, prof, time_budget, money, num_slots=slots, price_usd_per_slot_hour=price, eta=eta,
        world_size_ladder=(1, 2, 4, 8), billing_granularity_s=granularity, billing_minimum_s=minimum,
    )
    policy = POLICY_NAMES[i % len(POLICY_NAMES)]
    # Could one configuration be trained for one epoch at W=1 within the plannable budgets?
    one_s = startup + max(table.epoch_time_at(j) for j in range(len(table)))
    f = case.safety_fraction
    trainable = (
        one_s <= f * (time_budget - FINAL_GRACE_S)
        and price / 3600 * billed_seconds(one_s, granularity, minimum) <= f * money
    )
    return case, policy, rng.randrange(1000), trainable


def _policies_available() -> list[str]:
    try:
        import seer_torch.policies.registry  # noqa: F401
    except ImportError:
        return ["seer"]
    return list(POLICY_NAMES)


@pytest.mark.parametrize("chunk", range(10))
def test_no_simulated_run_breaks_a_budget_or_ends_without_an_answer_it_could_have(chunk):
    available = set(_policies_available())
    failures = []
    ran = 0
    for i in range(chunk, NUM_CASES, 10):
        case, policy, seed, trainable = _case(i)
        if policy not in available:
            policy = "seer"
        r = simulate_run(case, policy, seed)
        ran += 1
        problems = []
        if r.time_used_s > case.time_budget_s:
            problems.append(f"time {r.time_used_s:.3f} > {case.time_budget_s:.3f}")
        if r.cost_usd > case.money_budget_usd + money_slack_usd(case.money_budget_usd):
            problems.append(f"money {r.cost_usd:.6f} > {case.money_budget_usd:.6f}")
        if trainable and r.answer_id is None and not r.all_diverged:
            problems.append(f"no answer ({r.stop_reason})")
        if problems:
            failures.append(
                f"case {i} {policy} seed {seed}: {'; '.join(problems)} "
                f"[n={len(case.table)} E={case.table.max_epochs} tau={case.table.epoch_time_s} "
                f"startup={case.profile.startup_s} slots={case.num_slots} T={case.time_budget_s:.1f} "
                f"M={case.money_budget_usd:.4f} price={case.price_usd_per_slot_hour} "
                f"bill=({case.billing_granularity_s},{case.billing_minimum_s}) eta={case.eta}]"
            )
    assert ran == NUM_CASES // 10
    assert not failures, f"{len(failures)} of {ran} runs failed:\n" + "\n".join(failures[:15])


def test_a_simulated_seer_run_plans_with_the_machine_start(tmp_path):
    # The simulator plans as the tuner does (one cost model): with a 30 s machine start, the
    # first round of the same plan is predicted 30 s longer. The simulated cluster starts no
    # machines, so the run itself takes no longer.
    table = _table(9, 9, 1, 10.0)
    prof = parse_profile({"world_sizes": [1, 2], "speedup": [1.0, 1.8], "epoch_time_s": 10.0,
                          "startup_s": 5.0, "resize_s": 5.0})
    plans = []
    for name, machine_s in (("none", None), ("thirty", 30.0)):
        case = SimulationCase(table, prof, 1e5, 1e3, num_slots=4, world_size_ladder=(1, 2),
                              machine_start_s=machine_s)
        simulate_run(case, "seer", 0, run_dir=tmp_path / name)
        res = json.loads((tmp_path / name / "results.json").read_text())
        plans.append(res["plan"]["rounds"])
    without, with_30 = plans
    assert [(r["num_trials"], r["world_size"]) for r in without] == [
        (r["num_trials"], r["world_size"]) for r in with_30]
    assert with_30[0]["predicted_duration_s"] == pytest.approx(without[0]["predicted_duration_s"] + 30.0)
    assert [r["predicted_duration_s"] for r in with_30[1:]] == pytest.approx(
        [r["predicted_duration_s"] for r in without[1:]])
