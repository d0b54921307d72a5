"""Where objects come from. Each source lists ObjectRecords; Blender builds or imports them.

Sources are registered by their YAML `kind:` in `mvcap_build.registry.SOURCES`.
"""

from __future__ import annotations

from mvcap_build.dataset import ObjectRecord


def list_objects(config) -> list[ObjectRecord]:
    from mvcap_build.registry import SOURCES

    return SOURCES[config.kind].load()(config)


def make_fetcher(config):
    """The source's fetcher when its assets must be fetched (downloads), else None."""
    from mvcap_build.registry import SOURCES

    factory = getattr(SOURCES[config.kind].module(), "make_fetcher", None)
    return factory(config) if factory is not None else None


def listing_notes(config, objects: list[ObjectRecord]) -> list[str]:
    """What the source wants said in the render summary about its listing (e.g. categories it
    had to make up), from its module's optional `listing_notes`."""
    from mvcap_build.registry import SOURCES

    notes = getattr(SOURCES[config.kind].module(), "listing_notes", None)
    return notes(config, objects) if notes is not None else []


def source_name(config) -> str:
    """The source part of object keys: a source's `name:` where it has one, else its kind."""
    return getattr(config, "name", config.kind)
