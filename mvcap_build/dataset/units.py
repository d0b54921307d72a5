"""Choosing the units a stage run must do, and counting what happened to them.

A unit is done when its committed file exists; a failed unit is skipped unless the run asks to
retry failures; units of other shards are left to their own jobs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from mvcap_build.dataset.keys import in_shard
from mvcap_build.dataset.ledger import FailureLedger

T = TypeVar("T")


@dataclass
class UnitCounts:
    objects: int = 0  # units in this shard
    already_done: int = 0  # committed before this run
    skipped_failed: int = 0  # in the ledger and not retried
    failed: dict[str, int] = field(default_factory=dict)  # reason -> units failed in this run

    def fail(self, ledger: FailureLedger, key: str, reason: str, detail: str) -> None:
        ledger.record(key, reason, detail)
        self.failed[reason] = self.failed.get(reason, 0) + 1


def select_todo(
    units: Iterable[T],
    *,
    key: Callable[[T], str],
    committed: Callable[[str], Path],
    ledger: FailureLedger,
    counts: UnitCounts,
    shard: int,
    num_shards: int,
    retry_failed: bool,
) -> list[T]:
    todo = []
    for unit in units:
        unit_key = key(unit)
        if not in_shard(unit_key, shard, num_shards):
            continue
        counts.objects += 1
        if committed(unit_key).is_file():
            counts.already_done += 1
        elif ledger.has(unit_key) and not retry_failed:
            counts.skipped_failed += 1
        else:
            todo.append(unit)
    return todo
