"""Which axis of a mesh file points up. Blender's world, and every recorded camera, is Z-up; a
file made Y-up and imported as if it were Z-up lies on its side in every view, so its
elevations (and the captions of those views) are wrong.

`auto` takes the convention of the file's format. Only glTF says in its spec; for the others
it is what their usual producers write. A source can set one axis for all its files, and a
local folder's CSV one per file (`up_axis` column). Pure host code: the Blender side applies
the resolved axis in `render/blender/importers.py`.
"""

from __future__ import annotations

from typing import Literal, get_args

UpAxis = Literal["auto", "Z", "Y", "X", "-Z", "-Y", "-X"]
UP_AXES: tuple[str, ...] = get_args(UpAxis)

# What `auto` means per format; checked on the fixtures (bunny.ply, rabbit.obj, teapot.stl and
# the glTF sample models all stand upright with these).
DEFAULT_UP_AXIS = {
    ".glb": "Y",  # the glTF spec: +Y up, +Z front (Blender's importer always converts it)
    ".gltf": "Y",
    ".obj": "Y",  # no spec: what Blender, Maya and most exporters write, and Blender's importer assumes
    ".fbx": "file",  # an FBX file declares its own axes, and Blender's importer reads them
    # no spec: the 3D-scanning convention (Stanford's bunny, dragon, armadillo); Blender's importer assumes Z
    ".ply": "Y",
    ".stl": "Z",  # no spec: 3D printing and CAD, where the build plate is XY
}

# The file axis that becomes Blender's +Y (the back: the azimuth-0 camera stands on -Y) for each
# up axis: the smallest turn that brings `up` to +Z. For Y it is -Z, the glTF and OBJ mapping, so
# a Y-up file's front (+Z) faces the azimuth-0 camera.
FORWARD_AXIS = {"Z": "Y", "-Z": "-Y", "Y": "-Z", "-Y": "Z", "X": "Y", "-X": "Y"}


def resolve_up_axis(setting: str | None, suffix: str) -> str:
    """The up axis a file is imported with: one of X, Y, Z, -X, -Y, -Z, or `file` (an FBX
    file's own axes). `setting` is `auto` (or None) for the format's default."""
    if setting not in (None, "auto"):
        if setting not in FORWARD_AXIS:
            raise ValueError(f"up axis {setting!r}: expected one of {', '.join(UP_AXES)}")
        return setting
    return DEFAULT_UP_AXIS.get(suffix.lower(), "Z")
