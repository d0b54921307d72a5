"""Finding NeRF-synthetic objects: one per visible subfolder, named and categorised from the folder
name (IM3D's `{class}_{NN}`) or a user's CSV, with the digests of its transforms files as identity.

Listing is separate from reading so the extract stage can skip committed objects without parsing
a single transforms file.
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

from mvcap_build.dataset import ObjectRecord
from mvcap_build.errors import SourceError
from mvcap_build.extract.capture import handle_of, instance_record
from mvcap_build.extract.nerf_config import NerfSourceConfig

__all__ = ["category_for", "class_name", "default_category", "instance_identity", "list_instances", "read_category_map"]


def list_instances(config: NerfSourceConfig) -> list[ObjectRecord]:
    """Every visible subfolder as an instance (its handle: the folder), sorted by name.

    Folders without a transforms file are listed too, so they reach the ledger
    (`missing_reconstruction`) instead of vanishing silently.
    """
    top = Path(config.folder).expanduser()
    if not top.is_dir():
        raise SourceError(f"{config.kind} source folder not found: {top}")
    category_map = read_category_map(config.category_map) if config.category_map else None
    folders = sorted((p for p in top.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    return [instance_record(config, p.name, category_for(p.name, category_map), p) for p in folders]


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


def instance_identity(record: ObjectRecord) -> dict[str, str]:
    """Digests of the transforms files, so an edited capture is extracted again (images are not
    hashed: too slow for a listing, and NeRF datasets do not change them in place)."""
    folder = Path(handle_of(record))
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.glob("transforms_*.json"))
        if path.is_file()
    }
