"""The public trial API (seer_torch.trial) in-process at W = 1: no torchrun, trial folders under tmp_path."""

from __future__ import annotations

import json
import math

import pytest
import torch

import seer_torch.trial as trial
from seer_torch.data import epoch_permutation
from seer_torch.errors import CheckpointError, ConfigError


@pytest.fixture(autouse=True)
def _single_process(monkeypatch):
    """Outside torchrun: no rank variables, no trial variables unless a test sets them."""
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "SEER_TRIAL_DIR", "SEER_UNTIL_EPOCH",
                 "SEER_RECORD_SAMPLES", "SEER_DEBUG_STEP_DELAY_S"):
        monkeypatch.delenv(name, raising=False)


def make_trial_dir(tmp_path, **overrides):
    trial_dir = tmp_path / "t0007"
    trial_dir.mkdir(exist_ok=True)
    config = {"trial_id": "t0007", "configuration": {"lr": 0.01, "width": 16}, "global_batch": 32,
              "micro_batch_max": 8, "max_epochs": 6, "seed": 3, "tensorboard_dir": None,
              "model": None, "dataset": None, "data_dir": None, **overrides}
    (trial_dir / "config.json").write_text(json.dumps(config))
    return trial_dir


def start(trial_dir, until_epoch):
    return trial.init(trial_dir, until_epoch, cpu_threads=None)


def metrics(trial_dir):
    return [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]


def run_launch(trial_dir, until_epoch, *, accuracy=lambda epoch: epoch / 10):
    """One launch: load, train no batches, report each epoch, save {"w": tensor(epoch)} at the end."""
    t = start(trial_dir, until_epoch)
    state = t.load()
    weight = state["w"].clone() if state is not None else torch.zeros(())
    seen = []
    for epoch in t.epochs(checkpoint=lambda: {"w": weight}):
        seen.append(epoch)
        weight.fill_(epoch)
        t.report(epoch, val_accuracy=accuracy(epoch), train_loss=1.0 / epoch)
    t.finish()
    return t, state, seen


def test_init_reads_the_environment(tmp_path, monkeypatch):
    trial_dir = make_trial_dir(tmp_path)
    monkeypatch.setenv("SEER_TRIAL_DIR", str(trial_dir))
    monkeypatch.setenv("SEER_UNTIL_EPOCH", "4")
    t = trial.init(cpu_threads=None)
    assert (t.trial_dir, t.trial_id, t.until_epoch, t.max_epochs) == (trial_dir.resolve(), "t0007", 4, 6)
    assert dict(t.config) == {"lr": 0.01, "width": 16}
    assert (t.seed, t.global_batch, t.micro_batch_max, t.metric) == (3, 32, 8, "val_accuracy")
    assert (t.rank, t.local_rank, t.world_size, t.is_main) == (0, 0, 1, True)
    assert (t.micro_batch, t.accum_steps) == (8, 4)  # 1 x 8 x 4 == 32
    assert t.device.type in ("cpu", "cuda")
    assert (trial_dir / "heartbeat").exists()
    t.finish()


def test_until_epoch_defaults_to_max_epochs_and_config_global_batch_is_overridden(tmp_path):
    trial_dir = make_trial_dir(tmp_path, configuration={"lr": 0.1, "global_batch": 16})
    t = start(trial_dir, None)
    assert (t.until_epoch, t.global_batch, t.accum_steps) == (6, 16, 2)


def test_init_without_a_trial_folder_says_how_to_run(tmp_path):
    with pytest.raises(ConfigError) as error:
        trial.init(cpu_threads=None)
    assert error.value.field == "SEER_TRIAL_DIR"
    assert "seer tune" in str(error.value) and "trial_dir=" in str(error.value)
    with pytest.raises(ConfigError, match="config.json") as error:
        trial.init(tmp_path / "empty", 1, cpu_threads=None)
    assert error.value.field == "trial_dir"


@pytest.mark.parametrize(("until", "env", "field"), [
    (7, None, "until_epoch"),  # beyond max_epochs = 6
    (0, None, "until_epoch"),
    (None, "three", "SEER_UNTIL_EPOCH"),
])
def test_bad_until_epoch_is_refused(tmp_path, monkeypatch, until, env, field):
    trial_dir = make_trial_dir(tmp_path)
    if env is not None:
        monkeypatch.setenv("SEER_UNTIL_EPOCH", env)
    with pytest.raises(ConfigError) as error:
        start(trial_dir, until)
    assert error.value.field == field


@pytest.mark.parametrize(("overrides", "field"), [
    ({"global_batch": 0}, "global_batch"),
    ({"micro_batch_max": "8"}, "micro_batch_max"),
    ({"configuration": [1, 2]}, "configuration"),
    ({"tensorboard_dir": 5}, "tensorboard_dir"),
])
def test_a_malformed_config_names_its_field(tmp_path, overrides, field):
    with pytest.raises(ConfigError) as error:
        start(make_trial_dir(tmp_path, **overrides), 1)
    assert error.value.field == field


def test_a_fresh_launch_trains_to_the_target_and_saves_a_checkpoint(tmp_path):
    trial_dir = make_trial_dir(tmp_path)
    t, state, seen = run_launch(trial_dir, 2)
    assert state is None and seen == [1, 2] and t.start_epoch == 0
    assert json.loads((trial_dir / "checkpoint.json").read_text()) == {"epoch": 2, "step": 0}
    saved = torch.load(trial_dir / "checkpoint.pt", weights_only=True)
    assert (saved["format"], saved["epoch"], saved["global_batch"]) == ("seer-trial-1", 2, 32)
    assert float(saved["state"]["w"]) == 2.0
    assert not (trial_dir / "checkpoint.prev.pt").exists()  # nothing before it


def test_a_relaunch_resumes_after_the_checkpoint_and_keeps_the_previous(tmp_path):
    trial_dir = make_trial_dir(tmp_path)
    run_launch(trial_dir, 2)
    # A killed launch's lines past the checkpoint, and its half-written temporary file.
    with open(trial_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 3, "val_accuracy": 0.99}) + "\n")
    (trial_dir / ".checkpoint.pt.abc.tmp").write_bytes(b"half")
    t, state, seen = run_launch(trial_dir, 4)
    assert float(state["w"]) == 2.0 and t.start_epoch == 2 and seen == [3, 4]
    assert not (trial_dir / ".checkpoint.pt.abc.tmp").exists()
    rows = metrics(trial_dir)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["val_accuracy"] == pytest.approx(0.3)  # the killed launch's 0.99 is gone
    assert json.loads((trial_dir / "checkpoint.json").read_text())["epoch"] == 4
    previous = torch.load(trial_dir / "checkpoint.prev.pt", weights_only=True)
    assert previous["epoch"] == 2 and float(previous["state"]["w"]) == 2.0
    assert float(torch.load(trial_dir / "checkpoint.pt", weights_only=True)["state"]["w"]) == 4.0
    # A launch whose target the checkpoint already holds trains nothing and saves nothing.
    _, state, seen = run_launch(trial_dir, 4)
    assert seen == [] and float(state["w"]) == 4.0
    assert torch.load(trial_dir / "checkpoint.prev.pt", weights_only=True)["epoch"] == 2


def test_a_corrupt_checkpoint_falls_back_to_the_previous(tmp_path, capsys):
    trial_dir = make_trial_dir(tmp_path)
    run_launch(trial_dir, 1)
    run_launch(trial_dir, 2)
    (trial_dir / "checkpoint.pt").write_bytes(b"not a zip")
    t, state, seen = run_launch(trial_dir, 3)
    assert float(state["w"]) == 1.0 and seen == [2, 3]
    assert "unusable" in capsys.readouterr().err
    # The damaged file did not become the fallback: the previous one still holds epoch 1.
    assert torch.load(trial_dir / "checkpoint.prev.pt", weights_only=True)["epoch"] == 1
    (trial_dir / "checkpoint.pt").write_bytes(b"bad")
    (trial_dir / "checkpoint.prev.pt").write_bytes(b"bad too")
    with pytest.raises(CheckpointError, match="checkpoint.prev.pt"):
        start(trial_dir, 4).load()


def test_a_checkpoint_of_another_global_batch_is_refused(tmp_path):
    trial_dir = make_trial_dir(tmp_path)
    run_launch(trial_dir, 1)
    make_trial_dir(tmp_path, global_batch=64)
    with pytest.raises(ConfigError) as error:
        start(trial_dir, 2).load()
    assert error.value.field == "global_batch" and "32" in error.value.allowed


def test_epochs_without_load_while_a_checkpoint_exists_is_refused(tmp_path):
    trial_dir = make_trial_dir(tmp_path)
    run_launch(trial_dir, 1)
    t = start(trial_dir, 2)
    with pytest.raises(ConfigError, match=r"t\.load\(\)"):
        next(iter(t.epochs()))


def test_report_writes_the_line(tmp_path):
    trial_dir = make_trial_dir(tmp_path)
    t = start(trial_dir, 2)
    t.load()
    epochs = t.epochs()
    assert next(epochs) == 1
    t.report(1, val_accuracy=torch.tensor(0.75), train_loss=0.5, correct=3)
    (row,) = metrics(trial_dir)
    assert {k: row[k] for k in ("trial_id", "epoch", "step", "world_size", "global_batch")} == {
        "trial_id": "t0007", "epoch": 1, "step": 0, "world_size": 1, "global_batch": 32}
    assert (row["val_accuracy"], row["train_loss"], row["correct"]) == (0.75, 0.5, 3)
    assert "diverged" not in row
    assert 0 <= row["epoch_time_s"] < 60 and row["time_unix_s"] >= row["train_start_unix_s"] > 0


def test_a_nan_metric_writes_a_diverged_line_and_ends_unsaved(tmp_path):
    trial_dir = make_trial_dir(tmp_path)
    t = start(trial_dir, 3)
    t.load()
    seen = []
    for epoch in t.epochs(checkpoint=lambda: {"w": torch.zeros(())}):
        seen.append(epoch)
        if epoch == 1:
            t.report(epoch, val_accuracy=0.5, train_loss=0.7)
        else:
            t.report(epoch, val_accuracy=float("nan"), train_loss=math.inf, val_loss=0.25)
    assert seen == [1, 2]  # the iteration stops after the diverged report
    rows = metrics(trial_dir)
    assert "diverged" not in rows[0] and rows[0]["train_loss"] == 0.7
    assert rows[1]["diverged"] is True and rows[1]["epoch"] == 2
    assert (rows[1]["val_accuracy"], rows[1]["train_loss"], rows[1]["val_loss"]) == (None, None, 0.25)
    assert not (trial_dir / "checkpoint.pt").exists()
    assert json.loads((trial_dir / "checkpoint.json").read_text())["epoch"] == 0


@pytest.mark.parametrize(("epoch", "metrics_", "field"), [
    (2, {"val_accuracy": 0.5}, "report(epoch)"),  # epoch 1 not reported yet
    (0, {"val_accuracy": 0.5}, "report(epoch)"),
    (1, {"train_loss": 0.5}, "report(val_accuracy=...)"),  # the tuner's metric is missing
    (1, {"val_accuracy": 0.5, "step": 3}, "report(step=...)"),  # a name the line writes itself
    (1, {"val_accuracy": "high"}, "report(val_accuracy=...)"),
    (1, {"val_accuracy": torch.ones(2)}, "report(val_accuracy=...)"),
])
def test_bad_reports_are_refused(tmp_path, epoch, metrics_, field):
    t = start(make_trial_dir(tmp_path), 2)
    with pytest.raises(ConfigError) as error:
        t.report(epoch, **metrics_)
    assert error.value.field == field
    assert not (t.trial_dir / "metrics.jsonl").exists()


def test_reports_out_of_order_or_beyond_the_target_are_refused(tmp_path):
    t = start(make_trial_dir(tmp_path), 2)
    t.report(1, val_accuracy=0.1)
    with pytest.raises(ConfigError, match="the next epoch, 2"):
        t.report(1, val_accuracy=0.1)  # twice
    t.report(2, val_accuracy=0.2)
    with pytest.raises(ConfigError, match="until_epoch=2"):
        t.report(3, val_accuracy=0.3)
    assert [r["epoch"] for r in metrics(t.trial_dir)] == [1, 2]


def test_an_epoch_without_its_report_is_refused(tmp_path):
    t = start(make_trial_dir(tmp_path), 2)
    with pytest.raises(ConfigError, match=r"t\.report\(1"):
        for _ in t.epochs():
            pass


def test_save_refuses_what_weights_only_cannot_load(tmp_path):
    t = start(make_trial_dir(tmp_path), 1)
    with pytest.raises(ConfigError, match="before any report"):
        t.save({"w": torch.zeros(1)})
    t.report(1, val_accuracy=0.5)
    with pytest.raises(ConfigError) as error:
        t.save({"model": {"w": torch.zeros(1)}, "extra": [1, object()]})
    assert error.value.field == "state['extra'][1]" and error.value.value == "object"
    t.save({"optimizer": torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1).state_dict()})
    assert json.loads((t.trial_dir / "checkpoint.json").read_text())["epoch"] == 1


def test_train_batches_cover_each_sample_once_in_the_permutation_order(tmp_path):
    t = start(make_trial_dir(tmp_path), 2)  # global batch 32 in 4 micro-batches of 8 at W = 1
    for epoch in (1, 2):
        steps = list(t.train_batches(100, epoch))
        assert len(steps) == 100 // 32
        assert all(len(step) == 4 and all(len(m) <= t.micro_batch_max for m in step) for step in steps)
        trained = torch.cat([m for step in steps for m in step])
        assert torch.equal(trained, epoch_permutation(3, epoch, 100)[:96])
        assert len(set(trained.tolist())) == 96  # each sample at most once; 4 left for the tail
    assert not torch.equal(epoch_permutation(3, 1, 100), epoch_permutation(3, 2, 100))
    t.report(1, val_accuracy=0.5)
    assert metrics(t.trial_dir)[0]["step"] == 6 and metrics(t.trial_dir)[0]["samples_seen"] == 192
    with pytest.raises(ConfigError) as error:
        list(t.train_batches(31, 1))
    assert error.value.field == "global_batch"


def test_accumulate_and_sharded_evaluation_at_w1(tmp_path):
    t = start(make_trial_dir(tmp_path), 1)
    model = torch.nn.Linear(2, 1)
    step = next(t.train_batches(40, 1))
    assert [int(i.sum()) for i in t.accumulate(model, step)] == [int(m.sum()) for m in step]
    assert t.eval_shard(10) == slice(0, 10)
    labels = torch.arange(10) % 3
    calls = []

    def score(idx):
        calls.append(len(idx))
        return torch.stack([labels[idx].sum(), (labels[idx] == 0).sum()])

    mean_label, zero_share = t.evaluate_sharded(10, score, batch_size=4)
    assert calls == [4, 4, 2]
    assert mean_label == pytest.approx(9 / 10) and zero_share == pytest.approx(4 / 10)
    assert t.evaluate_sharded(10, lambda idx: len(idx)) == (1.0,)


def test_tensorboard_scalars_are_written_per_epoch(tmp_path):
    tensorboard_dir = tmp_path / "tb"
    trial_dir = make_trial_dir(tmp_path, tensorboard_dir=str(tensorboard_dir))
    run_launch(trial_dir, 2)
    assert list(tensorboard_dir.glob("events.out.tfevents.*"))


def test_the_checkpoint_keeps_counters_configuration_and_rng_and_restores_the_rng(tmp_path):
    import random

    trial_dir = make_trial_dir(tmp_path)
    t = start(trial_dir, 1)
    t.load()
    for epoch in t.epochs(checkpoint=lambda: {"w": torch.ones(())}):
        list(t.train_batches(100, epoch))  # 3 steps of 32
        t.report(epoch, val_accuracy=0.5)
    saved = torch.load(trial_dir / "checkpoint.pt", weights_only=True)
    assert (saved["epoch"], saved["step"], saved["samples_seen"], saved["trial_id"]) == (1, 3, 96, "t0007")
    assert saved["configuration"] == {"lr": 0.01, "width": 16}
    after_epoch_1 = torch.rand(4), random.random()  # the next draws after the save
    torch.manual_seed(123)
    random.seed(123)
    t = start(trial_dir, 2)
    assert float(t.load()["w"]) == 1.0 and (t.start_epoch, t.step) == (1, 3)
    assert torch.equal(torch.rand(4), after_epoch_1[0]) and random.random() == after_epoch_1[1]


def test_a_check_that_refuses_the_checkpoint_falls_back_to_the_previous(tmp_path, capsys):
    trial_dir = make_trial_dir(tmp_path)
    run_launch(trial_dir, 1)
    run_launch(trial_dir, 2)
    t = start(trial_dir, 3)
    state = t.load(check=lambda saved: "w is too large" if float(saved["state"]["w"]) > 1 else "")
    assert float(state["w"]) == 1.0 and t.start_epoch == 1
    assert "w is too large" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="refused"):
        start(trial_dir, 3).load(check=lambda saved: "refused")


def test_tensorboard_x_axis_is_the_step_and_a_relaunch_purges_the_steps_past_the_checkpoint(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tensorboard_dir = tmp_path / "tb"
    trial_dir = make_trial_dir(tmp_path, tensorboard_dir=str(tensorboard_dir))

    def launch(until, loss_offset):
        t = start(trial_dir, until)
        t.load()
        for epoch in t.epochs(checkpoint=lambda: {}):
            for _ in t.train_batches(100, epoch):  # 3 steps of 32 an epoch
                t.log(step_loss=loss_offset + t.step)
            t.log(after_epoch=float(epoch))  # outside the loop: at the steps trained
            t.report(epoch, val_accuracy=epoch / 10)
        t.finish()

    launch(1, 0.0)
    launch(3, 0.0)
    # The epoch-3 checkpoint is lost: a relaunch from epoch 1 (step 3) trains epoch 2 again.
    (trial_dir / "checkpoint.pt").rename(trial_dir / "kept.pt")
    (trial_dir / "checkpoint.prev.pt").rename(trial_dir / "checkpoint.pt")  # back to epoch 1
    (trial_dir / "kept.pt").unlink()
    launch(2, 100.0)
    acc = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})
    acc.Reload()
    steps = [e.step for e in acc.Scalars("step_loss")]
    assert steps == list(range(1, 7))  # 1..3 of the first launch, 4..6 of the replay; 7..9 purged
    assert [e.value for e in acc.Scalars("step_loss")] == [0, 1, 2, 103, 104, 105]
    assert [e.step for e in acc.Scalars("val_accuracy")] == [3, 6]
    assert [e.step for e in acc.Scalars("perf/world_size")] == [3, 6]
    assert [e.step for e in acc.Scalars("after_epoch")] == [3, 6]
    assert [e.step for e in acc.Scalars("perf/throughput_samples_per_s")] == [3, 6]
    # The three launches came a fraction of a second apart; each writer opened in a second of its
    # own, so TensorBoard (which reads a run's files in name order, the second first, then host
    # and pid) reads them in launch order: a later pid sorting first would have its steps purged
    # by the earlier file's purge_step.
    names = sorted(p.name for p in tensorboard_dir.glob("events.out.tfevents.*"))
    assert len(names) == 3 and len({name.split(".")[3] for name in names}) == 3, names


def test_a_script_that_counts_no_steps_gets_the_epoch_as_x_axis(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tensorboard_dir = tmp_path / "tb"
    run_launch(make_trial_dir(tmp_path, tensorboard_dir=str(tensorboard_dir)), 2)
    acc = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("val_accuracy")] == [1, 2]
    assert [e.step for e in acc.Scalars("perf/world_size")] == [1, 2]


def test_untimed_work_is_left_out_of_the_epoch_time(tmp_path):
    import time

    trial_dir = make_trial_dir(tmp_path)
    t = start(trial_dir, 2)
    t.load()
    for epoch in t.epochs():
        if epoch == 1:
            time.sleep(0.3)
        else:
            with t.untimed():
                time.sleep(0.3)
        t.report(epoch, val_accuracy=0.5)
    first, second = metrics(trial_dir)
    assert first["epoch_time_s"] >= 0.3 and second["epoch_time_s"] < 0.1


def test_recording_writes_each_steps_samples_and_learning_rate(tmp_path, monkeypatch):
    monkeypatch.setenv("SEER_RECORD_SAMPLES", str(tmp_path / "record"))
    t = start(make_trial_dir(tmp_path), 1)
    weight = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([weight], lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (step + 1))
    for batch in t.train_batches(100, 1):
        for idx in t.accumulate(weight, batch):
            (weight * len(idx)).sum().backward()
        opt.step()
        sched.step()
    t.finish()
    records = [json.loads(line) for line in (tmp_path / "record.rank0").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert [r["lr"] for r in records] == [0.5, 0.25, 0.5 / 3]  # the rate each step used
    assert [r["indices"] for r in records] == epoch_permutation(3, 1, 100)[:96].view(3, 32).tolist()
    assert (records[0]["micro_batch"], records[0]["accum_steps"], records[0]["world_size"]) == (8, 4, 1)


def test_the_worker_and_a_script_write_their_lines_with_the_same_code(tmp_path, monkeypatch):
    """One contract, two users: the built-in worker's metrics line and the example script's
    carry the same bookkeeping keys, each written by Trial.report; only their metrics differ."""
    import runpy
    import sys

    from seer_torch import trial as trial_module
    from seer_torch.worker import TrialConfig, train

    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    raw = {"trial_id": "w", "configuration": {"lr": 0.1, "width": 4, "dropout": 0.0}, "model": "digits_cnn",
           "dataset": "digits", "data_dir": None, "global_batch": 64, "micro_batch_max": 64, "max_epochs": 1,
           "seed": 0, "tensorboard_dir": None}
    (worker_dir / "config.json").write_text(json.dumps(raw))
    with trial_module.init(worker_dir, 1, cpu_threads=None) as t:
        train(t, TrialConfig.from_dict(raw))
    (worker_line,) = metrics(worker_dir)

    hparams = {"lr": 0.01, "weight_decay": 0.0, "width": 8, "depth": 1}
    script_dir = make_trial_dir(tmp_path, configuration=hparams)
    monkeypatch.setenv("SEER_TRIAL_DIR", str(script_dir))
    monkeypatch.setenv("SEER_UNTIL_EPOCH", "1")
    monkeypatch.setattr(sys, "argv", ["train.py"])
    runpy.run_path(str(trial_module.Path(__file__).parents[2] / "examples" / "tabular_mlp" / "train.py"),
                   run_name="__main__")
    (script_line,) = metrics(script_dir)

    bookkeeping = trial_module.RESERVED_KEYS - {"diverged", "probe_steps_per_epoch", "probe_train_s"}
    assert bookkeeping <= set(worker_line) and bookkeeping <= set(script_line)
    assert set(worker_line) - bookkeeping == {"lr", "train_loss", "val_accuracy", "val_loss", "val_samples",
                                              "test_accuracy", "test_loss", "test_samples"}
    assert set(script_line) - bookkeeping == {"val_accuracy", "val_loss", "train_loss"}
    assert worker_line["step"] == 1257 // 64 and worker_line["throughput_samples_per_s"] > 0
