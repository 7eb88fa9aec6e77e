"""Fast tests of the data layer, the model registry and the worker's pure helpers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from seer_torch.data import (
    augment_crop_flip,
    digits_split_indices,
    epoch_permutation,
    load_dataset,
    plan_batch,
    rank_slice,
    rank_train_batch,
    steps_per_epoch,
)
from seer_torch.errors import ConfigError, DatasetNotFoundError
from seer_torch.models import MODEL_NAMES, build_model, model_hparam_names

# ---------------------------------------------------------------- digits split


def test_digits_split_indices_are_disjoint_and_cover_all_1797():
    train, val, test = digits_split_indices()
    assert (len(train), len(val), len(test)) == (1257, 270, 270)
    together = torch.cat([train, val, test])
    assert sorted(together.tolist()) == list(range(1797))


def test_digits_split_is_fixed_whatever_the_global_seed():
    first = digits_split_indices()
    torch.manual_seed(12345)
    second = digits_split_indices()
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_load_digits_shapes_dtypes_and_normalisation():
    splits = load_dataset("digits", None)
    assert splits.train_x.shape == (1257, 1, 8, 8)
    assert splits.val_x.shape == (270, 1, 8, 8) and splits.test_x.shape == (270, 1, 8, 8)
    assert splits.train_x.dtype == torch.float32 and splits.train_y.dtype == torch.int64
    assert len(splits.train_y) + len(splits.val_y) + len(splits.test_y) == 1797
    assert (splits.num_classes, splits.in_channels, splits.image_size) == (10, 1, 8)
    assert abs(splits.train_x.mean().item()) < 1e-5 and abs(splits.train_x.std().item() - 1) < 1e-4
    assert not splits.augment


def test_unknown_dataset_names_the_field():
    with pytest.raises(ConfigError) as info:
        load_dataset("mnist", None)
    assert info.value.field == "data.dataset" and "digits" in str(info.value)


def test_cifar_missing_folder_names_the_path_and_layout(tmp_path):
    missing = tmp_path / "no-cifar-here"
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", str(missing))
    message = str(info.value)
    assert str(missing / "cifar-10-batches-py") in message
    for name in ("data_batch_1", "data_batch_5", "test_batch", "batches.meta"):
        assert name in message
    assert "download" in message.lower()


def test_cifar_incomplete_folder_lists_the_missing_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("data_batch_1", "data_batch_2", "batches.meta"):
        (folder / name).write_bytes(b"")
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", str(tmp_path))
    message = str(info.value)
    assert "cifar-10-batches-py/data_batch_3" in message and "cifar-10-batches-py/test_batch" in message
    assert "cifar-10-batches-py/data_batch_1," not in message


def test_cifar_without_data_dir_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        load_dataset("cifar10", None)
    assert info.value.field == "data.data_dir"


# ---------------------------------------------------------------- batch plan (case 8)


@pytest.mark.parametrize("world_size", [1, 2, 4, 8])
def test_plan_batch_keeps_the_global_batch(world_size):
    plan = plan_batch(256, world_size, 128)
    assert world_size * plan.micro_batch * plan.accum_steps == 256
    assert plan.accum_steps >= 1 and plan.micro_batch <= 128
    assert (plan.micro_batch, plan.accum_steps) == {1: (128, 2), 2: (128, 1), 4: (64, 1), 8: (32, 1)}[
        world_size
    ]


def test_plan_batch_takes_the_fewest_accumulation_steps():
    assert (plan_batch(64, 4, 8).micro_batch, plan_batch(64, 4, 8).accum_steps) == (8, 2)
    assert (plan_batch(96, 1, 40).micro_batch, plan_batch(96, 1, 40).accum_steps) == (32, 3)


@pytest.mark.parametrize("world_size", [3, 5, 7, 512])
def test_plan_batch_rejects_a_world_size_that_cannot_divide(world_size):
    with pytest.raises(ConfigError) as info:
        plan_batch(256, world_size, 128)
    assert info.value.field == "world_size" and info.value.value == world_size


def test_steps_per_epoch_on_50000_samples_is_195_at_every_world_size():
    for world_size in (1, 2, 4, 8):
        plan = plan_batch(256, world_size, 128)
        assert steps_per_epoch(50_000, plan.global_batch) == 195


# ---------------------------------------------------------------- data order (case 7)


def test_epoch_permutation_covers_all_indices_and_differs_between_epochs():
    orders = [epoch_permutation(0, epoch, 1000) for epoch in (1, 2, 3)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(1000))
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])
    assert torch.equal(epoch_permutation(0, 3, 1000), orders[2])  # a function of (seed, epoch) only
    assert not torch.equal(epoch_permutation(1, 3, 1000), orders[2])


def test_epoch_permutation_ignores_the_global_rng():
    torch.manual_seed(1)
    first = epoch_permutation(7, 2, 500)
    torch.manual_seed(2)
    torch.rand(10)
    assert torch.equal(first, epoch_permutation(7, 2, 500))


def test_rank_slices_count_every_sample_once_at_every_world_size():
    for size in (270, 5000, 7):
        for world_size in (1, 2, 3, 4, 8):
            covered = []
            for rank in range(world_size):
                covered.extend(range(size)[rank_slice(size, world_size, rank)])
            assert covered == list(range(size))


def _trained_in_order(permutation, plan, step):
    """What the ranks of ``plan`` train at ``step``: (rank, micro-batch, indices) in order."""
    out = []
    for rank in range(plan.world_size):
        batch = rank_train_batch(permutation, step, plan, rank)
        assert batch.offset == rank * plan.local_batch
        assert len(batch.micro_batches) == plan.accum_steps
        assert torch.equal(torch.cat(batch.micro_batch_indices()), batch.indices)
        for micro, indices in enumerate(batch.micro_batch_indices()):
            assert indices.shape == (plan.micro_batch,)
            out.append((rank, micro, indices.tolist()))
    return out


def test_rank_train_batches_train_every_sample_of_a_global_batch_once_in_the_same_global_order():
    num_train, global_batch = 1000, 48
    permutation = epoch_permutation(3, 2, num_train)
    steps = steps_per_epoch(num_train, global_batch)
    assert steps == 20  # 1000 // 48: the last 40 samples of the permutation wait for another epoch
    for micro_batch_max in (48, 8, 5):
        for world_size in (1, 2, 4):
            plan = plan_batch(global_batch, world_size, micro_batch_max)
            for step in (0, 7, steps - 1):
                trained = _trained_in_order(permutation, plan, step)
                # ranks in order, micro-batches in order within a rank
                assert [(r, m) for r, m, _ in trained] == [
                    (r, m) for r in range(world_size) for m in range(plan.accum_steps)
                ]
                # concatenated, they are the global batch in the permutation's order, whatever W
                # and the micro-batch split: every sample trained exactly once
                flat = [i for _, _, indices in trained for i in indices]
                expected = permutation[step * global_batch:(step + 1) * global_batch].tolist()
                assert flat == expected
                assert len(set(flat)) == global_batch


def test_rank_train_batch_examples():
    permutation = torch.arange(100, 0, -1)  # 100, 99, ..., 1
    plan = plan_batch(8, 2, 2)  # 2 ranks x 2 micro-batches of 2
    batch = rank_train_batch(permutation, 3, plan, 1)
    assert batch.indices.tolist() == [72, 71, 70, 69]  # positions 28..31: step 3, second half
    assert batch.offset == 4
    assert [t.tolist() for t in batch.micro_batch_indices()] == [[72, 71], [70, 69]]


def test_augmentation_of_a_rank_slice_equals_the_slice_of_the_global_batch():
    x = torch.randn(16, 3, 32, 32)
    whole = augment_crop_flip(x, seed=0, epoch=1, step=5, global_batch=16, offset=0)
    for world_size in (2, 4):
        local = 16 // world_size
        for rank in range(world_size):
            part = augment_crop_flip(
                x[rank * local : (rank + 1) * local],
                seed=0,
                epoch=1,
                step=5,
                global_batch=16,
                offset=rank * local,
            )
            assert torch.equal(part, whole[rank * local : (rank + 1) * local])
    assert not torch.equal(whole, augment_crop_flip(x, seed=0, epoch=1, step=6, global_batch=16, offset=0))


def test_augmentation_is_a_padded_crop_or_its_mirror():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6) + 1
    out = augment_crop_flip(x, seed=3, epoch=2, step=0, global_batch=2, offset=0, pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        crops = [padded[i, :, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], c) or torch.equal(out[i], c.flip(-1)) for c in crops)


# ---------------------------------------------------------------- model registry


def test_model_names_and_hparams():
    assert set(MODEL_NAMES) == {"digits_cnn", "digits_mlp", "resnet18_cifar"}
    assert model_hparam_names("digits_cnn") == frozenset({"width", "dropout"})
    assert model_hparam_names("resnet18_cifar") == frozenset({"width", "dropout"})


def test_build_model_unknown_name_names_the_field():
    with pytest.raises(ConfigError) as info:
        build_model("vgg11", num_classes=10, in_channels=1, image_size=8)
    assert info.value.field == "model.name" and info.value.value == "vgg11"
    assert "digits_cnn" in str(info.value)


def test_build_model_unknown_hparam_names_the_field():
    with pytest.raises(ConfigError) as info:
        build_model("digits_cnn", num_classes=10, in_channels=1, image_size=8, depth=3)
    assert info.value.field == "depth" and "width" in str(info.value)


@pytest.mark.parametrize(
    "field, value",
    [("width", 0), ("width", 2.5), ("width", True), ("dropout", 1.0), ("dropout", -0.1), ("dropout", "0.1")],
)
def test_build_model_invalid_hparam_names_the_field(field, value):
    with pytest.raises(ConfigError) as info:
        build_model("digits_cnn", num_classes=10, in_channels=1, image_size=8, **{field: value})
    assert info.value.field == field and info.value.value == value


def test_digits_cnn_shapes_and_width():
    model = build_model("digits_cnn", num_classes=10, in_channels=1, image_size=8, width=8, dropout=0.2)
    assert model(torch.randn(5, 1, 8, 8)).shape == (5, 10)
    assert model.classifier.in_features == 16
    assert (
        build_model(
            "digits_cnn", num_classes=10, in_channels=1, image_size=8, width=8.0
        ).classifier.in_features
        == 16
    )


def test_resnet18_cifar_shape_and_stem():
    model = build_model("resnet18_cifar", num_classes=10, in_channels=3, image_size=32, width=8)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert model.stem[0].kernel_size == (3, 3) and model.stem[0].stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    standard = build_model("resnet18_cifar", num_classes=10, in_channels=3, image_size=32)
    assert 11_000_000 < sum(p.numel() for p in standard.parameters()) < 11_300_000


# ---------------------------------------------------------------- worker helpers


def test_cosine_schedule_is_a_function_of_the_step():
    from seer_torch.worker import cosine_lr_factor, cosine_schedule

    assert cosine_lr_factor(0, 90) == 1.0 and cosine_lr_factor(90, 90) == 0.0
    assert math.isclose(cosine_lr_factor(45, 90), 0.5)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.4)
    scheduler = cosine_schedule(optimizer, 90)
    for _ in range(30):
        optimizer.step()
        scheduler.step()
    fresh_optimizer = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.4)
    fresh = cosine_schedule(fresh_optimizer, 90)
    fresh_optimizer.load_state_dict(optimizer.state_dict())  # the worker's order: optimizer, then scheduler
    fresh.load_state_dict(scheduler.state_dict())
    optimizer.step()
    scheduler.step()
    fresh_optimizer.step()
    fresh.step()
    assert fresh_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]
    assert math.isclose(optimizer.param_groups[0]["lr"], 0.4 * cosine_lr_factor(31, 90))


def _config(**overrides):
    raw = {
        "trial_id": "t0",
        "configuration": {"lr": 0.1, "weight_decay": 5e-4, "width": 8, "dropout": 0.1},
        "model": "digits_cnn",
        "dataset": "digits",
        "data_dir": None,
        "global_batch": 64,
        "micro_batch_max": 64,
        "max_epochs": 3,
        "seed": 0,
        "tensorboard_dir": None,
    }
    raw.update(overrides)
    return raw


def test_trial_config_splits_model_and_training_hyperparameters():
    from seer_torch.worker import TrialConfig

    config = TrialConfig.from_dict(_config(configuration={"lr": 0.2, "width": 16, "global_batch": 32}))
    assert dict(config.model_hparams) == {"width": 16}
    assert (config.lr, config.weight_decay, config.momentum, config.global_batch) == (0.2, 0.0, 0.9, 32)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"configuration": {"lr": 0.1, "depth": 3}}, "configuration.depth"),
        ({"configuration": {"lr": -1.0}}, "configuration.lr"),
        ({"configuration": {"weight_decay": 0.1}}, "configuration.lr"),
        ({"configuration": {"lr": 0.1, "momentum": 1.0}}, "configuration.momentum"),
        ({"model": "vgg"}, "model.name"),
        ({"global_batch": 0}, "global_batch"),
        ({"max_epochs": 2.5}, "max_epochs"),
    ],
)
def test_trial_config_errors_name_the_field(overrides, field):
    from seer_torch.worker import TrialConfig

    with pytest.raises(ConfigError) as info:
        TrialConfig.from_dict(_config(**overrides))
    assert info.value.field == field


def test_truncate_metrics_keeps_complete_lines_up_to_the_checkpoint(tmp_path):
    from seer_torch.worker import truncate_metrics

    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"epoch": e, "val_accuracy": 0.5}) for e in (1, 2, 3)]
    path.write_text("\n".join(lines) + '\n{"epoch": 4, "val_acc')
    truncate_metrics(str(path), 2)
    assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2]


def test_write_default_config_is_a_valid_digits_trial(tmp_path):
    from seer_torch.worker import TrialConfig, write_default_config

    assert write_default_config(str(tmp_path / "t"))
    assert not write_default_config(str(tmp_path / "t"))  # never overwrites
    config = TrialConfig.load(str(tmp_path / "t"))
    assert config.dataset == "digits" and config.model == "digits_cnn" and config.trial_id == "t"


def test_digits_file_reader_equals_sklearn_load_digits():
    from sklearn.datasets import load_digits

    from seer_torch.data import _digits_arrays

    images, labels = _digits_arrays()
    bunch = load_digits()
    assert (images == bunch.images).all() and (labels == bunch.target).all()


def test_cifar_loader_splits_off_the_last_5000_and_normalises(tmp_path, monkeypatch):
    """The CIFAR-10 path with torchvision's reader replaced by a small fake (no real data here)."""
    import numpy as np
    import torchvision.datasets

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in (
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
        "batches.meta",
    ):
        (folder / name).write_bytes(b"x")

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            assert root == str(tmp_path) and download is False
            count = 5012 if train else 7
            rng = np.random.default_rng(0 if train else 1)
            self.data = rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)
            self.targets = list(range(count))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    splits = load_dataset("cifar10", str(tmp_path))
    assert splits.train_x.shape == (12, 3, 32, 32) and splits.val_x.shape == (5000, 3, 32, 32)
    assert splits.test_x.shape == (7, 3, 32, 32) and splits.train_x.dtype == torch.float32
    assert splits.val_y[0].item() == 12 and splits.train_y.dtype == torch.int64  # validation = the last 5000
    assert splits.augment and (splits.num_classes, splits.in_channels, splits.image_size) == (10, 3, 32)
    pixel = FakeCIFAR10(str(tmp_path), True, False).data[0, 0, 0]  # image 0, row 0, column 0, RGB
    expected = (
        torch.tensor(pixel, dtype=torch.float32) / 255 - torch.tensor([0.4914, 0.4822, 0.4465])
    ) / torch.tensor([0.2470, 0.2435, 0.2616])
    torch.testing.assert_close(splits.train_x[0, :, 0, 0], expected)


def test_check_cifar10_folder_without_reading(tmp_path):
    from seer_torch.data import CIFAR10_FILES, check_cifar10_folder

    with pytest.raises(DatasetNotFoundError) as info:
        check_cifar10_folder(str(tmp_path))
    assert str(tmp_path / "cifar-10-batches-py") in str(info.value)
    (tmp_path / "cifar-10-batches-py").mkdir()
    for name in CIFAR10_FILES:
        (tmp_path / "cifar-10-batches-py" / name).write_bytes(b"")
    assert check_cifar10_folder(str(tmp_path)) == str(tmp_path)
