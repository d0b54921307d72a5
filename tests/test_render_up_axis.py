"""Up axes of local mesh files: Y-up formats must stand upright in Blender's Z-up world.

The test meshes are a tower (a wide, low base under a thin, tall column), written by the tests
with its up along a chosen file axis. Seen from the side it is taller than wide and wider at the
bottom; lying on its side (the file's up axis ignored) or upside down it is neither.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import render, tiny_render
from PIL import Image

from mvcap_build.dataset import DatasetRoot, read_objects, read_views_manifest

# Canonical tower, Z-up: base 0.8 x 0.8 x 0.2, column 0.2 x 0.2 x 0.8 on top of it.
_BOXES = [((-0.4, -0.4, 0.0), (0.4, 0.4, 0.2)), ((-0.1, -0.1, 0.2), (0.1, 0.1, 1.0))]
_QUADS = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]

# Canonical (Z-up) point -> file coordinates with this up axis (proper rotations only).
_TO_FILE = {
    "Z": lambda x, y, z: (x, y, z),
    "Y": lambda x, y, z: (x, z, -y),  # up is the file's +Y, the front (-Y) its +Z
    "-Y": lambda x, y, z: (x, -z, y),
}


def tower(up: str) -> tuple[list[tuple[float, float, float]], list[tuple[int, int, int]]]:
    """Vertices (in file coordinates) and triangles of the tower with `up` as its up axis."""
    vertices, triangles = [], []
    for low, high in _BOXES:
        first = len(vertices)
        for x in (low[0], high[0]):
            for y in (low[1], high[1]):
                for z in (low[2], high[2]):
                    vertices.append(_TO_FILE[up](x, y, z))
        for a, b, c, d in _QUADS:
            triangles += [(first + a, first + b, first + c), (first + a, first + c, first + d)]
    return vertices, triangles


def write_ply(path, up: str) -> None:
    vertices, triangles = tower(up)
    header = (
        f"ply\nformat ascii 1.0\nelement vertex {len(vertices)}\nproperty float x\nproperty float y\n"
        f"property float z\nelement face {len(triangles)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    body = "".join(f"{x} {y} {z}\n" for x, y, z in vertices) + "".join(f"3 {a} {b} {c}\n" for a, b, c in triangles)
    path.write_text(header + body)


def write_obj(path, up: str) -> None:
    vertices, triangles = tower(up)
    path.write_text(
        "".join(f"v {x} {y} {z}\n" for x, y, z in vertices)
        + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in triangles)
    )


def write_stl(path, up: str) -> None:
    vertices, triangles = tower(up)
    facets = []
    for tri in triangles:
        corners = "".join(f"      vertex {x} {y} {z}\n" for x, y, z in (vertices[i] for i in tri))
        facets.append(f"  facet normal 0 0 0\n    outer loop\n{corners}    endloop\n  endfacet\n")
    path.write_text("solid tower\n" + "".join(facets) + "endsolid tower\n")


def write_gltf(path, up: str) -> None:
    vertices, triangles = tower(up)
    positions = np.asarray(vertices, dtype="<f4")
    indices = np.asarray(triangles, dtype="<u2").ravel()
    blob = positions.tobytes() + indices.tobytes()
    gltf = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1}]}],
        "buffers": [
            {"byteLength": len(blob), "uri": "data:application/octet-stream;base64," + base64.b64encode(blob).decode()}
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": positions.nbytes},
            {"buffer": 0, "byteOffset": positions.nbytes, "byteLength": indices.nbytes},
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(positions),
                "type": "VEC3",
                "min": positions.min(axis=0).tolist(),
                "max": positions.max(axis=0).tolist(),
            },
            {"bufferView": 1, "componentType": 5123, "count": len(indices), "type": "SCALAR"},
        ],
    }
    path.write_text(json.dumps(gltf))


WRITERS = {".ply": write_ply, ".obj": write_obj, ".stl": write_stl, ".gltf": write_gltf}


def mesh_folder(folder, rows: list[tuple[str, str, str | None]]):
    """Towers `(file name, its up axis, the CSV's up_axis cell or None)` and their categories.csv."""
    folder.mkdir(parents=True)
    for name, up, _ in rows:
        WRITERS[os.path.splitext(name)[1]](folder / name, up)
    with_column = any(cell is not None for _, _, cell in rows)
    lines = ["file,category,up_axis" if with_column else "file,category"]
    lines += [f"{name},tower,{cell or ''}" if with_column else f"{name},tower" for name, _, cell in rows]
    (folder / "categories.csv").write_text("\n".join(lines) + "\n")
    return folder


def side_views(**source) -> dict:
    """Four views around the object at the horizon (azimuth 0, 90, 180, 270)."""
    views = {"num_views": 4, "distribution": "orbit", "orbit_elevations_deg": [0.0]}
    return tiny_render(source={"kind": "local", **source}, resolution=64, samples=4, views=views)


def silhouette(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.getchannel("A")) > 127


def assert_upright_tower(root: DatasetRoot, key: str) -> None:
    """From every side: taller than wide, and the base (bottom rows) wider than the column."""
    manifest = read_views_manifest(root.view_manifest(key))
    assert [round(v.elevation_deg) for v in manifest.views] == [0, 0, 0, 0]
    for view in manifest.views:
        mask = silhouette(root.view_dir(key) / view.file)
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert height > 1.1 * width, f"{key} view {view.view_index}: {height} px tall, {width} px wide (lying down?)"
        widths = mask[rows].sum(axis=1)
        quarter = max(1, len(rows) // 4)
        assert widths[-quarter:].mean() > 2 * widths[:quarter].mean(), (
            f"{key} view {view.view_index}: not wider at the bottom (upside down?)"
        )


def test_y_up_ply_and_the_stanford_bunny_stand_upright_by_default(tmp_path, meshes_dir):
    """`auto`: PLY is read Y-up (the scanning convention), so a Y-up PLY tower stands, and so does
    the Stanford bunny (lying on its side, every view is as tall as the bunny is deep, 0.12, and
    never taller than wide; standing, its front view is 0.153 tall and 0.121 wide)."""
    folder = mesh_folder(tmp_path / "meshes", [("tower.ply", "Y", None)])
    root = DatasetRoot(tmp_path / "root")
    assert render(root, side_views(folder=str(folder))).done == 1
    assert_upright_tower(root, "local/tower.ply")
    manifest = read_views_manifest(root.view_manifest("local/tower.ply"))
    assert manifest.stats["up_axis"] == "Y" and manifest.fingerprint.fields["asset.up_axis"] == "Y"
    assert read_objects(root)["local/tower.ply"].asset["up_axis"] == "Y"  # the objects table says it too

    (tmp_path / "bunny.csv").write_text("file,category\nbunny.ply,rabbit\n")
    bunny = DatasetRoot(tmp_path / "bunny")
    assert render(bunny, side_views(folder=str(meshes_dir), categories_csv=str(tmp_path / "bunny.csv"))).done == 1
    manifest = read_views_manifest(bunny.view_manifest("local/bunny.ply"))
    ratios = []
    for view in manifest.views:
        mask = silhouette(bunny.view_dir(manifest.key) / view.file)
        ratios.append(mask.any(axis=1).sum() / mask.any(axis=0).sum())
    assert max(ratios) > 1.1, ratios  # seen from the front or back, the standing bunny is taller than wide


def test_up_axis_set_per_source_and_per_file(tmp_path):
    """A source's `up_axis` applies to every file; the CSV's `up_axis` column overrides it per
    file (`auto`: the format's default). OBJ and glTF, Y-up by default, are read Z-up here (the
    glTF importer has no axis option: the scene is turned), an STL is read upside-down Y."""
    folder = mesh_folder(
        tmp_path / "meshes",
        [
            ("tower_z.obj", "Z", None),  # the source's Z
            ("tower_z.gltf", "Z", None),
            ("tower_y.ply", "Y", "auto"),  # PLY's default: Y
            ("tower_negy.stl", "-Y", "-Y"),
        ],
    )
    root = DatasetRoot(tmp_path / "root")
    assert render(root, side_views(folder=str(folder), up_axis="Z")).done == 4
    expected = {"tower_z.obj": "Z", "tower_z.gltf": "Z", "tower_y.ply": "Y", "tower_negy.stl": "-Y"}
    for name, up in expected.items():
        key = f"local/{name}"
        assert_upright_tower(root, key)
        assert read_views_manifest(root.view_manifest(key)).stats["up_axis"] == up


def test_a_bad_up_axis_in_the_csv_is_a_clear_error(tmp_path):
    folder = mesh_folder(tmp_path / "meshes", [("tower.ply", "Y", "up")])
    with pytest.raises(ValueError, match=r"categories.csv:2: up_axis 'up'"):
        render(tmp_path / "root", side_views(folder=str(folder)))


def mvcap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mvcap_build", *args], capture_output=True, text=True)


def test_changing_the_up_axis_makes_committed_objects_stale(tmp_path):
    """The resolved axis is in the fingerprint: `--up-axis Z` on a PLY rendered Y-up stops the run
    and names `asset.up_axis`; `--redo stale` re-renders it; `--up-axis Y`, what `auto` gave a
    PLY already, keeps it."""
    folder = mesh_folder(tmp_path / "meshes", [("tower.ply", "Y", None)])
    config = tmp_path / "render.yaml"
    config.write_text(
        yaml.safe_dump(tiny_render(source={"kind": "local", "folder": str(folder)}, views={"num_views": 1}))
    )
    root = tmp_path / "root"
    first = mvcap("render", str(root), "--config", str(config), "--quiet")
    assert first.returncode == 0, first.stderr
    digest = read_views_manifest(DatasetRoot(root).view_manifest("local/tower.ply")).fingerprint.digest

    same = mvcap("render", str(root), "--config", str(config), "--up-axis", "Y", "--quiet")
    assert same.returncode == 0 and "1 already done" in same.stdout, same.stdout + same.stderr

    changed = mvcap("render", str(root), "--config", str(config), "--up-axis", "Z", "--quiet")
    assert changed.returncode != 0 and "asset.up_axis" in changed.stderr and "--redo stale" in changed.stderr, (
        changed.stderr
    )
    assert "Traceback" not in changed.stderr

    redone = mvcap("render", str(root), "--config", str(config), "--up-axis", "Z", "--redo", "stale", "--quiet")
    assert redone.returncode == 0, redone.stderr
    manifest = read_views_manifest(DatasetRoot(root).view_manifest("local/tower.ply"))
    assert manifest.fingerprint.digest != digest
    assert manifest.fingerprint.fields["asset.up_axis"] == "Z" and manifest.stats["up_axis"] == "Z"


def test_render_help_documents_the_up_axis():
    result = mvcap("render", "--help")
    assert result.returncode == 0 and "--up-axis" in result.stdout
