"""The real worker under real torchrun on CPU/gloo: resize W = 1 -> 2 -> 1 across checkpoints.

Each launch starts a torchrun agent and W worker processes (several seconds each on a small
machine), so the trial is tiny: digits, width 4, three epochs of 19 optimizer steps.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

GLOBAL_BATCH = 64
NUM_TRAIN = 1257  # digits training split
NUM_VAL = 270
STEPS_PER_EPOCH = NUM_TRAIN // GLOBAL_BATCH  # 19, drop_last
LAUNCH_TIMEOUT_S = 120


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _torchrun(trial_dir, world_size: int, until_epoch: int) -> subprocess.CompletedProcess:
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(world_size),
        "--log-dir",
        str(Path(trial_dir).parent / "torchrun_logs"),
        "-m",
        "seer_torch.worker",
        "--trial-dir",
        str(trial_dir),
        "--until-epoch",
        str(until_epoch),
    ]
    result = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert result.returncode == 0, (
        f"W={world_size} until {until_epoch} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result


def _metrics(trial_dir) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.integration
def test_resize_1_2_1_continues_exactly(tmp_path):
    trial_dir = tmp_path / "t0001"
    trial_dir.mkdir()
    tensorboard_dir = tmp_path / "tensorboard" / "t0001"
    config = {
        "trial_id": "t0001",
        "configuration": {"lr": 0.1, "weight_decay": 5e-4, "width": 4, "dropout": 0.1},
        "model": "digits_cnn",
        "dataset": "digits",
        "data_dir": None,
        # micro_batch_max 16: W=1 accumulates 4 micro-batches, W=2 accumulates 2 (no_sync path)
        "global_batch": GLOBAL_BATCH,
        "micro_batch_max": 16,
        "max_epochs": 3,
        "seed": 0,
        "tensorboard_dir": str(tensorboard_dir),
    }
    (trial_dir / "config.json").write_text(json.dumps(config))

    _torchrun(trial_dir, 1, 1)
    # A crashed launch may leave lines past the checkpoint, one of them cut short: the next
    # launch must drop them.
    with open(trial_dir / "metrics.jsonl", "a") as file:
        file.write(json.dumps({"epoch": 2, "step": 999}) + "\n" + '{"epoch": 3, "st')
    _torchrun(trial_dir, 2, 2)
    _torchrun(trial_dir, 1, 3)

    lines = _metrics(trial_dir)
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    assert [line["world_size"] for line in lines] == [1, 2, 1]
    assert [(line["micro_batch"], line["accum_steps"]) for line in lines] == [(16, 4), (16, 2), (16, 4)]
    for line in lines:
        assert line["step"] == line["epoch"] * STEPS_PER_EPOCH
        assert line["samples_seen"] == line["step"] * GLOBAL_BATCH
        assert line["val_samples"] == NUM_VAL
        assert 0.0 <= line["val_accuracy"] <= 1.0 and line["train_loss"] > 0
        assert line["throughput_samples_per_s"] > 0 and line["epoch_time_s"] > 0
        assert "test_accuracy" in line  # every launch here ends after one epoch
        assert line["test_samples"] == NUM_VAL
    assert lines[0]["train_loss"] > lines[2]["train_loss"]  # it trains
    # The schedule is a function of the optimizer step: cosine from 0.1 to 0 over 3 epochs, at any W.
    assert [line["lr"] for line in lines] == pytest.approx(
        [0.1 * 0.5 * (1 + math.cos(math.pi * epoch / 3)) for epoch in (1, 2, 3)], abs=1e-12
    )

    # The checkpoint: unwrapped keys, loads strictly into a fresh model, counters exact.
    saved = torch.load(trial_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert (saved["format"], saved["epoch"], saved["step"], saved["samples_seen"]) == (
        "seer-trial-1",
        3,
        3 * STEPS_PER_EPOCH,
        3 * STEPS_PER_EPOCH * GLOBAL_BATCH,
    )
    state = saved["state"]
    assert not any(key.startswith(("module.", "_orig_mod.")) for key in state["model"])
    assert state["scheduler"]["last_epoch"] == 3 * STEPS_PER_EPOCH
    from seer_torch.models import build_model

    fresh = build_model("digits_cnn", num_classes=10, in_channels=1, image_size=8, width=4, dropout=0.1)
    fresh.load_state_dict(state["model"], strict=True)
    # BatchNorm statistics carry over: rank 0 ran accum_steps forwards per step at each W.
    tracked = STEPS_PER_EPOCH * (4 + 2 + 4)
    assert state["model"]["features.0.1.num_batches_tracked"].item() == tracked

    # TensorBoard: one train/loss point per optimizer step, steps 1..57, none twice, none back.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    loss_steps = [event.step for event in accumulator.Scalars("train/loss")]
    assert loss_steps == list(range(1, 3 * STEPS_PER_EPOCH + 1))
    assert [event.step for event in accumulator.Scalars("val_accuracy")] == [19, 38, 57]
    assert [event.value for event in accumulator.Scalars("perf/world_size")] == [1, 2, 1]
    learning_rates = [event.value for event in accumulator.Scalars("train/lr")]
    assert all(a > b for a, b in zip(learning_rates, learning_rates[1:]))  # cosine, by step, across W
    assert learning_rates[-1] == pytest.approx(0.0, abs=1e-7)


@pytest.mark.integration
def test_until_epoch_already_reached_exits_without_training(tmp_path):
    from seer_torch.worker import write_default_config

    trial_dir = tmp_path / "t"
    write_default_config(str(trial_dir))
    config = json.loads((trial_dir / "config.json").read_text())
    config["configuration"]["width"] = 4
    config["tensorboard_dir"] = None
    (trial_dir / "config.json").write_text(json.dumps(config))
    argv = [sys.executable, "-m", "seer_torch.worker", "--trial-dir", str(trial_dir), "--until-epoch", "1"]
    subprocess.run(argv, env=_env(), check=True, timeout=LAUNCH_TIMEOUT_S, capture_output=True)
    before = (trial_dir / "checkpoint.pt").stat().st_mtime_ns, (trial_dir / "metrics.jsonl").read_text()
    subprocess.run(argv, env=_env(), check=True, timeout=LAUNCH_TIMEOUT_S, capture_output=True)
    assert (
        (trial_dir / "checkpoint.pt").stat().st_mtime_ns,
        (trial_dir / "metrics.jsonl").read_text(),
    ) == before


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one_step_trial(trial_dir: Path, micro_batch_max: int):
    """The trial (W from the environment) and the worker's config of a case-9 trial folder."""
    from seer_torch import trial
    from seer_torch.worker import TrialConfig

    raw = {
        "trial_id": "case9",
        "configuration": {"lr": 0.1, "weight_decay": 5e-4, "width": 4, "dropout": 0.0},
        "model": "digits_cnn",
        "dataset": "digits",
        "data_dir": None,
        "global_batch": GLOBAL_BATCH,
        "micro_batch_max": micro_batch_max,
        "max_epochs": 3,
        "seed": 0,
        "tensorboard_dir": None,
    }
    trial_dir.mkdir(exist_ok=True)
    (trial_dir / "config.json").write_text(json.dumps(raw))
    return trial.init(trial_dir, 1, cpu_threads=1), TrialConfig.from_dict(raw)


def _one_step(rank: int, world_size: int, port: int, micro_batch_max: int, out_dir: str) -> None:
    """One optimizer step of the worker's Trainer at W = world_size on the trial's first
    global batch; saves the parameters."""
    from seer_torch.worker import build_trainer

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    t, config = _one_step_trial(Path(out_dir) / f"trial_r{rank}", micro_batch_max)
    with t:
        trainer = build_trainer(t, config, None)
        trainer.train_step(1, 0, next(t.train_batches(trainer.splits.num_train, 1)))
        torch.save(dict(trainer.model.named_parameters()), os.path.join(out_dir, f"w{world_size}_r{rank}.pt"))


@pytest.mark.integration
def test_accumulation_syncs_once_and_matches_one_process(tmp_path, monkeypatch):
    """Case 9: W=2 (gloo) with 2 accumulation steps; after one step the parameters are
    bit-identical on both ranks and equal a one-process run over the same 16-sample
    micro-batches (BatchNorm normalises per micro-batch) within 1e-6."""
    import torch.multiprocessing as mp

    from seer_torch.worker import build_trainer

    mp.spawn(_one_step, args=(2, _free_port(), 16, str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "w2_r0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "w2_r1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)

    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):  # this process is W = 1
        monkeypatch.delenv(name, raising=False)
    t, config = _one_step_trial(tmp_path / "reference", 16)
    reference = build_trainer(t, config, None)
    assert t.accum_steps == 4
    before = {name: p.detach().clone() for name, p in reference.model.named_parameters()}
    reference.train_step(1, 0, next(t.train_batches(reference.splits.num_train, 1)))
    t.finish()
    for name, parameter in reference.model.named_parameters():
        assert not torch.equal(parameter, before[name]) or name.endswith("bias")
        torch.testing.assert_close(rank0[name], parameter.detach(), rtol=0, atol=1e-6)


@pytest.mark.integration
def test_divergence_is_reported_without_checkpoint_and_exits_0(tmp_path):
    """A NaN loss: one line with "diverged": true, no checkpoint, exit status 0 (W=1, no torchrun)."""
    trial_dir = tmp_path / "t"
    trial_dir.mkdir()
    config = {
        "trial_id": "t",
        "configuration": {"lr": 1e30, "weight_decay": 1e30, "width": 4},
        "model": "digits_cnn",
        "dataset": "digits",
        "data_dir": None,
        "global_batch": GLOBAL_BATCH,
        "micro_batch_max": 64,
        "max_epochs": 3,
        "seed": 0,
        "tensorboard_dir": None,
    }
    (trial_dir / "config.json").write_text(json.dumps(config))
    argv = [sys.executable, "-m", "seer_torch.worker", "--trial-dir", str(trial_dir), "--until-epoch", "2"]
    subprocess.run(argv, env=_env(), check=True, timeout=LAUNCH_TIMEOUT_S, capture_output=True)
    lines = _metrics(trial_dir)
    assert len(lines) == 1 and lines[0]["diverged"] is True and lines[0]["train_loss"] is None
    assert lines[0]["epoch"] == 1 and 1 <= lines[0]["step"] < STEPS_PER_EPOCH
    assert not (trial_dir / "checkpoint.pt").exists()
