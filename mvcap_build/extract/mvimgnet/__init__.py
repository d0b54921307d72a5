"""Reader for MVImgNet: phone videos of single objects, each instance a folder
`<category_id>/<instance_id>/` with the extracted frames in `images/` and COLMAP's sparse model
in `sparse/0/`, either unpacked under a folder or inside the released zip parts.

The extract stage reaches it through `READER`. Inside: `categories` (the category file, its
typo table and a user map), `paths` (which instance a zip member belongs to, under the path rule
of `mvcap_build.dataset.safe_paths`), `instances` (folder and zip-part instances, listing,
identity), `storage` (an instance's model and image bytes) and `reader` (COLMAP model -> frames
-> `Capture`); the up and centre estimates are in `mvcap_build.extract.geometry`.
"""

from __future__ import annotations

from mvcap_build.extract.capture import CaptureReader
from mvcap_build.extract.mvimgnet.instances import instance_identity, list_instances
from mvcap_build.extract.mvimgnet.reader import read_capture
from mvcap_build.extract.mvimgnet_config import MVImgNetSourceConfig

__all__ = ["READER", "MVImgNetSourceConfig", "instance_identity", "list_instances", "read_capture"]

READER = CaptureReader(list_instances=list_instances, read_capture=read_capture, instance_identity=instance_identity)
