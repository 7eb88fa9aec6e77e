"""`launch/run_trial.sh` (issue 13, fault 11): bad input is one clear line and exit 2 before
torchrun starts; torchrun's logs stay out of the system's temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "launch" / "run_trial.sh"


def _run(trial_dir: Path, nproc: str, until: str, tmp: Path) -> subprocess.CompletedProcess:
    tmp.mkdir(exist_ok=True)
    # torchrun's default log folder is under TMPDIR
    env = {**os.environ, "PYTHON": sys.executable, "TMPDIR": str(tmp)}
    return subprocess.run(
        ["bash", str(SCRIPT), str(trial_dir), nproc, until],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _config(trial_dir: Path, **changes) -> None:
    trial_dir.mkdir()
    config = {
        "trial_id": "t",
        "model": "digits_mlp",
        "dataset": "digits",
        "data_dir": None,
        "configuration": {"lr": 0.1, "width": 16},
        "global_batch": 64,
        "micro_batch_max": 64,
        "max_epochs": 2,
        "seed": 0,
        "tensorboard_dir": None,
    }
    config.update(changes)
    (trial_dir / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "changes, nproc, until, says",
    [
        ({"configuration": {"lr": 0.1, "momentum": 1.5}}, "1", "1", "configuration.momentum: got 1.5"),
        ({}, "3", "1", "world_size: got 3"),
        ({}, "1", "5", "UNTIL_EPOCH: got 5"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_torchrun(tmp_path, changes, nproc, until, says):
    _config(tmp_path / "t", **changes)
    proc = _run(tmp_path / "t", nproc, until, tmp_path / "tmp")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and says in proc.stderr, proc.stderr
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (tmp_path / "t" / "metrics.jsonl").exists()


def test_a_run_leaves_no_torchrun_log_folder(tmp_path):
    _config(tmp_path / "t")
    proc = _run(tmp_path / "t", "1", "1", tmp_path / "tmp")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "epoch 1, step" in proc.stdout
    assert [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("torchelastic")] == []
    assert not (tmp_path / "t" / "torchrun_logs").exists()


@pytest.mark.parametrize(
    "where, nproc, says", [("proc", "1", "TRIAL_DIR: got"), ("new", "0", "NPROC: got '0'")]
)
def test_bad_arguments_write_nothing(tmp_path, where, nproc, says):
    # From the new-user check: a trial folder that cannot be made was a traceback (exit 1), and a
    # bad NPROC was refused only after the default config.json had been written.
    trial_dir = Path(f"/proc/seer-test-{os.getpid()}/t") if where == "proc" else tmp_path / "t"
    proc = _run(trial_dir, nproc, "1", tmp_path / "tmp")
    assert (
        proc.returncode == 2 and proc.stderr.splitlines() == [proc.stderr.strip()] and says in proc.stderr
    ), proc.stderr
    assert not trial_dir.exists()
