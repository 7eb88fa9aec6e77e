"""The synthetic CIFAR-10 folder: standard layout, loaded by seer_torch.data through the marker's
integrity check, and still refused with the clear missing/corrupt error when its files are wrong."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest

from seer_torch.cifar_synthetic import (
    MARKER_FILE,
    is_synthetic_cifar10,
    verify_synthetic_folder,
    write_synthetic_cifar10,
)
from seer_torch.data import CIFAR10_FILES, load_dataset
from seer_torch.errors import DatasetNotFoundError

NUM_TRAIN = 5200  # the loader keeps the last 5000 training images for validation
NUM_TEST = 40


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return write_synthetic_cifar10(
        tmp_path_factory.mktemp("cifar") / "data", num_train=NUM_TRAIN, num_test=NUM_TEST
    )


def _copy(root, tmp_path):
    return shutil.copytree(root, tmp_path / "copy")


def test_layout_is_torchvisions(synthetic_root):
    base = os.path.join(synthetic_root, "cifar-10-batches-py")
    assert sorted(os.listdir(base)) == sorted([*CIFAR10_FILES, MARKER_FILE])
    sizes = []
    for name in CIFAR10_FILES[:6]:
        with open(os.path.join(base, name), "rb") as file:
            entry = pickle.load(file, encoding="bytes")  # the loader on the CIFAR-10 web page
        assert entry[b"data"].dtype.name == "uint8" and entry[b"data"].shape[1] == 3072
        assert len(entry[b"labels"]) == entry[b"data"].shape[0]
        assert all(0 <= label < 10 for label in entry[b"labels"])
        sizes.append(entry[b"data"].shape[0])
    assert sum(sizes[:5]) == NUM_TRAIN and sizes[5] == NUM_TEST
    with open(os.path.join(base, "batches.meta"), "rb") as file:
        assert len(pickle.load(file, encoding="latin1")["label_names"]) == 10
    marker = json.loads(open(os.path.join(base, MARKER_FILE)).read())
    assert marker["synthetic"] is True and "SYNTHETIC" in marker["note"]
    assert is_synthetic_cifar10(synthetic_root) and verify_synthetic_folder(synthetic_root)


def test_loader_reads_synthetic_folder(synthetic_root, capfd):
    splits = load_dataset("cifar10", synthetic_root)
    assert "SYNTHETIC" in capfd.readouterr().err
    assert tuple(splits.train_x.shape) == (NUM_TRAIN - 5000, 3, 32, 32)
    assert tuple(splits.val_x.shape) == (5000, 3, 32, 32)
    assert tuple(splits.test_x.shape) == (NUM_TEST, 3, 32, 32)
    assert splits.train_y.shape[0] == NUM_TRAIN - 5000 and splits.val_y.shape[0] == 5000
    assert splits.test_y.shape[0] == NUM_TEST
    assert int(splits.train_y.min()) >= 0 and int(splits.train_y.max()) <= 9
    assert len(set(splits.val_y.tolist())) == 10
    assert splits.num_classes == 10 and splits.in_channels == 3 and splits.augment
    # Labels agree with the files: validation is the tail of data_batch_1 .. data_batch_5.
    labels = []
    for name in CIFAR10_FILES[:5]:
        with open(os.path.join(synthetic_root, "cifar-10-batches-py", name), "rb") as file:
            labels += pickle.load(file, encoding="latin1")["labels"]
    assert splits.train_y.tolist() == labels[:-5000] and splits.val_y.tolist() == labels[-5000:]
    # Class-dependent: per-class mean images differ far more than noise would make them.
    means = [splits.val_x[splits.val_y == c].mean(dim=0) for c in range(10)]
    assert min((means[a] - means[b]).abs().mean().item() for a in range(10) for b in range(a)) > 0.1


def test_changed_synthetic_file_is_corrupt(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    path = root / "cifar-10-batches-py" / "data_batch_3"
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert not verify_synthetic_folder(root)
    with pytest.raises(DatasetNotFoundError, match="missing or unreadable"):
        load_dataset("cifar10", str(root))


def test_missing_file_named(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    (root / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py/test_batch"):
        load_dataset("cifar10", str(root))


def test_without_marker_torchvision_md5_check_applies(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path)
    (root / "cifar-10-batches-py" / MARKER_FILE).unlink()  # now it claims to be the real data set
    assert not is_synthetic_cifar10(root)
    with pytest.raises(DatasetNotFoundError, match="missing or unreadable"):
        load_dataset("cifar10", str(root))


def test_writer_never_overwrites_a_real_folder(tmp_path):
    base = tmp_path / "cifar-10-batches-py"
    base.mkdir()
    (base / "data_batch_1").write_bytes(b"real data")
    with pytest.raises(ValueError, match="without SYNTHETIC.json"):
        write_synthetic_cifar10(tmp_path, num_train=5001, num_test=1)
    with pytest.raises(ValueError, match="num_train"):
        write_synthetic_cifar10(tmp_path / "other", num_train=100)
