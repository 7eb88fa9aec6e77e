"""An MLP on scikit-learn's breast-cancer data (or wine), tuned by seer-torch: a user's own
torchrun script on the public trial API, :mod:`seer_torch.trial`.

    seer tune examples/tabular_mlp/experiment.toml            # ranked by val_accuracy, maximized
    seer tune examples/tabular_mlp/experiment_min_loss.toml   # ranked by val_loss, minimized

Hyperparameters (the trial's ``config``): ``lr``, AdamW's step size per optimizer step on the
loss averaged over the global batch (so it does not change with the world size); ``weight_decay``,
AdamW's decoupled decay per step, as a fraction of ``lr``; ``width``, hidden units per layer;
``depth``, hidden layers. The data ship with scikit-learn (nothing is downloaded); 20% of them,
drawn with the trial's seed, are held out for validation; features are standardised with the
training part's mean and standard deviation.

Each epoch reports ``val_accuracy`` (the fraction of validation samples classified right),
``val_loss`` (the mean cross-entropy over the validation samples, in nats) and ``train_loss``
(the mean over the epoch's optimizer steps); both validation means count every sample exactly
once at any world size (:meth:`~seer_torch.trial.Trial.evaluate_sharded`). The experiment's
``metric`` names the one the tuner ranks by.
"""

from __future__ import annotations

import argparse

import torch
from sklearn.datasets import load_breast_cancer, load_wine
from torch import nn

import seer_torch.trial as trial

DATASETS = {"breast_cancer": load_breast_cancer, "wine": load_wine}


def load(name: str, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standardised features ``(N, F)`` float32 and labels ``(N,)`` int64: train, then validation."""
    data = DATASETS[name]()
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    val, train = order[: len(y) // 5], order[len(y) // 5:]
    x = (x - x[train].mean(0)) / x[train].std(0).clamp_min(1e-6)
    return x[train], y[train], x[val], y[val]


def build(features: int, classes: int, width: int, depth: int) -> nn.Module:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(features, width), nn.ReLU()]
        features = width
    return nn.Sequential(*layers, nn.Linear(features, classes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="breast_cancer")
    args = parser.parse_args()
    with trial.init() as t:
        cfg = t.config
        x, y, x_val, y_val = (v.to(t.device) for v in load(args.dataset, t.seed))
        model = build(x.shape[1], int(y.max()) + 1, int(cfg["width"]), int(cfg["depth"])).to(t.device)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        state = t.load()  # None for a fresh trial
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
        ddp = t.wrap(model)  # DDP when W > 1

        def score(idx: torch.Tensor) -> torch.Tensor:  # sums over the samples idx: loss, correct
            logits = model(x_val[idx])
            loss = nn.functional.cross_entropy(logits, y_val[idx], reduction="sum")
            return torch.stack([loss, (logits.argmax(1) == y_val[idx]).sum()])

        def checkpoint() -> dict:
            return {"model": model.state_dict(), "optimizer": opt.state_dict()}

        for epoch in t.epochs(checkpoint=checkpoint):
            model.train()
            loss_sum, steps = torch.zeros((), device=t.device), 0
            for batch in t.train_batches(len(y), epoch):  # one optimizer step per global batch
                opt.zero_grad()
                for idx in t.accumulate(ddp, batch):  # this rank's micro-batches
                    loss = nn.functional.cross_entropy(ddp(x[idx]), y[idx]) / t.accum_steps
                    loss.backward()
                    loss_sum += loss.detach()
                opt.step()
                steps += 1
            model.eval()
            val_loss, val_accuracy = t.evaluate_sharded(len(y_val), score)
            train_loss = t.all_reduce_sum(loss_sum).item() / t.world_size / steps
            t.report(epoch, val_accuracy=val_accuracy, val_loss=val_loss, train_loss=train_loss)


if __name__ == "__main__":
    main()
