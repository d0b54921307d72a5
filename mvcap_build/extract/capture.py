"""What a capture reader hands the extract stage: the frames of one object instance, each with
its camera in our convention, plus what the reconstruction knows about the object.

Readers (`nerf.py` for IM3D and any NeRF-synthetic folder, `mvimgnet/` for MVImgNet's COLMAP
captures) only parse; choosing frames, cropping, resizing and writing views is the stage's.
Cameras are OpenCV (x right, y down, z forward), camera-to-world, in the capture's world units;
intrinsics are in pixels of the source image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image


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
