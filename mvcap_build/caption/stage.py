"""The caption stage: every view of every object with views gets a caption, one object at a time.

Unit of work: one object; its caption manifest is written atomically once all its views have a
caption. Requests of several objects are batched together for the model, but an object is only
committed whole. Objects are read from committed views manifests, never from staging folders.

A caption manifest's fingerprint names the backend, the model and its revision, the generation
settings, the exact prompt (category filled in) and the fingerprint of the views it describes, so
re-rendered views make their captions stale too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mvcap_build.caption.backends.base import CaptionBackend, CaptionRequest, CaptionResult
from mvcap_build.caption.config import CaptionConfig
from mvcap_build.caption.prompts import fill, load_prompt
from mvcap_build.dataset import (
    CaptionManifest,
    CaptionRow,
    DatasetRoot,
    ManifestError,
    ViewsManifest,
    atomic_write_json,
    read_objects,
    read_views_manifest,
)
from mvcap_build.dataset.fingerprint import Fingerprint
from mvcap_build.dataset.keys import in_shard
from mvcap_build.pipeline.stage import ObjectStage, Outcome, RunOptions, Unit
from mvcap_build.registry import CAPTION_BACKENDS


def backend_identity(config: CaptionConfig) -> dict[str, Any]:
    """What produces the text, without loading any model (status and planning call this)."""
    return CAPTION_BACKENDS[config.backend.kind].load().identity(config.backend)


def create_backend(config: CaptionConfig) -> CaptionBackend:
    backend_class = CAPTION_BACKENDS[config.backend.kind].load()
    return backend_class(**config.backend.model_dump(exclude={"kind"}))


def _bad_caption(result: CaptionResult) -> tuple[str, str] | None:
    """(reason, detail) to reject one view's answer, or None. More gates come with issue 8."""
    if result.text is None:
        return result.reason or "caption_failed", result.detail
    if not result.text.strip():
        return "empty_caption", "the model returned an empty caption"
    return None


class CaptionStage(ObjectStage):
    name = "caption"
    verb = "captioned"
    nothing_to_do = "no views in ROOT/views (in this shard): run `mvcap render` first"

    config: CaptionConfig

    def __init__(self, config: CaptionConfig, options: RunOptions | None = None, backend: CaptionBackend | None = None) -> None:
        super().__init__(config, options)
        self.prompt_name, self.template = load_prompt(config.prompt)
        self._backend = backend

    def units(self, root: DatasetRoot, shard: int, num_shards: int) -> Iterator[Unit]:
        objects = read_objects(root)
        identity = backend_identity(self.config) if self._backend is None else {"backend": self._backend.name, "model": self._backend.model_id}
        for path in root.view_manifests():
            key, views_digest = _key_and_digest(path)
            if not in_shard(key, shard, num_shards):
                continue
            if key not in objects:
                raise ManifestError(f"{path}: object {key!r} has views but no row in {root.path / 'objects'}")
            prompt = fill(self.template, objects[key].category)
            fingerprint = Fingerprint.of({**identity, "prompt": prompt, "views_digest": views_digest})
            yield Unit(key, fingerprint, (path, prompt, objects[key].category))

    def committed_manifest(self, root: DatasetRoot, key: str) -> Path:
        return root.caption_manifest(key)

    def work(self, root: DatasetRoot, todo: list[Unit], shard: int, num_shards: int, report: Callable[[Outcome], None]) -> None:
        backend = self._backend or create_backend(self.config)
        batch_size = getattr(self.config.backend, "batch_size", 64)
        batch: list[tuple[Unit, list[CaptionRequest]]] = []
        pending = 0
        for unit in todo:
            path, prompt, category = unit.payload
            requests = _requests(root, read_views_manifest(path), prompt, category)
            batch.append((unit, requests))
            pending += len(requests)
            if pending >= batch_size:
                self._caption_batch(root, backend, batch, report)
                batch, pending = [], 0
        if batch:
            self._caption_batch(root, backend, batch, report)

    def _caption_batch(self, root: DatasetRoot, backend: CaptionBackend, batch, report: Callable[[Outcome], None]) -> None:
        results = iter(backend.caption([request for _, requests in batch for request in requests]))
        for unit, requests in batch:
            answers = [next(results) for _ in requests]
            problems = {r.view_index: why for r, a in zip(requests, answers) if (why := _bad_caption(a))}
            if problems:
                reason = sorted(reason for reason, _ in problems.values())[0]
                detail = "; ".join(f"view {i}: {r}: {d}" for i, (r, d) in sorted(problems.items()))
                report(Outcome(unit.key, reason, f"views {sorted(problems)} of {len(requests)}: {detail}"))
                continue
            rows = [
                CaptionRow(
                    view_index=request.view_index,
                    caption=answer.text.strip(),
                    backend=backend.name,
                    model=backend.model_id,
                    prompt=request.prompt,
                    prompt_name=self.prompt_name,
                )
                for request, answer in zip(requests, answers)
            ]
            manifest = CaptionManifest(key=unit.key, fingerprint=unit.fingerprint, rows=rows)
            atomic_write_json(root.caption_manifest(unit.key), manifest.model_dump())
            report(Outcome(unit.key, items=len(rows)))


def _key_and_digest(views_manifest: Path) -> tuple[str, str | None]:
    """An object's key and its views' fingerprint digest, without validating the whole manifest
    (planning reads every manifest of the root; only the units to do are read in full)."""
    try:
        data = json.loads(views_manifest.read_bytes())
        return data["key"], (data.get("fingerprint") or {}).get("digest")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ManifestError(f"{views_manifest}: not a valid ViewsManifest: {error!r}") from error


def _requests(root: DatasetRoot, manifest: ViewsManifest, prompt: str, category: str) -> list[CaptionRequest]:
    folder = root.view_dir(manifest.key)
    return [
        CaptionRequest(
            key=manifest.key,
            view_index=view.view_index,
            image_path=folder / view.file,
            prompt=prompt,
            category=category,
            view={"azimuth_deg": view.azimuth_deg, "elevation_deg": view.elevation_deg},
        )
        for view in manifest.views
    ]
