"""`seer tune` keeps RUN_DIR/report.html fresh (seer_torch.report_live): the drawing is off the
control loop, one at a time, rate-limited, never in the run's way; mid-run the page is read from
a consistent journal and says that the run is in progress."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from test_report import _sim_run  # a real run directory of the tuner on the simulated backend

from seer_torch.executor import Tuner
from seer_torch.report_data import read_run_files, report_data
from seer_torch.report_live import DRAW_SHARE, LiveReport, draw_page
from seer_torch.runfiles import atomic_write_text, current_umask


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Drawer:
    """A stand-in for draw_page: records each call; ``gate`` holds a live drawing until set."""

    def __init__(self, clock: FakeClock | None = None, took_s: float = 0.0, fail: Exception | None = None):
        self.calls: list[tuple[bool, float]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.clock, self.took_s, self.fail = clock, took_s, fail

    def __call__(self, run_dir: Path, *, live: bool, images_out: dict | None = None) -> Path | None:
        self.calls.append((live, time.monotonic()))
        self.started.set()
        if live:
            assert self.gate.wait(10)
        if self.clock is not None:
            self.clock.now += self.took_s
        if self.fail is not None:
            raise self.fail
        return run_dir / "report.html"


def _wait_for(cond, timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_rounds_completed_while_drawing_are_drawn_once_after_and_the_end_is_drawn_last(tmp_path):
    draw = Drawer()
    draw.gate.clear()
    warnings: list[str] = []
    page = LiveReport(tmp_path, min_interval_s=0.0, draw=draw, warn=warnings.append)
    t0 = time.monotonic()
    page.round_completed(1)
    assert draw.started.wait(5)
    # While round 1's page is drawn (held at the gate), rounds 2 and 3 complete: the loop is
    # never held up, and one drawing follows, of the newest state.
    page.round_completed(2)
    page.round_completed(3)
    assert time.monotonic() - t0 < 1.0 and page.drawing
    draw.gate.set()
    _wait_for(lambda: len(draw.calls) == 2 and not page.drawing)
    assert page.drawn_rounds == [1, 3]
    page.round_completed(3)  # nothing new: nothing drawn
    assert page.close() == tmp_path / "report.html"
    assert [live for live, _ in draw.calls] == [True, True, False]  # the last page: the run as it ended
    assert warnings == []
    page.round_completed(4)  # after the end: ignored
    assert len(draw.calls) == 3


def test_close_waits_for_the_drawing_under_way_then_draws_the_end(tmp_path):
    draw = Drawer()
    draw.gate.clear()
    page = LiveReport(tmp_path, min_interval_s=0.0, draw=draw, warn=lambda line: None)
    page.round_completed(1)
    assert draw.started.wait(5)
    page.round_completed(2)  # pending when the run ends: the final page replaces it
    threading.Timer(0.2, draw.gate.set).start()
    page.close()
    assert [live for live, _ in draw.calls] == [True, False]
    assert draw.calls[1][1] - draw.calls[0][1] >= 0.15  # after the live one ended, not beside it
    assert page.close(final=False) is None and len(draw.calls) == 2


def test_drawings_keep_the_interval_and_a_tenth_of_a_core(tmp_path):
    clock = FakeClock()
    draw = Drawer(clock, took_s=5.0)
    page = LiveReport(tmp_path, min_interval_s=30.0, clock=clock, draw=draw, warn=lambda line: None)
    page.round_completed(1)  # 0 s after the start: too soon
    time.sleep(0.1)
    assert draw.calls == []
    clock.now += 30.0
    page.round_completed(1)  # the same round, told again: wakes the thread, now it is time
    _wait_for(lambda: len(draw.calls) == 1 and not page.drawing)
    # That drawing took 5 s (clock at 1035): the next waits max(30, 5 / DRAW_SHARE) = 50 s.
    assert 5.0 / DRAW_SHARE == 50.0
    clock.now += 49.0
    page.round_completed(2)
    time.sleep(0.1)
    assert len(draw.calls) == 1
    clock.now += 1.0
    page.round_completed(2)
    _wait_for(lambda: len(draw.calls) == 2)
    assert page.drawn_rounds == [1, 2]
    page.close(final=False)


def test_a_failed_drawing_is_one_line_on_stderr_once_and_the_run_goes_on(tmp_path, capsys):
    draw = Drawer(fail=RuntimeError("no space left on device\nsecond line"))
    page = LiveReport(tmp_path, min_interval_s=0.0, draw=draw)
    page.round_completed(1)
    _wait_for(lambda: len(draw.calls) == 1 and not page.drawing)
    page.round_completed(2)
    _wait_for(lambda: len(draw.calls) == 2 and not page.drawing)
    assert page.close() is None  # the final drawing fails too: said, not raised
    err = capsys.readouterr().err
    assert err == (f"seer: warning: {tmp_path / 'report.html'} not refreshed (RuntimeError: no space left on "
                   "device); the run goes on\n")  # the same failure three times: said once


def test_a_page_a_killed_tuner_was_writing_is_removed_when_the_run_goes_on(tmp_path):
    (tmp_path / ".report.html.abc123.tmp").write_text("<!DOCTYPE html><html><head>")
    (tmp_path / ".state.json.x.tmp").write_text("{")  # not the page's: left to the journal's owner
    LiveReport(tmp_path, draw=Drawer()).close(final=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".state.json.x.tmp"]


def test_atomic_writes_keep_the_umask_without_changing_it(tmp_path):
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027 and current_umask() == 0o027  # reading it does not change it
        atomic_write_text(tmp_path / "f.txt", "x")
        assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


# ---------------------------------------------------------------------- a real run, read as it runs
def test_mid_run_the_page_is_read_from_a_consistent_journal_and_says_the_run_goes_on(tmp_path, monkeypatch):
    """A simulated run whose tuner reads its own files at each completed round, as the live page's
    drawing does: what it reads is the run as the tuner holds it then."""
    seen: list[dict] = []
    pages: list[str] = []
    real_init = Tuner.__init__

    def init(self, *a, **kw):
        real_init(self, *a, **kw)
        tuner = self

        def on_round(done: int) -> None:
            files = read_run_files(tuner.run_dir, live=True)
            data = report_data(files, live=True)
            launched = len(tuner.backend.launches)
            seen.append({"done": done, "completed": sum(r.completed for r in data.rounds),
                         "jobs": len(data.jobs), "launched": launched, "missing": list(data.view.missing),
                         "live": data.view.live, "trials": set(data.rows) == set(tuner.trials),
                         "stop": data.stop_words})
            if done == 2:  # one real page, mid-run
                assert draw_page(tuner.run_dir, live=True) == tuner.run_dir / "report.html"
                pages.append((tuner.run_dir / "report.html").read_text())

        self.on_round = on_round

    monkeypatch.setattr(Tuner, "__init__", init)
    results, _, run_dir = _sim_run(tmp_path, max_configurations=27, max_epochs=9)
    assert [s["done"] for s in seen] == list(range(1, len(seen) + 1)) and len(seen) >= 2
    for s in seen:
        assert s["live"] and s["missing"] == [] and s["trials"]
        assert s["completed"] == s["done"]  # the journal says as many rounds completed as the loop
        assert s["jobs"] == s["launched"]  # every job the backend was asked for, none more
        assert s["stop"].startswith("The run has not ended: it is in progress")
    page = pages[0]
    assert "<meta http-equiv='refresh' content='30'>" in page and "seer report (in progress)" in page
    assert "In progress.</b> Refreshed at round 2 of " in page and "The best trial so far" in page
    assert "partial report" not in page and "killed" not in page
    # Once the run is over, a live reading is the run's own: finished (the page's end: the next test).
    data = report_data(read_run_files(run_dir, live=True), live=True)
    assert not data.view.live and not data.view.partial
    assert data.view.results["best"]["trial_id"] == results["best"]["trial_id"]


def test_a_decision_being_journaled_is_left_out_unsaid_mid_run(tmp_path):
    results, _, run_dir = _sim_run(tmp_path, max_configurations=12, max_epochs=3)
    state = json.loads((run_dir / "state.json").read_text())
    state["status"] = "running"  # as mid-run: the journal before the next decision was counted
    (run_dir / "state.json").write_text(json.dumps(state))
    (run_dir / "results.json").unlink()
    lines = (run_dir / "decisions.jsonl").read_text().splitlines()
    extra = json.loads(lines[-1])
    extra["decisions"] = [{"type": "Launch", "trial_index": 99, "world_size": 1, "until_epoch": 3,
                           "round_index": 9}]
    with open(run_dir / "decisions.jsonl", "a") as f:  # one decided, one being appended
        f.write(json.dumps(extra) + "\n" + json.dumps(extra)[:40])
    live = report_data(read_run_files(run_dir, live=True), live=True)
    assert live.view.live and live.view.missing == []
    dead = report_data(read_run_files(run_dir))  # the same files, after a kill: each said
    assert not dead.view.live and len(dead.view.missing) == 4
    assert [j.trial_id for j in live.jobs] == [j.trial_id for j in dead.jobs]  # neither draws trial 99
    assert all(j.round_index != 9 for j in live.jobs)


def test_the_last_page_is_drawn_when_a_resume_ends_not_when_its_replay_fails(tmp_path, crash_tuner):
    from test_resume_durability import _crash

    from seer_torch.commands.tune import _run_with_page, report_to_tensorboard
    from seer_torch.errors import SeerError
    from seer_torch.policies.registry import make_policy

    _, clock, backend, run_dir = _crash(tmp_path, crash_tuner, "launch:10")
    journal = {n: (run_dir / n).read_bytes() for n in ("decisions.jsonl", "state.json")}
    lines = journal["decisions.jsonl"].decode().splitlines()
    first = json.loads(lines[0])
    first["decisions"][0]["until_epoch"] += 1  # the policy decides differently on replay
    (run_dir / "decisions.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    draw = Drawer()
    page = LiveReport(run_dir, draw=draw, warn=lambda line: None)
    tuner = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock,
                         on_round=page.round_completed)
    with pytest.raises(SeerError, match="decided differently on replay"):
        _run_with_page(tuner, page, resume=True)
    assert draw.calls == []  # a resume that fails writes nothing, the page neither
    (run_dir / "decisions.jsonl").write_bytes(journal["decisions.jsonl"])
    page = LiveReport(run_dir, draw=draw, warn=lambda line: None)
    tuner = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock,
                         on_round=page.round_completed)
    assert _run_with_page(tuner, page, resume=True)["best"] is not None
    assert draw.calls == []  # a finished run's last page is drawn with its TensorBoard figures:
    report_to_tensorboard(run_dir, page)
    assert [live for live, _ in draw.calls] == [False]  # the last page (the run took under 30 s)


def test_tune_keeps_the_page_and_no_report_turns_it_off(tmp_path, monkeypatch):
    import seer_torch
    import seer_torch.report as report_module

    drawn = []  # each drawing of the figures: the last page and TensorBoard's share one
    draw_all = report_module.draw_all
    monkeypatch.setattr(report_module, "draw_all", lambda data: drawn.append(1) or draw_all(data))

    spec = {
        "name": "live-page", "seed": 1,
        "training": {"max_epochs": 3, "min_epochs": 1, "eta": 3, "global_batch": 64, "micro_batch_max": 64},
        "budget": {"time_budget_s": 600, "money_budget_usd": 100},
        "resources": {"num_slots": 2, "world_size_ladder": [1, 2]},
        "search": {"max_configurations": 9},
        "planner": {"profile": str(_profile(tmp_path))},
        "search_space": {"lr": {"distribution": "loguniform", "low": 0.01, "high": 0.5}},
    }
    run = seer_torch.tune(spec, tmp_path / "on", backend="simulated", curve=lambda c, e: c["lr"] * e,
                          progress=False)
    page = (tmp_path / "on" / "report.html").read_text()
    assert run.best_trial_id is not None and run.best_trial_id in page
    assert "In progress" not in page and "http-equiv" not in page and "Why the run ended" in page
    assert "The policy finished" in page
    assert len(drawn) == 1  # the run took under 30 s: no live page, one drawing at the end for both
    assert len(list((tmp_path / "on" / "tensorboard" / "experiment").glob("*.seer-figures"))) == 1
    seer_torch.tune(spec, tmp_path / "off", backend="simulated", curve=lambda c, e: c["lr"] * e,
                    progress=False, report=False)
    assert (tmp_path / "off" / "results.json").exists() and not (tmp_path / "off" / "report.html").exists()
    assert len(drawn) == 1  # report=False draws nothing (the HParams summaries are still written)
    assert not list((tmp_path / "off" / "tensorboard" / "experiment").glob("*.seer-figures"))
    assert list((tmp_path / "off" / "tensorboard").glob("*/*.seer-hparams"))


def _profile(tmp_path: Path) -> Path:
    p = tmp_path / "profile.json"
    p.write_text(json.dumps({"world_sizes": [1, 2], "speedup": [1.0, 1.8], "epoch_time_s": 10.0,
                             "startup_s": 5.0, "resize_s": 5.0}))
    return p


@pytest.fixture(autouse=True)
def _no_threads_left():
    before = set(threading.enumerate())
    yield
    _wait_for(lambda: not [t for t in set(threading.enumerate()) - before if t.name == "seer-live-report"])
