"""Objaverse 1.0 (Hub dataset `allenai/objaverse`) as an object source, with robust downloads.

Importing this package is cheap (the config is pydantic only); listing and downloading import
their modules on first call, so validating a YAML file never pulls in an HTTP client.

- `list_objects(config) -> list[ObjectRecord]`: keys `<name>/<uid>`, asset
  `{"kind": "objaverse", "uid": ..., "path": "glbs/000-NNN/<uid>.glb"}`, attribution in attrs.
- `make_fetcher(config) -> AssetFetcher`: `fetch(asset) -> Path`, `release(asset)`; raises
  `AssetUnavailable(reason, detail)` with reason `not_found`, `download_failed` or
  `corrupt_download`.
"""

from __future__ import annotations

from mvcap_build.render.sources.base import ObjectSource
from mvcap_build.render.sources.objaverse.config import ObjaverseSourceConfig
from mvcap_build.render.sources.objaverse.errors import (
    CORRUPT_DOWNLOAD,
    DOWNLOAD_FAILED,
    NOT_FOUND,
    AssetUnavailable,
)


def list_objects(config):
    from mvcap_build.render.sources.objaverse.listing import list_objects as _list_objects

    return _list_objects(config)


def make_fetcher(config):
    from mvcap_build.render.sources.objaverse.download import make_fetcher as _make_fetcher

    return _make_fetcher(config)


SOURCE = ObjectSource(list_objects=list_objects, make_fetcher=make_fetcher)


__all__ = [
    "CORRUPT_DOWNLOAD",
    "DOWNLOAD_FAILED",
    "NOT_FOUND",
    "AssetUnavailable",
    "ObjaverseSourceConfig",
    "list_objects",
    "make_fetcher",
]
