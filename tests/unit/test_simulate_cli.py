"""`seer simulate` from the command line (in-process through :func:`seer_torch.cli.main`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seer_torch import cli

PROFILES = Path(__file__).resolve().parents[1] / "data" / "scaling_profiles.json"


def _args(*extra: str) -> list[str]:
    return [
        "simulate",
        "--profile",
        f"{PROFILES}:cifar10-resnet18-v100",
        "--startup-s",
        "20",
        "--time-budget",
        "600",
        "--money-budget",
        "2",
        "--seeds",
        "2",
        "--policies",
        "seer,asha",
        "--json",
        *extra,
    ]


def test_simulate_with_eta_auto_lets_the_planner_choose(capsys):
    assert cli.main(_args("--eta", "auto")) == 0
    out = json.loads(capsys.readouterr().out)
    seer = out["policies"]["seer"]
    assert seer["runs"] == 2 and seer["budget_violations"] == 0 and seer["no_answer"] == 0
    assert (out["metric"], out["mode"]) == ("val_accuracy", "max")
    assert 0.9 < seer["final_value"]["mean"] <= 1.0


@pytest.mark.parametrize("value", ["1", "x", "2.5"])
def test_simulate_rejects_a_bad_eta_naming_it(capsys, value):
    with pytest.raises(SystemExit) as info:
        cli.main(_args("--eta", value))
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--eta" in err and repr(value) in err and "auto" in err


@pytest.mark.parametrize(
    "extra, flag",
    [
        (("--policies", ""), "--policies"),
        (("--startup-s", "-5"), "--startup-s"),
        (("--resize-s", "nan"), "--resize-s"),
    ],
)
def test_simulate_names_the_flag_a_bad_value_came_from(capsys, extra, flag):
    assert cli.main(_args(*extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"seer: error: {flag}: got ")


@pytest.mark.parametrize("flag, value, shown", [("--time-budget", "+600", "+600"),
                                                ("--money-budget", "1,+2", "+2")])
def test_simulate_refuses_a_relative_budget_rather_than_reading_it_as_a_total(capsys, flag, value, shown):
    argv = _args()
    argv[argv.index(flag) + 1] = value
    assert cli.main(argv) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == (f"seer: error: {flag}: got {shown!r}; allowed: a finite number > 0, or a "
                       "comma-separated list of them (a sweep); +X adds to a run's budget only in "
                       "`seer resume`\n")
