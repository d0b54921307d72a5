"""Splits stratified by category: every split holds its share of every category."""

from __future__ import annotations

from collections import Counter

from mvcap_build.export.config import ExportConfig
from mvcap_build.export.shards import split_of, stratified_splits


def test_each_category_is_split_by_its_own_counts():
    category_of = {f"{c}/{i:03d}": c for c in ("bottle", "chair", "mug") for i in range(20)}
    category_of.update({f"lamp/{i}": "lamp" for i in range(7)})
    fractions = {"train": 0.6, "validation": 0.2, "test": 0.2}
    split = stratified_splits(category_of, fractions)
    assert set(split) == set(category_of)
    counts = Counter((category_of[k], s) for k, s in split.items())
    for c in ("bottle", "chair", "mug"):
        assert [counts[c, s] for s in fractions] == [12, 4, 4]
    # 7 x (0.6, 0.2, 0.2) = 4.2, 1.4, 1.4: floors 4, 1, 1, the one left to the largest remainder
    # (validation and test tie; the earlier split wins).
    assert [counts["lamp", s] for s in fractions] == [4, 2, 1]
    # Deterministic, and the same whatever order the keys come in.
    assert stratified_splits(dict(reversed(list(category_of.items()))), fractions) == split


def test_a_hash_split_is_not_stratified_and_the_option_defaults_off():
    keys = [f"bottle/{i:03d}" for i in range(20)]
    fractions = {"train": 0.6, "validation": 0.2, "test": 0.2}
    by_hash = Counter(split_of(k, fractions) for k in keys)
    assert sum(by_hash.values()) == 20  # whatever it is; stratified is exact:
    assert Counter(stratified_splits(dict.fromkeys(keys, "bottle"), fractions).values()) == {
        "train": 12,
        "validation": 4,
        "test": 4,
    }
    assert ExportConfig().stratify_splits is False
    assert ExportConfig(splits=fractions, stratify_splits=True).stratify_splits is True
