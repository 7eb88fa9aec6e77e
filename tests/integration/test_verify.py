"""``seer verify`` under real torchrun on CPU/gloo: it passes the tabular example
(examples/tabular_mlp/train.py) and catches five broken copies of it, each made here by one text
substitution, naming the cause:

==================  ===========================================================  =======================
copy                the bug                                                      the cause it must name
==================  ===========================================================  =======================
loss_times_w        the training loss multiplied by ``t.world_size``              loss scaled by W
lr_times_w          AdamW built with ``lr * t.world_size``                       learning rate scaled by W
order_per_rank      each rank shuffles with a seed of its own, no train_batches  order drawn per rank
optimizer_not_saved the checkpoint holds the model only                          optimizer state not saved
eval_padded         evaluation padded to an even split (sample 0 counted twice)  evaluation padding
==================  ===========================================================  =======================

Each verification is three launches (W=1 epochs 1-2 with W=2 epoch 1, then W=1 epoch 2 from the
W=2 checkpoint); three verifications run at a time (the second phase of each is one process). The
correct example goes through the command line (``seer verify ... --json``, exit 0); a script that
fails at W=1 is exit 1 with the end of its stderr.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from seer_torch.config import TrialSpec, load_experiment
from seer_torch.verify import run_verify, setup_from_experiment

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tabular_mlp"
TIMEOUT_S = 300

PER_RANK_ORDER = '''

def rank_batches(t, n, epoch):
    """BROKEN: each rank shuffles with a seed of its own and takes its share of each step."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(1000 * epoch + t.rank))
    share = t.global_batch // t.world_size
    for step in range(n // t.global_batch):
        yield tuple(order[step * share:(step + 1) * share].split(t.micro_batch))


def main() -> None:'''

PADDED_EVALUATION = '''per_rank = -(-len(y_val) // t.world_size)  # BROKEN: padded to an even split
            padded = torch.arange(t.rank * per_rank, (t.rank + 1) * per_rank) % len(y_val)
            sums = t.all_reduce_sum(score(padded).double())
            val_loss, val_accuracy = (sums / (per_rank * t.world_size)).tolist()'''

#: copy -> (substitutions (old, new) applied to the example's text, the cause, the failing check)
COPIES = {
    "loss_times_w": ([("/ t.accum_steps\n", "/ t.accum_steps * t.world_size\n")],
                     "loss scaled by W", "losses and metrics"),
    "lr_times_w": ([('lr=cfg["lr"]', 'lr=cfg["lr"] * t.world_size')],
                   "learning rate scaled by W", "learning rate"),
    "order_per_rank": ([("\n\ndef main() -> None:", PER_RANK_ORDER),
                        ("t.train_batches(len(y), epoch)", "rank_batches(t, len(y), epoch)")],
                       "order drawn per rank", "parameters"),
    "optimizer_not_saved": ([('{"model": model.state_dict(), "optimizer": opt.state_dict()}',
                              '{"model": model.state_dict()}'),
                             ('opt.load_state_dict(state["optimizer"])', "pass")],
                            "optimizer state not saved", "resume restores the state"),
    "eval_padded": ([("val_loss, val_accuracy = t.evaluate_sharded(len(y_val), score)", PADDED_EVALUATION)],
                    "evaluation padding", "evaluation"),
}


def _broken_copy(folder: Path, name: str) -> Path:
    text = (EXAMPLE / "train.py").read_text(encoding="utf-8")
    for old, new in COPIES[name][0]:
        assert text.count(old) == 1, f"{name}: the example no longer holds {old!r} once"
        text = text.replace(old, new)
    path = folder / name / "train.py"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    return path


def _verify_copy(root: Path, name: str):
    """The in-process verification of one broken copy, with the example's experiment."""
    exp = load_experiment(EXAMPLE / "experiment.toml")
    script = _broken_copy(root / "scripts", name)
    exp = dataclasses.replace(exp, trial=TrialSpec(script=str(script), args=exp.trial.args))
    return run_verify(setup_from_experiment(exp, timeout_s=TIMEOUT_S), root / "work" / name)


def _verify_example_cli(root: Path) -> tuple[int, dict, float, str]:
    """``seer verify examples/tabular_mlp/experiment.toml --json`` as a user runs it."""
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "seer_torch.cli", "verify", str(EXAMPLE / "experiment.toml"),
                           "--json", "--work-dir", str(root / "work" / "example")],
                          capture_output=True, text=True, timeout=3 * TIMEOUT_S)
    report = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, report, time.monotonic() - start, proc.stderr


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    with ThreadPoolExecutor(max_workers=3) as pool:
        example = pool.submit(_verify_example_cli, root)
        copies = {name: pool.submit(_verify_copy, root, name) for name in COPIES}
        result = {"example": example.result(), **{name: f.result() for name, f in copies.items()}}
    # the table for the record (pytest -s shows it)
    rows = [("example", *_row({c["name"]: c["status"] for c in result["example"][1]["checks"]},
                              [c["cause"] for c in result["example"][1]["causes"]], result["example"][2]))]
    for name in COPIES:
        report = result[name]
        statuses = {c.name: c.status for c in report.checks}
        rows.append((name, *_row(statuses, list(report.causes), report.seconds)))
    print("\ncopy | " + " | ".join(_SHORT) + " | named cause | seconds")
    for row in rows:
        print(" | ".join(map(str, row)))
    return result


_SHORT = ("launch", "init", "order", "lr", "losses", "params", "eval", "ckpt", "resume")


def _row(statuses: dict, causes: list, seconds: float) -> tuple:
    return (*statuses.values(), ", ".join(causes) or "-", f"{seconds:.0f}")


def test_verify_passes_the_example(verdicts):
    code, report, _, stderr = verdicts["example"]
    assert code == 0, stderr
    assert report["passed"] is True and report["causes"] == []
    status = {c["name"]: c["status"] for c in report["checks"]}
    # the example takes its batches from t.train_batches and saves its optimizer: every check is judged
    assert set(status.values()) == {"pass"}, status
    assert report["world_size"] == 2 and report["global_batch"] == 32
    assert [(lr["name"], lr["world_size"], lr["returncode"]) for lr in report["launches"]] == [
        ("ref", 1, 0), ("wide", 2, 0), ("resumed", 1, 0)]


@pytest.mark.parametrize("name", list(COPIES))
def test_verify_catches_a_broken_copy_and_names_its_cause(verdicts, name):
    report = verdicts[name]
    _, cause, check = COPIES[name]
    status = {c.name: (c.status, c.cause) for c in report.checks}
    assert not report.passed
    # with each failed check's detail: a launch that failed says why (its worker's error)
    assert report.causes == (cause,), (status, [c.detail for c in report.checks if c.status == "fail"])
    assert status[check] == ("fail", cause)
    assert status["launches"] == ("pass", None)


def test_a_script_that_fails_at_w1_is_exit_1_with_its_stderr(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import sys\nprint('no such dataset: qwerty', file=sys.stderr)\n"
                      "raise RuntimeError('cannot load the data')\n")
    argv = [sys.executable, "-m", "seer_torch.cli", "verify", str(script), "--config", "lr=0.1"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 1, proc.stderr
    assert "the script fails at W=1" in proc.stderr
    assert "RuntimeError: cannot load the data" in proc.stderr and "no such dataset: qwerty" in proc.stderr
