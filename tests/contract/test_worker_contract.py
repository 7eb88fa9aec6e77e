"""The worker's rescale contract (docs/design.md "Training invariants"; docs/cases.md 7-11), checked on
the real worker through real torchrun launches on CPU/gloo.

A trial trains digits (1257 training samples) with a global batch of 48 split as
``W x micro_batch x accum_steps`` (micro_batch_max 12): 26 optimizer steps per epoch, 9 samples
dropped per epoch (drop_last), 270 validation samples that W = 4 does not split evenly. One
uninterrupted W = 1 run over the 3-epoch schedule is the reference; the world-size sequences
1 -> 2 -> 1, 2 -> 3 -> 4, 4 -> 1, a crash (SIGKILL mid-epoch at W = 2, resumed at W = 3) and
two "nodes" on this machine (torchrun ``--nnodes 2`` with a c10d rendezvous, 1 and 2 processes
each) must reproduce it. The model has no BatchNorm (``digits_mlp``, dropout 0) so that its
parameters can be compared; a BatchNorm model (``digits_cnn``) checks checkpoints and running
statistics. Every launch runs once per module (module-scoped fixture); the assertions share it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from contract_harness import (
    DROPPED,
    GLOBAL_BATCH,
    MAX_EPOCHS,
    MICRO_BATCH_MAX,
    NUM_TEST,
    NUM_TRAIN,
    NUM_VAL,
    STEPS_PER_EPOCH,
    Launch,
    base_env,
    copy_trial,
    evaluate_checkpoint,
    global_order,
    kill_group,
    launch,
    load_checkpoint,
    model_hparams,
    read_metrics,
    read_records,
    standalone_argv,
    start,
    tensorboard_files,
    tensorboard_scalars,
    write_config,
)

pytestmark = pytest.mark.integration

MLP = ("digits_mlp", {"lr": 0.05, "weight_decay": 5e-4, "momentum": 0.9, "width": 32, "dropout": 0.0})
BN_CNN = ("digits_cnn", {"lr": 0.05, "weight_decay": 5e-4, "momentum": 0.9, "width": 4, "dropout": 0.1})
TOTAL_STEPS = MAX_EPOCHS * STEPS_PER_EPOCH
PEAK_LR = MLP[1]["lr"]

# Parameter tolerance, resized vs uninterrupted W = 1 run (digits_mlp, no BatchNorm, dropout 0).
# The global-batch gradient is the same sum at every W, only added up in another order: per
# micro-batch means divided by accum_steps, then gloo's all-reduce average over ranks. Each
# optimizer step therefore differs by a few float32 ulps (~1e-7 relative); 78 steps of SGD with
# momentum 0.9 carry and mildly amplify these, and the measured largest difference is ~1e-6
# (weights are O(0.1-1)). 2e-5 leaves more than 10x margin for that, while any real break --
# one sample order changed, one optimizer step missing, the momentum lost at a resize, the loss
# scaled by W, the schedule off by a step -- moves the weights by 1e-3 or more.
PARAM_ATOL = 2e-5


@dataclass
class Sequence:
    name: str
    trial_dir: Path
    model: str
    hparams: dict
    launches: list[Launch]
    killed: Launch | None = None  # the crashed launch, if any


def _fresh(root: Path, name: str, model_spec) -> Path:
    trial = root / name
    write_config(trial, model=model_spec[0], configuration=model_spec[1])
    return trial


def _run(root: Path, name: str, model_spec, plan, start_from: Sequence | None = None) -> Sequence:
    """Launches ``plan`` = [(W, until_epoch, nodes)] one after another on one trial."""
    if start_from is None:
        trial, launches = _fresh(root, name, model_spec), []
    else:
        trial, launches = copy_trial(start_from.snapshot, root / name), list(start_from.launches)
    for index, (world, until, nodes) in enumerate(plan):
        launches.append(launch(trial, world, until, root / f"{name}.rec{index}", nodes=nodes))
    return Sequence(name, trial, model_spec[0], dict(model_spec[1]), launches)


def _run_crash(root: Path, base: Sequence) -> Sequence:
    """From a W = 1 checkpoint at epoch 1: a W = 2 launch to epoch 3 killed with SIGKILL (whole
    process group) in the middle of epoch 3, after it wrote epoch 2's metrics and TensorBoard
    events; then a W = 3 launch to epoch 3 replays epochs 2 and 3."""
    trial = copy_trial(base.snapshot, root / "crash")
    record = root / "crash.killed"
    proc = start(
        standalone_argv(trial, 2, 3),
        base_env(SEER_RECORD_SAMPLES=str(record), SEER_DEBUG_STEP_DELAY_S="0.03"),
    )
    deadline = time.monotonic() + 120
    try:
        while True:
            assert time.monotonic() < deadline and proc.poll() is None, (
                "the launch to be killed ended or hung"
            )
            lines = read_records(record)
            if any(line["epoch"] == 3 and line["step_in_epoch"] >= 8 for line in lines):
                break
            time.sleep(0.01)
    finally:
        kill_group(proc)  # SIGKILL to the agent's group and to each worker's own group
        proc.communicate(timeout=60)
        time.sleep(0.5)  # the killed workers' descriptors are gone before anything is read
    killed = Launch(2, 3, record)
    killed.metrics = read_metrics(trial)
    killed.checkpoint = load_checkpoint(trial)
    resumed = launch(trial, 3, 3, root / "crash.rec1")
    return Sequence("crash", trial, base.model, base.hparams, [*base.launches, resumed], killed=killed)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Sequence]:
    root = tmp_path_factory.mktemp("contract")
    seqs: dict[str, Sequence] = {}
    seqs["reference"] = _run(root, "reference", MLP, [(1, 3, 1)])
    base = _run(root, "base", MLP, [(1, 1, 1)])
    base.snapshot = root / "base"
    seqs["restart-1-1"] = _run(root, "r11", MLP, [(1, 3, 1)], start_from=base)
    seqs["1-2-1"] = _run(root, "s121", MLP, [(2, 2, 1), (1, 3, 1)], start_from=base)
    seqs["2-3-4"] = _run(root, "s234", MLP, [(2, 1, 1), (3, 2, 1), (4, 3, 1)])
    seqs["4-1"] = _run(root, "s41", MLP, [(4, 1, 1), (1, 3, 1)])
    seqs["crash-2-kill-3"] = _run_crash(root, base)
    # two "nodes" on this machine: 1 -> 2 nodes x 1 process -> 2 nodes x 2 processes
    seqs["nodes-1-2x1-2x2"] = _run(root, "nodes", MLP, [(2, 2, 2), (4, 3, 2)], start_from=base)
    # BatchNorm model: checkpoints across W in both directions.
    seqs["bn-2-1-2"] = _run(root, "bn_212", BN_CNN, [(2, 1, 1), (1, 2, 1), (2, 3, 1)])
    return seqs


RESIZED = ["1-2-1", "2-3-4", "4-1", "crash-2-kill-3", "nodes-1-2x1-2x2"]
ALL_TRAINED = ["reference", "restart-1-1", *RESIZED, "bn-2-1-2"]


def _epoch_history(seq: Sequence) -> dict[int, list[int]]:
    """Epoch -> training indices in global order, from the launch that completed the epoch."""
    history: dict[int, list[int]] = {}
    for item in seq.launches:
        history.update(global_order(read_records(item.record)))
    return history


def _step_records(seq: Sequence) -> dict[int, list[dict]]:
    """Optimizer step -> its records (all ranks) from the launch that completed it."""
    steps: dict[int, list[dict]] = {}
    for item in seq.launches:
        mine: dict[int, list[dict]] = {}
        for line in read_records(item.record):
            mine.setdefault(line["step"], []).append(line)
        steps.update(mine)
    return steps


def _world_per_epoch(seq: Sequence) -> list[int]:
    worlds, done = [], 0
    for item in seq.launches:
        worlds += [item.world_size] * (item.until_epoch - done)
        done = item.until_epoch
    return worlds


# ------------------------------------------------------------------------------------------
# Data order
# ------------------------------------------------------------------------------------------


def test_reference_data_order_is_the_seed_epoch_permutation(runs):
    from seer_torch.data import epoch_permutation

    history = _epoch_history(runs["reference"])
    assert sorted(history) == [1, 2, 3]
    for epoch, order in history.items():
        assert order == epoch_permutation(0, epoch, NUM_TRAIN)[: NUM_TRAIN - DROPPED].tolist()
        assert len(order) == len(set(order)) == STEPS_PER_EPOCH * GLOBAL_BATCH  # once each
        assert set(order) <= set(range(NUM_TRAIN))
    assert history[1] != history[2] != history[3]


@pytest.mark.parametrize("name", ["restart-1-1", *RESIZED, "bn-2-1-2"])
def test_every_epoch_trains_the_reference_order_whatever_w(runs, name):
    """Same samples, same order per (seed, epoch) at every W and after a restart; every sample
    once per epoch, the same 9 left out by drop_last."""
    reference = _epoch_history(runs["reference"])
    history = _epoch_history(runs[name])
    assert sorted(history) == list(range(1, runs[name].launches[-1].until_epoch + 1))
    for epoch, order in history.items():
        assert len(order) == len(set(order)) == NUM_TRAIN - DROPPED, f"epoch {epoch}"
        assert order == reference[epoch], f"epoch {epoch} order differs from the uninterrupted W=1 run"


def test_killed_launch_trained_the_same_order_until_it_died(runs):
    seq = runs["crash-2-kill-3"]
    reference = _epoch_history(runs["reference"])
    partial = global_order(read_records(seq.killed.record))
    assert sorted(partial) == [2, 3]
    assert partial[2] == reference[2]
    assert 0 < len(partial[3]) < len(reference[3]), "the kill did not land mid-epoch"
    assert partial[3] == reference[3][: len(partial[3])]


# ------------------------------------------------------------------------------------------
# Batch plan, step counts, learning rate
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_TRAINED)
def test_batch_plan_steps_and_counters(runs, name):
    seq = runs[name]
    lines = seq.launches[-1].metrics
    assert [line["epoch"] for line in lines] == list(range(1, len(lines) + 1))  # one line per epoch
    assert [line["world_size"] for line in lines] == _world_per_epoch(seq)
    for line in lines:
        assert line["world_size"] * line["micro_batch"] * line["accum_steps"] == GLOBAL_BATCH
        assert line["micro_batch"] <= MICRO_BATCH_MAX and line["accum_steps"] >= 1
        assert line["global_batch"] == GLOBAL_BATCH
        assert line["step"] == line["epoch"] * STEPS_PER_EPOCH
        assert line["samples_seen"] == line["step"] * GLOBAL_BATCH
    steps = _step_records(seq)
    assert sorted(steps) == list(range(1, len(lines) * STEPS_PER_EPOCH + 1))
    for records in steps.values():
        world = records[0]["world_size"]
        assert len(records) == world and sorted(r["rank"] for r in records) == list(range(world))
        for record in records:
            assert len(record["indices"]) == record["micro_batch"] * record["accum_steps"]
            assert world * record["micro_batch"] * record["accum_steps"] == GLOBAL_BATCH


@pytest.mark.parametrize("name", [*RESIZED, "bn-2-1-2"])
def test_learning_rate_at_every_step_equals_the_uninterrupted_run(runs, name):
    from seer_torch.worker import cosine_lr_factor

    reference = {step: records[0]["lr"] for step, records in _step_records(runs["reference"]).items()}
    for step, records in _step_records(runs[name]).items():
        expected = PEAK_LR * cosine_lr_factor(step - 1, TOTAL_STEPS)
        assert reference[step] == pytest.approx(expected, rel=1e-12, abs=1e-15)
        for record in records:  # every rank, the LR the step used
            assert record["lr"] == reference[step], f"step {step} rank {record['rank']}"
    lines = runs[name].launches[-1].metrics
    assert [line["lr"] for line in lines] == [
        PEAK_LR * cosine_lr_factor(line["step"], TOTAL_STEPS) for line in lines
    ]


# ------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_TRAINED)
def test_evaluation_counts_every_sample_once_and_does_not_depend_on_w(runs, name):
    """``val_samples`` is the split size at every W, and the accuracy each launch reports for
    its final weights equals a one-process evaluation of the checkpoint it saved."""
    seq = runs[name]
    for line in seq.launches[-1].metrics:
        assert line["val_samples"] == NUM_VAL
    for item in seq.launches:
        last = item.metrics[-1]
        assert last["epoch"] == item.until_epoch and last["test_samples"] == NUM_TEST
        val, test = evaluate_checkpoint(item.checkpoint, seq.model, seq.hparams)
        assert (last["val_accuracy"], last["test_accuracy"]) == (val, test), f"W={item.world_size}"


# ------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", RESIZED)
def test_parameters_match_the_uninterrupted_w1_run(runs, name):
    reference = runs["reference"].launches[-1].checkpoint
    final = runs[name].launches[-1].checkpoint
    assert final["model"].keys() == reference["model"].keys()
    worst = 0.0
    for key, tensor in reference["model"].items():
        difference = (final["model"][key] - tensor).abs().max().item()
        worst = max(worst, difference)
        assert difference <= PARAM_ATOL, f"{key}: differs by {difference:.3g}"
    # momentum buffers (optimizer state) too
    for index, state in reference["optimizer"]["state"].items():
        difference = (
            (final["optimizer"]["state"][index]["momentum_buffer"] - state["momentum_buffer"]).abs().max()
        )
        assert difference.item() <= PARAM_ATOL * 10, f"momentum buffer {index}: {difference.item():.3g}"
    print(f"{name}: largest parameter difference from the W=1 run {worst:.3g}")


# ------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_TRAINED)
def test_checkpoints_are_w_independent_and_load_strictly(runs, name):
    from seer_torch.models import build_model

    seq = runs[name]
    for item in seq.launches:
        state = item.checkpoint
        assert not any(key.startswith(("module.", "_orig_mod.")) for key in state["model"])
        build_model(
            seq.model, num_classes=10, in_channels=1, image_size=8, **model_hparams(seq.hparams)
        ).load_state_dict(state["model"], strict=True)
        assert (state["epoch"], state["step"], state["samples_seen"]) == (
            item.until_epoch,
            item.until_epoch * STEPS_PER_EPOCH,
            item.until_epoch * STEPS_PER_EPOCH * GLOBAL_BATCH,
        )
        assert state["scheduler"]["last_epoch"] == state["step"]
        assert state["global_batch"] == GLOBAL_BATCH
        assert {"torch_cpu", "python"} <= set(state["rng"])
        assert len(state["optimizer"]["state"]) == len(list(state["model"].keys())) - sum(
            1 for key in state["model"] if "running" in key or "num_batches" in key
        )


def test_restart_at_the_same_w_is_bitwise_the_uninterrupted_run(runs):
    """Everything carries over a restart -- weights, momentum, scheduler, torch RNG state, counters:
    W = 1 for epoch 1, restart, W = 1 for epochs 2-3 is bit for bit the one-launch run."""
    a = runs["restart-1-1"].launches[-1].checkpoint
    b = runs["reference"].launches[-1].checkpoint

    def same(x, y, where):
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y), where
        elif isinstance(x, dict):
            assert x.keys() == y.keys(), where
            for key in x:
                # Python's random is not used in training and not seeded: a fresh launch starts
                # it from the OS, so only a resumed one has a reproducible state.
                if key != "trial_id" and f"{where}.{key}" != "checkpoint.rng.python":
                    same(x[key], y[key], f"{where}.{key}")
        elif isinstance(x, (list, tuple)):
            assert len(x) == len(y), where
            for i, (u, v) in enumerate(zip(x, y)):
                same(u, v, f"{where}[{i}]")
        else:
            assert x == y, where

    same(a, b, "checkpoint")
    assert [line["train_loss"] for line in runs["restart-1-1"].launches[-1].metrics] == [
        line["train_loss"] for line in runs["reference"].launches[-1].metrics
    ]


def test_batchnorm_statistics_carry_over_between_w1_and_w2(runs):
    """W = 2 -> 1 -> 2: every checkpoint loads in the other W; BatchNorm's update count keeps
    growing by rank 0's forwards per step (accum_steps: 2 at W = 2, 4 at W = 1), so the running
    statistics were loaded, not reset, at each resize."""
    seq = runs["bn-2-1-2"]
    counts = [item.checkpoint["model"]["features.0.1.num_batches_tracked"].item() for item in seq.launches]
    assert counts == [STEPS_PER_EPOCH * 2, STEPS_PER_EPOCH * (2 + 4), STEPS_PER_EPOCH * (2 + 4 + 2)]
    for before, after in zip(seq.launches, seq.launches[1:]):
        # the running mean moved on from the loaded one, by an EMA (momentum 0.1) of 26 x accum
        # micro-batch means: it neither stayed nor restarted from 0
        old = before.checkpoint["model"]["features.0.1.running_mean"]
        new = after.checkpoint["model"]["features.0.1.running_mean"]
        assert not torch.equal(old, new)


# ------------------------------------------------------------------------------------------
# Crash, TensorBoard, writers
# ------------------------------------------------------------------------------------------


def test_crash_left_debris_that_the_resume_removed(runs):
    seq = runs["crash-2-kill-3"]
    # the crashed launch got past the checkpoint (epoch 1) before it died ...
    assert [line["epoch"] for line in seq.killed.metrics] == [1, 2]
    assert seq.killed.metrics[1]["world_size"] == 2
    assert seq.killed.checkpoint["epoch"] == 1
    # ... and after the resume at W = 3 nothing of it remains past the checkpoint
    lines = seq.launches[-1].metrics
    assert [(line["epoch"], line["world_size"]) for line in lines] == [(1, 1), (2, 3), (3, 3)]
    scalars = tensorboard_scalars(seq.trial_dir / "tensorboard")
    assert [value for _, value in scalars["perf/world_size"]] == [1, 3, 3]
    reference = tensorboard_scalars(runs["reference"].trial_dir / "tensorboard")
    # the train/lr curve is exactly the uninterrupted run's
    assert scalars["train/lr"] == reference["train/lr"]
    replayed_losses = [value for step, value in scalars["train/loss"] if step > STEPS_PER_EPOCH]
    record_steps = {line["step"] for line in read_records(seq.launches[-1].record)}
    assert len(replayed_losses) == len(record_steps) == 2 * STEPS_PER_EPOCH


@pytest.mark.parametrize("name", ALL_TRAINED)
def test_tensorboard_steps_increase_and_one_run_directory(runs, name):
    seq = runs[name]
    tb_dir = seq.trial_dir / "tensorboard"
    files = tensorboard_files(tb_dir)
    assert {path.parent for path in files} == {tb_dir}, "a trial has one TensorBoard run directory"
    # only global rank 0 writes: one event file per launch that trained
    launches = len(seq.launches) + (1 if seq.killed else 0)
    assert len(files) == launches
    scalars = tensorboard_scalars(tb_dir)
    epochs = seq.launches[-1].until_epoch
    for tag, points in scalars.items():
        steps = [step for step, _ in points]
        assert all(a < b for a, b in zip(steps, steps[1:])), f"{tag}: steps {steps}"
    assert [step for step, _ in scalars["train/loss"]] == list(range(1, epochs * STEPS_PER_EPOCH + 1))
    assert [step for step, _ in scalars["val/accuracy"]] == [
        STEPS_PER_EPOCH * e for e in range(1, epochs + 1)
    ]
    assert [value for _, value in scalars["perf/world_size"]] == _world_per_epoch(seq)


@pytest.mark.parametrize("launch_index", [1, 2])
def test_two_nodes_global_and_local_ranks(runs, launch_index):
    """torchrun --nnodes 2 with a c10d rendezvous: global ranks 0..W-1, local ranks 0..nproc-1
    on each node; only global rank 0 wrote (one metrics line per epoch and one TensorBoard file
    per launch are checked above; here: rank 0 of node 2 is not global rank 0)."""
    item = runs["nodes-1-2x1-2x2"].launches[launch_index]
    assert item.nodes == 2
    records = read_records(item.record)
    nproc = item.world_size // 2
    pairs = {(line["rank"], line["local_rank"]) for line in records}
    assert {rank for rank, _ in pairs} == set(range(item.world_size))
    assert {local for _, local in pairs} == set(range(nproc))
    assert {rank - local for rank, local in pairs} == {0, nproc}  # two nodes, nproc each
    assert sum(1 for rank, local in pairs if local == 0 and rank != 0) == 1  # a second "local rank 0"
