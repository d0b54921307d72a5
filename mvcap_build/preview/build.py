"""Build the preview of a root: stream its objects through `collect` (in worker processes),
write their details in chunks as they come, and keep only the compact index for the end.

Index rows are `[key, category number, views, captions, failed-stage bits, most tries]`; the
page filters and pages over them without loading any chunk it does not show.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from mvcap_build.dataset import DatasetRoot
from mvcap_build.parallel import ordered_map
from mvcap_build.preview.collect import Collected, CollectSettings, collect, count_objects, failure_stages, iter_objects
from mvcap_build.preview.site import Site
from mvcap_build.progress import progress

BATCH = 16  # objects per task sent to a worker process
INDEX_FIELDS = ["key", "category", "views", "captions", "failed", "max_tries"]


@dataclass(frozen=True)
class PreviewSettings:
    out: Path
    page_size: int = 50  # objects per page, and per data chunk: an unfiltered page loads one chunk
    thumb_size: int = 128  # pixels per side of a view's thumbnail (smaller views are not upscaled)
    workers: int = 0  # processes making thumbnails; 0: one per CPU core


@dataclass
class PreviewSummary:
    page: Path
    objects: int = 0
    with_views: int = 0
    captioned: int = 0
    failed: int = 0
    sprites_made: int = 0
    sprites_reused: int = 0
    pages: int = 0

    def line(self) -> str:
        return (
            f"preview: {self.objects} objects ({self.with_views} with views, {self.captioned} captioned, "
            f"{self.failed} with failures) "
            f"on {self.pages} page{'s' if self.pages != 1 else ''}; "
            f"thumbnails: {self.sprites_made} made, {self.sprites_reused} reused"
        )


@dataclass
class _Index:
    """What stays in memory: a few fields per object."""

    stages: list[str]
    categories: dict[str, int] = field(default_factory=dict)
    rows: list[list[Any]] = field(default_factory=list)

    def add(self, found: Collected) -> None:
        category = self.categories.setdefault(found.category, len(self.categories))
        failed = sum(1 << self.stages.index(stage) for stage in found.failed_stages if stage in self.stages)
        self.rows.append([found.key, category, found.views, found.captions, failed, found.max_tries])


def build_preview(root: DatasetRoot, settings: PreviewSettings, show_progress: bool = True) -> PreviewSummary:
    out = settings.out.expanduser().resolve()
    stages = failure_stages(root)
    site = Site(out)
    summary = PreviewSummary(page=out / "index.html")
    index = _Index(stages)
    work = partial(collect, CollectSettings(root.path, out, settings.thumb_size, tuple(stages)))
    objects = ((record.key, record.category) for record in iter_objects(root))
    chunk: list[dict[str, Any]] = []
    total = count_objects(root)
    with progress("preview", total, enabled=show_progress) as bar:
        for found in ordered_map(work, objects, _workers(settings.workers, total), batch=BATCH):
            index.add(found)
            _count(summary, found)
            chunk.append(found.details)
            if len(chunk) == settings.page_size:
                site.write_chunk(len(index.rows) // settings.page_size - 1, chunk)
                chunk = []
            bar.advance(failed=bool(found.failed_stages))
    if chunk:
        site.write_chunk(len(index.rows) // settings.page_size, chunk)
    summary.pages = max(1, math.ceil(summary.objects / settings.page_size))
    site.publish(_index_data(root, settings, index), title=f"mvcap preview: {root.path.name}")
    return summary


def _count(summary: PreviewSummary, found: Collected) -> None:
    summary.objects += 1
    summary.with_views += found.views > 0
    summary.captioned += found.captions > 0
    summary.failed += bool(found.failed_stages)
    summary.sprites_made += found.sprite == "made"
    summary.sprites_reused += found.sprite == "reused"


def _index_data(root: DatasetRoot, settings: PreviewSettings, index: _Index) -> dict[str, Any]:
    return {
        "version": 1,
        "root": str(root.path),
        "generated": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "page_size": settings.page_size,
        "chunk_size": settings.page_size,
        "thumb_size": settings.thumb_size,
        "stages": index.stages,
        "categories": list(index.categories),
        "fields": INDEX_FIELDS,
        "objects": index.rows,
    }


def _workers(requested: int, objects: int) -> int:
    """A small root is done before a pool of fresh interpreters has started."""
    if objects <= BATCH:
        return 1
    if requested > 0:
        return requested
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
