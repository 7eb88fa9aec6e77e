"""What a failed job said (seer_torch.backends.joblog) and the one-line reason the executor
gives (seer_torch.executor.failures), on stderr text as torchrun 2.x writes it (copied from real
jobs of the local backend, paths shortened)."""

from __future__ import annotations

from pathlib import Path

from seer_torch.backends.base import JobResult, JobSpec, job_error_text
from seer_torch.backends.joblog import (
    LINE_CHARS,
    TAIL_LINES,
    WINDOW_BYTES,
    JobLog,
    parse_job_log,
    read_job_log,
)
from seer_torch.executor.failures import clean_exit_failure, crash_failure, diverged_reason

LAUNCHER = """Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/v/lib/python3.11/site-packages/torch/distributed/run.py", line 1142, in <module>
    main()
  File "/v/lib/python3.11/site-packages/torch/distributed/launcher/api.py", line 386, in launch_agent
    raise ChildFailedError(
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
/tmp/x/train.py FAILED
------------------------------------------------------------
Failures:
{others}
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-06_23:01:09
  host      : localhost
  rank      : {rank} (local_rank: {rank})
  exitcode  : {code} (pid: 3814)
  error_file: <N/A>
  traceback : {traceback}
============================================================
"""

# W=2: rank 1 raised first; rank 0 then failed because its peer closed the connection.
W2 = """[rank1]: Traceback (most recent call last):
[rank1]:   File "/tmp/x/train.py", line 45, in <module>
[rank1]:     main()
[rank1]:   File "/tmp/x/train.py", line 34, in main
[rank1]:     if t.rank == 1: raise RuntimeError("boom on rank 1")
[rank1]:                     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
[rank1]: RuntimeError: boom on rank 1
[rank0]: Traceback (most recent call last):
[rank0]:   File "/tmp/x/train.py", line 36, in main
[rank0]:     loss.backward()
[rank0]: RuntimeError: [gloo/transport/tcp/pair.cc:561] Connection closed by peer [127.0.0.1]:11690.
W1206 23:01:09.523000 3685 .v/torch/distributed/elastic/api.py:1028] Sending process 3813 closing signal
E1206 23:01:09.642000 3685 .v/torch/distributed/elastic/api.py:1002] failed (exitcode: 1) local_rank: 1
""" + LAUNCHER.format(
    others="[1]:\n  exitcode  : -15 (pid: 3813)  (SIGTERM)\n  traceback : Signal 15 (SIGTERM) received",
    rank=1, code=1, traceback="To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html")

KILLED = (
    "about to die\nE1206 23:14:17.347000 15265 .v/torch/distributed/elastic/api.py:1002] failed (exit -9)\n"
    + LAUNCHER.format(others="  <NO_OTHER_FAILURES>", rank=0, code=-9,
                      traceback="Signal 9 (SIGKILL) received by PID 15320"))

# A hung job the tuner stopped: torchrun's agent logs the signal and its launcher raises.
HUNG = """W1206 22:59:56.214000 1665 torch/distributed/elastic/agent/api.py:753] Received 15 death signal
W1206 22:59:56.215000 1665 torch/distributed/elastic/api.py:1028] Sending process 1736 closing signal SIGTERM
Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/v/lib/python3.11/site-packages/torch/distributed/run.py", line 1129, in run
    elastic_launch(
  File "/v/torch/distributed/elastic/multiprocessing/api.py", line 86, in _terminate_process_handler
    raise SignalException(f"Process {os.getpid()} got signal: {sigval}", sigval=sigval)
torch.distributed.elastic.multiprocessing.api.SignalException: Process 1665 got signal: 15
"""


def test_the_failing_ranks_traceback_is_kept_and_torchruns_report_left_out():
    log = parse_job_log(W2.splitlines())
    assert log.rank == 1 and log.signal is None
    assert log.exception == "RuntimeError: boom on rank 1"  # the root cause, not rank 0's consequence
    assert log.tail[-1] == "[rank1]: RuntimeError: boom on rank 1"
    assert log.tail[0] == "[rank1]: Traceback (most recent call last):" and len(log.tail) == 7
    assert not any("torch/distributed" in line or "ChildFailedError" in line for line in log.tail)


def test_a_signal_is_read_from_the_box_and_a_hung_jobs_launcher_noise_is_dropped():
    log = parse_job_log(KILLED.splitlines())
    assert log == JobLog(tail=("about to die",), exception=None, rank=0, signal="SIGKILL")
    assert parse_job_log(HUNG.splitlines()) == JobLog()


def test_a_chained_exception_gives_its_last_line():
    lines = ["Traceback (most recent call last):", '  File "a.py", line 1', "KeyError: 'lr'", "",
             "During handling of the above exception, another exception occurred:", "",
             "Traceback (most recent call last):", '  File "a.py", line 3', "ValueError: no lr"]
    log = parse_job_log(lines)
    assert log.exception == "ValueError: no lr" and log.tail[-1] == "ValueError: no lr"


def test_only_the_last_launch_is_read_and_huge_output_costs_a_bounded_window(tmp_path: Path):
    old = "=== launch W=1 at then ===\nTraceback (most recent call last):\n  x\nOldError: before\n"
    huge_line = "y" * (3 * WINDOW_BYTES)
    new = ("\n=== launch W=1 at now ===\n" + "".join(f"line {i}\n" for i in range(20_000)) + huge_line
           + '\nTraceback (most recent call last):\n  File "t.py", line 9\nRuntimeError: ' + "z" * 1000)
    (tmp_path / "stderr.log").write_text(old + new + "\n" + "\n".join(KILLED.splitlines()[1:]) + "\n")
    log = read_job_log(tmp_path)
    assert log.exception is not None and log.exception.startswith("RuntimeError: zzz")
    assert log.exception.endswith(f"... [{len('RuntimeError: ') + 1000 - LINE_CHARS} more characters]")
    assert len(log.tail) <= TAIL_LINES and all(len(line) <= LINE_CHARS + 40 for line in log.tail)
    assert log.tail[-3:-1] == ("Traceback (most recent call last):", '  File "t.py", line 9')
    assert log.rank == 0 and log.signal == "SIGKILL"
    assert read_job_log(tmp_path / "missing") == JobLog()


def test_job_error_text_falls_back_to_the_exception_then_the_signal(tmp_path: Path):
    res = JobResult(JobSpec("t", tmp_path, 1, 1), 1, 0.0, 1.0, 0.0)
    (tmp_path / "stderr.log").write_text("=== launch W=1 ===\n" + KILLED)
    assert job_error_text(res) == ("rank 0 was ended by SIGKILL (out of memory? the kernel's OOM killer "
                                   f"sends it); see {tmp_path / 'stderr.log'}")
    (tmp_path / "stderr.log").write_text("=== launch W=2 ===\n" + W2)
    assert job_error_text(res) == "RuntimeError: boom on rank 1"
    (tmp_path / "error.json").write_text('{"message": {"message": "ValueError: from the error file"}}')
    assert job_error_text(res) == "ValueError: from the error file"


def test_crashes_are_retried_unless_the_trial_api_refused_the_script():
    log = parse_job_log(W2.splitlines())
    crash = crash_failure(log.exception, log, world_size=2)
    assert crash.retry and crash.reason == "rank 1: RuntimeError: boom on rank 1"
    contract = crash_failure("seer_torch.errors.ConfigError: report(epoch): got 2; allowed: ...", JobLog(), 1)
    assert not contract.retry and "refused" in contract.why_not
    assert not crash_failure("CheckpointError: no usable checkpoint", JobLog(), 1).retry


def test_a_clean_exit_short_of_the_target_is_never_retried_and_says_what_is_missing():
    unsaved = clean_exit_failure(before_epoch=0, durable_epoch=0, reported_epoch=2, until_epoch=3)
    assert not unsaved.retry
    assert "after reporting epoch 2 without saving a checkpoint" in unsaved.reason
    assert "cannot be resumed, resized or trained further" in unsaved.reason
    idle = clean_exit_failure(before_epoch=3, durable_epoch=3, reported_epoch=3, until_epoch=9)
    assert "without training: no epoch reported after epoch 3, its target was epoch 9" in idle.reason
    short = clean_exit_failure(before_epoch=3, durable_epoch=5, reported_epoch=5, until_epoch=9)
    assert short.reason == "the script exited (code 0) after epoch 5, short of its target epoch 9"


def test_diverged_names_what_went_non_finite():
    row = {"epoch": 2, "diverged": True, "val_loss": None, "val_accuracy": 0.5, "epoch_time_s": 1.0}
    assert diverged_reason(row) == "epoch 2 reported val_loss NaN or infinite: the trial diverged"
    assert diverged_reason({"epoch": 4, "diverged": True, "diverged_loss": "nan", "train_loss": None}) == (
        "training loss became nan in epoch 4 (NaN or infinite)")
