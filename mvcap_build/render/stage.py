"""The render stage: plan each object's views, render them in Blender workers, commit or ledger.

Unit of work: one object. Its views are rendered into a staging folder beside the final one;
`views.json` is written last and the folder is renamed into place, so an object is either
completely rendered or absent. Each manifest carries the fingerprint of the settings that shaped
its pixels (asset, cameras, resolution, engine, samples, lighting); the shared flow in
`mvcap_build.pipeline.stage` skips, redoes or refuses units by it.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mvcap_build.dataset import DatasetRoot, ObjectRecord, ViewRecord, ViewsManifest, atomic_write_json, commit_dir, write_objects_table
from mvcap_build.dataset.atomic import make_staging_dir, remove_stale_staging
from mvcap_build.dataset.fingerprint import Fingerprint
from mvcap_build.dataset.keys import in_shard
from mvcap_build.dataset.records import RenderProducer
from mvcap_build.imaging import strip_png_metadata
from mvcap_build.pipeline.stage import ObjectStage, Outcome, Unit
from mvcap_build.render import cameras
from mvcap_build.render.config import RenderConfig
from mvcap_build.render.lighting import light_rig
from mvcap_build.render.sources import list_objects, source_name
from mvcap_build.render.viewpoints import sample_viewpoints
from mvcap_build.render.workers import run_jobs


def plan_views(obj: ObjectRecord, config: RenderConfig) -> list[dict]:
    """Cameras of every view of one object, in both the recorded (OpenCV) and Blender forms, at
    distance 1: the worker moves each camera along its ray to the distance framing gives, and
    `place_at` records it."""
    v = config.views
    K = cameras.intrinsics(v.fov_deg, config.resolution, config.resolution)
    pairs = sample_viewpoints(
        v.distribution,
        v.num_views,
        min_elevation_deg=v.min_elevation_deg,
        max_elevation_deg=v.max_elevation_deg,
        orbit_elevations_deg=v.orbit_elevations_deg,
        seed=v.seed,
        object_key=obj.key,
    )
    views = []
    for index, (azimuth, elevation) in enumerate(pairs):
        c2w = cameras.look_at_origin(azimuth, elevation, 1.0)
        views.append(
            {
                "view_index": index,
                "file": f"{index:03d}.png",
                "azimuth_deg": round(azimuth, 6),
                "elevation_deg": round(elevation, 6),
                "distance": 1.0,
                "fov_deg": v.fov_deg,
                "intrinsics": K.tolist(),
                "c2w": c2w.tolist(),
                "blender_c2w": (c2w @ cameras.OPENCV_TO_BLENDER_CAMERA).tolist(),
            }
        )
    return views


def place_at(view: dict, distance: float) -> dict:
    """A planned view (at distance 1) moved along its ray to `distance`: the recorded camera."""
    c2w = [row[:] for row in view["c2w"]]
    for axis in range(3):
        c2w[axis][3] *= distance
    return {**view, "c2w": c2w, "distance": distance}


def framing_spec(config: RenderConfig) -> dict:
    """How the worker picks the camera distance once it knows the object's size."""
    v = config.views
    if v.framing == "fixed":
        return {"mode": "fixed", "distance": v.distance or cameras.fit_distance(v.fov_deg)}
    return {"mode": "fit", "margin": v.margin, "fov_deg": v.fov_deg}


def worker_settings(config: RenderConfig) -> dict:
    """The part of the config a Blender worker applies to its scene."""
    return {
        "engine": config.engine,
        "resolution": config.resolution,
        "samples": config.samples,
        "denoise": config.denoise,
        "device": config.device,
        "threads": config.threads or threads_per_worker(config.workers),
    }


def kernel_cache_env(folder: Path | None) -> dict[str, str]:
    """Where Cycles keeps compiled CUDA/OptiX kernels, for every worker of this run."""
    if folder is None:
        return {}
    folder = Path(folder).expanduser().resolve()
    (folder / "cuda").mkdir(parents=True, exist_ok=True)
    (folder / "optix").mkdir(parents=True, exist_ok=True)
    return {"CUDA_CACHE_PATH": str(folder / "cuda"), "OPTIX_CACHE_PATH": str(folder / "optix")}


def threads_per_worker(workers: int, cores: int | None = None) -> int | None:
    """Several Blender processes on one machine each take all cores by default and fight over
    them; give each its share. One worker keeps Blender's own choice (None)."""
    if workers <= 1:
        return None
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // workers)


def render_job(obj: ObjectRecord, config: RenderConfig, out_dir: Path) -> dict:
    """Everything a Blender worker needs to render one object (the worker protocol's job)."""
    return {
        "key": obj.key,
        "asset": obj.asset,
        "out_dir": str(out_dir),
        "views": plan_views(obj, config),
        "lighting": light_rig(config.lighting, obj.key),
        "framing": framing_spec(config),
        "settings": worker_settings(config),
    }


def asset_identity(asset: dict[str, Any]) -> dict[str, Any]:
    """What identifies an asset's content cheaply: a file by its size (not its path, so a moved
    folder stays valid), a procedural object by its builder and seed."""
    if asset.get("kind") == "file":
        path = Path(asset["path"])
        return {"kind": "file", "suffix": path.suffix.lower(), "size": path.stat().st_size if path.is_file() else None}
    return dict(asset)


def render_fingerprint(obj: ObjectRecord, config: RenderConfig) -> Fingerprint:
    """Every setting that shapes an object's pixels or cameras, and nothing that does not
    (device, workers, timeouts): a rerun on another machine keeps the units."""
    settings: dict[str, Any] = {
        "asset": asset_identity(obj.asset),
        "views": config.views.model_dump(mode="json"),
        "resolution": config.resolution,
        "engine": config.engine,
        "lighting": config.lighting.model_dump(),
    }
    if config.engine == "CYCLES":
        settings.update(samples=config.samples, denoise=config.denoise)
    return Fingerprint.of(settings)


def alpha_coverage(png: bytes) -> float:
    with Image.open(io.BytesIO(png)) as image:
        if image.mode != "RGBA":
            return 1.0
        alpha = np.asarray(image.getchannel("A"))
    return float((alpha > 0).mean())


class RenderStage(ObjectStage):
    name = "render"
    verb = "rendered"
    nothing_to_do = "the source lists no objects (in this shard)"

    config: RenderConfig

    def __init__(self, config: RenderConfig, options=None) -> None:
        super().__init__(config, options)
        self._objects: list[ObjectRecord] | None = None

    def objects(self) -> list[ObjectRecord]:
        if self._objects is None:
            self._objects = list_objects(self.config.source)
        return self._objects

    def units(self, root: DatasetRoot, shard: int, num_shards: int) -> Iterator[Unit]:
        for obj in self.objects():
            if in_shard(obj.key, shard, num_shards):
                yield Unit(obj.key, render_fingerprint(obj, self.config), obj)

    def committed_manifest(self, root: DatasetRoot, key: str) -> Path:
        return root.view_manifest(key)

    def prepare(self, root: DatasetRoot) -> None:
        write_objects_table(root, source_name(self.config.source), self.objects())

    def discard(self, root: DatasetRoot, key: str) -> None:
        """The manifest goes first (the object stops counting as rendered), then the folder."""
        folder = root.view_dir(key)
        (folder / "views.json").unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)

    def work(self, root: DatasetRoot, todo: list[Unit], shard: int, num_shards: int, report: Callable[[Outcome], None]) -> None:
        by_key = {unit.key: unit for unit in todo}

        def jobs():  # lazy: a staging folder exists only for the objects being rendered now
            for unit in todo:
                final = root.view_dir(unit.key)
                remove_stale_staging(final)
                yield render_job(unit.payload, self.config, make_staging_dir(final))

        def on_result(job: dict, reply: dict) -> None:
            unit = by_key[job["key"]]
            failure = self._commit(root, unit, job, reply)
            report(Outcome(unit.key, items=len(job["views"])) if failure is None else Outcome(unit.key, *failure))

        run_jobs(
            jobs(),
            num_workers=min(self.config.workers, max(1, len(todo))),
            log_dir=root.logs(self.name, shard, num_shards),
            timeout_s=self.config.timeout_s,
            recycle_after=self.config.recycle_after,
            python=self.config.python,
            env=kernel_cache_env(self.config.kernel_cache),
            on_result=on_result,
        )

    def _commit(self, root: DatasetRoot, unit: Unit, job: dict, reply: dict) -> tuple[str, str] | None:
        """Check the worker's output and move it into place. Returns (reason, detail) on failure."""
        staging, final = Path(job["out_dir"]), root.view_dir(unit.key)
        failure = _check(job, reply)
        if failure is None:
            distance = reply["framing"]["distance"]
            records = [self._view_record(staging, place_at(view, distance)) for view in job["views"]]
            empty = [r.view_index for r in records if r.coverage < self.config.min_coverage]
            if empty:
                failure = "empty_render", (
                    f"views {empty} of {len(records)} show (almost) nothing "
                    f"(coverage < {self.config.min_coverage}); the mesh may have no visible faces"
                )
        if failure is not None:
            shutil.rmtree(staging, ignore_errors=True)
            return failure
        manifest = ViewsManifest(
            key=unit.key,
            normalization="unit_cube",
            producer=RenderProducer(**reply["renderer"], lighting=job["lighting"], framing=reply["framing"]),
            fingerprint=unit.fingerprint,
            stats=reply.get("stats", {}),
            views=records,
        )
        atomic_write_json(staging / "views.json", manifest.model_dump())
        commit_dir(staging, final)
        return None

    def _view_record(self, staging: Path, view: dict) -> ViewRecord:
        """The recorded camera of one view, after its PNG is made byte-reproducible."""
        path = staging / view["file"]
        png = strip_png_metadata(path.read_bytes())
        with open(path, "wb") as handle:  # still in staging: the commit is the folder rename
            handle.write(png)
            handle.flush()
            os.fsync(handle.fileno())
        return ViewRecord(
            **{k: v for k, v in view.items() if k != "blender_c2w"},
            width=self.config.resolution,
            height=self.config.resolution,
            coverage=alpha_coverage(png),
        )


def _check(job: dict, reply: dict) -> tuple[str, str] | None:
    if not reply["ok"]:
        return reply["reason"], reply["detail"]
    missing = [v["file"] for v in job["views"] if not (Path(job["out_dir"]) / v["file"]).is_file()]
    if missing:
        return "missing_view", f"Blender reported success but did not write {missing}"
    return None
