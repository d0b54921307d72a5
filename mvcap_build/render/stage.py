"""The render stage: plan each object's views, render them in Blender workers, commit or ledger.

Unit of work: one object. Its views are rendered into a staging folder beside the final one;
`views.json` is written last and the folder is renamed into place, so an object is either
completely rendered or absent. Committed objects are skipped on reruns; failed ones too, unless
`retry_failed` is set.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from mvcap_build.dataset import (
    DatasetRoot,
    FailureLedger,
    ObjectRecord,
    RenderManifest,
    ViewRecord,
    atomic_write_json,
    commit_dir,
    write_objects_table,
)
from mvcap_build.dataset.atomic import make_staging_dir, remove_stale_staging
from mvcap_build.dataset.units import UnitCounts, select_todo
from mvcap_build.progress import progress_bar
from mvcap_build.render import cameras
from mvcap_build.render.config import RenderConfig
from mvcap_build.render.sources import list_objects, source_name
from mvcap_build.render.viewpoints import sample_viewpoints
from mvcap_build.render.workers import run_jobs

STAGE = "render"


@dataclass
class RenderSummary(UnitCounts):
    rendered: int = 0


def plan_views(obj: ObjectRecord, config: RenderConfig) -> list[dict]:
    """Cameras of every view of one object, in both the recorded (OpenCV) and Blender forms."""
    v = config.views
    distance = v.distance or cameras.fit_distance(v.fov_deg)
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
        c2w = cameras.look_at_origin(azimuth, elevation, distance)
        views.append(
            {
                "view_index": index,
                "file": f"{index:03d}.png",
                "azimuth_deg": round(azimuth, 6),
                "elevation_deg": round(elevation, 6),
                "distance": distance,
                "fov_deg": v.fov_deg,
                "intrinsics": K.tolist(),
                "c2w": c2w.tolist(),
                "blender_c2w": (c2w @ cameras.OPENCV_TO_BLENDER_CAMERA).tolist(),
            }
        )
    return views


def alpha_coverage(path: Path) -> float:
    with Image.open(path) as image:
        if image.mode != "RGBA":
            return 1.0
        alpha = np.asarray(image.getchannel("A"))
    return float((alpha > 0).mean())


def worker_settings(config: RenderConfig) -> dict:
    """The part of the config a Blender worker applies to its scene."""
    return {
        "engine": config.engine,
        "resolution": config.resolution,
        "samples": config.samples,
        "denoise": config.denoise,
        "device": config.device,
        "threads": config.threads,
    }


def _commit(root: DatasetRoot, config: RenderConfig, obj: ObjectRecord, job: dict, reply: dict) -> tuple[str, str] | None:
    """Check the worker's output and move it into place. Returns (reason, detail) on failure."""
    staging, final = Path(job["out_dir"]), root.view_dir(obj.key)
    failure = _check(config, job, reply)
    if failure is not None:
        shutil.rmtree(staging, ignore_errors=True)
        return failure
    records = [
        ViewRecord(
            **{k: v for k, v in view.items() if k != "blender_c2w"},
            width=config.resolution,
            height=config.resolution,
            coverage=alpha_coverage(staging / view["file"]),
        )
        for view in job["views"]
    ]
    empty = [r.view_index for r in records if r.coverage < config.min_coverage]
    if empty:
        shutil.rmtree(staging, ignore_errors=True)
        return "empty_render", (
            f"views {empty} of {len(records)} show (almost) nothing "
            f"(coverage < {config.min_coverage}); the mesh may have no visible faces"
        )
    manifest = RenderManifest(key=obj.key, category=obj.category, renderer=reply["renderer"], views=records)
    atomic_write_json(staging / "views.json", manifest.model_dump())
    commit_dir(staging, final)
    return None


def _check(config: RenderConfig, job: dict, reply: dict) -> tuple[str, str] | None:
    if not reply["ok"]:
        return reply["reason"], reply["detail"]
    missing = [v["file"] for v in job["views"] if not (Path(job["out_dir"]) / v["file"]).is_file()]
    if missing:
        return "missing_view", f"Blender reported success but did not write {missing}"
    return None


def run_render(
    root: DatasetRoot,
    config: RenderConfig,
    *,
    shard: int = 0,
    num_shards: int = 1,
    show_progress: bool = True,
) -> RenderSummary:
    objects = list_objects(config.source)
    write_objects_table(root, source_name(config.source), objects)
    ledger = FailureLedger(root, STAGE)
    summary = RenderSummary()
    todo = select_todo(
        objects,
        key=lambda obj: obj.key,
        committed=root.view_manifest,
        ledger=ledger,
        counts=summary,
        shard=shard,
        num_shards=num_shards,
        retry_failed=config.retry_failed,
    )
    by_key = {obj.key: obj for obj in todo}
    settings = worker_settings(config)

    def jobs():  # lazy: a staging folder exists only for the objects being rendered now
        for obj in todo:
            final = root.view_dir(obj.key)
            remove_stale_staging(final)
            yield {
                "key": obj.key,
                "asset": obj.asset,
                "out_dir": str(make_staging_dir(final)),
                "views": plan_views(obj, config),
                "settings": settings,
            }

    with progress_bar(f"render {source_name(config.source)}", total=len(todo), enabled=show_progress) as advance:

        def on_result(job: dict, reply: dict) -> None:
            obj = by_key[job["key"]]
            failure = _commit(root, config, obj, job, reply)
            if failure is None:
                ledger.clear(obj.key)
                summary.rendered += 1
            else:
                summary.fail(ledger, obj.key, *failure)
            advance()

        run_jobs(
            jobs(),
            num_workers=min(config.workers, max(1, len(todo))),
            log_dir=root.logs(STAGE),
            timeout_s=config.timeout_s,
            recycle_after=config.recycle_after,
            python=config.python,
            on_result=on_result,
        )
    return summary
