"""Money metered on what a cluster holds: the node ledger, the experiment's node types, and a
run on a simulated cluster that grows and shrinks, billed by its machines."""

from __future__ import annotations

import json

import pytest

from seer_torch.backends.simulated import SimulatedBackend, SimulatedClock
from seer_torch.config import NodeType, parse_experiment
from seer_torch.errors import ConfigError
from seer_torch.executor import Tuner
from seer_torch.executor.held_nodes import HeldNodes
from seer_torch.policies.seer_policy import SeerPolicy

TYPES = (NodeType("cpu2", 2, 0.36), NodeType("cpu4", 4, 0.72))


def test_each_node_is_billed_from_the_first_look_that_finds_it_to_the_first_that_does_not():
    ledger = HeldNodes(TYPES, price_usd_per_slot_hour=0.5)
    ledger.observe(10.0, {"a": 2, "head": 0})  # a head without slots is not a worker: not billed
    ledger.observe(20.0, {"a": 2, "b": 4})
    ledger.observe(50.0, {"b": 4, "c": 1})  # a ended at 50; c is of no listed type: 0.5 a slot
    assert ledger.cost_usd(60.0) == pytest.approx(
        0.36 / 3600 * 40 + 0.72 / 3600 * 40 + 0.5 / 3600 * 10)
    ledger.close(70.0)
    assert ledger.cost_usd(1000.0) == pytest.approx(0.36 / 3600 * 40 + 0.72 / 3600 * 50 + 0.5 / 3600 * 20)
    held = ledger.to_dict(1000.0, origin_s=10.0)
    assert [(n["node_id"], n["node_type"], n["start_s"], n["end_s"]) for n in held["nodes"]] == [
        ("a", "cpu2", 0.0, 40.0), ("b", "cpu4", 10.0, 60.0), ("c", None, 40.0, 60.0)]
    assert held["node_seconds"] == pytest.approx(40 + 50 + 20)
    assert held["slot_seconds"] == pytest.approx(2 * 40 + 4 * 50 + 1 * 20)
    assert held["cost_usd"] == pytest.approx(ledger.cost_usd(1000.0))


def test_a_node_seen_again_after_it_went_is_a_new_rental_with_its_own_minimum():
    ledger = HeldNodes(TYPES, price_usd_per_slot_hour=0.5, granularity_s=10.0, minimum_s=60.0)
    ledger.observe(0.0, {"a": 2})
    ledger.observe(61.0, {})  # 61 s: rounded up to 70
    ledger.observe(100.0, {"a": 2})
    ledger.observe(105.0, {})  # 5 s: the minimum, 60
    assert [n["billed_s"] for n in ledger.to_dict(200.0)["nodes"]] == [70.0, 60.0]
    assert ledger.cost_usd(200.0) == pytest.approx(0.36 / 3600 * 130)


def test_node_types_are_read_checked_and_written_back():
    raw = {"resources": {"backend": "ray", "num_slots": 4, "node_types": [
        {"name": "cpu2", "slots": 2, "price_usd_per_hour": 0.36}]}, "search_space": {"lr": 0.1}}
    exp = parse_experiment(raw)
    assert exp.resources.node_types == (NodeType("cpu2", 2, 0.36),)
    import tomllib

    assert parse_experiment(tomllib.loads(exp.to_toml())).resources == exp.resources
    bad = [
        ({"name": "cpu2", "slots": 2}, "resources.node_types[0]"),
        ({"name": "a b", "slots": 2, "price_usd_per_hour": 1}, "resources.node_types[0].name"),
        ({"name": "x", "slots": 0, "price_usd_per_hour": 1}, "resources.node_types[0].slots"),
        ({"name": "x", "slots": 1, "price_usd_per_hour": -1}, "resources.node_types[0].price_usd_per_hour"),
    ]
    for table, field in bad:
        with pytest.raises(ConfigError) as e:
            parse_experiment({**raw, "resources": {**raw["resources"], "node_types": [table]}})
        assert e.value.field == field
    two = [{"name": "a", "slots": 2, "price_usd_per_hour": 1},
           {"name": "b", "slots": 2, "price_usd_per_hour": 2}]
    with pytest.raises(ConfigError, match="slot count of its own"):
        parse_experiment({**raw, "resources": {**raw["resources"], "node_types": two}})
    with pytest.raises(ConfigError) as e:  # the local backend bills slots: no node types
        parse_experiment({**raw, "resources": {**raw["resources"], "backend": "local"}})
    assert e.value.field == "resources.node_types"


class _Cluster(SimulatedBackend):
    """The simulated backend as a cluster: two 2-slot nodes while a job of the first round may
    run (the first 60 simulated seconds), then one; a 1-slot head the meter does not bill."""

    requests: list[tuple[float, int]]

    def held_nodes(self) -> dict[str, int]:
        now = self.clock.now()
        return {"head": 0, "n1": 2, **({"n2": 2} if now < 60.0 else {})}

    def request_slots(self, slots: int) -> None:
        self.requests.append((self.clock.now(), slots))


def test_a_run_on_a_cluster_is_billed_by_its_machines_and_reports_held_against_used(tmp_path):
    exp = parse_experiment({
        "name": "cluster", "seed": 1,
        "training": {"max_epochs": 9, "min_epochs": 1, "eta": 3, "global_batch": 64, "micro_batch_max": 64},
        "budget": {"time_budget_s": 1e5, "money_budget_usd": 100.0, "price_usd_per_slot_hour": 3.6},
        "resources": {"num_slots": 4, "world_size_ladder": [1], "backend": "ray",
                      "node_types": [{"name": "cpu2", "slots": 2, "price_usd_per_hour": 7.2}]},
        "search": {"max_configurations": 9},
        "planner": {"profile": str(_profile(tmp_path))},
        "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}},
    })
    clock = SimulatedClock()
    backend = _Cluster(4, clock, epoch_time_s=10.0, speedup=lambda w: 1.0, startup_s=5.0,
                       curve=lambda c, e: c["q"] * (1 - 0.5 ** e))
    backend.requests = []
    res = Tuner(exp, tmp_path / "run", backend, clock=clock, policy=SeerPolicy()).run()
    cluster = res["cluster"]
    # The autoscaler was asked, at each change, for the slots held or the next round's: the 4
    # slots of round 1's 9 trials at W = 1 before it began, round 2's 3 once round 1's last
    # wave held fewer, round 3's 2 once round 2's eliminations were decided, none at the end.
    rounds = [(r["start_s"], r["num_trials"]) for r in res["rounds"]]
    assert [n for _, n in rounds] == [9, 3, 2]
    assert [n for _, n in backend.requests] == [4, 3, 2, 0]
    at_s = [a for a, _ in backend.requests]
    assert at_s[0] == 0.0 and 0.0 < at_s[1] <= rounds[1][0] and at_s[2] == rounds[2][0]
    assert at_s[3] == res["budget"]["time_used_s"]
    assert cluster["requests"] == [{"at_s": at, "slots": n} for at, n in backend.requests]
    held, used = cluster["held"], cluster["used"]
    # n1 held the whole run, n2 until 60 s (the first look without it: the executor looks at
    # every wait), the head never: billed 7.2 USD an hour each.
    nodes = {n["node_id"]: n for n in held["nodes"]}
    assert set(nodes) == {"n1", "n2"}
    time_used_s = res["budget"]["time_used_s"]
    assert nodes["n1"]["held_s"] == pytest.approx(time_used_s, abs=1.0)
    assert 60.0 <= nodes["n2"]["end_s"] <= 70.0
    expected_usd = 7.2 / 3600 * (nodes["n1"]["held_s"] + nodes["n2"]["held_s"])
    assert res["budget"]["cost_usd"] == pytest.approx(expected_usd, rel=0.01)
    assert held["cost_usd"] == pytest.approx(res["budget"]["cost_usd"])
    # Held against used: the jobs' slot-seconds are less than what the nodes held.
    assert 0 < used["slot_seconds"] < held["slot_seconds"]
    assert used["cost_usd"] == pytest.approx(3.6 / 3600 * used["slot_seconds"], rel=1e-6)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["meter"]["held_nodes_usd"] == pytest.approx(res["budget"]["cost_usd"])


def _profile(tmp_path):
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"world_sizes": [1], "speedup": [1.0], "epoch_time_s": 10.0,
                                "startup_s": 5.0, "resize_s": 5.0}))
    return path


# ---------------------------------------------------------------------- seer plan: machines per round
def test_a_round_is_held_by_the_cheapest_whole_nodes_for_its_busy_slots():
    from seer_torch.executor.held_nodes import round_nodes

    small, big = NodeType("small", 2, 5.0), NodeType("big", 8, 18.0)
    # 64 trials at W=1 on 8 slots: 8 busy; 4 small cost 20 USD/h, 1 big 18.
    r = round_nodes(64, 1, 8, 36.0, [small, big])
    assert (r.slots, r.node_type, r.nodes) == (8, big, 1)
    assert r.cost_usd == pytest.approx(18.0 * 36.0 / 3600)
    # 2 finalists at W=1: 2 busy slots; one small (5 USD/h) beats one big.
    r = round_nodes(2, 1, 8, 100.0, [small, big])
    assert (r.slots, r.node_type, r.nodes, r.cost_usd) == (2, small, 1, pytest.approx(5.0 * 100 / 3600))
    # 1 trial at W=4 on 8 slots: 4 busy; 2 small (10 USD/h) beat 1 big (18).
    assert round_nodes(1, 4, 8, 10.0, [small, big]).nodes == 2
    assert round_nodes(3, 1, 8, 10.0, []) is None
    with pytest.raises(ValueError, match="world_size"):
        round_nodes(3, 0, 8, 10.0, [small])


def test_seer_plan_shows_each_rounds_machines_with_node_types(tmp_path, capsys):
    from seer_torch.cli import main

    cfg = tmp_path / "exp.toml"
    cfg.write_text("""name = "nodes"
[budget]
time_budget_s = 420
money_budget_usd = 1.0
[resources]
num_slots = 8
backend = "ray"
node_types = [{name = "small", slots = 2, price_usd_per_hour = 5.0},
              {name = "big", slots = 8, price_usd_per_hour = 18.0}]
[search_space]
lr = {distribution = "loguniform", low = 0.01, high = 0.8}
""")
    assert main(["plan", str(cfg), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rounds, nodes = out["plan"]["rounds"], out["nodes"]
    assert len(nodes) == len(rounds) >= 2
    for r, n in zip(rounds, nodes):
        busy = min(r["num_trials"], 8 // r["world_size"]) * r["world_size"]
        assert n["slots"] == busy
        price = {"small": 5.0, "big": 18.0}[n["node_type"]]
        assert n["cost_usd"] == pytest.approx(n["nodes"] * price * r["predicted_duration_s"] / 3600)
    assert nodes[0]["node_type"] == "big"  # 8 busy slots: one big node is cheaper than 4 small
    assert main(["plan", str(cfg)]) == 0
    text = capsys.readouterr().out
    assert "machines USD" in text
    assert "machine start: planned as 0 s" in text and out["machine_start_s"] is None
    # with a machine start, round 1 waits it: its predicted seconds grow by exactly 30 s
    cfg.write_text(cfg.read_text().replace('backend = "ray"', 'backend = "ray"\nmachine_start_s = 30'))
    assert main(["plan", str(cfg), "--json"]) == 0
    slow = json.loads(capsys.readouterr().out)
    assert slow["machine_start_s"] == 30.0
    r0, s0 = rounds[0], slow["plan"]["rounds"][0]
    assert (s0["num_trials"], s0["world_size"]) == (r0["num_trials"], r0["world_size"])
    assert s0["predicted_duration_s"] == pytest.approx(r0["predicted_duration_s"] + 30.0)
    assert main(["plan", str(cfg)]) == 0
    assert "machine start: 30 s" in " ".join(capsys.readouterr().out.split())


# ---------------------------------------------------------------------- machine start (issue 17)
def test_machine_start_is_measured_from_the_request_for_more_slots_to_the_first_look_at_the_node():
    ledger = HeldNodes(TYPES, price_usd_per_slot_hour=0.5)
    ledger.observe(0.0, {"head": 0, "s": 2})  # held before any request: no machine start
    assert ledger.machine_start_s() is None
    ledger.asked(10.0, 6)  # 4 slots more than held
    ledger.observe(12.0, {"s": 2})
    ledger.observe(17.5, {"s": 2, "a": 2})  # 7.5 s after the request
    ledger.observe(19.0, {"s": 2, "a": 2, "b": 2})  # 9 s: the request is met
    ledger.observe(30.0, {"s": 2, "a": 2, "b": 2, "c": 2})  # launched beyond the request: none
    assert ledger.machine_starts_s == [7.5, 9.0]
    ledger.asked(40.0, 2)  # fewer: nothing waits
    ledger.asked(50.0, 12)  # 4 more than the 8 held
    ledger.observe(56.0, {"s": 2, "a": 2, "b": 2, "c": 2, "d": 4})  # 6 s
    assert ledger.machine_starts_s == [7.5, 9.0, 6.0]
    assert ledger.machine_start_s() == 7.5  # the median
    ledger.asked(60.0, 16)  # 4 more ...
    ledger.asked(61.0, 12)  # ... no longer asked for: a node that comes now was not waited for
    ledger.observe(70.0, {"s": 2, "a": 2, "b": 2, "c": 2, "d": 4, "e": 4})
    assert ledger.machine_starts_s == [7.5, 9.0, 6.0]
    # two requests waiting: the node fills the older one first
    ledger.asked(80.0, 20)
    ledger.asked(90.0, 24)
    ledger.observe(95.0, {"s": 2, "a": 2, "b": 2, "c": 2, "d": 4, "e": 4, "f": 4, "g": 4})
    assert ledger.machine_starts_s[3:] == [15.0, 5.0]
    with pytest.raises(ValueError, match="slots"):
        ledger.asked(100.0, -1)


class _BootingCluster(SimulatedBackend):
    """The simulated backend as a cluster whose 2-slot nodes come ``BOOT_S`` after a request
    asks for their slots (and go once it no longer does)."""

    BOOT_S = 7.0
    requests: list[tuple[float, int]]

    def held_nodes(self) -> dict[str, int]:
        now, nodes = self.clock.now(), {}
        for at, slots in self.requests:
            if at + self.BOOT_S <= now:
                nodes = {f"n{i}": 2 for i in range(-(-slots // 2))}
        return nodes

    def request_slots(self, slots: int) -> None:
        self.requests.append((self.clock.now(), slots))


def _booting_run(tmp_path, name, boot_s=7.0, slots=4, speedup=(1.0,), configurations=9,
                 time_budget_s=1e5, _crash_at=None, **resources):
    """A SEER run on a :class:`_BootingCluster` whose nodes come ``boot_s`` after a request;
    ``speedup`` at W = 1, 2, 4, ... (the ladder)."""
    ladder = [2 ** i for i in range(len(speedup))]
    profile = tmp_path / f"{name}-profile.json"
    profile.write_text(json.dumps({"world_sizes": ladder, "speedup": list(speedup), "epoch_time_s": 10.0,
                                   "startup_s": 5.0, "resize_s": 5.0}))
    exp = parse_experiment({
        "name": "boots", "seed": 1,
        "training": {"max_epochs": 9, "min_epochs": 1, "eta": 3, "global_batch": 64, "micro_batch_max": 8},
        "budget": {"time_budget_s": time_budget_s, "money_budget_usd": 100.0, "price_usd_per_slot_hour": 3.6},
        "resources": {"num_slots": slots, "world_size_ladder": ladder, "backend": "ray", **resources},
        "search": {"max_configurations": configurations},
        "planner": {"profile": str(profile)},
        "search_space": {"q": {"distribution": "uniform", "low": 0.5, "high": 1.0}},
    })
    clock = SimulatedClock()
    by_w = dict(zip(ladder, speedup))
    backend = _BootingCluster(slots, clock, epoch_time_s=10.0, speedup=lambda w: by_w[w], startup_s=5.0,
                              curve=lambda c, e: c["q"] * (1 - 0.5 ** e))
    backend.BOOT_S = boot_s
    backend.requests = []
    policy = SeerPolicy()
    if _crash_at is not None:  # stopped there (the test resumes it)
        return Tuner(exp, tmp_path / name, backend, clock=clock, policy=policy), backend, clock
    res = Tuner(exp, tmp_path / name, backend, clock=clock, policy=policy).run()
    return res, policy


def test_a_run_measures_the_machine_start_and_re_plans_with_it(tmp_path):
    res, policy = _booting_run(tmp_path, "measured")
    cluster = res["cluster"]
    # the 4 slots asked for at 0 s came as two nodes 7 s later, seen at the first look after
    # that: at the end of the first wave's jobs (5 + 10 s; the simulated clock jumps to events)
    starts = cluster["machine_starts_s"]
    assert cluster["requests"][0] == {"at_s": 0.0, "slots": 4}
    assert starts == [15.0, 15.0]
    assert cluster["machine_start_median_s"] == starts[0]
    lines = [json.loads(x) for x in (tmp_path / "measured" / "decisions.jsonl").read_text().splitlines()]
    seen = [ln["snapshot"]["machine_start_s"] for ln in lines]
    assert seen[0] is None and seen[-1] == starts[0]
    state = json.loads((tmp_path / "measured" / "state.json").read_text())
    assert state["measured"]["machine_starts_s"] == starts


def test_the_configured_machine_start_delays_the_first_round_by_exactly_it(tmp_path):
    _, without = _booting_run(tmp_path, "none")
    _, with_30 = _booting_run(tmp_path, "thirty", machine_start_s=30.0)
    assert with_30.ctx.machine_start_s == 30.0 and without.ctx.machine_start_s is None
    first = [p.plan.rounds[0] for p in (without, with_30)]
    assert first[0].world_size == first[1].world_size and first[0].num_trials == first[1].num_trials
    assert first[1].predicted_duration_s == pytest.approx(first[0].predicted_duration_s + 30.0)
    # round 2 holds fewer slots than round 1 (3 trials at W = 1 on 4 slots): no wait
    second = [p.plan.rounds[1].predicted_duration_s for p in (without, with_30)]
    assert second[1] == pytest.approx(second[0])


def test_machine_start_s_is_read_checked_and_written_back():
    import tomllib

    raw = {"resources": {"backend": "ray", "num_slots": 4, "machine_start_s": 45},
           "search_space": {"lr": 0.1}}
    exp = parse_experiment(raw)
    assert exp.resources.machine_start_s == 45.0
    assert parse_experiment(tomllib.loads(exp.to_toml())).resources == exp.resources
    assert parse_experiment({**raw, "resources": {"backend": "ray"}}).resources.machine_start_s is None
    for bad in (-1, "45", float("inf"), True):
        with pytest.raises(ConfigError) as e:
            parse_experiment({**raw, "resources": {**raw["resources"], "machine_start_s": bad}})
        assert e.value.field == "resources.machine_start_s" and "seconds >= 0" in str(e.value)
    with pytest.raises(ConfigError) as e:  # local slots need no machine start
        parse_experiment({**raw, "resources": {"num_slots": 4, "machine_start_s": 45}})
    assert e.value.field == "resources.machine_start_s" and "backend = 'ray'" in str(e.value)


_WIDE = dict(slots=8, speedup=(1.0, 1.9, 3.6, 6.4), configurations=3, time_budget_s=140.0)


def test_a_re_plan_waits_what_is_left_of_the_machine_start_after_the_round_just_closed(tmp_path):
    # 3 configurations on 8 slots: round 1 holds 3 (W = 1), round 2 its 2 survivors at W = 2,
    # 4 slots: new machines. The first plan waits 40 s for round 1's machines (35 + 40 s), and
    # round 2's booted meanwhile. The simulated jobs do not wait for machines: round 1 ends at
    # 35 s, no node has been seen yet (they come at 40 s), so the re-plan waits 40 - 35 = 5 s.
    res, policy = _booting_run(tmp_path, "left", boot_s=40.0, machine_start_s=40.0, **_WIDE)
    first = [(r.num_trials, r.world_size, r.predicted_duration_s) for r in policy.plan.rounds]
    assert first == [(3, 1, pytest.approx(35.0 + 40.0)), (2, 2, pytest.approx(5.0 + 60 / 1.9))]
    (replan,) = policy.replans
    assert replan["at_s"] == 35.0
    (r2,) = replan["plan"]["rounds"]
    assert (r2["num_trials"], r2["world_size"]) == (2, 2)
    assert r2["predicted_duration_s"] == pytest.approx(5.0 + 60 / 1.9 + 5.0)


def test_a_re_plan_uses_the_measured_machine_start_over_the_configured_one(tmp_path):
    # The same run (160 s) with 60 s configured, and nodes 5 s after the request, first seen at round
    # 1's end (35 s: the simulated clock looks at events): measured 35 s, so round 2 waits
    # 35 - 35 = 0 s, not the configured 60 - 35 = 25 s.
    res, policy = _booting_run(tmp_path, "measured-wins", boot_s=5.0, machine_start_s=60.0,
                               **{**_WIDE, "time_budget_s": 160.0})
    assert policy.plan.rounds[0].predicted_duration_s == pytest.approx(35.0 + 60.0)
    assert res["cluster"]["machine_starts_s"][0] == 35.0
    (replan,) = policy.replans
    (r2,) = replan["plan"]["rounds"]
    assert r2["world_size"] == 2 and r2["predicted_duration_s"] == pytest.approx(5.0 + 60 / 1.9)


def test_a_resumed_run_keeps_the_machine_starts_it_measured(tmp_path, crash_tuner):
    from seer_torch.policies.registry import make_policy

    clean, _ = _booting_run(tmp_path, "clean")
    tuner, backend, clock = _booting_run(tmp_path, "killed", _crash_at="decide:4")
    crash_tuner("decide:4", lambda: tuner.run())
    state = json.loads((tmp_path / "killed" / "state.json").read_text())
    assert state["measured"]["machine_starts_s"] == [15.0, 15.0]
    res = Tuner.resume(tmp_path / "killed", backend, make_policy=make_policy, clock=clock).run(resume=True)
    # the replay decided as before (the snapshots' machine starts journaled), the starts kept
    assert res["cluster"]["machine_starts_s"][:2] == [15.0, 15.0]
    assert res["best"]["trial_id"] == clean["best"]["trial_id"]
