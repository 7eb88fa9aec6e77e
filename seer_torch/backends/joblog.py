"""What a job's processes said on stderr, read back when it failed: the last lines of its
ranks, the exception the failing rank raised and the signal that ended it, with torchrun's own
report left out.

A job's stderr goes to ``TRIAL_DIR/stderr.log`` (appended across its launches, each after a
line starting with :data:`LAUNCH_HEADER`). Under torchrun it holds, for the launch that failed:
the ranks' own output (at ``W > 1`` each line prefixed ``[rankN]: `` by torch.distributed), then
torchrun's report: log lines of its agent (``E1206 23:01:09.642000 3685
.../torch/distributed/elastic/multiprocessing/api.py:1002] failed (exitcode: 1) ...``), the
launcher's own traceback (frames in ``torch/distributed/run.py``, ending in ``ChildFailedError``
or ``SignalException``) and a box between ``====`` lines that names the root cause (the first
rank that failed: its ``rank``, ``exitcode``, and ``Signal 9 (SIGKILL) received by PID ...``
when a signal ended it). That report says nothing about the user's code; the lines before it
do. See torch's ``torch/distributed/elastic/multiprocessing/errors/__init__.py`` for the box.

Only the last :data:`WINDOW_BYTES` of the file are read, so a script that printed gigabytes
costs no more than one that printed nothing; every line kept is cut to :data:`LINE_CHARS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: Each launch of a job appends a line starting with this to the trial's stdout.log and
#: stderr.log (the local backend writes ``=== launch W=.. until_epoch=.. at TIME ===``).
LAUNCH_HEADER = "=== launch "
STDERR_FILE = "stderr.log"
#: Lines of a rank's stderr kept in a failed trial's ``stderr_tail``.
TAIL_LINES = 8
#: Characters kept of one line (a longer one ends in ``... [N more characters]``).
LINE_CHARS = 240
#: Bytes read from the end of ``stderr.log``.
WINDOW_BYTES = 64 * 1024

# torchrun's agent logs through Python's logging with torch's format (``E1206 23:01:09.642000
# PID PATH:LINE] message``; older releases ``ERROR:torch.distributed.elastic...``).
_AGENT_LOG = re.compile(
    r"^(?:[DIWEC]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+\s+\S*torch/distributed/"
    r"|(?:DEBUG|INFO|WARNING|ERROR|CRITICAL):torch\.distributed\.)"
)
_RANK_PREFIX = re.compile(r"^\[(?:rank|default)(\d+)\]:\s?")
_ROOT_RANK = re.compile(r"^\s*rank\s*:\s*(\d+)")
_ROOT_EXIT = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)")
_ROOT_SIGNAL = re.compile(r"Signal \d+ \((SIG[A-Z0-9]+)\)")


@dataclass(frozen=True)
class JobLog:
    """What a job's processes wrote on stderr in its last launch, torchrun's report left out.

    Attributes:
        tail: at most :data:`TAIL_LINES` lines, oldest first, each at most :data:`LINE_CHARS`
            characters: the failing rank's traceback when there is one (its lines end at its
            exception), else the last lines any rank wrote. Rank prefixes are kept.
        exception: the last line of the failing rank's Python traceback, as Python printed it
            (``"RuntimeError: boom"``, ``"seer_torch.errors.ConfigError: report(epoch): ..."``),
            or ``None`` when no rank printed one.
        rank: the rank torchrun names as the first to fail (its report's root cause), or ``None``.
        signal: the signal that ended that rank (``"SIGKILL"``), or ``None``.
    """

    tail: tuple[str, ...] = ()
    exception: str | None = None
    rank: int | None = None
    signal: str | None = None


def read_job_log(trial_dir: str | Path) -> JobLog:
    """The :class:`JobLog` of the last launch in ``TRIAL_DIR/stderr.log`` (empty without one)."""
    path = Path(trial_dir) / STDERR_FILE
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - WINDOW_BYTES))
            raw = f.read()
    except OSError:
        return JobLog()
    lines = raw.decode("utf-8", errors="replace").splitlines()
    if size > WINDOW_BYTES and lines:
        lines = lines[1:]  # the window began inside a line
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(LAUNCH_HEADER):
            lines = lines[i + 1 :]
            break
    return parse_job_log(lines)


def parse_job_log(lines: list[str]) -> JobLog:
    """The :class:`JobLog` of one launch's stderr ``lines`` (see the module docstring)."""
    own, rank, signal = _split_torchrun_report(lines)
    # Each rank's tracebacks: where the last one ends (its exception line).
    ends: dict[int | None, int] = {}
    in_traceback: dict[int | None, bool] = {}
    for i, line in enumerate(own):
        who, text = _rank_of(line)
        if text.startswith("Traceback (most recent call last)"):
            in_traceback[who] = True
        elif in_traceback.get(who) and text and not text[0].isspace():
            in_traceback[who] = False
            if not text.startswith(("During handling", "The above exception")):
                ends[who] = i
    # The failing rank's: torchrun's root cause; else the first rank that raised (at W > 1 the
    # others' errors are mostly the consequence: a peer closed the connection).
    end = ends.get(rank) if rank in ends else (min(ends.values()) if ends else None)
    exception = _rank_of(own[end])[1].strip() if end is not None else None
    kept = own[: end + 1] if end is not None else own
    while kept and not kept[-1].strip():
        kept = kept[:-1]
    tail = tuple(_cut(line) for line in kept[-TAIL_LINES:])
    return JobLog(tail=tail, exception=_cut(exception) if exception else None, rank=rank, signal=signal)


def _rank_of(line: str) -> tuple[int | None, str]:
    """``(rank, text)`` of a line a rank printed with torch.distributed's ``[rankN]: `` prefix;
    ``(None, line)`` without one."""
    m = _RANK_PREFIX.match(line)
    return (int(m.group(1)), line[m.end() :]) if m else (None, line)


def _split_torchrun_report(lines: list[str]) -> tuple[list[str], int | None, str | None]:
    """``lines`` without torchrun's report (its agent's log lines, the launcher's traceback and
    its box), and the root cause's rank and signal that the box names."""
    own: list[str] = []
    rank: int | None = None
    signal: str | None = None
    i, n = 0, len(lines)
    while i < n:
        line = lines[i]
        if _AGENT_LOG.match(line):
            i += 1
            continue
        if line.startswith("Traceback (most recent call last)"):
            j = i + 1
            while j < n and (not lines[j] or lines[j][0].isspace()):
                j += 1
            block = lines[i:j]
            if any("torch/distributed/run.py" in b or "torch/distributed/launcher" in b for b in block):
                i = j + 1  # the launcher's traceback and its exception line
                if i < n and lines[i].startswith("====="):  # the box, to its closing line
                    k = i + 1
                    root = False
                    while k < n and not lines[k].startswith("====="):
                        text = lines[k]
                        root = root or text.startswith("Root Cause")
                        if root and rank is None and (m := _ROOT_RANK.match(text)):
                            rank = int(m.group(1))
                        if root and signal is None and (m := _ROOT_SIGNAL.search(text)):
                            signal = m.group(1)
                        if root and signal is None and (m := _ROOT_EXIT.match(text)) and int(m.group(1)) < 0:
                            signal = _signal_name(-int(m.group(1)))
                        k += 1
                    i = k + 1
                continue
        own.append(line)
        i += 1
    return own, rank, signal


def _signal_name(number: int) -> str:
    import signal as signals

    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _cut(line: str) -> str:
    """``line`` cut to :data:`LINE_CHARS` characters (saying how many were left out)."""
    line = line.rstrip()
    if len(line) <= LINE_CHARS:
        return line
    return f"{line[:LINE_CHARS]}... [{len(line) - LINE_CHARS} more characters]"
