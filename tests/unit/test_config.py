"""The experiment file: defaults, validation messages, sampling."""

from __future__ import annotations

import pytest

from seer_torch.config import load_experiment, parse_experiment, sample_configurations
from seer_torch.errors import ConfigError

SPACE = {"lr": {"distribution": "loguniform", "low": 0.01, "high": 1.0}}


def test_default_experiment_loads_and_is_digits():
    exp = load_experiment(None)
    assert exp.data.dataset == "digits"
    assert exp.model.name == "digits_cnn"
    assert exp.training.max_epochs == 81 and exp.training.eta == 3
    assert {p.name for p in exp.search_space} == {"lr", "weight_decay", "width", "dropout"}
    assert exp.resources.num_slots >= 1


def test_sampling_is_deterministic_and_prefix_stable():
    exp = load_experiment(None)
    a = sample_configurations(exp, 8)
    b = sample_configurations(exp, 16)
    assert a == b[:8]
    assert len({c["lr"] for c in b}) == 16
    for c in b:
        assert 0.01 <= c["lr"] <= 0.8
        assert c["width"] in (64, 96)
        assert 0.0 <= c["dropout"] <= 0.5


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"training": {"eta": 1}, "search_space": SPACE}, "training.eta"),
        ({"training": {"min_epochs": 5, "max_epochs": 3}, "search_space": SPACE}, "training.min_epochs"),
        ({"budget": {"time_budget_s": -1}, "search_space": SPACE}, "budget.time_budget_s"),
        ({"budget": {"money_budget_usd": 0}, "search_space": SPACE}, "budget.money_budget_usd"),
        ({"trainning": {}, "search_space": SPACE}, "trainning"),
        ({"training": {"epochs": 3}, "search_space": SPACE}, "training.epochs"),
        ({"data": {"dataset": "mnist"}, "search_space": SPACE}, "data.dataset"),
        ({"data": {"dataset": "cifar10"}, "search_space": SPACE}, "data.data_dir"),
        (
            {"data": {"dataset": "cifar10", "data_dir": "/nonexistent/x"}, "search_space": SPACE},
            "data.data_dir",
        ),
        ({"search_space": {}}, "search_space"),
        (
            {"search_space": {"lr": {"distribution": "loguniform", "low": 0, "high": 1}}},
            "search_space.lr.low",
        ),
        (
            {"search_space": {"lr": {"distribution": "normal", "low": 0, "high": 1}}},
            "search_space.lr.distribution",
        ),
        ({"resources": {"world_size_ladder": [2, 4]}, "search_space": SPACE}, "resources.world_size_ladder"),
        (
            {
                "training": {"global_batch": 3, "micro_batch_max": 3},
                "resources": {"num_slots": 1, "world_size_ladder": [1]},
                "search_space": SPACE,
                "seed": -1,
            },
            "seed",
        ),
        (
            {"training": {"global_batch": 32, "micro_batch_max": 64}, "search_space": SPACE},
            "training.micro_batch_max",
        ),
    ],
)
def test_bad_fields_name_field_value_and_allowed(raw, field):
    with pytest.raises(ConfigError) as ei:
        parse_experiment(raw)
    assert ei.value.field == field
    msg = str(ei.value)
    assert msg.startswith(field + ":") and "allowed:" in msg


def test_overrides_validate():
    exp = load_experiment(None)
    assert exp.with_overrides(time_budget_s=60).budget.time_budget_s == 60.0
    with pytest.raises(ConfigError, match="budget.time_budget_s"):
        exp.with_overrides(time_budget_s=0)
    with pytest.raises(ConfigError, match="resources.num_slots"):
        exp.with_overrides(num_slots=0)


def test_to_toml_round_trips():
    import tomllib

    exp = load_experiment(None)
    again = parse_experiment(tomllib.loads(exp.to_toml()))
    assert again.training == exp.training
    assert again.budget == exp.budget
    assert again.search_space == exp.search_space
    assert again.resources == exp.resources


def test_eta_and_min_epochs_omitted_or_auto_are_left_to_the_planner():
    omitted = parse_experiment({"search_space": SPACE})
    assert omitted.training.eta is None and omitted.training.min_epochs is None
    auto = parse_experiment({"training": {"eta": "auto", "min_epochs": "auto"}, "search_space": SPACE})
    assert auto.training == omitted.training
    given = parse_experiment({"training": {"eta": 4, "min_epochs": 2}, "search_space": SPACE})
    assert (given.training.eta, given.training.min_epochs) == (4, 2)


def test_an_eta_that_leaves_a_single_rung_is_allowed():
    # eta 4 on 3 epochs: one rung (3), every configuration trains to it; a table of 1-3 epochs
    # has no eta that gives two rungs, and the simulator runs such cases.
    from seer_torch.policies.rungs import rung_schedule

    exp = parse_experiment({"training": {"max_epochs": 3, "min_epochs": 1, "eta": 4}, "search_space": SPACE})
    assert rung_schedule(1, exp.training.max_epochs, exp.training.eta) == (3,)


def test_more_finalists_than_configurations_is_refused():
    ok = parse_experiment({"search": {"max_configurations": 5}, "planner": {"num_finalists": 5},
                           "search_space": SPACE})
    assert ok.planner.num_finalists == 5
    with pytest.raises(ConfigError) as info:
        parse_experiment({"search": {"max_configurations": 5}, "planner": {"num_finalists": 100},
                          "search_space": SPACE})
    assert str(info.value) == ('planner.num_finalists: got 100; allowed: an integer from 1 to '
                               'search.max_configurations (5), or "auto": the finalists are among the '
                               "configurations tried")


def test_planner_and_billing_fields_have_defaults_that_keep_the_old_behaviour():
    exp = parse_experiment({"search_space": SPACE})
    # num_finalists defaults to "auto" (the planner carries two when that still explores
    # min_configurations; see seer_torch.policies.seer)
    assert exp.planner.num_finalists is None and exp.planner.max_world_size is None
    assert exp.budget.billing_granularity_s == 0.0 and exp.budget.billing_minimum_s == 0.0
    exp = parse_experiment(
        {
            "planner": {"num_finalists": "auto", "max_world_size": 2},
            "budget": {"billing_granularity_s": 60, "billing_minimum_s": 60.0},
            "resources": {"num_slots": 8, "world_size_ladder": [1, 2, 4, 8]},
            "search_space": SPACE,
        }
    )
    assert exp.planner.num_finalists is None and exp.planner.max_world_size == 2
    assert exp.budget.billing_granularity_s == 60.0 and exp.budget.billing_minimum_s == 60.0
    assert exp.usable_world_sizes() == (1, 2)  # max_world_size caps the ladder


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("training", "eta", "fast"),
        ("training", "eta", 1),
        ("training", "min_epochs", 0),
        ("training", "min_epochs", "Auto"),
        ("planner", "num_finalists", 0),
        ("planner", "num_finalists", 2.5),
        ("planner", "max_world_size", 0),
        ("planner", "max_world_size", "auto"),
        ("budget", "billing_granularity_s", -1),
        ("budget", "billing_minimum_s", "60"),
        ("budget", "billing_minimum_s", float("inf")),
    ],
)
def test_new_fields_reject_bad_values_naming_the_field(section, key, value):
    with pytest.raises(ConfigError) as ei:
        parse_experiment({section: {key: value}, "search_space": SPACE})
    field = f"{section}.{key}"
    assert ei.value.field == field and ei.value.value == value
    msg = str(ei.value)
    assert msg.startswith(field + ":") and "allowed:" in msg
    if key in ("eta", "min_epochs", "num_finalists"):
        assert '"auto"' in msg


def test_to_toml_round_trips_auto_and_new_fields():
    import tomllib

    exp = parse_experiment(
        {
            "training": {"eta": "auto", "max_epochs": 9},
            "planner": {"num_finalists": "auto", "max_world_size": 4},
            "budget": {"billing_granularity_s": 3600, "billing_minimum_s": 60},
            "search_space": SPACE,
        }
    )
    text = exp.to_toml()
    assert 'eta = "auto"' in text and 'num_finalists = "auto"' in text
    again = parse_experiment(tomllib.loads(text))
    assert (again.training, again.budget, again.planner) == (exp.training, exp.budget, exp.planner)


def test_trial_section_is_optional_and_its_keys_are_checked(tmp_path):
    assert parse_experiment({"search_space": SPACE}).trial.script is None
    with pytest.raises(ConfigError) as ei:
        parse_experiment({"trial": {"script": "train.py", "arg": ["--x"]}, "search_space": SPACE})
    assert ei.value.field == "trial.arg"
    assert "one of the keys of [trial]: args, script" in str(ei.value)
    assert "did you mean 'args'?" in str(ei.value)
    with pytest.raises(ConfigError, match=r"^trial: got 'train.py'; allowed: a table"):
        parse_experiment({"trial": "train.py", "search_space": SPACE})


def test_a_script_experiment_needs_no_model_or_data_and_round_trips(tmp_path):
    import tomllib

    (tmp_path / "train.py").write_text("")
    exp = parse_experiment(
        {"trial": {"script": "train.py", "args": ["--depth", "2"]}, "search_space": {"depth": 2}},
        source=str(tmp_path / "exp.toml"),
    )
    assert exp.trial.script == str(tmp_path.resolve() / "train.py") and exp.trial.args == ("--depth", "2")
    again = parse_experiment(tomllib.loads(exp.to_toml()))  # no source: the path is absolute
    assert again.trial == exp.trial and again.training == exp.training


@pytest.mark.parametrize(
    "resources, field, value",
    [
        ({"backend": "slurm"}, "resources.backend", "slurm"),
        ({"backend": "ray", "address": ""}, "resources.address", ""),
        ({"backend": "ray", "address": 6379}, "resources.address", 6379),
        ({"address": "auto"}, "resources.address", "auto"),  # an address only for the Ray backend
    ],
)
def test_backend_and_address_are_checked_naming_the_field(resources, field, value):
    with pytest.raises(ConfigError) as ei:
        parse_experiment({"resources": resources, "search_space": SPACE})
    assert (ei.value.field, ei.value.value) == (field, value)
    assert str(ei.value).startswith(field + ":") and "allowed:" in str(ei.value)


def test_backend_overrides_and_round_trip():
    import tomllib

    exp = parse_experiment({"search_space": SPACE})
    assert (exp.resources.backend, exp.resources.address) == ("local", None)
    ray = exp.with_overrides(backend="ray", address="auto")
    assert (ray.resources.backend, ray.resources.address) == ("ray", "auto")
    again = parse_experiment(tomllib.loads(ray.to_toml()))  # what `seer resume` reads back
    assert again.resources == ray.resources
    # Back to the local backend: the file's address goes with the Ray backend it was for.
    assert ray.with_overrides(backend="local").resources.address is None
    with pytest.raises(ConfigError) as ei:
        exp.with_overrides(address="auto")  # --address without --backend ray
    assert ei.value.field == "--address" and "resources.backend = 'local'" in str(ei.value)


def test_a_ray_address_where_nothing_answers_is_a_clear_error_at_once():
    import socket
    import time

    pytest.importorskip("ray")
    from seer_torch.backends.ray_backend import RayBackend

    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ConfigError) as ei:
        RayBackend(1, address=f"127.0.0.1:{port}")
    assert (ei.value.field, ei.value.value) == ("resources.address", f"127.0.0.1:{port}")
    assert "nothing answers there" in str(ei.value) and time.monotonic() - start < 10.0
