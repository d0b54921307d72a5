"""The local folder source's categories: from the CSV, else a readable name made from the file
name, and never a silent `unknown` (the shared fixtures' CSV gives `notenoughindices.obj`, which
renders one triangle, the category `unknown`)."""

from __future__ import annotations

import csv
import shutil

import pytest
from conftest import MESHES, caption, export, load_export, render, tiny_render

from mvcap_build.dataset import DatasetRoot, read_objects
from mvcap_build.errors import SourceError
from mvcap_build.render.config import LocalSourceConfig
from mvcap_build.render.sources import list_objects, listing_notes


def _fixture_rows(*names: str) -> list[dict]:
    with (MESHES / "categories.csv").open(newline="") as handle:
        rows = {row["file"]: row for row in csv.DictReader(handle)}
    return [rows[name] for name in names]


def _folder_with(tmp_path, *names: str, csv_rows: list[dict] | None = None):
    folder = tmp_path / "meshes"
    folder.mkdir()
    for name in names:
        shutil.copy(MESHES / name, folder / name)
    if csv_rows is not None:
        lines = ["file,category", *(f"{row['file']},{row['category']}" for row in csv_rows)]
        (folder / "categories.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("CesiumMilkTruck.glb", "cesium milk truck"),
        ("office_chair_03.obj", "office chair"),
        ("chairs/Chair2.ply", "chair"),
        ("TestScene.gltf", "test scene"),
        ("notenoughindices.obj", "notenoughindices"),
        ("007.stl", "007"),
    ],
)
def test_a_category_from_a_file_name_reads_as_words(name, category):
    from mvcap_build.render.sources.local import category_from_file_name

    assert category_from_file_name(name) == category


def test_a_folder_without_a_csv_lists_every_mesh_named_from_its_file(tmp_path):
    folder = _folder_with(tmp_path, "Duck.glb", "CesiumMilkTruck.glb", "notenoughindices.obj")
    (folder / "sub").mkdir()
    shutil.copy(MESHES / "cubevc.glb", folder / "sub" / "cubevc.glb")
    (folder / "notes.txt").write_text("not a mesh")
    config = LocalSourceConfig(folder=folder)
    objects = list_objects(config)
    assert {o.source_id: o.category for o in objects} == {
        "CesiumMilkTruck.glb": "cesium milk truck",
        "Duck.glb": "duck",
        "notenoughindices.obj": "notenoughindices",
        "sub/cubevc.glb": "cubevc",
    }
    [note] = listing_notes(config, objects)
    assert "4 object(s) named from their file names" in note and "no " + str(folder / "categories.csv") in note
    with pytest.raises(SourceError, match="not found"):  # a CSV that was named must exist
        list_objects(LocalSourceConfig(folder=folder, categories_csv=folder / "missing.csv"))


def test_an_unknown_category_is_named_from_the_file_and_the_render_summary_says_so(tmp_path):
    """The fixtures' own CSV rows: Duck.glb is a duck; notenoughindices.obj is `unknown` there."""
    rows = _fixture_rows("Duck.glb", "notenoughindices.obj")
    assert rows[1]["category"] == "unknown"
    folder = _folder_with(tmp_path, "Duck.glb", "notenoughindices.obj", csv_rows=rows)
    root = DatasetRoot(tmp_path / "root")
    summary = render(root, tiny_render(source={"kind": "local", "folder": str(folder)}, views={"num_views": 2}))
    assert summary.done == 2  # the one triangle renders
    objects = read_objects(root)
    assert objects["local/Duck.glb"].category == "duck" and not objects["local/Duck.glb"].attrs
    named = objects["local/notenoughindices.obj"]
    assert named.category == "notenoughindices" and named.attrs["category_from"] == "file name"
    assert any(
        "1 object(s) named from their file names" in note and "notenoughindices.obj -> 'notenoughindices'" in note
        for note in summary.notes
    ), summary.notes
    assert "named from their file names" in str(summary)  # what the CLI prints
    caption(root)
    export(root)
    assert set(load_export(root.export_dir)["category"]) == {"duck", "notenoughindices"}
