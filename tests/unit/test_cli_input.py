"""Issue 13, faults 11 and 12: bad input that escaped the checks, and the live status.

Bad input ends in one message and exit 2, never a traceback: an impossible `--run-dir`, a
search-space bound the model or optimizer rejects (the bound itself is named, whatever the
draws), a CIFAR-layout folder that fails the loader's integrity check, `seer plan --json` into
a closed pipe. The live status ticks between events, keeps every line within 80 columns and
says the final message once.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seer_torch.cli import _LiveStatus, check_before_launch, main
from seer_torch.config import parse_experiment
from seer_torch.errors import ConfigError, DatasetNotFoundError


def _profile(tmp_path: Path) -> str:
    p = tmp_path / "p.json"
    p.write_text(
        json.dumps({"world_sizes": [1, 2], "speedup": [1.0, 1.5], "epoch_time_s": 0.5, "startup_s": 3.0})
    )
    return str(p)


# ------------------------------------------------------------------ --run-dir
def _immutable_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "immutable"
    folder.mkdir()
    if (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode
    ):
        pytest.skip("chattr +i is not available here")
    return folder


@pytest.mark.parametrize("where", ["proc", "below_a_file", "immutable"])
def test_an_impossible_run_dir_is_refused_with_exit_2(tmp_path, capsys, where):
    if where == "proc":
        run_dir = Path("/proc") / f"seer-test-{os.getpid()}" / "run"
    elif where == "below_a_file":
        (tmp_path / "file").write_text("x")
        run_dir = tmp_path / "file" / "run"
    else:
        run_dir = _immutable_folder(tmp_path)
    try:
        assert main(["tune", "--run-dir", str(run_dir), "--profile", _profile(tmp_path), "--quiet"]) == 2
    finally:
        if where == "immutable":
            subprocess.run(["chattr", "-i", str(run_dir)], check=True)
    err = capsys.readouterr().err
    assert err.startswith(
        f"seer: error: --run-dir: got {str(run_dir)!r}; allowed: a folder this user can create and write"
    )
    assert len(err.splitlines()) == 1
    if where == "immutable":
        assert list(run_dir.iterdir()) == []


def test_bench_record_refuses_a_run_dir_below_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    args = [
        "bench",
        "record",
        "--configurations",
        "1",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "t.json"),
        "--run-dir",
        str(tmp_path / "file" / "rec"),
    ]
    assert main(args) == 2
    assert "--run-dir" in capsys.readouterr().err


# ------------------------------------------------------------------ search-space bounds
@pytest.mark.parametrize(
    "name, spec, field, value",
    [
        ("momentum", {"distribution": "uniform", "low": 0.5, "high": 1.2}, "search_space.momentum.high", 1.2),
        (
            "momentum",
            {"distribution": "uniform", "low": -0.5, "high": 0.9},
            "search_space.momentum.low",
            -0.5,
        ),
        ("dropout", {"distribution": "uniform", "low": 0.0, "high": 1.5}, "search_space.dropout.high", 1.5),
        (
            "weight_decay",
            {"distribution": "uniform", "low": -0.1, "high": 0.01},
            "search_space.weight_decay.low",
            -0.1,
        ),
        ("lr", {"distribution": "uniform", "low": -1.0, "high": 0.5}, "search_space.lr.low", -1.0),
        ("width", {"distribution": "int_uniform", "low": 0, "high": 64}, "search_space.width.low", 0),
        ("momentum", {"choices": [0.9, 1.5]}, "search_space.momentum", 1.5),
        ("momentum", 1.0, "search_space.momentum", 1.0),
    ],
)
def test_a_bound_outside_what_the_model_or_optimizer_takes_is_named(name, spec, field, value):
    space = {"lr": 0.1, name: spec} if name != "lr" else {name: spec}
    exp = parse_experiment({"model": {"name": "digits_mlp"}, "search_space": space})
    with pytest.raises(ConfigError) as ei:
        check_before_launch(exp, data=False)
    assert (ei.value.field, ei.value.value) == (field, value)


def test_an_int_uniform_global_batch_whose_draws_may_not_divide_is_refused():
    # seed 0 draws 38 first (divisible by both W): only a check of the whole range catches 33.
    exp = parse_experiment(
        {
            "seed": 0,
            "model": {"name": "digits_mlp"},
            "search": {"max_configurations": 1},
            "resources": {"num_slots": 2, "world_size_ladder": [1, 2]},
            "search_space": {
                "lr": 0.1,
                "global_batch": {"distribution": "int_uniform", "low": 32, "high": 64},
            },
        }
    )
    with pytest.raises(ConfigError) as ei:
        check_before_launch(exp, data=False)
    assert ei.value.field == "search_space.global_batch"
    assert ei.value.value == 33


# ------------------------------------------------------------------ CIFAR integrity
def _cifar_experiment(root: Path):
    return parse_experiment(
        {
            "data": {"dataset": "cifar10", "data_dir": str(root)},
            "model": {"name": "resnet18_cifar"},
            "search_space": {"lr": 0.1},
        }
    )


def test_a_cifar_folder_the_loader_rejects_is_caught_before_launch(tmp_path):
    from seer_torch.cifar_synthetic import write_synthetic_cifar10

    root = tmp_path / "synthetic"
    write_synthetic_cifar10(root, num_train=5001, num_test=10)
    check_before_launch(_cifar_experiment(root))  # intact: passes
    batch = root / "cifar-10-batches-py" / "data_batch_3"
    data = bytearray(batch.read_bytes())
    data[-100] ^= 0xFF  # same size, one byte changed
    batch.write_bytes(bytes(data))
    with pytest.raises(DatasetNotFoundError) as ei:
        check_before_launch(_cifar_experiment(root))
    assert str(root) in str(ei.value) and "corrupted" in str(ei.value)


def test_a_cifar_layout_folder_without_the_real_files_is_caught_before_launch(tmp_path):
    from seer_torch.data import CIFAR10_FILES

    folder = tmp_path / "fake" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in CIFAR10_FILES:
        (folder / name).write_bytes(b"not the real file")
    with pytest.raises(DatasetNotFoundError):
        check_before_launch(_cifar_experiment(tmp_path / "fake"))
    assert (
        main(["plan", str(_toml(tmp_path, tmp_path / "fake")), "--profile", _profile(tmp_path)]) == 0
    )  # reads no data


@pytest.mark.parametrize("command", ["plan", "verify"])
def test_a_missing_cifar_folder_is_named_before_anything_runs(tmp_path, capsys, monkeypatch, command):
    """`seer plan` (which reads no data) and `seer verify` name the missing files and the field
    at once, as `seer tune` does, rather than when a job first loads the data."""
    import seer_torch.verify as verify

    launched = []
    monkeypatch.setattr(verify, "run_verify", lambda *a, **kw: launched.append(a))
    root = tmp_path / "empty"
    root.mkdir()  # exists (the file is read), holds no cifar-10-batches-py/
    (root / "cifar-10-batches-py").mkdir()
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"")
    extra = ["--profile", _profile(tmp_path)] if command == "plan" else []
    assert main([command, str(_toml(tmp_path, root)), *extra]) == 2
    out = capsys.readouterr()
    assert out.out == "" and launched == []
    folder = root / "cifar-10-batches-py"
    assert out.err.startswith(
        f"seer: error: CIFAR-10 not found or incomplete: looked in {str(folder)!r} (data.data_dir = "
        f"{str(root)!r}); missing or unreadable: cifar-10-batches-py/data_batch_2, "
    )
    assert "data_batch_1," not in out.err and "test_batch, cifar-10-batches-py/batches.meta." in out.err
    assert "data.data_dir must contain cifar-10-batches-py/ with data_batch_1 .. data_batch_5" in out.err
    assert out.err.count("\n") == 1


def _toml(tmp_path: Path, root: Path) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(
        f'[data]\ndataset = "cifar10"\ndata_dir = "{root}"\n[model]\nname = "resnet18_cifar"\n'
        "[search_space]\nlr = 0.1\n"
    )
    return p


# ------------------------------------------------------------------ a closed pipe
@pytest.mark.parametrize("as_json", [True, False])  # json.dumps, and rich's table (its own pipe hook)
def test_seer_plan_into_a_closed_pipe_ends_quietly_with_141(tmp_path, as_json):
    read_end, write_end = os.pipe()
    os.close(read_end)  # as `seer plan --json | head` once head has exited
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "seer_torch.cli", "plan", *(["--json"] if as_json else []),
             "--profile", _profile(tmp_path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == 141  # not 1: that is NO PLAN


# ------------------------------------------------------------------ the live status
_ESC = re.compile(r"\x1b\[(\??)([0-9;]*)([A-Za-z])")


def _screen(stream: str) -> list[str]:
    """What a terminal shows after ``stream``: the lines of text, with rich Live's cursor moves
    (up, erase line, carriage return) applied and colours dropped. Lines are never wrapped
    here, so a line longer than the terminal shows as one."""
    lines, row, col = [""], 0, 0
    i = 0
    while i < len(stream):
        m = _ESC.match(stream, i)
        if m:
            private, arg, code = m.groups()
            if not private and code == "A":
                row = max(0, row - int(arg or 1))
            elif not private and code == "K":
                lines[row] = "" if arg == "2" else lines[row][:col]
            i = m.end()
            continue
        ch = stream[i]
        i += 1
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0
            if row == len(lines):
                lines.append("")
        else:
            line = lines[row].ljust(col)
            lines[row] = line[:col] + ch + line[col + 1 :]
            col += 1
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.rstrip() for line in lines]


def _status(**kw) -> dict:
    st = {
        "round": 1,
        "rounds_planned": 3,
        "trials": 16,
        "trials_alive": 16,
        "running": 2,
        "time_used_s": 0.0,
        "time_budget_s": 420.0,
        "cost_usd": 0.0,
        "money_budget_usd": 1.0,
    }
    st.update(kw)
    return st


def _live(buf: io.StringIO) -> _LiveStatus:
    from rich.console import Console

    status = _LiveStatus()
    status.console = Console(file=buf, force_terminal=True, width=80, color_system=None)
    return status


def test_the_time_shown_ticks_between_events():
    buf = io.StringIO()
    with _live(buf) as status:
        status.event("profiling", _status(round=0, rounds_planned=None, trials=0, trials_alive=0, running=0))
        time.sleep(2.6)
        screen = _screen(buf.getvalue())
    shown = [int(m.group(1)) for line in screen for m in re.finditer(r"time (\d+)/420 s", line)]
    assert shown and shown[-1] >= 2, screen


def test_every_line_of_the_live_status_fits_80_columns():
    buf = io.StringIO()
    long = (
        "plan: SEER plan: 64 configurations in 4 rounds (eta 3, 2 finalists (chosen); rungs 3, 9, 27, 81; "
        "trials 64, 22, 8, 2; W 1, 1, 2, 2), the best trained to 81 epochs; predicted 398.0 s of 401.2 s"
    )
    with _live(buf) as status:
        status.event(
            long,
            _status(
                round=12,
                rounds_planned=12,
                trials=64,
                trials_alive=64,
                running=16,
                time_used_s=1234.5,
                time_budget_s=9999.0,
                cost_usd=12.345,
                money_budget_usd=100.0,
            ),
        )
        time.sleep(0.6)
        screen = _screen(buf.getvalue())
    assert max(map(len, screen)) <= 80, screen
    assert any("trials alive 64/64 (16 running)" in line for line in screen), screen  # not wrapped inside
    assert any(re.search(r"time 123\d/9999 s .*money 12.345/100.00 USD", line) for line in screen), screen


def test_the_final_message_is_said_once():
    buf = io.StringIO()
    reason = "BEST EFFORT: trained to epoch 8"
    with _live(buf) as status:
        status.event("launched t000 at W=1 until epoch 3", _status())
        status.event(f"policy finished: {reason}", _status(running=0))
        status.event(f"finished: {reason}", _status(running=0))
    screen = _screen(buf.getvalue())
    assert sum(reason in line for line in screen) == 1, screen
    assert screen[-1].endswith(" finished"), screen


def test_consecutive_events_with_the_same_text_after_the_trial_id_are_printed_whole(capsys):
    # On resume two trials are relaunched alike: only a final status repeating the stop
    # reason is cut to its head, never an ordinary event (it printed "t013" alone).
    status = _LiveStatus()  # plain lines
    text = "relaunched from the start (it had no checkpoint), W=1, until epoch 1"
    status.event(f"t012: {text}", _status())
    status.event(f"t013: {text}", _status())
    out = capsys.readouterr().out
    assert f"t012: {text}" in out and f"t013: {text}" in out, out


def test_plain_lines_say_an_interrupt_once(capsys):
    status = _LiveStatus()  # stdout is not a terminal under pytest: plain lines
    status.event("policy finished", _status())
    status.event("interrupted: interrupted", _status())
    out = capsys.readouterr().out
    assert "interrupted: interrupted" not in out


def test_the_summary_fits_80_columns(tmp_path, capsys):
    from seer_torch.cli import _print_summary

    results = {
        "budget": {
            "time_used_s": 401.23,
            "time_budget_s": 420.0,
            "cost_usd": 0.45123,
            "money_budget_usd": 1.0,
        },
        "best": {
            "trial_id": "t012",
            "val_accuracy": 0.9777777,
            "test_accuracy": 0.9703703,
            "epochs": 57,
            "world_sizes": [1, 1, 2, 2, 2],
            "partial": True,
            "schedule_epochs": 64,
            "config": {
                "lr": 0.18360658964770449,
                "weight_decay": 0.00012345678901234,
                "momentum": 0.912345678901,
                "width": 32,
                "dropout": 0.123456789012345,
            },
        },
        "stop_reason": (
            "BEST EFFORT: the deadline (16 s left) at epoch 18 cannot carry a trial past epoch 57, "
            "short of max_epochs (81); the best is trained to epoch 57 of 81 instead. SEER re-plan: "
            "1 remaining rounds (rungs 57; trials 1; W 2)"),
        "max_epochs": 81,
        "trials": [{}] * 64,
        "rounds": [{}] * 5,
        # killed at 41.2 s, resumed 30.5 s later: 401.23 s used, 30.5 of them down
        "resumes": [{"stopped_at_s": 41.2, "resumed_at_s": 71.7}],
    }
    _print_summary(results, tmp_path / "r")
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if str(tmp_path) not in line]  # paths are as long as they are
    assert max(map(len, lines)) <= 80, out
    assert "\n  30.5 s of it the tuner was down before seer resume" in out
    assert "best: t012 after 57 of 81 epochs, world sizes [1, 1, 2, 2, 2]\n" in out
    # why it ended short: the stop reason's first sentence, wrapped
    why = out[out.index("  why: "):out.index("\nconfig: ")]
    assert " ".join(why.split()) == (
        "why: BEST EFFORT: the deadline (16 s left) at epoch 18 cannot carry a trial "
        "past epoch 57, short of max_epochs (81); the best is trained to epoch 57 of 81 instead.")
    assert (
        json.loads(out[out.index("config: ") + len("config: ") : out.index("\nused ")])
        == results["best"]["config"]
    )


def test_seer_version_names_the_installed_package_and_its_torch(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as ended:
        main(["--version"])
    assert ended.value.code == 0
    assert capsys.readouterr().out.strip() == f"seer {version('seer-torch')} (torch {version('torch')})"
