"""Importing meshes into Blender, cleaning them and normalising them to the unit cube."""

from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np
from bpy_extras.io_utils import axis_conversion
from mathutils import Matrix

from mvcap_build.render.up_axis import FORWARD_AXIS, resolve_up_axis


class AssetError(RuntimeError):
    """This object cannot be rendered; `reason` is the ledger code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


IMPORT_OPERATORS = {
    ".glb": lambda p, **axes: bpy.ops.import_scene.gltf(filepath=p, **axes),
    ".gltf": lambda p, **axes: bpy.ops.import_scene.gltf(filepath=p, **axes),
    ".obj": lambda p, **axes: bpy.ops.wm.obj_import(filepath=p, **axes),
    ".ply": lambda p, **axes: bpy.ops.wm.ply_import(filepath=p, **axes),
    ".stl": lambda p, **axes: bpy.ops.wm.stl_import(filepath=p, **axes),
    ".fbx": lambda p, **axes: bpy.ops.import_scene.fbx(filepath=p, **axes),
}

# The glTF importer has no axis options: it always maps the spec's +Y up, +Z front to Blender's
# +Z up, -Y front; another up axis is a turn of the imported scene.
_GLTF_AXES = {"from_forward": "-Z", "from_up": "Y"}


def import_file(path: Path, up_axis: str | None = "auto") -> dict[str, str]:
    """Import one mesh file so that its `up_axis` (`auto`: its format's, see `up_axis.py`) is
    Blender's +Z. Returns the axes it was read with, for the manifest's stats."""
    if not path.is_file():
        raise AssetError("missing_file", f"asset file not found: {path}")
    suffix = path.suffix.lower()
    operator = IMPORT_OPERATORS.get(suffix)
    if operator is None:
        raise AssetError("unsupported_format", f"no importer for {path.suffix!r} files")
    up = resolve_up_axis(up_axis, suffix)
    forward = FORWARD_AXIS.get(up, "file")
    try:
        result = operator(str(path), **_axis_arguments(suffix, up, forward))
    except Exception as error:  # Blender reports importer errors as RuntimeError
        raise AssetError("import_failed", f"{path.name}: {error}") from error
    if "FINISHED" not in result:
        raise AssetError("import_failed", f"{path.name}: importer returned {sorted(result)}")
    if suffix in (".glb", ".gltf") and up != _GLTF_AXES["from_up"]:
        _turn_scene(axis_conversion(from_forward=forward, from_up=up) @ axis_conversion(**_GLTF_AXES).inverted())
    return {"up_axis": up, "forward_axis": forward}


def _axis_arguments(suffix: str, up: str, forward: str) -> dict[str, object]:
    """The importer's own axis options for this up axis (OBJ, PLY, STL, FBX have them)."""
    if suffix in (".obj", ".ply", ".stl"):
        enum = lambda axis: axis.replace("-", "NEGATIVE_")  # noqa: E731  ("-Y" -> "NEGATIVE_Y")
        return {"up_axis": enum(up), "forward_axis": enum(forward)}
    if suffix == ".fbx" and up != "file":
        return {"use_manual_orientation": True, "axis_up": up, "axis_forward": forward}
    return {}


def _parent_of_everything(name: str):
    """A new empty that every top-level imported object (not cameras, lights) hangs under."""
    parent = bpy.data.objects.new(name, None)
    bpy.context.scene.collection.objects.link(parent)
    for obj in list(bpy.context.scene.objects):
        if obj.parent is None and obj is not parent and obj.type not in ("CAMERA", "LIGHT"):
            obj.parent = parent
            obj.matrix_parent_inverse = Matrix.Identity(4)
    return parent


def _turn_scene(rotation: Matrix) -> None:
    """Turn everything imported by `rotation` (3x3), under one parent, so that animation on the
    imported objects' own transforms cannot undo it."""
    turn = _parent_of_everything("mvcap_up_axis")
    turn.matrix_world = rotation.to_4x4()
    bpy.context.view_layer.update()


def show_vertex_colors() -> int:
    """Give material-less meshes that carry a colour attribute a material that shows it.

    OBJ and PLY importers read vertex colours but assign no material, so Blender would render
    them plain grey. Returns how many meshes got one.
    """
    shown = 0
    for obj in _mesh_objects():
        colors = obj.data.color_attributes
        if not colors or any(slot.material for slot in obj.material_slots):
            continue
        material = bpy.data.materials.new("vertex_colors")
        material.use_nodes = True
        nodes = material.node_tree.nodes
        attribute = nodes.new("ShaderNodeAttribute")
        attribute.attribute_name = (colors.active_color or colors[0]).name
        material.node_tree.links.new(attribute.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
        obj.data.materials.clear()
        obj.data.materials.append(material)
        shown += 1
    return shown


def _mesh_objects() -> list[bpy.types.Object]:
    return [o for o in bpy.context.scene.objects if o.type == "MESH" and len(o.data.vertices) > 0]


def world_vertices(obj: bpy.types.Object) -> np.ndarray:
    """The vertices of a mesh object as rendered (modifiers, armature pose and shape keys
    applied), in world coordinates, as an (N, 3) array."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        coords = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", coords)
    finally:
        evaluated.to_mesh_clear()
    matrix = np.array(evaluated.matrix_world)
    return coords.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]


def normalize_to_unit_cube() -> dict[str, float]:
    """Scale and move everything so the meshes' world bounding box (of the posed, evaluated
    geometry) is centred at the origin with longest side 1."""
    meshes = _mesh_objects()
    if not meshes:
        raise AssetError("no_geometry", "the file imported no mesh with vertices")
    bpy.context.view_layer.update()
    lows, highs = [], []
    for obj in meshes:
        points = world_vertices(obj)
        if not len(points):
            continue
        if not np.isfinite(points).all():
            raise AssetError("non_finite_geometry", f"mesh {obj.name!r} has NaN or infinite vertices")
        lows.append(points.min(axis=0))
        highs.append(points.max(axis=0))
    if not lows:
        raise AssetError("no_geometry", "the meshes have no vertices once evaluated")
    low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    size = float((high - low).max())
    if not np.isfinite(size) or size <= 1e-9:
        raise AssetError("degenerate_geometry", f"bounding box has size {size}")
    center = (low + high) / 2.0
    root = _parent_of_everything("mvcap_root")
    root.scale = (1.0 / size,) * 3
    root.location = tuple(-center / size)
    bpy.context.view_layer.update()
    return {"original_size": size}


def bounding_radius() -> float:
    """Distance from the origin to the farthest vertex of any mesh as rendered, in world space
    (after normalisation): the sphere that framing fits into the view."""
    radius = 0.0
    for obj in _mesh_objects():
        points = world_vertices(obj)
        if len(points):
            radius = max(radius, float(np.sqrt((points**2).sum(axis=1)).max()))
    return radius
