"""``seer report``'s page: the figures (drawn with matplotlib's Agg canvas, no display, no
pyplot state) and the self-contained HTML page that embeds them as base64 PNG images.

The data comes from :mod:`seer_torch.report_data`; here it is only drawn and written. Each
drawing function returns a :class:`matplotlib.figure.Figure`, or ``None`` with nothing to draw;
the artists that carry the run's numbers have a ``gid`` (``job:TRIAL:K`` for the K-th job bar,
``usd:round:I``, ``usd:profiling``, ``usd:other`` for the measured money bars, ``curve:TRIAL``,
``deadline``, ``rung:I``) so that tests can read what was drawn.

The page (:func:`render_html`) loads nothing from the network: styles are inline, images are
``data:`` URIs. Its scaffolding (:func:`page_head`, :func:`figure_html`, :func:`table_html`,
:func:`write_page`) also makes the page of a ``seer simulate`` comparison
(:mod:`seer_torch.report_simulation`).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seer_torch.report_data import OUTCOME_ENDED_WITH_RUN, ReportData, RoundRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The figures, in the page's order: ``name -> (title, caption)``.
FIGURES: dict[str, tuple[str, str]] = {
    "allocation": (
        "Allocation: workers per trial over time",
        "One row per trial, one bar per job from its launch to its end, coloured by its world size W. "
        "Shaded bands are the rounds (R1, R2, ...: each ends at its rung), the dashed lines their ends; "
        "x marks an elimination, a red X a failure, a purple triangle a divergence; a hatched bar was still "
        "running when the run ended; '+N retries' counts relaunches after failures. The red line is the "
        "deadline.",
    ),
    "burndown": (
        "Budget burn-down: time and money against the plan",
        "Seconds used and dollars spent at the end of each round: measured (solid; start is where the "
        "rounds began, after profiling), the first plan (dashed) and each re-plan's forecast from the round "
        "it was made at (dotted, numbered as in the re-plan table). Red lines are the deadline and the "
        "money budget, when in range.",
    ),
    "rounds": (
        "Per round: planned, re-planned and measured",
        "Seconds and dollars of each round: the first plan's prediction, the last re-plan's before the round "
        "ran, and what was measured. The measured dollars of every round, profiling and what no round "
        "was billed for add up to the run's cost.",
    ),
    "slot_seconds": (
        "What the paid slot-seconds bought",
        "Every slot-second paid for, by what it paid for: training (the epochs that count), profiling, "
        "starting jobs (cold launches, kept-alive continuations, warm workers) and the rest (parked waits, "
        "rung evaluations, stopping, jobs that failed).",
    ),
    "curves": (
        "Learning curves",
        "Every trial's metric by epoch; dotted lines are the rungs; the answer is the thick red line, its "
        "star the epoch the answer was judged at.",
    ),
    "space": (
        "The search space",
        "Each hyperparameter's value against the metric at the last epoch the trial reached (colour: that "
        "epoch); the red star is the answer.",
    ),
}

_DPI = 100
_LABEL_ROW = -1.0  # the allocation chart's row (y) of the round names, above the first trial's
# W = 1, 2, 4, 8, ... in the run's ladder: light to dark blue, then oranges (more workers, darker).
_W_COLOURS = ("#9ecae1", "#3182bd", "#fd8d3c", "#a63603", "#74c476", "#238b45", "#9e9ac8", "#54278f")


def new_figure(width_in: float, height_in: float, **kw: Any) -> Figure:
    """A figure on matplotlib's Agg canvas (no pyplot, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=_DPI, layout="constrained", **kw)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """``fig`` as PNG bytes (no metadata: the page names no web address)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def w_colour(world_size: int, ladder: list[int]) -> str:
    """The colour of world size ``world_size`` among the run's ``ladder`` (ascending)."""
    return _W_COLOURS[ladder.index(world_size) % len(_W_COLOURS)] if world_size in ladder else "#888888"


def _time_limit_s(data: ReportData) -> float:
    """The allocation chart's time axis ends here, seconds: after the run's end, and after the
    deadline unless that lies far beyond it (:func:`_deadline_in_range`)."""
    ends = [j.end_s for j in data.jobs] + [r.end_s or 0.0 for r in data.rounds]
    used_s = (data.view.results.get("budget") or {}).get("time_used_s")
    run_end_s = max(ends + [float(used_s or 0.0), 1.0])
    deadline = data.burn.time_budget_s
    return max(run_end_s, deadline if _deadline_in_range(deadline, run_end_s) else 0.0) * 1.03


def _deadline_in_range(deadline_s: float | None, run_end_s: float) -> bool:
    """Whether a chart of the run's time shows the deadline: not when it lies more than twice the
    run's length past its end (the run would shrink to a sliver)."""
    return deadline_s is not None and deadline_s <= 3.0 * run_end_s


# ---------------------------------------------------------------------- allocation
def draw_allocation(data: ReportData) -> Figure | None:
    """The allocation chart (see :data:`FIGURES`); ``None`` without jobs."""
    if not data.jobs:
        return None
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = data.rows
    row_of = {tid: i for i, tid in enumerate(rows)}
    n = len(rows)
    fig = new_figure(12, min(22.0, 2.4 + 0.2 * n))
    ax = fig.subplots()
    ladder = sorted({j.world_size for j in data.jobs})
    t_max = _time_limit_s(data)
    # Profiling: from the clock's start to the first job.
    first_s = min(j.start_s for j in data.jobs)
    if first_s > 0:
        ax.axvspan(0, first_s, color="#dddddd", alpha=0.6, lw=0)
        if first_s >= 0.08 * t_max:  # else only the legend names it
            ax.text(first_s / 2, _LABEL_ROW, "profiling", ha="center", va="center", fontsize=8, color="#555")
    # Rounds: bands, their ends dashed, their names on top.
    ran = [r for r in data.rounds if r.start_s is not None]
    for k, r in enumerate(ran):
        end = r.end_s if r.end_s is not None else t_max
        ax.axvspan(r.start_s, end, color="#f2f2f2" if k % 2 else "#e8eef7", alpha=0.7, lw=0, zorder=0)
        ax.axvline(end, color="#666666", ls="--", lw=0.8, zorder=1, gid=f"rung:{r.index}")
        narrow = (end - r.start_s) < 0.06 * t_max
        name = f"R{r.index}" + ("" if narrow else f" to epoch {r.rung_epoch}")
        ax.text((r.start_s + end) / 2, _LABEL_ROW, name, ha="center", va="center", fontsize=8, color="#333")
    bars = ax.barh(
        [row_of[j.trial_id] for j in data.jobs],
        [j.end_s - j.start_s for j in data.jobs],
        left=[j.start_s for j in data.jobs],
        height=0.72,
        color=[w_colour(j.world_size, ladder) for j in data.jobs],
        edgecolor="#222222",
        linewidth=0.4 if n <= 80 else 0.1,
        zorder=3,
    )
    for k, (bar, j) in enumerate(zip(bars.patches, data.jobs)):
        bar.set_gid(f"job:{j.trial_id}:{k}")
        if j.outcome == OUTCOME_ENDED_WITH_RUN:
            bar.set_hatch("///")
    styles = {"eliminated": ("x", "#000000", 6), "failed": ("X", "#d62728", 8),
              "diverged": ("v", "#9467bd", 7)}
    for kind, (marker, colour, size) in styles.items():
        pts = [(m.at_s, row_of[m.trial_id]) for m in data.marks if m.kind == kind and m.trial_id in row_of]
        if pts:
            ax.scatter(*zip(*pts), marker=marker, color=colour, s=size**2, zorder=5, linewidths=1.2,
                       gid=f"marks:{kind}")
    last_end = {}
    for j in data.jobs:
        last_end[j.trial_id] = max(last_end.get(j.trial_id, 0.0), j.end_s)
    for tid, count in data.retries.items():
        if tid in row_of:
            retries = f"+{count} retr{'y' if count == 1 else 'ies'}"
            ax.text(last_end.get(tid, 0.0) + 0.015 * t_max, row_of[tid], retries, va="center", fontsize=7,
                    color="#d62728", zorder=6)
    deadline = data.burn.time_budget_s
    if deadline is not None and deadline <= t_max:  # else the legend says it is off the scale
        ax.axvline(deadline, color="#d62728", lw=1.6, zorder=4, gid="deadline")
    earlier = _resume_marks(ax, data, deadline, t_max)
    ax.set_xlim(0, t_max)
    ax.set_ylim(n - 0.5, _LABEL_ROW - 0.6)  # the first trial on top; a row above it for the round names
    step = max(1, math.ceil(n / 60))
    ax.set_yticks(range(0, n, step), [rows[i] for i in range(0, n, step)], fontsize=8 if n <= 40 else 6)
    ax.set_xlabel("seconds since the run began")
    ax.set_ylabel(f"trial ({n})")
    ax.set_title(FIGURES["allocation"][0])
    handles = [Patch(facecolor=w_colour(w, ladder), edgecolor="#222222", label=f"W = {w}") for w in ladder]
    if first_s > 0:
        handles.append(Patch(facecolor="#dddddd", label="before the first job (profiling)"))
    handles += [Line2D([], [], marker=m, color=c, ls="", label=k) for k, (m, c, _) in styles.items()
                if any(x.kind == k for x in data.marks)]
    if any(j.outcome == OUTCOME_ENDED_WITH_RUN for j in data.jobs):
        running = "running now (the run goes on)" if data.view.live else "running at the end"
        handles.append(Patch(facecolor="white", edgecolor="#222222", hatch="///", label=running))
    if deadline is not None:
        off = "" if deadline <= t_max else " (off the scale)"
        handles.append(Line2D([], [], color="#d62728", lw=1.6, label=f"deadline {deadline:g} s{off}"))
    handles += earlier
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def _resume_marks(ax: Any, data: ReportData, deadline: float | None, t_max: float) -> list[Any]:
    """Each ``seer resume`` on the allocation chart: a purple dotted line where the run went
    on (the tuner's downtime before it shaded), and a deadline a resume raised as a thin
    dashed red line; returns their legend handles."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = []
    for k, r in enumerate(data.resumes, 1):
        if r.resumed_at_s - r.stopped_at_s >= 0.05:
            ax.axvspan(r.stopped_at_s, r.resumed_at_s, color="#9467bd", alpha=0.15, lw=0, zorder=2,
                       gid=f"down:{k}")
        ax.axvline(r.resumed_at_s, color="#9467bd", ls=":", lw=1.6, zorder=4, gid=f"resume:{k}")
        before = r.previous_time_budget_s
        if before is not None and before != deadline and before <= t_max:
            ax.axvline(before, color="#d62728", ls="--", lw=1.0, alpha=0.7, zorder=4,
                       gid=f"deadline-before-resume:{k}")
            handles.append(Line2D([], [], color="#d62728", ls="--", lw=1.0, alpha=0.7,
                                  label=f"deadline {before:g} s until resume {k}"))
    if data.resumes:
        handles.insert(0, Line2D([], [], color="#9467bd", ls=":", lw=1.6,
                                 label="seer resume: the run went on"))
        if any(r.resumed_at_s - r.stopped_at_s >= 0.05 for r in data.resumes):
            handles.insert(1, Patch(facecolor="#9467bd", alpha=0.15,
                                    label="tuner down (counts against the deadline)"))
    return handles


# ---------------------------------------------------------------------- money and time
def draw_burndown(data: ReportData) -> Figure | None:
    """Time used and money spent at each round's end: measured, the first plan, each re-plan,
    against the budgets (:data:`FIGURES`); ``None`` without rounds run or planned."""
    b = data.burn
    if len(b.measured) < 2 and not b.planned:
        return None
    fig = new_figure(12, 4.8)
    axes = fig.subplots(1, 2)
    replanned = [q for _, _, path in b.replans for q in path]
    indexes = sorted({p.round_index for p in [*b.measured, *b.planned, *replanned]})
    first = b.measured[0].round_index
    for ax, unit in zip(axes, ("time_s", "usd")):
        def ys(path, unit=unit):
            return [getattr(p, unit) for p in path]

        ax.plot([p.round_index for p in b.measured], ys(b.measured), color="#1f77b4", lw=2.2, marker="o",
                ms=5, label="measured", zorder=4, gid=f"burn:{unit}:measured")
        if b.planned:
            ax.plot([p.round_index for p in b.planned], ys(b.planned), color="#555555", ls="--", lw=1.5,
                    marker="s", ms=4, label="first plan", gid=f"burn:{unit}:plan")
        for k, (_at_s, _reason, path) in enumerate(b.replans, 1):
            ax.plot([p.round_index for p in path], ys(path), color="#2ca02c", ls=":", lw=1.4, marker=".",
                    label="re-plans (numbered)" if k == 1 else None, gid=f"burn:{unit}:replan:{k}")
            ax.annotate(str(k), (path[0].round_index, getattr(path[0], unit)), textcoords="offset points",
                        xytext=(4, -12), fontsize=8, color="#2ca02c")
        top = max(ys(b.measured) + ys(b.planned) + ys(replanned) + [1e-9])
        limit = b.time_budget_s if unit == "time_s" else b.money_budget_usd
        name, units = ("deadline", "s") if unit == "time_s" else ("money budget", "USD")
        note = ""
        if limit is not None and limit <= 1.6 * top:
            ax.axhline(limit, color="#d62728", lw=1.6, label=f"{name} {limit:g} {units}",
                       gid="deadline" if unit == "time_s" else "money_budget")
            top = max(top, limit)
        elif limit is not None:
            spent = ys(b.measured)[-1]
            pct = 100 * spent / limit if limit > 0 else 0.0
            used = f"{pct:.0f}%" if pct >= 1 else "under 1%"
            note = f" ({name} {limit:g} {units}: {used} used, off the scale)"
        ax.set_ylim(0, top * 1.1)
        ax.set_xticks(indexes, ["start" if i == first else f"R{i}" for i in indexes])
        ax.set_xlabel("end of round (start: after profiling)")
        ax.grid(alpha=0.3)
        if unit == "time_s":
            ax.set_ylabel("seconds since the run began")
            ax.set_title("time used" + note, fontsize=10)
        else:
            ax.set_ylabel("USD spent (cumulative)")
            ax.set_title("money spent" + note, fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    binding = f" (the first plan said: {b.binding} binds)" if b.binding and b.binding != "none" else ""
    fig.suptitle(FIGURES["burndown"][0] + binding, fontsize=11)
    return fig


def _round_label(r: RoundRow) -> str:
    """A round's tick label: its name, rung (and the first plan's, when another), survivors and
    ``W``, and whether the run ended before it did."""
    planned = (f"\n(plan {r.planned_rung_epoch})"
               if r.planned_rung_epoch is not None and r.planned_rung_epoch != r.rung_epoch else "")
    state = "" if r.completed else ("\nnot run" if r.start_s is None else "\ncut short")
    return f"R{r.index}\nto epoch {r.rung_epoch}{planned}\n{r.num_trials}x W{r.world_size}{state}"


def draw_rounds(data: ReportData) -> Figure | None:
    """Per round: planned, re-planned and measured seconds and dollars, and the measured
    dollars of profiling and of no round (:data:`FIGURES`); ``None`` without rounds."""
    rows = data.rounds
    if not rows:
        return None
    fig = new_figure(12, 4.6)
    ax_s, ax_usd = fig.subplots(1, 2)
    width = 0.27
    x = list(range(len(rows)))
    labels = [_round_label(r) for r in rows]
    series = (("first plan", "#bbbbbb"), ("last re-plan", "#74c476"), ("measured", "#1f77b4"))
    for ax, unit in ((ax_s, "s"), (ax_usd, "usd")):
        values = (
            [r.planned_s if unit == "s" else r.planned_usd for r in rows],
            [r.predicted_s if unit == "s" else r.predicted_usd for r in rows],
            [r.measured_s if unit == "s" else r.measured_usd for r in rows],
        )
        for k, ((name, colour), vals) in enumerate(zip(series, values)):
            bars = ax.bar([i + (k - 1) * width for i in x], [v or 0.0 for v in vals], width, color=colour,
                          label=name)
            if name == "measured" and unit == "usd":
                for bar, r in zip(bars.patches, rows):
                    bar.set_gid(f"usd:round:{r.index}")
        ax.set_xticks(x, labels, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    extra = [("profiling", data.money.profiling), ("no round", data.money.other)]
    extra = [(name, v) for name, v in extra if abs(v) > 1e-12]
    if extra:
        xe = [len(rows) + i for i in range(len(extra))]
        bars = ax_usd.bar([i + width for i in xe], [v for _, v in extra], width, color="#1f77b4", hatch="..")
        for bar, (name, _) in zip(bars.patches, extra):
            bar.set_gid(f"usd:{'profiling' if name == 'profiling' else 'other'}")
        ax_usd.set_xticks(x + xe, labels + [name for name, _ in extra], fontsize=8)
    ax_s.set_ylabel("seconds")
    ax_s.set_title("seconds per round")
    ax_usd.set_ylabel("USD")
    ax_usd.set_title(f"dollars per round (measured sum {data.money.cost_usd:.4g} USD = the run's cost)",
                     fontsize=10)
    ax_s.legend(fontsize=8)
    return fig


def draw_slot_seconds(data: ReportData) -> Figure | None:
    """The paid slot-seconds split (:data:`FIGURES`); ``None`` when the run does not say."""
    parts = [(name, v) for name, v in data.slot_seconds if v > 1e-9]
    if not parts:
        return None
    paid = sum(v for _, v in data.slot_seconds)
    fig = new_figure(12, 2.2)
    ax = fig.subplots()
    colours = {"training": "#2ca02c", "profiling": "#9467bd", "other": "#bbbbbb"}
    left = 0.0
    for k, (name, v) in enumerate(parts):
        colour = colours.get(name, ("#ff7f0e", "#ffbb78", "#d62728")[k % 3])
        ax.barh([0], [v], left=left, color=colour, edgecolor="white", gid=f"slots:{name}",
                label=f"{name}: {v:.0f} slot-s ({100 * v / paid:.0f}%)")
        if v / paid > 0.07:
            ax.text(left + v / 2, 0, f"{name}\n{100 * v / paid:.0f}%", ha="center", va="center", fontsize=8)
        left += v
    ax.set_xlim(0, paid)
    ax.set_yticks([])
    ax.set_xlabel(f"slot-seconds (paid {paid:.0f})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


# ---------------------------------------------------------------------- curves and the space
def draw_curves(data: ReportData) -> Figure | None:
    """Every trial's learning curve, rungs marked, the answer highlighted (:data:`FIGURES`);
    ``None`` when no trial reported."""
    curves = [c for c in data.curves if c.epochs]
    if not curves:
        return None
    from matplotlib.lines import Line2D

    res = data.view.results
    metric, mode = res.get("metric", "val_accuracy"), res.get("mode", "max")
    fig = new_figure(12, 5.6)
    ax = fig.subplots()
    top = max(max(c.epochs) for c in curves)
    styles = {"failed": "#ff7f0e", "diverged": "#9467bd"}
    many = len(curves) > 40
    seen: set[str] = set()
    for c in curves:
        if c.is_answer:
            continue
        kind = c.status if c.status in styles else ("top" if max(c.epochs) >= top else "earlier")
        seen.add(kind)
        colour = styles.get(kind, "#1f77b4" if kind == "top" else "#7f7f7f")
        ax.plot(c.epochs, c.values, color=colour, lw=1.0 if kind == "top" else 0.7,
                alpha=0.9 if kind != "earlier" else (0.35 if many else 0.7),
                marker="o" if len(c.epochs) < 3 else None, ms=2.5 if many else 4, gid=f"curve:{c.trial_id}")
        if c.status == "diverged":
            finite = [(e, v) for e, v in zip(c.epochs, c.values) if math.isfinite(v)]
            if finite:
                ax.plot(*finite[-1], marker="v", color=styles["diverged"], ms=7)
    answer = next((c for c in curves if c.is_answer), None)
    best = res.get("best") or {}
    if answer is not None:
        dots = "o" if len(answer.epochs) <= 30 else None
        ax.plot(answer.epochs, answer.values, color="#d62728", lw=2.6, marker=dots, ms=3, zorder=5,
                gid=f"curve:{answer.trial_id}")
        judged = best.get("epochs")
        if judged in answer.epochs:
            at = answer.values[answer.epochs.index(judged)]
            ax.plot([judged], [at], marker="*", ms=16, color="#d62728", markeredgecolor="black", zorder=6)
    for r in data.rungs:
        ax.axvline(r, color="#444444", ls=":", lw=0.9)
    ticks = sorted(set(data.rungs) | {1, top})
    if top >= 10:
        ax.set_xscale("log")
        ax.minorticks_off()
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("epoch" + (" (log scale)" if top >= 10 else "") + "; dotted lines: the rungs")
    better = "higher" if mode == "max" else "lower"
    ax.set_ylabel(f"{metric} ({better} is better)")
    ax.set_title(f"{FIGURES['curves'][0]}: {len(curves)} trials", fontsize=11)
    handles = []
    if answer is not None:
        handles.append(Line2D([], [], color="#d62728", lw=2.6, marker="*", ms=10, markeredgecolor="black",
                              label=f"the answer, {answer.trial_id} (star: the epoch it was judged at)"))
    labels = {"top": ("#1f77b4", f"others that reached epoch {top}"),
              "earlier": ("#7f7f7f", "stopped earlier (eliminated, or the run ended)"),
              "failed": (styles["failed"], "failed"), "diverged": (styles["diverged"], "diverged")}
    handles += [Line2D([], [], color=col, marker="o", ms=4, label=text)
                for kind, (col, text) in labels.items() if kind in seen]
    ax.legend(handles=handles, loc="lower right" if mode == "max" else "upper right", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def draw_space(data: ReportData) -> Figure | None:
    """One scatter per hyperparameter: its value against the metric at the last epoch reached,
    over the range the search space draws from (:data:`FIGURES`); ``None`` without
    hyperparameters that vary."""
    params = [p for p in data.params if p.values]
    if not params:
        return None
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    res = data.view.results
    metric = res.get("metric", "val_accuracy")
    ncols = min(3, len(params))
    nrows = math.ceil(len(params) / ncols)
    fig = new_figure(12, 3.3 * nrows + 0.5)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    all_epochs = [e for p in params for e in p.epochs]
    lo, hi = max(1, min(all_epochs)), max(max(all_epochs), 1)
    norm = LogNorm(lo, hi) if hi >= 10 * lo else Normalize(lo - 0.5, hi + 0.5)
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    scatter = None
    for k, p in enumerate(params):
        ax = axes[k // ncols][k % ncols]
        xs = p.values
        if p.scale == "category":  # spread the points of one choice a little, the same way every time
            xs = [v + 0.25 * (((i * 7919) % 101) / 100 - 0.5) for i, v in enumerate(p.values)]
        scatter = ax.scatter(xs, p.metric, c=[max(e, lo) for e in p.epochs], cmap="viridis", norm=norm, s=22,
                             alpha=0.85, edgecolors="none", gid=f"space:{p.name}")
        if p.answer is not None:
            ax.scatter([p.answer[0]], [p.answer[1]], marker="*", s=220, color="#d62728", edgecolors="black",
                       linewidths=0.6, zorder=5)
        if p.scale == "log":
            ax.set_xscale("log")
            low, high = p.bounds or (min(p.values), max(p.values))
            decades = math.log10(high / low) if low > 0 and high > low else 0.0
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0,) if decades > 1.5 else (1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_formatter(NullFormatter())
        if p.bounds is not None:
            low, high = p.bounds
            if p.scale == "log":
                pad = (high / low) ** 0.03
                ax.set_xlim(low / pad, high * pad)
            else:
                ax.set_xlim(low - 0.03 * (high - low), high + 0.03 * (high - low))
        if p.scale == "category":
            ax.set_xticks(range(len(p.categories)), [str(c) for c in p.categories])
            ax.set_xlim(-0.6, len(p.categories) - 0.4)
        notes = (["log scale"] if p.scale == "log" else []) + (
            [f"drawn from {p.bounds[0]:g} to {p.bounds[1]:g}"] if p.bounds else [])
        ax.set_title(p.name + (f" ({'; '.join(notes)})" if notes else ""), fontsize=10)
        ax.grid(alpha=0.3)
        if k % ncols == 0:
            ax.set_ylabel(metric)
    for k in range(len(params), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    if scatter is not None:
        ticks = [e for e in sorted(set(all_epochs) | set(data.rungs)) if lo <= e <= hi]
        bar = fig.colorbar(scatter, ax=axes, label="last epoch reached", shrink=0.9, ticks=ticks or None)
        bar.ax.yaxis.set_major_formatter(plain)
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
    return fig


#: Each figure's drawing function, by name (the page's order is :data:`FIGURES`').
DRAW = {
    "allocation": draw_allocation,
    "burndown": draw_burndown,
    "rounds": draw_rounds,
    "slot_seconds": draw_slot_seconds,
    "curves": draw_curves,
    "space": draw_space,
}


def draw_figures(draw: dict[str, Callable[[Any], Figure | None]], names: Iterable[str],
                 data: Any) -> dict[str, Figure]:
    """``draw[name](data)`` for each of ``names`` in order, the figures drawn by name (a
    function returns ``None`` when there is nothing to draw: left out)."""
    figures = {}
    for name in names:
        fig = draw[name](data)
        if fig is not None:
            figures[name] = fig
    return figures


def draw_all(data: ReportData) -> dict[str, Figure]:
    """Every figure there is something to draw for, by name, in the page's order."""
    return draw_figures(DRAW, FIGURES, data)


# ---------------------------------------------------------------------- the page
_CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1250px; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
img { max-width: 100%; border: 1px solid #eee; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f2f2f2; } td.l, th.l { text-align: left; }
.missing { background: #fff4e5; border: 1px solid #f0b46a; padding: 0.5em 1em; }
.caption { color: #555; font-size: 0.9em; } code { background: #f4f4f4; padding: 0 0.2em; }
.live { background: #e8f4fd; border: 1px solid #6baed6; padding: 0.5em 1em; }
"""

#: A live run's page (``seer tune`` refreshing it at each rung) asks the browser to reload it
#: this often, seconds.
LIVE_RELOAD_S = 30

#: The end of every page :func:`page_head` starts.
PAGE_END = "</body></html>"


def _e(x: Any) -> str:
    return html.escape(str(x))


def _n(x: Any, fmt: str = ".4g") -> str:
    return "" if not isinstance(x, (int, float)) or not math.isfinite(x) else format(x, fmt)


def page_head(title: str, *, reload_s: int | None = None) -> str:
    """The start of a self-contained page up to its open ``<body>``: the title, the styles
    inline (the page loads nothing from the network); ``reload_s``: the browser reloads the
    page every that many seconds (a page that is rewritten while it is open). End the page
    with :data:`PAGE_END`."""
    reload = f"<meta http-equiv='refresh' content='{int(reload_s)}'>" if reload_s else ""
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'>{reload}<title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body>")


def figure_html(name: str, title: str, caption: str, png: bytes) -> str:
    """One figure of a page: its heading (anchor ``name``), its caption and the PNG image
    ``png`` inside the page as a ``data:`` URI."""
    b64 = base64.b64encode(png).decode("ascii")
    return (f"<h2 id='{_e(name)}'>{_e(title)}</h2><p class='caption'>{_e(caption)}</p>"
            f"<img alt='{_e(title)}' src='data:image/png;base64,{b64}'>")


def write_page(out: Path, page: str, images: dict[str, bytes], *, png_dir: Path | None = None) -> None:
    """Write ``page`` to ``out`` atomically (a reader never sees half a page) and, with
    ``png_dir``, each of ``images`` (PNG bytes by name) as ``png_dir/NAME.png``.

    Raises:
        OSError: a file cannot be written (``out`` is then left as it was).
    """
    from seer_torch.runfiles import atomic_write_text

    atomic_write_text(out, page)
    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
        for name, png in images.items():
            (png_dir / f"{name}.png").write_bytes(png)


def table_html(headers: list[str], rows: list[list[Any]], left: int = 1) -> str:
    """An HTML table (every cell escaped); the first ``left`` columns are left-aligned."""
    def cls(i: int) -> str:
        return "l" if i < left else ""

    head = "".join(f'<th class="{cls(i)}">{_e(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{cls(i)}">{_e(c)}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(data: ReportData, images: dict[str, bytes], *, run_dir: Path,
                live_note: str | None = None) -> str:
    """The report page: every figure in ``images`` (PNG bytes by name) embedded, the plan
    against reality, the re-plans, the answer and the stop reason; what is missing first.

    ``live_note``: the page of a run in progress (``seer tune`` refreshing it at each rung):
    a banner at the top says so with this note, and the browser reloads the page every
    :data:`LIVE_RELOAD_S` seconds."""
    res = data.view.results
    metric, mode = res.get("metric", "val_accuracy"), res.get("mode", "max")
    budget = res.get("budget") or {}
    live = live_note is not None
    out = [page_head(f"seer report{' (in progress)' if live else ''}: {run_dir.name}",
                     reload_s=LIVE_RELOAD_S if live else None)]
    out.append(f"<h1>seer report: {_e(res.get('experiment') or run_dir.name)}</h1>")
    if live:
        out.append(f"<div class='live'><b>In progress.</b> {_e(live_note)}</div>")
    out.append(
        f"<p>Run directory <code>{_e(run_dir)}</code>; policy {_e(res.get('policy'))}; metric "
        f"<code>{_e(metric)}</code> ({'larger' if mode == 'max' else 'smaller'} is better); "
        f"{len(res.get('trials') or [])} trials, {len(data.jobs)} jobs; used "
        f"{_n(budget.get('time_used_s'), '.1f')} of {_n(budget.get('time_budget_s'), 'g')} s and "
        f"{_n(budget.get('cost_usd'), '.4f')} of {_n(budget.get('money_budget_usd'), 'g')} USD.</p>"
    )
    missing = list(data.view.missing)
    for name in FIGURES:
        if name not in images:
            missing.append(f"no {FIGURES[name][0].split(':')[0].lower()} figure: nothing to draw it from")
    if missing:
        what = "This is a partial report. " if data.view.partial and not live else ""
        out.append(f"<div class='missing'><b>{what}Missing:</b><ul>"
                   + "".join(f"<li>{_e(m)}</li>" for m in missing) + "</ul></div>")
    answer, ended = (("The best trial so far", "Where the run stands") if live
                     else ("The answer", "Why the run ended"))
    out.append(f"<h2>{answer}</h2>" + _answer_html(data, run_dir))
    out.append(f"<h2>{ended}</h2><p>{_e(data.stop_words)}</p>")
    for name, (title, caption) in FIGURES.items():
        if name not in images:
            continue
        out.append(figure_html(name, title, caption, images[name]))
        if name == "burndown":
            out.append(_replans_html(data))
        if name == "rounds":
            out.append(_rounds_html(data))
    out.append(_trials_html(data))
    writer = "<code>seer tune</code> as it runs" if live else "<code>seer report</code>"
    out.append(f"<p class='caption'>Written by {writer}; a CSV of every trial: "
               f"<code>seer export {_e(run_dir)}</code>.</p>" + PAGE_END)
    return "\n".join(out)


def _answer_html(data: ReportData, run_dir: Path) -> str:
    res = data.view.results
    best = res.get("best")
    parts = [f"<p>{_e(data.answer_words)}</p>"]
    if not best:
        return "".join(parts)
    metric = res.get("metric", "val_accuracy")
    rows = [[metric, _n(best.get(metric))], ["test_accuracy", _n(best.get("test_accuracy"))],
            ["epochs (judged at)", best.get("epochs")], ["world sizes", best.get("world_sizes")]]
    config = best.get("config") or {}
    rows += [[f"config: {k}", _n(v) if isinstance(v, float) else v] for k, v in config.items()]
    if data.checkpoint is not None:
        path, epoch = data.checkpoint
        held = f" (holds epoch {epoch})" if epoch is not None else ""
        rows.append(["checkpoint", f"{path}{held}"])
        if epoch is not None and epoch != best.get("epochs"):
            parts.append(f"<p>Its checkpoint holds epoch {epoch}, not the epoch it was judged at "
                         f"({_e(best.get('epochs'))}): the trial trained on after that rung.</p>")
    else:
        rows.append(["checkpoint", f"none in {run_dir / 'trials' / best['trial_id']}"])
    parts.append(table_html(["", best["trial_id"]], rows))
    return "".join(parts)


def _rounds_html(data: ReportData) -> str:
    def planned(x: Any) -> str:
        return "" if x is None else f" ({x})"

    headers = ["round", "rung epoch (plan)", "trials (plan)", "W (plan)", "planned s", "re-planned s",
               "measured s", "planned USD", "re-planned USD", "measured USD", "completed"]
    rows = [[f"R{r.index}", f"{r.rung_epoch}{planned(r.planned_rung_epoch)}",
             f"{r.num_trials}{planned(r.planned_num_trials)}",
             f"{r.world_size}{planned(r.planned_world_size)}",
             _n(r.planned_s, ".1f"), _n(r.predicted_s, ".1f"), _n(r.measured_s, ".1f"), _n(r.planned_usd),
             _n(r.predicted_usd), _n(r.measured_usd),
             "yes" if r.completed else ("not run" if r.start_s is None else "no")] for r in data.rounds]
    m = data.money
    before_s = min((r.start_s for r in data.rounds if r.start_s is not None), default=None)
    rows.append(["before R1 (profiling)", "", "", "", "", "", _n(before_s, ".1f"), "", "", _n(m.profiling),
                 ""])
    if abs(m.other) > 1e-12:
        rows.append(["in no round", "", "", "", "", "", "", "", "", _n(m.other), ""])
    res = data.view.results
    plan = res.get("plan") or {}
    rows.append(["the run", "", "", "", _n(plan.get("predicted_time_s"), ".1f"), "",
                 _n((res.get("budget") or {}).get("time_used_s"), ".1f"), _n(plan.get("predicted_cost_usd")),
                 "", _n(m.cost_usd), ""])
    note = ("<p class='caption'>The plan's totals are its rounds'; the run's are its clock and its bill "
            "(profiling and the moments between rounds included).")
    note += f" The first plan: {_e(plan.get('message'))}</p>" if plan.get("message") else "</p>"
    return "<h3>Plan against reality</h3>" + table_html(headers, rows) + note


def _replans_html(data: ReportData) -> str:
    if not data.burn.replans and not data.resumes:
        return "<p class='caption'>No re-plans.</p>"
    rows = [[k, _n(at, ".1f"), reason] for k, (at, reason, _) in enumerate(data.burn.replans, 1)]
    # Each seer resume among them, at its time (numbered apart: the burn-down numbers re-plans).
    rows += [[f"resume {k}", _n(r.resumed_at_s, ".1f"), r.words()] for k, r in enumerate(data.resumes, 1)]
    rows.sort(key=lambda row: float(row[1]) if row[1] not in ("", "n/a") else math.inf)
    return "<h3>Re-plans</h3>" + table_html(["#", "at s", "reason"], rows, left=0).replace(
        "<td class=\"\">", "<td class=\"l\">")


def _trials_html(data: ReportData) -> str:
    res = data.view.results
    metric = res.get("metric", "val_accuracy")
    by_id = {t["trial_id"]: t for t in res.get("trials") or []}
    rows = []
    for tid in data.rows:
        t = by_id.get(tid, {})
        rows.append([tid, t.get("status", ""), t.get("epochs", ""), _n(t.get(metric)),
                     " ".join(str(w) for w in t.get("world_sizes") or []), t.get("failures", 0) or "",
                     t.get("error") or ""])
    headers = ["trial", "status", "epochs", metric, "W of each job", "retries", "error"]
    return (f"<h2>Every trial</h2><details><summary>{len(rows)} trials, in the allocation chart's order"
            "</summary>" + table_html(headers, rows) + "</details>")


def write_report(data: ReportData, out: Path, *, png_dir: Path | None = None,
                 live_note: str | None = None, images_out: dict[str, bytes] | None = None) -> list[str]:
    """Draw every figure of ``data``, write the page to ``out`` (atomically) and, with
    ``png_dir``, each figure as ``png_dir/NAME.png``; returns the names of the figures drawn
    (nothing is written when there are none). ``live_note``: the page of a run in progress
    (:func:`render_html`). ``images_out`` gets each figure's PNG by name (to be written
    elsewhere too, such as TensorBoard, without drawing them again).

    Raises:
        OSError: a file cannot be written.
    """
    figures = draw_all(data)
    if not figures:
        return []
    images = {name: png_bytes(fig) for name, fig in figures.items()}
    if images_out is not None:
        images_out.update(images)
    write_page(out, render_html(data, images, run_dir=data.files.run_dir, live_note=live_note), images,
               png_dir=png_dir)
    return list(figures)


__all__ = [
    "DRAW", "FIGURES", "LIVE_RELOAD_S", "PAGE_END", "draw_all", "draw_figures", "figure_html", "new_figure",
    "page_head", "png_bytes",
    "render_html", "table_html", "w_colour", "write_page", "write_report",
]
