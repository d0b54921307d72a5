"""The held-out split of an mvcap export, evaluated per view.

Zero-shot over the export's categories (the class names are the categories, from export.json,
so a split that lacks a category is still scored against all of them), then:
  - accuracy per elevation bin and per azimuth bin (`metrics.azimuth_bins`, `metrics.elevation_bins`)
  - canonical vs extreme views: canonical = elevation within a band (default 0-30 deg) and azimuth
    within +-45 deg of the front (0 deg); extreme = every other view
  - invariance: per object, the mean cosine of its views' embeddings to their normalised mean
    (averaged over objects), the same less their mean cosine to the centre of all views (high
    only when views gather by object, not when everything collapses), and same-object retrieval
    (does a view's nearest other held-out view, by cosine, show the same object: recall@1, and mAP)
Every view is recorded with its bins and predictions, so each figure can be recomputed.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvcap_build.errors import ConfigError
from mvcap_build.eval import metrics

HELD_OUT = ("test", "validation")  # the default split: the first of these the export has
COLUMNS = ("category", "view_index", "azimuth_deg", "elevation_deg")
SPLITS_HINT = (
    "set `splits:` in the export config (e.g. `splits: {train: 0.9, test: 0.1}`; objects are "
    "assigned by a hash of their key) and run `mvcap export ROOT -c export.yaml` again"
)


@dataclass
class ExportSplit:
    export_dir: Path
    split: str
    image_folder: str  # data (original views) or data-<size>px-<format> (training-ready)
    shards: list[Path]
    keys: list[str]  # object per view
    categories: list[str]
    view_index: np.ndarray
    azimuth_deg: np.ndarray
    elevation_deg: np.ndarray
    classnames: list[str]  # every category of the export, sorted
    identity: str = "key"  # the column `keys` come from: key, or obj_id in exports without keys

    @property
    def name(self) -> str:
        return f"{self.export_dir.name}:{self.split}"

    @classmethod
    def open(cls, path: Path, split: str | None = None) -> ExportSplit:
        """`path`: a dataset root (its export/ is used) or the folder written by `mvcap export`."""
        import pyarrow.parquet as pq

        from mvcap_build.export.image_sets import shard_folder

        path = Path(path)
        export_dir = path / "export" if (path / "export").is_dir() else path
        if not export_dir.is_dir():
            raise ConfigError(f"export not found: {path} is not a folder")
        try:
            folder = shard_folder(export_dir, "original")
        except ValueError:  # exported with --no-originals: the training-ready images are all there is
            folder = shard_folder(export_dir, "training")
        by_split: dict[str, list[Path]] = {}
        for shard in sorted((export_dir / folder).glob("*.parquet")):
            by_split.setdefault(shard.name.split("-")[0], []).append(shard)
        if not by_split:
            raise ConfigError(
                f"no Parquet shards in {export_dir / folder}: point --export at a dataset root "
                "or at the folder written by `mvcap export` (it holds data/*.parquet)"
            )
        if split is None:
            split = next((s for s in HELD_OUT if s in by_split), None)
            if split is None:
                raise ConfigError(
                    f"{export_dir} has no held-out split (it has {', '.join(sorted(by_split))}); "
                    f"to evaluate on objects the model was not trained on, {SPLITS_HINT}"
                )
        elif split not in by_split:
            raise ConfigError(f"{export_dir} has no split {split!r} (it has {', '.join(sorted(by_split))})")
        shards = by_split[split]
        schema = pq.read_schema(shards[0])
        identity = "key" if "key" in schema.names else "obj_id"
        missing = [c for c in ("image", identity, *COLUMNS) if c not in schema.names]
        if missing:
            raise ConfigError(f"{shards[0]} lacks the columns {missing}: export again with `mvcap export`")
        table = _concat([pq.read_table(s, columns=[identity, *COLUMNS]) for s in shards])
        categories = [str(c) for c in table.column("category").to_pylist()]
        classnames = sorted(set(_export_categories(export_dir)) | set(categories))
        angles = {c: np.asarray(table.column(c).to_pylist(), dtype=float) for c in ("azimuth_deg", "elevation_deg")}
        for column, values in angles.items():
            if not np.isfinite(values).all():
                raise ConfigError(
                    f"{export_dir} split {split!r}: {int((~np.isfinite(values)).sum())} views have no "
                    f"{column}; per-viewpoint evaluation needs every view's camera angles"
                )
        return cls(
            export_dir,
            split,
            folder,
            shards,
            [str(k) for k in table.column(identity).to_pylist()],
            categories,
            np.asarray(table.column("view_index").to_pylist(), dtype=np.int64),
            angles["azimuth_deg"],
            angles["elevation_deg"],
            classnames,
            identity,
        )

    def __len__(self) -> int:
        return len(self.keys)

    def images(self):
        """The image cells ({bytes, path}) in row order, streamed shard by shard."""
        import pyarrow.parquet as pq

        for shard in self.shards:
            for batch in pq.ParquetFile(shard).iter_batches(batch_size=256, columns=["image"]):
                yield from batch.column(0).to_pylist()

    def open_image(self, cell: dict):
        from PIL import Image

        if cell.get("bytes"):
            return Image.open(io.BytesIO(cell["bytes"]))
        return Image.open(self.export_dir / cell["path"])

    def describe(self) -> dict:
        return {
            "export_dir": str(self.export_dir),
            "split": self.split,
            "image_folder": self.image_folder,
            "views": len(self),
            "objects": len(set(self.keys)),
            "classes": self.classnames,
        }


def evaluate_export(
    model, data: ExportSplit, text_weights, settings, *, label: str, show_progress: bool = True
) -> tuple[dict, list[dict]]:
    """Zero-shot and invariance figures of `model` on `data`. Returns (result, unreadable views)."""
    from mvcap_build.eval.images import embed_in_batches

    embedded = embed_in_batches(
        model,
        data.images(),
        data.open_image,
        total=len(data),
        batch_size=settings.batch_size,
        workers=settings.workers,
        label=label,
        show_progress=show_progress,
    )
    unreadable = [
        {"key": data.keys[p], "view_index": int(data.view_index[p]), "error": e} for p, e in embedded.unreadable
    ]
    rows = embedded.rows
    if len(rows) == 0:
        raise ConfigError(f"{data.export_dir}: none of the {len(data)} views of split {data.split!r} could be read")
    position = {name: i for i, name in enumerate(data.classnames)}
    targets = np.asarray([position[data.categories[r]] for r in rows])
    logits = 100.0 * embedded.embeddings @ text_weights.T
    top = metrics.topk_predictions(logits).cpu().numpy()
    hit1, hit5 = metrics.hits(top, targets)

    azimuth, elevation = data.azimuth_deg[rows], data.elevation_deg[rows]
    azimuth_index = metrics.azimuth_bin_index(azimuth, settings.azimuth_bin_deg)
    elevation_index = metrics.elevation_bin_index(elevation, settings.elevation_bin_deg)
    canonical = metrics.canonical_mask(
        azimuth, elevation, settings.canonical_elevation_deg, settings.canonical_azimuth_deg
    )

    keys = [data.keys[r] for r in rows]
    object_ids, groups = metrics.group_rows(keys)
    retrieval = metrics.same_object_retrieval(embedded.embeddings, object_ids)
    nearest = retrieval.pop("nearest")

    result = metrics.accuracy(hit1, hit5)
    result.update(
        classes=len(data.classnames),
        objects=len(groups),
        elevation_bins=metrics.binned_accuracy(
            metrics.elevation_bins(settings.elevation_bin_deg), elevation_index, hit1, hit5
        ),
        azimuth_bins=metrics.binned_accuracy(metrics.azimuth_bins(settings.azimuth_bin_deg), azimuth_index, hit1, hit5),
        canonical=metrics.accuracy(hit1[canonical], hit5[canonical]),
        extreme=metrics.accuracy(hit1[~canonical], hit5[~canonical]),
        invariance={
            **metrics.mean_cosine_to_centre(embedded.embeddings, groups),
            **metrics.centre_contrast(embedded.embeddings, groups),
        },
        retrieval=retrieval,
        views=[
            {
                "key": keys[i],
                "view_index": int(data.view_index[r]),
                "category": data.categories[r],
                "azimuth_deg": float(azimuth[i]),
                "elevation_deg": float(elevation[i]),
                "azimuth_bin": int(azimuth_index[i]),
                "elevation_bin": int(elevation_index[i]),
                "canonical": bool(canonical[i]),
                "prediction": data.classnames[top[i, 0]],
                "top1": bool(hit1[i]),
                "top5": bool(hit5[i]),
                "nearest": None
                if nearest[i] < 0
                else {"key": keys[nearest[i]], "view_index": int(data.view_index[rows[nearest[i]]])},
            }
            for i, r in enumerate(rows)
        ],
    )
    return result, unreadable


def _export_categories(export_dir: Path) -> list[str]:
    try:
        return list(json.loads((export_dir / "export.json").read_text("utf-8")).get("categories") or {})
    except FileNotFoundError:
        return []


def _concat(tables):
    import pyarrow as pa

    return pa.concat_tables(tables)
