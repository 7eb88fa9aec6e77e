#!/usr/bin/env python
"""The CIFAR-10/ResNet benchmark: throughput against world size, start-up and resize cost,
measured through the real worker under real torchrun (the local backend).

::

    python scripts/bench_cifar.py                       # synthetic CIFAR-10-format data, W = 1, 2
    python scripts/bench_cifar.py --data-dir ~/data/cifar10 --width 64 --world-sizes 1,2,4 --out bench.json

Two measurements, both through :class:`seer_torch.backends.local.LocalBackend`:

1. **Probes**, exactly what ``seer profile`` runs (:func:`seer_torch.scaling.profiler.run_probes`
   and :func:`~seer_torch.scaling.profiler.profile_from_probes`): one job per ``W`` alone,
   ``--profile-steps`` timed optimizer steps after the worker's warm-up steps, device
   synchronised before timers are read. Gives samples/s per ``W``, speedup, the epoch time at
   ``W = 1`` and each job's start-up seconds (duration minus measured work).
2. **Training with resizes**, exactly what ``seer profile`` runs to measure ``resize_s``
   (:func:`seer_torch.scaling.profiler.measure_relaunches`): one trial trains epoch 1 at the
   first ``W`` from scratch, then is relaunched from its checkpoint at each next ``W`` for one
   more epoch (``1 -> 2`` by default). For each launch: the epoch's training throughput and
   epoch time from the worker's ``metrics.jsonl``, and its overhead = the job's duration minus
   the time from its first step to its last metrics line (torch import, data, checkpoint load,
   process group, DDP wrap, checkpoint save, exit). The overhead of a relaunch at a new ``W`` is
   the resize seconds.

Without ``--data-dir`` (or when it holds no ``cifar-10-batches-py/``) the benchmark writes a
synthetic CIFAR-10-format folder (:mod:`seer_torch.cifar_synthetic`) and labels everything it
prints and writes ``SYNTHETIC``. The worker uses CUDA and NCCL when a GPU is present, CPU and
gloo (one thread per process) otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from seer_torch.backends.local import LocalBackend
from seer_torch.cifar_synthetic import is_synthetic_cifar10, write_synthetic_cifar10
from seer_torch.clock import RealClock
from seer_torch.scaling.profiler import (
    measure_relaunches,
    probe_startup_s,
    profile_from_probes,
    resize_s_from_launches,
    run_probes,
)


def _world_sizes(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(
            f"--world-sizes: got {text!r}; allowed: comma-separated integers >= 1"
        ) from err
    if not values or min(values) < 1 or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(
            f"--world-sizes: got {text!r}; allowed: distinct integers >= 1, e.g. 1,2"
        )
    return values


def _sequence(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"--train-sequence: got {text!r}; allowed: comma-separated integers >= 1, e.g. 1,2"
        )
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        help="folder holding cifar-10-batches-py/ (real CIFAR-10); "
        "absent or empty: a SYNTHETIC folder is written and used",
    )
    parser.add_argument(
        "--world-sizes", type=_world_sizes, default=[1, 2], help="comma-separated W list (default 1,2)"
    )
    parser.add_argument(
        "--width",
        type=int,
        default=8,
        help="resnet18_cifar base width (64 = standard ResNet-18; default 8 for CPU)",
    )
    parser.add_argument(
        "--global-batch", type=int, default=64, help="samples per optimizer step at every W (default 64)"
    )
    parser.add_argument(
        "--micro-batch-max", type=int, default=64, help="most samples per forward pass on one rank"
    )
    parser.add_argument(
        "--profile-steps", type=int, default=20, help="timed optimizer steps per probe (default 20)"
    )
    parser.add_argument(
        "--synthetic-train",
        type=int,
        default=7000,
        help="synthetic folder: training images (5000 of them are validation; default 7000)",
    )
    parser.add_argument(
        "--synthetic-test", type=int, default=1000, help="synthetic folder: test images (default 1000)"
    )
    parser.add_argument(
        "--train-sequence",
        type=_sequence,
        help="W of each training launch, one epoch each, relaunched from the checkpoint in between "
        "(default: --world-sizes; e.g. 1,1 on a single GPU measures a relaunch at the same W)",
    )
    parser.add_argument(
        "--no-train", action="store_true", help="probes only: skip the training/resize measurement"
    )
    parser.add_argument(
        "--work-dir", help="where trial folders and the synthetic data go (default: a temporary folder)"
    )
    parser.add_argument(
        "--timeout-s", type=float, default=600.0, help="per job; a job past it is stopped and reported"
    )
    parser.add_argument(
        "--out", default="bench_cifar.json", help="JSON result file (default bench_cifar.json)"
    )
    return parser.parse_args(argv)


def run_benchmark(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data_dir = args.data_dir
    if data_dir and os.path.isdir(os.path.join(os.path.expanduser(data_dir), "cifar-10-batches-py")):
        data_dir = os.path.abspath(os.path.expanduser(data_dir))
    else:
        if data_dir:
            print(
                f"no cifar-10-batches-py/ in {data_dir!r}: "
                "writing a SYNTHETIC CIFAR-10-format folder instead",
                file=sys.stderr,
            )
        data_dir = write_synthetic_cifar10(
            work / "synthetic_cifar10", num_train=args.synthetic_train, num_test=args.synthetic_test, seed=0
        )
    synthetic = is_synthetic_cifar10(data_dir)
    label = "SYNTHETIC CIFAR-10-format data (not CIFAR-10)" if synthetic else "CIFAR-10"
    world_sizes = args.world_sizes
    config = {
        "trial_id": "bench",
        "configuration": {
            "lr": 0.05,
            "weight_decay": 5e-4,
            "momentum": 0.9,
            "width": args.width,
            "dropout": 0.0,
        },
        "model": "resnet18_cifar",
        "dataset": "cifar10",
        "data_dir": data_dir,
        "global_batch": args.global_batch,
        "micro_batch_max": args.micro_batch_max,
        "max_epochs": len(args.train_sequence or world_sizes) + 1,
        "seed": 0,
        "tensorboard_dir": None,
    }
    clock = RealClock()
    # Each launch timed to its exit: no job kept alive.
    backend = LocalBackend(num_slots=max(world_sizes), clock=clock, keep_alive=False)
    name = f"resnet18_cifar-w{args.width}-{'synthetic-' if synthetic else ''}cifar10-gb{args.global_batch}"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        # 1. Probes: the profiler's own code path.
        probes = run_probes(
            backend,
            clock,
            work / "probes",
            config,
            world_sizes,
            profile_steps=args.profile_steps,
            timeout_s=args.timeout_s,
        )
        profile = profile_from_probes(name, probes, source=f"scripts/bench_cifar.py on {label}, {device}")
        per_w: dict[int, dict[str, Any]] = {}
        for probe, _, duration in probes:
            w = int(probe["world_size"])
            per_w[w] = {
                "world_size": w,
                "probe_throughput_samples_per_s": float(probe["throughput_samples_per_s"]),
                "probe_step_time_s": float(probe["step_time_s"]),
                "probe_eval_time_s": float(probe["eval_time_s"]),
                "probe_job_s": duration,
                "startup_s": probe_startup_s(probe, duration),
                "accum_steps": int(probe["accum_steps"]),
                "micro_batch": int(probe["micro_batch"]),
                "device": probe["device"],
            }
        # 2. One trial, epoch by epoch, relaunched from its checkpoint at each next W.
        launches = []
        if not args.no_train:
            launches = measure_relaunches(
                backend,
                clock,
                work / "trial",
                config,
                args.train_sequence or world_sizes,
                timeout_s=args.timeout_s,
            )
            for launch in launches:
                per_w.setdefault(launch["world_size"], {"world_size": launch["world_size"]})["train"] = launch
    finally:
        backend.stop_all()
    resize_s = resize_s_from_launches(launches)
    thr = dict(zip(profile.world_sizes, profile.throughput_samples_per_s))
    result = {
        "benchmark": "cifar10-resnet18",
        "synthetic": synthetic,
        "dataset": label,
        "data_dir": data_dir,
        "model": "resnet18_cifar",
        "width": args.width,
        "global_batch": args.global_batch,
        "micro_batch_max": args.micro_batch_max,
        "profile_steps": args.profile_steps,
        "device": device,
        "backend": "nccl" if device == "cuda" else "gloo",
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if device == "cuda"
        else [],
        "torch": torch.__version__,
        "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "world_sizes": list(profile.world_sizes),
        "throughput_samples_per_s": [thr[w] for w in profile.world_sizes],
        "speedup": list(profile.speedup),
        "epoch_time_s": profile.epoch_time_s,
        "startup_s": profile.startup_s,
        "resize_s": resize_s,
        "per_world_size": [per_w[w] for w in profile.world_sizes],
        "launches": launches,
        # The scaling-profile format of docs/design.md; resize_s measured by a real relaunch
        # when there was one.
        "profile": {**profile.to_dict(), **({"resize_s": resize_s} if resize_s is not None else {})},
        "measured_unix_s": time.time(),
    }
    return result


def print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    tag = "SYNTHETIC " if result["synthetic"] else ""
    table = Table(
        title=f"{tag}CIFAR-10 ResNet-18 (width {result['width']}), global batch {result['global_batch']}, "
        f"{result['device']}/{result['backend']}"
    )
    for column in (
        "W",
        "samples/s (probe)",
        "speedup",
        "start-up s",
        "train samples/s",
        "epoch s",
        "launch",
        "overhead s",
    ):
        table.add_column(column, justify="right")
    for row, speedup in zip(result["per_world_size"], result["speedup"]):
        train = row.get("train", {})
        table.add_row(
            str(row["world_size"]),
            f"{row['probe_throughput_samples_per_s']:.1f}",
            f"{speedup:.2f}",
            f"{row['startup_s']:.2f}",
            f"{train['train_throughput_samples_per_s']:.1f}" if train else "-",
            f"{train['epoch_time_s']:.2f}" if train else "-",
            train.get("kind", "-"),
            f"{train['overhead_s']:.2f}" if train else "-",
        )
    console.print(table)
    resize = result["resize_s"]
    console.print(f"data: {result['dataset']} ({result['data_dir']})")
    console.print(
        f"epoch time at W=1 (profile): {result['epoch_time_s']:.2f} s; start-up (max over W): "
        f"{result['startup_s']:.2f} s; resize: {'-' if resize is None else f'{resize:.2f} s'}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.work_dir:
        work = Path(args.work_dir).resolve()
        work.mkdir(parents=True, exist_ok=True)
        result = run_benchmark(args, work)
    else:
        with tempfile.TemporaryDirectory(prefix="seer-bench-cifar-") as tmp:
            result = run_benchmark(args, Path(tmp))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
