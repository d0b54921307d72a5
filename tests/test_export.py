"""The export loads with `datasets` and agrees, row by row, with the manifests it came from."""

from __future__ import annotations

import json

import pytest

from conftest import load_export

from mvcap_build.dataset import DatasetRoot, read_caption_manifest, read_render_manifest
from mvcap_build.export.config import ExportConfig
from mvcap_build.export.stage import run_export


@pytest.fixture(scope="module")
def exported(captioned_root, tmp_path_factory):
    import shutil

    root = tmp_path_factory.mktemp("export") / "root"
    shutil.copytree(captioned_root, root)
    summary = run_export(DatasetRoot(root), ExportConfig(rows_per_parquet=5, name="test-set"), show_progress=False)
    return DatasetRoot(root), summary


def test_every_row_matches_the_manifests(exported):
    import datasets

    root, summary = exported
    table = load_export(root.export_dir)
    assert isinstance(table.features["image"], datasets.Image)
    renders = {m.key: m for m in map(read_render_manifest, root.view_manifests())}
    captions = {m.key: {r.view_index: r for r in m.rows} for m in map(read_caption_manifest, root.caption_manifests())}
    assert len(table) == sum(len(m.views) for m in renders.values()) == summary.views == 12
    keys = sorted(renders)
    seen = set()
    for row in table.cast_column("image", datasets.Image(decode=False)):
        key, view_index = row["key"], row["view_index"]
        assert row["obj_id"] == keys.index(key)
        assert row["img_id"] == row["obj_id"] * 100 + view_index
        view = renders[key].views[view_index]
        assert row["path"] == f"views/{key}/{view.file}"
        assert row["image"]["bytes"] == (root.path / row["path"]).read_bytes()
        assert row["caption"] == captions[key][view_index].caption
        assert (row["azimuth_deg"], row["elevation_deg"], row["c2w"]) == (view.azimuth_deg, view.elevation_deg, view.c2w)
        assert row["category"] == renders[key].category
        seen.add((key, view_index))
    assert len(seen) == len(table)  # no duplicates


def test_metadata_json_uses_mvcap_schema(exported):
    root, _ = exported
    rows = json.loads((root.export_dir / "metadata" / "metadata_00000.json").read_text())
    assert list(rows[0])[:4] == ["path", "caption", "obj_id", "img_id"]
    assert sorted({r["obj_id"] for r in rows}) == list(range(3))
    assert len({r["img_id"] for r in rows}) == len(rows)


def test_card_and_shards(exported):
    root, summary = exported
    assert summary.parquet_files == 3  # 12 rows, 5 per shard
    card = (root.export_dir / "README.md").read_text()
    assert card.startswith("---\n") and "configs:" in card and "data/train-*.parquet" in card
    assert "template" in card and "not by a model" in card
    assert "| chair | 1 |" in card


def test_export_leaves_out_uncaptioned_objects_and_rebuilds_cleanly(exported, copy_of):
    root = DatasetRoot(copy_of(exported[0].path))
    root.caption_manifest("demo/mug-000").unlink()
    summary = run_export(root, ExportConfig(), show_progress=False)
    assert summary.incomplete == ["demo/mug-000"] and summary.objects == 2
    assert sorted(p.name for p in (root.export_dir / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert [p.name for p in root.path.iterdir() if p.name.startswith(".tmp")] == []


def test_nothing_to_export_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="nothing to export"):
        run_export(DatasetRoot(tmp_path), ExportConfig(), show_progress=False)
