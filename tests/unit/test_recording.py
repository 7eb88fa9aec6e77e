"""`seer bench record`'s bookkeeping with a fake backend: curves from metrics, resumption,
retries, and refusing a run directory that holds another recording."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seer_torch.backends.base import JobResult, JobSpec
from seer_torch.config import parse_experiment, sample_configurations
from seer_torch.curves import LearningCurveTable
from seer_torch.errors import ConfigError, WorkerError
from seer_torch.recording import record_table, trial_curves, trial_ids

SPACE = {"lr": {"distribution": "loguniform", "low": 0.01, "high": 1.0}, "width": {"choices": [16, 32]}}


def _line(epoch, val=0.5, test=0.4, t=1.0, **extra):
    return {
        "epoch": epoch,
        "val_accuracy": val,
        "test_accuracy": test,
        "epoch_time_s": t,
        "world_size": 1,
        **extra,
    }


def test_trial_curves():
    assert trial_curves([], 2) is None
    assert trial_curves([_line(1)], 2) is None  # incomplete
    assert trial_curves([_line(1), {**_line(2), "test_accuracy": None}], 2) is None  # no test at epoch 2
    c = trial_curves([_line(1, 0.3, 0.2, 2.0), _line(2, 0.6, 0.5, 3.0)], 2)
    assert (c.val, c.test, c.epoch_times_s) == ([0.3, 0.6], [0.2, 0.5], [2.0, 3.0])
    d = trial_curves([_line(1, 0.3), {"epoch": 2, "diverged": True, "val_accuracy": None}], 4)
    assert d.val[0] == 0.3 and all(math.isnan(v) for v in d.val[1:] + d.test[1:]) and len(d.val) == 4
    assert all(math.isnan(v) for v in trial_curves([{"epoch": 1, "diverged": True}], 3).val)


def test_trial_ids_match_a_tune_run():
    assert trial_ids(3) == ["t000", "t001", "t002"]
    assert trial_ids(1001)[-1] == "t1000" and trial_ids(1001)[0] == "t0000"


@dataclass
class _Handle:
    spec: JobSpec
    start_s: float = 0.0


@dataclass
class FakeBackend:
    """Writes a trial's metrics at launch; ``fail`` trial ids exit 1 ``fail_times`` times."""

    num_slots: int = 2
    fail: dict[str, int] = field(default_factory=dict)
    diverge: set[str] = field(default_factory=set)
    launched: list[str] = field(default_factory=list)
    max_running: int = 0
    _running: int = 0

    def launch(self, spec: JobSpec) -> _Handle:
        self.launched.append(spec.trial_id)
        self._running += 1
        self.max_running = max(self.max_running, self._running)
        config = json.loads((spec.trial_dir / "config.json").read_text())
        assert config["test_every_epoch"] is True and config["max_epochs"] == spec.until_epoch
        assert spec.world_size == 1 and config["tensorboard_dir"] is None
        return _Handle(spec)

    def poll(self, handle: _Handle) -> JobResult:
        spec = handle.spec
        self._running -= 1
        if self.fail.get(spec.trial_id, 0) > 0:
            self.fail[spec.trial_id] -= 1
            return JobResult(spec, 1, 0.0, 1.0, 0.0)
        lr = json.loads((spec.trial_dir / "config.json").read_text())["configuration"]["lr"]
        lines = [
            _line(e, val=min(1.0, lr * e), test=min(1.0, lr * e) / 2, t=1.0 + e)
            for e in range(1, spec.until_epoch + 1)
        ]
        if spec.trial_id in self.diverge:
            lines = lines[:1] + [{"epoch": 2, "diverged": True, "val_accuracy": None}]
        with open(spec.trial_dir / "metrics.jsonl", "w") as f:
            f.writelines(json.dumps(x) + "\n" for x in lines)
        return JobResult(spec, 0, 0.0, 1.0, 0.0)

    def stop(self, handle: _Handle) -> JobResult:  # pragma: no cover - not reached
        raise AssertionError("nothing to stop")


def _exp(seed=0):
    return parse_experiment({"seed": seed, "search_space": SPACE})


def test_record_resume_and_table(tmp_path: Path):
    exp, run_dir, out = _exp(), tmp_path / "run", tmp_path / "table.json"
    backend = FakeBackend(num_slots=2, diverge={"t002"})
    table = record_table(exp, backend, num_configurations=4, epochs=3, run_dir=run_dir, out=out, poll_s=0.0)
    assert sorted(backend.launched) == ["t000", "t001", "t002", "t003"] and backend.max_running <= 2
    assert LearningCurveTable.load(out).to_dict()["configs"][0] == table.to_dict()["configs"][0]
    confs = sample_configurations(exp, 4)
    assert [dict(c.config) for c in table.configs] == confs and table.ids() == trial_ids(4)
    assert table.val_at(0, 2) == pytest.approx(min(1.0, confs[0]["lr"] * 2))
    assert table.test_at(0, 2) == pytest.approx(min(1.0, confs[0]["lr"] * 2) / 2)
    assert table.diverged_at(2) == 2
    assert table.epoch_time_at(0) == 3.0  # own median of 2, 3, 4
    assert table.epoch_time_s == 3.0 and table.meta["source"] == "seer bench record"

    # Resumed: nothing complete is run again; more configurations only add new trials.
    again = FakeBackend()
    record_table(exp, again, num_configurations=4, epochs=3, run_dir=run_dir, out=out, poll_s=0.0)
    assert again.launched == []
    (run_dir / "trials" / "t001" / "metrics.jsonl").write_text(json.dumps(_line(1)) + "\n")  # interrupted
    more = FakeBackend()
    bigger = record_table(exp, more, num_configurations=5, epochs=3, run_dir=run_dir, out=out, poll_s=0.0)
    assert sorted(more.launched) == ["t001", "t004"] and len(bigger) == 5


def test_failed_trial_is_retried_then_reported(tmp_path: Path):
    exp, run_dir = _exp(), tmp_path / "run"
    backend = FakeBackend(fail={"t001": 1})
    record_table(exp, backend, num_configurations=2, epochs=2, run_dir=run_dir, poll_s=0.0)
    assert backend.launched.count("t001") == 2
    backend = FakeBackend(fail={"t000": 5})
    with pytest.raises(WorkerError, match="1 of 2 configurations failed.*t000.*run the same command again"):
        record_table(exp, backend, num_configurations=2, epochs=2, run_dir=tmp_path / "run2", poll_s=0.0)


def test_run_dir_of_another_recording_is_refused(tmp_path: Path):
    run_dir = tmp_path / "run"
    record_table(_exp(), FakeBackend(), num_configurations=2, epochs=2, run_dir=run_dir, poll_s=0.0)
    with pytest.raises(ConfigError) as ei:
        record_table(_exp(), FakeBackend(), num_configurations=2, epochs=3, run_dir=run_dir, poll_s=0.0)
    assert ei.value.field == "--run-dir"
    with pytest.raises(ConfigError, match="differs"):
        (run_dir / "recording.json").write_text(
            json.dumps({**json.loads((run_dir / "recording.json").read_text()), "seed": 1})
        )
        record_table(_exp(seed=1), FakeBackend(), num_configurations=2, epochs=2, run_dir=run_dir, poll_s=0.0)
    (tmp_path / "tune" / "trials" / "t000").mkdir(parents=True)
    with pytest.raises(ConfigError, match="made by seer bench record"):
        record_table(
            _exp(), FakeBackend(), num_configurations=2, epochs=2, run_dir=tmp_path / "tune", poll_s=0.0
        )


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(num_configurations=0, epochs=2), "--configurations"),
        (dict(num_configurations=2, epochs=0), "--epochs"),
    ],
)
def test_bad_counts(tmp_path: Path, kwargs, field):
    with pytest.raises(ConfigError) as ei:
        record_table(_exp(), FakeBackend(), run_dir=tmp_path, **kwargs)
    assert ei.value.field == field


def test_cli_bad_arguments_exit_2(tmp_path: Path, capsys):
    from seer_torch.cli import main

    out = str(tmp_path / "t.json")
    assert main(["bench", "record", "--configurations", "0", "--epochs", "2", "--out", out]) == 2
    assert "--configurations: got 0" in capsys.readouterr().err
    assert (
        main(["bench", "record", "--configurations", "2", "--epochs", "2", "--slots", "0", "--out", out]) == 2
    )
    assert (
        main(
            [
                "bench",
                "record",
                "--configurations",
                "2",
                "--epochs",
                "2",
                "--out",
                str(tmp_path / "no" / "t.json"),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", "record", "--configurations", "2", "--epochs", "2", "--out", str(tmp_path)]) == 2
    assert (
        main(["bench", "record", "missing.toml", "--configurations", "2", "--epochs", "2", "--out", out]) == 2
    )
    (tmp_path / "file").write_text("")
    assert (
        main(
            [
                "bench",
                "record",
                "--configurations",
                "2",
                "--epochs",
                "2",
                "--out",
                out,
                "--run-dir",
                str(tmp_path / "file"),
            ]
        )
        == 2
    )
    with pytest.raises(SystemExit) as ei:
        main(["bench", "record", "--epochs", "2", "--out", out])
    assert ei.value.code == 2


def test_worker_reads_test_every_epoch():
    from seer_torch.executor import trial_config
    from seer_torch.recording import recording_config
    from seer_torch.worker import TrialConfig

    exp = _exp()
    conf = sample_configurations(exp, 1)[0]
    assert TrialConfig.from_dict(trial_config(exp, "t000", conf, None)).test_every_epoch is False
    recorded = TrialConfig.from_dict(recording_config(exp, "t000", conf, 7))
    assert recorded.test_every_epoch is True and recorded.max_epochs == 7 and recorded.tensorboard_dir is None
    with pytest.raises(ConfigError) as ei:
        TrialConfig.from_dict({**trial_config(exp, "t000", conf, None), "test_every_epoch": "yes"})
    assert ei.value.field == "test_every_epoch"
