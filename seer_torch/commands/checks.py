"""What every launching command checks before anything is launched (:func:`check_before_launch`):
the checks only the worker's side can make, made on the tuner's side so that bad input fails
in a second, names its field, and leaves no files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seer_torch.config import Experiment, did_you_mean, sample_configurations
from seer_torch.errors import ConfigError


def check_before_launch(exp: Experiment, *, data: bool = True) -> None:
    """What only the worker's side can check, checked before anything is launched: the model
    name, the dataset folder and its files' integrity, as the loader checks it (unless ``data``
    is false: ``seer plan`` reads no data, and checks only that the folder holds the files), the
    search space's bounds (each end of a range,
    each choice) and every configuration the run may draw (names and values of
    hyperparameters, exactly as the worker validates its ``config.json``). Imports no torch.
    For a ``[trial] script`` experiment: the script still exists (:func:`check_script`); its
    model, data and hyperparameters are its own, unchecked.

    Raises:
        ConfigError: naming the experiment field (``model.name``, ``search_space.NAME.low``,
            ``search_space.NAME.high``, ``search_space.NAME``, ``trial.script``, ...).
        DatasetNotFoundError: the CIFAR-10 folder is incomplete or fails the integrity check.
    """
    if exp.trial.script is not None:
        check_script(exp)
        return
    _check_model_name(exp)
    n_train = _check_dataset(exp, data=data)
    _check_search_space_names(exp)
    # The search space's own bounds first (each end of a range, each choice, a fixed value), one
    # hyperparameter at a time, so that the message names the bound whatever the draws; then
    # every configuration the run may draw (the profile probe and later draws use them too).
    # The rules are intervals, so a range whose two ends pass holds no value the worker rejects;
    # global_batch must also divide by every planned W, which int_uniform's every integer must do.
    sampled = sample_configurations(exp, exp.search.max_configurations)
    batch_rule = _GlobalBatchRule(exp, n_train)
    for p in exp.search_space:
        _check_bounds(exp, p, sampled[0], batch_rule)
    _check_draws(exp, sampled, batch_rule)


def check_script(exp: Experiment) -> None:
    """A ``[trial] script`` experiment's check: the script is still there (it was when the
    file was read; a resumed run reads it from its ``experiment.toml`` later). Without a
    profile, ``seer tune`` and ``seer profile`` measure the script itself
    (:func:`seer_torch.executor.measure_script_profile`).

    Raises:
        ConfigError: ``trial.script`` (no such file).
    """
    script = exp.trial.script
    assert script is not None, "check_script is for [trial] script experiments"
    if not Path(script).is_file():
        raise ConfigError("trial.script", script, "an existing file (your torchrun training script)")


def _check_model_name(exp: Experiment) -> None:
    from seer_torch.models import MODEL_NAMES
    from seer_torch.plugins import is_import_path

    if exp.model.name not in MODEL_NAMES and not is_import_path(exp.model.name):  # a plug-in resolved at load
        raise ConfigError(
            "model.name", exp.model.name,
            f"one of {', '.join(sorted(MODEL_NAMES))}" + did_you_mean(exp.model.name, MODEL_NAMES),
        )


def _check_dataset(exp: Experiment, *, data: bool) -> int:
    """The CIFAR-10 folder: its integrity when ``data``, else its layout (the files are there,
    unread); and the global batch against the training split. Returns the number of training
    samples."""
    from seer_torch.data import check_cifar10_folder, check_cifar10_integrity, dataset_shape
    from seer_torch.plugins import is_import_path

    if data and exp.data.dataset == "cifar10":
        check_cifar10_integrity(exp.data.data_dir)  # the check the loader runs, before any job does
    elif exp.data.dataset == "cifar10":
        check_cifar10_folder(exp.data.data_dir)  # `seer plan`: no run it plans could start without them
    # A plug-in dataset is loaded here once (its return checked, its shape kept), whatever ``data``.
    shape = dataset_shape(exp.data.dataset, exp.data.data_dir)
    if is_import_path(exp.data.dataset) and not is_import_path(exp.model.name) and (
            len(shape.input_shape) != 3 or shape.input_shape[1] != shape.input_shape[2]):
        raise ConfigError("model.name", exp.model.name,
                          f"a model for samples of shape {shape.input_shape} from {exp.data.dataset!r}: the "
                          "built-in models take square images (C, H, H); name a plug-in model")
    n_train = shape.num_train
    if exp.training.global_batch > n_train:
        raise ConfigError(
            "training.global_batch", exp.training.global_batch,
            f"at most the {n_train} training samples of {exp.data.dataset}",
        )
    return n_train


def _check_search_space_names(exp: Experiment) -> None:
    """Every search-space name is a training hyperparameter or one of the model's."""
    from seer_torch.models import model_hparam_names
    from seer_torch.training.config import TRAINING_HPARAMS

    known = set(TRAINING_HPARAMS) | set(model_hparam_names(exp.model.name))
    for p in exp.search_space:
        if p.name not in known:
            value = (list(p.choices) if p.kind == "choice" else p.value if p.kind == "fixed"
                     else (p.low, p.high))
            raise ConfigError(
                f"search_space.{p.name}", value,
                f"training hyperparameters {', '.join(sorted(TRAINING_HPARAMS))} or hyperparameters of model "
                f"{exp.model.name!r}: {', '.join(sorted(model_hparam_names(exp.model.name)))}"
                + did_you_mean(p.name, known),
            )


class _GlobalBatchRule:
    """A global batch the run can use: a multiple of every planned world size and at most the
    training samples."""

    def __init__(self, exp: Experiment, n_train: int) -> None:
        self.n_train = n_train
        self.usable = exp.usable_world_sizes()
        self.allowed = (f"a multiple of every planned world size {list(self.usable)} and at most "
                        f"the {n_train} training samples of {exp.data.dataset}")

    def bad(self, gb: Any) -> bool:
        return gb > self.n_train or any(gb % w for w in self.usable)


def _validate_as_worker(exp: Experiment, conf: dict[str, Any]) -> None:
    """Validate ``conf`` exactly as the worker validates its ``config.json``."""
    from seer_torch.executor import trial_config
    from seer_torch.training.config import TrialConfig

    TrialConfig.from_dict(trial_config(exp, "check", conf, None))


def _bounds(p: Any) -> list[tuple[str, Any]]:
    """``(field, value)`` of each bound of search-space parameter ``p``: each choice, each end
    of a range, or the fixed value."""
    fld = f"search_space.{p.name}"
    if p.kind == "choice":
        return [(fld, c) for c in p.choices]
    if p.kind == "int_uniform":
        return [(f"{fld}.low", int(p.low)), (f"{fld}.high", int(p.high))]
    if p.kind in ("uniform", "loguniform"):
        return [(f"{fld}.low", float(p.low)), (f"{fld}.high", float(p.high))]
    return [(fld, p.value)]


def _check_bounds(exp: Experiment, p: Any, first_draw: dict[str, Any], batch_rule: _GlobalBatchRule) -> None:
    """Each bound of ``p`` in the first draw, as the worker validates it; an ``int_uniform``
    global batch must be usable at every integer of its range."""
    for bound, v in _bounds(p):
        try:
            _validate_as_worker(exp, {**first_draw, p.name: v})
        except ConfigError as e:
            if e.field == f"configuration.{p.name}":  # another hyperparameter's draw: checked below
                raise ConfigError(bound, v, e.allowed) from None
        if p.name == "global_batch" and batch_rule.bad(v):
            raise ConfigError(bound, v, batch_rule.allowed)
    if p.name == "global_batch" and p.kind == "int_uniform":
        bad = next((g for g in range(int(p.low), int(p.high) + 1) if batch_rule.bad(g)), None)
        if bad is not None:
            raise ConfigError(f"search_space.{p.name}", bad,
                              f"{batch_rule.allowed} (int_uniform draws every integer from low to high; "
                              "list the multiples with choices = [...])")


def _check_draws(exp: Experiment, sampled: list[dict[str, Any]], batch_rule: _GlobalBatchRule) -> None:
    """Every configuration the run may draw, as the worker validates it."""
    for i, conf in enumerate(sampled):
        where = f"configuration {i} drawn from the search space"
        try:
            _validate_as_worker(exp, conf)
        except ConfigError as e:
            fld = e.field.replace("configuration.", "search_space.", 1)
            raise ConfigError(fld, e.value, e.allowed + f" ({where})") from None
        gb = conf.get("global_batch")
        if gb is not None and batch_rule.bad(gb):
            raise ConfigError("search_space.global_batch", gb, f"{batch_rule.allowed} ({where})")
