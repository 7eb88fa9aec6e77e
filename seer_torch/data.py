"""Datasets and the world-size-independent data order.

Two built-in datasets, and any plug-in (``[data] dataset = "package.module:load"``, the
contract in :func:`load_dataset`), each returned whole as in-memory tensors (:class:`Splits`):

- ``"digits"``: scikit-learn's 8x8 handwritten digits (1797 images, ships with scikit-learn,
  nothing is downloaded; read from scikit-learn's own data file, see :func:`_digits_arrays`).
  Split 1257 / 270 / 270 (train / validation / test, about 70/15/15)
  by a permutation with the fixed split seed :data:`DIGITS_SPLIT_SEED`, independent of the
  experiment's seed, so every trial and every run sees the same split.
- ``"cifar10"``: read from ``data_dir`` in torchvision's layout (``cifar-10-batches-py/``),
  never downloaded. Validation is the last 5000 images of the training set, so train has 45000.

The training data order and the augmentation are functions of ``(seed, epoch, step)`` only,
never of the world size ``W``, and live here: :func:`epoch_permutation` gives one permutation
of the training indices per ``(seed, epoch)``; :func:`steps_per_epoch` global batches are cut
from it in order; :func:`rank_train_batch` gives each rank its contiguous part of a global batch
and its micro-batches (the trainer calls it); :func:`rank_slice` shards validation and test.
:func:`plan_batch` splits the fixed global batch into ``W x micro_batch x accum_steps``.

This module imports torch, torchvision and scikit-learn only inside functions, so the pure
helpers (:func:`plan_batch`) cost nothing to import.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seer_torch.errors import ConfigError, DatasetNotFoundError
from seer_torch.plugins import DATASET_CONTRACT, dataset_loader, is_import_path

if TYPE_CHECKING:
    import torch

#: Names :func:`load_dataset` accepts.
DATASET_NAMES: tuple[str, ...] = ("cifar10", "digits")

#: The seed of the digits train/validation/test split; fixed, independent of any experiment seed.
DIGITS_SPLIT_SEED = 0
#: Validation and test sizes of the digits split (the rest, 1257 images, is training data).
DIGITS_VAL_SIZE = 270
DIGITS_TEST_SIZE = 270
#: Validation size of CIFAR-10: the last images of the 50000-image training set.
CIFAR10_VAL_SIZE = 5000
#: Per-channel mean and standard deviation of the CIFAR-10 training images (RGB, pixels in [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_FILES = (
    "data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5",
    "test_batch", "batches.meta",
)

# Salts keep the generators of the permutation and of the augmentation apart.
_PERMUTATION_SALT = 0x5EED_0001
_AUGMENT_SALT = 0x5EED_0002
_MASK_63 = (1 << 63) - 1


@dataclass(frozen=True, eq=False)
class Splits:
    """A dataset held in memory, already normalised.

    Attributes:
        train_x, val_x, test_x: inputs ``(N, *input_shape)``: for the built-ins float32 images
            ``(N, in_channels, image_size, image_size)``; for a plug-in what its ``load`` gave
            (floating point as float32, integers as they are).
        train_y, val_y, test_y: int64 class labels ``(N,)`` in ``[0, num_classes)``.
        num_classes: number of classes.
        in_channels: channels per image; ``None`` for a plug-in whose samples are not square
            images ``(C, H, H)``.
        image_size: height = width of an image, in pixels; ``None`` as ``in_channels``.
        name: the dataset's name (``"digits"``, ``"cifar10"`` or a plug-in's import path).
        augment: whether training batches get :func:`augment_crop_flip` (CIFAR-10 only).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    in_channels: int | None
    image_size: int | None
    name: str
    augment: bool = False

    @property
    def num_train(self) -> int:
        """Training samples."""
        return int(self.train_y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's shape, ``train_x.shape[1:]`` (``(1, 8, 8)`` for digits): what
        :func:`seer_torch.models.build_model` takes as ``input_shape``."""
        return tuple(int(d) for d in self.train_x.shape[1:])


@dataclass(frozen=True)
class DatasetShape:
    """What the tuner needs to know of a dataset without keeping it (:func:`dataset_shape`).

    Attributes:
        input_shape: one sample's shape.
        input_dtype: the inputs' torch dtype, by name (``"float32"``).
        num_classes: number of classes.
        num_train: training samples.
    """

    input_shape: tuple[int, ...]
    input_dtype: str
    num_classes: int
    num_train: int


@dataclass(frozen=True)
class BatchPlan:
    """How one optimizer step's global batch is split at world size ``world_size``.

    ``world_size * micro_batch * accum_steps == global_batch``: each rank runs ``accum_steps``
    forward/backward passes of ``micro_batch`` samples per optimizer step.
    """

    global_batch: int
    world_size: int
    micro_batch: int
    accum_steps: int

    @property
    def local_batch(self) -> int:
        """Samples one rank processes per optimizer step (``micro_batch * accum_steps``)."""
        return self.micro_batch * self.accum_steps


def plan_batch(global_batch: int, world_size: int, micro_batch_max: int) -> BatchPlan:
    """Split a fixed global batch over ``world_size`` ranks with gradient accumulation.

    ``accum_steps`` is the smallest ``a >= 1`` with ``global_batch % (world_size * a) == 0`` and
    ``global_batch // (world_size * a) <= micro_batch_max``.

    Args:
        global_batch: samples per optimizer step, the same at every world size.
        world_size: data-parallel ranks ``W``.
        micro_batch_max: the most samples one rank may process in one forward pass.

    Raises:
        ConfigError: a non-positive argument, or no ``a`` exists (``world_size`` does not divide
            ``global_batch`` into micro-batches of at most ``micro_batch_max``).
    """
    for field, value in (("global_batch", global_batch), ("world_size", world_size),
                         ("micro_batch_max", micro_batch_max)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(field, value, "an integer >= 1")
    if global_batch % world_size == 0:
        local = global_batch // world_size
        for accum in range(1, local + 1):
            if local % accum == 0 and local // accum <= micro_batch_max:
                plan = BatchPlan(global_batch, world_size, local // accum, accum)
                assert plan.world_size * plan.micro_batch * plan.accum_steps == global_batch
                return plan
    raise ConfigError(
        "world_size", world_size,
        f"a divisor of global_batch={global_batch} such that global_batch / (world_size x accum_steps) "
        f"<= micro_batch_max={micro_batch_max} for some integer accum_steps >= 1",
    )


def derive_seed(*parts: int) -> int:
    """A deterministic 63-bit seed from integers such as ``(salt, seed, epoch, step)``
    (splitmix64-style mixing; never Python's salted ``hash``)."""
    state = 0x9E3779B97F4A7C15
    for part in parts:
        state = (state ^ (int(part) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 31
        state = state * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 29
    return state & _MASK_63


def epoch_permutation(seed: int, epoch: int, num_samples: int) -> torch.Tensor:
    """The training order of epoch ``epoch``: a permutation of ``range(num_samples)``.

    A function of ``(seed, epoch, num_samples)`` only, never of the world size, so a run that
    changes ``W`` between epochs reads the same samples in the same order as one that does not.

    Returns:
        int64 tensor ``(num_samples,)``.
    """
    import torch

    generator = torch.Generator()
    generator.manual_seed(derive_seed(_PERMUTATION_SALT, seed, epoch))
    return torch.randperm(num_samples, generator=generator)


def rank_slice(global_size: int, world_size: int, rank: int) -> slice:
    """The contiguous part of ``global_size`` items rank ``rank`` of ``world_size`` takes.

    Parts differ in size by at most one and cover every item exactly once (used to shard the
    validation and test splits so every sample is counted once at every ``W``).
    """
    return slice(rank * global_size // world_size, (rank + 1) * global_size // world_size)


def steps_per_epoch(num_samples: int, global_batch: int) -> int:
    """Optimizer steps in one epoch: ``num_samples // global_batch``. The last
    ``num_samples % global_batch`` samples of each epoch's permutation are not trained that
    epoch (a different tail every epoch), at every ``W``."""
    return num_samples // global_batch


@dataclass(frozen=True, eq=False)
class RankBatch:
    """This rank's part of one global training batch (:func:`rank_train_batch`).

    Attributes:
        indices: the training-set indices this rank trains on in the step, in order, int64
            ``(plan.local_batch,)``.
        offset: the position of ``indices[0]`` in the global batch (what
            :func:`augment_crop_flip` takes, so each row gets the global batch's draws).
        micro_batches: the positions in ``indices`` of each micro-batch, in the order they are
            trained: ``plan.accum_steps`` contiguous slices of ``plan.micro_batch``.
    """

    indices: torch.Tensor
    offset: int
    micro_batches: tuple[slice, ...]

    def micro_batch_indices(self) -> tuple[torch.Tensor, ...]:
        """The training-set indices of each micro-batch, in order."""
        return tuple(self.indices[part] for part in self.micro_batches)


def rank_train_batch(permutation: torch.Tensor, step_in_epoch: int, plan: BatchPlan, rank: int) -> RankBatch:
    """The samples rank ``rank`` trains on at optimizer step ``step_in_epoch`` of an epoch: the
    one place of the training data order after the permutation.

    Invariants (the trainer relies on them; ``G = plan.global_batch``, ``L = plan.local_batch``):

    - the global batch of step ``s`` is ``permutation[s * G:(s + 1) * G]``, whatever ``W``;
    - rank ``r`` takes its ``r``-th contiguous part, positions ``r * L`` to ``(r + 1) * L``, so
      the ranks' parts in rank order are the global batch: every sample of it is trained exactly
      once per step, by one rank, at every ``W``;
    - that part is trained in ``plan.accum_steps`` contiguous micro-batches of
      ``plan.micro_batch``, in order (the gradients are accumulated, synchronised once).

    Args:
        permutation: the epoch's order, :func:`epoch_permutation`.
        step_in_epoch: the optimizer step in the epoch, 0-based, below
            :func:`steps_per_epoch`.
        plan: the batch plan at this world size (:func:`plan_batch`).
        rank: this process's global rank, ``0 <= rank < plan.world_size``.
    """
    assert 0 <= rank < plan.world_size, (rank, plan.world_size)
    assert 0 <= step_in_epoch and (step_in_epoch + 1) * plan.global_batch <= permutation.shape[0]
    offset = rank * plan.local_batch
    start = step_in_epoch * plan.global_batch + offset
    micro_batches = tuple(
        slice(micro * plan.micro_batch, (micro + 1) * plan.micro_batch) for micro in range(plan.accum_steps)
    )
    return RankBatch(permutation[start:start + plan.local_batch], offset, micro_batches)


def augment_crop_flip(
    x: torch.Tensor, *, seed: int, epoch: int, step: int, global_batch: int, offset: int, pad: int = 4
) -> torch.Tensor:
    """Random crop (zero padding ``pad`` pixels) and horizontal flip, for CIFAR-10 training.

    The random crop offsets and flips are drawn for the whole global batch from a
    :class:`torch.Generator` seeded from ``(seed, epoch, step)``; ``x`` holds rows
    ``offset .. offset + len(x)`` of that global batch and gets exactly those rows' draws. The
    result is therefore the same as augmenting the whole global batch and slicing it, whatever
    the world size or micro-batch split.

    Args:
        x: images ``(n, C, H, W)`` (any float dtype and device), ``n <= global_batch - offset``.
        seed: the experiment seed.
        epoch: the epoch (1-based) the step belongs to.
        step: the optimizer step within the epoch (0-based).
        global_batch: samples in the global batch.
        offset: index of ``x[0]`` within the global batch.
        pad: zero padding on each side before cropping, in pixels.

    Returns:
        Augmented images, same shape, dtype and device as ``x``.
    """
    import torch

    n, channels, height, width = x.shape
    if offset < 0 or offset + n > global_batch:
        raise ValueError(f"rows {offset}..{offset + n} are outside the global batch of {global_batch}")
    generator = torch.Generator()
    generator.manual_seed(derive_seed(_AUGMENT_SALT, seed, epoch, step))
    dy = torch.randint(0, 2 * pad + 1, (global_batch,), generator=generator)[offset:offset + n]
    dx = torch.randint(0, 2 * pad + 1, (global_batch,), generator=generator)[offset:offset + n]
    flip = (torch.rand(global_batch, generator=generator) < 0.5)[offset:offset + n]
    device = x.device
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (dy[:, None] + torch.arange(height)[None, :]).to(device)  # (n, H)
    cols_base = torch.arange(width)
    cols = dx[:, None] + torch.where(flip[:, None], cols_base.flip(0)[None, :], cols_base[None, :])
    cols = cols.to(device)  # (n, W), reversed where flipped
    batch_index = torch.arange(n, device=device)[:, None, None, None]
    channel_index = torch.arange(channels, device=device)[None, :, None, None]
    return padded[batch_index, channel_index, rows[:, None, :, None], cols[:, None, None, :]]


def load_dataset(name: str, data_dir: str | None) -> Splits:
    """Load dataset ``name`` whole into memory.

    Args:
        name: ``"digits"`` (embedded, ``data_dir`` ignored), ``"cifar10"``, or a plug-in's
            import path ``"package.module:load"``.
        data_dir: for ``"cifar10"``, the folder holding ``cifar-10-batches-py/``; for a plug-in,
            what its ``load`` gets as ``data_dir``.

    Returns:
        :class:`Splits` with normalised float32 images. Digits: pixels / 16, then standardised
        with the training split's mean and standard deviation; shape ``(N, 1, 8, 8)``. CIFAR-10:
        pixels / 255, standardised per channel with :data:`CIFAR10_MEAN` / :data:`CIFAR10_STD`;
        shape ``(N, 3, 32, 32)``. A plug-in: its splits as it returned them (below).

    **A plug-in's contract** (``[data] dataset = "package.module:load"``): ``load`` is called
    once per launch on every rank (and once in the tuner, which checks the result and keeps
    only its shape), as ``load(data_dir=DATA_DIR)`` when it declares ``data_dir`` (the
    experiment's ``[data] data_dir``, absolute, or ``None``), else as ``load()``. It must return
    the same data every time (seed any split it draws with a fixed seed). It returns a dict
    with exactly these keys (the fields of :class:`Splits` it gives):

    - ``train_x``, ``val_x``, ``test_x``: inputs ``(N, *input_shape)``, torch tensors or NumPy
      arrays, the same sample shape and dtype in the three (floating point is converted to
      float32, integers such as token ids are kept);
    - ``train_y``, ``val_y``, ``test_y``: integer class labels ``(N,)`` in ``[0, num_classes)``
      (converted to int64), as many as the inputs;
    - ``num_classes``: an integer >= 2.

    Each split holds at least one sample; inputs should be normalised already (nothing is
    augmented). The built-in loop trains on ``train``, reports ``val_accuracy`` on ``val`` at
    every epoch, and ``test_accuracy`` on ``test`` at the end of each launch.

    Raises:
        ConfigError: unknown ``name``, ``"cifar10"`` without ``data_dir``, or a plug-in that
            does not resolve, or whose return breaks the contract (the field is
            ``data.dataset``, the message says what is wrong).
        DatasetNotFoundError: the CIFAR-10 folder is missing or incomplete.
    """
    if name == "digits":
        return _load_digits()
    if name == "cifar10":
        return _load_cifar10(data_dir)
    if is_import_path(name):
        return _load_plugin(name, data_dir)
    raise ConfigError("data.dataset", name,
                      f"one of {', '.join(DATASET_NAMES)}, or a plug-in's import path 'package.module:load'")


_PLUGIN_KEYS = ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y", "num_classes")


def _load_plugin(name: str, data_dir: str | None) -> Splits:
    """Call a plug-in's ``load`` as :func:`load_dataset` states and check what it returns."""
    import numpy as np
    import torch

    loader = dataset_loader(name)
    raw = loader.load(data_dir=data_dir) if loader.takes_data_dir else loader.load()

    def bad(problem: str) -> ConfigError:
        return ConfigError("data.dataset", name, f"{DATASET_CONTRACT} ({problem})")

    if not isinstance(raw, Mapping):
        raise bad(f"it returned a {type(raw).__name__}")
    missing = [k for k in _PLUGIN_KEYS if k not in raw]
    extra = sorted(str(k) for k in raw if k not in _PLUGIN_KEYS)
    if missing or extra:
        raise bad("; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                            + ([f"unknown {', '.join(extra)}"] if extra else [])))
    num_classes = raw["num_classes"]
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise bad(f"num_classes is {num_classes!r}")
    num_classes = int(num_classes)
    arrays: dict[str, torch.Tensor] = {}
    for key in _PLUGIN_KEYS[:-1]:
        value = raw[key]
        if not isinstance(value, (torch.Tensor, np.ndarray)):
            raise bad(f"{key} is a {type(value).__name__}")
        arrays[key] = torch.as_tensor(value)
    for split in ("train", "val", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.dim() < 1 or x.shape[0] < 1:
            raise bad(f"{split}_x has shape {tuple(x.shape)}: at least one sample (N, ...)")
        if x.is_floating_point():
            x = x.float()
        elif x.is_complex() or x.dtype == torch.bool:
            raise bad(f"{split}_x has dtype {x.dtype}: floating point or integers")
        if y.dim() != 1 or y.shape[0] != x.shape[0]:
            raise bad(f"{split}_y has shape {tuple(y.shape)}: ({x.shape[0]},), one label per sample "
                      f"of {split}_x")
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise bad(f"{split}_y has dtype {y.dtype}: integer class labels")
        y = y.long()
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= num_classes:
            raise bad(f"{split}_y holds labels {low}..{high}: labels in [0, num_classes) = "
                      f"[0, {num_classes})")
        arrays[f"{split}_x"], arrays[f"{split}_y"] = x.contiguous(), y.contiguous()
    train_x = arrays["train_x"]
    for split in ("val", "test"):
        x = arrays[f"{split}_x"]
        if x.shape[1:] != train_x.shape[1:] or x.dtype != train_x.dtype:
            raise bad(f"{split}_x has samples {tuple(x.shape[1:])} of {x.dtype}, train_x "
                      f"{tuple(train_x.shape[1:])} of {train_x.dtype}: the same in every split")
    shape = tuple(train_x.shape[1:])
    square = len(shape) == 3 and shape[1] == shape[2]
    return Splits(
        **arrays, num_classes=num_classes,
        in_channels=int(shape[0]) if square else None, image_size=int(shape[1]) if square else None,
        name=name, augment=False,
    )


# A plug-in dataset's shape, read once per process (the data itself is not kept).
_PLUGIN_SHAPES: dict[tuple[str, str | None], DatasetShape] = {}


def dataset_shape(name: str, data_dir: str | None = None) -> DatasetShape:
    """One sample's shape and dtype, the class count and the training samples of dataset
    ``name``: the built-ins' without loading them (digits ``(1, 8, 8)``, float32, 10 classes,
    1257; CIFAR-10 ``(3, 32, 32)``, float32, 10, 45000), a plug-in's by loading it once per
    process (:func:`load_dataset`; only the shape is kept).

    Raises:
        ConfigError: as :func:`load_dataset`.
    """
    if name == "digits":
        return DatasetShape((1, 8, 8), "float32", 10, 1797 - DIGITS_VAL_SIZE - DIGITS_TEST_SIZE)
    if name == "cifar10":
        return DatasetShape((3, 32, 32), "float32", 10, 50000 - CIFAR10_VAL_SIZE)
    if not is_import_path(name):
        raise ConfigError("data.dataset", name,
                          "digits, cifar10, or a plug-in's import path 'package.module:load'")
    key = (name, data_dir)
    if key not in _PLUGIN_SHAPES:
        splits = load_dataset(name, data_dir)
        dtype = str(splits.train_x.dtype).removeprefix("torch.")
        _PLUGIN_SHAPES[key] = DatasetShape(splits.input_shape, dtype, splits.num_classes, splits.num_train)
    return _PLUGIN_SHAPES[key]


def num_train_samples(name: str, data_dir: str | None = None) -> int:
    """Size of the training split of dataset ``name`` (1257 for digits, 45000 for CIFAR-10,
    without loading them; a plug-in's by :func:`dataset_shape`).

    Raises:
        ConfigError: unknown dataset, or as :func:`load_dataset` for a plug-in.
    """
    return dataset_shape(name, data_dir).num_train


def image_shape(name: str, data_dir: str | None = None) -> tuple[int, int, int]:
    """``(in_channels, image_size, num_classes)`` of dataset ``name``, without loading it
    (``(1, 8, 10)`` for digits, ``(3, 32, 10)`` for CIFAR-10; a plug-in's by
    :func:`dataset_shape`).

    Raises:
        ConfigError: unknown dataset, or a plug-in whose samples are not square images ``(C, H, H)``.
    """
    shape = dataset_shape(name, data_dir)
    s = shape.input_shape
    if len(s) != 3 or s[1] != s[2]:
        raise ConfigError("data.dataset", name,
                          f"a dataset of square images (C, H, H) here (its samples: {s})")
    return s[0], s[1], shape.num_classes


def digits_split_indices(num_samples: int = 1797) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices ``(train, val, test)`` into scikit-learn's digits arrays: disjoint, covering
    ``range(num_samples)``, drawn with :data:`DIGITS_SPLIT_SEED` (never the experiment seed).
    Sizes ``num_samples - 540``, 270, 270."""
    import torch

    generator = torch.Generator()
    generator.manual_seed(DIGITS_SPLIT_SEED)
    order = torch.randperm(num_samples, generator=generator)
    test_index = order[:DIGITS_TEST_SIZE]
    val_index = order[DIGITS_TEST_SIZE:DIGITS_TEST_SIZE + DIGITS_VAL_SIZE]
    train_index = order[DIGITS_TEST_SIZE + DIGITS_VAL_SIZE:]
    return train_index, val_index, test_index


def _digits_arrays() -> tuple[Any, Any]:
    """scikit-learn's digits as numpy arrays: images ``(1797, 8, 8)`` float64 in [0, 16] and
    labels ``(1797,)``.

    Reads ``sklearn/datasets/data/digits.csv.gz``, the file ``sklearn.datasets.load_digits``
    itself parses, without importing scikit-learn (that import costs over a second of every
    worker's start-up); falls back to ``load_digits`` when the file is not where expected.
    """
    import importlib.util

    import numpy as np

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data", "digits.csv.gz")
        if os.path.isfile(path):
            data = np.loadtxt(path, delimiter=",")
            if data.shape == (1797, 65):
                return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images, bunch.target


def _load_digits() -> Splits:
    import torch

    raw_images, raw_labels = _digits_arrays()
    images = torch.as_tensor(raw_images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    labels = torch.as_tensor(raw_labels, dtype=torch.int64)
    train_index, val_index, test_index = digits_split_indices(int(labels.shape[0]))
    mean = images[train_index].mean()
    std = images[train_index].std()
    images = (images - mean) / std
    return Splits(
        train_x=images[train_index].contiguous(), train_y=labels[train_index].contiguous(),
        val_x=images[val_index].contiguous(), val_y=labels[val_index].contiguous(),
        test_x=images[test_index].contiguous(), test_y=labels[test_index].contiguous(),
        num_classes=10, in_channels=1, image_size=8, name="digits", augment=False,
    )


def _cifar_missing(root: str, missing: list[str]) -> DatasetNotFoundError:
    folder = os.path.join(root, "cifar-10-batches-py")
    return DatasetNotFoundError(
        f"CIFAR-10 not found or incomplete: looked in {folder!r} (data.data_dir = {root!r}); missing or "
        "unreadable: "
        f"{', '.join(missing)}. data.data_dir must contain cifar-10-batches-py/ with "
        "data_batch_1 .. data_batch_5, "
        f"test_batch and batches.meta (the standard torchvision layout, the extracted "
        f"cifar-10-python.tar.gz). Nothing is downloaded: fetch and extract it there yourself."
    )


def check_cifar10_folder(data_dir: str | None) -> str:
    """Check, without reading the data, that ``data_dir`` holds CIFAR-10 in torchvision's layout.

    Returns:
        The absolute ``data_dir``.

    Raises:
        ConfigError: ``data_dir`` is not given.
        DatasetNotFoundError: ``data_dir/cifar-10-batches-py/`` lacks one of
            :data:`CIFAR10_FILES`; the message names the folder and the missing files.
    """
    if not data_dir:
        raise ConfigError("data.data_dir", data_dir,
                          "a folder containing cifar-10-batches-py/ (required for cifar10)")
    root = os.path.abspath(os.path.expanduser(data_dir))
    folder = os.path.join(root, "cifar-10-batches-py")
    missing = [f"cifar-10-batches-py/{file}" for file in CIFAR10_FILES
               if not os.path.isfile(os.path.join(folder, file))]
    if missing:
        raise _cifar_missing(root, missing)
    return root


def check_cifar10_integrity(data_dir: str | None) -> str:
    """:func:`check_cifar10_folder`, then the integrity check the loader's dataset class runs,
    without loading the images: for a folder carrying the synthetic marker, the marker's sizes
    and SHA-256s (:func:`seer_torch.cifar_synthetic.verify_synthetic_folder`); otherwise
    torchvision's MD5s of the real release (every batch file and ``batches.meta``, as
    ``torchvision.datasets.CIFAR10`` checks them). Reads every file once (about 0.5 s for the
    real 178 MB).

    Returns:
        The absolute ``data_dir``.

    Raises:
        ConfigError: ``data_dir`` is not given.
        DatasetNotFoundError: a file is missing, or one fails the check (the message names the
            folder, and says "corrupted").
    """
    root = check_cifar10_folder(data_dir)
    from seer_torch.cifar_synthetic import is_synthetic_cifar10, verify_synthetic_folder

    if is_synthetic_cifar10(root):
        ok, what = verify_synthetic_folder(root), "the sizes and SHA-256s its SYNTHETIC.json records"
    else:
        from torchvision.datasets import CIFAR10
        from torchvision.datasets.utils import check_integrity

        files = [*CIFAR10.train_list, *CIFAR10.test_list, (CIFAR10.meta["filename"], CIFAR10.meta["md5"])]
        ok = all(check_integrity(os.path.join(root, CIFAR10.base_folder, name), md5) for name, md5 in files)
        what = "the MD5s of the CIFAR-10 release"
    if not ok:
        raise _cifar_missing(root,
                             [f"a readable, uncorrupted copy (the files do not match {what}: corrupted)"])
    return root


def _load_cifar10(data_dir: str | None) -> Splits:
    root = check_cifar10_folder(data_dir)

    import torch

    from seer_torch.cifar_synthetic import cifar10_dataset_class

    # torchvision's CIFAR10 (MD5 of the real release checked), or for a folder carrying the
    # synthetic marker a subclass that checks the marker's SHA-256s instead (and says SYNTHETIC).
    CIFAR10 = cifar10_dataset_class(root)
    try:
        train = CIFAR10(root=root, train=True, download=False)
        test = CIFAR10(root=root, train=False, download=False)
    except (RuntimeError, OSError, ValueError) as error:  # torchvision: "Dataset not found or corrupted"
        raise _cifar_missing(root, [f"a readable, uncorrupted copy ({error})"]) from error

    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

    def to_tensor(data: object) -> torch.Tensor:  # uint8 (N, 32, 32, 3) -> float32 (N, 3, 32, 32)
        images = torch.as_tensor(data).permute(0, 3, 1, 2).float().div_(255.0)
        return ((images - mean) / std).contiguous()

    train_x = to_tensor(train.data)
    train_y = torch.as_tensor(train.targets, dtype=torch.int64)
    split = train_y.shape[0] - CIFAR10_VAL_SIZE
    return Splits(
        train_x=train_x[:split].contiguous(), train_y=train_y[:split].contiguous(),
        val_x=train_x[split:].contiguous(), val_y=train_y[split:].contiguous(),
        test_x=to_tensor(test.data), test_y=torch.as_tensor(test.targets, dtype=torch.int64),
        num_classes=10, in_channels=3, image_size=32, name="cifar10", augment=True,
    )


__all__ = [
    "BatchPlan", "DATASET_NAMES", "DatasetShape", "Splits", "augment_crop_flip", "check_cifar10_folder",
    "check_cifar10_integrity", "derive_seed", "digits_split_indices",
    "RankBatch", "dataset_shape", "epoch_permutation", "image_shape", "load_dataset", "num_train_samples",
    "plan_batch", "rank_slice", "rank_train_batch", "steps_per_epoch",
]
