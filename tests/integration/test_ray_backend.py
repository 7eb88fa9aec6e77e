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


def test_every_node_must_see_the_run_folder(ray_cluster, tmp_path):
    from seer_torch.backends.ray_backend import STORAGE_PROBE_FILE, RayBackend

    backend = RayBackend(3, keep_alive=False)
    backend.check_storage(tmp_path)  # the nodes share this host's disk: each sees it
    assert not (tmp_path / STORAGE_PROBE_FILE).exists()
    # What nodes on disks of their own would find: no file of the tuner's, each node named.
    problems = backend.nodes_not_seeing(tmp_path / "elsewhere" / STORAGE_PROBE_FILE, "4f2a")
    assert len(problems) == 3, problems
    assert all(f"{tmp_path / 'elsewhere' / STORAGE_PROBE_FILE} does not exist there" in p for p in problems)
    assert len({p.split(" (")[0] for p in problems}) == 3  # three different nodes
    # A job whose node does not see the trial folder the tuner wrote fails at once, saying so
    # (its job.json taken away before the job is placed, as a node's own disk would lack it).
    spec = _spec(tmp_path, "t001", 1, 1)
    job = backend.launch(spec)
    (spec.trial_dir / "job.json").unlink()
    res = _wait(lambda: backend.poll(job), "the job to fail")
    assert res.returncode != 0 and not res.stopped
    text = job_error_text(res)
    assert "does not see the trial folder" in text and "job.json does not exist there" in text, text
    assert "storage every node mounts at the same path" in text, text
    assert not (spec.trial_dir / "metrics.jsonl").exists()  # torchrun never started


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


#: A given profile under which SEER plans W = 1, 1, 2 for the rounds to rungs 1, 3, 9 with a
#: deadline of MOVE_DEADLINE_S (``seer plan`` shows W = 2 from 91 s down, W = 1 throughout from
#: 92 s): 8 s an epoch at W = 1, 1.9 times faster at W = 2, 8 s a start.
MOVE_PROFILE = {"name": "ray-move", "world_sizes": [1, 2], "speedup": [1.0, 1.9], "epoch_time_s": 8.0,
                "startup_s": 8.0, "resize_s": 8.0}
MOVE_DEADLINE_S = 78
#: The workers sleep this long per sample of their share of each step: an epoch takes the
#: profile's 8 s at W = 1 and half that at W = 2, as real work would (digits_mlp itself trains an
#: epoch in a fraction of a second).
MOVE_SAMPLE_DELAY_S = 0.0062
MOVE_EXPERIMENT = f"""
name = "ray-move"
seed = 0
[data]
dataset = "digits"
[model]
name = "digits_mlp"
[training]
max_epochs = 9
min_epochs = 1
eta = 3
global_batch = 48
micro_batch_max = 12
[budget]
time_budget_s = {MOVE_DEADLINE_S}
money_budget_usd = 10
price_usd_per_slot_hour = 3.6
[resources]
num_slots = 2
world_size_ladder = [1, 2]
backend = "ray"
node_types = [{{ name = "cpu1", slots = 1, price_usd_per_hour = 1.8 }}]
[search]
max_configurations = 2
[planner]
profile = "profile.json"
num_finalists = 1
[search_space]
lr = {{ choices = [0.05, 0.1] }}
weight_decay = 0.0005
momentum = 0.9
width = 32
dropout = 0.0
"""


def _w_runs(rows: list[dict]) -> list[tuple[int, int]]:
    """``(W, last epoch)`` of each run of epochs at one ``W``, in order: the jobs to replay."""
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and runs[-1][0] == r["world_size"]:
            runs[-1] = (r["world_size"], r["epoch"])
        else:
            runs.append((r["world_size"], r["epoch"]))
    return runs


def test_seer_tune_on_ray_moves_the_finalist_from_one_node_to_two_with_local_metrics(ray_cluster, tmp_path):
    from seer_torch.testing import run_seer

    (tmp_path / "profile.json").write_text(json.dumps(MOVE_PROFILE))
    (tmp_path / "exp.toml").write_text(MOVE_EXPERIMENT)
    run_dir = tmp_path / "run"
    proc = run_seer(["tune", "exp.toml", "--run-dir", str(run_dir), "--address", ray_cluster.address,
                     "--no-report"],
                    tmp_path, env={"SEER_DEBUG_SAMPLE_DELAY_S": str(MOVE_SAMPLE_DELAY_S)}, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((run_dir / "results.json").read_text())
    best = res["best"]
    assert best["epochs"] == 9, res["stop_reason"]
    trial_dir = run_dir / "trials" / best["trial_id"]
    rows = [json.loads(x) for x in (trial_dir / "metrics.jsonl").read_text().splitlines()]
    runs = _w_runs(rows)
    assert [w for w, _ in runs] == [1, 2], (runs, res["plan"]["message"], res.get("replans"))
    # Its W = 1 jobs ran on one node, its W = 2 job on two (one worker each, c10d rendezvous).
    placed = [x for x in (trial_dir / "stdout.log").read_text().splitlines() if x.startswith("=== ray: ")]
    assert [p.split(" on ")[1].split()[0] for p in placed] == ["1", "2"], placed
    # The money is what the cluster held (its three 1-CPU nodes, "cpu1" at 1.8 USD an hour, for
    # the whole run), not what the jobs used: both are in results.json.
    held, used = res["cluster"]["held"], res["cluster"]["used"]
    assert [(n["node_type"], n["slots"]) for n in held["nodes"]] == [("cpu1", 1)] * 3
    for n in held["nodes"]:
        assert n["held_s"] == pytest.approx(res["budget"]["time_used_s"], abs=2.0), n
    assert res["budget"]["cost_usd"] == pytest.approx(1.8 / 3600 * held["node_seconds"], rel=0.01)
    assert 0 < used["slot_seconds"] < held["slot_seconds"]

    # The same trial replayed on the local backend, a job to each rung it reached (where it
    # evaluated its test set), at the W it had there: the same curve, number for number.
    local = LocalBackend(2, keep_alive=False)
    replay = tmp_path / "local" / best["trial_id"]
    replay.mkdir(parents=True)
    (replay / "config.json").write_bytes((trial_dir / "config.json").read_bytes())
    for r in rows:
        if "test_accuracy" in r:
            job = local.launch(JobSpec(best["trial_id"], replay, r["world_size"], r["epoch"]))
            _ok(_wait(lambda job=job: local.poll(job), f"W={r['world_size']} to epoch {r['epoch']}"))
    replayed = local.read_metrics(JobSpec(best["trial_id"], replay, 1, 9))
    assert [{k: r.get(k) for k in TRAINING_KEYS} for r in rows] == [
        {k: r.get(k) for k in TRAINING_KEYS} for r in replayed]


def _removing_a_node(ray_cluster, run_dir: Path, at_epoch: int) -> dict:
    """Wait until a trial of the run in ``run_dir`` reports ``at_epoch`` in a job of its last
    round, then remove the node its job runs on (its raylet and every process on it, as a lost
    machine); returns what was removed."""
    deadline = time.monotonic() + TIMEOUT_S * 2
    while time.monotonic() < deadline:
        for metrics in run_dir.glob("trials/*/metrics.jsonl"):
            epochs = [json.loads(x)["epoch"] for x in metrics.read_text().splitlines() if x.strip()]
            if epochs and max(epochs) >= at_epoch:
                placed = [x for x in (metrics.parent / "stdout.log").read_text().splitlines()
                          if x.startswith("=== ray: ")]
                node_prefix = placed[-1].rsplit(" on ", 1)[1].split()[0]
                (node,) = [n for n in ray_cluster.worker_nodes if n.node_id.startswith(node_prefix)]
                ray_cluster.remove_node(node, allow_graceful=False)
                return {"trial_id": metrics.parent.name, "epoch": max(epochs), "node": node.node_id}
        time.sleep(0.1)
    raise AssertionError(f"no trial of {run_dir} reached epoch {at_epoch}")


def test_a_node_lost_mid_job_fails_it_at_once_and_the_trial_resumes_on_the_others_same_answer(
        ray_cluster, tmp_path):
    import threading

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from seer_torch.testing import run_seer

    # The experiment of the move test with time to spare (W = 1 throughout) and 3 s epochs.
    experiment = MOVE_EXPERIMENT.replace(f"time_budget_s = {MOVE_DEADLINE_S}", "time_budget_s = 400")
    (tmp_path / "profile.json").write_text(json.dumps(MOVE_PROFILE))
    (tmp_path / "ray.toml").write_text(experiment)
    local_experiment = "\n".join(x for x in experiment.splitlines() if not x.startswith("node_types"))
    (tmp_path / "local.toml").write_text(local_experiment.replace('backend = "ray"', 'backend = "local"'))
    # The answer without a fault: the same run on the local backend (its plan does not depend on
    # the machine's speed: two configurations, W = 1, rungs 1, 3, 9).
    ref = run_seer(["tune", "local.toml", "--run-dir", str(tmp_path / "ref"), "--no-report"], tmp_path,
                   timeout=300)
    assert ref.returncode == 0, ref.stdout[-3000:] + ref.stderr[-3000:]
    expected = json.loads((tmp_path / "ref" / "results.json").read_text())

    # The head's CPU is held, so that every job runs on one of the two nodes that can be lost.
    @ray.remote(num_cpus=1)
    class Hold:
        def ping(self) -> int:
            return 1

    hold = Hold.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        ray_cluster.head_node.node_id, soft=False)).remote()
    ray.get(hold.ping.remote())
    run_dir, removed = tmp_path / "run", {}
    remover = threading.Thread(target=lambda: removed.update(_removing_a_node(ray_cluster, run_dir, 5)))
    remover.start()
    try:
        proc = run_seer(["tune", "ray.toml", "--run-dir", str(run_dir), "--address", ray_cluster.address,
                         "--no-report"],
                        tmp_path, env={"SEER_DEBUG_SAMPLE_DELAY_S": "0.0024"}, timeout=300)
        remover.join()
    finally:
        ray.kill(hold)
        ray_cluster.add_node(num_cpus=1)  # the cluster as the module's other tests know it
        ray_cluster.wait_for_nodes()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((run_dir / "results.json").read_text())
    trials = {t["trial_id"]: t for t in res["trials"]}
    lost = trials[removed["trial_id"]]
    # The job failed (its agent's node was lost) and was retried once, from its checkpoint.
    assert lost["failures"] == 1, lost
    log = (run_dir / "trials" / removed["trial_id"] / "stdout.log").read_text()
    placed = [x for x in log.splitlines() if x.startswith("=== ray: ")]
    assert removed["node"][:12] not in placed[-1]  # relaunched on a node that is still there
    # The answer is the one without the fault, number for number.
    for key in ("trial_id", "val_accuracy", "test_accuracy", "epochs"):
        assert res["best"][key] == expected["best"][key], key
    ref_trials = {t["trial_id"]: t for t in expected["trials"]}
    assert lost["metric_by_epoch"] == ref_trials[removed["trial_id"]]["metric_by_epoch"]
    # No torchrun or worker of the run is left on any node (all share this host here).
    _wait(lambda: not pids_naming(str(run_dir)), "no process of the run left")
