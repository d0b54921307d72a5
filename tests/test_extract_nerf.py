"""The NeRF-synthetic / IM3D reader on the real fixture (the NeRF paper's chair, as `throne_01`)
and on small folders written here for the cases the fixture does not have."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
from conftest import FIXTURES
from PIL import Image
from pydantic import ValidationError

from mvcap_build.errors import SourceError
from mvcap_build.extract.capture import ExtractError, handle_of, instance_record
from mvcap_build.extract.geometry import nearest_point_to_axes
from mvcap_build.extract.nerf import READER, NerfSourceConfig, instance_identity, list_instances, read_capture
from mvcap_build.extract.nerf.cameras import PARALLEL_AXES_RATIO
from mvcap_build.extract.nerf.listing import default_category
from mvcap_build.render.cameras import look_at_origin, project

IM3D = FIXTURES / "im3d"
THRONE_ANGLE_X = 0.6911112070083618
ORIGIN = np.zeros((1, 3))
FLIP_Y_Z = np.diag([1.0, -1.0, -1.0, 1.0])  # Blender/OpenGL camera axes <-> OpenCV, both ways


def im3d_config(**overrides) -> NerfSourceConfig:
    return NerfSourceConfig(**{"kind": "im3d", "folder": IM3D, **overrides})


def instance(name: str, config: NerfSourceConfig | None = None):
    config = config or im3d_config()
    return next(record for record in list_instances(config) if record.source_id == name)


def read(name: str, config: NerfSourceConfig | None = None):
    config = config or im3d_config()
    return read_capture(instance(name, config), config)


@pytest.fixture(scope="module")
def throne():
    return read("throne_01")


@pytest.fixture(scope="module")
def throne_masks(throne):
    return [np.asarray(frame.load())[..., 3] > 127 for frame in throne.frames]


def camera_coordinates(points: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    w2c = np.linalg.inv(c2w)
    return points @ w2c[:3, :3].T + w2c[:3, 3]


# Listing ------------------------------------------------------------------------------------


def test_listing_finds_every_object_folder_with_its_class_as_category():
    rows = list_instances(im3d_config())
    assert [(row.source_id, row.category) for row in rows] == [
        ("bad_json_00", "bad json"),
        ("broken_00", "broken"),
        ("throne_01", "throne"),
    ]
    assert all(handle_of(row) == IM3D / row.source_id for row in rows)
    assert [row.key for row in rows] == ["im3d/bad_json_00", "im3d/broken_00", "im3d/throne_01"]
    throne = IM3D / "throne_01"
    assert rows[2].asset == {"kind": "capture", "source": "im3d", "location": str(throne), "handle": throne}


def test_the_reader_is_one_typed_record():
    assert READER.list_instances is list_instances and READER.read_capture is read_capture
    assert READER.instance_identity is instance_identity


@pytest.mark.parametrize(
    ("folder_name", "category"),
    [("grand_piano_03", "grand piano"), ("airliner_01", "airliner"), ("lego", "lego"), ("hot_dog", "hot dog")],
)
def test_category_is_the_folder_name_without_its_index(folder_name, category):
    assert default_category(folder_name) == category


def test_category_map_by_folder_or_by_class_overrides_the_name_rule(tmp_path):
    by_folder = tmp_path / "folders.csv"
    by_folder.write_text("folder,category\nthrone_01,armchair\nnot_here_07,ghost\n", encoding="utf-8")
    rows = {row.source_id: row.category for row in list_instances(im3d_config(category_map=by_folder))}
    assert rows == {"bad_json_00": "bad json", "broken_00": "broken", "throne_01": "armchair"}

    by_class = tmp_path / "classes.csv"
    by_class.write_text("class,category\nthrone,chair\nbad_json,invalid file\n", encoding="utf-8")
    rows = {row.source_id: row.category for row in list_instances(im3d_config(category_map=by_class))}
    assert rows == {"bad_json_00": "invalid file", "broken_00": "broken", "throne_01": "chair"}


def test_a_category_map_without_a_key_column_or_missing_is_a_source_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,category\nthrone_01,chair\n", encoding="utf-8")
    with pytest.raises(SourceError, match="folder"):
        list_instances(im3d_config(category_map=bad))
    with pytest.raises(SourceError, match="not found"):
        list_instances(im3d_config(category_map=tmp_path / "absent.csv"))


def test_listing_skips_hidden_folders_and_files_but_keeps_folders_without_transforms(tmp_path):
    (tmp_path / ".cache").mkdir()
    (tmp_path / "notes.txt").write_text("x", encoding="utf-8")
    (tmp_path / "empty_02").mkdir()
    write_object(tmp_path / "cup_01", [{"file_path": "./train/r_0", "transform_matrix": orbit_matrix(0)}])
    rows = list_instances(NerfSourceConfig(kind="nerf", folder=tmp_path))
    assert [(row.source_id, row.category) for row in rows] == [("cup_01", "cup"), ("empty_02", "empty")]


def test_a_missing_source_folder_is_a_source_error(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        list_instances(NerfSourceConfig(kind="nerf", folder=tmp_path / "nowhere"))


def test_config_refuses_unknown_fields_and_splits_that_are_paths():
    with pytest.raises(ValidationError):
        NerfSourceConfig(kind="im3d", folder=IM3D, split="train")
    with pytest.raises(ValidationError):
        NerfSourceConfig(kind="im3d", folder=IM3D, splits=["../train"])
    assert im3d_config().source_name == "im3d"
    assert im3d_config(name="mine").source_name == "mine"


# The real capture: cameras --------------------------------------------------------------------


def test_throne_has_its_24_frames_with_sizes_from_the_header_and_K_from_the_fov(throne):
    assert throne.source_id == "throne_01" and throne.category == "throne"
    assert len(throne.frames) == 24
    assert [f.name for f in throne.frames][:4] == ["r_0", "r_2", "r_6", "r_10"]
    focal = 0.5 * 128 / math.tan(0.5 * THRONE_ANGLE_X)
    assert focal == pytest.approx(177.78, abs=0.01)
    for frame in throne.frames:
        assert (frame.width, frame.height) == (128, 128)
        np.testing.assert_allclose(frame.K, [[focal, 0, 64], [0, focal, 64], [0, 0, 1]])
    assert throne.details["camera_angle_x"] == THRONE_ANGLE_X
    assert throne.details["splits"] == ["train"]
    assert throne.details["transforms_files"] == ["transforms_train.json"]
    assert throne.details["missing_frames"] == throne.details["corrupt_frames"] == throne.details["unsafe_frames"] == []
    assert throne.reconstruction == "given" and throne.points is None
    json.dumps(throne.details)  # goes into the views manifest as is


def test_throne_cameras_are_rigid_and_4_03_units_from_the_origin(throne):
    for frame in throne.frames:
        rotation = frame.c2w[:3, :3]
        assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-5)
        assert np.linalg.norm(frame.c2w[:3, 3]) == pytest.approx(4.03, abs=0.01)


def test_the_origin_projects_to_the_image_centre_in_front_of_every_camera(throne, throne_masks):
    for frame, mask in zip(throne.frames, throne_masks):
        assert camera_coordinates(ORIGIN, frame.c2w)[0, 2] > 0, frame.name
        u, v = project(ORIGIN, frame.c2w, frame.K)[0]
        assert (u, v) == pytest.approx((64.0, 64.0), abs=1e-3)
        rows, cols = np.nonzero(mask)
        assert cols.min() <= u <= cols.max() and rows.min() <= v <= rows.max(), frame.name
        assert math.hypot(u - cols.mean(), v - rows.mean()) < 10, frame.name


def test_world_up_is_up_in_every_image(throne):
    # The origin sits on the optical axis, so it cannot tell a flipped image; a point above it can.
    above = np.array([[0.0, 0.0, 0.5]])
    for frame in throne.frames:
        assert project(above, frame.c2w, frame.K)[0, 1] < 64 - 5, frame.name


def test_the_cameras_are_the_files_matrices_flipped_and_unflipped_they_look_away(throne):
    raw = json.loads((IM3D / "throne_01" / "transforms_train.json").read_text(encoding="utf-8"))
    for frame, entry in zip(throne.frames, raw["frames"]):
        blender_c2w = np.array(entry["transform_matrix"])
        np.testing.assert_allclose(frame.c2w, blender_c2w @ FLIP_Y_Z)
        # Read as OpenCV without the flip, every camera would face away from the object.
        assert camera_coordinates(ORIGIN, blender_c2w)[0, 2] < 0, frame.name


def test_a_visual_hull_carved_from_the_masks_is_chair_sized_and_explains_them(throne, throne_masks):
    axis = np.linspace(-1.2, 1.2, 40)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = np.ones(len(grid), dtype=bool)
    projected = []
    for frame, mask in zip(throne.frames, throne_masks):
        uv = np.floor(project(grid, frame.c2w, frame.K)).astype(int)
        on_image = (uv[:, 0] >= 0) & (uv[:, 0] < frame.width) & (uv[:, 1] >= 0) & (uv[:, 1] < frame.height)
        hit = np.zeros(len(grid), dtype=bool)
        hit[on_image] = mask[uv[on_image, 1], uv[on_image, 0]]
        inside &= hit
        projected.append(uv)
    solid = grid[inside]
    extent = solid.max(axis=0) - solid.min(axis=0)
    assert 1.0 < extent[0] < 1.7 and 1.0 < extent[1] < 1.8 and 1.6 < extent[2] < 2.4, extent
    # Wrong cameras carve the hull down to less than some mask shows: its outline would shrink.
    for uv, mask, frame in zip(projected, throne_masks, throne.frames):
        hull_uv, (rows, cols) = uv[inside], np.nonzero(mask)
        hull_box = [hull_uv[:, 0].min(), hull_uv[:, 0].max(), hull_uv[:, 1].min(), hull_uv[:, 1].max()]
        mask_box = [cols.min(), cols.max(), rows.min(), rows.max()]
        assert np.abs(np.subtract(hull_box, mask_box)).max() <= 6, frame.name  # voxels are ~2.7 px


def test_the_centre_is_the_origin_and_up_is_world_z(throne):
    assert np.linalg.norm(throne.center) < 0.05
    np.testing.assert_array_equal(throne.up, [0.0, 0.0, 1.0])
    assert throne.up_method.startswith("given: world +z")


def test_frames_load_fully_decoded_rgba_and_survive_pickling(throne):
    image = throne.frames[0].load()
    assert image.mode == "RGBA" and image.size == (128, 128)
    alpha = np.asarray(image)[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255  # transparent background, opaque object
    assert pickle.loads(pickle.dumps(throne.frames[0])).load().size == (128, 128)


# The real broken objects ---------------------------------------------------------------------


def test_bad_json_fails_the_object_with_bad_transforms():
    with pytest.raises(ExtractError) as caught:
        read("bad_json_00")
    assert caught.value.reason == "bad_transforms"
    assert "transforms_train.json" in caught.value.detail


def test_broken_object_names_its_missing_and_corrupt_frames():
    capture = read("broken_00")
    assert capture.frames == []
    assert capture.details["missing_frames"] == ["r_0"]
    assert capture.details["corrupt_frames"] == ["r_2"]  # 24 bytes: Pillow refuses it at open
    np.testing.assert_array_equal(capture.center, [0.0, 0.0, 0.0])
    assert "fallback" in capture.details["center_method"]


# Small objects written here ------------------------------------------------------------------


def orbit_matrix(azimuth_deg: float, elevation_deg: float = 30.0, distance: float = 4.0) -> list[list[float]]:
    """A Blender-convention c2w looking at the origin, as a transforms file would hold it."""
    return (look_at_origin(azimuth_deg, elevation_deg, distance) @ FLIP_Y_Z).tolist()


def write_image(path: Path, size=(32, 32), mode="RGBA") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, (200, 100, 50, 255)[: len(mode)]).save(path)


def write_object(folder: Path, frames: list[dict], split: str = "train", images: bool = True, **top) -> Path:
    """transforms_<split>.json with these frames (camera_angle_x 0.69 unless given) and, unless
    told not to, a PNG for each frame whose file_path has no extension."""
    folder.mkdir(parents=True, exist_ok=True)
    body = {"camera_angle_x": THRONE_ANGLE_X, **top, "frames": frames}
    (folder / f"transforms_{split}.json").write_text(json.dumps(body), encoding="utf-8")
    for frame in frames:
        path = frame["file_path"]
        if images and not Path(path).suffix and not path.startswith(("/", "..")):
            write_image(folder / f"{path}.png")
    return folder


def record_for(folder: Path, config: NerfSourceConfig):
    """The record the listing would give this one folder."""
    return instance_record(config, folder.name, default_category(folder.name), folder)


def read_folder(folder: Path, **config):
    config = NerfSourceConfig(**{"kind": "nerf", "folder": folder.parent, **config})
    return read_capture(record_for(folder, config), config)


def test_a_folder_without_transforms_is_missing_reconstruction(tmp_path):
    (tmp_path / "empty_01").mkdir()
    write_object(tmp_path / "other_01", [], split="test")
    for name in ("empty_01", "other_01"):
        with pytest.raises(ExtractError) as caught:
            read_folder(tmp_path / name)
        assert caught.value.reason == "missing_reconstruction"
    assert "transforms_test.json" in caught.value.detail  # says which splits it does have


def test_paths_with_dot_slash_without_extension_with_extension_or_jpg_resolve(tmp_path):
    folder = tmp_path / "cup_01"
    write_image(folder / "train" / "a.png")
    write_image(folder / "train" / "b.png")
    write_image(folder / "images" / "c.jpg", mode="RGB")
    frames = [
        {"file_path": "./train/a", "transform_matrix": orbit_matrix(0)},
        {"file_path": "train/b.png", "transform_matrix": orbit_matrix(90)},
        {"file_path": "images/c", "transform_matrix": orbit_matrix(180)},
        {"file_path": "train/../train/a", "transform_matrix": orbit_matrix(270)},  # `..` that stays inside
    ]
    capture = read_folder(write_object(folder, frames, images=False))
    assert [f.name for f in capture.frames] == ["a", "b.png", "c", "train:a"]
    assert capture.frames[2].load().mode == "RGB"
    assert np.linalg.norm(capture.center) < 1e-6  # four cameras looking at the origin


def test_paths_leaving_the_object_folder_are_refused_unread(tmp_path):
    (tmp_path / "secret.png").write_bytes(b"not for us")
    outside = tmp_path / "outside.png"
    write_image(outside)
    folder = tmp_path / "cup_01"
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "link.png").symlink_to(outside)
    frames = [
        {"file_path": "../../etc/passwd", "transform_matrix": orbit_matrix(0)},
        {"file_path": "/etc/passwd", "transform_matrix": orbit_matrix(60)},
        {"file_path": "../secret", "transform_matrix": orbit_matrix(120)},
        {"file_path": "train/link", "transform_matrix": orbit_matrix(180)},
        {"file_path": "./train/ok", "transform_matrix": orbit_matrix(240)},
        {"file_path": "train/../../cup_01/train/ok", "transform_matrix": orbit_matrix(300)},  # leaves, comes back
    ]
    capture = read_folder(write_object(folder, frames))
    assert capture.details["unsafe_frames"] == [
        "../../etc/passwd",
        "/etc/passwd",
        "../secret",
        "train/link",
        "train/../../cup_01/train/ok",
    ]
    assert [f.name for f in capture.frames] == ["ok"]


def test_a_symlink_that_stays_inside_the_object_folder_is_read(tmp_path):
    folder = write_object(tmp_path / "cup_01", [{"file_path": "./train/r_0", "transform_matrix": orbit_matrix(0)}])
    (folder / "alias").symlink_to(folder / "train", target_is_directory=True)
    write_object(folder, [{"file_path": "./alias/r_0", "transform_matrix": orbit_matrix(0)}], images=False)
    capture = read_folder(folder)
    assert [f.name for f in capture.frames] == ["r_0"] and capture.details["unsafe_frames"] == []


def test_a_transforms_file_linked_from_outside_is_unsafe_path(tmp_path):
    frames = [{"file_path": "./train/r_0", "transform_matrix": orbit_matrix(0)}]
    elsewhere = write_object(tmp_path / "elsewhere", frames)
    folder = tmp_path / "cup_01"
    folder.mkdir()
    (folder / "transforms_train.json").symlink_to(elsewhere / "transforms_train.json")
    with pytest.raises(ExtractError) as caught:
        read_folder(folder)
    assert caught.value.reason == "unsafe_path" and "outside" in caught.value.detail


def test_a_truncated_image_opens_but_its_load_raises_corrupt_image(tmp_path):
    folder = write_object(tmp_path / "cup_01", [{"file_path": "./train/r_0", "transform_matrix": orbit_matrix(0)}])
    png = folder / "train" / "r_0.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 4), dtype=np.uint8)).save(png)
    png.write_bytes(png.read_bytes()[:2000])
    capture = read_folder(folder)
    assert [f.name for f in capture.frames] == ["r_0"] and capture.frames[0].width == 64
    with pytest.raises(ExtractError) as caught:
        capture.frames[0].load()
    assert caught.value.reason == "corrupt_image"


def test_instant_ngp_intrinsics_are_used_and_scaled_to_the_image(tmp_path):
    frames = [{"file_path": "./train/r_0", "transform_matrix": orbit_matrix(0)}]
    # Written for 64x48 images; the image on disk is 32x24 (a downscaled copy).
    folder = write_object(tmp_path / "cup_01", frames, images=False, fl_x=50.0, fl_y=52.0, cx=30.0, cy=25.0, w=64, h=48)
    write_image(folder / "train" / "r_0.png", size=(32, 24))
    capture = read_folder(folder)
    np.testing.assert_allclose(capture.frames[0].K, [[25.0, 0, 15.0], [0, 26.0, 12.5], [0, 0, 1]])
    assert capture.details["intrinsics_from"].startswith("fl_x")


def test_per_frame_intrinsics_override_the_top_level(tmp_path):
    frames = [
        {"file_path": "./train/r_0", "transform_matrix": orbit_matrix(0), "fl_x": 40.0},
        {"file_path": "./train/r_1", "transform_matrix": orbit_matrix(90)},
    ]
    capture = read_folder(write_object(tmp_path / "cup_01", frames))
    assert capture.frames[0].K[0, 0] == capture.frames[0].K[1, 1] == 40.0
    assert capture.frames[1].K[0, 0] == pytest.approx(0.5 * 32 / math.tan(0.5 * THRONE_ANGLE_X))


def test_val_split_is_read_only_when_configured_and_its_names_stay_unique(tmp_path):
    folder = write_object(tmp_path / "cup_01", [{"file_path": "./train/r_0", "transform_matrix": orbit_matrix(0)}])
    write_object(folder, [{"file_path": "./val/r_0", "transform_matrix": orbit_matrix(90)}], split="val")
    assert [f.name for f in read_folder(folder).frames] == ["r_0"]
    capture = read_folder(folder, splits=["train", "val", "test"])  # no test file: fine
    assert [f.name for f in capture.frames] == ["r_0", "val:r_0"]
    assert capture.details["splits"] == ["train", "val"]
    assert capture.details["transforms_files"] == ["transforms_train.json", "transforms_val.json"]


@pytest.mark.parametrize(
    ("body", "what"),
    [
        ([1, 2], "JSON object"),
        ({"camera_angle_x": 0.7}, "frames"),
        ({"camera_angle_x": 0.7, "frames": [{"transform_matrix": np.eye(4).tolist()}]}, "file_path"),
        ({"camera_angle_x": 0.7, "frames": [{"file_path": "a", "transform_matrix": [[1, 0], [0, 1]]}]}, "4x4"),
        ({"camera_angle_x": 0.7, "frames": [{"file_path": "a", "transform_matrix": "eye"}]}, "matrix"),
        (
            {
                "camera_angle_x": 0.7,
                "frames": [{"file_path": "a", "transform_matrix": np.diag([2.0, 2, 2, 1]).tolist()}],
            },
            "rotation",
        ),
        (
            {
                "camera_angle_x": 0.7,
                "frames": [{"file_path": "a", "transform_matrix": np.diag([1.0, 1, -1, 1]).tolist()}],
            },
            "rotation",
        ),
        ({"camera_angle_x": "wide", "frames": []}, "camera_angle_x"),
        ({"frames": [{"file_path": "a", "transform_matrix": np.eye(4).tolist()}]}, "focal"),
    ],
)
def test_malformed_transforms_are_bad_transforms(tmp_path, body, what):
    folder = tmp_path / "cup_01"
    folder.mkdir()
    (folder / "transforms_train.json").write_text(json.dumps(body), encoding="utf-8")
    with pytest.raises(ExtractError) as caught:
        read_folder(folder)
    assert caught.value.reason == "bad_transforms"
    assert what in caught.value.detail


def test_a_3x4_matrix_is_completed(tmp_path):
    frames = [{"file_path": "./train/r_0", "transform_matrix": orbit_matrix(0)[:3]}]
    capture = read_folder(write_object(tmp_path / "cup_01", frames))
    np.testing.assert_allclose(capture.frames[0].c2w, look_at_origin(0, 30, 4), atol=1e-12)


def test_parallel_optical_axes_fall_back_to_the_origin():
    shifted = [np.eye(4), np.eye(4)]
    shifted[1][:3, 3] = [1.0, 0.0, 0.0]
    assert nearest_point_to_axes(shifted, min_eigen_ratio=PARALLEL_AXES_RATIO) is None  # the NeRF reader's rule
    assert nearest_point_to_axes([np.eye(4)], min_eigen_ratio=PARALLEL_AXES_RATIO) is None
    looking_in = [look_at_origin(az, 20, 3) for az in (0, 120, 240)]
    for c2w in looking_in:
        c2w[:3, 3] += [0.5, -0.25, 1.0]
    np.testing.assert_allclose(
        nearest_point_to_axes(looking_in, min_eigen_ratio=PARALLEL_AXES_RATIO), [0.5, -0.25, 1.0], atol=1e-9
    )


def test_identity_follows_the_transforms_files(tmp_path):
    folder = write_object(tmp_path / "cup_01", [{"file_path": "./train/r_0", "transform_matrix": orbit_matrix(0)}])
    record = record_for(folder, NerfSourceConfig(kind="nerf", folder=tmp_path))
    before = instance_identity(record)
    assert list(before) == ["transforms_train.json"]
    write_object(folder, [{"file_path": "./train/r_0", "transform_matrix": orbit_matrix(10)}])
    assert instance_identity(record) != before
