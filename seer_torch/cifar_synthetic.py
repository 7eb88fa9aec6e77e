"""A synthetic CIFAR-10 folder, for machines without the real data set (no internet here).

:func:`write_synthetic_cifar10` writes ``root/cifar-10-batches-py/`` in exactly torchvision's
layout (``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``: Python pickles
with ``b"data"`` uint8 ``(N, 3072)`` row-major CHW and ``b"labels"`` a list of ints), holding
images whose class can be learned (each class has its own colour and low-frequency pattern,
plus noise and a random shift), and a marker file :data:`MARKER_FILE` that says the folder is
synthetic and records the SHA-256 of every file it wrote.

torchvision's :class:`~torchvision.datasets.CIFAR10` checks each batch file against the MD5 of
the real release, which synthetic files fail by construction. We do not disable that check for
real folders: :func:`cifar10_dataset_class` returns torchvision's class, MD5 check included,
for every folder without the marker, and :class:`SyntheticCIFAR10` only for a folder that
carries it. That subclass replaces the MD5 check by an equally strict one against the marker:
every file of the layout present, with the size and SHA-256 the generator recorded. A real
folder that lost a file, or a synthetic one whose file was changed, still fails with
"Dataset not found or corrupted". Loading a synthetic folder prints a line saying so to stderr
(it lands in each worker's ``stderr.log``), and every benchmark that uses one labels its output
``SYNTHETIC``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
from typing import Any

import numpy as np

#: Folder of the standard layout, under ``root``.
BASE_FOLDER = "cifar-10-batches-py"
#: The marker written next to the batch files of a synthetic folder.
MARKER_FILE = "SYNTHETIC.json"
TRAIN_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: ``seer_torch.data`` keeps the last 5000 training images for validation, so a folder needs more.
MIN_NUM_TRAIN = 5001


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _class_templates(seed: int) -> np.ndarray:
    """Per class a (3, 32, 32) float pattern in [0, 255]: a colour plus a low-frequency
    texture (a random 4x4 pattern upsampled), fixed by ``seed``."""
    rng = np.random.default_rng([seed, 0xC1FA])
    templates = np.empty((10, 3, 32, 32), dtype=np.float32)
    for label in range(10):
        colour = rng.uniform(40, 215, size=(3, 1, 1))
        coarse = rng.uniform(-60, 60, size=(3, 4, 4))
        texture = np.kron(coarse, np.ones((8, 8)))
        templates[label] = np.clip(colour + texture, 0, 255)
    return templates


def _images(templates: np.ndarray, labels: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """uint8 ``(N, 3072)`` images of ``labels``: template shifted by up to 3 pixels, plus noise."""
    n = labels.shape[0]
    out = np.empty((n, 3, 32, 32), dtype=np.float32)
    shifts = rng.integers(-3, 4, size=(n, 2))
    for i in range(n):
        out[i] = np.roll(templates[labels[i]], shift=(int(shifts[i, 0]), int(shifts[i, 1])), axis=(1, 2))
    out += rng.normal(0.0, noise, size=out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8).reshape(n, 3072)


class _Py2Str(bytes):
    """A key pickled as Python 2's ``str`` (opcode ``SHORT_BINSTRING``), as in the real files:
    it loads as ``"data"`` with ``encoding="latin1"`` (torchvision) and as ``b"data"`` with
    ``encoding="bytes"`` (the loader on the CIFAR-10 web page)."""


class _Py2Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table can be extended
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2str(self, obj: _Py2Str) -> None:
        data = bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2str


def _dump(obj: object, path: str) -> None:
    with open(path, "wb") as file:
        _Py2Pickler(file, protocol=2).dump(obj)


def write_synthetic_cifar10(
    root: str | os.PathLike[str], num_train: int = 10000, num_test: int = 2000, seed: int = 0,
    noise: float = 48.0,
) -> str:
    """Write a synthetic CIFAR-10 folder ``root/cifar-10-batches-py/`` in torchvision's layout.

    Args:
        root: the ``data_dir`` to create (made if missing). An existing synthetic folder there is
            overwritten; a folder without the marker (possibly the real data) is never touched.
        num_train: training images over the five ``data_batch_*`` files; at least
            :data:`MIN_NUM_TRAIN` because the loader keeps the last 5000 for validation.
        num_test: images in ``test_batch`` (>= 1).
        seed: fixes the class patterns, the labels and the noise.
        noise: standard deviation of the per-pixel Gaussian noise, in pixel units (0..255).

    Returns:
        The absolute ``root``.

    Raises:
        ValueError: a count out of range, or ``root`` already holds a CIFAR-10 folder without
            the synthetic marker.
    """
    if num_train < MIN_NUM_TRAIN:
        raise ValueError(f"num_train: got {num_train}; allowed: an integer >= {MIN_NUM_TRAIN} "
                         "(5000 go to validation)")
    if num_test < 1:
        raise ValueError(f"num_test: got {num_test}; allowed: an integer >= 1")
    root = os.path.abspath(os.fspath(root))
    folder = os.path.join(root, BASE_FOLDER)
    if os.path.isdir(folder) and os.listdir(folder) and not os.path.isfile(os.path.join(folder, MARKER_FILE)):
        raise ValueError(f"root: {folder!r} already holds a CIFAR-10 folder without {MARKER_FILE}; "
                         "refusing to overwrite it")
    os.makedirs(folder, exist_ok=True)
    marker_path = os.path.join(folder, MARKER_FILE)
    if os.path.exists(marker_path):
        os.remove(marker_path)  # while rewriting, the folder is not a valid synthetic folder
    rng = np.random.default_rng([seed, 0xDA7A])
    templates = _class_templates(seed)

    def write_batch(name: str, labels: np.ndarray) -> None:
        entry = {
            _Py2Str(b"batch_label"): _Py2Str(f"synthetic {name}".encode()),
            _Py2Str(b"labels"): [int(v) for v in labels],
            _Py2Str(b"data"): _images(templates, labels, rng, noise),
            _Py2Str(b"filenames"): [_Py2Str(f"synthetic_{name}_{i:05d}.png".encode())
                                    for i in range(labels.shape[0])],
        }
        _dump(entry, os.path.join(folder, name))

    bounds = np.linspace(0, num_train, len(TRAIN_FILES) + 1).astype(int)
    train_labels = rng.integers(0, 10, size=num_train)
    for index, name in enumerate(TRAIN_FILES):
        write_batch(name, train_labels[bounds[index]:bounds[index + 1]])
    write_batch(TEST_FILE, rng.integers(0, 10, size=num_test))
    _dump({_Py2Str(b"label_names"): [_Py2Str(c.encode()) for c in CLASSES],
           _Py2Str(b"num_cases_per_batch"): int(bounds[1]), _Py2Str(b"num_vis"): 3072},
          os.path.join(folder, META_FILE))
    files = {
        name: {"bytes": os.path.getsize(os.path.join(folder, name)),
               "sha256": _sha256(os.path.join(folder, name))}
        for name in (*TRAIN_FILES, TEST_FILE, META_FILE)
    }
    marker = {
        "synthetic": True,
        "note": "SYNTHETIC data in the CIFAR-10 layout, written by seer_torch.cifar_synthetic; not CIFAR-10. "
                "Numbers measured on it say nothing about accuracy on CIFAR-10.",
        "generator": "seer_torch.cifar_synthetic.write_synthetic_cifar10",
        "seed": seed,
        "noise": noise,
        "num_train": num_train,
        "num_test": num_test,
        "files": files,
    }
    tmp = marker_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as file:
        json.dump(marker, file, indent=2)
    os.replace(tmp, marker_path)
    return root


def read_marker(root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The parsed marker of ``root/cifar-10-batches-py/`` if it is a synthetic folder, else ``None``."""
    path = os.path.join(os.fspath(root), BASE_FOLDER, MARKER_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as file:
            marker = json.load(file)
    except (OSError, json.JSONDecodeError):
        return {"synthetic": True, "files": None}  # a marker that cannot be read fails the integrity check
    return marker if isinstance(marker, dict) else {"synthetic": True, "files": None}


def is_synthetic_cifar10(root: str | os.PathLike[str] | None) -> bool:
    """Whether ``root`` holds a CIFAR-10-layout folder carrying the synthetic marker."""
    return bool(root) and read_marker(root) is not None


def verify_synthetic_folder(root: str | os.PathLike[str]) -> bool:
    """The integrity check of a synthetic folder: the marker says ``synthetic``, and every file
    of the layout is present with the size and SHA-256 the marker records."""
    marker = read_marker(root)
    if not marker or marker.get("synthetic") is not True or not isinstance(marker.get("files"), dict):
        return False
    folder = os.path.join(os.fspath(root), BASE_FOLDER)
    for name in (*TRAIN_FILES, TEST_FILE, META_FILE):
        expected = marker["files"].get(name)
        path = os.path.join(folder, name)
        if not isinstance(expected, dict) or not os.path.isfile(path):
            return False
        if os.path.getsize(path) != expected.get("bytes") or _sha256(path) != expected.get("sha256"):
            return False
    return True


_SYNTHETIC_CLASS: type | None = None


def synthetic_cifar10_class() -> type:
    """:class:`SyntheticCIFAR10`: torchvision's CIFAR10 with the MD5 checks of the real release
    replaced by :func:`verify_synthetic_folder` (built on first use; torchvision is slow to import)."""
    global _SYNTHETIC_CLASS
    if _SYNTHETIC_CLASS is None:
        from torchvision.datasets import CIFAR10

        class SyntheticCIFAR10(CIFAR10):
            """CIFAR10 over a synthetic folder; integrity = the marker and the recorded SHA-256s."""

            synthetic = True

            def _check_integrity(self) -> bool:
                return verify_synthetic_folder(self.root)

            def _load_meta(self) -> None:
                if not verify_synthetic_folder(self.root):
                    raise RuntimeError(
                        "Dataset metadata file not found or corrupted (synthetic CIFAR-10 folder)")
                with open(os.path.join(self.root, self.base_folder, self.meta["filename"]), "rb") as file:
                    self.classes = pickle.load(file, encoding="latin1")[self.meta["key"]]
                self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

        _SYNTHETIC_CLASS = SyntheticCIFAR10
    return _SYNTHETIC_CLASS


def cifar10_dataset_class(root: str) -> type:
    """The dataset class for ``root``: :class:`SyntheticCIFAR10` when the folder carries
    :data:`MARKER_FILE` (and a line saying SYNTHETIC goes to stderr), else torchvision's own
    CIFAR10 with its MD5 checks."""
    if is_synthetic_cifar10(root):
        print(f"seer-torch: SYNTHETIC CIFAR-10 in {os.path.join(root, BASE_FOLDER)} (see {MARKER_FILE}); "
              "not the real data set", file=sys.stderr)
        return synthetic_cifar10_class()
    from torchvision.datasets import CIFAR10

    return CIFAR10


__all__ = [
    "BASE_FOLDER", "MARKER_FILE", "MIN_NUM_TRAIN", "cifar10_dataset_class", "is_synthetic_cifar10",
    "read_marker", "synthetic_cifar10_class", "verify_synthetic_folder", "write_synthetic_cifar10",
]
