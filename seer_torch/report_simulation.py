"""``seer report SIMULATION.json``: the page of a ``seer simulate --json`` comparison of
policies: the table's metric of each policy's answer against the budget, one line per policy;
the time and money each used against the budget; the configurations each tried; every number
in a table (:mod:`seer_torch.commands.simulate` says what the JSON holds: one budget, or a
sweep of them).

The x axis is the budget that varies: the deadline (seconds) or the money budget (USD),
whichever takes more values in the file (the deadline on a tie); the other budget's values are
one panel each. A file of one budget draws one point per policy.

:func:`parse_simulation` is pure (the parsed JSON in, :class:`Simulation` out, a
:class:`~seer_torch.errors.ConfigError` naming the field for a file that is not what
``seer simulate --json`` prints); :func:`read_simulation` reads the file; the ``draw_*``
functions return matplotlib figures whose lines carry a ``gid`` (``metric:POLICY:PANEL``,
``time:POLICY:PANEL``, ``usd:POLICY:PANEL``, ``configurations:POLICY:PANEL``; ``PANEL`` the index
in :attr:`Simulation.panels`) so that tests can read what was drawn; :func:`write_simulation_report`
writes the page with the run report's scaffolding (:func:`seer_torch.report.page_head` and the rest).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seer_torch.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: What ``seer report`` takes, in words (the message of bad input).
EXPECTED = ("a run directory made by `seer tune`, or the JSON that `seer simulate --json` prints "
            "(its \"policies\", or a \"budgets\" list of them for a sweep)")

#: The figures, in the page's order: ``name -> (title, caption)``.
FIGURES: dict[str, tuple[str, str]] = {
    "metric": (
        "The answer's metric against the budget",
        "One line per policy: the mean over seeds of the table's metric of the configuration the policy "
        "returned, at the epochs it reached (error bars: ± one standard deviation over seeds; a run "
        "without an answer counts as the table's worst value, 0 for an accuracy). The oracle, when "
        "simulated, is the dashed black line: the table's best configuration (best at max_epochs) "
        "trained alone as far as the budget allows, nothing spent on search. At a short deadline it "
        "may end below the policies: another configuration can be better at the epochs it reaches.",
    ),
    "spend": (
        "Time and money used against the budget",
        "One line per policy: the mean over seeds of the seconds and dollars the run used; the red "
        "line is the budget (a point above it would be a budget violation).",
    ),
    "configurations": (
        "Configurations tried against the budget",
        "One line per policy: how many configurations it started (mean over seeds): how widely it "
        "explored.",
    ),
}

#: The budgets, as the JSON names them: ``key -> (label, unit)``.
BUDGETS = {"time_budget_s": ("deadline", "s"), "money_budget_usd": ("money budget", "USD")}

_ORACLE = "oracle"
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
            "#bcbd22", "#7f7f7f")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")  # lines that coincide stay apart


@dataclass(frozen=True)
class PolicyPoint:
    """One policy at one budget: the summary over seeds ``seer simulate`` printed. Seconds, USD;
    values in the table's metric (``None`` where the JSON has none).

    Attributes:
        policy: its name.
        time_budget_s, money_budget_usd: the budget.
        runs: seeds simulated.
        value_mean, value_std, value_min, value_max: the answer's metric over seeds.
        regret_mean: mean regret to the oracle (``>= 0``).
        time_used_mean_s, time_used_max_s, cost_mean_usd, cost_max_usd: what the runs used.
        configurations_mean: configurations started, mean over seeds.
        answer_epochs_mean: the epochs the answer reached, mean over seeds.
        violations: runs over a budget; no_answer: runs without an answer.
    """

    policy: str
    time_budget_s: float
    money_budget_usd: float
    runs: int | None
    value_mean: float | None
    value_std: float | None
    value_min: float | None
    value_max: float | None
    regret_mean: float | None
    time_used_mean_s: float | None
    time_used_max_s: float | None
    cost_mean_usd: float | None
    cost_max_usd: float | None
    configurations_mean: float | None
    answer_epochs_mean: float | None
    violations: int | None
    no_answer: int | None


@dataclass(frozen=True)
class Simulation:
    """A ``seer simulate --json`` file, as the page shows it.

    Attributes:
        source: the file.
        metric, mode: the table's metric and its direction (``max``: larger is better).
        table, profile, num_slots, keep_alive, seeds: what was simulated (``None``: not said).
        policies: the policies, in the file's order.
        points: one per policy and budget, budgets in ascending order (deadline first).
        x: the budget on the x axis (a key of :data:`BUDGETS`); ``panel_key`` the other one.
        panels: the values of ``panel_key``, one panel each, ascending.
        runs: every simulated run (policy, seed, budget and what it achieved), as the file
            lists them.
    """

    source: Path
    metric: str
    mode: str
    table: str | None
    profile: str | None
    num_slots: int | None
    keep_alive: bool | None
    seeds: int | None
    policies: list[str]
    points: list[PolicyPoint]
    x: str
    panel_key: str
    panels: list[float]
    runs: list[dict[str, Any]]


# ---------------------------------------------------------------------- reading
def read_simulation(path: str | Path) -> Simulation:
    """Read and check a ``seer simulate --json`` file.

    Raises:
        ConfigError: ``path`` cannot be read, is not (whole) JSON, or is not what ``seer simulate
            --json`` prints; the message names the file (field ``RUN_DIR``, the argument of ``seer
            report``) or the field inside it, the value and what is expected.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not text"
        raise ConfigError("RUN_DIR", str(path), f"{EXPECTED}; this file cannot be read ({why})") from None
    try:
        raw = json.loads(text)
    except ValueError as e:
        end = " (it ends early: truncated?)" if getattr(e, "pos", 0) >= len(text.rstrip()) else ""
        raise ConfigError("RUN_DIR", str(path),
                          f"{EXPECTED}; this file is not valid JSON: {e}{end}") from None
    return parse_simulation(raw, path)


def _where(path: Path, at: str) -> str:
    return f"{path}: {at}"


def _number(raw: Any, path: Path, at: str, *, allow_none: bool = True,
            positive: bool = False) -> float | None:
    if raw is None and allow_none:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw) or (
            positive and not raw > 0):
        what = "a finite number > 0" if positive else "a finite number" + (" or null" if allow_none else "")
        raise ConfigError(_where(path, at), raw, what)
    return float(raw)


def _stat(summary: dict[str, Any], key: str, stat: str, path: Path, at: str, *,
          required: bool = False) -> float | None:
    block = summary.get(key)
    if block is None and not required:
        return None
    if not isinstance(block, dict) or (required and stat not in block):
        raise ConfigError(_where(path, f"{at}.{key}"), block,
                          f'an object with "{stat}" (as seer simulate --json writes: mean, std, min, max)')
    return _number(block.get(stat), path, f"{at}.{key}.{stat}")


def _count(summary: dict[str, Any], key: str, path: Path, at: str) -> int | None:
    v = summary.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(_where(path, f"{at}.{key}"), v, "an integer >= 0")
    return v


def _point(name: str, summary: Any, time_s: float, usd: float, path: Path, at: str) -> PolicyPoint:
    if not isinstance(summary, dict):
        raise ConfigError(_where(path, at), summary, "an object: the policy's summary over seeds")
    return PolicyPoint(
        policy=name,
        time_budget_s=time_s,
        money_budget_usd=usd,
        runs=_count(summary, "runs", path, at),
        value_mean=_stat(summary, "final_value", "mean", path, at, required=True),
        value_std=_stat(summary, "final_value", "std", path, at),
        value_min=_stat(summary, "final_value", "min", path, at),
        value_max=_stat(summary, "final_value", "max", path, at),
        regret_mean=_stat(summary, "regret", "mean", path, at),
        time_used_mean_s=_stat(summary, "time_used_s", "mean", path, at, required=True),
        time_used_max_s=_stat(summary, "time_used_s", "max", path, at),
        cost_mean_usd=_stat(summary, "cost_usd", "mean", path, at, required=True),
        cost_max_usd=_stat(summary, "cost_usd", "max", path, at),
        configurations_mean=_stat(summary, "num_configurations", "mean", path, at),
        answer_epochs_mean=_stat(summary, "answer_epochs", "mean", path, at),
        violations=_count(summary, "budget_violations", path, at),
        no_answer=_count(summary, "no_answer", path, at),
    )


def _budget_points(raw: dict[str, Any], path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(where, point)`` of each budget in the file: its ``budgets`` (a sweep), or the file itself."""
    if "budgets" in raw:
        budgets = raw["budgets"]
        if not isinstance(budgets, list) or not budgets or not all(isinstance(b, dict) for b in budgets):
            raise ConfigError(_where(path, "budgets"), budgets if not isinstance(budgets, list) else
                              f"a list of {len(budgets)}", "a non-empty list of objects, one per budget")
        return [(f"budgets[{k}]", b) for k, b in enumerate(budgets)]
    if "policies" not in raw:
        keys = ", ".join(sorted(map(str, raw))[:8]) or "none"
        hint = ("; this is a run's results.json: give its folder, the run directory" if "trials" in raw
                and "budget" in raw else f"; this JSON has no \"policies\" (its keys: {keys})")
        raise ConfigError("RUN_DIR", str(path), EXPECTED + hint)
    return [("", raw)]


def parse_simulation(raw: Any, source: str | Path = "<json>") -> Simulation:
    """The :class:`Simulation` of ``raw``, the parsed output of ``seer simulate --json`` (one
    budget, or a sweep's ``budgets``); ``source`` names it in messages. Pure.

    Raises:
        ConfigError: ``raw`` is not what ``seer simulate --json`` prints; the message names the
            field (``FILE: budgets[1].policies.seer.final_value.mean``), the value and what is
            allowed.
    """
    path = Path(source)
    if not isinstance(raw, dict):
        raise ConfigError("RUN_DIR", str(path),
                          f"{EXPECTED}; this JSON is a {type(raw).__name__}, not an object")
    points: list[PolicyPoint] = []
    policies: list[str] = []
    seen: set[tuple[float, float]] = set()
    for where, b in _budget_points(raw, path):
        prefix = f"{where}." if where else ""
        time_s = _number(b.get("time_budget_s"), path, prefix + "time_budget_s", allow_none=False,
                         positive=True)
        usd = _number(b.get("money_budget_usd"), path, prefix + "money_budget_usd", allow_none=False,
                      positive=True)
        assert time_s is not None and usd is not None
        if (time_s, usd) in seen:
            raise ConfigError(_where(path, where or "budgets"), f"{time_s:g} s, {usd:g} USD",
                              "each budget once")
        seen.add((time_s, usd))
        summaries = b.get("policies")
        if not isinstance(summaries, dict) or not summaries:
            raise ConfigError(_where(path, prefix + "policies"), summaries,
                              "a non-empty object: each policy's summary over seeds, by name")
        for name, summary in summaries.items():
            points.append(_point(str(name), summary, time_s, usd, path, f"{prefix}policies.{name}"))
            if name not in policies:
                policies.append(str(name))
    mode = raw.get("mode", "max")
    if mode not in ("max", "min"):
        raise ConfigError(_where(path, "mode"), mode, '"max" or "min"')
    runs = [{**r, "time_budget_s": b["time_budget_s"], "money_budget_usd": b["money_budget_usd"]}
            for _, b in _budget_points(raw, path) if isinstance(b.get("runs"), list)
            for r in b["runs"] if isinstance(r, dict)]
    times = sorted({p.time_budget_s for p in points})
    moneys = sorted({p.money_budget_usd for p in points})
    x, panel_key = (("time_budget_s", "money_budget_usd") if len(times) >= len(moneys)
                    else ("money_budget_usd", "time_budget_s"))
    points.sort(key=lambda p: (p.time_budget_s, p.money_budget_usd, policies.index(p.policy)))
    profile = raw.get("profile")
    seeds = raw.get("seeds")
    return Simulation(
        source=path,
        metric=str(raw.get("metric", "val_accuracy")),
        mode=mode,
        table=str(raw["table"]) if raw.get("table") is not None else None,
        profile=str(profile.get("name")) if isinstance(profile, dict) and profile.get("name") else None,
        num_slots=raw.get("num_slots") if isinstance(raw.get("num_slots"), int) else None,
        keep_alive=raw.get("keep_alive") if isinstance(raw.get("keep_alive"), bool) else None,
        seeds=seeds if isinstance(seeds, int) and not isinstance(seeds, bool) else None,
        policies=policies,
        points=points,
        x=x,
        panel_key=panel_key,
        panels=moneys if x == "time_budget_s" else times,
        runs=runs,
    )


# ---------------------------------------------------------------------- the drawn data
def series(sim: Simulation, field: str, panel: int) -> dict[str, tuple[list[float], list[float]]]:
    """Each policy's line in panel ``panel``: ``(budgets, values)`` of :class:`PolicyPoint`
    attribute ``field`` (such as ``value_mean``), the budgets ascending on :attr:`Simulation.x`;
    points without a value are left out, policies without any point too."""
    at = sim.panels[panel]
    out: dict[str, tuple[list[float], list[float]]] = {}
    for name in sim.policies:
        pts = sorted((getattr(p, sim.x), getattr(p, field)) for p in sim.points
                     if p.policy == name and getattr(p, sim.panel_key) == at
                     and getattr(p, field) is not None)
        if pts:
            out[name] = ([x for x, _ in pts], [y for _, y in pts])
    return out


def ranks(sim: Simulation) -> dict[tuple[str, float, float], int]:
    """Each policy's rank at each budget by its mean metric (1: the best; ties share a rank;
    the oracle, a reference, and policies without a mean are not ranked), by ``(policy,
    time_budget_s, money_budget_usd)``."""
    out: dict[tuple[str, float, float], int] = {}
    budgets = sorted({(p.time_budget_s, p.money_budget_usd) for p in sim.points})
    sign = 1.0 if sim.mode == "max" else -1.0
    for t, m in budgets:
        here = [p for p in sim.points if (p.time_budget_s, p.money_budget_usd) == (t, m)
                and p.policy != _ORACLE and p.value_mean is not None]
        for p in here:
            assert p.value_mean is not None
            out[(p.policy, t, m)] = 1 + sum(sign * q.value_mean > sign * p.value_mean  # type: ignore[operator]
                                            for q in here)
    return out


# ---------------------------------------------------------------------- drawing
def _colour(sim: Simulation, name: str) -> str:
    return "#000000" if name == _ORACLE else _COLOURS[sim.policies.index(name) % len(_COLOURS)]


def _panel_title(sim: Simulation, k: int) -> str:
    label, unit = BUDGETS[sim.panel_key]
    return f"{label} {sim.panels[k]:g} {unit}"


def _x_label(sim: Simulation) -> str:
    label, unit = BUDGETS[sim.x]
    return f"{label}, {unit}"


def _x_axis(ax: Any, sim: Simulation) -> None:
    xs = sorted({getattr(p, sim.x) for p in sim.points})
    if len(xs) > 2 and xs[-1] / xs[0] >= 8:
        ax.set_xscale("log")
        ax.minorticks_off()
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    if len(xs) == 1:
        ax.set_xlim(xs[0] * 0.8, xs[0] * 1.2)
    ax.set_xlabel(_x_label(sim) + (" (log scale)" if ax.get_xscale() == "log" else ""))
    ax.grid(alpha=0.3)


def _lines(ax: Any, sim: Simulation, field: str, panel: int, prefix: str, *, std: str | None = None) -> None:
    stds = series(sim, std, panel) if std else {}
    for name, (xs, ys) in series(sim, field, panel).items():
        oracle = name == _ORACLE
        k = sim.policies.index(name)
        kw = {"color": _colour(sim, name), "ls": "--" if oracle else "-", "lw": 1.4 if oracle else 1.8,
              "marker": "" if oracle else _MARKERS[k % len(_MARKERS)], "ms": 6, "alpha": 0.85, "label": name}
        if name in stds and stds[name][0] == xs and not oracle:
            bars = ax.errorbar(xs, ys, yerr=stds[name][1], capsize=3, **kw)
            bars.lines[0].set_gid(f"{prefix}:{name}:{panel}")
        else:
            (line,) = ax.plot(xs, ys, **kw)
            line.set_gid(f"{prefix}:{name}:{panel}")


def draw_metric(sim: Simulation) -> Figure:
    """The answer's metric (mean, ± std) against the budget, one line per policy and one panel
    per value of the other budget (:data:`FIGURES`)."""
    from seer_torch.report import new_figure

    n = len(sim.panels)
    fig = new_figure(12, 4.2 * n + 0.6)
    axes = fig.subplots(n, 1, squeeze=False)
    better = "higher" if sim.mode == "max" else "lower"
    for k in range(n):
        ax = axes[k][0]
        _lines(ax, sim, "value_mean", k, "metric", std="value_std")
        _x_axis(ax, sim)
        ax.set_ylabel(f"{sim.metric} ({better} is better)")
        ax.set_title(f"{FIGURES['metric'][0]}: {_panel_title(sim, k)}", fontsize=11)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return fig


def draw_spend(sim: Simulation) -> Figure:
    """Seconds and dollars used (mean over seeds) against the budget, one line per policy, the
    budget in red (:data:`FIGURES`)."""
    from seer_torch.report import new_figure

    n = len(sim.panels)
    fig = new_figure(12, 3.8 * n + 0.6)
    axes = fig.subplots(n, 2, squeeze=False)
    for k in range(n):
        for ax, field, key, prefix, what in (
                (axes[k][0], "time_used_mean_s", "time_budget_s", "time", "seconds used"),
                (axes[k][1], "cost_mean_usd", "money_budget_usd", "usd", "dollars spent")):
            _lines(ax, sim, field, k, prefix)
            xs = sorted({getattr(p, sim.x) for p in sim.points})
            if key == sim.x:  # the budget is the x axis: used = budget is the diagonal
                ax.plot(xs, xs, color="#d62728", lw=1.2, ls=":", gid=f"budget:{prefix}:{k}",
                        label="the budget")
            else:
                ax.axhline(sim.panels[k], color="#d62728", lw=1.2, ls=":", gid=f"budget:{prefix}:{k}",
                           label="the budget")
            _x_axis(ax, sim)
            ax.set_ylabel(what)
            ax.set_ylim(bottom=0)
            ax.set_title(f"{what.capitalize()}: {_panel_title(sim, k)}", fontsize=10)
        axes[k][1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return fig


def draw_configurations(sim: Simulation) -> Figure | None:
    """Configurations started (mean over seeds) against the budget, one line per policy
    (:data:`FIGURES`); ``None`` when the file does not say."""
    if all(p.configurations_mean is None for p in sim.points):
        return None
    from seer_torch.report import new_figure

    n = len(sim.panels)
    fig = new_figure(12, 3.4 * n + 0.6)
    axes = fig.subplots(n, 1, squeeze=False)
    for k in range(n):
        ax = axes[k][0]
        _lines(ax, sim, "configurations_mean", k, "configurations")
        _x_axis(ax, sim)
        ax.set_ylabel("configurations started")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{FIGURES['configurations'][0]}: {_panel_title(sim, k)}", fontsize=11)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return fig


#: Each figure's drawing function, by name (the page's order is :data:`FIGURES`').
DRAW = {"metric": draw_metric, "spend": draw_spend, "configurations": draw_configurations}


def draw_all(sim: Simulation) -> dict[str, Figure]:
    """Every figure there is something to draw for, by name, in the page's order."""
    from seer_torch.report import draw_figures

    return draw_figures(DRAW, FIGURES, sim)


# ---------------------------------------------------------------------- the page
def _e(x: Any) -> str:
    return html.escape(str(x))


def _n(x: float | int | None, fmt: str = ".4g") -> str:
    return "" if x is None else format(x, fmt)


def render_html(sim: Simulation, images: dict[str, bytes]) -> str:
    """The page: what was simulated, every figure in ``images`` (PNG bytes by name), the
    numbers of every policy at every budget and every simulated run."""
    from seer_torch.report import PAGE_END, figure_html, page_head, table_html

    budgets = sorted({(p.time_budget_s, p.money_budget_usd) for p in sim.points})
    better = "larger" if sim.mode == "max" else "smaller"
    what = [f"metric <code>{_e(sim.metric)}</code> ({better} is better)"]
    if sim.table:
        what.append(f"table <code>{_e(sim.table)}</code>")
    if sim.profile:
        what.append(f"scaling profile {_e(sim.profile)}")
    if sim.num_slots is not None:
        what.append(f"{sim.num_slots} slots")
    if sim.seeds is not None:
        what.append(f"{sim.seeds} seeds")
    if sim.keep_alive is not None:
        what.append("jobs kept alive" if sim.keep_alive else "jobs relaunched at every rung")
    out = [page_head(f"seer report: {sim.source.name}")]
    out.append(f"<h1>seer report: {_e(sim.source.name)}</h1>")
    out.append(f"<p>Policies compared by <code>seer simulate</code> in <code>{_e(sim.source)}</code>: "
               f"{_e(', '.join(sim.policies))}; {len(budgets)} budget(s); " + "; ".join(what) + ".</p>")
    for name, (title, caption) in FIGURES.items():
        if name in images:
            out.append(figure_html(name, title, caption, images[name]))
    out.append("<h2 id='numbers'>The numbers</h2><p class='caption'>Per budget and policy, over seeds: "
               "the answer's metric (mean, standard deviation, min, max), its rank among the policies at "
               "that budget (1: the best mean; the oracle is not ranked), the regret to the oracle, the time "
               "and money used (mean, max), runs over a budget, configurations started, the epochs the "
               "answer reached and runs without an answer.</p>")
    rank = ranks(sim)
    headers = ["deadline s", "money budget USD", "policy", f"{sim.metric} mean", "std", "min", "max", "rank",
               "regret", "time used s", "time used max s", "USD used", "USD used max", "violations",
               "configurations",
               "answer epochs", "no answer", "seeds"]
    rows = [[f"{p.time_budget_s:g}", f"{p.money_budget_usd:g}", p.policy, _n(p.value_mean), _n(p.value_std),
             _n(p.value_min), _n(p.value_max), rank.get((p.policy, p.time_budget_s, p.money_budget_usd), ""),
             _n(p.regret_mean), _n(p.time_used_mean_s, ".1f"), _n(p.time_used_max_s, ".1f"),
             _n(p.cost_mean_usd), _n(p.cost_max_usd), _n(p.violations, "d"), _n(p.configurations_mean, ".1f"),
             _n(p.answer_epochs_mean, ".1f"), _n(p.no_answer, "d"), _n(p.runs, "d")] for p in sim.points]
    out.append(table_html(headers, rows, left=3))
    if sim.runs:
        keys = ["time_budget_s", "money_budget_usd", "policy", "seed", "final_value", "answer_id",
                "answer_epochs", "time_used_s", "cost_usd", "num_configurations", "time_violation",
                "money_violation", "stop_reason"]
        run_rows = [[_cell(r.get(k)) for k in keys] for r in sim.runs]
        out.append(f"<h2 id='runs'>Every run</h2><details><summary>{len(run_rows)} simulated runs (one per "
                   "budget, policy and seed)</summary>" + table_html(keys, run_rows, left=3) + "</details>")
    out.append("<p class='caption'>Written by <code>seer report</code> from the JSON of <code>seer simulate "
               "--json</code>.</p>" + PAGE_END)
    return "\n".join(out)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return format(v, ".4g")
    return "" if v is None else str(v)


def write_simulation_report(sim: Simulation, out: Path, *, png_dir: Path | None = None) -> list[str]:
    """Draw :data:`FIGURES` of ``sim``, write the page to ``out`` (atomically) and, with
    ``png_dir``, each figure as ``png_dir/NAME.png``; returns the names of the figures drawn.

    Raises:
        OSError: a file cannot be written.
    """
    from seer_torch.report import png_bytes, write_page

    figures = draw_all(sim)
    images = {name: png_bytes(fig) for name, fig in figures.items()}
    write_page(out, render_html(sim, images), images, png_dir=png_dir)
    return list(figures)


__all__ = [
    "BUDGETS", "DRAW", "EXPECTED", "FIGURES", "PolicyPoint", "Simulation", "draw_all", "draw_configurations",
    "draw_metric", "draw_spend", "parse_simulation", "ranks", "read_simulation", "render_html", "series",
    "write_simulation_report",
]
