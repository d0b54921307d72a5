"""The caption stage: every view of every rendered object gets a caption, one object at a time.

Unit of work: one object; its caption manifest is written atomically once all its views have a
caption. Requests of several objects are batched together for the model, but an object is only
committed whole. Objects are read from committed render manifests, never from staging folders.
"""

from __future__ import annotations

from dataclasses import dataclass

from mvcap_build.caption.backends import CaptionBackend, CaptionRequest, create_backend
from mvcap_build.caption.config import CaptionConfig
from mvcap_build.caption.prompts import fill, load_prompt
from mvcap_build.dataset import (
    CaptionManifest,
    CaptionRow,
    DatasetRoot,
    FailureLedger,
    RenderManifest,
    atomic_write_json,
    read_objects,
    read_render_manifest,
)
from mvcap_build.dataset.units import UnitCounts, select_todo
from mvcap_build.progress import progress_bar

STAGE = "caption"


@dataclass
class CaptionSummary(UnitCounts):
    captioned: int = 0
    views: int = 0


def _requests(root: DatasetRoot, manifest: RenderManifest, template: str, category: str) -> list[CaptionRequest]:
    folder = root.view_dir(manifest.key)
    return [
        CaptionRequest(
            key=manifest.key,
            view_index=view.view_index,
            image_path=folder / view.file,
            prompt=fill(template, category),
            category=category,
            view={"azimuth_deg": view.azimuth_deg, "elevation_deg": view.elevation_deg},
        )
        for view in manifest.views
    ]


def _bad_caption(text: str) -> str | None:
    """Reason to reject a caption, or None. More gates (77 tokens, category match) come later."""
    if not text.strip():
        return "empty_caption"
    return None


def run_caption(
    root: DatasetRoot,
    config: CaptionConfig,
    *,
    shard: int = 0,
    num_shards: int = 1,
    show_progress: bool = True,
    backend: CaptionBackend | None = None,
) -> CaptionSummary:
    prompt_name, template = load_prompt(config.prompt)
    objects = read_objects(root)
    ledger = FailureLedger(root, STAGE)
    summary = CaptionSummary()
    todo = select_todo(
        map(read_render_manifest, root.view_manifests()),
        key=lambda manifest: manifest.key,
        committed=root.caption_manifest,
        ledger=ledger,
        counts=summary,
        shard=shard,
        num_shards=num_shards,
        retry_failed=config.retry_failed,
    )
    if not todo:
        return summary
    backend = backend or create_backend(config)

    def commit(batch: list[tuple[RenderManifest, list[CaptionRequest]]]) -> None:
        flat = [request for _, requests in batch for request in requests]
        texts = iter(backend.caption(flat))
        for manifest, requests in batch:
            captions = [next(texts).strip() for _ in requests]
            problems = {r.view_index: why for r, c in zip(requests, captions) if (why := _bad_caption(c))}
            if problems:
                reason = sorted(set(problems.values()))[0]
                summary.fail(ledger, manifest.key, reason, f"views {sorted(problems)} of {len(requests)}: {problems}")
                continue
            rows = [
                CaptionRow(
                    view_index=r.view_index,
                    caption=c,
                    backend=backend.name,
                    model=backend.model_id,
                    prompt=r.prompt,
                    prompt_name=prompt_name,
                )
                for r, c in zip(requests, captions)
            ]
            atomic_write_json(root.caption_manifest(manifest.key), CaptionManifest(key=manifest.key, rows=rows).model_dump())
            ledger.clear(manifest.key)
            summary.captioned += 1
            summary.views += len(rows)

    with progress_bar(f"caption ({backend.name})", total=len(todo), enabled=show_progress) as advance:
        batch: list[tuple[RenderManifest, list[CaptionRequest]]] = []
        pending = 0
        for manifest in todo:
            category = objects[manifest.key].category if manifest.key in objects else manifest.category
            requests = _requests(root, manifest, template, category)
            batch.append((manifest, requests))
            pending += len(requests)
            if pending >= config.batch_size:
                commit(batch)
                advance(len(batch))
                batch, pending = [], 0
        if batch:
            commit(batch)
            advance(len(batch))
    return summary
