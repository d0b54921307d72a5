"""The export stage: rows from the manifests -> metadata.json shards, Parquet shards, a card.

The export is one unit: it is built in a staging folder and swapped in at the end, so readers see
either the previous export or the new one, never a mix. It is cheap next to rendering and
captioning, so it is rebuilt whole each time rather than updated.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mvcap_build.dataset import DatasetRoot, atomic_write_json, atomic_write_text
from mvcap_build.dataset.atomic import make_staging_dir
from mvcap_build.export.card import dataset_card
from mvcap_build.export.config import ExportConfig
from mvcap_build.export.rows import collect_rows
from mvcap_build.progress import progress_bar


@dataclass
class ExportSummary:
    folder: Path
    objects: int
    views: int
    parquet_files: int
    incomplete: list[str]


def _features():
    from datasets import Features, Image, Sequence, Value

    return Features(
        {
            "image": Image(),
            "path": Value("string"),
            "caption": Value("string"),
            "obj_id": Value("int64"),
            "img_id": Value("int64"),
            "key": Value("string"),
            "category": Value("string"),
            "source": Value("string"),
            "view_index": Value("int32"),
            "azimuth_deg": Value("float64"),
            "elevation_deg": Value("float64"),
            "distance": Value("float64"),
            "fov_deg": Value("float64"),
            "c2w": Sequence(Sequence(Value("float64"), length=4), length=4),
            "caption_backend": Value("string"),
            "caption_model": Value("string"),
        }
    )


def _write_parquet(root: DatasetRoot, rows: list[dict], path: Path) -> None:
    try:
        import datasets
    except ImportError as error:
        raise RuntimeError("export needs the `datasets` library: pip install 'mvcap-build[export]'") from error
    records = []
    for row in rows:
        image_path = root.path / row["path"]
        records.append({**row, "image": {"bytes": image_path.read_bytes(), "path": row["path"].replace("/", "_")}})
    datasets.disable_progress_bars()
    datasets.Dataset.from_list(records, features=_features()).to_parquet(str(path))


def run_export(root: DatasetRoot, config: ExportConfig, *, show_progress: bool = True) -> ExportSummary:
    data = collect_rows(root, config.img_id_stride)
    if not data.rows:
        raise RuntimeError(f"nothing to export in {root.path}: no object has both views and captions (run render and caption first)")
    final = root.export_dir
    staging = make_staging_dir(final)
    try:
        (staging / "data").mkdir()
        (staging / "metadata").mkdir()
        n_parquet = math.ceil(len(data.rows) / config.rows_per_parquet)
        parquet_files = []
        with progress_bar("export parquet", total=n_parquet, enabled=show_progress) as advance:
            for i in range(n_parquet):
                name = f"data/train-{i:05d}-of-{n_parquet:05d}.parquet"
                chunk = data.rows[i * config.rows_per_parquet : (i + 1) * config.rows_per_parquet]
                _write_parquet(root, chunk, staging / name)
                parquet_files.append(name)
                advance()
        mvcap_columns = ("path", "caption", "obj_id", "img_id")
        n_meta = math.ceil(len(data.rows) / config.rows_per_metadata)
        for i in range(n_meta):
            chunk = data.rows[i * config.rows_per_metadata : (i + 1) * config.rows_per_metadata]
            # MVCap's four columns first, then ours (category, source, view fields); no matrices.
            meta = [
                {**{k: r[k] for k in mvcap_columns}, **{k: v for k, v in r.items() if k not in mvcap_columns and k != "c2w"}}
                for r in chunk
            ]
            (staging / "metadata" / f"metadata_{i:05d}.json").write_text(json.dumps(meta, ensure_ascii=False, indent=0))
        atomic_write_text(staging / "README.md", dataset_card(config.name, config.license, data, parquet_files, config.img_id_stride))
        atomic_write_json(
            staging / "export.json",
            {
                "objects": data.objects,
                "views": len(data.rows),
                "categories": data.categories,
                "parquet_files": parquet_files,
                "metadata_files": [f"metadata/metadata_{i:05d}.json" for i in range(n_meta)],
                "incomplete_objects": data.incomplete,
                "config": config.model_dump(),
            },
        )
        _swap_in(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportSummary(final, data.objects, len(data.rows), len(parquet_files), data.incomplete)


def _swap_in(staging: Path, final: Path) -> None:
    if final.exists():
        retired = make_staging_dir(final)
        os.rmdir(retired)
        os.rename(final, retired)
        os.rename(staging, final)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.rename(staging, final)
