"""What the commands print and refuse, from a new user's report: tables printed whole when
stdout is not a terminal, a run directory a live process holds refused for that reason by
every check, the same "how to continue" on Ctrl-C from `seer tune` and `seer resume`, a
`seer resume` path that does not exist named as such, and one backend factory for every
command."""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from seer_torch.cli import main
from seer_torch.commands import common
from seer_torch.commands.common import make_backend, print_table
from seer_torch.config import load_experiment
from seer_torch.run_lock import LOCK_FILE, check_not_in_use, lock_run_dir

PROFILES = Path(__file__).resolve().parents[1] / "data" / "scaling_profiles.json"
POLICIES = ("seer", "sha", "hyperband", "asha", "elastic-sha", "elastic-uniform", "oracle")
SIMULATE_HEADERS = ("policy", "final val_accuracy, max (mean ± std)", "regret", "time s", "money USD",
                    "violations", "configurations", "no answer")


def _profile(tmp_path: Path) -> str:
    p = tmp_path / "p.json"
    p.write_text(
        json.dumps({"world_sizes": [1, 2], "speedup": [1.0, 1.5], "epoch_time_s": 0.5, "startup_s": 3.0})
    )
    return str(p)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split("[│┃]", line)[1:-1]]


# ------------------------------------------------------------------ tables printed whole
def test_simulate_prints_every_policy_name_and_header_whole_into_a_pipe(capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # stdout under pytest is not a terminal: 80 columns
    args = ["simulate", "--profile", f"{PROFILES}:cifar10-resnet18-v100", "--startup-s", "20",
            "--time-budget", "600", "--money-budget", "2", "--seeds", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    lines = out.splitlines()
    assert [_cells(line) for line in lines if line.startswith("┃")] == [list(SIMULATE_HEADERS)]
    rows = [_cells(line) for line in lines if line.startswith("│")]
    assert [r[0] for r in rows] == list(POLICIES)  # one line per row, each name whole
    assert all(re.fullmatch(r"0\.\d{4} ± 0\.\d{4}", r[1]) for r in rows), rows


def test_plan_prints_its_table_whole_into_a_pipe_whatever_columns_says(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    assert main(["plan", "--profile", _profile(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    headers = [_cells(line) for line in out.splitlines() if line.startswith("┃")]
    assert headers == [["round", "rung (epochs)", "trials", "W", "waves", "predicted s", "predicted USD"]]


def test_plan_says_when_the_profiling_eats_the_money_budget_and_prints_no_empty_table(capsys):
    # The shipped default: seer tune first measures its profile (about 10 s on 2 slots at
    # 3.06 USD/slot-hour, 0.0165 USD), more than a 0.01 USD budget.
    assert main(["plan", "--money-budget", "0.01"]) == 1
    out = capsys.readouterr().out
    assert "and 0.0165 USD measuring its own profile" in out
    assert "the money budget (0.01 USD) does not even pay for that" in out
    assert "NO PLAN" in out and "┃" not in out and "total:" not in out


def test_a_table_too_wide_for_a_terminal_folds_its_cells_instead_of_cutting_them():
    table = Table()
    table.add_column("policy")
    table.add_column("configurations", justify="right")
    for name in ("elastic-sha", "elastic-uniform"):
        table.add_row(name, "56.0")
    buf = io.StringIO()
    print_table(Console(file=buf, width=20, force_terminal=True, color_system=None), table)
    text = buf.getvalue()
    assert "…" not in text
    assert max(map(len, text.splitlines())) <= 20
    first_column = "".join(c for line in text.splitlines() if line.startswith("│") for c in _cells(line)[0])
    assert first_column == "elastic-shaelastic-uniform"  # folded over lines, every letter kept


# ------------------------------------------------------------------ a run directory a live process holds
def _a_run_dir(tmp_path: Path, *, with_experiment: bool) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if with_experiment:
        (run_dir / "experiment.toml").write_text(load_experiment(None).to_toml())
        (run_dir / "state.json").write_text("{}")
    return run_dir


def test_tune_on_a_run_dir_a_live_tuner_holds_names_the_lock_not_seer_resume(tmp_path, capsys):
    run_dir = _a_run_dir(tmp_path, with_experiment=True)
    argv = ["tune", "--run-dir", str(run_dir), "--profile", _profile(tmp_path), "--quiet"]
    with lock_run_dir(run_dir):  # as the live `seer tune` of this folder does
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"seer: error: --run-dir: got {str(run_dir)!r}; allowed: a run directory "
                              f"no other seer process is using (process {os.getpid()} holds "
                              f"{run_dir / LOCK_FILE}: "), err
        assert "continue it with" not in err
    # Not held: the folder holds a run, and `seer resume` is the way on.
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"seer: error: --run-dir: got {str(run_dir)!r}; allowed: a new or empty directory "
        f"(this one holds a run: continue it with `seer resume {run_dir}`)\n"
    )
    # A finished one: `seer resume` would refuse it, so the message does not send the user there.
    (run_dir / "state.json").write_text(json.dumps({"status": "finished", "trials": []}))
    assert main(argv) == 2
    assert capsys.readouterr().err.endswith(
        "(this one holds a run that finished: its answer is in results.json)\n")


def test_resume_of_a_folder_a_starting_tuner_holds_names_the_lock(tmp_path, capsys):
    run_dir = _a_run_dir(tmp_path, with_experiment=False)  # experiment.toml not written yet
    with lock_run_dir(run_dir):
        assert main(["resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"process {os.getpid()} holds {run_dir / LOCK_FILE}" in err and "experiment.toml" not in err, err
    assert main(["resume", str(run_dir)]) == 2
    assert capsys.readouterr().err.endswith("(it has no experiment.toml)\n")


def test_check_not_in_use_takes_nothing_and_makes_nothing(tmp_path):
    check_not_in_use(tmp_path / "missing")  # no folder, no lock file: not in use
    assert not (tmp_path / "missing").exists()
    with lock_run_dir(tmp_path / "run", create=True):
        pass
    check_not_in_use(tmp_path / "run")  # released
    with lock_run_dir(tmp_path / "run"):  # and the probe left it free
        pass


# ------------------------------------------------------------------ RUN_DIR that is not a folder
@pytest.mark.parametrize("what, reason", [("missing", "nothing exists at this path"),
                                          ("file", "this is a file, not a directory")])
def test_resume_of_a_path_that_is_no_folder_says_so(tmp_path, capsys, what, reason):
    path = tmp_path / what
    if what == "file":
        path.write_text("x")
    assert main(["resume", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"seer: error: RUN_DIR: got {str(path)!r}; allowed: a run directory made by `seer tune` ({reason})\n"
    )


# ------------------------------------------------------------------ Ctrl-C, and the backend factory
@pytest.fixture
def made_backends(monkeypatch):
    """The slots of every LocalBackend the commands make; the signal handlers left alone."""
    import seer_torch.backends.local as local
    import seer_torch.commands.tune as tune

    real, made = local.LocalBackend, []

    def recording(num_slots, *a, **kw):
        made.append(num_slots)
        return real(num_slots, *a, **kw)

    monkeypatch.setattr(local, "LocalBackend", recording)
    monkeypatch.setattr(tune, "stop_on_signals", lambda: None)
    return made


def _ctrl_c(*a, **kw):
    raise KeyboardInterrupt


def test_ctrl_c_on_tune_says_where_the_results_are_and_how_to_resume(tmp_path, capsys, monkeypatch,
                                                                      made_backends):
    from seer_torch.executor import Tuner

    def written_then_ctrl_c(self, *a, **kw):  # the stop wrote what was completed
        (self.run_dir / "results.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(Tuner, "run", written_then_ctrl_c)
    monkeypatch.setattr(common, "machine_cores", lambda: 2)  # 3 slots share 2 cores: said once it starts
    run_dir = tmp_path / "run"
    argv = ["tune", "--run-dir", str(run_dir), "--profile", _profile(tmp_path), "--slots", "3", "--quiet"]
    assert main(argv) == 130
    assert capsys.readouterr().err == (
        "seer: warning: 3 slots on 2 cores: the jobs share cores, so epochs run slower and the scaling "
        "profile is measured on shared cores (--slots 2 gives each worker a core)\n"
        f"seer: interrupted; what was completed is in {run_dir / 'results.json'}; "
        f"resume with `seer resume {run_dir}`\n"
    )
    assert made_backends == [3]
    # A second Ctrl-C cut the writing of results.json short: the journal is named instead. The
    # default slots, the machine's cores, share none: no warning.
    monkeypatch.setattr(common, "machine_cores", lambda: os.cpu_count() or 1)
    monkeypatch.setattr(Tuner, "run", _ctrl_c)
    run_dir = tmp_path / "run2"
    assert main(["tune", "--run-dir", str(run_dir), "--profile", _profile(tmp_path), "--quiet"]) == 130
    assert capsys.readouterr().err == (
        "seer: interrupted before results.json was written (a second interrupt cuts the writing short); "
        f"what was completed is in the run's journal, {run_dir / 'state.json'}; "
        f"resume with `seer resume {run_dir}`\n"
    )


def test_more_slots_than_cores_is_a_warning_on_the_local_backend_only(monkeypatch):
    monkeypatch.setattr(common, "machine_cores", lambda: 4)
    exp = load_experiment(None)
    assert common.shared_cores_warning(exp.with_overrides(num_slots=4)) is None  # a core each
    assert common.shared_cores_warning(exp.with_overrides(num_slots=5)) == (
        "seer: warning: 5 slots on 4 cores: the jobs share cores, so epochs run slower and the scaling "
        "profile is measured on shared cores (--slots 4 gives each worker a core)"
    )
    # On Ray the slots are the cluster's, not this machine's cores.
    assert common.shared_cores_warning(exp.with_overrides(num_slots=64, backend="ray")) is None


def test_ctrl_c_on_resume_says_the_same_with_again(tmp_path, capsys, monkeypatch, made_backends):
    from seer_torch.executor import Tuner

    class Interrupted:
        run = staticmethod(_ctrl_c)
        began = False  # interrupted before it began: no report page is drawn

    monkeypatch.setattr(Tuner, "resume", classmethod(lambda cls, *a, **kw: Interrupted()))
    run_dir = _a_run_dir(tmp_path, with_experiment=True)
    assert main(["resume", str(run_dir), "--slots", "1", "--quiet"]) == 130
    assert capsys.readouterr().err.endswith(  # results.json, if any, is the run's before this resume
        f"what was completed is in the run's journal, {run_dir / 'state.json'}; "
        f"resume again with `seer resume {run_dir}`\n"
    )
    assert made_backends == [1]
    # --slots above this machine's cores: the same warning as seer tune's, once it starts.
    monkeypatch.setattr(common, "machine_cores", lambda: 2)
    assert main(["resume", str(run_dir), "--slots", "3", "--quiet"]) == 130
    assert capsys.readouterr().err.startswith(
        "seer: warning: 3 slots on 2 cores: the jobs share cores, so epochs run slower and the scaling "
        "profile is measured on shared cores (--slots 2 gives each worker a core)\nseer: interrupted")
    assert main(["resume", str(run_dir), "--slots", "2", "--quiet"]) == 130
    assert "warning" not in capsys.readouterr().err


def test_make_backend_takes_the_experiments_slots_unless_given():
    exp = load_experiment(None).with_overrides(num_slots=3)
    assert make_backend(exp).num_slots == 3
    assert make_backend(exp, num_slots=5).num_slots == 5


def test_only_the_backend_factory_names_a_backend_class():
    commands = Path(__file__).resolve().parents[2] / "seer_torch" / "commands"
    naming = sorted(p.name for p in commands.glob("*.py") if "LocalBackend" in p.read_text())
    assert naming == ["common.py"]
