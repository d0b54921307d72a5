"""Camera records: OpenCV axes, intrinsics, and viewpoint distributions."""

from __future__ import annotations

import numpy as np
import pytest

from mvcap_build.render import cameras
from mvcap_build.render.viewpoints import Distribution, sample_viewpoints


@pytest.mark.parametrize("azimuth, elevation", [(0, 0), (37, 12), (200, 60), (90, 90), (310, -40)])
def test_look_at_is_opencv_and_points_at_origin(azimuth, elevation):
    c2w = cameras.look_at_origin(azimuth, elevation, 2.5)
    rotation, position = c2w[:3, :3], c2w[:3, 3]
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-9)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(np.linalg.norm(position), 2.5)
    forward = rotation[:, 2]
    np.testing.assert_allclose(forward, -position / 2.5, atol=1e-9)  # z looks at the origin
    assert rotation[2, 0] == pytest.approx(0.0, abs=1e-9)  # x (right) stays level
    if elevation < 90:
        assert rotation[2, 1] < 0  # y points down in the world (world z is up)


def test_front_view_sees_the_object_front():
    c2w = cameras.look_at_origin(0, 0, 3)
    np.testing.assert_allclose(c2w[:3, 3], [0, -3, 0], atol=1e-9)
    np.testing.assert_allclose(c2w[:3, 0], [1, 0, 0], atol=1e-9)  # world +x is image right


def test_projection_centre_and_edges():
    K = cameras.intrinsics(40.0, 64, 64)
    c2w = cameras.look_at_origin(30, 20, 3)
    np.testing.assert_allclose(cameras.project(np.zeros((1, 3)), c2w, K), [[32, 32]], atol=1e-9)
    # A point at the edge of the field of view lands on the image border.
    d = 3.0
    half = d * np.tan(np.radians(20.0))
    point = c2w[:3, :3] @ np.array([half, 0, d]) + c2w[:3, 3]
    np.testing.assert_allclose(cameras.project(point[None], c2w, K), [[64, 32]], atol=1e-6)


def test_fit_distance_keeps_unit_cube_in_view():
    fov = 40.0
    K = cameras.intrinsics(fov, 100, 100)
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    for azimuth, elevation in sample_viewpoints(Distribution.sphere, 50):
        pix = cameras.project(corners, cameras.look_at_origin(azimuth, elevation, cameras.fit_distance(fov)), K)
        assert pix.min() >= 0 and pix.max() <= 100


def test_hemisphere_default_covers_steep_views_and_all_azimuths():
    views = sample_viewpoints(Distribution.hemisphere, 12)
    elevations = [e for _, e in views]
    azimuths = sorted(a for a, _ in views)
    assert len(views) == 12 and min(elevations) >= 0 and max(elevations) > 60
    assert max(np.diff(azimuths + [azimuths[0] + 360])) < 90  # no big blind side


def test_sphere_includes_views_from_below_and_orbit_rings():
    assert min(e for _, e in sample_viewpoints(Distribution.sphere, 20)) < -45
    rings = sample_viewpoints(Distribution.orbit, 6, orbit_elevations_deg=[0, 45])
    assert [e for _, e in rings] == [0, 0, 0, 45, 45, 45]
    with pytest.raises(ValueError, match="multiple"):
        sample_viewpoints(Distribution.orbit, 5, orbit_elevations_deg=[0, 45])


def test_random_is_seeded_per_object():
    a = sample_viewpoints(Distribution.random, 8, seed=1, object_key="demo/a")
    assert a == sample_viewpoints(Distribution.random, 8, seed=1, object_key="demo/a")
    assert a != sample_viewpoints(Distribution.random, 8, seed=1, object_key="demo/b")


def test_light_rigs_are_planned_per_object_and_recorded_whole():
    from mvcap_build.render.config import LightingConfig
    from mvcap_build.render.lighting import light_rig

    neutral = light_rig(LightingConfig(), "demo/a")
    assert neutral == light_rig(LightingConfig(), "demo/b")  # the same rig for every object
    assert not neutral["shadows"] and neutral["world"]["color"] == [1.0, 1.0, 1.0]
    below = [s for s in neutral["suns"] if s["elevation_deg"] < 0]
    above = [s for s in neutral["suns"] if s["elevation_deg"] > 0]
    assert sum(s["energy"] for s in below) == sum(s["energy"] for s in above) > 0  # lit from below as from above
    assert light_rig(LightingConfig(strength=2.0), "demo/a")["suns"][0]["energy"] == 2 * neutral["suns"][0]["energy"]
    random_a = light_rig(LightingConfig(preset="random", seed=1), "demo/a")
    assert random_a == light_rig(LightingConfig(preset="random", seed=1), "demo/a")  # seeded
    assert random_a != light_rig(LightingConfig(preset="random", seed=1), "demo/b")
    assert random_a != light_rig(LightingConfig(preset="random", seed=2), "demo/a")
    assert light_rig(LightingConfig(preset="key_sun"), "demo/a")["shadows"]


def test_framing_settings_are_in_the_render_fingerprint():
    from mvcap_build.dataset import ObjectRecord
    from mvcap_build.render.config import RenderConfig
    from mvcap_build.render.fingerprint import render_fingerprint

    obj = ObjectRecord(
        key="demo/a",
        source="demo",
        source_id="a",
        category="x",
        asset={"kind": "procedural", "builder": "mug", "seed": 1},
    )
    base = render_fingerprint(obj, RenderConfig())
    assert render_fingerprint(obj, RenderConfig(views={"margin": 1.2})).digest != base.digest
    assert render_fingerprint(obj, RenderConfig(views={"framing": "fixed"})).digest != base.digest
    assert render_fingerprint(obj, RenderConfig(lighting={"preset": "random"})).digest != base.digest
    assert render_fingerprint(obj, RenderConfig(workers=4, device="cpu")).digest == base.digest
