"""Reading the per-object manifests back, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from mvcap_build.dataset.objects_table import ManifestError
from mvcap_build.dataset.records import CaptionManifest, RenderManifest

M = TypeVar("M", bound=BaseModel)


def _read(path: Path, model: type[M]) -> M:
    try:
        return model.model_validate_json(path.read_bytes())
    except (ValidationError, ValueError) as error:
        raise ManifestError(f"{path}: not a valid {model.__name__}: {error}") from error


def read_render_manifest(path: Path) -> RenderManifest:
    return _read(path, RenderManifest)


def read_caption_manifest(path: Path) -> CaptionManifest:
    return _read(path, CaptionManifest)
