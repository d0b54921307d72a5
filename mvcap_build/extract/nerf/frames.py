"""The transforms file's frames looked up on disk: each image found (as written, else with
`.png` or `.jpg`), checked against the folder, sized from its header and made a `Frame`.

What is wrong with a single frame (missing, unreadable, a name or a link leading out of the
object folder) is recorded by name rather than failing the object: one bad render should not
cost the other hundred.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath

from PIL import Image

from mvcap_build.dataset.safe_paths import inside_name, resolves_inside
from mvcap_build.extract.capture import ExtractError, Frame
from mvcap_build.extract.nerf.cameras import BLENDER_TO_OPENCV_CAMERA, intrinsics_matrix
from mvcap_build.extract.nerf.transforms import TransformsEntry

__all__ = ["IMAGE_SUFFIXES", "SortedFrames", "find_image", "image_size", "load_image", "sort_entries"]

IMAGE_SUFFIXES = ("", ".png", ".jpg")  # file_path often has no extension (NeRF-synthetic: ".png")


@dataclass
class SortedFrames:
    """Frames that can be used, and the names of those that cannot, by why."""

    frames: list[Frame] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)


def sort_entries(folder: Path, entries: list[TransformsEntry]) -> SortedFrames:
    result = SortedFrames()
    taken: set[str] = set()
    for entry in entries:
        name = _unique_name(entry, taken)
        relative = inside_name(entry.file_path)
        if relative is None:
            result.unsafe.append(entry.file_path)
            continue
        image_path = find_image(folder, relative)
        if image_path is None:
            result.missing.append(name)
        elif not resolves_inside(folder, image_path):  # a symlink leading out of the object folder
            result.unsafe.append(entry.file_path)
        elif (size := image_size(image_path)) is None:
            result.corrupt.append(name)
        else:
            result.frames.append(_make_frame(name, image_path, entry, *size))
    return result


def _unique_name(entry: TransformsEntry, taken: set[str]) -> str:
    """The file name as the source writes it (`r_0`); splits reuse names (train/r_0, val/r_0), so a
    repeat is qualified by its split, and a repeat within a split by a counter."""
    base = PurePosixPath(entry.file_path.replace("\\", "/")).name or entry.file_path
    name = base if base not in taken else f"{entry.split}:{base}"
    counter = 2
    while name in taken:
        name, counter = f"{entry.split}:{base}#{counter}", counter + 1
    taken.add(name)
    return name


def find_image(folder: Path, relative: str) -> Path | None:
    """The file as written, else with `.png`, else `.jpg`."""
    base = folder.joinpath(*relative.split("/"))
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


def _make_frame(name: str, image_path: Path, entry: TransformsEntry, width: int, height: int) -> Frame:
    return Frame(
        name=name,
        load=partial(load_image, image_path),  # a partial, not a lambda, so frames can be pickled
        c2w=entry.c2w_blender @ BLENDER_TO_OPENCV_CAMERA,
        K=intrinsics_matrix(entry.intrinsics, width, height),
        width=width,
        height=height,
    )
