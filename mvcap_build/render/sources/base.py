"""What the render stage needs from an object source, as one typed record per source.

A source lists ObjectRecords; one whose assets must be downloaded also gives a fetcher, and one
that had to guess something about its listing (categories from file names) says so in the
summary. Each source module exposes one `SOURCE = ObjectSource(...)`, registered in
`registry.py`, so no seam is found by `getattr`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mvcap_build.dataset import ObjectRecord
from mvcap_build.render.sources.fetch import Fetcher


def _no_notes(config: Any, objects: list[ObjectRecord]) -> list[str]:
    return []


@dataclass(frozen=True)
class ObjectSource:
    list_objects: Callable[[Any], list[ObjectRecord]]
    #: the fetcher of a source whose assets are downloaded; None when assets are already local.
    make_fetcher: Callable[[Any], Fetcher] | None = None
    #: what the render summary should say about a listing (e.g. categories it had to make up).
    listing_notes: Callable[[Any, list[ObjectRecord]], list[str]] = _no_notes
