"""Making an imported asset render as what it is: hidden parts removed, the pose fixed, curves
and text turned into meshes, missing textures neutralised, and counts of all of it recorded.

Each step returns what it did, so the views manifest says what was changed (`stats`), and a
reader can filter objects later (faces, materials, textures, animated or not).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bpy

from mvcap_build.render.blender.importers import AssetError

# Objects that hold geometry Blender can turn into a mesh.
_CONVERTIBLE = ("CURVE", "SURFACE", "FONT", "META")


def remove_hidden() -> int:
    """Objects hidden from render (or in a collection that is) would still count in the
    bounding box; remove them. Returns how many."""
    hidden_collections = {c.name for c in bpy.data.collections if c.hide_render}
    doomed = [
        obj
        for obj in bpy.context.scene.objects
        if obj.hide_render or any(c.name in hidden_collections for c in obj.users_collection)
    ]
    for obj in doomed:
        bpy.data.objects.remove(obj, do_unlink=True)
    return len(doomed)


def pose_at_start() -> dict[str, Any]:
    """Animated assets are rendered, and sized, in the pose of the first frame of the scene."""
    scene = bpy.context.scene
    animated = [o for o in scene.objects if o.animation_data and o.animation_data.action]
    armatures = [o for o in scene.objects if o.type == "ARMATURE"]
    frame = scene.frame_start
    scene.frame_set(frame)
    return {"frame": frame, "animated_objects": len(animated), "armatures": len(armatures)}


def convert_to_meshes() -> int:
    """Curves, surfaces, text and metaballs become meshes (what they would render as)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    converted = 0
    for obj in [o for o in bpy.context.scene.objects if o.type in _CONVERTIBLE]:
        mesh = bpy.data.meshes.new_from_object(
            obj.evaluated_get(depsgraph), preserve_all_data_layers=True, depsgraph=depsgraph
        )
        replacement = bpy.data.objects.new(obj.name + "_mesh", mesh)
        replacement.matrix_world = obj.matrix_world.copy()
        for collection in obj.users_collection:
            collection.objects.link(replacement)
        bpy.data.objects.remove(obj, do_unlink=True)
        converted += 1
    return converted


def neutralise_missing_textures() -> list[str]:
    """Image textures whose file is missing or unreadable render magenta; unplug them so their
    material shows its plain colour instead. Returns the missing images' file names."""
    missing = {}
    for image in bpy.data.images:
        if image.source != "FILE" or image.packed_file is not None:
            continue
        path = Path(bpy.path.abspath(image.filepath)) if image.filepath else None
        unreadable = path is None or not path.is_file() or image.size[0] == 0
        if unreadable:
            missing[image.name] = path.name if path else image.name
    if missing:
        for material in bpy.data.materials:
            if not material.use_nodes or material.node_tree is None:
                continue
            for node in material.node_tree.nodes:
                if node.type == "TEX_IMAGE" and node.image is not None and node.image.name in missing:
                    for link in list(node.outputs[0].links) + list(node.outputs[1].links):
                        material.node_tree.links.remove(link)
    return sorted(set(missing.values()))


def require_surfaces() -> None:
    """Meshes with vertices or edges but no face draw nothing: say so before rendering."""
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH" and len(o.data.vertices) > 0]
    if meshes and not any(len(o.data.polygons) > 0 for o in meshes):
        points = sum(len(o.data.vertices) for o in meshes)
        raise AssetError(
            "no_surface", f"the asset has {points} vertices but no face (points or lines only): nothing to render"
        )
    if not meshes and any(o.type == "POINTCLOUD" for o in bpy.context.scene.objects):
        raise AssetError("no_surface", "the asset is a point cloud: nothing to render as a surface")


def asset_stats() -> dict[str, int]:
    """Counts for filtering later: meshes, faces and vertices as rendered, materials, textures."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    faces = vertices = 0
    for obj in meshes:
        evaluated = obj.evaluated_get(depsgraph)
        faces += len(evaluated.data.polygons)
        vertices += len(evaluated.data.vertices)
    materials = {slot.material.name for o in meshes for slot in o.material_slots if slot.material}
    textures = {i.name for i in bpy.data.images if i.source in ("FILE", "TILED")}
    return {
        "meshes": len(meshes),
        "faces": faces,
        "vertices": vertices,
        "materials": len(materials),
        "textures": len(textures),
    }
