"""Settings of the `mvimgnet` capture source. Pydantic only, so a YAML file validates before any
zip is opened or pycolmap imported."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MVImgNetSourceConfig(BaseModel):
    """MVImgNet as released: `<category_id>/<instance_id>/{images,sparse/0}` either unpacked
    under `folder` or inside the zip parts `zips` (read member by member, never unpacked)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["mvimgnet"]
    folder: Path | None = None  # the dataset root holding <category_id>/<instance_id>/
    # The released zip parts; a glob such as /data/mvi_*.zip is expanded (sorted).
    zips: list[Path] | None = Field(None, min_length=1)
    # MVImgNet's `id,name` list; default: mvimgnet_category.txt in `folder`, or beside the first zip.
    categories_file: Path | None = None
    category_map: Path | None = None  # CSV `id,category`: wins over the categories file, may add ids
    name: str = Field("mvimgnet", pattern=r"^[a-z0-9][a-z0-9_-]*$")  # source part of object keys

    @model_validator(mode="after")
    def _one_location(self) -> MVImgNetSourceConfig:
        if (self.folder is None) == (self.zips is None):
            raise ValueError("give exactly one of `folder` (unpacked dataset) or `zips` (released zip parts)")
        return self

    @property
    def source_name(self) -> str:
        return self.name
