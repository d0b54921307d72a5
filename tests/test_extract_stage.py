"""`mvcap extract` end to end on the real captures in ../shared/fixtures: views with recorded
cameras that project where the object is, frames that cover the viewpoints, failures in the
ledger, and caption + export + `datasets` on the result; a kill in the middle and a rerun."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES, caption, export, load_export
from PIL import Image

from mvcap_build.dataset import DatasetRoot, FailureLedger, read_objects, read_views_manifest
from mvcap_build.extract.config import ExtractConfig
from mvcap_build.extract.select import spread, view_directions
from mvcap_build.extract.stage import ExtractStage
from mvcap_build.extract.views import project
from mvcap_build.pipeline.stage import RunOptions

IM3D = FIXTURES / "im3d"
MVIMGNET = FIXTURES / "mvimgnet"


def extract(root, source: dict, **frames):
    settings = {"num_frames": 8, "min_frames": 4, "resolution": 64} | frames
    config = ExtractConfig.model_validate({"source": source, "frames": settings})
    root = root if isinstance(root, DatasetRoot) else DatasetRoot(root)
    return ExtractStage(config, RunOptions(progress=False)).run(root.ensure_writable())


def mvcap(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mvcap_build", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def im3d_root(tmp_path_factory) -> DatasetRoot:
    root = DatasetRoot(tmp_path_factory.mktemp("im3d") / "root")
    summary = extract(root, {"kind": "im3d", "folder": str(IM3D)})
    assert (summary.done, sum(summary.failed.values())) == (1, 2), summary
    return root


def test_im3d_scan_finds_one_object_and_two_failures(im3d_root):
    reasons = {e.key: e.reason for e in FailureLedger(im3d_root, "extract")}
    assert reasons == {"im3d/bad_json_00": "bad_transforms", "im3d/broken_00": "too_few_frames"}
    broken = FailureLedger(im3d_root, "extract").get("im3d/broken_00")
    assert "r_0" in broken.detail and "r_2" in broken.detail  # the missing and the truncated frame are named
    objects = read_objects(im3d_root)
    assert objects["im3d/throne_01"].category == "throne"
    manifest = read_views_manifest(im3d_root.view_manifest("im3d/throne_01"))
    assert manifest.producer.kind == "capture" and manifest.producer.source == "im3d"
    assert manifest.normalization is None and len(manifest.views) == 8
    assert "+z" in manifest.producer.details["up_method"]


def test_im3d_origin_projects_inside_the_object_in_every_view(im3d_root):
    manifest = read_views_manifest(im3d_root.view_manifest("im3d/throne_01"))
    for view in manifest.views:
        with Image.open(im3d_root.view_dir(manifest.key) / view.file) as image:
            assert image.mode == "RGBA" and image.size == (64, 64)
            alpha = np.asarray(image.getchannel("A")) > 127
        rows, cols = np.nonzero(alpha)
        pix, in_front = project(np.zeros((1, 3)), np.array(view.c2w), np.array(view.intrinsics))
        assert in_front[0]
        x, y = pix[0]
        assert cols.min() <= x <= cols.max() + 1 and rows.min() <= y <= rows.max() + 1, (view.file, x, y)
        assert 0 <= view.elevation_deg <= 90 and view.distance == pytest.approx(4.03, abs=0.01)
        assert view.coverage == pytest.approx(
            (np.asarray(Image.open(im3d_root.view_dir(manifest.key) / view.file).getchannel("A")) > 0).mean()
        )


def test_chosen_frames_cover_more_directions_than_evenly_spaced_ones(im3d_root):
    """The spread (mean angle to the nearest other view) of the chosen frames against evenly
    spaced frames of the same number, over the 24 frames of the capture."""
    from mvcap_build.extract import nerf
    from mvcap_build.extract.nerf_config import NerfSourceConfig

    config = NerfSourceConfig(kind="im3d", folder=IM3D)
    throne = next(record for record in nerf.list_instances(config) if record.source_id == "throne_01")
    capture = nerf.read_capture(throne, config)
    frames = sorted(capture.frames, key=lambda f: int(f.name.split("_")[1]))
    directions = view_directions(np.array([f.c2w[:3, 3] for f in frames]), capture.center)
    manifest = read_views_manifest(im3d_root.view_manifest("im3d/throne_01"))
    names = [f.name for f in frames]
    chosen = [names.index(name) for name in manifest.producer.details["frames_chosen"]]
    evenly = np.linspace(0, len(frames) - 1, len(chosen)).round().astype(int)
    ours, theirs = spread(directions[chosen]), spread(directions[evenly])
    print(f"direction spread of {len(chosen)} frames: chosen {ours:.1f} deg, evenly spaced {theirs:.1f} deg")
    assert ours > theirs


def test_extracted_views_are_captioned_and_exported(im3d_root, copy_of):
    root = DatasetRoot(copy_of(im3d_root.path))
    assert caption(root).done == 1
    summary = export(root)
    assert summary.done == 1
    table = load_export(root.export_dir)
    assert len(table) == 8 and set(table["category"]) == {"throne"} and set(table["source"]) == {"im3d"}
    assert all("throne" in c for c in table["caption"])


def test_mvimgnet_capture_becomes_cropped_views_whose_points_land_inside(tmp_path):
    from mvcap_build.extract import mvimgnet

    root = DatasetRoot(tmp_path / "root")
    summary = extract(root, {"kind": "mvimgnet", "folder": str(MVIMGNET)}, num_frames=6, resolution=96)
    assert summary.done == 1, list(FailureLedger(root, "extract"))
    [key] = list(read_objects(root))
    assert read_objects(root)[key].category == "toy figure"
    manifest = read_views_manifest(root.view_manifest(key))
    assert manifest.producer.reconstruction == "colmap" and "plane" in manifest.producer.details["up_method"]
    source = ExtractConfig.model_validate({"source": {"kind": "mvimgnet", "folder": str(MVIMGNET)}}).source
    capture = mvimgnet.read_capture(mvimgnet.list_instances(source)[0], source)
    for view in manifest.views:
        assert (view.width, view.height) == (96, 96) and view.file.endswith(".jpg")
        pix, in_front = project(capture.points, np.array(view.c2w), np.array(view.intrinsics))
        inside = in_front & (pix[:, 0] >= 0) & (pix[:, 0] < 96) & (pix[:, 1] >= 0) & (pix[:, 1] < 96)
        assert inside.mean() > 0.8, f"{view.file}: {inside.mean():.0%} of the sparse points land in the view"


def _many_im3d_objects(folder: Path, count: int) -> Path:
    folder.mkdir()
    for index in range(count):
        shutil.copytree(IM3D / "throne_01", folder / f"throne_{index:02d}")
    return folder


def test_a_killed_extract_resumes_to_the_same_root(tmp_path):
    captures = _many_im3d_objects(tmp_path / "captures", 8)
    reference = tmp_path / "reference"
    args = ["--source", "im3d", "--folder", str(captures), "--num-frames", "12", "--resolution", "128", "--quiet"]
    assert mvcap("extract", str(reference), *args).returncode == 0
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "mvcap_build", "extract", str(killed), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((killed / "views").glob("*/*/views.json"))) >= 2:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_at_kill = len(list((killed / "views").glob("*/*/views.json")))
    assert 1 <= done_at_kill < 8, "the kill must land during extraction"
    result = mvcap("extract", str(killed), *args)
    assert result.returncode == 0 and f"{8 - done_at_kill} extracted, {done_at_kill} already done" in result.stdout

    def files(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "views").rglob("*")) if p.is_file()
        }

    assert files(killed) == files(reference)  # extraction is deterministic: the same bytes
    assert not list(killed.rglob(".tmp-*"))


def test_bad_mvimgnet_input_goes_to_the_ledger(tmp_path):
    data = tmp_path / "mvimgnet"
    shutil.copytree(MVIMGNET, data)
    [instance] = [p for p in data.glob("*/*") if p.is_dir()]
    category = instance.parent
    (category / "empty-instance").mkdir()
    shutil.copytree(instance, category / "no-sparse")
    shutil.rmtree(category / "no-sparse" / "sparse")
    jpgs = sorted((instance / "images").glob("*.jpg"))
    jpgs[0].write_bytes(jpgs[0].read_bytes()[:2000])  # a corrupt JPEG: that frame is dropped, the rest goes on
    root = DatasetRoot(tmp_path / "root")
    summary = extract(root, {"kind": "mvimgnet", "folder": str(data)}, num_frames=6)
    assert summary.done == 1
    reasons = {e.key.rsplit("/", 1)[1]: e.reason for e in FailureLedger(root, "extract")}
    assert reasons == {"empty-instance": "missing_reconstruction", "no-sparse": "missing_reconstruction"}
    manifest = read_views_manifest(root.view_manifest(f"mvimgnet/{category.name}/{instance.name}"))
    assert jpgs[0].name in json.dumps(manifest.producer.details["frames_dropped"])


def test_small_frames_are_not_enlarged_unless_asked(tmp_path):
    """The IM3D fixture's frames are 128 px: --resolution 256 keeps them (and says so)."""
    args = ["--source", "im3d", "--folder", str(IM3D), "--num-frames", "6", "--resolution", "256", "--quiet"]
    kept = mvcap("extract", str(tmp_path / "kept"), *args)
    assert kept.returncode == 0, kept.stderr
    assert "smaller than resolution 256: kept at their own size" in kept.stdout and "upsample" in kept.stdout
    manifest = read_views_manifest(DatasetRoot(tmp_path / "kept").view_manifest("im3d/throne_01"))
    assert (
        max(v.width for v in manifest.views) <= 128 and manifest.producer.details["kept_below_resolution"]["views"] == 6
    )
    for view in manifest.views:
        with Image.open(tmp_path / "kept" / "views" / "im3d" / "throne_01" / view.file) as image:
            assert image.size == (view.width, view.height)
    enlarged = mvcap("extract", str(tmp_path / "enlarged"), *args, "--upsample")
    assert enlarged.returncode == 0 and "kept at their own size" not in enlarged.stdout, enlarged.stderr
    manifest = read_views_manifest(DatasetRoot(tmp_path / "enlarged").view_manifest("im3d/throne_01"))
    assert {(v.width, v.height) for v in manifest.views} == {(256, 256)}
