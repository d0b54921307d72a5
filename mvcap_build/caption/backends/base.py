"""The contract every captioning backend fulfils.

A backend turns a batch of requests (one image each, with its prompt already filled in) into one
caption per request. It knows nothing about dataset roots, manifests or ledgers: the caption stage
does the bookkeeping, so a backend stays a small class that is easy to add and to test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class CaptionRequest:
    """One view to caption.

    `image_path` is an RGBA or RGB image on disk; backends composite RGBA onto a white background
    (see `mvcap_build.imaging.load_rgb`). `prompt` is the final instruction text with `{category}`
    already substituted. `category` and `view` (azimuth_deg, elevation_deg, ...) are there for
    backends that do not look at pixels (the template backend).
    """

    key: str
    view_index: int
    image_path: Path
    prompt: str
    category: str
    view: dict[str, Any] = field(default_factory=dict)


class CaptionBackend(Protocol):
    """What the caption stage needs from a backend."""

    #: registry name, equal to the `backend:` value in YAML (e.g. "hf", "template").
    name: str
    #: what produced the text: a Hub id, a local directory, or "none" for the template backend.
    model_id: str

    def caption(self, requests: list[CaptionRequest]) -> list[str]:
        """Return one caption per request, in order. Raise only for a broken environment/model."""
        ...
