"""The export stage: rows from the manifests -> metadata.json shards, Parquet shards, a card.

The export is one unit: it is built in a staging folder and swapped in at the end, so readers see
either the previous export or the new one, never a mix. It is cheap next to rendering and
captioning, so it is rebuilt whole each time rather than updated; an unchanged root exports to
byte-identical files (what a resumable Hub push relies on).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mvcap_build.dataset import DatasetRoot, FailureLedger, atomic_write_json, atomic_write_text
from mvcap_build.dataset.atomic import make_staging_dir, remove_stale_staging
from mvcap_build.dataset.claims import try_claim
from mvcap_build.dataset.export_schema import ExportRow, metadata_record
from mvcap_build.dataset.layout import OBJECT_STAGES
from mvcap_build.errors import ConfigError, UserError
from mvcap_build.export.card import CardConfig, CardLicence, dataset_card, describe_caption_producer, licence_file
from mvcap_build.export.config import LICENSE_FILE, ExportConfig
from mvcap_build.export.mvcap_layout import FOLDER as MVCAP_FOLDER
from mvcap_build.export.mvcap_layout import write_mvcap_layout
from mvcap_build.export.parquet import write_parquet
from mvcap_build.export.rows import ATTRIBUTION_FIELDS, ExportRows, check_view_files, collect_rows
from mvcap_build.export.shards import plan_shards
from mvcap_build.export.training_images import TrainingImageCache
from mvcap_build.pipeline.stage import RunOptions, Summary, record_run
from mvcap_build.progress import progress


class NothingToExport(UserError, RuntimeError):
    """No object has both views and captions."""


class ExportBusy(UserError, RuntimeError):
    """Another export of the same root is running: one at a time, since each replaces ROOT/export."""


@dataclass(frozen=True)
class ImageSet:
    """One set of Parquet shards: the original view files, or their training-ready re-encodings."""

    folder: str  # "data", or "data-224px-jpeg" beside it
    config_name: str  # the card's config ("default", "224px-jpeg")
    encoding: dict  # what export.json and the card say about the images
    file_of: Callable[[ExportRow], Path]  # the file whose bytes go into the shard
    name_of: Callable[[ExportRow], str]  # the file name stored beside the bytes


class ExportStage:
    name = "export"

    def __init__(self, config: ExportConfig, options: RunOptions | None = None) -> None:
        self.config = config
        self.options = options or RunOptions()

    def run(self, root: DatasetRoot, shard: int = 0, num_shards: int = 1) -> Summary:
        if num_shards != 1:
            raise ConfigError("export writes one dataset from the whole root: run it once, without --num-shards")
        data = collect_rows(root, self.config.img_id_stride, self.config.splits, self.config.stratify_splits)
        if not data.rows:
            raise NothingToExport(
                f"nothing to export in {root.path}: "
                "no object has both views and captions (run render and caption first)"
            )
        self._check_producers(data)
        check_view_files(root, data.rows)
        claim = try_claim(root.export_dir)
        if claim is None:
            raise ExportBusy(f"another `mvcap export` is writing {root.export_dir} now: wait for it to end, then rerun")
        with claim:
            record_run(root, self.name, self.config, self.options, shard, num_shards)
            parquet_files = self._write(root, data)
        summary = Summary(self.name, "exported", units=data.objects, done=data.objects, items=len(data.rows))
        summary.headline = (
            f"{data.objects} objects, {len(data.rows)} views in {len(parquet_files)} Parquet shard(s) "
            f"-> {root.export_dir}"
        )
        if data.incomplete:
            summary.notes.append(f"left out {len(data.incomplete)} objects without complete captions (run caption)")
        if data.stale_captions:
            summary.notes.append(
                f"left out {len(data.stale_captions)} objects whose captions describe older views "
                "(run caption --redo stale)"
            )
        return summary

    def _check_producers(self, data: ExportRows) -> None:
        if len(data.caption_producers) > 1 and not self.config.allow_mixed_captions:
            listed = "\n".join(
                f"  {n} objects: {describe_caption_producer(p)}" for p, n in sorted(data.caption_producers.items())
            )
            raise ConfigError(
                "the captions in this root come from more than one backend, model or prompt:\n"
                f"{listed}\nRe-caption with one of them (`mvcap caption --redo stale`), or pass "
                "--allow-mixed-captions (export.allow_mixed_captions: true) to export them together."
            )

    def _image_sets(self, root: DatasetRoot, data: ExportRows) -> list[ImageSet]:
        """The original views (unless training images replace them), then training-ready ones."""
        sets = []
        training = self.config.training_images
        if training is None or training.originals == "beside":
            sets.append(
                ImageSet(
                    "data",
                    "default",
                    {"images": "original files"},
                    lambda row: root.path / row.path,
                    lambda row: row.path.replace("/", "_"),
                )
            )
        if training is not None:
            cache = TrainingImageCache(root, training)
            cache.update(data.rows, show_progress=self.options.progress)
            folder, config_name = (
                ("data", "default") if training.originals == "instead" else (f"data-{training.name}", training.name)
            )
            encoding = {"images": "training-ready", "shorter_side": training.size, "format": training.format}
            if training.format != "png":
                encoding["quality"] = training.quality
            sets.append(ImageSet(folder, config_name, encoding, cache.file_of, cache.name_of))
        return sets

    def _shard_plan(self, data: ExportRows, image_set: ImageSet) -> dict[str, list[list[ExportRow]]]:
        """Split name -> its shards, in the order the splits are configured (empty splits left out)."""
        plan = {}
        for split in self.config.splits:
            rows = [row for row in data.rows if row.split == split]
            if rows:
                size = lambda row: image_set.file_of(row).stat().st_size  # noqa: E731
                plan[split] = plan_shards(
                    rows, size, max_bytes=self.config.max_shard_bytes, max_rows=self.config.rows_per_parquet
                )
        return plan

    def _write_shards(self, staging: Path, data: ExportRows, image_sets: list[ImageSet]) -> list[str]:
        plans = [(image_set, self._shard_plan(data, image_set)) for image_set in image_sets]
        parquet_files = []
        total = sum(len(shards) for _, plan in plans for shards in plan.values())
        with progress("export parquet", total=total, enabled=self.options.progress) as bar:
            for image_set, plan in plans:
                (staging / image_set.folder).mkdir()
                image_of = lambda row, s=image_set: (s.file_of(row).read_bytes(), s.name_of(row))  # noqa: E731
                for split, shards in plan.items():
                    for i, chunk in enumerate(shards):
                        name = f"{image_set.folder}/{split}-{i:05d}-of-{len(shards):05d}.parquet"
                        write_parquet(chunk, image_of, staging / name, self.config.row_group_rows)
                        parquet_files.append(name)
                        bar.advance()
        return parquet_files

    def _write(self, root: DatasetRoot, data: ExportRows) -> list[str]:
        config = self.config
        image_sets = self._image_sets(root, data)  # training images are encoded into the cache first
        final = root.export_dir
        remove_stale_staging(final)  # `.tmp-export.*` folders of killed exports (the claim keeps out live ones)
        staging = make_staging_dir(final)
        try:
            (staging / "metadata").mkdir()
            parquet_files = self._write_shards(staging, data, image_sets)
            n_meta = math.ceil(len(data.rows) / config.rows_per_metadata)
            for i in range(n_meta):
                chunk = data.rows[i * config.rows_per_metadata : (i + 1) * config.rows_per_metadata]
                meta = [metadata_record(row.as_dict()) for row in chunk]
                (staging / "metadata" / f"metadata_{i:05d}.json").write_text(
                    json.dumps(meta, ensure_ascii=False, indent=0)
                )
            if config.mvcap_layout:
                write_mvcap_layout(root, data.rows, staging / MVCAP_FOLDER)
            if data.attributions:
                (staging / "attribution.csv").write_text(attribution_csv(data.attributions), encoding="utf-8")
            configs = {s.config_name: CardConfig(s.folder, s.encoding) for s in image_sets}
            failures = {stage: Counter(e.reason for e in FailureLedger(root, stage)) for stage in OBJECT_STAGES}
            licence = CardLicence(config.license, config.license_name, config.license_link)
            if licence.writes_file:
                atomic_write_text(staging / LICENSE_FILE, licence_file(config.name, licence, data))
            card = dataset_card(config.name, licence, data, parquet_files, config.img_id_stride, configs, failures)
            atomic_write_text(staging / "README.md", card)
            atomic_write_json(
                staging / "export.json",
                {
                    "objects": data.objects,
                    "views": len(data.rows),
                    "categories": dict(sorted(data.categories.items())),
                    "parquet_files": parquet_files,
                    "image_sets": {s.folder: s.encoding for s in image_sets},
                    "metadata_files": [f"metadata/metadata_{i:05d}.json" for i in range(n_meta)],
                    "incomplete_objects": data.incomplete,
                    "stale_caption_objects": data.stale_captions,
                    "config": config.model_dump(),
                },
            )
            _swap_in(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return parquet_files


def attribution_csv(attributions: list[dict]) -> str:
    """Who made each object and under which licence (what CC BY asks to keep with the data)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ATTRIBUTION_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(attributions, key=lambda a: a["key"]))
    return buffer.getvalue()


def _swap_in(staging: Path, final: Path) -> None:
    if final.exists():
        retired = make_staging_dir(final)
        os.rmdir(retired)
        os.rename(final, retired)
        os.rename(staging, final)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, final)
