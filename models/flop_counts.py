"""FLOPs per training sample, counted once and written down, so that ``seer plan`` on the
shipped experiments (and the widths their search spaces list) imports no torch.

Each value is what :func:`seer_torch.models.flops_per_sample` counts with torch's
``FlopCounterMode`` on the ``meta`` device (forward and backward pass of a batch of 2, divided
by 2); a configuration not listed here is counted. ``tests/unit/test_data_models.py``
recounts every entry, so a model or torch change that moves a count fails there.

Key: ``(model name, num_classes, in_channels, image_size, width)``; ``width`` is the only
hyperparameter of these models that changes the count
(:func:`seer_torch.models.model_cost_hparam_names`).
"""

from __future__ import annotations

#: ``(model, num_classes, in_channels, image_size, width) -> FLOPs per training sample``.
COUNTED_FLOPS: dict[tuple[str, int, int, int, int], float] = {
    # digits (10 classes, 1 x 8 x 8)
    ("digits_cnn", 10, 1, 8, 16): 1365888.0,
    ("digits_cnn", 10, 1, 8, 32): 5385984.0,
    ("digits_cnn", 10, 1, 8, 48): 12060288.0,
    ("digits_cnn", 10, 1, 8, 64): 21388800.0,
    ("digits_cnn", 10, 1, 8, 96): 48008448.0,
    ("digits_cnn", 10, 1, 8, 128): 85244928.0,
    ("digits_mlp", 10, 1, 8, 32): 10112.0,
    ("digits_mlp", 10, 1, 8, 64): 20224.0,
    ("digits_mlp", 10, 1, 8, 128): 40448.0,
    # CIFAR-10 (10 classes, 3 x 32 x 32)
    ("resnet18_cifar", 10, 3, 32, 32): 834026496.0,
    ("resnet18_cifar", 10, 3, 32, 64): 3328997376.0,
}
