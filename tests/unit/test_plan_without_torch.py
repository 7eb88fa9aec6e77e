"""`seer plan` imports no torch (it plans from the model registry's metadata and the counted
FLOPs), and the counted FLOPs are what the counter gives."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from seer_torch.data import image_shape
from seer_torch.errors import ConfigError
from seer_torch.models import MODEL_NAMES, count_flops_per_sample, flops_per_sample
from seer_torch.models.flop_counts import COUNTED_FLOPS

_DATASET = {"digits_cnn": "digits", "digits_mlp": "digits", "resnet18_cifar": "cifar10"}


def _run_in_fresh_python(code: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_seer_plan_on_the_default_experiment_imports_no_torch():
    out = _run_in_fresh_python(
        "import contextlib, io, json, sys\n"
        "from seer_torch.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as buf:\n"
        "    code = main(['plan', '--json'])\n"
        "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules,\n"
        "                  'configurations': json.loads(buf.getvalue())['plan']['num_configurations']}))\n"
    )
    assert out["code"] == 0
    assert out["configurations"] >= 1  # a plan was made, with the cost probe's FLOPs
    assert out["torch"] is False


def test_registry_and_trial_config_validation_import_no_torch():
    out = _run_in_fresh_python(
        "import json, sys\n"
        "from seer_torch.models import MODEL_NAMES, model_hparam_names, validate_model_hparams\n"
        "from seer_torch.training.config import TrialConfig\n"
        "c = TrialConfig.from_dict({'configuration': {'lr': 0.1, 'width': 16}, 'model': 'digits_cnn',\n"
        "                           'dataset': 'digits', 'global_batch': 64, 'max_epochs': 3})\n"
        "print(json.dumps({'names': list(MODEL_NAMES), 'hparams': sorted(model_hparam_names('digits_mlp')),\n"
        "                  'width': c.model_hparams['width'], 'torch': 'torch' in sys.modules}))\n"
    )
    assert out == {"names": ["digits_cnn", "digits_mlp", "resnet18_cifar"], "hparams": ["dropout", "width"],
                   "width": 16, "torch": False}


@pytest.mark.parametrize("key", sorted(COUNTED_FLOPS), ids=lambda k: f"{k[0]}-w{k[4]}")
def test_counted_flops_are_what_the_counter_counts(key):
    name, num_classes, in_channels, image_size, width = key
    assert (in_channels, image_size, num_classes) == image_shape(_DATASET[name])
    counted = count_flops_per_sample(name, num_classes=num_classes, in_channels=in_channels,
                                     image_size=image_size, width=width)
    assert COUNTED_FLOPS[key] == counted


def test_flops_per_sample_reads_the_table_and_counts_what_it_lacks():
    shape = {"num_classes": 10, "in_channels": 1, "image_size": 8}
    # dropout does not change the cost: the table's entry serves every dropout
    assert flops_per_sample("digits_cnn", **shape, width=96, dropout=0.4) == 48008448.0
    assert flops_per_sample("digits_cnn", **shape, width=96.0) == 48008448.0  # a TOML float width
    # not in the table: counted (width 40 lies between the listed 32 and 48)
    assert 5385984.0 < flops_per_sample("digits_cnn", **shape, width=40) < 12060288.0
    assert set(MODEL_NAMES) == {k[0] for k in COUNTED_FLOPS}


def test_flops_per_sample_checks_its_arguments_before_reading_the_table():
    with pytest.raises(ConfigError, match="^width: got 0; allowed: an integer >= 1$"):
        flops_per_sample("digits_cnn", num_classes=10, in_channels=1, image_size=8, width=0)
    with pytest.raises(ConfigError,
                       match="^image_size: got 1; allowed: an integer >= 2 for model 'digits_cnn'$"):
        flops_per_sample("digits_cnn", num_classes=10, in_channels=1, image_size=1, width=64)
    with pytest.raises(ConfigError, match="^model.name: got 'vgg'"):
        flops_per_sample("vgg", num_classes=10, in_channels=1, image_size=8)
