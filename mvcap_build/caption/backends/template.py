"""A captioner without a model: a category-guided sentence from the object's metadata.

For offline runs and demos. Its rows say backend "template" and model "none", so nobody mistakes
them for model captions.
"""

from __future__ import annotations

from typing import Any

from mvcap_build.caption.backends.base import CaptionRequest, CaptionResult
from mvcap_build.caption.config import TemplateBackendConfig

_SIDES = ("front", "front-right", "right side", "back-right", "back", "back-left", "left side", "front-left")
_HEIGHTS = ("from high above", "from above", "at eye level", "from below")
#: the caption, with {article} {category} {where} to fill in
SENTENCE = "{article} {category}, seen from {where}, on a white background."


def describe_viewpoint(azimuth_deg: float, elevation_deg: float) -> str:
    # Azimuth turns counter-clockwise seen from above; from the front (-y) towards +x is the
    # object's right as a viewer facing it sees it.
    side = _SIDES[int(((azimuth_deg % 360.0) + 22.5) // 45.0) % 8]
    if elevation_deg > 60:
        height = _HEIGHTS[0]
    elif elevation_deg > 25:
        height = _HEIGHTS[1]
    elif elevation_deg < -25:
        height = _HEIGHTS[3]
    else:
        height = _HEIGHTS[2]
    return f"the {side}, {height}"


def viewpoint_phrases() -> list[str]:
    """Every phrase `describe_viewpoint` can return (8 sides x 4 heights)."""
    return [f"the {side}, {height}" for side in _SIDES for height in _HEIGHTS]


def article(noun: str) -> str:
    return "An" if noun[:1].lower() in "aeiou" else "A"


def caption_sentence(category: str, where: str) -> str:
    return SENTENCE.format(article=article(category), category=category, where=where)


class TemplateBackend:
    name = "template"
    model_id = "none"
    #: bump when the sentence changes, so captions written by the old wording become stale
    VERSION = 1

    @classmethod
    def identity(cls, config: TemplateBackendConfig) -> dict[str, Any]:
        """The sentence's version stands for the weights: new wording makes old captions stale."""
        return {"backend": cls.name, "model": cls.model_id, "template_version": cls.VERSION}

    def __init__(self, config: TemplateBackendConfig | None = None) -> None:
        self.config = config or TemplateBackendConfig()

    def caption(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        out = []
        for request in requests:
            where = describe_viewpoint(request.view.get("azimuth_deg", 0.0), request.view.get("elevation_deg", 0.0))
            out.append(CaptionResult.ok(caption_sentence(request.category, where)))
        return out
