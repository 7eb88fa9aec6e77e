"""A ResNet on CIFAR-10 read from a local folder, tuned by seer-torch: a user's own torchrun
script on the public trial API (:mod:`seer_torch.trial`), with torchvision's ResNet and CIFAR10.

    CIFAR10_DIR=/path/to/folder seer tune examples/cifar_resnet/experiment.toml

Data: ``--data-dir DIR`` or ``$CIFAR10_DIR``, a folder holding ``cifar-10-batches-py/`` in
torchvision's layout (``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``:
``cifar-10-python.tar.gz`` extracted there); nothing is downloaded. The last ``--val-size``
training images are held out for validation (``val_accuracy``, ``val_loss``); ``test_batch`` is
scored once, at the schedule's last epoch (``test_accuracy``). ``--train-subset N`` trains on
the first N of the rest only (a quick run).

Model: ``--arch resnet18`` (:func:`torchvision.models.resnet18`) or ``resnet10`` (torchvision's
:class:`~torchvision.models.resnet.ResNet` with one ``BasicBlock`` per stage), with the usual
CIFAR stem (a 3x3 convolution, stride 1, no max-pool) or, with ``--imagenet-stem``,
torchvision's own (7x7 stride 2 and a max-pool: 32x32 images shrink to 8x8 at once, about 16
times fewer FLOPs and lower accuracy; for CPUs).

Hyperparameters (the trial's ``config``): ``lr``, SGD's peak step size per optimizer step on
the loss averaged over the global batch (Nesterov momentum ``momentum``, default 0.9), warmed
up linearly over the first epoch and annealed by a cosine to 0 at ``max_epochs``: a function of
the optimizer step only, so the same at every world size; ``weight_decay``, SGD's L2
coefficient; ``label_smoothing`` (default 0). Training images are augmented by a random crop
(4 pixels of zero padding) and a horizontal flip drawn per image from ``(seed, epoch)``, so an
image is augmented alike whichever rank trains it, at any world size.

What depends on the world size: nothing in training (each rank's micro-batch is the same
samples as one micro-batch at W=1, and BatchNorm normalises over the micro-batch, which stays
``micro_batch_max`` when ``global_batch`` divides into it at every W); BatchNorm's running
statistics, which evaluation uses, follow rank 0's micro-batches under DDP (its buffers are
broadcast at each forward) and every micro-batch at W=1, so evaluation may differ slightly.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import resnet18
from torchvision.models.resnet import BasicBlock, ResNet

import seer_torch.trial as trial
from seer_torch.cifar_synthetic import cifar10_dataset_class

MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10's training images, per channel
STD = (0.2470, 0.2435, 0.2616)
LAYOUT = ("cifar-10-batches-py/ with data_batch_1 .. data_batch_5, test_batch and batches.meta "
          "(cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extracted there)")


def load(root: str, val_size: int, train_subset: int, test_subset: int) -> dict[str, torch.Tensor]:
    """uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)`` of each split:
    ``train_x``/``train_y``, ``val_x``/``val_y`` (the last ``val_size`` training images),
    ``test_x``/``test_y``. torchvision's CIFAR10 checks the files' MD5s; a folder written by
    :mod:`seer_torch.cifar_synthetic` for tests carries a marker and is checked against it."""
    folder = Path(root) / "cifar-10-batches-py"
    if not folder.is_dir():
        raise FileNotFoundError(f"no CIFAR-10 in {root!r}: expected {folder} in torchvision's "
                                f"layout, {LAYOUT}; pass --data-dir DIR or set CIFAR10_DIR")
    dataset = cifar10_dataset_class(root)  # torchvision's CIFAR10, or the synthetic test folder's
    train, test = dataset(root, train=True, download=False), dataset(root, train=False, download=False)

    def tensors(split: object, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(split.data).permute(0, 3, 1, 2).contiguous()  # (N, 32, 32, 3) -> (N, 3, 32, 32)
        y = torch.as_tensor(split.targets, dtype=torch.int64)
        return (x[:limit], y[:limit]) if limit else (x, y)

    x, y = tensors(train, 0)
    if not 0 < val_size < len(y):
        raise ValueError(f"--val-size: got {val_size}; allowed: 1 .. {len(y) - 1} "
                         f"(of {len(y)} training images)")
    out = {"val_x": x[-val_size:], "val_y": y[-val_size:]}
    out["train_x"], out["train_y"] = x[:-val_size], y[:-val_size]
    if train_subset:
        out["train_x"], out["train_y"] = out["train_x"][:train_subset], out["train_y"][:train_subset]
    out["test_x"], out["test_y"] = tensors(test, test_subset)
    return out


def build(arch: str, imagenet_stem: bool) -> nn.Module:
    """A 10-class ResNet from torchvision; the CIFAR stem unless ``imagenet_stem``."""
    if arch == "resnet18":
        model = resnet18(num_classes=10)
    else:
        model = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)
    if not imagenet_stem:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    return model


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(n, 3, 32, 32)`` -> float32, standardised per channel."""
    mean = torch.tensor(MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor,
              pad: int = 4) -> torch.Tensor:
    """Each image of ``x`` ``(n, C, H, W)`` cropped at offset ``(dy, dx)`` (each ``(n,)`` in
    ``0 .. 2 * pad``) from its zero-padded copy, mirrored where ``flip`` ``(n,)`` is true."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (n, H)
    cols = torch.arange(w, device=x.device).expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]  # (n, W)
    batch, channel = torch.arange(n, device=x.device), torch.arange(c, device=x.device)
    return padded[batch[:, None, None, None], channel[None, :, None, None], rows[:, None, :, None],
                  cols[:, None, None, :]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR"),
                        help="folder holding cifar-10-batches-py/ (default: $CIFAR10_DIR)")
    parser.add_argument("--arch", choices=["resnet18", "resnet10"], default="resnet18")
    parser.add_argument("--imagenet-stem", action="store_true",
                        help="torchvision's 7x7/2 stem and max-pool")
    parser.add_argument("--val-size", type=int, default=5000,
                        help="training images held out for validation")
    parser.add_argument("--train-subset", type=int, default=0,
                        help="train on the first N images only (0: all)")
    parser.add_argument("--test-subset", type=int, default=0,
                        help="score the first N test images only (0: all)")
    args = parser.parse_args()
    if not args.data_dir:
        raise FileNotFoundError("no CIFAR-10 folder given: pass --data-dir DIR or set CIFAR10_DIR "
                                f"to a folder holding {LAYOUT}")
    with trial.init() as t:
        cfg = t.config
        data = {k: v.to(t.device) for k, v in load(args.data_dir, args.val_size, args.train_subset,
                                                   args.test_subset).items()}
        n_train = len(data["train_y"])
        model = build(args.arch, args.imagenet_stem).to(t.device)
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg.get("momentum", 0.9),
                              nesterov=True, weight_decay=cfg["weight_decay"])
        state = t.load()  # None for a fresh trial
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        ddp = t.wrap(model)  # DDP when W > 1
        steps_per_epoch = n_train // t.global_batch
        total_steps, warmup_steps = t.max_epochs * steps_per_epoch, steps_per_epoch
        amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=t.device.type == "cuda")

        def lr_at(step: int) -> float:  # step: optimizer steps done before this one
            warm = min(1.0, (step + 1) / warmup_steps)
            return cfg["lr"] * warm * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))

        def scorer(x: torch.Tensor, y: torch.Tensor):
            def score(idx: torch.Tensor) -> torch.Tensor:  # sums over the samples idx: loss, correct
                idx = idx.to(t.device)
                with amp:
                    logits = model(normalize(x[idx])).float()
                loss = F.cross_entropy(logits, y[idx], reduction="sum")
                return torch.stack([loss, (logits.argmax(1) == y[idx]).sum()])
            return score

        def checkpoint() -> dict:
            return {"model": model.state_dict(), "optimizer": opt.state_dict()}

        for epoch in t.epochs(checkpoint=checkpoint):
            # One crop offset and flip per training image for this epoch, the same at every W.
            g = torch.Generator().manual_seed(t.seed * 1_000_003 + epoch)
            shifts = torch.randint(0, 9, (n_train, 2), generator=g).to(t.device)
            flips = (torch.rand(n_train, generator=g) < 0.5).to(t.device)
            model.train()
            loss_sum = torch.zeros((), device=t.device)
            step = (epoch - 1) * steps_per_epoch
            steps = 0
            for batch in t.train_batches(n_train, epoch):  # one optimizer step per global batch
                for group in opt.param_groups:
                    group["lr"] = lr_at(step + steps)
                opt.zero_grad(set_to_none=True)
                for idx in t.accumulate(ddp, batch):  # this rank's micro-batches
                    idx = idx.to(t.device)
                    x = normalize(crop_flip(data["train_x"][idx], shifts[idx, 0], shifts[idx, 1], flips[idx]))
                    with amp:
                        logits = ddp(x)
                    loss = F.cross_entropy(logits.float(), data["train_y"][idx],
                                           label_smoothing=cfg.get("label_smoothing", 0.0)) / t.accum_steps
                    loss.backward()
                    loss_sum += loss.detach()
                opt.step()
                steps += 1
            model.eval()
            val_loss, val_accuracy = t.evaluate_sharded(len(data["val_y"]),
                                                        scorer(data["val_x"], data["val_y"]))
            metrics = {"val_accuracy": val_accuracy, "val_loss": val_loss,
                       "train_loss": t.all_reduce_sum(loss_sum).item() / t.world_size / max(steps, 1)}
            if epoch == t.max_epochs:  # the schedule's end: the held-out test set, once
                _, metrics["test_accuracy"] = t.evaluate_sharded(len(data["test_y"]),
                                                                 scorer(data["test_x"], data["test_y"]))
            t.report(epoch, **metrics)


if __name__ == "__main__":
    main()
