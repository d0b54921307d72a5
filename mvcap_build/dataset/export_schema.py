"""The export schema, declared once: one typed row, and from it the Arrow/`datasets` features,
the metadata.json columns, the dataset card's column table and the trainer's required columns.

MVCap's own four columns come first (`path`, `caption`, `obj_id`, `img_id`), as in its
metadata.json; the rest are ours. The Parquet shards add the image itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

IMAGE_COLUMN = "image"
IMAGE_MEANING = "the view as its original file's bytes (RGBA PNG for renders)"


def _column(kind: str, meaning: str, *, metadata: bool = True) -> Any:
    """A row field with its Arrow kind, what it means, and whether metadata.json carries it."""
    return field(metadata={"kind": kind, "meaning": meaning, "in_metadata": metadata})


@dataclass(frozen=True)
class ExportRow:
    path: str = _column("string", "the image's path relative to the dataset root that built it (MVCap's `path`)")
    caption: str = _column("string", "one caption for this view")
    obj_id: int = _column("int64", "integer object id, contiguous from 0 over the exported objects sorted by `key`")
    img_id: int = _column("int64", "`obj_id * img_id_stride + view_index` (MVCap: stride 100)")
    key: str = _column("string", "stable object identity, `<source>/<source id>`")
    split: str = _column("string", "the object's split (`train`, `validation`, ...): all views of an object share it")
    category: str = _column("string", "the object's category (the noun in the caption prompt)")
    source: str = _column("string", "where the object came from (`demo`, `local`, ...)")
    view_index: int = _column("int32", "index of the view within its object")
    azimuth_deg: float = _column(
        "float64", "camera azimuth around the object, degrees (0 = front, counter-clockwise from above)"
    )
    elevation_deg: float = _column("float64", "camera elevation, degrees (0 = horizon, 90 = from straight above)")
    distance: float = _column("float64", "camera centre to the object's centre, in world units")
    fov_deg: float = _column("float64", "horizontal field of view, degrees")
    c2w: list = _column("mat4", "4x4 camera-to-world matrix, OpenCV axes (x right, y down, z forward)", metadata=False)
    caption_backend: str = _column("string", "caption backend that wrote the caption (`hf`, `template`, ...)")
    caption_model: str = _column("string", "model that wrote the caption (Hub id or path; `none` for the template)")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


COLUMNS = tuple(dataclasses.fields(ExportRow))
MVCAP_COLUMNS = ("path", "caption", "obj_id", "img_id")
METADATA_COLUMNS = tuple(c.name for c in COLUMNS if c.metadata["in_metadata"])
# What the OVT trainer cannot do without.
TRAINING_COLUMNS = (IMAGE_COLUMN, "caption", "obj_id", "view_index")


def metadata_record(row: dict[str, Any]) -> dict[str, Any]:
    """One metadata.json entry: MVCap's columns first, then ours, no matrices."""
    return {name: row[name] for name in METADATA_COLUMNS}


def features():
    """The `datasets.Features` of a Parquet shard (imports `datasets`, so call it when writing)."""
    from datasets import Features, Image, Sequence, Value

    def arrow(kind: str):
        if kind == "mat4":
            return Sequence(Sequence(Value("float64"), length=4), length=4)
        return Value(kind)

    return Features({IMAGE_COLUMN: Image(), **{c.name: arrow(c.metadata["kind"]) for c in COLUMNS}})


def column_table() -> str:
    """The Markdown table of columns for the dataset card."""
    lines = ["| column | meaning |", "| --- | --- |", f"| `{IMAGE_COLUMN}` | {IMAGE_MEANING} |"]
    lines += [f"| `{c.name}` | {c.metadata['meaning']} |" for c in COLUMNS]
    return "\n".join(lines)
