"""The capture readers by their YAML `kind:`; each reader package exposes
`READER = CaptureReader(...)` (`capture.py`), imported only when its kind is used."""

from __future__ import annotations

from mvcap_build.extract.mvimgnet_config import MVImgNetSourceConfig
from mvcap_build.extract.nerf_config import NerfSourceConfig
from mvcap_build.plugins import Entry, Registry

CAPTURE_SOURCES = Registry(
    "capture source",
    Entry("mvimgnet", "mvcap_build.extract.mvimgnet:READER", MVImgNetSourceConfig),
    Entry("im3d", "mvcap_build.extract.nerf:READER", NerfSourceConfig),
    Entry("nerf", "mvcap_build.extract.nerf:READER", NerfSourceConfig),
)
