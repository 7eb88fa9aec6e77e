"""``[trial] script``: a user's own torchrun script in the experiment file (issue 15, part 1).

The experiment side (the path resolved like ``[planner] profile``, kept resolvable in the run
folder's ``experiment.toml``), the job side (``JobSpec.script``, the argv and environment of
the local backend), the executor side (``config.json`` without a model, every job of the run
carrying the script) and ``seer bench record``'s refusal (a script's profile is measured by
tests/unit/test_script_profile.py).
"""

from __future__ import annotations

import json
import os
import stat
import time
import tomllib
from pathlib import Path

import pytest

from seer_torch import cli
from seer_torch.backends.base import JobSpec
from seer_torch.backends.local import LocalBackend, job_env, torchrun_argv
from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import load_experiment, parse_experiment
from seer_torch.errors import ConfigError
from seer_torch.executor import (
    Tuner,
    draw_costs_needed,
    trial_config,
    trial_job_spec,
)
from seer_torch.policies.seer_policy import SeerPolicy
from seer_torch.scaling.profile import load_profile

PROFILE = {"world_sizes": [1, 2], "speedup": [1.0, 1.8], "epoch_time_s": 2.0, "startup_s": 1.0,
           "resize_s": 1.0}
# The script's own hyperparameters: names no built-in model knows.
SPACE = {"hidden": {"choices": [8, 16, 32]}, "lr": {"distribution": "loguniform", "low": 1e-3, "high": 1e-1}}


def _write_experiment(folder: Path, *, trial: str, profile: bool = True, extra: str = "") -> Path:
    """An experiment file in ``folder`` with a ``[trial]`` table (its TOML body) and no
    ``[model]`` or ``[data]``; the profile written beside it when ``profile``."""
    folder.mkdir(parents=True, exist_ok=True)
    planner = ""
    if profile:
        (folder / "profile.json").write_text(json.dumps(PROFILE))
        planner = '[planner]\nprofile = "profile.json"\n'
    text = (
        'name = "mine"\nseed = 1\n\n[trial]\n' + trial + "\n\n"
        "[training]\nmax_epochs = 4\nmin_epochs = 1\neta = 2\nglobal_batch = 32\n\n"
        "[budget]\ntime_budget_s = 100\nmoney_budget_usd = 1.0\n\n"
        "[resources]\nnum_slots = 2\nworld_size_ladder = [1, 2]\n\n"
        "[search]\nmax_configurations = 4\n\n" + planner + extra + "\n"
        '[search_space]\nhidden = { choices = [8, 16, 32] }\n'
        'lr = { distribution = "loguniform", low = 0.001, high = 0.1 }\n'
    )
    path = folder / "experiment.toml"
    path.write_text(text)
    return path


@pytest.fixture
def script_dir(tmp_path):
    d = tmp_path / "project"
    d.mkdir()
    (d / "train.py").write_text("print('a training script')\n")
    return d


# -- the experiment file ------------------------------------------------------------------------
def test_a_relative_script_is_relative_to_the_experiment_file_not_the_working_directory(
    script_dir, tmp_path, monkeypatch
):
    cfg = _write_experiment(script_dir, trial='script = "train.py"\nargs = ["--steps", "3"]')
    monkeypatch.chdir(tmp_path)  # train.py is not here
    exp = load_experiment(cfg)
    assert exp.trial.script == str((script_dir / "train.py").resolve())
    assert exp.trial.args == ("--steps", "3")


def test_an_absolute_script_and_no_args():
    script = Path(__file__).resolve()
    exp = parse_experiment({"trial": {"script": str(script)}, "search_space": SPACE})
    assert exp.trial.script == str(script) and exp.trial.args == ()


def test_without_trial_section_the_built_in_worker_trains():
    exp = load_experiment(None)
    assert exp.trial.script is None and exp.trial.args == ()


@pytest.mark.parametrize(
    "trial, field, expect",
    [
        ({"script": "nope.py"}, "trial.script", "does not exist"),
        ({"script": ""}, "trial.script", "a path (string)"),
        ({"script": 5}, "trial.script", "a path (string)"),
        ({"script": "train.py", "args": "--x 1"}, "trial.args", "a list of strings"),
        ({"script": "train.py", "args": ["--x", 1]}, "trial.args", "a list of strings"),
        ({"args": ["--x"]}, "trial.args", "only with trial.script"),
        ({"scrpit": "train.py"}, "trial.scrpit", "did you mean 'script'?"),
    ],
    ids=["missing", "empty", "not_a_string", "args_a_string", "args_not_strings", "args_alone", "typo"],
)
def test_bad_trial_fields_name_the_field(script_dir, trial, field, expect):
    with pytest.raises(ConfigError) as e:
        parse_experiment({"trial": trial, "search_space": SPACE}, source=str(script_dir / "x.toml"))
    assert e.value.field == field
    assert expect in str(e.value)


def test_a_missing_script_message_says_where_it_looked(script_dir):
    with pytest.raises(ConfigError) as e:
        parse_experiment({"trial": {"script": "sub/nope.py"}, "search_space": SPACE},
                         source=str(script_dir / "x.toml"))
    assert e.value.value == "sub/nope.py"
    assert str(script_dir / "sub" / "nope.py") in e.value.allowed


def test_the_run_folders_copy_keeps_the_script_and_drops_unused_model_and_data(script_dir, tmp_path):
    """``experiment.toml`` in a run folder elsewhere: ``seer resume`` reads it from there and
    must find the same script (its absolute path), with the same arguments."""
    exp = load_experiment(_write_experiment(script_dir, trial='script = "train.py"\nargs = ["--a", "b c"]'))
    text = exp.to_toml()
    raw = tomllib.loads(text)
    assert raw["trial"] == {"script": str((script_dir / "train.py").resolve()), "args": ["--a", "b c"]}
    assert "model" not in raw and "data" not in raw
    run_dir = tmp_path / "elsewhere" / "run"
    run_dir.mkdir(parents=True)
    (run_dir / "experiment.toml").write_text(text)
    again = load_experiment(run_dir / "experiment.toml")
    assert again.trial == exp.trial
    assert again.planner.profile == exp.planner.profile
    assert again.search_space == exp.search_space


def test_the_built_in_experiments_copy_has_no_trial_section():
    raw = tomllib.loads(load_experiment(None).to_toml())
    assert "trial" not in raw and raw["model"] == {"name": "digits_cnn"}


# -- jobs ---------------------------------------------------------------------------------------
def test_trial_config_and_job_spec_of_a_script(script_dir, tmp_path):
    exp = load_experiment(_write_experiment(script_dir, trial='script = "train.py"\nargs = ["--x"]'))
    conf = {"hidden": 16, "lr": 0.01}
    c = trial_config(exp, "t01", conf, None, schedule_epochs=2)
    assert (c["model"], c["dataset"], c["data_dir"]) == (None, None, None)
    assert c["configuration"] == conf and c["max_epochs"] == 2 and c["global_batch"] == 32 and c["seed"] == 1
    spec = trial_job_spec(exp, "t01", tmp_path / "t01", 2, 3, configuration=conf, config_index=1)
    assert spec.script == script_dir.resolve() / "train.py" and spec.script_args == ("--x",)
    assert (spec.world_size, spec.until_epoch, spec.config_index) == (2, 3, 1)


def test_trial_config_and_job_spec_of_the_built_in_worker(tmp_path):
    exp = load_experiment(None)
    c = trial_config(exp, "t01", {"lr": 0.1}, None)
    assert (c["model"], c["dataset"], c["data_dir"]) == ("digits_cnn", "digits", None)
    spec = trial_job_spec(exp, "t01", tmp_path, 1, 1, configuration={"lr": 0.1}, config_index=0)
    assert spec.script is None and spec.script_args == ()


def test_torchrun_argv_runs_the_script_with_its_args(tmp_path):
    builtin = JobSpec("t0", tmp_path / "t0", 2, 5)
    script = JobSpec("t0", tmp_path / "t0", 2, 5, script=Path("/x/train.py"), script_args=("--h", "8"))
    a, b = torchrun_argv(builtin, "py"), torchrun_argv(script, "py")
    launcher = ["py", "-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node", "2",
                "--max-restarts", "0", "--monitor-interval", "0.1",
                "--log-dir", str(tmp_path / "t0" / "torchrun_logs")]
    assert b == [*launcher, "/x/train.py", "--h", "8"]
    assert a == [*launcher, "-m", "seer_torch.worker", "--trial-dir", str(tmp_path / "t0"),
                 "--until-epoch", "5"]


def test_job_env_names_the_trial_folder_absolute_and_the_target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = job_env(JobSpec("t0", Path("rel/t0"), 1, 7))
    assert env == {"SEER_TRIAL_DIR": str(tmp_path / "rel" / "t0"), "SEER_UNTIL_EPOCH": "7"}


@pytest.mark.parametrize("with_script", [True, False], ids=["script", "built_in"])
def test_the_local_backend_launches_with_the_trial_env(tmp_path, with_script):
    """A stand-in for ``python`` records the argv and environment the backend gives torchrun."""
    fake = tmp_path / "fake-python"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$SEER_TRIAL_DIR/argv.txt"\n'
                    'env > "$SEER_TRIAL_DIR/env.txt"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    trial_dir = tmp_path / "run" / "t0"
    kw = {"script": tmp_path / "train.py", "script_args": ("--a",)} if with_script else {}
    backend = LocalBackend(2, python=str(fake))
    job = backend.launch(JobSpec("t0", trial_dir, 2, 3, **kw))
    deadline = time.monotonic() + 30
    while (res := backend.poll(job)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert res.returncode == 0
    env = dict(line.split("=", 1) for line in (trial_dir / "env.txt").read_text().splitlines() if "=" in line)
    assert env["SEER_TRIAL_DIR"] == str(trial_dir.resolve()) and env["SEER_UNTIL_EPOCH"] == "3"
    argv = (trial_dir / "argv.txt").read_text().splitlines()
    if with_script:
        assert argv[-2:] == [str(tmp_path / "train.py"), "--a"] and "seer_torch.worker" not in argv
    else:
        assert argv[-5:] == ["seer_torch.worker", "--trial-dir", str(trial_dir), "--until-epoch", "3"]


def test_every_job_of_a_run_carries_the_script(script_dir, tmp_path):
    """The executor (simulated backend: the same executor and policy) launches every job of a
    script experiment with the script and its arguments, and writes config.json without a model."""
    exp = load_experiment(_write_experiment(script_dir, trial='script = "train.py"\nargs = ["--q"]'))
    clock = SimulatedClock()
    backend = SimulatedBackend(2, clock, epoch_time_s=2.0, speedup=lambda w: {1: 1.0, 2: 1.8}[w],
                               startup_s=1.0, curve=lambda conf, epoch: conf["lr"] * 10 * (1 - 0.5 / epoch))
    res = Tuner(exp, tmp_path / "run", backend, clock=clock, policy=SeerPolicy()).run()
    assert res["best"] is not None and backend.launches
    script = script_dir.resolve() / "train.py"
    assert {(j.spec.script, j.spec.script_args) for j in backend.launches} == {(script, ("--q",))}
    for trial in res["trials"]:
        conf = json.loads((tmp_path / "run" / "trials" / trial["trial_id"] / "config.json").read_text())
        assert conf["model"] is None and conf["dataset"] is None and conf["configuration"] == trial["config"]
    assert tomllib.loads((tmp_path / "run" / "experiment.toml").read_text())["trial"]["script"] == str(script)


# -- profiles ----------------------------------------------------------------------------------
def test_a_script_counts_no_flops_even_with_a_profile_by_flops(script_dir):
    exp = load_experiment(_write_experiment(script_dir, trial='script = "train.py"'))
    by_flops = dict(PROFILE, epoch_time_by_flops=[{"flops_per_sample": 1e6, "epoch_time_s": 1.0},
                                                  {"flops_per_sample": 3e6, "epoch_time_s": 3.0}])
    (script_dir / "profile.json").write_text(json.dumps(by_flops))
    prof = load_profile(script_dir / "profile.json")
    assert len(prof.epoch_time_by_flops) == 2
    assert draw_costs_needed(exp, prof) is None and draw_costs_needed(exp, None) is None


def test_seer_bench_record_refuses_a_script(script_dir, tmp_path, capsys):
    cfg = _write_experiment(script_dir, trial='script = "train.py"')
    code = cli.main(["bench", "record", str(cfg), "--configurations", "2", "--epochs", "1",
                     "--out", str(tmp_path / "t.json"),
                     "--run-dir", str(tmp_path / "rec")])
    assert code == 2
    assert "trial.script" in capsys.readouterr().err and not (tmp_path / "rec").exists()


def test_seer_plan_plans_a_script_with_its_profile(script_dir, capsys):
    cfg = _write_experiment(script_dir, trial='script = "train.py"')
    assert cli.main(["plan", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"]["note"] == "given" and out["plan"]["num_configurations"] >= 1
    assert cli.main(["plan", str(cfg)]) == 0
    assert "mine: script train.py;" in capsys.readouterr().out


def test_the_script_is_checked_again_before_launch(script_dir, tmp_path, capsys):
    """The script was there when the file was read and is gone at launch (a resumed run reads
    the run folder's copy later): named, nothing launched."""
    exp = load_experiment(_write_experiment(script_dir, trial='script = "train.py"'))
    os.unlink(script_dir / "train.py")
    with pytest.raises(ConfigError) as e:
        cli.check_before_launch(exp)
    assert e.value.field == "trial.script" and e.value.value == str(script_dir.resolve() / "train.py")


def test_the_search_space_of_a_script_is_the_scripts_own(script_dir):
    """Names no built-in model knows are refused for the built-in worker, accepted for a script."""
    exp = load_experiment(_write_experiment(script_dir, trial='script = "train.py"'))
    cli.check_before_launch(exp)  # no ConfigError: hidden is the script's
    builtin = parse_experiment({"search_space": SPACE})
    with pytest.raises(ConfigError) as e:
        cli.check_before_launch(builtin)
    assert e.value.field == "search_space.hidden"

