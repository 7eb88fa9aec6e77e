"""The run's report in TensorBoard (issue 18): ``seer report``'s figures as images under
``experiment/``, and an HParams session per trial, in a TensorBoard run named after its
configuration, written when ``seer tune`` (:func:`tune_run`, here on the simulated backend)
finishes a run. What is written is read back the way TensorBoard reads it: the event
accumulator and the data provider for the images, the HParams plugin's own request handlers
(those behind its tab) for the sessions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.commands.tune import tune_run
from seer_torch.config import parse_experiment
from seer_torch.executor import Tuner
from seer_torch.executor.resume import trial_from_journal
from seer_torch.policies.registry import make_policy
from seer_torch.report import FIGURES
from seer_torch.report_tensorboard import (
    FIGURES_SUFFIX,
    HPARAMS_SUFFIX,
    hparam_columns,
    png_size,
    sessions,
    write_run_summaries,
)
from seer_torch.runfiles import tensorboard_run_name
from seer_torch.testing import hparams_tab


def _curve(config, epoch):
    # Higher is better; lr near 0.1 and width 64 win.
    quality = 1.0 - abs(math.log10(config["lr"] / 0.1)) / 4 + (0.05 if config["width"] == 64 else 0.0)
    return quality * (1.0 - 0.5 / epoch)


def _setup(folder: Path, *, max_configurations=9, max_epochs=9):
    folder.mkdir(parents=True, exist_ok=True)
    profile = folder / "profile.json"
    profile.write_text(json.dumps({"world_sizes": [1, 2], "speedup": [1.0, 1.8], "epoch_time_s": 10.0,
                                   "startup_s": 5.0, "resize_s": 5.0}))
    script = folder / "train.py"  # a user's script: its hyperparameters are its own (never run here)
    script.write_text("raise SystemExit('the simulated backend runs no script')\n")
    exp = parse_experiment({
        "name": "tb-report",
        "seed": 7,
        "training": {"max_epochs": max_epochs, "min_epochs": 1, "eta": 3, "global_batch": 64,
                     "micro_batch_max": 64},
        "budget": {"time_budget_s": 1e6, "money_budget_usd": 1e6, "price_usd_per_slot_hour": 3.6},
        "resources": {"num_slots": 2, "world_size_ladder": [1, 2]},
        "search": {"max_configurations": max_configurations},
        "planner": {"profile": str(profile)},
        "trial": {"script": str(script)},
        "search_space": {"lr": {"distribution": "loguniform", "low": 0.001, "high": 1.0},
                         "width": {"choices": [32, 64]},
                         "nesterov": {"choices": [True, False]},
                         "momentum": 0.9},
    })
    clock = SimulatedClock()
    backend = SimulatedBackend(2, clock, epoch_time_s=10.0, speedup={1: 1.0, 2: 1.8}.__getitem__,
                               startup_s=5.0, curve=_curve)
    return exp, clock, backend


def _log_as_the_worker_does(run_dir: Path, results: dict) -> None:
    """What the trial API leaves for each trial (the simulated backend trains nothing): its
    metrics as scalars in its TensorBoard run, under their names, and its ``metrics.jsonl``."""
    from torch.utils.tensorboard import SummaryWriter

    for t in results["trials"]:
        writer = SummaryWriter(str(run_dir / "tensorboard" / t["tensorboard_run"]))
        lines = []
        for epoch, value in sorted(t["metric_by_epoch"].items(), key=lambda kv: int(kv[0])):
            e = int(epoch)
            writer.add_scalar("val_accuracy", value, 10 * e)
            writer.add_scalar("val_loss", 1.0 - value, 10 * e)
            lines.append({"trial_id": t["trial_id"], "epoch": e, "step": 10 * e, "world_size": 1,
                          "val_accuracy": value, "val_loss": 1.0 - value,
                          "train_start_unix_s": 1000.0 + int(t["trial_id"][1:]),
                          "time_unix_s": 2000.0 + e})
        writer.close()
        (run_dir / "trials" / t["trial_id"] / "metrics.jsonl").write_text(
            "".join(json.dumps(x) + "\n" for x in lines))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run `seer tune` finished (its report sent to TensorBoard), then the trials'
    scalars as the worker logs them, and the summaries written again (a resumed run's end)."""
    folder = tmp_path_factory.mktemp("tb")
    exp, clock, backend = _setup(folder)
    run_dir = folder / "run"
    results = tune_run(exp, run_dir, backend=backend, clock=clock)
    tb = run_dir / "tensorboard"
    written_at_the_end = sorted(p.relative_to(tb).as_posix() for p in tb.rglob(f"*{HPARAMS_SUFFIX}"))
    written_at_the_end += sorted(p.relative_to(tb).as_posix() for p in tb.rglob(f"*{FIGURES_SUFFIX}"))
    _log_as_the_worker_does(run_dir, results)
    (tb / results["trials"][0]["tensorboard_run"] / ".seer-summary-killed.tmp").write_bytes(b"half")
    assert write_run_summaries(run_dir, figures=False) == []
    return results, run_dir, written_at_the_end


def test_a_trials_tensorboard_run_is_named_after_its_configuration():
    config = {"lr": 0.0031622776601683794, "width": 64, "opt": "adam w", "momentum": 0.9,
              "betas": [0.9, 0.99]}
    name = tensorboard_run_name("t003", config, leave_out={"momentum"})
    assert name == "t003_lr=0.003162,width=64,opt=adam_w,betas=_0.9,0.99_"
    assert tensorboard_run_name("t003", config, leave_out={"momentum"}) == name  # deterministic
    assert tensorboard_run_name("t003", {}) == "t003"
    long = tensorboard_run_name("t003", {f"p{i}": 0.123456 for i in range(40)})
    assert len(long) <= 100 and long.startswith("t003_p0=0.1235,p1=0.1235,") and not long.endswith(",")
    assert tensorboard_run_name("t0123456789", {"x": 1}, max_chars=4) == "t0123456789"  # never cuts the id


def test_each_trials_run_is_named_and_the_name_journaled(run):
    results, run_dir, _ = run
    state = json.loads((run_dir / "state.json").read_text())
    for t, journaled in zip(results["trials"], state["trials"]):
        expected = tensorboard_run_name(t["trial_id"], t["config"], leave_out={"momentum"})
        assert t["tensorboard_run"] == journaled["tensorboard_run"] == expected
        assert "momentum" not in expected and f"width={t['config']['width']}" in expected
        config = json.loads((run_dir / "trials" / t["trial_id"] / "config.json").read_text())
        assert Path(config["tensorboard_dir"]) == (run_dir / "tensorboard" / expected).resolve()


def test_seer_tune_writes_one_hparams_file_per_trial_and_the_figures_when_the_run_finishes(run):
    results, run_dir, written_at_the_end = run
    hparams = [p for p in written_at_the_end if p.endswith(HPARAMS_SUFFIX)]
    assert sorted(p.split("/")[0] for p in hparams) == sorted(t["tensorboard_run"] for t in results["trials"])
    assert [p.split("/")[0] for p in written_at_the_end if p.endswith(FIGURES_SUFFIX)] == ["experiment"]
    # Written again (a resumed run's end): still one file of each, the killed writer's gone.
    tb = run_dir / "tensorboard"
    for t in results["trials"]:
        assert len(list((tb / t["tensorboard_run"]).glob(f"*{HPARAMS_SUFFIX}"))) == 1
    assert len(list((tb / "experiment").glob(f"*{FIGURES_SUFFIX}"))) == 1
    assert not list(tb.rglob(".seer-summary-*"))  # a killed writer's temporary file


def test_the_report_figures_are_images_under_experiment(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results, run_dir, _ = run
    acc = EventAccumulator(str(run_dir / "tensorboard" / "experiment"), size_guidance={"images": 0})
    acc.Reload()
    assert sorted(acc.Tags()["images"]) == sorted(f"experiment/{name}" for name in FIGURES)
    for name in FIGURES:
        (image,) = acc.Images(f"experiment/{name}")
        assert image.step == 0
        assert len(image.encoded_image_string) > 5000
        assert png_size(image.encoded_image_string)[:2] == (image.width, image.height)
        assert image.width == 1200 and image.height > 200  # the report's 12-inch figures at 100 dpi
    # The per-round panels are still there, one point per completed round.
    rounds = [r["index"] for r in results["rounds"] if r["completed"]]
    assert [e.step for e in acc.Scalars("experiment/trials_alive")] == rounds == [1, 2, 3]
    # What TensorBoard's Images tab lists (its data provider): each figure's title and caption.
    from tensorboard import context
    from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(run_dir / "tensorboard"))
    mux.Reload()
    listed = MultiplexerDataProvider(mux, str(run_dir / "tensorboard")).list_blob_sequences(
        context.RequestContext(), experiment_id="", plugin_name="images")
    shown = listed["experiment"]
    assert {tag: (s.display_name, s.description) for tag, s in shown.items()} == {
        f"experiment/{name}": (title, caption) for name, (title, caption) in FIGURES.items()}
    assert {s.max_step for s in shown.values()} == {0}


def test_the_hparams_tab_lists_every_trial_with_its_configuration_and_last_metric(run):
    results, run_dir, _ = run
    experiment, rows = hparams_tab(run_dir / "tensorboard")
    # TensorBoard lists the columns whose values differ first, each part by name.
    columns = [(h.name, h.differs) for h in experiment.hparam_infos]
    assert columns == [("answer", True), ("epochs", True), ("lr", True), ("nesterov", True), ("status", True),
                       ("width", True), ("world_sizes", True), ("momentum", False)]
    infos = {h.name: h for h in experiment.hparam_infos}
    assert [v.number_value for v in infos["width"].domain_discrete.values] == [32.0, 64.0]
    assert [v.bool_value for v in infos["nesterov"].domain_discrete.values] == [True, False]
    assert (infos["lr"].domain_interval.min_value, infos["lr"].domain_interval.max_value) == (0.001, 1.0)
    assert [m.name.tag for m in experiment.metric_infos] == ["val_accuracy", "val_loss"]

    by_run = {r["run"]: r for r in rows}
    assert len(rows) == len(by_run) == len(results["trials"]) == 9
    assert sorted(by_run) == sorted(t["tensorboard_run"] for t in results["trials"])
    assert {t["status"] for t in results["trials"]} == {"eliminated", "completed"}
    for t in results["trials"]:
        row = by_run[t["tensorboard_run"]]
        assert row["hparams"] == {
            **{k: float(v) if k != "nesterov" else v for k, v in t["config"].items()},
            "status": t["status"],
            "epochs": float(t["epochs"]),
            "world_sizes": " ".join(map(str, t["world_sizes"])),
            "answer": t["trial_id"] == results["best"]["trial_id"],
        }
        assert row["status"] == "STATUS_SUCCESS"  # completed or eliminated
        assert (row["start_s"], row["end_s"]) == (1000.0 + int(t["trial_id"][1:]), 2000.0 + t["epochs"])
        assert row["metrics"]["val_accuracy"] == pytest.approx(t["val_accuracy"], rel=1e-6)  # float32 events
        assert row["metrics"]["val_loss"] == pytest.approx(1.0 - t["val_accuracy"], rel=1e-5)
        assert row["steps"]["val_accuracy"] == 10 * t["epochs"]
    answers = [r["run"] for r in rows if r["hparams"]["answer"]]
    assert answers == [next(t["tensorboard_run"] for t in results["trials"]
                            if t["trial_id"] == results["best"]["trial_id"])]


def test_the_hparams_tab_sorts_the_trials_by_the_metric(run):
    results, run_dir, _ = run
    _, rows = hparams_tab(run_dir / "tensorboard", sort_by="val_accuracy")
    ranked = sorted(results["trials"], key=lambda t: -t["val_accuracy"])
    assert [r["run"] for r in rows] == [t["tensorboard_run"] for t in ranked]
    assert rows[0]["run"] == next(t["tensorboard_run"] for t in results["trials"]
                                  if t["trial_id"] == results["best"]["trial_id"])


def test_failed_trials_are_failures_and_values_of_mixed_types_are_strings():
    results = {
        "metric": "val_loss", "mode": "min", "best": None,
        "trials": [
            {"trial_id": "t0", "config": {"act": "relu", "k": 3}, "status": "failed", "epochs": 0,
             "world_sizes": [2]},
            {"trial_id": "t1", "config": {"act": "gelu", "k": "auto"}, "status": "diverged", "epochs": 2,
             "world_sizes": [1, 2], "tensorboard_run": "t1_act=gelu,k=auto"},
            {"trial_id": "t2", "config": {"act": "gelu", "k": 5, "status": "x"}, "status": "stopped",
             "epochs": 3, "world_sizes": [1]},
        ],
    }
    columns = hparam_columns(results, {"search_space": {"act": {"choices": ["relu", "gelu"]}}})
    kinds = {c.name: (c.key, c.kind) for c in columns}
    assert kinds["k"] == ("k", "string") and kinds["act"] == ("act", "string")
    assert kinds["seer.status"] == ("status", "string")  # a hyperparameter named status keeps its name
    got = sessions(results, columns)
    assert [s.run for s in got] == ["t0", "t1_act=gelu,k=auto", "t2"]
    assert [s.status for s in got] == ["STATUS_FAILURE", "STATUS_FAILURE", "STATUS_SUCCESS"]
    assert [s.hparams["k"] for s in got] == ["3", "auto", "5"]
    assert got[2].hparams["status"] == "x" and got[2].hparams["seer.status"] == "stopped"
    assert "status" not in got[0].hparams  # t0 has no hyperparameter called status


def test_a_failure_to_draw_is_a_warning_and_loses_nothing(tmp_path, monkeypatch, capsys):
    import seer_torch.report as report

    def broken(data):
        raise RuntimeError("no fonts")

    monkeypatch.setattr(report, "draw_all", broken)
    exp, clock, backend = _setup(tmp_path, max_configurations=3, max_epochs=3)
    run_dir = tmp_path / "run"
    results = tune_run(exp, run_dir, backend=backend, clock=clock)
    err = capsys.readouterr().err
    assert "seer: TensorBoard: the figures were not written (RuntimeError: no fonts)" in err
    assert f"seer report {run_dir}" in err
    assert json.loads((run_dir / "results.json").read_text()) == json.loads(json.dumps(results))
    assert json.loads((run_dir / "state.json").read_text())["status"] == "finished"
    tb = run_dir / "tensorboard"
    assert not list(tb.rglob(f"*{FIGURES_SUFFIX}"))
    assert len(list(tb.rglob(f"*{HPARAMS_SUFFIX}"))) == len(results["trials"]) == 3


def test_a_resumed_trial_writes_on_in_the_same_run(tmp_path, crash_tuner):
    exp, clock, backend = _setup(tmp_path)
    run_dir = tmp_path / "run"
    crash_tuner("job_end:4",
                lambda: Tuner(exp, run_dir, backend, policy=make_policy("seer"), clock=clock).run())
    state = json.loads((run_dir / "state.json").read_text())
    before = {t["trial_id"]: t["tensorboard_run"] for t in state["trials"]}
    assert before and all(name.startswith(f"{tid}_lr=") for tid, name in before.items())
    res = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock).run(resume=True)
    after = {t["trial_id"]: t["tensorboard_run"] for t in res["trials"]}
    assert {tid: after[tid] for tid in before} == before
    for tid, name in after.items():
        config = json.loads((run_dir / "trials" / tid / "config.json").read_text())
        assert Path(config["tensorboard_dir"]).name == name


def test_a_journal_from_before_the_names_keeps_the_trial_id_as_the_run():
    raw = {"trial_id": "t004", "config": {"lr": 0.1}, "index": 4, "status": "paused", "epochs": 3}
    assert trial_from_journal(raw).tensorboard_run == "t004"
    assert trial_from_journal({**raw, "tensorboard_run": "t004_lr=0.1"}).tensorboard_run == "t004_lr=0.1"
