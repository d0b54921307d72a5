"""The export loads with `datasets`, agrees row by row with the manifests it came from, follows
the one declared schema, and is byte-identical when the root has not changed."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import caption, export, load_export

from mvcap_build.caption.backends.base import CaptionResult
from mvcap_build.dataset import DatasetRoot, read_caption_manifest, read_objects, read_views_manifest
from mvcap_build.dataset.export_schema import COLUMNS, IMAGE_COLUMN, MVCAP_COLUMNS, TRAINING_COLUMNS
from mvcap_build.errors import ConfigError


@pytest.fixture(scope="module")
def exported(captioned_root, tmp_path_factory):
    import shutil

    root = tmp_path_factory.mktemp("export") / "root"
    shutil.copytree(captioned_root, root)
    summary = export(root, rows_per_parquet=5, name="test-set")
    return DatasetRoot(root), summary


def test_every_row_matches_the_manifests(exported):
    import datasets

    root, summary = exported
    table = load_export(root.export_dir)
    assert isinstance(table.features["image"], datasets.Image)
    assert list(table.features) == [IMAGE_COLUMN, *(c.name for c in COLUMNS)]  # the declared schema
    views = {m.key: m for m in map(read_views_manifest, root.view_manifests())}
    captions = {m.key: {r.view_index: r for r in m.rows} for m in map(read_caption_manifest, root.caption_manifests())}
    objects = read_objects(root)
    assert len(table) == sum(len(m.views) for m in views.values()) == summary.items == 12
    keys = sorted(views)
    seen = set()
    for row in table.cast_column("image", datasets.Image(decode=False)):
        key, view_index = row["key"], row["view_index"]
        assert row["obj_id"] == keys.index(key)
        assert row["img_id"] == row["obj_id"] * 100 + view_index
        view = views[key].views[view_index]
        assert row["path"] == f"views/{key}/{view.file}"
        assert row["image"]["bytes"] == (root.path / row["path"]).read_bytes()
        assert row["caption"] == captions[key][view_index].caption
        assert (row["azimuth_deg"], row["elevation_deg"], row["c2w"]) == (
            view.azimuth_deg,
            view.elevation_deg,
            view.c2w,
        )
        assert row["category"] == objects[key].category
        seen.add((key, view_index))
    assert len(seen) == len(table)  # no duplicates


def test_metadata_json_uses_mvcap_schema(exported):
    root, _ = exported
    rows = json.loads((root.export_dir / "metadata" / "metadata_00000.json").read_text())
    assert tuple(rows[0])[:4] == MVCAP_COLUMNS
    assert "c2w" not in rows[0] and set(rows[0]) < {c.name for c in COLUMNS}
    assert sorted({r["obj_id"] for r in rows}) == list(range(3))
    assert len({r["img_id"] for r in rows}) == len(rows)
    assert set(TRAINING_COLUMNS) <= {IMAGE_COLUMN, *(c.name for c in COLUMNS)}


def test_card_and_shards(exported):
    root, _ = exported
    assert len(list((root.export_dir / "data").glob("*.parquet"))) == 3  # 12 rows, 5 per shard
    card = (root.export_dir / "README.md").read_text()
    assert card.startswith("---\n") and "configs:" in card and "data/train-*.parquet" in card
    assert "template" in card and "not by a model" in card
    assert "| chair | 1 |" in card
    assert "3 objects: Blender" in card and "CYCLES (4 spp, 32 px, CPU NONE)" in card  # who made the views
    assert "3 objects: backend `template`, model `none`" in card  # who wrote the captions
    for column in COLUMNS:  # the card's column table comes from the schema
        assert f"| `{column.name}` |" in card


def _digests(folder) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_exporting_an_unchanged_root_again_is_byte_identical(exported, copy_of):
    root = DatasetRoot(copy_of(exported[0].path))
    before = _digests(root.export_dir)
    export(root, rows_per_parquet=5, name="test-set")
    assert _digests(root.export_dir) == before
    assert any(name.endswith(".parquet") for name in before)


def test_export_leaves_out_uncaptioned_objects_and_rebuilds_cleanly(exported, copy_of):
    root = DatasetRoot(copy_of(exported[0].path))
    root.caption_manifest("demo/mug-000").unlink()
    summary = export(root)
    assert summary.done == 2 and any("1 objects without complete captions" in n for n in summary.notes)
    assert json.loads((root.export_dir / "export.json").read_text())["incomplete_objects"] == ["demo/mug-000"]
    assert sorted(p.name for p in (root.export_dir / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert [p.name for p in root.path.iterdir() if p.name.startswith(".tmp")] == []


class _OtherModel:
    name, model_id = "hf", "someone/other-model"

    def caption(self, requests):
        return [CaptionResult.ok(f"a {r.category} seen in view {r.view_index}") for r in requests]


def test_mixed_caption_models_are_refused_unless_allowed(exported, copy_of):
    """Two shards captioned with different models (each shard only checks its own units)."""
    import shutil

    root = DatasetRoot(copy_of(exported[0].path))
    shutil.rmtree(root.path / "captions")
    caption(root, shard=0, num_shards=3)  # chair and mug
    caption(root, backend=_OtherModel(), shard=1, num_shards=3)  # car
    by_model = {read_caption_manifest(p).rows[0].model for p in root.caption_manifests()}
    assert by_model == {"none", "someone/other-model"}
    with pytest.raises(ConfigError, match="more than one backend, model or prompt") as refused:
        export(root)
    assert "someone/other-model" in str(refused.value) and "--allow-mixed-captions" in str(refused.value)
    summary = export(root, allow_mixed_captions=True)
    assert summary.done == 3
    card = (root.export_dir / "README.md").read_text()
    assert "objects: backend `hf`, model `someone/other-model`" in card and "objects: backend `template`" in card


def test_nothing_to_export_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="nothing to export"):
        export(tmp_path)


def test_card_lists_licences_and_attribution_travels_with_the_data(exported, copy_of):
    root = DatasetRoot(copy_of(exported[0].path))
    table = root.objects_table("demo")
    rows = [json.loads(line) for line in table.read_text().splitlines()]
    licences = {"demo/car-000": ("by", "Ada"), "demo/chair-000": ("cc0", "Bo")}  # the mug records none
    for row in rows:
        if row["key"] in licences:
            code, author = licences[row["key"]]
            row["attrs"] = {
                "license": code,
                "author": author,
                "name": row["key"],
                "source_url": f"https://example.org/{row['source_id']}",
            }
    table.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    export(root)
    card = (root.export_dir / "README.md").read_text()
    assert "| by | 1 |" in card and "| cc0 | 1 |" in card and "| none recorded | 1 |" in card
    assert "1 objects are under licences that require attribution" in card
    lines = (root.export_dir / "attribution.csv").read_text().splitlines()
    assert lines[0] == "key,name,author,author_url,source_url,license"
    assert lines[1:] == [
        "demo/car-000,demo/car-000,Ada,,https://example.org/car-000,by",
        "demo/chair-000,demo/chair-000,Bo,,https://example.org/chair-000,cc0",
    ]


def test_object_level_splits_size_rolled_shards_and_viewer_row_groups(captioned_root, copy_of):
    import datasets
    import pyarrow.parquet as pq

    from mvcap_build.export.shards import split_of

    root = DatasetRoot(copy_of(captioned_root))
    fractions = {"train": 0.5, "validation": 0.25, "test": 0.25}
    expected = {key: split_of(key, fractions) for key in ("demo/car-000", "demo/chair-000", "demo/mug-000")}
    one_image = max(p.stat().st_size for p in (root.path / "views").rglob("*.png"))
    export(root, splits=fractions, max_shard_bytes=2 * one_image, row_group_rows=2)
    files = sorted(p.name for p in (root.export_dir / "data").glob("*.parquet"))
    for split in set(expected.values()):
        views = 4 * sum(1 for s in expected.values() if s == split)
        shards = [f for f in files if f.startswith(f"{split}-")]
        assert len(shards) >= views // 2  # at most two images' bytes per shard
        assert all(f.endswith(f"-of-{len(shards):05d}.parquet") for f in shards)
        for name in shards:
            metadata = pq.ParquetFile(root.export_dir / "data" / name).metadata
            assert all(metadata.row_group(i).num_rows <= 2 for i in range(metadata.num_row_groups))
    rows = json.loads((root.export_dir / "metadata" / "metadata_00000.json").read_text())
    assert {r["key"]: r["split"] for r in rows} == expected  # every view of an object in its object's split
    card = (root.export_dir / "README.md").read_text()
    for split in set(expected.values()):
        assert f"split: {split}" in card and f"data/{split}-*.parquet" in card
    loaded = datasets.load_dataset(str(root.export_dir), cache_dir=str(root.path / ".hf-cache"))
    assert {name: len(part) for name, part in loaded.items()} == {
        s: 4 * list(expected.values()).count(s) for s in set(expected.values())
    }
    assert split_of("demo/car-000", fractions) == split_of("demo/car-000", fractions)  # stable


def test_splits_flag_sets_the_object_level_splits(captioned_root, copy_of):
    from typer.testing import CliRunner

    from mvcap_build.cli import app
    from mvcap_build.export.shards import split_of

    root = DatasetRoot(copy_of(captioned_root))
    result = CliRunner().invoke(
        app, ["export", str(root.path), "--quiet", "--splits", "train=0.5, validation=0.25,test=0.25"]
    )
    assert result.exit_code == 0, result.output
    fractions = {"train": 0.5, "validation": 0.25, "test": 0.25}
    expected = {key: split_of(key, fractions) for key in ("demo/car-000", "demo/chair-000", "demo/mug-000")}
    rows = json.loads((root.export_dir / "metadata" / "metadata_00000.json").read_text())
    assert {r["key"]: r["split"] for r in rows} == expected
    assert json.loads((root.export_dir / "export.json").read_text())["config"]["splits"] == fractions
    assert {p.name.split("-")[0] for p in (root.export_dir / "data").glob("*.parquet")} == set(expected.values())


@pytest.mark.parametrize(
    "value, message",
    [
        ("train=0.9,test=0.2", "the fractions add up to 1.1, not 1"),
        ("train=0.5", "the fractions add up to 0.5, not 1"),
        ("train:0.9,test:0.1", "'train:0.9' is not NAME=FRACTION"),
        ("train=0.9,,test=0.1", "'' is not NAME=FRACTION"),
        ("=1", "'=1' is not NAME=FRACTION"),
        ("train=ninety", "the fraction of 'train' is 'ninety', not a number"),
        ("train=1.5,test=-0.5", "the fraction of 'train' is 1.5, not between 0 and 1"),
        ("train=0.5,train=0.5", "'train' is given twice"),
        ("tr/ain=1", "letters, digits and underscores, not 'tr/ain'"),
    ],
)
def test_bad_splits_are_one_line(captioned_root, copy_of, value, message):
    from typer.testing import CliRunner

    from mvcap_build.cli import app

    root = copy_of(captioned_root)
    result = CliRunner().invoke(app, ["export", str(root), "--splits", value])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "--splits" in errors[0], result.output
    assert "Traceback" not in result.output and not (root / "export").exists()


def test_train_ovt_reads_only_the_train_split(captioned_root, copy_of):
    from mvcap_build.export.shards import split_of
    from mvcap_build.train.data import ExportData

    root = DatasetRoot(copy_of(captioned_root))
    fractions = {"train": 0.5, "validation": 0.5}
    export(root, splits=fractions)
    train_objects = [k for k in ("demo/car-000", "demo/chair-000", "demo/mug-000") if split_of(k, fractions) == "train"]
    data = ExportData.open(root.export_dir)
    assert data.dataset.num_rows == 4 * len(train_objects) and data.num_objects == len(train_objects)


def test_mvcap_released_layout_for_the_original_ovt_code(captioned_root, copy_of):
    root = DatasetRoot(copy_of(captioned_root))
    export(root, mvcap_layout=True)
    folder = root.export_dir / "mvcap"
    entries = json.loads((folder / "metadata.json").read_text())
    assert len(entries) == 12 and all(list(e) == ["path", "caption", "obj_id", "img_id"] for e in entries)
    parquet_rows = json.loads((root.export_dir / "metadata" / "metadata_00000.json").read_text())
    by_img = {r["img_id"]: r for r in parquet_rows}
    for entry in entries:
        image = folder / entry["path"]
        source = root.path / by_img[entry["img_id"]]["path"]
        assert image.read_bytes() == source.read_bytes()
        assert (entry["caption"], entry["obj_id"]) == (
            by_img[entry["img_id"]]["caption"],
            by_img[entry["img_id"]]["obj_id"],
        )


def test_train_ovt_reads_the_mvcap_layout_like_the_parquet(captioned_root, copy_of):
    from mvcap_build.train.data import ExportData

    root = DatasetRoot(copy_of(captioned_root))
    export(root, mvcap_layout=True)
    from_parquet, from_mvcap = ExportData.open(root.export_dir), ExportData.open(root.export_dir / "mvcap")
    assert from_mvcap.num_objects == from_parquet.num_objects == 3
    assert sorted(from_mvcap.captions()) == sorted(from_parquet.captions())
    row = from_mvcap.dataset[0]
    image = from_mvcap.load_image(row["image"])
    assert image.size == (32, 32) and row["view_index"] == 0


def test_a_missing_or_broken_view_file_stops_export_with_one_line(captioned_root, copy_of):
    import subprocess
    import sys

    root = copy_of(captioned_root)
    views = sorted((root / "views").glob("*/*/*.png"))
    saved = views[1].read_bytes()
    views[1].unlink()
    result = subprocess.run([sys.executable, "-m", "mvcap_build", "export", str(root)], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "missing or empty" in result.stderr and views[1].relative_to(root).as_posix() in result.stderr
    assert "Traceback" not in result.stderr and not (root / "export").exists()

    views[1].write_bytes(saved[: len(saved) // 3])  # a truncated PNG: only decoding finds it
    result = subprocess.run(
        [sys.executable, "-m", "mvcap_build", "export", str(root), "--image-size", "16"], capture_output=True, text=True
    )
    assert result.returncode == 2, result.stderr
    assert "not a readable image" in result.stderr and views[1].name in result.stderr
    assert "Traceback" not in result.stderr and not (root / "export").exists()
