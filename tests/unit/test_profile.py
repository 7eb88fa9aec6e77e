"""Scaling profiles: arithmetic from probe outputs, parsing, and the shipped estimate."""

from __future__ import annotations

import json

import pytest

from seer_torch.cli import shipped_profile_path
from seer_torch.config import load_experiment
from seer_torch.errors import ConfigError
from seer_torch.scaling.profile import load_profile, parse_profile
from seer_torch.scaling.profiler import profile_from_probes


def _probe(w, thr, step_s, eval_s, steps=12, n_train=1257):
    return {
        "world_size": w,
        "throughput_samples_per_s": thr,
        "step_time_s": step_s,
        "eval_time_s": eval_s,
        "measured_steps": steps,
        "num_train_samples": n_train,
        "train_start_unix_s": 0.0,
    }


def test_profile_from_probes():
    probes = [
        (_probe(1, 640.0, 0.1, 0.2), 1000.0, 11.4),  # 12 x 0.1 + 0.2 = 1.4 s working, 10 s fixed
        (_probe(2, 1152.0, 0.055, 0.1), 1020.0, 12.76),  # 0.66 + 0.1 = 0.76 s working, 12 s fixed
    ]
    p = profile_from_probes("x", probes, source="test")
    assert p.world_sizes == (1, 2)
    assert p.speedup == pytest.approx((1.0, 1.8))
    assert p.epoch_time_s == pytest.approx(1257 / 640 + 0.2)
    assert p.startup_s == pytest.approx(11.0)  # the median of the fixed costs 10 and 12
    assert p.scaling.speedup_at(2) == pytest.approx(1.8)
    with pytest.raises(ValueError):
        profile_from_probes("x", probes[1:], source="test")


def test_profile_from_probes_takes_the_mean_of_repeated_probes():
    # W=1 probed twice: first at 400 samples/s with a slow launch (20 s fixed), then at 640.
    slow_first = (_probe(1, 400.0, 0.16, 0.3), 1000.0, 22.22)  # 1.92 + 0.3 working, 20 s fixed
    probes = [
        slow_first,
        (_probe(2, 1152.0, 0.055, 0.1), 1020.0, 12.76),
        (_probe(1, 640.0, 0.1, 0.1), 1040.0, 11.3),
    ]
    p = profile_from_probes("x", probes, source="test")
    assert p.world_sizes == (1, 2)
    # The mean epoch: (1257/400 + 0.3 + 1257/640 + 0.1) / 2, so the throughput is the
    # harmonic mean 2 / (1/400 + 1/640) = 492.3 samples/s, not the arithmetic 520.
    assert p.epoch_time_s == pytest.approx((1257 / 400 + 0.3 + 1257 / 640 + 0.1) / 2)
    assert p.throughput_samples_per_s == pytest.approx((2 / (1 / 400 + 1 / 640), 1152.0))
    assert p.speedup == pytest.approx((1.0, 1152.0 / (2 / (1 / 400 + 1 / 640))))
    assert p.startup_s == pytest.approx(12.0)  # median of 20, 12 and 10: the slow launch does not set it
    assert p.resize_s == pytest.approx(12.0)
    # The same for a cost probe taken twice: its mean epoch is the point.
    cheap_slow, cheap = _probe(1, 1257 / 1.5, 0.08, 0.1), _probe(1, 1257 / 0.9, 0.05, 0.1)
    q = profile_from_probes(
        "x", probes, source="t", probe_flops=30e6, cost_probes=[(cheap_slow, 10e6), (cheap, 10e6)]
    )
    assert [x for pt in q.epoch_time_by_flops for x in pt] == pytest.approx([10e6, 1.3, 30e6, p.epoch_time_s])
    # One probe of a world size is taken as it is.
    assert profile_from_probes("x", probes[1:], source="t").epoch_time_s == pytest.approx(1257 / 640 + 0.1)


def test_measurements_of_one_probe_job_count_its_start_up_once():
    # One W=2 job with a probe plan measured W=1 (on its ranks) and W=2: 30 s long, 8 s of it the
    # plan's work, so its start-up is 22 s; a plain W=4 job's is 10 s. The median is over jobs.
    w1 = {**_probe(1, 640.0, 0.1, 0.2), "probe_work_s": 8.0}
    w2 = {**_probe(2, 1152.0, 0.055, 0.1), "probe_work_s": 8.0}
    w4 = _probe(4, 2000.0, 0.03, 0.1)  # 12 x 0.03 + 0.1 = 0.46 s working
    probes = [(w1, 1000.0, 30.0), (w2, 1000.0, 30.0), (w4, 1040.0, 10.46)]
    p = profile_from_probes("x", probes, source="test")
    assert p.startup_s == pytest.approx((22.0 + 10.0) / 2)  # not the median of 22, 22 and 10
    assert p.speedup == pytest.approx((1.0, 1152.0 / 640.0, 2000.0 / 640.0))
    assert profile_from_probes("x", probes[:2], source="test").startup_s == pytest.approx(22.0)


def test_parse_profile_errors_name_the_field():
    good = {"world_sizes": [1, 2], "speedup": [1.0, 1.5], "epoch_time_s": 1.0, "startup_s": 5.0}
    assert parse_profile(good).resize_s == 5.0
    with pytest.raises(ConfigError, match="epoch_time_s"):
        parse_profile({k: v for k, v in good.items() if k != "epoch_time_s"})
    with pytest.raises(ConfigError, match="speedup"):
        parse_profile({**good, "speedup": [1.0]})
    with pytest.raises(ConfigError, match="world_sizes"):
        parse_profile({**good, "world_sizes": [2, 1]})


def test_shipped_profile_for_the_default_parses(tmp_path):
    path = shipped_profile_path(load_experiment(None))
    assert path is not None
    p = load_profile(path)
    assert p.world_sizes[0] == 1 and p.epoch_time_s > 0 and p.startup_s > 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="valid JSON"):
        load_profile(bad)
    (tmp_path / "list.json").write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="JSON object"):
        load_profile(tmp_path / "list.json")


def test_epoch_time_by_flops_predicts_each_configuration():
    # Two probes: 1.0 s at 10 MFLOPs, 2.0 s at 30 MFLOPs -> 0.5 s fixed + 0.05 s per MFLOP.
    probes = [(_probe(1, 1257 / 1.8, 0.1, 0.2), 0.0, 12.0)]  # the probe config: 1.8 + 0.2 = 2.0 s
    cheap = _probe(1, 1257 / 0.9, 0.05, 0.1)  # 0.9 + 0.1 = 1.0 s
    p = profile_from_probes("x", probes, source="t", probe_flops=30e6, cost_probes=[(cheap, 10e6)])
    assert p.epoch_time_s == pytest.approx(2.0)
    assert [x for pt in p.epoch_time_by_flops for x in pt] == pytest.approx([10e6, 1.0, 30e6, 2.0])
    assert p.epoch_time_for(20e6) == pytest.approx(1.5)  # between: the line
    assert p.epoch_time_for(40e6) == pytest.approx(2.5)  # above: the line (under proportional 2.67)
    assert p.epoch_time_for(2e6) == pytest.approx(0.6)  # below: the line (over proportional 0.2)
    assert p.epoch_time_for(None) == p.epoch_time_for(0) == pytest.approx(2.0)
    # A noisy pair whose line falls steeply is held between proportional and the nearest point.
    steep = parse_profile(
        {
            "world_sizes": [1],
            "speedup": [1.0],
            "epoch_time_s": 4.0,
            "startup_s": 1.0,
            "epoch_time_by_flops": [
                {"flops_per_sample": 20e6, "epoch_time_s": 4.0},
                {"flops_per_sample": 10e6, "epoch_time_s": 0.5},
            ],
        }
    )
    assert steep.epoch_time_for(5e6) == pytest.approx(0.25)  # line says -1.25: proportional 0.25
    assert steep.epoch_time_for(40e6) == pytest.approx(8.0)  # line says 11: proportional 8
    # Round trip through the file format; one configuration measured -> no points, one time.
    assert parse_profile(p.to_dict()) == p
    single = profile_from_probes("x", probes, source="t", probe_flops=30e6)
    assert "epoch_time_by_flops" not in single.to_dict() and single.epoch_time_for(10e6) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "bad",
    [
        [{"flops_per_sample": 1e6}],
        [{"flops_per_sample": -1, "epoch_time_s": 1.0}],
        [{"flops_per_sample": 1e6, "epoch_time_s": 1.0}, {"flops_per_sample": 1e6, "epoch_time_s": 2.0}],
        "fast",
        [{"flops_per_sample": 1e6, "epoch_time_s": 1.0}],  # one point tells nothing apart
        [
            {"flops_per_sample": 1e6, "epoch_time_s": 1.0},
            {"flops_per_sample": 2e6, "epoch_time_s": 1.0, "w": 1},
        ],
        [],  # present but empty: leave the field out instead
        None,
    ],
)
def test_epoch_time_by_flops_errors_name_the_field(bad):
    raw = {
        "world_sizes": [1],
        "speedup": [1.0],
        "epoch_time_s": 1.0,
        "startup_s": 1.0,
        "epoch_time_by_flops": bad,
    }
    with pytest.raises(ConfigError, match="epoch_time_by_flops"):
        parse_profile(raw)


def test_profile_errors_name_the_field_as_the_file_spells_it():
    raw = {"world_sizes": [1, 2], "speedup": [1.0, 1.6], "epoch_time_s": 1.0, "startup_s": 1.0}
    assert parse_profile(raw).speedup == (1.0, 1.6)
    with pytest.raises(ConfigError, match=r"^profile\.startup: got 1\.0; allowed: no such field .*startup_s"):
        parse_profile({**raw, "startup": 1.0})  # a typo of startup_s, which would be ignored
    with pytest.raises(
        ConfigError, match=r"^profile\.speedup: got \[1\.2, 1\.6\]; allowed: 1\.0 at world size 1"
    ):
        parse_profile({**raw, "speedup": [1.2, 1.6]})  # named as in the file, not as scaling.speedup


def test_flops_of_a_configuration_are_the_conv_and_linear_arithmetic():
    from importlib import resources

    from seer_torch.scaling.profiler import (
        configuration_flops,
        configurations_flops,
        cost_probe_configuration,
    )

    exp = load_experiment(str(resources.files("seer_torch") / "experiments" / "digits_default.toml"))
    # digits_cnn, width 64 on 8x8x1 images: forward 2*Cin*Cout*9*H*W per conv (the first conv
    # needs no input gradient: backward = forward; the others: backward = 2 x forward), linear
    # 128 -> 10: 3 x 2560.
    conv1, conv2, conv3 = 2 * 1 * 64 * 9 * 64, 2 * 64 * 64 * 9 * 64, 2 * 64 * 128 * 9 * 16
    assert configuration_flops(exp, {"width": 64, "lr": 0.1}) == 2 * conv1 + 3 * conv2 + 3 * conv3 + 3 * 2560
    f = configurations_flops(
        exp, [{"width": 96, "lr": 0.1}, {"width": 64, "lr": 0.2}, {"width": 96, "lr": 0.3}]
    )
    assert f[0] == f[2] and f[0] / f[1] == pytest.approx(2.2446, rel=1e-3)
    confs = [({"width": 96}, f[0]), ({"width": 64}, f[1])]
    assert cost_probe_configuration(f[0], confs) == ({"width": 64}, f[1])
    assert cost_probe_configuration(f[0], confs[:1]) is None  # every draw costs the probe's
    assert cost_probe_configuration(f[0], []) is None


def test_round_1_is_planned_on_the_mean_epoch_of_the_draws():
    from importlib import resources

    from seer_torch.config import sample_configurations
    from seer_torch.executor import policy_context
    from seer_torch.policies import seer as planner
    from seer_torch.policies.plan_types import planner_inputs_from_context

    exp = load_experiment(str(resources.files("seer_torch") / "experiments" / "digits_default.toml"))
    # digits_cnn FLOPs per sample: width 64 -> 21388800, width 96 -> 48008448 (the arithmetic
    # is checked above); measured: 0.6 s and 1.2 s an epoch.
    prof = parse_profile(
        {
            "world_sizes": [1, 2],
            "speedup": [1.0, 1.5],
            "epoch_time_s": 1.2,
            "startup_s": 8.0,
            "epoch_time_by_flops": [
                {"flops_per_sample": 21388800, "epoch_time_s": 0.6},
                {"flops_per_sample": 48008448, "epoch_time_s": 1.2},
            ],
        }
    )
    widths = [c["width"] for c in sample_configurations(exp, exp.search.max_configurations)]
    assert 0 < widths.count(64) < len(widths)
    mean = sum(0.6 if w == 64 else 1.2 for w in widths) / len(widths)
    ctx = policy_context(exp, prof, num_slots=2, time_left_s=400.0, money_left_usd=1.0)
    assert ctx.epoch_time_s == pytest.approx(mean)
    # and each draw's own, which SEER's first plan launches round 1 on
    assert ctx.draw_epoch_times_s == pytest.approx([0.6 if w == 64 else 1.2 for w in widths])
    inputs = planner_inputs_from_context(ctx)
    assert inputs.epoch_time_s == pytest.approx(mean) and inputs.wave_epoch_time_s is None
    first = planner.plan(inputs).rounds[0]
    assert first.world_size == 1
    assert first.predicted_duration_s == pytest.approx(first.waves * (8.0 + mean))
    assert first.predicted_cost_usd == pytest.approx(3.06 / 3600 * first.num_trials * (8.0 + mean))
    # Without epoch_time_by_flops every draw costs the profile's epoch.
    flat = parse_profile({k: v for k, v in prof.to_dict().items() if k != "epoch_time_by_flops"})
    ctx = policy_context(exp, flat, num_slots=2, time_left_s=400.0, money_left_usd=1.0)
    assert ctx.epoch_time_s == 1.2 and ctx.draw_epoch_times_s == ()
    # Epoch times known in advance (the simulator's table) are passed through; the mean epoch
    # stays the profile's (the simulator gives it the table's).
    ctx = policy_context(
        exp, flat, num_slots=2, time_left_s=400.0, money_left_usd=1.0, draw_times_s=[1.0, 3.0]
    )
    assert ctx.draw_epoch_times_s == (1.0, 3.0) and ctx.epoch_time_s == 1.2


def test_seer_tune_counts_the_draws_flops_once_and_before_its_clock_starts(tmp_path, monkeypatch):
    # Issue 4: with a FLOPs profile, `--time-budget 1` used 2.5 of 1 s, because the first
    # FlopCounterMode use (seconds) ran on the tuner's clock, and the draws were counted twice.
    from importlib import resources

    from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
    from seer_torch.executor import Tuner
    from seer_torch.policies.registry import make_policy
    from seer_torch.scaling import profiler

    prof = tmp_path / "profile.json"
    prof.write_text(
        json.dumps(
            {
                "world_sizes": [1, 2],
                "speedup": [1.0, 1.5],
                "epoch_time_s": 1.2,
                "startup_s": 8.0,
                "epoch_time_by_flops": [
                    {"flops_per_sample": 21388800, "epoch_time_s": 0.6},
                    {"flops_per_sample": 48008448, "epoch_time_s": 1.2},
                ],
            }
        )
    )
    exp = load_experiment(str(resources.files("seer_torch") / "experiments" / "digits_default.toml"))
    exp = exp.with_overrides(time_budget_s=120.0, num_slots=2, profile=str(prof))
    clock = SimulatedClock()
    counts = []
    real = profiler.configurations_flops

    def slow_count(e, confs):
        counts.append(len(confs))
        clock.sleep(30.0)  # a slow first count, on the same clock the tuner reads
        return real(e, confs)

    monkeypatch.setattr(profiler, "configurations_flops", slow_count)
    backend = SimulatedBackend(
        2,
        clock,
        epoch_time_s=1.0,
        speedup=lambda w: 1.5 ** (w > 1),
        startup_s=8.0,
        curve=lambda c, e: c["lr"] * (1 - 0.5 / e),
    )
    res = Tuner(exp, tmp_path / "run", backend, policy=make_policy("seer"), clock=clock).run()
    assert counts == [1 + exp.search.max_configurations]  # the probe configuration and the draws, once
    assert res["rounds"][0]["start_s"] < 1.0  # not 30 s in: the count ran before the clock started
    assert res["budget"]["time_used_s"] <= 120.0 and res["best"] is not None


def test_epoch_time_by_flops_errors_point_at_the_entry_and_epoch_time_s_must_agree():
    base = {"world_sizes": [1], "speedup": [1.0], "epoch_time_s": 1.2, "startup_s": 1.0}
    ok = [{"flops_per_sample": 2e7, "epoch_time_s": 0.6}, {"flops_per_sample": 5e7, "epoch_time_s": 1.2}]
    assert parse_profile({**base, "epoch_time_by_flops": ok}).epoch_time_for(3.5e7) == pytest.approx(0.9)
    with pytest.raises(ConfigError, match=r"epoch_time_by_flops\[1\]\.epoch_time_s: got None"):
        parse_profile({**base, "epoch_time_by_flops": [ok[0], {"flops_per_sample": 5e7}]})
    with pytest.raises(ConfigError, match=r"epoch_time_by_flops\[1\]\.flops_per_sample: got 20000000"):
        parse_profile({**base, "epoch_time_by_flops": [ok[0], {**ok[1], "flops_per_sample": 2e7}]})
    # The probe's own epoch is one of the points: 50 s against points of 0.6-1.2 s is refused.
    with pytest.raises(ConfigError, match=r"epoch_time_s: got 50.*0.6-1.2 s"):
        parse_profile({**base, "epoch_time_s": 50.0, "epoch_time_by_flops": ok})
    with pytest.raises(ConfigError, match=r"epoch_time_s: got 0; allowed: a finite number of seconds > 0"):
        parse_profile({**base, "epoch_time_s": 0})


def test_a_backend_that_hands_over_no_workers_is_planned_with_a_cold_start_for_every_trial():
    # The Ray backend's parked jobs go on with their own trial only: a plan that priced each new
    # trial's W = 1 job as a warm start (0.15 s) got cold starts of about 12 s there, and a 90 s
    # run never completed its first round.
    from importlib import resources

    from seer_torch.executor import policy_context
    from seer_torch.policies import seer as planner
    from seer_torch.policies.plan_types import planner_inputs_from_context

    exp = load_experiment(str(resources.files("seer_torch") / "experiments" / "digits_default.toml"))
    from seer_torch.executor.context import CONTINUE_S, WARM_START_S

    prof = parse_profile({"world_sizes": [1, 2], "speedup": [1.0, 1.5], "epoch_time_s": 1.0,
                          "startup_s": 12.0})
    kw = {"num_slots": 2, "time_left_s": 400.0, "money_left_usd": 1.0, "keep_alive": True}
    warm = policy_context(exp, prof, **kw)
    cold = policy_context(exp, prof, **kw, warm_workers=False)
    assert (warm.warm_start_s, cold.warm_start_s) == (WARM_START_S, None)
    assert warm.continue_s == cold.continue_s == CONTINUE_S  # a parked job goes on with its own trial
    first = planner.plan(planner_inputs_from_context(cold)).rounds[0]
    assert first.world_size == 1 and first.waves > 1
    assert first.predicted_duration_s == pytest.approx(first.waves * (12.0 + 1.0 * first.rung_epoch))
    warm_first = planner.plan(planner_inputs_from_context(warm)).rounds[0]
    # with warm workers only the first wave starts cold: 12 s, then WARM_START_S a trial
    assert warm_first.predicted_duration_s == pytest.approx(
        12.0 + warm_first.rung_epoch + (warm_first.waves - 1) * (WARM_START_S + warm_first.rung_epoch))
