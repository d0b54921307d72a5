"""Which objects a config asks for: uids, a uid file, a CSV `uid,category`, or LVIS categories;
and the seeded draw of N per category."""

from __future__ import annotations

import csv
import difflib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mvcap_build.errors import SourceError


@dataclass(frozen=True)
class Pick:
    uid: str
    category: str | None = None  # given by the CSV; None: from LVIS
    lvis: str | None = None  # the LVIS category it was selected by; None: look it up


def _unique(picks: list[Pick]) -> list[Pick]:
    seen: set[str] = set()
    return [pick for pick in picks if not (pick.uid in seen or seen.add(pick.uid))]


def read_uids_file(path: Path) -> list[str]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"uids_file not found: {path} (one uid per line)")
    lines = (line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines())
    uids = [line for line in lines if line and not line.startswith("#")]
    if not uids:
        raise SourceError(f"{path}: no uids in it")
    return uids


def read_uid_csv(path: Path) -> list[Pick]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"csv not found: {path} (columns: uid,category)")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "uid" not in reader.fieldnames:
            raise SourceError(f"{path}: needs a header with columns 'uid' and 'category'")
        given: dict[str, str | None] = {}
        for line, row in enumerate(reader, start=2):
            uid, category = (row.get("uid") or "").strip(), (row.get("category") or "").strip() or None
            if not uid:
                raise SourceError(f"{path}:{line}: empty uid")
            if uid in given and given[uid] != category:
                raise SourceError(f"{path}:{line}: uid {uid} listed again with another category")
            given[uid] = category
    if not given:
        raise SourceError(f"{path}: no rows")
    return [Pick(uid, category) for uid, category in given.items()]


def _lvis_names(config, lvis: dict[str, list[str]]) -> list[str]:
    if config.lvis_categories == "all":
        return sorted(lvis)
    names = [name.strip() for name in config.lvis_categories]
    unknown = [name for name in names if name not in lvis]
    if unknown:
        hints = {name: difflib.get_close_matches(name, list(lvis), n=3) for name in unknown[:5]}
        hint_text = "; ".join(
            f"{name!r}: did you mean {close}?" if close else repr(name) for name, close in hints.items()
        )
        raise SourceError(f"{len(unknown)} unknown LVIS categor{'y' if len(unknown) == 1 else 'ies'}: {hint_text}")
    return names


def select(config, lvis: dict[str, list[str]]) -> list[Pick]:
    """Every object the config names, each uid once (first mention wins)."""
    if config.uids is not None:
        return _unique([Pick(uid) for uid in config.uids])
    if config.uids_file is not None:
        return _unique([Pick(uid) for uid in read_uids_file(config.uids_file)])
    if config.csv is not None:
        return read_uid_csv(config.csv)
    return _unique([Pick(uid, None, name) for name in _lvis_names(config, lvis) for uid in sorted(set(lvis[name]))])


def _rank(seed: int, group: str, uid: str) -> bytes:
    return hashlib.blake2b(f"{seed}\0{group}\0{uid}".encode(), digest_size=16).digest()


def sample_per_category(picks: list[Pick], per_category: int, seed: int, group: Callable[[Pick], str]) -> list[Pick]:
    """N objects per group, the same for a seed whatever the input order.

    Each object gets a rank from a hash of (seed, group, uid) and the N lowest are kept, so a
    larger N keeps every object a smaller N chose, and new objects do not reshuffle old ones.
    """
    groups: dict[str, list[Pick]] = {}
    for pick in picks:
        groups.setdefault(group(pick), []).append(pick)
    kept = []
    for name, members in groups.items():
        kept += sorted(members, key=lambda pick: _rank(seed, name, pick.uid))[:per_category]
    return kept
