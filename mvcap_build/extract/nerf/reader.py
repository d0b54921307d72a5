"""Reading one NeRF-synthetic object into a `Capture`: its transforms files parsed
(`transforms`), their frames found on disk (`frames`), cameras in our convention (`cameras`).

Only parses; the extract stage decides what to keep. Single bad frames are named in `details`;
a folder without the configured transforms files is `missing_reconstruction`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mvcap_build.dataset import ObjectRecord
from mvcap_build.extract.capture import Capture, ExtractError, handle_of
from mvcap_build.extract.nerf.cameras import UP_METHOD, WORLD_UP, center
from mvcap_build.extract.nerf.frames import sort_entries
from mvcap_build.extract.nerf.transforms import (
    camera_angle_record,
    intrinsics_source,
    no_transforms_detail,
    read_transforms,
    transforms_files,
)
from mvcap_build.extract.nerf_config import NerfSourceConfig

__all__ = ["read_capture"]


def read_capture(record: ObjectRecord, config: NerfSourceConfig) -> Capture:
    """Every frame of the configured splits whose image opens; the others are named in
    `details` (missing, corrupt, unsafe) so the manifest says what was left out and why."""
    folder = Path(handle_of(record))
    files = transforms_files(folder, config.splits)
    if not files:
        raise ExtractError("missing_reconstruction", no_transforms_detail(folder, config.splits))
    parsed = {split: read_transforms(path, split) for split, path in files}
    entries = [entry for _, split_entries in parsed.values() for entry in split_entries]
    result = sort_entries(folder, entries)
    point, center_method = center(result.frames)
    details: dict[str, Any] = {
        "splits": [split for split, _ in files],
        "transforms_files": [path.name for _, path in files],
        "camera_angle_x": camera_angle_record(parsed),
        "intrinsics_from": intrinsics_source(entries),
        "center_method": center_method,
        "missing_frames": result.missing,
        "corrupt_frames": result.corrupt,
        "unsafe_frames": result.unsafe,
    }
    return Capture(
        source_id=record.source_id,
        category=record.category,
        frames=result.frames,
        up=WORLD_UP.copy(),
        up_method=UP_METHOD,
        center=point,
        points=None,
        reconstruction="given",
        details=details,
    )
