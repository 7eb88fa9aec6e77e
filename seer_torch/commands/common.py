"""Argument helpers shared by the ``seer`` commands: the experiment with its command-line
overrides, ``--out`` and ``--run-dir`` checks, the shipped profile, and signals that end a
command like Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
from importlib import resources
from pathlib import Path
from typing import Any

from seer_torch.config import Experiment, load_experiment
from seer_torch.errors import ConfigError
from seer_torch.run_lock import LOCK_FILE


def shipped_profile_path(exp: Experiment) -> Path | None:
    """A profile shipped with the package for this model and dataset, if there is one."""
    p = resources.files("seer_torch") / "profiles" / f"{exp.model.name}_{exp.data.dataset}_cpu.json"
    return Path(str(p)) if p.is_file() else None


def experiment_from_args(args: argparse.Namespace) -> Experiment:
    """The experiment of ``args.config`` (the embedded default when ``None``) with the budget,
    slot and profile flags of ``seer plan`` and ``seer tune`` applied.

    Raises:
        ConfigError: as :func:`seer_torch.config.load_experiment` and
            :meth:`~seer_torch.config.Experiment.with_overrides`.
    """
    exp = load_experiment(args.config)
    return exp.with_overrides(
        time_budget_s=args.time_budget, money_budget_usd=args.money_budget, num_slots=args.slots,
        profile=args.profile,
    )


def output_file(path: str) -> Path:
    """``--out``: a file path in an existing folder this user can write.

    Raises:
        ConfigError: a folder, a missing folder, or one that is not writable.
    """
    out = Path(path).expanduser()
    if out.is_dir():
        raise ConfigError("--out", str(out), "a file path, not a folder")
    if not out.parent.is_dir():
        raise ConfigError("--out", str(out), f"a file in an existing folder ({out.parent} does not exist)")
    if not os.access(out.parent, os.W_OK):
        raise ConfigError("--out", str(out),
                          f"a file in a folder you can write ({out.parent} is not writable)")
    return out


def check_new_run_dir(run_dir: Path) -> None:
    """``--run-dir`` of ``seer tune``: a new folder, or an empty one (its lock file aside).

    Raises:
        ConfigError: a file, or a folder that holds files.
    """
    if run_dir.exists() and (not run_dir.is_dir() or any(p.name != LOCK_FILE for p in run_dir.iterdir())):
        held = "holds a run: continue it with `seer resume " + str(run_dir) + "`" \
            if (run_dir / "experiment.toml").is_file() else "is a file or holds files"
        raise ConfigError("--run-dir", str(run_dir), f"a new or empty directory (this one {held})")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_on_signals() -> None:
    """SIGTERM and SIGHUP (a scheduler, `timeout`, a closed terminal) end the command like
    Ctrl-C: running jobs are stopped and billed, and what was completed is written. A signal
    ignored when seer started stays ignored, as Python does for SIGINT: under ``nohup`` a
    closed terminal does not stop the run."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) != signal.SIG_IGN:
            signal.signal(sig, _interrupt)
