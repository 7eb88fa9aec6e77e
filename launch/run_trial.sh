#!/usr/bin/env bash
# Run one trial by hand: train TRIAL_DIR's configuration with NPROC CPU (or GPU) workers
# through epoch UNTIL_EPOCH, then checkpoint and exit.
#
#   launch/run_trial.sh TRIAL_DIR NPROC UNTIL_EPOCH
#
# A TRIAL_DIR without config.json gets the default digits configuration
# (python -m seer_torch.worker --write-default-config); edit it before the first run if you like.
# Results land in TRIAL_DIR: metrics.jsonl (one JSON line per epoch), checkpoint.pt, and the
# TensorBoard events under the config's tensorboard_dir.
#
# Resize = run again with another NPROC and a later epoch. The new job resumes from
# TRIAL_DIR/checkpoint.pt, whatever world size wrote it; the global batch, data order and
# learning-rate schedule stay the same, so the curve continues as if nothing had changed:
#
#   launch/run_trial.sh runs/t1 1 3     # epochs 1-3 on one worker
#   launch/run_trial.sh runs/t1 2 9     # epochs 4-9 on two workers
#   launch/run_trial.sh runs/t1 1 15    # epochs 10-15 on one worker again
#
# NPROC must divide the configuration's global_batch (into micro-batches of at most
# micro_batch_max, with gradient accumulation); the script says so before it launches anything.
# Set PYTHON to choose the interpreter (default: the repository's .venv if present, else python3).
set -euo pipefail

if [[ $# -ne 3 ]]; then
    echo "usage: $0 TRIAL_DIR NPROC UNTIL_EPOCH" >&2
    exit 2
fi
trial_dir=$1
nproc=$2
until_epoch=$3

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "$repo_root/.venv/bin/python" ]]; then
        PYTHON="$repo_root/.venv/bin/python"
    else
        PYTHON=python3
    fi
fi
# One thread per worker: a CPU slot is one process with one thread.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

# Write the default configuration if there is none, then check what the workers would reject
# (config.json, NPROC against the global batch, UNTIL_EPOCH, the data folder) before torchrun
# starts: one clear line and exit 2, not a traceback per rank.
"$PYTHON" - "$trial_dir" "$nproc" "$until_epoch" <<'PY' || exit $?
import sys
from seer_torch.data import check_cifar10_integrity, plan_batch
from seer_torch.errors import ConfigError, DatasetNotFoundError
from seer_torch.worker import TrialConfig, write_default_config
trial_dir, nproc, until_epoch = sys.argv[1:]
try:
    for name, text in (("NPROC", nproc), ("UNTIL_EPOCH", until_epoch)):
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(name, text, "an integer >= 1")
    try:  # checked before anything is written
        write_default_config(trial_dir)
    except OSError as error:
        raise ConfigError("TRIAL_DIR", trial_dir, f"a folder this user can create and write ({error.strerror})")
    config = TrialConfig.load(trial_dir)
    plan_batch(config.global_batch, int(nproc), config.micro_batch_max)
    if int(until_epoch) > config.max_epochs:
        raise ConfigError("UNTIL_EPOCH", int(until_epoch), f"an epoch <= max_epochs={config.max_epochs} of config.json")
    if config.dataset == "cifar10":
        check_cifar10_integrity(config.data_dir)
except (ConfigError, DatasetNotFoundError) as error:
    print(f"run_trial.sh: error: {error}", file=sys.stderr)
    sys.exit(2)
PY

# torchrun from the same interpreter; `python -m torch.distributed.run` is torchrun and works
# even where the torchrun script is not on PATH.
launcher=("$PYTHON" -m torch.distributed.run)
if command -v torchrun >/dev/null 2>&1 && [[ "$(command -v torchrun)" == "$(dirname "$PYTHON")/torchrun" ]]; then
    launcher=(torchrun)
fi
# torchrun's own logs go under the trial folder (by default it leaves a torchelastic_* folder in
# the system's temporary folder per launch) and are removed when it ends, as seer's jobs do.
log_dir="$trial_dir/torchrun_logs"
trap 'rm -rf "$log_dir"' EXIT
"${launcher[@]}" --standalone --nproc-per-node "$nproc" --log-dir "$log_dir" \
    -m seer_torch.worker --trial-dir "$trial_dir" --until-epoch "$until_epoch"
# Say where the trial stands (the last line of metrics.jsonl).
"$PYTHON" - "$trial_dir" "$until_epoch" <<'PY'
import json, pathlib, sys
path = pathlib.Path(sys.argv[1]) / "metrics.jsonl"
rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
if not rows:
    print(f"{sys.argv[1]}: no epoch trained yet")
else:
    r = rows[-1]
    note = "" if r["epoch"] == int(sys.argv[2]) else f" (already past epoch {sys.argv[2]}: nothing to do)"
    print(f"{sys.argv[1]}: epoch {r['epoch']}, step {r['step']}, world size {r['world_size']}, "
          f"val_accuracy {r.get('val_accuracy')}{note}")
PY
