"""`seer tune --backend ray` on Ray's fake autoscaling cluster (one machine, no docker): the
cluster grows before a wide round and shrinks after eliminations, and the money is what it held.

    .venv/bin/python scripts/ray_autoscale_demo.py [--out DIR] [--keep]

What it does:

1. Starts a Ray head of its own (no slots: it only runs Ray's services) with Ray's autoscaler
   on the fake node provider (``RAY_FAKE_CLUSTER=1``): worker nodes of one CPU each (type
   ``cpu1``), 0 to 4 of them, returned after ``IDLE_TIMEOUT_MIN`` minutes idle. The provider
   starts each "machine" as a Ray node on this host (``launch_multiple``: several at once).
2. Runs ``seer tune`` on it with a given profile: 4 configurations at W = 1 (4 nodes), then 2,
   then 1 to the target (rungs 1, 3, 9); each worker sleeps per sample of its share
   (``SEER_DEBUG_SAMPLE_DELAY_S``) so that a round lasts long enough for nodes to come and go.
3. Prints each request the tuner made of the autoscaler (``cluster.requests``), each node the
   meter saw (``cluster.held.nodes``), the money (held against used), and checks that the money
   equals the node-seconds held times the price within 1%.
4. Stops only the processes of this cluster (never ``ray stop``, which would stop every Ray of
   the machine): those whose command line names its GCS address or its temporary folder.

It takes 2-3 minutes on 2 cores. Not part of the test command: the test command has a limit
(README), and the autoscaler's start and idle timeouts take minutes; the pieces are tested
there (tests/unit/test_held_nodes.py: the meter and the requests on a simulated cluster;
tests/integration/test_ray_backend.py: the meter on a fixed Ray cluster).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IDLE_TIMEOUT_MIN = 0.25  # a node idle this long is returned (minutes)
PRICE_USD_PER_HOUR = 1.8  # what a cpu1 node costs
SAMPLE_DELAY_S = 0.004  # the workers' sleep per sample of their share: about 5 s an epoch at W = 1

EXPERIMENT = f"""
name = "ray-autoscale"
seed = 0
[data]
dataset = "digits"
[model]
name = "digits_mlp"
[training]
max_epochs = 9
min_epochs = 1
eta = 3
global_batch = 48
micro_batch_max = 12
[budget]
time_budget_s = 400
money_budget_usd = 10
price_usd_per_slot_hour = {PRICE_USD_PER_HOUR}
[resources]
num_slots = 4
world_size_ladder = [1]
backend = "ray"
node_types = [{{ name = "cpu1", slots = 1, price_usd_per_hour = {PRICE_USD_PER_HOUR} }}]
[search]
max_configurations = 4
[planner]
profile = "profile.json"
num_finalists = 1
[search_space]
lr = {{ choices = [0.02, 0.05, 0.1, 0.2] }}
weight_decay = 0.0005
momentum = 0.9
width = 32
dropout = 0.0
"""
PROFILE = {"name": "autoscale", "world_sizes": [1], "speedup": [1.0], "epoch_time_s": 5.0,
           "startup_s": 15.0, "resize_s": 15.0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_config(gcs_address: str) -> dict:
    """The autoscaler's cluster config for the fake provider: a head without slots, cpu1 workers."""
    return {
        "cluster_name": "seer-autoscale-demo",
        "max_workers": 4,
        "upscaling_speed": 4.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_MIN,
        "provider": {"type": "fake_multinode", "launch_multiple": True, "gcs_address": gcs_address,
                     "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
            "cpu1": {"resources": {"CPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 4},
        },
        "head_node_type": "ray.head.default",
        "auth": {}, "docker": {}, "file_mounts": {}, "cluster_synced_files": [],
        "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
    }


def _ours(markers: list[str]) -> list[int]:
    """Pids of the processes whose command line holds one of ``markers``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in cmd for m in markers):
            pids.append(int(d.name))
    return pids


def _stop(markers: list[str]) -> None:
    """TERM, then KILL after 10 s, this cluster's processes only (the backends' own way)."""
    from seer_torch.backends.local import _kill_survivors

    _kill_survivors(_ours(markers), grace_s=10.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="the folder for the experiment and its run (default: a new "
                                      "temporary one)")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="seer-autoscale-"))
    out.mkdir(parents=True, exist_ok=True)
    ray_bin = str(Path(sys.executable).with_name("ray"))
    port = _free_port()
    ip = "127.0.0.1"
    gcs = f"{ip}:{port}"
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    config = out / "cluster.json"
    config.write_text(json.dumps(_cluster_config(gcs)))
    (out / "exp.toml").write_text(EXPERIMENT)
    (out / "profile.json").write_text(json.dumps(PROFILE))
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    markers = [gcs, temp_dir]
    try:
        subprocess.run([ray_bin, "start", "--head", f"--port={port}", f"--node-ip-address={ip}",
                        "--num-cpus=0", f"--temp-dir={temp_dir}", "--include-dashboard=false",
                        f"--autoscaling-config={config}"], env=env, check=True, capture_output=True)
        start_s = time.monotonic()
        # `ray start` turns on token authentication: the driver uses the token it wrote.
        proc = subprocess.run([sys.executable, "-m", "seer_torch.cli", "tune", "exp.toml", "--run-dir", "run",
                               "--address", gcs], cwd=out, text=True, capture_output=True,
                              env={**os.environ, "SEER_DEBUG_SAMPLE_DELAY_S": str(SAMPLE_DELAY_S),
                                   "RAY_AUTH_MODE": "token"})
        print(f"seer tune: exit {proc.returncode} after {time.monotonic() - start_s:.0f} s")
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return 1
        print("the run's log, its requests and eliminations:")
        for line in proc.stdout.splitlines():
            if "cluster:" in line or "eliminat" in line or "released" in line:
                print("  " + line.strip()[:160])
    finally:
        _stop(markers)
    res = json.loads((out / "run" / "results.json").read_text())
    cluster = res["cluster"]
    print("rounds (rung, trials, W, start s, end s):")
    for r in res["rounds"]:
        print(f"  {r['rung_epoch']:>3} {r['num_trials']:>3} {r['world_size']:>2} {r['start_s']:7.1f} "
              f"{r['end_s']:7.1f}")
    print("requests to the autoscaler (s since the run began, slots):")
    for q in cluster["requests"]:
        print(f"  {q['at_s']:7.1f} {q['slots']:>3}")
    held, used = cluster["held"], cluster["used"]
    print("nodes the meter saw (type, start s, end s, held s, USD):")
    for n in held["nodes"]:
        end = "-" if n["end_s"] is None else f"{n['end_s']:7.1f}"
        print(f"  {n['node_id'][-8:]} {n['node_type']} {n['start_s']:7.1f} {end} {n['held_s']:7.1f} "
              f"{n['cost_usd']:.5f}")
    expected = PRICE_USD_PER_HOUR / 3600 * held["node_seconds"]
    print(f"held: {held['node_seconds']:.1f} node-s, {held['slot_seconds']:.1f} slot-s, "
          f"{held['cost_usd']:.5f} USD; used: {used['slot_seconds']:.1f} slot-s, {used['cost_usd']:.5f} USD")
    print(f"budget.cost_usd {res['budget']['cost_usd']:.5f} USD; node-seconds x price {expected:.5f} USD; "
          f"ratio {res['budget']['cost_usd'] / expected:.4f}")
    print(f"answer: {res['best']['trial_id']} at epoch {res['best']['epochs']}, "
          f"val_accuracy {res['best']['val_accuracy']:.4f}; run folder {out / 'run'}")
    left = _ours(markers)
    print(f"processes of the cluster left: {len(left)}")
    return 0 if abs(res["budget"]["cost_usd"] / expected - 1) <= 0.01 and not left else 1


if __name__ == "__main__":
    sys.exit(main())
