"""Reader for MVImgNet: phone videos of single objects, each instance a folder
`<category_id>/<instance_id>/` with the extracted frames in `images/` and COLMAP's sparse model
in `sparse/0/`, either unpacked under a folder or inside the released zip parts.

Only parses: frames come back with OpenCV cameras and intrinsics for the image as stored; the
extract stage decides what to keep. What is wrong with a single frame (not in the model, missing,
unreadable header, a size that does not fit its camera) is recorded in `details`; what is wrong
with the instance (no model, a model pycolmap cannot read, nothing registered, a zip member
that would leave the dataset root) is an ExtractError for the ledger. Zip parts are read member by
member and never unpacked; a member path that escapes the root is never read at all.
"""

from __future__ import annotations

import csv
import glob
import io
import os
import re
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from mvcap_build.errors import SourceError
from mvcap_build.extract.capture import Capture, ExtractError, Frame
from mvcap_build.extract.colmap import (
    MODEL_FILES,
    PERSPECTIVE_MODELS,
    ColmapCamera,
    SparseModel,
    read_sparse_model,
    read_sparse_model_bytes,
    require_pycolmap,
)
from mvcap_build.extract.mvimgnet_config import MVImgNetSourceConfig

__all__ = [
    "CATEGORY_FIXES",
    "FolderInstance",
    "MVImgNetSourceConfig",
    "UnsafeInstance",
    "ZipInstance",
    "ZipMember",
    "camera_plane_up",
    "clean_category",
    "escapes_root",
    "image_header_size",
    "instance_identity",
    "list_instances",
    "load_image",
    "nearest_point_to_axes",
    "object_center",
    "read_capture",
    "read_categories_file",
    "read_category_map",
    "scaled_intrinsics",
    "zip_member_place",
    "zip_parts",
]

CATEGORIES_FILE = "mvimgnet_category.txt"
SPARSE_DIR = "sparse/0"
IMAGES_DIR = "images"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})

# Errors in MVImgNet's own mvimgnet_category.txt, keyed by the name as the file spells it (after
# trimming spaces), read line by line from the released file. Only mistakes are fixed; odd but
# real names (Soccer, Badminton, Pawpaw, toy chook, Shakyamuni...) are MVImgNet's choice and
# stay: a category_map overrides any of them.
CATEGORY_FIXES = {
    "wahser": "washer",  # id 2: transposed letters (ShapeNet's class "washer")
    "screw driver": "screwdriver",  # id 105: one word
    "Pipe PVC Metal pipe": "pipe",  # id 145: two labels run together (PVC pipe, metal pipe)
    "Swin ring": "swim ring",  # id 221
    "Adapter(Water pipe)": "water pipe adapter",  # id 253: missing space, qualifier in brackets
}
# The file capitalises ids from 129 on ("Tripod", "Bagged snacks"): names are lower-cased to
# read as nouns inside a caption prompt, except these proper nouns.
PROPER_NOUNS = frozenset({"Chinese", "Shakyamuni"})
UNKNOWN_CATEGORY = "unknown"  # only for unsafe zip entries that name no category at all

# A resized frame keeps its aspect ratio; more change than this means it was cropped or rotated
# too, and no scaling of K would describe it.
ASPECT_TOLERANCE = 0.03
PARALLEL_AXES_RATIO = 1e-2  # optical axes spread over less than ~6 degrees do not pin a point down
# Camera centres span a plane when they are spread in two directions (the narrow one at least 5 %
# of the wide one: an arc of ~30 degrees or more) and its thickness is under half its narrow side.
MIN_SPREAD_RATIO = 0.05
FLAT_PLANE_RATIO = 0.5
IRLS_ITERATIONS = 10


# Handles ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FolderInstance:
    """An unpacked instance folder."""

    folder: Path

    def __str__(self) -> str:
        return str(self.folder)


@dataclass(frozen=True)
class ZipMember:
    zip: str  # the zip part's path
    name: str  # the member's name inside it
    crc: int
    size: int


@dataclass(frozen=True)
class ZipInstance:
    """An instance inside zip parts: its members by their path inside the instance folder."""

    prefix: str  # "<category_id>/<instance_id>/" as in the zip
    members: tuple[tuple[str, ZipMember], ...]  # ("images/001.jpg", member), sorted

    def __str__(self) -> str:
        parts = sorted({member.zip for _, member in self.members})
        return f"zip:{','.join(parts)}:{self.prefix}"

    def member(self, relative: str) -> ZipMember | None:
        return dict(self.members).get(relative)


@dataclass(frozen=True)
class UnsafeInstance:
    """Zip entries whose paths would leave the dataset root: listed so they reach the ledger,
    never read."""

    zips: tuple[str, ...]
    names: tuple[str, ...]  # the offending member names, as written in the zip

    def __str__(self) -> str:
        return f"unsafe:{','.join(self.zips)}:{self.names[0]!r}"


Handle = FolderInstance | ZipInstance | UnsafeInstance


# Categories ---------------------------------------------------------------------------------


def clean_category(raw: str) -> str:
    """A name from mvimgnet_category.txt as a noun for prompts: spaces trimmed and collapsed,
    the file's known mistakes fixed, lower case except proper nouns and acronyms."""
    name = " ".join(raw.split())
    if name in CATEGORY_FIXES:
        return CATEGORY_FIXES[name]
    return " ".join(word if word in PROPER_NOUNS or (word.isupper() and len(word) > 1) else word.lower() for word in name.split())


def category_id(text: str) -> str:
    """Ids compare as numbers when they are numbers: folder `053` is category 53."""
    text = text.strip()
    return str(int(text)) if text.isdigit() else text


def read_categories_file(path: Path) -> dict[str, str]:
    """id -> cleaned name from MVImgNet's `id,name` lines (CRLF or LF, blank lines skipped; ids
    have gaps, which is fine: only an id an instance uses must be there)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"categories file {path} cannot be read: {exc}") from exc
    categories: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        raw_id, comma, raw_name = line.partition(",")
        name = clean_category(raw_name)
        if not comma or not raw_id.strip().isdigit() or not name:
            raise SourceError(f"{path}:{number}: expected `id,name`, found {line!r}")
        _add_category(categories, category_id(raw_id), name, f"{path}:{number}")
    return categories


def read_category_map(path: Path) -> dict[str, str]:
    """id -> category from a CSV `id,category` (a header row is optional); names are the user's
    and kept as written, only trimmed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceError(f"category_map not found: {path} (CSV with columns id,category)")
    mapping: dict[str, str] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            if number == 1 and [cell.strip().lower() for cell in row[:2]] == ["id", "category"]:
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip():
                raise SourceError(f"{path}:{number}: expected `id,category`, found {','.join(row)!r}")
            _add_category(mapping, category_id(row[0]), " ".join(row[1].split()), f"{path}:{number}")
    return mapping


def _add_category(categories: dict[str, str], key: str, name: str, where: str) -> None:
    if categories.get(key, name) != name:
        raise SourceError(f"{where}: id {key} listed again as {name!r} (first {categories[key]!r})")
    categories[key] = name


def _categories(config: MVImgNetSourceConfig, default_dir: Path) -> tuple[dict[str, str], str]:
    """The id -> category table (the file, then the map over it) and where it came from."""
    categories: dict[str, str] = {}
    origins = []
    file = Path(config.categories_file).expanduser() if config.categories_file else default_dir / CATEGORIES_FILE
    if config.categories_file and not file.is_file():
        raise SourceError(f"categories_file not found: {file}")
    if file.is_file():
        categories.update(read_categories_file(file))
        origins.append(str(file))
    if config.category_map:
        categories.update(read_category_map(config.category_map))
        origins.append(str(config.category_map))
    return categories, " + ".join(origins) or f"none (no {CATEGORIES_FILE} in {default_dir}, no category_map)"


def _resolve_categories(found: dict[str, Handle], categories: dict[str, str], origin: str) -> list[tuple[str, str, Handle]]:
    """(source_id, category, handle), sorted; every id an instance uses must be known, and all
    unknown ones are named at once so one edit of the map fixes them."""
    listed, unknown = [], defaultdict(list)
    for source_id in sorted(found):
        handle = found[source_id]
        key = category_id(source_id.split("/", 1)[0])
        if key in categories:
            listed.append((source_id, categories[key], handle))
        elif isinstance(handle, UnsafeInstance):  # never read: no category needed to ledger it
            listed.append((source_id, UNKNOWN_CATEGORY, handle))
        else:
            unknown[key].append(source_id)
    if unknown:
        named = "; ".join(f"{key} (e.g. {ids[0]}, {len(ids)} instance(s))" for key, ids in sorted(unknown.items()))
        raise SourceError(
            f"MVImgNet category id(s) not in the categories ({origin}): {named}; add them to a category_map CSV `id,category`"
        )
    return listed


# Listing ------------------------------------------------------------------------------------


def list_instances(config: MVImgNetSourceConfig) -> list[tuple[str, str, Handle]]:
    """(source_id "<category_id>/<instance_id>", category, handle) for every instance, sorted.

    Instances without images or a model are listed too, so they reach the ledger
    (`missing_reconstruction`) instead of vanishing; so are zip entries with unsafe paths
    (`unsafe_path`).
    """
    require_pycolmap()  # an environment problem: stop before listing 200k instances for nothing
    if config.folder is not None:
        root = Path(config.folder).expanduser()
        found: dict[str, Handle] = dict(_folder_instances(root))
        default_dir, where = root, str(root)
    else:
        parts = zip_parts(config.zips or [])
        found = _zip_instances(parts)
        default_dir, where = parts[0].parent, ", ".join(map(str, parts))
    if not found:
        raise SourceError(f"no MVImgNet instances in {where}: expected <category_id>/<instance_id>/{{images,sparse/0}}")
    return _resolve_categories(found, *_categories(config, default_dir))


def _folder_instances(root: Path) -> Iterable[tuple[str, FolderInstance]]:
    if not root.is_dir():
        raise SourceError(f"mvimgnet folder not found: {root}")
    for category_dir in _visible_dirs(root):
        for instance_dir in _visible_dirs(category_dir):
            yield f"{category_dir.name}/{instance_dir.name}", FolderInstance(instance_dir)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def zip_parts(patterns: list[Path]) -> list[Path]:
    """The zip parts, globs expanded, in a stable order."""
    parts: list[Path] = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_file():
            parts.append(path)
        elif matches := sorted(glob.glob(str(path))):
            parts.extend(Path(match) for match in matches)
        else:
            raise SourceError(f"mvimgnet zip part not found: {path}")
    return list(dict.fromkeys(parts))


def _zip_instances(parts: list[Path]) -> dict[str, Handle]:
    safe: dict[str, dict[str, ZipMember]] = defaultdict(dict)
    unsafe: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for part in parts:
        for info in _zip_infolist(part):
            if info.is_dir():
                continue
            key, relative = zip_member_place(info.filename)
            if relative is None:
                unsafe[key].append((str(part), info.filename))
            elif key:  # later parts win for a name given twice, as zipfile does within a part
                safe[key][relative] = ZipMember(str(part), info.filename, info.CRC, info.file_size)
    found: dict[str, Handle] = {key: ZipInstance(f"{key}/", tuple(sorted(members.items()))) for key, members in safe.items()}
    for key, entries in unsafe.items():
        found[key] = UnsafeInstance(tuple(sorted({z for z, _ in entries})), tuple(name for _, name in entries))
    return found


def _zip_infolist(part: Path) -> list[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(part) as archive:
            return archive.infolist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise SourceError(f"mvimgnet zip part {part} cannot be read: {exc}") from exc


def zip_member_place(name: str) -> tuple[str, str | None]:
    """(instance key "<category>/<instance>", path inside the instance) of a zip member.

    Decided on the text alone: absolute names, drive letters and any `..` make the path None
    (unsafe) under a key made of its first two components, so the entry is ledgered, not read.
    Safe members outside any instance (a README at the top) get an empty key.
    """
    if escapes_root(name):
        return "/".join(name.replace("\\", "/").split("/")[:2]).strip() or "unnamed", None
    parts = _path_parts(name)
    if len(parts) < 3:
        return "", ""
    return f"{parts[0]}/{parts[1]}", "/".join(parts[2:])


def escapes_root(name: str) -> bool:
    """Whether a stored path could point outside the folder it is relative to: absolute, with a
    drive, or with any `..` (refused even where it would stay inside: no real entry needs it)."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or bool(re.match(r"^[A-Za-z]:", name)) or ".." in parts or "\x00" in name


def _path_parts(name: str) -> list[str]:
    return [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]


def instance_identity(handle: Handle) -> dict[str, str]:
    """What the fingerprint of an extracted instance depends on: the CRC-32 of cameras.bin and
    the sizes of images.bin and points3D.bin, equal for a folder and a zip of the same data.
    Cheap on purpose (a zip's CRCs are in its directory, cameras.bin is tiny): the whole model
    is megabytes, and a run checks every committed instance of its shard."""
    if isinstance(handle, UnsafeInstance):
        return {"unsafe": ",".join(handle.names)}
    identity = {}
    for name in MODEL_FILES:
        if isinstance(handle, ZipInstance):
            member = handle.member(f"{SPARSE_DIR}/{name}")
            crc, size = (member.crc, member.size) if member else (None, None)
        else:
            path = handle.folder / SPARSE_DIR / name
            size = path.stat().st_size if path.is_file() else None
            crc = zlib.crc32(path.read_bytes()) if size is not None and name == "cameras.bin" else None
        identity[name] = "missing" if size is None else (f"crc32:{crc:08x}" if name == "cameras.bin" else f"size:{size}")
    return identity


# Reading bytes from either storage --------------------------------------------------------------


ImageRef = Path | ZipMember


@lru_cache(maxsize=8)
def _open_zip(path: str, pid: int) -> zipfile.ZipFile:
    # One open archive per part and process: parsing a part's directory (~100k entries) for every
    # frame would dominate. Keyed by pid because a forked child must not share the parent's file
    # offset.
    return zipfile.ZipFile(path)


def _read_member(member: ZipMember) -> bytes:
    return _open_zip(member.zip, os.getpid()).read(member.name)


def _read_bytes(ref: ImageRef) -> bytes:
    return ref.read_bytes() if isinstance(ref, Path) else _read_member(ref)


def _describe(ref: ImageRef) -> str:
    return str(ref) if isinstance(ref, Path) else f"{ref.zip}:{ref.name}"


def image_header_size(ref: ImageRef) -> tuple[int, int] | None:
    """(width, height) from the header alone, or None if Pillow cannot open it at all."""
    try:
        if isinstance(ref, Path):
            with Image.open(ref) as image:
                size = image.size
        else:
            with _open_zip(ref.zip, os.getpid()).open(ref.name) as stream, Image.open(stream) as image:
                size = image.size
    except Exception:  # Pillow's plugins and zipfile raise many kinds of errors on bad bytes
        return None
    return size if size[0] > 0 and size[1] > 0 else None


def load_image(ref: ImageRef) -> Image.Image:
    """The fully decoded frame as RGB. No EXIF rotation: COLMAP matched the pixels as stored."""
    try:
        with Image.open(io.BytesIO(_read_bytes(ref))) as image:
            image.load()
            return image.convert("RGB")
    except Exception as exc:  # truncated data, a bad CRC in the zip, a vanished file...
        raise ExtractError("corrupt_image", f"{_describe(ref)}: {exc}") from exc


class _Store:
    """One instance's files, wherever they are: its model and its images by path inside it."""

    def __init__(self, handle: FolderInstance | ZipInstance) -> None:
        self.handle = handle

    @property
    def where(self) -> str:
        return str(self.handle)

    def model(self) -> SparseModel:
        if isinstance(self.handle, FolderInstance):
            sparse = self.handle.folder / SPARSE_DIR
            if not sparse.is_dir():
                raise ExtractError("missing_reconstruction", f"{self.handle.folder}: no {SPARSE_DIR}/{_contents_note(self.handle.folder)}")
            return read_sparse_model(sparse)
        files = {name: m for name in MODEL_FILES if (m := self.handle.member(f"{SPARSE_DIR}/{name}"))}
        if not files:
            raise ExtractError("missing_reconstruction", f"{self.where}: no {SPARSE_DIR}/ in the zip")
        try:
            data = {name: _read_member(member) for name, member in files.items()}
        except (OSError, zipfile.BadZipFile, zlib.error) as exc:
            raise ExtractError("corrupt_reconstruction", f"{self.where}: {exc}") from exc
        return read_sparse_model_bytes(data, self.where)

    def images(self) -> dict[str, ImageRef]:
        """Image files by their path inside the instance ("images/001.jpg")."""
        if isinstance(self.handle, ZipInstance):
            return {rel: m for rel, m in self.handle.members if rel.startswith(f"{IMAGES_DIR}/") and _is_image(rel)}
        folder = self.handle.folder
        found = (folder / IMAGES_DIR).rglob("*") if (folder / IMAGES_DIR).is_dir() else ()
        return {p.relative_to(folder).as_posix(): p for p in sorted(found) if _is_image(p.name) and p.is_file()}


def _is_image(name: str) -> bool:
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES and not PurePosixPath(name).name.startswith(".")


def _contents_note(folder: Path) -> str:
    entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return " (the instance folder is empty)" if not entries else f" (it has: {', '.join(entries[:10])})"


# Reading one capture ------------------------------------------------------------------------


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


def read_capture(source_id: str, category: str, handle: Handle, config: MVImgNetSourceConfig) -> Capture:
    if isinstance(handle, UnsafeInstance):
        raise ExtractError(
            "unsafe_path", f"{', '.join(handle.zips)}: member(s) {list(handle.names)[:5]} would leave the dataset root; not read"
        )
    store = _Store(handle)
    model = store.model()
    _require_perspective(model, store.where)
    if not model.images:
        raise ExtractError("unregistered", f"{store.where}: COLMAP registered none of the {len(model.unposed)} image(s)")
    result = _sort_frames(model, store.images())
    _require_some_frames(result, model, store.where)
    c2ws = np.array([image.c2w for image in model.images])
    up, up_method, up_fit = camera_plane_up(c2ws)
    center, center_method = object_center(c2ws, model.points, model.track_lengths)
    return Capture(
        source_id=source_id,
        category=category,
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


def _sort_frames(model: SparseModel, on_disk: dict[str, ImageRef]) -> _Frames:
    result = _Frames([], [], [], [], [], [], [])
    matched: set[str] = set()
    names = _frame_names([image.name for image in model.images])
    for image, name in zip(model.images, names):
        relative = _safe_relative(image.name)
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


def _safe_relative(name: str) -> str | None:
    return None if escapes_root(name) else "/".join(_path_parts(name))


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


# Up and centre --------------------------------------------------------------------------------


def camera_plane_up(c2ws: np.ndarray) -> tuple[np.ndarray, str, dict[str, Any]]:
    """The normal of the least-squares plane through the camera centres, signed to agree with the
    cameras' mean up vector; that mean itself when the centres do not span a plane.

    MVImgNet videos walk around the object at roughly one height, so the centres lie near a
    horizontal plane whose normal is the world's up; COLMAP's own world axes are arbitrary.
    """
    centres = c2ws[:, :3, 3]
    mean_up = _unit(-c2ws[:, :3, 1].mean(axis=0))  # OpenCV cameras: -y points up in the image
    if np.linalg.norm(mean_up) == 0:
        mean_up = _unit(-c2ws[0, :3, 1])
    if len(centres) >= 3:
        _, singular, vt = np.linalg.svd(centres - centres.mean(axis=0))
        fit = {"plane_singular_values": [float(s) for s in singular], "cameras": len(centres)}
        if singular[1] > MIN_SPREAD_RATIO * singular[0] and singular[2] <= FLAT_PLANE_RATIO * singular[1]:
            normal = vt[2] if vt[2] @ mean_up >= 0 else -vt[2]
            fit["angle_to_mean_camera_up_deg"] = _angle_deg(normal, mean_up)
            method = (
                f"camera-centre plane normal: least-squares plane (SVD) through the {len(centres)} camera centres, "
                "signed to agree with the cameras' mean up vector (-y of each OpenCV camera)"
            )
            return normal, method, fit
    else:
        fit = {"plane_singular_values": None, "cameras": len(centres)}
    method = f"cameras' mean up vector (-y of each OpenCV camera, {len(centres)} cameras): the camera centres do not span a plane"
    return mean_up, method, fit


def object_center(c2ws: np.ndarray, points: np.ndarray, track_lengths: np.ndarray) -> tuple[np.ndarray, str]:
    """Where the capture looks: the point nearest every camera's optical axis (robust least
    squares), else the median of the sparse points weighted by track length, else the mean of
    the camera centres.

    Whoever filmed kept the object in the middle of the frame all the way round, so the axes
    meet at it; the poses alone decide, so background points (a table, walls, which can outnumber
    the object's points) cannot pull it, and it is the pivot that makes azimuth and elevation
    about it meaningful.
    """
    point = nearest_point_to_axes(c2ws)
    if point is not None:
        return point, f"robust least squares (IRLS, L1): the point nearest the optical axes of {len(c2ws)} cameras"
    if len(points):
        weights = np.maximum(track_lengths.astype(np.float64), 1.0)
        median = np.array([_weighted_median(points[:, axis], weights) for axis in range(3)])
        return (
            median,
            f"fallback: median of {len(points)} sparse points weighted by track length (the optical axes do not meet in front of the cameras)",
        )
    return c2ws[:, :3, 3].mean(axis=0), "fallback: mean of the camera centres (optical axes do not meet, no sparse points)"


def nearest_point_to_axes(c2ws: np.ndarray) -> np.ndarray | None:
    """The point with the least summed distance to the cameras' optical axes (+z through each
    centre), by iteratively reweighted least squares so a few cameras looking elsewhere barely
    move it. None when the axes are nearly parallel or meet behind most cameras."""
    if len(c2ws) < 2:
        return None
    centres = c2ws[:, :3, 3]
    axes = c2ws[:, :3, 2] / np.linalg.norm(c2ws[:, :3, 2], axis=1, keepdims=True)
    weights = np.ones(len(c2ws))
    point = None
    for _ in range(IRLS_ITERATIONS):
        point = _weighted_axes_point(centres, axes, weights)
        if point is None:
            return None
        offsets = point - centres
        off_axis = np.linalg.norm(offsets - (offsets * axes).sum(axis=1, keepdims=True) * axes, axis=1)
        floor = 1e-3 * max(float(np.median(np.linalg.norm(offsets, axis=1))), 1e-12)
        weights = 1.0 / np.maximum(off_axis, floor)
    in_front = ((point - centres) * axes).sum(axis=1) > 0
    return point if in_front.mean() > 0.5 else None


def _weighted_axes_point(centres: np.ndarray, axes: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    off_axis = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]  # projections onto planes normal to each axis
    normal_matrix = (weights[:, None, None] * off_axis).sum(axis=0)
    rhs = (weights[:, None, None] * off_axis @ centres[:, :, None]).sum(axis=0)[:, 0]
    eigenvalues = np.linalg.eigvalsh(normal_matrix)
    if eigenvalues[0] < PARALLEL_AXES_RATIO * eigenvalues[-1]:
        return None
    return np.linalg.solve(normal_matrix, rhs)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 1e-12 else np.zeros(3)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0))))
