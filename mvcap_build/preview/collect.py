"""What a dataset root says about one object, gathered for the preview.

Objects come from the objects tables, streamed a line at a time (each table is written sorted by
key), so that every object shows up, including those whose render or extract failed and that
have no views. A manifest that cannot be read does not stop the preview: the object is shown
with a `preview` failure that names the file, as the page is where one goes to find such things.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mvcap_build.dataset import (
    DatasetRoot,
    FailureLedger,
    ObjectRecord,
    ViewsManifest,
    read_caption_manifest,
    read_views_manifest,
)
from mvcap_build.errors import ManifestError
from mvcap_build.preview import thumbs

PREVIEW_STAGE = "preview"  # failures the preview itself found (unreadable manifests or images)


def iter_objects(root: DatasetRoot) -> Iterator[ObjectRecord]:
    for table in root.objects_tables():
        with table.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield _object_row(table, number, line)


def count_objects(root: DatasetRoot) -> int:
    total = 0
    for table in root.objects_tables():
        with table.open(encoding="utf-8") as lines:
            total += sum(1 for line in lines if line.strip())
    return total


def _object_row(table: Path, number: int, line: str) -> ObjectRecord:
    try:
        return ObjectRecord.model_validate_json(line)
    except ValueError as error:
        raise ManifestError(f"{table}:{number}: not a valid object row: {error}") from error


def failure_stages(root: DatasetRoot) -> list[str]:
    """The stages with a failure ledger in this root, and the preview's own."""
    folder = root.path / "failures"
    found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    return [*found, PREVIEW_STAGE]


@dataclass
class Collected:
    """One object: its row in the page's index and the details its chunk holds."""

    key: str
    category: str
    views: int = 0
    captions: int = 0
    max_tries: int = 0
    failed_stages: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    sprite: str | None = None  # "made" or "reused" when the object has a thumbnail sprite


@dataclass(frozen=True)
class CollectSettings:
    root: Path
    out: Path
    thumb_size: int
    stages: tuple[str, ...]


def collect(settings: CollectSettings, obj: tuple[str, str]) -> Collected:
    """Everything the page shows of one object (key, category); runs in the worker processes."""
    root = DatasetRoot(settings.root)
    key, category = obj
    found = Collected(key=key, category=category)
    found.details = {"key": key, "category": category, "views": [], "captions": [], "prompts": [], "failures": []}
    failures = found.details["failures"]
    failures.extend(_ledger_entries(root, key, settings.stages))
    try:
        manifest = _add_views(found, root)
    except (ManifestError, OSError) as error:
        manifest = None
        failures.append(_problem("unreadable_views", error))
    if manifest is not None and manifest.views:
        try:
            _add_sprite(found, root, settings, manifest)
        except (OSError, ValueError) as error:  # a missing or broken image file
            failures.append(_problem("thumbnail_failed", error))
    try:
        _add_captions(found, root)
    except (ManifestError, OSError) as error:
        failures.append(_problem("unreadable_captions", error))
    found.failed_stages = sorted({entry["stage"] for entry in failures})
    return found


def _ledger_entries(root: DatasetRoot, key: str, stages: tuple[str, ...]) -> list[dict[str, Any]]:
    entries = []
    for stage in stages:
        try:
            entry = FailureLedger(root, stage).get(key) if stage != PREVIEW_STAGE else None
        except ManifestError as error:
            entries.append(_problem("unreadable_failure_entry", error))
            continue
        if entry is not None:
            entries.append({"stage": entry.stage, "reason": entry.reason, "detail": entry.detail, "time": entry.time})
    return entries


def _problem(reason: str, error: Exception) -> dict[str, Any]:
    return {"stage": PREVIEW_STAGE, "reason": reason, "detail": str(error), "time": None}


def _add_views(found: Collected, root: DatasetRoot) -> ViewsManifest | None:
    path = root.view_manifest(found.key)
    if not path.is_file():
        return None
    manifest = read_views_manifest(path)
    found.details["producer"] = _producer(manifest)
    found.details["views"] = [
        {
            "index": v.view_index,
            "file": v.file,
            "azimuth": v.azimuth_deg,
            "elevation": v.elevation_deg,
            "width": v.width,
            "height": v.height,
        }
        for v in manifest.views
    ]
    found.views = len(manifest.views)
    return manifest


def _add_sprite(found: Collected, root: DatasetRoot, settings: CollectSettings, manifest: ViewsManifest) -> None:
    path = root.view_manifest(found.key)
    layout = thumbs.SpriteLayout.of(manifest, settings.thumb_size)
    relpath = thumbs.sprite_relpath(found.key, path, manifest, layout)
    made = thumbs.ensure_sprite(settings.out, relpath, path.parent, manifest, layout)
    found.details["sprite"] = {"file": relpath, "columns": layout.columns, "rows": layout.rows}
    found.sprite = "made" if made else "reused"


def _add_captions(found: Collected, root: DatasetRoot) -> None:
    path = root.caption_manifest(found.key)
    if not path.is_file():
        return
    rows = read_caption_manifest(path).rows
    prompts: list[str] = []
    captions = []
    for row in rows:
        if row.prompt not in prompts:
            prompts.append(row.prompt)
        captions.append(
            {
                "view": row.view_index,
                "text": row.caption,
                "tries": row.tries,
                "prompt": prompts.index(row.prompt),
                "prompt_name": row.prompt_name,
                "backend": row.backend,
                "model": row.model,
            }
        )
    found.details["captions"], found.details["prompts"] = captions, prompts
    found.captions = len(rows)
    found.max_tries = max((row.tries for row in rows), default=0)


def _producer(manifest: ViewsManifest) -> str:
    producer = manifest.producer
    if producer.kind == "render":
        return f"rendered: {producer.engine}, {producer.resolution} px, {producer.device}, Blender {producer.blender}"
    how = f", poses: {producer.reconstruction}" if producer.reconstruction else ""
    return f"captured: {producer.source}{how}"
