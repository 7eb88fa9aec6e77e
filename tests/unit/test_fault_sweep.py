"""The simulated half of ``scripts/fault_sweep.py`` as a test (issue 13, must-show 2): a short
SEER run whose last round is widened to W = 2 is killed (an emulated SIGKILL) at every journal
point it passes, and each kill is resumed with the same slots and with fewer (1 of 2). Every
resume finishes; with the same slots the answer is the uninterrupted run's (trial, epochs,
validation accuracy); with fewer, a valid answer within both budgets; no trial's epochs
repeat. On a4420ab: 33 of 60 resumes finished clean (a kill before the first journal write
could not be resumed; 26 of 30 resumes with one slot failed "decided differently on replay"
or over-asked the slots)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "fault_sweep", Path(__file__).resolve().parents[2] / "scripts" / "fault_sweep.py")
fault_sweep = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(fault_sweep)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    clean, counts = fault_sweep.count_points(tmp_path_factory.mktemp("clean"))
    # the sweep is only worth its name if the run widens and passes every kind of point
    assert [r["world_size"] for r in clean["rounds"]] == [1, 1, 2]
    assert clean["best"]["epochs"] == 9
    assert all(counts.get(p, 0) >= 3 for p in fault_sweep.POINTS), counts
    return clean, counts


def _points():
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        _, counts = fault_sweep.count_points(Path(d))
    return [f"{p}:{n}" for p in fault_sweep.POINTS for n in range(1, counts.get(p, 0) + 1)]


@pytest.mark.parametrize("fewer_slots", [False, True], ids=["same-slots", "one-slot"])
@pytest.mark.parametrize("point", _points())
def test_killed_anywhere_resumes(tmp_path, uninterrupted, point, fewer_slots, monkeypatch):
    clean, _ = uninterrupted
    monkeypatch.setattr(fault_sweep.executor, "_crash_counts", {})
    record = fault_sweep.sim_case(tmp_path, point, clean, fewer_slots)
    assert record["crashed"], record
    assert record["finished"] and record["problems"] == [], record
