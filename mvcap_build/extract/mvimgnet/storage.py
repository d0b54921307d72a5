"""Reading one MVImgNet instance's files wherever they are, an unpacked folder or members of
a zip part: its COLMAP model, its image files, and each image's header size and pixels.

Zip parts are read member by member and never unpacked; one open archive per part and process
is kept, since parsing a part's directory (~100k entries) for every frame would dominate.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from functools import lru_cache
from pathlib import Path, PurePosixPath

from PIL import Image

from mvcap_build.dataset.safe_paths import UNSAFE_PATH, resolves_inside
from mvcap_build.extract.capture import ExtractError
from mvcap_build.extract.colmap import MODEL_FILES, SparseModel, read_sparse_model, read_sparse_model_bytes
from mvcap_build.extract.mvimgnet.instances import IMAGES_DIR, SPARSE_DIR, FolderInstance, ZipInstance, ZipMember

__all__ = ["IMAGE_SUFFIXES", "ImageRef", "InstanceFiles", "image_header_size", "load_image"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})

ImageRef = Path | ZipMember


@lru_cache(maxsize=8)
def _open_zip(path: str, pid: int) -> zipfile.ZipFile:
    # Keyed by pid because a forked child must not share the parent's file offset.
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


class InstanceFiles:
    """One instance's files, wherever they are: its model and its images by path inside it.
    In a folder, a file that is a link leading out of the instance is not read (the path rule
    of `mvcap_build.dataset.safe_paths`); zip members were judged by name when listed."""

    def __init__(self, handle: FolderInstance | ZipInstance) -> None:
        self.handle = handle

    @property
    def where(self) -> str:
        return str(self.handle)

    def model(self) -> SparseModel:
        if isinstance(self.handle, FolderInstance):
            sparse = self.handle.folder / SPARSE_DIR
            if not sparse.is_dir():
                raise ExtractError(
                    "missing_reconstruction",
                    f"{self.handle.folder}: no {SPARSE_DIR}/{_contents_note(self.handle.folder)}",
                )
            if outside := [name for name in MODEL_FILES if not self.inside(sparse / name)]:
                detail = f"{sparse}: {', '.join(outside)} lead(s) outside {self.handle.folder}; not read"
                raise ExtractError(UNSAFE_PATH, detail)
            return read_sparse_model(sparse)
        files = {name: m for name in MODEL_FILES if (m := self.handle.member(f"{SPARSE_DIR}/{name}"))}
        if not files:
            raise ExtractError("missing_reconstruction", f"{self.where}: no {SPARSE_DIR}/ in the zip")
        try:
            data = {name: _read_member(member) for name, member in files.items()}
        except (OSError, zipfile.BadZipFile, zlib.error) as exc:
            raise ExtractError("corrupt_reconstruction", f"{self.where}: {exc}") from exc
        return read_sparse_model_bytes(data, self.where)

    def inside(self, ref: ImageRef) -> bool:
        """Whether reading `ref` stays inside the instance, symlinks followed."""
        return not isinstance(self.handle, FolderInstance) or resolves_inside(self.handle.folder, ref)

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
