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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mvcap_build.caption.backends.base import CaptionBackend, CaptionRequest, CaptionResult
from mvcap_build.caption.backends.registry import CAPTION_BACKENDS
from mvcap_build.caption.config import CaptionConfig
from mvcap_build.caption.gates import DuplicateWatch, Gates
from mvcap_build.caption.prompts import fill, load_prompt
from mvcap_build.dataset import (
    CaptionManifest,
    CaptionRow,
    DatasetRoot,
    ManifestError,
    ViewsManifest,
    read_objects,
    read_views_manifest,
    write_caption_manifest,
)
from mvcap_build.dataset.claims import Claim
from mvcap_build.dataset.fingerprint import Fingerprint
from mvcap_build.dataset.keys import in_shard
from mvcap_build.pipeline.stage import ObjectStage, Outcome, RunOptions, Unit


def backend_identity(config: CaptionConfig) -> dict[str, Any]:
    """What produces the text, without loading any model (status and planning call this)."""
    return CAPTION_BACKENDS[config.backend.kind].load().identity(config.backend)


def create_backend(config: CaptionConfig) -> CaptionBackend:
    """The backend `config.backend` names, built from that config (this loads its model)."""
    return CAPTION_BACKENDS[config.backend.kind].load()(config.backend)


# Reasons a retry with a stricter prompt can fix (a backend's own failures are not retried).
GATE_REASONS = frozenset({"empty_caption", "refusal", "repetitive", "too_long", "category_missing", "off_topic"})


@dataclass(frozen=True)
class Answer:
    """A view's last answer: the prompt asked, the text, after how many tries, and why it failed."""

    prompt: str
    text: str
    tries: int
    reason: str | None
    detail: str


def _stricter(request: CaptionRequest, retry_prompt: str) -> str:
    return f"{request.prompt} {fill(retry_prompt, request.category)}"


class CaptionStage(ObjectStage):
    name = "caption"
    verb = "captioned"
    nothing_to_do = "no views in ROOT/views (in this shard): run `mvcap render` first"

    config: CaptionConfig

    def __init__(
        self,
        config: CaptionConfig,
        options: RunOptions | None = None,
        backend: CaptionBackend | None = None,
        *,
        backend_from_config: bool = False,
    ) -> None:
        """`backend`: one already loaded (a Ray actor keeps its model across shards). It was
        made from `config` when `backend_from_config`, so units get the fingerprint the config
        gives; otherwise (a test's own backend) the backend's name and model id."""
        super().__init__(config, options)
        self.prompt_name, self.template = load_prompt(config.prompt)
        self._backend = backend
        self._backend_from_config = backend_from_config
        self._gates = Gates(config.gates)
        # The template backend writes the same sentence for the same category and viewpoint by
        # design: duplicates say nothing about it.
        watch = config.gates.enabled and config.backend.kind != "template"
        self._duplicates = DuplicateWatch(config.gates.max_objects_per_caption if watch else 0)

    def units(self, root: DatasetRoot, shard: int, num_shards: int) -> Iterator[Unit]:
        objects = read_objects(root)
        if self._backend is None or self._backend_from_config:
            identity = backend_identity(self.config)
        else:
            identity = {"backend": self._backend.name, "model": self._backend.model_id}
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

    def work(
        self, root: DatasetRoot, todo: list[Unit], shard: int, num_shards: int, report: Callable[[Outcome], None]
    ) -> None:
        backend = self._backend or create_backend(self.config)
        batch_size = getattr(self.config.backend, "batch_size", 64)
        batch: list[tuple[Unit, list[CaptionRequest]]] = []
        claims: list[Claim] = []  # the batch's units, held until their manifests are written
        pending = 0
        try:
            for unit in todo:
                claim = self.claim(root, unit)
                if claim is None:
                    report(Outcome(unit.key, elsewhere=True))
                    continue
                claims.append(claim)
                path, prompt, category = unit.payload
                requests = _requests(root, read_views_manifest(path), prompt, category)
                batch.append((unit, requests))
                pending += len(requests)
                if pending >= batch_size:
                    self._caption_batch(root, backend, batch, report)
                    for claim in claims:
                        claim.release()
                    batch, claims, pending = [], [], 0
            if batch:
                self._caption_batch(root, backend, batch, report)
        finally:
            for claim in claims:
                claim.release()

    def _caption_batch(
        self, root: DatasetRoot, backend: CaptionBackend, batch, report: Callable[[Outcome], None]
    ) -> None:
        requests = [request for _, object_requests in batch for request in object_requests]
        answers = self._ask_until_good(backend, requests)
        for unit, object_requests in batch:
            mine = [answers[(r.key, r.view_index)] for r in object_requests]
            problems = {
                request.view_index: (answer.reason, answer.detail)
                for request, answer in zip(object_requests, mine)
                if answer.reason
            }
            if not problems and self._duplicates.seen_too_often(unit.key, [answer.text for answer in mine]):
                problems = {
                    r.view_index: ("duplicate_caption", "the same caption as on many other objects")
                    for r in object_requests
                }
            if problems:
                reason = sorted(reason for reason, _ in problems.values())[0]
                detail = "; ".join(f"view {i}: {r}: {d}" for i, (r, d) in sorted(problems.items()))
                report(Outcome(unit.key, reason, f"views {sorted(problems)} of {len(object_requests)}: {detail}"))
                continue
            rows = [
                CaptionRow(
                    view_index=request.view_index,
                    caption=answer.text,
                    backend=backend.name,
                    model=backend.model_id,
                    prompt=answer.prompt,
                    prompt_name=self.prompt_name,
                    tries=answer.tries,
                )
                for request, answer in zip(object_requests, mine)
            ]
            manifest = CaptionManifest(key=unit.key, fingerprint=unit.fingerprint, rows=rows)
            write_caption_manifest(root.caption_manifest(unit.key), manifest)
            report(Outcome(unit.key, items=len(rows)))

    def _ask_until_good(self, backend: CaptionBackend, requests: list[CaptionRequest]) -> dict[tuple[str, int], Answer]:
        """Each view's accepted answer, or its failure: views whose caption fails a gate are asked
        again, up to `gates.retries` times, with the stricter `gates.retry_prompt` added."""
        answers: dict[tuple[str, int], Answer] = {}
        asking, tries = requests, 1
        while asking:
            results = backend.caption(asking)
            verdicts = self._judge(asking, results)
            retry = []
            for request, result, verdict in zip(asking, results, verdicts):
                answers[(request.key, request.view_index)] = Answer(
                    request.prompt, (result.text or "").strip(), tries, *verdict
                )
                if verdict[0] in GATE_REASONS and self.config.gates.enabled and tries <= self.config.gates.retries:
                    retry.append(request)
            # Asked again with the stricter prompt added once (not again on every try).
            asking = [
                replace(r, prompt=_stricter(r, self.config.gates.retry_prompt)) if tries == 1 else r for r in retry
            ]
            tries += 1
        return answers

    def _judge(self, requests: list[CaptionRequest], results: list[CaptionResult]) -> list[tuple[str | None, str]]:
        """(reason, detail) for each answer: the backend's own failure, a gate's, or (None, "")."""
        verdicts: list[tuple[str | None, str]] = [
            (r.reason or "caption_failed", r.detail) if r.text is None else (None, "") for r in results
        ]
        judged = [i for i, (reason, _) in enumerate(verdicts) if reason is None]
        texts = [(results[i].text or "").strip() for i in judged]
        if self.config.gates.enabled:
            reasons = self._gates.judge(texts, [requests[i].category for i in judged])
        else:
            reasons = ["empty_caption" if not text else None for text in texts]
        for i, reason, text in zip(judged, reasons, texts):
            if reason is not None:
                verdicts[i] = (reason, repr(text[:200]))
        return verdicts


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
