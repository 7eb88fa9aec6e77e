"""A trial's ``config.json``: :class:`TrialConfig` (validated), the training hyperparameters'
names, and the default configuration ``python -m seer_torch.worker --write-default-config``
writes. The format and the hyperparameters' units are in :mod:`seer_torch.worker`'s docstring.

Imports no torch: the tuner validates every configuration it may draw with
:meth:`TrialConfig.from_dict` before it launches anything (``seer plan`` too).
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from seer_torch.errors import ConfigError
from seer_torch.models import model_hparam_names, validate_model_hparams
from seer_torch.runfiles import atomic_write_text

CONFIG_FILE = "config.json"

#: The training hyperparameters a configuration may hold; every other key is the model's.
TRAINING_HPARAMS = frozenset({"lr", "weight_decay", "momentum", "global_batch"})

DEFAULT_CONFIG: dict[str, Any] = {
    "configuration": {"lr": 0.1, "weight_decay": 5e-4, "momentum": 0.9, "width": 32, "dropout": 0.1},
    "model": "digits_cnn",
    "dataset": "digits",
    "data_dir": None,
    "global_batch": 64,
    "micro_batch_max": 64,
    "max_epochs": 15,
    "seed": 0,
}


@dataclass(frozen=True)
class TrialConfig:
    """A trial's ``config.json``, validated.

    Attributes:
        trial_id: the trial's name.
        model: model name for :func:`seer_torch.models.build_model`.
        model_hparams: the configuration's model hyperparameters.
        lr: peak learning rate (per optimizer step, on the global-batch mean loss).
        weight_decay: L2 coefficient (coupled, PyTorch SGD).
        momentum: Nesterov momentum coefficient.
        dataset, data_dir: what :func:`seer_torch.data.load_dataset` gets.
        global_batch: samples per optimizer step.
        micro_batch_max: most samples per forward pass on one rank.
        max_epochs: the learning-rate schedule's horizon for this launch, in epochs
            (:class:`~seer_torch.training.schedule.LrSchedule`); ``--until-epoch`` may not exceed it.
        seed: experiment seed (weights, data order, dropout, augmentation).
        tensorboard_dir: where rank 0 writes TensorBoard events, or ``None`` for nowhere.
        configuration: the configuration as given (stored in the checkpoint).
        test_every_epoch: evaluate the test split after every epoch, not only the launch's last.
    """

    trial_id: str
    model: str
    model_hparams: Mapping[str, Any]
    lr: float
    weight_decay: float
    momentum: float
    dataset: str
    data_dir: str | None
    global_batch: int
    micro_batch_max: int
    max_epochs: int
    seed: int
    tensorboard_dir: str | None
    configuration: Mapping[str, Any]
    test_every_epoch: bool = False

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrialConfig:
        """Validate a parsed ``config.json``; raises :class:`ConfigError` naming the field."""
        if not isinstance(raw, dict):
            raise ConfigError("config.json", type(raw).__name__, "a JSON object")
        configuration = raw.get("configuration")
        if not isinstance(configuration, dict):
            raise ConfigError("configuration", configuration, "a JSON object of hyperparameters")
        model = raw.get("model")
        hparam_names = model_hparam_names(model)  # raises ConfigError("model.name", ...)
        unknown = sorted(set(configuration) - TRAINING_HPARAMS - hparam_names)
        if unknown:
            raise ConfigError(
                f"configuration.{unknown[0]}", configuration[unknown[0]],
                f"training hyperparameters {', '.join(sorted(TRAINING_HPARAMS))} or hyperparameters of model "
                f"{model!r}: {', '.join(sorted(hparam_names))}",
            )
        given = {key: value for key, value in configuration.items() if key in hparam_names}
        try:
            validate_model_hparams(model, given)
        except ConfigError as error:
            raise ConfigError(f"configuration.{error.field}", error.value, error.allowed) from None
        model_hparams = given
        if "lr" not in configuration:
            raise ConfigError("configuration.lr", None, "a positive float (peak learning rate)")
        lr = _real("configuration.lr", configuration["lr"], low=0.0, low_open=True)
        weight_decay = _real("configuration.weight_decay", configuration.get("weight_decay", 0.0), low=0.0)
        momentum = _real("configuration.momentum", configuration.get("momentum", 0.9), low=0.0, high=1.0)
        if "global_batch" in configuration:
            global_batch = _int("configuration.global_batch", configuration["global_batch"], 1)
        else:
            global_batch = _int("global_batch", raw.get("global_batch"), 1)
        tensorboard_dir = raw.get("tensorboard_dir")
        if tensorboard_dir is not None and not isinstance(tensorboard_dir, str):
            raise ConfigError("tensorboard_dir", tensorboard_dir, "a path or null")
        data_dir = raw.get("data_dir")
        if data_dir is not None and not isinstance(data_dir, str):
            raise ConfigError("data_dir", data_dir, "a path or null")
        test_every_epoch = raw.get("test_every_epoch", False)
        if not isinstance(test_every_epoch, bool):
            raise ConfigError("test_every_epoch", test_every_epoch, "true or false")
        dataset = raw.get("dataset")
        if not isinstance(dataset, str):
            raise ConfigError("dataset", dataset, "a dataset name such as 'digits' or 'cifar10'")
        return cls(
            trial_id=str(raw.get("trial_id", "")),
            model=model,
            model_hparams=MappingProxyType(model_hparams),
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            dataset=dataset,
            data_dir=data_dir,
            global_batch=global_batch,
            micro_batch_max=_int("micro_batch_max", raw.get("micro_batch_max", global_batch), 1),
            max_epochs=_int("max_epochs", raw.get("max_epochs"), 1),
            seed=_int("seed", raw.get("seed", 0), 0),
            tensorboard_dir=tensorboard_dir,
            configuration=MappingProxyType(dict(configuration)),
            test_every_epoch=test_every_epoch,
        )

    @classmethod
    def load(cls, trial_dir: str) -> TrialConfig:
        """Read and validate ``trial_dir/config.json``."""
        path = os.path.join(trial_dir, CONFIG_FILE)
        try:
            with open(path, encoding="utf-8") as file:
                raw = json.load(file)
        except FileNotFoundError as error:
            raise ConfigError("--trial-dir", trial_dir,
                              f"a trial directory containing {CONFIG_FILE}") from error
        except json.JSONDecodeError as error:
            raise ConfigError(path, str(error), "valid JSON") from error
        return cls.from_dict(raw)


def _int(field: str, value: object, low: int) -> int:
    if (
        isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value))
        or float(value) != int(value) or int(value) < low
    ):
        raise ConfigError(field, value, f"an integer >= {low}")
    return int(value)


def _real(field: str, value: object, *, low: float, high: float | None = None,
          low_open: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(float(value))
    if ok:
        number = float(value)
        ok = (number > low if low_open else number >= low) and (high is None or number < high)
    if not ok:
        bounds = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'})"
        raise ConfigError(field, value, f"a finite float in {bounds}")
    return float(value)


def write_default_config(trial_dir: str) -> bool:
    """Write :data:`DEFAULT_CONFIG` (digits) to ``trial_dir/config.json`` unless one exists.

    Returns:
        Whether a file was written.
    """
    os.makedirs(trial_dir, exist_ok=True)
    path = os.path.join(trial_dir, CONFIG_FILE)
    if os.path.exists(path):
        return False
    config = dict(DEFAULT_CONFIG)
    config["trial_id"] = os.path.basename(os.path.abspath(trial_dir))
    config["tensorboard_dir"] = os.path.join(os.path.abspath(trial_dir), "tensorboard")
    atomic_write_text(path, json.dumps(config, indent=2) + "\n")
    return True
