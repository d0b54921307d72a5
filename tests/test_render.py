"""Real Blender renders of the shared fixture meshes and the procedural demo objects."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_same_pixels, render, tiny_render
from conftest import pixels as _pixels
from PIL import Image

from mvcap_build.dataset import DatasetRoot, FailureLedger, read_objects, read_views_manifest
from mvcap_build.imaging import png_chunk_types, strip_png_metadata
from mvcap_build.render import cameras
from mvcap_build.render.sources.demo import DEMO_CATEGORIES
from mvcap_build.render.view_stats import view_stats

# Fixture files that cannot become views, and the ledger reason each must get.
EXPECTED_FAILURES = {
    "empty.obj": "no_geometry",  # imports, but no geometry
    "empty.stl": "import_failed",  # the STL importer itself fails
    "empty_nodes.glb": "no_geometry",  # nodes but no mesh
}


def fixture_settings(meshes_dir) -> dict:
    """Every fixture mesh, 16 views over the whole sphere (views from below too, for the
    lighting checks) at 64 px."""
    views = {"num_views": 16, "distribution": "sphere"}
    return tiny_render(source={"kind": "local", "folder": str(meshes_dir)}, resolution=64, samples=8, views=views)


@pytest.fixture(scope="module")
def fixtures_root(tmp_path_factory, meshes_dir):
    root = DatasetRoot(tmp_path_factory.mktemp("fixtures") / "root")
    summary = render(root, fixture_settings(meshes_dir))
    return root, summary


def test_every_fixture_is_rendered_or_in_the_ledger(fixtures_root, meshes_dir):
    root, summary = fixtures_root
    objects = read_objects(root)
    listed = {line.split(",")[0] for line in (meshes_dir / "categories.csv").read_text().splitlines()[1:]}
    assert {o.source_id for o in objects.values()} == listed
    failures = {entry.key.split("/", 1)[1]: entry for entry in FailureLedger(root, "render")}
    assert {name: f.reason for name, f in failures.items()} == EXPECTED_FAILURES
    assert all(f.detail for f in failures.values())
    for key in objects:
        name = key.split("/", 1)[1]
        if name in failures:
            assert not root.view_dir(key).exists()
            continue
        manifest = read_views_manifest(root.view_manifest(key))
        assert len(manifest.views) == 16
        for view in manifest.views:
            with Image.open(root.view_dir(key) / view.file) as image:
                assert image.mode == "RGBA" and image.size == (64, 64)
                alpha = np.asarray(image.getchannel("A"))
            assert view.coverage == pytest.approx((alpha > 0).mean())
            assert view.coverage > 0
            assert alpha[0, 0] == 0  # transparent background
    assert summary.done == len(listed) - len(EXPECTED_FAILURES)


def test_cameras_match_the_pixels(fixtures_root):
    """The unit cube (cubevc.glb fills it exactly) projected with the recorded K and c2w must land
    where Blender drew it: the OpenCV record and Blender's camera agree."""
    root, _ = fixtures_root
    manifest = read_views_manifest(root.view_manifest("local/cubevc.glb"))
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    for view in manifest.views:
        pix = cameras.project(corners, np.array(view.c2w), np.array(view.intrinsics))
        with Image.open(root.view_dir(manifest.key) / view.file) as image:
            alpha = np.asarray(image.getchannel("A"))
        rows, cols = np.nonzero(alpha > 127)
        drawn = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        predicted = np.array([pix[:, 0].min(), pix[:, 1].min(), pix[:, 0].max(), pix[:, 1].max()])
        np.testing.assert_allclose(drawn, predicted, atol=1.5, err_msg=f"view {view.view_index}")


def test_objects_fill_the_frame_without_touching_its_border(fixtures_root):
    """Framing `fit` (the default): each object's bounding sphere fills the view. With the unit
    cube's sphere for every object (the first version) the median coverage was 0.10."""
    root, _ = fixtures_root
    medians = []
    for path in root.view_manifests():
        manifest = read_views_manifest(path)
        stats = [view_stats(root.view_dir(manifest.key) / v.file) for v in manifest.views]
        medians.append(float(np.median([s.coverage for s in stats])))
        assert not any(s.touches_border for s in stats), manifest.key
        framing = manifest.producer.framing
        assert framing["mode"] == "fit" and framing["distance"] == pytest.approx(
            1.05 * framing["radius"] / np.sin(np.radians(20))
        )
        assert all(v.distance == pytest.approx(framing["distance"]) for v in manifest.views)
    assert np.median(medians) >= 0.20, sorted(medians)


def test_views_from_below_are_lit_like_views_from_above(fixtures_root):
    """The neutral rig: brightness and shading contrast (std/mean of luma) of views below the
    horizon within 10 % of views above (the first rig, one sun from above: 0.90)."""
    root, _ = fixtures_root
    above, below = [], []
    for path in root.view_manifests():
        manifest = read_views_manifest(path)
        assert manifest.producer.lighting["preset"] == "neutral" and not manifest.producer.lighting["shadows"]
        for view in manifest.views:
            (above if view.elevation_deg > 0 else below).append(view_stats(root.view_dir(manifest.key) / view.file))
    assert len(above) > 50 and len(below) > 50
    for measure in ("brightness", "contrast"):
        up = np.mean([getattr(s, measure) for s in above])
        down = np.mean([getattr(s, measure) for s in below])
        assert abs(down / up - 1) <= 0.10, (measure, up, down)


def test_nan_vertex_colours_do_not_poison_the_images(fixtures_root):
    """Blender's OBJ importer drops a colour layer that holds NaN (glTF stores colours as bytes,
    so NaN cannot reach a render there either): the cube must come out lit, not black."""
    root, _ = fixtures_root
    manifest = read_views_manifest(root.view_manifest("local/nancolor.obj"))
    for view in manifest.views:
        assert view.coverage > 0.1
        with Image.open(root.view_dir(manifest.key) / view.file) as image:
            rgba = np.asarray(image).astype(float)
        visible = rgba[rgba[..., 3] > 250][:, :3]
        assert visible.mean() > 60  # a lit cube, not black pixels


def test_rerun_skips_committed_and_failed_objects(fixtures_root, meshes_dir):
    root, first = fixtures_root
    again = render(root, fixture_settings(meshes_dir))
    assert (again.done, again.failed) == (0, {})
    assert again.already_done == first.done
    assert again.skipped_failed == len(EXPECTED_FAILURES)


def test_empty_render_and_surfaceless_assets_are_caught(tmp_path):
    """Lines and points only: ledgered before rendering (`no_surface`). A face of zero area
    (three points on a line) imports as a surface and draws nothing: caught in the pixels."""
    folder = tmp_path / "meshes"
    folder.mkdir()
    (folder / "wire.obj").write_text("v 0 0 0\nv 1 0 0\nv 1 1 1\nl 1 2\nl 2 3\n")
    (folder / "points.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        "end_header\n0 0 0\n1 0 0\n0 1 1\n"
    )
    (folder / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n")
    (folder / "categories.csv").write_text(
        "file,category\nwire.obj,wire\npoints.ply,dots\nflat.obj,sliver\nmissing.glb,ghost\n"
    )
    root = DatasetRoot(tmp_path / "root")
    summary = render(root, tiny_render(source={"kind": "local", "folder": str(folder)}))
    assert summary.failed == {"no_surface": 2, "empty_render": 1, "missing_file": 1}
    reasons = {e.key: (e.reason, e.detail) for e in FailureLedger(root, "render")}
    assert reasons["local/wire.obj"][0] == "no_surface" and "no face" in reasons["local/wire.obj"][1]
    assert reasons["local/points.ply"][0] == "no_surface"
    assert reasons["local/flat.obj"][0] == "empty_render" and "views [0, 1, 2, 3]" in reasons["local/flat.obj"][1]
    assert "missing.glb" in reasons["local/missing.glb"][1]
    assert not list((root.path / "views" / "local").iterdir())  # no staging leftovers


def test_csv_paths_cannot_escape_the_folder(tmp_path):
    folder = tmp_path / "meshes"
    folder.mkdir()
    (folder / "categories.csv").write_text("file,category\n../outside.obj,thing\n")
    with pytest.raises(ValueError, match="outside"):
        render(tmp_path / "root", tiny_render(source={"kind": "local", "folder": str(folder)}))


def test_demo_builders_match_the_host_list():
    code = (
        "import json; from mvcap_build.render.blender.procedural import BUILDERS; print(json.dumps(sorted(BUILDERS)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == sorted(DEMO_CATEGORIES)
    assert len(DEMO_CATEGORIES) >= 8


def test_renders_agree_across_runs_and_worker_counts(captioned_root, tmp_path):
    """Same seed, same pixels, whether one worker or two rendered them; different instances of
    a category differ; PNGs carry no render-time text, so equal pixels make equal bytes."""
    first = DatasetRoot(captioned_root)
    again = DatasetRoot(tmp_path / "again")
    summary = render(again, tiny_render(workers=2))
    assert summary.done == 3
    for path in first.view_manifests():
        manifest = read_views_manifest(path)
        for view in manifest.views:
            a = _pixels(first.view_dir(manifest.key) / view.file)
            b = _pixels(again.view_dir(manifest.key) / view.file)
            assert_same_pixels(a, b, f"{manifest.key} view {view.view_index}")
    one = _pixels(first.view_dir("demo/chair-000") / "001.png")
    render(again, tiny_render(source={"kind": "demo", "categories": ["chair"], "per_category": 2}))
    other = _pixels(again.view_dir("demo/chair-001") / "001.png")
    assert np.abs(one - other).mean() > 5, "two chairs drawn from different seeds look the same"
    manifest = read_views_manifest(again.view_manifest("demo/chair-000"))
    assert (
        manifest.producer.kind == "render"
        and manifest.producer.engine == "CYCLES"
        and manifest.producer.device == "CPU"
    )
    assert manifest.camera_convention == "opencv" and manifest.normalization == "unit_cube"


def test_pngs_carry_no_render_time_metadata(captioned_root):
    root = DatasetRoot(captioned_root)
    pngs = sorted((root.path / "views").rglob("*.png"))
    assert len(pngs) == 12
    for path in pngs:
        chunks = png_chunk_types(path.read_bytes())
        assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
        assert not {b"tEXt", b"zTXt", b"iTXt", b"tIME"} & set(chunks), (path, chunks)
        with Image.open(path) as image:
            assert not getattr(image, "text", {}), image.text


def test_strip_png_metadata_keeps_pixels_and_refuses_non_png(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("cycles.ViewLayer.total_time", "00:00.12")
    image = Image.fromarray(np.arange(16 * 16 * 4, dtype=np.uint8).reshape(16, 16, 4), "RGBA")
    image.save(tmp_path / "a.png", pnginfo=info)
    data = (tmp_path / "a.png").read_bytes()
    assert b"tEXt" in png_chunk_types(data)
    stripped = strip_png_metadata(data)
    assert b"tEXt" not in png_chunk_types(stripped) and len(stripped) < len(data)
    (tmp_path / "b.png").write_bytes(stripped)
    assert np.array_equal(_pixels(tmp_path / "a.png"), _pixels(tmp_path / "b.png"))
    with pytest.raises(ValueError, match="not a PNG"):
        strip_png_metadata(b"GIF89a")
    with pytest.raises(ValueError, match="truncated"):
        strip_png_metadata(data[:40])


def test_vertex_colours_without_material_are_shown(tmp_path, meshes_dir):
    """OBJ vertex colours come without a material; the renders must show them, not grey."""
    folder = tmp_path / "meshes"
    folder.mkdir()
    # nancolor.obj with its one NaN colour made valid: a cube painted green by vertex colours.
    (folder / "green.obj").write_text((meshes_dir / "nancolor.obj").read_text().replace("nan nan nan", "0.3 0.9 0.3"))
    (folder / "categories.csv").write_text("file,category\ngreen.obj,cube\n")
    root = DatasetRoot(tmp_path / "root")
    render(root, tiny_render(source={"kind": "local", "folder": str(folder)}))
    for view in read_views_manifest(root.view_manifest("local/green.obj")).views:
        with Image.open(root.view_dir("local/green.obj") / view.file) as image:
            rgba = np.asarray(image).astype(float)
        r, g, b = rgba[rgba[..., 3] > 250][:, :3].mean(axis=0)
        assert g > r + 40 and g > b + 40, (r, g, b)


def test_workbench_engine_renders_rgba(tmp_path):
    root = DatasetRoot(tmp_path / "root")
    config = tiny_render(engine="BLENDER_WORKBENCH", source={"kind": "demo", "categories": ["mug"], "per_category": 1})
    assert render(root, config).done == 1
    manifest = read_views_manifest(root.view_manifest("demo/mug-000"))
    assert manifest.producer.engine == "BLENDER_WORKBENCH" and manifest.producer.samples is None
    assert all(0 < v.coverage < 1 for v in manifest.views)


def test_fixed_framing_keeps_one_distance_and_records_it(tmp_path):
    """zero123-style: one distance for every object, so sizes stay comparable across objects."""
    root = DatasetRoot(tmp_path / "root")
    views = {"num_views": 2, "framing": "fixed", "distance": 3.0}
    assert render(root, tiny_render(views=views, lighting={"preset": "key_sun"})).done == 3
    for path in root.view_manifests():
        manifest = read_views_manifest(path)
        assert manifest.producer.framing["mode"] == "fixed" and manifest.producer.lighting["preset"] == "key_sun"
        for view in manifest.views:
            assert view.distance == 3.0
            assert np.linalg.norm(np.array(view.c2w)[:3, 3]) == pytest.approx(3.0)


def test_pngs_compressed_on_the_host_hold_the_same_pixels(tmp_path):
    """Blender writes uncompressed PNGs and the host compresses them (off the render loop), or
    Blender compresses them itself: the same pixels either way, and no raw-sized files."""
    settings = tiny_render(
        engine="BLENDER_WORKBENCH", resolution=64, source={"kind": "demo", "categories": ["mug"], "per_category": 1}
    )
    host, blender = DatasetRoot(tmp_path / "host"), DatasetRoot(tmp_path / "blender")
    assert render(host, settings).done == 1
    assert render(blender, {**settings, "png_on_host": False}).done == 1
    for view in read_views_manifest(host.view_manifest("demo/mug-000")).views:
        ours, theirs = host.view_dir("demo/mug-000") / view.file, blender.view_dir("demo/mug-000") / view.file
        assert_same_pixels(_pixels(ours), _pixels(theirs), view.file)
        assert ours.stat().st_size < 64 * 64 * 4 / 2  # compressed, not Blender's stored-only PNG
        assert not {b"tEXt", b"zTXt", b"iTXt", b"tIME"} & set(png_chunk_types(ours.read_bytes()))
