"""The contract every captioning backend fulfils.

A backend turns a batch of requests (one image each, with its prompt already filled in) into one
result per request. It knows nothing about dataset roots, manifests or ledgers: the caption stage
does the bookkeeping, so a backend stays a small class that is easy to add and to test.

One bad image or one bad answer is that request's failure (`CaptionResult.failed`), which the
stage writes to its ledger for the object; the rest of the batch goes on. A backend raises only
when it cannot work at all (no model, no GPU, no server): that stops the run.

A backend is built from its config object (`HFBackend(HFBackendConfig(...))`, one config class
per backend in `mvcap_build.caption.config`), which has validated every setting already.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from mvcap_build.imaging import load_rgb

# What PIL raises for a missing, truncated or non-image file (broken PNG chunks raise SyntaxError).
IMAGE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


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


@dataclass(frozen=True)
class CaptionResult:
    """The answer to one request: a caption, or the reason there is none."""

    text: str | None
    reason: str | None = None  # ledger code when failed: unreadable_image, generation_failed, ...
    detail: str = ""

    @classmethod
    def ok(cls, text: str) -> CaptionResult:
        return cls(text=text)

    @classmethod
    def failed(cls, reason: str, detail: str) -> CaptionResult:
        return cls(text=None, reason=reason, detail=detail)


class CaptionBackend(Protocol):
    """What the caption stage needs from a backend."""

    #: registry name, equal to the `kind:` value in YAML (e.g. "hf", "template").
    name: str
    #: what produced the text: a Hub id, a local directory, or "none" for the template backend.
    model_id: str

    @classmethod
    def identity(cls, config: Any) -> dict[str, Any]:
        """What produces the text, from the backend's config alone (no model loads, no key is
        kept): `backend`, `model` and whatever else changes the captions. Caption fingerprints
        are made of it, so planning and `mvcap status` can tell stale captions without a GPU."""
        ...

    def caption(self, requests: list[CaptionRequest]) -> list[CaptionResult]:
        """Return one result per request, in order. Raise only for a broken environment/model."""
        ...


def open_image(path: Path) -> Image.Image | CaptionResult:
    """The view on white, or the failure of this one request when the file cannot be read."""
    try:
        return load_rgb(path)
    except IMAGE_ERRORS as error:
        return CaptionResult.failed("unreadable_image", f"{path}: {type(error).__name__}: {error}")
