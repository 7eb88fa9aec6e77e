"""``seer verify``'s judgement (seer_torch/verify_checks.py) on synthetic evidence: a correct
script passes every check, and each broken one fails with its own cause (the signatures of the
module docstring); the command's input handling (bad input is exit 2, flags after the script)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from seer_torch.cli import _build_parser, main
from seer_torch.commands.verify import _parse_override, _split_remainder
from seer_torch.errors import ConfigError
from seer_torch.verify_checks import (
    BATCHNORM,
    CAUSES,
    CHECKPOINT_W,
    EVAL_PADDING,
    GLOBAL_BATCH,
    INIT_DIFFERS,
    LOSS_SCALED,
    LR_SCALED,
    OPTIMIZER_NOT_RESTORED,
    OPTIMIZER_NOT_SAVED,
    ORDER_PER_RANK,
    RANDOM_PER_RANK,
    SCRIPT_FAILS,
    STATE_NOT_RESTORED,
    LaunchEvidence,
    causes_of,
    flatten_state,
    judge,
)

GLOBAL_BATCH_SIZE = 4
W0 = torch.tensor([1.0, -2.0, 0.5, 3.0])
U1 = torch.tensor([0.1, 0.2, -0.1, 0.05])  # epoch 1's update at W = 1
U2 = torch.tensor([-0.05, 0.1, 0.02, 0.1])  # epoch 2's
PERM = {1: [3, 0, 6, 5, 1, 7, 2, 4], 2: [5, 2, 7, 0, 4, 1, 6, 3]}  # the (seed, epoch) permutations


def state(w: torch.Tensor, lr: float = 0.1, moment: float = 0.0, optimizer: bool = True) -> dict:
    out = {"model": {"weight": w.clone(), "bias": w[:2].clone() * 0.5}}
    if optimizer:
        out["optimizer"] = {"state": {0: {"exp_avg": torch.full((4,), moment), "step": torch.tensor(moment)}},
                            "param_groups": [{"lr": lr, "params": [0]}]}
    return out


def steps(world_size: int, epochs: range, perm=PERM) -> dict:
    """(epoch, step) -> rank -> indices: the step's global batch cut into W contiguous parts."""
    out = {}
    share = GLOBAL_BATCH_SIZE // world_size
    for epoch in epochs:
        for s in range(len(perm[epoch]) // GLOBAL_BATCH_SIZE):
            batch = perm[epoch][s * GLOBAL_BATCH_SIZE:(s + 1) * GLOBAL_BATCH_SIZE]
            out[(epoch, s)] = {r: tuple(batch[r * share:(r + 1) * share]) for r in range(world_size)}
    return out


def metrics(epoch: int, loss_factor: float = 1.0, val_shift: float = 0.0) -> dict:
    return {"train_loss": (0.7 / epoch) * loss_factor, "val_loss": 0.6 / epoch + val_shift,
            "val_accuracy": 0.8 + 0.05 * epoch}


def launches(noise: float = 1e-8):
    """A correct script: the W = 2 run differs from W = 1 by float noise only."""
    w1, w2 = W0 - U1, W0 - U1 - U2
    ref = LaunchEvidence(
        "ref", 1, 0, 2, metrics={1: metrics(1), 2: metrics(2)},
        states={0: flatten_state(state(W0)), 1: flatten_state(state(w1, moment=1.0)),
                2: flatten_state(state(w2, moment=2.0))},
        steps=steps(1, range(1, 3)), step_lr={(e, s): 0.1 for e in (1, 2) for s in range(2)})
    wide = LaunchEvidence(
        "wide", 2, 0, 1, metrics={1: metrics(1)},
        states={0: flatten_state(state(W0)), 1: flatten_state(state(w1 + noise, moment=1.0))},
        steps=steps(2, range(1, 2)), step_lr={(1, s): 0.1 for s in range(2)})
    resumed = LaunchEvidence(
        "resumed", 1, 1, 2, metrics={2: metrics(2)},
        states={1: flatten_state(state(w1 + noise, moment=1.0)),
                2: flatten_state(state(w2 + noise, moment=2.0))},
        steps=steps(1, range(2, 3)), step_lr={(2, s): 0.1 for s in range(2)})
    return ref, wide, resumed


def trained_otherwise(wide, resumed, after_epoch_1: dict, **changes):
    """``wide`` with another state after epoch 1 (and ``changes``), and ``resumed`` loading it."""
    saved = flatten_state(after_epoch_1)
    wide = dataclasses.replace(wide, states={0: wide.states[0], 1: saved}, **changes)
    return wide, dataclasses.replace(resumed, states={**resumed.states, 1: saved})


def verdict(ref, wide, resumed, **kwargs) -> dict[str, tuple[str, str | None]]:
    checks = judge(ref, wide, resumed, global_batch=GLOBAL_BATCH_SIZE, **kwargs)
    return {c.name: (c.status, c.cause) for c in checks}


def failed(ref, wide, resumed, **kwargs) -> list[str]:
    return causes_of(judge(ref, wide, resumed, global_batch=GLOBAL_BATCH_SIZE, **kwargs))


def test_a_correct_script_passes_every_check():
    result = verdict(*launches())
    assert result == {name: ("pass", None) for name in (
        "launches", "initial weights", "data order and global batch", "learning rate", "losses and metrics",
        "parameters", "evaluation", "checkpoint at another W", "resume restores the state")}


def test_float_noise_below_the_tolerance_passes_and_above_it_fails():
    assert failed(*launches(noise=1e-6)) == []
    ref, wide, resumed = launches(noise=1e-2)
    assert verdict(ref, wide, resumed)["parameters"][0] == "fail"


def test_loss_times_w_is_named_by_the_reported_loss_even_with_equal_weights():
    ref, wide, resumed = launches()
    wide = dataclasses.replace(wide, metrics={1: metrics(1, loss_factor=2.0)})  # Adam: same weights
    result = verdict(ref, wide, resumed)
    assert result["losses and metrics"] == ("fail", LOSS_SCALED)
    assert result["parameters"] == ("pass", None) and result["evaluation"] == ("pass", None)
    assert failed(ref, wide, resumed) == [LOSS_SCALED]


def test_adam_moments_w_times_larger_at_the_same_weights_are_a_scaled_loss_even_unreported():
    """Adam's update ignores the gradient's scale, its moments do not: exp_avg W times W=1's,
    exp_avg_sq W**2 times."""
    ref, wide, resumed = launches()

    def adam(w: torch.Tensor, scale: float) -> dict:
        return {"model": {"weight": w}, "optimizer": {
            "state": {0: {"exp_avg": torch.tensor([0.1, -0.2, 0.3]) * scale,
                          "exp_avg_sq": torch.tensor([0.01, 0.04, 0.09]) * scale ** 2,
                          "step": torch.tensor(3.0)}},
            "param_groups": [{"lr": 0.1, "params": [0]}]}}

    ref = dataclasses.replace(ref, states={0: flatten_state(adam(W0, 0)), 1: flatten_state(adam(W0 - U1, 1)),
                                           2: flatten_state(adam(W0 - U1 - U2, 1.5))})
    wide, resumed = trained_otherwise(dataclasses.replace(wide, states={0: ref.states[0]}), resumed,
                                      adam(W0 - U1, 2.0))
    result = verdict(ref, wide, resumed)
    assert result["parameters"] == ("fail", LOSS_SCALED)
    assert result["evaluation"] == ("pass", None)  # the weights agree: evaluation is judged
    assert result["resume restores the state"][0] == "skip"  # the moments carry the scale on
    assert failed(ref, wide, resumed) == [LOSS_SCALED]


def test_sgd_updates_w_times_larger_at_the_same_learning_rate_are_a_scaled_loss():
    ref, wide, resumed = launches()
    w1 = W0 - 2 * U1  # the gradient is twice as large, the learning rate unchanged
    wide, resumed = trained_otherwise(wide, resumed, state(w1, moment=1.0),
                                      metrics={1: metrics(1, val_shift=0.1)})
    result = verdict(ref, wide, resumed)
    assert result["parameters"] == ("fail", LOSS_SCALED)
    assert failed(ref, wide, resumed) == [LOSS_SCALED]


def test_lr_times_w_is_named_from_the_recorded_learning_rate():
    ref, wide, resumed = launches()
    w1 = W0 - 2 * U1
    wide, resumed = trained_otherwise(wide, resumed, state(w1, lr=0.2),
                                      step_lr={(1, s): 0.2 for s in range(2)},
                                      metrics={1: metrics(1, loss_factor=0.8)})
    wide = dataclasses.replace(wide, states={**wide.states, 0: flatten_state(state(W0, lr=0.2))})
    result = verdict(ref, wide, resumed)
    assert result["learning rate"] == ("fail", LR_SCALED)
    assert result["parameters"] == ("fail", LR_SCALED)
    assert result["evaluation"] == ("skip", None)  # the weights differ: not judged
    assert failed(ref, wide, resumed) == [LR_SCALED]
    # without records, the optimizer's state after each epoch says the same
    no_records = [dataclasses.replace(x, step_lr=None) for x in (ref, wide, resumed)]
    assert verdict(*no_records)["learning rate"] == ("fail", LR_SCALED)


def test_samples_that_differ_per_step_are_an_order_drawn_per_rank():
    ref, wide, resumed = launches()
    # rank 1 draws its own samples: [3, 0 | 2, 4] instead of W=1's [3, 0, 6, 5] in step 0
    wide, resumed = trained_otherwise(wide, resumed, state(W0 - U1 * 1.1 + 0.03, moment=1.0),
                                      steps=steps(2, range(1, 2), perm={1: [3, 0, 2, 4, 1, 7, 6, 5]}))
    result = verdict(ref, wide, resumed)
    assert result["data order and global batch"] == ("fail", ORDER_PER_RANK)
    assert failed(ref, wide, resumed) == [ORDER_PER_RANK]


def test_without_records_weights_that_drift_with_same_size_updates_are_an_order_drawn_per_rank():
    ref, wide, resumed = launches()
    ref, wide, resumed = (dataclasses.replace(x, steps=None, step_lr=None) for x in (ref, wide, resumed))
    w1 = W0 - torch.tensor([0.12, 0.18, -0.09, 0.06])  # as large as W=1's update, another direction
    wide = dataclasses.replace(wide, states={0: wide.states[0], 1: flatten_state(state(w1, moment=1.0))})
    result = verdict(ref, wide, resumed)
    assert result["data order and global batch"][0] == "skip"
    assert result["parameters"] == ("fail", ORDER_PER_RANK)
    # ... and with records that show W=1's samples: random draws per rank (dropout)
    ref2, wide2, resumed2 = launches()
    wide2 = dataclasses.replace(wide2, states={0: wide2.states[0], 1: flatten_state(state(w1, moment=1.0))})
    assert verdict(ref2, wide2, resumed2)["parameters"] == ("fail", RANDOM_PER_RANK)


def test_batchnorm_statistics_of_one_rank_or_of_a_smaller_micro_batch_are_named():
    ref, wide, resumed = launches()

    def with_bn(flat_state, running_mean: float):
        values = {**flat_state.values, "model.bn.running_mean": torch.full((4,), running_mean),
                  "model.bn.running_var": torch.ones(4)}
        return dataclasses.replace(flat_state, values=values)

    ref = dataclasses.replace(ref, micro_batch=4,
                              states={k: with_bn(v, 0.1 * k) for k, v in ref.states.items()})
    # the weights agree; the running statistics saw rank 0's micro-batches only
    only_stats = dataclasses.replace(wide, micro_batch=2, states={0: with_bn(wide.states[0], 0.0),
                                                                  1: with_bn(wide.states[1], 0.13)})
    res = dataclasses.replace(resumed, states={**resumed.states, 1: only_stats.states[1]})
    result = verdict(ref, only_stats, res)
    assert result["parameters"] == ("fail", BATCHNORM)
    assert failed(ref, only_stats, res) == [BATCHNORM]
    # the weights differ too, with the same samples a step and a micro-batch of 2 instead of 4
    w1 = W0 - torch.tensor([0.12, 0.18, -0.09, 0.06])
    other = dataclasses.replace(wide, micro_batch=2, states={
        0: with_bn(wide.states[0], 0.0), 1: with_bn(flatten_state(state(w1, moment=1.0)), 0.13)})
    res = dataclasses.replace(resumed, states={**resumed.states, 1: other.states[1]})
    assert verdict(ref, other, res)["parameters"] == ("fail", BATCHNORM)
    # ... the same micro-batch: not BatchNorm's doing (random draws per rank)
    same_micro = dataclasses.replace(other, micro_batch=4)
    assert verdict(ref, same_micro, res)["parameters"] == ("fail", RANDOM_PER_RANK)


def test_a_global_batch_that_grows_with_w_is_named():
    ref, wide, resumed = launches()
    wide = dataclasses.replace(wide, steps={(1, s): {0: (1, 2, 3, 4), 1: (5, 6, 7, 0)} for s in range(2)})
    assert verdict(ref, wide, resumed)["data order and global batch"] == ("fail", GLOBAL_BATCH)


def test_evaluation_that_differs_at_the_same_weights_is_padding():
    ref, wide, resumed = launches()
    wide = dataclasses.replace(wide, metrics={1: metrics(1, val_shift=0.004)})
    result = verdict(ref, wide, resumed)
    assert result["evaluation"] == ("fail", EVAL_PADDING)
    assert result["parameters"] == ("pass", None)
    assert failed(ref, wide, resumed) == [EVAL_PADDING]


def test_initial_weights_that_differ_are_named_first():
    ref, wide, resumed = launches()
    w = W0 + 0.5
    wide = dataclasses.replace(wide, states={0: flatten_state(state(w)), 1: flatten_state(state(w - U1))})
    assert failed(ref, wide, resumed)[0] == INIT_DIFFERS


def test_optimizer_not_saved_and_not_restored_and_other_state():
    ref, wide, resumed = launches()
    drifted = flatten_state(state(W0 - U1 - 0.5 * U2, moment=1.0, optimizer=False))
    # not saved: the state has no optimizer, and the resumed run drifts
    no_opt = dataclasses.replace(
        wide, states={k: flatten_state(state(W0 - (U1 if k else 0), optimizer=False)) for k in (0, 1)})
    ref_no_opt = dataclasses.replace(
        ref, states={k: flatten_state(state(v.values["model.weight"], optimizer=False))
                     for k, v in ref.states.items()})
    res = dataclasses.replace(resumed, states={1: no_opt.states[1], 2: drifted})
    assert verdict(ref_no_opt, no_opt, res)["resume restores the state"] == ("fail", OPTIMIZER_NOT_SAVED)
    assert failed(ref_no_opt, no_opt, res) == [OPTIMIZER_NOT_SAVED]
    # saved, but the resumed launch's optimizer after loading is a fresh one
    fresh = flatten_state(state(W0 - U1, moment=0.0))
    res = dataclasses.replace(resumed,
                              states={1: fresh, 2: flatten_state(state(W0 - U1 - 0.5 * U2, moment=1.0))})
    assert verdict(ref, wide, res)["resume restores the state"] == ("fail", OPTIMIZER_NOT_RESTORED)
    # everything restored, and still a drift: another state (RNG, scheduler)
    res = dataclasses.replace(resumed, states={1: resumed.states[1],
                                               2: flatten_state(state(W0 - U1 - 0.5 * U2, moment=2.0))})
    assert verdict(ref, wide, res)["resume restores the state"] == ("fail", STATE_NOT_RESTORED)


def test_checkpoint_saved_from_the_ddp_wrapper_or_not_loadable():
    ref, wide, resumed = launches()
    ddp = {k: flatten_state({"model": {"module.weight": W0 - (U1 if k else 0)}}) for k in (0, 1)}
    wrapped = dataclasses.replace(wide, states=ddp)
    assert verdict(ref, wrapped, None, resumed_error="KeyError: 'weight'")["checkpoint at another W"] == (
        "fail", CHECKPOINT_W)
    assert verdict(ref, wrapped, resumed)["checkpoint at another W"] == ("fail", CHECKPOINT_W)
    other = dataclasses.replace(resumed,
                                states={1: flatten_state(state(W0, moment=1.0)), 2: resumed.states[2]})
    assert verdict(ref, wide, other)["checkpoint at another W"] == ("fail", CHECKPOINT_W)


def test_a_script_that_fails_at_w2_is_one_failure_and_the_rest_not_judged():
    ref, _, _ = launches()
    result = verdict(ref, None, None, wide_error="RuntimeError: boom")
    assert result["launches"] == ("fail", SCRIPT_FAILS)
    assert {status for name, (status, _) in result.items() if name != "launches"} == {"skip"}


def test_every_named_cause_is_explained():
    import seer_torch.verify_checks as vc

    named = {getattr(vc, n) for n in dir(vc) if n.isupper() and isinstance(getattr(vc, n), str)
             and getattr(vc, n) in CAUSES}
    assert named == set(CAUSES) and all(CAUSES.values())


def test_flatten_state_finds_optimizers_and_their_learning_rates():
    flat = flatten_state(state(W0, lr=0.3))
    assert flat.optimizers == ("optimizer",)
    assert flat.learning_rates() == {"optimizer.param_groups.0.lr": 0.3}
    assert set(flat.parameters()) == {"model.weight", "model.bias"}


# --- the command's input -----------------------------------------------------------------------------


def _args(*argv: str):
    return _split_remainder(_build_parser().parse_args(["verify", *argv]))


def test_flags_after_the_script_are_verifys_and_after_dashes_the_scripts():
    a = _args("train.py", "--config", "lr=3e-4", "--epochs", "3", "--", "--dataset", "wine")
    assert (a.target, a.config_values, a.epochs) == ("train.py", ["lr=3e-4"], 3)
    assert a.script_args == ["--dataset", "wine"]
    a = _args("--config", "width=8", "train.py", "--", "--dataset", "wine")
    assert (a.config_values, a.script_args) == (["width=8"], ["--dataset", "wine"])
    a = _args("train.py", "--dataset", "wine")  # not a flag of seer verify: the script's
    assert (a.config_values, a.script_args) == (None, ["--dataset", "wine"])


def test_overrides_are_read_as_json_else_as_strings():
    assert _parse_override("lr=3e-4") == ("lr", 3e-4)
    assert _parse_override("opt=adam") == ("opt", "adam")
    assert _parse_override("deep=true") == ("deep", True)
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        _parse_override("lr")


@pytest.mark.parametrize("argv, field", [
    (["/no/such/train.py", "--config", "lr=1"], "SCRIPT_OR_CONFIG"),
    (["{script}"], "--config"),
    (["{script}", "--config", "lr=1", "--epochs", "1"], "--epochs"),
    (["{script}", "--config", "lr=1", "--world-size", "3"], "global_batch"),
    (["{toml}", "--config", "nosuch=1"], "--config"),
    (["{toml}", "--config", "lr=5"], "--config lr"),  # outside the search space's range
    (["{toml}", "--", "--dataset", "wine"], "SCRIPT_ARGS"),
])
def test_bad_input_is_exit_2_naming_the_field(tmp_path, capsys, argv, field):
    script = tmp_path / "train.py"
    script.write_text("raise SystemExit('never run')\n")
    toml = Path(__file__).resolve().parents[2] / "examples" / "tabular_mlp" / "experiment.toml"
    argv = [a.format(script=script, toml=toml) for a in argv]
    assert main(["verify", *argv]) == 2
    assert field in capsys.readouterr().err
