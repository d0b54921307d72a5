"""The caption input pipeline: how much of the wall time the engine spends generating, with image
decoding inline or in background threads (overlapping generation), and img/s batched against one
image at a time, side by side in one process on a tiny random LLaVA.

    python benchmarks/caption_pipeline.py [--images 96] [--side 512] [--batch 8] [--new-tokens 16]

The images are RGBA PNGs at --side px, as renders are; the engine's busy time is the time inside
`generate` (HFBackend.busy_s).
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from mvcap_build.caption.backends.base import CaptionRequest
from mvcap_build.caption.backends.hf import HFBackend
from mvcap_build.caption.config import HFBackendConfig
from mvcap_build.tiny_models.tiny_llava import build_tiny_llava


def make_images(folder: Path, count: int, side: int) -> list[Path]:
    rng = random.Random(0)
    paths = []
    for index in range(count):
        image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        draw = ImageDraw.Draw(image)
        for _ in range(40):  # detail, so PNG decoding costs what a render's does
            x, y, r = rng.randrange(side), rng.randrange(side), rng.randrange(4, side // 6)
            draw.ellipse(
                (x - r, y - r, x + r, y + r), fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256), 255)
            )
        path = folder / f"{index:04d}.png"
        image.save(path, compress_level=4)
        paths.append(path)
    return paths


def run(model: Path, requests: list[CaptionRequest], *, batch: int, workers: int, tokens: int) -> tuple[float, float]:
    config = HFBackendConfig(model=str(model), batch_size=batch, max_new_tokens=tokens, decode_workers=workers)
    backend = HFBackend(config)
    backend.caption(requests[:batch])  # warm up
    backend.busy_s = 0.0
    start = time.perf_counter()
    backend.caption(requests)
    wall = time.perf_counter() - start
    return len(requests) / wall, backend.busy_s / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=16)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    scratch = Path(tempfile.mkdtemp(prefix="mvcap-caption-bench-"))
    model = build_tiny_llava(scratch / "tiny-llava")
    requests = [
        CaptionRequest(key=f"bench/{i}", view_index=0, image_path=p, prompt="Describe the object.", category="thing")
        for i, p in enumerate(make_images(scratch, args.images, args.side))
    ]
    runs = [
        ("batch 1, decode inline", dict(batch=1, workers=0)),
        (f"batch {args.batch}, decode inline", dict(batch=args.batch, workers=0)),
        (f"batch {args.batch}, decode in 2 threads", dict(batch=args.batch, workers=2)),
    ]
    baseline = None
    print(f"{'settings':34} {'img/s':>7} {'ratio':>6} {'engine busy':>12}")
    for name, settings in runs:
        rate, busy = run(model, requests, tokens=args.new_tokens, **settings)
        baseline = baseline or rate
        print(f"{name:34} {rate:7.1f} {rate / baseline:6.2f} {busy:12.2f}", flush=True)


if __name__ == "__main__":
    main()
