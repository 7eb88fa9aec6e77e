"""The billing rule and its inverse (seer_torch/policies/billing.py): the inverse, checked
against billed_seconds itself over a grid, is what a fixed cluster's time limit is built on."""

from __future__ import annotations

import math

import pytest

from seer_torch.errors import ConfigError
from seer_torch.policies.billing import Billing, billed_seconds, held_seconds_within

GRANULARITIES_S = (0.0, 1.0, 60.0, 3600.0, 0.1)
MINIMA_S = (0.0, 1.0, 60.0, 3600.0)
# billable seconds: zero, below, on and just around multiples of every granularity, odd values
BILLABLE_S = sorted(
    {0.0, 0.5, 1.0, 59.0, 59.999, 60.0, 60.0000001, 61.0, 100.0, 3599.0, 3600.0, 3600.5, 7199.99,
     7200.0, 10800.0, 3 * 3600.0 - 1e-8, 0.1 * 7, 0.3, 12345.678}
)


def test_billed_seconds_rounds_up_to_the_granularity_and_the_minimum():
    assert billed_seconds(61.0) == 61.0  # exact
    assert billed_seconds(61.0, 60.0) == 120.0
    assert billed_seconds(60.0, 60.0) == 60.0
    assert billed_seconds(10.0, 1.0, 60.0) == 60.0
    assert billed_seconds(0.1 * 3, 0.1) == pytest.approx(0.3)  # 0.30000000000000004 is 3 increments


@pytest.mark.parametrize("granularity_s", GRANULARITIES_S)
@pytest.mark.parametrize("minimum_s", MINIMA_S)
def test_held_seconds_within_is_the_inverse_of_billed_seconds(granularity_s, minimum_s):
    tol = 1e-9 * granularity_s + 1e-12 * 3600.0
    for billable_s in BILLABLE_S:
        held_s = held_seconds_within(billable_s, granularity_s, minimum_s)
        if held_s is None:
            # not even the minimum charge fits: any hold, however short, bills more
            assert minimum_s > billable_s
            assert billed_seconds(0.0, granularity_s, minimum_s) > billable_s
            continue
        assert held_s >= 0.0
        # the hold bills within the limit ...
        assert billed_seconds(held_s, granularity_s, minimum_s) <= billable_s + tol
        # ... and one more second, or a sliver more than the rounding tolerance, bills more
        for more_s in (1.0, max(1e-6, 1e-6 * granularity_s)):
            assert billed_seconds(held_s + more_s, granularity_s, minimum_s) > billable_s


def test_held_seconds_within_examples():
    assert held_seconds_within(100.0) == 100.0
    assert held_seconds_within(100.0, 60.0) == 60.0
    assert held_seconds_within(3600.0, 3600.0, 3600.0) == 3600.0
    assert held_seconds_within(3599.0, 3600.0, 3600.0) is None  # below the minimum charge
    assert held_seconds_within(100.0, 3600.0, 60.0) == 0.0  # only a zero-length hold bills <= 100 s
    assert held_seconds_within(3 * 3600.0 - 1e-8, 3600.0) == 3 * 3600.0  # a multiple up to float error


@pytest.mark.parametrize(
    "billing",
    [Billing(3.6), Billing(3.06, 1.0, 60.0), Billing(3.6, 3600.0, 3600.0), Billing(0.9, 60.0)],
)
def test_max_job_seconds_is_the_inverse_of_job_cost(billing):
    for world_size in (1, 2, 8):
        for money_usd in (0.0, 0.01, 0.35, 1.0, 7.2, 100.0):
            held_s = billing.max_job_seconds(world_size, money_usd)
            if held_s is None:
                assert billing.job_cost_usd(world_size, 0.0) > money_usd
                continue
            assert billing.job_cost_usd(world_size, held_s) <= money_usd * (1 + 1e-9) + 1e-12
            assert billing.job_cost_usd(world_size, held_s + 1.0) > money_usd


def test_max_job_seconds_is_unbounded_when_free_or_unlimited():
    assert Billing(0.0).max_job_seconds(4, 1.0) == math.inf
    assert Billing(3.6, 60.0, 60.0).max_job_seconds(4, math.inf) == math.inf


def test_billing_rejects_a_negative_or_non_finite_field():
    with pytest.raises(ConfigError) as info:
        Billing(3.6, granularity_s=-1.0)
    assert info.value.field == "granularity_s"
    with pytest.raises(ConfigError) as info:
        Billing(math.nan)
    assert info.value.field == "price_usd_per_slot_hour"
