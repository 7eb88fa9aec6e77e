"""The run's report in TensorBoard, written when ``seer tune`` or ``seer resume`` finishes a run
(:func:`write_run_summaries`):

- ``seer report``'s figures (:data:`seer_torch.report.FIGURES`) as images of the experiment's
  own run, ``RUN_DIR/tensorboard/experiment``, tags ``experiment/NAME`` (``experiment/allocation``,
  ``experiment/burndown``, ...), at step 0 (one set of figures, the last end's);
- an HParams summary in each trial's run (``RUN_DIR/tensorboard/<its tensorboard_run>``), so
  that TensorBoard's HParams tab lists one session per trial: its configuration, how it ended
  (``status``, ``epochs``, ``world_sizes``, ``answer``) and, as metrics, the last value of each
  metric the trial reported (the experiment's metric first), which TensorBoard reads from the
  scalars the trial API logged under the same names.

Both come from the files the run leaves, read as ``seer report`` reads them
(:func:`seer_torch.report_data.read_run_files`; each trial's ``metrics.jsonl`` for the names it
reported and when it trained), so TensorBoard shows what the report page shows. What to write is
decided by pure functions (:func:`hparam_columns`, :func:`sessions`, :func:`hparams_events`,
:func:`figure_events`); :func:`write_event_file` and :func:`write_run_summaries` write.

Each part goes to an event file of its own, ``events.out.tfevents.UNIX_S.seer-hparams`` or
``events.out.tfevents.UNIX_S.seer-figures``, written atomically (its temporary file's name holds
no ``tfevents``: TensorBoard never reads half of one) and replacing the one an earlier end of the
same run wrote (a run resumed with more budget ends again). There must be only one: TensorBoard
keeps the first summary of an HParams tag it reads in a run.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seer_torch.runfiles import METRICS_LINE_KEYS, atomic_write, read_metrics

if TYPE_CHECKING:
    from seer_torch.report_data import ReportData

#: The experiment's own TensorBoard run (its per-round panels, and the figures).
EXPERIMENT_RUN = "experiment"
#: The suffix of the event file of each part (after ``events.out.tfevents.UNIX_S``).
HPARAMS_SUFFIX = ".seer-hparams"
FIGURES_SUFFIX = ".seer-figures"
_TEMP_PREFIX = ".seer-summary-"  # no "tfevents": TensorBoard leaves the temporary files alone

#: The HParams columns that say how a trial ended, beside its configuration (a hyperparameter of
#: the same name keeps its name; the column is then called ``seer.NAME``): name -> description.
SEER_COLUMNS: dict[str, str] = {
    "status": "How the trial ended: completed, eliminated, stopped (by the run's end), failed, diverged.",
    "epochs": "The epochs it trained (its checkpoint holds them).",
    "world_sizes": "The world size W of each of its jobs, in order.",
    "answer": "The run's answer (results.json's best).",
}
#: A trial's status -> its HParams session status (TensorBoard's filter: success, failure, ...).
SESSION_STATUS = {
    "completed": "STATUS_SUCCESS",
    "eliminated": "STATUS_SUCCESS",
    "stopped": "STATUS_SUCCESS",
    "failed": "STATUS_FAILURE",
    "diverged": "STATUS_FAILURE",
    "running": "STATUS_RUNNING",
}


# ---------------------------------------------------------------------- what to write (pure)
@dataclass(frozen=True)
class HParamColumn:
    """One column of the HParams tab.

    Attributes:
        name: its name there.
        key: where a trial's value comes from: a key of its ``config``, or of
            :data:`SEER_COLUMNS` (``from_config`` False).
        kind: ``number``, ``string`` or ``bool``: the type every trial's value takes (a
            hyperparameter whose values are not all numbers, or all booleans, is a string).
        choices: the values it can take (a ``choices`` hyperparameter's, the statuses seen),
            or empty.
        interval: ``(low, high)`` of a hyperparameter drawn from a distribution, or ``None``.
        description: shown by TensorBoard beside the name.
        differs: the trials do not all have the same value (TensorBoard lists these first).
    """

    name: str
    key: str
    from_config: bool
    kind: str
    choices: tuple[Any, ...] = ()
    interval: tuple[float, float] | None = None
    description: str = ""
    differs: bool = False


@dataclass(frozen=True)
class Session:
    """One trial as the HParams tab lists it.

    Attributes:
        run: its TensorBoard run (the folder under ``RUN_DIR/tensorboard``).
        hparams: its value in each column, by the column's name (a hyperparameter it lacks is
            left out).
        status: ``STATUS_SUCCESS``, ``STATUS_FAILURE``, ``STATUS_RUNNING`` or ``STATUS_UNKNOWN``.
        start_unix_s, end_unix_s: when it began and ended training (``None``: never trained).
    """

    run: str
    hparams: dict[str, bool | float | str]
    status: str
    start_unix_s: float | None
    end_unix_s: float | None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _as(kind: str, v: Any) -> bool | float | str:
    """``v`` as a value of a column of ``kind``."""
    if kind == "number":
        return float(v)
    if kind == "bool":
        return bool(v)
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def hparam_columns(results: dict[str, Any], experiment: dict[str, Any] | None) -> list[HParamColumn]:
    """The HParams tab's columns: every hyperparameter of the trials' configurations (in the
    search space's order), its type and domain from the values drawn and the search space of
    ``experiment`` (``experiment.toml`` as a dict), then :data:`SEER_COLUMNS`."""
    space = (experiment or {}).get("search_space") or {}
    trials = results.get("trials") or []
    keys = [k for k in space if any(k in (t.get("config") or {}) for t in trials)]
    for t in trials:
        keys += [k for k in (t.get("config") or {}) if k not in keys]
    columns = []
    for key in keys:
        values = [t["config"][key] for t in trials if key in (t.get("config") or {})]
        spec = space.get(key) if isinstance(space.get(key), dict) else {}
        choices = list(spec.get("choices") or [])
        every = values + choices
        kind = ("bool" if all(isinstance(v, bool) for v in every) else
                "number" if all(_is_number(v) for v in every) else "string")
        low, high = spec.get("low"), spec.get("high")
        bounded = kind == "number" and _is_number(low) and _is_number(high)
        interval = (float(low), float(high)) if bounded else None
        allowed = ("one of " + ", ".join(map(str, choices)) if choices else
                   f"{spec.get('distribution', 'drawn')} from {low:g} to {high:g}" if interval else "")
        columns.append(HParamColumn(key, key, True, kind, tuple(_as(kind, c) for c in choices), interval,
                                    f"Hyperparameter{': ' + allowed if allowed else ''}.",
                                    len({_as(kind, v) for v in values}) > 1))
    taken = set(keys)
    statuses = tuple(sorted({str(t.get("status")) for t in trials}))
    for key, description in SEER_COLUMNS.items():
        kind = {"epochs": "number", "answer": "bool"}.get(key, "string")
        seen = {json.dumps(t.get(key) if key != "answer" else t["trial_id"]) for t in trials}
        columns.append(HParamColumn(f"seer.{key}" if key in taken else key, key, False, kind,
                                    statuses if key == "status" else (), None, description, len(seen) > 1))
    return columns


def session_status(status: str) -> str:
    """The HParams session status of a trial's ``status`` (:data:`SESSION_STATUS`;
    ``STATUS_UNKNOWN`` for one never launched)."""
    return SESSION_STATUS.get(status, "STATUS_UNKNOWN")


def sessions(results: dict[str, Any], columns: list[HParamColumn],
             times: dict[str, tuple[float, float]] | None = None) -> list[Session]:
    """One :class:`Session` per trial of ``results`` (``results.json``), its values in
    ``columns``; ``times``: when each trial (by id) began and ended training, in UNIX seconds."""
    best = (results.get("best") or {}).get("trial_id")
    out = []
    for t in results.get("trials") or []:
        config = t.get("config") or {}
        seer = {"status": str(t.get("status")), "epochs": float(t.get("epochs") or 0),
                "world_sizes": " ".join(str(w) for w in t.get("world_sizes") or []),
                "answer": t["trial_id"] == best}
        hparams: dict[str, bool | float | str] = {}
        for c in columns:
            if not c.from_config:
                hparams[c.name] = seer[c.key]
            elif config.get(c.key) is not None:
                hparams[c.name] = _as(c.kind, config[c.key])
        start, end = (times or {}).get(t["trial_id"], (None, None))
        out.append(Session(str(t.get("tensorboard_run") or t["trial_id"]), hparams,
                           session_status(str(t.get("status"))), start, end))
    return out


def metric_tags(metric: str, reported: set[str]) -> list[str]:
    """The HParams tab's metrics: the experiment's ``metric`` first, then the other names the
    trials ``reported``, sorted (the trial API logs each under its name)."""
    return [metric, *sorted(reported - {metric})]


def trained_between(rows: list[dict[str, Any]]) -> tuple[float, float] | None:
    """When a trial began and ended training, UNIX seconds, from its ``metrics.jsonl`` lines
    (the first ``train_start_unix_s``, the last ``time_unix_s``); ``None`` without."""
    starts = [float(r["train_start_unix_s"]) for r in rows if _is_number(r.get("train_start_unix_s"))]
    ends = [float(r["time_unix_s"]) for r in rows if _is_number(r.get("time_unix_s"))]
    return (min(starts), max(ends)) if starts and ends else None


def reported_names(rows: list[dict[str, Any]]) -> set[str]:
    """The metrics a trial's ``metrics.jsonl`` lines report (numbers, bookkeeping left out)."""
    return {k for r in rows for k, v in r.items() if k not in METRICS_LINE_KEYS and _is_number(v)}


# ---------------------------------------------------------------------- the events (pure)
def _value(v: bool | float | str) -> Any:
    from google.protobuf import struct_pb2

    if isinstance(v, bool):
        return struct_pb2.Value(bool_value=v)
    if isinstance(v, float):
        return struct_pb2.Value(number_value=v)
    return struct_pb2.Value(string_value=v)


def hparams_events(columns: list[HParamColumn], metrics: list[str], session: Session, *,
                   wall_time: float, description: str = "") -> list[Any]:
    """The events of one trial's HParams summary: the experiment (``columns`` and ``metrics``,
    the same in every trial's run), the session's start (its values) and its end (its status),
    as TensorBoard's HParams plugin reads them (``tensorboard.plugins.hparams.metadata``), at
    ``wall_time`` (UNIX seconds; also the session's start and end when it never trained).
    Returns ``tensorboard.compat.proto.event_pb2.Event`` messages, the file version first.
    ``description``: the experiment's, in Markdown."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    types = {"number": api_pb2.DATA_TYPE_FLOAT64, "string": api_pb2.DATA_TYPE_STRING,
             "bool": api_pb2.DATA_TYPE_BOOL}
    infos = []
    for c in columns:
        info = api_pb2.HParamInfo(name=c.name, type=types[c.kind], description=c.description,
                                  differs=c.differs)
        if c.choices:
            info.domain_discrete.values.extend([_value(x) for x in c.choices])
        elif c.interval is not None:
            info.domain_interval.min_value, info.domain_interval.max_value = c.interval
        infos.append(info)
    experiment = api_pb2.Experiment(
        description=description, time_created_secs=wall_time, hparam_infos=infos,
        metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=m), display_name=m) for m in metrics],
    )
    start = plugin_data_pb2.SessionStartInfo(start_time_secs=session.start_unix_s or wall_time)
    for name, v in session.hparams.items():
        if isinstance(v, float) and not math.isfinite(v):
            continue  # TensorBoard cannot show it; left unset
        start.hparams[name].CopyFrom(_value(v))
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(session.status),
                                         end_time_secs=session.end_unix_s or wall_time)
    parts = [(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment)),
             (metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start)),
             (metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end))]
    events = [Event(wall_time=wall_time, file_version="brain.Event:2")]
    for tag, data in parts:
        value = Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(data),
                              tensor=metadata.NULL_TENSOR)
        events.append(Event(wall_time=wall_time, step=0, summary=Summary(value=[value])))
    return events


def png_size(png: bytes) -> tuple[int, int, int]:
    """``(width, height, channels)`` of PNG bytes, from its header.

    Raises:
        ValueError: ``png`` is not a PNG image.
    """
    if len(png) < 26 or png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(png[25])
    if channels is None:
        raise ValueError(f"a PNG of an unknown colour type {png[25]}")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"), channels


def figure_events(images: dict[str, bytes], captions: dict[str, tuple[str, str]], *,
                  wall_time: float) -> list[Any]:
    """The events of the figures: each PNG of ``images`` (by figure name) as an image of tag
    ``experiment/NAME`` at step 0, titled and described by ``captions`` (name -> ``(title,
    caption)``, :data:`seer_torch.report.FIGURES`), at ``wall_time`` (UNIX seconds). Returns
    ``Event`` messages, the file version first. Step 0, below every round's: the per-round
    panels' writer (opened again by a resume, or in the same second as this file) hides the
    points at and after its first step (``purge_step``), whichever file TensorBoard reads
    first.

    Raises:
        ValueError: an image is not a PNG.
    """
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata

    values = []
    for name, png in images.items():
        width, height, channels = png_size(png)
        title, caption = captions.get(name, (name, ""))
        values.append(Summary.Value(
            tag=f"{EXPERIMENT_RUN}/{name}",
            metadata=SummaryMetadata(display_name=title, summary_description=caption,
                                     plugin_data=SummaryMetadata.PluginData(plugin_name="images")),
            image=Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=png),
        ))
    return [Event(wall_time=wall_time, file_version="brain.Event:2"),
            Event(wall_time=wall_time, step=0, summary=Summary(value=values))]


# ---------------------------------------------------------------------- writing
def write_event_file(folder: Path, suffix: str, events: list[Any], *, now_unix_s: float) -> Path:
    """Write ``events`` to ``folder/events.out.tfevents.UNIX_S{suffix}`` (``UNIX_S``: the whole
    seconds of ``now_unix_s``, ten digits) atomically, then remove
    the other event files of that ``suffix`` there (an earlier end's) and temporary files a
    killed writer left. Returns the file's path.

    Raises:
        OSError: the folder or the file cannot be written (nothing is removed then).
    """
    from tensorboard.summary.writer.record_writer import RecordWriter

    path = folder / f"events.out.tfevents.{int(now_unix_s):010d}{suffix}"

    def write(f: Any) -> None:
        records = RecordWriter(f)
        for event in events:
            records.write(event.SerializeToString())

    atomic_write(path, write, binary=True, temp_prefix=_TEMP_PREFIX)
    stale = [*folder.glob(f"events.out.tfevents.*{suffix}"), *folder.glob(f"{_TEMP_PREFIX}*.tmp")]
    for old in stale:
        if old.name != path.name:
            old.unlink(missing_ok=True)
    return path


def write_hparams(run_dir: Path, results: dict[str, Any], experiment: dict[str, Any] | None, *,
                  now_unix_s: float) -> list[Path]:
    """Write each trial's HParams summary into its TensorBoard run (made if the trial logged
    nothing), from ``results`` (``results.json``), ``experiment`` (``experiment.toml`` as a
    dict, for the search space's domains) and each trial's ``metrics.jsonl``, at
    ``now_unix_s`` (UNIX seconds). Returns the files written.

    Raises:
        OSError: a file cannot be written.
    """
    tb = run_dir / "tensorboard"
    metric = str(results.get("metric") or "val_accuracy")
    reported: set[str] = set()
    times = {}
    for t in results.get("trials") or []:
        rows = read_metrics(run_dir / "trials" / t["trial_id"] / "metrics.jsonl")
        reported |= reported_names(rows)
        between = trained_between(rows)
        if between is not None:
            times[t["trial_id"]] = between
    columns = hparam_columns(results, experiment)
    metrics = metric_tags(metric, reported)
    better = "larger" if results.get("mode", "max") == "max" else "smaller"
    description = (f"seer-torch run `{run_dir.name}` ({results.get('experiment')}), policy "
                   f"{results.get('policy')}: the metric is `{metric}`, {better} is better.")
    written = []
    for s in sessions(results, columns, times):
        events = hparams_events(columns, metrics, s, wall_time=now_unix_s, description=description)
        written.append(write_event_file(tb / s.run, HPARAMS_SUFFIX, events, now_unix_s=now_unix_s))
    return written


def write_figures(data: ReportData, *, now_unix_s: float,
                  images: dict[str, bytes] | None = None) -> Path | None:
    """Draw ``seer report``'s figures of ``data`` (:func:`seer_torch.report.draw_all`; or take
    ``images``, their PNGs by name, already drawn) and write them as images of the experiment's
    run at ``now_unix_s`` (UNIX seconds); returns the file, or ``None`` when there is nothing
    to draw.

    Raises:
        OSError: the file cannot be written. Whatever matplotlib raises while drawing.
    """
    from seer_torch.report import FIGURES, draw_all, png_bytes

    if images is None:
        images = {name: png_bytes(fig) for name, fig in draw_all(data).items()}
    if not images:
        return None
    events = figure_events(images, FIGURES, wall_time=now_unix_s)
    return write_event_file(data.files.run_dir / "tensorboard" / EXPERIMENT_RUN, FIGURES_SUFFIX, events,
                            now_unix_s=now_unix_s)


def write_run_summaries(run_dir: str | Path, *, figures: bool = True,
                        images: dict[str, bytes] | None = None) -> list[str]:
    """Write the run's report to TensorBoard from the files it left: each trial's HParams
    summary, then (``figures``) ``seer report``'s figures (``images``: their PNGs, already
    drawn for the run's page; else drawn here). Call it once ``results.json`` and
    ``state.json`` are final. Never raises for what it writes: each part that cannot be
    written or drawn is left out, and said in the returned warnings (one line each; empty when
    all was written); nothing else in the run directory is touched."""
    from seer_torch.report_data import read_run_files, report_data

    run_dir = Path(run_dir)
    now = time.time()
    warnings = []
    try:
        files = read_run_files(run_dir)
        data = report_data(files)
    except Exception as e:  # a run directory is there: this is not expected, but never fatal
        return [f"the run's files could not be read ({type(e).__name__}: {e})"]
    if data is None:
        return ["results.json and state.json cannot be read: nothing written to TensorBoard"]
    try:
        write_hparams(run_dir, data.view.results, files.experiment, now_unix_s=now)
    except Exception as e:
        warnings.append(f"the HParams summaries were not written ({type(e).__name__}: {e})")
    if figures:
        try:
            write_figures(data, now_unix_s=now, images=images)
        except Exception as e:
            warnings.append(f"the figures were not written ({type(e).__name__}: {e}); "
                            f"`seer report {run_dir}` draws them")
    return warnings


__all__ = [
    "EXPERIMENT_RUN", "FIGURES_SUFFIX", "HPARAMS_SUFFIX", "HParamColumn", "SEER_COLUMNS", "SESSION_STATUS",
    "Session", "figure_events", "hparam_columns", "hparams_events", "metric_tags", "png_size",
    "reported_names", "session_status", "sessions", "trained_between", "write_event_file",
    "write_figures", "write_hparams", "write_run_summaries",
]
