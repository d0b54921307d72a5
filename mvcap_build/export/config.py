"""Settings of the export stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "mvcap-dataset"  # dataset name on the card
    rows_per_parquet: int = Field(2000, ge=1)  # views per Parquet shard (~100-300 MB at 512 px)
    rows_per_metadata: int = Field(100_000, ge=1)  # rows per metadata_NNNNN.json shard
    img_id_stride: int = Field(100, ge=1)  # img_id = obj_id * stride + view index (MVCap uses 100)
    license: str = "other"  # goes on the card; set it to your assets' licence
    # Captions from several backends, models or prompts in one dataset are refused unless allowed.
    allow_mixed_captions: bool = False
