"""The Python entry point (:mod:`seer_torch.api`, issue 15): an experiment built in Python or
read from TOML, tuned on the simulated backend (nothing trains: jobs take the profile's time
and report a known curve), its :class:`Results` read back from ``results.json``; errors raised
as ConfigError before anything is written; ``import seer_torch`` stays cheap."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

import seer_torch
from seer_torch.api import Results
from seer_torch.errors import ConfigError

PROFILE = {"world_sizes": [1, 2], "speedup": [1.0, 1.8], "epoch_time_s": 2.0, "startup_s": 1.0,
           "resize_s": 1.0}


def _spec(tmp_path: Path, **budget: float) -> dict:
    (tmp_path / "profile.json").write_text(json.dumps(PROFILE))
    return {
        "name": "api", "seed": 3,
        "training": {"max_epochs": 9, "min_epochs": 1, "eta": 3, "global_batch": 64},
        "budget": {"time_budget_s": 400, "money_budget_usd": 1.0, **budget},
        "resources": {"num_slots": 2, "world_size_ladder": [1, 2]},
        "search": {"max_configurations": 9},
        "planner": {"profile": str(tmp_path / "profile.json")},
        "search_space": {"lr": {"distribution": "loguniform", "low": 0.01, "high": 0.5},
                         "width": {"choices": [16, 32]}},
    }


def curve(configuration: dict, epoch: int) -> float:
    """A saturating curve whose best configuration is the largest lr (width does not matter)."""
    return 1.0 - math.exp(-epoch * configuration["lr"])


def test_tune_on_the_simulated_backend_returns_what_results_json_holds(tmp_path):
    run_dir = tmp_path / "run"
    results = seer_torch.tune(seer_torch.experiment(_spec(tmp_path)), run_dir, backend="simulated",
                              curve=curve, progress=False)
    raw = json.loads((run_dir / "results.json").read_text())
    assert results == Results.load(run_dir)
    assert results.run_dir == run_dir and results.experiment == "api" and results.policy == "seer"
    assert (results.metric, results.mode) == ("val_accuracy", "max")
    # The answer and its values, as results.json has them.
    best = raw["best"]
    assert results.best_trial_id == best["trial_id"] and dict(results.best_config) == best["config"]
    assert results.best_epochs == best["epochs"] == 9
    assert results.best_value == best["val_accuracy"] == curve(best["config"], 9)
    assert results.best_metrics["test_accuracy"] == best["test_accuracy"]
    # Time and money, every trial's status and curve.
    assert results.time_used_s == raw["budget"]["time_used_s"] <= 400
    assert results.cost_usd == raw["budget"]["cost_usd"] <= 1.0
    assert results.stop_reason == raw["stop_reason"]
    assert [t.trial_id for t in results.trials] == [t["trial_id"] for t in raw["trials"]]
    assert len(results.trials) == 9
    for t, row in zip(results.trials, raw["trials"]):
        assert (t.status, t.epochs, list(t.world_sizes)) == (row["status"], row["epochs"], row["world_sizes"])
        assert list(t.curve) == list(range(1, t.epochs + 1))
        assert all(v == curve(row["config"], e) for e, v in t.curve.items())  # the simulated trial's metric
        assert results.trial(t.trial_id) is t
    # The answer is the best of the trials trained to the end, by the curve.
    finals = [t for t in results.trials if t.epochs == 9]
    assert results.best_trial_id == max(finals, key=lambda t: t.curve[9]).trial_id
    files = {p.name for p in run_dir.iterdir()}
    assert {"experiment.toml", "state.json", "decisions.jsonl", "profile.json"} <= files


def test_a_toml_path_overrides_and_another_policy(tmp_path):
    spec = _spec(tmp_path)
    lines = ['name = "api"', "seed = 3"]
    for table in ("training", "budget", "resources", "search", "planner"):
        lines.append(f"[{table}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in spec[table].items()]
    lines += ["[search_space]", 'lr = { distribution = "loguniform", low = 0.01, high = 0.5 }',
              "width = { choices = [16, 32] }"]
    path = tmp_path / "exp.toml"
    path.write_text("\n".join(lines) + "\n")
    events: list[str] = []
    results = seer_torch.tune(path, tmp_path / "sha", backend="simulated", policy="sha", curve=curve,
                              time_budget_s=300, progress=False, on_event=lambda msg, st: events.append(msg))
    assert results.policy == "sha" and results.time_budget_s == 300
    assert events[-1].startswith("finished")
    assert results.best_trial_id is not None


@pytest.mark.parametrize("kwargs, field", [
    ({"backend": "ray"}, "backend"),
    ({"policy": "oracle"}, "policy"),
    ({"policy": "bohb"}, "policy"),
    ({"backend": "simulated"}, "curve"),
    ({"backend": "local", "curve": curve}, "curve"),
    ({"backend": "simulated", "curve": curve, "time_budget_s": -1}, "budget.time_budget_s"),
])
def test_bad_arguments_raise_config_error_and_write_nothing(tmp_path, kwargs, field):
    with pytest.raises(ConfigError) as info:
        seer_torch.tune(_spec(tmp_path), tmp_path / "run", progress=False, **kwargs)
    assert info.value.field == field
    assert not (tmp_path / "run").exists()


def test_the_simulated_backend_needs_a_profile_and_an_experiment_is_checked_like_a_file(tmp_path):
    spec = _spec(tmp_path)
    del spec["planner"]
    with pytest.raises(ConfigError, match=r"^profile: got None; allowed: a scaling-profile JSON file"):
        seer_torch.tune(spec, tmp_path / "run", backend="simulated", curve=curve, progress=False)
    with pytest.raises(ConfigError, match=r"^training.etta: .*did you mean 'eta'"):
        seer_torch.experiment({"training": {"etta": 3}, "search_space": {"lr": 0.1}})
    # The tuner's checks, as seer tune makes them:
    with pytest.raises(ConfigError, match=r"^search_space.widht: .*did you mean 'width'"):
        seer_torch.tune({**spec, "search_space": {"lr": 0.1, "widht": 16}}, tmp_path / "run",
                        backend="simulated", curve=curve, profile=tmp_path / "profile.json", progress=False)
    assert not (tmp_path / "run").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(ConfigError, match=r"^--run-dir: .*a new or empty directory"):
        seer_torch.tune(spec, tmp_path / "used", backend="simulated", curve=curve,
                        profile=tmp_path / "profile.json", progress=False)
    with pytest.raises(ConfigError, match=r"^run_dir: .*a run directory holding results.json"):
        Results.load(tmp_path / "used")


def test_importing_seer_torch_imports_neither_torch_nor_the_api_until_asked():
    code = ("import json, sys\nimport seer_torch\n"
            "before = ['torch' in sys.modules, 'seer_torch.api' in sys.modules]\n"
            "f = seer_torch.tune\n"
            "print(json.dumps([*before, 'seer_torch.api' in sys.modules, 'torch' in sys.modules,\n"
            "                  f.__module__, sorted(set(seer_torch.__all__) - set(dir(seer_torch)))]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=True)
    assert json.loads(out.stdout) == [False, False, True, False, "seer_torch.api", []]
    with pytest.raises(AttributeError, match="no attribute 'tunee'"):
        seer_torch.tunee  # noqa: B018


def test_resume_takes_more_budget_as_seer_resume_does(tmp_path):
    run_dir = tmp_path / "run"
    seer_torch.tune(seer_torch.experiment(_spec(tmp_path)), run_dir, backend="simulated", curve=curve,
                    progress=False)
    used = json.loads((run_dir / "results.json").read_text())["budget"]["time_used_s"]
    with pytest.raises(ConfigError) as refused:
        seer_torch.resume(run_dir, time_budget=f"{used / 2:g}", progress=False)
    assert refused.value.field == "--time-budget" and "more than the run has used" in str(refused.value)
    with pytest.raises(ConfigError) as refused:
        seer_torch.resume(run_dir, money_budget="+abc", progress=False)
    assert refused.value.field == "--money-budget"
