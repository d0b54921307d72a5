"""The Blender workers' logs read back: which lines of `ROOT/logs/render/shard-I-of-N/worker-K.log`
are about one object.

A worker prints `[mvcap worker] <key>: ...` when it is done with an object (`blender/worker.py`);
what Blender printed while it imported and rendered that object (importer warnings, Cycles
messages) sits just before, after the worker's previous `[mvcap worker]` line. A multi-line
detail (a traceback) continues after the object's own line and is not attributed to it: the
ledger entry holds it whole.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MARKER = "[mvcap worker] "


@dataclass(frozen=True)
class LogExcerpt:
    """The lines of one log about one object, up to and including the worker's line for it."""

    path: Path
    first_line: int  # 1-based number of `lines[0]` in the file
    lines: list[str]


def worker_logs(stage_logs: Path) -> list[Path]:
    """Every worker log of a stage (all shards), oldest first."""
    paths = [path for path in stage_logs.glob("shard-*/worker-*.log") if path.is_file()]
    return sorted(paths, key=lambda path: (path.stat().st_mtime_ns, str(path)))


def object_excerpts(stage_logs: Path, key: str, tail: int = 40) -> list[LogExcerpt]:
    """Every stretch of the stage's worker logs about `key` (an object tried several times has
    several), oldest first; each keeps at most its last `tail` lines."""
    return [excerpt for path in worker_logs(stage_logs) for excerpt in _excerpts(path, key, max(tail, 1))]


def _excerpts(path: Path, key: str, tail: int) -> Iterator[LogExcerpt]:
    mine = f"{MARKER}{key}: "
    since: deque[tuple[int, str]] = deque(maxlen=tail)  # lines after the worker's last own line
    with path.open(encoding="utf-8", errors="replace") as log:
        for number, line in enumerate(log, 1):
            line = line.rstrip("\n")
            at = line.find(MARKER)
            if at < 0:
                since.append((number, line))
                continue
            if line.startswith(mine, at):
                since.append((number, line))
                yield LogExcerpt(path, since[0][0], [text for _, text in since])
            since.clear()
