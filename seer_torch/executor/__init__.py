"""The executor: drives a policy against a backend, with a clock and a budget meter.

One run (``seer tune``, ``seer simulate``), :class:`Tuner` the facade:

1. Write ``experiment.toml`` (when the run has a directory).
2. Profile, unless a profile is given: probe jobs through the real worker at W=1 and W=2,
   alone, a few steps each, warm-up excluded. Their time and slot-seconds are billed
   (:mod:`.context`).
3. Set the policy up (:mod:`seer_torch.policies.base`) with the experiment, the profile and
   the budgets left. SEER plans here; a fixed-cluster baseline reserves its cluster. The
   policy object is given to the tuner: the executor imports no concrete policy.
4. Event loop (:mod:`.loop`): ask the policy for decisions (at the start and after every job
   event), carry them out (launch a trial's job at ``W`` to an epoch, stop it, eliminate it),
   wait for the next job to end, read what it reported (``metrics.jsonl``, through the
   backend), and tell the policy. The policy never sees the clock; the executor never decides
   who survives.
5. Hard limits (:mod:`.budget`), whatever the policy says: at the deadline (less
   :data:`FINAL_GRACE_S` to write the answer) or when the money meter would reach the budget
   before the next check, running jobs are stopped (checkpoints kept). The answer is the
   policy's (:meth:`~seer_torch.policies.base.Policy.answer`), reported by :mod:`.results`.

Files (only when ``run_dir`` is given; a simulation may run without any; :mod:`.journal`):
``state.json`` is rewritten atomically at every event (from before profiling on, so that a run
stopped while it profiles can be resumed), ``decisions.jsonl`` gets a line per decision,
``results.json`` is written at the end, whatever ended the run (answer, budget, interrupt,
error; not a resume whose replay failed: that writes nothing). ``seer resume`` rebuilds a run
from them (:mod:`.resume`).

Modules: ``trials`` (trial status, records, the run's books), ``budget`` (meter, limits),
``context`` (set-up: config.json, profile, policy context), ``loop``, ``journal``,
``resume``, ``results``, ``tuner``.
"""

from __future__ import annotations

from seer_torch.executor.budget import (
    FINAL_GRACE_S,
    HANG_CHECK_S,
    LIMIT_TOL_S,
    NEW_JOB_S,
    POLL_S,
    STOP_MARGIN_S,
    Limits,
    Meter,
    experiment_billing,
)
from seer_torch.executor.context import (
    draw_costs_needed,
    draw_epoch_times_s,
    measure_profile,
    measure_script_profile,
    policy_context,
    trial_config,
    trial_job_spec,
    tune_probe_world_sizes,
)
from seer_torch.executor.journal import (
    DECISIONS_FILE,
    Crash,
    debug_crash_point,
    decision_to_dict,
    read_journal,
    view_from_dict,
    view_to_dict,
)
from seer_torch.executor.loop import MAX_PORT_RETRIES, PolicyError
from seer_torch.executor.trials import IllegalTransition, RoundRecord, Trial, TrialStatus, transition
from seer_torch.executor.tuner import PolicyFactory, Tuner

__all__ = [
    "DECISIONS_FILE",
    "FINAL_GRACE_S",
    "HANG_CHECK_S",
    "LIMIT_TOL_S",
    "MAX_PORT_RETRIES",
    "NEW_JOB_S",
    "POLL_S",
    "STOP_MARGIN_S",
    "Crash",
    "IllegalTransition",
    "Limits",
    "Meter",
    "PolicyError",
    "PolicyFactory",
    "RoundRecord",
    "Trial",
    "TrialStatus",
    "Tuner",
    "debug_crash_point",
    "decision_to_dict",
    "draw_costs_needed",
    "draw_epoch_times_s",
    "experiment_billing",
    "measure_profile",
    "measure_script_profile",
    "policy_context",
    "read_journal",
    "transition",
    "trial_config",
    "trial_job_spec",
    "tune_probe_world_sizes",
    "view_from_dict",
    "view_to_dict",
]
