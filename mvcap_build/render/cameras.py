"""Camera geometry shared by the render plan and its tests: pure numpy, no Blender.

World frame: Blender's (x right, y back, z up); the object sits normalised in the unit cube at
the origin and faces -y. Cameras are recorded in the OpenCV convention: x right, y down, z forward.
"""

from __future__ import annotations

import math

import numpy as np

# Blender cameras look down their -z with +y up; OpenCV cameras look down +z with +y down.
OPENCV_TO_BLENDER_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])


def camera_position(azimuth_deg: float, elevation_deg: float, distance: float) -> np.ndarray:
    """Azimuth 0 puts the camera on -y (the front); it turns counter-clockwise seen from above."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return distance * np.array([math.cos(el) * math.sin(az), -math.cos(el) * math.cos(az), math.sin(el)])


def look_at_origin(azimuth_deg: float, elevation_deg: float, distance: float) -> np.ndarray:
    """4x4 OpenCV camera-to-world for a camera on the sphere looking at the origin, horizon level.

    The right axis depends on azimuth alone, so a camera straight above (90 deg) is still defined.
    """
    position = camera_position(azimuth_deg, elevation_deg, distance)
    forward = -position / np.linalg.norm(position)
    az = math.radians(azimuth_deg)
    right = np.array([math.cos(az), math.sin(az), 0.0])
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, position
    return c2w


def intrinsics(fov_deg: float, width: int, height: int) -> np.ndarray:
    """Pinhole K for a horizontal field of view; square pixels, principal point at the centre."""
    focal = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def fit_distance(fov_deg: float, margin: float = 1.05) -> float:
    """Distance at which the unit cube's bounding sphere (radius sqrt(3)/2) fills the view."""
    return margin * (math.sqrt(3.0) / 2.0) / math.sin(math.radians(fov_deg) / 2.0)


def project(points: np.ndarray, c2w: np.ndarray, K: np.ndarray) -> np.ndarray:
    """World points (N, 3) to pixel coordinates (N, 2) for an OpenCV camera."""
    w2c = np.linalg.inv(c2w)
    cam = (w2c[:3, :3] @ points.T).T + w2c[:3, 3]
    pix = (K @ cam.T).T
    return pix[:, :2] / pix[:, 2:3]
