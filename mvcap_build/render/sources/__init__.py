"""Where objects come from. Each source lists ObjectRecords; Blender builds or imports them.

The registry is an explicit dictionary keyed by the `kind:` used in YAML.
"""

from __future__ import annotations

from collections.abc import Callable

from mvcap_build.dataset import ObjectRecord
from mvcap_build.render.sources import demo, local

SOURCES: dict[str, Callable[..., list[ObjectRecord]]] = {
    "demo": demo.list_objects,
    "local": local.list_objects,
}


def list_objects(config) -> list[ObjectRecord]:
    return SOURCES[config.kind](config)


def source_name(config) -> str:
    return getattr(config, "name", config.kind)
