"""The records that flow between stages, as files in a dataset root.

Every column is documented in README.md ("Dataset root layout"); keep the two in step.
Pydantic validates what a stage reads back, so a hand-edited or truncated manifest fails with
the file and field named instead of a KeyError three stages later.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mvcap_build.dataset.fingerprint import Fingerprint

SCHEMA_VERSION = 2  # 2: views manifests name their producer, units carry fingerprints


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObjectRecord(_Record):
    """One row of the objects table (`objects/<source>.jsonl`). The category lives here alone."""

    key: str  # "<source>/<source id>", the identity of the object through the whole pipeline
    source: str  # "demo", "local", "objaverse", "mvimgnet", ...
    source_id: str
    category: str  # the noun a person would use; fills the caption prompt
    asset: dict[str, Any]  # how to get the pixels: {"kind": "file", "path": ...}, {"kind": "procedural", ...}
    attrs: dict[str, Any] = Field(default_factory=dict)  # source-specific extras (licence, uid, ...)


class ViewRecord(_Record):
    """One view and its camera. Cameras use the OpenCV convention: x right, y down, z forward
    (from the camera into the scene), in the producer's world frame (renders: Blender's, z up,
    with the object normalised as the manifest's `normalization` says)."""

    view_index: int
    file: str  # image file name inside the object's view folder
    width: int
    height: int
    azimuth_deg: float  # 0 = camera on -y looking at +y (the object's front), counter-clockwise seen from above
    elevation_deg: float  # 0 = horizon, 90 = straight down from above
    distance: float  # camera centre to the origin (the object's centre), in world units
    fov_deg: float  # horizontal field of view
    intrinsics: list[list[float]]  # 3x3 K in pixels
    c2w: list[list[float]]  # 4x4 camera-to-world, OpenCV axes
    coverage: float | None = None  # fraction of pixels with alpha > 0; None where there is no mask


class RenderProducer(_Record):
    """Views rendered by Blender: the settings and the device that made them."""

    kind: Literal["render"] = "render"
    engine: str
    samples: int | None  # Cycles only
    denoise: bool | None  # Cycles only
    resolution: int
    device: str  # CPU | GPU
    backend: str  # OPTIX | CUDA | NONE
    devices: list[str]
    blender: str  # bpy version
    lighting: dict[str, Any] | None = None  # the exact rig: preset, world light, suns (see render/lighting.py)
    framing: dict[str, Any] | None = None  # mode, margin, the object's bounding radius, the camera distance


class CaptureProducer(_Record):
    """Views taken from an existing capture (photos with reconstructed or given camera poses)."""

    kind: Literal["capture"] = "capture"
    source: str  # "mvimgnet", "im3d", "nerf", ...
    reconstruction: str | None = None  # how the poses were obtained: "colmap", "given", ...
    details: dict[str, Any] = Field(default_factory=dict)  # frame selection, up direction, crop, ...


Producer = Annotated[RenderProducer | CaptureProducer, Field(discriminator="kind")]


class ViewsManifest(_Record):
    """`views/<source>/<id>/views.json`: written last, inside the object's folder, which is then
    renamed into place. Its presence is what "this object has views" means, whoever produced them."""

    schema_version: int = SCHEMA_VERSION
    key: str
    camera_convention: Literal["opencv"] = "opencv"
    normalization: str | None = None  # renders: "unit_cube"; captures: None (world units as captured)
    producer: Producer
    fingerprint: Fingerprint | None = None  # None only in manifests written before schema 2
    stats: dict[str, Any] = Field(
        default_factory=dict
    )  # what the producer found and changed (renders: faces, textures, ...)
    views: list[ViewRecord]


class CaptionRow(_Record):
    view_index: int
    caption: str
    backend: str  # registry name: "hf", "template", ...
    model: str  # Hub id or local path; "none" for the template backend
    prompt: str  # the exact instruction given to the model, category filled in
    prompt_name: str  # which template from prompts/ ("category_guided", "plain", or a file path)
    tries: int = 1  # how many times the view was asked before its caption passed the gates


class CaptionManifest(_Record):
    """`captions/<source>/<id>.json`: every view of one object, committed together."""

    schema_version: int = SCHEMA_VERSION
    key: str
    fingerprint: Fingerprint | None = None  # None only in manifests written before schema 2
    rows: list[CaptionRow]


class FailureRecord(_Record):
    """`failures/<stage>/<source>/<id>.json`: why a unit of work did not produce output."""

    key: str
    stage: str
    reason: str  # short machine-friendly code: import_failed, no_geometry, empty_render, timeout, ...
    detail: str  # the human explanation: the exception message, the log file to read
    time: str  # ISO 8601, UTC
    fingerprint: Fingerprint | None = None  # the settings of the failed attempt
