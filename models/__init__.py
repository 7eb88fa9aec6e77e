"""The model registry: ``build_model(name, num_classes=..., in_channels=..., image_size=..., **hparams)``.

Installed as ``seer_torch.models`` (the folder sits at the top of the repository). Each model
names its own hyperparameters (:func:`model_hparam_names`) so that a caller can split a
configuration into model hyperparameters and training hyperparameters. Unknown names, unknown
hyperparameters and out-of-range values raise :class:`seer_torch.errors.ConfigError` naming the
field, the value and what is allowed.

| model              | input               | hyperparameters (default)                                 |
|--------------------|---------------------|-----------------------------------------------------------|
| ``digits_cnn``     | ``(N, 1, 8, 8)``    | ``width`` channels (32), ``dropout`` probability (0.0)    |
| ``digits_mlp``     | ``(N, 1, 8, 8)``    | ``width`` hidden units (64), ``dropout`` (0.0); no BatchNorm |
| ``resnet18_cifar`` | ``(N, 3, 32, 32)``  | ``width`` base channels (64), ``dropout`` probability (0.0) |
"""

from __future__ import annotations

import importlib
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from seer_torch.errors import ConfigError
from seer_torch.models.flop_counts import COUNTED_FLOPS

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class _ModelSpec:
    module: str  # the module of this package whose build() makes the model (it imports torch)
    defaults: MappingProxyType  # every hyperparameter and its default
    min_image_size: int
    cost_hparams: frozenset[str]  # the hyperparameters that change the model's FLOPs


# The registry imports no torch: the tuner checks names and hyperparameters, and `seer plan`
# plans, without it; a model's module is imported when the model is built.
# Hyperparameters: ``width`` (int >= 1): digits_cnn's channels of the first two convolutions
# (the last one uses 2 width), digits_mlp's hidden units, resnet18_cifar's channels of the stem
# and first stage; ``dropout`` (float in [0, 1)): probability of zeroing a feature before the
# classifier (digits_mlp: a hidden unit).
_REGISTRY: dict[str, _ModelSpec] = {
    "digits_cnn": _ModelSpec("digits_cnn", MappingProxyType({"width": 32, "dropout": 0.0}), 2,
                             frozenset({"width"})),
    "digits_mlp": _ModelSpec("digits_mlp", MappingProxyType({"width": 64, "dropout": 0.0}), 1,
                             frozenset({"width"})),
    "resnet18_cifar": _ModelSpec("resnet_cifar", MappingProxyType({"width": 64, "dropout": 0.0}), 8,
                                 frozenset({"width"})),
}

#: Names :func:`build_model` accepts, sorted.
MODEL_NAMES: tuple[str, ...] = tuple(sorted(_REGISTRY))


def _spec(name: object) -> _ModelSpec:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ConfigError("model.name", name, f"one of {', '.join(MODEL_NAMES)}")
    return _REGISTRY[name]


def model_hparam_names(name: str) -> frozenset[str]:
    """The hyperparameter names model ``name`` accepts (for example ``{"width", "dropout"}``).

    Raises:
        ConfigError: ``name`` is not in :data:`MODEL_NAMES`.
    """
    return frozenset(_spec(name).defaults)


def model_cost_hparam_names(name: str) -> frozenset[str]:
    """The hyperparameters of model ``name`` that change its FLOPs per sample (``width``;
    ``dropout`` does not), so that a cost is counted once per distinct value of these.

    Raises:
        ConfigError: ``name`` is not in :data:`MODEL_NAMES`.
    """
    return _spec(name).cost_hparams


def model_hparam_defaults(name: str) -> dict[str, object]:
    """The default value of each hyperparameter of model ``name``."""
    return dict(_spec(name).defaults)


def _positive_int(field: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(field, value, "an integer >= 1")
    if isinstance(value, numbers.Integral):
        result = int(value)
    elif float(value).is_integer():  # 32.0 from a JSON or TOML round trip
        result = int(value)
    else:
        raise ConfigError(field, value, "an integer >= 1")
    if result < 1:
        raise ConfigError(field, value, "an integer >= 1")
    return result


def _probability(field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= float(value) < 1.0:
        raise ConfigError(field, value, "a float in [0, 1)")
    return float(value)


_VALIDATORS: dict[str, Callable[[str, object], object]] = {"width": _positive_int, "dropout": _probability}


def validate_model_hparams(name: str, hparams: Mapping[str, object]) -> dict[str, object]:
    """Every hyperparameter of model ``name``, checked, with defaults for the missing ones.

    Raises:
        ConfigError: unknown ``name``, unknown hyperparameter, or a value out of range (the
            field is the hyperparameter's name).
    """
    spec = _spec(name)
    unknown = sorted(set(hparams) - set(spec.defaults))
    if unknown:
        raise ConfigError(
            unknown[0], hparams[unknown[0]],
            f"hyperparameters of model {name!r}: {', '.join(sorted(spec.defaults))}",
        )
    values = dict(spec.defaults)
    values.update(hparams)
    return {key: _VALIDATORS[key](key, value) for key, value in values.items()}


def build_model(name: str, *, num_classes: int, in_channels: int, image_size: int,
                **hparams: object) -> nn.Module:
    """Build model ``name`` for images ``(N, in_channels, image_size, image_size)`` and
    ``num_classes`` classes.

    Args:
        name: one of :data:`MODEL_NAMES`.
        num_classes: number of output logits (>= 2).
        in_channels: channels of the input images (>= 1).
        image_size: height = width of the input images, in pixels.
        **hparams: the model's hyperparameters (:func:`model_hparam_names`); missing ones take
            their defaults.

    Returns:
        A freshly initialised :class:`torch.nn.Module` mapping ``(N, C, H, W)`` float32 images to
        ``(N, num_classes)`` logits. Initialisation draws from torch's global RNG: seed it first
        for reproducible weights.

    Raises:
        ConfigError: unknown ``name``, unknown hyperparameter, or a value out of range; the
            field is ``model.name``, the hyperparameter's name, or the shape argument's name.
    """
    spec, checked = _checked(name, num_classes, in_channels, image_size, hparams)
    build = importlib.import_module(f"{__name__}.{spec.module}").build
    return build(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **checked)


def _checked(name: str, num_classes: object, in_channels: object, image_size: object,
             hparams: Mapping[str, object]) -> tuple[_ModelSpec, dict[str, object]]:
    """Model ``name``'s spec and its checked hyperparameters, after the shape arguments are
    checked (the errors of :func:`build_model`)."""
    spec = _spec(name)
    checked = validate_model_hparams(name, hparams)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError("num_classes", num_classes, "an integer >= 2")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ConfigError("in_channels", in_channels, "an integer >= 1")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < spec.min_image_size:
        raise ConfigError("image_size", image_size, f"an integer >= {spec.min_image_size} for model {name!r}")
    return spec, checked


def flops_per_sample(name: str, *, num_classes: int, in_channels: int, image_size: int,
                     **hparams: object) -> float:
    """Floating-point operations of one training sample (forward and backward pass) of model
    ``name``, counted by :class:`torch.utils.flop_counter.FlopCounterMode` on the ``meta``
    device (nothing is allocated or computed; convolutions and matrix products are counted,
    element-wise operations are not). Arguments as for :func:`build_model`. The counts of the
    shipped experiments' configurations are read from
    :data:`~seer_torch.models.flop_counts.COUNTED_FLOPS` without importing torch; any other is
    counted (:func:`count_flops_per_sample`, which imports torch).

    The profiler uses it to tell configurations of one search space apart by cost (a width of
    96 costs about twice the epoch time of a width of 64): see
    :meth:`seer_torch.scaling.profile.Profile.epoch_time_for`.

    Raises:
        ConfigError: as :func:`build_model`.
    """
    spec, checked = _checked(name, num_classes, in_channels, image_size, hparams)
    key = (name, num_classes, in_channels, image_size, *(checked[k] for k in sorted(spec.cost_hparams)))
    counted = COUNTED_FLOPS.get(key)
    if counted is not None:
        return counted
    return count_flops_per_sample(name, num_classes=num_classes, in_channels=in_channels,
                                  image_size=image_size, **hparams)


def count_flops_per_sample(name: str, *, num_classes: int, in_channels: int, image_size: int,
                           **hparams: object) -> float:
    """:func:`flops_per_sample` counted now with ``FlopCounterMode``, never read from
    :data:`~seer_torch.models.flop_counts.COUNTED_FLOPS` (which holds this function's values).
    Imports torch; the first count in a process takes seconds.

    Raises:
        ConfigError: as :func:`build_model`.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    batch = 2  # BatchNorm needs more than one value per channel in training mode
    with torch.device("meta"):
        model = build_model(name, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                            **hparams)
        x = torch.empty(batch, in_channels, image_size, image_size)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x).sum().backward()
    return counter.get_total_flops() / batch


__all__ = [
    "MODEL_NAMES", "build_model", "count_flops_per_sample", "flops_per_sample", "model_cost_hparam_names",
    "model_hparam_defaults", "model_hparam_names", "validate_model_hparams",
]
