"""The capture readers by their YAML `kind:`: each module has `list_instances(config)`,
`read_capture(...)` and optionally `instance_identity(handle)`."""

from __future__ import annotations

from mvcap_build.extract.mvimgnet_config import MVImgNetSourceConfig
from mvcap_build.extract.nerf_config import NerfSourceConfig
from mvcap_build.plugins import Entry, Registry

CAPTURE_SOURCES = Registry(
    "capture source",
    Entry("mvimgnet", "mvcap_build.extract.mvimgnet:read_capture", MVImgNetSourceConfig),
    Entry("im3d", "mvcap_build.extract.nerf:read_capture", NerfSourceConfig),
    Entry("nerf", "mvcap_build.extract.nerf:read_capture", NerfSourceConfig),
)


def reader_for(kind: str):
    """The reader module registered as `kind`."""
    import importlib

    return importlib.import_module(CAPTURE_SOURCES[kind].target.partition(":")[0])
