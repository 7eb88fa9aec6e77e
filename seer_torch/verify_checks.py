"""The judgement of ``seer verify`` (pure: no files, no processes, no clock): what one training
script left at two world sizes, compared check by check, each failure with its likely cause.

Implementation notes. :mod:`seer_torch.verify` runs the script three times with one
configuration, seed and global batch, and hands this module what each launch left
(:class:`LaunchEvidence`):

- ``ref``: ``W = 1``, epochs ``1..E`` in one launch: the reference curve;
- ``wide``: ``W = W2`` (2 by default), epochs ``1..K``, a fresh trial;
- ``resumed``: ``W = 1``, epochs ``K+1..E``, from ``wide``'s checkpoint (saved at ``W2``,
  loaded at 1), to be compared with ``ref`` at the same epochs.

The evidence of a launch: the metrics it reported per epoch; the script's state (what its
checkpoint function returns: model, optimizer, ...) before its first epoch and after each one;
and, when the script takes its batches from ``t.train_batches``, each rank's sample indices per
step (with the step's learning rate when the trial knows it).

Each cause has its own signature, so that a failure names one:

- *initial weights differ*: the states before epoch 1 differ (a model built from an unseeded
  RNG, or before ``trial.init()`` seeds torch);
- *order drawn per rank* / *global batch depends on W*: a step's samples, over the ranks,
  differ from the ``W = 1`` step's (recorded), or no records and the weights differ with the
  same learning rate, losses of the same scale and updates of the same size; *random draws per
  rank*: the same, but the records show ``W = 1``'s samples at every step (dropout or
  augmentation drawn per rank);
- *learning rate scaled by W*: the optimizer's learning rate (per step when recorded, else in
  the state after each epoch) at ``W2`` is ``W2`` times ``W = 1``'s. A resume hides an LR
  scaled in the optimizer's constructor (``load_state_dict`` restores the saved one), which is
  why ``wide`` starts fresh at ``W2``;
- *loss scaled by W*: a reported loss at ``W2`` is ``W2`` (or ``1/W2``) times ``W = 1``'s.
  With Adam a scaled loss barely moves the weights (its update is invariant to the gradient's
  scale, up to ``eps``), so the signature is the reported loss or Adam's moments (``exp_avg``
  ``W2`` times, ``exp_avg_sq`` ``W2**2`` times ``W = 1``'s); with SGD the updates (and the
  momentum) grow ``W2``-fold at an unchanged learning rate, which the update ratio shows;
- *BatchNorm statistics depend on W*: only BatchNorm's running statistics differ (at ``W > 1``
  they follow rank 0's micro-batches only), or the model has BatchNorm and its micro-batch at
  ``W2`` is not ``W = 1``'s (its batch statistics change);
- *evaluation padding*: the weights agree, yet an evaluation metric differs (by other than a
  factor ``W2``): samples counted twice or dropped when the validation set does not split
  evenly over the ranks;
- *checkpoint depends on W*: the ``W = 1`` launch cannot load ``wide``'s checkpoint, loads
  other weights than were saved, or the state was saved from the DDP wrapper (``module.`` keys);
- *optimizer state not saved* / *not restored*: the state holds no optimizer (no state dict with
  ``param_groups``), or the optimizer ``resumed`` holds after loading is not the one ``wide``
  saved; then ``resumed`` drifts from ``ref``;
- *training state not restored*: all of that agrees and still ``resumed`` drifts from ``ref``
  (an RNG, a scheduler or a counter that the checkpoint does not carry).

Tolerances (:class:`Tolerances`) are relative: the same samples in the same order at any ``W``
change only the order of float32 sums (micro-batch means divided by ``accum_steps`` at ``W = 1``,
the all-reduce average at ``W > 1``), about 1e-7 relative per step; a few epochs of Adam or SGD
keep that below 1e-5 (tests/integration/test_user_script.py), while one changed sample, a
missing optimizer state or a learning rate off by a factor moves weights and losses by 1e-3 or
more.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "CAUSES", "Check", "FlatState", "LaunchEvidence", "Tolerances", "causes_of", "epoch_span",
    "flatten_state", "judge",
]

INIT_DIFFERS = "initial weights differ"
ORDER_PER_RANK = "order drawn per rank"
RANDOM_PER_RANK = "random draws per rank"
BATCHNORM = "BatchNorm statistics depend on W"
GLOBAL_BATCH = "global batch depends on W"
LR_SCALED = "learning rate scaled by W"
LOSS_SCALED = "loss scaled by W"
EVAL_PADDING = "evaluation padding"
CHECKPOINT_W = "checkpoint depends on W"
OPTIMIZER_NOT_SAVED = "optimizer state not saved"
OPTIMIZER_NOT_RESTORED = "optimizer state not restored"
STATE_NOT_RESTORED = "training state not restored"
SCRIPT_FAILS = "the script fails at W>1"
#: Every cause :func:`judge` names, with what it means (docs/commands.md lists them too).
CAUSES: dict[str, str] = {
    INIT_DIFFERS: "the model starts from other weights in another launch (built from an unseeded RNG, "
                  "or before trial.init() seeds torch)",
    ORDER_PER_RANK: "a step trains other samples at W>1 (each rank draws its own order or shard, or "
                    "its own random draws)",
    RANDOM_PER_RANK: "each step trains W=1's samples (recorded), yet the weights differ: random draws that "
                     "depend on the rank (dropout or augmentation; verify with them off), or samples other "
                     "than t.train_batches hands",
    BATCHNORM: "BatchNorm normalizes over one rank's micro-batch, which shrinks as W grows unless "
               "training.micro_batch_max fixes it (global_batch / the largest W), and its running "
               "statistics, which evaluation uses, see only rank 0's micro-batches at W>1 (DDP keeps "
               "rank 0's buffers): recompute them before evaluating, or use a norm without batch "
               "statistics (GroupNorm, LayerNorm)",
    GLOBAL_BATCH: "a step trains another number of samples at W>1 (the batch per rank is fixed, not "
                  "the global batch)",
    LR_SCALED: "the optimizer's learning rate changes with W (multiplied by W, say)",
    LOSS_SCALED: "the loss (or its gradient) is multiplied or divided by W",
    EVAL_PADDING: "evaluation counts some samples twice or drops some at W>1 (padding to an even "
                  "split, or drop_last)",
    CHECKPOINT_W: "a checkpoint saved at one W does not load, or loads other weights, at another W "
                  "(saved from the DDP wrapper, say)",
    OPTIMIZER_NOT_SAVED: "the checkpoint holds no optimizer state: a resumed trial restarts Adam's "
                         "moments or SGD's momentum",
    OPTIMIZER_NOT_RESTORED: "the checkpoint holds the optimizer state but the script does not load it",
    STATE_NOT_RESTORED: "a resumed trial drifts although weights and optimizer were restored (an RNG, "
                        "a scheduler or a counter not in the checkpoint)",
    SCRIPT_FAILS: "the script runs at W=1 but crashes at W>1",
}

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class Tolerances:
    """What counts as equal, and as "``W`` times" (see the module docstring for the sizes).

    Attributes:
        param_rtol: a tensor agrees when its largest difference is at most this fraction of
            its largest magnitude (weights, buffers, optimizer tensors).
        metric_rtol, metric_atol: a reported number agrees when ``|a - b| <= atol + rtol |b|``.
        lr_rtol: learning rates agree within this fraction.
        scale_rtol: a ratio is "``W``" when within this fraction of ``W`` (or of ``1/W``).
        update_rtol: an update ratio (``|Δw at W2| / |Δw at 1|``) is "``W``" within this fraction.
        update_min_cosine: ... and only when the two updates point the same way (cosine above).
    """

    param_rtol: float = 1e-4
    metric_rtol: float = 1e-4
    metric_atol: float = 1e-7
    lr_rtol: float = 1e-6
    scale_rtol: float = 0.05
    update_rtol: float = 0.3
    update_min_cosine: float = 0.9


@dataclass(frozen=True)
class FlatState:
    """A script's state flattened: ``values`` maps a dotted path (``"model.0.weight"``,
    ``"optimizer.param_groups.0.lr"``) to a tensor, number, string or ``None``; ``optimizers``
    are the paths of the optimizer state dicts in it (dicts with ``state`` and ``param_groups``)."""

    values: Mapping[str, Any]
    optimizers: tuple[str, ...] = ()

    def _in_optimizer(self, key: str) -> bool:
        return any(key == p or key.startswith(p + ".") for p in self.optimizers)

    def parameters(self) -> dict[str, torch.Tensor]:
        """Floating-point tensors outside the optimizers: weights and buffers."""
        return {k: v for k, v in self.values.items() if isinstance(v, torch.Tensor)
                and v.is_floating_point() and not self._in_optimizer(k)}

    def optimizer_tensors(self) -> dict[str, torch.Tensor]:
        """Floating-point tensors inside the optimizers (Adam's moments, SGD's momentum)."""
        return {k: v for k, v in self.values.items() if isinstance(v, torch.Tensor)
                and v.is_floating_point() and self._in_optimizer(k)}

    def optimizer_values(self) -> dict[str, Any]:
        """Everything inside the optimizers (moments, step counts, hyperparameters)."""
        return {k: v for k, v in self.values.items() if self._in_optimizer(k)}

    def learning_rates(self) -> dict[str, float]:
        """``PATH.param_groups.I.lr`` of each optimizer: the learning rate of each group."""
        return {k: float(v) for k, v in self.optimizer_values().items()
                if k.endswith(".lr") and ".param_groups." in k and _is_number(v)}


def flatten_state(state: Any, prefix: str = "") -> FlatState:
    """``state`` (dicts, lists and tuples of tensors and numbers, as ``torch.load`` returns a
    checkpoint) as a :class:`FlatState`. Tensors are detached and moved to the CPU."""
    values: dict[str, Any] = {}
    optimizers: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, Mapping):
            if "state" in node and "param_groups" in node:
                optimizers.append(path)
            for key, item in node.items():
                walk(item, f"{path}.{key}" if path else str(key))
        elif isinstance(node, (list, tuple)) and not isinstance(node, torch.Size):
            for i, item in enumerate(node):
                walk(item, f"{path}.{i}" if path else str(i))
        elif isinstance(node, torch.Tensor):
            values[path] = node.detach().cpu()
        else:
            values[path] = node

    walk(state, prefix)
    return FlatState(values, tuple(optimizers))


@dataclass(frozen=True)
class LaunchEvidence:
    """What one launch left.

    Attributes:
        name: ``"ref"``, ``"wide"`` or ``"resumed"``.
        world_size: its ``W``.
        start_epoch: the epochs its checkpoint held when it started (0: fresh).
        until_epoch: the last epoch it trained.
        metrics: epoch -> the script's own metrics reported for it (numbers).
        states: epoch -> the script's state then (``start_epoch`` is the state before the
            launch's first epoch: as built, or as loaded); may lack epochs.
        steps: ``(epoch, step_in_epoch)`` -> rank -> the sample indices that rank trained;
            ``None`` when nothing was recorded (the script does not use ``t.train_batches``).
        step_lr: ``(epoch, step_in_epoch)`` -> the learning rate of that step, when recorded.
        micro_batch: samples one rank puts through the model at once, when known.
    """

    name: str
    world_size: int
    start_epoch: int
    until_epoch: int
    metrics: Mapping[int, Mapping[str, float]] = field(default_factory=dict)
    states: Mapping[int, FlatState] = field(default_factory=dict)
    steps: Mapping[tuple[int, int], Mapping[int, tuple[int, ...]]] | None = None
    step_lr: Mapping[tuple[int, int], float] | None = None
    micro_batch: int | None = None


@dataclass(frozen=True)
class Check:
    """One row of the verdict: ``status`` is ``"pass"``, ``"fail"`` or ``"skip"`` (not judged:
    ``detail`` says why); ``cause`` is a key of :data:`CAUSES` when it failed."""

    name: str
    status: str
    detail: str
    cause: str | None = None


def causes_of(checks: Iterable[Check]) -> list[str]:
    """The causes the failed checks name, each once, in the order of the checks."""
    found: list[str] = []
    for check in checks:
        if check.status == FAIL and check.cause and check.cause not in found:
            found.append(check.cause)
    return found


# --- comparisons ----------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _close(a: float, b: float, rtol: float, atol: float = 0.0) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= atol + rtol * abs(b)


def _near_factor(ratio: float, factor: float, rtol: float) -> bool:
    """``ratio`` is ``factor`` or ``1 / factor`` within ``rtol``."""
    return any(abs(ratio - f) <= rtol * f for f in (factor, 1.0 / factor))


def _tensor_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest ``|a - b|`` over ``b``'s largest magnitude; ``inf`` for other shapes."""
    if a.shape != b.shape:
        return math.inf
    if a.numel() == 0:
        return 0.0
    diff = (a.double() - b.double()).abs().max().item()
    scale = b.double().abs().max().item()
    return diff / scale if scale > 0 else (0.0 if diff == 0 else math.inf)


def _worst(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> tuple[str, float]:
    """The tensor that differs most (relative, :func:`_tensor_difference`) and by how much;
    a key in one and not the other differs infinitely."""
    worst_key, worst = "", 0.0
    for key in sorted(set(a) | set(b)):
        d = _tensor_difference(a[key], b[key]) if key in a and key in b else math.inf
        if d > worst or not worst_key:
            worst_key, worst = key, d
    return worst_key, worst


def _same_values(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[bool, str]:
    """Whether two flattened trees hold the same keys and bit-equal values; else the first key
    that differs."""
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            return False, key
        x, y = a[key], b[key]
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape
                    and torch.equal(x, y)):
                return False, key
        elif x != y and not (isinstance(x, float) and isinstance(y, float)
                             and math.isnan(x) and math.isnan(y)):
            return False, key
    return True, ""


def _flat_update(after: Mapping[str, torch.Tensor], before: Mapping[str, torch.Tensor]) -> torch.Tensor:
    keys = sorted(k for k in set(after) & set(before) if not _is_batchnorm_statistic(k))  # weights only
    parts = [(after[k].double() - before[k].double()).reshape(-1)
             for k in keys if after[k].shape == before[k].shape]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)


@dataclass
class _Facts:
    """What the comparisons found, shared by the checks that name causes."""

    w: int
    tol: Tolerances
    init_equal: bool | None = None
    order: str | None = None  # None: not recorded; "same", ORDER_PER_RANK or GLOBAL_BATCH
    order_detail: str = ""
    lr_wide: str | None = None  # None: not seen; "same" or a description of the difference
    lr_wide_scaled: bool = False
    lr_resumed: str | None = None
    lr_detail: str = ""
    scaled_metrics: list[str] = field(default_factory=list)  # "name at epoch e: ratio"
    other_metrics: list[str] = field(default_factory=list)
    metrics_compared: int = 0
    params_equal: bool | None = None  # weights and optimizer, wide vs ref at their common epochs >= 1
    weights_equal: bool | None = None  # the model's tensors (weights and buffers) alone
    only_batchnorm_differs: bool = False  # every model tensor but BatchNorm's running statistics agrees
    batchnorm_micro_batch: str = ""  # BatchNorm in the model and another micro-batch at W2: how
    gradient_scaled: bool = False  # the optimizer's moments at W2 are W2 (or W2**2) times W=1's
    params_detail: str = ""
    update_ratio: float | None = None
    update_cosine: float | None = None
    eval_differs: list[str] = field(default_factory=list)  # metric differences at equal weights
    eval_compared: int = 0

    def w_cause(self) -> str | None:
        """The likely cause of ``wide`` differing from ``ref`` (signatures in priority order)."""
        if self.init_equal is False:
            return INIT_DIFFERS
        if self.order in (ORDER_PER_RANK, GLOBAL_BATCH):
            return self.order
        if self.lr_wide not in (None, "same"):
            return LR_SCALED
        if self.scaled_metrics or self.gradient_scaled:
            return LOSS_SCALED
        if self.params_equal is False:
            if self.only_batchnorm_differs:
                return BATCHNORM
            if (self.update_ratio is not None and self.update_cosine is not None
                    and self.update_cosine >= self.tol.update_min_cosine
                    and abs(self.update_ratio - self.w) <= self.tol.update_rtol * self.w):
                # updates W times larger at the same learning rate: the gradient is W times larger
                return LOSS_SCALED if self.lr_wide == "same" else LR_SCALED
            if self.batchnorm_micro_batch:
                return BATCHNORM
            return RANDOM_PER_RANK if self.order == "same" else ORDER_PER_RANK
        if self.eval_differs:
            return EVAL_PADDING
        return None


def _metric_pairs(run: LaunchEvidence, ref: LaunchEvidence) -> list[tuple[int, str, float, float]]:
    """``(epoch, name, run's value, ref's value)`` for each metric both reported at an epoch
    ``run`` trained."""
    pairs = []
    for epoch in range(run.start_epoch + 1, run.until_epoch + 1):
        mine, theirs = run.metrics.get(epoch, {}), ref.metrics.get(epoch, {})
        for name in sorted(set(mine) & set(theirs)):
            pairs.append((epoch, name, float(mine[name]), float(theirs[name])))
    return pairs


def _common_epochs(run: LaunchEvidence, ref: LaunchEvidence, first: int) -> list[int]:
    return sorted(e for e in set(run.states) & set(ref.states) if e >= first)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def epoch_span(first: int, last: int) -> str:
    """``"epoch 2"`` or ``"epochs 1-3"``."""
    return f"epoch {first}" if first == last else f"epochs {first}-{last}"


# --- the checks -----------------------------------------------------------------------------------


def judge(ref: LaunchEvidence, wide: LaunchEvidence | None, resumed: LaunchEvidence | None, *,
          global_batch: int, wide_error: str | None = None, resumed_error: str | None = None,
          tol: Tolerances = Tolerances()) -> list[Check]:
    """The checks of ``seer verify`` over the three launches (module docstring).

    Args:
        ref: the ``W = 1`` launch over epochs ``1..E``.
        wide: the fresh launch at ``W2`` over ``1..K``; ``None`` when it failed (``wide_error``
            says how: the end of its stderr).
        resumed: the ``W = 1`` launch over ``K+1..E`` from ``wide``'s checkpoint; ``None``
            when it failed (``resumed_error``) or did not run.
        global_batch: samples per optimizer step.
        tol: what counts as equal.

    Returns:
        One :class:`Check` per row, in this order: launches, initial weights, data order and
        global batch, learning rate, losses and metrics, parameters, evaluation, checkpoint at
        another W, resume restores the state.
    """
    w = wide.world_size if wide is not None else 0
    ran = [f"W=1 {epoch_span(1, ref.until_epoch)}"]
    if wide is not None:
        ran.append(f"W={w} {epoch_span(1, wide.until_epoch)}")
    if resumed is not None:
        ran.append(f"W=1 {epoch_span(resumed.start_epoch + 1, resumed.until_epoch)} from the W={w} "
                   "checkpoint")
    launches = Check("launches", PASS, "; ".join(ran))
    if wide is None:
        reason = "not judged: the script failed at W>1"
        return [Check("launches", FAIL, f"the script runs at W=1 but fails at W>1: {wide_error or '?'}",
                      SCRIPT_FAILS)] + [Check(name, SKIP, reason) for name in _ROWS[1:]]
    facts = _Facts(w, tol)
    init = _check_init(ref, wide, facts, tol)
    order = _check_order(ref, wide, resumed, facts, global_batch)
    lr = _check_lr(ref, wide, resumed, facts, tol)
    metric_rows = _compare_metrics(ref, wide, facts, tol)
    params = _check_params(ref, wide, facts, tol)
    _find_eval_differences(ref, wide, facts, tol, metric_rows)
    cause = facts.w_cause()  # every comparison of wide with ref is in: the cause they point to
    if params.status == FAIL:
        params = dataclasses.replace(params, cause=cause)
    return [launches, init, order, lr, _check_metrics(facts, cause), params, _check_eval(facts),
            _check_checkpoint(wide, resumed, resumed_error), _check_resume(ref, wide, resumed, facts, tol)]


_ROWS = ("launches", "initial weights", "data order and global batch", "learning rate", "losses and metrics",
         "parameters", "evaluation", "checkpoint at another W", "resume restores the state")


def _check_init(ref: LaunchEvidence, wide: LaunchEvidence, facts: _Facts, tol: Tolerances) -> Check:
    name = "initial weights"
    a, b = wide.states.get(0), ref.states.get(0)
    if a is None or b is None:
        return Check(name, SKIP, "no state before epoch 1 (the script gives t.epochs() no checkpoint "
                                 "function)")
    key, worst = _worst(a.parameters(), b.parameters())
    facts.init_equal = worst <= tol.param_rtol
    if facts.init_equal:
        return Check(name, PASS, f"W={wide.world_size} starts from W=1's weights "
                                 f"({len(b.parameters())} tensors)")
    return Check(name, FAIL, f"W={wide.world_size} starts from other weights ({key}: {_fmt(worst)} relative)",
                 INIT_DIFFERS)


def _check_order(ref: LaunchEvidence, wide: LaunchEvidence, resumed: LaunchEvidence | None, facts: _Facts,
                 global_batch: int) -> Check:
    name = "data order and global batch"
    if ref.steps is None or wide.steps is None:
        return Check(name, SKIP, "not recorded: the script does not take its batches from t.train_batches "
                                 "(its order is judged by the parameters)")
    runs = [run for run in (wide, resumed) if run is not None and run.steps is not None]
    compared, problems = 0, []
    for run in runs:
        ref_keys = {k for k in ref.steps if run.start_epoch < k[0] <= run.until_epoch}
        if set(run.steps) != ref_keys:
            problems.append((GLOBAL_BATCH, f"W={run.world_size} trained {len(run.steps)} steps in "
                                           f"{epoch_span(run.start_epoch + 1, run.until_epoch)}, W=1 "
                                           f"{len(ref_keys)}"))
            continue
        for key in sorted(run.steps):
            ranks = run.steps[key]
            union = [i for r in sorted(ranks) for i in ranks[r]]
            expected = [i for r in sorted(ref.steps[key]) for i in ref.steps[key][r]]
            compared += 1
            if sorted(ranks) != list(range(run.world_size)):
                problems.append((ORDER_PER_RANK, f"epoch {key[0]} step {key[1]}: ranks {sorted(ranks)} "
                                                 f"recorded at W={run.world_size}"))
            elif len(union) != global_batch:
                problems.append((GLOBAL_BATCH, f"epoch {key[0]} step {key[1]}: {len(union)} samples at "
                                               f"W={run.world_size}, the global batch is {global_batch}"))
            elif union != expected:
                other = len(set(union) - set(expected))
                problems.append((ORDER_PER_RANK, f"epoch {key[0]} step {key[1]}: at W={run.world_size} "
                                                 f"{other} of the {len(union)} samples are not W=1's"
                                 if other else f"epoch {key[0]} step {key[1]}: W={run.world_size} trains "
                                               "W=1's samples in another order"))
            if problems:
                break
        if problems:
            break
    if problems:
        facts.order, facts.order_detail = problems[0]
        return Check(name, FAIL, problems[0][1], problems[0][0])
    facts.order = "same"
    return Check(name, PASS, f"{compared} steps at W={wide.world_size} and resumed: each step's samples over "
                             f"the ranks are W=1's, {global_batch} a step")


def _check_lr(ref: LaunchEvidence, wide: LaunchEvidence, resumed: LaunchEvidence | None, facts: _Facts,
              tol: Tolerances) -> Check:
    """Learning rates per step when recorded, else the optimizers' in the states per epoch."""
    name = "learning rate"
    per_step = ref.step_lr is not None and wide.step_lr is not None

    def pairs(run: LaunchEvidence) -> list[tuple[str, float, float]]:
        if per_step and run.step_lr is not None:
            return [(f"epoch {k[0]} step {k[1]}", lr, ref.step_lr[k])  # type: ignore[index]
                    for k, lr in sorted(run.step_lr.items()) if k in ref.step_lr]  # type: ignore[operator]
        out = []
        for epoch in _common_epochs(run, ref, run.start_epoch):
            mine, theirs = run.states[epoch].learning_rates(), ref.states[epoch].learning_rates()
            out += [(f"epoch {epoch} {k}", mine[k], theirs[k]) for k in sorted(set(mine) & set(theirs))]
        return out

    def differing(items: list[tuple[str, float, float]]) -> list[tuple[str, float, float]]:
        return [(where, a, b) for where, a, b in items if not _close(a, b, tol.lr_rtol)]

    wide_pairs = pairs(wide)
    resumed_pairs = pairs(resumed) if resumed is not None else []
    if not wide_pairs:
        return Check(name, SKIP, "no learning rate seen: the state holds no optimizer and no step "
                                 "recorded one")
    source = "per step" if per_step else "in the optimizer's state after each epoch"
    bad = differing(wide_pairs)
    if bad:
        where, a, b = bad[0]
        ratio = a / b if b else math.inf
        facts.lr_wide = f"{where}: {_fmt(a)} at W={wide.world_size}, {_fmt(b)} at W=1"
        facts.lr_wide_scaled = _near_factor(ratio, wide.world_size, tol.scale_rtol)
        scaled = f" ({_fmt(ratio)} times)" if math.isfinite(ratio) else ""
        return Check(name, FAIL, f"{facts.lr_wide}{scaled}", LR_SCALED)
    facts.lr_wide = "same"
    bad = differing(resumed_pairs)
    if bad:
        where, a, b = bad[0]
        facts.lr_resumed = f"{where}: {_fmt(a)} resumed, {_fmt(b)} uninterrupted"
        return Check(name, FAIL, f"after the resume {facts.lr_resumed} (a scheduler not restored?)",
                     STATE_NOT_RESTORED)
    facts.lr_resumed = "same"
    return Check(name, PASS, f"{len(wide_pairs) + len(resumed_pairs)} learning rates {source} equal W=1's")


def _compare_metrics(ref: LaunchEvidence, wide: LaunchEvidence, facts: _Facts,
                     tol: Tolerances) -> list[tuple[int, str, float, float, bool]]:
    """``wide``'s metrics against ``ref``'s: ``(epoch, name, a, b, agrees)``; fills the facts
    about metrics scaled by ``W`` and other differences."""
    rows = []
    for epoch, metric, a, b in _metric_pairs(wide, ref):
        agrees = _close(a, b, tol.metric_rtol, tol.metric_atol)
        rows.append((epoch, metric, a, b, agrees))
        facts.metrics_compared += 1
        if agrees:
            continue
        ratio = a / b if b else math.inf
        text = f"{metric} at epoch {epoch}: {_fmt(a)} at W={wide.world_size}, {_fmt(b)} at W=1"
        if math.isfinite(ratio) and _near_factor(ratio, wide.world_size, tol.scale_rtol):
            facts.scaled_metrics.append(f"{text} ({_fmt(ratio)} times)")
        else:
            facts.other_metrics.append(text)
    return rows


def _check_metrics(facts: _Facts, cause: str | None) -> Check:
    name = "losses and metrics"
    if not facts.metrics_compared:
        return Check(name, SKIP, "no metric reported at both W")
    if facts.scaled_metrics:
        return Check(name, FAIL, facts.scaled_metrics[0], LOSS_SCALED)
    if facts.other_metrics:
        return Check(name, FAIL, facts.other_metrics[0], cause)
    return Check(name, PASS, f"{facts.metrics_compared} values over the W={facts.w} epochs equal W=1's")


def _check_params(ref: LaunchEvidence, wide: LaunchEvidence, facts: _Facts, tol: Tolerances) -> Check:
    name = "parameters"
    epochs = _common_epochs(wide, ref, 1)
    if not epochs:
        return Check(name, SKIP, "no state of both after the same epoch (the script gives t.epochs() no "
                                 "checkpoint function)")
    facts.weights_equal = all(
        _worst(wide.states[e].parameters(), ref.states[e].parameters())[1] <= tol.param_rtol for e in epochs)
    for epoch in epochs:
        mine, theirs = wide.states[epoch], ref.states[epoch]
        key, worst = _worst(mine.parameters(), theirs.parameters())
        moment_key, moment_worst = _worst(mine.optimizer_tensors(), theirs.optimizer_tensors())
        if worst > tol.param_rtol or moment_worst > tol.param_rtol:
            facts.params_equal = False
            facts.params_detail = (f"after epoch {epoch} {key} differs by {_fmt(worst)} relative"
                                   if worst > tol.param_rtol else
                                   f"after epoch {epoch} the weights agree, the optimizer's {moment_key} "
                                   f"differs by {_fmt(moment_worst)} relative")
            ratios = _moment_ratios(mine.optimizer_tensors(), theirs.optimizer_tensors(), tol)
            facts.gradient_scaled = _gradient_scaled(ratios, wide.world_size, tol.update_rtol)
            if facts.gradient_scaled:
                shown = ", ".join(f"{r:.2f}" for r in sorted(ratios)[:: max(len(ratios) // 4, 1)])
                facts.params_detail += f"; the optimizer's moments are {shown} times W=1's"
            first = min(epochs)
            if facts.init_equal and 0 in wide.states and 0 in ref.states:
                a = _flat_update(wide.states[first].parameters(), wide.states[0].parameters())
                b = _flat_update(ref.states[first].parameters(), ref.states[0].parameters())
                if a.numel() and a.norm() > 0 and b.norm() > 0:
                    facts.update_ratio = float(a.norm() / b.norm())
                    facts.update_cosine = float(a @ b / (a.norm() * b.norm()))
                    facts.params_detail += (f"; epoch {first}'s update is {facts.update_ratio:.2f} times "
                                            f"W=1's (cosine {facts.update_cosine:.3f})")
            _batchnorm_facts(mine, theirs, ref, wide, facts, tol)
            return Check(name, FAIL, facts.params_detail)
    facts.params_equal = True
    return Check(name, PASS, f"after epoch{'s' if len(epochs) > 1 else ''} {', '.join(map(str, epochs))} "
                             f"every weight and optimizer tensor within {tol.param_rtol:g} relative of W=1's")


def _is_batchnorm_statistic(key: str) -> bool:
    return key.endswith((".running_mean", ".running_var"))


def _batchnorm_facts(mine: FlatState, theirs: FlatState, ref: LaunchEvidence, wide: LaunchEvidence,
                     facts: _Facts, tol: Tolerances) -> None:
    """For a model with BatchNorm whose state differs at ``W2``: whether only its running
    statistics differ, or its micro-batch changed with ``W``."""
    if not any(_is_batchnorm_statistic(k) for k in theirs.parameters()):
        return

    def rest(state: FlatState) -> dict[str, torch.Tensor]:
        return {k: v for k, v in state.parameters().items() if not _is_batchnorm_statistic(k)}

    others_agree = _worst(rest(mine), rest(theirs))[1] <= tol.param_rtol
    moments_agree = _worst(mine.optimizer_tensors(), theirs.optimizer_tensors())[1] <= tol.param_rtol
    if others_agree and moments_agree:
        facts.only_batchnorm_differs = True
        facts.params_detail += (f"; only BatchNorm's running statistics differ (at W={wide.world_size} "
                                "they see rank 0's micro-batches only)")
    elif wide.micro_batch and ref.micro_batch and wide.micro_batch != ref.micro_batch:
        facts.batchnorm_micro_batch = (f"BatchNorm normalizes over micro-batches of {ref.micro_batch} at W=1 "
                                       f"and {wide.micro_batch} at W={wide.world_size}")
        facts.params_detail += "; " + facts.batchnorm_micro_batch


def _moment_ratios(mine: Mapping[str, torch.Tensor], theirs: Mapping[str, torch.Tensor],
                   tol: Tolerances) -> list[float]:
    """``|mine| / |theirs|`` of each optimizer tensor that differs (beyond ``param_rtol``)."""
    ratios = []
    for key in sorted(set(mine) & set(theirs)):
        a, b = mine[key].double(), theirs[key].double()
        differs = a.shape == b.shape and a.numel() > 1 and _tensor_difference(a, b) > tol.param_rtol
        if differs and b.norm() > 0:
            ratios.append(float(a.norm() / b.norm()))
    return ratios


def _gradient_scaled(ratios: list[float], w: int, rtol: float) -> bool:
    """Moments ``W`` times W=1's (a first moment: Adam's ``exp_avg``, SGD's momentum) and none
    but ``W`` or ``W**2`` times (a second moment: ``exp_avg_sq``): the gradients were ``W`` times
    larger."""
    def near(r: float, f: float) -> bool:
        return abs(r - f) <= rtol * f

    return any(near(r, w) for r in ratios) and all(near(r, w) or near(r, w * w) for r in ratios)


def _find_eval_differences(ref: LaunchEvidence, wide: LaunchEvidence, facts: _Facts, tol: Tolerances,
                           rows: list[tuple[int, str, float, float, bool]]) -> None:
    """Metrics that differ by other than a factor ``W`` at epochs whose weights agree."""
    equal_epochs = set()
    for epoch in _common_epochs(wide, ref, 1):
        _, worst = _worst(wide.states[epoch].parameters(), ref.states[epoch].parameters())
        if worst <= tol.param_rtol:
            equal_epochs.add(epoch)
    for epoch, metric, a, b, agrees in rows:
        if epoch not in equal_epochs:
            continue
        facts.eval_compared += 1
        ratio = a / b if b else math.inf
        if not agrees and not (math.isfinite(ratio) and _near_factor(ratio, wide.world_size, tol.scale_rtol)):
            facts.eval_differs.append(f"{metric} at epoch {epoch}: {_fmt(a)} at W={wide.world_size}, "
                                      f"{_fmt(b)} at W=1, with the same weights")


def _check_eval(facts: _Facts) -> Check:
    name = "evaluation"
    if facts.weights_equal is None:
        return Check(name, SKIP, "no weights to compare at the same epoch")
    if not facts.weights_equal:
        return Check(name, SKIP, "not judged: the weights already differ")
    if facts.eval_differs:
        return Check(name, FAIL, facts.eval_differs[0], EVAL_PADDING)
    if not facts.eval_compared:
        return Check(name, SKIP, "no metric reported at both W")
    return Check(name, PASS, f"with the same weights every metric at W={facts.w} equals W=1's (padding would "
                             f"show where the validation set does not split evenly over {facts.w} ranks)")


def _ddp_keys(state: FlatState) -> list[str]:
    return [k for k in state.parameters() if k.startswith("module.") or ".module." in k]


def _check_checkpoint(wide: LaunchEvidence, resumed: LaunchEvidence | None,
                      resumed_error: str | None) -> Check:
    name = "checkpoint at another W"
    saved = wide.states.get(wide.until_epoch)
    ddp = _ddp_keys(saved) if saved is not None else []
    if resumed is None:
        hint = f" (saved from the DDP wrapper: {ddp[0]})" if ddp else ""
        return Check(name, FAIL, f"W=1 cannot resume from the W={wide.world_size} checkpoint{hint}: "
                                 f"{resumed_error or '?'}", CHECKPOINT_W)
    if ddp:
        return Check(name, FAIL, f"saved from the DDP wrapper ({ddp[0]}): save the unwrapped model's state",
                     CHECKPOINT_W)
    loaded = resumed.states.get(resumed.start_epoch)
    if saved is None or loaded is None:
        return Check(name, PASS, f"W=1 resumed from the W={wide.world_size} checkpoint at epoch "
                                 f"{resumed.start_epoch} (its weights were not compared: no states)")
    key, worst = _worst(loaded.parameters(), saved.parameters())
    if worst > 0:
        return Check(name, FAIL, f"W=1 loaded other weights than W={wide.world_size} saved ({key}: "
                                 f"{_fmt(worst)} relative)", CHECKPOINT_W)
    return Check(name, PASS, f"W=1 loaded the weights W={wide.world_size} saved after epoch "
                             f"{wide.until_epoch}, bit for bit")


def _check_resume(ref: LaunchEvidence, wide: LaunchEvidence, resumed: LaunchEvidence | None, facts: _Facts,
                  tol: Tolerances) -> Check:
    name = "resume restores the state"
    if resumed is None:
        return Check(name, SKIP, "not judged: the resumed launch did not run")
    saved = wide.states.get(wide.until_epoch)
    loaded = resumed.states.get(resumed.start_epoch)
    drift = _resume_drift(ref, resumed, tol)
    if saved is not None and not saved.optimizers and drift:
        return Check(name, FAIL, f"the checkpoint holds no optimizer state, and the resumed run drifts "
                                 f"({drift})", OPTIMIZER_NOT_SAVED)
    if saved is not None and loaded is not None and saved.optimizers:
        same, key = _same_values(loaded.optimizer_values(), saved.optimizer_values())
        if not same:
            return Check(name, FAIL, f"the optimizer after loading is not the one saved (first difference: "
                                     f"{key or '?'})", OPTIMIZER_NOT_RESTORED)
    if facts.params_equal is False or (facts.params_equal is None and facts.w_cause() is not None):
        return Check(name, SKIP, f"weights and optimizer restored; the continuation is not judged: W="
                                 f"{facts.w} already trains otherwise")
    if drift:
        return Check(name, FAIL, f"weights and optimizer restored, yet the resumed run drifts ({drift})",
                     STATE_NOT_RESTORED)
    if not _common_epochs(resumed, ref, resumed.start_epoch + 1) and not _metric_pairs(resumed, ref):
        return Check(name, SKIP, "nothing of the resumed run to compare")
    return Check(name, PASS, f"resumed after epoch {resumed.start_epoch}: "
                             f"{epoch_span(resumed.start_epoch + 1, resumed.until_epoch)} equal the "
                             "uninterrupted W=1 run's")


def _resume_drift(ref: LaunchEvidence, resumed: LaunchEvidence, tol: Tolerances) -> str:
    """How ``resumed`` differs from ``ref`` over the epochs it trained, or ``""``."""
    for epoch in _common_epochs(resumed, ref, resumed.start_epoch + 1):
        key, worst = _worst(resumed.states[epoch].parameters(), ref.states[epoch].parameters())
        if worst > tol.param_rtol:
            return f"after epoch {epoch} {key} differs by {_fmt(worst)} relative"
    for epoch, metric, a, b in _metric_pairs(resumed, ref):
        if not _close(a, b, tol.metric_rtol, tol.metric_atol):
            return f"{metric} at epoch {epoch}: {_fmt(a)} resumed, {_fmt(b)} uninterrupted"
    return ""
