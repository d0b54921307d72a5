"""Does a long-lived Blender worker leak? Resident memory of one worker process after each of N
objects (the shared fixture meshes, cycled), printed as a ratio against its memory after the
first object. Decides how often `recycle_after` must restart workers.

    python benchmarks/worker_memory.py [--objects 60] [--meshes ../shared/fixtures/meshes]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import psutil

from mvcap_build.dataset import ObjectRecord
from mvcap_build.render.config import RenderConfig
from mvcap_build.render.jobs import render_job
from mvcap_build.render.workers import BlenderWorker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=60)
    parser.add_argument(
        "--meshes", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "meshes"
    )
    args = parser.parse_args()
    files = sorted(
        p
        for p in args.meshes.iterdir()
        if p.suffix in (".glb", ".obj", ".ply", ".stl") and not p.name.startswith("empty")
    )
    config = RenderConfig.model_validate(
        {"resolution": 64, "samples": 4, "denoise": False, "device": "cpu", "views": {"num_views": 4}}
    )
    scratch = Path(tempfile.mkdtemp(prefix="mvcap-mem-"))
    worker = BlenderWorker(scratch / "worker.log")
    worker.start()
    process = psutil.Process(worker.process.pid)
    first = None
    for n, path in enumerate(itertools.islice(itertools.cycle(files), args.objects), start=1):
        obj = ObjectRecord(
            key=f"local/{n}-{path.name}",
            source="local",
            source_id=f"{n}-{path.name}",
            category="x",
            asset={"kind": "file", "path": str(path)},
        )
        out = scratch / str(n)
        out.mkdir()
        worker.call(render_job(obj, config, out), timeout=120)
        rss = process.memory_info().rss / 2**20
        first = first or rss
        if n in (1, 2, 5, 10) or n % 20 == 0:
            print(f"after {n:4d} objects: {rss:7.1f} MiB  ratio to first {rss / first:5.2f}", flush=True)
    worker.stop()


if __name__ == "__main__":
    main()
