"""``resnet18_cifar``: ResNet-18 in its CIFAR form (3x3 stem convolution, no max-pool).

Input ``(N, in_channels, H, W)`` float32 (CIFAR-10 gives ``(N, 3, 32, 32)``); output logits
``(N, num_classes)``. Four stages of two :class:`torchvision.models.resnet.BasicBlock` each,
with ``width, 2 width, 4 width, 8 width`` channels and strides ``1, 2, 2, 2``, then a global
average pool, dropout and a linear classifier. ``width=64`` is the standard ResNet-18
(about 11.2 M parameters).
"""

from __future__ import annotations

import torch
from torch import nn


class ResNet18Cifar(nn.Module):
    """ResNet-18, CIFAR variant; see the module docstring.

    Args:
        num_classes: number of output logits.
        in_channels: channels of the input images.
        width: channels of the stem and first stage.
        dropout: dropout probability before the linear classifier, in [0, 1).
    """

    def __init__(self, *, num_classes: int, in_channels: int, width: int, dropout: float) -> None:
        super().__init__()
        from torchvision.models.resnet import BasicBlock  # imported here: torchvision is slow to import

        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages = []
        in_planes = width
        for planes, stride in ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)):
            blocks = []
            for block_index in range(2):
                block_stride = stride if block_index == 0 else 1
                downsample = None
                if block_stride != 1 or in_planes != planes:
                    downsample = nn.Sequential(
                        nn.Conv2d(in_planes, planes, kernel_size=1, stride=block_stride, bias=False),
                        nn.BatchNorm2d(planes),
                    )
                blocks.append(BasicBlock(in_planes, planes, stride=block_stride, downsample=downsample))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(8 * width, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(N, in_channels, H, W)`` to logits ``(N, num_classes)``."""
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


def build(*, num_classes: int, in_channels: int, image_size: int, width: int, dropout: float) -> nn.Module:
    """Build a :class:`ResNet18Cifar`; ``image_size`` (pixels) must be at least 8 so the three
    stride-2 stages leave at least one pixel."""
    del image_size  # checked by the registry; the global average pool takes any size
    return ResNet18Cifar(num_classes=num_classes, in_channels=in_channels, width=width, dropout=dropout)
