"""The seam between the extract stage and its capture readers: what a reader exposes
(`CaptureReader`), the ObjectRecords it lists, and what it hands back for one instance (the
frames, each with its camera in our convention, plus what the reconstruction knows).

Readers (`nerf/` for IM3D and any NeRF-synthetic folder, `mvimgnet/` for MVImgNet's COLMAP
captures) only list and parse; choosing frames, cropping, resizing and writing views is the
stage's. Each reader package exposes one `READER = CaptureReader(...)`, registered in
`readers.py`, so no seam is found by `getattr`. Cameras are OpenCV (x right, y down, z forward),
camera-to-world, in the capture's world units; intrinsics are in pixels of the source image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from mvcap_build.dataset import ObjectRecord, make_key

# The asset key holding a reader's own handle on an instance (a folder, zip members): listing
# finds it once and reading reuses it; it lives in memory only and never reaches the objects table.
HANDLE = "handle"


class ExtractError(Exception):
    """This instance cannot become views; `reason` is the ledger code (`unregistered`,
    `too_few_frames`, `corrupt_image`, `missing_reconstruction`, `unsafe_path`, `bad_transforms`,
    `missing_frame`, ...), `detail` the human explanation."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Frame:
    name: str  # the frame's name in the source (file name without folders), for the record
    load: Callable[[], Image.Image]  # opens the source image (RGB or RGBA); raises ExtractError("corrupt_image", ...)
    c2w: np.ndarray  # 4x4 camera-to-world, OpenCV axes, capture world units
    K: np.ndarray  # 3x3 intrinsics in pixels of the source image
    width: int  # source image size, pixels
    height: int


@dataclass
class Capture:
    """One object instance as captured."""

    source_id: str  # stable id within its source, e.g. "53/000a1b2c" or "throne_01"
    category: str
    frames: list[Frame]
    up: np.ndarray  # unit world "up" direction (elevation is measured from the plane normal to it)
    up_method: str  # how `up` was obtained, said in the manifest ("given: world +z", "camera-centre plane normal, ...")
    center: np.ndarray  # the object's centre in world coordinates (azimuth, elevation, distance are about it)
    points: np.ndarray | None = None  # (N, 3) sparse reconstruction points, when there are some
    reconstruction: str | None = None  # "colmap", "given", ...
    details: dict[str, Any] = field(default_factory=dict)  # recorded in the manifest's producer


def instance_record(config: Any, source_id: str, category: str, handle: Any) -> ObjectRecord:
    """The ObjectRecord a reader lists for one instance of the source `config` describes,
    carrying its handle for `read_capture` and `instance_identity`."""
    asset = {"kind": "capture", "source": config.kind, "location": str(handle), HANDLE: handle}
    return ObjectRecord(
        key=make_key(config.source_name, source_id),
        source=config.source_name,
        source_id=source_id,
        category=category,
        asset=asset,
    )


def handle_of(record: ObjectRecord) -> Any:
    return record.asset[HANDLE]


def table_row(record: ObjectRecord) -> ObjectRecord:
    """The record as the objects table holds it: without the in-memory handle."""
    return record.model_copy(update={"asset": {k: v for k, v in record.asset.items() if k != HANDLE}})


def _no_identity(record: ObjectRecord) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class CaptureReader:
    #: every instance of the source, sorted; broken ones too, so they reach the ledger.
    list_instances: Callable[[Any], list[ObjectRecord]]
    #: one listed instance, parsed; raises ExtractError for what the ledger should say.
    read_capture: Callable[[ObjectRecord, Any], Capture]
    #: what an instance's fingerprint depends on besides the settings (cheap: checked every run).
    instance_identity: Callable[[ObjectRecord], dict[str, Any]] = _no_identity
