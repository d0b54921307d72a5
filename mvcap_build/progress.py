"""Progress that suits where the output goes.

On a terminal: a rich progress bar. Anywhere else (Slurm logs, pipes, nohup): one plain line at a
steady interval ("12 done, 2 failed of 30", rate, ETA), so a log shows a stage is alive even
while one long unit runs; and one last line when the stage ends. `MVCAP_PROGRESS_INTERVAL` sets
the interval in seconds (default 30).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

DEFAULT_INTERVAL_S = 30.0


class _Silent:
    def advance(self, n: int = 1, failed: bool = False) -> None:
        pass


class LogLines:
    """Periodic progress lines for output that is not a terminal."""

    def __init__(self, description: str, total: int, interval_s: float, stream: TextIO) -> None:
        self.description, self.total, self.interval_s, self.stream = description, total, interval_s, stream
        self.done = self.failed = 0
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self) -> LogLines:
        self._print()
        self._ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._ticker.join()
        self._print(final=True)

    def advance(self, n: int = 1, failed: bool = False) -> None:
        with self._lock:
            self.done += n
            self.failed += n if failed else 0
        if self.interval_s <= 0:
            self._print()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s if self.interval_s > 0 else 3600):
            self._print()

    def _print(self, final: bool = False) -> None:
        with self._lock:
            done, failed = self.done, self.failed
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = f"{(self.total - done) / rate:.0f} s" if rate > 0 and done < self.total else "-"
        state = "finished" if final else "progress"
        # `done` counts every unit tried; the line says how many succeeded and how many failed
        self.stream.write(
            f"[{time.strftime('%H:%M:%S')}] {self.description} {state}: {done - failed} done, {failed} failed "
            f"of {self.total}, {rate:.2f}/s, elapsed {elapsed:.0f} s, ETA {eta}\n"
        )
        self.stream.flush()


class _RichBar:
    def __init__(self, progress, task) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1, failed: bool = False) -> None:
        self._progress.advance(self._task, n)


def _interval() -> float:
    try:
        return float(os.environ.get("MVCAP_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S))
    except ValueError:
        return DEFAULT_INTERVAL_S


@contextmanager
def progress(description: str, total: int, enabled: bool = True, stream: TextIO | None = None) -> Iterator:
    """Yield an object with `advance(n=1, failed=False)`. Rich is imported only for a terminal."""
    stream = stream or sys.stderr
    if not enabled or total == 0:
        yield _Silent()
        return
    if not stream.isatty():
        with LogLines(description, total, _interval(), stream) as lines:
            yield lines
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(file=stream), transient=False) as bar:
        yield _RichBar(bar, bar.add_task(description, total=total))
