"""The embedded demo: procedural objects of everyday categories, built in Blender from a seed.

The builders live in `render/blender/procedural.py`; this list must name the same categories
(a test checks).
"""

from __future__ import annotations

import zlib

from mvcap_build.dataset import ObjectRecord, make_key
from mvcap_build.errors import SourceError
from mvcap_build.render.sources.base import ObjectSource

DEMO_CATEGORIES = (
    "chair",
    "table",
    "stool",
    "mug",
    "bottle",
    "lamp",
    "car",
    "sofa",
    "bookshelf",
    "snowman",
)


def list_objects(config) -> list[ObjectRecord]:
    categories = config.categories or list(DEMO_CATEGORIES)
    unknown = sorted(set(categories) - set(DEMO_CATEGORIES))
    if unknown:
        raise SourceError(f"unknown demo categories {unknown}; choose from {list(DEMO_CATEGORIES)}")
    objects = []
    for category in categories:
        for index in range(config.per_category):
            source_id = f"{category}-{index:03d}"
            seed = zlib.crc32(f"{config.seed}:{source_id}".encode())
            objects.append(
                ObjectRecord(
                    key=make_key("demo", source_id),
                    source="demo",
                    source_id=source_id,
                    category=category,
                    asset={"kind": "procedural", "builder": category, "seed": seed},
                )
            )
    return objects


SOURCE = ObjectSource(list_objects=list_objects)
