#!/usr/bin/env python3
"""Check a run's TensorBoard logs: per run and tag, the steps must strictly increase.

    python scripts/check_tensorboard.py RUN_DIR [RUN ...]

Checks every run under ``RUN_DIR/tensorboard`` (each trial's, and ``experiment/``, the
experiment's own panels, one point per round), or the runs named. Prints one line per run and
tag (points, first and last step, and where the world size changed) and exits 1 if any tag
repeats a step or goes backwards, which is what a resize or a resume must never cause
(docs/design.md, training invariants). Events a writer hid with ``purge_step`` do not count (as in
TensorBoard).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def check_trial(tb_dir: Path) -> bool:
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    ok = True
    for tag in sorted(acc.Tags()["scalars"]):
        steps = [e.step for e in acc.Scalars(tag)]
        monotone = all(b > a for a, b in zip(steps, steps[1:]))
        ok &= monotone
        extra = ""
        if tag == "perf/world_size":
            values = [(e.step, int(e.value)) for e in acc.Scalars(tag)]
            changes = [f"W {a[1]}->{b[1]} at step {b[0]}" for a, b in zip(values, values[1:]) if a[1] != b[1]]
            extra = "; " + ", ".join(changes) if changes else ""
        print(
            f"{tb_dir.name:>12} {tag:<34} {len(steps):6d} points, steps {steps[0]}..{steps[-1]}"
            f" {'strictly increasing' if monotone else 'REPEATED OR BACKWARD STEPS'}{extra}"
        )
    return ok


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    tb = Path(argv[0]) / "tensorboard"
    if not tb.is_dir():
        print(f"{tb}: no tensorboard folder", file=sys.stderr)
        return 2
    runs = argv[1:] or sorted(p.name for p in tb.iterdir() if p.is_dir())
    ok = all([check_trial(tb / t) for t in runs])
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:  # `... | head`: the reader left; say nothing more (Python's docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)
