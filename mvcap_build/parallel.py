"""`map` over a process pool that keeps the input order and only a bounded window in flight.

`Executor.map` submits the whole input at once, which would hold a future for every object or
view of the root in memory; this submits batches as results come back. Used by the preview
(thumbnails) and the export (training-ready images). Workers are spawned, not forked, so they do
not inherit the parent's threads (the progress ticker) or its locks.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, batch: int = 16) -> Iterator[R]:
    """fn over items, results in input order; in this process when workers <= 1."""
    if workers <= 1:
        yield from map(fn, items)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    pending: deque[Future[list[R]]] = deque()
    try:
        for chunk in _batches(items, batch):
            pending.append(pool.submit(_apply, fn, chunk))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _apply(fn: Callable[[T], R], chunk: list[T]) -> list[R]:
    return [fn(item) for item in chunk]


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    return iter(lambda: list(islice(iterator, size)), [])
