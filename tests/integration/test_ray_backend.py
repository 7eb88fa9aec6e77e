"""The Ray backend on the session's local Ray cluster (``ray_cluster``: three nodes of one CPU
each): a trial that moves from one node to two trains exactly as it does on the local backend,
and a job whose agent is lost fails at once and leaves no process on any node."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from seer_torch.backends.base import JobResult, JobSpec, job_error_text
from seer_torch.backends.local import LocalBackend, pids_naming, token_pids
from seer_torch.config import parse_experiment
from seer_torch.executor import trial_config

pytestmark = pytest.mark.integration

CONFIGURATION = {"lr": 0.05, "weight_decay": 0.0005, "momentum": 0.9, "width": 32, "dropout": 0.0}
EXPERIMENT = parse_experiment({
    "name": "ray", "seed": 0, "model": {"name": "digits_mlp"}, "data": {"dataset": "digits"},
    "training": {"max_epochs": 9, "min_epochs": 1, "eta": 3, "global_batch": 48, "micro_batch_max": 12},
    "resources": {"num_slots": 3, "world_size_ladder": [1, 2]},
    "search_space": CONFIGURATION,
})
#: What a trial's metrics say about its training (times and its id left out).
TRAINING_KEYS = ("epoch", "step", "samples_seen", "world_size", "accum_steps", "lr", "train_loss",
                 "val_accuracy", "val_loss", "test_accuracy", "test_loss")
TIMEOUT_S = 120.0


def _spec(root: Path, trial_id: str, world_size: int, until_epoch: int) -> JobSpec:
    trial_dir = root / trial_id
    if not (trial_dir / "config.json").exists():
        trial_dir.mkdir(parents=True)
        config = trial_config(EXPERIMENT, trial_id, CONFIGURATION, None)
        (trial_dir / "config.json").write_text(json.dumps(config))
    return JobSpec(trial_id, trial_dir, world_size, until_epoch)


def _wait(done, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while not (value := done()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _ok(res: JobResult) -> JobResult:
    log = res.spec.trial_dir / "stderr.log"
    assert (res.returncode, res.stopped) == (0, False), f"{job_error_text(res)}\n{log.read_text()[-3000:]}"
    return res


def test_a_trial_moved_from_one_node_to_two_trains_as_it_does_locally(ray_cluster, tmp_path):
    from seer_torch.backends.ray_backend import RayBackend

    on_ray, local = RayBackend(3, keep_alive=False), LocalBackend(2, keep_alive=False)
    # The same trial on both backends, side by side: W = 1 to epoch 1, then W = 2 to epoch 2.
    steps = {on_ray: [(1, 1), (2, 2)], local: [(1, 1), (2, 2)]}
    jobs = {b: b.launch(_spec(tmp_path / type(b).__name__, "t000", *steps[b].pop(0))) for b in steps}
    parts = []
    deadline = time.monotonic() + TIMEOUT_S
    while jobs:
        assert time.monotonic() < deadline, "timed out"
        for backend, job in list(jobs.items()):
            res = backend.poll(job)
            if res is None:
                continue
            _ok(res)
            if backend is on_ray:
                parts.append(job.nodes)
            if steps[backend]:
                root = res.spec.trial_dir.parent
                jobs[backend] = backend.launch(_spec(root, "t000", *steps[backend].pop(0)))
            else:
                del jobs[backend]
        time.sleep(0.05)
    assert parts == [[1], [1, 1]]  # W = 2 ran as one worker on each of two nodes (c10d rendezvous)
    rows = {b: b.read_metrics(_spec(tmp_path / type(b).__name__, "t000", 1, 2)) for b in (on_ray, local)}
    assert [r["world_size"] for r in rows[on_ray]] == [1, 2]
    assert [{k: r[k] for k in TRAINING_KEYS} for r in rows[on_ray]] == [
        {k: r[k] for k in TRAINING_KEYS} for r in rows[local]]


def test_a_lost_agent_fails_the_job_at_once_and_leaves_no_process(ray_cluster, tmp_path, monkeypatch):
    import ray

    from seer_torch.backends.ray_backend import RayBackend

    backend = RayBackend(3, keep_alive=False)
    first = backend.launch(_spec(tmp_path, "t000", 2, 1))  # a checkpoint at epoch 1
    _ok(_wait(lambda: backend.poll(first), "epoch 1"))
    monkeypatch.setenv("SEER_DEBUG_STEP_DELAY_S", "0.1")  # 2.6 s an epoch: it is killed mid-run
    spec = _spec(tmp_path, "t000", 2, 9)
    job = backend.launch(spec)
    _wait(lambda: backend.poll(job) is None and backend.reported_epoch(spec) >= 2, "epoch 2")
    assert job.nodes == [1, 1]
    processes = token_pids(job.token)  # each node's torchrun and its worker
    assert len(processes) >= 4, processes

    ray.kill(job.agents[1])  # node 1's agent dies (as it would with its node)
    lost_s = time.monotonic()
    res = _wait(lambda: backend.poll(job), "the job to fail")
    assert time.monotonic() - lost_s < 10.0  # the other node's part is stopped, not waited for
    assert res.returncode != 0 and not res.stopped and "lost" in job_error_text(res)
    assert backend.poll(job) == res
    # No torchrun or worker of the job is left on any node (all share this host here).
    _wait(lambda: not token_pids(job.token) and not pids_naming(str(spec.trial_dir)), "no process left")
    # What the first job saved is kept: the trial's retry resumes from epoch 1 (as after any failure).
    assert [r["epoch"] for r in backend.read_metrics(spec)] == [1]
