"""Helpers for the worker contract suite: real ``torchrun`` launches on CPU/gloo of a
:class:`Subject` -- seer-torch's own worker (``seer_torch.worker``) or a user's script on the
trial API (``examples/tabular_mlp/train.py``) -- each under a timeout (a hang becomes a
failure), and readers for what a trial leaves behind (``metrics.jsonl``, ``checkpoint.pt``,
TensorBoard event files and the ``SEER_RECORD_SAMPLES`` per-step records)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seer_torch.backends.local import descendant_pids
from seer_torch.testing import kept_alive_env, parked_at, write_order

LAUNCH_TIMEOUT_S = 150
REPO = Path(__file__).resolve().parents[2]
# 48 = W x micro x accum for every W in 1..4 with micro_batch_max 12.
GLOBAL_BATCH = 48
MICRO_BATCH_MAX = 12
MAX_EPOCHS = 3


@dataclass(frozen=True)
class Subject:
    """What the contract runs: the built-in worker or a user's script, with its data's sizes.

    Attributes:
        name: ``"worker"`` or ``"tabular_mlp"`` (test ids).
        num_train, num_val: training and validation samples; neither splits evenly: every
            epoch drops ``num_train % GLOBAL_BATCH`` samples, and W = 4 does not split the
            validation set evenly.
        configuration: the trial's hyperparameters.
        model: the built-in model (the worker), or ``None`` (the script builds its own).
        script: the script and its arguments, or ``()`` for the worker.
        kill_step: the crash sequence kills its W = 2 launch once epoch 3 has trained this many
            steps (mid-epoch).
        step_delay_s: ``SEER_DEBUG_STEP_DELAY_S`` of that launch (so that the kill lands mid-epoch).
    """

    name: str
    num_train: int
    num_val: int
    configuration: dict
    model: str | None = None
    script: tuple[str, ...] = ()
    kill_step: int = 8
    step_delay_s: float = 0.03

    @property
    def steps_per_epoch(self) -> int:
        return self.num_train // GLOBAL_BATCH

    @property
    def dropped(self) -> int:
        return self.num_train - self.steps_per_epoch * GLOBAL_BATCH


#: seer-torch's own worker on digits (1257 = 26 x 48 + 9 training samples, 270 validation).
WORKER = Subject("worker", 1257, 270, {"lr": 0.05, "weight_decay": 5e-4, "momentum": 0.9, "width": 32,
                                       "dropout": 0.0}, model="digits_mlp")
#: A user's script: the tabular example (breast cancer: 456 = 9 x 48 + 24 training samples, 113
#: validation), AdamW at a constant learning rate.
TABULAR = Subject("tabular_mlp", 569 - 569 // 5, 569 // 5,
                  {"lr": 0.003, "weight_decay": 0.01, "width": 32, "depth": 2},
                  script=(str(REPO / "examples" / "tabular_mlp" / "train.py"), "--dataset", "breast_cancer"),
                  kill_step=4, step_delay_s=0.1)
SUBJECTS = {s.name: s for s in (WORKER, TABULAR)}
NUM_TEST = 270  # the worker's digits test split


def base_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SEER_RECORD_SAMPLES", None)
    env.pop("SEER_DEBUG_STEP_DELAY_S", None)
    env.update(OMP_NUM_THREADS="1", TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1")
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(trial_dir: Path, subject: Subject, *, configuration: dict | None = None,
                 seed: int = 0) -> None:
    trial_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "trial_id": trial_dir.name,
        "configuration": dict(configuration or subject.configuration),
        "model": subject.model,
        "dataset": "digits" if subject.model else None,
        "data_dir": None,
        "global_batch": GLOBAL_BATCH,
        "micro_batch_max": MICRO_BATCH_MAX,
        "max_epochs": MAX_EPOCHS,
        "seed": seed,
        "tensorboard_dir": str(trial_dir / "tensorboard"),
    }
    (trial_dir / "config.json").write_text(json.dumps(config))


def copy_trial(src: Path, dst: Path) -> Path:
    """Copy a trial directory (a snapshot) and point its TensorBoard directory at the copy."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["tensorboard_dir"] = str(dst / "tensorboard")
    config["trial_id"] = dst.name
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def _worker_args(trial_dir: Path, until_epoch: int, subject: Subject = WORKER) -> list[str]:
    # torchrun's logs beside the trial (under the test's tmp_path), not a /tmp/torchelastic_*
    # folder per launch
    logs = ["--log-dir", str(Path(trial_dir).parent / "torchrun_logs")]
    if subject.script:  # the trial folder and epoch travel in the environment (trial_env)
        return [*logs, *subject.script]
    return [*logs, "-m", "seer_torch.worker", "--trial-dir", str(trial_dir),
            "--until-epoch", str(until_epoch)]


def trial_env(trial_dir: Path, until_epoch: int) -> dict[str, str]:
    """What the tuner tells every job in its environment (a script reads it; the worker is also
    given it on its command line)."""
    return {"SEER_TRIAL_DIR": str(Path(trial_dir).resolve()), "SEER_UNTIL_EPOCH": str(until_epoch)}


def standalone_argv(trial_dir: Path, world_size: int, until_epoch: int,
                    subject: Subject = WORKER) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(world_size),
        *_worker_args(trial_dir, until_epoch, subject),
    ]


def node_argv(
    trial_dir: Path, nnodes: int, nproc: int, node_rank: int, port: int, rdzv_id: str, until_epoch: int,
    subject: Subject = WORKER,
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        str(nnodes),
        "--nproc-per-node",
        str(nproc),
        "--node-rank",
        str(node_rank),
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        rdzv_id,
        *_worker_args(trial_dir, until_epoch, subject),
    ]


def start(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start a launch in its own process group (so it can be killed whole)."""
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the launch: the agent's process group and every process it started."""
    victims = descendant_pids(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in victims:
        try:
            os.killpg(pid, signal.SIGKILL)  # a worker leads its own session and group
        except (ProcessLookupError, PermissionError):
            pass
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def finish(procs: list[subprocess.Popen], what: str, timeout: float = LAUNCH_TIMEOUT_S) -> None:
    """Wait for every process; kill all their groups and fail on a timeout or a non-zero exit."""
    deadline = time.monotonic() + timeout
    outputs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
            outputs.append(out)
    except subprocess.TimeoutExpired:
        for proc in procs:
            kill_group(proc)
        for proc in procs:
            proc.communicate()
        raise AssertionError(f"{what}: hung, killed after {timeout} s") from None
    finally:
        for proc in procs:
            kill_group(proc)  # stray workers of a failed agent
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, f"{what}: exit {proc.returncode}\n{out[-6000:]}"


@dataclass
class Launch:
    """One launch of a sequence and what it left (snapshots taken right after it). A kept-alive
    job's segments are launches too: ``continued`` when the segment went on in the same
    process and the same trial API object as the launch before it (no start, no new
    TensorBoard file)."""

    world_size: int
    until_epoch: int
    record: Path
    nodes: int = 1
    checkpoint: dict = field(default_factory=dict)
    metrics: list = field(default_factory=list)
    continued: bool = False


def launch(
    trial_dir: Path,
    world_size: int,
    until_epoch: int,
    record: Path,
    *,
    nodes: int = 1,
    delay_s: float | None = None,
    subject: Subject = WORKER,
) -> Launch:
    """Run one launch of ``subject`` to completion: standalone with ``world_size`` processes,
    or ``nodes`` torchrun agents (c10d rendezvous on 127.0.0.1, a fresh port and id) with
    ``world_size // nodes`` processes each, all started together."""
    extra = {"SEER_RECORD_SAMPLES": str(record), **trial_env(trial_dir, until_epoch)}
    if delay_s:
        extra["SEER_DEBUG_STEP_DELAY_S"] = str(delay_s)
    env = base_env(**extra)
    if nodes == 1:
        procs = [start(standalone_argv(trial_dir, world_size, until_epoch, subject), env)]
    else:
        port, rdzv_id = free_port(), uuid.uuid4().hex[:12]
        procs = [
            start(node_argv(trial_dir, nodes, world_size // nodes, node, port, rdzv_id, until_epoch, subject),
                  env)
            for node in range(nodes)
        ]
    finish(procs, f"{trial_dir.name}: W={world_size} ({nodes} node(s)) until epoch {until_epoch}")
    result = Launch(world_size, until_epoch, record, nodes)
    result.checkpoint = load_checkpoint(trial_dir)
    result.metrics = read_metrics(trial_dir)
    return result


class KeptJob:
    """One kept-alive launch (``$SEER_KEEP_ALIVE=1``) driven as the tuner's backend drives it:
    wait for ``parked.json`` of the current generation, then write the next order to the
    ``control.json`` of the trial the job works on (seer_torch/runfiles.py, the protocol).
    Its output goes to a log file (nothing is read from a pipe while it waits)."""

    def __init__(self, trial_dir: Path, world_size: int, until_epoch: int, record: Path, log: Path, *,
                 subject: Subject = WORKER) -> None:
        self.trial_dir, self.generation, self.log = Path(trial_dir), 0, log
        env = base_env(SEER_RECORD_SAMPLES=str(record), **trial_env(trial_dir, until_epoch),
                       **kept_alive_env(os.getpid(), park_timeout_s=LAUNCH_TIMEOUT_S))
        with open(log, "w") as out:
            argv = standalone_argv(trial_dir, world_size, until_epoch, subject)
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def wait_parked(self, timeout_s: float = LAUNCH_TIMEOUT_S) -> dict:
        """Wait until the job parks at the current generation; returns ``parked.json``."""
        deadline = time.monotonic() + timeout_s
        while True:
            parked = parked_at(self.trial_dir, self.generation)
            if parked is not None:
                return parked
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"{self.trial_dir.name}: the kept-alive job ended (exit "
                                     f"{self.proc.returncode}) or hung instead of parking at generation "
                                     f"{self.generation}\n{self.log.read_text()[-6000:]}")
            time.sleep(0.01)

    def order(self, action: str, **fields) -> None:
        """Write the next order (``continue`` with ``until_epoch``; ``switch`` with ``trial_dir``,
        ``until_epoch``, ``env``; ``stop``) where the parked job reads it."""
        self.generation += 1
        write_order(self.trial_dir, self.generation, action, **fields)
        if action == "switch":
            self.trial_dir = Path(fields["trial_dir"])

    def stop(self, timeout_s: float = LAUNCH_TIMEOUT_S) -> None:
        """Order it to stop; it must end by itself, exit 0."""
        self.order("stop")
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        finally:
            self.kill()
        assert self.proc.returncode == 0, f"exit {self.proc.returncode}\n{self.log.read_text()[-6000:]}"

    def kill(self) -> None:
        kill_group(self.proc)
        self.proc.wait(timeout=60)


def launch_kept(trial_dir: Path, world_size: int, targets: list[int], record: Path, log: Path, *,
                subject: Subject = WORKER, warm_from: Path | None = None) -> list[Launch]:
    """One kept-alive job trains ``trial_dir`` to each of ``targets`` in turn (parked at each,
    snapshotted, then ordered to continue), and is ordered to stop. With ``warm_from``, the job
    first trains that other trial (``W = 1``, the built-in worker) to epoch 1, parks, and is
    switched to ``trial_dir`` (fresh), as a warm worker. Returns a :class:`Launch` per target."""
    launches = []
    job = KeptJob(warm_from or trial_dir, world_size, 1 if warm_from else targets[0],
                  record.with_name(record.name + ".warm") if warm_from else record, log, subject=subject)
    try:
        if warm_from is not None:
            job.wait_parked()
            job.order("switch", trial_dir=str(Path(trial_dir).resolve()), until_epoch=targets[0],
                      env={"SEER_RECORD_SAMPLES": str(record), **trial_env(trial_dir, targets[0])})
        for index, target in enumerate(targets):
            if index:
                job.order("continue", until_epoch=target)
            parked = job.wait_parked()
            assert parked["epoch"] == target, parked
            item = Launch(world_size, target, record, continued=index > 0)
            item.checkpoint = load_checkpoint(trial_dir)
            item.metrics = read_metrics(trial_dir)
            launches.append(item)
        job.stop()
    finally:
        if job.proc.poll() is None:
            job.kill()
    return launches


def load_checkpoint(trial_dir: Path) -> dict:
    """The trial's checkpoint (seer_torch.trial_checkpoint) with what the script saved under
    ``state`` (the built-in worker's model, optimizer, scheduler, lr_schedule) lifted beside
    the trial's counters and RNG state, so tests read ``checkpoint["model"]``."""
    saved = torch.load(trial_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert not set(saved["state"]) & set(saved), "a state key shadows a checkpoint key"
    return {**{key: value for key, value in saved.items() if key != "state"}, **saved["state"]}


def read_metrics(trial_dir: Path) -> list[dict]:
    path = trial_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def read_records(record: Path) -> list[dict]:
    """Every per-step line ``SEER_RECORD_SAMPLES`` produced for one launch, all ranks."""
    lines = []
    for path in sorted(record.parent.glob(record.name + ".rank*")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


def global_order(records: list[dict]) -> dict[int, list[int]]:
    """Epoch -> the training indices of the epoch in global order (steps in order, within a step
    rank 0's slice first), rebuilt from the per-rank records; checks each step's ranks are
    complete and unique."""
    by_step: dict[tuple[int, int], dict[int, list[int]]] = {}
    for line in records:
        slot = by_step.setdefault((line["epoch"], line["step_in_epoch"]), {})
        assert line["rank"] not in slot, (
            f"rank {line['rank']} trained step {line['epoch']}/{line['step_in_epoch']} twice"
        )
        slot[line["rank"]] = line["indices"]
    orders: dict[int, list[int]] = {}
    for (epoch, _), ranks in sorted(by_step.items()):
        world = len(ranks)
        assert sorted(ranks) == list(range(world))
        for rank in range(world):
            orders.setdefault(epoch, []).extend(ranks[rank])
    return orders


def tensorboard_files(tb_dir: Path) -> list[Path]:
    return sorted(p for p in tb_dir.rglob("*") if p.is_file() and "tfevents" in p.name)


def tensorboard_scalars(tb_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Tag -> [(step, value)] as TensorBoard shows them, reading the raw event files in the
    order they were written and applying only the explicit purges (a ``SessionLog.START`` at
    step s discards earlier events at steps >= s, which is what ``purge_step`` writes). No
    implicit out-of-order purging: a launch that forgot ``purge_step`` shows up as steps that
    go back."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
    from tensorboard.compat.proto.event_pb2 import SessionLog

    events = []
    for path in tensorboard_files(tb_dir):
        events += [
            (event.wall_time, index, path.name, event)
            for index, event in enumerate(LegacyEventFileLoader(str(path)).Load())
        ]
    # files in the order of their first event, events in file order
    first = {}
    for wall, _index, name, _ in events:
        first.setdefault(name, wall)
    events.sort(key=lambda item: (first[item[2]], item[2], item[1]))
    scalars: dict[str, list[tuple[int, float]]] = {}
    for _, _, _, event in events:
        if event.HasField("session_log") and event.session_log.status == SessionLog.START:
            for tag in scalars:
                scalars[tag] = [(s, v) for s, v in scalars[tag] if s < event.step]
        if event.HasField("summary"):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    number = value.simple_value
                else:
                    number = float(torch.tensor(list(value.tensor.float_val))[0])
                scalars.setdefault(value.tag, []).append((event.step, number))
    return scalars


def model_hparams(configuration: dict) -> dict:
    return {key: value for key, value in configuration.items() if key in ("width", "dropout")}


@functools.lru_cache(maxsize=1)
def _digits():
    from seer_torch.data import load_dataset

    return load_dataset("digits", None)


@functools.lru_cache(maxsize=1)
def _tabular_module():
    """examples/tabular_mlp/train.py imported as a module (its ``load`` and ``build``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tabular_mlp_train", TABULAR.script[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_model(subject: Subject, configuration: dict) -> torch.nn.Module:
    """The subject's model for ``configuration``, as its launches build it."""
    if subject.script:
        x, y, _, _ = _tabular_module().load("breast_cancer", 0)
        return _tabular_module().build(x.shape[1], int(y.max()) + 1, int(configuration["width"]),
                                       int(configuration["depth"]))
    from seer_torch.models import build_model as build

    return build(subject.model, num_classes=10, in_channels=1, image_size=8, **model_hparams(configuration))


def evaluate_checkpoint(subject: Subject, state: dict, configuration: dict) -> tuple[dict, dict]:
    """A checkpoint's weights evaluated in this one process (W = 1): ``(exact, approximate)``
    metrics, the first counts of correct samples (``val_accuracy``; the worker's
    ``test_accuracy`` too), the second float sums (the script's ``val_loss``)."""
    net = build_model(subject, configuration)
    net.load_state_dict(state["model"], strict=True)
    net.eval()
    with torch.no_grad():
        if subject.script:
            _, _, x_val, y_val = _tabular_module().load("breast_cancer", 0)
            logits = net(x_val)
            return ({"val_accuracy": (logits.argmax(1) == y_val).sum().item() / subject.num_val},
                    {"val_loss": torch.nn.functional.cross_entropy(logits, y_val).item()})
        splits = _digits()
        val = (net(splits.val_x).argmax(1) == splits.val_y).sum().item() / subject.num_val
        test = (net(splits.test_x).argmax(1) == splits.test_y).sum().item() / NUM_TEST
    return {"val_accuracy": val, "test_accuracy": test}, {}
