"""Fixtures shared by the integration tests."""

from __future__ import annotations

import json

import pytest
from faults_harness import seer, write_experiment


@pytest.fixture(scope="session")
def clean(tmp_path_factory):
    """results.json of one uninterrupted `seer tune` of faults_harness.EXPERIMENT: the answer
    every fault test's run (test_fault_injection.py, test_keep_alive_faults.py) must give too.
    Run once per session."""
    tmp = tmp_path_factory.mktemp("clean")
    cfg = write_experiment(tmp)
    proc = seer(["tune", str(cfg), "--run-dir", str(tmp / "run"), "--quiet", "--no-report"], cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp / "run" / "results.json").read_text())
    assert [r["num_trials"] for r in res["rounds"]] == [3, 1]
    return res
