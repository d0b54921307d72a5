"""The second image-text source OVT mixes into every batch to keep CLIP's 2D performance.

The paper adds 256 ImageNet images, captioned from their class names, to every 512 MVCap pairs.
Here it is either an ImageFolder with a class-name file (read as `mvcap eval` reads benchmarks;
each image captioned with one of CLIP's 80 ImageNet templates, drawn per sample) or Parquet
with `image` and `caption` columns (any `mvcap export`, or a Hub dataset's shards).

Samples are a pure function of (seed, batch index), like the multi-view batches, so a resumed
run sees the same pairs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvcap_build.errors import ConfigError


@dataclass
class AuxSource:
    files: list[Path] | None  # ImageFolder images, or None for Parquet
    names: list[str] | None  # ImageFolder: the class name of each image
    table: object | None  # Parquet: a datasets.Dataset with image (undecoded) and caption
    templates: list[str]

    @classmethod
    def open(cls, path: Path, classnames: Path | None = None, images: str = "auto") -> AuxSource:
        from mvcap_build.clip.templates import IMAGENET_TEMPLATES

        path = Path(path)
        if classnames is not None:
            from mvcap_build.clip.imagefolder import ImageFolderBenchmark

            bench = ImageFolderBenchmark.open(path, Path(classnames))
            names = [bench.names[i] for i in bench.image_folder]
            return cls(list(bench.images), names, None, IMAGENET_TEMPLATES)
        return cls(None, None, _open_parquet(path, images), IMAGENET_TEMPLATES)

    def __len__(self) -> int:
        return len(self.files) if self.files is not None else len(self.table)

    def sample(self, n: int, seed: int, index: int) -> tuple[list, list[str]]:
        """`n` (image, caption) pairs for batch `index`, drawn with replacement."""
        from PIL import Image

        rng = np.random.default_rng([seed, index, 0xA0])
        picks = rng.integers(0, len(self), n)
        if self.files is not None:
            templates = rng.integers(0, len(self.templates), n)
            images = [Image.open(self.files[p]) for p in picks]
            captions = [self.templates[t].format(self.names[p]) for p, t in zip(picks, templates)]
            return images, captions
        records = self.table[picks.tolist()]
        images = [
            Image.open(io.BytesIO(im["bytes"])) if im.get("bytes") else Image.open(im["path"])
            for im in records["image"]
        ]
        return images, list(records["caption"])


def _open_parquet(path: Path, images: str):
    from mvcap_build.train.data import local_datasets, training_shards

    datasets = local_datasets()
    if path.is_dir():
        files = training_shards(path, images) or sorted(path.glob("*.parquet"))  # an export, or a folder of shards
    else:
        files = [path]
    if not files:
        raise ConfigError(
            f"aux_data {path}: no Parquet files "
            "(give an ImageFolder with aux_classnames, or Parquet with image and caption columns)"
        )
    table = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
    missing = {"image", "caption"} - set(table.column_names)
    if missing:
        raise ConfigError(f"aux_data {path}: the Parquet lacks columns {sorted(missing)}")
    return table.select_columns(["image", "caption"]).cast_column("image", datasets.Image(decode=False))
