"""Settings of the extract stage: which captures (one config class per source kind, a
discriminated union on `kind`), and how their frames become views."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mvcap_build.extract.mvimgnet_config import MVImgNetSourceConfig
from mvcap_build.extract.nerf_config import NerfSourceConfig


class FramesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_frames: int = Field(24, ge=1)  # K views per instance, chosen to spread over the viewing directions
    min_frames: int = Field(4, ge=1)  # fewer usable frames: the instance is ledgered `too_few_frames`
    blur_fraction: float = Field(0.3, ge=0, lt=1)  # drop frames sharper than this fraction of the median (0: keep all)
    crop: bool = True  # a square around the object (from the sparse points, else the alpha mask)
    crop_margin: float = Field(1.15, ge=1.0)  # the square's side over the object's extent
    resolution: int | None = Field(512, ge=8, le=4096)  # output side in pixels (at most); None keeps the source size
    # Enlarge crops smaller than `resolution` too (by default they keep their size, and the run says so).
    upsample: bool = False
    jpeg_quality: int = Field(95, ge=50, le=100)  # photos are stored as JPEG, RGBA views as PNG

    @model_validator(mode="after")
    def _check(self) -> FramesConfig:
        if self.min_frames > self.num_frames:
            raise ValueError(f"min_frames ({self.min_frames}) cannot exceed num_frames ({self.num_frames})")
        return self


SourceConfig = Annotated[MVImgNetSourceConfig | NerfSourceConfig, Field(discriminator="kind")]


class ExtractConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: SourceConfig
    frames: FramesConfig = Field(default_factory=FramesConfig)
