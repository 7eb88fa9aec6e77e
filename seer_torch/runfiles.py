"""Reading and writing the files a run leaves (DESIGN.md, "Files a run leaves").

Writes that matter are atomic: a temporary file in the same folder, fsync, then
``os.replace``, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Write a file atomically: ``write(f)`` fills a temporary file in the same folder, which is
    fsynced and then renamed over ``path`` with ``os.replace``. On any error the temporary file
    is removed and ``path`` is untouched. The file gets the ordinary permissions of the umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: f.write(text))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, keep_previous: bool = False) -> None:
    """Write ``obj`` as indented JSON, atomically. NaN and infinities are written as null.

    ``keep_previous``: the file being replaced is kept as ``NAME.prev.EXT`` (``state.json`` ->
    ``state.prev.json``), so a reader that finds the new one damaged can fall back to it. The
    current file never goes missing: the previous one is linked, not moved.
    """
    path = Path(path)
    if keep_previous and path.exists():
        prev = path.with_name(f"{path.stem}.prev{path.suffix}")
        tmp = path.with_name(f".{path.name}.prevlink")
        try:
            tmp.unlink(missing_ok=True)
            os.link(path, tmp)
            os.replace(tmp, prev)
        except OSError:
            pass
    atomic_write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False) + "\n")


def read_metrics(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The complete JSON lines of a trial's ``metrics.jsonl`` (a torn last line is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
