"""What a Blender worker is asked to do for one object: cameras planned at distance 1, the
light rig, the framing rule, the scene settings, and the worker processes' environment.

Pure host code (no bpy). `place_at` turns a planned view into the recorded camera once the
worker has said how far from the object it stood.
"""

from __future__ import annotations

import os
from pathlib import Path

from mvcap_build.dataset import ObjectRecord
from mvcap_build.render import cameras
from mvcap_build.render.config import RenderConfig
from mvcap_build.render.lighting import light_rig
from mvcap_build.render.protocol import RenderJob
from mvcap_build.render.viewpoints import sample_viewpoints


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
        # Encoding on the host: Blender writes PNGs without compression, which costs it little,
        # and the host compresses them while Blender renders the next views.
        "png_compression": 0 if config.png_on_host else 15,
    }


def threads_per_worker(workers: int, cores: int | None = None) -> int | None:
    """Several Blender processes on one machine each take all cores by default and fight over
    them; give each its share. One worker keeps Blender's own choice (None)."""
    if workers <= 1:
        return None
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // workers)


def kernel_cache_env(folder: Path | None) -> dict[str, str]:
    """Where Cycles keeps compiled CUDA/OptiX kernels, for every worker of this run."""
    if folder is None:
        return {}
    folder = Path(folder).expanduser().resolve()
    (folder / "cuda").mkdir(parents=True, exist_ok=True)
    (folder / "optix").mkdir(parents=True, exist_ok=True)
    return {"CUDA_CACHE_PATH": str(folder / "cuda"), "OPTIX_CACHE_PATH": str(folder / "optix")}


def render_job(obj: ObjectRecord, config: RenderConfig, out_dir: Path, local_file: Path | None = None) -> RenderJob:
    """Everything a Blender worker needs to render one object (the worker protocol's job).
    `local_file`: where a fetched asset (a download) lies; the worker reads files and builders only.
    A file's `up_axis` (resolved by the source, or `auto`: its format's default) goes with it."""
    asset = obj.asset
    if local_file is not None:
        asset = {"kind": "file", "path": str(local_file), "up_axis": obj.asset.get("up_axis", "auto")}
    return RenderJob(
        key=obj.key,
        asset=asset,
        out_dir=str(out_dir),
        views=plan_views(obj, config),
        lighting=light_rig(config.lighting, obj.key),
        framing=framing_spec(config),
        settings=worker_settings(config),
    )
