"""The one path rule for names inside input data (`mvcap_build.dataset.safe_paths`), and that the
mesh folder source follows it too; the capture readers' own cases are in test_extract_nerf.py and
test_extract_mvimgnet.py (a `..` that stays inside is read by both, one that leaves by neither)."""

from __future__ import annotations

import shutil

import pytest
from conftest import MESHES

from mvcap_build.dataset.safe_paths import inside_name, resolves_inside
from mvcap_build.errors import SourceError
from mvcap_build.render.config import LocalSourceConfig
from mvcap_build.render.sources import list_objects


@pytest.mark.parametrize(
    ("name", "inside"),
    [
        ("./train/r_0", "train/r_0"),
        ("a/../b", "b"),
        ("images/../images/001.jpg", "images/001.jpg"),
        ("a\\b\\.\\c.png", "a/b/c.png"),  # written on Windows
        ("a//b", "a/b"),
        ("..", None),
        ("../x", None),
        ("a/../../b", None),
        ("a/../../a/b", None),  # climbs above the folder on the way, even if it comes back
        ("..\\x", None),
        ("/etc/passwd", None),
        ("\\x", None),
        ("C:/x", None),
        ("c:x", None),
        ("a\x00b", None),
        (".", None),  # names the folder itself, not a file in it
        ("a/..", None),
        ("", None),
    ],
)
def test_a_name_is_normalised_and_refused_only_when_it_leaves(name, inside):
    assert inside_name(name) == inside


def test_resolved_paths_follow_symlinks(tmp_path):
    folder, outside = tmp_path / "object", tmp_path / "outside.png"
    (folder / "train").mkdir(parents=True)
    outside.write_bytes(b"x")
    (folder / "train" / "a.png").write_bytes(b"x")
    (folder / "out.png").symlink_to(outside)
    (folder / "in.png").symlink_to(folder / "train" / "a.png")
    assert resolves_inside(folder, folder / "train" / "a.png") and resolves_inside(folder, folder / "in.png")
    assert not resolves_inside(folder, folder / "out.png")
    linked = tmp_path / "linked"
    linked.symlink_to(folder, target_is_directory=True)  # the folder itself may be a link
    assert resolves_inside(linked, linked / "train" / "a.png")


def _mesh_folder(tmp_path, *rows: str):
    folder = tmp_path / "meshes"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(MESHES / "Duck.glb", folder / "Duck.glb")
    (folder / "categories.csv").write_text("\n".join(["file,category", *rows]) + "\n")
    return folder


def test_the_mesh_folder_source_reads_a_dot_dot_that_stays_inside(tmp_path):
    folder = _mesh_folder(tmp_path, "sub/../Duck.glb,duck")
    [duck] = list_objects(LocalSourceConfig(folder=folder))
    assert duck.asset["path"] == str((folder / "Duck.glb").resolve())


@pytest.mark.parametrize("name", ["../outside.glb", "sub/../../outside.glb", "ABSOLUTE", "out.glb"])
def test_the_mesh_folder_source_refuses_names_and_links_that_leave(tmp_path, name):
    shutil.copy(MESHES / "Duck.glb", tmp_path / "outside.glb")
    folder = _mesh_folder(tmp_path, f"{name},duck".replace("ABSOLUTE", str(tmp_path / "meshes" / "Duck.glb")))
    (folder / "out.glb").symlink_to(tmp_path / "outside.glb")
    with pytest.raises(SourceError, match="outside"):
        list_objects(LocalSourceConfig(folder=folder))
