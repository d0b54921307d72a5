"""How objects fill the frame and how evenly they are lit: the fixture meshes rendered with the
first settings (one distance for all, one sun from above) and with the defaults (fit framing,
neutral rig), side by side, each printed with its ratio to the first.

    python benchmarks/framing_lighting.py [--meshes ../shared/fixtures/meshes] [--views 16] [--resolution 128]

Measures (see mvcap_build/render/view_stats.py): median over objects of each object's median
coverage; views with the object cut by the border; brightness and shading contrast of views
below the horizon divided by those of views above.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mvcap_build.dataset import DatasetRoot, read_views_manifest
from mvcap_build.render.view_stats import view_stats

RUNS = {"first (fixed, key_sun)": ["--framing", "fixed", "--lighting", "key_sun"], "default (fit, neutral)": []}


def measure(root: DatasetRoot) -> dict[str, float]:
    coverages, touching, above, below = [], 0, [], []
    for path in root.view_manifests():
        manifest = read_views_manifest(path)
        stats = [(view, view_stats(root.view_dir(manifest.key) / view.file)) for view in manifest.views]
        coverages.append(statistics.median(s.coverage for _, s in stats))
        touching += sum(s.touches_border for _, s in stats)
        for view, s in stats:
            (above if view.elevation_deg > 0 else below).append(s)

    def ratio(name: str) -> float:
        return statistics.mean(getattr(s, name) for s in below) / statistics.mean(getattr(s, name) for s in above)

    return {
        "coverage": statistics.median(coverages),
        "border": touching,
        "brightness below/above": ratio("brightness"),
        "contrast below/above": ratio("contrast"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--meshes", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "meshes"
    )
    parser.add_argument("--views", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="mvcap-framing-"))
    results = {}
    for name, flags in RUNS.items():
        root = scratch / name.split()[0]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "mvcap_build",
                "render",
                str(root),
                "--folder",
                str(args.meshes),
                "--num-views",
                str(args.views),
                "--distribution",
                "sphere",
                "--resolution",
                str(args.resolution),
                "--samples",
                str(args.samples),
                "--device",
                "cpu",
                "--quiet",
                *flags,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        results[name] = measure(DatasetRoot(root))
    first = next(iter(results.values()))
    print(f"{'settings':24} " + " ".join(f"{k:>24}" for k in first))
    for name, values in results.items():
        cells = [f"{v:.3f} ({v / first[k]:.2f}x)" if first[k] else f"{v}" for k, v in values.items()]
        print(f"{name:24} " + " ".join(f"{c:>24}" for c in cells))


if __name__ == "__main__":
    main()
