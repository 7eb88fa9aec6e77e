"""The rescale contract of a trial (docs/design.md "Training invariants"; docs/cases.md 7-11),
checked through real torchrun launches on CPU/gloo against two subjects: seer-torch's own worker
(``seer_torch.worker``) and a user's script on the trial API (examples/tabular_mlp/train.py).
One contract, two users.

Each subject trains with a global batch of 48 split as ``W x micro_batch x accum_steps``
(micro_batch_max 12); neither training set splits evenly into global batches (every epoch drops
a remainder, drop_last) and W = 4 does not split either validation set evenly. The worker
trains digits (1257 samples: 26 steps an epoch) with SGD, momentum and a cosine schedule; the
script, breast cancer (456 samples: 9 steps an epoch) with AdamW at a constant learning rate.
One uninterrupted W = 1 run over the 3-epoch schedule is the reference; the world-size
sequences 1 -> 2 -> 1, a crash (SIGKILL mid-epoch at W = 2, resumed at W = 3) and two "nodes"
on this machine (torchrun ``--nnodes 2`` with a c10d rendezvous, 1 and 2 processes each) must
reproduce it; the worker also runs 2 -> 3 -> 4, 4 -> 1 and a BatchNorm model (``digits_cnn``)
2 -> 1 -> 2 for checkpoints and running statistics. Kept-alive jobs (docs/design.md, "Launch
cost"; the test drives the job's ``control.json`` as the tuner's backend does) must reproduce it
too: one W = 1 process parked at epochs 1 and 2 and told to continue each time (bit for bit,
both subjects); the worker also at W = 2 (parked at 2, continued to 3), and as a warm worker: one
W = 1 process trains another trial (another seed, learning rate, momentum, width and dropout)
to epoch 1 and is then switched to a fresh trial of the reference's configuration, which must
come out bit for bit the reference (nothing of the first trial leaks into the second: RNG,
model, optimizer, data, global torch settings). The models have no dropout, so that their
parameters can be compared. A few assertions are the worker's own reporting rather than the
contract, and a script need not match them: the split sizes, the learning rate and test
metrics in each metrics line, its scheduler's state, and its per-step TensorBoard curves.
Every launch runs once per subject (a module-scoped cache, built when a subject's first test
asks); the assertions share it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from contract_harness import (
    GLOBAL_BATCH,
    MAX_EPOCHS,
    MICRO_BATCH_MAX,
    NUM_TEST,
    SUBJECTS,
    WORKER,
    Launch,
    Subject,
    base_env,
    build_model,
    copy_trial,
    evaluate_checkpoint,
    global_order,
    kill_group,
    launch,
    launch_kept,
    load_checkpoint,
    read_metrics,
    read_records,
    standalone_argv,
    start,
    tensorboard_files,
    tensorboard_scalars,
    trial_env,
    write_config,
)

pytestmark = pytest.mark.integration

#: The BatchNorm model's sequence (the worker only: the script's model has no BatchNorm).
WORKER_BN = dataclasses.replace(WORKER, name="worker-bn", model="digits_cnn", configuration={
    "lr": 0.05, "weight_decay": 5e-4, "momentum": 0.9, "width": 4, "dropout": 0.1})

# Parameter tolerance, resized vs uninterrupted W = 1 run (no BatchNorm, no dropout). The
# global-batch gradient is the same sum at every W, only added up in another order: per
# micro-batch means divided by accum_steps, then gloo's all-reduce average over ranks. Each
# optimizer step therefore differs by a few float32 ulps (~1e-7 relative); 78 steps of SGD with
# momentum 0.9 (or 27 of AdamW) carry and mildly amplify these, and the measured largest
# difference is ~1e-6 (weights are O(0.1-1)). 2e-5 leaves more than 10x margin for that, while
# any real break -- one sample order changed, one optimizer step missing, the optimizer state
# lost at a resize, the loss scaled by W, the schedule off by a step -- moves the weights by 1e-3
# or more.
PARAM_ATOL = 2e-5


@dataclass
class Sequence:
    name: str
    trial_dir: Path
    subject: Subject
    launches: list[Launch]
    killed: Launch | None = None  # the crashed launch, if any
    snapshot: Path | None = None  # a copy to start other sequences from


#: The sequences each subject runs. The worker trains on the same trial API as the script, so
#: the script runs the sequences that exercise the API from a user's side (a fresh start, a
#: restart, a resize both ways, a crash and its W = 3 resume); W = 4, two "nodes" and BatchNorm
#: are the worker's (its model has BatchNorm; the rest is the same API code).
RESIZED = {"worker": ["1-2-1", "2-3-4", "4-1", "crash-2-kill-3", "nodes-1-2x1-2x2"],
           "tabular_mlp": ["1-2-1", "crash-2-kill-3"]}
#: Kept-alive jobs: one process parked at each target and told to continue ("kept-1-1-1" at
#: W = 1, "kept-2-2" at W = 2); "warm": one W = 1 process trains another trial to epoch 1, then
#: is switched to this one and trains it 1, 2, 3 as a kept-alive job. The W = 1 ones must be bit
#: for bit the reference (KEPT_BITWISE).
KEPT = {"worker": ["kept-1-1-1", "kept-2-2", "warm"], "tabular_mlp": ["kept-1-1-1"]}
KEPT_BITWISE = {"worker": ["kept-1-1-1", "warm"], "tabular_mlp": ["kept-1-1-1"]}
#: The other trial the warm worker trains first: everything that could leak differs.
WARM_FIRST = {"lr": 0.2, "weight_decay": 0.0, "momentum": 0.5, "width": 16, "dropout": 0.25}
WARM_FIRST_SEED = 1
ALL_TRAINED = {"worker": ["reference", "restart-1-1", *RESIZED["worker"], "bn-2-1-2", *KEPT["worker"]],
               "tabular_mlp": ["reference", "restart-1-1", *RESIZED["tabular_mlp"], *KEPT["tabular_mlp"]]}
RESIZED_OR_KEPT = {name: [*RESIZED[name], *KEPT[name]] for name in RESIZED}


def cases(table: dict[str, list[str]], *extra: str) -> list:
    """``(subject, sequence)`` parameters, with ids ``SUBJECT-SEQUENCE``."""
    return [pytest.param(s, n, id=f"{s}-{n}") for s, names in table.items() for n in [*names, *extra]]


def _run(root: Path, name: str, subject: Subject, plan, start_from: Sequence | None = None) -> Sequence:
    """Launches ``plan`` = [(W, until_epoch, nodes)] one after another on one trial."""
    if start_from is None:
        trial, launches = root / name, []
        write_config(trial, subject)
    else:
        trial, launches = copy_trial(start_from.snapshot, root / name), list(start_from.launches)
    for index, (world, until, nodes) in enumerate(plan):
        record = root / f"{name}.rec{index}"
        launches.append(launch(trial, world, until, record, nodes=nodes, subject=subject))
    return Sequence(name, trial, subject, launches)


def _run_crash(root: Path, base: Sequence) -> Sequence:
    """From a W = 1 checkpoint at epoch 1: a W = 2 launch to epoch 3 killed with SIGKILL (whole
    process group) in the middle of epoch 3, after it wrote epoch 2's metrics and TensorBoard
    events; then a W = 3 launch to epoch 3 replays epochs 2 and 3."""
    subject = base.subject
    trial = copy_trial(base.snapshot, root / "crash")
    record = root / "crash.killed"
    proc = start(
        standalone_argv(trial, 2, 3, subject),
        base_env(SEER_RECORD_SAMPLES=str(record), SEER_DEBUG_STEP_DELAY_S=str(subject.step_delay_s),
                 **trial_env(trial, 3)),
    )
    deadline = time.monotonic() + 120
    try:
        while True:
            assert time.monotonic() < deadline and proc.poll() is None, (
                "the launch to be killed ended or hung"
            )
            lines = read_records(record)
            if any(line["epoch"] == 3 and line["step_in_epoch"] >= subject.kill_step for line in lines):
                break
            time.sleep(0.01)
    finally:
        kill_group(proc)  # SIGKILL to the agent's group and to each worker's own group
        proc.communicate(timeout=60)
        time.sleep(0.5)  # the killed workers' descriptors are gone before anything is read
    killed = Launch(2, 3, record)
    killed.metrics = read_metrics(trial)
    killed.checkpoint = load_checkpoint(trial)
    resumed = launch(trial, 3, 3, root / "crash.rec1", subject=subject)
    return Sequence("crash", trial, subject, [*base.launches, resumed], killed=killed)


def _run_kept(root: Path, name: str, subject: Subject, world_size: int, targets: list[int], *,
              warm: bool = False) -> Sequence:
    """A kept-alive job over ``targets`` (contract_harness.launch_kept) on a fresh trial; with
    ``warm``, the job first trains another trial (WARM_FIRST, seed WARM_FIRST_SEED) to epoch 1."""
    trial = root / name
    write_config(trial, subject)
    first = None
    if warm:
        first = root / f"{name}-first"
        write_config(first, subject, configuration=WARM_FIRST, seed=WARM_FIRST_SEED)
    launches = launch_kept(trial, world_size, targets, root / f"{name}.rec0", root / f"{name}.log",
                           subject=subject, warm_from=first)
    return Sequence(name, trial, subject, launches)


def _run_all(root: Path, subject: Subject) -> dict[str, Sequence]:
    """Every sequence of ``subject``, two at a time: they are independent process trees in their
    own folders (those resumed from ``base`` wait for it), and one launch alone keeps only about
    one of this machine's two cores busy (most of it is starting Python and importing torch)."""
    chains: dict[str, Callable[[], Sequence]] = {
        "reference": lambda: _run(root, "reference", subject, [(1, 3, 1)]),
    }
    if "2-3-4" in RESIZED[subject.name]:
        chains["2-3-4"] = lambda: _run(root, "s234", subject, [(2, 1, 1), (3, 2, 1), (4, 3, 1)])
    if "4-1" in RESIZED[subject.name]:
        chains["4-1"] = lambda: _run(root, "s41", subject, [(4, 1, 1), (1, 3, 1)])
    if "bn-2-1-2" in ALL_TRAINED[subject.name]:
        # BatchNorm model: checkpoints across W in both directions.
        chains["bn-2-1-2"] = lambda: _run(root, "bn_212", WORKER_BN, [(2, 1, 1), (1, 2, 1), (2, 3, 1)])
    chains["kept-1-1-1"] = lambda: _run_kept(root, "kept111", subject, 1, [1, 2, 3])
    if "kept-2-2" in KEPT[subject.name]:
        chains["kept-2-2"] = lambda: _run_kept(root, "kept22", subject, 2, [2, 3])
    if "warm" in KEPT[subject.name]:
        chains["warm"] = lambda: _run_kept(root, "warm", subject, 1, [1, 2, 3], warm=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        base_future = pool.submit(_run, root, "base", subject, [(1, 1, 1)])
        futures = {name: pool.submit(chain) for name, chain in chains.items()}
        base = base_future.result()
        base.snapshot = root / "base"
        from_base: dict[str, Callable[[], Sequence]] = {
            "restart-1-1": lambda: _run(root, "r11", subject, [(1, 3, 1)], start_from=base),
            "1-2-1": lambda: _run(root, "s121", subject, [(2, 2, 1), (1, 3, 1)], start_from=base),
            "crash-2-kill-3": lambda: _run_crash(root, base),
        }
        if "nodes-1-2x1-2x2" in RESIZED[subject.name]:
            # two "nodes" on this machine: 1 -> 2 nodes x 1 process -> 2 nodes x 2 processes
            from_base["nodes-1-2x1-2x2"] = lambda: _run(root, "nodes", subject, [(2, 2, 2), (4, 3, 2)],
                                                        start_from=base)
        futures.update({name: pool.submit(chain) for name, chain in from_base.items()})
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``runs(subject_name)`` -> its sequences, launched on first use."""
    built: dict[str, dict[str, Sequence]] = {}

    def get(name: str) -> dict[str, Sequence]:
        if name not in built:
            built[name] = _run_all(tmp_path_factory.mktemp(f"contract-{name}"), SUBJECTS[name])
        return built[name]

    return get


def _epoch_history(seq: Sequence) -> dict[int, list[int]]:
    """Epoch -> training indices in global order, from the launch that completed the epoch."""
    history: dict[int, list[int]] = {}
    for item in seq.launches:
        history.update(global_order(read_records(item.record)))
    return history


def _step_records(seq: Sequence) -> dict[int, list[dict]]:
    """Optimizer step -> its records (all ranks) from the launch that completed it."""
    steps: dict[int, list[dict]] = {}
    for item in seq.launches:
        mine: dict[int, list[dict]] = {}
        for line in read_records(item.record):
            mine.setdefault(line["step"], []).append(line)
        steps.update(mine)
    return steps


def _world_per_epoch(seq: Sequence) -> list[int]:
    worlds, done = [], 0
    for item in seq.launches:
        worlds += [item.world_size] * (item.until_epoch - done)
        done = item.until_epoch
    return worlds


# ------------------------------------------------------------------------------------------
# Data order
# ------------------------------------------------------------------------------------------

BOTH = pytest.mark.parametrize("subject", list(SUBJECTS))


@BOTH
def test_reference_data_order_is_the_seed_epoch_permutation(runs, subject):
    from seer_torch.data import epoch_permutation

    who = SUBJECTS[subject]
    history = _epoch_history(runs(subject)["reference"])
    assert sorted(history) == [1, 2, 3]
    for epoch, order in history.items():
        assert order == epoch_permutation(0, epoch, who.num_train)[: who.num_train - who.dropped].tolist()
        assert len(order) == len(set(order)) == who.steps_per_epoch * GLOBAL_BATCH  # once each
        assert set(order) <= set(range(who.num_train))
    assert history[1] != history[2] != history[3]


@pytest.mark.parametrize("subject, name", cases({s: names[1:] for s, names in ALL_TRAINED.items()}))
def test_every_epoch_trains_the_reference_order_whatever_w(runs, subject, name):
    """Same samples, same order per (seed, epoch) at every W and after a restart; every sample
    once per epoch, the same remainder left out by drop_last."""
    reference = _epoch_history(runs(subject)["reference"])
    seq = runs(subject)[name]
    history = _epoch_history(seq)
    assert sorted(history) == list(range(1, seq.launches[-1].until_epoch + 1))
    for epoch, order in history.items():
        assert len(order) == len(set(order)) == seq.subject.num_train - seq.subject.dropped, f"epoch {epoch}"
        assert order == reference[epoch], f"epoch {epoch} order differs from the uninterrupted W=1 run"


@BOTH
def test_killed_launch_trained_the_same_order_until_it_died(runs, subject):
    seq = runs(subject)["crash-2-kill-3"]
    reference = _epoch_history(runs(subject)["reference"])
    partial = global_order(read_records(seq.killed.record))
    assert sorted(partial) == [2, 3]
    assert partial[2] == reference[2]
    assert 0 < len(partial[3]) < len(reference[3]), "the kill did not land mid-epoch"
    assert partial[3] == reference[3][: len(partial[3])]


# ------------------------------------------------------------------------------------------
# Batch plan, step counts, learning rate
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("subject, name", cases(ALL_TRAINED))
def test_batch_plan_steps_and_counters(runs, subject, name):
    seq = runs(subject)[name]
    steps_per_epoch = seq.subject.steps_per_epoch
    lines = seq.launches[-1].metrics
    assert [line["epoch"] for line in lines] == list(range(1, len(lines) + 1))  # one line per epoch
    assert [line["world_size"] for line in lines] == _world_per_epoch(seq)
    for line in lines:
        assert line["world_size"] * line["micro_batch"] * line["accum_steps"] == GLOBAL_BATCH
        assert line["micro_batch"] <= MICRO_BATCH_MAX and line["accum_steps"] >= 1
        assert line["global_batch"] == GLOBAL_BATCH
        assert line["step"] == line["epoch"] * steps_per_epoch
        assert line["samples_seen"] == line["step"] * GLOBAL_BATCH
    steps = _step_records(seq)
    assert sorted(steps) == list(range(1, len(lines) * steps_per_epoch + 1))
    for records in steps.values():
        world = records[0]["world_size"]
        assert len(records) == world and sorted(r["rank"] for r in records) == list(range(world))
        for record in records:
            assert len(record["indices"]) == record["micro_batch"] * record["accum_steps"]
            assert world * record["micro_batch"] * record["accum_steps"] == GLOBAL_BATCH


def _expected_lr(subject: Subject, step: int) -> float:
    """The learning rate of optimizer step ``step`` (1-based): the worker's cosine from its peak
    over the 3-epoch schedule; the script's AdamW keeps its ``lr``."""
    if subject.script:
        return subject.configuration["lr"]
    from seer_torch.worker import cosine_lr_factor

    return subject.configuration["lr"] * cosine_lr_factor(step - 1, MAX_EPOCHS * subject.steps_per_epoch)


@pytest.mark.parametrize("subject, name", cases({**RESIZED_OR_KEPT,
                                                 "worker": [*RESIZED_OR_KEPT["worker"], "bn-2-1-2"]}))
def test_learning_rate_at_every_step_equals_the_uninterrupted_run(runs, subject, name):
    """The learning rate each step used (recorded on every rank), resized or not, is the
    uninterrupted run's and the schedule's."""
    who = runs(subject)[name].subject
    reference = {step: records[0]["lr"]
                 for step, records in _step_records(runs(subject)["reference"]).items()}
    for step, records in _step_records(runs(subject)[name]).items():
        assert reference[step] == pytest.approx(_expected_lr(who, step), rel=1e-12, abs=1e-15)
        for record in records:  # every rank, the LR the step used
            assert record["lr"] == reference[step], f"step {step} rank {record['rank']}"
    if not who.script:  # the worker also reports the LR after each epoch's last step
        from seer_torch.worker import cosine_lr_factor

        lines = runs(subject)[name].launches[-1].metrics
        assert [line["lr"] for line in lines] == [
            who.configuration["lr"] * cosine_lr_factor(line["step"], MAX_EPOCHS * who.steps_per_epoch)
            for line in lines
        ]


# ------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("subject, name", cases(ALL_TRAINED))
def test_evaluation_counts_every_sample_once_and_does_not_depend_on_w(runs, subject, name):
    """The metrics each launch reports for its final weights equal a one-process evaluation of
    the checkpoint it saved: counts exactly, float sums to float32 rounding (the ranks' partial
    sums are added in another order). The worker also reports the split sizes."""
    seq = runs(subject)[name]
    if not seq.subject.script:
        for line in seq.launches[-1].metrics:
            assert line["val_samples"] == seq.subject.num_val
    for item in seq.launches:
        last = item.metrics[-1]
        assert last["epoch"] == item.until_epoch
        if not seq.subject.script:
            assert last["test_samples"] == NUM_TEST
        exact, approximate = evaluate_checkpoint(seq.subject, item.checkpoint, seq.subject.configuration)
        assert {k: last[k] for k in exact} == exact, f"W={item.world_size}"
        for key, value in approximate.items():
            assert last[key] == pytest.approx(value, rel=1e-5), f"{key} at W={item.world_size}"


# ------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------


def _optimizer_tensors(checkpoint: dict) -> dict[str, torch.Tensor]:
    """Every tensor of the optimizer's per-parameter state (SGD's momentum buffers, AdamW's
    moments and step counts), by ``index.name``."""
    return {f"{index}.{key}": value for index, state in checkpoint["optimizer"]["state"].items()
            for key, value in state.items() if isinstance(value, torch.Tensor)}


@pytest.mark.parametrize("subject, name", cases(RESIZED_OR_KEPT))
def test_parameters_match_the_uninterrupted_w1_run(runs, subject, name):
    reference = runs(subject)["reference"].launches[-1].checkpoint
    final = runs(subject)[name].launches[-1].checkpoint
    assert final["model"].keys() == reference["model"].keys()
    worst = 0.0
    for key, tensor in reference["model"].items():
        difference = (final["model"][key] - tensor).abs().max().item()
        worst = max(worst, difference)
        assert difference <= PARAM_ATOL, f"{key}: differs by {difference:.3g}"
    # the optimizer's state too
    mine, theirs = _optimizer_tensors(final), _optimizer_tensors(reference)
    assert mine.keys() == theirs.keys() and theirs
    for key, tensor in theirs.items():
        difference = (mine[key] - tensor).abs().max().item()
        assert difference <= PARAM_ATOL * 10, f"optimizer state {key}: {difference:.3g}"
    print(f"{subject} {name}: largest parameter difference from the W=1 run {worst:.3g}")


# ------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("subject, name", cases(ALL_TRAINED))
def test_checkpoints_are_w_independent_and_load_strictly(runs, subject, name):
    seq = runs(subject)[name]
    steps_per_epoch = seq.subject.steps_per_epoch
    for item in seq.launches:
        state = item.checkpoint
        assert not any(key.startswith(("module.", "_orig_mod.")) for key in state["model"])
        build_model(seq.subject, seq.subject.configuration).load_state_dict(state["model"], strict=True)
        assert (state["epoch"], state["step"], state["samples_seen"]) == (
            item.until_epoch,
            item.until_epoch * steps_per_epoch,
            item.until_epoch * steps_per_epoch * GLOBAL_BATCH,
        )
        if not seq.subject.script:  # the worker's own schedule is in its state
            assert state["scheduler"]["last_epoch"] == state["step"]
        assert state["global_batch"] == GLOBAL_BATCH
        assert {"torch_cpu", "python"} <= set(state["rng"])
        assert len(state["optimizer"]["state"]) == len(list(state["model"].keys())) - sum(
            1 for key in state["model"] if "running" in key or "num_batches" in key
        )


#: Metrics-line keys that are times (they differ between any two runs) or the trial's name.
UNTIMED_KEYS_EXCLUDED = {"epoch_time_s", "throughput_samples_per_s", "train_start_unix_s", "time_unix_s",
                         "trial_id"}


def _assert_same(x, y, where: str) -> None:
    """``x`` and ``y`` equal bit for bit (tensors with ``torch.equal``), recursively; the trial's
    name and Python's ``random`` state excepted (not used in training and not seeded: a fresh
    launch starts it from the OS, so only a resumed one has a reproducible state)."""
    if isinstance(x, torch.Tensor):
        assert torch.equal(x, y), where
    elif isinstance(x, dict):
        assert x.keys() == y.keys(), where
        for key in x:
            if key != "trial_id" and f"{where}.{key}" != "checkpoint.rng.python":
                _assert_same(x[key], y[key], f"{where}.{key}")
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), where
        for i, (u, v) in enumerate(zip(x, y)):
            _assert_same(u, v, f"{where}[{i}]")
    else:
        assert x == y, where


@pytest.mark.parametrize("subject, name", cases({s: ["restart-1-1", *KEPT_BITWISE[s]] for s in SUBJECTS}))
def test_same_w_relaunched_or_kept_alive_is_bitwise_the_uninterrupted_run(runs, subject, name):
    """Everything carries over a restart and a kept-alive job's continuations -- weights,
    optimizer state, schedule, torch RNG state, counters: W = 1 for epoch 1, restart, W = 1 for
    epochs 2-3 (or one process parked at 1 and 2 and told to go on; or a warm worker that
    trained another trial first) is bit for bit the one-launch run, and so is every metric
    each epoch reported (times excepted)."""
    seq, reference = runs(subject)[name], runs(subject)["reference"]
    _assert_same(seq.launches[-1].checkpoint, reference.launches[-1].checkpoint, "checkpoint")
    lines, reference_lines = seq.launches[-1].metrics, reference.launches[-1].metrics
    assert [line["epoch"] for line in lines] == [line["epoch"] for line in reference_lines] == [1, 2, 3]
    for line, expected in zip(lines, reference_lines):
        for key in expected.keys() - UNTIMED_KEYS_EXCLUDED:
            assert line[key] == expected[key], f"epoch {line['epoch']} {key}"


def test_a_warm_worker_leaks_no_state_into_its_next_trial(runs):
    """The warm sequence's process really trained another trial first (its own folder, seed and
    hyperparameters, epoch 1 saved), then the reference's configuration fresh: its first
    checkpoint already equals a fresh W = 1 launch's to epoch 1 bit for bit (the base sequence:
    the RNG state the trial API saved included), its records hold this trial's steps only."""
    seq, base = runs("worker")["warm"], runs("worker")["restart-1-1"]
    first = seq.trial_dir.parent / "warm-first"
    first_state = load_checkpoint(first)
    assert first_state["epoch"] == 1 and first_state["configuration"] == WARM_FIRST
    assert [line["epoch"] for line in read_metrics(first)] == [1]
    # the first trial's model is another size: nothing of it could have been loaded into this one
    shape = first_state["model"]["hidden.weight"].shape
    assert shape != seq.launches[0].checkpoint["model"]["hidden.weight"].shape
    _assert_same(seq.launches[0].checkpoint, base.launches[0].checkpoint, "checkpoint")
    assert {line["step"] for line in read_records(seq.launches[0].record)} == set(
        range(1, 3 * WORKER.steps_per_epoch + 1))


def test_batchnorm_statistics_carry_over_between_w1_and_w2(runs):
    """W = 2 -> 1 -> 2: every checkpoint loads in the other W; BatchNorm's update count keeps
    growing by rank 0's forwards per step (accum_steps: 2 at W = 2, 4 at W = 1), so the running
    statistics were loaded, not reset, at each resize."""
    seq = runs("worker")["bn-2-1-2"]
    n = WORKER.steps_per_epoch
    counts = [item.checkpoint["model"]["features.0.1.num_batches_tracked"].item() for item in seq.launches]
    assert counts == [n * 2, n * (2 + 4), n * (2 + 4 + 2)]
    for before, after in zip(seq.launches, seq.launches[1:]):
        # the running mean moved on from the loaded one, by an EMA (momentum 0.1) of 26 x accum
        # micro-batch means: it neither stayed nor restarted from 0
        old = before.checkpoint["model"]["features.0.1.running_mean"]
        new = after.checkpoint["model"]["features.0.1.running_mean"]
        assert not torch.equal(old, new)


# ------------------------------------------------------------------------------------------
# Crash, TensorBoard, writers
# ------------------------------------------------------------------------------------------


@BOTH
def test_crash_left_debris_that_the_resume_removed(runs, subject):
    seq = runs(subject)["crash-2-kill-3"]
    steps_per_epoch = seq.subject.steps_per_epoch
    # the crashed launch got past the checkpoint (epoch 1) before it died ...
    assert [line["epoch"] for line in seq.killed.metrics] == [1, 2]
    assert seq.killed.metrics[1]["world_size"] == 2
    assert seq.killed.checkpoint["epoch"] == 1
    # ... and after the resume at W = 3 nothing of it remains past the checkpoint
    lines = seq.launches[-1].metrics
    assert [(line["epoch"], line["world_size"]) for line in lines] == [(1, 1), (2, 3), (3, 3)]
    scalars = tensorboard_scalars(seq.trial_dir / "tensorboard")
    assert [value for _, value in scalars["perf/world_size"]] == [1, 3, 3]
    reference = tensorboard_scalars(runs(subject)["reference"].trial_dir / "tensorboard")
    assert [step for step, _ in scalars["val_accuracy"]] == [step for step, _ in reference["val_accuracy"]]
    if seq.subject.script:
        return
    # the worker's per-step curves: train/lr exactly the uninterrupted run's, one loss per step
    assert scalars["train/lr"] == reference["train/lr"]
    replayed_losses = [value for step, value in scalars["train/loss"] if step > steps_per_epoch]
    record_steps = {line["step"] for line in read_records(seq.launches[-1].record)}
    assert len(replayed_losses) == len(record_steps) == 2 * steps_per_epoch


@pytest.mark.parametrize("subject, name", cases(ALL_TRAINED))
def test_tensorboard_steps_increase_and_one_run_directory(runs, subject, name):
    seq = runs(subject)[name]
    steps_per_epoch = seq.subject.steps_per_epoch
    tb_dir = seq.trial_dir / "tensorboard"
    files = tensorboard_files(tb_dir)
    assert {path.parent for path in files} == {tb_dir}, "a trial has one TensorBoard run directory"
    # only global rank 0 writes: one event file per launch that trained (a kept-alive job's
    # continuations write on in the file of the launch they continue)
    launches = sum(not item.continued for item in seq.launches) + (1 if seq.killed else 0)
    assert len(files) == launches
    scalars = tensorboard_scalars(tb_dir)
    epochs = seq.launches[-1].until_epoch
    for tag, points in scalars.items():
        steps = [step for step, _ in points]
        assert all(a < b for a, b in zip(steps, steps[1:])), f"{tag}: steps {steps}"
    if not seq.subject.script:  # the worker logs each step's loss (t.log)
        losses = [step for step, _ in scalars["train/loss"]]
        assert losses == list(range(1, epochs * steps_per_epoch + 1))
    evaluated = [step for step, _ in scalars["val_accuracy"]]
    assert evaluated == [steps_per_epoch * e for e in range(1, epochs + 1)]
    assert [value for _, value in scalars["perf/world_size"]] == _world_per_epoch(seq)


@pytest.mark.parametrize("launch_index", [1, 2])
def test_two_nodes_global_and_local_ranks(runs, launch_index, subject="worker"):
    """torchrun --nnodes 2 with a c10d rendezvous: global ranks 0..W-1, local ranks 0..nproc-1
    on each node; only global rank 0 wrote (one metrics line per epoch and one TensorBoard file
    per launch are checked above; here: rank 0 of node 2 is not global rank 0)."""
    item = runs(subject)["nodes-1-2x1-2x2"].launches[launch_index]
    assert item.nodes == 2
    records = read_records(item.record)
    nproc = item.world_size // 2
    pairs = {(line["rank"], line["local_rank"]) for line in records}
    assert {rank for rank, _ in pairs} == set(range(item.world_size))
    assert {local for _, local in pairs} == set(range(nproc))
    assert {rank - local for rank, local in pairs} == {0, nproc}  # two nodes, nproc each
    assert sum(1 for rank, local in pairs if local == 0 and rank != 0) == 1  # a second "local rank 0"
