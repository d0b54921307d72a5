"""Reading one MVImgNet instance into a `Capture`: its COLMAP model's registered images become
frames (OpenCV cameras, intrinsics for the image as stored), with up and centre from the poses.

Only parses; the extract stage decides what to keep. What is wrong with a single frame (not in
the model, missing, unreadable header, a size that does not fit its camera, a name or link
leading out of the instance) is recorded in `details`; what is wrong with the instance (no model,
a model pycolmap cannot read, nothing registered, a zip member that would leave the dataset root)
is an ExtractError for the ledger.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from mvcap_build.dataset import ObjectRecord
from mvcap_build.dataset.safe_paths import UNSAFE_PATH, inside_name
from mvcap_build.extract.capture import Capture, ExtractError, Frame, handle_of
from mvcap_build.extract.colmap import PERSPECTIVE_MODELS, ColmapCamera, SparseModel
from mvcap_build.extract.geometry import camera_plane_up, object_center
from mvcap_build.extract.mvimgnet.instances import IMAGES_DIR, Handle, UnsafeInstance
from mvcap_build.extract.mvimgnet.storage import ImageRef, InstanceFiles, image_header_size, load_image
from mvcap_build.extract.mvimgnet_config import MVImgNetSourceConfig

__all__ = ["ASPECT_TOLERANCE", "read_capture", "scaled_intrinsics"]

# A resized frame keeps its aspect ratio; more change than this means it was cropped or rotated
# too, and no scaling of K would describe it.
ASPECT_TOLERANCE = 0.03


@dataclass
class _Frames:
    """Usable frames and, by why, the names of the model's images that are not."""

    frames: list[Frame]
    missing: list[str]
    corrupt: list[str]
    unsafe: list[str]
    size_mismatch: list[str]
    unregistered: list[str]
    resized: list[tuple[str, tuple[int, int], tuple[int, int]]]  # name, camera size, image size


def read_capture(record: ObjectRecord, config: MVImgNetSourceConfig) -> Capture:
    """Every registered image found on disk (or in the zip) as a frame; the others are named in
    `details` by why, so the manifest says what was left out."""
    handle: Handle = handle_of(record)
    if isinstance(handle, UnsafeInstance):
        raise ExtractError(
            UNSAFE_PATH,
            f"{', '.join(handle.zips)}: member(s) {list(handle.names)[:5]} would leave the dataset root; not read",
        )
    files = InstanceFiles(handle)
    model = files.model()
    _require_perspective(model, files.where)
    if not model.images:
        raise ExtractError(
            "unregistered", f"{files.where}: COLMAP registered none of the {len(model.unposed)} image(s)"
        )
    result = _sort_frames(model, files)
    _require_some_frames(result, model, files.where)
    c2ws = np.array([image.c2w for image in model.images])
    up, up_method, up_fit = camera_plane_up(c2ws)
    center, center_method = object_center(c2ws, model.points, model.track_lengths)
    return Capture(
        source_id=record.source_id,
        category=record.category,
        frames=result.frames,
        up=up,
        up_method=up_method,
        center=center,
        points=model.points,
        reconstruction="colmap",
        details=_details(model, result, up_fit, center_method),
    )


def _require_perspective(model: SparseModel, where: str) -> None:
    used = {model.cameras[image.camera_id].model for image in model.images}
    other = sorted(used - PERSPECTIVE_MODELS)
    if other:
        raise ExtractError("unsupported_camera", f"{where}: camera model(s) {other} are not a pinhole plus distortion")


def _require_some_frames(result: _Frames, model: SparseModel, where: str) -> None:
    if result.frames:
        return
    counts = (
        f"{len(model.images)} registered: {len(result.missing)} missing, {len(result.corrupt)} unreadable, "
        f"{len(result.size_mismatch)} of another shape, {len(result.unsafe)} with unsafe names"
    )
    if result.corrupt or result.size_mismatch:
        raise ExtractError("corrupt_image", f"{where}: no usable frame ({counts})")
    raise ExtractError("missing_frame", f"{where}: no registered image is on disk ({counts})")


def _sort_frames(model: SparseModel, files: InstanceFiles) -> _Frames:
    result = _Frames([], [], [], [], [], [], [])
    on_disk = files.images()
    matched: set[str] = set()
    names = _frame_names([image.name for image in model.images])
    for image, name in zip(model.images, names):
        relative = inside_name(image.name)
        if relative is None:
            result.unsafe.append(image.name)
            continue
        # COLMAP names images relative to the folder it was given: images/ here, the instance
        # folder if it was run one level up.
        key = next((k for k in (f"{IMAGES_DIR}/{relative}", relative) if k in on_disk), None)
        if key is None:
            result.missing.append(name)
            continue
        matched.add(key)
        if not files.inside(on_disk[key]):  # a symlink leading out of the instance folder
            result.unsafe.append(image.name)
            continue
        frame = _make_frame(name, on_disk[key], image.c2w, model.cameras[image.camera_id], result)
        if frame is not None:
            result.frames.append(frame)
    result.unregistered = sorted(PurePosixPath(key).name for key in on_disk if key not in matched)
    return result


def _frame_names(model_names: list[str]) -> list[str]:
    """File names without folders, as Frame.name wants; the full name where two would clash."""
    bases = [PurePosixPath(name.replace("\\", "/")).name for name in model_names]
    counts = Counter(bases)
    return [base if counts[base] == 1 else name for base, name in zip(bases, model_names)]


def _make_frame(name: str, ref: ImageRef, c2w: np.ndarray, camera: ColmapCamera, result: _Frames) -> Frame | None:
    size = image_header_size(ref)
    if size is None:
        result.corrupt.append(name)
        return None
    K = scaled_intrinsics(camera.K, (camera.width, camera.height), size)
    if K is None:
        result.size_mismatch.append(name)
        return None
    if size != (camera.width, camera.height):
        result.resized.append((name, (camera.width, camera.height), size))
    return Frame(name=name, load=partial(load_image, ref), c2w=c2w, K=K, width=size[0], height=size[1])


def scaled_intrinsics(K: np.ndarray, camera_size: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray | None:
    """K for the image as stored: the camera's own when sizes agree, scaled per axis when the
    frames were resized after COLMAP ran, None when the shape changed too (cropped, rotated)."""
    if image_size == camera_size:
        return K.copy()
    scale_x, scale_y = image_size[0] / camera_size[0], image_size[1] / camera_size[1]
    if abs(scale_x / scale_y - 1.0) > ASPECT_TOLERANCE:
        return None
    return np.diag([scale_x, scale_y, 1.0]) @ K


def _details(model: SparseModel, result: _Frames, up_fit: dict[str, Any], center_method: str) -> dict[str, Any]:
    used = [model.cameras[image.camera_id] for image in model.images]
    distortion = {
        image.name: model.cameras[image.camera_id].distortion
        for image in model.images
        if any(value != 0 for value in model.cameras[image.camera_id].distortion.values())
    }
    details: dict[str, Any] = {
        "camera_models": sorted({camera.model for camera in used}),
        "distortion_ignored": bool(distortion),  # K is the pinhole part; frames are not undistorted
        "distortion": distortion,
        "counts": {
            "registered": len(model.images),
            "frames": len(result.frames),
            "unregistered": len(result.unregistered) + len(model.unposed),
            "missing": len(result.missing),
            "points": len(model.points),
        },
        "unregistered_frames": result.unregistered,
        "unposed_in_model": model.unposed,
        "missing_frames": result.missing,
        "corrupt_frames": result.corrupt,
        "unsafe_frames": result.unsafe,
        "size_mismatch_frames": result.size_mismatch,
        "intrinsics": _intrinsics_note(result),
        "center_method": center_method,
        "up_fit": up_fit,
    }
    return details


def _intrinsics_note(result: _Frames) -> dict[str, Any]:
    if not result.resized:
        return {"from": "COLMAP cameras, image sizes match"}
    scales = np.array([(image[0] / camera[0], image[1] / camera[1]) for _, camera, image in result.resized])
    return {
        "from": "COLMAP cameras scaled per axis to each image: the images were resized after COLMAP ran",
        "resized_frames": len(result.resized),
        "camera_sizes": sorted({camera for _, camera, _ in result.resized}),
        "image_sizes": sorted({image for _, _, image in result.resized}),
        "scale_x": [float(scales[:, 0].min()), float(scales[:, 0].max())],
        "scale_y": [float(scales[:, 1].min()), float(scales[:, 1].max())],
        "max_aspect_change": float(np.abs(scales[:, 0] / scales[:, 1] - 1.0).max()),
    }
