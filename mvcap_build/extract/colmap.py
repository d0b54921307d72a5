"""A COLMAP sparse model (`sparse/0/{cameras,images,points3D}.bin`) as plain numpy, read with
`pycolmap`, COLMAP's own bindings, so every camera model and any future change to the binary
format is read by the code that writes it.

`pycolmap` (~130 MB installed, ~0.1 s to import) is imported on first use only: listing a
source, `mvcap --help` and every other stage never pay for it. Poses come back as OpenCV
camera-to-world matrices (COLMAP's world-to-camera [R|t] already uses OpenCV axes), intrinsics
as 3x3 K in COLMAP's pixel convention (origin at the top-left corner of the top-left pixel, the
same as `cx = width / 2` elsewhere in this package).
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mvcap_build.errors import EnvironmentBroken
from mvcap_build.extract.capture import ExtractError

__all__ = [
    "MODEL_FILES",
    "PERSPECTIVE_MODELS",
    "ColmapCamera",
    "ColmapImage",
    "SparseModel",
    "c2w_from_w2c",
    "read_sparse_model",
    "read_sparse_model_bytes",
    "require_pycolmap",
]

MODEL_FILES = ("cameras.bin", "images.bin", "points3D.bin")
# Models whose projection is a pinhole plus lens distortion: K (fx, fy, cx, cy) is their
# distortion-free part. Fisheye models are not a pinhole at all, so K would be wrong everywhere
# but the centre: those captures are refused (`unsupported_camera`) rather than approximated.
PERSPECTIVE_MODELS = frozenset({"SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV"})
PINHOLE_PARAMS = frozenset({"f", "fx", "fy", "cx", "cy"})
INSTALL_HINT = "pip install 'pycolmap>=3.12,<5' (or the mvcap-build[extract] extra)"


@dataclass(frozen=True)
class ColmapCamera:
    model: str  # COLMAP's model name, e.g. SIMPLE_RADIAL
    width: int  # the image size the camera was calibrated at
    height: int
    K: np.ndarray  # 3x3, pixels of a width x height image
    distortion: dict[str, float]  # the model's non-pinhole parameters by COLMAP's names (k, k1, p1, ...)


@dataclass(frozen=True)
class ColmapImage:
    name: str  # as stored in images.bin: relative to the image folder COLMAP was given
    camera_id: int
    c2w: np.ndarray  # 4x4 camera-to-world, OpenCV axes


@dataclass
class SparseModel:
    cameras: dict[int, ColmapCamera]
    images: list[ColmapImage]  # registered images only (those with a pose), sorted by name
    points: np.ndarray  # (N, 3) float64
    track_lengths: np.ndarray  # (N,) how many images observe each point
    unposed: list[str] = field(default_factory=list)  # images in the model without a pose


def require_pycolmap() -> None:
    """Fail before any work when pycolmap is missing: it is an environment problem, not one of
    an instance, so it must stop the run instead of filling the ledger."""
    if importlib.util.find_spec("pycolmap") is None:
        raise EnvironmentBroken(f"reading MVImgNet's COLMAP models needs pycolmap: {INSTALL_HINT}")


def read_sparse_model(folder: Path) -> SparseModel:
    """The model in `folder` (holding cameras.bin, images.bin, points3D.bin).

    Raises ExtractError `missing_reconstruction` when a file is absent and
    `corrupt_reconstruction` when pycolmap cannot parse them.
    """
    folder = Path(folder)
    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise ExtractError("missing_reconstruction", f"{folder}: no {', '.join(missing)}")
    reconstruction = _load_reconstruction(folder)
    return _to_numpy(reconstruction, folder)


def read_sparse_model_bytes(files: Mapping[str, bytes], where: str) -> SparseModel:
    """The same from the files' bytes (a zip member each): pycolmap reads only from disk, so the
    three files, and nothing else, go through a temporary folder that is removed at once."""
    missing = [name for name in MODEL_FILES if name not in files]
    if missing:
        raise ExtractError("missing_reconstruction", f"{where}: no {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="mvcap-colmap-") as tmp:
        for name in MODEL_FILES:
            (Path(tmp) / name).write_bytes(files[name])
        reconstruction = _load_reconstruction(Path(tmp), where)
        return _to_numpy(reconstruction, where)


def _load_reconstruction(folder: Path, where: str | Path | None = None) -> Any:
    require_pycolmap()
    import pycolmap

    try:
        return pycolmap.Reconstruction(str(folder))
    except Exception as exc:  # pycolmap maps C++ check failures to ValueError, IndexError, RuntimeError...
        raise ExtractError(
            "corrupt_reconstruction", f"{where or folder}: pycolmap cannot read the model ({exc})"
        ) from exc


def _to_numpy(reconstruction: Any, where: str | Path) -> SparseModel:
    try:
        cameras = {int(camera_id): _camera(camera) for camera_id, camera in reconstruction.cameras.items()}
        images, unposed = _images(reconstruction)
        points, track_lengths = _points(reconstruction)
    except ExtractError:
        raise
    except Exception as exc:  # a model that parses but holds inconsistent references
        raise ExtractError("corrupt_reconstruction", f"{where}: {exc}") from exc
    dangling = sorted({image.camera_id for image in images} - cameras.keys())
    if dangling:
        raise ExtractError("corrupt_reconstruction", f"{where}: images refer to missing cameras {dangling}")
    return SparseModel(cameras=cameras, images=images, points=points, track_lengths=track_lengths, unposed=unposed)


def _camera(camera: Any) -> ColmapCamera:
    names = [name.strip() for name in camera.params_info.split(",")]
    params = [float(value) for value in camera.params]
    return ColmapCamera(
        model=camera.model.name,
        width=int(camera.width),
        height=int(camera.height),
        K=np.asarray(camera.calibration_matrix(), dtype=np.float64),
        distortion={name: value for name, value in zip(names, params) if name not in PINHOLE_PARAMS},
    )


def _images(reconstruction: Any) -> tuple[list[ColmapImage], list[str]]:
    posed, unposed = [], []
    for image in reconstruction.images.values():
        if not image.has_pose:
            unposed.append(image.name)
            continue
        pose = image.cam_from_world
        pose = pose() if callable(pose) else pose  # a method since pycolmap 3.12, a property before
        w2c = np.asarray(pose.matrix(), dtype=np.float64)
        if not np.isfinite(w2c).all():  # a NaN pose would poison every angle measured from it
            unposed.append(image.name)
            continue
        posed.append(ColmapImage(name=image.name, camera_id=int(image.camera_id), c2w=c2w_from_w2c(w2c)))
    return sorted(posed, key=lambda image: image.name), sorted(unposed)


def _points(reconstruction: Any) -> tuple[np.ndarray, np.ndarray]:
    points = reconstruction.points3D
    xyz = np.array([point.xyz for point in points.values()], dtype=np.float64).reshape(-1, 3)
    track_lengths = np.array([point.track.length() for point in points.values()], dtype=np.int64)
    finite = np.isfinite(xyz).all(axis=1)
    return xyz[finite], track_lengths[finite]


def c2w_from_w2c(w2c: np.ndarray) -> np.ndarray:
    """Inverse of a rigid [R|t] (3x4 or 4x4) as a 4x4: [R^T | -R^T t]."""
    rotation, translation = w2c[:3, :3], w2c[:3, 3]
    c2w = np.eye(4)
    c2w[:3, :3] = rotation.T
    c2w[:3, 3] = -rotation.T @ translation
    return c2w
