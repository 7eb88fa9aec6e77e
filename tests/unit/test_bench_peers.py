"""The pure parts of ``scripts/bench_peers.py`` (the peers benchmark of issue 16): the rungs,
a peer's chosen configuration, the summary and its training share, the means over seeds, the
table, the ratio lines printed last, the deadline lines and the missing-peer check. None of
this needs Optuna or Ray; the script imports them only in their drivers."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "bench_peers.py"
_SPEC = importlib.util.spec_from_file_location("bench_peers", _PATH)
bench_peers = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_peers"] = bench_peers  # dataclasses look their module up while it loads
_SPEC.loader.exec_module(bench_peers)

Job, TrialRecord, ToolResult = bench_peers.Job, bench_peers.TrialRecord, bench_peers.ToolResult


def _result(tool: str, seed: int, wall_s: float, test: float, **kw) -> ToolResult:
    fields = dict(val_accuracy=0.98, best_epochs=27, configurations=27, trial_epochs=99, train_slot_s=30.0,
                  num_slots=2, load_1m=0.1)
    fields.update(kw)
    return ToolResult(tool=tool, seed=seed, wall_s=wall_s, test_accuracy=test, **fields)


def test_importing_the_script_imports_no_peer_and_no_torch():
    code = ("import importlib.util, sys; s = importlib.util.spec_from_file_location('b', sys.argv[1]); "
            "m = importlib.util.module_from_spec(s); sys.modules['b'] = m; s.loader.exec_module(m); "
            "print(sorted(n for n in ('optuna', 'ray', 'torch') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(_PATH)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert bench_peers.TOOLS == ("seer", "ray_reuse_actors", "ray_no_reuse", "optuna_procs")


@pytest.mark.parametrize(("job", "rungs"), [
    (Job(), (1, 3, 9, 27)),
    (Job(max_epochs=9), (1, 3, 9)),
    (Job(max_epochs=10), (1, 3, 9, 10)),
    (Job(max_epochs=16, eta=2, min_epochs=2), (2, 4, 8, 16)),
])
def test_rungs(job, rungs):
    assert job.rungs == rungs


def test_pick_best_is_the_best_validation_at_the_furthest_epoch():
    records = [
        TrialRecord({"lr": 0.1}, {1: 0.99, 3: 0.995}),  # the best value, but stopped at 3
        TrialRecord({"lr": 0.2}, {e: 0.5 + e / 100 for e in range(1, 10)}, {9: 0.61}),  # 0.59 at 9
        TrialRecord({"lr": 0.3}, {e: 0.6 + e / 100 for e in range(1, 10)}, {9: 0.70}),  # 0.69 at 9: best
        TrialRecord({"lr": 0.4}, {e: math.nan for e in range(1, 10)}),  # diverged: never wins
        TrialRecord({"lr": 0.5}, {e: 0.6 + e / 100 for e in range(1, 10)}, {9: 0.10}),  # a tie: later loses
    ]
    assert bench_peers.pick_best(records) is records[2]
    assert bench_peers.pick_best(records[3:4]) is None
    assert bench_peers.pick_best([TrialRecord({"lr": 0.1})]) is None
    assert bench_peers.pick_best([]) is None


def test_summarize_counts_epochs_configurations_and_the_training_share():
    job = Job(num_configurations=3, max_epochs=9, seed=1)
    records = [
        TrialRecord({"lr": 0.1}, {1: 0.5}, {1: 0.4}, train_slot_s=1.0),
        TrialRecord({"lr": 0.2}, {1: 0.6, 2: 0.7, 3: 0.8}, {1: 0.6, 3: 0.79}, train_slot_s=3.0),
        TrialRecord({"lr": 0.3}, {1: 0.7, 2: 0.75, 3: 0.7}, {3: 0.72}, train_slot_s=5.0),
        TrialRecord({"lr": 0.4}),  # created, never trained (e.g. the other process started the last)
    ]
    result = bench_peers.summarize("optuna_procs", job, 10.0, records, load_1m=0.3)
    assert (result.tool, result.seed, result.num_slots) == ("optuna_procs", 1, 2)
    assert (result.best_epochs, result.val_accuracy, result.test_accuracy) == (3, 0.8, 0.79)
    assert (result.configurations, result.trial_epochs, result.train_slot_s) == (3, 7, 9.0)
    assert result.training_share == pytest.approx(9.0 / (10.0 * 2))
    assert result.answered
    none = bench_peers.summarize("ray_no_reuse", job, 5.0, [], load_1m=0.0)
    assert not none.answered and math.isnan(none.test_accuracy) and none.best_epochs == 0


def test_means_over_seeds_and_the_ratio_lines_printed_last():
    results = [
        _result("seer", 0, 100.0, 0.97), _result("ray_reuse_actors", 0, 25.0, 0.96),
        _result("optuna_procs", 0, 20.0, 0.95),
        _result("seer", 1, 60.0, 0.99, answered=False), _result("ray_reuse_actors", 1, 15.0, 0.98),
        _result("optuna_procs", 1, 20.0, 0.97),
    ]
    means = bench_peers.mean_by_tool(results)
    assert list(means) == ["seer", "ray_reuse_actors", "optuna_procs"]
    assert (means["seer"].wall_s, means["seer"].test_accuracy, means["seer"].seed) == (80.0, 0.98, -1)
    assert not means["seer"].answered and means["optuna_procs"].answered
    # seer's mean wall time over the peer's: 80 / 20 and 80 / 20
    assert bench_peers.ratio_lines(means) == ["ratio seer/ray_reuse_actors: 4.00",
                                              "ratio seer/optuna_procs: 4.00"]
    assert bench_peers.ratios(means) == {"ray_reuse_actors": 4.0, "optuna_procs": 4.0}
    without_optuna = {k: v for k, v in means.items() if k != "optuna_procs"}
    assert bench_peers.ratio_lines(without_optuna) == ["ratio seer/ray_reuse_actors: 4.00",
                                                       "ratio seer/optuna_procs: n/a"]


def test_the_table_has_a_column_per_figure():
    lines = bench_peers.table_lines([
        _result("seer", 0, 116.74, 0.97407, train_slot_s=23.3),
        _result("optuna_procs", -1, 19.4, math.nan),
    ])
    assert lines[0].split() == ["tool", "seed", "wall_s", "test_acc", "val_acc", "epochs", "configs",
                                "trial_epochs", "train_share", "load_1m"]
    assert lines[1].split() == ["seer", "0", "116.7", "0.9741", "0.9800", "27", "27", "99", "0.10", "0.10"]
    assert lines[2].split() == ["optuna_procs", "mean", "19.4", "-", "0.9800", "27", "27", "99", "0.77",
                                "0.10"]
    assert len({len(line) for line in lines}) == 1  # aligned


def test_deadline_lines():
    peer = _result("optuna_procs", 1, 19.4, 0.97)
    answered = _result("seer@optuna_procs", 1, 18.9, 0.975, best_epochs=9, configurations=6,
                       time_budget_s=19.4)
    assert bench_peers.deadline_line(answered, peer) == (
        "deadline from optuna_procs seed 1 (19.4 s; its test accuracy 0.9700): seer answered: yes, test "
        "accuracy 0.9750 (>= peer), 9 epochs, 6 configurations; wall 18.9 s")
    worse = _result("seer@optuna_procs", 1, 18.9, 0.96, time_budget_s=19.4)
    assert "test accuracy 0.9600 (< peer)" in bench_peers.deadline_line(worse, peer)
    silent = _result("seer@optuna_procs", 1, 19.5, math.nan, answered=False, note="deadline")
    assert bench_peers.deadline_line(silent, peer).endswith("seer answered: no; wall 19.5 s [deadline]")
    profiled = _result("seer+profile@optuna_procs", 1, 18.0, 0.98, time_budget_s=19.4)
    assert "): seer+profile answered: yes, test accuracy 0.9800 (>= peer)" in bench_peers.deadline_line(
        profiled, peer)


def test_a_missing_peer_is_named_with_the_install_command(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # find_spec answers None: as if not installed
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert bench_peers.missing_packages(bench_peers.TOOLS) == ["optuna", "ray"]
    assert bench_peers.missing_packages(["seer"]) == []
    assert bench_peers.missing_packages(["seer", "optuna_procs"]) == ["optuna"]
    # the command line refuses before it starts anything (no work folder), naming the extra
    work = tmp_path / "work"
    assert bench_peers.main(["--tools", "seer", "ray_reuse_actors", "--work-dir", str(work)]) == 2
    err = capsys.readouterr().err
    assert "ray not installed" in err and "pip install -e '.[peers]'" in err
    assert not work.exists()


def test_the_search_space_is_the_embedded_default():
    space = {p.name: p for p in bench_peers.search_space()}
    assert (space["lr"].kind, space["lr"].low, space["lr"].high) == ("loguniform", 0.01, 0.8)
    assert (space["weight_decay"].kind, space["weight_decay"].low, space["weight_decay"].high) == (
        "loguniform", 1e-5, 1e-2)
    assert (space["width"].kind, space["width"].choices) == ("choice", (64, 96))
    assert (space["dropout"].kind, space["dropout"].low, space["dropout"].high) == ("uniform", 0.0, 0.5)


def test_seer_gets_the_job_on_the_embedded_default():
    raw = bench_peers.seer_experiment(Job(seed=1), 3600.0)
    assert raw["seed"] == 1 and raw["name"] == "digits-default"
    assert {k: raw["training"][k] for k in ("max_epochs", "eta", "min_epochs", "global_batch")} == {
        "max_epochs": 27, "eta": 3, "min_epochs": 1, "global_batch": 64}
    assert raw["budget"]["time_budget_s"] == 3600.0 and raw["resources"]["num_slots"] == 2
    assert raw["search"]["max_configurations"] == 27
    from seer_torch.config import parse_experiment

    parse_experiment(raw)  # a valid experiment


def test_seer_records_read_its_trials_with_world_size(tmp_path):
    def trial(name, configuration, rows):
        folder = tmp_path / "trials" / name
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"configuration": configuration}))
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    trial("t000", {"lr": 0.1}, [
        {"epoch": 1, "val_accuracy": 0.5, "epoch_time_s": 1.0, "world_size": 1, "test_accuracy": 0.4},
        {"epoch": 2, "val_accuracy": 0.7, "epoch_time_s": 0.6, "world_size": 2},  # one epoch on 2 slots
    ])
    trial("t001", {"lr": 0.8}, [  # diverged in its second epoch: that line is no epoch trained
        {"epoch": 1, "val_accuracy": None, "epoch_time_s": 1.5, "world_size": 1},
        {"epoch": 2, "diverged": True, "val_accuracy": None},
    ])
    first, second = bench_peers.seer_records(tmp_path)
    assert (first.config, first.val_by_epoch, first.test_by_epoch) == (
        {"lr": 0.1}, {1: 0.5, 2: 0.7}, {1: 0.4})
    assert first.train_slot_s == pytest.approx(1.0 + 0.6 * 2)
    assert math.isnan(second.val_by_epoch[1]) and second.epochs == 1 and second.train_slot_s == 1.5


def test_the_json_holds_every_run_with_nan_as_null(tmp_path):
    jobs = [Job(seed=0), Job(seed=1)]
    results = [_result("seer", 0, 100.0, math.nan, answered=False), _result("optuna_procs", 0, 20.0, 0.97)]
    run = _result("seer@optuna_procs", 0, 19.0, 0.98, time_budget_s=20.0)
    path = tmp_path / "out" / "peers.json"
    bench_peers.save_json(str(path), jobs, results, [(run, results[1])], 130.0)
    out = json.loads(path.read_text())
    assert out["job"]["seeds"] == [0, 1] and out["job"]["rungs"] == [1, 3, 9, 27]
    assert [r["tool"] for r in out["runs"]] == ["seer", "optuna_procs"]
    assert out["runs"][0]["test_accuracy"] is None and out["runs"][1]["training_share"] == pytest.approx(0.75)
    assert out["ratios"] == {"ray_reuse_actors": None, "optuna_procs": 5.0}
    assert out["deadline_runs"] == [{"peer": "optuna_procs", "seed": 0, "peer_wall_s": 20.0,
                                     "peer_test_accuracy": 0.97, "seer": out["deadline_runs"][0]["seer"]}]
    assert out["deadline_runs"][0]["seer"]["time_budget_s"] == 20.0 and out["total_s"] == 130.0
