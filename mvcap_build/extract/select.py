"""Choosing which frames of a capture become views: sharp ones that spread over the viewing
directions around the object.

A phone video of an object has many near-duplicate frames and some blurred ones; evenly spaced
frames follow the walking speed of whoever filmed, not the viewpoints. Farthest-point sampling of
the camera directions about the object centre gives views that cover the object.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

SHARPNESS_SIDE = 256  # sharpness is measured on a copy this wide: comparable across resolutions


def sharpness(image: Image.Image) -> float:
    """Variance of the Laplacian of the grey image: low for blurred frames."""
    grey = image.convert("L")
    if grey.width > SHARPNESS_SIDE:
        grey = grey.resize((SHARPNESS_SIDE, max(1, round(grey.height * SHARPNESS_SIDE / grey.width))), Image.BILINEAR)
    laplacian = grey.filter(ImageFilter.Kernel((3, 3), (0, 1, 0, 1, -4, 1, 0, 1, 0), scale=1, offset=128))
    return float(np.asarray(laplacian, dtype=np.float64).var())


def view_directions(centres: np.ndarray, object_centre: np.ndarray) -> np.ndarray:
    """Unit vectors from the object centre to each camera centre, (N, 3)."""
    d = centres - object_centre
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


def farthest_directions(directions: np.ndarray, k: int, scores: np.ndarray | None = None) -> list[int]:
    """Indices of `k` directions chosen greedily to maximise the smallest angle between them.

    Starts from the direction closest to the mean (a central, typical view); ties go to the higher
    score (sharpness). Deterministic for the same input.
    """
    n = len(directions)
    if k >= n:
        return list(range(n))
    scores = np.zeros(n) if scores is None else scores
    mean = directions.mean(axis=0)
    first = int(np.argmax(directions @ mean / max(np.linalg.norm(mean), 1e-12) + 1e-9 * scores))
    chosen = [first]
    nearest = np.arccos(np.clip(directions @ directions[first], -1.0, 1.0))
    while len(chosen) < k:
        candidate = np.where(np.isin(np.arange(n), chosen), -1.0, nearest + 1e-9 * scores)
        pick = int(np.argmax(candidate))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.arccos(np.clip(directions @ directions[pick], -1.0, 1.0)))
    return sorted(chosen)


def spread(directions: np.ndarray) -> float:
    """Mean angle (degrees) from each direction to its nearest other one: how much of the sphere
    around the object a set of views covers."""
    if len(directions) < 2:
        return 0.0
    angles = np.degrees(np.arccos(np.clip(directions @ directions.T, -1.0, 1.0)))
    np.fill_diagonal(angles, np.inf)
    return float(angles.min(axis=1).mean())
