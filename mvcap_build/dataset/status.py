"""What a dataset root holds, per stage: the numbers `mvcap status` and `mvcap build` print."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

from mvcap_build.dataset.layout import OBJECT_STAGES, DatasetRoot
from mvcap_build.dataset.ledger import FailureLedger
from mvcap_build.dataset.manifests import read_caption_manifest, read_views_manifest
from mvcap_build.dataset.objects_table import read_objects


@dataclass
class StageCounts:
    objects: int = 0
    views: int = 0
    failures: Counter = field(default_factory=Counter)  # reason -> objects


@dataclass
class RootStatus:
    objects_by_source: Counter
    categories: Counter
    render: StageCounts
    extract: StageCounts
    caption: StageCounts
    export: dict | None  # export.json, when there is an export

    def stages(self) -> list[tuple[str, StageCounts]]:
        return [(stage, getattr(self, stage)) for stage in OBJECT_STAGES]


def root_status(root: DatasetRoot) -> RootStatus:
    objects = read_objects(root)
    render, extract, caption = StageCounts(), StageCounts(), StageCounts()
    for path in root.view_manifests():
        manifest = read_views_manifest(path)
        counts = render if manifest.producer.kind == "render" else extract
        counts.objects += 1
        counts.views += len(manifest.views)
    for path in root.caption_manifests():
        caption.objects += 1
        caption.views += len(read_caption_manifest(path).rows)
    for stage, counts in zip(OBJECT_STAGES, (render, extract, caption), strict=True):
        counts.failures.update(entry.reason for entry in FailureLedger(root, stage))
    export_json = root.export_dir / "export.json"
    return RootStatus(
        objects_by_source=Counter(o.source for o in objects.values()),
        categories=Counter(o.category for o in objects.values()),
        render=render,
        extract=extract,
        caption=caption,
        export=json.loads(export_json.read_text("utf-8")) if export_json.is_file() else None,
    )
