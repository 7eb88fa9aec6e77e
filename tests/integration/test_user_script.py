"""A user's torchrun script on the trial API (examples/tabular_mlp/train.py) under real torchrun
on CPU/gloo: trained to epoch 2 at W = 1, resized to W = 2 from its checkpoint to epoch 4, and
compared with an uninterrupted W = 1 run. Three launches of a few seconds each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seer_torch.data import epoch_permutation

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "tabular_mlp" / "train.py"
GLOBAL_BATCH = 32
NUM_TRAIN = 569 - 569 // 5  # breast cancer, 20% held out for validation
LAUNCH_TIMEOUT_S = 120
# Relative tolerance between the resized run and the uninterrupted one. Both train the same
# samples in the same order with the same global batch; W = 1 sums two micro-batch gradients
# (accumulation), W = 2 averages two ranks' (DDP), so only float32 summation order differs:
# about 1e-7 relative per operation; after 28 more AdamW steps the losses differ by ~1e-7
# relative (measured), so 1e-5 leaves a margin of 100 while any change of data, batch or
# learning rate moves them by far more (one step of lr 0.003 changes the loss by ~1e-2).
RELATIVE_TOLERANCE = 1e-5


def _config(trial_dir: Path) -> None:
    trial_dir.mkdir(parents=True)
    (trial_dir / "config.json").write_text(json.dumps({
        "trial_id": trial_dir.name,
        "configuration": {"lr": 0.003, "weight_decay": 0.01, "width": 32, "depth": 2},
        "model": None, "dataset": None, "data_dir": None,
        # micro_batch_max 16: W = 1 accumulates 2 micro-batches, W = 2 none (one each)
        "global_batch": GLOBAL_BATCH, "micro_batch_max": 16, "max_epochs": 4, "seed": 0,
        "tensorboard_dir": None,
    }))


def _torchrun(trial_dir: Path, world_size: int, until_epoch: int, **env_extra: str) -> None:
    """Launch the script as the tuner's local backend does (argv list, trial in the environment)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEER_TRIAL_DIR": str(trial_dir),
           "SEER_UNTIL_EPOCH": str(until_epoch), **env_extra}
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
            "--nproc-per-node", str(world_size), "--max-restarts", "0", "--monitor-interval", "0.1",
            "--log-dir", str(trial_dir / "torchrun_logs"), str(SCRIPT), "--dataset", "breast_cancer"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert result.returncode == 0, f"W={world_size} until {until_epoch}:\n{result.stdout}\n{result.stderr}"


def _metrics(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.integration
def test_a_user_script_resized_from_w1_to_w2_continues_the_w1_curve(tmp_path):
    resized, straight = tmp_path / "resized", tmp_path / "straight"
    _config(resized)
    _config(straight)
    _torchrun(resized, 1, 2)
    assert json.loads((resized / "checkpoint.json").read_text())["epoch"] == 2
    _torchrun(resized, 2, 4, SEER_RECORD_SAMPLES=str(tmp_path / "samples"))
    _torchrun(straight, 1, 4)

    rows = _metrics(resized)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert [r["world_size"] for r in rows] == [1, 1, 2, 2]
    steps_per_epoch = NUM_TRAIN // GLOBAL_BATCH
    assert [r["step"] for r in rows] == [steps_per_epoch * e for e in (1, 2, 3, 4)]
    assert json.loads((resized / "checkpoint.json").read_text()) == {"epoch": 4, "step": 4 * steps_per_epoch}
    assert torch.load(resized / "checkpoint.prev.pt", weights_only=True)["epoch"] == 2
    assert all(r["val_accuracy"] > 0.8 for r in rows)  # it learns: the classes are about 63/37

    # At W = 2 each global batch is the permutation's next 32 samples, rank r taking its r-th 16.
    by_rank = [[json.loads(x) for x in Path(f"{tmp_path / 'samples'}.rank{r}").read_text().splitlines()]
               for r in (0, 1)]
    for line0, line1 in zip(*by_rank, strict=True):
        start = line0["step_in_epoch"] * GLOBAL_BATCH
        expected = epoch_permutation(0, line0["epoch"], NUM_TRAIN)[start:start + GLOBAL_BATCH].tolist()
        assert line0["indices"] + line1["indices"] == expected

    reference = _metrics(straight)
    for epoch in (3, 4):
        for key in ("train_loss", "val_loss"):
            assert rows[epoch - 1][key] == pytest.approx(reference[epoch - 1][key], rel=RELATIVE_TOLERANCE)
    # Within float order of each other, yet not bit-identical copies: W = 2 really ran.
    assert rows[2]["world_size"] == 2 and reference[2]["world_size"] == 1
