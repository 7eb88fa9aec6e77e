"""``digits_mlp``: a two-layer perceptron without BatchNorm, for 8x8 one-channel digit images.

Input ``(N, in_channels, H, W)`` float32; output logits ``(N, num_classes)``. Layout::

    flatten -> linear(in_channels * H * W -> width) -> ReLU -> dropout -> linear(width -> num_classes)

No layer mixes samples of a batch (no BatchNorm), so with ``dropout = 0`` a gradient step does
not depend on how the global batch is split into ranks and micro-batches: the worker contract
tests (``tests/contract``) use it to check that a resized run's parameters equal an
uninterrupted one's up to float32 reduction order. Parameters at ``width=64``: 4,810.
"""

from __future__ import annotations

import torch
from torch import nn


class DigitsMLP(nn.Module):
    """The ``digits_mlp`` network; see the module docstring."""

    def __init__(self, *, num_classes: int, in_features: int, width: int, dropout: float) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_features, width)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, C, H, W)`` to logits ``(N, num_classes)``."""
        return self.classifier(self.dropout(torch.relu(self.hidden(x.flatten(1)))))


def build(*, num_classes: int, in_channels: int, image_size: int, width: int, dropout: float) -> nn.Module:
    """Build a :class:`DigitsMLP` for images ``(in_channels, image_size, image_size)``."""
    return DigitsMLP(num_classes=num_classes, in_features=in_channels * image_size * image_size,
                     width=width, dropout=dropout)
