"""The model registry: ``build_model(name, num_classes=..., input_shape=..., **hparams)``.

Installed as ``seer_torch.models`` (the folder sits at the top of the repository). Each model
names its own hyperparameters (:func:`model_hparam_names`) so that a caller can split a
configuration into model hyperparameters and training hyperparameters. Unknown names, unknown
hyperparameters and out-of-range values raise :class:`seer_torch.errors.ConfigError` naming the
field, the value and what is allowed.

Besides the built-in models below, ``name`` may be a **plug-in**'s import path
``"package.module:build"`` (:mod:`seer_torch.plugins`); the contract of ``build`` is in
:func:`build_model`. Every function here accepts either kind of name.

| model              | input               | hyperparameters (default)                                 |
|--------------------|---------------------|-----------------------------------------------------------|
| ``digits_cnn``     | ``(N, 1, 8, 8)``    | ``width`` channels (32), ``dropout`` probability (0.0)    |
| ``digits_mlp``     | ``(N, 1, 8, 8)``    | ``width`` hidden units (64), ``dropout`` (0.0); no BatchNorm |
| ``resnet18_cifar`` | ``(N, 3, 32, 32)``  | ``width`` base channels (64), ``dropout`` probability (0.0) |
"""

from __future__ import annotations

import importlib
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from seer_torch.errors import ConfigError
from seer_torch.models.flop_counts import COUNTED_FLOPS
from seer_torch.plugins import MODEL_CONTRACT, REQUIRED, ModelBuilder, is_import_path, model_builder

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
        raise ConfigError("model.name", name, f"one of {', '.join(MODEL_NAMES)}, or a plug-in's import path "
                                              "'package.module:build'")
    return _REGISTRY[name]


def model_hparam_names(name: str) -> frozenset[str]:
    """The hyperparameter names model ``name`` accepts (for example ``{"width", "dropout"}``);
    a plug-in's are its ``build``'s keyword parameters other than ``num_classes`` and
    ``input_shape`` (imports its module).

    Raises:
        ConfigError: ``name`` is neither in :data:`MODEL_NAMES` nor a plug-in that resolves.
    """
    if is_import_path(name):
        return frozenset(model_builder(name).hparams)
    return frozenset(_spec(name).defaults)


def model_cost_hparam_names(name: str) -> frozenset[str]:
    """The hyperparameters of model ``name`` that change its FLOPs per sample (``width``;
    ``dropout`` does not), so that a cost is counted once per distinct value of these. For a
    plug-in, all of its hyperparameters (which of them change its cost is not known).

    Raises:
        ConfigError: as :func:`model_hparam_names`.
    """
    if is_import_path(name):
        return frozenset(model_builder(name).hparams)
    return _spec(name).cost_hparams


def model_hparam_defaults(name: str) -> dict[str, object]:
    """The default value of each hyperparameter of model ``name`` (a plug-in's: those its
    ``build`` declares with a default)."""
    if is_import_path(name):
        return {k: v for k, v in model_builder(name).hparams.items() if v is not REQUIRED}
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

    A plug-in's values are not checked (its ``build`` is the judge, when the model is built);
    every hyperparameter it declares without a default must be given.

    Raises:
        ConfigError: unknown ``name``, unknown hyperparameter, a value out of range, or a
            plug-in's required hyperparameter missing (the field is the hyperparameter's name).
    """
    if is_import_path(name):
        return _plugin_hparams(model_builder(name), hparams)
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


def _plugin_hparams(builder: ModelBuilder, hparams: Mapping[str, object]) -> dict[str, object]:
    """A plug-in's hyperparameters: the given ones with its defaults for the rest."""
    unknown = sorted(set(hparams) - set(builder.hparams))
    if unknown:
        raise ConfigError(
            unknown[0], hparams[unknown[0]],
            f"hyperparameters of model {builder.name!r} (the keyword parameters of its build): "
            f"{', '.join(sorted(builder.hparams)) or 'none'}",
        )
    missing = sorted(k for k, v in builder.hparams.items() if v is REQUIRED and k not in hparams)
    if missing:
        raise ConfigError(missing[0], None, f"a value: {builder.name!r} declares {missing[0]!r} without a "
                                            "default, so the search space must give it")
    values = {k: v for k, v in builder.hparams.items() if v is not REQUIRED}
    values.update(hparams)
    return values


def _image_shape(name: str, in_channels: object, image_size: object,
                 input_shape: Sequence[int] | None) -> tuple[object, object]:
    """``(in_channels, image_size)`` of a built-in model's input, given directly or as
    ``input_shape = (channels, size, size)``."""
    if input_shape is None:
        return in_channels, image_size
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError("input_shape", shape, f"square images (channels, size, size) for model {name!r}")
    return shape[0], shape[1]


def _sample_shape(in_channels: object, image_size: object,
                  input_shape: Sequence[int] | None) -> tuple[int, ...]:
    """One sample's shape for a plug-in: ``input_shape``, or ``(in_channels, image_size,
    image_size)``."""
    if input_shape is not None:
        shape = tuple(input_shape)
    elif in_channels is not None and image_size is not None:
        shape = (in_channels, image_size, image_size)
    else:
        raise ConfigError("input_shape", None, "one sample's shape, such as (30,) or (3, 32, 32)")
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape):
        raise ConfigError("input_shape", shape, "one sample's shape: a non-empty tuple of integers >= 1")
    return shape


def build_model(name: str, *, num_classes: int, in_channels: int | None = None, image_size: int | None = None,
                input_shape: Sequence[int] | None = None, **hparams: object) -> nn.Module:
    """Build model ``name`` for inputs of one sample's shape ``input_shape`` (or, the same for
    images, ``(in_channels, image_size, image_size)``) and ``num_classes`` classes.

    Args:
        name: one of :data:`MODEL_NAMES`, or a plug-in's import path ``"package.module:build"``.
        num_classes: number of output logits (>= 2).
        in_channels: channels of the input images (>= 1).
        image_size: height = width of the input images, in pixels.
        input_shape: one sample's shape (:attr:`seer_torch.data.Splits.input_shape`), instead of
            ``in_channels`` and ``image_size``; the built-in models take square images only.
        **hparams: the model's hyperparameters (:func:`model_hparam_names`); missing ones take
            their defaults.

    Returns:
        A freshly initialised :class:`torch.nn.Module` mapping a batch ``(N, *input_shape)``
        (float32 images ``(N, C, H, W)`` for the built-ins) to ``(N, num_classes)`` logits.
        Initialisation draws from torch's global RNG: seed it first for reproducible weights.

    **A plug-in's contract** (``[model] name = "package.module:build"``): ``build`` is called
    once per launch on every rank, after ``torch.manual_seed(seed)``, with keyword arguments
    only:

    - its **hyperparameters**: every key of the trial's configuration other than the built-in
      loop's training hyperparameters (``lr``, ``weight_decay``, ``momentum``,
      ``global_batch``), under the search space's names (``[search_space] width`` arrives as
      ``width=...``), each a keyword parameter of ``build``; one it declares with a default may
      be left out of the search space; a search-space key it does not declare is refused by
      ``seer tune`` and ``seer plan`` before anything runs; no ``**kwargs`` (ConfigError at
      load: seer-torch reads the signature to tell the model's keys from typos);
    - ``num_classes`` (int, the dataset's) and ``input_shape`` (a tuple of ints, one sample's
      shape, such as ``(1, 8, 8)`` for digits), each only when ``build`` declares it.

    It returns a :class:`torch.nn.Module` whose ``forward`` maps the batch ``(N,
    *input_shape)`` (the dataset's inputs: float32 for floating-point data) to logits ``(N,
    num_classes)``; the loop trains it with cross-entropy and SGD, and evaluates accuracy by
    ``argmax``. ``build`` may be a class (an ``nn.Module`` subclass): its ``__init__``'s
    parameters are read the same way. The model must not depend on the world size (the loop
    wraps it in DDP; BatchNorm statistics are per rank). Checked when first used (in the worker,
    where the trial fails with the message; in the tuner when it counts FLOPs): a return value
    that is not an ``nn.Module``, and a first forward whose output is not ``(N, num_classes)``
    raise ConfigError naming ``model.name``.

    Raises:
        ConfigError: unknown ``name``, unknown hyperparameter, or a value out of range; the
            field is ``model.name``, the hyperparameter's name, or the shape argument's name.
    """
    if is_import_path(name):
        return _build_plugin(name, num_classes, _sample_shape(in_channels, image_size, input_shape), hparams)
    in_channels, image_size = _image_shape(name, in_channels, image_size, input_shape)
    spec, checked = _checked(name, num_classes, in_channels, image_size, hparams)
    build = importlib.import_module(f"{__name__}.{spec.module}").build
    return build(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **checked)


def _build_plugin(name: str, num_classes: object, shape: tuple[int, ...],
                  hparams: Mapping[str, object]) -> nn.Module:
    """Call a plug-in's ``build`` as :func:`build_model` states, and check what it returns."""
    from torch import nn

    builder = model_builder(name)
    kwargs = _plugin_hparams(builder, hparams)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError("num_classes", num_classes, "an integer >= 2")
    given = {"num_classes": num_classes, "input_shape": shape}
    kwargs.update({k: v for k, v in given.items() if k in builder.shape_args})
    model = builder.build(**kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError("model.name", name, f"{MODEL_CONTRACT} (it returned a {type(model).__name__})")
    handle = None

    def check_output(module: nn.Module, args: tuple, output: object) -> None:
        import torch

        batch = args[0].shape[0] if args and isinstance(args[0], torch.Tensor) and args[0].dim() else None
        expected = (batch, num_classes)
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        if got != expected:
            raise ConfigError("model.name", name,
                              f"a model whose forward maps a batch (N, *input_shape) = {(batch, *shape)} "
                              f"to logits (N, num_classes) = {expected} (its output: {got})")
        handle.remove()  # checked once: the first forward

    handle = model.register_forward_hook(check_output)
    return model


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


def flops_per_sample(name: str, *, num_classes: int, in_channels: int | None = None,
                     image_size: int | None = None, input_shape: Sequence[int] | None = None,
                     input_dtype: str = "float32", **hparams: object) -> float:
    """Floating-point operations of one training sample (forward and backward pass) of model
    ``name``, counted by :class:`torch.utils.flop_counter.FlopCounterMode` on the ``meta``
    device (nothing is allocated or computed; convolutions and matrix products are counted,
    element-wise operations are not). Arguments as for :func:`build_model`; ``input_dtype``
    (a torch dtype's name) is the inputs' dtype, for a plug-in fed integers (token ids). The
    counts of the shipped experiments' configurations are read from
    :data:`~seer_torch.models.flop_counts.COUNTED_FLOPS` without importing torch; any other,
    and every plug-in's, is counted (:func:`count_flops_per_sample`, which imports torch).

    The profiler uses it to tell configurations of one search space apart by cost (a width of
    96 costs about twice the epoch time of a width of 64): see
    :meth:`seer_torch.scaling.profile.Profile.epoch_time_for`.

    Returns:
        FLOPs per sample; NaN for a plug-in whose cost cannot be counted (see
        :func:`count_flops_per_sample`).

    Raises:
        ConfigError: as :func:`build_model`.
    """
    if is_import_path(name):
        return count_flops_per_sample(name, num_classes=num_classes, in_channels=in_channels,
                                      image_size=image_size, input_shape=input_shape,
                                      input_dtype=input_dtype, **hparams)
    in_channels, image_size = _image_shape(name, in_channels, image_size, input_shape)
    spec, checked = _checked(name, num_classes, in_channels, image_size, hparams)
    key = (name, num_classes, in_channels, image_size, *(checked[k] for k in sorted(spec.cost_hparams)))
    counted = COUNTED_FLOPS.get(key)
    if counted is not None:
        return counted
    return count_flops_per_sample(name, num_classes=num_classes, in_channels=in_channels,
                                  image_size=image_size, **hparams)


def count_flops_per_sample(name: str, *, num_classes: int, in_channels: int | None = None,
                           image_size: int | None = None, input_shape: Sequence[int] | None = None,
                           input_dtype: str = "float32", **hparams: object) -> float:
    """:func:`flops_per_sample` counted now with ``FlopCounterMode``, never read from
    :data:`~seer_torch.models.flop_counts.COUNTED_FLOPS` (which holds this function's values).
    Imports torch; the first count in a process takes seconds.

    The model is built and run forward and backward on a batch of 2 samples on the ``meta``
    device. A plug-in that cannot run there (an operation without a meta kernel, a
    data-dependent branch, weights loaded from a file) is counted on the CPU instead, on a
    batch of zeros; when that fails too its FLOPs are unknown: NaN. Then ``seer tune`` measures
    no cost probe and plans every configuration at the profiled one's epoch time
    (:meth:`~seer_torch.scaling.profile.Profile.epoch_time_for` takes NaN as unknown).

    Raises:
        ConfigError: as :func:`build_model` (unknown name or hyperparameter, a ``build`` that
            returns no ``nn.Module`` or whose output is not ``(N, num_classes)`` logits).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    batch = 2  # BatchNorm needs more than one value per channel in training mode
    if is_import_path(name):
        shape = _sample_shape(in_channels, image_size, input_shape)
    else:
        channels, size = _image_shape(name, in_channels, image_size, input_shape)
        shape = (channels, size, size)
    dtype = getattr(torch, input_dtype, None)
    if not isinstance(dtype, torch.dtype):
        raise ConfigError("input_dtype", input_dtype, "the name of a torch dtype, such as 'float32'")

    def count(device: str) -> float:
        with torch.device(device):
            model = build_model(name, num_classes=num_classes, input_shape=shape, **hparams)
            x = torch.zeros(batch, *shape, dtype=dtype)
        counter = FlopCounterMode(display=False)
        with counter:
            model(x).sum().backward()
        return counter.get_total_flops() / batch

    if not is_import_path(name):
        return count("meta")
    try:
        return count("meta")
    except ConfigError:
        raise
    except Exception:  # the user's model cannot run on the meta device: count it on real zeros
        pass
    try:
        return count("cpu")
    except ConfigError:
        raise
    except Exception:
        return math.nan


__all__ = [
    "MODEL_NAMES", "build_model", "count_flops_per_sample", "flops_per_sample", "model_cost_hparam_names",
    "model_hparam_defaults", "model_hparam_names", "validate_model_hparams",
]
