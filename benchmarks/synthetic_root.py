"""A dataset root with real pixels but no Blender: views manifests as the render stage writes
them, each view a 512 px RGBA PNG of a shaded blob on a transparent background (about the size
and compressibility of a render), captioned by the real caption stage (template backend).

For benchmarks of the stages after rendering (export, training input), where only bytes count.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from mvcap_build.caption.config import CaptionConfig
from mvcap_build.caption.stage import CaptionStage
from mvcap_build.dataset import DatasetRoot, ViewsManifest, atomic_write_json
from mvcap_build.dataset.records import RenderProducer, ViewRecord
from mvcap_build.pipeline.stage import RunOptions
from mvcap_build.render.config import RenderConfig
from mvcap_build.render.fingerprint import render_fingerprint
from mvcap_build.render.jobs import plan_views
from mvcap_build.render.stage import RenderStage


def blob_png(seed: int, size: int = 512) -> bytes:
    """A smooth shaded ellipse with noise texture, alpha outside it: render-like PNG bytes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    a, b = rng.uniform(0.2, 0.4, 2)
    inside = (x / a) ** 2 + (y / b) ** 2 < 1
    shade = np.clip(0.6 + 0.8 * (x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1)), 0, 1)
    color = rng.uniform(0.2, 1.0, 3)
    rgb = (shade[..., None] * color + rng.normal(0, 0.006, (size, size, 3))).clip(0, 1) * 255
    rgba = np.dstack([rgb, inside * 255]).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    return buffer.getvalue()


def make_root(
    path: Path, objects: int, views: int = 8, resolution: int = 512, distinct_images: int = 64
) -> DatasetRoot:
    """`objects` demo objects x `views` views, captioned; images drawn from a pool of distinct PNGs."""
    root = DatasetRoot(path).ensure_writable()
    config = RenderConfig.model_validate(
        {
            "source": {"kind": "demo", "per_category": max(1, objects // 10)},
            "views": {"num_views": views},
            "resolution": resolution,
        }
    )
    stage = RenderStage(config)
    stage.prepare(root)
    pool = [blob_png(seed, resolution) for seed in range(distinct_images)]
    producer = RenderProducer(
        engine="CYCLES",
        samples=32,
        denoise=False,
        resolution=resolution,
        device="CPU",
        backend="NONE",
        devices=["CPU"],
        blender="5.0.1",
    )
    for n, obj in enumerate(stage.objects()):
        records = [
            ViewRecord(
                **{k: v for k, v in view.items() if k != "blender_c2w"},
                width=resolution,
                height=resolution,
                coverage=0.3,
            )
            for view in plan_views(obj, config)
        ]
        folder = root.view_dir(obj.key)
        folder.mkdir(parents=True, exist_ok=True)
        for i, view in enumerate(records):
            (folder / view.file).write_bytes(pool[(n * views + i) % len(pool)])
        manifest = ViewsManifest(
            key=obj.key,
            normalization="unit_cube",
            producer=producer,
            fingerprint=render_fingerprint(obj, config),
            views=records,
        )
        atomic_write_json(root.view_manifest(obj.key), manifest.model_dump())
    caption = CaptionConfig.model_validate({"gates": {"enabled": False}})
    CaptionStage(caption, RunOptions(progress=False)).run(root)
    return root


def tree_bytes(folder: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder) for f in files)
