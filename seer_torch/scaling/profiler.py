"""The profiler: short probe jobs through the real worker, one world size at a time.

Each probe runs ``seer_torch.worker --profile-steps N`` (3 warm-up steps excluded, device
synchronized before timers are read, one validation pass timed) alone on the backend, so
the measurement is not disturbed by other jobs. From the probes:

- ``speedup[W] = throughput(W) / throughput(1)``;
- ``startup_s`` = the probe job's whole duration minus the time it spent in measured steps
  and the validation pass: the fixed cost of one job (torch imported by the agent and each
  worker, data and model built, the process group formed, warm-up steps, and torchrun's exit),
  which every launch pays;
- ``epoch_time_s`` = train samples / throughput(1) + one validation pass at W=1.

Effects live here (jobs are launched); the arithmetic is in :func:`profile_from_probes`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

from seer_torch.backends.base import Backend, JobResult, JobSpec, job_error_text
from seer_torch.clock import Clock
from seer_torch.errors import BudgetExhausted, WorkerError
from seer_torch.scaling.profile import Profile

PROFILE_STEPS = 20


def probe_startup_s(probe: dict[str, Any], duration_s: float) -> float:
    """A probe job's fixed cost: its whole duration minus the measured steps and the timed
    validation pass (everything a launch pays before and after useful work)."""
    working_s = float(probe["measured_steps"]) * float(probe["step_time_s"]) + float(probe["eval_time_s"])
    return max(0.0, duration_s - working_s)


def wait_job(backend: Backend, clock: Clock, handle: Any, timeout_s: float, poll_s: float = 0.1) -> JobResult:
    """Poll ``handle`` until its job ends, or stop it after ``timeout_s`` (then ``stopped``)."""
    while (res := backend.poll(handle)) is None:
        if clock.now() - handle.start_s > timeout_s:
            return backend.stop(handle)
        clock.sleep(poll_s)
    return res


def profile_from_probes(
    name: str, probes: Sequence[tuple[dict[str, Any], float, float]], source: str
) -> Profile:
    """Build a profile from probe outputs.

    Args:
        probes: ``(probe_json, launch_unix_s, job_duration_s)`` per world size. ``probe_json``
            is what the worker wrote with ``--profile-out``.

    Raises:
        ValueError: no W=1 probe.
    """
    by_w = {int(p["world_size"]): (p, launch, duration) for p, launch, duration in probes}
    if 1 not in by_w:
        raise ValueError("a profile needs a W=1 probe")
    p1 = by_w[1][0]
    thr1 = float(p1["throughput_samples_per_s"])
    world_sizes = sorted(by_w)
    throughput = [float(by_w[w][0]["throughput_samples_per_s"]) for w in world_sizes]
    startups = [probe_startup_s(by_w[w][0], by_w[w][2]) for w in world_sizes]
    epoch_time_s = float(p1["num_train_samples"]) / thr1 + float(p1["eval_time_s"])
    return Profile(
        name=name,
        world_sizes=tuple(world_sizes),
        speedup=tuple(t / thr1 for t in throughput),
        epoch_time_s=epoch_time_s,
        startup_s=max(startups),
        resize_s=max(startups),
        throughput_samples_per_s=tuple(throughput),
        source=source,
    )


def run_probes(
    backend: Backend,
    clock: Clock,
    probe_dir: Path,
    trial_config: dict[str, Any],
    world_sizes: Sequence[int],
    on_job_end: Callable[[JobResult], None] = lambda r: None,
    over_budget: Callable[[list[tuple[float, int]]], str | None] = lambda held: None,
    profile_steps: int = PROFILE_STEPS,
    timeout_s: float = 300.0,
) -> list[tuple[dict[str, Any], float, float]]:
    """Run one probe job per world size, alone; return ``(probe_json, launch_unix_s, duration_s)``.

    ``trial_config`` is a trial's ``config.json`` content (the configuration to measure).
    ``on_job_end`` sees every finished probe (the executor bills it). ``over_budget`` is asked
    at every poll with the running probe's ``(start_s, world_size)`` and returns why a hard
    limit is reached, or ``None``; the probe is then stopped.

    Raises:
        WorkerError: a probe failed or ran past ``timeout_s`` (with the worker's error).
        BudgetExhausted: a hard limit was reached while profiling.
    """
    results = []
    for w in world_sizes:
        d = probe_dir / f"w{w}"
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps({**trial_config, "tensorboard_dir": None}, indent=2))
        out = d / "profile.json"
        spec = JobSpec(trial_id=f"profile-w{w}", trial_dir=d, world_size=w, until_epoch=1,
                       profile_steps=profile_steps, profile_out=out)
        if reason := over_budget([]):
            raise BudgetExhausted(f"{reason} before profiling at W={w}; no plan, no answer")
        handle = backend.launch(spec)
        reason = None
        while (res := backend.poll(handle)) is None:
            reason = over_budget([(handle.start_s, w)])
            if reason or clock.now() - handle.start_s > timeout_s:
                res = backend.stop(handle)
                break
            clock.sleep(0.1)
        on_job_end(res)
        if reason:
            raise BudgetExhausted(f"{reason} while profiling at W={w}; no plan, no answer")
        if res.returncode != 0 or not out.exists():
            raise WorkerError(f"profile probe at W={w} failed: {job_error_text(res)}")
        results.append((json.loads(out.read_text()), res.launch_unix_s, res.duration_s))
    return results
