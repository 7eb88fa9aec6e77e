"""The Ray backend: each job is a placement group on a Ray cluster, one torchrun per node.

A job of ``W`` workers reserves a placement group of ``W`` bundles (``{"CPU": 1}`` a slot, or
``{"GPU": 1, "CPU": 1}`` on a cluster with GPUs), strategy ``PACK`` (as few nodes as
possible). Once Ray has placed it, one small :class:`NodeAgent` actor per node the group uses
(scheduled into that node's first bundle) starts that node's part of the job::

    torchrun --nnodes N --node-rank i --rdzv-backend c10d --rdzv-endpoint IP0:PORT
             --rdzv-id JOB --rdzv-conf is_host=(i == 0) --nproc-per-node k ...

on the same command and with the same environment, log files and job token as the local
backend (:func:`seer_torch.backends.local.torchrun_argv`, :func:`~seer_torch.backends.local.launch_env`):
the built-in worker or a user's ``[trial] script``. ``IP0`` is the first node's own address and
``PORT`` a port free there (its agent picks it); the first node hosts the rendezvous. On a
cluster with GPUs every bundle gets an agent of its own (``k = 1``) holding the bundle's GPU, so
that Ray's ``CUDA_VISIBLE_DEVICES`` gives each torchrun exactly its GPU.

Life of a job: :meth:`RayBackend.launch` asks for the placement group and returns at once;
:meth:`RayBackend.poll` (cheap: ``ray.wait(..., timeout=0)``) starts the agents once the group
is placed, and sees the job end when every node's torchrun has exited. A node whose torchrun
fails, or whose agent (or node) is lost, fails the job at once: every other node's torchrun is
stopped (TERM, then KILL) and the result says why. torchrun never outlives its agent: it is
started in a session of its own with ``PR_SET_PDEATHSIG`` = SIGTERM (the thread that started
it waits on it, so the signal comes exactly when the agent's process ends), and on SIGTERM
torchrun stops its workers. Each agent also ends whatever still carries its part's token on its
node once torchrun has exited. The placement group (and with it the agents) is removed when
the job ends.

Kept-alive jobs (``keeps_jobs_alive``) use the local backend's file protocol
(:mod:`seer_torch.runfiles`: ``parked.json``/``control.json`` in the trial folder), which works
across nodes because the run folder is on storage every node mounts at the same path; a parked
job's workers watch their node's agent (``SEER_TUNER_PID``), so they end with it. A parked job
continues the same trial at the same ``W``; switching a warm worker to another trial is left
to the local backend.

Requirements: the run folder on shared storage (NFS, EFS, Filestore) at the same path on every
node, and the same Python environment (``sys.executable`` of the tuner) on every node. Ray is
imported here only: without it, building the backend raises a :class:`ConfigError` that says
how to install it (``pip install 'seer-torch[ray]'``).
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seer_torch.backends.base import Backend, JobResult, JobSpec, continue_order
from seer_torch.backends.local import (
    JOB_FILE,
    JOB_TOKEN_ENV,
    RELEASE_GRACE_S,
    STOP_GRACE_S,
    _kill_survivors,
    _read_bytes,
    _remove_job_files,
    descendant_pids,
    end_group,
    launch_env,
    launch_header,
    prepare_trial_dir,
    progress_age_s,
    token_pids,
    torchrun_argv,
)
from seer_torch.clock import Clock, RealClock
from seer_torch.errors import ConfigError
from seer_torch.runfiles import (
    CONTROL_FILE,
    PARKED_FILE,
    atomic_write_json,
    atomic_write_text,
    read_json_or_none,
)

#: What an agent puts in its node's command line and environment: the rendezvous endpoint (the
#: first node's address and a port free there) and its own process id (a parked job's
#: ``SEER_TUNER_PID``: the job ends when its agent does).
RDZV_ENDPOINT = "{rdzv_endpoint}"
AGENT_PID = "{agent_pid}"
#: Variables of the tuner's environment every job gets on every node (seer-torch's own
#: settings, such as ``SEER_RECORD_SAMPLES``); the rest of a job's environment is its node's.
FORWARDED_PREFIX = "SEER_"
#: The meter looks at the cluster's nodes at most this often (seconds): a node's span is known
#: to within it.
NODE_LOOK_S = 1.0
#: A node part's own token, beside the job's: what an agent ends once its torchrun has exited is
#: its part's processes only (on a cluster whose nodes share a host, as in tests, the job's
#: token would also name the other parts, still finishing).
PART_TOKEN_ENV = "SEER_JOB_PART_TOKEN"
#: Ray's calls that end a stop (a remote TERM, the grace, a KILL) take about this much more.
RAY_CALL_S = 2.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
INSTALL_HINT = "pip install 'seer-torch[ray]'"
#: Seconds a ``resources.address`` of the form ``IP:PORT`` has to accept a TCP connection.
CONNECT_TIMEOUT_S = 5.0
#: Seconds each node has to answer :meth:`RayBackend.check_storage` (a task of no CPU).
STORAGE_CHECK_S = 60.0


def _import_ray(field_name: str = "resources.backend") -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(field_name, "ray", f"a backend whose library is installed: Ray is not; "
                                             f"install it with `{INSTALL_HINT}`") from None
    return ray


def _connect(ray: Any, address: str | None) -> None:
    """``ray.init(address)``, or a :class:`ConfigError` naming ``resources.address`` when no
    Ray answers there: an ``IP:PORT`` is first tried with a plain TCP connection of
    :data:`CONNECT_TIMEOUT_S` (``ray.init`` itself retries an unreachable one for minutes)."""
    allowed = "the address of a running Ray cluster (start one with `ray start --head`; docs/ray.md)"
    if address and address not in ("auto", "local") and "://" not in address:
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
                pass
        except (OSError, ValueError) as e:
            why = f"{allowed}; nothing answers there ({e})"
            raise ConfigError("resources.address", address, why) from None
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, TimeoutError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        cause = e.__cause__
        token_off = os.environ.get("RAY_AUTH_MODE") != "token"
        if cause is not None and "InvalidAuthToken" in str(cause) and token_off:
            # `ray start` (Ray >= 2.5x) turns on token authentication; drivers need it on too.
            first += ("; the cluster wants an authentication token: set RAY_AUTH_MODE=token (the token "
                      "is read from ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN)")
        raise ConfigError("resources.address", address, f"{allowed}; {first}") from None


def _die_with_parent() -> Any:
    """A ``preexec_fn``: the child gets SIGTERM when the thread that started it ends
    (``PR_SET_PDEATHSIG``; the agent's thread waits on the child, so: when the agent dies),
    and exits at once if that already happened between ``fork`` and ``prctl``."""
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


#: The file :meth:`RayBackend.check_storage` writes in the run folder for every node to read.
STORAGE_PROBE_FILE = ".seer-storage-check"
SHARED_STORAGE_HINT = ("put the run folder on storage every node mounts at the same path (NFS, EFS, "
                       "Filestore; docs/ray.md, Requirements)")


class SharedStorageError(RuntimeError):
    """A node does not see the run folder the tuner writes (it is not on shared storage)."""


def storage_problem(path: Path | str, expected: str) -> str | None:
    """What is wrong with ``path`` as this node sees it: ``None`` when its text holds
    ``expected`` (a token the tuner wrote there), else a sentence saying what this node found
    (no such file, or another file of that name: the node's own disk, not the shared one)."""
    try:
        found = Path(path).read_text()
    except FileNotFoundError:
        return f"{path} does not exist there"
    except OSError as e:
        return f"{path} cannot be read there ({type(e).__name__}: {e})"
    return None if expected in found else f"{path} there is another file (not the tuner's)"


def _probe_storage(path: str, expected: str) -> tuple[str, str | None]:
    """A Ray task run on one node: ``(its address, storage_problem(path, expected))``."""
    import ray

    return ray.util.get_node_ip_address(), storage_problem(path, expected)


class NodeAgent:
    """One node's part of a job (a Ray actor: :class:`RayBackend` wraps it with ``ray.remote``).

    :meth:`run` starts torchrun and returns its exit status when it has exited (negative: the
    signal that ended it), after ending whatever still carries its part's token (:data:`PART_TOKEN_ENV`);
    :meth:`terminate`, called meanwhile from another thread of the actor, stops it: TERM to
    its process group, KILL after ``grace_s``, then every process left of it."""

    def __init__(self, part_token: str) -> None:
        self.part_token = part_token
        self._proc: subprocess.Popen | None = None
        self._stopping = False
        self._lock = threading.Lock()

    def endpoint(self) -> str:
        """``IP:PORT``: this node's address and a port free on it (the rendezvous of the job)."""
        import ray

        ip = ray.util.get_node_ip_address()
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        with socket.socket(family) as sock:
            sock.bind((ip, 0))
            port = sock.getsockname()[1]
        return f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}"

    def run(self, argv: Sequence[str], env: Mapping[str, str], stdout: str, stderr: str,
            endpoint: str) -> int:
        """Start ``argv`` (this node's torchrun) with this node's environment updated with
        ``env`` (``PYTHONPATH`` put first on the node's own), output appended to ``stdout``
        and ``stderr``; wait for it; returns its exit status."""
        # The tuner wrote the job's token into the trial folder's job.json before placing it.
        problem = storage_problem(Path(stdout).parent / JOB_FILE, self.part_token.rsplit(".", 1)[0])
        if problem is not None:
            import ray

            raise SharedStorageError(f"node {ray.util.get_node_ip_address()} does not see the trial folder "
                                     f"the tuner wrote ({problem}): {SHARED_STORAGE_HINT}")
        subst = {RDZV_ENDPOINT: endpoint, AGENT_PID: str(os.getpid())}
        full = dict(os.environ)
        full[PART_TOKEN_ENV] = self.part_token
        for key, value in env.items():
            value = subst.get(value, value)
            if key == "PYTHONPATH" and full.get(key):
                value = os.pathsep.join([value, full[key]])
            full[key] = value
        with self._lock:
            if self._stopping:
                return -int(signal.SIGTERM)
            with open(stdout, "ab") as out, open(stderr, "ab") as err:
                self._proc = subprocess.Popen(
                    [subst.get(a, a) for a in argv], stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                    env=full, start_new_session=True, preexec_fn=_die_with_parent(),
                )
        rc = self._proc.wait()
        self._end_leftovers(self._proc.pid)
        return rc

    def terminate(self, grace_s: float) -> None:
        """Stop this node's torchrun (TERM, then KILL after ``grace_s``) and whatever it left."""
        with self._lock:
            self._stopping = True
            proc = self._proc
        if proc is None:
            return
        descendants = descendant_pids(proc.pid)
        deadline = time.monotonic() + grace_s
        end_group(proc.pid, grace_s)
        _kill_survivors(descendants + token_pids(self.part_token, PART_TOKEN_ENV),
                        grace_s=max(0.0, deadline - time.monotonic()))

    def _end_leftovers(self, pgid: int) -> None:
        # torchrun has exited: its group and its part's token must be gone too.
        end_group(pgid, STOP_GRACE_S)
        _kill_survivors(token_pids(self.part_token, PART_TOKEN_ENV))


@dataclass
class RayJob:
    """A job's handle: its placement group, then its agents (one per node part, node rank
    order) and their :meth:`NodeAgent.run` futures. Kept-alive fields as the local backend's."""

    spec: JobSpec
    start_s: float
    launch_unix_s: float
    token: str
    env: dict = field(repr=False)
    group: Any = field(repr=False)  # ray.util.placement_group.PlacementGroup
    ready: Any = field(repr=False)  # the group's ready() reference
    agents: list = field(default_factory=list, repr=False)
    futures: list = field(default_factory=list, repr=False)
    nodes: list = field(default_factory=list)  # (node id, bundles) per node part
    result: JobResult | None = None
    generation: int = 0
    parked_s: float | None = None
    parked_unix_s: float | None = None
    config_bytes: bytes | None = field(default=None, repr=False)
    wait_s: float = 0.0
    rental_start_s: float | None = None
    released: JobResult | None = None

    @property
    def placed(self) -> bool:
        return bool(self.agents)


class RayBackend(Backend):
    """Runs jobs on a Ray cluster (module docstring); ``num_slots`` bundles at most at once.

    Declared abilities: ``max_stop_s`` (a remote TERM, the grace, KILL), ``detects_hangs``
    (the trial's files on shared storage show progress), ``keeps_jobs_alive`` (the same trial
    at the same ``W``), ``stop_many``/``stop_all``, ``kill_leftover``.

    Args:
        num_slots: bundles (CPU slots, or GPUs) the jobs may hold at once.
        address: the cluster to join (``ray.init(address=...)``: ``"auto"``, ``"ray://..."``,
            ``"IP:PORT"``); ``None``: an initialised Ray as it is, else ``ray.init()``'s
            default (``$RAY_ADDRESS``, or a new local instance).
        clock: the executor's clock. python: the interpreter every node runs torchrun with.
        python_path: folders put first on every job's ``PYTHONPATH``.
        keep_alive: jobs park at their target (the local backend's protocol).
        use_gpus: bundles of one GPU; ``None``: when the cluster has GPUs.

    Raises:
        ConfigError: Ray is not installed, or no Ray cluster answers at ``address``.
    """

    detects_hangs = True

    def __init__(self, num_slots: int, *, address: str | None = None, clock: Clock | None = None,
                 python: str = sys.executable, python_path: Sequence[str] = (), keep_alive: bool = True,
                 use_gpus: bool | None = None) -> None:
        if num_slots < 1:
            raise ValueError(f"num_slots: got {num_slots}; allowed: an integer >= 1")
        ray = _import_ray()
        if not ray.is_initialized():
            _connect(ray, address)
        self._ray = ray
        self.num_slots = num_slots
        self.clock = clock or RealClock()
        self.python = python
        self.python_path = tuple(python_path)
        self.keeps_jobs_alive = bool(keep_alive)
        self.hands_over_workers = False  # a new trial is a new job on Ray (continue_job)
        self.max_stop_s = STOP_GRACE_S + RAY_CALL_S
        if use_gpus is None:
            use_gpus = ray.cluster_resources().get("GPU", 0) >= 1
        self.use_gpus = use_gpus
        self._bundle = {"GPU": 1, "CPU": 1} if use_gpus else {"CPU": 1}
        self._agent_cls = ray.remote(NodeAgent)
        self._jobs: list[RayJob] = []
        self._nodes: dict[str, int] = {}
        self._nodes_looked_s = -math.inf

    # -- the cluster ------------------------------------------------------------------------------
    def check_storage(self, run_dir: Path) -> None:
        """Check that every live node offering slots sees ``run_dir`` where the tuner does (the
        run folder must be on storage they all mount at the same path): write a token to
        :data:`STORAGE_PROBE_FILE` there and have a task on each node read it
        (:func:`storage_problem`). Nodes that join later (an autoscaler's) are checked by each
        job's agents before torchrun starts: a job on a node that does not see its trial folder
        fails at once, saying so.

        Raises:
            ConfigError: naming ``--run-dir``, the folder, and each node that does not see it.
        """
        import uuid

        probe = Path(run_dir).resolve() / STORAGE_PROBE_FILE
        token = uuid.uuid4().hex
        atomic_write_text(probe, token)
        try:
            problems = self.nodes_not_seeing(probe, token)
        finally:
            probe.unlink(missing_ok=True)
        if problems:
            allowed = f"a folder every node of the Ray cluster sees at the same path: {SHARED_STORAGE_HINT}"
            raise ConfigError("--run-dir", str(run_dir), f"{allowed}; " + "; ".join(problems))

    def nodes_not_seeing(self, path: Path, token: str) -> list[str]:
        """One sentence for each live node offering slots that does not find ``token`` in
        ``path`` (:func:`storage_problem`, run there as a Ray task of no CPU pinned to it);
        ``[]`` when they all do."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = self._ray.remote(num_cpus=0, max_retries=0)(_probe_storage)
        nodes = [node for node, slots in self.held_nodes().items() if slots > 0]
        refs = [probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                .remote(str(path), token) for node in nodes]
        problems = []
        for node, ref in zip(nodes, refs):
            try:
                ip, problem = self._ray.get(ref, timeout=STORAGE_CHECK_S)
            except Exception as e:  # noqa: BLE001 - a node that cannot answer cannot run jobs either
                ip, problem = "?", f"its check did not answer in {STORAGE_CHECK_S:g} s ({type(e).__name__})"
            if problem is not None:
                problems.append(f"node {node[:12]} ({ip}): {problem}")
        return problems

    def request_slots(self, slots: int) -> None:
        """Ask the cluster's autoscaler for ``slots`` bundles (``ray.autoscaler.sdk.
        request_resources``: it boots machines until they fit, and keeps them while asked for;
        each request replaces the last; 0 withdraws it). Without an autoscaler it does nothing."""
        from ray.autoscaler.sdk import request_resources

        request_resources(bundles=[dict(self._bundle) for _ in range(slots)])

    def held_nodes(self) -> dict[str, int]:
        """The cluster's live nodes, node id to the slots each offers (GPUs on a cluster with
        GPUs, else CPUs; the head counts when it offers slots), from ``ray.nodes()`` looked at
        most every :data:`NODE_LOOK_S` (it has no start or end times: the meter's are those of
        its looks)."""
        now = time.monotonic()
        if now - self._nodes_looked_s >= NODE_LOOK_S:
            key = "GPU" if self.use_gpus else "CPU"
            self._nodes = {n["NodeID"]: int(n.get("Resources", {}).get(key, 0))
                           for n in self._ray.nodes() if n.get("Alive")}
            self._nodes_looked_s = now
        return dict(self._nodes)

    # -- launching --------------------------------------------------------------------------------
    def launch(self, spec: JobSpec) -> RayJob:
        from ray.util.placement_group import placement_group

        prepare_trial_dir(spec)
        keep_alive = self.keeps_jobs_alive and spec.profile_steps is None
        forwarded = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_PREFIX)}
        env = launch_env(spec, forwarded, python_path=self.python_path,
                         tuner_pid=AGENT_PID if keep_alive else None)
        header = launch_header(spec)
        for name in ("stdout.log", "stderr.log"):
            with open(spec.trial_dir / name, "ab") as f:
                f.write(header.encode())
        launch_unix_s, start_s = time.time(), self.clock.now()
        group = placement_group([dict(self._bundle) for _ in range(spec.world_size)], strategy="PACK")
        job = RayJob(spec=spec, start_s=start_s, launch_unix_s=launch_unix_s, token=env[JOB_TOKEN_ENV],
                     env=env, group=group, ready=group.ready(),
                     config_bytes=_read_bytes(spec.trial_dir / "config.json") if keep_alive else None)
        self._jobs.append(job)
        # What `seer resume` finds of a job a dead tuner left (kill_leftover).
        atomic_write_json(spec.trial_dir / JOB_FILE, {
            "backend": "ray", "launch_unix_s": launch_unix_s, "world_size": spec.world_size,
            "until_epoch": spec.until_epoch, "token": job.token, "placement_group": group.id.hex()})
        return job

    def _node_parts(self, job: RayJob) -> list[tuple[str, list[int]]]:
        """The group's bundle indices by node part, node rank order, each with its node's id:
        the node of bundle 0 first (it hosts the rendezvous); one bundle a part on a cluster
        with GPUs."""
        from ray.util.placement_group import placement_group_table

        where = placement_group_table(job.group)["bundles_to_node_id"]
        parts: dict[str, tuple[str, list[int]]] = {}
        for index in range(job.spec.world_size):
            key = f"{where[index]}/{index}" if self.use_gpus else where[index]
            parts.setdefault(key, (where[index], []))[1].append(index)
        return list(parts.values())

    def _start(self, job: RayJob) -> None:
        """The group is placed: one agent per node part, each starting its torchrun."""
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        placed = self._node_parts(job)
        parts = [bundles for _, bundles in placed]
        rdzv = job.token[:16]
        for rank, bundles in enumerate(parts):
            strategy = PlacementGroupSchedulingStrategy(job.group, placement_group_bundle_index=bundles[0])
            job.agents.append(self._agent_cls.options(
                scheduling_strategy=strategy, num_cpus=0, num_gpus=1 if self.use_gpus else 0,
                max_concurrency=4, max_restarts=0).remote(f"{job.token}.{rank}"))
        job.nodes = [len(b) for b in parts]
        line = (f"=== ray: W={job.spec.world_size} on {len(parts)} node(s): "
                + ", ".join(f"{len(b)} on {node[:12]}" for node, b in placed) + " ===\n")
        with open(job.spec.trial_dir / "stdout.log", "ab") as f:
            f.write(line.encode())
        endpoint = job.agents[0].endpoint.remote()
        for rank, (agent, bundles) in enumerate(zip(job.agents, parts)):
            rendezvous = ("--nnodes", str(len(parts)), "--node-rank", str(rank), "--rdzv-backend", "c10d",
                          "--rdzv-endpoint", RDZV_ENDPOINT, "--rdzv-id", rdzv,
                          "--rdzv-conf", f"is_host={int(rank == 0)}")
            argv = torchrun_argv(job.spec, self.python, rendezvous=rendezvous, nproc_per_node=len(bundles))
            trial_dir = Path(job.spec.trial_dir).resolve()  # the agent runs in another folder
            job.futures.append(agent.run.remote(
                argv, job.env, str(trial_dir / "stdout.log"), str(trial_dir / "stderr.log"), endpoint))

    # -- watching ----------------------------------------------------------------------------------
    def poll(self, handle: RayJob) -> JobResult | None:
        if handle.result is not None:
            return handle.result
        ray = self._ray
        if not handle.placed:
            ready, _ = ray.wait([handle.ready], timeout=0)
            if not ready:
                return None
            self._start(handle)
        done = self._ended(handle.futures)
        if not done:
            return self._parked(handle)
        codes, error = self._exit_codes(handle, done)
        failed = error is not None or any(rc != 0 for rc in codes)
        if len(done) < len(handle.futures):
            if not failed:
                return self._parked(handle)
            # One node's part failed or was lost: the others cannot go on (their peers are gone).
            self._terminate([handle])
        rc = next((c for c in codes if c != 0), 0 if error is None else 1)
        handle.result = JobResult(handle.spec, rc, handle.start_s, self.clock.now(), handle.launch_unix_s,
                                  error=error, wait_s=handle.wait_s, rental_start_s=handle.rental_start_s)
        self._end(handle)
        return handle.result

    def _ended(self, futures: list) -> list:
        """Which of ``futures`` (agents' :meth:`NodeAgent.run` calls) have ended; never waits."""
        if not futures:
            return []
        return self._ray.wait(futures, num_returns=len(futures), timeout=0, fetch_local=False)[0]

    def _exit_codes(self, job: RayJob, done: list) -> tuple[list[int], str | None]:
        """The exit status of each ended node part, and why the job failed when a part's agent
        (or its node) was lost (``None`` otherwise)."""
        ray = self._ray
        codes, error = [], None
        for ref in done:
            rank = job.futures.index(ref)
            try:
                codes.append(int(ray.get(ref)))
            except ray.exceptions.RayError as e:
                cause = e if isinstance(e, SharedStorageError) else getattr(e, "cause", None)
                if error is None and isinstance(cause, SharedStorageError):
                    error = f"node part {rank} of {len(job.futures)} did not start: {cause.args[0]}"
                elif error is None:
                    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                    error = (f"node part {rank} of {len(job.futures)} was lost ({type(e).__name__}: "
                             f"{first[:200]}); the job's other parts were stopped")
        return codes, error

    def _parked(self, job: RayJob) -> JobResult | None:
        if job.config_bytes is None:
            return None
        parked = read_json_or_none(job.spec.trial_dir / PARKED_FILE)
        if not isinstance(parked, dict) or parked.get("generation") != job.generation:
            return None
        job.parked_s, job.parked_unix_s = self.clock.now(), time.time()
        info = read_json_or_none(job.spec.trial_dir / JOB_FILE)
        if isinstance(info, dict):  # seer resume bills a leftover from its park on
            info["launch_unix_s"] = job.parked_unix_s
            atomic_write_json(job.spec.trial_dir / JOB_FILE, info)
        job.result = JobResult(job.spec, 0, job.start_s, job.parked_s, job.launch_unix_s, parked=True,
                               wait_s=job.wait_s, rental_start_s=job.rental_start_s)
        return job.result

    def seconds_since_progress(self, handle: RayJob) -> float:
        """Seconds since the job last showed progress in its trial folder (wall clock;
        :func:`seer_torch.backends.local.progress_age_s`)."""
        return progress_age_s(handle.spec.trial_dir, handle.launch_unix_s)

    # -- ending ------------------------------------------------------------------------------------
    def _terminate(self, jobs: list[RayJob], grace_s: float = STOP_GRACE_S) -> None:
        """TERM, then KILL after ``grace_s``, every node part of ``jobs`` at once, and wait for
        them (an agent that is gone has nothing left to stop: its torchrun died with it)."""
        ray = self._ray
        for job in jobs:
            for agent in job.agents:
                agent.terminate.remote(grace_s)
        futures = [f for job in jobs for f in job.futures]
        if futures:
            ray.wait(futures, num_returns=len(futures), timeout=grace_s + RAY_CALL_S, fetch_local=False)

    def _end(self, job: RayJob) -> None:
        """The job has ended: its placement group (and agents) go, its running files too."""
        from ray.util.placement_group import remove_placement_group

        try:
            remove_placement_group(job.group)
        except Exception:  # noqa: BLE001 - already gone with its cluster: nothing to remove
            pass
        _remove_job_files(job.spec.trial_dir)
        if job in self._jobs:
            self._jobs.remove(job)

    def stop(self, handle: RayJob) -> JobResult:
        return self.stop_many([handle])[0]

    def stop_many(self, handles: list[RayJob]) -> list[JobResult]:
        """Stop several jobs at once: TERM to every node part of each, KILL after
        :data:`~seer_torch.backends.local.STOP_GRACE_S`, then their groups removed."""
        pending = [h for h in handles if h.result is None]
        self._terminate([h for h in pending if h.placed])
        for h in pending:
            codes = []
            if h.placed:
                codes, _ = self._exit_codes(h, self._ended(h.futures))
            rc = next((c for c in codes if c != 0), -int(signal.SIGTERM))
            h.result = JobResult(h.spec, rc, h.start_s, self.clock.now(), h.launch_unix_s, stopped=True,
                                 wait_s=h.wait_s, rental_start_s=h.rental_start_s)
            self._end(h)
        return [h.result for h in handles]

    def stop_all(self) -> None:
        """Stop every job still running, parked ones too."""
        for job in self._jobs:
            if job.result is not None and job.result.parked and job.released is None:
                job.result = None
        self.stop_many([job for job in self._jobs if job.result is None])

    def continue_job(self, parked: RayJob, spec: JobSpec) -> RayJob | None:
        """Hand a parked job its next target: the same trial at the same ``W`` with the same
        script and a ``config.json`` it can go on with (:func:`~seer_torch.backends.base.
        continue_order`; :meth:`Backend.continue_job`). ``None`` otherwise (another trial: no
        warm workers on Ray yet), or when a part has ended."""
        if parked.result is None or not parked.result.parked or parked.released is not None:
            return None
        if (Path(spec.trial_dir) != Path(parked.spec.trial_dir) or spec.world_size != parked.spec.world_size
                or spec.profile_steps is not None or spec.script != parked.spec.script
                or tuple(spec.script_args) != tuple(parked.spec.script_args)):
            return None
        config_bytes = _read_bytes(spec.trial_dir / "config.json")
        moved = continue_order(parked.config_bytes, config_bytes, spec.script)
        if self._ended(parked.futures) or moved is None:
            return None
        header = launch_header(spec, "(kept alive)")
        for name in ("stdout.log", "stderr.log"):
            with open(spec.trial_dir / name, "ab") as f:
                f.write(header.encode())
        now_s = self.clock.now()
        job = RayJob(spec=spec, start_s=parked.parked_s, launch_unix_s=time.time(), token=parked.token,
                     env=parked.env, group=parked.group, ready=parked.ready, agents=parked.agents,
                     futures=parked.futures, nodes=parked.nodes, generation=parked.generation + 1,
                     config_bytes=config_bytes, wait_s=max(0.0, now_s - parked.parked_s),
                     rental_start_s=parked.start_s if parked.rental_start_s is None
                     else parked.rental_start_s)
        info = read_json_or_none(spec.trial_dir / JOB_FILE)
        if isinstance(info, dict):
            info.update(until_epoch=spec.until_epoch, launch_unix_s=parked.parked_unix_s)
            atomic_write_json(spec.trial_dir / JOB_FILE, info)
        atomic_write_json(spec.trial_dir / CONTROL_FILE, {"generation": job.generation, "action": "continue",
                                                          "until_epoch": spec.until_epoch, **moved})
        self._jobs.remove(parked)
        self._jobs.append(job)
        return job

    def release(self, parked: RayJob) -> JobResult:
        """End a parked job (:meth:`release_many` of one)."""
        return self.release_many([parked])[0]

    def release_many(self, handles: list[RayJob]) -> list[JobResult]:
        """End parked jobs at once: the order to stop to each (every node's torchrun then ends
        by itself), stopped after :data:`~seer_torch.backends.local.RELEASE_GRACE_S` if not.
        Returns each job's wait, from when it parked, as a result of its own."""
        todo = [h for h in handles if h.released is None]
        for h in todo:
            assert h.result is not None and h.result.parked, "release() takes a parked job"
            order = {"generation": h.generation + 1, "action": "stop"}
            atomic_write_json(h.spec.trial_dir / CONTROL_FILE, order)
        futures = [f for h in todo for f in h.futures]
        if futures:
            self._ray.wait(futures, num_returns=len(futures), timeout=RELEASE_GRACE_S, fetch_local=False)
        late = [h for h in todo if len(self._ended(h.futures)) < len(h.futures)]
        self._terminate(late)
        for h in todo:
            self._end(h)
            h.released = JobResult(h.spec, 0, h.parked_s, self.clock.now(), h.launch_unix_s, stopped=True,
                                   parked=True, rental_start_s=h.start_s if h.rental_start_s is None
                                   else h.rental_start_s)
        return [h.released for h in handles]

    def kill_leftover(self, trial_dir: Path) -> dict | None:
        """Stop a job left running in ``trial_dir`` (``seer resume``; :meth:`Backend.kill_leftover`).

        One of this backend's own jobs is stopped (or released, parked). A job of a tuner that
        died is gone with it: Ray removes a driver's placement groups and actors when it ends,
        and each torchrun ends with its agent; processes still carrying its token on this host
        are ended. Either way the trial's ``job.json`` is removed."""
        trial_dir = Path(trial_dir)
        info = read_json_or_none(trial_dir / JOB_FILE)
        if not isinstance(info, dict) or info.get("backend") != "ray":
            return None
        mine = [j for j in self._jobs if Path(j.spec.trial_dir) == trial_dir]
        alive = bool(mine)
        for job in mine:
            if job.result is not None and job.result.parked:
                self.release(job)
            else:
                self.stop(job)
        if not mine and info.get("token"):
            leftover = token_pids(str(info["token"]))
            alive = bool(leftover)
            _kill_survivors(leftover)
        info["alive"] = alive
        if alive:
            info["end_unix_s"] = time.time()
        else:  # it ended by itself: about when it last wrote anything
            info["end_unix_s"] = time.time() - progress_age_s(
                trial_dir, float(info.get("launch_unix_s", time.time())))
        _remove_job_files(trial_dir)
        return info

