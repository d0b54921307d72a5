"""Render throughput: views per second of `mvcap render` under different settings, each run side
by side in this one script, printed as a ratio against the first (the baseline).

    python benchmarks/render_throughput.py [--views 24] [--resolution 512] [--samples 32]
        [--runs "device=cpu,workers=1" "device=auto,workers=1" "device=auto,workers=4"]

Persistent workers against one Blender process per object (the objaverse-xl way):
    python benchmarks/render_throughput.py --views 12 --resolution 128 --samples 16 \
        --runs device=cpu,recycle_after=1 device=cpu,recycle_after=100

PNG compression inside Blender's render loop against on the host, in parallel:
    python benchmarks/render_throughput.py --views 24 --resolution 512 --samples 8 \
        --runs device=cpu,engine=BLENDER_WORKBENCH,png_on_host=false \
               device=cpu,engine=BLENDER_WORKBENCH,png_on_host=true

Each run renders the same demo objects into a fresh root; the time includes starting Blender
workers and importing, as a user would see it.
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


def run(settings: dict[str, str], args: argparse.Namespace, scratch: Path) -> tuple[float, dict]:
    root = scratch / "_".join(f"{k}{v}" for k, v in settings.items())
    shutil.rmtree(root, ignore_errors=True)
    command = [
        sys.executable,
        "-m",
        "mvcap_build",
        "render",
        str(root),
        "--source",
        "demo",
        "--per-category",
        "1",
        "--num-views",
        str(args.views),
        "--resolution",
        str(args.resolution),
        "--samples",
        str(args.samples),
        "--quiet",
    ]
    for key, value in settings.items():
        flag = key.replace("_", "-")
        if value in ("true", "false"):  # boolean flags: --name / --no-name
            command.append(f"--{flag}" if value == "true" else f"--no-{flag}")
        else:
            command += [f"--{flag}", value]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    manifests = sorted(root.glob("views/*/*/views.json"))
    views = sum(len(json.loads(m.read_text())["views"]) for m in manifests)
    renderer = json.loads(manifests[0].read_text())["producer"]
    return views / seconds, renderer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--views", type=int, default=24)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument(
        "--runs", nargs="+", default=["device=cpu,workers=1", "device=auto,workers=1", "device=auto,workers=4"]
    )
    parser.add_argument("--scratch", type=Path, default=None)
    args = parser.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="mvcap-bench-"))
    baseline = None
    print(f"{'settings':32} {'views/s':>8} {'ratio':>6}  device")
    for spec in args.runs:
        settings = dict(item.split("=", 1) for item in spec.split(","))
        rate, renderer = run(settings, args, scratch)
        baseline = baseline or rate
        print(
            f"{spec:32} {rate:8.2f} {rate / baseline:6.2f}  "
            f"{renderer['device']} {renderer.get('backend')} {renderer.get('devices')}",
            flush=True,
        )


if __name__ == "__main__":
    main()
