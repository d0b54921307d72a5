"""Render fingerprints: every setting that shapes an object's pixels or cameras, and nothing
that does not (device, workers, timeouts, PNG compression): a rerun on another machine keeps
the units."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mvcap_build.dataset import ObjectRecord
from mvcap_build.dataset.fingerprint import Fingerprint
from mvcap_build.render.config import RenderConfig


def asset_identity(asset: dict[str, Any]) -> dict[str, Any]:
    """What identifies an asset's content cheaply: a file by its size (not its path, so a moved
    folder stays valid), a procedural object by its builder and seed. A file's up axis turns
    every view, so it is part of it too."""
    if asset.get("kind") == "file":
        path = Path(asset["path"])
        identity = {
            "kind": "file",
            "suffix": path.suffix.lower(),
            "size": path.stat().st_size if path.is_file() else None,
        }
        if "up_axis" in asset:
            identity["up_axis"] = asset["up_axis"]
        return identity
    return dict(asset)


def render_fingerprint(obj: ObjectRecord, config: RenderConfig) -> Fingerprint:
    """Every setting that shapes an object's pixels or cameras, and nothing that does not
    (device, workers, timeouts): a rerun on another machine keeps the units."""
    settings: dict[str, Any] = {
        "asset": asset_identity(obj.asset),
        "views": config.views.model_dump(mode="json"),
        "resolution": config.resolution,
        "engine": config.engine,
        "lighting": config.lighting.model_dump(),
    }
    if config.engine == "CYCLES":
        settings.update(samples=config.samples, denoise=config.denoise)
    return Fingerprint.of(settings)
