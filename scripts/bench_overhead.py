#!/usr/bin/env python
"""Harness overhead: the worker at W = 1 against a plain PyTorch loop, same model, data, batch.

::

    python scripts/bench_overhead.py                                  # digits_cnn width 96 on digits
    python scripts/bench_overhead.py --model resnet18_cifar --width 8 --epochs 2   # SYNTHETIC CIFAR-10 format

In one run, alternating ``--repeats`` times, both train the same model on the same in-memory
data (:func:`seer_torch.data.load_dataset`) with the same global batch, SGD with Nesterov
momentum and a cosine schedule stepped per optimizer step, one thread each
(``torch.set_num_threads(1)``):

- **plain**: the loop in :func:`plain_loop`, about twenty lines, in a fresh Python process
  with the environment the local backend gives a worker (``OMP_NUM_THREADS=1``,
  ``MKL_NUM_THREADS=1``), so both sides start equal;
- **worker**: the real worker through torchrun (:class:`~seer_torch.backends.local.LocalBackend`,
  TensorBoard on as in a real trial), its throughput read from ``metrics.jsonl``
  (``throughput_samples_per_s``; the first :data:`~seer_torch.worker.WARMUP_STEPS` steps of the
  launch excluded).

Both exclude the same warm-up steps and count training time only (no evaluation). The
printed ratio is worker / plain samples per second, best repeat against best repeat (the
median is printed too). Launch cost is not part of it; ``scripts/bench_cifar.py`` measures that.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from seer_torch.backends.base import JobSpec, job_error_text
from seer_torch.backends.local import LocalBackend
from seer_torch.cifar_synthetic import is_synthetic_cifar10, write_synthetic_cifar10
from seer_torch.clock import RealClock
from seer_torch.data import augment_crop_flip, load_dataset
from seer_torch.models import build_model
from seer_torch.scaling.profiler import wait_job
from seer_torch.worker import WARMUP_STEPS

LR, WEIGHT_DECAY, MOMENTUM, SEED = 0.05, 5e-4, 0.9, 0


def plain_loop(model_name: str, hparams: dict[str, Any], splits, global_batch: int, epochs: int) -> float:
    """Train like a plain PyTorch script; return training samples/s after the warm-up steps."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # as the worker picks
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(SEED)
    model = build_model(
        model_name,
        num_classes=splits.num_classes,
        in_channels=splits.in_channels,
        image_size=splits.image_size,
        **hparams,
    ).to(device)
    opt = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True
    )
    steps_per_epoch = splits.num_train // global_batch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            0.5 * (1 + math.cos(math.pi * min(s, epochs * steps_per_epoch) / (epochs * steps_per_epoch)))
        ),
    )
    model.train()
    steps, start = 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(splits.num_train)
        for i in range(steps_per_epoch):
            if steps == WARMUP_STEPS:
                sync()
                start = time.perf_counter()
            idx = perm[i * global_batch : (i + 1) * global_batch]
            x, y = splits.train_x[idx].to(device), splits.train_y[idx].to(device)
            if splits.augment:  # the same crop and flip the worker applies to CIFAR-10
                x = augment_crop_flip(x, seed=SEED, epoch=epoch, step=i, global_batch=global_batch, offset=0)
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            sched.step()
            steps += 1
    sync()
    return (steps - WARMUP_STEPS) * global_batch / (time.perf_counter() - start)


def step_level(
    model_name: str,
    hparams: dict[str, Any],
    splits_name: str,
    data_dir: str | None,
    global_batch: int,
    blocks: int,
    steps_per_block: int,
) -> dict[str, Any]:
    """The per-step cost alone, in this process: blocks of ``steps_per_block`` steps of the plain
    loop's body and of the worker's own loop body (:meth:`seer_torch.worker.Trainer.train_step`,
    the loss read back, TensorBoard's two scalars), alternating, so a burst of load from other
    processes hits both alike. Returns the median samples/s of each and their ratio."""
    import tempfile as _tempfile

    from torch.utils.tensorboard import SummaryWriter

    from seer_torch.data import epoch_permutation
    from seer_torch.worker import DistEnv, TrialConfig, build_trainer

    config = TrialConfig.from_dict(
        {
            "trial_id": "step",
            "configuration": {"lr": LR, "weight_decay": WEIGHT_DECAY, "momentum": MOMENTUM, **hparams},
            "model": model_name,
            "dataset": splits_name,
            "data_dir": data_dir,
            "global_batch": global_batch,
            "micro_batch_max": global_batch,
            "max_epochs": 100,
            "seed": SEED,
        }
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    trainer = build_trainer(config, DistEnv(0, 0, 1, device), None)
    splits = trainer.splits
    writer = SummaryWriter(_tempfile.mkdtemp(prefix="seer-bench-tb-"))
    torch.manual_seed(SEED)
    model = build_model(
        model_name,
        num_classes=splits.num_classes,
        in_channels=splits.in_channels,
        image_size=splits.image_size,
        **hparams,
    ).to(device)
    opt = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=True
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, 10**6) / 10**6))
    )
    perm = epoch_permutation(SEED, 1, splits.num_train)
    steps_per_epoch = splits.num_train // global_batch

    def plain_step(i: int) -> None:
        idx = perm[i * global_batch : (i + 1) * global_batch]
        x, y = splits.train_x[idx].to(device), splits.train_y[idx].to(device)
        if splits.augment:
            x = augment_crop_flip(x, seed=SEED, epoch=1, step=i, global_batch=global_batch, offset=0)
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()

    def worker_step(i: int) -> None:  # the body of seer_torch.worker.train's step loop at W = 1
        loss = float(trainer.train_step(1, i, perm).item())
        if not math.isfinite(loss):
            raise RuntimeError("diverged")
        writer.add_scalar("train/loss", loss, trainer.step)
        writer.add_scalar("train/lr", trainer.lr(), trainer.step)

    for i in range(WARMUP_STEPS):
        plain_step(i)
        worker_step(i)
    rates: dict[str, list[float]] = {"plain": [], "worker": []}
    cpu_rates: dict[str, list[float]] = {"plain": [], "worker": []}  # per CPU second of this process
    for block in range(blocks):
        for name, step in (("plain", plain_step), ("worker", worker_step))[:: 1 if block % 2 == 0 else -1]:
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            for k in range(steps_per_block):
                step((block * steps_per_block + k) % steps_per_epoch)
            sync()
            rates[name].append(steps_per_block * global_batch / (time.perf_counter() - start))
            cpu_rates[name].append(steps_per_block * global_batch / (time.process_time() - cpu_start))
    writer.close()
    plain_median, worker_median = statistics.median(rates["plain"]), statistics.median(rates["worker"])
    return {
        "plain_samples_per_s": rates["plain"],
        "worker_samples_per_s": rates["worker"],
        "plain_median": plain_median,
        "worker_median": worker_median,
        "ratio_median": worker_median / plain_median,
        "blocks": blocks,
        "steps_per_block": steps_per_block,
        # CPU time is what load from other processes cannot inflate (on CPU runs; on a GPU it means little).
        "plain_samples_per_cpu_s": cpu_rates["plain"],
        "worker_samples_per_cpu_s": cpu_rates["worker"],
        "ratio_cpu_median": statistics.median(cpu_rates["worker"]) / statistics.median(cpu_rates["plain"]),
    }


def plain_run(
    args: argparse.Namespace, model_name: str, width: int, data_dir: str | None, epochs: int
) -> float:
    """:func:`plain_loop` in a child process with the worker's thread environment."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    argv = [
        sys.executable,
        os.path.abspath(__file__),
        "--plain-child",
        "--model",
        model_name,
        "--width",
        str(width),
        "--global-batch",
        str(args.global_batch),
        "--epochs",
        str(epochs),
    ]
    if data_dir:
        argv += ["--data-dir", data_dir]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=args.timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"plain loop failed:\n{done.stderr}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["throughput_samples_per_s"])


def worker_run(
    work: Path, index: int, config: dict[str, Any], epochs: int, timeout_s: float
) -> dict[str, Any]:
    """Train ``epochs`` epochs with the real worker at W = 1 under torchrun; return its
    aggregate training throughput over the epochs (warm-up steps excluded, as it measures)."""
    trial_dir = work / f"worker{index}"
    trial_dir.mkdir(parents=True)
    (trial_dir / "config.json").write_text(
        json.dumps({**config, "tensorboard_dir": str(trial_dir / "tensorboard")})
    )
    clock = RealClock()
    backend = LocalBackend(num_slots=1, clock=clock)
    try:
        res = wait_job(backend, clock, backend.launch(JobSpec("overhead", trial_dir, 1, epochs)), timeout_s)
    finally:
        backend.stop_all()
    if res.returncode != 0 or res.stopped:
        raise RuntimeError(f"worker run failed: {job_error_text(res)}")
    lines = [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]
    steps_per_epoch = lines[0]["step"]
    gb = lines[0]["global_batch"]
    samples = seconds = 0.0
    for line in lines:
        measured = (steps_per_epoch - WARMUP_STEPS if line["epoch"] == 1 else steps_per_epoch) * gb
        samples += measured
        seconds += measured / line["throughput_samples_per_s"]
    return {
        "throughput_samples_per_s": samples / seconds,
        "job_s": res.duration_s,
        "per_epoch": [line["throughput_samples_per_s"] for line in lines],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("digits_cnn", "resnet18_cifar"), default="digits_cnn")
    parser.add_argument(
        "--width",
        type=int,
        default=None,
        help="model width (default 96 for digits_cnn, 8 for resnet18_cifar)",
    )
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 8 digits, 1 CIFAR)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating plain/worker pairs (default 2)")
    parser.add_argument(
        "--data-dir",
        help="resnet18_cifar: folder with cifar-10-batches-py/ (default: SYNTHETIC folder written)",
    )
    parser.add_argument(
        "--synthetic-train",
        type=int,
        default=7000,
        help="synthetic folder: training images, 5000 of them validation (default 7000)",
    )
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--out", help="JSON result file")
    parser.add_argument(
        "--step-blocks",
        type=int,
        default=10,
        help="in-process step-level comparison: alternating blocks of each (default 10; 0 skips it)",
    )
    parser.add_argument("--plain-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cifar = args.model == "resnet18_cifar"
    width = args.width or (8 if cifar else 96)
    epochs = args.epochs or (1 if cifar else 8)
    hparams = {"width": width, "dropout": 0.0}
    if args.plain_child:
        splits = load_dataset("cifar10" if cifar else "digits", args.data_dir if cifar else None)
        print(
            json.dumps(
                {
                    "throughput_samples_per_s": plain_loop(
                        args.model, hparams, splits, args.global_batch, epochs
                    )
                }
            )
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="seer-bench-overhead-") as tmp:
        work = Path(tmp)
        data_dir = None
        if cifar:
            data_dir = args.data_dir or write_synthetic_cifar10(
                work / "synthetic_cifar10", num_train=args.synthetic_train, num_test=500
            )
        synthetic = bool(data_dir) and is_synthetic_cifar10(data_dir)
        dataset = "cifar10" if cifar else "digits"
        label = (
            ("SYNTHETIC CIFAR-10-format data (not CIFAR-10)" if synthetic else "CIFAR-10")
            if cifar
            else "digits"
        )
        config = {
            "trial_id": "overhead",
            "configuration": {"lr": LR, "weight_decay": WEIGHT_DECAY, "momentum": MOMENTUM, **hparams},
            "model": args.model,
            "dataset": dataset,
            "data_dir": data_dir,
            "global_batch": args.global_batch,
            "micro_batch_max": args.global_batch,
            "max_epochs": epochs,
            "seed": SEED,
        }
        plain, worker = [], []
        for index in range(args.repeats):
            plain.append(plain_run(args, args.model, width, data_dir, epochs))
            worker.append(worker_run(work, index, config, epochs, args.timeout_s))
            print(
                f"repeat {index + 1}: plain {plain[-1]:.1f} samples/s, "
                f"worker {worker[-1]['throughput_samples_per_s']:.1f} samples/s",
                file=sys.stderr,
            )
        steps = None
        if args.step_blocks > 0:
            steps = step_level(
                args.model,
                hparams,
                dataset,
                data_dir,
                args.global_batch,
                args.step_blocks,
                steps_per_block=10,
            )
    worker_thr = [w["throughput_samples_per_s"] for w in worker]
    ratio_best = max(worker_thr) / max(plain)
    ratio_median = statistics.median(worker_thr) / statistics.median(plain)
    result = {
        "benchmark": "harness-overhead",
        "model": args.model,
        "width": width,
        "dataset": label,
        "synthetic": synthetic,
        "global_batch": args.global_batch,
        "epochs": epochs,
        "threads": 1,
        "warmup_steps_excluded": WARMUP_STEPS,
        "plain_samples_per_s": plain,
        "worker_samples_per_s": worker_thr,
        "worker_per_epoch_samples_per_s": [w["per_epoch"] for w in worker],
        "ratio_worker_over_plain_best": ratio_best,
        "ratio_worker_over_plain_median": ratio_median,
        "step_level": steps,
        "torch": torch.__version__,
    }
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Harness overhead: {args.model} width {width} on {label}, batch {args.global_batch}, "
        f"{epochs} epoch(s), 1 thread"
    )
    for column in ("run", "plain samples/s", "worker samples/s", "worker / plain"):
        table.add_column(column, justify="right")
    for index, (p, w) in enumerate(zip(plain, worker_thr)):
        table.add_row(str(index + 1), f"{p:.1f}", f"{w:.1f}", f"{w / p:.3f}")
    table.add_row("best", f"{max(plain):.1f}", f"{max(worker_thr):.1f}", f"{ratio_best:.3f}")
    table.add_row(
        "median",
        f"{statistics.median(plain):.1f}",
        f"{statistics.median(worker_thr):.1f}",
        f"{ratio_median:.3f}",
    )
    Console().print(table)
    print(
        f"ratio worker/plain throughput (torchrun job vs plain process): "
        f"{ratio_best:.3f} (best of {args.repeats}), "
        f"{ratio_median:.3f} (median)"
    )
    if steps is not None:
        print(
            f"ratio worker/plain per step "
            f"(in one process, {args.step_blocks} alternating blocks of 10 steps): "
            f"{steps['ratio_median']:.3f} "
            f"(medians {steps['worker_median']:.1f} / {steps['plain_median']:.1f} samples/s); "
            f"per CPU second {steps['ratio_cpu_median']:.3f}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
