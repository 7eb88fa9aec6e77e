"""The kept-alive protocol of the trial API (seer_torch/runfiles.py, ``KEEP_ALIVE_ENV``) in-process
at W = 1: a launch runs in a thread of the test, which plays the tuner's backend -- it waits for
``parked.json`` and writes ``control.json`` orders. Real processes and the tuner: the worker
contract (tests/contract) and tests/integration/test_keep_alive_faults.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import torch

import seer_torch.trial as trial
from seer_torch.runfiles import (
    CONTROL_FILE,
    GENERATION_ENV,
    KEEP_ALIVE_ENV,
    PARK_TIMEOUT_ENV,
    PARKED_FILE,
    TUNER_PID_ENV,
)
from seer_torch.testing import kept_alive_env, parked_at, write_order

WAIT_S = 30.0


@pytest.fixture(autouse=True)
def _kept_alive(monkeypatch):
    """Outside torchrun, kept alive, generation 0, this process as the tuner."""
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "SEER_TRIAL_DIR", "SEER_UNTIL_EPOCH",
                 "SEER_RECORD_SAMPLES", "SEER_DEBUG_STEP_DELAY_S", "SEER_PROBE_STEPS", PARK_TIMEOUT_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in kept_alive_env(os.getpid()).items():
        monkeypatch.setenv(name, value)


def trial_dir_of(tmp_path, name="t0", seed=3):
    d = tmp_path / name
    d.mkdir()
    (d / "config.json").write_text(json.dumps({
        "trial_id": name, "configuration": {"lr": 0.1}, "global_batch": 4, "micro_batch_max": 4,
        "max_epochs": 5, "seed": seed, "tensorboard_dir": None}))
    return d


class Launch(threading.Thread):
    """One launch in a thread: load, report each epoch, save ``{"w": epoch}`` (or save nothing,
    ``checkpoint=False``); ``seen`` the epochs it trained, ``next_trial`` what it was handed."""

    def __init__(self, trial_dir, until_epoch, *, checkpoint=True):
        super().__init__(daemon=True)
        self.trial_dir, self.until_epoch, self.checkpoint = trial_dir, until_epoch, checkpoint
        self.seen, self.next_trial, self.error = [], None, None
        self.start()

    def run(self):
        try:
            with trial.init(self.trial_dir, self.until_epoch, cpu_threads=None) as t:
                state = t.load()
                w = state["w"].clone() if state is not None else torch.zeros(())
                for epoch in t.epochs(checkpoint=(lambda: {"w": w}) if self.checkpoint else None):
                    self.seen.append(epoch)
                    w.fill_(epoch)
                    t.report(epoch, val_accuracy=epoch / 10)
                self.next_trial = t.next_trial
        except BaseException as error:  # noqa: BLE001 -- shown by the test
            self.error = error

    def ended(self, timeout_s=WAIT_S):
        self.join(timeout_s)
        assert not self.is_alive(), "the launch did not end"
        assert self.error is None, repr(self.error)
        return self


def wait_parked(trial_dir, generation, launch):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        parked = parked_at(trial_dir, generation)
        if parked is not None:
            return parked
        assert launch.is_alive(), f"the launch ended instead of parking: {launch.error!r}"
        time.sleep(0.01)
    raise AssertionError(f"no park at generation {generation}")


def order(where, generation, action, **fields):
    """Write an order to the ``control.json`` of folder ``where``."""
    write_order(where, generation, action, **fields)


def saved_epoch(trial_dir):
    return torch.load(trial_dir / "checkpoint.pt", weights_only=True)["epoch"]


def metric_epochs(trial_dir):
    return [json.loads(line)["epoch"] for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_kept_alive_launch_parks_at_each_target_saved_and_goes_on_when_told(tmp_path):
    d = trial_dir_of(tmp_path)
    launch = Launch(d, 1)
    parked = wait_parked(d, 0, launch)
    assert parked["epoch"] == 1 and saved_epoch(d) == 1 and launch.seen == [1]
    time.sleep(0.2)
    assert launch.is_alive() and launch.seen == [1]  # waits for its order, trains nothing meanwhile
    order(d, 1, "continue", until_epoch=3)
    assert wait_parked(d, 1, launch)["epoch"] == 3 and saved_epoch(d) == 3
    order(d, 2, "stop")
    launch.ended()
    assert launch.seen == [1, 2, 3] and launch.next_trial is None
    assert metric_epochs(d) == [1, 2, 3]


def test_an_order_of_an_old_generation_is_not_obeyed(tmp_path):
    d = trial_dir_of(tmp_path)
    order(d, 0, "stop")  # left by an earlier job: not newer than this job's generation 0
    launch = Launch(d, 1)
    wait_parked(d, 0, launch)
    time.sleep(0.3)
    assert launch.is_alive()
    order(d, 1, "continue", until_epoch=2)
    wait_parked(d, 1, launch)
    order(d, 1, "stop")  # the same generation again: already obeyed, not a new order
    time.sleep(0.3)
    assert launch.is_alive()
    order(d, 2, "stop")
    assert launch.ended().seen == [1, 2]


def test_a_parked_launch_whose_tuner_is_gone_ends_by_itself_keeping_its_checkpoint(tmp_path, monkeypatch):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    monkeypatch.setenv(TUNER_PID_ENV, str(gone.pid))
    d = trial_dir_of(tmp_path)
    launch = Launch(d, 2)
    wait_parked(d, 0, launch)
    start_s = time.monotonic()
    assert launch.ended(timeout_s=10).seen == [1, 2]
    assert time.monotonic() - start_s < 5.0  # the tuner is looked for about every second
    assert saved_epoch(d) == 2 and metric_epochs(d) == [1, 2]


def test_a_parked_launch_ends_after_the_park_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv(PARK_TIMEOUT_ENV, "0.3")
    d = trial_dir_of(tmp_path)
    launch = Launch(d, 1)
    wait_parked(d, 0, launch)
    assert launch.ended(timeout_s=10).seen == [1] and saved_epoch(d) == 1


def test_a_launch_that_saves_nothing_does_not_park(tmp_path):
    """Nothing saved, nothing to go on from or resume elsewhere: the launch ends at its target."""
    d = trial_dir_of(tmp_path)
    launch = Launch(d, 2, checkpoint=False).ended()
    assert launch.seen == [1, 2] and not (d / PARKED_FILE).exists()


def test_without_keep_alive_a_launch_ends_at_its_target(tmp_path, monkeypatch):
    monkeypatch.delenv(KEEP_ALIVE_ENV)
    d = trial_dir_of(tmp_path)
    assert Launch(d, 2).ended().seen == [1, 2]
    assert not (d / PARKED_FILE).exists() and saved_epoch(d) == 2


def test_a_switch_order_hands_over_the_next_trial_which_parks_in_its_own_folder(tmp_path, monkeypatch):
    first, second = trial_dir_of(tmp_path, "t0"), trial_dir_of(tmp_path, "t1", seed=4)
    launch = Launch(first, 1)
    wait_parked(first, 0, launch)
    monkeypatch.setenv("SEER_SWITCH_MARK", "before")  # restored after the test (take_up sets it)
    order(first, 1, "switch", trial_dir=str(second), until_epoch=2, env={"SEER_SWITCH_MARK": "t1"})
    nxt = launch.ended().next_trial
    assert nxt == trial.NextTrial(str(second), 2, 1, {"SEER_SWITCH_MARK": "t1"})
    assert saved_epoch(first) == 1
    # the order was read: nothing of the job that moved out stays in the first trial's folder
    assert not (first / CONTROL_FILE).exists()
    for name in (trial.TRIAL_DIR_ENV, trial.UNTIL_EPOCH_ENV):
        monkeypatch.setenv(name, "unset")  # restored after the test
    trial.take_up(nxt)
    assert (os.environ["SEER_SWITCH_MARK"], os.environ[trial.TRIAL_DIR_ENV],
            os.environ[trial.UNTIL_EPOCH_ENV], os.environ[GENERATION_ENV]) == (
        "t1", str(second), "2", "1")
    # the next launch reads its folder, target and generation from the environment
    taken = Launch(None, None)
    assert wait_parked(second, 1, taken)["epoch"] == 2
    order(second, 2, "stop")
    assert taken.ended().seen == [1, 2] and saved_epoch(second) == 2


def test_a_launch_that_parks_wakes_the_tuner_through_its_pipe(tmp_path, monkeypatch):
    from seer_torch.wakeup import WAKE_FIFO_ENV, WakeUp

    with WakeUp() as wake:
        monkeypatch.setenv(WAKE_FIFO_ENV, wake.path)
        d = trial_dir_of(tmp_path)
        launch = Launch(d, 1)
        assert wake.wait(WAIT_S) is True  # woken, not timed out: the launch parked
        assert parked_at(d, 0)["epoch"] == 1
        write_order(d, 1, "stop")
        launch.ended()
        assert launch.seen == [1]


# -- a parked built-in worker handed a new horizon -------------------------------------------------


def worker_trial_dir(tmp_path, name, max_epochs):
    from seer_torch.training.config import DEFAULT_CONFIG

    d = tmp_path / name
    d.mkdir()
    config = {**DEFAULT_CONFIG, "trial_id": name, "model": "digits_mlp", "max_epochs": max_epochs,
              "configuration": {"lr": 0.1, "weight_decay": 5e-4, "momentum": 0.9, "width": 16,
                                "dropout": 0.0},
              "tensorboard_dir": None}
    (d / "config.json").write_text(json.dumps(config))
    return d


class WorkerLaunch(Launch):
    """The built-in worker's training (``seer_torch.worker.train``) as one launch in a thread."""

    def run(self):
        from seer_torch.training.config import TrialConfig
        from seer_torch.worker import train

        try:
            with trial.init(self.trial_dir, self.until_epoch, cpu_threads=None) as t:
                train(t, TrialConfig.load(self.trial_dir))
        except BaseException as error:  # noqa: BLE001 -- shown by the test
            self.error = error


def set_horizon(trial_dir, max_epochs):
    config = json.loads((trial_dir / "config.json").read_text())
    (trial_dir / "config.json").write_text(json.dumps({**config, "max_epochs": max_epochs}))


def test_a_parked_worker_takes_a_new_horizon_in_place_as_a_relaunch_would(tmp_path):
    # Kept alive: parked at epoch 1 with the schedule to epoch 5, then the re-plan lowers the
    # target to 3 and the order carries it. Relaunched: a new launch from the epoch-1
    # checkpoint with max_epochs 3 (what happened before, at the price of a process start).
    kept = worker_trial_dir(tmp_path, "kept", 5)
    launch = WorkerLaunch(kept, 1)
    wait_parked(kept, 0, launch)
    set_horizon(kept, 3)
    order(kept, 1, "continue", until_epoch=3, max_epochs=3)
    wait_parked(kept, 1, launch)
    order(kept, 2, "stop")
    launch.ended()

    relaunched = worker_trial_dir(tmp_path, "relaunched", 5)
    first = WorkerLaunch(relaunched, 1)
    wait_parked(relaunched, 0, first)
    order(relaunched, 1, "stop")
    first.ended()
    set_horizon(relaunched, 3)
    second = WorkerLaunch(relaunched, 3)
    wait_parked(relaunched, 0, second)
    order(relaunched, 1, "stop")
    second.ended()

    def lines(d):
        return [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]

    assert [r["epoch"] for r in lines(kept)] == [1, 2, 3]
    assert [r["lr"] for r in lines(kept)] == [r["lr"] for r in lines(relaunched)]
    assert [r["train_loss"] for r in lines(kept)] == [r["train_loss"] for r in lines(relaunched)]
    assert lines(kept)[-1]["lr"] == 0.0  # the cosine reached 0 at the new horizon, epoch 3
    a = torch.load(kept / "checkpoint.pt", weights_only=False)["state"]
    b = torch.load(relaunched / "checkpoint.pt", weights_only=False)["state"]
    assert a["lr_schedule"] == b["lr_schedule"] and len(a["lr_schedule"]) == 2  # re-anchored once
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_a_continue_order_carries_a_moved_horizon_only_for_the_built_in_worker():
    from pathlib import Path

    from seer_torch.backends.base import continue_order

    config = {"trial_id": "t0", "max_epochs": 27, "configuration": {"lr": 0.1}}
    before = json.dumps(config).encode()
    moved = json.dumps({**config, "max_epochs": 9}).encode()
    other = json.dumps({**config, "configuration": {"lr": 0.2}, "max_epochs": 9}).encode()
    assert continue_order(before, before, None) == {} == continue_order(before, before, Path("train.py"))
    assert continue_order(before, moved, None) == {"max_epochs": 9}
    assert continue_order(before, moved, Path("train.py")) is None  # a script builds its schedule once
    assert continue_order(before, other, None) is None  # anything else changed: start again
    assert continue_order(before, b"{torn", None) is None and continue_order(None, moved, None) is None
