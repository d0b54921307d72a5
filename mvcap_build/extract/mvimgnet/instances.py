"""Finding MVImgNet instances: `<category_id>/<instance_id>/` folders, either unpacked under a
folder or as members of the released zip parts, each listed as an ObjectRecord carrying a handle
the reader can open later, with its category and a cheap identity for the fingerprint.

Listing is separate from reading so the extract stage can enumerate ~200k instances, skip the
ones already committed, and hand the rest to workers without opening a single image.
"""

from __future__ import annotations

import glob
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mvcap_build.dataset import ObjectRecord
from mvcap_build.errors import SourceError
from mvcap_build.extract.capture import handle_of, instance_record
from mvcap_build.extract.colmap import MODEL_FILES, require_pycolmap
from mvcap_build.extract.mvimgnet.categories import UNKNOWN_CATEGORY, category_id, category_table
from mvcap_build.extract.mvimgnet.paths import zip_member_place
from mvcap_build.extract.mvimgnet_config import MVImgNetSourceConfig

__all__ = [
    "IMAGES_DIR",
    "SPARSE_DIR",
    "FolderInstance",
    "Handle",
    "UnsafeInstance",
    "ZipInstance",
    "ZipMember",
    "instance_identity",
    "list_instances",
    "zip_parts",
]

SPARSE_DIR = "sparse/0"
IMAGES_DIR = "images"


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


def list_instances(config: MVImgNetSourceConfig) -> list[ObjectRecord]:
    """Every instance (source_id "<category_id>/<instance_id>", its Handle), sorted.

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
    listed = _resolve_categories(found, *category_table(config, default_dir))
    return [instance_record(config, source_id, category, handle) for source_id, category, handle in listed]


def _resolve_categories(
    found: dict[str, Handle], categories: dict[str, str], origin: str
) -> list[tuple[str, str, Handle]]:
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
            f"MVImgNet category id(s) not in the categories ({origin}): {named}; "
            "add them to a category_map CSV `id,category`"
        )
    return listed


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
    found: dict[str, Handle] = {
        key: ZipInstance(f"{key}/", tuple(sorted(members.items()))) for key, members in safe.items()
    }
    for key, entries in unsafe.items():
        found[key] = UnsafeInstance(tuple(sorted({z for z, _ in entries})), tuple(name for _, name in entries))
    return found


def _zip_infolist(part: Path) -> list[zipfile.ZipInfo]:
    try:
        with zipfile.ZipFile(part) as archive:
            return archive.infolist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise SourceError(f"mvimgnet zip part {part} cannot be read: {exc}") from exc


def instance_identity(record: ObjectRecord) -> dict[str, str]:
    """What the fingerprint of an extracted instance depends on: the CRC-32 of cameras.bin and
    the sizes of images.bin and points3D.bin, equal for a folder and a zip of the same data.
    Cheap on purpose (a zip's CRCs are in its directory, cameras.bin is tiny): the whole model
    is megabytes, and a run checks every committed instance of its shard."""
    handle: Handle = handle_of(record)
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
        identity[name] = (
            "missing" if size is None else (f"crc32:{crc:08x}" if name == "cameras.bin" else f"size:{size}")
        )
    return identity
