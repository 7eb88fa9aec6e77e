"""Any metric, either direction (``metric``, ``mode`` in the experiment file): every policy ranks
by it, on the simulated backend with a minimized metric; the experiment file checks both
fields; results.json, state.json, the live status, the end summary and TensorBoard name the
metric and carry its own values; a resumed minimized run reaches the uninterrupted answer; a
script that never reports the metric fails its trial with a message naming what it does report.

The tables: :func:`_accuracy_table` holds nine configurations whose curves never cross, so the
best configuration is the same at every epoch (``c4``), and :func:`minimized_table` turns it
into ``val_loss = 1 - accuracy`` with ``mode = "min"``: there ``c4`` has the LOWEST loss. A
tuner that ignored the mode would keep the highest loss (``c5``) instead.
"""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

import pytest

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import load_experiment, parse_experiment
from seer_torch.curves import LearningCurveTable, TableError, generate_table, minimized_table
from seer_torch.errors import ConfigError
from seer_torch.executor import Tuner
from seer_torch.executor.journal import view_from_dict
from seer_torch.executor.resume import trial_from_journal
from seer_torch.objective import BUILTIN_WORKER_METRICS, Objective
from seer_torch.policies.registry import POLICY_NAMES, make_policy
from seer_torch.scaling.profile import parse_profile
from seer_torch.simulate import SimulationCase, simulate_run, summarize

#: Asymptotes of the nine configurations' accuracy; c4 is the best, c5 the worst.
LEVELS = (0.80, 0.86, 0.74, 0.90, 0.97, 0.70, 0.83, 0.77, 0.93)
BEST, WORST = "c4", "c5"
MAX_EPOCHS = 9
EPOCHS = range(1, MAX_EPOCHS + 1)
REPO = Path(__file__).resolve().parents[2]
PROFILE = parse_profile(
    {"world_sizes": [1, 2, 4], "speedup": [1.0, 1.8, 3.2], "epoch_time_s": 10.0, "startup_s": 5.0}
)


def _accuracy(level: float, epoch: int) -> float:
    """Rises from 0.1 towards ``level``; a higher ``level`` is higher at every epoch (by at
    least 0.4 of the gap between levels, 0.012 here: above the answer's 0.005 tolerance)."""
    return level - (level - 0.1) * 0.6**epoch


def _accuracy_table() -> LearningCurveTable:
    return LearningCurveTable.parse({
        "name": "nine-levels",
        "max_epochs": MAX_EPOCHS,
        "epoch_time_s": 10.0,
        "configs": [
            {"id": f"c{k}", "config": {"level": a}, "val": [_accuracy(a, e) for e in EPOCHS]}
            for k, a in enumerate(LEVELS)
        ],
    })


def _case(table: LearningCurveTable) -> SimulationCase:
    """A generous budget (every policy explores all nine and trains its best to the end)."""
    return SimulationCase(table, PROFILE, time_budget_s=1e5, money_budget_usd=1e3, num_slots=4,
                          world_size_ladder=(1, 2, 4), eta=3, min_epochs=1)


def _decisions(run_dir: Path) -> list:
    """What the policy decided at each call (the snapshots hold scores, which differ in sign)."""
    return [json.loads(line)["decisions"] for line in (run_dir / "decisions.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------ every policy, minimized
def test_the_minimized_table_reverses_the_order():
    acc = _accuracy_table()
    loss = minimized_table(acc)
    assert (loss.metric, loss.mode) == ("val_loss", "min")
    assert loss.val_at(4, 9) == pytest.approx(1.0 - acc.val_at(4, 9))
    assert acc.configs[acc.best_index()].id == BEST and loss.configs[loss.best_index()].id == BEST
    assert loss.worst_value() == pytest.approx(max(1.0 - acc.val_at(i, 1) for i in range(len(acc))))
    with pytest.raises(TableError, match="maximized"):
        minimized_table(loss)


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_policy_returns_the_lowest_loss_when_the_metric_is_minimized(tmp_path, policy):
    loss = minimized_table(_accuracy_table())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    s = simulate_run(_case(loss), policy, 0, run_dir=run_dir)
    # c4 has the lowest loss at every epoch; ignoring the mode would return c5, the highest.
    assert s.answer_id == BEST, (policy, s)
    assert s.answer_epochs == MAX_EPOCHS
    assert s.final_value == pytest.approx(1.0 - _accuracy(LEVELS[4], MAX_EPOCHS))
    assert s.oracle_value == s.final_value and s.regret == 0.0
    res = json.loads((run_dir / "results.json").read_text())
    assert (res["metric"], res["mode"]) == ("val_loss", "min")
    best = res["best"]
    at_top = {t["trial_id"]: t["val_loss"] for t in res["trials"] if t["epochs"] == best["epochs"]}
    assert best["val_loss"] == min(at_top.values())
    if policy != "oracle":  # the oracle trains only the one it knows
        assert len(at_top) >= 1 and len(res["trials"]) == 9


@pytest.mark.parametrize("policy", POLICY_NAMES)
def test_every_policy_decides_the_same_on_a_loss_as_on_its_accuracy(tmp_path, policy):
    """A noisy parametric table (curves cross, some diverge, some collapse) and its minimized
    twin: the decisions are the same, call by call, and the answers are the same
    configuration; the minimized run's values are ``1 - accuracy``."""
    acc = generate_table(27, 9, 3, epoch_time_s=10.0, epoch_time_spread=0.2)
    loss = minimized_table(acc)
    runs = {}
    for name, table in (("acc", acc), ("loss", loss)):
        run_dir = tmp_path / name
        run_dir.mkdir()
        case = replace(_case(table), time_budget_s=600.0, money_budget_usd=2.0)
        runs[name] = (simulate_run(case, policy, 1, run_dir=run_dir), _decisions(run_dir))
    (s_acc, d_acc), (s_loss, d_loss) = runs["acc"], runs["loss"]
    assert d_loss == d_acc
    assert (s_loss.answer_id, s_loss.answer_epochs) == (s_acc.answer_id, s_acc.answer_epochs)
    if s_acc.final_value is not None:
        assert s_loss.final_value == pytest.approx(1.0 - s_acc.final_value)
        assert s_loss.regret == pytest.approx(s_acc.regret)  # final - best, >= 0, as accuracy's best - final


def test_regret_and_no_answer_follow_the_mode():
    loss = minimized_table(_accuracy_table())
    s = simulate_run(replace(_case(loss), time_budget_s=1.0, money_budget_usd=1e-6), "sha", 0)
    assert s.final_value is None and s.mode == "min"
    assert s.no_answer_value == loss.worst_value() > 0.5
    summary = summarize([s])
    assert summary["no_answer"] == 1 and summary["final_value"]["mean"] == loss.worst_value()
    assert summary["regret"]["mean"] == pytest.approx(loss.worst_value() - loss.test_at(4, MAX_EPOCHS))
    assert Objective("val_loss", "min").regret(0.3, 0.1) == pytest.approx(0.2)
    assert Objective().regret(0.7, 0.9) == pytest.approx(0.2)


# ------------------------------------------------------------------ the experiment file
def _raw(**top) -> dict:
    return {"name": "m", **top, "search_space": {"lr": 0.1}}


def test_the_default_is_validation_accuracy_maximized():
    exp = parse_experiment(_raw())
    assert (exp.metric, exp.mode) == ("val_accuracy", "max")
    assert exp.objective == Objective("val_accuracy", "max")


@pytest.mark.parametrize(
    "top, field, allowed",
    [
        ({"mode": "minimize"}, "mode", '"max" (larger is better) or "min"'),
        ({"mode": "MIN"}, "mode", '"max"'),
        ({"mode": 1}, "mode", '"min" (smaller is better)'),
        ({"metric": ""}, "metric", "non-empty string"),
        ({"metric": "val loss"}, "metric", "without spaces"),
        ({"metric": 3}, "metric", "non-empty string"),
        ({"metric": "epochs"}, "metric", "other than the record keys"),
        # The built-in worker reports only some metrics: the message lists them.
        ({"metric": "val_f1"}, "metric", ", ".join(BUILTIN_WORKER_METRICS)),
    ],
)
def test_the_experiment_file_refuses_a_bad_metric_or_mode(top, field, allowed):
    with pytest.raises(ConfigError) as info:
        parse_experiment(_raw(**top))
    assert info.value.field == field and info.value.value == top[field]
    assert allowed in str(info.value)


def test_a_script_may_report_any_metric_and_the_file_round_trips(tmp_path):
    (tmp_path / "train.py").write_text("")
    raw = _raw(metric="val_loss", mode="min")
    raw["trial"] = {"script": "train.py"}
    exp = parse_experiment(raw, source=str(tmp_path / "exp.toml"))
    assert (exp.metric, exp.mode) == ("val_loss", "min")
    (tmp_path / "again.toml").write_text(exp.to_toml())
    again = load_experiment(tmp_path / "again.toml")
    assert (again.metric, again.mode) == ("val_loss", "min")
    for metric in BUILTIN_WORKER_METRICS:
        assert parse_experiment(_raw(metric=metric, mode="min")).objective == Objective(metric, "min")


def test_the_example_ranked_by_validation_loss_parses():
    exp = load_experiment(REPO / "examples" / "tabular_mlp" / "experiment_min_loss.toml")
    assert (exp.metric, exp.mode) == ("val_loss", "min") and exp.trial.script.endswith("train.py")


# ------------------------------------------------------------------ what a run writes and shows
def _script_experiment(tmp_path: Path, metric: str = "val_loss", mode: str = "min", seed: int = 0):
    """A script experiment (any metric) run on the simulated backend: the backend ignores the
    script, which only has to exist."""
    (tmp_path / "train.py").write_text("")
    return parse_experiment(
        {
            "name": "loss",
            "seed": seed,
            "metric": metric,
            "mode": mode,
            "trial": {"script": "train.py"},
            "training": {"max_epochs": 9, "min_epochs": 1, "eta": 3, "global_batch": 64,
                         "micro_batch_max": 64},
            "budget": {"time_budget_s": 1e6, "money_budget_usd": 1e6, "price_usd_per_slot_hour": 3.6},
            "resources": {"num_slots": 2, "world_size_ladder": [1, 2]},
            "search": {"max_configurations": 9},
            "planner": {"profile": str(_profile_file(tmp_path))},
            "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}},
        },
        source=str(tmp_path / "exp.toml"),
    )


def _profile_file(tmp_path: Path) -> Path:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"world_sizes": [1, 2], "speedup": [1.0, 1.8], "epoch_time_s": 10.0,
                                "startup_s": 5.0}))
    return path


def _loss_curve(config, epoch):
    """A loss that falls towards ``1 - q``: the largest ``q`` has the lowest loss at every epoch."""
    return (1.0 - config["q"]) + 0.5 / epoch


def _backend(clock: SimulatedClock, metric: str = "val_loss") -> SimulatedBackend:
    return SimulatedBackend(2, clock, epoch_time_s=10.0, speedup={1: 1.0, 2: 1.8}.__getitem__,
                            startup_s=5.0, curve=_loss_curve, metric=metric)


def test_results_state_and_status_carry_the_metric_and_its_own_values(tmp_path):
    exp = _script_experiment(tmp_path)
    clock = SimulatedClock()
    events: list[dict] = []
    tuner = Tuner(exp, tmp_path / "run", _backend(clock), policy=make_policy("seer"), clock=clock,
                  on_event=lambda msg, st: events.append(st))
    res = tuner.run()
    run_dir = tmp_path / "run"
    assert (res["metric"], res["mode"]) == ("val_loss", "min")
    best, trials = res["best"], {t["trial_id"]: t for t in res["trials"]}
    q = {tid: t["config"]["q"] for tid, t in trials.items()}
    assert best["trial_id"] == max(q, key=q.get)  # the lowest loss: the largest q
    assert best["val_loss"] == pytest.approx(_loss_curve(best["config"], best["epochs"]))
    assert best["val_loss"] > 0 and "val_accuracy" not in best
    for t in trials.values():
        assert t["metric_by_epoch"] == {str(e): pytest.approx(_loss_curve(t["config"], e))
                                        for e in range(1, t["epochs"] + 1)}
        assert t["val_loss"] == pytest.approx(_loss_curve(t["config"], t["epochs"]))
    # Survivors of each rung have lower losses there than the trials eliminated at it.
    for rung in (1, 3):
        out = [t["metric_by_epoch"][str(rung)] for t in trials.values() if t["epochs"] == rung]
        on = [t["metric_by_epoch"][str(rung)] for t in trials.values() if t["epochs"] > rung]
        assert out and on and max(on) < min(out), rung
    state = json.loads((run_dir / "state.json").read_text())
    assert (state["metric"], state["mode"]) == ("val_loss", "min")
    journaled = {t["trial_id"]: t for t in state["trials"]}
    assert journaled[best["trial_id"]]["metric_by_epoch"] == trials[best["trial_id"]]["metric_by_epoch"]
    # The policy saw scores: the losses negated.
    views = [v for line in (run_dir / "decisions.jsonl").read_text().splitlines()
             for v in json.loads(line)["snapshot"]["changed"] if v["score"]]
    assert views and all(s < 0 for v in views for s in v["score"].values())
    assert "val_accuracy" not in (run_dir / "decisions.jsonl").read_text()
    config = json.loads((run_dir / "trials" / best["trial_id"] / "config.json").read_text())
    assert config["metric"] == "val_loss"
    # The live status: the metric, and the best so far by it.
    last = events[-1]
    assert (last["metric"], last["mode"]) == ("val_loss", "min")
    assert last["best"]["trial_id"] == best["trial_id"] and last["best"]["value"] == best["val_loss"]
    assert all(st["best"] is None or st["best"]["value"] > 0 for st in events)


def test_the_status_lines_and_the_summary_print_the_metric(tmp_path):
    from seer_torch.commands.status import LiveStatus, print_summary

    exp = _script_experiment(tmp_path)
    clock = SimulatedClock()
    out = io.StringIO()
    with redirect_stdout(out):
        with LiveStatus() as status:
            tuner = Tuner(exp, tmp_path / "run", _backend(clock), policy=make_policy("sha"), clock=clock,
                          on_event=status.event)
            res = tuner.run()
        print_summary(res, tmp_path / "run")
    text = out.getvalue()
    best = res["best"]
    assert f"best val_loss {best['val_loss']:.4f} (min, {best['trial_id']} @ epoch {best['epochs']})" in text
    assert f"  val_loss {best['val_loss']:.4f} (minimized), " in text
    assert "val_accuracy" not in text


def test_tensorboard_plots_the_best_of_the_metric(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exp = _script_experiment(tmp_path)
    clock = SimulatedClock()
    res = Tuner(exp, tmp_path / "run", _backend(clock), policy=make_policy("sha"), clock=clock).run()
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "experiment"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "experiment/best_val_loss" in tags and "experiment/best_val_accuracy" not in tags
    points = {e.step: e.value for e in acc.Scalars("experiment/best_val_loss")}
    for r in res["rounds"]:
        if not r["completed"] or r["index"] not in points:
            continue
        rung = str(r["rung_epoch"])
        # the smallest loss at the rung among the trials still in the running after the round
        alive = [t["metric_by_epoch"][rung] for t in res["trials"]
                 if rung in t["metric_by_epoch"] and t["status"] != "eliminated"]
        assert points[r["index"]] == pytest.approx(min(alive), rel=1e-6)
    assert points and all(v > 0 for v in points.values())


def test_a_killed_minimized_run_resumes_to_the_same_answer(tmp_path, crash_tuner):
    (tmp_path / "clean").mkdir()
    (tmp_path / "killed").mkdir()
    exp = _script_experiment(tmp_path / "clean", seed=5)
    clock = SimulatedClock()
    clean = Tuner(exp, tmp_path / "clean" / "run", _backend(clock), policy=make_policy("seer"),
                  clock=clock).run()

    exp = _script_experiment(tmp_path / "killed", seed=5)
    clock = SimulatedClock()
    backend = _backend(clock)
    run_dir = tmp_path / "killed" / "run"
    crash_tuner("job_end:7",
                lambda: Tuner(exp, run_dir, backend, policy=make_policy("seer"), clock=clock).run())
    res = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock).run(resume=True)
    assert (res["metric"], res["mode"]) == ("val_loss", "min")
    assert [res["best"][k] for k in ("trial_id", "epochs", "val_loss")] == [
        clean["best"][k] for k in ("trial_id", "epochs", "val_loss")]


def test_a_journal_from_before_the_metric_was_a_choice_still_reads():
    view = view_from_dict({"trial_id": "t000", "index": 0, "status": "paused", "epochs": 3,
                           "world_size": None, "until_epoch": None, "val_accuracy": {"1": 0.5, "3": 0.75},
                           "world_sizes": [1], "epoch_time_s": None})
    assert view.score == {1: 0.5, 3: 0.75}
    trial = trial_from_journal({"trial_id": "t000", "index": 0, "config": {}, "status": "paused", "epochs": 3,
                                "val_accuracy_by_epoch": {"1": 0.5, "3": 0.75}})
    assert trial.metric_by_epoch == {1: 0.5, 3: 0.75}


# ------------------------------------------------------------------ a metric never reported
def test_a_trial_whose_lines_lack_the_metric_fails_naming_what_it_reports(tmp_path):
    exp = _script_experiment(tmp_path)  # expects val_loss
    clock = SimulatedClock()
    backend = _backend(clock, metric="val_error")  # the "script" reports val_error instead
    res = Tuner(exp, tmp_path / "run", backend, policy=make_policy("sha"), clock=clock).run()
    assert res["best"] is None
    assert res["trials"] and all(t["status"] == "failed" for t in res["trials"])
    error = res["trials"][0]["error"]
    assert "metric 'val_loss' not reported" in error and "reports test_error, val_error" in error, error
    assert all(not math.isfinite(t["val_loss"] or math.nan) for t in res["trials"])
    assert len(backend.launches) == len(res["trials"])  # never retried: a relaunch reports the same names
