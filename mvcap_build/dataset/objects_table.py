"""The objects table: every object a source offers, one JSON line each, sorted by key."""

from __future__ import annotations

import json

from mvcap_build.dataset.atomic import atomic_write_text
from mvcap_build.dataset.layout import DatasetRoot
from mvcap_build.dataset.records import ObjectRecord
from mvcap_build.errors import ManifestError

__all__ = ["ManifestError", "read_objects", "write_objects_table"]


def write_objects_table(root: DatasetRoot, source: str, objects: list[ObjectRecord]) -> None:
    """Deterministic content, so concurrent shards writing the same table do not conflict."""
    keys = [o.key for o in objects]
    if len(set(keys)) != len(keys):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise ManifestError(f"source {source!r} lists these objects twice: {dupes[:5]}")
    lines = [
        json.dumps(o.model_dump(), sort_keys=True, ensure_ascii=False) for o in sorted(objects, key=lambda o: o.key)
    ]
    atomic_write_text(root.objects_table(source), "".join(line + "\n" for line in lines))


def read_objects(root: DatasetRoot) -> dict[str, ObjectRecord]:
    """All objects of all sources in the root, by key."""
    objects: dict[str, ObjectRecord] = {}
    for table in root.objects_tables():
        for number, line in enumerate(table.read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = ObjectRecord.model_validate_json(line)
            except ValueError as error:
                raise ManifestError(f"{table}:{number}: not a valid object row: {error}") from error
            objects[record.key] = record
    return objects
