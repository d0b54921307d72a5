"""A local folder of mesh files, with categories from a CSV (`file,category`, optionally
`up_axis` per file: empty = the source's `up_axis`)."""

from __future__ import annotations

import csv
import re
from pathlib import Path, PurePosixPath

from mvcap_build.dataset import ObjectRecord, make_key
from mvcap_build.dataset.safe_paths import inside_name, resolves_inside
from mvcap_build.errors import SourceError
from mvcap_build.render.sources.base import ObjectSource
from mvcap_build.render.up_axis import UP_AXES, resolve_up_axis

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".fbx")
# CSV cells that name no category: such a file is named from its file name instead (a caption
# prompt "... the main instance of the image is a unknown" helps nobody), and render says so.
NO_CATEGORY = frozenset({"", "unknown", "none", "n/a", "na", "null", "?", "-"})
FROM_FILE_NAME = "file name"  # attrs["category_from"] of an object named by `category_from_file_name`


def read_categories(csv_path: Path) -> dict[str, tuple[str, str | None]]:
    """file -> (category, up axis or None when the row leaves it to the source)."""
    if not csv_path.is_file():
        raise SourceError(f"categories CSV not found: {csv_path} (columns: file,category)")
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"file", "category"} <= set(reader.fieldnames):
            raise SourceError(f"{csv_path}: needs a header with columns 'file' and 'category'")
        rows = {}
        for line, row in enumerate(reader, start=2):
            name, category = (row.get("file") or "").strip(), (row.get("category") or "").strip()
            if not name:
                raise SourceError(f"{csv_path}:{line}: empty file")
            up_axis = (row.get("up_axis") or "").strip() or None
            if up_axis is not None and up_axis not in UP_AXES:
                raise SourceError(
                    f"{csv_path}:{line}: up_axis {up_axis!r}; expected one of {', '.join(UP_AXES)} or empty"
                )
            rows[name] = category, up_axis
    return rows


def _inside(folder: Path, name: str) -> Path:
    """The mesh a CSV row names, under the path rule every source follows (dataset.safe_paths)."""
    relative = inside_name(name)
    if relative is None or not resolves_inside(folder, folder / relative):
        raise SourceError(
            f"{name!r} in the categories CSV points outside {folder}: "
            "names are relative and stay inside it, symlinks included"
        )
    return (folder / relative).resolve()


def category_from_file_name(name: str) -> str:
    """The category a person would read in a file name: `CesiumMilkTruck.glb` -> `cesium milk
    truck`, `office_chair_03.obj` -> `office chair` (a trailing index goes, as in IM3D's
    `{class}_{NN}`), `chairs/Chair2.ply` -> `chair`. A name that is all digits stays as it is."""
    stem = PurePosixPath(name).stem
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", stem)  # camelCase, HTTPServer
    words = re.sub(r"(?<=[A-Za-z]{2})(?=\d+$)", " ", words)  # chair2 -> chair 2 (but v2 stays)
    words = " ".join(re.sub(r"[_\-.]+", " ", words).split())
    without_index = re.sub(r"(?: \d+)+$", "", words)
    return (without_index or words or stem).lower()


def _categories_csv(config, folder: Path) -> Path | None:
    """The CSV to read: the one given (which must exist), else FOLDER/categories.csv if there is one."""
    if config.categories_csv:
        return Path(config.categories_csv).expanduser()
    default = folder / "categories.csv"
    return default if default.is_file() else None


def _mesh_files(folder: Path) -> list[str]:
    """Every mesh file under `folder` (subfolders too; hidden ones skipped), relative, sorted."""
    found = []
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if (
            path.suffix.lower() in MESH_SUFFIXES
            and path.is_file()
            and not any(p.startswith(".") for p in relative.parts)
        ):
            found.append(relative.as_posix())
    return sorted(found)


def list_objects(config) -> list[ObjectRecord]:
    """The CSV's files with its categories; without a CSV, every mesh file in the folder. A file
    whose category is missing (or a placeholder like `unknown`) is named from its file name."""
    folder = Path(config.folder).expanduser().resolve()
    if not folder.is_dir():
        raise SourceError(f"local source folder not found: {folder}")
    csv_path = _categories_csv(config, folder)
    categories = read_categories(csv_path) if csv_path else {name: ("", None) for name in _mesh_files(folder)}
    objects = []
    for name, (category, up_axis) in sorted(categories.items()):
        path = _inside(folder, name)
        if path.suffix.lower() not in MESH_SUFFIXES:
            raise SourceError(f"{name}: unsupported file type; expected one of {MESH_SUFFIXES}")
        named = category.lower() in NO_CATEGORY
        objects.append(
            ObjectRecord(
                key=make_key(config.name, name),
                source=config.name,
                source_id=name,
                category=category_from_file_name(name) if named else category,
                attrs={"category_from": FROM_FILE_NAME} if named else {},
                # resolved here, so the objects table and the fingerprint say how it was imported
                asset={
                    "kind": "file",
                    "path": str(path),
                    "up_axis": resolve_up_axis(up_axis or config.up_axis, path.suffix),
                },
            )
        )
    return objects


def listing_notes(config, objects: list[ObjectRecord]) -> list[str]:
    """For the render summary: which objects got their category from their file name."""
    named = [o for o in objects if o.attrs.get("category_from") == FROM_FILE_NAME]
    if not named:
        return []
    folder = Path(config.folder).expanduser().resolve()
    csv_path = _categories_csv(config, folder)
    why = f"{csv_path} gives them no category" if csv_path else f"there is no {folder / 'categories.csv'}"
    shown = ", ".join(f"{o.source_id} -> {o.category!r}" for o in named[:3]) + (", ..." if len(named) > 3 else "")
    return [
        f"{len(named)} object(s) named from their file names, as {why} ({shown}); "
        "set their categories in a `file,category` CSV (--categories-csv)"
    ]


SOURCE = ObjectSource(list_objects=list_objects, listing_notes=listing_notes)
