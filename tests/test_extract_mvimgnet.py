"""The MVImgNet reader on a real COLMAP capture (../shared/fixtures/mvimgnet: 23 photos of a
figurine, category 53) and MVImgNet's own category file, unpacked and zipped."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pycolmap  # the reference reader, for the reprojection check
import pytest
from conftest import FIXTURES
from pydantic import ValidationError

from mvcap_build.errors import SourceError
from mvcap_build.extract.capture import ExtractError, handle_of
from mvcap_build.extract.geometry import camera_plane_up, object_center, robust_nearest_point_to_axes
from mvcap_build.extract.mvimgnet import READER, instance_identity, list_instances, read_capture
from mvcap_build.extract.mvimgnet.categories import clean_category, read_categories_file, read_category_map
from mvcap_build.extract.mvimgnet.instances import FolderInstance, UnsafeInstance, ZipInstance
from mvcap_build.extract.mvimgnet.paths import zip_member_place
from mvcap_build.extract.mvimgnet.reader import scaled_intrinsics
from mvcap_build.extract.mvimgnet_config import MVImgNetSourceConfig

MVIMGNET = FIXTURES / "mvimgnet"
CATEGORIES = MVIMGNET / "mvimgnet_category.txt"
INSTANCE = "53/0a1b2c3d"
REGISTERED = 23


def folder_config(folder: Path, **extra) -> MVImgNetSourceConfig:
    return MVImgNetSourceConfig(kind="mvimgnet", folder=folder, **extra)


def read_only(folder: Path):
    """The one instance of a dataset folder, read."""
    config = folder_config(folder)
    (record,) = list_instances(config)
    return read_capture(record, config)


@pytest.fixture(scope="module")
def capture():
    return read_only(MVIMGNET)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """A private copy of the fixture dataset, to mutate."""
    root = tmp_path / "mvimgnet"
    shutil.copytree(MVIMGNET, root)
    return root


def project(points: np.ndarray, c2w: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    w2c = np.linalg.inv(c2w)
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]
    pix = cam @ K.T
    return pix[:, :2] / pix[:, 2:3], cam[:, 2]


# Configuration ------------------------------------------------------------------------------


def test_config_needs_exactly_one_of_folder_and_zips(tmp_path: Path):
    with pytest.raises(ValidationError, match="exactly one"):
        MVImgNetSourceConfig(kind="mvimgnet")
    with pytest.raises(ValidationError, match="exactly one"):
        MVImgNetSourceConfig(kind="mvimgnet", folder=tmp_path, zips=[tmp_path / "a.zip"])
    with pytest.raises(ValidationError, match="extra"):
        MVImgNetSourceConfig(kind="mvimgnet", folder=tmp_path, typo=1)


# Categories ---------------------------------------------------------------------------------


def test_released_categories_file_is_cleaned():
    categories = read_categories_file(CATEGORIES)
    assert len(categories) == 238  # ids 0..267 with gaps
    assert categories["53"] == "toy figure"
    assert not any("\r" in name or name != name.strip() for name in categories.values())
    assert categories["203"] == "toy butterfly"  # "Toy butterfly \r" in the file
    assert categories["2"] == "washer"  # "wahser"
    assert categories["221"] == "swim ring"  # "Swin ring"
    assert categories["253"] == "water pipe adapter"  # "Adapter(Water pipe)"
    assert categories["130"] == "tripod"  # capitalised from id 129 on
    assert categories["176"] == "Chinese cabbage"  # proper nouns keep their case
    assert "80" not in categories and "79" in categories and "82" in categories  # a gap


def test_categories_file_format(tmp_path: Path):
    path = tmp_path / "categories.txt"
    path.write_bytes("\ufeff0, bag \r\n\r\n7,  Rice   Cooker\r\n2,wahser\r\n".encode())
    assert read_categories_file(path) == {"0": "bag", "7": "rice cooker", "2": "washer"}
    assert clean_category("  Pipe PVC Metal pipe ") == "pipe"
    path.write_text("0,bag\nnot a line\n")
    with pytest.raises(SourceError, match=r"categories.txt:2"):
        read_categories_file(path)
    path.write_text("0,bag\n0,bottle\n")
    with pytest.raises(SourceError, match="listed again"):
        read_categories_file(path)


def test_category_map_overrides_and_fills_gaps(tmp_path: Path):
    root = tmp_path / "data"
    (root / "53" / "a").mkdir(parents=True)
    (root / "080" / "b").mkdir(parents=True)  # 80 is a gap in MVImgNet's file
    shutil.copy(CATEGORIES, root / "mvimgnet_category.txt")
    with pytest.raises(SourceError, match=r"\b80\b.*080/b"):
        list_instances(folder_config(root))
    mapping = tmp_path / "map.csv"
    mapping.write_text("id,category\n80,teapot\n53, action figure \n")
    assert read_category_map(mapping) == {"80": "teapot", "53": "action figure"}
    listed = list_instances(folder_config(root, category_map=mapping))
    assert [(r.source_id, r.category) for r in listed] == [("080/b", "teapot"), ("53/a", "action figure")]


def test_explicit_categories_file_must_exist(tmp_path: Path):
    (tmp_path / "53" / "a").mkdir(parents=True)
    with pytest.raises(SourceError, match="categories_file not found"):
        list_instances(folder_config(tmp_path, categories_file=tmp_path / "nope.txt"))
    listed = list_instances(folder_config(tmp_path, categories_file=CATEGORIES))
    assert (listed[0].source_id, listed[0].category) == ("53/a", "toy figure")


# Listing ------------------------------------------------------------------------------------


def test_list_from_folder():
    (record,) = list_instances(folder_config(MVIMGNET))
    assert (record.key, record.source_id, record.category) == (f"mvimgnet/{INSTANCE}", INSTANCE, "toy figure")
    handle = handle_of(record)
    assert isinstance(handle, FolderInstance) and handle.folder == MVIMGNET / INSTANCE
    assert record.asset["location"] == str(MVIMGNET / INSTANCE) and record.asset["source"] == "mvimgnet"


def test_the_reader_is_one_typed_record():
    assert READER.list_instances is list_instances and READER.read_capture is read_capture
    assert READER.instance_identity is instance_identity


def test_missing_folder_and_empty_dataset(tmp_path: Path):
    with pytest.raises(SourceError, match="not found"):
        list_instances(folder_config(tmp_path / "nope"))
    with pytest.raises(SourceError, match="no MVImgNet instances"):
        list_instances(folder_config(tmp_path))


def test_zip_member_places():
    assert zip_member_place("53/0a1b2c3d/images/001.jpg") == ("53/0a1b2c3d", "images/001.jpg")
    assert zip_member_place("./53//x/sparse/0/images.bin") == ("53/x", "sparse/0/images.bin")
    assert zip_member_place("README.md") == ("", "")
    # A `..` that stays inside the instance is normalised, as the NeRF reader does with file_path.
    assert zip_member_place("53/0a1b2c3d/images/../images/001.jpg") == ("53/0a1b2c3d", "images/001.jpg")
    assert zip_member_place("53\\x\\.\\images\\002.jpg") == ("53/x", "images/002.jpg")
    for unsafe in ("../evil", "/etc/passwd", "53/x/images/../../../evil.jpg", "C:\\evil.jpg", "53\\..\\..\\evil"):
        assert zip_member_place(unsafe)[1] is None, unsafe
    assert zip_member_place("53/x/images/../../y/images/001.jpg") == ("53/x", None)  # leaves its instance


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def fixture_members() -> dict[str, bytes]:
    folder = MVIMGNET / INSTANCE
    return {
        f"{INSTANCE}/{p.relative_to(folder).as_posix()}": p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_zip_parts_are_read_in_place_and_unsafe_members_refused(tmp_path: Path, capture):
    parts = tmp_path / "parts"
    parts.mkdir()
    shutil.copy(CATEGORIES, parts / "mvimgnet_category.txt")  # found beside the zip parts
    members = fixture_members()
    make_zip(parts / "mvi_00.zip", {**members, "README.txt": b"top-level files belong to no instance"})
    make_zip(parts / "mvi_01.zip", {"../evil": b"escapes the root", "/abs/evil.jpg": b"absolute"})
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    config = MVImgNetSourceConfig(kind="mvimgnet", zips=[parts / "mvi_*.zip"])
    listed = {record.source_id: record for record in list_instances(config)}
    assert sorted(listed) == ["../evil", "/abs", INSTANCE]
    record = listed[INSTANCE]
    assert record.category == "toy figure" and isinstance(handle_of(record), ZipInstance)
    (unpacked,) = list_instances(folder_config(MVIMGNET))
    assert instance_identity(record) == instance_identity(unpacked)

    from_zip = read_capture(record, config)
    assert [f.name for f in from_zip.frames] == [f.name for f in capture.frames]
    assert all(np.allclose(a.c2w, b.c2w) and np.allclose(a.K, b.K) for a, b in zip(from_zip.frames, capture.frames))
    assert np.asarray(from_zip.frames[0].load()).tobytes() == np.asarray(capture.frames[0].load()).tobytes()

    for unsafe_id in ("../evil", "/abs"):
        assert isinstance(handle_of(listed[unsafe_id]), UnsafeInstance)
        with pytest.raises(ExtractError) as caught:
            read_capture(listed[unsafe_id], config)
        assert caught.value.reason == "unsafe_path"
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing unpacked
    assert not (tmp_path / "evil").exists() and not (parts.parent.parent / "evil").exists()


def test_unsafe_member_inside_an_instance_refuses_the_instance(tmp_path: Path):
    members = {**fixture_members(), f"{INSTANCE}/images/../../../evil.jpg": b"x"}
    part = make_zip(tmp_path / "mvi_00.zip", members)
    config = MVImgNetSourceConfig(kind="mvimgnet", zips=[part], categories_file=CATEGORIES)
    (record,) = list_instances(config)
    assert (record.source_id, record.category) == (INSTANCE, "toy figure")
    assert isinstance(handle_of(record), UnsafeInstance)
    with pytest.raises(ExtractError, match="unsafe_path"):
        read_capture(record, config)


def test_zip_members_with_a_dot_dot_that_stays_inside_are_read(tmp_path: Path, capture):
    members = {name.replace("/images/", "/images/../images/"): data for name, data in fixture_members().items()}
    part = make_zip(tmp_path / "mvi_00.zip", members)
    config = MVImgNetSourceConfig(kind="mvimgnet", zips=[part], categories_file=CATEGORIES)
    (record,) = list_instances(config)
    assert isinstance(handle_of(record), ZipInstance)
    assert [f.name for f in read_capture(record, config).frames] == [f.name for f in capture.frames]


def rename_in_model(instance: Path, renames: dict[str, str]) -> None:
    """Rewrite images.bin with some image names changed, as another COLMAP run might write them."""
    sparse = instance / "sparse" / "0"
    model = pycolmap.Reconstruction(str(sparse))
    for image in model.images.values():
        image.name = renames.get(image.name, image.name)
    model.write(str(sparse))


def test_image_names_in_the_model_follow_the_path_rule(dataset: Path):
    """`..` that stays inside the images folder is read; one that leaves it is unsafe, unread."""
    rename_in_model(dataset / INSTANCE, {"DSC_5283.jpg": "sub/../DSC_5283.jpg", "DSC_5284.jpg": "../../DSC_5284.jpg"})
    capture = read_only(dataset)
    assert "DSC_5283.jpg" in {f.name for f in capture.frames}  # Frame.name drops the folders
    assert capture.details["unsafe_frames"] == ["../../DSC_5284.jpg"]
    assert len(capture.frames) == REGISTERED - 1


def test_symlinks_leading_out_of_the_instance_are_not_read(dataset: Path, tmp_path: Path):
    images = dataset / INSTANCE / "images"
    outside = tmp_path / "outside.jpg"
    (images / "DSC_5283.jpg").rename(outside)
    (images / "DSC_5283.jpg").symlink_to(outside)
    (images / "DSC_5284.jpg").rename(images / "kept.jpg")
    (images / "DSC_5284.jpg").symlink_to(images / "kept.jpg")  # a link that stays inside is fine
    capture = read_only(dataset)
    assert capture.details["unsafe_frames"] == ["DSC_5283.jpg"] and len(capture.frames) == REGISTERED - 1
    assert "DSC_5284.jpg" in {f.name for f in capture.frames}

    sparse = dataset / INSTANCE / "sparse" / "0"
    (sparse / "cameras.bin").rename(tmp_path / "cameras.bin")
    (sparse / "cameras.bin").symlink_to(tmp_path / "cameras.bin")
    with pytest.raises(ExtractError) as caught:
        read_only(dataset)
    assert caught.value.reason == "unsafe_path" and "cameras.bin" in caught.value.detail


# Reading ------------------------------------------------------------------------------------


def test_capture_from_colmap(capture):
    assert capture.source_id == INSTANCE and capture.category == "toy figure"
    assert capture.reconstruction == "colmap"
    assert len(capture.frames) == REGISTERED == capture.details["counts"]["registered"]
    assert capture.points.shape == (capture.details["counts"]["points"], 3) and len(capture.points) > 1000
    assert capture.details["camera_models"] == ["SIMPLE_RADIAL"]
    assert capture.details["distortion_ignored"] is True
    assert set(capture.details["distortion"]) == {f.name for f in capture.frames}
    assert capture.details["unregistered_frames"] == [] and capture.details["missing_frames"] == []
    for frame in capture.frames:
        rotation = frame.c2w[:3, :3]
        assert np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(rotation), 1.0)
        assert np.allclose(frame.c2w[3], [0, 0, 0, 1])


def test_resized_frames_get_scaled_intrinsics(capture):
    # The fixture's photos are 1000 px wide; COLMAP calibrated them at 3031x2006.
    frame = capture.frames[0]
    assert frame.width == 1000 and 650 < frame.height < 665
    assert np.isclose(frame.K[0, 2], frame.width / 2) and np.isclose(frame.K[1, 2], frame.height / 2)
    note = capture.details["intrinsics"]
    assert note["resized_frames"] == REGISTERED and note["camera_sizes"] == [(3031, 2006)]
    assert note["max_aspect_change"] < 0.01
    image = frame.load()
    assert image.size == (frame.width, frame.height) and image.mode == "RGB"


def test_scaled_intrinsics_refuses_another_shape():
    K = np.array([[100.0, 0, 50], [0, 100, 40], [0, 0, 1]])
    assert np.allclose(scaled_intrinsics(K, (100, 80), (50, 40)), [[50, 0, 25], [0, 50, 20], [0, 0, 1]])
    assert scaled_intrinsics(K, (100, 80), (80, 100)) is None  # rotated
    assert np.array_equal(scaled_intrinsics(K, (100, 80), (100, 80)), K)


def test_sparse_points_project_into_every_frame(capture):
    for frame in capture.frames:
        pixels, depth = project(capture.points, frame.c2w, frame.K)
        assert (depth > 0).all(), frame.name
        inside = (
            (pixels[:, 0] >= 0) & (pixels[:, 0] < frame.width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < frame.height)
        )
        assert inside.mean() > 0.9, (frame.name, inside.mean())


def test_projection_matches_colmaps_observations(capture):
    """Our c2w and scaled K put each point where COLMAP saw it (scaled to the stored image):
    the pose inversion, the axes and the pixel convention are all right."""
    model = pycolmap.Reconstruction(str(MVIMGNET / INSTANCE / "sparse" / "0"))
    frames = {frame.name: frame for frame in capture.frames}
    errors = []
    for image in model.images.values():
        frame, camera = frames[image.name], model.cameras[image.camera_id]
        observed = [(p.xy, model.points3D[p.point3D_id].xyz) for p in image.points2D if p.has_point3D()]
        seen = np.array([xy for xy, _ in observed]) * [frame.width / camera.width, frame.height / camera.height]
        pixels, _ = project(np.array([xyz for _, xyz in observed]), frame.c2w, frame.K)
        errors.append(np.linalg.norm(pixels - seen, axis=1))
    errors = np.concatenate(errors)
    assert np.median(errors) < 1.0 and np.percentile(errors, 99) < 3.0  # pixels; distortion is ignored


def test_up_agrees_with_cameras_and_is_normal_to_their_plane(capture):
    c2ws = np.array([frame.c2w for frame in capture.frames])
    assert np.isclose(np.linalg.norm(capture.up), 1.0)
    assert (-c2ws[:, :3, 1].mean(axis=0)) @ capture.up > 0
    offsets = c2ws[:, :3, 3] - c2ws[:, :3, 3].mean(axis=0)
    height = offsets @ capture.up
    in_plane = offsets - np.outer(height, capture.up)
    assert np.sqrt((height**2).mean()) < 0.05 * np.sqrt((in_plane**2).sum(axis=1).mean())
    assert "camera-centre plane normal" in capture.up_method and "mean up vector" in capture.up_method


def test_center_is_where_every_camera_looks(capture):
    for frame in capture.frames:
        (pixel,), (depth,) = project(capture.center[None], frame.c2w, frame.K)
        assert depth > 0
        assert abs(pixel[0] / frame.width - 0.5) < 0.1 and abs(pixel[1] / frame.height - 0.5) < 0.15, frame.name
    spread = np.linalg.norm(capture.points - np.median(capture.points, axis=0), axis=1)
    assert np.linalg.norm(capture.center - np.median(capture.points, axis=0)) < np.median(spread)
    assert "optical axes" in capture.details["center_method"]


def look_at(centre, target, world_up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """An OpenCV camera-to-world at `centre` looking at `target`, image up along `world_up`."""
    forward = np.asarray(target, float) - centre
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, world_up)
    right /= np.linalg.norm(right)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, np.cross(forward, right), forward], axis=1)
    c2w[:3, 3] = centre
    return c2w


def ring(n: int = 20, radius: float = 3.0, height: float = 1.5) -> list[np.ndarray]:
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return [look_at(np.array([radius * np.cos(a), radius * np.sin(a), height]), [0, 0, 0]) for a in angles]


def test_center_shrugs_off_cameras_looking_elsewhere():
    c2ws = ring() + [look_at(np.array([3.0, 0.0, 1.5]), [3.0, 5.0, 1.5]) for _ in range(3)]
    assert np.linalg.norm(robust_nearest_point_to_axes(np.array(c2ws))) < 0.05


def test_center_falls_back_to_points_when_axes_are_parallel():
    c2ws = np.array([look_at(np.array([x, -5.0, 0.0]), [x, 0.0, 0.0]) for x in np.linspace(-1, 1, 5)])
    points = np.array([[0.0, 0.0, 0.0]] * 5 + [[9.0, 9.0, 9.0]])  # one stray, seen by two cameras only
    center, method = object_center(c2ws, points, np.array([5, 5, 5, 5, 5, 2]))
    assert np.allclose(center, 0) and "median" in method


def test_up_is_the_ring_normal_or_the_mean_camera_up():
    up, method, fit = camera_plane_up(np.array(ring()))
    assert np.allclose(up, [0, 0, 1], atol=1e-9) and "plane" in method and fit["cameras"] == 20
    jitter = np.random.default_rng(0).normal(scale=0.01, size=(5, 2))  # a straight walk, hand-held
    line = np.array(
        [
            look_at(np.array([x, -5.0 + dy, 1.0 + dz]), [0.0, 0.0, 0.0])
            for x, (dy, dz) in zip(np.linspace(-1, 1, 5), jitter)
        ]
    )
    up, method, _ = camera_plane_up(line)  # centres along a line: no plane to take the normal of
    assert "do not span a plane" in method and up @ [0, 0, 1] > 0.9


# Broken instances -------------------------------------------------------------------------------


def test_corrupt_jpeg_fails_on_load(dataset: Path):
    image = dataset / INSTANCE / "images" / "DSC_5290.jpg"
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    capture = read_only(dataset)
    assert len(capture.frames) == REGISTERED  # the header still reads
    frame = next(f for f in capture.frames if f.name == "DSC_5290.jpg")
    with pytest.raises(ExtractError) as caught:
        frame.load()
    assert caught.value.reason == "corrupt_image"
    capture.frames[0].load()  # the others still decode


def test_unreadable_header_is_recorded(dataset: Path):
    (dataset / INSTANCE / "images" / "DSC_5290.jpg").write_bytes(b"not a jpeg")
    capture = read_only(dataset)
    assert capture.details["corrupt_frames"] == ["DSC_5290.jpg"]
    assert len(capture.frames) == REGISTERED - 1


def test_image_not_in_the_model_is_unregistered(dataset: Path):
    images = dataset / INSTANCE / "images"
    shutil.copy(images / "DSC_5290.jpg", images / "DSC_9999.jpg")
    (images / "DSC_5291.jpg").unlink()
    capture = read_only(dataset)
    assert capture.details["unregistered_frames"] == ["DSC_9999.jpg"]
    assert capture.details["missing_frames"] == ["DSC_5291.jpg"]
    assert len(capture.frames) == REGISTERED - 1


@pytest.mark.parametrize("remove", ["sparse", "sparse/0/images.bin"])
def test_missing_model_is_missing_reconstruction(dataset: Path, remove: str):
    target = dataset / INSTANCE / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(ExtractError) as caught:
        read_only(dataset)
    assert caught.value.reason == "missing_reconstruction"


def test_empty_instance_folder_is_missing_reconstruction(dataset: Path):
    shutil.rmtree(dataset / INSTANCE)
    (dataset / INSTANCE).mkdir()
    with pytest.raises(ExtractError, match="empty") as caught:
        read_only(dataset)
    assert caught.value.reason == "missing_reconstruction"


def test_truncated_model_is_corrupt_reconstruction(dataset: Path):
    images_bin = dataset / INSTANCE / "sparse" / "0" / "images.bin"
    images_bin.write_bytes(images_bin.read_bytes()[:5000])
    with pytest.raises(ExtractError) as caught:
        read_only(dataset)
    assert caught.value.reason == "corrupt_reconstruction"


def test_no_image_on_disk_is_missing_frame(dataset: Path):
    shutil.rmtree(dataset / INSTANCE / "images")
    with pytest.raises(ExtractError) as caught:
        read_only(dataset)
    assert caught.value.reason == "missing_frame"


def test_model_without_registered_images_is_unregistered(dataset: Path):
    sparse = dataset / INSTANCE / "sparse" / "0"
    for name in ("images.bin", "points3D.bin"):  # COLMAP's binary format: a uint64 count, then records
        (sparse / name).write_bytes((0).to_bytes(8, "little"))
    with pytest.raises(ExtractError) as caught:
        read_only(dataset)
    assert caught.value.reason == "unregistered"
