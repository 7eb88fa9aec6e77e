"""Simulation: any policy on the simulated backend, driven by a learning-curve table.

One simulated run (:func:`simulate_run`) is a real :class:`~seer_torch.executor.Tuner` (the
same executor and the same policy objects that drive torchrun jobs) on a
:class:`~seer_torch.backends.simulated.SimulatedBackend` whose jobs take the time the scaling
profile says and report the values a learning-curve table holds (:mod:`seer_torch.curves`),
under the table's metric; the experiment optimizes that metric in the table's mode. Nothing is
written to disk.

Seeds: seed ``s`` presents the table's configurations in the order of a permutation drawn
from ``random.Random(s)``, so configuration index ``i`` of the policy is table row
``order[i]`` (a tuner drawing ``n`` configurations sees a different sample for each seed).

What a run scores (:class:`RunSummary`): the configuration the policy returns is read from the
table at the epochs that trial actually reached (its ``test`` curve, or ``val`` where the table
has none); a policy with no answer scores ``None``. Regret is how much worse that is than the
oracle's (the table's best configuration, fully trained): ``oracle - final`` for a maximized
metric, ``final - oracle`` for a minimized one. Budget violations: time used above the
deadline, or money above the budget by more than :func:`money_slack_usd` (float round-off
only: billing rounding is metered, so it is part of the spend, never slack).

Kept-alive jobs: the simulated backend keeps jobs alive like the local one
(:data:`KEEP_ALIVE`, ``SimulationCase.keep_alive``): a job parks at its rung, a continuation at
the same ``W`` costs ``continue_s`` and a ``W = 1`` job of another trial on a parked worker
``warm_start_s`` (the profile's when it measured them, else the executor's estimates,
:data:`seer_torch.executor.context.CONTINUE_S` and :data:`~seer_torch.executor.context.WARM_START_S`;
:func:`simulated_backend`).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import Experiment, ResourceSpec, parse_experiment
from seer_torch.curves import LearningCurveTable
from seer_torch.errors import ConfigError
from seer_torch.executor import Tuner
from seer_torch.executor.context import CONTINUE_S, WARM_START_S, kept_alive_overhead_s
from seer_torch.objective import Objective
from seer_torch.policies import registry
from seer_torch.policies.base import Policy
from seer_torch.policies.registry import POLICY_NAMES
from seer_torch.scaling.profile import Profile

__all__ = [
    "KEEP_ALIVE",
    "POLICY_NAMES",
    "RunSummary",
    "SimulationCase",
    "make_policy",
    "simulate_run",
    "simulated_backend",
    "summarize",
]

#: Whether simulated runs keep jobs alive by default: as ``seer tune``'s local backend does by
#: default (the experiment file's ``[resources] keep_alive``), so that ``seer simulate``
#: predicts what ``seer tune`` does.
KEEP_ALIVE: bool = ResourceSpec.keep_alive


def simulated_backend(
    num_slots: int, clock: SimulatedClock, profile: Profile, *, keep_alive: bool, **kwargs: Any
) -> SimulatedBackend:
    """A :class:`SimulatedBackend` whose jobs take the profile's times: its ``epoch_time_s``
    and speedup (a configuration of another epoch gaining as :meth:`~seer_torch.scaling.model.
    ScalingModel.sync_s` says), ``startup_s`` for a trial's first job, its ``resize_s`` for every later job
    that starts processes; with ``keep_alive``, ``continue_s`` and ``warm_start_s`` the
    profile's when it measured them, else :data:`~seer_torch.executor.context.CONTINUE_S` and
    :data:`~seer_torch.executor.context.WARM_START_S` (the estimates the policies plan with,
    :func:`seer_torch.executor.context.policy_context`). ``kwargs``: the backend's other
    arguments (``curve`` or ``val_at``, ``metric``...)."""
    kwargs.setdefault("epoch_time_s", profile.epoch_time_s)
    scaling = profile.scaling
    return SimulatedBackend(
        num_slots,
        clock,
        speedup=scaling.speedup_at,
        sync_s=scaling.sync_s,
        startup_s=profile.startup_s,
        relaunch_s=profile.resize_s,
        resize_s=profile.resize_s,
        keep_alive=keep_alive,
        continue_s=kept_alive_overhead_s(profile, "continue_s", CONTINUE_S),
        warm_start_s=kept_alive_overhead_s(profile, "warm_start_s", WARM_START_S),
        **kwargs,
    )


def make_policy(name: str) -> Policy:
    """A fresh policy object by name (one of :data:`POLICY_NAMES`, the registry's), from
    :func:`seer_torch.policies.registry.make_policy`.

    Raises:
        ConfigError: an unknown name (the field named is ``policies``, the simulator's list).
    """
    if name not in POLICY_NAMES:
        raise ConfigError("policies", name, f"one of {', '.join(POLICY_NAMES)}")
    return registry.make_policy(name)


@dataclass(frozen=True)
class SimulationCase:
    """One simulated tuning problem. Seconds, USD.

    Attributes:
        table: the learning curves (the configurations, their epochs and epoch time).
        profile: the scaling profile (``speedup``, ``startup_s``, ``resize_s``); its
            ``epoch_time_s`` is replaced by the table's (the median over its configurations,
            each of which trains at its own).
        time_budget_s: the deadline.
        money_budget_usd: the money budget.
        num_slots: slots of the simulated cluster.
        price_usd_per_slot_hour: price of one slot-hour.
        eta: elimination rate (``None``: the policy chooses where it can).
        min_epochs: the smallest first rung.
        world_size_ladder: world sizes a trial may get.
        billing_granularity_s / billing_minimum_s: billing rounding (0 = exact).
        safety_fraction: fraction of each budget plans may predict.
        max_configurations: cap on configurations (default: the table's size).
        keep_alive: jobs park at their rung and continue there, warm workers take new
            trials at ``W = 1`` (default :data:`KEEP_ALIVE`: as the local backend).
        machine_start_s: plan as on a Ray cluster whose machines take this long to start
            (``[resources] machine_start_s``: SEER's rounds that need more slots than the round
            before wait for them, :func:`seer_torch.policies.costs.machine_wait_s`); ``None``
            (default): no machines to wait for. The simulated cluster itself starts none: its
            jobs never wait, so only the plans change.

    The experiment optimizes the table's ``metric`` in its ``mode``.
    """

    table: LearningCurveTable
    profile: Profile
    time_budget_s: float
    money_budget_usd: float
    num_slots: int = 8
    price_usd_per_slot_hour: float = 3.06
    eta: int | None = 3
    min_epochs: int | None = 1
    world_size_ladder: tuple[int, ...] = (1, 2, 4, 8)
    billing_granularity_s: float = 0.0
    billing_minimum_s: float = 0.0
    safety_fraction: float = 0.9
    max_configurations: int | None = None
    keep_alive: bool = KEEP_ALIVE
    machine_start_s: float | None = None

    def experiment(self, seed: int) -> Experiment:
        """The experiment a simulated run uses (validated like a user's file)."""
        ladder = sorted({w for w in self.world_size_ladder if w <= self.num_slots} | {1})
        global_batch = math.lcm(*ladder) * 8  # every ladder size divides it
        budget: dict[str, Any] = {
            "time_budget_s": self.time_budget_s,
            "money_budget_usd": self.money_budget_usd,
            "price_usd_per_slot_hour": self.price_usd_per_slot_hour,
        }
        if self.billing_granularity_s or self.billing_minimum_s:
            budget["billing_granularity_s"] = self.billing_granularity_s
            budget["billing_minimum_s"] = self.billing_minimum_s
        training: dict[str, Any] = {
            "max_epochs": self.table.max_epochs,
            "global_batch": global_batch,
            "micro_batch_max": global_batch,
        }
        if self.eta is not None:
            training["eta"] = self.eta
        if self.min_epochs is not None:
            training["min_epochs"] = self.min_epochs
        resources: dict[str, Any] = {"num_slots": self.num_slots, "world_size_ladder": ladder,
                                     "keep_alive": self.keep_alive}
        if self.machine_start_s is not None:  # planned as on a Ray cluster that starts machines
            resources.update(backend="ray", machine_start_s=self.machine_start_s)
        exp = parse_experiment(
            {
                "name": f"sim-{self.table.name}",
                "seed": seed,
                "training": training,
                "budget": budget,
                "resources": resources,
                "search": {"max_configurations": self.max_configurations or len(self.table)},
                "planner": {"safety_fraction": self.safety_fraction},
                "search_space": {"row": {"distribution": "uniform", "low": 0.0, "high": 1.0}},
            }
        )
        # The table's metric and mode (checked by the table). Set after parsing: the file check
        # that the built-in worker reports the metric does not apply, the table reports it.
        return replace(exp, metric=self.table.metric, mode=self.table.mode)


@dataclass(frozen=True)
class RunSummary:
    """What one simulated run achieved. Seconds, USD; values in the table's metric."""

    policy: str
    seed: int
    final_value: float | None  # the returned configuration's test value, at the epochs it reached
    answer_id: str | None  # the table row's id
    answer_epochs: int
    time_used_s: float
    cost_usd: float
    time_violation: bool
    money_violation: bool
    num_configurations: int
    stop_reason: str | None
    oracle_value: float  # the best configuration of the table, fully trained
    all_diverged: bool = False  # every trial that ran diverged or failed (no valid result exists)
    mode: str = "max"  # the table's: "max" (larger is better) or "min"
    no_answer_value: float = 0.0  # what a run without an answer scores (LearningCurveTable.worst_value)

    @property
    def regret(self) -> float | None:
        """How much worse the answer is than the oracle (``>= 0`` up to noise), ``None``
        without an answer."""
        if self.final_value is None:
            return None
        return Objective(mode=self.mode).regret(self.final_value, self.oracle_value)


def money_slack_usd(money_budget_usd: float) -> float:
    """Float round-off allowed on the money check: 1e-9 of the budget (at least 1e-12 USD)."""
    return max(1e-12, 1e-9 * money_budget_usd)


def simulate_run(case: SimulationCase, policy: str, seed: int, *, run_dir: Path | None = None) -> RunSummary:
    """Run ``policy`` once on ``case`` with ``seed`` (see the module docstring). Pure apart
    from the simulation itself: no clock, no processes, and no files unless ``run_dir`` is
    given (then the run's journal, ``decisions.jsonl`` and ``results.json`` are written there,
    as a real run writes them)."""
    table = case.table
    n = len(table)
    order = list(range(n))
    random.Random(seed).shuffle(order)
    best_row = table.best_index()
    oracle_value = table.test_at(best_row, table.max_epochs)
    exp = case.experiment(seed)
    clock = SimulatedClock()
    prof = replace(case.profile, epoch_time_s=table.epoch_time_s)
    backend = simulated_backend(
        case.num_slots,
        clock,
        prof,
        keep_alive=case.keep_alive,
        val_at=lambda i, e: table.val_at(order[i], e),
        test_at=lambda i, e: table.test_at(order[i], e),
        epoch_time_at=lambda i: table.epoch_time_at(order[i]),
        metric=table.metric,
    )
    tuner = Tuner(
        exp,
        run_dir,
        backend,
        clock=clock,
        policy=make_policy(policy),
        profile=prof,
        oracle_index=order.index(best_row),
        configurations=[dict(table.configs[order[i]].config) for i in range(exp.search.max_configurations)],
        draw_times_s=[table.epoch_time_at(order[i]) for i in range(min(n, exp.search.max_configurations))],
    )
    res = tuner.run()
    answer = tuner.answer()
    final, answer_id, answer_epochs = None, None, 0
    if answer is not None:
        trial, _ = answer
        row = order[trial.index]
        answer_id, answer_epochs = table.configs[row].id, trial.epochs
        final = table.test_at(row, trial.epochs) if trial.epochs >= 1 else None
        if final is not None and not math.isfinite(final):
            final = None
    b = res["budget"]
    return RunSummary(
        policy=policy,
        seed=seed,
        final_value=final,
        answer_id=answer_id,
        answer_epochs=answer_epochs,
        time_used_s=b["time_used_s"],
        cost_usd=b["cost_usd"],
        time_violation=b["time_used_s"] > case.time_budget_s + 1e-9 * max(1.0, case.time_budget_s),
        money_violation=b["cost_usd"] > case.money_budget_usd + money_slack_usd(case.money_budget_usd),
        num_configurations=len(res["trials"]),
        stop_reason=res["stop_reason"],
        oracle_value=oracle_value,
        all_diverged=bool(res["trials"])
        and all(t["status"] in ("diverged", "failed") for t in res["trials"]),
        mode=table.mode,
        no_answer_value=table.worst_value(),
    )


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {
        "mean": statistics.fmean(values),
        "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def summarize(runs: Sequence[RunSummary]) -> dict[str, Any]:
    """Mean and spread over seeds for one policy's runs. A run without an answer scores its
    ``no_answer_value`` in the mean (0 for an accuracy table; the worst value of a minimized
    one) and is counted in ``no_answer``. ``final_value`` is in the table's metric; ``regret``
    is ``>= 0`` whatever its mode."""
    vals = [r.final_value if r.final_value is not None else r.no_answer_value for r in runs]
    return {
        "policy": runs[0].policy if runs else None,
        "runs": len(runs),
        "final_value": _stats(vals),
        "regret": _stats([Objective(mode=r.mode).regret(v, r.oracle_value) for r, v in zip(runs, vals)]),
        "time_used_s": _stats([r.time_used_s for r in runs]),
        "cost_usd": _stats([r.cost_usd for r in runs]),
        "budget_violations": sum(r.time_violation or r.money_violation for r in runs),
        "no_answer": sum(r.final_value is None for r in runs),
        "num_configurations": _stats([float(r.num_configurations) for r in runs]),
        "answer_epochs": _stats([float(r.answer_epochs) for r in runs]),
    }


def simulate(case: SimulationCase, policies: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    """Every policy over every seed; returns ``{"policies": {name: summarize(...)}, "runs": [...]}``."""
    out: dict[str, Any] = {"policies": {}, "runs": []}
    for name in policies:
        runs = [simulate_run(case, name, s) for s in seeds]
        out["policies"][name] = summarize(runs)
        out["runs"] += [asdict(r) for r in runs]
    return out


def load_profile_for_simulation(
    spec: str, *, startup_s: float | None = None, resize_s: float | None = None
) -> Profile:
    """A scaling profile from ``FILE`` (the docs/design.md profile format) or ``FILE:NAME`` (a file
    holding ``{"profiles": [...]}`` such as ``shared/data/scaling_profiles.json``; ``NAME`` picks
    one). Measured public profiles carry no overheads: ``startup_s``/``resize_s`` fill them
    (seconds), and override the file's when given. ``epoch_time_s`` comes from the table.

    Raises:
        ConfigError: the file is missing or malformed, the name unknown, or no start-up given.
    """
    import json
    from pathlib import Path

    from seer_torch.scaling.profile import parse_profile

    path, _, name = spec.partition(":") if not Path(spec).exists() else (spec, "", "")
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError("--profile", spec, "an existing profile JSON file, or FILE:NAME") from None
    except json.JSONDecodeError as e:
        raise ConfigError("--profile", spec, f"valid JSON ({e})") from None
    if isinstance(raw, dict) and isinstance(raw.get("profiles"), list):
        names = [str(p.get("name")) for p in raw["profiles"] if isinstance(p, dict)]
        if not name:
            raise ConfigError("--profile", spec, f"FILE:NAME with NAME one of {', '.join(names)}")
        found = [p for p in raw["profiles"] if isinstance(p, dict) and p.get("name") == name]
        if not found:
            raise ConfigError("--profile", spec, f"a profile name in {path}: {', '.join(names)}")
        raw = dict(found[0])
    if not isinstance(raw, dict):
        raise ConfigError("--profile", spec, "a JSON object in the scaling-profile format")
    raw = dict(raw)
    raw.setdefault("epoch_time_s", 1.0)  # replaced by the table's
    if startup_s is not None:
        raw["startup_s"] = startup_s
    if resize_s is not None:
        raw["resize_s"] = resize_s
    if "startup_s" not in raw:
        raise ConfigError("--startup-s", "not given",
                          f"seconds of start-up per job: profile {spec} has none, so give it "
                          "(measured public profiles carry no overheads)")
    return parse_profile(raw, where=f"profile {spec}")


def shipped_table_path() -> str | None:
    """The learning-curve table shipped with the package (recorded on the digits default)."""
    from importlib import resources

    folder = resources.files("seer_torch") / "tables"
    if not folder.is_dir():
        return None
    files = sorted(str(p) for p in folder.iterdir() if str(p).endswith(".json"))
    return files[0] if files else None


def format_report(result: dict[str, Any], case: SimulationCase) -> list[tuple[str, ...]]:
    """Rows for the printed table: policy, the final value of the metric mean +- std, regret,
    time, money, violations, configurations, no-answer runs."""
    rows = []
    for name, s in result["policies"].items():
        a, t, c = s["final_value"], s["time_used_s"], s["cost_usd"]
        rows.append(
            (
                name,
                f"{a['mean']:.4f} ± {a['std']:.4f}",
                f"{s['regret']['mean']:.4f}",
                f"{t['mean']:.0f} (max {t['max']:.0f})",
                f"{c['mean']:.2f} (max {c['max']:.2f})",
                str(s["budget_violations"]),
                f"{s['num_configurations']['mean']:.1f}",
                str(s["no_answer"]),
            )
        )
    return rows
