"""`seer tune | head`: a reader that goes away must not end the run (the status goes quiet)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent("""
    import sys
    from pathlib import Path
    from seer_torch.commands.status import LiveStatus

    status = LiveStatus()
    for i in range(20000):  # far more than a pipe buffer holds
        status.event(f"launched t{i:05d} at W=1 until epoch 1", {"time_used_s": 1.0, "round": 1})
    print("the summary after the reader left")
    Path(sys.argv[1]).write_text(f"done {status.quiet}")
""")


def test_a_closed_pipe_silences_the_status_and_the_run_goes_on(tmp_path: Path):
    marker = tmp_path / "marker"
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM, str(marker)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().startswith(b"[")
    proc.stdout.close()  # the reader goes away, like `head -1`
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert marker.read_text() == "done True"  # it reached its end, quiet since the pipe closed
