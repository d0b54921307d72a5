"""MVCap's released layout, beside our Parquet: an image folder and one `metadata.json` list of
`path`, `caption`, `obj_id`, `img_id` (paths relative to the folder), which is what the original
OVT code (Heathcliff-saku/Omniview_Tuning) reads. Images are hard-linked where the file system
allows it, so the layout costs no second copy of the views."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from mvcap_build.dataset import DatasetRoot
from mvcap_build.dataset.export_schema import MVCAP_COLUMNS, ExportRow

FOLDER = "mvcap"


def write_mvcap_layout(root: DatasetRoot, rows: list[ExportRow], target: Path) -> None:
    """`target/images/<path as in ROOT>` and `target/metadata.json` (train split only: the file
    OVT's loader reads is one training list)."""
    entries = []
    for row in rows:
        if row.split != "train":
            continue
        relative = Path("images") / row.path
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        source = root.path / row.path
        try:
            os.link(source, destination)
        except OSError:  # another file system, or links not allowed: copy
            shutil.copyfile(source, destination)
        entries.append({**{name: getattr(row, name) for name in MVCAP_COLUMNS}, "path": relative.as_posix()})
    (target / "metadata.json").write_text(json.dumps(entries, ensure_ascii=False, indent=0))
