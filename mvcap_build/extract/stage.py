"""The extract stage: existing multi-view captures (MVImgNet videos with COLMAP poses, IM3D and
any NeRF-synthetic folder) become views with recorded cameras, like renders do.

Unit of work: one captured instance. A reader (`mvimgnet/`, `nerf/`) lists it as an ObjectRecord
and parses it into a `Capture`; this stage drops frames it cannot decode and blurred ones, chooses the frames that
spread over the viewing directions, crops a square around the object, resizes, writes the images
and views.json into a staging folder and renames it into place: an instance is committed whole or
not at all, and failures (`too_few_frames`, `missing_reconstruction`, `unsafe_path`, ...) go to
the ledger. The views manifest names the capture as its producer, so caption and export read
these objects exactly as they read renders.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from mvcap_build.dataset import (
    DatasetRoot,
    ObjectRecord,
    ViewRecord,
    ViewsManifest,
    commit_dir,
    write_objects_table,
    write_views_manifest,
)
from mvcap_build.dataset.atomic import make_staging_dir, remove_stale_staging
from mvcap_build.dataset.fingerprint import Fingerprint
from mvcap_build.dataset.keys import in_shard
from mvcap_build.dataset.records import CaptureProducer
from mvcap_build.extract.capture import Capture, CaptureReader, ExtractError, Frame, table_row
from mvcap_build.extract.config import ExtractConfig
from mvcap_build.extract.readers import CAPTURE_SOURCES
from mvcap_build.extract.select import farthest_directions, sharpness, spread, view_directions
from mvcap_build.extract.views import azimuth_basis, camera_record, crop_and_resize, object_crop
from mvcap_build.pipeline.stage import Outcome, Unit, ViewsStage


class ExtractStage(ViewsStage):
    name = "extract"
    verb = "extracted"
    nothing_to_do = "the source lists no instances (in this shard)"

    config: ExtractConfig

    def __init__(self, config: ExtractConfig, options=None) -> None:
        super().__init__(config, options)
        self._reader: CaptureReader = CAPTURE_SOURCES[config.source.kind].load()
        self._instances: list[ObjectRecord] | None = None
        self._kept_small: dict[str, int] = {}  # key -> smallest side of views kept below `resolution`

    @property
    def source_name(self) -> str:
        return self.config.source.source_name

    def instances(self) -> list[ObjectRecord]:
        """The reader's records, each still carrying its handle (listed once per run)."""
        if self._instances is None:
            self._instances = self._reader.list_instances(self.config.source)
        return self._instances

    def objects(self) -> list[ObjectRecord]:
        """The objects table's rows: the records without their in-memory handles."""
        return [table_row(record) for record in self.instances()]

    def units(self, root: DatasetRoot, shard: int, num_shards: int) -> Iterator[Unit]:
        settings = {"source": self.config.source.kind, "frames": self.config.frames.model_dump(mode="json")}
        for record in self.instances():
            if in_shard(record.key, shard, num_shards):
                fingerprint = Fingerprint.of({**settings, "input": self._reader.instance_identity(record)})
                yield Unit(record.key, fingerprint, record)

    def prepare(self, root: DatasetRoot) -> None:
        write_objects_table(root, self.source_name, self.objects())

    def run_notes(self) -> list[str]:
        if not self._kept_small:
            return []
        key, side = min(self._kept_small.items(), key=lambda item: item[1])
        return [
            f"{len(self._kept_small)} object(s) have frames smaller than resolution {self.config.frames.resolution}: "
            f"kept at their own size, not enlarged (smallest: {side} px, {key}); frames.upsample: true enlarges them"
        ]

    def work(
        self, root: DatasetRoot, todo: list[Unit], shard: int, num_shards: int, report: Callable[[Outcome], None]
    ) -> None:
        for unit in todo:
            claim = self.claim(root, unit)
            if claim is None:
                report(Outcome(unit.key, elsewhere=True))
                continue
            with claim:
                report(self._extract(root, unit))

    def _extract(self, root: DatasetRoot, unit: Unit) -> Outcome:
        final = root.view_dir(unit.key)
        remove_stale_staging(final)
        staging = make_staging_dir(final)
        try:
            capture = self._reader.read_capture(unit.payload, self.config.source)
            manifest = self._write_views(unit, capture, staging)
            write_views_manifest(staging, manifest)
        except ExtractError as error:
            shutil.rmtree(staging, ignore_errors=True)
            return Outcome(unit.key, error.reason, error.detail)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        commit_dir(staging, final)
        return Outcome(unit.key, items=len(manifest.views))

    def _write_views(self, unit: Unit, capture: Capture, staging: Path) -> ViewsManifest:
        settings = self.config.frames
        usable, dropped = self._usable_frames(capture)
        if len(usable) < settings.min_frames:
            raise ExtractError(
                "too_few_frames",
                f"{len(usable)} usable frames, at least {settings.min_frames} needed"
                + "".join(f"; {what}: {', '.join(names[:10])}" for what, names in dropped.items() if names),
            )
        frames = [frame for frame, _ in usable]
        scores = np.array([score for _, score in usable])
        directions = view_directions(np.array([f.c2w[:3, 3] for f in frames]), capture.center)
        chosen = farthest_directions(directions, settings.num_frames, scores)
        front, right, azimuth_zero = azimuth_basis(capture, [frames[i] for i in chosen])
        views, smaller = [], []
        for view_index, frame_index in enumerate(chosen):
            frame = frames[frame_index]
            image = frame.load()
            crop = object_crop(frame, image, capture.points, settings.crop_margin) if settings.crop else None
            image, K = crop_and_resize(image, frame.K, crop, settings.resolution, settings.upsample)
            if settings.resolution is not None and max(image.size) < settings.resolution:
                smaller.append(max(image.size))
            file = f"{view_index:03d}" + (".png" if image.mode == "RGBA" else ".jpg")
            _save(image, staging / file, settings.jpeg_quality)
            record = camera_record(frame.c2w, K, image.width, image.height, capture, front, right)
            coverage = float((np.asarray(image.getchannel("A")) > 0).mean()) if image.mode == "RGBA" else None
            views.append(ViewRecord(view_index=view_index, file=file, coverage=coverage, **record))
        details = {
            **capture.details,
            "up": capture.up.tolist(),
            "up_method": capture.up_method,
            "center": capture.center.tolist(),
            "azimuth_zero": azimuth_zero,
            "frames_chosen": [frames[i].name for i in chosen],
            "frames_available": len(capture.frames),
            "frames_dropped": {what: names for what, names in dropped.items() if names},
            "direction_spread_deg": round(spread(directions[chosen]), 3),
        }
        if smaller:
            details["kept_below_resolution"] = {"views": len(smaller), "smallest_side": min(smaller)}
            self._kept_small[unit.key] = min(smaller)
        producer = CaptureProducer(
            source=self.config.source.kind, reconstruction=capture.reconstruction, details=details
        )
        return ViewsManifest(
            key=unit.key, normalization=None, producer=producer, fingerprint=unit.fingerprint, views=views
        )

    def _usable_frames(self, capture: Capture) -> tuple[list[tuple[Frame, float]], dict[str, list[str]]]:
        """Frames that decode, with their sharpness; blurred ones (below `blur_fraction` of the
        median sharpness) are dropped, and every dropped frame is named by why."""
        dropped: dict[str, list[str]] = {"corrupt": [], "blurred": []}
        scored = []
        for frame in capture.frames:
            try:
                scored.append((frame, sharpness(frame.load())))
            except ExtractError:
                dropped["corrupt"].append(frame.name)
        if scored and self.config.frames.blur_fraction > 0:
            limit = self.config.frames.blur_fraction * float(np.median([s for _, s in scored]))
            dropped["blurred"] = [f.name for f, s in scored if s < limit]
            scored = [(f, s) for f, s in scored if s >= limit]
        for what in (
            "missing_frames",
            "corrupt_frames",
            "unregistered_frames",
            "unsafe_frames",
            "size_mismatch_frames",
        ):
            if capture.details.get(what):
                dropped[what.removesuffix("_frames")] = list(capture.details[what])
        return scored, dropped


def _save(image: Image.Image, path: Path, quality: int) -> None:
    """RGBA as PNG (the mask matters), photos as JPEG; bytes are reproducible for equal pixels."""
    buffer = io.BytesIO()
    if image.mode == "RGBA":
        image.save(buffer, format="PNG", compress_level=4)
    else:
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue())
        handle.flush()
        os.fsync(handle.fileno())
