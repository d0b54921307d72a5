"""The stage contract: keys, safe paths, shards, atomic commits and the failure ledger."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mvcap_build.dataset import DatasetRoot, FailureLedger, ObjectRecord, make_key, read_objects, write_objects_table
from mvcap_build.dataset.atomic import atomic_write_json, commit_dir, make_staging_dir, remove_stale_staging
from mvcap_build.dataset.keys import InvalidKeyError, in_shard, key_relpath, path_component, split_key
from mvcap_build.dataset.objects_table import ManifestError


@pytest.mark.parametrize("source_id", ["../../etc/passwd", "a/b/../../c", ".hidden", "x" * 300, "a b/c d.glb", ".."])
def test_any_source_id_stays_inside_the_root(tmp_path, source_id):
    root = DatasetRoot(tmp_path)
    path = root.view_dir(make_key("local", source_id))
    assert path.resolve().is_relative_to((tmp_path / "views" / "local").resolve())
    assert path.parent == root.path / "views" / "local"
    assert not path.name.startswith(".")


def test_readable_ids_are_kept_and_unsafe_ones_do_not_collide():
    assert key_relpath("demo/chair-000") == "demo/chair-000"
    assert path_component("a/b") != path_component("a_b")


def test_bad_keys_are_rejected():
    for bad in ("noslash", "Bad/x", "demo/", "demo/ padded"):
        with pytest.raises(InvalidKeyError):
            split_key(bad)


def test_shards_partition_the_keys_stably():
    keys = [f"demo/obj-{i}" for i in range(200)]
    shards = [[k for k in keys if in_shard(k, s, 4)] for s in range(4)]
    assert sorted(sum(shards, [])) == sorted(keys)
    assert all(len(s) > 20 for s in shards)
    # A key's shard does not depend on which other keys exist.
    assert [k for k in keys[:50] if in_shard(k, 1, 4)] == [k for k in shards[1] if k in keys[:50]]
    with pytest.raises(ValueError):
        in_shard("demo/x", 4, 4)


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "a" / "b.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert target.read_text().strip().endswith("}")
    assert os.listdir(target.parent) == ["b.json"]


def test_commit_dir_replaces_stale_and_cleans_leftovers(tmp_path):
    final = tmp_path / "views" / "obj"
    leftover = make_staging_dir(final)
    (leftover / "half.png").write_bytes(b"x")
    remove_stale_staging(final)
    assert not leftover.exists()
    staging = make_staging_dir(final)
    (staging / "000.png").write_bytes(b"png")
    commit_dir(staging, final)
    assert sorted(p.name for p in final.parent.iterdir()) == ["obj"]
    assert (final / "000.png").read_bytes() == b"png"


def test_ledger_records_reasons_and_clears_on_success(tmp_path):
    ledger = FailureLedger(DatasetRoot(tmp_path), "render")
    ledger.record("local/a.obj", "no_geometry", "the file imported no mesh")
    assert ledger.has("local/a.obj")
    [entry] = list(ledger)
    assert (entry.key, entry.stage, entry.reason) == ("local/a.obj", "render", "no_geometry")
    ledger.clear("local/a.obj")
    assert not ledger.has("local/a.obj") and list(ledger) == []


def test_objects_table_round_trip_and_duplicates(tmp_path):
    root = DatasetRoot(tmp_path)
    records = [
        ObjectRecord(key=f"demo/{n}", source="demo", source_id=n, category="chair", asset={"kind": "procedural"})
        for n in ("b", "a")
    ]
    write_objects_table(root, "demo", records)
    assert list(read_objects(root)) == ["demo/a", "demo/b"]
    with pytest.raises(ManifestError, match="twice"):
        write_objects_table(root, "demo", records + records[:1])
    Path(root.objects_table("demo")).write_text('{"key": "demo/a"}\n')
    with pytest.raises(ManifestError, match="demo.jsonl:1"):
        read_objects(root)


def test_readme_documents_every_recorded_field():
    """The layout section of README.md names every field a stage writes (keep the two in step)."""
    from mvcap_build.dataset.export_schema import COLUMNS
    from mvcap_build.dataset.records import (
        CaptionManifest,
        CaptionRow,
        CaptureProducer,
        FailureRecord,
        RenderProducer,
        ViewRecord,
        ViewsManifest,
    )

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    layout = readme[readme.index("## Dataset root layout") :]
    for model in (
        ViewsManifest,
        ViewRecord,
        RenderProducer,
        CaptureProducer,
        CaptionManifest,
        CaptionRow,
        FailureRecord,
    ):
        for name in model.model_fields:
            assert name in layout, f"README's layout section does not mention {model.__name__}.{name}"
    for column in COLUMNS:
        assert f"`{column.name}`" in layout, f"README's layout section does not mention export column {column.name}"
    assert "Fingerprint" in layout and "views_digest" in layout


def test_committed_files_and_folders_follow_the_umask(tmp_path):
    """mkstemp/mkdtemp make 0600/0700 entries; a root shared by a lab must be readable by it."""
    import os
    import stat

    from mvcap_build.dataset import atomic_write_json
    from mvcap_build.dataset.atomic import make_staging_dir

    umask = os.umask(0)
    os.umask(umask)
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    staging = make_staging_dir(tmp_path / "unit")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(staging.stat().st_mode) == 0o777 & ~umask
    if umask == 0o022:
        assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
