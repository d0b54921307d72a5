"""What training-ready shards buy the trainer: samples/s of `train-ovt` reading 224 px JPEG shards
(`mvcap export --image-size 224`) against the 512 px PNG originals, side by side on one export.

    python benchmarks/train_input.py [--objects 64] [--views 8] [--steps 12]

Two figures per shard set: the input path alone (decode + CLIP preprocessing at 224 px, one
core, the work a DataLoader worker does per sample) and the whole trainer (tiny random CLIP,
so the model costs little and the input shows; num_workers 0, one process; setup subtracted).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from synthetic_root import make_root  # noqa: E402

from mvcap_build.clip.preprocess import ImageTransform  # noqa: E402
from mvcap_build.export.config import ExportConfig  # noqa: E402
from mvcap_build.export.stage import ExportStage  # noqa: E402
from mvcap_build.pipeline.stage import RunOptions  # noqa: E402
from mvcap_build.train.config import TrainOVTConfig  # noqa: E402
from mvcap_build.train.data import ExportData  # noqa: E402
from mvcap_build.train.trainer import train_ovt  # noqa: E402


def input_rate(export_dir: Path, images: str, samples: int) -> float:
    data = ExportData.open(export_dir, images)
    transform = ImageTransform(224)
    rows = data.dataset.select(range(min(samples, len(data.dataset))))
    start = time.perf_counter()
    for record in rows:
        transform(data.load_image(record["image"]))
    return len(rows) / (time.perf_counter() - start)


def trainer_rate(export_dir: Path, images: str, steps: int, work: Path) -> float:
    """Samples/s of the steps themselves: the time of a run of 1 + `steps` steps minus that of a
    1-step run (model build, data opening and the final checkpoint cancel out)."""
    config = TrainOVTConfig(
        clip_model="tiny-random",
        objects_per_batch=8,
        views_per_object=4,
        save_every=10**6,
        num_workers=0,
        warmup_steps=0,
    )
    seconds = []
    for n in (1, 1 + steps):
        start = time.perf_counter()
        train_ovt(config.model_copy(update={"max_steps": n}), export_dir, work / f"{images}-{n}", images=images)
        seconds.append(time.perf_counter() - start)
    return steps * 8 * 4 / (seconds[1] - seconds[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=64)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mvcap-train-input-"))
    try:
        root = make_root(work / "root", args.objects, args.views)
        config = ExportConfig.model_validate({"training_images": {"size": 224, "format": "jpeg"}})
        ExportStage(config, RunOptions(progress=False)).run(root)
        print(f"{'shards':28} {'input samples/s':>16} {'trainer samples/s':>18}")
        rates = {}
        for images, name in (("original", "512 px PNG (baseline)"), ("training", "224 px JPEG")):
            rates[images] = (
                input_rate(root.export_dir, images, 200),
                trainer_rate(root.export_dir, images, args.steps, work),
            )
            print(f"{name:28} {rates[images][0]:16.1f} {rates[images][1]:18.1f}")
        (png_in, png_train), (jpg_in, jpg_train) = rates["original"], rates["training"]
        print(f"{'ratio JPEG / PNG':28} {jpg_in / png_in:16.2f} {jpg_train / png_train:18.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
