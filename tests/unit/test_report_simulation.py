"""`seer report SIMULATION.json`: the page of a `seer simulate --json` comparison, and the drawn
lines read back against the JSON's numbers."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from seer_torch import cli
from seer_torch.report_simulation import (
    FIGURES,
    draw_configurations,
    draw_metric,
    draw_spend,
    parse_simulation,
    ranks,
    read_simulation,
)

PROFILES = Path(__file__).resolve().parents[1] / "data" / "scaling_profiles.json"


def _simulate(capsys, *budget_flags: str, policies: str = "seer,asha,oracle") -> dict:
    """What `seer simulate --json` prints, on the shipped digits table (2 seeds)."""
    argv = ["simulate", "--profile", f"{PROFILES}:cifar10-resnet18-v100", "--startup-s", "20", "--seeds", "2",
            "--policies", policies, "--json", *budget_flags]
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A deadline sweep at one money budget, as `seer simulate --json` prints it (the deadlines
    given out of order), and the file it went to."""
    buf = io.StringIO()
    argv = ["simulate", "--profile", f"{PROFILES}:cifar10-resnet18-v100", "--startup-s", "20", "--seeds", "2",
            "--policies", "seer,asha,oracle", "--json", "--time-budget", "600,150,300", "--money-budget", "2"]
    with contextlib.redirect_stdout(buf):
        assert cli.main(argv) == 0
    raw = json.loads(buf.getvalue())
    path = tmp_path_factory.mktemp("sim") / "sweep.json"
    path.write_text(json.dumps(raw))
    return raw, path


def _lines(fig, prefix: str) -> dict[tuple[str, int], tuple[list[float], list[float]]]:
    """``(policy, panel) -> (xs, ys)`` of every line whose gid starts with ``prefix:``."""
    out = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            gid = line.get_gid() or ""
            if gid.startswith(prefix + ":"):
                _, policy, panel = gid.split(":")
                out[(policy, int(panel))] = ([float(x) for x in line.get_xdata()],
                                             [float(y) for y in line.get_ydata()])
    return out


# ---------------------------------------------------------------------- the drawn data
def test_simulate_sweeps_every_pair_of_budgets_in_its_json(sweep):
    raw, _ = sweep
    assert "policies" not in raw and raw["seeds"] == 2
    assert [(b["time_budget_s"], b["money_budget_usd"]) for b in raw["budgets"]] == [
        (150.0, 2.0), (300.0, 2.0), (600.0, 2.0)]
    for b in raw["budgets"]:
        assert list(b["policies"]) == ["seer", "asha", "oracle"]
        assert len(b["runs"]) == 3 * 2
        assert all(r["time_used_s"] <= b["time_budget_s"] for r in b["runs"])


def test_the_metric_drawn_per_policy_is_the_jsons_mean_at_each_budget(sweep):
    raw, path = sweep
    sim = read_simulation(path)
    assert (sim.x, sim.panels) == ("time_budget_s", [2.0])
    drawn = _lines(draw_metric(sim), "metric")
    assert set(drawn) == {("seer", 0), ("asha", 0), ("oracle", 0)}
    for name in ("seer", "asha", "oracle"):
        xs, ys = drawn[(name, 0)]
        assert xs == [150.0, 300.0, 600.0]
        assert ys == [b["policies"][name]["final_value"]["mean"] for b in raw["budgets"]]
    # The error bars are the JSON's standard deviations around the mean.
    fig = draw_metric(sim)
    ax = fig.axes[0]
    seer_bars = next(c for c in ax.containers if c.lines[0].get_gid() == "metric:seer:0")
    segments = seer_bars.lines[2][0].get_segments()
    for seg, b in zip(segments, raw["budgets"]):
        s = b["policies"]["seer"]["final_value"]
        assert seg[0][1] == pytest.approx(s["mean"] - s["std"])
        assert seg[1][1] == pytest.approx(s["mean"] + s["std"])


def test_time_money_and_configurations_drawn_are_the_jsons_means(sweep):
    raw, path = sweep
    sim = read_simulation(path)
    spend = draw_spend(sim)
    for prefix, key in (("time", "time_used_s"), ("usd", "cost_usd")):
        drawn = _lines(spend, prefix)
        for name in ("seer", "asha", "oracle"):
            assert drawn[(name, 0)] == ([150.0, 300.0, 600.0],
                                        [b["policies"][name][key]["mean"] for b in raw["budgets"]])
    # The budget lines: the deadline is the x axis (the diagonal), the money budget a level.
    budget_lines = {line.get_gid(): line for ax in spend.axes for line in ax.get_lines()}
    assert list(budget_lines["budget:time:0"].get_ydata()) == [150.0, 300.0, 600.0]
    assert list(budget_lines["budget:usd:0"].get_ydata()) == [2.0, 2.0]
    configs = _lines(draw_configurations(sim), "configurations")
    want = [b["policies"]["seer"]["num_configurations"]["mean"] for b in raw["budgets"]]
    assert configs[("seer", 0)] == ([150.0, 300.0, 600.0], want)


def test_a_grid_of_budgets_draws_one_panel_per_money_budget(capsys):
    raw = _simulate(capsys, "--time-budget", "150,300", "--money-budget", "0.5,2", policies="seer,sha")
    sim = parse_simulation(raw, "grid.json")
    assert (sim.x, sim.panels) == ("time_budget_s", [0.5, 2.0])
    drawn = _lines(draw_metric(sim), "metric")
    for k, usd in enumerate([0.5, 2.0]):
        for name in ("seer", "sha"):
            want = [b["policies"][name]["final_value"]["mean"] for b in raw["budgets"]
                    if b["money_budget_usd"] == usd]
            assert drawn[(name, k)] == ([150.0, 300.0], want)
    # More money budgets than deadlines: the money budget is the x axis, a panel per deadline.
    raw = _simulate(capsys, "--time-budget", "300", "--money-budget", "0.5,1,2", policies="seer")
    sim = parse_simulation(raw, "money.json")
    assert (sim.x, sim.panels) == ("money_budget_usd", [300.0])
    assert _lines(draw_metric(sim), "metric")[("seer", 0)] == (
        [0.5, 1.0, 2.0], [b["policies"]["seer"]["final_value"]["mean"] for b in raw["budgets"]])


def test_one_budget_draws_one_point_per_policy(capsys):
    raw = _simulate(capsys, "--time-budget", "300", "--money-budget", "2")
    assert "budgets" not in raw and raw["time_budget_s"] == 300.0  # the shape of one budget, as before
    sim = parse_simulation(raw, "one.json")
    drawn = _lines(draw_metric(sim), "metric")
    assert drawn == {(name, 0): ([300.0], [raw["policies"][name]["final_value"]["mean"]])
                     for name in ("seer", "asha", "oracle")}


def test_ranks_follow_the_mode_and_leave_the_oracle_out():
    def summary(mean):
        return {"final_value": {"mean": mean, "std": 0.0}, "time_used_s": {"mean": 1.0},
                "cost_usd": {"mean": 1.0}}

    raw = {"time_budget_s": 10, "money_budget_usd": 1, "mode": "max",
           "policies": {"a": summary(0.9), "b": summary(0.95), "c": summary(0.9), "oracle": summary(0.99)}}
    assert ranks(parse_simulation(raw)) == {("a", 10.0, 1.0): 2, ("b", 10.0, 1.0): 1, ("c", 10.0, 1.0): 2}
    raw["mode"] = "min"
    assert ranks(parse_simulation(raw)) == {("a", 10.0, 1.0): 1, ("b", 10.0, 1.0): 3, ("c", 10.0, 1.0): 1}


# ---------------------------------------------------------------------- the command
def test_seer_report_writes_the_page_beside_the_json(sweep, tmp_path, capsys):
    raw, path = sweep
    copy = tmp_path / "policies.json"
    copy.write_text(path.read_text())
    assert cli.main(["report", str(copy), "--png"]) == 0
    out = capsys.readouterr().out
    assert f"report: {tmp_path / 'policies.html'} (3 policies, 3 budget(s))" in out
    page = (tmp_path / "policies.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "http://" not in page and "https://" not in page
    assert page.count("src='data:image/png;base64,") == len(FIGURES)
    assert sorted(p.stem for p in (tmp_path / "report_figures").glob("*.png")) == sorted(FIGURES)
    # The numbers' table holds each policy's mean at each budget, as the JSON has it.
    for b in raw["budgets"]:
        for s in b["policies"].values():
            assert f"<td class=\"\">{format(s['final_value']['mean'], '.4g')}</td>" in page
    assert page.count("<tr>") == 1 + 9 + 1 + 3 * 3 * 2  # header + 9 rows; runs: header + 18 rows
    # --out elsewhere.
    assert cli.main(["report", str(copy), "--out", str(tmp_path / "elsewhere.html")]) == 0
    assert (tmp_path / "elsewhere.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("content, words", [
    ('{"policies": {"seer": {"final_value": {"mean": 0.9', "truncated?"),
    ("not json at all", "not valid JSON"),
    ("[1, 2]", "this JSON is a list, not an object"),
    ('{"table": "t.json", "metric": "val_accuracy"}', 'no "policies" (its keys: metric, table)'),
    ('{"trials": [], "budget": {}, "best": null}', "this is a run's results.json: give its folder"),
])
def test_a_file_that_is_no_simulation_exits_2_naming_it(tmp_path, capsys, content, words):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert cli.main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"seer: error: RUN_DIR: got {str(path)!r}; allowed: a run directory made by "
                          "`seer tune`, or the JSON that `seer simulate --json` prints")
    assert words in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "bad.html").exists()


@pytest.mark.parametrize("edit, field, allowed", [
    (lambda b: b["policies"]["seer"]["final_value"].update(mean="high"),
     "budgets[1].policies.seer.final_value.mean", "a finite number or null"),
    (lambda b: b["policies"]["asha"].pop("cost_usd"), "budgets[1].policies.asha.cost_usd", '"mean"'),
    (lambda b: b.update(time_budget_s=-3), "budgets[1].time_budget_s", "a finite number > 0"),
    (lambda b: b.update(policies={}), "budgets[1].policies", "a non-empty object"),
])
def test_a_bad_field_is_named_with_its_value(sweep, tmp_path, capsys, edit, field, allowed):
    raw, _ = sweep
    raw = json.loads(json.dumps(raw))
    edit(raw["budgets"][1])
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(raw))
    assert cli.main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"seer: error: {path}: {field}: got ") and allowed in err, err
    assert not (tmp_path / "edited.html").exists()


def test_simulate_names_a_bad_budget_in_a_list(capsys):
    argv = ["simulate", "--profile", f"{PROFILES}:cifar10-resnet18-v100", "--startup-s", "20",
            "--time-budget", "300,soon", "--money-budget", "2"]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.startswith("seer: error: --time-budget: got 'soon'; allowed: a finite "
                                              "number > 0, or a comma-separated list of them")
    argv[-1] = "2,0"
    argv[argv.index("300,soon")] = "300"
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("seer: error: --money-budget: got 0.0; allowed: a finite number > 0")
