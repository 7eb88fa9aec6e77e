"""The CIFAR-10 ResNet example (examples/cifar_resnet/train.py) under real torchrun on CPU/gloo,
on a tiny synthetic folder in torchvision's layout (seer_torch.cifar_synthetic): epoch 1 at
W = 1, resized to W = 2 from its checkpoint for epoch 2, against an uninterrupted W = 1 run;
and a folder without the data named with the layout it needs. Three launches of a few seconds.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seer_torch.cifar_synthetic import write_synthetic_cifar10

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "cifar_resnet" / "train.py"
# resnet10 with torchvision's stem: 8x8 feature maps after the stem, fast on one CPU thread.
ARGS = ["--arch", "resnet10", "--imagenet-stem", "--val-size", "64", "--train-subset", "128"]
LAUNCH_TIMEOUT_S = 180
# Relative tolerance between the resized run's weights and the uninterrupted run's after 8 SGD
# steps: the same samples, crops, flips, global batch and learning rates; W = 1 sums two
# micro-batch gradients, W = 2 averages two ranks', so only float32 summation order differs.
# Any change of order, augmentation or step size moves the weights by far more (lr 0.05).
RELATIVE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory) -> Path:
    return Path(write_synthetic_cifar10(tmp_path_factory.mktemp("cifar"), num_train=5001, num_test=48))


def _trial_dir(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({
        "trial_id": root.name, "configuration": {"lr": 0.05, "weight_decay": 5e-4},
        # micro_batch_max 16: W = 1 accumulates 2 micro-batches, W = 2 one each (the same samples)
        "global_batch": 32, "micro_batch_max": 16, "max_epochs": 2, "seed": 0, "tensorboard_dir": None}))
    return root


def _torchrun(trial_dir: Path, world_size: int, until_epoch: int,
              data_dir: Path) -> subprocess.CompletedProcess:
    """Launch the script as the tuner's local backend does (argv list, trial in the environment)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SEER_TRIAL_DIR": str(trial_dir),
           "SEER_UNTIL_EPOCH": str(until_epoch), "CIFAR10_DIR": str(data_dir)}
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
            "--nproc-per-node", str(world_size), "--max-restarts", "0", "--monitor-interval", "0.1",
            "--log-dir", str(trial_dir / "torchrun_logs"), str(SCRIPT), *ARGS]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)


def _ok(trial_dir: Path, world_size: int, until_epoch: int, data_dir: Path) -> None:
    res = _torchrun(trial_dir, world_size, until_epoch, data_dir)
    assert res.returncode == 0, f"W={world_size} until {until_epoch}:\n{res.stdout}\n{res.stderr[-4000:]}"


def _metrics(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]


def _parameters(trial_dir: Path) -> dict[str, torch.Tensor]:
    """The model's trained weights in the checkpoint (BatchNorm's running statistics left out:
    under DDP they follow rank 0's micro-batches, see the example's docstring)."""
    state = torch.load(trial_dir / "checkpoint.pt", weights_only=True)["state"]["model"]
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return {k: v for k, v in state.items() if not k.endswith(buffers)}


def test_resized_to_w2_it_trains_as_at_w1(tmp_path, cifar_dir):
    resized, straight = _trial_dir(tmp_path / "resized"), _trial_dir(tmp_path / "straight")
    _ok(resized, 1, 1, cifar_dir)
    _ok(resized, 2, 2, cifar_dir)  # relaunched from epoch 1's checkpoint at W = 2
    _ok(straight, 1, 2, cifar_dir)
    a, b = _metrics(resized), _metrics(straight)
    assert [(r["epoch"], r["world_size"], r["step"]) for r in a] == [(1, 1, 4), (2, 2, 8)]
    assert [(r["epoch"], r["world_size"]) for r in b] == [(1, 1), (2, 1)]
    for r in a + b:
        assert 0.0 <= r["val_accuracy"] <= 1.0 and r["val_loss"] > 0 and math.isfinite(r["train_loss"])
    assert "test_accuracy" in a[1] and "test_accuracy" in b[1] and "test_accuracy" not in a[0]
    # Training does not depend on W: the same losses and weights after the resize.
    assert a[1]["train_loss"] == pytest.approx(b[1]["train_loss"], rel=RELATIVE_TOLERANCE)
    pa, pb = _parameters(resized), _parameters(straight)
    assert pa.keys() == pb.keys() and len(pa) > 10
    for name in pa:
        assert torch.allclose(pa[name], pb[name], rtol=RELATIVE_TOLERANCE, atol=1e-6), name
    # ... and the weights moved: the comparison would catch a resize that trained nothing.
    first = torch.load(resized / "checkpoint.prev.pt", weights_only=True)["state"]["model"]
    assert not torch.allclose(first["fc.weight"], pa["fc.weight"])


def test_a_folder_without_cifar10_names_the_layout(tmp_path):
    """The script's loader, imported (no launch): the error names the folder and the layout."""
    spec = importlib.util.spec_from_file_location("cifar_resnet_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(FileNotFoundError) as error:
        module.load(str(tmp_path / "empty"), val_size=64, train_subset=0, test_subset=0)
    folder = str(tmp_path / "empty" / "cifar-10-batches-py")
    for word in (folder, "data_batch_1", "test_batch", "batches.meta", "CIFAR10_DIR"):
        assert word in str(error.value)
