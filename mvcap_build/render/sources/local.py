"""A local folder of mesh files, with categories from a CSV (`file,category`)."""

from __future__ import annotations

import csv
from pathlib import Path

from mvcap_build.dataset import ObjectRecord, make_key
from mvcap_build.errors import SourceError

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".fbx")


def read_categories(csv_path: Path) -> dict[str, str]:
    if not csv_path.is_file():
        raise SourceError(f"categories CSV not found: {csv_path} (columns: file,category)")
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"file", "category"} <= set(reader.fieldnames):
            raise SourceError(f"{csv_path}: needs a header with columns 'file' and 'category'")
        rows = {}
        for line, row in enumerate(reader, start=2):
            name, category = (row.get("file") or "").strip(), (row.get("category") or "").strip()
            if not name or not category:
                raise SourceError(f"{csv_path}:{line}: empty file or category")
            rows[name] = category
    return rows


def _inside(folder: Path, name: str) -> Path:
    path = (folder / name).resolve()
    if not path.is_relative_to(folder):
        raise SourceError(f"{name!r} in the categories CSV points outside {folder}")
    return path


def list_objects(config) -> list[ObjectRecord]:
    folder = Path(config.folder).expanduser().resolve()
    if not folder.is_dir():
        raise SourceError(f"local source folder not found: {folder}")
    categories = read_categories(Path(config.categories_csv or folder / "categories.csv"))
    objects = []
    for name, category in sorted(categories.items()):
        path = _inside(folder, name)
        if path.suffix.lower() not in MESH_SUFFIXES:
            raise SourceError(f"{name}: unsupported file type; expected one of {MESH_SUFFIXES}")
        objects.append(
            ObjectRecord(
                key=make_key(config.name, name),
                source=config.name,
                source_id=name,
                category=category,
                asset={"kind": "file", "path": str(path)},
            )
        )
    return objects
