"""Exported Parquet shards -> batches of P objects x V views.

The batch for step `i` is a pure function of (seed, i): resuming at step 1200 yields exactly
the batches an uninterrupted run would have seen, with no sampler state to checkpoint, and
under several processes rank `r` simply takes global batch `i * world_size + r`.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvcap_build.dataset.export_schema import TRAINING_COLUMNS as REQUIRED_COLUMNS
from mvcap_build.errors import ConfigError, ExportUnusable, InputNotFound, ManifestError
from mvcap_build.export.image_sets import shard_folder

MVCAP_METADATA = "metadata.json"  # MVCap-4M as released: one list for the whole dataset


@dataclass
class ExportData:
    """An exported dataset: the Arrow table (memory-mapped) and its rows grouped by object."""

    root: Path
    dataset: object  # datasets.Dataset, images left as {bytes, path} (decoded by us, lazily)
    groups: list[np.ndarray]  # one array per object: row indices of its views, by view_index

    @classmethod
    def open(cls, export_dir: str | Path, images: str = "auto") -> ExportData:
        """`images`: auto (training-ready shards when the export has them), original or training."""
        root = Path(export_dir)
        shards = [str(p) for p in training_shards(root, images)]
        if not shards and (root / MVCAP_METADATA).is_file():
            return cls.open_mvcap(root)
        if not shards:
            raise InputNotFound(
                f"no Parquet shards in {root / 'data'}: point train-ovt at the folder written by "
                "`mvcap export` (it contains data/*.parquet), or at a released MVCap folder (metadata.json + images)"
            )
        datasets = local_datasets()
        expected_rows = _parquet_rows(shards)  # reads every footer: a truncated shard stops here, in one line
        dataset = datasets.load_dataset("parquet", data_files=shards, split="train")
        if dataset.num_rows != expected_rows:
            # The Arrow cache is keyed by path + mtime; a re-export that kept both is rebuilt.
            dataset = datasets.load_dataset(
                "parquet", data_files=shards, split="train", download_mode="force_redownload"
            )
        missing = [c for c in REQUIRED_COLUMNS if c not in dataset.column_names]
        if missing:
            raise ExportUnusable(f"{root}: the shards lack columns {missing}; re-run `mvcap export`")
        dataset = dataset.cast_column("image", datasets.Image(decode=False))
        return cls(root, dataset, _group_rows(dataset))

    @classmethod
    def open_mvcap(cls, root: Path, img_id_stride: int = 100) -> ExportData:
        """MVCap's released layout (a `metadata.json` list of path, caption, obj_id, img_id, with
        paths relative to the folder holding the images), as the original OVT loader reads it."""
        import datasets

        try:
            entries = json.loads((root / MVCAP_METADATA).read_text("utf-8"))
            columns = {
                "image": [{"bytes": None, "path": e["path"]} for e in entries],
                "caption": [e["caption"] for e in entries],
                "obj_id": [int(e["obj_id"]) for e in entries],
                "view_index": [int(e["img_id"]) % img_id_stride for e in entries],
            }
        except (ValueError, KeyError, TypeError) as error:
            raise ExportUnusable(
                f"{root / MVCAP_METADATA}: not MVCap's metadata (a list of path, caption, obj_id, img_id): {error!r}"
            ) from error
        features = datasets.Features(
            {
                "image": datasets.Image(decode=False),
                "caption": datasets.Value("string"),
                "obj_id": datasets.Value("int64"),
                "view_index": datasets.Value("int32"),
            }
        )
        dataset = datasets.Dataset.from_dict(columns, features=features)
        return cls(root, dataset, _group_rows(dataset))

    @property
    def num_objects(self) -> int:
        return len(self.groups)

    def captions(self, limit: int = 10_000) -> list[str]:
        return self.dataset.data.column("caption").slice(0, limit).to_pylist()

    def load_image(self, image: dict):
        """A PIL image from the Image feature's {bytes, path}; paths are relative to the export."""
        from PIL import Image

        if image.get("bytes"):
            return Image.open(io.BytesIO(image["bytes"]))
        return Image.open(self.root / image["path"])


def training_shards(export_dir: Path, images: str = "auto") -> list[Path]:
    """The shards to train on: the train split when the export has splits (no validation object
    leaks into training), else every shard of the chosen folder."""
    folder = export_dir / shard_folder(export_dir, images)
    return sorted(folder.glob("train-*.parquet")) or sorted(folder.glob("*.parquet"))


def _parquet_rows(shards: list[str]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    total = 0
    for shard in shards:
        try:
            total += pq.ParquetFile(shard).metadata.num_rows
        except (pa.ArrowException, OSError) as error:
            raise ManifestError(
                f"{shard}: not a readable Parquet file ({error}); run `mvcap export` again to rewrite the shards"
            ) from None
    return total


def _group_rows(dataset) -> list[np.ndarray]:
    """Row indices per distinct obj_id, each ordered by view (ids need not be contiguous here)."""
    obj = dataset.data.column("obj_id").to_numpy()
    view = dataset.data.column("view_index").to_numpy()
    order = np.lexsort((view, obj))
    _, starts = np.unique(obj[order], return_index=True)
    return np.split(order, starts[1:])


def sample_batch(
    groups: list[np.ndarray], objects: int, views: int, seed: int, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows and object numbers (positions in `groups`) of global batch `index`: P objects (an epoch
    is a permutation), V views each.

    Objects with fewer than V views are drawn with replacement; the loss masks same-object
    pairs, so a repeated view is harmless.
    """
    if len(groups) < objects:
        raise ConfigError(
            f"the export has {len(groups)} objects but objects_per_batch is {objects}: "
            "lower objects_per_batch or export more objects"
        )
    per_epoch = len(groups) // objects
    epoch, slot = divmod(index, per_epoch)
    chosen = np.random.default_rng([seed, epoch]).permutation(len(groups))[slot * objects : (slot + 1) * objects]
    rng = np.random.default_rng([seed, epoch, slot])
    rows = [groups[o][rng.choice(len(groups[o]), views, replace=len(groups[o]) < views)] for o in chosen]
    return np.concatenate(rows), np.repeat(chosen, views)


class OVTBatches:
    """Map-style dataset whose item `i` is the whole batch of step `start + i` (for a DataLoader
    with batch_size=None, so PNG decoding and tokenising run in its workers)."""

    def __init__(
        self,
        data: ExportData,
        tokenizer,
        transform,
        *,
        objects: int,
        views: int,
        seed: int,
        start: int,
        stop: int,
        rank: int = 0,
        world_size: int = 1,
        augment: bool = False,
        aux=None,
        aux_per_batch: int = 0,
    ):
        self.data, self.tokenizer, self.transform = data, tokenizer, transform
        self.objects, self.views, self.seed = objects, views, seed
        self.start, self.stop, self.rank, self.world_size = start, stop, rank, world_size
        self.augment, self.aux, self.aux_per_batch = augment, aux, aux_per_batch

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int) -> dict:
        import torch

        step = self.start + i
        rows, obj_ids = sample_batch(
            self.data.groups, self.objects, self.views, self.seed, step * self.world_size + self.rank
        )
        records = self.data.dataset[rows.tolist()]
        images = [self.data.load_image(im) for im in records["image"]]
        captions = list(records["caption"])
        if self.augment:
            from mvcap_build.train.augment import augment_view

            rng = np.random.default_rng([self.seed, step, self.rank, 1])
            images = [augment_view(image, rng) for image in images]
        if self.aux is not None:  # the second source's pairs, after the multi-view ones
            aux_images, aux_captions = self.aux.sample(
                self.aux_per_batch, self.seed, step * self.world_size + self.rank
            )
            images, captions = images + aux_images, captions + aux_captions
        pixels = torch.stack([self.transform(image) for image in images])
        text = self.tokenizer(captions, padding=True, truncation=True, max_length=77, return_tensors="pt")
        return {
            "step": step,
            "pixel_values": pixels,
            "input_ids": text["input_ids"],
            "attention_mask": text["attention_mask"],
            "obj_ids": torch.from_numpy(obj_ids),  # multi-view rows only; aux rows follow them
            "rows": torch.from_numpy(rows),
            # A view with an empty caption has no text: it joins the consistency loss, not the contrastive.
            "captioned": torch.tensor([bool(c.strip()) for c in captions]),
        }


class ViewBlocks:
    """Map-style dataset for the mining pass: item `i` is this process's block `i` of the
    export's rows, decoded and preprocessed (in DataLoader workers, as the training batches).

    Processes take blocks in turn; under several, the last blocks are padded with the export's
    last row, so that every process embeds the same number of rows (gathering needs equal sizes).
    """

    def __init__(self, data: ExportData, transform, block: int, rank: int = 0, world_size: int = 1):
        self.data, self.transform, self.block = data, transform, block
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        per_round = self.block * self.world_size
        return (len(self.data.dataset) + per_round - 1) // per_round

    def __getitem__(self, i: int) -> dict:
        import torch

        total = len(self.data.dataset)
        start = (i * self.world_size + self.rank) * self.block
        rows = list(range(min(start, total), min(start + self.block, total)))
        if self.world_size > 1:
            rows += [rows[-1] if rows else total - 1] * (self.block - len(rows))
        images = self.data.dataset[rows]["image"]
        return {
            "rows": torch.tensor(rows),
            "pixel_values": torch.stack([self.transform(self.data.load_image(im)) for im in images]),
        }


def local_datasets():
    """`datasets`, told not to report a usage count to the network when it reads local Parquet
    (on an offline node that request waits on DNS before every training run starts)."""
    os.environ.setdefault("HF_UPDATE_DOWNLOAD_COUNTS", "0")
    import datasets

    if os.environ["HF_UPDATE_DOWNLOAD_COUNTS"] == "0":
        datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False  # imported earlier in this process
    return datasets
