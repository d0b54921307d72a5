"""Reading and checking `transforms_<split>.json`: each frame's Blender camera-to-world and
intrinsic fields, as written, before any image is looked up.

Anything malformed fails the whole object (`bad_transforms`): a file that is wrong in one place
cannot be trusted in the others, and a scaled or mirrored matrix would skew every angle the
stage measures.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mvcap_build.dataset.safe_paths import UNSAFE_PATH, resolves_inside
from mvcap_build.extract.capture import ExtractError

__all__ = [
    "INTRINSIC_FIELDS",
    "ROTATION_TOLERANCE",
    "TransformsEntry",
    "camera_angle_record",
    "intrinsics_source",
    "no_transforms_detail",
    "read_transforms",
    "transforms_files",
]

INTRINSIC_FIELDS = ("camera_angle_x", "fl_x", "fl_y", "cx", "cy", "w", "h")
ROTATION_TOLERANCE = 1e-3  # the JSON holds float32 values; anything worse is not a rotation


@dataclass(frozen=True)
class TransformsEntry:
    """One frame of a transforms file, checked but not yet looked up on disk."""

    split: str
    file_path: str
    c2w_blender: np.ndarray
    intrinsics: dict[str, float]


def transforms_files(folder: Path, splits: list[str]) -> list[tuple[str, Path]]:
    """(split, path) of the configured splits this folder has, in the configured order; one that
    is a link leading out of the folder refuses the object (`unsafe_path`)."""
    found = [(split, folder / f"transforms_{split}.json") for split in splits]
    found = [(split, path) for split, path in found if path.is_file()]
    for _, path in found:
        if not resolves_inside(folder, path):
            raise ExtractError(UNSAFE_PATH, f"{path} leads outside {folder}; not read")
    return found


def no_transforms_detail(folder: Path, splits: list[str]) -> str:
    wanted = ", ".join(f"transforms_{split}.json" for split in splits)
    others = sorted(p.name for p in folder.glob("transforms_*.json")) if folder.is_dir() else []
    present = f"; it has {', '.join(others)} (add those splits to `splits`)" if others else ""
    return f"{folder}: no {wanted}{present}"


def read_transforms(path: Path, split: str) -> tuple[dict[str, Any], list[TransformsEntry]]:
    """The file's top-level object and its checked frames."""
    data = _load_json(path)
    frames = data.get("frames")
    if not isinstance(frames, list):
        raise _bad(path, "'frames' is missing or not a list")
    top_intrinsics = _intrinsic_fields(data, path, "top level")
    entries = [_parse_frame(frame, index, split, top_intrinsics, path) for index, frame in enumerate(frames)]
    return data, entries


def _bad(path: Path, what: str) -> ExtractError:
    return ExtractError("bad_transforms", f"{path}: {what}")


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad(path, f"cannot be read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise _bad(path, f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _bad(path, f"expected a JSON object at the top, found {type(data).__name__}")
    return data


def _parse_frame(frame: Any, index: int, split: str, top_intrinsics: dict[str, float], path: Path) -> TransformsEntry:
    where = f"frames[{index}]"
    if not isinstance(frame, dict):
        raise _bad(path, f"{where} is not an object")
    file_path = frame.get("file_path")
    if not isinstance(file_path, str) or not file_path.strip():
        raise _bad(path, f"{where}.file_path is missing or empty")
    c2w = _camera_to_world(frame.get("transform_matrix"), path, where)
    intrinsics = {**top_intrinsics, **_intrinsic_fields(frame, path, where)}  # per-frame values win (instant-ngp)
    if "camera_angle_x" not in intrinsics and "fl_x" not in intrinsics and "fl_y" not in intrinsics:
        raise _bad(path, f"{where}: no camera_angle_x or fl_x/fl_y, so no focal length")
    return TransformsEntry(split=split, file_path=file_path.strip(), c2w_blender=c2w, intrinsics=intrinsics)


def _intrinsic_fields(data: dict[str, Any], path: Path, where: str) -> dict[str, float]:
    fields = {}
    for name in INTRINSIC_FIELDS:
        if name not in data:
            continue
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _bad(path, f"{where}: {name} is not a finite number ({value!r})")
        lowest_allowed_is_zero = name in ("cx", "cy")  # a principal point may sit on the edge
        if value < 0 or (value == 0 and not lowest_allowed_is_zero):
            raise _bad(path, f"{where}: {name} = {value} is out of range")
        if name == "camera_angle_x" and value >= math.pi:
            raise _bad(path, f"{where}: camera_angle_x = {value} rad is not a field of view below 180 degrees")
        fields[name] = float(value)
    return fields


def _camera_to_world(value: Any, path: Path, where: str) -> np.ndarray:
    """A 4x4 rigid transform (a 3x4 is completed); anything else is refused, not guessed at."""
    try:
        matrix = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise _bad(path, f"{where}.transform_matrix is not a matrix of numbers") from exc
    if matrix.shape == (3, 4):
        matrix = np.vstack([matrix, [0.0, 0.0, 0.0, 1.0]])
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise _bad(path, f"{where}.transform_matrix is not a finite 4x4 (or 3x4) matrix")
    if not np.allclose(matrix[3], [0.0, 0.0, 0.0, 1.0], atol=ROTATION_TOLERANCE):
        raise _bad(path, f"{where}.transform_matrix: last row is {matrix[3].tolist()}, not [0, 0, 0, 1]")
    rotation = matrix[:3, :3]
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=ROTATION_TOLERANCE) or np.linalg.det(rotation) <= 0:
        raise _bad(path, f"{where}.transform_matrix: the 3x3 part is not a rotation (scaled or mirrored)")
    return matrix


Parsed = dict[str, tuple[dict[str, Any], list[TransformsEntry]]]  # split -> (the file's top level, its frames)


def camera_angle_record(parsed: Parsed) -> float | dict[str, float] | None:
    """One number when the files agree (the usual case), else per split."""
    angles = {split: data["camera_angle_x"] for split, (data, _) in parsed.items() if "camera_angle_x" in data}
    values = set(angles.values())
    if not values:
        return None
    return float(values.pop()) if len(values) == 1 else {split: float(angle) for split, angle in angles.items()}


def intrinsics_source(entries: list[TransformsEntry]) -> str:
    uses_focal = {"fl_x" in e.intrinsics or "fl_y" in e.intrinsics for e in entries}
    if uses_focal == {True}:
        return "fl_x/fl_y, cx/cy (scaled to the image size)"
    if uses_focal == {False}:
        return "camera_angle_x (square pixels, principal point at the centre)"
    return "mixed: fl_x/fl_y where given, else camera_angle_x" if entries else "none (no frames)"
