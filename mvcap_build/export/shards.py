"""Which rows go to which Parquet file: object-level splits and shards that roll by size.

Splits are drawn per object from a stable hash of its key, so no object is in two splits and an
object keeps its split when others are added. Shards roll when their images reach
`max_shard_bytes` (the Hub's ~500 MB convention) or `rows_per_parquet`, whichever comes first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from mvcap_build.dataset.export_schema import ExportRow


def _hash_point(key: str) -> float:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") / 2**64


def split_of(key: str, fractions: dict[str, float]) -> str:
    """The split of an object: where the key's hash falls in the cumulative fractions."""
    point = _hash_point(key)
    total = 0.0
    for name, fraction in fractions.items():
        total += fraction
        if point < total:
            return name
    return next(reversed(fractions))  # rounding: the last split takes the remainder


def stratified_splits(category_of: dict[str, str], fractions: dict[str, float]) -> dict[str, str]:
    """key -> split, each category split by its own counts, so every split holds its fraction of
    every category (a hash split of 20 objects can leave a split with one of them, or none).

    Per category: the split sizes are the fractions of its object count, rounded by largest
    remainder (earlier splits win ties); its objects, ordered by the hash of their key, fill the
    splits in the configured order. Adding objects can move others, unlike `split_of`.
    """
    by_category: dict[str, list[str]] = {}
    for key, category in category_of.items():
        by_category.setdefault(category, []).append(key)
    names = list(fractions)
    assignment: dict[str, str] = {}
    for keys in by_category.values():
        keys.sort(key=lambda k: (_hash_point(k), k))
        ideal = [fractions[name] * len(keys) for name in names]
        counts = [int(x) for x in ideal]
        by_remainder = sorted(range(len(names)), key=lambda i: (-(ideal[i] - counts[i]), i))
        for i in by_remainder[: len(keys) - sum(counts)]:
            counts[i] += 1
        start = 0
        for name, count in zip(names, counts):
            assignment.update((k, name) for k in keys[start : start + count])
            start += count
    return assignment


def plan_shards(
    rows: list[ExportRow], size_of: Callable[[ExportRow], int], *, max_bytes: int, max_rows: int | None
) -> list[list[ExportRow]]:
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
