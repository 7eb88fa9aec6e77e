"""A run that ended by its deadline, given more time with ``seer resume RUN --time-budget +S``,
trains its answer further from its checkpoints (no saved epoch trained twice), and its report
and CSV cover both parts."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import pytest

from seer_torch.testing import run_seer, write_faults_experiment

pytestmark = pytest.mark.integration

#: About 4 s an epoch (19 steps): the fault experiment's 3 configurations to rung 1 and its
#: finalist to epoch 3 take well over the 18 s deadline on any machine (its given profile plans
#: 1.5 s epochs, so the plan fits and the deadline stops it).
SLOW = {"SEER_DEBUG_STEP_DELAY_S": "0.2"}


def _epochs_trained_since(trial_dir: Path, unix_s: float) -> list[int]:
    """The epochs a trial's jobs began training at or after ``unix_s`` (its metrics lines'
    ``train_start_unix_s``: when their launch or kept-alive segment began)."""
    rows = [json.loads(x) for x in (trial_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["epoch"] for r in rows if r["train_start_unix_s"] >= unix_s]


def test_a_run_ended_by_its_deadline_goes_on_with_more_time_from_its_checkpoints(tmp_path):
    cfg = write_faults_experiment(tmp_path, time_budget_s=18)
    run_dir = tmp_path / "run"
    first = run_seer(["tune", str(cfg), "--run-dir", str(run_dir), "--quiet"], tmp_path, env=SLOW)
    assert first.returncode in (0, 1), first.stdout[-2000:] + first.stderr[-2000:]
    before = json.loads((run_dir / "results.json").read_text())
    # Ended by its deadline: jobs stopped at it, or the policy finished when the time left could
    # not pay for the next round (which one depends on the machine's speed).
    assert "deadline" in before["stop_reason"], before["stop_reason"]
    assert before["best"] is None or before["best"]["epochs"] < 3
    durable = {t["trial_id"]: t["epochs"] for t in before["trials"]}

    # A finished run is not resumed without more budget; a budget below what was used is refused.
    again = run_seer(["resume", str(run_dir)], tmp_path)
    assert again.returncode == 2 and "--time-budget +S" in again.stderr
    low = run_seer(["resume", str(run_dir), "--time-budget", "5"], tmp_path)
    assert low.returncode == 2 and "--time-budget" in low.stderr
    assert "more than the run has used" in low.stderr

    resumed_unix_s = time.time()
    more = run_seer(["resume", str(run_dir), "--time-budget", "+60", "--quiet"], tmp_path, env=SLOW)
    assert more.returncode == 0, more.stdout[-2000:] + more.stderr[-3000:]
    after = json.loads((run_dir / "results.json").read_text())
    assert after["budget"]["time_budget_s"] == pytest.approx(78.0)
    assert "time_budget_s = 78.0" in (run_dir / "experiment.toml").read_text()
    best = after["best"]
    assert best["epochs"] == 3 and after["budget"]["time_used_s"] > before["budget"]["time_used_s"]
    # Each trial went on from what its checkpoint held when the first part ended: every launch
    # after the resume starts past that epoch (none of the saved epochs is trained again).
    trained_after = 0
    for t in after["trials"]:
        since = _epochs_trained_since(run_dir / "trials" / t["trial_id"], resumed_unix_s)
        assert all(e > durable[t["trial_id"]] for e in since), (t["trial_id"], durable, since)
        assert t["epochs"] >= durable[t["trial_id"]]
        trained_after += len(since)
    assert trained_after >= 1
    answer_dir = run_dir / "trials" / best["trial_id"]
    epochs = [json.loads(x)["epoch"] for x in (answer_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    # TensorBoard: the report the first end wrote is replaced by the second's (one file of each:
    # TensorBoard would keep the first HParams summary it read), so the HParams tab shows each
    # trial, in the same run as before the resume, as it ended the second time.
    from seer_torch.testing import hparams_tab

    tb = run_dir / "tensorboard"
    assert [t["tensorboard_run"] for t in after["trials"][:len(before["trials"])]] == [
        t["tensorboard_run"] for t in before["trials"]]
    for t in after["trials"]:
        assert len(list((tb / t["tensorboard_run"]).glob("*.seer-hparams"))) == 1
    assert len(list((tb / "experiment").glob("*.seer-figures"))) == 1
    _, rows = hparams_tab(tb)
    shown = {r["run"]: r for r in rows}
    assert sorted(shown) == sorted(t["tensorboard_run"] for t in after["trials"])
    for t in after["trials"]:
        row = shown[t["tensorboard_run"]]
        assert (row["hparams"]["status"], row["hparams"]["epochs"]) == (t["status"], t["epochs"])
        assert row["hparams"]["answer"] == (t["trial_id"] == best["trial_id"])
        if t[after["metric"]] is not None:
            assert row["metrics"][after["metric"]] == pytest.approx(t[after["metric"]], rel=1e-6)
    # The resume redrew the run's page at its end: both parts, finished, the new answer.
    page = (run_dir / "report.html").read_text()
    assert (run_dir / "report.html").stat().st_mtime >= resumed_unix_s
    assert f"report: {run_dir / 'report.html'}" in more.stdout
    assert "In progress" not in page and f"The answer is {best['trial_id']}" in page

    # The report and the CSV cover both parts: the jobs after the resume are drawn, and the
    # answer's row says epoch 3.
    report = run_seer(["report", str(run_dir)], tmp_path)
    assert report.returncode == 0, report.stderr
    from seer_torch.report_data import read_run_files, report_data

    data = report_data(read_run_files(run_dir))
    assert data is not None
    last_end_s = max(j.end_s for j in data.jobs)
    assert before["budget"]["time_used_s"] < last_end_s <= after["budget"]["time_used_s"] + 1
    # The resume is on record (results.json, the report's data and words): where the first part
    # stopped and the second went on (a finished run: no downtime), the deadline before and after.
    (record,) = after["resumes"]
    assert record["stopped_at_s"] == pytest.approx(before["budget"]["time_used_s"], abs=0.5)
    assert record["resumed_at_s"] == pytest.approx(record["stopped_at_s"])
    assert (record["previous_time_budget_s"], record["time_budget_s"]) == (18.0, 78.0)
    (resume,) = data.resumes
    assert resume.more_budget and "deadline 18 s -> 78 s" in data.stop_words
    export = run_seer(["export", str(run_dir)], tmp_path)
    assert export.returncode == 0, export.stderr
    rows = {r["trial_id"]: r for r in csv.DictReader((run_dir / "trials.csv").open())}
    assert int(rows[best["trial_id"]]["epochs"]) == 3
