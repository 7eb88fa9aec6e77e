"""End to end: `seer tune` with a tiny budget runs real torchrun jobs and leaves its files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seer_torch.backends.local import descendant_pids

pytestmark = pytest.mark.integration

TINY = """
name = "tiny"
seed = 1
[data]
dataset = "digits"
[model]
name = "digits_cnn"
[training]
max_epochs = 3
min_epochs = 1
eta = 2
global_batch = 64
micro_batch_max = 64
[budget]
time_budget_s = 150
money_budget_usd = 0.5
[resources]
num_slots = 2
world_size_ladder = [1, 2]
[search]
max_configurations = 4
[search_space]
lr = { distribution = "loguniform", low = 0.05, high = 0.3 }
weight_decay = 0.0005
width = { choices = [16] }
dropout = 0.0
"""


def _seer(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "seer_torch.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=400,
    )


def test_seer_tune_tiny_budget(tmp_path: Path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    run_dir = tmp_path / "run"
    proc = _seer("tune", str(cfg), "--run-dir", str(run_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    res = json.loads((run_dir / "results.json").read_text())
    b = res["budget"]
    assert b["time_used_s"] <= b["time_budget_s"]
    assert b["cost_usd"] <= b["money_budget_usd"]
    assert b["cost_usd"] > 0
    assert res["policy"] == "seer"
    # The plan fits: 4 configurations, rungs ending at max_epochs, the answer trained fully.
    assert res["plan"]["feasible"] is True
    rungs = [r["rung_epoch"] for r in res["rounds"]]
    assert rungs == sorted(set(rungs)) and rungs[-1] == 3
    assert all(r["completed"] for r in res["rounds"])
    assert len(res["trials"]) == res["plan"]["num_configurations"] >= 2
    best = res["best"]
    assert best["epochs"] == 3
    assert 0.5 < best["val_accuracy"] <= 1.0
    assert 0.5 < best["test_accuracy"] <= 1.0
    # Survivor counts shrink round by round; eliminated trials stop where they were eliminated.
    counts = [r["num_trials"] for r in res["rounds"]]
    assert counts == sorted(counts, reverse=True) and counts[-1] >= 1
    finals = [t for t in res["trials"] if t["epochs"] == 3]
    assert best["trial_id"] in {t["trial_id"] for t in finals}
    for t in res["trials"]:
        assert t["status"] in ("eliminated", "completed")
        assert len(t["world_sizes"]) >= 1
        metrics = (run_dir / "trials" / t["trial_id"] / "metrics.jsonl").read_text()
        rows = [json.loads(line) for line in metrics.splitlines()]
        assert [r["epoch"] for r in rows] == list(range(1, t["epochs"] + 1))
        assert (run_dir / "trials" / t["trial_id"] / "checkpoint.pt").exists()
    # The files a run leaves.
    for name in ("experiment.toml", "state.json", "profile.json"):
        assert (run_dir / name).exists(), name
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "finished"
    # The page the run kept fresh, drawn once more at its end: the run as it finished.
    page = (run_dir / "report.html").read_text()
    assert f"report: {run_dir / 'report.html'}" in proc.stdout
    assert "In progress" not in page and "http-equiv" not in page and "Why the run ended" in page
    assert f"The answer is {best['trial_id']}" in page and page.count("src='data:image/png;base64,") >= 5
    assert not list(run_dir.glob(".report.html.*"))  # no half-written page left
    # One probe job, at W=2: its step time is the median of its timed windows (a load burst moves
    # one window), and it timed W=1 on both ranks in rounds; the profile's epoch is their mean.
    import statistics

    from seer_torch.scaling.profiler import PROFILE_STEPS
    from seer_torch.training.probe import W1_ROUNDS
    from seer_torch.worker import PROFILE_WINDOWS

    probe = json.loads((run_dir / "profile" / "w2" / "profile.json").read_text())
    windows = probe["step_time_windows_s"]
    assert len(windows) == PROFILE_WINDOWS and probe["measured_steps"] == PROFILE_STEPS
    assert probe["step_time_s"] == pytest.approx(statistics.median(windows))
    assert probe["throughput_samples_per_s"] == pytest.approx(
        probe["global_batch"] / statistics.median(windows)
    )
    (w1,) = probe["w1"]  # one width: no cheapest configuration to time
    rounds = w1["step_time_windows_s"]  # each round: both ranks' windows
    assert w1["ranks"] == 2 and [len(ws) for ws in rounds] == [PROFILE_WINDOWS // W1_ROUNDS * 2] * W1_ROUNDS
    assert w1["step_time_s"] == pytest.approx(statistics.fmean(statistics.median(ws) for ws in rounds))
    records = json.loads((run_dir / "profile" / "probes.json").read_text())
    measured = [(r["probe"], r["world_size"], r["job"]) for r in records]
    assert measured == [("probe", 1, "w2"), ("probe", 2, "w2")]
    prof = json.loads((run_dir / "profile.json").read_text())
    epoch = w1["num_train_samples"] / w1["throughput_samples_per_s"] + w1["eval_time_s"]
    assert prof["epoch_time_s"] == pytest.approx(epoch) == records[0]["epoch_time_s"]
    speedup = probe["throughput_samples_per_s"] / w1["throughput_samples_per_s"]
    assert prof["speedup"][1] == pytest.approx(speedup)
    assert 0 < prof["startup_s"] == pytest.approx(records[0]["job_s"] - probe["probe_work_s"])
    # TensorBoard: each trial's run is named after its configuration (the fixed hyperparameters
    # left out), the report's figures are images under experiment/, and the HParams tab lists
    # every trial with its configuration and the last value its worker logged of the metric.
    tb = run_dir / "tensorboard"
    assert (tb / "experiment").is_dir()
    for t in res["trials"]:
        assert t["tensorboard_run"] == f"{t['trial_id']}_lr={t['config']['lr']:.4g}"
        assert (tb / t["tensorboard_run"]).is_dir()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from seer_torch.report import FIGURES
    from seer_torch.testing import hparams_tab

    panels = EventAccumulator(str(tb / "experiment"), size_guidance={"images": 0})
    panels.Reload()
    assert sorted(panels.Tags()["images"]) == sorted(f"experiment/{name}" for name in FIGURES)
    assert all(len(panels.Images(tag)[0].encoded_image_string) > 5000 for tag in panels.Tags()["images"])
    experiment, rows = hparams_tab(tb, sort_by="val_accuracy")
    assert {"val_accuracy", "val_loss", "train_loss"} <= {m.name.tag for m in experiment.metric_infos}
    assert sorted(r["run"] for r in rows) == sorted(t["tensorboard_run"] for t in res["trials"])
    by_run = {t["tensorboard_run"]: t for t in res["trials"]}
    for r in rows:
        t = by_run[r["run"]]
        assert r["hparams"]["lr"] == t["config"]["lr"] and r["hparams"]["width"] == 16
        assert (r["hparams"]["status"], r["hparams"]["epochs"]) == (t["status"], t["epochs"])
        assert r["hparams"]["answer"] == (t["trial_id"] == best["trial_id"])
        assert r["metrics"]["val_accuracy"] == pytest.approx(t["val_accuracy"], rel=1e-6)
    values = [r["metrics"]["val_accuracy"] for r in rows]
    assert values == sorted(values, reverse=True)
    # Every trial's TensorBoard steps strictly increase (the checker exits 1 otherwise).
    repo = Path(__file__).resolve().parents[2]
    check = subprocess.run(
        [sys.executable, str(repo / "scripts" / "check_tensorboard.py"), str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "train/loss" in check.stdout
    assert f"HParams: {len(res['trials'])} trial(s)" in check.stdout
    # Nothing the run started is still alive.
    assert not [p for p in descendant_pids(os.getpid())]


def _default_without_keep_alive(folder: Path) -> Path:
    """The embedded default experiment with ``[resources] keep_alive = false``."""
    from seer_torch.config import default_experiment_path

    text = default_experiment_path().read_text()
    assert "\n[resources]\n" in text
    path = folder / "relaunching.toml"
    path.write_text(text.replace("\n[resources]\n", "\n[resources]\nkeep_alive = false\n"))
    return path


def test_seer_plan_launches_nothing(tmp_path: Path):
    proc = _seer("plan", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["plan"]["feasible"] is True
    assert out["plan"]["rounds"][-1]["rung_epoch"] == 81  # the default max_epochs
    last = out["plan"]["rounds"][-1]
    # One finalist at least: the rounds' eta rounding may carry a few more to the last rung.
    assert out["plan"]["num_finalists"] == 1 and 1 <= last["num_trials"] <= 3
    # Jobs relaunched at every rung (keep_alive = false) cost a start-up each: the same deadline
    # explores fewer configurations, and the deadline binds, so the lone finalist is widened to
    # both slots (SEER's widening, issue 13). Kept alive, the cheaper rounds explore more.
    folder = tmp_path.parent / f"{tmp_path.name}-cfg"
    folder.mkdir()
    relaunching_cfg = str(_default_without_keep_alive(folder))
    relaunching = json.loads(_seer("plan", relaunching_cfg, "--json", cwd=tmp_path).stdout)
    last_relaunching = relaunching["plan"]["rounds"][-1]
    assert last_relaunching["world_size"] == 2 and last_relaunching["waves"] == 1
    assert out["plan"]["num_configurations"] > relaunching["plan"]["num_configurations"]
    # The shipped profile is a slow day's (1.92 s an epoch, 11.6 s start-up) and the plan leaves
    # out the 4 batches of probes seer tune runs first: 14 configurations (a tune run measuring
    # 1.3-1.5 s and 8-9 s ran 26-32).
    assert out["plan"]["num_configurations"] >= 12
    assert out["profiling_s"] > 0
    assert list(tmp_path.iterdir()) == []  # no run directory, nothing written


def test_seer_plan_too_short_deadline_shows_best_effort(tmp_path: Path):
    # One epoch: 1 s on one worker, 1.8x on two; 5 s per launch. A fully trained configuration
    # needs 5 + 27 / 1.8 = 20 s at best; 15 s (0.9 x (15 - 3 s grace) = 10.8 s usable) is too
    # short, and the best effort trains one configuration at W=2 to 10 epochs (5 + 10/1.8 <= 10.8).
    prof = tmp_path / "p.json"
    prof.write_text(
        json.dumps(
            {
                "world_sizes": [1, 2],
                "speedup": [1.0, 1.8],
                "epoch_time_s": 1.0,
                "startup_s": 5.0,
                "resize_s": 5.0,
            }
        )
    )
    # Jobs relaunched at every rung (keep_alive = false): kept alive, a warm start of a fraction
    # of a second makes exploring 4 configurations fit instead (EXPLORATION FIRST).
    folder = tmp_path.parent / f"{tmp_path.name}-cfg"
    folder.mkdir()
    cfg = str(_default_without_keep_alive(folder))
    args = ("plan", cfg, "--profile", str(prof), "--time-budget", "15", "--slots", "2")
    out = json.loads(_seer(*args, "--json", cwd=tmp_path).stdout)["plan"]
    assert out["feasible"] is False
    assert out["target_epochs"] == 10
    assert [r["world_size"] for r in out["rounds"]] == [2]
    text = _seer(*args, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "BEST EFFORT" in text.stdout and "too short" in text.stdout
    # Nothing fits at all: it says so and exits 1, as seer tune would without an answer.
    none = _seer("plan", cfg, "--profile", str(prof), "--time-budget", "4", cwd=tmp_path)
    assert none.returncode == 1 and "NO PLAN" in none.stdout


def test_seer_tune_bad_input_exits_2_and_launches_nothing(tmp_path: Path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(TINY.replace("eta = 2", "eta = 1"))
    proc = _seer("tune", str(cfg), "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "training.eta" in proc.stderr and "1" in proc.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "flag, value, reason",
    [("--time-budget", "3", "deadline reached"), ("--money-budget", "0.001", "money budget reached")],
)
def test_budget_too_small_to_profile_is_never_exceeded(tmp_path: Path, flag, value, reason):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    run_dir = tmp_path / "run"
    proc = _seer("tune", str(cfg), "--run-dir", str(run_dir), flag, value, cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # no answer
    res = json.loads((run_dir / "results.json").read_text())
    b = res["budget"]
    assert b["time_used_s"] <= b["time_budget_s"]
    assert b["cost_usd"] <= b["money_budget_usd"]
    assert res["best"] is None
    assert res["stop_reason"].startswith(reason) and "profiling" in res["stop_reason"]
    assert not descendant_pids(os.getpid())


def test_sigterm_stops_every_job_and_keeps_what_was_done(tmp_path: Path):
    import signal
    import time

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    prof = tmp_path / "profile.json"  # given, so that no probe job runs before round 1
    prof.write_text(
        json.dumps(
            {
                "world_sizes": [1, 2],
                "speedup": [1.0, 1.5],
                "epoch_time_s": 0.5,
                "startup_s": 8.0,
                "resize_s": 8.0,
            }
        )
    )
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seer_torch.cli",
            "tune",
            str(cfg),
            "--run-dir",
            str(run_dir),
            "--profile",
            str(prof),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # wait until round 1 has jobs running
            state = run_dir / "state.json"
            if state.exists() and any(
                t["status"] == "running" for t in json.loads(state.read_text())["trials"]
            ):
                break
            time.sleep(0.2)
        else:
            pytest.fail("round 1 never started")
        time.sleep(2.0)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    res = json.loads((run_dir / "results.json").read_text())
    assert res["stop_reason"] == "interrupted"
    assert res["budget"]["cost_usd"] > 0
    stopped = [t for t in res["trials"] if t["status"] == "stopped"]
    assert stopped  # the jobs that were running are recorded as stopped, not lost
    assert json.loads((run_dir / "state.json").read_text())["status"] == "interrupted"
    time.sleep(0.5)
    assert not descendant_pids(os.getpid())
    assert not _processes_mentioning(str(run_dir))


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = (
                    Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                )
            except OSError:
                continue
            if text in cmd:
                found.append(int(entry))
    return found
