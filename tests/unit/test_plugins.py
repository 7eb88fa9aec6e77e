"""Plug-in models and datasets named by import path (issue 15): ``[model] name = "mod:build"``,
``[data] dataset = "mod:load"``.

A module is written to each test's folder beside its experiment file and found through the
experiment's ``python_path`` (by default that folder): resolution and signature at load, the
errors for a path that does not import, a missing attribute, a non-callable, a ``**kwargs``
signature; the contract of ``load``'s return and ``build``'s (checked at first use); the
hyperparameters a plug-in declares, as the tuner's checks and the worker's ``config.json``
validation see them; its FLOPs; and the jobs' ``PYTHONPATH``.
"""

from __future__ import annotations

import math
import re
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from seer_torch.backends.local import LocalBackend
from seer_torch.commands.checks import check_before_launch
from seer_torch.commands.common import make_backend
from seer_torch.config import load_experiment, parse_experiment
from seer_torch.data import dataset_shape, load_dataset, num_train_samples
from seer_torch.errors import ConfigError
from seer_torch.models import (
    build_model,
    flops_per_sample,
    model_cost_hparam_names,
    model_hparam_defaults,
    model_hparam_names,
    validate_model_hparams,
)
from seer_torch.scaling import profiler
from seer_torch.training.config import TrialConfig

PLUGIN = '''
import numpy as np
import torch
from torch import nn

NOT_CALLABLE = 3


def load(data_dir=None):
    """120 / 40 / 40 samples of 6 float64 features (NumPy, as scikit-learn gives them), 3 classes."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1).astype(np.int64)
    return {"train_x": x[:120], "train_y": y[:120], "val_x": x[120:160], "val_y": y[120:160],
            "test_x": x[160:], "test_y": y[160:], "num_classes": 3}


def load_images():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 2, 5, 5, generator=g)
    y = torch.arange(30) % 4
    return {"train_x": x[:20], "train_y": y[:20], "val_x": x[20:25], "val_y": y[20:25],
            "test_x": x[25:], "test_y": y[25:], "num_classes": 4}


LAST_DATA_DIR = []


def load_dir(data_dir):
    LAST_DATA_DIR.append(data_dir)
    return load()


def load_needs(data_dir, scale):
    return load()


def load_list():
    return [1, 2]


def load_missing():
    d = load()
    del d["test_y"]
    return d


def load_bad_labels():
    d = load()
    d["val_y"] = d["val_y"] + 5
    return d


def load_bad_shape():
    d = load()
    d["test_x"] = d["test_x"][:, :4]
    return d


def load_float_labels():
    d = load()
    d["train_y"] = d["train_y"].astype(np.float32)
    return d


def build(*, num_classes, input_shape, hidden=8, dropout=0.0):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), hidden), nn.ReLU(),
                         nn.Dropout(dropout), nn.Linear(hidden, num_classes))


def build_plain(hidden):
    """No shape arguments, a required hyperparameter: a fixed 6-feature, 3-class model."""
    return nn.Linear(6, 3) if hidden else None


class Net(nn.Module):
    def __init__(self, num_classes, width=4):
        super().__init__()
        self.fc = nn.LazyLinear(num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


def build_kwargs(num_classes, **hparams):
    return nn.Linear(6, num_classes)


def build_dict(num_classes):
    return {"model": nn.Linear(6, num_classes)}


def build_wrong_output(num_classes, input_shape):
    return nn.Linear(input_shape[0], num_classes + 1)


class NoMeta(nn.Module):
    """Runs on real tensors only (tolist has no meta kernel)."""

    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(6, num_classes)

    def forward(self, x):
        x.tolist()
        return self.fc(x)


def build_no_meta(num_classes):
    return NoMeta(num_classes)


class Uncountable(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.fc = nn.Linear(6, num_classes)

    def forward(self, x):
        if float(x.abs().sum()) == 0.0:
            raise RuntimeError("refuses a batch of zeros")
        return self.fc(x)


def build_uncountable(num_classes):
    return Uncountable(num_classes)
'''

SPACE = '''
[search_space]
lr = { distribution = "loguniform", low = 0.05, high = 0.3 }
hidden = { choices = [4, 8] }
'''


@pytest.fixture
def plug(tmp_path, monkeypatch):
    """A plug-in module, importable under a name of this test's own, written to ``tmp_path``;
    ``sys.path`` and ``sys.modules`` are restored afterwards. Returns the module's name."""
    name = "plug_" + "".join(c if c.isalnum() else "_" for c in tmp_path.name)
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield name
    sys.modules.pop(name, None)


def _experiment(folder: Path, model: str, dataset: str, *, extra: str = "", space: str = SPACE) -> Path:
    path = folder / "experiment.toml"
    path.write_text(
        f'name = "plug"\n{extra}\n[data]\ndataset = "{dataset}"\n\n[model]\nname = "{model}"\n\n'
        "[training]\nmax_epochs = 3\nglobal_batch = 16\n\n[resources]\nnum_slots = 2\n"
        "world_size_ladder = [1, 2]\n\n[search]\nmax_configurations = 4\n" + space
    )
    return path


# ------------------------------------------------------------------ the experiment file
def test_plugins_resolve_at_load_from_the_experiment_files_folder(tmp_path, plug):
    assert plug not in sys.modules and str(tmp_path) not in sys.path
    exp = load_experiment(_experiment(tmp_path, f"{plug}:build", f"{plug}:load"))
    assert exp.model.name == f"{plug}:build" and exp.data.dataset == f"{plug}:load"
    assert exp.python_path == (str(tmp_path.resolve()),)
    assert sys.path[0] == str(tmp_path.resolve()) and plug in sys.modules
    # The run folder's experiment.toml keeps the folder absolute: a resume imports from it.
    text = exp.to_toml()
    assert tomllib.loads(text)["python_path"] == [str(tmp_path.resolve())]
    elsewhere = tmp_path / "run"
    elsewhere.mkdir()
    (elsewhere / "experiment.toml").write_text(text)
    assert load_experiment(elsewhere / "experiment.toml").python_path == exp.python_path


def test_python_path_given_relative_to_the_file_and_none_without_plugins(tmp_path, plug):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / f"{plug}.py").write_text(PLUGIN)
    (tmp_path / f"{plug}.py").unlink()
    exp = load_experiment(_experiment(tmp_path, f"{plug}:build", f"{plug}:load",
                                      extra='python_path = ["src"]'))
    assert exp.python_path == (str((tmp_path / "src").resolve()),)
    builtin = parse_experiment({"search_space": {"lr": 0.1}}, source=str(tmp_path / "x.toml"))
    assert builtin.python_path == () and "python_path" not in builtin.to_toml()
    with pytest.raises(ConfigError, match=r"^python_path: got 'nope'; allowed: existing folders"):
        load_experiment(_experiment(tmp_path, f"{plug}:build", f"{plug}:load",
                                    extra='python_path = ["nope"]'))


@pytest.mark.parametrize("model, dataset, field, allowed", [
    ("nosuchmod_q7:build", "{p}:load", "model.name",
     r"an importable module: no module named 'nosuchmod_q7' on the import path"),
    ("{p}:biuld", "{p}:load", "model.name",
     r"an attribute of '{p}': it has no 'biuld' \(did you mean 'build'\?\)"),
    ("{p}:NOT_CALLABLE", "{p}:load", "model.name", r"a callable: 'NOT_CALLABLE' is a int"),
    ("{p}:build_kwargs", "{p}:load", "model.name",
     r"a function that names each parameter it takes \(its \*\*hparams"),
    ("{p}:build", "{p}:nothing", "data.dataset", r"an attribute of '{p}': it has no 'nothing'"),
    ("{p}:build", "{p}:load_needs", "data.dataset",
     r"a function seer-torch can call with data_dir alone \(it requires scale\)"),
    ("{p}:build", "{p}-x:load", "data.dataset",
     r"an import path 'package.module:function' of a function load"),
    ("{p}:build", "{p}:", "data.dataset", r"an import path 'package.module:function'"),
])
def test_a_plugin_that_does_not_resolve_is_a_config_error_at_load(tmp_path, plug, model, dataset, field,
                                                                    allowed):
    model, dataset, allowed = (s.replace("{p}", plug) for s in (model, dataset, allowed))
    value = model if field == "model.name" else dataset
    with pytest.raises(ConfigError) as info:
        load_experiment(_experiment(tmp_path, model, dataset))
    assert (info.value.field, info.value.value) == (field, value)
    assert re.match(allowed, info.value.allowed), info.value.allowed


def test_a_module_that_fails_to_import_is_quoted(tmp_path, plug):
    (tmp_path / f"{plug}_broken.py").write_text("import math\nraise RuntimeError('boom at import')\n")
    with pytest.raises(ConfigError, match=rf"^model.name: got '{plug}_broken:build'; allowed: a module "
                                          rf"that imports: importing '{plug}_broken' raised RuntimeError: "
                                          "boom at import$"):
        load_experiment(_experiment(tmp_path, f"{plug}_broken:build", f"{plug}:load"))
    sys.modules.pop(f"{plug}_broken", None)


def test_a_plugin_dataset_needs_a_model_name_and_an_existing_data_dir(tmp_path, plug):
    with pytest.raises(ConfigError, match=r"^model.name: got None; allowed: a model for the plug-in dataset"):
        parse_experiment({"data": {"dataset": f"{plug}:load"}, "search_space": {"lr": 0.1}},
                         source=str(tmp_path / "e.toml"))
    with pytest.raises(ConfigError,
                       match=r"^data.data_dir: got 'missing'; allowed: an existing folder or file"):
        parse_experiment({"data": {"dataset": f"{plug}:load", "data_dir": "missing"},
                          "model": {"name": "digits_mlp"}, "search_space": {"lr": 0.1}},
                         source=str(tmp_path / "e.toml"))


# ------------------------------------------------------------------ load(): the dataset contract
def test_load_dataset_calls_the_plugin_and_keeps_the_splits_shape(tmp_path, plug):
    load_experiment(_experiment(tmp_path, f"{plug}:build", f"{plug}:load"))  # puts the folder on the path
    splits = load_dataset(f"{plug}:load", None)
    # From NumPy float64 features and int64 labels:
    assert splits.train_x.dtype == torch.float32 and splits.train_y.dtype == torch.int64
    assert splits.input_shape == (6,) and splits.num_train == 120 and splits.num_classes == 3
    assert (splits.in_channels, splits.image_size, splits.augment) == (None, None, False)
    assert tuple(splits.val_x.shape) == (40, 6) and tuple(splits.test_y.shape) == (40,)
    module = sys.modules[plug]
    x = module.load()["train_x"]
    assert torch.equal(splits.train_x, torch.as_tensor(x, dtype=torch.float32))
    images = load_dataset(f"{plug}:load_images", None)
    assert (images.in_channels, images.image_size, images.input_shape) == (2, 5, (2, 5, 5))
    # data_dir is passed when load declares it; the shape is read once per process.
    assert dataset_shape(f"{plug}:load_dir", "/somewhere").num_classes == 3
    assert num_train_samples(f"{plug}:load_dir", "/somewhere") == 120
    assert module.LAST_DATA_DIR == ["/somewhere"]


@pytest.mark.parametrize("loader, problem", [
    ("load_list", "it returned a list"),
    ("load_missing", "missing test_y"),
    ("load_bad_labels", "val_y holds labels 5..7: labels in [0, num_classes) = [0, 3)"),
    ("load_bad_shape", "test_x has samples (4,) of torch.float32, train_x (6,) of torch.float32: the same "
                       "in every split"),
    ("load_float_labels", "train_y has dtype torch.float32: integer class labels"),
])
def test_a_load_that_breaks_the_contract_fails_naming_data_dataset(tmp_path, plug, loader, problem):
    load_experiment(_experiment(tmp_path, f"{plug}:build", f"{plug}:load"))
    with pytest.raises(ConfigError) as info:
        load_dataset(f"{plug}:{loader}", None)
    assert (info.value.field, info.value.value) == ("data.dataset", f"{plug}:{loader}")
    assert info.value.allowed.startswith("a function load(data_dir=None) returning a dict")
    assert info.value.allowed.endswith(f"({problem})")


# ------------------------------------------------------------------ build(): the model contract
def test_a_plugins_hyperparameters_are_its_builds_keyword_parameters(tmp_path, plug):
    load_experiment(_experiment(tmp_path, f"{plug}:build", f"{plug}:load"))
    name = f"{plug}:build"
    assert model_hparam_names(name) == model_cost_hparam_names(name) == {"hidden", "dropout"}
    assert model_hparam_defaults(name) == {"hidden": 8, "dropout": 0.0}
    assert model_hparam_names(f"{plug}:Net") == {"width"}  # a class: its __init__'s
    assert validate_model_hparams(name, {"hidden": 5}) == {"hidden": 5, "dropout": 0.0}
    with pytest.raises(ConfigError,
                       match=r"^width: got 3; allowed: hyperparameters of model .* dropout, hidden$"):
        validate_model_hparams(name, {"width": 3})
    with pytest.raises(ConfigError, match=r"^hidden: got None; allowed: a value: .* declares 'hidden' "
                                          "without a default, so the search space must give it$"):
        validate_model_hparams(f"{plug}:build_plain", {})
    # The worker's config.json validation (unchanged) splits a configuration the same way.
    conf = TrialConfig.from_dict({"configuration": {"lr": 0.1, "hidden": 4}, "model": name,
                                  "dataset": f"{plug}:load", "global_batch": 16, "max_epochs": 3})
    assert dict(conf.model_hparams) == {"hidden": 4} and conf.lr == 0.1


def test_build_model_passes_the_shape_it_declares_and_checks_the_first_forward(tmp_path, plug):
    load_experiment(_experiment(tmp_path, f"{plug}:build", f"{plug}:load"))
    torch.manual_seed(0)
    model = build_model(f"{plug}:build", num_classes=3, input_shape=(6,), hidden=5)
    assert model[1].in_features == 6 and model[1].out_features == 5 and model[4].out_features == 3
    assert tuple(model(torch.zeros(7, 6)).shape) == (7, 3)
    # The image form of the shape arguments reaches it as input_shape (C, H, H).
    assert build_model(f"{plug}:build", num_classes=2, in_channels=2, image_size=5)[1].in_features == 50
    assert isinstance(build_model(f"{plug}:build_plain", num_classes=3, input_shape=(6,), hidden=1),
                      torch.nn.Linear)
    with pytest.raises(ConfigError, match=r"^model.name: got '.*:build_dict'; allowed: a function build.*"
                                          r"\(it returned a dict\)$"):
        build_model(f"{plug}:build_dict", num_classes=3, input_shape=(6,))
    with pytest.raises(ConfigError,
                       match=r"^model.name: got '.*:build_plain'; allowed: .*\(it returned a NoneType\)"):
        build_model(f"{plug}:build_plain", num_classes=3, input_shape=(6,), hidden=0)
    wrong = build_model(f"{plug}:build_wrong_output", num_classes=3, input_shape=(6,))
    with pytest.raises(ConfigError, match=r"forward maps a batch \(N, \*input_shape\) = \(4, 6\) to logits "
                                          r"\(N, num_classes\) = \(4, 3\) \(its output: \(4, 4\)\)$"):
        wrong(torch.zeros(4, 6))


def test_the_tuners_checks_cover_plugins(tmp_path, plug):
    exp = load_experiment(_experiment(tmp_path, f"{plug}:build", f"{plug}:load"))
    assert make_backend(exp).python_path == exp.python_path and LocalBackend(1).python_path == ()
    check_before_launch(exp)  # the dataset loaded once, every draw validated as the worker will
    typo = SPACE.replace("hidden =", "hiden =")
    exp = load_experiment(_experiment(tmp_path, f"{plug}:build", f"{plug}:load", space=typo))
    with pytest.raises(ConfigError, match=r"^search_space.hiden: .*hyperparameters of model '.*:build': "
                                          r"dropout, hidden \(did you mean 'hidden'\?\)$"):
        check_before_launch(exp)
    # A built-in image model on a plug-in's tabular samples.
    exp = load_experiment(_experiment(tmp_path, "digits_mlp", f"{plug}:load",
                                      space='\n[search_space]\nlr = 0.1\n'))
    with pytest.raises(ConfigError, match=r"^model.name: got 'digits_mlp'; allowed: a model for samples of "
                                          r"shape \(6,\) .*the built-in models take square images"):
        check_before_launch(exp)
    # A global batch larger than the plug-in's 120 training samples.
    big = _experiment(tmp_path, f"{plug}:build", f"{plug}:load").read_text().replace("global_batch = 16",
                                                                                         "global_batch = 128")
    (tmp_path / "big.toml").write_text(big)
    with pytest.raises(ConfigError, match=rf"^training.global_batch: got 128; allowed: at most the 120 "
                                          rf"training samples of {plug}:load$"):
        check_before_launch(load_experiment(tmp_path / "big.toml"))


# ------------------------------------------------------------------ FLOPs for the planner
def test_a_plugins_flops_are_counted_like_the_builtins(tmp_path, plug):
    exp = load_experiment(_experiment(tmp_path, f"{plug}:build", f"{plug}:load"))
    # Linear(6 -> h) and Linear(h -> 3) on inputs that need no gradient: forward 2*6h + 2*3h,
    # backward the weights' gradients (the same again) and the hidden layer's input gradient 2*3h.
    for hidden in (4, 8):
        assert profiler.configuration_flops(exp, {"lr": 0.1, "hidden": hidden}) == 42 * hidden
    # Linear(6 -> 3): forward 2*18, its weights' gradient 2*18; counted on the CPU.
    assert flops_per_sample(f"{plug}:build_no_meta", num_classes=3, input_shape=(6,)) == 2 * 2 * 18
    assert math.isnan(flops_per_sample(f"{plug}:build_uncountable", num_classes=3, input_shape=(6,)))
    costs = profiler.count_draw_costs(exp, profiler.probe_configuration(exp))
    assert costs.probe_flops == 42 * 8  # the last choice, hidden = 8
    assert sorted(set(costs.draw_flops)) == [42 * 4, 42 * 8]
