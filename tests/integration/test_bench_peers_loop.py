"""The peers in ``scripts/bench_peers.py`` train what seer's built-in worker trains: its epoch
loop (:class:`EpochLoop`, what Ray Tune's and Optuna's trials run) gives the worker's
validation and test accuracy after every epoch for the same configuration and seed at W = 1
(the same initial weights, data order, dropout seeds, optimizer and cosine schedule), so the
benchmark compares schedulers on one job. One worker launch without torchrun, two epochs of
a narrow model."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "bench_peers.py"


def _bench_peers():
    spec = importlib.util.spec_from_file_location("bench_peers", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_peers"] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


@pytest.mark.integration
def test_the_peers_loop_is_the_workers_at_w1(tmp_path):
    import torch

    bench_peers = _bench_peers()
    configuration = {"lr": 0.3, "weight_decay": 1e-4, "width": 8, "dropout": 0.3}
    trial_dir = tmp_path / "t000"
    trial_dir.mkdir()
    (trial_dir / "config.json").write_text(json.dumps({
        "trial_id": "t000", "configuration": configuration, "model": "digits_cnn", "dataset": "digits",
        "data_dir": None, "global_batch": 64, "micro_batch_max": 64, "max_epochs": 3, "seed": 1,
        "tensorboard_dir": None, "test_every_epoch": True,
    }))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "seer_torch.worker", "--trial-dir", str(trial_dir),
                           "--until-epoch", "2"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    worker = [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loop = bench_peers.EpochLoop(configuration, bench_peers.load_splits(),
                                     bench_peers.Job(max_epochs=3, seed=1))
        peers = [(loop.train_epoch(), loop.test_accuracy(), loop.optimizer.param_groups[0]["lr"])
                 for _ in range(2)]
    finally:
        torch.set_num_threads(threads)
    assert [(m["val_accuracy"], m["test_accuracy"]) for m in worker] == [(v, t) for v, t, _ in peers]
    assert [m["lr"] for m in worker] == pytest.approx([lr for _, _, lr in peers], rel=1e-12)
    assert worker[0]["val_accuracy"] != worker[1]["val_accuracy"]  # two epochs that differ were compared
