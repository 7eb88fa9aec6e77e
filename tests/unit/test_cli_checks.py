"""`seer tune` checks what the worker would reject before it launches anything."""

from __future__ import annotations

import pytest

from seer_torch.cli import check_before_launch, main
from seer_torch.config import parse_experiment
from seer_torch.errors import ConfigError

SPACE = {"lr": {"distribution": "loguniform", "low": 0.01, "high": 1.0}}


def test_default_experiment_passes():
    check_before_launch(parse_experiment({"search_space": SPACE}))


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"search_space": {**SPACE, "momentun": 0.9}}, "search_space.momentun"),
        ({"search_space": {**SPACE, "width": {"choices": [0, 32]}}}, "search_space.width"),
        (
            {"search_space": {"lr": {"distribution": "uniform", "low": -1.0, "high": -0.5}}},
            "search_space.lr.low",
        ),
        ({"search_space": {"weight_decay": 0.1}}, "search_space.lr"),
        ({"model": {"name": "resnet9000"}, "search_space": SPACE}, "model.name"),
        (
            {"training": {"global_batch": 2048, "micro_batch_max": 64}, "search_space": SPACE},
            "training.global_batch",
        ),
    ],
)
def test_bad_search_space_or_model_is_caught_before_launch(raw, field):
    with pytest.raises(ConfigError) as ei:
        check_before_launch(parse_experiment(raw))
    assert ei.value.field == field


def test_num_train_samples_matches_the_loaded_split():
    from seer_torch.data import load_dataset, num_train_samples

    assert num_train_samples("digits") == load_dataset("digits", None).train_x.shape[0] == 1257


def test_a_run_dir_with_files_is_refused_with_exit_2(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "old.log").write_text("x")
    assert main(["tune", "--run-dir", str(tmp_path / "run"), "--profile", _profile(tmp_path)]) == 2
    assert "--run-dir" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["old.log"]


def _profile(tmp_path):
    import json

    p = tmp_path / "p.json"
    p.write_text(json.dumps({"world_sizes": [1], "speedup": [1.0], "epoch_time_s": 1.0, "startup_s": 1.0}))
    return str(p)


def test_missing_cifar_folder_exits_2_naming_the_folder(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[data]\ndataset = "cifar10"\ndata_dir = "{tmp_path}"\n[model]\nname = "resnet18_cifar"\n'
        "[search_space]\nlr = 0.1\n"
    )
    assert main(["tune", str(cfg), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err and "cifar-10-batches-py" in err
    assert not (tmp_path / "run").exists()


def test_seer_plan_checks_the_model_and_the_profile_as_tune_does(tmp_path, capsys):
    from pathlib import Path

    default = Path(__file__).resolve().parents[2] / "seer_torch" / "experiments" / "digits_default.toml"
    bad = tmp_path / "bad.toml"
    bad.write_text(default.read_text().replace('name = "digits_cnn"', 'name = "resnet50"', 1))
    assert main(["plan", str(bad)]) == 2
    assert "model.name: got 'resnet50'" in capsys.readouterr().err
    # a public profile picked as FILE:NAME is for `seer simulate` only
    public = Path(__file__).resolve().parents[1] / "data" / "scaling_profiles.json"
    assert main(["plan", "--profile", f"{public}:cifar10-resnet18-v100"]) == 2
    err = capsys.readouterr().err
    assert "planner.profile" in err and "`seer simulate` only" in err
    assert main(["plan", "--profile", str(public)]) == 2
    assert "`seer simulate` only" in capsys.readouterr().err


def test_seer_plan_text_with_a_flops_profile_shows_the_epoch_it_plans_with(tmp_path, capsys):
    import json

    prof = tmp_path / "p.json"
    prof.write_text(
        json.dumps(
            {
                "world_sizes": [1, 2],
                "speedup": [1.0, 1.5],
                "epoch_time_s": 1.2,
                "startup_s": 8.0,
                "resize_s": 8.0,
                "epoch_time_by_flops": [
                    {"flops_per_sample": 21388800, "epoch_time_s": 0.6},
                    {"flops_per_sample": 48008448, "epoch_time_s": 1.2},
                ],
            }
        )
    )
    assert main(["plan", "--profile", str(prof)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(the mean over the draws, 0.60-1.20 s by their FLOPs)" in out
    assert "binding:" in out and "SEER plan:" in out
    assert "(plans may use safety_fraction 0.9 of each)" in out  # why the message's caps are smaller
