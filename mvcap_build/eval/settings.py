"""Every knob of `mvcap eval`, with its default and the reason for it, in one place.

Pydantic only, so the CLI validates its flags before torch loads. The resolved settings are
written into results.json, so a result file says how it was made.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class EvalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # --- zero-shot ---------------------------------------------------------------------------
    # 80: CLIP's ImageNet templates (as OVT); 1: "a photo of a {}."; caption: the template caption
    # backend's sentence over its 32 viewpoint phrases (for models that only ever saw such captions)
    templates: Literal["80", "1", "caption"] = "80"
    batch_size: int = Field(64, ge=1)  # images per forward pass
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when there is one
    workers: int = Field(4, ge=0)  # threads decoding and preprocessing images; 0: in the main thread

    # --- viewpoints (export split) -------------------------------------------------------------
    # Azimuth bins are centred on multiples of the width, so the front (0 deg) is a bin's centre.
    azimuth_bin_deg: float = Field(30.0, gt=0, le=360)
    # Elevation bins start at -90 deg: [-90, -90 + w), ...; 90 deg falls in the last bin.
    elevation_bin_deg: float = Field(15.0, gt=0, le=180)
    # Canonical view: elevation in [lo, hi] (inclusive) and azimuth within +-this of the front.
    # Every other view is "extreme": the two partition the views.
    canonical_elevation_deg: tuple[float, float] = (0.0, 30.0)
    canonical_azimuth_deg: float = Field(45.0, ge=0, le=180)

    @field_validator("azimuth_bin_deg")
    @classmethod
    def _divides_360(cls, width: float) -> float:
        bins = 360.0 / width
        if abs(bins - round(bins)) > 1e-9:
            raise ValueError(f"must divide 360 (got {width:g})")
        return width

    @field_validator("canonical_elevation_deg")
    @classmethod
    def _band(cls, band: tuple[float, float]) -> tuple[float, float]:
        lo, hi = band
        if not -90 <= lo <= hi <= 90:
            raise ValueError(f"must be LO <= HI within [-90, 90] (got {lo:g}, {hi:g})")
        return band
