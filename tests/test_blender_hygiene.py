"""Import hygiene in the bpy layer, on real Blender scenes: hidden parts, curves and text,
missing textures, and animated (skinned) assets sized and rendered in their pose."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from conftest import render, tiny_render
from PIL import Image

from mvcap_build.dataset import DatasetRoot, FailureLedger, read_views_manifest


def run_blender(code: str) -> dict:
    """Run `code` in a fresh Python with bpy; it prints one JSON line last."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_hidden_objects_do_not_count_and_curves_and_text_become_meshes():
    out = run_blender(
        """
import json, bpy
from mvcap_build.render.blender import hygiene, importers
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.mesh.primitive_cube_add(size=1.0)
bpy.ops.mesh.primitive_cube_add(size=1.0, location=(10, 0, 0))
bpy.context.active_object.hide_render = True
hidden = hygiene.remove_hidden()
size = importers.normalize_to_unit_cube()["original_size"]
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.object.text_add()
bpy.context.active_object.data.extrude = 0.1
bpy.ops.curve.primitive_bezier_circle_add(location=(3, 0, 0))
bpy.context.active_object.data.bevel_depth = 0.1
converted = hygiene.convert_to_meshes()
kinds = sorted(o.type for o in bpy.context.scene.objects)
faces = sum(len(o.data.polygons) for o in bpy.context.scene.objects if o.type == "MESH")
hygiene.require_surfaces()
print(json.dumps({"hidden": hidden, "size": size, "converted": converted, "kinds": kinds, "faces": faces}))
"""
    )
    assert out["hidden"] == 1 and abs(out["size"] - 1.0) < 1e-6  # the hidden cube 10 units away is not in the box
    assert out["converted"] == 2 and out["kinds"] == ["MESH", "MESH"] and out["faces"] > 100


def test_missing_textures_are_recorded_and_do_not_render_magenta(tmp_path, meshes_dir):
    """A glTF whose image file is gone: Blender would paint it magenta; we unplug the texture."""
    folder = tmp_path / "meshes"
    folder.mkdir()
    gltf = json.loads((meshes_dir / "TestScene.gltf").read_text())
    images = gltf.get("images") or []
    if images:  # TestScene keeps its textures beside it: point them at files that do not exist
        for number, image in enumerate(images):
            image.pop("bufferView", None)
            image["uri"] = f"gone-{number}.png"
    else:  # no texture in the scene: give its first material one that is missing
        gltf["images"] = [{"uri": "gone-0.png"}]
        gltf["textures"] = [{"source": 0}]
        gltf["materials"][0].setdefault("pbrMetallicRoughness", {})["baseColorTexture"] = {"index": 0}
    (folder / "scene.gltf").write_text(json.dumps(gltf))
    (folder / "TestScene.bin").write_bytes((meshes_dir / "TestScene.bin").read_bytes())
    (folder / "categories.csv").write_text("file,category\nscene.gltf,scene\n")
    root = DatasetRoot(tmp_path / "root")
    summary = render(root, tiny_render(source={"kind": "local", "folder": str(folder)}, resolution=48))
    assert summary.done == 1, list(FailureLedger(root, "render"))
    manifest = read_views_manifest(root.view_manifest("local/scene.gltf"))
    assert manifest.stats["missing_textures"] and all(n.startswith("gone-") for n in manifest.stats["missing_textures"])
    for view in manifest.views:
        with Image.open(root.view_dir(manifest.key) / view.file) as image:
            rgba = np.asarray(image.convert("RGBA")).astype(int)
        solid = rgba[rgba[..., 3] > 200][:, :3]
        magenta = (solid[:, 0] > 200) & (solid[:, 1] < 60) & (solid[:, 2] > 200)
        assert magenta.mean() < 0.01, f"view {view.view_index}: {magenta.mean():.1%} magenta"


def test_a_skinned_animated_asset_is_sized_and_rendered_in_its_pose(tmp_path):
    """A cube moved 3 units up by its bone in the animation: the rest-pose box would frame empty
    space; the box of the posed geometry centres it."""
    folder = tmp_path / "meshes"
    folder.mkdir()
    run_blender(
        f"""
import json, bpy
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.mesh.primitive_cube_add(size=1.0)
cube = bpy.context.active_object
bpy.ops.object.armature_add()
armature = bpy.context.active_object
group = cube.vertex_groups.new(name="Bone")
group.add(list(range(len(cube.data.vertices))), 1.0, "REPLACE")
cube.modifiers.new("skin", "ARMATURE").object = armature
cube.parent = armature
bone = armature.pose.bones["Bone"]
for frame in (1, 10):
    bone.location = (0.0, 3.0, 0.0)  # along the bone, which points up: 3 units up
    bone.keyframe_insert("location", frame=frame)
bpy.ops.export_scene.gltf(filepath={str(folder / "posed.glb")!r}, export_animations=True)
print(json.dumps({{}}))
"""
    )
    (folder / "categories.csv").write_text("file,category\nposed.glb,cube\n")
    root = DatasetRoot(tmp_path / "root")
    assert render(root, tiny_render(source={"kind": "local", "folder": str(folder)}, resolution=48)).done == 1
    manifest = read_views_manifest(root.view_manifest("local/posed.glb"))
    assert manifest.stats["armatures"] == 1 and manifest.stats["animated_objects"] >= 1
    assert manifest.stats["faces"] == 12 and manifest.stats["meshes"] == 1  # glTF stores triangles
    for view in manifest.views:
        with Image.open(root.view_dir(manifest.key) / view.file) as image:
            alpha = np.asarray(image.getchannel("A")) > 127
        rows, cols = np.nonzero(alpha)
        assert alpha.mean() > 0.1, f"view {view.view_index} shows {alpha.mean():.1%} of the cube"
        assert abs(rows.mean() - 24) < 6 and abs(cols.mean() - 24) < 6, f"view {view.view_index} is off centre"
