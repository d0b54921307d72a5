"""Capture geometry the readers share: where the cameras look (the point nearest their optical
axes) and which way is up (the normal of the plane the camera centres move in).

Captures come with poses but no object pivot and, for COLMAP, arbitrary world axes; views are
measured as azimuth and elevation about a centre and an up, so both readers derive them here from
the poses the same way. Poses are OpenCV camera-to-world matrices: the optical axis is +z through
the camera centre, image up is -y.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "PARALLEL_AXES_RATIO",
    "angle_deg",
    "camera_plane_up",
    "nearest_point_to_axes",
    "object_center",
    "robust_nearest_point_to_axes",
    "unit",
]

# The smallest eigenvalue of the axes' normal matrix over the largest is about sin^2 of their
# spread: optical axes spread over less than ~6 degrees (1e-2) do not pin a point down.
PARALLEL_AXES_RATIO = 1e-2
IRLS_ITERATIONS = 10
# Camera centres span a plane when they are spread in two directions (the narrow one at least 5 %
# of the wide one: an arc of ~30 degrees or more) and its thickness is under half its narrow side.
MIN_SPREAD_RATIO = 0.05
FLAT_PLANE_RATIO = 0.5

Poses = np.ndarray | Sequence[np.ndarray]  # (N, 4, 4) or a list of 4x4 camera-to-world


def unit(vector: np.ndarray) -> np.ndarray:
    """The vector scaled to length 1; zeros when it has no direction."""
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 1e-12 else np.zeros(3)


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle between two vectors in degrees (clipped, so rounding never yields NaN)."""
    return float(np.degrees(np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0))))


# Where the cameras look -------------------------------------------------------------------------


def nearest_point_to_axes(
    c2ws: Poses, weights: np.ndarray | None = None, *, min_eigen_ratio: float = PARALLEL_AXES_RATIO
) -> np.ndarray | None:
    """The point with the least (weighted) summed squared distance to every camera's optical
    axis, i.e. where an orbiting capture looks.

    None when the axes do not pin a point down: fewer than two cameras, or the normal matrix's
    smallest eigenvalue under `min_eigen_ratio` times its largest (axes nearly parallel). The
    default is the strict rule; a reader whose fallback is cruder may pass a smaller ratio.
    """
    c2ws = np.asarray(c2ws, dtype=np.float64)
    if len(c2ws) < 2:
        return None
    centres = c2ws[:, :3, 3]
    axes = c2ws[:, :3, 2] / np.linalg.norm(c2ws[:, :3, 2], axis=1, keepdims=True)
    weights = np.ones(len(c2ws)) if weights is None else np.asarray(weights, dtype=np.float64)
    off_axis = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]  # projections onto planes normal to each axis
    normal_matrix = (weights[:, None, None] * off_axis).sum(axis=0)
    rhs = (weights[:, None, None] * off_axis @ centres[:, :, None]).sum(axis=0)[:, 0]
    eigenvalues = np.linalg.eigvalsh(normal_matrix)
    if eigenvalues[0] < min_eigen_ratio * eigenvalues[-1]:
        return None
    return np.linalg.solve(normal_matrix, rhs)


def robust_nearest_point_to_axes(
    c2ws: Poses, *, iterations: int = IRLS_ITERATIONS, min_eigen_ratio: float = PARALLEL_AXES_RATIO
) -> np.ndarray | None:
    """The point with the least summed (not squared) distance to the optical axes, by
    iteratively reweighted least squares, so a few cameras looking elsewhere barely move it.
    None when the axes are nearly parallel (as `nearest_point_to_axes`) or meet behind most
    cameras."""
    c2ws = np.asarray(c2ws, dtype=np.float64)
    if len(c2ws) < 2:
        return None
    centres = c2ws[:, :3, 3]
    axes = c2ws[:, :3, 2] / np.linalg.norm(c2ws[:, :3, 2], axis=1, keepdims=True)
    weights = np.ones(len(c2ws))
    point = None
    for _ in range(iterations):
        point = nearest_point_to_axes(c2ws, weights, min_eigen_ratio=min_eigen_ratio)
        if point is None:
            return None
        offsets = point - centres
        off_axis = np.linalg.norm(offsets - (offsets * axes).sum(axis=1, keepdims=True) * axes, axis=1)
        floor = 1e-3 * max(float(np.median(np.linalg.norm(offsets, axis=1))), 1e-12)
        weights = 1.0 / np.maximum(off_axis, floor)
    in_front = ((point - centres) * axes).sum(axis=1) > 0
    return point if in_front.mean() > 0.5 else None


def object_center(c2ws: np.ndarray, points: np.ndarray, track_lengths: np.ndarray) -> tuple[np.ndarray, str]:
    """Where a reconstructed capture looks: the point nearest every camera's optical axis (robust
    least squares), else the median of the sparse points weighted by track length, else the mean
    of the camera centres.

    Whoever filmed kept the object in the middle of the frame all the way round, so the axes
    meet at it; the poses alone decide, so background points (a table, walls, which can outnumber
    the object's points) cannot pull it, and it is the pivot that makes azimuth and elevation
    about it meaningful.
    """
    point = robust_nearest_point_to_axes(c2ws)
    if point is not None:
        return point, f"robust least squares (IRLS, L1): the point nearest the optical axes of {len(c2ws)} cameras"
    if len(points):
        weights = np.maximum(track_lengths.astype(np.float64), 1.0)
        median = np.array([_weighted_median(points[:, axis], weights) for axis in range(3)])
        return (
            median,
            f"fallback: median of {len(points)} sparse points weighted by track length "
            "(the optical axes do not meet in front of the cameras)",
        )
    return c2ws[:, :3, 3].mean(
        axis=0
    ), "fallback: mean of the camera centres (optical axes do not meet, no sparse points)"


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


# Which way is up --------------------------------------------------------------------------------


def camera_plane_up(c2ws: np.ndarray) -> tuple[np.ndarray, str, dict[str, Any]]:
    """The normal of the least-squares plane through the camera centres, signed to agree with the
    cameras' mean up vector; that mean itself when the centres do not span a plane.

    Hand-held videos (MVImgNet) walk around the object at roughly one height, so the centres lie
    near a horizontal plane whose normal is the world's up; COLMAP's own world axes are arbitrary.
    """
    centres = c2ws[:, :3, 3]
    mean_up = unit(-c2ws[:, :3, 1].mean(axis=0))  # OpenCV cameras: -y points up in the image
    if np.linalg.norm(mean_up) == 0:
        mean_up = unit(-c2ws[0, :3, 1])
    if len(centres) >= 3:
        _, singular, vt = np.linalg.svd(centres - centres.mean(axis=0))
        fit = {"plane_singular_values": [float(s) for s in singular], "cameras": len(centres)}
        if singular[1] > MIN_SPREAD_RATIO * singular[0] and singular[2] <= FLAT_PLANE_RATIO * singular[1]:
            normal = vt[2] if vt[2] @ mean_up >= 0 else -vt[2]
            fit["angle_to_mean_camera_up_deg"] = angle_deg(normal, mean_up)
            method = (
                f"camera-centre plane normal: least-squares plane (SVD) through the {len(centres)} camera centres, "
                "signed to agree with the cameras' mean up vector (-y of each OpenCV camera)"
            )
            return normal, method, fit
    else:
        fit = {"plane_singular_values": None, "cameras": len(centres)}
    method = (
        f"cameras' mean up vector (-y of each OpenCV camera, {len(centres)} cameras): "
        "the camera centres do not span a plane"
    )
    return mean_up, method, fit
