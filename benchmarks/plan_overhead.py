"""What fingerprints cost a rerun: planning render and caption over N committed objects (24 views
each), side by side with the check the stages made before fingerprints (does the manifest
exist?) and with validating every views manifest in full (what caption planning did before).

    python benchmarks/plan_overhead.py [--objects 20000] [--views 24]

Prints seconds and the ratio of each against the existence check (the baseline).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mvcap_build.caption.config import CaptionConfig
from mvcap_build.caption.stage import CaptionStage
from mvcap_build.dataset import DatasetRoot, ViewsManifest, atomic_write_json, read_views_manifest
from mvcap_build.dataset.records import RenderProducer, ViewRecord
from mvcap_build.render.config import RenderConfig
from mvcap_build.render.fingerprint import render_fingerprint
from mvcap_build.render.jobs import plan_views
from mvcap_build.render.stage import RenderStage


def make_root(root: DatasetRoot, config: RenderConfig) -> int:
    """Write a committed views manifest (no pixels) for every demo object of `config`."""
    stage = RenderStage(config)
    stage.prepare(root)  # the objects table, which caption planning reads
    producer = RenderProducer(
        engine="CYCLES",
        samples=32,
        denoise=False,
        resolution=config.resolution,
        device="CPU",
        backend="NONE",
        devices=["CPU"],
        blender="5.0.1",
    )
    for obj in stage.objects():
        views = [
            ViewRecord(
                **{k: v for k, v in view.items() if k != "blender_c2w"},
                width=config.resolution,
                height=config.resolution,
                coverage=0.3,
            )
            for view in plan_views(obj, config)
        ]
        manifest = ViewsManifest(
            key=obj.key,
            normalization="unit_cube",
            producer=producer,
            fingerprint=render_fingerprint(obj, config),
            views=views,
        )
        atomic_write_json(root.view_manifest(obj.key), manifest.model_dump())
    return len(stage.objects())


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=20000)
    parser.add_argument("--views", type=int, default=24)
    args = parser.parse_args()
    config = RenderConfig.model_validate(
        {
            "source": {"kind": "demo", "per_category": max(1, args.objects // 10)},
            "views": {"num_views": args.views},
            "resolution": 512,
        }
    )
    root = DatasetRoot(Path(tempfile.mkdtemp(prefix="mvcap-plan-")))
    seconds, n = timed(lambda: make_root(root, config))
    print(f"wrote {n} manifests of {args.views} views in {seconds:.1f} s")

    stage = RenderStage(config)
    exists_s, _ = timed(lambda: [root.view_manifest(o.key).is_file() for o in stage.objects()])
    plan_s, plan = timed(lambda: RenderStage(config).plan(root))
    full_s, _ = timed(lambda: [read_views_manifest(p) for p in root.view_manifests()])
    caption_s, caption_plan = timed(lambda: CaptionStage(CaptionConfig()).plan(root))
    assert plan.summary.already_done == n and not plan.stale and not plan.todo
    assert len(caption_plan.todo) == n
    print(f"{'check':44} {'seconds':>8} {'per 100K':>9} {'ratio':>6}")
    for name, s in (
        ("views.json exists (before fingerprints)", exists_s),
        ("plan render with fingerprints", plan_s),
        ("plan caption with fingerprints", caption_s),
        ("validate every manifest in full", full_s),
    ):
        print(f"{name:44} {s:8.2f} {s * 100_000 / n:8.1f}s {s / exists_s:6.1f}")


if __name__ == "__main__":
    main()
