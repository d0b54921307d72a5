"""Reader for IM3D and any NeRF-synthetic ("Blender") folder: one object per subfolder, each with
`transforms_<split>.json` (cameras) and the RGBA renders they name.

The extract stage reaches it through `READER`. Inside, one concern a module: `listing` (object
folders, categories from names or a CSV, identity), `transforms` (reading and checking the JSON),
`frames` (its images on disk, with the path rule of `mvcap_build.dataset.safe_paths`), `cameras`
(Blender axes to OpenCV, K for the image on disk, the centre) and `reader` (all of it -> `Capture`).
"""

from __future__ import annotations

from mvcap_build.extract.capture import CaptureReader
from mvcap_build.extract.nerf.listing import instance_identity, list_instances
from mvcap_build.extract.nerf.reader import read_capture
from mvcap_build.extract.nerf_config import NerfSourceConfig

__all__ = ["READER", "NerfSourceConfig", "instance_identity", "list_instances", "read_capture"]

READER = CaptureReader(list_instances=list_instances, read_capture=read_capture, instance_identity=instance_identity)
