"""What the tests (``tests/``, several folders) and ``scripts/`` share, as ``optuna.testing`` does
for optuna's: the tiny digits experiment the fault tests and ``scripts/fault_sweep.py`` kill and
resume, running the ``seer`` command to its end, finding a run's processes, the tuner's side
of the kept-alive protocol (docs/design.md, "Launch cost"; the files in
:mod:`seer_torch.runfiles`) for tests that drive a kept-alive job themselves, and what
TensorBoard's HParams tab shows of a run (:func:`hparams_tab`).

Nothing in the package imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from seer_torch import runfiles
from seer_torch.backends.local import pids_naming

#: The fault experiment's given profile (``profile.json`` beside it): no profiling, so a run's
#: decisions are the same on every machine.
FAULTS_PROFILE: dict[str, Any] = {
    "name": "fixed",
    "world_sizes": [1, 2],
    "speedup": [1.0, 1.6],
    "epoch_time_s": 1.5,
    "startup_s": 1.0,
    "resize_s": 1.0,
}


def faults_experiment(*, name: str = "faults", time_budget_s: float = 900, profile: bool = True,
                      max_world_size: int | None = None) -> str:
    """The tiny digits experiment of the fault tests as TOML: ``digits_mlp``, 3 configurations,
    rungs 1 and 3, 2 slots at W in {1, 2}, one finalist, 10 USD.

    Args:
        name: the experiment's name.
        time_budget_s: its deadline, seconds.
        profile: ``[planner] profile = "profile.json"`` (a given profile), else none (the run
            profiles first).
        max_world_size: ``[planner] max_world_size``, or ``None`` to leave it out.
    """
    planner = ['profile = "profile.json"'] if profile else [""]
    planner.append("num_finalists = 1")
    if max_world_size is not None:
        planner.append(f"max_world_size = {max_world_size}")
    planner_lines = "\n".join(planner)
    return f"""
name = "{name}"
seed = 2
[data]
dataset = "digits"
[model]
name = "digits_mlp"
[training]
max_epochs = 3
min_epochs = 1
eta = 3
global_batch = 64
micro_batch_max = 64
[budget]
time_budget_s = {time_budget_s}
money_budget_usd = 10.0
[resources]
num_slots = 2
world_size_ladder = [1, 2]
[search]
max_configurations = 3
[planner]
{planner_lines}
[search_space]
lr = {{ distribution = "loguniform", low = 0.05, high = 0.3 }}
weight_decay = 0.0005
width = {{ choices = [32] }}
dropout = 0.0
"""


def write_faults_experiment(folder: Path, *, profile: Mapping[str, Any] | None = FAULTS_PROFILE,
                            **experiment: Any) -> Path:
    """:func:`faults_experiment` (``experiment`` its keyword arguments) as ``folder/exp.toml``,
    with ``profile`` as ``folder/profile.json`` (``None``: no profile, the run profiles);
    returns the experiment's path."""
    folder.mkdir(parents=True, exist_ok=True)
    if profile is not None:
        (folder / "profile.json").write_text(json.dumps(dict(profile)))
    cfg = folder / "exp.toml"
    cfg.write_text(faults_experiment(profile=profile is not None, **experiment))
    return cfg


def run_seer(args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 400,
             launcher: Sequence[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m seer_torch.cli ARGS`` (or ``launcher + ARGS``) in ``cwd`` to its end, with
    ``env`` added to this process's environment; output captured as text.

    Raises:
        subprocess.TimeoutExpired: it ran longer than ``timeout`` seconds.
    """
    return subprocess.run(
        [*(launcher or [sys.executable, "-m", "seer_torch.cli"]), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def hparams_tab(logdir: Path, *, sort_by: str | None = None) -> tuple[Any, list[dict[str, Any]]]:
    """What TensorBoard's HParams tab shows for ``logdir`` (``RUN_DIR/tensorboard``), read by
    the HParams plugin's own request handlers, as the tab asks them (every session status).

    Returns:
        The experiment (``tensorboard.plugins.hparams.api_pb2.Experiment``: its
        ``hparam_infos`` are the columns, in the tab's order, and ``metric_infos`` the
        metrics), and one row per session in the tab's order (by the last value of the metric
        ``sort_by``, largest first, when given): ``{"run", "hparams": {name: value},
        "metrics": {tag: last value}, "steps": {tag: its step}, "status"`` (``STATUS_SUCCESS``,
        ...), ``"start_s", "end_s"}``.
    """
    from tensorboard import context
    from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    ctx = backend_context.Context(base_plugin.TBContext(
        logdir=str(logdir), data_provider=MultiplexerDataProvider(mux, str(logdir)), multiplexer=mux))
    request = context.RequestContext()
    experiment = get_experiment.Handler(request, ctx, "", api_pb2.GetExperimentRequest()).run()
    order = ([api_pb2.ColParams(metric=api_pb2.MetricName(tag=sort_by), order=api_pb2.ORDER_DESC)]
             if sort_by else [])
    groups = list_session_groups.Handler(request, ctx, "", api_pb2.ListSessionGroupsRequest(
        allowed_statuses=list(api_pb2.Status.values()), start_index=0, slice_size=1_000_000,
        col_params=order)).run()
    rows = []
    for group in groups.session_groups:
        for s in group.sessions:
            rows.append({
                "run": s.name,
                "hparams": {k: getattr(v, v.WhichOneof("kind")) for k, v in group.hparams.items()},
                "metrics": {m.name.tag: m.value for m in s.metric_values},
                "steps": {m.name.tag: m.training_step for m in s.metric_values},
                "status": api_pb2.Status.Name(s.status),
                "start_s": s.start_time_secs,
                "end_s": s.end_time_secs,
            })
    return experiment, rows


def processes_of(run_dir: Path) -> list[int]:
    """Live processes whose command line names the run directory (orphans included)."""
    return pids_naming(str(run_dir))


def kept_alive_env(tuner_pid: int, park_timeout_s: float | None = None) -> dict[str, str]:
    """The environment of a kept-alive job at generation 0 whose tuner is process ``tuner_pid``
    (and which waits parked at most ``park_timeout_s`` seconds, when given)."""
    env = {runfiles.KEEP_ALIVE_ENV: "1", runfiles.GENERATION_ENV: "0", runfiles.TUNER_PID_ENV: str(tuner_pid)}
    if park_timeout_s is not None:
        env[runfiles.PARK_TIMEOUT_ENV] = str(park_timeout_s)
    return env


def parked_at(trial_dir: Path, generation: int) -> dict[str, Any] | None:
    """``trial_dir``'s ``parked.json`` when a job parked there at ``generation``, else ``None``."""
    parked = runfiles.read_json_or_none(Path(trial_dir) / runfiles.PARKED_FILE)
    return parked if isinstance(parked, dict) and parked.get("generation") == generation else None


def write_order(trial_dir: Path, generation: int, action: str, /, **fields: Any) -> None:
    """Write the order ``{"generation", "action", **fields}`` to ``trial_dir``'s ``control.json``,
    where a job parked at an older generation reads it (``continue`` with ``until_epoch``;
    ``switch`` with ``trial_dir``, ``until_epoch``, ``env``; ``stop``; the first three
    arguments are positional only, so that an order's ``trial_dir`` goes into ``fields``)."""
    runfiles.atomic_write_json(Path(trial_dir) / runfiles.CONTROL_FILE,
                               {"generation": generation, "action": action, **fields})
