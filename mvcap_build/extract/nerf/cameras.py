"""From the transforms file's conventions to ours: Blender/OpenGL camera axes to OpenCV, focal
fields to K in pixels of the image actually on disk, and where the object is (world +z is up).

Kept apart from parsing because it is the part that is easy to get subtly wrong (a flipped axis,
a K for the wrong image size) and the one the projection tests pin down.
"""

from __future__ import annotations

import math

import numpy as np

from mvcap_build.extract.capture import Frame
from mvcap_build.extract.geometry import nearest_point_to_axes

__all__ = ["BLENDER_TO_OPENCV_CAMERA", "PARALLEL_AXES_RATIO", "UP_METHOD", "WORLD_UP", "center", "intrinsics_matrix"]

# Blender/OpenGL cameras look down -z with +y up; OpenCV ones down +z with +y down. The flip is
# its own inverse (the same matrix as render.cameras.OPENCV_TO_BLENDER_CAMERA).
BLENDER_TO_OPENCV_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])
WORLD_UP = np.array([0.0, 0.0, 1.0])
UP_METHOD = "given: world +z (NeRF-synthetic/Blender convention)"
# Axes within about a degree of each other do not pin down a point. Looser than the geometry
# default (~6 degrees): the fallback here is the world origin, cruder than a narrow-baseline fit.
PARALLEL_AXES_RATIO = 1e-4


def intrinsics_matrix(fields: dict[str, float], width: int, height: int) -> np.ndarray:
    """K in pixels of the actual image: instant-ngp's fl_x/fl_y/cx/cy scaled from their w/h when
    the image was resized, else camera_angle_x (a horizontal FoV holds at any resolution)."""
    if "fl_x" in fields or "fl_y" in fields:
        scale_x, scale_y = _resize_scales(fields, width, height)
        given_width, given_height = width / scale_x, height / scale_y
        fx = fields.get("fl_x", fields.get("fl_y")) * scale_x
        fy = fields.get("fl_y", fields.get("fl_x")) * scale_y
        cx = fields.get("cx", given_width / 2.0) * scale_x
        cy = fields.get("cy", given_height / 2.0) * scale_y
    else:
        fx = fy = 0.5 * width / math.tan(0.5 * fields["camera_angle_x"])
        cx, cy = width / 2.0, height / 2.0
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _resize_scales(fields: dict[str, float], width: int, height: int) -> tuple[float, float]:
    # With only one of w/h given, assume the image was resized keeping its aspect ratio.
    scale_x = width / fields["w"] if "w" in fields else None
    scale_y = height / fields["h"] if "h" in fields else None
    scale_x = scale_x or scale_y or 1.0
    scale_y = scale_y or scale_x
    return scale_x, scale_y


def center(frames: list[Frame]) -> tuple[np.ndarray, str]:
    """The point nearest the cameras' optical axes, and how it was found."""
    point = nearest_point_to_axes([frame.c2w for frame in frames], min_eigen_ratio=PARALLEL_AXES_RATIO)
    if point is None:
        return np.zeros(3), "world origin (fallback: fewer than two cameras, or their optical axes are parallel)"
    return point, f"least squares: the point nearest the optical axes of {len(frames)} cameras"
