"""Which rows go to which Parquet file: object-level splits and shards that roll by size.

Splits are drawn per object from a stable hash of its key, so no object is in two splits and an
object keeps its split when others are added. Shards roll when their images reach
`max_shard_bytes` (the Hub's ~500 MB convention) or `rows_per_parquet`, whichever comes first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from mvcap_build.dataset.export_schema import ExportRow


def split_of(key: str, fractions: dict[str, float]) -> str:
    """The split of an object: where the key's hash falls in the cumulative fractions."""
    point = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") / 2**64
    total = 0.0
    for name, fraction in fractions.items():
        total += fraction
        if point < total:
            return name
    return next(reversed(fractions))  # rounding: the last split takes the remainder


def plan_shards(rows: list[ExportRow], size_of: Callable[[ExportRow], int], *, max_bytes: int, max_rows: int | None) -> list[list[ExportRow]]:
    """Consecutive groups of rows, each under `max_bytes` of images (a single larger row gets a
    shard of its own) and at most `max_rows` rows."""
    shards: list[list[ExportRow]] = []
    current: list[ExportRow] = []
    size = 0
    for row in rows:
        row_size = size_of(row)
        if current and (size + row_size > max_bytes or (max_rows is not None and len(current) >= max_rows)):
            shards.append(current)
            current, size = [], 0
        current.append(row)
        size += row_size
    if current:
        shards.append(current)
    return shards
