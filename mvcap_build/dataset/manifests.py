"""The per-object manifests: written in one place, read back with errors that name the file.

`views.json` goes into an object's staging folder last, just before the folder is renamed into
place (render, extract); a caption manifest is one file replaced atomically (caption).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mvcap_build.dataset.atomic import atomic_write_json
from mvcap_build.dataset.layout import VIEW_MANIFEST
from mvcap_build.dataset.objects_table import ManifestError
from mvcap_build.dataset.records import CaptionManifest, ViewsManifest

M = TypeVar("M", bound=BaseModel)


def _read(path: Path, model: type[M], upgrade=None) -> M:
    try:
        data = json.loads(path.read_bytes())
        if upgrade is not None:
            data = upgrade(data)
        return model.model_validate(data)
    except (ValidationError, ValueError, TypeError, AttributeError) as error:
        raise ManifestError(f"{path}: not a valid {model.__name__}: {error}") from error


def upgrade_views(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 render manifests: `renderer` becomes the producer and the category copy is dropped
    (the objects table holds it). They carry no fingerprint, so reruns report them as stale."""
    if data.get("schema_version") != 1:
        return data
    renderer = data.get("renderer") or {}
    upgraded = {k: v for k, v in data.items() if k not in ("category", "renderer")}
    upgraded["producer"] = {"kind": "render", **renderer}
    return upgraded


def read_views_manifest(path: Path) -> ViewsManifest:
    return _read(path, ViewsManifest, upgrade_views)


def read_caption_manifest(path: Path) -> CaptionManifest:
    return _read(path, CaptionManifest)


def write_views_manifest(folder: Path, manifest: ViewsManifest) -> Path:
    """`views.json` into an object's (staging) folder; the folder's rename is the commit."""
    path = Path(folder) / VIEW_MANIFEST
    atomic_write_json(path, manifest.model_dump())
    return path


def write_caption_manifest(path: Path, manifest: CaptionManifest) -> Path:
    """A caption manifest (`DatasetRoot.caption_manifest(key)`), committed by an atomic replace."""
    atomic_write_json(path, manifest.model_dump())
    return path
