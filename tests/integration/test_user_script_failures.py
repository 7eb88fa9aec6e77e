"""Bad input from user code (issue 15, must-show 4): one table of ways a user's torchrun script
goes wrong under `seer tune`, each row a broken copy of one tiny valid script.

For every row: a clear message (the trial's one-line ``error`` in results.json, state.json and
the live status, with the tail of its stderr, the exception's last line in it); the tuner goes
on (the other trials still run and the valid one is the answer); no process of the run is left
(found by command line or by the ``SEER_TRIAL_DIR`` in its environment: torchrun's workers
leave its session); results.json is written.

To keep it short, the rows that are trials run as the configurations of ONE `seer tune` run:
its script ``train.py`` hands the job to ``modes/<trial id>.py`` with ``os.execv`` (the same
process, so torchrun watches the broken script itself). Trial ``t00i`` runs row ``i``'s script.
Two rows need a run of their own: a script missing when `seer tune` starts (exit 2 before
anything runs) and one deleted while the run goes on (the run stops with the file named,
results.json written, and `seer resume` finishes it once the file is back).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

#: A tiny valid script on the trial API; each row replaces some of its text (a ``# @name`` line
#: is a place to put code, indented as the line is).
VALID = '''"""A linear classifier on 64 seeded random samples, tuned through seer_torch.trial."""
import os
import sys
import time

import torch
import torch.nn.functional as F

import seer_torch.trial as trial
# @imports


def main() -> None:
    with trial.init() as t:
        # @after_init
        g = torch.Generator().manual_seed(t.seed)
        x = torch.randn(64, 4, generator=g)
        y = (x[:, 0] > 0).long()
        model = torch.nn.Linear(4, 2)
        opt = torch.optim.SGD(model.parameters(), lr=t.config["lr"])
        state = t.load()
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        ddp = t.wrap(model)

        def checkpoint():
            return {"model": model.state_dict(), "optimizer": opt.state_dict()}

        for epoch in t.epochs(checkpoint=checkpoint):
            for batch in t.train_batches(len(y), epoch):
                opt.zero_grad()
                for idx in t.accumulate(ddp, batch):
                    # @step
                    loss = F.cross_entropy(ddp(x[idx]), y[idx]) / t.accum_steps
                    loss.backward()
                opt.step()
            (acc,) = t.evaluate_sharded(len(y), lambda idx: (model(x[idx]).argmax(1) == y[idx]).sum())
            # @report
            t.report(epoch, val_accuracy=acc)
            # @after_report


if __name__ == "__main__":
    main()
'''

#: The experiment's script: runs ``modes/<trial id>.py`` in its own place (same process).
DISPATCH = '''import os, sys
from pathlib import Path
mode = Path(__file__).resolve().parent / "modes" / (Path(os.environ["SEER_TRIAL_DIR"]).name + ".py")
os.execv(sys.executable, [sys.executable, str(mode), *sys.argv[1:]])
'''

HANG_TIMEOUT_S = 25  # above a job's start-up on a busy 2-core machine (torch's import)

HUGE = ('[print("line", i, "of a script that prints a lot") for i in range(50_000)]; '
        'print("y" * 1_000_000, file=sys.stderr); print("z\\n" * 50_000, file=sys.stderr, end=""); '
        'raise RuntimeError("crashed after printing 3 MB")')


@dataclass(frozen=True)
class Row:
    """One failure mode: the script (``VALID`` with ``edits``), how its trial ends (``status``
    in results.json), a substring of its one-line ``error`` (``says``), of its stderr tail
    (``tail_says``; ``None``: no tail expected), the retries it gets (``failures``)."""

    mode: str
    edits: dict[str, str] = field(default_factory=dict)
    status: str = "failed"
    says: str = ""
    tail_says: str | None = None
    failures: int = 0
    own_run: bool = False  # not a trial of the shared run: a test of its own below


ROWS = [
    Row("never reports (hangs)", {"# @after_init": "time.sleep(3600)"}, says="killed as hung", failures=1),
    Row("valid", status="completed"),
    Row("fails at import", {"# @imports": "import seer_user_module_that_does_not_exist"},
        says="ModuleNotFoundError: No module named 'seer_user_module_that_does_not_exist'",
        tail_says="ModuleNotFoundError: No module named", failures=1),
    Row("raises in its first step", {"# @step": 'raise RuntimeError("boom in the first step")'},
        says="RuntimeError: boom in the first step", tail_says='raise RuntimeError("boom in the first step")',
        failures=1),
    Row("reports epochs out of order", {"# @report": "t.report(epoch + 1, val_accuracy=acc)"},
        says="report(epoch): got 2; allowed: the next epoch, 1", tail_says="ConfigError: report(epoch)"),
    Row("reports beyond its target", {"# @after_report": "t.report(epoch + 1, val_accuracy=acc)"},
        says="allowed: an epoch <= until_epoch=1", tail_says="ConfigError: report(epoch): got 2"),
    Row("saves no checkpoint", {"t.epochs(checkpoint=checkpoint)": "t.epochs()"},
        says="without saving a checkpoint for it (the last saved: epoch 0): the trial cannot be resumed",
        tail_says="ends unsaved"),
    Row("never reports the metric", {"t.report(epoch, val_accuracy=acc)": "t.report(epoch, val_acc=acc)"},
        says="report(val_accuracy=...): got 'missing'", tail_says="ConfigError: report(val_accuracy=...)"),
    Row("reports NaN", {"t.report(epoch, val_accuracy=acc)": 't.report(epoch, val_accuracy=float("nan"))'},
        status="diverged", says="epoch 1 reported val_accuracy NaN or infinite"),
    Row("exits 0 without training", {"# @after_init": "sys.exit(0)"},
        says="the script exited (code 0) without training: no epoch reported after epoch 0"),
    Row("prints huge output, then raises", {"# @after_init": HUGE},
        says="RuntimeError: crashed after printing 3 MB", tail_says="crashed after printing 3 MB",
        failures=1),
    Row("killed by a signal (as by the OOM killer)", {"# @step": "os.kill(os.getpid(), 9)"},
        says="rank 0 was ended by SIGKILL (out of memory?", failures=1),
    Row("missing when seer tune starts", status="exit 2, nothing runs", says="trial.script: got 'missing.py'",
        own_run=True),
    Row("deleted while the run goes on",
        {"# @after_init": 'os.unlink(__file__) if t.trial_id == "t000" else None'},
        status="run stops, exit 2; resumable", says="it was deleted or moved after the run started",
        own_run=True),
]
SHARED = [r for r in ROWS if not r.own_run]


def broken(row: Row) -> str:
    src = VALID
    for old, new in row.edits.items():
        assert src.count(old) == 1, (row.mode, old)
        src = src.replace(old, new)
    return src


def experiment(configurations: int, slots: int, script: str = "train.py") -> str:
    return f"""
name = "broken-scripts"
seed = 0
[trial]
script = "{script}"
[training]
max_epochs = 1
min_epochs = 1
global_batch = 16
micro_batch_max = 16
[budget]
time_budget_s = 600         # a backstop: the plan is bound by max_configurations
money_budget_usd = 10.0
[resources]
num_slots = {slots}
world_size_ladder = [1]
[search]
max_configurations = {configurations}
[planner]
profile = "profile.json"
[failures]
hang_timeout_s = {HANG_TIMEOUT_S}
max_failures = 1
[search_space]
lr = {{ distribution = "loguniform", low = 0.05, high = 0.5 }}
"""


PROFILE = {"world_sizes": [1], "speedup": [1.0], "epoch_time_s": 0.05, "startup_s": 5.0, "resize_s": 5.0}


def seer(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seer_torch.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=700)


def processes_of(*folders: Path) -> list[str]:
    """Live processes whose command line names one of ``folders``, or whose environment's
    ``SEER_TRIAL_DIR`` lies in one (a script's workers name neither folder on their command
    line, and leave torchrun's session)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if int(pid) == os.getpid() or state == "Z":
            continue
        trial_dirs = [e[len(b"SEER_TRIAL_DIR="):].decode(errors="replace")
                      for e in env if e.startswith(b"SEER_TRIAL_DIR=")]
        if any(str(f) in cmd or any(d.startswith(str(f)) for d in trial_dirs) for f in folders):
            found.append(f"{pid}: {cmd[:200]}")
    return found


def trial_seconds(trial_dir: Path) -> float:
    """Wall seconds from the trial's first launch (its stderr.log's first launch line) to its
    folder's last write: what the trial cost, retries included."""
    first = re.search(r"=== launch .* at (.+) ===", (trial_dir / "stderr.log").read_text(errors="replace"))
    start = time.mktime(time.strptime(first.group(1), "%a %b %d %H:%M:%S %Y"))
    return max(p.stat().st_mtime for p in trial_dir.iterdir() if p.is_file()) - start


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory) -> dict:
    """The one `seer tune` run whose trial ``t00i`` runs ``SHARED[i]``'s script."""
    home = tmp_path_factory.mktemp("broken")
    (home / "modes").mkdir()
    for i, row in enumerate(SHARED):
        (home / "modes" / f"t{i:03d}.py").write_text(broken(row))
    (home / "train.py").write_text(DISPATCH)
    (home / "profile.json").write_text(json.dumps(PROFILE))
    (home / "exp.toml").write_text(experiment(len(SHARED), slots=3))  # the hung row holds one
    start = time.monotonic()
    proc = seer("tune", "exp.toml", "--run-dir", "run", "--no-report", cwd=home)
    run_dir = home / "run"
    return {"proc": proc, "run_dir": run_dir, "home": home, "seconds": time.monotonic() - start,
            "results": json.loads((run_dir / "results.json").read_text()),
            "state": json.loads((run_dir / "state.json").read_text()),
            "left": processes_of(run_dir, home)}


def test_the_run_goes_on_and_answers_with_the_valid_script(shared_run):
    proc, res = shared_run["proc"], shared_run["results"]
    out = proc.stdout[-4000:] + proc.stderr[-4000:]
    assert proc.returncode == 0, out
    assert [t["trial_id"] for t in res["trials"]] == [f"t{i:03d}" for i in range(len(SHARED))], out
    valid = f"t{SHARED.index(next(r for r in SHARED if r.mode == 'valid')):03d}"
    assert res["best"]["trial_id"] == valid and res["best"]["epochs"] == 1, out
    assert shared_run["left"] == []
    print(f"\nshared run of {len(SHARED)} scripts: {shared_run['seconds']:.1f} s")


@pytest.mark.parametrize("row", ROWS, ids=[r.mode for r in ROWS])
def test_user_script_failure(row: Row, request, tmp_path):
    if row.own_run:
        {"missing when seer tune starts": _missing_at_start,
         "deleted while the run goes on": _deleted_mid_run}[row.mode](row, tmp_path)
        return
    run = request.getfixturevalue("shared_run")
    tid = f"t{SHARED.index(row):03d}"
    entry = next(t for t in run["results"]["trials"] if t["trial_id"] == tid)
    journaled = next(t for t in run["state"]["trials"] if t["trial_id"] == tid)
    seconds = trial_seconds(run["run_dir"] / "trials" / tid)
    print(f"\n{row.mode} | {entry['status']} | {entry['error']} | {seconds:.1f} s")
    assert entry["status"] == row.status, entry
    assert entry["failures"] == row.failures, entry
    if row.status == "completed":
        assert entry["error"] is None and entry["stderr_tail"] == [] and 0.0 <= entry["val_accuracy"] <= 1.0
        return
    assert row.says in entry["error"], entry
    assert "\n" not in entry["error"] and len(entry["error"]) < 600
    assert journaled["error"] == entry["error"] and journaled["stderr_tail"] == entry["stderr_tail"]
    tail = entry["stderr_tail"]
    assert len(tail) <= 8 and all(len(line) < 300 for line in tail)
    if row.tail_says is None:  # the script printed nothing: torchrun's own report is left out
        assert tail == [], tail
    else:
        assert any(row.tail_says in line for line in tail), tail
    if any(line.startswith("Traceback") for line in tail):  # it ends at the exception, the error's line
        assert tail[-1] == entry["error"], tail
    # The live status: the trial's end, its reason on the line, the tail under it.
    out = run["proc"].stdout
    ended = "diverged" if row.status == "diverged" else "failed"
    event = re.search(rf"\] {tid} {ended}: (.*)\n((?:    \| .*\n)*)", out)
    assert event is not None and row.says in event.group(1), out[-3000:]
    if row.tail_says is not None:
        assert row.tail_says in event.group(2), event.group(0)
    assert f"{tid} failed (" not in out or row.failures > 0  # retried only where a retry can help


def _missing_at_start(row: Row, tmp_path: Path) -> None:
    (tmp_path / "profile.json").write_text(json.dumps(PROFILE))
    (tmp_path / "exp.toml").write_text(experiment(2, slots=1, script="missing.py"))
    start = time.monotonic()
    proc = seer("tune", "exp.toml", "--run-dir", "run", "--no-report", cwd=tmp_path)
    print(f"\n{row.mode} | exit {proc.returncode} | {proc.stderr.strip()} | {time.monotonic() - start:.1f} s")
    assert proc.returncode == 2, proc.stderr
    assert row.says in proc.stderr and "an existing file" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()  # nothing ran, nothing was written


def _deleted_mid_run(row: Row, tmp_path: Path) -> None:
    """t000 deletes the script while it trains (and finishes); t001's launch finds it gone: the
    run stops with the file named, results.json keeps t000; the file back, `seer resume` trains
    t001 and answers."""
    script = tmp_path / "train.py"
    script.write_text(broken(row))
    (tmp_path / "profile.json").write_text(json.dumps(PROFILE))
    (tmp_path / "exp.toml").write_text(experiment(2, slots=1))
    start = time.monotonic()
    proc = seer("tune", "exp.toml", "--run-dir", "run", "--no-report", cwd=tmp_path)
    print(f"\n{row.mode} | exit {proc.returncode} | {proc.stderr.strip()} | {time.monotonic() - start:.1f} s")
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr
    assert not script.exists()
    assert row.says in proc.stderr and str(script) in proc.stderr and "seer resume" in proc.stderr
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert row.says in res["stop_reason"]
    assert [(t["trial_id"], t["status"]) for t in res["trials"]] == [("t000", "completed")], res["trials"]
    assert processes_of(tmp_path) == []
    script.write_text(broken(Row("valid")))
    resumed = seer("resume", "run", "--no-report", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    assert {t["trial_id"]: t["status"] for t in res["trials"]} == {"t000": "completed", "t001": "completed"}
    assert res["best"] is not None
    assert processes_of(tmp_path) == []
    print(f"  (with the resume: {time.monotonic() - start:.1f} s)")
