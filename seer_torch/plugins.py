"""Plug-in models and datasets, named by import path: ``"package.module:function"``.

The experiment file may name the built-in worker's model and dataset by import path instead of
a built-in name, as setuptools entry points do (``[model] name = "mypkg.nets:build"``,
``[data] dataset = "mypkg.data:load"``). This module resolves such a name to its callable and
reads the callable's signature; the contracts themselves (what ``build`` and ``load`` receive
and return) are stated in :mod:`seer_torch.models` and :mod:`seer_torch.data`, which call them,
and in docs/experiment-file.md.

Where the module is looked for: the experiment's ``python_path`` folders (by default the
experiment file's folder when it names a plug-in; :func:`add_to_import_path` puts them first
on ``sys.path`` of the tuner, and the local backend first on ``PYTHONPATH`` of every job),
then the usual import path (``PYTHONPATH``, the installed packages; torchrun's workers also
have the working directory). It must be importable in the torchrun workers, not only in the
tuner.

Errors are :class:`~seer_torch.errors.ConfigError` naming the field (``model.name`` or
``data.dataset``), the value and what is allowed: a malformed path, a module that does not
import (and why), a missing attribute, something that is not callable, a signature that hides
its parameters (``**kwargs``) or requires ones seer-torch does not pass. Imports no torch
(importing the user's module may).
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from seer_torch.config_values import did_you_mean
from seer_torch.errors import ConfigError

#: ``package.module:attribute``: dotted identifiers on each side of one colon.
_IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")

#: What a model's ``build`` may declare besides its hyperparameters: seer-torch passes each one
#: it declares (the dataset's class count and one sample's shape). Never hyperparameter names.
MODEL_SHAPE_ARGS = ("num_classes", "input_shape")
#: What a dataset's ``load`` may declare: seer-torch passes ``data_dir`` when it does.
DATASET_ARGS = ("data_dir",)

#: The default of a parameter declared without one (a required hyperparameter).
REQUIRED = inspect.Parameter.empty


def is_import_path(name: object) -> bool:
    """Whether ``name`` names a plug-in (a string with a colon) rather than a built-in."""
    return isinstance(name, str) and ":" in name


def add_to_import_path(folders: Iterable[str]) -> None:
    """Put ``folders`` first on ``sys.path``, in order, each once (what ``PYTHONPATH`` does for
    a job): a plug-in module in one of them imports in this process as in the jobs."""
    for folder in reversed(list(folders)):
        if folder not in sys.path:
            sys.path.insert(0, folder)


def resolve(field: str, name: str, what: str) -> Callable[..., Any]:
    """The callable ``name`` (``"package.module:attribute"``, the attribute possibly dotted)
    names, imported now.

    Args:
        field: the experiment field, for errors (``"model.name"``).
        name: the import path.
        what: what the callable must be, in words, for errors.

    Raises:
        ConfigError: ``name`` is not of that form, its module does not import (the exception
            is quoted), it lacks the attribute, or the attribute is not callable.
    """
    if not isinstance(name, str) or not _IMPORT_PATH.fullmatch(name):
        raise ConfigError(field, name, f"an import path 'package.module:function' of {what}")
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and (module_name == error.name or module_name.startswith(error.name + ".")):
            raise ConfigError(field, name, (
                f"an importable module: no module named {error.name!r} on the import path (the "
                "experiment's python_path, by default its file's folder; PYTHONPATH; the installed "
                f"packages); {what}")) from None
        raise ConfigError(field, name, f"a module that imports: importing {module_name!r} raised "
                                       f"{type(error).__name__}: {error}") from None
    except Exception as error:  # the user's module ran and failed: say how
        raise ConfigError(field, name, f"a module that imports: importing {module_name!r} raised "
                                       f"{type(error).__name__}: {error}") from None
    target: Any = module
    where = module_name
    for part in attribute.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(target) if not n.startswith("_")]
            raise ConfigError(field, name, f"an attribute of {where!r}: it has no {part!r}"
                                           + did_you_mean(part, names) + f"; {what}")
        target = getattr(target, part)
        where = f"{where}.{part}"
    if not callable(target):
        raise ConfigError(field, name, f"a callable: {attribute!r} is a {type(target).__name__}; {what}")
    return target


def _parameters(field: str, name: str, fn: Callable[..., Any], what: str) -> dict[str, Any]:
    """``fn``'s parameters that can be passed by keyword, each with its default (or
    :data:`REQUIRED`).

    Raises:
        ConfigError: no readable signature, ``**kwargs``, or a required positional-only or
            ``*args``-only parameter.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as error:
        raise ConfigError(field, name,
                          f"a Python function with a readable signature ({error}); {what}") from None
    params: dict[str, Any] = {}
    for p in signature.parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            raise ConfigError(field, name, (
                f"a function that names each parameter it takes (its **{p.name} hides which "
                f"search-space keys are its own); {what}"))
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            if p.default is REQUIRED:
                raise ConfigError(field, name, f"a function whose parameters can be passed by keyword "
                                               f"({p.name!r} is positional-only); {what}")
            continue
        params[p.name] = p.default
    return params


@dataclass(frozen=True)
class ModelBuilder:
    """A plug-in model's ``build``, resolved, and what its signature says.

    Attributes:
        name: the import path.
        build: the callable.
        hparams: its hyperparameters (every keyword parameter but :data:`MODEL_SHAPE_ARGS`),
            each with its default or :data:`REQUIRED`.
        shape_args: which of :data:`MODEL_SHAPE_ARGS` it declares (seer-torch passes those).
    """

    name: str
    build: Callable[..., Any]
    hparams: Mapping[str, Any]
    shape_args: frozenset[str]


#: What a plug-in model must be, in words (the errors' "allowed").
MODEL_CONTRACT = ("a function build(*, num_classes, input_shape, **hyperparameters) returning a "
                  "torch.nn.Module that maps a batch (N, *input_shape) to logits (N, num_classes); "
                  "it declares each hyperparameter as a keyword parameter, and num_classes and "
                  "input_shape only if it uses them")


def model_builder(name: str, field: str = "model.name") -> ModelBuilder:
    """Resolve plug-in model ``name`` and read its hyperparameters from its signature.

    Raises:
        ConfigError: as :func:`resolve`, or a signature with ``**kwargs``.
    """
    fn = resolve(field, name, MODEL_CONTRACT)
    params = _parameters(field, name, fn, MODEL_CONTRACT)
    hparams = {k: v for k, v in params.items() if k not in MODEL_SHAPE_ARGS}
    return ModelBuilder(name, fn, MappingProxyType(hparams), frozenset(params) & frozenset(MODEL_SHAPE_ARGS))


#: What a plug-in dataset must be, in words (the errors' "allowed").
DATASET_CONTRACT = ("a function load(data_dir=None) returning a dict with train_x, train_y, val_x, "
                    "val_y, test_x, test_y (tensors or NumPy arrays: inputs (N, ...), integer labels "
                    "(N,)) and num_classes (an integer >= 2); it declares data_dir only if it uses it")


@dataclass(frozen=True)
class DatasetLoader:
    """A plug-in dataset's ``load``, resolved.

    Attributes:
        name: the import path.
        load: the callable.
        takes_data_dir: whether it declares ``data_dir`` (seer-torch passes ``[data] data_dir`` then).
    """

    name: str
    load: Callable[..., Any]
    takes_data_dir: bool


def dataset_loader(name: str, field: str = "data.dataset") -> DatasetLoader:
    """Resolve plug-in dataset ``name`` and check that it can be called with at most ``data_dir``.

    Raises:
        ConfigError: as :func:`resolve`, or a signature requiring other parameters.
    """
    fn = resolve(field, name, DATASET_CONTRACT)
    params = _parameters(field, name, fn, DATASET_CONTRACT)
    required = [k for k, v in params.items() if v is REQUIRED and k not in DATASET_ARGS]
    if required:
        raise ConfigError(field, name, f"a function seer-torch can call with data_dir alone (it requires "
                                       f"{', '.join(required)}); {DATASET_CONTRACT}")
    return DatasetLoader(name, fn, "data_dir" in params)
