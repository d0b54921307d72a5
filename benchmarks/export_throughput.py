"""Export speed and memory: `mvcap export` against a raw copy of the same image bytes, and its
peak memory on 1x and 10x the data (goal: under 1.5x, i.e. flat in dataset size).

    python benchmarks/export_throughput.py [--objects 100] [--views 8] [--scale 10]

Roots are synthetic (benchmarks/synthetic_root.py: 512 px RGBA PNGs, template captions), so no
Blender is needed. Each export runs in a fresh process that reports its own peak RSS.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_root import make_root, tree_bytes  # noqa: E402

EXPORT_IN_CHILD = """
import json, resource, sys, time
from mvcap_build.dataset import DatasetRoot
from mvcap_build.export.config import ExportConfig
from mvcap_build.export.stage import ExportStage
from mvcap_build.pipeline.stage import RunOptions
import datasets, pyarrow.parquet  # imported before the clock starts: a fixed cost, not throughput
start = time.perf_counter()
ExportStage(ExportConfig.model_validate(json.loads(sys.argv[2])), RunOptions(progress=False)).run(\
DatasetRoot(sys.argv[1]))
print(json.dumps({"seconds": time.perf_counter() - start, \
"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def export_in_child(root: Path, settings: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", EXPORT_IN_CHILD, str(root), json.dumps(settings)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def raw_copy(root: Path) -> float:
    """Read every view and write it elsewhere: the floor for any export of these bytes."""
    target = Path(tempfile.mkdtemp(prefix="mvcap-copy-"))
    start = time.perf_counter()
    for n, view in enumerate(sorted((root / "views").rglob("*.png"))):
        shutil.copyfile(view, target / f"{n}.png")
    seconds = time.perf_counter() - start
    shutil.rmtree(target)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--scale", type=int, default=10)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mvcap-export-bench-"))
    try:
        small = make_root(work / "1x", args.objects, args.views).path
        large = make_root(work / f"{args.scale}x", args.objects * args.scale, args.views).path
        image_mb = tree_bytes(small / "views") / 1e6
        print(
            f"1x: {args.objects} objects x {args.views} views, {image_mb:.0f} MB of PNG; "
            f"{args.scale}x: {image_mb * args.scale:.0f} MB"
        )

        copy_s = min(raw_copy(small) for _ in range(2))
        original = export_in_child(small, {})
        cold = export_in_child(small, {"training_images": {"size": 224, "format": "jpeg"}})
        warm = export_in_child(small, {"training_images": {"size": 224, "format": "jpeg"}})
        print(f"\n{'1x, same bytes':46} {'seconds':>8} {'ratio to copy':>14}")
        for name, s in (
            ("raw copy of the PNGs (baseline)", copy_s),
            ("export, original images", original["seconds"]),
            ("export + 224 px JPEG shards, cache cold", cold["seconds"]),
            ("export + 224 px JPEG shards, cache warm", warm["seconds"]),
        ):
            print(f"{name:46} {s:8.2f} {s / copy_s:14.2f}")

        big = export_in_child(large, {})
        print(
            f"\npeak memory of export: 1x {original['peak_mb']:.0f} MB, {args.scale}x {big['peak_mb']:.0f} MB, "
            f"ratio {big['peak_mb'] / original['peak_mb']:.2f} (goal < 1.5)"
        )
        print(
            f"{args.scale}x export: {big['seconds']:.1f} s for {image_mb * args.scale:.0f} MB "
            f"({image_mb * args.scale / big['seconds']:.0f} MB/s)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
