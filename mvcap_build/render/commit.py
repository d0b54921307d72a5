"""Turning a worker's output folder into a committed object: check every view is there and shows
something, make the PNGs byte-reproducible (and compressed, when the host encodes), record the
cameras, write views.json last and rename the folder into place.

Runs in the host's commit threads, in parallel with Blender rendering the next objects.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from mvcap_build.dataset import DatasetRoot, ViewRecord, ViewsManifest, commit_dir, write_views_manifest
from mvcap_build.dataset.atomic import disk_full_error, disk_is_full
from mvcap_build.dataset.fingerprint import Fingerprint
from mvcap_build.dataset.records import RenderProducer
from mvcap_build.imaging import strip_png_metadata
from mvcap_build.render.config import RenderConfig
from mvcap_build.render.jobs import place_at
from mvcap_build.render.protocol import Rendered, RenderFailed, RenderJob, Reply


def commit_render(
    root: DatasetRoot, config: RenderConfig, key: str, fingerprint: Fingerprint, job: RenderJob, reply: Reply
) -> tuple[str, str] | None:
    """Commit one object's views; on failure remove its staging folder and return (reason, detail)."""
    staging = Path(job.out_dir)
    failure = _check(job, reply)
    if failure is None:
        assert isinstance(reply, Rendered)
        distance = reply.framing["distance"]
        try:
            records = [_view_record(staging, place_at(view, distance), config) for view in job.views]
        except OSError as error:  # PIL's "truncated" / "cannot identify" included
            full = disk_is_full(staging, error)  # asked before the staging folder frees its space
            shutil.rmtree(staging, ignore_errors=True)
            if full:
                raise disk_full_error(root.path) from error
            return "corrupt_render", f"Blender wrote a view that cannot be read back: {error}"
        empty = [r.view_index for r in records if r.coverage < config.min_coverage]
        if empty:
            failure = (
                "empty_render",
                (
                    f"views {empty} of {len(records)} show (almost) nothing "
                    f"(coverage < {config.min_coverage}); the mesh may have no visible faces"
                ),
            )
    if failure is not None:
        full = disk_is_full(staging)  # Blender's own write failed on the full disk: not the object's fault
        shutil.rmtree(staging, ignore_errors=True)
        if full:
            raise disk_full_error(root.path)
        return failure
    manifest = ViewsManifest(
        key=key,
        normalization="unit_cube",
        producer=RenderProducer(**reply.renderer, lighting=job.lighting, framing=reply.framing),
        fingerprint=fingerprint,
        stats=reply.stats,
        views=records,
    )
    try:
        write_views_manifest(staging, manifest)
        commit_dir(staging, root.view_dir(key))
    except OSError as error:
        full = disk_is_full(staging, error)
        shutil.rmtree(staging, ignore_errors=True)
        if full:
            raise disk_full_error(root.path) from error
        raise
    return None


def encode_png(data: bytes, config: RenderConfig) -> tuple[bytes, float]:
    """The PNG as committed (no text or time chunks: equal pixels, equal bytes) and its coverage."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        coverage = float((np.asarray(image.getchannel("A")) > 0).mean()) if image.mode == "RGBA" else 1.0
        if config.png_on_host:  # Blender wrote it uncompressed: compress it here
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", compress_level=config.png_level)
            return buffer.getvalue(), coverage
    return strip_png_metadata(data), coverage


def _view_record(staging: Path, view: dict, config: RenderConfig) -> ViewRecord:
    path = staging / view["file"]
    png, coverage = encode_png(path.read_bytes(), config)
    with open(path, "wb") as handle:  # still in staging: the commit is the folder rename
        handle.write(png)
        handle.flush()
        os.fsync(handle.fileno())
    return ViewRecord(
        **{k: v for k, v in view.items() if k != "blender_c2w"},
        width=config.resolution,
        height=config.resolution,
        coverage=coverage,
    )


def _check(job: RenderJob, reply: Reply) -> tuple[str, str] | None:
    if isinstance(reply, RenderFailed):
        return reply.reason, reply.detail
    missing = [v["file"] for v in job.views if not (Path(job.out_dir) / v["file"]).is_file()]
    if missing:
        return "missing_view", f"Blender reported success but did not write {missing}"
    return None
