"""Resume and durability (issue 13, faults 3 and 4 and the "also seen" items).

- A trial's progress is what its durable checkpoint holds: metrics lines past it are debris
  (fault 3); the worker marks the durable epoch in ``checkpoint.json`` right after the
  checkpoint is moved into place, and the executor counts only the epochs up to it.
- A resume replays the policy with the resources its decisions were made with; new slots
  apply from the next decision on (a W they cannot hold is re-decided); a resume that fails
  leaves the journal byte for byte as it found it (fault 4).
- No temporary checkpoint file survives a resume or a save; the experiment's TensorBoard run
  never repeats a step after a resume; a job that ends by itself leaves no descendant behind;
  a trial without a checkpoint is not said to be relaunched "from its checkpoint".

The real-process versions are in tests/integration/test_resume_faults.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seer_torch.backends.base import JobResult, JobSpec
from seer_torch.backends.local import LocalBackend
from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import parse_experiment
from seer_torch.errors import SeerError
from seer_torch.executor import Trial, Tuner, journal
from seer_torch.policies.registry import make_policy

REPO = Path(__file__).resolve().parents[2]


def _curve(config, epoch):
    return config["q"] * (1.0 - 0.5 / epoch)


def _setup(tmp_path: Path, time_budget_s: float = 150.0):
    """9 configurations, rungs 1, 3, 9 at W 1, 2, 2 (the deadline makes SEER widen)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    profile = tmp_path / "profile.json"
    profile.write_text(
        json.dumps({"world_sizes": [1, 2], "speedup": [1.0, 1.9], "epoch_time_s": 10.0, "startup_s": 2.0})
    )
    exp = parse_experiment(
        {
            "name": "durable",
            "seed": 5,
            "training": {
                "max_epochs": 9,
                "min_epochs": 1,
                "eta": 3,
                "global_batch": 64,
                "micro_batch_max": 64,
            },
            "budget": {
                "time_budget_s": time_budget_s,
                "money_budget_usd": 1e6,
                "price_usd_per_slot_hour": 3.6,
            },
            "resources": {"num_slots": 2, "world_size_ladder": [1, 2]},
            "search": {"max_configurations": 9},
            "planner": {"profile": str(profile), "num_finalists": 1},
            "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}},
        }
    )
    clock = SimulatedClock()
    backend = SimulatedBackend(
        2, clock, epoch_time_s=10.0, speedup={1: 1.0, 2: 1.9}.__getitem__, startup_s=2.0, curve=_curve
    )
    return exp, clock, backend


def _crash(tmp_path: Path, crash_tuner, point: str, time_budget_s: float = 150.0):
    """A run killed outright at ``point``; returns (experiment, clock, backend, run_dir)."""
    exp, clock, backend = _setup(tmp_path, time_budget_s)
    run_dir = tmp_path / "run"
    crash_tuner(point, lambda: Tuner(exp, run_dir, backend, policy=make_policy("seer"), clock=clock).run())
    return exp, clock, backend, run_dir


def _rows(path: Path, epochs: range) -> None:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "epoch": e,
                    "world_size": 1,
                    "val_accuracy": 0.1 * e,
                    "epoch_time_s": 1.0,
                    **({"test_accuracy": 0.1 * e} if e == epochs[-1] else {}),
                }
            )
            + "\n"
            for e in epochs
        )
    )


def _checkpoint_state(epoch: int) -> dict:
    return {"epoch": epoch, "step": 10 * epoch, "model": {}}


# ------------------------------------------------------------------ fault 3: durable progress
def test_metrics_past_the_durable_checkpoint_are_not_progress(tmp_path):
    """The issue's trial: epochs 1-5 in metrics.jsonl, no checkpoint.pt (its first save was
    half-written when the job was stopped). The executor counts it at epoch 0, and forgets
    accuracies an earlier read (an old journal) had taken from the debris."""
    from seer_torch.worker import save_checkpoint

    exp, _, _ = _setup(tmp_path)
    trial_dir = tmp_path / "trials" / "t000"
    trial_dir.mkdir(parents=True)
    _rows(trial_dir / "metrics.jsonl", range(1, 6))
    (trial_dir / ".checkpoint.pt.abcd.tmp").write_bytes(b"half a checkpoint")
    tuner = Tuner(exp, None, LocalBackend(2), policy=make_policy("seer"))
    trial = Trial("t000", {"q": 0.7}, index=0, epochs=5, metric_by_epoch={e: 0.1 * e for e in range(1, 6)})
    spec = JobSpec("t000", trial_dir, 1, 5)
    stopped = JobResult(spec, -15, 0.0, 9.0, 0.0, stopped=True)
    assert tuner.loop.read_results(trial, stopped) == "stopped"
    assert (trial.epochs, trial.metric_by_epoch) == (0, {})
    assert trial.view(tuner.book.objective).epochs == 0

    # Once a checkpoint at epoch 3 is durable, epochs 1-3 count and 4-5 stay debris.
    save_checkpoint(str(trial_dir / "checkpoint.pt"), _checkpoint_state(3))
    assert tuner.loop.read_results(trial, stopped) == "stopped"
    assert trial.epochs == 3 and sorted(trial.metric_by_epoch) == [1, 2, 3]


def test_save_checkpoint_marks_the_durable_epoch(tmp_path):
    from seer_torch.worker import save_checkpoint

    path = tmp_path / "checkpoint.pt"
    save_checkpoint(str(path), _checkpoint_state(2))
    assert json.loads((tmp_path / "checkpoint.json").read_text())["epoch"] == 2
    save_checkpoint(str(path), _checkpoint_state(5))
    assert json.loads((tmp_path / "checkpoint.json").read_text())["epoch"] == 5


def test_save_checkpoint_leaves_no_temporary_file(tmp_path):
    """A writer killed mid-save left its temporary files, and checkpoint.prev.pt as a second
    link to checkpoint.pt (killed between the rotation and the move): the next save removes
    the temporaries, and rotating between two links to one file (a rename that does nothing)
    leaves no link behind."""
    import torch

    from seer_torch.worker import save_checkpoint

    path = tmp_path / "checkpoint.pt"
    torch.save(_checkpoint_state(1), path)
    os.link(path, tmp_path / "checkpoint.prev.pt")
    (tmp_path / ".checkpoint.pt.x1y2.tmp").write_bytes(b"torn")
    (tmp_path / "checkpoint.prev.pt.4242.tmp").write_bytes(b"torn")
    save_checkpoint(str(path), _checkpoint_state(2))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.json", "checkpoint.prev.pt", "checkpoint.pt"]
    assert torch.load(path, weights_only=True)["epoch"] == 2
    assert torch.load(tmp_path / "checkpoint.prev.pt", weights_only=True)["epoch"] == 1


def test_a_resume_removes_temporary_files_a_killed_writer_left(tmp_path, crash_tuner):
    exp, clock, backend, run_dir = _crash(tmp_path, crash_tuner, "launch:12")
    stale = [
        run_dir / "trials" / "t000" / ".checkpoint.pt.k9.tmp",
        run_dir / "trials" / "t003" / "checkpoint.prev.pt.77.tmp",
    ]
    for f in stale:
        f.write_bytes(b"torn")
    Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock).run(resume=True)
    assert [f for f in stale if f.exists()] == []


# ------------------------------------------------------------------ fault 4: other resources
def test_a_resume_with_fewer_slots_replays_with_the_slots_it_decided_with(tmp_path, crash_tuner):
    """Killed while round 2 runs at W=2 on 2 slots; resumed on 1 slot: the replay uses the 2
    slots the decisions were made with, the W=2 jobs are re-decided at W=1, and the run ends
    with a valid answer within its deadline (on one slot the deadline binds: SEER trains the
    best as far as it allows, past the rung it had reached)."""
    exp, clock, backend, run_dir = _crash(tmp_path, crash_tuner, "launch:10")
    state = json.loads((run_dir / "state.json").read_text())
    assert [j["world_size"] for j in state["running"]] == [2]
    backend.num_slots = 1  # the same cluster, one slot fewer
    launches_before = len(backend.launches)
    res = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock).run(resume=True)
    after = backend.launches[launches_before:]
    assert after and {j.spec.world_size for j in after} == {1}
    assert res["best"] is not None and res["best"]["epochs"] > 3
    assert res["stop_reason"].startswith("BEST EFFORT") or res["best"]["epochs"] == 9
    assert res["budget"]["time_used_s"] <= exp.budget.time_budget_s
    assert res["num_slots"] == 1


def test_a_failed_resume_leaves_the_journal_as_it_found_it(tmp_path, crash_tuner):
    exp, clock, backend, run_dir = _crash(tmp_path, crash_tuner, "launch:10")
    lines = (run_dir / "decisions.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["decisions"][0]["until_epoch"] += 1  # the policy will decide differently on replay
    (run_dir / "decisions.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    names = ("state.json", "state.prev.json", "decisions.jsonl", "results.json")
    before = {n: (run_dir / n).read_bytes() if (run_dir / n).exists() else None for n in names}
    with pytest.raises(SeerError, match="decided differently on replay"):
        Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock).run(resume=True)
    after = {n: (run_dir / n).read_bytes() if (run_dir / n).exists() else None for n in names}
    assert after == before


# ------------------------------------------------------------------ a torn decisions.jsonl
def test_a_decision_line_cut_short_by_a_crash_is_left_out_with_a_warning(tmp_path, crash_tuner):
    """Killed while appending decision 7 (never counted, never carried out): the resume says
    so, naming the file and the line, and goes on as if the line had not been written."""
    exp, clock, backend, run_dir = _crash(tmp_path, crash_tuner, "launch:10")
    path = run_dir / "decisions.jsonl"
    complete = path.read_text()
    assert json.loads((run_dir / "state.json").read_text())["decide_calls"] == 6 == len(complete.splitlines())
    path.write_text(complete + '{"i": 7, "snapshot": {"now_s": 81.')
    events = []
    res = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock,
                       on_event=lambda msg, st: events.append(msg)).run(resume=True)
    assert res["best"] is not None and res["best"]["epochs"] == 9
    assert events.count(f"warning: {path} line 7 is incomplete (no newline at its end: the run was killed "
                        "while it was appended); ignored: a decision not fully written was never carried "
                        "out") == 1
    lines = path.read_text().splitlines()
    assert lines[:6] == complete.splitlines()  # the fragment is gone, not glued to the next line
    assert [json.loads(x)["i"] for x in lines] == list(range(1, len(lines) + 1))


def test_decision_lines_follow_the_write_ahead_log_rule(tmp_path):
    path = tmp_path / "decisions.jsonl"
    assert journal.read_decision_lines(path) == journal.DecisionLines(())
    good = ('{"i": 1}', '{"i": 2}')
    path.write_text("\n".join(good) + "\n")
    assert journal.read_decision_lines(path) == journal.DecisionLines(good)
    path.write_text("\n".join(good) + '\n{"i": 3}')  # whole JSON, but its newline never written
    assert journal.read_decision_lines(path) == journal.DecisionLines(good, 3, "no newline at its end")
    path.write_text("\n".join(good) + "\n\0\0\0\n")  # a power loss's zeros, then a newline
    got = journal.read_decision_lines(path)
    assert (got.lines, got.torn) == (good, 3) and got.torn_why.startswith("not valid JSON")
    path.write_text('{"i": 1}\n{"i": 2\n{"i": 3}\n')  # in the middle: corrupt, never skipped
    with pytest.raises(SeerError, match=f"resume: {path} line 2 is corrupt \\(not valid JSON.*1 line\\(s\\) "
                                        "follow it"):
        journal.read_decision_lines(path)


def test_a_decision_line_the_journal_counts_but_the_disk_lost_fails_naming_it(tmp_path, crash_tuner):
    exp, clock, backend, run_dir = _crash(tmp_path, crash_tuner, "launch:10")
    path = run_dir / "decisions.jsonl"
    text = path.read_text()
    path.write_text(text[:-40])  # line 6, counted in state.json, lost its end
    before = {n: (run_dir / n).read_bytes() for n in ("state.json", "decisions.jsonl")}
    with pytest.raises(SeerError) as info:
        Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock).run(resume=True)
    assert str(info.value).startswith(f"resume: {path} line 6 is incomplete (no newline at its end), yet "
                                      f"{run_dir / 'state.json'} counts 6 decisions made")
    assert {n: (run_dir / n).read_bytes() for n in before} == before


def test_a_corrupt_decision_line_in_the_middle_fails_naming_it(tmp_path, crash_tuner):
    exp, clock, backend, run_dir = _crash(tmp_path, crash_tuner, "launch:10")
    path = run_dir / "decisions.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:50]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SeerError) as info:
        Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock).run(resume=True)
    message = str(info.value)
    assert message.startswith(f"resume: {path} line 3 is corrupt (not valid JSON")
    assert "3 line(s) follow it" in message
    assert "cut short" not in message.split("(the last line")[0]


def test_a_decision_whose_write_fails_is_not_counted(tmp_path, monkeypatch):
    """The count follows the write: a tuner whose disk filled up while it wrote a decision
    journals the decisions before it, so a resume leaves the torn line out."""
    exp, clock, backend = _setup(tmp_path)

    class FullDisk:  # the decision's line gets half written, then the disk is full
        def __init__(self, path, *a, **kw):
            self.f = open(path, *a, **kw)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[: len(text) // 2])
            raise OSError(28, "No space left on device")

    tuner = Tuner(exp, tmp_path / "run", backend, policy=make_policy("seer"), clock=clock)
    monkeypatch.setattr(journal, "open", FullDisk, raising=False)  # decisions.jsonl's appends only
    with pytest.raises(OSError, match="No space left"):
        tuner.run()
    assert tuner.journal.decide_calls == 0
    run_dir = tmp_path / "run"
    assert json.loads((run_dir / "state.json").read_text())["decide_calls"] == 0
    got = journal.read_decision_lines(run_dir / "decisions.jsonl")
    assert (got.lines, got.torn) == ((), 1)  # left out by a resume: it never happened


# ------------------------------------------------------------------ also seen
def test_the_experiment_tensorboard_never_repeats_a_step_after_a_resume(tmp_path, crash_tuner):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exp, clock, backend, run_dir = _crash(tmp_path, crash_tuner, "launch:12")  # round 1 logged
    res = Tuner.resume(run_dir, backend, make_policy=make_policy, clock=clock).run(resume=True)
    acc = EventAccumulator(str(run_dir / "tensorboard" / "experiment"), size_guidance={"scalars": 0})
    acc.Reload()
    completed = [r["index"] for r in res["rounds"] if r["completed"]]
    assert len(completed) == 3
    for tag in acc.Tags()["scalars"]:
        if tag == "experiment/best_val_accuracy":
            continue
        assert [e.step for e in acc.Scalars(tag)] == completed, tag
    # and the checking script looks at experiment/ too, and finds it in order
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_tensorboard.py"), str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "experiment/time_used_s" in check.stdout


def test_check_tensorboard_fails_on_a_repeated_experiment_step(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for steps in ([1, 2], [2]):  # a second writer logs step 2 again, as a resume once did
        w = SummaryWriter(log_dir=str(tmp_path / "tensorboard" / "experiment"))
        for s in steps:
            w.add_scalar("experiment/time_used_s", float(s), s)
        w.close()
        time.sleep(1.1)  # event files are named by the second
    check = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "check_tensorboard.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 1, check.stdout + check.stderr
    assert "REPEATED OR BACKWARD STEPS" in check.stdout


def test_a_trial_without_a_checkpoint_is_not_relaunched_from_one(tmp_path, crash_tuner):
    exp, clock, backend, run_dir = _crash(tmp_path, crash_tuner, "launch:1")
    messages: list[str] = []
    Tuner.resume(
        run_dir, backend, make_policy=make_policy, clock=clock, on_event=lambda m, s: messages.append(m)
    ).run(resume=True)
    relaunched = [m for m in messages if m.startswith("t000: ") and "relaunched" in m]
    assert relaunched, messages
    assert not [m for m in relaunched if "from its checkpoint" in m], relaunched


FAKE_TORCHRUN = """#!{python}
# Stands in for `python -m torch.distributed.run ...`: starts a descendant in a session of its
# own (as torchrun's workers are, and as a user's script may do) and ends by itself.
import os, subprocess
p = subprocess.Popen(["sleep", "600"], start_new_session=True)
with open(os.environ["FAKE_PID_FILE"], "w") as f:
    f.write(str(p.pid))
"""


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def test_a_job_that_ends_by_itself_leaves_no_descendant(tmp_path, monkeypatch):
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_TORCHRUN.format(python=sys.executable))
    fake.chmod(0o755)
    pid_file = tmp_path / "pid"
    monkeypatch.setenv("FAKE_PID_FILE", str(pid_file))
    backend = LocalBackend(1, python=str(fake))
    job = backend.launch(JobSpec("t000", tmp_path / "t000", 1, 1))
    pid = None
    try:
        deadline = time.monotonic() + 60
        res = None
        while res is None and time.monotonic() < deadline:
            res = backend.poll(job)
            time.sleep(0.05)
        assert res is not None and res.returncode == 0
        pid = int(pid_file.read_text())
        assert not _alive(pid), f"descendant {pid} outlived its job"
    finally:
        if pid is None and pid_file.exists():
            pid = int(pid_file.read_text())
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
