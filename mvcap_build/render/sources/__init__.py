"""Where objects come from. Each source lists ObjectRecords; Blender builds or imports them.

Sources are registered by their YAML `kind:` in `registry.py`; each is an `ObjectSource`
(`base.py`). The registry is imported on first use: it imports the render config, which imports
this package.
"""

from __future__ import annotations

from mvcap_build.dataset import ObjectRecord
from mvcap_build.render.sources.base import ObjectSource


def source_for(config) -> ObjectSource:
    from mvcap_build.render.sources.registry import SOURCES

    return SOURCES[config.kind].load()


def list_objects(config) -> list[ObjectRecord]:
    return source_for(config).list_objects(config)


def make_fetcher(config):
    """The source's fetcher when its assets must be fetched (downloads), else None."""
    factory = source_for(config).make_fetcher
    return factory(config) if factory is not None else None


def listing_notes(config, objects: list[ObjectRecord]) -> list[str]:
    """What the source wants said in the render summary about its listing."""
    return source_for(config).listing_notes(config, objects)


def source_name(config) -> str:
    """The source part of object keys: a source's `name:` where it has one, else its kind."""
    return getattr(config, "name", config.kind)
