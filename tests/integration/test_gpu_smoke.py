"""GPU smoke test: the real worker on CUDA/NCCL under torchrun, W=1 then W=2 (with 2 GPUs).

Skipped without CUDA. On a GPU machine it checks that the worker picks CUDA (the profile
probe says ``device: cuda``), trains from scratch at W=1, resumes from the checkpoint at W=2
when two GPUs are there (else at W=1 again), and keeps the invariants the CPU suite checks:
fixed global batch, every validation sample counted once, counters carried over.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.integration,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

GLOBAL_BATCH = 64
NUM_TRAIN = 5000 + 640  # 5000 go to validation: 640 training samples, 10 steps per epoch
LAUNCH_TIMEOUT_S = 300


def _torchrun(trial_dir, world_size: int, *worker_args: str) -> None:
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
        *worker_args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert result.returncode == 0, f"W={world_size} {worker_args} failed:\n{result.stdout}\n{result.stderr}"


def test_worker_on_cuda_w1_then_resize(tmp_path):
    from seer_torch.cifar_synthetic import write_synthetic_cifar10

    data_dir = write_synthetic_cifar10(tmp_path / "data", num_train=NUM_TRAIN, num_test=100)
    trial_dir = tmp_path / "t0001"
    trial_dir.mkdir()
    config = {
        "trial_id": "t0001",
        "configuration": {"lr": 0.05, "weight_decay": 5e-4, "width": 8, "dropout": 0.0},
        "model": "resnet18_cifar",
        "dataset": "cifar10",
        "data_dir": data_dir,
        "global_batch": GLOBAL_BATCH,
        "micro_batch_max": 32,
        "max_epochs": 2,
        "seed": 0,
        "tensorboard_dir": str(tmp_path / "tensorboard" / "t0001"),
    }
    (trial_dir / "config.json").write_text(json.dumps(config))

    probe_out = tmp_path / "probe.json"
    _torchrun(trial_dir, 1, "--profile-steps", "5", "--profile-out", str(probe_out))
    probe = json.loads(probe_out.read_text())
    assert probe["device"] == "cuda" and probe["throughput_samples_per_s"] > 0

    _torchrun(trial_dir, 1, "--until-epoch", "1")
    second_w = 2 if torch.cuda.device_count() >= 2 else 1
    _torchrun(trial_dir, second_w, "--until-epoch", "2")

    lines = [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert [line["world_size"] for line in lines] == [1, second_w]
    steps = (NUM_TRAIN - 5000) // GLOBAL_BATCH
    assert [line["step"] for line in lines] == [steps, 2 * steps]
    for line in lines:
        assert line["world_size"] * line["micro_batch"] * line["accum_steps"] == GLOBAL_BATCH
        assert line["val_samples"] == 5000
        assert line["throughput_samples_per_s"] > 0
    assert lines[-1]["test_samples"] == 100
    # The checkpoint holds no device-specific or W-specific layout: it loads on the CPU.
    saved = torch.load(trial_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert saved["epoch"] == 2 and saved["step"] == 2 * steps
    assert not any(key.startswith("module.") for key in saved["state"]["model"])
    assert "torch_cuda" in saved["rng"]
