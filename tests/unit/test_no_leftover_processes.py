"""The suite-wide check of tests/conftest.py: a test that leaves a child process alive fails,
naming it, and the process is killed; a test whose child ends within the grace passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

LEAKY = """
import subprocess, sys

def test_leaks_a_child():
    subprocess.Popen(["sleep", "1234"])

def test_child_ends_within_the_grace():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1)"])

def test_no_child():
    pass
"""


def test_a_leftover_child_fails_the_test_and_is_named(tmp_path: Path):
    shutil.copy(Path(__file__).resolve().parents[1] / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-rA",
            str(tmp_path / "test_leaky.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "ERROR" in out and "test_leaks_a_child" in out
    assert "child process(es) still alive" in out and "sleep 1234" in out
    assert "PASSED test_leaky.py::test_child_ends_within_the_grace" in out
    assert "PASSED test_leaky.py::test_no_child" in out
    # The leaked process was killed by the check.
    alive = subprocess.run(["pgrep", "-f", "^sleep 1234$"], capture_output=True, text=True)
    assert alive.stdout.strip() == ""
