"""Static shards against dynamic batches on Ray: the render stage of the demo (objects of mixed
cost: a bookshelf takes about three times a mug) launched on a local Ray cluster with W worker
slots, once as W shards (static: each slot gets one fixed share) and once as K x W shards
(dynamic: a free slot takes the next shard, so long and short objects even out, at the price of
one more Blender start per extra shard). Printed as a ratio against the static run.

    python benchmarks/ray_batches.py [--slots 2] [--factor 4] [--per-category 3] [--resolution 96]

The same Ray cluster runs both, side by side in this one script; each run renders into a fresh root.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def pipeline(path: Path, root: Path, address: str, shards: int, args) -> Path:
    config = {
        "root": str(root),
        "render": {
            "source": {"kind": "demo", "per_category": args.per_category},
            "views": {"num_views": args.views},
            "resolution": args.resolution,
            "samples": args.samples,
            "denoise": False,
            "device": "cpu",
            "workers": 1,
        },
        "runner": {
            "kind": "ray",
            "ray_address": address,
            "poll_s": 0.2,
            "defaults": {"cpus": 1},
            "stages": {"render": {"shards": shards}},
        },
    }
    path.write_text(yaml.safe_dump(config))
    return path


def launch(file: Path) -> float:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "mvcap_build", "launch", str(file)], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(result.stdout + result.stderr)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slots", type=int, default=2, help="Ray worker slots (CPUs of the one worker node)")
    parser.add_argument("--factor", type=int, default=4, help="dynamic run: shards per slot")
    parser.add_argument("--per-category", type=int, default=3)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=96)
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.add_node(num_cpus=args.slots)
    cluster.wait_for_nodes()
    try:
        with tempfile.TemporaryDirectory(prefix="ray-batches-") as folder:
            folder = Path(folder)
            runs = {}
            for label, shards in (("static", args.slots), ("dynamic", args.slots * args.factor)):
                file = pipeline(folder / f"{label}.yaml", folder / label, cluster.address, shards, args)
                runs[label] = (shards, launch(file))
    finally:
        cluster.shutdown()
    base = runs["static"][1]
    print(f"{'run':<8} {'shards':>6} {'seconds':>8} {'ratio':>6}")
    for label, (shards, seconds) in runs.items():
        print(f"{label:<8} {shards:>6} {seconds:>8.1f} {seconds / base:>6.2f}")


if __name__ == "__main__":
    main()
