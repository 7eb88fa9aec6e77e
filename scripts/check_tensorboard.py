#!/usr/bin/env python3
"""Check a run's TensorBoard logs: per run and tag, the steps must strictly increase.

    python scripts/check_tensorboard.py RUN_DIR [RUN ...]

Checks every run under ``RUN_DIR/tensorboard`` (each trial's, named after its trial id and
configuration as ``t003_lr=0.01,width=64``, and ``experiment/``, the experiment's own panels,
one point per round), or the runs named (a trial id names its trial's run). Prints one line per
run and tag (points, first and last step, and where the world size changed) and exits 1 if any
tag repeats a step or goes backwards, which is what a resize or a resume must never cause
(docs/design.md, training invariants). Events a writer hid with ``purge_step`` do not count (as in
TensorBoard). Then, when the run wrote its report to TensorBoard (at its end), the figures under
``experiment/`` and what the HParams tab lists: one line per trial, best first by the run's metric.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def check_trial(tb_dir: Path, width: int = 12) -> bool:
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0, "images": 0})
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
            f"{tb_dir.name:>{width}} {tag:<34} {len(steps):6d} points, steps {steps[0]}..{steps[-1]}"
            f" {'strictly increasing' if monotone else 'REPEATED OR BACKWARD STEPS'}{extra}"
        )
    for tag in sorted(acc.Tags()["images"]):
        image = acc.Images(tag)[-1]
        print(f"{tb_dir.name:>{width}} {tag:<34} image {image.width}x{image.height}, "
              f"{len(image.encoded_image_string)} bytes")
    return ok


def resolve(tb: Path, name: str) -> str:
    """The run ``name`` names: itself, or the trial run of the trial id ``name``."""
    if (tb / name).is_dir():
        return name
    runs = [p.name for p in tb.iterdir() if p.is_dir() and p.name.startswith(f"{name}_")]
    return runs[0] if len(runs) == 1 else name


def print_hparams(tb: Path) -> None:
    """One line per session of the HParams tab (nothing when the run wrote none)."""
    from seer_torch.testing import hparams_tab

    metric = None
    results = tb.parent / "results.json"
    if results.is_file():
        metric = json.loads(results.read_text()).get("metric")
    experiment, rows = hparams_tab(tb, sort_by=metric)
    if not rows:
        return
    print(f"HParams: {len(rows)} trial(s), columns {', '.join(h.name for h in experiment.hparam_infos)}; "
          f"metrics {', '.join(m.name.tag for m in experiment.metric_infos)}")
    for r in rows:
        value = r["metrics"].get(metric) if metric else None
        shown = f"{metric} {value:.4g}" if value is not None else f"{metric or 'metric'} -"
        print(f"  {r['run']:<60} {r['status']:<15} {shown}")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    tb = Path(argv[0]) / "tensorboard"
    if not tb.is_dir():
        print(f"{tb}: no tensorboard folder", file=sys.stderr)
        return 2
    runs = [resolve(tb, name) for name in argv[1:]] or sorted(p.name for p in tb.iterdir() if p.is_dir())
    width = max([12, *(len(r) for r in runs)])
    ok = all([check_trial(tb / t, width) for t in runs])
    if not argv[1:]:
        print_hparams(tb)
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        code = main(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:  # `... | head`: the reader left; say nothing more (Python's docs)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 1
    sys.exit(code)
