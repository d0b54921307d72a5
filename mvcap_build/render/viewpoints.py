"""Viewpoint distributions: which (azimuth, elevation) pairs each object is rendered from."""

from __future__ import annotations

import math
import random
from enum import Enum

GOLDEN_ANGLE_DEG = 180.0 * (3.0 - math.sqrt(5.0))


class Distribution(str, Enum):
    hemisphere = "hemisphere"  # area-uniform spiral over the upper hemisphere, steep views included
    sphere = "sphere"  # area-uniform spiral over the whole sphere, views from below included
    orbit = "orbit"  # rings: every azimuth step at each listed elevation
    random = "random"  # area-uniform random points on the elevation band, seeded per object


def _spiral(n: int, low_deg: float, high_deg: float, phase_deg: float) -> list[tuple[float, float]]:
    """Fibonacci spiral on a spherical band: equal area per view, no two views at one azimuth."""
    lo, hi = math.sin(math.radians(low_deg)), math.sin(math.radians(high_deg))
    views = []
    for i in range(n):
        elevation = math.degrees(math.asin(lo + (i + 0.5) / n * (hi - lo)))
        azimuth = (phase_deg + i * GOLDEN_ANGLE_DEG) % 360.0
        views.append((azimuth, elevation))
    return views


def sample_viewpoints(
    distribution: Distribution,
    num_views: int,
    *,
    min_elevation_deg: float = 0.0,
    max_elevation_deg: float = 85.0,
    orbit_elevations_deg: list[float] | None = None,
    seed: int = 0,
    object_key: str = "",
) -> list[tuple[float, float]]:
    """Return `num_views` (azimuth_deg, elevation_deg) pairs, deterministic for (seed, object_key)."""
    if num_views < 1:
        raise ValueError("num_views must be at least 1")
    if distribution == Distribution.hemisphere:
        return _spiral(num_views, max(min_elevation_deg, 0.0), max_elevation_deg, 0.0)
    if distribution == Distribution.sphere:
        return _spiral(num_views, -max_elevation_deg, max_elevation_deg, 0.0)
    if distribution == Distribution.orbit:
        rings = orbit_elevations_deg or [0.0, 30.0, 60.0]
        if num_views % len(rings):
            raise ValueError(f"orbit: num_views ({num_views}) must be a multiple of the {len(rings)} rings")
        per_ring = num_views // len(rings)
        return [(360.0 * j / per_ring, elevation) for elevation in rings for j in range(per_ring)]
    rng = random.Random(f"{seed}:{object_key}")
    lo, hi = math.sin(math.radians(min_elevation_deg)), math.sin(math.radians(max_elevation_deg))
    return [(rng.uniform(0.0, 360.0), math.degrees(math.asin(rng.uniform(lo, hi)))) for _ in range(num_views)]
