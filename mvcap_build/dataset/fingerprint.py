"""Fingerprints: what settings produced a committed unit.

A stage describes each unit's inputs as a flat mapping of named fields (`resolution`,
`views.num_views`, `asset.size`, `model`, ...). The unit stores that mapping and its digest; a
rerun compares digests to tell a unit made with the same settings (skip) from a stale one (stop,
or redo with `--redo stale`), and compares fields to say what changed.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict


class Fingerprint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    digest: str  # sha256 of the canonical JSON of `fields`, first 16 hex digits
    fields: dict[str, Any]  # flat: nested settings are joined with dots

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Fingerprint:
        fields = flatten(settings)
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return cls(digest=hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16], fields=fields)


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"views": {"num_views": 4}} -> {"views.num_views": 4}; lists and scalars stay as they are."""
    flat: dict[str, Any] = {}
    for name, value in settings.items():
        dotted = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = _as_stored(value)
    return flat


def _as_stored(value: Any) -> Any:
    """The value as JSON gives it back (tuples become lists), so a stored fingerprint compares equal."""
    if isinstance(value, (list, tuple)):
        return [_as_stored(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def changed_fields(old: Fingerprint | None, new: Fingerprint) -> list[str]:
    """Names of the fields that differ; `(no fingerprint)` for units made before fingerprints."""
    if old is None:
        return ["(no fingerprint recorded)"]
    if old.digest == new.digest:
        return []
    names = set(old.fields) | set(new.fields)
    return sorted(n for n in names if old.fields.get(n, "<absent>") != new.fields.get(n, "<absent>"))


class StaleReport:
    """Which fields differ on how many units, with one example of old and new values each."""

    def __init__(self) -> None:
        self.units: list[str] = []
        self.fields: Counter[str] = Counter()
        self.examples: dict[str, tuple[Any, Any]] = {}

    def add(self, key: str, old: Fingerprint | None, new: Fingerprint) -> None:
        self.units.append(key)
        for name in changed_fields(old, new):
            self.fields[name] += 1
            if name not in self.examples and old is not None:
                self.examples[name] = (old.fields.get(name, "<absent>"), new.fields.get(name, "<absent>"))

    def __len__(self) -> int:
        return len(self.units)

    def describe(self, limit: int = 12) -> Iterable[str]:
        for name, count in self.fields.most_common(limit):
            example = self.examples.get(name)
            change = f": {_short(example[0])} -> {_short(example[1])}" if example else ""
            yield f"  {name}{change} ({count} unit{'s' if count != 1 else ''})"


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."
