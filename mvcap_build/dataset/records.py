"""The records that flow between stages, as files in a dataset root.

Every column is documented in README.md ("Dataset root layout"); keep the two in step.
Pydantic validates what a stage reads back, so a hand-edited or truncated manifest fails with
the file and field named instead of a KeyError three stages later.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObjectRecord(_Record):
    """One row of the objects table (`objects/<source>.jsonl`)."""

    key: str  # "<source>/<source id>", the identity of the object through the whole pipeline
    source: str  # "demo", "local", "objaverse", "mvimgnet", ...
    source_id: str
    category: str  # the noun a person would use; fills the caption prompt
    asset: dict[str, Any]  # how to get the geometry: {"kind": "file", "path": ...} or {"kind": "procedural", ...}
    attrs: dict[str, Any] = Field(default_factory=dict)  # source-specific extras (licence, uid, ...)


class ViewRecord(_Record):
    """One rendered view and its camera. Cameras use the OpenCV convention: x right, y down,
    z forward (from the camera into the scene), in Blender's world frame (z up) where the object
    was normalised to the unit cube centred at the origin."""

    view_index: int
    file: str  # image file name inside the object's view folder
    width: int
    height: int
    azimuth_deg: float  # 0 = camera on -y looking at +y (the object's front), counter-clockwise seen from above
    elevation_deg: float  # 0 = horizon, 90 = straight down from above
    distance: float  # camera centre to the origin, in unit-cube units
    fov_deg: float  # horizontal = vertical field of view (square images)
    intrinsics: list[list[float]]  # 3x3 K in pixels
    c2w: list[list[float]]  # 4x4 camera-to-world, OpenCV axes
    coverage: float  # fraction of pixels with alpha > 0 (0 = empty render)


class RenderManifest(_Record):
    """`views/<source>/<id>/views.json`: written last, inside the object's folder, which is then
    renamed into place. Its presence is what "this object is rendered" means."""

    schema_version: int = SCHEMA_VERSION
    key: str
    category: str
    camera_convention: Literal["opencv"] = "opencv"
    normalization: str = "unit_cube"  # bbox scaled so its longest side is 1, centred at the origin
    renderer: dict[str, Any]  # engine, device, devices used, samples, resolution, bpy version
    views: list[ViewRecord]


class CaptionRow(_Record):
    view_index: int
    caption: str
    backend: str  # registry name: "hf", "template", ...
    model: str  # Hub id or local path; "none" for the template backend
    prompt: str  # the exact instruction given to the model, category filled in
    prompt_name: str  # which template from prompts/ ("category_guided", "plain", or a file path)


class CaptionManifest(_Record):
    """`captions/<source>/<id>.json`: every view of one object, committed together."""

    schema_version: int = SCHEMA_VERSION
    key: str
    rows: list[CaptionRow]


class FailureRecord(_Record):
    """`failures/<stage>/<source>/<id>.json`: why a unit of work did not produce output."""

    key: str
    stage: str
    reason: str  # short machine-friendly code: import_failed, no_geometry, empty_render, timeout, ...
    detail: str  # the human explanation: the exception message, the log file to read
    time: str  # ISO 8601, UTC
