"""`seer bench record` through real torchrun: 2 configurations x 2 epochs on digits, then
resumed without launching anything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seer_torch.curves import LearningCurveTable
from seer_torch.runfiles import read_metrics

pytestmark = pytest.mark.integration

TINY = """
name = "tiny-record"
seed = 3
[data]
dataset = "digits"
[model]
name = "digits_cnn"
[training]
max_epochs = 9
global_batch = 64
micro_batch_max = 64
[search_space]
lr = { distribution = "loguniform", low = 0.05, high = 0.3 }
weight_decay = 0.0005
width = { choices = [16] }
dropout = 0.0
"""


def _record(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "seer_torch.cli", "bench", "record", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_bench_record_two_by_two(tmp_path: Path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out, run_dir = tmp_path / "table.json", tmp_path / "rec"
    args = [
        str(cfg),
        "--configurations",
        "2",
        "--epochs",
        "2",
        "--slots",
        "2",
        "--out",
        str(out),
        "--run-dir",
        str(run_dir),
    ]
    proc = _record(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    table = LearningCurveTable.load(out)
    assert table.name == "tiny-record" and len(table) == 2 and table.max_epochs == 2
    assert table.ids() == ["t000", "t001"]
    for i, tid in enumerate(table.ids()):
        entry = table.configs[i]
        assert set(entry.config) == {"lr", "weight_decay", "width", "dropout"} and entry.config["width"] == 16
        assert entry.test is not None and 0.1 < table.val_at(i, 2) <= 1.0 and 0.1 < table.test_at(i, 2) <= 1.0
        assert 0.0 < table.epoch_time_at(i) < 60.0
        lines = read_metrics(run_dir / "trials" / tid / "metrics.jsonl")
        # One job per configuration, schedule spanning 2 epochs, test evaluated at every epoch.
        assert [line["epoch"] for line in lines] == [1, 2] and all(line["world_size"] == 1 for line in lines)
        assert [line["val_accuracy"] for line in lines] == list(entry.val)
        assert [line["test_accuracy"] for line in lines] == list(entry.test)
        assert (run_dir / "trials" / tid / "stdout.log").read_text().count("=== launch") == 1
        config = json.loads((run_dir / "trials" / tid / "config.json").read_text())
        assert config["max_epochs"] == 2 and config["test_every_epoch"] is True
    assert 0.0 < table.epoch_time_s < 60.0
    assert "wrote" in proc.stdout and "best t00" in proc.stdout

    # Resumed with the same run directory: nothing is launched again, the table is rewritten.
    out.unlink()
    again = _record(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 of 2 configurations already recorded" in again.stdout
    assert LearningCurveTable.load(out).to_dict()["configs"] == table.to_dict()["configs"]
    for tid in table.ids():
        assert (run_dir / "trials" / tid / "stdout.log").read_text().count("=== launch") == 1
