#!/usr/bin/env python
"""Harness overhead: the built-in worker (on the trial API) at W = 1 against a plain PyTorch
loop, same model, data, global batch and steps, one thread each.

::

    python scripts/bench_overhead.py                                  # digits_cnn width 96 on digits
    python scripts/bench_overhead.py --pairs 7 --epochs 12            # more, longer pairs
    python scripts/bench_overhead.py --model resnet18_cifar --width 8 --epochs 2   # SYNTHETIC CIFAR-10 format

In one run, ``--pairs`` times, A then B:

- **A, plain**: the loop in :func:`plain_loop`, about twenty lines of ordinary PyTorch
  (``torch.randperm`` order, SGD with Nesterov momentum, a cosine ``LambdaLR`` stepped per
  optimizer step), in a fresh Python process with the environment the local backend gives a
  job (``OMP_NUM_THREADS=1``, ``MKL_NUM_THREADS=1``);
- **B, worker**: ``python -m seer_torch.worker`` launched by
  :class:`~seer_torch.backends.local.LocalBackend` under torchrun, as ``seer tune`` launches it,
  with TensorBoard on; everything the tuner depends on (batch plan, data order, checkpoint,
  metrics line, heartbeat, TensorBoard) goes through :mod:`seer_torch.trial`. Its throughput
  is read from ``metrics.jsonl`` (``throughput_samples_per_s``, training steps only).

Both leave out the launch's first :data:`~seer_torch.trial.WARMUP_STEPS` steps and count
training time only (no evaluation, no start-up; ``scripts/bench_cifar.py`` measures start-up).
Each pair's ratio is worker / plain samples per second; the verdict is their median against
``--min-ratio`` (default 0.95): the exit status is 1 below it. Alternating the two sides makes a
burst of load from other processes on a shared machine hit both alike; the median keeps one
disturbed pair from moving the verdict.

A second, finer measurement runs in this process (``--step-blocks``, 0 skips it): alternating
blocks of 10 steps of the plain loop's body and of the worker's loop body (the trial's
:meth:`~seer_torch.trial.Trial.train_batches` and
:meth:`~seer_torch.training.trainer.Trainer.train_step`, the loss read back, the per-step
TensorBoard scalars), the per-step cost alone.
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
from collections.abc import Iterator
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
from seer_torch.trial import WARMUP_STEPS

LR, WEIGHT_DECAY, MOMENTUM, SEED = 0.05, 5e-4, 0.9, 0


def _sgd_cosine(model: torch.nn.Module, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
    """SGD with Nesterov momentum and a cosine ``LambdaLR`` to 0 at ``total_steps``, as the worker's."""
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                          nesterov=True)
    cosine = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))
    return opt, cosine


def plain_loop(model_name: str, hparams: dict[str, Any], splits, global_batch: int, epochs: int) -> float:
    """Train like a plain PyTorch script; return training samples/s after the warm-up steps."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # as the worker picks
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(SEED)
    model = build_model(model_name, num_classes=splits.num_classes, input_shape=splits.input_shape,
                        **hparams).to(device)
    opt, sched = _sgd_cosine(model, epochs * (splits.num_train // global_batch))
    model.train()
    steps, start = 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(splits.num_train)
        for i in range(splits.num_train // global_batch):
            if steps == WARMUP_STEPS:
                sync()
                start = time.perf_counter()
            idx = perm[i * global_batch : (i + 1) * global_batch]
            x, y = splits.train_x[idx].to(device), splits.train_y[idx].to(device)
            if splits.augment:  # the same crop and flip the worker applies to CIFAR-10
                x = augment_crop_flip(x, seed=SEED, epoch=epoch, step=i, global_batch=global_batch, offset=0)
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()
            steps += 1
    sync()
    return (steps - WARMUP_STEPS) * global_batch / (time.perf_counter() - start)


def plain_run(args: argparse.Namespace, width: int, data_dir: str | None, epochs: int) -> float:
    """:func:`plain_loop` in a child process with a job's thread environment; its samples/s."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    argv = [sys.executable, os.path.abspath(__file__), "--plain-child", "--model", args.model,
            "--width", str(width), "--global-batch", str(args.global_batch), "--epochs", str(epochs)]
    if data_dir:
        argv += ["--data-dir", data_dir]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=args.timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"plain loop failed:\n{done.stderr}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["throughput_samples_per_s"])


def worker_run(work: Path, index: int, config: dict[str, Any], epochs: int, timeout_s: float) -> float:
    """Train ``epochs`` epochs with the worker at W = 1, launched as ``seer tune`` launches it;
    return its training samples/s over all epochs (the warm-up steps left out, as it measures)."""
    trial_dir = work / f"worker{index}"
    trial_dir.mkdir(parents=True)
    (trial_dir / "config.json").write_text(json.dumps({**config, "tensorboard_dir": str(trial_dir / "tb")}))
    clock = RealClock()
    backend = LocalBackend(num_slots=1, clock=clock, keep_alive=False)  # a job from launch to exit
    try:
        res = wait_job(backend, clock, backend.launch(JobSpec("overhead", trial_dir, 1, epochs)), timeout_s)
    finally:
        backend.stop_all()
    if res.returncode != 0 or res.stopped:
        raise RuntimeError(f"worker run failed: {job_error_text(res)}")
    lines = [json.loads(line) for line in (trial_dir / "metrics.jsonl").read_text().splitlines()]
    steps_per_epoch, gb = lines[0]["step"], lines[0]["global_batch"]
    samples = seconds = 0.0
    for line in lines:
        measured = (steps_per_epoch - WARMUP_STEPS if line["epoch"] == 1 else steps_per_epoch) * gb
        samples += measured
        seconds += measured / line["throughput_samples_per_s"]
    return samples / seconds


def step_level(config: dict[str, Any], work: Path, blocks: int, steps_per_block: int) -> dict[str, Any]:
    """The per-step cost alone, in this process: alternating blocks of ``steps_per_block`` steps
    of the plain loop's body and of the worker's (a trial at W = 1 in ``work``). Returns each
    block's samples/s and the ratio of the medians (also per CPU second of this process)."""
    from seer_torch import trial
    from seer_torch.training.config import TrialConfig
    from seer_torch.training.trainer import build_trainer

    trial_dir = work / "step_level"
    trial_dir.mkdir()
    raw = {**config, "max_epochs": 1000, "tensorboard_dir": str(trial_dir / "tb")}
    (trial_dir / "config.json").write_text(json.dumps(raw))
    t = trial.init(trial_dir, 1, cpu_threads=1)
    trainer = build_trainer(t, TrialConfig.from_dict(raw), None)
    splits, gb = trainer.splits, t.global_batch
    device = t.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(SEED)
    model = build_model(config["model"], num_classes=splits.num_classes, input_shape=splits.input_shape,
                        **trainer.config.model_hparams).to(device)
    opt, sched = _sgd_cosine(model, 10**6)
    perm = torch.randperm(splits.num_train)
    per_epoch = splits.num_train // gb

    def plain_step(i: int) -> None:
        i %= per_epoch
        idx = perm[i * gb : (i + 1) * gb]
        x, y = splits.train_x[idx].to(device), splits.train_y[idx].to(device)
        if splits.augment:
            x = augment_crop_flip(x, seed=SEED, epoch=1, step=i, global_batch=gb, offset=0)
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()

    def worker_batches() -> Iterator[tuple[int, int, tuple[torch.Tensor, ...]]]:
        for epoch in range(1, 1001):
            for step_in_epoch, micro_batches in enumerate(t.train_batches(splits.num_train, epoch)):
                yield epoch, step_in_epoch, micro_batches

    batches = worker_batches()

    def worker_step(_: int) -> None:  # the body of seer_torch.worker's step loop
        epoch, step_in_epoch, micro_batches = next(batches)
        loss = float(trainer.train_step(epoch, step_in_epoch, micro_batches).item())
        if not math.isfinite(loss):
            raise RuntimeError("diverged")
        t.log(**{"train/loss": loss, "train/lr": trainer.lr()})

    for i in range(WARMUP_STEPS):
        plain_step(i)
        worker_step(i)
    rates: dict[str, list[float]] = {"plain": [], "worker": []}
    cpu_rates: dict[str, list[float]] = {"plain": [], "worker": []}
    for block in range(blocks):
        for name, step in (("plain", plain_step), ("worker", worker_step))[:: 1 if block % 2 == 0 else -1]:
            sync()
            start, cpu_start = time.perf_counter(), time.process_time()
            for k in range(steps_per_block):
                step(block * steps_per_block + k)
            sync()
            rates[name].append(steps_per_block * gb / (time.perf_counter() - start))
            cpu_rates[name].append(steps_per_block * gb / (time.process_time() - cpu_start))
    batches.close()
    t.finish()
    return {
        "plain_samples_per_s": rates["plain"],
        "worker_samples_per_s": rates["worker"],
        "ratio_median": statistics.median(rates["worker"]) / statistics.median(rates["plain"]),
        # CPU time is what load from other processes cannot inflate (CPU runs only).
        "ratio_cpu_median": statistics.median(cpu_rates["worker"]) / statistics.median(cpu_rates["plain"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("digits_cnn", "resnet18_cifar"), default="digits_cnn")
    parser.add_argument("--width", type=int, help="model width (default 96 digits_cnn, 8 resnet18_cifar)")
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, help="epochs per run (default 8 digits, 1 CIFAR)")
    parser.add_argument("--pairs", type=int, default=5, help="plain/worker pairs, alternating (default 5)")
    parser.add_argument("--min-ratio", type=float, default=0.95,
                        help="exit 1 when the median worker/plain ratio is below this (default 0.95)")
    parser.add_argument("--data-dir", help="resnet18_cifar: the folder holding cifar-10-batches-py/ "
                        "(default: a SYNTHETIC one)")
    parser.add_argument("--synthetic-train", type=int, default=7000,
                        help="synthetic folder: training images, 5000 of them validation (default 7000)")
    parser.add_argument("--step-blocks", type=int, default=10,
                        help="in-process per-step comparison: alternating blocks (default 10; 0 skips it)")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--out", help="JSON result file")
    parser.add_argument("--plain-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cifar = args.model == "resnet18_cifar"
    width = args.width or (8 if cifar else 96)
    epochs = args.epochs or (1 if cifar else 8)
    hparams = {"width": width, "dropout": 0.0}
    if args.plain_child:
        splits = load_dataset("cifar10" if cifar else "digits", args.data_dir if cifar else None)
        print(json.dumps({"throughput_samples_per_s": plain_loop(args.model, hparams, splits,
                                                                 args.global_batch, epochs)}))
        return 0
    with tempfile.TemporaryDirectory(prefix="seer-bench-overhead-") as tmp:
        work = Path(tmp)
        data_dir = None
        if cifar:
            data_dir = args.data_dir or write_synthetic_cifar10(work / "synthetic_cifar10",
                                                                num_train=args.synthetic_train, num_test=500)
        synthetic = bool(data_dir) and is_synthetic_cifar10(data_dir)
        label = "digits"
        if cifar:
            label = "SYNTHETIC CIFAR-10-format data (not CIFAR-10)" if synthetic else "CIFAR-10"
        config = {
            "trial_id": "overhead",
            "configuration": {"lr": LR, "weight_decay": WEIGHT_DECAY, "momentum": MOMENTUM, **hparams},
            "model": args.model, "dataset": "cifar10" if cifar else "digits", "data_dir": data_dir,
            "global_batch": args.global_batch, "micro_batch_max": args.global_batch,
            "max_epochs": epochs, "seed": SEED,
        }
        print(f"{args.model} width {width} on {label}, global batch {args.global_batch}, {epochs} epoch(s) "
              f"per run, W = 1, 1 thread, {torch.get_num_threads()} thread here; samples/s of training")
        plain, worker = [], []
        for index in range(args.pairs):
            plain.append(plain_run(args, width, data_dir, epochs))
            worker.append(worker_run(work, index, config, epochs, args.timeout_s))
            print(f"pair {index + 1}: plain {plain[-1]:8.1f}  worker {worker[-1]:8.1f}  "
                  f"worker/plain {worker[-1] / plain[-1]:.3f}", flush=True)
        steps = step_level(config, work, args.step_blocks, 10) if args.step_blocks > 0 else None
    ratios = [w / p for w, p in zip(worker, plain)]
    median_ratio = statistics.median(ratios)
    verdict = "PASS" if median_ratio >= args.min_ratio else "FAIL"
    print(f"median worker/plain ratio over {args.pairs} pairs: {median_ratio:.3f} "
          f"(pairs {min(ratios):.3f}..{max(ratios):.3f}); {verdict} against {args.min_ratio}")
    if steps is not None:
        print(f"per step, in one process ({args.step_blocks} alternating blocks of 10 steps): worker/plain "
              f"{steps['ratio_median']:.3f} by wall clock, {steps['ratio_cpu_median']:.3f} per CPU second")
    if args.out:
        result = {
            "benchmark": "harness-overhead", "model": args.model, "width": width, "dataset": label,
            "synthetic": synthetic, "global_batch": args.global_batch, "epochs": epochs, "threads": 1,
            "warmup_steps_excluded": WARMUP_STEPS, "plain_samples_per_s": plain,
            "worker_samples_per_s": worker,
            "pair_ratios": ratios, "median_ratio": median_ratio, "min_ratio": args.min_ratio,
            "step_level": steps, "torch": torch.__version__,
        }
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
