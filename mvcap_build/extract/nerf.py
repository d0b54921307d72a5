"""Reader for IM3D and any NeRF-synthetic ("Blender") folder: one object per subfolder, each with
`transforms_<split>.json` (cameras) and the RGBA renders they name.

Only parses: frames come back with OpenCV cameras and the image size from the header; the
extract stage decides what to keep. Whatever is wrong with a single frame (missing, unreadable,
pointing outside its folder) is recorded in `details` rather than failing the object; a
transforms file that cannot be trusted fails the whole object (`bad_transforms`).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
from PIL import Image

from mvcap_build.errors import SourceError
from mvcap_build.extract.capture import Capture, ExtractError, Frame
from mvcap_build.extract.geometry import nearest_point_to_axes
from mvcap_build.extract.nerf_config import NerfSourceConfig

__all__ = [
    "NerfSourceConfig",
    "category_for",
    "default_category",
    "instance_identity",
    "intrinsics_matrix",
    "list_instances",
    "load_image",
    "read_capture",
    "read_category_map",
]

# Blender/OpenGL cameras look down -z with +y up; OpenCV ones down +z with +y down. The flip is
# its own inverse (the same matrix as render.cameras.OPENCV_TO_BLENDER_CAMERA).
BLENDER_TO_OPENCV_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])
WORLD_UP = np.array([0.0, 0.0, 1.0])
UP_METHOD = "given: world +z (NeRF-synthetic/Blender convention)"
IMAGE_SUFFIXES = ("", ".png", ".jpg")  # file_path often has no extension (NeRF-synthetic: ".png")
INTRINSIC_FIELDS = ("camera_angle_x", "fl_x", "fl_y", "cx", "cy", "w", "h")
ROTATION_TOLERANCE = 1e-3  # the JSON holds float32 values; anything worse is not a rotation
# Axes within about a degree of each other do not pin down a point. Looser than the geometry
# default (~6 degrees): the fallback here is the world origin, cruder than a narrow-baseline fit.
PARALLEL_AXES_RATIO = 1e-4


# Listing -----------------------------------------------------------------------------------


def list_instances(config: NerfSourceConfig) -> list[tuple[str, str, Path]]:
    """(source_id, category, folder) for every visible subfolder, sorted by name.

    Folders without a transforms file are listed too, so they reach the ledger
    (`missing_reconstruction`) instead of vanishing silently.
    """
    top = Path(config.folder).expanduser()
    if not top.is_dir():
        raise SourceError(f"{config.kind} source folder not found: {top}")
    category_map = read_category_map(config.category_map) if config.category_map else None
    folders = sorted((p for p in top.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    return [(p.name, category_for(p.name, category_map), p) for p in folders]


def class_name(folder_name: str) -> str:
    """IM3D folders are `{class}_{NN}`; a folder without the trailing index is all class."""
    match = re.fullmatch(r"(.+?)_\d+", folder_name)
    return match.group(1) if match else folder_name


def default_category(folder_name: str) -> str:
    """`grand_piano_03` -> `grand piano`."""
    return " ".join(class_name(folder_name).replace("_", " ").split())


def _class_key(name: str) -> str:
    # A map may spell classes as in folder names (grand_piano) or as words (grand piano).
    return " ".join(name.replace("_", " ").split())


def read_category_map(path: Path) -> tuple[str, dict[str, str]]:
    """The key column (`folder` or `class`) and key -> category from a CSV with that header."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"category_map not found: {path} (columns: folder,category or class,category)")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        keys = [column for column in ("folder", "class") if column in columns]
        if "category" not in columns or len(keys) != 1:
            raise SourceError(f"{path}: needs a header with 'category' and one of 'folder' or 'class'")
        key_column = keys[0]
        mapping: dict[str, str] = {}
        for line, row in enumerate(reader, start=2):
            key, category = (row.get(key_column) or "").strip(), (row.get("category") or "").strip()
            if not key or not category:
                raise SourceError(f"{path}:{line}: empty {key_column} or category")
            if key_column == "class":
                key = _class_key(key)
            if mapping.get(key, category) != category:
                raise SourceError(f"{path}:{line}: {key_column} {key!r} listed again with another category")
            mapping[key] = category
    return key_column, mapping


def category_for(folder_name: str, category_map: tuple[str, dict[str, str]] | None = None) -> str:
    """The map's category when it names this folder (or its class), else the name rule."""
    if category_map is not None:
        key_column, mapping = category_map
        key = folder_name if key_column == "folder" else _class_key(class_name(folder_name))
        if key in mapping:
            return mapping[key]
    return default_category(folder_name)


def instance_identity(folder: Path) -> dict[str, str]:
    """Digests of the transforms files, so an edited capture is extracted again (images are not
    hashed: too slow for a listing, and NeRF datasets do not change them in place)."""
    folder = Path(folder)
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.glob("transforms_*.json"))
        if path.is_file()
    }


# Reading one capture -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One frame of a transforms file, checked but not yet looked up on disk."""

    split: str
    file_path: str
    c2w_blender: np.ndarray
    intrinsics: dict[str, float]


@dataclass
class _Sorted:
    """Frames that can be used, and the names of those that cannot, by why."""

    frames: list[Frame] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)


def read_capture(source_id: str, category: str, folder: Path, config: NerfSourceConfig) -> Capture:
    """Every frame of the configured splits whose image opens; the others are named in
    `details` (missing, corrupt, unsafe) so the manifest says what was left out and why."""
    folder = Path(folder)
    files = transforms_files(folder, config.splits)
    if not files:
        raise ExtractError("missing_reconstruction", _no_transforms_detail(folder, config.splits))
    parsed = {split: read_transforms(path, split) for split, path in files}
    entries = [entry for _, split_entries in parsed.values() for entry in split_entries]
    result = _sort_entries(folder, entries)
    center, center_method = _center(result.frames)
    details: dict[str, Any] = {
        "splits": [split for split, _ in files],
        "transforms_files": [path.name for _, path in files],
        "camera_angle_x": _camera_angle_record(parsed),
        "intrinsics_from": _intrinsics_source(entries),
        "center_method": center_method,
        "missing_frames": result.missing,
        "corrupt_frames": result.corrupt,
        "unsafe_frames": result.unsafe,
    }
    return Capture(
        source_id=source_id,
        category=category,
        frames=result.frames,
        up=WORLD_UP.copy(),
        up_method=UP_METHOD,
        center=center,
        points=None,
        reconstruction="given",
        details=details,
    )


def transforms_files(folder: Path, splits: list[str]) -> list[tuple[str, Path]]:
    """(split, path) of the configured splits this folder has, in the configured order."""
    found = ((split, folder / f"transforms_{split}.json") for split in splits)
    return [(split, path) for split, path in found if path.is_file()]


def _no_transforms_detail(folder: Path, splits: list[str]) -> str:
    wanted = ", ".join(f"transforms_{split}.json" for split in splits)
    others = sorted(p.name for p in folder.glob("transforms_*.json")) if folder.is_dir() else []
    present = f"; it has {', '.join(others)} (add those splits to `splits`)" if others else ""
    return f"{folder}: no {wanted}{present}"


# The transforms file -----------------------------------------------------------------------


def read_transforms(path: Path, split: str) -> tuple[dict[str, Any], list[_Entry]]:
    """The file's top-level object and its checked frames; anything malformed fails the object,
    since a file that is wrong in one place cannot be trusted in the others."""
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


def _parse_frame(frame: Any, index: int, split: str, top_intrinsics: dict[str, float], path: Path) -> _Entry:
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
    return _Entry(split=split, file_path=file_path.strip(), c2w_blender=c2w, intrinsics=intrinsics)


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
    """A 4x4 rigid transform (a 3x4 is completed); a scaled or mirrored one would skew every
    angle the stage measures, so it is refused rather than guessed at."""
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


def _camera_angle_record(parsed: dict[str, tuple[dict[str, Any], list[_Entry]]]) -> float | dict[str, float] | None:
    """One number when the files agree (the usual case), else per split."""
    angles = {split: data["camera_angle_x"] for split, (data, _) in parsed.items() if "camera_angle_x" in data}
    values = set(angles.values())
    if not values:
        return None
    return float(values.pop()) if len(values) == 1 else {split: float(angle) for split, angle in angles.items()}


def _intrinsics_source(entries: list[_Entry]) -> str:
    uses_focal = {"fl_x" in e.intrinsics or "fl_y" in e.intrinsics for e in entries}
    if uses_focal == {True}:
        return "fl_x/fl_y, cx/cy (scaled to the image size)"
    if uses_focal == {False}:
        return "camera_angle_x (square pixels, principal point at the centre)"
    return "mixed: fl_x/fl_y where given, else camera_angle_x" if entries else "none (no frames)"


# Frames on disk ----------------------------------------------------------------------------


def _sort_entries(folder: Path, entries: list[_Entry]) -> _Sorted:
    result = _Sorted()
    taken: set[str] = set()
    for entry in entries:
        name = _unique_name(entry, taken)
        relative = safe_relative_path(entry.file_path)
        if relative is None:
            result.unsafe.append(entry.file_path)
            continue
        image_path = find_image(folder, relative)
        if image_path is None:
            result.missing.append(name)
        elif not _inside(folder, image_path):  # a symlink leading out of the object folder
            result.unsafe.append(entry.file_path)
        elif (size := image_size(image_path)) is None:
            result.corrupt.append(name)
        else:
            result.frames.append(_make_frame(name, image_path, entry, *size))
    return result


def _unique_name(entry: _Entry, taken: set[str]) -> str:
    """The file name as the source writes it (`r_0`); splits reuse names (train/r_0, val/r_0), so a
    repeat is qualified by its split, and a repeat within a split by a counter."""
    base = PurePosixPath(entry.file_path.replace("\\", "/")).name or entry.file_path
    name = base if base not in taken else f"{entry.split}:{base}"
    counter = 2
    while name in taken:
        name, counter = f"{entry.split}:{base}#{counter}", counter + 1
    taken.add(name)
    return name


def safe_relative_path(file_path: str) -> PurePosixPath | None:
    """The path inside the object folder that `file_path` names, or None if it would leave it
    (absolute, a drive, or more `..` than folders). Decided on the text alone, before any
    file is touched."""
    text = file_path.replace("\\", "/")  # datasets written on Windows use backslashes
    if PurePosixPath(text).is_absolute() or PureWindowsPath(file_path).drive:
        return None
    parts: list[str] = []
    for part in PurePosixPath(text).parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts) if parts else None


def _inside(folder: Path, path: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def find_image(folder: Path, relative: PurePosixPath) -> Path | None:
    """The file as written, else with `.png`, else `.jpg`."""
    base = folder.joinpath(*relative.parts)
    for suffix in IMAGE_SUFFIXES:
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the header, or None if Pillow cannot open the file at all."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception:  # Pillow's format plugins raise many kinds of errors on bad bytes
        return None
    return (width, height) if width > 0 and height > 0 else None


def load_image(path: Path) -> Image.Image:
    """The fully decoded image, RGB or RGBA (the alpha of renders is the object mask)."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(_target_mode(image))
    except Exception as exc:  # truncated or otherwise broken data, whatever the plugin raises
        raise ExtractError("corrupt_image", f"{path}: {exc}") from exc


def _target_mode(image: Image.Image) -> str:
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    return "RGBA" if has_alpha else "RGB"


def _make_frame(name: str, image_path: Path, entry: _Entry, width: int, height: int) -> Frame:
    return Frame(
        name=name,
        load=partial(load_image, image_path),  # a partial, not a lambda, so frames can be pickled
        c2w=entry.c2w_blender @ BLENDER_TO_OPENCV_CAMERA,
        K=intrinsics_matrix(entry.intrinsics, width, height),
        width=width,
        height=height,
    )


def intrinsics_matrix(fields: dict[str, float], width: int, height: int) -> np.ndarray:
    """K in pixels of the actual image: instant-ngp's fl_x/fl_y/cx/cy scaled from their w/h when
    the image was resized, else camera_angle_x (a horizontal FoV holds at any resolution)."""
    if "fl_x" in fields or "fl_y" in fields:
        scale_x, scale_y = _resize_scales(fields, width, height)
        given_width, given_height = width / scale_x, height / scale_y
        fx = fields.get("fl_x", fields.get("fl_y")) * scale_x
        fy = fields.get("fl_y", fields.get("fl_x")) * scale_y
        cx = fields.get("cx", given_width / 2.0) * scale_x
        cy = fields.get("cy", given_height / 2.0) * scale_y
    else:
        fx = fy = 0.5 * width / math.tan(0.5 * fields["camera_angle_x"])
        cx, cy = width / 2.0, height / 2.0
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def _resize_scales(fields: dict[str, float], width: int, height: int) -> tuple[float, float]:
    # With only one of w/h given, assume the image was resized keeping its aspect ratio.
    scale_x = width / fields["w"] if "w" in fields else None
    scale_y = height / fields["h"] if "h" in fields else None
    scale_x = scale_x or scale_y or 1.0
    scale_y = scale_y or scale_x
    return scale_x, scale_y


# The object's centre -----------------------------------------------------------------------


def _center(frames: list[Frame]) -> tuple[np.ndarray, str]:
    point = nearest_point_to_axes([frame.c2w for frame in frames], min_eigen_ratio=PARALLEL_AXES_RATIO)
    if point is None:
        return np.zeros(3), "world origin (fallback: fewer than two cameras, or their optical axes are parallel)"
    return point, f"least squares: the point nearest the optical axes of {len(frames)} cameras"
