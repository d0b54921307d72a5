"""A pipeline file: the dataset root and one section per stage (a missing section skips it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from mvcap_build.caption.config import CaptionConfig
from mvcap_build.export.config import ExportConfig
from mvcap_build.render.config import RenderConfig


class TrainSection(BaseModel):
    """Where OVT training writes, plus the trainer's own settings (validated by the trainer)."""

    model_config = ConfigDict(extra="allow")
    output: Path | None = None  # default: ROOT/train/ovt


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    root: Path  # the dataset root, relative to the current directory
    render: RenderConfig | None = None
    caption: CaptionConfig | None = None
    export: ExportConfig | None = None
    train_ovt: TrainSection | None = None

    def train_settings(self) -> dict[str, Any]:
        return {k: v for k, v in (self.train_ovt.model_dump() if self.train_ovt else {}).items() if k != "output"}
