"""``seer report`` and ``seer export`` (issue 18, part 1) on real run directories made by the
simulated backend: the figures' data is checked against what the backend ran and what the run
wrote (``results.json``, ``decisions.jsonl``), and damaged run directories give a message or
a partial report with the documented exit code, never a traceback."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.cli import main
from seer_torch.config import parse_experiment
from seer_torch.executor import Tuner
from seer_torch.policies.seer_policy import SeerPolicy
from seer_torch.report import (
    FIGURES,
    draw_allocation,
    draw_burndown,
    draw_curves,
    draw_rounds,
    draw_space,
    w_colour,
)
from seer_torch.report_data import OUTCOME_ENDED_WITH_RUN, read_run_files, report_data

PRICE_USD_PER_SLOT_HOUR = 3.6


def _curve(config, epoch):
    # Larger q is better at every epoch; the metric rises with epochs.
    return config["q"] * (1.0 - 0.5 / epoch)


def _sim_run(
    run_root: Path,
    *,
    max_configurations=40,
    max_epochs=27,
    slots=4,
    ladder=(1, 2, 4),
    time_s=420.0,
    curve=_curve,
    faults=None,
    keep_alive=False,
    max_failures=2,
):
    """A real run directory (``run_root/run``) from the tuner on the simulated backend, with
    SEER; returns ``(results, backend, run_dir)``. Well under a second of wall clock."""
    run_root.mkdir(parents=True, exist_ok=True)
    profile = run_root / "profile.json"
    speedup = {1: 1.0, 2: 1.8, 4: 3.4}
    profile.write_text(json.dumps({"world_sizes": [1, 2, 4], "speedup": [1.0, 1.8, 3.4], "epoch_time_s": 10.0,
                                   "startup_s": 5.0, "resize_s": 5.0}))
    exp = parse_experiment({
        "name": "report-sim",
        "seed": 3,
        "training": {"max_epochs": max_epochs, "min_epochs": 1, "eta": 3, "global_batch": 64,
                     "micro_batch_max": 64},
        "budget": {"time_budget_s": time_s, "money_budget_usd": 1e6,
                   "price_usd_per_slot_hour": PRICE_USD_PER_SLOT_HOUR},
        "resources": {"num_slots": slots, "world_size_ladder": list(ladder)},
        "search": {"max_configurations": max_configurations},
        "planner": {"profile": str(profile), "num_finalists": 1},
        "failures": {"max_failures": max_failures},
        "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0},
                         "width": {"choices": [32, 64]}},
    })
    clock = SimulatedClock()
    backend = SimulatedBackend(slots, clock, epoch_time_s=10.0, speedup=lambda w: speedup[w], startup_s=5.0,
                               curve=curve, faults=faults, keep_alive=keep_alive,
                               warm_start_s=1.0 if keep_alive else None)
    run_dir = run_root / "run"
    results = Tuner(exp, run_dir, backend, clock=clock, policy=SeerPolicy()).run()
    return results, backend, run_dir


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """One run that explores at W=1, eliminates at rungs 1, 3, 9 and widens its finalist to W=4."""
    return _sim_run(tmp_path_factory.mktemp("report"))


def _drawn_jobs(fig):
    """``(trial_id, start_s, end_s, row, colour)`` of every job bar in an allocation chart."""
    ax = fig.axes[0]
    out = []
    for p in ax.patches:
        gid = p.get_gid() or ""
        if gid.startswith("job:"):
            row = p.get_y() + p.get_height() / 2
            out.append((gid.split(":")[1], p.get_x(), p.get_x() + p.get_width(), row, p.get_facecolor()))
    return out


def _same_jobs(drawn, ran):
    assert len(drawn) == len(ran)
    for d, r in zip(sorted(drawn), sorted(ran)):
        assert d[0] == r[0] and d[1] == r[1]
        assert d[2] == pytest.approx(r[2], abs=1e-9) and d[3] == pytest.approx(r[3], abs=1e-9)


# ---------------------------------------------------------------------- the figures' data
def test_the_jobs_drawn_are_the_jobs_the_backend_ran_with_their_w_and_times(sim):
    results, backend, run_dir = sim
    data = report_data(read_run_files(run_dir))
    ran = [(j.spec.trial_id, j.spec.world_size, j.start_s, j.result.end_s) for j in backend.launches]
    assert {w for _, w, _, _ in ran} >= {1, 4}  # explored at W=1, its finalist widened
    _same_jobs([(j.trial_id, j.world_size, j.start_s, j.end_s) for j in data.jobs], ran)
    # ...and each bar is one of them: its trial's row, from launch to end, its W's colour.
    import matplotlib.colors as mcolors

    fig = draw_allocation(data)
    ladder = sorted({j.world_size for j in data.jobs})
    rows = {tid: i for i, tid in enumerate(data.rows)}
    colour_w = {w_colour(w, ladder): w for w in ladder}
    drawn = _drawn_jobs(fig)
    assert all(row == rows[tid] for tid, _, _, row, _ in drawn)
    _same_jobs([(tid, colour_w[mcolors.to_hex(c)], s, e) for tid, s, e, _, c in drawn], ran)
    # Every trial has its row; the answer was widened to W=4 for its last round.
    assert set(data.rows) == {t["trial_id"] for t in results["trials"]}
    best = next(t for t in results["trials"] if t["trial_id"] == results["best"]["trial_id"])
    assert best["world_sizes"][-1] == 4


def test_the_allocation_chart_marks_rungs_eliminations_and_the_deadline(sim):
    results, _, run_dir = sim
    data = report_data(read_run_files(run_dir))
    ax = draw_allocation(data).axes[0]
    lines = {ln.get_gid(): ln.get_xdata()[0] for ln in ax.lines if ln.get_gid()}
    assert lines["deadline"] == results["budget"]["time_budget_s"]
    for r in results["rounds"]:
        assert lines[f"rung:{r['index']}"] == pytest.approx(r["end_s"])
    # One x per eliminated trial, on its row, at the decision that eliminated it (in decisions.jsonl).
    eliminated_at = {}
    for line in (run_dir / "decisions.jsonl").read_text().splitlines():
        d = json.loads(line)
        for x in d["decisions"]:
            if x["type"] == "Eliminate":
                eliminated_at[x["trial_id"]] = d["snapshot"]["now_s"]
    assert set(eliminated_at) == {t["trial_id"] for t in results["trials"] if t["status"] == "eliminated"}
    marks = next(c for c in ax.collections if c.get_gid() == "marks:eliminated").get_offsets()
    rows = {tid: i for i, tid in enumerate(data.rows)}
    assert sorted(map(tuple, marks.tolist())) == sorted((t, rows[tid]) for tid, t in eliminated_at.items())


def test_the_money_drawn_per_round_sums_to_the_runs_cost(sim):
    results, _, run_dir = sim
    data = report_data(read_run_files(run_dir))
    bars = {p.get_gid(): p.get_height() for ax in draw_rounds(data).axes for p in ax.patches
            if (p.get_gid() or "").startswith("usd:")}
    for r in results["rounds"]:
        assert bars[f"usd:round:{r['index']}"] == pytest.approx(r["cost_usd"])
    assert sum(bars.values()) == pytest.approx(results["budget"]["cost_usd"], rel=1e-9)
    # The burn-down's measured path: each round's end and the money spent by then.
    burn = draw_burndown(data)
    t_line = next(ln for ax in burn.axes for ln in ax.lines if ln.get_gid() == "burn:time_s:measured")
    usd_line = next(ln for ax in burn.axes for ln in ax.lines if ln.get_gid() == "burn:usd:measured")
    assert list(t_line.get_ydata()[1:]) == pytest.approx([r["end_s"] for r in results["rounds"]])
    assert usd_line.get_ydata()[-1] == pytest.approx(results["budget"]["cost_usd"])
    # The plan's path is the plan's predictions, added up.
    plan_line = next(ln for ax in burn.axes for ln in ax.lines if ln.get_gid() == "burn:usd:plan")
    planned_usd = sum(r["predicted_cost_usd"] for r in results["plan"]["rounds"])
    assert plan_line.get_ydata()[-1] == pytest.approx(planned_usd)


def test_profiling_money_is_drawn_beside_the_rounds_and_still_sums_to_the_cost(sim):
    results, _, run_dir = sim
    # A run that profiled first (seer tune measures its profile): its probes' slot-seconds are
    # billed to no round.
    files = read_run_files(run_dir)
    profiled = json.loads(json.dumps(files.results))
    profiled["slot_seconds"]["profiling"] = 100.0
    profiled["budget"]["cost_usd"] += 100.0 * PRICE_USD_PER_SLOT_HOUR / 3600
    files.results = profiled
    data = report_data(files)
    bars = {p.get_gid(): p.get_height() for ax in draw_rounds(data).axes for p in ax.patches
            if (p.get_gid() or "").startswith("usd:")}
    assert bars["usd:profiling"] == pytest.approx(0.1)
    assert sum(bars.values()) == pytest.approx(profiled["budget"]["cost_usd"], rel=1e-9)


def test_every_trials_curve_is_its_metric_by_epoch_and_the_answer_is_highlighted(sim):
    results, _, run_dir = sim
    ax = draw_curves(report_data(read_run_files(run_dir))).axes[0]
    lines = {ln.get_gid(): ln for ln in ax.lines if (ln.get_gid() or "").startswith("curve:")}
    assert set(lines) == {f"curve:{t['trial_id']}" for t in results["trials"]}
    for t in results["trials"]:
        ln = lines[f"curve:{t['trial_id']}"]
        by_epoch = sorted((int(e), v) for e, v in t["metric_by_epoch"].items())
        assert list(ln.get_xdata()) == [e for e, _ in by_epoch]
        assert list(ln.get_ydata()) == pytest.approx([v for _, v in by_epoch])
    answer = lines[f"curve:{results['best']['trial_id']}"]
    assert answer.get_linewidth() > max(ln.get_linewidth() for ln in lines.values() if ln is not answer)


def test_the_search_space_plots_each_value_against_the_last_metric(sim):
    results, _, run_dir = sim
    fig = draw_space(report_data(read_run_files(run_dir)))
    scatter = next(c for ax in fig.axes for c in ax.collections if c.get_gid() == "space:q")
    points = sorted(map(tuple, scatter.get_offsets().tolist()))
    expected = sorted((t["config"]["q"], t["val_accuracy"]) for t in results["trials"])
    assert [x for p in points for x in p] == pytest.approx([x for p in expected for x in p])
    assert any(c.get_gid() == "space:width" for ax in fig.axes for c in ax.collections)


def test_seer_report_writes_one_self_contained_page_and_the_figures(sim, tmp_path, capsys):
    results, _, run_dir = sim
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    assert main(["report", str(copy), "--png"]) == 0
    page = (copy / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert page.count("<img ") == page.count("src='data:image/png;base64,") == len(FIGURES)
    assert sorted(p.stem for p in (copy / "report_figures").glob("*.png")) == sorted(FIGURES)
    assert results["best"]["trial_id"] in page and "policy finished its plan" in page
    assert "report.html" in capsys.readouterr().out
    # --out elsewhere.
    assert main(["report", str(copy), "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")


def test_seer_export_writes_a_row_per_trial(sim, tmp_path):
    results, _, run_dir = sim
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    assert main(["export", str(copy)]) == 0
    with open(copy / "trials.csv", newline="") as f:
        rows = {r["trial_id"]: r for r in csv.DictReader(f)}
    assert set(rows) == {t["trial_id"] for t in results["trials"]}
    rungs = sorted({r["rung_epoch"] for r in results["rounds"]})
    for t in results["trials"]:
        row = rows[t["trial_id"]]
        assert float(row["q"]) == t["config"]["q"] and int(row["width"]) == t["config"]["width"]
        assert (row["status"], int(row["epochs"])) == (t["status"], t["epochs"])
        assert row["world_sizes"] == " ".join(map(str, t["world_sizes"]))
        for r in rungs:
            value = t["metric_by_epoch"].get(str(r))
            assert row[f"val_accuracy@{r}"] == ("" if value is None else repr(value))
        assert row["answer"] == ("1" if t["trial_id"] == results["best"]["trial_id"] else "0")


# ---------------------------------------------------------------------- failures, keep-alive
def test_failures_retries_and_divergence_are_marked(tmp_path):
    def diverging(config, epoch):
        return float("nan") if 0.82 < config["q"] < 0.9 and epoch >= 2 else _curve(config, epoch)

    # t001's first job crashes at once (retried from the start); t002's jobs always crash.
    def faults(tid, attempt):
        if (tid, attempt) == ("t001", 0) or tid == "t002":
            return ("crash", 0, "RuntimeError: boom")
        return None

    results, backend, run_dir = _sim_run(tmp_path, max_configurations=9, max_epochs=9, slots=2, ladder=(1,),
                                         time_s=1e5, curve=diverging, faults=faults, max_failures=1)
    by_id = {t["trial_id"]: t for t in results["trials"]}
    assert by_id["t001"]["failures"] == 1 and by_id["t002"]["status"] == "failed"
    diverged = {tid for tid, t in by_id.items() if t["status"] == "diverged"}
    assert diverged
    data = report_data(read_run_files(run_dir))
    # A retry is no decision: the failed job and its relaunch are one bar, from the first launch
    # to the last end.
    launches = {}
    for j in backend.launches:
        launches.setdefault((j.spec.trial_id, j.spec.until_epoch), []).append(j)
    ran = [(tid, js[0].spec.world_size, js[0].start_s, js[-1].result.end_s)
           for (tid, _), js in launches.items()]
    _same_jobs([(j.trial_id, j.world_size, j.start_s, j.end_s) for j in data.jobs], ran)
    assert data.retries == {"t001": 1, "t002": 1}
    kinds = {(m.trial_id, m.kind) for m in data.marks}
    assert ("t002", "failed") in kinds and {(tid, "diverged") for tid in diverged} <= kinds
    ax = draw_allocation(data).axes[0]
    assert {c.get_gid() for c in ax.collections} >= {"marks:failed", "marks:diverged", "marks:eliminated"}
    assert "+1 retry" in {t.get_text() for t in ax.texts}
    # A diverged trial's curve ends before the epoch that diverged; it is never the answer.
    assert results["best"]["trial_id"] not in diverged
    assert all(c.epochs == [1] and not any(map(math.isnan, c.values))
               for c in data.curves if c.trial_id in diverged)


def test_kept_alive_jobs_are_drawn_from_each_continuation(tmp_path):
    results, backend, run_dir = _sim_run(tmp_path, keep_alive=True)
    data = report_data(read_run_files(run_dir))
    # Each decision's job: a cold launch, a continuation or a warm worker's new trial, from when
    # it began to its end (a parked job's wait between them is not its trial's work).
    ran = [(j.spec.trial_id, j.spec.world_size, j.begin_s, j.result.end_s) for j in backend.jobs if j.result]
    _same_jobs([(j.trial_id, j.world_size, j.start_s, j.end_s) for j in data.jobs], ran)
    assert {j.kind for j in backend.jobs} >= {"startup", "warm_start"}


# ---------------------------------------------------------------------- damaged run directories
def test_not_a_run_directory_exits_2_with_a_message(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    for path in (tmp_path / "empty", tmp_path / "file.txt", tmp_path / "nothing"):
        assert main(["report", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("seer: error: RUN_DIR") and str(path) in err and len(err.splitlines()) == 1
        assert main(["export", str(path)]) == 2
        capsys.readouterr()
    assert not (tmp_path / "empty" / "report.html").exists()


def test_a_run_killed_while_writing_results_gives_a_partial_report(sim, tmp_path, capsys):
    results, backend, run_dir = sim
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    text = (copy / "results.json").read_text()
    (copy / "results.json").write_text(text[: len(text) // 2])  # torn mid-write
    assert main(["report", str(copy)]) == 0
    err = capsys.readouterr().err
    assert f"seer: {copy}: results.json is not valid JSON" in err
    page = (copy / "report.html").read_text()
    assert "This is a partial report" in page and "results.json is not valid JSON" in page
    # Drawn from the journal and decisions.jsonl: the same jobs, curves and money.
    data = report_data(read_run_files(copy))
    assert data.view.partial and data.view.best_so_far
    assert data.view.results["best"]["trial_id"] == results["best"]["trial_id"]
    assert len(data.jobs) == len(backend.launches)
    assert sum(data.money.rounds.values()) + data.money.profiling + data.money.other == pytest.approx(
        results["budget"]["cost_usd"])
    assert main(["export", str(copy)]) == 0
    # Without the journal too there is nothing to draw: exit 1, nothing written.
    (copy / "state.json").unlink()
    (copy / "state.prev.json").unlink()
    (copy / "report.html").unlink()
    assert main(["report", str(copy)]) == 1
    err = capsys.readouterr().err
    assert "nothing to draw" in err and "Traceback" not in err
    assert not (copy / "report.html").exists()


@pytest.mark.parametrize("point", ["job_end:8", "decide:10"])
def test_a_run_killed_while_it_ran_gives_a_partial_report_from_its_journal(point, tmp_path, crash_tuner,
                                                                          capsys):
    # Killed (as by SIGKILL, in-process: nothing more is written) after a job's end was read, or
    # after a decision was journaled in decisions.jsonl but before it was carried out.

    crash_tuner(point, lambda: _sim_run(tmp_path))
    run_dir = tmp_path / "run"
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "running" and not (run_dir / "results.json").exists()
    assert main(["report", str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert f"seer: {run_dir}: results.json is missing" in err
    page = (run_dir / "report.html").read_text()
    assert "This is a partial report" in page and "killed while it ran" in page
    data = report_data(read_run_files(run_dir))
    assert data.view.partial and data.view.status == "running"
    # The jobs launched: those of the decisions the journal reflects (a decision it does not was
    # never carried out), the ones running when it was killed ending at its last journal.
    lines = (run_dir / "decisions.jsonl").read_text().splitlines()
    assert len(lines) == state["decide_calls"] + (point == "decide:10")
    launched = sum(d["type"] == "Launch" for line in lines[: state["decide_calls"]]
                   for d in json.loads(line)["decisions"])
    assert len(data.jobs) == launched
    assert any(j.outcome == OUTCOME_ENDED_WITH_RUN for j in data.jobs)
    assert max(j.end_s for j in data.jobs) == pytest.approx(state["time_used_s"])
    assert {t["trial_id"] for t in state["trials"]} == set(data.rows)
    assert page.count("src='data:image/png;base64,") == len(FIGURES)


@pytest.fixture
def lock_holder(tmp_path):
    """A live process holding a run directory's lock, as a running ``seer tune`` does."""
    procs = []

    def hold(run_dir: Path) -> int:
        proc = subprocess.Popen(
            [sys.executable, "-c",
             "import sys, time\n"
             "from seer_torch.run_lock import lock_run_dir\n"
             f"lock = lock_run_dir({str(run_dir)!r})\n"
             "print('locked', flush=True)\n"
             "time.sleep(60)\n"],
            stdout=subprocess.PIPE, text=True,
        )
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc.pid

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_a_run_in_progress_exits_2_with_a_message(sim, tmp_path, lock_holder, capsys):
    _, _, run_dir = sim
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    pid = lock_holder(copy)
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and str(copy) in err and f"process {pid} holds" in err
    assert err.endswith(f"; meanwhile open {copy / 'report.html'}: the run redraws it after each round, "
                        "unless --no-report\n")
    assert not (copy / "report.html").exists()
    assert main(["export", str(copy)]) == 2


def test_what_a_job_ended_with_when_the_run_stopped_it(tmp_path):
    # Every trial's third job hangs after an epoch; the deadline comes before the hang timeout
    # (600 s) and stops them: no decision follows, so they end with the run.
    def hang_third_job(tid, attempt):
        return ("hang", 1, "") if attempt >= 2 else None

    results, backend, run_dir = _sim_run(tmp_path, max_configurations=12, time_s=200.0, faults=hang_third_job)
    assert results["stop_reason"] == "deadline reached"
    data = report_data(read_run_files(run_dir))
    cut = [j for j in data.jobs if j.outcome == OUTCOME_ENDED_WITH_RUN]
    assert cut and all(j.end_s == pytest.approx(results["budget"]["time_used_s"]) for j in cut)
    ran = [(j.spec.trial_id, j.spec.world_size, j.start_s, j.result.end_s) for j in backend.launches]
    _same_jobs([(j.trial_id, j.world_size, j.start_s, j.end_s) for j in data.jobs], ran)
    assert {j.epochs for j in cut} == {results_epochs for results_epochs in
                                       (t["epochs"] for t in results["trials"] if t["trial_id"] in
                                        {j.trial_id for j in cut})}
    assert "deadline was reached" in data.stop_words


def test_why_the_run_ended_is_one_sentence_whatever_the_reason_ends_with():
    from seer_torch.report_data import stop_reason_words

    reason = "BEST EFFORT: not one survivor reaches epoch 38 within the budgets left; 1 go on to epoch 22."
    assert stop_reason_words({"stop_reason": reason}, "finished") == f"The policy finished: {reason}"
    money = "money budget reached: 0.99 of 1 USD."
    words = stop_reason_words({"stop_reason": money}, "finished")
    assert words.endswith("(money budget reached: 0.99 of 1 USD).")


def test_a_job_through_the_tuners_downtime_is_drawn_up_to_the_stop_and_from_the_resume():
    from seer_torch.report_data import OUTCOME_TUNER_DOWN, Job, Resume, split_at_downtime

    killed = Resume(stopped_at_s=25.0, resumed_at_s=100.0, time_budget_s=90.0, money_budget_usd=1.0,
                    previous_time_budget_s=90.0, previous_money_budget_usd=1.0)
    through = Job("t003", 2, 20.0, 110.0, 3, 9, 9, "reached", 3)  # launched before the kill, ended after
    ended_while_down = Job("t004", 1, 20.0, 60.0, 3, 9, None, "stopped", 3)
    before = Job("t001", 1, 5.0, 10.0, 0, 1, 1, "reached", 1)
    after = Job("t005", 1, 101.0, 104.0, 0, 1, 1, "reached", 1)
    got = split_at_downtime([through, ended_while_down, before, after], [killed])
    assert [(j.trial_id, j.start_s, j.end_s, j.outcome) for j in got] == [
        ("t003", 20.0, 25.0, OUTCOME_TUNER_DOWN), ("t003", 100.0, 110.0, "reached"),
        ("t004", 20.0, 25.0, "stopped"), ("t001", 5.0, 10.0, "reached"), ("t005", 101.0, 104.0, "reached")]
    no_downtime = dataclasses.replace(killed, resumed_at_s=25.0)  # a finished run given more budget
    assert split_at_downtime([through], [no_downtime]) == [through]
